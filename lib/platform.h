/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The platform's side of variant qemu-vtpm: what a cloud does for its
 * vTPMs, done by the machine that runs the VMs (`arca mini`, tests). It owns
 * a platform CA, creates each VM's attestation key and certifies it. */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "errmsg.h"

struct tpm_ctx;

/* A fresh P-256 CA key and self-signed CA certificate valid for `days`. */
int platform_ca_create(const char *common_name, unsigned days, EVP_PKEY **ret_key, X509 **ret_cert,
                       struct errmsg *e);

/* Issue an X.509 certificate for `subject_key` signed by the CA. */
int platform_issue_cert(EVP_PKEY *ca_key, X509 *ca_cert, EVP_PKEY *subject_key, const char *common_name,
                        unsigned days, bool is_ca, X509 **ret, struct errmsg *e);

/* On a fresh TPM: create the AK at `ak_handle`, certify it with the CA and
 * write the DER certificate to NV TPM_AK_CERT_NV_INDEX. */
int platform_provision_ak(struct tpm_ctx *t, uint32_t ak_handle, EVP_PKEY *ca_key, X509 *ca_cert,
                          struct errmsg *e);

/* X509_STORE holding the PEM certificates of `path` as trust anchors. */
int platform_roots_load(const char *path, X509_STORE **ret, struct errmsg *e);
