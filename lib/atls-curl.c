/* SPDX-License-Identifier: Apache-2.0 */
#include "atls-curl.h"

#include <errno.h>
#include <string.h>

#include "curl-util.h"
#include "macro.h"


void http_response_done(struct http_response *r) {
        if (!r)
                return;
        free(r->body);
        *r = (struct http_response){};
}

static CURLcode ssl_ctx_cb(CURL *curl, void *sslctx, void *arg) {
        struct atls_config *cfg = arg;
        return atls_ctx_configure(sslctx, false, cfg, NULL) < 0 ? CURLE_SSL_CERTPROBLEM : CURLE_OK;
}

int atls_curl_setup(CURL *curl, struct atls_config *cfg) {
        /* VERIFYPEER stays on so that OpenSSL treats a failed attestation
         * (our certificate verification callback) as fatal; the host name
         * means nothing for a per-connection self-signed certificate. */
        if (curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, cfg) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_SSL_SESSIONID_CACHE, 0L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long) (CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3)) !=
                    CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK ||
            curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK)
                return -EOPNOTSUPP;
        /* No CA store: attestation replaces it, and loading the system
         * bundle costs ~25 ms of CPU per connection with OpenSSL 3. */
        (void) curl_easy_setopt(curl, CURLOPT_CAINFO, NULL);
        (void) curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
        return 0;
}


int atls_http_request(struct atls_config *cfg, const char *url, const char *method, const char *body,
                      size_t body_size, long timeout_ms, struct http_response *ret, struct errmsg *e) {
        CURL *curl = NULL;
        struct curl_slist *hdrs = NULL;
        struct curl_body b = { .max = ATLS_HTTP_MAX_RESPONSE };
        char errbuf[CURL_ERROR_SIZE] = "";
        unsigned before = cfg->n_verifications;
        long status = 0;
        CURLcode cc;
        int r;

        curl = curl_easy_init();
        if (!curl)
                return -ENOMEM;
        r = atls_curl_setup(curl, cfg);
        if (r < 0)
                goto out;
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Accept: application/json");
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curl_body_write);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 30000L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        if (streq(method, "POST")) {
                curl_easy_setopt(curl, CURLOPT_POST, 1L);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (body ? body_size : 0));
        } else if (!streq(method, "GET")) {
                r = -EINVAL;
                goto out;
        }

        cc = curl_easy_perform(curl);
        if (cfg->n_verifications > before && !cfg->last_verified) {
                r = errmsg_set(e, EPERM, "%s", cfg->last_report.reason);
                goto out;
        }
        if (cc != CURLE_OK) {
                r = errmsg_set(e, cc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT :
                                  cc == CURLE_COULDNT_CONNECT ? ECONNREFUSED : EPROTO,
                               "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
                if (b.too_large)
                        r = errmsg_replace(e, EFBIG, "response exceeds %u bytes", ATLS_HTTP_MAX_RESPONSE);
                goto out;
        }
        /* Belt and braces: never accept a response whose connection was
         * not attested in this very request. */
        if (cfg->verifier && (cfg->n_verifications == before || !cfg->last_verified)) {
                r = errmsg_set(e, EPERM, "connection was not attested");
                goto out;
        }
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        ret->status = status;
        ret->body = b.data ? b.data : strdup("");
        ret->body_size = b.size;
        b.data = NULL;
        r = ret->body ? 0 : -ENOMEM;
out:
        free(b.data);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(curl);
        return r;
}
