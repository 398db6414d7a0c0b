/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The attestation evidence document, versioned. Serialized as JSON:
 *   {"version": 1, "variant": "qemu-vtpm",
 *    "quote": b64(TPMS_ATTEST), "signature": b64(TPMT_SIGNATURE),
 *    "pcrs": ["<hex>" x 24], "akPublic": b64(TPMT_PUBLIC),
 *    "akCertChain": [b64(DER), ...]   leaf first, variant specific
 *    "eventLog": b64(...)             optional
 *    "userData": b64(32 bytes)}
 * The parser is pure and strict: every size has an upper bound, unknown
 * fields and versions are refused. */

#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define EVIDENCE_VERSION 1
#define EVIDENCE_MAX_SIZE (256 * 1024)
#define EVIDENCE_MAX_CERTS 4
#define EVIDENCE_MAX_CERT_SIZE 4096
/* Base64 of the largest event log must fit the document limit. */
#define EVIDENCE_MAX_EVENT_LOG (128 * 1024)
#define EVIDENCE_USER_DATA_SIZE 32
#define EVIDENCE_VARIANT_MAX 32

struct blob {
        uint8_t *data;
        size_t size;
};

struct evidence {
        unsigned version;
        char variant[EVIDENCE_VARIANT_MAX];
        struct blob quote;     /* TPMS_ATTEST */
        struct blob signature; /* TPMT_SIGNATURE */
        uint8_t pcrs[24][32];
        struct blob ak_public; /* TPMT_PUBLIC */
        struct blob ak_certs[EVIDENCE_MAX_CERTS];
        size_t n_ak_certs;
        struct blob event_log; /* empty when absent */
        uint8_t user_data[EVIDENCE_USER_DATA_SIZE];
};

struct evidence *evidence_new(void);
struct evidence *evidence_free(struct evidence *ev);
static inline void evidence_freep(struct evidence **ev) {
        evidence_free(*ev);
}
#define _cleanup_evidence_ _cleanup_(evidence_freep)

int evidence_parse(const uint8_t *p, size_t n, struct evidence **ret, struct errmsg *e);
int evidence_serialize(const struct evidence *ev, char **ret, size_t *ret_size);

/* Copy n bytes into a blob (replacing what it held). */
int blob_set(struct blob *b, const void *p, size_t n);
void blob_done(struct blob *b);
