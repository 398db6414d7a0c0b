/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Issuing and verifying attestation evidence.
 *
 * The quote's qualifying data binds the verifier's fresh nonce, the user
 * data (on aTLS: SHA-256 of the TLS public key) and a purpose label:
 *   SHA-256("arca-evidence-v1" 0x00 purpose 0x00 nonce[32] user_data[32])
 * so a quote made for one purpose never verifies for another. */

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#include "errmsg.h"
#include "policy.h"

#define ATTEST_NONCE_SIZE 32
#define ATTEST_USER_DATA_SIZE 32
#define ATTEST_PURPOSE_ATLS "atls"
#define ATTEST_AK_NAME_SIZE 34
/* Firmware event log included in evidence when present; $ARCA_EVENT_LOG
 * overrides the path (empty: none). */
#define ATTEST_EVENT_LOG_PATH "/sys/kernel/security/tpm0/binary_bios_measurements"

struct tpm_ctx;
struct attester;
struct verifier;

/* Which check refused the evidence. */
enum verify_check {
        VERIFY_OK = 0,
        VERIFY_FORMAT,      /* evidence malformed, truncated or too large */
        VERIFY_VARIANT,     /* not the variant the owner configured */
        VERIFY_AK_CHAIN,    /* AK not vouched for by the platform's root */
        VERIFY_AK_KEY,      /* certified key != quoting key, or not an AK */
        VERIFY_SIG_SCHEME,  /* signature scheme is not ECDSA-SHA256 */
        VERIFY_SIGNATURE,   /* quote signature does not verify */
        VERIFY_QUOTE,       /* signed structure is not a PCR quote of 0-23 */
        VERIFY_USER_DATA,   /* evidence bound to other user data (TLS key) */
        VERIFY_NONCE,       /* qualifying data != this nonce and purpose */
        VERIFY_PCR_DIGEST,  /* reported PCR values != quoted digest */
        VERIFY_POLICY,      /* an enforced PCR differs from the policy */
        _VERIFY_MAX,
};

struct verify_report {
        enum verify_check failed;
        char reason[512];
        char variant[32];
        bool have_pcrs; /* pcrs, policy and ak_name are filled (signature verified) */
        uint8_t pcrs[POLICY_PCR_COUNT][32];
        /* TPM name of the quoting AK (nameAlg SHA-256 || digest of its
         * TPMT_PUBLIC): identifies the attesting TPM, e.g. a mesh member. */
        uint8_t ak_name[ATTEST_AK_NAME_SIZE];
        struct policy_result policy;
};

const char *verify_check_to_string(enum verify_check c);

/* Compute the qualifying data for a quote. */
int attest_qualifying_data(const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                           const uint8_t user_data[ATTEST_USER_DATA_SIZE], uint8_t ret[32]);

/* Attester: this process's TPM (attester_new), or the node's TPM user
 * asked over a socket (attester_remote_new, lib/attest-remote.h); the
 * functions below work on either. */

/* The local attester: borrows the TPM context (which must outlive it).
 * Creates the AK if needed and caches the platform's trust material. It
 * may issue from several threads if nothing else uses the TPM context
 * meanwhile (issues are serialized). */
int attester_new(const char *variant, struct tpm_ctx *tpm, uint32_t ak_handle, struct attester **ret,
                 struct errmsg *e);
struct attester *attester_free(struct attester *a);
const char *attester_variant(const struct attester *a);
/* The TPM name of this attester's AK, as verifier_verify reports it
 * (verify_report.ak_name) for its evidence. */
int attester_ak_name(const struct attester *a, uint8_t ret[ATTEST_AK_NAME_SIZE], struct errmsg *e);
/* Issue evidence (serialized document) with fresh PCR values and quote. */
int attester_issue(struct attester *a, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                   const uint8_t user_data[ATTEST_USER_DATA_SIZE], char **ret, size_t *ret_size,
                   struct errmsg *e);

/* Verifier: takes a reference on `roots`. */
int verifier_new(const char *variant, const struct policy *policy, X509_STORE *roots,
                 struct verifier **ret, struct errmsg *e);
struct verifier *verifier_free(struct verifier *v);
const char *verifier_variant(const struct verifier *v);
const struct policy *verifier_policy(const struct verifier *v);
/* Returns 0 when verified; otherwise a negative errno and the report names
 * the failed check. The report is always filled as far as checks got. */
int verifier_verify(const struct verifier *v, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                    const uint8_t user_data[ATTEST_USER_DATA_SIZE], const uint8_t *doc, size_t size,
                    struct verify_report *report);

static inline void attester_freep(struct attester **a) {
        attester_free(*a);
}
static inline void verifier_freep(struct verifier **v) {
        verifier_free(*v);
}
