/* SPDX-License-Identifier: Apache-2.0 */
/* Attestation figures on a private swtpm, printed next to their targets:
 *   issue    attester_issue() latency (mean, p50, p99)
 *   verify   verifier_verify() of one document on one core, per second, as
 *            a share of `openssl speed ecdsap256` verifies (target >= 25%;
 *            a verification checks two ECDSA signatures, AK certificate and
 *            quote, so 50% is the ceiling)
 *   atls     server-attested aTLS handshakes per second on loopback, the
 *            client verifying the evidence (target 300/s)
 * Missing a target is reported, not failed; a broken handshake fails.
 * Exit 77 when swtpm is not installed.
 *
 * Environment: ARCA_BENCH_SERVERS, ARCA_BENCH_CLIENTS: aTLS server and
 * client threads (default: one each per CPU). Each server thread has its
 * own swtpm, as a node has its own TPM. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "atls.h"
#include "attest.h"
#include "openssl-util.h"
#include "secret.h"
#include "swtpm.h"
#include "time-util.h"
#include "tpm.h"

#define ISSUE_RUNS 200
#define VERIFY_SECONDS 2.0
#define ATLS_SECONDS 3.0
#define MAX_THREADS 16
#define TARGET_VERIFY_SHARE 25.0
#define TARGET_HANDSHAKES 300.0

static struct test_platform plat;

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, unsigned p) {
        size_t rank = (p * n + 99) / 100;
        return v[rank > 0 ? rank - 1 : 0];
}

static unsigned env_unsigned(const char *name, unsigned def) {
        const char *s = getenv(name);
        char *end;
        unsigned long v;

        if (!s || !*s)
                return def;
        v = strtoul(s, &end, 10);
        if (*end || v == 0 || v > MAX_THREADS) {
                fprintf(stderr, "bench-attest: ignoring %s=\"%s\" (1-%d)\n", name, s, MAX_THREADS);
                return def;
        }
        return (unsigned) v;
}

/* A node: its own swtpm, TPM context and attester. */
struct node {
        struct test_swtpm swtpm;
        struct tpm_ctx *tpm;
        struct attester *attester;
};

static void node_stop(struct node *n) {
        n->attester = attester_free(n->attester);
        n->tpm = tpm_free(n->tpm);
        test_swtpm_stop(&n->swtpm);
}

static int node_start(struct node *n) {
        static const char *const events[] = { "kernel", "initrd", "cmdline" };
        static const unsigned pcrs[] = { 4, 9, 11 };
        struct errmsg e = {};
        int r;

        memset(n, 0, sizeof(*n));
        r = test_swtpm_start(&n->swtpm);
        if (r < 0)
                return r;
        r = test_platform_provision(&plat, &n->swtpm);
        if (r < 0)
                goto fail;
        r = tpm_open(n->swtpm.tcti, &n->tpm, &e);
        if (r < 0)
                goto fail;
        /* Boot-like measurements, so the policy compares non-zero values. */
        for (size_t i = 0; i < ELEMENTSOF(pcrs); i++) {
                r = tpm_pcr_event(n->tpm, pcrs[i], events[i], strlen(events[i]), &e);
                if (r < 0)
                        goto fail;
        }
        r = attester_new("qemu-vtpm", n->tpm, TPM_AK_HANDLE, &n->attester, &e);
        if (r < 0)
                goto fail;
        return 0;
fail:
        if (e.text[0])
                fprintf(stderr, "bench-attest: %s\n", e.text);
        node_stop(n);
        return r;
}

/* --- (a) issue latency ---------------------------------------------------- */

static int bench_issue(struct node *n) {
        static double ms[ISSUE_RUNS];
        uint8_t nonce[ATTEST_NONCE_SIZE], ud[ATTEST_USER_DATA_SIZE] = { 2 };
        struct errmsg e = {};
        double sum = 0;

        for (int i = -5; i < ISSUE_RUNS; i++) { /* 5 warm-up runs */
                _cleanup_free_ char *doc = NULL;
                size_t size;
                double t0;
                int r;

                if (secret_random(nonce, sizeof(nonce)) < 0)
                        return -EIO;
                t0 = now_s();
                r = attester_issue(n->attester, ATTEST_PURPOSE_ATLS, nonce, ud, &doc, &size, &e);
                if (r < 0) {
                        fprintf(stderr, "bench-attest: issue: %s\n", errmsg_str(&e));
                        return r;
                }
                if (i >= 0) {
                        ms[i] = (now_s() - t0) * 1e3;
                        sum += ms[i];
                }
        }
        qsort(ms, ISSUE_RUNS, sizeof(ms[0]), cmp_double);
        printf("issue: mean %.2f ms, p50 %.2f ms, p99 %.2f ms (%d runs, swtpm)\n", sum / ISSUE_RUNS,
               percentile(ms, ISSUE_RUNS, 50), percentile(ms, ISSUE_RUNS, 99), ISSUE_RUNS);
        return 0;
}

/* --- (b) verification rate -------------------------------------------------- */

static int bench_verify(struct node *n, struct verifier *v, double *ret_rate) {
        uint8_t nonce[ATTEST_NONCE_SIZE] = { 1 }, ud[ATTEST_USER_DATA_SIZE] = { 2 };
        _cleanup_free_ char *doc = NULL;
        struct verify_report rep;
        struct errmsg e = {};
        unsigned long count = 0;
        double t0, elapsed;
        size_t size;
        int r;

        r = attester_issue(n->attester, ATTEST_PURPOSE_ATLS, nonce, ud, &doc, &size, &e);
        if (r < 0) {
                fprintf(stderr, "bench-attest: issue: %s\n", errmsg_str(&e));
                return r;
        }
        t0 = now_s();
        do {
                /* Check the clock every 64 runs, not every run. */
                for (int i = 0; i < 64; i++, count++) {
                        r = verifier_verify(v, ATTEST_PURPOSE_ATLS, nonce, ud, (const uint8_t *) doc, size, &rep);
                        if (r < 0) {
                                fprintf(stderr, "bench-attest: verify: %s\n", rep.reason);
                                return r;
                        }
                }
                elapsed = now_s() - t0;
        } while (elapsed < VERIFY_SECONDS);
        *ret_rate = (double) count / elapsed;
        printf("verify: %lu verifications of a %zu-byte document in %.2f s on one core: %.0f/s, %.1f us each\n",
               count, size, elapsed, *ret_rate, elapsed / (double) count * 1e6);
        return 0;
}

/* --- (c) aTLS handshakes ---------------------------------------------------- */

struct server {
        pthread_t thread;
        int listen_fd;
        struct atls_config cfg;
        SSL_CTX *ctx;
        unsigned long served, failed;
};

struct client {
        pthread_t thread;
        unsigned port;
        double deadline;
        struct atls_config cfg;
        SSL_CTX *ctx;
        unsigned long ok, failed;
        char first_failure[600];
};

static atomic_bool stopping;

static void *server_main(void *arg) {
        struct server *s = arg;

        for (;;) {
                SSL *ssl;
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

                if (fd < 0) {
                        if (atomic_load(&stopping))
                                break;
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        perror("bench-attest: accept");
                        break;
                }
                ssl = SSL_new(s->ctx);
                if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
                        s->served++;
                        SSL_shutdown(ssl);
                } else if (!atomic_load(&stopping))
                        s->failed++;
                SSL_free(ssl);
                ERR_clear_error();
                close(fd);
        }
        return NULL;
}

static int connect_loopback(unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void *client_main(void *arg) {
        struct client *c = arg;

        while (now_s() < c->deadline) {
                SSL *ssl;
                int fd = connect_loopback(c->port);
                bool ok;

                if (fd < 0) {
                        if (!c->first_failure[0])
                                snprintf(c->first_failure, sizeof(c->first_failure), "connect: %s", strerror(-fd));
                        c->failed++;
                        continue;
                }
                ssl = SSL_new(c->ctx);
                ok = ssl && SSL_set_fd(ssl, fd) == 1 && SSL_connect(ssl) == 1 && atls_peer_verified(ssl);
                if (ok)
                        c->ok++;
                else {
                        if (!c->first_failure[0])
                                snprintf(c->first_failure, sizeof(c->first_failure), "handshake: %s",
                                         c->cfg.last_report.reason[0] ? c->cfg.last_report.reason
                                                                      : "failed before verification");
                        c->failed++;
                }
                if (ssl)
                        SSL_shutdown(ssl);
                SSL_free(ssl);
                ERR_clear_error();
                close(fd);
        }
        return NULL;
}

static int listen_loopback(unsigned *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 256) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &len) < 0) {
                int r = -errno;
                if (fd >= 0)
                        close(fd);
                return r;
        }
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static int bench_atls(struct node *nodes, unsigned n_servers, unsigned n_clients, struct verifier *v,
                      double *ret_rate) {
        static struct server servers[MAX_THREADS];
        static struct client clients[MAX_THREADS];
        unsigned long ok = 0, failed = 0, served = 0, server_failed = 0;
        const char *failure = NULL;
        struct errmsg e = {};
        unsigned port = 0;
        double t0, elapsed;
        int lfd, r = 0;

        lfd = listen_loopback(&port);
        if (lfd < 0) {
                fprintf(stderr, "bench-attest: listen: %s\n", strerror(-lfd));
                return lfd;
        }
        for (unsigned i = 0; i < n_servers; i++) {
                servers[i] = (struct server){ .listen_fd = lfd };
                servers[i].cfg.attester = nodes[i].attester;
                r = atls_ctx_new(true, &servers[i].cfg, &servers[i].ctx, &e);
                if (r < 0)
                        goto out;
        }
        for (unsigned i = 0; i < n_clients; i++) {
                clients[i] = (struct client){ .port = port };
                clients[i].cfg.verifier = v;
                r = atls_ctx_new(false, &clients[i].cfg, &clients[i].ctx, &e);
                if (r < 0)
                        goto out;
        }

        atomic_store(&stopping, false);
        for (unsigned i = 0; i < n_servers; i++)
                if (pthread_create(&servers[i].thread, NULL, server_main, &servers[i]) != 0)
                        abort();
        t0 = now_s();
        for (unsigned i = 0; i < n_clients; i++) {
                clients[i].deadline = t0 + ATLS_SECONDS;
                if (pthread_create(&clients[i].thread, NULL, client_main, &clients[i]) != 0)
                        abort();
        }
        for (unsigned i = 0; i < n_clients; i++) {
                pthread_join(clients[i].thread, NULL);
                ok += clients[i].ok;
                failed += clients[i].failed;
                if (!failure && clients[i].first_failure[0])
                        failure = clients[i].first_failure;
        }
        elapsed = now_s() - t0;
        /* Wake the servers blocked in accept(). */
        atomic_store(&stopping, true);
        shutdown(lfd, SHUT_RDWR);
        for (unsigned i = 0; i < n_servers; i++) {
                pthread_join(servers[i].thread, NULL);
                served += servers[i].served;
                server_failed += servers[i].failed;
                if (servers[i].failed && servers[i].cfg.last_attest_error.text[0])
                        fprintf(stderr, "bench-attest: server %u: %s\n", i,
                                servers[i].cfg.last_attest_error.text);
        }

        *ret_rate = (double) ok / elapsed;
        printf("atls: %lu server-attested handshakes (verify included) in %.2f s, %u server thread(s) with a swtpm each, %u client thread(s): %.0f/s\n",
               ok, elapsed, n_servers, n_clients, *ret_rate);
        if (failed || server_failed) {
                fprintf(stderr, "bench-attest: %lu handshakes failed on the client, %lu on the server; first: %s\n",
                        failed, server_failed, strna(failure));
                r = -EPROTO;
        } else if (ok == 0)
                r = -EPROTO;
out:
        if (r < 0 && e.text[0])
                fprintf(stderr, "bench-attest: %s\n", e.text);
        for (unsigned i = 0; i < n_servers; i++)
                SSL_CTX_free(servers[i].ctx);
        for (unsigned i = 0; i < n_clients; i++)
                SSL_CTX_free(clients[i].ctx);
        close(lfd);
        return r;
}

/* --- (d) the reference ----------------------------------------------------- */

/* verify/s of `openssl speed ecdsap256`, from the line
 *   " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  48528.0  15826.3" */
static int openssl_ecdsap256_verify_rate(double *ret) {
        char line[512];
        double found = 0;
        FILE *p;

        p = popen("openssl speed -seconds 2 ecdsap256 2>/dev/null", "r");
        if (!p)
                return -errno;
        while (fgets(line, sizeof(line), p)) {
                const char *s = strstr(line, "(nistp256)");
                double sign_t, verify_t, sign_rate, verify_rate;

                if (s && sscanf(s + strlen("(nistp256)"), "%lfs %lfs %lf %lf", &sign_t, &verify_t, &sign_rate,
                                &verify_rate) == 4)
                        found = verify_rate;
        }
        if (pclose(p) != 0 || found <= 0)
                return -ENOENT;
        *ret = found;
        return 0;
}

int main(void) {
        struct node nodes[MAX_THREADS] = {};
        _cleanup_(verifier_freep) struct verifier *v = NULL;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned n_servers, n_clients, n_nodes = 0;
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        double verify_rate = 0, hs_rate = 0, ref = 0;
        struct policy pol = {};
        struct errmsg e = {};
        int r;

        /* Line by line, so run-bench.sh shows each figure as it comes. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        setenv("TSS2_LOG", "all+none", 1);
        signal(SIGPIPE, SIG_IGN);
        if (cpus < 1)
                cpus = 1;
        n_servers = env_unsigned("ARCA_BENCH_SERVERS", cpus > MAX_THREADS ? MAX_THREADS : (unsigned) cpus);
        n_clients = env_unsigned("ARCA_BENCH_CLIENTS", cpus > MAX_THREADS ? MAX_THREADS : (unsigned) cpus);

        r = test_platform_new(&plat);
        if (r < 0) {
                fprintf(stderr, "bench-attest: cannot create the test platform CA: %s\n", strerror(-r));
                return 1;
        }
        for (; n_nodes < n_servers; n_nodes++) {
                r = node_start(&nodes[n_nodes]);
                if (r == -ENOENT && n_nodes == 0) {
                        printf("bench-attest: skipped: swtpm is not installed (package swtpm)\n");
                        test_platform_done(&plat);
                        return 77;
                }
                if (r < 0) {
                        fprintf(stderr, "bench-attest: cannot start swtpm %u: %s\n", n_nodes, strerror(-r));
                        goto out;
                }
        }

        /* The policy enforces the measured PCRs and PCR 0, as an owner's would. */
        r = tpm_pcr_read(nodes[0].tpm, pcrs, &e);
        if (r < 0) {
                fprintf(stderr, "bench-attest: %s\n", errmsg_str(&e));
                goto out;
        }
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                if (i == 0 || i == 4 || i == 9 || i == 11) {
                        pol.pcr[i].set = true;
                        memcpy(pol.pcr[i].expected, pcrs[i], TPM_DIGEST_SIZE);
                }
        r = verifier_new("qemu-vtpm", &pol, plat.roots, &v, &e);
        if (r < 0) {
                fprintf(stderr, "bench-attest: %s\n", errmsg_str(&e));
                goto out;
        }

        if ((r = bench_issue(&nodes[0])) < 0 || (r = bench_verify(&nodes[0], v, &verify_rate)) < 0 ||
            (r = bench_atls(nodes, n_servers, n_clients, v, &hs_rate)) < 0)
                goto out;

        /* Last, so that nothing of ours competes with it for the CPU. */
        r = openssl_ecdsap256_verify_rate(&ref);
        if (r < 0) {
                fprintf(stderr, "bench-attest: `openssl speed -seconds 2 ecdsap256` gave no nistp256 verify/s figure\n");
                goto out;
        }
        printf("verify: %.0f/s = %.1f%% of openssl ecdsap256 verify (%.0f/s) [target >= %.0f%%: %s]\n", verify_rate,
               verify_rate / ref * 100, ref, TARGET_VERIFY_SHARE,
               verify_rate / ref * 100 >= TARGET_VERIFY_SHARE ? "met" : "MISSED");
        printf("atls: %.0f handshakes/s = %.0f%% of target %.0f/s [%s]\n", hs_rate, hs_rate / TARGET_HANDSHAKES * 100,
               TARGET_HANDSHAKES, hs_rate >= TARGET_HANDSHAKES ? "met" : "MISSED");
        r = 0;
out:
        for (unsigned i = 0; i < n_nodes; i++)
                node_stop(&nodes[i]);
        test_platform_done(&plat);
        return r < 0 ? 1 : 0;
}
