/* SPDX-License-Identifier: Apache-2.0 */
#include "atls.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>

#include "evidence.h"
#include "openssl-util.h"
#include "secret.h"
#include "variant.h"

/* Per-connection state, attached to the SSL object. */
struct atls_conn {
        uint8_t my_nonce[ATTEST_NONCE_SIZE]; /* we chose it; the peer binds it */
        bool my_nonce_set;
        uint8_t peer_nonce[ATTEST_NONCE_SIZE]; /* the peer chose it; we bind it */
        bool peer_nonce_set;
        bool verified;
        bool report_set;
        bool failure_notified; /* on_failure was told about this connection */
        struct verify_report report;
};

static int conn_index = -1;
static int ctx_cfg_index = -1; /* SSL_CTX -> struct atls_config, for the info callback */
/* Fetched once: an implicit fetch per certificate costs a provider lookup. */
static EVP_MD *sha256_md;

static void conn_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
        free(ptr);
}

static void conn_index_alloc(void) {
        conn_index = SSL_get_ex_new_index(0, (void *) "arca-atls", NULL, NULL, conn_free_cb);
        ctx_cfg_index = SSL_CTX_get_ex_new_index(0, (void *) "arca-atls-config", NULL, NULL, NULL);
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int conn_index_init(void) {
        static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;

        if (!CRYPTO_THREAD_run_once(&once, conn_index_alloc) || conn_index < 0 || ctx_cfg_index < 0 || !sha256_md)
                return -ENOMEM;
        return 0;
}

static struct atls_conn *conn_get(SSL *ssl) {
        struct atls_conn *c;

        if (conn_index < 0)
                return NULL;
        c = SSL_get_ex_data(ssl, conn_index);
        if (c)
                return c;
        c = calloc(1, sizeof(*c));
        if (!c)
                return NULL;
        if (SSL_set_ex_data(ssl, conn_index, c) != 1) {
                free(c);
                return NULL;
        }
        return c;
}

const struct verify_report *atls_peer_report(const SSL *ssl) {
        struct atls_conn *c = conn_index >= 0 ? SSL_get_ex_data(ssl, conn_index) : NULL;
        return c && c->report_set ? &c->report : NULL;
}

bool atls_peer_verified(const SSL *ssl) {
        struct atls_conn *c = conn_index >= 0 ? SSL_get_ex_data(ssl, conn_index) : NULL;
        return c && c->verified && !SSL_session_reused((SSL *) ssl);
}

int atls_check_fresh(const SSL *ssl) {
        return SSL_session_reused((SSL *) ssl) ? -EPERM : 0;
}

const char *atls_refusal_to_string(enum atls_refusal r) {
        switch (r) {
        case ATLS_REFUSAL_POLICY:
                return "this node's evidence verified, but its measurements are not allowed by the policy (TLS alert "
                       "certificate_revoked)";
        case ATLS_REFUSAL_EVIDENCE:
                return "this node's evidence did not verify (TLS alert bad_certificate)";
        default:
                return "not refused";
        }
}

/* --- nonce extension ------------------------------------------------------- */

static int nonce_add_cb(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char **out,
                        size_t *outlen, X509 *x, size_t chainidx, int *al, void *arg) {
        struct atls_config *cfg = arg;
        struct atls_conn *c;

        /* Only a verifying side asks the peer to bind a nonce. */
        if (!cfg->verifier)
                return 0;
        c = conn_get(ssl);
        if (!c) {
                *al = SSL_AD_INTERNAL_ERROR;
                return -1;
        }
        if (!c->my_nonce_set) {
                if (secret_random(c->my_nonce, sizeof(c->my_nonce)) < 0) {
                        *al = SSL_AD_INTERNAL_ERROR;
                        return -1;
                }
                c->my_nonce_set = true;
        }
        *out = c->my_nonce;
        *outlen = sizeof(c->my_nonce);
        return 1;
}

static int nonce_parse_cb(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char *in,
                          size_t inlen, X509 *x, size_t chainidx, int *al, void *arg) {
        struct atls_conn *c;

        if (inlen != ATTEST_NONCE_SIZE) {
                *al = SSL_AD_DECODE_ERROR;
                return 0;
        }
        c = conn_get(ssl);
        if (!c) {
                *al = SSL_AD_INTERNAL_ERROR;
                return 0;
        }
        memcpy(c->peer_nonce, in, inlen);
        c->peer_nonce_set = true;
        return 1;
}

/* --- attesting side: per-connection key, certificate and evidence ------------ */

static int make_cert(const struct variant *variant, EVP_PKEY *key, const char *evidence, size_t size,
                     X509 **ret) {
        _cleanup_(X509_freep) X509 *x = X509_new();
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *oid = NULL;
        _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *os = NULL;
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;
        X509_NAME *name;

        if (!x)
                return -ENOMEM;
        oid = OBJ_txt2obj(variant->oid, 1);
        os = ASN1_OCTET_STRING_new();
        if (!oid || !os || size > INT32_MAX || ASN1_OCTET_STRING_set(os, (const unsigned char *) evidence, (int) size) != 1)
                return openssl_errno(-ENOMEM);
        ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, os);
        name = X509_get_subject_name(x);
        if (!ext || X509_set_version(x, X509_VERSION_3) != 1 ||
            !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "arca-atls", -1, -1, 0) != 1 ||
            X509_set_issuer_name(x, name) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || X509_set_pubkey(x, key) != 1 ||
            X509_add_ext(x, ext, -1) != 1 || X509_sign(x, key, sha256_md) <= 0)
                return openssl_errno(-EIO);
        *ret = TAKE_PTR(x);
        return 0;
}

static void notify(const struct atls_config *cfg, const char *what, const char *reason) {
        if (cfg->on_failure)
                cfg->on_failure(what, reason, cfg->userdata);
}

static int cert_cb_impl(SSL *ssl, struct atls_config *cfg);

static int cert_cb(SSL *ssl, void *arg) {
        struct atls_config *cfg = arg;
        int r = cert_cb_impl(ssl, cfg);

        if (r == 0) {
                struct atls_conn *c = conn_get(ssl);
                if (c)
                        c->failure_notified = true;
                notify(cfg, "attesting this node", errmsg_str(&cfg->last_attest_error));
        }
        return r;
}

static int cert_cb_impl(SSL *ssl, struct atls_config *cfg) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ char *doc = NULL;
        struct atls_conn *c;
        uint8_t user_data[ATTEST_USER_DATA_SIZE];
        size_t size;
        int r;

        if (!cfg->attester)
                return 1; /* nothing to present; a verifying peer will refuse */
        cfg->last_attest_error = (struct errmsg){};
        c = conn_get(ssl);
        if (!c)
                return 0;
        if (!c->peer_nonce_set) {
                errmsg_set(&cfg->last_attest_error, EPROTO,
                           "peer sent no attestation nonce: it is not an aTLS verifier");
                return 0;
        }
        r = ec_p256_generate(&key);
        if (r >= 0)
                r = pubkey_spki_sha256(key, user_data);
        if (r < 0) {
                errmsg_set(&cfg->last_attest_error, r, "cannot create the connection key");
                return 0;
        }
        r = attester_issue(cfg->attester, ATTEST_PURPOSE_ATLS, c->peer_nonce, user_data, &doc, &size,
                           &cfg->last_attest_error);
        if (r < 0)
                return 0;
        r = make_cert(variant_by_name(attester_variant(cfg->attester)), key, doc, size, &cert);
        if (r < 0) {
                errmsg_set(&cfg->last_attest_error, r, "cannot create the connection certificate");
                return 0;
        }
        if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1) {
                openssl_error(&cfg->last_attest_error, EIO, "cannot use the connection certificate");
                return 0;
        }
        return 1;
}

/* --- verifying side --------------------------------------------------------- */

/* Find the evidence extension; sets *ret_oid to the OID text of the first
 * extension that is under our 2.25 arc but names no known variant. */
static const ASN1_OCTET_STRING *find_evidence(X509 *cert, const struct variant **ret_variant, char *unknown,
                                              size_t unknown_size) {
        int n = X509_get_ext_count(cert);

        for (int i = 0; i < n; i++) {
                X509_EXTENSION *ext = X509_get_ext(cert, i);
                char oid[128];
                const struct variant *v;

                if (OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1) <= 0)
                        continue;
                v = variant_by_oid(oid);
                if (v) {
                        *ret_variant = v;
                        return X509_EXTENSION_get_data(ext);
                }
                if (strncmp(oid, "2.25.", 5) == 0 && !unknown[0])
                        snprintf(unknown, unknown_size, "%s", oid);
        }
        return NULL;
}

_printf_(3, 4) static void set_report(struct atls_conn *c, enum verify_check check, const char *fmt, ...) {
        va_list ap;

        c->report = (struct verify_report){ .failed = check };
        va_start(ap, fmt);
        vsnprintf(c->report.reason, sizeof(c->report.reason), fmt, ap);
        va_end(ap);
        c->report_set = true;
}

static int verify_cb(X509_STORE_CTX *store, void *arg) {
        struct atls_config *cfg = arg;
        SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        X509 *cert = X509_STORE_CTX_get0_cert(store);
        const ASN1_OCTET_STRING *os;
        const struct variant *variant = NULL;
        struct atls_conn *c;
        uint8_t user_data[ATTEST_USER_DATA_SIZE];
        char unknown[128] = "";
        int r;

        if (!ssl || !cfg->verifier)
                return 0;
        c = conn_get(ssl);
        if (!c)
                return 0;
        cfg->n_verifications++;
        c->verified = false;

        if (!c->my_nonce_set) {
                set_report(c, VERIFY_NONCE, "%s", "no nonce was sent to the peer");
                goto fail;
        }
        if (!cert) {
                set_report(c, VERIFY_FORMAT, "%s", "peer presented no certificate");
                goto fail;
        }
        os = find_evidence(cert, &variant, unknown, sizeof(unknown));
        if (!os) {
                if (unknown[0])
                        set_report(c, VERIFY_VARIANT,
                                   "attestation variant check failed: unknown variant OID %s in the peer certificate",
                                   unknown);
                else
                        set_report(c, VERIFY_FORMAT, "%s",
                                   "evidence format check failed: peer certificate carries no attestation evidence");
                goto fail;
        }
        if (!streq(variant->name, verifier_variant(cfg->verifier))) {
                char msg[160];
                snprintf(msg, sizeof(msg), "\"%s\", the configuration expects \"%s\"", variant->name,
                         verifier_variant(cfg->verifier));
                set_report(c, VERIFY_VARIANT, "attestation variant check failed: peer attests as %s", msg);
                goto fail;
        }
        /* The SubjectPublicKeyInfo as the certificate carries it: hashing
         * X509_get_pubkey's re-encoding costs ~140 us in OpenSSL 3's encoders. */
        if (x509_spki_sha256(cert, user_data) < 0) {
                set_report(c, VERIFY_FORMAT, "%s", "peer certificate has no usable public key");
                goto fail;
        }
        r = verifier_verify(cfg->verifier, ATTEST_PURPOSE_ATLS, c->my_nonce, user_data,
                            ASN1_STRING_get0_data(os), (size_t) ASN1_STRING_length(os), &c->report);
        c->report_set = true;
        if (r < 0)
                goto fail;
        c->verified = true;
        cfg->last_report = c->report;
        cfg->last_verified = true;
        return 1;
fail:
        cfg->last_report = c->report;
        cfg->last_verified = false;
        notify(cfg, "verifying the peer", c->report.reason);
        ERR_clear_error();
        /* The alert tells the peer which kind of check failed (atls.h):
         * OpenSSL sends certificate_revoked for CERT_REVOKED and
         * bad_certificate for CERT_REJECTED. The reason stays here. */
        X509_STORE_CTX_set_error(store, c->report.failed == VERIFY_POLICY ? X509_V_ERR_CERT_REVOKED
                                                                          : X509_V_ERR_CERT_REJECTED);
        return 0;
}

/* A client learns that a server refused its evidence from the alert it
 * receives; it counts only if this client verified that server. */
static void client_read_alert(const SSL *ssl, int ret) {
        struct atls_config *cfg = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_cfg_index);
        struct atls_conn *c = SSL_get_ex_data(ssl, conn_index);

        if (!cfg || !cfg->attester || !c || !c->verified || (ret >> 8) != SSL3_AL_FATAL)
                return;
        if ((ret & 0xff) == SSL_AD_CERTIFICATE_REVOKED)
                cfg->peer_refusal = ATLS_REFUSAL_POLICY;
        else if ((ret & 0xff) == SSL_AD_BAD_CERTIFICATE)
                cfg->peer_refusal = ATLS_REFUSAL_EVIDENCE;
}

/* A verifying server learns of a peer that presented no certificate (or
 * failed the handshake otherwise) only through the alert it sends. */
/* A refused client has often sent its request right behind its Finished
 * (TLS 1.3 clients are done before the server has checked their
 * certificate). Closing a socket with unread data sends a reset, and a
 * reset makes the client's kernel drop the alert it has not read yet:
 * the client would see an outage instead of a refusal. So after the fatal
 * alert: discard what has arrived and end our side (FIN after the alert);
 * the client sends nothing more before it hears from us. */
static void refusal_linger(const SSL *ssl) {
        char buf[4096];
        int fd = SSL_get_fd(ssl);

        if (fd < 0)
                return;
        (void) shutdown(fd, SHUT_WR);
        while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
}

static void info_cb(const SSL *ssl, int where, int ret) {
        struct atls_config *cfg;
        struct atls_conn *c;

        if ((where & SSL_CB_READ_ALERT) && !SSL_is_server((SSL *) ssl)) {
                client_read_alert(ssl, ret);
                return;
        }
        if (!(where & SSL_CB_WRITE_ALERT) || (ret >> 8) != SSL3_AL_FATAL || !SSL_is_server((SSL *) ssl))
                return;
        refusal_linger(ssl);
        cfg = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_cfg_index);
        c = SSL_get_ex_data(ssl, conn_index);
        if (!cfg || (c && (c->report_set || c->failure_notified)))
                return; /* reported already */
        if ((ret & 0xff) == TLS13_AD_CERTIFICATE_REQUIRED && (c = conn_get((SSL *) ssl))) {
                set_report(c, VERIFY_FORMAT, "%s",
                           "evidence format check failed: peer presented no certificate (not an aTLS attester)");
                cfg->last_report = c->report;
                cfg->last_verified = false;
                notify(cfg, "verifying the peer", c->report.reason);
                return;
        }
        notify(cfg, "handshaking", SSL_alert_desc_string_long(ret));
}

int atls_ctx_configure(SSL_CTX *ctx, bool server, struct atls_config *cfg, struct errmsg *e) {
        unsigned context = SSL_EXT_TLS1_3_ONLY | SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_3_CERTIFICATE_REQUEST;
        int r;

        r = conn_index_init();
        if (r < 0)
                return r;
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
                return openssl_error(e, EIO, "Cannot pin TLS 1.3");
        /* Every connection is attested afresh: no resumption of any kind. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(ctx, 0);
        SSL_CTX_set_max_early_data(ctx, 0);
        SSL_CTX_set_recv_max_early_data(ctx, 0);
        SSL_CTX_set_max_cert_list(ctx, ATLS_MAX_CERT_CHAIN);

        if (SSL_CTX_add_custom_ext(ctx, ATLS_EXT_NONCE, context, nonce_add_cb, NULL, cfg, nonce_parse_cb, cfg) != 1)
                return openssl_error(e, EIO, "Cannot register the aTLS nonce extension");
        SSL_CTX_set_cert_cb(ctx, cert_cb, cfg);
        if (SSL_CTX_set_ex_data(ctx, ctx_cfg_index, cfg) != 1)
                return openssl_error(e, ENOMEM, "Cannot attach the aTLS configuration");
        SSL_CTX_set_info_callback(ctx, info_cb);
        if (cfg->verifier) {
                SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                                   NULL);
                SSL_CTX_set_cert_verify_callback(ctx, verify_cb, cfg);
        } else
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
}

int atls_ctx_new(bool server, struct atls_config *cfg, SSL_CTX **ret, struct errmsg *e) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        int r;

        ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
        if (!ctx)
                return openssl_error(e, ENOMEM, "Cannot create TLS context");
        r = atls_ctx_configure(ctx, server, cfg, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(ctx);
        return 0;
}
