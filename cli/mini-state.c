/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini: where a mini cluster keeps its state, the journal of what it
 * created, and the processes it runs. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mini.h"

int mini_cluster_paths(struct mini_cluster *c, const char *name, const char *state_dir) {
        char exe[PATH_MAX];
        ssize_t n;

        snprintf(c->name, sizeof(c->name), "%s", name);
        if (state_dir)
                snprintf(c->state_dir, sizeof(c->state_dir), "%s", state_dir);
        else
                snprintf(c->state_dir, sizeof(c->state_dir), "%s/%s", MINI_STATE_ROOT, name);
        if (snprintf(c->journal, sizeof(c->journal), "%s/journal", c->state_dir) >= (int) sizeof(c->journal) ||
            snprintf(c->owner_dir, sizeof(c->owner_dir), "%s/owner", c->state_dir) >= (int) sizeof(c->owner_dir) ||
            snprintf(c->conf, sizeof(c->conf), "%s/owner/arca.conf", c->state_dir) >= (int) sizeof(c->conf) ||
            snprintf(c->ca_dir, sizeof(c->ca_dir), "%s/ca", c->state_dir) >= (int) sizeof(c->ca_dir))
                return -ENAMETOOLONG;
        snprintf(c->bridge, sizeof(c->bridge), "arca-%s", name);
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n < 0)
                return -errno;
        exe[n] = 0;
        snprintf(c->self, sizeof(c->self), "%s", exe);
        if (!c->bin_dir[0]) {
                char *slash = strrchr(exe, '/');
                if (slash)
                        *slash = 0;
                snprintf(c->bin_dir, sizeof(c->bin_dir), "%s", exe);
        }
        return 0;
}

void mini_cluster_done(struct mini_cluster *c) {
        free(c->nodes);
        c->nodes = NULL;
}

/* One line per write(2) with O_APPEND: node children append concurrently. */
int mini_journal_add(const struct mini_cluster *c, const char *kind, const char *fmt, ...) {
        char line[512];
        va_list ap;
        int fd, n, m;

        n = snprintf(line, sizeof(line), "%s ", kind);
        va_start(ap, fmt);
        m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
        va_end(ap);
        if (m < 0 || (size_t) (n + m) >= sizeof(line) - 1)
                return -ENAMETOOLONG;
        n += m;
        line[n++] = '\n';
        fd = open(c->journal, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", c->journal);
        if (write(fd, line, n) != n || fsync(fd) < 0) {
                int r = errno ? -errno : -EIO;
                close(fd);
                return log_error_errno(r, "Cannot write %s: %m", c->journal);
        }
        close(fd);
        return 0;
}

static int parse_node(struct mini_cluster *c, const char *value, unsigned line) {
        char name[16], role[16], addr[16];
        struct mini_node *n;

        if (sscanf(value, "%15s %15s %15s", name, role, addr) != 3 ||
            (!streq(role, "control-plane") && !streq(role, "worker")))
                return log_error_errno(EBADMSG, "%s:%u: invalid node line.", c->journal, line);
        if (c->n_nodes >= MINI_MAX_NODES)
                return log_error_errno(EBADMSG, "%s:%u: too many nodes.", c->journal, line);
        n = realloc(c->nodes, (c->n_nodes + 1) * sizeof(*n));
        if (!n)
                return log_oom();
        c->nodes = n;
        n = &c->nodes[c->n_nodes++];
        *n = (struct mini_node){};
        snprintf(n->name, sizeof(n->name), "%s", name);
        n->role = streq(role, "worker") ? MINI_WORKER : MINI_CONTROL_PLANE;
        if (n->role == MINI_WORKER)
                c->n_workers++;
        else
                c->n_cp++;
        snprintf(n->address, sizeof(n->address), "%s", addr);
        snprintf(n->netns, sizeof(n->netns), "arca-%s-%s", c->name, name);
        snprintf(n->dir, sizeof(n->dir), "%s/nodes/%s", c->state_dir, name);
        return 0;
}

int mini_journal_load(struct mini_cluster *c, int (*cb)(const char *kind, const char *value, void *u), void *u) {
        _cleanup_fclose_ FILE *f = NULL;
        char buf[600];
        unsigned line = 0;
        bool have_firewall = false;
        int r;

        f = fopen(c->journal, "re");
        if (!f)
                return -errno;
        while (fgets(buf, sizeof(buf), f)) {
                char *sp, *value;
                size_t len = strlen(buf);

                line++;
                if (len == 0 || buf[len - 1] != '\n')
                        continue; /* a line cut short by a crash */
                buf[len - 1] = 0;
                sp = strchr(buf, ' ');
                if (!sp)
                        continue;
                *sp = 0;
                value = sp + 1;
                if (streq(buf, "subnet")) {
                        if (sscanf(value, "%u.%u.%u", &c->subnet[0], &c->subnet[1], &c->subnet[2]) != 3)
                                return log_error_errno(EBADMSG, "%s:%u: invalid subnet.", c->journal, line);
                        snprintf(c->host_address, sizeof(c->host_address), "%u.%u.%u.1", c->subnet[0], c->subnet[1],
                                 c->subnet[2]);
                } else if (streq(buf, "driver"))
                        snprintf(c->driver, sizeof(c->driver), "%s", value);
                else if (streq(buf, "mesh"))
                        c->mesh = streq(value, "on");
                else if (streq(buf, "firewall")) {
                        c->firewall = streq(value, "on");
                        have_firewall = true;
                }
                else if (streq(buf, "node")) {
                        r = parse_node(c, value, line);
                        if (r < 0)
                                return r;
                } else if (cb) {
                        r = cb(buf, value, u);
                        if (r < 0)
                                return r;
                }
        }
        /* Journals written before the firewall line: up's rule then. */
        if (!have_firewall)
                c->firewall = c->mesh && c->n_cp == 1;
        return 0;
}

void mini_die_with_parent(pid_t parent) {
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* it died before prctl */
                _exit(1);
}

int mini_read_all(int fd, char **ret) {
        size_t size = 0, cap = 0;
        char *buf = NULL;

        for (;;) {
                ssize_t n;
                if (cap - size < 4096) {
                        char *nb;
                        if (cap > 16 * 1024 * 1024) /* bounded: tools' output */
                                break;
                        cap = cap ? cap * 2 : 8192;
                        nb = realloc(buf, cap);
                        if (!nb) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nb;
                }
                n = read(fd, buf + size, cap - size - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                size += n;
        }
        if (!buf && !(buf = malloc(1)))
                return -ENOMEM;
        buf[size] = 0;
        *ret = buf;
        return 0;
}

int mini_exec(char *const *argv, char **ret_output) {
        int pipefd[2] = { -1, -1 }, status;
        pid_t pid, parent;

        if (ret_output && pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        parent = getpid();
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                if (ret_output) {
                        close(pipefd[0]);
                        close(pipefd[1]);
                }
                return r;
        }
        if (pid == 0) {
                int null;

                mini_die_with_parent(parent);
                null = open("/dev/null", O_RDWR | O_CLOEXEC);
                dup2(null, STDIN_FILENO);
                if (ret_output) {
                        dup2(pipefd[1], STDOUT_FILENO);
                        dup2(pipefd[1], STDERR_FILENO);
                } else
                        dup2(null, STDOUT_FILENO);
                execvp(argv[0], argv);
                dprintf(STDERR_FILENO, "cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        if (ret_output) {
                close(pipefd[1]);
                if (mini_read_all(pipefd[0], ret_output) < 0)
                        *ret_output = NULL;
                close(pipefd[0]);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int mini_enter_netns(const char *netns) {
        char path[PATH_MAX];
        int fd, r = 0;

        snprintf(path, sizeof(path), "/run/netns/%s", netns);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (setns(fd, CLONE_NEWNET) < 0)
                r = -errno;
        close(fd);
        return r;
}

/* In the child: a mount namespace whose /run is private_run, with
 * state_dir bound at the same path inside when it lies under /run. */
static int private_run_setup(const char *private_run, const char *state_dir) {
        char inner[PATH_MAX];

        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        if (state_dir && strncmp(state_dir, "/run/", 5) == 0) {
                snprintf(inner, sizeof(inner), "%s/%s", private_run, state_dir + 5);
                if (mkdir_p(inner, 0700) < 0 || mount(state_dir, inner, NULL, MS_BIND, NULL) < 0)
                        return -errno;
        }
        if (mount(private_run, "/run", NULL, MS_BIND | MS_REC, NULL) < 0)
                return -errno;
        return 0;
}

int mini_spawn(const char *netns, const char *private_run, const char *state_dir, char *const *argv,
               const char *log_path, pid_t *ret_pid) {
        int errpipe[2], err = 0;
        pid_t pid;
        ssize_t n;

        /* The child reports a failure before exec over a CLOEXEC pipe. */
        if (pipe2(errpipe, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                err = -errno;
                close(errpipe[0]);
                close(errpipe[1]);
                return err;
        }
        if (pid == 0) {
                int fd, r = 0;

                close(errpipe[0]);
                setsid();
                if (netns)
                        r = mini_enter_netns(netns);
                if (r >= 0 && private_run)
                        r = private_run_setup(private_run, state_dir);
                if (r >= 0) {
                        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                                r = -errno;
                }
                if (r >= 0) {
                        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                                r = -errno;
                }
                if (r >= 0) {
                        execv(argv[0], argv);
                        r = -errno;
                }
                (void) !write(errpipe[1], &r, sizeof(r));
                _exit(127);
        }
        close(errpipe[1]);
        n = read(errpipe[0], &err, sizeof(err));
        close(errpipe[0]);
        if (n == sizeof(err)) {
                waitpid(pid, NULL, 0);
                return err;
        }
        *ret_pid = pid;
        return 0;
}

unsigned long long mini_pid_start_time(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long long t = 0;
        _cleanup_fclose_ FILE *f = NULL;
        int field;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                return 0;
        p = strrchr(buf, ')'); /* the command name may hold spaces */
        if (!p)
                return 0;
        p++;
        /* p is at the space before field 3 (state); the start time is
         * field 22 (field 23, vsize, changes while the process runs). */
        for (field = 3; field < 22 && p; field++)
                p = strchr(p + 1, ' ');
        if (p)
                t = strtoull(p + 1, NULL, 10);
        return t;
}

static bool is_zombie(pid_t pid) {
        char path[64], buf[512], *p;
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                return true;
        p = strrchr(buf, ')');
        return !p || p[1] == 0 || p[2] == 'Z' || p[2] == 'X';
}

void mini_kill(pid_t pid, unsigned long long start_time, unsigned grace_ms) {
        unsigned waited = 0;

        if (pid <= 1 || (start_time && mini_pid_start_time(pid) != start_time))
                return;
        if (kill(pid, SIGTERM) < 0)
                return;
        kill(pid, SIGCONT);
        for (;;) {
                (void) waitpid(pid, NULL, WNOHANG); /* our own child */
                if (kill(pid, 0) < 0 || is_zombie(pid))
                        return;
                if (waited >= grace_ms)
                        break;
                usleep(20000);
                waited += 20;
        }
        kill(pid, SIGKILL);
        for (waited = 0; waited < 5000; waited += 20) {
                (void) waitpid(pid, NULL, WNOHANG);
                if (kill(pid, 0) < 0 || is_zombie(pid))
                        return;
                usleep(20000);
        }
        log_warning("Process %d does not go away.", (int) pid);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        if (type == FTW_DP)
                return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
        return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int mini_rm_rf(const char *path) {
        if (access(path, F_OK) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
                return -errno;
        return 0;
}
