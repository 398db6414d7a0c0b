/* SPDX-License-Identifier: Apache-2.0 */
/* Issue evidence on a provisioned swtpm and verify it: the happy path the
 * negative tests of test-attest and test-atls start from. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "attest.h"
#include "swtpm.h"
#include "tpm.h"

static struct test_swtpm tpm;
static struct test_platform plat;

static void setup(void) {
        setenv("TSS2_LOG", "all+none", 1);
        int r = test_swtpm_start(&tpm);
        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
        cr_assert_eq(test_platform_new(&plat), 0);
        cr_assert_eq(test_platform_provision(&plat, &tpm), 0);
}

static void teardown(void) {
        test_swtpm_stop(&tpm);
        test_platform_done(&plat);
}

Test(smoke, issue_and_verify, .init = setup, .fini = teardown) {
        struct tpm_ctx *t = NULL;
        struct attester *a = NULL;
        struct verifier *v = NULL;
        struct policy pol = {};
        struct verify_report rep;
        struct errmsg e = {};
        uint8_t nonce[32] = { 1 }, ud[32] = { 2 };
        char *doc = NULL;
        size_t size;

        cr_assert_eq(tpm_open(tpm.tcti, &t, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(attester_new("qemu-vtpm", t, TPM_AK_HANDLE, &a, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(attester_issue(a, "atls", nonce, ud, &doc, &size, &e), 0, "%s", errmsg_str(&e));
        pol.pcr[0].set = true; /* PCR 0 of a fresh swtpm is zero */
        cr_assert_eq(verifier_new("qemu-vtpm", &pol, plat.roots, &v, &e), 0);
        cr_assert_eq(verifier_verify(v, "atls", nonce, ud, (uint8_t *) doc, size, &rep), 0, "%s", rep.reason);
        cr_assert_eq(rep.failed, VERIFY_OK);
        cr_assert(rep.have_pcrs);
        cr_assert_eq(rep.policy.verdict[0], PCR_MATCH);
        /* Another purpose must not verify. */
        cr_assert_neq(verifier_verify(v, "join", nonce, ud, (uint8_t *) doc, size, &rep), 0);
        cr_assert_eq(rep.failed, VERIFY_NONCE);
        free(doc);
        verifier_free(v);
        attester_free(a);
        tpm_free(t);
}
