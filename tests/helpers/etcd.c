/* SPDX-License-Identifier: Apache-2.0 */
#include "etcd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http-client.h"
#include "openssl-util.h"

#define START_ATTEMPTS 20
#define HEALTH_WAIT_MS 15000

static bool port_bindable(unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

unsigned test_etcd_unused_port(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET };
        socklen_t len = sizeof(sa);
        unsigned port = 0;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        /* Bound but never listening: connections are refused. */
        if (fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
            getsockname(fd, (struct sockaddr *) &sa, &len) == 0)
                port = ntohs(sa.sin_port);
        if (fd >= 0)
                close(fd);
        return port;
}

static bool healthy(const struct test_etcd *t) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        struct http_request req = { .method = "GET", .timeout_ms = 1000 };
        struct http_response resp = {};
        char url[128];
        bool ok;

        snprintf(url, sizeof(url), "%s/health", t->endpoint);
        if (t->tls && http_tls_ctx_new(t->ca_file, t->cert_file, t->key_file, &ctx, NULL) < 0)
                return false;
        ok = http_request_url(url, ctx, HTTP_CLIENT_VERIFY_HOST, &req, &resp, NULL) == 0 && resp.status == 200 &&
             strstr(resp.body, "\"true\"");
        http_response_done(&resp);
        return ok;
}

static int run_quiet(const char *cmd) {
        char full[2048];

        snprintf(full, sizeof(full), "%s >/dev/null 2>&1", cmd);
        return system(full) == 0 ? 0 : -EIO;
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate, all
 * P-256, valid for a day. */
static int make_certs(struct test_etcd *t) {
        static const char *const steps[] = {
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                "-subj /CN=arca-test-etcd-ca -keyout ca.key -out ca.pem",
                /* Grouped: run_quiet's redirection must not replace the file's.
                 * The server certificate is a client one too: etcd's gateway
                 * presents it to etcd's own gRPC server. */
                "{ printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > server.ext; }",
                "{ printf 'extendedKeyUsage=clientAuth\\n' > client.ext; }",
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 "
                "-keyout server.key -out server.csr",
                "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
                "-extfile server.ext -out server.pem",
                "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=arca-join-service "
                "-keyout client.key -out client.csr",
                "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
                "-extfile client.ext -out client.pem",
        };
        char cmd[1024];

        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                snprintf(cmd, sizeof(cmd), "cd '%s' && %s", t->dir, steps[i]);
                if (run_quiet(cmd) < 0) {
                        fprintf(stderr, "etcd helper: failed: %s\n", steps[i]);
                        return -EIO;
                }
        }
        snprintf(t->ca_file, sizeof(t->ca_file), "%s/ca.pem", t->dir);
        snprintf(t->cert_file, sizeof(t->cert_file), "%s/client.pem", t->dir);
        snprintf(t->key_file, sizeof(t->key_file), "%s/client.key", t->dir);
        return 0;
}

static pid_t spawn(const struct test_etcd *t) {
        char data[300], log[300], client[64], peer[64], cluster[96], cert[300], key[300];
        pid_t pid;

        snprintf(data, sizeof(data), "%s/data", t->dir);
        snprintf(log, sizeof(log), "%s/etcd.log", t->dir);
        snprintf(client, sizeof(client), "%s://127.0.0.1:%u", t->tls ? "https" : "http", t->client_port);
        snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", t->peer_port);
        snprintf(cluster, sizeof(cluster), "default=%s", peer);
        snprintf(cert, sizeof(cert), "%s/server.pem", t->dir);
        snprintf(key, sizeof(key), "%s/server.key", t->dir);

        pid = fork();
        if (pid != 0)
                return pid;
        /* Dies with the test process, even when that crashes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
        }
        if (t->tls)
                execl(TEST_ETCD_BINARY, "etcd", "--name", "default", "--data-dir", data,
                      "--listen-client-urls", client, "--advertise-client-urls", client,
                      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster",
                      cluster, "--heartbeat-interval", "20", "--election-timeout", "200", "--logger", "zap",
                      "--log-level", "warn", "--cert-file", cert, "--key-file", key, "--trusted-ca-file",
                      t->ca_file, "--client-cert-auth", (char *) NULL);
        else
                execl(TEST_ETCD_BINARY, "etcd", "--name", "default", "--data-dir", data,
                      "--listen-client-urls", client, "--advertise-client-urls", client,
                      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster",
                      cluster, "--heartbeat-interval", "20", "--election-timeout", "200", "--logger", "zap",
                      "--log-level", "warn", (char *) NULL);
        _exit(127);
}

static int start(struct test_etcd *t, bool tls) {
        static unsigned seq;
        int r;

        if (access(TEST_ETCD_BINARY, X_OK) < 0)
                return -ENOENT;
        memset(t, 0, sizeof(*t));
        t->tls = tls;
        snprintf(t->dir, sizeof(t->dir), "/tmp/arca-test-etcd-XXXXXX");
        if (!mkdtemp(t->dir)) {
                t->dir[0] = 0;
                return -errno;
        }
        if (tls) {
                r = make_certs(t);
                if (r < 0)
                        return r;
        }
        srand((unsigned) (getpid() * 7919u + (unsigned) time(NULL) + seq++));
        for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
                unsigned cport = 20000 + (unsigned) (rand() % 20000), pport = cport + 20000;
                pid_t pid;

                if (!port_bindable(cport) || !port_bindable(pport))
                        continue;
                t->client_port = cport;
                t->peer_port = pport;
                snprintf(t->endpoint, sizeof(t->endpoint), "%s://127.0.0.1:%u", tls ? "https" : "http",
                         cport);
                pid = spawn(t);
                if (pid < 0)
                        return -errno;
                for (int waited = 0; waited < HEALTH_WAIT_MS; waited += 20) {
                        if (waitpid(pid, NULL, WNOHANG) == pid) {
                                pid = 0; /* lost a port race: other ports */
                                break;
                        }
                        if (healthy(t)) {
                                t->pid = pid;
                                return 0;
                        }
                        usleep(20000);
                }
                if (pid > 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        fprintf(stderr, "etcd helper: etcd did not become healthy, see %s/etcd.log\n",
                                t->dir);
                        return -ETIMEDOUT;
                }
                /* A fresh data directory for the next try. */
                char cmd[320];
                snprintf(cmd, sizeof(cmd), "rm -rf '%s/data'", t->dir);
                (void) run_quiet(cmd);
        }
        return -EADDRINUSE;
}

int test_etcd_start(struct test_etcd *t) {
        return start(t, false);
}

int test_etcd_start_tls(struct test_etcd *t) {
        return start(t, true);
}

void test_etcd_kill(struct test_etcd *t) {
        if (t->pid <= 0)
                return;
        kill(t->pid, SIGTERM);
        for (int i = 0; i < 500; i++) {
                if (waitpid(t->pid, NULL, WNOHANG) == t->pid) {
                        t->pid = 0;
                        return;
                }
                usleep(10000);
        }
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
        t->pid = 0;
}

void test_etcd_stop(struct test_etcd *t) {
        char cmd[320];

        test_etcd_kill(t);
        if (t->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
                if (run_quiet(cmd) < 0)
                        fprintf(stderr, "etcd helper: cannot remove %s\n", t->dir);
                t->dir[0] = 0;
        }
}
