/* SPDX-License-Identifier: Apache-2.0 */
/* The private attestation channel (lib/attest-remote.h) with a real swtpm:
 * the "bootstrapper" side is a local attester on the swtpm served over an
 * AF_UNIX SOCK_SEQPACKET pair, the "join service" side a remote attester.
 * Evidence through the channel verifies exactly like local evidence (same
 * AK), a mutual aTLS handshake with a remote server attester succeeds; and
 * from the attacker's side: each malformed request and reply is refused by
 * the check meant for it with a clear error, evidence for another nonce is
 * refused by the verifier, a gone or silent server is an error within the
 * timeout, never a hang. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "atls.h"
#include "attest-remote.h"
#include "attest.h"
#include "swtpm.h"
#include "time-util.h"
#include "tpm.h"

static struct test_swtpm tpm_a, tpm_b;
static struct test_platform plat;
static struct tpm_ctx *ctx_a, *ctx_b;
static struct attester *local_a, *local_b; /* the TPM users */
static struct attester *remote;            /* the join service's side */
static struct attest_remote_server *server;
static int chan[2] = { -1, -1 }; /* [0] server, [1] client, until taken */

static const uint8_t nonce_a[ATTEST_NONCE_SIZE] = { 0xa1, 0xa2, 0xa3 };
static const uint8_t nonce_b[ATTEST_NONCE_SIZE] = { 0xb1, 0xb2, 0xb3 };
static const uint8_t ud_a[ATTEST_USER_DATA_SIZE] = { 0x0a, 0x0a };

/* --- fixtures ------------------------------------------------------------------ */

static void start_swtpm(struct test_swtpm *t, struct tpm_ctx **ctx, struct attester **a) {
        struct errmsg e = {};
        int r = test_swtpm_start(t);

        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
        cr_assert_eq(test_platform_provision(&plat, t), 0);
        cr_assert_eq(tpm_open(t->tcti, ctx, &e), 0, "tpm_open: %s", errmsg_str(&e));
        cr_assert_eq(attester_new("qemu-vtpm", *ctx, TPM_AK_HANDLE, a, &e), 0, "attester_new: %s", errmsg_str(&e));
}

static void setup(void) {
        struct errmsg e = {};

        setenv("TSS2_LOG", "all+none", 1);
        setenv("ARCA_EVENT_LOG", "", 1);
        signal(SIGPIPE, SIG_IGN);
        cr_assert_eq(test_platform_new(&plat), 0);
        start_swtpm(&tpm_a, &ctx_a, &local_a);
        cr_assert_eq(attest_remote_socketpair(chan, &e), 0, "%s", errmsg_str(&e));
}

static void teardown(void) {
        server = attest_remote_server_stop(server);
        remote = attester_free(remote);
        for (int i = 0; i < 2; i++)
                if (chan[i] >= 0)
                        close(chan[i]);
        chan[0] = chan[1] = -1;
        local_a = attester_free(local_a);
        local_b = attester_free(local_b);
        ctx_a = tpm_free(ctx_a);
        ctx_b = tpm_free(ctx_b);
        test_swtpm_stop(&tpm_a);
        test_swtpm_stop(&tpm_b);
        test_platform_done(&plat);
}

/* --- helpers --------------------------------------------------------------------- */

struct refusals {
        pthread_mutex_t lock;
        unsigned n;
        char last[512];
};
static struct refusals refusals = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void record_refusal(const char *reason, void *userdata) {
        struct refusals *r = userdata;

        pthread_mutex_lock(&r->lock);
        r->n++;
        snprintf(r->last, sizeof(r->last), "%s", reason);
        pthread_mutex_unlock(&r->lock);
}

/* The bootstrapper's side: a thread serving chan[0] with local_a. */
static void start_server(void) {
        struct errmsg e = {};

        cr_assert_eq(attest_remote_server_start(chan[0], local_a, record_refusal, &refusals, &server, &e), 0, "%s",
                     errmsg_str(&e));
        chan[0] = -1;
}

static int remote_open(unsigned timeout_ms, struct errmsg *e) {
        int r = attester_remote_new(chan[1], "qemu-vtpm", timeout_ms, &remote, e);

        if (r >= 0)
                chan[1] = -1;
        return r;
}

static struct verifier *make_verifier(void) {
        struct verifier *v = NULL;
        struct policy p = {};
        struct errmsg e = {};

        p.pcr[0].set = true; /* zero on a fresh swtpm */
        cr_assert_eq(verifier_new("qemu-vtpm", &p, plat.roots, &v, &e), 0, "verifier_new: %s", errmsg_str(&e));
        return v;
}

/* A raw packet: header + body, with the header's fields as given. */
static size_t packet(uint8_t *buf, uint8_t version, uint8_t type, uint32_t id, const void *body, size_t len,
                     uint32_t claimed_len) {
        uint32_t v;

        buf[0] = version;
        buf[1] = type;
        buf[2] = buf[3] = 0;
        v = htobe32(id);
        memcpy(buf + 4, &v, 4);
        v = htobe32(claimed_len);
        memcpy(buf + 8, &v, 4);
        if (len)
                memcpy(buf + ATTEST_REMOTE_HEADER_SIZE, body, len);
        return ATTEST_REMOTE_HEADER_SIZE + len;
}

/* --- evidence through the channel ------------------------------------------------ */

Test(attest_remote, evidence_verifies_like_local_with_same_ak, .init = setup, .fini = teardown) {
        _cleanup_(verifier_freep) struct verifier *v = make_verifier();
        _cleanup_free_ char *rdoc = NULL, *ldoc = NULL;
        uint8_t local_ak[ATTEST_AK_NAME_SIZE], remote_ak[ATTEST_AK_NAME_SIZE];
        struct verify_report rrep, lrep;
        struct errmsg e = {};
        size_t rsize, lsize;

        start_server();
        cr_assert_eq(remote_open(0, &e), 0, "attester_remote_new: %s", errmsg_str(&e));
        cr_assert_str_eq(attester_variant(remote), "qemu-vtpm");
        cr_assert_eq(attester_ak_name(local_a, local_ak, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(attester_ak_name(remote, remote_ak, &e), 0, "%s", errmsg_str(&e));
        cr_assert_arr_eq(remote_ak, local_ak, sizeof(local_ak), "the remote attester names another AK");

        cr_assert_eq(attester_issue(remote, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &rdoc, &rsize, &e), 0,
                     "remote issue: %s", errmsg_str(&e));
        cr_assert_eq(attester_issue(local_a, ATTEST_PURPOSE_ATLS, nonce_b, ud_a, &ldoc, &lsize, &e), 0,
                     "local issue: %s", errmsg_str(&e));
        cr_assert_eq(strlen(rdoc), rsize, "the document is NUL-terminated at its size");
        cr_assert_eq(verifier_verify(v, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, (const uint8_t *) rdoc, rsize, &rrep), 0,
                     "remote evidence refused: %s", rrep.reason);
        cr_assert_eq(verifier_verify(v, ATTEST_PURPOSE_ATLS, nonce_b, ud_a, (const uint8_t *) ldoc, lsize, &lrep), 0,
                     "local evidence refused: %s", lrep.reason);
        cr_assert_arr_eq(rrep.ak_name, local_ak, sizeof(local_ak));
        cr_assert_arr_eq(rrep.ak_name, lrep.ak_name, sizeof(local_ak));
        cr_assert_arr_eq(rrep.pcrs, lrep.pcrs, sizeof(rrep.pcrs));
        cr_assert_eq(refusals.n, 0, "refused: %s", refusals.last);
}

/* --- mutual aTLS: the server's evidence comes through the channel -------------- */

struct tls_side {
        SSL_CTX *ctx;
        int fd;
        int ret;
        bool verified;
        struct verify_report report;
        pthread_t thread;
};

static void tls_run(struct tls_side *s, bool is_server) {
        SSL *ssl = SSL_new(s->ctx);
        char buf[2] = {};

        cr_assert_not_null(ssl);
        cr_assert_eq(SSL_set_fd(ssl, s->fd), 1);
        s->ret = is_server ? SSL_accept(ssl) : SSL_connect(ssl);
        if (s->ret == 1) {
                /* Data both ways: in TLS 1.3 the client finishes before the
                 * server has checked the client's certificate. */
                if (is_server)
                        s->ret = SSL_write(ssl, "ok", 2) == 2 && SSL_read(ssl, buf, 2) == 2 ? 1 : -1;
                else
                        s->ret = SSL_read(ssl, buf, 2) == 2 && SSL_write(ssl, "ok", 2) == 2 ? 1 : -1;
        }
        s->verified = atls_peer_verified(ssl);
        if (atls_peer_report(ssl))
                s->report = *atls_peer_report(ssl);
        SSL_free(ssl);
        ERR_clear_error();
}

static void *tls_server_thread(void *arg) {
        tls_run(arg, true);
        return NULL;
}

Test(attest_remote, mutual_atls_with_remote_server_attester, .init = setup, .fini = teardown) {
        _cleanup_(verifier_freep) struct verifier *sv = make_verifier(), *cv = make_verifier();
        struct atls_config scfg = {}, ccfg = {};
        struct tls_side srv = {}, cli = {};
        uint8_t ak_a[ATTEST_AK_NAME_SIZE], ak_b[ATTEST_AK_NAME_SIZE];
        struct errmsg e = {};
        struct timeval tv = { .tv_sec = 10 };
        int sp[2];

        start_swtpm(&tpm_b, &ctx_b, &local_b);
        start_server();
        cr_assert_eq(remote_open(0, &e), 0, "attester_remote_new: %s", errmsg_str(&e));
        cr_assert_eq(attester_ak_name(local_a, ak_a, &e), 0);
        cr_assert_eq(attester_ak_name(local_b, ak_b, &e), 0);
        cr_assert(memcmp(ak_a, ak_b, sizeof(ak_a)) != 0);

        scfg = (struct atls_config){ .attester = remote, .verifier = sv };
        ccfg = (struct atls_config){ .attester = local_b, .verifier = cv };
        cr_assert_eq(atls_ctx_new(true, &scfg, &srv.ctx, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(atls_ctx_new(false, &ccfg, &cli.ctx, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        for (int i = 0; i < 2; i++) {
                setsockopt(sp[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(sp[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        srv.fd = sp[0];
        cli.fd = sp[1];
        cr_assert_eq(pthread_create(&srv.thread, NULL, tls_server_thread, &srv), 0);
        tls_run(&cli, false);
        cr_assert_eq(pthread_join(srv.thread, NULL), 0);
        close(sp[0]);
        close(sp[1]);

        cr_assert_eq(srv.ret, 1, "server: %s / %s", srv.report.reason, errmsg_str(&scfg.last_attest_error));
        cr_assert_eq(cli.ret, 1, "client: %s / %s", cli.report.reason, errmsg_str(&ccfg.last_attest_error));
        cr_assert(cli.verified, "the client did not verify the server");
        cr_assert(srv.verified, "the server did not verify the client");
        /* The server attested with tpm_a's AK, through the channel. */
        cr_assert_arr_eq(cli.report.ak_name, ak_a, sizeof(ak_a));
        cr_assert_arr_eq(srv.report.ak_name, ak_b, sizeof(ak_b));
        SSL_CTX_free(srv.ctx);
        SSL_CTX_free(cli.ctx);
}

/* The bootstrapper gone: the server's handshake fails with that reason, at
 * once, not at the channel's timeout. */
Test(attest_remote, handshake_fails_cleanly_without_the_remote_attester, .init = setup, .fini = teardown) {
        _cleanup_(verifier_freep) struct verifier *sv = make_verifier(), *cv = make_verifier();
        struct atls_config scfg = {}, ccfg = {};
        struct tls_side srv = {}, cli = {};
        struct errmsg e = {};
        struct timeval tv = { .tv_sec = 10 };
        uint64_t t0;
        int sp[2];

        start_swtpm(&tpm_b, &ctx_b, &local_b);
        start_server();
        cr_assert_eq(remote_open(0, &e), 0, "attester_remote_new: %s", errmsg_str(&e));
        server = attest_remote_server_stop(server);

        scfg = (struct atls_config){ .attester = remote, .verifier = sv };
        ccfg = (struct atls_config){ .attester = local_b, .verifier = cv };
        cr_assert_eq(atls_ctx_new(true, &scfg, &srv.ctx, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(atls_ctx_new(false, &ccfg, &cli.ctx, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        for (int i = 0; i < 2; i++) {
                setsockopt(sp[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                setsockopt(sp[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        srv.fd = sp[0];
        cli.fd = sp[1];
        t0 = now_ms();
        cr_assert_eq(pthread_create(&srv.thread, NULL, tls_server_thread, &srv), 0);
        tls_run(&cli, false);
        cr_assert_eq(pthread_join(srv.thread, NULL), 0);
        close(sp[0]);
        close(sp[1]);

        cr_assert_neq(srv.ret, 1, "the server completed a handshake without evidence");
        cr_assert_neq(cli.ret, 1);
        cr_assert_not(cli.verified);
        cr_assert_not_null(strstr(scfg.last_attest_error.text, "the attestation channel is closed"), "server: %s",
                           scfg.last_attest_error.text);
        cr_assert_lt(now_ms() - t0, 5000u, "the failed handshake took the whole timeout");
        SSL_CTX_free(srv.ctx);
        SSL_CTX_free(cli.ctx);
}

/* --- the server refuses malformed requests (the join service is the attacker) --- */

struct bad_request {
        const char *name;
        uint8_t version, type;
        const char *purpose; /* ISSUE body: nonce, user data, purpose */
        size_t cut;          /* send only this many bytes (0: all) */
        size_t pad;          /* append this many bytes (and claim them) */
        int claim_delta;     /* add to the length in the header */
        int error;
        const char *needle;
};

static const struct bad_request bad_requests[] = {
        { "truncated to 20 bytes", 1, 2, "atls", 20, 0, 0, EBADMSG, "announces a 68-byte body, the packet holds 8" },
        { "shorter than a header", 1, 2, "atls", 5, 0, 0, EBADMSG, "shorter than its 12-byte header" },
        { "empty", 1, 2, "atls", 0, 0, 0, EBADMSG, "request of 0 bytes is shorter" },
        { "oversized", 1, 2, "atls", 0, 200, 0, EBADMSG, "exceeds 108 bytes" },
        { "length field lies", 1, 2, "atls", 0, 0, 1, EBADMSG, "announces a 69-byte body" },
        { "wrong version", 2, 2, "atls", 0, 0, 0, EBADMSG, "version 2, expected 1" },
        { "a reply type", 1, 0x82, "atls", 0, 0, 0, EBADMSG, "type 0x82 is not a request" },
        { "no purpose", 1, 2, "", 0, 0, 0, EBADMSG, "body of 64 bytes, expected 65-96" },
        { "purpose not [a-z0-9-]", 1, 2, "AT LS", 0, 0, 0, EBADMSG, "not made of [a-z0-9-]" },
        { "purpose not served", 1, 2, "disk", 0, 0, 0, EPERM, "purpose \"disk\" is not issued over this channel" },
};

Test(attest_remote, server_refuses_malformed_requests_and_keeps_serving, .init = setup, .fini = teardown) {
        for (size_t i = 0; i < ELEMENTSOF(bad_requests); i++) {
                const struct bad_request *b = &bad_requests[i];
                uint8_t body[ATTEST_NONCE_SIZE + ATTEST_USER_DATA_SIZE + 64 + 256] = {}, buf[512], reply[1024];
                size_t len = ATTEST_NONCE_SIZE + ATTEST_USER_DATA_SIZE, n;
                struct attest_remote_reply rep;
                struct errmsg e = {}, pe = {};
                ssize_t got;
                int r;

                memcpy(body + len, b->purpose, strlen(b->purpose));
                len += strlen(b->purpose) + b->pad;
                n = packet(buf, b->version, b->type, (uint32_t) (100 + i), body, len, (uint32_t) ((int) len + b->claim_delta));
                if (b->cut || streq(b->name, "empty"))
                        n = b->cut;
                cr_assert_eq(send(chan[1], buf, n, 0), (ssize_t) n);
                r = attest_remote_serve(chan[0], local_a, &e);
                cr_assert_eq(r, 1, "%s: serve returned %d (%s), expected a refusal", b->name, r, errmsg_str(&e));
                cr_assert_not_null(strstr(e.text, b->needle), "%s: \"%s\" does not say \"%s\"", b->name, e.text,
                                   b->needle);
                got = recv(chan[1], reply, sizeof(reply), MSG_DONTWAIT);
                cr_assert_gt(got, 0, "%s: no error reply", b->name);
                cr_assert_eq(attest_remote_reply_parse(reply, (size_t) got, &rep, &pe), 0, "%s: %s", b->name,
                             errmsg_str(&pe));
                cr_assert_eq(rep.type, ATTEST_REMOTE_REPLY_ERROR, "%s", b->name);
                cr_assert_eq(rep.error, b->error, "%s: errno %d", b->name, rep.error);
                cr_assert_not_null(strstr(rep.message, b->needle), "%s: reply \"%s\"", b->name, rep.message);
                if (n >= 8)
                        cr_assert_eq(rep.id, 100 + i, "%s: the error answers request %u", b->name, rep.id);
        }
        /* Still serving: an honest INFO request is answered. */
        {
                uint8_t buf[64], reply[256];
                struct attest_remote_reply rep;
                struct errmsg e = {};
                size_t n = packet(buf, 1, ATTEST_REMOTE_REQ_INFO, 7, NULL, 0, 0);
                ssize_t got;

                cr_assert_eq(send(chan[1], buf, n, 0), (ssize_t) n);
                cr_assert_eq(attest_remote_serve(chan[0], local_a, &e), 0, "%s", errmsg_str(&e));
                got = recv(chan[1], reply, sizeof(reply), MSG_DONTWAIT);
                cr_assert_gt(got, 0);
                cr_assert_eq(attest_remote_reply_parse(reply, (size_t) got, &rep, &e), 0, "%s", errmsg_str(&e));
                cr_assert_eq(rep.type, ATTEST_REMOTE_REPLY_INFO);
                cr_assert_eq(rep.id, 7);
                cr_assert_str_eq(rep.variant, "qemu-vtpm");
        }
        /* Nothing waiting: -EAGAIN, no reply. */
        {
                struct errmsg e = {};
                cr_assert_eq(attest_remote_serve(chan[0], local_a, &e), -EAGAIN);
        }
}

/* --- the client refuses malformed replies (a broken or hostile server) ----------- */

enum fake_mode {
        FAKE_TRUNCATED,
        FAKE_OVERSIZED,
        FAKE_WRONG_VERSION,
        FAKE_INFO_FOR_ISSUE,
        FAKE_REQUEST_TYPE,
        FAKE_ERROR,
        FAKE_STALE_THEN_GOOD,
        FAKE_OTHER_NONCE,
        FAKE_SLOW_THEN_SERVE,
};

struct fake {
        enum fake_mode mode;
        int fd;
        pthread_t thread;
        int result; /* what went wrong in the thread, 0 if nothing */
};

/* Read one request, or return its id 0 on failure. */
static uint32_t fake_read(struct fake *f, struct attest_remote_request *req) {
        uint8_t buf[ATTEST_REMOTE_MAX_REQUEST];
        struct pollfd p = { .fd = f->fd, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, 10000) != 1)
                return 0;
        n = recv(f->fd, buf, sizeof(buf), 0);
        if (n <= 0 || attest_remote_request_parse(buf, (size_t) n, req, NULL) < 0)
                return 0;
        return req->id;
}

static void fake_send_evidence(struct fake *f, uint32_t id, const uint8_t nonce[ATTEST_NONCE_SIZE],
                               const uint8_t ud[ATTEST_USER_DATA_SIZE]) {
        struct attest_remote_reply rep = { .type = ATTEST_REMOTE_REPLY_EVIDENCE, .id = id };
        _cleanup_free_ char *doc = NULL;
        _cleanup_free_ uint8_t *pkt = NULL;
        size_t size, psize;

        if (attester_issue(local_a, ATTEST_PURPOSE_ATLS, nonce, ud, &doc, &size, NULL) < 0) {
                f->result = -EIO;
                return;
        }
        rep.doc = (const uint8_t *) doc;
        rep.doc_size = size;
        if (attest_remote_reply_build(&rep, &pkt, &psize) < 0 || send(f->fd, pkt, psize, 0) != (ssize_t) psize)
                f->result = -EIO;
}

static void *fake_thread(void *arg) {
        struct fake *f = arg;
        struct attest_remote_request req;
        static uint8_t big[ATTEST_REMOTE_MAX_REPLY + 64];
        uint8_t body[64] = {};
        uint32_t id;
        size_t n;

        /* The INFO request: answered honestly. */
        {
                struct pollfd p = { .fd = f->fd, .events = POLLIN };
                if (poll(&p, 1, 10000) != 1 || attest_remote_serve(f->fd, local_a, NULL) != 0) {
                        f->result = -EPROTO;
                        return NULL;
                }
        }
        id = fake_read(f, &req);
        if (!id) {
                f->result = -EPROTO;
                return NULL;
        }
        switch (f->mode) {
        case FAKE_TRUNCATED:
                n = packet(big, 1, ATTEST_REMOTE_REPLY_EVIDENCE, id, "{\"version\"", 10, 100);
                break;
        case FAKE_OVERSIZED:
                n = packet(big, 1, ATTEST_REMOTE_REPLY_EVIDENCE, id, NULL, 0, EVIDENCE_MAX_SIZE + 1) + EVIDENCE_MAX_SIZE + 1;
                break;
        case FAKE_WRONG_VERSION:
                n = packet(big, 9, ATTEST_REMOTE_REPLY_EVIDENCE, id, "{}", 2, 2);
                break;
        case FAKE_INFO_FOR_ISSUE:
                memcpy(body + ATTEST_AK_NAME_SIZE, "qemu-vtpm", 9);
                n = packet(big, 1, ATTEST_REMOTE_REPLY_INFO, id, body, ATTEST_AK_NAME_SIZE + 9, ATTEST_AK_NAME_SIZE + 9);
                break;
        case FAKE_REQUEST_TYPE:
                n = packet(big, 1, ATTEST_REMOTE_REQ_INFO, id, NULL, 0, 0);
                break;
        case FAKE_ERROR: {
                uint32_t v = htobe32(EIO);
                memcpy(body, &v, 4);
                memcpy(body + 4, "TPM failure", 11);
                n = packet(big, 1, ATTEST_REMOTE_REPLY_ERROR, id, body, 15, 15);
                break;
        }
        case FAKE_STALE_THEN_GOOD:
                /* An answer to an earlier request first (garbage evidence). */
                n = packet(big, 1, ATTEST_REMOTE_REPLY_EVIDENCE, id - 1, "{}", 2, 2);
                if (send(f->fd, big, n, 0) != (ssize_t) n)
                        f->result = -EIO;
                fake_send_evidence(f, id, req.nonce, req.user_data);
                return NULL;
        case FAKE_OTHER_NONCE:
                fake_send_evidence(f, id, nonce_b, req.user_data);
                return NULL;
        case FAKE_SLOW_THEN_SERVE:
                /* Answer after the client gave up, then serve the next request. */
                sleep_ms(700);
                fake_send_evidence(f, id, req.nonce, req.user_data);
                id = fake_read(f, &req);
                if (!id)
                        f->result = -EPROTO;
                else
                        fake_send_evidence(f, id, req.nonce, req.user_data);
                return NULL;
        default:
                f->result = -EINVAL;
                return NULL;
        }
        if (send(f->fd, big, n, 0) != (ssize_t) n)
                f->result = -errno;
        return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode) {
        *f = (struct fake){ .mode = mode, .fd = chan[0] };
        cr_assert_eq(pthread_create(&f->thread, NULL, fake_thread, f), 0);
}

static void fake_join(struct fake *f) {
        cr_assert_eq(pthread_join(f->thread, NULL), 0);
        cr_assert_eq(f->result, 0, "the fake server failed: %d", f->result);
}

static int remote_issue(unsigned timeout_ms, char **doc, size_t *size, struct errmsg *e) {
        struct errmsg oe = {};

        cr_assert_eq(remote_open(timeout_ms, &oe), 0, "attester_remote_new: %s", errmsg_str(&oe));
        return attester_issue(remote, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, doc, size, e);
}

static void assert_reply_refused(enum fake_mode mode, int error, const char *needle) {
        _cleanup_free_ char *doc = NULL;
        struct errmsg e = {};
        struct fake f;
        size_t size;
        int r;

        fake_start(&f, mode);
        r = remote_issue(2000, &doc, &size, &e);
        fake_join(&f);
        cr_assert_eq(r, -error, "mode %d: %d (%s), expected -%d", mode, r, errmsg_str(&e), error);
        cr_assert_null(doc);
        cr_assert_not_null(strstr(e.text, needle), "mode %d: \"%s\" does not say \"%s\"", mode, e.text, needle);
}

Test(attest_remote, truncated_reply_refused, .init = setup, .fini = teardown) {
        assert_reply_refused(FAKE_TRUNCATED, EBADMSG, "announces a 100-byte body, the packet holds 10");
}

Test(attest_remote, oversized_reply_refused, .init = setup, .fini = teardown) {
        assert_reply_refused(FAKE_OVERSIZED, EBADMSG, "reply of 262157 bytes (1-262156 expected)");
}

Test(attest_remote, wrong_version_reply_refused, .init = setup, .fini = teardown) {
        assert_reply_refused(FAKE_WRONG_VERSION, EBADMSG, "reply version 9, expected 1");
}

Test(attest_remote, reply_of_wrong_type_refused, .init = setup, .fini = teardown) {
        assert_reply_refused(FAKE_INFO_FOR_ISSUE, EBADMSG, "answer to an ISSUE request is an INFO reply");
}

Test(attest_remote, reflected_request_refused, .init = setup, .fini = teardown) {
        assert_reply_refused(FAKE_REQUEST_TYPE, EBADMSG, "type 0x01 is not a reply");
}

Test(attest_remote, error_reply_is_the_error, .init = setup, .fini = teardown) {
        assert_reply_refused(FAKE_ERROR, EIO, "the remote attester refused: TPM failure");
}

Test(attest_remote, stale_reply_dropped, .init = setup, .fini = teardown) {
        _cleanup_(verifier_freep) struct verifier *v = make_verifier();
        _cleanup_free_ char *doc = NULL;
        struct verify_report rep;
        struct errmsg e = {};
        struct fake f;
        size_t size;

        fake_start(&f, FAKE_STALE_THEN_GOOD);
        cr_assert_eq(remote_issue(2000, &doc, &size, &e), 0, "%s", errmsg_str(&e));
        fake_join(&f);
        cr_assert_eq(verifier_verify(v, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, (const uint8_t *) doc, size, &rep), 0, "%s",
                     rep.reason);
}

Test(attest_remote, evidence_for_another_nonce_refused_by_verifier, .init = setup, .fini = teardown) {
        _cleanup_(verifier_freep) struct verifier *v = make_verifier();
        _cleanup_free_ char *doc = NULL;
        struct verify_report rep;
        struct errmsg e = {};
        struct fake f;
        size_t size;

        fake_start(&f, FAKE_OTHER_NONCE);
        cr_assert_eq(remote_issue(2000, &doc, &size, &e), 0, "%s", errmsg_str(&e));
        fake_join(&f);
        cr_assert_lt(verifier_verify(v, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, (const uint8_t *) doc, size, &rep), 0);
        cr_assert_eq(rep.failed, VERIFY_NONCE, "refused by %s: %s", verify_check_to_string(rep.failed), rep.reason);
}

/* --- a gone or silent server: an error within the timeout ------------------------ */

Test(attest_remote, gone_server_fails_at_once, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct errmsg e = {};
        size_t size;
        uint64_t t0;
        int r;

        start_server();
        cr_assert_eq(remote_open(0, &e), 0, "%s", errmsg_str(&e));
        server = attest_remote_server_stop(server); /* the bootstrapper is gone */
        t0 = now_ms();
        r = attester_issue(remote, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &doc, &size, &e);
        cr_assert_eq(r, -ECONNRESET, "%d: %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "the attestation channel is closed"), "%s", e.text);
        cr_assert_lt(now_ms() - t0, 1000u, "a closed channel must not wait for the timeout");
        cr_assert_null(doc);
}

Test(attest_remote, gone_server_fails_at_open, .init = setup, .fini = teardown) {
        struct errmsg e = {};
        int r;

        close(chan[0]);
        chan[0] = -1;
        r = remote_open(5000, &e);
        cr_assert_eq(r, -ECONNRESET, "%d: %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "closed"), "%s", e.text);
}

Test(attest_remote, silent_server_times_out, .init = setup, .fini = teardown) {
        struct errmsg e = {};
        uint64_t t0 = now_ms(), dt;
        int r;

        /* Nobody serves chan[0]. */
        r = remote_open(300, &e);
        dt = now_ms() - t0;
        cr_assert_eq(r, -ETIMEDOUT, "%d: %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "did not answer within 300 ms"), "%s", e.text);
        cr_assert_geq(dt, 290u);
        cr_assert_lt(dt, 3000u, "took %llu ms", (unsigned long long) dt);
}

Test(attest_remote, slow_server_times_out_then_late_reply_is_dropped, .init = setup, .fini = teardown) {
        _cleanup_(verifier_freep) struct verifier *v = make_verifier();
        _cleanup_free_ char *doc = NULL, *doc2 = NULL;
        struct verify_report rep;
        struct errmsg e = {};
        struct fake f;
        size_t size;
        int r;

        fake_start(&f, FAKE_SLOW_THEN_SERVE);
        r = remote_issue(300, &doc, &size, &e);
        cr_assert_eq(r, -ETIMEDOUT, "%d: %s", r, errmsg_str(&e));
        sleep_ms(600); /* the late answer is in the socket now */
        e = (struct errmsg){};
        /* A request for nonce_b: the late answer was for nonce_a. */
        r = attester_issue(remote, ATTEST_PURPOSE_ATLS, nonce_b, ud_a, &doc2, &size, &e);
        fake_join(&f);
        cr_assert_eq(r, 0, "%s", errmsg_str(&e));
        cr_assert_eq(verifier_verify(v, ATTEST_PURPOSE_ATLS, nonce_b, ud_a, (const uint8_t *) doc2, size, &rep), 0,
                     "the late answer was taken for this request: %s", rep.reason);
}

Test(attest_remote, server_thread_reports_refusals, .init = setup, .fini = teardown) {
        uint8_t buf[64];
        size_t n = packet(buf, 3, ATTEST_REMOTE_REQ_INFO, 1, NULL, 0, 0);
        uint64_t t0;

        start_server();
        cr_assert_eq(send(chan[1], buf, n, 0), (ssize_t) n);
        for (t0 = now_ms(); now_ms() - t0 < 5000u;) {
                unsigned k;
                pthread_mutex_lock(&refusals.lock);
                k = refusals.n;
                pthread_mutex_unlock(&refusals.lock);
                if (k)
                        break;
                sleep_ms(10);
        }
        cr_assert_eq(refusals.n, 1);
        cr_assert_not_null(strstr(refusals.last, "version 3, expected 1"), "%s", refusals.last);
}

/* --- what may be a channel -------------------------------------------------------- */

Test(attest_remote, channel_must_be_an_open_seqpacket_socket, .init = setup, .fini = teardown) {
        struct attester *a = NULL;
        struct errmsg e = {};
        int p[2], s[2];

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        cr_assert_eq(attester_remote_new(p[0], NULL, 100, &a, &e), -ENOTSOCK, "%s", errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "not a socket"), "%s", e.text);
        close(p[0]);
        close(p[1]);

        e = (struct errmsg){};
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
        cr_assert_eq(attester_remote_new(s[0], NULL, 100, &a, &e), -EPROTOTYPE, "%s", errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "not a SOCK_SEQPACKET socket"), "%s", e.text);
        close(s[0]);
        close(s[1]);

        e = (struct errmsg){};
        cr_assert_eq(attester_remote_new(p[0], NULL, 100, &a, &e), -EBADF, "%s", errmsg_str(&e));
        cr_assert_null(a);
}

Test(attest_remote, server_of_another_variant_refused, .init = setup, .fini = teardown) {
        struct attester *a = NULL;
        struct errmsg e = {};

        start_server();
        cr_assert_eq(attester_remote_new(chan[1], "azure-sev-snp", 2000, &a, &e), -EINVAL, "%s", errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "attests as variant \"qemu-vtpm\", not \"azure-sev-snp\""), "%s", e.text);
        cr_assert_null(a);
}
