/* SPDX-License-Identifier: Apache-2.0 */
#include "platform.h"

#include <errno.h>

#include "openssl-util.h"
#include "tpm-parse.h"
#include "tpm.h"

static int add_ext(X509 *issuer, X509 *x, int nid, const char *value) {
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        X509V3_CTX ctx;

        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext || X509_add_ext(x, ext, -1) != 1)
                return openssl_errno(-EIO);
        return 0;
}

static int set_serial_random(X509 *x) {
        _cleanup_(BN_freep) BIGNUM *bn = BN_new();

        if (!bn || BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
            !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
                return openssl_errno(-EIO);
        return 0;
}

int platform_issue_cert(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *subject_key, const char *common_name,
                        unsigned days, bool is_ca, X509 **ret, struct errmsg *e) {
        _cleanup_(X509_freep) X509 *x = X509_new();
        X509_NAME *name;
        int r;

        if (!x || X509_set_version(x, X509_VERSION_3) != 1)
                return openssl_error(e, ENOMEM, "Cannot allocate certificate");
        r = set_serial_random(x);
        if (r < 0)
                return openssl_error(e, r, "Cannot set serial");
        name = X509_get_subject_name(x);
        if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) "arca", -1, -1, 0) != 1 ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) common_name, -1, -1,
                                       0) != 1)
                return openssl_error(e, EINVAL, "Cannot set subject");
        if (X509_set_issuer_name(x, ca_cert ? X509_get_subject_name(ca_cert) : name) != 1 ||
            !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), (long) days * 86400) ||
            X509_set_pubkey(x, subject_key) != 1)
                return openssl_error(e, EIO, "Cannot fill certificate");
        if (add_ext(ca_cert ? ca_cert : x, x, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") < 0 ||
            add_ext(ca_cert ? ca_cert : x, x, NID_key_usage,
                    is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") < 0 ||
            add_ext(ca_cert ? ca_cert : x, x, NID_subject_key_identifier, "hash") < 0 ||
            /* A self-signed CA names no authority key. */
            (ca_cert && add_ext(ca_cert, x, NID_authority_key_identifier, "keyid") < 0))
                return openssl_error(e, EIO, "Cannot add extensions");
        if (X509_sign(x, ca_key, EVP_sha256()) <= 0)
                return openssl_error(e, EIO, "Cannot sign certificate");
        *ret = TAKE_PTR(x);
        return 0;
}

int platform_ca_create(const char *common_name, unsigned days, EVP_PKEY **ret_key, X509 **ret_cert,
                       struct errmsg *e) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        X509 *cert;
        int r;

        r = ec_p256_generate(&key);
        if (r < 0)
                return errmsg_set(e, r, "Cannot generate CA key");
        r = platform_issue_cert(key, NULL, key, common_name, days, true, &cert, e);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(key);
        *ret_cert = cert;
        return 0;
}

int platform_provision_ak(struct tpm_ctx *t, uint32_t ak_handle, EVP_PKEY *ca_key, X509 *ca_cert,
                          struct errmsg *e) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ uint8_t *pub = NULL;
        _cleanup_free_ unsigned char *der = NULL;
        uint8_t name[TPM_NAME_SIZE];
        size_t pub_size;
        int r, der_len;

        r = tpm_ak_ensure(t, ak_handle, &pub, &pub_size, e);
        if (r < 0)
                return r;
        r = tpm_public_parse(pub, pub_size, &ak, name, e);
        if (r < 0)
                return r;
        r = platform_issue_cert(ca_key, ca_cert, ak, "arca attestation key", 3650, false, &cert, e);
        if (r < 0)
                return r;
        der_len = i2d_X509(cert, &der);
        if (der_len <= 0)
                return openssl_error(e, EIO, "Cannot encode AK certificate");
        return tpm_nv_write(t, TPM_AK_CERT_NV_INDEX, der, (size_t) der_len, e);
}

int platform_roots_load(const char *path, X509_STORE **ret, struct errmsg *e) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *certs = NULL;
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        int r;

        r = pem_read_x509_stack_file(path, &certs);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read platform CA certificate \"%s\": %s", path,
                                  r == -EBADMSG ? "no PEM certificate in file" : strerror(-r));
        store = X509_STORE_new();
        if (!store)
                return -ENOMEM;
        for (int i = 0; i < sk_X509_num(certs); i++)
                if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) != 1)
                        return openssl_error(e, EIO, "Cannot add platform CA certificate");
        *ret = TAKE_PTR(store);
        return 0;
}
