/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini up | status | down | verify NODE: a whole cluster on this
 * machine. This machine plays the cloud (bridge, vTPMs, platform CA) and
 * the owner (configuration, policy, `arca init`); the nodes run the real
 * daemons and join by themselves. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mini.h"
#include "pcr11.h"
#include "mini-neigh.h"
#include "openssl-util.h"

static void help(void) {
        printf("Usage: arca mini up [--control-planes N] [--workers N] [OPTIONS]\n"
               "       arca mini add [--workers N] [--control-planes N] [OPTIONS]\n"
               "       arca mini status [OPTIONS]\n"
               "       arca mini verify NODE [-o json] [OPTIONS]\n"
               "       arca mini down [OPTIONS]\n\n"
               "A whole arca cluster on this machine (root). Each node is a network namespace\n"
               "on a bridge with its own software TPM, whose attestation key this machine\n"
               "certifies with a platform CA of its own; the nodes run arca-bootstrapper and\n"
               "join by themselves after `arca init`. `up` waits until every node has joined\n"
               "and prints the cluster; `status` attests every node again; `down` removes\n"
               "everything `up` created, also after an `up` that died halfway. `add` adds nodes\n"
               "to a running cluster (default one worker) and waits until every node reaches\n"
               "them over the mesh; the cluster's --subnet, --driver and mesh and firewall\n"
               "options are up's (add refuses them).\n\n"
               "  --name NAME            cluster name, 1-%d of [a-z0-9] (default mini)\n"
               "  --state-dir DIR        where mini keeps its state (default %s/NAME)\n"
               "  --control-planes N     control-plane nodes (default 1)\n"
               "  --workers N            worker nodes (default 2)\n"
               "  --subnet A.B.C.0/24    underlay network (default 10.66.0.0/24)\n"
               "  --driver NAME          control plane: kubeadm or etcd (default: kubeadm if\n"
               "                         installed, else etcd)\n"
               "  --timeout SECONDS      how long `up` waits for the cluster (default 120)\n"
               "  --no-wait              `up` returns once the nodes are started\n"
               "  --no-mesh              do not run the WireGuard mesh on the nodes\n"
               "  --mesh                 run it even if the binaries look unable to form a\n"
               "                         full mesh (default: run it when they can)\n"
               "  --no-firewall          with the mesh, do not run the nftables firewall (table\n"
               "                         inet arca, on by default: docs/MINI.md)\n"
               "  --vm                   nodes as qemu guests (not available yet)\n",
               MINI_NAME_MAX, MINI_STATE_ROOT);
}

static bool valid_mini_name(const char *s) {
        size_t n = strlen(s);
        return n >= 1 && n <= MINI_NAME_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789") == n;
}

static int parse_subnet(const char *s, unsigned ret[3]) {
        unsigned a, b, c, d, len;
        char tail;

        if (sscanf(s, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &len, &tail) != 5 || a > 255 || b > 255 || c > 255 ||
            d != 0 || len != 24)
                return -EINVAL;
        ret[0] = a, ret[1] = b, ret[2] = c;
        return 0;
}

static bool in_path(const char *bin) {
        const char *path = getenv("PATH");
        char buf[PATH_MAX];

        if (!path)
                path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
        while (*path) {
                size_t len = strcspn(path, ":");
                snprintf(buf, sizeof(buf), "%.*s/%s", (int) len, path, bin);
                if (access(buf, X_OK) == 0)
                        return true;
                path += len + (path[len] == ':');
        }
        return false;
}

/* Is `line` one of the lines of text? */
static bool has_line(const char *text, const char *line) {
        size_t l = strlen(line);
        for (const char *p = text; (p = strstr(p, line)); p += l)
                if ((p == text || p[-1] == '\n') && (p[l] == '\n' || p[l] == 0))
                        return true;
        return false;
}

/* Can these binaries form a full mesh? The bootstrapper must run the mesh
 * agent (--mesh, docs/MESH.md) and the join service must serve the mesh
 * refresh (POST /v1/mesh), through which members learn of later joiners:
 * it says so in `arca-join-service --features`. NULL if so, else what is
 * missing. */
static const char *mesh_support(const struct mini_cluster *c) {
        _cleanup_free_ char *out = NULL;
        char path[PATH_MAX + 32];

        snprintf(path, sizeof(path), "%s/arca-bootstrapper", c->bin_dir);
        if (mini_exec((char *[]){ path, "--help", NULL }, &out) != 0 || !out || !strstr(out, "--mesh BACKEND"))
                return "this arca-bootstrapper has no --mesh";
        snprintf(path, sizeof(path), "%s/arca-join-service", c->bin_dir);
        out = mfree(out);
        if (mini_exec((char *[]){ path, "--features", NULL }, &out) != 0 || !out || !has_line(out, "mesh"))
                return "this arca-join-service does not serve the mesh refresh (no \"mesh\" in its --features), so "
                       "members would never learn of later joiners; --mesh runs it anyway";
        return NULL;
}

/* The kernel registers a block major "device-mapper" when it has dm. */
static bool have_device_mapper(void) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        return read_full_file("/proc/devices", 64 * 1024, &text, &len) >= 0 && strstr(text, "device-mapper");
}

int mini_file_sha256(const char *path, uint8_t out[32]) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r;

        r = read_full_file(path, 1024 * 1024 * 1024, &data, &len);
        if (r < 0)
                return r;
        return sha256(data, len, out);
}

static int subnet_in_use(const unsigned subnet[3], char ret_ifname[IFNAMSIZ]) {
        struct ifaddrs *ifa, *i;
        int found = 0;

        if (getifaddrs(&ifa) < 0)
                return -errno;
        for (i = ifa; i; i = i->ifa_next) {
                const uint8_t *a;
                if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
                        continue;
                a = (const uint8_t *) &((struct sockaddr_in *) i->ifa_addr)->sin_addr;
                if (a[0] == subnet[0] && a[1] == subnet[1] && a[2] == subnet[2]) {
                        snprintf(ret_ifname, IFNAMSIZ, "%s", i->ifa_name);
                        found = 1;
                        break;
                }
        }
        freeifaddrs(ifa);
        return found;
}

static void describe_nodes(struct mini_cluster *c, const struct mini_options *o) {
        c->n_cp = o->control_planes;
        c->n_workers = o->workers;
        c->n_nodes = c->n_cp + c->n_workers;
        for (unsigned i = 0; i < c->n_nodes; i++) {
                struct mini_node *n = &c->nodes[i];
                bool cp = i < c->n_cp;
                snprintf(n->name, sizeof(n->name), "%s%u", cp ? "cp" : "w", cp ? i + 1 : i - c->n_cp + 1);
                n->role = cp ? MINI_CONTROL_PLANE : MINI_WORKER;
                snprintf(n->address, sizeof(n->address), "%u.%u.%u.%u", c->subnet[0], c->subnet[1], c->subnet[2],
                         11 + i);
                snprintf(n->netns, sizeof(n->netns), "arca-%s-%s", c->name, n->name);
                snprintf(n->dir, sizeof(n->dir), "%s/nodes/%s", c->state_dir, n->name);
        }
}

static int run_self(const struct mini_cluster *c, const char *log_path, char *const *args) {
        _cleanup_free_ char *out = NULL;
        char *argv[32];
        size_t n = 0;
        int r;

        argv[n++] = (char *) c->self;
        for (; *args && n < ELEMENTSOF(argv) - 1; args++)
                argv[n++] = *args;
        argv[n] = NULL;
        r = mini_exec(argv, &out);
        if (out && log_path)
                (void) write_file_atomic(log_path, out, strlen(out), 0600);
        if (r != 0 && out)
                fprintf(stderr, "%s", out);
        return r == 0 ? 0 : r < 0 ? r : -EIO;
}

static int write_policy(const struct mini_cluster *c) {
        _cleanup_free_ char *path = NULL;
        char text[4096], hex[65];
        size_t len = 0;

        len += snprintf(text + len, sizeof(text) - len, "{\n");
        for (unsigned i = 0; i <= 14; i++) {
                uint8_t pcr[32] = {};
                const uint8_t *d = i == MINI_PCR_BOOTSTRAPPER   ? c->digest_bootstrapper
                                   : i == MINI_PCR_JOIN_SERVICE ? c->digest_join_service
                                                                : NULL;
                /* What the TPM holds after one extend of d onto zero. */
                if (d && pcr_extend_sha256(pcr, d) < 0)
                        return -EIO;
                hex_encode_buf(pcr, 32, hex);
                len += snprintf(text + len, sizeof(text) - len, "  \"%u\": {\"expected\": \"%s\", \"warnOnly\": false}%s\n",
                                i, hex, i == 14 ? "" : ",");
        }
        len += snprintf(text + len, sizeof(text) - len, "}\n");
        if (asprintf(&path, "%s/measurements.json", c->owner_dir) < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, len, 0644);
}

bool mini_log_has(const struct mini_node *n, const char *what) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len;

        if (asprintf(&path, "%s/bootstrapper.log", n->dir) < 0 || read_full_file(path, 64 * 1024 * 1024, &text, &len) < 0)
                return false;
        return strstr(text, what) != NULL;
}

void mini_log_tail(const struct mini_node *n, const char *file) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t len;
        const char *p;
        int lines = 0;

        if (asprintf(&path, "%s/%s", n->dir, file) < 0 || read_full_file(path, 64 * 1024 * 1024, &text, &len) < 0)
                return;
        for (p = text + len; p > text; p--)
                if (p[-1] == '\n' && ++lines > 8)
                        break;
        fprintf(stderr, "--- %s (last lines) ---\n%s", path, p);
}

int mini_start_node(struct mini_cluster *c, const struct mini_node *n, const char *hash) {
        char bootstrapper[PATH_MAX + 32], join_service[PATH_MAX + 32], state[PATH_MAX + 8], ca[PATH_MAX + 32],
                joins[16][32];
        char *argv[64];
        size_t k = 0, nj = 0;

        snprintf(bootstrapper, sizeof(bootstrapper), "%s/arca-bootstrapper", c->bin_dir);
        snprintf(join_service, sizeof(join_service), "%s/arca-join-service", c->bin_dir);
        snprintf(state, sizeof(state), "%s/state", n->dir);
        snprintf(ca, sizeof(ca), "%s/platform-ca.pem", c->ca_dir);
        argv[k++] = bootstrapper;
        argv[k++] = "--tcti";
        argv[k++] = MINI_TCTI;
        argv[k++] = "--state-dir";
        argv[k++] = state;
        argv[k++] = "--node-name";
        argv[k++] = (char *) n->name;
        argv[k++] = "--underlay";
        argv[k++] = (char *) n->address;
        argv[k++] = "--platform-ca";
        argv[k++] = ca;
        argv[k++] = "--join-service";
        argv[k++] = join_service;
        argv[k++] = "--role";
        argv[k++] = n->role == MINI_WORKER ? "worker" : "control-plane";
        if (c->mesh) {
                argv[k++] = "--mesh";
                argv[k++] = "auto";
        }
        if (c->firewall)
                argv[k++] = "--firewall";
        if (hash) {
                argv[k++] = "--init-secret-hash";
                argv[k++] = (char *) hash;
        } else
                /* Every control-plane node runs a join service. */
                for (unsigned i = 0; i < c->n_nodes && nj < ELEMENTSOF(joins); i++)
                        if (c->nodes[i].role == MINI_CONTROL_PLANE && &c->nodes[i] != n) {
                                snprintf(joins[nj], sizeof(joins[nj]), "%s:%d", c->nodes[i].address, MINI_JOIN_PORT);
                                argv[k++] = "--join";
                                argv[k++] = joins[nj++];
                        }
        argv[k] = NULL;
        return c->ops->node_start(c, n, argv);
}

void mini_progress(const struct mini_cluster *c, double t0, const char *fmt, ...) {
        va_list ap;
        printf("[%5.1fs] ", now_s() - t0);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

int mini_create_nodes(struct mini_cluster *c, unsigned first) {
        pid_t *pids = calloc(c->n_nodes, sizeof(pid_t)), parent = getpid();
        int failed = 0;

        if (!pids)
                return log_oom();
        fflush(NULL);
        for (unsigned i = first; i < c->n_nodes; i++) {
                pids[i] = fork();
                if (pids[i] < 0) {
                        failed++;
                        break;
                }
                if (pids[i] == 0) {
                        mini_die_with_parent(parent);
                        _exit(c->ops->node_create(c, &c->nodes[i]) < 0 ? 1 : 0);
                }
        }
        for (unsigned i = first; i < c->n_nodes; i++) {
                int status;
                if (pids[i] <= 0)
                        continue;
                while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
                        ;
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failed++;
        }
        free(pids);
        return failed ? -EIO : 0;
}

static int wait_cluster(struct mini_cluster *c, struct mini_node_status *st, double t0, unsigned timeout) {
        double deadline = now_s() + timeout, last_print = 0;
        bool mesh_seen = false;
        unsigned last_joined = ~0u, last_reg = ~0u, last_mesh = ~0u;

        for (;;) {
                unsigned joined = 0, reg = 0, meshed = 0, mesh_nodes = 0;

                (void) mini_probe(c, st, true, true, c->mesh);
                for (unsigned i = 0; i < c->n_nodes; i++) {
                        joined += st[i].joined;
                        reg += st[i].registered;
                        if (st[i].mesh_up) {
                                mesh_seen = true;
                                mesh_nodes++;
                                meshed += st[i].peers_reachable == (int) c->n_nodes - 1;
                        }
                }
                if (joined != last_joined || reg != last_reg || meshed != last_mesh ||
                    now_s() - last_print > 5) {
                        if (mesh_seen || c->mesh)
                                mini_progress(c, t0, "joined and attested %u/%u, registered %u/%u, full mesh %u/%u", joined,
                                         c->n_nodes, reg, c->n_nodes, meshed, c->n_nodes);
                        else
                                mini_progress(c, t0, "joined and attested %u/%u, registered %u/%u", joined, c->n_nodes, reg,
                                         c->n_nodes);
                        last_joined = joined, last_reg = reg, last_mesh = meshed, last_print = now_s();
                }
                if (joined == c->n_nodes && reg == c->n_nodes && ((!c->mesh && !mesh_seen) || meshed == c->n_nodes))
                        return 0;
                for (unsigned i = 0; i < c->n_nodes; i++)
                        if (mini_log_has(&c->nodes[i], "Failed to set up the node")) {
                                log_error("Node %s failed to start.", c->nodes[i].name);
                                mini_log_tail(&c->nodes[i], "bootstrapper.log");
                                return -EIO;
                        }
                if (now_s() > deadline) {
                        log_error("The cluster did not form within %u s.", timeout);
                        for (unsigned i = 0; i < c->n_nodes; i++)
                                if (!st[i].joined || !st[i].registered)
                                        mini_log_tail(&c->nodes[i], "bootstrapper.log");
                                else if (c->mesh && st[i].peers_reachable != (int) c->n_nodes - 1)
                                        log_error("%s reaches %d of its %u mesh peers over arca0 (%s).",
                                                  c->nodes[i].name, st[i].peers_reachable < 0 ? 0 : st[i].peers_reachable,
                                                  c->n_nodes - 1, st[i].mesh_up ? "arca0 is up" : "no arca0");
                        return -ETIMEDOUT;
                }
                usleep(200000);
        }
}

static bool in_path(const char *bin);

void mini_print_hints(const struct mini_cluster *c, const char *name_opt) {
        /* The command as the user can type it: "arca" only if PATH finds this one. */
        const char *arca = in_path("arca") ? "arca" : c->self;
        printf("\nVerify a node:  %s mini verify %s%s\n                (that is: %s verify --node %s --config %s)\n",
               arca, c->nodes[c->n_nodes - 1].name, name_opt, arca, c->nodes[c->n_nodes - 1].address, c->conf);
        printf("Status:         %s mini status%s\n", arca, name_opt);
        printf("Tear down:      %s mini down%s\n", arca, name_opt);
        printf("Owner files:    %s (configuration, secrets, admin credential)\n", c->owner_dir);
        printf("Node logs:      %s/nodes/NODE/bootstrapper.log\n", c->state_dir);
}

const char *mini_name_option(const struct mini_cluster *c, const struct mini_options *o, char *buf, size_t size) {
        size_t k = 0;
        buf[0] = 0;
        if (!streq(c->name, "mini"))
                k += snprintf(buf + k, size - k, " --name %s", c->name);
        if (o->state_dir)
                snprintf(buf + k, size - k, " --state-dir %s", o->state_dir);
        return buf;
}

static int mini_up(struct mini_cluster *c, const struct mini_options *o) {
        _cleanup_free_ struct mini_node_status *st = NULL;
        char path[PATH_MAX + 64], ifname[IFNAMSIZ], hash[65] = "", nameopt[PATH_MAX + 32];
        const char *mesh_why;
        _cleanup_free_ char *gen = NULL;
        double t0 = now_s();
        const char *p;
        int r;

        if (o->vm) {
                log_error("--vm (nodes as qemu guests) is not available yet; run without --vm for network namespaces.");
                return 2;
        }
        if (o->control_planes < 1 || o->control_planes + o->workers > MINI_MAX_NODES) {
                log_error("Need 1 to %d nodes, at least one control plane.", MINI_MAX_NODES);
                return 2;
        }
        if (geteuid() != 0) {
                log_error("arca mini needs root (network namespaces, bridge).");
                return 1;
        }
        if (access("/usr/bin/swtpm", X_OK) < 0 || !in_path("ip")) {
                log_error("arca mini needs swtpm and ip (packages swtpm, iproute2; scripts/install-deps.sh).");
                return 1;
        }
        snprintf(path, sizeof(path), "%s/arca-bootstrapper", c->bin_dir);
        if ((r = mini_file_sha256(path, c->digest_bootstrapper)) < 0) {
                log_error_errno(r, "Cannot read %s: %m (build it with make).", path);
                return 1;
        }
        snprintf(path, sizeof(path), "%s/arca-join-service", c->bin_dir);
        if ((r = mini_file_sha256(path, c->digest_join_service)) < 0) {
                log_error_errno(r, "Cannot read %s: %m (build it with make).", path);
                return 1;
        }
        mesh_why = mesh_support(c);
        c->mesh = !o->no_mesh && (o->mesh || !mesh_why);
        /* The control plane (etcd, registry) runs on mesh addresses, so the
         * firewall may drop everything between nodes' underlay addresses
         * but WireGuard and the arca ports, whatever the number of
         * control-plane nodes. */
        c->firewall = c->mesh && !o->no_firewall;
        if (o->driver)
                snprintf(c->driver, sizeof(c->driver), "%s", o->driver);
        else
                snprintf(c->driver, sizeof(c->driver), "%s", in_path("kubeadm") ? "kubeadm" : "etcd");
        if (streq(c->driver, "etcd") && access("/usr/bin/etcd", X_OK) < 0 && !in_path("etcd")) {
                log_error("The etcd driver needs etcd (package etcd-server).");
                return 1;
        }
        if (parse_subnet(o->subnet, c->subnet) < 0) {
                log_error("Invalid --subnet \"%s\": expected A.B.C.0/24.", o->subnet);
                return 2;
        }
        snprintf(c->host_address, sizeof(c->host_address), "%u.%u.%u.1", c->subnet[0], c->subnet[1], c->subnet[2]);
        if (access(c->journal, F_OK) == 0 || access(c->state_dir, F_OK) == 0) {
                log_error("A mini cluster \"%s\" exists already (%s); remove it with 'arca mini down%s'.", c->name,
                          c->state_dir, mini_name_option(c, o, nameopt, sizeof(nameopt)));
                return 1;
        }
        if (subnet_in_use(c->subnet, ifname) > 0) {
                log_error("Subnet %s is in use on this machine (interface %s); choose another with --subnet.",
                          o->subnet, ifname);
                return 1;
        }
        snprintf(path, sizeof(path), "/sys/class/net/%s", c->bridge);
        if (access(path, F_OK) == 0) {
                log_error("Interface %s exists already; choose another --name.", c->bridge);
                return 1;
        }
        c->nodes = calloc(o->control_planes + o->workers, sizeof(*c->nodes));
        st = calloc(o->control_planes + o->workers, sizeof(*st));
        if (!c->nodes || !st)
                return log_oom(), 1;
        describe_nodes(c, o);
        mini_name_option(c, o, nameopt, sizeof(nameopt));

        /* The journal first: from here on, `down` can remove what exists. */
        if ((r = mkdir_p(c->state_dir, 0700)) < 0)
                return log_error_errno(r, "Cannot create %s: %m", c->state_dir), 1;
        if (mini_journal_add(c, "cluster", "%s", c->name) < 0 ||
            mini_journal_add(c, "up-pid", "%d %llu", (int) getpid(), mini_pid_start_time(getpid())) < 0 ||
            mini_journal_add(c, "launcher", "%s", c->ops->name) < 0 ||
            mini_journal_add(c, "subnet", "%u.%u.%u", c->subnet[0], c->subnet[1], c->subnet[2]) < 0 ||
            mini_journal_add(c, "driver", "%s", c->driver) < 0 ||
            mini_journal_add(c, "mesh", "%s", c->mesh ? "on" : "off") < 0 ||
            mini_journal_add(c, "firewall", "%s", c->firewall ? "on" : "off") < 0)
                return 1;
        for (unsigned i = 0; i < c->n_nodes; i++)
                if (mini_journal_add(c, "node", "%s %s %s", c->nodes[i].name,
                                     c->nodes[i].role == MINI_WORKER ? "worker" : "control-plane",
                                     c->nodes[i].address) < 0)
                        return 1;

        printf("arca mini \"%s\": %u node%s (%u control plane%s, %u worker%s), one network namespace each, on "
               "bridge %s (%s/24)\n",
               c->name, c->n_nodes, c->n_nodes == 1 ? "" : "s", c->n_cp, c->n_cp == 1 ? "" : "s", c->n_workers,
               c->n_workers == 1 ? "" : "s", c->bridge, c->host_address);
        if (!o->driver && streq(c->driver, "etcd"))
                printf("  control plane: etcd (kubeadm is not installed: a standalone etcd cluster on the control-plane "
                       "nodes instead of Kubernetes)\n");
        else
                printf("  control plane: %s\n", c->driver);
        printf("  state disks:   none. %s nodes keep their state unencrypted in %s/nodes/NODE/state "
               "(qemu guests with LUKS2 disks: --vm, to come).\n",
               have_device_mapper() ? "Network-namespace nodes have no disk of their own:"
                                     : "This machine has no device-mapper (no dm-crypt), so",
               c->state_dir);
        if (c->mesh)
                printf("  mesh:          WireGuard arca0 on every node (%s)\n",
                       access("/sys/module/wireguard", F_OK) == 0 ? "kernel WireGuard"
                                                                  : "wireguard-go: this kernel has no WireGuard");
        else
                printf("  mesh:          none (%s)\n", o->no_mesh ? "--no-mesh" : mesh_why);
        if (c->firewall)
                printf("  firewall:      nftables table inet arca on every node: between nodes' underlay addresses only "
                       "WireGuard and the arca ports (9000, 30090, 9999); everything else over arca0\n");
        else
                printf("  firewall:      off (%s)\n", !c->mesh ? "it needs the mesh" : "--no-firewall");
        printf("  measurements:  PCR %d = arca-bootstrapper, PCR %d = arca-join-service (the binaries in %s); "
               "PCRs 0-14 enforced\n",
               MINI_PCR_BOOTSTRAPPER, MINI_PCR_JOIN_SERVICE, c->bin_dir);
        {
                /* Without room in the host's shared ARP table, packets
                 * between nodes vanish (cli/mini-neigh.h). */
                struct mini_neigh_limits nl = {};
                mini_neigh_report(mini_neigh_ensure(&nl), &nl, c->n_nodes);
        }
        fflush(stdout);

        /* The platform: a CA that certifies every node's attestation key. */
        if (run_self(c, NULL, (char *[]){ "platform", "create-ca", "--dir", c->ca_dir, NULL }) < 0) {
                log_error("Cannot create the platform CA.");
                goto fail;
        }
        if (c->ops->network_create(c) < 0)
                goto fail;
        if (mini_create_nodes(c, 0) < 0) {
                log_error("Some nodes could not be created (see above).");
                goto fail;
        }
        mini_progress(c, t0, "%u nodes created: network, swtpm, boot measured, attestation key certified", c->n_nodes);

        /* The owner: configuration, secrets, measurement policy. */
        snprintf(path, sizeof(path), "%s/generate.log", c->owner_dir);
        if (mkdir_p(c->owner_dir, 0700) < 0 ||
            run_self(c, path,
                     (char *[]){ "config", "generate", "--dir", c->owner_dir, "--name", c->name, "--init",
                                 c->nodes[0].address, "--driver", c->driver, "--platform-ca",
                                 "../ca/platform-ca.pem", NULL }) < 0) {
                log_error("Cannot generate the cluster configuration.");
                goto fail;
        }
        if (read_full_file(path, 64 * 1024, &gen, NULL) < 0 || !(p = strstr(gen, "init-secret-hash: ")) ||
            sscanf(p, "init-secret-hash: %64[0-9a-f]", hash) != 1 || strlen(hash) != 64) {
                log_error("No init-secret-hash in %s.", path);
                goto fail;
        }
        if ((r = write_policy(c)) < 0) {
                log_error_errno(r, "Cannot write the measurement policy: %m");
                goto fail;
        }

        /* The first node, then init, then everyone else joins. */
        if (mini_start_node(c, &c->nodes[0], hash) < 0)
                goto fail;
        for (double until = now_s() + 30; !mini_log_has(&c->nodes[0], "READY"); usleep(20000))
                if (now_s() > until || mini_log_has(&c->nodes[0], "Failed")) {
                        log_error("Node %s did not start.", c->nodes[0].name);
                        mini_log_tail(&c->nodes[0], "bootstrapper.log");
                        goto fail;
                }
        mini_progress(c, t0, "%s: bootstrapper ready; arca init --config %s", c->nodes[0].name, c->conf);
        snprintf(path, sizeof(path), "%s/init.log", c->owner_dir);
        if (run_self(c, path, (char *[]){ "init", "--config", c->conf, NULL }) < 0) {
                log_error("arca init failed (see above and %s).", path);
                mini_log_tail(&c->nodes[0], "bootstrapper.log");
                goto fail;
        }
        mini_progress(c, t0, "cluster initialized on %s; starting %u more node%s", c->nodes[0].name, c->n_nodes - 1,
                 c->n_nodes == 2 ? "" : "s");
        for (unsigned i = 1; i < c->n_nodes; i++)
                if (mini_start_node(c, &c->nodes[i], NULL) < 0)
                        goto fail;
        if (o->no_wait)
                return 0;
        if (wait_cluster(c, st, t0, o->timeout) < 0)
                goto fail;
        (void) mini_probe(c, st, true, false, c->mesh);
        printf("\n");
        mini_print_table(c, st);
        printf("\nCluster \"%s\" formed in %.1f s: %u node%s joined, each attested (PCR 15 = this cluster's "
               "lock)%s.\n",
               c->name, now_s() - t0, c->n_nodes, c->n_nodes == 1 ? "" : "s",
               c->mesh ? ", every node reaches every peer over the WireGuard mesh" : "");
        mini_print_hints(c, nameopt);
        return 0;
fail:
        fprintf(stderr, "arca mini up failed. Everything it created is recorded in %s;\nremove it with: arca mini down%s\n",
                c->journal, nameopt);
        return 1;
}

static int load(struct mini_cluster *c) {
        int r = mini_journal_load(c, NULL, NULL);
        if (r == -ENOENT) {
                log_error("No mini cluster \"%s\" (no %s).", c->name, c->journal);
                return 1;
        }
        if (r < 0) {
                log_error_errno(r, "Cannot read %s: %m", c->journal);
                return 1;
        }
        if (c->n_nodes == 0) {
                log_error("%s names no nodes (up stopped early); remove it with arca mini down.", c->journal);
                return 1;
        }
        return 0;
}

static int mini_status(struct mini_cluster *c, const struct mini_options *o) {
        _cleanup_free_ struct mini_node_status *st = NULL;
        char nameopt[PATH_MAX + 32];
        unsigned verified = 0, joined = 0;

        if (load(c))
                return 1;
        st = calloc(c->n_nodes, sizeof(*st));
        if (!st)
                return log_oom(), 1;
        (void) mini_probe(c, st, true, false, true);
        printf("arca mini \"%s\": %u nodes, control plane %s, bridge %s\n\n", c->name, c->n_nodes, c->driver,
               c->bridge);
        mini_print_table(c, st);
        for (unsigned i = 0; i < c->n_nodes; i++) {
                verified += st[i].verified;
                joined += st[i].joined;
        }
        printf("\n%u/%u nodes verified, %u/%u joined.\n", verified, c->n_nodes, joined, c->n_nodes);
        mini_print_hints(c, mini_name_option(c, o, nameopt, sizeof(nameopt)));
        return verified == c->n_nodes && joined == c->n_nodes ? 0 : 1;
}

static int mini_verify(struct mini_cluster *c, const char *node, int argc, char **argv) {
        char *vargv[16];
        int k = 0;

        if (load(c))
                return 1;
        for (unsigned i = 0; i < c->n_nodes; i++)
                if (streq(c->nodes[i].name, node)) {
                        vargv[k++] = "verify";
                        vargv[k++] = "--node";
                        vargv[k++] = c->nodes[i].address;
                        vargv[k++] = "--config";
                        vargv[k++] = c->conf;
                        for (int j = 0; j < argc && k < 15; j++)
                                vargv[k++] = argv[j];
                        vargv[k] = NULL;
                        printf("arca verify --node %s --config %s\n", c->nodes[i].address, c->conf);
                        fflush(stdout);
                        return verb_verify(k, vargv);
                }
        log_error("No node \"%s\" in mini cluster \"%s\".", node, c->name);
        return 2;
}

struct resources {
        char (*lines)[2][300];
        size_t n;
};

static int collect(const char *kind, const char *value, void *u) {
        struct resources *res = u;
        void *p = realloc(res->lines, (res->n + 1) * sizeof(*res->lines));
        if (!p)
                return -ENOMEM;
        res->lines = p;
        snprintf(res->lines[res->n][0], sizeof(res->lines[0][0]), "%s", kind);
        snprintf(res->lines[res->n][1], sizeof(res->lines[0][1]), "%s", value);
        res->n++;
        return 0;
}

static int mini_down(struct mini_cluster *c) {
        static const char *const order[] = { "pid", "netns", "link", "bridge" };
        struct resources res = {};
        int r, failed = 0;

        r = mini_journal_load(c, collect, &res);
        if (r == -ENOENT) {
                if (access(c->state_dir, F_OK) == 0) {
                        r = mini_rm_rf(c->state_dir);
                        printf("Removed %s (no journal).\n", c->state_dir);
                        return r < 0 ? 1 : 0;
                }
                printf("No mini cluster \"%s\" (nothing in %s).\n", c->name, c->state_dir);
                return 0;
        }
        if (r < 0) {
                free(res.lines);
                return log_error_errno(r, "Cannot read %s: %m", c->journal), 1;
        }
        /* Whoever could still create things goes first: an `up` in
         * progress (its helpers die with it). Then read the journal again,
         * (or an `add`), with what it wrote until it died, and remove processes, then
         * namespaces and links. */
        for (size_t i = 0; i < res.n; i++) {
                int pid;
                unsigned long long start;
                if ((streq(res.lines[i][0], "up-pid") || streq(res.lines[i][0], "add-pid")) && sscanf(res.lines[i][1], "%d %llu", &pid, &start) == 2 &&
                    pid != getpid() && start != 0)
                        mini_kill(pid, start, 0);
        }
        free(res.lines);
        res = (struct resources){};
        mini_cluster_done(c);
        c->n_nodes = c->n_cp = c->n_workers = 0;
        r = mini_journal_load(c, collect, &res);
        if (r < 0) {
                free(res.lines);
                return log_error_errno(r, "Cannot read %s: %m", c->journal), 1;
        }
        for (size_t k = 0; k < ELEMENTSOF(order); k++)
                for (size_t i = res.n; i-- > 0;)
                        if (streq(res.lines[i][0], order[k]) && c->ops->remove(res.lines[i][0], res.lines[i][1]) < 0)
                                failed++;
        free(res.lines);
        if (failed) {
                log_error("%d resource(s) could not be removed; the journal %s is kept, run down again.", failed,
                          c->journal);
                return 1;
        }
        r = mini_rm_rf(c->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot remove %s: %m", c->state_dir), 1;
        printf("Mini cluster \"%s\" removed: %u node%s, namespaces, processes, bridge %s and %s.\n", c->name,
               c->n_nodes, c->n_nodes == 1 ? "" : "s", c->bridge, c->state_dir);
        return 0;
}

static int parse_count(const char *s, unsigned *ret) {
        char *end;
        unsigned long v;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || end == s || v > MINI_MAX_NODES)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

int verb_mini(int argc, char **argv) {
        enum { ARG_NAME = 256, ARG_STATE, ARG_CP, ARG_W, ARG_SUBNET, ARG_DRIVER, ARG_TIMEOUT, ARG_VM, ARG_NOWAIT,
               ARG_NOMESH, ARG_MESH, ARG_NOFW };
        static const struct option opts[] = {
                { "name", required_argument, NULL, ARG_NAME },
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "control-planes", required_argument, NULL, ARG_CP },
                { "workers", required_argument, NULL, ARG_W },
                { "subnet", required_argument, NULL, ARG_SUBNET },
                { "driver", required_argument, NULL, ARG_DRIVER },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "vm", no_argument, NULL, ARG_VM },
                { "no-wait", no_argument, NULL, ARG_NOWAIT },
                { "no-mesh", no_argument, NULL, ARG_NOMESH },
                { "mesh", no_argument, NULL, ARG_MESH },
                { "no-firewall", no_argument, NULL, ARG_NOFW },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct mini_options o = {
                .name = "mini", .subnet = "10.66.0.0/24", .control_planes = 1, .workers = 2, .timeout = 120,
        };
        struct mini_cluster c = { .ops = &mini_netns_ops };
        const char *sub, *node = NULL, *output = NULL, *up_only = NULL;
        char *vextra[2];
        int nextra = 0, ch, ret;

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                help();
                return argc < 2 ? 2 : 0;
        }
        sub = argv[1];
        optind = 0;
        while ((ch = getopt_long(argc - 1, argv + 1, "ho:", opts, NULL)) >= 0)
                switch (ch) {
                case ARG_NAME: o.name = optarg; break;
                case ARG_STATE: o.state_dir = optarg; break;
                case ARG_CP:
                        if (parse_count(optarg, &o.control_planes) < 0) {
                                log_error("Invalid --control-planes \"%s\": 1 to %d.", optarg, MINI_MAX_NODES);
                                return 2;
                        }
                        o.control_planes_set = true;
                        break;
                case ARG_W:
                        if (parse_count(optarg, &o.workers) < 0) {
                                log_error("Invalid --workers \"%s\": 0 to %d.", optarg, MINI_MAX_NODES - 1);
                                return 2;
                        }
                        o.workers_set = true;
                        break;
                case ARG_SUBNET:
                        o.subnet = optarg;
                        up_only = "--subnet";
                        break;
                case ARG_DRIVER:
                        if (!streq(optarg, "kubeadm") && !streq(optarg, "etcd")) {
                                log_error("Invalid --driver \"%s\": kubeadm or etcd.", optarg);
                                return 2;
                        }
                        o.driver = optarg;
                        up_only = "--driver";
                        break;
                case ARG_TIMEOUT:
                        if (parse_count(optarg, &o.timeout) < 0 || o.timeout == 0) {
                                unsigned long v = strtoul(optarg, NULL, 10);
                                if (v == 0 || v > 86400) {
                                        log_error("Invalid --timeout \"%s\".", optarg);
                                        return 2;
                                }
                                o.timeout = (unsigned) v;
                        }
                        break;
                case ARG_VM: o.vm = true; break;
                case ARG_NOWAIT: o.no_wait = true; break;
                case ARG_NOMESH: o.no_mesh = true; up_only = "--no-mesh"; break;
                case ARG_MESH: o.mesh = true; up_only = "--mesh"; break;
                case ARG_NOFW: o.no_firewall = true; up_only = "--no-firewall"; break;
                case 'o': output = optarg; break;
                case 'h': help(); return 0;
                default: return 2;
                }
        /* The cluster's network, driver, mesh and firewall are up's, kept
         * in its journal: add takes them from there. */
        if (streq(sub, "add") && up_only) {
                log_error("%s is set by arca mini up for the whole cluster; arca mini add takes the cluster's.",
                          up_only);
                return 2;
        }
        if (streq(sub, "verify")) {
                if (optind < argc - 1)
                        node = argv[1 + optind++];
        }
        if (optind < argc - 1) {
                log_error("Unexpected argument \"%s\".", argv[1 + optind]);
                return 2;
        }
        if (!valid_mini_name(o.name)) {
                log_error("Invalid --name \"%s\": 1-%d lowercase letters and digits.", o.name, MINI_NAME_MAX);
                return 2;
        }
        if (o.state_dir && o.state_dir[0] != '/') {
                log_error("--state-dir must be an absolute path.");
                return 2;
        }
        if (mini_cluster_paths(&c, o.name, o.state_dir) < 0) {
                log_error("--state-dir is too long.");
                return 2;
        }
        setenv("TSS2_LOG", "all+none", 0);

        if (streq(sub, "up"))
                ret = mini_up(&c, &o);
        else if (streq(sub, "add"))
                ret = mini_add(&c, &o);
        else if (streq(sub, "status"))
                ret = mini_status(&c, &o);
        else if (streq(sub, "down"))
                ret = mini_down(&c);
        else if (streq(sub, "verify")) {
                if (!node) {
                        log_error("arca mini verify needs a node name (e.g. cp1, w1).");
                        return 2;
                }
                if (output) {
                        vextra[nextra++] = "-o";
                        vextra[nextra++] = (char *) output;
                }
                ret = mini_verify(&c, node, nextra, vextra);
        } else {
                log_error("Unknown mini command \"%s\": up, add, status, verify or down.", sub);
                ret = 2;
        }
        mini_cluster_done(&c);
        return ret;
}
