/* SPDX-License-Identifier: Apache-2.0 */
/* UKI assembly on a synthetic stub: layout, round trip, determinism, and
 * every refusal. (The real stub, booting the result under OVMF, and the
 * independent tools are in tests/integration/.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "pe-builder.h"
#include "pe.h"
#include "uki.h"

#define SDMAGIC "#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####"
#define STUB "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

static const char kernel[] = "MZ-pretend-kernel-with-some-bytes";
static const char initrd[] = "initrd";
static const char cmdline[] = "console=ttyS0";
static const char osrel[] = "ID=arca\n";

static struct pe_image *parse(const uint8_t *d, size_t n) {
        struct pe_image *pe = malloc(sizeof(*pe));
        struct errmsg e = {};
        cr_assert_not_null(pe);
        cr_assert_eq(pe_parse(d, n, pe, &e), 0, "pe_parse: %s", errmsg_str(&e));
        return pe;
}

static struct pe_image *stub_from(const struct pe_builder *b, uint8_t **d, size_t *n) {
        cr_assert_eq(pe_builder_build(b, d, n), 0);
        return parse(*d, *n);
}

static void default_stub(struct pe_builder *b) {
        pe_builder_init(b, 3);
        b->sdmagic = SDMAGIC;
}

#define INPUT(n, s) { .name = (n), .data = (s), .size = sizeof(s) - 1 }

static const struct uki_input four[] = {
        INPUT(UKI_SECTION_LINUX, kernel),
        INPUT(UKI_SECTION_INITRD, initrd),
        INPUT(UKI_SECTION_CMDLINE, cmdline),
        INPUT(UKI_SECTION_OSREL, osrel),
};

static int assemble(const struct pe_image *stub, const struct uki_input *in, size_t n, uint8_t **out,
                    size_t *out_size, struct errmsg *e) {
        *out = NULL;
        return uki_assemble(stub, in, n, out, out_size, e);
}

Test(uki, assembles_a_parseable_image_with_the_inputs) {
        struct pe_builder b;
        uint8_t *sd, *out;
        size_t sn, on;
        struct errmsg e = {};
        struct pe_image *stub, *uki;
        uint32_t prev_end;

        default_stub(&b);
        stub = stub_from(&b, &sd, &sn);
        cr_assert_eq(assemble(stub, four, 4, &out, &on, &e), 0, "%s", errmsg_str(&e));
        uki = parse(out, on);

        cr_assert_eq(uki->n_sections, stub->n_sections + 4);
        /* The stub is untouched up to its last section, except the header fields we update. */
        cr_assert_arr_eq(out + stub->section_table_offset, sd + stub->section_table_offset,
                         stub->section_table_end - stub->section_table_offset);
        cr_assert_arr_eq(out + stub->size_of_headers, sd + stub->size_of_headers,
                         stub->sections_end - stub->size_of_headers);
        /* Files order: osrel, cmdline, initrd, linux (kernel last). */
        cr_assert_str_eq(uki->sections[stub->n_sections + 0].name, ".osrel");
        cr_assert_str_eq(uki->sections[stub->n_sections + 1].name, ".cmdline");
        cr_assert_str_eq(uki->sections[stub->n_sections + 2].name, ".initrd");
        cr_assert_str_eq(uki->sections[stub->n_sections + 3].name, ".linux");

        prev_end = stub->sections[stub->n_sections - 1].virtual_address +
                   stub->sections[stub->n_sections - 1].virtual_size;
        for (size_t i = 0; i < 4; i++) {
                const struct uki_input *in = &four[i];
                const struct pe_section *s = pe_find_section(uki, in->name);
                const uint8_t *p;
                size_t fsize, vsize;

                cr_assert_not_null(s, "%s missing", in->name);
                pe_section_content(uki, s, &p, &fsize, &vsize);
                cr_assert_eq(vsize, in->size, "%s: VirtualSize %zu", in->name, vsize);
                cr_assert_arr_eq(p, in->data, in->size, "%s: content differs", in->name);
                cr_assert_eq(s->virtual_address % 4096, 0, "%s: not page-aligned", in->name);
                cr_assert_eq(s->pointer_to_raw_data % stub->file_alignment, 0);
                cr_assert_eq(s->size_of_raw_data % stub->file_alignment, 0);
                cr_assert_geq(s->virtual_address, prev_end);
                /* Padding up to the raw size is zeros. */
                for (size_t k = in->size; k < s->size_of_raw_data; k++)
                        cr_assert_eq(out[s->pointer_to_raw_data + k], 0);
                if (streq(in->name, ".linux"))
                        cr_assert_eq(s->characteristics,
                                     PE_SCN_CNT_CODE | PE_SCN_MEM_READ | PE_SCN_MEM_EXECUTE);
                else
                        cr_assert_eq(s->characteristics, PE_SCN_CNT_INITIALIZED_DATA | PE_SCN_MEM_READ);
        }
        const struct pe_section *last = &uki->sections[uki->n_sections - 1];
        cr_assert_eq(uki->size_of_image, (last->virtual_address + last->virtual_size + 4095) & ~4095u);
        cr_assert_eq(on, uki->sections_end, "nothing after the last section");
        cr_assert_eq(uki->checksum, pe_checksum(out, on, uki->checksum_offset));
        cr_assert_eq(uki->pointer_to_symbol_table, 0);
        cr_assert(!uki->has_certificate_table);
        free(uki);
        free(stub);
        free(out);
        free(sd);
}

Test(uki, output_is_deterministic) {
        struct pe_builder b;
        uint8_t *sd, *o1, *o2;
        size_t sn, n1, n2;
        struct pe_image *stub;

        default_stub(&b);
        stub = stub_from(&b, &sd, &sn);
        cr_assert_eq(assemble(stub, four, 4, &o1, &n1, NULL), 0);
        cr_assert_eq(assemble(stub, four, 4, &o2, &n2, NULL), 0);
        cr_assert_eq(n1, n2);
        cr_assert_arr_eq(o1, o2, n1);
        free(o1);
        free(o2);
        free(stub);
        free(sd);
}

Test(uki, reads_the_stub_version) {
        struct pe_builder b;
        uint8_t *sd;
        size_t sn;
        char v[64];
        unsigned major = 0;
        struct errmsg e = {};
        struct pe_image *stub;

        default_stub(&b);
        stub = stub_from(&b, &sd, &sn);
        cr_assert_eq(uki_stub_version(stub, v, sizeof(v), &major, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(v, "252.39-1~deb12u2");
        cr_assert_eq(major, 252);
        /* Too small a buffer is refused, not truncated. */
        cr_assert_eq(uki_stub_version(stub, v, 8, &major, &e), -EBADMSG);
        free(stub);
        free(sd);

        pe_builder_init(&b, 1);
        stub = stub_from(&b, &sd, &sn);
        cr_assert_eq(uki_stub_version(stub, v, sizeof(v), &major, NULL), -ENOENT);
        free(stub);
        free(sd);

        pe_builder_init(&b, 1);
        b.sdmagic = "#### LoaderInfo: systemd-boot 252 ####";
        stub = stub_from(&b, &sd, &sn);
        cr_assert_eq(uki_stub_version(stub, v, sizeof(v), &major, NULL), -EBADMSG);
        free(stub);
        free(sd);

        pe_builder_init(&b, 1);
        b.sdmagic = "#### LoaderInfo: systemd-stub x252 ####";
        stub = stub_from(&b, &sd, &sn);
        cr_assert_eq(uki_stub_version(stub, v, sizeof(v), &major, NULL), -EBADMSG);
        free(stub);
        free(sd);
}

Test(uki, reads_the_real_stub_version) {
        _cleanup_free_ char *d = NULL;
        struct errmsg e = {};
        unsigned major;
        size_t n;
        char v[64];

        if (read_full_file(STUB, 64 << 20, &d, &n) < 0)
                cr_skip_test("systemd-boot-efi is not installed (" STUB ")");
        struct pe_image *pe = parse((uint8_t *) d, n);
        cr_assert_eq(uki_stub_version(pe, v, sizeof(v), &major, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(major, 252, "this machine's stub is %s", v);
        free(pe);
}

/* --- refusals ---------------------------------------------------------- */

static void assert_assemble_refused(const struct pe_image *stub, const struct uki_input *in, size_t n, int error,
                                    const char *needle) {
        uint8_t *out = (uint8_t *) 0x1;
        size_t on = 12345;
        struct errmsg e = {};
        int r = uki_assemble(stub, in, n, &out, &on, &e);

        cr_assert_eq(r, error, "uki_assemble = %d, want %d (%s)", r, error, errmsg_str(&e));
        cr_assert_not_null(strstr(e.text, needle), "reason \"%s\" does not contain \"%s\"", e.text, needle);
        cr_assert_eq(out, (uint8_t *) 0x1, "output touched on failure");
        cr_assert_eq(on, 12345);
}

Test(uki, refuses_bad_inputs) {
        struct pe_builder b;
        uint8_t *sd;
        size_t sn;
        struct pe_image *stub;

        default_stub(&b);
        stub = stub_from(&b, &sd, &sn);

        assert_assemble_refused(stub, four + 1, 3, -EINVAL, "no .linux section");
        struct uki_input dup[] = { INPUT(".linux", kernel), INPUT(".osrel", osrel), INPUT(".linux", kernel) };
        assert_assemble_refused(stub, dup, 3, -EINVAL, "section .linux given twice");
        struct uki_input empty[] = { INPUT(".linux", kernel), { .name = ".cmdline", .data = "", .size = 0 } };
        assert_assemble_refused(stub, empty, 2, -EINVAL, "section .cmdline is empty");
        struct uki_input unknown[] = { INPUT(".linux", kernel), INPUT(".text", osrel) };
        assert_assemble_refused(stub, unknown, 2, -EINVAL, "section \".text\" is not one a UKI carries");
        struct uki_input pcrsig[] = { INPUT(".linux", kernel), INPUT(".pcrsig", osrel) };
        assert_assemble_refused(stub, pcrsig, 2, -EINVAL, "\".pcrsig\" is not one a UKI carries");
        struct uki_input nine[9];
        for (size_t i = 0; i < 9; i++)
                nine[i] = (struct uki_input) INPUT(".linux", kernel);
        assert_assemble_refused(stub, nine, 9, -EINVAL, "9 sections given, at most 8");
        free(stub);
        free(sd);
}

Test(uki, refuses_a_stub_section_the_stub_would_confuse_with_ours) {
        struct pe_builder b;
        uint8_t *sd;
        size_t sn;
        struct pe_image *stub;

        default_stub(&b);
        memcpy(b.s[1].name, ".initrdX", 8); /* the stub compares strlen(".initrd") bytes */
        stub = stub_from(&b, &sd, &sn);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "stub already has a section \".initrdX\" that systemd-stub takes for .initrd");
        free(stub);
        free(sd);

        /* Even a payload section we do not add would be measured. */
        default_stub(&b);
        memcpy(b.s[0].name, ".splash", 8);
        stub = stub_from(&b, &sd, &sn);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "stub already has a section \".splash\"");
        free(stub);
        free(sd);
}

Test(uki, refuses_a_stub_without_room_for_section_headers) {
        struct pe_builder b;
        uint8_t *sd;
        size_t sn;
        struct pe_image *stub;

        /* Section table ends at 0x148 + 4 * 40 = 0x1e8; SizeOfHeaders 0x200
         * leaves room for none. */
        default_stub(&b);
        b.size_of_headers = 0x200;
        for (unsigned i = 0; i < b.n_sections; i++)
                b.s[i].pointer_to_raw_data -= 0x200;
        stub = stub_from(&b, &sd, &sn);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "stub has room for 0 more section headers (SizeOfHeaders 0x200), 4 needed");
        free(stub);
        free(sd);

        /* Room, but something lives there. */
        default_stub(&b);
        cr_assert_eq(pe_builder_build(&b, &sd, &sn), 0);
        sd[pe_builder_section_table(&b) + 4 * 40 + 3] = 0x99;
        stub = parse(sd, sn);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "the room after the section table (0x1e8) is in use");
        free(stub);
        free(sd);
}

Test(uki, refuses_unknown_trailing_data_and_non_efi_stubs) {
        struct pe_builder b;
        uint8_t *sd;
        size_t sn;
        struct pe_image *stub;

        default_stub(&b);
        b.trailing = 0x10;
        b.trailing_fill = 0x42;
        stub = stub_from(&b, &sd, &sn);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "stub: 16 bytes of unidentified data after the last section");
        free(stub);
        free(sd);

        default_stub(&b);
        b.subsystem = 3; /* Windows console */
        stub = stub_from(&b, &sd, &sn);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "stub is not an EFI application (subsystem 3");
        free(stub);
        free(sd);
}

Test(uki, drops_the_symbol_table_and_the_signature) {
        struct pe_builder b;
        uint8_t *sd, *out, *signed_stub;
        size_t sn, on, end, certdir;
        struct errmsg e = {};
        struct pe_image *stub, *uki;

        /* 2 symbols (36 bytes) and a 10-byte string table after the sections. */
        default_stub(&b);
        b.trailing = 36 + 10;
        cr_assert_eq(pe_builder_build(&b, &sd, &sn), 0);
        end = sn - b.trailing;
        pe_write32(sd + pe_builder_coff(&b) + 8, (uint32_t) end);
        pe_write32(sd + pe_builder_coff(&b) + 12, 2);
        pe_write32(sd + end + 36, 10);
        /* ... and a signature after them. */
        signed_stub = calloc(1, sn + 0x20);
        memcpy(signed_stub, sd, sn);
        certdir = pe_builder_dirs(&b) + 4 * 8;
        pe_write32(signed_stub + certdir, (uint32_t) sn);
        pe_write32(signed_stub + certdir + 4, 0x20);
        stub = parse(signed_stub, sn + 0x20);
        cr_assert(stub->has_certificate_table);

        cr_assert_eq(assemble(stub, four, 4, &out, &on, &e), 0, "%s", errmsg_str(&e));
        uki = parse(out, on);
        cr_assert(!uki->has_certificate_table);
        cr_assert_eq(uki->dirs[PE_DIR_SECURITY].virtual_address, 0);
        cr_assert_eq(uki->dirs[PE_DIR_SECURITY].size, 0);
        cr_assert_eq(uki->pointer_to_symbol_table, 0);
        cr_assert_eq(uki->number_of_symbols, 0);
        cr_assert_eq(uki->sections[stub->n_sections].pointer_to_raw_data, stub->sections_end);
        free(uki);
        free(out);
        free(stub);

        /* A string table that does not end where the file does is not one. */
        pe_write32(signed_stub + end + 36, 11);
        stub = parse(signed_stub, sn + 0x20);
        assert_assemble_refused(stub, four, 4, -EBADMSG, "COFF string table at");
        free(stub);
        free(signed_stub);
        free(sd);
}
