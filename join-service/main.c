/* SPDX-License-Identifier: Apache-2.0 */
/* arca-join-service: join, rejoin and mesh refresh for the nodes of a cluster, on
 * control-plane nodes. Started by arca-bootstrapper once the node is
 * initialized or has joined as a control-plane node. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "joinservice.h"
#include "log.h"
#include "tpm.h"
#include "validate.h"

static void help(void) {
        printf("Usage: arca-join-service [OPTIONS]\n\n"
               "Serves join (POST /v1/join), rejoin (POST /v1/rejoin) and mesh refresh\n"
               "(POST /v1/mesh) over mutual aTLS on port %u. Every peer must satisfy the\n"
               "owner's measurement policy; joiners have PCR 15 zero, members the cluster's\n"
               "node lock. A member whose measurements drift is removed at its next\n"
               "attestation; members that stop refreshing are removed after --member-timeout.\n"
               "Reads the node state, master secret and policy from the state directory\n"
               "written at init or control-plane join.\n\n"
               "  --state-dir DIR         node state (default /run/state)\n"
               "  --attester-fd N         have this service's evidence issued over the attestation\n"
               "                          channel N (a SOCK_SEQPACKET socket) by the node's TPM user\n"
               "                          (arca-bootstrapper passes it): this process does not open\n"
               "                          the TPM\n"
               "  --tcti CONF             without --attester-fd: TPM access (default $ARCA_TCTI or\n"
               "                          device:/dev/tpmrm0)\n"
               "  --variant NAME          attestation variant (default qemu-vtpm)\n"
               "  --ak-handle HEX         AK handle (default 0x%08x)\n"
               "  --listen ADDR           listen address (default 0.0.0.0)\n"
               "  --port N                port (default %u)\n"
               "  --underlay ADDR         this node's underlay address\n"
               "  --control-plane-on-mesh the control plane (etcd, Kubernetes) uses mesh addresses:\n"
               "                          this node's and joiners' (default: underlay addresses, for\n"
               "                          nodes without a mesh)\n"
               "  --platform-ca FILE      CA certifying joiners' attestation keys (qemu-vtpm)\n"
               "  --kubernetes-dir DIR    kubeadm's directory (default /etc/kubernetes)\n"
               "  --refresh-interval S    seconds between a member's mesh refreshes (default %u)\n"
               "  --member-timeout S      remove members not refreshed for S seconds (default %u)\n"
               "  --workers N             registry worker threads (default %u)\n"
               "  --check-config          load everything, then exit\n"
               "  --features              print what this join service offers, one per line, then exit\n"
               "  --log-level LEVEL       err, warning, info, debug\n\n"
               "Unless GLIBC_TUNABLES is set, it starts itself once more with\n"
               "GLIBC_TUNABLES=glibc.malloc.tcache_count=0 (glibc's per-thread malloc caches\n"
               "off: less memory with its worker threads), and clears it for what it runs.\n",
               JOIN_SERVICE_PORT, TPM_AK_HANDLE, JOIN_SERVICE_PORT, JOIN_SERVICE_REFRESH_INTERVAL,
               JOIN_SERVICE_MEMBER_TIMEOUT, JOIN_SERVICE_WORKERS);
}

/* glibc keeps freed blocks in a cache per thread (tcache: up to 7 of each
 * size up to 1 KiB) for that thread's next allocations. With the loop and
 * the workers sharing one arena, blocks one thread freed wait in its cache
 * while the others grow the heap: bench-join found ~0.4 MiB of the join
 * service's peak RSS at 100 members in them. The cache can be turned off
 * only through the environment, which glibc reads as a program starts, so
 * the join service starts itself once more with it set (unless
 * GLIBC_TUNABLES was given: then it runs as given), and clears it again
 * for the processes it runs (the control-plane driver's). */
#define MALLOC_TUNABLES "glibc.malloc.tcache_count=0"

static void malloc_setup(char **argv) {
        const char *t = getenv("GLIBC_TUNABLES");
        char self[PATH_MAX];
        ssize_t n;

        /* A set-id or file-capability binary (AT_SECURE): glibc ignores
         * GLIBC_TUNABLES there, so starting again would never end. */
        if (!t && !getauxval(AT_SECURE)) {
                /* By its path, not /proc/self/exe: the process keeps its
                 * name (comm). */
                n = readlink("/proc/self/exe", self, sizeof(self) - 1);
                if (n > 0 && setenv("GLIBC_TUNABLES", MALLOC_TUNABLES, 1) == 0) {
                        self[n] = 0;
                        execv(self, argv);
                }
                /* Not started again (no /proc?): glibc's defaults. */
                unsetenv("GLIBC_TUNABLES");
        } else if (streq(t, MALLOC_TUNABLES))
                unsetenv("GLIBC_TUNABLES");
        /* One arena for the loop and all workers: the workers are mostly
         * waiting on etcd, and an arena per thread would keep its own free
         * memory (resident) for each. */
        mallopt(M_ARENA_MAX, 1);
}

static void on_signal(evutil_socket_t fd, short what, void *arg) {
        log_info("Received signal %d, shutting down.", (int) fd);
        event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
        enum { ARG_STATE = 256, ARG_TCTI, ARG_VARIANT, ARG_AK, ARG_LISTEN, ARG_PORT, ARG_UNDERLAY, ARG_CA, ARG_KDIR,
               ARG_CHECK, ARG_LOG, ARG_REFRESH, ARG_TIMEOUT, ARG_WORKERS, ARG_CP_MESH, ARG_FEATURES,
               ARG_ATTESTER_FD };
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "attester-fd", required_argument, NULL, ARG_ATTESTER_FD },
                { "variant", required_argument, NULL, ARG_VARIANT },
                { "ak-handle", required_argument, NULL, ARG_AK },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "port", required_argument, NULL, ARG_PORT },
                { "underlay", required_argument, NULL, ARG_UNDERLAY },
                { "control-plane-on-mesh", no_argument, NULL, ARG_CP_MESH },
                { "platform-ca", required_argument, NULL, ARG_CA },
                { "kubernetes-dir", required_argument, NULL, ARG_KDIR },
                { "check-config", no_argument, NULL, ARG_CHECK },
                { "features", no_argument, NULL, ARG_FEATURES },
                { "refresh-interval", required_argument, NULL, ARG_REFRESH },
                { "member-timeout", required_argument, NULL, ARG_TIMEOUT },
                { "workers", required_argument, NULL, ARG_WORKERS },
                { "log-level", required_argument, NULL, ARG_LOG },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct join_service_options o = {
                .variant = "qemu-vtpm",
                .ak_handle = TPM_AK_HANDLE,
                .state_dir = "/run/state",
                .listen = "0.0.0.0",
                .port = JOIN_SERVICE_PORT,
                .underlay = "127.0.0.1",
                .attester_fd = -1,
        };
        struct join_service *s = NULL;
        struct event_base *base = NULL;
        struct event *sigint = NULL, *sigterm = NULL;
        struct errmsg e = {};
        bool check = false;
        unsigned long v;
        char *end;
        int c, l, r, ret = 1;

        malloc_setup(argv);
        log_setup("arca-join-service");
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_STATE:
                        o.state_dir = optarg;
                        break;
                case ARG_TCTI:
                        o.tcti = optarg;
                        break;
                case ARG_ATTESTER_FD:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || !*optarg || v < 3 || v > INT_MAX) {
                                log_error("Invalid --attester-fd \"%s\": expected a descriptor number above 2.",
                                          optarg);
                                return 2;
                        }
                        o.attester_fd = (int) v;
                        break;
                case ARG_VARIANT:
                        o.variant = optarg;
                        break;
                case ARG_AK:
                        if (tpm_parse_persistent_handle(optarg, &o.ak_handle) < 0) {
                                log_error("Invalid --ak-handle \"%s\": expected 0x81xxxxxx.", optarg);
                                return 2;
                        }
                        break;
                case ARG_LISTEN:
                        o.listen = optarg;
                        break;
                case ARG_PORT:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v > 65535) {
                                log_error("Invalid --port \"%s\".", optarg);
                                return 2;
                        }
                        o.port = (uint16_t) v;
                        break;
                case ARG_UNDERLAY:
                        if (!valid_address(optarg)) {
                                log_error("Invalid --underlay \"%s\": expected an IP address.", optarg);
                                return 2;
                        }
                        o.underlay = optarg;
                        break;
                case ARG_CP_MESH:
                        o.control_plane_on_mesh = true;
                        break;
                case ARG_CA:
                        o.platform_ca = optarg;
                        break;
                case ARG_KDIR:
                        o.kubernetes_dir = optarg;
                        break;
                case ARG_CHECK:
                        check = true;
                        break;
                case ARG_REFRESH:
                case ARG_TIMEOUT:
                case ARG_WORKERS:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || !*optarg || v == 0 || v > 86400) {
                                log_error("Invalid --%s \"%s\": expected a positive number.",
                                          c == ARG_REFRESH ? "refresh-interval"
                                          : c == ARG_TIMEOUT ? "member-timeout"
                                                             : "workers",
                                          optarg);
                                return 2;
                        }
                        if (c == ARG_REFRESH)
                                o.refresh_interval = (unsigned) v;
                        else if (c == ARG_TIMEOUT)
                                o.member_timeout = (unsigned) v;
                        else
                                o.workers = (unsigned) v;
                        break;
                case ARG_LOG:
                        l = log_level_from_string(optarg);
                        if (l < 0) {
                                log_error("Invalid --log-level \"%s\".", optarg);
                                return 2;
                        }
                        log_set_max_level(l);
                        break;
                case ARG_FEATURES:
                        /* For tools (arca mini) that ask rather than guess. */
                        fputs(JOIN_SERVICE_FEATURES, stdout);
                        return 0;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        signal(SIGPIPE, SIG_IGN);
        base = event_base_new();
        if (!base)
                return log_oom(), 1;
        r = join_service_new(base, &o, &s, &e);
        if (r < 0) {
                log_error_errno(r, "Cannot start the join service: %s", errmsg_str(&e));
                goto out;
        }
        if (check) {
                log_info("Configuration OK.");
                ret = 0;
                goto out;
        }
        sigint = evsignal_new(base, SIGINT, on_signal, base);
        sigterm = evsignal_new(base, SIGTERM, on_signal, base);
        if (!sigint || !sigterm || event_add(sigint, NULL) < 0 || event_add(sigterm, NULL) < 0) {
                log_oom();
                goto out;
        }
        log_info("Join service listening on %s:%u.", o.listen, join_service_port(s));
        printf("READY port=%u\n", join_service_port(s));
        fflush(stdout);
        event_base_dispatch(base);
        ret = 0;
out:
        if (sigint)
                event_free(sigint);
        if (sigterm)
                event_free(sigterm);
        join_service_free(s);
        event_base_free(base);
        return ret;
}
