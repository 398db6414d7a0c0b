/* SPDX-License-Identifier: Apache-2.0 */
/* Test tool: plays a joining node against a join service, with a real TPM
 * (swtpm) and mutual aTLS, and prints the join service's raw answer so the
 * integration tests can inspect exactly what a node receives.
 *
 *   arca-testnode join   --join HOST:PORT --tcti T --platform-ca F --name N
 *                        --role R --disk-uuid U [--endpoint IP:PORT]
 *   arca-testnode rejoin --join HOST:PORT --tcti T --platform-ca F --disk-uuid U
 *   arca-testnode mesh   --join HOST:PORT --tcti T --platform-ca F --name N
 *                        [--endpoint IP:PORT] [--wg-key B64]   (mesh refresh)
 *
 * It verifies the join service like a node does (its own PCRs 0-14, PCR 15
 * free), or only its AK chain and quote with --any-pcrs. Exit 0 with the JSON body on stdout for HTTP 200; 1 otherwise with
 * the reason on stderr. Never part of a node image. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "atls-http.h"
#include "attest.h"
#include "errmsg.h"
#include "messages.h"
#include "peer-verifier.h"
#include "openssl-util.h"
#include "platform.h"
#include "tpm.h"

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "join", required_argument, NULL, 'j' },      { "tcti", required_argument, NULL, 't' },
                { "platform-ca", required_argument, NULL, 'c' }, { "name", required_argument, NULL, 'n' },
                { "role", required_argument, NULL, 'r' },      { "disk-uuid", required_argument, NULL, 'u' },
                { "endpoint", required_argument, NULL, 'e' },  { "any-pcrs", no_argument, NULL, 'a' },
                { "wg-key", required_argument, NULL, 'k' },
                {},
        };
        const char *join = NULL, *tcti = NULL, *ca = NULL, *name = "probe", *role = "worker",
                   *uuid = "00000000-0000-4000-8000-000000000000", *endpoint = "127.0.0.1:51820",
                   *wg_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        struct tpm_ctx *tpm = NULL;
        struct attester *attester = NULL;
        struct verifier *verifier = NULL;
        struct atls_config atls = {};
        struct http_response http = {};
        struct errmsg e = {};
        char url[256], *body = NULL;
        const char *verb;
        bool any_pcrs = false;
        int c, r;

        if (argc < 2)
                return 2;
        verb = argv[1];
        optind = 2;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'j': join = optarg; break;
                case 't': tcti = optarg; break;
                case 'c': ca = optarg; break;
                case 'n': name = optarg; break;
                case 'r': role = optarg; break;
                case 'u': uuid = optarg; break;
                case 'e': endpoint = optarg; break;
                case 'a': any_pcrs = true; break;
                case 'k': wg_key = optarg; break;
                default: return 2;
                }
        if (!join || !ca)
                return 2;
        /* --any-pcrs: check the join service's AK chain and quote, but no
         * PCR, so that only the join service's own checks can refuse. */
        if ((r = tpm_open(tcti, &tpm, &e)) < 0 || (r = attester_new("qemu-vtpm", tpm, TPM_AK_HANDLE, &attester, &e)) < 0 ||
            (r = peer_verifier_new(tpm, "qemu-vtpm", ca, any_pcrs ? 0 : PEER_PCRS_DEFAULT, &verifier, &e)) < 0)
                goto fail;
        if (strcmp(verb, "join") == 0) {
                struct join_request m = {};
                snprintf(m.role, sizeof(m.role), "%s", role);
                snprintf(m.disk_uuid, sizeof(m.disk_uuid), "%s", uuid);
                snprintf(m.node_name, sizeof(m.node_name), "%s", name);
                snprintf(m.endpoint, sizeof(m.endpoint), "%s", endpoint);
                snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", wg_key);
                r = join_request_serialize(&m, &body);
        } else if (strcmp(verb, "rejoin") == 0) {
                struct rejoin_request m = {};
                snprintf(m.disk_uuid, sizeof(m.disk_uuid), "%s", uuid);
                r = rejoin_request_serialize(&m, &body);
        } else if (strcmp(verb, "mesh") == 0) {
                struct mesh_request m = {};
                snprintf(m.node_name, sizeof(m.node_name), "%s", name);
                snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", wg_key);
                snprintf(m.endpoint, sizeof(m.endpoint), "%s", endpoint);
                r = mesh_request_serialize(&m, &body);
        } else
                return 2;
        if (r < 0)
                goto fail;
        snprintf(url, sizeof(url), "https://%s/v1/%s", join, verb);
        atls.attester = attester;
        atls.verifier = verifier;
        r = atls_http_request(&atls, url, "POST", body, strlen(body), 30000, &http, &e);
        if (r < 0)
                goto fail;
        if (http.status != 200) {
                fprintf(stderr, "HTTP %ld: %s", http.status, http.body);
                r = -EPROTO;
        } else
                printf("%s", http.body);
        goto out;
fail:
        fprintf(stderr, "arca-testnode: %s\n", errmsg_str(&e));
out:
        fflush(stdout);
        http_response_done(&http);
        free(body);
        verifier_free(verifier);
        attester_free(attester);
        tpm_free(tpm);
        return r < 0 ? 1 : 0;
}
