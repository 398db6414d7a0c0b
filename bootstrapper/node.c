/* SPDX-License-Identifier: Apache-2.0 */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attest-remote.h"
#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "openssl-util.h"
#include "peer-verifier.h"
#include "registry.h"
#include "secret.h"
#include "tpm.h"

int parse_pcr_list(const char *s, uint32_t *ret) {
        _cleanup_free_ char *copy = strdup(s);
        char *save = NULL, *tok;
        uint32_t mask = 0;

        if (!copy)
                return -ENOMEM;
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                unsigned a, b;
                char dash;
                int n;

                if (sscanf(tok, "%u%c%u%n", &a, &dash, &b, &n) == 3 && dash == '-' && tok[n] == 0) {
                        /* range */
                } else if (sscanf(tok, "%u%n", &a, &n) == 1 && tok[n] == 0)
                        b = a;
                else
                        return -EINVAL;
                if (a > b || b >= TPM_PCR_COUNT)
                        return -EINVAL;
                for (unsigned i = a; i <= b; i++)
                        mask |= UINT32_C(1) << i;
        }
        *ret = mask;
        return 0;
}

/* A peer runs the same image as we do (lib/peer-verifier.h). */
static int make_peer_verifier(struct node *n, struct errmsg *e) {
        uint32_t mask;
        int r;

        if (!n->opt.platform_ca)
                return 0; /* the join client refuses to run without it */
        r = parse_pcr_list(n->opt.peer_pcrs, &mask);
        if (r < 0)
                return errmsg_set(e, r, "Invalid PCR list \"%s\"", n->opt.peer_pcrs);
        return peer_verifier_new(n->tpm, n->opt.variant, n->opt.platform_ca, mask, &n->peer_verifier, e);
}

int node_disk_uuid(struct node *n, struct errmsg *e) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        uint8_t raw[16];
        int r;

        if (n->disk_uuid[0])
                return 0;
        if (mkdir(n->opt.state_dir, 0700) < 0 && errno != EEXIST)
                return errmsg_set(e, errno, "Cannot create state directory %s: %s", n->opt.state_dir,
                                  strerror(errno));
        if (n->opt.disk_uuid) {
                if (!valid_uuid(n->opt.disk_uuid))
                        return errmsg_set(e, EINVAL, "Invalid disk UUID \"%s\"", n->opt.disk_uuid);
                for (size_t i = 0; i < 36; i++)
                        n->disk_uuid[i] = (char) tolower((unsigned char) n->opt.disk_uuid[i]);
                return 0;
        }
        if (asprintf(&path, "%s/disk-uuid", n->opt.state_dir) < 0)
                return -ENOMEM;
        r = read_full_file(path, 64, &text, NULL);
        if (r >= 0) {
                text[strcspn(text, "\n")] = 0;
                if (!valid_uuid(text))
                        return errmsg_set(e, EBADMSG, "%s does not hold a UUID", path);
                memcpy(n->disk_uuid, text, 37);
                return 0;
        }
        if (r != -ENOENT)
                return errmsg_set(e, r, "Cannot read %s: %s", path, strerror(-r));
        r = secret_random(raw, sizeof(raw));
        if (r < 0)
                return r;
        raw[6] = (raw[6] & 0x0f) | 0x40; /* version 4 */
        raw[8] = (raw[8] & 0x3f) | 0x80; /* variant 1 */
        snprintf(n->disk_uuid, sizeof(n->disk_uuid),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2],
                 raw[3], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14],
                 raw[15]);
        r = write_file_atomic(path, n->disk_uuid, 36, 0600);
        if (r < 0)
                return errmsg_set(e, r, "Cannot write %s: %s", path, strerror(-r));
        return 0;
}

int node_setup(struct node *n, const struct node_options *opt, struct errmsg *e) {
        int r;

        *n = (struct node){ .opt = *opt };
        r = tpm_open(opt->tcti, &n->tpm, e);
        if (r < 0)
                return r;
        r = attester_new(opt->variant, n->tpm, opt->ak_handle, &n->attester, e);
        if (r < 0)
                return r;
        r = make_peer_verifier(n, e);
        if (r < 0)
                return r;
        r = wg_keypair_generate(n->wg_private, n->wg_public);
        if (r < 0)
                return errmsg_set(e, r, "Cannot generate the WireGuard key pair");
        if (strchr(opt->underlay, ':'))
                snprintf(n->endpoint, sizeof(n->endpoint), "[%s]:%d", opt->underlay, WIREGUARD_PORT);
        else
                snprintf(n->endpoint, sizeof(n->endpoint), "%s:%d", opt->underlay, WIREGUARD_PORT);
        return 0;
}

static void stop_child(pid_t *pid) {
        if (*pid <= 0)
                return;
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
        *pid = 0;
}

void node_done(struct node *n) {
        stop_child(&n->join_service_pid);
        n->attest_server = attest_remote_server_stop(n->attest_server);
        if (n->cp.pid > 0)
                cp_stop(&n->cp);
        else
                cp_result_done(&n->cp);
        verifier_free(n->peer_verifier);
        attester_free(n->attester);
        tpm_free(n->tpm);
        secret_wipe(n->wg_private, sizeof(n->wg_private));
}

/* --- pieces of init and join ------------------------------------------------ */

/* Where the control plane runs: on the mesh address once arca0 carries it,
 * so that etcd and Kubernetes traffic between nodes is inside the mesh and
 * the firewall can drop everything else; on a node without a mesh module
 * (no --mesh: tests and benchmarks without network namespaces of their
 * own) on the underlay address. */
static const char *cp_address(const struct node *n, const struct node_state *s) {
        return n->handoff.mesh_up ? s->mesh_address : n->opt.underlay;
}

/* etcd also serves this node's own services (registry, join service) on
 * 127.0.0.1, unless the control plane's address is a loopback address
 * itself (benchmarks run several nodes in one network namespace on
 * 127.x.y.z, and 127.0.0.1:2379 would be shared). */
static const char *cp_local_address(const char *address) {
        struct in_addr a;

        if (streq(address, "::1") || (inet_pton(AF_INET, address, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127))
                return NULL;
        return "127.0.0.1";
}

static void cp_node_fill(const struct node *n, const char *address, const char *cluster_name,
                         const struct k8s_settings *k8s, const char **sans, struct cp_node *ret) {
        size_t i = 0;

        if (k8s)
                for (; i < k8s->n_api_sans && i < MSG_MAX_SANS; i++)
                        sans[i] = k8s->api_sans[i];
        sans[i] = NULL;
        *ret = (struct cp_node){
                .name = n->opt.node_name,
                .address = address,
                .local_address = cp_local_address(address),
                .state_dir = n->opt.state_dir,
                .kubernetes_dir = n->opt.kubernetes_dir,
                .cluster_name = cluster_name,
                .api_sans = sans,
                .k8s_version = k8s && k8s->version[0] ? k8s->version : "v1.29.0",
                .pod_cidr = k8s ? k8s->pod_cidr : NULL,
                .service_cidr = k8s ? k8s->service_cidr : NULL,
        };
}

/* Where this node's registry is: --registry, else the control plane's
 * etcd on this node, reached locally (control-plane nodes only: workers
 * never talk to etcd). */
static void registry_endpoints(const struct node *n, const char *driver, const char *cp_addr,
                               struct node_state *s) {
        const char *local = cp_local_address(cp_addr);
        char hp[ADDRESS_MAX + 16];

        if (n->opt.registry)
                snprintf(s->registry[0], sizeof(s->registry[0]), "%s", n->opt.registry);
        else if (streq(driver, "etcd")) {
                (void) cp_hostport(local ? local : cp_addr, CP_ETCD_CLIENT_PORT_DEFAULT, hp, sizeof(hp));
                snprintf(s->registry[0], sizeof(s->registry[0]), "http://%s", hp);
        } else
                snprintf(s->registry[0], sizeof(s->registry[0]), "https://127.0.0.1:%d", CP_ETCD_CLIENT_PORT_DEFAULT);
        s->n_registry = 1;
}

/* Record the first node in the registry that its control plane has just
 * started: the mesh address it took before the registry existed, its disk
 * and its member record with the AK it attests with (so that its refreshes
 * are matched to it like every joiner's), in one transaction. */
static int register_self(struct node *n, struct node_state *s, struct errmsg *e) {
        _cleanup_registry_ struct registry *reg = NULL;
        struct registry_member m = {};
        uint8_t ak[ATTEST_AK_NAME_SIZE];
        int r;

        r = attester_ak_name(n->attester, ak, e);
        if (r < 0)
                return r;
        r = nodestate_registry_open(s, n->opt.kubernetes_dir, &reg, e);
        if (r < 0)
                return r;
        hex_encode_buf(ak, sizeof(ak), m.ak_name);
        snprintf(m.name, sizeof(m.name), "%s", s->node_name);
        snprintf(m.role, sizeof(m.role), "%s", s->role);
        snprintf(m.mesh_address, sizeof(m.mesh_address), "%s", s->mesh_address);
        snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", n->wg_public);
        snprintf(m.endpoint, sizeof(m.endpoint), "%s", n->endpoint);
        snprintf(m.disk_uuid, sizeof(m.disk_uuid), "%s", s->disk_uuid);
        m.join_time = m.last_seen = (int64_t) time(NULL);
        return registry_join(reg, &m, s->mesh_cidr, e);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Undo a failed init or join: stop the control plane, forget its data and
 * the node state, so that the node can be initialized or joined again. */
static void node_rollback(struct node *n) {
        static const char *const subdirs[] = { "etcd", "kubeadm", "arca" };

        if (n->cp.pid > 0)
                cp_stop(&n->cp);
        else
                cp_result_done(&n->cp);
        if (n->mesh_is_up && n->handoff.mesh_down)
                n->handoff.mesh_down(n->handoff.mesh_userdata);
        n->mesh_is_up = false;
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/%s", n->opt.state_dir, subdirs[i]) >= 0)
                        (void) nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        }
}

static void on_attest_refusal(const char *reason, void *userdata) {
        log_warning("Attestation channel: the join service's request failed: %s", reason);
}

/* The descriptor number of the join service's end of the channel. */
#define ATTESTER_CHILD_FD 3

int node_start_join_service(struct node *n, struct errmsg *e) {
        char port[16], afd[16];
        int fds[2], r;
        pid_t pid;

        /* The previous join service's channel, if it exited. */
        n->attest_server = attest_remote_server_stop(n->attest_server);
        r = attest_remote_socketpair(fds, e);
        if (r < 0)
                return r;
        snprintf(port, sizeof(port), "%u", n->opt.join_port);
        snprintf(afd, sizeof(afd), "%d", ATTESTER_CHILD_FD);
        pid = fork();
        if (pid < 0) {
                r = errmsg_set(e, errno, "Cannot start the join service: %s", strerror(errno));
                close(fds[0]);
                close(fds[1]);
                return r;
        }
        if (pid == 0) {
                const char *argv[24];
                size_t i = 0;

                prctl(PR_SET_PDEATHSIG, SIGTERM);
                /* The channel is the one descriptor the join service
                 * inherits besides stdin, stdout and stderr: not every
                 * descriptor of ours is close-on-exec (tpm2-tss opens the
                 * TPM device or the swtpm socket without it), and the
                 * join service must not get the TPM. dup2 clears
                 * close-on-exec on its copy. */
                if (fds[1] == ATTESTER_CHILD_FD ? fcntl(fds[1], F_SETFD, 0) < 0
                                                : dup2(fds[1], ATTESTER_CHILD_FD) < 0)
                        _exit(127);
                if (close_range(ATTESTER_CHILD_FD + 1, ~0U, 0) < 0)
                        _exit(127);
                argv[i++] = n->opt.join_service;
                argv[i++] = "--state-dir";
                argv[i++] = n->opt.state_dir;
                argv[i++] = "--port";
                argv[i++] = port;
                argv[i++] = "--variant";
                argv[i++] = n->opt.variant;
                argv[i++] = "--attester-fd";
                argv[i++] = afd;
                argv[i++] = "--underlay";
                argv[i++] = n->opt.underlay;
                if (n->handoff.mesh_up)
                        argv[i++] = "--control-plane-on-mesh";
                if (n->opt.platform_ca) {
                        argv[i++] = "--platform-ca";
                        argv[i++] = n->opt.platform_ca;
                }
                if (n->opt.kubernetes_dir) {
                        argv[i++] = "--kubernetes-dir";
                        argv[i++] = n->opt.kubernetes_dir;
                }
                argv[i] = NULL;
                execv(argv[0], (char *const *) argv);
                fprintf(stderr, "arca-bootstrapper: cannot execute %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(fds[1]);
        n->join_service_pid = pid;
        r = attest_remote_server_start(fds[0], n->attester, on_attest_refusal, n, &n->attest_server, e);
        if (r < 0) {
                /* The node is committed (lock taken): not a failure of
                 * init or join. The join service fails its handshakes on
                 * the closed channel until it is restarted. */
                log_warning("Join service started without its attestation channel: %s", errmsg_str(e));
                *e = (struct errmsg){};
                close(fds[0]);
        }
        log_info("Join service started (pid %d, port %u).", (int) pid, n->opt.join_port);
        return 0;
}

/* Give the disk its derived key, through the disk-mapper's hook. */
static int rekey(struct node *n, const char *disk_uuid, const uint8_t disk_key[KEY_SIZE], struct errmsg *e) {
        if (!n->handoff.rekey_disk) {
                log_info("No state disk on this node: nothing to re-key (disk %s).", disk_uuid);
                return 0;
        }
        return n->handoff.rekey_disk(n->handoff.userdata, disk_uuid, disk_key, e);
}

/* Bring arca0 up (and with --firewall table inet arca) before the control
 * plane starts, through the mesh agent's hook: the control plane listens
 * on the mesh address and reaches the other control-plane nodes over it. */
static int mesh_up(struct node *n, const struct node_state *s, const struct mesh_peer *peers, size_t n_peers,
                   struct errmsg *e) {
        int r;

        if (!n->handoff.mesh_up) {
                log_info("No mesh module on this node: mesh address %s is registered, arca0 is not set up, and the "
                         "control plane uses the underlay address %s.",
                         s->mesh_address, n->opt.underlay);
                return 0;
        }
        r = n->handoff.mesh_up(n->handoff.mesh_userdata, s->mesh_address, s->mesh_cidr, n->wg_private, peers,
                               n_peers, e);
        if (r < 0)
                return r;
        n->mesh_is_up = true;
        return 0;
}

/* State, node lock, join service: the last steps of both init and join. */
static int commit(struct node *n, const struct node_state *s, const struct master_state *master, const char *policy,
                  size_t policy_size, struct errmsg *e) {
        int r;

        r = nodestate_write(n->opt.state_dir, s, e);
        if (r >= 0 && master)
                r = master_write(n->opt.state_dir, master, e);
        if (r >= 0 && policy)
                r = policy_file_write(n->opt.state_dir, policy, policy_size, e);
        if (r < 0)
                return r;
        r = node_lock_take(n->tpm, s->cluster_id, e);
        if (r < 0)
                return r;
        n->committed = true;
        if (streq(s->role, "control-plane"))
                return node_start_join_service(n, e);
        return 0;
}

static int check_uncommitted(struct node *n, struct errmsg *e) {
        int r;

        if (n->committed)
                return errmsg_set(e, EALREADY, "this node is initialized or joined already");
        r = node_lock_is_free(n->tpm, e);
        if (r < 0)
                return r;
        if (r == 0)
                return errmsg_set(e, EALREADY, "the node lock (PCR %d) is taken: this node belongs to a cluster",
                                  NODE_LOCK_PCR);
        return node_disk_uuid(n, e);
}

int node_init(struct node *n, const struct init_request *req, struct init_response *ret, struct errmsg *e) {
        const struct cp_driver *driver;
        struct node_state s = {};
        struct master_state master = {};
        struct policy policy;
        const char *sans[MSG_MAX_SANS + 1];
        struct cp_node cpn;
        uint8_t measurement_secret[KEY_SIZE];
        const char *address;
        int r;

        r = check_uncommitted(n, e);
        if (r < 0)
                return r;
        if (n->opt.init_secret_hash) {
                uint8_t want[32], got[32];
                if (hex_decode_exact(n->opt.init_secret_hash, want, sizeof(want)) < 0)
                        return errmsg_set(e, EINVAL, "the configured init secret hash is not 64 hex digits");
                r = sha256(req->init_secret, KEY_SIZE, got);
                if (r < 0)
                        return r;
                if (!secret_equal(want, got, sizeof(got)))
                        return errmsg_set(e, EPERM, "wrong init secret: it does not match this node's init secret hash");
        }
        r = policy_parse(req->policy, req->policy_size, &policy, e);
        if (r < 0) {
                errmsg_prefix(e, "measurement policy");
                return r;
        }
        driver = cp_driver_by_name(req->driver);
        if (!driver)
                return errmsg_set(e, EINVAL, "unknown control-plane driver \"%s\"", req->driver);
        r = cp_check(driver, e);
        if (r < 0)
                return r;

        snprintf(s.role, sizeof(s.role), "control-plane");
        snprintf(s.node_name, sizeof(s.node_name), "%s", n->opt.node_name);
        snprintf(s.cluster_name, sizeof(s.cluster_name), "%s", req->cluster_name);
        snprintf(s.driver, sizeof(s.driver), "%s", req->driver);
        snprintf(s.mesh_cidr, sizeof(s.mesh_cidr), "%s", req->mesh_cidr);
        snprintf(s.disk_uuid, sizeof(s.disk_uuid), "%s", n->disk_uuid);
        memcpy(s.measurement_salt, req->measurement_salt, KEY_SIZE);
        r = key_measurement_secret(req->master_secret, req->master_salt, measurement_secret);
        if (r >= 0)
                r = key_cluster_id(measurement_secret, req->measurement_salt, s.cluster_id);
        secret_wipe(measurement_secret, sizeof(measurement_secret));
        if (r < 0)
                return errmsg_set(e, r, "key derivation failed");
        /* The registry lives in the control plane that is about to start on
         * the mesh address, so the first node takes the first address of
         * the mesh CIDR without asking it, and claims it in the registry
         * once it runs (register_self). */
        r = registry_first_address(s.mesh_cidr, s.mesh_address, e);
        if (r < 0) {
                errmsg_prefix(e, "mesh CIDR");
                return r;
        }
        address = cp_address(n, &s);
        registry_endpoints(n, req->driver, address, &s);

        r = mesh_up(n, &s, NULL, 0, e);
        if (r < 0)
                goto fail;
        cp_node_fill(n, address, req->cluster_name, &req->k8s, sans, &cpn);
        r = cp_init(driver, &cpn, &n->cp, e);
        if (r < 0)
                goto fail;
        r = register_self(n, &s, e);
        if (r < 0) {
                errmsg_prefix(e, "registry");
                goto fail;
        }
        /* The disk last before the commit: a re-key is not undone. */
        {
                uint8_t disk_key[KEY_SIZE];
                r = key_disk(req->master_secret, req->master_salt, s.disk_uuid, disk_key);
                if (r >= 0)
                        r = rekey(n, s.disk_uuid, disk_key, e);
                secret_wipe(disk_key, sizeof(disk_key));
                if (r < 0)
                        goto fail;
        }
        memcpy(master.master_secret, req->master_secret, KEY_SIZE);
        memcpy(master.master_salt, req->master_salt, KEY_SIZE);
        r = commit(n, &s, &master, req->policy, req->policy_size, e);
        secret_wipe(&master, sizeof(master));
        if (r < 0)
                goto fail;

        *ret = (struct init_response){};
        memcpy(ret->cluster_id, s.cluster_id, KEY_SIZE);
        snprintf(ret->node_name, sizeof(ret->node_name), "%s", s.node_name);
        snprintf(ret->mesh_address, sizeof(ret->mesh_address), "%s", s.mesh_address);
        snprintf(ret->wg_public_key, sizeof(ret->wg_public_key), "%s", n->wg_public);
        ret->kubeconfig = malloc(n->cp.kubeconfig_size + 1);
        if (!ret->kubeconfig)
                return -ENOMEM;
        memcpy(ret->kubeconfig, n->cp.kubeconfig ? n->cp.kubeconfig : "", n->cp.kubeconfig_size);
        ret->kubeconfig_size = n->cp.kubeconfig_size;
        return 0;
fail:
        if (!n->committed)
                node_rollback(n);
        return r;
}

int node_join(struct node *n, const struct join_response *resp, struct errmsg *e) {
        const struct cp_driver *driver;
        struct node_state s = {};
        struct master_state master = {};
        const char *sans[1];
        struct cp_node cpn;
        enum cp_role role;
        const char *address;
        int r;

        r = check_uncommitted(n, e);
        if (r < 0)
                return r;
        driver = cp_driver_by_name(resp->driver);
        if (!driver)
                return errmsg_set(e, EINVAL, "unknown control-plane driver \"%s\"", resp->driver);
        r = cp_role_from_string(n->opt.role, &role);
        if (r < 0)
                return errmsg_set(e, EINVAL, "invalid role \"%s\"", n->opt.role);
        if ((role == CP_ROLE_CONTROL_PLANE) != resp->has_master)
                return errmsg_set(e, EPROTO, "the join service answered for another role than %s", n->opt.role);
        r = cp_check(driver, e);
        if (r < 0)
                return r;

        snprintf(s.role, sizeof(s.role), "%s", n->opt.role);
        snprintf(s.node_name, sizeof(s.node_name), "%s", n->opt.node_name);
        snprintf(s.cluster_name, sizeof(s.cluster_name), "%s", resp->cluster_name);
        snprintf(s.driver, sizeof(s.driver), "%s", resp->driver);
        snprintf(s.mesh_cidr, sizeof(s.mesh_cidr), "%s", resp->mesh_cidr);
        snprintf(s.mesh_address, sizeof(s.mesh_address), "%s", resp->mesh_address);
        snprintf(s.disk_uuid, sizeof(s.disk_uuid), "%s", n->disk_uuid);
        memcpy(s.cluster_id, resp->cluster_id, KEY_SIZE);
        memcpy(s.measurement_salt, resp->measurement_salt, KEY_SIZE);
        address = cp_address(n, &s);
        if (role == CP_ROLE_CONTROL_PLANE)
                registry_endpoints(n, resp->driver, address, &s);

        /* Mesh first: a control-plane joiner's etcd reaches the other
         * members over arca0 (they add this node as a peer at their next
         * mesh refresh; etcd retries until then). The disk last before the
         * commit: a re-key is not undone. */
        r = mesh_up(n, &s, resp->peers, resp->n_peers, e);
        if (r < 0)
                goto fail;
        cp_node_fill(n, address, resp->cluster_name, NULL, sans, &cpn);
        r = cp_join(driver, &cpn, role, resp->cp_params, &n->cp, e);
        if (r < 0)
                goto fail;
        r = rekey(n, s.disk_uuid, resp->disk_key, e);
        if (r < 0)
                goto fail;
        if (resp->has_master) {
                memcpy(master.master_secret, resp->master_secret, KEY_SIZE);
                memcpy(master.master_salt, resp->master_salt, KEY_SIZE);
        }
        r = commit(n, &s, resp->has_master ? &master : NULL, resp->policy, resp->policy_size, e);
        secret_wipe(&master, sizeof(master));
        if (r < 0)
                goto fail;
        return 0;
fail:
        if (!n->committed)
                node_rollback(n);
        return r;
}
