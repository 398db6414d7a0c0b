/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Between lib/wireguard.c and its backends; nothing outside lib/wireguard*.c
 * includes this. */

#include <limits.h>

#include "wireguard.h"

struct wg_device;

struct wg_backend_ops {
        const char *name;
        /* Make the interface; -EOPNOTSUPP when this backend cannot exist here. */
        int (*create)(struct wg_device *d, struct errmsg *e);
        int (*set_key)(struct wg_device *d, const uint8_t priv[WG_KEY_SIZE], uint16_t port, struct errmsg *e);
        int (*apply)(struct wg_device *d, const struct wg_peer *upsert, size_t n_upsert,
                     const uint8_t (*removal)[WG_KEY_SIZE], size_t n_removal, struct errmsg *e);
        int (*get)(struct wg_device *d, struct wg_status *ret, struct errmsg *e);
        /* Remove the interface; best effort. */
        void (*destroy)(struct wg_device *d);
};

struct wg_device {
        char ifname[16];
        char *uapi_dir;
        char *wireguard_go;
        char *log_path;
        char ip[PATH_MAX]; /* iproute2 */
        char wg[PATH_MAX]; /* wireguard-tools, kernel backend only */
        const struct wg_backend_ops *ops;
        pid_t pid; /* wireguard-go */
        struct wg_peer *applied;
        size_t n_applied;
        bool dirty; /* an apply failed: the device may differ from `applied` */
};

extern const struct wg_backend_ops wg_backend_kernel;
extern const struct wg_backend_ops wg_backend_userspace;

/* `ip link del <ifname>`, errors ignored. */
void wg_link_delete(struct wg_device *d);
