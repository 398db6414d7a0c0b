/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* PCR 11 (SHA-256 bank) of a UKI booted by systemd-stub 252, optionally
 * after boot phases measured by systemd-pcrphase:
 *
 *  - systemd-stub 252 walks its section list in this fixed order:
 *      .linux .osrel .cmdline .initrd .splash .dtb .pcrsig .pcrpkey
 *    skipping .pcrsig (it signs the result, so it cannot be an input) and
 *    sections the image lacks, and for each extends PCR 11 with
 *      SHA-256(section name including its trailing NUL), then
 *      SHA-256(the section as loaded: VirtualSize bytes).
 *    It finds a section by comparing the first strlen(name) bytes of each
 *    section header's name, the last matching header winning; a
 *    VirtualSize of 0 counts as absent. .uname (systemd >= 253) and .sbat
 *    (>= 254) are not measured by 252.
 *  - systemd-pcrphase extends PCR 11 with SHA-256 of each phase word
 *    (without a NUL): "enter-initrd" (initrd start), "leave-initrd"
 *    (switch-root), "sysinit", "ready", "shutdown", "final".
 * PCR 11 starts at zero. This is what `systemd-measure calculate` (252)
 * computes from the section files, with --phase=enter-initrd:leave-initrd
 * naming a phase path the same way.
 *
 * Pure: no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "pe.h"

#define PCR11_INDEX 11u
/* The systemd-stub version whose behaviour this module models. */
#define PCR11_STUB_VERSION 252u
#define PCR11_MAX_SECTIONS 8u /* measured by stub 252: 7, plus room */
#define PCR11_MAX_PHASES 16u
#define PCR11_PHASE_MAX_LEN 31u
#define PCR11_MAX_EVENTS (2u * PCR11_MAX_SECTIONS + PCR11_MAX_PHASES)

/* A section as the stub sees it: `file_size` bytes of `data`, then zeros
 * up to `size` (the loader zero-fills VirtualSize beyond SizeOfRawData). */
struct pcr11_section {
        const char *name;
        const uint8_t *data;
        size_t file_size;
        size_t size;
};

struct pcr11_phases {
        size_t n;
        char word[PCR11_MAX_PHASES][PCR11_PHASE_MAX_LEN + 1];
};

enum pcr11_event_kind {
        PCR11_EVENT_SECTION_NAME,
        PCR11_EVENT_SECTION_DATA,
        PCR11_EVENT_PHASE,
};

/* One extension of PCR 11, as an event log would record it. */
struct pcr11_event {
        enum pcr11_event_kind kind;
        char what[PCR11_PHASE_MAX_LEN + 1]; /* section name or phase word */
        uint64_t size;                      /* bytes measured */
        uint8_t digest[32];                 /* what was extended */
        uint8_t pcr[32];                    /* PCR 11 afterwards */
};

struct pcr11_prediction {
        size_t n_events;
        struct pcr11_event events[PCR11_MAX_EVENTS];
        uint8_t value[32];
};

/* The stub's section order (index 0 = measured first); *ret_measured tells
 * whether the stub measures that section. NULL past the end. */
const char *pcr11_stub_section(size_t i, bool *ret_measured);

/* Whether the stub (252) measures a section of this exact name. */
bool pcr11_section_measured(const char *name);

/* The sections of a UKI that systemd-stub 252 measures, in its order,
 * found the way the stub finds them. ret has room for PCR11_MAX_SECTIONS.
 * -EBADMSG when there is no .linux (the stub refuses to boot such an
 * image). The data pointers borrow the image's buffer. */
int pcr11_uki_sections(const struct pe_image *uki, struct pcr11_section *ret, size_t *ret_n, struct errmsg *e);

/* Parse a phase path in systemd-measure's syntax: words separated by ':',
 * empty words ignored ("" is the path before any phase). Only the words
 * systemd-pcrphase uses are accepted: a typo would silently produce a
 * policy that no boot can meet. */
int pcr11_parse_phases(const char *spec, struct pcr11_phases *ret, struct errmsg *e);
/* Back to "enter-initrd:leave-initrd" (or "" when empty). */
void pcr11_phases_to_string(const struct pcr11_phases *p, char *buf, size_t size);

/* Predict PCR 11 after measuring `sections` (in the given order: use
 * pcr11_uki_sections() for the stub's) and then `phases` (may be NULL). */
int pcr11_predict(const struct pcr11_section *sections, size_t n_sections, const struct pcr11_phases *phases,
                  struct pcr11_prediction *ret, struct errmsg *e);

/* pcr = SHA-256(pcr || digest). */
int pcr_extend_sha256(uint8_t pcr[32], const uint8_t digest[32]);
