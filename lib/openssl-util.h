/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Cleanup helpers for OpenSSL handles and the boundary where OpenSSL's error
 * queue becomes errno plus a message. */

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "errmsg.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_KDF *, EVP_KDF_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_KDF_CTX *, EVP_KDF_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_NAME *, X509_NAME_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_EXTENSION *, X509_EXTENSION_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_OBJECT *, ASN1_OBJECT_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_OCTET_STRING *, ASN1_OCTET_STRING_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ECDSA_SIG *, ECDSA_SIG_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(SSL *, SSL_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_SESSION *, SSL_SESSION_free);

static inline void sk_X509_pop_freep(STACK_OF(X509) **p) {
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}

/* Drain OpenSSL's error queue into e (if set) and return `error`. */
int openssl_error(struct errmsg *e, int error, const char *what);
/* Drain the queue silently and return `error`. */
int openssl_errno(int error);

/* Load PEM files. */
int pem_read_x509_file(const char *path, X509 **ret);
int pem_read_x509_stack_file(const char *path, STACK_OF(X509) **ret);
int pem_read_pubkey_file(const char *path, EVP_PKEY **ret);
int pem_read_privkey_file(const char *path, EVP_PKEY **ret);
int pem_write_x509_file(const char *path, X509 *x);
int pem_write_privkey_file(const char *path, EVP_PKEY *k);
int pem_write_pubkey_file(const char *path, EVP_PKEY *k);

/* Fresh P-256 key. */
int ec_p256_generate(EVP_PKEY **ret);

/* SHA-256 of the DER SubjectPublicKeyInfo of a key. */
int pubkey_spki_sha256(EVP_PKEY *k, uint8_t out[32]);
/* The same of a certificate's SubjectPublicKeyInfo, as encoded in it. */
int x509_spki_sha256(const X509 *x, uint8_t out[32]);

int sha256(const void *p, size_t n, uint8_t out[32]);
