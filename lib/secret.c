/* SPDX-License-Identifier: Apache-2.0 */
#include "secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

void secret_wipe(void *p, size_t n) {
        if (p && n)
                OPENSSL_cleanse(p, n);
}

void *secret_free(void *p, size_t n) {
        secret_wipe(p, n);
        free(p);
        return NULL;
}

int secret_random(void *p, size_t n) {
        if (n > INT32_MAX)
                return -EINVAL;
        if (RAND_bytes(p, (int) n) != 1)
                return -EIO;
        return 0;
}

bool secret_equal(const void *a, const void *b, size_t n) {
        return CRYPTO_memcmp(a, b, n) == 0;
}
