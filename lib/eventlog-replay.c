/* SPDX-License-Identifier: Apache-2.0 */
/* Replay of an event log to PCR values, and the explanation of a mismatch
 * between a log, a policy and reported PCR values. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "encoding.h"
#include "eventlog.h"
#include "openssl-util.h"

#define STARTUP_LOCALITY_SIGNATURE "StartupLocality" /* 16 bytes with the NUL */

bool eventlog_event_extends(const struct eventlog_event *ev) {
        return ev->type != EV_NO_ACTION;
}

int eventlog_event_startup_locality(const struct eventlog_event *ev) {
        if (ev->type != EV_NO_ACTION || ev->data_size < sizeof(STARTUP_LOCALITY_SIGNATURE) ||
            memcmp(ev->data, STARTUP_LOCALITY_SIGNATURE, sizeof(STARTUP_LOCALITY_SIGNATURE)) != 0)
                return -ENOENT;
        /* TCG_EfiStartupLocalityEvent: signature[16], startupLocality. The
         * TPM starts at locality 0 or 3; 4 marks an H-CRTM. */
        if (ev->pcr != 0 || ev->data_size != sizeof(STARTUP_LOCALITY_SIGNATURE) + 1 ||
            ev->data[sizeof(STARTUP_LOCALITY_SIGNATURE)] > 4)
                return -EBADMSG;
        return ev->data[sizeof(STARTUP_LOCALITY_SIGNATURE)];
}

static const char *md_name(uint16_t alg) {
        switch (alg) {
        case EVENTLOG_ALG_SHA1:
                return "SHA1";
        case EVENTLOG_ALG_SHA256:
                return "SHA256";
        case EVENTLOG_ALG_SHA384:
                return "SHA384";
        case EVENTLOG_ALG_SHA512:
                return "SHA512";
        case EVENTLOG_ALG_SM3_256:
                return "SM3";
        default:
                return NULL;
        }
}

/* pcr := H(pcr || digest), as TPM2_PCR_Extend. */
static int extend(const EVP_MD *md, uint8_t *pcr, const uint8_t *digest, size_t size) {
        uint8_t buf[2 * EVENTLOG_MAX_DIGEST_SIZE];
        unsigned len = 0;

        memcpy(buf, pcr, size);
        memcpy(buf + size, digest, size);
        if (EVP_Digest(buf, 2 * size, pcr, &len, md, NULL) != 1 || len != size)
                return openssl_errno(-EIO);
        return 0;
}

static void reset_value(unsigned pcr, uint8_t *v, size_t size) {
        /* PC Client platform TPM profile: PCRs 17-22 (DRTM) reset to all
         * ones at TPM2_Startup; the others to zero. */
        memset(v, pcr >= 17 && pcr <= 22 ? 0xff : 0, size);
}

/* Walk the log once and check the StartupLocality rules; returns the
 * locality (0 when the log has none). */
static int startup_locality(const struct eventlog *l, bool *ret_has, struct errmsg *e) {
        bool pcr0_extended = false, has = false;
        int locality = 0;

        for (size_t i = 1; i < l->n_events; i++) {
                const struct eventlog_event *ev = &l->events[i];
                int loc = eventlog_event_startup_locality(ev);

                if (eventlog_event_extends(ev) && ev->pcr == 0)
                        pcr0_extended = true;
                if (loc == -ENOENT)
                        continue;
                if (loc < 0)
                        return errmsg_set(e, EBADMSG,
                                          "event %zu at offset 0x%zx: malformed StartupLocality event (PCR %u, "
                                          "%zu bytes, locality not 0-4)",
                                          i, ev->offset, ev->pcr, ev->data_size);
                if (has)
                        return errmsg_set(e, EBADMSG, "event %zu at offset 0x%zx: a second StartupLocality event", i,
                                          ev->offset);
                if (pcr0_extended)
                        return errmsg_set(e, EBADMSG,
                                          "event %zu at offset 0x%zx: StartupLocality event after PCR 0 was extended",
                                          i, ev->offset);
                has = true;
                locality = loc;
        }
        *ret_has = has;
        return locality;
}

static bool has_alg(const struct eventlog *l, uint16_t alg) {
        for (unsigned i = 0; i < l->n_algs; i++)
                if (l->algs[i].id == alg)
                        return true;
        return false;
}

const struct eventlog_bank *eventlog_pcrs_bank(const struct eventlog_pcrs *p, uint16_t alg) {
        for (unsigned i = 0; i < p->n_banks; i++)
                if (p->banks[i].alg == alg)
                        return &p->banks[i];
        return NULL;
}

int eventlog_replay(const struct eventlog *l, struct eventlog_pcrs *ret, struct errmsg *e) {
        EVP_MD *mds[EVENTLOG_MAX_ALGS] = {};
        _cleanup_free_ struct eventlog_pcrs *out = NULL;
        bool has_locality = false;
        int locality, r = 0;

        if (!has_alg(l, EVENTLOG_ALG_SHA256))
                return errmsg_set(e, EBADMSG, "the log has no SHA-256 bank (the Spec ID event does not list sha256)");
        locality = startup_locality(l, &has_locality, e);
        if (locality < 0)
                return locality;

        out = calloc(1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        out->n_banks = l->n_algs;
        out->has_startup_locality = has_locality;
        out->startup_locality = (uint8_t) locality;
        for (unsigned b = 0; b < l->n_algs; b++) {
                struct eventlog_bank *bank = &out->banks[b];
                const char *name = md_name(l->algs[b].id);

                bank->alg = l->algs[b].id;
                bank->size = l->algs[b].size;
                /* The Spec ID parser checked the size of known algorithms. */
                mds[b] = name ? EVP_MD_fetch(NULL, name, NULL) : NULL;
                bank->replayed = mds[b] && EVP_MD_get_size(mds[b]) == bank->size;
                if (!bank->replayed)
                        continue;
                for (unsigned i = 0; i < EVENTLOG_PCR_COUNT; i++)
                        reset_value(i, bank->pcr[i], bank->size);
                bank->pcr[0][bank->size - 1] = (uint8_t) locality;
        }
        ERR_clear_error();

        for (size_t i = 1; i < l->n_events && r >= 0; i++) {
                const struct eventlog_event *ev = &l->events[i];

                if (!eventlog_event_extends(ev))
                        continue;
                out->extended |= UINT32_C(1) << ev->pcr;
                for (unsigned b = 0; b < out->n_banks && r >= 0; b++) {
                        struct eventlog_bank *bank = &out->banks[b];
                        /* Present: the parser requires one digest per bank. */
                        const struct eventlog_digest *d = eventlog_event_digest(ev, bank->alg);

                        if (bank->replayed)
                                r = extend(mds[b], bank->pcr[ev->pcr], d->value, bank->size);
                }
        }
        for (unsigned b = 0; b < EVENTLOG_MAX_ALGS; b++)
                EVP_MD_free(mds[b]);
        if (r < 0)
                return errmsg_set(e, r, "hashing failed during the replay");
        if (!eventlog_pcrs_bank(out, EVENTLOG_ALG_SHA256)->replayed)
                return errmsg_set(e, EIO, "SHA-256 is not available from OpenSSL");
        *ret = *out;
        return 0;
}

/* --- explanation -------------------------------------------------------- */

/* Where the running SHA-256 value of `pcr` equals `want`: at the reset
 * value, or after the event returned in *ret_after. */
static int find_prefix(const struct eventlog *l, const EVP_MD *md, unsigned pcr, uint8_t start[32],
                       const uint8_t want[32], size_t *ret_after, bool *ret_at_start) {
        uint8_t v[32];
        int r;

        *ret_after = EVENTLOG_NONE;
        *ret_at_start = false;
        memcpy(v, start, 32);
        if (CRYPTO_memcmp(v, want, 32) == 0) {
                *ret_at_start = true;
                return 0;
        }
        for (size_t i = 1; i < l->n_events; i++) {
                const struct eventlog_event *ev = &l->events[i];

                if (ev->pcr != pcr || !eventlog_event_extends(ev))
                        continue;
                r = extend(md, v, eventlog_event_digest(ev, EVENTLOG_ALG_SHA256)->value, 32);
                if (r < 0)
                        return r;
                /* The first match: later ones would need a hash cycle. */
                if (CRYPTO_memcmp(v, want, 32) == 0) {
                        *ret_after = i;
                        return 0;
                }
        }
        return 0;
}

static int list_events(const struct eventlog *l, unsigned pcr, struct eventlog_pcr_explanation *x) {
        size_t n = 0;

        for (size_t i = 1; i < l->n_events; i++)
                if (l->events[i].pcr == pcr && eventlog_event_extends(&l->events[i]))
                        n++;
        if (n == 0)
                return 0;
        x->events = calloc(n, sizeof(size_t));
        if (!x->events)
                return -ENOMEM;
        for (size_t i = 1; i < l->n_events; i++)
                if (l->events[i].pcr == pcr && eventlog_event_extends(&l->events[i]))
                        x->events[x->n_events++] = i;
        return 0;
}

int eventlog_explain(const struct eventlog *l, const struct policy *p, const uint8_t (*reported)[32],
                     struct eventlog_explanation **ret, struct errmsg *e) {
        _cleanup_(eventlog_explanation_freep) struct eventlog_explanation *x = NULL;
        _cleanup_free_ struct eventlog_pcrs *pcrs = NULL;
        uint8_t replayed[POLICY_PCR_COUNT][32];
        const struct eventlog_bank *bank;
        struct policy_result res;
        EVP_MD *md = NULL;
        int r;

        pcrs = calloc(1, sizeof(*pcrs));
        x = calloc(1, sizeof(*x));
        if (!pcrs || !x)
                return -ENOMEM;
        r = eventlog_replay(l, pcrs, e);
        if (r < 0)
                return r;
        bank = eventlog_pcrs_bank(pcrs, EVENTLOG_ALG_SHA256);
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                memcpy(replayed[i], bank->pcr[i], 32);
        /* -EPERM only says that an enforced PCR differs; res has it all. */
        (void) policy_check(p, (const uint8_t(*)[32]) replayed, &res, NULL);

        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!md)
                return openssl_error(e, -EIO, "SHA-256");
        for (unsigned i = 0; i < POLICY_PCR_COUNT && r >= 0; i++) {
                struct eventlog_pcr_explanation *px = &x->pcr[i];
                bool policy_differs, interesting;
                uint8_t start[32];

                px->verdict = res.verdict[i];
                px->expected_after = px->reported_after = EVENTLOG_NONE;
                memcpy(px->replayed, replayed[i], 32);
                if (reported) {
                        px->has_reported = true;
                        memcpy(px->reported, reported[i], 32);
                        px->reported_mismatch = CRYPTO_memcmp(replayed[i], reported[i], 32) != 0;
                        x->n_reported_mismatch += px->reported_mismatch;
                }
                policy_differs = px->verdict == PCR_MISMATCH_ENFORCED || px->verdict == PCR_MISMATCH_WARN;
                x->n_enforced_mismatch += px->verdict == PCR_MISMATCH_ENFORCED;
                x->n_warn_mismatch += px->verdict == PCR_MISMATCH_WARN;
                interesting = policy_differs || px->reported_mismatch;
                if (!interesting)
                        continue;

                r = list_events(l, i, px);
                if (r < 0)
                        break;
                reset_value(i, start, 32);
                if (i == 0)
                        start[31] = pcrs->startup_locality;
                if (policy_differs)
                        r = find_prefix(l, md, i, start, p->pcr[i].expected, &px->expected_after,
                                        &px->expected_at_start);
                if (r >= 0 && px->reported_mismatch)
                        r = find_prefix(l, md, i, start, px->reported, &px->reported_after, &px->reported_at_start);
        }
        EVP_MD_free(md);
        if (r < 0)
                return errmsg_set(e, r, "hashing failed during the explanation");
        *ret = TAKE_PTR(x);
        return 0;
}

struct eventlog_explanation *eventlog_explanation_free(struct eventlog_explanation *x) {
        if (!x)
                return NULL;
        for (unsigned i = 0; i < EVENTLOG_PCR_COUNT; i++)
                free(x->pcr[i].events);
        return mfree(x);
}
