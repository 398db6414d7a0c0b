/* SPDX-License-Identifier: Apache-2.0 */
#include "attest.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "attest-internal.h"
#include "cert-cache.h"
#include "encoding.h"
#include "fileio.h"
#include "evidence.h"
#include "openssl-util.h"
#include "secret.h"
#include "tpm-parse.h"
#include "tpm.h"
#include "variant.h"

#define QD_LABEL "arca-evidence-v1"

/* The local attester: quotes with this process's TPM. Its lock makes it
 * usable from several threads (the bootstrapper's loop and the thread
 * that issues the join service's evidence, lib/attest-remote.h). */
struct tpm_attester {
        struct attester base;
        pthread_mutex_t lock;
        const struct variant *variant;
        struct tpm_ctx *tpm;
        uint32_t ak_handle;
        struct evidence *tmpl; /* AK public and trust material, reused */
        /* The PCR values of the last quote. A quote whose PCR digest they
         * match needs no reading of the PCRs (three TPM commands). */
        uint8_t pcrs[24][32];
        bool pcrs_valid;
};

struct verifier {
        const struct variant *variant;
        struct policy policy;
        struct variant_trust trust;
};

static const char *const check_names[_VERIFY_MAX] = {
        [VERIFY_OK] = "verified",
        [VERIFY_FORMAT] = "evidence format",
        [VERIFY_VARIANT] = "attestation variant",
        [VERIFY_AK_CHAIN] = "AK certificate chain",
        [VERIFY_AK_KEY] = "AK certificate key",
        [VERIFY_SIG_SCHEME] = "signature scheme",
        [VERIFY_SIGNATURE] = "quote signature",
        [VERIFY_QUOTE] = "quote structure",
        [VERIFY_USER_DATA] = "user data binding",
        [VERIFY_NONCE] = "nonce",
        [VERIFY_PCR_DIGEST] = "PCR digest",
        [VERIFY_POLICY] = "measurement policy",
};

const char *verify_check_to_string(enum verify_check c) {
        if ((unsigned) c >= _VERIFY_MAX)
                return "unknown";
        return check_names[c];
}

int attest_qualifying_data(const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                           const uint8_t user_data[ATTEST_USER_DATA_SIZE], uint8_t ret[32]) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        static const uint8_t zero = 0;
        unsigned len = 0;

        if (!md || !purpose)
                return -EINVAL;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
            EVP_DigestUpdate(md, QD_LABEL, sizeof(QD_LABEL) - 1) != 1 ||
            EVP_DigestUpdate(md, &zero, 1) != 1 || EVP_DigestUpdate(md, purpose, strlen(purpose)) != 1 ||
            EVP_DigestUpdate(md, &zero, 1) != 1 || EVP_DigestUpdate(md, nonce, ATTEST_NONCE_SIZE) != 1 ||
            EVP_DigestUpdate(md, user_data, ATTEST_USER_DATA_SIZE) != 1 ||
            EVP_DigestFinal_ex(md, ret, &len) != 1 || len != 32)
                return openssl_errno(-EIO);
        return 0;
}

/* --- attester --------------------------------------------------------- */

/* The firmware event log, when the kernel exposes one: it lets a verifier
 * explain a PCR mismatch. Absence is normal (swtpm without firmware). */
static int collect_event_log(struct evidence *ev, struct errmsg *e) {
        const char *path = getenv("ARCA_EVENT_LOG");
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        if (!path)
                path = ATTEST_EVENT_LOG_PATH;
        if (!*path)
                return 0;
        r = read_full_file(path, EVIDENCE_MAX_EVENT_LOG, &data, &size);
        if (r == -ENOENT || r == -EACCES || r == -ENOTDIR)
                return 0;
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the event log %s: %s", path, strerror(-r));
        return blob_set(&ev->event_log, data, size);
}

static const struct attester_ops tpm_attester_ops;

int attester_new(const char *variant, struct tpm_ctx *tpm, uint32_t ak_handle, struct attester **ret,
                 struct errmsg *e) {
        _cleanup_(attester_freep) struct attester *base = NULL;
        struct tpm_attester *a;
        _cleanup_free_ uint8_t *pub = NULL;
        size_t pub_size;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->base.ops = &tpm_attester_ops;
        base = &a->base;
        if (pthread_mutex_init(&a->lock, NULL) != 0) {
                free(a);
                base = NULL;
                return -ENOMEM;
        }
        a->variant = variant_by_name(variant);
        if (!a->variant)
                return errmsg_set(e, EINVAL, "Unknown attestation variant \"%s\"", strna(variant));
        a->tpm = tpm;
        a->ak_handle = ak_handle;
        a->tmpl = evidence_new();
        if (!a->tmpl)
                return -ENOMEM;
        r = snprintf(a->tmpl->variant, sizeof(a->tmpl->variant), "%s", a->variant->name);
        if (r < 0 || (size_t) r >= sizeof(a->tmpl->variant))
                return -EINVAL;

        r = tpm_ak_ensure(tpm, ak_handle, &pub, &pub_size, e);
        if (r < 0)
                return r;
        r = blob_set(&a->tmpl->ak_public, pub, pub_size);
        if (r < 0)
                return r;
        r = a->variant->collect(tpm, ak_handle, a->tmpl, e);
        if (r < 0)
                return r;
        r = collect_event_log(a->tmpl, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(base);
        return 0;
}

static void tpm_attester_free(struct attester *base) {
        struct tpm_attester *a = container_of(base, struct tpm_attester, base);

        evidence_free(a->tmpl);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

static const char *tpm_attester_variant(const struct attester *base) {
        return container_of(base, const struct tpm_attester, base)->variant->name;
}

static int tpm_attester_ak_name(const struct attester *base, uint8_t ret[ATTEST_AK_NAME_SIZE],
                                struct errmsg *e) {
        const struct tpm_attester *a = container_of(base, const struct tpm_attester, base);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        uint8_t name[TPM_NAME_SIZE];
        int r;

        r = tpm_public_parse(a->tmpl->ak_public.data, a->tmpl->ak_public.size, &key, name, e);
        if (r < 0)
                return r;
        memcpy(ret, name, ATTEST_AK_NAME_SIZE);
        return 0;
}

static int tpm_attester_issue_locked(struct tpm_attester *a, const char *purpose,
                                     const uint8_t nonce[ATTEST_NONCE_SIZE],
                                     const uint8_t user_data[ATTEST_USER_DATA_SIZE], char **ret, size_t *ret_size,
                                     struct errmsg *e) {
        struct tpm_quote q = {};
        uint8_t qd[32];
        unsigned reads = 0;
        int r;

        r = attest_qualifying_data(purpose, nonce, user_data, qd);
        if (r < 0)
                return r;
        /* The quote covers the PCRs as they are when it is made; the
         * evidence reports values that hash to its PCR digest. Values read
         * for an earlier quote are reported again if they still hash to
         * it; otherwise (a PCR was extended since) they are read afresh,
         * and a PCR extended between reading and quoting makes another
         * round. */
        for (;;) {
                uint8_t digest[32];
                struct tpm_quote_info info;

                if (!a->pcrs_valid) {
                        r = tpm_pcr_read(a->tpm, a->pcrs, e);
                        if (r < 0)
                                return r;
                        a->pcrs_valid = true;
                        reads++;
                }
                r = tpm_quote(a->tpm, a->ak_handle, qd, sizeof(qd), &q, e);
                if (r < 0)
                        return r;
                r = tpm_attest_parse(q.attest, q.attest_size, &info, e);
                if (r < 0)
                        goto out;
                r = tpm_pcr_digest((const uint8_t(*)[32]) a->pcrs, digest);
                if (r < 0)
                        goto out;
                if (memcmp(digest, info.pcr_digest, 32) == 0)
                        break;
                a->pcrs_valid = false;
                tpm_quote_done(&q);
                if (reads >= 4) {
                        r = errmsg_set(e, EAGAIN, "PCRs kept changing while quoting");
                        goto out;
                }
        }

        /* The template holds the static parts; fill in this issue's. */
        memcpy(a->tmpl->pcrs, a->pcrs, sizeof(a->pcrs));
        memcpy(a->tmpl->user_data, user_data, ATTEST_USER_DATA_SIZE);
        a->tmpl->quote = (struct blob){ q.attest, q.attest_size };
        a->tmpl->signature = (struct blob){ q.signature, q.signature_size };
        r = evidence_serialize(a->tmpl, ret, ret_size);
        a->tmpl->quote = (struct blob){};
        a->tmpl->signature = (struct blob){};
out:
        tpm_quote_done(&q);
        return r;
}

static int tpm_attester_issue(struct attester *base, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                              const uint8_t user_data[ATTEST_USER_DATA_SIZE], char **ret, size_t *ret_size,
                              struct errmsg *e) {
        struct tpm_attester *a = container_of(base, struct tpm_attester, base);
        int r;

        pthread_mutex_lock(&a->lock);
        r = tpm_attester_issue_locked(a, purpose, nonce, user_data, ret, ret_size, e);
        pthread_mutex_unlock(&a->lock);
        return r;
}

static const struct attester_ops tpm_attester_ops = {
        .variant = tpm_attester_variant,
        .ak_name = tpm_attester_ak_name,
        .issue = tpm_attester_issue,
        .free = tpm_attester_free,
};

/* --- any attester ------------------------------------------------------- */

struct attester *attester_free(struct attester *a) {
        if (a)
                a->ops->free(a);
        return NULL;
}

const char *attester_variant(const struct attester *a) {
        return a->ops->variant(a);
}

int attester_ak_name(const struct attester *a, uint8_t ret[ATTEST_AK_NAME_SIZE], struct errmsg *e) {
        return a->ops->ak_name(a, ret, e);
}

int attester_issue(struct attester *a, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                   const uint8_t user_data[ATTEST_USER_DATA_SIZE], char **ret, size_t *ret_size,
                   struct errmsg *e) {
        return a->ops->issue(a, purpose, nonce, user_data, ret, ret_size, e);
}

/* --- verifier --------------------------------------------------------- */

int verifier_new(const char *variant, const struct policy *policy, X509_STORE *roots,
                 struct verifier **ret, struct errmsg *e) {
        _cleanup_(verifier_freep) struct verifier *v = NULL;
        int r;

        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        v->variant = variant_by_name(variant);
        if (!v->variant)
                return errmsg_set(e, EINVAL, "Unknown attestation variant \"%s\"", strna(variant));
        v->policy = *policy;
        r = cert_cache_new(32, &v->trust.certs);
        if (r < 0)
                return r;
        if (roots) {
                if (X509_STORE_up_ref(roots) != 1)
                        return -ENOMEM;
                v->trust.roots = roots;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

struct verifier *verifier_free(struct verifier *v) {
        if (!v)
                return NULL;
        X509_STORE_free(v->trust.roots);
        cert_cache_free(v->trust.certs);
        free(v);
        return NULL;
}

const char *verifier_variant(const struct verifier *v) {
        return v->variant->name;
}

const struct policy *verifier_policy(const struct verifier *v) {
        return &v->policy;
}

_Static_assert(ATTEST_AK_NAME_SIZE == TPM_NAME_SIZE, "AK name size");

static int fail(struct verify_report *rep, enum verify_check c, int error, const struct errmsg *m) {
        rep->failed = c;
        snprintf(rep->reason, sizeof(rep->reason), "%s check failed: %s", verify_check_to_string(c),
                 errmsg_str(m));
        return -abs(error);
}

static int verify_signature(EVP_PKEY *key, const struct blob *msg, const uint8_t *sig, size_t sig_size) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        int r;

        if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
                return openssl_errno(-ENOMEM);
        r = EVP_DigestVerify(md, sig, sig_size, msg->data, msg->size);
        ERR_clear_error();
        return r == 1 ? 0 : -EBADMSG;
}

int verifier_verify(const struct verifier *v, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                    const uint8_t user_data[ATTEST_USER_DATA_SIZE], const uint8_t *doc, size_t size,
                    struct verify_report *rep) {
        _cleanup_evidence_ struct evidence *ev = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *certified = NULL, *ak = NULL;
        _cleanup_free_ uint8_t *sig_der = NULL;
        struct tpm_quote_info info;
        struct errmsg m = {};
        uint8_t name[TPM_NAME_SIZE], qn[TPM_NAME_SIZE], qd[32], digest[32];
        size_t sig_size;
        int r;

        *rep = (struct verify_report){};

        r = evidence_parse(doc, size, &ev, &m);
        if (r < 0)
                return fail(rep, VERIFY_FORMAT, r, &m);
        snprintf(rep->variant, sizeof(rep->variant), "%s", ev->variant);
        if (!streq(ev->variant, v->variant->name)) {
                errmsg_set(&m, EPERM, "node uses variant \"%s\", the configuration expects \"%s\"", ev->variant,
                           v->variant->name);
                return fail(rep, VERIFY_VARIANT, EPERM, &m);
        }

        r = v->variant->trust_ak(&v->trust, ev, &certified, &m);
        if (r < 0)
                return fail(rep, VERIFY_AK_CHAIN, r, &m);

        r = tpm_public_parse(ev->ak_public.data, ev->ak_public.size, &ak, name, &m);
        if (r < 0)
                return fail(rep, VERIFY_AK_KEY, r, &m);
        if (EVP_PKEY_eq(certified, ak) != 1) {
                ERR_clear_error();
                errmsg_set(&m, EPERM, "the AK certificate is for a different key than the quoting key");
                return fail(rep, VERIFY_AK_KEY, EPERM, &m);
        }

        r = tpm_signature_parse(ev->signature.data, ev->signature.size, &sig_der, &sig_size, &m);
        if (r < 0)
                return fail(rep, VERIFY_SIG_SCHEME, r, &m);
        r = verify_signature(ak, &ev->quote, sig_der, sig_size);
        if (r < 0) {
                errmsg_set(&m, EPERM, "the quote is not signed by the attestation key");
                return fail(rep, VERIFY_SIGNATURE, EPERM, &m);
        }

        /* Signed by a restricted TPM key; now the structure can be read. */
        r = tpm_attest_parse(ev->quote.data, ev->quote.size, &info, &m);
        if (r < 0)
                return fail(rep, VERIFY_QUOTE, r, &m);
        /* The signature ties the quote to the certified key; this ties the
         * attributes checked above (restricted, fixedTPM, ...) to it too. */
        r = tpm_qualified_name(v->variant->ak_hierarchy, name, qn);
        if (r < 0 || info.signer_name_size != sizeof(qn) || !secret_equal(info.signer_name, qn, sizeof(qn))) {
                errmsg_set(&m, EPERM, "the quote's signer name is not the qualified name of akPublic");
                return fail(rep, VERIFY_AK_KEY, EPERM, &m);
        }

        if (!secret_equal(ev->user_data, user_data, ATTEST_USER_DATA_SIZE)) {
                errmsg_set(&m, EPERM, "evidence is bound to different user data (another TLS key)");
                return fail(rep, VERIFY_USER_DATA, EPERM, &m);
        }
        r = attest_qualifying_data(purpose, nonce, user_data, qd);
        if (r < 0) {
                errmsg_set(&m, r, "cannot compute qualifying data");
                return fail(rep, VERIFY_NONCE, r, &m);
        }
        if (info.extra_data_size != sizeof(qd) || !secret_equal(info.extra_data, qd, sizeof(qd))) {
                errmsg_set(&m, EPERM,
                           "the quote's qualifying data does not bind this verifier's nonce and purpose \"%s\" (replayed or stale evidence)",
                           purpose);
                return fail(rep, VERIFY_NONCE, EPERM, &m);
        }

        r = tpm_pcr_digest((const uint8_t(*)[32]) ev->pcrs, digest);
        if (r < 0 || !secret_equal(digest, info.pcr_digest, sizeof(digest))) {
                errmsg_set(&m, EPERM, "reported PCR values do not match the quoted PCR digest");
                return fail(rep, VERIFY_PCR_DIGEST, EPERM, &m);
        }

        memcpy(rep->pcrs, ev->pcrs, sizeof(rep->pcrs));
        memcpy(rep->ak_name, name, sizeof(rep->ak_name));
        rep->have_pcrs = true;
        r = policy_check(&v->policy, (const uint8_t(*)[32]) ev->pcrs, &rep->policy, &m);
        if (r < 0)
                return fail(rep, VERIFY_POLICY, r, &m);

        rep->failed = VERIFY_OK;
        snprintf(rep->reason, sizeof(rep->reason), "verified");
        return 0;
}
