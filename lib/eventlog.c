/* SPDX-License-Identifier: Apache-2.0 */
/* Parser of the crypto-agile TCG event log (see eventlog.h). */
#include "eventlog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"

#define SPEC_ID_SIGNATURE "Spec ID Event03" /* 16 bytes with the NUL */
#define SPEC_ID_SIGNATURE_SHA1 "Spec ID Event00"
#define SHA1_SIZE 20
/* TCG_PCClientPCREvent: pcrIndex, eventType, digest[20], eventDataSize */
#define HEADER_EVENT_FIXED (4 + 4 + SHA1_SIZE + 4)
/* TCG_EfiSpecIDEvent up to the algorithm list: signature[16],
 * platformClass, specVersionMinor, specVersionMajor, specErrata, uintnSize,
 * numberOfAlgorithms. */
#define SPEC_ID_FIXED (16 + 4 + 4 + 4)

static const struct {
        uint16_t id;
        unsigned size;
        const char *name;
} algs[] = {
        { EVENTLOG_ALG_SHA1, 20, "sha1" },     { EVENTLOG_ALG_SHA256, 32, "sha256" },
        { EVENTLOG_ALG_SHA384, 48, "sha384" }, { EVENTLOG_ALG_SHA512, 64, "sha512" },
        { EVENTLOG_ALG_SM3_256, 32, "sm3_256" },
};

const char *eventlog_alg_to_string(uint16_t alg) {
        for (size_t i = 0; i < ELEMENTSOF(algs); i++)
                if (algs[i].id == alg)
                        return algs[i].name;
        return NULL;
}

unsigned eventlog_alg_digest_size(uint16_t alg) {
        for (size_t i = 0; i < ELEMENTSOF(algs); i++)
                if (algs[i].id == alg)
                        return algs[i].size;
        return 0;
}

const char *eventlog_type_to_string(uint32_t type) {
        static const struct {
                uint32_t type;
                const char *name;
        } types[] = {
#define T(x) { x, #x }
                T(EV_PREBOOT_CERT),
                T(EV_POST_CODE),
                T(EV_UNUSED),
                T(EV_NO_ACTION),
                T(EV_SEPARATOR),
                T(EV_ACTION),
                T(EV_EVENT_TAG),
                T(EV_S_CRTM_CONTENTS),
                T(EV_S_CRTM_VERSION),
                T(EV_CPU_MICROCODE),
                T(EV_PLATFORM_CONFIG_FLAGS),
                T(EV_TABLE_OF_DEVICES),
                T(EV_COMPACT_HASH),
                T(EV_IPL),
                T(EV_IPL_PARTITION_DATA),
                T(EV_NONHOST_CODE),
                T(EV_NONHOST_CONFIG),
                T(EV_NONHOST_INFO),
                T(EV_OMIT_BOOT_DEVICE_EVENTS),
                T(EV_POST_CODE2),
                T(EV_EFI_EVENT_BASE),
                T(EV_EFI_VARIABLE_DRIVER_CONFIG),
                T(EV_EFI_VARIABLE_BOOT),
                T(EV_EFI_BOOT_SERVICES_APPLICATION),
                T(EV_EFI_BOOT_SERVICES_DRIVER),
                T(EV_EFI_RUNTIME_SERVICES_DRIVER),
                T(EV_EFI_GPT_EVENT),
                T(EV_EFI_ACTION),
                T(EV_EFI_PLATFORM_FIRMWARE_BLOB),
                T(EV_EFI_HANDOFF_TABLES),
                T(EV_EFI_PLATFORM_FIRMWARE_BLOB2),
                T(EV_EFI_HANDOFF_TABLES2),
                T(EV_EFI_VARIABLE_BOOT2),
                T(EV_EFI_GPT_EVENT2),
                T(EV_EFI_HCRTM_EVENT),
                T(EV_EFI_VARIABLE_AUTHORITY),
                T(EV_EFI_SPDM_FIRMWARE_BLOB),
                T(EV_EFI_SPDM_FIRMWARE_CONFIG),
#undef T
        };

        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (types[i].type == type)
                        return types[i].name;
        return NULL;
}

const struct eventlog_digest *eventlog_event_digest(const struct eventlog_event *ev, uint16_t alg) {
        for (unsigned i = 0; i < ev->n_digests; i++)
                if (ev->digests[i].alg == alg)
                        return &ev->digests[i];
        return NULL;
}

/* A cursor over the log. Every read checks the bytes left first; failures
 * name the event being read, where it starts and the field. */
struct reader {
        const uint8_t *p;
        size_t n;
        size_t off;
        size_t event;       /* index of the event being read */
        size_t event_start; /* its offset */
        struct errmsg *e;
};

_printf_(3, 4) static int bad(struct reader *r, int error, const char *fmt, ...) {
        char what[384];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return errmsg_set(r->e, error, "event %zu at offset 0x%zx: %s", r->event, r->event_start, what);
}

static int need(struct reader *r, size_t k, const char *field) {
        if (r->n - r->off < k)
                return bad(r, EBADMSG, "truncated in %s: %zu bytes needed at offset 0x%zx, %zu left", field, k,
                           r->off, r->n - r->off);
        return 0;
}

static int read_u8(struct reader *r, const char *field, uint8_t *ret) {
        int k = need(r, 1, field);
        if (k < 0)
                return k;
        *ret = r->p[r->off++];
        return 0;
}

static int read_u16(struct reader *r, const char *field, uint16_t *ret) {
        int k = need(r, 2, field);
        if (k < 0)
                return k;
        *ret = (uint16_t) (r->p[r->off] | r->p[r->off + 1] << 8);
        r->off += 2;
        return 0;
}

static int read_u32(struct reader *r, const char *field, uint32_t *ret) {
        const uint8_t *b;
        int k = need(r, 4, field);
        if (k < 0)
                return k;
        b = r->p + r->off;
        *ret = (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
        r->off += 4;
        return 0;
}

static int read_bytes(struct reader *r, size_t k, const char *field, const uint8_t **ret) {
        int q = need(r, k, field);
        if (q < 0)
                return q;
        *ret = r->p + r->off;
        r->off += k;
        return 0;
}

static int add_event(struct eventlog *l, struct reader *r, struct eventlog_event **ret) {
        struct eventlog_event *ev;
        size_t n = l->n_events;

        if (n >= EVENTLOG_MAX_EVENTS)
                return bad(r, EBADMSG, "the log has more than %u events", EVENTLOG_MAX_EVENTS);
        /* The capacity is 64, then doubles: it is full when n is 0 or a
         * power of two of at least 64. */
        if (n == 0 || (n >= 64 && (n & (n - 1)) == 0)) {
                struct eventlog_event *a = reallocarray(l->events, n ? 2 * n : 64, sizeof(*a));
                if (!a)
                        return -ENOMEM;
                l->events = a;
        }
        ev = &l->events[l->n_events++];
        *ev = (struct eventlog_event) { .index = r->event, .offset = r->event_start };
        *ret = ev;
        return 0;
}

/* The first event: SHA-1 format, EV_NO_ACTION in PCR 0, data = Spec ID
 * Event03 with the algorithms every later event carries a digest for. */
static int parse_spec_id(struct eventlog *l, struct reader *r) {
        struct eventlog_event *ev;
        struct reader d;
        const uint8_t *sig, *digest;
        uint32_t pcr, type, size, n_algs;
        uint8_t vendor_size;
        int k;

        if ((k = read_u32(r, "pcrIndex", &pcr)) < 0 || (k = read_u32(r, "eventType", &type)) < 0 ||
            (k = read_bytes(r, SHA1_SIZE, "digest", &digest)) < 0 ||
            (k = read_u32(r, "eventDataSize", &size)) < 0)
                return k;
        if (type != EV_NO_ACTION)
                return bad(r, EBADMSG,
                           "eventType 0x%08x is not EV_NO_ACTION: the log does not start with the Spec ID "
                           "event of a crypto-agile log",
                           type);
        if (pcr != 0)
                return bad(r, EBADMSG, "Spec ID event: pcrIndex %u is not 0", pcr);
        if (size > r->n - r->off)
                return bad(r, EBADMSG, "Spec ID event: eventDataSize %u exceeds the %zu bytes left", size,
                           r->n - r->off);
        if (size < SPEC_ID_FIXED)
                return bad(r, EBADMSG, "Spec ID event: eventDataSize %u is shorter than a TCG_EfiSpecIDEvent",
                           size);

        /* A reader over the event data alone, so that no field can reach
         * beyond it. */
        d = *r;
        d.n = r->off + size;
        r->off += size;

        sig = d.p + d.off;
        d.off += 16;
        if (memcmp(sig, SPEC_ID_SIGNATURE_SHA1, sizeof(SPEC_ID_SIGNATURE_SHA1)) == 0)
                return bad(&d, EBADMSG,
                           "Spec ID event: signature \"" SPEC_ID_SIGNATURE_SHA1
                           "\" marks a SHA-1 (TPM 1.2) log, not a crypto-agile one");
        if (memcmp(sig, SPEC_ID_SIGNATURE, sizeof(SPEC_ID_SIGNATURE)) != 0)
                return bad(&d, EBADMSG, "Spec ID event: signature is not \"" SPEC_ID_SIGNATURE "\"");

        if ((k = read_u32(&d, "Spec ID platformClass", &l->platform_class)) < 0 ||
            (k = read_u8(&d, "Spec ID specVersionMinor", &l->spec_version_minor)) < 0 ||
            (k = read_u8(&d, "Spec ID specVersionMajor", &l->spec_version_major)) < 0 ||
            (k = read_u8(&d, "Spec ID specErrata", &l->spec_errata)) < 0 ||
            (k = read_u8(&d, "Spec ID uintnSize", &l->uintn_size)) < 0 ||
            (k = read_u32(&d, "Spec ID numberOfAlgorithms", &n_algs)) < 0)
                return k;
        if (l->spec_version_major != 2)
                return bad(&d, EBADMSG, "Spec ID event: specVersionMajor %u is not 2", l->spec_version_major);
        if (l->uintn_size != 1 && l->uintn_size != 2)
                return bad(&d, EBADMSG, "Spec ID event: uintnSize %u is neither 1 nor 2", l->uintn_size);
        if (n_algs == 0 || n_algs > EVENTLOG_MAX_ALGS)
                return bad(&d, EBADMSG, "Spec ID event: numberOfAlgorithms %u is not between 1 and %u", n_algs,
                           EVENTLOG_MAX_ALGS);

        for (uint32_t i = 0; i < n_algs; i++) {
                struct eventlog_alg *a = &l->algs[i];
                const char *name;
                unsigned want;

                if ((k = read_u16(&d, "Spec ID algorithmId", &a->id)) < 0 ||
                    (k = read_u16(&d, "Spec ID digestSize", &a->size)) < 0)
                        return k;
                name = eventlog_alg_to_string(a->id);
                want = eventlog_alg_digest_size(a->id);
                if (a->size == 0 || a->size > EVENTLOG_MAX_DIGEST_SIZE)
                        return bad(&d, EBADMSG, "Spec ID event: algorithm %u (0x%04x) has digestSize %u", i, a->id,
                                   a->size);
                if (want && a->size != want)
                        return bad(&d, EBADMSG, "Spec ID event: algorithm %s has digestSize %u, not %u", name,
                                   a->size, want);
                for (uint32_t j = 0; j < i; j++)
                        if (l->algs[j].id == a->id)
                                return bad(&d, EBADMSG, "Spec ID event: algorithm 0x%04x is listed twice", a->id);
        }
        l->n_algs = n_algs;

        if ((k = read_u8(&d, "Spec ID vendorInfoSize", &vendor_size)) < 0 ||
            (k = read_bytes(&d, vendor_size, "Spec ID vendorInfo", &l->vendor_info)) < 0)
                return k;
        l->vendor_info_size = vendor_size;
        if (d.off != d.n)
                return bad(&d, EBADMSG, "Spec ID event: %zu bytes after vendorInfo", d.n - d.off);

        k = add_event(l, r, &ev);
        if (k < 0)
                return k;
        ev->pcr = pcr;
        ev->type = type;
        ev->n_digests = 1;
        ev->digests[0] = (struct eventlog_digest) { .alg = EVENTLOG_ALG_SHA1, .size = SHA1_SIZE, .value = digest };
        ev->data = r->p + r->off - size;
        ev->data_size = size;
        ev->size = r->off - r->event_start;
        return 0;
}

/* TCG_PCR_EVENT2 */
static int parse_event2(struct eventlog *l, struct reader *r) {
        struct eventlog_event *ev;
        uint32_t pcr, type, count, size;
        int k;

        if ((k = read_u32(r, "pcrIndex", &pcr)) < 0 || (k = read_u32(r, "eventType", &type)) < 0 ||
            (k = read_u32(r, "digests.count", &count)) < 0)
                return k;
        if (pcr >= EVENTLOG_PCR_COUNT)
                return bad(r, EBADMSG, "pcrIndex %u is not a PCR (0-%u)", pcr, EVENTLOG_PCR_COUNT - 1);
        if (count != l->n_algs)
                return bad(r, EBADMSG, "digests.count %u differs from the %u algorithm(s) of the Spec ID event",
                           count, l->n_algs);

        k = add_event(l, r, &ev);
        if (k < 0)
                return k;
        ev->pcr = pcr;
        ev->type = type;
        for (uint32_t i = 0; i < count; i++) {
                const struct eventlog_alg *a = NULL;
                uint16_t alg;
                char field[48];

                snprintf(field, sizeof(field), "digest %u hashAlg", i);
                if ((k = read_u16(r, field, &alg)) < 0)
                        return k;
                for (unsigned j = 0; j < l->n_algs; j++)
                        if (l->algs[j].id == alg)
                                a = &l->algs[j];
                if (!a)
                        return bad(r, EBADMSG, "digest %u: algorithm 0x%04x (%s) is not in the Spec ID event", i,
                                   alg, strna(eventlog_alg_to_string(alg)));
                if (eventlog_event_digest(ev, alg))
                        return bad(r, EBADMSG, "digest %u: a second %s digest", i,
                                   strna(eventlog_alg_to_string(alg)));
                snprintf(field, sizeof(field), "digest %u (%s)", i, strna(eventlog_alg_to_string(alg)));
                ev->digests[i] = (struct eventlog_digest) { .alg = alg, .size = a->size };
                if ((k = read_bytes(r, a->size, field, &ev->digests[i].value)) < 0)
                        return k;
                ev->n_digests = i + 1;
        }

        if ((k = read_u32(r, "eventSize", &size)) < 0)
                return k;
        if (size > EVENTLOG_MAX_EVENT_SIZE)
                return bad(r, EBADMSG, "eventSize %u exceeds the limit of %u bytes", size, EVENTLOG_MAX_EVENT_SIZE);
        if ((k = read_bytes(r, size, "event data", &ev->data)) < 0)
                return k;
        ev->data_size = size;
        ev->size = r->off - r->event_start;
        return 0;
}

int eventlog_parse(const void *p, size_t n, struct eventlog **ret, struct errmsg *e) {
        _cleanup_(eventlog_freep) struct eventlog *l = NULL;
        struct reader r;
        int k;

        if (!p || n == 0)
                return errmsg_set(e, EBADMSG, "the event log is empty");
        if (n > EVENTLOG_MAX_SIZE)
                return errmsg_set(e, EBADMSG, "the event log has %zu bytes, more than the limit of %u", n,
                                  EVENTLOG_MAX_SIZE);
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->raw = malloc(n);
        if (!l->raw)
                return -ENOMEM;
        memcpy(l->raw, p, n);
        l->raw_size = n;

        r = (struct reader) { .p = l->raw, .n = n, .e = e };
        k = parse_spec_id(l, &r);
        if (k < 0)
                return k;
        while (r.off < r.n) {
                r.event++;
                r.event_start = r.off;
                k = parse_event2(l, &r);
                if (k < 0)
                        return k;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int eventlog_load(const char *path, struct eventlog **ret, struct errmsg *e) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        r = read_full_file(path, EVENTLOG_MAX_SIZE, &buf, &size);
        if (r == -EFBIG)
                return errmsg_set(e, r, "%s is larger than %u bytes", path, EVENTLOG_MAX_SIZE);
        if (r < 0)
                return errmsg_set(e, r, "cannot read %s: %s", path, strerror(-r));
        return eventlog_parse(buf, size, ret, e);
}

struct eventlog *eventlog_free(struct eventlog *l) {
        if (!l)
                return NULL;
        free(l->events);
        free(l->raw);
        return mfree(l);
}
