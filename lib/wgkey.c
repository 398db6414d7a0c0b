/* SPDX-License-Identifier: Apache-2.0 */
#include "wgkey.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "openssl-util.h"
#include "secret.h"

static int public_b64(EVP_PKEY *k, char ret[WG_KEY_B64_SIZE]) {
        uint8_t pub[WG_KEY_SIZE];
        size_t n = sizeof(pub);

        if (EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 || n != WG_KEY_SIZE)
                return openssl_errno(-EIO);
        EVP_EncodeBlock((unsigned char *) ret, pub, WG_KEY_SIZE);
        return 0;
}

int wg_keypair_generate(uint8_t ret_private[WG_KEY_SIZE], char ret_public[WG_KEY_B64_SIZE]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        size_t n = WG_KEY_SIZE;
        int r;

        if (!k)
                return openssl_errno(-EIO);
        if (EVP_PKEY_get_raw_private_key(k, ret_private, &n) != 1 || n != WG_KEY_SIZE)
                return openssl_errno(-EIO);
        r = public_b64(k, ret_public);
        if (r < 0)
                secret_wipe(ret_private, WG_KEY_SIZE);
        return r;
}

int wg_public_from_private(const uint8_t priv[WG_KEY_SIZE], char ret_public[WG_KEY_B64_SIZE]) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, WG_KEY_SIZE);

        if (!k)
                return openssl_errno(-EINVAL);
        return public_b64(k, ret_public);
}
