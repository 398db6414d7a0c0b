/* SPDX-License-Identifier: Apache-2.0 */
#include "uki.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

/* File order of the added sections, as ukify writes them: small ones
 * first, the kernel last. The order does not change what the stub
 * measures (it measures in its own order, see pcr11.h). */
static const char *const uki_section_order[] = {
        UKI_SECTION_OSREL, UKI_SECTION_CMDLINE, UKI_SECTION_DTB,    UKI_SECTION_UNAME,
        UKI_SECTION_SPLASH, UKI_SECTION_PCRPKEY, UKI_SECTION_INITRD, UKI_SECTION_LINUX,
};

/* Every section name systemd-stub looks up (252: all but .uname; later
 * versions: .uname too), whether or not we add it. */
static const char *const uki_payload_sections[] = {
        UKI_SECTION_LINUX, UKI_SECTION_OSREL, UKI_SECTION_CMDLINE, UKI_SECTION_INITRD, UKI_SECTION_SPLASH,
        UKI_SECTION_DTB,   UKI_SECTION_UNAME, ".pcrsig",           UKI_SECTION_PCRPKEY,
};

#define COFF_SYMBOL_SIZE 18u
#define SDMAGIC_MARKER "#### LoaderInfo: systemd-stub "

bool uki_section_name_valid(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(uki_section_order); i++)
                if (streq(name, uki_section_order[i]))
                        return true;
        return false;
}

static uint64_t align_up(uint64_t v, uint64_t a) {
        return (v + a - 1) & ~(a - 1);
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* What lies between the stub's last section and its end (or its
 * certificate table) must be something we know we may drop: zero padding
 * and the COFF symbol and string tables that binutils leaves in EFI
 * binaries. */
static int check_stub_trailer(const struct pe_image *stub, struct errmsg *e) {
        size_t start = stub->sections_end;
        size_t end = stub->has_certificate_table ? stub->certificate_table_offset : stub->size;
        uint64_t sym, strtab;

        if (stub->has_certificate_table && stub->certificate_table_offset + stub->certificate_table_size != stub->size)
                return errmsg_set(e, EBADMSG, "stub: certificate table at 0x%zx is not at the end of the file",
                                  stub->certificate_table_offset);
        if (stub->pointer_to_symbol_table == 0 || stub->number_of_symbols == 0) {
                if (!all_zero(stub->data + start, end - start))
                        return errmsg_set(e, EBADMSG,
                                          "stub: %zu bytes of unidentified data after the last section (at 0x%zx)",
                                          end - start, start);
                return 0;
        }

        sym = stub->pointer_to_symbol_table;
        strtab = sym + (uint64_t) stub->number_of_symbols * COFF_SYMBOL_SIZE;
        if (sym < start || strtab > end)
                return errmsg_set(e, EBADMSG,
                                  "stub: COFF symbol table at 0x%llx (%u symbols) is not after the sections and "
                                  "inside the file",
                                  (unsigned long long) sym, stub->number_of_symbols);
        if (!all_zero(stub->data + start, (size_t) sym - start))
                return errmsg_set(e, EBADMSG, "stub: unidentified data between the last section and the symbol "
                                              "table");
        /* The string table follows, starting with its own size (which counts
         * those 4 bytes); it may be absent. */
        if (strtab < end) {
                uint32_t len;
                if (end - strtab < 4)
                        return errmsg_set(e, EBADMSG, "stub: truncated COFF string table at 0x%llx",
                                          (unsigned long long) strtab);
                len = pe_read32(stub->data + strtab);
                if (len < 4 || len > end - strtab || !all_zero(stub->data + strtab + len, end - strtab - len))
                        return errmsg_set(e, EBADMSG,
                                          "stub: COFF string table at 0x%llx of %u bytes does not end the file "
                                          "(0x%zx)",
                                          (unsigned long long) strtab, len, end);
        }
        /* Dropping the string table would break "/N" long section names. */
        for (unsigned i = 0; i < stub->n_sections; i++)
                if (stub->sections[i].name[0] == '/')
                        return errmsg_set(e, EBADMSG, "stub: section %u has a long name (\"%s\") in the string table",
                                          i, stub->sections[i].name);
        return 0;
}

/* systemd-stub finds a section by comparing the first strlen(name) bytes
 * of each section name (so ".linux" also matches ".linuxfoo"), the last
 * match winning: a stub section matching any added name would be taken
 * for (or shadowed by) ours. */
static bool stub_name_matches(const struct pe_section *s, const char *name) {
        return memcmp(s->raw_name, name, strlen(name)) == 0;
}

static int check_inputs(const struct pe_image *stub, const struct uki_input *inputs, size_t n, struct errmsg *e) {
        bool have_linux = false;

        if (n > UKI_MAX_ADDED_SECTIONS)
                return errmsg_set(e, EINVAL, "%zu sections given, at most %u", n, UKI_MAX_ADDED_SECTIONS);
        for (size_t i = 0; i < n; i++) {
                const struct uki_input *in = &inputs[i];

                if (!in->name || !uki_section_name_valid(in->name))
                        return errmsg_set(e, EINVAL, "section \"%s\" is not one a UKI carries", strna(in->name));
                if (in->size == 0 || !in->data)
                        return errmsg_set(e, EINVAL, "section %s is empty (systemd-stub would ignore it)",
                                          in->name);
                if (in->size > UINT32_MAX)
                        return errmsg_set(e, EFBIG, "section %s: %zu bytes is more than a PE section can hold",
                                          in->name, in->size);
                for (size_t j = 0; j < i; j++)
                        if (streq(inputs[j].name, in->name))
                                return errmsg_set(e, EINVAL, "section %s given twice", in->name);
                if (streq(in->name, UKI_SECTION_LINUX))
                        have_linux = true;
        }
        if (!have_linux)
                return errmsg_set(e, EINVAL, "no .linux section: systemd-stub refuses to boot without a kernel");
        /* A bare stub carries none of the payload sections: one that does
         * (a UKI given as the stub, say) would have them measured and used
         * beside or instead of ours. */
        for (unsigned k = 0; k < stub->n_sections; k++)
                for (size_t i = 0; i < ELEMENTSOF(uki_payload_sections); i++)
                        if (stub_name_matches(&stub->sections[k], uki_payload_sections[i]))
                                return errmsg_set(e, EBADMSG,
                                                  "stub already has a section \"%s\" that systemd-stub takes for %s",
                                                  stub->sections[k].name, uki_payload_sections[i]);
        return 0;
}

int uki_assemble(const struct pe_image *stub, const struct uki_input *inputs, size_t n_inputs, uint8_t **ret,
                 size_t *ret_size, struct errmsg *e) {
        const struct uki_input *ordered[UKI_MAX_ADDED_SECTIONS];
        _cleanup_free_ struct pe_image *check = NULL;
        _cleanup_free_ uint8_t *out = NULL;
        const struct pe_section *last;
        uint64_t page, va, off, image_end, code, idata;
        size_t n = 0, table_end, out_size;
        uint8_t *opt;
        int r;

        if (stub->subsystem != 10)
                return errmsg_set(e, EBADMSG, "stub is not an EFI application (subsystem %u, expected 10)",
                                  stub->subsystem);
        r = check_inputs(stub, inputs, n_inputs, e);
        if (r < 0)
                return r;
        r = check_stub_trailer(stub, e);
        if (r < 0)
                return r;

        for (size_t i = 0; i < ELEMENTSOF(uki_section_order); i++)
                for (size_t j = 0; j < n_inputs; j++)
                        if (streq(inputs[j].name, uki_section_order[i]))
                                ordered[n++] = &inputs[j];

        /* Room for the new section headers between the table and the first
         * section's data (SizeOfHeaders), and nothing stored there. */
        table_end = stub->section_table_end + n * PE_SECTION_HEADER_SIZE;
        if (stub->n_sections + n > PE_MAX_SECTIONS)
                return errmsg_set(e, EBADMSG, "stub has %u sections; %zu more exceed the limit of %u",
                                  stub->n_sections, n, PE_MAX_SECTIONS);
        if (table_end > stub->size_of_headers)
                return errmsg_set(e, EBADMSG,
                                  "stub has room for %zu more section headers (SizeOfHeaders 0x%x), %zu needed",
                                  (stub->size_of_headers - stub->section_table_end) / PE_SECTION_HEADER_SIZE,
                                  stub->size_of_headers, n);
        if (!all_zero(stub->data + stub->section_table_end, table_end - stub->section_table_end))
                return errmsg_set(e, EBADMSG, "stub: the room after the section table (0x%zx) is in use",
                                  stub->section_table_end);

        /* Page-aligned virtual addresses, so that firmware can map each
         * section with its own attributes. */
        page = stub->section_alignment > 4096 ? stub->section_alignment : 4096;
        last = &stub->sections[stub->n_sections - 1];
        va = align_up((uint64_t) last->virtual_address +
                              (last->virtual_size ? last->virtual_size : last->size_of_raw_data),
                      page);
        off = align_up(stub->sections_end, stub->file_alignment);
        image_end = va;
        for (size_t i = 0; i < n; i++) {
                off += align_up(ordered[i]->size, stub->file_alignment);
                image_end = align_up(image_end + ordered[i]->size, page);
        }
        if (off > UINT32_MAX || image_end > UINT32_MAX)
                return errmsg_set(e, EFBIG, "the UKI would be larger than 4 GiB (file 0x%llx, image 0x%llx)",
                                  (unsigned long long) off, (unsigned long long) image_end);
        out_size = (size_t) off;

        out = calloc(1, out_size);
        if (!out)
                return -ENOMEM;
        memcpy(out, stub->data, stub->sections_end);

        opt = out + stub->optional_offset;
        code = pe_read32(opt + 4);
        idata = pe_read32(opt + 8);
        off = align_up(stub->sections_end, stub->file_alignment);
        for (size_t i = 0; i < n; i++) {
                const struct uki_input *in = ordered[i];
                uint8_t *h = out + stub->section_table_end + i * PE_SECTION_HEADER_SIZE;
                uint32_t raw = (uint32_t) align_up(in->size, stub->file_alignment);
                bool is_linux = streq(in->name, UKI_SECTION_LINUX);

                memset(h, 0, PE_SECTION_HEADER_SIZE);
                memcpy(h, in->name, strlen(in->name)); /* <= 8, NUL-padded */
                pe_write32(h + 8, (uint32_t) in->size);
                pe_write32(h + 12, (uint32_t) va);
                pe_write32(h + 16, raw);
                pe_write32(h + 20, (uint32_t) off);
                /* The kernel's EFI handover entry runs in place, from .linux. */
                pe_write32(h + 36, is_linux ? PE_SCN_CNT_CODE | PE_SCN_MEM_READ | PE_SCN_MEM_EXECUTE
                                            : PE_SCN_CNT_INITIALIZED_DATA | PE_SCN_MEM_READ);
                memcpy(out + off, in->data, in->size);
                if (is_linux)
                        code += raw;
                else
                        idata += raw;
                off += raw;
                va = align_up(va + in->size, page);
        }

        pe_write16(out + stub->coff_offset + 2, (uint16_t) (stub->n_sections + n));
        /* Drop the symbol table (not copied) and the stub's signature. */
        pe_write32(out + stub->coff_offset + 8, 0);
        pe_write32(out + stub->coff_offset + 12, 0);
        if (stub->n_data_directories > PE_DIR_SECURITY)
                memset(out + stub->dirs_offset + PE_DIR_SECURITY * PE_DATA_DIRECTORY_SIZE, 0,
                       PE_DATA_DIRECTORY_SIZE);
        pe_write32(opt + 4, code > UINT32_MAX ? UINT32_MAX : (uint32_t) code);
        pe_write32(opt + 8, idata > UINT32_MAX ? UINT32_MAX : (uint32_t) idata);
        pe_write32(opt + 56, (uint32_t) va);
        pe_write32(out + stub->checksum_offset, pe_checksum(out, out_size, stub->checksum_offset));

        /* What we hand out must be what we would accept. */
        check = malloc(sizeof(*check));
        if (!check)
                return -ENOMEM;
        r = pe_parse(out, out_size, check, e);
        if (r < 0) {
                errmsg_prefix(e, "internal error: the assembled UKI does not parse");
                return -EIO;
        }

        *ret = TAKE_PTR(out);
        *ret_size = out_size;
        return 0;
}

int uki_stub_version(const struct pe_image *pe, char *buf, size_t size, unsigned *ret_major, struct errmsg *e) {
                const struct pe_section *s = pe_find_section(pe, ".sdmagic");
        const uint8_t *data;
        size_t fsize, vsize, i, start, end;
        unsigned major = 0;

        if (!s)
                return errmsg_set(e, ENOENT, "no .sdmagic section: not a systemd-stub");
        pe_section_content(pe, s, &data, &fsize, &vsize);
        if (fsize < STRLEN(SDMAGIC_MARKER) || memcmp(data, SDMAGIC_MARKER, STRLEN(SDMAGIC_MARKER)) != 0)
                return errmsg_set(e, EBADMSG, ".sdmagic does not start with \"%s\"", SDMAGIC_MARKER);
        start = STRLEN(SDMAGIC_MARKER);
        for (end = start; end < fsize && data[end] != ' ' && data[end] != 0; end++)
                if (data[end] < 0x21 || data[end] > 0x7e)
                        return errmsg_set(e, EBADMSG, ".sdmagic: version contains byte 0x%02x", data[end]);
        for (i = start; i < end && data[i] >= '0' && data[i] <= '9' && major < 100000; i++)
                major = major * 10 + (unsigned) (data[i] - '0');
        if (i == start || end - start >= size)
                return errmsg_set(e, EBADMSG, ".sdmagic: no usable version number");
        memcpy(buf, data + start, end - start);
        buf[end - start] = 0;
        *ret_major = major;
        return 0;
}
