/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini add: more nodes for a running mini cluster. Each new node is
 * made like the ones `up` made (network namespace on the bridge, swtpm,
 * measured "boot", AK certified by mini's platform CA) and joins through
 * the cluster's join services by itself; `add` then waits until every node
 * reaches the new ones over arca0 and says how long that took after the
 * join. Every resource goes into the journal before it is created, so
 * `down` removes the new nodes too, also after an `add` that died halfway. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mini.h"
#include "pcr11.h"
#include "mini-neigh.h"
#include "openssl-util.h"
#include "policy.h"

/* The last octet of node addresses: A.B.C.11 up to A.B.C.254. */
#define FIRST_OCTET 11
#define LAST_OCTET 254

struct busy {
        char kind[16];
        int pid;
};

/* A journal's up-pid or add-pid whose process still runs (same start time). */
static int find_busy(const char *kind, const char *value, void *u) {
        struct busy *b = u;
        unsigned long long start;
        int pid;

        if (!streq(kind, "up-pid") && !streq(kind, "add-pid"))
                return 0;
        if (sscanf(value, "%d %llu", &pid, &start) != 2 || pid == getpid() || start == 0 ||
            mini_pid_start_time(pid) != start)
                return 0;
        snprintf(b->kind, sizeof(b->kind), "%.*s", (int) (strchr(kind, '-') - kind), kind);
        b->pid = pid;
        return 0;
}

/* The binaries a new node runs must be those the policy was written for:
 * their digests are what its "boot" measures into PCRs 4 and 9. */
static int check_binaries(struct mini_cluster *c) {
        static const struct {
                unsigned pcr;
                const char *bin;
        } measured[] = {
                { MINI_PCR_BOOTSTRAPPER, "arca-bootstrapper" },
                { MINI_PCR_JOIN_SERVICE, "arca-join-service" },
        };
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX + 32];
        struct policy p;
        struct errmsg e = {};
        size_t len;
        int r;

        snprintf(path, sizeof(path), "%s/measurements.json", c->owner_dir);
        r = read_full_file(path, 1024 * 1024, &text, &len);
        if (r >= 0)
                r = policy_parse(text, len, &p, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot read the cluster's measurement policy %s: %s", path,
                                       e.text[0] ? errmsg_str(&e) : strerror(-r));
        for (size_t i = 0; i < ELEMENTSOF(measured); i++) {
                uint8_t *digest = measured[i].pcr == MINI_PCR_BOOTSTRAPPER ? c->digest_bootstrapper
                                                                           : c->digest_join_service;
                uint8_t pcr[32] = {};

                snprintf(path, sizeof(path), "%s/%s", c->bin_dir, measured[i].bin);
                r = mini_file_sha256(path, digest);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m (build it with make).", path);
                /* What the TPM holds after one extend onto zero. */
                if (pcr_extend_sha256(pcr, digest) < 0)
                        return log_oom();
                if (!p.pcr[measured[i].pcr].set || memcmp(p.pcr[measured[i].pcr].expected, pcr, 32) != 0) {
                        log_error("%s changed since the cluster came up: a new node would measure it into PCR %u, "
                                  "which the cluster's policy (%s/measurements.json) does not allow, so no join "
                                  "service would admit it. Add nodes with the binaries the cluster runs, or make "
                                  "a new cluster.",
                                  path, measured[i].pcr, c->owner_dir);
                        return -EPERM;
                }
        }
        return 0;
}

/* The next free number of cpN / wN, and the next free address octet. */
static unsigned next_number(const struct mini_cluster *c, enum mini_role role) {
        const char *prefix = role == MINI_WORKER ? "w" : "cp";
        unsigned max = 0;

        for (unsigned i = 0; i < c->n_nodes; i++) {
                unsigned k;
                size_t l = strlen(prefix);
                if (c->nodes[i].role == role && strncmp(c->nodes[i].name, prefix, l) == 0 &&
                    sscanf(c->nodes[i].name + l, "%u", &k) == 1 && k > max)
                        max = k;
        }
        return max + 1;
}

static unsigned next_octet(const struct mini_cluster *c) {
        unsigned max = FIRST_OCTET - 1;

        for (unsigned i = 0; i < c->n_nodes; i++) {
                const char *dot = strrchr(c->nodes[i].address, '.');
                unsigned k;
                if (dot && sscanf(dot + 1, "%u", &k) == 1 && k > max)
                        max = k;
        }
        return max + 1;
}

static int describe_new_nodes(struct mini_cluster *c, unsigned n_cp, unsigned n_workers) {
        unsigned total = n_cp + n_workers, octet = next_octet(c);
        struct mini_node *nodes;

        if (c->n_nodes + total > MINI_MAX_NODES || octet + total - 1 > LAST_OCTET) {
                if (c->n_nodes + total > MINI_MAX_NODES)
                        log_error("Cluster \"%s\" has %u nodes; adding %u would exceed the maximum of %d.", c->name,
                                  c->n_nodes, total, MINI_MAX_NODES);
                else
                        log_error("Cluster \"%s\" has %u nodes; adding %u would exceed the addresses of its /24 "
                                  "(.%d to .%d).",
                                  c->name, c->n_nodes, total, FIRST_OCTET, LAST_OCTET);
                return -E2BIG;
        }
        nodes = realloc(c->nodes, (c->n_nodes + total) * sizeof(*nodes));
        if (!nodes)
                return log_oom();
        c->nodes = nodes;
        for (unsigned k = 0; k < total; k++) {
                enum mini_role role = k < n_cp ? MINI_CONTROL_PLANE : MINI_WORKER;
                unsigned number = next_number(c, role);
                struct mini_node *n = &c->nodes[c->n_nodes];

                *n = (struct mini_node){ .role = role };
                snprintf(n->name, sizeof(n->name), "%s%u", role == MINI_WORKER ? "w" : "cp", number);
                snprintf(n->address, sizeof(n->address), "%u.%u.%u.%u", c->subnet[0], c->subnet[1], c->subnet[2],
                         octet + k);
                snprintf(n->netns, sizeof(n->netns), "arca-%s-%s", c->name, n->name);
                snprintf(n->dir, sizeof(n->dir), "%s/nodes/%s", c->state_dir, n->name);
                c->n_nodes++;
                if (role == MINI_WORKER)
                        c->n_workers++;
                else
                        c->n_cp++;
        }
        return 0;
}

static bool bit(const uint8_t *set, unsigned i) {
        return set[i / 8] & (1u << (i % 8));
}

/* Does every registered node reach every new node over arca0, and every
 * new node every registered one? A node that left the registry (evicted,
 * expired) is no peer of anyone and does not count. */
static bool new_nodes_reached(const struct mini_cluster *c, const struct mini_node_status *st, unsigned first,
                              unsigned *ret_missing) {
        unsigned missing = 0;

        for (unsigned k = first; k < c->n_nodes; k++) {
                /* Also when the registry did not answer this time. */
                if (!st[k].registered) {
                        missing++;
                        continue;
                }
                for (unsigned i = 0; i < c->n_nodes; i++) {
                        if (i == k || !st[i].registered)
                                continue;
                        if (!st[i].mesh_up || !st[k].mesh_up || bit(st[i].unreachable, k) || bit(st[k].unreachable, i))
                                missing++;
                }
        }
        *ret_missing = missing;
        return missing == 0;
}

static int wait_added(struct mini_cluster *c, struct mini_node_status *st, unsigned first, double t0,
                      unsigned timeout, double *ret_registered, double *ret_reached) {
        double deadline = now_s() + timeout, t_reg = 0, last_print = 0;
        unsigned added = c->n_nodes - first, last_joined = ~0u, last_missing = ~0u;

        /* The nodes that were there are not attested again here (status
         * does that); only the new ones, until they hold the lock. */
        for (unsigned i = 0; i < first; i++)
                st[i].joined = true;
        for (;;) {
                unsigned joined = 0, registered = 0, missing = 0;
                bool reached;

                /* Until the join, only the registry (cheap, polled often:
                 * the moment of the join starts the convergence clock). */
                (void) mini_probe(c, st, t_reg > 0, true, false);
                if (c->mesh && t_reg > 0)
                        /* Only pairs with a new node: at N = 30 all pairs
                         * would be 900 echoes per look. */
                        mini_probe_mesh_new(c, st, first);
                for (unsigned k = first; k < c->n_nodes; k++) {
                        joined += st[k].joined;
                        registered += st[k].registered;
                }
                if (t_reg == 0 && registered == added) {
                        t_reg = now_s();
                        mini_progress(c, t0, "joined: %u new node%s in the membership registry", added,
                                      added == 1 ? "" : "s");
                        continue;
                }
                reached = t_reg > 0 && (!c->mesh || new_nodes_reached(c, st, first, &missing));
                if (t_reg > 0 &&
                    (joined != last_joined || missing != last_missing || now_s() - last_print > 5)) {
                        if (c->mesh)
                                mini_progress(c, t0, "attested with the cluster's lock %u/%u; pairs with a new node "
                                                     "not reaching each other over arca0: %u",
                                              joined, added, missing);
                        else
                                mini_progress(c, t0, "attested with the cluster's lock %u/%u", joined, added);
                        last_joined = joined, last_missing = missing, last_print = now_s();
                }
                if (t_reg > 0 && joined == added && reached) {
                        *ret_registered = t_reg;
                        *ret_reached = now_s();
                        return 0;
                }
                for (unsigned k = first; k < c->n_nodes; k++)
                        if (mini_log_has(&c->nodes[k], "Failed to set up the node")) {
                                log_error("Node %s failed to start.", c->nodes[k].name);
                                mini_log_tail(&c->nodes[k], "bootstrapper.log");
                                return -EIO;
                        }
                if (now_s() > deadline) {
                        log_error("The new node%s did not %s within %u s.", added == 1 ? "" : "s",
                                  t_reg == 0 ? "join" : "reach every node", timeout);
                        for (unsigned k = first; k < c->n_nodes; k++)
                                if (!st[k].registered || !st[k].joined)
                                        mini_log_tail(&c->nodes[k], "bootstrapper.log");
                        for (unsigned i = 0; i < c->n_nodes; i++)
                                for (unsigned k = first; k < c->n_nodes && t_reg > 0; k++)
                                        if (i != k && st[i].registered && (bit(st[i].unreachable, k) || !st[i].mesh_up))
                                                log_error("%s does not reach %s over arca0.", c->nodes[i].name,
                                                          c->nodes[k].name);
                        return -ETIMEDOUT;
                }
                usleep(t_reg == 0 ? 50000 : 100000);
        }
}

int mini_add(struct mini_cluster *c, const struct mini_options *o) {
        _cleanup_free_ struct mini_node_status *st = NULL;
        _cleanup_close_ int lock_fd = -1;
        char path[PATH_MAX + 32], nameopt[PATH_MAX + 32];
        unsigned n_cp = o->control_planes_set ? o->control_planes : 0,
                 n_workers = o->workers_set ? o->workers : o->control_planes_set ? 0 : 1, first;
        struct busy busy = {};
        uint8_t lock[32];
        double t0 = now_s(), t_reg, t_reached;
        struct mini_neigh_limits neigh = {};
        uint64_t fulls0 = 0, fulls1 = 0;
        bool have_fulls;
        int r;

        if (o->vm) {
                log_error("--vm (nodes as qemu guests) is not available yet.");
                return 2;
        }
        if (n_cp + n_workers == 0) {
                log_error("Nothing to add: --workers N and --control-planes N are 0.");
                return 2;
        }
        if (geteuid() != 0) {
                log_error("arca mini needs root (network namespaces, bridge).");
                return 1;
        }
        mini_name_option(c, o, nameopt, sizeof(nameopt));
        /* One add at a time: both would take the same names and addresses.
         * Locked before the journal is read, so that this add sees the
         * nodes of an add that ended just before. */
        snprintf(path, sizeof(path), "%s/add.lock", c->state_dir);
        lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd < 0 && errno == ENOENT) {
                log_error("No mini cluster \"%s\" (no %s); make one with arca mini up%s.", c->name, c->state_dir,
                          nameopt);
                return 1;
        }
        if (lock_fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", path), 1;
        if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
                log_error("Another arca mini add%s is running; wait for it.", nameopt);
                return 1;
        }
        r = mini_journal_load(c, find_busy, &busy);
        if (r == -ENOENT) {
                log_error("No mini cluster \"%s\" (no %s); make one with arca mini up%s.", c->name, c->journal,
                          nameopt);
                return 1;
        }
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", c->journal), 1;
        if (c->n_nodes == 0 || mini_expected_pcr15(c, lock) < 0) {
                log_error("Cluster \"%s\" was never initialized (its up stopped early); remove it with arca mini "
                          "down%s.",
                          c->name, nameopt);
                return 1;
        }
        if (busy.pid && streq(busy.kind, "up")) {
                log_error("arca mini up%s (pid %d) is still running; wait for it.", nameopt, busy.pid);
                return 1;
        }
        if (check_binaries(c) < 0)
                return 1;

        first = c->n_nodes;
        if (describe_new_nodes(c, n_cp, n_workers) < 0)
                return 1;
        st = calloc(c->n_nodes, sizeof(*st));
        if (!st)
                return log_oom(), 1;
        /* The journal first: from here on, `down` removes what exists. */
        if (mini_journal_add(c, "add-pid", "%d %llu", (int) getpid(), mini_pid_start_time(getpid())) < 0)
                return 1;
        for (unsigned i = first; i < c->n_nodes; i++)
                if (mini_journal_add(c, "node", "%s %s %s", c->nodes[i].name,
                                     c->nodes[i].role == MINI_WORKER ? "worker" : "control-plane",
                                     c->nodes[i].address) < 0)
                        return 1;

        printf("arca mini \"%s\": adding", c->name);
        for (unsigned i = first; i < c->n_nodes; i++)
                printf(" %s (%s, %s)", c->nodes[i].name,
                       c->nodes[i].role == MINI_WORKER ? "worker" : "control plane", c->nodes[i].address);
        printf(" to its %u node%s\n", first, first == 1 ? "" : "s");
        mini_neigh_report(mini_neigh_ensure(&neigh), &neigh, c->n_nodes);
        have_fulls = mini_neigh_overflows(&fulls0) >= 0;
        fflush(stdout);
        if (mini_create_nodes(c, first) < 0) {
                log_error("Some nodes could not be created (see above).");
                goto fail;
        }
        mini_progress(c, t0, "%u node%s created: network, swtpm, boot measured, attestation key certified; joining",
                      c->n_nodes - first, c->n_nodes - first == 1 ? "" : "s");
        for (unsigned i = first; i < c->n_nodes; i++)
                if (mini_start_node(c, &c->nodes[i], NULL) < 0)
                        goto fail;
        if (o->no_wait)
                return 0;
        if (wait_added(c, st, first, t0, o->timeout, &t_reg, &t_reached) < 0)
                goto fail;

        (void) mini_probe(c, st, true, false, c->mesh);
        printf("\n");
        mini_print_table(c, st);
        /* Dropped packets leave no other trace: say it, or the time
         * below is taken for the mesh's. */
        if (have_fulls && mini_neigh_overflows(&fulls1) >= 0 && fulls1 > fulls0)
                printf("\nWARNING: the host's ARP table was full %llu times during this add: the kernel dropped "
                       "packets between nodes (doorbells, WireGuard handshakes, probes). The nodes' namespaces "
                       "share one table: raise net.ipv4.neigh.default.gc_thresh3 (docs/MINI.md).\n",
                       (unsigned long long) (fulls1 - fulls0));
        printf("\nAdded %u node%s in %.1f s: joined after %.1f s", c->n_nodes - first, c->n_nodes - first == 1 ? "" : "s",
               t_reached - t0, t_reg - t0);
        if (c->mesh)
                /* One line that tools (bench-mini) read. */
                printf("; every node reached %s over arca0 %.2f s after the join.\nconvergence: %.3f s\n",
                       c->n_nodes - first == 1 ? "it" : "them", t_reached - t_reg, t_reached - t_reg);
        else
                printf(" (the nodes run no mesh).\n");
        mini_print_hints(c, nameopt);
        return 0;
fail:
        fprintf(stderr, "arca mini add failed. What it created is recorded in %s;\nremove the cluster with: arca mini "
                        "down%s\n",
                c->journal, nameopt);
        return 1;
}
