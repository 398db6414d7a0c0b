/* SPDX-License-Identifier: Apache-2.0 */
/* The registry's pure parsers on arbitrary bytes. The first byte picks the
 * parser, the rest is its input:
 *   'm' member record: whatever is accepted validates, serializes and parses
 *       back to the same member;
 *   'r' etcd range response, 't' etcd txn response: what is accepted is
 *       internally consistent (bounded counts, non-empty keys, NUL-ended);
 *   'e' etcd error body: always a negative errno.
 * Every refusal says why. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

#define MAX_KVS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_range(const struct registry_range *rr) {
        if (rr->n_kvs > MAX_KVS || (rr->n_kvs && !rr->kvs) || rr->count < (int64_t) rr->n_kvs)
                abort();
        for (size_t i = 0; i < rr->n_kvs; i++) {
                const struct registry_kv *kv = &rr->kvs[i];
                if (!kv->key || kv->key_size == 0 || kv->key_size > REGISTRY_MAX_KEY ||
                    kv->key[kv->key_size] || !kv->value || kv->value_size > REGISTRY_MAX_VALUE ||
                    kv->value[kv->value_size] || kv->create_revision < 0 || kv->mod_revision < 0 ||
                    kv->version < 0)
                        abort();
        }
}

static void fuzz_member(const char *p, size_t n) {
        struct registry_member m, again;
        struct errmsg e = {};
        char *json = NULL;

        if (registry_member_parse(p, n, &m, &e) < 0) {
                if (!e.text[0])
                        abort();
                return;
        }
        if (registry_member_validate(&m, NULL) < 0 || registry_member_to_json(&m, &json, NULL) < 0)
                abort();
        memset(&again, 0, sizeof(again));
        if (registry_member_parse(json, strlen(json), &again, NULL) < 0 ||
            memcmp(&m, &again, sizeof(m)) != 0)
                abort();
        free(json);
}

static void fuzz_range(const char *p, size_t n) {
        struct registry_range rr = {};
        struct errmsg e = {};

        if (registry_parse_range_response(p, n, MAX_KVS, &rr, &e) < 0) {
                if (!e.text[0])
                        abort();
                return;
        }
        if (rr.revision <= 0)
                abort();
        check_range(&rr);
        registry_range_done(&rr);
}

static void fuzz_txn(const char *p, size_t n) {
        struct registry_txn t = {};
        struct errmsg e = {};

        if (registry_parse_txn_response(p, n, MAX_KVS, &t, &e) < 0) {
                if (!e.text[0])
                        abort();
                return;
        }
        if (t.revision <= 0 || t.n_responses > REGISTRY_MAX_TXN_OPS || (t.n_responses && !t.responses))
                abort();
        for (size_t i = 0; i < t.n_responses; i++) {
                if (t.responses[i].type != REGISTRY_OP_RANGE && t.responses[i].range.n_kvs)
                        abort();
                check_range(&t.responses[i].range);
        }
        registry_txn_done(&t);
}

static void fuzz_error(const char *p, size_t n) {
        struct errmsg e = {};
        int code;
        int r = registry_parse_error_response(p, n, &code, &e);

        if (r >= 0 || !e.text[0] || code < -1 || code > 16)
                abort();
        /* The reason carries no control characters from the body. */
        for (const char *c = e.text; *c; c++)
                if ((unsigned char) *c < 0x20)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *) data + 1;

        if (size < 1)
                return 0;
        switch (data[0]) {
        case 'm':
                fuzz_member(p, size - 1);
                break;
        case 'r':
                fuzz_range(p, size - 1);
                break;
        case 't':
                fuzz_txn(p, size - 1);
                break;
        case 'e':
                fuzz_error(p, size - 1);
                break;
        default:
                break;
        }
        return 0;
}
