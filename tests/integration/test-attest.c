/* SPDX-License-Identifier: Apache-2.0 */
/* Attestation from the attacker's side: every check of verifier_verify gets
 * a test where evidence from a real (swtpm) TPM is changed so that exactly
 * that check, and no earlier one, refuses it. Plus the TPM module's PCR and
 * NV primitives the attester is built on. Each test has its own swtpm. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <tss2_esys.h>
#include <tss2_mu.h>
#include <tss2_tctildr.h>

#include "attest.h"
#include "evidence.h"
#include "openssl-util.h"
#include "platform.h"
#include "swtpm.h"
#include "tpm.h"

static struct test_swtpm tpm;
static struct test_platform plat;
static struct test_platform other_plat; /* a CA the verifier does not trust */

static const uint8_t nonce_a[ATTEST_NONCE_SIZE] = { 0xa1, 0xa2, 0xa3 };
static const uint8_t nonce_b[ATTEST_NONCE_SIZE] = { 0xb1, 0xb2, 0xb3 };
static const uint8_t ud_a[ATTEST_USER_DATA_SIZE] = { 0x0a, 0x0a };
static const uint8_t ud_b[ATTEST_USER_DATA_SIZE] = { 0x0b, 0x0b };

/* Arbitrary owner-range NV index for the NV tests, away from the AK cert's. */
#define TEST_NV_INDEX UINT32_C(0x01500020)

/* --- fixtures ------------------------------------------------------------ */

static void setup_unprovisioned(void) {
        int r;

        setenv("TSS2_LOG", "all+none", 1);
        /* The host's firmware event log must not leak into the evidence. */
        setenv("ARCA_EVENT_LOG", "", 1);
        r = test_swtpm_start(&tpm);
        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
        cr_assert_eq(test_platform_new(&plat), 0);
}

static void setup(void) {
        setup_unprovisioned();
        cr_assert_eq(test_platform_provision(&plat, &tpm), 0);
}

static void teardown(void) {
        test_swtpm_stop(&tpm);
        test_platform_done(&plat);
        test_platform_done(&other_plat);
}

/* --- helpers ------------------------------------------------------------- */

static struct tpm_ctx *open_tpm(void) {
        struct tpm_ctx *t = NULL;
        struct errmsg e = {};

        cr_assert_eq(tpm_open(tpm.tcti, &t, &e), 0, "tpm_open: %s", errmsg_str(&e));
        return t;
}

/* Evidence from the test's TPM, as an honest attester issues it. */
static char *issue(const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                   const uint8_t ud[ATTEST_USER_DATA_SIZE], size_t *ret_size) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        _cleanup_(attester_freep) struct attester *a = NULL;
        struct errmsg e = {};
        char *doc = NULL;

        cr_assert_eq(attester_new("qemu-vtpm", t, TPM_AK_HANDLE, &a, &e), 0, "attester_new: %s",
                     errmsg_str(&e));
        cr_assert_eq(attester_issue(a, purpose, nonce, ud, &doc, ret_size, &e), 0, "attester_issue: %s",
                     errmsg_str(&e));
        return doc;
}

/* The verifier's default policy: PCR 0 of a fresh swtpm is zero, enforced. */
static struct policy default_policy(void) {
        struct policy p = {};

        p.pcr[0].set = true;
        return p;
}

static int verify_with(const struct policy *pol, X509_STORE *roots, const char *purpose,
                       const uint8_t nonce[ATTEST_NONCE_SIZE], const uint8_t ud[ATTEST_USER_DATA_SIZE],
                       const void *doc, size_t size, struct verify_report *rep) {
        _cleanup_(verifier_freep) struct verifier *v = NULL;
        struct errmsg e = {};

        cr_assert_eq(verifier_new("qemu-vtpm", pol, roots, &v, &e), 0, "verifier_new: %s", errmsg_str(&e));
        return verifier_verify(v, purpose, nonce, ud, doc, size, rep);
}

/* Verify as the default verifier expecting (atls, nonce_a, ud_a). */
static int verify_default(const void *doc, size_t size, struct verify_report *rep) {
        struct policy pol = default_policy();

        return verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, doc, size, rep);
}

static void assert_verified(int r, const struct verify_report *rep) {
        cr_assert_eq(r, 0, "verification failed (%s): %s", verify_check_to_string(rep->failed), rep->reason);
        cr_assert_eq(rep->failed, VERIFY_OK);
        cr_assert(rep->have_pcrs);
}

/* Refused by exactly check `c`, with a reason containing `needle`. PCR values
 * are only reported once the quote verified, i.e. only by the policy check. */
static void assert_refused(int r, const struct verify_report *rep, enum verify_check c, const char *needle) {
        cr_assert_lt(r, 0, "evidence verified, expected the %s check to refuse it",
                     verify_check_to_string(c));
        cr_assert_eq(rep->failed, c, "refused by the %s check, expected %s: %s",
                     verify_check_to_string(rep->failed), verify_check_to_string(c), rep->reason);
        cr_assert_not_null(strstr(rep->reason, needle), "reason \"%s\" does not contain \"%s\"", rep->reason,
                           needle);
        if (c != VERIFY_POLICY)
                cr_assert_not(rep->have_pcrs, "PCR values reported for refused evidence");
}

typedef void (*mutate_fn)(struct evidence *ev);

/* Issue honest evidence for (atls, nonce_a, ud_a), let `mutate` play the
 * attacker on the parsed document, re-serialize and verify it as the
 * default verifier would. */
static int issue_mutate_verify(mutate_fn mutate, struct verify_report *rep) {
        _cleanup_evidence_ struct evidence *ev = NULL;
        _cleanup_free_ char *doc = NULL, *forged = NULL;
        struct errmsg e = {};
        size_t size, forged_size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        /* Unchanged, it verifies: whatever fails below is the mutation's doing. */
        assert_verified(verify_default(doc, size, rep), rep);
        cr_assert_eq(evidence_parse((const uint8_t *) doc, size, &ev, &e), 0, "evidence_parse: %s",
                     errmsg_str(&e));
        mutate(ev);
        cr_assert_eq(evidence_serialize(ev, &forged, &forged_size), 0);
        return verify_default(forged, forged_size, rep);
}

static char *der_cert_for(EVP_PKEY *key, size_t *ret_size) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        unsigned char *der = NULL;
        struct errmsg e = {};
        int len;

        cr_assert_eq(platform_issue_cert(plat.ca_key, plat.ca_cert, key, "arca attestation key", 30, false,
                                         &cert, &e),
                     0, "platform_issue_cert: %s", errmsg_str(&e));
        len = i2d_X509(cert, &der);
        cr_assert_gt(len, 0);
        *ret_size = (size_t) len;
        return (char *) der;
}

/* Offsets in a marshalled TPMT_SIGNATURE of ECDSA:
 * sigAlg(2) hash(2) rSize(2) r sSize(2) s. */
static size_t ecdsa_r_size(const struct blob *sig) {
        size_t rsize;

        cr_assert_geq(sig->size, 6);
        cr_assert_eq((sig->data[0] << 8) | sig->data[1], TPM2_ALG_ECDSA, "the TPM did not sign with ECDSA");
        rsize = (size_t) ((sig->data[4] << 8) | sig->data[5]);
        cr_assert(rsize > 0 && 6 + rsize + 2 < sig->size, "bad r size %zu", rsize);
        return rsize;
}

static void put_be16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) (v & 0xff);
}

/* --- raw ESAPI: TPM-signed structures the attester never produces ---------- */

struct raw_esys {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        ESYS_TR ak;
};

static void raw_open(struct raw_esys *r) {
        *r = (struct raw_esys){ .ak = ESYS_TR_NONE };
        cr_assert_eq(Tss2_TctiLdr_Initialize(tpm.tcti, &r->tcti), TSS2_RC_SUCCESS);
        cr_assert_eq(Esys_Initialize(&r->esys, r->tcti, NULL), TSS2_RC_SUCCESS);
        cr_assert_eq(Esys_TR_FromTPMPublic(r->esys, TPM_AK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           &r->ak),
                     TSS2_RC_SUCCESS);
}

static void raw_close(struct raw_esys *r) {
        if (r->esys) {
                if (r->ak != ESYS_TR_NONE)
                        Esys_TR_Close(r->esys, &r->ak);
                Esys_Finalize(&r->esys);
        }
        if (r->tcti)
                Tss2_TctiLdr_Finalize(&r->tcti);
}

static void set_from_tpm(struct evidence *ev, const TPM2B_ATTEST *attest, const TPMT_SIGNATURE *sig) {
        uint8_t buf[sizeof(TPMT_SIGNATURE)];
        size_t off = 0;

        cr_assert_eq(Tss2_MU_TPMT_SIGNATURE_Marshal(sig, buf, sizeof(buf), &off), TSS2_RC_SUCCESS);
        cr_assert_eq(blob_set(&ev->quote, attest->attestationData, attest->size), 0);
        cr_assert_eq(blob_set(&ev->signature, buf, off), 0);
}

static TPM2B_DATA qualifying_data_a(void) {
        TPM2B_DATA qd = { .size = 32 };

        cr_assert_eq(attest_qualifying_data(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, qd.buffer), 0);
        return qd;
}

/* A genuine TPM2_Quote by the AK with the right qualifying data, but over
 * PCRs 0-7 only. */
static void mutate_quote_partial_selection(struct evidence *ev) {
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
        TPML_PCR_SELECTION sel = {
                .count = 1,
                .pcrSelections[0] = { .hash = TPM2_ALG_SHA256,
                                      .sizeofSelect = 3,
                                      .pcrSelect = { 0xff, 0, 0 } },
        };
        TPM2B_DATA qd = qualifying_data_a();
        TPM2B_ATTEST *attest = NULL;
        TPMT_SIGNATURE *sig = NULL;
        struct raw_esys r;

        raw_open(&r);
        cr_assert_eq(Esys_Quote(r.esys, r.ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd, &scheme,
                                &sel, &attest, &sig),
                     TSS2_RC_SUCCESS);
        set_from_tpm(ev, attest, sig);
        Esys_Free(attest);
        Esys_Free(sig);
        raw_close(&r);
}

/* A genuine TPMS_ATTEST signed by the AK, but of TPM2_Certify (the AK
 * certifying itself), not a quote. */
static void mutate_quote_certify(struct evidence *ev) {
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
        TPM2B_DATA qd = qualifying_data_a();
        TPM2B_ATTEST *attest = NULL;
        TPMT_SIGNATURE *sig = NULL;
        struct raw_esys r;

        raw_open(&r);
        cr_assert_eq(Esys_Certify(r.esys, r.ak, r.ak, ESYS_TR_PASSWORD, ESYS_TR_PASSWORD, ESYS_TR_NONE, &qd,
                                  &scheme, &attest, &sig),
                     TSS2_RC_SUCCESS);
        set_from_tpm(ev, attest, sig);
        Esys_Free(attest);
        Esys_Free(sig);
        raw_close(&r);
}

/* --- the happy path ------------------------------------------------------ */

Test(attest, honest_evidence_verifies, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct verify_report rep;
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct errmsg e = {};
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        assert_verified(verify_default(doc, size, &rep), &rep);
        cr_assert_str_eq(rep.reason, "verified");
        cr_assert_str_eq(rep.variant, "qemu-vtpm");
        cr_assert_eq(rep.policy.verdict[0], PCR_MATCH);
        for (unsigned i = 1; i < POLICY_PCR_COUNT; i++)
                cr_assert_eq(rep.policy.verdict[i], PCR_NOT_IN_POLICY, "PCR %u: %s", i,
                             pcr_verdict_to_string(rep.policy.verdict[i]));
        cr_assert_eq(rep.policy.n_enforced_mismatch, 0);
        cr_assert_eq(rep.policy.n_warn_mismatch, 0);

        /* The reported values are the TPM's. */
        {
                _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
                cr_assert_eq(tpm_pcr_read(t, pcrs, &e), 0, "%s", errmsg_str(&e));
        }
        cr_assert_arr_eq(rep.pcrs, pcrs, sizeof(pcrs));
}

/* --- freshness and binding ----------------------------------------------- */

/* One attester, a PCR extended between two issues: the second evidence
 * reports the new value (read again, not the values of the first quote),
 * and both verify. */
Test(attest, reissue_after_pcr_extend_reports_new_values, .init = setup, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        _cleanup_(attester_freep) struct attester *a = NULL;
        _cleanup_evidence_ struct evidence *ev1 = NULL, *ev2 = NULL;
        _cleanup_free_ char *doc1 = NULL, *doc2 = NULL;
        uint8_t now_pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct verify_report rep = {};
        struct errmsg e = {};
        size_t size1, size2;

        cr_assert_eq(attester_new("qemu-vtpm", t, TPM_AK_HANDLE, &a, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(attester_issue(a, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &doc1, &size1, &e), 0, "%s",
                     errmsg_str(&e));
        assert_verified(verify_default(doc1, size1, &rep), &rep);
        cr_assert_eq(tpm_pcr_event(t, 16, "drift", 5, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(attester_issue(a, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &doc2, &size2, &e), 0, "%s",
                     errmsg_str(&e));
        assert_verified(verify_default(doc2, size2, &rep), &rep);
        cr_assert_eq(evidence_parse((const uint8_t *) doc1, size1, &ev1, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(evidence_parse((const uint8_t *) doc2, size2, &ev2, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(tpm_pcr_read(t, now_pcrs, &e), 0, "%s", errmsg_str(&e));
        cr_assert_neq(memcmp(ev1->pcrs[16], ev2->pcrs[16], TPM_DIGEST_SIZE), 0, "PCR 16 reported unchanged");
        cr_assert_eq(memcmp(ev2->pcrs[16], now_pcrs[16], TPM_DIGEST_SIZE), 0, "PCR 16 is not the TPM's value");
        cr_assert_eq(memcmp(ev1->pcrs[0], ev2->pcrs[0], TPM_DIGEST_SIZE), 0);
}

Test(attest, wrong_nonce_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        assert_refused(verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_b, ud_a, doc, size, &rep),
                       &rep, VERIFY_NONCE, "replayed or stale");
}

Test(attest, replayed_evidence_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        size_t size;

        /* Issued for nonce A, presented to a verifier who asked with nonce B. */
        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        assert_refused(verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_b, ud_a, doc, size, &rep),
                       &rep, VERIFY_NONCE, "qualifying data");
        /* ... on a connection with another TLS key. */
        assert_refused(verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_b, ud_b, doc, size, &rep),
                       &rep, VERIFY_USER_DATA, "different user data");
        /* Same nonce, other TLS key: a relay of someone else's handshake. */
        assert_refused(verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_a, ud_b, doc, size, &rep),
                       &rep, VERIFY_USER_DATA, "TLS key");
}

static void mutate_user_data_field(struct evidence *ev) {
        memcpy(ev->user_data, ud_b, sizeof(ev->user_data));
}

/* The userData field is only a claim; the quote binds the real one. */
Test(attest, rewritten_user_data_field_refused, .init = setup, .fini = teardown) {
        _cleanup_evidence_ struct evidence *ev = NULL;
        _cleanup_free_ char *doc = NULL, *forged = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        struct errmsg e = {};
        size_t size, forged_size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        cr_assert_eq(evidence_parse((const uint8_t *) doc, size, &ev, &e), 0, "%s", errmsg_str(&e));
        mutate_user_data_field(ev);
        cr_assert_eq(evidence_serialize(ev, &forged, &forged_size), 0);
        assert_refused(
                verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_a, ud_b, forged, forged_size, &rep),
                &rep, VERIFY_NONCE, "qualifying data");
        /* And the verifier expecting the original user data sees the change. */
        assert_refused(verify_default(forged, forged_size, &rep), &rep, VERIFY_USER_DATA,
                       "different user data");
}

Test(attest, wrong_purpose_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        assert_refused(verify_with(&pol, plat.roots, "join", nonce_a, ud_a, doc, size, &rep), &rep,
                       VERIFY_NONCE, "purpose \"join\"");
        /* A purpose that is a prefix of the real one must not match either. */
        assert_refused(verify_with(&pol, plat.roots, "atl", nonce_a, ud_a, doc, size, &rep), &rep,
                       VERIFY_NONCE, "purpose \"atl\"");
}

/* --- measurement policy -------------------------------------------------- */

static char *issue_with_pcr4_extended(size_t *ret_size) {
        static const uint8_t measurement[TPM_DIGEST_SIZE] = { 0xde, 0xad, 0xbe, 0xef };
        struct errmsg e = {};

        {
                _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
                cr_assert_eq(tpm_pcr_extend(t, 4, measurement, &e), 0, "%s", errmsg_str(&e));
        }
        return issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, ret_size);
}

Test(attest, enforced_pcr_mismatch_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        size_t size;

        doc = issue_with_pcr4_extended(&size);
        pol.pcr[4].set = true; /* expected: zero */
        assert_refused(verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, doc, size, &rep),
                       &rep, VERIFY_POLICY, "PCR 4");
        /* The quote itself verified: the values are reported for diagnosis. */
        cr_assert(rep.have_pcrs);
        cr_assert_eq(rep.policy.verdict[4], PCR_MISMATCH_ENFORCED);
        cr_assert_eq(rep.policy.verdict[0], PCR_MATCH);
        cr_assert_eq(rep.policy.n_enforced_mismatch, 1);
}

Test(attest, warn_only_pcr_mismatch_passes, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        size_t size;

        doc = issue_with_pcr4_extended(&size);
        pol.pcr[4].set = true;
        pol.pcr[4].warn_only = true;
        assert_verified(verify_with(&pol, plat.roots, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, doc, size, &rep),
                        &rep);
        cr_assert_eq(rep.policy.n_warn_mismatch, 1);
        cr_assert_eq(rep.policy.n_enforced_mismatch, 0);
        cr_assert_eq(rep.policy.verdict[4], PCR_MISMATCH_WARN);
        cr_assert_eq(rep.policy.verdict[0], PCR_MATCH);
}

/* --- AK trust ------------------------------------------------------------ */

Test(attest, ak_cert_from_other_ca_refused, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct policy pol = default_policy();
        struct verify_report rep;
        size_t size;

        /* Certified by a CA the verifier does not trust. */
        cr_assert_eq(test_platform_new(&other_plat), 0);
        cr_assert_eq(test_platform_provision(&other_plat, &tpm), 0);
        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        assert_refused(verify_default(doc, size, &rep), &rep, VERIFY_AK_CHAIN,
                       "does not chain to the platform CA");
        /* The same evidence verifies for whoever trusts that CA. */
        assert_verified(
                verify_with(&pol, other_plat.roots, ATTEST_PURPOSE_ATLS, nonce_a, ud_a, doc, size, &rep),
                &rep);
}

static void mutate_no_ak_cert(struct evidence *ev) {
        for (size_t i = 0; i < ev->n_ak_certs; i++)
                blob_done(&ev->ak_certs[i]);
        ev->n_ak_certs = 0;
}

Test(attest, missing_ak_cert_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_no_ak_cert, &rep), &rep, VERIFY_AK_CHAIN,
                       "no AK certificate");
}

static void mutate_ak_cert_garbage(struct evidence *ev) {
        cr_assert_geq(ev->n_ak_certs, 1);
        /* Still DER-looking, but cut short. */
        ev->ak_certs[0].size /= 2;
}

Test(attest, malformed_ak_cert_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_ak_cert_garbage, &rep), &rep, VERIFY_AK_CHAIN,
                       "not valid DER");
}

static void mutate_ak_cert_other_key(struct evidence *ev) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ char *der = NULL;
        size_t size;

        /* A genuine certificate of the right CA, for a key the attacker holds. */
        cr_assert_eq(ec_p256_generate(&key), 0);
        der = der_cert_for(key, &size);
        cr_assert_geq(ev->n_ak_certs, 1);
        cr_assert_eq(blob_set(&ev->ak_certs[0], der, size), 0);
}

Test(attest, ak_cert_for_other_key_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_ak_cert_other_key, &rep), &rep, VERIFY_AK_KEY,
                       "different key");
}

/* objectAttributes: bytes 4-7 (big-endian) of the marshalled TPMT_PUBLIC. */
static void mutate_ak_not_restricted(struct evidence *ev) {
        uint32_t attrs;

        cr_assert_geq(ev->ak_public.size, 8);
        attrs = (uint32_t) ev->ak_public.data[4] << 24 | (uint32_t) ev->ak_public.data[5] << 16 |
                (uint32_t) ev->ak_public.data[6] << 8 | ev->ak_public.data[7];
        cr_assert(attrs & TPMA_OBJECT_RESTRICTED, "the AK is not restricted to begin with");
        attrs &= ~(uint32_t) TPMA_OBJECT_RESTRICTED;
        ev->ak_public.data[4] = (uint8_t) (attrs >> 24);
        ev->ak_public.data[5] = (uint8_t) (attrs >> 16);
        ev->ak_public.data[6] = (uint8_t) (attrs >> 8);
        ev->ak_public.data[7] = (uint8_t) attrs;
}

Test(attest, unrestricted_ak_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_ak_not_restricted, &rep), &rep, VERIFY_AK_KEY,
                       "restricted signing key");
}

/* USERWITHAUTH is not among the attributes the verifier requires, so only the
 * comparison of the quote's qualifiedSigner with the qualified name of
 * akPublic (a primary of the endorsement hierarchy: nameAlg ||
 * SHA-256(TPM_RH_ENDORSEMENT || name)) notices this edit. */
static void mutate_ak_public_other_name(struct evidence *ev) {
        cr_assert_geq(ev->ak_public.size, 8);
        cr_assert(ev->ak_public.data[7] & TPMA_OBJECT_USERWITHAUTH);
        ev->ak_public.data[7] ^= TPMA_OBJECT_USERWITHAUTH;
}

Test(attest, ak_public_not_the_signer_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_ak_public_other_name, &rep), &rep, VERIFY_AK_KEY, "name");
}

/* --- the signature ------------------------------------------------------- */

static void mutate_quote_byte(struct evidence *ev) {
        cr_assert_gt(ev->quote.size, 0);
        ev->quote.data[ev->quote.size / 2] ^= 0x01;
}

Test(attest, tampered_quote_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_quote_byte, &rep), &rep, VERIFY_SIGNATURE,
                       "not signed by the attestation key");
}

static void mutate_signature_r(struct evidence *ev) {
        size_t rsize = ecdsa_r_size(&ev->signature);

        /* The last byte of r: r stays below the group order, so only the
         * signature check can tell. */
        ev->signature.data[6 + rsize - 1] ^= 0x01;
}

Test(attest, tampered_signature_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_signature_r, &rep), &rep, VERIFY_SIGNATURE,
                       "not signed by the attestation key");
}

/* A well-formed RSASSA TPMT_SIGNATURE: sigAlg(2) hash(2) size(2) bytes; the
 * former rSize field becomes the size of everything after it. */
static void mutate_sig_rsassa(struct evidence *ev) {
        (void) ecdsa_r_size(&ev->signature);
        put_be16(ev->signature.data, TPM2_ALG_RSASSA);
        put_be16(ev->signature.data + 4, (uint16_t) (ev->signature.size - 6));
}

Test(attest, rsassa_signature_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_sig_rsassa, &rep), &rep, VERIFY_SIG_SCHEME,
                       "0x0014 is not ECDSA");
}

/* Only the sigAlg bytes changed, as an attacker would do it naively: the
 * ECDSA body left behind is not an RSASSA body; refused all the same. */
static void mutate_sig_alg_only(struct evidence *ev) {
        (void) ecdsa_r_size(&ev->signature);
        put_be16(ev->signature.data, TPM2_ALG_RSASSA);
}

Test(attest, sig_alg_bytes_changed_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_sig_alg_only, &rep), &rep, VERIFY_SIG_SCHEME,
                       "trailing bytes");
}

static void mutate_sig_hash_sha1(struct evidence *ev) {
        (void) ecdsa_r_size(&ev->signature);
        put_be16(ev->signature.data + 2, TPM2_ALG_SHA1);
}

Test(attest, ecdsa_sha1_signature_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_sig_hash_sha1, &rep), &rep, VERIFY_SIG_SCHEME,
                       "is not SHA-256");
}

/* --- the signed structure ------------------------------------------------ */

Test(attest, quote_of_other_pcr_selection_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_quote_partial_selection, &rep), &rep, VERIFY_QUOTE,
                       "PCR selection");
}

Test(attest, signed_attestation_not_a_quote_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_quote_certify, &rep), &rep, VERIFY_QUOTE,
                       "is not TPM_ST_ATTEST_QUOTE");
}

static void mutate_pcr7(struct evidence *ev) {
        ev->pcrs[7][0] ^= 0x01;
}

Test(attest, reported_pcrs_changed_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_pcr7, &rep), &rep, VERIFY_PCR_DIGEST,
                       "do not match the quoted PCR digest");
}

/* --- document format ----------------------------------------------------- */

Test(attest, truncated_evidence_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL;
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        const size_t cuts[] = { 0, 1, size / 2, size - 1 };
        for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                int r = verify_default(doc, cuts[i], &rep);
                cr_assert_lt(r, 0, "evidence cut to %zu bytes verified", cuts[i]);
                cr_assert_eq(rep.failed, VERIFY_FORMAT, "cut to %zu: refused by %s: %s", cuts[i],
                             verify_check_to_string(rep.failed), rep.reason);
                cr_assert_not_null(strstr(rep.reason, "truncated"), "cut to %zu: reason \"%s\"", cuts[i],
                                   rep.reason);
                cr_assert_not(rep.have_pcrs);
        }
}

Test(attest, oversized_evidence_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL, *padded = NULL;
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        cr_assert_lt(size, EVIDENCE_MAX_SIZE);
        padded = malloc(EVIDENCE_MAX_SIZE + 1);
        cr_assert_not_null(padded);
        memcpy(padded, doc, size);
        memset(padded + size, ' ', EVIDENCE_MAX_SIZE + 1 - size);
        /* Trailing whitespace is valid JSON: at the limit it still verifies ... */
        assert_verified(verify_default(padded, EVIDENCE_MAX_SIZE, &rep), &rep);
        /* ... one byte more is refused before it is parsed. */
        assert_refused(verify_default(padded, EVIDENCE_MAX_SIZE + 1, &rep), &rep, VERIFY_FORMAT,
                       "exceeds the limit");
}

/* One byte over the event log's own limit, while the whole document stays
 * under EVIDENCE_MAX_SIZE: the field's bound refuses it. */
static void mutate_huge_event_log(struct evidence *ev) {
        _cleanup_free_ uint8_t *log = malloc(EVIDENCE_MAX_EVENT_LOG + 3);

        cr_assert_not_null(log);
        memset(log, 0x5a, EVIDENCE_MAX_EVENT_LOG + 3);
        cr_assert_eq(blob_set(&ev->event_log, log, EVIDENCE_MAX_EVENT_LOG + 3), 0);
}

Test(attest, oversized_event_log_refused, .init = setup, .fini = teardown) {
        struct verify_report rep;

        assert_refused(issue_mutate_verify(mutate_huge_event_log, &rep), &rep, VERIFY_FORMAT,
                       "'eventLog' is larger than");
}

/* Rewrite the first occurrence of `from` in doc with `to`. */
static char *doc_replace(const char *doc, const char *from, const char *to, size_t *ret_size) {
        const char *at = strstr(doc, from);
        char *out;

        cr_assert_not_null(at, "\"%s\" not in the evidence", from);
        cr_assert_gt(asprintf(&out, "%.*s%s%s", (int) (at - doc), doc, to, at + strlen(from)), 0);
        *ret_size = strlen(out);
        return out;
}

Test(attest, unknown_field_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL, *forged = NULL;
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        forged = doc_replace(doc, "{", "{\"trustMe\":true,", &size);
        assert_refused(verify_default(forged, size, &rep), &rep, VERIFY_FORMAT, "unknown field 'trustMe'");
}

Test(attest, other_version_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL, *forged = NULL;
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        forged = doc_replace(doc, "\"version\":1,", "\"version\":2,", &size);
        assert_refused(verify_default(forged, size, &rep), &rep, VERIFY_FORMAT, "unsupported version 2");
}

Test(attest, other_variant_refused, .init = setup, .fini = teardown) {
        _cleanup_free_ char *doc = NULL, *forged = NULL;
        struct verify_report rep;
        size_t size;

        doc = issue(ATTEST_PURPOSE_ATLS, nonce_a, ud_a, &size);
        forged = doc_replace(doc, "\"variant\":\"qemu-vtpm\"", "\"variant\":\"azure-sev-snp\"", &size);
        assert_refused(verify_default(forged, size, &rep), &rep, VERIFY_VARIANT, "\"azure-sev-snp\"");
        cr_assert_str_eq(rep.variant, "azure-sev-snp");
}

/* --- the TPM module ------------------------------------------------------ */

Test(tpm, pcr_read_returns_all_24, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE], again[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        static const uint8_t zero[TPM_DIGEST_SIZE];
        struct errmsg e = {};

        /* More PCRs than one TPM2_PCR_Read returns; a sentinel shows each was filled. */
        memset(pcrs, 0xa5, sizeof(pcrs));
        cr_assert_eq(tpm_pcr_read(t, pcrs, &e), 0, "%s", errmsg_str(&e));
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++) {
                bool all_zero = memcmp(pcrs[i], zero, sizeof(zero)) == 0, all_ones = true;
                for (unsigned k = 0; k < TPM_DIGEST_SIZE; k++)
                        all_ones = all_ones && pcrs[i][k] == 0xff;
                /* A fresh TPM: reset values only (0-16, 23 zero; 17-22 may be all ones). */
                cr_assert(all_zero || (i >= 17 && i <= 22 && all_ones), "PCR %u is not a reset value", i);
        }
        cr_assert_eq(tpm_pcr_read(t, again, &e), 0, "%s", errmsg_str(&e));
        cr_assert_arr_eq(pcrs, again, sizeof(pcrs));
}

Test(tpm, pcr_event_changes_only_that_pcr, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        uint8_t before[TPM_PCR_COUNT][TPM_DIGEST_SIZE], after[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        uint8_t cat[2 * TPM_DIGEST_SIZE], want[TPM_DIGEST_SIZE];
        static const char data[] = "arca test event";
        struct errmsg e = {};

        cr_assert_eq(tpm_pcr_read(t, before, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(tpm_pcr_event(t, 9, data, strlen(data), &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(tpm_pcr_read(t, after, &e), 0, "%s", errmsg_str(&e));
        for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                if (i != 9)
                        cr_assert_arr_eq(before[i], after[i], TPM_DIGEST_SIZE, "PCR %u changed", i);
        /* PCR 9 = SHA-256(old || SHA-256(data)). */
        memcpy(cat, before[9], TPM_DIGEST_SIZE);
        cr_assert_eq(sha256(data, strlen(data), cat + TPM_DIGEST_SIZE), 0);
        cr_assert_eq(sha256(cat, sizeof(cat), want), 0);
        cr_assert_arr_eq(after[9], want, TPM_DIGEST_SIZE);
}

Test(tpm, pcr_event_refuses_bad_arguments, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        uint8_t before[TPM_PCR_COUNT][TPM_DIGEST_SIZE], after[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        static uint8_t big[TPM_EVENT_MAX + 1];
        struct errmsg e = {};

        cr_assert_eq(tpm_pcr_read(t, before, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(tpm_pcr_event(t, TPM_PCR_COUNT, "x", 1, &e), -EINVAL);
        cr_assert_not_null(strstr(e.text, "PCR index 24"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(tpm_pcr_event(t, 9, big, sizeof(big), &e), -EINVAL);
        cr_assert_not_null(strstr(e.text, "exceeds"), "%s", e.text);
        cr_assert_eq(tpm_pcr_extend(t, TPM_PCR_COUNT, before[0], NULL), -EINVAL);
        cr_assert_eq(tpm_pcr_read(t, after, &e), 0, "%s", errmsg_str(&e));
        cr_assert_arr_eq(before, after, sizeof(before));
}

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed) {
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t) (seed + i * 7 + (i >> 8));
}

static void assert_nv_holds(struct tpm_ctx *t, uint32_t index, const uint8_t *want, size_t size) {
        _cleanup_free_ uint8_t *got = NULL;
        struct errmsg e = {};
        size_t got_size = 0;

        cr_assert_eq(tpm_nv_read(t, index, &got, &got_size, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(got_size, size);
        cr_assert_arr_eq(got, want, size);
}

/* The TPM's NV buffer limit: what one TPM2_NV_Read/Write may move. */
static uint32_t nv_buffer_max(void) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        struct raw_esys r = { .ak = ESYS_TR_NONE };
        uint32_t v;

        cr_assert_eq(Tss2_TctiLdr_Initialize(tpm.tcti, &r.tcti), TSS2_RC_SUCCESS);
        cr_assert_eq(Esys_Initialize(&r.esys, r.tcti, NULL), TSS2_RC_SUCCESS);
        cr_assert_eq(Esys_GetCapability(r.esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                        TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap),
                     TSS2_RC_SUCCESS);
        cr_assert_eq(cap->data.tpmProperties.tpmProperty[0].property, TPM2_PT_NV_BUFFER_MAX);
        v = cap->data.tpmProperties.tpmProperty[0].value;
        Esys_Free(cap);
        raw_close(&r);
        return v;
}

Test(tpm, nv_round_trip_and_resize, .init = setup_unprovisioned, .fini = teardown) {
        static uint8_t big[1500], small[700], other[700];
        struct errmsg e = {};

        /* The premise: 1500 bytes take more than one NV command. */
        cr_assert_lt(nv_buffer_max(), sizeof(big));

        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        fill_pattern(big, sizeof(big), 1);
        fill_pattern(small, sizeof(small), 99);
        fill_pattern(other, sizeof(other), 200);

        cr_assert_eq(tpm_nv_write(t, TEST_NV_INDEX, big, sizeof(big), &e), 0, "%s", errmsg_str(&e));
        assert_nv_holds(t, TEST_NV_INDEX, big, sizeof(big));
        /* A different size redefines the index: nothing of the old data remains. */
        cr_assert_eq(tpm_nv_write(t, TEST_NV_INDEX, small, sizeof(small), &e), 0, "%s", errmsg_str(&e));
        assert_nv_holds(t, TEST_NV_INDEX, small, sizeof(small));
        /* The same size overwrites in place. */
        cr_assert_eq(tpm_nv_write(t, TEST_NV_INDEX, other, sizeof(other), &e), 0, "%s", errmsg_str(&e));
        assert_nv_holds(t, TEST_NV_INDEX, other, sizeof(other));
        /* And back to a larger size. */
        cr_assert_eq(tpm_nv_write(t, TEST_NV_INDEX, big, sizeof(big), &e), 0, "%s", errmsg_str(&e));
        assert_nv_holds(t, TEST_NV_INDEX, big, sizeof(big));
}

Test(tpm, nv_write_refuses_bad_sizes, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        static uint8_t huge[TPM_NV_MAX_SIZE + 1];
        _cleanup_free_ uint8_t *got = NULL;
        struct errmsg e = {};
        size_t got_size;

        cr_assert_eq(tpm_nv_write(t, TEST_NV_INDEX, huge, sizeof(huge), &e), -EINVAL);
        cr_assert_eq(tpm_nv_write(t, TEST_NV_INDEX, huge, 0, NULL), -EINVAL);
        /* Nothing was defined by the refused writes. */
        cr_assert_eq(tpm_nv_read(t, TEST_NV_INDEX, &got, &got_size, NULL), -ENOENT);
}

Test(tpm, nv_read_undefined_index_is_enoent, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        uint8_t *got = (uint8_t *) &got; /* must stay untouched */
        size_t got_size = 12345;
        struct errmsg e = {};

        cr_assert_eq(tpm_nv_read(t, TEST_NV_INDEX, &got, &got_size, &e), -ENOENT);
        cr_assert_eq(tpm_nv_read(t, TPM_AK_CERT_NV_INDEX, &got, &got_size, &e), -ENOENT);
        cr_assert_eq(got, (uint8_t *) &got);
        cr_assert_eq(got_size, 12345);
}

Test(tpm, attester_on_unprovisioned_tpm_names_nv_index, .init = setup_unprovisioned, .fini = teardown) {
        _cleanup_tpm_ struct tpm_ctx *t = open_tpm();
        struct attester *a = NULL;
        struct errmsg e = {};
        char want[16];

        snprintf(want, sizeof(want), "0x%08x", TPM_AK_CERT_NV_INDEX);
        cr_assert_eq(attester_new("qemu-vtpm", t, TPM_AK_HANDLE, &a, &e), -ENOENT, "%s", errmsg_str(&e));
        cr_assert_null(a);
        cr_assert_not_null(strstr(e.text, want), "message \"%s\" does not name NV index %s", e.text, want);
        cr_assert_not_null(strstr(e.text, "not provisioned"), "%s", e.text);
}
