/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure uki list|extract|assemble */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "measure.h"
#include "openssl-util.h"
#include "pcr11.h"
#include "uki.h"

/* The largest single section input (kernel, initrd) we read. */
#define MAX_SECTION_FILE_SIZE ((size_t) 1024 * 1024 * 1024)

static void help(void) {
        printf("Usage: arca-measure uki list [-o text|json] UKI\n"
               "       arca-measure uki extract UKI SECTION OUTPUT|-\n"
               "       arca-measure uki assemble --linux FILE [--initrd FILE] [--cmdline FILE]\n"
               "                                 [--osrel FILE] [--uname FILE] [--splash FILE]\n"
               "                                 [--dtb FILE] [--pcrpkey FILE] [--stub FILE]\n"
               "                                 --output FILE\n\n"
               "list      print the PE sections of a UKI (or any PE image): name, virtual\n"
               "          address and size, file offset and size, SHA-256 of the section as\n"
               "          loaded, and whether systemd-stub %u measures it into PCR 11\n"
               "extract   write one section as loaded (VirtualSize bytes) to OUTPUT (- for stdout)\n"
               "assemble  build a UKI on systemd-stub like ukify: each FILE becomes the section\n"
               "          of the same name, appended after the stub's sections; the stub's\n"
               "          signature and symbol table are dropped\n\n"
               "  --stub FILE          systemd-stub to build on (default %s)\n"
               "  -o, --output FILE    (assemble) where to write the UKI\n"
               "  -o, --output FORMAT  (list) text (default) or json\n",
               PCR11_STUB_VERSION, UKI_DEFAULT_STUB);
}

static const char *section_flags(uint32_t c, char buf[8]) {
        snprintf(buf, 8, "%c%c%c%s", c & PE_SCN_MEM_READ ? 'r' : '-', c & PE_SCN_MEM_WRITE ? 'w' : '-',
                 c & PE_SCN_MEM_EXECUTE ? 'x' : '-', c & PE_SCN_CNT_CODE ? "c" : "");
        return buf;
}

static int section_sha256(const struct pe_image *pe, const struct pe_section *s, uint8_t out[32]) {
        struct pcr11_section ps = { .name = s->name };
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        static const uint8_t zeros[4096];

        pe_section_content(pe, s, &ps.data, &ps.file_size, &ps.size);
        if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
            (ps.file_size && !EVP_DigestUpdate(ctx, ps.data, ps.file_size)))
                return openssl_errno(-EIO);
        for (size_t left = ps.size - ps.file_size; left > 0;) {
                size_t k = left < sizeof(zeros) ? left : sizeof(zeros);
                if (!EVP_DigestUpdate(ctx, zeros, k))
                        return openssl_errno(-EIO);
                left -= k;
        }
        return EVP_DigestFinal_ex(ctx, out, NULL) ? 0 : openssl_errno(-EIO);
}

/* The stub measures a section when its name matches one of its list and
 * it is the last header to match it (see pcr11.h). */
static bool measured_by_stub(const struct pe_image *pe, unsigned index) {
        for (size_t i = 0;; i++) {
                bool measured;
                const char *name = pcr11_stub_section(i, &measured);
                unsigned last = UINT32_MAX;

                if (!name)
                        return false;
                for (unsigned k = 0; k < pe->n_sections; k++)
                        if (memcmp(pe->sections[k].raw_name, name, strlen(name)) == 0)
                                last = k;
                if (last == index && measured && pe->sections[index].virtual_size > 0)
                        return true;
        }
}

static int uki_list(int argc, char **argv) {
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        const char *output = "text";
        char version[64] = "", flags[8];
        json_object *sections = NULL;
        struct errmsg e = {};
        unsigned major = 0;
        bool json;
        size_t size;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) >= 0)
                switch (c) {
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!streq(output, "text") && !streq(output, "json")) {
                log_error("Unknown output format \"%s\": use text or json.", output);
                return 2;
        }
        json = streq(output, "json");
        if (optind + 1 != argc) {
                log_error("arca-measure uki list needs exactly one UKI (see --help).");
                return 2;
        }
        if (measure_load_pe(argv[optind], &data, &size, &pe) < 0)
                return 1;
        r = uki_stub_version(pe, version, sizeof(version), &major, &e);
        if (r < 0 && r != -ENOENT)
                log_warning("\"%s\": %s", argv[optind], errmsg_str(&e));

        if (json) {
                root = json_object_new_object();
                sections = json_object_new_array();
                if (!root || json_add(root, "sections", sections) < 0 ||
                    json_add_string(root, "machine", pe_machine_to_string(pe->machine)) < 0 ||
                    (version[0] && json_add_string(root, "stubVersion", version) < 0))
                        return log_oom(), 1;
        } else {
                printf("%s: %s PE%s, %u sections", argv[optind], pe_machine_to_string(pe->machine),
                       pe->magic == PE_MAGIC_PE32PLUS ? "32+" : "32", pe->n_sections);
                if (version[0])
                        printf(", systemd-stub %s", version);
                printf("\n%-3s %-8s %-10s %-10s %-10s %-10s %-5s %-5s %s\n", "IDX", "NAME", "VADDR", "VSIZE",
                       "OFFSET", "RAWSIZE", "FLAGS", "PCR11", "SHA256");
        }
        for (unsigned i = 0; i < pe->n_sections; i++) {
                const struct pe_section *s = &pe->sections[i];
                bool measured = measured_by_stub(pe, i);
                uint8_t digest[32];
                char hex[65];

                r = section_sha256(pe, s, digest);
                if (r < 0)
                        return log_error_errno(r, "Cannot hash section %s: %m", s->name), 1;
                hex_encode_buf(digest, 32, hex);
                if (json) {
                        json_object *o = json_object_new_object();
                        if (!o || json_object_array_add(sections, o) < 0 || json_add_int(o, "index", i) < 0 ||
                            json_add_string(o, "name", s->name) < 0 ||
                            json_add_int(o, "virtualAddress", s->virtual_address) < 0 ||
                            json_add_int(o, "virtualSize", s->virtual_size) < 0 ||
                            json_add_int(o, "fileOffset", s->pointer_to_raw_data) < 0 ||
                            json_add_int(o, "fileSize", s->size_of_raw_data) < 0 ||
                            json_add_int(o, "characteristics", s->characteristics) < 0 ||
                            json_add_bool(o, "measuredIntoPCR11", measured) < 0 ||
                            json_add_string(o, "sha256", hex) < 0)
                                return log_oom(), 1;
                } else
                        printf("%-3u %-8s 0x%08x 0x%08x 0x%08x 0x%08x %-5s %-5s %s\n", i, s->name,
                               s->virtual_address, s->virtual_size, s->pointer_to_raw_data, s->size_of_raw_data,
                               section_flags(s->characteristics, flags), measured ? "yes" : "-", hex);
        }
        if (json)
                printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
        if (version[0] && major != PCR11_STUB_VERSION && !json)
                printf("note: PCR11 column describes systemd-stub %u, this stub is %s\n", PCR11_STUB_VERSION,
                       version);
        return 0;
}

static int uki_extract(int argc, char **argv) {
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ uint8_t *data = NULL, *buf = NULL;
        const struct pe_section *s;
        const uint8_t *p;
        size_t size, fsize, vsize;
        int r;

        if (argc >= 2 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                help();
                return 0;
        }
        if (argc != 4) {
                log_error("Usage: arca-measure uki extract UKI SECTION OUTPUT|-");
                return 2;
        }
        if (measure_load_pe(argv[1], &data, &size, &pe) < 0)
                return 1;
        s = pe_find_section(pe, argv[2]);
        if (!s) {
                log_error("\"%s\" has no section \"%s\".", argv[1], argv[2]);
                return 1;
        }
        pe_section_content(pe, s, &p, &fsize, &vsize);
        buf = calloc(1, vsize ? vsize : 1);
        if (!buf)
                return log_oom(), 1;
        memcpy(buf, p, fsize);
        if (streq(argv[3], "-")) {
                r = write_all(STDOUT_FILENO, buf, vsize);
                if (r < 0)
                        return log_error_errno(r, "Cannot write to stdout: %m"), 1;
        } else {
                r = write_file_atomic(argv[3], buf, vsize, 0644);
                if (r < 0)
                        return log_error_errno(r, "Cannot write \"%s\": %m", argv[3]), 1;
        }
        return 0;
}

static int uki_assemble_verb(int argc, char **argv) {
        enum { ARG_STUB = 0x100 };
        static const struct option opts[] = {
                { "linux", required_argument, NULL, 'L' },   { "initrd", required_argument, NULL, 'I' },
                { "cmdline", required_argument, NULL, 'C' }, { "osrel", required_argument, NULL, 'O' },
                { "uname", required_argument, NULL, 'U' },   { "splash", required_argument, NULL, 'S' },
                { "dtb", required_argument, NULL, 'D' },     { "pcrpkey", required_argument, NULL, 'P' },
                { "stub", required_argument, NULL, ARG_STUB }, { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        struct {
                const char *name;
                const char *path;
                char *data;
                size_t size;
        } files[UKI_MAX_ADDED_SECTIONS] = {};
        _cleanup_free_ struct pe_image *stub = NULL;
        _cleanup_free_ uint8_t *stub_data = NULL, *out = NULL;
        struct uki_input inputs[UKI_MAX_ADDED_SECTIONS];
        const char *stub_path = UKI_DEFAULT_STUB, *output = NULL, *name;
        size_t n = 0, stub_size, out_size;
        struct errmsg e = {};
        int c, r, ret = 1;

        optind = 0;
        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'L':
                        name = UKI_SECTION_LINUX;
                        break;
                case 'I':
                        name = UKI_SECTION_INITRD;
                        break;
                case 'C':
                        name = UKI_SECTION_CMDLINE;
                        break;
                case 'O':
                        name = UKI_SECTION_OSREL;
                        break;
                case 'U':
                        name = UKI_SECTION_UNAME;
                        break;
                case 'S':
                        name = UKI_SECTION_SPLASH;
                        break;
                case 'D':
                        name = UKI_SECTION_DTB;
                        break;
                case 'P':
                        name = UKI_SECTION_PCRPKEY;
                        break;
                case ARG_STUB:
                        stub_path = optarg;
                        continue;
                case 'o':
                        output = optarg;
                        continue;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
                for (size_t i = 0; i < n; i++)
                        if (streq(files[i].name, name)) {
                                log_error("--%s given twice.", name + 1);
                                return 2;
                        }
                files[n].name = name;
                files[n].path = optarg;
                n++;
        }
        if (optind != argc || !output) {
                log_error("arca-measure uki assemble needs --output and no positional arguments (see --help).");
                return 2;
        }

        if (measure_load_pe(stub_path, &stub_data, &stub_size, &stub) < 0)
                goto finish;
        for (size_t i = 0; i < n; i++) {
                r = read_full_file(files[i].path, MAX_SECTION_FILE_SIZE, &files[i].data, &files[i].size);
                if (r < 0) {
                        log_error_errno(r, "Cannot read \"%s\" (for %s): %m", files[i].path, files[i].name);
                        goto finish;
                }
                inputs[i] = (struct uki_input) { .name = files[i].name, .data = files[i].data, .size = files[i].size };
        }
        r = uki_assemble(stub, inputs, n, &out, &out_size, &e);
        if (r < 0) {
                log_error_errno(r, "Cannot assemble a UKI on \"%s\": %s", stub_path, errmsg_str(&e));
                goto finish;
        }
        r = write_file_atomic(output, out, out_size, 0644);
        if (r < 0) {
                log_error_errno(r, "Cannot write \"%s\": %m", output);
                goto finish;
        }
        ret = 0;
finish:
        for (size_t i = 0; i < n; i++)
                free(files[i].data);
        return ret;
}

int verb_uki(int argc, char **argv) {
        if (argc < 2 || streq(argv[1], "-h") || streq(argv[1], "--help")) {
                help();
                return argc < 2 ? 2 : 0;
        }
        if (streq(argv[1], "list"))
                return uki_list(argc - 1, argv + 1);
        if (streq(argv[1], "extract"))
                return uki_extract(argc - 1, argv + 1);
        if (streq(argv[1], "assemble"))
                return uki_assemble_verb(argc - 1, argv + 1);
        log_error("Unknown uki command \"%s\": use list, extract or assemble.", argv[1]);
        return 2;
}
