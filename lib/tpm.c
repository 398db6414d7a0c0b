/* SPDX-License-Identifier: Apache-2.0 */
#include "tpm.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <tss2_esys.h>
#include <tss2_mu.h>
#include <tss2_rc.h>
#include <tss2_tctildr.h>

#include "macro.h"
#include "secret.h"

struct tpm_ctx {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        /* ESYS handle of the AK, cached after the first load. */
        uint32_t ak_handle;
        ESYS_TR ak;
        uint32_t nv_buffer_max;
};

/* Map the TPM's and the TSS's response codes onto errno. */
static int tss_errno(TSS2_RC rc) {
        switch (rc & ~TSS2_RC_LAYER_MASK) {
        case TSS2_BASE_RC_BAD_REFERENCE:
        case TSS2_BASE_RC_BAD_VALUE:
        case TSS2_BASE_RC_BAD_SIZE:
                return -EINVAL;
        case TSS2_BASE_RC_MEMORY:
                return -ENOMEM;
        case TSS2_BASE_RC_IO_ERROR:
        case TSS2_BASE_RC_NO_CONNECTION:
                return -ECONNREFUSED;
        case TSS2_BASE_RC_TRY_AGAIN:
                return -EAGAIN;
        default:
                break;
        }
        if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
                TSS2_RC fmt1 = rc & 0xbf; /* strip parameter/handle number */
                if (rc & TPM2_RC_FMT1) {
                        if (fmt1 == TPM2_RC_HANDLE || fmt1 == (TPM2_RC_HANDLE & 0xbf))
                                return -ENOENT;
                        return -EINVAL;
                }
                if (rc == TPM2_RC_NV_DEFINED)
                        return -EEXIST;
                if (rc == TPM2_RC_NV_UNINITIALIZED)
                        return -ENODATA;
                if (rc == TPM2_RC_LOCKOUT || rc == TPM2_RC_AUTH_FAIL)
                        return -EACCES;
                if (rc == TPM2_RC_RETRY || rc == TPM2_RC_YIELDED || rc == TPM2_RC_TESTING)
                        return -EAGAIN;
        }
        return -EIO;
}

static int tss_error(struct errmsg *e, TSS2_RC rc, const char *what) {
        return errmsg_set(e, tss_errno(rc), "%s: %s (0x%x)", what, Tss2_RC_Decode(rc), rc);
}

const char *tpm_tcti_default(const char *tcti) {
        const char *env;

        if (tcti && *tcti)
                return tcti;
        env = getenv("ARCA_TCTI");
        if (env && *env)
                return env;
        return "device:/dev/tpmrm0";
}

void tpm_quote_done(struct tpm_quote *q) {
        if (!q)
                return;
        free(q->attest);
        free(q->signature);
        *q = (struct tpm_quote){};
}

struct tpm_ctx *tpm_free(struct tpm_ctx *t) {
        if (!t)
                return NULL;
        if (t->esys) {
                if (t->ak != ESYS_TR_NONE)
                        Esys_TR_Close(t->esys, &t->ak);
                Esys_Finalize(&t->esys);
        }
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        free(t);
        return NULL;
}

int tpm_parse_persistent_handle(const char *s, uint32_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || !isxdigit((unsigned char) s[0])) /* no sign, no blanks, not empty */
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || *end || v > UINT32_MAX || (v >> 24) != 0x81)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

int tpm_open(const char *tcti, struct tpm_ctx **ret, struct errmsg *e) {
        _cleanup_tpm_ struct tpm_ctx *t = NULL;
        const char *conf = tpm_tcti_default(tcti);
        TSS2_RC rc;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->ak = ESYS_TR_NONE;
        rc = Tss2_TctiLdr_Initialize(conf, &t->tcti);
        if (rc != TSS2_RC_SUCCESS)
                return errmsg_set(e, ECONNREFUSED, "Cannot reach the TPM through TCTI \"%s\": %s", conf,
                                  Tss2_RC_Decode(rc));
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "Esys_Initialize");
        /* Harmless if the TPM was started already (firmware or swtpm flags). */
        rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
        if (rc != TSS2_RC_SUCCESS && rc != TPM2_RC_INITIALIZE)
                return tss_error(e, rc, "TPM2_Startup");
        *ret = TAKE_PTR(t);
        return 0;
}

static TPML_PCR_SELECTION pcr_selection_all(void) {
        TPML_PCR_SELECTION sel = {
                .count = 1,
                .pcrSelections[0] = {
                        .hash = TPM2_ALG_SHA256,
                        .sizeofSelect = 3,
                        .pcrSelect = { 0xff, 0xff, 0xff },
                },
        };
        return sel;
}

int tpm_pcr_read(struct tpm_ctx *t, uint8_t ret[TPM_PCR_COUNT][TPM_DIGEST_SIZE], struct errmsg *e) {
        uint8_t values[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        uint32_t got = 0; /* bitmask of PCRs returned so far */

        /* PCR_Read returns at most 8 digests per call; ask again for what is
         * still missing until every PCR has been returned. */
        for (unsigned round = 0; got != 0xffffff && round < TPM_PCR_COUNT; round++) {
                TPML_PCR_SELECTION sel = pcr_selection_all(), *out_sel = NULL;
                TPML_DIGEST *digests = NULL;
                uint32_t counter;
                unsigned k = 0;
                TSS2_RC rc;

                for (unsigned i = 0; i < TPM_PCR_COUNT; i++)
                        if (got & (UINT32_C(1) << i))
                                sel.pcrSelections[0].pcrSelect[i / 8] &= (uint8_t) ~(1u << (i % 8));
                rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &counter,
                                   &out_sel, &digests);
                if (rc != TSS2_RC_SUCCESS)
                        return tss_error(e, rc, "TPM2_PCR_Read");
                for (unsigned s = 0; s < out_sel->count; s++) {
                        const TPMS_PCR_SELECTION *ps = &out_sel->pcrSelections[s];
                        if (ps->hash != TPM2_ALG_SHA256)
                                continue;
                        for (unsigned i = 0; i < TPM_PCR_COUNT && i / 8 < ps->sizeofSelect; i++) {
                                if (!(ps->pcrSelect[i / 8] & (1u << (i % 8))))
                                        continue;
                                if (k >= digests->count || digests->digests[k].size != TPM_DIGEST_SIZE) {
                                        Esys_Free(out_sel);
                                        Esys_Free(digests);
                                        return errmsg_set(e, EIO, "TPM2_PCR_Read returned a malformed response");
                                }
                                memcpy(values[i], digests->digests[k++].buffer, TPM_DIGEST_SIZE);
                                got |= UINT32_C(1) << i;
                        }
                }
                Esys_Free(out_sel);
                Esys_Free(digests);
                if (k == 0)
                        break;
        }
        if (got != 0xffffff)
                return errmsg_set(e, ENODATA, "TPM has no complete SHA-256 PCR bank");
        memcpy(ret, values, sizeof(values));
        return 0;
}

static int pcr_handle(unsigned pcr, ESYS_TR *ret, struct errmsg *e) {
        if (pcr >= TPM_PCR_COUNT)
                return errmsg_set(e, EINVAL, "PCR index %u out of range", pcr);
        *ret = ESYS_TR_PCR0 + pcr;
        return 0;
}

int tpm_pcr_extend(struct tpm_ctx *t, unsigned pcr, const uint8_t digest[TPM_DIGEST_SIZE],
                   struct errmsg *e) {
        TPML_DIGEST_VALUES v = { .count = 1, .digests[0].hashAlg = TPM2_ALG_SHA256 };
        ESYS_TR h = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        r = pcr_handle(pcr, &h, e);
        if (r < 0)
                return r;
        memcpy(v.digests[0].digest.sha256, digest, TPM_DIGEST_SIZE);
        rc = Esys_PCR_Extend(t->esys, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &v);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "TPM2_PCR_Extend");
        return 0;
}

int tpm_pcr_event(struct tpm_ctx *t, unsigned pcr, const void *data, size_t size, struct errmsg *e) {
        TPM2B_EVENT ev = {};
        TPML_DIGEST_VALUES *out = NULL;
        ESYS_TR h = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        r = pcr_handle(pcr, &h, e);
        if (r < 0)
                return r;
        if (size > sizeof(ev.buffer))
                return errmsg_set(e, EINVAL, "PCR event data of %zu bytes exceeds %zu", size,
                                  sizeof(ev.buffer));
        ev.size = (uint16_t) size;
        memcpy(ev.buffer, data, size);
        rc = Esys_PCR_Event(t->esys, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &ev, &out);
        secret_wipe(&ev, sizeof(ev));
        Esys_Free(out);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "TPM2_PCR_Event");
        return 0;
}

static TPM2B_PUBLIC ak_template(void) {
        TPM2B_PUBLIC p = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                            TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT,
                        .parameters.eccDetail = {
                                .symmetric.algorithm = TPM2_ALG_NULL,
                                .scheme = {
                                        .scheme = TPM2_ALG_ECDSA,
                                        .details.ecdsa.hashAlg = TPM2_ALG_SHA256,
                                },
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                },
        };
        return p;
}

static int marshal_public(const TPMT_PUBLIC *pub, uint8_t **ret, size_t *ret_size) {
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        uint8_t *out;

        if (Tss2_MU_TPMT_PUBLIC_Marshal(pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS)
                return -EINVAL;
        out = malloc(off);
        if (!out)
                return -ENOMEM;
        memcpy(out, buf, off);
        *ret = out;
        *ret_size = off;
        return 0;
}

static int ak_load(struct tpm_ctx *t, uint32_t handle, struct errmsg *e) {
        TSS2_RC rc;

        if (t->ak != ESYS_TR_NONE && t->ak_handle == handle)
                return 0;
        if (t->ak != ESYS_TR_NONE) {
                Esys_TR_Close(t->esys, &t->ak);
                t->ak = ESYS_TR_NONE;
        }
        rc = Esys_TR_FromTPMPublic(t->esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &t->ak);
        if (rc != TSS2_RC_SUCCESS) {
                t->ak = ESYS_TR_NONE;
                int r = tss_errno(rc);
                if (r == -ENOENT || r == -EINVAL)
                        return -ENOENT;
                return tss_error(e, rc, "Loading the attestation key");
        }
        t->ak_handle = handle;
        return 0;
}

static int ak_create(struct tpm_ctx *t, uint32_t handle, struct errmsg *e) {
        TPM2B_SENSITIVE_CREATE sens = {};
        TPM2B_PUBLIC tmpl = ak_template();
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcr = {};
        TPM2B_PUBLIC *out_pub = NULL;
        TPM2B_CREATION_DATA *cdata = NULL;
        TPM2B_DIGEST *chash = NULL;
        TPMT_TK_CREATION *ticket = NULL;
        ESYS_TR transient = ESYS_TR_NONE, persistent = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                ESYS_TR_NONE, &sens, &tmpl, &outside, &creation_pcr, &transient,
                                &out_pub, &cdata, &chash, &ticket);
        Esys_Free(out_pub);
        Esys_Free(cdata);
        Esys_Free(chash);
        Esys_Free(ticket);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "Creating the attestation key");
        rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, handle, &persistent);
        /* Transient objects fill the TPM's few slots unless flushed. */
        Esys_FlushContext(t->esys, transient);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "Persisting the attestation key");
        Esys_TR_Close(t->esys, &persistent);
        return 0;
}

int tpm_ak_ensure(struct tpm_ctx *t, uint32_t handle, uint8_t **ret_public, size_t *ret_size,
                  struct errmsg *e) {
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_NAME *name = NULL, *qname = NULL;
        TSS2_RC rc;
        int r;

        r = ak_load(t, handle, e);
        if (r == -ENOENT) {
                r = ak_create(t, handle, e);
                if (r < 0)
                        return r;
                r = ak_load(t, handle, e);
        }
        if (r < 0)
                return r;
        if (!ret_public)
                return 0;
        rc = Esys_ReadPublic(t->esys, t->ak, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name, &qname);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "Reading the attestation key");
        r = marshal_public(&pub->publicArea, ret_public, ret_size);
        Esys_Free(pub);
        Esys_Free(name);
        Esys_Free(qname);
        return r;
}

int tpm_quote(struct tpm_ctx *t, uint32_t handle, const void *qualifying_data, size_t qd_size,
              struct tpm_quote *ret, struct errmsg *e) {
        TPM2B_DATA qd = {};
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256 };
        TPML_PCR_SELECTION sel = pcr_selection_all();
        TPM2B_ATTEST *attest = NULL;
        TPMT_SIGNATURE *sig = NULL;
        struct tpm_quote q = {};
        uint8_t sigbuf[sizeof(TPMT_SIGNATURE)];
        size_t off = 0;
        TSS2_RC rc;
        int r;

        if (qd_size > sizeof(qd.buffer))
                return errmsg_set(e, EINVAL, "qualifying data of %zu bytes exceeds %zu", qd_size,
                                  sizeof(qd.buffer));
        r = ak_load(t, handle, e);
        if (r == -ENOENT)
                return errmsg_set(e, r, "No attestation key at handle 0x%08x", handle);
        if (r < 0)
                return r;
        qd.size = (uint16_t) qd_size;
        memcpy(qd.buffer, qualifying_data, qd_size);
        rc = Esys_Quote(t->esys, t->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qd, &scheme, &sel,
                        &attest, &sig);
        if (rc != TSS2_RC_SUCCESS)
                return tss_error(e, rc, "TPM2_Quote");
        r = -ENOMEM;
        if (Tss2_MU_TPMT_SIGNATURE_Marshal(sig, sigbuf, sizeof(sigbuf), &off) != TSS2_RC_SUCCESS) {
                r = errmsg_set(e, EIO, "Cannot marshal the quote signature");
                goto out;
        }
        q.attest = malloc(attest->size);
        q.signature = malloc(off);
        if (!q.attest || !q.signature)
                goto out;
        memcpy(q.attest, attest->attestationData, attest->size);
        q.attest_size = attest->size;
        memcpy(q.signature, sigbuf, off);
        q.signature_size = off;
        *ret = q;
        q = (struct tpm_quote){};
        r = 0;
out:
        tpm_quote_done(&q);
        Esys_Free(attest);
        Esys_Free(sig);
        return r;
}

static int nv_buffer_max(struct tpm_ctx *t) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        TSS2_RC rc;

        if (t->nv_buffer_max)
                return 0;
        t->nv_buffer_max = 512; /* safe minimum if the TPM does not say */
        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap);
        if (rc == TSS2_RC_SUCCESS && cap->data.tpmProperties.count == 1 &&
            cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
            cap->data.tpmProperties.tpmProperty[0].value >= 64)
                t->nv_buffer_max = cap->data.tpmProperties.tpmProperty[0].value;
        Esys_Free(cap);
        return 0;
}

static int nv_open(struct tpm_ctx *t, uint32_t index, ESYS_TR *ret, uint16_t *ret_size,
                   struct errmsg *e) {
        TPM2B_NV_PUBLIC *pub = NULL;
        TPM2B_NAME *name = NULL;
        ESYS_TR h;
        TSS2_RC rc;

        rc = Esys_TR_FromTPMPublic(t->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &h);
        if (rc != TSS2_RC_SUCCESS) {
                int r = tss_errno(rc);
                if (r == -ENOENT || r == -EINVAL)
                        return -ENOENT;
                return tss_error(e, rc, "Opening NV index");
        }
        rc = Esys_NV_ReadPublic(t->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name);
        if (rc != TSS2_RC_SUCCESS) {
                Esys_TR_Close(t->esys, &h);
                return tss_error(e, rc, "Reading NV index public area");
        }
        *ret_size = pub->nvPublic.dataSize;
        Esys_Free(pub);
        Esys_Free(name);
        *ret = h;
        return 0;
}

int tpm_nv_write(struct tpm_ctx *t, uint32_t index, const void *data, size_t size, struct errmsg *e) {
        TPM2B_AUTH auth = {};
        TPM2B_NV_PUBLIC pub = {
                .nvPublic = {
                        .nvIndex = index,
                        .nameAlg = TPM2_ALG_SHA256,
                        .attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD |
                                      TPMA_NV_NO_DA | (TPM2_NT_ORDINARY << TPMA_NV_TPM2_NT_SHIFT),
                },
        };
        ESYS_TR h = ESYS_TR_NONE;
        uint16_t cur_size;
        TSS2_RC rc;
        int r;

        if (size == 0 || size > TPM_NV_MAX_SIZE)
                return errmsg_set(e, EINVAL, "NV data of %zu bytes is out of range", size);
        nv_buffer_max(t);

        r = nv_open(t, index, &h, &cur_size, e);
        if (r >= 0 && cur_size != size) {
                rc = Esys_NV_UndefineSpace(t->esys, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                           ESYS_TR_NONE);
                if (rc != TSS2_RC_SUCCESS) {
                        Esys_TR_Close(t->esys, &h);
                        return tss_error(e, rc, "Undefining NV index");
                }
                h = ESYS_TR_NONE;
                r = -ENOENT;
        }
        if (r == -ENOENT) {
                pub.nvPublic.dataSize = (uint16_t) size;
                rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                         ESYS_TR_NONE, &auth, &pub, &h);
                if (rc != TSS2_RC_SUCCESS)
                        return tss_error(e, rc, "Defining NV index");
        } else if (r < 0)
                return r;

        for (size_t off = 0; off < size;) {
                TPM2B_MAX_NV_BUFFER chunk = {};
                size_t n = size - off;
                if (n > t->nv_buffer_max)
                        n = t->nv_buffer_max;
                if (n > sizeof(chunk.buffer))
                        n = sizeof(chunk.buffer);
                chunk.size = (uint16_t) n;
                memcpy(chunk.buffer, (const uint8_t *) data + off, n);
                rc = Esys_NV_Write(t->esys, ESYS_TR_RH_OWNER, h, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, &chunk, (uint16_t) off);
                if (rc != TSS2_RC_SUCCESS) {
                        Esys_TR_Close(t->esys, &h);
                        return tss_error(e, rc, "Writing NV index");
                }
                off += n;
        }
        Esys_TR_Close(t->esys, &h);
        return 0;
}

int tpm_nv_read(struct tpm_ctx *t, uint32_t index, uint8_t **ret, size_t *ret_size, struct errmsg *e) {
        _cleanup_free_ uint8_t *buf = NULL;
        ESYS_TR h;
        uint16_t size;
        int r;

        nv_buffer_max(t);
        r = nv_open(t, index, &h, &size, e);
        if (r < 0)
                return r;
        if (size > TPM_NV_MAX_SIZE) {
                Esys_TR_Close(t->esys, &h);
                return errmsg_set(e, EFBIG, "NV index 0x%08x holds %u bytes, more than %u", index, size,
                                  TPM_NV_MAX_SIZE);
        }
        buf = malloc(size ? size : 1);
        if (!buf) {
                Esys_TR_Close(t->esys, &h);
                return -ENOMEM;
        }
        for (uint16_t off = 0; off < size;) {
                TPM2B_MAX_NV_BUFFER *chunk = NULL;
                uint16_t n = (uint16_t) (size - off);
                TSS2_RC rc;

                if (n > t->nv_buffer_max)
                        n = (uint16_t) t->nv_buffer_max;
                rc = Esys_NV_Read(t->esys, h, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, off,
                                  &chunk);
                if (rc != TSS2_RC_SUCCESS) {
                        Esys_TR_Close(t->esys, &h);
                        return tss_error(e, rc, "Reading NV index");
                }
                if (chunk->size != n) {
                        Esys_Free(chunk);
                        Esys_TR_Close(t->esys, &h);
                        return errmsg_set(e, EIO, "Short NV read");
                }
                memcpy(buf + off, chunk->buffer, n);
                Esys_Free(chunk);
                off = (uint16_t) (off + n);
        }
        Esys_TR_Close(t->esys, &h);
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}
