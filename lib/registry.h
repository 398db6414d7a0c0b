/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The membership registry that every join service reads and writes
 * (DESIGN.md, Mesh): etcd v3, spoken through its JSON gRPC gateway
 * (POST /v3/kv/range and /v3/kv/txn, keys and values base64) with the
 * libevent HTTP client (http-client.h), one kept connection per endpoint.
 * Keys under a prefix (default "/arca/"):
 *
 *   <prefix>members/<name>         member record (JSON, below)
 *   <prefix>mesh/<address>         node name holding that mesh address
 *   <prefix>mesh-nodes/<name>      mesh address held by that node (the
 *                                  reverse index that makes allocation
 *                                  idempotent per node, atomically)
 *   <prefix>disks/<lowercase-uuid> node name owning that state disk
 *   <prefix>wgkeys/<wg-key>        node name whose record names that
 *                                  WireGuard public key (base64, as in
 *                                  the record)
 *
 * Every write is one etcd transaction whose comparisons keep these
 * invariants when several join services work at once: an address is held
 * by at most one node, a node holds at most one address, a disk belongs to
 * one node, a member record names the address and disk its node holds,
 * and a WireGuard key is named by one member record at most (every agent
 * refuses a peer list naming a key twice, docs/MESH.md). A record that
 * names a key holds its wgkeys/ entry, or finds it absent and creates it;
 * an entry naming another member refuses the write with -EEXIST naming
 * that member. Changing a record's key deletes the old key's entry in the
 * same transaction, and so does removing the record (eviction, expiry),
 * each only while the entry names that member. A record written before
 * the index existed has no entry: its next write (a join, or the mesh
 * refresh's update, at least every refresh interval) creates it; until
 * then only the join service's check of its member list guards its key.
 * An entry naming a member whose record does not name that key (left
 * behind by a join service that did not know the index) is stale: a write
 * with the key takes it over, while that member's record stays as read.
 *
 * A handle is for one thread at a time; give each thread its own. The
 * endpoints are tried in turn (starting at the last one that answered) when
 * one cannot be reached or answers "unavailable".
 *
 * Member record, JSON object, unknown fields refused:
 *   {"name": "node-1", "role": "worker", "meshAddress": "10.123.0.2",
 *    "wireguardPublicKey": "<base64 of 32 bytes>", "endpoint": "192.0.2.7:51820",
 *    "diskUuid": "<lowercase canonical UUID>", "joinTime": 1700000000,
 *    "lastSeen": 1700000042, "akName": "000b<64 hex>"}
 * akName (optional: absent in records written before it existed, e.g. by
 * an init) is the TPM name of the attestation key the node attested with
 * when it joined: a later attestation (mesh refresh) is matched to its
 * member by it. lastSeen is when the member last attested (join or mesh
 * refresh); a member unseen for longer than the join services' member
 * timeout is expired (registry_expire_member).
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "macro.h"
#include "validate.h"

#define REGISTRY_DEFAULT_PREFIX "/arca/"
#define REGISTRY_PREFIX_MAX 128
#define REGISTRY_MAX_ENDPOINTS 16
/* Bounds on what etcd may send back. */
#define REGISTRY_MAX_RESPONSE (16 * 1024 * 1024)
#define REGISTRY_MAX_KEY 1024
#define REGISTRY_MAX_VALUE (64 * 1024)
#define REGISTRY_MAX_MEMBER_JSON 4096
/* One more than a peer list may hold (MSG_MAX_PEERS): every member's
 * answer lists all others. */
#define REGISTRY_MAX_MEMBERS 4096
#define REGISTRY_MAX_ADDRESSES 65536
#define REGISTRY_MAX_DISKS 65536
#define REGISTRY_MAX_TXN_OPS 16
/* "000b" + 64 hex digits: nameAlg SHA-256 and the digest of TPMT_PUBLIC. */
#define REGISTRY_AK_NAME_HEX 68
/* Unix seconds before the year 10000. */
#define REGISTRY_MAX_TIME INT64_C(253402300799)

struct registry_config {
        /* "http://host:port" or "https://host:port", tried in order. */
        const char *const *endpoints;
        size_t n_endpoints;
        const char *prefix;    /* NULL: REGISTRY_DEFAULT_PREFIX; must end in '/' */
        const char *ca_file;   /* https: CA bundle for etcd's certificate; NULL: system store */
        const char *cert_file; /* https: client certificate (mTLS), together with key_file */
        const char *key_file;
        long timeout_ms; /* per request and endpoint; 0: 5000 */
};

struct registry_member {
        char name[NODE_NAME_MAX + 1];        /* [a-z0-9] at both ends, [a-z0-9.-] inside */
        char role[16];                       /* "control-plane" | "worker" */
        char mesh_address[INET6_ADDRSTRLEN]; /* canonical IPv4 or IPv6 literal */
        char wg_public_key[WG_KEY_B64_SIZE]; /* base64 of 32 bytes */
        char endpoint[ENDPOINT_MAX];         /* underlay host:port */
        char disk_uuid[UUID_STRING_SIZE];    /* lowercase canonical */
        int64_t join_time;                   /* unix seconds */
        int64_t last_seen;
        char ak_name[REGISTRY_AK_NAME_HEX + 1]; /* lowercase hex; "" when not recorded */
        /* Not part of the record: etcd's mod_revision of it when read
         * (registry_get_member, registry_list_members), for conditional
         * updates; 0 otherwise. */
        int64_t mod_revision;
};

struct registry;

int registry_new(const struct registry_config *cfg, struct registry **ret, struct errmsg *e);
struct registry *registry_free(struct registry *reg);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct registry *, registry_free);
#define _cleanup_registry_ _cleanup_(registry_freep)

/* Create or replace the member record of m->name. The node must hold
 * m->mesh_address (registry_allocate_address) and own m->disk_uuid
 * (registry_put_disk): otherwise -EADDRNOTAVAIL (address not allocated),
 * -EADDRINUSE (address held by another node), -ENOENT (disk not
 * registered) or -EEXIST (disk of another node, or m's WireGuard key
 * another member's). An invalid member is -EINVAL naming the field. */
int registry_put_member(struct registry *reg, const struct registry_member *m, struct errmsg *e);
/* -ENOENT if there is no member of that name. */
int registry_get_member(struct registry *reg, const char *name, struct registry_member *ret,
                        struct errmsg *e);
/* All members, sorted by name; *ret is a malloc'ed array (NULL when empty),
 * a copy of each record. */
int registry_list_members(struct registry *reg, struct registry_member **ret, size_t *ret_n,
                          struct errmsg *e);

/* All members, sorted by name, as a read-only view shared by whoever reads
 * them: the records in it are shared with the member cache and with other
 * views of the same records, so that a view costs a pointer per member,
 * and a view nothing changed since is handed out again. A join service
 * answers every join and refresh with the peers; copying every record per
 * request made its memory grow with the members times the workers.
 * Release with registry_members_unref (any thread). */
struct registry_members {
        size_t n;
        const struct registry_member *const *m;
};
int registry_members_get(struct registry *reg, struct registry_members **ret, struct errmsg *e);
struct registry_members *registry_members_unref(struct registry_members *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct registry_members *, registry_members_unref);
#define _cleanup_registry_members_ _cleanup_(registry_members_unrefp)
/* The member named `name` in v (binary search), NULL if none. */
const struct registry_member *registry_members_find(const struct registry_members *v, const char *name);

/* A member view shared by handles of one registry (same endpoints and
 * prefix) in one process, for callers that list members often: a handle
 * attached to it reads only the records written since its last read
 * (etcd's min_mod_revision); when etcd counts fewer members than the
 * view holds (one was removed), it reads the member names alone at that
 * revision and drops the missing ones, and everything again only when
 * names and count disagree. Any thread. Each reader reads etcd itself,
 * without the cache's lock, from the view installed when it began, and
 * installs what it read only if that is newer (etcd's revision) than the
 * view installed by then, which it hands out instead otherwise: a reader
 * never waits for another's round trips to etcd. The cache must outlive
 * the handles. */
struct registry_cache;
int registry_cache_new(struct registry_cache **ret);
struct registry_cache *registry_cache_free(struct registry_cache *c);
void registry_set_cache(struct registry *reg, struct registry_cache *c);

/* Remove the member record, its key's wgkeys/ entry, its mesh address and
 * every disk registered to it, in one transaction. -ENOENT if the node
 * has none of these. */
int registry_delete_member(struct registry *reg, const char *name, struct errmsg *e);

/* The mesh address of node_name in cidr ("10.123.0.0/16", host bits zero):
 * the one it holds already, else a free one picked at random, claimed with
 * a transaction that succeeds only if neither the address nor the node's
 * reverse entry exist (create_revision = 0), another random pick on
 * conflict. Only after repeated conflicts (a nearly full range) are the
 * used addresses read, to pick among the free ones. The network address,
 * the first host address (.1, reserved) and the broadcast address are
 * never handed out. -ENOSPC when the range is full; -EADDRINUSE if the
 * node holds an address outside cidr. */
int registry_allocate_address(struct registry *reg, const char *node_name, const char *cidr,
                              char ret[static INET6_ADDRSTRLEN], struct errmsg *e);

/* A node joins: its mesh address (the one it holds, else a random free one
 * in cidr as registry_allocate_address picks it), its disk and its member
 * record m, written together in one transaction whose comparisons keep the
 * invariants above. Usually one round trip to etcd; a retried join (the
 * node holds an address and its disk already) takes two and keeps its
 * address. An empty m->mesh_address asks for any address; a set one is
 * the address wanted (the first node's, which it uses before the registry
 * exists): -EADDRINUSE if another node holds it or the node holds another,
 * -EINVAL if cidr does not hand it out. m->mesh_address is set on success.
 * -EEXIST if the disk belongs to another node or the WireGuard key to
 * another member (the message names it), -ENOSPC, -EADDRINUSE as
 * registry_allocate_address, -EINVAL for an invalid m. A node joining
 * again replaces its record; a new key moves its wgkeys/ entry. */
int registry_join(struct registry *reg, struct registry_member *m, const char *cidr, struct errmsg *e);

/* The first address cidr hands out (network address + 2: .1 is reserved):
 * the first node's mesh address, known before its registry runs. */
int registry_first_address(const char *cidr, char ret[static INET6_ADDRSTRLEN], struct errmsg *e);

/* Replace the record of m->name only if it is unchanged since it was read
 * (m->mod_revision, as registry_get_member/registry_list_members filled
 * it): a refresh never undoes a concurrent removal or update. -ESTALE if
 * it changed, -ENOENT if it is gone, -EADDRNOTAVAIL if the node no longer
 * holds the address or disk m names, -EEXIST (naming the holder) if m's
 * WireGuard key is another member's; -EINVAL for an invalid m or one
 * without mod_revision. One round trip when the key is unchanged and in
 * the index; a new key, or a record without its entry, takes two. */
int registry_update_member(struct registry *reg, const struct registry_member *m, struct errmsg *e);
/* Remove a member that stopped refreshing: its record, its mesh address
 * (the mesh/ and mesh-nodes/ keys) and its key's wgkeys/ entry, only if
 * the record is unchanged since it was read (m->mod_revision), so that a
 * refresh that came meanwhile wins and of two join services expiring it
 * at once one does it. Its disks stay registered, so that the node can
 * still rejoin its disk after a reboot. -ESTALE if the record changed,
 * -ENOENT if it is gone. */
int registry_expire_member(struct registry *reg, const struct registry_member *m, struct errmsg *e);

/* Record that the state disk `uuid` (any case; stored lowercase) belongs to
 * node_name. Idempotent for the same node; -EEXIST if another node owns it. */
int registry_put_disk(struct registry *reg, const char *uuid, const char *node_name, struct errmsg *e);
/* The owner of disk `uuid`; -ENOENT for a UUID the registry does not know. */
int registry_get_disk(struct registry *reg, const char *uuid, char ret_node_name[static NODE_NAME_MAX + 1],
                      struct errmsg *e);

/* --- pure parts (no I/O; fuzzed by tests/fuzz/fuzz-registry.c) ------------- */

/* Check every field of m; -EINVAL with the field named. */
int registry_member_validate(const struct registry_member *m, struct errmsg *e);
/* Strict parser of a member record; -EBADMSG/-EFBIG naming the field. */
int registry_member_parse(const char *buf, size_t len, struct registry_member *ret, struct errmsg *e);
/* Validate and serialize (plain JSON, NUL-terminated). */
int registry_member_to_json(const struct registry_member *m, char **ret, struct errmsg *e);

/* One key-value pair of a range response, key and value decoded (and
 * NUL-terminated for convenience; they may hold NULs of their own). */
struct registry_kv {
        char *key;
        size_t key_size;
        char *value;
        size_t value_size;
        int64_t create_revision;
        int64_t mod_revision;
        int64_t version;
};

struct registry_range {
        int64_t revision; /* of the store when read; 0 inside a txn response */
        struct registry_kv *kvs;
        size_t n_kvs;
        int64_t count; /* keys in the range (may exceed n_kvs when limited) */
        bool more;
};

enum registry_op_type {
        REGISTRY_OP_RANGE,
        REGISTRY_OP_PUT,
        REGISTRY_OP_DELETE_RANGE,
        REGISTRY_OP_TXN, /* a nested transaction */
};

struct registry_op_response {
        enum registry_op_type type;
        struct registry_range range; /* REGISTRY_OP_RANGE */
        int64_t deleted;             /* REGISTRY_OP_DELETE_RANGE */
        bool succeeded;              /* REGISTRY_OP_TXN */
};

struct registry_txn {
        int64_t revision;
        bool succeeded;
        struct registry_op_response *responses;
        size_t n_responses;
};

void registry_range_done(struct registry_range *r);
void registry_txn_done(struct registry_txn *t);

/* Body of a 200 answer to POST /v3/kv/range. etcd's int64 fields arrive as
 * JSON strings and zero values are omitted. At most max_kvs pairs. */
int registry_parse_range_response(const char *buf, size_t len, size_t max_kvs, struct registry_range *ret,
                                  struct errmsg *e);
/* Body of a 200 answer to POST /v3/kv/txn; ranges inside hold at most
 * max_kvs pairs each. */
int registry_parse_txn_response(const char *buf, size_t len, size_t max_kvs, struct registry_txn *ret,
                                struct errmsg *e);
/* Body of a gateway error ({"error": .., "message": .., "code": <gRPC code>}):
 * the errno that code stands for, the message in e. Returns a negative
 * errno in every case (-EPROTO for an unparseable body). */
int registry_parse_error_response(const char *buf, size_t len, int *ret_grpc_code, struct errmsg *e);
