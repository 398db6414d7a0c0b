/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini, network-namespace launcher: each node is a network namespace
 * with a veth on a bridge of this machine, its own swtpm (on loopback
 * inside the namespace), and its daemons in a mount namespace of their own
 * whose /run is the node's (wireguard-go keeps its sockets in /run). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mini.h"
#include "openssl-util.h"
#include "platform.h"
#include "tpm.h"

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static int ip(char *const *argv) {
        _cleanup_free_ char *out = NULL;
        int r;

        r = mini_exec(argv, &out);
        if (r != 0) {
                size_t l = out ? strlen(out) : 0;
                while (l > 0 && out[l - 1] == '\n')
                        out[--l] = 0;
                log_error("%s %s %s %s failed: %s", argv[0], argv[1], argv[2] ? argv[2] : "",
                          argv[2] && argv[3] ? argv[3] : "", out && *out ? out : "exit status");
                return r < 0 ? r : -EIO;
        }
        return 0;
}

static int netns_network_create(struct mini_cluster *c) {
        char cidr[32];
        int r;

        r = mini_journal_add(c, "bridge", "%s", c->bridge);
        if (r < 0)
                return r;
        snprintf(cidr, sizeof(cidr), "%s/24", c->host_address);
        if ((r = ip((char *[]){ "ip", "link", "add", c->bridge, "type", "bridge", NULL })) < 0 ||
            (r = ip((char *[]){ "ip", "addr", "add", cidr, "dev", c->bridge, NULL })) < 0 ||
            (r = ip((char *[]){ "ip", "link", "set", c->bridge, "up", NULL })) < 0)
                return r;
        return 0;
}

static void veth_name(const struct mini_cluster *c, const struct mini_node *n, char buf[IFNAMSIZ]) {
        const char *dot = strrchr(n->address, '.');
        snprintf(buf, IFNAMSIZ, "v%s-%s", c->name, dot ? dot + 1 : "x");
}

/* The node's "firmware": measure the binaries it will run, then the
 * platform certifies its attestation key. */
static int boot_tpm(const struct mini_cluster *c, const struct mini_node *n) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        struct errmsg e = {};
        double deadline = now_s() + 20;
        int r;

        if (asprintf(&kp, "%s/platform-ca.key", c->ca_dir) < 0 || asprintf(&cp, "%s/platform-ca.pem", c->ca_dir) < 0)
                return log_oom();
        if ((r = pem_read_privkey_file(kp, &key)) < 0 || (r = pem_read_x509_file(cp, &cert)) < 0)
                return log_error_errno(r, "%s: cannot read the platform CA in %s: %m", n->name, c->ca_dir);
        for (;;) {
                e = (struct errmsg){};
                r = tpm_open(MINI_TCTI, &tpm, &e);
                if (r >= 0)
                        break;
                if (now_s() > deadline)
                        return log_error_errno(r, "%s: the TPM does not answer: %s (see %s/swtpm.log)", n->name,
                                               errmsg_str(&e), n->dir);
                usleep(20000);
        }
        if ((r = tpm_pcr_extend(tpm, MINI_PCR_BOOTSTRAPPER, c->digest_bootstrapper, &e)) < 0 ||
            (r = tpm_pcr_extend(tpm, MINI_PCR_JOIN_SERVICE, c->digest_join_service, &e)) < 0)
                return log_error_errno(r, "%s: cannot measure the boot: %s", n->name, errmsg_str(&e));
        r = platform_provision_ak(tpm, TPM_AK_HANDLE, key, cert, &e);
        if (r < 0)
                return log_error_errno(r, "%s: cannot certify the attestation key: %s", n->name, errmsg_str(&e));
        return 0;
}

static int netns_node_create(struct mini_cluster *c, const struct mini_node *n) {
        char veth[IFNAMSIZ], cidr[32], tpm_dir[PATH_MAX + 8], run_dir[PATH_MAX + 8], log[PATH_MAX + 16],
                state[PATH_MAX + 8], server[64], ctrl[64], tpmstate[PATH_MAX + 16];
        pid_t pid;
        int r;

        veth_name(c, n, veth);
        snprintf(cidr, sizeof(cidr), "%s/24", n->address);
        if ((r = mini_journal_add(c, "netns", "%s", n->netns)) < 0 ||
            (r = ip((char *[]){ "ip", "netns", "add", (char *) n->netns, NULL })) < 0)
                return r;
        if ((r = mini_journal_add(c, "link", "%s", veth)) < 0 ||
            (r = ip((char *[]){ "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                                (char *) n->netns, NULL })) < 0 ||
            (r = ip((char *[]){ "ip", "link", "set", veth, "master", c->bridge, "up", NULL })) < 0 ||
            (r = ip((char *[]){ "ip", "-n", (char *) n->netns, "addr", "add", cidr, "dev", "eth0", NULL })) < 0 ||
            (r = ip((char *[]){ "ip", "-n", (char *) n->netns, "link", "set", "eth0", "up", NULL })) < 0 ||
            (r = ip((char *[]){ "ip", "-n", (char *) n->netns, "link", "set", "lo", "up", NULL })) < 0)
                return r;

        snprintf(tpm_dir, sizeof(tpm_dir), "%s/tpm", n->dir);
        snprintf(run_dir, sizeof(run_dir), "%s/run", n->dir);
        snprintf(state, sizeof(state), "%s/state", n->dir);
        if ((r = mkdir_p(tpm_dir, 0700)) < 0 || (r = mkdir_p(run_dir, 0755)) < 0 ||
            (r = mkdir_p(state, 0700)) < 0)
                return log_error_errno(r, "Cannot create %s: %m", n->dir);

        snprintf(log, sizeof(log), "%s/swtpm.log", n->dir);
        snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", MINI_TPM_PORT);
        snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", MINI_TPM_PORT + 1);
        snprintf(tpmstate, sizeof(tpmstate), "dir=%s", tpm_dir);
        char *argv[] = { "/usr/bin/swtpm", "socket", "--tpm2", "--server", server, "--ctrl", ctrl,
                         "--tpmstate", tpmstate, "--flags", "not-need-init,startup-clear", NULL };
        r = mini_spawn(n->netns, NULL, NULL, argv, log, &pid);
        if (r < 0)
                return log_error_errno(r, "%s: cannot start swtpm: %m", n->name);
        r = mini_journal_add(c, "pid", "%d %llu", (int) pid, mini_pid_start_time(pid));
        if (r < 0)
                return r;
        r = mini_enter_netns(n->netns);
        if (r < 0)
                return log_error_errno(r, "Cannot enter %s: %m", n->netns);
        return boot_tpm(c, n);
}

static int netns_node_start(struct mini_cluster *c, const struct mini_node *n, char **argv) {
        char run_dir[PATH_MAX + 8], log[PATH_MAX + 32];
        pid_t pid;
        int r;

        snprintf(run_dir, sizeof(run_dir), "%s/run", n->dir);
        snprintf(log, sizeof(log), "%s/bootstrapper.log", n->dir);
        r = mini_spawn(n->netns, run_dir, c->state_dir, argv, log, &pid);
        if (r < 0)
                return log_error_errno(r, "%s: cannot start %s: %m", n->name, argv[0]);
        return mini_journal_add(c, "pid", "%d %llu", (int) pid, mini_pid_start_time(pid));
}

static int netns_node_run(const struct mini_cluster *c, const struct mini_node *n, mini_node_fn fn, void *userdata,
                          char **ret_output) {
        _cleanup_free_ char *out = NULL;
        int pipefd[2], status;
        pid_t pid, parent;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        parent = getpid();
        pid = fork();
        if (pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return -errno;
        }
        if (pid == 0) {
                int r;
                mini_die_with_parent(parent);
                close(pipefd[0]);
                r = mini_enter_netns(n->netns);
                if (r >= 0)
                        r = fn(c, n, userdata, pipefd[1]);
                _exit(r < 0 ? 1 : 0);
        }
        close(pipefd[1]);
        if (mini_read_all(pipefd[0], &out) < 0)
                out = NULL;
        close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (!out)
                return -ENOMEM;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        *ret_output = TAKE_PTR(out);
        return 0;
}

/* Every process whose network namespace is `netns` (what `ip netns pids`
 * finds), killed: daemons, their children, anything started in it. */
static void kill_netns_processes(const char *netns) {
        char path[PATH_MAX];
        struct stat ns_st;

        snprintf(path, sizeof(path), "/run/netns/%s", netns);
        if (stat(path, &ns_st) < 0)
                return;
        for (int round = 0; round < 3; round++) {
                _cleanup_(closedirp) DIR *d = opendir("/proc");
                struct dirent *de;
                unsigned found = 0;

                if (!d)
                        return;
                while ((de = readdir(d))) {
                        char nspath[64];
                        struct stat st;
                        pid_t pid = (pid_t) strtol(de->d_name, NULL, 10);

                        if (pid <= 1 || pid == getpid())
                                continue;
                        snprintf(nspath, sizeof(nspath), "/proc/%d/ns/net", (int) pid);
                        if (stat(nspath, &st) < 0 || st.st_ino != ns_st.st_ino || st.st_dev != ns_st.st_dev)
                                continue;
                        found++;
                        mini_kill(pid, 0, 1500);
                }
                if (!found)
                        return;
        }
}

static int netns_remove(const char *kind, const char *value) {
        if (streq(kind, "pid")) {
                int pid;
                unsigned long long start;
                if (sscanf(value, "%d %llu", &pid, &start) == 2 && start != 0)
                        mini_kill(pid, start, 1500);
                return 0;
        }
        if (streq(kind, "netns")) {
                char path[PATH_MAX];
                kill_netns_processes(value);
                snprintf(path, sizeof(path), "/run/netns/%s", value);
                if (access(path, F_OK) == 0)
                        return ip((char *[]){ "ip", "netns", "del", (char *) value, NULL });
                return 0;
        }
        if (streq(kind, "link") || streq(kind, "bridge")) {
                char path[PATH_MAX];
                _cleanup_free_ char *out = NULL;
                int r;

                /* A veth goes away with its peer's namespace, maybe just now. */
                snprintf(path, sizeof(path), "/sys/class/net/%s", value);
                if (access(path, F_OK) < 0)
                        return 0;
                r = mini_exec((char *[]){ "ip", "link", "del", (char *) value, NULL }, &out);
                if (r != 0 && access(path, F_OK) == 0)
                        return log_error_errno(r < 0 ? r : EIO, "Cannot remove interface %s: %s", value,
                                               out ? out : "ip failed");
                return 0;
        }
        return 0;
}

const struct mini_node_ops mini_netns_ops = {
        .name = "netns",
        .network_create = netns_network_create,
        .node_create = netns_node_create,
        .node_start = netns_node_start,
        .node_run = netns_node_run,
        .remove = netns_remove,
};
