/* SPDX-License-Identifier: Apache-2.0 */
#include "nodestate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cpdriver.h"
#include "fileio.h"
#include "registry.h"
#include "json-util.h"
#include "secret.h"

#define STATE_MAX_SIZE (64 * 1024)

static int state_path(const char *dir, const char *file, bool create_dir, char **ret) {
        _cleanup_free_ char *sub = NULL;

        if (asprintf(&sub, "%s/arca", dir) < 0)
                return -ENOMEM;
        if (create_dir && mkdir(sub, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (asprintf(ret, "%s/%s", sub, file) < 0)
                return -ENOMEM;
        return 0;
}

static int read_state_file(const char *dir, const char *file, char **ret, size_t *ret_size, struct errmsg *e) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = state_path(dir, file, false, &path);
        if (r < 0)
                return r;
        r = read_full_file(path, STATE_MAX_SIZE, ret, ret_size);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return errmsg_set(e, r, "Cannot read %s: %s", path, strerror(-r));
        return 0;
}

static int write_state_file(const char *dir, const char *file, const char *data, size_t size, struct errmsg *e) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = state_path(dir, file, true, &path);
        if (r < 0)
                return errmsg_set(e, r, "Cannot create %s/arca: %s", dir, strerror(-r));
        r = write_file_atomic(path, data, size, 0600);
        if (r < 0)
                return errmsg_set(e, r, "Cannot write %s: %s", path, strerror(-r));
        return 0;
}

int nodestate_parse(const char *buf, size_t len, struct node_state *ret, struct errmsg *e) {
        static const char *const fields[] = { "role", "nodeName", "clusterName", "clusterId", "measurementSalt",
                                              "driver", "meshCidr", "meshAddress", "diskUuid", "registry", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct node_state s = {};
        json_object *reg;
        int r;

        r = json_parse(buf, len, &o, e);
        if (r < 0)
                return r;
        if ((r = json_check_fields(o, fields, e)) < 0 ||
            (r = json_get_string_buf(o, "role", s.role, sizeof(s.role), e)) < 0 ||
            (r = json_get_string_buf(o, "nodeName", s.node_name, sizeof(s.node_name), e)) < 0 ||
            (r = json_get_string_buf(o, "clusterName", s.cluster_name, sizeof(s.cluster_name), e)) < 0 ||
            (r = json_get_bytes_exact(o, "clusterId", s.cluster_id, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "measurementSalt", s.measurement_salt, KEY_SIZE, e)) < 0 ||
            (r = json_get_string_buf(o, "driver", s.driver, sizeof(s.driver), e)) < 0 ||
            (r = json_get_string_buf(o, "meshCidr", s.mesh_cidr, sizeof(s.mesh_cidr), e)) < 0 ||
            (r = json_get_string_buf(o, "meshAddress", s.mesh_address, sizeof(s.mesh_address), e)) < 0 ||
            (r = json_get_string_buf(o, "diskUuid", s.disk_uuid, sizeof(s.disk_uuid), e)) < 0 ||
            (r = json_get_array(o, "registry", &reg, e)) < 0)
                return r;
        if (!valid_role(s.role) || !valid_node_name(s.node_name) || !valid_node_name(s.cluster_name) ||
            !valid_cidr4(s.mesh_cidr) || !valid_address(s.mesh_address) || !valid_uuid(s.disk_uuid))
                return errmsg_set(e, EBADMSG, "node state holds an invalid value");
        if (json_object_array_length(reg) > NODESTATE_MAX_ENDPOINTS)
                return errmsg_set(e, EBADMSG, "too many registry endpoints");
        for (size_t i = 0; i < json_object_array_length(reg); i++) {
                json_object *v = json_object_array_get_idx(reg, i);
                if (!json_object_is_type(v, json_type_string) ||
                    (size_t) json_object_get_string_len(v) >= sizeof(s.registry[0]))
                        return errmsg_set(e, EBADMSG, "registry[%zu] is invalid", i);
                strcpy(s.registry[i], json_object_get_string(v));
                s.n_registry++;
        }
        *ret = s;
        return 0;
}

int nodestate_read(const char *dir, struct node_state *ret, struct errmsg *e) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        r = read_state_file(dir, "node.json", &buf, &len, e);
        if (r < 0)
                return r;
        r = nodestate_parse(buf, len, ret, e);
        if (r < 0)
                errmsg_prefix(e, "%s/arca/node.json", dir);
        return r;
}

int nodestate_write(const char *dir, const struct node_state *s, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *reg = json_object_new_array();
        const char *text;
        size_t len;
        int r;

        if (!o || json_add(o, "registry", reg) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_registry; i++)
                if (json_object_array_add(reg, json_object_new_string(s->registry[i])) < 0)
                        return -ENOMEM;
        if ((r = json_add_string(o, "role", s->role)) < 0 || (r = json_add_string(o, "nodeName", s->node_name)) < 0 ||
            (r = json_add_string(o, "clusterName", s->cluster_name)) < 0 ||
            (r = json_add_base64(o, "clusterId", s->cluster_id, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "measurementSalt", s->measurement_salt, KEY_SIZE)) < 0 ||
            (r = json_add_string(o, "driver", s->driver)) < 0 || (r = json_add_string(o, "meshCidr", s->mesh_cidr)) < 0 ||
            (r = json_add_string(o, "meshAddress", s->mesh_address)) < 0 ||
            (r = json_add_string(o, "diskUuid", s->disk_uuid)) < 0)
                return r;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        len = strlen(text);
        return write_state_file(dir, "node.json", text, len, e);
}

int master_read(const char *dir, struct master_state *ret, struct errmsg *e) {
        static const char *const fields[] = { "masterSecret", "masterSalt", NULL };
        _cleanup_free_ char *buf = NULL;
        json_object *o = NULL;
        struct master_state m = {};
        size_t len;
        int r;

        r = read_state_file(dir, "master.json", &buf, &len, e);
        if (r < 0)
                return r;
        r = json_parse(buf, len, &o, e);
        secret_wipe(buf, len);
        if (r >= 0 && (r = json_check_fields(o, fields, e)) >= 0 &&
            (r = json_get_bytes_exact(o, "masterSecret", m.master_secret, KEY_SIZE, e)) >= 0 &&
            (r = json_get_bytes_exact(o, "masterSalt", m.master_salt, KEY_SIZE, e)) >= 0)
                *ret = m;
        secret_wipe(&m, sizeof(m));
        json_wipe_strings(o);
        json_object_put(o);
        if (r < 0)
                errmsg_prefix(e, "%s/arca/master.json", dir);
        return r;
}

int master_write(const char *dir, const struct master_state *m, struct errmsg *e) {
        json_object *o = json_object_new_object();
        char *text = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_base64(o, "masterSecret", m->master_secret, KEY_SIZE)) >= 0 &&
            (r = json_add_base64(o, "masterSalt", m->master_salt, KEY_SIZE)) >= 0 &&
            (r = json_serialize_secret(o, &text)) >= 0) {
                r = write_state_file(dir, "master.json", text, strlen(text), e);
                secret_free(text, strlen(text));
        }
        json_wipe_strings(o);
        json_object_put(o);
        return r;
}

int policy_file_read(const char *dir, char **ret, size_t *ret_size, struct errmsg *e) {
        return read_state_file(dir, "policy.json", ret, ret_size, e);
}

int policy_file_write(const char *dir, const char *policy, size_t size, struct errmsg *e) {
        return write_state_file(dir, "policy.json", policy, size, e);
}

int nodestate_registry_open(const struct node_state *s, const char *kubernetes_dir, struct registry **ret,
                            struct errmsg *e) {
        const char *eps[NODESTATE_MAX_ENDPOINTS];
        _cleanup_free_ char *ca = NULL, *cert = NULL, *key = NULL;
        struct registry_config cfg = {};
        const char *kdir = kubernetes_dir ? kubernetes_dir : CP_KUBERNETES_DIR_DEFAULT;

        if (s->n_registry == 0)
                return errmsg_set(e, ENOENT, "this node has no membership registry");
        for (size_t i = 0; i < s->n_registry; i++)
                eps[i] = s->registry[i];
        cfg.endpoints = eps;
        cfg.n_endpoints = s->n_registry;
        if (strncmp(s->registry[0], "https://", 8) == 0) {
                /* kubeadm's stacked etcd: the API server's etcd client certificate. */
                if (asprintf(&ca, "%s/pki/etcd/ca.crt", kdir) < 0 ||
                    asprintf(&cert, "%s/pki/apiserver-etcd-client.crt", kdir) < 0 ||
                    asprintf(&key, "%s/pki/apiserver-etcd-client.key", kdir) < 0)
                        return -ENOMEM;
                cfg.ca_file = ca;
                cfg.cert_file = cert;
                cfg.key_file = key;
        }
        return registry_new(&cfg, ret, e);
}
