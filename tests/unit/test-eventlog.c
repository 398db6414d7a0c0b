/* SPDX-License-Identifier: Apache-2.0 */
/* The event log parser, replay, descriptions and mismatch explanation, on
 * logs built byte by byte by tests/helpers/eventlog-builder.c (which keeps
 * its own reference PCR values). tests/integration/test-eventlog-swtpm.c
 * checks the same logs against a real TPM and tpm2_eventlog. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog-builder.h"
#include "encoding.h"
#include "eventlog.h"
#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "openssl-util.h"
#include "policy.h"

static const uint8_t guid_global[16] = { 0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11,
                                         0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c };

/* Offset of the first event after the Spec ID event of elb_init_default. */
#define FIRST_EVENT2 (32 + 28 + 2 * 4 + 1)

/* A small log that looks like a firmware's: locality, CRTM version,
 * SecureBoot, separators, a boot application, the Linux stub's initrd tag
 * and an EV_NO_ACTION with a digest that must not be extended. */
static void build_small(struct elb *b) {
        uint8_t var[128];
        size_t n;

        elb_init_default(b);
        elb_startup_locality(b, 0);
        elb_event(b, 0, EV_S_CRTM_VERSION, (const uint8_t[]) { '1', 0, 0, 0 }, 4);
        n = elb_variable_data(var, sizeof(var), guid_global, "SecureBoot", (const uint8_t[]) { 1 }, 1);
        elb_event(b, 7, EV_EFI_VARIABLE_DRIVER_CONFIG, var, n);
        for (uint32_t p = 0; p < 8; p++)
                elb_event(b, p, EV_SEPARATOR, (const uint8_t[4]) {}, 4);
        elb_event(b, 4, EV_EFI_ACTION, "Calling EFI Application from Boot Option", 40);
        elb_event_measured(b, 9, EV_EVENT_TAG, "initrd bytes", 12,
                           "\xec\x22\x3b\x8f\x0d\x00\x00\x00Linux initrd", 21);
        elb_event_measured(b, 11, EV_IPL, "kernel", 6, ".linux", 7);
}

static struct eventlog *parse_ok(const struct elb *b) {
        struct eventlog *l = NULL;
        struct errmsg e = {};
        int r = eventlog_parse(b->buf, b->size, &l, &e);

        cr_assert_eq(r, 0, "eventlog_parse = %d: %s", r, errmsg_str(&e));
        cr_assert_not_null(l);
        return l;
}

/* Refused with -EBADMSG, a reason containing each needle, nothing returned. */
static void assert_refused_n(const void *p, size_t n, const char *needle, const char *needle2) {
        struct eventlog *l = NULL;
        struct errmsg e = {};
        int r = eventlog_parse(p, n, &l, &e);

        cr_assert_eq(r, -EBADMSG, "eventlog_parse = %d, want -EBADMSG (%s)", r, errmsg_str(&e));
        cr_assert_null(l);
        cr_assert_not_null(strstr(e.text, needle), "reason \"%s\" lacks \"%s\"", e.text, needle);
        if (needle2)
                cr_assert_not_null(strstr(e.text, needle2), "reason \"%s\" lacks \"%s\"", e.text, needle2);
}

static void assert_refused(const struct elb *b, const char *needle, const char *needle2) {
        assert_refused_n(b->buf, b->size, needle, needle2);
}

static void replay_ok(const struct eventlog *l, struct eventlog_pcrs *p) {
        struct errmsg e = {};
        int r = eventlog_replay(l, p, &e);

        cr_assert_eq(r, 0, "eventlog_replay = %d: %s", r, errmsg_str(&e));
}

/* --- parsing --------------------------------------------------------------- */

Test(eventlog_parse, fields_of_a_small_log) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct elb b;
        const struct eventlog_event *ev;

        build_small(&b);
        l = parse_ok(&b);
        cr_assert_eq(l->n_events, b.n_events);
        cr_assert_eq(l->n_algs, 2);
        cr_assert_eq(l->algs[0].id, EVENTLOG_ALG_SHA1);
        cr_assert_eq(l->algs[0].size, 20);
        cr_assert_eq(l->algs[1].id, EVENTLOG_ALG_SHA256);
        cr_assert_eq(l->algs[1].size, 32);
        cr_assert_eq(l->spec_version_major, 2);
        cr_assert_eq(l->uintn_size, 2);

        ev = &l->events[0];
        cr_assert_eq(ev->type, EV_NO_ACTION);
        cr_assert_eq(ev->n_digests, 1);
        cr_assert_eq(ev->digests[0].alg, EVENTLOG_ALG_SHA1);

        ev = &l->events[3]; /* SecureBoot */
        cr_assert_eq(ev->index, 3);
        cr_assert_eq(ev->pcr, 7);
        cr_assert_eq(ev->type, EV_EFI_VARIABLE_DRIVER_CONFIG);
        cr_assert_eq(ev->offset, b.ends[2]);
        cr_assert_eq(ev->offset + ev->size, b.ends[3]);
        cr_assert_eq(ev->n_digests, 2);
        cr_assert_eq(ev->data_size, 32 + 20 + 1);
        cr_assert_eq(ev->data, l->raw + ev->offset + ev->size - ev->data_size);
        cr_assert_not_null(eventlog_event_digest(ev, EVENTLOG_ALG_SHA256));
        cr_assert_null(eventlog_event_digest(ev, EVENTLOG_ALG_SHA384));
        elb_free(&b);
}

Test(eventlog_parse, copies_the_input) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct elb b;
        uint8_t want;

        build_small(&b);
        l = parse_ok(&b);
        want = l->events[4].data[0];
        memset(b.buf, 0xee, b.size);
        cr_assert_eq(l->events[4].data[0], want);
        elb_free(&b);
}

Test(eventlog_parse, truncated_at_every_offset) {
        struct elb b;
        size_t boundary = 0;

        build_small(&b);
        /* A log cut between two events is a well-formed shorter log: only
         * the quoted PCR values reveal it (see explain tests). A cut
         * anywhere else is refused, naming where. */
        for (size_t k = 0; k < b.size; k++) {
                struct eventlog *l = NULL;
                struct errmsg e = {};
                int r = eventlog_parse(b.buf, k, &l, &e);

                if (boundary < b.n_events && b.ends[boundary] == k) {
                        cr_assert_eq(r, 0, "cut at event boundary %zu refused: %s", k, e.text);
                        cr_assert_eq(l->n_events, boundary + 1);
                        boundary++;
                } else {
                        cr_assert_eq(r, -EBADMSG, "cut at %zu: %d (%s)", k, r, e.text);
                        cr_assert_null(l);
                        cr_assert(k == 0 || strstr(e.text, "offset 0x"), "cut at %zu: \"%s\" names no offset", k,
                                  e.text);
                        cr_assert(k == 0 || strstr(e.text, "truncated") || strstr(e.text, "exceeds") ||
                                          strstr(e.text, "shorter"),
                                  "cut at %zu: \"%s\"", k, e.text);
                }
                eventlog_free(l);
        }
        elb_free(&b);
}

Test(eventlog_parse, truncation_reason_names_the_field) {
        struct elb b;

        build_small(&b);
        /* In the SHA-256 digest of the first TCG_PCR_EVENT2. */
        assert_refused_n(b.buf, FIRST_EVENT2 + 12 + 2 + 20 + 2 + 5, "event 1 at offset 0x45",
                         "truncated in digest 1 (sha256)");
        /* In its event data. */
        assert_refused_n(b.buf, b.ends[1] - 1, "event 1", "truncated in event data");
        elb_free(&b);
}

Test(eventlog_parse, refuses_empty) {
        assert_refused_n("", 0, "empty", NULL);
}

Test(eventlog_parse, refuses_trailing_bytes) {
        struct elb b;

        build_small(&b);
        elb_put(&b, (const uint8_t[3]) {}, 3);
        assert_refused(&b, "truncated in pcrIndex", NULL);
        elb_free(&b);
}

Test(eventlog_parse, refuses_more_than_max_events) {
        struct elb *b = calloc(1, sizeof(*b));
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;

        elb_init_default(b);
        for (unsigned i = 1; i < EVENTLOG_MAX_EVENTS; i++)
                elb_event(b, 16, EV_NO_ACTION, NULL, 0);
        l = parse_ok(b); /* exactly the limit */
        cr_assert_eq(l->n_events, EVENTLOG_MAX_EVENTS);
        elb_event(b, 16, EV_NO_ACTION, NULL, 0);
        assert_refused(b, "more than 16384 events", NULL);
        elb_free(b);
        free(b);
}

/* The first TCG_PCR_EVENT2 of a default log with its digests.count, the
 * first digest's hashAlg, or its eventSize replaced. */
static void build_one_event(struct elb *b) {
        elb_init_default(b);
        elb_event(b, 4, EV_EFI_ACTION, "x", 1);
}

Test(eventlog_parse, refuses_absurd_digest_count) {
        struct elb b;

        build_one_event(&b);
        elb_poke32(&b, FIRST_EVENT2 + 8, UINT32_MAX);
        assert_refused(&b, "digests.count 4294967295 differs from the 2 algorithm(s)", "offset 0x45");
        elb_poke32(&b, FIRST_EVENT2 + 8, 0);
        assert_refused(&b, "digests.count 0", NULL);
        elb_poke32(&b, FIRST_EVENT2 + 8, 1);
        assert_refused(&b, "digests.count 1", NULL);
        elb_poke32(&b, FIRST_EVENT2 + 8, 3);
        assert_refused(&b, "digests.count 3", NULL);
        elb_free(&b);
}

Test(eventlog_parse, refuses_absurd_event_size) {
        struct elb b;
        size_t size_at;

        build_one_event(&b);
        size_at = b.size - 1 - 4;
        elb_poke32(&b, size_at, UINT32_MAX);
        assert_refused(&b, "eventSize 4294967295 exceeds the limit", "event 1 at offset 0x45");
        elb_poke32(&b, size_at, EVENTLOG_MAX_EVENT_SIZE + 1);
        assert_refused(&b, "exceeds the limit", NULL);
        elb_poke32(&b, size_at, 2);
        assert_refused(&b, "truncated in event data", NULL);
        elb_free(&b);
}

Test(eventlog_parse, refuses_unknown_algorithm_in_digest) {
        struct elb b;

        build_one_event(&b);
        /* hashAlg of digest 0: sha1 -> an unknown id, then sha384 which
         * the Spec ID event does not list, then sha256 twice. */
        b.buf[FIRST_EVENT2 + 12] = 0x99;
        assert_refused(&b, "digest 0: algorithm 0x0099 (n/a) is not in the Spec ID event", "offset 0x45");
        b.buf[FIRST_EVENT2 + 12] = 0x0c;
        assert_refused(&b, "algorithm 0x000c (sha384) is not in the Spec ID event", NULL);
        elb_free(&b);
}

Test(eventlog_parse, refuses_duplicate_digest) {
        struct elb b;
        uint8_t ev[4 + 4 + 4 + 2 * (2 + 32) + 4];
        size_t off = 0;

        elb_init(&b, (const uint16_t[]) { 0x000b, 0x000c }, 2);
        /* Hand-made: two sha256 digests where sha256 + sha384 belong. */
        memset(ev, 0, sizeof(ev));
        ev[off] = 4, off += 4;
        ev[off] = 7, ev[off + 3] = 0x80, off += 4;
        ev[off] = 2, off += 4;
        ev[off] = 0x0b, off += 2 + 32;
        ev[off] = 0x0b, off += 2 + 32;
        elb_put(&b, ev, sizeof(ev));
        assert_refused(&b, "digest 1: a second sha256 digest", NULL);
        elb_free(&b);
}

Test(eventlog_parse, refuses_pcr_index_out_of_range) {
        struct elb b;

        build_one_event(&b);
        elb_poke32(&b, FIRST_EVENT2, 24);
        assert_refused(&b, "pcrIndex 24 is not a PCR", NULL);
        elb_free(&b);
}

/* --- the Spec ID event ------------------------------------------------------ */

/* Offsets into the default Spec ID event. */
#define SPEC_TYPE 4
#define SPEC_SIZE 28
#define SPEC_DATA 32
#define SPEC_MAJOR (SPEC_DATA + 21)
#define SPEC_UINTN (SPEC_DATA + 23)
#define SPEC_NALGS (SPEC_DATA + 24)
#define SPEC_ALG0 (SPEC_DATA + 28)

Test(eventlog_spec_id, refuses_missing_spec_id) {
        struct elb b;

        /* A TPM 1.2 style first event: EV_SEPARATOR in SHA-1 format. */
        build_one_event(&b);
        elb_poke32(&b, SPEC_TYPE, EV_SEPARATOR);
        assert_refused(&b, "eventType 0x00000004 is not EV_NO_ACTION", "does not start with the Spec ID event");
        elb_free(&b);
}

Test(eventlog_spec_id, refuses_sha1_log_signature) {
        struct elb b;

        build_one_event(&b);
        memcpy(b.buf + SPEC_DATA, "Spec ID Event00", 16);
        assert_refused(&b, "marks a SHA-1 (TPM 1.2) log", NULL);
        memcpy(b.buf + SPEC_DATA, "Spec ID Event04", 16);
        assert_refused(&b, "signature is not \"Spec ID Event03\"", NULL);
        elb_free(&b);
}

Test(eventlog_spec_id, refuses_bad_header_fields) {
        struct elb b;

        build_one_event(&b);
        elb_poke32(&b, 0, 1);
        assert_refused(&b, "pcrIndex 1 is not 0", "event 0 at offset 0x0");
        elb_poke32(&b, 0, 0);
        b.buf[SPEC_MAJOR] = 1;
        assert_refused(&b, "specVersionMajor 1 is not 2", NULL);
        b.buf[SPEC_MAJOR] = 2;
        b.buf[SPEC_UINTN] = 3;
        assert_refused(&b, "uintnSize 3", NULL);
        b.buf[SPEC_UINTN] = 2;
        elb_poke32(&b, SPEC_NALGS, 0);
        assert_refused(&b, "numberOfAlgorithms 0 is not between 1 and 8", NULL);
        elb_poke32(&b, SPEC_NALGS, 9);
        assert_refused(&b, "numberOfAlgorithms 9", NULL);
        elb_poke32(&b, SPEC_NALGS, 3); /* the list then runs into vendorInfoSize */
        assert_refused(&b, "truncated in Spec ID", NULL);
        elb_poke32(&b, SPEC_NALGS, 2);
        elb_poke32(&b, SPEC_SIZE, 8);
        assert_refused(&b, "shorter than a TCG_EfiSpecIDEvent", NULL);
        elb_poke32(&b, SPEC_SIZE, 0x10000);
        assert_refused(&b, "eventDataSize 65536 exceeds", NULL);
        elb_free(&b);
}

Test(eventlog_spec_id, refuses_digest_size_mismatch) {
        struct elb b;

        build_one_event(&b);
        b.buf[SPEC_ALG0 + 4 + 2] = 20; /* sha256 declared as 20 bytes */
        assert_refused(&b, "algorithm sha256 has digestSize 20, not 32", NULL);
        b.buf[SPEC_ALG0 + 4 + 2] = 0;
        assert_refused(&b, "digestSize 0", NULL);
        b.buf[SPEC_ALG0 + 4 + 2] = 65;
        assert_refused(&b, "digestSize 65", NULL);
        elb_free(&b);
}

Test(eventlog_spec_id, refuses_duplicate_algorithm) {
        struct elb b;

        build_one_event(&b);
        b.buf[SPEC_ALG0] = 0x0b;
        b.buf[SPEC_ALG0 + 2] = 32;
        assert_refused(&b, "algorithm 0x000b is listed twice", NULL);
        elb_free(&b);
}

Test(eventlog_spec_id, refuses_bytes_after_vendor_info) {
        struct elb b;

        build_one_event(&b);
        /* Claim one vendor byte more than the event data holds... */
        b.buf[SPEC_ALG0 + 8] = 1;
        assert_refused(&b, "truncated in Spec ID vendorInfo", NULL);
        /* ... or a data size one larger than the fields. */
        b.buf[SPEC_ALG0 + 8] = 0;
        elb_poke32(&b, SPEC_SIZE, 16 + 12 + 8 + 1 + 1);
        assert_refused(&b, "1 bytes after vendorInfo", NULL);
        elb_free(&b);
}

Test(eventlog_spec_id, unknown_algorithm_parses_but_is_not_replayed) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;

        build_one_event(&b);
        /* Rename sha1 (20 bytes) to an algorithm we do not know. */
        b.buf[SPEC_ALG0] = 0x42;
        b.buf[FIRST_EVENT2 + 12] = 0x42;
        l = parse_ok(&b);
        replay_ok(l, &p);
        cr_assert_eq(p.banks[0].alg, 0x0042);
        cr_assert_not(p.banks[0].replayed);
        cr_assert(p.banks[1].replayed);
        cr_assert_arr_eq(p.banks[1].pcr[4], b.ref[1][4], 32);
        elb_free(&b);
}

/* --- replay ------------------------------------------------------------------ */

static void assert_replay_equals_reference(const struct elb *b, const struct eventlog_pcrs *p) {
        cr_assert_eq(p->n_banks, b->n_algs);
        for (unsigned i = 0; i < b->n_algs; i++) {
                cr_assert_eq(p->banks[i].alg, b->algs[i]);
                cr_assert(p->banks[i].replayed);
                for (unsigned pcr = 0; pcr < 24; pcr++)
                        cr_assert_arr_eq(p->banks[i].pcr[pcr], b->ref[i][pcr], b->sizes[i], "bank %u PCR %u", i,
                                         pcr);
        }
}

Test(eventlog_replay, equals_reference_every_bank) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;

        elb_init(&b, (const uint16_t[]) { 0x0004, 0x000b, 0x000c, 0x000d }, 4);
        for (uint32_t i = 0; i < 40; i++) {
                char s[32];
                snprintf(s, sizeof(s), "event %u", i);
                elb_event(&b, i % 24, EV_ACTION, s, strlen(s));
        }
        l = parse_ok(&b);
        replay_ok(l, &p);
        assert_replay_equals_reference(&b, &p);
        cr_assert_eq(p.extended, 0xffffff);
        cr_assert_not(p.has_startup_locality);
        elb_free(&b);
}

Test(eventlog_replay, drtm_pcrs_reset_to_all_ones) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;
        uint8_t ones[32], zero[32] = {};

        memset(ones, 0xff, sizeof(ones));
        build_one_event(&b);
        l = parse_ok(&b);
        replay_ok(l, &p);
        for (unsigned i = 0; i < 24; i++)
                if (i != 4)
                        cr_assert_arr_eq(p.banks[1].pcr[i], i >= 17 && i <= 22 ? ones : zero, 32, "PCR %u", i);
        cr_assert_eq(p.extended, 1u << 4);
        elb_free(&b);
}

Test(eventlog_replay, no_action_is_not_extended) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;
        size_t digest_at;

        build_one_event(&b);
        digest_at = b.size;
        elb_event(&b, 4, EV_NO_ACTION, "SP800-155 Event", 16);
        /* Even with a non-zero digest. */
        memset(b.buf + digest_at + 12 + 2, 0xab, 20);
        l = parse_ok(&b);
        replay_ok(l, &p);
        assert_replay_equals_reference(&b, &p);
        elb_free(&b);
}

Test(eventlog_replay, startup_locality_sets_pcr0) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;

        elb_init_default(&b);
        elb_startup_locality(&b, 3);
        elb_event(&b, 0, EV_S_CRTM_VERSION, (const uint8_t[2]) {}, 2);
        l = parse_ok(&b);
        replay_ok(l, &p);
        cr_assert(p.has_startup_locality);
        cr_assert_eq(p.startup_locality, 3);
        assert_replay_equals_reference(&b, &p);
        elb_free(&b);
}

Test(eventlog_replay, startup_locality_alone_is_pcr0_value) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;
        uint8_t want[32] = { [31] = 3 };

        elb_init_default(&b);
        elb_startup_locality(&b, 3);
        l = parse_ok(&b);
        replay_ok(l, &p);
        cr_assert_arr_eq(p.banks[1].pcr[0], want, 32);
        cr_assert_eq(p.extended, 0);
        elb_free(&b);
}

static void assert_replay_refused(const struct elb *b, const char *needle) {
        _cleanup_(eventlog_freep) struct eventlog *l = parse_ok(b);
        struct eventlog_pcrs p;
        struct errmsg e = {};
        int r = eventlog_replay(l, &p, &e);

        cr_assert_eq(r, -EBADMSG, "eventlog_replay = %d (%s)", r, e.text);
        cr_assert_not_null(strstr(e.text, needle), "reason \"%s\" lacks \"%s\"", e.text, needle);
}

Test(eventlog_replay, refuses_startup_locality_after_pcr0_extend) {
        struct elb b;

        elb_init_default(&b);
        elb_event(&b, 0, EV_S_CRTM_VERSION, (const uint8_t[2]) {}, 2);
        elb_startup_locality(&b, 3);
        assert_replay_refused(&b, "event 2 at offset 0x");
        assert_replay_refused(&b, "StartupLocality event after PCR 0 was extended");
        elb_free(&b);
}

Test(eventlog_replay, refuses_second_startup_locality) {
        struct elb b;

        elb_init_default(&b);
        elb_startup_locality(&b, 0);
        elb_startup_locality(&b, 3);
        assert_replay_refused(&b, "a second StartupLocality event");
        elb_free(&b);
}

Test(eventlog_replay, refuses_malformed_startup_locality) {
        struct elb b;

        elb_init_default(&b);
        elb_startup_locality(&b, 7);
        assert_replay_refused(&b, "malformed StartupLocality event");
        elb_free(&b);

        elb_init_default(&b);
        elb_event(&b, 0, EV_NO_ACTION, "StartupLocality\0\0\0", 18);
        assert_replay_refused(&b, "malformed StartupLocality event (PCR 0, 18 bytes");
        elb_free(&b);

        elb_init_default(&b);
        elb_event(&b, 3, EV_NO_ACTION, "StartupLocality\0\3", 17);
        assert_replay_refused(&b, "(PCR 3,");
        elb_free(&b);
}

Test(eventlog_replay, refuses_log_without_sha256) {
        struct elb b;

        elb_init(&b, (const uint16_t[]) { 0x0004 }, 1);
        elb_event(&b, 4, EV_EFI_ACTION, "x", 1);
        assert_replay_refused(&b, "no SHA-256 bank");
        elb_free(&b);
}

Test(eventlog_replay, real_values_of_an_ovmf_like_log) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_pcrs p;
        struct elb b;

        build_small(&b);
        l = parse_ok(&b);
        replay_ok(l, &p);
        assert_replay_equals_reference(&b, &p);
        /* The separator-only PCRs have the well-known value
         * SHA-256(zero || SHA-256(00000000)). */
        cr_assert_arr_eq(p.banks[1].pcr[1],
                         "\x3d\x45\x8c\xfe\x55\xcc\x03\xea\x1f\x44\x3f\x15\x62\xbe\xec\x8d"
                         "\xf5\x1c\x75\xe1\x4a\x9f\xcf\x9a\x72\x34\xa1\x3f\x19\x8e\x79\x69",
                         32);
        elb_free(&b);
}

/* --- descriptions ------------------------------------------------------------ */

static char *describe_last(const struct elb *b) {
        _cleanup_(eventlog_freep) struct eventlog *l = parse_ok(b);
        char *s = NULL;

        cr_assert_eq(eventlog_event_describe(&l->events[l->n_events - 1], &s), 0);
        return s;
}

static void assert_describes(uint32_t type, const void *data, size_t n, const char *want) {
        _cleanup_free_ char *s = NULL;
        struct elb b;

        elb_init_default(&b);
        elb_event(&b, 4, type, data, n);
        s = describe_last(&b);
        cr_assert_not_null(strstr(s, want), "description \"%s\" lacks \"%s\"", s, want);
        for (const char *c = s; *c; c++)
                cr_assert((unsigned char) *c >= 0x20 && *c != 0x7f, "control character in \"%s\"", s);
        elb_free(&b);
}

Test(eventlog_describe, strings) {
        assert_describes(EV_EFI_ACTION, "Exit Boot Services Invocation", 29, "\"Exit Boot Services Invocation\"");
        assert_describes(EV_ACTION, "Returning from INT 19h\0", 23, "\"Returning from INT 19h\"");
        assert_describes(EV_IPL, "grub_cmd: linux /vmlinuz\0", 25, "\"grub_cmd: linux /vmlinuz\"");
        /* systemd-stub describes sections in UTF-16. */
        assert_describes(EV_IPL, ".\0l\0i\0n\0u\0x\0\0\0", 14, "\".linux\"");
        assert_describes(EV_S_CRTM_VERSION, "\0\0", 2, "\"\"");
        assert_describes(EV_POST_CODE, "POST CODE", 9, "\"POST CODE\"");
}

Test(eventlog_describe, escapes_control_characters_and_quotes) {
        assert_describes(EV_EFI_ACTION, "a\"b\x1b[31m", 9, "\"a\\\"b\\x1b[31m\"");
        assert_describes(EV_IPL, "x\xffy", 3, "3 bytes: 78ff79");
}

Test(eventlog_describe, separator) {
        assert_describes(EV_SEPARATOR, (const uint8_t[4]) {}, 4, "separator");
        assert_describes(EV_SEPARATOR, "\1\0\0\0", 4, "error");
}

Test(eventlog_describe, firmware_blob) {
        assert_describes(EV_POST_CODE, "\0\0\x82\0\0\0\0\0\0\0\x20\0\0\0\0\0", 16,
                         "firmware blob at 0x820000, length 0x200000");
        assert_describes(EV_EFI_PLATFORM_FIRMWARE_BLOB2, "\3DXE\0\0\x82\0\0\0\0\0\0\0\x20\0\0\0\0\0", 20,
                         "\"DXE\" at 0x820000, length 0x200000");
}

Test(eventlog_describe, efi_variable) {
        uint8_t var[256];
        size_t n;

        n = elb_variable_data(var, sizeof(var), guid_global, "SecureBoot", (const uint8_t[]) { 1 }, 1);
        assert_describes(EV_EFI_VARIABLE_DRIVER_CONFIG, var, n,
                         "\"SecureBoot\" of EFI global variable (8be4df61-93ca-11d2-aa0d-00e098032b8c): 1 bytes: 01");
        n = elb_variable_data(var, sizeof(var), guid_global, "BootOrder", "\1\0\0\0", 4);
        assert_describes(EV_EFI_VARIABLE_BOOT, var, n, "\"BootOrder\" of EFI global variable");
        assert_describes(EV_EFI_VARIABLE_BOOT, var, n, ": Boot0001,Boot0000");
        /* Name length beyond the data. */
        var[16] = 200;
        assert_describes(EV_EFI_VARIABLE_DRIVER_CONFIG, var, n, "malformed UEFI_VARIABLE_DATA");
}

Test(eventlog_describe, boot_entry_with_device_path) {
        /* EFI_LOAD_OPTION: active, description "UEFI Disk", path
         * PciRoot(0x0)/Pci(0x1,0x1)/HD(1,GPT,..)/\EFI\BOOT\BOOTX64.EFI */
        uint8_t opt[512], var[640], *p = opt;
        const char *desc = "UEFI Disk", *file = "\\EFI\\BOOT\\BOOTX64.EFI";
        size_t n, fp_start;

        memset(opt, 0, sizeof(opt));
        p[0] = 1, p += 4 + 2;
        for (const char *c = desc; *c; c++)
                *p = (uint8_t) *c, p += 2;
        p += 2;
        fp_start = (size_t) (p - opt);
        memcpy(p, "\x02\x01\x0c\x00\xd0\x41\x03\x0a\x00\x00\x00\x00", 12), p += 12;
        memcpy(p, "\x01\x01\x06\x00\x01\x01", 6), p += 6;
        memcpy(p, "\x04\x01\x2a\x00", 4), p[4] = 1, p[8] = 0x28, p[16] = 0x44, p[40] = 2, p[41] = 2;
        p[24] = 0xab, p += 42;
        p[0] = 4, p[1] = 4, p[2] = (uint8_t) (4 + 2 * (strlen(file) + 1)), p += 4;
        for (const char *c = file; *c; c++)
                *p = (uint8_t) *c, p += 2;
        p += 2;
        memcpy(p, "\x7f\xff\x04\x00", 4), p += 4;
        opt[4] = (uint8_t) ((size_t) (p - opt) - fp_start);
        n = elb_variable_data(var, sizeof(var), guid_global, "Boot0001", opt, (size_t) (p - opt));
        assert_describes(EV_EFI_VARIABLE_BOOT2, var, n,
                         "\"Boot0001\" of EFI global variable (8be4df61-93ca-11d2-aa0d-00e098032b8c): \"UEFI Disk\", "
                         "path PciRoot(0x0)/Pci(0x1,0x1)/HD(1,GPT,");
        assert_describes(EV_EFI_VARIABLE_BOOT2, var, n,
                         ",0x28,0x44)/\"\\\\EFI\\\\BOOT\\\\BOOTX64.EFI\"");
}

Test(eventlog_describe, image_load_event) {
        uint8_t d[32 + 24] = {};

        d[8] = 0x00, d[9] = 0x10; /* ImageLengthInMemory 0x1000 */
        d[24] = 24;                /* LengthOfDevicePath */
        memcpy(d + 32, "\x04\x06\x14\x00", 4);
        memset(d + 36, 0x11, 16);
        memcpy(d + 52, "\x7f\xff\x04\x00", 4);
        assert_describes(EV_EFI_BOOT_SERVICES_APPLICATION, d, sizeof(d),
                         "image length 4096, path FvFile(11111111-1111-1111-1111-111111111111)");
        d[24] = 25;
        assert_describes(EV_EFI_BOOT_SERVICES_APPLICATION, d, sizeof(d), "malformed UEFI_IMAGE_LOAD_EVENT");
        d[24] = 24;
        d[34] = 0x40; /* node length beyond the path */
        assert_describes(EV_EFI_BOOT_SERVICES_DRIVER, d, sizeof(d), "malformed node: length 64");
}

Test(eventlog_describe, linux_tagged_events) {
        assert_describes(EV_EVENT_TAG, "\xec\x22\x3b\x8f\x0d\x00\x00\x00Linux initrd", 21,
                         "tag 0x8f3b22ec (Linux initrd): \"Linux initrd\"");
        assert_describes(EV_EVENT_TAG, "\xed\x22\x3b\x8f\x1a\x00\x00\x00LOADED_IMAGE::LoadOptions", 34,
                         "tag 0x8f3b22ed (Linux command line): \"LOADED_IMAGE::LoadOptions\"");
        assert_describes(EV_EVENT_TAG, "\xec\x22\x3b\x8f\xff\x00\x00\x00Linux initrd", 21,
                         "malformed TCG_PCClientTaggedEvent");
}

Test(eventlog_describe, gpt_and_handoff_tables) {
        uint8_t gpt[100 + 128] = {}, tables[8 + 24] = {};

        memcpy(gpt, "EFI PART", 8);
        gpt[84] = 128; /* SizeOfPartitionEntry */
        gpt[92] = 1;   /* NumberOfPartitions */
        memcpy(gpt + 100, "\x28\x73\x2a\xc1\x1f\xf8\xd2\x11\xba\x4b\x00\xa0\xc9\x3e\xc9\x3b", 16);
        memcpy(gpt + 100 + 56, "E\0S\0P\0", 6);
        assert_describes(EV_EFI_GPT_EVENT, gpt, sizeof(gpt),
                         "1 partition(s): EFI system partition (c12a7328-f81f-11d2-ba4b-00a0c93ec93b) \"ESP\"");
        gpt[92] = 2;
        assert_describes(EV_EFI_GPT_EVENT, gpt, sizeof(gpt), "malformed UEFI_GPT_DATA");

        tables[0] = 1;
        memcpy(tables + 8, "\x31\x2d\x9d\xeb\x88\x2d\xd3\x11\x9a\x16\x00\x90\x27\x3f\xc1\x4d", 16);
        assert_describes(EV_EFI_HANDOFF_TABLES, tables, sizeof(tables), "1 table(s): SMBIOS table");
}

Test(eventlog_describe, spec_id_and_no_action) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        _cleanup_free_ char *s = NULL;
        struct elb b;

        build_small(&b);
        l = parse_ok(&b);
        cr_assert_eq(eventlog_event_describe(&l->events[0], &s), 0);
        cr_assert_str_eq(s, "Spec ID Event03: spec 2.0 errata 0, UINTN 8 bytes, platform class 0, algorithms sha1 sha256");
        free(s);
        cr_assert_eq(eventlog_event_describe(&l->events[1], &s), 0);
        cr_assert_str_eq(s, "StartupLocality: 0");
        elb_free(&b);
}

Test(eventlog_describe, names) {
        cr_assert_str_eq(eventlog_type_to_string(EV_EFI_BOOT_SERVICES_APPLICATION), "EV_EFI_BOOT_SERVICES_APPLICATION");
        cr_assert_str_eq(eventlog_type_to_string(EV_EVENT_TAG), "EV_EVENT_TAG");
        cr_assert_null(eventlog_type_to_string(0x1234));
        cr_assert_str_eq(eventlog_alg_to_string(EVENTLOG_ALG_SHA384), "sha384");
        cr_assert_null(eventlog_alg_to_string(0x99));
}

Test(eventlog_describe, data_check) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct elb b;

        build_small(&b);
        l = parse_ok(&b);
        cr_assert_eq(eventlog_event_check_data(&l->events[3]), EVENTLOG_DATA_MATCHES); /* variable */
        cr_assert_eq(eventlog_event_check_data(&l->events[4]), EVENTLOG_DATA_MATCHES); /* separator */
        cr_assert_eq(eventlog_event_check_data(&l->events[13]), EVENTLOG_DATA_NOT_CHECKED); /* tag */
        eventlog_free(TAKE_PTR(l));

        /* A separator whose data says "error" but whose digest is of 0. */
        elb_free(&b);
        elb_init_default(&b);
        elb_event_measured(&b, 4, EV_SEPARATOR, (const uint8_t[4]) {}, 4, "\1\0\0\0", 4);
        l = parse_ok(&b);
        cr_assert_eq(eventlog_event_check_data(&l->events[1]), EVENTLOG_DATA_DIFFERS);
        elb_free(&b);
}

/* --- explanation --------------------------------------------------------------- */

static void policy_from(struct policy *p, unsigned pcr, const uint8_t v[32], bool warn_only) {
        p->pcr[pcr].set = true;
        p->pcr[pcr].warn_only = warn_only;
        memcpy(p->pcr[pcr].expected, v, 32);
}

static struct eventlog_explanation *explain_ok(const struct elb *b, const struct policy *p,
                                               const uint8_t (*reported)[32]) {
        _cleanup_(eventlog_freep) struct eventlog *l = parse_ok(b);
        struct eventlog_explanation *x = NULL;
        struct errmsg e = {};
        int r = eventlog_explain(l, p, reported, &x, &e);

        cr_assert_eq(r, 0, "eventlog_explain = %d: %s", r, errmsg_str(&e));
        return x;
}

Test(eventlog_explain, matching_policy) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        struct policy p = {};
        struct elb b;

        build_small(&b);
        for (unsigned i = 0; i < 12; i++)
                policy_from(&p, i, b.ref[1][i], false);
        x = explain_ok(&b, &p, NULL);
        cr_assert_eq(x->n_enforced_mismatch, 0);
        cr_assert_eq(x->n_warn_mismatch, 0);
        for (unsigned i = 0; i < 12; i++) {
                cr_assert_eq(x->pcr[i].verdict, PCR_MATCH);
                cr_assert_eq(x->pcr[i].n_events, 0);
        }
        cr_assert_eq(x->pcr[12].verdict, PCR_NOT_IN_POLICY);
        elb_free(&b);
}

/* The policy was made for a boot without the last PCR 4 event: explain
 * names the events of PCR 4 and says after which one the policy's value
 * was reached. */
Test(eventlog_explain, names_the_unexpected_event) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        struct policy p = {};
        struct elb b;
        uint8_t before[32];

        build_small(&b);
        memcpy(before, b.ref[1][4], 32);
        policy_from(&p, 4, before, false);
        policy_from(&p, 7, b.ref[1][7], false);
        elb_event_measured(&b, 4, EV_EFI_BOOT_SERVICES_APPLICATION, "evil", 4, NULL, 0);
        x = explain_ok(&b, &p, NULL);
        cr_assert_eq(x->n_enforced_mismatch, 1);
        cr_assert_eq(x->pcr[4].verdict, PCR_MISMATCH_ENFORCED);
        cr_assert_arr_eq(x->pcr[4].replayed, b.ref[1][4], 32);
        /* PCR 4 events: separator #8, EV_EFI_ACTION #12, the new one #15. */
        cr_assert_eq(x->pcr[4].n_events, 3);
        cr_assert_eq(x->pcr[4].events[0], 8);
        cr_assert_eq(x->pcr[4].events[1], 12);
        cr_assert_eq(x->pcr[4].events[2], 15);
        cr_assert_eq(x->pcr[4].expected_after, 12);
        cr_assert_not(x->pcr[4].expected_at_start);
        cr_assert_eq(x->pcr[7].verdict, PCR_MATCH);
        cr_assert_eq(x->pcr[7].n_events, 0);
        elb_free(&b);
}

Test(eventlog_explain, changed_event_is_not_a_prefix) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        struct policy p = {};
        struct elb b, other;

        /* The policy comes from a boot whose PCR 11 kernel differed. */
        build_small(&b);
        elb_init_default(&other);
        elb_event_measured(&other, 11, EV_IPL, "other kernel", 12, ".linux", 7);
        policy_from(&p, 11, other.ref[1][11], true);
        x = explain_ok(&b, &p, NULL);
        cr_assert_eq(x->n_enforced_mismatch, 0);
        cr_assert_eq(x->n_warn_mismatch, 1);
        cr_assert_eq(x->pcr[11].verdict, PCR_MISMATCH_WARN);
        cr_assert_eq(x->pcr[11].n_events, 1);
        cr_assert_eq(x->pcr[11].events[0], 14);
        cr_assert_eq(x->pcr[11].expected_after, EVENTLOG_NONE);
        cr_assert_not(x->pcr[11].expected_at_start);
        elb_free(&b);
        elb_free(&other);
}

Test(eventlog_explain, policy_expects_unextended_pcr) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        struct policy p = {};
        struct elb b;
        uint8_t zero[32] = {};

        build_small(&b);
        policy_from(&p, 9, zero, false);
        x = explain_ok(&b, &p, NULL);
        cr_assert_eq(x->pcr[9].verdict, PCR_MISMATCH_ENFORCED);
        cr_assert(x->pcr[9].expected_at_start);
        elb_free(&b);
}

/* A log cut at an event boundary parses; the reported (quoted) values
 * show that it is incomplete, and where the log stops. */
Test(eventlog_explain, detects_log_not_matching_reported_pcrs) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        uint8_t reported[24][32];
        struct policy p = {};
        struct errmsg e = {};
        struct elb b;

        build_small(&b);
        for (unsigned i = 0; i < 24; i++)
                memcpy(reported[i], b.ref[1][i], 32);
        policy_from(&p, 11, b.ref[1][11], false);

        /* The whole log reproduces the reported values. */
        x = explain_ok(&b, &p, (const uint8_t(*)[32]) reported);
        cr_assert_eq(x->n_reported_mismatch, 0);
        cr_assert(x->pcr[11].has_reported);
        x = eventlog_explanation_free(x);

        /* Without its last event (PCR 11) it does not. */
        cr_assert_eq(eventlog_parse(b.buf, b.ends[b.n_events - 2], &l, &e), 0);
        cr_assert_eq(eventlog_explain(l, &p, (const uint8_t(*)[32]) reported, &x, &e), 0);
        cr_assert_eq(x->n_reported_mismatch, 1);
        cr_assert(x->pcr[11].reported_mismatch);
        cr_assert_eq(x->pcr[11].reported_after, EVENTLOG_NONE);
        cr_assert_eq(x->pcr[11].verdict, PCR_MISMATCH_ENFORCED);
        cr_assert(x->pcr[11].expected_at_start == false);
        x = eventlog_explanation_free(x);

        /* The log has an event the TPM never saw: the reported value is
         * reached after the event before it. */
        elb_event_measured(&b, 11, EV_IPL, "forged", 6, ".initrd", 8);
        l = eventlog_free(l);
        cr_assert_eq(eventlog_parse(b.buf, b.size, &l, &e), 0);
        cr_assert_eq(eventlog_explain(l, &p, (const uint8_t(*)[32]) reported, &x, &e), 0);
        cr_assert(x->pcr[11].reported_mismatch);
        cr_assert_eq(x->pcr[11].reported_after, 14);
        cr_assert_eq(x->pcr[11].n_events, 2);
        elb_free(&b);
}

Test(eventlog_explain, refuses_what_replay_refuses) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct eventlog_explanation *x = NULL;
        struct policy p = {};
        struct errmsg e = {};
        struct elb b;

        elb_init(&b, (const uint16_t[]) { 0x0004 }, 1);
        elb_event(&b, 4, EV_EFI_ACTION, "x", 1);
        l = parse_ok(&b);
        cr_assert_eq(eventlog_explain(l, &p, NULL, &x, &e), -EBADMSG);
        cr_assert_null(x);
        cr_assert_not_null(strstr(e.text, "SHA-256"));
        elb_free(&b);
}

/* --- real logs ---------------------------------------------------------------
 * tests/data/eventlog: OVMF + swtpm booting a UKI (systemd-stub 252, Debian
 * kernel, busybox initramfs), without and with Secure Boot; the guest read
 * its PCRs from /sys/class/tpm/tpm0/pcr-<bank>/ (see the README there). */

static void data_path(const char *name, char *buf, size_t size) {
        const char *b = getenv("ARCA_BUILD_DIR");

        /* make check sets ARCA_BUILD_DIR to <source>/build*. */
        if (b && *b)
                snprintf(buf, size, "%s/../tests/data/eventlog/%s", b, name);
        else
                snprintf(buf, size, "tests/data/eventlog/%s", name);
}

static struct eventlog *load_real(const char *name) {
        struct eventlog *l = NULL;
        struct errmsg e = {};
        char path[512];
        int r;

        data_path(name, path, sizeof(path));
        r = eventlog_load(path, &l, &e);
        cr_assert_eq(r, 0, "eventlog_load(%s) = %d: %s", path, r, errmsg_str(&e));
        return l;
}

/* The guest's PCR values of one bank. */
static void load_guest_pcrs(const char *name, const char *bank, uint8_t out[24][64], size_t size) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *buf = NULL;
        json_object *b, *v;
        struct errmsg e = {};
        char path[512];
        size_t n;

        data_path(name, path, sizeof(path));
        cr_assert_eq(read_full_file(path, 1 << 20, &buf, &n), 0, "cannot read %s", path);
        cr_assert_eq(json_parse(buf, n, &o, &e), 0, "%s: %s", path, e.text);
        cr_assert(json_object_object_get_ex(o, bank, &b), "%s: no bank %s", path, bank);
        for (unsigned i = 0; i < 24; i++) {
                char key[4];
                snprintf(key, sizeof(key), "%u", i);
                cr_assert(json_object_object_get_ex(b, key, &v));
                cr_assert_eq(hex_decode_exact(json_object_get_string(v), out[i], size), 0);
        }
}

static void assert_real_log_replays_to_guest_pcrs(const char *log, const char *pcrs) {
        static const struct {
                uint16_t alg;
                const char *name;
                size_t size;
        } banks[] = {
                { EVENTLOG_ALG_SHA1, "sha1", 20 },
                { EVENTLOG_ALG_SHA256, "sha256", 32 },
                { EVENTLOG_ALG_SHA384, "sha384", 48 },
                { EVENTLOG_ALG_SHA512, "sha512", 64 },
        };
        _cleanup_(eventlog_freep) struct eventlog *l = load_real(log);
        struct eventlog_pcrs p;

        replay_ok(l, &p);
        cr_assert_eq(p.n_banks, 4);
        for (size_t b = 0; b < ELEMENTSOF(banks); b++) {
                const struct eventlog_bank *bank = eventlog_pcrs_bank(&p, banks[b].alg);
                uint8_t guest[24][64];

                cr_assert_not_null(bank);
                cr_assert(bank->replayed);
                load_guest_pcrs(pcrs, banks[b].name, guest, banks[b].size);
                for (unsigned i = 0; i < 24; i++) {
                        /* PCR 10 is IMA's (the kernel's boot_aggregate), not
                         * the firmware's: the log cannot reproduce it. */
                        if (i == 10)
                                cr_assert(memcmp(bank->pcr[i], guest[i], banks[b].size) != 0);
                        else
                                cr_assert_arr_eq(bank->pcr[i], guest[i], banks[b].size, "%s: %s PCR %u", log,
                                                 banks[b].name, i);
                }
        }
}

Test(eventlog_real, ovmf_uki_replays_to_guest_pcrs) {
        assert_real_log_replays_to_guest_pcrs("ovmf-uki.bin", "ovmf-uki-pcrs.json");
}

Test(eventlog_real, ovmf_uki_secureboot_replays_to_guest_pcrs) {
        assert_real_log_replays_to_guest_pcrs("ovmf-uki-secureboot.bin", "ovmf-uki-secureboot-pcrs.json");
}

Test(eventlog_real, every_checkable_event_data_matches_its_digest) {
        const char *logs[] = { "ovmf-uki.bin", "ovmf-uki-secureboot.bin" };

        for (size_t k = 0; k < ELEMENTSOF(logs); k++) {
                _cleanup_(eventlog_freep) struct eventlog *l = load_real(logs[k]);
                size_t checked = 0;

                for (size_t i = 0; i < l->n_events; i++) {
                        enum eventlog_data_check c = eventlog_event_check_data(&l->events[i]);
                        cr_assert_neq(c, EVENTLOG_DATA_DIFFERS, "%s: event %zu", logs[k], i);
                        checked += c == EVENTLOG_DATA_MATCHES;
                }
                cr_assert_geq(checked, 25, "%s: only %zu events checked", logs[k], checked);
        }
}

Test(eventlog_real, descriptions) {
        static const struct {
                size_t index;
                const char *want;
        } want[] = {
                { 2, "firmware blob at 0x820000, length 0xe0000" },
                { 4, "\"SecureBoot\" of EFI global variable (8be4df61-93ca-11d2-aa0d-00e098032b8c): 1 bytes: 01" },
                { 7, "\"db\" of image security database (d719b2cb-3d3a-4596-a3bc-dad00e67656f): 1 X.509 certificate(s)" },
                { 12, "\"Boot0001\" of EFI global variable (8be4df61-93ca-11d2-aa0d-00e098032b8c): \"UEFI QEMU DVD-ROM "
                      "QM00005 \", path PciRoot(0x0)/Pci(0x1f,0x2)/Sata(0x2,0xffff,0x0)" },
                { 25, "certificate \"/C=US/ST=Colorado/L=Fort Collins/O=SnakeOil\"" },
                { 26, "1 partition(s): EFI system partition (c12a7328-f81f-11d2-ba4b-00a0c93ec93b) \"ESP\"" },
                { 27, "path PciRoot(0x0)/Pci(0x2,0x0)/HD(1,GPT,5d5d5d5d-1111-2222-3333-444455556666,0x800,0x20000)/"
                      "\"\\\\EFI\\\\BOOT\\\\BOOTX64.EFI\"" },
                { 28, "\".linux\"" },
                { 36, "tag 0x8f3b22ed (Linux command line): \"LOADED_IMAGE::LoadOptions\"" },
                { 37, "tag 0x8f3b22ec (Linux initrd): \"Linux initrd\"" },
                { 39, "\"Exit Boot Services Returned with Success\"" },
        };
        _cleanup_(eventlog_freep) struct eventlog *l = load_real("ovmf-uki-secureboot.bin");

        cr_assert_eq(l->n_events, 40);
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                _cleanup_free_ char *s = NULL;
                cr_assert_eq(eventlog_event_describe(&l->events[want[i].index], &s), 0);
                cr_assert_not_null(strstr(s, want[i].want), "event %zu: \"%s\" lacks \"%s\"", want[i].index, s,
                                   want[i].want);
        }
}

/* The owner made the policy from the boot without Secure Boot; this node
 * booted the signed UKI with Secure Boot on. */
Test(eventlog_real, explain_secure_boot_node_against_plain_policy) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        _cleanup_(eventlog_freep) struct eventlog *l = load_real("ovmf-uki-secureboot.bin");
        uint8_t plain[24][64], guest[24][64], reported[24][32];
        struct policy p = {};
        struct errmsg e = {};

        load_guest_pcrs("ovmf-uki-pcrs.json", "sha256", plain, 32);
        load_guest_pcrs("ovmf-uki-secureboot-pcrs.json", "sha256", guest, 32);
        for (unsigned i = 0; i < 24; i++)
                memcpy(reported[i], guest[i], 32);
        policy_from(&p, 4, plain[4], false);
        policy_from(&p, 7, plain[7], false);
        policy_from(&p, 9, plain[9], false);
        policy_from(&p, 11, plain[11], false);
        policy_from(&p, 0, plain[0], true);

        cr_assert_eq(eventlog_explain(l, &p, (const uint8_t(*)[32]) reported, &x, &e), 0, "%s", e.text);
        /* The UKI's signature changes its Authenticode hash (PCR 4) and
         * Secure Boot changes PCR 7; kernel, initrd, command line and the
         * UKI's sections (PCRs 9 and 11) are the same. PCR 0 differs:
         * another OVMF build (warn-only). */
        cr_assert_eq(x->pcr[4].verdict, PCR_MISMATCH_ENFORCED);
        cr_assert_eq(x->pcr[7].verdict, PCR_MISMATCH_ENFORCED);
        cr_assert_eq(x->pcr[9].verdict, PCR_MATCH);
        cr_assert_eq(x->pcr[11].verdict, PCR_MATCH);
        cr_assert_eq(x->pcr[0].verdict, PCR_MISMATCH_WARN);
        cr_assert_eq(x->n_enforced_mismatch, 2);
        /* PCR 4: "Calling", separator, "Returning", "Calling" and the boot
         * application (the UKI) at #27. With Secure Boot on, systemd-stub's
         * loading of the kernel is not measured into PCR 4 (without it, it
         * is: #35 of ovmf-uki.bin). */
        cr_assert_eq(x->pcr[4].n_events, 5);
        cr_assert_eq(x->pcr[4].events[4], 27);
        cr_assert_eq(l->events[27].type, EV_EFI_BOOT_SERVICES_APPLICATION);
        cr_assert_eq(x->pcr[4].expected_after, EVENTLOG_NONE);
        /* The log reproduces every quoted PCR but IMA's PCR 10. */
        cr_assert_eq(x->n_reported_mismatch, 1);
        cr_assert(x->pcr[10].reported_mismatch);
        cr_assert_eq(x->pcr[10].n_events, 0);
}
