/* SPDX-License-Identifier: Apache-2.0 */
#include "joinservice.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "atls.h"
#include "attest.h"
#include "cpdriver.h"
#include "http-server.h"
#include "json-util.h"
#include "keys.h"
#include "log.h"
#include "messages.h"
#include "nodestate.h"
#include "openssl-util.h"
#include "platform.h"
#include "policy.h"
#include "registry.h"
#include "secret.h"
#include "tpm.h"

struct join_service {
        struct join_service_options opt;
        struct node_state state;
        struct master_state master;
        char *policy_text;
        size_t policy_size;
        const struct cp_driver *driver;
        struct tpm_ctx *tpm;
        struct attester *attester;
        struct verifier *verifier;
        struct atls_config atls;
        SSL_CTX *ctx;
        struct http_server *http;
        struct registry *registry;
};

static void on_atls_failure(const char *what, const char *reason, void *userdata) {
        log_warning("Refused a peer (%s): %s", what, reason);
}

/* Joiners: the owner's policy, and PCR 15 zero (not in any cluster yet). */
static int make_verifier(struct join_service *s, struct errmsg *e) {
        _cleanup_(X509_STORE_freep) X509_STORE *roots = NULL;
        struct policy p;
        int r;

        r = policy_parse(s->policy_text, s->policy_size, &p, e);
        if (r < 0)
                return r;
        p.pcr[NODE_LOCK_PCR] = (struct policy_pcr){ .set = true };
        if (s->opt.platform_ca) {
                r = platform_roots_load(s->opt.platform_ca, &roots, e);
                if (r < 0)
                        return r;
        }
        return verifier_new(s->opt.variant, &p, roots, &s->verifier, e);
}

static bool peer_ok(struct evhttp_request *req) {
        SSL *ssl = http_request_ssl(req);
        return ssl && atls_peer_verified(ssl);
}

static void self_node(const struct join_service *s, struct cp_node *ret) {
        *ret = (struct cp_node){
                .name = s->state.node_name,
                .address = s->opt.underlay,
                .state_dir = s->opt.state_dir,
                .kubernetes_dir = s->opt.kubernetes_dir,
                .cluster_name = s->state.cluster_name,
        };
}

/* The underlay host of "host:port" / "[v6]:port". */
static int endpoint_host(const char *endpoint, char *buf, size_t size) {
        const char *end;

        if (endpoint[0] == '[') {
                end = strchr(endpoint, ']');
                endpoint++;
        } else
                end = strrchr(endpoint, ':');
        if (!end || (size_t) (end - endpoint) >= size)
                return -EINVAL;
        memcpy(buf, endpoint, (size_t) (end - endpoint));
        buf[end - endpoint] = 0;
        return 0;
}

/* POST from an attested peer: its body, or an error reply sent (< 0). */
static int accept_request(struct evhttp_request *req, char **ret, size_t *ret_size) {
        int r;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
                http_reply_error(req, 405, "use POST");
                return -EINVAL;
        }
        if (!peer_ok(req)) {
                http_reply_error(req, 403, "the peer is not attested");
                return -EPERM;
        }
        r = http_request_body(req, MSG_MAX_SIZE, ret, ret_size);
        if (r < 0)
                http_reply_error(req, r == -EFBIG ? 413 : 500, "cannot read the request: %s", strerror(-r));
        return r;
}

static int http_status(int r) {
        switch (r) {
        case -EEXIST:
        case -EADDRINUSE:
                return 409;
        case -ENOENT:
                return 404;
        case -ENOSPC:
                return 507;
        case -EPERM:
                return 403;
        default:
                return 500;
        }
}

static int fill_peers(struct join_service *s, struct join_response *m, const char *self, struct errmsg *e) {
        _cleanup_free_ struct registry_member *members = NULL;
        size_t n = 0;
        int r;

        r = registry_list_members(s->registry, &members, &n, e);
        if (r < 0)
                return r;
        m->peers = calloc(n + 1, sizeof(*m->peers));
        if (!m->peers)
                return -ENOMEM;
        for (size_t i = 0; i < n && m->n_peers < MSG_MAX_PEERS; i++) {
                struct mesh_peer *p = &m->peers[m->n_peers];
                if (streq(members[i].name, self))
                        continue;
                snprintf(p->name, sizeof(p->name), "%s", members[i].name);
                snprintf(p->role, sizeof(p->role), "%s", members[i].role);
                snprintf(p->wg_public_key, sizeof(p->wg_public_key), "%s", members[i].wg_public_key);
                snprintf(p->endpoint, sizeof(p->endpoint), "%s", members[i].endpoint);
                snprintf(p->mesh_address, sizeof(p->mesh_address), "%s", members[i].mesh_address);
                m->n_peers++;
        }
        return 0;
}

static int do_join(struct join_service *s, const struct join_request *req, struct join_response *m, struct errmsg *e) {
        struct registry_member member = {};
        struct cp_node self;
        enum cp_role role;
        char host[ADDRESS_MAX];
        int r;

        r = cp_role_from_string(req->role, &role);
        if (r < 0)
                return errmsg_set(e, EINVAL, "invalid role");
        r = endpoint_host(req->endpoint, host, sizeof(host));
        if (r < 0 || !valid_address(host))
                return errmsg_set(e, EINVAL, "endpoint \"%s\" must name an IP address", req->endpoint);

        r = registry_allocate_address(s->registry, req->node_name, s->state.mesh_cidr, m->mesh_address, e);
        if (r < 0)
                return r;
        r = registry_put_disk(s->registry, req->disk_uuid, req->node_name, e);
        if (r < 0)
                return r;

        r = key_disk(s->master.master_secret, s->master.master_salt, req->disk_uuid, m->disk_key);
        if (r >= 0)
                r = key_measurement_secret(s->master.master_secret, s->master.master_salt, m->measurement_secret);
        if (r < 0)
                return errmsg_set(e, r, "key derivation failed");
        memcpy(m->measurement_salt, s->state.measurement_salt, KEY_SIZE);
        memcpy(m->cluster_id, s->state.cluster_id, KEY_SIZE);
        snprintf(m->cluster_name, sizeof(m->cluster_name), "%s", s->state.cluster_name);
        snprintf(m->driver, sizeof(m->driver), "%s", s->state.driver);
        snprintf(m->mesh_cidr, sizeof(m->mesh_cidr), "%s", s->state.mesh_cidr);
        if (role == CP_ROLE_CONTROL_PLANE) {
                /* Only control-plane nodes hold the master secret. */
                m->has_master = true;
                memcpy(m->master_secret, s->master.master_secret, KEY_SIZE);
                memcpy(m->master_salt, s->master.master_salt, KEY_SIZE);
                m->policy = strndup(s->policy_text, s->policy_size);
                if (!m->policy)
                        return -ENOMEM;
                m->policy_size = s->policy_size;
        }

        snprintf(member.name, sizeof(member.name), "%s", req->node_name);
        snprintf(member.role, sizeof(member.role), "%s", req->role);
        snprintf(member.mesh_address, sizeof(member.mesh_address), "%s", m->mesh_address);
        snprintf(member.wg_public_key, sizeof(member.wg_public_key), "%s", req->wg_public_key);
        snprintf(member.endpoint, sizeof(member.endpoint), "%s", req->endpoint);
        for (size_t i = 0; i < sizeof(member.disk_uuid) - 1; i++)
                member.disk_uuid[i] = (char) tolower((unsigned char) req->disk_uuid[i]);
        member.join_time = member.last_seen = (int64_t) time(NULL);
        r = registry_put_member(s->registry, &member, e);
        if (r < 0)
                return r;
        r = fill_peers(s, m, req->node_name, e);
        if (r < 0)
                return r;

        /* Last, because for etcd it adds the joiner as a cluster member:
         * until the joiner's server runs, the registry (in that cluster)
         * must not be needed any more by this request. */
        self_node(s, &self);
        /* The control plane uses the underlay until the mesh carries it. */
        return cp_join_params(s->driver, &self, req->node_name, host, role, &m->cp_params, e);
}

static void handle_join(struct evhttp_request *req, void *arg) {
        struct join_service *s = arg;
        struct join_request m = {};
        struct join_response resp = {};
        struct errmsg e = {};
        char *body = NULL, *out = NULL;
        size_t len;
        int r;

        if (accept_request(req, &body, &len) < 0)
                return;
        r = join_request_parse(body, len, &m, &e);
        free(body);
        if (r < 0) {
                log_warning("Refused a join request: %s", errmsg_str(&e));
                http_reply_error(req, 400, "%s", errmsg_str(&e));
                return;
        }
        r = do_join(s, &m, &resp, &e);
        if (r < 0) {
                log_error_errno(r, "Join of %s failed: %s", m.node_name, errmsg_str(&e));
                http_reply_error(req, http_status(r), "%s", errmsg_str(&e));
                join_response_done(&resp);
                return;
        }
        r = join_response_serialize(&resp, &out);
        join_response_done(&resp);
        if (r < 0) {
                http_reply_error(req, 500, "cannot encode the response");
                return;
        }
        http_reply_raw_json(req, 200, out, strlen(out));
        secret_free(out, strlen(out));
        log_info("Node %s joined as %s.", m.node_name, m.role);
}

static void handle_rejoin(struct evhttp_request *req, void *arg) {
        struct join_service *s = arg;
        struct rejoin_request m = {};
        struct rejoin_response resp = {};
        struct errmsg e = {};
        char owner[NODE_NAME_MAX + 1];
        char *body = NULL, *out = NULL;
        size_t len;
        int r;

        if (accept_request(req, &body, &len) < 0)
                return;
        r = rejoin_request_parse(body, len, &m, &e);
        free(body);
        if (r < 0) {
                http_reply_error(req, 400, "%s", errmsg_str(&e));
                return;
        }
        /* Only disks that joined this cluster get a key: a UUID of another
         * cluster's disk is unknown here. */
        r = registry_get_disk(s->registry, m.disk_uuid, owner, &e);
        if (r == -ENOENT) {
                log_warning("Refused rejoin of unknown disk %s.", m.disk_uuid);
                http_reply_error(req, 404, "unknown disk %s: it never joined this cluster", m.disk_uuid);
                return;
        }
        if (r < 0) {
                http_reply_error(req, 500, "registry: %s", errmsg_str(&e));
                return;
        }
        r = key_disk(s->master.master_secret, s->master.master_salt, m.disk_uuid, resp.disk_key);
        if (r >= 0)
                r = rejoin_response_serialize(&resp, &out);
        rejoin_response_done(&resp);
        if (r < 0) {
                http_reply_error(req, 500, "cannot derive the disk key");
                return;
        }
        http_reply_raw_json(req, 200, out, strlen(out));
        secret_free(out, strlen(out));
        log_info("Disk %s of node %s rejoined.", m.disk_uuid, owner);
}

static void handle_unknown(struct evhttp_request *req, void *arg) {
        http_reply_error(req, 404, "no such endpoint: %s", evhttp_request_get_uri(req));
}

int join_service_new(struct event_base *base, const struct join_service_options *opt, struct join_service **ret,
                     struct errmsg *e) {
        struct join_service *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->opt = *opt;
        r = nodestate_read(opt->state_dir, &s->state, e);
        if (r == -ENOENT)
                r = errmsg_set(e, r, "%s holds no node state: the node is neither initialized nor joined",
                               opt->state_dir);
        if (r < 0)
                goto fail;
        if (!streq(s->state.role, "control-plane")) {
                r = errmsg_set(e, EINVAL, "this node is a %s; join services run on control-plane nodes", s->state.role);
                goto fail;
        }
        if ((r = master_read(opt->state_dir, &s->master, e)) < 0 ||
            (r = policy_file_read(opt->state_dir, &s->policy_text, &s->policy_size, e)) < 0)
                goto fail;
        s->driver = cp_driver_by_name(s->state.driver);
        if (!s->driver) {
                r = errmsg_set(e, EINVAL, "unknown control-plane driver \"%s\"", s->state.driver);
                goto fail;
        }
        if ((r = nodestate_registry_open(&s->state, opt->kubernetes_dir, &s->registry, e)) < 0 ||
            (r = tpm_open(opt->tcti, &s->tpm, e)) < 0 ||
            (r = attester_new(opt->variant, s->tpm, opt->ak_handle, &s->attester, e)) < 0 ||
            (r = make_verifier(s, e)) < 0)
                goto fail;
        s->atls = (struct atls_config){ .attester = s->attester, .verifier = s->verifier,
                                        .on_failure = on_atls_failure };
        if ((r = atls_ctx_new(true, &s->atls, &s->ctx, e)) < 0 ||
            (r = http_server_new(base, s->ctx, opt->listen, opt->port, &s->http, e)) < 0)
                goto fail;
        if ((r = http_server_route(s->http, "/v1/join", handle_join, s)) < 0 ||
            (r = http_server_route(s->http, "/v1/rejoin", handle_rejoin, s)) < 0)
                goto fail;
        http_server_default(s->http, handle_unknown, s);
        *ret = s;
        return 0;
fail:
        join_service_free(s);
        return r;
}

struct join_service *join_service_free(struct join_service *s) {
        if (!s)
                return NULL;
        http_server_free(s->http);
        SSL_CTX_free(s->ctx);
        registry_free(s->registry);
        verifier_free(s->verifier);
        attester_free(s->attester);
        tpm_free(s->tpm);
        free(s->policy_text);
        secret_wipe(&s->master, sizeof(s->master));
        free(s);
        return NULL;
}

uint16_t join_service_port(const struct join_service *s) {
        return http_server_port(s->http);
}
