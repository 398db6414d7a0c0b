/* SPDX-License-Identifier: Apache-2.0 */
#include "http-server.h"

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
