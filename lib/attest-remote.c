/* SPDX-License-Identifier: Apache-2.0 */
#include "attest-remote.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attest-internal.h"
#include "macro.h"
#include "time-util.h"

#define ISSUE_FIXED (ATTEST_NONCE_SIZE + ATTEST_USER_DATA_SIZE)
#define ATTEST_REMOTE_SERVER_NICE (-10)

/* --- wire format ------------------------------------------------------------ */

static bool valid_name(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
                        return false;
        return n > 0;
}

static bool valid_message(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] < 0x20 || p[i] > 0x7e)
                        return false;
        return true;
}

static const char *type_name(uint8_t type) {
        switch (type) {
        case ATTEST_REMOTE_REQ_INFO:
                return "INFO request";
        case ATTEST_REMOTE_REQ_ISSUE:
                return "ISSUE request";
        case ATTEST_REMOTE_REPLY_INFO:
                return "INFO reply";
        case ATTEST_REMOTE_REPLY_EVIDENCE:
                return "EVIDENCE reply";
        case ATTEST_REMOTE_REPLY_ERROR:
                return "ERROR reply";
        default:
                return "unknown";
        }
}

/* The header of a packet that claims to be a `what`; *ret_len is the body's
 * length, equal to what follows the header. */
static int header_parse(const char *what, const uint8_t *p, size_t n, uint8_t *ret_type, uint32_t *ret_id,
                        uint32_t *ret_len, struct errmsg *e) {
        uint32_t v;

        if (!p || n < ATTEST_REMOTE_HEADER_SIZE)
                return errmsg_set(e, EBADMSG, "%s of %zu bytes is shorter than its %d-byte header", what, n,
                                  ATTEST_REMOTE_HEADER_SIZE);
        if (p[0] != ATTEST_REMOTE_VERSION)
                return errmsg_set(e, EBADMSG, "%s version %u, expected %u", what, p[0], ATTEST_REMOTE_VERSION);
        if (p[2] != 0 || p[3] != 0)
                return errmsg_set(e, EBADMSG, "%s: reserved header bytes are not zero", what);
        memcpy(&v, p + 4, 4);
        *ret_id = be32toh(v);
        memcpy(&v, p + 8, 4);
        *ret_len = be32toh(v);
        if ((size_t) *ret_len != n - ATTEST_REMOTE_HEADER_SIZE)
                return errmsg_set(e, EBADMSG, "%s: the header announces a %u-byte body, the packet holds %zu bytes",
                                  what, *ret_len, n - ATTEST_REMOTE_HEADER_SIZE);
        *ret_type = p[1];
        return 0;
}

static uint8_t *header_build(uint8_t type, uint32_t id, size_t len, size_t *ret_size) {
        uint8_t *p = malloc(ATTEST_REMOTE_HEADER_SIZE + len);
        uint32_t v;

        if (!p)
                return NULL;
        p[0] = ATTEST_REMOTE_VERSION;
        p[1] = type;
        p[2] = p[3] = 0;
        v = htobe32(id);
        memcpy(p + 4, &v, 4);
        v = htobe32((uint32_t) len);
        memcpy(p + 8, &v, 4);
        *ret_size = ATTEST_REMOTE_HEADER_SIZE + len;
        return p;
}

int attest_remote_request_parse(const uint8_t *p, size_t n, struct attest_remote_request *ret, struct errmsg *e) {
        struct attest_remote_request req = {};
        const uint8_t *body = p + ATTEST_REMOTE_HEADER_SIZE;
        uint32_t len;
        int r;

        if (n > ATTEST_REMOTE_MAX_REQUEST)
                return errmsg_set(e, EBADMSG, "request of %zu bytes exceeds %d bytes", n, ATTEST_REMOTE_MAX_REQUEST);
        r = header_parse("request", p, n, &req.type, &req.id, &len, e);
        if (r < 0)
                return r;
        switch (req.type) {
        case ATTEST_REMOTE_REQ_INFO:
                if (len != 0)
                        return errmsg_set(e, EBADMSG, "INFO request: %u bytes of body, expected none", len);
                break;
        case ATTEST_REMOTE_REQ_ISSUE:
                if (len <= ISSUE_FIXED || len > ISSUE_FIXED + ATTEST_REMOTE_PURPOSE_MAX)
                        return errmsg_set(e, EBADMSG, "ISSUE request: body of %u bytes, expected %d-%d", len,
                                          ISSUE_FIXED + 1, ISSUE_FIXED + ATTEST_REMOTE_PURPOSE_MAX);
                if (!valid_name(body + ISSUE_FIXED, len - ISSUE_FIXED))
                        return errmsg_set(e, EBADMSG, "ISSUE request: the purpose is not made of [a-z0-9-]");
                memcpy(req.nonce, body, ATTEST_NONCE_SIZE);
                memcpy(req.user_data, body + ATTEST_NONCE_SIZE, ATTEST_USER_DATA_SIZE);
                memcpy(req.purpose, body + ISSUE_FIXED, len - ISSUE_FIXED);
                break;
        default:
                return errmsg_set(e, EBADMSG, "request type 0x%02x is not a request", req.type);
        }
        *ret = req;
        return 0;
}

int attest_remote_request_build(const struct attest_remote_request *req, uint8_t **ret, size_t *ret_size) {
        size_t plen = strnlen(req->purpose, sizeof(req->purpose)), len;
        uint8_t *p;

        if (req->type == ATTEST_REMOTE_REQ_INFO)
                len = 0;
        else if (req->type == ATTEST_REMOTE_REQ_ISSUE) {
                if (plen > ATTEST_REMOTE_PURPOSE_MAX || !valid_name((const uint8_t *) req->purpose, plen))
                        return -EINVAL;
                len = ISSUE_FIXED + plen;
        } else
                return -EINVAL;
        p = header_build(req->type, req->id, len, ret_size);
        if (!p)
                return -ENOMEM;
        if (len) {
                memcpy(p + ATTEST_REMOTE_HEADER_SIZE, req->nonce, ATTEST_NONCE_SIZE);
                memcpy(p + ATTEST_REMOTE_HEADER_SIZE + ATTEST_NONCE_SIZE, req->user_data, ATTEST_USER_DATA_SIZE);
                memcpy(p + ATTEST_REMOTE_HEADER_SIZE + ISSUE_FIXED, req->purpose, plen);
        }
        *ret = p;
        return 0;
}

int attest_remote_reply_parse(const uint8_t *p, size_t n, struct attest_remote_reply *ret, struct errmsg *e) {
        struct attest_remote_reply rep = {};
        const uint8_t *body = p + ATTEST_REMOTE_HEADER_SIZE;
        uint32_t len, v;
        int r;

        if (n > ATTEST_REMOTE_MAX_REPLY)
                return errmsg_set(e, EBADMSG, "reply of %zu bytes exceeds %d bytes", n, ATTEST_REMOTE_MAX_REPLY);
        r = header_parse("reply", p, n, &rep.type, &rep.id, &len, e);
        if (r < 0)
                return r;
        switch (rep.type) {
        case ATTEST_REMOTE_REPLY_INFO:
                if (len <= ATTEST_AK_NAME_SIZE || len > ATTEST_AK_NAME_SIZE + ATTEST_REMOTE_VARIANT_MAX)
                        return errmsg_set(e, EBADMSG, "INFO reply: body of %u bytes, expected %d-%d", len,
                                          ATTEST_AK_NAME_SIZE + 1, ATTEST_AK_NAME_SIZE + ATTEST_REMOTE_VARIANT_MAX);
                if (!valid_name(body + ATTEST_AK_NAME_SIZE, len - ATTEST_AK_NAME_SIZE))
                        return errmsg_set(e, EBADMSG, "INFO reply: the variant is not made of [a-z0-9-]");
                memcpy(rep.ak_name, body, ATTEST_AK_NAME_SIZE);
                memcpy(rep.variant, body + ATTEST_AK_NAME_SIZE, len - ATTEST_AK_NAME_SIZE);
                break;
        case ATTEST_REMOTE_REPLY_EVIDENCE:
                if (len == 0 || len > EVIDENCE_MAX_SIZE)
                        return errmsg_set(e, EBADMSG, "EVIDENCE reply: document of %u bytes, expected 1-%d", len,
                                          EVIDENCE_MAX_SIZE);
                rep.doc = body;
                rep.doc_size = len;
                break;
        case ATTEST_REMOTE_REPLY_ERROR:
                if (len < 4 || len > 4 + ATTEST_REMOTE_MESSAGE_MAX)
                        return errmsg_set(e, EBADMSG, "ERROR reply: body of %u bytes, expected 4-%d", len,
                                          4 + ATTEST_REMOTE_MESSAGE_MAX);
                memcpy(&v, body, 4);
                v = be32toh(v);
                if (v == 0 || v > 4095)
                        return errmsg_set(e, EBADMSG, "ERROR reply: errno %u out of range 1-4095", v);
                if (!valid_message(body + 4, len - 4))
                        return errmsg_set(e, EBADMSG, "ERROR reply: the message is not printable ASCII");
                rep.error = (int) v;
                memcpy(rep.message, body + 4, len - 4);
                break;
        default:
                return errmsg_set(e, EBADMSG, "reply type 0x%02x is not a reply", rep.type);
        }
        *ret = rep;
        return 0;
}

int attest_remote_reply_build(const struct attest_remote_reply *rep, uint8_t **ret, size_t *ret_size) {
        size_t vlen = strnlen(rep->variant, sizeof(rep->variant)), mlen = strnlen(rep->message, sizeof(rep->message));
        uint8_t *p, *body;
        uint32_t v;

        switch (rep->type) {
        case ATTEST_REMOTE_REPLY_INFO:
                if (vlen > ATTEST_REMOTE_VARIANT_MAX || !valid_name((const uint8_t *) rep->variant, vlen))
                        return -EINVAL;
                p = header_build(rep->type, rep->id, ATTEST_AK_NAME_SIZE + vlen, ret_size);
                if (!p)
                        return -ENOMEM;
                body = p + ATTEST_REMOTE_HEADER_SIZE;
                memcpy(body, rep->ak_name, ATTEST_AK_NAME_SIZE);
                memcpy(body + ATTEST_AK_NAME_SIZE, rep->variant, vlen);
                break;
        case ATTEST_REMOTE_REPLY_EVIDENCE:
                if (!rep->doc || rep->doc_size == 0 || rep->doc_size > EVIDENCE_MAX_SIZE)
                        return -EINVAL;
                p = header_build(rep->type, rep->id, rep->doc_size, ret_size);
                if (!p)
                        return -ENOMEM;
                memcpy(p + ATTEST_REMOTE_HEADER_SIZE, rep->doc, rep->doc_size);
                break;
        case ATTEST_REMOTE_REPLY_ERROR:
                if (rep->error <= 0 || rep->error > 4095 || mlen > ATTEST_REMOTE_MESSAGE_MAX ||
                    !valid_message((const uint8_t *) rep->message, mlen))
                        return -EINVAL;
                p = header_build(rep->type, rep->id, 4 + mlen, ret_size);
                if (!p)
                        return -ENOMEM;
                body = p + ATTEST_REMOTE_HEADER_SIZE;
                v = htobe32((uint32_t) rep->error);
                memcpy(body, &v, 4);
                memcpy(body + 4, rep->message, mlen);
                break;
        default:
                return -EINVAL;
        }
        *ret = p;
        return 0;
}

/* --- client: the remote attester --------------------------------------------- */

struct remote_attester {
        struct attester base;
        pthread_mutex_t lock; /* one request at a time */
        int fd;
        unsigned timeout_ms;
        uint32_t last_id;
        char variant[ATTEST_REMOTE_VARIANT_MAX + 1];
        uint8_t ak_name[ATTEST_AK_NAME_SIZE];
};

/* Wait until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, uint64_t deadline, short *ret_revents, unsigned timeout_ms,
                   struct errmsg *e) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t now = now_ms();
                int64_t left = deadline > now ? (int64_t) (deadline - now) : 0;
                int r;

                if (left <= 0)
                        return errmsg_set(e, ETIMEDOUT, "the remote attester did not answer within %u ms",
                                          timeout_ms);
                r = poll(&p, 1, (int) left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return errmsg_set(e, errno, "cannot wait for the attestation channel: %s", strerror(errno));
                if (r == 0)
                        continue; /* the deadline check above ends it */
                if (p.revents & POLLNVAL)
                        return errmsg_set(e, EBADF, "the attestation channel is not an open socket");
                *ret_revents = p.revents;
                return 0;
        }
}

static int channel_closed(struct errmsg *e) {
        return errmsg_set(e, ECONNRESET, "the attestation channel is closed: the remote attester is gone");
}

/* Send one request and receive its reply. *ret_packet holds the reply's
 * bytes (ret points into it). */
static int remote_call(struct remote_attester *a, struct attest_remote_request *req, uint8_t **ret_packet,
                       struct attest_remote_reply *ret, struct errmsg *e) {
        uint64_t deadline = now_ms() + a->timeout_ms;
        _cleanup_free_ uint8_t *pkt = NULL;
        size_t size;
        short revents;
        int r;

        req->id = ++a->last_id;
        if (req->id == 0)
                req->id = ++a->last_id;
        r = attest_remote_request_build(req, &pkt, &size);
        if (r < 0)
                return errmsg_set(e, r, "cannot build the attestation request");
        for (;;) {
                ssize_t n;

                r = wait_fd(a->fd, POLLOUT, deadline, &revents, a->timeout_ms, e);
                if (r < 0)
                        return r;
                n = send(a->fd, pkt, size, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n == (ssize_t) size)
                        break;
                if (n >= 0)
                        return errmsg_set(e, EIO, "the attestation request was sent in part");
                if (errno == EAGAIN || errno == EINTR)
                        continue;
                if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
                        return channel_closed(e);
                return errmsg_set(e, errno, "cannot send the attestation request: %s", strerror(errno));
        }

        for (;;) {
                _cleanup_free_ uint8_t *buf = NULL;
                struct attest_remote_reply rep;
                ssize_t n, got;

                r = wait_fd(a->fd, POLLIN, deadline, &revents, a->timeout_ms, e);
                if (r < 0)
                        return r;
                /* The size of the waiting packet, without taking it. */
                n = recv(a->fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n < 0 && (errno == ECONNRESET || errno == ENOTCONN))
                        return channel_closed(e);
                if (n < 0)
                        return errmsg_set(e, errno, "cannot read the attestation reply: %s", strerror(errno));
                if (n == 0 && (revents & POLLHUP))
                        return channel_closed(e);
                if (n == 0 || n > ATTEST_REMOTE_MAX_REPLY) {
                        uint8_t byte;
                        (void) recv(a->fd, &byte, 1, MSG_DONTWAIT); /* drop it */
                        return errmsg_set(e, EBADMSG, "the remote attester sent a reply of %zd bytes (1-%d expected)",
                                          n, ATTEST_REMOTE_MAX_REPLY);
                }
                buf = malloc((size_t) n);
                if (!buf)
                        return -ENOMEM;
                got = recv(a->fd, buf, (size_t) n, MSG_DONTWAIT);
                if (got != n)
                        return errmsg_set(e, EIO, "the attestation reply changed while it was read");
                r = attest_remote_reply_parse(buf, (size_t) n, &rep, e);
                if (r < 0) {
                        errmsg_prefix(e, "malformed reply from the remote attester");
                        return r;
                }
                if (rep.id != req->id)
                        continue; /* the answer to a request that timed out */
                if (rep.type == ATTEST_REMOTE_REPLY_ERROR)
                        return errmsg_set(e, rep.error, "the remote attester refused: %s", rep.message);
                if ((req->type == ATTEST_REMOTE_REQ_INFO) != (rep.type == ATTEST_REMOTE_REPLY_INFO))
                        return errmsg_set(e, EBADMSG, "the remote attester's answer to an %s is an %s",
                                          type_name(req->type), type_name(rep.type));
                *ret = rep;
                *ret_packet = TAKE_PTR(buf);
                return 0;
        }
}

static const char *remote_variant(const struct attester *base) {
        return container_of(base, const struct remote_attester, base)->variant;
}

static int remote_ak_name(const struct attester *base, uint8_t ret[ATTEST_AK_NAME_SIZE], struct errmsg *e) {
        memcpy(ret, container_of(base, const struct remote_attester, base)->ak_name, ATTEST_AK_NAME_SIZE);
        return 0;
}

static int remote_issue(struct attester *base, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                        const uint8_t user_data[ATTEST_USER_DATA_SIZE], char **ret, size_t *ret_size,
                        struct errmsg *e) {
        struct remote_attester *a = container_of(base, struct remote_attester, base);
        struct attest_remote_request req = { .type = ATTEST_REMOTE_REQ_ISSUE };
        struct attest_remote_reply rep;
        _cleanup_free_ uint8_t *pkt = NULL;
        char *doc;
        int r;

        if (!purpose || strlen(purpose) > ATTEST_REMOTE_PURPOSE_MAX)
                return errmsg_set(e, EINVAL, "purpose \"%s\" is longer than %d bytes", strna(purpose),
                                  ATTEST_REMOTE_PURPOSE_MAX);
        memcpy(req.purpose, purpose, strlen(purpose));
        memcpy(req.nonce, nonce, ATTEST_NONCE_SIZE);
        memcpy(req.user_data, user_data, ATTEST_USER_DATA_SIZE);
        pthread_mutex_lock(&a->lock);
        r = remote_call(a, &req, &pkt, &rep, e);
        pthread_mutex_unlock(&a->lock);
        if (r < 0)
                return r;
        doc = malloc(rep.doc_size + 1);
        if (!doc)
                return -ENOMEM;
        memcpy(doc, rep.doc, rep.doc_size);
        doc[rep.doc_size] = 0;
        *ret = doc;
        *ret_size = rep.doc_size;
        return 0;
}

static void remote_free(struct attester *base) {
        struct remote_attester *a = container_of(base, struct remote_attester, base);

        if (a->fd >= 0)
                close(a->fd);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static const struct attester_ops remote_ops = {
        .variant = remote_variant,
        .ak_name = remote_ak_name,
        .issue = remote_issue,
        .free = remote_free,
};

int attester_remote_new(int fd, const char *variant, unsigned timeout_ms, struct attester **ret,
                        struct errmsg *e) {
        struct attest_remote_request req = { .type = ATTEST_REMOTE_REQ_INFO };
        struct attest_remote_reply rep;
        _cleanup_free_ uint8_t *pkt = NULL;
        struct remote_attester *a;
        int r, type = 0;
        socklen_t len = sizeof(type);

        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return errmsg_set(e, EBADF, "attestation channel: descriptor %d is not open", fd);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return errmsg_set(e, ENOTSOCK, "attestation channel: descriptor %d is not a socket", fd);
        if (type != SOCK_SEQPACKET)
                return errmsg_set(e, EPROTOTYPE, "attestation channel: descriptor %d is not a SOCK_SEQPACKET socket",
                                  fd);
        /* Not for this process's children. */
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return errmsg_set(e, errno, "attestation channel: %s", strerror(errno));
        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->base.ops = &remote_ops;
        a->fd = fd;
        a->timeout_ms = timeout_ms ? timeout_ms : ATTEST_REMOTE_TIMEOUT_MS;
        pthread_mutex_init(&a->lock, NULL);
        r = remote_call(a, &req, &pkt, &rep, e);
        if (r >= 0 && variant && !streq(rep.variant, variant))
                r = errmsg_set(e, EINVAL, "the remote attester attests as variant \"%s\", not \"%s\"", rep.variant,
                               variant);
        if (r < 0) {
                a->fd = -1; /* the caller keeps fd */
                remote_free(&a->base);
                return r;
        }
        memcpy(a->variant, rep.variant, sizeof(a->variant));
        memcpy(a->ak_name, rep.ak_name, sizeof(a->ak_name));
        *ret = &a->base;
        return 0;
}

/* --- server ------------------------------------------------------------------- */

int attest_remote_socketpair(int fds[2], struct errmsg *e) {
        int sp[2], size = ATTEST_REMOTE_MAX_REPLY + 4096, got = 0;
        socklen_t len = sizeof(got);

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return errmsg_set(e, errno, "cannot create the attestation channel: %s", strerror(errno));
        /* A reply is one packet: the largest evidence must fit the server's
         * send buffer (the kernel caps SO_SNDBUF at net.core.wmem_max and
         * doubles it; root may go beyond). */
        (void) setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        if (getsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &got, &len) < 0 || got < size)
                (void) setsockopt(sp[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
        fds[0] = sp[0];
        fds[1] = sp[1];
        return 0;
}

/* An error reply: the message made printable and short enough. */
static int send_error(int fd, uint32_t id, int error, const char *text) {
        struct attest_remote_reply rep = { .type = ATTEST_REMOTE_REPLY_ERROR, .id = id };
        _cleanup_free_ uint8_t *pkt = NULL;
        size_t size;

        error = abs(error);
        rep.error = error > 0 && error <= 4095 ? error : EIO;
        printable_str(text, rep.message, sizeof(rep.message));
        if (attest_remote_reply_build(&rep, &pkt, &size) < 0)
                return -ENOMEM;
        if (send(fd, pkt, size, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t) size)
                return -errno;
        return 0;
}

static int send_reply(int fd, const struct attest_remote_reply *rep, struct errmsg *e) {
        _cleanup_free_ uint8_t *pkt = NULL;
        size_t size;
        int r;

        r = attest_remote_reply_build(rep, &pkt, &size);
        if (r < 0)
                return errmsg_set(e, r, "cannot build the attestation reply");
        if (send(fd, pkt, size, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t) size)
                return 0;
        if (errno == EMSGSIZE) {
                struct errmsg m = {};
                errmsg_set(&m, EMSGSIZE, "a reply of %zu bytes does not fit the channel", size);
                (void) send_error(fd, rep->id, EMSGSIZE, m.text);
                return errmsg_set(e, EMSGSIZE, "%s", m.text);
        }
        if (errno == EAGAIN)
                return errmsg_set(e, ENOBUFS, "the client does not read its replies: one was dropped");
        if (errno == EPIPE || errno == ECONNRESET)
                return errmsg_set(e, ECONNRESET, "the client closed the attestation channel");
        return errmsg_set(e, errno, "cannot send the attestation reply: %s", strerror(errno));
}

int attest_remote_serve(int fd, struct attester *a, struct errmsg *e) {
        uint8_t buf[ATTEST_REMOTE_MAX_REQUEST];
        struct attest_remote_request req = {};
        struct attest_remote_reply rep = {};
        _cleanup_free_ char *doc = NULL;
        struct errmsg why = {};
        uint32_t id = 0;
        ssize_t n;
        int r;

        /* MSG_TRUNC: the packet's whole size, even when it does not fit. */
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return -EAGAIN;
        if (n < 0 && (errno == ECONNRESET || errno == ENOTCONN))
                return errmsg_set(e, ECONNRESET, "the client closed the attestation channel");
        if (n < 0)
                return errmsg_set(e, errno, "cannot read from the attestation channel: %s", strerror(errno));
        if (n == 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP))
                        return errmsg_set(e, ECONNRESET, "the client closed the attestation channel");
        }
        if (n >= 8) {
                uint32_t v;
                memcpy(&v, buf + 4, 4);
                id = be32toh(v);
        }
        if ((size_t) n > sizeof(buf))
                r = errmsg_set(&why, EBADMSG, "request of %zd bytes exceeds %d bytes", n, ATTEST_REMOTE_MAX_REQUEST);
        else
                r = attest_remote_request_parse(buf, (size_t) n, &req, &why);
        if (r >= 0 && req.type == ATTEST_REMOTE_REQ_INFO) {
                rep = (struct attest_remote_reply){ .type = ATTEST_REMOTE_REPLY_INFO, .id = req.id };
                snprintf(rep.variant, sizeof(rep.variant), "%s", attester_variant(a));
                r = attester_ak_name(a, rep.ak_name, &why);
        } else if (r >= 0 && !streq(req.purpose, ATTEST_PURPOSE_ATLS))
                r = errmsg_set(&why, EPERM, "purpose \"%s\" is not issued over this channel", req.purpose);
        else if (r >= 0) {
                size_t size;
                r = attester_issue(a, req.purpose, req.nonce, req.user_data, &doc, &size, &why);
                rep = (struct attest_remote_reply){
                        .type = ATTEST_REMOTE_REPLY_EVIDENCE, .id = req.id, .doc = (const uint8_t *) doc, .doc_size = size
                };
        }
        if (r < 0) {
                /* The client learns why; so does the caller. */
                int s = send_error(fd, id, r, errmsg_str(&why));
                errmsg_set(e, -r, "%s", errmsg_str(&why));
                if (s == -EPIPE || s == -ECONNRESET)
                        return errmsg_replace(e, ECONNRESET, "the client closed the attestation channel");
                return 1;
        }
        r = send_reply(fd, &rep, e);
        return r < 0 ? r : 0;
}

struct attest_remote_server {
        pthread_t thread;
        int fd;
        struct attester *attester;
        void (*on_refusal)(const char *reason, void *userdata);
        void *userdata;
};

static void *server_thread(void *arg) {
        struct attest_remote_server *s = arg;

        /* The client's event loop waits for each answer: this thread does
         * little but should get the CPU at once when asked (privileged
         * processes only; elsewhere it keeps the process's priority). */
        (void) setpriority(PRIO_PROCESS, (id_t) gettid(), ATTEST_REMOTE_SERVER_NICE);
        for (;;) {
                struct pollfd p = { .fd = s->fd, .events = POLLIN };
                struct errmsg e = {};
                int r;

                if (poll(&p, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                r = attest_remote_serve(s->fd, s->attester, &e);
                if (r == 0 || r == -EAGAIN)
                        continue;
                if (r == -ECONNRESET)
                        break;
                if (s->on_refusal)
                        s->on_refusal(errmsg_str(&e), s->userdata);
                if (r < 0 && r != -ENOBUFS && r != -ENOMEM && r != -EMSGSIZE)
                        break; /* the socket failed: do not spin on it */
        }
        /* The client must not wait out its timeout for every request
         * from now on: it sees the channel closed at once. */
        (void) shutdown(s->fd, SHUT_RDWR);
        return NULL;
}

int attest_remote_server_start(int fd, struct attester *a, void (*on_refusal)(const char *reason, void *userdata),
                               void *userdata, struct attest_remote_server **ret, struct errmsg *e) {
        struct attest_remote_server *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        *s = (struct attest_remote_server){ .fd = fd, .attester = a, .on_refusal = on_refusal, .userdata = userdata };
        r = pthread_create(&s->thread, NULL, server_thread, s);
        if (r != 0) {
                free(s);
                return errmsg_set(e, r, "cannot start the attestation channel's thread: %s", strerror(r));
        }
        *ret = s;
        return 0;
}

struct attest_remote_server *attest_remote_server_stop(struct attest_remote_server *s) {
        if (!s)
                return NULL;
        /* Wakes the thread (its poll sees the hang-up) and tells the client. */
        (void) shutdown(s->fd, SHUT_RDWR);
        pthread_join(s->thread, NULL);
        close(s->fd);
        free(s);
        return NULL;
}
