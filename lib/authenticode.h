/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The Authenticode image hash of a PE/COFF file, as the PE Format
 * specification ("Calculating the PE Image Hash") and EDK2's
 * DxeImageVerificationLib / Tcg2 MeasurePeImage compute it. The firmware
 * measures exactly this digest of every boot application into PCR 4, and
 * a signature covers it:
 *   1. the headers up to SizeOfHeaders, without the CheckSum field and
 *      without the certificate table's data directory entry (when the
 *      optional header has one);
 *   2. the raw data of every section with SizeOfRawData > 0, in ascending
 *      order of PointerToRawData (not section table order);
 *   3. SUM_OF_BYTES_HASHED = SizeOfHeaders + the sections' SizeOfRawData;
 *      when the file is longer than that, the bytes from that offset up to
 *      the file size minus the certificate table's size.
 * The certificate table must be the last thing in the file (as signing
 * tools write it, and as step 3 assumes); anything else is refused. */

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "pe.h"

/* Digest with any OpenSSL message digest (SHA-256 for signatures and the
 * SHA-256 PCR bank; SHA-1/SHA-384 for other banks). out must hold
 * EVP_MD_get_size(md) bytes. */
int authenticode_digest(const struct pe_image *pe, const EVP_MD *md, uint8_t *out, struct errmsg *e);

static inline int authenticode_sha256(const struct pe_image *pe, uint8_t out[32], struct errmsg *e) {
        return authenticode_digest(pe, EVP_sha256(), out, e);
}
