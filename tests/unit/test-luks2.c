/* SPDX-License-Identifier: Apache-2.0 */
/* State-disk header checks (lib/luks2.c) from the attacker's side: a real
 * header made by cryptsetup 2.6 in a qemu guest (tests/data/luks2, see the
 * README there) is accepted; every other test changes exactly one thing in
 * it, rebuilds both binary headers with valid checksums (as an attacker
 * with the disk can), and expects a refusal naming that thing. A header
 * formatted on the host by libcryptsetup without integrity is refused too. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "luks2.h"

#define HDR 16384

static uint8_t *real;
static size_t real_size;
static char real_json[HDR];

static void data_path(const char *name, char *buf, size_t size) {
        const char *b = getenv("ARCA_BUILD_DIR");
        if (b && *b)
                snprintf(buf, size, "%s/../tests/data/luks2/%s", b, name);
        else
                snprintf(buf, size, "tests/data/luks2/%s", name);
}

static void load_real(void) {
        char path[512];
        int r;

        data_path("cryptsetup-2.6-integrity.hdr", path, sizeof(path));
        r = read_full_file(path, 1 << 20, (char **) &real, &real_size);
        cr_assert_eq(r, 0, "cannot read %s: %s", path, strerror(-r));
        cr_assert_geq(real_size, 2 * HDR);
        memcpy(real_json, real + 4096, HDR - 4096);
}

TestSuite(luks2, .init = load_real);

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static void checksum(uint8_t *h) {
        memset(h + 448, 0, 64);
        SHA256(h, HDR, h + 448);
}

/* Both headers from the real one's binary part, with `json` as metadata. */
static uint8_t *build(const char *json) {
        uint8_t *b = calloc(1, 2 * HDR);
        cr_assert(b);
        cr_assert_lt(strlen(json), HDR - 4096);
        memcpy(b, real, 4096);
        memcpy(b + 4096, json, strlen(json));
        checksum(b);
        memcpy(b + HDR, real + HDR, 4096);
        memcpy(b + HDR + 4096, json, strlen(json));
        checksum(b + HDR);
        return b;
}

/* The real JSON with the first occurrence of `from` replaced by `to`. */
static char *edit(const char *from, const char *to) {
        const char *p = strstr(real_json, from);
        char *out;
        cr_assert(p, "\"%s\" not in the real header", from);
        cr_assert(asprintf(&out, "%.*s%s%s", (int) (p - real_json), real_json, to, p + strlen(from)) > 0);
        return out;
}

static void expect_refused(const uint8_t *b, size_t len, const char *needle) {
        struct errmsg e = {};
        struct luks2_info info;
        int r = luks2_header_check(b, len, &info, &e);
        cr_assert_lt(r, 0, "accepted, expected a refusal naming \"%s\"", needle);
        cr_assert(strstr(e.text, needle), "refusal \"%s\" does not name \"%s\"", e.text, needle);
}

static void refused_edit(const char *from, const char *to, const char *needle) {
        char *j = edit(from, to);
        uint8_t *b = build(j);
        expect_refused(b, 2 * HDR, needle);
        free(b);
        free(j);
}

Test(luks2, real_cryptsetup_header_accepted) {
        struct errmsg e = {};
        struct luks2_info info = {};
        int r = luks2_header_check(real, real_size, &info, &e);
        cr_assert_eq(r, 0, "%s", e.text);
        cr_assert_eq(memcmp(info.uuid, real + 168, 36), 0);
        cr_assert_eq(strlen(info.uuid), 36);
        cr_assert_eq(info.hdr_size, HDR);
        cr_assert_eq(info.data_offset, 5242880);
        cr_assert_eq(info.keyslots_size, 4194304);
        cr_assert_eq(info.initialized, false);
        cr_assert(luks2_has_magic(real, real_size));
}

Test(luks2, rebuilt_header_accepted) {
        /* The builder itself must not be what makes the others fail. */
        uint8_t *b = build(real_json);
        struct errmsg e = {};
        cr_assert_eq(luks2_header_check(b, 2 * HDR, NULL, &e), 0, "%s", e.text);
        free(b);
}

Test(luks2, initialized_token_read) {
        char *j = edit("\"initialized\":false", "\"initialized\":true");
        uint8_t *b = build(j);
        struct luks2_info info = {};
        struct errmsg e = {};
        cr_assert_eq(luks2_header_check(b, 2 * HDR, &info, &e), 0, "%s", e.text);
        cr_assert(info.initialized);
        free(b);
        free(j);
}

Test(luks2, cipher_null_segment_refused) {
        refused_edit("\"encryption\":\"aes-xts-plain64\",\"sector_size\"",
                     "\"encryption\":\"cipher_null-ecb\",\"sector_size\"", "segments.0.encryption: \"cipher_null-ecb\"");
}

Test(luks2, other_cipher_refused) {
        refused_edit("\"encryption\":\"aes-xts-plain64\",\"sector_size\"",
                     "\"encryption\":\"aes-cbc-essiv:sha256\",\"sector_size\"", "segments.0.encryption");
}

Test(luks2, missing_integrity_refused) {
        refused_edit(",\"integrity\":{\"type\":\"hmac(sha256)\",\"journal_encryption\":\"none\",\"journal_integrity\":\"none\"}",
                     "", "segments.0.integrity: missing");
}

Test(luks2, weak_integrity_refused) {
        refused_edit("\"type\":\"hmac(sha256)\"", "\"type\":\"crc32c\"", "segments.0.integrity.type: \"crc32c\"");
}

Test(luks2, journal_encryption_refused) {
        refused_edit("\"journal_encryption\":\"none\"", "\"journal_encryption\":\"cbc(aes)\"",
                     "segments.0.integrity.journal_encryption");
}

Test(luks2, sector_size_512_refused) {
        refused_edit("\"sector_size\":4096", "\"sector_size\":512", "segments.0.sector_size: 512");
}

Test(luks2, fixed_segment_size_refused) {
        refused_edit("\"size\":\"dynamic\"", "\"size\":\"4096\"", "segments.0.size");
}

Test(luks2, iv_tweak_refused) {
        refused_edit("\"iv_tweak\":\"0\"", "\"iv_tweak\":\"7\"", "segments.0.iv_tweak");
}

Test(luks2, second_segment_refused) {
        refused_edit("\"segments\":{", "\"segments\":{\"1\":{\"type\":\"linear\",\"offset\":\"0\",\"size\":\"dynamic\"},",
                     "segments: 2 entries");
}

Test(luks2, unknown_segment_field_refused) {
        refused_edit("\"iv_tweak\":\"0\",", "\"iv_tweak\":\"0\",\"flags\":[\"backup-final\"],",
                     "segments.0: unknown field 'flags'");
}

Test(luks2, segment_overlapping_keyslots_refused) {
        refused_edit("\"offset\":\"5242880\"", "\"offset\":\"4096\"", "segments.0.offset");
}

Test(luks2, keyslot_cipher_null_refused) {
        refused_edit("\"encryption\":\"aes-xts-plain64\",\"key_size\":64",
                     "\"encryption\":\"cipher_null-ecb\",\"key_size\":64", "keyslots.0.area.encryption");
}

Test(luks2, keyslot_key_size_refused) {
        refused_edit("\"key_size\":96", "\"key_size\":64", "keyslots.0.key_size: 64");
}

Test(luks2, second_keyslot_refused) {
        refused_edit("\"keyslots\":{", "\"keyslots\":{\"1\":{},", "keyslots: 2 entries");
}

Test(luks2, keyslot_area_outside_refused) {
        refused_edit("\"offset\":\"32768\"", "\"offset\":\"8192\"", "keyslots.0.area");
}

Test(luks2, af_stripes_refused) {
        refused_edit("\"stripes\":4000", "\"stripes\":1", "keyslots.0.af.stripes: 1");
}

Test(luks2, unknown_kdf_refused) {
        refused_edit("\"type\":\"pbkdf2\",\"hash\"", "\"type\":\"scrypt\",\"hash\"",
                     "keyslots.0.kdf.type: \"scrypt\"");
}

Test(luks2, weak_kdf_hash_refused) {
        refused_edit("\"hash\":\"sha256\",\"iterations\"", "\"hash\":\"md5\",\"iterations\"",
                     "keyslots.0.kdf.hash: \"md5\"");
}

Test(luks2, digest_type_refused) {
        refused_edit("\"digests\":{\"0\":{\"type\":\"pbkdf2\"", "\"digests\":{\"0\":{\"type\":\"argon2id\"",
                     "digests.0.type");
}

Test(luks2, digest_segment_reference_refused) {
        refused_edit("\"segments\":[\"0\"]", "\"segments\":[]", "digests.0.segments");
}

Test(luks2, missing_token_refused) {
        char *j = edit("\"tokens\":{\"0\":{\"type\":\"arca-state-disk\",\"keyslots\":[],\"initialized\":false}}",
                       "\"tokens\":{}");
        uint8_t *b = build(j);
        expect_refused(b, 2 * HDR, "tokens: 0 entries");
        free(b);
        free(j);
}

Test(luks2, foreign_token_refused) {
        refused_edit("\"type\":\"arca-state-disk\"", "\"type\":\"systemd-tpm2\"", "tokens.0.type: \"systemd-tpm2\"");
}

Test(luks2, token_without_initialized_refused) {
        refused_edit("\"initialized\":false", "\"initialised\":false", "tokens.0: unknown field 'initialised'");
}

Test(luks2, token_initialized_not_bool_refused) {
        refused_edit("\"initialized\":false", "\"initialized\":\"yes\"", "tokens.0.initialized");
}

Test(luks2, config_flags_refused) {
        refused_edit("\"keyslots_size\":\"4194304\"", "\"keyslots_size\":\"4194304\",\"flags\":[\"allow-discards\"]",
                     "config: unknown field 'flags'");
}

Test(luks2, config_requirements_refused) {
        refused_edit("\"keyslots_size\":\"4194304\"",
                     "\"keyslots_size\":\"4194304\",\"requirements\":{\"mandatory\":[\"online-reencrypt\"]}",
                     "config: unknown field 'requirements'");
}

Test(luks2, extra_top_level_member_refused) {
        refused_edit("\"config\":{", "\"reencrypt\":{},\"config\":{", "unknown field 'reencrypt'");
}

Test(luks2, duplicate_key_refused) {
        refused_edit("\"sector_size\":4096,", "\"sector_size\":4096,\"sector_size\":4096,", "LUKS2 metadata");
}

Test(luks2, json_size_mismatch_refused) {
        refused_edit("\"json_size\":\"12288\"", "\"json_size\":\"28672\"", "config.json_size");
}

Test(luks2, checksum_mismatch_refused) {
        uint8_t *b = build(real_json);
        b[4096 + 10] ^= 0x20; /* change the JSON, keep the old checksum */
        expect_refused(b, 2 * HDR, "primary LUKS2 header: checksum mismatch");
        free(b);
}

Test(luks2, secondary_checksum_mismatch_refused) {
        uint8_t *b = build(real_json);
        b[HDR + 4096 + 10] ^= 0x20;
        expect_refused(b, 2 * HDR, "secondary LUKS2 header: checksum mismatch");
        free(b);
}

Test(luks2, secondary_different_refused) {
        /* Each copy valid on its own, but they disagree: libcryptsetup
         * could pick the secondary, so it must not differ. */
        char *j = edit("\"sector_size\":4096", "\"sector_size\":512");
        uint8_t *b = build(real_json), *o = build(j);
        memcpy(b + HDR, o + HDR, HDR);
        expect_refused(b, 2 * HDR, "primary and secondary headers differ");
        free(b);
        free(o);
        free(j);
}

Test(luks2, seqid_mismatch_refused) {
        uint8_t *b = build(real_json);
        put_be64(b + HDR + 16, 99);
        checksum(b + HDR);
        expect_refused(b, 2 * HDR, "seqid");
        free(b);
}

Test(luks2, version_1_refused) {
        uint8_t *b = build(real_json);
        b[7] = 1;
        checksum(b);
        expect_refused(b, 2 * HDR, "version 1");
        free(b);
}

Test(luks2, checksum_alg_refused) {
        uint8_t *b = build(real_json);
        memcpy(b + 72, "sha1\0\0", 6);
        checksum(b);
        expect_refused(b, 2 * HDR, "checksum_alg \"sha1\"");
        free(b);
}

Test(luks2, hdr_size_refused) {
        uint8_t *b = build(real_json);
        put_be64(b + 8, 12345);
        expect_refused(b, 2 * HDR, "hdr_size 12345");
        free(b);
}

Test(luks2, bad_uuid_refused) {
        uint8_t *b = build(real_json);
        memcpy(b + 168, "not-a-uuid", 11);
        checksum(b);
        memcpy(b + HDR + 168, "not-a-uuid", 11);
        checksum(b + HDR);
        expect_refused(b, 2 * HDR, "uuid \"not-a-uuid\"");
        free(b);
}

Test(luks2, no_magic_refused) {
        uint8_t zero[2 * HDR] = {};
        cr_assert_not(luks2_has_magic(zero, sizeof(zero)));
        expect_refused(zero, sizeof(zero), "no primary LUKS magic");
}

Test(luks2, truncated_refused) {
        expect_refused(real, HDR + 100, "need both headers");
        expect_refused(real, 100, "need 4096");
}

Test(luks2, garbage_after_json_refused) {
        uint8_t *b = build(real_json);
        b[HDR - 1] = 'x';
        checksum(b);
        b[2 * HDR - 1] = 'x';
        checksum(b + HDR);
        expect_refused(b, 2 * HDR, "data after the JSON text");
        free(b);
}

Test(luks2, token_roundtrip) {
        char buf[128];
        bool init = true;
        struct errmsg e = {};

        cr_assert_eq(luks2_token_format(false, buf, sizeof(buf)), 0);
        cr_assert_eq(luks2_token_parse(buf, strlen(buf), &init, &e), 0, "%s", e.text);
        cr_assert_not(init);
        cr_assert_eq(luks2_token_format(true, buf, sizeof(buf)), 0);
        cr_assert_eq(luks2_token_parse(buf, strlen(buf), &init, &e), 0, "%s", e.text);
        cr_assert(init);
        cr_assert_lt(luks2_token_format(true, buf, 10), 0);
        cr_assert_lt(luks2_token_parse("{\"type\":\"x\"}", 12, &init, &e), 0);
}

/* libcryptsetup itself, on the host: a header file formatted without
 * integrity (what the host can make) is a well-formed LUKS2 header of the
 * wrong shape. */
Test(luks2, host_formatted_plain_header_refused) {
        char path[] = "/tmp/arca-luks2-XXXXXX";
        struct crypt_device *cd = NULL;
        struct crypt_pbkdf_type pbkdf = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
                                          .flags = CRYPT_PBKDF_NO_BENCHMARK };
        struct crypt_params_luks2 params = { .sector_size = 4096, .pbkdf = &pbkdf };
        char key[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        char *buf = NULL;
        size_t len = 0;
        int fd, r;

        fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 32 << 20), 0);
        close(fd);
        r = crypt_init(&cd, path);
        cr_assert_eq(r, 0);
        r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, key, 64, &params);
        if (r < 0) {
                crypt_free(cd);
                unlink(path);
                cr_skip_test("libcryptsetup cannot format a LUKS2 header file here (%d)", r);
        }
        cr_assert_geq(crypt_keyslot_add_by_volume_key(cd, 0, key, 64, "pass", 4), 0);
        cr_assert_geq(crypt_token_json_set(cd, 0, "{\"type\":\"arca-state-disk\",\"keyslots\":[],\"initialized\":false}"), 0);
        crypt_free(cd);
        cr_assert_eq(read_full_file(path, 64 << 20, &buf, &len), 0);
        unlink(path);
        expect_refused((uint8_t *) buf, len, "segments.0.integrity: missing");
        free(buf);
}

/* --- recovery endpoint messages (lib/disk-recover.c) ----------------------- */
#include "disk-recover.h"

Test(recover_msg, request_roundtrip) {
        struct recover_request m = {}, back = {};
        struct errmsg e = {};
        char *s = NULL;

        memset(m.master_secret, 0xa5, KEY_SIZE);
        memset(m.master_salt, 0x5a, KEY_SIZE);
        cr_assert_eq(recover_request_serialize(&m, &s), 0);
        cr_assert_eq(recover_request_parse(s, strlen(s), &back, &e), 0, "%s", e.text);
        cr_assert_eq(memcmp(&m, &back, sizeof(m)), 0);
        free(s);
}

Test(recover_msg, request_refusals) {
        static const struct {
                const char *json, *needle;
        } cases[] = {
                { "{\"masterSecret\":\"AAAA\",\"masterSalt\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}", "masterSecret" },
                { "{\"masterSalt\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}", "masterSecret" },
                { "{\"masterSecret\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"masterSalt\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"diskKey\":\"x\"}",
                  "unknown field 'diskKey'" },
                { "[1]", "recover request" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct recover_request m;
                struct errmsg e = {};
                cr_assert_lt(recover_request_parse(cases[i].json, strlen(cases[i].json), &m, &e), 0, "%s", cases[i].json);
                cr_assert(strstr(e.text, cases[i].needle), "\"%s\" does not name %s", e.text, cases[i].needle);
        }
}

Test(recover_msg, status_and_response) {
        struct recover_status st = {}, st2 = {};
        struct recover_response r1 = {}, r2 = {};
        struct errmsg e = {};
        char *s = NULL;

        snprintf(st.service, sizeof(st.service), "recover");
        snprintf(st.variant, sizeof(st.variant), "qemu-vtpm");
        snprintf(st.state, sizeof(st.state), "awaiting-recovery");
        snprintf(st.disk_uuid, sizeof(st.disk_uuid), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        cr_assert_eq(recover_status_serialize(&st, &s), 0);
        cr_assert_eq(recover_status_parse(s, strlen(s), &st2, &e), 0, "%s", e.text);
        cr_assert_str_eq(st2.disk_uuid, st.disk_uuid);
        free(s);
        /* The init server's answer is not a recovery server's. */
        const char *init = "{\"service\":\"init\",\"variant\":\"qemu-vtpm\",\"state\":\"awaiting-init\",\"diskUuid\":\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\"}";
        cr_assert_lt(recover_status_parse(init, strlen(init), &st2, &e), 0);
        snprintf(r1.disk_uuid, sizeof(r1.disk_uuid), "%s", st.disk_uuid);
        cr_assert_eq(recover_response_serialize(&r1, &s), 0);
        cr_assert_eq(recover_response_parse(s, strlen(s), &r2, &e), 0, "%s", e.text);
        cr_assert_str_eq(r2.disk_uuid, r1.disk_uuid);
        free(s);
        cr_assert_lt(recover_response_parse("{\"diskUuid\":\"nope\"}", 19, &r2, &e), 0);
}

/* --- an update interrupted between the two header writes ------------------ */

static uint8_t *build_seq(const char *json, uint64_t seq_pri, uint64_t seq_sec, const char *json_sec) {
        uint8_t *b = build(json), *o = build(json_sec);
        put_be64(b + 16, seq_pri);
        checksum(b);
        memcpy(b + HDR, o + HDR, HDR);
        put_be64(b + HDR + 16, seq_sec);
        checksum(b + HDR);
        free(o);
        return b;
}

Test(luks2, repair_takes_newer_secondary) {
        char *j = edit("\"initialized\":false", "\"initialized\":true");
        uint8_t *b = build_seq(real_json, 5, 6, j);
        struct luks2_info info = {};
        struct errmsg e = {};
        uint64_t seq = 0;

        cr_assert_lt(luks2_header_check(b, 2 * HDR, &info, NULL), 0);
        cr_assert_eq(luks2_header_repair(b, 2 * HDR, &seq, &e), 1, "%s", e.text);
        cr_assert_eq(seq, 6);
        cr_assert_eq(luks2_header_check(b, 2 * HDR, &info, &e), 0, "%s", e.text);
        cr_assert(info.initialized);
        cr_assert_eq(info.seqid, 6);
        free(b);
        free(j);
}

Test(luks2, repair_takes_newer_primary) {
        char *j = edit("\"initialized\":false", "\"initialized\":true");
        uint8_t *b = build_seq(j, 8, 7, real_json);
        struct luks2_info info = {};
        struct errmsg e = {};

        cr_assert_eq(luks2_header_repair(b, 2 * HDR, NULL, &e), 1, "%s", e.text);
        cr_assert_eq(luks2_header_check(b, 2 * HDR, &info, &e), 0, "%s", e.text);
        cr_assert(info.initialized);
        free(b);
        free(j);
}

Test(luks2, repair_skips_torn_copy) {
        /* Newer secondary torn mid-write: the older valid primary is used. */
        char *j = edit("\"initialized\":false", "\"initialized\":true");
        uint8_t *b = build_seq(real_json, 5, 6, j);
        struct luks2_info info = {};
        struct errmsg e = {};

        b[HDR + 4096 + 100] ^= 1;
        cr_assert_eq(luks2_header_repair(b, 2 * HDR, NULL, &e), 1, "%s", e.text);
        cr_assert_eq(luks2_header_check(b, 2 * HDR, &info, &e), 0, "%s", e.text);
        cr_assert_not(info.initialized);
        free(b);
        free(j);
}

Test(luks2, repair_never_picks_wrong_shape) {
        /* A newer copy asking for cipher_null is not a candidate. */
        char *j = edit("\"encryption\":\"aes-xts-plain64\",\"sector_size\"", "\"encryption\":\"cipher_null-ecb\",\"sector_size\"");
        uint8_t *b = build_seq(real_json, 5, 9, j);
        struct luks2_info info = {};
        struct errmsg e = {};

        cr_assert_eq(luks2_header_repair(b, 2 * HDR, NULL, &e), 1, "%s", e.text);
        cr_assert_eq(luks2_header_check(b, 2 * HDR, &info, &e), 0, "%s", e.text);
        cr_assert_eq(info.seqid, 5);
        free(b);
        free(j);
}

Test(luks2, repair_refuses_when_nothing_valid) {
        char *j = edit("\"encryption\":\"aes-xts-plain64\",\"sector_size\"", "\"encryption\":\"cipher_null-ecb\",\"sector_size\"");
        uint8_t *b = build(j);
        struct errmsg e = {};

        cr_assert_lt(luks2_header_repair(b, 2 * HDR, NULL, &e), 0);
        cr_assert(strstr(e.text, "neither copy"), "%s", e.text);
        free(b);
        free(j);
}

Test(luks2, repair_refuses_same_seqid_different_content) {
        char *j = edit("\"initialized\":false", "\"initialized\":true");
        uint8_t *b = build_seq(real_json, 5, 5, j);
        struct errmsg e = {};

        cr_assert_lt(luks2_header_repair(b, 2 * HDR, NULL, &e), 0);
        cr_assert(strstr(e.text, "same seqid"), "%s", e.text);
        free(b);
        free(j);
}

Test(luks2, repair_leaves_agreeing_copies) {
        uint8_t *b = build(real_json);
        uint8_t *c = build(real_json);
        cr_assert_eq(luks2_header_repair(b, 2 * HDR, NULL, NULL), 0);
        cr_assert_eq(memcmp(b, c, 2 * HDR), 0);
        free(b);
        free(c);
}
