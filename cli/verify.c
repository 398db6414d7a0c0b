/* SPDX-License-Identifier: Apache-2.0 */
/* arca verify --node HOST[:PORT] --config FILE [-o json] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "atls-http.h"
#include "attest.h"
#include "cli.h"
#include "config.h"
#include "encoding.h"
#include "json-util.h"
#include "log.h"

#define DEFAULT_PORT 9000

static void help(void) {
        printf("Usage: arca verify --node HOST[:PORT] --config FILE [-o text|json]\n\n"
               "Connect to a node over attested TLS, verify its evidence against the\n"
               "configuration's measurement policy and platform CA, and print every PCR\n"
               "with its verdict. Exit status 0 only when the node is verified.\n\n"
               "  --node HOST[:PORT]   node address (port defaults to %d, the init server)\n"
               "  --config FILE        cluster configuration (arca.conf)\n"
               "  -o, --output FORMAT  text (default) or json\n",
               DEFAULT_PORT);
}

static void print_text(const char *node, const struct verify_report *rep, const struct policy *policy, bool ok,
                       const char *reason) {
        printf("Node %s", node);
        if (rep->variant[0])
                printf(" (variant %s)", rep->variant);
        printf("\n");
        if (rep->have_pcrs) {
                printf("PCR  VERDICT        VALUE\n");
                for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                        char hex[65];
                        hex_encode_buf(rep->pcrs[i], 32, hex);
                        printf("%3u  %-13s  %s\n", i, pcr_verdict_to_string(rep->policy.verdict[i]), hex);
                        if (rep->policy.verdict[i] == PCR_MISMATCH_ENFORCED ||
                            rep->policy.verdict[i] == PCR_MISMATCH_WARN) {
                                hex_encode_buf(policy->pcr[i].expected, 32, hex);
                                printf("     expected       %s\n", hex);
                        }
                }
                if (rep->policy.n_warn_mismatch)
                        printf("warning: %u warn-only PCR(s) differ from the policy\n", rep->policy.n_warn_mismatch);
        }
        if (ok)
                printf("verified\n");
        else
                printf("NOT verified: %s\n", reason);
}

static int print_json(const char *node, const struct verify_report *rep, const struct policy *policy, bool ok,
                      const char *reason) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pcrs;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "node", node)) < 0 || (r = json_add_bool(o, "verified", ok)) < 0 ||
            (r = json_add_string(o, "variant", rep->variant)) < 0)
                return r;
        if (!ok && ((r = json_add_string(o, "failedCheck", verify_check_to_string(rep->failed))) < 0 ||
                    (r = json_add_string(o, "reason", reason)) < 0))
                return r;
        if (rep->have_pcrs) {
                pcrs = json_object_new_array();
                r = json_add(o, "pcrs", pcrs);
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < POLICY_PCR_COUNT; i++) {
                        json_object *p = json_object_new_object();
                        if (!p || json_object_array_add(pcrs, p) < 0)
                                return -ENOMEM;
                        if ((r = json_add_int(p, "index", i)) < 0 || (r = json_add_hex(p, "value", rep->pcrs[i], 32)) < 0 ||
                            (r = json_add_string(p, "verdict", pcr_verdict_to_string(rep->policy.verdict[i]))) < 0)
                                return r;
                        if (policy->pcr[i].set &&
                            ((r = json_add_hex(p, "expected", policy->pcr[i].expected, 32)) < 0 ||
                             (r = json_add_bool(p, "warnOnly", policy->pcr[i].warn_only)) < 0))
                                return r;
                }
        }
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        return 0;
}

int verb_verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "node", required_argument, NULL, 'n' },
                { "config", required_argument, NULL, 'c' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(verifier_freep) struct verifier *verifier = NULL;
        _cleanup_free_ char *url = NULL;
        const char *node = NULL, *config = NULL, *output = "text";
        struct arca_config cfg = {};
        struct atls_config atls = {};
        struct http_response resp = {};
        struct errmsg e = {};
        bool ok;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "n:c:o:h", opts, NULL)) >= 0)
                switch (c) {
                case 'n':
                        node = optarg;
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!node || !config) {
                log_error("arca verify needs --node and --config (see --help).");
                return 2;
        }
        if (!streq(output, "text") && !streq(output, "json")) {
                log_error("Unknown output format \"%s\": use text or json.", output);
                return 2;
        }
        if (cli_node_url(node, DEFAULT_PORT, "/v1/attestation", &url) < 0) {
                log_error("Invalid --node \"%s\": expected HOST, HOST:PORT or [IPv6]:PORT.", node);
                return 2;
        }
        r = config_load(config, &cfg, &e);
        if (r < 0) {
                log_error("Invalid configuration: %s", errmsg_str(&e));
                return 2;
        }
        r = config_make_verifier(&cfg, &verifier, &e);
        config_done(&cfg);
        if (r < 0) {
                log_error("Cannot set up verification: %s", errmsg_str(&e));
                return 2;
        }

        atls.verifier = verifier;
        r = atls_http_request(&atls, url, "GET", NULL, 0, 0, &resp, &e);
        if (r >= 0 && resp.status != 200) {
                r = errmsg_set(&e, EPROTO, "node answered HTTP %ld: %s", resp.status, resp.body);
        }
        ok = r >= 0;
        if (!ok && atls.n_verifications == 0)
                log_error("Cannot attest node %s: %s", node, errmsg_str(&e));
        if (streq(output, "json"))
                print_json(node, &atls.last_report, verifier_policy(verifier), ok, errmsg_str(&e));
        else
                print_text(node, &atls.last_report, verifier_policy(verifier), ok, errmsg_str(&e));
        http_response_done(&resp);
        return ok ? 0 : 1;
}
