/* SPDX-License-Identifier: Apache-2.0 */
/* The membership registry against a real etcd-server (one private server
 * per test): member records, mesh address allocation under concurrency
 * (several handles, as several join services would), disks, endpoint
 * fallback, TLS with client certificates, and a stopped etcd. The pure
 * parsers (member records, etcd gateway responses) are tested without a
 * server: one refusal per malformed field. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http-client.h"

#include "encoding.h"
#include "etcd.h"
#include "fileio.h"
#include "registry.h"

#define CIDR "10.123.0.0/16"
#define WG_KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define UUID_A "0f3c6c43-5d2a-4a8e-9b1d-2f6f1b1e7a01"
#define UUID_B "7b0e2c55-1d7f-4c3e-8a9b-6c5d4e3f2a10"
#define UUID_C "c2d1e0f9-8a7b-4c6d-9e5f-4a3b2c1d0e0f"

static struct test_etcd etcd;
static struct registry *reg;

static void start_etcd(struct test_etcd *t, bool tls) {
        int r = tls ? test_etcd_start_tls(t) : test_etcd_start(t);

        if (r == -ENOENT)
                cr_skip_test(TEST_ETCD_MISSING);
        cr_assert_eq(r, 0, "etcd-server did not start: %s", strerror(-r));
}

static struct registry *open_registry_timeout(const char *const *endpoints, size_t n, const char *prefix,
                                              long timeout_ms) {
        struct registry_config cfg = {
                .endpoints = endpoints,
                .n_endpoints = n,
                .prefix = prefix,
                .timeout_ms = timeout_ms,
        };
        struct registry *r = NULL;
        struct errmsg e = {};

        cr_assert_eq(registry_new(&cfg, &r, &e), 0, "registry_new: %s", errmsg_str(&e));
        return r;
}

static struct registry *open_registry(const char *const *endpoints, size_t n, const char *prefix) {
        return open_registry_timeout(endpoints, n, prefix, 3000);
}

static struct registry *open_default(void) {
        const char *eps[] = { etcd.endpoint };
        return open_registry(eps, 1, NULL);
}

static void setup(void) {
        start_etcd(&etcd, false);
        reg = open_default();
}

static void teardown(void) {
        reg = registry_free(reg);
        test_etcd_stop(&etcd);
}

/* A WireGuard key of its own for each name (the registry refuses a key
 * that another member holds): the name's bytes, zero-padded to 32. */
static void key_of(const char *name, char ret[static WG_KEY_B64_SIZE]) {
        _cleanup_free_ char *b64 = NULL;
        uint8_t raw[32] = {};

        memcpy(raw, name, strnlen(name, sizeof(raw)));
        cr_assert_eq(base64_encode(raw, sizeof(raw), &b64), 0);
        cr_assert_eq(strlen(b64), WG_KEY_B64_SIZE - 1);
        memcpy(ret, b64, WG_KEY_B64_SIZE);
}

static struct registry_member make_member(const char *name, const char *address, const char *uuid) {
        struct registry_member m = {
                .role = "worker",
                .endpoint = "192.0.2.7:51820",
                .join_time = 1700000000,
                .last_seen = 1700000042,
        };

        key_of(name, m.wg_public_key);
        snprintf(m.name, sizeof(m.name), "%s", name);
        snprintf(m.mesh_address, sizeof(m.mesh_address), "%s", address);
        snprintf(m.disk_uuid, sizeof(m.disk_uuid), "%s", uuid);
        return m;
}

/* Register disk and address for name, then the member record. */
static struct registry_member join_node_in(struct registry *rg, const char *name, const char *uuid,
                                           const char *cidr) {
        char address[INET6_ADDRSTRLEN];
        struct registry_member m;
        struct errmsg e = {};

        cr_assert_eq(registry_put_disk(rg, uuid, name, &e), 0, "put_disk: %s", errmsg_str(&e));
        cr_assert_eq(registry_allocate_address(rg, name, cidr, address, &e), 0, "allocate: %s",
                     errmsg_str(&e));
        m = make_member(name, address, uuid);
        cr_assert_eq(registry_put_member(rg, &m, &e), 0, "put_member: %s", errmsg_str(&e));
        return m;
}

static struct registry_member join_node(struct registry *rg, const char *name, const char *uuid) {
        return join_node_in(rg, name, uuid, CIDR);
}

/* --- raw etcd access, to check what the registry left in the store ------------ */

/* Range [key, key + 1 at the last byte) over the gateway, parsed by the
 * registry's own parser. */
static void raw_prefix(const char *key, struct registry_range *ret) {
        _cleanup_free_ char *k64 = NULL, *e64 = NULL, *body = NULL;
        struct http_request req = { .method = "POST", .timeout_ms = 5000, .max_response = 64 * 1024 * 1024 };
        struct http_response resp = {};
        char end[256], url[128];
        struct errmsg e = {};

        snprintf(end, sizeof(end), "%s", key);
        end[strlen(end) - 1]++;
        cr_assert_eq(base64_encode(key, strlen(key), &k64), 0);
        cr_assert_eq(base64_encode(end, strlen(end), &e64), 0);
        cr_assert(asprintf(&body, "{\"key\":\"%s\",\"range_end\":\"%s\"}", k64, e64) > 0);
        snprintf(url, sizeof(url), "%s/v3/kv/range", etcd.endpoint);
        req.body = body;
        req.body_size = strlen(body);
        cr_assert_eq(http_request_url(url, NULL, 0, &req, &resp, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(resp.status, 200);
        cr_assert_eq(registry_parse_range_response(resp.body, resp.body_size, 100000, ret, &e), 0, "%s",
                     errmsg_str(&e));
        http_response_done(&resp);
}

static size_t count_keys(const char *prefix) {
        struct registry_range rr = {};
        size_t n;

        raw_prefix(prefix, &rr);
        n = rr.n_kvs;
        registry_range_done(&rr);
        return n;
}

/* --- members --------------------------------------------------------------------- */

Test(registry, member_put_get_list_delete_round_trip, .init = setup, .fini = teardown) {
        struct registry_member a, b, got, *list = NULL;
        struct errmsg e = {};
        char owner[NODE_NAME_MAX + 1];
        size_t n = 99;

        cr_assert_eq(registry_list_members(reg, &list, &n, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(n, 0);
        cr_assert_null(list);

        b = join_node(reg, "node-b", UUID_B);
        a = join_node(reg, "node-a", UUID_A);
        strcpy(a.role, "control-plane");
        cr_assert_eq(registry_put_member(reg, &a, &e), 0, "%s", errmsg_str(&e));

        cr_assert_eq(registry_get_member(reg, "node-a", &got, &e), 0, "%s", errmsg_str(&e));
        cr_assert_gt(got.mod_revision, 0, "reads give the record's mod_revision");
        a.mod_revision = got.mod_revision;
        cr_assert_eq(memcmp(&got, &a, sizeof(a)), 0);
        cr_assert_str_eq(got.role, "control-plane");

        /* Replace by name. */
        a.last_seen = 1700000999;
        strcpy(a.endpoint, "[2001:db8::7]:51820");
        cr_assert_eq(registry_put_member(reg, &a, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_get_member(reg, "node-a", &got, &e), 0);
        cr_assert_eq(got.last_seen, 1700000999);
        cr_assert_str_eq(got.endpoint, "[2001:db8::7]:51820");

        cr_assert_eq(registry_list_members(reg, &list, &n, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(n, 2);
        a.mod_revision = list[0].mod_revision;
        b.mod_revision = list[1].mod_revision;
        cr_assert_eq(memcmp(&list[0], &a, sizeof(a)), 0, "sorted by name");
        cr_assert_eq(memcmp(&list[1], &b, sizeof(b)), 0);
        free(list);
        list = NULL;

        cr_assert_eq(registry_delete_member(reg, "node-a", &e), 0, "%s", errmsg_str(&e));
        e = (struct errmsg){};
        cr_assert_eq(registry_get_member(reg, "node-a", &got, &e), -ENOENT);
        cr_assert(strstr(e.text, "node-a"), "%s", e.text);
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, NULL), -ENOENT, "disk record freed");
        cr_assert_eq(registry_get_disk(reg, UUID_B, owner, NULL), 0);
        cr_assert_str_eq(owner, "node-b");
        cr_assert_eq(count_keys("/arca/mesh/"), 1);
        cr_assert_eq(count_keys("/arca/mesh-nodes/"), 1);
        cr_assert_eq(registry_delete_member(reg, "node-a", NULL), -ENOENT, "nothing left to delete");

        cr_assert_eq(registry_list_members(reg, &list, &n, &e), 0);
        cr_assert_eq(n, 1);
        cr_assert_str_eq(list[0].name, "node-b");
        free(list);
        cr_assert_eq(registry_get_member(reg, "no-such-node", &got, NULL), -ENOENT);
        cr_assert_eq(registry_get_member(reg, "Bad_Name", &got, NULL), -EINVAL);
}

Test(registry, put_member_requires_the_nodes_address_and_disk, .init = setup, .fini = teardown) {
        struct registry_member m, other;
        char address[INET6_ADDRSTRLEN];
        struct errmsg e = {};

        other = join_node(reg, "other", UUID_B);

        cr_assert_eq(registry_put_disk(reg, UUID_A, "node-a", &e), 0);
        m = make_member("node-a", "10.123.0.99", UUID_A);
        cr_assert_eq(registry_put_member(reg, &m, &e), -EADDRNOTAVAIL, "%s", e.text);
        cr_assert(strstr(e.text, "10.123.0.99"), "%s", e.text);

        e = (struct errmsg){};
        m = make_member("node-a", other.mesh_address, UUID_A);
        cr_assert_eq(registry_put_member(reg, &m, &e), -EADDRINUSE, "%s", e.text);
        cr_assert(strstr(e.text, "other"), "%s", e.text);

        cr_assert_eq(registry_allocate_address(reg, "node-a", CIDR, address, &e), 0);
        e = (struct errmsg){};
        m = make_member("node-a", address, UUID_C);
        cr_assert_eq(registry_put_member(reg, &m, &e), -ENOENT, "%s", e.text);
        cr_assert(strstr(e.text, UUID_C), "%s", e.text);

        e = (struct errmsg){};
        m = make_member("node-a", address, UUID_B);
        cr_assert_eq(registry_put_member(reg, &m, &e), -EEXIST, "%s", e.text);

        e = (struct errmsg){};
        m = make_member("node-a", address, UUID_A);
        strcpy(m.role, "master");
        cr_assert_eq(registry_put_member(reg, &m, &e), -EINVAL);
        cr_assert(strstr(e.text, "'role'"), "%s", e.text);

        m = make_member("node-a", address, UUID_A);
        cr_assert_eq(registry_put_member(reg, &m, &e), 0);
        cr_assert_eq(count_keys("/arca/members/"), 2);
}

Test(registry, keys_stay_under_the_configured_prefix, .init = setup, .fini = teardown) {
        const char *eps[] = { etcd.endpoint };
        struct registry *other = open_registry(eps, 1, "/other/cluster/");
        struct registry_member *list = NULL;
        size_t n = 0;

        join_node(reg, "node-a", UUID_A);
        cr_assert_eq(registry_list_members(other, &list, &n, NULL), 0);
        cr_assert_eq(n, 0);
        join_node(other, "node-a", UUID_A);
        cr_assert_eq(count_keys("/other/cluster/members/"), 1);
        cr_assert_eq(count_keys("/other/cluster/disks/"), 1);
        cr_assert_eq(count_keys("/arca/members/"), 1);
        registry_free(other);

        struct registry_config bad = { .endpoints = eps, .n_endpoints = 1, .prefix = "/no-slash" };
        struct errmsg e = {};
        cr_assert_eq(registry_new(&bad, &other, &e), -EINVAL);
        cr_assert(strstr(e.text, "prefix"), "%s", e.text);
}

/* --- mesh addresses -------------------------------------------------------------- */

static bool in_cidr(const char *address, const char *prefix) {
        return strncmp(address, prefix, strlen(prefix)) == 0;
}

Test(registry, allocation_is_idempotent_per_node, .init = setup, .fini = teardown) {
        char a1[INET6_ADDRSTRLEN], a2[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        struct registry *second = open_default();
        struct errmsg e = {};

        cr_assert_eq(registry_allocate_address(reg, "node-a", CIDR, a1, &e), 0, "%s", errmsg_str(&e));
        cr_assert(in_cidr(a1, "10.123."), "%s", a1);
        cr_assert_eq(registry_allocate_address(reg, "node-a", CIDR, a2, &e), 0);
        cr_assert_str_eq(a1, a2);
        cr_assert_eq(registry_allocate_address(second, "node-a", CIDR, a2, &e), 0, "another join service");
        cr_assert_str_eq(a1, a2);
        cr_assert_eq(registry_allocate_address(reg, "node-b", CIDR, b, &e), 0);
        cr_assert(in_cidr(b, "10.123."), "%s", b);
        cr_assert_str_neq(a1, b);
        cr_assert_eq(count_keys("/arca/mesh/"), 2);

        /* The same node asked for another range keeps what it holds. */
        e = (struct errmsg){};
        cr_assert_eq(registry_allocate_address(reg, "node-a", "10.124.0.0/16", a2, &e), -EADDRINUSE);
        cr_assert(strstr(e.text, a1), "%s", e.text);
        registry_free(second);
}

Test(registry, delete_frees_the_address_for_reallocation, .init = setup, .fini = teardown) {
        char a[INET6_ADDRSTRLEN], c[INET6_ADDRSTRLEN];
        struct registry_member ma, mb;

        /* 10.9.0.0/29: .2 to .6, five addresses to hand out. */
        ma = join_node_in(reg, "node-a", UUID_A, "10.9.0.0/29");
        mb = join_node_in(reg, "node-b", UUID_B, "10.9.0.0/29");
        cr_assert_str_neq(ma.mesh_address, mb.mesh_address);
        cr_assert_eq(registry_delete_member(reg, "node-a", NULL), 0);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);

        /* Fill the range: the freed address is among those handed out. */
        {
                bool freed_reused = false;
                for (int i = 0; i < 4; i++) {
                        char name[16];
                        snprintf(name, sizeof(name), "fill-%d", i);
                        cr_assert_eq(registry_allocate_address(reg, name, "10.9.0.0/29", c, NULL), 0, "%s", name);
                        cr_assert_str_neq(c, mb.mesh_address);
                        freed_reused |= streq(c, ma.mesh_address);
                }
                cr_assert(freed_reused, "freed address %s handed out again", ma.mesh_address);
                cr_assert_eq(registry_allocate_address(reg, "node-a", "10.9.0.0/29", a, NULL), -ENOSPC,
                             "the deleted node is a stranger now, and the range is full");
        }
}

Test(registry, delete_of_node_without_record_frees_address_and_disk, .init = setup, .fini = teardown) {
        char a[INET6_ADDRSTRLEN], owner[NODE_NAME_MAX + 1];

        /* A join that failed after claiming its disk and address. */
        cr_assert_eq(registry_put_disk(reg, UUID_A, "node-a", NULL), 0);
        cr_assert_eq(registry_put_disk(reg, UUID_C, "node-a", NULL), 0);
        cr_assert_eq(registry_put_disk(reg, UUID_B, "node-b", NULL), 0);
        cr_assert_eq(registry_allocate_address(reg, "node-a", CIDR, a, NULL), 0);
        cr_assert_eq(registry_delete_member(reg, "node-a", NULL), 0);
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, NULL), -ENOENT);
        cr_assert_eq(registry_get_disk(reg, UUID_C, owner, NULL), -ENOENT);
        cr_assert_eq(registry_get_disk(reg, UUID_B, owner, NULL), 0, "other nodes' disks stay");
        cr_assert_eq(count_keys("/arca/mesh/"), 0);
        cr_assert_eq(count_keys("/arca/mesh-nodes/"), 0);
}

Test(registry, full_range_is_enospc, .init = setup, .fini = teardown) {
        char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
        struct errmsg e = {};

        /* 10.9.0.0/30: .0 network, .1 reserved, .3 broadcast: only .2. */
        cr_assert_eq(registry_allocate_address(reg, "node-a", "10.9.0.0/30", a, &e), 0, "%s",
                     errmsg_str(&e));
        cr_assert_str_eq(a, "10.9.0.2");
        cr_assert_eq(registry_allocate_address(reg, "node-b", "10.9.0.0/30", b, &e), -ENOSPC);
        cr_assert(strstr(e.text, "10.9.0.0/30"), "%s", e.text);
        cr_assert_eq(registry_allocate_address(reg, "node-a", "10.9.0.0/30", b, NULL), 0,
                     "still idempotent");
        cr_assert_str_eq(a, b);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);

        cr_assert_eq(registry_delete_member(reg, "node-a", NULL), 0);
        cr_assert_eq(registry_allocate_address(reg, "node-b", "10.9.0.0/30", b, NULL), 0);
        cr_assert_str_eq(b, "10.9.0.2");

        cr_assert_eq(registry_allocate_address(reg, "node-c", "10.9.0.0/31", b, NULL), -EINVAL);
        cr_assert_eq(registry_allocate_address(reg, "node-c", "10.9.0.1/30", b, NULL), -EINVAL, "host bits");
        cr_assert_eq(registry_allocate_address(reg, "node-c", "10.9.0.0/030", b, NULL), -EINVAL);
        cr_assert_eq(registry_allocate_address(reg, "node-c", "10.9.0.0/ 8", b, NULL), -EINVAL);
        cr_assert_eq(registry_allocate_address(reg, "node-c", "fd00::/64", b, NULL), -EINVAL);
        cr_assert_eq(registry_allocate_address(reg, "-bad", CIDR, b, NULL), -EINVAL);
}

struct alloc_job {
        struct registry *reg;
        pthread_barrier_t *barrier;
        unsigned first, step, count;
        char (*results)[INET6_ADDRSTRLEN];
        int errors;
        char error[512];
};

static void *alloc_thread(void *arg) {
        struct alloc_job *j = arg;

        pthread_barrier_wait(j->barrier);
        for (unsigned i = j->first; i < j->count; i += j->step) {
                char name[32];
                struct errmsg e = {};

                snprintf(name, sizeof(name), "node-%u", i);
                if (registry_allocate_address(j->reg, name, CIDR, j->results[i], &e) < 0) {
                        j->errors++;
                        snprintf(j->error, sizeof(j->error), "%s: %s", name, errmsg_str(&e));
                }
        }
        return NULL;
}

static void check_mesh_keys(char (*results)[INET6_ADDRSTRLEN], unsigned n) {
        struct registry_range rr = {};

        raw_prefix("/arca/mesh/", &rr);
        cr_assert_eq(rr.n_kvs, n, "registry holds %zu mesh keys, want %u", rr.n_kvs, n);
        for (unsigned i = 0; i < n; i++) {
                char key[64], name[32];
                bool found = false;

                snprintf(key, sizeof(key), "/arca/mesh/%s", results[i]);
                snprintf(name, sizeof(name), "node-%u", i);
                for (size_t k = 0; k < rr.n_kvs; k++)
                        if (streq(rr.kvs[k].key, key)) {
                                cr_assert_str_eq(rr.kvs[k].value, name, "%s held by %s", key,
                                                 rr.kvs[k].value);
                                found = true;
                        }
                cr_assert(found, "no key %s", key);
        }
        registry_range_done(&rr);
        cr_assert_eq(count_keys("/arca/mesh-nodes/"), n);
}

Test(registry, concurrent_allocation_gives_distinct_addresses, .init = setup, .fini = teardown) {
        char results[40][INET6_ADDRSTRLEN] = {};
        pthread_barrier_t barrier;
        struct alloc_job jobs[2];
        pthread_t th[2];

        pthread_barrier_init(&barrier, NULL, 2);
        for (unsigned t = 0; t < 2; t++) {
                jobs[t] = (struct alloc_job){
                        .reg = open_default(),
                        .barrier = &barrier,
                        .first = t,
                        .step = 2,
                        .count = 40,
                        .results = results,
                };
                cr_assert_eq(pthread_create(&th[t], NULL, alloc_thread, &jobs[t]), 0);
        }
        for (unsigned t = 0; t < 2; t++) {
                pthread_join(th[t], NULL);
                cr_assert_eq(jobs[t].errors, 0, "%s", jobs[t].error);
                registry_free(jobs[t].reg);
        }
        pthread_barrier_destroy(&barrier);

        for (unsigned i = 0; i < 40; i++)
                for (unsigned k = i + 1; k < 40; k++)
                        cr_assert_str_neq(results[i], results[k], "node-%u and node-%u both got %s", i, k,
                                          results[i]);
        check_mesh_keys(results, 40);
}

Test(registry, same_node_from_two_handles_gets_one_address, .init = setup, .fini = teardown) {
        char results[2][20][INET6_ADDRSTRLEN] = {};
        pthread_barrier_t barrier;
        struct alloc_job jobs[2];
        pthread_t th[2];

        pthread_barrier_init(&barrier, NULL, 2);
        for (unsigned t = 0; t < 2; t++) {
                /* Both handles allocate for node-0 .. node-19, in step. */
                jobs[t] = (struct alloc_job){
                        .reg = open_default(),
                        .barrier = &barrier,
                        .first = 0,
                        .step = 1,
                        .count = 20,
                        .results = results[t],
                };
                cr_assert_eq(pthread_create(&th[t], NULL, alloc_thread, &jobs[t]), 0);
        }
        for (unsigned t = 0; t < 2; t++) {
                pthread_join(th[t], NULL);
                cr_assert_eq(jobs[t].errors, 0, "%s", jobs[t].error);
                registry_free(jobs[t].reg);
        }
        pthread_barrier_destroy(&barrier);

        for (unsigned i = 0; i < 20; i++)
                cr_assert_str_eq(results[0][i], results[1][i], "node-%u got %s and %s", i, results[0][i],
                                 results[1][i]);
        check_mesh_keys(results[0], 20);
}

/* --- joins: address, disk and record in one transaction ---------------------------- */

#define AK_NAME "000b" "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static struct registry_member joiner(const char *name, const char *uuid) {
        struct registry_member m = make_member(name, "", uuid);

        snprintf(m.ak_name, sizeof(m.ak_name), "%s", AK_NAME);
        return m;
}

/* etcd's current revision: each transaction that writes raises it by one. */
static int64_t store_revision(void) {
        struct registry_range rr = {};
        int64_t rev;

        raw_prefix("/arca/", &rr);
        rev = rr.revision;
        registry_range_done(&rr);
        return rev;
}

Test(registry, join_writes_address_disk_and_record_in_one_transaction, .init = setup, .fini = teardown) {
        struct registry_member m = joiner("node-a", "0F3C6C43-5D2A-4A8E-9B1D-2F6F1B1E7A01"), got;
        char owner[NODE_NAME_MAX + 1];
        struct errmsg e = {};
        int64_t before = store_revision();

        cr_assert_eq(registry_join(reg, &m, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(store_revision(), before + 1, "one transaction");
        cr_assert(in_cidr(m.mesh_address, "10.123."), "%s", m.mesh_address);
        cr_assert_str_eq(m.disk_uuid, UUID_A, "the UUID is stored lowercase");
        cr_assert_eq(registry_get_member(reg, "node-a", &got, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(got.mesh_address, m.mesh_address);
        cr_assert_str_eq(got.ak_name, AK_NAME);
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), 0);
        cr_assert_str_eq(owner, "node-a");
        cr_assert_eq(count_keys("/arca/mesh/"), 1);
        cr_assert_eq(count_keys("/arca/mesh-nodes/"), 1);
}

Test(registry, retried_join_keeps_its_address_and_one_record, .init = setup, .fini = teardown) {
        struct registry_member m = joiner("node-a", UUID_A), again = joiner("node-a", UUID_A), got;
        struct registry *second = open_default();
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &m, CIDR, &e), 0, "%s", errmsg_str(&e));
        /* Through another join service, with a new WireGuard key. */
        strcpy(again.wg_public_key, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=");
        cr_assert_eq(registry_join(second, &again, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(again.mesh_address, m.mesh_address);
        cr_assert_eq(registry_get_member(reg, "node-a", &got, &e), 0);
        cr_assert_str_eq(got.wg_public_key, again.wg_public_key);
        cr_assert_eq(count_keys("/arca/members/"), 1);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);
        cr_assert_eq(count_keys("/arca/disks/"), 1);
        registry_free(second);
}

Test(registry, join_refuses_a_disk_of_another_node_and_writes_nothing, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_A);
        struct errmsg e = {};
        int64_t before;

        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        before = store_revision();
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), -EEXIST);
        cr_assert(strstr(e.text, "node-a"), "%s", e.text);
        cr_assert_eq(store_revision(), before, "nothing written");
        cr_assert_eq(count_keys("/arca/members/"), 1);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);

        b = joiner("Bad_Name", UUID_B);
        cr_assert_eq(registry_join(reg, &b, CIDR, NULL), -EINVAL);
        b = joiner("node-b", UUID_B);
        strcpy(b.role, "master");
        cr_assert_eq(registry_join(reg, &b, CIDR, NULL), -EINVAL);
        cr_assert_eq(store_revision(), before, "nothing written");
}

Test(registry, join_in_a_full_range_is_enospc, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B);
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &a, "10.9.0.0/30", &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(a.mesh_address, "10.9.0.2");
        cr_assert_eq(registry_join(reg, &b, "10.9.0.0/30", &e), -ENOSPC);
        cr_assert(strstr(e.text, "10.9.0.0/30"), "%s", e.text);
        cr_assert_eq(count_keys("/arca/members/"), 1);
        cr_assert_eq(count_keys("/arca/disks/"), 1, "the refused node's disk was not registered");
}

/* The first node takes the first address before its registry runs and
 * claims exactly that one afterwards; nobody else gets it. */
Test(registry, join_with_a_wanted_address_claims_exactly_it, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), again;
        char first[INET6_ADDRSTRLEN], owner[NODE_NAME_MAX + 1];
        struct errmsg e = {};
        int64_t before;

        cr_assert_eq(registry_first_address(CIDR, first, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(first, "10.123.0.2", "the network address and .1 are never handed out");
        strcpy(a.mesh_address, first);
        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(a.mesh_address, "10.123.0.2");
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), 0);
        cr_assert_str_eq(owner, "node-a");

        /* Retried: the same address again, one record. */
        again = joiner("node-a", UUID_A);
        strcpy(again.mesh_address, first);
        cr_assert_eq(registry_join(reg, &again, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(count_keys("/arca/members/"), 1);

        /* Another node wanting it, and node-a wanting another one. */
        before = store_revision();
        strcpy(b.mesh_address, first);
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), -EADDRINUSE);
        cr_assert(strstr(e.text, "10.123.0.2"), "%s", e.text);
        again = joiner("node-a", UUID_A);
        strcpy(again.mesh_address, "10.123.0.3");
        e = (struct errmsg){};
        cr_assert_eq(registry_join(reg, &again, CIDR, &e), -EADDRINUSE);
        cr_assert(strstr(e.text, "holds mesh address 10.123.0.2"), "%s", e.text);
        /* Outside what the CIDR hands out. */
        b = joiner("node-b", UUID_B);
        strcpy(b.mesh_address, "10.123.0.1");
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), -EINVAL);
        strcpy(b.mesh_address, "10.124.0.2");
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), -EINVAL);
        cr_assert_eq(store_revision(), before, "nothing written");

        cr_assert_eq(registry_first_address("10.123.0.0/31", first, &e), -EINVAL);
        cr_assert_eq(registry_first_address("10.123.0.1/16", first, &e), -EINVAL);
}

struct join_job {
        struct registry *reg;
        pthread_barrier_t *barrier;
        unsigned first, step, count;
        const char *cidr;
        char (*results)[INET6_ADDRSTRLEN];
        int errors;
        char error[512];
};

static void *join_thread(void *arg) {
        struct join_job *j = arg;

        pthread_barrier_wait(j->barrier);
        for (unsigned i = j->first; i < j->count; i += j->step) {
                char name[32], uuid[UUID_STRING_SIZE];
                struct registry_member m;
                struct errmsg e = {};

                snprintf(name, sizeof(name), "node-%u", i);
                snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-000000000000", i);
                m = joiner(name, uuid);
                if (registry_join(j->reg, &m, j->cidr, &e) < 0) {
                        j->errors++;
                        snprintf(j->error, sizeof(j->error), "%s: %s", name, errmsg_str(&e));
                } else
                        memcpy(j->results[i], m.mesh_address, sizeof(m.mesh_address));
        }
        return NULL;
}

static void run_join_threads(struct join_job *jobs, unsigned n_threads) {
        pthread_barrier_t barrier;
        pthread_t th[4];

        cr_assert_leq(n_threads, 4u);
        pthread_barrier_init(&barrier, NULL, n_threads);
        for (unsigned t = 0; t < n_threads; t++) {
                jobs[t].reg = open_default();
                jobs[t].barrier = &barrier;
                cr_assert_eq(pthread_create(&th[t], NULL, join_thread, &jobs[t]), 0);
        }
        for (unsigned t = 0; t < n_threads; t++) {
                pthread_join(th[t], NULL);
                cr_assert_eq(jobs[t].errors, 0, "%s", jobs[t].error);
                registry_free(jobs[t].reg);
        }
        pthread_barrier_destroy(&barrier);
}

/* Two join services joining different nodes at once, in a range so small
 * that random picks collide often (and the fallback reads the free ones):
 * never one address for two nodes. */
Test(registry, concurrent_joins_by_two_clients_get_distinct_addresses, .init = setup, .fini = teardown) {
        char results[60][INET6_ADDRSTRLEN] = {};
        struct join_job jobs[2];

        /* 10.77.0.0/26: .2 to .62, 61 addresses for 60 nodes. */
        for (unsigned t = 0; t < 2; t++)
                jobs[t] = (struct join_job){ .first = t, .step = 2, .count = 60, .cidr = "10.77.0.0/26",
                                             .results = results };
        run_join_threads(jobs, 2);
        for (unsigned i = 0; i < 60; i++)
                for (unsigned k = i + 1; k < 60; k++)
                        cr_assert_str_neq(results[i], results[k], "node-%u and node-%u both got %s", i, k,
                                          results[i]);
        check_mesh_keys(results, 60);
        cr_assert_eq(count_keys("/arca/members/"), 60);
        cr_assert_eq(count_keys("/arca/disks/"), 60);
}

/* Two join services joining the same nodes at once (a node retrying
 * through both): one address and one record per node. */
Test(registry, same_node_joining_through_two_clients_gets_one_address, .init = setup, .fini = teardown) {
        char results[2][20][INET6_ADDRSTRLEN] = {};
        struct join_job jobs[2];

        for (unsigned t = 0; t < 2; t++)
                jobs[t] = (struct join_job){ .first = 0, .step = 1, .count = 20, .cidr = CIDR,
                                             .results = results[t] };
        run_join_threads(jobs, 2);
        for (unsigned i = 0; i < 20; i++)
                cr_assert_str_eq(results[0][i], results[1][i], "node-%u got %s and %s", i, results[0][i],
                                 results[1][i]);
        check_mesh_keys(results[0], 20);
        cr_assert_eq(count_keys("/arca/members/"), 20);
}

/* --- refresh and expiry ----------------------------------------------------------- */

Test(registry, update_member_is_conditional_on_its_revision, .init = setup, .fini = teardown) {
        struct registry_member m = joiner("node-a", UUID_A), read, stale;
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &m, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        stale = read;
        read.last_seen = 1700000100;
        strcpy(read.endpoint, "192.0.2.99:51820");
        cr_assert_eq(registry_update_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_get_member(reg, "node-a", &m, &e), 0);
        cr_assert_eq(m.last_seen, 1700000100);
        cr_assert_str_eq(m.endpoint, "192.0.2.99:51820");

        /* A writer that read before that update loses. */
        stale.last_seen = 1700000200;
        e = (struct errmsg){};
        cr_assert_eq(registry_update_member(reg, &stale, &e), -ESTALE, "%s", e.text);
        cr_assert_eq(registry_get_member(reg, "node-a", &m, &e), 0);
        cr_assert_eq(m.last_seen, 1700000100);

        /* A removed member is not brought back by a refresh. */
        cr_assert_eq(registry_delete_member(reg, "node-a", &e), 0);
        cr_assert_eq(registry_update_member(reg, &read, &e), -ENOENT);
        cr_assert_eq(count_keys("/arca/members/"), 0);
}

Test(registry, expiry_frees_the_address_and_keeps_the_disk, .init = setup, .fini = teardown) {
        struct registry_member m = joiner("node-a", UUID_A), read, refreshed;
        char owner[NODE_NAME_MAX + 1];
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &m, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        /* A refresh after the sweeper read the record: the member stays. */
        refreshed = read;
        refreshed.last_seen++;
        cr_assert_eq(registry_update_member(reg, &refreshed, &e), 0);
        cr_assert_eq(registry_expire_member(reg, &read, &e), -ESTALE, "%s", e.text);
        cr_assert_eq(count_keys("/arca/members/"), 1);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);

        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        /* A record not read from the registry (revision 0) expires
         * nothing: revision 0 would compare true for an absent record. */
        refreshed = read;
        refreshed.mod_revision = 0;
        e = (struct errmsg){};
        cr_assert_eq(registry_expire_member(reg, &refreshed, &e), -EINVAL);
        cr_assert(strstr(e.text, "no revision"), "%s", e.text);
        cr_assert_eq(count_keys("/arca/members/"), 1);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);
        cr_assert_eq(registry_expire_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(count_keys("/arca/members/"), 0);
        cr_assert_eq(count_keys("/arca/mesh/"), 0);
        cr_assert_eq(count_keys("/arca/mesh-nodes/"), 0);
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), 0, "the disk can still rejoin");
        cr_assert_str_eq(owner, "node-a");
        cr_assert_eq(registry_expire_member(reg, &read, &e), -ENOENT);

        /* The node joins again and gets an address again. */
        m = joiner("node-a", UUID_A);
        cr_assert_eq(registry_join(reg, &m, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(count_keys("/arca/mesh/"), 1);
}

/* --- WireGuard keys: one member per key, enforced by the registry ------------------ */

/* The member the index entry of key names ("" if there is none). */
static void key_holder(const char *key, char ret[static NODE_NAME_MAX + 1]) {
        struct registry_range rr = {};
        char k[128];

        snprintf(k, sizeof(k), "/arca/wgkeys/%s", key);
        raw_prefix(k, &rr);
        cr_assert_leq(rr.n_kvs, 1);
        ret[0] = 0;
        if (rr.n_kvs == 1) {
                cr_assert_str_eq(rr.kvs[0].key, k);
                cr_assert_leq(rr.kvs[0].value_size, NODE_NAME_MAX);
                memcpy(ret, rr.kvs[0].value, rr.kvs[0].value_size + 1);
        }
        registry_range_done(&rr);
}

static void assert_key_holder(const char *key, const char *want) {
        char holder[NODE_NAME_MAX + 1];

        key_holder(key, holder);
        cr_assert_str_eq(holder, want, "wgkeys/%s names '%s', want '%s'", key, holder, want);
}

/* POST body to etcd's gateway path directly; etcd's revision after it.
 * No assertions: also called from the proxy's threads. */
static int raw_post(const char *path, const char *body, int64_t *ret_revision) {
        struct http_request req = { .method = "POST", .timeout_ms = 5000, .max_response = 1 << 20 };
        struct http_response resp = {};
        struct registry_range rr = {};
        char url[128];
        int r;

        snprintf(url, sizeof(url), "%s%s", etcd.endpoint, path);
        req.body = body;
        req.body_size = strlen(body);
        r = http_request_url(url, NULL, 0, &req, &resp, NULL);
        if (r >= 0 && resp.status != 200)
                r = -EIO;
        if (r >= 0)
                r = registry_parse_range_response(resp.body, resp.body_size, 0, &rr, NULL);
        if (r >= 0 && ret_revision)
                *ret_revision = rr.revision;
        registry_range_done(&rr);
        http_response_done(&resp);
        return r;
}

/* Put or delete one key behind the registry's back (a record written
 * before the index existed has no entry; an older join service leaves
 * entries behind). */
static void raw_write(const char *key, const char *value) {
        _cleanup_free_ char *k64 = NULL, *v64 = NULL, *body = NULL;

        cr_assert_eq(base64_encode(key, strlen(key), &k64), 0);
        if (value) {
                cr_assert_eq(base64_encode(value, strlen(value), &v64), 0);
                cr_assert(asprintf(&body, "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64) > 0);
        } else
                cr_assert(asprintf(&body, "{\"key\":\"%s\"}", k64) > 0);
        cr_assert_eq(raw_post(value ? "/v3/kv/put" : "/v3/kv/deleterange", body, NULL), 0, "%s %s",
                     value ? "put" : "delete", key);
}

static void raw_delete(const char *key) {
        raw_write(key, NULL);
}

/* The registry as a whole: no two records name one key, every record's
 * key has the entry naming it, and there are no other entries. */
static void assert_key_index_whole(void) {
        struct registry_range members = {}, keys = {};
        size_t with_key = 0;

        raw_prefix("/arca/members/", &members);
        raw_prefix("/arca/wgkeys/", &keys);
        for (size_t i = 0; i < members.n_kvs; i++) {
                struct registry_member m;
                char k[128];
                bool found = false;

                cr_assert_eq(registry_member_parse(members.kvs[i].value, members.kvs[i].value_size, &m, NULL), 0);
                with_key++;
                for (size_t j = 0; j < i; j++) {
                        struct registry_member o;

                        cr_assert_eq(registry_member_parse(members.kvs[j].value, members.kvs[j].value_size, &o, NULL),
                                     0);
                        cr_assert_str_neq(o.wg_public_key, m.wg_public_key, "'%s' and '%s' share a key", o.name,
                                          m.name);
                }
                snprintf(k, sizeof(k), "/arca/wgkeys/%s", m.wg_public_key);
                for (size_t j = 0; j < keys.n_kvs; j++)
                        if (streq(keys.kvs[j].key, k)) {
                                cr_assert_str_eq(keys.kvs[j].value, m.name, "%s", k);
                                found = true;
                        }
                cr_assert(found, "no index entry for '%s''s key", m.name);
        }
        cr_assert_eq(keys.n_kvs, with_key, "%zu index entries for %zu members", keys.n_kvs, with_key);
        registry_range_done(&members);
        registry_range_done(&keys);
}

struct same_key_job {
        struct registry *reg;
        pthread_barrier_t *barrier;
        struct registry_member m;
        int r;
        struct errmsg e;
};

static void *same_key_thread(void *arg) {
        struct same_key_job *j = arg;

        pthread_barrier_wait(j->barrier);
        j->r = registry_join(j->reg, &j->m, CIDR, &j->e);
        return NULL;
}

/* Two join services admitting two nodes with one key at the same moment:
 * both pass any check of a member list read before, but the registry
 * takes exactly one, and the other learns who holds the key. */
Test(registry, concurrent_joins_with_one_key_admit_exactly_one, .init = setup, .fini = teardown) {
        struct same_key_job jobs[2];
        pthread_barrier_t barrier;
        pthread_t th[2];

        pthread_barrier_init(&barrier, NULL, 2);
        for (unsigned t = 0; t < 2; t++)
                jobs[t] = (struct same_key_job){ .reg = open_default(), .barrier = &barrier };
        for (unsigned round = 0; round < 10; round++) {
                char key[WG_KEY_B64_SIZE], pool[16];
                unsigned won = 2;

                snprintf(pool, sizeof(pool), "shared-%u", round);
                key_of(pool, key);
                for (unsigned t = 0; t < 2; t++) {
                        char name[32], uuid[UUID_STRING_SIZE];

                        snprintf(name, sizeof(name), "node-%u-%u", round, t);
                        snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-00000000000%u", round, t);
                        jobs[t].m = joiner(name, uuid);
                        memcpy(jobs[t].m.wg_public_key, key, sizeof(key));
                        jobs[t].e = (struct errmsg){};
                        cr_assert_eq(pthread_create(&th[t], NULL, same_key_thread, &jobs[t]), 0);
                }
                for (unsigned t = 0; t < 2; t++)
                        pthread_join(th[t], NULL);
                for (unsigned t = 0; t < 2; t++)
                        if (jobs[t].r == 0)
                                won = t;
                cr_assert_neq(won, 2u, "round %u: neither joined: %s / %s", round, jobs[0].e.text, jobs[1].e.text);
                cr_assert_eq(jobs[1 - won].r, -EEXIST, "round %u: both joined, or %s", round,
                             errmsg_str(&jobs[1 - won].e));
                cr_assert(strstr(jobs[1 - won].e.text, jobs[won].m.name), "names the winner: %s",
                          jobs[1 - won].e.text);
                cr_assert(strstr(jobs[1 - won].e.text, "WireGuard"), "%s", jobs[1 - won].e.text);
                assert_key_holder(key, jobs[won].m.name);
        }
        for (unsigned t = 0; t < 2; t++)
                registry_free(jobs[t].reg);
        pthread_barrier_destroy(&barrier);
        cr_assert_eq(count_keys("/arca/members/"), 10);
        cr_assert_eq(count_keys("/arca/mesh/"), 10, "the loser holds no address");
        cr_assert_eq(count_keys("/arca/disks/"), 10, "nor a disk");
        assert_key_index_whole();
}

/* A refresh (member update) announcing another member's key is refused
 * by the registry itself, even without a join service's check before. */
Test(registry, update_taking_another_members_key_is_refused, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), read, got;
        struct errmsg e = {};
        int64_t before;

        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(a.wg_public_key, "node-a");
        assert_key_holder(b.wg_public_key, "node-b");
        cr_assert_eq(registry_get_member(reg, "node-b", &read, &e), 0);
        memcpy(read.wg_public_key, a.wg_public_key, sizeof(read.wg_public_key));
        read.last_seen++;
        before = store_revision();
        cr_assert_eq(registry_update_member(reg, &read, &e), -EEXIST);
        cr_assert(strstr(e.text, "node-a"), "names the holder: %s", e.text);
        cr_assert_eq(store_revision(), before, "nothing written");
        cr_assert_eq(registry_get_member(reg, "node-b", &got, &e), 0);
        cr_assert_str_eq(got.wg_public_key, b.wg_public_key);
        assert_key_holder(a.wg_public_key, "node-a");
        assert_key_holder(b.wg_public_key, "node-b");

        /* Nor does a retried join of b take it. */
        b = joiner("node-b", UUID_B);
        memcpy(b.wg_public_key, a.wg_public_key, sizeof(b.wg_public_key));
        e = (struct errmsg){};
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), -EEXIST);
        cr_assert(strstr(e.text, "node-a"), "%s", e.text);
        cr_assert_eq(store_revision(), before, "nothing written");

        /* An update keeping its own key still goes through (one round trip). */
        read = got;
        read.last_seen++;
        cr_assert_eq(registry_update_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(store_revision(), before + 1);
        assert_key_index_whole();
}

/* A new key moves the member's entry: the old key is free for others. */
Test(registry, key_change_frees_the_old_key, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b, read;
        char old[WG_KEY_B64_SIZE];
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        memcpy(old, a.wg_public_key, sizeof(old));
        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        key_of("node-a restarted", read.wg_public_key);
        cr_assert_eq(registry_update_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(old, "");
        assert_key_holder(read.wg_public_key, "node-a");

        b = joiner("node-b", UUID_B);
        memcpy(b.wg_public_key, old, sizeof(old));
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), 0, "the old key is free: %s", errmsg_str(&e));
        assert_key_holder(old, "node-b");

        /* A retried join with a new key (the node restarted before its
         * first refresh) moves it too. */
        a = joiner("node-a", UUID_A);
        key_of("node-a again", a.wg_public_key);
        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(read.wg_public_key, "");
        assert_key_holder(a.wg_public_key, "node-a");
        cr_assert_eq(count_keys("/arca/wgkeys/"), 2);
        assert_key_index_whole();
}

/* Eviction (registry_delete_member) and expiry take the key's entry with
 * the record. */
Test(registry, removal_frees_the_key, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), c = joiner("node-c", UUID_C), b, read;
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_join(reg, &c, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_delete_member(reg, "node-a", &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(a.wg_public_key, "");
        b = joiner("node-b", UUID_B);
        memcpy(b.wg_public_key, a.wg_public_key, sizeof(b.wg_public_key));
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(a.wg_public_key, "node-b");

        cr_assert_eq(registry_get_member(reg, "node-c", &read, &e), 0);
        cr_assert_eq(registry_expire_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(c.wg_public_key, "");
        cr_assert_eq(count_keys("/arca/wgkeys/"), 1);
        assert_key_index_whole();
}

/* A record written before the index existed (no entry) keeps working: its
 * next update creates the entry, and from then on its key is taken. An
 * entry already gone is not a reason to fail a key change or removal. */
Test(registry, record_without_an_index_entry_gets_one_at_its_next_update, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), read;
        char k[128];
        struct errmsg e = {};

        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        snprintf(k, sizeof(k), "/arca/wgkeys/%s", a.wg_public_key);
        raw_delete(k);
        assert_key_holder(a.wg_public_key, "");

        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        read.last_seen++;
        cr_assert_eq(registry_update_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(a.wg_public_key, "node-a");
        memcpy(b.wg_public_key, a.wg_public_key, sizeof(b.wg_public_key));
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), -EEXIST);
        cr_assert(strstr(e.text, "node-a"), "%s", e.text);

        /* Without an entry, a key change and a removal go through. */
        raw_delete(k);
        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        key_of("node-a new", read.wg_public_key);
        cr_assert_eq(registry_update_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(read.wg_public_key, "node-a");
        snprintf(k, sizeof(k), "/arca/wgkeys/%s", read.wg_public_key);
        raw_delete(k);
        cr_assert_eq(registry_delete_member(reg, "node-a", &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(count_keys("/arca/wgkeys/"), 0);
        cr_assert_eq(count_keys("/arca/members/"), 0);

        /* An update needs the revision it was read at. */
        read.mod_revision = 0;
        cr_assert_eq(registry_update_member(reg, &read, &e), -EINVAL);
}

/* An entry whose member no longer names the key (left behind by a join
 * service that did not know the index) does not block the key for ever:
 * a join or update with the key takes it over. An entry whose member
 * names the key is no such thing. */
Test(registry, stale_key_entries_are_taken_over, .init = setup, .fini = teardown) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), read;
        char k[128], ghost_key[WG_KEY_B64_SIZE], old_key[WG_KEY_B64_SIZE];
        struct errmsg e = {};

        /* An entry naming a member that does not exist. */
        key_of("ghost", ghost_key);
        snprintf(k, sizeof(k), "/arca/wgkeys/%s", ghost_key);
        raw_write(k, "ghost");
        memcpy(a.wg_public_key, ghost_key, sizeof(ghost_key));
        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(ghost_key, "node-a");

        /* An entry naming a member whose record has another key now (as an
         * older join service's refresh would leave it). */
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), 0, "%s", errmsg_str(&e));
        memcpy(old_key, b.wg_public_key, sizeof(old_key));
        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        memcpy(read.wg_public_key, old_key, sizeof(old_key));
        cr_assert_eq(registry_update_member(reg, &read, &e), -EEXIST, "b names it: not stale");
        cr_assert(strstr(e.text, "node-b"), "%s", e.text);
        snprintf(k, sizeof(k), "/arca/wgkeys/%s", old_key);
        raw_delete(k);
        cr_assert_eq(registry_get_member(reg, "node-b", &b, &e), 0);
        key_of("node-b new", b.wg_public_key);
        cr_assert_eq(registry_update_member(reg, &b, &e), 0, "%s", errmsg_str(&e));
        raw_write(k, "node-b");
        cr_assert_eq(registry_get_member(reg, "node-a", &read, &e), 0);
        memcpy(read.wg_public_key, old_key, sizeof(old_key));
        cr_assert_eq(registry_update_member(reg, &read, &e), 0, "%s", errmsg_str(&e));
        assert_key_holder(old_key, "node-a");
        assert_key_holder(ghost_key, ""); /* a's previous key, freed */
        assert_key_index_whole();
}

#define RACE_THREADS 4
#define RACE_ROUNDS 12
#define RACE_KEYS 5

struct race_job {
        struct registry *reg;
        pthread_barrier_t *barrier;
        unsigned id, joined, updated, refused, kept;
        char error[512];
};

/* Every thread joins its own nodes, moves their keys and evicts them,
 * all with keys from one small pool: joins and key changes race for the
 * same keys, and evictions free them. */
static void *race_thread(void *arg) {
        struct race_job *j = arg;

        pthread_barrier_wait(j->barrier);
        for (unsigned i = 0; i < RACE_ROUNDS && !j->error[0]; i++) {
                char name[32], uuid[UUID_STRING_SIZE], pool[16];
                struct registry_member m, read;
                struct errmsg e = {};
                int r;

                snprintf(name, sizeof(name), "node-%u-%u", j->id, i);
                snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-%012u", i, j->id);
                m = joiner(name, uuid);
                snprintf(pool, sizeof(pool), "pool-%u", (i + j->id) % RACE_KEYS);
                key_of(pool, m.wg_public_key);
                r = registry_join(j->reg, &m, CIDR, &e);
                if (r == -EEXIST && strstr(e.text, "WireGuard")) {
                        j->refused++;
                        continue;
                }
                if (r < 0) {
                        snprintf(j->error, sizeof(j->error), "join %s: %s", name, errmsg_str(&e));
                        break;
                }
                j->joined++;
                if ((r = registry_get_member(j->reg, name, &read, &e)) < 0) {
                        snprintf(j->error, sizeof(j->error), "get %s: %s", name, errmsg_str(&e));
                        break;
                }
                snprintf(pool, sizeof(pool), "pool-%u", (i + j->id + 1) % RACE_KEYS);
                key_of(pool, read.wg_public_key);
                r = registry_update_member(j->reg, &read, &e);
                if (r == -EEXIST && strstr(e.text, "WireGuard"))
                        j->refused++;
                else if (r < 0) {
                        snprintf(j->error, sizeof(j->error), "update %s: %s", name, errmsg_str(&e));
                        break;
                } else
                        j->updated++;
                /* Evicted again (but the last), so that keys come free. */
                if (i + 1 < RACE_ROUNDS && (r = registry_delete_member(j->reg, name, &e)) < 0) {
                        snprintf(j->error, sizeof(j->error), "delete %s: %s", name, errmsg_str(&e));
                        break;
                }
                if (i + 1 == RACE_ROUNDS)
                        j->kept++;
        }
        return NULL;
}

Test(registry, joins_and_key_changes_racing_for_keys_keep_them_unique, .init = setup, .fini = teardown,
     .timeout = 120) {
        struct race_job jobs[RACE_THREADS];
        pthread_barrier_t barrier;
        pthread_t th[RACE_THREADS];
        unsigned joined = 0, updated = 0, refused = 0, kept = 0;

        pthread_barrier_init(&barrier, NULL, RACE_THREADS);
        for (unsigned t = 0; t < RACE_THREADS; t++) {
                jobs[t] = (struct race_job){ .reg = open_default(), .barrier = &barrier, .id = t };
                cr_assert_eq(pthread_create(&th[t], NULL, race_thread, &jobs[t]), 0);
        }
        for (unsigned t = 0; t < RACE_THREADS; t++) {
                pthread_join(th[t], NULL);
                cr_assert_eq(jobs[t].error[0], 0, "%s", jobs[t].error);
                joined += jobs[t].joined;
                updated += jobs[t].updated;
                refused += jobs[t].refused;
                kept += jobs[t].kept;
                registry_free(jobs[t].reg);
        }
        pthread_barrier_destroy(&barrier);
        cr_assert_eq(count_keys("/arca/members/"), kept, "the last joins' records, no other");
        cr_assert_gt(refused, 0, "the keys were contended");
        cr_assert_gt(updated, 0, "keys were moved");
        assert_key_index_whole();
        cr_log_info("%u joined, %u keys changed, %u refused", joined, updated, refused);
}

struct expire_job {
        struct registry *reg;
        pthread_barrier_t *barrier;
        struct registry_member *members;
        unsigned n, removed, lost;
        char error[256];
};

static void *expire_thread(void *arg) {
        struct expire_job *j = arg;

        pthread_barrier_wait(j->barrier);
        for (unsigned i = 0; i < j->n; i++) {
                struct errmsg e = {};
                int r = registry_expire_member(j->reg, &j->members[i], &e);

                if (r == 0)
                        j->removed++;
                else if (r == -ESTALE || r == -ENOENT)
                        j->lost++;
                else
                        snprintf(j->error, sizeof(j->error), "%s: %s", j->members[i].name, errmsg_str(&e));
        }
        return NULL;
}

/* Two join services sweeping the same expired members at once: each
 * member is removed once, and nothing else is touched. */
Test(registry, two_sweepers_remove_each_member_once, .init = setup, .fini = teardown) {
        struct registry_member *list = NULL, keep = joiner("keep", UUID_C);
        struct expire_job jobs[2];
        pthread_barrier_t barrier;
        pthread_t th[2];
        size_t n = 0;

        for (unsigned i = 0; i < 12; i++) {
                char name[16], uuid[UUID_STRING_SIZE];
                struct registry_member m;

                snprintf(name, sizeof(name), "old-%u", i);
                snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-000000000001", i);
                m = joiner(name, uuid);
                cr_assert_eq(registry_join(reg, &m, CIDR, NULL), 0);
        }
        cr_assert_eq(registry_list_members(reg, &list, &n, NULL), 0);
        cr_assert_eq(n, 12);
        cr_assert_eq(registry_join(reg, &keep, CIDR, NULL), 0);
        pthread_barrier_init(&barrier, NULL, 2);
        for (unsigned t = 0; t < 2; t++) {
                jobs[t] = (struct expire_job){ .reg = open_default(), .barrier = &barrier, .members = list, .n = 12 };
                cr_assert_eq(pthread_create(&th[t], NULL, expire_thread, &jobs[t]), 0);
        }
        for (unsigned t = 0; t < 2; t++) {
                pthread_join(th[t], NULL);
                cr_assert_eq(jobs[t].error[0], 0, "%s", jobs[t].error);
                registry_free(jobs[t].reg);
        }
        pthread_barrier_destroy(&barrier);
        free(list);
        cr_assert_eq(jobs[0].removed + jobs[1].removed, 12);
        cr_assert_eq(jobs[0].lost + jobs[1].lost, 12);
        cr_assert_eq(count_keys("/arca/members/"), 1);
        cr_assert_eq(count_keys("/arca/mesh/"), 1);
        cr_assert_eq(count_keys("/arca/mesh-nodes/"), 1);
}

/* A handle with a member cache sees what other handles write: additions,
 * updates and removals. */
Test(registry, cached_member_list_follows_other_writers, .init = setup, .fini = teardown) {
        struct registry_cache *cache = NULL;
        struct registry *cached = open_default();
        struct registry_member *list = NULL, a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), got;
        size_t n = 99;

        cr_assert_eq(registry_cache_new(&cache), 0);
        registry_set_cache(cached, cache);
        cr_assert_eq(registry_list_members(cached, &list, &n, NULL), 0);
        cr_assert_eq(n, 0);

        cr_assert_eq(registry_join(reg, &a, CIDR, NULL), 0);
        cr_assert_eq(registry_join(reg, &b, CIDR, NULL), 0);
        cr_assert_eq(registry_list_members(cached, &list, &n, NULL), 0);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(list[0].name, "node-a");
        cr_assert_str_eq(list[1].name, "node-b");
        free(list);

        cr_assert_eq(registry_get_member(reg, "node-b", &got, NULL), 0);
        got.last_seen = 1700000777;
        cr_assert_eq(registry_update_member(reg, &got, NULL), 0);
        cr_assert_eq(registry_list_members(cached, &list, &n, NULL), 0);
        cr_assert_eq(n, 2);
        cr_assert_eq(list[1].last_seen, 1700000777, "the update is seen");
        cr_assert_eq(registry_get_member(reg, "node-b", &got, NULL), 0);
        cr_assert_eq(list[1].mod_revision, got.mod_revision);
        free(list);

        /* A removal and an addition since the last read. */
        cr_assert_eq(registry_delete_member(reg, "node-a", NULL), 0);
        a = joiner("node-c", UUID_C);
        cr_assert_eq(registry_join(reg, &a, CIDR, NULL), 0);
        cr_assert_eq(registry_list_members(cached, &list, &n, NULL), 0);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(list[0].name, "node-b");
        cr_assert_str_eq(list[1].name, "node-c");
        free(list);

        registry_free(cached);
        registry_cache_free(cache);
}

/* Views of the cache: handed out again while nothing changed, a new one
 * after a change that shares the unchanged records, each one immutable and
 * valid until its last holder lets go (also after the cache is gone). */
Test(registry, member_views_share_records_and_stay_as_read, .init = setup, .fini = teardown) {
        struct registry_members *v1 = NULL, *v2 = NULL, *v3 = NULL, *v4 = NULL;
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), got;
        struct registry_cache *cache = NULL;
        struct registry *cached = open_default();
        struct errmsg e = {};
        int64_t old_seen;

        cr_assert_eq(registry_cache_new(&cache), 0);
        registry_set_cache(cached, cache);
        cr_assert_eq(registry_join(reg, &a, CIDR, NULL), 0);
        cr_assert_eq(registry_join(reg, &b, CIDR, NULL), 0);
        cr_assert_eq(registry_members_get(cached, &v1, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(v1->n, 2);
        cr_assert_str_eq(v1->m[0]->name, "node-a");
        cr_assert_str_eq(v1->m[1]->name, "node-b");
        cr_assert_eq(registry_members_find(v1, "node-b"), v1->m[1]);
        cr_assert_null(registry_members_find(v1, "node-c"));
        cr_assert_eq(registry_members_get(cached, &v2, NULL), 0);
        cr_assert_eq(v2, v1, "nothing changed: the same view");
        old_seen = v1->m[1]->last_seen;

        cr_assert_eq(registry_get_member(reg, "node-b", &got, NULL), 0);
        got.last_seen = old_seen + 100;
        cr_assert_eq(registry_update_member(reg, &got, NULL), 0);
        cr_assert_eq(registry_members_get(cached, &v3, NULL), 0);
        cr_assert_neq(v3, v1, "a change makes a new view");
        cr_assert_eq(v3->n, 2);
        cr_assert_eq(v3->m[0], v1->m[0], "the unchanged record is shared");
        cr_assert_neq(v3->m[1], v1->m[1]);
        cr_assert_eq(v3->m[1]->last_seen, old_seen + 100);
        cr_assert_eq(v1->m[1]->last_seen, old_seen, "a view stays as it was read");

        v1 = registry_members_unref(v1);
        v2 = registry_members_unref(v2);
        cr_assert_str_eq(v3->m[0]->name, "node-a", "still held by v3 after v1 went");

        /* A removal: found by the names alone, the other records kept. */
        cr_assert_eq(registry_delete_member(reg, "node-a", NULL), 0);
        cr_assert_eq(registry_members_get(cached, &v4, NULL), 0);
        cr_assert_eq(v4->n, 1);
        cr_assert_str_eq(v4->m[0]->name, "node-b");
        cr_assert_eq(v4->m[0], v3->m[1], "no full read after a removal");
        /* A removal and an addition between two reads. */
        {
                struct registry_members *v5 = NULL;
                struct registry_member c = joiner("node-c", UUID_C), d = joiner("node-d", UUID_A);

                cr_assert_eq(registry_join(reg, &c, CIDR, NULL), 0);
                cr_assert_eq(registry_members_get(cached, &v5, NULL), 0);
                v5 = registry_members_unref(v5);
                cr_assert_eq(registry_delete_member(reg, "node-b", NULL), 0);
                cr_assert_eq(registry_join(reg, &d, CIDR, NULL), 0);
                cr_assert_eq(registry_members_get(cached, &v5, NULL), 0);
                cr_assert_eq(v5->n, 2);
                cr_assert_str_eq(v5->m[0]->name, "node-c");
                cr_assert_str_eq(v5->m[1]->name, "node-d");
                registry_members_unref(v5);
        }
        registry_free(cached);
        registry_cache_free(cache);
        cr_assert_str_eq(v3->m[0]->name, "node-a", "views outlive the cache");
        cr_assert_str_eq(v4->m[0]->name, "node-b");
        registry_members_unref(v3);
        registry_members_unref(v4);
        cr_assert_null(registry_members_unref(NULL));
}

/* Several threads with handles on one cache read views while another
 * writes, and release them in another thread than the one that got them
 * (as the join service's workers do not, but could): every view is
 * sorted and whole, and ASan (make check-asan) sees no use after free
 * or leak. */
#define VIEW_READERS 3
#define VIEW_ROUNDS 60
#define VIEW_MEMBERS 8

struct view_shared {
        pthread_mutex_t lock;
        struct registry_members *parked[VIEW_READERS * 2]; /* released by whoever comes next */
        struct registry_cache *cache;
        char error[256];
};

struct view_reader {
        struct view_shared *sh;
        unsigned id;
};

static void *view_reader_thread(void *arg) {
        struct view_reader *rd = arg;
        struct view_shared *sh = rd->sh;
        struct registry *rg = open_default();

        registry_set_cache(rg, sh->cache);
        for (unsigned round = 0; round < VIEW_ROUNDS; round++) {
                struct registry_members *v = NULL, *other;
                struct errmsg e = {};
                size_t slot = (rd->id * 7 + round) % ELEMENTSOF(sh->parked);

                if (registry_members_get(rg, &v, &e) < 0) {
                        pthread_mutex_lock(&sh->lock);
                        snprintf(sh->error, sizeof(sh->error), "reader %u: %s", rd->id, errmsg_str(&e));
                        pthread_mutex_unlock(&sh->lock);
                        break;
                }
                for (size_t i = 0; i < v->n; i++)
                        if ((i > 0 && strcmp(v->m[i - 1]->name, v->m[i]->name) >= 0) ||
                            registry_members_find(v, v->m[i]->name) != v->m[i]) {
                                pthread_mutex_lock(&sh->lock);
                                snprintf(sh->error, sizeof(sh->error), "reader %u: view out of order at %zu",
                                         rd->id, i);
                                pthread_mutex_unlock(&sh->lock);
                        }
                pthread_mutex_lock(&sh->lock);
                other = sh->parked[slot];
                sh->parked[slot] = v;
                pthread_mutex_unlock(&sh->lock);
                /* Maybe another thread's view, maybe an older one. */
                registry_members_unref(other);
        }
        registry_free(rg);
        return NULL;
}

Test(registry, member_views_under_concurrent_readers_and_writer, .init = setup, .fini = teardown,
     .timeout = 120) {
        struct view_shared sh = { .lock = PTHREAD_MUTEX_INITIALIZER };
        struct view_reader readers[VIEW_READERS];
        struct registry_member m[VIEW_MEMBERS];
        pthread_t th[VIEW_READERS];

        cr_assert_eq(registry_cache_new(&sh.cache), 0);
        for (unsigned i = 0; i < VIEW_MEMBERS / 2; i++) {
                char name[16], uuid[UUID_STRING_SIZE];

                snprintf(name, sizeof(name), "node-%u", i);
                snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-000000000002", i);
                m[i] = joiner(name, uuid);
                cr_assert_eq(registry_join(reg, &m[i], CIDR, NULL), 0);
        }
        for (unsigned t = 0; t < VIEW_READERS; t++) {
                readers[t] = (struct view_reader){ .sh = &sh, .id = t };
                cr_assert_eq(pthread_create(&th[t], NULL, view_reader_thread, &readers[t]), 0);
        }
        /* Meanwhile: updates, additions and a removal. */
        for (unsigned round = 0; round < 20; round++) {
                unsigned i = 1 + round % (VIEW_MEMBERS / 2 - 1); /* node-0 goes at round 10 */
                struct registry_member got;
                struct errmsg e = {};

                cr_assert_eq(registry_get_member(reg, m[i].name, &got, NULL), 0);
                got.last_seen += 1 + round;
                cr_assert_eq(registry_update_member(reg, &got, &e), 0, "%s", errmsg_str(&e));
                if (round % 5 == 4) {
                        unsigned k = VIEW_MEMBERS / 2 + round / 5;
                        char name[16], uuid[UUID_STRING_SIZE];

                        snprintf(name, sizeof(name), "node-%u", k);
                        snprintf(uuid, sizeof(uuid), "%08x-0000-4000-8000-000000000002", k);
                        m[k] = joiner(name, uuid);
                        cr_assert_eq(registry_join(reg, &m[k], CIDR, NULL), 0);
                }
                if (round == 10)
                        cr_assert_eq(registry_delete_member(reg, "node-0", NULL), 0);
        }
        for (unsigned t = 0; t < VIEW_READERS; t++)
                pthread_join(th[t], NULL);
        cr_assert_eq(sh.error[0], 0, "%s", sh.error);
        /* The cache's view after all that is whole: the same records as a
         * read of the registry without a cache (node-0 gone, the added
         * members there, every update's last_seen and revision). */
        {
                _cleanup_registry_members_ struct registry_members *cached = NULL, *direct = NULL;
                struct registry *rg = open_default();
                struct errmsg e = {};

                registry_set_cache(rg, sh.cache);
                cr_assert_eq(registry_members_get(rg, &cached, &e), 0, "%s", errmsg_str(&e));
                cr_assert_eq(registry_members_get(reg, &direct, &e), 0, "%s", errmsg_str(&e));
                cr_assert_eq(cached->n, direct->n);
                cr_assert_null(registry_members_find(cached, "node-0"));
                for (size_t i = 0; i < direct->n; i++) {
                        cr_assert_str_eq(cached->m[i]->name, direct->m[i]->name);
                        cr_assert_eq(cached->m[i]->mod_revision, direct->m[i]->mod_revision, "%s",
                                     direct->m[i]->name);
                        cr_assert_eq(cached->m[i]->last_seen, direct->m[i]->last_seen, "%s",
                                     direct->m[i]->name);
                }
                registry_free(rg);
        }
        /* Views outlive the cache: release the parked ones after it. */
        registry_cache_free(sh.cache);
        for (size_t i = 0; i < ELEMENTSOF(sh.parked); i++) {
                if (sh.parked[i] && sh.parked[i]->n > 0)
                        cr_assert_str_neq(sh.parked[i]->m[0]->name, "");
                registry_members_unref(sh.parked[i]);
        }
}

/* --- a TCP proxy in front of etcd, to hold its answers ------------------------------ */

/* Relays one handle's connections to etcd; while `hold` is set, etcd's
 * answers wait in the proxy (the request has reached etcd and been
 * answered, at the revision of that moment). Before it forwards request
 * number hook_at (counted from 1 over all connections), it runs hook. */
#define PROXY_MAX_CONNS 8

struct proxy {
        int lfd;
        char endpoint[64];
        pthread_t accept_thread;
        pthread_t relays[PROXY_MAX_CONNS];
        int fds[PROXY_MAX_CONNS][2];
        unsigned n_relays;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool hold, stop;
        unsigned held;     /* answers waiting while hold is set */
        unsigned requests; /* requests forwarded */
        unsigned hook_at;
        void (*hook)(void);
};

struct relay {
        struct proxy *p;
        int client, server;
};

static void *relay_thread(void *arg) {
        struct proxy *p = ((struct relay *) arg)->p;
        int client = ((struct relay *) arg)->client, server = ((struct relay *) arg)->server;
        char buf[65536];

        free(arg);
        for (;;) {
                struct pollfd pfd[2] = { { .fd = client, .events = POLLIN }, { .fd = server, .events = POLLIN } };
                ssize_t n;

                pthread_mutex_lock(&p->lock);
                if (p->stop) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                pthread_mutex_unlock(&p->lock);
                if (poll(pfd, 2, 100) <= 0)
                        continue;
                if (pfd[0].revents) {
                        bool run_hook = false;

                        n = read(client, buf, sizeof(buf));
                        if (n <= 0)
                                break;
                        if (n >= 5 && memcmp(buf, "POST ", 5) == 0) {
                                pthread_mutex_lock(&p->lock);
                                run_hook = ++p->requests == p->hook_at && p->hook;
                                pthread_mutex_unlock(&p->lock);
                        }
                        if (run_hook)
                                p->hook();
                        if (write_all(server, buf, (size_t) n) < 0)
                                break;
                }
                if (pfd[1].revents) {
                        n = read(server, buf, sizeof(buf));
                        if (n <= 0)
                                break;
                        pthread_mutex_lock(&p->lock);
                        if (p->hold) {
                                p->held++;
                                pthread_cond_broadcast(&p->cond);
                                while (p->hold && !p->stop)
                                        pthread_cond_wait(&p->cond, &p->lock);
                                p->held--;
                        }
                        pthread_mutex_unlock(&p->lock);
                        if (write_all(client, buf, (size_t) n) < 0)
                                break;
                }
        }
        shutdown(client, SHUT_RDWR);
        shutdown(server, SHUT_RDWR);
        return NULL;
}

static void *accept_thread(void *arg) {
        struct proxy *p = arg;

        for (;;) {
                struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
                struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(etcd.client_port),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                struct relay *r;
                int c, s;

                pthread_mutex_lock(&p->lock);
                if (p->stop || p->n_relays == PROXY_MAX_CONNS) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                pthread_mutex_unlock(&p->lock);
                if (poll(&pfd, 1, 100) <= 0)
                        continue;
                c = accept(p->lfd, NULL, NULL);
                if (c < 0)
                        continue;
                s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (s < 0 || connect(s, (struct sockaddr *) &to, sizeof(to)) < 0 || !(r = malloc(sizeof(*r)))) {
                        close(c);
                        if (s >= 0)
                                close(s);
                        continue;
                }
                *r = (struct relay){ .p = p, .client = c, .server = s };
                pthread_mutex_lock(&p->lock);
                p->fds[p->n_relays][0] = c;
                p->fds[p->n_relays][1] = s;
                if (pthread_create(&p->relays[p->n_relays], NULL, relay_thread, r) == 0)
                        p->n_relays++;
                else {
                        free(r);
                        close(c);
                        close(s);
                }
                pthread_mutex_unlock(&p->lock);
        }
        return NULL;
}

static void proxy_start(struct proxy *p) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        *p = (struct proxy){ .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(p->lfd, 0);
        cr_assert_eq(bind(p->lfd, (struct sockaddr *) &a, sizeof(a)), 0);
        cr_assert_eq(listen(p->lfd, 8), 0);
        cr_assert_eq(getsockname(p->lfd, (struct sockaddr *) &a, &len), 0);
        snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%u", ntohs(a.sin_port));
        cr_assert_eq(pthread_create(&p->accept_thread, NULL, accept_thread, p), 0);
}

static void proxy_hold(struct proxy *p, bool hold) {
        pthread_mutex_lock(&p->lock);
        p->hold = hold;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

/* Wait (up to 10 s) until an answer is held. */
static void proxy_wait_held(struct proxy *p) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&p->lock);
        while (p->held == 0)
                cr_assert_eq(pthread_cond_timedwait(&p->cond, &p->lock, &until), 0, "no answer reached the proxy");
        pthread_mutex_unlock(&p->lock);
}

static unsigned proxy_requests(struct proxy *p) {
        unsigned n;

        pthread_mutex_lock(&p->lock);
        n = p->requests;
        pthread_mutex_unlock(&p->lock);
        return n;
}

static void proxy_stop(struct proxy *p) {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->accept_thread, NULL);
        for (unsigned i = 0; i < p->n_relays; i++) {
                pthread_join(p->relays[i], NULL);
                close(p->fds[i][0]);
                close(p->fds[i][1]);
        }
        close(p->lfd);
}

/* Write a key outside the members and compact etcd's history up to
 * then: a read at any earlier revision fails from now on. */
static int compact_error;

static void write_and_compact(void) {
        char body[128];
        int64_t rev = 0;
        int r;

        /* "/arca/other" = L2FyY2Evb3RoZXI=, "x" = eA== */
        r = raw_post("/v3/kv/put", "{\"key\":\"L2FyY2Evb3RoZXI=\",\"value\":\"eA==\"}", &rev);
        if (r >= 0) {
                snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}", (long long) rev);
                r = raw_post("/v3/kv/compaction", body, NULL);
        }
        compact_error = r;
}

struct slow_get {
        struct registry *reg;
        struct registry_members *v;
        atomic_bool done;
        int r;
        struct errmsg e;
};

static void *slow_get_thread(void *arg) {
        struct slow_get *g = arg;

        g->r = registry_members_get(g->reg, &g->v, &g->e);
        atomic_store(&g->done, true);
        return NULL;
}

/* One reader's refresh stuck at etcd (its answer held in a proxy) keeps
 * no other reader of the cache waiting, and when it comes back with what
 * is older by then than the installed view, it does not install it but
 * hands out the newer one. */
Test(registry, a_slow_refresh_keeps_no_other_reader_waiting, .init = setup, .fini = teardown, .timeout = 60) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), c = joiner("node-c", UUID_C);
        struct registry_members *v1 = NULL, *v2 = NULL, *v3 = NULL, *v4 = NULL;
        struct registry_cache *cache = NULL;
        struct registry *fast = open_default(), *slow;
        struct slow_get g = {};
        struct proxy p;
        pthread_t th;
        struct errmsg e = {};

        proxy_start(&p);
        {
                /* Patient: its answer is held as long as the test needs. */
                const char *eps[] = { p.endpoint };
                slow = open_registry_timeout(eps, 1, NULL, 30000);
        }
        cr_assert_eq(registry_cache_new(&cache), 0);
        registry_set_cache(fast, cache);
        registry_set_cache(slow, cache);
        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_members_get(slow, &v1, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(v1->n, 1);

        /* The slow reader's refresh is answered (b joined), then held. */
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), 0, "%s", errmsg_str(&e));
        proxy_hold(&p, true);
        g.reg = slow;
        cr_assert_eq(pthread_create(&th, NULL, slow_get_thread, &g), 0);
        proxy_wait_held(&p);

        /* Another reader meanwhile: not kept waiting, and current. */
        cr_assert_eq(registry_join(reg, &c, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_members_get(fast, &v2, &e), 0, "%s", errmsg_str(&e));
        cr_assert_not(atomic_load(&g.done), "the slow refresh is still held");
        cr_assert_eq(v2->n, 3);
        cr_assert_str_eq(v2->m[2]->name, "node-c");
        cr_assert_eq(registry_members_get(fast, &v3, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(v3, v2, "nothing changed since: the same view");
        v3 = registry_members_unref(v3);

        /* The slow reader read before c joined: it gets the newer view. */
        proxy_hold(&p, false);
        pthread_join(th, NULL);
        cr_assert_eq(g.r, 0, "%s", errmsg_str(&g.e));
        cr_assert_eq(g.v, v2, "the newer installed view, not the older one it read");
        cr_assert_eq(registry_members_get(fast, &v4, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(v4, v2, "the older view was not installed");

        registry_members_unref(v1);
        registry_members_unref(v2);
        registry_members_unref(v4);
        registry_members_unref(g.v);
        registry_free(slow);
        registry_free(fast);
        registry_cache_free(cache);
        proxy_stop(&p);
}

/* After a removal the cache reads the member names at the revision of its
 * incremental read; when that revision is compacted away by then, the
 * names cannot be read, and the cache reads everything instead (and is
 * right). */
Test(registry, compacted_revision_falls_back_to_a_full_read, .init = setup, .fini = teardown, .timeout = 60) {
        struct registry_member a = joiner("node-a", UUID_A), b = joiner("node-b", UUID_B), c = joiner("node-c", UUID_C);
        struct registry_members *v1 = NULL, *v2 = NULL;
        struct registry_cache *cache = NULL;
        struct registry *cached;
        struct proxy p;
        struct errmsg e = {};

        proxy_start(&p);
        {
                const char *eps[] = { p.endpoint };
                cached = open_registry(eps, 1, NULL);
        }
        cr_assert_eq(registry_cache_new(&cache), 0);
        registry_set_cache(cached, cache);
        cr_assert_eq(registry_join(reg, &a, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_join(reg, &b, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_join(reg, &c, CIDR, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_members_get(cached, &v1, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(v1->n, 3);
        cr_assert_eq(proxy_requests(&p), 1, "one full read");

        cr_assert_eq(registry_delete_member(reg, "node-a", &e), 0, "%s", errmsg_str(&e));
        /* Request 2 reads what changed, request 3 the names: compacted. */
        pthread_mutex_lock(&p.lock);
        p.hook_at = 3;
        p.hook = write_and_compact;
        pthread_mutex_unlock(&p.lock);
        cr_assert_eq(registry_members_get(cached, &v2, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(compact_error, 0, "compaction: %s", strerror(-compact_error));
        cr_assert_eq(proxy_requests(&p), 4, "changes, names (refused), then everything");
        cr_assert_eq(v2->n, 2);
        cr_assert_str_eq(v2->m[0]->name, "node-b");
        cr_assert_str_eq(v2->m[1]->name, "node-c");
        cr_assert_neq(v2->m[0], v1->m[1], "read afresh, not shared with the old view");

        registry_members_unref(v1);
        registry_members_unref(v2);
        registry_free(cached);
        registry_cache_free(cache);
        proxy_stop(&p);
}

/* --- disks ------------------------------------------------------------------------- */

Test(registry, disks_belong_to_one_node, .init = setup, .fini = teardown) {
        char owner[NODE_NAME_MAX + 1], upper[UUID_STRING_SIZE];
        struct errmsg e = {};

        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), -ENOENT, "unknown UUID");
        cr_assert(strstr(e.text, UUID_A), "%s", e.text);

        snprintf(upper, sizeof(upper), "%s", UUID_A);
        for (char *p = upper; *p; p++)
                if (*p >= 'a' && *p <= 'f')
                        *p = (char) (*p - 'a' + 'A');
        cr_assert_eq(registry_put_disk(reg, upper, "node-a", &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(count_keys("/arca/disks/" UUID_A), 1, "stored under the lowercase UUID");
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), 0);
        cr_assert_str_eq(owner, "node-a");
        cr_assert_eq(registry_get_disk(reg, upper, owner, &e), 0);
        cr_assert_str_eq(owner, "node-a");

        cr_assert_eq(registry_put_disk(reg, UUID_A, "node-a", &e), 0, "idempotent");
        e = (struct errmsg){};
        cr_assert_eq(registry_put_disk(reg, UUID_A, "node-b", &e), -EEXIST);
        cr_assert(strstr(e.text, "node-a"), "%s", e.text);
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), 0);
        cr_assert_str_eq(owner, "node-a");

        cr_assert_eq(registry_put_disk(reg, "not-a-uuid", "node-a", NULL), -EINVAL);
        cr_assert_eq(registry_get_disk(reg, "0f3c6c43-5d2a-4a8e-9b1d-2f6f1b1e7a0", owner, NULL), -EINVAL);
        cr_assert_eq(registry_put_disk(reg, UUID_B, "Node_B", NULL), -EINVAL);
}

/* --- endpoints and transport --------------------------------------------------------- */

Test(registry, unreachable_first_endpoint_falls_back_to_second, .init = setup, .fini = teardown) {
        char dead[64], owner[NODE_NAME_MAX + 1], a[INET6_ADDRSTRLEN];
        struct registry *rg;
        struct errmsg e = {};

        snprintf(dead, sizeof(dead), "http://127.0.0.1:%u", test_etcd_unused_port());
        const char *eps[] = { dead, etcd.endpoint };
        rg = open_registry(eps, 2, NULL);
        cr_assert_eq(registry_put_disk(rg, UUID_A, "node-a", &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_allocate_address(rg, "node-a", CIDR, a, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_get_disk(rg, UUID_A, owner, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(owner, "node-a");
        registry_free(rg);

        /* Working endpoint first, dead one second: no difference. */
        const char *eps2[] = { etcd.endpoint, dead };
        rg = open_registry(eps2, 2, NULL);
        cr_assert_eq(registry_get_disk(rg, UUID_A, owner, &e), 0, "%s", errmsg_str(&e));
        registry_free(rg);

        /* Only dead endpoints: both named. */
        char dead2[64];
        snprintf(dead2, sizeof(dead2), "http://127.0.0.1:%u", test_etcd_unused_port());
        const char *eps3[] = { dead, dead2 };
        rg = open_registry(eps3, 2, NULL);
        e = (struct errmsg){};
        cr_assert_eq(registry_get_disk(rg, UUID_A, owner, &e), -ECONNREFUSED, "%s", e.text);
        cr_assert(strstr(e.text, dead) && strstr(e.text, dead2), "%s", e.text);
        registry_free(rg);
}

Test(registry, stopped_etcd_gives_an_error_naming_the_endpoint, .init = setup, .fini = teardown) {
        struct registry_member m, *list = NULL;
        char a[INET6_ADDRSTRLEN], owner[NODE_NAME_MAX + 1];
        struct errmsg e = {};
        size_t n;

        m = join_node(reg, "node-a", UUID_A);
        test_etcd_kill(&etcd);

        cr_assert_eq(registry_get_member(reg, "node-a", &m, &e), -ECONNREFUSED, "%s", e.text);
        cr_assert(strstr(e.text, etcd.endpoint), "error does not name %s: %s", etcd.endpoint, e.text);
        e = (struct errmsg){};
        cr_assert_lt(registry_put_member(reg, &m, &e), 0);
        cr_assert(strstr(e.text, etcd.endpoint), "%s", e.text);
        cr_assert_lt(registry_list_members(reg, &list, &n, NULL), 0);
        cr_assert_lt(registry_allocate_address(reg, "node-b", CIDR, a, NULL), 0);
        cr_assert_lt(registry_delete_member(reg, "node-a", NULL), 0);
        cr_assert_lt(registry_put_disk(reg, UUID_B, "node-b", NULL), 0);
        cr_assert_lt(registry_get_disk(reg, UUID_A, owner, NULL), 0);
}

Test(registry, endpoints_are_checked, .init = setup, .fini = teardown) {
        const char *bad[] = { "127.0.0.1:2379" };
        const char *ftp[] = { "ftp://127.0.0.1:2379" };
        struct registry_config cfg = { .endpoints = bad, .n_endpoints = 1 };
        struct registry *rg = NULL;
        struct errmsg e = {};

        cr_assert_eq(registry_new(&cfg, &rg, &e), -EINVAL);
        cr_assert(strstr(e.text, "127.0.0.1:2379"), "%s", e.text);
        cfg.endpoints = ftp;
        cr_assert_eq(registry_new(&cfg, &rg, NULL), -EINVAL);
        cfg.n_endpoints = 0;
        cr_assert_eq(registry_new(&cfg, &rg, NULL), -EINVAL);
        cfg = (struct registry_config){ .endpoints = bad, .n_endpoints = 1, .cert_file = "/etc/hostname" };
        cr_assert_eq(registry_new(&cfg, &rg, NULL), -EINVAL, "certificate without key");
        cr_assert_null(rg);
}

static void setup_tls(void) {
        start_etcd(&etcd, true);
}

Test(registry, https_with_client_certificate, .init = setup_tls, .fini = teardown) {
        const char *eps[] = { etcd.endpoint };
        struct registry_config cfg = {
                .endpoints = eps,
                .n_endpoints = 1,
                .ca_file = etcd.ca_file,
                .cert_file = etcd.cert_file,
                .key_file = etcd.key_file,
                .timeout_ms = 3000,
        };
        char owner[NODE_NAME_MAX + 1];
        struct registry *rg = NULL;
        struct errmsg e = {};

        cr_assert_eq(registry_new(&cfg, &reg, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_put_disk(reg, UUID_A, "node-a", &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(registry_get_disk(reg, UUID_A, owner, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(owner, "node-a");

        /* No client certificate: etcd refuses the handshake. */
        cfg.cert_file = cfg.key_file = NULL;
        cr_assert_eq(registry_new(&cfg, &rg, &e), 0);
        e = (struct errmsg){};
        cr_assert_lt(registry_get_disk(rg, UUID_A, owner, &e), 0);
        cr_assert(strstr(e.text, etcd.endpoint), "%s", e.text);
        rg = registry_free(rg);

        /* Without our CA, the server's certificate is not trusted. */
        cfg = (struct registry_config){ .endpoints = eps,
                                        .n_endpoints = 1,
                                        .cert_file = etcd.cert_file,
                                        .key_file = etcd.key_file,
                                        .timeout_ms = 3000 };
        cr_assert_eq(registry_new(&cfg, &rg, &e), 0);
        e = (struct errmsg){};
        cr_assert_lt(registry_get_disk(rg, UUID_A, owner, &e), 0);
        cr_assert(strstr(e.text, etcd.endpoint), "%s", e.text);
        registry_free(rg);
}

/* --- member parser (pure) --------------------------------------------------------------- */

#define VALID_MEMBER                                                                                        \
        "{\"name\":\"node-1\",\"role\":\"worker\",\"meshAddress\":\"10.123.0.2\","                          \
        "\"wireguardPublicKey\":\"" WG_KEY "\",\"endpoint\":\"192.0.2.7:51820\","                           \
        "\"diskUuid\":\"" UUID_A "\",\"joinTime\":1700000000,\"lastSeen\":1700000042}"

/* VALID_MEMBER with the value of field replaced by raw JSON text. */
static char *with_field(const char *field, const char *raw) {
        char pattern[64], *out = NULL;
        const char *start, *end;

        snprintf(pattern, sizeof(pattern), "\"%s\":", field);
        start = strstr(VALID_MEMBER, pattern);
        cr_assert(start, "no field %s", field);
        start += strlen(pattern);
        end = start;
        if (*end == '"')
                end = strchr(end + 1, '"') + 1;
        else
                end += strcspn(end, ",}");
        cr_assert(asprintf(&out, "%.*s%s%s", (int) (start - VALID_MEMBER), VALID_MEMBER, raw, end) > 0);
        return out;
}

Test(member, valid_record_parses_and_round_trips) {
        struct registry_member m, again;
        _cleanup_free_ char *json = NULL;
        struct errmsg e = {};

        cr_assert_eq(registry_member_parse(VALID_MEMBER, strlen(VALID_MEMBER), &m, &e), 0, "%s", e.text);
        cr_assert_str_eq(m.name, "node-1");
        cr_assert_str_eq(m.role, "worker");
        cr_assert_str_eq(m.mesh_address, "10.123.0.2");
        cr_assert_str_eq(m.wg_public_key, WG_KEY);
        cr_assert_str_eq(m.endpoint, "192.0.2.7:51820");
        cr_assert_str_eq(m.disk_uuid, UUID_A);
        cr_assert_eq(m.join_time, 1700000000);
        cr_assert_eq(m.last_seen, 1700000042);
        cr_assert_eq(registry_member_to_json(&m, &json, &e), 0);
        cr_assert_eq(registry_member_parse(json, strlen(json), &again, &e), 0);
        cr_assert_eq(memcmp(&m, &again, sizeof(m)), 0);
}

Test(member, each_malformed_field_is_refused_naming_it) {
        static const struct {
                const char *field, *raw;
        } cases[] = {
                { "name", "\"\"" },
                { "name", "\"Node-1\"" },
                { "name", "\"node_1\"" },
                { "name", "\"-node\"" },
                { "name", "\"node.\"" },
                { "name", "\"node/1\"" },
                { "name", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"" }, /* 64 */
                { "name", "7" },
                { "role", "\"master\"" },
                { "role", "\"Worker\"" },
                { "role", "\"\"" },
                { "role", "null" },
                { "meshAddress", "\"10.123.0.256\"" },
                { "meshAddress", "\"10.123.0.02\"" },
                { "meshAddress", "\"2001:DB8::1\"" },
                { "meshAddress", "\"2001:db8:0::1\"" },
                { "meshAddress", "\"node-1\"" },
                { "meshAddress", "\"10.123.0.2/16\"" },
                { "wireguardPublicKey", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\"" }, /* 31 bytes */
                { "wireguardPublicKey",
                  "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\"" }, /* non-canonical */
                { "wireguardPublicKey", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"" },
                { "wireguardPublicKey", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-=\"" },
                { "wireguardPublicKey", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"" },
                { "endpoint", "\"192.0.2.7\"" },
                { "endpoint", "\"192.0.2.7:0\"" },
                { "endpoint", "\"192.0.2.7:65536\"" },
                { "endpoint", "\"192.0.2.7: 80\"" },
                { "endpoint", "\"192.0.2.7:080\"" },
                { "endpoint", "\"2001:db8::1:80\"" },
                { "endpoint", "\"[2001:db8::1]\"" },
                { "endpoint", "\"host name:80\"" },
                { "endpoint",
                  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example:80\"" },
                { "diskUuid", "\"0F3C6C43-5D2A-4A8E-9B1D-2F6F1B1E7A01\"" },
                { "diskUuid", "\"0f3c6c435d2a4a8e9b1d2f6f1b1e7a01\"" },
                { "diskUuid", "\"0f3c6c43-5d2a-4a8e-9b1d-2f6f1b1e7a0g\"" },
                { "diskUuid", "\"{0f3c6c43-5d2a-4a8e-9b1d-2f6f1b1e7a01}\"" },
                { "joinTime", "-1" },
                { "joinTime", "\"1700000000\"" },
                { "joinTime", "1.5" },
                { "joinTime", "253402300800" },
                { "lastSeen", "-5" },
                { "lastSeen", "true" },
                { "lastSeen", "99999999999999999999999" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *doc = with_field(cases[i].field, cases[i].raw);
                struct registry_member m = { .name = "untouched" };
                struct errmsg e = {};
                char quoted[64];
                int r = registry_member_parse(doc, strlen(doc), &m, &e);

                cr_assert_lt(r, 0, "accepted %s = %s", cases[i].field, cases[i].raw);
                snprintf(quoted, sizeof(quoted), "'%s'", cases[i].field);
                cr_assert(strstr(e.text, quoted), "%s = %s: reason does not name the field: %s",
                          cases[i].field, cases[i].raw, e.text);
                cr_assert_str_eq(m.name, "untouched", "output written on failure");
        }
}

Test(member, ak_name_is_optional_and_checked) {
        static const char *const bad[] = {
                "\"\"", "\"000B00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"",
                "\"000400112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"",
                "\"000b00112233445566778899aabbccddeeff00112233445566778899aabbccddeef\"", "7",
        };
        struct registry_member m, again;
        _cleanup_free_ char *json = NULL, *with = NULL;
        struct errmsg e = {};

        cr_assert(asprintf(&with, "%.*s,\"akName\":\"%s\"}", (int) strlen(VALID_MEMBER) - 1, VALID_MEMBER,
                           AK_NAME) > 0);
        cr_assert_eq(registry_member_parse(with, strlen(with), &m, &e), 0, "%s", e.text);
        cr_assert_str_eq(m.ak_name, AK_NAME);
        cr_assert_eq(registry_member_to_json(&m, &json, &e), 0);
        cr_assert_eq(registry_member_parse(json, strlen(json), &again, &e), 0);
        cr_assert_str_eq(again.ak_name, AK_NAME);
        free(json);
        json = NULL;

        /* Without it: "" in the struct, and not written. */
        cr_assert_eq(registry_member_parse(VALID_MEMBER, strlen(VALID_MEMBER), &m, &e), 0);
        cr_assert_str_eq(m.ak_name, "");
        cr_assert_eq(registry_member_to_json(&m, &json, &e), 0);
        cr_assert_null(strstr(json, "akName"), "%s", json);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *doc = NULL;
                cr_assert(asprintf(&doc, "%.*s,\"akName\":%s}", (int) strlen(VALID_MEMBER) - 1, VALID_MEMBER,
                                   bad[i]) > 0);
                e = (struct errmsg){};
                cr_assert_lt(registry_member_parse(doc, strlen(doc), &m, &e), 0, "accepted akName %s", bad[i]);
                cr_assert(strstr(e.text, "'akName'"), "%s", e.text);
        }
}

Test(member, malformed_documents_are_refused) {
        static const char *const docs[] = {
                "", "null", "[]", "\"node-1\"", "{}", VALID_MEMBER "x", "{\"name\":\"node-1\"}",
        };
        struct registry_member m;

        for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
                struct errmsg e = {};
                cr_assert_lt(registry_member_parse(docs[i], strlen(docs[i]), &m, &e), 0, "accepted %s",
                             docs[i]);
                cr_assert_neq(e.text[0], 0);
        }

        /* Unknown, duplicate and missing fields. */
        const char *unknown = "{\"name\":\"node-1\",\"admin\":true}";
        struct errmsg e = {};
        cr_assert_lt(registry_member_parse(unknown, strlen(unknown), &m, &e), 0);
        cr_assert(strstr(e.text, "'admin'"), "%s", e.text);

        _cleanup_free_ char *dup = NULL;
        cr_assert(asprintf(&dup, "{\"name\":\"evil\",%s", VALID_MEMBER + 1) > 0);
        e = (struct errmsg){};
        cr_assert_lt(registry_member_parse(dup, strlen(dup), &m, &e), 0);
        cr_assert(strstr(e.text, "duplicate"), "%s", e.text);

        const char *missing = "{\"name\":\"node-1\",\"role\":\"worker\"}";
        e = (struct errmsg){};
        cr_assert_lt(registry_member_parse(missing, strlen(missing), &m, &e), 0);
        cr_assert(strstr(e.text, "'meshAddress'"), "%s", e.text);

        /* Every strict prefix of a valid record is refused. */
        for (size_t n = 0; n < strlen(VALID_MEMBER); n++)
                cr_assert_lt(registry_member_parse(VALID_MEMBER, n, &m, NULL), 0, "accepted %zu bytes", n);
}

Test(member, serializer_refuses_invalid_members) {
        struct registry_member m = make_member("node-1", "10.0.0.2", UUID_A);
        _cleanup_free_ char *json = NULL;
        struct errmsg e = {};

        memset(m.endpoint, 'a', sizeof(m.endpoint)); /* not terminated */
        cr_assert_eq(registry_member_to_json(&m, &json, &e), -EINVAL);
        cr_assert(strstr(e.text, "'endpoint'"), "%s", e.text);
        cr_assert_null(json);
        m = make_member("node-1", "::ffff:10.0.0.2", UUID_A);
        cr_assert_eq(registry_member_validate(&m, NULL), 0, "canonical IPv6 (mapped) address");
        m = make_member("node-1", "fd00::2", UUID_A);
        cr_assert_eq(registry_member_validate(&m, NULL), 0);
}

/* --- etcd response parsers (pure) ------------------------------------------------------ */

#define HEADER "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"7\",\"raft_term\":\"2\"}"
/* key "/arca/members/a" value "hello" */
#define KV                                                                                                  \
        "{\"key\":\"L2FyY2EvbWVtYmVycy9h\",\"create_revision\":\"3\",\"mod_revision\":\"5\",\"version\":"   \
        "\"2\","                                                                                            \
        "\"value\":\"aGVsbG8=\"}"
#define RANGE_OK "{" HEADER ",\"kvs\":[" KV "],\"count\":\"1\"}"
#define TXN_OK                                                                                              \
        "{" HEADER                                                                                          \
        ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"7\"}}},"          \
        "{\"response_range\":{\"header\":{\"revision\":\"7\"},\"kvs\":[" KV "],\"count\":\"1\"}},"          \
        "{\"response_delete_range\":{\"header\":{\"revision\":\"7\"},\"deleted\":\"3\"}},"          \
        "{\"response_txn\":{\"header\":{},\"succeeded\":true,\"responses\":[]}}]}"

Test(etcd_response, valid_range_and_txn_parse) {
        struct registry_range rr = {};
        struct registry_txn t = {};
        struct errmsg e = {};
        const char *empty = "{" HEADER "}";

        cr_assert_eq(registry_parse_range_response(RANGE_OK, strlen(RANGE_OK), 10, &rr, &e), 0, "%s",
                     e.text);
        cr_assert_eq(rr.revision, 7);
        cr_assert_eq(rr.n_kvs, 1);
        cr_assert_eq(rr.count, 1);
        cr_assert_not(rr.more);
        cr_assert_str_eq(rr.kvs[0].key, "/arca/members/a");
        cr_assert_str_eq(rr.kvs[0].value, "hello");
        cr_assert_eq(rr.kvs[0].create_revision, 3);
        cr_assert_eq(rr.kvs[0].mod_revision, 5);
        cr_assert_eq(rr.kvs[0].version, 2);
        registry_range_done(&rr);

        /* etcd omits empty and zero fields. */
        cr_assert_eq(registry_parse_range_response(empty, strlen(empty), 10, &rr, &e), 0, "%s", e.text);
        cr_assert_eq(rr.n_kvs, 0);
        cr_assert_eq(rr.count, 0);
        registry_range_done(&rr);

        cr_assert_eq(registry_parse_txn_response(TXN_OK, strlen(TXN_OK), 10, &t, &e), 0, "%s", e.text);
        cr_assert(t.succeeded);
        cr_assert_eq(t.n_responses, 4);
        cr_assert_eq(t.responses[0].type, REGISTRY_OP_PUT);
        cr_assert_eq(t.responses[1].type, REGISTRY_OP_RANGE);
        cr_assert_str_eq(t.responses[1].range.kvs[0].value, "hello");
        cr_assert_eq(t.responses[2].type, REGISTRY_OP_DELETE_RANGE);
        cr_assert_eq(t.responses[2].deleted, 3);
        cr_assert_eq(t.responses[3].type, REGISTRY_OP_TXN, "a nested transaction");
        cr_assert(t.responses[3].succeeded);
        registry_txn_done(&t);

        cr_assert_eq(registry_parse_txn_response(empty, strlen(empty), 10, &t, &e), 0, "%s", e.text);
        cr_assert_not(t.succeeded, "omitted succeeded is false");
        registry_txn_done(&t);
}

Test(etcd_response, truncated_responses_are_refused) {
        struct registry_range rr;
        struct registry_txn t;

        for (size_t n = 0; n < strlen(RANGE_OK); n++) {
                struct errmsg e = {};
                cr_assert_lt(registry_parse_range_response(RANGE_OK, n, 10, &rr, &e), 0,
                             "accepted %zu bytes", n);
                cr_assert_neq(e.text[0], 0);
        }
        for (size_t n = 0; n < strlen(TXN_OK); n++) {
                struct errmsg e = {};
                cr_assert_lt(registry_parse_txn_response(TXN_OK, n, 10, &t, &e), 0, "accepted %zu bytes", n);
                cr_assert_neq(e.text[0], 0);
        }
}

Test(etcd_response, garbage_and_wrong_types_are_refused) {
        static const char *const range_bad[] = {
                "",
                "garbage",
                "<html>502 Bad Gateway</html>",
                "null",
                "[]",
                "{}",
                "{\"kvs\":[" KV "]}",
                "{\"header\":{}}",
                "{\"header\":{\"revision\":7}}",
                "{\"header\":{\"revision\":\"-7\"}}",
                "{\"header\":{\"revision\":\"07\"}}",
                "{\"header\":{\"revision\":\"0\"}}",
                "{\"header\":{\"revision\":\"99999999999999999999\"}}",
                "{\"header\":{\"revision\":\"9223372036854775808\"}}",
                "{\"header\":{\"revision\":\"7 \"}}",
                "{" HEADER ",\"kvs\":{}}",
                "{" HEADER ",\"kvs\":[7],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[{}],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[{\"key\":\"\"}],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[{\"key\":\"not base64!\"}],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[{\"key\":\"YQ==\",\"value\":7}],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":5}],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[" KV "]}",
                "{" HEADER ",\"kvs\":[" KV "," KV "],\"count\":\"1\"}",
                "{" HEADER ",\"kvs\":[" KV "],\"count\":\"1\",\"more\":\"false\"}",
                "{" HEADER ",\"count\":1}",
                "{" HEADER "," HEADER "}",
                "{" HEADER ",\"kvs\":[{\"key\":\"YQ==\",\"key\":\"Yg==\"}],\"count\":\"1\"}",
                RANGE_OK RANGE_OK,
        };
        static const char *const txn_bad[] = {
                "{" HEADER ",\"succeeded\":\"true\"}",
                "{" HEADER ",\"responses\":{}}",
                "{" HEADER ",\"responses\":[{}]}",
                "{" HEADER ",\"responses\":[{\"response_txn\":[]}]}",
                "{" HEADER ",\"responses\":[{\"response_txn\":{\"succeeded\":1}}]}",
                "{" HEADER ",\"responses\":[{\"response_watch\":{}}]}",
                "{" HEADER ",\"responses\":[{\"response_put\":{},\"response_range\":{}}]}",
                "{" HEADER ",\"responses\":[{\"response_range\":[]}]}",
                "{" HEADER ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":7}],\"count\":\"1\"}}]}",
                "{" HEADER ",\"responses\":[{\"response_delete_range\":{\"deleted\":3}}]}",
                "{" HEADER
                ",\"responses\":[{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},"
                "{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},"
                "{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},"
                "{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},{\"response_put\":{}},"
                "{\"response_put\":{}},{\"response_put\":{}}]}",
        };
        struct registry_range rr;
        struct registry_txn t;

        for (size_t i = 0; i < ELEMENTSOF(range_bad); i++) {
                struct errmsg e = {};
                cr_assert_lt(registry_parse_range_response(range_bad[i], strlen(range_bad[i]), 10, &rr, &e),
                             0, "range accepted %s", range_bad[i]);
                cr_assert(strstr(e.text, "etcd range response"), "%s", e.text);
        }
        for (size_t i = 0; i < ELEMENTSOF(txn_bad); i++) {
                struct errmsg e = {};
                cr_assert_lt(registry_parse_txn_response(txn_bad[i], strlen(txn_bad[i]), 10, &t, &e), 0,
                             "txn accepted %s", txn_bad[i]);
                cr_assert(strstr(e.text, "etcd txn response"), "%s", e.text);
        }

        /* More pairs than the caller allows. */
        struct errmsg e = {};
        cr_assert_eq(registry_parse_range_response(RANGE_OK, strlen(RANGE_OK), 0, &rr, &e), -EFBIG);
}

Test(etcd_response, error_bodies_map_to_errno) {
        const char *unavailable =
                "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\","
                "\"code\":14}";
        const char *invalid = "{\"error\":\"x\",\"message\":\"etcdserver: key is not provided\",\"code\":3}";
        const char *evil = "{\"message\":\"line\\nforged: yes\",\"code\":3}";
        const char *bad_code = "{\"code\":99,\"message\":\"x\"}";
        const char *string_code = "{\"code\":\"3\",\"message\":\"x\"}";
        struct errmsg e = {};
        int code;

        cr_assert_eq(registry_parse_error_response(unavailable, strlen(unavailable), &code, &e), -EAGAIN);
        cr_assert_eq(code, 14);
        cr_assert(strstr(e.text, "no leader"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(registry_parse_error_response(invalid, strlen(invalid), &code, &e), -EINVAL);
        cr_assert(strstr(e.text, "key is not provided"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(registry_parse_error_response(evil, strlen(evil), &code, &e), -EINVAL);
        cr_assert_null(strchr(e.text, '\n'), "control characters pass into the reason: %s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(registry_parse_error_response("Bad Gateway", 11, &code, &e), -EPROTO);
        cr_assert_eq(code, -1);
        cr_assert_eq(registry_parse_error_response(bad_code, strlen(bad_code), &code, NULL), -EPROTO);
        cr_assert_eq(registry_parse_error_response(string_code, strlen(string_code), &code, NULL), -EPROTO);
}
