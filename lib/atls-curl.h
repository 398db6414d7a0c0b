/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HTTP/1.1 + JSON over aTLS on the client side, through libcurl: the aTLS
 * configuration is applied to curl's SSL_CTX (CURLOPT_SSL_CTX_FUNCTION),
 * curl's own CA and host name checks are replaced by attestation, session
 * reuse is off, and a response is accepted only if this very request's
 * handshake verified the server. */

#include <curl/curl.h>
#include <stddef.h>

#include "atls.h"

#define ATLS_HTTP_MAX_RESPONSE (4 * 1024 * 1024)

struct http_response {
        long status;
        char *body; /* NUL-terminated */
        size_t body_size;
};

void http_response_done(struct http_response *r);

/* Apply aTLS to a curl handle (cfg must outlive the handle). */
int atls_curl_setup(CURL *curl, struct atls_config *cfg);

/* One request. method "GET" or "POST"; body may be NULL. timeout_ms 0 means
 * 30 s. A failed attestation gives -EPERM and the reason in e (also in
 * cfg->last_report). */
int atls_http_request(struct atls_config *cfg, const char *url, const char *method, const char *body,
                      size_t body_size, long timeout_ms, struct http_response *ret, struct errmsg *e);
