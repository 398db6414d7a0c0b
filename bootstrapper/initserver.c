/* SPDX-License-Identifier: Apache-2.0 */
#include "initserver.h"

#include <errno.h>

#include "http-server.h"
#include "json-util.h"
#include "log.h"
#include "openssl-util.h"

struct init_server {
        struct atls_config *atls;
        SSL_CTX *ctx;
        struct http_server *http;
};

/* GET /v1/attestation: the evidence was checked in the handshake; the body
 * tells the verifier what it talked to. */
static void handle_attestation(struct evhttp_request *req, void *arg) {
        struct init_server *s = arg;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
                http_reply_error(req, 405, "use GET");
                return;
        }
        if (!o || json_add_string(o, "service", "init") < 0 ||
            json_add_string(o, "variant", attester_variant(s->atls->attester)) < 0 ||
            json_add_string(o, "state", "awaiting-init") < 0) {
                http_reply_error(req, 500, "out of memory");
                return;
        }
        http_reply_json(req, 200, o);
}

static void handle_unknown(struct evhttp_request *req, void *arg) {
        http_reply_error(req, 404, "no such endpoint: %s", evhttp_request_get_uri(req));
}

int init_server_new(struct event_base *base, struct atls_config *atls, const char *address, uint16_t port,
                    struct init_server **ret, struct errmsg *e) {
        struct init_server *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->atls = atls;
        r = atls_ctx_new(true, atls, &s->ctx, e);
        if (r < 0)
                goto fail;
        r = http_server_new(base, s->ctx, address, port, &s->http, e);
        if (r < 0)
                goto fail;
        r = http_server_route(s->http, "/v1/attestation", handle_attestation, s);
        if (r < 0)
                goto fail;
        http_server_default(s->http, handle_unknown, s);
        *ret = s;
        return 0;
fail:
        init_server_free(s);
        return r;
}

struct init_server *init_server_free(struct init_server *s) {
        if (!s)
                return NULL;
        http_server_free(s->http);
        SSL_CTX_free(s->ctx);
        free(s);
        return NULL;
}

uint16_t init_server_port(const struct init_server *s) {
        return http_server_port(s->http);
}
