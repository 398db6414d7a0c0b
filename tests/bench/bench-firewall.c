/* SPDX-License-Identifier: Apache-2.0 */
/* Firewall figures in a private network namespace (real nftables), for 3
 * and 1000 nodes, medians:
 *   update   firewall_update_nodes() (the mesh agent calls it whenever the
 *            peer list changes): a fresh libnftables context, one
 *            transaction, the context freed
 *   apply    firewall_apply() (the whole table)
 * against two references measured in the same run:
 *   nft -f   the same update script through the nft command (a process per
 *            update: what a shell-out would cost); target: update no slower
 *            than that, <= 1.2x allowing for noise (both pay the same
 *            socket release below)
 *   ctx      the same script through one long-lived libnftables context
 *            (the kernel transaction and nft's parsing alone). The gap to
 *            it is the kernel releasing the netlink socket: after a
 *            transaction that deleted anything (flushed set elements, the
 *            replaced table), close() waits for nf_tables' destroy work and
 *            so for an RCU grace period, although the new rules are in force
 *            since the commit. Reported, no target.
 * Exit 77 when a network namespace cannot be made (not root) or nft is
 * missing. */
#include <errno.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errmsg.h"
#include "firewall.h"
#include "macro.h"
#include "time-util.h"

#define RUNS 60
#define TARGET_RATIO 1.2

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return v[n / 2];
}

/* Two node lists of n addresses that share all but one. */
static void make_lists(size_t n, char (*text)[2][48], const char **a, const char **b) {
        for (size_t i = 0; i < n; i++) {
                snprintf(text[i][0], sizeof(text[i][0]), "10.%zu.%zu.%zu", 1 + i / 62500, (i / 250) % 250,
                         1 + i % 250);
                snprintf(text[i][1], sizeof(text[i][1]), "%s", text[i][0]);
                a[i] = text[i][0];
                b[i] = text[i][1];
        }
        snprintf(text[n - 1][1], sizeof(text[n - 1][1]), "fd00::%zx", n);
}

/* `nft -f -` with the script on stdin; seconds, or < 0. */
static double nft_cli(const char *script) {
        double t0 = now_s();
        int fds[2], status;
        pid_t pid;

        if (pipe(fds) < 0)
                return -1;
        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                dup2(fds[0], 0);
                close(fds[0]);
                close(fds[1]);
                execlp("nft", "nft", "-f", "-", (char *) NULL);
                _exit(127);
        }
        close(fds[0]);
        if (write(fds[1], script, strlen(script)) != (ssize_t) strlen(script)) {
                close(fds[1]);
                return -1;
        }
        close(fds[1]);
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1;
        return now_s() - t0;
}

static int measure(size_t n) {
        _cleanup_free_ char(*text)[2][48] = calloc(n, sizeof(*text));
        _cleanup_free_ const char **a = calloc(n, sizeof(*a)), **b = calloc(n, sizeof(*b));
        _cleanup_free_ char *script_a = NULL, *script_b = NULL;
        double t_ref[RUNS], t_cli[RUNS], t_upd[RUNS], t_apply[RUNS], ref, cli, upd, app;
        struct firewall_config c;
        struct nft_ctx *ctx;
        struct errmsg e = {};

        if (!text || !a || !b)
                return -ENOMEM;
        make_lists(n, text, a, b);
        firewall_config_default(&c);
        c.nodes = a;
        c.n_nodes = n;
        if (firewall_apply(&c, &e) < 0 || firewall_render_nodes(a, n, &script_a, &e) < 0 ||
            firewall_render_nodes(b, n, &script_b, &e) < 0) {
                printf("firewall: %s\n", errmsg_str(&e));
                return -EIO;
        }

        ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!ctx || nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0)
                return -ENOMEM;
        for (int i = 0; i < RUNS; i++) {
                double t0 = now_s();
                if (nft_run_cmd_from_buffer(ctx, i % 2 ? script_a : script_b) != 0) {
                        printf("reference: %s\n", nft_ctx_get_error_buffer(ctx));
                        nft_ctx_free(ctx);
                        return -EIO;
                }
                t_ref[i] = now_s() - t0;
        }
        nft_ctx_free(ctx);

        for (int i = 0; i < RUNS; i++) {
                t_cli[i] = nft_cli(i % 2 ? script_a : script_b);
                if (t_cli[i] < 0) {
                        printf("nft -f failed\n");
                        return -EIO;
                }
        }
        for (int i = 0; i < RUNS; i++) {
                double t0 = now_s();
                if (firewall_update_nodes(i % 2 ? a : b, n, &e) < 0) {
                        printf("update: %s\n", errmsg_str(&e));
                        return -EIO;
                }
                t_upd[i] = now_s() - t0;
        }
        for (int i = 0; i < RUNS; i++) {
                double t0 = now_s();
                c.nodes = i % 2 ? a : b;
                if (firewall_apply(&c, &e) < 0) {
                        printf("apply: %s\n", errmsg_str(&e));
                        return -EIO;
                }
                t_apply[i] = now_s() - t0;
        }
        firewall_remove(&e);

        ref = median(t_ref, RUNS);
        cli = median(t_cli, RUNS);
        upd = median(t_upd, RUNS);
        app = median(t_apply, RUNS);
        printf("%4zu nodes: update_nodes %6.2f ms  apply %6.2f ms  nft -f %6.2f ms  long-lived ctx %6.2f ms\n", n,
               upd * 1e3, app * 1e3, cli * 1e3, ref * 1e3);
        printf("            update / nft -f %.2fx (target <= %.1fx): %s;  update / long-lived ctx %.1fx\n",
               upd / cli, TARGET_RATIO, upd / cli <= TARGET_RATIO ? "met" : "MISSED", upd / ref);
        return 0;
}

int main(void) {
        static const size_t sizes[] = { 3, 1000 };

        if (system("nft --version >/dev/null 2>&1") != 0) {
                printf("skipped: nft (package nftables) is not installed\n");
                return 77;
        }
        if (unshare(CLONE_NEWNET) < 0) {
                printf("skipped: cannot make a network namespace (%s; needs root)\n", strerror(errno));
                return 77;
        }
        printf("median of %d runs, private network namespace\n", RUNS);
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                if (measure(sizes[i]) < 0)
                        return 1;
        return 0;
}
