/* SPDX-License-Identifier: Apache-2.0 */
#include "pe-builder.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void w16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void w32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

void pe_builder_init(struct pe_builder *b, unsigned n_sections) {
        memset(b, 0, sizeof(*b));
        b->pe_offset = 0x40;
        b->n_dirs = 16;
        b->size_of_headers = 0x400;
        b->file_alignment = 0x200;
        b->section_alignment = 0x1000;
        b->subsystem = 10;
        b->n_sections = n_sections;
        for (unsigned i = 0; i < n_sections && i < PE_BUILDER_MAX_SECTIONS; i++) {
                struct pe_builder_section *s = &b->s[i];
                s->name[0] = '.';
                s->name[1] = 's';
                s->name[2] = (char) ('0' + i % 10);
                s->virtual_size = 0x180;
                s->virtual_address = 0x1000 * (i + 1);
                s->size_of_raw_data = 0x200;
                s->pointer_to_raw_data = 0x400 + 0x200 * i;
                s->characteristics = 0x40000040;
                s->fill = (uint8_t) (0x10 + i);
        }
}

int pe_builder_build(const struct pe_builder *b, uint8_t **ret, size_t *ret_size) {
        struct pe_builder_section all[PE_BUILDER_MAX_SECTIONS + 1];
        unsigned n = b->n_sections;
        size_t size = b->size_of_headers, opt, table;
        uint32_t image = 0;
        uint8_t *d;

        if (n > PE_BUILDER_MAX_SECTIONS)
                return -EINVAL;
        memcpy(all, b->s, sizeof(b->s));
        if (b->sdmagic) {
                struct pe_builder_section *m = &all[n], *prev = n ? &all[n - 1] : NULL;
                size_t len = strlen(b->sdmagic);
                memset(m, 0, sizeof(*m));
                memcpy(m->name, ".sdmagic", 8);
                m->virtual_size = (uint32_t) len;
                m->virtual_address = prev ? prev->virtual_address + 0x1000 : 0x1000;
                m->size_of_raw_data = (uint32_t) ((len + b->file_alignment - 1) & ~(b->file_alignment - 1));
                m->pointer_to_raw_data = prev ? prev->pointer_to_raw_data + prev->size_of_raw_data
                                              : b->size_of_headers;
                m->characteristics = 0x40000040;
                n++;
        }
        for (unsigned i = 0; i < n; i++) {
                size_t end = (size_t) all[i].pointer_to_raw_data + all[i].size_of_raw_data;
                uint32_t vend = all[i].virtual_address +
                                (all[i].virtual_size ? all[i].virtual_size : all[i].size_of_raw_data);
                if (all[i].size_of_raw_data && end > size)
                        size = end;
                if (vend > image)
                        image = vend;
        }
        image = (image + b->section_alignment - 1) & ~(b->section_alignment - 1);
        size += b->trailing;

        if (pe_builder_section_table(b) + 40 * (size_t) n > size)
                return -EINVAL;
        d = calloc(1, size);
        if (!d)
                return -ENOMEM;
        d[0] = 'M';
        d[1] = 'Z';
        w32(d + 0x3c, b->pe_offset);
        memcpy(d + b->pe_offset, "PE\0\0", 4);
        w16(d + pe_builder_coff(b), b->pe32 ? 0x14c : 0x8664);
        w16(d + pe_builder_coff(b) + 2, (uint16_t) n);
        w32(d + pe_builder_coff(b) + 8, b->pointer_to_symbol_table);
        w32(d + pe_builder_coff(b) + 12, b->number_of_symbols);
        w16(d + pe_builder_coff(b) + 16, (uint16_t) ((b->pe32 ? 96 : 112) + 8 * b->n_dirs));
        w16(d + pe_builder_coff(b) + 18, 0x206);
        opt = pe_builder_opt(b);
        w16(d + opt, b->pe32 ? 0x10b : 0x20b);
        w32(d + opt + 16, n ? all[0].virtual_address : 0); /* entry point */
        w32(d + opt + 32, b->section_alignment);
        w32(d + opt + 36, b->file_alignment);
        w32(d + opt + 56, b->size_of_image ? b->size_of_image : image);
        w32(d + opt + 60, b->size_of_headers);
        w16(d + opt + 68, b->subsystem);
        w32(d + pe_builder_dirs(b) - 4, b->n_dirs);
        table = pe_builder_section_table(b);
        for (unsigned i = 0; i < n; i++) {
                const struct pe_builder_section *s = &all[i];
                uint8_t *h = d + table + 40 * i;
                memcpy(h, s->name, strnlen(s->name, 8));
                w32(h + 8, s->virtual_size);
                w32(h + 12, s->virtual_address);
                w32(h + 16, s->size_of_raw_data);
                w32(h + 20, s->pointer_to_raw_data);
                w32(h + 36, s->characteristics);
                if (b->sdmagic && i == n - 1)
                        memcpy(d + s->pointer_to_raw_data, b->sdmagic, s->virtual_size);
                else
                        for (uint32_t k = 0; k < s->size_of_raw_data; k++)
                                if ((size_t) s->pointer_to_raw_data + k < size)
                                        d[s->pointer_to_raw_data + k] = (uint8_t) (s->fill + 7 * k);
        }
        memset(d + size - b->trailing, b->trailing_fill, b->trailing);
        *ret = d;
        *ret_size = size;
        return 0;
}
