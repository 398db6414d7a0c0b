/* SPDX-License-Identifier: Apache-2.0 */
#include "swtpm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "errmsg.h"
#include "openssl-util.h"
#include "platform.h"
#include "tpm.h"

const char *test_build_dir(void) {
        const char *d = getenv("ARCA_BUILD_DIR");
        return d && *d ? d : "build";
}

int test_tmpdir(char *buf, size_t size) {
        snprintf(buf, size, "/tmp/arca-test-XXXXXX");
        return mkdtemp(buf) ? 0 : -errno;
}

static bool port_free(unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static bool port_listening(unsigned port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

int test_swtpm_start(struct test_swtpm *t) {
        static unsigned seq;

        if (access("/usr/bin/swtpm", X_OK) < 0)
                return -ENOENT;
        memset(t, 0, sizeof(*t));
        if (test_tmpdir(t->dir, sizeof(t->dir)) < 0)
                return -errno;
        srand((unsigned) (getpid() * 7919u + time(NULL) + seq++));
        /* swtpm needs the control port at port+1; pick a free pair. */
        for (int attempt = 0; attempt < 50; attempt++) {
                unsigned port = 20000 + (unsigned) (rand() % 20000) * 2;
                char server[64], ctrl[64], state[300];
                pid_t pid;

                if (!port_free(port) || !port_free(port + 1))
                        continue;
                snprintf(server, sizeof(server), "type=tcp,port=%u", port);
                snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%u", port + 1);
                snprintf(state, sizeof(state), "dir=%s", t->dir);
                pid = fork();
                if (pid < 0)
                        return -errno;
                if (pid == 0) {
                        int null = open("/dev/null", O_RDWR);
                        dup2(null, 1);
                        dup2(null, 2);
                        execl("/usr/bin/swtpm", "swtpm", "socket", "--tpm2", "--server", server, "--ctrl", ctrl,
                              "--tpmstate", state, "--flags", "not-need-init,startup-clear", (char *) NULL);
                        _exit(127);
                }
                for (int i = 0; i < 200; i++) {
                        int status;
                        if (waitpid(pid, &status, WNOHANG) == pid)
                                break; /* lost the race for the port */
                        if (port_listening(port) && port_listening(port + 1)) {
                                t->pid = pid;
                                t->port = port;
                                snprintf(t->tcti, sizeof(t->tcti), "swtpm:host=127.0.0.1,port=%u", port);
                                return 0;
                        }
                        usleep(10000);
                }
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        return -EADDRINUSE;
}

void test_swtpm_stop(struct test_swtpm *t) {
        char cmd[300];

        if (t->pid > 0) {
                kill(t->pid, SIGTERM);
                waitpid(t->pid, NULL, 0);
                t->pid = 0;
        }
        if (t->dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cannot remove %s\n", t->dir);
                t->dir[0] = 0;
        }
}

int test_platform_new(struct test_platform *p) {
        struct errmsg e = {};
        char dir[128];
        int r;

        memset(p, 0, sizeof(*p));
        r = platform_ca_create("test platform CA", 30, &p->ca_key, &p->ca_cert, &e);
        if (r < 0)
                return r;
        p->roots = X509_STORE_new();
        if (!p->roots || X509_STORE_add_cert(p->roots, p->ca_cert) != 1)
                return -ENOMEM;
        r = test_tmpdir(dir, sizeof(dir));
        if (r < 0)
                return r;
        snprintf(p->ca_pem, sizeof(p->ca_pem), "%s/platform-ca.pem", dir);
        return pem_write_x509_file(p->ca_pem, p->ca_cert);
}

void test_platform_done(struct test_platform *p) {
        EVP_PKEY_free(p->ca_key);
        X509_free(p->ca_cert);
        X509_STORE_free(p->roots);
        if (p->ca_pem[0]) {
                char *slash;
                unlink(p->ca_pem);
                slash = strrchr(p->ca_pem, '/');
                if (slash) {
                        *slash = 0;
                        rmdir(p->ca_pem);
                }
        }
        memset(p, 0, sizeof(*p));
}

int test_platform_provision(struct test_platform *p, struct test_swtpm *t) {
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        struct errmsg e = {};
        int r;

        r = tpm_open(t->tcti, &tpm, &e);
        if (r < 0) {
                fprintf(stderr, "tpm_open: %s\n", errmsg_str(&e));
                return r;
        }
        r = platform_provision_ak(tpm, TPM_AK_HANDLE, p->ca_key, p->ca_cert, &e);
        if (r < 0)
                fprintf(stderr, "provision: %s\n", errmsg_str(&e));
        return r;
}
