/* SPDX-License-Identifier: Apache-2.0 */
#include "atls-http.h"

#include <errno.h>
#include <string.h>

#include "macro.h"
#include "openssl-util.h"

struct atls_call {
        struct atls_config *cfg;
        SSL_CTX *ctx;
        struct http_client *client;
        unsigned before; /* cfg->n_verifications when the request started */
        atls_http_done_t done;
        void *userdata;
};

struct atls_call *atls_call_free(struct atls_call *c) {
        if (!c)
                return NULL;
        http_client_free(c->client);
        SSL_CTX_free(c->ctx);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct atls_call *, atls_call_free);

/* What the request's outcome means once attestation is taken into account. */
static int judge(struct atls_call *c, int r, struct errmsg *e) {
        struct atls_config *cfg = c->cfg;

        if (cfg->n_verifications > c->before && !cfg->last_verified)
                return errmsg_replace(e, EPERM, "%s", cfg->last_report.reason);
        if (r < 0) {
                if (cfg->attester && cfg->last_attest_error.text[0])
                        return errmsg_replace(e, EPROTO, "attesting this node failed: %s",
                                              cfg->last_attest_error.text);
                return r;
        }
        /* Belt and braces: never accept a response whose connection was
         * not attested in this very request. */
        if (cfg->verifier && (cfg->n_verifications == c->before || !cfg->last_verified))
                return errmsg_replace(e, EPERM, "connection was not attested");
        return 0;
}

static void call_done(int r, struct http_response *resp, const struct errmsg *he, void *userdata) {
        struct atls_call *c = userdata;
        struct errmsg e = *he;

        r = judge(c, r, &e);
        if (r < 0)
                http_response_done(resp);
        c->done(r, resp, &e, c->userdata);
}

static int call_new(struct event_base *base, struct atls_config *cfg, const struct http_url *url,
                    struct atls_call **ret, struct errmsg *e) {
        _cleanup_(atls_call_freep) struct atls_call *c = NULL;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->cfg = cfg;
        r = atls_ctx_new(false, cfg, &c->ctx, e);
        if (r < 0)
                return r;
        /* A fresh connection per request: attestation is per handshake. */
        r = http_client_new_url(base, url, c->ctx, 0, &c->client, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* The request and the call for one aTLS request (base NULL: blocking). */
static int call_prepare(struct event_base *base, struct atls_config *cfg, const char *url, const char *method,
                        const char *body, size_t body_size, long timeout_ms, struct http_request *ret_req,
                        char path[static sizeof(((struct http_url *) NULL)->path)], struct atls_call **ret,
                        struct errmsg *e) {
        struct http_url u;
        int r;

        r = http_url_parse(url, &u, e);
        if (r < 0)
                return r;
        if (!u.tls)
                return errmsg_set(e, EINVAL, "aTLS needs an https:// URL, not \"%.200s\"", url);
        memcpy(path, u.path[0] ? u.path : "/", strlen(u.path[0] ? u.path : "/") + 1);
        *ret_req = (struct http_request){
                .method = method,
                .path = path,
                .body = body,
                .body_size = body ? body_size : 0,
                .timeout_ms = timeout_ms,
                .max_response = HTTP_CLIENT_DEFAULT_MAX_RESPONSE,
        };
        r = call_new(base, cfg, &u, ret, e);
        if (r < 0)
                return r;
        (*ret)->before = cfg->n_verifications;
        cfg->last_attest_error = (struct errmsg){};
        /* A refusal is of this request's server, not an earlier one's. */
        cfg->peer_refusal = ATLS_REFUSAL_NONE;
        return 0;
}

int atls_http_start(struct event_base *base, struct atls_config *cfg, const char *url, const char *method,
                    const char *body, size_t body_size, long timeout_ms, atls_http_done_t done, void *userdata,
                    struct atls_call **ret, struct errmsg *e) {
        _cleanup_(atls_call_freep) struct atls_call *c = NULL;
        struct http_request req;
        char path[sizeof(((struct http_url *) NULL)->path)];
        int r;

        if (!base || !done)
                return -EINVAL;
        r = call_prepare(base, cfg, url, method, body, body_size, timeout_ms, &req, path, &c, e);
        if (r < 0)
                return r;
        c->done = done;
        c->userdata = userdata;
        r = http_client_start(c->client, &req, call_done, c, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int atls_http_request(struct atls_config *cfg, const char *url, const char *method, const char *body,
                      size_t body_size, long timeout_ms, struct http_response *ret, struct errmsg *e) {
        _cleanup_(atls_call_freep) struct atls_call *c = NULL;
        struct http_response resp = {};
        struct http_request req;
        struct errmsg he = {};
        char path[sizeof(((struct http_url *) NULL)->path)];
        int r;

        r = call_prepare(NULL, cfg, url, method, body, body_size, timeout_ms, &req, path, &c, e);
        if (r < 0)
                return r;
        r = http_client_run(c->client, &req, &resp, &he);
        r = judge(c, r, &he);
        if (r < 0) {
                http_response_done(&resp);
                if (e && !e->text[0])
                        *e = he;
                return r;
        }
        *ret = resp;
        return 0;
}
