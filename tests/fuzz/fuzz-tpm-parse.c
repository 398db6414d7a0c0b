/* SPDX-License-Identifier: Apache-2.0 */
/* The TPM structure parsers on arbitrary bytes. The first byte selects the
 * parser (0: TPMS_ATTEST, 1: TPMT_SIGNATURE, 2: TPMT_PUBLIC, modulo 3), the
 * rest is its input; the corpus files carry that byte in front of real
 * swtpm output. */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpm-parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool quiet;
        struct errmsg e = {};
        int r;

        /* tss2-mu logs every malformed structure to stderr; quiet it before
         * its first message, which is when it reads the variable. */
        if (!quiet) {
                setenv("TSS2_LOG", "all+none", 0);
                quiet = true;
        }
        if (size < 1)
                return 0;
        switch (data[0] % 3) {
        case 0: {
                struct tpm_quote_info info;
                r = tpm_attest_parse(data + 1, size - 1, &info, &e);
                if (r == 0 && (info.extra_data_size > sizeof(info.extra_data) ||
                               info.signer_name_size > sizeof(info.signer_name)))
                        abort();
                break;
        }
        case 1: {
                uint8_t *der = NULL;
                size_t der_size = 0;
                r = tpm_signature_parse(data + 1, size - 1, &der, &der_size, &e);
                /* An ECDSA-Sig-Value of two 32-byte integers is at most 72 bytes. */
                if (r == 0 && (!der || der_size == 0 || der_size > 72))
                        abort();
                OPENSSL_free(der);
                break;
        }
        default: {
                EVP_PKEY *key = NULL;
                uint8_t name[TPM_NAME_SIZE];
                r = tpm_public_parse(data + 1, size - 1, &key, name, &e);
                if (r == 0 && (!key || EVP_PKEY_get_bits(key) != 256))
                        abort();
                EVP_PKEY_free(key);
                break;
        }
        }
        /* Every refusal says why. */
        if (r < 0 && !e.text[0])
                abort();
        return 0;
}
