/* SPDX-License-Identifier: Apache-2.0 */
/* cp_join_params_parse() on arbitrary bytes, for every driver and both
 * roles (join parameters arrive from a join service over the network). An
 * accepted object has what the parser promises: the fields of its driver
 * and role, each well-formed, secrets only for control-plane joiners. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpdriver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct cp_driver *d, enum cp_role role, const struct cp_join_params *p) {
        bool cp = role == CP_ROLE_CONTROL_PLANE;

        if (p->role != role)
                abort();
        if (d == &cp_driver_kubeadm) {
                if (!cp_valid_hostport(p->endpoint) || !cp_valid_token(p->token) ||
                    !cp_valid_ca_cert_hash(p->ca_cert_hash) || (p->certificate_key != NULL) != cp ||
                    (cp && !cp_valid_hex(p->certificate_key, 32)) || p->n_endpoints || p->initial_cluster)
                        abort();
                return;
        }
        if (p->n_endpoints == 0 || p->n_endpoints > CP_MAX_MEMBERS || p->endpoints[p->n_endpoints] ||
            (p->initial_cluster != NULL) != cp || p->token || p->certificate_key || p->endpoint)
                abort();
        for (size_t i = 0; i < p->n_endpoints; i++) {
                if (!cp_valid_url(p->endpoints[i]))
                        abort();
                for (size_t k = 0; k < i; k++)
                        if (strcmp(p->endpoints[i], p->endpoints[k]) == 0)
                                abort();
        }
        if (cp && (!strchr(p->initial_cluster, '=') || strlen(p->initial_cluster) > CP_JOIN_PARAMS_MAX))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        for (const struct cp_driver *const *d = cp_driver_all(); *d; d++)
                for (int role = CP_ROLE_WORKER; role <= CP_ROLE_CONTROL_PLANE; role++) {
                        struct cp_join_params p = {};
                        struct errmsg e = {};

                        if (cp_join_params_parse(*d, (enum cp_role) role, (const char *) data, size, &p,
                                                 &e) < 0) {
                                /* Every refusal says why, and leaves nothing behind. */
                                if (!e.text[0] || p.token || p.endpoint || p.n_endpoints)
                                        abort();
                                continue;
                        }
                        check_accepted(*d, (enum cp_role) role, &p);
                        cp_join_params_done(&p);
                }
        return 0;
}
