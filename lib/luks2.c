/* SPDX-License-Identifier: Apache-2.0 */
/* LUKS2 header checks for the state disk (see luks2.h for the shape).
 * Binary header layout (cryptsetup's docs/on-disk-format-luks2.pdf):
 *   0 magic[6] | 6 version u16be | 8 hdr_size u64be | 16 seqid u64be |
 *   24 label[48] | 72 checksum_alg[32] | 104 salt[64] | 168 uuid[40] |
 *   208 subsystem[48] | 256 hdr_offset u64be | 264 padding[184] |
 *   448 csum[64] | 512 padding to 4096; the JSON area follows.
 * The checksum is over the whole header (binary + JSON area) with the
 * csum field zeroed. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "luks2.h"
#include "openssl-util.h"
#include "validate.h"

static const uint8_t magic_primary[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
static const uint8_t magic_secondary[6] = { 'S', 'K', 'U', 'L', 0xba, 0xbe };

#define OFF_VERSION 6
#define OFF_HDR_SIZE 8
#define OFF_SEQID 16
#define OFF_CSUM_ALG 72
#define OFF_UUID 168
#define OFF_HDR_OFFSET 256
#define OFF_CSUM 448
#define CSUM_FIELD_SIZE 64

static uint64_t be64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = (v << 8) | p[i];
        return v;
}

bool luks2_has_magic(const uint8_t *buf, size_t len) {
        return len >= sizeof(magic_primary) &&
               (memcmp(buf, magic_primary, sizeof(magic_primary)) == 0 ||
                memcmp(buf, magic_secondary, sizeof(magic_secondary)) == 0);
}

static bool valid_hdr_size(uint64_t s) {
        return s >= LUKS2_MIN_HDR_SIZE && s <= LUKS2_MAX_HDR_SIZE && (s & (s - 1)) == 0;
}

int luks2_header_size(const uint8_t *buf, size_t len, uint64_t *ret, struct errmsg *e) {
        uint64_t s;

        if (len < LUKS2_BIN_HEADER_SIZE)
                return errmsg_set(e, EBADMSG, "LUKS2 header: %zu bytes, need %u", len, LUKS2_BIN_HEADER_SIZE);
        if (memcmp(buf, magic_primary, sizeof(magic_primary)) != 0)
                return errmsg_set(e, EBADMSG, "LUKS2 header: no primary LUKS magic at offset 0");
        if (buf[OFF_VERSION] != 0 || buf[OFF_VERSION + 1] != 2)
                return errmsg_set(e, EBADMSG, "LUKS2 header: version %u, expected 2",
                                  (unsigned) (buf[OFF_VERSION] << 8 | buf[OFF_VERSION + 1]));
        s = be64(buf + OFF_HDR_SIZE);
        if (!valid_hdr_size(s))
                return errmsg_set(e, EBADMSG, "LUKS2 header: hdr_size %" PRIu64 " is not a power of two in 16 KiB..4 MiB",
                                  s);
        *ret = s;
        return 0;
}

/* One binary header at buf (hdr_size bytes available): magic, version,
 * sizes, checksum. */
static int check_binary(const uint8_t *buf, uint64_t hdr_size, uint64_t expected_offset, const char *which,
                        struct errmsg *e) {
        const uint8_t *magic = expected_offset == 0 ? magic_primary : magic_secondary;
        uint8_t zero[CSUM_FIELD_SIZE] = {}, digest[EVP_MAX_MD_SIZE];
        unsigned dlen = 0;
        EVP_MD_CTX *ctx;
        bool ok;

        if (memcmp(buf, magic, 6) != 0)
                return errmsg_set(e, EBADMSG, "%s LUKS2 header: bad magic", which);
        if (buf[OFF_VERSION] != 0 || buf[OFF_VERSION + 1] != 2)
                return errmsg_set(e, EBADMSG, "%s LUKS2 header: version %u, expected 2", which,
                                  (unsigned) (buf[OFF_VERSION] << 8 | buf[OFF_VERSION + 1]));
        if (be64(buf + OFF_HDR_SIZE) != hdr_size)
                return errmsg_set(e, EBADMSG, "%s LUKS2 header: hdr_size %" PRIu64 ", expected %" PRIu64, which,
                                  be64(buf + OFF_HDR_SIZE), hdr_size);
        if (be64(buf + OFF_HDR_OFFSET) != expected_offset)
                return errmsg_set(e, EBADMSG, "%s LUKS2 header: hdr_offset %" PRIu64 ", expected %" PRIu64, which,
                                  be64(buf + OFF_HDR_OFFSET), expected_offset);
        if (memchr(buf + OFF_CSUM_ALG, 0, 32) == NULL || strcmp((const char *) buf + OFF_CSUM_ALG, "sha256") != 0)
                return errmsg_set(e, EBADMSG, "%s LUKS2 header: checksum_alg \"%.31s\", expected \"sha256\"", which,
                                  (const char *) buf + OFF_CSUM_ALG);
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, buf, OFF_CSUM) == 1 &&
             EVP_DigestUpdate(ctx, zero, sizeof(zero)) == 1 &&
             EVP_DigestUpdate(ctx, buf + OFF_CSUM + CSUM_FIELD_SIZE, hdr_size - OFF_CSUM - CSUM_FIELD_SIZE) == 1 &&
             EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 32;
        EVP_MD_CTX_free(ctx);
        if (!ok)
                return errmsg_set(e, EIO, "%s LUKS2 header: cannot compute SHA-256", which);
        if (memcmp(digest, buf + OFF_CSUM, 32) != 0 || memcmp(buf + OFF_CSUM + 32, zero, 32) != 0)
                return errmsg_set(e, EBADMSG, "%s LUKS2 header: checksum mismatch", which);
        return 0;
}

/* --- JSON shape ---------------------------------------------------------- */

static int expect_string(json_object *o, const char *path, const char *field, const char *want, struct errmsg *e) {
        const char *v;
        json_object *x;

        if (!json_object_object_get_ex(o, field, &x))
                return errmsg_set(e, EBADMSG, "%s.%s: missing", path, field);
        if (!json_object_is_type(x, json_type_string))
                return errmsg_set(e, EBADMSG, "%s.%s: expected a string", path, field);
        v = json_object_get_string(x);
        if (want && strcmp(v, want) != 0)
                return errmsg_set(e, EBADMSG, "%s.%s: \"%.64s\", expected \"%s\"", path, field, v, want);
        return 0;
}

static int expect_int(json_object *o, const char *path, const char *field, int64_t want, struct errmsg *e) {
        json_object *x;
        int64_t v;

        if (!json_object_object_get_ex(o, field, &x))
                return errmsg_set(e, EBADMSG, "%s.%s: missing", path, field);
        if (!json_object_is_type(x, json_type_int))
                return errmsg_set(e, EBADMSG, "%s.%s: expected an integer", path, field);
        v = json_object_get_int64(x);
        if (v != want)
                return errmsg_set(e, EBADMSG, "%s.%s: %" PRId64 ", expected %" PRId64, path, field, v, want);
        return 0;
}

/* LUKS2 writes 64-bit sizes as decimal strings. */
static int get_u64_string(json_object *o, const char *path, const char *field, uint64_t *ret, struct errmsg *e) {
        const char *s;
        uint64_t v = 0;
        size_t n;
        int r;

        r = expect_string(o, path, field, NULL, e);
        if (r < 0)
                return r;
        s = json_object_get_string(json_object_object_get(o, field));
        n = strlen(s);
        if (n == 0 || n > 19 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0'))
                return errmsg_set(e, EBADMSG, "%s.%s: \"%.32s\" is not a decimal number", path, field, s);
        for (size_t i = 0; i < n; i++)
                v = v * 10 + (uint64_t) (s[i] - '0');
        *ret = v;
        return 0;
}

static int check_fields(json_object *o, const char *path, const char *const *allowed, struct errmsg *e) {
        int r = json_check_fields(o, allowed, e);
        if (r < 0)
                errmsg_prefix(e, "%s", path);
        return r;
}

/* A member that must be an object holding exactly one entry named "0". */
static int only_entry_zero(json_object *root, const char *name, json_object **ret, struct errmsg *e) {
        json_object *o, *x;

        if (!json_object_object_get_ex(root, name, &o) || !json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "%s: missing or not an object", name);
        if (json_object_object_length(o) != 1 || !json_object_object_get_ex(o, "0", &x))
                return errmsg_set(e, EBADMSG, "%s: %d entries, expected exactly one named \"0\"", name,
                                  json_object_object_length(o));
        if (!json_object_is_type(x, json_type_object))
                return errmsg_set(e, EBADMSG, "%s.0: not an object", name);
        *ret = x;
        return 0;
}

static int get_object(json_object *o, const char *path, const char *field, json_object **ret, struct errmsg *e) {
        if (!json_object_object_get_ex(o, field, ret) || !json_object_is_type(*ret, json_type_object))
                return errmsg_set(e, EBADMSG, "%s.%s: missing or not an object", path, field);
        return 0;
}

/* ["0"] exactly. */
static int expect_ref_zero(json_object *o, const char *path, const char *field, struct errmsg *e) {
        json_object *a, *x;

        if (!json_object_object_get_ex(o, field, &a) || !json_object_is_type(a, json_type_array))
                return errmsg_set(e, EBADMSG, "%s.%s: missing or not an array", path, field);
        if (json_object_array_length(a) != 1 || !(x = json_object_array_get_idx(a, 0)) ||
            !json_object_is_type(x, json_type_string) || strcmp(json_object_get_string(x), "0") != 0)
                return errmsg_set(e, EBADMSG, "%s.%s: expected [\"0\"]", path, field);
        return 0;
}

static int check_salt(json_object *o, const char *path, struct errmsg *e) {
        const char *s;
        size_t n;
        int r;

        r = expect_string(o, path, "salt", NULL, e);
        if (r < 0)
                return r;
        s = json_object_get_string(json_object_object_get(o, "salt"));
        n = strlen(s);
        if (n == 0 || n > 128 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
                return errmsg_set(e, EBADMSG, "%s.salt: not base64", path);
        return 0;
}

static int check_segment(json_object *seg, uint64_t *ret_offset, struct errmsg *e) {
        static const char *const fields[] = { "type", "offset", "size", "iv_tweak", "encryption", "sector_size",
                                              "integrity", NULL };
        static const char *const ifields[] = { "type", "journal_encryption", "journal_integrity", NULL };
        const char *p = "segments.0";
        json_object *integ;
        int r;

        if ((r = check_fields(seg, p, fields, e)) < 0 || (r = expect_string(seg, p, "type", "crypt", e)) < 0 ||
            (r = expect_string(seg, p, "encryption", ARCA_DISK_CIPHER, e)) < 0 ||
            (r = expect_int(seg, p, "sector_size", ARCA_DISK_SECTOR_SIZE, e)) < 0 ||
            (r = expect_string(seg, p, "size", "dynamic", e)) < 0 ||
            (r = expect_string(seg, p, "iv_tweak", "0", e)) < 0 ||
            (r = get_u64_string(seg, p, "offset", ret_offset, e)) < 0)
                return r;
        if (!json_object_object_get_ex(seg, "integrity", &integ))
                return errmsg_set(e, EBADMSG, "segments.0.integrity: missing (no authenticated encryption)");
        if (!json_object_is_type(integ, json_type_object))
                return errmsg_set(e, EBADMSG, "segments.0.integrity: not an object");
        p = "segments.0.integrity";
        if ((r = check_fields(integ, p, ifields, e)) < 0 ||
            (r = expect_string(integ, p, "type", ARCA_DISK_INTEGRITY, e)) < 0 ||
            (r = expect_string(integ, p, "journal_encryption", "none", e)) < 0 ||
            (r = expect_string(integ, p, "journal_integrity", "none", e)) < 0)
                return r;
        return 0;
}

static int check_keyslot(json_object *ks, uint64_t hdr_size, uint64_t keyslots_size, struct errmsg *e) {
        static const char *const fields[] = { "type", "key_size", "af", "area", "kdf", "priority", NULL };
        static const char *const af_fields[] = { "type", "stripes", "hash", NULL };
        static const char *const area_fields[] = { "type", "offset", "size", "encryption", "key_size", NULL };
        static const char *const pbkdf2_fields[] = { "type", "hash", "iterations", "salt", NULL };
        static const char *const argon_fields[] = { "type", "time", "memory", "cpus", "salt", NULL };
        json_object *af, *area, *kdf, *x;
        const char *kdf_type;
        uint64_t off, size;
        int r;

        if ((r = check_fields(ks, "keyslots.0", fields, e)) < 0 ||
            (r = expect_string(ks, "keyslots.0", "type", "luks2", e)) < 0 ||
            (r = expect_int(ks, "keyslots.0", "key_size", ARCA_DISK_VOLUME_KEY_SIZE, e)) < 0)
                return r;
        if (json_object_object_get_ex(ks, "priority", &x) &&
            (!json_object_is_type(x, json_type_int) || json_object_get_int64(x) < 0 || json_object_get_int64(x) > 2))
                return errmsg_set(e, EBADMSG, "keyslots.0.priority: expected 0, 1 or 2");
        if ((r = get_object(ks, "keyslots.0", "af", &af, e)) < 0 ||
            (r = check_fields(af, "keyslots.0.af", af_fields, e)) < 0 ||
            (r = expect_string(af, "keyslots.0.af", "type", "luks1", e)) < 0 ||
            (r = expect_int(af, "keyslots.0.af", "stripes", 4000, e)) < 0 ||
            (r = expect_string(af, "keyslots.0.af", "hash", "sha256", e)) < 0)
                return r;
        if ((r = get_object(ks, "keyslots.0", "area", &area, e)) < 0 ||
            (r = check_fields(area, "keyslots.0.area", area_fields, e)) < 0 ||
            (r = expect_string(area, "keyslots.0.area", "type", "raw", e)) < 0 ||
            (r = expect_string(area, "keyslots.0.area", "encryption", ARCA_DISK_CIPHER, e)) < 0 ||
            (r = expect_int(area, "keyslots.0.area", "key_size", 64, e)) < 0 ||
            (r = get_u64_string(area, "keyslots.0.area", "offset", &off, e)) < 0 ||
            (r = get_u64_string(area, "keyslots.0.area", "size", &size, e)) < 0)
                return r;
        if (off < 2 * hdr_size || size == 0 || size > keyslots_size || off - 2 * hdr_size > keyslots_size - size)
                return errmsg_set(e, EBADMSG,
                                  "keyslots.0.area: offset %" PRIu64 " size %" PRIu64 " outside the keyslots area", off,
                                  size);
        if ((r = get_object(ks, "keyslots.0", "kdf", &kdf, e)) < 0 ||
            (r = expect_string(kdf, "keyslots.0.kdf", "type", NULL, e)) < 0)
                return r;
        kdf_type = json_object_get_string(json_object_object_get(kdf, "type"));
        if (strcmp(kdf_type, "pbkdf2") == 0) {
                if ((r = check_fields(kdf, "keyslots.0.kdf", pbkdf2_fields, e)) < 0 ||
                    (r = expect_string(kdf, "keyslots.0.kdf", "hash", "sha256", e)) < 0)
                        return r;
                if (!json_object_object_get_ex(kdf, "iterations", &x) || !json_object_is_type(x, json_type_int) ||
                    json_object_get_int64(x) < 1000)
                        return errmsg_set(e, EBADMSG, "keyslots.0.kdf.iterations: expected an integer >= 1000");
        } else if (strcmp(kdf_type, "argon2id") == 0 || strcmp(kdf_type, "argon2i") == 0) {
                static const char *const ints[] = { "time", "memory", "cpus" };
                if ((r = check_fields(kdf, "keyslots.0.kdf", argon_fields, e)) < 0)
                        return r;
                for (size_t i = 0; i < 3; i++)
                        if (!json_object_object_get_ex(kdf, ints[i], &x) || !json_object_is_type(x, json_type_int) ||
                            json_object_get_int64(x) < 1 || json_object_get_int64(x) > 4 * 1024 * 1024)
                                return errmsg_set(e, EBADMSG, "keyslots.0.kdf.%s: expected an integer in 1..4194304",
                                                  ints[i]);
        } else
                return errmsg_set(e, EBADMSG, "keyslots.0.kdf.type: \"%.32s\", expected argon2id, argon2i or pbkdf2",
                                  kdf_type);
        return check_salt(kdf, "keyslots.0.kdf", e);
}

static int check_digest(json_object *d, struct errmsg *e) {
        static const char *const fields[] = { "type", "keyslots", "segments", "hash", "iterations", "salt", "digest",
                                              NULL };
        const char *p = "digests.0";
        json_object *x;
        int r;

        if ((r = check_fields(d, p, fields, e)) < 0 || (r = expect_string(d, p, "type", "pbkdf2", e)) < 0 ||
            (r = expect_ref_zero(d, p, "keyslots", e)) < 0 || (r = expect_ref_zero(d, p, "segments", e)) < 0 ||
            (r = expect_string(d, p, "hash", "sha256", e)) < 0 || (r = check_salt(d, p, e)) < 0 ||
            (r = expect_string(d, p, "digest", NULL, e)) < 0)
                return r;
        if (!json_object_object_get_ex(d, "iterations", &x) || !json_object_is_type(x, json_type_int) ||
            json_object_get_int64(x) < 1000)
                return errmsg_set(e, EBADMSG, "digests.0.iterations: expected an integer >= 1000");
        return 0;
}

static int check_token(json_object *t, bool *ret_initialized, struct errmsg *e) {
        static const char *const fields[] = { "type", "keyslots", "initialized", NULL };
        json_object *x;
        int r;

        if ((r = check_fields(t, "tokens.0", fields, e)) < 0 ||
            (r = expect_string(t, "tokens.0", "type", ARCA_DISK_TOKEN_TYPE, e)) < 0)
                return r;
        if (!json_object_object_get_ex(t, "keyslots", &x) || !json_object_is_type(x, json_type_array) ||
            json_object_array_length(x) != 0)
                return errmsg_set(e, EBADMSG, "tokens.0.keyslots: expected []");
        if (!json_object_object_get_ex(t, "initialized", &x) || !json_object_is_type(x, json_type_boolean))
                return errmsg_set(e, EBADMSG, "tokens.0.initialized: missing or not a boolean");
        *ret_initialized = json_object_get_boolean(x);
        return 0;
}

static int check_root(json_object *root, uint64_t hdr_size, struct luks2_info *info, struct errmsg *e) {
        static const char *const fields[] = { "keyslots", "tokens", "segments", "digests", "config", NULL };
        static const char *const cfields[] = { "json_size", "keyslots_size", NULL };
        json_object *seg, *ks, *dg, *tok, *cfg;
        uint64_t json_size;
        int r;

        if ((r = check_fields(root, "LUKS2 metadata", fields, e)) < 0)
                return r;
        if ((r = get_object(root, "LUKS2 metadata", "config", &cfg, e)) < 0 ||
            (r = check_fields(cfg, "config", cfields, e)) < 0 ||
            (r = get_u64_string(cfg, "config", "json_size", &json_size, e)) < 0 ||
            (r = get_u64_string(cfg, "config", "keyslots_size", &info->keyslots_size, e)) < 0)
                return r;
        if (hdr_size && json_size != hdr_size - LUKS2_BIN_HEADER_SIZE)
                return errmsg_set(e, EBADMSG, "config.json_size: %" PRIu64 ", expected %" PRIu64, json_size,
                                  hdr_size - LUKS2_BIN_HEADER_SIZE);
        if (info->keyslots_size == 0 || info->keyslots_size % 4096 || info->keyslots_size > LUKS2_MAX_DATA_OFFSET)
                return errmsg_set(e, EBADMSG, "config.keyslots_size: %" PRIu64 " out of range", info->keyslots_size);
        if ((r = only_entry_zero(root, "segments", &seg, e)) < 0 || (r = check_segment(seg, &info->data_offset, e)) < 0)
                return r;
        if ((r = only_entry_zero(root, "keyslots", &ks, e)) < 0 ||
            (r = check_keyslot(ks, hdr_size ? hdr_size : json_size + LUKS2_BIN_HEADER_SIZE, info->keyslots_size, e)) < 0)
                return r;
        if ((r = only_entry_zero(root, "digests", &dg, e)) < 0 || (r = check_digest(dg, e)) < 0)
                return r;
        if ((r = only_entry_zero(root, "tokens", &tok, e)) < 0 || (r = check_token(tok, &info->initialized, e)) < 0)
                return r;
        if (info->data_offset % ARCA_DISK_SECTOR_SIZE || info->data_offset > LUKS2_MAX_DATA_OFFSET)
                return errmsg_set(e, EBADMSG, "segments.0.offset: %" PRIu64 " not a multiple of 4096 or above %u",
                                  info->data_offset, LUKS2_MAX_DATA_OFFSET);
        if (hdr_size && info->data_offset < 2 * hdr_size + info->keyslots_size)
                return errmsg_set(e, EBADMSG, "segments.0.offset: %" PRIu64 " overlaps the header and keyslots area",
                                  info->data_offset);
        return 0;
}

static int json_check_sized(const char *json, size_t len, uint64_t hdr_size, struct luks2_info *ret,
                            struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        struct luks2_info info = {};
        size_t n = strnlen(json, len);
        int r;

        /* The JSON area is the text followed by NUL padding only. */
        for (size_t i = n; i < len; i++)
                if (json[i] != 0)
                        return errmsg_set(e, EBADMSG, "LUKS2 metadata: data after the JSON text at offset %zu", i);
        r = json_parse(json, n, &root, e);
        if (r < 0) {
                errmsg_prefix(e, "LUKS2 metadata");
                return r;
        }
        r = check_root(root, hdr_size, &info, e);
        if (r < 0)
                return r;
        if (ret) {
                info.hdr_size = hdr_size;
                *ret = info;
        }
        return 0;
}

int luks2_json_check(const char *json, size_t len, struct luks2_info *ret, struct errmsg *e) {
        return json_check_sized(json, len, 0, ret, e);
}

int luks2_header_check(const uint8_t *buf, size_t len, struct luks2_info *ret, struct errmsg *e) {
        const uint8_t *sec;
        struct luks2_info info;
        uint64_t hdr_size;
        char uuid[41];
        int r;

        r = luks2_header_size(buf, len, &hdr_size, e);
        if (r < 0)
                return r;
        if (len / 2 < hdr_size)
                return errmsg_set(e, EBADMSG, "LUKS2 header: %zu bytes, need both headers (%" PRIu64 ")", len,
                                  2 * hdr_size);
        sec = buf + hdr_size;
        if ((r = check_binary(buf, hdr_size, 0, "primary", e)) < 0 ||
            (r = check_binary(sec, hdr_size, hdr_size, "secondary", e)) < 0)
                return r;
        /* Both copies must say the same: libcryptsetup falls back to the
         * other one, which must not be a way around these checks. */
        if (be64(buf + OFF_SEQID) != be64(sec + OFF_SEQID))
                return errmsg_set(e, EBADMSG, "LUKS2 header: primary seqid %" PRIu64 " != secondary %" PRIu64,
                                  be64(buf + OFF_SEQID), be64(sec + OFF_SEQID));
        if (memcmp(buf + OFF_UUID, sec + OFF_UUID, 40) != 0 ||
            memcmp(buf + LUKS2_BIN_HEADER_SIZE, sec + LUKS2_BIN_HEADER_SIZE, hdr_size - LUKS2_BIN_HEADER_SIZE) != 0)
                return errmsg_set(e, EBADMSG, "LUKS2 header: primary and secondary headers differ");
        memcpy(uuid, buf + OFF_UUID, 40);
        uuid[40] = 0;
        if (strlen(uuid) != 36 || !valid_uuid(uuid))
                return errmsg_set(e, EBADMSG, "LUKS2 header: uuid \"%.40s\" is not a canonical UUID", uuid);
        r = json_check_sized((const char *) buf + LUKS2_BIN_HEADER_SIZE, hdr_size - LUKS2_BIN_HEADER_SIZE, hdr_size,
                             &info, e);
        if (r < 0)
                return r;
        info.seqid = be64(buf + OFF_SEQID);
        for (size_t i = 0; i < 36; i++)
                info.uuid[i] = (char) tolower((unsigned char) uuid[i]);
        info.uuid[36] = 0;
        if (ret)
                *ret = info;
        return 0;
}

static void put_be64(uint8_t *p, uint64_t v) {
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t) v;
}

static bool copy_valid(const uint8_t *h, uint64_t hdr_size, uint64_t offset) {
        return check_binary(h, hdr_size, offset, "", NULL) >= 0 &&
               json_check_sized((const char *) h + LUKS2_BIN_HEADER_SIZE, hdr_size - LUKS2_BIN_HEADER_SIZE, hdr_size,
                                NULL, NULL) >= 0;
}

int luks2_header_repair(uint8_t *buf, size_t len, uint64_t *ret_seqid, struct errmsg *e) {
        uint8_t *pri = buf, *sec, *from, *to;
        uint64_t hdr_size, to_offset;
        bool pv, sv;
        EVP_MD_CTX *ctx;
        unsigned dlen = 0;
        bool ok;
        int r;

        r = luks2_header_size(buf, len, &hdr_size, e);
        if (r < 0)
                return r;
        if (len / 2 < hdr_size)
                return errmsg_set(e, EBADMSG, "LUKS2 header: %zu bytes, need both headers", len);
        sec = buf + hdr_size;
        pv = copy_valid(pri, hdr_size, 0);
        sv = copy_valid(sec, hdr_size, hdr_size);
        if (!pv && !sv)
                return errmsg_set(e, EBADMSG, "LUKS2 header: neither copy passes the checks");
        if (pv && sv && be64(pri + OFF_SEQID) == be64(sec + OFF_SEQID) &&
            memcmp(pri + LUKS2_BIN_HEADER_SIZE, sec + LUKS2_BIN_HEADER_SIZE, hdr_size - LUKS2_BIN_HEADER_SIZE) == 0 &&
            memcmp(pri + OFF_UUID, sec + OFF_UUID, 40) == 0)
                return 0; /* nothing to repair */
        if (pv && sv && be64(pri + OFF_SEQID) == be64(sec + OFF_SEQID))
                return errmsg_set(e, EBADMSG, "LUKS2 header: two different copies with the same seqid");
        /* The newer valid copy wins, as in libcryptsetup. */
        if (pv && (!sv || be64(pri + OFF_SEQID) > be64(sec + OFF_SEQID)))
                from = pri, to = sec, to_offset = hdr_size;
        else
                from = sec, to = pri, to_offset = 0;
        memcpy(to, from, hdr_size);
        memcpy(to, to_offset ? magic_secondary : magic_primary, 6);
        put_be64(to + OFF_HDR_OFFSET, to_offset);
        memset(to + OFF_CSUM, 0, CSUM_FIELD_SIZE);
        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, to, hdr_size) == 1 &&
             EVP_DigestFinal_ex(ctx, to + OFF_CSUM, &dlen) == 1 && dlen == 32;
        EVP_MD_CTX_free(ctx);
        if (!ok)
                return errmsg_set(e, EIO, "LUKS2 header: cannot compute SHA-256");
        if (ret_seqid)
                *ret_seqid = be64(from + OFF_SEQID);
        return 1;
}

int luks2_token_parse(const char *json, size_t len, bool *ret_initialized, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        bool init = false;
        int r;

        r = json_parse(json, len, &o, e);
        if (r < 0) {
                errmsg_prefix(e, "token");
                return r;
        }
        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "tokens.0: not an object");
        r = check_token(o, &init, e);
        if (r < 0)
                return r;
        *ret_initialized = init;
        return 0;
}

int luks2_token_format(bool initialized, char *buf, size_t size) {
        int n = snprintf(buf, size, "{\"type\":\"" ARCA_DISK_TOKEN_TYPE "\",\"keyslots\":[],\"initialized\":%s}",
                         initialized ? "true" : "false");
        return n < 0 || (size_t) n >= size ? -ENOBUFS : 0;
}
