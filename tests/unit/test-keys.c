/* SPDX-License-Identifier: Apache-2.0 */
/* Key derivations of DESIGN.md (Keys) against an independent implementation
 * of HKDF-SHA256: the openssl command line tool, run at test time. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "encoding.h"
#include "keys.h"
#include "secret.h"

/* Fixed inputs, so that a failure is reproducible; one test also uses
 * random ones. */
static const uint8_t master[KEY_SIZE] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static const uint8_t salt[KEY_SIZE] = {
        0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f,
        0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00,
};
static const uint8_t measurement_salt[KEY_SIZE] = {
        0x5a, 0x5a, 0x5a, 0x5a, 0xa5, 0xa5, 0xa5, 0xa5, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
        0x13, 0x37, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe, 0x00, 0x00, 0x00, 0x01,
};

#define UUID_LOWER "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define UUID_UPPER "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
#define UUID_OTHER "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1"

static void require_openssl(void) {
        if (system("command -v openssl >/dev/null 2>&1") != 0)
                cr_skip_test("the openssl command line tool is not installed (package openssl)");
}

/* HKDF-SHA256(ikm, salt, info), 32 bytes, computed by `openssl kdf`. */
static void openssl_hkdf(const uint8_t ikm[KEY_SIZE], const uint8_t s[KEY_SIZE], const char *info,
                         uint8_t out[KEY_SIZE]) {
        char ikm_hex[2 * KEY_SIZE + 1], salt_hex[2 * KEY_SIZE + 1], cmd[512], line[256], digits[128];
        size_t n = 0;
        FILE *p;
        int st;

        hex_encode_buf(ikm, KEY_SIZE, ikm_hex);
        hex_encode_buf(s, KEY_SIZE, salt_hex);
        /* info is one of our fixed ids: no shell quoting needed. */
        snprintf(cmd, sizeof(cmd),
                 "openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:%s -kdfopt hexsalt:%s "
                 "-kdfopt info:%s HKDF",
                 ikm_hex, salt_hex, info);
        p = popen(cmd, "r");
        cr_assert_not_null(p, "popen(openssl) failed");
        /* "8E:8B:DF:...", possibly followed by an empty line. */
        while (fgets(line, sizeof(line), p))
                for (char *c = line; *c; c++)
                        if (*c != ':' && *c != '\n' && *c != '\r' && *c != ' ') {
                                cr_assert_lt(n, sizeof(digits) - 1, "unexpected output from openssl kdf");
                                digits[n++] = *c;
                        }
        digits[n] = 0;
        st = pclose(p);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", cmd);
        cr_assert_eq(hex_decode_exact(digits, out, KEY_SIZE), 0, "openssl kdf printed \"%s\"", digits);
}

static void assert_key_eq(const uint8_t got[KEY_SIZE], const uint8_t want[KEY_SIZE], const char *what) {
        char g[2 * KEY_SIZE + 1], w[2 * KEY_SIZE + 1];

        hex_encode_buf(got, KEY_SIZE, g);
        hex_encode_buf(want, KEY_SIZE, w);
        cr_assert_str_eq(g, w, "%s: got %s, openssl says %s", what, g, w);
}

Test(keys, disk_key_matches_openssl) {
        uint8_t got[KEY_SIZE], want[KEY_SIZE];

        require_openssl();
        openssl_hkdf(master, salt, "key-" UUID_LOWER, want);
        cr_assert_eq(key_disk(master, salt, UUID_LOWER, got), 0);
        assert_key_eq(got, want, "disk key");
}

/* The id is the lowercase UUID, whatever case the caller passes. */
Test(keys, disk_key_of_uppercase_uuid_uses_lowercase_id) {
        uint8_t got[KEY_SIZE], want[KEY_SIZE], upper_id[KEY_SIZE];

        require_openssl();
        openssl_hkdf(master, salt, "key-" UUID_LOWER, want);
        cr_assert_eq(key_disk(master, salt, UUID_UPPER, got), 0);
        assert_key_eq(got, want, "disk key of the uppercase UUID");
        /* And that is not what the uppercase id would give. */
        openssl_hkdf(master, salt, "key-" UUID_UPPER, upper_id);
        cr_assert_arr_neq(got, upper_id, KEY_SIZE);
}

Test(keys, disk_key_mixed_case_uuid_equals_lowercase) {
        uint8_t a[KEY_SIZE], b[KEY_SIZE];

        cr_assert_eq(key_disk(master, salt, "0F1e2D3c-4b5A-6978-8796-A5b4C3d2E1f0", a), 0);
        cr_assert_eq(key_disk(master, salt, UUID_LOWER, b), 0);
        cr_assert_arr_eq(a, b, KEY_SIZE);
}

Test(keys, disk_keys_differ_per_uuid) {
        uint8_t a[KEY_SIZE], b[KEY_SIZE], want[KEY_SIZE];

        require_openssl();
        cr_assert_eq(key_disk(master, salt, UUID_LOWER, a), 0);
        cr_assert_eq(key_disk(master, salt, UUID_OTHER, b), 0);
        cr_assert_arr_neq(a, b, KEY_SIZE);
        openssl_hkdf(master, salt, "key-" UUID_OTHER, want);
        assert_key_eq(b, want, "disk key of a second UUID");
}

Test(keys, disk_key_depends_on_master_and_salt) {
        uint8_t base[KEY_SIZE], k[KEY_SIZE], m2[KEY_SIZE], s2[KEY_SIZE];

        memcpy(m2, master, KEY_SIZE);
        memcpy(s2, salt, KEY_SIZE);
        m2[31] ^= 1;
        s2[0] ^= 0x80;
        cr_assert_eq(key_disk(master, salt, UUID_LOWER, base), 0);
        cr_assert_eq(key_disk(m2, salt, UUID_LOWER, k), 0);
        cr_assert_arr_neq(base, k, KEY_SIZE);
        cr_assert_eq(key_disk(master, s2, UUID_LOWER, k), 0);
        cr_assert_arr_neq(base, k, KEY_SIZE);
}

Test(keys, disk_key_random_inputs_match_openssl) {
        uint8_t m[KEY_SIZE], s[KEY_SIZE], got[KEY_SIZE], want[KEY_SIZE];

        require_openssl();
        cr_assert_eq(secret_random(m, sizeof(m)), 0);
        cr_assert_eq(secret_random(s, sizeof(s)), 0);
        openssl_hkdf(m, s, "key-" UUID_LOWER, want);
        cr_assert_eq(key_disk(m, s, UUID_UPPER, got), 0);
        assert_key_eq(got, want, "disk key (random master and salt)");
}

Test(keys, measurement_secret_matches_openssl) {
        uint8_t got[KEY_SIZE], want[KEY_SIZE];

        require_openssl();
        openssl_hkdf(master, salt, "key-measurementSecret", want);
        cr_assert_eq(key_measurement_secret(master, salt, got), 0);
        assert_key_eq(got, want, "measurement secret");
}

/* cluster ID = HKDF(measurement secret, measurement salt, "key-clusterID"),
 * the whole chain computed by openssl. */
Test(keys, cluster_id_matches_openssl) {
        uint8_t ms_want[KEY_SIZE], want[KEY_SIZE], ms[KEY_SIZE], got[KEY_SIZE];

        require_openssl();
        openssl_hkdf(master, salt, "key-measurementSecret", ms_want);
        openssl_hkdf(ms_want, measurement_salt, "key-clusterID", want);
        cr_assert_eq(key_measurement_secret(master, salt, ms), 0);
        cr_assert_eq(key_cluster_id(ms, measurement_salt, got), 0);
        assert_key_eq(got, want, "cluster ID");
}

Test(keys, cluster_id_depends_on_measurement_salt) {
        uint8_t ms[KEY_SIZE], a[KEY_SIZE], b[KEY_SIZE], s2[KEY_SIZE];

        memcpy(s2, measurement_salt, KEY_SIZE);
        s2[7] ^= 4;
        cr_assert_eq(key_measurement_secret(master, salt, ms), 0);
        cr_assert_eq(key_cluster_id(ms, measurement_salt, a), 0);
        cr_assert_eq(key_cluster_id(ms, s2, b), 0);
        cr_assert_arr_neq(a, b, KEY_SIZE);
}

Test(keys, key_derive_matches_openssl) {
        uint8_t got[KEY_SIZE], want[KEY_SIZE];

        require_openssl();
        openssl_hkdf(master, salt, "key-anything", want);
        cr_assert_eq(key_derive(master, salt, "anything", got), 0);
        assert_key_eq(got, want, "key_derive");
}

/* A malformed UUID is refused, and the output is left alone. */
static void assert_uuid_refused(const char *uuid) {
        uint8_t out[KEY_SIZE];

        memset(out, 0xaa, sizeof(out));
        cr_assert_eq(key_disk(master, salt, uuid, out), -EINVAL, "key_disk(\"%s\") not refused",
                     uuid ? uuid : "(null)");
        for (size_t i = 0; i < sizeof(out); i++)
                cr_assert_eq(out[i], 0xaa, "output touched for \"%s\"", uuid ? uuid : "(null)");
}

Test(keys, disk_key_refuses_malformed_uuid) {
        assert_uuid_refused(NULL);
        assert_uuid_refused("");
        /* One character short and one too many. */
        assert_uuid_refused("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f");
        assert_uuid_refused(UUID_LOWER "0");
        /* A dash moved, missing or replaced. */
        assert_uuid_refused("0f1e2d3c4-b5a-6978-8796-a5b4c3d2e1f0");
        assert_uuid_refused("0f1e2d3c04b5a-6978-8796-a5b4c3d2e1f0");
        assert_uuid_refused("0f1e2d3c-4b5a-6978-8796_a5b4c3d2e1f0");
        /* Non-hex digits. */
        assert_uuid_refused("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg");
        assert_uuid_refused("gf1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
        assert_uuid_refused("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f ");
        /* Braces, or a path in place of a UUID. */
        assert_uuid_refused("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1}");
        assert_uuid_refused("../../../../../../../../../etc/passwd");
        /* All dashes in the right places and nothing else. */
        assert_uuid_refused("------------------------------------");
}
