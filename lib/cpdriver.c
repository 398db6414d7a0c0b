/* SPDX-License-Identifier: Apache-2.0 */
/* Control-plane driver registry, the validating entry points, and what the
 * drivers share: validators, running and spawning programs, plain HTTP. */
#include "cpdriver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "http-client.h"
#include "json-util.h"
#include "macro.h"
#include "secret.h"
#include "time-util.h"

#define CP_STDERR_TAIL 4096
#define CP_HTTP_MAX_RESPONSE (1024 * 1024)
#define CP_STOP_TIMEOUT_MS 10000

static const struct cp_driver *const drivers[] = {
        &cp_driver_kubeadm,
        &cp_driver_etcd,
        NULL,
};

const struct cp_driver *const *cp_driver_all(void) {
        return drivers;
}

const struct cp_driver *cp_driver_by_name(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; drivers[i]; i++)
                if (streq(drivers[i]->name, name))
                        return drivers[i];
        return NULL;
}

const char *cp_role_to_string(enum cp_role role) {
        return role == CP_ROLE_CONTROL_PLANE ? "control-plane" : "worker";
}

int cp_role_from_string(const char *s, enum cp_role *ret) {
        if (s && streq(s, "worker"))
                *ret = CP_ROLE_WORKER;
        else if (s && streq(s, "control-plane"))
                *ret = CP_ROLE_CONTROL_PLANE;
        else
                return -EINVAL;
        return 0;
}

/* --- results and parameters ----------------------------------------------- */

void cp_result_done(struct cp_result *r) {
        if (!r)
                return;
        if (r->kubeconfig)
                secret_free(r->kubeconfig, r->kubeconfig_size);
        *r = (struct cp_result){};
}

int cp_stop(struct cp_result *r) {
        int ret = 0;

        if (!r)
                return 0;
        if (r->pid > 0) {
                uint64_t deadline = now_ms() + CP_STOP_TIMEOUT_MS;
                pid_t w = 0;
                int st;

                if (kill(r->pid, SIGTERM) < 0)
                        ret = -ECHILD; /* already reaped */
                while (ret == 0 && (w = waitpid(r->pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
                        sleep_ms(20);
                if (ret == 0 && w == 0) {
                        (void) kill(r->pid, SIGKILL);
                        while ((w = waitpid(r->pid, &st, 0)) < 0 && errno == EINTR)
                                ;
                }
                if (w < 0)
                        ret = -ECHILD;
        }
        cp_result_done(r);
        return ret;
}

void cp_join_params_done(struct cp_join_params *p) {
        if (!p)
                return;
        free(p->endpoint);
        if (p->token)
                secret_free(p->token, strlen(p->token));
        free(p->ca_cert_hash);
        if (p->certificate_key)
                secret_free(p->certificate_key, strlen(p->certificate_key));
        for (size_t i = 0; i < p->n_endpoints; i++)
                free(p->endpoints[i]);
        free(p->initial_cluster);
        *p = (struct cp_join_params){};
}

/* --- validators ------------------------------------------------------------- */

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Dot-separated labels of [a-z0-9-], each 1..63, not starting or ending
 * with '-'. A host name also needs a non-numeric last label, so that
 * "999.1.1.1" is neither an IPv4 address nor a name. */
static bool valid_dns(const char *s, size_t len, bool host) {
        size_t label = 0;
        bool numeric = true;

        if (len == 0 || len > 253)
                return false;
        for (size_t i = 0; i <= len; i++) {
                if (i == len || s[i] == '.') {
                        if (label == 0 || label > 63 || s[i - 1] == '-')
                                return false;
                        if (i < len) {
                                label = 0;
                                numeric = true;
                        }
                        continue;
                }
                if (!is_lower_alnum(s[i]) && s[i] != '-')
                        return false;
                if (label == 0 && s[i] == '-')
                        return false;
                if (!(s[i] >= '0' && s[i] <= '9'))
                        numeric = false;
                label++;
        }
        return !host || !numeric;
}

bool cp_valid_name(const char *s) {
        return s && valid_dns(s, strlen(s), false);
}

static bool valid_ip_n(const char *s, size_t len, int *ret_family) {
        char buf[INET6_ADDRSTRLEN + 1];
        unsigned char addr[sizeof(struct in6_addr)];

        if (len == 0 || len >= sizeof(buf))
                return false;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (inet_pton(AF_INET, buf, addr) == 1) {
                if (ret_family)
                        *ret_family = AF_INET;
                return true;
        }
        if (inet_pton(AF_INET6, buf, addr) == 1) {
                if (ret_family)
                        *ret_family = AF_INET6;
                return true;
        }
        return false;
}

bool cp_valid_ip(const char *s) {
        return s && valid_ip_n(s, strlen(s), NULL);
}

bool cp_valid_host(const char *s) {
        return s && (cp_valid_ip(s) || valid_dns(s, strlen(s), true));
}

/* Decimal without sign or leading zeros, within [min, max]. */
static bool valid_number(const char *s, size_t len, unsigned long min, unsigned long max) {
        unsigned long v = 0;

        if (len == 0 || len > 10 || (s[0] == '0' && len > 1))
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned long) (s[i] - '0');
        }
        return v >= min && v <= max;
}

static bool valid_hostport_n(const char *s, size_t len) {
        const char *colon;
        int family;

        if (len == 0 || len > 300)
                return false;
        if (s[0] == '[') {
                const char *end = memchr(s, ']', len);
                if (!end || end + 1 >= s + len || end[1] != ':')
                        return false;
                if (!valid_ip_n(s + 1, (size_t) (end - s - 1), &family) || family != AF_INET6)
                        return false;
                colon = end + 1;
        } else {
                colon = memrchr(s, ':', len);
                if (!colon || memchr(s, ':', (size_t) (colon - s)))
                        return false;
                if (!valid_ip_n(s, (size_t) (colon - s), &family) &&
                    !valid_dns(s, (size_t) (colon - s), true))
                        return false;
        }
        return valid_number(colon + 1, (size_t) (s + len - colon - 1), 1, 65535);
}

bool cp_valid_hostport(const char *s) {
        return s && valid_hostport_n(s, strlen(s));
}

static bool valid_url_n(const char *s, size_t len) {
        if (len > STRLEN("http://") && strncmp(s, "http://", STRLEN("http://")) == 0)
                return valid_hostport_n(s + STRLEN("http://"), len - STRLEN("http://"));
        if (len > STRLEN("https://") && strncmp(s, "https://", STRLEN("https://")) == 0)
                return valid_hostport_n(s + STRLEN("https://"), len - STRLEN("https://"));
        return false;
}

bool cp_valid_url(const char *s) {
        return s && valid_url_n(s, strlen(s));
}

bool cp_valid_token(const char *s) {
        if (!s || strlen(s) != 23 || s[6] != '.')
                return false;
        for (size_t i = 0; i < 23; i++)
                if (i != 6 && !is_lower_alnum(s[i]))
                        return false;
        return true;
}

bool cp_valid_hex(const char *s, size_t n_bytes) {
        if (!s || strlen(s) != 2 * n_bytes)
                return false;
        for (size_t i = 0; s[i]; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

bool cp_valid_ca_cert_hash(const char *s) {
        return s && strncmp(s, "sha256:", 7) == 0 && cp_valid_hex(s + 7, 32);
}

static bool valid_cidr_n(const char *s, size_t len, int *ret_family) {
        const char *slash = memchr(s, '/', len);

        if (!slash || !valid_ip_n(s, (size_t) (slash - s), ret_family))
                return false;
        return valid_number(slash + 1, (size_t) (s + len - slash - 1), 0, *ret_family == AF_INET ? 32 : 128);
}

bool cp_valid_cidrs(const char *s) {
        const char *comma;
        int f1, f2;

        if (!s || strlen(s) > 100)
                return false;
        comma = strchr(s, ',');
        if (!comma)
                return valid_cidr_n(s, strlen(s), &f1);
        return valid_cidr_n(s, (size_t) (comma - s), &f1) &&
               valid_cidr_n(comma + 1, strlen(comma + 1), &f2) && f1 != f2;
}

bool cp_valid_k8s_version(const char *s) {
        const char *p, *dot;

        if (!s || s[0] != 'v')
                return false;
        p = s + 1;
        for (int i = 0; i < 3; i++) {
                dot = i < 2 ? strchr(p, '.') : p + strlen(p);
                if (!dot || !valid_number(p, (size_t) (dot - p), 0, 9999))
                        return false;
                p = dot + 1;
        }
        return true;
}

bool cp_valid_path(const char *s) {
        size_t len;

        if (!s || s[0] != '/' || (len = strlen(s)) > 1024)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr("/._+-", s[i])))
                        return false;
        for (const char *p = s; (p = strstr(p, "..")); p += 2)
                if (p[-1] == '/' && (p[2] == '/' || p[2] == 0))
                        return false;
        return true;
}

int cp_hostport(const char *address, uint16_t port, char *buf, size_t size) {
        int n = strchr(address, ':') ? snprintf(buf, size, "[%s]:%u", address, port)
                                     : snprintf(buf, size, "%s:%u", address, port);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* --- node validation and entry points --------------------------------------- */

/* Everything that goes into a driver's configuration files and command
 * lines. The Kubernetes settings are needed by init only; elsewhere they
 * are checked when given. */
static int validate_node(const struct cp_driver *d, const struct cp_node *n, bool need_k8s,
                         struct errmsg *e) {
        char q[68];
        size_t i = 0;

        if (!cp_valid_name(n->name))
                return errmsg_set(e, EINVAL, "node name '%s' is not a lowercase RFC 1123 name",
                                  printable_str(n->name, q, sizeof(q)));
        if (!cp_valid_ip(n->address))
                return errmsg_set(e, EINVAL, "node address '%s' is not an IP address",
                                  printable_str(n->address, q, sizeof(q)));
        if (n->local_address && (!cp_valid_ip(n->local_address) || streq(n->local_address, n->address)))
                return errmsg_set(e, EINVAL, "local address '%s' is not an IP address other than the node's",
                                  printable_str(n->local_address, q, sizeof(q)));
        if (!cp_valid_path(n->state_dir))
                return errmsg_set(e, EINVAL, "state directory '%s' is not a plain absolute path",
                                  printable_str(n->state_dir, q, sizeof(q)));
        if (n->kubernetes_dir && !cp_valid_path(n->kubernetes_dir))
                return errmsg_set(e, EINVAL, "Kubernetes directory '%s' is not a plain absolute path",
                                  printable_str(n->kubernetes_dir, q, sizeof(q)));
        if (n->cluster_name && (!cp_valid_name(n->cluster_name) || strlen(n->cluster_name) > 63))
                return errmsg_set(e, EINVAL, "cluster name '%s' is not a lowercase RFC 1123 label",
                                  printable_str(n->cluster_name, q, sizeof(q)));
        if (!d->kubernetes)
                return 0;
        if ((need_k8s || n->k8s_version) && !cp_valid_k8s_version(n->k8s_version))
                return errmsg_set(e, EINVAL, "Kubernetes version '%s' is not of the form v1.29.3",
                                  printable_str(n->k8s_version, q, sizeof(q)));
        if ((need_k8s || n->pod_cidr) && !cp_valid_cidrs(n->pod_cidr))
                return errmsg_set(e, EINVAL, "pod CIDR '%s' is not a CIDR (or a dual-stack pair)",
                                  printable_str(n->pod_cidr, q, sizeof(q)));
        if ((need_k8s || n->service_cidr) && !cp_valid_cidrs(n->service_cidr))
                return errmsg_set(e, EINVAL, "service CIDR '%s' is not a CIDR (or a dual-stack pair)",
                                  printable_str(n->service_cidr, q, sizeof(q)));
        for (; n->api_sans && n->api_sans[i]; i++) {
                const char *s = n->api_sans[i];
                if (i >= CP_MAX_SANS)
                        return errmsg_set(e, E2BIG, "more than %u API server SANs", CP_MAX_SANS);
                if (!cp_valid_host(s) &&
                    !(strncmp(s, "*.", 2) == 0 && valid_dns(s + 2, strlen(s + 2), true)))
                        return errmsg_set(e, EINVAL,
                                          "API server SAN '%s' is neither an IP address nor a DNS name",
                                          printable_str(s, q, sizeof(q)));
        }
        return 0;
}

int cp_check(const struct cp_driver *d, struct errmsg *e) {
        int r = d->check(e);
        if (r < 0)
                errmsg_prefix(e, "control-plane driver %s", d->name);
        return r;
}

int cp_init(const struct cp_driver *d, const struct cp_node *node, struct cp_result *ret, struct errmsg *e) {
        struct cp_result res = {};
        int r;

        r = validate_node(d, node, true, e);
        if (r < 0)
                return r;
        r = d->init(node, &res, e);
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

int cp_join_params(const struct cp_driver *d, const struct cp_node *node, const char *joiner_name,
                   const char *joiner_address, enum cp_role role, json_object **ret, struct errmsg *e) {
        char q[68];
        int r;

        r = validate_node(d, node, false, e);
        if (r < 0)
                return r;
        if (!cp_valid_name(joiner_name))
                return errmsg_set(e, EINVAL, "joining node's name '%s' is not a lowercase RFC 1123 name",
                                  printable_str(joiner_name, q, sizeof(q)));
        if (!cp_valid_ip(joiner_address))
                return errmsg_set(e, EINVAL, "joining node's address '%s' is not an IP address",
                                  printable_str(joiner_address, q, sizeof(q)));
        if (role != CP_ROLE_WORKER && role != CP_ROLE_CONTROL_PLANE)
                return errmsg_set(e, EINVAL, "unknown role %d", (int) role);
        return d->join_params(node, joiner_name, joiner_address, role, ret, e);
}

int cp_join_params_from_json(const struct cp_driver *d, enum cp_role role, json_object *o,
                             struct cp_join_params *ret, struct errmsg *e) {
        struct cp_join_params p = { .role = role };
        int r;

        if (role != CP_ROLE_WORKER && role != CP_ROLE_CONTROL_PLANE)
                return errmsg_set(e, EINVAL, "unknown role %d", (int) role);
        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "%s join parameters must be a JSON object", d->name);
        r = d->parse_params(o, role, &p, e);
        if (r < 0) {
                cp_join_params_done(&p);
                errmsg_prefix(e, "%s join parameters", d->name);
                return r;
        }
        *ret = p;
        return 0;
}

int cp_join_params_parse(const struct cp_driver *d, enum cp_role role, const char *buf, size_t len,
                         struct cp_join_params *ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        if (len > CP_JOIN_PARAMS_MAX)
                return errmsg_set(e, EFBIG, "%s join parameters exceed %u bytes", d->name,
                                  CP_JOIN_PARAMS_MAX);
        r = json_parse(buf, len, &o, e);
        if (r < 0) {
                errmsg_prefix(e, "%s join parameters", d->name);
                return r;
        }
        return cp_join_params_from_json(d, role, o, ret, e);
}

int cp_join(const struct cp_driver *d, const struct cp_node *node, enum cp_role role, json_object *params,
            struct cp_result *ret, struct errmsg *e) {
        struct cp_join_params p = {};
        struct cp_result res = {};
        int r;

        r = validate_node(d, node, false, e);
        if (r < 0)
                return r;
        r = cp_join_params_from_json(d, role, params, &p, e);
        if (r < 0)
                return r;
        r = d->join(node, &p, &res, e);
        cp_join_params_done(&p);
        if (r < 0)
                return r;
        *ret = res;
        return 0;
}

/* --- JSON ----------------------------------------------------------------- */

int cp_json_only_fields(json_object *o, const char *const allowed[], struct errmsg *e) {
        json_object_object_foreach(o, key, v) {
                bool ok = false;
                char q[68];
                (void) v;
                for (size_t i = 0; allowed[i] && !ok; i++)
                        ok = streq(key, allowed[i]);
                if (!ok)
                        return errmsg_set(e, EBADMSG, "unknown field '%s'",
                                          printable_str(key, q, sizeof(q)));
        }
        return 0;
}

int cp_json_get_valid(json_object *o, const char *field, bool (*valid)(const char *s), const char *what,
                      char **ret, struct errmsg *e) {
        const char *s;
        char *c;
        int r;

        r = json_get_string(o, field, &s, e);
        if (r < 0)
                return r;
        if (!valid(s))
                return errmsg_set(e, EBADMSG, "field '%s' is not %s", field, what);
        c = strdup(s);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

/* --- programs --------------------------------------------------------------- */

int cp_find_binary(const char *name, char **ret_path, struct errmsg *e) {
        const char *path = getenv("PATH");
        const char *p;

        if (!path)
                path = "/bin:/usr/bin";
        for (p = path; *p;) {
                size_t n = strcspn(p, ":");
                /* An empty or relative entry would search the working
                 * directory: never for programs we hand secrets to. */
                if (n > 0 && p[0] == '/') {
                        _cleanup_free_ char *c = NULL;
                        struct stat st;

                        if (asprintf(&c, "%.*s/%s", (int) n, p, name) < 0)
                                return -ENOMEM;
                        if (stat(c, &st) == 0 && S_ISREG(st.st_mode) && access(c, X_OK) == 0) {
                                *ret_path = TAKE_PTR(c);
                                return 0;
                        }
                }
                p += n;
                if (*p == ':')
                        p++;
        }
        return errmsg_set(e, ENOENT, "%s not found: no executable '%s' on PATH (%.300s)", name, name, path);
}

/* Keep the last bytes of a stream in a fixed buffer. */
struct tail {
        char buf[CP_STDERR_TAIL];
        size_t len;
};

static void tail_add(struct tail *t, const char *p, size_t n) {
        if (n >= sizeof(t->buf)) {
                memcpy(t->buf, p + n - sizeof(t->buf), sizeof(t->buf));
                t->len = sizeof(t->buf);
                return;
        }
        if (t->len + n > sizeof(t->buf)) {
                size_t drop = t->len + n - sizeof(t->buf);
                memmove(t->buf, t->buf + drop, t->len - drop);
                t->len -= drop;
        }
        memcpy(t->buf + t->len, p, n);
        t->len += n;
}

/* The end of a program's output as one line for a message: control
 * characters become spaces, runs of blanks one space, at most max bytes. */
void cp_output_line(const char *p, size_t n, char *out, size_t max) {
        size_t o = 0, start;
        bool space = true;
        char *tmp = malloc(n + 1);

        if (!tmp) {
                snprintf(out, max, "(out of memory)");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                char c = (unsigned char) p[i] < 0x20 || p[i] == 0x7f ? ' ' : p[i];
                if (c == ' ' && space)
                        continue;
                space = c == ' ';
                tmp[o++] = c;
        }
        while (o > 0 && tmp[o - 1] == ' ')
                o--;
        tmp[o] = 0;
        start = o + 1 > max ? o + 4 - max : 0;
        snprintf(out, max, "%s%s", start ? "..." : "", tmp + start);
        free(tmp);
}

static void describe_status(int st, char *buf, size_t size) {
        if (WIFEXITED(st))
                snprintf(buf, size, "exit status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
                snprintf(buf, size, "killed by signal %d", WTERMSIG(st));
        else
                snprintf(buf, size, "status 0x%x", st);
}

int cp_run(const char *what, char *const argv[], unsigned timeout_sec, struct errmsg *e) {
        _cleanup_close_ int rfd = -EBADF;
        int pipefd[2], st = 0;
        struct tail *t = NULL;
        uint64_t deadline = now_ms() + (uint64_t) timeout_sec * 1000;
        pid_t parent = getpid(), pid, w = 0;
        bool eof = false;
        int r = 0;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                free(t);
                return negative_errno();
        }
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(pipefd[0]);
                close(pipefd[1]);
                free(t);
                return errmsg_set(e, r, "cannot start %s: %s", what, strerror(-r));
        }
        if (pid == 0) {
                static const char msg[] = "cannot execute the program\n";
                child_reset(parent, SIGKILL, -1, pipefd[1]);
                (void) setpgid(0, 0);
                execv(argv[0], argv);
                (void) !write(STDERR_FILENO, msg, sizeof(msg) - 1);
                _exit(127);
        }
        close(pipefd[1]);
        rfd = pipefd[0];
        (void) fcntl(rfd, F_SETFL, O_NONBLOCK);

        /* Read stderr until the program has exited and the pipe is drained
         * (or is held open by a leftover grandchild). */
        for (;;) {
                struct pollfd pfd = { .fd = rfd, .events = POLLIN };
                char buf[4096];
                ssize_t n;

                if (w == 0) {
                        w = waitpid(pid, &st, WNOHANG);
                        if (w < 0 && errno != EINTR) {
                                r = errmsg_set(e, errno, "cannot wait for %s: %m", what);
                                break;
                        }
                        if (w < 0)
                                w = 0;
                }
                if (w == 0 && now_ms() >= deadline) {
                        (void) kill(-pid, SIGKILL);
                        (void) kill(pid, SIGKILL);
                        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                                ;
                        r = errmsg_set(e, ETIMEDOUT, "%s did not finish within %u s", what, timeout_sec);
                        break;
                }
                if (!eof) {
                        if (poll(&pfd, 1, w > 0 ? 0 : 100) > 0) {
                                n = read(rfd, buf, sizeof(buf));
                                if (n > 0)
                                        tail_add(t, buf, (size_t) n);
                                else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                        eof = true;
                                continue;
                        }
                        if (w > 0)
                                break; /* exited, and nothing more to read now */
                        continue;
                }
                if (w > 0)
                        break;
                sleep_ms(20);
        }
        if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
                char status[64], out[384];
                describe_status(st, status, sizeof(status));
                cp_output_line(t->buf, t->len, out, sizeof(out));
                r = errmsg_set(e, EIO, "%s failed (%s): %s", what, status,
                               out[0] ? out : "(no output on stderr)");
        }
        secret_wipe(t, sizeof(*t));
        free(t);
        return r;
}

int cp_spawn(char *const argv[], const char *log_path, pid_t *ret_pid, struct errmsg *e) {
        _cleanup_close_ int log_fd = -EBADF;
        pid_t parent = getpid(), pid;

        log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
        if (log_fd < 0)
                return errmsg_set(e, errno, "cannot open log file %s: %m", log_path);
        pid = fork();
        if (pid < 0)
                return errmsg_set(e, errno, "cannot start %s: %m", argv[0]);
        if (pid == 0) {
                child_reset(parent, SIGTERM, log_fd, log_fd);
                execv(argv[0], argv);
                _exit(127);
        }
        *ret_pid = pid;
        return 0;
}

/* --- HTTP ------------------------------------------------------------------- */



int cp_http_json(const char *method, const char *url, json_object *body, long timeout_ms, json_object **ret,
                 struct errmsg *e) {
        struct http_response resp = {};
        struct http_request req = {
                .method = method,
                .timeout_ms = timeout_ms > 0 ? timeout_ms : 10000L,
                .max_response = CP_HTTP_MAX_RESPONSE,
        };
        struct http_url u;
        size_t len = 0;
        int r;

        if (!streq(method, "GET") && !streq(method, "POST"))
                return -EINVAL;
        r = http_url_parse(url, &u, e);
        if (r < 0)
                return r;
        if (u.tls)
                return errmsg_set(e, EINVAL, "%s: the drivers speak plain http to etcd", url);
        if (streq(method, "POST")) {
                req.body = body ? json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN, &len) : "{}";
                if (!req.body)
                        return -ENOMEM;
                req.body_size = body ? len : 2;
        }
        r = http_request_to(&u, NULL, 0, &req, &resp, e);
        if (r < 0) {
                errmsg_prefix(e, "%s", url);
                return r;
        }
        if (resp.status != 200) {
                char out[256];
                cp_output_line(resp.body, resp.body_size, out, sizeof(out));
                r = errmsg_set(e, EPROTO, "%s: HTTP status %ld: %s", url, resp.status, out);
        } else {
                r = json_parse(resp.body, resp.body_size, ret, e);
                if (r < 0)
                        errmsg_prefix(e, "%s", url);
        }
        http_response_done(&resp);
        return r;
}

/* --- files and randomness ------------------------------------------------- */

int cp_random_alnum(char *buf, size_t n) {
        static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
        uint8_t rnd[64];
        size_t i = 0;
        int r;

        while (i < n) {
                r = secret_random(rnd, sizeof(rnd));
                if (r < 0)
                        return r;
                /* Rejection sampling: 252 = 7 * 36, no modulo bias. */
                for (size_t k = 0; k < sizeof(rnd) && i < n; k++)
                        if (rnd[k] < 252)
                                buf[i++] = alphabet[rnd[k] % 36];
        }
        secret_wipe(rnd, sizeof(rnd));
        return 0;
}
