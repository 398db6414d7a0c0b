/* SPDX-License-Identifier: Apache-2.0 */
/* The eight wire-message parsers on arbitrary bytes; the first byte picks the
 * parser ('0'-'7': init, join, rejoin and mesh request/response in turn). A refusal must say why; an accepted message must survive
 * serialize -> parse unchanged, and serialize to the same bytes again. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "messages.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x))                                                                                   \
                        abort();                                                                            \
        } while (0)

/* Two parses of one message must give equal structs. */
static bool policy_eq(const char *a, size_t an, const char *b, size_t bn) {
        if (an != bn || !a != !b)
                return false;
        return !a || memcmp(a, b, an) == 0;
}

static bool k8s_eq(const struct k8s_settings *a, const struct k8s_settings *b) {
        if (strcmp(a->version, b->version) || strcmp(a->pod_cidr, b->pod_cidr) ||
            strcmp(a->service_cidr, b->service_cidr) || a->n_api_sans != b->n_api_sans)
                return false;
        for (size_t i = 0; i < a->n_api_sans; i++)
                if (strcmp(a->api_sans[i], b->api_sans[i]))
                        return false;
        return true;
}

static bool init_request_eq(const struct init_request *a, const struct init_request *b) {
        return !memcmp(a->master_secret, b->master_secret, KEY_SIZE) &&
               !memcmp(a->master_salt, b->master_salt, KEY_SIZE) &&
               !memcmp(a->measurement_salt, b->measurement_salt, KEY_SIZE) &&
               !memcmp(a->init_secret, b->init_secret, KEY_SIZE) && !strcmp(a->cluster_name, b->cluster_name) &&
               !strcmp(a->driver, b->driver) && !strcmp(a->mesh_cidr, b->mesh_cidr) && k8s_eq(&a->k8s, &b->k8s) &&
               policy_eq(a->policy, a->policy_size, b->policy, b->policy_size);
}

static bool init_response_eq(const struct init_response *a, const struct init_response *b) {
        return !memcmp(a->cluster_id, b->cluster_id, KEY_SIZE) && !strcmp(a->node_name, b->node_name) &&
               !strcmp(a->mesh_address, b->mesh_address) && !strcmp(a->wg_public_key, b->wg_public_key) &&
               a->kubeconfig_size == b->kubeconfig_size &&
               (a->kubeconfig_size == 0 || !memcmp(a->kubeconfig, b->kubeconfig, a->kubeconfig_size));
}

static bool join_request_eq(const struct join_request *a, const struct join_request *b) {
        return !strcmp(a->role, b->role) && !strcmp(a->disk_uuid, b->disk_uuid) &&
               !strcmp(a->node_name, b->node_name) && !strcmp(a->wg_public_key, b->wg_public_key) &&
               !strcmp(a->endpoint, b->endpoint);
}

static bool peer_eq(const struct mesh_peer *a, const struct mesh_peer *b) {
        return !strcmp(a->name, b->name) && !strcmp(a->role, b->role) && !strcmp(a->wg_public_key, b->wg_public_key) &&
               !strcmp(a->endpoint, b->endpoint) && !strcmp(a->mesh_address, b->mesh_address);
}

static bool join_response_eq(const struct join_response *a, const struct join_response *b) {
        if (memcmp(a->disk_key, b->disk_key, KEY_SIZE) || memcmp(a->measurement_salt, b->measurement_salt, KEY_SIZE) ||
            memcmp(a->measurement_secret, b->measurement_secret, KEY_SIZE) ||
            memcmp(a->cluster_id, b->cluster_id, KEY_SIZE) || a->has_master != b->has_master ||
            memcmp(a->master_secret, b->master_secret, KEY_SIZE) || memcmp(a->master_salt, b->master_salt, KEY_SIZE) ||
            !policy_eq(a->policy, a->policy_size, b->policy, b->policy_size) ||
            strcmp(a->cluster_name, b->cluster_name) || strcmp(a->driver, b->driver) ||
            strcmp(a->mesh_cidr, b->mesh_cidr) || strcmp(a->mesh_address, b->mesh_address) ||
            a->n_peers != b->n_peers || !json_object_equal(a->cp_params, b->cp_params))
                return false;
        for (size_t i = 0; i < a->n_peers; i++)
                if (!peer_eq(&a->peers[i], &b->peers[i]))
                        return false;
        return true;
}

/* Parse, and on success serialize, parse again and serialize again. */
#define ROUND_TRIP(type, buf, len)                                                                          \
        do {                                                                                                \
                struct type m = {}, m2 = {};                                                                \
                struct errmsg e = {};                                                                       \
                char *s = NULL, *s2 = NULL;                                                                 \
                int r = type##_parse(buf, len, &m, &e);                                                     \
                if (r < 0) {                                                                                \
                        /* Every refusal says why, and only these errors. */                               \
                        CHECK(e.text[0]);                                                                   \
                        CHECK(r == -EBADMSG || r == -EFBIG || r == -ENOMEM);                                \
                        break;                                                                              \
                }                                                                                           \
                CHECK(type##_serialize(&m, &s) == 0);                                                       \
                r = type##_parse(s, strlen(s), &m2, &e);                                                    \
                if (r < 0) {                                                                                \
                        fprintf(stderr, "re-parse of %s failed: %s\n", s, e.text);                          \
                        abort();                                                                            \
                }                                                                                           \
                CHECK(type##_eq(&m, &m2));                                                                  \
                CHECK(type##_serialize(&m2, &s2) == 0);                                                     \
                CHECK(strcmp(s, s2) == 0);                                                                  \
                free(s);                                                                                    \
                free(s2);                                                                                   \
                DONE_##type(&m);                                                                            \
                DONE_##type(&m2);                                                                           \
        } while (0)

#define DONE_init_request init_request_done
#define DONE_init_response init_response_done
#define DONE_join_request(m) ((void) (m))
#define DONE_join_response join_response_done
#define DONE_rejoin_request(m) ((void) (m))
#define DONE_rejoin_response rejoin_response_done
#define DONE_mesh_request(m) ((void) (m))
#define DONE_mesh_response mesh_response_done

static bool mesh_request_eq(const struct mesh_request *a, const struct mesh_request *b) {
        return !strcmp(a->node_name, b->node_name) && !strcmp(a->wg_public_key, b->wg_public_key) &&
               !strcmp(a->endpoint, b->endpoint);
}

static bool mesh_response_eq(const struct mesh_response *a, const struct mesh_response *b) {
        if (strcmp(a->mesh_address, b->mesh_address) || strcmp(a->mesh_cidr, b->mesh_cidr) ||
            a->refresh_interval != b->refresh_interval || a->n_peers != b->n_peers)
                return false;
        for (size_t i = 0; i < a->n_peers; i++)
                if (!peer_eq(&a->peers[i], &b->peers[i]))
                        return false;
        return true;
}

static bool rejoin_request_eq(const struct rejoin_request *a, const struct rejoin_request *b) {
        return !strcmp(a->disk_uuid, b->disk_uuid);
}

static bool rejoin_response_eq(const struct rejoin_response *a, const struct rejoin_response *b) {
        return !memcmp(a->disk_key, b->disk_key, KEY_SIZE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf;
        size_t len;

        if (size < 1)
                return 0;
        buf = (const char *) data + 1;
        len = size - 1;
        switch (data[0] % 8) {
        case 0:
                ROUND_TRIP(init_request, buf, len);
                break;
        case 1:
                ROUND_TRIP(init_response, buf, len);
                break;
        case 2:
                ROUND_TRIP(join_request, buf, len);
                break;
        case 3:
                ROUND_TRIP(join_response, buf, len);
                break;
        case 4:
                ROUND_TRIP(rejoin_request, buf, len);
                break;
        case 5:
                ROUND_TRIP(rejoin_response, buf, len);
                break;
        case 6:
                ROUND_TRIP(mesh_request, buf, len);
                break;
        default:
                ROUND_TRIP(mesh_response, buf, len);
                break;
        }
        return 0;
}
