/* SPDX-License-Identifier: Apache-2.0 */
#include "peer-verifier.h"

#include <string.h>

#include "attest.h"
#include "keys.h"
#include "openssl-util.h"
#include "platform.h"
#include "policy.h"
#include "tpm.h"

int peer_verifier_new(struct tpm_ctx *tpm, const char *variant, const char *platform_ca, uint32_t pcr_mask,
                      struct verifier **ret, struct errmsg *e) {
        _cleanup_(X509_STORE_freep) X509_STORE *roots = NULL;
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct policy p = {};
        int r;

        pcr_mask &= ~(UINT32_C(1) << NODE_LOCK_PCR);
        r = tpm_pcr_read(tpm, pcrs, e);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                if (pcr_mask & (UINT32_C(1) << i)) {
                        p.pcr[i].set = true;
                        memcpy(p.pcr[i].expected, pcrs[i], TPM_DIGEST_SIZE);
                }
        r = platform_roots_load(platform_ca, &roots, e);
        if (r < 0)
                return r;
        return verifier_new(variant, &p, roots, ret, e);
}
