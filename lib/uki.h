/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Unified kernel images (UKIs): systemd-stub (a PE/COFF EFI application)
 * with the kernel, initrd, command line, os-release and friends as extra
 * PE sections, which the stub finds by name, measures into PCR 11 and
 * boots.
 *
 * uki_assemble() does what ukify does (bookworm has no ukify): the new
 * sections are appended after the stub's last section, in the file and in
 * memory, each at a page-aligned virtual address (a multiple of the stub's
 * SectionAlignment), raw data padded to FileAlignment, with new section
 * headers in the free room after the stub's section table; NumberOfSections,
 * SizeOfImage, SizeOfCode/SizeOfInitializedData and the PE checksum are
 * updated. The stub's certificate table (a signature of the stub alone,
 * void once sections are added) and its COFF symbol table (unused by
 * firmware) are dropped; any other data after the stub's sections is
 * refused rather than guessed about. The output is deterministic: same
 * inputs, same bytes. Pure: no I/O. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "pe.h"

#define UKI_DEFAULT_STUB "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

/* Sections uki_assemble() adds: what systemd-stub 252 reads, plus .uname
 * (read by systemd >= 253, harmless before). */
#define UKI_SECTION_LINUX ".linux"
#define UKI_SECTION_OSREL ".osrel"
#define UKI_SECTION_CMDLINE ".cmdline"
#define UKI_SECTION_INITRD ".initrd"
#define UKI_SECTION_SPLASH ".splash"
#define UKI_SECTION_DTB ".dtb"
#define UKI_SECTION_UNAME ".uname"
#define UKI_SECTION_PCRPKEY ".pcrpkey"

#define UKI_MAX_ADDED_SECTIONS 8u

struct uki_input {
        const char *name; /* one of the UKI_SECTION_* names */
        const void *data;
        size_t size; /* > 0: systemd-stub ignores empty sections */
};

/* Whether `name` is a section uki_assemble() accepts. */
bool uki_section_name_valid(const char *name);

/* Build a UKI from a parsed stub and the sections (each name at most once,
 * .linux required). *ret is a new buffer of *ret_size bytes. Refusals are
 * -EBADMSG (stub unsuitable: no room for the section headers, unknown
 * trailing data, a section name already taken), -EINVAL (bad inputs) or
 * -EFBIG (the image would exceed 4 GiB), with a reason. */
int uki_assemble(const struct pe_image *stub, const struct uki_input *inputs, size_t n_inputs, uint8_t **ret,
                 size_t *ret_size, struct errmsg *e);

/* The systemd-stub version from the ".sdmagic" section
 * ("#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####"): the version
 * string ("252.39-1~deb12u2") into buf, its major number into *ret_major.
 * -ENOENT when the image has no such section (not a systemd-stub),
 * -EBADMSG when it is malformed. */
int uki_stub_version(const struct pe_image *pe, char *buf, size_t size, unsigned *ret_major, struct errmsg *e);
