/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Between the two halves of the registry: lib/registry-etcd.c speaks etcd's
 * JSON gateway (the handle and its connections, request and transaction
 * builders, response parsers); lib/registry.c keeps the membership on it
 * (records, addresses, joins, disks, the member cache). Not for other
 * modules. */

#include <json.h>
#include <openssl/ssl.h>

#include "http-client.h"
#include "registry.h"

/* A write that loses its comparison is retried on a fresh read; each lost
 * round means another join service's write went through. */
#define MAX_ROUNDS 64
#define KEY_BUF (REGISTRY_PREFIX_MAX + 96)

struct registry {
        char **endpoints;
        size_t n_endpoints;
        size_t current; /* the endpoint that answered last */
        char prefix[REGISTRY_PREFIX_MAX + 1];
        long timeout_ms;
        SSL_CTX *tls;                 /* https endpoints: etcd's CA, our client certificate */
        struct http_client **clients; /* per endpoint, made on first use; keep their connection */
        struct registry_cache *cache; /* borrowed */
};

/* POST /v3/kv/range and /v3/kv/txn on the first endpoint that answers,
 * the answer parsed (at most max_kvs pairs per range). */
int reg_etcd_range(struct registry *reg, json_object *req, size_t max_kvs, struct registry_range *ret,
                   struct errmsg *e);
int reg_etcd_txn(struct registry *reg, json_object *req, size_t max_kvs, struct registry_txn *ret,
                 struct errmsg *e);

/* Request pieces (NULL when out of memory). */
int reg_array_add(json_object *arr, json_object *v); /* takes v, also on failure */
int reg_add_int64(json_object *o, const char *field, int64_t v);
/* The first key after every key that starts with prefix. */
void reg_prefix_end(const char *prefix, char *buf, size_t size);
json_object *reg_range_body(const char *key, const char *range_end, bool keys_only, int64_t limit);
json_object *reg_op_range(const char *key, const char *range_end, bool keys_only, int64_t limit);
json_object *reg_op_put(const char *key, const char *value, size_t len);
json_object *reg_op_delete(const char *key);
/* A nested transaction: delete key if it holds value. */
json_object *reg_op_delete_if(const char *key, const char *value);
/* "key does not exist" */
json_object *reg_cmp_absent(const char *key);
/* "key exists and holds value" */
json_object *reg_cmp_value(const char *key, const char *value);
/* "no key in [key, range_end) was written after revision rev" (true for
 * absent keys) */
json_object *reg_cmp_unchanged(const char *key, const char *range_end, int64_t rev);
/* "key was last written at revision rev": for rev > 0 false when the key
 * is absent; for rev 0 true exactly when it is absent (etcd reports an
 * absent key's mod_revision as 0; the stale-entry takeover relies on it) */
json_object *reg_cmp_mod(const char *key, int64_t rev);

/* A transaction request being built: compare, success and failure arrays. */
struct reg_txn_req {
        json_object *o, *compare, *success, *failure;
};
int reg_txn_req_init(struct reg_txn_req *t);
void reg_txn_req_done(struct reg_txn_req *t);

/* Members with records written after revision `since` (0: all), as etcd
 * has them now, sorted by name; *ret_count is how many members there are
 * in all (registry.c; the cache in registry-cache.c reads through it). */
int reg_read_members(struct registry *reg, int64_t since, struct registry_member **ret, size_t *ret_n,
                     int64_t *ret_count, int64_t *ret_revision, struct errmsg *e);
/* The names of the members as they were at store revision `revision`
 * (keys only: a few dozen bytes per member where a record is ~600 in
 * etcd's answer); -EBADMSG for a key that names no member. */
int reg_read_member_names(struct registry *reg, int64_t revision, char (**ret)[NODE_NAME_MAX + 1], size_t *ret_n,
                          struct errmsg *e);
