/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Test helper: builds crypto-agile TCG event logs byte by byte, written
 * from the PC Client PFP specification independently of lib/eventlog.c,
 * and keeps reference PCR values (extend by extend) and the list of
 * extends so that a test can replay them into a real TPM. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ELB_MAX_ALGS 8
#define ELB_MAX_EXTENDS 512

struct elb_extend {
        unsigned pcr;
        uint8_t digest[ELB_MAX_ALGS][64]; /* per bank, in the Spec ID order */
};

struct elb {
        uint8_t *buf;
        size_t size, cap;
        unsigned n_algs;
        uint16_t algs[ELB_MAX_ALGS];
        uint16_t sizes[ELB_MAX_ALGS];
        uint8_t ref[ELB_MAX_ALGS][24][64]; /* expected PCR values per bank */
        struct elb_extend extends[ELB_MAX_EXTENDS];
        size_t n_extends;
        size_t n_events;           /* including the Spec ID event */
        size_t ends[ELB_MAX_EXTENDS * 2]; /* offset after each event */
};

/* Start a log whose Spec ID event lists algs (TPM_ALG_IDs of SHA-1,
 * SHA-256, SHA-384 or SHA-512). */
void elb_init(struct elb *b, const uint16_t *algs, unsigned n);
/* SHA-1 and SHA-256. */
void elb_init_default(struct elb *b);
void elb_free(struct elb *b);

void elb_put(struct elb *b, const void *p, size_t n);
void elb_u16(struct elb *b, uint16_t v);
void elb_u32(struct elb *b, uint32_t v);
void elb_u64(struct elb *b, uint64_t v);
/* Overwrite a little-endian u32 at offset. */
void elb_poke32(struct elb *b, size_t offset, uint32_t v);

/* An event whose digests are the hashes of `measured` (of `data` when
 * measured is NULL). EV_NO_ACTION events get zero digests and do not
 * change the reference values. */
void elb_event(struct elb *b, uint32_t pcr, uint32_t type, const void *data, size_t n);
void elb_event_measured(struct elb *b, uint32_t pcr, uint32_t type, const void *measured, size_t mn,
                        const void *data, size_t n);
/* A StartupLocality EV_NO_ACTION event; sets the reference PCR 0. */
void elb_startup_locality(struct elb *b, uint8_t locality);

/* A UEFI_VARIABLE_DATA blob (name in ASCII, written as UTF-16). */
size_t elb_variable_data(uint8_t *out, size_t cap, const uint8_t guid[16], const char *name, const void *data,
                         size_t n);

/* Write the log to a file; 0 or -errno. */
int elb_write(const struct elb *b, const char *path);
