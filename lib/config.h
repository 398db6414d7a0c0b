/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The owner's cluster configuration: an INI-style file (sections in
 * brackets, `key = value`, `#` comments), parsed strictly: an unknown
 * section or key, a duplicate key or a malformed line is an error naming
 * the line. Relative paths are resolved against the file's directory.
 *
 *   [cluster]
 *   name = demo
 *   mesh-cidr = 10.123.0.0/16                  # default
 *   [nodes]
 *   init = 10.0.0.2                            # first node, port 9000 default
 *   [kubernetes]
 *   version = v1.29.3   pod-cidr = ...   service-cidr = ...   api-sans = a, b
 *   [control-plane]
 *   driver = etcd                              # or kubeadm
 *   [owner]
 *   secrets = arca-owner.json  state = arca-cluster.json  kubeconfig = arca-admin.conf
 *   [attestation]
 *   variant = qemu-vtpm
 *   policy = measurements.json
 *   policy-signature = measurements.json.sig   # optional
 *   policy-key = policy-key.pub                # required with a signature
 *   platform-ca = platform-ca.pem */

#include <stddef.h>

#include "errmsg.h"

#define CONFIG_MAX_SIZE (256 * 1024)

struct verifier;

struct arca_config {
        char *cluster_name;
        char *mesh_cidr;
        char *init_endpoint;
        char *k8s_version;
        char *pod_cidr;
        char *service_cidr;
        char *api_sans; /* comma separated */
        char *driver;
        char *owner_secrets;
        char *owner_state;
        char *owner_kubeconfig;
        char *variant;
        char *policy;
        char *policy_signature;
        char *policy_key;
        char *platform_ca;
};

/* Pure: parse text; `base` (the file's path) anchors relative paths and may
 * be NULL. */
int config_parse(const char *text, size_t len, const char *base, struct arca_config *ret, struct errmsg *e);
int config_load(const char *path, struct arca_config *ret, struct errmsg *e);
void config_done(struct arca_config *c);

/* Build the verifier the configuration describes: load (and check the
 * signature of) the policy, load the platform CA. */
int config_make_verifier(const struct arca_config *c, struct verifier **ret, struct errmsg *e);
