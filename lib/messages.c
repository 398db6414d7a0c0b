/* SPDX-License-Identifier: Apache-2.0 */
#include "messages.h"

#include <errno.h>
#include <string.h>

#include "cpdriver.h"
#include "json-util.h"
#include "secret.h"

/* --- shared pieces ---------------------------------------------------------- */

typedef bool (*validator_t)(const char *s);

/* A string field copied into buf and checked by `valid` (may be NULL). */
static int get_checked(json_object *o, const char *field, char *buf, size_t size, validator_t valid,
                       struct errmsg *e) {
        int r = json_get_string_buf(o, field, buf, size, e);
        if (r < 0)
                return r;
        if (valid && !valid(buf))
                return errmsg_set(e, EBADMSG, "field '%s' has an invalid value", field);
        return 0;
}

static bool valid_driver(const char *s) {
        return streq(s, "etcd") || streq(s, "kubeadm");
}

static bool valid_k8s_version(const char *s) {
        return !*s /* the node's default */ || cp_valid_k8s_version(s);
}

static bool valid_san(const char *s) {
        return valid_address(s) || valid_node_name(s);
}

static int parse_top(const char *buf, size_t len, const char *const *fields, json_object **ret, struct errmsg *e) {
        return json_parse_object(buf, len, MSG_MAX_SIZE, fields, ret, e);
}

/* Free a parsed message object, wiping the secrets json-c still holds. */
static void put_wiped(json_object *o) {
        json_wipe_strings(o);
        json_object_put(o);
}

static int get_policy(json_object *o, char **ret, size_t *ret_size, struct errmsg *e) {
        json_object *v;
        size_t len;

        if (!json_object_object_get_ex(o, "policy", &v) || !json_object_is_type(v, json_type_string))
                return errmsg_set(e, EBADMSG, "field 'policy' missing or not a string");
        len = (size_t) json_object_get_string_len(v);
        if (len == 0 || len > MSG_MAX_POLICY)
                return errmsg_set(e, EBADMSG, "field 'policy' has a bad size");
        *ret = strndup(json_object_get_string(v), len);
        if (!*ret)
                return -ENOMEM;
        *ret_size = len;
        return 0;
}

static int finish(json_object *o, int r, struct errmsg *e, const char *what) {
        put_wiped(o);
        if (r < 0)
                errmsg_prefix(e, "%s", what);
        return r;
}

/* --- init ---------------------------------------------------------------------- */

void init_request_done(struct init_request *m) {
        if (!m)
                return;
        free(m->policy);
        secret_wipe(m, sizeof(*m));
}

void init_response_done(struct init_response *m) {
        if (!m)
                return;
        secret_free(m->kubeconfig, m->kubeconfig_size);
        *m = (struct init_response){};
}

static int k8s_parse(json_object *o, struct k8s_settings *k, struct errmsg *e) {
        static const char *const fields[] = { "version", "podCidr", "serviceCidr", "apiSans", NULL };
        json_object *sans;
        int r;

        r = json_check_fields(o, fields, e);
        if (r < 0)
                return r;
        if ((r = get_checked(o, "version", k->version, sizeof(k->version), valid_k8s_version, e)) < 0 ||
            (r = get_checked(o, "podCidr", k->pod_cidr, sizeof(k->pod_cidr), valid_cidr4, e)) < 0 ||
            (r = get_checked(o, "serviceCidr", k->service_cidr, sizeof(k->service_cidr), valid_cidr4, e)) < 0 ||
            (r = json_get_array(o, "apiSans", &sans, e)) < 0)
                return r;
        if (json_object_array_length(sans) > MSG_MAX_SANS)
                return errmsg_set(e, EBADMSG, "more than %u API server SANs", MSG_MAX_SANS);
        for (size_t i = 0; i < json_object_array_length(sans); i++) {
                json_object *v = json_object_array_get_idx(sans, i);
                const char *s = json_object_get_string(v);
                if (!json_object_is_type(v, json_type_string) || strlen(s) >= sizeof(k->api_sans[0]) || !valid_san(s))
                        return errmsg_set(e, EBADMSG, "apiSans[%zu] is not an address or host name", i);
                strcpy(k->api_sans[i], s);
                k->n_api_sans++;
        }
        return 0;
}

int init_request_parse(const char *buf, size_t len, struct init_request *ret, struct errmsg *e) {
        static const char *const fields[] = {
                "masterSecret", "masterSalt", "measurementSalt", "initSecret", "clusterName",
                "controlPlaneDriver", "meshCidr", "kubernetes", "policy", NULL,
        };
        struct init_request m = {};
        json_object *o, *k;
        int r;

        r = parse_top(buf, len, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "init request");
        if ((r = json_get_bytes_exact(o, "masterSecret", m.master_secret, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "masterSalt", m.master_salt, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "measurementSalt", m.measurement_salt, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "initSecret", m.init_secret, KEY_SIZE, e)) < 0 ||
            (r = get_checked(o, "clusterName", m.cluster_name, sizeof(m.cluster_name), valid_node_name, e)) < 0 ||
            (r = get_checked(o, "controlPlaneDriver", m.driver, sizeof(m.driver), valid_driver, e)) < 0 ||
            (r = get_checked(o, "meshCidr", m.mesh_cidr, sizeof(m.mesh_cidr), valid_cidr4, e)) < 0 ||
            (r = json_get_object(o, "kubernetes", &k, e)) < 0 || (r = k8s_parse(k, &m.k8s, e)) < 0 ||
            (r = get_policy(o, &m.policy, &m.policy_size, e)) < 0) {
                init_request_done(&m);
                return finish(o, r, e, "init request");
        }
        *ret = m;
        return finish(o, 0, e, "init request");
}

int init_request_serialize(const struct init_request *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *k = json_object_new_object(), *sans = json_object_new_array();
        int r;

        if (!o || !k || !sans) {
                json_object_put(k);
                json_object_put(sans);
                return -ENOMEM;
        }
        if ((r = json_add(o, "kubernetes", k)) < 0) {
                json_object_put(sans);
                return r;
        }
        if ((r = json_add(k, "apiSans", sans)) < 0)
                return r;
        for (size_t i = 0; i < m->k8s.n_api_sans; i++)
                if (json_object_array_add(sans, json_object_new_string(m->k8s.api_sans[i])) < 0)
                        return -ENOMEM;
        if ((r = json_add_base64(o, "masterSecret", m->master_secret, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "masterSalt", m->master_salt, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "measurementSalt", m->measurement_salt, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "initSecret", m->init_secret, KEY_SIZE)) < 0 ||
            (r = json_add_string(o, "clusterName", m->cluster_name)) < 0 ||
            (r = json_add_string(o, "controlPlaneDriver", m->driver)) < 0 ||
            (r = json_add_string(o, "meshCidr", m->mesh_cidr)) < 0 ||
            (r = json_add_string(k, "version", m->k8s.version)) < 0 ||
            (r = json_add_string(k, "podCidr", m->k8s.pod_cidr)) < 0 ||
            (r = json_add_string(k, "serviceCidr", m->k8s.service_cidr)) < 0 ||
            (r = json_add(o, "policy", json_object_new_string_len(m->policy ? m->policy : "",
                                                                   (int) m->policy_size))) < 0) {
                json_wipe_strings(o);
                return r;
        }
        return json_serialize_secret(o, ret);
}

int init_response_parse(const char *buf, size_t len, struct init_response *ret, struct errmsg *e) {
        static const char *const fields[] = { "clusterId", "nodeName", "meshAddress", "wireguardPublicKey",
                                              "kubeconfig", NULL };
        struct init_response m = {};
        json_object *o;
        int r;

        r = parse_top(buf, len, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "init response");
        if ((r = json_get_bytes_exact(o, "clusterId", m.cluster_id, KEY_SIZE, e)) < 0 ||
            (r = get_checked(o, "nodeName", m.node_name, sizeof(m.node_name), valid_node_name, e)) < 0 ||
            (r = get_checked(o, "meshAddress", m.mesh_address, sizeof(m.mesh_address), valid_address, e)) < 0 ||
            (r = get_checked(o, "wireguardPublicKey", m.wg_public_key, sizeof(m.wg_public_key), valid_wg_key, e)) < 0 ||
            (r = json_get_base64(o, "kubeconfig", MSG_MAX_KUBECONFIG, &m.kubeconfig, &m.kubeconfig_size, e)) < 0) {
                init_response_done(&m);
                return finish(o, r, e, "init response");
        }
        *ret = m;
        return finish(o, 0, e, "init response");
}

int init_response_serialize(const struct init_response *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_base64(o, "clusterId", m->cluster_id, KEY_SIZE)) < 0 ||
            (r = json_add_string(o, "nodeName", m->node_name)) < 0 ||
            (r = json_add_string(o, "meshAddress", m->mesh_address)) < 0 ||
            (r = json_add_string(o, "wireguardPublicKey", m->wg_public_key)) < 0 ||
            (r = json_add_base64(o, "kubeconfig", m->kubeconfig, m->kubeconfig_size)) < 0) {
                json_wipe_strings(o);
                return r;
        }
        return json_serialize_secret(o, ret);
}

/* --- join ---------------------------------------------------------------------- */

int join_request_parse(const char *buf, size_t len, struct join_request *ret, struct errmsg *e) {
        static const char *const fields[] = { "role", "diskUuid", "nodeName", "wireguardPublicKey", "endpoint",
                                              NULL };
        struct join_request m = {};
        json_object *o;
        int r;

        r = parse_top(buf, len, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "join request");
        if ((r = get_checked(o, "role", m.role, sizeof(m.role), valid_role, e)) < 0 ||
            (r = get_checked(o, "diskUuid", m.disk_uuid, sizeof(m.disk_uuid), valid_uuid, e)) < 0 ||
            (r = get_checked(o, "nodeName", m.node_name, sizeof(m.node_name), valid_node_name, e)) < 0 ||
            (r = get_checked(o, "wireguardPublicKey", m.wg_public_key, sizeof(m.wg_public_key), valid_wg_key, e)) < 0 ||
            (r = get_checked(o, "endpoint", m.endpoint, sizeof(m.endpoint), valid_endpoint, e)) < 0)
                return finish(o, r, e, "join request");
        *ret = m;
        return finish(o, 0, e, "join request");
}

int join_request_serialize(const struct join_request *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "role", m->role)) < 0 || (r = json_add_string(o, "diskUuid", m->disk_uuid)) < 0 ||
            (r = json_add_string(o, "nodeName", m->node_name)) < 0 ||
            (r = json_add_string(o, "wireguardPublicKey", m->wg_public_key)) < 0 ||
            (r = json_add_string(o, "endpoint", m->endpoint)) < 0)
                return r;
        return json_serialize_secret(o, ret);
}

void join_response_done(struct join_response *m) {
        if (!m)
                return;
        if (m->policy)
                free(m->policy);
        if (m->cp_params) {
                json_wipe_strings(m->cp_params);
                json_object_put(m->cp_params);
        }
        free(m->peers);
        secret_wipe(m, sizeof(*m));
}

static int peer_parse(json_object *v, struct mesh_peer *p, struct errmsg *e) {
        static const char *const fields[] = { "name", "role", "wireguardPublicKey", "endpoint", "meshAddress", NULL };
        int r;

        if ((r = json_check_fields(v, fields, e)) < 0 ||
            (r = get_checked(v, "name", p->name, sizeof(p->name), valid_node_name, e)) < 0 ||
            (r = get_checked(v, "role", p->role, sizeof(p->role), valid_role, e)) < 0 ||
            (r = get_checked(v, "wireguardPublicKey", p->wg_public_key, sizeof(p->wg_public_key), valid_wg_key, e)) < 0 ||
            (r = get_checked(v, "endpoint", p->endpoint, sizeof(p->endpoint), valid_endpoint, e)) < 0 ||
            (r = get_checked(v, "meshAddress", p->mesh_address, sizeof(p->mesh_address), valid_address, e)) < 0)
                return r;
        return 0;
}

/* The "peers" array of join and mesh answers: at most MSG_MAX_PEERS, each
 * checked; *ret has one spare element (never NULL on success). */
static int peers_parse(json_object *arr, struct mesh_peer **ret, size_t *ret_n, struct errmsg *e) {
        size_t n = json_object_array_length(arr);
        struct mesh_peer *peers;
        int r;

        if (n > MSG_MAX_PEERS)
                return errmsg_set(e, EBADMSG, "more than %u peers", MSG_MAX_PEERS);
        peers = calloc(n + 1, sizeof(*peers));
        if (!peers)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = peer_parse(json_object_array_get_idx(arr, i), &peers[i], e);
                if (r < 0) {
                        errmsg_prefix(e, "peers[%zu]", i);
                        free(peers);
                        return r;
                }
        }
        *ret = peers;
        *ret_n = n;
        return 0;
}

/* An answer with a "peers" array as its last member, in pieces: the head,
 * o serialized with `"peers":[` in place of its closing brace, then the
 * peers and "]}" (peers_write). The peer list is written directly, not
 * through json-c objects: an answer names every member of the cluster
 * (thousands), and a json-c object per field costs about ten times the
 * text. Every field is checked by the validator its parser uses, and those
 * admit no character JSON would escape, so the text is exactly what json-c
 * would write. More than MSG_MAX_PEERS is a caller's error (-E2BIG): the
 * list is never cut short; an invalid field is -EINVAL. */
#define P_NAME "{\"name\":\""
#define P_ROLE "\",\"role\":\""
#define P_KEY "\",\"wireguardPublicKey\":\""
#define P_ENDPOINT "\",\"endpoint\":\""
#define P_ADDRESS "\",\"meshAddress\":\""
#define P_END "\"}"
#define P_FIXED (STRLEN(P_NAME) + STRLEN(P_ROLE) + STRLEN(P_KEY) + STRLEN(P_ENDPOINT) + STRLEN(P_ADDRESS) + STRLEN(P_END))
#define PEERS_OPEN "\"peers\":["
#define PEERS_CLOSE "]}"

_Static_assert(1 + P_FIXED + NODE_NAME_MAX + sizeof(((struct mesh_peer *) 0)->role) - 1 + WG_KEY_B64_SIZE - 1 +
                               ENDPOINT_MAX - 1 + ADDRESS_MAX - 1 <=
                       MSG_PEER_TEXT_MAX,
               "MSG_PEER_TEXT_MAX holds any valid peer");

static struct mesh_peer_ref mesh_peer_at(const void *data, size_t i) {
        const struct mesh_peer *p = (const struct mesh_peer *) data + i;

        return (struct mesh_peer_ref){ p->name, p->role, p->wg_public_key, p->endpoint, p->mesh_address };
}

struct peer_list peer_list_of(const struct mesh_peer *peers, size_t n) {
        return (struct peer_list){ .n = n, .at = mesh_peer_at, .data = peers };
}

static bool peer_valid(const struct mesh_peer_ref *q) {
        return q->name && q->role && q->wg_public_key && q->endpoint && q->mesh_address && valid_node_name(q->name) &&
               valid_role(q->role) && valid_wg_key(q->wg_public_key) && valid_endpoint(q->endpoint) &&
               valid_address(q->mesh_address);
}

static size_t peer_text_len(const struct mesh_peer_ref *q, size_t i) {
        return (i > 0) + P_FIXED + strlen(q->name) + strlen(q->role) + strlen(q->wg_public_key) +
               strlen(q->endpoint) + strlen(q->mesh_address);
}

static char *put(char *p, const char *s) {
        size_t n = strlen(s);

        memcpy(p, s, n);
        return p + n;
}

ssize_t peers_write(const struct peer_list *peers, size_t *next, char *buf, size_t size) {
        char *p = buf;

        for (; *next < peers->n; (*next)++) {
                struct mesh_peer_ref q = peers->at(peers->data, *next);

                if (peer_text_len(&q, *next) > size - (size_t) (p - buf))
                        break;
                if (*next > 0)
                        *p++ = ',';
                p = put(p, P_NAME);
                p = put(p, q.name);
                p = put(p, P_ROLE);
                p = put(p, q.role);
                p = put(p, P_KEY);
                p = put(p, q.wg_public_key);
                p = put(p, P_ENDPOINT);
                p = put(p, q.endpoint);
                p = put(p, P_ADDRESS);
                p = put(p, q.mesh_address);
                p = put(p, P_END);
        }
        if (*next == peers->n && STRLEN(PEERS_CLOSE) <= size - (size_t) (p - buf)) {
                p = put(p, PEERS_CLOSE);
                (*next)++;
        }
        if (p == buf && *next <= peers->n)
                return -ENOBUFS;
        return p - buf;
}

static int serialize_head(json_object *o, const struct peer_list *peers, char **ret_head, size_t *ret_head_len,
                          size_t *ret_len) {
        char *doc = NULL, *head;
        size_t doc_len, head_len, len = STRLEN(PEERS_CLOSE);
        int r;

        if (peers->n > MSG_MAX_PEERS) {
                json_wipe_strings(o);
                return -E2BIG;
        }
        for (size_t i = 0; i < peers->n; i++) {
                struct mesh_peer_ref q = peers->at(peers->data, i);

                if (!peer_valid(&q)) {
                        json_wipe_strings(o);
                        return -EINVAL;
                }
                len += peer_text_len(&q, i);
        }
        r = json_serialize_secret(o, &doc);
        if (r < 0)
                return r;
        doc_len = strlen(doc);
        if (doc_len < 2 || doc[doc_len - 1] != '}') {
                secret_free(doc, doc_len);
                return -EINVAL;
        }
        /* "{...}" -> "{...,"peers":[" ("{"peers":[" for an empty o). */
        head_len = doc_len - 1 + (doc_len > 2) + STRLEN(PEERS_OPEN);
        head = malloc(head_len + 1);
        if (!head) {
                secret_free(doc, doc_len);
                return -ENOMEM;
        }
        memcpy(head, doc, doc_len - 1);
        strcpy(head + doc_len - 1, doc_len > 2 ? "," PEERS_OPEN : PEERS_OPEN);
        secret_free(doc, doc_len);
        *ret_head = head;
        *ret_head_len = head_len;
        *ret_len = head_len + len;
        return 0;
}

/* The whole answer in one string, from the same pieces. */
static int serialize_whole(char *head, size_t head_len, size_t len, const struct peer_list *peers, char **ret) {
        size_t next = 0, used = head_len;
        char *out;

        out = malloc(len + 1);
        if (!out) {
                secret_free(head, head_len);
                return -ENOMEM;
        }
        memcpy(out, head, head_len);
        secret_free(head, head_len);
        for (;;) {
                ssize_t n = peers_write(peers, &next, out + used, len - used);

                if (n < 0) {
                        secret_free(out, used);
                        return (int) n;
                }
                if (n == 0)
                        break;
                used += (size_t) n;
        }
        if (used != len) {
                secret_free(out, used);
                return -EINVAL;
        }
        out[len] = 0;
        *ret = out;
        return 0;
}

int join_response_parse(const char *buf, size_t len, struct join_response *ret, struct errmsg *e) {
        static const char *const fields[] = {
                "diskKey", "measurementSalt", "measurementSecret", "clusterId", "masterSecret", "masterSalt",
                "policy", "clusterName", "controlPlane", "meshCidr", "meshAddress", "peers", NULL,
        };
        static const char *const cp_fields[] = { "driver", "params", NULL };
        struct join_response m = {};
        json_object *o, *cp, *params, *peers;
        bool has_secret, has_salt;
        int r;

        r = json_parse_object(buf, len, MSG_MAX_PEERS_SIZE, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "join response");
        if ((r = json_get_bytes_exact(o, "diskKey", m.disk_key, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "measurementSalt", m.measurement_salt, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "measurementSecret", m.measurement_secret, KEY_SIZE, e)) < 0 ||
            (r = json_get_bytes_exact(o, "clusterId", m.cluster_id, KEY_SIZE, e)) < 0 ||
            (r = get_checked(o, "clusterName", m.cluster_name, sizeof(m.cluster_name), valid_node_name, e)) < 0 ||
            (r = get_checked(o, "meshCidr", m.mesh_cidr, sizeof(m.mesh_cidr), valid_cidr4, e)) < 0 ||
            (r = get_checked(o, "meshAddress", m.mesh_address, sizeof(m.mesh_address), valid_address, e)) < 0 ||
            (r = json_get_object(o, "controlPlane", &cp, e)) < 0 || (r = json_check_fields(cp, cp_fields, e)) < 0 ||
            (r = get_checked(cp, "driver", m.driver, sizeof(m.driver), valid_driver, e)) < 0 ||
            (r = json_get_object(cp, "params", &params, e)) < 0 || (r = json_get_array(o, "peers", &peers, e)) < 0)
                goto fail;

        /* The master secret travels only with its salt and the policy, to
         * control-plane joiners; a partial set is malformed. */
        has_secret = json_object_object_get_ex(o, "masterSecret", NULL);
        has_salt = json_object_object_get_ex(o, "masterSalt", NULL);
        if (has_secret != has_salt || has_secret != json_object_object_get_ex(o, "policy", NULL)) {
                r = errmsg_set(e, EBADMSG, "masterSecret, masterSalt and policy must come together");
                goto fail;
        }
        if (has_secret) {
                if ((r = json_get_bytes_exact(o, "masterSecret", m.master_secret, KEY_SIZE, e)) < 0 ||
                    (r = json_get_bytes_exact(o, "masterSalt", m.master_salt, KEY_SIZE, e)) < 0 ||
                    (r = get_policy(o, &m.policy, &m.policy_size, e)) < 0)
                        goto fail;
                m.has_master = true;
        }

        r = peers_parse(peers, &m.peers, &m.n_peers, e);
        if (r < 0)
                goto fail;
        /* Detach the parameters before finish() wipes the document's strings. */
        m.cp_params = json_object_get(params);
        json_object_object_del(cp, "params");
        *ret = m;
        return finish(o, 0, e, "join response");
fail:
        join_response_done(&m);
        return finish(o, r, e, "join response");
}

int join_response_serialize_head(const struct join_response *m, const struct peer_list *peers, char **ret_head,
                                 size_t *ret_head_len, size_t *ret_len) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *cp;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_base64(o, "diskKey", m->disk_key, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "measurementSalt", m->measurement_salt, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "measurementSecret", m->measurement_secret, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "clusterId", m->cluster_id, KEY_SIZE)) < 0 ||
            (r = json_add_string(o, "clusterName", m->cluster_name)) < 0 ||
            (r = json_add_string(o, "meshCidr", m->mesh_cidr)) < 0 ||
            (r = json_add_string(o, "meshAddress", m->mesh_address)) < 0)
                goto fail;
        if (m->has_master &&
            ((r = json_add_base64(o, "masterSecret", m->master_secret, KEY_SIZE)) < 0 ||
             (r = json_add_base64(o, "masterSalt", m->master_salt, KEY_SIZE)) < 0 ||
             (r = json_add(o, "policy", json_object_new_string_len(m->policy ? m->policy : "", (int) m->policy_size))) < 0))
                goto fail;
        cp = json_object_new_object();
        if ((r = json_add(o, "controlPlane", cp)) < 0 || (r = json_add_string(cp, "driver", m->driver)) < 0)
                goto fail;
        {
                /* A copy: serializing wipes the document, not the caller's object. */
                json_object *params = NULL;
                if (m->cp_params ? json_object_deep_copy(m->cp_params, &params, NULL) < 0
                                 : !(params = json_object_new_object())) {
                        r = -ENOMEM;
                        goto fail;
                }
                if ((r = json_add(cp, "params", params)) < 0)
                        goto fail;
        }
        return serialize_head(o, peers, ret_head, ret_head_len, ret_len);
fail:
        json_wipe_strings(o);
        return r;
}

int join_response_serialize(const struct join_response *m, char **ret) {
        struct peer_list peers = peer_list_of(m->peers, m->n_peers);
        char *head;
        size_t head_len, len;
        int r;

        r = join_response_serialize_head(m, &peers, &head, &head_len, &len);
        if (r < 0)
                return r;
        return serialize_whole(head, head_len, len, &peers, ret);
}

/* --- rejoin -------------------------------------------------------------------- */

void rejoin_response_done(struct rejoin_response *m) {
        secret_wipe(m, sizeof(*m));
}

int rejoin_request_parse(const char *buf, size_t len, struct rejoin_request *ret, struct errmsg *e) {
        static const char *const fields[] = { "diskUuid", NULL };
        struct rejoin_request m = {};
        json_object *o;
        int r;

        r = parse_top(buf, len, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "rejoin request");
        r = get_checked(o, "diskUuid", m.disk_uuid, sizeof(m.disk_uuid), valid_uuid, e);
        if (r >= 0)
                *ret = m;
        return finish(o, r, e, "rejoin request");
}

int rejoin_request_serialize(const struct rejoin_request *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add_string(o, "diskUuid", m->disk_uuid);
        if (r < 0)
                return r;
        return json_serialize_secret(o, ret);
}

int rejoin_response_parse(const char *buf, size_t len, struct rejoin_response *ret, struct errmsg *e) {
        static const char *const fields[] = { "diskKey", NULL };
        struct rejoin_response m = {};
        json_object *o;
        int r;

        r = parse_top(buf, len, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "rejoin response");
        r = json_get_bytes_exact(o, "diskKey", m.disk_key, KEY_SIZE, e);
        if (r >= 0)
                *ret = m;
        secret_wipe(&m, sizeof(m));
        return finish(o, r, e, "rejoin response");
}

int rejoin_response_serialize(const struct rejoin_response *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add_base64(o, "diskKey", m->disk_key, KEY_SIZE);
        if (r < 0) {
                json_wipe_strings(o);
                return r;
        }
        return json_serialize_secret(o, ret);
}

/* --- mesh refresh ----------------------------------------------------------------- */

int mesh_request_parse(const char *buf, size_t len, struct mesh_request *ret, struct errmsg *e) {
        static const char *const fields[] = { "nodeName", "wireguardPublicKey", "underlayEndpoint", NULL };
        struct mesh_request m = {};
        json_object *o;
        int r;

        r = parse_top(buf, len, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "mesh request");
        if ((r = get_checked(o, "nodeName", m.node_name, sizeof(m.node_name), valid_node_name, e)) < 0 ||
            (r = get_checked(o, "wireguardPublicKey", m.wg_public_key, sizeof(m.wg_public_key), valid_wg_key, e)) < 0 ||
            (r = get_checked(o, "underlayEndpoint", m.endpoint, sizeof(m.endpoint), valid_endpoint, e)) < 0)
                return finish(o, r, e, "mesh request");
        *ret = m;
        return finish(o, 0, e, "mesh request");
}

int mesh_request_serialize(const struct mesh_request *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "nodeName", m->node_name)) < 0 ||
            (r = json_add_string(o, "wireguardPublicKey", m->wg_public_key)) < 0 ||
            (r = json_add_string(o, "underlayEndpoint", m->endpoint)) < 0)
                return r;
        return json_serialize_secret(o, ret);
}

void mesh_response_done(struct mesh_response *m) {
        if (!m)
                return;
        free(m->peers);
        *m = (struct mesh_response){};
}

int mesh_response_parse(const char *buf, size_t len, struct mesh_response *ret, struct errmsg *e) {
        static const char *const fields[] = { "meshAddress", "meshCidr", "peers", "refreshIntervalSeconds", NULL };
        struct mesh_response m = {};
        json_object *o, *peers;
        int64_t interval;
        int r;

        r = json_parse_object(buf, len, MSG_MAX_PEERS_SIZE, fields, &o, e);
        if (r < 0)
                return finish(NULL, r, e, "mesh response");
        if ((r = get_checked(o, "meshAddress", m.mesh_address, sizeof(m.mesh_address), valid_address, e)) < 0 ||
            (r = get_checked(o, "meshCidr", m.mesh_cidr, sizeof(m.mesh_cidr), valid_cidr4, e)) < 0 ||
            (r = json_get_int(o, "refreshIntervalSeconds", &interval, e)) < 0 ||
            (r = json_get_array(o, "peers", &peers, e)) < 0)
                return finish(o, r, e, "mesh response");
        if (interval < MSG_MIN_REFRESH_INTERVAL || interval > MSG_MAX_REFRESH_INTERVAL)
                return finish(o,
                              errmsg_set(e, EBADMSG, "field 'refreshIntervalSeconds' must be %u-%u", MSG_MIN_REFRESH_INTERVAL,
                                         MSG_MAX_REFRESH_INTERVAL),
                              e, "mesh response");
        m.refresh_interval = (unsigned) interval;
        r = peers_parse(peers, &m.peers, &m.n_peers, e);
        if (r < 0)
                return finish(o, r, e, "mesh response");
        *ret = m;
        return finish(o, 0, e, "mesh response");
}

int mesh_response_serialize_head(const struct mesh_response *m, const struct peer_list *peers, char **ret_head,
                                 size_t *ret_head_len, size_t *ret_len) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "meshAddress", m->mesh_address)) < 0 ||
            (r = json_add_string(o, "meshCidr", m->mesh_cidr)) < 0 ||
            (r = json_add_int(o, "refreshIntervalSeconds", m->refresh_interval)) < 0)
                return r;
        return serialize_head(o, peers, ret_head, ret_head_len, ret_len);
}

int mesh_response_serialize(const struct mesh_response *m, char **ret) {
        struct peer_list peers = peer_list_of(m->peers, m->n_peers);
        char *head;
        size_t head_len, len;
        int r;

        r = mesh_response_serialize_head(m, &peers, &head, &head_len, &len);
        if (r < 0)
                return r;
        return serialize_whole(head, head_len, len, &peers, ret);
}
