/* SPDX-License-Identifier: Apache-2.0 */
/* PCR 11 prediction. The expected values were computed by systemd 252's own
 * `systemd-measure calculate --bank=sha256` from files with the contents
 * below; tests/integration/test-measure.sh compares against it live. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"
#include "openssl-util.h"
#include "pcr11.h"
#include "pe-builder.h"
#include "pe.h"
#include "uki.h"

#define SDMAGIC "#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####"

static const char s_linux[] = "MZ-not-really-a-kernel";
static const char s_osrel[] = "ID=arca\nNAME=arca\n";
static const char s_cmdline[] = "console=ttyS0 root=/dev/vda";
static const char s_initrd[] = "initrd-bytes";
static const char s_splash[] = "BMsplash";
static const char s_dtb[] = "\xd0\x0d\xfe\xed";
static const char s_pcrpkey[] = "-----BEGIN PUBLIC KEY-----\n";

#define SEC(n, s) { .name = (n), .data = (const uint8_t *) (s), .file_size = sizeof(s) - 1, .size = sizeof(s) - 1 }

/* systemd-measure calculate --linux=linux --bank=sha256 --phase= */
#define KAT_LINUX "7f9f8491d6e40b09baea3655bfa6c1b8b758d0896f484bdf6431c9841c1dc461"
/* --linux --osrel --cmdline --initrd, phases "", "enter-initrd", "enter-initrd:leave-initrd:sysinit:ready" */
#define KAT_FOUR "eb2455f39480e9d293a4817e04f9c056433343b934d4256f6d7351ae60899fb4"
#define KAT_FOUR_ENTER "a4f7f789707f3abb9b6b7dfb931a09318fc5e00a1827174b6c4f8a5172a0ad69"
#define KAT_FOUR_READY "c2ea66e24f9eed60c15c9973c1ac06290299f32815a1fbe3fb94bd011758d069"
/* all seven (+ --splash --dtb --pcrpkey), phases "" and all six */
#define KAT_SEVEN "5668c54fb15d172a7e968bae9406282dcc5ca44601dd990ee518c9345f6f3a37"
#define KAT_SEVEN_FINAL "76f9e64f9281643ff39588bef02296348613b70569f8337e39ff884f4fadf591"

static void assert_value(const struct pcr11_prediction *p, const char *hex) {
        char got[65];
        hex_encode_buf(p->value, 32, got);
        cr_assert_str_eq(got, hex);
}

static void predict(const struct pcr11_section *s, size_t n, const char *phases, struct pcr11_prediction *p) {
        struct pcr11_phases ph;
        struct errmsg e = {};

        cr_assert_eq(pcr11_parse_phases(phases, &ph, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(pcr11_predict(s, n, &ph, p, &e), 0, "%s", errmsg_str(&e));
}

Test(pcr11, matches_systemd_measure_for_section_and_phase_sets) {
        const struct pcr11_section one[] = { SEC(".linux", s_linux) };
        const struct pcr11_section four[] = {
                SEC(".linux", s_linux), SEC(".osrel", s_osrel), SEC(".cmdline", s_cmdline), SEC(".initrd", s_initrd),
        };
        const struct pcr11_section seven[] = {
                SEC(".linux", s_linux),   SEC(".osrel", s_osrel), SEC(".cmdline", s_cmdline),
                SEC(".initrd", s_initrd), SEC(".splash", s_splash), SEC(".dtb", s_dtb),
                SEC(".pcrpkey", s_pcrpkey),
        };
        struct pcr11_prediction *p = malloc(sizeof(*p));

        predict(one, 1, "", p);
        assert_value(p, KAT_LINUX);
        predict(four, 4, "", p);
        assert_value(p, KAT_FOUR);
        predict(four, 4, "enter-initrd", p);
        assert_value(p, KAT_FOUR_ENTER);
        predict(four, 4, "enter-initrd:leave-initrd:sysinit:ready", p);
        assert_value(p, KAT_FOUR_READY);
        predict(seven, 7, ":", p);
        assert_value(p, KAT_SEVEN);
        predict(seven, 7, "enter-initrd:leave-initrd:sysinit:ready:shutdown:final", p);
        assert_value(p, KAT_SEVEN_FINAL);
        free(p);
}

Test(pcr11, records_every_extension) {
        const struct pcr11_section two[] = { SEC(".linux", s_linux), SEC(".osrel", s_osrel) };
        struct pcr11_prediction *p = malloc(sizeof(*p));
        uint8_t d[32], pcr[32] = {};

        predict(two, 2, "sysinit", p);
        cr_assert_eq(p->n_events, 5);
        cr_assert_eq(p->events[0].kind, PCR11_EVENT_SECTION_NAME);
        cr_assert_eq(p->events[0].size, 7, "the name is measured with its NUL");
        sha256(".linux", 7, d);
        cr_assert_arr_eq(p->events[0].digest, d, 32);
        cr_assert_eq(p->events[1].kind, PCR11_EVENT_SECTION_DATA);
        sha256(s_linux, sizeof(s_linux) - 1, d);
        cr_assert_arr_eq(p->events[1].digest, d, 32);
        cr_assert_eq(p->events[4].kind, PCR11_EVENT_PHASE);
        cr_assert_str_eq(p->events[4].what, "sysinit");
        sha256("sysinit", 7, d);
        cr_assert_arr_eq(p->events[4].digest, d, 32, "phases are measured without a NUL");
        /* Replaying the events gives each intermediate value and the result. */
        for (size_t i = 0; i < p->n_events; i++) {
                pcr_extend_sha256(pcr, p->events[i].digest);
                cr_assert_arr_eq(pcr, p->events[i].pcr, 32);
        }
        cr_assert_arr_eq(pcr, p->value, 32);
        free(p);
}

Test(pcr11, zero_fills_virtual_size_beyond_the_file_bytes) {
        uint8_t buf[40] = "abc";
        const struct pcr11_section padded[] = { { .name = ".linux", .data = buf, .file_size = 3, .size = 40 } };
        const struct pcr11_section plain[] = { { .name = ".linux", .data = buf, .file_size = 40, .size = 40 } };
        struct pcr11_prediction *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));

        memset(buf + 3, 0, sizeof(buf) - 3);
        predict(padded, 1, "", a);
        predict(plain, 1, "", b);
        cr_assert_arr_eq(a->value, b->value, 32);
        free(a);
        free(b);
}

Test(pcr11, parses_phase_paths_like_systemd_measure) {
        struct pcr11_phases p;
        struct errmsg e = {};
        char s[256];

        cr_assert_eq(pcr11_parse_phases("", &p, &e), 0);
        cr_assert_eq(p.n, 0);
        cr_assert_eq(pcr11_parse_phases(":", &p, &e), 0);
        cr_assert_eq(p.n, 0);
        cr_assert_eq(pcr11_parse_phases("enter-initrd::leave-initrd:", &p, &e), 0);
        cr_assert_eq(p.n, 2);
        pcr11_phases_to_string(&p, s, sizeof(s));
        cr_assert_str_eq(s, "enter-initrd:leave-initrd");

        cr_assert_eq(pcr11_parse_phases("enter-initrd:sysinti", &p, &e), -EINVAL);
        cr_assert_not_null(strstr(e.text, "unknown boot phase \"sysinti\""), "%s", e.text);
        memset(&e, 0, sizeof(e));
        cr_assert_eq(pcr11_parse_phases("ready:ready:ready:ready:ready:ready:ready:ready:ready:ready:ready:ready:"
                                        "ready:ready:ready:ready:ready",
                                        &p, &e),
                     -EINVAL);
        cr_assert_not_null(strstr(e.text, "more than 16 boot phases"), "%s", e.text);
}

/* --- finding the sections in a UKI the way systemd-stub 252 does -------- */

static struct pe_image *parse(const uint8_t *d, size_t n) {
        struct pe_image *pe = malloc(sizeof(*pe));
        struct errmsg e = {};
        cr_assert_eq(pe_parse(d, n, pe, &e), 0, "%s", errmsg_str(&e));
        return pe;
}

Test(pcr11, predicts_an_assembled_uki_like_systemd_measure) {
        /* Given in an order that is neither file nor stub order. */
        const struct uki_input in[] = {
                { ".dtb", s_dtb, sizeof(s_dtb) - 1 },           { ".pcrpkey", s_pcrpkey, sizeof(s_pcrpkey) - 1 },
                { ".cmdline", s_cmdline, sizeof(s_cmdline) - 1 }, { ".splash", s_splash, sizeof(s_splash) - 1 },
                { ".uname", "6.1.0", 5 },                       { ".initrd", s_initrd, sizeof(s_initrd) - 1 },
                { ".osrel", s_osrel, sizeof(s_osrel) - 1 },     { ".linux", s_linux, sizeof(s_linux) - 1 },
        };
        struct pcr11_section secs[PCR11_MAX_SECTIONS];
        struct pcr11_prediction *p = malloc(sizeof(*p));
        struct pe_image *stub, *uki;
        struct pe_builder b;
        struct errmsg e = {};
        uint8_t *sd, *out;
        size_t sn, on, n;

        pe_builder_init(&b, 2);
        b.sdmagic = SDMAGIC;
        cr_assert_eq(pe_builder_build(&b, &sd, &sn), 0);
        stub = parse(sd, sn);
        cr_assert_eq(uki_assemble(stub, in, 8, &out, &on, &e), 0, "%s", errmsg_str(&e));
        uki = parse(out, on);
        cr_assert_eq(pcr11_uki_sections(uki, secs, &n, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(n, 7, ".uname is not measured by 252");
        cr_assert_str_eq(secs[0].name, ".linux");
        cr_assert_str_eq(secs[6].name, ".pcrpkey");
        predict(secs, n, "", p);
        assert_value(p, KAT_SEVEN);
        predict(secs, n, "enter-initrd:leave-initrd:sysinit:ready:shutdown:final", p);
        assert_value(p, KAT_SEVEN_FINAL);
        free(uki);
        free(out);
        free(stub);
        free(sd);
        free(p);
}

/* Build a PE whose sections have the given names (contents from the builder). */
static struct pe_image *image_with(const char *const *names, size_t n, uint8_t **d, size_t *size) {
        struct pe_builder b;

        pe_builder_init(&b, (unsigned) n);
        for (size_t i = 0; i < n; i++) {
                memset(b.s[i].name, 0, sizeof(b.s[i].name));
                memcpy(b.s[i].name, names[i], strlen(names[i]));
        }
        cr_assert_eq(pe_builder_build(&b, d, size), 0);
        return parse(*d, *size);
}

Test(pcr11, finds_sections_by_prefix_with_the_last_match_winning) {
        static const char *const names[] = { ".linux", ".osrel", ".linuxAB", ".pcrsig" };
        struct pcr11_section secs[PCR11_MAX_SECTIONS];
        struct errmsg e = {};
        struct pe_image *pe;
        uint8_t *d;
        size_t n, size;

        pe = image_with(names, 4, &d, &size);
        cr_assert_eq(pcr11_uki_sections(pe, secs, &n, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(n, 2, ".pcrsig is never measured");
        cr_assert_str_eq(secs[0].name, ".linux");
        cr_assert_eq(secs[0].data, d + pe->sections[2].pointer_to_raw_data, "the later \".linuxAB\" wins");
        cr_assert_eq(secs[0].size, 0x180);
        cr_assert_str_eq(secs[1].name, ".osrel");
        free(pe);
        free(d);
}

Test(pcr11, zero_virtual_size_counts_as_absent_and_linux_is_required) {
        static const char *const names[] = { ".linux", ".osrel" };
        static const char *const no_linux[] = { ".osrel", ".cmdline" };
        struct pcr11_section secs[PCR11_MAX_SECTIONS];
        struct errmsg e = {};
        struct pe_image *pe;
        struct pe_builder b;
        uint8_t *d;
        size_t n, size;

        pe_builder_init(&b, 2);
        memcpy(b.s[0].name, ".linux", 7);
        memcpy(b.s[1].name, ".osrel", 7);
        b.s[1].virtual_size = 0;
        cr_assert_eq(pe_builder_build(&b, &d, &size), 0);
        pe = parse(d, size);
        cr_assert_eq(pcr11_uki_sections(pe, secs, &n, &e), 0);
        cr_assert_eq(n, 1);
        free(pe);
        free(d);

        pe = image_with(names, 2, &d, &size);
        pe->sections[0].virtual_size = 0;
        cr_assert_eq(pcr11_uki_sections(pe, secs, &n, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "no .linux section"), "%s", e.text);
        free(pe);
        free(d);

        pe = image_with(no_linux, 2, &d, &size);
        cr_assert_eq(pcr11_uki_sections(pe, secs, &n, NULL), -EBADMSG);
        free(pe);
        free(d);
}

Test(pcr11, stub_order_is_that_of_systemd_252) {
        static const char *const order[] = { ".linux", ".osrel", ".cmdline", ".initrd",
                                             ".splash", ".dtb",   ".pcrsig",  ".pcrpkey" };
        bool measured;

        for (size_t i = 0; i < 8; i++) {
                cr_assert_str_eq(pcr11_stub_section(i, &measured), order[i]);
                cr_assert_eq(measured, !streq(order[i], ".pcrsig"));
        }
        cr_assert_null(pcr11_stub_section(8, NULL));
        cr_assert(!pcr11_section_measured(".uname"));
        cr_assert(!pcr11_section_measured(".sbat"));
        cr_assert(pcr11_section_measured(".pcrpkey"));
}
