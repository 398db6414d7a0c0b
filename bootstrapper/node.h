/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The node as the bootstrapper sees it: its settings, TPM and attester, its
 * fresh WireGuard key pair, and the steps that finish an init or a join
 * (control plane, registry, node lock, state, join service). The init
 * server and the join client both end in node_commit(); whichever gets
 * there first takes the node lock, and the other stops. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "atls.h"
#include "attest.h"
#include "cpdriver.h"
#include "errmsg.h"
#include "keys.h"
#include "messages.h"
#include "nodestate.h"
#include "policy.h"
#include "validate.h"
#include "wgkey.h"

#define JOIN_SERVICE_PORT 30090
#define WIREGUARD_PORT 51820
#define NODE_MAX_JOIN_ENDPOINTS 16

struct node_options {
        const char *tcti;
        const char *variant;
        uint32_t ak_handle;
        const char *state_dir;
        const char *node_name;
        const char *role;          /* requested when joining */
        const char *underlay;      /* this node's underlay address */
        const char *join_endpoints[NODE_MAX_JOIN_ENDPOINTS];
        size_t n_join_endpoints;
        const char *init_secret_hash; /* hex SHA-256, from the platform */
        const char *platform_ca;   /* qemu-vtpm: to verify peers */
        const char *peer_pcrs;     /* PCRs a peer must share with us, e.g. "0-14" */
        const char *join_service;  /* path of arca-join-service */
        uint16_t join_port;
        const char *registry;      /* standalone etcd URL; NULL: the control plane's */
        const char *kubernetes_dir;
        const char *disk_uuid;     /* NULL: the state directory's own */
};

/* Hand-offs to the modules that own the state disk (disk-mapper) and the
 * WireGuard mesh; they arrive with their own issues. A NULL hook means this
 * node has no such module, which is logged once per commit. */
struct node_handoff {
        /* Replace the disk's initial key with its derived key. */
        int (*rekey_disk)(void *userdata, const char *disk_uuid, const uint8_t key[KEY_SIZE], struct errmsg *e);
        /* Bring arca0 up with this node's address and its first peers. */
        int (*mesh_up)(void *userdata, const char *address, const char *cidr, const uint8_t wg_private[WG_KEY_SIZE],
                       const struct mesh_peer *peers, size_t n_peers, struct errmsg *e);
        /* Take arca0 (and the firewall) down again: an init or join that
         * failed after mesh_up. */
        void (*mesh_down)(void *userdata);
        void *userdata;      /* for rekey_disk */
        void *mesh_userdata; /* for mesh_up (bootstrapper/mesh.c) */
};

struct node {
        struct node_options opt;
        struct node_handoff handoff;
        struct tpm_ctx *tpm;
        struct attester *attester;
        struct verifier *peer_verifier; /* "same image": our own PCRs, PCR 15 free */
        uint8_t wg_private[WG_KEY_SIZE];
        char wg_public[WG_KEY_B64_SIZE];
        char disk_uuid[UUID_STRING_SIZE];
        char endpoint[ENDPOINT_MAX]; /* underlay:51820 */
        bool committed;              /* initialized or joined */
        bool mesh_is_up;             /* mesh_up done by the init or join under way */
        struct cp_result cp;         /* the control plane's child, if any */
        pid_t join_service_pid;
        /* Issues the join service's evidence with this node's attester:
         * the join service has no TPM access (lib/attest-remote.h). */
        struct attest_remote_server *attest_server;
};

int node_setup(struct node *n, const struct node_options *opt, struct errmsg *e);
void node_done(struct node *n);

/* The disk this node's keys are derived for (n->disk_uuid). Until the
 * disk-mapper owns the state disk, the UUID is generated once and kept in
 * the state directory. */
int node_disk_uuid(struct node *n, struct errmsg *e);

/* Finish init on this node: mesh (the first address of the mesh CIDR),
 * control plane on the mesh address, registry record, disk re-key, node
 * lock, state, join service. On failure everything done is undone and the
 * node can be initialized or joined again. */
int node_init(struct node *n, const struct init_request *req, struct init_response *ret, struct errmsg *e);
/* Finish a join with the join service's answer: mesh with the answer's
 * peers, control plane on the mesh address, disk re-key, node lock, state,
 * join service. Same guarantees. */
int node_join(struct node *n, const struct join_response *resp, struct errmsg *e);

/* Start arca-join-service as a child (it dies with us); the caller
 * restarts it when it exits. Its evidence comes from this node's attester
 * over a private channel (--attester-fd), served by a thread of ours:
 * the event loop may wait on the join service itself (mesh refresh). */
int node_start_join_service(struct node *n, struct errmsg *e);

/* Parse "0-14,16" into a PCR mask. */
int parse_pcr_list(const char *s, uint32_t *ret);
