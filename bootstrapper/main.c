/* SPDX-License-Identifier: Apache-2.0 */
/* arca-bootstrapper: per-node daemon. Wires the modules together: the node
 * (TPM, attester, keys), the init server and the join client. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk.h"
#include "initserver.h"
#include "joinclient.h"
#include "log.h"
#include "mesh.h"
#include "node.h"
#include "tpm.h"

struct options {
        struct node_options node;
        const char *listen;
        uint16_t port;
        bool check_config;
        bool mesh;
        struct mesh_options mesh_opt;
        const char *disk_device;
        const char *disk_mapper;
};

static char self_dir[PATH_MAX];
static char join_service_path[PATH_MAX];
static char hostname_buf[NODE_NAME_MAX + 1];

static void help(void) {
        printf("Usage: arca-bootstrapper [OPTIONS]\n\n"
               "Per-node daemon of arca: attests the node over aTLS, serves the init endpoint\n"
               "(port %u) and, with --join, joins an existing cluster through its join\n"
               "services; whichever succeeds first takes the node lock (PCR 15).\n\n"
               "Options:\n"
               "  --tcti CONF             TPM access (default $ARCA_TCTI or device:/dev/tpmrm0)\n"
               "  --variant NAME          attestation variant (default qemu-vtpm)\n"
               "  --ak-handle HEX         persistent handle of the AK (default 0x%08x)\n"
               "  --listen ADDR           address of the init server (default 0.0.0.0)\n"
               "  --port N                port of the init server (default %u)\n"
               "  --state-dir DIR         node state (default /run/state)\n"
               "  --node-name NAME        this node's name (default: host name)\n"
               "  --underlay ADDR         this node's address on the underlay network\n"
               "  --role ROLE             role when joining: worker (default) or control-plane\n"
               "  --join HOST:PORT        a join service (repeatable; port %u)\n"
               "  --init-secret-hash HEX  SHA-256 of the init secret (from the platform)\n"
               "  --platform-ca FILE      CA certifying peers' attestation keys (qemu-vtpm)\n"
               "  --peer-pcrs LIST        PCRs a join service must share with this node\n"
               "                          (default 0-14; PCR 15 is never compared)\n"
               "  --registry URL          standalone etcd for the membership registry\n"
               "  --kubernetes-dir DIR    kubeadm's directory (default /etc/kubernetes)\n"
               "  --join-service PATH     arca-join-service binary (default: next to this one)\n"
               "  --mesh BACKEND          bring up the WireGuard mesh (arca0, UDP %u) after init\n"
               "                          or join: auto, kernel or wireguard-go (docs/MESH.md)\n"
               "  --wireguard-go PATH     wireguard-go binary (default /usr/bin/wireguard-go)\n"
               "  --mesh-refresh-ms N     fixed mesh refresh interval (default: the join service's)\n"
               "  --firewall              with --mesh: nftables table inet arca, node set = peers\n"
               "  --disk-device PATH      the state disk arca-disk-mapper set up (re-keyed after\n"
               "                          init or join; its LUKS2 UUID is the disk UUID)\n"
               "  --disk-mapper PATH      arca-disk-mapper binary (default: next to this one)\n"
               "  --check-config          check the TPM, AK and options, then exit\n"
               "  --log-level LEVEL       err, warning, info, debug\n"
               "  -h, --help              show this help\n",
               INIT_SERVER_PORT, TPM_AK_HANDLE, INIT_SERVER_PORT, JOIN_SERVICE_PORT, WIREGUARD_PORT);
}

static int parse_u32(const char *s, uint32_t max, uint32_t *ret) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || *end || end == s || v > max)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

static int parse_args(int argc, char **argv, struct options *o) {
        enum {
                ARG_TCTI = 256, ARG_VARIANT, ARG_LISTEN, ARG_PORT, ARG_AK, ARG_CHECK, ARG_LOG, ARG_STATE, ARG_NAME,
                ARG_UNDERLAY, ARG_ROLE, ARG_JOIN, ARG_HASH, ARG_CA, ARG_PCRS, ARG_REGISTRY, ARG_KDIR, ARG_JS,
                ARG_MESH, ARG_WGGO, ARG_MESH_MS, ARG_FIREWALL,
                ARG_DISK, ARG_MAPPER,
        };
        static const struct option opts[] = {
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "variant", required_argument, NULL, ARG_VARIANT },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "port", required_argument, NULL, ARG_PORT },
                { "ak-handle", required_argument, NULL, ARG_AK },
                { "check-config", no_argument, NULL, ARG_CHECK },
                { "log-level", required_argument, NULL, ARG_LOG },
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "node-name", required_argument, NULL, ARG_NAME },
                { "underlay", required_argument, NULL, ARG_UNDERLAY },
                { "role", required_argument, NULL, ARG_ROLE },
                { "join", required_argument, NULL, ARG_JOIN },
                { "init-secret-hash", required_argument, NULL, ARG_HASH },
                { "platform-ca", required_argument, NULL, ARG_CA },
                { "peer-pcrs", required_argument, NULL, ARG_PCRS },
                { "registry", required_argument, NULL, ARG_REGISTRY },
                { "kubernetes-dir", required_argument, NULL, ARG_KDIR },
                { "join-service", required_argument, NULL, ARG_JS },
                { "mesh", required_argument, NULL, ARG_MESH },
                { "wireguard-go", required_argument, NULL, ARG_WGGO },
                { "mesh-refresh-ms", required_argument, NULL, ARG_MESH_MS },
                { "firewall", no_argument, NULL, ARG_FIREWALL },
                { "disk-device", required_argument, NULL, ARG_DISK },
                { "disk-mapper", required_argument, NULL, ARG_MAPPER },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct node_options *n = &o->node;
        uint32_t v, mask;
        int c, l;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_TCTI:
                        n->tcti = optarg;
                        break;
                case ARG_VARIANT:
                        n->variant = optarg;
                        break;
                case ARG_LISTEN:
                        o->listen = optarg;
                        break;
                case ARG_PORT:
                        if (parse_u32(optarg, 65535, &v) < 0)
                                return log_error_errno(EINVAL, "Invalid --port \"%s\"", optarg);
                        o->port = (uint16_t) v;
                        break;
                case ARG_AK:
                        if (tpm_parse_persistent_handle(optarg, &n->ak_handle) < 0)
                                return log_error_errno(EINVAL, "Invalid --ak-handle \"%s\": expected 0x81xxxxxx",
                                                       optarg);
                        break;
                case ARG_CHECK:
                        o->check_config = true;
                        break;
                case ARG_LOG:
                        l = log_level_from_string(optarg);
                        if (l < 0)
                                return log_error_errno(EINVAL, "Invalid --log-level \"%s\"", optarg);
                        log_set_max_level(l);
                        break;
                case ARG_STATE:
                        n->state_dir = optarg;
                        break;
                case ARG_NAME:
                        if (!valid_node_name(optarg))
                                return log_error_errno(EINVAL, "Invalid --node-name \"%s\": lowercase letters, digits, '-', '.'", optarg);
                        n->node_name = optarg;
                        break;
                case ARG_UNDERLAY:
                        if (!valid_address(optarg))
                                return log_error_errno(EINVAL, "Invalid --underlay \"%s\": expected an IP address", optarg);
                        n->underlay = optarg;
                        break;
                case ARG_ROLE:
                        if (!valid_role(optarg))
                                return log_error_errno(EINVAL, "Invalid --role \"%s\": worker or control-plane", optarg);
                        n->role = optarg;
                        break;
                case ARG_JOIN:
                        if (!valid_endpoint(optarg))
                                return log_error_errno(EINVAL, "Invalid --join \"%s\": expected HOST:PORT", optarg);
                        if (n->n_join_endpoints >= NODE_MAX_JOIN_ENDPOINTS)
                                return log_error_errno(EINVAL, "At most %d --join endpoints", NODE_MAX_JOIN_ENDPOINTS);
                        n->join_endpoints[n->n_join_endpoints++] = optarg;
                        break;
                case ARG_HASH:
                        if (strlen(optarg) != 64 || strspn(optarg, "0123456789abcdefABCDEF") != 64)
                                return log_error_errno(EINVAL, "Invalid --init-secret-hash: expected 64 hex digits");
                        n->init_secret_hash = optarg;
                        break;
                case ARG_CA:
                        n->platform_ca = optarg;
                        break;
                case ARG_PCRS:
                        if (parse_pcr_list(optarg, &mask) < 0)
                                return log_error_errno(EINVAL, "Invalid --peer-pcrs \"%s\": e.g. 0-14 or 4,8-9", optarg);
                        n->peer_pcrs = optarg;
                        break;
                case ARG_REGISTRY:
                        n->registry = optarg;
                        break;
                case ARG_KDIR:
                        n->kubernetes_dir = optarg;
                        break;
                case ARG_JS:
                        n->join_service = optarg;
                        break;
                case ARG_MESH:
                        if (wg_backend_from_string(optarg, &o->mesh_opt.backend) < 0)
                                return log_error_errno(EINVAL, "Invalid --mesh \"%s\": auto, kernel or wireguard-go",
                                                       optarg);
                        o->mesh = true;
                        break;
                case ARG_WGGO:
                        o->mesh_opt.wireguard_go = optarg;
                        break;
                case ARG_MESH_MS:
                        if (parse_u32(optarg, MESH_REFRESH_MAX_MS, &v) < 0 || v < 100)
                                return log_error_errno(EINVAL, "Invalid --mesh-refresh-ms \"%s\": 100-%d", optarg,
                                                       MESH_REFRESH_MAX_MS);
                        o->mesh_opt.refresh_ms = v;
                        break;
                case ARG_FIREWALL:
                        o->mesh_opt.firewall = true;
                        break;
                case ARG_DISK:
                        o->disk_device = optarg;
                        break;
                case ARG_MAPPER:
                        o->disk_mapper = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument \"%s\"", argv[optind]);
        return 1;
}

static struct event_base *base;
static struct join_client *join_client;
static struct mesh *mesh;

static void on_init_done(void *userdata) {
        join_client_stop(join_client);
}

static void on_join_done(void *userdata) {
        log_info("Node joined; the init server now refuses init.");
}

static void on_atls_failure(const char *what, const char *reason, void *userdata) {
        log_warning("aTLS handshake failed while %s: %s", what, reason);
}

static struct event *restart_timer;

static void on_restart(evutil_socket_t fd, short what, void *arg) {
        struct node *n = arg;
        struct errmsg e = {};

        if (n->join_service_pid == 0 && node_start_join_service(n, &e) < 0) {
                struct timeval tv = { .tv_sec = 2 };
                log_error("Cannot restart the join service: %s", errmsg_str(&e));
                evtimer_add(restart_timer, &tv);
        }
}

/* Reap children: a join service that exits is restarted after a second, so
 * joiners retrying meanwhile find it again. */
static void on_sigchld(evutil_socket_t fd, short what, void *arg) {
        struct node *n = arg;
        pid_t pid;
        int status;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == n->join_service_pid) {
                        struct timeval tv = { .tv_sec = 1 };
                        n->join_service_pid = 0;
                        log_warning("The join service exited (status 0x%x); restarting it.", (unsigned) status);
                        evtimer_add(restart_timer, &tv);
                } else if (mesh_child_exited(mesh, pid, status)) {
                        /* the mesh agent remakes its device */
                } else if (pid == n->cp.pid) {
                        n->cp.pid = 0;
                        log_error("The control plane (pid %d) exited (status 0x%x).", (int) pid, (unsigned) status);
                }
        }
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
        log_info("Received signal %d, shutting down.", (int) fd);
        event_base_loopbreak(arg);
}

static void defaults(struct options *o, const char *argv0) {
        char *copy = strdup(argv0);

        if (copy) {
                snprintf(self_dir, sizeof(self_dir), "%s", dirname(copy));
                free(copy);
        }
        snprintf(join_service_path, sizeof(join_service_path), "%s/arca-join-service", self_dir);
        if (gethostname(hostname_buf, sizeof(hostname_buf)) < 0 || !valid_node_name(hostname_buf))
                snprintf(hostname_buf, sizeof(hostname_buf), "node");
        *o = (struct options){
                .listen = "0.0.0.0",
                .port = INIT_SERVER_PORT,
                .node = {
                        .variant = "qemu-vtpm",
                        .ak_handle = TPM_AK_HANDLE,
                        .state_dir = "/run/state",
                        .node_name = hostname_buf,
                        .role = "worker",
                        .underlay = "127.0.0.1",
                        .peer_pcrs = "0-14",
                        .join_service = join_service_path,
                        .join_port = JOIN_SERVICE_PORT,
                },
        };
}

int main(int argc, char **argv) {
        struct options o;
        struct node node = {};
        struct atls_config atls = {};
        struct init_server *server = NULL;
        struct event *sigint = NULL, *sigterm = NULL, *sigchld = NULL;
        struct errmsg e = {};
        int r, ret = 1;

        log_setup("arca-bootstrapper");
        defaults(&o, argv[0]);
        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        signal(SIGPIPE, SIG_IGN);

        r = node_setup(&node, &o.node, &e);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the node: %s", errmsg_str(&e));
                goto out;
        }
        if (o.disk_device) {
                char mapper[PATH_MAX];
                snprintf(mapper, sizeof(mapper), "%s/arca-disk-mapper", self_dir);
                r = disk_handoff_setup(&node, o.disk_mapper ? o.disk_mapper : mapper, o.disk_device, &e);
                if (r < 0) {
                        log_error_errno(r, "Cannot use the state disk %s: %s", o.disk_device, errmsg_str(&e));
                        goto out;
                }
        }
        if (o.check_config) {
                log_info("Configuration OK: TPM reachable, variant %s, AK 0x%08x with platform trust material%s.",
                         o.node.variant, o.node.ak_handle,
                         node.peer_verifier ? ", peers verifiable" : "");
                ret = 0;
                goto out;
        }
        atls.attester = node.attester;
        atls.on_failure = on_atls_failure;

        base = event_base_new();
        if (!base) {
                log_oom();
                goto out;
        }
        r = init_server_new(base, &atls, &node, o.listen, o.port, on_init_done, NULL, &server, &e);
        if (r < 0) {
                log_error_errno(r, "Failed to start the init server: %s", errmsg_str(&e));
                goto out;
        }
        if (o.mesh_opt.firewall && !o.mesh) {
                log_error("--firewall needs --mesh: the firewall's node set follows the mesh peers.");
                goto out;
        }
        if (o.mesh) {
                r = mesh_new(base, &node, &o.mesh_opt, &mesh, &e);
                if (r < 0) {
                        log_error_errno(r, "Failed to set up the mesh agent: %s", errmsg_str(&e));
                        goto out;
                }
        }
        if (o.node.n_join_endpoints > 0) {
                r = join_client_new(base, &node, on_join_done, NULL, &join_client, &e);
                if (r < 0) {
                        log_error_errno(r, "Failed to start the join client: %s", errmsg_str(&e));
                        goto out;
                }
        }
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        sigchld = evsignal_new(base, SIGCHLD, on_sigchld, &node);
        restart_timer = evtimer_new(base, on_restart, &node);
        if (!sigint || !sigterm || !sigchld || !restart_timer || event_add(sigint, NULL) < 0 ||
            event_add(sigterm, NULL) < 0 || event_add(sigchld, NULL) < 0) {
                log_oom();
                goto out;
        }
        log_info("Node %s: init server on %s:%u (variant %s)%s.", o.node.node_name, o.listen,
                 init_server_port(server), o.node.variant, o.node.n_join_endpoints ? ", joining" : "");
        /* Readiness line for supervisors that read stdout. */
        printf("READY port=%u\n", init_server_port(server));
        fflush(stdout);
        event_base_dispatch(base);
        ret = 0;
out:
        if (sigint)
                event_free(sigint);
        if (sigterm)
                event_free(sigterm);
        if (sigchld)
                event_free(sigchld);
        if (restart_timer)
                event_free(restart_timer);
        join_client_free(join_client);
        mesh_free(mesh);
        init_server_free(server);
        node_done(&node);
        if (base)
                event_base_free(base);
        return ret;
}
