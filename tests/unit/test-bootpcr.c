/* SPDX-License-Identifier: Apache-2.0 */
/* Boot PCR prediction (PCRs 4, 9, 11, 12, 13 of a UKI booted by OVMF).
 * Expected values here are assembled by hand from the event sequence that
 * real boots record (docs/MEASURED-BOOT.md); tests/vm/test-uki-boot.sh
 * checks the same against a real OVMF boot. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "authenticode.h"
#include "bootpcr.h"
#include "eventlog.h"
#include "openssl-util.h"
#include "pcr11.h"
#include "pe-builder.h"
#include "pe.h"
#include "uki.h"

#define SDMAGIC "#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####"

static const char cmdline[] = "console=ttyS0 root=/dev/vda";
static const char initrd[] = "initrd-bytes";
static const char osrel[] = "ID=arca\n";

struct fixture {
        uint8_t *stub_data, *kernel, *uki_data;
        size_t stub_size, kernel_size, uki_size;
        struct pe_image *stub, *uki;
};

static struct pe_image *parse(const uint8_t *d, size_t n) {
        struct pe_image *pe = malloc(sizeof(*pe));
        struct errmsg e = {};
        cr_assert_not_null(pe);
        cr_assert_eq(pe_parse(d, n, pe, &e), 0, "pe_parse: %s", errmsg_str(&e));
        return pe;
}

/* A UKI of a builder-made stub and kernel with the given extra sections. */
static void build(struct fixture *f, const struct uki_input *extra, size_t n_extra) {
        struct uki_input in[8];
        struct pe_builder b;
        struct errmsg e = {};

        memset(f, 0, sizeof(*f));
        pe_builder_init(&b, 2);
        b.sdmagic = SDMAGIC;
        cr_assert_eq(pe_builder_build(&b, &f->stub_data, &f->stub_size), 0);
        f->stub = parse(f->stub_data, f->stub_size);
        pe_builder_init(&b, 3);
        cr_assert_eq(pe_builder_build(&b, &f->kernel, &f->kernel_size), 0);

        in[0] = (struct uki_input) { .name = ".linux", .data = f->kernel, .size = f->kernel_size };
        memcpy(in + 1, extra, n_extra * sizeof(*extra));
        cr_assert_eq(uki_assemble(f->stub, in, n_extra + 1, &f->uki_data, &f->uki_size, &e), 0, "%s",
                     errmsg_str(&e));
        f->uki = parse(f->uki_data, f->uki_size);
}

static void fixture_free(struct fixture *f) {
        free(f->stub);
        free(f->uki);
        free(f->stub_data);
        free(f->kernel);
        free(f->uki_data);
}

#define IN(n, s) { .name = (n), .data = (s), .size = sizeof(s) - 1 }
static const struct uki_input all[] = { IN(".cmdline", cmdline), IN(".initrd", initrd), IN(".osrel", osrel) };

static void extend(uint8_t pcr[32], const void *data, size_t n) {
        uint8_t d[32];
        cr_assert_eq(sha256(data, n, d), 0);
        cr_assert_eq(pcr_extend_sha256(pcr, d), 0);
}

static void extend_digest(uint8_t pcr[32], const uint8_t d[32]) {
        cr_assert_eq(pcr_extend_sha256(pcr, d), 0);
}

static void kernel_authenticode(const struct fixture *f, uint8_t out[32]) {
        struct pe_image *k = parse(f->kernel, f->kernel_size);
        struct errmsg e = {};
        cr_assert_eq(authenticode_sha256(k, out, &e), 0, "%s", errmsg_str(&e));
        free(k);
}

static struct bootpcr_prediction *predict(const struct fixture *f, const struct bootpcr_options *o) {
        struct bootpcr_prediction *p = malloc(sizeof(*p));
        struct errmsg e = {};
        cr_assert_not_null(p);
        cr_assert_eq(bootpcr_predict(f->uki, o, p, &e), 0, "%s", errmsg_str(&e));
        return p;
}

Test(bootpcr, predicts_what_ovmf_the_stubs_and_the_kernel_measure) {
        static const uint8_t zero[32], sep[4];
        uint8_t pcr4[32] = {}, pcr9[32] = {}, d[32], wide[2 * sizeof(cmdline)] = {};
        struct pcr11_section secs[PCR11_MAX_SECTIONS];
        struct pcr11_prediction *p11 = malloc(sizeof(*p11));
        struct bootpcr_prediction *p;
        struct fixture f;
        struct errmsg e = {};
        size_t n;

        build(&f, all, 3);
        p = predict(&f, NULL);

        extend(pcr4, BOOTPCR_CALLING_BOOT_OPTION, strlen(BOOTPCR_CALLING_BOOT_OPTION));
        extend(pcr4, sep, 4);
        cr_assert_eq(authenticode_sha256(f.uki, d, &e), 0);
        extend_digest(pcr4, d);
        kernel_authenticode(&f, d);
        extend_digest(pcr4, d);
        cr_assert_arr_eq(p->pcr[4], pcr4, 32);

        /* UTF-16LE with a UTF-16 NUL. */
        for (size_t i = 0; i < sizeof(cmdline) - 1; i++)
                wide[2 * i] = (uint8_t) cmdline[i];
        extend(pcr9, wide, sizeof(wide));
        extend(pcr9, initrd, sizeof(initrd) - 1);
        cr_assert_arr_eq(p->pcr[9], pcr9, 32);

        cr_assert_eq(pcr11_uki_sections(f.uki, secs, &n, &e), 0);
        cr_assert_eq(pcr11_predict(secs, n, NULL, p11, &e), 0);
        cr_assert_arr_eq(p->pcr[11], p11->value, 32);

        cr_assert_arr_eq(p->pcr[12], zero, 32);
        cr_assert_arr_eq(p->pcr[13], zero, 32);
        cr_assert_eq(p->predicted, (1u << 4) | (1u << 9) | (1u << 11) | (1u << 12) | (1u << 13));

        /* 4 + 2 + 8 events, each PCR's in measurement order. */
        cr_assert_eq(p->n_events, 14);
        cr_assert_eq(p->events[0].type, EV_EFI_ACTION);
        cr_assert_eq(p->events[1].type, EV_SEPARATOR);
        cr_assert_eq(p->events[2].type, EV_EFI_BOOT_SERVICES_APPLICATION);
        cr_assert_eq(p->events[3].type, EV_EFI_BOOT_SERVICES_APPLICATION);
        cr_assert_eq(p->events[4].pcr, 9);
        cr_assert_eq(p->events[4].size, sizeof(wide));
        cr_assert_eq(p->events[5].size, sizeof(initrd) - 1);
        cr_assert_eq(p->events[13].pcr, 11);
        free(p);
        free(p11);
        fixture_free(&f);
}

Test(bootpcr, secure_boot_leaves_the_kernel_out_of_pcr4) {
        struct bootpcr_options o = { .secure_boot = true };
        struct bootpcr_prediction *plain, *sb;
        uint8_t pcr4[32];
        struct fixture f;

        build(&f, all, 3);
        plain = predict(&f, NULL);
        sb = predict(&f, &o);
        cr_assert_eq(sb->n_events, plain->n_events - 1);
        /* PCR 4 of Secure Boot is PCR 4 without its last event. */
        memset(pcr4, 0, 32);
        for (unsigned i = 0; i < 3; i++)
                extend_digest(pcr4, plain->events[i].digest);
        cr_assert_arr_eq(sb->pcr[4], pcr4, 32);
        cr_assert_arr_eq(sb->pcr[9], plain->pcr[9], 32);
        cr_assert_arr_eq(sb->pcr[11], plain->pcr[11], 32);
        free(plain);
        free(sb);
        fixture_free(&f);
}

Test(bootpcr, failed_boot_attempts_add_returning_and_calling) {
        struct bootpcr_options o = { .failed_boot_attempts = 2 };
        struct bootpcr_prediction *p;
        uint8_t d[32];
        struct fixture f;

        build(&f, all, 3);
        p = predict(&f, &o);
        cr_assert_eq(sha256(BOOTPCR_RETURNING_BOOT_OPTION, strlen(BOOTPCR_RETURNING_BOOT_OPTION), d), 0);
        cr_assert_arr_eq(p->events[2].digest, d, 32);
        cr_assert_arr_eq(p->events[4].digest, d, 32);
        cr_assert_arr_eq(p->events[3].digest, p->events[0].digest, 32);
        cr_assert_arr_eq(p->events[5].digest, p->events[0].digest, 32);
        cr_assert_eq(p->events[6].type, EV_EFI_BOOT_SERVICES_APPLICATION);
        free(p);
        fixture_free(&f);
}

Test(bootpcr, without_cmdline_and_initrd_pcr9_stays_zero) {
        static const uint8_t zero[32];
        const struct uki_input in[] = { IN(".osrel", osrel) };
        struct bootpcr_prediction *p;
        struct fixture f;

        build(&f, in, 1);
        p = predict(&f, NULL);
        cr_assert(p->predicted & (1u << 9));
        cr_assert_arr_eq(p->pcr[9], zero, 32);
        for (size_t i = 0; i < p->n_events; i++)
                cr_assert_neq(p->events[i].pcr, 9);
        free(p);
        fixture_free(&f);
}

Test(bootpcr, load_options_stop_at_the_first_nul) {
        static const char c[] = "ro\0junk";
        uint8_t *buf;
        size_t n;
        struct errmsg e = {};

        cr_assert_eq(bootpcr_load_options((const uint8_t *) c, sizeof(c) - 1, &buf, &n, &e), 0);
        cr_assert_eq(n, 6);
        cr_assert_arr_eq(buf, "r\0o\0\0\0", 6);
        free(buf);
}

Test(bootpcr, refuses_a_non_ascii_cmdline) {
        static const char c[] = "console=ttyS0 caf\xc3\xa9";
        const struct uki_input in[] = { IN(".cmdline", c) };
        struct bootpcr_prediction *p = malloc(sizeof(*p));
        struct fixture f;
        struct errmsg e = {};

        build(&f, in, 1);
        cr_assert_eq(bootpcr_predict(f.uki, NULL, p, &e), -EBADMSG);
        cr_assert(strstr(errmsg_str(&e), "not ASCII"), "%s", errmsg_str(&e));
        cr_assert(strstr(errmsg_str(&e), "offset 17"), "%s", errmsg_str(&e));
        free(p);
        fixture_free(&f);
}

Test(bootpcr, refuses_a_linux_section_that_is_not_pe) {
        static const char junk[] = "MZ-but-no-PE-header-here";
        struct uki_input in[] = { IN(".linux", junk) };
        struct bootpcr_prediction *p = malloc(sizeof(*p));
        struct pe_image *uki;
        struct fixture f;
        struct errmsg e = {};
        uint8_t *out;
        size_t on;

        build(&f, all, 0);
        cr_assert_eq(uki_assemble(f.stub, in, 1, &out, &on, &e), 0);
        uki = parse(out, on);
        cr_assert_eq(bootpcr_predict(uki, NULL, p, &e), -EBADMSG);
        cr_assert(strstr(errmsg_str(&e), ".linux is not a PE image"), "%s", errmsg_str(&e));
        free(uki);
        free(out);
        free(p);
        fixture_free(&f);
}

/* --- the model against recorded boots ------------------------------------- */

static struct eventlog *load_recorded(const char *name) {
        const char *b = getenv("ARCA_BUILD_DIR");
        struct eventlog *l = NULL;
        struct errmsg e = {};
        char path[512];

        if (b && *b)
                snprintf(path, sizeof(path), "%s/../tests/data/eventlog/%s", b, name);
        else
                snprintf(path, sizeof(path), "tests/data/eventlog/%s", name);
        cr_assert_eq(eventlog_load(path, &l, &e), 0, "%s: %s", path, errmsg_str(&e));
        return l;
}

/* The recorded log's events of `pcr` have the predicted types in the
 * predicted order, and the same digests where those do not depend on the
 * image (firmware actions, separators). */
static void assert_shape_of(const char *name, const struct bootpcr_options *o, const struct uki_input *in,
                            size_t n_in) {
        struct eventlog *l = load_recorded(name);
        struct bootpcr_prediction *p;
        static const unsigned pcrs[] = { 4, 9, 11, 12, 13 };
        struct fixture f;

        build(&f, in, n_in);
        p = predict(&f, o);
        for (size_t k = 0; k < sizeof(pcrs) / sizeof(pcrs[0]); k++) {
                unsigned pcr = pcrs[k];
                size_t j = 0, n_log = 0, n_pred = 0;

                for (size_t i = 0; i < p->n_events; i++)
                        n_pred += p->events[i].pcr == pcr;
                for (size_t i = 1; i < l->n_events; i++) {
                        const struct eventlog_event *ev = &l->events[i];
                        if (ev->pcr != pcr || !eventlog_event_extends(ev))
                                continue;
                        n_log++;
                        while (j < p->n_events && p->events[j].pcr != pcr)
                                j++;
                        cr_assert_lt(j, p->n_events, "%s: PCR %u has more events than predicted", name, pcr);
                        cr_assert_eq(ev->type, p->events[j].type, "%s: PCR %u event #%zu type 0x%x, predicted 0x%x",
                                     name, pcr, i, ev->type, p->events[j].type);
                        if (ev->type == EV_EFI_ACTION || ev->type == EV_SEPARATOR)
                                cr_assert_arr_eq(eventlog_event_digest(ev, EVENTLOG_ALG_SHA256)->value,
                                                 p->events[j].digest, 32, "%s: PCR %u event #%zu", name, pcr, i);
                        j++;
                }
                cr_assert_eq(n_log, n_pred, "%s: PCR %u: %zu events recorded, %zu predicted", name, pcr, n_log,
                             n_pred);
        }
        free(p);
        fixture_free(&f);
        eventlog_free(l);
}

/* .linux .cmdline .initrd .osrel, as the recorded UKIs */
static void assert_shape(const char *name, const struct bootpcr_options *o) {
        assert_shape_of(name, o, all, 3);
}

Test(bootpcr, has_the_shape_of_a_direct_boot_without_cmdline) {
        /* No .cmdline: the stub passes the firmware's (empty) load options,
         * the kernel measures none, and nothing lands in PCR 12. */
        const struct uki_input in[] = { IN(".initrd", initrd), IN(".osrel", osrel) };
        assert_shape_of("ovmf-uki-direct-nocmdline.bin", NULL, in, 2);
}

Test(bootpcr, has_the_shape_of_a_direct_boot) {
        assert_shape("ovmf-uki-direct.bin", NULL);
}

Test(bootpcr, has_the_shape_of_a_direct_secure_boot) {
        struct bootpcr_options o = { .secure_boot = true };
        assert_shape("ovmf-uki-direct-secureboot.bin", &o);
}

Test(bootpcr, has_the_shape_of_a_boot_after_a_failed_boot_option) {
        struct bootpcr_options o = { .failed_boot_attempts = 1 };
        assert_shape("ovmf-uki.bin", &o);
}

Test(bootpcr, has_the_shape_of_a_secure_boot_after_a_failed_boot_option) {
        struct bootpcr_options o = { .failed_boot_attempts = 1, .secure_boot = true };
        assert_shape("ovmf-uki-secureboot.bin", &o);
}

Test(bootpcr, the_wrong_options_do_not_have_the_shape) {
        /* Guard against a comparison that cannot fail: the direct boot's log
         * is not shaped like a Secure Boot prediction. */
        struct bootpcr_options o = { .secure_boot = true };
        struct eventlog *l = load_recorded("ovmf-uki-direct.bin");
        struct bootpcr_prediction *p;
        size_t n4 = 0, n4_log = 0;
        struct fixture f;

        build(&f, all, 3);
        p = predict(&f, &o);
        for (size_t i = 0; i < p->n_events; i++)
                n4 += p->events[i].pcr == 4;
        for (size_t i = 1; i < l->n_events; i++)
                n4_log += l->events[i].pcr == 4 && eventlog_event_extends(&l->events[i]);
        cr_assert_neq(n4, n4_log);
        free(p);
        fixture_free(&f);
        eventlog_free(l);
}

/* A host that writes the boot variables can start the UKI with load options
 * (here: the EFI shell did). Without Secure Boot systemd-stub 252 takes
 * them instead of .cmdline. The recorded log shows why the policy enforces
 * PCRs 9 and 12: both carry the override, PCR 11 does not. */
Test(bootpcr, a_command_line_override_shows_in_pcrs_9_and_12_only) {
        static const char override[] = "console=ttyS0 quiet loglevel=1 panic=-1 arca.evil=1";
        struct eventlog *l = load_recorded("ovmf-uki-cmdline-override.bin");
        struct eventlog_explanation *x = NULL;
        struct policy pol = {};
        const uint8_t *pcr9_options = NULL, *pcr12 = NULL;
        uint8_t *wide, want[32];
        size_t n_wide, n12 = 0;
        struct errmsg e = {};

        for (size_t i = 1; i < l->n_events; i++) {
                const struct eventlog_event *ev = &l->events[i];
                const uint8_t *d = eventlog_event_digest(ev, EVENTLOG_ALG_SHA256)->value;
                if (ev->pcr == 12) {
                        pcr12 = d;
                        n12++;
                }
                if (ev->pcr == 9 && ev->type == EV_EVENT_TAG && ev->data_size >= 4 && ev->data[0] == 0xed)
                        pcr9_options = d;
        }
        cr_assert_eq(n12, 1);
        cr_assert_not_null(pcr9_options);
        /* Both are the override as bootpcr_load_options() encodes a command line. */
        cr_assert_eq(bootpcr_load_options((const uint8_t *) override, sizeof(override) - 1, &wide, &n_wide, &e), 0);
        cr_assert_eq(sha256(wide, n_wide, want), 0);
        cr_assert_arr_eq(pcr12, want, 32);
        cr_assert_arr_eq(pcr9_options, want, 32);
        free(wide);

        /* A policy expecting PCR 12 at zero refuses it and names the event. */
        pol.pcr[12].set = true;
        cr_assert_eq(eventlog_explain(l, &pol, NULL, &x, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(x->pcr[12].verdict, PCR_MISMATCH_ENFORCED);
        cr_assert(x->pcr[12].expected_at_start);
        cr_assert_eq(x->pcr[12].n_events, 1);
        cr_assert_eq(l->events[x->pcr[12].events[0]].pcr, 12);
        eventlog_explanation_free(x);
        eventlog_free(l);
}
