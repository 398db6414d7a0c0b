/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* PE/COFF images (Microsoft PE Format specification): the DOS header, the
 * "PE\0\0" signature, the COFF file header, the optional header (PE32 and
 * PE32+), its data directories and the section table.
 *
 * pe_parse() is pure (bytes in, struct out, no I/O) and validates every
 * offset, size and count before anything uses it; a refusal is -EBADMSG
 * with a reason naming the field and the values. What it accepts is
 * self-consistent, so that users (Authenticode, UKI tools, PCR prediction)
 * can index the buffer with the parsed offsets without further checks:
 *  - headers, section table and every section's raw data lie inside the
 *    file, raw data does not overlap the headers or another section's;
 *  - sections are in ascending, non-overlapping virtual address order
 *    inside SizeOfImage and above the headers;
 *  - the attribute certificate table (data directory 4, a file offset)
 *    lies inside the file, after all section data;
 *  - SizeOfOptionalHeader is exactly what the magic and
 *    NumberOfRvaAndSizes imply (as EDK2's loader requires).
 * The parsed struct borrows the buffer: keep it alive and unchanged. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

/* The Windows loader's limit; nothing real comes close. */
#define PE_MAX_SECTIONS 96u
#define PE_MAX_DATA_DIRECTORIES 16u
/* All offsets in a PE file are 32-bit. */
#define PE_MAX_FILE_SIZE ((size_t) UINT32_MAX)

#define PE_MAGIC_PE32 UINT16_C(0x10b)
#define PE_MAGIC_PE32PLUS UINT16_C(0x20b)

#define PE_MACHINE_I386 UINT16_C(0x14c)
#define PE_MACHINE_AMD64 UINT16_C(0x8664)
#define PE_MACHINE_ARM64 UINT16_C(0xaa64)

/* Data directory indices. */
enum {
        PE_DIR_EXPORT = 0,
        PE_DIR_IMPORT = 1,
        PE_DIR_RESOURCE = 2,
        PE_DIR_EXCEPTION = 3,
        PE_DIR_SECURITY = 4, /* attribute certificate table: a file offset, not an RVA */
        PE_DIR_BASERELOC = 5,
        PE_DIR_DEBUG = 6,
};

/* Section characteristics. */
#define PE_SCN_CNT_CODE UINT32_C(0x00000020)
#define PE_SCN_CNT_INITIALIZED_DATA UINT32_C(0x00000040)
#define PE_SCN_CNT_UNINITIALIZED_DATA UINT32_C(0x00000080)
#define PE_SCN_MEM_DISCARDABLE UINT32_C(0x02000000)
#define PE_SCN_MEM_EXECUTE UINT32_C(0x20000000)
#define PE_SCN_MEM_READ UINT32_C(0x40000000)
#define PE_SCN_MEM_WRITE UINT32_C(0x80000000)

/* Sizes and offsets of the on-disk structures. */
#define PE_DOS_HEADER_SIZE 64u
#define PE_COFF_HEADER_SIZE 20u /* after the 4-byte signature */
#define PE_SECTION_HEADER_SIZE 40u
#define PE_DATA_DIRECTORY_SIZE 8u
#define PE_OPT_CHECKSUM_OFFSET 64u /* same in PE32 and PE32+ */
#define PE32_OPT_DIRS_OFFSET 96u
#define PE32PLUS_OPT_DIRS_OFFSET 112u

struct pe_data_directory {
        uint32_t virtual_address; /* for PE_DIR_SECURITY: a file offset */
        uint32_t size;
};

struct pe_section {
        char name[9];        /* the 8-byte field, NUL-terminated; "/N" long names are not resolved */
        uint8_t raw_name[8]; /* the field as it is in the file */
        uint32_t virtual_size;
        uint32_t virtual_address;
        uint32_t size_of_raw_data;
        uint32_t pointer_to_raw_data;
        uint32_t characteristics;
        size_t header_offset; /* file offset of this section's header */
};

struct pe_image {
        const uint8_t *data; /* borrowed */
        size_t size;

        uint32_t pe_offset; /* e_lfanew */
        /* COFF file header */
        uint16_t machine;
        uint16_t n_sections;
        uint32_t time_date_stamp;
        uint32_t pointer_to_symbol_table;
        uint32_t number_of_symbols;
        uint16_t size_of_optional_header;
        uint16_t characteristics;
        /* optional header */
        uint16_t magic;
        uint64_t image_base;
        uint32_t address_of_entry_point;
        uint32_t section_alignment;
        uint32_t file_alignment;
        uint32_t size_of_image;
        uint32_t size_of_headers;
        uint32_t checksum;
        uint16_t subsystem;
        uint32_t n_data_directories; /* NumberOfRvaAndSizes, <= 16 */
        struct pe_data_directory dirs[PE_MAX_DATA_DIRECTORIES];

        /* File offsets of fields that tools rewrite or skip. */
        size_t coff_offset;          /* COFF file header */
        size_t optional_offset;      /* optional header */
        size_t checksum_offset;      /* OptionalHeader.CheckSum */
        size_t dirs_offset;          /* DataDirectory[0] */
        size_t section_table_offset; /* first section header */
        size_t section_table_end;    /* just after the last section header */

        /* End of the last section's raw data (at least SizeOfHeaders). */
        size_t sections_end;
        /* Attribute certificate table (data directory 4), if any. */
        bool has_certificate_table;
        size_t certificate_table_offset;
        size_t certificate_table_size;

        struct pe_section sections[PE_MAX_SECTIONS];
};

/* Parse and validate a PE/COFF image. ret is untouched on failure. */
int pe_parse(const void *data, size_t size, struct pe_image *ret, struct errmsg *e);

/* The first section whose name field is exactly `name` (up to 8 bytes,
 * NUL-padded), or NULL. */
const struct pe_section *pe_find_section(const struct pe_image *pe, const char *name);

/* The section's bytes as the loader maps them: min(VirtualSize,
 * SizeOfRawData) bytes from the file (returned in *ret_data and *ret_file_size),
 * followed by zeros up to VirtualSize (*ret_virtual_size). A VirtualSize of
 * 0 means SizeOfRawData (as in object files). */
void pe_section_content(const struct pe_image *pe, const struct pe_section *s, const uint8_t **ret_data,
                        size_t *ret_file_size, size_t *ret_virtual_size);

/* The PE checksum (the algorithm of imagehlp's CheckSumMappedFile): 16-bit
 * one's complement sum of the file with the CheckSum field counted as 0,
 * plus the file size. checksum_offset is where the field is. */
uint32_t pe_checksum(const void *data, size_t size, size_t checksum_offset);

const char *pe_machine_to_string(uint16_t machine);
const char *pe_data_directory_name(unsigned index);

static inline uint16_t pe_read16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}
static inline uint32_t pe_read32(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static inline uint64_t pe_read64(const uint8_t *p) {
        return (uint64_t) pe_read32(p) | ((uint64_t) pe_read32(p + 4) << 32);
}
static inline void pe_write16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static inline void pe_write32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}
