/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The join service (port 30090, mutual aTLS), on control-plane nodes:
 *   POST /v1/join    an attested node joins: disk key, cluster secrets,
 *                    control-plane parameters, mesh address and peers
 *   POST /v1/rejoin  a rebooted member gets its disk key again
 * Joiners must satisfy the owner's policy and have PCR 15 zero. */

#include <event2/event.h>
#include <stdint.h>

#include "errmsg.h"

#define JOIN_SERVICE_PORT 30090

struct join_service_options {
        const char *tcti;
        const char *variant;
        uint32_t ak_handle;
        const char *state_dir;
        const char *listen;
        uint16_t port;
        const char *underlay;
        const char *platform_ca;
        const char *kubernetes_dir;
};

struct join_service;

int join_service_new(struct event_base *base, const struct join_service_options *opt, struct join_service **ret,
                     struct errmsg *e);
struct join_service *join_service_free(struct join_service *s);
uint16_t join_service_port(const struct join_service *s);
