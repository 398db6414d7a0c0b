/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* WireGuard device control: create the interface (kernel WireGuard, or
 * wireguard-go when the kernel has no WireGuard), give it a private key and
 * a port, an address, and keep its peers in sync with a wanted list by
 * applying only the differences, so that an unchanged peer keeps its
 * session and handshake.
 *
 * Backends (lib/wireguard-uapi.c, lib/wireguard-kernel.c):
 *   userspace: wireguard-go, driven through its UAPI socket
 *              <uapi_dir>/<ifname>.sock (text protocol, "set=1" / "get=1");
 *   kernel:    the interface is made with `ip link add .. type wireguard`
 *              and configured with `wg set` (wireguard-tools).
 * Addresses and link state go through iproute2's `ip` with an argv. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "errmsg.h"
#include "validate.h"
#include "wgkey.h"

#define WG_MAX_PEERS 4096 /* >= MSG_MAX_PEERS */
#define WG_MAX_ALLOWED_IPS 64          /* per peer, in a status */
#define WG_UAPI_MAX_REPLY (4 * 1024 * 1024)
#define WG_UAPI_DIR_DEFAULT "/var/run/wireguard"
#define WG_KEEPALIVE_DEFAULT 25

enum wg_backend {
        WG_BACKEND_AUTO,      /* kernel when it can make the link, else userspace */
        WG_BACKEND_KERNEL,
        WG_BACKEND_USERSPACE, /* wireguard-go */
};

int wg_backend_from_string(const char *s, enum wg_backend *ret);
const char *wg_backend_to_string(enum wg_backend b);

struct wg_options {
        const char *ifname;       /* e.g. arca0; at most 15 characters */
        enum wg_backend backend;
        const char *wireguard_go; /* NULL: /usr/bin/wireguard-go */
        const char *uapi_dir;     /* NULL: /var/run/wireguard */
        const char *log_path;     /* wireguard-go's output; NULL: /dev/null */
};

/* A peer as the device is told about it. */
struct wg_peer {
        uint8_t public_key[WG_KEY_SIZE];
        char endpoint[ENDPOINT_MAX]; /* "ip:port" or "[ip6]:port"; "" for none */
        char allowed_ip[CIDR_MAX];   /* one prefix, e.g. "10.123.0.2/32" */
        uint16_t keepalive;          /* seconds; 0 off */
};

/* A peer as the device reports it (UAPI get). */
struct wg_peer_status {
        uint8_t public_key[WG_KEY_SIZE];
        char endpoint[ENDPOINT_MAX];
        int64_t last_handshake_sec;
        int64_t last_handshake_nsec;
        uint64_t rx_bytes;
        uint64_t tx_bytes;
        uint16_t keepalive;
        char allowed_ips[WG_MAX_ALLOWED_IPS][CIDR_MAX];
        size_t n_allowed_ips;
};

struct wg_status {
        bool has_private_key; /* the key itself is never kept */
        uint16_t listen_port;
        uint32_t fwmark;
        struct wg_peer_status *peers;
        size_t n_peers;
};

void wg_status_done(struct wg_status *s);
/* The status entry of a peer, or NULL. */
const struct wg_peer_status *wg_status_find(const struct wg_status *s, const uint8_t key[WG_KEY_SIZE]);

/* --- pure parts: UAPI text, diffs (no I/O; fuzzed and unit tested) ---------- */

/* Parse a UAPI reply: key=value lines ending with "errno=N" and a blank
 * line. With ret != NULL the reply of "get=1" is parsed into it; the private
 * key's value is wiped in buf. Returns 0, the device's own error (errno=N,
 * N != 0: -N), or -EBADMSG with a reason naming the line. */
int wg_uapi_parse_reply(char *buf, size_t len, struct wg_status *ret, struct errmsg *e);

/* The "set=1" request that adds or updates `upsert` (endpoint and allowed IP
 * replaced, the session kept) and removes the peers whose keys are in
 * `removal`. NUL-terminated, ends with the blank line. */
int wg_uapi_format_peers(const struct wg_peer *upsert, size_t n_upsert, const uint8_t (*removal)[WG_KEY_SIZE],
                         size_t n_removal, char **ret);

/* What turns `cur` into `want`: indices into `want` of peers that are new
 * or changed (endpoint, allowed IP or keepalive), indices into `cur` of
 * peers whose key is not wanted any more. Peers equal in both are in
 * neither list. The caller frees both arrays. -EINVAL when `want` holds a
 * key or an allowed IP twice. */
int wg_peers_diff(const struct wg_peer *cur, size_t n_cur, const struct wg_peer *want, size_t n_want,
                  size_t **ret_upsert, size_t *ret_n_upsert, size_t **ret_removal, size_t *ret_n_removal);

/* --- peers from the join service ----------------------------------------------- */

struct mesh_peer; /* lib/messages.h */

/* "a.b.c.d/n" (n <= 30) -> network and mask in host order. */
int wg_parse_cidr4(const char *cidr, uint32_t *ret_net, uint32_t *ret_mask, unsigned *ret_prefix);

/* A member of the join service's peer list as the device gets it: its
 * key (base64 of 32 bytes), endpoint (an IP literal and port: no names,
 * no resolving), allowed IP = its mesh address/32, which must be a host
 * address of mesh_cidr other than self_address. -EBADMSG naming the peer
 * and the field otherwise. */
int wg_peer_from_mesh(const struct mesh_peer *p, const char *mesh_cidr, const char *self_address, struct wg_peer *ret,
                      struct errmsg *e);

/* --- the device ----------------------------------------------------------- */

struct wg_device;

/* Create the interface (replacing a leftover one of the same name). For
 * the userspace backend, wireguard-go is started as a child of this
 * process (it dies with it) and this waits until its UAPI socket answers. */
int wg_device_new(const struct wg_options *opt, struct wg_device **ret, struct errmsg *e);
/* Delete the interface (which also ends wireguard-go) and free. */
struct wg_device *wg_device_destroy(struct wg_device *d);

const char *wg_device_backend(const struct wg_device *d); /* "kernel" or "wireguard-go" */
const char *wg_device_ifname(const struct wg_device *d);
/* wireguard-go's pid (0 for kernel WireGuard). */
pid_t wg_device_pid(const struct wg_device *d);
/* Tell the device its child has exited (it is not reaped here). */
void wg_device_child_exited(struct wg_device *d);

/* Private key and UDP port. */
int wg_device_set_key(struct wg_device *d, const uint8_t priv[WG_KEY_SIZE], uint16_t port, struct errmsg *e);
/* Replace the interface's address ("10.123.0.4", prefix 16) and set it up. */
int wg_device_set_address(struct wg_device *d, const char *address, unsigned prefixlen, struct errmsg *e);

/* Make the device's peers equal `want`, touching only what differs from
 * what this handle applied before. Counts of added/changed and removed
 * peers go to the optional ret_* outputs. On failure nothing is known to
 * be applied: the next sync re-sends everything that differs. */
int wg_device_sync_peers(struct wg_device *d, const struct wg_peer *want, size_t n_want, size_t *ret_upserted,
                         size_t *ret_removed, struct errmsg *e);
/* The peers this handle has applied. */
const struct wg_peer *wg_device_peers(const struct wg_device *d, size_t *ret_n);

/* Read the device (userspace: UAPI get; kernel: -EOPNOTSUPP). */
int wg_device_get(struct wg_device *d, struct wg_status *ret, struct errmsg *e);

/* UAPI get on <uapi_dir>/<ifname>.sock, without a device handle (tools). */
int wg_uapi_get(const char *uapi_dir, const char *ifname, struct wg_status *ret, struct errmsg *e);
