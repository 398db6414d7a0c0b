/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* arca mini: a whole cluster on one machine. This header is internal to the
 * CLI: the cluster description, the journal of what was created, and the
 * node launcher interface (struct mini_node_ops) with its network-namespace
 * implementation; a qemu implementation (--vm) fills the same interface. */

#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"
#include "time-util.h"

#define MINI_NAME_MAX 8
#define MINI_MAX_NODES 200
#define MINI_STATE_ROOT "/run/arca-mini"
/* Every node's swtpm listens on loopback inside the node's namespace. */
#define MINI_TPM_PORT 2321
#define MINI_TCTI "swtpm:host=127.0.0.1,port=2321"
#define MINI_INIT_PORT 9000
#define MINI_JOIN_PORT 30090
#define MINI_ETCD_PORT 2379
/* PCRs the "boot" of a node measures: the binaries it runs. */
#define MINI_PCR_BOOTSTRAPPER 4
#define MINI_PCR_JOIN_SERVICE 9

enum mini_role {
        MINI_CONTROL_PLANE,
        MINI_WORKER,
};

struct mini_node {
        char name[16];     /* cp1, cp2, w1, ... */
        enum mini_role role;
        char address[16];  /* underlay IPv4 */
        char netns[32];    /* netns launcher: arca-NAME-NODE */
        char dir[PATH_MAX]; /* STATE/nodes/NODE */
};

struct mini_cluster {
        char name[MINI_NAME_MAX + 1];
        char state_dir[PATH_MAX];
        char journal[PATH_MAX];
        char owner_dir[PATH_MAX];
        char conf[PATH_MAX];
        char ca_dir[PATH_MAX];
        char bin_dir[PATH_MAX];
        char self[PATH_MAX]; /* this arca binary */
        unsigned subnet[3];  /* a.b.c of a.b.c.0/24 */
        char host_address[16];
        char bridge[IFNAMSIZ];
        char driver[16];
        bool mesh; /* the nodes run the WireGuard mesh (arca-bootstrapper --mesh) */
        bool firewall; /* and table inet arca (arca-bootstrapper --firewall) */
        unsigned n_cp, n_workers, n_nodes;
        struct mini_node *nodes;
        const struct mini_node_ops *ops;
        /* The "boot" measurements: SHA-256 of the binaries nodes run. */
        uint8_t digest_bootstrapper[32];
        uint8_t digest_join_service[32];
};

/* A function run inside a node (its network namespace) by node_run; what it
 * writes to out_fd becomes *ret_output. Returns 0 or a negative errno. */
typedef int (*mini_node_fn)(const struct mini_cluster *c, const struct mini_node *n, void *userdata, int out_fd);

/* How nodes are run. Every resource an implementation creates is recorded
 * in the journal (mini_journal_add) before it is created, so that `down`
 * removes it even after `up` died halfway. */
struct mini_node_ops {
        const char *name;
        /* The underlay network that joins the nodes and this machine (which
         * reaches every node at its address: it plays owner and platform). */
        int (*network_create)(struct mini_cluster *c);
        /* A node's machine: network, TPM, measured "boot", AK certified by
         * the platform CA. Called for all nodes at once, each in a child
         * process of its own. */
        int (*node_create)(struct mini_cluster *c, const struct mini_node *n);
        /* Start the node's daemon (arca-bootstrapper with argv[1..]). */
        int (*node_start)(struct mini_cluster *c, const struct mini_node *n, char **argv);
        /* Run fn inside the node and collect its output. */
        int (*node_run)(const struct mini_cluster *c, const struct mini_node *n, mini_node_fn fn, void *userdata,
                        char **ret_output);
        /* Remove one resource named by a journal line, `kind value`; a
         * resource that is gone already is not an error. */
        int (*remove)(const char *kind, const char *value);
};

extern const struct mini_node_ops mini_netns_ops;

/* The command line of `arca mini VERB`. */
struct mini_options {
        const char *name;
        const char *state_dir;
        const char *subnet;
        const char *driver;
        unsigned control_planes, workers;
        bool control_planes_set, workers_set; /* given on the command line */
        unsigned timeout;
        bool vm;
        bool no_wait;
        bool no_mesh;
        bool mesh;
        bool no_firewall;
};

/* cli/mini.c: what up and add share. */
int mini_file_sha256(const char *path, uint8_t out[32]);
/* Create nodes first..n_nodes-1 (node_create), each in a child of its own. */
int mini_create_nodes(struct mini_cluster *c, unsigned first);
/* Start a node's bootstrapper: with hash (the init secret's) the first
 * node, else a joiner that joins through every control-plane node. */
int mini_start_node(struct mini_cluster *c, const struct mini_node *n, const char *hash);
bool mini_log_has(const struct mini_node *n, const char *what);
void mini_log_tail(const struct mini_node *n, const char *file);
void mini_progress(const struct mini_cluster *c, double t0, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *mini_name_option(const struct mini_cluster *c, const struct mini_options *o, char *buf, size_t size);
void mini_print_hints(const struct mini_cluster *c, const char *name_opt);

/* cli/mini-add.c: arca mini add. */
int mini_add(struct mini_cluster *c, const struct mini_options *o);

/* cli/mini-state.c: paths, journal, processes. */
int mini_cluster_paths(struct mini_cluster *c, const char *name, const char *state_dir);
int mini_journal_add(const struct mini_cluster *c, const char *kind, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Read the journal: the cluster description (name, subnet, nodes) and,
 * for each resource line, call cb. */
int mini_journal_load(struct mini_cluster *c, int (*cb)(const char *kind, const char *value, void *u), void *u);
void mini_cluster_done(struct mini_cluster *c);
/* In a child after fork: die (SIGKILL) with the parent, so that a killed
 * `up` takes its helpers along and nothing creates resources behind
 * `down`'s back. Daemons never call it. */
void mini_die_with_parent(pid_t parent);
/* Read fd to EOF (at most 16 MiB) into a NUL-terminated buffer. */
int mini_read_all(int fd, char **ret);
/* Run argv (no shell), wait; stderr (and stdout) into *ret_output if
 * ret_output is not NULL. Returns the exit status (0..255) or -errno. */
int mini_exec(char *const *argv, char **ret_output);
/* Start argv as a daemon in a new session, output appended to log_path;
 * netns (optional) is entered first; with private_run, the daemon gets a
 * mount namespace of its own whose /run is private_run (wireguard-go's
 * sockets stay apart) and in which state_dir stays visible. */
int mini_spawn(const char *netns, const char *private_run, const char *state_dir, char *const *argv,
               const char *log_path, pid_t *ret_pid);
/* Move this process into the network namespace /run/netns/NAME. */
int mini_enter_netns(const char *netns);
/* The start time of a process (field 22 of /proc/PID/stat), 0 if gone. */
unsigned long long mini_pid_start_time(pid_t pid);
/* Kill pid (if it still has the recorded start time) and wait until it
 * is gone, SIGTERM first, SIGKILL after grace_ms. */
void mini_kill(pid_t pid, unsigned long long start_time, unsigned grace_ms);
/* Remove a directory tree (does not cross into other file systems). */
int mini_rm_rf(const char *path);

/* cli/mini-icmp.c: echo request, and the pure parser of what a raw IPv4
 * ICMP socket receives: 0 and *ret_seq for an echo reply with identifier
 * id and a sequence number < n_peers sent by peers[seq]; -EBADMSG for a
 * malformed packet, -ENOMSG for anything else. */
void mini_icmp_echo_request(uint16_t id, uint16_t seq, struct icmphdr *ret);
int mini_icmp_parse_reply(const void *buf, size_t len, uint16_t id, const struct in_addr *peers, size_t n_peers,
                          size_t *ret_seq);

/* cli/mini-status.c */
struct mini_node_status {
        bool reachable;          /* answered on the init port */
        bool verified;           /* attestation verified against the policy */
        char reason[256];        /* why not */
        uint8_t pcr15[32];
        bool have_pcr15;
        bool joined;             /* PCR 15 holds this cluster's ID */
        bool registered;         /* in the membership registry */
        char mesh_address[48];
        bool mesh_up;            /* the node has a mesh interface */
        int peers_total;         /* -1: unknown */
        int peers_reachable;
        uint8_t unreachable[(MINI_MAX_NODES + 7) / 8]; /* bit per node index */
};

/* Expected PCR 15 of members: the node lock extended with the cluster ID
 * from the owner's state file. -ENOENT before init. */
int mini_expected_pcr15(const struct mini_cluster *c, uint8_t ret[32]);
/* Attest, registry and mesh reachability of all nodes. With only_pending,
 * nodes whose st[i].joined is set are not attested again. */
int mini_probe(const struct mini_cluster *c, struct mini_node_status *st, bool attest, bool only_pending,
               bool mesh);
/* Mesh reachability between the nodes from first_new on and every
 * registered node (st[].registered, mesh addresses: from mini_probe), in
 * both directions: st[].unreachable and mesh_up; one round. */
void mini_probe_mesh_new(const struct mini_cluster *c, struct mini_node_status *st, unsigned first_new);
void mini_print_table(const struct mini_cluster *c, const struct mini_node_status *st);
