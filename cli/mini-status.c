/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini: what each node is, seen from outside: its attestation (real
 * aTLS, as `arca verify` does it), PCR 15 (the node lock, which holds the
 * cluster ID once the node belongs to the cluster), its record in the
 * membership registry, and whether it reaches its mesh peers over arca0. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "atls-http.h"
#include "attest.h"
#include "config.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "mini.h"
#include "openssl-util.h"
#include "registry.h"

#define MESH_IFNAME "arca0"

int mini_expected_pcr15(const struct mini_cluster *c, uint8_t ret[32]) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *path = NULL, *text = NULL;
        uint8_t id[32], buf[64] = {}, event[32];
        const char *hex;
        size_t len;
        int r;

        if (asprintf(&path, "%s/arca-cluster.json", c->owner_dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, 64 * 1024, &text, &len);
        if (r < 0)
                return r;
        if (json_parse(text, len, &o, NULL) < 0 || json_get_string(o, "clusterId", &hex, NULL) < 0 ||
            hex_decode_exact(hex, id, sizeof(id)) < 0)
                return -EBADMSG;
        /* TPM2_PCR_Event(15, id) on a zero PCR: SHA-256(0^32 || SHA-256(id)). */
        if ((r = sha256(id, sizeof(id), event)) < 0)
                return r;
        memcpy(buf + 32, event, 32);
        return sha256(buf, sizeof(buf), ret);
}

/* Inside a control-plane node: the members of its registry, one "name
 * mesh-address" line each. etcd serves it on 127.0.0.1 there; from this
 * machine it is out of reach (mesh addresses only), and it should be:
 * the firewall keeps etcd off the underlay. */
static int registry_fn(const struct mini_cluster *c, const struct mini_node *n, void *userdata, int out_fd) {
        _cleanup_registry_ struct registry *reg = NULL;
        _cleanup_free_ struct registry_member *members = NULL;
        char url[64];
        const char *eps[] = { url };
        size_t n_members = 0;
        struct errmsg e = {};
        int r;

        (void) c, (void) n, (void) userdata;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", MINI_ETCD_PORT);
        r = registry_new(&(struct registry_config){ .endpoints = eps, .n_endpoints = 1, .timeout_ms = 2000 }, &reg,
                         &e);
        if (r >= 0)
                r = registry_list_members(reg, &members, &n_members, &e);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_members; i++)
                dprintf(out_fd, "%s %s\n", members[i].name, members[i].mesh_address);
        return 0;
}

/* The registry's members (name and mesh address), asked inside each
 * control-plane node in turn until one answers. */
static int registry_members(const struct mini_cluster *c, struct registry_member **ret, size_t *ret_n) {
        int r = -ENOENT;

        for (unsigned i = 0; i < c->n_nodes; i++) {
                _cleanup_free_ struct registry_member *m = NULL;
                _cleanup_free_ char *out = NULL;
                size_t n = 0, lines = 0;

                if (c->nodes[i].role != MINI_CONTROL_PLANE)
                        continue;
                r = c->ops->node_run(c, &c->nodes[i], registry_fn, NULL, &out);
                if (r < 0)
                        continue;
                for (const char *p = out; *p; p++)
                        lines += *p == '\n';
                m = calloc(lines + 1, sizeof(*m));
                if (!m)
                        return -ENOMEM;
                for (char *line = out, *next; line && *line && n < lines; line = next) {
                        char *sp;

                        next = strchr(line, '\n');
                        if (next)
                                *next++ = 0;
                        sp = strchr(line, ' ');
                        if (!sp || (size_t) (sp - line) >= sizeof(m[n].name) || strlen(sp + 1) >= sizeof(m[n].mesh_address))
                                continue;
                        snprintf(m[n].name, sizeof(m[n].name), "%.*s", (int) (sp - line), line);
                        snprintf(m[n].mesh_address, sizeof(m[n].mesh_address), "%s", sp + 1);
                        n++;
                }
                *ret = TAKE_PTR(m);
                *ret_n = n;
                return 0;
        }
        return r;
}

struct mesh_probe {
        int rounds;
        size_t n_peers;
        struct in_addr peers[MINI_MAX_NODES];
        unsigned node_of[MINI_MAX_NODES]; /* peers[k] is node node_of[k] */
};

/* Inside a node: does it have a mesh interface, and which peers answer an
 * ICMP echo on their mesh addresses? Prints "nomesh" or "reach K N". */
static int mesh_probe_fn(const struct mini_cluster *c, const struct mini_node *n, void *userdata, int out_fd) {
        const struct mesh_probe *p = userdata;
        bool replied[MINI_MAX_NODES] = {};
        size_t got = 0;
        uint16_t id = (uint16_t) getpid();
        int s;

        if (if_nametoindex(MESH_IFNAME) == 0) {
                dprintf(out_fd, "nomesh\n");
                return 0;
        }
        s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
        if (s < 0)
                return -errno;
        /* Over the mesh only: echoes leave and answers arrive on arca0. */
        if (setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, MESH_IFNAME, sizeof(MESH_IFNAME)) < 0) {
                int r = -errno;
                close(s);
                return r;
        }
        /* Several rounds: the first packet to a peer may wait for a handshake. */
        for (int round = 0; round < p->rounds && got < p->n_peers; round++) {
                double until = now_s() + (round == 0 ? 0.3 : 1.0);
                for (size_t i = 0; i < p->n_peers; i++) {
                        struct icmphdr h;
                        struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = p->peers[i] };
                        if (replied[i])
                                continue;
                        mini_icmp_echo_request(id, (uint16_t) i, &h);
                        (void) sendto(s, &h, sizeof(h), 0, (struct sockaddr *) &to, sizeof(to));
                }
                while (got < p->n_peers) {
                        uint8_t buf[256];
                        struct pollfd pfd = { .fd = s, .events = POLLIN };
                        double left = until - now_s();
                        ssize_t k;
                        size_t seq;

                        if (left <= 0 || poll(&pfd, 1, (int) (left * 1000) + 1) <= 0)
                                break;
                        k = recv(s, buf, sizeof(buf), 0);
                        if (k > 0 && mini_icmp_parse_reply(buf, (size_t) k, id, p->peers, p->n_peers, &seq) >= 0 &&
                            !replied[seq]) {
                                replied[seq] = true;
                                got++;
                        }
                }
        }
        close(s);
        dprintf(out_fd, "reach %zu %zu", got, p->n_peers);
        for (size_t i = 0; i < p->n_peers; i++)
                if (!replied[i])
                        dprintf(out_fd, " %u", p->node_of[i]);
        dprintf(out_fd, "\n");
        return 0;
}

static void attest_node(const struct mini_cluster *c, struct verifier *verifier, const uint8_t expected15[32],
                        bool have_expected, const struct mini_node *n, struct mini_node_status *st) {
        static const uint8_t zero[32];
        struct atls_config atls = { .verifier = verifier };
        struct http_response resp = {};
        struct errmsg e = {};
        char url[96];
        int r;

        snprintf(url, sizeof(url), "https://%s:%d/v1/attestation", n->address, MINI_INIT_PORT);
        r = atls_http_request(&atls, url, "GET", NULL, 0, 5000, &resp, &e);
        if (r >= 0 && resp.status != 200)
                r = errmsg_set(&e, EPROTO, "HTTP %ld", resp.status);
        http_response_done(&resp);
        st->reachable = atls.n_verifications > 0;
        st->verified = r >= 0;
        snprintf(st->reason, sizeof(st->reason), "%s", r >= 0 ? "" : errmsg_str(&e));
        st->have_pcr15 = atls.last_report.have_pcrs;
        if (st->have_pcr15)
                memcpy(st->pcr15, atls.last_report.pcrs[15], 32);
        st->joined = st->verified && st->have_pcr15 && have_expected && memcmp(st->pcr15, expected15, 32) == 0 &&
                     memcmp(st->pcr15, zero, 32) != 0;
}

/* Probe the mesh of every node at once (each probe waits for answers), one
 * child per node; each reports "INDEX nomesh" or "INDEX reach K N". With
 * only_pending, nodes that reached all their peers before are not probed
 * again, and each probe waits less. With first_new > 0, nodes before it
 * probe only the nodes from first_new on (which probe everyone). */
static void probe_mesh(const struct mini_cluster *c, struct mini_node_status *st, bool only_pending,
                       unsigned first_new) {
        _cleanup_free_ char *all = NULL;
        int pipefd[2];
        unsigned started = 0;
        pid_t parent = getpid();

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return;
        fflush(NULL);
        for (unsigned i = 0; i < c->n_nodes; i++) {
                pid_t pid;

                if (only_pending && st[i].mesh_up && st[i].peers_reachable == (int) c->n_nodes - 1)
                        continue;
                st[i].mesh_up = false;
                st[i].peers_total = st[i].peers_reachable = -1;
                if (!st[i].registered)
                        continue;
                pid = fork();
                if (pid < 0)
                        break;
                if (pid == 0) {
                        struct mesh_probe *p = calloc(1, sizeof(*p));
                        char *out = NULL;

                        mini_die_with_parent(parent);
                        close(pipefd[0]);
                        if (!p)
                                _exit(1);
                        p->rounds = only_pending || first_new ? 1 : 4;
                        for (unsigned j = 0; j < c->n_nodes; j++)
                                if (j != i && st[j].registered && (i >= first_new || j >= first_new) &&
                                    inet_pton(AF_INET, st[j].mesh_address, &p->peers[p->n_peers]) == 1)
                                        p->node_of[p->n_peers++] = j;
                        if (c->ops->node_run(c, &c->nodes[i], mesh_probe_fn, p, &out) >= 0)
                                dprintf(pipefd[1], "%u %s", i, out); /* one short line: atomic */
                        _exit(0);
                }
                started++;
        }
        close(pipefd[1]);
        if (mini_read_all(pipefd[0], &all) < 0)
                all = NULL;
        close(pipefd[0]);
        while (started > 0 && wait(NULL) > 0)
                started--;
        for (char *line = all, *next; line && *line; line = next) {
                unsigned i;
                size_t k, total;
                int off = 0;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (sscanf(line, "%u reach %zu %zu%n", &i, &k, &total, &off) == 3 && i < c->n_nodes) {
                        char *p = line + off, *end;
                        unsigned long j;

                        st[i].mesh_up = true;
                        st[i].peers_reachable = (int) k;
                        st[i].peers_total = (int) (c->n_nodes - 1);
                        memset(st[i].unreachable, 0, sizeof(st[i].unreachable));
                        /* Unregistered nodes are unreachable too. */
                        for (unsigned m = 0; m < c->n_nodes; m++)
                                if (m != i && !st[m].registered)
                                        st[i].unreachable[m / 8] |= (uint8_t) (1u << (m % 8));
                        while ((j = strtoul(p, &end, 10)), end != p) {
                                if (j < c->n_nodes)
                                        st[i].unreachable[j / 8] |= (uint8_t) (1u << (j % 8));
                                p = end;
                        }
                }
        }
}

int mini_probe(const struct mini_cluster *c, struct mini_node_status *st, bool attest, bool only_pending,
               bool mesh) {
        _cleanup_(verifier_freep) struct verifier *verifier = NULL;
        _cleanup_free_ struct registry_member *members = NULL;
        struct arca_config cfg = {};
        uint8_t expected15[32];
        bool have_expected;
        size_t n_members = 0;
        struct errmsg e = {};
        int r;

        have_expected = mini_expected_pcr15(c, expected15) >= 0;
        if (attest) {
                r = config_load(c->conf, &cfg, &e);
                if (r >= 0)
                        r = config_make_verifier(&cfg, &verifier, &e);
                config_done(&cfg);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up verification with %s: %s", c->conf, errmsg_str(&e));
                for (unsigned i = 0; i < c->n_nodes; i++)
                        if (!only_pending || !st[i].joined)
                                attest_node(c, verifier, expected15, have_expected, &c->nodes[i], &st[i]);
        }

        r = registry_members(c, &members, &n_members);
        for (unsigned i = 0; i < c->n_nodes; i++) {
                st[i].registered = false;
                for (size_t j = 0; r >= 0 && j < n_members; j++)
                        if (streq(members[j].name, c->nodes[i].name)) {
                                st[i].registered = true;
                                snprintf(st[i].mesh_address, sizeof(st[i].mesh_address), "%s",
                                         members[j].mesh_address);
                        }
        }

        if (mesh)
                probe_mesh(c, st, only_pending, 0);
        return r < 0 ? r : 0;
}

void mini_probe_mesh_new(const struct mini_cluster *c, struct mini_node_status *st, unsigned first_new) {
        probe_mesh(c, st, false, first_new);
}

void mini_print_table(const struct mini_cluster *c, const struct mini_node_status *st) {
        static const uint8_t zero[32];

        printf("%-6s %-13s %-15s %-15s %-12s %-24s %s\n", "NODE", "ROLE", "ADDRESS", "MESH", "ATTESTATION",
               "PCR 15", "PEERS");
        for (unsigned i = 0; i < c->n_nodes; i++) {
                const struct mini_node *n = &c->nodes[i];
                char pcr[40] = "-", peers[24] = "-";

                if (st[i].have_pcr15) {
                        char hex[65];
                        hex_encode_buf(st[i].pcr15, 32, hex);
                        snprintf(pcr, sizeof(pcr), "%.12s %s", hex,
                                 st[i].joined                         ? "(cluster)"
                                 : memcmp(st[i].pcr15, zero, 32) == 0 ? "(free)"
                                                                      : "(OTHER)");
                }
                if (st[i].mesh_up)
                        snprintf(peers, sizeof(peers), "%d/%d", st[i].peers_reachable, st[i].peers_total);
                else if (st[i].registered)
                        snprintf(peers, sizeof(peers), "no mesh");
                printf("%-6s %-13s %-15s %-15s %-12s %-24s %s\n", n->name,
                       n->role == MINI_WORKER ? "worker" : "control-plane", n->address,
                       st[i].registered ? st[i].mesh_address : "-",
                       st[i].verified ? "verified" : st[i].reachable ? "REFUSED" : "unreachable", pcr, peers);
        }
        for (unsigned i = 0; i < c->n_nodes; i++)
                if (!st[i].verified && st[i].reason[0])
                        printf("  %s: %s\n", c->nodes[i].name, st[i].reason);
        for (unsigned i = 0; i < c->n_nodes; i++) {
                unsigned shown = 0;
                if (!st[i].mesh_up || st[i].peers_reachable == st[i].peers_total)
                        continue;
                printf("  %s: no answer over arca0 from", c->nodes[i].name);
                for (unsigned j = 0; j < c->n_nodes; j++)
                        if (st[i].unreachable[j / 8] & (1u << (j % 8))) {
                                if (shown++ == 8) {
                                        printf(" ...");
                                        break;
                                }
                                printf(" %s (%s)", c->nodes[j].name,
                                       st[j].registered ? st[j].mesh_address : "not registered");
                        }
                printf("\n");
        }
}
