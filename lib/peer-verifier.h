/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The "same image" verifier: a peer this node asks for secrets (a join
 * service for join or rejoin, a mesh member) must run the image this node
 * runs. Its PCRs in the mask must equal this node's own, read from this
 * node's TPM when the verifier is made, and its AK must be vouched for by
 * the platform CA. PCR 15 (the node lock) is never compared: a join
 * service has taken its lock, a joining or rebooted node has not. */

#include <stdint.h>

#include "errmsg.h"

#define PEER_PCRS_DEFAULT UINT32_C(0x7fff) /* PCRs 0-14 */

struct tpm_ctx;
struct verifier;

int peer_verifier_new(struct tpm_ctx *tpm, const char *variant, const char *platform_ca, uint32_t pcr_mask,
                      struct verifier **ret, struct errmsg *e);
