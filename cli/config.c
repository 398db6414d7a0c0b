/* SPDX-License-Identifier: Apache-2.0 */
/* arca config generate: a commented cluster configuration and the owner's
 * secrets, made before any node exists. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "owner.h"
#include "secret.h"
#include "validate.h"

static void help(void) {
        printf("Usage: arca config generate [OPTIONS]\n\n"
               "Write DIR/arca.conf, a commented cluster configuration, and DIR/arca-owner.json\n"
               "(mode 0600) with a fresh master secret, master salt, measurement salt and\n"
               "init secret. Prints the init secret's SHA-256, which the platform gives the\n"
               "nodes (arca-bootstrapper --init-secret-hash). Never overwrites either file.\n\n"
               "  --dir DIR             output directory (default .)\n"
               "  --name NAME           cluster name (default arca)\n"
               "  --init HOST[:PORT]    the first node (init server, port 9000)\n"
               "  --driver NAME         control-plane driver: kubeadm (default) or etcd\n"
               "  --policy FILE         measurement policy (default measurements.json)\n"
               "  --platform-ca FILE    qemu-vtpm platform CA (default platform-ca.pem)\n"
               "  --mesh-cidr CIDR      mesh network (default 10.123.0.0/16)\n");
}

static int write_conf(const char *path, const char *name, const char *init, const char *driver, const char *policy,
                      const char *ca, const char *mesh) {
        FILE *f;
        int fd;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create %s: %m%s", path,
                                       errno == EEXIST ? " (refusing to overwrite)" : "");
        f = fdopen(fd, "w");
        if (!f) {
                close(fd);
                return log_error_errno(errno, "Cannot write %s: %m", path);
        }
        fprintf(f,
                "# arca cluster configuration. Relative paths are relative to this file.\n"
                "\n"
                "[cluster]\n"
                "# Cluster name: lowercase letters, digits, '-' and '.'.\n"
                "name = %s\n"
                "# Mesh network: the join services assign each node one address from it.\n"
                "mesh-cidr = %s\n"
                "\n"
                "[nodes]\n"
                "# The first node, which `arca init` initializes (init server port 9000).\n"
                "%sinit = %s\n"
                "\n"
                "[kubernetes]\n"
                "# version = v1.29.3\n"
                "pod-cidr = 10.244.0.0/16\n"
                "service-cidr = 10.96.0.0/12\n"
                "# Extra names or addresses of the API server certificate, comma separated.\n"
                "# api-sans = api.example.com\n"
                "\n"
                "[control-plane]\n"
                "# kubeadm (Kubernetes) or etcd (a standalone etcd cluster, for machines\n"
                "# without Kubernetes binaries).\n"
                "driver = %s\n"
                "\n"
                "[owner]\n"
                "# The owner's secrets (mode 0600): keep them safe, they recover the cluster.\n"
                "secrets = arca-owner.json\n"
                "# Written by `arca init`: cluster ID and endpoints, and the admin credential.\n"
                "state = arca-cluster.json\n"
                "kubeconfig = arca-admin.conf\n"
                "\n"
                "[attestation]\n"
                "# Attestation variant of the nodes: qemu-vtpm.\n"
                "variant = qemu-vtpm\n"
                "# Measurement policy: {\"4\": {\"expected\": \"<hex>\", \"warnOnly\": false}, ...}\n"
                "policy = %s\n"
                "# Optional detached ECDSA P-256 signature of the policy and its public key:\n"
                "# policy-signature = %s.sig\n"
                "# policy-key = policy-key.pub\n"
                "# The platform CA that certifies the nodes' attestation keys (qemu-vtpm).\n"
                "platform-ca = %s\n",
                name, mesh, init ? "" : "# ", init ? init : "10.0.0.2", driver, policy, policy, ca);
        if (fflush(f) != 0 || ferror(f)) {
                fclose(f);
                return log_error_errno(EIO, "Cannot write %s.", path);
        }
        fclose(f);
        return 0;
}

int verb_config(int argc, char **argv) {
        static const struct option opts[] = {
                { "dir", required_argument, NULL, 'd' },       { "name", required_argument, NULL, 'n' },
                { "init", required_argument, NULL, 'i' },      { "driver", required_argument, NULL, 'D' },
                { "policy", required_argument, NULL, 'p' },    { "platform-ca", required_argument, NULL, 'c' },
                { "mesh-cidr", required_argument, NULL, 'm' }, { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *dir = ".", *name = "arca", *init = NULL, *driver = "kubeadm", *policy = "measurements.json",
                   *ca = "platform-ca.pem", *mesh = "10.123.0.0/16";
        _cleanup_free_ char *conf = NULL, *owner = NULL;
        struct owner_secrets s = {};
        struct errmsg e = {};
        char hash[65];
        int c, r;

        if (argc < 2 || !streq(argv[1], "generate")) {
                if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
                        help();
                        return 0;
                }
                log_error("Usage: arca config generate [OPTIONS] (see --help).");
                return 2;
        }
        optind = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd': dir = optarg; break;
                case 'n': name = optarg; break;
                case 'i': init = optarg; break;
                case 'D': driver = optarg; break;
                case 'p': policy = optarg; break;
                case 'c': ca = optarg; break;
                case 'm': mesh = optarg; break;
                case 'h': help(); return 0;
                default: return 2;
                }
        if (!valid_node_name(name)) {
                log_error("Invalid --name \"%s\": lowercase letters, digits, '-' and '.'.", name);
                return 2;
        }
        if (!streq(driver, "kubeadm") && !streq(driver, "etcd")) {
                log_error("Invalid --driver \"%s\": kubeadm or etcd.", driver);
                return 2;
        }
        if (!valid_cidr4(mesh)) {
                log_error("Invalid --mesh-cidr \"%s\".", mesh);
                return 2;
        }
        if (strpbrk(policy, "\n") || strpbrk(ca, "\n") || (init && strpbrk(init, "\n"))) {
                log_error("Values must not contain newlines.");
                return 2;
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create %s: %m", dir), 1;
        if (asprintf(&conf, "%s/arca.conf", dir) < 0 || asprintf(&owner, "%s/arca-owner.json", dir) < 0)
                return log_oom(), 1;
        if (access(conf, F_OK) == 0 || access(owner, F_OK) == 0) {
                log_error("%s or %s exists already; refusing to overwrite a cluster's configuration or secrets.",
                          conf, owner);
                return 1;
        }
        r = owner_secrets_generate(&s);
        if (r >= 0)
                r = owner_secrets_create(owner, &s, &e);
        if (r >= 0)
                r = owner_init_secret_hash(&s, hash);
        secret_wipe(&s, sizeof(s));
        if (r < 0)
                return log_error_errno(r, "Cannot create the owner secrets: %s", errmsg_str(&e)), 1;
        if (write_conf(conf, name, init, driver, policy, ca, mesh) < 0) {
                unlink(owner);
                return 1;
        }
        printf("Wrote %s and %s (keep the latter secret).\n", conf, owner);
        printf("init-secret-hash: %s\n", hash);
        return 0;
}
