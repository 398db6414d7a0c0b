/* SPDX-License-Identifier: Apache-2.0 */
/* arca init --config FILE: verify the first node over aTLS and initialize
 * the cluster on it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "atls-http.h"
#include "cli.h"
#include "config.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "messages.h"
#include "owner.h"
#include "secret.h"

static void help(void) {
        printf("Usage: arca init --config FILE [--node HOST[:PORT]]\n\n"
               "Verify the first node's attestation, send it the cluster's secrets and\n"
               "settings, and write the admin credential and the cluster state file named\n"
               "in [owner] of the configuration. The node is [nodes] init unless --node is\n"
               "given. Refuses when the cluster state file exists (already initialized).\n");
}

static int build_request(const struct arca_config *cfg, const struct owner_secrets *s, struct init_request *m,
                         struct errmsg *e) {
        _cleanup_free_ char *sans = NULL;
        char *save = NULL, *tok;
        size_t len;
        int r;

        memcpy(m->master_secret, s->master_secret, KEY_SIZE);
        memcpy(m->master_salt, s->master_salt, KEY_SIZE);
        memcpy(m->measurement_salt, s->measurement_salt, KEY_SIZE);
        memcpy(m->init_secret, s->init_secret, KEY_SIZE);
        snprintf(m->cluster_name, sizeof(m->cluster_name), "%s", cfg->cluster_name);
        snprintf(m->driver, sizeof(m->driver), "%s", cfg->driver);
        snprintf(m->mesh_cidr, sizeof(m->mesh_cidr), "%s", cfg->mesh_cidr);
        snprintf(m->k8s.version, sizeof(m->k8s.version), "%s", cfg->k8s_version);
        snprintf(m->k8s.pod_cidr, sizeof(m->k8s.pod_cidr), "%s", cfg->pod_cidr);
        snprintf(m->k8s.service_cidr, sizeof(m->k8s.service_cidr), "%s", cfg->service_cidr);
        sans = strdup(cfg->api_sans);
        if (!sans)
                return -ENOMEM;
        for (tok = strtok_r(sans, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
                if (m->k8s.n_api_sans >= MSG_MAX_SANS || strlen(tok) >= sizeof(m->k8s.api_sans[0]) ||
                    (!valid_address(tok) && !valid_node_name(tok)))
                        return errmsg_set(e, EINVAL, "[kubernetes] api-sans: \"%s\" is not an address or host name", tok);
                strcpy(m->k8s.api_sans[m->k8s.n_api_sans++], tok);
        }
        r = read_full_file(cfg->policy, MSG_MAX_POLICY, &m->policy, &len);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the policy %s: %s", cfg->policy, strerror(-r));
        m->policy_size = len;
        return 0;
}

static int write_state(const char *path, const char *node, const struct init_response *resp) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *text;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_hex(o, "clusterId", resp->cluster_id, KEY_SIZE)) < 0 ||
            (r = json_add_string(o, "initNode", node)) < 0 || (r = json_add_string(o, "nodeName", resp->node_name)) < 0 ||
            (r = json_add_string(o, "meshAddress", resp->mesh_address)) < 0 ||
            (r = json_add_string(o, "wireguardPublicKey", resp->wg_public_key)) < 0)
                return r;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        return write_file_atomic(path, text, strlen(text), 0644);
}

int verb_init(int argc, char **argv) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "node", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(verifier_freep) struct verifier *verifier = NULL;
        _cleanup_free_ char *url = NULL, *body = NULL;
        const char *config = NULL, *node = NULL;
        struct arca_config cfg = {};
        struct owner_secrets secrets = {};
        struct init_request req = {};
        struct init_response resp = {};
        struct http_response http = {};
        struct atls_config atls = {};
        struct errmsg e = {};
        char cluster_id[65];
        int c, r, ret = 1;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:n:h", opts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'n':
                        node = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!config) {
                log_error("arca init needs --config (see --help).");
                return 2;
        }
        r = config_load(config, &cfg, &e);
        if (r < 0) {
                log_error("Invalid configuration: %s", errmsg_str(&e));
                return 2;
        }
        if (!node)
                node = cfg.init_endpoint;
        if (!node) {
                log_error("No node to initialize: set [nodes] init in %s or pass --node.", config);
                goto out;
        }
        if (access(cfg.owner_state, F_OK) == 0) {
                log_error("The cluster is initialized already: %s exists. Remove it only if the init really failed.",
                          cfg.owner_state);
                goto out;
        }
        r = owner_secrets_load(cfg.owner_secrets, &secrets, &e);
        if (r < 0) {
                log_error("%s (create it with 'arca config generate').", errmsg_str(&e));
                goto out;
        }
        r = cli_node_url(node, 9000, "/v1/init", &url);
        if (r < 0) {
                log_error("Invalid node \"%s\": expected HOST, HOST:PORT or [IPv6]:PORT.", node);
                goto out;
        }
        r = config_make_verifier(&cfg, &verifier, &e);
        if (r < 0) {
                log_error("Cannot set up verification: %s", errmsg_str(&e));
                goto out;
        }
        r = build_request(&cfg, &secrets, &req, &e);
        if (r < 0) {
                log_error("Cannot build the init request: %s", errmsg_str(&e));
                goto out;
        }
        r = init_request_serialize(&req, &body);
        if (r < 0) {
                log_error_errno(r, "Cannot encode the init request: %m");
                goto out;
        }

        log_info("Verifying node %s and initializing cluster \"%s\" (driver %s)...", node, cfg.cluster_name, cfg.driver);
        atls.verifier = verifier;
        r = atls_http_request(&atls, url, "POST", body, strlen(body), 600000, &http, &e);
        if (r < 0) {
                log_error("Init of %s failed: %s", node, errmsg_str(&e));
                log_error("Nothing is lost: the owner secrets in %s are unchanged; run 'arca init' again.",
                          cfg.owner_secrets);
                goto out;
        }
        if (http.status != 200) {
                _cleanup_(json_object_putp) json_object *err = NULL;
                const char *msg = http.body;
                if (json_parse(http.body, http.body_size, &err, NULL) >= 0)
                        json_get_string(err, "error", &msg, NULL);
                log_error("Node %s refused init (HTTP %ld): %s", node, http.status, msg);
                goto out;
        }
        r = init_response_parse(http.body, http.body_size, &resp, &e);
        if (r < 0) {
                log_error("Node %s sent an invalid init response: %s", node, errmsg_str(&e));
                goto out;
        }
        r = write_file_atomic(cfg.owner_kubeconfig, resp.kubeconfig, resp.kubeconfig_size, 0600);
        if (r < 0) {
                log_error_errno(r, "Cannot write %s: %m", cfg.owner_kubeconfig);
                goto out;
        }
        r = write_state(cfg.owner_state, node, &resp);
        if (r < 0) {
                log_error_errno(r, "Cannot write %s: %m", cfg.owner_state);
                goto out;
        }
        hex_encode_buf(resp.cluster_id, KEY_SIZE, cluster_id);
        printf("Cluster \"%s\" initialized.\n  cluster ID:  %s\n  first node:  %s (mesh %s)\n  admin:       %s\n  state:       %s\n",
               cfg.cluster_name, cluster_id, resp.node_name, resp.mesh_address, cfg.owner_kubeconfig, cfg.owner_state);
        ret = 0;
out:
        if (body)
                secret_wipe(body, strlen(body));
        secret_wipe(&secrets, sizeof(secrets));
        init_request_done(&req);
        init_response_done(&resp);
        http_response_done(&http);
        config_done(&cfg);
        return ret;
}
