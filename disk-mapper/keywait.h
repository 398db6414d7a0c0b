/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* An initialized state disk waits for its key from whichever comes first:
 *   - the recovery server (port 9999, server-attested aTLS): the owner's
 *     `arca recover` pushes the master secret and salt, the node derives its
 *     own disk key (lib/keys);
 *   - rejoin: POST /v1/rejoin to each configured join service (mutual aTLS,
 *     the join service verified as "same image": our PCRs 0-14, AK
 *     certified by the platform CA), which answers with the disk key. The
 *     requests run in a child process (its own TPM context), so a slow or
 *     unreachable join service never holds up the recovery server.
 * Each candidate key goes to try_key, always in the calling thread; the
 * first one it accepts ends the wait (and the rejoin child). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "keys.h"
#include "validate.h"

#define KEYWAIT_MAX_JOIN 16

struct tpm_ctx;

typedef int (*keywait_try_t)(void *userdata, const uint8_t key[KEY_SIZE], struct errmsg *e);

struct keywait_config {
        struct tpm_ctx *tpm; /* borrowed */
        const char *tcti;    /* the same TPM, opened again by the rejoin child */
        const char *variant;
        uint32_t ak_handle;
        const char *listen; /* recovery server address; NULL: no server */
        uint16_t port;
        const char *join[KEYWAIT_MAX_JOIN];
        size_t n_join;
        const char *platform_ca; /* needed for rejoin */
        unsigned rejoin_interval_s; /* pause between rounds (default 5) */
        long rejoin_timeout_ms;     /* per request (default 10000) */
        char disk_uuid[UUID_STRING_SIZE];
        keywait_try_t try_key;
        /* Optional: the recovery server listens on `port`. */
        void (*ready)(void *userdata, uint16_t port);
        void *userdata;
};

/* Serve and poll until try_key accepts a key. ret_source: "recover" or
 * "rejoin". */
int keywait_run(const struct keywait_config *c, const char **ret_source, struct errmsg *e);
