/* SPDX-License-Identifier: Apache-2.0 */
/* The registry's etcd side: the handle and its kept connections to the
 * JSON gateway (one http_client per endpoint, tried in turn), request and
 * transaction builders, and the pure parsers of etcd's answers. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encoding.h"
#include "json-util.h"
#include "registry-internal.h"

#define DEFAULT_TIMEOUT_MS 5000L
#define ENDPOINT_URL_MAX 256

/* gRPC status codes the gateway reports in error bodies. */
#define GRPC_UNAVAILABLE 14

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
                else if (streq(key, "response_txn"))
                        op.type = REGISTRY_OP_TXN;
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
        case REGISTRY_OP_TXN:
                /* A nested transaction (reg_op_delete_if): whether it
                 * succeeded; its own responses are not looked at. */
                r = json_get_object(o, "response_txn", &v, e);
                if (r >= 0)
                        r = get_bool_optional(v, "succeeded", &op.succeeded, e);
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
                return errmsg_set(e, EPROTO, "not an etcd error response (%s): \"%s\"",
                                  printable_str(errmsg_str(&inner), why, sizeof(why)),
                                  printable(buf, len, tmp, sizeof(tmp)));
        if (code < 0 || code > 16)
                return errmsg_set(e, EPROTO, "etcd error with unknown code %lld", (long long) code);
        *ret_grpc_code = (int) code;
        return errmsg_set(e, grpc_to_errno(code), "%s (gRPC code %d)", printable_str(msg, tmp, sizeof(tmp)),
                          (int) code);
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
 * the body of a 200 answer; an etcd error becomes its errno and message.
 * A request that failed on one endpoint (lost answer, timeout, "no
 * leader") may have been applied there and is sent to the next one: so
 * every request of the registry must be safe to repeat. Reads are; every
 * transaction compares what it writes over (a repeated join finds its own
 * address and record, a repeated update fails its revision compare:
 * -ESTALE, and the refresh reads again; a repeated delete or expiry finds
 * nothing to delete). A transaction without such a compare must not be
 * added. */
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
                        return errmsg_set(e, EFBIG, "etcd %s: %s (bound %u bytes)", ep, ee.text,
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

int reg_etcd_range(struct registry *reg, json_object *req, size_t max_kvs, struct registry_range *ret,
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

int reg_etcd_txn(struct registry *reg, json_object *req, size_t max_kvs, struct registry_txn *ret,
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

int reg_array_add(json_object *arr, json_object *v) {
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

int reg_add_int64(json_object *o, const char *field, int64_t v) {
        char buf[24];

        snprintf(buf, sizeof(buf), "%lld", (long long) v);
        return json_add_string(o, field, buf);
}

/* The first key after every key that starts with prefix. */
void reg_prefix_end(const char *prefix, char *buf, size_t size) {
        size_t n = strlen(prefix);

        assert(n > 0 && n < size);
        memcpy(buf, prefix, n + 1);
        /* Prefixes end in '/' (printable ASCII), so no carry. */
        buf[n - 1]++;
}

json_object *reg_range_body(const char *key, const char *range_end, bool keys_only, int64_t limit) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (add_bytes(o, "key", key, strlen(key)) < 0 ||
            (range_end && add_bytes(o, "range_end", range_end, strlen(range_end)) < 0) ||
            (keys_only && json_add_bool(o, "keys_only", true) < 0) ||
            (limit > 0 && reg_add_int64(o, "limit", limit) < 0)) {
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
        if (!o) {
                json_object_put(inner);
                return NULL;
        }
        if (json_add(o, name, inner) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

json_object *reg_op_range(const char *key, const char *range_end, bool keys_only, int64_t limit) {
        return wrap("request_range", reg_range_body(key, range_end, keys_only, limit));
}

json_object *reg_op_put(const char *key, const char *value, size_t len) {
        json_object *o = json_object_new_object();

        if (o && (add_bytes(o, "key", key, strlen(key)) < 0 || add_bytes(o, "value", value, len) < 0))
                o = (json_object_put(o), NULL);
        return wrap("request_put", o);
}

json_object *reg_op_delete(const char *key) {
        json_object *o = json_object_new_object();

        if (o && add_bytes(o, "key", key, strlen(key)) < 0)
                o = (json_object_put(o), NULL);
        return wrap("request_delete_range", o);
}

/* A nested transaction: delete key if it holds value. */
json_object *reg_op_delete_if(const char *key, const char *value) {
        struct reg_txn_req t;

        if (reg_txn_req_init(&t) < 0 || reg_array_add(t.compare, reg_cmp_value(key, value)) < 0 ||
            reg_array_add(t.success, reg_op_delete(key)) < 0) {
                reg_txn_req_done(&t);
                return NULL;
        }
        return wrap("request_txn", t.o);
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
            (value ? add_bytes(o, field, value, strlen(value)) : reg_add_int64(o, field, number)) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* "key does not exist" */
json_object *reg_cmp_absent(const char *key) {
        return compare("CREATE", "EQUAL", key, NULL, "create_revision", 0, NULL);
}

/* "key exists and holds value" */
json_object *reg_cmp_value(const char *key, const char *value) {
        return compare("VALUE", "EQUAL", key, NULL, "value", 0, value);
}

/* "no key in [key, range_end) was written after revision rev" (true for
 * absent keys) */
json_object *reg_cmp_unchanged(const char *key, const char *range_end, int64_t rev) {
        return compare("MOD", "LESS", key, range_end, "mod_revision", rev + 1, NULL);
}

/* "key was last written at revision rev" (false for an absent key) */
json_object *reg_cmp_mod(const char *key, int64_t rev) {
        return compare("MOD", "EQUAL", key, NULL, "mod_revision", rev, NULL);
}

void reg_txn_req_done(struct reg_txn_req *t) {
        json_object_put(t->o);
}

int reg_txn_req_init(struct reg_txn_req *t) {
        *t = (struct reg_txn_req){ .o = json_object_new_object() };
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
