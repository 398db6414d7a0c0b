/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Memoized DER -> X509 decoding. Decoding a certificate costs more than
 * verifying its signature in OpenSSL 3.0, and a node presents the same AK
 * certificate on every connection. Only the decoding is reused, for exactly
 * the same bytes; every check on the certificate still runs each time.
 * Thread-safe; a fixed number of entries, replaced round-robin. */

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

struct cert_cache;

int cert_cache_new(size_t n_entries, struct cert_cache **ret);
struct cert_cache *cert_cache_free(struct cert_cache *c);
/* Decode DER (all bytes must be consumed); returns a new reference. c may be
 * NULL (no caching). */
int cert_cache_decode(struct cert_cache *c, const uint8_t *der, size_t size, X509 **ret);
