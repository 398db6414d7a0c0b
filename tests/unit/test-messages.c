/* SPDX-License-Identifier: Apache-2.0 */
/* Wire messages of init, join, rejoin and mesh refresh: every message survives
 * serialize -> parse unchanged, and each parser refuses input where exactly
 * one thing is wrong, naming what. Then the shape checks they rely on. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atls-http.h"
#include "encoding.h"
#include "json-util.h"
#include "macro.h"
#include "messages.h"
#include "validate.h"

/* --- the six parsers behind one interface ---------------------------------- */

enum kind { INIT_REQ, INIT_RESP, JOIN_REQ, JOIN_RESP, REJOIN_REQ, REJOIN_RESP, MESH_REQ, MESH_RESP, N_KINDS };

static const char *const kind_name[N_KINDS] = {
        "init request", "init response", "join request", "join response", "rejoin request", "rejoin response",
        "mesh request", "mesh response",
};

union any_msg {
        struct init_request init_req;
        struct init_response init_resp;
        struct join_request join_req;
        struct join_response join_resp;
        struct rejoin_request rejoin_req;
        struct rejoin_response rejoin_resp;
        struct mesh_request mesh_req;
        struct mesh_response mesh_resp;
};

static int parse_any(enum kind k, const char *buf, size_t len, union any_msg *m, struct errmsg *e) {
        switch (k) {
        case INIT_REQ:
                return init_request_parse(buf, len, &m->init_req, e);
        case INIT_RESP:
                return init_response_parse(buf, len, &m->init_resp, e);
        case JOIN_REQ:
                return join_request_parse(buf, len, &m->join_req, e);
        case JOIN_RESP:
                return join_response_parse(buf, len, &m->join_resp, e);
        case REJOIN_REQ:
                return rejoin_request_parse(buf, len, &m->rejoin_req, e);
        case REJOIN_RESP:
                return rejoin_response_parse(buf, len, &m->rejoin_resp, e);
        case MESH_REQ:
                return mesh_request_parse(buf, len, &m->mesh_req, e);
        case MESH_RESP:
                return mesh_response_parse(buf, len, &m->mesh_resp, e);
        default:
                cr_assert_fail("bad kind");
        }
        return -EINVAL;
}

static void done_any(enum kind k, union any_msg *m) {
        if (k == INIT_REQ)
                init_request_done(&m->init_req);
        else if (k == INIT_RESP)
                init_response_done(&m->init_resp);
        else if (k == JOIN_RESP)
                join_response_done(&m->join_resp);
        else if (k == REJOIN_RESP)
                rejoin_response_done(&m->rejoin_resp);
        else if (k == MESH_RESP)
                mesh_response_done(&m->mesh_resp);
}

/* Answers with a peer list may be larger than other messages. */
static size_t max_size(enum kind k) {
        return k == JOIN_RESP || k == MESH_RESP ? MSG_MAX_PEERS_SIZE : MSG_MAX_SIZE;
}

/* --- sample messages ------------------------------------------------------- */

/* Not JSON-safe on purpose: quotes, a backslash, a slash, a tab, a newline,
 * a control character and UTF-8 must all come back byte for byte. */
#define POLICY "{\"pcrs\": {\"4\": \"ab/cd\"}}\n\t\"q\" \\ \x01 \xc3\xa9"

static void fill(uint8_t *p, size_t n, uint8_t start) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (start + 7 * i);
}

static char *b64_of_n(size_t n, uint8_t start) {
        uint8_t buf[256];
        char *s = NULL;

        cr_assert_leq(n, sizeof(buf));
        fill(buf, n, start);
        cr_assert_eq(base64_encode(buf, n, &s), 0);
        return s;
}

/* A WireGuard public key: base64 of 32 bytes. */
static void wg_key(char out[WG_KEY_B64_SIZE], uint8_t start) {
        _cleanup_free_ char *s = b64_of_n(32, start);

        cr_assert_eq(strlen(s), 44u);
        memcpy(out, s, 45);
}

static void sample_init_request(struct init_request *m) {
        *m = (struct init_request){};
        fill(m->master_secret, KEY_SIZE, 0x10);
        fill(m->master_salt, KEY_SIZE, 0x20);
        fill(m->measurement_salt, KEY_SIZE, 0x30);
        fill(m->init_secret, KEY_SIZE, 0x40);
        strcpy(m->cluster_name, "arca-test");
        strcpy(m->driver, "kubeadm");
        strcpy(m->mesh_cidr, "10.99.0.0/16");
        strcpy(m->k8s.version, "v1.31.2");
        strcpy(m->k8s.pod_cidr, "10.244.0.0/16");
        strcpy(m->k8s.service_cidr, "10.96.0.0/12");
        strcpy(m->k8s.api_sans[0], "10.0.0.1");
        strcpy(m->k8s.api_sans[1], "api.arca.test");
        strcpy(m->k8s.api_sans[2], "fd00::1");
        m->k8s.n_api_sans = 3;
        m->policy = strdup(POLICY);
        cr_assert_not_null(m->policy);
        m->policy_size = strlen(POLICY);
}

static const uint8_t kubeconfig_bytes[] = "apiVersion: v1\nkind: Config\n\0\xff binary tail";

static void sample_init_response(struct init_response *m) {
        *m = (struct init_response){};
        fill(m->cluster_id, KEY_SIZE, 0x50);
        strcpy(m->node_name, "arca-cp-0");
        strcpy(m->mesh_address, "10.99.0.1");
        wg_key(m->wg_public_key, 0x60);
        m->kubeconfig = malloc(sizeof(kubeconfig_bytes));
        cr_assert_not_null(m->kubeconfig);
        memcpy(m->kubeconfig, kubeconfig_bytes, sizeof(kubeconfig_bytes));
        m->kubeconfig_size = sizeof(kubeconfig_bytes);
}

static void sample_join_request(struct join_request *m) {
        *m = (struct join_request){};
        strcpy(m->role, "worker");
        strcpy(m->disk_uuid, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        strcpy(m->node_name, "arca-worker-1");
        wg_key(m->wg_public_key, 0x70);
        strcpy(m->endpoint, "192.168.122.11:51820");
}

/* The driver's join parameters as a kubeadm driver sends them. */
#define CP_PARAMS                                                                                           \
        "{\"endpoint\":\"10.99.0.1:6443\",\"token\":\"abcdef.0123456789abcdef\",\"caCertHashes\":["      \
        "\"sha256:00112233\"],\"n\":3,\"on\":true,\"nested\":{\"a\":[1,2,{\"b\":null}]}}"
/* Without strings, which parsing and serializing wipe today (see
 * join_response_parse_keeps_cp_params_strings): the samples use these so
 * the round trips test everything else meanwhile. */
#define CP_PARAMS_NO_STRINGS "{\"n\":3,\"on\":true,\"nested\":{\"a\":[1,2,{\"b\":null}]},\"empty\":{}}"

static void sample_join_response(struct join_response *m, bool has_master, size_t n_peers) {
        static const char *const endpoints[] = { "192.168.122.10:51820", "node-2:51820", "[fd00::3]:51820" };
        static const char *const addresses[] = { "10.99.0.1", "10.99.0.2", "fd00:99::3" };

        *m = (struct join_response){};
        fill(m->disk_key, KEY_SIZE, 0x80);
        fill(m->measurement_salt, KEY_SIZE, 0x90);
        fill(m->measurement_secret, KEY_SIZE, 0xa0);
        fill(m->cluster_id, KEY_SIZE, 0xb0);
        if (has_master) {
                m->has_master = true;
                fill(m->master_secret, KEY_SIZE, 0xc0);
                fill(m->master_salt, KEY_SIZE, 0xd0);
                m->policy = strdup(POLICY);
                cr_assert_not_null(m->policy);
                m->policy_size = strlen(POLICY);
        }
        strcpy(m->cluster_name, "arca-test");
        strcpy(m->driver, "kubeadm");
        m->cp_params = json_tokener_parse(CP_PARAMS_NO_STRINGS);
        cr_assert_not_null(m->cp_params);
        strcpy(m->mesh_cidr, "10.99.0.0/16");
        strcpy(m->mesh_address, "10.99.0.4");
        m->peers = calloc(n_peers + 1, sizeof(*m->peers));
        cr_assert_not_null(m->peers);
        for (size_t i = 0; i < n_peers; i++) {
                struct mesh_peer *p = &m->peers[i];
                snprintf(p->name, sizeof(p->name), "node-%zu", i);
                strcpy(p->role, i == 0 ? "control-plane" : "worker");
                wg_key(p->wg_public_key, (uint8_t) i);
                strcpy(p->endpoint, endpoints[i % 3]);
                strcpy(p->mesh_address, addresses[i % 3]);
        }
        m->n_peers = n_peers;
}

static void sample_rejoin_request(struct rejoin_request *m) {
        *m = (struct rejoin_request){};
        strcpy(m->disk_uuid, "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0");
}

static void sample_rejoin_response(struct rejoin_response *m) {
        fill(m->disk_key, KEY_SIZE, 0xe0);
}

static void sample_mesh_request(struct mesh_request *m) {
        *m = (struct mesh_request){};
        strcpy(m->node_name, "arca-worker-1");
        wg_key(m->wg_public_key, 0x71);
        strcpy(m->endpoint, "192.168.122.11:51820");
}

/* The peers as in the join response's sample. */
static void sample_mesh_response(struct mesh_response *m, size_t n_peers) {
        struct join_response j;

        sample_join_response(&j, false, n_peers);
        *m = (struct mesh_response){ .peers = TAKE_PTR(j.peers), .n_peers = n_peers, .refresh_interval = 10 };
        strcpy(m->mesh_address, "10.99.0.4");
        strcpy(m->mesh_cidr, "10.99.0.0/16");
        join_response_done(&j);
}

/* The serialized sample of each kind (the join response with the master
 * secret and two peers). */
static char *sample_json(enum kind k) {
        union any_msg m;
        char *s = NULL;
        int r = -EINVAL;

        switch (k) {
        case INIT_REQ:
                sample_init_request(&m.init_req);
                r = init_request_serialize(&m.init_req, &s);
                break;
        case INIT_RESP:
                sample_init_response(&m.init_resp);
                r = init_response_serialize(&m.init_resp, &s);
                break;
        case JOIN_REQ:
                sample_join_request(&m.join_req);
                r = join_request_serialize(&m.join_req, &s);
                break;
        case JOIN_RESP:
                sample_join_response(&m.join_resp, true, 2);
                r = join_response_serialize(&m.join_resp, &s);
                break;
        case REJOIN_REQ:
                sample_rejoin_request(&m.rejoin_req);
                r = rejoin_request_serialize(&m.rejoin_req, &s);
                break;
        case REJOIN_RESP:
                sample_rejoin_response(&m.rejoin_resp);
                r = rejoin_response_serialize(&m.rejoin_resp, &s);
                break;
        case MESH_REQ:
                sample_mesh_request(&m.mesh_req);
                r = mesh_request_serialize(&m.mesh_req, &s);
                break;
        case MESH_RESP:
                sample_mesh_response(&m.mesh_resp, 2);
                r = mesh_response_serialize(&m.mesh_resp, &s);
                break;
        default:
                break;
        }
        cr_assert_eq(r, 0, "serializing the sample %s: %d", kind_name[k], r);
        done_any(k, &m);
        return s;
}

/* --- editing a message ------------------------------------------------------ */

/* JSON null as a value for edit() (NULL there means "remove"). */
static char jnull_tag;
#define JNULL ((json_object *) &jnull_tag)

/* The sample of kind k with the member at `path` ("a.b", "peers.0.name")
 * set to v (taking ownership), or removed if v is NULL. */
static char *edit(enum kind k, const char *path, json_object *v) {
        _cleanup_free_ char *base = sample_json(k), *p = strdup(path);
        json_object *root = json_tokener_parse(base), *cur = root;
        char *save = NULL, *tok, *next;
        char *out;

        cr_assert_not_null(root);
        cr_assert_not_null(p);
        tok = strtok_r(p, ".", &save);
        while ((next = strtok_r(NULL, ".", &save))) {
                if (json_object_is_type(cur, json_type_array))
                        cur = json_object_array_get_idx(cur, (size_t) atoi(tok));
                else
                        cur = json_object_object_get(cur, tok);
                cr_assert_not_null(cur, "no %s in the sample %s", path, kind_name[k]);
                tok = next;
        }
        if (json_object_is_type(cur, json_type_array)) {
                cr_assert_not_null(v);
                cr_assert_eq(json_object_array_put_idx(cur, (size_t) atoi(tok), v == JNULL ? NULL : v), 0);
        } else if (v == JNULL)
                cr_assert_eq(json_object_object_add(cur, tok, NULL), 0);
        else if (v)
                cr_assert_eq(json_object_object_add(cur, tok, v), 0);
        else {
                cr_assert(json_object_object_get_ex(cur, tok, NULL), "no %s in the sample %s", path, kind_name[k]);
                json_object_object_del(cur, tok);
        }
        out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        cr_assert_not_null(out);
        json_object_put(root);
        return out;
}

static json_object *S(const char *s) {
        return json_object_new_string(s);
}

static json_object *B64(size_t n) {
        _cleanup_free_ char *s = b64_of_n(n, 0x11);
        return json_object_new_string(s);
}

static json_object *J(const char *json) {
        json_object *o = json_tokener_parse(json);
        cr_assert_not_null(o, "bad JSON in the test: %s", json);
        return o;
}

/* Insert `what` right after the first occurrence of `after` in the sample. */
static char *insert_after(enum kind k, const char *after, const char *what) {
        _cleanup_free_ char *base = sample_json(k);
        const char *at = strstr(base, after);
        char *out;

        cr_assert_not_null(at, "\"%s\" not in %s", after, base);
        at += strlen(after);
        cr_assert_gt(asprintf(&out, "%.*s%s%s", (int) (at - base), base, what, at), 0);
        return out;
}

/* --- accepting and refusing -------------------------------------------------- */

static void assert_accepted(enum kind k, const char *buf, size_t len) {
        union any_msg m;
        struct errmsg e = {};
        int r = parse_any(k, buf, len, &m, &e);

        cr_assert_eq(r, 0, "%s refused (%d: %s): %.300s", kind_name[k], r, errmsg_str(&e), buf);
        done_any(k, &m);
}

/* Refused with `want`, the reason names `needle` and the kind of message,
 * and the output is left alone. */
static void assert_refused_len(enum kind k, const char *buf, size_t len, int want, const char *needle) {
        union any_msg m;
        struct errmsg e = {};
        int r;

        memset(&m, 0xaa, sizeof(m));
        r = parse_any(k, buf, len, &m, &e);
        cr_assert_eq(r, want, "%s: got %d, want %d (%s) for: %.300s", kind_name[k], r, want, errmsg_str(&e), buf);
        cr_assert_not_null(strstr(e.text, needle), "%s: reason \"%s\" does not contain \"%s\"", kind_name[k], e.text,
                           needle);
        cr_assert_eq(strncmp(e.text, kind_name[k], strlen(kind_name[k])), 0, "reason \"%s\" does not start with \"%s\"",
                     e.text, kind_name[k]);
        for (size_t i = 0; i < sizeof(m); i++)
                cr_assert_eq(((uint8_t *) &m)[i], 0xaa, "%s: output touched on failure", kind_name[k]);
}

/* Takes ownership of json. */
static void refused(enum kind k, char *json, const char *needle) {
        assert_refused_len(k, json, strlen(json), -EBADMSG, needle);
        free(json);
}

static void refused_err(enum kind k, char *json, int want, const char *needle) {
        assert_refused_len(k, json, strlen(json), want, needle);
        free(json);
}

/* --- round trips ------------------------------------------------------------- */

static void assert_policy_eq(const char *a, size_t an, const char *b, size_t bn) {
        cr_assert_eq(an, bn, "policy size %zu != %zu", an, bn);
        cr_assert_not_null(a);
        cr_assert_not_null(b);
        cr_assert_arr_eq(a, b, an, "policy differs");
}

Test(messages, init_request_round_trip) {
        struct init_request in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_init_request(&in);
        cr_assert_eq(init_request_serialize(&in, &s), 0);
        cr_assert_eq(init_request_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_arr_eq(out.master_secret, in.master_secret, KEY_SIZE);
        cr_assert_arr_eq(out.master_salt, in.master_salt, KEY_SIZE);
        cr_assert_arr_eq(out.measurement_salt, in.measurement_salt, KEY_SIZE);
        cr_assert_arr_eq(out.init_secret, in.init_secret, KEY_SIZE);
        cr_assert_str_eq(out.cluster_name, in.cluster_name);
        cr_assert_str_eq(out.driver, in.driver);
        cr_assert_str_eq(out.mesh_cidr, in.mesh_cidr);
        cr_assert_str_eq(out.k8s.version, in.k8s.version);
        cr_assert_str_eq(out.k8s.pod_cidr, in.k8s.pod_cidr);
        cr_assert_str_eq(out.k8s.service_cidr, in.k8s.service_cidr);
        cr_assert_eq(out.k8s.n_api_sans, in.k8s.n_api_sans);
        for (size_t i = 0; i < in.k8s.n_api_sans; i++)
                cr_assert_str_eq(out.k8s.api_sans[i], in.k8s.api_sans[i]);
        assert_policy_eq(out.policy, out.policy_size, in.policy, in.policy_size);
        /* Serializing again gives the same bytes. */
        cr_assert_eq(init_request_serialize(&out, &s2), 0);
        cr_assert_str_eq(s2, s);
        init_request_done(&in);
        init_request_done(&out);
        /* done wipes everything. */
        for (size_t i = 0; i < sizeof(out); i++)
                cr_assert_eq(((uint8_t *) &out)[i], 0);
}

Test(messages, init_request_round_trip_no_sans_default_version) {
        struct init_request in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL;

        sample_init_request(&in);
        in.k8s.n_api_sans = 0;
        in.k8s.version[0] = 0;
        strcpy(in.driver, "etcd");
        cr_assert_eq(init_request_serialize(&in, &s), 0);
        cr_assert_eq(init_request_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_eq(out.k8s.n_api_sans, 0u);
        cr_assert_str_eq(out.k8s.version, "");
        cr_assert_str_eq(out.driver, "etcd");
        init_request_done(&in);
        init_request_done(&out);
}

Test(messages, init_response_round_trip) {
        struct init_response in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_init_response(&in);
        cr_assert_eq(init_response_serialize(&in, &s), 0);
        cr_assert_eq(init_response_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_arr_eq(out.cluster_id, in.cluster_id, KEY_SIZE);
        cr_assert_str_eq(out.node_name, in.node_name);
        cr_assert_str_eq(out.mesh_address, in.mesh_address);
        cr_assert_str_eq(out.wg_public_key, in.wg_public_key);
        cr_assert_eq(out.kubeconfig_size, in.kubeconfig_size);
        cr_assert_arr_eq(out.kubeconfig, in.kubeconfig, in.kubeconfig_size);
        cr_assert_eq(init_response_serialize(&out, &s2), 0);
        cr_assert_str_eq(s2, s);
        init_response_done(&in);
        init_response_done(&out);
        cr_assert_null(out.kubeconfig);
}

Test(messages, join_request_round_trip) {
        struct join_request in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_join_request(&in);
        cr_assert_eq(join_request_serialize(&in, &s), 0);
        cr_assert_eq(join_request_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_str_eq(out.role, in.role);
        cr_assert_str_eq(out.disk_uuid, in.disk_uuid);
        cr_assert_str_eq(out.node_name, in.node_name);
        cr_assert_str_eq(out.wg_public_key, in.wg_public_key);
        cr_assert_str_eq(out.endpoint, in.endpoint);
        cr_assert_eq(join_request_serialize(&out, &s2), 0);
        cr_assert_str_eq(s2, s);
}

Test(messages, join_request_round_trip_control_plane_v6) {
        struct join_request in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL;

        sample_join_request(&in);
        strcpy(in.role, "control-plane");
        strcpy(in.endpoint, "[fd00::11]:51820");
        strcpy(in.disk_uuid, "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0");
        cr_assert_eq(join_request_serialize(&in, &s), 0);
        cr_assert_eq(join_request_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_str_eq(out.role, "control-plane");
        cr_assert_str_eq(out.endpoint, in.endpoint);
        /* The UUID is carried as sent; key_disk() lowercases it. */
        cr_assert_str_eq(out.disk_uuid, in.disk_uuid);
}

static void assert_join_response_eq(const struct join_response *out, const struct join_response *in) {
        cr_assert_arr_eq(out->disk_key, in->disk_key, KEY_SIZE);
        cr_assert_arr_eq(out->measurement_salt, in->measurement_salt, KEY_SIZE);
        cr_assert_arr_eq(out->measurement_secret, in->measurement_secret, KEY_SIZE);
        cr_assert_arr_eq(out->cluster_id, in->cluster_id, KEY_SIZE);
        cr_assert_eq(out->has_master, in->has_master);
        if (in->has_master) {
                cr_assert_arr_eq(out->master_secret, in->master_secret, KEY_SIZE);
                cr_assert_arr_eq(out->master_salt, in->master_salt, KEY_SIZE);
                assert_policy_eq(out->policy, out->policy_size, in->policy, in->policy_size);
        } else {
                cr_assert_null(out->policy);
                cr_assert_eq(out->policy_size, 0u);
        }
        cr_assert_str_eq(out->cluster_name, in->cluster_name);
        cr_assert_str_eq(out->driver, in->driver);
        cr_assert_str_eq(out->mesh_cidr, in->mesh_cidr);
        cr_assert_str_eq(out->mesh_address, in->mesh_address);
        cr_assert_eq(out->n_peers, in->n_peers);
        for (size_t i = 0; i < in->n_peers; i++) {
                cr_assert_str_eq(out->peers[i].name, in->peers[i].name);
                cr_assert_str_eq(out->peers[i].role, in->peers[i].role);
                cr_assert_str_eq(out->peers[i].wg_public_key, in->peers[i].wg_public_key);
                cr_assert_str_eq(out->peers[i].endpoint, in->peers[i].endpoint);
                cr_assert_str_eq(out->peers[i].mesh_address, in->peers[i].mesh_address);
        }
        cr_assert_not_null(out->cp_params);
        cr_assert(json_object_equal(out->cp_params, in->cp_params), "cp_params differ: %s vs %s",
                  json_object_to_json_string(out->cp_params), json_object_to_json_string(in->cp_params));
}

static void join_response_round_trip(bool has_master, size_t n_peers) {
        struct join_response in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_join_response(&in, has_master, n_peers);
        cr_assert_eq(join_response_serialize(&in, &s), 0);
        cr_assert_eq(join_response_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        assert_join_response_eq(&out, &in);
        cr_assert_eq(join_response_serialize(&out, &s2), 0);
        cr_assert_str_eq(s2, s);
        join_response_done(&in);
        join_response_done(&out);
        cr_assert_null(out.peers);
        cr_assert_null(out.cp_params);
}

Test(messages, join_response_round_trip_with_master) {
        join_response_round_trip(true, 3);
}

Test(messages, join_response_round_trip_without_master) {
        join_response_round_trip(false, 3);
}

Test(messages, join_response_round_trip_no_peers) {
        join_response_round_trip(false, 0);
}

/* BUG (skipped until lib/messages.c is fixed): see the two tests below. */
Test(messages, join_response_round_trip_cp_params_strings) {
        struct join_response in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_join_response(&in, true, 2);
        json_object_put(in.cp_params);
        in.cp_params = J(CP_PARAMS);
        cr_assert_eq(join_response_serialize(&in, &s), 0);
        cr_assert_eq(join_response_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        assert_join_response_eq(&out, &in);
        cr_assert_eq(join_response_serialize(&out, &s2), 0);
        cr_assert_str_eq(s2, s);
        join_response_done(&in);
        join_response_done(&out);
}

/* BUG (skipped until lib/messages.c is fixed): join_response_serialize()
 * adds the caller's cp_params by reference and json_serialize_secret() then
 * wipes every string in the tree, the caller's included. The serializer
 * takes the message as const: cp_params must be the same before and after,
 * and serializing twice gives the same bytes. */
Test(messages, join_response_serialize_leaves_cp_params_alone) {
        struct join_response in;
        json_object *want = J(CP_PARAMS);
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_join_response(&in, false, 1);
        json_object_put(in.cp_params);
        in.cp_params = J(CP_PARAMS);
        cr_assert_eq(join_response_serialize(&in, &s), 0);
        cr_assert(json_object_equal(in.cp_params, want), "cp_params changed by serializing: %s",
                  json_object_to_json_string(in.cp_params));
        cr_assert_eq(join_response_serialize(&in, &s2), 0);
        cr_assert_str_eq(s2, s);
        join_response_done(&in);
        json_object_put(want);
}

/* BUG (skipped until lib/messages.c is fixed): join_response_parse() keeps
 * a reference to "params" and then finish() wipes every string of the
 * parsed document, so the bootstrap token, CA hashes and endpoint arrive
 * as strings of zero bytes. The parsed cp_params are what was sent. */
Test(messages, join_response_parse_keeps_cp_params_strings) {
        _cleanup_free_ char *s = edit(JOIN_RESP, "controlPlane.params", J(CP_PARAMS));
        struct join_response out = {};
        struct errmsg e = {};
        json_object *want = J(CP_PARAMS), *tok = NULL;

        cr_assert_eq(join_response_parse(s, strlen(s), &out, &e), 0, "%s", errmsg_str(&e));
        cr_assert(json_object_object_get_ex(out.cp_params, "token", &tok));
        cr_assert_str_eq(json_object_get_string(tok), "abcdef.0123456789abcdef");
        cr_assert(json_object_equal(out.cp_params, want), "cp_params: %s", json_object_to_json_string(out.cp_params));
        join_response_done(&out);
        json_object_put(want);
}

Test(messages, rejoin_round_trips) {
        struct rejoin_request rq, rq2 = {};
        struct rejoin_response rs, rs2 = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *t = NULL;

        sample_rejoin_request(&rq);
        cr_assert_eq(rejoin_request_serialize(&rq, &s), 0);
        cr_assert_eq(rejoin_request_parse(s, strlen(s), &rq2, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_str_eq(rq2.disk_uuid, rq.disk_uuid);

        sample_rejoin_response(&rs);
        cr_assert_eq(rejoin_response_serialize(&rs, &t), 0);
        cr_assert_eq(rejoin_response_parse(t, strlen(t), &rs2, &e), 0, "%s: %s", errmsg_str(&e), t);
        cr_assert_arr_eq(rs2.disk_key, rs.disk_key, KEY_SIZE);
        rejoin_response_done(&rs2);
        for (size_t i = 0; i < KEY_SIZE; i++)
                cr_assert_eq(rs2.disk_key[i], 0);
}

/* Field order and whitespace are free. */
Test(messages, parsers_accept_any_order_and_whitespace) {
        const char *rq = " \n{ \"diskUuid\" :\t\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\" }\r\n ";
        char key[WG_KEY_B64_SIZE], *jr = NULL;

        assert_accepted(REJOIN_REQ, rq, strlen(rq));
        wg_key(key, 1);
        cr_assert_gt(asprintf(&jr,
                              "{\"endpoint\":\"node-1:9000\",\"wireguardPublicKey\":\"%s\",\"nodeName\":\"node-1\","
                              "\"diskUuid\":\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\",\"role\":\"worker\"}",
                              key),
                     0);
        assert_accepted(JOIN_REQ, jr, strlen(jr));
        free(jr);
}

/* --- refusals common to every parser ------------------------------------------ */

Test(messages, every_parser_refuses_unknown_field) {
        for (enum kind k = 0; k < N_KINDS; k++)
                refused(k, edit(k, "extra", S("x")), "unknown field 'extra'");
}

Test(messages, every_parser_refuses_non_object) {
        static const char *const docs[] = { "[]", "\"x\"", "1", "true", "[{}]" };

        for (enum kind k = 0; k < N_KINDS; k++)
                for (size_t i = 0; i < ELEMENTSOF(docs); i++)
                        assert_refused_len(k, docs[i], strlen(docs[i]), -EBADMSG, "JSON object");
}

Test(messages, every_parser_refuses_empty_and_null) {
        for (enum kind k = 0; k < N_KINDS; k++) {
                assert_refused_len(k, "", 0, -EBADMSG, "JSON");
                assert_refused_len(k, "null", 4, -EBADMSG, "null");
                assert_refused_len(k, "{}", 2, -EBADMSG, "missing field");
        }
}

/* Every proper prefix of a valid message is refused as truncated. */
Test(messages, every_parser_refuses_truncated) {
        for (enum kind k = 0; k < N_KINDS; k++) {
                _cleanup_free_ char *s = sample_json(k);
                size_t n = strlen(s);
                assert_accepted(k, s, n);
                for (size_t len = 1; len < n; len++)
                        assert_refused_len(k, s, len, -EBADMSG, "truncated");
        }
}

Test(messages, every_parser_refuses_trailing_data) {
        for (enum kind k = 0; k < N_KINDS; k++) {
                _cleanup_free_ char *s = sample_json(k), *t = NULL;
                cr_assert_gt(asprintf(&t, "%s {}", s), 0);
                /* json-c in strict mode stops at the second value itself. */
                assert_refused_len(k, t, strlen(t), -EBADMSG, "JSON");
                /* A NUL byte inside the given length is data too. */
                assert_refused_len(k, s, strlen(s) + 1, -EBADMSG, "JSON");
        }
}

Test(messages, every_parser_refuses_duplicate_key) {
        refused(INIT_REQ, insert_after(INIT_REQ, "{", "\"clusterName\":\"other\","), "duplicate key \"clusterName\"");
        refused(INIT_REQ, insert_after(INIT_REQ, "\"kubernetes\":{", "\"podCidr\":\"10.0.0.0/8\","),
                "duplicate key \"podCidr\"");
        refused(INIT_RESP, insert_after(INIT_RESP, "{", "\"nodeName\":\"other\","), "duplicate key \"nodeName\"");
        refused(JOIN_REQ, insert_after(JOIN_REQ, "{", "\"role\":\"control-plane\","), "duplicate key \"role\"");
        refused(JOIN_RESP, insert_after(JOIN_RESP, "{", "\"meshAddress\":\"10.99.0.9\","),
                "duplicate key \"meshAddress\"");
        refused(JOIN_RESP, insert_after(JOIN_RESP, "\"peers\":[{", "\"name\":\"evil\","), "duplicate key \"name\"");
        refused(JOIN_RESP, insert_after(JOIN_RESP, "\"params\":{", "\"n\":4,"), "duplicate key \"n\"");
        refused(REJOIN_REQ, insert_after(REJOIN_REQ, "{", "\"diskUuid\":\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1\","),
                "duplicate key \"diskUuid\"");
        refused(REJOIN_RESP, insert_after(REJOIN_RESP, "{", "\"diskKey\":\"AAAA\","), "duplicate key \"diskKey\"");
        refused(MESH_REQ, insert_after(MESH_REQ, "{", "\"nodeName\":\"other\","), "duplicate key \"nodeName\"");
        refused(MESH_RESP, insert_after(MESH_RESP, "\"peers\":[{", "\"name\":\"evil\","), "duplicate key \"name\"");
}

/* json-c decodes escapes in keys, so "rol\u0065" would read as "role". */
Test(messages, every_parser_refuses_escaped_key_and_nul) {
        refused(JOIN_REQ, insert_after(JOIN_REQ, "{\"", "x\\u0041"), "escape sequence");
        refused(REJOIN_REQ, strdup("{\"disk\\u0055uid\":\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\"}"), "escape sequence");
        refused(JOIN_REQ, insert_after(JOIN_REQ, "\"nodeName\":\"", "\\u0000"), "NUL");
}

/* BUG (skipped until lib/json-util.c is fixed): json-c takes control
 * characters raw inside strings, which RFC 8259 does not allow. In a key of
 * cp_params the serializer then escapes it and the re-parse refuses the
 * escape (found by fuzz-messages). */
Test(messages, every_parser_refuses_raw_control_character) {
        refused(INIT_REQ, insert_after(INIT_REQ, "\"policy\":\"", "\n"), "control character");
        refused(INIT_REQ, insert_after(INIT_REQ, "\"policy\":\"", "\t"), "control character");
        refused(JOIN_RESP, insert_after(JOIN_RESP, "\"params\":{", "\"a\x15\":1,"), "control character");
        refused(JOIN_RESP, insert_after(JOIN_RESP, "\"params\":{", "\"a\":\"\x1f\","), "control character");
}

Test(messages, every_parser_refuses_oversized) {
        for (enum kind k = 0; k < N_KINDS; k++) {
                _cleanup_free_ char *s = sample_json(k);
                size_t n = strlen(s);
                size_t max = max_size(k);
                char *big = malloc(max + 2);

                cr_assert_not_null(big);
                /* A valid message padded with whitespace to exactly the limit
                 * is accepted; one byte more is refused before parsing. */
                memcpy(big, s, n);
                memset(big + n, ' ', max + 1 - n);
                big[max + 1] = 0;
                assert_accepted(k, big, max);
                assert_refused_len(k, big, max + 1, -EFBIG, "larger than");
                free(big);
        }
}

/* --- init request -------------------------------------------------------------- */

static const char *const init_request_fields[] = {
        "masterSecret", "masterSalt", "measurementSalt", "initSecret", "clusterName", "controlPlaneDriver",
        "meshCidr", "kubernetes", "policy", "kubernetes.version", "kubernetes.podCidr", "kubernetes.serviceCidr",
        "kubernetes.apiSans",
};

static const char *leaf(const char *path) {
        const char *dot = strrchr(path, '.');
        return dot ? dot + 1 : path;
}

static char *quoted(const char *field) {
        static char buf[128];
        snprintf(buf, sizeof(buf), "'%s'", field);
        return buf;
}

static void missing_and_wrong_type(enum kind k, const char *const *fields, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const char *f = fields[i];
                refused(k, edit(k, f, NULL), quoted(leaf(f)));
                /* A number where a string, object or array belongs. */
                refused(k, edit(k, f, json_object_new_int(7)), quoted(leaf(f)));
                refused(k, edit(k, f, JNULL), quoted(leaf(f)));
        }
}

Test(init_request, refuses_missing_field_and_wrong_type) {
        missing_and_wrong_type(INIT_REQ, init_request_fields, ELEMENTSOF(init_request_fields));
        /* Objects and strings swapped. */
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes", S("x")), "'kubernetes'");
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.apiSans", J("{}")), "'apiSans'");
        refused(INIT_REQ, edit(INIT_REQ, "masterSecret", J("[]")), "'masterSecret'");
        refused(INIT_REQ, edit(INIT_REQ, "policy", J("{\"pcrs\":{}}")), "'policy'");
}

Test(init_request, refuses_unknown_nested_field) {
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.extra", S("1")), "unknown field 'extra'");
}

/* A secret longer than its field: -EBADMSG would be consistent with a
 * shorter one, json_get_bytes_exact() says -EFBIG today; either is a
 * refusal naming the field. Takes ownership of json. */
static void refused_too_long(enum kind k, char *json, const char *field) {
        union any_msg m;
        struct errmsg e = {};
        int r;

        memset(&m, 0xaa, sizeof(m));
        r = parse_any(k, json, strlen(json), &m, &e);
        cr_assert(r == -EBADMSG || r == -EFBIG, "%s: %s too long: %d (%s)", kind_name[k], field, r, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, quoted(field)), "reason \"%s\" does not name %s", e.text, field);
        for (size_t i = 0; i < sizeof(m); i++)
                cr_assert_eq(((uint8_t *) &m)[i], 0xaa, "%s: output touched on failure", kind_name[k]);
        free(json);
}

static void secrets_wrong_size(enum kind k, const char *field) {
        refused(k, edit(k, field, B64(31)), quoted(field));
        refused_too_long(k, edit(k, field, B64(33)), field);
        refused(k, edit(k, field, B64(0)), quoted(field));
        refused(k, edit(k, field, B64(1)), quoted(field));
        refused_too_long(k, edit(k, field, B64(64)), field);
        /* Not base64: a bad character, no padding, whitespace. */
        refused(k, edit(k, field, S("!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")), "not valid base64");
        refused(k, edit(k, field, S("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")), "not valid base64");
        refused(k, edit(k, field, S("AAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAAA=")), "not valid base64");
        /* base64url alphabet. */
        refused(k, edit(k, field, S("-_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")), "not valid base64");
}

Test(init_request, refuses_secrets_of_wrong_size_or_encoding) {
        secrets_wrong_size(INIT_REQ, "masterSecret");
        secrets_wrong_size(INIT_REQ, "masterSalt");
        secrets_wrong_size(INIT_REQ, "measurementSalt");
        secrets_wrong_size(INIT_REQ, "initSecret");
}

Test(init_request, refuses_invalid_values) {
        refused(INIT_REQ, edit(INIT_REQ, "clusterName", S("Arca")), "'clusterName'");
        refused(INIT_REQ, edit(INIT_REQ, "clusterName", S("")), "'clusterName'");
        refused(INIT_REQ, edit(INIT_REQ, "clusterName", S("a-very-long-cluster-name-of-sixty-four-characters-xxxxxxxxxxxxxx")),
                "'clusterName'");
        refused(INIT_REQ, edit(INIT_REQ, "controlPlaneDriver", S("k3s")), "'controlPlaneDriver'");
        refused(INIT_REQ, edit(INIT_REQ, "controlPlaneDriver", S("")), "'controlPlaneDriver'");
        refused(INIT_REQ, edit(INIT_REQ, "meshCidr", S("10.99.0.1/16")), "'meshCidr'");
        refused(INIT_REQ, edit(INIT_REQ, "meshCidr", S("fd00::/64")), "'meshCidr'");
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.podCidr", S("10.244.0.0/33")), "'podCidr'");
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.serviceCidr", S("10.96.0.0")), "'serviceCidr'");
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.version", S("v1.31;reboot")), "'version'");
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.apiSans.1", S("bad name!")), "apiSans[1]");
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.apiSans.0", json_object_new_int(10)), "apiSans[0]");
        refused(INIT_REQ, edit(INIT_REQ, "policy", S("")), "'policy'");
}

Test(init_request, api_sans_bounded) {
        json_object *sans = json_object_new_array();

        for (int i = 0; i < MSG_MAX_SANS; i++)
                json_object_array_add(sans, S("api.arca.test"));
        {
                char *ok = edit(INIT_REQ, "kubernetes.apiSans", json_object_get(sans));
                assert_accepted(INIT_REQ, ok, strlen(ok));
                free(ok);
        }
        json_object_array_add(sans, S("api.arca.test"));
        refused(INIT_REQ, edit(INIT_REQ, "kubernetes.apiSans", sans), "more than 16");
}

Test(init_request, policy_bounded) {
        char *big = malloc(MSG_MAX_POLICY + 2);

        cr_assert_not_null(big);
        memset(big, 'p', MSG_MAX_POLICY + 1);
        big[MSG_MAX_POLICY] = 0;
        {
                char *ok = edit(INIT_REQ, "policy", S(big));
                assert_accepted(INIT_REQ, ok, strlen(ok));
                free(ok);
        }
        big[MSG_MAX_POLICY] = 'p';
        big[MSG_MAX_POLICY + 1] = 0;
        refused(INIT_REQ, edit(INIT_REQ, "policy", S(big)), "'policy'");
        free(big);
}

/* --- init response ----------------------------------------------------------- */

Test(init_response, refuses_missing_field_and_wrong_type) {
        static const char *const fields[] = { "clusterId", "nodeName", "meshAddress", "wireguardPublicKey",
                                              "kubeconfig" };
        missing_and_wrong_type(INIT_RESP, fields, ELEMENTSOF(fields));
}

Test(init_response, refuses_bad_cluster_id) {
        secrets_wrong_size(INIT_RESP, "clusterId");
}

Test(init_response, refuses_invalid_values) {
        _cleanup_free_ char *k31 = b64_of_n(31, 1), *k33 = b64_of_n(33, 1);

        refused(INIT_RESP, edit(INIT_RESP, "nodeName", S("-cp-0")), "'nodeName'");
        refused(INIT_RESP, edit(INIT_RESP, "meshAddress", S("10.99.0.256")), "'meshAddress'");
        refused(INIT_RESP, edit(INIT_RESP, "meshAddress", S("10.99.0.0/16")), "'meshAddress'");
        refused(INIT_RESP, edit(INIT_RESP, "meshAddress", S("node-1")), "'meshAddress'");
        refused(INIT_RESP, edit(INIT_RESP, "wireguardPublicKey", S(k31)), "'wireguardPublicKey'");
        refused(INIT_RESP, edit(INIT_RESP, "wireguardPublicKey", S(k33)), "'wireguardPublicKey'");
        refused(INIT_RESP, edit(INIT_RESP, "wireguardPublicKey", S("")), "'wireguardPublicKey'");
        refused(INIT_RESP, edit(INIT_RESP, "kubeconfig", S("a===")), "'kubeconfig'");
}

Test(init_response, kubeconfig_bounded) {
        uint8_t *raw = calloc(1, MSG_MAX_KUBECONFIG + 3);
        char *b = NULL;

        cr_assert_not_null(raw);
        cr_assert_eq(base64_encode(raw, MSG_MAX_KUBECONFIG, &b), 0);
        {
                char *ok = edit(INIT_RESP, "kubeconfig", S(b));
                assert_accepted(INIT_RESP, ok, strlen(ok));
                free(ok);
        }
        free(b);
        cr_assert_eq(base64_encode(raw, MSG_MAX_KUBECONFIG + 1, &b), 0);
        refused_err(INIT_RESP, edit(INIT_RESP, "kubeconfig", S(b)), -EFBIG, "'kubeconfig'");
        free(b);
        free(raw);
}

/* --- join request -------------------------------------------------------------- */

Test(join_request, refuses_missing_field_and_wrong_type) {
        static const char *const fields[] = { "role", "diskUuid", "nodeName", "wireguardPublicKey", "endpoint" };
        missing_and_wrong_type(JOIN_REQ, fields, ELEMENTSOF(fields));
}

Test(join_request, refuses_invalid_values) {
        _cleanup_free_ char *k31 = b64_of_n(31, 1);

        refused(JOIN_REQ, edit(JOIN_REQ, "role", S("admin")), "'role'");
        refused(JOIN_REQ, edit(JOIN_REQ, "role", S("Worker")), "'role'");
        refused(JOIN_REQ, edit(JOIN_REQ, "diskUuid", S("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f")), "'diskUuid'");
        refused(JOIN_REQ, edit(JOIN_REQ, "diskUuid", S("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg")), "'diskUuid'");
        refused(JOIN_REQ, edit(JOIN_REQ, "diskUuid", S("0f1e2d3c4b5a69788796a5b4c3d2e1f0")), "'diskUuid'");
        refused(JOIN_REQ, edit(JOIN_REQ, "nodeName", S("Worker_1")), "'nodeName'");
        refused(JOIN_REQ, edit(JOIN_REQ, "wireguardPublicKey", S(k31)), "'wireguardPublicKey'");
        refused(JOIN_REQ, edit(JOIN_REQ, "wireguardPublicKey", S("not a key")), "'wireguardPublicKey'");
        refused(JOIN_REQ, edit(JOIN_REQ, "endpoint", S("192.168.122.11")), "'endpoint'");
        refused(JOIN_REQ, edit(JOIN_REQ, "endpoint", S("192.168.122.11:0")), "'endpoint'");
        refused(JOIN_REQ, edit(JOIN_REQ, "endpoint", S("fd00::1:51820")), "'endpoint'");
}

/* --- join response ------------------------------------------------------------- */

Test(join_response, refuses_missing_field_and_wrong_type) {
        static const char *const fields[] = {
                "diskKey", "measurementSalt", "measurementSecret", "clusterId", "clusterName", "controlPlane",
                "meshCidr", "meshAddress", "peers", "controlPlane.driver", "controlPlane.params",
        };
        missing_and_wrong_type(JOIN_RESP, fields, ELEMENTSOF(fields));
        refused(JOIN_RESP, edit(JOIN_RESP, "peers", J("{}")), "'peers'");
        refused(JOIN_RESP, edit(JOIN_RESP, "controlPlane.params", J("[]")), "'params'");
        refused(JOIN_RESP, edit(JOIN_RESP, "controlPlane.params", S("token")), "'params'");
}

Test(join_response, refuses_unknown_nested_field) {
        refused(JOIN_RESP, edit(JOIN_RESP, "controlPlane.extra", S("x")), "unknown field 'extra'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1.extra", S("x")), "unknown field 'extra'");
}

Test(join_response, refuses_secrets_of_wrong_size_or_encoding) {
        secrets_wrong_size(JOIN_RESP, "diskKey");
        secrets_wrong_size(JOIN_RESP, "measurementSalt");
        secrets_wrong_size(JOIN_RESP, "measurementSecret");
        secrets_wrong_size(JOIN_RESP, "clusterId");
        secrets_wrong_size(JOIN_RESP, "masterSecret");
        secrets_wrong_size(JOIN_RESP, "masterSalt");
}

Test(join_response, refuses_invalid_values) {
        refused(JOIN_RESP, edit(JOIN_RESP, "clusterName", S("arca_test")), "'clusterName'");
        refused(JOIN_RESP, edit(JOIN_RESP, "meshCidr", S("10.99.1.0/16")), "'meshCidr'");
        refused(JOIN_RESP, edit(JOIN_RESP, "meshAddress", S("10.99.0.4:80")), "'meshAddress'");
        refused(JOIN_RESP, edit(JOIN_RESP, "controlPlane.driver", S("k0s")), "'driver'");
        refused(JOIN_RESP, edit(JOIN_RESP, "policy", S("")), "'policy'");
        refused(JOIN_RESP, edit(JOIN_RESP, "policy", json_object_new_int(1)), "'policy'");
}

Test(join_response, refuses_invalid_peer) {
        _cleanup_free_ char *k33 = b64_of_n(33, 1);

        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1.name", S("Node-1")), "peers[1]");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1.name", S("Node-1")), "'name'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.0.role", S("master")), "'role'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.0.wireguardPublicKey", S(k33)), "'wireguardPublicKey'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1.endpoint", S("node-2:65536")), "'endpoint'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1.endpoint", S("node-2:65536")), "peers[1]");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.0.meshAddress", S("10.99.0")), "'meshAddress'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.0.meshAddress", NULL), "'meshAddress'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.0.name", json_object_new_int(1)), "'name'");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1", S("node-1")), "peers[1]");
        refused(JOIN_RESP, edit(JOIN_RESP, "peers.1", JNULL), "peers[1]");
}

/* masterSecret, masterSalt and policy travel together or not at all. */
Test(join_response, refuses_partial_master_set) {
        static const char *const set[] = { "masterSecret", "masterSalt", "policy" };

        /* Drop one of the three. */
        for (size_t i = 0; i < ELEMENTSOF(set); i++)
                refused(JOIN_RESP, edit(JOIN_RESP, set[i], NULL), "must come together");
        /* Only one of the three, on a message without the master secret. */
        for (size_t i = 0; i < ELEMENTSOF(set); i++) {
                _cleanup_free_ char *base = NULL;
                struct join_response m;
                json_object *o;

                sample_join_response(&m, false, 1);
                cr_assert_eq(join_response_serialize(&m, &base), 0);
                join_response_done(&m);
                o = json_tokener_parse(base);
                cr_assert_not_null(o);
                json_object_object_add(o, set[i], i == 2 ? S(POLICY) : B64(32));
                refused(JOIN_RESP, strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)),
                        "must come together");
                json_object_put(o);
        }
}

static char *join_response_with_peers(size_t n) {
        struct join_response m;
        char *s = NULL;

        sample_join_response(&m, false, n);
        cr_assert_eq(join_response_serialize(&m, &s), 0);
        join_response_done(&m);
        return s;
}

Test(join_response, peers_bounded) {
        char *s = join_response_with_peers(MSG_MAX_PEERS);
        struct join_response m = {};
        struct errmsg e = {};

        cr_assert_eq(join_response_parse(s, strlen(s), &m, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(m.n_peers, (size_t) MSG_MAX_PEERS);
        join_response_done(&m);
        free(s);
        /* One more peer than the bound, added to the text (the serializer
         * refuses to write it). */
        {
                _cleanup_free_ char *base = join_response_with_peers(MSG_MAX_PEERS);
                json_object *o = json_tokener_parse(base), *peers = NULL, *extra = NULL;

                cr_assert_not_null(o);
                cr_assert(json_object_object_get_ex(o, "peers", &peers));
                cr_assert_eq(json_object_deep_copy(json_object_array_get_idx(peers, 0), &extra, NULL), 0);
                cr_assert_eq(json_object_array_add(peers, extra), 0);
                refused(JOIN_RESP, strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)),
                        "more than 4095 peers");
                json_object_put(o);
        }
}

/* The largest peer list (every field at its longest) fits the size bound
 * of answers that carry one, so a full registry is never refused by size. */
Test(join_response, largest_peer_list_fits) {
        struct join_response m;
        _cleanup_free_ char *s = NULL;

        sample_join_response(&m, true, MSG_MAX_PEERS);
        free(m.policy);
        m.policy = malloc(MSG_MAX_POLICY + 1);
        cr_assert_not_null(m.policy);
        /* Each control character becomes \u00XX: six bytes. */
        memset(m.policy, 0x01, MSG_MAX_POLICY);
        m.policy[MSG_MAX_POLICY] = 0;
        m.policy_size = MSG_MAX_POLICY;
        for (size_t i = 0; i < m.n_peers; i++) {
                struct mesh_peer *p = &m.peers[i];
                snprintf(p->name, sizeof(p->name), "%0*zu", NODE_NAME_MAX, i);
                strcpy(p->role, "control-plane");
                /* The longest canonical IPv6 text: 8 groups of 4 digits. */
                snprintf(p->endpoint, sizeof(p->endpoint), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:%zx]:65535",
                         0xf000 + i);
                snprintf(p->mesh_address, sizeof(p->mesh_address), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:%zx",
                         0xf000 + i);
        }
        cr_assert_eq(join_response_serialize(&m, &s), 0);
        cr_assert_leq(strlen(s), (size_t) MSG_MAX_PEERS_SIZE);
        cr_assert_leq((size_t) MSG_MAX_PEERS_SIZE, (size_t) HTTP_CLIENT_DEFAULT_MAX_RESPONSE);
        join_response_done(&m);
}

/* Peer lists are written directly: a field its parser would refuse is
 * refused by the serializer too, never written unescaped. */
Test(join_response, serializer_refuses_invalid_peer_fields) {
        static const char *const bad[] = { "a\"b", "a\\b", "A", "" };
        struct join_response m;
        char *s = NULL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                sample_join_response(&m, false, 2);
                snprintf(m.peers[1].name, sizeof(m.peers[1].name), "%s", bad[i]);
                cr_assert_eq(join_response_serialize(&m, &s), -EINVAL, "peer name \"%s\" written", bad[i]);
                cr_assert_null(s);
                join_response_done(&m);
        }
        sample_join_response(&m, false, 2);
        strcpy(m.peers[0].endpoint, "10.0.0.1:\"1");
        cr_assert_eq(join_response_serialize(&m, &s), -EINVAL);
        join_response_done(&m);
        sample_join_response(&m, false, 2);
        strcpy(m.peers[0].wg_public_key, "AAAA\\AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        cr_assert_eq(join_response_serialize(&m, &s), -EINVAL);
        join_response_done(&m);
}

/* The serializer refuses a list longer than the bound instead of cutting it. */
Test(join_response, serializer_refuses_too_many_peers) {
        struct join_response m;
        char *s = NULL;

        sample_join_response(&m, false, MSG_MAX_PEERS + 1);
        cr_assert_eq(join_response_serialize(&m, &s), -E2BIG);
        cr_assert_null(s);
        join_response_done(&m);
}

/* --- answers in pieces (a join service streams them) ---------------------- */

/* head + peers_write with buffers of `size` bytes, as one string. */
static char *assemble(char *head, size_t head_len, size_t len, const struct peer_list *peers, size_t size) {
        char *out = malloc(len + 1), *buf = malloc(size);
        size_t used = head_len, next = 0;
        ssize_t n;

        cr_assert_not_null(out);
        cr_assert_not_null(buf);
        memcpy(out, head, head_len);
        free(head);
        while ((n = peers_write(peers, &next, buf, size)) > 0) {
                cr_assert_leq(used + (size_t) n, len, "more than the announced %zu bytes", len);
                memcpy(out + used, buf, (size_t) n);
                used += (size_t) n;
        }
        cr_assert_eq(n, 0, "peers_write: %zd", n);
        cr_assert_eq(used, len, "%zu bytes written, %zu announced", used, len);
        /* Done stays done. */
        cr_assert_eq(peers_write(peers, &next, buf, size), 0);
        out[len] = 0;
        free(buf);
        return out;
}

/* The text json-c writes for the same document: what a parser reads back
 * as it was (an oracle independent of the peer writer). */
static void assert_json_c_text(const char *s) {
        json_object *o = json_tokener_parse(s);
        const char *t;

        cr_assert_not_null(o, "not JSON: %.200s", s);
        t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        cr_assert_str_eq(t, s);
        json_object_put(o);
}

/* The head, then the peers in buffers of any size that holds a peer: the
 * same bytes as the whole answer, which is what json-c writes, for 0, 1
 * and many peers (several times the server's piece size). */
Test(answer_pieces, equal_the_whole_answer) {
        static const size_t counts[] = { 0, 1, 2, 700 };
        static const size_t sizes[] = { MSG_PEER_TEXT_MAX, 1000, 4096, 1 << 20 };

        for (size_t c = 0; c < ELEMENTSOF(counts); c++) {
                for (int has_master = 0; has_master <= 1; has_master++) {
                        struct join_response j;
                        struct mesh_response m;
                        _cleanup_free_ char *whole = NULL, *mwhole = NULL;

                        sample_join_response(&j, has_master, counts[c]);
                        sample_mesh_response(&m, counts[c]);
                        cr_assert_eq(join_response_serialize(&j, &whole), 0);
                        cr_assert_eq(mesh_response_serialize(&m, &mwhole), 0);
                        assert_json_c_text(whole);
                        assert_json_c_text(mwhole);
                        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                                struct peer_list jp = peer_list_of(j.peers, j.n_peers);
                                struct peer_list mp = peer_list_of(m.peers, m.n_peers);
                                char *head;
                                size_t head_len, len;
                                _cleanup_free_ char *a = NULL, *b = NULL;

                                cr_assert_eq(join_response_serialize_head(&j, &jp, &head, &head_len, &len), 0);
                                cr_assert_eq(len, strlen(whole));
                                cr_assert_eq(head_len, strlen(head));
                                cr_assert(strstr(head, "\"peers\":[") == head + head_len - 9, "%s", head);
                                a = assemble(head, head_len, len, &jp, sizes[k]);
                                cr_assert_str_eq(a, whole, "%zu peers, pieces of %zu", counts[c], sizes[k]);
                                cr_assert_eq(mesh_response_serialize_head(&m, &mp, &head, &head_len, &len), 0);
                                cr_assert_eq(len, strlen(mwhole));
                                b = assemble(head, head_len, len, &mp, sizes[k]);
                                cr_assert_str_eq(b, mwhole, "%zu peers, pieces of %zu", counts[c], sizes[k]);
                        }
                        join_response_done(&j);
                        mesh_response_done(&m);
                }
        }
}

/* The text of one peer, written out here. */
Test(answer_pieces, one_peer_text) {
        struct mesh_response m;
        _cleanup_free_ char *s = NULL;
        char key[WG_KEY_B64_SIZE], want[1024];

        sample_mesh_response(&m, 1);
        wg_key(key, 0);
        snprintf(want, sizeof(want),
                 "{\"meshAddress\":\"10.99.0.4\",\"meshCidr\":\"10.99.0.0/16\",\"refreshIntervalSeconds\":10,"
                 "\"peers\":[{\"name\":\"node-0\",\"role\":\"control-plane\",\"wireguardPublicKey\":\"%s\","
                 "\"endpoint\":\"192.168.122.10:51820\",\"meshAddress\":\"10.99.0.1\"}]}",
                 key);
        cr_assert_eq(mesh_response_serialize(&m, &s), 0);
        cr_assert_str_eq(s, want);
        mesh_response_done(&m);
}

/* A buffer that holds no next piece is refused, not filled with part of
 * one; the cursor stays where it was. */
Test(answer_pieces, buffer_too_small) {
        struct mesh_response m;
        struct peer_list l;
        char buf[MSG_PEER_TEXT_MAX];
        size_t next = 0;
        ssize_t n;

        sample_mesh_response(&m, 2);
        l = peer_list_of(m.peers, m.n_peers);
        cr_assert_eq(peers_write(&l, &next, buf, 20), -ENOBUFS);
        cr_assert_eq(next, 0u);
        n = peers_write(&l, &next, buf, sizeof(buf));
        cr_assert_gt(n, 0);
        cr_assert_eq(next, 3u, "both peers and the end in one buffer");
        cr_assert_eq(memcmp(buf + n - 3, "}]}", 3), 0);
        next = 2;
        cr_assert_eq(peers_write(&l, &next, buf, 1), -ENOBUFS);
        cr_assert_eq(peers_write(&l, &next, buf, 2), 2);
        cr_assert_eq(memcmp(buf, "]}", 2), 0);
        mesh_response_done(&m);
}

/* The head checks every peer, as the whole serializer does. */
Test(answer_pieces, head_checks_peers) {
        struct join_response j;
        struct peer_list l;
        char *head = NULL;
        size_t head_len, len;

        sample_join_response(&j, true, 3);
        strcpy(j.peers[2].mesh_address, "10.99.0\"");
        l = peer_list_of(j.peers, j.n_peers);
        cr_assert_eq(join_response_serialize_head(&j, &l, &head, &head_len, &len), -EINVAL);
        cr_assert_null(head);
        l.n = MSG_MAX_PEERS + 1;
        cr_assert_eq(join_response_serialize_head(&j, &l, &head, &head_len, &len), -E2BIG);
        cr_assert_null(head);
        join_response_done(&j);
}

/* --- mesh refresh ------------------------------------------------------------ */

Test(mesh, request_round_trip) {
        struct mesh_request in, out = {};
        struct errmsg e = {};
        _cleanup_free_ char *s = NULL, *s2 = NULL;

        sample_mesh_request(&in);
        strcpy(in.endpoint, "[fd00::11]:51820");
        cr_assert_eq(mesh_request_serialize(&in, &s), 0);
        cr_assert_not_null(strstr(s, "\"underlayEndpoint\":\"[fd00::11]:51820\""), "%s", s);
        cr_assert_eq(mesh_request_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
        cr_assert_str_eq(out.node_name, in.node_name);
        cr_assert_str_eq(out.wg_public_key, in.wg_public_key);
        cr_assert_str_eq(out.endpoint, in.endpoint);
        cr_assert_eq(mesh_request_serialize(&out, &s2), 0);
        cr_assert_str_eq(s2, s);
}

Test(mesh, response_round_trip) {
        for (size_t n = 0; n <= 3; n++) {
                struct mesh_response in, out = {};
                struct errmsg e = {};
                _cleanup_free_ char *s = NULL, *s2 = NULL;

                sample_mesh_response(&in, n);
                in.refresh_interval = (unsigned) (n + 1) * 7;
                cr_assert_eq(mesh_response_serialize(&in, &s), 0);
                cr_assert_eq(mesh_response_parse(s, strlen(s), &out, &e), 0, "%s: %s", errmsg_str(&e), s);
                cr_assert_str_eq(out.mesh_address, in.mesh_address);
                cr_assert_str_eq(out.mesh_cidr, in.mesh_cidr);
                cr_assert_eq(out.refresh_interval, in.refresh_interval);
                cr_assert_eq(out.n_peers, n);
                for (size_t i = 0; i < n; i++) {
                        cr_assert_str_eq(out.peers[i].name, in.peers[i].name);
                        cr_assert_str_eq(out.peers[i].role, in.peers[i].role);
                        cr_assert_str_eq(out.peers[i].wg_public_key, in.peers[i].wg_public_key);
                        cr_assert_str_eq(out.peers[i].endpoint, in.peers[i].endpoint);
                        cr_assert_str_eq(out.peers[i].mesh_address, in.peers[i].mesh_address);
                }
                cr_assert_eq(mesh_response_serialize(&out, &s2), 0);
                cr_assert_str_eq(s2, s);
                mesh_response_done(&in);
                mesh_response_done(&out);
                cr_assert_null(out.peers);
        }
}

Test(mesh, refuses_bad_request) {
        static const char *const fields[] = { "nodeName", "wireguardPublicKey", "underlayEndpoint" };
        _cleanup_free_ char *k33 = b64_of_n(33, 1);

        missing_and_wrong_type(MESH_REQ, fields, ELEMENTSOF(fields));
        refused(MESH_REQ, edit(MESH_REQ, "nodeName", S("Node_1")), "'nodeName'");
        refused(MESH_REQ, edit(MESH_REQ, "nodeName", S("")), "'nodeName'");
        refused(MESH_REQ, edit(MESH_REQ, "wireguardPublicKey", S(k33)), "'wireguardPublicKey'");
        refused(MESH_REQ, edit(MESH_REQ, "underlayEndpoint", S("192.0.2.1")), "'underlayEndpoint'");
        refused(MESH_REQ, edit(MESH_REQ, "underlayEndpoint", S("192.0.2.1:0")), "'underlayEndpoint'");
        /* The join request's name for the field is not this message's. */
        refused(MESH_REQ, edit(MESH_REQ, "endpoint", S("192.0.2.1:51820")), "unknown field 'endpoint'");
}

Test(mesh, refuses_bad_response) {
        static const char *const fields[] = { "meshAddress", "meshCidr", "peers" };
        _cleanup_free_ char *k33 = b64_of_n(33, 1), *max = NULL;

        missing_and_wrong_type(MESH_RESP, fields, ELEMENTSOF(fields));
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", NULL), "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", S("10")), "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", JNULL), "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "meshAddress", S("10.99.0")), "'meshAddress'");
        refused(MESH_RESP, edit(MESH_RESP, "meshCidr", S("10.99.0.1/16")), "'meshCidr'");
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", json_object_new_int(0)), "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", json_object_new_int(-5)),
                "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", json_object_new_int(MSG_MAX_REFRESH_INTERVAL + 1)),
                "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "refreshIntervalSeconds", json_object_new_double(10.5)),
                "'refreshIntervalSeconds'");
        refused(MESH_RESP, edit(MESH_RESP, "peers.0.wireguardPublicKey", S(k33)), "peers[0]");
        refused(MESH_RESP, edit(MESH_RESP, "peers.1.meshAddress", NULL), "'meshAddress'");
        refused(MESH_RESP, edit(MESH_RESP, "peers.1", JNULL), "peers[1]");
        max = edit(MESH_RESP, "refreshIntervalSeconds", json_object_new_int(MSG_MAX_REFRESH_INTERVAL));
        assert_accepted(MESH_RESP, max, strlen(max));
}

Test(mesh, peers_bounded) {
        struct mesh_response m;
        struct mesh_response out = {};
        struct errmsg e = {};
        char *s = NULL;

        sample_mesh_response(&m, MSG_MAX_PEERS);
        cr_assert_eq(mesh_response_serialize(&m, &s), 0);
        cr_assert_eq(mesh_response_parse(s, strlen(s), &out, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(out.n_peers, (size_t) MSG_MAX_PEERS);
        mesh_response_done(&out);
        free(s);
        s = NULL;
        mesh_response_done(&m);
        sample_mesh_response(&m, MSG_MAX_PEERS + 1);
        cr_assert_eq(mesh_response_serialize(&m, &s), -E2BIG);
        mesh_response_done(&m);
}

/* --- rejoin -------------------------------------------------------------------- */

Test(rejoin, refuses_bad_request) {
        missing_and_wrong_type(REJOIN_REQ, (const char *const[]){ "diskUuid" }, 1);
        refused(REJOIN_REQ, edit(REJOIN_REQ, "diskUuid", S("")), "'diskUuid'");
        refused(REJOIN_REQ, edit(REJOIN_REQ, "diskUuid", S("../../etc/passwd")), "'diskUuid'");
        refused(REJOIN_REQ, edit(REJOIN_REQ, "diskUuid", S("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1}")), "'diskUuid'");
        refused(REJOIN_REQ, edit(REJOIN_REQ, "diskUuid", S("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00")), "'diskUuid'");
}

Test(rejoin, refuses_bad_response) {
        missing_and_wrong_type(REJOIN_RESP, (const char *const[]){ "diskKey" }, 1);
        secrets_wrong_size(REJOIN_RESP, "diskKey");
}

/* --- validators ---------------------------------------------------------------- */

Test(validate, node_name) {
        char s63[64], s64[65];

        memset(s63, 'a', 63);
        s63[63] = 0;
        memset(s64, 'a', 64);
        s64[64] = 0;
        cr_assert(valid_node_name("a"));
        cr_assert(valid_node_name("a-b.c"));
        cr_assert(valid_node_name("0"));
        cr_assert(valid_node_name("node-1"));
        cr_assert(valid_node_name(s63));
        cr_assert_not(valid_node_name(NULL));
        cr_assert_not(valid_node_name(""));
        cr_assert_not(valid_node_name("-a"));
        cr_assert_not(valid_node_name("a-"));
        cr_assert_not(valid_node_name(".a"));
        cr_assert_not(valid_node_name("a."));
        cr_assert_not(valid_node_name("A"));
        cr_assert_not(valid_node_name("a_b"));
        cr_assert_not(valid_node_name("a b"));
        cr_assert_not(valid_node_name("a/b"));
        cr_assert_not(valid_node_name("\xc3\xa9"));
        cr_assert_not(valid_node_name(s64));
}

Test(validate, endpoint) {
        char long_ep[80];

        cr_assert(valid_endpoint("10.0.0.1:30090"));
        cr_assert(valid_endpoint("node-1:9000"));
        cr_assert(valid_endpoint("[::1]:80"));
        cr_assert(valid_endpoint("[fd00::1]:65535"));
        cr_assert(valid_endpoint("a:1"));
        cr_assert_not(valid_endpoint(NULL));
        cr_assert_not(valid_endpoint(""));
        cr_assert_not(valid_endpoint(":80"));
        cr_assert_not(valid_endpoint("1.2.3.4"));
        cr_assert_not(valid_endpoint("1.2.3.4:"));
        cr_assert_not(valid_endpoint("1.2.3.4:0"));
        cr_assert_not(valid_endpoint("1.2.3.4:65536"));
        cr_assert_not(valid_endpoint("1.2.3.4:99999999999999999999999"));
        cr_assert_not(valid_endpoint("1.2.3.4:+80"));
        cr_assert_not(valid_endpoint("1.2.3.4:-80"));
        cr_assert_not(valid_endpoint("1.2.3.4:80x"));
        cr_assert_not(valid_endpoint("1.2.3.4:0x50"));
        cr_assert_not(valid_endpoint("::1:80"));
        cr_assert_not(valid_endpoint("[::1]80"));
        cr_assert_not(valid_endpoint("[::1]:"));
        cr_assert_not(valid_endpoint("[::1"));
        cr_assert_not(valid_endpoint("[]:80"));
        cr_assert_not(valid_endpoint("[1.2.3.4]:80"));
        cr_assert_not(valid_endpoint("[::1]:80:80"));
        /* One spelling per endpoint: no leading zeros, canonical addresses. */
        cr_assert_not(valid_endpoint("1.2.3.4:080"));
        cr_assert_not(valid_endpoint("[::0001]:80"));
        cr_assert_not(valid_endpoint("[FD00::1]:80"));
        /* "1.2.3.256" is not an address but is a host name of the
         * accepted shape (labels may be all digits). */
        cr_assert_not(valid_endpoint("Node-1:80"));
        cr_assert_not(valid_endpoint("node_1:80"));
        /* 63 characters fit the buffer, 64 do not. */
        memset(long_ep, 'a', sizeof(long_ep));
        strcpy(long_ep + 57, ":30090");
        cr_assert_eq(strlen(long_ep), 63u);
        cr_assert(valid_endpoint(long_ep));
        memset(long_ep, 'a', sizeof(long_ep));
        strcpy(long_ep + 58, ":30090");
        cr_assert_not(valid_endpoint(long_ep));
}

/* strtol() skips leading white space: the port must be digits only. */
Test(validate, endpoint_refuses_space_before_port) {
        cr_assert_not(valid_endpoint("1.2.3.4: 80"), "\"1.2.3.4: 80\" accepted");
        cr_assert_not(valid_endpoint("1.2.3.4:\t80"), "\"1.2.3.4:\\t80\" accepted");
        cr_assert_not(valid_endpoint("1.2.3.4: +80"), "\"1.2.3.4: +80\" accepted");
        cr_assert_not(valid_endpoint("[::1]: 80"), "\"[::1]: 80\" accepted");
}

Test(validate, cidr4) {
        cr_assert(valid_cidr4("10.0.0.0/8"));
        cr_assert(valid_cidr4("10.99.0.0/16"));
        cr_assert(valid_cidr4("10.244.1.0/24"));
        cr_assert(valid_cidr4("10.1.2.3/32"));
        cr_assert(valid_cidr4("0.0.0.0/0"));
        /* Host bits set. */
        cr_assert_not(valid_cidr4("10.0.0.1/8"));
        cr_assert_not(valid_cidr4("10.99.1.0/16"));
        cr_assert_not(valid_cidr4("10.244.1.128/24"));
        cr_assert_not(valid_cidr4("10.1.2.3/31"));
        cr_assert_not(valid_cidr4("1.0.0.0/0"));
        /* Shape. */
        cr_assert_not(valid_cidr4(NULL));
        cr_assert_not(valid_cidr4(""));
        cr_assert_not(valid_cidr4("10.0.0.0"));
        cr_assert_not(valid_cidr4("10.0.0.0/"));
        cr_assert_not(valid_cidr4("/8"));
        cr_assert_not(valid_cidr4("10.0.0.0/33"));
        cr_assert_not(valid_cidr4("10.0.0.0/-1"));
        cr_assert_not(valid_cidr4("10.0.0.0/+8"));
        cr_assert_not(valid_cidr4("10.0.0.0/8x"));
        cr_assert_not(valid_cidr4("10.0.0.0/8/8"));
        cr_assert_not(valid_cidr4("10.0.0/8"));
        cr_assert_not(valid_cidr4("010.0.0.0/8"));
        cr_assert_not(valid_cidr4("fd00::/8"));
        cr_assert_not(valid_cidr4("255.255.255.255255/8"));
        cr_assert_not(valid_cidr4("10.0.0.0/08"));
}

Test(validate, cidr4_refuses_space_before_bits) {
        cr_assert_not(valid_cidr4("10.0.0.0/ 8"), "\"10.0.0.0/ 8\" accepted");
        cr_assert_not(valid_cidr4("10.0.0.0/\n8"), "\"10.0.0.0/\\n8\" accepted");
}

Test(validate, wg_key) {
        _cleanup_free_ char *k32 = b64_of_n(32, 3), *k31 = b64_of_n(31, 3), *k33 = b64_of_n(33, 3);
        char nc[45];

        cr_assert(valid_wg_key(k32));
        cr_assert(valid_wg_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        cr_assert_not(valid_wg_key(NULL));
        cr_assert_not(valid_wg_key(""));
        cr_assert_eq(strlen(k31), 44u);
        cr_assert_not(valid_wg_key(k31));
        cr_assert_eq(strlen(k33), 44u);
        cr_assert_not(valid_wg_key(k33));
        cr_assert_not(valid_wg_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        cr_assert_not(valid_wg_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));
        cr_assert_not(valid_wg_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!="));
        cr_assert_not(valid_wg_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-="));
        /* Non-canonical: bits below the last character's significant ones. */
        memcpy(nc, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", 45);
        cr_assert_not(valid_wg_key(nc));
}

Test(validate, uuid_address_role) {
        cr_assert(valid_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        cr_assert(valid_uuid("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"));
        cr_assert_not(valid_uuid(NULL));
        cr_assert_not(valid_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f"));
        cr_assert_not(valid_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00"));
        cr_assert_not(valid_uuid("0f1e2d3c04b5a-6978-8796-a5b4c3d2e1f0"));
        cr_assert_not(valid_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg"));

        cr_assert(valid_address("10.0.0.1"));
        cr_assert(valid_address("fd00::1"));
        cr_assert(valid_address("::ffff:10.0.0.1"));
        cr_assert_not(valid_address(NULL));
        cr_assert_not(valid_address(""));
        cr_assert_not(valid_address("10.0.0.256"));
        cr_assert_not(valid_address("10.0.0"));
        cr_assert_not(valid_address("010.0.0.1"));
        cr_assert_not(valid_address("[::1]"));
        cr_assert_not(valid_address("node-1"));
        cr_assert_not(valid_address("10.0.0.1/32"));
        cr_assert_not(valid_address("FD00::1"));
        cr_assert_not(valid_address("fd00:0::1"));

        cr_assert(valid_role("control-plane"));
        cr_assert(valid_role("worker"));
        cr_assert_not(valid_role(NULL));
        cr_assert_not(valid_role(""));
        cr_assert_not(valid_role("Worker"));
        cr_assert_not(valid_role("worker "));
        cr_assert_not(valid_role("controlplane"));
}
