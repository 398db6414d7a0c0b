/* SPDX-License-Identifier: Apache-2.0 */
#include "registry.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "http-client.h"
#include "json-util.h"
#include "secret.h"

#define DEFAULT_TIMEOUT_MS 5000L
#define ENDPOINT_URL_MAX 256
/* A write that loses its comparison is retried on a fresh read; each lost
 * round means another join service's write went through. */
#define MAX_ROUNDS 64
#define KEY_BUF (REGISTRY_PREFIX_MAX + 96)

/* gRPC status codes the gateway reports in error bodies. */
#define GRPC_UNAVAILABLE 14


struct registry {
        char **endpoints;
        size_t n_endpoints;
        size_t current; /* the endpoint that answered last */
        char prefix[REGISTRY_PREFIX_MAX + 1];
        long timeout_ms;
        SSL_CTX *tls;                  /* https endpoints: etcd's CA, our client certificate */
        struct http_client **clients;  /* per endpoint, made on first use; keep their connection */
        struct registry_cache *cache; /* borrowed */
};

/* --- small helpers ------------------------------------------------------------ */

/* Copy s for an error message: bounded, control and non-ASCII bytes as '?',
 * so that text from outside cannot forge log lines. */
static const char *printable(const char *s, size_t len, char *buf, size_t size) {
        size_t n = 0;

        for (size_t i = 0; i < len && n + 1 < size; i++)
                buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        buf[n] = 0;
        return buf;
}
#define PRINTABLE(s) printable((s), strnlen((s), 128), (char[129]){}, 129)

static bool terminated(const char *buf, size_t size) {
        return memchr(buf, 0, size) != NULL;
}

/* The canonical text form (what inet_ntop prints), so that one address has
 * exactly one key. */
static bool canonical_address(const char *s) {
        char again[INET6_ADDRSTRLEN];
        uint8_t a[16];
        int af = strchr(s, ':') ? AF_INET6 : AF_INET;

        return inet_pton(af, s, a) == 1 && inet_ntop(af, a, again, sizeof(again)) && streq(again, s);
}

/* Decimal digits without sign, space or leading zero (validate.h's checks
 * go through strtol, which lets " 80" and "080" pass). */
static bool canonical_number(const char *s, size_t max_digits) {
        size_t n = strlen(s);

        if (n == 0 || n > max_digits || (n > 1 && s[0] == '0'))
                return false;
        return strspn(s, "0123456789") == n;
}

static bool canonical_endpoint(const char *s) {
        const char *colon = strrchr(s, ':');

        return valid_endpoint(s) && colon && canonical_number(colon + 1, 5);
}

static bool lowercase_uuid(const char *s) {
        if (!valid_uuid(s))
                return false;
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'F')
                        return false;
        return true;
}

/* --- member records -------------------------------------------------------------- */

static const char *const member_fields[] = {
        "name",     "role",     "meshAddress", "wireguardPublicKey", "endpoint", "diskUuid",
        "joinTime", "lastSeen", "akName",      NULL,
};

/* "" (not recorded) or "000b" + 64 lowercase hex digits. */
static bool valid_ak_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0)
                return true;
        return n == REGISTRY_AK_NAME_HEX && strncmp(s, "000b", 4) == 0 &&
               strspn(s, "0123456789abcdef") == REGISTRY_AK_NAME_HEX;
}

int registry_member_validate(const struct registry_member *m, struct errmsg *e) {
        struct {
                const char *field;
                const char *buf;
                size_t size;
                bool (*valid)(const char *s);
        } fields[] = {
                { "name", m->name, sizeof(m->name), valid_node_name },
                { "role", m->role, sizeof(m->role), valid_role },
                { "meshAddress", m->mesh_address, sizeof(m->mesh_address), canonical_address },
                { "wireguardPublicKey", m->wg_public_key, sizeof(m->wg_public_key), valid_wg_key },
                { "endpoint", m->endpoint, sizeof(m->endpoint), canonical_endpoint },
                { "diskUuid", m->disk_uuid, sizeof(m->disk_uuid), lowercase_uuid },
                { "akName", m->ak_name, sizeof(m->ak_name), valid_ak_name },
        };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (!terminated(fields[i].buf, fields[i].size))
                        return errmsg_set(e, EINVAL, "member: field '%s' is not terminated",
                                          fields[i].field);
                if (!fields[i].valid(fields[i].buf))
                        return errmsg_set(e, EINVAL, "member: field '%s' has an invalid value \"%s\"",
                                          fields[i].field, PRINTABLE(fields[i].buf));
        }
        if (m->join_time < 0 || m->join_time > REGISTRY_MAX_TIME)
                return errmsg_set(e, EINVAL, "member: field 'joinTime' is out of range");
        if (m->last_seen < 0 || m->last_seen > REGISTRY_MAX_TIME)
                return errmsg_set(e, EINVAL, "member: field 'lastSeen' is out of range");
        return 0;
}

int registry_member_parse(const char *buf, size_t len, struct registry_member *ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct registry_member m = {};
        struct errmsg inner = {};
        int r;

        if (len > REGISTRY_MAX_MEMBER_JSON)
                return errmsg_set(e, EFBIG, "member: record larger than %u bytes", REGISTRY_MAX_MEMBER_JSON);
        r = json_parse(buf, len, &o, e);
        if (r < 0) {
                errmsg_prefix(e, "member");
                return r;
        }
        r = json_check_fields(o, member_fields, e);
        if (r < 0) {
                errmsg_prefix(e, "member");
                return r;
        }
        if ((r = json_get_string_buf(o, "name", m.name, sizeof(m.name), &inner)) < 0 ||
            (r = json_get_string_buf(o, "role", m.role, sizeof(m.role), &inner)) < 0 ||
            (r = json_get_string_buf(o, "meshAddress", m.mesh_address, sizeof(m.mesh_address), &inner)) <
                    0 ||
            (r = json_get_string_buf(o, "wireguardPublicKey", m.wg_public_key, sizeof(m.wg_public_key),
                                     &inner)) < 0 ||
            (r = json_get_string_buf(o, "endpoint", m.endpoint, sizeof(m.endpoint), &inner)) < 0 ||
            (r = json_get_string_buf(o, "diskUuid", m.disk_uuid, sizeof(m.disk_uuid), &inner)) < 0 ||
            (r = json_get_int(o, "joinTime", &m.join_time, &inner)) < 0 ||
            (r = json_get_int(o, "lastSeen", &m.last_seen, &inner)) < 0 ||
            (json_object_object_get_ex(o, "akName", NULL) &&
             (r = json_get_string_buf(o, "akName", m.ak_name, sizeof(m.ak_name), &inner)) < 0)) {
                errmsg_set(e, EBADMSG, "member: %s", inner.text);
                return r;
        }
        /* Absent and empty are one thing; only one of them is written. */
        if (json_object_object_get_ex(o, "akName", NULL) && !m.ak_name[0])
                return errmsg_set(e, EBADMSG, "member: field 'akName' is empty (omit it instead)");
        r = registry_member_validate(&m, &inner);
        if (r < 0)
                return errmsg_set(e, EBADMSG, "%s", inner.text);
        *ret = m;
        return 0;
}

int registry_member_to_json(const struct registry_member *m, char **ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s;
        size_t len;
        char *copy;
        int r;

        r = registry_member_validate(m, e);
        if (r < 0)
                return r;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (json_add_string(o, "name", m->name) < 0 || json_add_string(o, "role", m->role) < 0 ||
            json_add_string(o, "meshAddress", m->mesh_address) < 0 ||
            json_add_string(o, "wireguardPublicKey", m->wg_public_key) < 0 ||
            json_add_string(o, "endpoint", m->endpoint) < 0 ||
            json_add_string(o, "diskUuid", m->disk_uuid) < 0 ||
            json_add_int(o, "joinTime", m->join_time) < 0 || json_add_int(o, "lastSeen", m->last_seen) < 0 ||
            (m->ak_name[0] && json_add_string(o, "akName", m->ak_name) < 0))
                return -ENOMEM;
        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* --- etcd responses (pure) ----------------------------------------------------- */

void registry_range_done(struct registry_range *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_kvs; i++) {
                free(r->kvs[i].key);
                free(r->kvs[i].value);
        }
        free(r->kvs);
        *r = (struct registry_range){};
}

void registry_txn_done(struct registry_txn *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_responses; i++)
                registry_range_done(&t->responses[i].range);
        free(t->responses);
        *t = (struct registry_txn){};
}

/* etcd's int64 fields: a JSON string of decimal digits, omitted when 0. */
static int get_int64_string(json_object *o, const char *field, bool required, int64_t *ret,
                            struct errmsg *e) {
        json_object *v;
        const char *s;
        size_t len;
        int64_t x = 0;

        if (!json_object_object_get_ex(o, field, &v) || !v) {
                if (required)
                        return errmsg_set(e, EBADMSG, "missing field '%s'", field);
                *ret = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return errmsg_set(e, EBADMSG, "field '%s' must be an int64 as a string", field);
        s = json_object_get_string(v);
        len = (size_t) json_object_get_string_len(v);
        if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
                return errmsg_set(e, EBADMSG, "field '%s' is not a canonical non-negative integer", field);
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return errmsg_set(e, EBADMSG, "field '%s' is not a canonical non-negative integer",
                                          field);
                if (x > (INT64_MAX - (s[i] - '0')) / 10)
                        return errmsg_set(e, EBADMSG, "field '%s' overflows int64", field);
                x = x * 10 + (s[i] - '0');
        }
        *ret = x;
        return 0;
}

static int get_bool_optional(json_object *o, const char *field, bool *ret, struct errmsg *e) {
        json_object *v;

        if (!json_object_object_get_ex(o, field, &v) || !v) {
                *ret = false;
                return 0;
        }
        return json_get_bool(o, field, ret, e);
}

/* A base64 field decoded into a NUL-terminated heap string. */
static int get_bytes(json_object *o, const char *field, bool required, size_t max, char **ret,
                     size_t *ret_size, struct errmsg *e) {
        _cleanup_free_ uint8_t *d = NULL;
        json_object *v;
        size_t n = 0;
        char *s;
        int r;

        if (!json_object_object_get_ex(o, field, &v) || !v) {
                if (required)
                        return errmsg_set(e, EBADMSG, "missing field '%s'", field);
        } else {
                r = json_get_base64(o, field, max, &d, &n, e);
                if (r < 0)
                        return r;
        }
        s = malloc(n + 1);
        if (!s)
                return -ENOMEM;
        if (n)
                memcpy(s, d, n);
        s[n] = 0;
        *ret = s;
        *ret_size = n;
        return 0;
}

static int parse_kv(json_object *o, struct registry_kv *ret, struct errmsg *e) {
        struct registry_kv kv = {};
        int r;

        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "not a JSON object");
        if ((r = get_bytes(o, "key", true, REGISTRY_MAX_KEY, &kv.key, &kv.key_size, e)) < 0 ||
            (r = get_bytes(o, "value", false, REGISTRY_MAX_VALUE, &kv.value, &kv.value_size, e)) < 0 ||
            (r = get_int64_string(o, "create_revision", false, &kv.create_revision, e)) < 0 ||
            (r = get_int64_string(o, "mod_revision", false, &kv.mod_revision, e)) < 0 ||
            (r = get_int64_string(o, "version", false, &kv.version, e)) < 0) {
                free(kv.key);
                free(kv.value);
                return r;
        }
        if (kv.key_size == 0) {
                free(kv.key);
                free(kv.value);
                return errmsg_set(e, EBADMSG, "empty key");
        }
        *ret = kv;
        return 0;
}

/* The body of a RangeResponse (top level or inside a txn). */
static int parse_range_object(json_object *o, size_t max_kvs, struct registry_range *ret, struct errmsg *e) {
        struct registry_range rr = {};
        json_object *kvs = NULL;
        size_t n = 0;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "range response is not a JSON object");
        if (json_object_object_get_ex(o, "kvs", &kvs) && kvs) {
                r = json_get_array(o, "kvs", &kvs, e);
                if (r < 0)
                        return r;
                n = json_object_array_length(kvs);
                if (n > max_kvs)
                        return errmsg_set(e, EFBIG, "range response holds %zu keys, more than %zu", n,
                                          max_kvs);
        }
        if ((r = get_int64_string(o, "count", false, &rr.count, e)) < 0 ||
            (r = get_bool_optional(o, "more", &rr.more, e)) < 0)
                return r;
        if (rr.count < (int64_t) n)
                return errmsg_set(e, EBADMSG, "range response counts %lld keys but holds %zu",
                                  (long long) rr.count, n);
        if (n > 0) {
                rr.kvs = calloc(n, sizeof(rr.kvs[0]));
                if (!rr.kvs)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                r = parse_kv(json_object_array_get_idx(kvs, i), &rr.kvs[i], e);
                if (r < 0) {
                        errmsg_prefix(e, "kvs[%zu]", i);
                        registry_range_done(&rr);
                        return r;
                }
                rr.n_kvs++;
        }
        *ret = rr;
        return 0;
}

/* Parse and check the envelope shared by all responses: a JSON object with
 * a header carrying the store's revision. */
static int parse_envelope(const char *buf, size_t len, json_object **ret, int64_t *ret_revision,
                          struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *header;
        int64_t rev;
        int r;

        if (len > REGISTRY_MAX_RESPONSE)
                return errmsg_set(e, EFBIG, "response larger than %u bytes", REGISTRY_MAX_RESPONSE);
        r = json_parse(buf, len, &o, e);
        if (r < 0)
                return r;
        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "response is not a JSON object");
        if ((r = json_get_object(o, "header", &header, e)) < 0 ||
            (r = get_int64_string(header, "revision", true, &rev, e)) < 0) {
                errmsg_prefix(e, "header");
                return r;
        }
        if (rev <= 0)
                return errmsg_set(e, EBADMSG, "header: revision must be positive");
        *ret = TAKE_PTR(o);
        *ret_revision = rev;
        return 0;
}

int registry_parse_range_response(const char *buf, size_t len, size_t max_kvs, struct registry_range *ret,
                                  struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct registry_range rr = {};
        int64_t rev;
        int r;

        r = parse_envelope(buf, len, &o, &rev, e);
        if (r >= 0)
                r = parse_range_object(o, max_kvs, &rr, e);
        if (r < 0) {
                errmsg_prefix(e, "etcd range response");
                return r;
        }
        rr.revision = rev;
        *ret = rr;
        return 0;
}

static int parse_op_response(json_object *o, size_t max_kvs, struct registry_op_response *ret,
                             struct errmsg *e) {
        struct registry_op_response op = {};
        json_object *v;
        int r, found = 0;

        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "not a JSON object");
        json_object_object_foreach(o, key, val) {
                (void) val;
                if (streq(key, "response_range"))
                        op.type = REGISTRY_OP_RANGE;
                else if (streq(key, "response_put"))
                        op.type = REGISTRY_OP_PUT;
                else if (streq(key, "response_delete_range"))
                        op.type = REGISTRY_OP_DELETE_RANGE;
                else
                        return errmsg_set(e, EBADMSG, "unexpected field '%.64s'", key);
                found++;
        }
        if (found != 1)
                return errmsg_set(e, EBADMSG, "expected exactly one response, got %d", found);
        switch (op.type) {
        case REGISTRY_OP_RANGE:
                r = json_get_object(o, "response_range", &v, e);
                if (r >= 0)
                        r = parse_range_object(v, max_kvs, &op.range, e);
                break;
        case REGISTRY_OP_PUT:
                r = json_get_object(o, "response_put", &v, e);
                break;
        case REGISTRY_OP_DELETE_RANGE:
                r = json_get_object(o, "response_delete_range", &v, e);
                if (r >= 0)
                        r = get_int64_string(v, "deleted", false, &op.deleted, e);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0)
                return r;
        *ret = op;
        return 0;
}

int registry_parse_txn_response(const char *buf, size_t len, size_t max_kvs, struct registry_txn *ret,
                                struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct registry_txn t = {};
        json_object *arr = NULL;
        size_t n = 0;
        int r;

        r = parse_envelope(buf, len, &o, &t.revision, e);
        if (r >= 0)
                r = get_bool_optional(o, "succeeded", &t.succeeded, e);
        if (r >= 0 && json_object_object_get_ex(o, "responses", &arr) && arr) {
                r = json_get_array(o, "responses", &arr, e);
                if (r >= 0) {
                        n = json_object_array_length(arr);
                        if (n > REGISTRY_MAX_TXN_OPS)
                                r = errmsg_set(e, EBADMSG, "more than %u responses", REGISTRY_MAX_TXN_OPS);
                }
        }
        if (r >= 0 && n > 0) {
                t.responses = calloc(n, sizeof(t.responses[0]));
                if (!t.responses)
                        return -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = parse_op_response(json_object_array_get_idx(arr, i), max_kvs, &t.responses[i], e);
                if (r < 0)
                        errmsg_prefix(e, "responses[%zu]", i);
                else
                        t.n_responses++;
        }
        if (r < 0) {
                registry_txn_done(&t);
                errmsg_prefix(e, "etcd txn response");
                return r;
        }
        *ret = t;
        return 0;
}

static int grpc_to_errno(int64_t code) {
        switch (code) {
        case 1:
                return ECANCELED;
        case 3:
                return EINVAL;
        case 4:
                return ETIMEDOUT;
        case 5:
                return ENOENT;
        case 6:
                return EEXIST;
        case 7:
                return EACCES;
        case 8:
                return ENOSPC;
        case 9:
                return EBUSY;
        case 10:
                return EAGAIN;
        case 11:
                return ERANGE;
        case 12:
                return EOPNOTSUPP;
        case 14:
                return EAGAIN;
        case 16:
                return EACCES;
        case 2:
        case 13:
        case 15:
                return EIO;
        default:
                return EPROTO;
        }
}

int registry_parse_error_response(const char *buf, size_t len, int *ret_grpc_code, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct errmsg inner = {};
        const char *msg;
        int64_t code;
        char tmp[201], why[101];

        *ret_grpc_code = -1;
        if (len > REGISTRY_MAX_RESPONSE || json_parse(buf, len, &o, &inner) < 0 ||
            !json_object_is_type(o, json_type_object) || json_get_int(o, "code", &code, &inner) < 0 ||
            json_get_string(o, "message", &msg, &inner) < 0)
                return errmsg_set(
                        e, EPROTO, "not an etcd error response (%s): \"%s\"",
                        printable(errmsg_str(&inner), strlen(errmsg_str(&inner)), why, sizeof(why)),
                        printable(buf, len, tmp, sizeof(tmp)));
        if (code < 0 || code > 16)
                return errmsg_set(e, EPROTO, "etcd error with unknown code %lld", (long long) code);
        *ret_grpc_code = (int) code;
        return errmsg_set(e, grpc_to_errno(code), "%s (gRPC code %d)",
                          printable(msg, strlen(msg), tmp, sizeof(tmp)), (int) code);
}

/* --- transport ---------------------------------------------------------------------- */


static void append(char *buf, size_t size, const char *fmt, ...) _printf_(3, 4);
static void append(char *buf, size_t size, const char *fmt, ...) {
        size_t used = strlen(buf);
        va_list ap;

        if (used + 1 >= size)
                return;
        va_start(ap, fmt);
        vsnprintf(buf + used, size - used, fmt, ap);
        va_end(ap);
}

/* POST a JSON request to path on the first endpoint that answers. Returns
 * the body of a 200 answer; an etcd error becomes its errno and message. */
static int etcd_post(struct registry *reg, const char *path, json_object *req, char **ret_body,
                     size_t *ret_size, struct errmsg *e) {
        char failures[sizeof(e->text)] = "";
        const char *payload;
        size_t payload_len;
        int last = -EIO;

        payload = json_object_to_json_string_length(
                req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &payload_len);
        if (!payload)
                return -ENOMEM;
        for (size_t k = 0; k < reg->n_endpoints; k++) {
                size_t idx = (reg->current + k) % reg->n_endpoints;
                const char *ep = reg->endpoints[idx];
                struct http_request hr = {
                        .method = "POST",
                        .path = path,
                        .body = payload,
                        .body_size = payload_len,
                        .timeout_ms = reg->timeout_ms,
                        .max_response = REGISTRY_MAX_RESPONSE,
                };
                struct http_response resp = {};
                struct errmsg ee = {};
                int code, r;

                if (!reg->clients[idx]) {
                        r = http_client_new(NULL, ep, reg->tls, HTTP_CLIENT_KEEP_ALIVE | HTTP_CLIENT_VERIFY_HOST,
                                            &reg->clients[idx], &ee);
                        if (r < 0)
                                return errmsg_set(e, r, "etcd %s: %s", ep, ee.text);
                }
                r = http_client_run(reg->clients[idx], &hr, &resp, &ee);
                if (r == -EFBIG)
                        return errmsg_set(e, EFBIG, "etcd %s: response exceeds %u bytes", ep,
                                          REGISTRY_MAX_RESPONSE);
                if (r < 0) {
                        last = r;
                        append(failures, sizeof(failures), "%s%s: %s", failures[0] ? "; " : "", ep, ee.text);
                        continue;
                }
                if (resp.status == 200) {
                        reg->current = idx;
                        *ret_body = TAKE_PTR(resp.body);
                        *ret_size = resp.body_size;
                        return 0;
                }
                r = registry_parse_error_response(resp.body, resp.body_size, &code, &ee);
                if (code == GRPC_UNAVAILABLE || resp.status == 502 || resp.status == 503) {
                        /* No leader, or shutting down: another member may serve. */
                        last = r;
                        append(failures, sizeof(failures), "%s%s: HTTP %ld: %s", failures[0] ? "; " : "", ep,
                               resp.status, ee.text);
                        http_response_done(&resp);
                        continue;
                }
                reg->current = idx;
                r = errmsg_set(e, r, "etcd %s: HTTP %ld: %s", ep, resp.status, ee.text);
                http_response_done(&resp);
                return r;
        }
        return errmsg_set(e, last, "etcd unreachable: %s", failures);
}

static int etcd_range(struct registry *reg, json_object *req, size_t max_kvs, struct registry_range *ret,
                      struct errmsg *e) {
        _cleanup_free_ char *body = NULL;
        size_t size;
        int r;

        r = etcd_post(reg, "/v3/kv/range", req, &body, &size, e);
        if (r < 0)
                return r;
        r = registry_parse_range_response(body, size, max_kvs, ret, e);
        if (r < 0)
                errmsg_prefix(e, "etcd %s", reg->endpoints[reg->current]);
        return r;
}

static int etcd_txn(struct registry *reg, json_object *req, size_t max_kvs, struct registry_txn *ret,
                    struct errmsg *e) {
        _cleanup_free_ char *body = NULL;
        size_t size;
        int r;

        r = etcd_post(reg, "/v3/kv/txn", req, &body, &size, e);
        if (r < 0)
                return r;
        r = registry_parse_txn_response(body, size, max_kvs, ret, e);
        if (r < 0)
                errmsg_prefix(e, "etcd %s", reg->endpoints[reg->current]);
        return r;
}

/* --- request building ------------------------------------------------------------ */

static int array_add(json_object *arr, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_array_add(arr, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_bytes(json_object *o, const char *field, const char *p, size_t n) {
        return json_add_base64(o, field, p, n);
}

static int add_int64(json_object *o, const char *field, int64_t v) {
        char buf[24];

        snprintf(buf, sizeof(buf), "%lld", (long long) v);
        return json_add_string(o, field, buf);
}

/* The first key after every key that starts with prefix. */
static void prefix_end(const char *prefix, char *buf, size_t size) {
        size_t n = strlen(prefix);

        assert(n > 0 && n < size);
        memcpy(buf, prefix, n + 1);
        /* Prefixes end in '/' (printable ASCII), so no carry. */
        buf[n - 1]++;
}

static json_object *range_body(const char *key, const char *range_end, bool keys_only, int64_t limit) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (add_bytes(o, "key", key, strlen(key)) < 0 ||
            (range_end && add_bytes(o, "range_end", range_end, strlen(range_end)) < 0) ||
            (keys_only && json_add_bool(o, "keys_only", true) < 0) ||
            (limit > 0 && add_int64(o, "limit", limit) < 0)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *wrap(const char *name, json_object *inner) {
        json_object *o;

        if (!inner)
                return NULL;
        o = json_object_new_object();
        if (!o || json_add(o, name, inner) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static json_object *op_range(const char *key, const char *range_end, bool keys_only, int64_t limit) {
        return wrap("request_range", range_body(key, range_end, keys_only, limit));
}

static json_object *op_put(const char *key, const char *value, size_t len) {
        json_object *o = json_object_new_object();

        if (o && (add_bytes(o, "key", key, strlen(key)) < 0 || add_bytes(o, "value", value, len) < 0))
                o = (json_object_put(o), NULL);
        return wrap("request_put", o);
}

static json_object *op_delete(const char *key) {
        json_object *o = json_object_new_object();

        if (o && add_bytes(o, "key", key, strlen(key)) < 0)
                o = (json_object_put(o), NULL);
        return wrap("request_delete_range", o);
}

/* key (or [key, range_end)) compared by target; result "EQUAL"/"LESS". */
static json_object *compare(const char *target, const char *result, const char *key, const char *range_end,
                            const char *field, int64_t number, const char *value) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (json_add_string(o, "target", target) < 0 || json_add_string(o, "result", result) < 0 ||
            add_bytes(o, "key", key, strlen(key)) < 0 ||
            (range_end && add_bytes(o, "range_end", range_end, strlen(range_end)) < 0) ||
            (value ? add_bytes(o, field, value, strlen(value)) : add_int64(o, field, number)) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* "key does not exist" */
static json_object *cmp_absent(const char *key) {
        return compare("CREATE", "EQUAL", key, NULL, "create_revision", 0, NULL);
}

/* "key exists and holds value" */
static json_object *cmp_value(const char *key, const char *value) {
        return compare("VALUE", "EQUAL", key, NULL, "value", 0, value);
}

/* "no key in [key, range_end) was written after revision rev" (true for
 * absent keys) */
static json_object *cmp_unchanged(const char *key, const char *range_end, int64_t rev) {
        return compare("MOD", "LESS", key, range_end, "mod_revision", rev + 1, NULL);
}

/* "key was last written at revision rev" (false for an absent key) */
static json_object *cmp_mod(const char *key, int64_t rev) {
        return compare("MOD", "EQUAL", key, NULL, "mod_revision", rev, NULL);
}

struct txn_req {
        json_object *o, *compare, *success, *failure;
};

static void txn_req_done(struct txn_req *t) {
        json_object_put(t->o);
}

static int txn_req_init(struct txn_req *t) {
        *t = (struct txn_req){ .o = json_object_new_object() };
        if (!t->o)
                return -ENOMEM;
        t->compare = json_object_new_array();
        if (json_add(t->o, "compare", t->compare) < 0)
                return -ENOMEM;
        t->success = json_object_new_array();
        if (json_add(t->o, "success", t->success) < 0)
                return -ENOMEM;
        t->failure = json_object_new_array();
        if (json_add(t->o, "failure", t->failure) < 0)
                return -ENOMEM;
        return 0;
}

/* --- keys ----------------------------------------------------------------------- */

static void make_key(const struct registry *reg, char buf[static KEY_BUF], const char *kind,
                     const char *suffix) {
        snprintf(buf, KEY_BUF, "%s%s/%s", reg->prefix, kind, suffix ? suffix : "");
}

/* The only range response of a txn at index i, checked for shape. */
static int txn_range(const struct registry_txn *t, size_t i, struct registry_range **ret, struct errmsg *e) {
        if (i >= t->n_responses || t->responses[i].type != REGISTRY_OP_RANGE)
                return errmsg_set(e, EBADMSG, "etcd txn response: response %zu is missing or not a range",
                                  i);
        *ret = &t->responses[i].range;
        return 0;
}

/* The single pair a range on one key can give, or NULL; checks the key. */
static int single_kv(const struct registry_range *rr, const char *key, const struct registry_kv **ret,
                     struct errmsg *e) {
        if (rr->n_kvs == 0) {
                *ret = NULL;
                return 0;
        }
        if (rr->n_kvs != 1 || rr->kvs[0].key_size != strlen(key) ||
            memcmp(rr->kvs[0].key, key, rr->kvs[0].key_size))
                return errmsg_set(e, EBADMSG, "etcd answered for other keys than \"%s\"", PRINTABLE(key));
        *ret = &rr->kvs[0];
        return 0;
}

/* A value that must be a node name. */
static int kv_node_name(const struct registry_kv *kv, char ret[static NODE_NAME_MAX + 1], struct errmsg *e) {
        if (kv->value_size > NODE_NAME_MAX || strlen(kv->value) != kv->value_size ||
            !valid_node_name(kv->value))
                return errmsg_set(e, EBADMSG, "registry key \"%s\" does not hold a node name",
                                  PRINTABLE(kv->key));
        memcpy(ret, kv->value, kv->value_size + 1);
        return 0;
}

static int kv_address(const struct registry_kv *kv, char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        if (kv->value_size >= INET6_ADDRSTRLEN || strlen(kv->value) != kv->value_size ||
            !canonical_address(kv->value))
                return errmsg_set(e, EBADMSG, "registry key \"%s\" does not hold an address",
                                  PRINTABLE(kv->key));
        memcpy(ret, kv->value, kv->value_size + 1);
        return 0;
}

static int kv_member(const struct registry_kv *kv, size_t prefix_len, struct registry_member *ret,
                     struct errmsg *e) {
        struct registry_member m;
        int r;

        r = registry_member_parse(kv->value, kv->value_size, &m, e);
        if (r < 0) {
                errmsg_prefix(e, "registry key \"%s\"", PRINTABLE(kv->key));
                return r;
        }
        if (kv->key_size != prefix_len + strlen(m.name) || !streq(kv->key + prefix_len, m.name))
                return errmsg_set(e, EBADMSG, "registry key \"%s\" holds the record of member '%s'",
                                  PRINTABLE(kv->key), m.name);
        m.mod_revision = kv->mod_revision;
        *ret = m;
        return 0;
}

static int check_name(const char *name, struct errmsg *e) {
        if (!name || !valid_node_name(name))
                return errmsg_set(e, EINVAL, "invalid node name \"%s\"", name ? PRINTABLE(name) : "(null)");
        return 0;
}

static int normalize_uuid(const char *uuid, char ret[static UUID_STRING_SIZE], struct errmsg *e) {
        if (!uuid || !valid_uuid(uuid))
                return errmsg_set(e, EINVAL, "invalid disk UUID \"%s\"", uuid ? PRINTABLE(uuid) : "(null)");
        for (size_t i = 0; i < UUID_STRING_SIZE; i++)
                ret[i] = (uuid[i] >= 'A' && uuid[i] <= 'F') ? (char) (uuid[i] - 'A' + 'a') : uuid[i];
        return 0;
}

/* --- handle ------------------------------------------------------------------------ */

static int check_file(const char *what, const char *path, struct errmsg *e) {
        if (path && access(path, R_OK) < 0)
                return errmsg_set(e, errno, "registry: cannot read %s \"%s\": %s", what, PRINTABLE(path),
                                  strerror(errno));
        return 0;
}

int registry_new(const struct registry_config *cfg, struct registry **ret, struct errmsg *e) {
        _cleanup_registry_ struct registry *reg = NULL;
        const char *prefix = cfg->prefix ? cfg->prefix : REGISTRY_DEFAULT_PREFIX;
        size_t plen = strlen(prefix);
        bool https = false;
        int r;

        if (cfg->n_endpoints == 0 || cfg->n_endpoints > REGISTRY_MAX_ENDPOINTS)
                return errmsg_set(e, EINVAL, "registry: between 1 and %u etcd endpoints are needed",
                                  REGISTRY_MAX_ENDPOINTS);
        if (plen == 0 || plen > REGISTRY_PREFIX_MAX || prefix[plen - 1] != '/')
                return errmsg_set(e, EINVAL,
                                  "registry: key prefix \"%s\" must be 1-%u characters ending in '/'",
                                  PRINTABLE(prefix), REGISTRY_PREFIX_MAX);
        for (size_t i = 0; i < plen; i++)
                if (prefix[i] <= 0x20 || prefix[i] >= 0x7f)
                        return errmsg_set(e, EINVAL,
                                          "registry: key prefix must be printable ASCII without spaces");
        if (!cfg->cert_file != !cfg->key_file)
                return errmsg_set(e, EINVAL, "registry: a client certificate needs its key and vice versa");
        if ((r = check_file("CA file", cfg->ca_file, e)) < 0 ||
            (r = check_file("client certificate", cfg->cert_file, e)) < 0 ||
            (r = check_file("client key", cfg->key_file, e)) < 0)
                return r;

        reg = calloc(1, sizeof(*reg));
        if (!reg)
                return -ENOMEM;
        memcpy(reg->prefix, prefix, plen + 1);
        reg->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
        reg->endpoints = calloc(cfg->n_endpoints, sizeof(char *));
        if (!reg->endpoints)
                return -ENOMEM;
        for (size_t i = 0; i < cfg->n_endpoints; i++) {
                const char *ep = cfg->endpoints[i];
                size_t n = ep ? strlen(ep) : 0;
                struct http_url u;
                bool ok = n > 0 && n < ENDPOINT_URL_MAX &&
                          (strncmp(ep, "http://", 7) == 0 || strncmp(ep, "https://", 8) == 0);

                for (size_t j = 0; ok && j < n; j++)
                        ok = ep[j] > 0x20 && ep[j] < 0x7f;
                if (!ok)
                        return errmsg_set(e, EINVAL,
                                          "registry: etcd endpoint \"%s\" is not an http:// or https:// URL",
                                          ep ? PRINTABLE(ep) : "(null)");
                while (n > 0 && ep[n - 1] == '/')
                        n--;
                reg->endpoints[i] = strndup(ep, n);
                if (!reg->endpoints[i])
                        return -ENOMEM;
                reg->n_endpoints++;
                if (http_url_parse(reg->endpoints[i], &u, NULL) < 0)
                        return errmsg_set(e, EINVAL, "registry: etcd endpoint \"%s\" is not a valid URL",
                                          PRINTABLE(ep));
                https = https || u.tls;
        }

        reg->clients = calloc(reg->n_endpoints, sizeof(struct http_client *));
        if (!reg->clients)
                return -ENOMEM;
        if (https) {
                r = http_tls_ctx_new(cfg->ca_file, cfg->cert_file, cfg->key_file, &reg->tls, e);
                if (r < 0) {
                        errmsg_prefix(e, "registry");
                        return r;
                }
        }
        *ret = TAKE_PTR(reg);
        return 0;
}

struct registry *registry_free(struct registry *reg) {
        if (!reg)
                return NULL;
        for (size_t i = 0; reg->clients && i < reg->n_endpoints; i++)
                http_client_free(reg->clients[i]);
        free(reg->clients);
        SSL_CTX_free(reg->tls);
        for (size_t i = 0; i < reg->n_endpoints; i++)
                free(reg->endpoints[i]);
        free(reg->endpoints);
        free(reg);
        return NULL;
}

/* --- members ----------------------------------------------------------------------- */

int registry_put_member(struct registry *reg, const struct registry_member *m, struct errmsg *e) {
        _cleanup_(txn_req_done) struct txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        _cleanup_free_ char *json = NULL;
        char key[KEY_BUF], mesh[KEY_BUF], disk[KEY_BUF], holder[NODE_NAME_MAX + 1];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        r = registry_member_to_json(m, &json, e);
        if (r < 0)
                return r;
        make_key(reg, key, "members", m->name);
        make_key(reg, mesh, "mesh", m->mesh_address);
        make_key(reg, disk, "disks", m->disk_uuid);
        if ((r = txn_req_init(&t)) < 0 || (r = array_add(t.compare, cmp_value(mesh, m->name))) < 0 ||
            (r = array_add(t.compare, cmp_value(disk, m->name))) < 0 ||
            (r = array_add(t.success, op_put(key, json, strlen(json)))) < 0 ||
            (r = array_add(t.failure, op_range(mesh, NULL, false, 0))) < 0 ||
            (r = array_add(t.failure, op_range(disk, NULL, false, 0))) < 0)
                return r;
        r = etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 0;

        /* Say which of the two the node does not hold. */
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, mesh, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, EADDRNOTAVAIL, "member '%s': mesh address %s is not allocated", m->name,
                                  m->mesh_address);
        if (kv->value_size != strlen(m->name) || memcmp(kv->value, m->name, kv->value_size) != 0) {
                r = kv_node_name(kv, holder, e);
                return r < 0 ? r
                             : errmsg_set(e, EADDRINUSE, "member '%s': mesh address %s is held by node '%s'",
                                          m->name, m->mesh_address, holder);
        }
        if ((r = txn_range(&res, 1, &rr, e)) < 0 || (r = single_kv(rr, disk, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "member '%s': disk %s is not registered", m->name,
                                  m->disk_uuid);
        r = kv_node_name(kv, holder, e);
        if (r < 0)
                return r;
        if (!streq(holder, m->name))
                return errmsg_set(e, EEXIST, "member '%s': disk %s belongs to node '%s'", m->name,
                                  m->disk_uuid, holder);
        /* Both hold now: changed between the comparison and the read. */
        return errmsg_set(e, EAGAIN, "member '%s': registry changed concurrently, try again", m->name);
}

int registry_get_member(struct registry *reg, const char *name, struct registry_member *ret,
                        struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        _cleanup_(registry_range_done) struct registry_range rr = {};
        char key[KEY_BUF];
        const struct registry_kv *kv;
        int r;

        r = check_name(name, e);
        if (r < 0)
                return r;
        make_key(reg, key, "members", name);
        req = range_body(key, NULL, false, 0);
        if (!req)
                return -ENOMEM;
        if ((r = etcd_range(reg, req, 1, &rr, e)) < 0 || (r = single_kv(&rr, key, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "no member '%s'", name);
        return kv_member(kv, strlen(key) - strlen(name), ret, e);
}

struct registry_cache {
        pthread_mutex_t lock;
        struct registry_member *members; /* sorted by name */
        size_t n, cap;
        int64_t revision; /* of the store when last read; 0: nothing read */
};

int registry_cache_new(struct registry_cache **ret) {
        struct registry_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        *ret = c;
        return 0;
}

struct registry_cache *registry_cache_free(struct registry_cache *c) {
        if (!c)
                return NULL;
        pthread_mutex_destroy(&c->lock);
        free(c->members);
        free(c);
        return NULL;
}

void registry_set_cache(struct registry *reg, struct registry_cache *c) {
        reg->cache = c;
}

/* Members with records written after revision `since` (0: all), as etcd
 * has them now; *ret_count is how many members there are in all. */
static int read_members(struct registry *reg, int64_t since, struct registry_member **ret, size_t *ret_n,
                        int64_t *ret_count, int64_t *ret_revision, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        _cleanup_(registry_range_done) struct registry_range rr = {};
        _cleanup_free_ struct registry_member *list = NULL;
        char key[KEY_BUF], end[KEY_BUF];
        size_t plen;
        int r;

        make_key(reg, key, "members", NULL);
        prefix_end(key, end, sizeof(end));
        plen = strlen(key);
        req = range_body(key, end, false, REGISTRY_MAX_MEMBERS);
        /* etcd still counts every key of the range, filtered or not. */
        if (!req || (since > 0 && add_int64(req, "min_mod_revision", since + 1) < 0))
                return -ENOMEM;
        r = etcd_range(reg, req, REGISTRY_MAX_MEMBERS, &rr, e);
        if (r < 0)
                return r;
        if (rr.more || rr.count > REGISTRY_MAX_MEMBERS)
                return errmsg_set(e, EFBIG, "registry holds more than %u members", REGISTRY_MAX_MEMBERS);
        if (rr.n_kvs > 0) {
                list = calloc(rr.n_kvs, sizeof(list[0]));
                if (!list)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < rr.n_kvs; i++) {
                if (rr.kvs[i].key_size <= plen || memcmp(rr.kvs[i].key, key, plen) != 0)
                        return errmsg_set(e, EBADMSG, "etcd answered with key \"%s\" outside \"%s\"",
                                          PRINTABLE(rr.kvs[i].key), key);
                r = kv_member(&rr.kvs[i], plen, &list[i], e);
                if (r < 0)
                        return r;
        }
        *ret_n = rr.n_kvs;
        *ret = TAKE_PTR(list);
        *ret_count = rr.count;
        *ret_revision = rr.revision;
        return 0;
}

static int cmp_member_name(const void *a, const void *b) {
        return strcmp(((const struct registry_member *) a)->name, ((const struct registry_member *) b)->name);
}

/* Merge records written since the cache's revision into it; stale after a
 * deletion (the count tells), then the caller reads everything. */
static int cache_merge(struct registry_cache *c, const struct registry_member *changed, size_t n_changed,
                       int64_t count, int64_t revision, bool *ret_stale) {
        for (size_t i = 0; i < n_changed; i++) {
                struct registry_member *hit =
                        c->n ? bsearch(&changed[i], c->members, c->n, sizeof(c->members[0]), cmp_member_name)
                             : NULL;
                size_t at;

                if (hit) {
                        *hit = changed[i];
                        continue;
                }
                if (c->n == c->cap) {
                        size_t cap = c->cap ? c->cap * 2 : 64;
                        struct registry_member *m = reallocarray(c->members, cap, sizeof(c->members[0]));

                        if (!m)
                                return -ENOMEM;
                        c->members = m;
                        c->cap = cap;
                }
                for (at = c->n; at > 0 && strcmp(c->members[at - 1].name, changed[i].name) > 0; at--)
                        ;
                memmove(&c->members[at + 1], &c->members[at], (c->n - at) * sizeof(c->members[0]));
                c->members[at] = changed[i];
                c->n++;
        }
        c->revision = revision;
        /* Only additions and updates came: a deletion leaves one more here. */
        *ret_stale = (int64_t) c->n != count;
        return 0;
}

static int list_cached(struct registry *reg, struct registry_cache *c, struct registry_member **ret, size_t *ret_n,
                       struct errmsg *e) {
        _cleanup_free_ struct registry_member *changed = NULL, *copy = NULL;
        size_t n_changed = 0;
        int64_t count = 0, revision = 0;
        bool stale = true;
        int r;

        if (c->revision > 0) {
                r = read_members(reg, c->revision, &changed, &n_changed, &count, &revision, e);
                if (r < 0)
                        return r;
                r = cache_merge(c, changed, n_changed, count, revision, &stale);
                if (r < 0)
                        return r;
        }
        if (stale) {
                changed = mfree(changed);
                c->revision = 0;
                c->n = 0;
                r = read_members(reg, 0, &changed, &n_changed, &count, &revision, e);
                if (r < 0)
                        return r;
                r = cache_merge(c, changed, n_changed, count, revision, &stale);
                if (r < 0)
                        return r;
        }
        if (c->n > 0) {
                copy = malloc(c->n * sizeof(copy[0]));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, c->members, c->n * sizeof(copy[0]));
        }
        *ret = TAKE_PTR(copy);
        *ret_n = c->n;
        return 0;
}

int registry_list_members(struct registry *reg, struct registry_member **ret, size_t *ret_n,
                          struct errmsg *e) {
        int64_t count, revision;
        int r;

        if (reg->cache) {
                pthread_mutex_lock(&reg->cache->lock);
                r = list_cached(reg, reg->cache, ret, ret_n, e);
                if (r < 0)
                        reg->cache->revision = 0; /* read everything next time */
                pthread_mutex_unlock(&reg->cache->lock);
                return r;
        }
        return read_members(reg, 0, ret, ret_n, &count, &revision, e);
}

int registry_delete_member(struct registry *reg, const char *name, struct errmsg *e) {
        char member[KEY_BUF], node[KEY_BUF], disks[KEY_BUF], disks_end[KEY_BUF];
        size_t dlen;
        int r;

        r = check_name(name, e);
        if (r < 0)
                return r;
        make_key(reg, member, "members", name);
        make_key(reg, node, "mesh-nodes", name);
        make_key(reg, disks, "disks", NULL);
        prefix_end(disks, disks_end, sizeof(disks_end));
        dlen = strlen(disks);

        for (unsigned round = 0; round < MAX_ROUNDS; round++) {
                _cleanup_(txn_req_done) struct txn_req snap = {}, del = {};
                _cleanup_(registry_txn_done) struct registry_txn s = {}, d = {};
                struct registry_range *rm = NULL, *rn = NULL, *rd = NULL;
                const struct registry_kv *kvm, *kvn;
                char address[INET6_ADDRSTRLEN], mesh[KEY_BUF];
                size_t n_deletes = 0;

                /* One consistent read of everything the node holds... */
                if ((r = txn_req_init(&snap)) < 0 ||
                    (r = array_add(snap.success, op_range(member, NULL, true, 0))) < 0 ||
                    (r = array_add(snap.success, op_range(node, NULL, false, 0))) < 0 ||
                    (r = array_add(snap.success, op_range(disks, disks_end, false, REGISTRY_MAX_DISKS))) < 0)
                        return r;
                r = etcd_txn(reg, snap.o, REGISTRY_MAX_DISKS, &s, e);
                if (r < 0)
                        return r;
                if ((r = txn_range(&s, 0, &rm, e)) < 0 || (r = txn_range(&s, 1, &rn, e)) < 0 ||
                    (r = txn_range(&s, 2, &rd, e)) < 0 || (r = single_kv(rm, member, &kvm, e)) < 0 ||
                    (r = single_kv(rn, node, &kvn, e)) < 0)
                        return r;
                if (rd->more)
                        return errmsg_set(e, EFBIG, "registry holds more than %u disks", REGISTRY_MAX_DISKS);

                /* ...deleted only if none of it changed since. */
                if ((r = txn_req_init(&del)) < 0 ||
                    (r = array_add(del.compare, cmp_unchanged(member, NULL, s.revision))) < 0 ||
                    (r = array_add(del.compare, cmp_unchanged(node, NULL, s.revision))) < 0 ||
                    (r = array_add(del.compare, cmp_unchanged(disks, disks_end, s.revision))) < 0)
                        return r;
                if (kvm) {
                        if ((r = array_add(del.success, op_delete(member))) < 0)
                                return r;
                        n_deletes++;
                }
                if (kvn) {
                        r = kv_address(kvn, address, e);
                        if (r < 0)
                                return r;
                        make_key(reg, mesh, "mesh", address);
                        if ((r = array_add(del.compare, cmp_unchanged(mesh, NULL, s.revision))) < 0 ||
                            (r = array_add(del.success, op_delete(node))) < 0 ||
                            (r = array_add(del.success, op_delete(mesh))) < 0)
                                return r;
                        n_deletes += 2;
                }
                for (size_t i = 0; i < rd->n_kvs; i++) {
                        const struct registry_kv *kv = &rd->kvs[i];
                        if (kv->key_size <= dlen || memcmp(kv->key, disks, dlen) != 0)
                                return errmsg_set(e, EBADMSG, "etcd answered with key \"%s\" outside \"%s\"",
                                                  PRINTABLE(kv->key), disks);
                        if (kv->value_size != strlen(name) || memcmp(kv->value, name, kv->value_size) != 0)
                                continue;
                        if (n_deletes + 1 > REGISTRY_MAX_TXN_OPS)
                                return errmsg_set(e, EFBIG, "node '%s' owns too many disks", name);
                        if ((r = array_add(del.success, op_delete(kv->key))) < 0)
                                return r;
                        n_deletes++;
                }
                if (n_deletes == 0)
                        return errmsg_set(e, ENOENT, "no member '%s'", name);
                r = etcd_txn(reg, del.o, 0, &d, e);
                if (r < 0)
                        return r;
                if (d.succeeded)
                        return 0;
        }
        return errmsg_set(e, EAGAIN, "deleting member '%s': the registry kept changing (%u attempts)", name,
                          MAX_ROUNDS);
}

/* --- mesh addresses ------------------------------------------------------------------ */

static int parse_cidr4(const char *cidr, uint32_t *ret_first, uint32_t *ret_last, struct errmsg *e) {
        struct in_addr a;
        char addr[16];
        const char *slash;
        unsigned bits;
        uint32_t net, bcast;

        if (!cidr || !valid_cidr4(cidr) || !canonical_number(strchr(cidr, '/') + 1, 2))
                return errmsg_set(e, EINVAL, "invalid IPv4 CIDR \"%s\" (a.b.c.d/n, host bits zero)",
                                  cidr ? PRINTABLE(cidr) : "(null)");
        slash = strchr(cidr, '/');
        memcpy(addr, cidr, (size_t) (slash - cidr));
        addr[slash - cidr] = 0;
        if (inet_pton(AF_INET, addr, &a) != 1)
                return -EINVAL;
        bits = (unsigned) strtoul(slash + 1, NULL, 10);
        if (bits > 30)
                return errmsg_set(e, EINVAL, "CIDR %s leaves no address to hand out", cidr);
        net = ntohl(a.s_addr);
        bcast = net | (bits == 0 ? UINT32_MAX : (UINT32_MAX >> bits));
        /* Skip the network address and reserve the first host address. */
        *ret_first = net + 2;
        *ret_last = bcast - 1;
        return 0;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* The addresses in [first, last] that have a key under <prefix>mesh/, sorted. */
static int used_addresses(struct registry *reg, uint32_t first, uint32_t last, uint32_t **ret, size_t *ret_n,
                          struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        _cleanup_(registry_range_done) struct registry_range rr = {};
        _cleanup_free_ uint32_t *used = NULL;
        char key[KEY_BUF], end[KEY_BUF];
        size_t plen, n = 0;
        int r;

        make_key(reg, key, "mesh", NULL);
        prefix_end(key, end, sizeof(end));
        plen = strlen(key);
        req = range_body(key, end, true, REGISTRY_MAX_ADDRESSES);
        if (!req)
                return -ENOMEM;
        r = etcd_range(reg, req, REGISTRY_MAX_ADDRESSES, &rr, e);
        if (r < 0)
                return r;
        if (rr.more)
                return errmsg_set(e, ENOSPC, "registry holds more than %u mesh addresses",
                                  REGISTRY_MAX_ADDRESSES);
        used = calloc(rr.n_kvs + 1, sizeof(uint32_t));
        if (!used)
                return -ENOMEM;
        for (size_t i = 0; i < rr.n_kvs; i++) {
                struct in_addr a;
                uint32_t h;

                if (rr.kvs[i].key_size <= plen || memcmp(rr.kvs[i].key, key, plen) != 0)
                        return errmsg_set(e, EBADMSG, "etcd answered with key \"%s\" outside \"%s\"",
                                          PRINTABLE(rr.kvs[i].key), key);
                /* Other families and ranges share the prefix: not ours. */
                if (inet_pton(AF_INET, rr.kvs[i].key + plen, &a) != 1)
                        continue;
                h = ntohl(a.s_addr);
                if (h >= first && h <= last)
                        used[n++] = h;
        }
        qsort(used, n, sizeof(uint32_t), cmp_u32);
        *ret = TAKE_PTR(used);
        *ret_n = n;
        return 0;
}

/* Claim address for node. 1 if claimed, 0 if another node holds it; if the
 * node itself holds one already (a concurrent allocation), 2 with it in
 * held. */
static int claim(struct registry *reg, const char *node_name, const char *address,
                 char held[static INET6_ADDRSTRLEN], struct errmsg *e) {
        _cleanup_(txn_req_done) struct txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        char mesh[KEY_BUF], node[KEY_BUF];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        make_key(reg, mesh, "mesh", address);
        make_key(reg, node, "mesh-nodes", node_name);
        if ((r = txn_req_init(&t)) < 0 || (r = array_add(t.compare, cmp_absent(mesh))) < 0 ||
            (r = array_add(t.compare, cmp_absent(node))) < 0 ||
            (r = array_add(t.success, op_put(mesh, node_name, strlen(node_name)))) < 0 ||
            (r = array_add(t.success, op_put(node, address, strlen(address)))) < 0 ||
            (r = array_add(t.failure, op_range(node, NULL, false, 0))) < 0)
                return r;
        r = etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 1;
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, node, &kv, e)) < 0)
                return r;
        if (!kv)
                return 0;
        r = kv_address(kv, held, e);
        return r < 0 ? r : 2;
}

static int in_range(const char *address, uint32_t first, uint32_t last) {
        struct in_addr a;

        return inet_pton(AF_INET, address, &a) == 1 && ntohl(a.s_addr) >= first && ntohl(a.s_addr) <= last;
}

static int held_result(const char *node_name, const char *held, const char *cidr, uint32_t first,
                       uint32_t last, char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        if (!in_range(held, first, last))
                return errmsg_set(e, EADDRINUSE, "node '%s' holds mesh address %s outside %s", node_name,
                                  held, cidr);
        memcpy(ret, held, strlen(held) + 1);
        return 0;
}

/* Random picks before the used addresses are read: with a range at most
 * half full, 8 conflicts in a row come with probability <= 1/256. */
#define PROBES_BEFORE_SCAN 8
#define MAX_CONFLICTS 256

/* A candidate address in [first, last]: random while conflicts are few,
 * then a random one among those free on a fresh read (-ENOSPC if none). */
static int pick_address(struct registry *reg, uint32_t first, uint32_t last, unsigned conflicts, const char *cidr,
                        char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        uint64_t span = (uint64_t) last - first + 1, pos;
        uint32_t rnd;
        struct in_addr a;
        int r;

        r = secret_random(&rnd, sizeof(rnd));
        if (r < 0)
                return errmsg_set(e, r, "no randomness for address allocation");
        if (conflicts < PROBES_BEFORE_SCAN)
                pos = first + rnd % span;
        else {
                _cleanup_free_ uint32_t *used = NULL;
                size_t n_used = 0;

                r = used_addresses(reg, first, last, &used, &n_used, e);
                if (r < 0)
                        return r;
                if (n_used >= span)
                        return errmsg_set(e, ENOSPC, "no free mesh address left in %s", cidr);
                /* The (rnd mod free)-th free address: step over used ones below it. */
                pos = first + rnd % (span - n_used);
                for (size_t i = 0; i < n_used && used[i] <= pos; i++)
                        pos++;
        }
        a.s_addr = htonl((uint32_t) pos);
        inet_ntop(AF_INET, &a, ret, INET6_ADDRSTRLEN);
        return 0;
}

int registry_allocate_address(struct registry *reg, const char *node_name, const char *cidr,
                              char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        _cleanup_(registry_range_done) struct registry_range rr = {};
        char node[KEY_BUF], held[INET6_ADDRSTRLEN];
        const struct registry_kv *kv;
        uint32_t first = 0, last = 0;
        int r;

        if ((r = check_name(node_name, e)) < 0 || (r = parse_cidr4(cidr, &first, &last, e)) < 0)
                return r;

        /* Idempotent: an address the node holds already. */
        make_key(reg, node, "mesh-nodes", node_name);
        req = range_body(node, NULL, false, 0);
        if (!req)
                return -ENOMEM;
        if ((r = etcd_range(reg, req, 1, &rr, e)) < 0 || (r = single_kv(&rr, node, &kv, e)) < 0)
                return r;
        if (kv) {
                r = kv_address(kv, held, e);
                return r < 0 ? r : held_result(node_name, held, cidr, first, last, ret, e);
        }

        for (unsigned conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
                char address[INET6_ADDRSTRLEN];

                r = pick_address(reg, first, last, conflicts, cidr, address, e);
                if (r < 0)
                        return r;
                r = claim(reg, node_name, address, held, e);
                if (r < 0)
                        return r;
                if (r == 1) {
                        memcpy(ret, address, strlen(address) + 1);
                        return 0;
                }
                if (r == 2)
                        return held_result(node_name, held, cidr, first, last, ret, e);
                /* Taken by another node: pick again. */
        }
        return errmsg_set(e, EAGAIN, "allocating for '%s': %u addresses taken concurrently", node_name,
                          MAX_CONFLICTS);
}

/* --- joins ----------------------------------------------------------------------------- */

/* What the registry holds for a joining node, as the last failed
 * transaction saw it. */
struct join_view {
        char held[INET6_ADDRSTRLEN]; /* its address, "" if none */
        bool disk_mine;              /* its disk registered to it (else absent) */
};

static int join_txn(struct registry *reg, const struct registry_member *m, const struct join_view *v,
                    const char *address, bool *ret_done, struct join_view *ret_view, struct errmsg *e) {
        _cleanup_(txn_req_done) struct txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        _cleanup_free_ char *json = NULL;
        struct registry_member rec = *m;
        char member[KEY_BUF], node[KEY_BUF], mesh[KEY_BUF], disk[KEY_BUF], holder[NODE_NAME_MAX + 1];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        memcpy(rec.mesh_address, address, strlen(address) + 1);
        r = registry_member_to_json(&rec, &json, e);
        if (r < 0)
                return r;
        make_key(reg, member, "members", m->name);
        make_key(reg, node, "mesh-nodes", m->name);
        make_key(reg, mesh, "mesh", address);
        make_key(reg, disk, "disks", m->disk_uuid);
        if ((r = txn_req_init(&t)) < 0)
                return r;
        if (v->held[0]) {
                if ((r = array_add(t.compare, cmp_value(node, address))) < 0 ||
                    (r = array_add(t.compare, cmp_value(mesh, m->name))) < 0)
                        return r;
        } else if ((r = array_add(t.compare, cmp_absent(node))) < 0 ||
                   (r = array_add(t.compare, cmp_absent(mesh))) < 0 ||
                   (r = array_add(t.success, op_put(mesh, m->name, strlen(m->name)))) < 0 ||
                   (r = array_add(t.success, op_put(node, address, strlen(address)))) < 0)
                return r;
        if (v->disk_mine)
                r = array_add(t.compare, cmp_value(disk, m->name));
        else if ((r = array_add(t.compare, cmp_absent(disk))) >= 0)
                r = array_add(t.success, op_put(disk, m->name, strlen(m->name)));
        if (r < 0 || (r = array_add(t.success, op_put(member, json, strlen(json)))) < 0 ||
            (r = array_add(t.failure, op_range(node, NULL, false, 0))) < 0 ||
            (r = array_add(t.failure, op_range(disk, NULL, false, 0))) < 0)
                return r;
        r = etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded) {
                *ret_done = true;
                return 0;
        }
        *ret_done = false;
        *ret_view = (struct join_view){};
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, node, &kv, e)) < 0)
                return r;
        if (kv && (r = kv_address(kv, ret_view->held, e)) < 0)
                return r;
        if ((r = txn_range(&res, 1, &rr, e)) < 0 || (r = single_kv(rr, disk, &kv, e)) < 0)
                return r;
        if (kv) {
                r = kv_node_name(kv, holder, e);
                if (r < 0)
                        return r;
                if (!streq(holder, m->name))
                        return errmsg_set(e, EEXIST, "disk %s belongs to node '%s'", m->disk_uuid, holder);
                ret_view->disk_mine = true;
        }
        return 0;
}

int registry_join(struct registry *reg, struct registry_member *m, const char *cidr, struct errmsg *e) {
        struct registry_member rec = *m;
        struct join_view v = {};
        uint32_t first = 0, last = 0;
        unsigned conflicts = 0;
        int r;

        if ((r = check_name(m->name, e)) < 0 || (r = normalize_uuid(m->disk_uuid, rec.disk_uuid, e)) < 0 ||
            (r = parse_cidr4(cidr, &first, &last, e)) < 0)
                return r;
        /* Optimistic: a new node, holding nothing. A failed transaction
         * says what the node holds; only an address taken by another node
         * counts as a conflict. */
        for (unsigned round = 0; round < MAX_ROUNDS + MAX_CONFLICTS; round++) {
                char address[INET6_ADDRSTRLEN];
                struct join_view now = {};
                bool done = false;

                if (v.held[0]) {
                        r = held_result(m->name, v.held, cidr, first, last, address, e);
                        if (r < 0)
                                return r;
                } else {
                        r = pick_address(reg, first, last, conflicts, cidr, address, e);
                        if (r < 0)
                                return r;
                }
                r = join_txn(reg, &rec, &v, address, &done, &now, e);
                if (r < 0)
                        return r;
                if (done) {
                        memcpy(m->mesh_address, address, strlen(address) + 1);
                        memcpy(m->disk_uuid, rec.disk_uuid, sizeof(rec.disk_uuid));
                        return 0;
                }
                if (streq(now.held, v.held) && now.disk_mine == v.disk_mine) {
                        if (v.held[0])
                                return errmsg_set(e, EADDRINUSE,
                                                  "node '%s' holds %s by the registry's index, but the address "
                                                  "is not recorded as its own",
                                                  m->name, v.held);
                        if (++conflicts >= MAX_CONFLICTS)
                                return errmsg_set(e, EAGAIN,
                                                  "joining '%s': %u addresses taken concurrently", m->name,
                                                  conflicts);
                }
                v = now;
        }
        return errmsg_set(e, EAGAIN, "joining '%s': the registry kept changing", m->name);
}

/* Run a transaction conditional on members/<name> being at m->mod_revision
 * whose failure branch reads that key (keys only): 0 if it succeeded,
 * -ENOENT if the record is gone, -ESTALE if it changed, 1 if another of
 * its comparisons failed. */
static int member_txn(struct registry *reg, json_object *txn, const char *key, const struct registry_member *m,
                      struct errmsg *e) {
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        r = etcd_txn(reg, txn, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 0;
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, key, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "no member '%s' (removed meanwhile)", m->name);
        if (kv->mod_revision != m->mod_revision)
                return errmsg_set(e, ESTALE, "member '%s' changed meanwhile", m->name);
        return 1;
}

int registry_update_member(struct registry *reg, const struct registry_member *m, struct errmsg *e) {
        _cleanup_(txn_req_done) struct txn_req t = {};
        _cleanup_free_ char *json = NULL;
        char key[KEY_BUF], mesh[KEY_BUF], disk[KEY_BUF];
        int r;

        r = registry_member_to_json(m, &json, e);
        if (r < 0)
                return r;
        make_key(reg, key, "members", m->name);
        make_key(reg, mesh, "mesh", m->mesh_address);
        make_key(reg, disk, "disks", m->disk_uuid);
        if ((r = txn_req_init(&t)) < 0 || (r = array_add(t.compare, cmp_mod(key, m->mod_revision))) < 0 ||
            (r = array_add(t.compare, cmp_value(mesh, m->name))) < 0 ||
            (r = array_add(t.compare, cmp_value(disk, m->name))) < 0 ||
            (r = array_add(t.success, op_put(key, json, strlen(json)))) < 0 ||
            (r = array_add(t.failure, op_range(key, NULL, true, 0))) < 0)
                return r;
        r = member_txn(reg, t.o, key, m, e);
        if (r <= 0)
                return r;
        return errmsg_set(e, EADDRNOTAVAIL, "member '%s' no longer holds mesh address %s or disk %s", m->name,
                          m->mesh_address, m->disk_uuid);
}

int registry_expire_member(struct registry *reg, const struct registry_member *m, struct errmsg *e) {
        _cleanup_(txn_req_done) struct txn_req t = {};
        char key[KEY_BUF], node[KEY_BUF], mesh[KEY_BUF];
        int r;

        if ((r = check_name(m->name, e)) < 0)
                return r;
        if (!canonical_address(m->mesh_address))
                return errmsg_set(e, EINVAL, "member '%s': invalid mesh address", m->name);
        make_key(reg, key, "members", m->name);
        make_key(reg, node, "mesh-nodes", m->name);
        make_key(reg, mesh, "mesh", m->mesh_address);
        /* The address keys are compared too: they are deleted only while
         * they are this node's. */
        if ((r = txn_req_init(&t)) < 0 || (r = array_add(t.compare, cmp_mod(key, m->mod_revision))) < 0 ||
            (r = array_add(t.compare, cmp_value(node, m->mesh_address))) < 0 ||
            (r = array_add(t.compare, cmp_value(mesh, m->name))) < 0 ||
            (r = array_add(t.success, op_delete(key))) < 0 || (r = array_add(t.success, op_delete(node))) < 0 ||
            (r = array_add(t.success, op_delete(mesh))) < 0 ||
            (r = array_add(t.failure, op_range(key, NULL, true, 0))) < 0)
                return r;
        r = member_txn(reg, t.o, key, m, e);
        if (r <= 0)
                return r;
        return errmsg_set(e, EADDRNOTAVAIL, "member '%s' does not hold mesh address %s", m->name,
                          m->mesh_address);
}

/* --- disks ------------------------------------------------------------------------------ */

int registry_put_disk(struct registry *reg, const char *uuid, const char *node_name, struct errmsg *e) {
        _cleanup_(txn_req_done) struct txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        char u[UUID_STRING_SIZE], key[KEY_BUF], holder[NODE_NAME_MAX + 1];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        if ((r = check_name(node_name, e)) < 0 || (r = normalize_uuid(uuid, u, e)) < 0)
                return r;
        make_key(reg, key, "disks", u);
        if ((r = txn_req_init(&t)) < 0 || (r = array_add(t.compare, cmp_absent(key))) < 0 ||
            (r = array_add(t.success, op_put(key, node_name, strlen(node_name)))) < 0 ||
            (r = array_add(t.failure, op_range(key, NULL, false, 0))) < 0)
                return r;
        r = etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 0;
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, key, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, EAGAIN, "disk %s: registry changed concurrently, try again", u);
        r = kv_node_name(kv, holder, e);
        if (r < 0)
                return r;
        if (!streq(holder, node_name))
                return errmsg_set(e, EEXIST, "disk %s belongs to node '%s'", u, holder);
        return 0;
}

int registry_get_disk(struct registry *reg, const char *uuid, char ret_node_name[static NODE_NAME_MAX + 1],
                      struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        _cleanup_(registry_range_done) struct registry_range rr = {};
        char u[UUID_STRING_SIZE], key[KEY_BUF];
        const struct registry_kv *kv;
        int r;

        r = normalize_uuid(uuid, u, e);
        if (r < 0)
                return r;
        make_key(reg, key, "disks", u);
        req = range_body(key, NULL, false, 0);
        if (!req)
                return -ENOMEM;
        if ((r = etcd_range(reg, req, 1, &rr, e)) < 0 || (r = single_kv(&rr, key, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "disk %s is not registered", u);
        return kv_node_name(kv, ret_node_name, e);
}
