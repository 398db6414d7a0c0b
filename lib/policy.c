/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "openssl-util.h"

/* A DER ECDSA P-256 signature is at most 72 bytes; leave room for a file
 * that someone saved with a trailing newline, which then fails to verify
 * with a clear message rather than being refused as too large. */
#define POLICY_SIG_MAX_SIZE 256

/* Keys are shown in messages; they are user input, so cut them short
 * (printable() in errmsg.h). */
#define KEY_SHOW_MAX 32

/* "0".."23", spelled as Constellation spells them: decimal, no sign, no
 * leading zero. */
static int parse_index(const char *s, size_t len, unsigned *ret) {
        unsigned v;

        if (len == 0 || len > 2)
                return -EINVAL;
        if (len == 2 && s[0] == '0')
                return -EINVAL;
        v = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        if (v >= POLICY_PCR_COUNT)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* `what` names the value in messages: "field 'expected'" or, for the bare
 * form, "value". */
static int parse_digest(json_object *v, unsigned pcr, const char *what, uint8_t out[32], struct errmsg *e) {
        const char *s = json_object_get_string(v);
        size_t len = (size_t) json_object_get_string_len(v);
        _cleanup_free_ uint8_t *d = NULL;
        size_t n;
        int r;

        r = hex_decode(s, len, &d, &n);
        if (r == -EINVAL)
                return errmsg_set(e, EBADMSG, "PCR \"%u\": %s is not valid hex", pcr, what);
        if (r < 0)
                return r;
        if (n != 32)
                return errmsg_set(e, EBADMSG,
                                  "PCR \"%u\": %s must be 32 bytes (64 hex characters), got %zu bytes", pcr,
                                  what, n);
        memcpy(out, d, 32);
        return 0;
}

static int parse_entry(json_object *v, unsigned pcr, struct policy_pcr *ret, struct errmsg *e) {
        struct policy_pcr p = { .set = true };
        json_object *f;
        int r;

        if (json_object_is_type(v, json_type_string)) {
                /* The bare form: enforced. */
                r = parse_digest(v, pcr, "value", p.expected, e);
                if (r < 0)
                        return r;
                *ret = p;
                return 0;
        }
        if (!json_object_is_type(v, json_type_object))
                return errmsg_set(e, EBADMSG, "PCR \"%u\": must be a hex string or an object, not %s", pcr,
                                  json_type_to_name(json_object_get_type(v)));

        /* Duplicates and escaped keys were refused by json_parse(). */
        json_object_object_foreach(v, key, val) {
                char shown[KEY_SHOW_MAX + 4];
                (void) val;
                if (!streq(key, "expected") && !streq(key, "warnOnly"))
                        return errmsg_set(e, EBADMSG, "PCR \"%u\": unknown field '%s'", pcr,
                                          printable_str(key, shown, sizeof(shown)));
        }
        if (!json_object_object_get_ex(v, "expected", &f))
                return errmsg_set(e, EBADMSG, "PCR \"%u\": missing field 'expected'", pcr);
        if (!json_object_is_type(f, json_type_string))
                return errmsg_set(e, EBADMSG, "PCR \"%u\": field 'expected' must be a string, not %s", pcr,
                                  json_type_to_name(json_object_get_type(f)));
        r = parse_digest(f, pcr, "field 'expected'", p.expected, e);
        if (r < 0)
                return r;

        if (json_object_object_get_ex(v, "warnOnly", &f)) {
                if (!json_object_is_type(f, json_type_boolean))
                        return errmsg_set(e, EBADMSG,
                                          "PCR \"%u\": field 'warnOnly' must be a boolean, not %s", pcr,
                                          json_type_to_name(json_object_get_type(f)));
                p.warn_only = json_object_get_boolean(f);
        }
        *ret = p;
        return 0;
}

int policy_parse(const char *buf, size_t len, struct policy *ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct policy p = {};
        unsigned n = 0;
        int r;

        if (!buf || !ret)
                return -EINVAL;
        if (len > POLICY_MAX_SIZE)
                return errmsg_set(e, EFBIG, "policy is larger than %u bytes", POLICY_MAX_SIZE);

        r = json_parse(buf, len, &o, e);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "policy must be a JSON object, not %s",
                                  json_type_to_name(json_object_get_type(o)));

        json_object_object_foreach(o, key, v) {
                char shown[KEY_SHOW_MAX + 4];
                unsigned pcr;

                if (parse_index(key, strlen(key), &pcr) < 0)
                        return errmsg_set(e, EBADMSG, "unknown PCR index \"%s\"",
                                          printable_str(key, shown, sizeof(shown)));
                r = parse_entry(v, pcr, &p.pcr[pcr], e);
                if (r < 0)
                        return r;
                n++;
        }
        /* An empty policy would accept any node; most likely the file is
         * not the one meant. */
        if (n == 0)
                return errmsg_set(e, EBADMSG, "policy lists no PCR");

        *ret = p;
        return 0;
}

static int check_key_p256(EVP_PKEY *key, struct errmsg *e) {
        char group[64];

        if (!key)
                return errmsg_set(e, EINVAL, "no public key given");
        if (!EVP_PKEY_is_a(key, "EC") ||
            !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
            !streq(group, "prime256v1"))
                return openssl_error(e, EINVAL, "policy signing key is not an ECDSA P-256 key");
        return 0;
}

int policy_verify_signature(const void *data, size_t len, const void *sig, size_t sig_len, EVP_PKEY *key,
                            struct errmsg *e) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        int r;

        if (!data && len > 0)
                return -EINVAL;
        r = check_key_p256(key, e);
        if (r < 0)
                return r;
        if (!sig || sig_len == 0)
                return errmsg_set(e, EBADMSG, "policy signature is empty");
        if (sig_len > POLICY_SIG_MAX_SIZE)
                return errmsg_set(e, EBADMSG, "policy signature is larger than %u bytes",
                                  POLICY_SIG_MAX_SIZE);

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) != 1)
                return openssl_error(e, EIO, "cannot set up signature verification");
        /* 1: valid; 0: does not verify; <0: malformed. All but 1 refuse. */
        r = EVP_DigestVerify(ctx, sig, sig_len, data, len);
        if (r != 1) {
                openssl_errno(EBADMSG);
                return errmsg_set(e, EBADMSG, "policy signature does not verify with the given key");
        }
        return 0;
}

int policy_sign(const void *data, size_t len, EVP_PKEY *key, uint8_t **ret_sig, size_t *ret_len) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        size_t n = 0;
        int r;

        if ((!data && len > 0) || !ret_sig || !ret_len)
                return -EINVAL;
        r = check_key_p256(key, NULL);
        if (r < 0)
                return openssl_errno(r);

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL) != 1)
                return openssl_errno(EIO);
        if (EVP_DigestSign(ctx, NULL, &n, data, len) != 1 || n == 0)
                return openssl_errno(EIO);
        sig = malloc(n);
        if (!sig)
                return -ENOMEM;
        if (EVP_DigestSign(ctx, sig, &n, data, len) != 1)
                return openssl_errno(EIO);

        *ret_sig = TAKE_PTR(sig);
        *ret_len = n;
        return 0;
}

int policy_load(const char *path, const char *sig_path, const char *pubkey_path, struct policy *ret,
                struct errmsg *e) {
        _cleanup_free_ char *buf = NULL, *sig = NULL;
        size_t len, sig_len;
        int r;

        if (!path || !ret)
                return -EINVAL;
        /* A key without a signature most likely means the signature was
         * forgotten; loading unverified would be the wrong guess. */
        if (!!sig_path != !!pubkey_path)
                return errmsg_set(e, EINVAL, "policy signature and public key must be given together");

        r = read_full_file(path, POLICY_MAX_SIZE, &buf, &len);
        if (r == -EFBIG)
                return errmsg_set(e, r, "policy file '%s' is larger than %u bytes", path, POLICY_MAX_SIZE);
        if (r < 0)
                return errmsg_set(e, r, "cannot read policy file '%s': %s", path, strerror(-r));

        if (sig_path) {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;

                r = read_full_file(sig_path, POLICY_SIG_MAX_SIZE, &sig, &sig_len);
                if (r == -EFBIG)
                        return errmsg_set(e, EBADMSG, "policy signature '%s' is larger than %u bytes",
                                          sig_path, POLICY_SIG_MAX_SIZE);
                if (r < 0)
                        return errmsg_set(e, r, "cannot read policy signature '%s': %s", sig_path,
                                          strerror(-r));
                r = pem_read_pubkey_file(pubkey_path, &key);
                if (r < 0)
                        return errmsg_set(e, r, "cannot read public key '%s': %s", pubkey_path,
                                          r == -EBADMSG ? "not a PEM public key" : strerror(-r));
                r = policy_verify_signature(buf, len, sig, sig_len, key, e);
                if (r < 0) {
                        errmsg_prefix(e, "'%s'", path);
                        return r;
                }
        }

        r = policy_parse(buf, len, ret, e);
        if (r < 0)
                errmsg_prefix(e, "'%s'", path);
        return r;
}

int policy_to_json(const struct policy *p, char **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s;
        char *out;
        size_t n;
        int r;

        if (!p || !ret)
                return -EINVAL;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                _cleanup_(json_object_putp) json_object *entry = NULL;
                char key[4];

                if (!p->pcr[i].set)
                        continue;
                entry = json_object_new_object();
                if (!entry)
                        return -ENOMEM;
                r = json_add_hex(entry, "expected", p->pcr[i].expected, sizeof(p->pcr[i].expected));
                if (r < 0)
                        return r;
                r = json_add_bool(entry, "warnOnly", p->pcr[i].warn_only);
                if (r < 0)
                        return r;
                snprintf(key, sizeof(key), "%u", i);
                r = json_add(o, key, TAKE_PTR(entry));
                if (r < 0)
                        return r;
        }

        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        out = malloc(n + 2);
        if (!out)
                return -ENOMEM;
        memcpy(out, s, n);
        out[n] = '\n';
        out[n + 1] = 0;
        *ret = out;
        return 0;
}

int policy_check(const struct policy *p, const uint8_t pcrs[POLICY_PCR_COUNT][32], struct policy_result *ret,
                 struct errmsg *e) {
        struct policy_result res = {};
        int first = -1;

        if (!p || !pcrs || !ret)
                return -EINVAL;

        /* Compare every PCR, not just up to the first mismatch, so that the
         * caller can report all of them. */
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                const struct policy_pcr *want = &p->pcr[i];

                if (!want->set)
                        res.verdict[i] = PCR_NOT_IN_POLICY;
                else if (CRYPTO_memcmp(want->expected, pcrs[i], sizeof(want->expected)) == 0)
                        res.verdict[i] = PCR_MATCH;
                else if (want->warn_only) {
                        res.verdict[i] = PCR_MISMATCH_WARN;
                        res.n_warn_mismatch++;
                } else {
                        res.verdict[i] = PCR_MISMATCH_ENFORCED;
                        res.n_enforced_mismatch++;
                        if (first < 0)
                                first = (int) i;
                }
        }
        *ret = res;

        if (first >= 0) {
                char want_hex[65], got_hex[65];

                hex_encode_buf(p->pcr[first].expected, 32, want_hex);
                hex_encode_buf(pcrs[first], 32, got_hex);
                return errmsg_set(e, EPERM, "PCR %d: expected %s, actual %s", first, want_hex, got_hex);
        }
        return 0;
}

const char *pcr_verdict_to_string(enum pcr_verdict v) {
        switch (v) {
        case PCR_NOT_IN_POLICY:
                return "not-in-policy";
        case PCR_MATCH:
                return "match";
        case PCR_MISMATCH_ENFORCED:
                return "mismatch";
        case PCR_MISMATCH_WARN:
                return "mismatch-warn-only";
        }
        return NULL;
}
