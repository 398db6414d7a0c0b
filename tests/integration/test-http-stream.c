/* SPDX-License-Identifier: Apache-2.0 */
/* Answers streamed as the connection drains (http_reply_json_stream, as a
 * join service sends its join and mesh answers): a real http_server over
 * OpenSSL on loopback, in a thread, and a plain TLS client written here
 * that reads the raw HTTP answer, so that it can also stop reading, close
 * mid-answer or vanish before the answer. The body must be byte for byte
 * what the whole serializer writes, with a Content-Length (not chunked);
 * the stream's context must be released exactly once whatever the client
 * does (make check-asan also sees that nothing of it, nor the request,
 * is leaked); the server must go on serving. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http-server.h"
#include "macro.h"
#include "messages.h"
#include "openssl-util.h"
#include "secret.h"

#define IO_TIMEOUT_S 10
/* Peers of the largest answers here: ~600 KiB, many pieces. */
#define MANY MSG_MAX_PEERS
#define STR_(x) #x
#define STRINGIFY(x) STR_(x)

/* --- the server ------------------------------------------------------------- */

static struct {
        SSL_CTX *ctx;
        struct http_server *hs;
        struct event_base *base;
        struct event *tick;
        atomic_bool stop;
        bool running;
        pthread_t thread;
        uint16_t port;
        struct join_response resp; /* fields of every answer; its peers: MANY of them */
        struct evhttp_request *later; /* /v1/later: answered after a while */
        atomic_int released;          /* stream contexts released */
        atomic_int released_unfinished; /* ... before their last piece was written */
        atomic_int fills;
} srv;

struct stream {
        struct peer_list peers;
        size_t next;
        int fail_at; /* the fill call that fails; -1: none */
        int calls;
};

static ssize_t stream_fill(void *userdata, char *buf, size_t size) {
        struct stream *st = userdata;

        atomic_fetch_add(&srv.fills, 1);
        if (st->calls++ == st->fail_at)
                return -EIO;
        return peers_write(&st->peers, &st->next, buf, size);
}

static void stream_release(void *userdata) {
        struct stream *st = userdata;

        if (st->next <= st->peers.n)
                atomic_fetch_add(&srv.released_unfinished, 1);
        free(st);
        atomic_fetch_add(&srv.released, 1);
}

/* "...?n=N&fail=K" */
static void query(struct evhttp_request *req, size_t *n, int *fail) {
        const char *q = strchr(evhttp_request_get_uri(req), '?');

        *n = 0;
        *fail = -1;
        if (q)
                sscanf(q, "?n=%zu&fail=%d", n, fail);
}

static void answer(struct evhttp_request *req, size_t n, int fail) {
        struct stream *st = calloc(1, sizeof(*st));
        char *head;
        size_t head_len, len;

        if (!st || n > MANY) {
                free(st);
                http_reply_error(req, 400, "bad n");
                return;
        }
        st->peers = peer_list_of(srv.resp.peers, n);
        st->fail_at = fail;
        if (join_response_serialize_head(&srv.resp, &st->peers, &head, &head_len, &len) < 0) {
                free(st);
                http_reply_error(req, 500, "cannot serialize");
                return;
        }
        http_reply_json_stream(req, 200, head, head_len, len, stream_fill, stream_release, st);
}

static void handle_answer(struct evhttp_request *req, void *arg) {
        size_t n;
        int fail;

        query(req, &n, &fail);
        /* Small socket buffers, so that a large answer stays in flight
         * until the client reads it. */
        if (n == MANY) {
                struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
                int size = 4096;

                (void) setsockopt(bufferevent_getfd(bev), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        }
        answer(req, n, fail);
}

static void answer_later(evutil_socket_t fd, short what, void *arg) {
        answer(srv.later, 3, -1);
        srv.later = NULL;
}

static void handle_later(struct evhttp_request *req, void *arg) {
        struct timeval tv = { .tv_usec = 300 * 1000 };

        srv.later = req;
        cr_assert_eq(event_base_once(srv.base, -1, EV_TIMEOUT, answer_later, NULL, &tv), 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
        if (atomic_load(&srv.stop))
                event_base_loopbreak(srv.base);
}

static void *loop_thread(void *arg) {
        event_base_dispatch(srv.base);
        return NULL;
}

static SSL_CTX *self_signed_ctx(void) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        _cleanup_(X509_freep) X509 *x = X509_new();
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

        cr_assert_not_null(x);
        cr_assert_not_null(ctx);
        cr_assert_eq(ec_p256_generate(&k), 0);
        cr_assert_eq(X509_set_version(x, 2), 1);
        cr_assert_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
        cr_assert_not_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
        cr_assert_not_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
        cr_assert_eq(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                                (const unsigned char *) "stream", -1, -1, 0),
                     1);
        cr_assert_eq(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
        cr_assert_eq(X509_set_pubkey(x, k), 1);
        cr_assert_gt(X509_sign(x, k, EVP_sha256()), 0);
        cr_assert_eq(SSL_CTX_use_certificate(ctx, x), 1);
        cr_assert_eq(SSL_CTX_use_PrivateKey(ctx, k), 1);
        /* As the join service has it. */
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
        return ctx;
}

static void sample(struct join_response *m) {
        *m = (struct join_response){ .has_master = true };
        memset(m->disk_key, 0x11, KEY_SIZE);
        memset(m->measurement_salt, 0x22, KEY_SIZE);
        memset(m->measurement_secret, 0x33, KEY_SIZE);
        memset(m->cluster_id, 0x44, KEY_SIZE);
        memset(m->master_secret, 0x55, KEY_SIZE);
        memset(m->master_salt, 0x66, KEY_SIZE);
        m->policy = strdup("{\"pcrs\": {}}\n");
        cr_assert_not_null(m->policy);
        m->policy_size = strlen(m->policy);
        strcpy(m->cluster_name, "stream-test");
        strcpy(m->driver, "etcd");
        strcpy(m->mesh_cidr, "10.123.0.0/16");
        strcpy(m->mesh_address, "10.123.0.9");
        m->peers = calloc(MANY, sizeof(*m->peers));
        cr_assert_not_null(m->peers);
        for (size_t i = 0; i < MANY; i++) {
                struct mesh_peer *p = &m->peers[i];

                snprintf(p->name, sizeof(p->name), "node-%04zu", i);
                strcpy(p->role, i % 7 ? "worker" : "control-plane");
                /* base64 of 32 bytes: 43 characters and '='. */
                snprintf(p->wg_public_key, sizeof(p->wg_public_key), "%c%041zuA=", 'A' + (int) (i % 26), i);
                snprintf(p->endpoint, sizeof(p->endpoint), "192.0.%zu.%zu:51820", i / 250, i % 250 + 1);
                snprintf(p->mesh_address, sizeof(p->mesh_address), "10.123.%zu.%zu", i / 250, i % 250 + 2);
        }
        m->n_peers = MANY;
}

static void server_up(void) {
        struct timeval tv = { .tv_usec = 20 * 1000 };
        struct errmsg e = {};

        signal(SIGPIPE, SIG_IGN);
        sample(&srv.resp);
        srv.ctx = self_signed_ctx();
        srv.base = event_base_new();
        cr_assert_not_null(srv.base);
        cr_assert_eq(http_server_new(srv.base, srv.ctx, "127.0.0.1", 0, &srv.hs, &e), 0, "%s", errmsg_str(&e));
        srv.port = http_server_port(srv.hs);
        cr_assert_eq(http_server_route(srv.hs, "/v1/answer", handle_answer, NULL), 0);
        cr_assert_eq(http_server_route(srv.hs, "/v1/later", handle_later, NULL), 0);
        srv.tick = event_new(srv.base, -1, EV_PERSIST, on_tick, NULL);
        cr_assert_not_null(srv.tick);
        cr_assert_eq(event_add(srv.tick, &tv), 0);
        cr_assert_eq(pthread_create(&srv.thread, NULL, loop_thread, NULL), 0);
        srv.running = true;
}

static void loop_stop(void) {
        if (!srv.running)
                return;
        atomic_store(&srv.stop, true);
        cr_assert_eq(pthread_join(srv.thread, NULL), 0);
        srv.running = false;
}

static void server_down(void) {
        loop_stop();
        event_free(srv.tick);
        http_server_free(srv.hs);
        event_base_free(srv.base);
        SSL_CTX_free(srv.ctx);
        join_response_done(&srv.resp);
}

/* Wait until `counter` reaches `want` (the server thread counts). */
static void wait_for(atomic_int *counter, int want, const char *what) {
        for (int i = 0; i < IO_TIMEOUT_S * 100 && atomic_load(counter) < want; i++)
                usleep(10 * 1000);
        cr_assert_eq(atomic_load(counter), want, "%s: %d, expected %d", what, atomic_load(counter), want);
}

/* --- the client --------------------------------------------------------------- */

struct client {
        int fd;
        SSL_CTX *ctx;
        SSL *ssl;
};

/* rcvbuf > 0: a receive buffer that small (set before connecting, so
 * that the window is small from the start). */
static void client_connect(struct client *c, int rcvbuf) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(srv.port) };
        struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(c->fd, 0);
        if (rcvbuf > 0)
                cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
        cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
        cr_assert_eq(connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)), 0, "connect: %m");
        c->ctx = SSL_CTX_new(TLS_client_method());
        cr_assert_not_null(c->ctx);
        c->ssl = SSL_new(c->ctx);
        cr_assert_not_null(c->ssl);
        cr_assert_eq(SSL_set_fd(c->ssl, c->fd), 1);
        cr_assert_eq(SSL_connect(c->ssl), 1, "TLS handshake failed");
}

/* linger: reset the connection (RST) instead of closing it (FIN). */
static void client_close(struct client *c, bool reset) {
        if (reset) {
                struct linger l = { .l_onoff = 1, .l_linger = 0 };
                cr_assert_eq(setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
        } else
                SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        SSL_CTX_free(c->ctx);
        close(c->fd);
        *c = (struct client){ .fd = -1 };
}

static void client_request(struct client *c, const char *path) {
        char req[256];
        int n = snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n", path);

        cr_assert_eq(SSL_write(c->ssl, req, n), n);
}

/* Up to `want` bytes; fewer only at the end of the connection. */
static size_t client_read(struct client *c, char *buf, size_t want) {
        size_t got = 0;

        while (got < want) {
                int n = SSL_read(c->ssl, buf + got, (int) (want - got));
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        return got;
}

struct answer {
        int status;
        char headers[2048];
        size_t content_length;
        char *body; /* content_length bytes, as many as came */
        size_t body_size;
};

/* The status line and headers, byte by byte up to the blank line. */
static void client_read_head(struct client *c, struct answer *a) {
        size_t n = 0;
        const char *cl;

        *a = (struct answer){};
        while (n < sizeof(a->headers) - 1 && !(n >= 4 && memcmp(a->headers + n - 4, "\r\n\r\n", 4) == 0)) {
                cr_assert_eq(client_read(c, a->headers + n, 1), 1u, "the connection ended in the headers: %s",
                             a->headers);
                n++;
        }
        cr_assert_eq(sscanf(a->headers, "HTTP/1.1 %d", &a->status), 1, "%s", a->headers);
        cl = strcasestr(a->headers, "\r\nContent-Length: ");
        cr_assert_not_null(cl, "no Content-Length: %s", a->headers);
        a->content_length = strtoul(cl + 18, NULL, 10);
        cr_assert_null(strcasestr(a->headers, "chunked"), "%s", a->headers);
}

static void client_read_answer(struct client *c, struct answer *a) {
        client_read_head(c, a);
        a->body = malloc(a->content_length + 1);
        cr_assert_not_null(a->body);
        a->body_size = client_read(c, a->body, a->content_length);
        a->body[a->body_size] = 0;
}

/* The whole serializer's text of the answer with the first n peers. */
static char *expected(size_t n) {
        struct join_response m = srv.resp;
        char *s = NULL;

        m.n_peers = n;
        cr_assert_eq(join_response_serialize(&m, &s), 0);
        return s;
}

static void assert_answer(struct client *c, size_t n) {
        _cleanup_free_ char *want = expected(n);
        struct join_response parsed = {};
        struct errmsg e = {};
        struct answer a;

        client_read_answer(c, &a);
        cr_assert_eq(a.status, 200, "%s", a.headers);
        cr_assert_eq(a.content_length, strlen(want) + 1, "Content-Length %zu for %zu peers", a.content_length, n);
        cr_assert_eq(a.body_size, a.content_length, "%zu of %zu bytes came", a.body_size, a.content_length);
        cr_assert_eq(a.body[a.body_size - 1], '\n');
        cr_assert_eq(memcmp(a.body, want, strlen(want)), 0, "%zu peers: the body differs from the serializer's", n);
        /* What a joiner does with it. */
        cr_assert_eq(join_response_parse(a.body, a.body_size, &parsed, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(parsed.n_peers, n);
        if (n > 0)
                cr_assert_str_eq(parsed.peers[n - 1].name, srv.resp.peers[n - 1].name);
        join_response_done(&parsed);
        free(a.body);
}

/* --- tests ------------------------------------------------------------------ */

TestSuite(http_stream, .init = server_up, .fini = server_down, .timeout = 60);

/* 0, 1 and many peers, each the serializer's bytes; several answers on
 * one kept connection, so that each answer ends where the next begins. */
Test(http_stream, answer_equals_the_serialization) {
        static const size_t counts[] = { 0, 1, 2, 700, MANY, 1 };
        struct client c;

        client_connect(&c, 0);
        for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
                char path[64];

                snprintf(path, sizeof(path), "/v1/answer?n=%zu", counts[i]);
                client_request(&c, path);
                assert_answer(&c, counts[i]);
                wait_for(&srv.released, (int) i + 1, "stream contexts released");
        }
        client_close(&c, false);
        cr_assert_eq(atomic_load(&srv.released_unfinished), 0);
        /* Many pieces: the largest answer was not sent whole at once. */
        cr_assert_gt(atomic_load(&srv.fills), (int) (120 * MANY / HTTP_STREAM_CHUNK), "%d fills",
                     atomic_load(&srv.fills));
}

/* The client reads part of a large answer and goes (reset, then closed
 * cleanly): the stream is released unfinished, once, and the server
 * answers the next client. */
static void close_mid_answer(bool reset) {
        struct client c;
        struct answer a;
        char some[1000];

        client_connect(&c, 4096);
        client_request(&c, "/v1/answer?n=" STRINGIFY(MANY));
        client_read_head(&c, &a);
        cr_assert_eq(a.status, 200);
        cr_assert_eq(client_read(&c, some, sizeof(some)), sizeof(some));
        client_close(&c, reset);
        wait_for(&srv.released, 1, "stream contexts released");
        cr_assert_eq(atomic_load(&srv.released_unfinished), 1, "the answer was sent whole before the client left");

        client_connect(&c, 0);
        client_request(&c, "/v1/answer?n=2");
        assert_answer(&c, 2);
        client_close(&c, false);
        wait_for(&srv.released, 2, "stream contexts released");
}

Test(http_stream, client_resets_mid_answer) {
        close_mid_answer(true);
}

Test(http_stream, client_closes_mid_answer) {
        close_mid_answer(false);
}

/* The client is gone before its answer starts: nothing is sent, the
 * stream is released. */
Test(http_stream, client_gone_before_the_answer) {
        struct client c;

        client_connect(&c, 0);
        client_request(&c, "/v1/later");
        usleep(50 * 1000);
        client_close(&c, true);
        wait_for(&srv.released, 1, "stream contexts released");
        cr_assert_eq(atomic_load(&srv.released_unfinished), 1);
        client_connect(&c, 0);
        client_request(&c, "/v1/answer?n=1");
        assert_answer(&c, 1);
        client_close(&c, false);
}

/* A fill that fails: the client gets less than the Content-Length and the
 * end of the connection, never a short answer that looks whole. */
Test(http_stream, failed_fill_ends_the_connection) {
        struct client c;
        struct answer a;

        client_connect(&c, 0);
        client_request(&c, "/v1/answer?n=700&fail=2");
        client_read_answer(&c, &a);
        cr_assert_eq(a.status, 200);
        cr_assert_lt(a.body_size, a.content_length, "%zu of %zu bytes", a.body_size, a.content_length);
        cr_assert_gt(a.body_size, 2u * HTTP_STREAM_CHUNK - MSG_PEER_TEXT_MAX, "the pieces before the failure came");
        free(a.body);
        client_close(&c, false);
        wait_for(&srv.released, 1, "stream contexts released");
        cr_assert_eq(atomic_load(&srv.released_unfinished), 1);
}

/* The server goes away while an answer is in flight (a join service
 * stopping): the stream is released with it. */
Test(http_stream, server_freed_mid_answer) {
        struct client c;
        struct answer a;

        client_connect(&c, 4096);
        client_request(&c, "/v1/answer?n=" STRINGIFY(MANY));
        client_read_head(&c, &a);
        cr_assert_eq(a.status, 200);
        loop_stop();
        cr_assert_eq(atomic_load(&srv.released), 0, "the answer was sent whole before the client read it");
        srv.hs = http_server_free(srv.hs);
        cr_assert_eq(atomic_load(&srv.released), 1);
        cr_assert_eq(atomic_load(&srv.released_unfinished), 1);
        client_close(&c, true);
}
