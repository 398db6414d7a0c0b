/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Attestation variants: what makes a node's attestation key trusted. Each
 * variant is one file (variant-<name>.c) filling in this interface; the
 * rest of the evidence checks are common (attest.c). */

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "errmsg.h"
#include "evidence.h"

struct tpm_ctx;
struct cert_cache;

/* What the owner's configuration gives a verifier to anchor trust. */
struct variant_trust {
        X509_STORE *roots;        /* e.g. the platform CA of qemu-vtpm */
        struct cert_cache *certs; /* reuse of decoded certificates, may be NULL */
};

struct variant {
        const char *name;
        /* Certificate extension OID carrying evidence of this variant in aTLS. */
        const char *oid;
        /* Hierarchy the AK is a primary key of (TPM2_RH_ENDORSEMENT, ...):
         * the quote names its signer by the qualified name under it. */
        uint32_t ak_hierarchy;
        /* Attester side: add the platform's trust material for the AK
         * (certificate chain, SNP/TDX report) to the evidence. */
        int (*collect)(struct tpm_ctx *t, uint32_t ak_handle, struct evidence *ev, struct errmsg *e);
        /* Verifier side: establish that the AK is a genuine key of this
         * platform and return the public key the trust anchor vouches for.
         * Must never trust the AK unconditionally. */
        int (*trust_ak)(const struct variant_trust *trust, const struct evidence *ev, EVP_PKEY **ret,
                        struct errmsg *e);
};

const struct variant *variant_by_name(const char *name);
const struct variant *variant_by_oid(const char *oid);
/* NULL-terminated list of all variants. */
const struct variant *const *variant_all(void);

extern const struct variant variant_qemu_vtpm;
