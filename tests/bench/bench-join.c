/* SPDX-License-Identifier: Apache-2.0 */
/* Join-service capacity on a real first node, printed next to the targets:
 *   reference  the same joiners sending the same join request to a server
 *            in this process that only attests (mutual aTLS on a swtpm of
 *            its own) and answers {}: what the attested handshake alone
 *            allows on this machine at this moment; join and rejoin rates
 *            are printed as a share of it, so that runs on a busy or a
 *            quiet machine compare
 *   join     attested joins per second and their p50/p99 latency: N joiner
 *            threads, each a node with its own swtpm (AK certified by the
 *            test platform CA), doing full joins (mutual aTLS, POST
 *            /v1/join as role worker, a distinct node name and disk UUID
 *            each) for a few seconds (target >= 200/s on 2 cores)
 *   rejoin   the same for POST /v1/rejoin of disks that joined: the same
 *            handshake and attestation, a registry read and no write
 *   rss      peak RSS (VmHWM) of arca-join-service after both runs and of
 *            arca-bootstrapper after init and a burst of GET
 *            /v1/attestation (target <= 10 MB = 10^7 bytes = 9.54 MiB
 *            each; figures are printed in MiB), and what each is made of
 *            now: private pages (heap, stacks, written library data),
 *            shared pages (library code mapped by other processes too),
 *            PSS, and the largest files; and the join service's peak RSS,
 *            RSS, PSS and private pages when the registry reached 100,
 *            1000 and 2000 members during the join run (what grows with
 *            the members, apart from what does not)
 * and where the CPU went (per join: join service, etcd, joiners, swtpms),
 * since all of it shares this machine's cores.
 *
 * The first node is the real thing on loopback, no network namespaces:
 * arca-bootstrapper on a loopback address of its own (127.x.y.z, so that
 * etcd's fixed ports 2379/2380 are free there), `arca config generate
 * --driver etcd`, `arca init`; the bootstrapper starts etcd (the control
 * plane and the membership registry) and its join service, which listens
 * on 0.0.0.0:30090. Every swtpm serves one connection at a time, so each
 * joiner thread has a swtpm of its own, as each node has its own TPM.
 * Missing a target is reported, not failed; a failed join fails.
 * Exit 77 when swtpm or etcd-server is not installed, port 30090 is taken
 * or no loopback address has etcd's ports free.
 *
 * Environment: ARCA_BENCH_JOINERS (default 8), ARCA_BENCH_SECONDS per run
 * (default 5), ARCA_BENCH_KEEP=1 keeps the run's directory (logs),
 * ARCA_BENCH_SMAPS=DIR saves both daemons' /proc/PID/smaps at their peak
 * there (DIR/arca-join-service.smaps, DIR/arca-bootstrapper.smaps). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atls-http.h"
#include "atls.h"
#include "http-server.h"
#include "attest.h"
#include "cpdriver.h"
#include "encoding.h"
#include "fileio.h"
#include "messages.h"
#include "policy.h"
#include "secret.h"
#include "swtpm.h"
#include "time-util.h"
#include "tpm.h"

#define MAX_JOINERS 32
#define MAX_SECONDS 20
#define ATTESTATION_SECONDS 1.0
#define TARGET_JOINS 200.0
/* 10 MB, decimal as the target is stated: 9.54 MiB. */
#define TARGET_RSS_BYTES 10e6
/* The bootstrapper's fixed ports (bootstrapper/initserver.h, node.h) and
 * etcd's, which the etcd driver uses on the node's underlay address. */
#define INIT_PORT 9000
#define JOIN_PORT 30090
#define ETCD_CLIENT_PORT 2379
#define ETCD_PEER_PORT 2380
#define NODE_NAME "cp1"

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

static unsigned env_unsigned(const char *name, unsigned def, unsigned max) {
        const char *s = getenv(name);
        char *end;
        unsigned long v;

        if (!s || !*s)
                return def;
        v = strtoul(s, &end, 10);
        if (*end || v == 0 || v > max) {
                fprintf(stderr, "bench-join: ignoring %s=\"%s\" (1-%u)\n", name, s, max);
                return def;
        }
        return (unsigned) v;
}

/* --- processes ----------------------------------------------------------------- */

/* Start argv[0] with stdout and stderr appended to log_path; it dies with
 * us (SIGKILL), so that nothing outlives a crashed benchmark. */
static int spawn(char *const argv[], const char *log_path, pid_t *ret) {
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd;

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execv(argv[0], argv);
                fprintf(stderr, "bench-join: cannot execute %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        *ret = pid;
        return 0;
}

/* Run to completion; its exit status, or a negative errno. */
static int run(char *const argv[], const char *log_path) {
        pid_t pid;
        int status, r;

        r = spawn(argv, log_path, &pid);
        if (r < 0)
                return r;
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Stop a child of ours: SIGTERM, SIGKILL after `grace` seconds, reaped. */
static void stop_child(pid_t *pid, double grace) {
        double deadline = now_s() + grace;

        if (*pid <= 0)
                return;
        kill(*pid, SIGTERM);
        while (waitpid(*pid, NULL, WNOHANG) == 0) {
                if (now_s() > deadline) {
                        kill(*pid, SIGKILL);
                        waitpid(*pid, NULL, 0);
                        break;
                }
                usleep(20000);
        }
        *pid = 0;
}

/* A process that is not our child (the bootstrapper's): make sure it is gone. */
static void ensure_gone(pid_t pid) {
        double deadline = now_s() + 5;

        if (pid <= 0)
                return;
        while (kill(pid, 0) == 0 && now_s() < deadline)
                usleep(20000);
        if (kill(pid, 0) == 0) {
                fprintf(stderr, "bench-join: pid %d outlived the bootstrapper; killing it\n", (int) pid);
                kill(pid, SIGKILL);
        }
}

/* A child of `parent` whose name (comm) starts with `comm`; 0 if none. */
static pid_t find_child(pid_t parent, const char *comm) {
        struct dirent *d;
        pid_t found = 0;
        DIR *proc;

        proc = opendir("/proc");
        if (!proc)
                return 0;
        while (!found && (d = readdir(proc))) {
                char path[300], buf[512];
                const char *open_paren, *close_paren;
                int ppid;
                size_t n;
                FILE *f;

                if (d->d_name[0] < '1' || d->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
                f = fopen(path, "re");
                if (!f)
                        continue;
                n = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[n] = 0;
                /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
                open_paren = strchr(buf, '(');
                close_paren = strrchr(buf, ')');
                if (!open_paren || !close_paren || sscanf(close_paren + 2, "%*c %d", &ppid) != 1 ||
                    ppid != parent)
                        continue;
                if (strncmp(open_paren + 1, comm, strlen(comm)) == 0)
                        found = (pid_t) atoi(d->d_name);
        }
        closedir(proc);
        return found;
}

/* A "Field:   123 kB" line of /proc/<pid>/<file> (status, smaps_rollup),
 * in kB; -1 if unknown. */
static long proc_kb(pid_t pid, const char *file, const char *field) {
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':') {
                        kb = strtol(line + strlen(field) + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return kb;
}

/* utime + stime of a process (all its threads), in clock ticks; 0 if gone. */
static long cpu_ticks(pid_t pid) {
        char path[64], buf[1024];
        unsigned long utime, stime;
        const char *p;
        size_t n;
        FILE *f;

        if (pid <= 0)
                return 0;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        /* After "pid (comm) ": state is field 3, utime and stime 14 and 15. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
                return 0;
        return (long) (utime + stime);
}

/* As the servers bind (SO_REUSEADDR): connections of an earlier run in
 * TIME_WAIT do not count. */
static bool bindable(const char *address, unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        bool ok;

        inet_pton(AF_INET, address, &sa.sin_addr);
        ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
             bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static bool connectable(const char *address, unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        inet_pton(AF_INET, address, &sa.sin_addr);
        ok = fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static bool file_contains(const char *path, const char *needle) {
        _cleanup_free_ char *buf = NULL;
        size_t size;

        return read_full_file(path, 16 * 1024 * 1024, &buf, &size) >= 0 && strstr(buf, needle);
}

/* The last lines of a daemon's log, to say why a step failed. */
static void print_tail(const char *path, size_t bytes) {
        _cleanup_free_ char *buf = NULL;
        size_t size;

        if (read_full_file(path, 16 * 1024 * 1024, &buf, &size) < 0)
                return;
        fprintf(stderr, "bench-join: --- end of %s ---\n%s", path, buf + (size > bytes ? size - bytes : 0));
        fprintf(stderr, "bench-join: ---\n");
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* --- nodes ------------------------------------------------------------------------- */

/* A swtpm as a node's: AK certified by the test platform CA, and the same
 * boot-like measurements on every node, so that the policy compares
 * non-zero values. Returns the open TPM context. */
static int tpm_start(struct test_swtpm *t, struct tpm_ctx **ret) {
        static const char *const events[] = { "kernel", "initrd", "cmdline" };
        static const unsigned pcrs[] = { 4, 9, 11 };
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        struct errmsg e = {};
        int r;

        r = test_swtpm_start(t);
        if (r < 0)
                return r;
        r = test_platform_provision(&plat, t);
        if (r < 0)
                return r;
        r = tpm_open(t->tcti, &tpm, &e);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(pcrs); i++)
                r = tpm_pcr_event(tpm, pcrs[i], events[i], strlen(events[i]), &e);
        if (r < 0) {
                fprintf(stderr, "bench-join: %s: %s\n", t->tcti, errmsg_str(&e));
                return r;
        }
        *ret = TAKE_PTR(tpm);
        return 0;
}

/* PCRs 0-14 as they are on this TPM: the owner's policy, and what a node
 * demands of a join service ("same image"). */
static int policy_from_tpm(struct tpm_ctx *tpm, struct policy *ret) {
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct errmsg e = {};
        int r;

        r = tpm_pcr_read(tpm, pcrs, &e);
        if (r < 0) {
                fprintf(stderr, "bench-join: %s\n", errmsg_str(&e));
                return r;
        }
        *ret = (struct policy){};
        for (unsigned i = 0; i < 15; i++) {
                ret->pcr[i].set = true;
                memcpy(ret->pcr[i].expected, pcrs[i], TPM_DIGEST_SIZE);
        }
        return 0;
}

enum phase {
        PHASE_REFERENCE, /* join requests to the reference server */
        PHASE_JOIN,
        PHASE_REJOIN,
};

static const char *phase_name(enum phase p) {
        return p == PHASE_REFERENCE ? "reference request" : p == PHASE_JOIN ? "join" : "rejoin";
}

struct sample {
        double end; /* seconds since the run started */
        double ms;
};

/* A joining node: its own swtpm, TPM context, attester and verifier. */
struct joiner {
        pthread_t thread;
        unsigned id;
        struct test_swtpm swtpm;
        struct tpm_ctx *tpm;
        struct attester *attester;
        struct verifier *verifier;
        struct atls_config atls;
        char base_url[64];
        /* The current run. */
        enum phase phase;
        double start, deadline;
        struct sample *samples;
        size_t n_samples, cap;
        size_t max_body;
        unsigned long failed;
        char first_failure[600];
        /* Sequence numbers of the disks this joiner registered (rejoin asks for them). */
        unsigned *joined;
        size_t n_joined, cap_joined;
        unsigned next_seq;
};

/* The join service's memory when the registry reached each of these sizes
 * (the first node and the joins so far), read by the joiner whose join
 * brought it there. */
static const unsigned milestone_members[] = { 100, 1000, 2000 };
struct milestone {
        long hwm_kb, rss_kb, pss_kb, private_kb; /* 0: not reached */
};
static struct milestone milestones[ELEMENTSOF(milestone_members)];
static atomic_uint joins_done;
static pid_t join_service_pid;

static long proc_kb(pid_t pid, const char *file, const char *field);

static struct milestone milestone_read(void) {
        return (struct milestone){
                .hwm_kb = proc_kb(join_service_pid, "status", "VmHWM"),
                .rss_kb = proc_kb(join_service_pid, "status", "VmRSS"),
                .pss_kb = proc_kb(join_service_pid, "smaps_rollup", "Pss"),
                .private_kb = proc_kb(join_service_pid, "smaps_rollup", "Private_Clean") +
                              proc_kb(join_service_pid, "smaps_rollup", "Private_Dirty"),
        };
}

static void milestone_check(unsigned members) {
        for (size_t k = 0; k < ELEMENTSOF(milestone_members); k++)
                if (members == milestone_members[k])
                        milestones[k] = milestone_read();
}

static void joiner_stop(struct joiner *j) {
        j->samples = mfree(j->samples);
        j->joined = mfree(j->joined);
        j->verifier = verifier_free(j->verifier);
        j->attester = attester_free(j->attester);
        j->tpm = tpm_free(j->tpm);
        test_swtpm_stop(&j->swtpm);
}

static int joiner_start(struct joiner *j, unsigned id) {
        struct policy pol;
        struct errmsg e = {};
        int r;

        *j = (struct joiner){ .id = id };
        r = tpm_start(&j->swtpm, &j->tpm);
        if (r < 0)
                return r;
        if ((r = attester_new("qemu-vtpm", j->tpm, TPM_AK_HANDLE, &j->attester, &e)) < 0 ||
            (r = policy_from_tpm(j->tpm, &pol)) < 0 ||
            (r = verifier_new("qemu-vtpm", &pol, plat.roots, &j->verifier, &e)) < 0) {
                if (e.text[0])
                        fprintf(stderr, "bench-join: joiner %u: %s\n", id, e.text);
                return r;
        }
        j->atls.attester = j->attester;
        j->atls.verifier = j->verifier;
        return 0;
}

/* Node names and disk UUIDs distinct per joiner and request. */
static void disk_uuid(const struct joiner *j, unsigned seq, char ret[static UUID_STRING_SIZE]) {
        snprintf(ret, UUID_STRING_SIZE, "%08x-0000-4000-8000-%012x", 0xbe000000u | j->id, seq);
}

static int request_body(struct joiner *j, unsigned seq, char **ret) {
        if (j->phase != PHASE_REJOIN) {
                struct join_request m = {};

                snprintf(m.role, sizeof(m.role), "worker");
                disk_uuid(j, seq, m.disk_uuid);
                snprintf(m.node_name, sizeof(m.node_name), "j%u-%u", j->id, seq);
                snprintf(m.endpoint, sizeof(m.endpoint), "127.0.0.1:51820");
                /* A WireGuard key of its own per node: the join service
                 * refuses a key another member holds. */
                uint8_t wg[32] = { 0xbe, (uint8_t) j->id };
                _cleanup_free_ char *wg64 = NULL;
                int r;

                memcpy(wg + 2, &seq, sizeof(seq));
                if ((r = base64_encode(wg, sizeof(wg), &wg64)) < 0)
                        return r;
                snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", wg64);
                return join_request_serialize(&m, ret);
        } else {
                struct rejoin_request m = {};

                disk_uuid(j, seq, m.disk_uuid);
                return rejoin_request_serialize(&m, ret);
        }
}

/* The first answer of each run is parsed in full; later ones by status, so
 * that the joiners leave the shared cores to the join service. */
static int check_answer(const struct joiner *j, const struct http_response *http, struct errmsg *e) {
        int r;

        if (j->phase == PHASE_JOIN) {
                struct join_response m = {};

                r = join_response_parse(http->body, http->body_size, &m, e);
                if (r >= 0 && (!m.mesh_address[0] || !m.cp_params || m.has_master))
                        r = errmsg_set(e, EBADMSG,
                                       "a worker's join answer without mesh address or "
                                       "control-plane parameters, or with the master secret");
                join_response_done(&m);
        } else {
                struct rejoin_response m = {};

                r = rejoin_response_parse(http->body, http->body_size, &m, e);
                rejoin_response_done(&m);
        }
        return r;
}

static int push(void **array, size_t *cap, size_t n, size_t size) {
        void *p;

        if (n < *cap)
                return 0;
        p = realloc(*array, (*cap ? *cap * 2 : 256) * size);
        if (!p)
                return -ENOMEM;
        *array = p;
        *cap = *cap ? *cap * 2 : 256;
        return 0;
}

static void *joiner_main(void *arg) {
        struct joiner *j = arg;
        char url[96];
        bool checked = false;
        size_t next = 0;

        snprintf(url, sizeof(url), "%s/v1/%s", j->base_url, j->phase == PHASE_REJOIN ? "rejoin" : "join");
        while (now_s() < j->deadline) {
                _cleanup_free_ char *body = NULL;
                struct http_response http = {};
                struct errmsg e = {};
                unsigned seq;
                double t0, t1;
                int r;

                if (j->phase == PHASE_REFERENCE)
                        seq = 0;
                else if (j->phase == PHASE_JOIN)
                        seq = j->next_seq++;
                else if (j->n_joined > 0)
                        seq = j->joined[next++ % j->n_joined];
                else
                        break;
                r = request_body(j, seq, &body);
                if (r < 0) {
                        errmsg_set(&e, r, "cannot encode the request");
                        goto fail;
                }
                t0 = now_s();
                r = atls_http_request(&j->atls, url, "POST", body, strlen(body), 30000, &http, &e);
                t1 = now_s();
                if (r < 0)
                        goto fail;
                if (http.status != 200) {
                        r = errmsg_set(&e, EPROTO, "HTTP %ld: %.300s", http.status, http.body);
                        goto fail;
                }
                if (!checked && j->phase != PHASE_REFERENCE) {
                        r = check_answer(j, &http, &e);
                        if (r < 0)
                                goto fail;
                        checked = true;
                }
                if (push((void **) &j->samples, &j->cap, j->n_samples, sizeof(j->samples[0])) < 0 ||
                    (j->phase == PHASE_JOIN &&
                     push((void **) &j->joined, &j->cap_joined, j->n_joined, sizeof(j->joined[0])) < 0)) {
                        r = errmsg_set(&e, ENOMEM, "out of memory");
                        goto fail;
                }
                j->samples[j->n_samples++] = (struct sample){ .end = t1 - j->start, .ms = (t1 - t0) * 1e3 };
                if (j->phase == PHASE_JOIN) {
                        j->joined[j->n_joined++] = seq;
                        /* The first node, then one member per join. */
                        milestone_check(atomic_fetch_add(&joins_done, 1) + 2);
                }
                if (http.body_size > j->max_body)
                        j->max_body = http.body_size;
                /* Join answers carry the disk key and measurement secret. */
                secret_wipe(http.body, http.body_size);
                http_response_done(&http);
                continue;
        fail:
                if (!j->first_failure[0])
                        snprintf(j->first_failure, sizeof(j->first_failure), "joiner %u, %s of disk %u: %s",
                                 j->id, phase_name(j->phase), seq, errmsg_str(&e));
                j->failed++;
                if (http.body)
                        secret_wipe(http.body, http.body_size);
                http_response_done(&http);
                /* A refusal repeats; a few are enough to tell. */
                if (j->failed >= 3)
                        break;
        }
        return NULL;
}

/* --- the first node ------------------------------------------------------------- */

struct cluster {
        char dir[256];     /* everything of this run: owner files, state, logs */
        char address[16];  /* the first node's underlay: a loopback address of its own */
        char base_url[64]; /* https://<address>:30090 */
        struct test_swtpm swtpm;
        pid_t bootstrapper;
        pid_t join_service, etcd; /* the bootstrapper's children */
        char log[300];
};

/* 127.x.y.z with the init port and etcd's ports free. */
static int pick_address(struct cluster *c) {
        srand((unsigned) getpid() ^ (unsigned) time(NULL));
        for (int attempt = 0; attempt < 64; attempt++) {
                snprintf(c->address, sizeof(c->address), "127.%d.%d.%d", 100 + rand() % 100, rand() % 256,
                         1 + rand() % 254);
                if (bindable(c->address, INIT_PORT) && bindable(c->address, ETCD_CLIENT_PORT) &&
                    bindable(c->address, ETCD_PEER_PORT))
                        return 0;
        }
        return -EADDRINUSE;
}

static int wait_for(bool (*ready)(const struct cluster *c), struct cluster *c, double seconds) {
        double deadline = now_s() + seconds;

        while (!ready(c)) {
                if (waitpid(c->bootstrapper, NULL, WNOHANG) == c->bootstrapper) {
                        c->bootstrapper = 0; /* reaped: nothing to stop */
                        return -ECHILD;
                }
                if (now_s() > deadline)
                        return -ETIMEDOUT;
                usleep(20000);
        }
        return 0;
}

static bool bootstrapper_ready(const struct cluster *c) {
        return file_contains(c->log, "READY port=");
}

static bool join_service_ready(const struct cluster *c) {
        return connectable(c->address, JOIN_PORT);
}

static void cluster_stop(struct cluster *c) {
        /* The bootstrapper stops its join service and etcd itself. */
        stop_child(&c->bootstrapper, 15);
        ensure_gone(c->join_service);
        ensure_gone(c->etcd);
        test_swtpm_stop(&c->swtpm);
        if (c->dir[0]) {
                if (getenv("ARCA_BENCH_KEEP"))
                        fprintf(stderr, "bench-join: kept %s\n", c->dir);
                else if (nftw(c->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) < 0)
                        fprintf(stderr, "bench-join: cannot remove %s\n", c->dir);
                c->dir[0] = 0;
        }
}

/* The owner's configuration, the first node's bootstrapper, `arca init`:
 * then the node runs etcd and its join service. */
static int cluster_start(struct cluster *c) {
        const char *b = test_build_dir();
        char arca[300], bootstrapper[300], join_service[300], owner[300], conf[300], policy_path[300],
                gen[300], state[300], init_log[300], init_at[40], hash[65];
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        _cleanup_free_ char *policy_json = NULL, *out = NULL;
        const char *h;
        struct policy pol;
        size_t size;
        int r;

        snprintf(c->dir, sizeof(c->dir), "/tmp/arca-bench-join-XXXXXX");
        if (!mkdtemp(c->dir)) {
                c->dir[0] = 0;
                return -errno;
        }
        snprintf(arca, sizeof(arca), "%s/arca", b);
        snprintf(bootstrapper, sizeof(bootstrapper), "%s/arca-bootstrapper", b);
        snprintf(join_service, sizeof(join_service), "%s/arca-join-service", b);
        snprintf(owner, sizeof(owner), "%s/owner", c->dir);
        snprintf(conf, sizeof(conf), "%s/arca.conf", owner);
        snprintf(policy_path, sizeof(policy_path), "%s/measurements.json", owner);
        snprintf(gen, sizeof(gen), "%s/generate.out", c->dir);
        snprintf(state, sizeof(state), "%s/state", c->dir);
        snprintf(init_log, sizeof(init_log), "%s/init.log", c->dir);
        snprintf(c->log, sizeof(c->log), "%s/bootstrapper.log", c->dir);
        snprintf(init_at, sizeof(init_at), "%s:%d", c->address, INIT_PORT);
        snprintf(c->base_url, sizeof(c->base_url), "https://%s:%d", c->address, JOIN_PORT);
        if (access(arca, X_OK) < 0 || access(bootstrapper, X_OK) < 0 || access(join_service, X_OK) < 0) {
                fprintf(stderr, "bench-join: arca, arca-bootstrapper or arca-join-service missing in %s\n",
                        b);
                return -ENOENT;
        }
        if (mkdir(state, 0700) < 0)
                return -errno;

        /* The node's TPM; the owner's policy is what it measures. */
        r = tpm_start(&c->swtpm, &tpm);
        if (r < 0)
                return r;
        r = policy_from_tpm(tpm, &pol);
        if (r < 0)
                return r;
        tpm = tpm_free(tpm); /* the bootstrapper needs the swtpm's only connection */

        {
                char *argv[] = {
                        arca, "config", "generate", "--dir", owner, "--name", "bench", "--init", init_at,
                        "--driver", "etcd", "--platform-ca", plat.ca_pem, NULL,
                };
                r = run(argv, gen);
                if (r != 0) {
                        print_tail(gen, 2000);
                        fprintf(stderr, "bench-join: arca config generate failed\n");
                        return -EIO;
                }
        }
        if ((r = read_full_file(gen, 64 * 1024, &out, &size)) < 0 ||
            !(h = strstr(out, "init-secret-hash: ")) || strlen(h) < STRLEN("init-secret-hash: ") + 64) {
                fprintf(stderr, "bench-join: arca config generate printed no init-secret-hash\n");
                return -EBADMSG;
        }
        snprintf(hash, sizeof(hash), "%.64s", h + STRLEN("init-secret-hash: "));
        if ((r = policy_to_json(&pol, &policy_json)) < 0 ||
            (r = write_file_atomic(policy_path, policy_json, strlen(policy_json), 0644)) < 0) {
                fprintf(stderr, "bench-join: cannot write %s: %s\n", policy_path, strerror(-r));
                return r;
        }

        {
                char *argv[] = {
                        bootstrapper,
                        "--tcti", c->swtpm.tcti,
                        "--state-dir", state,
                        "--node-name", NODE_NAME,
                        "--underlay", c->address,
                        "--listen", c->address,
                        "--platform-ca", plat.ca_pem,
                        "--init-secret-hash", hash,
                        "--join-service", join_service,
                        NULL,
                };
                r = spawn(argv, c->log, &c->bootstrapper);
                if (r < 0)
                        return r;
        }
        if (wait_for(bootstrapper_ready, c, 20) < 0) {
                print_tail(c->log, 3000);
                fprintf(stderr, "bench-join: arca-bootstrapper did not get ready\n");
                return -ETIMEDOUT;
        }
        {
                char *argv[] = { arca, "init", "--config", conf, NULL };
                r = run(argv, init_log);
                if (r != 0) {
                        print_tail(init_log, 2000);
                        print_tail(c->log, 3000);
                        fprintf(stderr, "bench-join: arca init failed\n");
                        return -EIO;
                }
        }
        if (wait_for(join_service_ready, c, 20) < 0) {
                print_tail(c->log, 3000);
                fprintf(stderr, "bench-join: the join service did not come up on port %d\n", JOIN_PORT);
                return -ETIMEDOUT;
        }
        c->join_service = find_child(c->bootstrapper, "arca-join-serv");
        join_service_pid = c->join_service;
        c->etcd = find_child(c->bootstrapper, "etcd");
        if (c->join_service <= 0 || c->etcd <= 0) {
                fprintf(stderr, "bench-join: cannot find the bootstrapper's join service and etcd\n");
                return -ESRCH;
        }
        return 0;
}

/* --- runs ------------------------------------------------------------------------ */

struct cpu {
        long join_service, etcd, bootstrapper, joiners, swtpms;
};

static void cpu_snapshot(const struct cluster *c, const struct joiner *j, unsigned n, struct cpu *ret) {
        *ret = (struct cpu){
                .join_service = cpu_ticks(c->join_service),
                .etcd = cpu_ticks(c->etcd),
                .bootstrapper = cpu_ticks(c->bootstrapper),
                .joiners = cpu_ticks(getpid()),
                .swtpms = cpu_ticks(c->swtpm.pid),
        };
        for (unsigned i = 0; i < n; i++)
                ret->swtpms += cpu_ticks(j[i].swtpm.pid);
}

struct result {
        size_t count, first_second, last_second;
        double elapsed, rate, p50, p99;
        size_t max_body;
        struct cpu cpu; /* used during the run */
};

static int run_phase(const struct cluster *c, const char *base_url, struct joiner *j, unsigned n, enum phase phase,
                     double seconds, struct result *ret) {
        _cleanup_free_ double *ms = NULL;
        const char *failure = NULL;
        unsigned long failed = 0;
        struct cpu before, after;
        double t0;
        size_t k = 0;

        *ret = (struct result){};
        cpu_snapshot(c, j, n, &before);
        t0 = now_s();
        for (unsigned i = 0; i < n; i++) {
                j[i].phase = phase;
                j[i].start = t0;
                j[i].deadline = t0 + seconds;
                j[i].n_samples = 0;
                j[i].failed = 0;
                j[i].first_failure[0] = 0;
                snprintf(j[i].base_url, sizeof(j[i].base_url), "%s", base_url);
                if (pthread_create(&j[i].thread, NULL, joiner_main, &j[i]) != 0)
                        abort();
        }
        for (unsigned i = 0; i < n; i++) {
                pthread_join(j[i].thread, NULL);
                ret->count += j[i].n_samples;
                failed += j[i].failed;
                if (!failure && j[i].first_failure[0])
                        failure = j[i].first_failure;
                if (j[i].max_body > ret->max_body)
                        ret->max_body = j[i].max_body;
        }
        ret->elapsed = now_s() - t0;
        cpu_snapshot(c, j, n, &after);
        ret->cpu = (struct cpu){
                .join_service = after.join_service - before.join_service,
                .etcd = after.etcd - before.etcd,
                .bootstrapper = after.bootstrapper - before.bootstrapper,
                .joiners = after.joiners - before.joiners,
                .swtpms = after.swtpms - before.swtpms,
        };
        if (failed) {
                fprintf(stderr, "bench-join: %lu %s failed; first: %s\n", failed,
                        phase_name(phase), strna(failure));
                return -EPROTO;
        }
        if (ret->count == 0) {
                fprintf(stderr, "bench-join: no %s completed\n", phase_name(phase));
                return -EPROTO;
        }

        ms = calloc(ret->count, sizeof(double));
        if (!ms)
                return -ENOMEM;
        for (unsigned i = 0; i < n; i++)
                for (size_t s = 0; s < j[i].n_samples; s++) {
                        const struct sample *x = &j[i].samples[s];
                        ms[k++] = x->ms;
                        if (x->end < 1.0)
                                ret->first_second++;
                        if (x->end >= seconds - 1.0 && x->end < seconds)
                                ret->last_second++;
                }
        qsort(ms, ret->count, sizeof(double), cmp_double);
        ret->rate = (double) ret->count / ret->elapsed;
        ret->p50 = percentile(ms, ret->count, 50);
        ret->p99 = percentile(ms, ret->count, 99);
        return 0;
}

static void print_cpu(const char *what, const struct result *r, long cpus) {
        double tick_ms = 1e3 / (double) sysconf(_SC_CLK_TCK), per = tick_ms / (double) r->count;
        double sum = (double) (r->cpu.join_service + r->cpu.etcd + r->cpu.bootstrapper + r->cpu.joiners +
                               r->cpu.swtpms);

        printf("%s: CPU per %s: arca-join-service %.2f ms (%.0f%% of a core), etcd %.2f ms, "
               "joiners %.2f ms, swtpms %.2f ms; %.0f%% of the %ld CPUs busy\n",
               what, what, (double) r->cpu.join_service * per,
               (double) r->cpu.join_service * tick_ms / 10.0 / r->elapsed, (double) r->cpu.etcd * per,
               (double) r->cpu.joiners * per, (double) r->cpu.swtpms * per,
               sum * tick_ms / 10.0 / r->elapsed / (double) cpus, cpus);
}

/* --- the reference: a server that only attests and answers ------------------- */

/* Mutual aTLS on its own swtpm, POST /v1/join answered with {} after
 * reading the request: what a join costs without the join service's work
 * (registry, etcd, keys, peer lists), measured with the same joiners in
 * the same run. */
struct reference {
        struct test_swtpm swtpm;
        struct tpm_ctx *tpm;
        struct attester *attester;
        struct verifier *verifier;
        struct atls_config atls;
        SSL_CTX *ctx;
        struct event_base *base;
        struct http_server *server;
        struct event *tick;
        atomic_bool stop;
        bool running;
        pthread_t thread;
        char base_url[64];
        atomic_ulong unverified;
};

static void reference_join(struct evhttp_request *req, void *arg) {
        struct reference *ref = arg;
        _cleanup_free_ char *body = NULL;
        SSL *ssl = http_request_ssl(req);
        size_t size;

        if (!ssl || !atls_peer_verified(ssl)) {
                atomic_fetch_add(&ref->unverified, 1);
                http_reply_error(req, 403, "peer not attested");
                return;
        }
        if (http_request_body(req, HTTP_MAX_BODY, &body, &size) < 0) {
                http_reply_error(req, 400, "no body");
                return;
        }
        http_reply_raw_json(req, 200, "{}", 2);
}

static void reference_tick(evutil_socket_t fd, short what, void *arg) {
        struct reference *ref = arg;

        if (atomic_load(&ref->stop))
                event_base_loopbreak(ref->base);
}

static void *reference_main(void *arg) {
        struct reference *ref = arg;

        event_base_dispatch(ref->base);
        return NULL;
}

static void reference_stop(struct reference *ref) {
        if (ref->running) {
                atomic_store(&ref->stop, true);
                pthread_join(ref->thread, NULL);
                ref->running = false;
        }
        if (ref->tick)
                event_free(ref->tick);
        ref->server = http_server_free(ref->server);
        if (ref->base)
                event_base_free(ref->base);
        SSL_CTX_free(ref->ctx);
        ref->verifier = verifier_free(ref->verifier);
        ref->attester = attester_free(ref->attester);
        ref->tpm = tpm_free(ref->tpm);
        test_swtpm_stop(&ref->swtpm);
        *ref = (struct reference){};
}

static int reference_start(struct reference *ref) {
        struct timeval tv = { .tv_usec = 20000 };
        struct policy pol;
        struct errmsg e = {};
        int r;

        r = tpm_start(&ref->swtpm, &ref->tpm);
        if (r < 0)
                return r;
        if ((r = attester_new("qemu-vtpm", ref->tpm, TPM_AK_HANDLE, &ref->attester, &e)) < 0 ||
            (r = policy_from_tpm(ref->tpm, &pol)) < 0 ||
            (r = verifier_new("qemu-vtpm", &pol, plat.roots, &ref->verifier, &e)) < 0)
                goto fail;
        ref->atls = (struct atls_config){ .attester = ref->attester, .verifier = ref->verifier };
        if ((r = atls_ctx_new(true, &ref->atls, &ref->ctx, &e)) < 0)
                goto fail;
        ref->base = event_base_new();
        if (!ref->base) {
                r = -ENOMEM;
                goto fail;
        }
        if ((r = http_server_new(ref->base, ref->ctx, "127.0.0.1", 0, &ref->server, &e)) < 0 ||
            (r = http_server_route(ref->server, "/v1/join", reference_join, ref)) < 0)
                goto fail;
        ref->tick = event_new(ref->base, -1, EV_PERSIST, reference_tick, ref);
        if (!ref->tick || event_add(ref->tick, &tv) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        snprintf(ref->base_url, sizeof(ref->base_url), "https://127.0.0.1:%u", http_server_port(ref->server));
        if (pthread_create(&ref->thread, NULL, reference_main, ref) != 0) {
                r = -EAGAIN;
                goto fail;
        }
        ref->running = true;
        return 0;
fail:
        fprintf(stderr, "bench-join: reference server: %s\n", e.text[0] ? e.text : strerror(-r));
        return r;
}

/* GET /v1/attestation from the bootstrapper's init server (server-attested,
 * verified by the client), so that its peak RSS includes serving. */
static int attestation_burst(const struct cluster *c, struct verifier *v, unsigned *ret_count,
                             double *ret_elapsed) {
        struct atls_config cfg = { .verifier = v };
        char url[96];
        unsigned count = 0;
        double t0 = now_s();

        snprintf(url, sizeof(url), "https://%s:%d/v1/attestation", c->address, INIT_PORT);
        while (now_s() - t0 < ATTESTATION_SECONDS) {
                struct http_response http = {};
                struct errmsg e = {};
                int r;

                r = atls_http_request(&cfg, url, "GET", NULL, 0, 10000, &http, &e);
                if (r >= 0 && http.status != 200)
                        r = errmsg_set(&e, EPROTO, "HTTP %ld: %.300s", http.status, http.body);
                http_response_done(&http);
                if (r < 0) {
                        fprintf(stderr, "bench-join: GET %s: %s\n", url, errmsg_str(&e));
                        return r;
                }
                count++;
        }
        *ret_count = count;
        *ret_elapsed = now_s() - t0;
        return 0;
}

/* Resident pages of one process now: private (only this process: heap,
 * stacks, written library data) and shared (library code other processes
 * map too), the libraries that weigh most, and PSS. */
static void print_rss_breakdown(const char *what, pid_t pid) {
        struct lib {
                char name[64];
                long kb;
        } libs[96] = {};
        size_t n_libs = 0;
        char path[64], line[512], cur[64] = "";
        long priv = proc_kb(pid, "smaps_rollup", "Private_Clean") + proc_kb(pid, "smaps_rollup", "Private_Dirty");
        long shared = proc_kb(pid, "smaps_rollup", "Shared_Clean") + proc_kb(pid, "smaps_rollup", "Shared_Dirty");
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps", (int) pid);
        f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
                char *slash;
                long kb;

                if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ')) {
                        /* A mapping's first line: the file is the last field. */
                        slash = strrchr(line, '/');
                        snprintf(cur, sizeof(cur), "%s", slash ? slash + 1 : "");
                        cur[strcspn(cur, "\n")] = 0;
                        continue;
                }
                if (!cur[0] || sscanf(line, "Rss: %ld kB", &kb) != 1)
                        continue;
                for (size_t i = 0;; i++) {
                        if (i == n_libs) {
                                if (n_libs == ELEMENTSOF(libs))
                                        break;
                                snprintf(libs[n_libs++].name, sizeof(libs[0].name), "%s", cur);
                        }
                        if (streq(libs[i].name, cur)) {
                                libs[i].kb += kb;
                                break;
                        }
                }
        }
        if (f)
                fclose(f);
        printf("rss: %s now %.1f MiB: private %.1f MiB (heap, stacks, library data), shared %.1f MiB (library "
               "code; PSS %.1f MiB); largest files:",
               what, (double) proc_kb(pid, "status", "VmRSS") / 1024, (double) priv / 1024,
               (double) shared / 1024, (double) proc_kb(pid, "smaps_rollup", "Pss") / 1024);
        for (int k = 0; k < 5; k++) {
                size_t best = n_libs;
                for (size_t i = 0; i < n_libs; i++)
                        if (libs[i].kb > 0 && (best == n_libs || libs[i].kb > libs[best].kb))
                                best = i;
                if (best == n_libs)
                        break;
                printf(" %s %.1f", libs[best].name, (double) libs[best].kb / 1024);
                libs[best].kb = -1;
        }
        printf(" MiB\n");
}

/* A copy of /proc/PID/smaps, for a mapping-by-mapping look at the peak. */
static void save_smaps(const char *what, pid_t pid) {
        const char *dir = getenv("ARCA_BENCH_SMAPS");
        _cleanup_free_ char *buf = NULL;
        char src[64], dst[512];
        size_t size;

        if (!dir || !*dir)
                return;
        snprintf(src, sizeof(src), "/proc/%d/smaps", (int) pid);
        snprintf(dst, sizeof(dst), "%s/%s.smaps", dir, what);
        if (read_full_file(src, 64 * 1024 * 1024, &buf, &size) < 0 ||
            write_file_atomic(dst, buf, size, 0644) < 0)
                fprintf(stderr, "bench-join: cannot save %s to %s\n", src, dst);
}

static const char *met(bool ok) {
        return ok ? "met" : "MISSED";
}

int main(void) {
        static struct joiner joiners[MAX_JOINERS];
        struct cluster c = {};
        struct result join = {}, rejoin = {}, reference = {};
        static struct reference ref;
        unsigned n_joiners, n_started = 0, attestations = 0;
        double seconds, setup_start = now_s(), attestation_elapsed = 0;
        long cpus = sysconf(_SC_NPROCESSORS_ONLN), js_kb, boot_kb;
        _cleanup_free_ char *etcd_path = NULL;
        struct errmsg e = {};
        int r;

        /* Line by line, so run-bench.sh shows each figure as it comes. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        setenv("TSS2_LOG", "all+none", 1);
        signal(SIGPIPE, SIG_IGN);
        if (cpus < 1)
                cpus = 1;
        n_joiners = env_unsigned("ARCA_BENCH_JOINERS", 8, MAX_JOINERS);
        seconds = env_unsigned("ARCA_BENCH_SECONDS", 5, MAX_SECONDS);

        if (access("/usr/bin/swtpm", X_OK) < 0) {
                printf("bench-join: skipped: swtpm is not installed (package swtpm)\n");
                return 77;
        }
        /* What the etcd driver runs. */
        if (cp_find_binary("etcd", &etcd_path, &e) < 0) {
                printf("bench-join: skipped: etcd-server is not installed (package etcd-server): %s\n",
                       e.text);
                return 77;
        }
        /* The bootstrapper starts its join service on 0.0.0.0:30090, fixed. */
        if (!bindable("0.0.0.0", JOIN_PORT)) {
                printf("bench-join: skipped: port %d is in use (the bootstrapper's join service needs it)\n",
                       JOIN_PORT);
                return 77;
        }
        if (pick_address(&c) < 0) {
                printf("bench-join: skipped: no loopback address with ports %d, %d and %d free\n", INIT_PORT,
                       ETCD_CLIENT_PORT, ETCD_PEER_PORT);
                return 77;
        }
        r = test_platform_new(&plat);
        if (r < 0) {
                fprintf(stderr, "bench-join: cannot create the test platform CA: %s\n", strerror(-r));
                goto out;
        }

        for (; n_started < n_joiners; n_started++) {
                r = joiner_start(&joiners[n_started], n_started);
                if (r < 0) {
                        fprintf(stderr, "bench-join: cannot set up joiner %u: %s\n", n_started,
                                strerror(-r));
                        joiner_stop(&joiners[n_started]);
                        goto out;
                }
        }
        r = cluster_start(&c);
        if (r < 0)
                goto out;
        printf("setup: first node %s (arca-bootstrapper, arca init, etcd driver), join service on :%d, "
               "%u joiners with a swtpm each, in %.1f s\n",
               c.address, JOIN_PORT, n_joiners, now_s() - setup_start);
        {
                struct milestone idle = milestone_read();

                printf("setup: arca-join-service before any request (1 member): peak RSS %.2f MiB, RSS %.2f MiB, "
                       "PSS %.1f MiB, private %.2f MiB\n",
                       (double) idle.hwm_kb / 1024, (double) idle.rss_kb / 1024, (double) idle.pss_kb / 1024,
                       (double) idle.private_kb / 1024);
        }

        r = reference_start(&ref);
        if (r < 0)
                goto fail;
        r = run_phase(&c, ref.base_url, joiners, n_joiners, PHASE_REFERENCE, seconds, &reference);
        reference_stop(&ref);
        if (r < 0)
                goto fail;
        printf("reference: %zu mutual aTLS requests in %.2f s to a server that only attests and answers: "
               "%.0f/s, p50 %.1f ms, p99 %.1f ms (the same joiners and request body; the ceiling for joins on "
               "this machine now)\n",
               reference.count, reference.elapsed, reference.rate, reference.p50, reference.p99);

        r = run_phase(&c, c.base_url, joiners, n_joiners, PHASE_JOIN, seconds, &join);
        if (r < 0)
                goto fail;
        printf("join: %zu attested joins in %.2f s: %.0f joins/s = %.0f%% of the reference, p50 %.1f ms, p99 "
               "%.1f ms (%u joiners, %u swtpms, %ld CPUs) [target >= %.0f/s: %s]\n",
               join.count, join.elapsed, join.rate, 100.0 * join.rate / reference.rate, join.p50, join.p99,
               n_joiners, n_joiners, cpus, TARGET_JOINS, met(join.rate >= TARGET_JOINS));
        printf("join: %zu in the first second, %zu in the last, as the registry grew to %zu members "
               "(answers list every peer: up to %.0f KiB)\n",
               join.first_second, join.last_second, join.count + 1, (double) join.max_body / 1024);
        print_cpu("join", &join, cpus);
        for (size_t k = 0; k < ELEMENTSOF(milestone_members); k++) {
                const struct milestone *m = &milestones[k];

                if (m->hwm_kb <= 0)
                        printf("join: arca-join-service at %u members: not reached in this run\n",
                               milestone_members[k]);
                else
                        printf("join: arca-join-service at %u members: peak RSS %.2f MiB, RSS %.2f MiB, PSS %.1f "
                               "MiB, private %.2f MiB [target <= %.2f MiB: %s]\n",
                               milestone_members[k], (double) m->hwm_kb / 1024, (double) m->rss_kb / 1024,
                               (double) m->pss_kb / 1024, (double) m->private_kb / 1024,
                               TARGET_RSS_BYTES / (1024 * 1024), met(m->hwm_kb * 1024.0 <= TARGET_RSS_BYTES));
        }

        r = run_phase(&c, c.base_url, joiners, n_joiners, PHASE_REJOIN, seconds, &rejoin);
        if (r < 0)
                goto fail;
        printf("rejoin (no registry write: the same handshake and attestation, one registry read): %zu in "
               "%.2f s: %.0f/s = %.0f%% of the reference, p50 %.1f ms, p99 %.1f ms\n",
               rejoin.count, rejoin.elapsed, rejoin.rate, 100.0 * rejoin.rate / reference.rate, rejoin.p50,
               rejoin.p99);
        print_cpu("rejoin", &rejoin, cpus);

        r = attestation_burst(&c, joiners[0].verifier, &attestations, &attestation_elapsed);
        if (r < 0)
                goto fail;
        if (find_child(c.bootstrapper, "arca-join-serv") != c.join_service) {
                fprintf(stderr, "bench-join: the join service was restarted during the runs; its peak RSS "
                                "is the new one's\n");
                c.join_service = find_child(c.bootstrapper, "arca-join-serv");
        }
        js_kb = proc_kb(c.join_service, "status", "VmHWM");
        boot_kb = proc_kb(c.bootstrapper, "status", "VmHWM");
        if (js_kb < 0 || boot_kb < 0) {
                fprintf(stderr, "bench-join: cannot read VmHWM of the daemons\n");
                r = -ESRCH;
                goto fail;
        }
        printf("rss: peak RSS of arca-join-service %.2f MiB (after the runs), arca-bootstrapper %.2f MiB (after "
               "init and %u GET /v1/attestation in %.1f s) [target <= 10 MB = %.2f MiB each: join service %s, "
               "bootstrapper %s]\n",
               (double) js_kb / 1024, (double) boot_kb / 1024, attestations, attestation_elapsed,
               TARGET_RSS_BYTES / (1024 * 1024), met(js_kb * 1024.0 <= TARGET_RSS_BYTES),
               met(boot_kb * 1024.0 <= TARGET_RSS_BYTES));
        /* What the peak is made of: mapped shared-library pages count in
         * full, though other processes share them (PSS divides them). */
        print_rss_breakdown("arca-join-service", c.join_service);
        print_rss_breakdown("arca-bootstrapper", c.bootstrapper);
        save_smaps("arca-join-service", c.join_service);
        save_smaps("arca-bootstrapper", c.bootstrapper);
        r = 0;
        goto out;
fail:
        print_tail(c.log, 2000);
out:
        reference_stop(&ref);
        cluster_stop(&c);
        for (unsigned i = 0; i < n_started; i++)
                joiner_stop(&joiners[i]);
        test_platform_done(&plat);
        return r < 0 ? 1 : 0;
}
