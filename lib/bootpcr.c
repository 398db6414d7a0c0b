/* SPDX-License-Identifier: Apache-2.0 */
#include "bootpcr.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authenticode.h"
#include "eventlog.h"
#include "macro.h"
#include "openssl-util.h"
#include "uki.h"

static int add(struct bootpcr_prediction *p, unsigned pcr, uint32_t type, const char *what, uint64_t size,
               const uint8_t digest[32]) {
        struct bootpcr_event *ev;

        if (p->n_events >= BOOTPCR_MAX_EVENTS)
                return -E2BIG;
        ev = &p->events[p->n_events++];
        *ev = (struct bootpcr_event) { .pcr = pcr, .type = type, .size = size };
        snprintf(ev->what, sizeof(ev->what), "%s", what);
        memcpy(ev->digest, digest, 32);
        p->predicted |= UINT32_C(1) << pcr;
        return pcr_extend_sha256(p->pcr[pcr], digest);
}

static int add_string(struct bootpcr_prediction *p, unsigned pcr, uint32_t type, const char *s) {
        uint8_t d[32];
        int r = sha256(s, strlen(s), d);
        return r < 0 ? r : add(p, pcr, type, s, strlen(s), d);
}

int bootpcr_load_options(const uint8_t *cmdline, size_t size, uint8_t **ret, size_t *ret_size, struct errmsg *e) {
        size_t n = strnlen((const char *) cmdline, size);
        uint8_t *buf;

        for (size_t i = 0; i < n; i++)
                if (cmdline[i] >= 0x80)
                        return errmsg_set(e, EBADMSG,
                                          ".cmdline: byte 0x%02x at offset %zu is not ASCII (how systemd-stub "
                                          "252 converts it to UTF-16 is not modelled)",
                                          cmdline[i], i);
        buf = calloc(n + 1, 2);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                buf[2 * i] = cmdline[i];
        *ret = buf;
        *ret_size = 2 * (n + 1);
        return 0;
}

/* The kernel as the stub hands it to LoadImage: the section as loaded. */
static int kernel_digest(const struct pcr11_section *s, uint8_t out[32], struct errmsg *e) {
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ uint8_t *copy = NULL;
        const uint8_t *data = s->data;
        int r;

        if (s->size > s->file_size) {
                copy = calloc(1, s->size);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, s->data, s->file_size);
                data = copy;
        }
        pe = malloc(sizeof(*pe));
        if (!pe)
                return -ENOMEM;
        r = pe_parse(data, s->size, pe, e);
        if (r < 0) {
                errmsg_prefix(e, ".linux is not a PE image the firmware can load");
                return r;
        }
        r = authenticode_sha256(pe, out, e);
        if (r < 0)
                errmsg_prefix(e, ".linux");
        return r;
}

int bootpcr_predict(const struct pe_image *uki, const struct bootpcr_options *opts, struct bootpcr_prediction *ret,
                    struct errmsg *e) {
        _cleanup_free_ struct pcr11_prediction *p11 = NULL;
        _cleanup_free_ struct bootpcr_prediction *p = NULL;
        _cleanup_free_ uint8_t *options = NULL;
        struct pcr11_section sections[PCR11_MAX_SECTIONS];
        const struct pcr11_section *linux_s = NULL, *cmdline_s = NULL;
        const uint8_t *initrd_digest = NULL;
        uint64_t initrd_size = 0;
        static const uint8_t separator[4] = {};
        size_t n, options_size;
        uint8_t d[32];
        int r;

        r = pcr11_uki_sections(uki, sections, &n, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (streq(sections[i].name, UKI_SECTION_LINUX))
                        linux_s = &sections[i];
                else if (streq(sections[i].name, UKI_SECTION_CMDLINE))
                        cmdline_s = &sections[i];
        }
        assert(linux_s);

        p = calloc(1, sizeof(*p));
        p11 = calloc(1, sizeof(*p11));
        if (!p || !p11)
                return -ENOMEM;

        /* PCR 11 first: its section digests serve PCR 9 too. */
        r = pcr11_predict(sections, n, opts ? opts->phases : NULL, p11, e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < p11->n_events; i++)
                if (p11->events[i].kind == PCR11_EVENT_SECTION_DATA && streq(p11->events[i].what, ".initrd")) {
                        initrd_digest = p11->events[i].digest;
                        initrd_size = p11->events[i].size;
                }

        /* PCR 4 */
        r = add_string(p, 4, EV_EFI_ACTION, BOOTPCR_CALLING_BOOT_OPTION);
        if (r >= 0)
                r = sha256(separator, sizeof(separator), d);
        if (r >= 0)
                r = add(p, 4, EV_SEPARATOR, "separator", sizeof(separator), d);
        for (unsigned i = 0; r >= 0 && opts && i < opts->failed_boot_attempts; i++) {
                r = add_string(p, 4, EV_EFI_ACTION, BOOTPCR_RETURNING_BOOT_OPTION);
                if (r >= 0)
                        r = add_string(p, 4, EV_EFI_ACTION, BOOTPCR_CALLING_BOOT_OPTION);
        }
        if (r < 0)
                return errmsg_set(e, r, "cannot compute the firmware's PCR 4 events");
        r = authenticode_sha256(uki, d, e);
        if (r < 0) {
                errmsg_prefix(e, "UKI");
                return r;
        }
        r = add(p, 4, EV_EFI_BOOT_SERVICES_APPLICATION, "UKI (Authenticode)", uki->size, d);
        if (r < 0)
                return errmsg_set(e, r, "cannot extend PCR 4");
        /* Computed with Secure Boot too: a .linux the firmware could not
         * load is refused either way. */
        r = kernel_digest(linux_s, d, e);
        if (r < 0)
                return r;
        if (!(opts && opts->secure_boot)) {
                r = add(p, 4, EV_EFI_BOOT_SERVICES_APPLICATION, ".linux (Authenticode)", linux_s->size, d);
                if (r < 0)
                        return errmsg_set(e, r, "cannot extend PCR 4");
        }

        /* PCR 9: the kernel's EFI stub, load options before the initrd. */
        if (cmdline_s) {
                const uint8_t *c = cmdline_s->data;

                /* Zeros beyond the file bytes end the string anyway. */
                r = bootpcr_load_options(c, cmdline_s->file_size, &options, &options_size, e);
                if (r < 0)
                        return r;
                r = sha256(options, options_size, d);
                if (r >= 0)
                        r = add(p, 9, EV_EVENT_TAG, "LOADED_IMAGE::LoadOptions (.cmdline)", options_size, d);
                if (r < 0)
                        return errmsg_set(e, r, "cannot extend PCR 9");
        }
        if (initrd_digest) {
                r = add(p, 9, EV_EVENT_TAG, "Linux initrd (.initrd)", initrd_size, initrd_digest);
                if (r < 0)
                        return errmsg_set(e, r, "cannot extend PCR 9");
        }
        p->predicted |= UINT32_C(1) << 9;

        /* PCR 11 */
        for (size_t i = 0; i < p11->n_events; i++) {
                const struct pcr11_event *ev = &p11->events[i];
                char what[64];

                snprintf(what, sizeof(what), "%s %s", ev->what,
                         ev->kind == PCR11_EVENT_SECTION_NAME   ? "(name)"
                         : ev->kind == PCR11_EVENT_SECTION_DATA ? "(contents)"
                                                                : "(phase)");
                r = add(p, 11, EV_IPL, what, ev->size, ev->digest);
                if (r < 0)
                        return errmsg_set(e, r, "cannot extend PCR 11");
        }
        if (memcmp(p->pcr[11], p11->value, 32) != 0)
                return errmsg_set(e, EIO, "PCR 11: internal inconsistency");

        /* PCRs 12 and 13: nothing measured, zero. */
        p->predicted |= (UINT32_C(1) << 12) | (UINT32_C(1) << 13);

        memcpy(ret, p, sizeof(*p));
        return 0;
}
