/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF. */

#include <stddef.h>
#include <stdint.h>

int hkdf_sha256(const void *ikm, size_t ikm_len, const void *salt, size_t salt_len,
                const void *info, size_t info_len, void *out, size_t out_len);
