/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Key derivation (DESIGN.md, Keys): HKDF-SHA256 with IKM = master secret,
 * salt = master salt, info = "key-" + id, 32 bytes out.
 *   state disk:          id = lowercase LUKS2 UUID of that disk
 *   measurement secret:  id = "measurementSecret"
 *   cluster ID:          HKDF(measurement secret, measurement salt, "key-clusterID")
 * and the node lock: TPM2_PCR_Event(15, cluster ID), once per boot. */

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define KEY_SIZE 32
#define NODE_LOCK_PCR 15

struct tpm_ctx;

int key_derive(const uint8_t master[KEY_SIZE], const uint8_t salt[KEY_SIZE], const char *id,
               uint8_t ret[KEY_SIZE]);
/* The UUID must be a canonical 36-character UUID (any case). */
int key_disk(const uint8_t master[KEY_SIZE], const uint8_t salt[KEY_SIZE], const char *luks_uuid,
             uint8_t ret[KEY_SIZE]);
int key_measurement_secret(const uint8_t master[KEY_SIZE], const uint8_t salt[KEY_SIZE], uint8_t ret[KEY_SIZE]);
int key_cluster_id(const uint8_t measurement_secret[KEY_SIZE], const uint8_t measurement_salt[KEY_SIZE],
                   uint8_t ret[KEY_SIZE]);

/* PCR 15 of a node that took the node lock of cluster_id (SHA-256 bank):
 * SHA-256(zeros[32] || SHA-256(cluster_id)), as TPM2_PCR_Event makes it. */
int node_lock_value(const uint8_t cluster_id[KEY_SIZE], uint8_t ret[32]);
/* Is PCR 15 still all zero (the node neither initialized nor joined)? */
int node_lock_is_free(struct tpm_ctx *t, struct errmsg *e);
/* Take the node lock: refuse with -EALREADY if PCR 15 is not zero, else
 * extend it with the cluster ID through TPM2_PCR_Event. */
int node_lock_take(struct tpm_ctx *t, const uint8_t cluster_id[KEY_SIZE], struct errmsg *e);
