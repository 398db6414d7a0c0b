/* SPDX-License-Identifier: Apache-2.0 */
#include "hkdf.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "openssl-util.h"

int hkdf_sha256(const void *ikm, size_t ikm_len, const void *salt, size_t salt_len,
                const void *info, size_t info_len, void *out, size_t out_len) {
        _cleanup_(EVP_KDF_freep) EVP_KDF *kdf = NULL;
        _cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
        OSSL_PARAM params[5], *p = params;

        /* RFC 5869: at most 255 blocks of output. */
        if (out_len == 0 || out_len > 255 * 32)
                return -EINVAL;
        kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
        if (!kdf)
                return -EOPNOTSUPP;
        ctx = EVP_KDF_CTX_new(kdf);
        if (!ctx)
                return -ENOMEM;

        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_len);
        /* OpenSSL refuses a NULL salt even of length 0; RFC 5869 allows it. */
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt_len ? (void *) salt : (void *) "",
                                                 salt_len);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) info, info_len);
        *p = OSSL_PARAM_construct_end();

        if (EVP_KDF_derive(ctx, out, out_len, params) != 1)
                return openssl_errno(-EIO);
        return 0;
}
