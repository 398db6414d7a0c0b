/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Control-plane drivers: one interface, one file per driver
 * (cpdriver-<name>.c), selected by name. Used by the bootstrapper (init on
 * the first node, join on the others) and by the join service (the
 * parameters a joiner needs).
 *
 *   kubeadm  production: `kubeadm init` / `kubeadm join` with a generated
 *            kubeadm.k8s.io/v1beta3 configuration, node IP = mesh address.
 *            Each join gets a fresh bootstrap token and, for control-plane
 *            joiners, freshly uploaded control-plane certificates under a
 *            fresh certificate key (nothing long-lived is handed out).
 *   etcd     a standalone etcd cluster on the control-plane nodes' mesh
 *            addresses (plain HTTP: the mesh encrypts), for machines
 *            without Kubernetes binaries. The server is a child process of
 *            the caller, which supervises and stops it (cp_stop).
 *
 * A driver whose binaries are missing fails with -ENOENT and a message
 * naming the binary, never silently. Every function validates its inputs
 * (node settings, joiner name and address, join parameters) before it
 * writes a file or runs anything; join parameters from the wire go through
 * the strict, pure parser cp_join_params_parse(). Functions return 0 or a
 * negative errno with the reason in `e`; nothing here prints. */

#include <json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"

#define CP_KUBERNETES_DIR_DEFAULT "/etc/kubernetes"
#define CP_CLUSTER_NAME_DEFAULT "kubernetes"
#define CP_API_PORT_DEFAULT 6443
#define CP_ETCD_CLIENT_PORT_DEFAULT 2379
#define CP_ETCD_PEER_PORT_DEFAULT 2380

/* Bounds on what comes from outside. */
#define CP_MAX_MEMBERS 16        /* etcd members / endpoints */
#define CP_MAX_SANS 64           /* extra API server SANs */
#define CP_JOIN_PARAMS_MAX 16384 /* encoded join parameters */

enum cp_role {
        CP_ROLE_WORKER,
        CP_ROLE_CONTROL_PLANE,
};

/* "worker" | "control-plane". */
const char *cp_role_to_string(enum cp_role role);
int cp_role_from_string(const char *s, enum cp_role *ret);

/* The node a driver acts on. Only pointers: the caller owns the strings. */
struct cp_node {
        const char *name;           /* node / etcd member name: lowercase RFC 1123 subdomain */
        const char *address;        /* mesh address, an IPv4 or IPv6 literal (node IP, etcd URLs) */
        const char *local_address;  /* etcd: also serve clients on this address (127.0.0.1: the
                                     * node's own registry and join service), never advertised;
                                     * NULL: only on `address` */
        const char *state_dir;      /* the node's state: <state_dir>/etcd, <state_dir>/kubeadm */
        const char *kubernetes_dir; /* kubeadm: admin.conf and pki/ (certificatesDir, caCertPath);
                                     * NULL = /etc/kubernetes, which real kubeadm requires for
                                     * its kubeconfig files: other values are for test doubles */
        const char *cluster_name;   /* NULL = "kubernetes" */
        /* kubeadm, required by init only (join and join_params ignore or
         * merely pass on what they are given): */
        const char *const *api_sans; /* extra API server SANs (IP, DNS name, *.name), NULL-terminated */
        const char *k8s_version;     /* "v1.29.3": no version lookups on the network */
        const char *pod_cidr;        /* "10.244.0.0/16" or a dual-stack pair "a/n,b/m" */
        const char *service_cidr;
        uint16_t api_port;         /* kubeadm: 0 = 6443 */
        uint16_t etcd_client_port; /* etcd: 0 = 2379; the same on every node of a cluster */
        uint16_t etcd_peer_port;   /* etcd: 0 = 2380; the same on every node of a cluster */
};

/* What init and join leave the caller. */
struct cp_result {
        /* kubeadm: the admin kubeconfig (init, control-plane join; a secret:
         * wiped when freed); etcd: {"etcdEndpoints": [...]}. NULL for a
         * kubeadm worker. NUL-terminated. */
        char *kubeconfig;
        size_t kubeconfig_size;
        /* etcd control-plane nodes: the etcd server, a child of the caller
         * that dies with it (PR_SET_PDEATHSIG). 0 when there is none. */
        pid_t pid;
};

/* Stop the server a result names (SIGTERM, SIGKILL after 10 s), reap it and
 * free the result. Returns 0, or -ECHILD when it had already gone. */
int cp_stop(struct cp_result *r);
/* Free (and wipe) the result without stopping anything. */
void cp_result_done(struct cp_result *r);

/* Join parameters after strict validation. Which fields are set depends on
 * the driver and role; the rest are NULL. */
struct cp_join_params {
        enum cp_role role;
        /* kubeadm */
        char *endpoint;        /* API server "host:port" */
        char *token;           /* bootstrap token [a-z0-9]{6}.[a-z0-9]{16} (secret) */
        char *ca_cert_hash;    /* "sha256:" + 64 lowercase hex: SPKI of the cluster CA */
        char *certificate_key; /* control-plane: 64 lowercase hex (secret) */
        /* etcd */
        char *endpoints[CP_MAX_MEMBERS + 1]; /* client URLs, NULL-terminated */
        size_t n_endpoints;
        char *initial_cluster; /* control-plane: "n1=http://a:2380,n2=http://b:2380" */
};

/* Wipes the secrets. */
void cp_join_params_done(struct cp_join_params *p);

struct cp_driver {
        const char *name;
        /* Uses the Kubernetes settings of cp_node (init requires them). */
        bool kubernetes;
        /* The driver's binaries exist. */
        int (*check)(struct errmsg *e);
        int (*init)(const struct cp_node *node, struct cp_result *ret, struct errmsg *e);
        /* Join service side: returns a new JSON object (caller's). */
        int (*join_params)(const struct cp_node *node, const char *joiner_name, const char *joiner_address,
                           enum cp_role role, json_object **ret, struct errmsg *e);
        /* Pure: validate a parameter object. */
        int (*parse_params)(json_object *o, enum cp_role role, struct cp_join_params *ret, struct errmsg *e);
        int (*join)(const struct cp_node *node, const struct cp_join_params *params, struct cp_result *ret,
                    struct errmsg *e);
};

extern const struct cp_driver cp_driver_kubeadm;
extern const struct cp_driver cp_driver_etcd;

/* "kubeadm" | "etcd"; NULL for anything else. */
const struct cp_driver *cp_driver_by_name(const char *name);
/* NULL-terminated list of all drivers. */
const struct cp_driver *const *cp_driver_all(void);

/* The entry points callers use; each validates, then calls the driver. */
int cp_check(const struct cp_driver *d, struct errmsg *e);
/* First control-plane node. */
int cp_init(const struct cp_driver *d, const struct cp_node *node, struct cp_result *ret, struct errmsg *e);
/* On the join service's node: what `joiner_name` at `joiner_address` (its
 * mesh address) needs to join in `role`. kubeadm: a fresh bootstrap token
 * (and freshly uploaded certificates for control-plane joiners) each time;
 * the object holds secrets: send it only over attested channels. etcd:
 * control-plane joiners are added as learners (the quorum is unaffected)
 * and promote themselves in cp_join; until then another control-plane join
 * is -EBUSY, while the same joiner asking again gets the same member. */
int cp_join_params(const struct cp_driver *d, const struct cp_node *node, const char *joiner_name,
                   const char *joiner_address, enum cp_role role, json_object **ret, struct errmsg *e);
/* Pure and strict: every field checked, unknown fields refused, secrets
 * only for control-plane joiners. */
int cp_join_params_parse(const struct cp_driver *d, enum cp_role role, const char *buf, size_t len,
                         struct cp_join_params *ret, struct errmsg *e);
int cp_join_params_from_json(const struct cp_driver *d, enum cp_role role, json_object *o,
                             struct cp_join_params *ret, struct errmsg *e);
/* On the joiner: validates `params` (as cp_join_params_from_json), then joins. */
int cp_join(const struct cp_driver *d, const struct cp_node *node, enum cp_role role, json_object *params,
            struct cp_result *ret, struct errmsg *e);

/* --- Shared by the drivers (and usable by callers) --------------------- */

/* Validators (true when valid). */
bool cp_valid_name(const char *s);                /* lowercase RFC 1123 subdomain, <= 253 */
bool cp_valid_ip(const char *s);                  /* IPv4 or IPv6 literal, no zone */
bool cp_valid_host(const char *s);                /* IP literal or DNS name ("*." prefix not allowed) */
bool cp_valid_hostport(const char *s);            /* host:port, [v6]:port */
bool cp_valid_url(const char *s);                 /* http(s)://host:port, nothing after the port */
bool cp_valid_token(const char *s);               /* [a-z0-9]{6}.[a-z0-9]{16} */
bool cp_valid_ca_cert_hash(const char *s);        /* sha256:<64 lowercase hex> */
bool cp_valid_hex(const char *s, size_t n_bytes); /* exactly 2*n lowercase hex */
bool cp_valid_cidrs(const char *s);               /* one CIDR, or two of different families with ',' */
bool cp_valid_k8s_version(const char *s);         /* v1.29.3 */
bool cp_valid_path(const char *s);                /* absolute, [A-Za-z0-9/._+-], no ".." component */

/* "a.b.c.d:port" or "[v6]:port". */
int cp_hostport(const char *address, uint16_t port, char *buf, size_t size);

/* Find an executable on PATH (or /bin:/usr/bin when PATH is unset);
 * -ENOENT with a message naming it and the search path. */
int cp_find_binary(const char *name, char **ret_path, struct errmsg *e);

/* Run argv[0] (an absolute path) to completion, stdin and stdout on
 * /dev/null (kubeadm prints secrets there), at most timeout_sec (then the
 * process group is killed: -ETIMEDOUT). A non-zero exit is -EIO with
 * "<what> failed (exit status N): <the tail of its stderr>". Children of
 * cp_run and cp_spawn start with default signal handling and an empty
 * signal mask, and die with the caller (PR_SET_PDEATHSIG). The caller must
 * not set SIGCHLD to SIG_IGN (that makes the exit status unobtainable). */
int cp_run(const char *what, char *const argv[], unsigned timeout_sec, struct errmsg *e);

/* Start argv[0] (absolute) in the background, stdout and stderr appended to
 * log_path, dying with the caller. */
int cp_spawn(char *const argv[], const char *log_path, pid_t *ret_pid, struct errmsg *e);

/* Plain HTTP JSON request ("GET" or "POST"; body may be NULL), response at
 * most 1 MiB, parsed strictly. Returns -EPROTO for a status other than 200. */
int cp_http_json(const char *method, const char *url, json_object *body, long timeout_ms, json_object **ret,
                 struct errmsg *e);

/* A program's output as one printable line for a message: control
 * characters become spaces, the end is kept (at most max - 1 bytes). */
void cp_output_line(const char *p, size_t n, char *out, size_t max);

/* Fill buf with n random characters of [a-z0-9] (bootstrap tokens). */
int cp_random_alnum(char *buf, size_t n);

/* Strict JSON for parameter parsers: refuse any field not in the
 * NULL-terminated `allowed`; copy a string field that `valid` accepts
 * (-EBADMSG naming the field otherwise). */
int cp_json_only_fields(json_object *o, const char *const allowed[], struct errmsg *e);
int cp_json_get_valid(json_object *o, const char *field, bool (*valid)(const char *s), const char *what,
                      char **ret, struct errmsg *e);
