/* SPDX-License-Identifier: Apache-2.0 */
#include "joinservice.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atls.h"
#include "attest.h"
#include "attest-remote.h"
#include "cpdriver.h"
#include "encoding.h"
#include "http-server.h"
#include "json-util.h"
#include "keys.h"
#include "log.h"
#include "mesh-notify.h"
#include "messages.h"
#include "nodestate.h"
#include "openssl-util.h"
#include "platform.h"
#include "policy.h"
#include "registry.h"
#include "secret.h"
#include "tpm.h"
#include "workpool.h"

/* Every peer list fits a message: the registry holds at most one more
 * member than a list may name. */
_Static_assert(REGISTRY_MAX_MEMBERS <= MSG_MAX_PEERS + 1, "a full registry's peer list must fit a message");
_Static_assert(REGISTRY_AK_NAME_HEX == 2 * ATTEST_AK_NAME_SIZE, "AK name size");

/* New members are admitted up to this many: the margin below the
 * registry's hard bound covers joins that several join services admit at
 * the same moment, so that reading the members never fails. */
#define ADMIT_MAX_MEMBERS (REGISTRY_MAX_MEMBERS - 64)

/* A refresh that loses its conditional write to a concurrent one (the same
 * node through another join service) reads the record again. */
#define REFRESH_ROUNDS 4

struct join_service {
        struct join_service_options opt;
        struct node_state state;
        struct master_state master;
        char *policy_text;
        size_t policy_size;
        /* PCR 15 of a node that took this cluster's node lock. */
        uint8_t lock_pcr[32];
        const struct cp_driver *driver;
        /* The drivers' join parameters one at a time: a control-plane join
         * adds an etcd member, and the check for joins under way must see
         * the previous one. */
        pthread_mutex_t driver_lock;
        struct tpm_ctx *tpm;
        struct attester *attester;
        struct verifier *verifier;
        struct atls_config atls;
        SSL_CTX *ctx;
        struct http_server *http;
        /* One registry handle per worker: handles are for one thread. */
        struct registry *registries[WORK_POOL_MAX_WORKERS];
        struct registry_cache *cache; /* their member list */
        struct work_pool *pool;
        struct event *sweep_timer;
        bool sweeping;
        int bell_fd; /* rings members when the membership changed (mesh-notify.h) */
};

enum job_kind {
        JOB_JOIN,
        JOB_REJOIN,
        JOB_MESH,
        JOB_EVICT, /* a genuine member whose measurements drifted */
        JOB_SWEEP, /* expire members that stopped refreshing */
};

/* An answer's peers: the members of a view but the node asking, written
 * out of the view as the connection drains (http_reply_json_stream), not
 * copied per request. The answer holds the view (the records are
 * immutable) until it was sent or the connection went away. */
struct answer {
        struct registry_members *view;
        size_t skip; /* the asker's index in view; view->n if not a member */
        struct peer_list peers;
        size_t next; /* peers_write's cursor */
};

struct job {
        struct work_item item; /* first: the pool hands back this pointer */
        enum job_kind kind;
        struct evhttp_request *req; /* NULL for JOB_EVICT, JOB_SWEEP */
        char ak_name[REGISTRY_AK_NAME_HEX + 1];
        union {
                struct join_request join;
                struct rejoin_request rejoin;
                struct mesh_request mesh;
        } in;
        char reason[512]; /* JOB_EVICT: the failed check */
        bool ring;        /* JOB_MESH: the membership changed, members rung */
        size_t rung;      /* how many doorbells left */
        /* Result: status 200 and body (may hold secrets), or an error.
         * Join and mesh answers: body is the head (body_len of len bytes)
         * and the rest comes from `answer` as the connection drains. */
        int status;
        char *body;
        size_t body_len, len;
        struct answer *answer;
        struct errmsg e;
        /* What to log in the loop thread (workers do not log). */
        int log_level;
        char log[768];
};

_printf_(3, 4) static void job_log(struct job *j, int level, const char *fmt, ...) {
        va_list ap;

        j->log_level = level;
        va_start(ap, fmt);
        vsnprintf(j->log, sizeof(j->log), fmt, ap);
        va_end(ap);
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
        case -EINVAL:
                return 400;
        case -EBUSY: /* another control-plane join under way: retry later */
                return 503;
        default:
                return 500;
        }
}

/* --- attestation of peers --------------------------------------------------------- */

/* A genuine node (AK chain, signature, nonce and PCR digest verified) whose
 * PCRs do not satisfy the policy: if it is a member, it is removed at
 * once. Evidence that fails any earlier check identifies nobody. */
static void evict_if_member(struct join_service *s, const struct verify_report *rep, const char *why) {
        struct job *j;

        if (!rep->have_pcrs)
                return;
        j = calloc(1, sizeof(*j));
        if (!j) {
                log_oom();
                return;
        }
        j->kind = JOB_EVICT;
        j->status = 500;
        hex_encode_buf(rep->ak_name, ATTEST_AK_NAME_SIZE, j->ak_name);
        snprintf(j->reason, sizeof(j->reason), "%s", why);
        work_pool_submit(s->pool, &j->item);
}

static void on_atls_failure(const char *what, const char *reason, void *userdata) {
        struct join_service *s = userdata;

        log_warning("Refused a peer (%s): %s", what, reason);
        /* The verify callback filled last_report just before telling us. */
        if (!s->atls.last_verified && s->atls.last_report.failed == VERIFY_POLICY)
                evict_if_member(s, &s->atls.last_report, reason);
}

/* The owner's policy for PCRs 0-14 (and whatever else it names) in the
 * handshake; PCR 15 is checked per endpoint (join, rejoin: zero; mesh:
 * this cluster's node lock), after the handshake and before the request
 * is read. */
static int make_verifier(struct join_service *s, struct errmsg *e) {
        _cleanup_(X509_STORE_freep) X509_STORE *roots = NULL;
        struct policy p;
        int r;

        r = policy_parse(s->policy_text, s->policy_size, &p, e);
        if (r < 0)
                return r;
        p.pcr[NODE_LOCK_PCR] = (struct policy_pcr){};
        if (s->opt.platform_ca) {
                r = platform_roots_load(s->opt.platform_ca, &roots, e);
                if (r < 0)
                        return r;
        }
        return verifier_new(s->opt.variant, &p, roots, &s->verifier, e);
}

static const struct verify_report *peer_report(struct evhttp_request *req) {
        SSL *ssl = http_request_ssl(req);

        if (!ssl || !atls_peer_verified(ssl))
                return NULL;
        return atls_peer_report(ssl);
}

static void self_node(const struct join_service *s, struct cp_node *ret) {
        *ret = (struct cp_node){
                .name = s->state.node_name,
                .address = s->opt.control_plane_on_mesh ? s->state.mesh_address : s->opt.underlay,
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

static int check_endpoint(const char *endpoint, char host[static ADDRESS_MAX], struct errmsg *e) {
        if (endpoint_host(endpoint, host, ADDRESS_MAX) < 0 || !valid_address(host))
                return errmsg_set(e, EINVAL, "endpoint \"%s\" must name an IP address", endpoint);
        return 0;
}

enum lock_state {
        LOCK_FREE,   /* PCR 15 zero: not in any cluster */
        LOCK_OURS,   /* this cluster's node lock */
        LOCK_OTHER,  /* anything else */
};

static enum lock_state peer_lock(const struct join_service *s, const struct verify_report *rep) {
        static const uint8_t zero[32];

        if (CRYPTO_memcmp(rep->pcrs[NODE_LOCK_PCR], zero, 32) == 0)
                return LOCK_FREE;
        if (CRYPTO_memcmp(rep->pcrs[NODE_LOCK_PCR], s->lock_pcr, 32) == 0)
                return LOCK_OURS;
        return LOCK_OTHER;
}

/* POST from an attested peer whose PCR 15 is `want`: its body, or an error
 * reply sent (< 0). A member (its AK known to the registry) that reports
 * neither zero nor this cluster's lock in PCR 15 has drifted. */
static int accept_request(struct join_service *s, struct evhttp_request *req, enum lock_state want,
                          const struct verify_report **ret_rep, char **ret, size_t *ret_size) {
        const struct verify_report *rep;
        enum lock_state lock;
        char want_hex[65], got_hex[65];
        int r;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
                http_reply_error(req, 405, "use POST");
                return -EINVAL;
        }
        rep = peer_report(req);
        if (!rep || !rep->have_pcrs) {
                http_reply_error(req, 403, "the peer is not attested");
                return -EPERM;
        }
        lock = peer_lock(s, rep);
        if (lock != want) {
                static const uint8_t zero[32];

                hex_encode_buf(want == LOCK_FREE ? zero : s->lock_pcr, 32, want_hex);
                hex_encode_buf(rep->pcrs[NODE_LOCK_PCR], 32, got_hex);
                log_warning("Refused %s: PCR %d: expected %s, actual %s", evhttp_request_get_uri(req),
                            NODE_LOCK_PCR, want_hex, got_hex);
                http_reply_error(req, 403, "PCR %d: expected %s, actual %s (%s)", NODE_LOCK_PCR, want_hex,
                                 got_hex,
                                 want == LOCK_FREE ? "this node took a node lock already"
                                 : lock == LOCK_FREE ? "this node has not taken its node lock"
                                                     : "this node is locked to another cluster");
                if (lock == LOCK_OTHER) {
                        char why[200];
                        snprintf(why, sizeof(why), "PCR %d: expected %s, actual %s", NODE_LOCK_PCR,
                                 want == LOCK_OURS ? want_hex : "this cluster's node lock", got_hex);
                        evict_if_member(s, rep, why);
                }
                return -EPERM;
        }
        r = http_request_body(req, MSG_MAX_SIZE, ret, ret_size);
        if (r < 0) {
                http_reply_error(req, r == -EFBIG ? 413 : 500, "cannot read the request: %s", strerror(-r));
                return r;
        }
        *ret_rep = rep;
        return 0;
}

static struct job *job_new(enum job_kind kind, struct evhttp_request *req, const struct verify_report *rep) {
        struct job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->kind = kind;
        j->req = req;
        /* Until a worker has run it (a pool shutting down hands it back as is). */
        j->status = 503;
        errmsg_set(&j->e, ESHUTDOWN, "the join service is shutting down");
        if (rep)
                hex_encode_buf(rep->ak_name, ATTEST_AK_NAME_SIZE, j->ak_name);
        return j;
}

/* --- peers ------------------------------------------------------------------------- */

static struct answer *answer_free(struct answer *a) {
        if (!a)
                return NULL;
        registry_members_unref(a->view);
        free(a);
        return NULL;
}

static void answer_release(void *userdata) {
        answer_free(userdata);
}

static struct mesh_peer_ref answer_peer_at(const void *data, size_t i) {
        const struct answer *a = data;
        const struct registry_member *m = a->view->m[i < a->skip ? i : i + 1];

        return (struct mesh_peer_ref){ m->name, m->role, m->wg_public_key, m->endpoint, m->mesh_address };
}

static ssize_t answer_fill(void *userdata, char *buf, size_t size) {
        struct answer *a = userdata;

        return peers_write(&a->peers, &a->next, buf, size);
}

/* The peers of `self`: every member of *view but itself. The answer takes
 * the view. */
static int make_answer(struct registry_members **view, const char *self, struct answer **ret, struct errmsg *e) {
        const struct registry_members *v = *view;
        struct answer *a;
        size_t skip = v->n;

        for (size_t i = 0; i < v->n && skip == v->n; i++)
                if (streq(v->m[i]->name, self))
                        skip = i;
        if (v->n - (skip < v->n) > MSG_MAX_PEERS)
                return errmsg_set(e, ENOSPC, "the registry holds more than %u peers of '%s'", MSG_MAX_PEERS, self);
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->view = TAKE_PTR(*view);
        a->skip = skip;
        a->peers = (struct peer_list){ .n = v->n - (skip < v->n), .at = answer_peer_at, .data = a };
        *ret = a;
        return 0;
}

/* Every member's agent refuses a peer list that names a key twice
 * (docs/MESH.md): a join or refresh that would make one is refused with
 * the name of the member holding the key (not `self`). The registry's
 * transactions refuse it too (wgkeys/, registry.h), also when two joins
 * race past this check; this one answers before any key is derived. */
static int check_wg_key_free(const struct registry_members *v, const char *self, const char *key,
                             struct errmsg *e) {
        for (size_t i = 0; i < v->n; i++)
                if (!streq(v->m[i]->name, self) && streq(v->m[i]->wg_public_key, key))
                        return errmsg_set(e, EEXIST, "WireGuard public key %s is member '%s''s already", key,
                                          v->m[i]->name);
        return 0;
}

/* The membership changed: ring every member but `except` (NULL: all), so
 * that they refresh now rather than at their next interval. */
static size_t ring_members(const struct join_service *s, const struct registry_members *v, const char *except) {
        _cleanup_free_ const char **to = NULL;
        size_t k = 0;

        if (s->bell_fd < 0 || v->n == 0 || !(to = calloc(v->n, sizeof(*to))))
                return 0;
        for (size_t i = 0; i < v->n; i++)
                if (!except || !streq(v->m[i]->name, except))
                        to[k++] = v->m[i]->mesh_address;
        return mesh_notify_send(s->bell_fd, to, k);
}

/* --- join ------------------------------------------------------------------------- */

/* The answer: m and its peers (*answer, which the caller frees, also on
 * failure). */
static int do_join(struct join_service *s, struct registry *reg, const struct join_request *req,
                   const char *ak_name, struct answer **answer, struct join_response *m, struct errmsg *e) {
        _cleanup_registry_members_ struct registry_members *view = NULL;
        const struct registry_members *v;
        struct registry_member member = {};
        struct cp_node self;
        enum cp_role role;
        char host[ADDRESS_MAX];
        int r;

        r = cp_role_from_string(req->role, &role);
        if (r < 0)
                return errmsg_set(e, EINVAL, "invalid role");
        r = check_endpoint(req->endpoint, host, e);
        if (r < 0)
                return r;

        /* The peers as they are before this join: the answer names them,
         * and a new member is admitted only while the registry has room. */
        r = registry_members_get(reg, &view, e);
        if (r < 0)
                return r;
        v = view;
        if (v->n >= ADMIT_MAX_MEMBERS && !registry_members_find(v, req->node_name))
                return errmsg_set(e, ENOSPC, "the cluster has the maximum of %u members", ADMIT_MAX_MEMBERS);
        r = check_wg_key_free(v, req->node_name, req->wg_public_key, e);
        if (r < 0)
                return r;
        r = make_answer(&view, req->node_name, answer, e);
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
        snprintf(member.wg_public_key, sizeof(member.wg_public_key), "%s", req->wg_public_key);
        snprintf(member.endpoint, sizeof(member.endpoint), "%s", req->endpoint);
        for (size_t i = 0; i < sizeof(member.disk_uuid) - 1; i++)
                member.disk_uuid[i] = (char) tolower((unsigned char) req->disk_uuid[i]);
        snprintf(member.ak_name, sizeof(member.ak_name), "%s", ak_name);
        member.join_time = member.last_seen = (int64_t) time(NULL);
        /* Address, disk and record in one transaction. */
        r = registry_join(reg, &member, s->state.mesh_cidr, e);
        if (r < 0)
                return r;
        snprintf(m->mesh_address, sizeof(m->mesh_address), "%s", member.mesh_address);

        /* Last, because for etcd it adds the joiner as a cluster member:
         * until the joiner's server runs, the registry (in that cluster)
         * must not be needed any more by this request. */
        self_node(s, &self);
        /* The joiner's control plane runs where ours does: on its mesh
         * address (it brings arca0 up before it joins the control plane),
         * or without a mesh on its underlay address. */
        pthread_mutex_lock(&s->driver_lock);
        r = cp_join_params(s->driver, &self, req->node_name,
                           s->opt.control_plane_on_mesh ? member.mesh_address : host, role, &m->cp_params, e);
        pthread_mutex_unlock(&s->driver_lock);
        /* The members are rung at the joiner's first refresh, once its
         * arca0 is up (do_mesh), not now: a member's handshake to a node
         * that does not listen yet would be retried only after 5 s. */
        return r;
}

static void run_join(struct join_service *s, struct registry *reg, struct job *j) {
        struct join_response resp = {};
        int r;

        j->e = (struct errmsg){};
        r = do_join(s, reg, &j->in.join, j->ak_name, &j->answer, &resp, &j->e);
        if (r >= 0)
                r = join_response_serialize_head(&resp, &j->answer->peers, &j->body, &j->body_len, &j->len);
        join_response_done(&resp);
        if (r < 0) {
                j->answer = answer_free(j->answer);
                j->status = http_status(r);
                if (!j->e.text[0])
                        errmsg_set(&j->e, r, "cannot encode the response");
                job_log(j, LOG_ERR, "Join of %s failed: %s", j->in.join.node_name, errmsg_str(&j->e));
                return;
        }
        j->status = 200;
        job_log(j, LOG_INFO, "Node %s joined as %s.", j->in.join.node_name, j->in.join.role);
}

/* --- rejoin ------------------------------------------------------------------------ */

static void run_rejoin(struct join_service *s, struct registry *reg, struct job *j) {
        struct rejoin_response resp = {};
        char owner[NODE_NAME_MAX + 1];
        const char *uuid = j->in.rejoin.disk_uuid;
        int r;

        j->e = (struct errmsg){};
        /* Only disks that joined this cluster get a key: a UUID of another
         * cluster's disk is unknown here. */
        r = registry_get_disk(reg, uuid, owner, &j->e);
        if (r == -ENOENT) {
                j->status = 404;
                errmsg_replace(&j->e, ENOENT, "unknown disk %s: it never joined this cluster", uuid);
                job_log(j, LOG_WARNING, "Refused rejoin of unknown disk %s.", uuid);
                return;
        }
        if (r < 0) {
                j->status = 500;
                errmsg_prefix(&j->e, "registry");
                job_log(j, LOG_ERR, "Rejoin of disk %s failed: %s", uuid, errmsg_str(&j->e));
                return;
        }
        r = key_disk(s->master.master_secret, s->master.master_salt, uuid, resp.disk_key);
        if (r >= 0)
                r = rejoin_response_serialize(&resp, &j->body);
        rejoin_response_done(&resp);
        if (r < 0) {
                j->status = 500;
                errmsg_replace(&j->e, r, "cannot derive the disk key");
                return;
        }
        j->status = 200;
        job_log(j, LOG_INFO, "Disk %s of node %s rejoined.", uuid, owner);
}

/* --- mesh refresh ---------------------------------------------------------------------- */

/* The answer: m and its peers (j->answer, which the caller frees, also on
 * failure). */
static int do_mesh(struct join_service *s, struct registry *reg, struct job *j, struct mesh_response *m,
                   struct errmsg *e) {
        _cleanup_registry_members_ struct registry_members *view = NULL;
        const struct mesh_request *req = &j->in.mesh;
        char host[ADDRESS_MAX];
        int r;

        r = check_endpoint(req->endpoint, host, e);
        if (r < 0)
                return r;
        for (unsigned round = 0;; round++) {
                const struct registry_member *me;
                const struct registry_members *v;
                struct registry_member updated;
                bool changed;

                view = registry_members_unref(view);
                r = registry_members_get(reg, &view, e);
                if (r < 0)
                        return r;
                v = view;
                me = registry_members_find(v, req->node_name);
                if (!me)
                        return errmsg_set(e, EPERM,
                                          "node '%s' is not a member of this cluster (never joined, evicted, or "
                                          "removed after %u s without a refresh)",
                                          req->node_name, s->opt.member_timeout);
                /* The node is who it says only if it attests with the AK it
                 * joined with (init records the first node's too). A record
                 * without one is never taken over by whoever refreshes
                 * first under its name. */
                if (!me->ak_name[0])
                        return errmsg_set(e, EPERM, "node '%s' has no attestation key on record", req->node_name);
                if (!streq(me->ak_name, j->ak_name))
                        return errmsg_set(e, EPERM, "node '%s' joined with another attestation key than this one",
                                          req->node_name);
                r = check_wg_key_free(v, me->name, req->wg_public_key, e);
                if (r < 0)
                        return r;
                updated = *me;
                snprintf(updated.wg_public_key, sizeof(updated.wg_public_key), "%s", req->wg_public_key);
                snprintf(updated.endpoint, sizeof(updated.endpoint), "%s", req->endpoint);
                updated.last_seen = (int64_t) time(NULL);
                /* Its first refresh since it joined (it refreshes as soon as
                 * its arca0 is up), or a new key or endpoint (it restarted):
                 * the others need it now, not at their next refresh. */
                changed = me->last_seen == me->join_time || !streq(me->wg_public_key, updated.wg_public_key) ||
                          !streq(me->endpoint, updated.endpoint);
                /* Within the second of its join, the first refresh must
                 * still leave a mark: one ring per join, not two. */
                if (updated.last_seen == me->join_time)
                        updated.last_seen++;
                /* Nothing new and seen less than half an interval ago (a
                 * member rung by the doorbell): no write, so that every
                 * member of a large cluster can refresh at once without as
                 * many registry commits. last_seen then lags by at most
                 * half an interval; members expire after many. */
                if (!changed && updated.last_seen - me->last_seen < (int64_t) s->opt.refresh_interval / 2)
                        r = 0;
                else
                        r = registry_update_member(reg, &updated, e);
                if (r == -ESTALE && round + 1 < REFRESH_ROUNDS) {
                        *e = (struct errmsg){};
                        continue;
                }
                if (r == -ENOENT)
                        return errmsg_replace(e, EPERM, "node '%s' was removed from the cluster meanwhile",
                                              req->node_name);
                if (r < 0)
                        return r;
                if (changed) {
                        j->rung = ring_members(s, v, req->node_name);
                        j->ring = true;
                }
                r = make_answer(&view, req->node_name, &j->answer, e);
                if (r < 0)
                        return r;
                snprintf(m->mesh_address, sizeof(m->mesh_address), "%s", updated.mesh_address);
                snprintf(m->mesh_cidr, sizeof(m->mesh_cidr), "%s", s->state.mesh_cidr);
                m->refresh_interval = s->opt.refresh_interval;
                return 0;
        }
}

static void run_mesh(struct join_service *s, struct registry *reg, struct job *j) {
        struct mesh_response resp = {};
        int r;

        j->e = (struct errmsg){};
        r = do_mesh(s, reg, j, &resp, &j->e);
        if (r >= 0)
                r = mesh_response_serialize_head(&resp, &j->answer->peers, &j->body, &j->body_len, &j->len);
        mesh_response_done(&resp);
        if (r < 0) {
                j->answer = answer_free(j->answer);
                j->status = http_status(r);
                if (!j->e.text[0])
                        errmsg_set(&j->e, r, "cannot encode the response");
                job_log(j, r == -EPERM ? LOG_WARNING : LOG_ERR, "Mesh refresh of %s refused: %s",
                        j->in.mesh.node_name, errmsg_str(&j->e));
                return;
        }
        j->status = 200;
        if (j->ring)
                job_log(j, LOG_INFO, "Mesh refresh of %s: new or changed member; rang %zu other members.",
                        j->in.mesh.node_name, j->rung);
        else
                job_log(j, LOG_DEBUG, "Mesh refresh of %s.", j->in.mesh.node_name);
}

/* --- requests ------------------------------------------------------------------------ */

/* Every request: attested on this connection with the node lock the
 * endpoint wants (join, rejoin: free; mesh: ours), its body parsed into the
 * job, then run by a worker. */
static void submit_request(struct join_service *s, struct evhttp_request *req, enum job_kind kind) {
        const struct verify_report *rep;
        struct errmsg e = {};
        struct job *j;
        char *body = NULL;
        size_t len;
        int r;

        if (accept_request(s, req, kind == JOB_MESH ? LOCK_OURS : LOCK_FREE, &rep, &body, &len) < 0)
                return;
        j = job_new(kind, req, rep);
        if (!j) {
                free(body);
                http_reply_error(req, 500, "out of memory");
                return;
        }
        switch (kind) {
        case JOB_JOIN:
                r = join_request_parse(body, len, &j->in.join, &e);
                break;
        case JOB_REJOIN:
                r = rejoin_request_parse(body, len, &j->in.rejoin, &e);
                break;
        case JOB_MESH:
                r = mesh_request_parse(body, len, &j->in.mesh, &e);
                break;
        default:
                r = errmsg_set(&e, EINVAL, "no such request");
        }
        free(body);
        if (r < 0) {
                log_warning("Refused a %s request: %s", kind == JOB_JOIN ? "join" : kind == JOB_REJOIN ? "rejoin" : "mesh",
                            errmsg_str(&e));
                http_reply_error(req, 400, "%s", errmsg_str(&e));
                secret_wipe(j, sizeof(*j));
                free(j);
                return;
        }
        work_pool_submit(s->pool, &j->item);
}

static void handle_join(struct evhttp_request *req, void *arg) {
        submit_request(arg, req, JOB_JOIN);
}

static void handle_rejoin(struct evhttp_request *req, void *arg) {
        submit_request(arg, req, JOB_REJOIN);
}

static void handle_mesh(struct evhttp_request *req, void *arg) {
        submit_request(arg, req, JOB_MESH);
}

/* --- eviction and expiry ----------------------------------------------------------- */

static void run_evict(struct join_service *s, struct registry *reg, struct job *j) {
        _cleanup_registry_members_ struct registry_members *v = NULL;
        int r;

        r = registry_members_get(reg, &v, &j->e);
        if (r < 0) {
                job_log(j, LOG_ERR, "Cannot check whether a drifted node is a member: %s", errmsg_str(&j->e));
                return;
        }
        for (size_t i = 0; i < v->n; i++) {
                if (!streq(v->m[i]->ak_name, j->ak_name))
                        continue;
                /* Its record, address and disks: it gets no disk key again. */
                r = registry_delete_member(reg, v->m[i]->name, &j->e);
                if (r < 0 && r != -ENOENT)
                        job_log(j, LOG_ERR, "Cannot evict drifted member %s: %s", v->m[i]->name,
                                errmsg_str(&j->e));
                else {
                        job_log(j, LOG_WARNING, "Evicted member %s: its measurements drifted (%s).",
                                v->m[i]->name, j->reason);
                        ring_members(s, v, v->m[i]->name);
                }
                return;
        }
        job_log(j, LOG_DEBUG, "The refused node is not a member.");
}

static void run_sweep(struct join_service *s, struct registry *reg, struct job *j) {
        _cleanup_registry_members_ struct registry_members *v = NULL;
        int64_t now = (int64_t) time(NULL);
        unsigned expired = 0;
        int r;

        r = registry_members_get(reg, &v, &j->e);
        if (r < 0) {
                job_log(j, LOG_ERR, "Member expiry: %s", errmsg_str(&j->e));
                return;
        }
        for (size_t i = 0; i < v->n; i++) {
                struct errmsg e = {};

                if (v->m[i]->last_seen + (int64_t) s->opt.member_timeout >= now)
                        continue;
                /* A refresh or another join service's sweep meanwhile wins. */
                r = registry_expire_member(reg, v->m[i], &e);
                if (r >= 0) {
                        size_t used;

                        if (expired++ == 0)
                                job_log(j, LOG_INFO, "Removed members without a refresh for %u s:",
                                        s->opt.member_timeout);
                        used = strlen(j->log);
                        snprintf(j->log + used, sizeof(j->log) - used, " %s (last seen %lld s ago)",
                                 v->m[i]->name, (long long) (now - v->m[i]->last_seen));
                } else if (r != -ESTALE && r != -ENOENT)
                        job_log(j, LOG_ERR, "Cannot remove member %s: %s", v->m[i]->name, errmsg_str(&e));
        }
        /* Expired members are rung too: harmless, they no longer refresh. */
        if (expired)
                ring_members(s, v, NULL);
}

/* --- the pool ------------------------------------------------------------------------- */

static void job_run(struct work_item *w, unsigned worker, void *userdata) {
        struct join_service *s = userdata;
        struct job *j = (struct job *) w;
        struct registry *reg = s->registries[worker];

        switch (j->kind) {
        case JOB_JOIN:
                run_join(s, reg, j);
                break;
        case JOB_REJOIN:
                run_rejoin(s, reg, j);
                break;
        case JOB_MESH:
                run_mesh(s, reg, j);
                break;
        case JOB_EVICT:
                run_evict(s, reg, j);
                break;
        case JOB_SWEEP:
                run_sweep(s, reg, j);
                break;
        }
}

static void job_done(struct work_item *w, void *userdata) {
        struct join_service *s = userdata;
        struct job *j = (struct job *) w;

        if (j->log[0])
                log_full(j->log_level, "%s", j->log);
        if (j->kind == JOB_SWEEP)
                s->sweeping = false;
        if (j->req) {
                if (j->status == 200 && j->body && j->answer)
                        /* The head (the secrets) is wiped once sent; the
                         * peers are written out of the view as the
                         * connection drains: no text of every peer list
                         * in flight. */
                        http_reply_json_stream(j->req, 200, TAKE_PTR(j->body), j->body_len, j->len, answer_fill,
                                               answer_release, TAKE_PTR(j->answer));
                else if (j->status == 200 && j->body) {
                        /* Sent from the body itself, wiped once sent. */
                        size_t len = strlen(j->body);
                        http_reply_raw_json_take(j->req, 200, TAKE_PTR(j->body), len);
                } else
                        http_reply_error(j->req, j->status, "%s", errmsg_str(&j->e));
        }
        /* Join answers carry disk keys and cluster secrets. */
        if (j->body)
                secret_free(j->body, strlen(j->body));
        answer_free(j->answer);
        secret_wipe(j, sizeof(*j));
        free(j);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
        struct join_service *s = arg;
        struct job *j;

        if (s->sweeping)
                return;
        j = job_new(JOB_SWEEP, NULL, NULL);
        if (!j)
                return;
        s->sweeping = true;
        work_pool_submit(s->pool, &j->item);
}

static void handle_unknown(struct evhttp_request *req, void *arg) {
        http_reply_error(req, 404, "no such endpoint: %s", evhttp_request_get_uri(req));
}

int join_service_new(struct event_base *base, const struct join_service_options *opt, struct join_service **ret,
                     struct errmsg *e) {
        struct join_service *s;
        unsigned n_workers;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->opt = *opt;
        s->bell_fd = -1;
        pthread_mutex_init(&s->driver_lock, NULL);
        if (s->opt.refresh_interval == 0)
                s->opt.refresh_interval = JOIN_SERVICE_REFRESH_INTERVAL;
        if (s->opt.member_timeout == 0)
                s->opt.member_timeout = JOIN_SERVICE_MEMBER_TIMEOUT;
        n_workers = s->opt.workers ? s->opt.workers : JOIN_SERVICE_WORKERS;
        if (s->opt.refresh_interval < MSG_MIN_REFRESH_INTERVAL || s->opt.refresh_interval > MSG_MAX_REFRESH_INTERVAL) {
                r = errmsg_set(e, EINVAL, "the refresh interval must be %u-%u s", MSG_MIN_REFRESH_INTERVAL,
                               MSG_MAX_REFRESH_INTERVAL);
                goto fail;
        }
        if (s->opt.member_timeout <= s->opt.refresh_interval) {
                r = errmsg_set(e, EINVAL, "the member timeout (%u s) must exceed the refresh interval (%u s)",
                               s->opt.member_timeout, s->opt.refresh_interval);
                goto fail;
        }
        if (n_workers > WORK_POOL_MAX_WORKERS) {
                r = errmsg_set(e, EINVAL, "at most %u workers", WORK_POOL_MAX_WORKERS);
                goto fail;
        }
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
        r = node_lock_value(s->state.cluster_id, s->lock_pcr);
        if (r < 0) {
                errmsg_set(e, r, "cannot compute the node lock value");
                goto fail;
        }
        s->driver = cp_driver_by_name(s->state.driver);
        if (!s->driver) {
                r = errmsg_set(e, EINVAL, "unknown control-plane driver \"%s\"", s->state.driver);
                goto fail;
        }
        r = registry_cache_new(&s->cache);
        if (r < 0)
                goto fail;
        for (unsigned i = 0; i < n_workers; i++) {
                if ((r = nodestate_registry_open(&s->state, opt->kubernetes_dir, &s->registries[i], e)) < 0)
                        goto fail;
                registry_set_cache(s->registries[i], s->cache);
        }
        if (opt->attester_fd >= 0)
                r = attester_remote_new(opt->attester_fd, opt->variant, 0, &s->attester, e);
        else if ((r = tpm_open(opt->tcti, &s->tpm, e)) >= 0)
                r = attester_new(opt->variant, s->tpm, opt->ak_handle, &s->attester, e);
        if (r < 0 || (r = make_verifier(s, e)) < 0)
                goto fail;
        s->atls = (struct atls_config){ .attester = s->attester, .verifier = s->verifier,
                                        .on_failure = on_atls_failure, .userdata = s };
        if ((r = work_pool_new(base, n_workers, job_run, job_done, s, &s->pool, e)) < 0 ||
            (r = atls_ctx_new(true, &s->atls, &s->ctx, e)) < 0 ||
            (r = http_server_new(base, s->ctx, opt->listen, opt->port, &s->http, e)) < 0)
                goto fail;
        /* A connection's TLS read and write buffers (~17 KiB each) only
         * while it has data in them: connections wait on the workers (the
         * registry) between request and answer, and 8 concurrent joiners
         * held ~0.3 MiB of them at the peak (bench-join). */
        SSL_CTX_set_mode(s->ctx, SSL_MODE_RELEASE_BUFFERS);
        if ((r = http_server_route(s->http, "/v1/join", handle_join, s)) < 0 ||
            (r = http_server_route(s->http, "/v1/rejoin", handle_rejoin, s)) < 0 ||
            (r = http_server_route(s->http, "/v1/mesh", handle_mesh, s)) < 0)
                goto fail;
        http_server_default(s->http, handle_unknown, s);
        s->bell_fd = mesh_notify_socket();
        if (s->bell_fd < 0)
                log_warning("Cannot make the doorbell socket (%s): members learn of changes at their next refresh.",
                            strerror(-s->bell_fd));
        {
                /* A few looks per timeout: members go within timeout + timeout/4. */
                struct timeval tv = { .tv_sec = s->opt.member_timeout / 4 ? s->opt.member_timeout / 4 : 1 };

                s->sweep_timer = event_new(base, -1, EV_PERSIST, on_sweep, s);
                if (!s->sweep_timer || event_add(s->sweep_timer, &tv) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = s;
        return 0;
fail:
        join_service_free(s);
        return r;
}

struct join_service *join_service_free(struct join_service *s) {
        if (!s)
                return NULL;
        if (s->sweep_timer)
                event_free(s->sweep_timer);
        /* Workers first: they use the registries, and their answers go
         * out through the server. */
        work_pool_free(s->pool);
        http_server_free(s->http);
        SSL_CTX_free(s->ctx);
        for (unsigned i = 0; i < WORK_POOL_MAX_WORKERS; i++)
                registry_free(s->registries[i]);
        registry_cache_free(s->cache);
        if (s->bell_fd >= 0)
                close(s->bell_fd);
        verifier_free(s->verifier);
        attester_free(s->attester);
        tpm_free(s->tpm);
        free(s->policy_text);
        pthread_mutex_destroy(&s->driver_lock);
        secret_wipe(&s->master, sizeof(s->master));
        free(s);
        return NULL;
}

uint16_t join_service_port(const struct join_service *s) {
        return http_server_port(s->http);
}
