/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The private attestation channel: a process without TPM access (the join
 * service, which faces the network and parses attackers' input) has its
 * evidence issued by the node's only TPM user (the bootstrapper), over a
 * connected AF_UNIX SOCK_SEQPACKET socket the bootstrapper made and handed
 * to it. One request at a time, each request and each reply one packet:
 *
 *   header (12 bytes, integers big-endian)
 *     u8 version (1), u8 type, u16 zero, u32 id, u32 length of the body
 *   request  INFO  (1)  empty body
 *            ISSUE (2)  nonce[32] user_data[32] purpose (1-32 of [a-z0-9-])
 *   reply    INFO     (0x81)  ak_name[34] variant (1-31 of [a-z0-9-])
 *            EVIDENCE (0x82)  the evidence document (1-EVIDENCE_MAX_SIZE bytes)
 *            ERROR    (0x83)  u32 errno (1-4095) message (0-400 printable ASCII)
 *
 * A reply carries its request's id; the client drops replies to requests
 * it gave up on (timeout). Both sides refuse a packet whose size is not
 * exactly header + length, an unknown version or type, a field out of
 * range. The server issues only for purposes it serves (ATTEST_PURPOSE_ATLS):
 * whoever holds the socket can get aTLS evidence and nothing else of the
 * TPM. See docs/PROTOCOL.md. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest.h"
#include "errmsg.h"
#include "evidence.h"

#define ATTEST_REMOTE_VERSION 1
#define ATTEST_REMOTE_HEADER_SIZE 12
#define ATTEST_REMOTE_PURPOSE_MAX 32
#define ATTEST_REMOTE_VARIANT_MAX 31
#define ATTEST_REMOTE_MESSAGE_MAX 400
#define ATTEST_REMOTE_MAX_REQUEST \
        (ATTEST_REMOTE_HEADER_SIZE + ATTEST_NONCE_SIZE + ATTEST_USER_DATA_SIZE + ATTEST_REMOTE_PURPOSE_MAX)
#define ATTEST_REMOTE_MAX_REPLY (ATTEST_REMOTE_HEADER_SIZE + EVIDENCE_MAX_SIZE)
/* How long a client waits for a reply: a quote takes milliseconds on
 * swtpm, up to a second on slow hardware TPMs. */
#define ATTEST_REMOTE_TIMEOUT_MS 5000

enum attest_remote_type {
        ATTEST_REMOTE_REQ_INFO = 0x01,
        ATTEST_REMOTE_REQ_ISSUE = 0x02,
        ATTEST_REMOTE_REPLY_INFO = 0x81,
        ATTEST_REMOTE_REPLY_EVIDENCE = 0x82,
        ATTEST_REMOTE_REPLY_ERROR = 0x83,
};

struct attest_remote_request {
        uint8_t type; /* ATTEST_REMOTE_REQ_* */
        uint32_t id;
        /* ISSUE only */
        char purpose[ATTEST_REMOTE_PURPOSE_MAX + 1];
        uint8_t nonce[ATTEST_NONCE_SIZE];
        uint8_t user_data[ATTEST_USER_DATA_SIZE];
};

struct attest_remote_reply {
        uint8_t type; /* ATTEST_REMOTE_REPLY_* */
        uint32_t id;
        /* INFO */
        uint8_t ak_name[ATTEST_AK_NAME_SIZE];
        char variant[ATTEST_REMOTE_VARIANT_MAX + 1];
        /* EVIDENCE: points into the parsed packet */
        const uint8_t *doc;
        size_t doc_size;
        /* ERROR */
        int error; /* positive errno */
        char message[ATTEST_REMOTE_MESSAGE_MAX + 1];
};

/* Pure parsers and builders (no I/O). Parsers refuse with -EBADMSG and a
 * reason naming the field; builders refuse fields out of range with
 * -EINVAL. Builders allocate the packet. */
int attest_remote_request_parse(const uint8_t *p, size_t n, struct attest_remote_request *ret, struct errmsg *e);
int attest_remote_request_build(const struct attest_remote_request *req, uint8_t **ret, size_t *ret_size);
int attest_remote_reply_parse(const uint8_t *p, size_t n, struct attest_remote_reply *ret, struct errmsg *e);
int attest_remote_reply_build(const struct attest_remote_reply *rep, uint8_t **ret, size_t *ret_size);

/* Client: an attester whose evidence the server at the other end of fd
 * issues. Asks the server for its variant and AK name first (a dead
 * channel fails here, within timeout_ms); refuses a server of another
 * variant than `variant` (unless NULL). Takes fd on success. Each issue
 * waits timeout_ms (0: ATTEST_REMOTE_TIMEOUT_MS) at most, then fails with
 * -ETIMEDOUT; a closed channel fails with -ECONNRESET. Thread-safe. */
int attester_remote_new(int fd, const char *variant, unsigned timeout_ms, struct attester **ret,
                        struct errmsg *e);

/* Server: the socket pair, fds[0] for the server (non-blocking, send
 * buffer large enough for the largest reply), fds[1] for the client. Both
 * close-on-exec. */
int attest_remote_socketpair(int fds[2], struct errmsg *e);

/* Answer one request waiting on fd with attester a (from an event loop
 * when fd is readable, or attest_remote_server below). Returns 0 when
 * evidence or info was sent; 1 when the request was refused with an error
 * reply (e says why); -EAGAIN when nothing was waiting; -ECONNRESET when
 * the client closed the channel; another negative errno when the socket
 * failed. Never issues for a malformed request. */
int attest_remote_serve(int fd, struct attester *a, struct errmsg *e);

/* A thread answering fd's requests until the client closes it or
 * attest_remote_server_stop: for a process whose event loop blocks on
 * other work (the bootstrapper's mesh refresh waits for this node's own
 * join service, which would wait for its evidence). `a` must be usable
 * from that thread (the local attester is). on_refusal, if not NULL, is
 * called from the thread for every refused request and socket failure.
 * Takes fd when it succeeds (the caller keeps it on failure). When the
 * thread stops on a socket failure, it shuts the socket down, so that the
 * client fails at once instead of at its timeout. */
struct attest_remote_server;
int attest_remote_server_start(int fd, struct attester *a, void (*on_refusal)(const char *reason, void *userdata),
                               void *userdata, struct attest_remote_server **ret, struct errmsg *e);
/* Stops the thread, closes fd. Accepts NULL; returns NULL. */
struct attest_remote_server *attest_remote_server_stop(struct attest_remote_server *s);
