/* SPDX-License-Identifier: Apache-2.0 */
#include "mesh.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "atls-http.h"
#include "encoding.h"
#include "firewall.h"
#include "json-util.h"
#include "log.h"
#include "mesh-notify.h"
#include "messages.h"
#include "node.h"
#include "secret.h"
#include "time-util.h"

struct mesh {
        struct event_base *base;
        struct node *node;
        struct mesh_options opt;
        char ifname[16];
        struct wg_device *dev;
        bool device_lost;          /* wireguard-go exited: remake at the next tick */
        struct event *timer;
        char address[ADDRESS_MAX];
        char cidr[CIDR_MAX];
        struct mesh_peer *peers;   /* the list last applied */
        size_t n_peers;
        unsigned interval_ms;      /* asked for by the join service */
        size_t next_endpoint;
        bool evicted;
        bool outage;
        unsigned rounds_failed;
        bool firewall_applied;
        bool firewall_stale;       /* its node sets may lag the peers */
        char wg_log[PATH_MAX];     /* wireguard-go's output */
        int bell_fd;               /* the doorbell (mesh-notify.h), or -1 */
        struct event *bell_event;
        uint64_t last_refresh_ms;  /* monotonic, when the last refresh began */
        unsigned bells_refused;
};

/* --- peers: validate, convert, apply ---------------------------------------- */

/* One peer of the join service's list as the device will have it. Returns
 * 0, 1 to skip (this node itself), or a negative errno with the reason. */
static int peer_to_wg(const struct mesh *m, const struct mesh_peer *p, struct wg_peer *ret, struct errmsg *e) {
        if (streq(p->wg_public_key, m->node->wg_public) || streq(p->name, m->node->opt.node_name))
                return 1;
        return wg_peer_from_mesh(p, m->cidr, m->address, ret, e);
}

/* The peers' underlay addresses, for the firewall's node sets. */
static int underlay_hosts(const struct mesh_peer *peers, size_t n, char (**ret)[ENDPOINT_MAX]) {
        char(*hosts)[ENDPOINT_MAX] = calloc(n + 1, sizeof(*hosts));

        if (!hosts)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *ep = peers[i].endpoint, *colon = strrchr(ep, ':');
                size_t len = colon ? (size_t) (colon - ep) : strlen(ep);
                if (ep[0] == '[' && len >= 2)
                        snprintf(hosts[i], ENDPOINT_MAX, "%.*s", (int) (len - 2), ep + 1);
                else
                        snprintf(hosts[i], ENDPOINT_MAX, "%.*s", (int) len, ep);
        }
        *ret = hosts;
        return 0;
}

/* Make the firewall's node sets follow the peers: the first call installs
 * table inet arca, later ones replace only the sets (atomically). */
static int firewall_follow(struct mesh *m, struct errmsg *e) {
        _cleanup_free_ char(*hosts)[ENDPOINT_MAX] = NULL;
        _cleanup_free_ const char **list = NULL;
        int r;

        if (!m->opt.firewall)
                return 0;
        r = underlay_hosts(m->peers, m->n_peers, &hosts);
        if (r < 0)
                return r;
        list = calloc(m->n_peers + 1, sizeof(*list));
        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_peers; i++)
                list[i] = hosts[i];
        if (m->firewall_applied)
                r = firewall_update_nodes(list, m->n_peers, e);
        else {
                struct firewall_config c;
                firewall_config_default(&c);
                c.mesh_interface = m->ifname;
                c.wireguard_port = WIREGUARD_PORT;
                c.nodes = list;
                c.n_nodes = m->n_peers;
                r = firewall_apply(&c, e);
                if (r >= 0)
                        m->firewall_applied = true;
        }
        if (r < 0)
                errmsg_prefix(e, "firewall");
        return r;
}

/* Make the device's peers equal the join service's list. A malformed
 * peer is left out (and logged); a list that names a key or an address
 * twice is refused as a whole and the current peers stay. */
static int apply_peers(struct mesh *m, const struct mesh_peer *peers, size_t n_peers, struct errmsg *e) {
        _cleanup_free_ struct wg_peer *want = NULL;
        _cleanup_free_ struct mesh_peer *copy = NULL;
        size_t n_want = 0, n_copy = 0, up = 0, rm = 0;
        int r;

        if (n_peers > WG_MAX_PEERS)
                return errmsg_set(e, E2BIG, "more than %d peers", WG_MAX_PEERS);
        want = calloc(n_peers + 1, sizeof(*want));
        copy = calloc(n_peers + 1, sizeof(*copy));
        if (!want || !copy)
                return -ENOMEM;
        for (size_t i = 0; i < n_peers; i++) {
                struct errmsg pe = {};
                r = peer_to_wg(m, &peers[i], &want[n_want], &pe);
                if (r < 0) {
                        log_warning("Mesh: leaving out a peer: %s", errmsg_str(&pe));
                        continue;
                }
                if (r > 0)
                        continue;
                n_want++;
                copy[n_copy++] = peers[i];
        }
        r = wg_device_sync_peers(m->dev, want, n_want, &up, &rm, e);
        if (r < 0)
                return r;
        free(m->peers);
        m->peers = TAKE_PTR(copy);
        m->n_peers = n_copy;
        if (up || rm)
                log_info("Mesh: %zu peers (%zu added or changed, %zu removed, %zu untouched).", n_want, up, rm,
                         n_want - up);
        if (m->opt.firewall && (up || rm || !m->firewall_applied || m->firewall_stale)) {
                r = firewall_follow(m, e);
                m->firewall_stale = r < 0; /* retried at the next refresh */
                if (r < 0)
                        return r;
        }
        return 0;
}

/* --- the device --------------------------------------------------------------- */

static int device_up(struct mesh *m, struct errmsg *e) {
        struct wg_options o = {
                .ifname = m->ifname,
                .backend = m->opt.backend,
                .wireguard_go = m->opt.wireguard_go,
                .uapi_dir = m->opt.uapi_dir,
                .log_path = m->wg_log,
        };
        uint32_t net, mask;
        unsigned prefix;
        int r;

        if (wg_parse_cidr4(m->cidr, &net, &mask, &prefix) < 0)
                return errmsg_set(e, EINVAL, "invalid mesh CIDR \"%s\"", m->cidr);
        m->dev = wg_device_destroy(m->dev);
        r = wg_device_new(&o, &m->dev, e);
        if (r < 0)
                return r;
        r = wg_device_set_key(m->dev, m->node->wg_private, WIREGUARD_PORT, e);
        if (r >= 0)
                r = wg_device_set_address(m->dev, m->address, prefix, e);
        if (r < 0) {
                m->dev = wg_device_destroy(m->dev);
                return r;
        }
        m->device_lost = false;
        return 0;
}

/* --- refresh ------------------------------------------------------------------ */

static void schedule(struct mesh *m) {
        unsigned base = m->opt.refresh_ms ? m->opt.refresh_ms : m->interval_ms, ms;
        uint32_t rnd = 0;
        struct timeval tv;

        /* 80-100 % of the interval, so that nodes booted together do not
         * refresh in step, and a drifted node is still dropped by every
         * peer within two intervals (its own refresh, then theirs). */
        (void) secret_random(&rnd, sizeof(rnd));
        ms = base - rnd % (base / 5 + 1);
        tv = (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        evtimer_add(m->timer, &tv);
}

/* Where to ask: this node's own join service (a control-plane node runs
 * one; elsewhere the connection is refused at once), the configured join
 * services, and every control-plane peer's. */
static size_t refresh_endpoints(const struct mesh *m, char (*ret)[ENDPOINT_MAX], size_t max) {
        const struct node *n = m->node;
        size_t k = 0;

#define ADD_ENDPOINT(...)                                                                       \
        do {                                                                                    \
                char ep_[ENDPOINT_MAX];                                                         \
                bool dup_ = false;                                                              \
                snprintf(ep_, sizeof(ep_), __VA_ARGS__);                                        \
                for (size_t j_ = 0; j_ < k && !dup_; j_++)                                      \
                        dup_ = streq(ret[j_], ep_);                                             \
                if (!dup_ && k < max)                                                           \
                        memcpy(ret[k++], ep_, sizeof(ep_));                                     \
        } while (0)

        if (strchr(n->opt.underlay, ':'))
                ADD_ENDPOINT("[%s]:%u", n->opt.underlay, n->opt.join_port);
        else
                ADD_ENDPOINT("%s:%u", n->opt.underlay, n->opt.join_port);
        for (size_t i = 0; i < n->opt.n_join_endpoints; i++)
                ADD_ENDPOINT("%s", n->opt.join_endpoints[i]);
        for (size_t i = 0; i < m->n_peers; i++) {
                const char *ep = m->peers[i].endpoint, *colon = strrchr(ep, ':');
                if (!streq(m->peers[i].role, "control-plane") || !colon)
                        continue;
                ADD_ENDPOINT("%.*s:%u", (int) (colon - ep), ep, n->opt.join_port);
        }
#undef ADD_ENDPOINT
        return k;
}

/* One refresh through one join service: 0 applied, -EPERM this node is
 * refused (HTTP 403: evicted or unknown; or, in the handshake, its
 * evidence: atls.h), other errors: no answer. */
static int refresh_via(struct mesh *m, const char *endpoint, struct errmsg *e) {
        struct node *n = m->node;
        struct atls_config atls = { .attester = n->attester, .verifier = n->peer_verifier };
        struct mesh_request req = {};
        struct mesh_response resp = {};
        struct http_response http = {};
        _cleanup_free_ char *url = NULL, *body = NULL;
        int r;

        if (asprintf(&url, "https://%s/v1/mesh", endpoint) < 0)
                return -ENOMEM;
        snprintf(req.node_name, sizeof(req.node_name), "%s", n->opt.node_name);
        snprintf(req.wg_public_key, sizeof(req.wg_public_key), "%s", n->wg_public);
        snprintf(req.endpoint, sizeof(req.endpoint), "%s", n->endpoint);
        r = mesh_request_serialize(&req, &body);
        if (r < 0)
                return r;
        /* Mutual aTLS: the join service is verified ("same image") before
         * the request is sent, and it verifies this node afresh. */
        r = atls_http_request(&atls, url, "POST", body, strlen(body), MESH_REFRESH_TIMEOUT_MS, &http, e);
        if (r < 0 && atls.peer_refusal != ATLS_REFUSAL_NONE)
                /* A join service that this node verified said why it ended
                 * the handshake: a refusal, not an outage. */
                return errmsg_replace(e, EPERM, "%s", atls_refusal_to_string(atls.peer_refusal));
        if (r < 0)
                return r == -EPERM ? -EACCES : r; /* the join service failed *our* check: not an eviction */
        if (http.status != 200) {
                _cleanup_(json_object_putp) json_object *err = NULL;
                const char *msg = http.body;
                if (json_parse(http.body, http.body_size, &err, NULL) >= 0)
                        json_get_string(err, "error", &msg, NULL);
                r = errmsg_set(e, http.status == 403 ? EPERM : EPROTO, "HTTP %ld: %s", http.status, msg);
                http_response_done(&http);
                return r;
        }
        r = mesh_response_parse(http.body, http.body_size, &resp, e);
        http_response_done(&http);
        if (r < 0)
                return r == -EPERM ? -EBADMSG : r;
        if (!streq(resp.mesh_address, m->address) || !streq(resp.mesh_cidr, m->cidr))
                log_warning("Mesh: the join service says this node is %s in %s; arca0 keeps %s in %s.",
                            resp.mesh_address, resp.mesh_cidr, m->address, m->cidr);
        m->interval_ms = resp.refresh_interval * 1000u;
        if (m->interval_ms < MESH_REFRESH_MIN_MS)
                m->interval_ms = MESH_REFRESH_MIN_MS;
        if (m->interval_ms > MESH_REFRESH_MAX_MS)
                m->interval_ms = MESH_REFRESH_MAX_MS;
        r = apply_peers(m, resp.peers, resp.n_peers, e);
        mesh_response_done(&resp);
        return r < 0 ? (r == -EPERM ? -EIO : r) : 0;
}

static void refresh(struct mesh *m) {
        char endpoints[NODE_MAX_JOIN_ENDPOINTS + 64][ENDPOINT_MAX];
        size_t k = refresh_endpoints(m, endpoints, ELEMENTSOF(endpoints));
        struct errmsg last = {};
        const char *last_ep = NULL;

        m->last_refresh_ms = now_ms();
        for (size_t i = 0; i < k; i++) {
                const char *ep = endpoints[(m->next_endpoint + i) % k];
                struct errmsg e = {};
                int r = refresh_via(m, ep, &e);

                if (r == 0) {
                        m->next_endpoint = (m->next_endpoint + i) % k; /* stay with it */
                        if (m->evicted)
                                log_notice("Mesh: %s accepts this node again; peers restored.", ep);
                        else if (m->outage)
                                log_notice("Mesh: join service %s answers again after %u failed refreshes; the "
                                           "tunnels stayed up meanwhile.",
                                           ep, m->rounds_failed);
                        m->evicted = m->outage = false;
                        m->rounds_failed = 0;
                        return;
                }
                if (r == -EPERM) {
                        size_t dropped = m->n_peers;
                        if (!m->evicted)
                                log_error("Mesh: this node was refused by join service %s (%s): it is evicted "
                                          "from the cluster. Dropping all %zu mesh peers.",
                                          ep, errmsg_str(&e), dropped);
                        m->evicted = true;
                        m->outage = false;
                        if (apply_peers(m, NULL, 0, &e) < 0)
                                log_error("Mesh: cannot drop the peers: %s", errmsg_str(&e));
                        return;
                }
                /* Report a remote join service's failure rather than this
                 * worker's own port being closed. */
                if (!last_ep || (m->next_endpoint + i) % k != 0) {
                        last = e;
                        last_ep = ep;
                }
                log_debug("Mesh: refresh through %s failed: %s", ep, errmsg_str(&e));
        }
        m->rounds_failed++;
        if (!m->outage && !m->evicted)
                log_warning("Mesh: no join service answered the refresh (last: %s: %s); keeping the %zu current "
                            "peers.",
                            strna(last_ep), errmsg_str(&last), m->n_peers);
        m->outage = true;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
        struct mesh *m = arg;
        struct errmsg e = {};

        /* Not a member before the node lock is taken (a join that failed
         * after mesh_up is rolled back). */
        if (!m->node->committed) {
                schedule(m);
                return;
        }
        if (m->device_lost || !m->dev) {
                struct mesh_peer *keep = TAKE_PTR(m->peers);
                size_t n_keep = m->n_peers;
                m->n_peers = 0;
                if (device_up(m, &e) < 0)
                        log_error("Mesh: cannot remake %s: %s", m->ifname, errmsg_str(&e));
                else {
                        log_info("Mesh: %s remade (%s).", m->ifname, wg_device_backend(m->dev));
                        if (apply_peers(m, keep, n_keep, &e) < 0)
                                log_error("Mesh: cannot apply the peers: %s", errmsg_str(&e));
                }
                free(keep);
        }
        if (m->dev)
                refresh(m);
        schedule(m);
}

/* --- the doorbell --------------------------------------------------------------- */

/* A join service changed the membership: refresh now (the refresh is what
 * it always is, mutual aTLS), but at most once per MESH_NOTIFY_MIN_GAP_MS. */
static void refresh_soon(struct mesh *m) {
        uint64_t now = now_ms(), at = m->last_refresh_ms + MESH_NOTIFY_MIN_GAP_MS, wait = at > now ? at - now : 0;
        struct timeval tv = { .tv_sec = (time_t) (wait / 1000), .tv_usec = (suseconds_t) (wait % 1000) * 1000 };

        /* Replaces the regular timer; on_timer schedules the next one. */
        evtimer_add(m->timer, &tv);
}

static void on_bell(evutil_socket_t fd, short what, void *arg) {
        struct mesh *m = arg;
        struct in_addr cps[WG_MAX_PEERS];
        struct mesh_notify_policy p = {
                .mesh_ifindex = if_nametoindex(m->ifname),
                .loopback_ifindex = if_nametoindex("lo"),
                .control_planes = cps,
        };
        bool ring = false;

        (void) inet_pton(AF_INET, m->address, &p.self);
        for (size_t i = 0; i < m->n_peers && p.n_control_planes < ELEMENTSOF(cps); i++)
                if (streq(m->peers[i].role, "control-plane") &&
                    inet_pton(AF_INET, m->peers[i].mesh_address, &cps[p.n_control_planes]) == 1)
                        p.n_control_planes++;
        /* Bounded per wake-up: a flood cannot hold the event loop. */
        for (int i = 0; i < 64; i++) {
                uint8_t buf[64], control[CMSG_SPACE(sizeof(struct in_pktinfo))];
                struct sockaddr_in from = {};
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr msg = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
                                      .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
                struct mesh_notify_origin origin = {};
                struct errmsg e = {};
                ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_TRUNC);

                if (n < 0)
                        break;
                origin.source = from.sin_addr;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                                struct in_pktinfo pi;
                                memcpy(&pi, CMSG_DATA(c), sizeof(pi));
                                origin.ifindex = (unsigned) pi.ipi_ifindex;
                        }
                if (mesh_notify_check(buf, (size_t) n > sizeof(buf) ? sizeof(buf) + 1 : (size_t) n, &origin, &p,
                                      &e) < 0) {
                        /* Said once, then quietly: anyone can send datagrams. */
                        if (m->bells_refused++ == 0)
                                log_warning("Mesh: ignoring a datagram on the doorbell port: %s", errmsg_str(&e));
                        else
                                log_debug("Mesh: ignoring a datagram on the doorbell port: %s", errmsg_str(&e));
                        continue;
                }
                ring = true;
        }
        if (ring) {
                log_info("Mesh: a join service rang the doorbell (the membership changed); refreshing now.");
                refresh_soon(m);
        }
}

/* The doorbell socket, on this node's mesh address (IP_FREEBIND: the
 * address may come and go with arca0). Without it the node still learns
 * every change, at its next regular refresh. */
static int bell_open(struct mesh *m, struct errmsg *e) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(MESH_NOTIFY_PORT) };
        int one = 1, fd;

        if (inet_pton(AF_INET, m->address, &a.sin_addr) != 1)
                return errmsg_set(e, EINVAL, "mesh address %s is not IPv4", m->address);
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return errmsg_set(e, errno, "socket: %s", strerror(errno));
        if (setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0) {
                int r = errmsg_set(e, errno, "doorbell socket on %s:%d: %s", m->address, MESH_NOTIFY_PORT,
                                   strerror(errno));
                close(fd);
                return r;
        }
        m->bell_event = event_new(m->base, fd, EV_READ | EV_PERSIST, on_bell, m);
        if (!m->bell_event || event_add(m->bell_event, NULL) < 0) {
                if (m->bell_event)
                        event_free(m->bell_event);
                m->bell_event = NULL;
                close(fd);
                return -ENOMEM;
        }
        m->bell_fd = fd;
        return 0;
}

/* --- the hand-off hook ---------------------------------------------------------- */

static int mesh_up(void *userdata, const char *address, const char *cidr, const uint8_t wg_private[WG_KEY_SIZE],
                   const struct mesh_peer *peers, size_t n_peers, struct errmsg *e) {
        struct mesh *m = userdata;
        uint32_t net, mask;
        unsigned prefix;
        int r;

        (void) wg_private; /* the node's own key pair, also in m->node */
        if (!valid_address(address) || wg_parse_cidr4(cidr, &net, &mask, &prefix) < 0)
                return errmsg_set(e, EINVAL, "invalid mesh address %s in %s", address, cidr);
        snprintf(m->address, sizeof(m->address), "%s", address);
        snprintf(m->cidr, sizeof(m->cidr), "%s", cidr);
        r = device_up(m, e);
        if (r < 0) {
                errmsg_prefix(e, "mesh interface %s", m->ifname);
                return r;
        }
        m->peers = mfree(m->peers);
        m->n_peers = 0;
        r = apply_peers(m, peers, n_peers, e);
        if (r < 0) {
                m->dev = wg_device_destroy(m->dev);
                return r;
        }
        if (m->bell_fd < 0) {
                struct errmsg be = {};
                if (bell_open(m, &be) < 0)
                        log_warning("Mesh: no doorbell (%s): membership changes reach this node at its regular "
                                    "refreshes only.",
                                    errmsg_str(&be));
        }
        log_info("Mesh: %s up (%s), address %s/%u, UDP %d, %zu peers%s.", m->ifname, wg_device_backend(m->dev),
                 address, prefix, WIREGUARD_PORT, m->n_peers,
                 m->firewall_applied ? ", firewall table inet arca applied" : "");
        if (n_peers > 0) {
                /* A joiner refreshes at once (after the join has taken
                 * the node lock: the event loop runs this after it): its
                 * first refresh makes the join service ring the members,
                 * now that arca0 listens. The first node has no one to tell. */
                struct timeval now = {};
                evtimer_add(m->timer, &now);
        } else
                schedule(m);
        return 0;
}

/* The doorbell is bound to this boot's mesh address: closed with it. */
static void bell_close(struct mesh *m) {
        if (m->bell_event)
                event_free(m->bell_event);
        m->bell_event = NULL;
        if (m->bell_fd >= 0)
                close(m->bell_fd);
        m->bell_fd = -1;
}

/* An init or join failed after mesh_up: no refreshes, no device, no table,
 * no doorbell (a retry may get another mesh address). */
static void mesh_down(void *userdata) {
        struct mesh *m = userdata;
        struct errmsg e = {};

        evtimer_del(m->timer);
        bell_close(m);
        if (m->firewall_applied && firewall_remove(&e) < 0)
                log_error("Mesh: cannot remove the firewall: %s", errmsg_str(&e));
        m->firewall_applied = m->firewall_stale = false;
        m->dev = wg_device_destroy(m->dev);
        m->peers = mfree(m->peers);
        m->n_peers = 0;
        m->evicted = m->outage = false;
        log_info("Mesh: %s removed (the init or join failed).", m->ifname);
}

int mesh_new(struct event_base *base, struct node *node, const struct mesh_options *opt, struct mesh **ret,
             struct errmsg *e) {
        struct mesh *m;

        /* Every refresh verifies the join service before sending anything. */
        if (!node->peer_verifier)
                return errmsg_set(e, EINVAL, "the mesh refresh cannot verify join services: no platform CA "
                                             "configured (--platform-ca)");
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->base = base;
        m->node = node;
        m->opt = *opt;
        m->interval_ms = MESH_REFRESH_DEFAULT_MS;
        m->bell_fd = -1;
        /* wireguard-go logs with ours when stderr can be opened by path
         * (not a journald socket), else into the state directory. */
        {
                int fd = open("/dev/stderr", O_WRONLY | O_APPEND | O_CLOEXEC);
                if (fd >= 0) {
                        close(fd);
                        snprintf(m->wg_log, sizeof(m->wg_log), "/dev/stderr");
                } else
                        snprintf(m->wg_log, sizeof(m->wg_log), "%s/wireguard-go.log", node->opt.state_dir);
        }
        snprintf(m->ifname, sizeof(m->ifname), "%s", opt->ifname ? opt->ifname : MESH_INTERFACE);
        m->timer = evtimer_new(base, on_timer, m);
        if (!m->timer) {
                free(m);
                return -ENOMEM;
        }
        node->handoff.mesh_up = mesh_up;
        node->handoff.mesh_down = mesh_down;
        node->handoff.mesh_userdata = m;
        *ret = m;
        return 0;
}

struct mesh *mesh_free(struct mesh *m) {
        if (!m)
                return NULL;
        if (m->timer)
                event_free(m->timer);
        bell_close(m);
        if (m->firewall_applied) {
                struct errmsg e = {};
                if (firewall_remove(&e) < 0)
                        log_error("Mesh: cannot remove the firewall: %s", errmsg_str(&e));
                else
                        log_info("Mesh: firewall table inet arca removed.");
        }
        if (m->dev)
                log_info("Mesh: removing %s.", m->ifname);
        wg_device_destroy(m->dev);
        free(m->peers);
        free(m);
        return NULL;
}

bool mesh_child_exited(struct mesh *m, pid_t pid, int status) {
        if (!m || !m->dev || pid <= 0 || wg_device_pid(m->dev) != pid)
                return false;
        wg_device_child_exited(m->dev);
        m->device_lost = true;
        log_error("Mesh: wireguard-go (pid %d) exited (status 0x%x); %s is remade at the next refresh.", (int) pid,
                  (unsigned) status, m->ifname);
        return true;
}
