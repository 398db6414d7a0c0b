/* SPDX-License-Identifier: Apache-2.0 */
#include "authenticode.h"

#include <errno.h>

#include "macro.h"
#include "openssl-util.h"

static int update(EVP_MD_CTX *ctx, const uint8_t *p, size_t n) {
        /* EVP_DigestUpdate takes size_t, but stay in sane chunks. */
        return n == 0 || EVP_DigestUpdate(ctx, p, n) ? 0 : -EIO;
}

int authenticode_digest(const struct pe_image *pe, const EVP_MD *md, uint8_t *out, struct errmsg *e) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = NULL;
        const uint8_t *d = pe->data;
        unsigned order[PE_MAX_SECTIONS];
        size_t n = 0, sum, cert_size = 0, end;
        unsigned len;

        if (pe->has_certificate_table) {
                if (pe->certificate_table_offset + pe->certificate_table_size != pe->size)
                        return errmsg_set(e, EBADMSG,
                                          "certificate table at 0x%zx, size 0x%zx, is not at the end of the file "
                                          "(size 0x%zx)",
                                          pe->certificate_table_offset, pe->certificate_table_size, pe->size);
                cert_size = pe->certificate_table_size;
        }

        ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        if (!EVP_DigestInit_ex(ctx, md, NULL))
                return openssl_error(e, -EINVAL, "Authenticode digest");

        /* Headers, minus CheckSum and the certificate table's directory entry. */
        if (update(ctx, d, pe->checksum_offset) < 0)
                goto fail;
        if (pe->n_data_directories > PE_DIR_SECURITY) {
                size_t cert_dir = pe->dirs_offset + PE_DIR_SECURITY * PE_DATA_DIRECTORY_SIZE;
                if (update(ctx, d + pe->checksum_offset + 4, cert_dir - (pe->checksum_offset + 4)) < 0 ||
                    update(ctx, d + cert_dir + PE_DATA_DIRECTORY_SIZE,
                           pe->size_of_headers - (cert_dir + PE_DATA_DIRECTORY_SIZE)) < 0)
                        goto fail;
        } else if (update(ctx, d + pe->checksum_offset + 4, pe->size_of_headers - (pe->checksum_offset + 4)) < 0)
                goto fail;
        sum = pe->size_of_headers;

        /* Sections by file offset; the parser guarantees they do not overlap. */
        for (unsigned i = 0; i < pe->n_sections; i++) {
                size_t j;
                if (pe->sections[i].size_of_raw_data == 0)
                        continue;
                for (j = n; j > 0 && pe->sections[order[j - 1]].pointer_to_raw_data >
                                             pe->sections[i].pointer_to_raw_data;
                     j--)
                        order[j] = order[j - 1];
                order[j] = i;
                n++;
        }
        for (size_t i = 0; i < n; i++) {
                const struct pe_section *s = &pe->sections[order[i]];
                if (update(ctx, d + s->pointer_to_raw_data, s->size_of_raw_data) < 0)
                        goto fail;
                sum += s->size_of_raw_data;
        }

        /* Trailing data, up to the certificate table. */
        end = pe->size - cert_size;
        if (sum > end)
                return errmsg_set(e, EBADMSG,
                                  "headers and sections (0x%zx bytes) are longer than the file without its "
                                  "certificate table (0x%zx bytes)",
                                  sum, end);
        if (update(ctx, d + sum, end - sum) < 0)
                goto fail;

        if (!EVP_DigestFinal_ex(ctx, out, &len))
                goto fail;
        return 0;
fail:
        return openssl_error(e, -EIO, "Authenticode digest");
}
