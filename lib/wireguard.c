/* SPDX-License-Identifier: Apache-2.0 */
#include "wireguard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpdriver.h"
#include "encoding.h"
#include "macro.h"
#include "messages.h"
#include "secret.h"
#include "wireguard-internal.h"

int wg_backend_from_string(const char *s, enum wg_backend *ret) {
        if (streq(s, "auto"))
                *ret = WG_BACKEND_AUTO;
        else if (streq(s, "kernel"))
                *ret = WG_BACKEND_KERNEL;
        else if (streq(s, "userspace") || streq(s, "wireguard-go"))
                *ret = WG_BACKEND_USERSPACE;
        else
                return -EINVAL;
        return 0;
}

const char *wg_backend_to_string(enum wg_backend b) {
        switch (b) {
        case WG_BACKEND_KERNEL:
                return "kernel";
        case WG_BACKEND_USERSPACE:
                return "wireguard-go";
        default:
                return "auto";
        }
}

void wg_status_done(struct wg_status *s) {
        if (!s)
                return;
        free(s->peers);
        *s = (struct wg_status){};
}

const struct wg_peer_status *wg_status_find(const struct wg_status *s, const uint8_t key[WG_KEY_SIZE]) {
        for (size_t i = 0; i < s->n_peers; i++)
                if (memcmp(s->peers[i].public_key, key, WG_KEY_SIZE) == 0)
                        return &s->peers[i];
        return NULL;
}

/* --- UAPI replies ----------------------------------------------------------- */

static bool parse_u64(const char *s, size_t n, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0 || n > 20)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned d;
                if (s[i] < '0' || s[i] > '9')
                        return false;
                d = (unsigned) (s[i] - '0');
                if (v > (max - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

/* Copy a value into a fixed field: printable ASCII only, bounded. */
static bool copy_field(const char *v, size_t n, char *out, size_t max) {
        if (n >= max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (v[i] <= ' ' || v[i] > '~')
                        return false;
        memcpy(out, v, n);
        out[n] = 0;
        return true;
}

static bool key_is(const char *k, size_t kn, const char *want) {
        return kn == strlen(want) && memcmp(k, want, kn) == 0;
}

int wg_uapi_parse_reply(char *buf, size_t len, struct wg_status *ret, struct errmsg *e) {
        _cleanup_free_ struct wg_peer_status *peers = NULL;
        struct wg_status st = {};
        struct wg_peer_status *cur = NULL;
        size_t pos = 0, line = 0, cap = 0;
        bool have_errno = false, ended = false;
        uint64_t dev_errno = 0;
        bool dev_errno_negative = false;

        while (pos < len) {
                const char *l = buf + pos, *eq, *v;
                char *nl = memchr(buf + pos, '\n', len - pos);
                size_t ln, kn, vn;
                uint64_t u;

                line++;
                if (!nl)
                        return errmsg_set(e, EBADMSG, "UAPI reply line %zu: no newline at the end", line);
                ln = (size_t) (nl - l);
                pos += ln + 1;
                if (ln == 0) {
                        ended = true;
                        break;
                }
                if (have_errno)
                        return errmsg_set(e, EBADMSG, "UAPI reply line %zu: data after errno", line);
                eq = memchr(l, '=', ln);
                if (!eq || eq == l)
                        return errmsg_set(e, EBADMSG, "UAPI reply line %zu: expected key=value", line);
                kn = (size_t) (eq - l);
                v = eq + 1;
                vn = ln - kn - 1;
                for (size_t i = 0; i < kn; i++)
                        if (!((l[i] >= 'a' && l[i] <= 'z') || l[i] == '_'))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad key", line);

                if (key_is(l, kn, "errno")) {
                        const char *digits = v;
                        size_t dn = vn;
                        if (dn > 0 && digits[0] == '-') {
                                dev_errno_negative = true;
                                digits++;
                                dn--;
                        }
                        if (!parse_u64(digits, dn, 4095, &dev_errno))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad errno", line);
                        have_errno = true;
                } else if (key_is(l, kn, "private_key")) {
                        /* Not kept, and not left in the caller's buffer. */
                        secret_wipe((char *) v, vn);
                        st.has_private_key = true;
                } else if (key_is(l, kn, "listen_port")) {
                        if (!parse_u64(v, vn, 65535, &u))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad listen_port", line);
                        st.listen_port = (uint16_t) u;
                } else if (key_is(l, kn, "fwmark")) {
                        if (!parse_u64(v, vn, UINT32_MAX, &u))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad fwmark", line);
                        st.fwmark = (uint32_t) u;
                } else if (key_is(l, kn, "public_key")) {
                        char hex[2 * WG_KEY_SIZE + 1];
                        if (st.n_peers >= WG_MAX_PEERS)
                                return errmsg_set(e, EBADMSG, "UAPI reply: more than %d peers", WG_MAX_PEERS);
                        if (st.n_peers == cap) {
                                size_t ncap = cap ? cap * 2 : 8;
                                struct wg_peer_status *p = reallocarray(peers, ncap, sizeof(*p));
                                if (!p)
                                        return -ENOMEM;
                                peers = p;
                                cap = ncap;
                        }
                        cur = &peers[st.n_peers++];
                        *cur = (struct wg_peer_status){};
                        if (vn != 2 * WG_KEY_SIZE || !copy_field(v, vn, hex, sizeof(hex)) ||
                            hex_decode_exact(hex, cur->public_key, WG_KEY_SIZE) < 0)
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad public_key", line);
                } else if (!cur) {
                        /* Device-level keys we do not use are skipped. */
                        continue;
                } else if (key_is(l, kn, "endpoint")) {
                        if (!copy_field(v, vn, cur->endpoint, sizeof(cur->endpoint)))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad endpoint", line);
                } else if (key_is(l, kn, "last_handshake_time_sec")) {
                        if (!parse_u64(v, vn, INT64_MAX, &u))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad handshake time", line);
                        cur->last_handshake_sec = (int64_t) u;
                } else if (key_is(l, kn, "last_handshake_time_nsec")) {
                        if (!parse_u64(v, vn, 999999999, &u))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad handshake time", line);
                        cur->last_handshake_nsec = (int64_t) u;
                } else if (key_is(l, kn, "rx_bytes")) {
                        if (!parse_u64(v, vn, UINT64_MAX, &cur->rx_bytes))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad rx_bytes", line);
                } else if (key_is(l, kn, "tx_bytes")) {
                        if (!parse_u64(v, vn, UINT64_MAX, &cur->tx_bytes))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad tx_bytes", line);
                } else if (key_is(l, kn, "persistent_keepalive_interval")) {
                        if (!parse_u64(v, vn, 65535, &u))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad keepalive", line);
                        cur->keepalive = (uint16_t) u;
                } else if (key_is(l, kn, "allowed_ip")) {
                        if (cur->n_allowed_ips >= WG_MAX_ALLOWED_IPS)
                                return errmsg_set(e, EBADMSG, "UAPI reply: more than %d allowed IPs for a peer",
                                                  WG_MAX_ALLOWED_IPS);
                        if (!copy_field(v, vn, cur->allowed_ips[cur->n_allowed_ips], CIDR_MAX))
                                return errmsg_set(e, EBADMSG, "UAPI reply line %zu: bad allowed_ip", line);
                        cur->n_allowed_ips++;
                }
                /* other peer keys (preshared_key, protocol_version) are not used */
        }
        if (!ended)
                return errmsg_set(e, EBADMSG, "UAPI reply: no blank line at the end");
        if (pos != len)
                return errmsg_set(e, EBADMSG, "UAPI reply: data after the blank line");
        if (!have_errno)
                return errmsg_set(e, EBADMSG, "UAPI reply: no errno line");
        if (dev_errno != 0)
                return errmsg_set(e, (int) dev_errno, "the WireGuard device refused the request (errno=%s%" PRIu64 ")",
                                  dev_errno_negative ? "-" : "", dev_errno);
        if (ret) {
                st.peers = TAKE_PTR(peers);
                *ret = st;
        }
        return 0;
}

/* --- UAPI requests ---------------------------------------------------------- */

int wg_uapi_format_peers(const struct wg_peer *upsert, size_t n_upsert, const uint8_t (*removal)[WG_KEY_SIZE],
                         size_t n_removal, char **ret) {
        char *s = NULL;
        size_t size = 0;
        FILE *f;
        char hex[2 * WG_KEY_SIZE + 1];
        int r = 0;

        f = open_memstream(&s, &size);
        if (!f)
                return -ENOMEM;
        fputs("set=1\n", f);
        for (size_t i = 0; i < n_removal; i++) {
                hex_encode_buf(removal[i], WG_KEY_SIZE, hex);
                fprintf(f, "public_key=%s\nremove=true\n", hex);
        }
        for (size_t i = 0; i < n_upsert; i++) {
                const struct wg_peer *p = &upsert[i];
                hex_encode_buf(p->public_key, WG_KEY_SIZE, hex);
                fprintf(f, "public_key=%s\n", hex);
                if (p->endpoint[0])
                        fprintf(f, "endpoint=%s\n", p->endpoint);
                fprintf(f, "persistent_keepalive_interval=%u\nreplace_allowed_ips=true\n", p->keepalive);
                if (p->allowed_ip[0])
                        fprintf(f, "allowed_ip=%s\n", p->allowed_ip);
        }
        fputs("\n", f);
        if (ferror(f))
                r = -ENOMEM;
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0) {
                free(s);
                return r;
        }
        *ret = s;
        return 0;
}

/* --- diff ------------------------------------------------------------------- */

static bool peer_same(const struct wg_peer *a, const struct wg_peer *b) {
        return streq(a->endpoint, b->endpoint) && streq(a->allowed_ip, b->allowed_ip) && a->keepalive == b->keepalive;
}

int wg_peers_diff(const struct wg_peer *cur, size_t n_cur, const struct wg_peer *want, size_t n_want,
                  size_t **ret_upsert, size_t *ret_n_upsert, size_t **ret_removal, size_t *ret_n_removal) {
        _cleanup_free_ size_t *up = NULL, *rm = NULL;
        size_t n_up = 0, n_rm = 0;

        for (size_t i = 0; i < n_want; i++)
                for (size_t j = 0; j < i; j++)
                        if (memcmp(want[i].public_key, want[j].public_key, WG_KEY_SIZE) == 0 ||
                            (want[i].allowed_ip[0] && streq(want[i].allowed_ip, want[j].allowed_ip)))
                                return -EINVAL;
        up = calloc(n_want + 1, sizeof(*up));
        rm = calloc(n_cur + 1, sizeof(*rm));
        if (!up || !rm)
                return -ENOMEM;
        for (size_t i = 0; i < n_want; i++) {
                const struct wg_peer *old = NULL;
                for (size_t j = 0; j < n_cur && !old; j++)
                        if (memcmp(cur[j].public_key, want[i].public_key, WG_KEY_SIZE) == 0)
                                old = &cur[j];
                if (!old || !peer_same(old, &want[i]))
                        up[n_up++] = i;
        }
        for (size_t j = 0; j < n_cur; j++) {
                bool kept = false;
                for (size_t i = 0; i < n_want && !kept; i++)
                        kept = memcmp(cur[j].public_key, want[i].public_key, WG_KEY_SIZE) == 0;
                if (!kept)
                        rm[n_rm++] = j;
        }
        *ret_upsert = TAKE_PTR(up);
        *ret_n_upsert = n_up;
        *ret_removal = TAKE_PTR(rm);
        *ret_n_removal = n_rm;
        return 0;
}

/* --- the device ----------------------------------------------------------- */

static const char *find_tool(const char *const *candidates) {
        for (; *candidates; candidates++)
                if (access(*candidates, X_OK) == 0)
                        return *candidates;
        return NULL;
}

static bool valid_ifname(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 15)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
                        return false;
        return true;
}

void wg_link_delete(struct wg_device *d) {
        char *argv[] = { d->ip, "link", "del", "dev", d->ifname, NULL };

        (void) cp_run("ip link del", argv, 10, NULL);
}

static struct wg_device *device_free(struct wg_device *d) {
        if (!d)
                return NULL;
        free(d->uapi_dir);
        free(d->wireguard_go);
        free(d->log_path);
        free(d->applied);
        free(d);
        return NULL;
}

int wg_device_new(const struct wg_options *opt, struct wg_device **ret, struct errmsg *e) {
        static const char *const ips[] = { "/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip", NULL };
        static const char *const wgs[] = { "/usr/bin/wg", "/bin/wg", "/usr/sbin/wg", "/sbin/wg", NULL };
        struct wg_device *d;
        const char *ip, *wg;
        struct errmsg kernel_e = {};
        int r;

        if (!valid_ifname(opt->ifname))
                return errmsg_set(e, EINVAL, "invalid interface name \"%s\"", PRINTABLE(opt->ifname));
        ip = find_tool(ips);
        if (!ip)
                return errmsg_set(e, ENOENT, "iproute2's ip is not installed");
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        snprintf(d->ifname, sizeof(d->ifname), "%s", opt->ifname);
        snprintf(d->ip, sizeof(d->ip), "%s", ip);
        wg = find_tool(wgs);
        if (wg)
                snprintf(d->wg, sizeof(d->wg), "%s", wg);
        d->uapi_dir = strdup(opt->uapi_dir ? opt->uapi_dir : WG_UAPI_DIR_DEFAULT);
        d->wireguard_go = strdup(opt->wireguard_go ? opt->wireguard_go : "/usr/bin/wireguard-go");
        d->log_path = strdup(opt->log_path ? opt->log_path : "/dev/null");
        if (!d->uapi_dir || !d->wireguard_go || !d->log_path) {
                device_free(d);
                return -ENOMEM;
        }
        /* A leftover interface of an earlier run has another key and stale
         * peers: start from nothing. */
        wg_link_delete(d);

        if (opt->backend != WG_BACKEND_USERSPACE) {
                d->ops = &wg_backend_kernel;
                r = d->ops->create(d, &kernel_e);
                if (r >= 0) {
                        *ret = d;
                        return 0;
                }
                if (opt->backend == WG_BACKEND_KERNEL) {
                        errmsg_set(e, r, "%s", kernel_e.text);
                        device_free(d);
                        return r;
                }
        }
        d->ops = &wg_backend_userspace;
        r = d->ops->create(d, e);
        if (r < 0) {
                if (opt->backend == WG_BACKEND_AUTO)
                        errmsg_prefix(e, "no kernel WireGuard (%s), and wireguard-go", errmsg_str(&kernel_e));
                device_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

struct wg_device *wg_device_destroy(struct wg_device *d) {
        if (!d)
                return NULL;
        d->ops->destroy(d);
        return device_free(d);
}

const char *wg_device_backend(const struct wg_device *d) {
        return d->ops->name;
}

const char *wg_device_ifname(const struct wg_device *d) {
        return d->ifname;
}

pid_t wg_device_pid(const struct wg_device *d) {
        return d->pid;
}

void wg_device_child_exited(struct wg_device *d) {
        d->pid = 0;
}

int wg_device_set_key(struct wg_device *d, const uint8_t priv[WG_KEY_SIZE], uint16_t port, struct errmsg *e) {
        return d->ops->set_key(d, priv, port, e);
}

int wg_device_set_address(struct wg_device *d, const char *address, unsigned prefixlen, struct errmsg *e) {
        char cidr[ADDRESS_MAX + 8];
        char *addr_argv[] = { d->ip, "address", "replace", cidr, "dev", d->ifname, NULL };
        char *up_argv[] = { d->ip, "link", "set", "dev", d->ifname, "up", NULL };
        int r;

        if (!valid_address(address) || prefixlen > (strchr(address, ':') ? 128u : 32u))
                return errmsg_set(e, EINVAL, "invalid interface address \"%s/%u\"", PRINTABLE(address), prefixlen);
        snprintf(cidr, sizeof(cidr), "%s/%u", address, prefixlen);
        r = cp_run("ip address replace", addr_argv, 10, e);
        if (r < 0)
                return r;
        return cp_run("ip link set up", up_argv, 10, e);
}

static void remember_union(struct wg_device *d, const struct wg_peer *extra, size_t n_extra) {
        struct wg_peer *p = reallocarray(d->applied, d->n_applied + n_extra + 1, sizeof(*p));

        if (!p)
                return; /* keeps the old list; dirty makes the next sync re-send */
        d->applied = p;
        for (size_t i = 0; i < n_extra; i++) {
                bool known = false;
                for (size_t j = 0; j < d->n_applied && !known; j++)
                        known = memcmp(d->applied[j].public_key, extra[i].public_key, WG_KEY_SIZE) == 0;
                if (!known)
                        d->applied[d->n_applied++] = extra[i];
        }
}

int wg_device_sync_peers(struct wg_device *d, const struct wg_peer *want, size_t n_want, size_t *ret_upserted,
                         size_t *ret_removed, struct errmsg *e) {
        _cleanup_free_ size_t *up_idx = NULL, *rm_idx = NULL;
        _cleanup_free_ struct wg_peer *up = NULL, *copy = NULL;
        _cleanup_free_ uint8_t(*rm)[WG_KEY_SIZE] = NULL;
        size_t n_up = 0, n_rm = 0;
        int r;

        if (n_want > WG_MAX_PEERS)
                return errmsg_set(e, E2BIG, "more than %d peers", WG_MAX_PEERS);
        r = wg_peers_diff(d->applied, d->n_applied, want, n_want, &up_idx, &n_up, &rm_idx, &n_rm);
        if (r == -EINVAL)
                return errmsg_set(e, EINVAL, "the wanted peers hold a public key or an allowed IP twice");
        if (r < 0)
                return r;
        copy = calloc(n_want + 1, sizeof(*copy));
        up = calloc(n_want + 1, sizeof(*up));
        rm = calloc(n_rm + 1, sizeof(*rm));
        if (!copy || !up || !rm)
                return -ENOMEM;
        memcpy(copy, want, n_want * sizeof(*want));
        for (size_t i = 0; i < n_up; i++)
                up[i] = want[up_idx[i]];
        for (size_t i = 0; i < n_rm; i++)
                memcpy(rm[i], d->applied[rm_idx[i]].public_key, WG_KEY_SIZE);
        if (d->dirty) {
                /* An earlier apply failed half-way: send every wanted peer
                 * (setting an unchanged peer keeps its session). */
                for (size_t i = 0; i < n_want; i++)
                        up[i] = want[i];
                n_up = n_want;
        }
        if (n_up + n_rm > 0) {
                r = d->ops->apply(d, up, n_up, (const uint8_t(*)[WG_KEY_SIZE]) rm, n_rm, e);
                if (r < 0) {
                        /* Unknown what was applied: remember every peer
                         * that may be on the device, so the next sync
                         * removes what is not wanted then. */
                        remember_union(d, up, n_up);
                        d->dirty = true;
                        return r;
                }
        }
        d->dirty = false;
        free(d->applied);
        d->applied = TAKE_PTR(copy);
        d->n_applied = n_want;
        if (ret_upserted)
                *ret_upserted = n_up;
        if (ret_removed)
                *ret_removed = n_rm;
        return 0;
}

const struct wg_peer *wg_device_peers(const struct wg_device *d, size_t *ret_n) {
        *ret_n = d->n_applied;
        return d->applied;
}

int wg_device_get(struct wg_device *d, struct wg_status *ret, struct errmsg *e) {
        return d->ops->get(d, ret, e);
}

/* --- peers from the join service ------------------------------------------------ */

int wg_parse_cidr4(const char *cidr, uint32_t *ret_net, uint32_t *ret_mask, unsigned *ret_prefix) {
        char addr[ADDRESS_MAX];
        const char *slash = cidr ? strchr(cidr, '/') : NULL;
        struct in_addr a;
        unsigned long prefix;
        char *end;

        if (!slash || (size_t) (slash - cidr) >= sizeof(addr) || !slash[1] || slash[1] < '0' || slash[1] > '9')
                return -EINVAL;
        memcpy(addr, cidr, (size_t) (slash - cidr));
        addr[slash - cidr] = 0;
        errno = 0;
        prefix = strtoul(slash + 1, &end, 10);
        /* /31 and /32 leave no room for peers. */
        if (errno || *end || prefix > 30 || inet_pton(AF_INET, addr, &a) != 1)
                return -EINVAL;
        *ret_mask = prefix ? ~UINT32_C(0) << (32 - prefix) : 0;
        *ret_net = ntohl(a.s_addr) & *ret_mask;
        *ret_prefix = (unsigned) prefix;
        return 0;
}

/* An endpoint WireGuard can use as is: an IP literal and a port (names
 * would need resolving, which nobody here should trust). */
static bool endpoint_is_literal(const char *ep) {
        char host[ENDPOINT_MAX];
        const char *colon;
        struct in6_addr a6;
        struct in_addr a4;

        if (!valid_endpoint(ep))
                return false;
        if (ep[0] == '[')
                return true; /* valid_endpoint checked the v6 literal */
        colon = strrchr(ep, ':');
        memcpy(host, ep, (size_t) (colon - ep));
        host[colon - ep] = 0;
        return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

int wg_peer_from_mesh(const struct mesh_peer *p, const char *mesh_cidr, const char *self_address, struct wg_peer *ret,
                      struct errmsg *e) {
        _cleanup_free_ uint8_t *key = NULL;
        size_t key_size = 0;
        uint32_t net, mask, host;
        unsigned prefix;
        struct in_addr a;

        if (wg_parse_cidr4(mesh_cidr, &net, &mask, &prefix) < 0)
                return errmsg_set(e, EINVAL, "invalid mesh CIDR \"%s\"", PRINTABLE(mesh_cidr));
        if (!valid_node_name(p->name))
                return errmsg_set(e, EBADMSG, "a peer has an invalid name");
        if (!valid_wg_key(p->wg_public_key) ||
            base64_decode(p->wg_public_key, strlen(p->wg_public_key), &key, &key_size) < 0 || key_size != WG_KEY_SIZE)
                return errmsg_set(e, EBADMSG, "peer \"%s\": invalid WireGuard key", p->name);
        if (!endpoint_is_literal(p->endpoint))
                return errmsg_set(e, EBADMSG, "peer \"%s\": endpoint \"%s\" is not an IP address and port", p->name,
                                  PRINTABLE(p->endpoint));
        if (!valid_address(p->mesh_address) || inet_pton(AF_INET, p->mesh_address, &a) != 1)
                return errmsg_set(e, EBADMSG, "peer \"%s\": mesh address \"%s\" is not an IPv4 address", p->name,
                                  PRINTABLE(p->mesh_address));
        host = ntohl(a.s_addr);
        if ((host & mask) != net || host == net || host == (net | ~mask))
                return errmsg_set(e, EBADMSG, "peer \"%s\": mesh address %s is not a host of %s", p->name,
                                  p->mesh_address, mesh_cidr);
        if (self_address && streq(p->mesh_address, self_address))
                return errmsg_set(e, EBADMSG, "peer \"%s\": holds this node's mesh address %s", p->name,
                                  self_address);
        *ret = (struct wg_peer){ .keepalive = WG_KEEPALIVE_DEFAULT };
        memcpy(ret->public_key, key, WG_KEY_SIZE);
        snprintf(ret->endpoint, sizeof(ret->endpoint), "%s", p->endpoint);
        snprintf(ret->allowed_ip, sizeof(ret->allowed_ip), "%s/32", p->mesh_address);
        return 0;
}
