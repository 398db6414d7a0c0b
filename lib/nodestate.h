/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* What a node keeps in its state directory after init or join (on the
 * encrypted state disk in production, mounted at /run/state):
 *   <dir>/arca/node.json     role, names, cluster ID, measurement salt, driver,
 *                            mesh settings, registry endpoints   (0600)
 *   <dir>/arca/master.json   master secret and salt: control-plane only (0600)
 *   <dir>/arca/policy.json   the owner's measurement policy: control-plane only
 * Files are written atomically; secrets are wiped from memory after use. */

#include <stdbool.h>
#include <stdint.h>

#include "errmsg.h"
#include "keys.h"
#include "validate.h"

#define NODESTATE_MAX_ENDPOINTS 16

struct node_state {
        char role[16];
        char node_name[NODE_NAME_MAX + 1];
        char cluster_name[NODE_NAME_MAX + 1];
        uint8_t cluster_id[KEY_SIZE];
        uint8_t measurement_salt[KEY_SIZE];
        char driver[16];
        char mesh_cidr[CIDR_MAX];
        char mesh_address[ADDRESS_MAX];
        char disk_uuid[UUID_STRING_SIZE];
        /* etcd endpoints of the membership registry (http://host:port). */
        char registry[NODESTATE_MAX_ENDPOINTS][ENDPOINT_MAX + 16];
        size_t n_registry;
};

struct master_state {
        uint8_t master_secret[KEY_SIZE];
        uint8_t master_salt[KEY_SIZE];
};

/* -ENOENT when the node has no state (neither initialized nor joined). */
int nodestate_read(const char *dir, struct node_state *ret, struct errmsg *e);
int nodestate_write(const char *dir, const struct node_state *s, struct errmsg *e);
int master_read(const char *dir, struct master_state *ret, struct errmsg *e);
int master_write(const char *dir, const struct master_state *m, struct errmsg *e);
/* The owner's policy bytes (NUL-terminated). */
int policy_file_read(const char *dir, char **ret, size_t *ret_size, struct errmsg *e);
int policy_file_write(const char *dir, const char *policy, size_t size, struct errmsg *e);

struct registry;
/* Open the membership registry the state names; https endpoints (kubeadm's
 * stacked etcd) use the API server's etcd client certificate under
 * kubernetes_dir (NULL: /etc/kubernetes). */
int nodestate_registry_open(const struct node_state *s, const char *kubernetes_dir, struct registry **ret,
                            struct errmsg *e);

/* Pure parser of node.json, for the fuzzer. */
int nodestate_parse(const char *buf, size_t len, struct node_state *ret, struct errmsg *e);
