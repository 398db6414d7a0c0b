/* SPDX-License-Identifier: Apache-2.0 */
/* The node lock (DESIGN.md, Keys) on a private swtpm per test: PCR 15 is
 * extended once with the cluster ID through TPM2_PCR_Event, and a second
 * take is refused without touching the TPM. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "keys.h"
#include "swtpm.h"
#include "tpm.h"

static struct test_swtpm swtpm;
static struct tpm_ctx *tpm;

static void setup(void) {
        struct errmsg e = {};
        int r;

        setenv("TSS2_LOG", "all+none", 1);
        r = test_swtpm_start(&swtpm);
        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
        cr_assert_eq(tpm_open(swtpm.tcti, &tpm, &e), 0, "%s", errmsg_str(&e));
}

static void teardown(void) {
        tpm = tpm_free(tpm);
        test_swtpm_stop(&swtpm);
}

static void sha256(const void *p, size_t n, uint8_t out[32]) {
        unsigned len = 0;

        cr_assert_eq(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
        cr_assert_eq(len, 32u);
}

static void read_pcrs(uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE]) {
        struct errmsg e = {};

        cr_assert_eq(tpm_pcr_read(tpm, pcrs, &e), 0, "%s", errmsg_str(&e));
}

static const uint8_t cluster_id[KEY_SIZE] = {
        0xc1, 0x05, 0x7e, 0x12, 0x1d, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a,
};

/* What PCR 15 must hold after one TPM2_PCR_Event(15, id) on a zero PCR:
 * SHA256(zeros32 || SHA256(id)). */
static void expected_pcr15(const uint8_t id[KEY_SIZE], uint8_t out[32]) {
        uint8_t buf[64] = {};

        sha256(id, KEY_SIZE, buf + 32);
        sha256(buf, sizeof(buf), out);
}

static void assert_digest_eq(const uint8_t got[32], const uint8_t want[32], const char *what) {
        char g[65], w[65];

        hex_encode_buf(got, 32, g);
        hex_encode_buf(want, 32, w);
        cr_assert_str_eq(g, w, "%s: got %s, want %s", what, g, w);
}

Test(nodelock, free_on_fresh_tpm, .init = setup, .fini = teardown) {
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        static const uint8_t zero[TPM_DIGEST_SIZE];
        struct errmsg e = {};
        int r;

        read_pcrs(pcrs);
        cr_assert_arr_eq(pcrs[NODE_LOCK_PCR], zero, sizeof(zero), "PCR 15 of a fresh swtpm is not zero");
        r = node_lock_is_free(tpm, &e);
        cr_assert_eq(r, 1, "node_lock_is_free = %d: %s", r, errmsg_str(&e));
        /* Asking does not take it. */
        cr_assert_eq(node_lock_is_free(tpm, &e), 1);
}

Test(nodelock, take_extends_pcr15_with_event_of_cluster_id, .init = setup, .fini = teardown) {
        uint8_t before[TPM_PCR_COUNT][TPM_DIGEST_SIZE], after[TPM_PCR_COUNT][TPM_DIGEST_SIZE], want[32];
        struct errmsg e = {};
        int r;

        read_pcrs(before);
        r = node_lock_take(tpm, cluster_id, &e);
        cr_assert_eq(r, 0, "node_lock_take = %d: %s", r, errmsg_str(&e));
        read_pcrs(after);

        expected_pcr15(cluster_id, want);
        assert_digest_eq(after[NODE_LOCK_PCR], want, "PCR 15 after taking the lock");
        /* What join services expect of a member's PCR 15 (mesh refresh). */
        cr_assert_eq(node_lock_value(cluster_id, want), 0);
        assert_digest_eq(after[NODE_LOCK_PCR], want, "node_lock_value()");
        /* Not a plain extend with the ID as the digest. */
        cr_assert_arr_neq(after[NODE_LOCK_PCR], cluster_id, 32);
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                if (i != NODE_LOCK_PCR)
                        cr_assert_arr_eq(after[i], before[i], TPM_DIGEST_SIZE, "PCR %u changed", i);
        cr_assert_eq(node_lock_is_free(tpm, &e), 0, "lock still reported free after taking it");
}

Test(nodelock, second_take_refused_and_pcr15_unchanged, .init = setup, .fini = teardown) {
        uint8_t taken[TPM_PCR_COUNT][TPM_DIGEST_SIZE], after[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        uint8_t other_id[KEY_SIZE];
        struct errmsg e = {};
        int r;

        cr_assert_eq(node_lock_take(tpm, cluster_id, &e), 0, "%s", errmsg_str(&e));
        read_pcrs(taken);

        /* The same cluster ID again, and another one. */
        memcpy(other_id, cluster_id, KEY_SIZE);
        other_id[0] ^= 0xff;
        for (int k = 0; k < 2; k++) {
                e = (struct errmsg){};
                r = node_lock_take(tpm, k == 0 ? cluster_id : other_id, &e);
                cr_assert_eq(r, -EALREADY, "second node_lock_take = %d, want -EALREADY", r);
                cr_assert_not_null(strstr(e.text, "PCR 15"), "reason \"%s\" does not name PCR 15", e.text);
                read_pcrs(after);
                for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                        cr_assert_arr_eq(after[i], taken[i], TPM_DIGEST_SIZE,
                                         "PCR %u changed by a refused take", i);
        }
}

/* Anything in PCR 15, not only our own event, means the lock is taken. */
Test(nodelock, foreign_extend_of_pcr15_takes_lock, .init = setup, .fini = teardown) {
        uint8_t digest[TPM_DIGEST_SIZE] = { 0x42 }, before[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        uint8_t after[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct errmsg e = {};

        cr_assert_eq(tpm_pcr_extend(tpm, NODE_LOCK_PCR, digest, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(node_lock_is_free(tpm, &e), 0);
        read_pcrs(before);
        cr_assert_eq(node_lock_take(tpm, cluster_id, &e), -EALREADY);
        read_pcrs(after);
        cr_assert_arr_eq(after[NODE_LOCK_PCR], before[NODE_LOCK_PCR], TPM_DIGEST_SIZE);
}
