/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The join service (port 30090, mutual aTLS), on control-plane nodes:
 *   POST /v1/join    an attested node joins: disk key, cluster secrets,
 *                    control-plane parameters, mesh address and peers
 *   POST /v1/rejoin  a rebooted member gets its disk key again
 *   POST /v1/mesh    a member refreshes: fresh attestation, its current
 *                    WireGuard key and endpoint in, the peers out
 * Every peer must satisfy the owner's policy; joiners (join, rejoin) have
 * PCR 15 zero, members (mesh) this cluster's node lock. A member whose
 * genuine evidence no longer satisfies that is removed at once; members
 * that do not refresh for member_timeout seconds are removed by any join
 * service. Registry work runs on worker threads. See docs/PROTOCOL.md. */

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "errmsg.h"

#define JOIN_SERVICE_PORT 30090
#define JOIN_SERVICE_REFRESH_INTERVAL 10
#define JOIN_SERVICE_MEMBER_TIMEOUT 60
#define JOIN_SERVICE_WORKERS 4
/* What `arca-join-service --features` prints: join, rejoin, the mesh
 * refresh (POST /v1/mesh), the doorbell to members when the membership
 * changes, and an explicit refusal of drifted members in the handshake. */
#define JOIN_SERVICE_FEATURES "join\nrejoin\nmesh\nmesh-notify\nmesh-refusal\n"

struct join_service_options {
        const char *tcti;
        /* >= 0: the attestation channel to the node's TPM user, which
         * issues this service's evidence (lib/attest-remote.h): no TPM
         * access here. -1: this service opens the TPM itself (tcti). */
        int attester_fd;
        const char *variant;
        uint32_t ak_handle;
        const char *state_dir;
        const char *listen;
        uint16_t port;
        const char *underlay;
        /* The control plane runs on mesh addresses (this node's, from its
         * state, and each joiner's); false: on underlay addresses. */
        bool control_plane_on_mesh;
        const char *platform_ca;
        const char *kubernetes_dir;
        unsigned refresh_interval; /* seconds, told to members; 0: default */
        unsigned member_timeout;   /* seconds without refresh before removal; 0: default */
        unsigned workers;          /* registry worker threads; 0: default */
};

struct join_service;

int join_service_new(struct event_base *base, const struct join_service_options *opt, struct join_service **ret,
                     struct errmsg *e);
struct join_service *join_service_free(struct join_service *s);
uint16_t join_service_port(const struct join_service *s);
