/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The wire messages of arca's flows (docs/PROTOCOL.md), defined once:
 * structs, strict pure parsers, serializers. Secrets inside are wiped by
 * the *_done() functions. */

#include <json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"
#include "keys.h"
#include "validate.h"

/* Requests and responses without a peer list. */
#define MSG_MAX_SIZE (1024 * 1024)
/* A peer list names every other member of the cluster: at most
 * MSG_MAX_PEERS of them (registry.h keeps REGISTRY_MAX_MEMBERS within
 * MSG_MAX_PEERS + 1, and the join service refuses a join beyond it rather
 * than send a truncated list). Responses that carry one may be larger, up
 * to MSG_MAX_PEERS_SIZE (below the client's HTTP_CLIENT_DEFAULT_MAX_RESPONSE). */
#define MSG_MAX_PEERS 4095
#define MSG_MAX_PEERS_SIZE (3 * 1024 * 1024)
/* Bounds of refreshIntervalSeconds in a mesh answer. */
#define MSG_MIN_REFRESH_INTERVAL 1
#define MSG_MAX_REFRESH_INTERVAL 3600
#define MSG_MAX_SANS 16
#define MSG_MAX_KUBECONFIG (256 * 1024)
#define MSG_MAX_POLICY (64 * 1024)

struct k8s_settings {
        char version[32];
        char pod_cidr[CIDR_MAX];
        char service_cidr[CIDR_MAX];
        char api_sans[MSG_MAX_SANS][ADDRESS_MAX + 64];
        size_t n_api_sans;
};

/* CLI -> first node, POST /v1/init. */
struct init_request {
        uint8_t master_secret[KEY_SIZE];
        uint8_t master_salt[KEY_SIZE];
        uint8_t measurement_salt[KEY_SIZE];
        uint8_t init_secret[KEY_SIZE];
        char cluster_name[NODE_NAME_MAX + 1];
        char driver[16];
        char mesh_cidr[CIDR_MAX];
        struct k8s_settings k8s;
        char *policy; /* the owner's measurement policy, exact bytes */
        size_t policy_size;
};

struct init_response {
        uint8_t cluster_id[KEY_SIZE];
        char node_name[NODE_NAME_MAX + 1];
        char mesh_address[ADDRESS_MAX];
        char wg_public_key[WG_KEY_B64_SIZE];
        uint8_t *kubeconfig; /* the driver's admin credential */
        size_t kubeconfig_size;
};

/* Node -> join service, POST /v1/join. */
struct join_request {
        char role[16];
        char disk_uuid[UUID_STRING_SIZE];
        char node_name[NODE_NAME_MAX + 1];
        char wg_public_key[WG_KEY_B64_SIZE];
        char endpoint[ENDPOINT_MAX];
};

struct mesh_peer {
        char name[NODE_NAME_MAX + 1];
        char role[16];
        char wg_public_key[WG_KEY_B64_SIZE];
        char endpoint[ENDPOINT_MAX];
        char mesh_address[ADDRESS_MAX];
};

/* A peer as an answer is serialized from it, its fields held elsewhere
 * (a parsed answer's struct mesh_peer, a join service's member view,
 * registry.h), never copied: answers name every member. */
struct mesh_peer_ref {
        const char *name, *role, *wg_public_key, *endpoint, *mesh_address;
};

/* The peers an answer is serialized with: n of them, the i-th at(data, i).
 * They must not change between the serialization of the answer's head and
 * the last peers_write. */
struct peer_list {
        size_t n;
        struct mesh_peer_ref (*at)(const void *data, size_t i);
        const void *data;
};

/* The peer list of an array of struct mesh_peer (a parsed answer's). */
struct peer_list peer_list_of(const struct mesh_peer *peers, size_t n);

/* The longest text of one peer in a list, with its comma. */
#define MSG_PEER_TEXT_MAX 512

struct join_response {
        uint8_t disk_key[KEY_SIZE];
        uint8_t measurement_salt[KEY_SIZE];
        uint8_t measurement_secret[KEY_SIZE];
        uint8_t cluster_id[KEY_SIZE];
        bool has_master; /* control-plane joiners only */
        uint8_t master_secret[KEY_SIZE];
        uint8_t master_salt[KEY_SIZE];
        char *policy; /* control-plane joiners only: to verify joiners in turn */
        size_t policy_size;
        char cluster_name[NODE_NAME_MAX + 1];
        char driver[16];
        json_object *cp_params; /* the driver's join parameters */
        char mesh_cidr[CIDR_MAX];
        char mesh_address[ADDRESS_MAX];
        struct mesh_peer *peers;
        size_t n_peers;
};

/* Rebooted node -> join service, POST /v1/rejoin. */
struct rejoin_request {
        char disk_uuid[UUID_STRING_SIZE];
};

struct rejoin_response {
        uint8_t disk_key[KEY_SIZE];
};

/* Member -> join service, POST /v1/mesh (mesh refresh; mutual aTLS, each
 * one a fresh attestation). The node's WireGuard key and underlay
 * endpoint may have changed since it joined (keys are made per boot). */
struct mesh_request {
        char node_name[NODE_NAME_MAX + 1];
        char wg_public_key[WG_KEY_B64_SIZE];
        char endpoint[ENDPOINT_MAX]; /* "underlayEndpoint" */
};

struct mesh_response {
        char mesh_address[ADDRESS_MAX];
        char mesh_cidr[CIDR_MAX];
        struct mesh_peer *peers; /* every other member, as in join_response */
        size_t n_peers;
        unsigned refresh_interval; /* "refreshIntervalSeconds" */
};

void init_request_done(struct init_request *m);
void init_response_done(struct init_response *m);
void join_response_done(struct join_response *m);
void rejoin_response_done(struct rejoin_response *m);
void mesh_response_done(struct mesh_response *m);

int init_request_parse(const char *buf, size_t len, struct init_request *ret, struct errmsg *e);
int init_response_parse(const char *buf, size_t len, struct init_response *ret, struct errmsg *e);
int join_request_parse(const char *buf, size_t len, struct join_request *ret, struct errmsg *e);
int join_response_parse(const char *buf, size_t len, struct join_response *ret, struct errmsg *e);
int rejoin_request_parse(const char *buf, size_t len, struct rejoin_request *ret, struct errmsg *e);
int rejoin_response_parse(const char *buf, size_t len, struct rejoin_response *ret, struct errmsg *e);
int mesh_request_parse(const char *buf, size_t len, struct mesh_request *ret, struct errmsg *e);
int mesh_response_parse(const char *buf, size_t len, struct mesh_response *ret, struct errmsg *e);

/* Serializers return a NUL-terminated string; callers wipe and free those
 * that carry secrets (secret_free(s, strlen(s))). */
int init_request_serialize(const struct init_request *m, char **ret);
int init_response_serialize(const struct init_response *m, char **ret);
int join_request_serialize(const struct join_request *m, char **ret);
int join_response_serialize(const struct join_response *m, char **ret);
int rejoin_request_serialize(const struct rejoin_request *m, char **ret);
int rejoin_response_serialize(const struct rejoin_response *m, char **ret);
int mesh_request_serialize(const struct mesh_request *m, char **ret);
int mesh_response_serialize(const struct mesh_response *m, char **ret);

/* An answer with a peer list in pieces, so that a server can send it as
 * the connection drains without ever holding its whole text (a peer list
 * names every member: a join service has several answers in flight): the
 * head, every field but the peers up to and including "\"peers\":[" (it
 * holds the answer's secrets: secret_free(head, head_len)), then the peers
 * and the closing "]}" by peers_write. *ret_len is the whole answer's
 * length. The text is byte for byte what *_serialize() writes (which is
 * made this way) with m's peers replaced by `peers`; m's own peers are
 * ignored. Every peer is checked here: one whose field is not what its
 * parser accepts is -EINVAL, more than MSG_MAX_PEERS -E2BIG. */
int join_response_serialize_head(const struct join_response *m, const struct peer_list *peers, char **ret_head,
                                 size_t *ret_head_len, size_t *ret_len);
int mesh_response_serialize_head(const struct mesh_response *m, const struct peer_list *peers, char **ret_head,
                                 size_t *ret_head_len, size_t *ret_len);
/* Write what follows the head into buf: the peers from *next on, as many
 * whole ones as fit, and after the last one "]}". Advances *next. Returns
 * the bytes written, 0 once everything was, -ENOBUFS if the next piece does
 * not fit into size (MSG_PEER_TEXT_MAX always does). */
ssize_t peers_write(const struct peer_list *peers, size_t *next, char *buf, size_t size);
