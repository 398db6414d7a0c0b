/* SPDX-License-Identifier: Apache-2.0 */
#include "keywait.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "atls-curl.h"
#include "attest.h"
#include "disk-recover.h"
#include "http-server.h"
#include "json-util.h"
#include "log.h"
#include "messages.h"
#include "openssl-util.h"
#include "platform.h"
#include "secret.h"
#include "tpm.h"

/* PCRs a join service must share with this node for rejoin (PCR 15, the
 * node lock, differs by design). */
#define REJOIN_PEER_PCRS 0x7fffu

struct keywait {
        const struct keywait_config *c;
        struct event_base *base;
        struct attester *attester;
        struct verifier *peer_verifier;
        struct atls_config server_atls;
        struct atls_config client_atls;
        struct event *rejoin_timer;
        const char *source;
        bool done;
        struct errmsg last;
};

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

static int try_rejoin(struct keywait *w, const char *endpoint, struct errmsg *e) {
        _cleanup_free_ char *url = NULL, *body = NULL;
        struct rejoin_request req = {};
        struct rejoin_response resp = {};
        struct http_response http = {};
        int r;

        if (asprintf(&url, "https://%s/v1/rejoin", endpoint) < 0)
                return -ENOMEM;
        snprintf(req.disk_uuid, sizeof(req.disk_uuid), "%s", w->c->disk_uuid);
        r = rejoin_request_serialize(&req, &body);
        if (r < 0)
                return r;
        r = atls_http_request(&w->client_atls, url, "POST", body, strlen(body), 10000, &http, e);
        if (r < 0)
                goto out;
        if (http.status != 200) {
                r = errmsg_set(e, EPERM, "join service %s answered %ld: %.200s", endpoint, http.status,
                               http.body ? http.body : "");
                goto out;
        }
        r = rejoin_response_parse(http.body, http.body_size, &resp, e);
        if (r < 0)
                goto out;
        r = w->c->try_key(w->c->userdata, resp.disk_key, e);
        if (r == -EPERM)
                errmsg_prefix(e, "the disk key from %s", endpoint);
out:
        rejoin_response_done(&resp);
        if (http.body)
                secret_wipe(http.body, http.body_size);
        http_response_done(&http);
        return r;
}

static void on_rejoin(evutil_socket_t fd, short what, void *arg) {
        struct keywait *w = arg;
        struct timeval tv = { .tv_sec = w->c->rejoin_interval_s ? w->c->rejoin_interval_s : 5 };

        for (size_t i = 0; i < w->c->n_join && !w->done; i++) {
                struct errmsg e = {};
                int r = try_rejoin(w, w->c->join[i], &e);
                if (r >= 0) {
                        log_info("Disk %s unlocked by rejoin through %s.", w->c->disk_uuid, w->c->join[i]);
                        finish(w, "rejoin");
                        return;
                }
                log_warning("Rejoin through %s failed: %s", w->c->join[i], errmsg_str(&e));
        }
        evtimer_add(w->rejoin_timer, &tv);
}

static int make_peer_verifier(struct keywait *w, struct errmsg *e) {
        _cleanup_(X509_STORE_freep) X509_STORE *roots = NULL;
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct policy p = {};
        int r;

        r = tpm_pcr_read(w->c->tpm, pcrs, e);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                if (REJOIN_PEER_PCRS & (1u << i)) {
                        p.pcr[i].set = true;
                        memcpy(p.pcr[i].expected, pcrs[i], TPM_DIGEST_SIZE);
                }
        r = platform_roots_load(w->c->platform_ca, &roots, e);
        if (r < 0)
                return r;
        return verifier_new(w->c->variant, &p, roots, &w->peer_verifier, e);
}

static void on_atls_failure(const char *what, const char *reason, void *userdata) {
        log_warning("aTLS handshake failed while %s: %s", what, reason);
}

int keywait_run(const struct keywait_config *c, const char **ret_source, struct errmsg *e) {
        struct keywait w = { .c = c };
        struct http_server *http = NULL;
        SSL_CTX *ctx = NULL;
        int r;

        if (!c->listen && c->n_join == 0)
                return errmsg_set(e, EINVAL, "neither a recovery server nor a join service to get the key from");
        r = attester_new(c->variant, c->tpm, c->ak_handle, &w.attester, e);
        if (r < 0)
                return r;
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
                printf("WAITING recover-port=%u disk=%s\n", http_server_port(http), c->disk_uuid);
                fflush(stdout);
        }
        if (c->n_join > 0) {
                struct timeval now = { 0 };
                if (!c->platform_ca) {
                        r = errmsg_set(e, EINVAL, "rejoin needs the platform CA (--platform-ca)");
                        goto out;
                }
                r = make_peer_verifier(&w, e);
                if (r < 0)
                        goto out;
                w.client_atls = (struct atls_config){ .attester = w.attester, .verifier = w.peer_verifier };
                w.rejoin_timer = evtimer_new(w.base, on_rejoin, &w);
                if (!w.rejoin_timer || evtimer_add(w.rejoin_timer, &now) < 0) {
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
        if (w.rejoin_timer)
                event_free(w.rejoin_timer);
        http_server_free(http);
        SSL_CTX_free(ctx);
        if (w.base)
                event_base_free(w.base);
        verifier_free(w.peer_verifier);
        attester_free(w.attester);
        return r;
}
