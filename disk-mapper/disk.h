/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The state disk through libcryptsetup (docs/DISK.md). Every operation on
 * an existing header works on a private copy of the disk's header region
 * (binary headers, JSON, keyslots) in the run directory (tmpfs), checked by
 * lib/luks2 first: libcryptsetup uses exactly the bytes that were checked,
 * whatever the host does to the disk meanwhile. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "keys.h"
#include "luks2.h"

struct disk_config {
        const char *device;  /* the raw state disk */
        const char *name;    /* device-mapper name: /dev/mapper/<name> */
        const char *run_dir; /* tmpfs: initial key, header copy */
        bool quiet;          /* no wipe progress on stderr */
};

enum disk_state {
        DISK_BLANK,         /* all zero where LUKS headers could be */
        DISK_UNINITIALIZED, /* arca header, token initialized: false */
        DISK_INITIALIZED,   /* arca header, token initialized: true */
};

const char *disk_state_to_string(enum disk_state s);

/* Classify the disk, checking the header if there is one. A header of any
 * other shape, or data that is neither zero nor LUKS, is an error naming
 * what is wrong; nothing is written. */
int disk_probe(const struct disk_config *c, enum disk_state *ret, struct luks2_info *ret_info, struct errmsg *e);

/* Format a blank or uninitialized disk: LUKS2 + integrity, one keyslot
 * under a fresh random initial key (kept in <run_dir>/initial-key, 0600),
 * token initialized: false, integrity tags initialized by a wipe. The disk
 * is left closed. */
int disk_format(const struct disk_config *c, struct luks2_info *ret_info, struct errmsg *e);

/* Open with a key (through the checked private header copy). -EPERM: the
 * key opens no keyslot. */
int disk_open(const struct disk_config *c, const void *key, size_t key_size, struct luks2_info *ret_info,
              struct errmsg *e);
int disk_open_initial(const struct disk_config *c, struct luks2_info *ret_info, struct errmsg *e);
int disk_close(const struct disk_config *c, struct errmsg *e);

/* Replace the initial key by `key` and mark the disk initialized; the new
 * header is checked before it is written back. Idempotent: a disk that is
 * initialized and opens with `key` is left alone. */
int disk_rekey(const struct disk_config *c, const char *expected_uuid, const uint8_t key[KEY_SIZE],
               struct errmsg *e);
