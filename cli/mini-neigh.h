/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The host's IPv4 neighbour (ARP) table and arca mini.
 *
 * A kernel has one neighbour table, shared by every network namespace: the
 * entry count and its limit (net.ipv4.neigh.default.gc_thresh3, 1024 by
 * default) are global. Every mini node talks to every other node's underlay
 * address (wireguard-go's keepalives every 25 s keep each entry fresh), so a
 * cluster of n nodes holds about n * n entries (n - 1 per node plus the
 * bridge's n): 30 nodes fill the default table. Past the limit the kernel
 * refuses new entries and drops the packet that needed one
 * (SKB_DROP_REASON_NEIGH_CREATEFAIL, "neighbor table overflow!"): the mesh
 * doorbell, WireGuard handshakes and probes vanish without an error. Nodes
 * that are machines of their own each have a table of their own; `up` and
 * `add` give this shared one room for MINI_MAX_NODES such machines. */

#include <stddef.h>
#include <stdint.h>

#include "mini.h"

/* Entries the largest mini cluster needs: every node one per other node,
 * the bridge one per node. */
#define MINI_NEIGH_NEEDED (MINI_MAX_NODES * MINI_MAX_NODES)
/* Below gc_thresh2 entries are only dropped when stale; up to gc_thresh3
 * the table grows. */
#define MINI_NEIGH_THRESH2 49152
#define MINI_NEIGH_THRESH3 65536

/* Pure: the sum over CPUs of the `table_fulls` column of
 * /proc/net/stat/arp_cache (a header line of column names, then one line of
 * hex counters per CPU): how often the table refused an entry since boot.
 * -EBADMSG for text that is not such a table. */
int mini_neigh_parse_stat(const char *text, size_t len, uint64_t *ret_fulls);

/* How often the host's ARP table was full since boot; -errno. */
int mini_neigh_overflows(uint64_t *ret);

/* What mini_neigh_ensure() found and did. */
struct mini_neigh_limits {
        unsigned thresh2, thresh3;         /* before */
        unsigned new_thresh2, new_thresh3; /* after (equal: nothing raised) */
};

/* Raise the host's gc_thresh2 and gc_thresh3 to at least MINI_NEIGH_THRESH2
 * and MINI_NEIGH_THRESH3 (never lowers them). 0, or -errno when they cannot
 * be read or written (e.g. no /proc/sys/net/ipv4/neigh/default here). */
int mini_neigh_ensure(struct mini_neigh_limits *ret);

/* Print the one line `up` and `add` show about the table: raised, fine, or
 * why it could not be raised (with the cluster size it fits). */
void mini_neigh_report(int r, const struct mini_neigh_limits *l, unsigned n_nodes);
