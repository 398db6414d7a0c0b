/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Worker threads for the join service's blocking work (registry
 * transactions, the control-plane driver, key derivation), so that the
 * event loop keeps accepting and attesting connections while etcd commits
 * and several joins share etcd's commits. Jobs are handed to the workers
 * from the loop thread; each finished job is handed back to the loop
 * thread (through an eventfd), where it may touch libevent objects. */

#include <event2/event.h>

#include "errmsg.h"

#define WORK_POOL_MAX_WORKERS 16

struct work_item {
        struct work_item *next;
};

/* run: in worker thread `worker` (0..n-1); done: in the loop thread. */
typedef void (*work_run_t)(struct work_item *job, unsigned worker, void *userdata);
typedef void (*work_done_t)(struct work_item *job, void *userdata);

struct work_pool;

int work_pool_new(struct event_base *base, unsigned n_workers, work_run_t run, work_done_t done, void *userdata,
                  struct work_pool **ret, struct errmsg *e);
/* Stops the workers after the job each runs; jobs not run yet and jobs
 * not handed back are given to `done` with the pool going away (so that
 * they are freed), from the calling thread. */
struct work_pool *work_pool_free(struct work_pool *p);
/* From the loop thread. */
void work_pool_submit(struct work_pool *p, struct work_item *job);
/* Jobs submitted and not yet handed back. */
unsigned work_pool_pending(const struct work_pool *p);
