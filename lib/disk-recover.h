/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The recovery endpoint of a node waiting with an initialized state disk
 * (arca-disk-mapper, port 9999, server-attested aTLS; docs/PROTOCOL.md):
 *   GET  /v1/attestation -> {"service": "recover", "variant": "...",
 *                            "state": "awaiting-recovery" | "recovered",
 *                            "diskUuid": "<uuid>"}
 *   POST /v1/recover {"masterSecret": "<b64 32>", "masterSalt": "<b64 32>"}
 *        -> 200 {"diskUuid": "<uuid>"}   the derived key opened the disk
 *           403 {"error": ...}           it did not (wrong cluster)
 *           409 {"error": ...}           the disk is open already
 * The node derives its own disk key; the owner never learns which disk key
 * it is. */

#include <stdint.h>

#include "errmsg.h"
#include "keys.h"
#include "validate.h"

#define RECOVERY_PORT 9999

struct recover_request {
        uint8_t master_secret[KEY_SIZE];
        uint8_t master_salt[KEY_SIZE];
};

struct recover_response {
        char disk_uuid[UUID_STRING_SIZE];
};

struct recover_status {
        char service[16];
        char variant[32];
        char state[32];
        char disk_uuid[UUID_STRING_SIZE];
};

void recover_request_done(struct recover_request *m);
int recover_request_parse(const char *buf, size_t len, struct recover_request *ret, struct errmsg *e);
int recover_request_serialize(const struct recover_request *m, char **ret);
int recover_response_parse(const char *buf, size_t len, struct recover_response *ret, struct errmsg *e);
int recover_response_serialize(const struct recover_response *m, char **ret);
int recover_status_parse(const char *buf, size_t len, struct recover_status *ret, struct errmsg *e);
int recover_status_serialize(const struct recover_status *m, char **ret);
