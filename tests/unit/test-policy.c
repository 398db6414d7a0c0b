/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "macro.h"
#include "openssl-util.h"
#include "policy.h"

#define H4 "4a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60616263646566676869"
#define H9 "0000000000000000000000000000000000000000000000000000000000000009"
#define H31 "00112233445566778899aabbccddeeff00112233445566778899aabbccddee"
#define H33 H31 "ff00"

static void assert_parses(const char *json, struct policy *p) {
        struct errmsg e = {};
        int r = policy_parse(json, strlen(json), p, &e);
        cr_assert_eq(r, 0, "policy_parse(%s) = %d: %s", json, r, errmsg_str(&e));
}

/* Refused with -EBADMSG, the reason contains `needle`, and the output is
 * left alone. */
static void assert_refused(const char *json, const char *needle) {
        struct errmsg e = {};
        struct policy p;
        int r;

        memset(&p, 0xaa, sizeof(p));
        r = policy_parse(json, strlen(json), &p, &e);
        cr_assert_eq(r, -EBADMSG, "policy_parse(%s) = %d, want -EBADMSG (%s)", json, r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, needle), "reason \"%s\" does not contain \"%s\"", e.text, needle);
        for (size_t i = 0; i < sizeof(p); i++)
                cr_assert_eq(((uint8_t *) &p)[i], 0xaa, "output touched on failure");
}

static void digest_of(const char *hex, uint8_t out[32]) {
        for (unsigned i = 0; i < 32; i++)
                cr_assert_eq(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
}

/* --- parsing ------------------------------------------------------------- */

Test(policy_parse, object_form) {
        struct policy p;
        uint8_t want[32];

        assert_parses("{\"4\": {\"expected\": \"" H4 "\", \"warnOnly\": false}}", &p);
        digest_of(H4, want);
        cr_assert(p.pcr[4].set);
        cr_assert_not(p.pcr[4].warn_only);
        cr_assert_arr_eq(p.pcr[4].expected, want, 32);
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                if (i != 4)
                        cr_assert_not(p.pcr[i].set, "PCR %u set", i);
}

Test(policy_parse, bare_string_is_enforced) {
        struct policy p;
        uint8_t want[32];

        assert_parses("{\"9\": \"" H9 "\"}", &p);
        digest_of(H9, want);
        cr_assert(p.pcr[9].set);
        cr_assert_not(p.pcr[9].warn_only);
        cr_assert_arr_eq(p.pcr[9].expected, want, 32);
}

Test(policy_parse, warn_only_true) {
        struct policy p;

        assert_parses("{\"11\": {\"expected\": \"" H4 "\", \"warnOnly\": true}}", &p);
        cr_assert(p.pcr[11].set);
        cr_assert(p.pcr[11].warn_only);
}

Test(policy_parse, warn_only_defaults_to_false) {
        struct policy p;

        assert_parses("{\"11\": {\"expected\": \"" H4 "\"}}", &p);
        cr_assert(p.pcr[11].set);
        cr_assert_not(p.pcr[11].warn_only);
}

Test(policy_parse, field_order_free) {
        struct policy p;

        assert_parses("{\"11\": {\"warnOnly\": true, \"expected\": \"" H4 "\"}}", &p);
        cr_assert(p.pcr[11].warn_only);
}

Test(policy_parse, uppercase_hex_accepted) {
        struct policy p;
        uint8_t want[32];

        assert_parses("{\"4\": \"4A4B4C4D4E4F505152535455565758595A5B5C5D5E5F60616263646566676869\"}", &p);
        digest_of(H4, want);
        cr_assert_arr_eq(p.pcr[4].expected, want, 32);
}

Test(policy_parse, all_indices_0_to_23) {
        char buf[4096];
        size_t n = 0;
        struct policy p;

        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{");
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n,
                                       "%s\"%u\": {\"expected\": \"%s\", \"warnOnly\": %s}", i ? ", " : "",
                                       i, H9, i % 2 ? "true" : "false");
        snprintf(buf + n, sizeof(buf) - n, "}\n");
        assert_parses(buf, &p);
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                cr_assert(p.pcr[i].set, "PCR %u not set", i);
                cr_assert_eq(p.pcr[i].warn_only, i % 2 == 1);
        }
}

Test(policy_parse, surrounding_whitespace_accepted) {
        struct policy p;

        assert_parses("\n  {\"0\": \"" H9 "\"}\n\n", &p);
        cr_assert(p.pcr[0].set);
}

Test(policy_parse, null_errmsg_accepted) {
        struct policy p;
        const char *json = "{\"24\": \"" H9 "\"}";

        cr_assert_eq(policy_parse(json, strlen(json), &p, NULL), -EBADMSG);
}

Test(policy_parse, rejects_unknown_index_24) {
        assert_refused("{\"24\": \"" H9 "\"}", "unknown PCR index \"24\"");
}

Test(policy_parse, rejects_negative_index) {
        assert_refused("{\"-1\": \"" H9 "\"}", "unknown PCR index \"-1\"");
}

Test(policy_parse, rejects_leading_zero_index) {
        assert_refused("{\"04\": \"" H9 "\"}", "unknown PCR index \"04\"");
        assert_refused("{\"00\": \"" H9 "\"}", "unknown PCR index \"00\"");
}

Test(policy_parse, rejects_non_numeric_index) {
        assert_refused("{\"x\": \"" H9 "\"}", "unknown PCR index \"x\"");
        assert_refused("{\"\": \"" H9 "\"}", "unknown PCR index \"\"");
        assert_refused("{\"4 \": \"" H9 "\"}", "unknown PCR index \"4 \"");
        assert_refused("{\"+4\": \"" H9 "\"}", "unknown PCR index \"+4\"");
        assert_refused("{\"100\": \"" H9 "\"}", "unknown PCR index \"100\"");
}

/* json-c decodes "\u0034" to "4" and cuts "4\u0000x" to "4"; neither is
 * how anyone spells an index. */
Test(policy_parse, rejects_escaped_index) {
        assert_refused("{\"\\u0034\": \"" H9 "\"}", "escape sequence in JSON key");
        assert_refused("{\"4\\u0000x\": \"" H9 "\"}", "NUL character");
}

/* Keys end up in logs: only printable ASCII, cut short. */
Test(policy_parse, unknown_key_shown_safely) {
        /* Raw control characters are refused before any key is shown. */
        assert_refused("{\"4\": \"" H9 "\", \"\x1b[31m\x01\": 1}", "control character in JSON string");
        assert_refused("{\"0123456789012345678901234567890123456789\": 1}",
                       "unknown PCR index \"01234567890123456789012345678901...\"");
        assert_refused("{\"4\": {\"\xc3\xa9\": 1}}", "PCR \"4\": unknown field '?"
                                                     "?'");
}

/* json-c keeps the last of duplicate keys; another parser might keep the
 * first. */
Test(policy_parse, rejects_duplicate_index) {
        assert_refused("{\"4\": \"" H9 "\", \"9\": \"" H9 "\", \"4\": \"" H4 "\"}",
                       "duplicate key \"4\"");
}

Test(policy_parse, rejects_duplicate_field) {
        assert_refused("{\"4\": {\"expected\": \"" H9 "\", \"expected\": \"" H4 "\"}}",
                       "duplicate key \"expected\" in \"4\"");
        assert_refused("{\"4\": {\"expected\": \"" H9 "\", \"warnOnly\": true, \"warnOnly\": false}}",
                       "duplicate key \"warnOnly\" in \"4\"");
}

Test(policy_parse, rejects_bad_hex) {
        assert_refused("{\"4\": {\"expected\": \""
                       "zz" H31 "\"}}",
                       "PCR \"4\": field 'expected' is not valid hex");
        /* The bare form. */
        assert_refused("{\"9\": \""
                       "0g" H31 "\"}",
                       "PCR \"9\": value is not valid hex");
        /* Odd number of digits. */
        assert_refused("{\"4\": {\"expected\": \"" H4 "0\"}}",
                       "PCR \"4\": field 'expected' is not valid hex");
        /* An escaped NUL must not end the string early. */
        assert_refused("{\"4\": {\"expected\": \"" H4 "\\u0000\"}}", "NUL character in JSON string");
}

Test(policy_parse, rejects_31_bytes) {
        assert_refused("{\"4\": {\"expected\": \"" H31 "\"}}",
                       "PCR \"4\": field 'expected' must be 32 bytes");
        assert_refused("{\"4\": {\"expected\": \"" H31 "\"}}", "got 31 bytes");
}

Test(policy_parse, rejects_33_bytes) {
        assert_refused("{\"4\": {\"expected\": \"" H33 "\"}}",
                       "PCR \"4\": field 'expected' must be 32 bytes");
        assert_refused("{\"4\": {\"expected\": \"" H33 "\"}}", "got 33 bytes");
        assert_refused("{\"9\": \"" H33 "\"}", "PCR \"9\": value must be 32 bytes");
}

Test(policy_parse, rejects_empty_digest) {
        assert_refused("{\"4\": \"\"}", "PCR \"4\": value must be 32 bytes");
}

Test(policy_parse, rejects_expected_wrong_type) {
        assert_refused("{\"4\": {\"expected\": 4}}", "PCR \"4\": field 'expected' must be a string");
        assert_refused("{\"4\": {\"expected\": null}}", "PCR \"4\": field 'expected' must be a string");
        assert_refused("{\"4\": {\"expected\": [\"" H4 "\"]}}",
                       "PCR \"4\": field 'expected' must be a string");
}

Test(policy_parse, rejects_warn_only_wrong_type) {
        assert_refused("{\"4\": {\"expected\": \"" H4 "\", \"warnOnly\": \"false\"}}",
                       "PCR \"4\": field 'warnOnly' must be a boolean");
        assert_refused("{\"4\": {\"expected\": \"" H4 "\", \"warnOnly\": 0}}",
                       "PCR \"4\": field 'warnOnly' must be a boolean");
        assert_refused("{\"4\": {\"expected\": \"" H4 "\", \"warnOnly\": null}}",
                       "PCR \"4\": field 'warnOnly' must be a boolean");
}

Test(policy_parse, rejects_entry_wrong_type) {
        assert_refused("{\"4\": 4}", "PCR \"4\": must be a hex string or an object");
        assert_refused("{\"4\": true}", "PCR \"4\": must be a hex string or an object");
        assert_refused("{\"4\": null}", "PCR \"4\": must be a hex string or an object");
        assert_refused("{\"4\": [\"" H4 "\"]}", "PCR \"4\": must be a hex string or an object");
}

Test(policy_parse, rejects_missing_expected) {
        assert_refused("{\"4\": {\"warnOnly\": true}}", "PCR \"4\": missing field 'expected'");
        assert_refused("{\"4\": {}}", "PCR \"4\": missing field 'expected'");
}

Test(policy_parse, rejects_unknown_field) {
        assert_refused("{\"4\": {\"expected\": \"" H4 "\", \"foo\": 1}}", "PCR \"4\": unknown field 'foo'");
        /* Case matters, as in Constellation's own files. */
        assert_refused("{\"4\": {\"expected\": \"" H4 "\", \"WarnOnly\": true}}",
                       "PCR \"4\": unknown field 'WarnOnly'");
        assert_refused("{\"4\": {\"expect\\u0065d\": \"" H4 "\"}}", "escape sequence in JSON key");
}

/* json-c's strict mode refuses these itself; the reason names the offset
 * of the first byte after the document. */
Test(policy_parse, rejects_trailing_garbage) {
        assert_refused("{\"4\": \"" H4 "\"} x", "invalid JSON at offset 74");
        assert_refused("{\"4\": \"" H4 "\"}{}", "invalid JSON at offset 73");
        assert_refused("{\"4\": \"" H4 "\"}\n\"9\"", "invalid JSON at offset 74");
}

Test(policy_parse, rejects_truncated) {
        assert_refused("{\"4\": \"" H4 "\"", "truncated");
        assert_refused("{\"4\": {\"expected\": \"" H4, "truncated");
}

Test(policy_parse, rejects_not_an_object) {
        assert_refused("[]", "policy must be a JSON object");
        assert_refused("\"" H4 "\"", "policy must be a JSON object");
        /* json_parse() needs the newline to see that a bare number or
         * literal has ended. */
        assert_refused("4\n", "policy must be a JSON object");
        assert_refused("true\n", "policy must be a JSON object");
}

Test(policy_parse, rejects_empty_policy) {
        assert_refused("{}", "policy lists no PCR");
        assert_refused("", "JSON");
}

/* json-c accepts single-quoted keys even in strict mode (values it
 * refuses itself). */
Test(policy_parse, rejects_single_quotes) {
        assert_refused("{'4': \"" H4 "\"}", "single-quoted");
        assert_refused("{\"4\": {'expected': \"" H4 "\"}}", "single-quoted");
        assert_refused("{\"4\": {\"expected\": '" H4 "'}}", "invalid JSON");
}

Test(policy_parse, rejects_oversized) {
        size_t n = POLICY_MAX_SIZE + 1;
        _cleanup_free_ char *buf = malloc(n);
        struct errmsg e = {};
        struct policy p;

        cr_assert_not_null(buf);
        memset(buf, ' ', n);
        buf[0] = '{';
        buf[n - 1] = '}';
        cr_assert_eq(policy_parse(buf, n, &p, &e), -EFBIG);
        cr_assert_not_null(strstr(e.text, "larger than"));
}

/* --- checking ------------------------------------------------------------ */

static void pcrs_from_policy(const struct policy *p, uint8_t pcrs[POLICY_PCR_COUNT][32]) {
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                if (p->pcr[i].set)
                        memcpy(pcrs[i], p->pcr[i].expected, 32);
                else
                        memset(pcrs[i], 0x5a, 32);
}

Test(policy_check, match) {
        struct policy p;
        uint8_t pcrs[POLICY_PCR_COUNT][32];
        struct policy_result res;
        struct errmsg e = {};

        assert_parses("{\"4\": \"" H4 "\", \"9\": {\"expected\": \"" H9 "\", \"warnOnly\": true}}", &p);
        pcrs_from_policy(&p, pcrs);
        cr_assert_eq(policy_check(&p, pcrs, &res, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(res.n_enforced_mismatch, 0);
        cr_assert_eq(res.n_warn_mismatch, 0);
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                cr_assert_eq(res.verdict[i], i == 4 || i == 9 ? PCR_MATCH : PCR_NOT_IN_POLICY, "PCR %u", i);
        cr_assert_eq(e.text[0], 0);
}

Test(policy_check, enforced_mismatch_names_pcr_and_values) {
        struct policy p;
        uint8_t pcrs[POLICY_PCR_COUNT][32];
        struct policy_result res;
        struct errmsg e = {};
        char want[200];

        assert_parses("{\"4\": \"" H4 "\", \"9\": \"" H9 "\"}", &p);
        pcrs_from_policy(&p, pcrs);
        pcrs[4][31] ^= 1;
        cr_assert_eq(policy_check(&p, pcrs, &res, &e), -EPERM);
        snprintf(want, sizeof(want), "PCR 4: expected %s, actual %.62s68", H4, H4);
        cr_assert_str_eq(e.text, want);
        cr_assert_eq(res.verdict[4], PCR_MISMATCH_ENFORCED);
        cr_assert_eq(res.verdict[9], PCR_MATCH);
        cr_assert_eq(res.n_enforced_mismatch, 1);
        cr_assert_eq(res.n_warn_mismatch, 0);
}

Test(policy_check, first_enforced_mismatch_is_named_all_are_counted) {
        struct policy p;
        uint8_t pcrs[POLICY_PCR_COUNT][32];
        struct policy_result res;
        struct errmsg e = {};

        assert_parses("{\"9\": \"" H9 "\", \"4\": \"" H4 "\", \"7\": {\"expected\": \"" H9
                      "\", \"warnOnly\": true}}",
                      &p);
        pcrs_from_policy(&p, pcrs);
        pcrs[9][0] ^= 0x80;
        pcrs[4][0] ^= 0x80;
        pcrs[7][0] ^= 0x80;
        cr_assert_eq(policy_check(&p, pcrs, &res, &e), -EPERM);
        cr_assert(strncmp(e.text, "PCR 4: ", 7) == 0, "%s", e.text);
        cr_assert_eq(res.n_enforced_mismatch, 2);
        cr_assert_eq(res.n_warn_mismatch, 1);
        cr_assert_eq(res.verdict[9], PCR_MISMATCH_ENFORCED);
        cr_assert_eq(res.verdict[7], PCR_MISMATCH_WARN);
}

Test(policy_check, warn_only_mismatch_passes) {
        struct policy p;
        uint8_t pcrs[POLICY_PCR_COUNT][32];
        struct policy_result res;
        struct errmsg e = {};

        assert_parses("{\"4\": \"" H4 "\", \"9\": {\"expected\": \"" H9 "\", \"warnOnly\": true}}", &p);
        pcrs_from_policy(&p, pcrs);
        memset(pcrs[9], 0xff, 32);
        cr_assert_eq(policy_check(&p, pcrs, &res, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(res.n_warn_mismatch, 1);
        cr_assert_eq(res.n_enforced_mismatch, 0);
        cr_assert_eq(res.verdict[9], PCR_MISMATCH_WARN);
        cr_assert_eq(res.verdict[4], PCR_MATCH);
}

/* PCRs outside the policy may hold anything. */
Test(policy_check, pcrs_outside_policy_ignored) {
        struct policy p;
        uint8_t pcrs[POLICY_PCR_COUNT][32];
        struct policy_result res;

        assert_parses("{\"4\": \"" H4 "\"}", &p);
        pcrs_from_policy(&p, pcrs);
        memset(pcrs[0], 0x11, 32);
        memset(pcrs[23], 0x22, 32);
        cr_assert_eq(policy_check(&p, pcrs, &res, NULL), 0);
        cr_assert_eq(res.verdict[0], PCR_NOT_IN_POLICY);
        cr_assert_eq(res.verdict[23], PCR_NOT_IN_POLICY);
}

Test(policy_check, verdict_names) {
        cr_assert_str_eq(pcr_verdict_to_string(PCR_NOT_IN_POLICY), "not-in-policy");
        cr_assert_str_eq(pcr_verdict_to_string(PCR_MATCH), "match");
        cr_assert_str_eq(pcr_verdict_to_string(PCR_MISMATCH_ENFORCED), "mismatch");
        cr_assert_str_eq(pcr_verdict_to_string(PCR_MISMATCH_WARN), "mismatch-warn-only");
        cr_assert_null(pcr_verdict_to_string((enum pcr_verdict) 42));
}

/* --- serialization ------------------------------------------------------- */

Test(policy_to_json, round_trips) {
        struct policy p, q;
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};
        size_t n;

        assert_parses("{\"23\": \"" H9 "\", \"0\": {\"expected\": \"" H4
                      "\", \"warnOnly\": true}, \"10\": \"" H4 "\"}",
                      &p);
        cr_assert_eq(policy_to_json(&p, &s), 0);
        n = strlen(s);
        cr_assert(n > 0 && s[n - 1] == '\n', "no trailing newline");
        cr_assert_eq(policy_parse(s, n, &q, &e), 0, "%s\n%s", errmsg_str(&e), s);
        cr_assert_eq(memcmp(&p, &q, sizeof(p)), 0);
        /* Ascending, and warnOnly spelled out. */
        cr_assert(strstr(s, "\"0\"") < strstr(s, "\"10\"") && strstr(s, "\"10\"") < strstr(s, "\"23\""),
                  "%s", s);
        cr_assert_not_null(strstr(s, "\"warnOnly\": false"), "%s", s);
        cr_assert_not_null(strstr(s, "\"warnOnly\": true"), "%s", s);
}

/* --- signatures ---------------------------------------------------------- */

static const char policy_json[] =
        "{\n  \"4\": {\"expected\": \"" H4 "\", \"warnOnly\": false},\n  \"9\": \"" H9 "\"\n}\n";

static char tmpdir[64];

static const char *tmp(const char *name) {
        static char bufs[4][256];
        static unsigned next;
        char *b = bufs[next++ % ELEMENTSOF(bufs)];

        snprintf(b, sizeof(bufs[0]), "%s/%s", tmpdir, name);
        return b;
}

/* Run a shell command in the temp dir; its exit status, or -1. */
_printf_(1, 2) static int run(const char *fmt, ...) {
        char cmd[2048];
        va_list ap;
        int n, st;

        va_start(ap, fmt);
        n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        cr_assert(n > 0 && (size_t) n < sizeof(cmd));
        st = system(cmd);
        if (st < 0 || !WIFEXITED(st))
                return -1;
        return WEXITSTATUS(st);
}

static void write_file(const char *path, const void *data, size_t len) {
        FILE *f = fopen(path, "we");

        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        cr_assert_eq(fwrite(data, 1, len, f), len);
        cr_assert_eq(fclose(f), 0);
}

static void sig_setup(void) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/arca-test-policy-XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
}

static void sig_teardown(void) {
        if (tmpdir[0])
                run("rm -rf '%s'", tmpdir);
}

static void need_openssl_cli(void) {
        if (run("command -v openssl >/dev/null 2>&1") != 0)
                cr_skip_test("the openssl command line tool is not installed");
}

/* An EC key NAME.pem with public half NAME.pub. */
static void make_key(const char *name, const char *curve) {
        cr_assert_eq(run("cd '%s' && openssl ecparam -genkey -name %s -noout -out %s.pem 2>err && "
                         "openssl pkey -in %s.pem -pubout -out %s.pub 2>>err",
                         tmpdir, curve, name, name, name),
                     0, "key generation failed");
}

/* Sign file with key NAME.pem via the CLI into sig. */
static void cli_sign(const char *name, const char *file, const char *sig) {
        cr_assert_eq(run("cd '%s' && openssl dgst -sha256 -sign %s.pem -out %s %s 2>err", tmpdir, name, sig,
                         file),
                     0, "openssl dgst -sign failed");
}

TestSuite(policy_sig, .init = sig_setup, .fini = sig_teardown);

Test(policy_sig, load_without_signature) {
        struct policy p;
        struct errmsg e = {};

        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        cr_assert_eq(policy_load(tmp("policy.json"), NULL, NULL, &p, &e), 0, "%s", errmsg_str(&e));
        cr_assert(p.pcr[4].set && p.pcr[9].set);
}

Test(policy_sig, load_verifies_cli_signature) {
        struct policy p;
        struct errmsg e = {};

        need_openssl_cli();
        make_key("owner", "prime256v1");
        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        cli_sign("owner", "policy.json", "policy.sig");
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("policy.sig"), tmp("owner.pub"), &p, &e), 0, "%s",
                     errmsg_str(&e));
        cr_assert(p.pcr[4].set && p.pcr[9].set);
}

Test(policy_sig, policy_sign_verifies_with_cli) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_len;
        char bad[sizeof(policy_json)];

        need_openssl_cli();
        make_key("owner", "prime256v1");
        cr_assert_eq(pem_read_privkey_file(tmp("owner.pem"), &key), 0);
        cr_assert_eq(policy_sign(policy_json, strlen(policy_json), key, &sig, &sig_len), 0);
        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        write_file(tmp("policy.sig"), sig, sig_len);
        cr_assert_eq(
                run("cd '%s' && openssl dgst -sha256 -verify owner.pub -signature policy.sig policy.json "
                    ">out 2>&1",
                    tmpdir),
                0, "openssl dgst -verify refused our signature");

        /* And the CLI does refuse when the bytes differ, so the check above
         * can fail. */
        memcpy(bad, policy_json, sizeof(bad));
        bad[10] ^= 1;
        write_file(tmp("bad.json"), bad, strlen(bad));
        cr_assert_eq(run("cd '%s' && openssl dgst -sha256 -verify owner.pub -signature policy.sig bad.json "
                         ">out 2>&1",
                         tmpdir),
                     1);
}

Test(policy_sig, sign_then_verify_in_process) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        size_t sig_len;
        struct errmsg e = {};

        cr_assert_eq(ec_p256_generate(&key), 0);
        cr_assert_eq(policy_sign(policy_json, strlen(policy_json), key, &sig, &sig_len), 0);
        cr_assert_eq(policy_verify_signature(policy_json, strlen(policy_json), sig, sig_len, key, &e), 0,
                     "%s", errmsg_str(&e));
        sig[sig_len - 1] ^= 1;
        cr_assert_eq(policy_verify_signature(policy_json, strlen(policy_json), sig, sig_len, key, &e),
                     -EBADMSG);
        cr_assert_not_null(strstr(e.text, "signature"), "%s", e.text);
}

Test(policy_sig, load_refuses_one_byte_change) {
        struct policy p;
        struct errmsg e = {};
        char changed[sizeof(policy_json)];
        char *d;

        need_openssl_cli();
        make_key("owner", "prime256v1");
        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        cli_sign("owner", "policy.json", "policy.sig");

        /* Change one digit of PCR 4: still a valid policy, so only the
         * signature check can refuse it. */
        memcpy(changed, policy_json, sizeof(changed));
        d = strstr(changed, H4);
        cr_assert_not_null(d);
        d[0] = d[0] == '4' ? '5' : '4';
        cr_assert_eq(policy_parse(changed, strlen(changed), &p, NULL), 0);
        write_file(tmp("policy.json"), changed, strlen(changed));

        memset(&p, 0xaa, sizeof(p));
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("policy.sig"), tmp("owner.pub"), &p, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "signature does not verify"), "%s", e.text);
        cr_assert_not_null(strstr(e.text, "policy.json"), "%s", e.text);
        cr_assert_eq(((uint8_t *) &p)[0], 0xaa);
}

Test(policy_sig, load_refuses_signature_by_other_key) {
        struct policy p;
        struct errmsg e = {};

        need_openssl_cli();
        make_key("owner", "prime256v1");
        make_key("mallory", "prime256v1");
        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        cli_sign("mallory", "policy.json", "policy.sig");
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("policy.sig"), tmp("mallory.pub"), &p, NULL), 0);
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("policy.sig"), tmp("owner.pub"), &p, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "signature does not verify"), "%s", e.text);
}

/* A valid signature by a key of another type is still refused: the format
 * is ECDSA P-256. */
Test(policy_sig, load_refuses_non_p256_key) {
        struct policy p;
        struct errmsg e = {};

        need_openssl_cli();
        make_key("p384", "secp384r1");
        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        cli_sign("p384", "policy.json", "policy.sig");
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("policy.sig"), tmp("p384.pub"), &p, &e), -EINVAL);
        cr_assert_not_null(strstr(e.text, "P-256"), "%s", e.text);
}

Test(policy_sig, load_refuses_garbage_signature) {
        struct policy p;
        struct errmsg e = {};

        need_openssl_cli();
        make_key("owner", "prime256v1");
        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        write_file(tmp("empty.sig"), "", 0);
        write_file(tmp("junk.sig"), "0123456789", 10);
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("empty.sig"), tmp("owner.pub"), &p, &e), -EBADMSG);
        memset(&e, 0, sizeof(e));
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("junk.sig"), tmp("owner.pub"), &p, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "signature"), "%s", e.text);
}

Test(policy_sig, load_needs_signature_and_key_together) {
        struct policy p;
        struct errmsg e = {};

        write_file(tmp("policy.json"), policy_json, strlen(policy_json));
        cr_assert_eq(policy_load(tmp("policy.json"), tmp("policy.sig"), NULL, &p, &e), -EINVAL);
        cr_assert_eq(policy_load(tmp("policy.json"), NULL, tmp("owner.pub"), &p, &e), -EINVAL);
}

Test(policy_sig, load_refuses_oversized_and_missing_files) {
        _cleanup_free_ char *big = malloc(POLICY_MAX_SIZE + 1);
        struct policy p;
        struct errmsg e = {};

        cr_assert_not_null(big);
        memset(big, ' ', POLICY_MAX_SIZE + 1);
        write_file(tmp("big.json"), big, POLICY_MAX_SIZE + 1);
        cr_assert_eq(policy_load(tmp("big.json"), NULL, NULL, &p, &e), -EFBIG);
        cr_assert_eq(policy_load(tmp("missing.json"), NULL, NULL, &p, NULL), -ENOENT);
}

Test(policy_sig, load_names_file_on_parse_error) {
        struct policy p;
        struct errmsg e = {};
        const char *bad = "{\"24\": \"" H9 "\"}";

        write_file(tmp("policy.json"), bad, strlen(bad));
        cr_assert_eq(policy_load(tmp("policy.json"), NULL, NULL, &p, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "policy.json"), "%s", e.text);
        cr_assert_not_null(strstr(e.text, "unknown PCR index \"24\""), "%s", e.text);
}
