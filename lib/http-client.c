/* SPDX-License-Identifier: Apache-2.0 */
#include "http-client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "openssl-util.h"
#include "secret.h"

struct http_client {
        struct event_base *base;
        bool own_base;
        SSL_CTX *ssl_ctx;
        unsigned flags;
        struct http_url url;
        char origin[HTTP_CLIENT_HOST_MAX + 16];

        struct evhttp_connection *conn;
        bool conn_down;         /* went down (or never came up): a new one for the next request */
        bool tls_started, tls_done; /* of conn's handshake (evhttp clears the SSL when it fails) */
        unsigned conn_requests; /* requests answered on conn */

        struct event *timer;  /* the request's deadline */
        struct event *finish; /* hands the outcome to the caller outside libevent's callbacks */

        /* The request in progress. */
        bool busy;
        struct evhttp_request *req;
        enum evhttp_cmd_type method;
        char *path;
        char *body;
        size_t body_size;
        char content_type[64];
        size_t max_response;
        long timeout_ms;
        bool reused;  /* sent on a connection that answered before */
        bool retried; /* a GET re-sent once after the server closed a kept connection */
        bool headers_done; /* the response's headers were read */
        size_t received;   /* bytes of the response read so far */
        bool error_set;
        enum evhttp_request_error error;
        int sys_errno;
        http_done_t done;
        void *userdata;
        int result;
        struct errmsg e;
        struct http_response resp;
};

void http_response_done(struct http_response *r) {
        if (!r)
                return;
        /* Answers carry keys (join, rejoin). */
        if (r->body)
                secret_wipe(r->body, r->body_size);
        free(r->body);
        *r = (struct http_response){};
}

/* --- URLs ------------------------------------------------------------------------ */

int http_url_parse(const char *url, struct http_url *ret, struct errmsg *e) {
        struct evhttp_uri *u;
        struct http_url out = {};
        const char *scheme, *host, *path, *query;
        int port;
        size_t n;

        if (!url)
                return errmsg_set(e, EINVAL, "no URL");
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
                        return errmsg_set(e, EINVAL, "URL holds a space or control character");
        u = evhttp_uri_parse_with_flags(url, 0);
        if (!u)
                return errmsg_set(e, EINVAL, "\"%.200s\" is not a URL", url);
        scheme = evhttp_uri_get_scheme(u);
        host = evhttp_uri_get_host(u);
        port = evhttp_uri_get_port(u);
        path = evhttp_uri_get_path(u);
        query = evhttp_uri_get_query(u);
        if (!scheme || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
                evhttp_uri_free(u);
                return errmsg_set(e, EINVAL, "\"%.200s\": only http:// and https:// URLs", url);
        }
        out.tls = strcasecmp(scheme, "https") == 0;
        if (!host || !host[0] || evhttp_uri_get_userinfo(u) || evhttp_uri_get_fragment(u)) {
                evhttp_uri_free(u);
                return errmsg_set(e, EINVAL, "\"%.200s\": a URL needs a host (no user, no fragment)", url);
        }
        n = strlen(host);
        if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
                host++;
                n -= 2;
        }
        if (n > HTTP_CLIENT_HOST_MAX) {
                evhttp_uri_free(u);
                return errmsg_set(e, EINVAL, "\"%.200s\": host name too long", url);
        }
        memcpy(out.host, host, n);
        out.port = port > 0 && port <= 65535 ? (uint16_t) port : out.tls ? 443 : 80;
        if (port == 0 || port > 65535) {
                evhttp_uri_free(u);
                return errmsg_set(e, EINVAL, "\"%.200s\": invalid port", url);
        }
        if ((size_t) snprintf(out.path, sizeof(out.path), "%s%s%s", path ? path : "", query ? "?" : "",
                              query ? query : "") >= sizeof(out.path)) {
                evhttp_uri_free(u);
                return errmsg_set(e, EINVAL, "\"%.200s\": path too long", url);
        }
        evhttp_uri_free(u);
        *ret = out;
        return 0;
}

static bool is_ip_literal(const char *host) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* --- connections -------------------------------------------------------------------- */

/* Small writes leave at once (TCP_NODELAY), as curl does: a TLS client's
 * Finished and its request are two writes, and with Nagle the request
 * waits for the server's delayed ACK (~40 ms). evhttp makes the socket
 * itself, so it is set when the handshake starts. */
static void tls_info_cb(const SSL *ssl, int where, int ret) {
        struct http_client *c = SSL_get_app_data(ssl);
        void (*ctx_cb)(const SSL *, int, int) = SSL_CTX_get_info_callback(SSL_get_SSL_CTX(ssl));
        int fd;

        /* This one replaces the context's, which aTLS needs too: it
         * records a verified server's refusal alert (atls.h). */
        if (ctx_cb)
                ctx_cb(ssl, where, ret);

        if (c && (where & SSL_CB_HANDSHAKE_DONE))
                c->tls_done = true;
        if (!(where & SSL_CB_HANDSHAKE_START))
                return;
        if (c)
                c->tls_started = true;
        fd = SSL_get_fd(ssl);
        if (fd >= 0)
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
}

static void close_cb(struct evhttp_connection *conn, void *arg) {
        struct http_client *c = arg;
        c->conn_down = true;
}

/* Counts what the server sent for the request in progress (plaintext
 * for TLS): evhttp reports headers over their bound as malformed, and
 * this tells the two apart. */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
        struct http_client *c = arg;
        c->received += info->n_added;
}

/* Whether a kept connection, idle since its last answer, may carry the
 * next request. A server that closed it left readable EOF, an error or
 * (TLS) its close_notify on the socket; an HTTP server sends nothing
 * unasked, so any readable byte means it is done with the connection.
 * Inside a running event loop evhttp notices this by itself (close_cb);
 * a blocking client's loop does not run between requests, so the socket
 * is asked here, before a byte of the request is written. */
static bool conn_idle_usable(struct http_client *c) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
        evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
        char b;

        if (fd < 0 || evbuffer_get_length(bufferevent_get_input(bev)) > 0)
                return false;
        if (c->url.tls) {
                SSL *ssl = bufferevent_openssl_get_ssl(bev);

                /* Its close_notify already read (the FIN not yet here). */
                if (SSL_pending(ssl) > 0 || (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN))
                        return false;
        }
        return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void conn_free(struct http_client *c) {
        if (c->conn)
                evhttp_connection_free(c->conn);
        c->conn = NULL;
        c->conn_down = false;
        c->conn_requests = 0;
        c->tls_started = c->tls_done = false;
}

static int conn_new(struct http_client *c, struct errmsg *e) {
        struct bufferevent *bev;
        /* evhttp's own per-operation timeout stays behind the request's
         * deadline (timer_cb), which reports it. */
        long ms = c->timeout_ms + 1000;
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

        conn_free(c);
        if (c->url.tls) {
                SSL *ssl = SSL_new(c->ssl_ctx);

                if (!ssl)
                        return openssl_error(e, ENOMEM, "cannot create a TLS connection");
                SSL_set_info_callback(ssl, tls_info_cb);
                SSL_set_app_data(ssl, c);
                /* Answers carry keys: OpenSSL wipes the decrypted record
                 * once it handed it over, and its buffers when freed. */
                SSL_set_options(ssl, SSL_OP_CLEANSE_PLAINTEXT);
                if (c->flags & HTTP_CLIENT_VERIFY_HOST) {
                        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
                        bool ip = is_ip_literal(c->url.host);

                        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(param, c->url.host)
                                : X509_VERIFY_PARAM_set1_host(param, c->url.host, 0)) != 1 ||
                            (!ip && SSL_set_tlsext_host_name(ssl, c->url.host) != 1)) {
                                SSL_free(ssl);
                                return openssl_error(e, EINVAL, "cannot set the TLS host name to verify");
                        }
                }
                bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
                if (!bev) {
                        SSL_free(ssl);
                        return errmsg_set(e, ENOMEM, "%s: cannot create a TLS bufferevent", c->origin);
                }
        } else {
                bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
                if (!bev)
                        return errmsg_set(e, ENOMEM, "%s: cannot create a bufferevent", c->origin);
        }
        if (!evbuffer_add_cb(bufferevent_get_input(bev), input_cb, c)) {
                bufferevent_free(bev);
                return errmsg_set(e, ENOMEM, "%s: cannot create a bufferevent", c->origin);
        }
        /* Takes the bufferevent, also on failure? No: free it ourselves then. */
        c->conn = evhttp_connection_base_bufferevent_new(c->base, NULL, bev, c->url.host, c->url.port);
        if (!c->conn) {
                bufferevent_free(bev);
                return errmsg_set(e, ENOMEM, "%s: cannot create an HTTP connection", c->origin);
        }
        evhttp_connection_set_retries(c->conn, 0);
        evhttp_connection_set_timeout_tv(c->conn, &tv);
        evhttp_connection_set_max_headers_size(c->conn, HTTP_CLIENT_MAX_HEADERS);
        evhttp_connection_set_closecb(c->conn, close_cb, c);
        return 0;
}

/* --- one request --------------------------------------------------------------------- */

/* libevent frees its buffers' memory without wiping it: a request body
 * (init and recover carry secrets) goes to it as a copy it owns, which it
 * wipes through this when it has sent it or drops it. */
static void body_release(const void *data, size_t size, void *extra) {
        (void) extra;
        secret_free((void *) data, size);
}

static int add_body(struct evbuffer *out, const void *body, size_t size) {
        void *copy = malloc(size);

        if (!copy)
                return -ENOMEM;
        memcpy(copy, body, size);
        if (evbuffer_add_reference(out, copy, size, body_release, NULL) < 0) {
                secret_free(copy, size);
                return -ENOMEM;
        }
        return 0;
}

static void request_forget(struct http_client *c) {
        c->busy = false;
        c->req = NULL;
        c->path = mfree(c->path);
        /* Requests carry secrets (init, recover). */
        if (c->body)
                secret_wipe(c->body, c->body_size);
        c->body = mfree(c->body);
        c->body_size = 0;
        if (c->timer)
                evtimer_del(c->timer);
        if (c->finish)
                event_del(c->finish);
}

/* The outcome is set; tell the caller from the loop. */
static void conclude(struct http_client *c, int r) {
        c->result = r;
        c->req = NULL; /* evhttp frees or has freed it */
        if (c->timer)
                evtimer_del(c->timer);
        event_active(c->finish, EV_TIMEOUT, 1);
}

static void error_cb(enum evhttp_request_error error, void *arg) {
        struct http_client *c = arg;

        /* errno still tells why a connect failed. */
        c->sys_errno = errno;
        c->error = error;
        c->error_set = true;
}

static int header_cb(struct evhttp_request *req, void *arg) {
        struct http_client *c = arg;
        c->headers_done = true;
        return 0;
}

static int tls_failure(struct http_client *c, SSL *ssl, bool handshake_done) {
        unsigned long err, openssl_err = 0, code = 0;
        char buf[256] = "";
        long vr;

        /* bufferevent_openssl queues SSL_get_error()'s code (small numbers)
         * and then OpenSSL's own errors, if any. */
        while (c->conn && (err = bufferevent_get_openssl_error(evhttp_connection_get_bufferevent(c->conn)))) {
                if (err < 256)
                        code = err;
                else
                        openssl_err = err;
        }
        vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
                return errmsg_set(&c->e, EPROTO, "%s: TLS certificate verification failed: the certificate "
                                                 "does not name %s (%s)", c->origin, c->url.host,
                                  X509_verify_cert_error_string(vr));
        if (vr != X509_V_OK && vr != X509_V_ERR_APPLICATION_VERIFICATION)
                return errmsg_set(&c->e, EPROTO, "%s: TLS certificate verification failed: %s", c->origin,
                                  X509_verify_cert_error_string(vr));
        if (openssl_err) {
                ERR_error_string_n(openssl_err, buf, sizeof(buf));
                return errmsg_set(&c->e, EPROTO, "%s: TLS handshake failed: %s", c->origin, buf);
        }
        if (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN)
                return errmsg_set(&c->e, ECONNRESET, "%s: the server closed the connection %s", c->origin,
                                  handshake_done ? "after the TLS handshake (it may have refused this side's certificate)"
                                                 : "during the TLS handshake");
        if (code)
                return errmsg_set(&c->e, EPROTO, "%s: TLS handshake failed (SSL error %lu)", c->origin, code);
        return 0;
}

static int failure(struct http_client *c, SSL *ssl, bool handshake_done) {
        int r;

        /* A connection that answered before passed its handshake: its
         * TLS errors (an end without close_notify) are its end, said
         * below with what it means for the request. */
        if (c->url.tls && !c->reused) {
                r = tls_failure(c, ssl, handshake_done);
                if (r < 0)
                        return r;
        }
        /* evhttp reports a refused connect without its error callback, but
         * also some ends of a connection that was made. */
        if (!c->error_set) {
                if (c->tls_started)
                        return errmsg_set(&c->e, ECONNRESET, "%s: the server closed the connection %s", c->origin,
                                          handshake_done ? "after the TLS handshake (it may have refused this "
                                                           "side's certificate)"
                                                         : "during the TLS handshake");
                return errmsg_set(&c->e, ECONNREFUSED, "%s: cannot connect: connection refused", c->origin);
        }
        /* libevent 2.1 reports headers over their bound as invalid, a
         * body over its bound as too long. A malformed header line
         * arriving with more than the bound in one read is reported as
         * too long: refused either way. */
        if (!c->headers_done &&
            (c->error == EVREQ_HTTP_DATA_TOO_LONG ||
             (c->error == EVREQ_HTTP_INVALID_HEADER && c->received > HTTP_CLIENT_MAX_HEADERS)))
                return errmsg_set(&c->e, EFBIG, "%s: response headers exceed %u bytes", c->origin,
                                  HTTP_CLIENT_MAX_HEADERS);
        switch (c->error) {
        case EVREQ_HTTP_TIMEOUT:
                return errmsg_set(&c->e, ETIMEDOUT, "%s: no answer within %ld ms", c->origin, c->timeout_ms);
        case EVREQ_HTTP_DATA_TOO_LONG:
                return errmsg_set(&c->e, EFBIG, "%s: response exceeds %zu bytes", c->origin, c->max_response);
        case EVREQ_HTTP_INVALID_HEADER:
                return errmsg_set(&c->e, EPROTO, "%s: malformed HTTP response", c->origin);
        case EVREQ_HTTP_EOF:
        case EVREQ_HTTP_BUFFER_ERROR:
        default:
                if (c->sys_errno == ECONNREFUSED || c->sys_errno == EHOSTUNREACH ||
                    c->sys_errno == ENETUNREACH || c->sys_errno == ETIMEDOUT)
                        return errmsg_set(&c->e, c->sys_errno, "%s: cannot connect: %s", c->origin,
                                          strerror(c->sys_errno));
                if (c->url.tls && !handshake_done)
                        return errmsg_set(&c->e, ECONNRESET, "%s: connection closed before the TLS handshake "
                                                             "completed", c->origin);
                if (c->reused && c->method != EVHTTP_REQ_GET)
                        return errmsg_set(&c->e, ECONNRESET, "%s: the server closed the kept connection without "
                                                             "answering; the POST was not re-sent (the server may "
                                                             "have applied it)", c->origin);
                return errmsg_set(&c->e, ECONNRESET, "%s: connection closed before a complete answer",
                                  c->origin);
        }
}

static int send_request(struct http_client *c, struct errmsg *e);

/* Answers carry keys (join, rejoin, recover): the body leaves libevent's
 * buffer chain by chain, each wiped in place before it is released (a
 * pullup would copy it first and free the chains unwiped; an empty first
 * chain made the old per-chain pullup do just that). */
static int take_body(struct evbuffer *in, char *dst, size_t len) {
        size_t off = 0;

        while (off < len) {
                struct evbuffer_iovec v[8];
                int k = evbuffer_peek(in, (ev_ssize_t) (len - off), NULL, v, ELEMENTSOF(v));
                size_t got = 0;

                for (int i = 0; i < k && i < (int) ELEMENTSOF(v) && off + got < len; i++) {
                        size_t n = v[i].iov_len < len - off - got ? v[i].iov_len : len - off - got;

                        memcpy(dst + off + got, v[i].iov_base, n);
                        secret_wipe(v[i].iov_base, n);
                        got += n;
                }
                if (got == 0)
                        return -EIO;
                evbuffer_drain(in, got);
                off += got;
        }
        return 0;
}

static void request_cb(struct evhttp_request *req, void *arg) {
        struct http_client *c = arg;
        struct evbuffer *in;
        SSL *ssl = http_client_ssl(c);
        bool handshake_done = !c->url.tls || c->tls_done;
        int code = req ? evhttp_request_get_response_code(req) : 0;
        size_t len;

        c->req = NULL;
        if (!req || code == 0) {
                c->conn_down = true;
                /* A kept connection that ended without an answer, though it
                 * looked open (conn_idle_usable): the server may have read
                 * the request and acted on it. Only a GET is sent once more,
                 * on a new connection (from the finish callback). */
                if (c->reused && !c->retried && c->method == EVHTTP_REQ_GET && c->error_set &&
                    (c->error == EVREQ_HTTP_EOF || c->error == EVREQ_HTTP_BUFFER_ERROR)) {
                        c->retried = true;
                        c->result = -EAGAIN;
                        event_active(c->finish, EV_TIMEOUT, 1);
                        return;
                }
                conclude(c, failure(c, ssl, handshake_done));
                return;
        }
        /* evhttp held the body to max_response (EVREQ_HTTP_DATA_TOO_LONG). */
        in = evhttp_request_get_input_buffer(req);
        len = evbuffer_get_length(in);
        c->resp.body = malloc(len + 1);
        if (!c->resp.body) {
                conclude(c, -ENOMEM);
                return;
        }
        if (take_body(in, c->resp.body, len) < 0) {
                secret_free(c->resp.body, len + 1);
                c->resp.body = NULL;
                conclude(c, errmsg_set(&c->e, EIO, "%s: cannot read the response", c->origin));
                return;
        }
        c->resp.body[len] = 0;
        c->resp.body_size = len;
        c->resp.status = code;
        c->conn_requests++;
        conclude(c, 0);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg) {
        struct http_client *c = arg;
        struct http_response resp;
        struct errmsg e;
        http_done_t done = c->done;
        void *userdata = c->userdata;
        int r = c->result;

        if (r == -EAGAIN) {
                struct errmsg e2 = {};
                c->error_set = false;
                r = send_request(c, &e2);
                if (r >= 0)
                        return;
                c->e = e2;
        }
        if (!(c->flags & HTTP_CLIENT_KEEP_ALIVE) || c->conn_down)
                conn_free(c);
        resp = c->resp;
        c->resp = (struct http_response){};
        e = c->e;
        request_forget(c);
        /* Last: the callback may free or reuse the client. */
        done(r, &resp, &e, userdata);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
        struct http_client *c = arg;

        if (c->req)
                evhttp_cancel_request(c->req); /* resets the connection; no request callback */
        c->req = NULL;
        c->conn_down = true;
        conclude(c, errmsg_set(&c->e, ETIMEDOUT, "%s: no complete answer within %ld ms", c->origin, c->timeout_ms));
}

static int send_request(struct http_client *c, struct errmsg *e) {
        struct evkeyvalq *h;
        struct evhttp_request *req;

        if (c->conn && !c->conn_down && (c->flags & HTTP_CLIENT_KEEP_ALIVE) && c->conn_requests > 0 &&
            !conn_idle_usable(c))
                c->conn_down = true;
        if (!c->conn || c->conn_down || !(c->flags & HTTP_CLIENT_KEEP_ALIVE)) {
                int r = conn_new(c, e);
                if (r < 0)
                        return r;
        }
        c->reused = c->conn_requests > 0;
        c->headers_done = false;
        c->received = 0;
        evhttp_connection_set_max_body_size(c->conn, (ev_ssize_t) c->max_response);
        req = evhttp_request_new(request_cb, c);
        if (!req)
                return errmsg_set(e, ENOMEM, "%s: cannot create a request", c->origin);
        evhttp_request_set_error_cb(req, error_cb);
        evhttp_request_set_header_cb(req, header_cb);
        h = evhttp_request_get_output_headers(req);
        if (evhttp_add_header(h, "Host", c->origin) < 0 || evhttp_add_header(h, "Accept", "application/json") < 0 ||
            (c->method == EVHTTP_REQ_POST && evhttp_add_header(h, "Content-Type", c->content_type) < 0) ||
            (!(c->flags & HTTP_CLIENT_KEEP_ALIVE) && evhttp_add_header(h, "Connection", "close") < 0) ||
            (c->body_size > 0 && add_body(evhttp_request_get_output_buffer(req), c->body, c->body_size) < 0)) {
                evhttp_request_free(req);
                return errmsg_set(e, ENOMEM, "%s: cannot build the request", c->origin);
        }
        c->error_set = false;
        c->sys_errno = 0;
        if (evhttp_make_request(c->conn, req, c->method, c->path) < 0) {
                /* evhttp freed the request. */
                c->conn_down = true;
                return errmsg_set(e, ECONNREFUSED, "%s: cannot connect", c->origin);
        }
        c->req = req;
        return 0;
}

int http_client_start(struct http_client *c, const struct http_request *req, http_done_t done, void *userdata,
                      struct errmsg *e) {
        struct timeval tv;
        int r;

        if (c->busy)
                return errmsg_set(e, EBUSY, "%s: a request is in progress", c->origin);
        if (!req->method || !req->path || req->path[0] != '/' || !done)
                return errmsg_set(e, EINVAL, "invalid HTTP request");
        if (streq(req->method, "GET"))
                c->method = EVHTTP_REQ_GET;
        else if (streq(req->method, "POST"))
                c->method = EVHTTP_REQ_POST;
        else
                return errmsg_set(e, EINVAL, "HTTP method \"%.16s\" is not supported", req->method);
        c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
        c->max_response = req->max_response ? req->max_response : HTTP_CLIENT_DEFAULT_MAX_RESPONSE;
        snprintf(c->content_type, sizeof(c->content_type), "%s",
                 req->content_type ? req->content_type : "application/json");
        c->path = strdup(req->path);
        c->body_size = req->body ? req->body_size : 0;
        c->body = c->body_size ? malloc(c->body_size) : NULL;
        if (!c->path || (c->body_size && !c->body)) {
                request_forget(c);
                return -ENOMEM;
        }
        if (c->body_size)
                memcpy(c->body, req->body, c->body_size);
        c->done = done;
        c->userdata = userdata;
        c->retried = false;
        c->result = 0;
        c->e = (struct errmsg){};
        c->resp = (struct http_response){};
        c->busy = true;
        r = send_request(c, e);
        if (r < 0) {
                if (c->conn_down)
                        conn_free(c);
                request_forget(c);
                return r;
        }
        tv = (struct timeval){ .tv_sec = c->timeout_ms / 1000, .tv_usec = (c->timeout_ms % 1000) * 1000 };
        evtimer_add(c->timer, &tv);
        return 0;
}

void http_client_cancel(struct http_client *c) {
        if (!c || !c->busy)
                return;
        if (c->req)
                evhttp_cancel_request(c->req);
        c->req = NULL;
        conn_free(c);
        http_response_done(&c->resp);
        request_forget(c);
}

/* --- blocking use ------------------------------------------------------------------------- */

struct run_state {
        bool done;
        int r;
        struct http_response resp;
        struct errmsg e;
        struct event_base *base;
};

static void run_done(int r, struct http_response *resp, const struct errmsg *e, void *userdata) {
        struct run_state *s = userdata;

        s->done = true;
        s->r = r;
        s->resp = *resp;
        *resp = (struct http_response){};
        s->e = *e;
        event_base_loopbreak(s->base);
}

int http_client_run(struct http_client *c, const struct http_request *req, struct http_response *ret,
                    struct errmsg *e) {
        struct run_state s = { .base = c->base };
        sigset_t pipe_set, old;
        bool pipe_pending;
        int r;

        if (!c->own_base)
                return errmsg_set(e, EINVAL, "http_client_run needs a client with its own event base");
        /* Writes to a closed peer must fail with EPIPE, not kill the
         * process: block SIGPIPE here and drop one we caused. */
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        {
                sigset_t pending;
                sigpending(&pending);
                pipe_pending = sigismember(&pending, SIGPIPE);
        }
        r = http_client_start(c, req, run_done, &s, e);
        while (r >= 0 && !s.done)
                if (event_base_dispatch(c->base) < 0) {
                        http_client_cancel(c);
                        r = errmsg_set(e, EIO, "%s: event loop failed", c->origin);
                }
        if (!pipe_pending) {
                struct timespec zero = {};
                sigset_t pending;
                sigpending(&pending);
                if (sigismember(&pending, SIGPIPE))
                        (void) sigtimedwait(&pipe_set, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                return r;
        if (s.r < 0) {
                if (e && !e->text[0])
                        *e = s.e;
                return s.r;
        }
        *ret = s.resp;
        return 0;
}

int http_request_to(const struct http_url *url, SSL_CTX *ssl_ctx, unsigned flags, const struct http_request *req,
                    struct http_response *ret, struct errmsg *e) {
        _cleanup_(http_client_freep) struct http_client *c = NULL;
        struct http_request rq = *req;
        int r;

        r = http_client_new_url(NULL, url, ssl_ctx, flags & ~HTTP_CLIENT_KEEP_ALIVE, &c, e);
        if (r < 0)
                return r;
        rq.path = url->path[0] ? url->path : "/";
        return http_client_run(c, &rq, ret, e);
}

int http_request_url(const char *url, SSL_CTX *ssl_ctx, unsigned flags, const struct http_request *req,
                     struct http_response *ret, struct errmsg *e) {
        struct http_url u;
        int r;

        r = http_url_parse(url, &u, e);
        if (r < 0)
                return r;
        return http_request_to(&u, ssl_ctx, flags, req, ret, e);
}

/* --- handle -------------------------------------------------------------------------------- */

int http_client_new(struct event_base *base, const char *origin, SSL_CTX *ssl_ctx, unsigned flags,
                    struct http_client **ret, struct errmsg *e) {
        struct http_url u;
        int r;

        r = http_url_parse(origin, &u, e);
        if (r < 0)
                return r;
        return http_client_new_url(base, &u, ssl_ctx, flags, ret, e);
}

int http_client_new_url(struct event_base *base, const struct http_url *url, SSL_CTX *ssl_ctx, unsigned flags,
                        struct http_client **ret, struct errmsg *e) {
        _cleanup_(http_client_freep) struct http_client *c = NULL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->url = *url;
        if (c->url.tls) {
                if (!ssl_ctx)
                        return errmsg_set(e, EINVAL, "https needs a TLS context");
                if (SSL_CTX_up_ref(ssl_ctx) != 1)
                        return -ENOMEM;
                c->ssl_ctx = ssl_ctx;
        }
        snprintf(c->origin, sizeof(c->origin), strchr(c->url.host, ':') ? "[%s]:%u" : "%s:%u", c->url.host,
                 c->url.port);
        c->flags = flags;
        c->timeout_ms = HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
        if (!base) {
                base = event_base_new();
                if (!base)
                        return errmsg_set(e, ENOMEM, "cannot create an event base");
                c->own_base = true;
        }
        c->base = base;
        c->timer = evtimer_new(base, timer_cb, c);
        c->finish = event_new(base, -1, 0, finish_cb, c);
        if (!c->timer || !c->finish)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

struct http_client *http_client_free(struct http_client *c) {
        if (!c)
                return NULL;
        http_client_cancel(c);
        conn_free(c);
        if (c->timer)
                event_free(c->timer);
        if (c->finish)
                event_free(c->finish);
        if (c->own_base && c->base)
                event_base_free(c->base);
        SSL_CTX_free(c->ssl_ctx);
        free(c);
        return NULL;
}

const char *http_client_origin(const struct http_client *c) {
        return c->origin;
}

SSL *http_client_ssl(const struct http_client *c) {
        struct bufferevent *bev;

        if (!c->url.tls || !c->conn)
                return NULL;
        bev = evhttp_connection_get_bufferevent(c->conn);
        return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

/* --- X.509 TLS contexts ----------------------------------------------------------------------- */

int http_tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file, SSL_CTX **ret,
                     struct errmsg *e) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;

        if (!cert_file != !key_file)
                return errmsg_set(e, EINVAL, "a client certificate needs its key and vice versa");
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
                return openssl_error(e, ENOMEM, "cannot create a TLS context");
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
                return openssl_error(e, EIO, "cannot set the TLS version");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                    : SSL_CTX_set_default_verify_paths(ctx) != 1)
                return openssl_error(e, EIO, ca_file ? "cannot load the CA file" : "cannot load the system's CA certificates");
        if (cert_file && (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
                          SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
                          SSL_CTX_check_private_key(ctx) != 1))
                return openssl_error(e, EIO, "cannot use the client certificate and key");
        *ret = TAKE_PTR(ctx);
        return 0;
}
