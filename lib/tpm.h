/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* TPM 2.0 access over tpm2-tss ESAPI. Above this module nothing sees a
 * TSS2_RC: failures become a negative errno plus the decoded TSS message in
 * the errmsg. The context is not thread-safe; one per thread. */

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define TPM_PCR_COUNT 24
#define TPM_DIGEST_SIZE 32
/* Persistent handle of arca's attestation key (owner range). */
#define TPM_AK_HANDLE UINT32_C(0x81000003)
/* NV index holding the DER AK certificate issued by the platform. */
#define TPM_AK_CERT_NV_INDEX UINT32_C(0x01c10002)
/* Largest payload of TPM2_PCR_Event. */
#define TPM_EVENT_MAX 1024
#define TPM_NV_MAX_SIZE 2048

struct tpm_ctx;

/* Quote output, as the TPM produced it. */
struct tpm_quote {
        uint8_t *attest; /* TPMS_ATTEST, the signed bytes */
        size_t attest_size;
        uint8_t *signature; /* marshalled TPMT_SIGNATURE */
        size_t signature_size;
};

void tpm_quote_done(struct tpm_quote *q);

/* The TCTI configuration string to use: the argument if given, else
 * $ARCA_TCTI, else "device:/dev/tpmrm0". */
const char *tpm_tcti_default(const char *tcti);

int tpm_open(const char *tcti, struct tpm_ctx **ret, struct errmsg *e);

/* A persistent handle as written on a command line ("0x81000003" or
 * decimal): -EINVAL unless it is a whole number in 0x81000000-0x81ffffff. */
int tpm_parse_persistent_handle(const char *s, uint32_t *ret);
struct tpm_ctx *tpm_free(struct tpm_ctx *t);

static inline void tpm_freep(struct tpm_ctx **t) {
        tpm_free(*t);
}
#define _cleanup_tpm_ _cleanup_(tpm_freep)

/* Read PCRs 0-23 of the SHA-256 bank. */
int tpm_pcr_read(struct tpm_ctx *t, uint8_t ret[TPM_PCR_COUNT][TPM_DIGEST_SIZE], struct errmsg *e);
int tpm_pcr_extend(struct tpm_ctx *t, unsigned pcr, const uint8_t digest[TPM_DIGEST_SIZE],
                   struct errmsg *e);
/* TPM2_PCR_Event: the TPM hashes data and extends every bank. */
int tpm_pcr_event(struct tpm_ctx *t, unsigned pcr, const void *data, size_t size, struct errmsg *e);

/* Load the attestation key at `handle`, creating it first (ECC P-256
 * restricted signing key, ECDSA-SHA256, primary in the endorsement
 * hierarchy, persisted) if the handle is empty. Returns the marshalled
 * TPMT_PUBLIC if ret_public is not NULL. */
int tpm_ak_ensure(struct tpm_ctx *t, uint32_t handle, uint8_t **ret_public, size_t *ret_size,
                  struct errmsg *e);

/* Quote PCRs 0-23 (SHA-256) with the AK at `handle`. qualifying_data at most
 * 64 bytes. */
int tpm_quote(struct tpm_ctx *t, uint32_t handle, const void *qualifying_data, size_t qd_size,
              struct tpm_quote *ret, struct errmsg *e);

/* NV storage with owner authorization for writing, readable by anyone.
 * tpm_nv_write (re)defines the index to the data's size. */
int tpm_nv_write(struct tpm_ctx *t, uint32_t index, const void *data, size_t size, struct errmsg *e);
/* -ENOENT when the index is not defined. */
int tpm_nv_read(struct tpm_ctx *t, uint32_t index, uint8_t **ret, size_t *ret_size, struct errmsg *e);
