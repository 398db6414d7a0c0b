/* SPDX-License-Identifier: Apache-2.0 */
/* The libevent HTTP client (lib/http-client.c) against hand-written servers
 * on loopback that misbehave on purpose: one that never answers (the
 * request's deadline), one whose answer is larger than the bound (with a
 * length, chunked, until close) or whose headers are, one that closes kept
 * connections after answering (reconnect) or after reading a request
 * without answering (a GET is re-sent, a POST is not), a closed port
 * (refused), several requests at once on one event loop, and OpenSSL TLS
 * servers whose certificate names another host (HTTP_CLIENT_VERIFY_HOST).
 * Each server runs in a thread of its own and counts what it received. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http-client.h"
#include "openssl-util.h"
#include "platform.h"
#include "time-util.h"

enum mode {
        MODE_SILENT,      /* read the request, never answer */
        MODE_HUGE,        /* answer with a Content-Length body of `size` bytes */
        MODE_HUGE_CHUNKED,/* the same, chunked */
        MODE_ECHO,        /* answer "conn <c> req <r> body <n>", keep the connection */
        MODE_ECHO_CLOSE,  /* the same, then close the connection (keep-alive not honoured) */
        MODE_SLOW_ECHO,   /* wait `delay_ms`, then as MODE_ECHO */
        MODE_ANSWER_ONCE, /* as MODE_ECHO for a connection's first request; read the second, close unanswered */
        MODE_BIG_HEADERS, /* answer "ok" after a header line of `size` bytes */
        MODE_HUGE_UNTIL_CLOSE, /* answer with a body of `size` bytes delimited by closing the connection */
};

struct server {
        int fd;
        uint16_t port;
        SSL_CTX *ctx; /* TLS when set (freed by server_stop) */
        enum mode mode;
        size_t size;
        unsigned delay_ms;
        atomic_bool stop;
        atomic_uint connections, requests, closed;
        pthread_t thread;
};

/* A server's end of one connection: TCP, or TLS over it. */
struct peer {
        int fd;
        SSL *ssl;
};

static void peer_write(struct peer *c, const void *p, size_t n) {
        const char *d = p;

        while (n > 0) {
                ssize_t w = c->ssl ? SSL_write(c->ssl, d, (int) n) : send(c->fd, d, n, MSG_NOSIGNAL);
                if (w <= 0)
                        return;
                d += w;
                n -= (size_t) w;
        }
}

/* Bytes read; 0 when nothing came within 50 ms; < 0 on EOF or error. */
static ssize_t peer_read(struct peer *c, char *buf, size_t size) {
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        ssize_t n;

        if (c->ssl) {
                /* The socket has a 50 ms receive timeout. */
                n = SSL_read(c->ssl, buf, (int) size);
                return n > 0 ? n : SSL_get_error(c->ssl, (int) n) == SSL_ERROR_WANT_READ ? 0 : -1;
        }
        if (poll(&p, 1, 50) <= 0)
                return 0;
        n = recv(c->fd, buf, size, 0);
        return n > 0 ? n : -1;
}

/* Read one request (headers and a Content-Length body); false on EOF or stop. */
static bool read_request(struct server *s, struct peer *c, size_t *ret_body) {
        char buf[65536];
        size_t have = 0;

        for (;;) {
                char *end;
                ssize_t n;

                if (atomic_load(&s->stop))
                        return false;
                n = peer_read(c, buf + have, sizeof(buf) - 1 - have);
                if (n == 0)
                        continue;
                if (n < 0)
                        return false;
                have += (size_t) n;
                buf[have] = 0;
                end = strstr(buf, "\r\n\r\n");
                if (end) {
                        const char *cl = strcasestr(buf, "Content-Length:");
                        size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
                        if (have >= (size_t) (end + 4 - buf) + body) {
                                *ret_body = body;
                                return true;
                        }
                }
                if (have == sizeof(buf) - 1)
                        return false;
        }
}

static void serve_connection(struct server *s, struct peer *fd, unsigned conn) {
        unsigned req = 0;
        size_t body;

        while (read_request(s, fd, &body)) {
                char head[256], msg[128];

                atomic_fetch_add(&s->requests, 1);
                req++;
                switch (s->mode) {
                case MODE_SILENT:
                        while (!atomic_load(&s->stop))
                                usleep(10000);
                        return;
                case MODE_HUGE: {
                        char *p = malloc(s->size);
                        memset(p, 'x', s->size);
                        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", s->size);
                        peer_write(fd, head, strlen(head));
                        peer_write(fd, p, s->size);
                        free(p);
                        return;
                }
                case MODE_HUGE_CHUNKED: {
                        char chunk[4096 + 16];
                        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                        peer_write(fd, head, strlen(head));
                        for (size_t sent = 0; sent < s->size && !atomic_load(&s->stop); sent += 4096) {
                                int n = snprintf(chunk, sizeof(chunk), "1000\r\n");
                                memset(chunk + n, 'y', 4096);
                                memcpy(chunk + n + 4096, "\r\n", 2);
                                peer_write(fd, chunk, (size_t) n + 4096 + 2);
                        }
                        peer_write(fd, "0\r\n\r\n", 5);
                        return;
                }
                case MODE_BIG_HEADERS: {
                        char *p = malloc(s->size + 1);
                        memset(p, 'h', s->size);
                        p[s->size] = 0;
                        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nX-Big: ");
                        peer_write(fd, head, strlen(head));
                        peer_write(fd, p, s->size);
                        snprintf(head, sizeof(head), "\r\nContent-Length: 2\r\n\r\nok");
                        peer_write(fd, head, strlen(head));
                        free(p);
                        break;
                }
                case MODE_HUGE_UNTIL_CLOSE: {
                        char *p = malloc(s->size);
                        memset(p, 'z', s->size);
                        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                        peer_write(fd, head, strlen(head));
                        peer_write(fd, p, s->size);
                        free(p);
                        return;
                }
                case MODE_ANSWER_ONCE:
                        if (req > 1)
                                return;
                        /* fall through */
                case MODE_SLOW_ECHO:
                        if (s->mode == MODE_SLOW_ECHO)
                                usleep(s->delay_ms * 1000);
                        /* fall through */
                case MODE_ECHO:
                case MODE_ECHO_CLOSE:
                        snprintf(msg, sizeof(msg), "conn %u req %u body %zu", conn, req, body);
                        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", strlen(msg));
                        peer_write(fd, head, strlen(head));
                        peer_write(fd, msg, strlen(msg));
                        if (s->mode == MODE_ECHO_CLOSE)
                                return;
                        break;
                }
        }
}

struct conn_arg {
        struct server *s;
        int fd;
        unsigned conn;
};

static void *conn_thread(void *arg) {
        struct conn_arg *a = arg;
        struct peer c = { .fd = a->fd };

        if (a->s->ctx) {
                struct timeval tv = { .tv_usec = 50000 };
                int r;

                (void) setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                c.ssl = SSL_new(a->s->ctx);
                cr_assert_not_null(c.ssl);
                SSL_set_fd(c.ssl, a->fd);
                while ((r = SSL_accept(c.ssl)) != 1 && SSL_get_error(c.ssl, r) == SSL_ERROR_WANT_READ &&
                       !atomic_load(&a->s->stop))
                        ;
                if (r != 1)
                        c.ssl = (SSL_free(c.ssl), NULL);
        }
        if (!a->s->ctx || c.ssl)
                serve_connection(a->s, &c, a->conn);
        if (c.ssl) {
                /* close_notify, unless the server is to look as if it
                 * died after reading a request. */
                if (a->s->mode != MODE_ANSWER_ONCE)
                        SSL_shutdown(c.ssl);
                SSL_free(c.ssl);
        }
        close(a->fd);
        atomic_fetch_add(&a->s->closed, 1);
        free(a);
        return NULL;
}

static void *server_thread(void *arg) {
        struct server *s = arg;

        while (!atomic_load(&s->stop)) {
                struct pollfd p = { .fd = s->fd, .events = POLLIN };
                struct conn_arg *a;
                pthread_t t;
                int fd;

                if (poll(&p, 1, 50) <= 0)
                        continue;
                fd = accept(s->fd, NULL, NULL);
                if (fd < 0)
                        continue;
                a = malloc(sizeof(*a));
                *a = (struct conn_arg){ .s = s, .fd = fd, .conn = atomic_fetch_add(&s->connections, 1) + 1 };
                if (pthread_create(&t, NULL, conn_thread, a) != 0) {
                        close(fd);
                        free(a);
                        continue;
                }
                pthread_detach(t);
        }
        return NULL;
}

static void server_start(struct server *s, enum mode mode) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);

        signal(SIGPIPE, SIG_IGN);
        s->mode = mode;
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(s->fd, 0);
        cr_assert_eq(bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(s->fd, 16), 0);
        cr_assert_eq(getsockname(s->fd, (struct sockaddr *) &sa, &sl), 0);
        s->port = ntohs(sa.sin_port);
        cr_assert_eq(pthread_create(&s->thread, NULL, server_thread, s), 0);
}

static void server_stop(struct server *s) {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
        close(s->fd);
        /* Connection threads see stop within 50 ms. */
        usleep(150000);
        SSL_CTX_free(s->ctx);
}

static void url_of(const struct server *s, const char *path, char *buf, size_t size) {
        snprintf(buf, size, "http://127.0.0.1:%u%s", s->port, path);
}

Test(http_client, get_and_post) {
        struct server s = {};
        struct http_response resp = {};
        struct errmsg e = {};
        char url[128];
        int r;

        server_start(&s, MODE_ECHO);
        url_of(&s, "/x", url, sizeof(url));
        r = http_request_url(url, NULL, 0, &(struct http_request){ .method = "GET" }, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_eq(resp.status, 200);
        cr_assert_str_eq(resp.body, "conn 1 req 1 body 0");
        http_response_done(&resp);
        r = http_request_url(url, NULL, 0,
                             &(struct http_request){ .method = "POST", .body = "{\"a\":1}", .body_size = 7 }, &resp,
                             &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_str_eq(resp.body, "conn 2 req 1 body 7");
        http_response_done(&resp);
        server_stop(&s);
}

Test(http_client, deadline_covers_a_server_that_never_answers) {
        struct server s = {};
        struct http_response resp = {};
        struct errmsg e = {};
        char url[128];
        double t0;
        int r;

        server_start(&s, MODE_SILENT);
        url_of(&s, "/", url, sizeof(url));
        t0 = now_s();
        r = http_request_url(url, NULL, 0, &(struct http_request){ .method = "GET", .timeout_ms = 300 }, &resp, &e);
        cr_assert_eq(r, -ETIMEDOUT, "%d %s", r, errmsg_str(&e));
        cr_assert_geq(now_s() - t0, 0.29);
        cr_assert_lt(now_s() - t0, 5.0, "took %.1f s", now_s() - t0);
        cr_assert_not_null(strstr(e.text, "300 ms"), "%s", e.text);
        cr_assert_null(resp.body);
        cr_assert_eq(atomic_load(&s.requests), 1);
        server_stop(&s);
}

static void expect_too_large(enum mode mode) {
        struct server s = { .size = 256 * 1024 };
        struct http_response resp = {};
        struct errmsg e = {};
        char url[128];
        int r;

        server_start(&s, mode);
        url_of(&s, "/", url, sizeof(url));
        r = http_request_url(url, NULL, 0, &(struct http_request){ .method = "GET", .max_response = 64 * 1024 },
                             &resp, &e);
        cr_assert_eq(r, -EFBIG, "%d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "exceeds 65536 bytes"), "%s", e.text);
        cr_assert_null(resp.body);
        /* The same answer within a larger bound is taken. */
        r = http_request_url(url, NULL, 0,
                             &(struct http_request){ .method = "GET", .max_response = 512 * 1024 }, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_eq(resp.body_size, 256 * 1024);
        http_response_done(&resp);
        server_stop(&s);
}

Test(http_client, refuses_a_body_over_the_bound) {
        expect_too_large(MODE_HUGE);
}

Test(http_client, refuses_a_chunked_body_over_the_bound) {
        expect_too_large(MODE_HUGE_CHUNKED);
}

Test(http_client, refuses_a_body_delimited_by_close_over_the_bound) {
        expect_too_large(MODE_HUGE_UNTIL_CLOSE);
}

/* GET / from a server started in mode. */
static int get_root(struct server *s, enum mode mode, struct http_response *resp, struct errmsg *e) {
        char url[128];

        server_start(s, mode);
        url_of(s, "/", url, sizeof(url));
        *e = (struct errmsg){};
        return http_request_url(url, NULL, 0, &(struct http_request){ .method = "GET" }, resp, e);
}

Test(http_client, refuses_headers_over_their_bound) {
        struct server big = { .size = HTTP_CLIENT_MAX_HEADERS + 1024 }, fit = { .size = HTTP_CLIENT_MAX_HEADERS / 2 };
        struct http_response resp = {};
        struct errmsg e = {};
        int r;

        r = get_root(&big, MODE_BIG_HEADERS, &resp, &e);
        cr_assert_eq(r, -EFBIG, "%d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "headers exceed 16384 bytes"), "%s", e.text);
        cr_assert_null(resp.body);
        /* Headers within the bound, the same answer otherwise: taken. */
        r = get_root(&fit, MODE_BIG_HEADERS, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_str_eq(resp.body, "ok");
        http_response_done(&resp);
        server_stop(&big);
        server_stop(&fit);
}

Test(http_client, refused_connection_is_named) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        struct http_response resp = {};
        struct errmsg e = {};
        char url[128];
        int fd, r;

        /* A port that was free a moment ago and has no listener. */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
        close(fd);
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
        r = http_request_url(url, NULL, 0, &(struct http_request){ .method = "GET", .timeout_ms = 5000 }, &resp, &e);
        cr_assert_eq(r, -ECONNREFUSED, "%d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "127.0.0.1:"), "%s", e.text);
}

/* Until the server closed `n` connections, and its FIN has reached us. */
static void wait_closed(struct server *s, unsigned n) {
        for (int i = 0; i < 500 && atomic_load(&s->closed) < n; i++)
                usleep(10000);
        cr_assert_geq(atomic_load(&s->closed), n);
        usleep(20000);
}

/* A client keeping its connection to s (https and the host checked when
 * ctx is given). */
static struct http_client *kept_client(const struct server *s, SSL_CTX *ctx) {
        struct http_client *c = NULL;
        struct errmsg e = {};
        char url[128];

        snprintf(url, sizeof(url), "%s://127.0.0.1:%u", ctx ? "https" : "http", s->port);
        cr_assert_eq(http_client_new(NULL, url, ctx, HTTP_CLIENT_KEEP_ALIVE | (ctx ? HTTP_CLIENT_VERIFY_HOST : 0), &c,
                                     &e),
                     0, "%s", errmsg_str(&e));
        return c;
}

static const struct http_request post_ab = { .method = "POST", .path = "/txn", .body = "ab", .body_size = 2 };

/* Three POSTs from c to s: all on one connection (MODE_ECHO), or, when s
 * closes after each answer (MODE_ECHO_CLOSE), each after that close
 * arrived: the check before reuse sees it and nothing is written to the
 * closed connection. Either way each POST reaches the server once. */
static void post_three(struct http_client *c, struct server *s) {
        bool closing = s->mode == MODE_ECHO_CLOSE;

        for (unsigned i = 1; i <= 3; i++) {
                struct http_response resp = {};
                struct errmsg e = {};
                char want[64];
                int r;

                if (closing)
                        wait_closed(s, i - 1);
                r = http_client_run(c, &post_ab, &resp, &e);
                cr_assert_eq(r, 0, "request %u: %d %s", i, r, errmsg_str(&e));
                snprintf(want, sizeof(want), "conn %u req %u body 2", closing ? i : 1, closing ? 1 : i);
                cr_assert_str_eq(resp.body, want);
                http_response_done(&resp);
        }
        cr_assert_eq(atomic_load(&s->requests), 3);
        cr_assert_eq(atomic_load(&s->connections), closing ? 3 : 1);
}

Test(http_client, keeps_the_connection_and_reconnects_when_the_server_closed_it) {
        struct server keep = {}, closing = {};
        _cleanup_(http_client_freep) struct http_client *c = NULL, *d = NULL;
        struct http_response resp = {};
        struct errmsg e = {};
        int r;

        server_start(&keep, MODE_ECHO);
        c = kept_client(&keep, NULL);
        post_three(c, &keep);

        /* A server that closes after each answer: each GET on a new
         * connection, none fails, whether the close arrived or not. */
        server_start(&closing, MODE_ECHO_CLOSE);
        d = kept_client(&closing, NULL);
        for (unsigned i = 1; i <= 3; i++) {
                r = http_client_run(d, &(struct http_request){ .method = "GET", .path = "/k" }, &resp, &e);
                cr_assert_eq(r, 0, "request %u: %d %s", i, r, errmsg_str(&e));
                cr_assert_eq(resp.status, 200);
                http_response_done(&resp);
                usleep(20000); /* let the close arrive, or not: both must work */
        }
        cr_assert_eq(atomic_load(&closing.connections), 3);
        server_stop(&keep);
        server_stop(&closing);
}

Test(http_client, post_after_the_server_closed_the_kept_connection_goes_once_on_a_new_one) {
        struct server s = {};
        _cleanup_(http_client_freep) struct http_client *c = NULL;

        server_start(&s, MODE_ECHO_CLOSE);
        c = kept_client(&s, NULL);
        post_three(c, &s);
        server_stop(&s);
}

/* The first request of req's method on a kept connection is answered;
 * the server reads the second and closes the connection unanswered. */
static int second_unanswered(struct server *s, SSL_CTX *ctx, struct http_client **ret_c,
                             const struct http_request *req, struct http_response *ret, struct errmsg *e) {
        struct http_response first = {};
        int r;

        server_start(s, MODE_ANSWER_ONCE);
        *ret_c = kept_client(s, ctx);
        r = http_client_run(*ret_c, req, &first, e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(e));
        http_response_done(&first);
        return http_client_run(*ret_c, req, ret, e);
}

Test(http_client, post_is_not_resent_when_the_server_closes_without_answering_a_get_is) {
        struct server s = {}, g = {};
        _cleanup_(http_client_freep) struct http_client *c = NULL, *d = NULL;
        struct http_response resp = {};
        struct errmsg e = {};
        int r;

        r = second_unanswered(&s, NULL, &c, &post_ab, &resp, &e);
        cr_assert_eq(r, -ECONNRESET, "%d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "POST was not re-sent"), "%s", e.text);
        cr_assert_not_null(strstr(e.text, "127.0.0.1:"), "%s", e.text);
        cr_assert_null(resp.body);
        usleep(200000);
        cr_assert_eq(atomic_load(&s.requests), 2, "the server got the POST %u times", atomic_load(&s.requests) - 1);
        cr_assert_eq(atomic_load(&s.connections), 1);
        /* The client goes on, on a new connection. */
        e = (struct errmsg){};
        r = http_client_run(c, &post_ab, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_str_eq(resp.body, "conn 2 req 1 body 2");
        http_response_done(&resp);
        cr_assert_eq(atomic_load(&s.requests), 3);

        /* A GET is sent once more, on a new connection. */
        r = second_unanswered(&g, NULL, &d, &(struct http_request){ .method = "GET", .path = "/range" }, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_str_eq(resp.body, "conn 2 req 1 body 0");
        http_response_done(&resp);
        cr_assert_eq(atomic_load(&g.requests), 3);
        cr_assert_eq(atomic_load(&g.connections), 2);
        server_stop(&s);
        server_stop(&g);
}

struct pending {
        struct event_base *base;
        unsigned left;
        int r[4];
        char body[4][64];
        double done_at[4];
};

struct slot {
        struct pending *p;
        unsigned i;
};

static void async_done(int r, struct http_response *resp, const struct errmsg *e, void *userdata) {
        struct slot *s = userdata;

        s->p->r[s->i] = r;
        s->p->done_at[s->i] = now_s();
        if (r == 0)
                snprintf(s->p->body[s->i], sizeof(s->p->body[0]), "%s", resp->body);
        http_response_done(resp);
        if (--s->p->left == 0)
                event_base_loopbreak(s->p->base);
}

Test(http_client, requests_run_side_by_side_in_one_event_loop) {
        struct server s = { .delay_ms = 300 };
        struct http_client *c[4] = {};
        struct slot slots[4];
        struct pending p = { .left = 4 };
        struct errmsg e = {};
        char url[128];
        double t0;

        server_start(&s, MODE_SLOW_ECHO);
        url_of(&s, "", url, sizeof(url));
        p.base = event_base_new();
        cr_assert_not_null(p.base);
        for (unsigned i = 0; i < 4; i++) {
                cr_assert_eq(http_client_new(p.base, url, NULL, 0, &c[i], &e), 0, "%s", errmsg_str(&e));
                /* Blocking use needs a client of its own base. */
                cr_assert_eq(http_client_run(c[i], &(struct http_request){ .method = "GET", .path = "/" },
                                             &(struct http_response){}, &e),
                             -EINVAL);
        }
        t0 = now_s();
        for (unsigned i = 0; i < 4; i++) {
                slots[i] = (struct slot){ .p = &p, .i = i };
                e = (struct errmsg){};
                cr_assert_eq(http_client_start(c[i], &(struct http_request){ .method = "GET", .path = "/" }, async_done,
                                               &slots[i], &e),
                             0, "%s", errmsg_str(&e));
        }
        /* One request at a time per client. */
        cr_assert_eq(http_client_start(c[0], &(struct http_request){ .method = "GET", .path = "/" }, async_done,
                                       &slots[0], &e),
                     -EBUSY);
        event_base_dispatch(p.base);
        cr_assert_eq(p.left, 0);
        for (unsigned i = 0; i < 4; i++) {
                cr_assert_eq(p.r[i], 0, "request %u: %d", i, p.r[i]);
                cr_assert_not_null(strstr(p.body[i], "req 1 body 0"), "%s", p.body[i]);
                http_client_free(c[i]);
        }
        /* Four answers that each take 300 ms, together in well under 4 x 300 ms. */
        cr_assert_lt(now_s() - t0, 1.0, "took %.2f s", now_s() - t0);
        event_base_free(p.base);
        server_stop(&s);
}

Test(http_client, cancelled_request_calls_nothing) {
        struct server s = {};
        struct http_client *c = NULL;
        struct slot slot;
        struct pending p = { .left = 1 };
        struct errmsg e = {};
        struct timeval tv = { .tv_usec = 200000 };
        char url[128];

        server_start(&s, MODE_SILENT);
        url_of(&s, "", url, sizeof(url));
        p.base = event_base_new();
        cr_assert_eq(http_client_new(p.base, url, NULL, 0, &c, &e), 0, "%s", errmsg_str(&e));
        slot = (struct slot){ .p = &p, .i = 0 };
        cr_assert_eq(http_client_start(c, &(struct http_request){ .method = "GET", .path = "/" }, async_done, &slot, &e),
                     0);
        event_base_loopexit(p.base, &tv);
        event_base_dispatch(p.base);
        cr_assert_eq(atomic_load(&s.requests), 1);
        http_client_free(c); /* cancels */
        event_base_loopexit(p.base, &tv);
        event_base_dispatch(p.base);
        cr_assert_eq(p.left, 1, "the callback of a cancelled request ran");
        event_base_free(p.base);
        server_stop(&s);
}

Test(http_client, url_parser_refuses_what_it_cannot_reach) {
        static const char *const bad[] = {
                "ftp://127.0.0.1/", "http://", "http://user@127.0.0.1/", "http://127.0.0.1:0/",
                "http://127.0.0.1:70000/", "http://127.0.0.1/a b", "127.0.0.1:80", "http://127.0.0.1/#frag",
        };
        struct http_url u;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct errmsg e = {};
                cr_assert_lt(http_url_parse(bad[i], &u, &e), 0, "accepted %s", bad[i]);
                cr_assert_neq(e.text[0], 0);
        }
        cr_assert_eq(http_url_parse("https://[::1]:30090/v1/join?x=1", &u, NULL), 0);
        cr_assert(u.tls);
        cr_assert_str_eq(u.host, "::1");
        cr_assert_eq(u.port, 30090);
        cr_assert_str_eq(u.path, "/v1/join?x=1");
        cr_assert_eq(http_url_parse("http://10.0.0.1", &u, NULL), 0);
        cr_assert_eq(u.port, 80);
        cr_assert_str_eq(u.path, "");
}

/* --- TLS ------------------------------------------------------------------------------- */

/* A CA (trusted by the client through a PEM file) and server certificates
 * it issues with the subjectAltName given. */
struct pki {
        char dir[64];
        char ca_path[128];
        EVP_PKEY *ca_key;
        X509 *ca;
};

static void pki_init(struct pki *p) {
        struct errmsg e = {};

        snprintf(p->dir, sizeof(p->dir), "/tmp/test-http-client.XXXXXX");
        cr_assert_not_null(mkdtemp(p->dir));
        snprintf(p->ca_path, sizeof(p->ca_path), "%s/ca.pem", p->dir);
        cr_assert_eq(platform_ca_create("arca test CA", 1, &p->ca_key, &p->ca, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(pem_write_x509_file(p->ca_path, p->ca), 0);
}

static void pki_done(struct pki *p) {
        unlink(p->ca_path);
        rmdir(p->dir);
        X509_free(p->ca);
        EVP_PKEY_free(p->ca_key);
}

static SSL_CTX *server_ctx(struct pki *p, const char *san) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        X509_EXTENSION *ext;
        X509V3_CTX v3;
        struct errmsg e = {};
        SSL_CTX *ctx;

        cr_assert_eq(ec_p256_generate(&key), 0);
        cr_assert_eq(platform_issue_cert(p->ca_key, p->ca, key, "arca test server", 1, false, &x, &e), 0, "%s",
                     errmsg_str(&e));
        X509V3_set_ctx(&v3, p->ca, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        cr_assert_not_null(ext);
        cr_assert_eq(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
        cr_assert_gt(X509_sign(x, p->ca_key, EVP_sha256()), 0);
        ctx = SSL_CTX_new(TLS_server_method());
        cr_assert_not_null(ctx);
        cr_assert_eq(SSL_CTX_use_certificate(ctx, x), 1);
        cr_assert_eq(SSL_CTX_use_PrivateKey(ctx, key), 1);
        return ctx;
}

static int tls_get(const char *host, const struct server *s, SSL_CTX *ctx, unsigned flags,
                   struct http_response *resp, struct errmsg *e) {
        char url[128];

        snprintf(url, sizeof(url), "https://%s:%u/x", host, s->port);
        *e = (struct errmsg){};
        return http_request_url(url, ctx, flags, &(struct http_request){ .method = "GET", .timeout_ms = 10000 },
                                resp, e);
}

/* https://host/ with HTTP_CLIENT_VERIFY_HOST: a server whose certificate,
 * issued by the trusted CA, names other hosts (wrong_san) is refused
 * before anything of the request is sent; without the flag the same
 * server is accepted (only the host check failed); a server whose
 * certificate names host (right_san) is accepted. */
static void expect_host_checked(const char *host, const char *wrong_san, const char *right_san) {
        struct pki p;
        struct server other = {}, right = {};
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        struct http_response resp = {};
        struct errmsg e = {};
        char want[128];
        int r;

        pki_init(&p);
        cr_assert_eq(http_tls_ctx_new(p.ca_path, NULL, NULL, &ctx, &e), 0, "%s", errmsg_str(&e));
        other.ctx = server_ctx(&p, wrong_san);
        server_start(&other, MODE_ECHO);
        r = tls_get(host, &other, ctx, HTTP_CLIENT_VERIFY_HOST, &resp, &e);
        cr_assert_eq(r, -EPROTO, "%d %s", r, errmsg_str(&e));
        snprintf(want, sizeof(want), "does not name %s", host);
        cr_assert_not_null(strstr(e.text, want), "%s", e.text);
        cr_assert_null(resp.body);
        cr_assert_eq(atomic_load(&other.requests), 0, "the request reached a server that failed verification");
        r = tls_get(host, &other, ctx, 0, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_eq(resp.status, 200);
        http_response_done(&resp);
        right.ctx = server_ctx(&p, right_san);
        server_start(&right, MODE_ECHO);
        r = tls_get(host, &right, ctx, HTTP_CLIENT_VERIFY_HOST, &resp, &e);
        cr_assert_eq(r, 0, "%d %s", r, errmsg_str(&e));
        cr_assert_str_eq(resp.body, "conn 1 req 1 body 0");
        http_response_done(&resp);
        server_stop(&other);
        server_stop(&right);
        pki_done(&p);
}

Test(http_client, verify_host_refuses_a_certificate_for_another_address) {
        expect_host_checked("127.0.0.1", "DNS:other.example,IP:10.9.9.9", "IP:127.0.0.1");
}

Test(http_client, verify_host_refuses_a_certificate_for_another_name) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
        struct addrinfo *ai = NULL;
        bool loopback4;

        /* The client connects to the first address of "localhost"; the
         * servers listen on 127.0.0.1. */
        loopback4 = getaddrinfo("localhost", NULL, &hints, &ai) == 0 && ai->ai_family == AF_INET &&
                    ((struct sockaddr_in *) ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
        if (ai)
                freeaddrinfo(ai);
        if (!loopback4)
                cr_skip_test("\"localhost\" does not resolve to 127.0.0.1 first here");
        /* The address alone does not do for a name. */
        expect_host_checked("localhost", "DNS:other.example,IP:127.0.0.1", "DNS:localhost");
}

Test(http_client, tls_kept_connection_is_reused_and_replaced_once_the_server_closed_it) {
        struct pki p;
        struct server keep = {}, closing = {}, unanswered = {};
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        _cleanup_(http_client_freep) struct http_client *c = NULL, *d = NULL, *u = NULL;
        struct http_response resp = {};
        struct errmsg e = {};
        SSL *ssl;
        int r;

        pki_init(&p);
        cr_assert_eq(http_tls_ctx_new(p.ca_path, NULL, NULL, &ctx, &e), 0, "%s", errmsg_str(&e));
        /* Nothing the TLS server sends besides its answers (session
         * tickets) makes the check before reuse drop the connection. */
        keep.ctx = server_ctx(&p, "IP:127.0.0.1");
        server_start(&keep, MODE_ECHO);
        c = kept_client(&keep, ctx);
        post_three(c, &keep);
        /* OpenSSL wipes the plaintext it handed over. */
        ssl = http_client_ssl(c);
        cr_assert_not_null(ssl);
        cr_assert(SSL_get_options(ssl) & SSL_OP_CLEANSE_PLAINTEXT);

        /* A server that closes (close_notify, FIN) after each answer. */
        closing.ctx = server_ctx(&p, "IP:127.0.0.1");
        server_start(&closing, MODE_ECHO_CLOSE);
        d = kept_client(&closing, ctx);
        post_three(d, &closing);

        /* One that reads the second POST and closes unanswered, without
         * close_notify: not re-sent. */
        unanswered.ctx = server_ctx(&p, "IP:127.0.0.1");
        r = second_unanswered(&unanswered, ctx, &u, &post_ab, &resp, &e);
        cr_assert_eq(r, -ECONNRESET, "%d %s", r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, "POST was not re-sent"), "%s", e.text);
        usleep(200000);
        cr_assert_eq(atomic_load(&unanswered.requests), 2);
        c = http_client_free(c);
        d = http_client_free(d);
        u = http_client_free(u);
        server_stop(&keep);
        server_stop(&closing);
        server_stop(&unanswered);
        pki_done(&p);
}
