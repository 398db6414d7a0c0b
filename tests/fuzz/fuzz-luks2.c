/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the state disk's parsers: the LUKS2 header checks (lib/luks2.c) and
 * the recovery endpoint's messages (lib/disk-recover.c). The first byte
 * selects: 0 the JSON metadata check, 1 the token parser, 2 the raw binary
 * headers, 3 the rest as JSON wrapped into two binary headers with valid
 * checksums (so the fuzzer reaches the JSON checks through the header path
 * without having to forge SHA-256), 4 recover request, 5 recover response,
 * 6 recovery status. */
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "disk-recover.h"
#include "errmsg.h"
#include "luks2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 16384

static void wrap(uint8_t *b, const uint8_t *json, size_t n, int secondary) {
        static const uint8_t m1[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe }, m2[6] = { 'S', 'K', 'U', 'L', 0xba, 0xbe };
        memcpy(b, secondary ? m2 : m1, 6);
        b[7] = 2;
        b[8 + 6] = HDR >> 8; /* hdr_size, big endian */
        b[16 + 7] = 1;       /* seqid */
        memcpy(b + 72, "sha256", 6);
        memcpy(b + 168, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", 36);
        if (secondary)
                b[256 + 6] = HDR >> 8;
        memcpy(b + 4096, json, n);
        SHA256(b, HDR, b + 448);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct luks2_info info;
        struct errmsg e = {};
        bool init;
        int r = 0;

        if (size < 1)
                return 0;
        switch (data[0] & 7) {
        case 0:
                r = luks2_json_check((const char *) data + 1, size - 1, &info, &e);
                break;
        case 1:
                r = luks2_token_parse((const char *) data + 1, size - 1, &init, &e);
                break;
        case 2: {
                uint8_t *copy;
                r = luks2_header_check(data + 1, size - 1, &info, &e);
                copy = malloc(size - 1 ? size - 1 : 1);
                if (!copy)
                        return 0;
                memcpy(copy, data + 1, size - 1);
                if (luks2_header_repair(copy, size - 1, NULL, NULL) > 0)
                        (void) luks2_header_check(copy, size - 1, &info, NULL);
                free(copy);
                break;
        }
        case 3: {
                uint8_t *b;
                if (size - 1 > HDR - 4096)
                        return 0;
                b = calloc(1, 2 * HDR);
                if (!b)
                        return 0;
                wrap(b, data + 1, size - 1, 0);
                wrap(b + HDR, data + 1, size - 1, 1);
                r = luks2_header_check(b, 2 * HDR, &info, &e);
                free(b);
                if (r >= 0 && (info.data_offset > LUKS2_MAX_DATA_OFFSET || strlen(info.uuid) != 36))
                        abort();
                break;
        }
        case 4: {
                struct recover_request m;
                r = recover_request_parse((const char *) data + 1, size - 1, &m, &e);
                if (r >= 0)
                        recover_request_done(&m);
                break;
        }
        case 5: {
                struct recover_response m;
                r = recover_response_parse((const char *) data + 1, size - 1, &m, &e);
                if (r >= 0 && !valid_uuid(m.disk_uuid))
                        abort();
                break;
        }
        case 6: {
                struct recover_status m;
                r = recover_status_parse((const char *) data + 1, size - 1, &m, &e);
                break;
        }
        }
        if (r < 0 && !e.text[0])
                abort(); /* every refusal says why */
        return 0;
}
