/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Pure parsers of TPM structures received from outside (a peer's evidence):
 * bytes in, validated values out, no I/O. Unmarshalling is tss2-mu's; the
 * shape checks (exact length, magic, types, algorithms, attributes) are
 * ours. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define TPM_NAME_SIZE 34 /* nameAlg (2) + SHA-256 */

struct tpm_quote_info {
        uint8_t extra_data[64];
        size_t extra_data_size;
        uint8_t pcr_digest[32];
        uint8_t signer_name[TPM_NAME_SIZE];
        size_t signer_name_size;
        uint64_t clock;
        uint32_t reset_count;
        uint32_t restart_count;
};

/* A TPMS_ATTEST of type quote over exactly the SHA-256 bank, PCRs 0-23. */
int tpm_attest_parse(const uint8_t *p, size_t n, struct tpm_quote_info *ret, struct errmsg *e);

/* A marshalled TPMT_SIGNATURE that must be ECDSA with SHA-256; returned as a
 * DER ECDSA-Sig-Value for OpenSSL. */
int tpm_signature_parse(const uint8_t *p, size_t n, uint8_t **ret_der, size_t *ret_size,
                        struct errmsg *e);

/* A marshalled TPMT_PUBLIC that must be an ECC P-256 restricted signing key
 * with ECDSA-SHA256, created inside the TPM (fixedTPM, fixedParent,
 * sensitiveDataOrigin). Returns the public key and the TPM name. */
int tpm_public_parse(const uint8_t *p, size_t n, EVP_PKEY **ret_key, uint8_t ret_name[TPM_NAME_SIZE],
                     struct errmsg *e);

/* Qualified name of a primary key of `hierarchy`: nameAlg || H(hierarchy
 * handle || name). TPM2_Quote reports its signer by this qualified name. */
int tpm_qualified_name(uint32_t hierarchy, const uint8_t name[TPM_NAME_SIZE], uint8_t ret[TPM_NAME_SIZE]);

/* PCR digest as TPM2_Quote computes it: SHA-256 over PCR 0..23 values. */
int tpm_pcr_digest(const uint8_t pcrs[24][32], uint8_t ret[32]);
