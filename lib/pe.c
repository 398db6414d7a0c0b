/* SPDX-License-Identifier: Apache-2.0 */
#include "pe.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

#define REFUSE(e, ...) errmsg_set(e, EBADMSG, __VA_ARGS__)

static bool is_pow2(uint32_t v) {
        return v && !(v & (v - 1));
}

/* Virtual extent of a section: what the loader maps. */
static uint32_t section_virtual_extent(const struct pe_section *s) {
        return s->virtual_size ? s->virtual_size : s->size_of_raw_data;
}

static int parse_section_table(struct pe_image *pe, struct errmsg *e) {
        const uint8_t *d = pe->data;
        unsigned order[PE_MAX_SECTIONS];
        size_t n = 0;

        for (unsigned i = 0; i < pe->n_sections; i++) {
                struct pe_section *s = &pe->sections[i];
                const uint8_t *h = d + pe->section_table_offset + (size_t) i * PE_SECTION_HEADER_SIZE;
                uint64_t raw_end, virt_end;

                memcpy(s->raw_name, h, 8);
                memcpy(s->name, h, 8);
                s->name[8] = 0;
                s->virtual_size = pe_read32(h + 8);
                s->virtual_address = pe_read32(h + 12);
                s->size_of_raw_data = pe_read32(h + 16);
                s->pointer_to_raw_data = pe_read32(h + 20);
                s->characteristics = pe_read32(h + 36);
                s->header_offset = (size_t) (h - d);

                /* Printable names only, so that reasons and listings can quote them. */
                for (unsigned k = 0; k < 8 && s->name[k]; k++)
                        if (s->name[k] < 0x20 || s->name[k] > 0x7e)
                                return REFUSE(e, "section %u: name contains byte 0x%02x", i,
                                              (uint8_t) s->name[k]);

                if (s->size_of_raw_data > 0) {
                        raw_end = (uint64_t) s->pointer_to_raw_data + s->size_of_raw_data;
                        if (raw_end > pe->size)
                                return REFUSE(e,
                                              "section %u (%s): raw data at 0x%x, size 0x%x ends beyond the "
                                              "end of the file (size 0x%zx)",
                                              i, s->name, s->pointer_to_raw_data, s->size_of_raw_data,
                                              pe->size);
                        if (s->pointer_to_raw_data < pe->size_of_headers)
                                return REFUSE(e,
                                              "section %u (%s): raw data at 0x%x overlaps the headers "
                                              "(SizeOfHeaders 0x%x)",
                                              i, s->name, s->pointer_to_raw_data, pe->size_of_headers);
                        if (raw_end > pe->sections_end)
                                pe->sections_end = (size_t) raw_end;
                        order[n++] = i;
                }

                virt_end = (uint64_t) s->virtual_address + section_virtual_extent(s);
                if (s->virtual_address < pe->size_of_headers)
                        return REFUSE(e,
                                      "section %u (%s): virtual address 0x%x lies inside the headers "
                                      "(SizeOfHeaders 0x%x)",
                                      i, s->name, s->virtual_address, pe->size_of_headers);
                if (virt_end > pe->size_of_image)
                        return REFUSE(e,
                                      "section %u (%s): virtual range 0x%x-0x%llx ends beyond SizeOfImage "
                                      "0x%x",
                                      i, s->name, s->virtual_address, (unsigned long long) virt_end,
                                      pe->size_of_image);
                if (i > 0) {
                        const struct pe_section *p = &pe->sections[i - 1];
                        uint64_t prev_end = (uint64_t) p->virtual_address + section_virtual_extent(p);
                        if (s->virtual_address < prev_end)
                                return REFUSE(e,
                                              "section %u (%s) at virtual address 0x%x overlaps or precedes "
                                              "section %u (%s), which ends at 0x%llx",
                                              i, s->name, s->virtual_address, i - 1, p->name,
                                              (unsigned long long) prev_end);
                }
        }

        /* Raw data ranges must not overlap: sort by file offset (insertion
         * sort, n <= 96) and compare neighbours. */
        for (size_t i = 1; i < n; i++) {
                unsigned v = order[i];
                size_t j = i;
                while (j > 0 && pe->sections[order[j - 1]].pointer_to_raw_data >
                                        pe->sections[v].pointer_to_raw_data) {
                        order[j] = order[j - 1];
                        j--;
                }
                order[j] = v;
        }
        for (size_t i = 1; i < n; i++) {
                const struct pe_section *a = &pe->sections[order[i - 1]], *b = &pe->sections[order[i]];
                if ((uint64_t) a->pointer_to_raw_data + a->size_of_raw_data > b->pointer_to_raw_data)
                        return REFUSE(e,
                                      "section %u (%s): raw data at 0x%x-0x%llx overlaps section %u (%s) "
                                      "at 0x%x",
                                      order[i - 1], a->name, a->pointer_to_raw_data,
                                      (unsigned long long) a->pointer_to_raw_data + a->size_of_raw_data,
                                      order[i], b->name, b->pointer_to_raw_data);
        }
        return 0;
}

static int parse_data_directories(struct pe_image *pe, struct errmsg *e) {
        for (unsigned i = 0; i < pe->n_data_directories; i++) {
                const uint8_t *p = pe->data + pe->dirs_offset + (size_t) i * PE_DATA_DIRECTORY_SIZE;
                pe->dirs[i].virtual_address = pe_read32(p);
                pe->dirs[i].size = pe_read32(p + 4);
        }
        for (unsigned i = 0; i < pe->n_data_directories; i++) {
                const struct pe_data_directory *d = &pe->dirs[i];
                uint64_t end = (uint64_t) d->virtual_address + d->size;

                if (d->size == 0)
                        continue;
                if (i == PE_DIR_SECURITY) {
                        /* A file offset: the table follows all section data. */
                        if (end > pe->size)
                                return REFUSE(e,
                                              "certificate table at file offset 0x%x, size 0x%x ends beyond "
                                              "the end of the file (size 0x%zx)",
                                              d->virtual_address, d->size, pe->size);
                        if (d->virtual_address < pe->sections_end)
                                return REFUSE(e,
                                              "certificate table at file offset 0x%x overlaps the headers or "
                                              "section data (which end at 0x%zx)",
                                              d->virtual_address, pe->sections_end);
                        pe->has_certificate_table = true;
                        pe->certificate_table_offset = d->virtual_address;
                        pe->certificate_table_size = d->size;
                        continue;
                }
                if (end > pe->size_of_image)
                        return REFUSE(e,
                                      "data directory %u (%s): range 0x%x+0x%x ends beyond SizeOfImage 0x%x", i,
                                      pe_data_directory_name(i), d->virtual_address, d->size,
                                      pe->size_of_image);
        }
        return 0;
}

int pe_parse(const void *data, size_t size, struct pe_image *ret, struct errmsg *e) {
        _cleanup_free_ struct pe_image *pe = NULL;
        const uint8_t *d = data;
        size_t opt_dirs, opt_size_expected;
        uint64_t table_end;
        const uint8_t *o;
        int r;

        if (!data && size > 0)
                return -EINVAL;
        if (size > PE_MAX_FILE_SIZE)
                return REFUSE(e, "file of %zu bytes is larger than a PE image can be (4 GiB)", size);
        if (size < PE_DOS_HEADER_SIZE)
                return REFUSE(e, "truncated: %zu bytes, too short for the DOS header (64 bytes)", size);
        if (d[0] != 'M' || d[1] != 'Z')
                return REFUSE(e, "bad DOS header magic 0x%02x%02x (expected \"MZ\")", d[0], d[1]);

        /* The struct is large (the section table): build it on the heap. */
        pe = calloc(1, sizeof(*pe));
        if (!pe)
                return -ENOMEM;
        pe->data = d;
        pe->size = size;

        pe->pe_offset = pe_read32(d + 0x3c);
        if (pe->pe_offset < PE_DOS_HEADER_SIZE)
                return REFUSE(e, "e_lfanew 0x%x points into the DOS header", pe->pe_offset);
        if ((uint64_t) pe->pe_offset + 4 + PE_COFF_HEADER_SIZE > size)
                return REFUSE(e,
                              "truncated: e_lfanew 0x%x, but the PE signature and COFF header end beyond the "
                              "end of the file (size 0x%zx)",
                              pe->pe_offset, size);
        if (memcmp(d + pe->pe_offset, "PE\0\0", 4) != 0)
                return REFUSE(e, "bad PE signature %02x %02x %02x %02x at 0x%x (expected \"PE\\0\\0\")",
                              d[pe->pe_offset], d[pe->pe_offset + 1], d[pe->pe_offset + 2],
                              d[pe->pe_offset + 3], pe->pe_offset);

        pe->coff_offset = pe->pe_offset + 4;
        o = d + pe->coff_offset;
        pe->machine = pe_read16(o);
        pe->n_sections = pe_read16(o + 2);
        pe->time_date_stamp = pe_read32(o + 4);
        pe->pointer_to_symbol_table = pe_read32(o + 8);
        pe->number_of_symbols = pe_read32(o + 12);
        pe->size_of_optional_header = pe_read16(o + 16);
        pe->characteristics = pe_read16(o + 18);

        if (pe->n_sections == 0)
                return REFUSE(e, "NumberOfSections is 0");
        if (pe->n_sections > PE_MAX_SECTIONS)
                return REFUSE(e, "NumberOfSections %u is absurd (at most %u)", pe->n_sections, PE_MAX_SECTIONS);

        pe->optional_offset = pe->coff_offset + PE_COFF_HEADER_SIZE;
        if (pe->size_of_optional_header < 2)
                return REFUSE(e, "SizeOfOptionalHeader %u is too small for the magic field",
                              pe->size_of_optional_header);
        if (pe->optional_offset + 2 > size)
                return REFUSE(e, "truncated: the optional header at 0x%zx ends beyond the end of the file "
                                 "(size 0x%zx)",
                              pe->optional_offset, size);
        o = d + pe->optional_offset;
        pe->magic = pe_read16(o);
        if (pe->magic == PE_MAGIC_PE32)
                opt_dirs = PE32_OPT_DIRS_OFFSET;
        else if (pe->magic == PE_MAGIC_PE32PLUS)
                opt_dirs = PE32PLUS_OPT_DIRS_OFFSET;
        else
                return REFUSE(e, "bad optional header magic 0x%x (expected 0x10b PE32 or 0x20b PE32+)",
                              pe->magic);
        if (pe->size_of_optional_header < opt_dirs)
                return REFUSE(e, "SizeOfOptionalHeader %u is too small for a %s optional header (at least %zu)",
                              pe->size_of_optional_header, pe->magic == PE_MAGIC_PE32 ? "PE32" : "PE32+",
                              opt_dirs);
        if (pe->optional_offset + pe->size_of_optional_header > size)
                return REFUSE(e,
                              "truncated: the optional header at 0x%zx, size %u, ends beyond the end of the "
                              "file (size 0x%zx)",
                              pe->optional_offset, pe->size_of_optional_header, size);

        pe->address_of_entry_point = pe_read32(o + 16);
        if (pe->magic == PE_MAGIC_PE32)
                pe->image_base = pe_read32(o + 28);
        else
                pe->image_base = pe_read64(o + 24);
        pe->section_alignment = pe_read32(o + 32);
        pe->file_alignment = pe_read32(o + 36);
        pe->size_of_image = pe_read32(o + 56);
        pe->size_of_headers = pe_read32(o + 60);
        pe->checksum = pe_read32(o + PE_OPT_CHECKSUM_OFFSET);
        pe->subsystem = pe_read16(o + 68);
        pe->n_data_directories = pe_read32(o + opt_dirs - 4);
        pe->checksum_offset = pe->optional_offset + PE_OPT_CHECKSUM_OFFSET;
        pe->dirs_offset = pe->optional_offset + opt_dirs;

        if (pe->n_data_directories > PE_MAX_DATA_DIRECTORIES)
                return REFUSE(e, "NumberOfRvaAndSizes %u is absurd (at most %u)", pe->n_data_directories,
                              PE_MAX_DATA_DIRECTORIES);
        opt_size_expected = opt_dirs + (size_t) pe->n_data_directories * PE_DATA_DIRECTORY_SIZE;
        if (pe->size_of_optional_header != opt_size_expected)
                return REFUSE(e,
                              "SizeOfOptionalHeader %u does not match NumberOfRvaAndSizes %u (expected %zu)",
                              pe->size_of_optional_header, pe->n_data_directories, opt_size_expected);
        if (!is_pow2(pe->file_alignment) || pe->file_alignment > 0x10000)
                return REFUSE(e, "FileAlignment 0x%x is not a power of two up to 64 KiB", pe->file_alignment);
        if (!is_pow2(pe->section_alignment) || pe->section_alignment < pe->file_alignment)
                return REFUSE(e, "SectionAlignment 0x%x is not a power of two at least FileAlignment 0x%x",
                              pe->section_alignment, pe->file_alignment);
        /* SizeOfImage "must be a multiple of SectionAlignment", but binutils
         * does not always make it one (systemd-stub 252 on Debian is not), and
         * loaders do not insist: sections must merely fit inside it. */

        pe->section_table_offset = pe->optional_offset + pe->size_of_optional_header;
        table_end = (uint64_t) pe->section_table_offset + (uint64_t) pe->n_sections * PE_SECTION_HEADER_SIZE;
        if (table_end > size)
                return REFUSE(e,
                              "truncated: the section table (%u sections at 0x%zx) ends at 0x%llx, beyond the "
                              "end of the file (size 0x%zx)",
                              pe->n_sections, pe->section_table_offset, (unsigned long long) table_end, size);
        pe->section_table_end = (size_t) table_end;
        if (pe->size_of_headers < table_end)
                return REFUSE(e, "SizeOfHeaders 0x%x is smaller than the headers and section table (0x%llx)",
                              pe->size_of_headers, (unsigned long long) table_end);
        if (pe->size_of_headers > size)
                return REFUSE(e, "truncated: SizeOfHeaders 0x%x is beyond the end of the file (size 0x%zx)",
                              pe->size_of_headers, size);
        if (pe->size_of_headers > pe->size_of_image)
                return REFUSE(e, "SizeOfHeaders 0x%x is larger than SizeOfImage 0x%x", pe->size_of_headers,
                              pe->size_of_image);
        pe->sections_end = pe->size_of_headers;

        r = parse_section_table(pe, e);
        if (r < 0)
                return r;
        r = parse_data_directories(pe, e);
        if (r < 0)
                return r;

        memcpy(ret, pe, sizeof(*pe));
        return 0;
}

const struct pe_section *pe_find_section(const struct pe_image *pe, const char *name) {
        uint8_t want[8] = {};
        size_t n = strlen(name);

        if (n > 8)
                return NULL;
        memcpy(want, name, n);
        for (unsigned i = 0; i < pe->n_sections; i++)
                if (memcmp(pe->sections[i].raw_name, want, 8) == 0)
                        return &pe->sections[i];
        return NULL;
}

void pe_section_content(const struct pe_image *pe, const struct pe_section *s, const uint8_t **ret_data,
                        size_t *ret_file_size, size_t *ret_virtual_size) {
        size_t vsize = s->virtual_size ? s->virtual_size : s->size_of_raw_data;
        size_t fsize = vsize < s->size_of_raw_data ? vsize : s->size_of_raw_data;

        *ret_data = fsize > 0 ? pe->data + s->pointer_to_raw_data : pe->data;
        *ret_file_size = fsize;
        *ret_virtual_size = vsize;
}

uint32_t pe_checksum(const void *data, size_t size, size_t checksum_offset) {
        const uint8_t *d = data;
        uint64_t sum = 0;
        size_t i;

        for (i = 0; i < size; i += 2) {
                /* The CheckSum field counts as zero; an odd last byte is a
                 * word with a zero high byte. */
                uint32_t lo = i - checksum_offset < 4 ? 0 : d[i];
                uint32_t hi = i + 1 >= size || i + 1 - checksum_offset < 4 ? 0 : d[i + 1];
                sum += lo | (hi << 8);
                sum = (sum & 0xffff) + (sum >> 16);
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        return (uint32_t) (sum + size);
}

const char *pe_machine_to_string(uint16_t machine) {
        switch (machine) {
        case PE_MACHINE_I386:
                return "i386";
        case PE_MACHINE_AMD64:
                return "x86-64";
        case PE_MACHINE_ARM64:
                return "arm64";
        case 0x1c2:
                return "thumb";
        case 0x1c4:
                return "arm";
        case 0x5064:
                return "riscv64";
        case 0x6264:
                return "loongarch64";
        default:
                return "unknown";
        }
}

const char *pe_data_directory_name(unsigned index) {
        static const char *const names[PE_MAX_DATA_DIRECTORIES] = {
                "export",  "import",        "resource",      "exception",          "certificate", "base relocation",
                "debug",   "architecture",  "global pointer", "TLS",               "load config", "bound import",
                "IAT",     "delay import",  "CLR runtime",   "reserved",
        };
        return index < ELEMENTSOF(names) ? names[index] : "unknown";
}
