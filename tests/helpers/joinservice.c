/* SPDX-License-Identifier: Apache-2.0 */
#include "joinservice.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errmsg.h"
#include "fileio.h"
#include "macro.h"
#include "nodestate.h"
#include "policy.h"
#include "swtpm.h"
#include "tpm.h"

#define MAX_ARGS 32

int test_join_service_prepare(struct test_join_service *js, const char *dir, const char *registry,
                              const char *cidr, const char *mesh_address, const struct policy *p,
                              const uint8_t master_secret[KEY_SIZE], const uint8_t master_salt[KEY_SIZE],
                              const uint8_t cluster_id[KEY_SIZE]) {
        struct node_state s = { .role = "control-plane", .node_name = "cp1", .cluster_name = "test",
                                .driver = "etcd", .n_registry = 1 };
        _cleanup_free_ char *policy_json = NULL;
        struct master_state m = {};
        struct errmsg e = {};
        int r;

        *js = (struct test_join_service){};
        snprintf(js->state, sizeof(js->state), "%s/state", dir);
        snprintf(js->log, sizeof(js->log), "%s/join-service.log", dir);
        if (mkdir(js->state, 0700) < 0)
                return -errno;
        snprintf(s.mesh_cidr, sizeof(s.mesh_cidr), "%s", cidr);
        snprintf(s.mesh_address, sizeof(s.mesh_address), "%s", mesh_address);
        snprintf(s.disk_uuid, sizeof(s.disk_uuid), "0c0c0c0c-0000-4000-8000-00000000000c");
        snprintf(s.registry[0], sizeof(s.registry[0]), "%s", registry);
        memcpy(s.cluster_id, cluster_id, KEY_SIZE);
        memcpy(m.master_secret, master_secret, KEY_SIZE);
        memcpy(m.master_salt, master_salt, KEY_SIZE);
        if ((r = policy_to_json(p, &policy_json)) < 0)
                return r;
        if ((r = nodestate_write(js->state, &s, &e)) < 0 || (r = master_write(js->state, &m, &e)) < 0 ||
            (r = policy_file_write(js->state, policy_json, strlen(policy_json), &e)) < 0)
                fprintf(stderr, "join service state: %s\n", errmsg_str(&e));
        return r;
}

static bool ready(struct test_join_service *js) {
        _cleanup_free_ char *log = NULL;
        size_t size;
        const char *p;

        if (read_full_file(js->log, 1 << 22, &log, &size) < 0 || size < js->log_start)
                return false;
        p = strstr(log + js->log_start, "READY port=");
        if (!p)
                return false;
        js->port = (unsigned) atoi(p + strlen("READY port="));
        return js->port > 0;
}

int test_join_service_start(struct test_join_service *js, const char *tcti, const char *platform_ca,
                            const char *const *extra) {
        char bin[300];
        const char *argv[MAX_ARGS] = { bin, "--state-dir", js->state, "--tcti", tcti, "--listen", "127.0.0.1",
                                       "--port", "0", "--platform-ca", platform_ca };
        size_t n = 11;
        struct stat st;
        pid_t pid;

        snprintf(bin, sizeof(bin), "%s/arca-join-service", test_build_dir());
        if (access(bin, X_OK) < 0)
                return -ENOENT;
        for (size_t i = 0; extra && extra[i]; i++)
                if (n < MAX_ARGS - 1)
                        argv[n++] = extra[i];
        js->port = 0;
        js->log_start = stat(js->log, &st) == 0 ? (size_t) st.st_size : 0;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd = open(js->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                setenv("TSS2_LOG", "all+none", 1);
                execv(bin, (char **) argv);
                _exit(127);
        }
        js->pid = pid;
        for (int k = 0; k < 300 && !ready(js); k++)
                usleep(20000);
        return js->port > 0 ? 0 : -ETIMEDOUT;
}

void test_join_service_stop(struct test_join_service *js) {
        if (js->pid > 0) {
                kill(js->pid, SIGTERM);
                waitpid(js->pid, NULL, 0);
                js->pid = 0;
        }
}

bool test_join_service_log_has(const struct test_join_service *js, const char *needle) {
        _cleanup_free_ char *log = NULL;
        size_t size;

        return read_full_file(js->log, 1 << 22, &log, &size) >= 0 && strstr(log, needle);
}

int test_measure_boot(struct tpm_ctx *tpm) {
        static const char *const events[] = { "kernel", "initrd", "cmdline" };
        static const unsigned pcrs[] = { 4, 9, 11 };
        struct errmsg e = {};

        for (size_t i = 0; i < ELEMENTSOF(pcrs); i++) {
                int r = tpm_pcr_event(tpm, pcrs[i], events[i], strlen(events[i]), &e);
                if (r < 0) {
                        fprintf(stderr, "measuring %s: %s\n", events[i], errmsg_str(&e));
                        return r;
                }
        }
        return 0;
}
