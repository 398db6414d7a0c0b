/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 + JSON over aTLS on the client side (http-client.h): a fresh
 * connection, SSL_CTX and attestation per request; a response is accepted
 * only if this very request's handshake verified the server (when cfg has
 * a verifier). Nothing of the request is written before the handshake,
 * and with it the verification of the server's evidence, succeeded.
 * Blocking (atls_http_request) or inside an event loop (atls_http_start). */

#include <event2/event.h>
#include <stddef.h>

#include "atls.h"
#include "http-client.h"

/* One request. method "GET" or "POST"; body may be NULL. timeout_ms 0
 * means 30 s; the answer's body is held to HTTP_CLIENT_DEFAULT_MAX_RESPONSE.
 * A failed attestation of the server gives -EPERM and the reason in e
 * (also in cfg->last_report); a failure to attest this side -EPROTO
 * naming it. */
int atls_http_request(struct atls_config *cfg, const char *url, const char *method, const char *body,
                      size_t body_size, long timeout_ms, struct http_response *ret, struct errmsg *e);

/* The same inside an event loop: done runs from base's loop with the
 * outcome atls_http_request would return (resp owned by the callback).
 * cfg must stay valid, and serve no other request, until then. */
struct atls_call;
typedef void (*atls_http_done_t)(int r, struct http_response *resp, const struct errmsg *e, void *userdata);
int atls_http_start(struct event_base *base, struct atls_config *cfg, const char *url, const char *method,
                    const char *body, size_t body_size, long timeout_ms, atls_http_done_t done, void *userdata,
                    struct atls_call **ret, struct errmsg *e);
/* Cancel (the callback is not called) or release a finished call. The
 * callback may free its call. */
struct atls_call *atls_call_free(struct atls_call *c);
