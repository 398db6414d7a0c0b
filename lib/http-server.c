/* SPDX-License-Identifier: Apache-2.0 */
#include "http-server.h"

#include <assert.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "json-util.h"
#include "macro.h"
#include "secret.h"

struct http_server {
        struct evhttp *http;
        SSL_CTX *ctx;
        uint16_t port;
};

static struct bufferevent *bev_cb(struct event_base *base, void *arg) {
        struct http_server *s = arg;
        SSL *ssl = SSL_new(s->ctx);

        if (!ssl)
                return NULL;
        return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

int http_server_new(struct event_base *base, SSL_CTX *ctx, const char *address, uint16_t port,
                    struct http_server **ret, struct errmsg *e) {
        struct http_server *s;
        struct evhttp_bound_socket *sock;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->http = evhttp_new(base);
        if (!s->http) {
                free(s);
                return -ENOMEM;
        }
        if (SSL_CTX_up_ref(ctx) != 1) {
                http_server_free(s);
                return -ENOMEM;
        }
        s->ctx = ctx;
        evhttp_set_bevcb(s->http, bev_cb, s);
        evhttp_set_max_body_size(s->http, HTTP_MAX_BODY);
        evhttp_set_max_headers_size(s->http, 16 * 1024);
        evhttp_set_timeout(s->http, 30);
        evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
        sock = evhttp_bind_socket_with_handle(s->http, address, port);
        if (!sock) {
                int r = errno > 0 ? -errno : -EADDRINUSE;
                http_server_free(s);
                return errmsg_set(e, r, "Cannot listen on %s:%u: %s", address, port, strerror(-r));
        }
        /* Replies leave in more than one TLS record; without TCP_NODELAY
         * the second waits for the client's delayed ACK (~40 ms). Accepted
         * sockets inherit it. */
        (void) setsockopt(evhttp_bound_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
        if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *) &ss, &sl) == 0)
                s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                                         : ((struct sockaddr_in *) &ss)->sin_port);
        *ret = s;
        return 0;
}

struct http_server *http_server_free(struct http_server *s) {
        if (!s)
                return NULL;
        if (s->http)
                evhttp_free(s->http);
        SSL_CTX_free(s->ctx);
        free(s);
        return NULL;
}

uint16_t http_server_port(const struct http_server *s) {
        return s->port;
}

int http_server_route(struct http_server *s, const char *path, http_handler_t h, void *userdata) {
        return evhttp_set_cb(s->http, path, h, userdata) == 0 ? 0 : -EEXIST;
}

void http_server_default(struct http_server *s, http_handler_t h, void *userdata) {
        evhttp_set_gencb(s->http, h, userdata);
}

SSL *http_request_ssl(struct evhttp_request *req) {
        struct evhttp_connection *conn = evhttp_request_get_connection(req);
        struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
        return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

int http_request_body(struct evhttp_request *req, size_t max, char **ret, size_t *ret_size) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        char *p;

        if (len > max)
                return -EFBIG;
        p = malloc(len + 1);
        if (!p)
                return -ENOMEM;
        if (evbuffer_copyout(in, p, len) != (ev_ssize_t) len) {
                free(p);
                return -EIO;
        }
        p[len] = 0;
        *ret = p;
        *ret_size = len;
        return 0;
}

void http_reply_raw_json(struct evhttp_request *req, int code, const char *json, size_t len) {
        struct evbuffer *out = evbuffer_new();

        if (!out) {
                evhttp_send_error(req, HTTP_INTERNAL, NULL);
                return;
        }
        evbuffer_add(out, json, len);
        evbuffer_add(out, "\n", 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
        evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", out);
        evbuffer_free(out);
}

static void secret_cleanup(const void *data, size_t len, void *extra) {
        secret_free((void *) data, len);
}

void http_reply_raw_json_take(struct evhttp_request *req, int code, char *json, size_t len) {
        struct evbuffer *out = evbuffer_new();

        /* The newline in place of the NUL: one chain. A byte added after a
         * reference chain would get a chain of its own of twice the
         * referenced size (libevent sizes a new chain from the last). */
        json[len] = '\n';
        if (!out || evbuffer_add_reference(out, json, len + 1, secret_cleanup, NULL) < 0) {
                secret_free(json, len + 1);
                if (out)
                        evbuffer_free(out);
                evhttp_send_error(req, HTTP_INTERNAL, NULL);
                return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
        evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", out);
        evbuffer_free(out);
}

struct http_stream {
        struct evhttp_request *req;
        size_t left; /* of the JSON document, after what was handed over */
        http_fill_t fill;
        void (*release)(void *userdata);
        void *userdata;
};

static void stream_release(struct http_stream *st) {
        if (st->release)
                st->release(st->userdata);
        free(st);
}

/* The connection went away mid-answer. A client that closed or timed out
 * leaves the request detached from it, and ours to free; a server being
 * freed takes it along with the connection. */
static void stream_closed(struct evhttp_connection *evcon, void *arg) {
        struct http_stream *st = arg;
        struct evhttp_request *req = st->req;

        stream_release(st);
        if (!evhttp_request_get_connection(req))
                evhttp_send_reply_end(req);
}

/* A fill that broke its promise: the answer cannot be completed, so the
 * connection goes (the request with it). */
static void stream_abort(struct http_stream *st) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(st->req);

        evhttp_connection_set_closecb(evcon, NULL, NULL);
        stream_release(st);
        evhttp_connection_free(evcon);
}

static void free_cleanup(const void *data, size_t len, void *extra) {
        free((void *) data);
}

/* Everything handed over so far left: the next piece, allocated at its
 * size (libevent would round a chain of its own up to a power of two). */
static void stream_more(struct evhttp_connection *evcon, void *arg) {
        struct http_stream *st = arg;
        size_t room = st->left < HTTP_STREAM_CHUNK ? st->left : HTTP_STREAM_CHUNK;
        struct evbuffer *out = evbuffer_new();
        char *buf = malloc(room + 1);
        ssize_t n = 0;

        if (!out || !buf) {
                free(buf);
                goto fail;
        }
        if (room > 0) {
                n = st->fill(st->userdata, buf, room);
                if (n <= 0 || (size_t) n > room) {
                        free(buf);
                        goto fail;
                }
                st->left -= (size_t) n;
        }
        if (st->left == 0)
                buf[n++] = '\n';
        if (evbuffer_add_reference(out, buf, (size_t) n, free_cleanup, NULL) < 0) {
                free(buf);
                goto fail;
        }
        if (st->left > 0) {
                evhttp_send_reply_chunk_with_cb(st->req, out, stream_more, st);
                evbuffer_free(out);
                return;
        }
        /* The last piece: the rest is libevent's (the connection is freed
         * with the request if the client goes now). */
        evhttp_connection_set_closecb(evcon, NULL, NULL);
        evhttp_send_reply_chunk(st->req, out);
        evbuffer_free(out);
        evhttp_send_reply_end(st->req);
        stream_release(st);
        return;
fail:
        if (out)
                evbuffer_free(out);
        stream_abort(st);
}

void http_reply_json_stream(struct evhttp_request *req, int code, char *head, size_t head_len, size_t len,
                            http_fill_t fill, void (*release)(void *userdata), void *userdata) {
        struct evhttp_connection *evcon = evhttp_request_get_connection(req);
        struct http_stream *st = NULL;
        struct evbuffer *out = NULL;
        char length[32];

        assert(head_len > 0 && head_len <= len);
        if (!evcon) {
                /* The client is gone already: nothing to send. */
                secret_free(head, head_len);
                if (release)
                        release(userdata);
                evhttp_send_reply_end(req);
                return;
        }
        st = malloc(sizeof(*st));
        out = evbuffer_new();
        if (!st || !out || evbuffer_add_reference(out, head, head_len, secret_cleanup, NULL) < 0) {
                secret_free(head, head_len);
                if (out)
                        evbuffer_free(out);
                free(st);
                if (release)
                        release(userdata);
                evhttp_send_error(req, HTTP_INTERNAL, NULL);
                return;
        }
        *st = (struct http_stream){ .req = req, .left = len - head_len, .fill = fill, .release = release,
                                    .userdata = userdata };
        snprintf(length, sizeof(length), "%zu", len + 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", length);
        evhttp_send_reply_start(req, code, code < 300 ? "OK" : "Error");
        evhttp_connection_set_closecb(evcon, stream_closed, st);
        /* The head alone: a chain added after a reference chain would be
         * sized from it. */
        evhttp_send_reply_chunk_with_cb(req, out, stream_more, st);
        evbuffer_free(out);
}

void http_reply_json(struct evhttp_request *req, int code, json_object *o) {
        struct evbuffer *out = evbuffer_new();
        const char *s;
        size_t len;

        if (!out) {
                evhttp_send_error(req, HTTP_INTERNAL, NULL);
                return;
        }
        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
        evbuffer_add(out, s, len);
        evbuffer_add(out, "\n", 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
        evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", out);
        evbuffer_free(out);
}

void http_reply_error(struct evhttp_request *req, int code, const char *fmt, ...) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (!o || json_add_string(o, "error", msg) < 0) {
                evhttp_send_error(req, HTTP_INTERNAL, NULL);
                return;
        }
        http_reply_json(req, code, o);
}
