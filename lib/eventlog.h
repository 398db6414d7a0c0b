/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The firmware's TCG event log in the crypto-agile format of the TCG PC
 * Client Platform Firmware Profile (PFP), as Linux exposes it in
 * /sys/kernel/security/tpm0/binary_bios_measurements:
 *
 *   TCG_PCClientPCREvent      (SHA-1 format) EV_NO_ACTION in PCR 0 carrying
 *                             the Spec ID Event03 (TCG_EfiSpecIDEvent): the
 *                             digest algorithms of the log and their sizes
 *   TCG_PCR_EVENT2 ...        pcrIndex, eventType, TPML_DIGEST_VALUES (one
 *                             digest per algorithm of the Spec ID event),
 *                             eventSize, event data
 *
 * All integers little-endian. The parser is pure (bytes in, struct out) and
 * validates every length and count before using it; a refusal names the
 * event, its byte offset and the field. The log is untrusted input: only a
 * replay that reproduces quoted PCR values makes its events believable, and
 * even then the event data (descriptions) is what the firmware claims, not
 * what was measured.
 *
 * Files: eventlog.c (parser, names), eventlog-replay.c (replay, mismatch
 * explanation), eventlog-describe.c (decoding of event data for people). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "macro.h"
#include "policy.h"

/* Bounds on outside data. A real log is a few hundred events and tens of
 * KiB; the largest single events are dbx (tens of KiB) and GPT tables. */
#define EVENTLOG_MAX_SIZE (16u * 1024 * 1024)
#define EVENTLOG_MAX_EVENTS 16384u
#define EVENTLOG_MAX_EVENT_SIZE (1024u * 1024)
#define EVENTLOG_MAX_ALGS 8u /* algorithms in the Spec ID event (banks) */
#define EVENTLOG_MAX_DIGEST_SIZE 64u
#define EVENTLOG_PCR_COUNT 24u

/* TPM_ALG_ID of the digest algorithms. */
#define EVENTLOG_ALG_SHA1 UINT16_C(0x0004)
#define EVENTLOG_ALG_SHA256 UINT16_C(0x000b)
#define EVENTLOG_ALG_SHA384 UINT16_C(0x000c)
#define EVENTLOG_ALG_SHA512 UINT16_C(0x000d)
#define EVENTLOG_ALG_SM3_256 UINT16_C(0x0012)

/* Event types (PFP, "Events"). */
enum {
        EV_PREBOOT_CERT = 0x00000000,
        EV_POST_CODE = 0x00000001,
        EV_UNUSED = 0x00000002,
        EV_NO_ACTION = 0x00000003,
        EV_SEPARATOR = 0x00000004,
        EV_ACTION = 0x00000005,
        EV_EVENT_TAG = 0x00000006,
        EV_S_CRTM_CONTENTS = 0x00000007,
        EV_S_CRTM_VERSION = 0x00000008,
        EV_CPU_MICROCODE = 0x00000009,
        EV_PLATFORM_CONFIG_FLAGS = 0x0000000a,
        EV_TABLE_OF_DEVICES = 0x0000000b,
        EV_COMPACT_HASH = 0x0000000c,
        EV_IPL = 0x0000000d,
        EV_IPL_PARTITION_DATA = 0x0000000e,
        EV_NONHOST_CODE = 0x0000000f,
        EV_NONHOST_CONFIG = 0x00000010,
        EV_NONHOST_INFO = 0x00000011,
        EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012,
        EV_POST_CODE2 = 0x00000013,
        EV_EFI_EVENT_BASE = 0x80000000,
        EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001,
        EV_EFI_VARIABLE_BOOT = 0x80000002,
        EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003,
        EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004,
        EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005,
        EV_EFI_GPT_EVENT = 0x80000006,
        EV_EFI_ACTION = 0x80000007,
        EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008,
        EV_EFI_HANDOFF_TABLES = 0x80000009,
        EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000a,
        EV_EFI_HANDOFF_TABLES2 = 0x8000000b,
        EV_EFI_VARIABLE_BOOT2 = 0x8000000c,
        EV_EFI_GPT_EVENT2 = 0x8000000d,
        EV_EFI_HCRTM_EVENT = 0x80000010,
        EV_EFI_VARIABLE_AUTHORITY = 0x800000e0,
        EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000e1,
        EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000e2,
};

/* Tag ids of EV_EVENT_TAG events of the Linux EFI stub (PCR 9). */
#define EVENTLOG_TAG_LINUX_INITRD UINT32_C(0x8f3b22ec)
#define EVENTLOG_TAG_LINUX_LOAD_OPTIONS UINT32_C(0x8f3b22ed)

struct eventlog_alg {
        uint16_t id;
        uint16_t size;
};

struct eventlog_digest {
        uint16_t alg;
        uint16_t size;
        const uint8_t *value; /* into the log's own copy of the bytes */
};

struct eventlog_event {
        size_t index;  /* 0 is the Spec ID header event */
        size_t offset; /* of the event's first byte in the log */
        size_t size;   /* bytes of the whole event */
        uint32_t pcr;
        uint32_t type;
        /* In log order. The header event has one SHA-1 digest; every other
         * event has exactly one per algorithm of the Spec ID event. */
        unsigned n_digests;
        struct eventlog_digest digests[EVENTLOG_MAX_ALGS];
        const uint8_t *data;
        size_t data_size;
};

struct eventlog {
        /* Spec ID Event03 */
        uint32_t platform_class;
        uint8_t spec_version_major;
        uint8_t spec_version_minor;
        uint8_t spec_errata;
        uint8_t uintn_size;
        unsigned n_algs;
        struct eventlog_alg algs[EVENTLOG_MAX_ALGS];
        const uint8_t *vendor_info;
        size_t vendor_info_size;

        struct eventlog_event *events;
        size_t n_events;

        uint8_t *raw; /* the log's bytes; events point into them */
        size_t raw_size;
};

/* -EBADMSG with a reason naming event, offset and field when the bytes are
 * not a well-formed crypto-agile log or exceed the bounds above. A SHA-1
 * (TPM 1.2) log has no Spec ID Event03 and is refused. The log must end
 * exactly after its last event. */
int eventlog_parse(const void *p, size_t n, struct eventlog **ret, struct errmsg *e);
/* Read a file (at most EVENTLOG_MAX_SIZE) and parse it. */
int eventlog_load(const char *path, struct eventlog **ret, struct errmsg *e);
struct eventlog *eventlog_free(struct eventlog *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct eventlog *, eventlog_free);

/* The event's digest of algorithm alg, or NULL. */
const struct eventlog_digest *eventlog_event_digest(const struct eventlog_event *ev, uint16_t alg);
/* "EV_EFI_ACTION", or NULL when the type is not known. */
const char *eventlog_type_to_string(uint32_t type);
/* "sha256", or NULL when the algorithm is not known. */
const char *eventlog_alg_to_string(uint16_t alg);
/* Digest size of a known algorithm, 0 for an unknown one. */
unsigned eventlog_alg_digest_size(uint16_t alg);

/* --- replay (eventlog-replay.c) ---------------------------------------- */

struct eventlog_bank {
        uint16_t alg;
        uint16_t size;
        /* False for an algorithm we cannot compute (values left zero). */
        bool replayed;
        uint8_t pcr[EVENTLOG_PCR_COUNT][EVENTLOG_MAX_DIGEST_SIZE];
};

struct eventlog_pcrs {
        unsigned n_banks;
        struct eventlog_bank banks[EVENTLOG_MAX_ALGS];
        uint32_t extended; /* bit i: some event extends PCR i */
        bool has_startup_locality;
        uint8_t startup_locality;
};

/* Whether an event extends its PCR: every type but EV_NO_ACTION. */
bool eventlog_event_extends(const struct eventlog_event *ev);
/* The locality of a StartupLocality event (EV_NO_ACTION in PCR 0 whose
 * data is "StartupLocality\0" + one byte), or -ENOENT for other events and
 * -EBADMSG for a malformed one. */
int eventlog_event_startup_locality(const struct eventlog_event *ev);

/* Replay every bank of the Spec ID event from the PCRs' reset values (zero;
 * all ones for PCRs 17-22; PCR 0's last byte = the locality of a
 * StartupLocality event). The SHA-256 bank is required: -EBADMSG when the
 * log has none, and for a StartupLocality event that is malformed, repeated
 * or comes after PCR 0 was extended. */
int eventlog_replay(const struct eventlog *l, struct eventlog_pcrs *ret, struct errmsg *e);
const struct eventlog_bank *eventlog_pcrs_bank(const struct eventlog_pcrs *p, uint16_t alg);

/* --- mismatch explanation (eventlog-replay.c) --------------------------- */

#define EVENTLOG_NONE SIZE_MAX

struct eventlog_pcr_explanation {
        enum pcr_verdict verdict; /* replayed value against the policy */
        uint8_t replayed[32];
        bool has_reported;
        uint8_t reported[32];
        /* The log does not reproduce the reported (quoted) value: the log
         * is incomplete or was altered, or the PCR was extended after the
         * log was taken. */
        bool reported_mismatch;
        /* Indices (into l->events) of the events that extend this PCR,
         * filled for enforced and warn-only mismatches and for
         * reported_mismatch. */
        size_t *events;
        size_t n_events;
        /* Where the log's running value of this PCR equals the policy's
         * (the reported) value: right after event index *_after, or at the
         * reset value (*_at_start). Then the events after that point are
         * what the policy (the quote) does not contain. EVENTLOG_NONE and
         * false when no prefix of the log produces the value: an event
         * differs from what the policy was made from, or is missing. */
        size_t expected_after;
        bool expected_at_start;
        size_t reported_after;
        bool reported_at_start;
};

struct eventlog_explanation {
        struct eventlog_pcr_explanation pcr[EVENTLOG_PCR_COUNT];
        unsigned n_enforced_mismatch;
        unsigned n_warn_mismatch;
        unsigned n_reported_mismatch;
};

/* Replay the SHA-256 bank and compare it with policy p and, when reported
 * is not NULL, with the reported PCR values (PCRs 0-23, SHA-256). */
int eventlog_explain(const struct eventlog *l, const struct policy *p, const uint8_t (*reported)[32],
                     struct eventlog_explanation **ret, struct errmsg *e);
struct eventlog_explanation *eventlog_explanation_free(struct eventlog_explanation *x);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct eventlog_explanation *, eventlog_explanation_free);

/* --- decoding for people (eventlog-describe.c) -------------------------- */

/* One line (no newline, printable UTF-8, control characters escaped)
 * describing the event's data: the variable and its GUID, the image's
 * length and device path, the string of an action... Malformed data is
 * described as such; only -ENOMEM is an error. */
int eventlog_event_describe(const struct eventlog_event *ev, char **ret);

enum eventlog_data_check {
        EVENTLOG_DATA_NOT_CHECKED, /* the digest is of something not in the log */
        EVENTLOG_DATA_MATCHES,
        EVENTLOG_DATA_DIFFERS,
};
/* For event types whose SHA-256 digest is the hash of the event data (or,
 * for EV_EFI_VARIABLE_BOOT, of the variable's data), whether it is. */
enum eventlog_data_check eventlog_event_check_data(const struct eventlog_event *ev);
