/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The owner's secrets file (mode 0600, JSON): master secret and salt,
 * measurement salt and init secret. Made by `arca config generate` before
 * any node exists, so a failed `arca init` never loses the master secret. */

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "keys.h"

struct owner_secrets {
        uint8_t master_secret[KEY_SIZE];
        uint8_t master_salt[KEY_SIZE];
        uint8_t measurement_salt[KEY_SIZE];
        uint8_t init_secret[KEY_SIZE];
};

int owner_secrets_generate(struct owner_secrets *ret);
/* Create the file; -EEXIST if it exists (never overwrite the secrets). */
int owner_secrets_create(const char *path, const struct owner_secrets *s, struct errmsg *e);
/* Refuses a file readable by group or others. */
int owner_secrets_load(const char *path, struct owner_secrets *ret, struct errmsg *e);
int owner_secrets_parse(const char *buf, size_t len, struct owner_secrets *ret, struct errmsg *e);
/* SHA-256 of the init secret, hex: what the platform gives nodes. */
int owner_init_secret_hash(const struct owner_secrets *s, char ret[65]);
