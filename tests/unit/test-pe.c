/* SPDX-License-Identifier: Apache-2.0 */
/* PE/COFF parser: valid images parse to the right fields; every malformed
 * variant is refused with -EBADMSG and a reason naming what is wrong, and
 * the output is left alone. */
#include <criterion/criterion.h>
#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "pe-builder.h"
#include "pe.h"

#define STUB "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

static struct pe_image *parse_ok(const uint8_t *d, size_t n) {
        struct pe_image *pe = malloc(sizeof(*pe));
        struct errmsg e = {};
        int r;

        cr_assert_not_null(pe);
        r = pe_parse(d, n, pe, &e);
        cr_assert_eq(r, 0, "pe_parse = %d: %s", r, errmsg_str(&e));
        return pe;
}

/* Refused with -EBADMSG, the reason contains `needle`, output untouched. */
static void assert_refused(const uint8_t *d, size_t n, const char *needle) {
        struct pe_image *pe = malloc(sizeof(*pe));
        struct errmsg e = {};
        int r;

        cr_assert_not_null(pe);
        memset(pe, 0xaa, sizeof(*pe));
        r = pe_parse(d, n, pe, &e);
        cr_assert_eq(r, -EBADMSG, "pe_parse = %d, want -EBADMSG (%s) [looking for \"%s\"]", r, errmsg_str(&e),
                     needle);
        cr_assert_not_null(strstr(e.text, needle), "reason \"%s\" does not contain \"%s\"", e.text, needle);
        for (size_t i = 0; i < sizeof(*pe); i++)
                cr_assert_eq(((uint8_t *) pe)[i], 0xaa, "output touched on failure");
        free(pe);
}

static void build(const struct pe_builder *b, uint8_t **d, size_t *n) {
        cr_assert_eq(pe_builder_build(b, d, n), 0);
}

static void w16(uint8_t *p, uint16_t v) {
        pe_write16(p, v);
}
static void w32(uint8_t *p, uint32_t v) {
        pe_write32(p, v);
}

/* --- valid images ------------------------------------------------------ */

Test(pe, parses_minimal_pe32plus) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;
        struct pe_image *pe;

        pe_builder_init(&b, 3);
        build(&b, &d, &n);
        pe = parse_ok(d, n);
        cr_assert_eq(pe->magic, PE_MAGIC_PE32PLUS);
        cr_assert_eq(pe->machine, PE_MACHINE_AMD64);
        cr_assert_eq(pe->n_sections, 3);
        cr_assert_eq(pe->n_data_directories, 16);
        cr_assert_eq(pe->size_of_headers, 0x400);
        cr_assert_eq(pe->size_of_image, 0x4000);
        cr_assert_eq(pe->subsystem, 10);
        cr_assert_eq(pe->checksum_offset, 0x40 + 24 + 64);
        cr_assert_eq(pe->dirs_offset, 0x40 + 24 + 112);
        cr_assert_eq(pe->section_table_offset, 0x40 + 24 + 240);
        cr_assert_eq(pe->sections_end, 0x400 + 3 * 0x200);
        cr_assert_str_eq(pe->sections[2].name, ".s2");
        cr_assert_eq(pe->sections[2].virtual_address, 0x3000);
        cr_assert_eq(pe->sections[2].pointer_to_raw_data, 0x800);
        cr_assert(!pe->has_certificate_table);
        free(pe);
        free(d);
}

Test(pe, parses_minimal_pe32_with_few_directories) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;
        struct pe_image *pe;

        pe_builder_init(&b, 2);
        b.pe32 = true;
        b.n_dirs = 6;
        build(&b, &d, &n);
        pe = parse_ok(d, n);
        cr_assert_eq(pe->magic, PE_MAGIC_PE32);
        cr_assert_eq(pe->n_data_directories, 6);
        cr_assert_eq(pe->section_table_offset, 0x40 + 24 + 96 + 48);
        free(pe);
        free(d);
}

Test(pe, finds_sections_and_zero_fills_beyond_raw_data) {
        struct pe_builder b;
        const uint8_t *p;
        size_t fsize, vsize, n;
        uint8_t *d;
        struct pe_image *pe;

        pe_builder_init(&b, 2);
        b.s[1].virtual_size = 0x300; /* more than its 0x200 raw bytes */
        build(&b, &d, &n);
        pe = parse_ok(d, n);
        cr_assert_null(pe_find_section(pe, ".s9"));
        cr_assert_null(pe_find_section(pe, ".s")); /* exact names only */
        cr_assert_null(pe_find_section(pe, "much-too-long"));
        const struct pe_section *s = pe_find_section(pe, ".s1");
        cr_assert_not_null(s);
        pe_section_content(pe, s, &p, &fsize, &vsize);
        cr_assert_eq(fsize, 0x200);
        cr_assert_eq(vsize, 0x300);
        cr_assert_eq(p, d + 0x600);
        pe_section_content(pe, pe_find_section(pe, ".s0"), &p, &fsize, &vsize);
        cr_assert_eq(fsize, 0x180); /* VirtualSize < SizeOfRawData: the loader maps VirtualSize */
        cr_assert_eq(vsize, 0x180);
        free(pe);
        free(d);
}

Test(pe, parses_real_stub_and_kernel) {
        _cleanup_free_ char *stub = NULL, *kernel = NULL;
        size_t stub_size, kernel_size;
        glob_t g;

        if (read_full_file(STUB, 64 << 20, &stub, &stub_size) < 0)
                cr_skip_test("systemd-boot-efi is not installed (" STUB ")");
        struct pe_image *pe = parse_ok((uint8_t *) stub, stub_size);
        cr_assert_not_null(pe_find_section(pe, ".sdmagic"));
        cr_assert_not_null(pe_find_section(pe, ".text"));
        cr_assert(!pe->has_certificate_table);
        cr_assert_eq(pe_checksum(stub, stub_size, pe->checksum_offset) == 0, 0);
        free(pe);

        if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
                cr_skip_test("no kernel in /boot (package linux-image-amd64)");
        cr_assert_eq(read_full_file(g.gl_pathv[0], 256 << 20, &kernel, &kernel_size), 0);
        globfree(&g);
        pe = parse_ok((uint8_t *) kernel, kernel_size);
        /* Debian signs its kernels: the signature is the last thing in the file. */
        cr_assert(pe->has_certificate_table);
        cr_assert_eq(pe->certificate_table_offset + pe->certificate_table_size, kernel_size);
        /* The checksum that the signing tool wrote is the one we compute. */
        cr_assert_eq(pe_checksum(kernel, kernel_size, pe->checksum_offset), pe->checksum);
        free(pe);
}

/* --- truncation ------------------------------------------------------- */

Test(pe, refuses_every_truncation_of_a_minimal_image) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        pe_builder_init(&b, 3);
        build(&b, &d, &n);
        for (size_t len = 0; len < n; len++) {
                struct errmsg e = {};
                struct pe_image *pe = malloc(sizeof(*pe));
                int r = pe_parse(d, len, pe, &e);
                cr_assert_eq(r, -EBADMSG, "truncated to %zu bytes: pe_parse = %d", len, r);
                cr_assert(e.text[0], "truncated to %zu bytes: no reason", len);
                free(pe);
        }
        /* The reasons name what ends beyond the file. */
        assert_refused(d, 10, "truncated");
        assert_refused(d, 0x40 + 10, "truncated");
        assert_refused(d, 0x40 + 24 + 100, "truncated");
        assert_refused(d, 0x40 + 24 + 240 + 50, "section table");
        assert_refused(d, 0x3ff, "SizeOfHeaders");
        assert_refused(d, 0x400 + 0x200 * 3 - 1, "section 2 (.s2): raw data at 0x800, size 0x200 ends beyond");
        free(d);
}

Test(pe, refuses_truncated_real_stub) {
        _cleanup_free_ char *stub = NULL;
        struct pe_image *pe;
        size_t size, end;

        if (read_full_file(STUB, 64 << 20, &stub, &size) < 0)
                cr_skip_test("systemd-boot-efi is not installed (" STUB ")");
        pe = parse_ok((uint8_t *) stub, size);
        end = pe->sections_end;
        free(pe);
        /* Everything up to the end of the last section is structure; what
         * follows (the COFF symbol table) is not. */
        for (size_t len = 0; len < end; len += len < 0x400 ? 1 : 97) {
                struct errmsg e = {};
                pe = malloc(sizeof(*pe));
                cr_assert_eq(pe_parse(stub, len, pe, &e), -EBADMSG, "stub truncated to %zu accepted", len);
                cr_assert(e.text[0]);
                free(pe);
        }
        assert_refused((uint8_t *) stub, end - 1, "ends beyond the end of the file");
}

/* --- headers ------------------------------------------------------------ */

Test(pe, refuses_bad_magics) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        pe_builder_init(&b, 1);
        build(&b, &d, &n);
        d[0] = 'Z';
        assert_refused(d, n, "bad DOS header magic");
        d[0] = 'M';
        d[0x42] = 'X';
        assert_refused(d, n, "bad PE signature");
        d[0x42] = 0;
        w16(d + pe_builder_opt(&b), 0x107);
        assert_refused(d, n, "bad optional header magic 0x107");
        free(d);
}

Test(pe, refuses_bad_e_lfanew) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        pe_builder_init(&b, 1);
        build(&b, &d, &n);
        w32(d + 0x3c, 0x10);
        assert_refused(d, n, "e_lfanew 0x10 points into the DOS header");
        w32(d + 0x3c, (uint32_t) n - 10);
        assert_refused(d, n, "truncated: e_lfanew");
        w32(d + 0x3c, 0xfffffff0);
        assert_refused(d, n, "truncated: e_lfanew 0xfffffff0");
        free(d);
}

Test(pe, refuses_absurd_section_counts) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        pe_builder_init(&b, 1);
        build(&b, &d, &n);
        w16(d + pe_builder_coff(&b) + 2, 0xffff);
        assert_refused(d, n, "NumberOfSections 65535 is absurd");
        w16(d + pe_builder_coff(&b) + 2, 97);
        assert_refused(d, n, "NumberOfSections 97 is absurd");
        w16(d + pe_builder_coff(&b) + 2, 0);
        assert_refused(d, n, "NumberOfSections is 0");
        /* 20 sections claimed, 1 present: the table would run into data. */
        w16(d + pe_builder_coff(&b) + 2, 20);
        assert_refused(d, n, "SizeOfHeaders 0x400 is smaller than the headers and section table");
        free(d);
}

Test(pe, refuses_bad_optional_header_sizes) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;
        size_t coff;

        pe_builder_init(&b, 1);
        build(&b, &d, &n);
        coff = pe_builder_coff(&b);
        w16(d + coff + 16, 0);
        assert_refused(d, n, "SizeOfOptionalHeader 0 is too small");
        w16(d + coff + 16, 100);
        assert_refused(d, n, "SizeOfOptionalHeader 100 is too small for a PE32+ optional header");
        w16(d + coff + 16, 248);
        assert_refused(d, n, "SizeOfOptionalHeader 248 does not match NumberOfRvaAndSizes 16");
        w16(d + coff + 16, 240);
        w32(d + pe_builder_dirs(&b) - 4, 17);
        assert_refused(d, n, "NumberOfRvaAndSizes 17 is absurd");
        w32(d + pe_builder_dirs(&b) - 4, 0xffffffff);
        assert_refused(d, n, "NumberOfRvaAndSizes 4294967295 is absurd");
        w32(d + pe_builder_dirs(&b) - 4, 15);
        assert_refused(d, n, "does not match NumberOfRvaAndSizes 15");
        free(d);
}

Test(pe, refuses_bad_alignments_and_header_sizes) {
        struct pe_builder b;
        uint8_t *d;
        size_t n, opt;

        pe_builder_init(&b, 1);
        build(&b, &d, &n);
        opt = pe_builder_opt(&b);
        w32(d + opt + 36, 0x300);
        assert_refused(d, n, "FileAlignment 0x300 is not a power of two");
        w32(d + opt + 36, 0);
        assert_refused(d, n, "FileAlignment 0x0");
        w32(d + opt + 36, 0x200);
        w32(d + opt + 32, 0x100);
        assert_refused(d, n, "SectionAlignment 0x100 is not a power of two at least FileAlignment 0x200");
        w32(d + opt + 32, 0x1000);
        w32(d + opt + 60, 0x100);
        assert_refused(d, n, "SizeOfHeaders 0x100 is smaller than the headers");
        w32(d + opt + 60, (uint32_t) n + 1);
        assert_refused(d, n, "SizeOfHeaders");
        w32(d + opt + 60, 0x400);
        w32(d + opt + 56, 0x200);
        assert_refused(d, n, "SizeOfHeaders 0x400 is larger than SizeOfImage 0x200");
        free(d);
}

/* --- sections ------------------------------------------------------------ */

Test(pe, refuses_section_beyond_file) {
        struct pe_builder b;
        uint8_t *d;
        size_t n, t;

        pe_builder_init(&b, 2);
        build(&b, &d, &n);
        t = pe_builder_section_table(&b) + 40;
        w32(d + t + 16, 0x400); /* SizeOfRawData */
        assert_refused(d, n, "section 1 (.s1): raw data at 0x600, size 0x400 ends beyond the end of the file");
        w32(d + t + 16, 0x200);
        w32(d + t + 20, 0xfffffe00); /* offset + size wraps around 32 bits */
        assert_refused(d, n, "section 1 (.s1): raw data at 0xfffffe00, size 0x200 ends beyond");
        free(d);
}

Test(pe, refuses_overlapping_sections) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        /* Raw data overlapping in the file (table order is not file order). */
        pe_builder_init(&b, 3);
        b.s[0].pointer_to_raw_data = 0x800;
        b.s[2].pointer_to_raw_data = 0x400;
        b.s[1].pointer_to_raw_data = 0x500;
        build(&b, &d, &n);
        assert_refused(d, n, "section 2 (.s2): raw data at 0x400-0x600 overlaps section 1 (.s1) at 0x500");
        free(d);

        /* Overlapping in memory. */
        pe_builder_init(&b, 2);
        b.s[1].virtual_address = 0x1100;
        build(&b, &d, &n);
        assert_refused(d, n, "section 1 (.s1) at virtual address 0x1100 overlaps or precedes section 0 (.s0)");
        free(d);

        /* Descending virtual addresses. */
        pe_builder_init(&b, 2);
        b.s[0].virtual_address = 0x2000;
        b.s[1].virtual_address = 0x1000;
        build(&b, &d, &n);
        assert_refused(d, n, "overlaps or precedes");
        free(d);

        /* Raw data inside the headers. */
        pe_builder_init(&b, 1);
        b.s[0].pointer_to_raw_data = 0x200;
        build(&b, &d, &n);
        assert_refused(d, n, "section 0 (.s0): raw data at 0x200 overlaps the headers (SizeOfHeaders 0x400)");
        free(d);

        /* Mapped over the headers. */
        pe_builder_init(&b, 1);
        b.s[0].virtual_address = 0x100;
        build(&b, &d, &n);
        assert_refused(d, n, "virtual address 0x100 lies inside the headers");
        free(d);
}

Test(pe, refuses_section_beyond_size_of_image) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        pe_builder_init(&b, 2);
        b.size_of_image = 0x2000;
        build(&b, &d, &n);
        assert_refused(d, n, "section 1 (.s1): virtual range 0x2000-0x2180 ends beyond SizeOfImage 0x2000");
        free(d);

        pe_builder_init(&b, 1);
        b.s[0].virtual_address = 0xfffff000;
        b.s[0].virtual_size = 0x2000; /* wraps around 32 bits */
        b.size_of_image = 0xfffff000;
        build(&b, &d, &n);
        assert_refused(d, n, "ends beyond SizeOfImage");
        free(d);
}

Test(pe, refuses_unprintable_section_names) {
        struct pe_builder b;
        uint8_t *d;
        size_t n;

        pe_builder_init(&b, 1);
        b.s[0].name[1] = '\n';
        build(&b, &d, &n);
        assert_refused(d, n, "section 0: name contains byte 0x0a");
        free(d);
}

/* --- data directories ----------------------------------------------------- */

Test(pe, accepts_certificate_table_after_sections) {
        struct pe_builder b;
        uint8_t *d;
        size_t n, cert;
        struct pe_image *pe;

        pe_builder_init(&b, 1);
        b.trailing = 0x40;
        build(&b, &d, &n);
        cert = pe_builder_dirs(&b) + 4 * 8;
        w32(d + cert, 0x600);
        w32(d + cert + 4, 0x40);
        pe = parse_ok(d, n);
        cr_assert(pe->has_certificate_table);
        cr_assert_eq(pe->certificate_table_offset, 0x600);
        cr_assert_eq(pe->certificate_table_size, 0x40);
        free(pe);
        free(d);
}

Test(pe, refuses_bad_certificate_table) {
        struct pe_builder b;
        uint8_t *d;
        size_t n, cert;

        pe_builder_init(&b, 1);
        b.trailing = 0x40;
        build(&b, &d, &n);
        cert = pe_builder_dirs(&b) + 4 * 8;
        w32(d + cert, 0x600);
        w32(d + cert + 4, 0x41);
        assert_refused(d, n, "certificate table at file offset 0x600, size 0x41 ends beyond the end of the file");
        w32(d + cert, 0xffffffff);
        w32(d + cert + 4, 2);
        assert_refused(d, n, "certificate table at file offset 0xffffffff");
        w32(d + cert, 0x500);
        w32(d + cert + 4, 0x10);
        assert_refused(d, n, "certificate table at file offset 0x500 overlaps the headers or section data");
        free(d);
}

Test(pe, refuses_data_directory_beyond_image) {
        struct pe_builder b;
        uint8_t *d;
        size_t n, dir;

        pe_builder_init(&b, 1);
        build(&b, &d, &n);
        dir = pe_builder_dirs(&b) + PE_DIR_BASERELOC * 8;
        w32(d + dir, 0x1f00);
        w32(d + dir + 4, 0x200);
        assert_refused(d, n, "data directory 5 (base relocation): range 0x1f00+0x200 ends beyond SizeOfImage 0x2000");
        w32(d + dir, 0xffffff00);
        assert_refused(d, n, "data directory 5");
        free(d);
}

/* --- checksum ------------------------------------------------------------- */

Test(pe, checksum_ignores_its_own_field_and_counts_the_size) {
        uint8_t d[10] = { 1, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, 3, 0 };

        /* 1 + 2 + 3 words, checksum at 4 counted as zero, + 10 bytes. */
        cr_assert_eq(pe_checksum(d, sizeof(d), 4), 6 + 10);
        /* An odd last byte is a word of its own. */
        cr_assert_eq(pe_checksum(d, 9, 4), 6 + 9);
        /* Carries fold back into 16 bits. */
        uint8_t f[4] = { 0xff, 0xff, 0x02, 0x00 };
        cr_assert_eq(pe_checksum(f, 4, 100), 0x0002 + 4);
}
