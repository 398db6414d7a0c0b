/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The mesh doorbell: a join service that changed the membership (a node
 * joined, changed its WireGuard key or endpoint, was evicted or expired)
 * rings every member, so that they refresh at once instead of at their
 * next interval. The doorbell is one UDP datagram to the member's mesh
 * address, port MESH_NOTIFY_PORT, sent through arca0. It carries no data
 * and grants nothing: a member that accepts it only runs its usual mesh
 * refresh early (mutual aTLS, fresh attestation both ways), which is where
 * every peer list comes from. A member accepts it only when it arrived on
 * the mesh interface from a control-plane peer's mesh address (WireGuard's
 * cryptokey routing vouches for the sender) or, from its own join service,
 * looped back from its own mesh address; and it refreshes at most once per
 * MESH_NOTIFY_MIN_GAP_MS however often it is rung. See docs/MESH.md. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define MESH_NOTIFY_PORT 51821
#define MESH_NOTIFY_SIZE 16
#define MESH_NOTIFY_MIN_GAP_MS 1000

/* The datagram: a fixed 16-byte magic naming protocol and version. */
extern const uint8_t mesh_notify_message[MESH_NOTIFY_SIZE];

/* Where a datagram came from, as recvmsg() saw it (IP_PKTINFO). */
struct mesh_notify_origin {
        struct in_addr source;
        unsigned ifindex;      /* interface it arrived on */
};

/* Who may ring: the mesh interface's and loopback's index, this node's
 * mesh address, and the mesh addresses of the control-plane peers. */
struct mesh_notify_policy {
        unsigned mesh_ifindex;
        unsigned loopback_ifindex;
        struct in_addr self;
        const struct in_addr *control_planes;
        size_t n_control_planes;
};

/* Pure: 0 if the datagram is a doorbell this node accepts, -EBADMSG for
 * another payload, -EPERM for a doorbell from where none may come; the
 * reason in e. */
int mesh_notify_check(const void *buf, size_t len, const struct mesh_notify_origin *from,
                      const struct mesh_notify_policy *p, struct errmsg *e);

/* A non-blocking UDP socket for sending doorbells; -errno. */
int mesh_notify_socket(void);
/* Ring each of addresses (IPv4 literals; others are skipped): how many
 * datagrams left. Never blocks; a lost doorbell only delays a member until
 * its next regular refresh. */
size_t mesh_notify_send(int fd, const char *const *addresses, size_t n);
