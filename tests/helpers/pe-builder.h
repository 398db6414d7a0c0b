/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Test helper: small, valid PE/COFF images built from a description, so
 * that tests can break exactly one field at a time. The canonical layout
 * (pe_builder_init): PE32+ x86-64 EFI application, e_lfanew 0x40, 16 data
 * directories, FileAlignment 0x200, SectionAlignment 0x1000, SizeOfHeaders
 * 0x400; section i is ".s<i>" at virtual address 0x1000 * (i + 1),
 * VirtualSize 0x180, raw data 0x200 bytes at 0x400 + 0x200 * i. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PE_BUILDER_MAX_SECTIONS 16

struct pe_builder_section {
        char name[9];
        uint32_t virtual_size;
        uint32_t virtual_address;
        uint32_t size_of_raw_data;
        uint32_t pointer_to_raw_data;
        uint32_t characteristics;
        uint8_t fill; /* content: (fill + 7 * offset) & 0xff */
};

struct pe_builder {
        bool pe32; /* PE32 instead of PE32+ */
        uint32_t pe_offset;
        uint32_t n_dirs;
        uint32_t size_of_headers;
        uint32_t size_of_image; /* 0: computed from the sections */
        uint32_t file_alignment;
        uint32_t section_alignment;
        uint16_t subsystem;
        uint32_t pointer_to_symbol_table;
        uint32_t number_of_symbols;
        unsigned n_sections;
        struct pe_builder_section s[PE_BUILDER_MAX_SECTIONS];
        size_t trailing;      /* bytes after the last section's data */
        uint8_t trailing_fill;
        const char *sdmagic;  /* if set, an extra last section ".sdmagic" with this text */
};

void pe_builder_init(struct pe_builder *b, unsigned n_sections);
/* Build into a new buffer; 0 or -ENOMEM/-EINVAL. */
int pe_builder_build(const struct pe_builder *b, uint8_t **ret, size_t *ret_size);

/* File offsets in an image built with pe_offset and the given magic. */
static inline size_t pe_builder_coff(const struct pe_builder *b) {
        return b->pe_offset + 4;
}
static inline size_t pe_builder_opt(const struct pe_builder *b) {
        return b->pe_offset + 24;
}
static inline size_t pe_builder_dirs(const struct pe_builder *b) {
        return pe_builder_opt(b) + (b->pe32 ? 96 : 112);
}
static inline size_t pe_builder_section_table(const struct pe_builder *b) {
        return pe_builder_dirs(b) + 8 * (size_t) b->n_dirs;
}
