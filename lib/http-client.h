/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 client on libevent's evhttp, over TCP or OpenSSL TLS
 * (bufferevent_openssl): the one HTTP client of arca (aTLS RPCs in
 * atls-http.h, the registry's etcd gateway, the control-plane drivers).
 *
 * A client talks to one origin (scheme://host:port) and runs at most one
 * request at a time. It works in two ways:
 *   - blocking: http_client_new(NULL, ...) gives the client an event_base
 *     of its own and http_client_run() performs one request on it;
 *   - inside an existing event loop: http_client_new(base, ...) and
 *     http_client_start(), whose callback runs from that loop.
 * Every request has one deadline covering connect, TLS handshake, sending
 * and receiving (ETIMEDOUT), and a bound on the response body and one on
 * its headers (EFBIG). With HTTP_CLIENT_KEEP_ALIVE the connection stays
 * open for the next request; otherwise each request has a fresh
 * connection, closed after it.
 *
 * Kept connections and re-sending: before a kept connection is reused it
 * is checked for what a server that closed it leaves behind (readable EOF,
 * an error, or any unasked byte such as a TLS close_notify); such a
 * connection is replaced before anything is written to it. If a reused
 * connection still ends without an answer (the server closed it just as
 * the request went out, or read the request and closed), the server may
 * have acted on the request: a GET is re-sent once on a new connection, a
 * POST is not (an etcd transaction would be applied twice or fail its
 * compare on the second try; a join could be applied twice). The caller
 * gets ECONNRESET saying the POST was not re-sent, and decides.
 *
 * TLS: the caller's SSL_CTX decides what is verified (atls.h for aTLS,
 * http_tls_ctx_new for X.509); a fresh SSL per connection, no resumption
 * unless the context allows it. Request data is written only after the
 * TLS handshake succeeded, so a peer that fails verification receives
 * nothing. The process must ignore SIGPIPE when using a client inside its
 * own event loop; blocking requests block SIGPIPE in the calling thread
 * while they run.
 *
 * Secrets in transit (init and recover requests, join, rejoin and recover
 * answers carry keys): the request body goes to libevent as a copy that is
 * wiped when libevent releases it; the response body is copied out of
 * libevent's buffer chain by chain, each wiped in place before it is
 * released; OpenSSL cleanses its record buffer once it has handed the
 * plaintext over (SSL_OP_CLEANSE_PLAINTEXT, set per connection) and when
 * the connection is freed. Limit: libevent keeps no such promise for
 * memory it manages itself. evhttp moves a response from the connection's
 * buffer to the request's by copying the part of a chain it shares with
 * the headers, and frees the source chain without wiping it; libevent
 * frees drained chains, and the output chains holding the request's
 * headers, the same way; the kernel's socket buffers are out of reach.
 * Closing that would take a wiping allocator for all of libevent
 * (event_set_mem_functions, process-wide, installed before any libevent
 * use), which this module does not install. */

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "macro.h"

#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS 30000L
#define HTTP_CLIENT_DEFAULT_MAX_RESPONSE (4 * 1024 * 1024)
#define HTTP_CLIENT_MAX_HEADERS (16 * 1024)
#define HTTP_CLIENT_HOST_MAX 255

enum {
        /* Keep the connection for the next request. */
        HTTP_CLIENT_KEEP_ALIVE = 1 << 0,
        /* https: the server certificate must name the URL's host (DNS name
         * or IP address), besides chaining to the context's trust store. */
        HTTP_CLIENT_VERIFY_HOST = 1 << 1,
};

struct http_response {
        long status;
        char *body; /* NUL-terminated; may hold NULs of its own */
        size_t body_size;
};

void http_response_done(struct http_response *r);

struct http_request {
        const char *method; /* "GET" or "POST" */
        const char *path;   /* absolute path (and query) on the client's origin */
        const char *body;   /* POST body (copied); NULL: empty */
        size_t body_size;
        const char *content_type; /* NULL: application/json */
        long timeout_ms;          /* whole request; <= 0: HTTP_CLIENT_DEFAULT_TIMEOUT_MS */
        size_t max_response;      /* body bound; 0: HTTP_CLIENT_DEFAULT_MAX_RESPONSE */
};

/* A parsed "http://host[:port][/path]" or "https://...": host without the
 * brackets of an IPv6 literal; path "" when absent. */
struct http_url {
        bool tls;
        char host[HTTP_CLIENT_HOST_MAX + 1];
        uint16_t port;
        char path[1024];
};
int http_url_parse(const char *url, struct http_url *ret, struct errmsg *e);

struct http_client;

/* origin: "http://host:port" or "https://host:port" (a path is ignored).
 * base NULL: the client makes its own, for http_client_run. ssl_ctx is
 * required for https (one reference is taken) and ignored for http. */
int http_client_new(struct event_base *base, const char *origin, SSL_CTX *ssl_ctx, unsigned flags,
                    struct http_client **ret, struct errmsg *e);
/* The same for a URL the caller parsed already (its path is ignored). */
int http_client_new_url(struct event_base *base, const struct http_url *url, SSL_CTX *ssl_ctx, unsigned flags,
                        struct http_client **ret, struct errmsg *e);
/* Cancels a request in progress without calling its callback. */
struct http_client *http_client_free(struct http_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct http_client *, http_client_free);

/* "host:port" as given, for messages. */
const char *http_client_origin(const struct http_client *c);
/* The TLS connection of the request in progress, or the kept one between
 * requests (for a callback of the caller's SSL_CTX that needs it); NULL
 * for http or when no connection is open. */
SSL *http_client_ssl(const struct http_client *c);

/* r is 0 and resp filled (owned by the callback: pass it to
 * http_response_done) for any HTTP status; otherwise a negative errno
 * with the reason in e: ETIMEDOUT, ECONNREFUSED, ECONNRESET (also a POST
 * not re-sent, see above), EFBIG (body or headers over their bound),
 * EPROTO (TLS or HTTP failure), ENOMEM. Called from the
 * event loop, never from inside http_client_start; the client may be
 * freed or reused from the callback. */
typedef void (*http_done_t)(int r, struct http_response *resp, const struct errmsg *e, void *userdata);

/* Start a request; -EBUSY while another one runs. */
int http_client_start(struct http_client *c, const struct http_request *req, http_done_t done, void *userdata,
                      struct errmsg *e);
/* Stop the request in progress; its callback is not called. */
void http_client_cancel(struct http_client *c);
/* One request, blocking (clients made with base NULL only). */
int http_client_run(struct http_client *c, const struct http_request *req, struct http_response *ret,
                    struct errmsg *e);

/* One blocking request to a full URL on a fresh connection (req's path
 * is ignored: the URL's, "/" when it has none). */
int http_request_url(const char *url, SSL_CTX *ssl_ctx, unsigned flags, const struct http_request *req,
                     struct http_response *ret, struct errmsg *e);
/* The same for a URL the caller parsed already. */
int http_request_to(const struct http_url *url, SSL_CTX *ssl_ctx, unsigned flags, const struct http_request *req,
                    struct http_response *ret, struct errmsg *e);

/* A client context for X.509-verified TLS (TLS 1.2 or later): trust
 * ca_file (NULL: the system store), present cert_file/key_file when both
 * are given (mutual TLS). */
int http_tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file, SSL_CTX **ret,
                     struct errmsg *e);
