/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The state disk's LUKS2 header, checked before any key is used
 * (DESIGN.md, State disk; docs/DISK.md). Pure parsers: bytes in, struct
 * out, no I/O, so the same code checks a private copy of a disk's header
 * and the fuzzer's inputs.
 *
 * Accepted shape, nothing more and nothing less:
 *   - primary and secondary binary headers: magic, version 2, the same
 *     header size (16 KiB .. 4 MiB, a power of two), the same sequence
 *     number, UUID and JSON, checksum algorithm sha256 with valid checksums;
 *   - JSON: keyslots, tokens, segments, digests, config and no other member;
 *   - one segment "0": crypt, aes-xts-plain64, 4096-byte sectors, integrity
 *     hmac(sha256) without journal encryption or journal integrity, size
 *     "dynamic", iv_tweak "0", offset inside the limits below;
 *   - one keyslot "0": luks2, 96-byte key (512-bit XTS + 256-bit HMAC key),
 *     af luks1 / 4000 stripes / sha256, area raw aes-xts-plain64 with a
 *     64-byte key inside the keyslots area, kdf argon2id, argon2i or pbkdf2
 *     (sha256);
 *   - one digest "0": pbkdf2 sha256 over keyslot "0" and segment "0";
 *   - one token "0" of type "arca-state-disk": {"type", "keyslots": [],
 *     "initialized": bool};
 *   - config: json_size, keyslots_size and nothing else (no flags, no
 *     requirements). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define LUKS2_BIN_HEADER_SIZE 4096
#define LUKS2_MIN_HDR_SIZE (16u * 1024)
#define LUKS2_MAX_HDR_SIZE (4u * 1024 * 1024)
/* Largest data offset (header + keyslots area) arca accepts: what it reads
 * into the private copy. */
#define LUKS2_MAX_DATA_OFFSET (64u * 1024 * 1024)
#define LUKS2_UUID_SIZE 37
#define ARCA_DISK_TOKEN_TYPE "arca-state-disk"
#define ARCA_DISK_CIPHER "aes-xts-plain64"
#define ARCA_DISK_INTEGRITY "hmac(sha256)"
#define ARCA_DISK_SECTOR_SIZE 4096
#define ARCA_DISK_VOLUME_KEY_SIZE 96

struct luks2_info {
        char uuid[LUKS2_UUID_SIZE]; /* lowercase */
        uint64_t hdr_size;          /* one binary header + JSON area */
        uint64_t seqid;
        uint64_t keyslots_size;
        uint64_t data_offset;       /* bytes: where the encrypted data starts */
        bool initialized;           /* the token's "initialized" */
};

/* Does buf start with a LUKS magic (primary or secondary)? A disk with
 * neither at offset 0 is considered blank only if it is all zero there. */
bool luks2_has_magic(const uint8_t *buf, size_t len);

/* The header size the primary binary header claims, checked for range:
 * how much of the disk to read for luks2_header_check. */
int luks2_header_size(const uint8_t *buf, size_t len, uint64_t *ret, struct errmsg *e);

/* Check both binary headers and their JSON areas in buf (the first
 * 2 * hdr_size bytes of the disk or more) and the JSON's shape. */
int luks2_header_check(const uint8_t *buf, size_t len, struct luks2_info *ret, struct errmsg *e);

/* When the two copies disagree (an update was interrupted between writing
 * one and the other) or one is damaged: overwrite the other copy in buf
 * with the newer copy (higher seqid) among those that pass every check on
 * their own, as libcryptsetup would pick it. Returns 1 if buf was changed
 * (*ret_seqid: the copy used), 0 if both copies agree already, or an
 * error if neither passes. Check buf with luks2_header_check afterwards. */
int luks2_header_repair(uint8_t *buf, size_t len, uint64_t *ret_seqid, struct errmsg *e);

/* Check the JSON metadata alone (len bytes, NUL padding allowed). */
int luks2_json_check(const char *json, size_t len, struct luks2_info *ret, struct errmsg *e);

/* Parse an arca-state-disk token as libcryptsetup returns it. */
int luks2_token_parse(const char *json, size_t len, bool *ret_initialized, struct errmsg *e);

/* The token JSON for a disk in state `initialized`. */
int luks2_token_format(bool initialized, char *buf, size_t size);
