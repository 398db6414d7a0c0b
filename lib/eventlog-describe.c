/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding of event data for people: one line per event. Event data is
 * what the firmware claims, unverified; every structure is bounds-checked
 * here again, and whatever does not decode is described as malformed
 * rather than refused (the digest, not the data, is what was measured). */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "encoding.h"
#include "eventlog.h"
#include "openssl-util.h"

#define STRING_MAX 256     /* characters shown of one string */
#define HEX_MAX 16         /* bytes shown of opaque data */
#define PATH_NODES_MAX 32  /* device path nodes shown */
#define LIST_MAX 16        /* partitions, tables, boot entries shown */

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

/* --- strings -------------------------------------------------------------- */

static void put_codepoint(FILE *f, uint32_t c) {
        if (c == '"' || c == '\\')
                fprintf(f, "\\%c", (char) c);
        else if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\x%02x", c);
        else if (c < 0x80)
                fputc((int) c, f);
        else if ((c >= 0x80 && c < 0xa0) || (c >= 0xd800 && c < 0xe000) || c > 0x10ffff)
                fprintf(f, "\\u{%x}", c);
        else if (c < 0x800)
                fprintf(f, "%c%c", 0xc0 | (c >> 6), 0x80 | (c & 0x3f));
        else if (c < 0x10000)
                fprintf(f, "%c%c%c", 0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
        else
                fprintf(f, "%c%c%c%c", 0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f),
                        0x80 | (c & 0x3f));
}

/* An 8-bit string up to its first NUL, quoted; bytes outside ASCII are
 * escaped (the specifications' strings are ASCII). */
static void put_ascii(FILE *f, const uint8_t *s, size_t n) {
        size_t i;

        fputc('"', f);
        for (i = 0; i < n && s[i] && i < STRING_MAX; i++)
                if (s[i] >= 0x80)
                        fprintf(f, "\\x%02x", s[i]);
                else
                        put_codepoint(f, s[i]);
        fputc('"', f);
        if (i == STRING_MAX && i < n && s[i])
                fputs("...", f);
}

/* UTF-16LE of n code units up to the first NUL, as quoted UTF-8. */
static void put_utf16(FILE *f, const uint8_t *s, size_t n) {
        size_t i, shown = 0;

        fputc('"', f);
        for (i = 0; i < n && shown < STRING_MAX; i++, shown++) {
                uint32_t c = le16(s + 2 * i);

                if (c == 0)
                        break;
                if (c >= 0xd800 && c < 0xdc00 && i + 1 < n) {
                        uint32_t lo = le16(s + 2 * i + 2);
                        if (lo >= 0xdc00 && lo < 0xe000) {
                                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                                i++;
                        }
                }
                put_codepoint(f, c);
        }
        fputc('"', f);
        if (shown == STRING_MAX && i < n && le16(s + 2 * i))
                fputs("...", f);
}

/* ASCII up to an optional run of trailing NULs (control characters are
 * escaped when shown). */
static bool is_ascii_string(const uint8_t *s, size_t n) {
        size_t i;

        if (n == 0)
                return false;
        for (i = 0; i < n && s[i]; i++)
                if (s[i] >= 0x80)
                        return false;
        if (i == 0)
                return false;
        for (; i < n; i++)
                if (s[i])
                        return false;
        return true;
}

/* UTF-16LE of printable characters, optionally NUL-terminated. */
static bool is_printable_utf16(const uint8_t *s, size_t n) {
        size_t i;

        if (n < 2 || n % 2)
                return false;
        for (i = 0; i + 1 < n; i += 2) {
                uint16_t c = le16(s + i);
                if (c == 0)
                        break;
                if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || (c >= 0xd800 && c < 0xe000))
                        return false;
        }
        for (; i < n; i++)
                if (s[i])
                        return false;
        return true;
}

static void put_hex(FILE *f, const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n && i < HEX_MAX; i++)
                fprintf(f, "%02x", p[i]);
        if (n > HEX_MAX)
                fputs("...", f);
}

static void put_opaque(FILE *f, const uint8_t *p, size_t n) {
        fprintf(f, "%zu bytes", n);
        if (n > 0) {
                fputs(": ", f);
                put_hex(f, p, n);
        }
}

/* A string if the data is one, else its size and first bytes. */
static void put_string_or_opaque(FILE *f, const uint8_t *p, size_t n) {
        if (is_ascii_string(p, n))
                put_ascii(f, p, n);
        else if (is_printable_utf16(p, n))
                put_utf16(f, p, n / 2);
        else
                put_opaque(f, p, n);
}

/* --- GUIDs ---------------------------------------------------------------- */

static void put_guid(FILE *f, const uint8_t g[16]) {
        fprintf(f, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g), le16(g + 4), le16(g + 6), g[8], g[9],
                g[10], g[11], g[12], g[13], g[14], g[15]);
}

static const struct {
        const char *guid;
        const char *name;
} known_guids[] = {
        { "8be4df61-93ca-11d2-aa0d-00e098032b8c", "EFI global variable" },
        { "d719b2cb-3d3a-4596-a3bc-dad00e67656f", "image security database" },
        { "605dab50-e046-4300-abb6-3dd810dd8b23", "shim" },
        { "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f", "systemd-boot loader" },
        { "a5c059a1-94e4-4aa7-87b5-ab155c2bf072", "X.509 certificate" },
        { "c1c41626-504c-4092-aca9-41f936934328", "SHA-256 hash" },
        { "8868e871-e4f1-11d3-bc22-0080c73c8881", "ACPI 2.0 table" },
        { "eb9d2d30-2d88-11d3-9a16-0090273fc14d", "ACPI 1.0 table" },
        { "eb9d2d31-2d88-11d3-9a16-0090273fc14d", "SMBIOS table" },
        { "f2fd1544-9794-4a2c-992e-e5bbcf20e394", "SMBIOS 3 table" },
        { "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "EFI system partition" },
        { "0fc63daf-8483-4772-8e79-3d69d8477de4", "Linux filesystem" },
        { "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "Linux root (x86-64)" },
        { "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5", "Linux root verity (x86-64)" },
        { "bc13c2ff-59e6-4262-a352-b275fd6f7172", "Linux extended boot" },
        { "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "Linux swap" },
        { "21686148-6449-6e6f-744e-656564454649", "BIOS boot" },
};

static const char *guid_name(const uint8_t g[16]) {
        char s[37];

        snprintf(s, sizeof(s), "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g), le16(g + 4),
                 le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        for (size_t i = 0; i < ELEMENTSOF(known_guids); i++)
                if (streq(s, known_guids[i].guid))
                        return known_guids[i].name;
        return NULL;
}

/* "name (guid)" or "guid". */
static void put_guid_named(FILE *f, const uint8_t g[16]) {
        const char *name = guid_name(g);

        if (name) {
                fprintf(f, "%s (", name);
                put_guid(f, g);
                fputc(')', f);
        } else
                put_guid(f, g);
}

/* --- UEFI device paths ---------------------------------------------------- */

static void put_path_node(FILE *f, uint8_t type, uint8_t sub, const uint8_t *d, size_t n) {
        switch (type << 8 | sub) {
        case 0x0101: /* PCI */
                if (n == 2) {
                        fprintf(f, "Pci(0x%x,0x%x)", d[1], d[0]);
                        return;
                }
                break;
        case 0x0104: /* vendor hardware */
                if (n >= 16) {
                        fputs("VenHw(", f);
                        put_guid(f, d);
                        fputc(')', f);
                        return;
                }
                break;
        case 0x0201: /* ACPI */
                if (n == 8) {
                        uint32_t hid = le32(d), uid = le32(d + 4);
                        if (hid == 0x0a0341d0)
                                fprintf(f, "PciRoot(0x%x)", uid);
                        else if (hid == 0x0a0841d0)
                                fprintf(f, "PcieRoot(0x%x)", uid);
                        else
                                fprintf(f, "Acpi(0x%08x,0x%x)", hid, uid);
                        return;
                }
                break;
        case 0x0302: /* SCSI */
                if (n == 4) {
                        fprintf(f, "Scsi(0x%x,0x%x)", le16(d), le16(d + 2));
                        return;
                }
                break;
        case 0x0305: /* USB */
                if (n == 2) {
                        fprintf(f, "USB(0x%x,0x%x)", d[0], d[1]);
                        return;
                }
                break;
        case 0x030b: /* MAC */
                if (n == 33) {
                        fputs("MAC(", f);
                        put_hex(f, d, 6);
                        fprintf(f, ",0x%x)", d[32]);
                        return;
                }
                break;
        case 0x030a: /* vendor messaging */
                if (n >= 16) {
                        fputs("VenMsg(", f);
                        put_guid(f, d);
                        fputc(')', f);
                        return;
                }
                break;
        case 0x0312: /* SATA */
                if (n == 6) {
                        fprintf(f, "Sata(0x%x,0x%x,0x%x)", le16(d), le16(d + 2), le16(d + 4));
                        return;
                }
                break;
        case 0x0317: /* NVMe */
                if (n == 12) {
                        fprintf(f, "NVMe(0x%x,", le32(d));
                        put_hex(f, d + 4, 8);
                        fputc(')', f);
                        return;
                }
                break;
        case 0x0318: /* URI */
                fputs("Uri(", f);
                put_ascii(f, d, n);
                fputc(')', f);
                return;
        case 0x0401: /* hard drive */
                if (n == 38) {
                        fprintf(f, "HD(%u,", le32(d));
                        if (d[37] == 2) {
                                fputs("GPT,", f);
                                put_guid(f, d + 20);
                        } else if (d[37] == 1)
                                fprintf(f, "MBR,0x%08x", le32(d + 20));
                        else
                                fprintf(f, "0x%x,?", d[37]);
                        fprintf(f, ",0x%llx,0x%llx)", (unsigned long long) le64(d + 4),
                                (unsigned long long) le64(d + 12));
                        return;
                }
                break;
        case 0x0403: /* vendor media */
                if (n >= 16) {
                        fputs("VenMedia(", f);
                        put_guid(f, d);
                        fputc(')', f);
                        return;
                }
                break;
        case 0x0404: /* file path */
                if (n % 2 == 0) {
                        put_utf16(f, d, n / 2);
                        return;
                }
                break;
        case 0x0406: /* PIWG firmware file */
                if (n == 16) {
                        fputs("FvFile(", f);
                        put_guid(f, d);
                        fputc(')', f);
                        return;
                }
                break;
        case 0x0407: /* PIWG firmware volume */
                if (n == 16) {
                        fputs("Fv(", f);
                        put_guid(f, d);
                        fputc(')', f);
                        return;
                }
                break;
        case 0x0408: /* relative offset range */
                if (n == 20) {
                        fprintf(f, "Offset(0x%llx,0x%llx)", (unsigned long long) le64(d + 4),
                                (unsigned long long) le64(d + 12));
                        return;
                }
                break;
        }
        fprintf(f, "Path(%u,%u", type, sub);
        if (n > 0) {
                fputc(',', f);
                put_hex(f, d, n);
        }
        fputc(')', f);
}

/* EFI_DEVICE_PATH_PROTOCOL nodes: type, subType, length (with the 4-byte
 * header), data; up to the end node. */
static void put_device_path(FILE *f, const uint8_t *p, size_t n) {
        size_t off = 0, nodes = 0;

        if (n == 0) {
                fputs("(empty)", f);
                return;
        }
        while (off < n) {
                uint8_t type, sub;
                uint16_t len;

                if (n - off < 4) {
                        fprintf(f, "/(malformed: %zu trailing bytes)", n - off);
                        return;
                }
                type = p[off];
                sub = p[off + 1];
                len = le16(p + off + 2);
                if (len < 4 || len > n - off) {
                        fprintf(f, "%s(malformed node: length %u, %zu bytes left)", nodes ? "/" : "", len, n - off);
                        return;
                }
                if (type == 0x7f && sub == 0xff)
                        return;
                if (nodes == PATH_NODES_MAX) {
                        fputs("/...", f);
                        return;
                }
                if (type == 0x7f && sub == 0x01)
                        fputc(',', f);
                else {
                        if (nodes)
                                fputc('/', f);
                        put_path_node(f, type, sub, p + off + 4, len - 4u);
                }
                nodes++;
                off += len;
        }
}

/* --- event types -------------------------------------------------------- */

static void describe_no_action(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;

        if (n >= 16 && memcmp(d, "Spec ID Event03", 16) == 0 && n >= 28) {
                uint32_t algs = le32(d + 24);
                fprintf(f, "Spec ID Event03: spec %u.%u errata %u, UINTN %u bytes, platform class %u, algorithms", d[21],
                        d[20], d[22], d[23] == 1 ? 4 : 8, le32(d + 16));
                for (uint32_t i = 0; i < algs && i < EVENTLOG_MAX_ALGS && 28 + 4 * (size_t) i + 4 <= n; i++) {
                        uint16_t id = le16(d + 28 + 4 * i);
                        const char *name = eventlog_alg_to_string(id);
                        if (name)
                                fprintf(f, " %s", name);
                        else
                                fprintf(f, " 0x%04x", id);
                }
                return;
        }
        switch (eventlog_event_startup_locality(ev)) {
        case -ENOENT:
                break;
        case -EBADMSG:
                fputs("StartupLocality: malformed", f);
                return;
        default:
                fprintf(f, "StartupLocality: %u", eventlog_event_startup_locality(ev));
                return;
        }
        if (n >= 16 && d[15] == 0 && is_ascii_string(d, 16)) {
                /* Other EV_NO_ACTION events start with a 16-byte signature:
                 * "SP800-155 Event", "NvIndexInstance"... */
                fputs("signature ", f);
                put_ascii(f, d, 16);
                fprintf(f, ", %zu bytes", n);
                return;
        }
        put_opaque(f, d, n);
}

/* UEFI_PLATFORM_FIRMWARE_BLOB: base, length. */
static void describe_blob(FILE *f, const struct eventlog_event *ev) {
        if (ev->data_size == 16 && !is_ascii_string(ev->data, 16))
                fprintf(f, "firmware blob at 0x%llx, length 0x%llx", (unsigned long long) le64(ev->data),
                        (unsigned long long) le64(ev->data + 8));
        else
                put_string_or_opaque(f, ev->data, ev->data_size);
}

/* UEFI_PLATFORM_FIRMWARE_BLOB2: descriptionSize, description, base, length. */
static void describe_blob2(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;

        if (n < 1 || n != 1 + (size_t) d[0] + 16) {
                fputs("malformed UEFI_PLATFORM_FIRMWARE_BLOB2: ", f);
                put_opaque(f, d, n);
                return;
        }
        put_ascii(f, d + 1, d[0]);
        fprintf(f, " at 0x%llx, length 0x%llx", (unsigned long long) le64(d + 1 + d[0]),
                (unsigned long long) le64(d + 9 + d[0]));
}

static void describe_separator(FILE *f, const struct eventlog_event *ev) {
        if (ev->data_size != 4) {
                fputs("separator of unusual size: ", f);
                put_opaque(f, ev->data, ev->data_size);
                return;
        }
        switch (le32(ev->data)) {
        case 0:
                fputs("separator", f);
                break;
        case 1:
                fputs("separator: error (firmware reported a failure, 0x00000001)", f);
                break;
        default:
                fprintf(f, "separator 0x%08x", le32(ev->data));
        }
}

/* TCG_PCClientTaggedEvent: taggedEventID, taggedEventDataSize, data. */
static void describe_tag(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;
        uint32_t id;

        if (n < 8 || le32(d + 4) != n - 8) {
                fputs("malformed TCG_PCClientTaggedEvent: ", f);
                put_opaque(f, d, n);
                return;
        }
        id = le32(d);
        fprintf(f, "tag 0x%08x", id);
        if (id == EVENTLOG_TAG_LINUX_INITRD)
                fputs(" (Linux initrd)", f);
        else if (id == EVENTLOG_TAG_LINUX_LOAD_OPTIONS)
                fputs(" (Linux command line)", f);
        fputs(": ", f);
        put_string_or_opaque(f, d + 8, n - 8);
}

static void describe_sigs(FILE *f, const uint8_t *d, size_t n) {
        size_t off = 0, x509 = 0, sha256 = 0, other = 0;

        /* EFI_SIGNATURE_LIST: SignatureType, SignatureListSize,
         * SignatureHeaderSize, SignatureSize, header, signatures. */
        while (off < n) {
                uint32_t list, header, size;
                size_t count;
                const char *type;

                if (n - off < 28)
                        goto bad;
                list = le32(d + off + 16);
                header = le32(d + off + 20);
                size = le32(d + off + 24);
                if (list < 28 || list > n - off || header > list - 28 || size < 16 || (list - 28 - header) % size)
                        goto bad;
                count = (list - 28 - header) / size;
                type = guid_name(d + off);
                if (type && streq(type, "X.509 certificate"))
                        x509 += count;
                else if (type && streq(type, "SHA-256 hash"))
                        sha256 += count;
                else
                        other += count;
                off += list;
        }
        fprintf(f, "%zu X.509 certificate(s), %zu SHA-256 hash(es)", x509, sha256);
        if (other)
                fprintf(f, ", %zu other signature(s)", other);
        return;
bad:
        fprintf(f, "malformed EFI_SIGNATURE_LIST at byte %zu", off);
}

/* EFI_LOAD_OPTION: Attributes, FilePathListLength, Description (UTF-16,
 * NUL-terminated), FilePathList, OptionalData. */
static void describe_load_option(FILE *f, const uint8_t *d, size_t n) {
        size_t desc_end;
        uint16_t fplen;

        if (n < 6)
                goto bad;
        fplen = le16(d + 4);
        for (desc_end = 6; desc_end + 1 < n && le16(d + desc_end); desc_end += 2)
                ;
        if (desc_end + 1 >= n || fplen > n - desc_end - 2)
                goto bad;
        put_utf16(f, d + 6, (desc_end - 6) / 2);
        fputs(", path ", f);
        put_device_path(f, d + desc_end + 2, fplen);
        if (!(le32(d) & 1))
                fputs(" (inactive)", f);
        return;
bad:
        fputs("malformed EFI_LOAD_OPTION", f);
}

/* UEFI_VARIABLE_DATA: VariableName (GUID), UnicodeNameLength (characters),
 * VariableDataLength, UnicodeName, VariableData. */
static int variable_split(const struct eventlog_event *ev, const uint8_t **ret_name, size_t *ret_name_len,
                          const uint8_t **ret_data, size_t *ret_data_len) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;
        uint64_t name_len, data_len;

        if (n < 32)
                return -EBADMSG;
        name_len = le64(d + 16);
        data_len = le64(d + 24);
        if (name_len > (n - 32) / 2 || data_len != n - 32 - 2 * name_len)
                return -EBADMSG;
        *ret_name = d + 32;
        *ret_name_len = (size_t) name_len;
        *ret_data = d + 32 + 2 * name_len;
        *ret_data_len = (size_t) data_len;
        return 0;
}

static bool utf16_equals(const uint8_t *s, size_t n, const char *ascii) {
        size_t i;

        for (i = 0; i < n && ascii[i]; i++)
                if (le16(s + 2 * i) != (uint8_t) ascii[i])
                        return false;
        /* Allow a terminating NUL counted in the length. */
        return !ascii[i] && (i == n || (i + 1 == n && le16(s + 2 * i) == 0));
}

static bool is_boot_entry(const uint8_t *name, size_t n) {
        static const char hexd[] = "0123456789ABCDEFabcdef";

        if (n < 8 || !utf16_equals(name, 4, "Boot"))
                return false;
        for (size_t i = 4; i < 8; i++) {
                uint16_t c = le16(name + 2 * i);
                if (c >= 0x80 || !strchr(hexd, c))
                        return false;
        }
        return n == 8 || (n == 9 && le16(name + 16) == 0);
}

static void describe_authority(FILE *f, const uint8_t *d, size_t n) {
        const unsigned char *p;
        X509 *x;

        /* EFI_SIGNATURE_DATA: SignatureOwner, SignatureData (a DER
         * certificate for the certificate that allowed an image). */
        if (n > 16) {
                p = d + 16;
                x = d2i_X509(NULL, &p, (long) (n - 16));
                if (x && p == d + n) {
                        char subject[256];
                        X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
                        fputs("certificate ", f);
                        put_ascii(f, (const uint8_t *) subject, strlen(subject));
                        fputs(", owner ", f);
                        put_guid(f, d);
                        X509_free(x);
                        return;
                }
                X509_free(x);
                ERR_clear_error();
        }
        fprintf(f, "%zu bytes", n);
}

static void describe_variable(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *name, *data;
        size_t name_len, data_len;

        if (variable_split(ev, &name, &name_len, &data, &data_len) < 0) {
                fputs("malformed UEFI_VARIABLE_DATA: ", f);
                put_opaque(f, ev->data, ev->data_size);
                return;
        }
        put_utf16(f, name, name_len);
        fputs(" of ", f);
        put_guid_named(f, ev->data);
        fputs(": ", f);

        if (ev->type == EV_EFI_VARIABLE_AUTHORITY) {
                describe_authority(f, data, data_len);
                return;
        }
        if (utf16_equals(name, name_len, "BootOrder")) {
                if (data_len % 2)
                        fputs("malformed BootOrder", f);
                for (size_t i = 0; i + 1 < data_len && i < 2 * LIST_MAX; i += 2)
                        fprintf(f, "%sBoot%04X", i ? "," : "", le16(data + i));
                if (data_len > 2 * LIST_MAX)
                        fputs(",...", f);
                return;
        }
        if (is_boot_entry(name, name_len)) {
                describe_load_option(f, data, data_len);
                return;
        }
        if (utf16_equals(name, name_len, "PK") || utf16_equals(name, name_len, "KEK") ||
            utf16_equals(name, name_len, "db") || utf16_equals(name, name_len, "dbx") ||
            utf16_equals(name, name_len, "dbt") || utf16_equals(name, name_len, "dbr")) {
                if (data_len == 0)
                        fputs("empty", f);
                else
                        describe_sigs(f, data, data_len);
                return;
        }
        put_opaque(f, data, data_len);
}

/* UEFI_IMAGE_LOAD_EVENT: ImageLocationInMemory, ImageLengthInMemory,
 * ImageLinkTimeAddress, LengthOfDevicePath, DevicePath. */
static void describe_image(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;
        uint64_t dp_len;

        if (n < 32 || (dp_len = le64(d + 24)) != n - 32) {
                fputs("malformed UEFI_IMAGE_LOAD_EVENT: ", f);
                put_opaque(f, d, n);
                return;
        }
        fprintf(f, "image length %llu, path ", (unsigned long long) le64(d + 8));
        put_device_path(f, d + 32, (size_t) dp_len);
}

/* UEFI_GPT_DATA: EFI_PARTITION_TABLE_HEADER (92 bytes), NumberOfPartitions
 * (UINT64), EFI_PARTITION_ENTRY of the header's SizeOfPartitionEntry. */
static void describe_gpt(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;
        uint64_t count;
        uint32_t entry_size;

        if (n < 100 || memcmp(d, "EFI PART", 8) != 0)
                goto bad;
        entry_size = le32(d + 84);
        count = le64(d + 92);
        if (entry_size < 128 || count > (n - 100) / entry_size || count * entry_size != n - 100)
                goto bad;
        fputs("disk ", f);
        put_guid(f, d + 56);
        fprintf(f, ", %llu partition(s)", (unsigned long long) count);
        for (uint64_t i = 0; i < count && i < LIST_MAX; i++) {
                const uint8_t *p = d + 100 + i * entry_size;
                fprintf(f, "%s ", i ? ";" : ":");
                put_guid_named(f, p);
                fputc(' ', f);
                put_utf16(f, p + 56, 36);
        }
        if (count > LIST_MAX)
                fputs("; ...", f);
        return;
bad:
        fputs("malformed UEFI_GPT_DATA: ", f);
        put_opaque(f, d, n);
}

/* UEFI_HANDOFF_TABLE_POINTERS: NumberOfTables, {VendorGuid, VendorTable}. */
static void put_tables(FILE *f, const uint8_t *d, size_t n) {
        uint64_t count;

        if (n < 8 || (count = le64(d)) > (n - 8) / 24 || count * 24 != n - 8) {
                fputs("malformed UEFI_HANDOFF_TABLE_POINTERS", f);
                return;
        }
        fprintf(f, "%llu table(s)", (unsigned long long) count);
        for (uint64_t i = 0; i < count && i < LIST_MAX; i++) {
                fputs(i ? ", " : ": ", f);
                put_guid_named(f, d + 8 + 24 * i);
        }
        if (count > LIST_MAX)
                fputs(", ...", f);
}

static void describe_tables2(FILE *f, const struct eventlog_event *ev) {
        const uint8_t *d = ev->data;
        size_t n = ev->data_size;

        if (n < 1 || (size_t) d[0] + 1 > n) {
                fputs("malformed UEFI_HANDOFF_TABLE_POINTERS2", f);
                return;
        }
        put_ascii(f, d + 1, d[0]);
        fputs(", ", f);
        put_tables(f, d + 1 + d[0], n - 1 - d[0]);
}

int eventlog_event_describe(const struct eventlog_event *ev, char **ret) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        switch (ev->type) {
        case EV_NO_ACTION:
                describe_no_action(f, ev);
                break;
        case EV_POST_CODE:
        case EV_POST_CODE2:
        case EV_S_CRTM_CONTENTS:
        case EV_EFI_PLATFORM_FIRMWARE_BLOB:
                describe_blob(f, ev);
                break;
        case EV_EFI_PLATFORM_FIRMWARE_BLOB2:
                describe_blob2(f, ev);
                break;
        case EV_SEPARATOR:
                describe_separator(f, ev);
                break;
        case EV_EVENT_TAG:
                describe_tag(f, ev);
                break;
        case EV_S_CRTM_VERSION:
                if (ev->data_size == 16 && !is_printable_utf16(ev->data, 16)) {
                        fputs("version ", f);
                        put_guid(f, ev->data);
                } else if (ev->data_size % 2 == 0)
                        put_utf16(f, ev->data, ev->data_size / 2);
                else
                        put_opaque(f, ev->data, ev->data_size);
                break;
        case EV_EFI_VARIABLE_DRIVER_CONFIG:
        case EV_EFI_VARIABLE_BOOT:
        case EV_EFI_VARIABLE_BOOT2:
        case EV_EFI_VARIABLE_AUTHORITY:
                describe_variable(f, ev);
                break;
        case EV_EFI_BOOT_SERVICES_APPLICATION:
        case EV_EFI_BOOT_SERVICES_DRIVER:
        case EV_EFI_RUNTIME_SERVICES_DRIVER:
                describe_image(f, ev);
                break;
        case EV_EFI_GPT_EVENT:
                describe_gpt(f, ev);
                break;
        case EV_EFI_HANDOFF_TABLES:
                put_tables(f, ev->data, ev->data_size);
                break;
        case EV_EFI_HANDOFF_TABLES2:
                describe_tables2(f, ev);
                break;
        default:
                /* EV_IPL, EV_ACTION, EV_EFI_ACTION, EV_COMPACT_HASH,
                 * EV_OMIT_BOOT_DEVICE_EVENTS, EV_EFI_HCRTM_EVENT and the
                 * rest: a string (ASCII or UTF-16) or opaque bytes. */
                put_string_or_opaque(f, ev->data, ev->data_size);
        }
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* --- data against digest ---------------------------------------------------- */

static bool sha256_is(const uint8_t *p, size_t n, const uint8_t want[32]) {
        uint8_t h[32];
        return sha256(p, n, h) == 0 && CRYPTO_memcmp(h, want, 32) == 0;
}

enum eventlog_data_check eventlog_event_check_data(const struct eventlog_event *ev) {
        const struct eventlog_digest *d = eventlog_event_digest(ev, EVENTLOG_ALG_SHA256);
        const uint8_t *name, *data;
        size_t name_len, data_len;

        if (!d || !eventlog_event_extends(ev))
                return EVENTLOG_DATA_NOT_CHECKED;
        switch (ev->type) {
        case EV_SEPARATOR:
        case EV_ACTION:
        case EV_EFI_ACTION:
        case EV_S_CRTM_VERSION:
        case EV_OMIT_BOOT_DEVICE_EVENTS:
        case EV_EFI_VARIABLE_DRIVER_CONFIG:
        case EV_EFI_VARIABLE_BOOT2:
        case EV_EFI_VARIABLE_AUTHORITY:
        case EV_EFI_GPT_EVENT:
        case EV_EFI_HANDOFF_TABLES:
        case EV_EFI_HANDOFF_TABLES2:
                return sha256_is(ev->data, ev->data_size, d->value) ? EVENTLOG_DATA_MATCHES : EVENTLOG_DATA_DIFFERS;
        case EV_EFI_VARIABLE_BOOT:
                /* EDK2 hashes only the variable's data (EV_EFI_VARIABLE_BOOT2
                 * was introduced to hash all of it); accept either. */
                if (sha256_is(ev->data, ev->data_size, d->value))
                        return EVENTLOG_DATA_MATCHES;
                if (variable_split(ev, &name, &name_len, &data, &data_len) == 0 &&
                    sha256_is(data, data_len, d->value))
                        return EVENTLOG_DATA_MATCHES;
                return EVENTLOG_DATA_DIFFERS;
        default:
                return EVENTLOG_DATA_NOT_CHECKED;
        }
}
