/* SPDX-License-Identifier: Apache-2.0 */
/* Userspace backend: wireguard-go, a child of this process, driven through
 * its UAPI socket <uapi_dir>/<ifname>.sock. The socket path is the same in
 * every network namespace, so each node runs in a mount namespace with a
 * /run of its own (docs/MESH.md). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpdriver.h"
#include "encoding.h"
#include "macro.h"
#include "secret.h"
#include "time-util.h"
#include "wireguard-internal.h"

#define UAPI_TIMEOUT_MS 5000
#define START_TIMEOUT_MS 10000

static int uapi_connect(const char *dir, const char *ifname, struct errmsg *e) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if ((size_t) snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", dir, ifname) >= sizeof(sa.sun_path))
                return errmsg_set(e, ENAMETOOLONG, "UAPI socket path %s/%s.sock is too long", dir, ifname);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return errmsg_set(e, errno, "cannot make a socket: %m");
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = errno;
                close(fd);
                return errmsg_set(e, r, "cannot connect to the WireGuard UAPI socket %s: %s", sa.sun_path,
                                  strerror(r));
        }
        return fd;
}

static int wait_fd(int fd, short events, struct errmsg *e) {
        struct pollfd p = { .fd = fd, .events = events };
        int n;

        do
                n = poll(&p, 1, UAPI_TIMEOUT_MS);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errmsg_set(e, errno, "poll on the UAPI socket: %m");
        if (n == 0)
                return errmsg_set(e, ETIMEDOUT, "the WireGuard UAPI socket did not answer within %d ms",
                                  UAPI_TIMEOUT_MS);
        return 0;
}

/* Send one request and read its reply: the server keeps the connection
 * open, so the reply ends at its blank line, not at EOF. */
static int uapi_transact(const char *dir, const char *ifname, const char *req, size_t req_len, char **ret,
                         size_t *ret_len, struct errmsg *e) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0, off = 0;
        int r;

        fd = uapi_connect(dir, ifname, e);
        if (fd < 0)
                return fd;
        while (off < req_len) {
                ssize_t n;
                r = wait_fd(fd, POLLOUT, e);
                if (r < 0)
                        return r;
                n = send(fd, req + off, req_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n < 0)
                        return errmsg_set(e, errno, "writing to the WireGuard UAPI socket: %m");
                off += (size_t) n;
        }
        for (;;) {
                ssize_t n;
                if (len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n')
                        break;
                if (len == 1 && buf[0] == '\n')
                        break;
                if (cap - len < 4096) {
                        char *p;
                        if (cap >= WG_UAPI_MAX_REPLY)
                                return errmsg_set(e, EMSGSIZE, "the UAPI reply exceeds %d bytes", WG_UAPI_MAX_REPLY);
                        p = realloc(buf, cap + 16384 + 1);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap += 16384;
                }
                r = wait_fd(fd, POLLIN, e);
                if (r < 0)
                        return r;
                n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n < 0)
                        return errmsg_set(e, errno, "reading the WireGuard UAPI socket: %m");
                if (n == 0)
                        return errmsg_set(e, EPIPE, "the WireGuard UAPI socket closed before the end of the reply");
                len += (size_t) n;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* Send a "set=1" request; the reply is errno=N. */
static int uapi_set(const char *dir, const char *ifname, const char *req, struct errmsg *e) {
        char *reply = NULL;
        size_t len = 0;
        int r;

        r = uapi_transact(dir, ifname, req, strlen(req), &reply, &len, e);
        if (r < 0)
                return r;
        r = wg_uapi_parse_reply(reply, len, NULL, e);
        free(reply);
        return r;
}

int wg_uapi_get(const char *uapi_dir, const char *ifname, struct wg_status *ret, struct errmsg *e) {
        static const char req[] = "get=1\n\n";
        char *reply = NULL;
        size_t len = 0;
        int r;

        r = uapi_transact(uapi_dir ? uapi_dir : WG_UAPI_DIR_DEFAULT, ifname, req, sizeof(req) - 1, &reply, &len, e);
        if (r < 0)
                return r;
        r = wg_uapi_parse_reply(reply, len, ret, e); /* wipes the private key in reply */
        secret_free(reply, len);
        return r;
}

/* The child's exit code once it has exited (reaped here), else -1. */
static int child_gone(struct wg_device *d) {
        int status;
        pid_t w;

        if (d->pid <= 0)
                return 0;
        w = waitpid(d->pid, &status, WNOHANG);
        if (w < 0 && errno == ECHILD) { /* reaped by someone else */
                d->pid = 0;
                return 0;
        }
        if (w == d->pid) {
                d->pid = 0;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        return -1;
}

static int userspace_create(struct wg_device *d, struct errmsg *e) {
        char *argv[] = { d->wireguard_go, "-f", d->ifname, NULL };
        uint64_t deadline;
        struct errmsg last = {};
        int r;

        if (access(d->wireguard_go, X_OK) < 0)
                return errmsg_set(e, ENOENT, "%s is not installed (package wireguard-go)", d->wireguard_go);
        r = cp_spawn(argv, d->log_path, &d->pid, e);
        if (r < 0)
                return r;
        deadline = now_ms() + START_TIMEOUT_MS;
        for (;;) {
                struct wg_status st = {};
                int code;

                last = (struct errmsg){};
                r = wg_uapi_get(d->uapi_dir, d->ifname, &st, &last);
                wg_status_done(&st);
                if (r >= 0)
                        return 0;
                code = child_gone(d);
                if (code >= 0)
                        return errmsg_set(e, ECHILD, "wireguard-go exited (status %d) before its UAPI socket answered",
                                          code);
                if (now_ms() >= deadline)
                        break;
                sleep_ms(20);
        }
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
        return errmsg_set(e, ETIMEDOUT, "wireguard-go did not answer within %d ms: %s", START_TIMEOUT_MS,
                          errmsg_str(&last));
}

static int userspace_set_key(struct wg_device *d, const uint8_t priv[WG_KEY_SIZE], uint16_t port, struct errmsg *e) {
        char hex[2 * WG_KEY_SIZE + 1];
        char req[sizeof(hex) + 64];
        int r;

        hex_encode_buf(priv, WG_KEY_SIZE, hex);
        snprintf(req, sizeof(req), "set=1\nprivate_key=%s\nlisten_port=%u\n\n", hex, port);
        r = uapi_set(d->uapi_dir, d->ifname, req, e);
        secret_wipe(hex, sizeof(hex));
        secret_wipe(req, sizeof(req));
        return r;
}

static int userspace_apply(struct wg_device *d, const struct wg_peer *upsert, size_t n_upsert,
                           const uint8_t (*removal)[WG_KEY_SIZE], size_t n_removal, struct errmsg *e) {
        _cleanup_free_ char *req = NULL;
        int r;

        r = wg_uapi_format_peers(upsert, n_upsert, removal, n_removal, &req);
        if (r < 0)
                return r;
        return uapi_set(d->uapi_dir, d->ifname, req, e);
}

static int userspace_get(struct wg_device *d, struct wg_status *ret, struct errmsg *e) {
        return wg_uapi_get(d->uapi_dir, d->ifname, ret, e);
}

static void userspace_destroy(struct wg_device *d) {
        /* Deleting the link ends wireguard-go; SIGTERM covers a link that
         * never came up. */
        wg_link_delete(d);
        if (d->pid > 0) {
                uint64_t deadline = now_ms() + 3000;
                kill(d->pid, SIGTERM);
                while (child_gone(d) < 0) {
                        if (now_ms() >= deadline) {
                                kill(d->pid, SIGKILL);
                                waitpid(d->pid, NULL, 0);
                                d->pid = 0;
                                break;
                        }
                        sleep_ms(10);
                }
        }
}

const struct wg_backend_ops wg_backend_userspace = {
        .name = "wireguard-go",
        .create = userspace_create,
        .set_key = userspace_set_key,
        .apply = userspace_apply,
        .get = userspace_get,
        .destroy = userspace_destroy,
};
