/* SPDX-License-Identifier: Apache-2.0 */
/* Control-plane driver "etcd": a standalone etcd cluster on the
 * control-plane nodes' mesh addresses, for machines without Kubernetes
 * binaries. Plain HTTP: the mesh (WireGuard) authenticates and encrypts
 * all traffic between nodes. The first node starts a new cluster; the join
 * service adds each control-plane joiner as a learner through the member
 * API (/v3/cluster/member/add) and hands it the initial cluster, with which
 * the joiner starts etcd in state "existing" and, once caught up, promotes
 * itself to a voting member. A learner does not count for the quorum, so
 * the cluster stays available throughout a join, also when the joiner
 * never comes. Workers only learn the client endpoints.
 *
 * A learner that never completes its join (the joiner failed) would block
 * every later control-plane join, since a second join must wait for the
 * first. So the join service records each learner it adds, with the
 * joiner's name and the time, under /arca-etcd/learners/<member ID> in the
 * cluster's own keyspace; a later join removes a learner that is the same
 * node's (it retries, possibly from another address) or that was not
 * promoted within ETCD_LEARNER_TIMEOUT_S (a learner found without a record
 * gets one then, and the same time to finish). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpdriver.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "time-util.h"

#define ETCD_START_TIMEOUT_MS 60000
#define ETCD_HTTP_TIMEOUT_MS 5000
#define ETCD_LOG_TAIL 16384
/* A joiner has ETCD_START_TIMEOUT_MS to start, catch up and promote itself. */
#define ETCD_LEARNER_TIMEOUT_S (2 * ETCD_START_TIMEOUT_MS / 1000)
#define LEARNER_KEY_PREFIX "/arca-etcd/learners/"
#define LEARNER_RECORD_MAX 128

static uint16_t client_port(const struct cp_node *n) {
        return n->etcd_client_port ? n->etcd_client_port : CP_ETCD_CLIENT_PORT_DEFAULT;
}

static uint16_t peer_port(const struct cp_node *n) {
        return n->etcd_peer_port ? n->etcd_peer_port : CP_ETCD_PEER_PORT_DEFAULT;
}

static int url(const char *address, uint16_t port, char *buf, size_t size) {
        char hp[80];
        int r = cp_hostport(address, port, hp, sizeof(hp));
        if (r < 0)
                return r;
        return snprintf(buf, size, "http://%s", hp) >= (int) size ? -ENAMETOOLONG : 0;
}

static int find_etcd(char **ret, struct errmsg *e) {
        int r = cp_find_binary("etcd", ret, e);
        if (r == -ENOENT)
                errmsg_prefix(e, "the etcd server is missing (Debian package etcd-server)");
        return r;
}

static int etcd_check(struct errmsg *e) {
        _cleanup_free_ char *path = NULL;
        return find_etcd(&path, e);
}

/* The comma-separated list contains exactly the entry name=peer_url. */
static bool initial_cluster_has(const char *ic, const char *name, const char *peer_url) {
        size_t nl = strlen(name), ul = strlen(peer_url);

        for (const char *q = ic; q && *q;) {
                size_t len = strcspn(q, ",");
                if (len == nl + 1 + ul && strncmp(q, name, nl) == 0 && q[nl] == '=' &&
                    strncmp(q + nl + 1, peer_url, ul) == 0)
                        return true;
                q += len;
                if (*q == ',')
                        q++;
        }
        return false;
}

/* The most telling line etcd logged since `offset`: the last error (zap
 * JSON: "msg: error"), else the last line. */
static void log_reason(const char *log_path, off_t offset, char *out, size_t max) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        const char *best = NULL, *last = NULL, *msg, *err;
        size_t best_len = 0, last_len = 0;
        char line[512];
        struct stat st;
        ssize_t n;

        snprintf(out, max, "(nothing in %s)", log_path);
        fd = open(log_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return;
        if (st.st_size - offset > ETCD_LOG_TAIL)
                offset = st.st_size - ETCD_LOG_TAIL;
        buf = malloc(ETCD_LOG_TAIL + 1);
        if (!buf || (n = pread(fd, buf, ETCD_LOG_TAIL, offset)) <= 0)
                return;
        buf[n] = 0;
        for (char *l = buf, *end; l < buf + n; l = end + 1) {
                end = memchr(l, '\n', (size_t) (buf + n - l));
                if (!end)
                        end = buf + n;
                *end = 0;
                if (end == l)
                        continue;
                if (strstr(l, "\"level\":\"fatal\"") || strstr(l, "\"level\":\"panic\"") ||
                    strstr(l, "\"level\":\"error\"")) {
                        best = l;
                        best_len = (size_t) (end - l);
                }
                last = l;
                last_len = (size_t) (end - l);
        }
        if (!best) {
                best = last;
                best_len = last_len;
        }
        if (!best)
                return;
        if (json_parse(best, best_len, &o, NULL) == 0 && json_get_string(o, "msg", &msg, NULL) == 0) {
                if (json_get_string(o, "error", &err, NULL) == 0)
                        snprintf(line, sizeof(line), "%s: %s", msg, err);
                else
                        snprintf(line, sizeof(line), "%s", msg);
                cp_output_line(line, strlen(line), out, max);
        } else
                cp_output_line(best, best_len, out, max);
}

static int wait_healthy(pid_t pid, const char *client_url, const char *log_path, off_t log_offset,
                        struct errmsg *e) {
        uint64_t deadline = now_ms() + ETCD_START_TIMEOUT_MS;
        char health[300];
        struct errmsg last = {};

        snprintf(health, sizeof(health), "%s/health", client_url);
        for (;;) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                const char *h;
                int st;
                pid_t w = waitpid(pid, &st, WNOHANG);

                if (w == pid) {
                        char reason[320], status[48];
                        if (WIFEXITED(st))
                                snprintf(status, sizeof(status), "exit status %d", WEXITSTATUS(st));
                        else
                                snprintf(status, sizeof(status), "signal %d",
                                         WIFSIGNALED(st) ? WTERMSIG(st) : 0);
                        log_reason(log_path, log_offset, reason, sizeof(reason));
                        return errmsg_set(e, EIO, "etcd exited (%s) before it became healthy: %s", status,
                                          reason);
                }
                last = (struct errmsg){};
                if (cp_http_json("GET", health, NULL, 1000, &o, &last) == 0 &&
                    json_get_string(o, "health", &h, &last) == 0 && streq(h, "true"))
                        return 0;
                if (now_ms() >= deadline) {
                        char reason[320];
                        (void) kill(pid, SIGKILL);
                        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                                ;
                        log_reason(log_path, log_offset, reason, sizeof(reason));
                        return errmsg_set(e, ETIMEDOUT,
                                          "etcd did not become healthy within %u s (%s); its log says: %s",
                                          ETCD_START_TIMEOUT_MS / 1000, errmsg_str(&last), reason);
                }
                sleep_ms(100);
        }
}

/* Start etcd for `node` with the given initial cluster and state ("new" or
 * "existing") and wait until it reports healthy. */
static int start_etcd(const struct cp_node *node, const char *initial_cluster, const char *state,
                      struct cp_result *ret, struct errmsg *e) {
        _cleanup_free_ char *bin = NULL, *data_dir = NULL, *log_path = NULL, *wal_dir = NULL;
        _cleanup_(json_object_putp) json_object *kc = NULL, *eps = NULL;
        char curl[300], purl[300], lurl[300], listen[610];
        const char *s;
        struct stat st;
        off_t log_offset = 0;
        pid_t pid;
        int r;

        r = find_etcd(&bin, e);
        if (r < 0)
                return r;
        if (url(node->address, client_port(node), curl, sizeof(curl)) < 0 ||
            url(node->address, peer_port(node), purl, sizeof(purl)) < 0)
                return -ENAMETOOLONG;
        /* Clients on the node address and, for the node's own services, a
         * local one; peers only on the node (mesh) address. Only the node
         * address is advertised: the others reach etcd there. */
        if (node->local_address) {
                if (url(node->local_address, client_port(node), lurl, sizeof(lurl)) < 0)
                        return -ENAMETOOLONG;
                snprintf(listen, sizeof(listen), "%s,%s", curl, lurl);
        } else
                snprintf(listen, sizeof(listen), "%s", curl);
        r = mkdir_p(node->state_dir, 0700);
        if (r < 0)
                return errmsg_set(e, r, "cannot create %s: %s", node->state_dir, strerror(-r));
        if (asprintf(&data_dir, "%s/etcd", node->state_dir) < 0 ||
            asprintf(&log_path, "%s/etcd.log", node->state_dir) < 0 ||
            asprintf(&wal_dir, "%s/etcd/member/wal", node->state_dir) < 0)
                return -ENOMEM;
        if (stat(log_path, &st) == 0)
                log_offset = st.st_size;

        char *argv[] = {
                bin,
                (char *) "--name",
                (char *) node->name,
                (char *) "--data-dir",
                data_dir,
                (char *) "--logger",
                (char *) "zap",
                (char *) "--log-outputs",
                (char *) "stderr",
                (char *) "--listen-client-urls",
                listen,
                (char *) "--advertise-client-urls",
                curl,
                (char *) "--listen-peer-urls",
                purl,
                (char *) "--initial-advertise-peer-urls",
                purl,
                (char *) "--initial-cluster",
                (char *) initial_cluster,
                (char *) "--initial-cluster-state",
                (char *) state,
                (char *) "--initial-cluster-token",
                (char *) (node->cluster_name ? node->cluster_name : CP_CLUSTER_NAME_DEFAULT),
                NULL,
        };
        /* A joiner's etcd ("existing") first fetches the cluster from the
         * members' peer URLs and exits at once when none answers. Over the
         * mesh that is expected for a moment: the members add the joiner
         * as a WireGuard peer at their next mesh refresh. So start it again
         * until ETCD_START_TIMEOUT_MS, as long as it never got as far as
         * writing its log (member/wal: before it, etcd only made an empty
         * database, and fetches the cluster again at its next start). */
        for (uint64_t deadline = now_ms() + ETCD_START_TIMEOUT_MS;;) {
                struct errmsg attempt = {};
                struct stat dst;

                r = cp_spawn(argv, log_path, &pid, e);
                if (r < 0)
                        return r;
                r = wait_healthy(pid, curl, log_path, log_offset, &attempt);
                if (r >= 0)
                        break;
                if (!streq(state, "existing") ||
                    !strstr(attempt.text, "cannot fetch cluster info from peer urls") ||
                    stat(wal_dir, &dst) == 0 || now_ms() >= deadline) {
                        errmsg_set(e, -r, "%s", attempt.text);
                        return r;
                }
                if (stat(log_path, &st) == 0)
                        log_offset = st.st_size;
                sleep_ms(500);
        }

        kc = json_object_new_object();
        eps = json_object_new_array();
        if (!kc || !eps || json_object_array_add(eps, json_object_new_string(curl)) < 0 ||
            json_add(kc, "etcdEndpoints", TAKE_PTR(eps)) < 0 ||
            !(s = json_object_to_json_string_ext(kc, JSON_C_TO_STRING_PLAIN)) ||
            !(ret->kubeconfig = strdup(s))) {
                struct cp_result tmp = { .pid = pid };
                (void) cp_stop(&tmp);
                return -ENOMEM;
        }
        ret->kubeconfig_size = strlen(s);
        ret->pid = pid;
        return 0;
}

static int etcd_init(const struct cp_node *node, struct cp_result *ret, struct errmsg *e) {
        char purl[300], *ic = NULL;
        int r;

        if (url(node->address, peer_port(node), purl, sizeof(purl)) < 0)
                return -ENAMETOOLONG;
        if (asprintf(&ic, "%s=%s", node->name, purl) < 0)
                return -ENOMEM;
        r = start_etcd(node, ic, "new", ret, e);
        free(ic);
        return r;
}

/* One member from the member API, as far as we use it. */
struct member {
        const char *id, *name; /* name "" for a member added but not started */
        bool learner;
        json_object *peer_urls, *client_urls;
};

static int parse_members(json_object *resp, struct member m[static CP_MAX_MEMBERS], size_t *ret_n,
                         struct errmsg *e) {
        json_object *arr;
        size_t n;
        int r;

        r = json_get_array(resp, "members", &arr, e);
        if (r < 0)
                return r;
        n = json_object_array_length(arr);
        if (n == 0 || n > CP_MAX_MEMBERS)
                return errmsg_set(e, E2BIG, "etcd reports %zu members (1..%u supported)", n, CP_MAX_MEMBERS);
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(arr, i), *v;

                m[i] = (struct member){ .name = "" };
                r = json_get_string(o, "ID", &m[i].id, e);
                if (r < 0)
                        return r;
                if (json_object_object_get_ex(o, "name", &v)) {
                        r = json_get_string(o, "name", &m[i].name, e);
                        if (r < 0)
                                return r;
                        if (m[i].name[0] && !cp_valid_name(m[i].name))
                                return errmsg_set(e, EBADMSG, "etcd member %s has an invalid name", m[i].id);
                }
                if (json_object_object_get_ex(o, "isLearner", &v) &&
                    json_get_bool(o, "isLearner", &m[i].learner, e) < 0)
                        return -EBADMSG;
                if (json_object_object_get_ex(o, "peerURLs", &v) &&
                    json_get_array(o, "peerURLs", &m[i].peer_urls, e) < 0)
                        return -EBADMSG;
                if (json_object_object_get_ex(o, "clientURLs", &v) &&
                    json_get_array(o, "clientURLs", &m[i].client_urls, e) < 0)
                        return -EBADMSG;
                for (int k = 0; k < 2; k++) {
                        json_object *urls = k ? m[i].client_urls : m[i].peer_urls;
                        size_t nu = urls ? json_object_array_length(urls) : 0;
                        if (nu > CP_MAX_MEMBERS)
                                return errmsg_set(e, E2BIG, "etcd member %s has %zu URLs", m[i].id, nu);
                        for (size_t u = 0; u < nu; u++) {
                                json_object *x = json_object_array_get_idx(urls, u);
                                if (!json_object_is_type(x, json_type_string) ||
                                    !cp_valid_url(json_object_get_string(x)))
                                        return errmsg_set(e, EBADMSG, "etcd member %s has an invalid URL",
                                                          m[i].id);
                        }
                }
        }
        *ret_n = n;
        return 0;
}

static bool has_url(json_object *urls, const char *u) {
        size_t n = urls ? json_object_array_length(urls) : 0;
        for (size_t i = 0; i < n; i++)
                if (streq(json_object_get_string(json_object_array_get_idx(urls, i)), u))
                        return true;
        return false;
}

/* --- learner records ------------------------------------------------------------ */

static int kv_call(const char *base, const char *op, const char *key, const char *value, json_object **ret,
                   struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = json_object_new_object();
        char api[340];

        if (!req || json_add_base64(req, "key", key, strlen(key)) < 0 ||
            (value && json_add_base64(req, "value", value, strlen(value)) < 0))
                return -ENOMEM;
        snprintf(api, sizeof(api), "%s/v3/kv/%s", base, op);
        return cp_http_json("POST", api, req, ETCD_HTTP_TIMEOUT_MS, ret, e);
}

static int learner_record_put(const char *base, const char *id, const char *name, uint64_t now_s,
                              struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *resp = NULL;
        char key[128], value[LEARNER_RECORD_MAX];

        snprintf(key, sizeof(key), LEARNER_KEY_PREFIX "%s", id);
        snprintf(value, sizeof(value), "%llu %s", (unsigned long long) now_s, name);
        return kv_call(base, "put", key, value, &resp, e);
}

static void learner_record_delete(const char *base, const char *id) {
        _cleanup_(json_object_putp) json_object *resp = NULL;
        char key[128];

        snprintf(key, sizeof(key), LEARNER_KEY_PREFIX "%s", id);
        (void) kv_call(base, "deleterange", key, NULL, &resp, NULL);
}

/* The record of learner `id`: when it was added (unix seconds) and for
 * which node ("" if unknown). -ENOENT without one. */
static int learner_record_get(const char *base, const char *id, uint64_t *ret_added,
                              char ret_name[static LEARNER_RECORD_MAX], struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *resp = NULL;
        _cleanup_free_ uint8_t *raw = NULL;
        json_object *kvs;
        const char *v64;
        char key[128], text[LEARNER_RECORD_MAX], *sp, *end;
        size_t size = 0;
        unsigned long long t;
        int r;

        snprintf(key, sizeof(key), LEARNER_KEY_PREFIX "%s", id);
        r = kv_call(base, "range", key, NULL, &resp, e);
        if (r < 0)
                return r;
        if (!json_object_object_get_ex(resp, "kvs", &kvs) || json_object_array_length(kvs) == 0)
                return -ENOENT;
        if (json_get_string(json_object_array_get_idx(kvs, 0), "value", &v64, e) < 0 ||
            base64_decode(v64, strlen(v64), &raw, &size) < 0 || size == 0 || size >= sizeof(text))
                return errmsg_set(e, EBADMSG, "etcd learner record %s is malformed", id);
        memcpy(text, raw, size);
        text[size] = 0;
        errno = 0;
        t = strtoull(text, &end, 10);
        sp = end;
        if (errno || sp == text || (*sp != ' ' && *sp != 0))
                return errmsg_set(e, EBADMSG, "etcd learner record %s is malformed", id);
        *ret_added = t;
        snprintf(ret_name, LEARNER_RECORD_MAX, "%s", *sp ? sp + 1 : "");
        return 0;
}

static int member_remove(const char *base, const char *id, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = json_object_new_object(), *resp = NULL;
        char api[340];

        if (!req || json_add_string(req, "ID", id) < 0)
                return -ENOMEM;
        snprintf(api, sizeof(api), "%s/v3/cluster/member/remove", base);
        return cp_http_json("POST", api, req, ETCD_HTTP_TIMEOUT_MS, &resp, e);
}

/* Learners (and members added but never started) other than the joiner's
 * own at purl: remove those that are stale or the joiner's own from an
 * earlier attempt. 1 if any was removed (the member list changed), 0 if
 * none is left, -EBUSY if one is a join under way. */
static int remove_stale_learners(const char *base, const struct member *m, size_t n, const char *joiner_name,
                                 const char *purl, struct errmsg *e) {
        uint64_t now_s = (uint64_t) time(NULL);
        bool removed = false;
        int r;

        for (size_t i = 0; i < n; i++) {
                char name[LEARNER_RECORD_MAX];
                uint64_t added = 0;
                bool own;

                if (!m[i].learner && m[i].name[0])
                        continue; /* a voting member */
                if (has_url(m[i].peer_urls, purl))
                        continue; /* the joiner's own, reused */
                r = learner_record_get(base, m[i].id, &added, name, e);
                if (r == -ENOENT) {
                        /* Not added by a join service: it gets the same time as ours. */
                        r = learner_record_put(base, m[i].id, m[i].name, now_s, e);
                        if (r < 0)
                                return r;
                        added = now_s;
                        snprintf(name, sizeof(name), "%s", m[i].name);
                } else if (r < 0)
                        return r;
                own = streq(name, joiner_name) || streq(m[i].name, joiner_name);
                if (!own && added + ETCD_LEARNER_TIMEOUT_S > now_s)
                        return errmsg_set(e, EBUSY,
                                          "etcd member %s (%s) has not completed its join: another "
                                          "control-plane join is under way (it is removed if not done within %llu s)",
                                          m[i].id, name[0] ? name : "never started",
                                          (unsigned long long) (added + ETCD_LEARNER_TIMEOUT_S - now_s));
                r = member_remove(base, m[i].id, e);
                if (r < 0) {
                        errmsg_prefix(e, "cannot remove stale etcd learner %s", m[i].id);
                        return r;
                }
                learner_record_delete(base, m[i].id);
                removed = true;
        }
        return removed;
}

static int etcd_join_params(const struct cp_node *node, const char *joiner_name, const char *joiner_address,
                            enum cp_role role, json_object **ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *list = NULL, *added = NULL, *out = NULL, *eps = NULL;
        _cleanup_free_ char *ic = NULL;
        struct member m[CP_MAX_MEMBERS];
        const char *new_id = NULL;
        char base[300], api[340], purl[300];
        size_t n = 0, len = 0, n_eps = 0;
        int r;

        if (url(node->address, client_port(node), base, sizeof(base)) < 0 ||
            url(joiner_address, peer_port(node), purl, sizeof(purl)) < 0)
                return -ENAMETOOLONG;
        snprintf(api, sizeof(api), "%s/v3/cluster/member/list", base);
        r = cp_http_json("POST", api, NULL, ETCD_HTTP_TIMEOUT_MS, &list, e);
        if (r < 0)
                return r;
        r = parse_members(list, m, &n, e);
        if (r < 0)
                return r;
        if (role == CP_ROLE_CONTROL_PLANE) {
                for (size_t i = 0; i < n; i++)
                        if (!m[i].learner && streq(m[i].name, joiner_name) && !has_url(m[i].peer_urls, purl))
                                return errmsg_set(e, EEXIST, "an etcd member named '%s' already exists",
                                                  joiner_name);
                r = remove_stale_learners(base, m, n, joiner_name, purl, e);
                if (r < 0)
                        return r;
                if (r > 0) {
                        /* Read again what is left. */
                        list = (json_object_put(list), NULL);
                        r = cp_http_json("POST", api, NULL, ETCD_HTTP_TIMEOUT_MS, &list, e);
                        if (r >= 0)
                                r = parse_members(list, m, &n, e);
                        if (r < 0)
                                return r;
                }
        }

        out = json_object_new_object();
        eps = json_object_new_array();
        if (!out || !eps)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                for (size_t u = 0; m[i].client_urls && u < json_object_array_length(m[i].client_urls); u++) {
                        const char *c =
                                json_object_get_string(json_object_array_get_idx(m[i].client_urls, u));
                        if (n_eps >= CP_MAX_MEMBERS)
                                break;
                        if (json_object_array_add(eps, json_object_new_string(c)) < 0)
                                return -ENOMEM;
                        n_eps++;
                }
        if (n_eps == 0)
                return errmsg_set(e, EBADMSG, "etcd reports no client URLs");
        r = json_add(out, "endpoints", TAKE_PTR(eps));
        if (r < 0)
                return r;
        if (role == CP_ROLE_WORKER) {
                *ret = TAKE_PTR(out);
                return 0;
        }

        /* The joiner becomes a learner: it does not count for the quorum, so
         * the cluster stays available (to the registry, say) until the
         * joiner has started, caught up and promoted itself (etcd_join).
         * A retried join finds its own learner and uses it again. Any other
         * learner or unstarted member means a join is under way. */
        for (size_t i = 0; i < n; i++) {
                if (has_url(m[i].peer_urls, purl)) {
                        if (!m[i].learner || (m[i].name[0] && !streq(m[i].name, joiner_name)))
                                return errmsg_set(e, EEXIST, "%s already belongs to etcd member '%s'", purl,
                                                  m[i].name[0] ? m[i].name : m[i].id);
                        new_id = m[i].id;
                } else if (streq(m[i].name, joiner_name))
                        return errmsg_set(e, EEXIST, "an etcd member named '%s' already exists",
                                          joiner_name);
        }
        for (size_t i = 0; i < n; i++)
                if ((m[i].learner || !m[i].name[0]) && !(new_id && streq(m[i].id, new_id)))
                        return errmsg_set(e, EBUSY,
                                          "etcd member %s (%s) has not completed its join: another "
                                          "control-plane join is under way (remove the member if it failed)",
                                          m[i].id, m[i].name[0] ? m[i].name : "never started");
        if (!new_id) {
                _cleanup_(json_object_putp) json_object *req = json_object_new_object(), *peers = NULL;
                json_object *member;

                peers = json_object_new_array();
                if (!req || !peers || json_object_array_add(peers, json_object_new_string(purl)) < 0 ||
                    json_add(req, "peerURLs", TAKE_PTR(peers)) < 0 ||
                    json_add_bool(req, "isLearner", true) < 0)
                        return -ENOMEM;
                snprintf(api, sizeof(api), "%s/v3/cluster/member/add", base);
                r = cp_http_json("POST", api, req, ETCD_HTTP_TIMEOUT_MS, &added, e);
                if (r < 0) {
                        errmsg_prefix(e, "cannot add etcd member %s", purl);
                        return r;
                }
                r = json_get_object(added, "member", &member, e);
                if (r < 0)
                        return r;
                r = json_get_string(member, "ID", &new_id, e);
                if (r < 0)
                        return r;
                /* So that the learner is removed if the joiner never finishes. */
                r = learner_record_put(base, new_id, joiner_name, (uint64_t) time(NULL), e);
                if (r < 0)
                        return r;
                r = parse_members(added, m, &n, e);
                if (r < 0)
                        return r;
        }

        /* name=peerURL for every peer URL of every member, as etcdctl prints it. */
        ic = malloc(CP_JOIN_PARAMS_MAX);
        if (!ic)
                return -ENOMEM;
        ic[0] = 0;
        for (size_t i = 0; i < n; i++) {
                const char *name = streq(m[i].id, new_id) ? joiner_name : m[i].name;
                size_t nu = m[i].peer_urls ? json_object_array_length(m[i].peer_urls) : 0;

                if (!name[0])
                        return errmsg_set(e, EBUSY, "etcd member %s has not started", m[i].id);
                /* (the learner is ours: the loop above refused others) */
                for (size_t u = 0; u < nu; u++) {
                        const char *p = json_object_get_string(json_object_array_get_idx(m[i].peer_urls, u));
                        int k = snprintf(ic + len, CP_JOIN_PARAMS_MAX - len, "%s%s=%s", len ? "," : "", name,
                                         p);
                        if (k < 0 || (size_t) k >= CP_JOIN_PARAMS_MAX - len)
                                return errmsg_set(e, E2BIG, "initial cluster too long");
                        len += (size_t) k;
                }
        }
        if (!initial_cluster_has(ic, joiner_name, purl))
                return errmsg_set(e, EBADMSG, "etcd's member list lacks the new member %s", purl);
        r = json_add_string(out, "initialCluster", ic);
        if (r < 0)
                return r;
        r = json_add_string(out, "initialClusterState", "existing");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}

/* "n1=http://a:2380,n2=http://b:2380": names valid, URLs valid, no URL
 * twice, at most 2 * CP_MAX_MEMBERS entries. */
static bool valid_initial_cluster(const char *s) {
        const char *p = s;
        const char *urls[2 * CP_MAX_MEMBERS];
        size_t url_lens[2 * CP_MAX_MEMBERS], n = 0;

        if (!s || !*s || strlen(s) > CP_JOIN_PARAMS_MAX)
                return false;
        for (;;) {
                size_t len = strcspn(p, ","), nl;
                const char *eq = memchr(p, '=', len);
                char name[254];

                if (!eq || n >= ELEMENTSOF(urls))
                        return false;
                nl = (size_t) (eq - p);
                if (nl == 0 || nl >= sizeof(name))
                        return false;
                memcpy(name, p, nl);
                name[nl] = 0;
                if (!cp_valid_name(name))
                        return false;
                urls[n] = eq + 1;
                url_lens[n] = len - nl - 1;
                if (url_lens[n] == 0 || url_lens[n] > 300)
                        return false;
                {
                        char u[301];
                        memcpy(u, urls[n], url_lens[n]);
                        u[url_lens[n]] = 0;
                        if (!cp_valid_url(u))
                                return false;
                }
                for (size_t i = 0; i < n; i++)
                        if (url_lens[i] == url_lens[n] && memcmp(urls[i], urls[n], url_lens[n]) == 0)
                                return false;
                n++;
                if (!p[len])
                        return true;
                p += len + 1;
        }
}

static int etcd_parse_params(json_object *o, enum cp_role role, struct cp_join_params *ret,
                             struct errmsg *e) {
        static const char *const worker_fields[] = { "endpoints", NULL };
        static const char *const cp_fields[] = { "endpoints", "initialCluster", "initialClusterState",
                                                 NULL };
        json_object *arr;
        const char *state;
        size_t n;
        int r;

        r = cp_json_only_fields(o, role == CP_ROLE_CONTROL_PLANE ? cp_fields : worker_fields, e);
        if (r < 0) {
                if (role == CP_ROLE_WORKER && (json_object_object_get_ex(o, "initialCluster", NULL) ||
                                               json_object_object_get_ex(o, "initialClusterState", NULL)))
                        return errmsg_replace(e, EBADMSG, "a worker must not be given initialCluster");
                return r;
        }
        r = json_get_array(o, "endpoints", &arr, e);
        if (r < 0)
                return r;
        n = json_object_array_length(arr);
        if (n == 0 || n > CP_MAX_MEMBERS)
                return errmsg_set(e, EBADMSG, "field 'endpoints' must list 1..%u URLs", CP_MAX_MEMBERS);
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(arr, i);
                const char *s;

                if (!json_object_is_type(v, json_type_string) ||
                    !cp_valid_url(s = json_object_get_string(v)))
                        return errmsg_set(e, EBADMSG,
                                          "field 'endpoints' entry %zu is not an http(s)://host:port URL",
                                          i);
                for (size_t k = 0; k < i; k++)
                        if (streq(ret->endpoints[k], s))
                                return errmsg_set(e, EBADMSG, "field 'endpoints' lists %s twice", s);
                ret->endpoints[i] = strdup(s);
                if (!ret->endpoints[i])
                        return -ENOMEM;
                ret->n_endpoints = i + 1;
        }
        if (role == CP_ROLE_WORKER)
                return 0;
        r = cp_json_get_valid(o, "initialCluster", valid_initial_cluster,
                              "a list of name=http(s)://host:port (names RFC 1123, no URL twice)",
                              &ret->initial_cluster, e);
        if (r < 0)
                return r;
        r = json_get_string(o, "initialClusterState", &state, e);
        if (r < 0)
                return r;
        if (!streq(state, "existing"))
                return errmsg_set(e, EBADMSG, "field 'initialClusterState' must be \"existing\"");
        return 0;
}

/* The joiner started as a learner: promote it to a voting member once it
 * has caught up with the leader (etcd refuses before that), asking the
 * members that were there before. Idempotent. */
static int promote_self(const struct cp_join_params *p, const char *purl, struct errmsg *e) {
        uint64_t deadline = now_ms() + ETCD_START_TIMEOUT_MS;
        struct errmsg last = {};

        for (size_t k = 0;; k = (k + 1) % p->n_endpoints) {
                _cleanup_(json_object_putp) json_object *list = NULL, *req = NULL, *resp = NULL;
                struct member m[CP_MAX_MEMBERS];
                const char *id = NULL;
                bool learner = false;
                char api[340];
                size_t n = 0;

                last = (struct errmsg){};
                snprintf(api, sizeof(api), "%s/v3/cluster/member/list", p->endpoints[k]);
                if (cp_http_json("POST", api, NULL, ETCD_HTTP_TIMEOUT_MS, &list, &last) == 0 &&
                    parse_members(list, m, &n, &last) == 0) {
                        for (size_t i = 0; i < n; i++)
                                if (has_url(m[i].peer_urls, purl)) {
                                        id = m[i].id;
                                        learner = m[i].learner;
                                }
                        if (!id)
                                return errmsg_set(e, ENOENT, "%s is not a member of the etcd cluster", purl);
                        if (!learner) {
                                learner_record_delete(p->endpoints[k], id);
                                return 0;
                        }
                        req = json_object_new_object();
                        if (!req || json_add_string(req, "ID", id) < 0)
                                return -ENOMEM;
                        snprintf(api, sizeof(api), "%s/v3/cluster/member/promote", p->endpoints[k]);
                        if (cp_http_json("POST", api, req, ETCD_HTTP_TIMEOUT_MS, &resp, &last) == 0) {
                                learner_record_delete(p->endpoints[k], id);
                                return 0;
                        }
                }
                if (now_ms() >= deadline)
                        return errmsg_set(e, ETIMEDOUT, "cannot promote etcd learner %s within %u s: %s",
                                          purl, ETCD_START_TIMEOUT_MS / 1000, errmsg_str(&last));
                sleep_ms(100);
        }
}

/* A promotion is committed by the leader before the joiner has applied it:
 * until then the joiner's own etcd still refuses member and KV requests as
 * a learner. Wait until it serves them, so that whoever uses the local etcd
 * next (the join service, the registry) finds a voting member. */
static int wait_serving(const char *curl, const char *purl, struct errmsg *e) {
        uint64_t deadline = now_ms() + ETCD_START_TIMEOUT_MS;
        struct errmsg last = {};
        char api[340];

        snprintf(api, sizeof(api), "%s/v3/cluster/member/list", curl);
        for (;;) {
                _cleanup_(json_object_putp) json_object *list = NULL;
                struct member m[CP_MAX_MEMBERS];
                size_t n = 0;

                last = (struct errmsg){};
                if (cp_http_json("POST", api, NULL, ETCD_HTTP_TIMEOUT_MS, &list, &last) == 0 &&
                    parse_members(list, m, &n, &last) == 0)
                        for (size_t i = 0; i < n; i++)
                                if (has_url(m[i].peer_urls, purl) && !m[i].learner)
                                        return 0;
                if (now_ms() >= deadline)
                        return errmsg_set(e, ETIMEDOUT, "etcd at %s does not serve as a voting member within %u s: %s",
                                          curl, ETCD_START_TIMEOUT_MS / 1000,
                                          last.text[0] ? errmsg_str(&last) : "still a learner");
                sleep_ms(50);
        }
}

static int etcd_join(const struct cp_node *node, const struct cp_join_params *p, struct cp_result *ret,
                     struct errmsg *e) {
        struct cp_result res = {};
        char purl[300], curl[300];
        int r;

        if (p->role == CP_ROLE_WORKER) {
                _cleanup_(json_object_putp) json_object *kc = json_object_new_object();
                json_object *eps = json_object_new_array();
                const char *s;

                if (!kc || json_add(kc, "etcdEndpoints", eps) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < p->n_endpoints; i++)
                        if (json_object_array_add(eps, json_object_new_string(p->endpoints[i])) < 0)
                                return -ENOMEM;
                s = json_object_to_json_string_ext(kc, JSON_C_TO_STRING_PLAIN);
                if (!s || !(ret->kubeconfig = strdup(s)))
                        return -ENOMEM;
                ret->kubeconfig_size = strlen(s);
                return 0;
        }

        /* The join service must have added this very node. */
        if (url(node->address, peer_port(node), purl, sizeof(purl)) < 0)
                return -ENAMETOOLONG;
        if (!initial_cluster_has(p->initial_cluster, node->name, purl))
                return errmsg_set(e, EINVAL, "the initial cluster does not contain this node (%s=%s)",
                                  node->name, purl);
        r = start_etcd(node, p->initial_cluster, "existing", &res, e);
        if (r < 0)
                return r;
        r = promote_self(p, purl, e);
        if (r >= 0)
                r = url(node->address, client_port(node), curl, sizeof(curl)) < 0 ? -ENAMETOOLONG :
                                                                                      wait_serving(curl, purl, e);
        if (r < 0) {
                (void) cp_stop(&res);
                return r;
        }
        *ret = res;
        return 0;
}

const struct cp_driver cp_driver_etcd = {
        .name = "etcd",
        .kubernetes = false,
        .check = etcd_check,
        .init = etcd_init,
        .join_params = etcd_join_params,
        .parse_params = etcd_parse_params,
        .join = etcd_join,
};
