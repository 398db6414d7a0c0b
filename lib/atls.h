/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Attested TLS on OpenSSL.
 *
 * TLS 1.3 only. The attesting side makes a fresh P-256 key and self-signed
 * certificate for every handshake; the certificate carries the evidence in
 * an extension whose OID names the attestation variant. The evidence binds
 * SHA-256 of the certificate's SubjectPublicKeyInfo (user data) and the
 * verifier's 32-byte nonce, which travels in a TLS extension
 * (ATLS_EXT_NONCE): in the ClientHello for the server's evidence, in the
 * CertificateRequest for the client's (mutual mode). No tickets, no session
 * cache, no early data: every connection is attested afresh.
 *
 * Roles: a side with an attester attests itself; a side with a verifier
 * demands and verifies the peer's evidence. Server-attested: server has an
 * attester, client a verifier. Mutual: both have both. See docs/PROTOCOL.md. */

#include <openssl/ssl.h>
#include <stdbool.h>

#include "attest.h"
#include "errmsg.h"

#define ATLS_EXT_NONCE 0xa7ca
#define ATLS_MAX_CERT_CHAIN (EVIDENCE_MAX_SIZE + 16 * 1024)

/* How a peer refused this side's evidence, as the client learns it: after
 * the client's certificate, a verifying server ends the handshake with a
 * fatal alert that says which kind of check failed (never which value):
 *   certificate_revoked  genuine evidence whose measurements the policy no
 *                        longer allows (the server evicts such a member);
 *   bad_certificate      evidence that did not verify otherwise.
 * An alert counts only from a server this client has verified on that
 * connection: before that anyone on the path could send one. */
enum atls_refusal {
        ATLS_REFUSAL_NONE = 0,
        ATLS_REFUSAL_POLICY,
        ATLS_REFUSAL_EVIDENCE,
};

const char *atls_refusal_to_string(enum atls_refusal r);

/* One configuration serves all connections of its SSL_CTX and records the
 * latest outcome in it: use it from one thread (the daemons' event loop, or
 * one client request at a time). */
struct atls_config {
        struct attester *attester; /* borrowed; NULL: this side does not attest */
        struct verifier *verifier; /* borrowed; NULL: this side does not verify */
        /* Filled on the client side after each handshake attempt: the
         * verification of the server (also on failure). */
        struct verify_report last_report;
        bool last_verified;
        unsigned n_verifications;
        /* Why this side failed to attest itself, if it did. */
        struct errmsg last_attest_error;
        /* Client side: a verified server refused this side's evidence. */
        enum atls_refusal peer_refusal;
        /* Optional: told about every failed attestation of this side and
         * every refused peer (servers log these). */
        void (*on_failure)(const char *what, const char *reason, void *userdata);
        void *userdata;
};

/* Make an SSL_CTX for aTLS (server: server=true). cfg must outlive it. */
int atls_ctx_new(bool server, struct atls_config *cfg, SSL_CTX **ret, struct errmsg *e);
/* Configure an SSL_CTX created elsewhere. */
int atls_ctx_configure(SSL_CTX *ctx, bool server, struct atls_config *cfg, struct errmsg *e);

/* The verification of this connection's peer; NULL if none took place. */
const struct verify_report *atls_peer_report(const SSL *ssl);
bool atls_peer_verified(const SSL *ssl);

/* Refuse a connection that resumed a session: attestation would have been
 * skipped. Returns -EPERM for a resumed session. */
int atls_check_fresh(const SSL *ssl);
