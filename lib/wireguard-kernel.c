/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel backend: `ip link add <if> type wireguard`, configured with
 * wireguard-tools' `wg set` (argv, no shell). The private key reaches wg
 * through a memfd that it opens as /proc/<our pid>/fd/<n>: it is never in
 * an argv, an environment or a file system. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cpdriver.h"
#include "macro.h"
#include "secret.h"
#include "wireguard-internal.h"

/* Peers per `wg set` invocation, to keep argv short. */
#define PEERS_PER_RUN 64

static int kernel_create(struct wg_device *d, struct errmsg *e) {
        char *argv[] = { d->ip, "link", "add", "dev", d->ifname, "type", "wireguard", NULL };
        struct errmsg why = {};
        int r;

        if (!d->wg[0])
                return errmsg_set(e, EOPNOTSUPP, "wireguard-tools' wg is not installed");
        r = cp_run("ip link add type wireguard", argv, 10, &why);
        if (r < 0)
                return errmsg_set(e, EOPNOTSUPP, "the kernel cannot make a WireGuard link: %s", errmsg_str(&why));
        return 0;
}

static int kernel_set_key(struct wg_device *d, const uint8_t priv[WG_KEY_SIZE], uint16_t port, struct errmsg *e) {
        _cleanup_close_ int fd = -EBADF;
        char b64[WG_KEY_B64_SIZE + 1], path[64], portstr[8];
        char *argv[] = { d->wg, "set", d->ifname, "listen-port", portstr, "private-key", path, NULL };
        int r;

        fd = memfd_create("arca-wg-key", MFD_CLOEXEC);
        if (fd < 0)
                return errmsg_set(e, errno, "memfd_create: %m");
        EVP_EncodeBlock((unsigned char *) b64, priv, WG_KEY_SIZE);
        r = write(fd, b64, strlen(b64)) == (ssize_t) strlen(b64) ? 0 : -EIO;
        secret_wipe(b64, sizeof(b64));
        if (r < 0)
                return errmsg_set(e, EIO, "cannot write the private key to a memfd");
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) getpid(), fd);
        snprintf(portstr, sizeof(portstr), "%u", port);
        r = cp_run("wg set private-key", argv, 10, e);
        /* Wipe the memfd's pages before they are freed. */
        if (ftruncate(fd, 0) < 0)
                r = r < 0 ? r : -EIO;
        return r;
}

static int kernel_apply(struct wg_device *d, const struct wg_peer *upsert, size_t n_upsert,
                        const uint8_t (*removal)[WG_KEY_SIZE], size_t n_removal, struct errmsg *e) {
        /* Per peer at most: peer KEY endpoint E persistent-keepalive N allowed-ips A */
        char *argv[3 + PEERS_PER_RUN * 8 + 1];
        char keys[PEERS_PER_RUN][WG_KEY_B64_SIZE + 1], ka[PEERS_PER_RUN][8];
        size_t i_rm = 0, i_up = 0;
        int r;

        while (i_rm < n_removal || i_up < n_upsert) {
                size_t a = 0, k = 0;

                argv[a++] = d->wg;
                argv[a++] = "set";
                argv[a++] = d->ifname;
                for (; i_rm < n_removal && k < PEERS_PER_RUN; i_rm++, k++) {
                        EVP_EncodeBlock((unsigned char *) keys[k], removal[i_rm], WG_KEY_SIZE);
                        argv[a++] = "peer";
                        argv[a++] = keys[k];
                        argv[a++] = "remove";
                }
                for (; i_up < n_upsert && k < PEERS_PER_RUN; i_up++, k++) {
                        const struct wg_peer *p = &upsert[i_up];
                        EVP_EncodeBlock((unsigned char *) keys[k], p->public_key, WG_KEY_SIZE);
                        snprintf(ka[k], sizeof(ka[k]), "%u", p->keepalive);
                        argv[a++] = "peer";
                        argv[a++] = keys[k];
                        if (p->endpoint[0]) {
                                argv[a++] = "endpoint";
                                argv[a++] = (char *) p->endpoint;
                        }
                        argv[a++] = "persistent-keepalive";
                        argv[a++] = ka[k];
                        argv[a++] = "allowed-ips";
                        argv[a++] = (char *) p->allowed_ip;
                }
                argv[a] = NULL;
                r = cp_run("wg set peers", argv, 30, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int kernel_get(struct wg_device *d, struct wg_status *ret, struct errmsg *e) {
        return errmsg_set(e, EOPNOTSUPP, "reading a kernel WireGuard device is not implemented (use `wg show %s`)",
                          d->ifname);
}

static void kernel_destroy(struct wg_device *d) {
        wg_link_delete(d);
}

const struct wg_backend_ops wg_backend_kernel = {
        .name = "kernel",
        .create = kernel_create,
        .set_key = kernel_set_key,
        .apply = kernel_apply,
        .get = kernel_get,
        .destroy = kernel_destroy,
};
