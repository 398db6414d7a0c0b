/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The owner's cluster configuration: an INI-style file (sections in
 * brackets, `key = value`, `#` comments), parsed strictly: an unknown
 * section or key, a duplicate key or a malformed line is an error naming
 * the line. Relative paths are resolved against the file's directory.
 *
 *   [cluster]
 *   name = demo
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
