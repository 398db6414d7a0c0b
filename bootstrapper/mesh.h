/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The mesh agent: brings arca0 up when the node is initialized or joined
 * (the node's mesh_up hand-off), then keeps the peers in step with the
 * membership that the join services report (POST /v1/mesh over mutual
 * aTLS, every few seconds, jittered). Peers are applied incrementally: an
 * unchanged peer is never touched, a removed one is dropped. When no join
 * service answers, the peers stay as they are; when this node is refused
 * as evicted, every peer is dropped. See docs/MESH.md. */

#include <event2/event.h>
#include <stdbool.h>
#include <sys/types.h>

#include "errmsg.h"
#include "wireguard.h"

#define MESH_INTERFACE "arca0"
#define MESH_REFRESH_DEFAULT_MS 5000
#define MESH_REFRESH_MIN_MS 1000
#define MESH_REFRESH_MAX_MS 300000
#define MESH_REFRESH_TIMEOUT_MS 5000 /* per join service and round */

struct node;

struct mesh_options {
        const char *ifname;       /* NULL: arca0 */
        enum wg_backend backend;
        const char *wireguard_go; /* NULL: /usr/bin/wireguard-go */
        const char *uapi_dir;     /* NULL: /var/run/wireguard */
        unsigned refresh_ms;      /* 0: what the join service asks for */
        bool firewall;            /* table inet arca follows the peers */
};

struct mesh;

/* Make the agent and install its mesh_up hook on the node. Nothing is
 * created before the node is initialized or joined. */
int mesh_new(struct event_base *base, struct node *node, const struct mesh_options *opt, struct mesh **ret,
             struct errmsg *e);
/* Clean shutdown: stop refreshing, delete arca0 (ends wireguard-go). */
struct mesh *mesh_free(struct mesh *m);

/* A child exited; true if it was this agent's (wireguard-go). */
bool mesh_child_exited(struct mesh *m, pid_t pid, int status);
