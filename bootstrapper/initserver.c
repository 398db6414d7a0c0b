/* SPDX-License-Identifier: Apache-2.0 */
#include "initserver.h"

#include <errno.h>
#include <string.h>

#include "http-server.h"
#include "json-util.h"
#include "log.h"
#include "messages.h"
#include "node.h"
#include "secret.h"
#include "openssl-util.h"

struct init_server {
        struct atls_config *atls;
        struct node *node;
        init_done_t done;
        void *userdata;
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
            json_add_string(o, "state", s->node->committed ? "committed" : "awaiting-init") < 0) {
                http_reply_error(req, 500, "out of memory");
                return;
        }
        http_reply_json(req, 200, o);
}

/* POST /v1/init: the owner's secrets and settings. Accepted at most once. */
static void handle_init(struct evhttp_request *req, void *arg) {
        struct init_server *s = arg;
        struct init_request m = {};
        struct init_response resp = {};
        struct errmsg e = {};
        char *body = NULL, *out = NULL;
        size_t len;
        int r;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
                http_reply_error(req, 405, "use POST");
                return;
        }
        if (s->node->committed) {
                http_reply_error(req, 409, "this node is initialized or joined already; init is accepted once");
                return;
        }
        r = http_request_body(req, MSG_MAX_SIZE, &body, &len);
        if (r < 0) {
                http_reply_error(req, r == -EFBIG ? 413 : 500, "cannot read the request: %s", strerror(-r));
                return;
        }
        r = init_request_parse(body, len, &m, &e);
        secret_free(body, len);
        if (r < 0) {
                log_warning("Refused an init request: %s", errmsg_str(&e));
                http_reply_error(req, 400, "%s", errmsg_str(&e));
                return;
        }
        log_info("Initializing cluster \"%s\" (driver %s).", m.cluster_name, m.driver);
        r = node_init(s->node, &m, &resp, &e);
        init_request_done(&m);
        if (r < 0) {
                log_error_errno(r, "Init failed: %s", errmsg_str(&e));
                http_reply_error(req, r == -EALREADY ? 409 : r == -EPERM ? 403 : 500, "%s", errmsg_str(&e));
                return;
        }
        r = init_response_serialize(&resp, &out);
        init_response_done(&resp);
        if (r < 0) {
                http_reply_error(req, 500, "cannot encode the response");
                return;
        }
        http_reply_raw_json(req, 200, out, strlen(out));
        secret_free(out, strlen(out));
        log_info("Cluster initialized on this node.");
        if (s->done)
                s->done(s->userdata);
}

static void handle_unknown(struct evhttp_request *req, void *arg) {
        http_reply_error(req, 404, "no such endpoint: %s", evhttp_request_get_uri(req));
}

int init_server_new(struct event_base *base, struct atls_config *atls, struct node *node, const char *address,
                    uint16_t port, init_done_t done, void *userdata, struct init_server **ret, struct errmsg *e) {
        struct init_server *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->atls = atls;
        s->node = node;
        s->done = done;
        s->userdata = userdata;
        r = atls_ctx_new(true, atls, &s->ctx, e);
        if (r < 0)
                goto fail;
        r = http_server_new(base, s->ctx, address, port, &s->http, e);
        if (r < 0)
                goto fail;
        r = http_server_route(s->http, "/v1/attestation", handle_attestation, s);
        if (r >= 0)
                r = http_server_route(s->http, "/v1/init", handle_init, s);
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
