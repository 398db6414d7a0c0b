/* SPDX-License-Identifier: Apache-2.0 */
/* pe_parse() on arbitrary bytes. Whatever it accepts must be safe to use
 * with the offsets it returns: every section's bytes are read, the
 * Authenticode hash is computed, the PCR 11 sections are found, and a UKI
 * assembled on it as a stub must parse again and measure exactly the
 * sections that were added. Refusals must say why.
 *
 * Corpus (tests/fuzz/corpus/fuzz-pe/): minimal PE32 and PE32+ images, a
 * signed one, a stub with a COFF symbol table, UKIs assembled by
 * arca-measure on such a stub, the first KiB of the real systemd-stub and
 * kernel, and malformed variants (overlaps, absurd counts, bad sizes). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authenticode.h"
#include "bootpcr.h"
#include "macro.h"
#include "pcr11.h"
#include "pe.h"
#include "uki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keep PCR 11 zero-fill hashing cheap: VirtualSize can claim up to 4 GiB. */
#define MAX_VIRTUAL (1u << 20)

static void check_uki_on(const struct pe_image *stub) {
        static const struct uki_input in[] = {
                { UKI_SECTION_LINUX, "kernel", 6 },
                { UKI_SECTION_OSREL, "ID=arca\n", 8 },
        };
        _cleanup_free_ struct pcr11_prediction *want = NULL, *got = NULL;
        _cleanup_free_ struct pe_image *uki = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        struct pcr11_section secs[PCR11_MAX_SECTIONS];
        const struct pcr11_section direct[] = {
                { ".linux", (const uint8_t *) "kernel", 6, 6 },
                { ".osrel", (const uint8_t *) "ID=arca\n", 8, 8 },
        };
        struct errmsg e = {};
        uint8_t digest[32];
        size_t n, out_size;
        int r;

        r = uki_assemble(stub, in, ELEMENTSOF(in), &out, &out_size, &e);
        if (r == -ENOMEM)
                return;
        if (r < 0) {
                /* The self-check inside uki_assemble() must never fire. */
                if (r == -EIO || !e.text[0])
                        abort();
                return;
        }
        uki = malloc(sizeof(*uki));
        want = malloc(sizeof(*want));
        got = malloc(sizeof(*got));
        if (!uki || !want || !got)
                return;
        if (pe_parse(out, out_size, uki, NULL) < 0)
                abort();
        if (authenticode_sha256(uki, digest, NULL) < 0)
                abort();
        if (uki->has_certificate_table || uki->n_sections != stub->n_sections + 2)
                abort();
        /* The stub had no section that the stub's lookup would confuse with
         * ours (uki_assemble refuses those), so exactly ours are measured. */
        if (pcr11_uki_sections(uki, secs, &n, NULL) < 0 || n != 2)
                abort();
        if (pcr11_predict(secs, n, NULL, got, NULL) < 0 || pcr11_predict(direct, 2, NULL, want, NULL) < 0)
                abort();
        if (memcmp(got->value, want->value, 32) != 0)
                abort();
}

static bool nul_padded(const uint8_t raw[8]) {
        bool nul = false;
        for (unsigned i = 0; i < 8; i++) {
                if (nul && raw[i])
                        return false;
                nul = nul || !raw[i];
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ struct pe_image *pe = malloc(sizeof(*pe));
        _cleanup_free_ struct pcr11_prediction *pred = malloc(sizeof(*pred));
        struct pcr11_section secs[PCR11_MAX_SECTIONS];
        struct errmsg e = {};
        uint8_t digest[32];
        volatile uint8_t sink = 0;
        unsigned major;
        char version[64];
        size_t n;
        bool cheap = true;

        if (!pe || !pred)
                return 0;
        if (pe_parse(data, size, pe, &e) < 0) {
                if (!e.text[0])
                        abort();
                return 0;
        }

        for (unsigned i = 0; i < pe->n_sections; i++) {
                const uint8_t *p;
                size_t fsize, vsize;

                pe_section_content(pe, &pe->sections[i], &p, &fsize, &vsize);
                if (fsize > vsize || (fsize > 0 && (p < data || p + fsize > data + size)))
                        abort();
                for (size_t k = 0; k < fsize; k++)
                        sink ^= p[k];
                if (pe->sections[i].virtual_size > MAX_VIRTUAL)
                        cheap = false;
                /* A NUL-padded name is found again (maybe as an earlier
                 * section of the same name). */
                if (nul_padded(pe->sections[i].raw_name)) {
                        const struct pe_section *f = pe_find_section(pe, pe->sections[i].name);
                        if (!f || f > &pe->sections[i] || strcmp(f->name, pe->sections[i].name) != 0)
                                abort();
                }
        }
        (void) sink;
        (void) pe_checksum(data, size, pe->checksum_offset);

        memset(&e, 0, sizeof(e));
        if (authenticode_sha256(pe, digest, &e) < 0 && !e.text[0])
                abort();
        (void) uki_stub_version(pe, version, sizeof(version), &major, NULL);

        memset(&e, 0, sizeof(e));
        if (pcr11_uki_sections(pe, secs, &n, &e) >= 0) {
                if (cheap && pcr11_predict(secs, n, NULL, pred, NULL) < 0)
                        abort();
        } else if (!e.text[0])
                abort();

        /* All boot PCRs: parses .linux as a PE image in turn. A refusal
         * has a reason; a prediction agrees with PCR 11's own. */
        if (cheap) {
                _cleanup_free_ struct bootpcr_prediction *bp = malloc(sizeof(*bp));
                memset(&e, 0, sizeof(e));
                if (bp && bootpcr_predict(pe, NULL, bp, &e) >= 0) {
                        if (pcr11_uki_sections(pe, secs, &n, NULL) < 0 || pcr11_predict(secs, n, NULL, pred, NULL) < 0 ||
                            memcmp(bp->pcr[11], pred->value, 32) != 0)
                                abort();
                } else if (bp && !e.text[0])
                        abort();
        }

        check_uki_on(pe);
        return 0;
}
