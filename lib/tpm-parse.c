/* SPDX-License-Identifier: Apache-2.0 */
#include "tpm-parse.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <string.h>
#include <tss2_mu.h>

#include "openssl-util.h"

int tpm_attest_parse(const uint8_t *p, size_t n, struct tpm_quote_info *ret, struct errmsg *e) {
        TPMS_ATTEST a = {};
        const TPML_PCR_SELECTION *sel;
        struct tpm_quote_info info = {};
        size_t off = 0;

        if (!p || n == 0 || n > sizeof(TPMS_ATTEST) + 64)
                return errmsg_set(e, EBADMSG, "quote: size %zu out of range", n);
        if (Tss2_MU_TPMS_ATTEST_Unmarshal(p, n, &off, &a) != TSS2_RC_SUCCESS)
                return errmsg_set(e, EBADMSG, "quote: malformed TPMS_ATTEST");
        if (off != n)
                return errmsg_set(e, EBADMSG, "quote: %zu trailing bytes after TPMS_ATTEST", n - off);
        if (a.magic != TPM2_GENERATED_VALUE)
                return errmsg_set(e, EBADMSG, "quote: magic 0x%08x is not TPM_GENERATED_VALUE", a.magic);
        if (a.type != TPM2_ST_ATTEST_QUOTE)
                return errmsg_set(e, EBADMSG, "quote: type 0x%04x is not TPM_ST_ATTEST_QUOTE", a.type);

        sel = &a.attested.quote.pcrSelect;
        if (sel->count != 1 || sel->pcrSelections[0].hash != TPM2_ALG_SHA256 ||
            sel->pcrSelections[0].sizeofSelect != 3 || sel->pcrSelections[0].pcrSelect[0] != 0xff ||
            sel->pcrSelections[0].pcrSelect[1] != 0xff || sel->pcrSelections[0].pcrSelect[2] != 0xff)
                return errmsg_set(e, EBADMSG, "quote: PCR selection is not SHA-256 PCRs 0-23");
        if (a.attested.quote.pcrDigest.size != 32)
                return errmsg_set(e, EBADMSG, "quote: PCR digest is %u bytes, not 32",
                                  a.attested.quote.pcrDigest.size);
        if (a.extraData.size > sizeof(info.extra_data))
                return errmsg_set(e, EBADMSG, "quote: qualifying data too large");
        if (a.qualifiedSigner.size > sizeof(info.signer_name))
                return errmsg_set(e, EBADMSG, "quote: signer name too large");

        memcpy(info.extra_data, a.extraData.buffer, a.extraData.size);
        info.extra_data_size = a.extraData.size;
        memcpy(info.pcr_digest, a.attested.quote.pcrDigest.buffer, 32);
        memcpy(info.signer_name, a.qualifiedSigner.name, a.qualifiedSigner.size);
        info.signer_name_size = a.qualifiedSigner.size;
        info.clock = a.clockInfo.clock;
        info.reset_count = a.clockInfo.resetCount;
        info.restart_count = a.clockInfo.restartCount;
        *ret = info;
        return 0;
}

int tpm_signature_parse(const uint8_t *p, size_t n, uint8_t **ret_der, size_t *ret_size,
                        struct errmsg *e) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *sig = NULL;
        BIGNUM *r = NULL, *s = NULL;
        TPMT_SIGNATURE t = {};
        unsigned char *der = NULL;
        size_t off = 0;
        int len;

        if (!p || n == 0 || n > sizeof(TPMT_SIGNATURE))
                return errmsg_set(e, EBADMSG, "signature: size %zu out of range", n);
        if (Tss2_MU_TPMT_SIGNATURE_Unmarshal(p, n, &off, &t) != TSS2_RC_SUCCESS)
                return errmsg_set(e, EBADMSG, "signature: malformed TPMT_SIGNATURE");
        if (off != n)
                return errmsg_set(e, EBADMSG, "signature: %zu trailing bytes", n - off);
        /* Pinned: the verifier never lets the evidence choose the scheme. */
        if (t.sigAlg != TPM2_ALG_ECDSA)
                return errmsg_set(e, EBADMSG, "signature scheme: algorithm 0x%04x is not ECDSA", t.sigAlg);
        if (t.signature.ecdsa.hash != TPM2_ALG_SHA256)
                return errmsg_set(e, EBADMSG, "signature scheme: hash 0x%04x is not SHA-256",
                                  t.signature.ecdsa.hash);
        if (t.signature.ecdsa.signatureR.size == 0 || t.signature.ecdsa.signatureR.size > 32 ||
            t.signature.ecdsa.signatureS.size == 0 || t.signature.ecdsa.signatureS.size > 32)
                return errmsg_set(e, EBADMSG, "signature: r or s has a bad size for P-256");

        sig = ECDSA_SIG_new();
        r = BN_bin2bn(t.signature.ecdsa.signatureR.buffer, t.signature.ecdsa.signatureR.size, NULL);
        s = BN_bin2bn(t.signature.ecdsa.signatureS.buffer, t.signature.ecdsa.signatureS.size, NULL);
        if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
                BN_free(r);
                BN_free(s);
                return openssl_errno(-ENOMEM);
        }
        len = i2d_ECDSA_SIG(sig, &der);
        if (len <= 0)
                return openssl_errno(-ENOMEM);
        *ret_der = der; /* allocated by OpenSSL; OPENSSL_free == free here */
        *ret_size = (size_t) len;
        return 0;
}

int tpm_public_parse(const uint8_t *p, size_t n, EVP_PKEY **ret_key, uint8_t ret_name[TPM_NAME_SIZE],
                     struct errmsg *e) {
        static const TPMA_OBJECT required = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED |
                                            TPMA_OBJECT_SIGN_ENCRYPT;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        OSSL_PARAM_BLD *bld = NULL;
        OSSL_PARAM *params = NULL;
        EVP_PKEY *key = NULL;
        TPMT_PUBLIC t = {};
        uint8_t point[65];
        size_t off = 0;
        int r;

        if (!p || n == 0 || n > sizeof(TPMT_PUBLIC))
                return errmsg_set(e, EBADMSG, "AK public: size %zu out of range", n);
        if (Tss2_MU_TPMT_PUBLIC_Unmarshal(p, n, &off, &t) != TSS2_RC_SUCCESS)
                return errmsg_set(e, EBADMSG, "AK public: malformed TPMT_PUBLIC");
        if (off != n)
                return errmsg_set(e, EBADMSG, "AK public: %zu trailing bytes", n - off);
        if (t.type != TPM2_ALG_ECC || t.nameAlg != TPM2_ALG_SHA256)
                return errmsg_set(e, EBADMSG, "AK public: not an ECC key with SHA-256 name");
        if ((t.objectAttributes & required) != required || (t.objectAttributes & TPMA_OBJECT_DECRYPT))
                return errmsg_set(e, EBADMSG,
                                  "AK public: attributes 0x%08x are not those of a restricted signing key",
                                  t.objectAttributes);
        if (t.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 ||
            t.parameters.eccDetail.scheme.scheme != TPM2_ALG_ECDSA ||
            t.parameters.eccDetail.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256)
                return errmsg_set(e, EBADMSG, "AK public: not a P-256 ECDSA-SHA256 key");
        if (t.unique.ecc.x.size != 32 || t.unique.ecc.y.size != 32)
                return errmsg_set(e, EBADMSG, "AK public: point coordinates are not 32 bytes");

        point[0] = 0x04;
        memcpy(point + 1, t.unique.ecc.x.buffer, 32);
        memcpy(point + 33, t.unique.ecc.y.buffer, 32);

        r = -ENOMEM;
        bld = OSSL_PARAM_BLD_new();
        if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
                goto out;
        params = OSSL_PARAM_BLD_to_param(bld);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1)
                goto out;
        if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
                r = errmsg_set(e, EBADMSG, "AK public: point is not on P-256");
                goto out;
        }
        /* Name = nameAlg || H(TPMT_PUBLIC); see tpm_qualified_name(). */
        ret_name[0] = (uint8_t) (TPM2_ALG_SHA256 >> 8);
        ret_name[1] = (uint8_t) (TPM2_ALG_SHA256 & 0xff);
        r = sha256(p, n, ret_name + 2);
        if (r < 0)
                goto out;
        *ret_key = TAKE_PTR(key);
        r = 0;
out:
        EVP_PKEY_free(key);
        OSSL_PARAM_free(params);
        OSSL_PARAM_BLD_free(bld);
        ERR_clear_error();
        return r;
}

int tpm_pcr_digest(const uint8_t pcrs[24][32], uint8_t ret[32]) {
        return sha256(pcrs, 24 * 32, ret);
}

int tpm_qualified_name(uint32_t hierarchy, const uint8_t name[TPM_NAME_SIZE], uint8_t ret[TPM_NAME_SIZE]) {
        uint8_t buf[4 + TPM_NAME_SIZE];

        buf[0] = (uint8_t) (hierarchy >> 24);
        buf[1] = (uint8_t) (hierarchy >> 16);
        buf[2] = (uint8_t) (hierarchy >> 8);
        buf[3] = (uint8_t) hierarchy;
        memcpy(buf + 4, name, TPM_NAME_SIZE);
        ret[0] = (uint8_t) (TPM2_ALG_SHA256 >> 8);
        ret[1] = (uint8_t) (TPM2_ALG_SHA256 & 0xff);
        return sha256(buf, sizeof(buf), ret + 2);
}
