/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The join client: tries every configured join service in turn over
 * mutual aTLS, with capped, jittered exponential backoff (first retry after
 * ~0.1-0.2 s, at most ~10 s), until the node joins or is initialized. */

#include <event2/event.h>

#include "errmsg.h"

#define JOIN_BACKOFF_FIRST_MS 200
#define JOIN_BACKOFF_MAX_MS 10000

struct join_client;
struct node;

typedef void (*join_done_t)(void *userdata);

int join_client_new(struct event_base *base, struct node *node, join_done_t done, void *userdata,
                    struct join_client **ret, struct errmsg *e);
struct join_client *join_client_free(struct join_client *c);
/* Stop trying (the node was initialized). */
void join_client_stop(struct join_client *c);
/* Delay before attempt n (0-based), jittered; exposed for tests. */
unsigned join_backoff_ms(unsigned attempt);
