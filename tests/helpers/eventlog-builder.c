/* SPDX-License-Identifier: Apache-2.0 */
#include "eventlog-builder.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *md_of(uint16_t alg, uint16_t *ret_size) {
        switch (alg) {
        case 0x0004:
                *ret_size = 20;
                return "SHA1";
        case 0x000b:
                *ret_size = 32;
                return "SHA256";
        case 0x000c:
                *ret_size = 48;
                return "SHA384";
        case 0x000d:
                *ret_size = 64;
                return "SHA512";
        default:
                abort();
        }
}

static void hash(uint16_t alg, const void *p, size_t n, uint8_t *out) {
        uint16_t size;
        const char *name = md_of(alg, &size);
        unsigned len = 0;

        if (EVP_Digest(p, n, out, &len, EVP_get_digestbyname(name), NULL) != 1 || len != size)
                abort();
}

void elb_put(struct elb *b, const void *p, size_t n) {
        if (b->size + n > b->cap) {
                b->cap = (b->size + n) * 2 + 256;
                b->buf = realloc(b->buf, b->cap);
                if (!b->buf)
                        abort();
        }
        if (n)
                memcpy(b->buf + b->size, p, n);
        b->size += n;
}

void elb_u16(struct elb *b, uint16_t v) {
        uint8_t x[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
        elb_put(b, x, 2);
}

void elb_u32(struct elb *b, uint32_t v) {
        uint8_t x[4] = { (uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24) };
        elb_put(b, x, 4);
}

void elb_u64(struct elb *b, uint64_t v) {
        elb_u32(b, (uint32_t) v);
        elb_u32(b, (uint32_t) (v >> 32));
}

void elb_poke32(struct elb *b, size_t offset, uint32_t v) {
        b->buf[offset] = (uint8_t) v;
        b->buf[offset + 1] = (uint8_t) (v >> 8);
        b->buf[offset + 2] = (uint8_t) (v >> 16);
        b->buf[offset + 3] = (uint8_t) (v >> 24);
}

void elb_init(struct elb *b, const uint16_t *algs, unsigned n) {
        static const uint8_t zero[20];

        memset(b, 0, sizeof(*b));
        if (n > ELB_MAX_ALGS)
                abort();
        b->n_algs = n;
        for (unsigned i = 0; i < n; i++) {
                b->algs[i] = algs[i];
                md_of(algs[i], &b->sizes[i]);
                for (unsigned p = 0; p < 24; p++)
                        memset(b->ref[i][p], p >= 17 && p <= 22 ? 0xff : 0, b->sizes[i]);
        }
        /* TCG_PCClientPCREvent carrying TCG_EfiSpecIDEvent */
        elb_u32(b, 0);
        elb_u32(b, 3); /* EV_NO_ACTION */
        elb_put(b, zero, 20);
        elb_u32(b, 16 + 4 + 4 + 4 + 4 * n + 1);
        elb_put(b, "Spec ID Event03", 16);
        elb_u32(b, 0);                                      /* platformClass */
        elb_put(b, (uint8_t[]) { 0, 2, 0, 2 }, 4);          /* 2.0 errata 0, UINT64 */
        elb_u32(b, n);
        for (unsigned i = 0; i < n; i++) {
                elb_u16(b, b->algs[i]);
                elb_u16(b, b->sizes[i]);
        }
        elb_put(b, (uint8_t[]) { 0 }, 1); /* vendorInfoSize */
        b->ends[b->n_events++] = b->size;
}

void elb_init_default(struct elb *b) {
        elb_init(b, (const uint16_t[]) { 0x0004, 0x000b }, 2);
}

void elb_free(struct elb *b) {
        free(b->buf);
        b->buf = NULL;
}

static void event_with(struct elb *b, uint32_t pcr, uint32_t type, uint8_t digests[ELB_MAX_ALGS][64],
                       const void *data, size_t n) {
        elb_u32(b, pcr);
        elb_u32(b, type);
        elb_u32(b, b->n_algs);
        for (unsigned i = 0; i < b->n_algs; i++) {
                elb_u16(b, b->algs[i]);
                elb_put(b, digests[i], b->sizes[i]);
        }
        elb_u32(b, (uint32_t) n);
        elb_put(b, data, n);
        if (b->n_events < sizeof(b->ends) / sizeof(b->ends[0]))
                b->ends[b->n_events] = b->size;
        b->n_events++;
}

void elb_event_measured(struct elb *b, uint32_t pcr, uint32_t type, const void *measured, size_t mn,
                        const void *data, size_t n) {
        uint8_t digests[ELB_MAX_ALGS][64] = {};
        struct elb_extend *x;

        if (type == 3) {
                event_with(b, pcr, type, digests, data, n);
                return;
        }
        if (!measured) {
                measured = data;
                mn = n;
        }
        for (unsigned i = 0; i < b->n_algs; i++)
                hash(b->algs[i], measured, mn, digests[i]);
        event_with(b, pcr, type, digests, data, n);

        /* Reference: PCR := H(PCR || digest) */
        if (pcr < 24) {
                for (unsigned i = 0; i < b->n_algs; i++) {
                        uint8_t cat[128];
                        memcpy(cat, b->ref[i][pcr], b->sizes[i]);
                        memcpy(cat + b->sizes[i], digests[i], b->sizes[i]);
                        hash(b->algs[i], cat, 2u * b->sizes[i], b->ref[i][pcr]);
                }
                if (b->n_extends < ELB_MAX_EXTENDS) {
                        x = &b->extends[b->n_extends++];
                        x->pcr = pcr;
                        memcpy(x->digest, digests, sizeof(x->digest));
                }
        }
}

void elb_event(struct elb *b, uint32_t pcr, uint32_t type, const void *data, size_t n) {
        elb_event_measured(b, pcr, type, NULL, 0, data, n);
}

void elb_startup_locality(struct elb *b, uint8_t locality) {
        uint8_t d[17] = "StartupLocality";

        d[16] = locality;
        elb_event(b, 0, 3, d, sizeof(d));
        for (unsigned i = 0; i < b->n_algs; i++)
                b->ref[i][0][b->sizes[i] - 1] = locality;
}

size_t elb_variable_data(uint8_t *out, size_t cap, const uint8_t guid[16], const char *name, const void *data,
                         size_t n) {
        size_t len = strlen(name), off = 0;

        if (32 + 2 * len + n > cap)
                abort();
        memcpy(out, guid, 16);
        for (int i = 0; i < 8; i++) {
                out[16 + i] = (uint8_t) ((uint64_t) len >> (8 * i));
                out[24 + i] = (uint8_t) ((uint64_t) n >> (8 * i));
        }
        off = 32;
        for (size_t i = 0; i < len; i++) {
                out[off++] = (uint8_t) name[i];
                out[off++] = 0;
        }
        memcpy(out + off, data, n);
        return off + n;
}

int elb_write(const struct elb *b, const char *path) {
        FILE *f = fopen(path, "wb");
        int r = 0;

        if (!f)
                return -errno;
        if (fwrite(b->buf, 1, b->size, f) != b->size)
                r = -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        return r;
}
