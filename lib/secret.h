/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Handling of key material: wiping, random bytes, constant-time compare. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Zero memory in a way the compiler may not elide. */
void secret_wipe(void *p, size_t n);

/* Wipe and free a heap buffer of known size. Returns NULL. */
void *secret_free(void *p, size_t n);

/* Fill with bytes from OpenSSL's CSPRNG (seeded from getrandom()). */
int secret_random(void *p, size_t n);

/* Constant-time equality of two buffers of the same length. */
bool secret_equal(const void *a, const void *b, size_t n);

/* A fixed-size 32-byte secret that is wiped when it leaves scope:
 *   _cleanup_(secret32_wipe) uint8_t key[32]; */
static inline void secret32_wipe(uint8_t (*p)[32]) {
        secret_wipe(*p, sizeof(*p));
}
