/* SPDX-License-Identifier: Apache-2.0 */
#include "joinclient.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "atls-http.h"
#include "json-util.h"
#include "log.h"
#include "messages.h"
#include "node.h"
#include "secret.h"

struct join_client {
        struct event_base *base;
        struct event *timer;
        struct node *node;
        join_done_t done;
        void *userdata;
        unsigned attempt;
        size_t next_endpoint;
        bool stopped;
};

unsigned join_backoff_ms(unsigned attempt) {
        uint32_t rnd = 0;
        unsigned d = JOIN_BACKOFF_FIRST_MS;

        for (unsigned i = 0; i < attempt && d < JOIN_BACKOFF_MAX_MS; i++)
                d *= 2;
        if (d > JOIN_BACKOFF_MAX_MS)
                d = JOIN_BACKOFF_MAX_MS;
        /* Full jitter over the upper half keeps retries apart without
         * ever waiting much less than intended. */
        (void) secret_random(&rnd, sizeof(rnd));
        return d / 2 + rnd % (d / 2 + 1);
}

static void schedule(struct join_client *c, unsigned ms) {
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        evtimer_add(c->timer, &tv);
}

static int try_endpoint(struct join_client *c, const char *endpoint, struct errmsg *e) {
        struct node *n = c->node;
        struct atls_config atls = { .attester = n->attester, .verifier = n->peer_verifier };
        struct join_request req = {};
        struct join_response resp = {};
        struct http_response http = {};
        _cleanup_free_ char *url = NULL, *body = NULL;
        int r;

        if (asprintf(&url, "https://%s/v1/join", endpoint) < 0)
                return -ENOMEM;
        r = node_disk_uuid(n, e);
        if (r < 0)
                return r;
        snprintf(req.role, sizeof(req.role), "%s", n->opt.role);
        snprintf(req.disk_uuid, sizeof(req.disk_uuid), "%s", n->disk_uuid);
        snprintf(req.node_name, sizeof(req.node_name), "%s", n->opt.node_name);
        snprintf(req.wg_public_key, sizeof(req.wg_public_key), "%s", n->wg_public);
        snprintf(req.endpoint, sizeof(req.endpoint), "%s", n->endpoint);
        r = join_request_serialize(&req, &body);
        if (r < 0)
                return r;
        /* The join service's evidence is verified in the handshake, before
         * this request (or anything else) is sent. */
        r = atls_http_request(&atls, url, "POST", body, strlen(body), 60000, &http, e);
        if (r < 0)
                return r;
        if (http.status != 200) {
                _cleanup_(json_object_putp) json_object *err = NULL;
                const char *msg = http.body;
                if (json_parse(http.body, http.body_size, &err, NULL) >= 0)
                        json_get_string(err, "error", &msg, NULL);
                r = errmsg_set(e, http.status == 403 ? EPERM : EPROTO, "join service answered HTTP %ld: %s",
                               http.status, msg);
                http_response_done(&http);
                return r;
        }
        r = join_response_parse(http.body, http.body_size, &resp, e);
        secret_wipe(http.body, http.body_size);
        http_response_done(&http);
        if (r < 0)
                return r;
        r = node_join(n, &resp, e);
        join_response_done(&resp);
        return r;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
        struct join_client *c = arg;
        struct node *n = c->node;
        const char *endpoint;
        struct errmsg e = {};
        unsigned delay;
        int r;

        if (c->stopped || n->committed)
                return;
        endpoint = n->opt.join_endpoints[c->next_endpoint];
        c->next_endpoint = (c->next_endpoint + 1) % n->opt.n_join_endpoints;
        r = try_endpoint(c, endpoint, &e);
        if (r >= 0) {
                log_info("Joined the cluster through %s as %s.", endpoint, n->opt.role);
                c->stopped = true;
                if (c->done)
                        c->done(c->userdata);
                return;
        }
        if (n->committed) /* initialized meanwhile */
                return;
        /* A full round over all endpoints counts as one attempt. */
        if (c->next_endpoint == 0)
                c->attempt++;
        delay = c->next_endpoint == 0 ? join_backoff_ms(c->attempt) : 0;
        log_warning("Join through %s failed: %s; next try in %u ms.", endpoint, errmsg_str(&e), delay);
        schedule(c, delay);
}

int join_client_new(struct event_base *base, struct node *node, join_done_t done, void *userdata,
                    struct join_client **ret, struct errmsg *e) {
        struct join_client *c;

        if (node->opt.n_join_endpoints == 0)
                return errmsg_set(e, EINVAL, "no join endpoints configured");
        if (!node->peer_verifier)
                return errmsg_set(e, EINVAL, "cannot verify join services: no platform CA configured");
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->base = base;
        c->node = node;
        c->done = done;
        c->userdata = userdata;
        c->timer = evtimer_new(base, on_timer, c);
        if (!c->timer) {
                free(c);
                return -ENOMEM;
        }
        schedule(c, 0);
        *ret = c;
        return 0;
}

void join_client_stop(struct join_client *c) {
        if (!c)
                return;
        c->stopped = true;
        evtimer_del(c->timer);
}

struct join_client *join_client_free(struct join_client *c) {
        if (!c)
                return NULL;
        event_free(c->timer);
        free(c);
        return NULL;
}
