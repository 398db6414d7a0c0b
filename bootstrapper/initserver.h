/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The bootstrapper's init server (port 9000, server-attested aTLS):
 *   GET  /v1/attestation  what the verifier talked to
 *   POST /v1/init         initialize the cluster on this node (once) */

#include <event2/event.h>
#include <stdint.h>

#include "atls.h"
#include "errmsg.h"

#define INIT_SERVER_PORT 9000

struct init_server;
struct node;

/* Called after a successful init (the join client then stops). */
typedef void (*init_done_t)(void *userdata);

int init_server_new(struct event_base *base, struct atls_config *atls, struct node *node, const char *address,
                    uint16_t port, init_done_t done, void *userdata, struct init_server **ret, struct errmsg *e);
struct init_server *init_server_free(struct init_server *s);
uint16_t init_server_port(const struct init_server *s);
