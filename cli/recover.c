/* SPDX-License-Identifier: Apache-2.0 */
/* arca recover --config FILE --node HOST[:PORT]...: verify each node that
 * waits with an initialized state disk and push the master secret to it;
 * the node derives its own disk key (docs/DISK.md, Recovery). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "atls-http.h"
#include "cli.h"
#include "config.h"
#include "disk-recover.h"
#include "json-util.h"
#include "log.h"
#include "owner.h"
#include "secret.h"

#define MAX_NODES 64

static void help(void) {
        printf("Usage: arca recover --config FILE --node HOST[:PORT]...\n\n"
               "Recover nodes whose state disk is initialized but that cannot rejoin (e.g.\n"
               "after the whole cluster was down). For each node: verify its attestation\n"
               "against the configured policy, check it waits for recovery, and send it the\n"
               "master secret and salt from the owner secrets file; the node derives its own\n"
               "disk key and opens the disk. Port %d unless given.\n",
               RECOVERY_PORT);
}

static int status_of(struct atls_config *atls, const char *node, struct recover_status *ret, struct errmsg *e) {
        _cleanup_free_ char *url = NULL;
        struct http_response http = {};
        int r;

        if (cli_node_url(node, RECOVERY_PORT, "/v1/attestation", &url) < 0)
                return errmsg_set(e, EINVAL, "invalid node \"%s\": expected HOST, HOST:PORT or [IPv6]:PORT", node);
        r = atls_http_request(atls, url, "GET", NULL, 0, 60000, &http, e);
        if (r >= 0 && http.status != 200)
                r = errmsg_set(e, EPROTO, "HTTP %ld", http.status);
        if (r >= 0)
                r = recover_status_parse(http.body, http.body_size, ret, e);
        http_response_done(&http);
        return r;
}

static int recover_one(struct atls_config *atls, const char *node, const struct owner_secrets *s, struct errmsg *e) {
        _cleanup_free_ char *url = NULL, *body = NULL;
        struct recover_request req = {};
        struct recover_response resp = {};
        struct recover_status st;
        struct http_response http = {};
        int r;

        r = status_of(atls, node, &st, e);
        if (r < 0)
                return r;
        log_info("Node %s verified (%s); disk %s, %s.", node, st.variant, st.disk_uuid, st.state);
        if (strcmp(st.state, "awaiting-recovery") != 0)
                return errmsg_set(e, EALREADY, "node %s does not wait for recovery (state \"%s\")", node, st.state);
        memcpy(req.master_secret, s->master_secret, KEY_SIZE);
        memcpy(req.master_salt, s->master_salt, KEY_SIZE);
        r = recover_request_serialize(&req, &body);
        recover_request_done(&req);
        if (r < 0)
                return r;
        if (cli_node_url(node, RECOVERY_PORT, "/v1/recover", &url) < 0)
                return -EINVAL;
        /* A fresh handshake, verified again, carries the secret. */
        r = atls_http_request(atls, url, "POST", body, strlen(body), 120000, &http, e);
        secret_wipe(body, strlen(body));
        if (r < 0)
                goto out;
        if (http.status != 200) {
                _cleanup_(json_object_putp) json_object *err = NULL;
                const char *msg = http.body;
                if (json_parse(http.body, http.body_size, &err, NULL) >= 0)
                        json_get_string(err, "error", &msg, NULL);
                r = errmsg_set(e, http.status == 403 ? EPERM : EPROTO, "node refused (HTTP %ld): %s", http.status, msg);
                goto out;
        }
        r = recover_response_parse(http.body, http.body_size, &resp, e);
        if (r >= 0 && strcmp(resp.disk_uuid, st.disk_uuid) != 0)
                r = errmsg_set(e, EPROTO, "node answered for disk %s, expected %s", resp.disk_uuid, st.disk_uuid);
        if (r >= 0)
                printf("Node %s recovered: disk %s is open.\n", node, resp.disk_uuid);
out:
        http_response_done(&http);
        return r;
}

int verb_recover(int argc, char **argv) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "node", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(verifier_freep) struct verifier *verifier = NULL;
        const char *config = NULL, *nodes[MAX_NODES];
        struct arca_config cfg = {};
        struct owner_secrets secrets = {};
        struct atls_config atls = {};
        struct errmsg e = {};
        size_t n_nodes = 0, failed = 0;
        int c, r, ret = 1;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:n:h", opts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'n':
                        if (n_nodes >= MAX_NODES) {
                                log_error("At most %d --node.", MAX_NODES);
                                return 2;
                        }
                        nodes[n_nodes++] = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!config || n_nodes == 0) {
                log_error("arca recover needs --config and at least one --node (see --help).");
                return 2;
        }
        r = config_load(config, &cfg, &e);
        if (r < 0) {
                log_error("Invalid configuration: %s", errmsg_str(&e));
                return 2;
        }
        r = owner_secrets_load(cfg.owner_secrets, &secrets, &e);
        if (r < 0) {
                log_error("%s", errmsg_str(&e));
                goto out;
        }
        r = config_make_verifier(&cfg, &verifier, &e);
        if (r < 0) {
                log_error("Cannot set up verification: %s", errmsg_str(&e));
                goto out;
        }
        atls.verifier = verifier;
        for (size_t i = 0; i < n_nodes; i++) {
                struct errmsg ne = {};
                r = recover_one(&atls, nodes[i], &secrets, &ne);
                if (r < 0) {
                        log_error("Recovery of %s failed: %s", nodes[i], errmsg_str(&ne));
                        failed++;
                }
        }
        ret = failed ? 1 : 0;
out:
        secret_wipe(&secrets, sizeof(secrets));
        config_done(&cfg);
        return ret;
}
