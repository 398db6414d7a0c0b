/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 + JSON server over aTLS: libevent's evhttp with an OpenSSL
 * bufferevent per connection, single-threaded. Request sizes, header sizes
 * and idle time are bounded. */

#include <event2/event.h>
#include <event2/http.h>
#include <json.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"

#define HTTP_MAX_BODY (1024 * 1024)

struct http_server;

typedef void (*http_handler_t)(struct evhttp_request *req, void *userdata);

/* Listen on address:port (port 0 picks one; see http_server_port). */
int http_server_new(struct event_base *base, SSL_CTX *ctx, const char *address, uint16_t port,
                    struct http_server **ret, struct errmsg *e);
struct http_server *http_server_free(struct http_server *s);
uint16_t http_server_port(const struct http_server *s);
int http_server_route(struct http_server *s, const char *path, http_handler_t h, void *userdata);
/* Handler for paths without a route (default: 404 with a JSON error). */
void http_server_default(struct http_server *s, http_handler_t h, void *userdata);

/* The TLS connection a request came on (for the peer's attestation). */
SSL *http_request_ssl(struct evhttp_request *req);
/* Copy the request body (NUL-terminated), at most max bytes. */
int http_request_body(struct evhttp_request *req, size_t max, char **ret, size_t *ret_size);
/* Reply with a JSON document (takes no ownership). */
void http_reply_json(struct evhttp_request *req, int code, json_object *o);
/* Reply with an already serialized JSON document. */
void http_reply_raw_json(struct evhttp_request *req, int code, const char *json, size_t len);
/* The same, taking json (malloc'ed, NUL-terminated at json[len]): sent
 * from where it is, no copy, and wiped and freed (secret_free) once sent
 * or dropped. For large answers (a join service's peer lists) and answers
 * with secrets. */
void http_reply_raw_json_take(struct evhttp_request *req, int code, char *json, size_t len);
/* A JSON reply too large to hold whole per request in flight (a join
 * service's answers list every member), produced in pieces as the
 * connection drains. The body is `len` bytes of JSON and a newline, sent
 * with a Content-Length (not chunked): first head (head_len > 0 bytes,
 * malloc'ed, taken as by http_reply_raw_json_take: sent from where it is,
 * wiped and freed once sent or dropped), then what fill() writes, called
 * each time the connection has handed everything before to TLS, with at
 * most HTTP_STREAM_CHUNK bytes of room (less for the last piece); it
 * returns how many bytes it wrote (> 0), or < 0 if it cannot go on. A fill
 * that fails or writes more than the length leaves is a bug: the
 * connection is closed, the client never sees a short answer as whole.
 * release(userdata) is called once, in the loop's thread: after the last
 * fill, or when the connection went away first (the client closed or
 * timed out mid-answer, the server is freed), or at once if it had
 * already. */
#define HTTP_STREAM_CHUNK (8 * 1024)
typedef ssize_t (*http_fill_t)(void *userdata, char *buf, size_t size);
void http_reply_json_stream(struct evhttp_request *req, int code, char *head, size_t head_len, size_t len,
                            http_fill_t fill, void (*release)(void *userdata), void *userdata);
/* Reply {"error": message}. */
void http_reply_error(struct evhttp_request *req, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
