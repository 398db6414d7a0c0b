/* SPDX-License-Identifier: Apache-2.0 */
#include "keywait.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atls-http.h"
#include "attest.h"
#include "disk-recover.h"
#include "fileio.h"
#include "http-server.h"
#include "json-util.h"
#include "log.h"
#include "messages.h"
#include "openssl-util.h"
#include "peer-verifier.h"
#include "secret.h"
#include "time-util.h"
#include "tpm.h"

/* What the rejoin worker sends when a join service answered: the index of
 * that join service and the disk key, in one write (atomic on a pipe). */
#define WORKER_MSG_SIZE (1 + KEY_SIZE)

struct keywait {
        const struct keywait_config *c;
        struct event_base *base;
        struct attester *attester;
        struct verifier *peer_verifier;
        struct atls_config server_atls;
        pid_t worker;
        int worker_fd;
        struct event *worker_ev;
        uint8_t msg[WORKER_MSG_SIZE];
        size_t msg_len;
        const char *source;
        bool done;
};

static void worker_stop(struct keywait *w) {
        if (w->worker_ev) {
                event_free(w->worker_ev);
                w->worker_ev = NULL;
        }
        if (w->worker_fd >= 0) {
                close(w->worker_fd);
                w->worker_fd = -1;
        }
        if (w->worker > 0) {
                kill(w->worker, SIGKILL);
                (void) waitpid(w->worker, NULL, 0);
                w->worker = 0;
        }
        secret_wipe(w->msg, sizeof(w->msg));
        w->msg_len = 0;
}

static void handle_attestation(struct evhttp_request *req, void *arg) {
        struct keywait *w = arg;
        struct recover_status st = {};
        _cleanup_free_ char *out = NULL;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
                http_reply_error(req, 405, "use GET");
                return;
        }
        snprintf(st.service, sizeof(st.service), "recover");
        snprintf(st.variant, sizeof(st.variant), "%s", attester_variant(w->attester));
        snprintf(st.state, sizeof(st.state), "%s", w->done ? "recovered" : "awaiting-recovery");
        snprintf(st.disk_uuid, sizeof(st.disk_uuid), "%s", w->c->disk_uuid);
        if (recover_status_serialize(&st, &out) < 0) {
                http_reply_error(req, 500, "out of memory");
                return;
        }
        http_reply_raw_json(req, 200, out, strlen(out));
}

static void finish(struct keywait *w, const char *source) {
        struct timeval tv = { .tv_usec = 200000 }; /* let the reply go out */

        w->done = true;
        w->source = source;
        /* A rejoin attempt in flight is of no use any more. */
        worker_stop(w);
        event_base_loopexit(w->base, &tv);
}

static void handle_recover(struct evhttp_request *req, void *arg) {
        struct keywait *w = arg;
        struct recover_request m = {};
        struct recover_response resp = {};
        _cleanup_(secret32_wipe) uint8_t key[KEY_SIZE] = {};
        _cleanup_free_ char *out = NULL;
        struct errmsg e = {};
        char *body = NULL;
        size_t len;
        int r;

        if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
                http_reply_error(req, 405, "use POST");
                return;
        }
        if (w->done) {
                http_reply_error(req, 409, "disk %s is open already", w->c->disk_uuid);
                return;
        }
        r = http_request_body(req, 64 * 1024, &body, &len);
        if (r < 0) {
                http_reply_error(req, r == -EFBIG ? 413 : 500, "cannot read the request: %s", strerror(-r));
                return;
        }
        r = recover_request_parse(body, len, &m, &e);
        secret_free(body, len);
        if (r < 0) {
                log_warning("Refused a recover request: %s", errmsg_str(&e));
                http_reply_error(req, 400, "%s", errmsg_str(&e));
                return;
        }
        r = key_disk(m.master_secret, m.master_salt, w->c->disk_uuid, key);
        recover_request_done(&m);
        if (r < 0) {
                http_reply_error(req, 500, "cannot derive the disk key");
                return;
        }
        r = w->c->try_key(w->c->userdata, key, &e);
        if (r == -EPERM) {
                log_warning("Recovery: the pushed secrets do not open disk %s.", w->c->disk_uuid);
                http_reply_error(req, 403, "the key derived from these secrets does not open disk %s "
                                           "(secrets of another cluster?)", w->c->disk_uuid);
                return;
        }
        if (r < 0) {
                log_error("Recovery: %s", errmsg_str(&e));
                http_reply_error(req, 500, "%s", errmsg_str(&e));
                return;
        }
        snprintf(resp.disk_uuid, sizeof(resp.disk_uuid), "%s", w->c->disk_uuid);
        if (recover_response_serialize(&resp, &out) < 0) {
                http_reply_error(req, 500, "out of memory");
        } else
                http_reply_raw_json(req, 200, out, strlen(out));
        log_info("Disk %s recovered by the owner.", w->c->disk_uuid);
        finish(w, "recover");
}

static void handle_unknown(struct evhttp_request *req, void *arg) {
        http_reply_error(req, 404, "no such endpoint: %s", evhttp_request_get_uri(req));
}

/* --- the rejoin worker -------------------------------------------------------
 * Rejoin requests block (one aTLS connection each, up to rejoin_timeout_ms),
 * so they run in a child process: a slow or unreachable join service never
 * delays the recovery server, and a recovery that wins ends the worker at
 * once (SIGKILL) instead of waiting for its request to time out. The child
 * has its own TPM context and attester (the TPM's resource manager
 * serialises the two processes' commands); it only ever sends a disk key
 * back, and the parent alone tries keys on the disk. */

static int try_rejoin(const struct keywait_config *c, struct atls_config *atls, const char *endpoint,
                      uint8_t ret_key[KEY_SIZE], struct errmsg *e) {
        _cleanup_free_ char *url = NULL, *body = NULL;
        struct rejoin_request req = {};
        struct rejoin_response resp = {};
        struct http_response http = {};
        int r;

        if (asprintf(&url, "https://%s/v1/rejoin", endpoint) < 0)
                return -ENOMEM;
        snprintf(req.disk_uuid, sizeof(req.disk_uuid), "%s", c->disk_uuid);
        r = rejoin_request_serialize(&req, &body);
        if (r < 0)
                return r;
        r = atls_http_request(atls, url, "POST", body, strlen(body),
                              c->rejoin_timeout_ms ? c->rejoin_timeout_ms : 10000, &http, e);
        if (r < 0)
                goto out;
        if (http.status != 200) {
                r = errmsg_set(e, EPERM, "join service %s answered %ld: %.200s", endpoint, http.status,
                               http.body ? http.body : "");
                goto out;
        }
        r = rejoin_response_parse(http.body, http.body_size, &resp, e);
        if (r >= 0)
                memcpy(ret_key, resp.disk_key, KEY_SIZE);
out:
        rejoin_response_done(&resp);
        if (http.body)
                secret_wipe(http.body, http.body_size);
        http_response_done(&http);
        return r;
}

static _Noreturn void worker_main(struct keywait *w, int fd, pid_t parent) {
        const struct keywait_config *c = w->c;
        struct tpm_ctx *tpm = NULL;
        struct attester *attester = NULL;
        struct atls_config atls;
        struct errmsg e = {};
        unsigned pause_s = c->rejoin_interval_s ? c->rejoin_interval_s : 5;
        int r;

        /* Never outlive the disk-mapper. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
        r = tpm_open(c->tcti, &tpm, &e);
        if (r >= 0)
                r = attester_new(c->variant, tpm, c->ak_handle, &attester, &e);
        if (r < 0) {
                log_error_errno(r, "Rejoin worker: %s", errmsg_str(&e));
                _exit(1);
        }
        atls = (struct atls_config){ .attester = attester, .verifier = w->peer_verifier };
        for (;;) {
                for (size_t i = 0; i < c->n_join; i++) {
                        uint8_t msg[WORKER_MSG_SIZE];

                        e = (struct errmsg){};
                        r = try_rejoin(c, &atls, c->join[i], msg + 1, &e);
                        if (r < 0) {
                                log_warning("Rejoin through %s failed: %s", c->join[i], errmsg_str(&e));
                                continue;
                        }
                        msg[0] = (uint8_t) i;
                        r = write_all(fd, msg, sizeof(msg));
                        secret_wipe(msg, sizeof(msg));
                        if (r < 0)
                                _exit(0); /* the parent is gone or done */
                }
                sleep_ms(pause_s * 1000);
        }
}

static void on_worker(evutil_socket_t fd, short what, void *arg) {
        struct keywait *w = arg;
        struct errmsg e = {};
        const char *via;
        ssize_t n;
        int r;

        n = read(fd, w->msg + w->msg_len, sizeof(w->msg) - w->msg_len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return;
        if (n <= 0) {
                log_error("The rejoin worker exited; only recovery can unlock disk %s now.", w->c->disk_uuid);
                worker_stop(w);
                if (!w->c->listen)
                        event_base_loopexit(w->base, NULL);
                return;
        }
        w->msg_len += (size_t) n;
        if (w->msg_len < sizeof(w->msg))
                return;
        w->msg_len = 0;
        via = w->msg[0] < w->c->n_join ? w->c->join[w->msg[0]] : "?";
        r = w->c->try_key(w->c->userdata, w->msg + 1, &e);
        secret_wipe(w->msg, sizeof(w->msg));
        if (r < 0) {
                log_warning("The disk key from %s: %s", via, errmsg_str(&e));
                return;
        }
        log_info("Disk %s unlocked by rejoin through %s.", w->c->disk_uuid, via);
        finish(w, "rejoin");
}

static int worker_start(struct keywait *w, struct errmsg *e) {
        pid_t parent = getpid();
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return errmsg_set(e, errno, "pipe: %s", strerror(errno));
        fflush(stdout);
        fflush(stderr);
        w->worker = fork();
        if (w->worker < 0) {
                int r = -errno;
                close(p[0]);
                close(p[1]);
                w->worker = 0;
                return errmsg_set(e, r, "fork: %s", strerror(-r));
        }
        if (w->worker == 0) {
                close(p[0]);
                worker_main(w, p[1], parent);
        }
        close(p[1]);
        w->worker_fd = p[0];
        return 0;
}

static void on_atls_failure(const char *what, const char *reason, void *userdata) {
        log_warning("aTLS handshake failed while %s: %s", what, reason);
}

int keywait_run(const struct keywait_config *c, const char **ret_source, struct errmsg *e) {
        struct keywait w = { .c = c, .worker_fd = -1 };
        struct http_server *http = NULL;
        SSL_CTX *ctx = NULL;
        int r;

        if (!c->listen && c->n_join == 0)
                return errmsg_set(e, EINVAL, "neither a recovery server nor a join service to get the key from");
        if (c->n_join > 0) {
                if (!c->platform_ca)
                        return errmsg_set(e, EINVAL, "rejoin needs the platform CA (--platform-ca)");
                r = peer_verifier_new(c->tpm, c->variant, c->platform_ca, PEER_PCRS_DEFAULT, &w.peer_verifier, e);
                if (r < 0)
                        return r;
                /* Before the event base and the server exist: the child
                 * inherits neither. */
                r = worker_start(&w, e);
                if (r < 0)
                        goto out;
        }
        r = attester_new(c->variant, c->tpm, c->ak_handle, &w.attester, e);
        if (r < 0)
                goto out;
        w.base = event_base_new();
        if (!w.base) {
                r = -ENOMEM;
                goto out;
        }
        if (c->listen) {
                w.server_atls = (struct atls_config){ .attester = w.attester, .on_failure = on_atls_failure };
                r = atls_ctx_new(true, &w.server_atls, &ctx, e);
                if (r < 0)
                        goto out;
                r = http_server_new(w.base, ctx, c->listen, c->port, &http, e);
                if (r < 0)
                        goto out;
                if ((r = http_server_route(http, "/v1/attestation", handle_attestation, &w)) < 0 ||
                    (r = http_server_route(http, "/v1/recover", handle_recover, &w)) < 0)
                        goto out;
                http_server_default(http, handle_unknown, &w);
                log_info("Disk %s is initialized: waiting for its key (recovery server on %s:%u%s).", c->disk_uuid,
                         c->listen, http_server_port(http), c->n_join ? ", rejoin" : "");
                if (c->ready)
                        c->ready(c->userdata, http_server_port(http));
        }
        if (w.worker > 0) {
                w.worker_ev = event_new(w.base, w.worker_fd, EV_READ | EV_PERSIST, on_worker, &w);
                if (!w.worker_ev || event_add(w.worker_ev, NULL) < 0) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        event_base_dispatch(w.base);
        if (!w.done) {
                r = errmsg_set(e, EINTR, "stopped before the disk was unlocked");
                goto out;
        }
        *ret_source = w.source;
        r = 0;
out:
        worker_stop(&w);
        http_server_free(http);
        SSL_CTX_free(ctx);
        if (w.base)
                event_base_free(w.base);
        verifier_free(w.peer_verifier);
        attester_free(w.attester);
        return r;
}
