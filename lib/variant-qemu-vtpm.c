/* SPDX-License-Identifier: Apache-2.0 */
/* Variant qemu-vtpm: a VM with a software TPM (swtpm) whose platform (the
 * host running qemu, or `arca mini`) certifies the VM's attestation key with
 * a platform CA and stores the DER certificate in NV 0x01c10002. The owner's
 * configuration names the platform CA certificate. */
#include <errno.h>

#include "cert-cache.h"
#include "openssl-util.h"
#include "tpm.h"
#include "variant.h"

static int qemu_vtpm_collect(struct tpm_ctx *t, uint32_t ak_handle, struct evidence *ev,
                             struct errmsg *e) {
        _cleanup_free_ uint8_t *der = NULL;
        size_t size;
        int r;

        r = tpm_nv_read(t, TPM_AK_CERT_NV_INDEX, &der, &size, e);
        if (r == -ENOENT)
                return errmsg_set(e, r,
                                  "No AK certificate in NV index 0x%08x: the platform has not provisioned this TPM",
                                  TPM_AK_CERT_NV_INDEX);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ev->n_ak_certs; i++)
                blob_done(&ev->ak_certs[i]);
        ev->n_ak_certs = 0;
        r = blob_set(&ev->ak_certs[0], der, size);
        if (r < 0)
                return r;
        ev->n_ak_certs = 1;
        return 0;
}

static int qemu_vtpm_trust_ak(const struct variant_trust *trust, const struct evidence *ev, EVP_PKEY **ret,
                              struct errmsg *e) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *untrusted = NULL;
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
        _cleanup_(X509_freep) X509 *leaf = NULL;
        EVP_PKEY *key;
        int r;

        if (!trust || !trust->roots)
                return errmsg_set(e, EINVAL, "AK chain: no platform CA configured");
        if (ev->n_ak_certs == 0)
                return errmsg_set(e, EBADMSG, "AK chain: evidence carries no AK certificate");
        r = cert_cache_decode(trust->certs, ev->ak_certs[0].data, ev->ak_certs[0].size, &leaf);
        if (r < 0)
                return errmsg_set(e, r, "AK chain: AK certificate is not valid DER X.509");
        untrusted = sk_X509_new_null();
        if (!untrusted)
                return -ENOMEM;
        for (size_t i = 1; i < ev->n_ak_certs; i++) {
                X509 *x;
                r = cert_cache_decode(trust->certs, ev->ak_certs[i].data, ev->ak_certs[i].size, &x);
                if (r < 0)
                        return errmsg_set(e, r, "AK chain: certificate %zu is not valid DER X.509", i);
                if (!sk_X509_push(untrusted, x)) {
                        X509_free(x);
                        return -ENOMEM;
                }
        }
        ctx = X509_STORE_CTX_new();
        if (!ctx || X509_STORE_CTX_init(ctx, trust->roots, leaf, untrusted) != 1)
                return openssl_errno(-ENOMEM);
        if (X509_verify_cert(ctx) != 1) {
                int err = X509_STORE_CTX_get_error(ctx);
                ERR_clear_error();
                return errmsg_set(e, EPERM, "AK chain: certificate does not chain to the platform CA: %s",
                                  X509_verify_cert_error_string(err));
        }
        key = X509_get_pubkey(leaf);
        if (!key)
                return errmsg_set(e, EBADMSG, "AK chain: certificate has no usable public key");
        *ret = key;
        return 0;
}

const struct variant variant_qemu_vtpm = {
        .name = "qemu-vtpm",
        .oid = "2.25.33178128307475177193213353122301112382",
        .ak_hierarchy = 0x4000000b, /* TPM_RH_ENDORSEMENT, see tpm_ak_ensure() */
        .collect = qemu_vtpm_collect,
        .trust_ak = qemu_vtpm_trust_ak,
};
