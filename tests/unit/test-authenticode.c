/* SPDX-License-Identifier: Apache-2.0 */
/* Authenticode image hash: exactly the ranges the PE/COFF specification
 * lists, nothing more, nothing less. (Agreement with pesign, osslsigncode, sbsigntool
 * and the firmware is checked in tests/integration/test-measure.sh and
 * tests/vm/test-uki-boot.sh.) */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "authenticode.h"
#include "openssl-util.h"
#include "pe-builder.h"
#include "pe.h"

static int hash(const uint8_t *d, size_t n, uint8_t out[32], struct errmsg *e) {
        struct pe_image *pe = malloc(sizeof(*pe));
        int r;

        cr_assert_not_null(pe);
        r = pe_parse(d, n, pe, e);
        cr_assert_eq(r, 0, "pe_parse: %s", errmsg_str(e));
        r = authenticode_sha256(pe, out, e);
        free(pe);
        return r;
}

static void hash_ok(const uint8_t *d, size_t n, uint8_t out[32]) {
        struct errmsg e = {};
        int r = hash(d, n, out, &e);
        cr_assert_eq(r, 0, "authenticode: %d %s", r, errmsg_str(&e));
}

/* The specification's steps, written out for the builder's layout. */
static void expected_hash(const uint8_t *d, size_t n, const struct pe_builder *b, const unsigned *file_order,
                          size_t cert_size, uint8_t out[32]) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t checksum = pe_builder_opt(b) + 64, certdir = pe_builder_dirs(b) + 4 * 8, sum;

        cr_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
        EVP_DigestUpdate(ctx, d, checksum);
        if (b->n_dirs > 4) {
                EVP_DigestUpdate(ctx, d + checksum + 4, certdir - checksum - 4);
                EVP_DigestUpdate(ctx, d + certdir + 8, b->size_of_headers - certdir - 8);
        } else
                EVP_DigestUpdate(ctx, d + checksum + 4, b->size_of_headers - checksum - 4);
        sum = b->size_of_headers;
        for (unsigned i = 0; i < b->n_sections; i++) {
                const struct pe_builder_section *s = &b->s[file_order[i]];
                EVP_DigestUpdate(ctx, d + s->pointer_to_raw_data, s->size_of_raw_data);
                sum += s->size_of_raw_data;
        }
        EVP_DigestUpdate(ctx, d + sum, n - cert_size - sum);
        EVP_DigestFinal_ex(ctx, out, NULL);
        EVP_MD_CTX_free(ctx);
}

Test(authenticode, hashes_the_specified_ranges) {
        static const unsigned order[] = { 0, 1, 2 };
        uint8_t *d, got[32], want[32];
        struct pe_builder b;
        size_t n;

        pe_builder_init(&b, 3);
        b.trailing = 0x33; /* trailing data is hashed too */
        b.trailing_fill = 0x77;
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        hash_ok(d, n, got);
        expected_hash(d, n, &b, order, 0, want);
        cr_assert_arr_eq(got, want, 32);
        free(d);
}

Test(authenticode, hashes_sections_in_file_order_not_table_order) {
        static const unsigned file_order[] = { 2, 0, 1 };
        static const unsigned table_order[] = { 0, 1, 2 };
        uint8_t *d, got[32], want[32], wrong[32];
        struct pe_builder b;
        size_t n;

        pe_builder_init(&b, 3);
        b.s[2].pointer_to_raw_data = 0x400;
        b.s[0].pointer_to_raw_data = 0x600;
        b.s[1].pointer_to_raw_data = 0x800;
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        hash_ok(d, n, got);
        expected_hash(d, n, &b, file_order, 0, want);
        expected_hash(d, n, &b, table_order, 0, wrong);
        cr_assert_arr_eq(got, want, 32);
        cr_assert_arr_neq(got, wrong, 32);
        free(d);
}

Test(authenticode, skips_checksum_and_certificate_directory_only) {
        uint8_t *d, base[32], h[32];
        struct pe_builder b;
        size_t n, checksum, certdir;

        pe_builder_init(&b, 2);
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        checksum = pe_builder_opt(&b) + 64;
        certdir = pe_builder_dirs(&b) + 4 * 8;
        hash_ok(d, n, base);

        /* The checksum does not count. */
        pe_write32(d + checksum, 0x12345678);
        hash_ok(d, n, h);
        cr_assert_arr_eq(h, base, 32);
        /* A byte next to it does. */
        d[checksum + 4] ^= 1;
        hash_ok(d, n, h);
        cr_assert_arr_neq(h, base, 32);
        d[checksum + 4] ^= 1;
        d[checksum - 12] ^= 1; /* Win32VersionValue */
        hash_ok(d, n, h);
        cr_assert_arr_neq(h, base, 32);
        d[checksum - 12] ^= 1;
        /* The directory entry before the certificate table's counts. */
        d[certdir - 8] ^= 1;
        hash_ok(d, n, h);
        cr_assert_arr_neq(h, base, 32);
        d[certdir - 8] ^= 1;
        /* Header slack up to SizeOfHeaders counts. */
        d[0x3ff] ^= 1;
        hash_ok(d, n, h);
        cr_assert_arr_neq(h, base, 32);
        d[0x3ff] ^= 1;
        /* Section data counts. */
        d[0x500] ^= 1;
        hash_ok(d, n, h);
        cr_assert_arr_neq(h, base, 32);
        free(d);
}

/* Signing appends a certificate table and points directory entry 4 at
 * it; the hash must not change, or no signature could ever verify. */
Test(authenticode, appending_a_certificate_table_keeps_the_hash) {
        uint8_t *d, *signed_d, base[32], h[32];
        struct pe_builder b;
        size_t n, certdir;

        pe_builder_init(&b, 2);
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        hash_ok(d, n, base);

        signed_d = calloc(1, n + 0x48);
        memcpy(signed_d, d, n);
        memset(signed_d + n, 0xc5, 0x48);
        certdir = pe_builder_dirs(&b) + 4 * 8;
        pe_write32(signed_d + certdir, (uint32_t) n);
        pe_write32(signed_d + certdir + 4, 0x48);
        pe_write32(signed_d + pe_builder_opt(&b) + 64, 0xdeadbeef);
        hash_ok(signed_d, n + 0x48, h);
        cr_assert_arr_eq(h, base, 32);
        free(signed_d);
        free(d);
}

Test(authenticode, refuses_certificate_table_not_at_the_end) {
        uint8_t *d, h[32];
        struct pe_builder b;
        struct errmsg e = {};
        size_t n, certdir;

        pe_builder_init(&b, 1);
        b.trailing = 0x80;
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        certdir = pe_builder_dirs(&b) + 4 * 8;
        pe_write32(d + certdir, 0x600);
        pe_write32(d + certdir + 4, 0x40); /* 0x40 bytes follow it */
        cr_assert_eq(hash(d, n, h, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "certificate table at 0x600, size 0x40, is not at the end of the file"),
                           "%s", e.text);
        free(d);
}

Test(authenticode, without_certificate_directory_hashes_all_headers_but_checksum) {
        static const unsigned order[] = { 0, 1 };
        uint8_t *d, got[32], want[32];
        struct pe_builder b;
        size_t n;

        pe_builder_init(&b, 2);
        b.n_dirs = 4; /* no entry 4 */
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        hash_ok(d, n, got);
        expected_hash(d, n, &b, order, 0, want);
        cr_assert_arr_eq(got, want, 32);
        free(d);
}

Test(authenticode, pe32_hashes_like_pe32plus_at_its_own_offsets) {
        static const unsigned order[] = { 0, 1 };
        uint8_t *d, got[32], want[32];
        struct pe_builder b;
        size_t n;

        pe_builder_init(&b, 2);
        b.pe32 = true;
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        hash_ok(d, n, got);
        expected_hash(d, n, &b, order, 0, want);
        cr_assert_arr_eq(got, want, 32);
        free(d);
}

Test(authenticode, other_digests) {
        uint8_t *d, out[64], sha256[32];
        struct pe_builder b;
        struct errmsg e = {};
        struct pe_image *pe = malloc(sizeof(*pe));
        size_t n;

        pe_builder_init(&b, 1);
        cr_assert_eq(pe_builder_build(&b, &d, &n), 0);
        cr_assert_eq(pe_parse(d, n, pe, &e), 0);
        cr_assert_eq(authenticode_digest(pe, EVP_sha384(), out, &e), 0);
        cr_assert_eq(authenticode_sha256(pe, sha256, &e), 0);
        cr_assert_arr_neq(out, sha256, 32);
        free(pe);
        free(d);
}
