/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The bootstrapper's init server (port 9000, server-attested aTLS). For now
 * it answers the attestation request only; init arrives with the bootstrap
 * flows. */

#include <event2/event.h>
#include <stdint.h>

#include "atls.h"
#include "errmsg.h"

#define INIT_SERVER_PORT 9000

struct init_server;

int init_server_new(struct event_base *base, struct atls_config *atls, const char *address, uint16_t port,
                    struct init_server **ret, struct errmsg *e);
struct init_server *init_server_free(struct init_server *s);
uint16_t init_server_port(const struct init_server *s);
