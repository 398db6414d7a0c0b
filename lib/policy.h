/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Measurement policy: which PCR values (SHA-256 bank, PCRs 0-23) a node must
 * report. JSON compatible with Constellation's measurements files:
 *   {"4": {"expected": "<64 hex>", "warnOnly": false}, "9": "<64 hex>"}
 * A bare hex string means enforced. The file may carry a detached ECDSA
 * P-256 signature (DER, over the exact file bytes, SHA-256), the same that
 * `openssl dgst -sha256 -sign` produces and `-verify` accepts. */

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define POLICY_PCR_COUNT 24
#define POLICY_MAX_SIZE (64 * 1024)

struct policy_pcr {
        bool set;
        bool warn_only;
        uint8_t expected[32];
};

struct policy {
        struct policy_pcr pcr[POLICY_PCR_COUNT];
};

enum pcr_verdict {
        PCR_NOT_IN_POLICY = 0,
        PCR_MATCH,
        PCR_MISMATCH_ENFORCED,
        PCR_MISMATCH_WARN,
};

struct policy_result {
        enum pcr_verdict verdict[POLICY_PCR_COUNT];
        unsigned n_enforced_mismatch;
        unsigned n_warn_mismatch;
};

/* Strict: unknown PCR index, duplicate index, bad hex, wrong digest length,
 * unknown field in an entry, wrong types: -EBADMSG and a reason naming the
 * field. Pure: no I/O. */
int policy_parse(const char *buf, size_t len, struct policy *ret, struct errmsg *e);

/* Load from a file. When sig_path is given, pubkey_path must be too, and the
 * signature is verified over the exact bytes before they are parsed. */
int policy_load(const char *path, const char *sig_path, const char *pubkey_path,
                struct policy *ret, struct errmsg *e);

int policy_verify_signature(const void *data, size_t len, const void *sig, size_t sig_len,
                            EVP_PKEY *key, struct errmsg *e);
int policy_sign(const void *data, size_t len, EVP_PKEY *key, uint8_t **ret_sig, size_t *ret_len);

/* Serialize as {"N": {"expected": "...", "warnOnly": bool}, ...}, indices in
 * ascending order, with a trailing newline. */
int policy_to_json(const struct policy *p, char **ret);

/* Compare reported PCR values with the policy. Returns 0 when no enforced
 * PCR differs, -EPERM otherwise with e naming the first enforced mismatch
 * ("PCR 4: expected <hex>, actual <hex>"). ret is always filled. */
int policy_check(const struct policy *p, const uint8_t pcrs[POLICY_PCR_COUNT][32],
                 struct policy_result *ret, struct errmsg *e);

const char *pcr_verdict_to_string(enum pcr_verdict v);
