/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The node firewall: one nftables table, `inet arca`, that makes the
 * underlay carry nothing between nodes but WireGuard and the arca bootstrap
 * ports. Everything else between nodes must travel inside the mesh (arca0).
 *
 * What the table does (docs/FIREWALL.md has the full ruleset):
 *  - input, packets whose source is another node's underlay address: accept
 *    when they arrive on the mesh interface, when they are replies to a
 *    connection this node opened (conntrack reply direction) or ICMP errors
 *    about one (ct related), UDP to the WireGuard port, TCP to the bootstrap
 *    ports (9000 init, 30090 join service, 9999 recovery), IPv6 neighbour
 *    discovery; drop the rest (counted).
 *  - output, packets to another node's underlay address: the mirror image,
 *    so a service that wrongly uses an underlay address fails at once with
 *    EPERM instead of sending plaintext over the underlay.
 *  - forward (traffic this node routes, e.g. for pods): the same two rule
 *    sets by source and by destination.
 *  - loopback, and every packet whose other end is not in the node set (the
 *    owner's CLI, the internet, DNS), are not touched: all base chains have
 *    policy accept and only judge packets to or from another node's
 *    underlay address.
 *
 * Every call is one libnftables transaction, so the kernel switches from the
 * old rules to the new ones atomically; there is never a moment without
 * rules. Addresses are parsed with inet_pton and written back with
 * inet_ntop: no caller-supplied text reaches the nft script except the
 * mesh interface name, which must be [A-Za-z0-9_.-]{1,15}.
 *
 * Needs CAP_NET_ADMIN in the network namespace it runs in. Library code: it
 * does not print; failures return -errno and a reason in `e` (nft's own
 * error text included). */

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define FIREWALL_FAMILY "inet"
#define FIREWALL_TABLE "arca"
#define FIREWALL_MESH_INTERFACE "arca0"
#define FIREWALL_WIREGUARD_PORT 51820
/* Upper bounds for values that may come from the network. */
#define FIREWALL_NODES_MAX 4096
#define FIREWALL_TCP_PORTS_MAX 16

struct firewall_config {
        /* WireGuard interface; packets arriving on it are never dropped. */
        const char *mesh_interface;
        /* UDP port WireGuard listens on (the same on every node). */
        uint16_t wireguard_port;
        /* TCP ports other nodes may reach over the underlay. */
        uint16_t tcp_ports[FIREWALL_TCP_PORTS_MAX];
        size_t n_tcp_ports;
        /* The other nodes' underlay addresses: IPv4 or IPv6 literals (no
         * prefix, no zone). IPv4-mapped IPv6 (::ffff:a.b.c.d, what a
         * dual-stack socket reports) counts as the IPv4 address. Duplicates
         * are merged; unspecified, loopback, multicast and broadcast
         * addresses are refused. May be empty. */
        const char *const *nodes;
        size_t n_nodes;
};

/* arca0, 51820, tcp 9000 30090 9999, no nodes. */
void firewall_config_default(struct firewall_config *c);

/* Install or replace table inet arca with exactly the rules for `c`
 * (idempotent: the same config gives the same ruleset, with counters reset).
 * -EINVAL naming the value for a bad config (nothing is changed then),
 * -EPERM without CAP_NET_ADMIN, -EIO for other nft failures. */
int firewall_apply(const struct firewall_config *c, struct errmsg *e);

/* Replace only the node address sets of an applied table, in one
 * transaction (a node that stays in the set is never missing from it).
 * -ENOENT when the table is not there (firewall_apply first). */
int firewall_update_nodes(const char *const *nodes, size_t n_nodes, struct errmsg *e);

/* Delete table inet arca; 0 when it was not there. */
int firewall_remove(struct errmsg *e);

/* The nft scripts the calls above run, for tests and dry runs: a string for
 * free(). Pure: no nft, no privileges. */
int firewall_render(const struct firewall_config *c, char **ret, struct errmsg *e);
int firewall_render_nodes(const char *const *nodes, size_t n_nodes, char **ret, struct errmsg *e);
