/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Every PCR (SHA-256 bank) that booting a UKI directly from OVMF (EDK2,
 * Debian bookworm's ovmf) measures up to the kernel's start, as observed in
 * the event logs of real boots (docs/MEASURED-BOOT.md; checked end to end
 * by tests/vm/test-uki-boot.sh):
 *
 *  PCR 4  EV_EFI_ACTION "Calling EFI Application from Boot Option"
 *         EV_SEPARATOR 00000000 (PCRs 0-7 get one at the first ReadyToBoot)
 *         EV_EFI_BOOT_SERVICES_APPLICATION: Authenticode SHA-256 of the UKI
 *         EV_EFI_BOOT_SERVICES_APPLICATION: Authenticode SHA-256 of the
 *           kernel in .linux (systemd-stub 252 starts it with LoadImage, so
 *           the firmware measures it like any boot application) -- but not
 *           with Secure Boot on: then the stub overrides the firmware's
 *           Security2 protocol, whose handler is what measures images, to
 *           admit its own kernel, and PCR 4 ends with the UKI (recorded in
 *           tests/data/eventlog/ovmf-uki-secureboot.bin)
 *  PCR 9  (the Linux EFI stub, 6.1) EV_EVENT_TAG 0x8f3b22ed
 *           "LOADED_IMAGE::LoadOptions": SHA-256 of the load options the
 *           stub passes, i.e. .cmdline as UTF-16LE up to and with its NUL
 *         EV_EVENT_TAG 0x8f3b22ec "Linux initrd": SHA-256 of .initrd
 *  PCR 11 systemd-stub 252: section names and contents (pcr11.h), then the
 *         boot phases of systemd-pcrphase, if asked for
 *  PCR 12 systemd-stub 252 measures credentials and a command line that
 *         overrides .cmdline; a UKI started by the firmware's removable-media
 *         boot option has neither: stays zero
 *  PCR 13 systemd-stub 252 measures system extension images: none, zero
 *
 * Not predicted: PCRs 0-3, 5-7 (firmware, its configuration, the boot
 * variables, the GPT, Secure Boot state: they depend on the platform, not
 * on the image), 8 and 10 (IMA, the kernel's runtime), 14-23.
 *
 * Pure: no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "pcr11.h"
#include "pe.h"

#define BOOTPCR_COUNT 24u
#define BOOTPCR_MAX_EVENTS (8u + PCR11_MAX_EVENTS)

/* What EDK2 measures into PCR 4 before the boot application. */
#define BOOTPCR_CALLING_BOOT_OPTION "Calling EFI Application from Boot Option"
#define BOOTPCR_RETURNING_BOOT_OPTION "Returning from EFI Application from Boot Option"

struct bootpcr_event {
        unsigned pcr;
        uint32_t type; /* EV_* of eventlog.h */
        char what[64]; /* for people: "UKI", ".linux", "Linux initrd", ... */
        uint64_t size; /* bytes measured */
        uint8_t digest[32];
};

struct bootpcr_prediction {
        size_t n_events;
        struct bootpcr_event events[BOOTPCR_MAX_EVENTS];
        uint32_t predicted; /* bit i: PCR i is predicted */
        uint8_t pcr[BOOTPCR_COUNT][32];
};

struct bootpcr_options {
        /* Boot options the firmware tried and returned from before it
         * started the UKI (each adds "Returning ..." and "Calling ..." to
         * PCR 4): 0 when the UKI is the first boot option. */
        unsigned failed_boot_attempts;
        /* Secure Boot is on: no PCR 4 event for the kernel. */
        bool secure_boot;
        const struct pcr11_phases *phases; /* PCR 11; NULL: none */
};

/* Predict PCRs 4, 9, 11, 12 and 13 of booting `uki`. -EBADMSG when the
 * image is not something systemd-stub 252 boots (no .linux, a .linux that
 * is not a PE image, a .cmdline that is not ASCII). */
int bootpcr_predict(const struct pe_image *uki, const struct bootpcr_options *opts, struct bootpcr_prediction *ret,
                    struct errmsg *e);

/* The load options systemd-stub 252 hands the kernel for a .cmdline: the
 * bytes up to the first NUL, widened to UTF-16LE, plus a UTF-16 NUL. *ret
 * is a new buffer of *ret_size bytes. -EBADMSG for non-ASCII bytes (the
 * stub's conversion of those is not modelled). */
int bootpcr_load_options(const uint8_t *cmdline, size_t size, uint8_t **ret, size_t *ret_size, struct errmsg *e);
