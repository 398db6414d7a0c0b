/* SPDX-License-Identifier: Apache-2.0 */
/* Attested TLS end to end: real OpenSSL handshakes over loopback TCP, each
 * side with its own swtpm, the server in a thread. Besides the happy paths
 * (server-attested, mutual, the HTTP client, the CLI against the bootstrapper), one
 * test per way a peer can cheat: replayed evidence, evidence moved to another
 * key, an unknown variant OID, no evidence, TLS 1.2, resumption, a client
 * that sends no nonce. Where a hand-built malicious server is used, an honest
 * connection through the very same server comes first, so that each refusal
 * is due to the one thing the test changed. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <json.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atls-http.h"
#include "atls.h"
#include "attest.h"
#include "http-server.h"
#include "openssl-util.h"
#include "swtpm.h"
#include "tpm.h"
#include "variant.h"

#define IO_TIMEOUT_S 10

static struct test_swtpm tpm_a, tpm_b;
static struct test_platform plat;
static pid_t daemon_pid;   /* a bootstrapper this test started */
static char work_dir[256]; /* files of the CLI test */

/* --- fixtures ---------------------------------------------------------------- */

static void start_swtpm(struct test_swtpm *t) {
        int r = test_swtpm_start(t);

        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
}

static void setup_common(void) {
        setenv("TSS2_LOG", "all+none", 1);
        /* A peer that hangs up while we write must not kill the test. */
        signal(SIGPIPE, SIG_IGN);
}

static void setup_one(void) {
        setup_common();
        start_swtpm(&tpm_a);
        cr_assert_eq(test_platform_new(&plat), 0);
        cr_assert_eq(test_platform_provision(&plat, &tpm_a), 0);
}

static void setup_two(void) {
        setup_common();
        start_swtpm(&tpm_a);
        start_swtpm(&tpm_b);
        cr_assert_eq(test_platform_new(&plat), 0);
        cr_assert_eq(test_platform_provision(&plat, &tpm_a), 0);
        cr_assert_eq(test_platform_provision(&plat, &tpm_b), 0);
}

/* tpm_a provisioned, tpm_b left as it came from the factory. */
static void setup_cli(void) {
        setup_common();
        start_swtpm(&tpm_a);
        start_swtpm(&tpm_b);
        cr_assert_eq(test_platform_new(&plat), 0);
        cr_assert_eq(test_platform_provision(&plat, &tpm_a), 0);
}

static void teardown(void) {
        if (daemon_pid > 0) {
                kill(daemon_pid, SIGTERM);
                waitpid(daemon_pid, NULL, 0);
                daemon_pid = 0;
        }
        if (work_dir[0]) {
                char cmd[300];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work_dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", work_dir);
                work_dir[0] = 0;
        }
        test_swtpm_stop(&tpm_a);
        test_swtpm_stop(&tpm_b);
        test_platform_done(&plat);
}

/* --- nodes, policies, verifiers ---------------------------------------------- */

struct node {
        struct tpm_ctx *tpm;
        struct attester *attester;
};

static void node_open(struct node *n, const struct test_swtpm *t) {
        struct errmsg e = {};

        *n = (struct node){};
        cr_assert_eq(tpm_open(t->tcti, &n->tpm, &e), 0, "tpm_open: %s", errmsg_str(&e));
        cr_assert_eq(attester_new("qemu-vtpm", n->tpm, TPM_AK_HANDLE, &n->attester, &e), 0,
                     "attester_new: %s", errmsg_str(&e));
}

static void node_close(struct node *n) {
        attester_free(n->attester);
        tpm_free(n->tpm);
        *n = (struct node){};
}

/* Enforce `pcr` == value (NULL: all zero, as on a fresh swtpm). */
static void policy_expect(struct policy *p, unsigned pcr, const uint8_t value[32]) {
        p->pcr[pcr].set = true;
        p->pcr[pcr].warn_only = false;
        if (value)
                memcpy(p->pcr[pcr].expected, value, 32);
        else
                memset(p->pcr[pcr].expected, 0, 32);
}

static struct verifier *make_verifier(const struct policy *p) {
        struct verifier *v = NULL;
        struct errmsg e = {};

        cr_assert_eq(verifier_new("qemu-vtpm", p, plat.roots, &v, &e), 0, "verifier_new: %s",
                     errmsg_str(&e));
        return v;
}

/* The default verifier: PCR 0 must be zero, which it is on a fresh swtpm. */
static struct verifier *make_default_verifier(void) {
        struct policy p = {};

        policy_expect(&p, 0, NULL);
        return make_verifier(&p);
}

/* Extend `pcr` of t with `digest`; returns the new value (from zero). */
static void extend_pcr(const struct test_swtpm *t, unsigned pcr, uint8_t digest_byte,
                       uint8_t ret_value[32]) {
        _cleanup_tpm_ struct tpm_ctx *ctx = NULL;
        struct errmsg e = {};
        uint8_t digest[32], buf[64];

        memset(digest, digest_byte, sizeof(digest));
        cr_assert_eq(tpm_open(t->tcti, &ctx, &e), 0, "tpm_open: %s", errmsg_str(&e));
        cr_assert_eq(tpm_pcr_extend(ctx, pcr, digest, &e), 0, "tpm_pcr_extend: %s", errmsg_str(&e));
        memset(buf, 0, 32);
        memcpy(buf + 32, digest, 32);
        cr_assert_eq(sha256(buf, sizeof(buf), ret_value), 0);
}

static SSL_CTX *atls_ctx(bool server, struct atls_config *cfg) {
        SSL_CTX *ctx = NULL;
        struct errmsg e = {};

        cr_assert_eq(atls_ctx_new(server, cfg, &ctx, &e), 0, "atls_ctx_new: %s", errmsg_str(&e));
        return ctx;
}

/* --- sockets ------------------------------------------------------------------ */

static void set_timeouts(int fd) {
        struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int listen_loopback(uint16_t *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t sl = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
        cr_assert_eq(listen(fd, 8), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
        set_timeouts(fd); /* accept() gives up too, should the client never come */
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static int connect_loopback(uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0, "connect: %s", strerror(errno));
        set_timeouts(fd);
        return fd;
}

/* A port nobody listens on right now (for programs that take --port). */
static uint16_t free_port(void) {
        uint16_t port;
        int fd = listen_loopback(&port);

        close(fd);
        return port;
}

/* --- one TLS server connection in a thread ------------------------------------ */

struct serve_job {
        SSL_CTX *ctx;
        int lfd;
        pthread_t thread;
        /* results */
        int accept_ret;
        unsigned long err; /* last OpenSSL error of a failed handshake */
        bool verified;
        bool have_report;
        struct verify_report report;
        int reused;
        int version;
        bool wrote;
};

static void *serve_thread(void *arg) {
        struct serve_job *j = arg;
        const struct verify_report *rep;
        SSL *ssl;
        char buf[16];
        int fd;

        fd = accept4(j->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
                j->accept_ret = -errno;
                return NULL;
        }
        set_timeouts(fd);
        ssl = SSL_new(j->ctx);
        if (!ssl || SSL_set_fd(ssl, fd) != 1) {
                j->accept_ret = -ENOMEM;
                SSL_free(ssl);
                close(fd);
                return NULL;
        }
        j->accept_ret = SSL_accept(ssl);
        if (j->accept_ret != 1)
                j->err = ERR_peek_last_error();
        j->verified = atls_peer_verified(ssl);
        rep = atls_peer_report(ssl);
        if (rep) {
                j->have_report = true;
                j->report = *rep;
        }
        if (j->accept_ret == 1) {
                j->version = SSL_version(ssl);
                j->reused = SSL_session_reused(ssl);
                /* Tells the client that this side accepted it too. */
                j->wrote = SSL_write(ssl, "ok", 2) == 2;
                /* Wait for the client to hang up, so that closing first does
                 * not turn into a reset that eats "ok". */
                while (SSL_read(ssl, buf, sizeof(buf)) > 0)
                        ;
                SSL_shutdown(ssl);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return NULL;
}

struct client_result {
        int connect_ret;
        bool got_ok; /* the server accepted us and sent data */
        bool verified;
        bool have_report;
        struct verify_report report;
        int reused;
        int version;
        X509 *peer_cert;      /* owned */
        SSL_SESSION *session; /* owned */
};

static void client_result_done(struct client_result *r) {
        X509_free(r->peer_cert);
        SSL_SESSION_free(r->session);
        *r = (struct client_result){};
}

static void client_run(SSL_CTX *ctx, uint16_t port, SSL_SESSION *resume, struct client_result *res) {
        const struct verify_report *rep;
        char buf[2];
        size_t got = 0;
        SSL *ssl;
        int fd;

        *res = (struct client_result){};
        fd = connect_loopback(port);
        ssl = SSL_new(ctx);
        cr_assert_not_null(ssl);
        cr_assert_eq(SSL_set_fd(ssl, fd), 1);
        if (resume)
                cr_assert_eq(SSL_set_session(ssl, resume), 1);
        res->connect_ret = SSL_connect(ssl);
        res->verified = atls_peer_verified(ssl);
        rep = atls_peer_report(ssl);
        if (rep) {
                res->have_report = true;
                res->report = *rep;
        }
        res->peer_cert = SSL_get1_peer_certificate(ssl);
        if (res->connect_ret == 1) {
                res->version = SSL_version(ssl);
                res->reused = SSL_session_reused(ssl);
                /* In TLS 1.3 the client finishes before the server has
                 * checked the client's certificate: only data proves that
                 * the server accepted us. */
                while (got < sizeof(buf)) {
                        int n = SSL_read(ssl, buf + got, (int) (sizeof(buf) - got));
                        if (n <= 0)
                                break;
                        got += (size_t) n;
                }
                res->got_ok = got == 2 && memcmp(buf, "ok", 2) == 0;
                /* Post-handshake messages (tickets, if any) have arrived. */
                res->session = SSL_get1_session(ssl);
                SSL_shutdown(ssl);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
}

/* One connection from cctx to sctx. */
static void run_pair(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *resume, struct serve_job *sj,
                     struct client_result *cr) {
        uint16_t port;
        int lfd = listen_loopback(&port);

        *sj = (struct serve_job){ .ctx = sctx, .lfd = lfd };
        cr_assert_eq(pthread_create(&sj->thread, NULL, serve_thread, sj), 0);
        client_run(cctx, port, resume, cr);
        cr_assert_eq(pthread_join(sj->thread, NULL), 0);
        close(lfd);
}

/* --- a malicious server built with plain OpenSSL ------------------------------- */

enum evil_mode {
        EVIL_HONEST,       /* what an aTLS server does: fresh key, evidence for this nonce */
        EVIL_REPLAY,       /* the previous connection's certificate and key */
        EVIL_OLD_EVIDENCE, /* evidence captured elsewhere, in a certificate with a fresh key */
        EVIL_UNKNOWN_OID,  /* fresh evidence under an OID that names no variant */
        EVIL_NO_EVIDENCE,  /* a plain self-signed certificate */
};

struct evil {
        enum evil_mode mode;
        struct attester *attester;
        uint8_t nonce[ATTEST_NONCE_SIZE];
        bool nonce_seen;
        X509 *last_cert; /* what the last EVIL_HONEST connection presented */
        EVP_PKEY *last_key;
        char *stolen; /* evidence for EVIL_OLD_EVIDENCE */
        size_t stolen_size;
        char error[512];
};

static void evil_done(struct evil *ev) {
        X509_free(ev->last_cert);
        EVP_PKEY_free(ev->last_key);
        free(ev->stolen);
        *ev = (struct evil){};
}

/* A self-signed certificate for key, with data (if any) in an extension
 * under oid. */
static X509 *make_cert(EVP_PKEY *key, const char *oid, const void *data, size_t size) {
        _cleanup_(X509_freep) X509 *x = X509_new();
        X509_NAME *name;

        if (!x)
                return NULL;
        name = X509_get_subject_name(x);
        if (X509_set_version(x, X509_VERSION_3) != 1 || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "evil", -1, -1,
                                       0) != 1 ||
            X509_set_issuer_name(x, name) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || X509_set_pubkey(x, key) != 1)
                return NULL;
        if (oid) {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
                _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
                _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;

                if (!obj || !os || ASN1_OCTET_STRING_set(os, data, (int) size) != 1)
                        return NULL;
                ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
                if (!ext || X509_add_ext(x, ext, -1) != 1)
                        return NULL;
        }
        if (X509_sign(x, key, EVP_sha256()) <= 0)
                return NULL;
        return TAKE_PTR(x);
}

/* The evidence a certificate carries under the qemu-vtpm OID. */
static void cert_evidence(X509 *cert, char **ret, size_t *ret_size) {
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(variant_qemu_vtpm.oid, 1);
        const ASN1_OCTET_STRING *os;
        int i;

        cr_assert_not_null(obj);
        i = X509_get_ext_by_OBJ(cert, obj, -1);
        cr_assert_geq(i, 0, "certificate carries no qemu-vtpm evidence");
        os = X509_EXTENSION_get_data(X509_get_ext(cert, i));
        *ret_size = (size_t) ASN1_STRING_length(os);
        *ret = malloc(*ret_size);
        cr_assert_not_null(*ret);
        memcpy(*ret, ASN1_STRING_get0_data(os), *ret_size);
}

static int evil_nonce_parse(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char *in,
                            size_t inlen, X509 *x, size_t chainidx, int *al, void *arg) {
        struct evil *ev = arg;

        if (inlen != ATTEST_NONCE_SIZE) {
                *al = SSL_AD_DECODE_ERROR;
                return 0;
        }
        memcpy(ev->nonce, in, inlen);
        ev->nonce_seen = true;
        return 1;
}

static int evil_cert_fail(struct evil *ev, const char *what) {
        snprintf(ev->error, sizeof(ev->error), "%s", what);
        return 0;
}

static int evil_cert_cb(SSL *ssl, void *arg) {
        struct evil *ev = arg;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ char *doc = NULL;
        uint8_t user_data[ATTEST_USER_DATA_SIZE];
        struct errmsg e = {};
        size_t size = 0;

        if (ev->mode == EVIL_REPLAY) {
                if (!ev->last_cert)
                        return evil_cert_fail(ev, "nothing to replay");
                if (SSL_use_certificate(ssl, ev->last_cert) != 1 ||
                    SSL_use_PrivateKey(ssl, ev->last_key) != 1)
                        return evil_cert_fail(ev, "cannot use the replayed certificate");
                return 1;
        }
        if (ec_p256_generate(&key) < 0 || pubkey_spki_sha256(key, user_data) < 0)
                return evil_cert_fail(ev, "cannot make a key");
        switch (ev->mode) {
        case EVIL_HONEST:
        case EVIL_UNKNOWN_OID:
                if (!ev->nonce_seen)
                        return evil_cert_fail(ev, "client sent no nonce");
                if (attester_issue(ev->attester, ATTEST_PURPOSE_ATLS, ev->nonce, user_data, &doc, &size,
                                   &e) < 0)
                        return evil_cert_fail(ev, errmsg_str(&e));
                cert = make_cert(key, ev->mode == EVIL_HONEST ? variant_qemu_vtpm.oid : "2.25.1234", doc,
                                 size);
                break;
        case EVIL_OLD_EVIDENCE:
                cert = make_cert(key, variant_qemu_vtpm.oid, ev->stolen, ev->stolen_size);
                break;
        case EVIL_NO_EVIDENCE:
                cert = make_cert(key, NULL, NULL, 0);
                break;
        case EVIL_REPLAY:
                break;
        }
        if (!cert)
                return evil_cert_fail(ev, "cannot make the certificate");
        if (SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1)
                return evil_cert_fail(ev, "cannot use the certificate");
        if (ev->mode == EVIL_HONEST) {
                X509_free(ev->last_cert);
                EVP_PKEY_free(ev->last_key);
                ev->last_cert = TAKE_PTR(cert);
                ev->last_key = TAKE_PTR(key);
        }
        return 1;
}

static SSL_CTX *evil_ctx(struct evil *ev) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

        cr_assert_not_null(ctx);
        cr_assert_eq(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
        cr_assert_eq(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION), 1);
        SSL_CTX_set_num_tickets(ctx, 0);
        cr_assert_eq(SSL_CTX_add_custom_ext(ctx, ATLS_EXT_NONCE, SSL_EXT_TLS1_3_ONLY | SSL_EXT_CLIENT_HELLO,
                                            NULL, NULL, NULL, evil_nonce_parse, ev),
                     1);
        SSL_CTX_set_cert_cb(ctx, evil_cert_cb, ev);
        return ctx;
}

/* One connection from an aTLS client to the malicious server in `mode`. */
static void evil_connect(struct evil *ev, SSL_CTX *sctx, SSL_CTX *cctx, enum evil_mode mode,
                         struct client_result *cr) {
        struct serve_job sj;

        ev->mode = mode;
        ev->nonce_seen = false;
        ev->error[0] = 0;
        run_pair(sctx, cctx, NULL, &sj, cr);
        cr_assert_eq(ev->error[0], 0, "malicious server could not do its part: %s", ev->error);
}

static void assert_refused(const struct client_result *cr, const struct atls_config *cfg,
                           enum verify_check check) {
        cr_assert_neq(cr->connect_ret, 1, "client accepted a server it should refuse");
        cr_assert_not(cr->verified);
        cr_assert(cr->have_report, "no verification report on the refused connection");
        cr_assert_eq(cr->report.failed, check, "failed check %s, expected %s: %s",
                     verify_check_to_string(cr->report.failed), verify_check_to_string(check),
                     cr->report.reason);
        cr_assert_not(cfg->last_verified);
        cr_assert_eq(cfg->last_report.failed, check);
}

/* The honest run of the malicious server: the client must accept it. */
static void evil_control(struct evil *ev, SSL_CTX *sctx, SSL_CTX *cctx) {
        struct client_result cr;

        evil_connect(ev, sctx, cctx, EVIL_HONEST, &cr);
        cr_assert_eq(cr.connect_ret, 1, "honest run of the hand-built server failed: %s", cr.report.reason);
        cr_assert(cr.verified);
        cr_assert(cr.got_ok);
        client_result_done(&cr);
}

/* --- 1. server-attested ---------------------------------------------------------- */

Test(atls, server_attested_handshake_verifies, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config scfg = {}, ccfg = {};
        struct serve_job sj;
        struct client_result cr;
        SSL_CTX *sctx, *cctx;

        node_open(&srv, &tpm_a);
        scfg.attester = srv.attester;
        ccfg.verifier = make_default_verifier();
        sctx = atls_ctx(true, &scfg);
        cctx = atls_ctx(false, &ccfg);

        run_pair(sctx, cctx, NULL, &sj, &cr);
        cr_assert_eq(cr.connect_ret, 1, "handshake failed: %s / %s", cr.report.reason,
                     errmsg_str(&scfg.last_attest_error));
        cr_assert_eq(sj.accept_ret, 1);
        cr_assert(cr.got_ok);
        cr_assert_eq(cr.version, TLS1_3_VERSION);
        cr_assert_eq(sj.version, TLS1_3_VERSION);

        /* The client verified the server... */
        cr_assert(cr.verified);
        cr_assert(cr.have_report);
        cr_assert_eq(cr.report.failed, VERIFY_OK, "%s", cr.report.reason);
        cr_assert_str_eq(cr.report.variant, "qemu-vtpm");
        cr_assert(cr.report.have_pcrs);
        cr_assert_eq(cr.report.policy.verdict[0], PCR_MATCH);
        for (unsigned i = 1; i < POLICY_PCR_COUNT; i++)
                cr_assert_eq(cr.report.policy.verdict[i], PCR_NOT_IN_POLICY, "PCR %u", i);
        cr_assert_eq(cr.report.policy.n_enforced_mismatch, 0);
        cr_assert(ccfg.last_verified);
        cr_assert_eq(ccfg.n_verifications, 1);
        cr_assert_eq(ccfg.last_report.failed, VERIFY_OK);

        /* ...with a certificate that carries qemu-vtpm evidence. */
        cr_assert_not_null(cr.peer_cert);
        {
                _cleanup_free_ char *doc = NULL;
                size_t size;
                cert_evidence(cr.peer_cert, &doc, &size);
                cr_assert_gt(size, 0);
        }

        /* The server verified nothing: it has no verifier. */
        cr_assert_not(sj.have_report);
        cr_assert_not(sj.verified);
        cr_assert_eq(scfg.n_verifications, 0);

        client_result_done(&cr);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        verifier_free(ccfg.verifier);
        node_close(&srv);
}

/* --- 2. and 3. mutual ------------------------------------------------------------- */

Test(atls, mutual_both_sides_verify, .init = setup_two, .fini = teardown) {
        struct node srv, cli;
        struct atls_config scfg = {}, ccfg = {};
        struct policy spol = {}, cpol = {};
        struct serve_job sj;
        struct client_result cr;
        uint8_t pcr9[32];
        SSL_CTX *sctx, *cctx;

        /* Only the client's TPM has this PCR 9, so the server's report shows
         * that it verified the client's evidence and not some other. */
        extend_pcr(&tpm_b, 9, 0x5a, pcr9);
        node_open(&srv, &tpm_a);
        node_open(&cli, &tpm_b);
        policy_expect(&spol, 0, NULL);
        policy_expect(&spol, 9, pcr9);
        policy_expect(&cpol, 0, NULL);
        policy_expect(&cpol, 9, NULL);
        scfg.attester = srv.attester;
        scfg.verifier = make_verifier(&spol);
        ccfg.attester = cli.attester;
        ccfg.verifier = make_verifier(&cpol);
        sctx = atls_ctx(true, &scfg);
        cctx = atls_ctx(false, &ccfg);

        run_pair(sctx, cctx, NULL, &sj, &cr);
        cr_assert_eq(cr.connect_ret, 1, "client: %s / %s", cr.report.reason,
                     errmsg_str(&ccfg.last_attest_error));
        cr_assert_eq(sj.accept_ret, 1, "server: %s / %s", sj.report.reason,
                     errmsg_str(&scfg.last_attest_error));
        cr_assert(cr.got_ok);

        cr_assert(cr.verified);
        cr_assert(cr.have_report);
        cr_assert_eq(cr.report.failed, VERIFY_OK, "%s", cr.report.reason);
        cr_assert_eq(cr.report.policy.verdict[9], PCR_MATCH);

        cr_assert(sj.verified);
        cr_assert(sj.have_report);
        cr_assert_eq(sj.report.failed, VERIFY_OK, "%s", sj.report.reason);
        cr_assert(sj.report.have_pcrs);
        cr_assert_eq(sj.report.policy.verdict[0], PCR_MATCH);
        cr_assert_eq(sj.report.policy.verdict[9], PCR_MATCH);
        cr_assert_eq(memcmp(sj.report.pcrs[9], pcr9, 32), 0);
        cr_assert_eq(scfg.n_verifications, 1);
        cr_assert_eq(ccfg.n_verifications, 1);
        cr_assert_eq(ccfg.peer_refusal, ATLS_REFUSAL_NONE, "an accepted client is not refused");

        client_result_done(&cr);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        verifier_free(scfg.verifier);
        verifier_free(ccfg.verifier);
        node_close(&cli);
        node_close(&srv);
}

struct failures {
        unsigned n;
        char what[128];
        char reason[512];
};

static void record_failure(const char *what, const char *reason, void *userdata) {
        struct failures *f = userdata;

        f->n++;
        snprintf(f->what, sizeof(f->what), "%s", what);
        snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

Test(atls, mutual_server_refuses_client_outside_policy, .init = setup_two, .fini = teardown) {
        struct node srv, cli;
        struct atls_config scfg = {}, ccfg = {};
        struct policy spol = {};
        struct failures sfail = {};
        struct serve_job sj;
        struct client_result cr;
        uint8_t pcr9[32];
        SSL_CTX *sctx, *cctx;

        extend_pcr(&tpm_b, 9, 0x5a, pcr9);
        node_open(&srv, &tpm_a);
        node_open(&cli, &tpm_b);
        policy_expect(&spol, 0, NULL);
        policy_expect(&spol, 9, NULL); /* the client's PCR 9 is not zero */
        scfg.attester = srv.attester;
        scfg.verifier = make_verifier(&spol);
        scfg.on_failure = record_failure;
        scfg.userdata = &sfail;
        ccfg.attester = cli.attester;
        ccfg.verifier = make_default_verifier();
        sctx = atls_ctx(true, &scfg);
        cctx = atls_ctx(false, &ccfg);

        run_pair(sctx, cctx, NULL, &sj, &cr);
        cr_assert_neq(sj.accept_ret, 1, "server accepted a client outside its policy");
        cr_assert_not(cr.got_ok, "client got data over a connection the server should refuse");
        /* The client itself found the server fine. */
        cr_assert(ccfg.last_verified, "%s", ccfg.last_report.reason);

        cr_assert_not(sj.verified);
        cr_assert(sj.have_report);
        cr_assert_eq(sj.report.failed, VERIFY_POLICY, "%s: %s", verify_check_to_string(sj.report.failed),
                     sj.report.reason);
        cr_assert_not_null(strstr(sj.report.reason, "PCR 9"), "reason does not name PCR 9: %s",
                           sj.report.reason);
        cr_assert(sj.report.have_pcrs);
        cr_assert_eq(sj.report.policy.verdict[9], PCR_MISMATCH_ENFORCED);
        cr_assert_eq(sj.report.policy.verdict[0], PCR_MATCH);
        cr_assert_eq(memcmp(sj.report.pcrs[9], pcr9, 32), 0);
        cr_assert_not(scfg.last_verified);
        cr_assert_eq(sfail.n, 1);
        cr_assert_not_null(strstr(sfail.reason, "PCR 9"), "on_failure: %s: %s", sfail.what, sfail.reason);
        /* The client learns that it was refused for its measurements (a
         * drifted member), which it can tell from an outage. */
        cr_assert_eq(ccfg.peer_refusal, ATLS_REFUSAL_POLICY, "%s", atls_refusal_to_string(ccfg.peer_refusal));

        client_result_done(&cr);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        verifier_free(scfg.verifier);
        verifier_free(ccfg.verifier);
        node_close(&cli);
        node_close(&srv);
}

/* A verifying server and a client that verifies but cannot attest. */
Test(atls, mutual_server_refuses_client_without_evidence, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config scfg = {}, ccfg = {};
        struct serve_job sj;
        struct client_result cr;
        struct failures sfail = {};
        SSL_CTX *sctx, *cctx;

        node_open(&srv, &tpm_a);
        scfg.attester = srv.attester;
        scfg.verifier = make_default_verifier();
        scfg.on_failure = record_failure;
        scfg.userdata = &sfail;
        ccfg.verifier = make_default_verifier(); /* verifies, but cannot attest */
        sctx = atls_ctx(true, &scfg);
        cctx = atls_ctx(false, &ccfg);

        run_pair(sctx, cctx, NULL, &sj, &cr);
        cr_assert_not(cr.got_ok, "server accepted a client that did not attest");
        cr_assert_neq(sj.accept_ret, 1);
        cr_assert_eq(ERR_GET_REASON(sj.err), SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE, "%s",
                     ERR_reason_error_string(sj.err));
        cr_assert_not(sj.verified);
        cr_assert_eq(scfg.n_verifications, 0);
        /* The refusal is reported, so the daemon can log it. */
        cr_assert_eq(sfail.n, 1);
        cr_assert_str_eq(sfail.what, "verifying the peer");
        cr_assert_not_null(strstr(sfail.reason, "no certificate"), "%s", sfail.reason);
        cr_assert_eq(scfg.last_report.failed, VERIFY_FORMAT);
        client_result_done(&cr);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        verifier_free(scfg.verifier);
        verifier_free(ccfg.verifier);
        node_close(&srv);
}

/* --- 4., 5., 6. malicious servers -------------------------------------------------- */

Test(atls, replayed_evidence_is_refused, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config scfg = {}, ccfg = {};
        struct evil ev = {};
        struct serve_job sj;
        struct client_result cr;
        SSL_CTX *real, *evil, *cctx;

        node_open(&srv, &tpm_a);
        scfg.attester = srv.attester;
        ev.attester = srv.attester;
        ccfg.verifier = make_default_verifier();
        real = atls_ctx(true, &scfg);
        evil = evil_ctx(&ev);
        cctx = atls_ctx(false, &ccfg);

        /* Evidence of a genuine aTLS server, as any client of it sees it. */
        run_pair(real, cctx, NULL, &sj, &cr);
        cr_assert_eq(cr.connect_ret, 1, "%s", cr.report.reason);
        cr_assert(cr.verified);
        cert_evidence(cr.peer_cert, &ev.stolen, &ev.stolen_size);
        client_result_done(&cr);

        /* First connection to the hand-built server: honest, accepted. */
        evil_control(&ev, evil, cctx);
        cr_assert_not_null(ev.last_cert);

        /* Second connection: the same certificate and key again. The key
         * matches the evidence, the nonce does not. */
        evil_connect(&ev, evil, cctx, EVIL_REPLAY, &cr);
        assert_refused(&cr, &ccfg, VERIFY_NONCE);
        cr_assert_not_null(strstr(cr.report.reason, "nonce"), "%s", cr.report.reason);
        client_result_done(&cr);

        /* The genuine server's evidence in a certificate with a fresh key. */
        evil_connect(&ev, evil, cctx, EVIL_OLD_EVIDENCE, &cr);
        assert_refused(&cr, &ccfg, VERIFY_USER_DATA);
        client_result_done(&cr);

        cr_assert_eq(ccfg.n_verifications, 4);
        evil_done(&ev);
        SSL_CTX_free(cctx);
        SSL_CTX_free(evil);
        SSL_CTX_free(real);
        verifier_free(ccfg.verifier);
        node_close(&srv);
}

Test(atls, unknown_variant_oid_is_refused, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config ccfg = {};
        struct evil ev = {};
        struct client_result cr;
        SSL_CTX *evil, *cctx;

        node_open(&srv, &tpm_a);
        ev.attester = srv.attester;
        ccfg.verifier = make_default_verifier();
        evil = evil_ctx(&ev);
        cctx = atls_ctx(false, &ccfg);

        evil_control(&ev, evil, cctx);
        /* Fresh, valid evidence; only the OID is one no variant has. */
        evil_connect(&ev, evil, cctx, EVIL_UNKNOWN_OID, &cr);
        assert_refused(&cr, &ccfg, VERIFY_VARIANT);
        cr_assert_not_null(strstr(cr.report.reason, "unknown variant OID"), "%s", cr.report.reason);
        cr_assert_not_null(strstr(cr.report.reason, "2.25.1234"), "%s", cr.report.reason);
        client_result_done(&cr);

        evil_done(&ev);
        SSL_CTX_free(cctx);
        SSL_CTX_free(evil);
        verifier_free(ccfg.verifier);
        node_close(&srv);
}

Test(atls, certificate_without_evidence_is_refused, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config ccfg = {};
        struct evil ev = {};
        struct client_result cr;
        SSL_CTX *evil, *cctx;

        node_open(&srv, &tpm_a);
        ev.attester = srv.attester;
        ccfg.verifier = make_default_verifier();
        evil = evil_ctx(&ev);
        cctx = atls_ctx(false, &ccfg);

        evil_control(&ev, evil, cctx);
        evil_connect(&ev, evil, cctx, EVIL_NO_EVIDENCE, &cr);
        assert_refused(&cr, &ccfg, VERIFY_FORMAT);
        cr_assert_not_null(strstr(cr.report.reason, "no attestation evidence"), "%s", cr.report.reason);
        client_result_done(&cr);

        evil_done(&ev);
        SSL_CTX_free(cctx);
        SSL_CTX_free(evil);
        verifier_free(ccfg.verifier);
        node_close(&srv);
}

/* --- 7. and 9. clients that are not aTLS 1.3 ---------------------------------------- */

static SSL_CTX *plain_client_ctx(int max_version) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        cr_assert_not_null(ctx);
        cr_assert_eq(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
}

Test(atls, tls12_client_is_refused, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config scfg = {};
        struct serve_job sj;
        struct client_result cr;
        SSL_CTX *sctx, *cctx;

        node_open(&srv, &tpm_a);
        scfg.attester = srv.attester;
        sctx = atls_ctx(true, &scfg);
        cctx = plain_client_ctx(TLS1_2_VERSION);

        run_pair(sctx, cctx, NULL, &sj, &cr);
        cr_assert_neq(cr.connect_ret, 1, "a TLS 1.2 client completed a handshake");
        cr_assert_neq(sj.accept_ret, 1);
        cr_assert_eq(ERR_GET_REASON(sj.err), SSL_R_UNSUPPORTED_PROTOCOL,
                     "server failed for another reason: %s", ERR_reason_error_string(sj.err));
        cr_assert_null(cr.peer_cert, "server sent a certificate to a TLS 1.2 client");
        client_result_done(&cr);

        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        node_close(&srv);
}

static int fixed_nonce_add(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char **out,
                           size_t *outlen, X509 *x, size_t chainidx, int *al, void *arg) {
        static const unsigned char nonce[ATTEST_NONCE_SIZE] = { 0x42 };

        *out = nonce;
        *outlen = sizeof(nonce);
        return 1;
}

Test(atls, client_without_nonce_gets_no_evidence, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config scfg = {};
        struct failures sfail = {};
        struct serve_job sj;
        struct client_result cr;
        SSL_CTX *sctx, *plain, *with_nonce;

        node_open(&srv, &tpm_a);
        scfg.attester = srv.attester;
        scfg.on_failure = record_failure;
        scfg.userdata = &sfail;
        sctx = atls_ctx(true, &scfg);
        plain = plain_client_ctx(TLS1_3_VERSION);
        with_nonce = plain_client_ctx(TLS1_3_VERSION);
        cr_assert_eq(SSL_CTX_add_custom_ext(with_nonce, ATLS_EXT_NONCE,
                                            SSL_EXT_TLS1_3_ONLY | SSL_EXT_CLIENT_HELLO, fixed_nonce_add,
                                            NULL, NULL, NULL, NULL),
                     1);

        /* Control: the same plain client plus a nonce gets evidence. */
        run_pair(sctx, with_nonce, NULL, &sj, &cr);
        cr_assert_eq(cr.connect_ret, 1, "%s", errmsg_str(&scfg.last_attest_error));
        cr_assert_not_null(cr.peer_cert);
        client_result_done(&cr);
        cr_assert_eq(sfail.n, 0);

        run_pair(sctx, plain, NULL, &sj, &cr);
        cr_assert_neq(cr.connect_ret, 1, "a client without nonce completed a handshake");
        cr_assert_neq(sj.accept_ret, 1);
        cr_assert_null(cr.peer_cert, "server sent a certificate (evidence) without a nonce");
        cr_assert_not_null(strstr(errmsg_str(&scfg.last_attest_error), "nonce"), "%s",
                           errmsg_str(&scfg.last_attest_error));
        cr_assert_eq(sfail.n, 1);
        cr_assert_str_eq(sfail.what, "attesting this node");
        client_result_done(&cr);

        SSL_CTX_free(with_nonce);
        SSL_CTX_free(plain);
        SSL_CTX_free(sctx);
        node_close(&srv);
}

/* --- 8. resumption ------------------------------------------------------------------- */

Test(atls, resumption_never_skips_attestation, .init = setup_one, .fini = teardown) {
        struct node srv;
        struct atls_config scfg = {}, ccfg = {};
        struct serve_job sj;
        struct client_result first, second;
        SSL_CTX *sctx, *cctx;

        node_open(&srv, &tpm_a);
        scfg.attester = srv.attester;
        ccfg.verifier = make_default_verifier();
        sctx = atls_ctx(true, &scfg);
        cctx = atls_ctx(false, &ccfg);

        run_pair(sctx, cctx, NULL, &sj, &first);
        cr_assert_eq(first.connect_ret, 1, "%s", first.report.reason);
        cr_assert(first.got_ok);
        cr_assert_not_null(first.session);
        cr_assert_eq(SSL_SESSION_has_ticket(first.session), 0, "the server issued a session ticket");

        run_pair(sctx, cctx, first.session, &sj, &second);
        cr_assert_eq(second.connect_ret, 1, "%s", second.report.reason);
        cr_assert(second.got_ok);
        cr_assert_eq(second.reused, 0, "the second connection resumed the first session");
        cr_assert_eq(sj.reused, 0);
        cr_assert(second.verified);
        cr_assert_eq(ccfg.n_verifications, 2, "attestation was skipped: %u verifications",
                     ccfg.n_verifications);

        client_result_done(&second);
        client_result_done(&first);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        verifier_free(ccfg.verifier);
        node_close(&srv);
}

/* --- 10. the aTLS HTTP client against http_server ------------------------------------------------- */

struct loop {
        struct event_base *base;
        struct event *tick;
        atomic_bool stop;
        pthread_t thread;
};

/* libevent is not set up for threads here; the loop polls for the stop
 * request itself. */
static void loop_tick(evutil_socket_t fd, short what, void *arg) {
        struct loop *l = arg;

        if (atomic_load(&l->stop))
                event_base_loopbreak(l->base);
}

static void *loop_thread(void *arg) {
        struct loop *l = arg;

        event_base_dispatch(l->base);
        return NULL;
}

static void handle_hello(struct evhttp_request *req, void *arg) {
        json_object *o = json_object_new_object();
        SSL *ssl = http_request_ssl(req);

        json_object_object_add(o, "hello", json_object_new_string("world"));
        json_object_object_add(o, "tls", json_object_new_string(ssl ? SSL_get_version(ssl) : "none"));
        http_reply_json(req, 200, o);
        json_object_put(o);
}

static bool json_str_eq(json_object *o, const char *key, const char *want) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
               strcmp(json_object_get_string(v), want) == 0;
}

/* An aTLS http_server attested by tpm_a, its loop in a thread: routes
 * are added between fixture_up and fixture_run. */
struct fixture {
        struct node srv;
        struct atls_config scfg;
        SSL_CTX *sctx;
        struct http_server *hs;
        struct loop l;
};

/* verifier: NULL for a server-attested server, else mutual. */
static void fixture_up(struct fixture *f, struct verifier *verifier) {
        struct timeval tv = { .tv_usec = 20000 };
        struct errmsg e = {};

        node_open(&f->srv, &tpm_a);
        f->scfg = (struct atls_config){ .attester = f->srv.attester, .verifier = verifier };
        f->sctx = atls_ctx(true, &f->scfg);
        f->l.base = event_base_new();
        cr_assert_not_null(f->l.base);
        cr_assert_eq(http_server_new(f->l.base, f->sctx, "127.0.0.1", 0, &f->hs, &e), 0, "%s", errmsg_str(&e));
        f->l.tick = event_new(f->l.base, -1, EV_PERSIST, loop_tick, &f->l);
        cr_assert_not_null(f->l.tick);
        cr_assert_eq(event_add(f->l.tick, &tv), 0);
}

static void fixture_run(struct fixture *f) {
        cr_assert_eq(pthread_create(&f->l.thread, NULL, loop_thread, &f->l), 0);
}

static void fixture_down(struct fixture *f) {
        atomic_store(&f->l.stop, true);
        cr_assert_eq(pthread_join(f->l.thread, NULL), 0);
        event_free(f->l.tick);
        http_server_free(f->hs);
        event_base_free(f->l.base);
        SSL_CTX_free(f->sctx);
        node_close(&f->srv);
}

Test(atls, http_client_request_over_atls, .init = setup_one, .fini = teardown) {
        struct fixture f = {};
        struct atls_config good = {}, bad = {};
        struct policy wrong = {};
        struct http_response resp = {};
        struct errmsg e = {};
        char url[128];
        json_object *o;
        int r;

        fixture_up(&f, NULL);
        cr_assert_eq(http_server_route(f.hs, "/v1/hello", handle_hello, NULL), 0);
        fixture_run(&f);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/hello", http_server_port(f.hs));

        good.verifier = make_default_verifier();
        r = atls_http_request(&good, url, "GET", NULL, 0, 10000, &resp, &e);
        cr_assert_eq(r, 0, "atls_http_request: %d %s", r, errmsg_str(&e));
        cr_assert_eq(resp.status, 200);
        cr_assert(good.last_verified);
        cr_assert_eq(good.n_verifications, 1);
        o = json_tokener_parse(resp.body);
        cr_assert_not_null(o, "body is not JSON: %s", resp.body);
        cr_assert(json_str_eq(o, "hello", "world"), "%s", resp.body);
        cr_assert(json_str_eq(o, "tls", "TLSv1.3"), "%s", resp.body);
        json_object_put(o);
        http_response_done(&resp);

        /* The same server, a verifier whose policy it does not meet. */
        memset(wrong.pcr[0].expected, 0x11, 32);
        wrong.pcr[0].set = true;
        bad.verifier = make_verifier(&wrong);
        e = (struct errmsg){};
        r = atls_http_request(&bad, url, "GET", NULL, 0, 10000, &resp, &e);
        cr_assert_eq(r, -EPERM, "atls_http_request: %d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(errmsg_str(&e), "PCR 0"), "%s", errmsg_str(&e));
        cr_assert_eq(bad.last_report.failed, VERIFY_POLICY);
        cr_assert_null(resp.body);

        fixture_down(&f);
        verifier_free(good.verifier);
        verifier_free(bad.verifier);
}

/* An answer handed over without a copy (http_reply_raw_json_take): a
 * body larger than a TLS record and a socket buffer arrives whole, with
 * the newline in place of its NUL; ASan (make check-asan) sees it freed
 * once sent. */
#define BIG_BODY (200 * 1024)

static void handle_big(struct evhttp_request *req, void *arg) {
        char *body = malloc(BIG_BODY + 1);

        cr_assert_not_null(body);
        memset(body, 'a', BIG_BODY);
        body[0] = '"';
        body[BIG_BODY - 1] = '"';
        body[BIG_BODY] = 0;
        http_reply_raw_json_take(req, 200, body, BIG_BODY);
}

Test(atls, large_answer_is_sent_from_its_body, .init = setup_one, .fini = teardown) {
        struct fixture f = {};
        struct atls_config good = {};
        struct errmsg e = {};
        char url[128];

        fixture_up(&f, NULL);
        cr_assert_eq(http_server_route(f.hs, "/v1/big", handle_big, NULL), 0);
        fixture_run(&f);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/big", http_server_port(f.hs));
        good.verifier = make_default_verifier();
        for (int i = 0; i < 2; i++) {
                struct http_response resp = {};
                int r = atls_http_request(&good, url, "GET", NULL, 0, 10000, &resp, &e);

                cr_assert_eq(r, 0, "atls_http_request: %d %s", r, errmsg_str(&e));
                cr_assert_eq(resp.status, 200);
                cr_assert_eq(resp.body_size, BIG_BODY + 1, "%zu bytes", resp.body_size);
                cr_assert_eq(resp.body[0], '"');
                cr_assert_eq(resp.body[BIG_BODY / 2], 'a');
                cr_assert_eq(resp.body[BIG_BODY - 1], '"');
                cr_assert_eq(resp.body[BIG_BODY], '\n');
                http_response_done(&resp);
        }
        fixture_down(&f);
        verifier_free(good.verifier);
}

/* A server that counts the requests it was handed, whatever their path. */
static void handle_count(struct evhttp_request *req, void *arg) {
        atomic_uint *n = arg;

        atomic_fetch_add(n, 1);
        http_reply_error(req, 200, "counted");
}

struct async_result {
        struct event_base *base;
        bool done;
        int r;
        long status;
        char error[512];
};

static void async_done(int r, struct http_response *resp, const struct errmsg *e, void *userdata) {
        struct async_result *a = userdata;

        a->done = true;
        a->r = r;
        a->status = resp->status;
        snprintf(a->error, sizeof(a->error), "%s", errmsg_str(e));
        http_response_done(resp);
        event_base_loopbreak(a->base);
}

/* The client verifies the server's evidence before it writes anything:
 * a POST to a server whose PCR 0 is not what the policy wants never
 * reaches it (blocking and from an event loop), while the same request
 * with the right policy does. */
Test(atls, refused_evidence_sends_nothing, .init = setup_one, .fini = teardown) {
        static const char body[] = "{\"secret\": \"must not leave\"}";
        struct fixture f = {};
        struct atls_config good = {}, bad = {};
        struct policy wrong = {};
        struct http_response resp = {};
        struct atls_call *call = NULL;
        struct async_result a = {};
        struct errmsg e = {};
        atomic_uint handled = 0;
        char url[128];
        int r;

        fixture_up(&f, NULL);
        http_server_default(f.hs, handle_count, &handled);
        fixture_run(&f);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/join", http_server_port(f.hs));

        memset(wrong.pcr[0].expected, 0x11, 32);
        wrong.pcr[0].set = true;
        bad.verifier = make_verifier(&wrong);
        r = atls_http_request(&bad, url, "POST", body, strlen(body), 10000, &resp, &e);
        cr_assert_eq(r, -EPERM, "%d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "PCR 0"), "%s", e.text);
        cr_assert_null(resp.body);

        /* The same from an event loop of the caller's. */
        a.base = event_base_new();
        cr_assert_not_null(a.base);
        e = (struct errmsg){};
        r = atls_http_start(a.base, &bad, url, "POST", body, strlen(body), 10000, async_done, &a, &call, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        event_base_dispatch(a.base);
        cr_assert(a.done);
        cr_assert_eq(a.r, -EPERM, "%d %s", a.r, a.error);
        cr_assert_not_null(strstr(a.error, "PCR 0"), "%s", a.error);
        call = atls_call_free(call);
        usleep(100000); /* the server thread has seen all it will see */
        cr_assert_eq(atomic_load(&handled), 0, "a request reached a server that failed verification");

        /* Honest policy: the request arrives (so the counter counts). */
        good.verifier = make_default_verifier();
        a.done = false;
        r = atls_http_start(a.base, &good, url, "POST", body, strlen(body), 10000, async_done, &a, &call, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        event_base_dispatch(a.base);
        cr_assert(a.done);
        cr_assert_eq(a.r, 0, "%d %s", a.r, a.error);
        cr_assert_eq(a.status, 200);
        cr_assert(good.last_verified);
        call = atls_call_free(call);
        cr_assert_eq(atomic_load(&handled), 1);

        fixture_down(&f);
        event_base_free(a.base);
        verifier_free(good.verifier);
        verifier_free(bad.verifier);
}

/* Mutual: a client that verifies the server but cannot attest itself is
 * refused with an error, and its request is never handled. */
Test(atls, http_client_that_cannot_attest_is_refused, .init = setup_one, .fini = teardown) {
        static const char body[] = "{}";
        struct fixture f = {};
        struct atls_config ccfg = {};
        struct http_response resp = {};
        struct errmsg e = {};
        atomic_uint handled = 0;
        char url[128];
        int r;

        fixture_up(&f, make_default_verifier());
        http_server_default(f.hs, handle_count, &handled);
        fixture_run(&f);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/join", http_server_port(f.hs));
        ccfg.verifier = make_default_verifier();
        r = atls_http_request(&ccfg, url, "POST", body, strlen(body), 10000, &resp, &e);
        cr_assert_lt(r, 0, "a client without evidence got an answer (HTTP %ld)", resp.status);
        cr_assert(r == -ECONNRESET || r == -EPROTO, "%d %s", r, errmsg_str(&e));
        cr_assert_neq(e.text[0], 0);
        cr_assert_null(resp.body);
        /* The client verified the server before it was refused. */
        cr_assert(ccfg.last_verified);
        usleep(100000);
        cr_assert_eq(atomic_load(&handled), 0);
        fixture_down(&f);
        verifier_free(f.scfg.verifier);
        verifier_free(ccfg.verifier);
}

/* Mutual, through the HTTP client: a server refusing this node for its
 * measurements is recorded as a policy refusal (what a drifted mesh member
 * acts on), the request is never handled. */
Test(atls, http_client_learns_policy_refusal, .init = setup_two, .fini = teardown) {
        static const char body[] = "{}";
        struct fixture f = {};
        struct node cli;
        struct atls_config ccfg = {};
        struct policy spol = {};
        struct http_response resp = {};
        struct errmsg e = {};
        atomic_uint handled = 0;
        char url[128];
        int r;

        /* The server wants PCR 0 = 0x11..: the client's (zero) is not. */
        memset(spol.pcr[0].expected, 0x11, 32);
        spol.pcr[0].set = true;
        fixture_up(&f, make_verifier(&spol));
        http_server_default(f.hs, handle_count, &handled);
        fixture_run(&f);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/mesh", http_server_port(f.hs));
        node_open(&cli, &tpm_b);
        ccfg.attester = cli.attester;
        ccfg.verifier = make_default_verifier();
        r = atls_http_request(&ccfg, url, "POST", body, strlen(body), 10000, &resp, &e);
        cr_assert_lt(r, 0, "a refused client got an answer (HTTP %ld)", resp.status);
        cr_assert(ccfg.last_verified, "%s", ccfg.last_report.reason);
        cr_assert_eq(ccfg.peer_refusal, ATLS_REFUSAL_POLICY, "%s (%d %s)", atls_refusal_to_string(ccfg.peer_refusal),
                     r, errmsg_str(&e));
        usleep(100000);
        cr_assert_eq(atomic_load(&handled), 0);
        fixture_down(&f);
        node_close(&cli);
        verifier_free(f.scfg.verifier);
        verifier_free(ccfg.verifier);
}

/* A server that accepts TCP and never starts TLS: the request's deadline
 * covers the handshake. */
Test(atls, handshake_is_bounded_by_the_deadline, .init = setup_common) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        struct atls_config cfg = {};
        struct http_response resp = {};
        struct errmsg e = {};
        struct timespec t0, t1;
        char url[128];
        int fd, r;

        cfg.verifier = make_default_verifier();
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(fd, 4), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/attestation", ntohs(sa.sin_port));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = atls_http_request(&cfg, url, "GET", NULL, 0, 400, &resp, &e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_eq(r, -ETIMEDOUT, "%d %s", r, errmsg_str(&e));
        cr_assert_lt((double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9, 5.0);
        cr_assert_eq(cfg.n_verifications, 0);
        close(fd);
        verifier_free(cfg.verifier);
}

/* --- 11. the CLI against the bootstrapper ------------------------------------------- */

static char *read_file_str(const char *path) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;

        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        buf = calloc(1, 1024 * 1024);
        cr_assert_not_null(buf);
        size = fread(buf, 1, 1024 * 1024 - 1, f);
        buf[size] = 0;
        fclose(f);
        return buf;
}

static void write_file_str(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        cr_assert_eq(fputs(text, f) >= 0, true);
        cr_assert_eq(fclose(f), 0);
}

/* Run argv with stdout and stderr captured; returns the exit status. */
static int run_capture(char *const argv[], char **ret_out, char **ret_err) {
        char out_path[300], err_path[300];
        int status;
        pid_t pid;

        snprintf(out_path, sizeof(out_path), "%s/stdout", work_dir);
        snprintf(err_path, sizeof(err_path), "%s/stderr", work_dir);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        *ret_out = read_file_str(out_path);
        *ret_err = read_file_str(err_path);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Start the bootstrapper and wait for its readiness line. */
static void start_daemon(const char *bin, const char *tcti, uint16_t port) {
        char port_s[16], line[256] = "", log_path[300];
        size_t len = 0;
        unsigned ready = 0;
        int pipefd[2];
        struct timespec start, now;

        snprintf(port_s, sizeof(port_s), "%u", port);
        snprintf(log_path, sizeof(log_path), "%s/bootstrapper.log", work_dir);
        cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
        daemon_pid = fork();
        cr_assert_geq(daemon_pid, 0);
        if (daemon_pid == 0) {
                int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                if (log < 0 || dup2(pipefd[1], 1) < 0 || dup2(log, 2) < 0)
                        _exit(127);
                execl(bin, "arca-bootstrapper", "--tcti", tcti, "--listen", "127.0.0.1", "--port", port_s,
                      (char *) NULL);
                _exit(127);
        }
        close(pipefd[1]);
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (!strchr(line, '\n')) {
                struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
                ssize_t n;

                clock_gettime(CLOCK_MONOTONIC, &now);
                cr_assert_lt(now.tv_sec - start.tv_sec, IO_TIMEOUT_S, "bootstrapper not ready in time");
                if (poll(&p, 1, 200) <= 0)
                        continue;
                n = read(pipefd[0], line + len, sizeof(line) - 1 - len);
                if (n <= 0) {
                        _cleanup_free_ char *log = read_file_str(log_path);
                        cr_assert_fail("bootstrapper exited before it was ready: %s", log);
                }
                len += (size_t) n;
                line[len] = 0;
                cr_assert_lt(len, sizeof(line) - 1, "no readiness line: %s", line);
        }
        close(pipefd[0]);
        cr_assert_eq(sscanf(line, "READY port=%u", &ready), 1, "unexpected first line: %s", line);
        cr_assert_eq(ready, port);
}

Test(atls, cli_verify_against_bootstrapper, .init = setup_cli, .fini = teardown) {
        char bootstrapper[300], arca[300], conf[300], bad_conf[300], policy_path[300], node[64], text[1024];
        char *out = NULL, *err = NULL;
        uint8_t pcr4[32];
        uint16_t port;
        json_object *o, *v, *pcrs;
        int rc;

        snprintf(bootstrapper, sizeof(bootstrapper), "%s/arca-bootstrapper", test_build_dir());
        snprintf(arca, sizeof(arca), "%s/arca", test_build_dir());
        cr_assert_eq(access(bootstrapper, X_OK), 0, "%s is not built", bootstrapper);
        cr_assert_eq(access(arca, X_OK), 0, "%s is not built", arca);
        cr_assert_eq(test_tmpdir(work_dir, sizeof(work_dir)), 0);

        /* --check-config: the provisioned TPM passes, the bare one does not. */
        {
                char *argv_ok[] = { bootstrapper, (char *) "--tcti", tpm_a.tcti, (char *) "--check-config",
                                    NULL };
                char *argv_bare[] = { bootstrapper, (char *) "--tcti", tpm_b.tcti, (char *) "--check-config",
                                      NULL };

                rc = run_capture(argv_ok, &out, &err);
                cr_assert_eq(rc, 0, "--check-config on a provisioned TPM: exit %d: %s", rc, err);
                free(out);
                free(err);
                rc = run_capture(argv_bare, &out, &err);
                cr_assert_neq(rc, 0, "--check-config passed on an unprovisioned TPM");
                cr_assert_not_null(strstr(err, "provisioned"), "%s", err);
                free(out);
                free(err);
        }

        port = free_port();
        start_daemon(bootstrapper, tpm_a.tcti, port);
        snprintf(node, sizeof(node), "127.0.0.1:%u", port);

        snprintf(policy_path, sizeof(policy_path), "%s/measurements.json", work_dir);
        write_file_str(policy_path,
                       "{\"0\": {\"expected\": "
                       "\"0000000000000000000000000000000000000000000000000000000000000000\","
                       " \"warnOnly\": false},\n"
                       " \"4\": \"0000000000000000000000000000000000000000000000000000000000000000\"}\n");
        snprintf(conf, sizeof(conf), "%s/arca.conf", work_dir);
        snprintf(text, sizeof(text),
                 "# test cluster\n[cluster]\nname = test\n\n[attestation]\nvariant = qemu-vtpm\n"
                 "policy = measurements.json\nplatform-ca = %s\n",
                 plat.ca_pem);
        write_file_str(conf, text);

        {
                char *argv_text[] = { arca, (char *) "verify",   (char *) "--node",
                                      node, (char *) "--config", conf,
                                      NULL };
                char *argv_json[] = { arca, (char *) "verify", (char *) "--node", node, (char *) "--config",
                                      conf, (char *) "-o",     (char *) "json",   NULL };

                rc = run_capture(argv_text, &out, &err);
                cr_assert_eq(rc, 0, "arca verify: exit %d\n%s\n%s", rc, out, err);
                cr_assert_not_null(strstr(out, "verified"), "%s", out);
                cr_assert_null(strstr(out, "NOT verified"), "%s", out);
                free(out);
                free(err);

                rc = run_capture(argv_json, &out, &err);
                cr_assert_eq(rc, 0, "arca verify -o json: exit %d\n%s\n%s", rc, out, err);
                o = json_tokener_parse(out);
                cr_assert_not_null(o, "output is not JSON: %s", out);
                cr_assert(json_object_object_get_ex(o, "verified", &v) &&
                                  json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v),
                          "%s", out);
                cr_assert(json_object_object_get_ex(o, "pcrs", &pcrs) &&
                                  json_object_array_length(pcrs) == 24,
                          "%s", out);
                cr_assert(json_str_eq(json_object_array_get_idx(pcrs, 4), "verdict", "match"), "%s", out);
                json_object_put(o);
                free(out);
                free(err);

                /* The node's PCR 4 changes; the policy wants it zero. */
                extend_pcr(&tpm_a, 4, 0x77, pcr4);
                rc = run_capture(argv_text, &out, &err);
                cr_assert_eq(rc, 1, "arca verify after PCR 4 changed: exit %d\n%s\n%s", rc, out, err);
                cr_assert_not_null(strstr(out, "NOT verified"), "%s", out);
                cr_assert_not_null(strstr(out, "PCR 4"), "output does not name PCR 4: %s", out);
                free(out);
                free(err);

                rc = run_capture(argv_json, &out, &err);
                cr_assert_eq(rc, 1, "%s", out);
                o = json_tokener_parse(out);
                cr_assert_not_null(o, "output is not JSON: %s", out);
                cr_assert(json_object_object_get_ex(o, "verified", &v) && !json_object_get_boolean(v), "%s",
                          out);
                cr_assert(json_str_eq(o, "failedCheck", verify_check_to_string(VERIFY_POLICY)), "%s", out);
                cr_assert(json_object_object_get_ex(o, "pcrs", &pcrs), "%s", out);
                cr_assert(json_str_eq(json_object_array_get_idx(pcrs, 4), "verdict", "mismatch"), "%s", out);
                json_object_put(o);
                free(out);
                free(err);
        }

        /* A configuration with an unknown key on line 3. */
        snprintf(bad_conf, sizeof(bad_conf), "%s/bad.conf", work_dir);
        snprintf(text, sizeof(text),
                 "[cluster]\nname = test\ncolour = blue\n[attestation]\nvariant = qemu-vtpm\n"
                 "policy = measurements.json\nplatform-ca = %s\n",
                 plat.ca_pem);
        write_file_str(bad_conf, text);
        {
                char *argv_bad[] = { arca, (char *) "verify",   (char *) "--node",
                                     node, (char *) "--config", bad_conf,
                                     NULL };

                rc = run_capture(argv_bad, &out, &err);
                cr_assert_eq(rc, 2, "bad configuration: exit %d\n%s\n%s", rc, out, err);
                cr_assert_not_null(strstr(err, "line 3"), "stderr does not name the line: %s", err);
                cr_assert_not_null(strstr(err, "colour"), "stderr does not name the key: %s", err);
                free(out);
                free(err);
        }
}

/* --- refusals as the client sees them ----------------------------------------------- */

/* Evidence that fails a check before the policy (an AK certified by another
 * platform CA): the alert says "evidence", not "measurements". */
Test(atls, mutual_client_learns_its_evidence_was_refused, .init = setup_two, .fini = teardown) {
        struct test_platform other = {};
        struct node srv, cli;
        struct atls_config scfg = {}, ccfg = {};
        struct serve_job sj;
        struct client_result cr;
        SSL_CTX *sctx, *cctx;

        cr_assert_eq(test_platform_new(&other), 0);
        cr_assert_eq(test_platform_provision(&other, &tpm_b), 0); /* the client's AK: another CA */
        node_open(&srv, &tpm_a);
        node_open(&cli, &tpm_b);
        scfg.attester = srv.attester;
        scfg.verifier = make_default_verifier();
        ccfg.attester = cli.attester;
        ccfg.verifier = make_default_verifier();
        sctx = atls_ctx(true, &scfg);
        cctx = atls_ctx(false, &ccfg);

        run_pair(sctx, cctx, NULL, &sj, &cr);
        cr_assert_not(cr.got_ok);
        cr_assert(ccfg.last_verified, "%s", ccfg.last_report.reason);
        cr_assert_eq(sj.report.failed, VERIFY_AK_CHAIN, "%s", sj.report.reason);
        cr_assert_eq(ccfg.peer_refusal, ATLS_REFUSAL_EVIDENCE, "%s", atls_refusal_to_string(ccfg.peer_refusal));

        client_result_done(&cr);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        verifier_free(scfg.verifier);
        verifier_free(ccfg.verifier);
        node_close(&cli);
        node_close(&srv);
        test_platform_done(&other);
}

/* Attacker on the path: anyone can answer a ClientHello with a plaintext
 * alert "certificate revoked". It comes from no verified server, so it is
 * no refusal: a member keeps its peers as in an outage. */
static void *fake_alert_thread(void *arg) {
        static const uint8_t alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, SSL_AD_CERTIFICATE_REVOKED };
        int lfd = *(int *) arg, fd;
        char buf[4096];

        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        set_timeouts(fd);
        if (read(fd, buf, sizeof(buf)) > 0) /* the ClientHello */
                (void) !write(fd, alert, sizeof(alert));
        shutdown(fd, SHUT_WR);
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
        close(fd);
        return NULL;
}

Test(atls, alert_from_an_unverified_server_is_no_refusal, .init = setup_one, .fini = teardown) {
        struct node cli;
        struct atls_config ccfg = {};
        pthread_t thread;
        uint16_t port;
        unsigned long err;
        SSL_CTX *cctx;
        SSL *ssl;
        int lfd = listen_loopback(&port), fd;

        node_open(&cli, &tpm_a);
        ccfg.attester = cli.attester;
        ccfg.verifier = make_default_verifier();
        cctx = atls_ctx(false, &ccfg);
        cr_assert_eq(pthread_create(&thread, NULL, fake_alert_thread, &lfd), 0);
        fd = connect_loopback(port);
        ssl = SSL_new(cctx);
        cr_assert_not_null(ssl);
        cr_assert_eq(SSL_set_fd(ssl, fd), 1);
        cr_assert_neq(SSL_connect(ssl), 1);
        err = ERR_peek_last_error();
        /* The alert did arrive and was read as such ... */
        cr_assert_eq(ERR_GET_REASON(err), SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED, "%s", ERR_reason_error_string(err));
        /* ... and does not count: this client verified nobody. */
        cr_assert_eq(ccfg.n_verifications, 0);
        cr_assert_eq(ccfg.peer_refusal, ATLS_REFUSAL_NONE, "%s", atls_refusal_to_string(ccfg.peer_refusal));
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        close(lfd);
        SSL_CTX_free(cctx);
        verifier_free(ccfg.verifier);
        node_close(&cli);
}
