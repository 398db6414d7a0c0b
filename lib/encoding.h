/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Hex and base64 (RFC 4648, standard alphabet, padded). Decoders are strict:
 * any character outside the alphabet, odd hex length or bad padding is
 * -EINVAL. Outputs are NUL-terminated heap strings or heap buffers. */

#include <stddef.h>
#include <stdint.h>

/* Lowercase hex of n bytes. */
int hex_encode(const void *p, size_t n, char **ret);
/* Write lowercase hex into buf (size >= 2n+1). */
void hex_encode_buf(const void *p, size_t n, char *buf);
/* Decode hex of any case into a new buffer. */
int hex_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);
/* Decode hex into a fixed buffer; the input must decode to exactly n bytes. */
int hex_decode_exact(const char *s, void *out, size_t n);

int base64_encode(const void *p, size_t n, char **ret);
int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);
