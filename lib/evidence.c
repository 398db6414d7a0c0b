/* SPDX-License-Identifier: Apache-2.0 */
#include "evidence.h"

#include <errno.h>
#include <string.h>

#include "encoding.h"
#include "json-util.h"

int blob_set(struct blob *b, const void *p, size_t n) {
        uint8_t *d = malloc(n ? n : 1);
        if (!d)
                return -ENOMEM;
        if (n)
                memcpy(d, p, n);
        free(b->data);
        b->data = d;
        b->size = n;
        return 0;
}

void blob_done(struct blob *b) {
        free(b->data);
        *b = (struct blob){};
}

struct evidence *evidence_new(void) {
        struct evidence *ev = calloc(1, sizeof(*ev));
        if (ev)
                ev->version = EVIDENCE_VERSION;
        return ev;
}

struct evidence *evidence_free(struct evidence *ev) {
        if (!ev)
                return NULL;
        blob_done(&ev->quote);
        blob_done(&ev->signature);
        blob_done(&ev->ak_public);
        for (size_t i = 0; i < ev->n_ak_certs; i++)
                blob_done(&ev->ak_certs[i]);
        blob_done(&ev->event_log);
        free(ev);
        return NULL;
}

static const char *const known_fields[] = {
        "version", "variant", "quote", "signature", "pcrs", "akPublic", "akCertChain", "eventLog", "userData", NULL,
};

static int get_blob(json_object *o, const char *field, size_t max, struct blob *b, struct errmsg *e) {
        return json_get_base64(o, field, max, &b->data, &b->size, e);
}

int evidence_parse(const uint8_t *p, size_t n, struct evidence **ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_evidence_ struct evidence *ev = NULL;
        json_object *arr;
        const char *variant;
        struct blob ud = {};
        int64_t version;
        int r;

        if (n > EVIDENCE_MAX_SIZE)
                return errmsg_set(e, EFBIG, "evidence: %zu bytes exceeds the limit of %u", n,
                                  EVIDENCE_MAX_SIZE);
        r = json_parse((const char *) p, n, &o, e);
        if (r < 0) {
                errmsg_prefix(e, "evidence");
                return r;
        }
        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "evidence: not a JSON object");
        r = json_check_fields(o, known_fields, e);
        if (r < 0)
                goto fail;

        ev = evidence_new();
        if (!ev)
                return -ENOMEM;

        r = json_get_int(o, "version", &version, e);
        if (r < 0)
                goto fail;
        if (version != EVIDENCE_VERSION)
                return errmsg_set(e, EPROTONOSUPPORT, "evidence: unsupported version %lld",
                                  (long long) version);
        r = json_get_string(o, "variant", &variant, e);
        if (r < 0)
                goto fail;
        if (strlen(variant) == 0 || strlen(variant) >= sizeof(ev->variant))
                return errmsg_set(e, EBADMSG, "evidence: field 'variant' has a bad length");
        strcpy(ev->variant, variant);

        if ((r = get_blob(o, "quote", 1024, &ev->quote, e)) < 0 ||
            (r = get_blob(o, "signature", 512, &ev->signature, e)) < 0 ||
            (r = get_blob(o, "akPublic", 1024, &ev->ak_public, e)) < 0)
                goto fail;

        r = json_get_array(o, "pcrs", &arr, e);
        if (r < 0)
                goto fail;
        if (json_object_array_length(arr) != 24)
                return errmsg_set(e, EBADMSG, "evidence: field 'pcrs' must list 24 values, not %zu",
                                  json_object_array_length(arr));
        for (size_t i = 0; i < 24; i++) {
                json_object *v = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(v, json_type_string) ||
                    hex_decode_exact(json_object_get_string(v), ev->pcrs[i], 32) < 0)
                        return errmsg_set(e, EBADMSG, "evidence: pcrs[%zu] is not 32 bytes of hex", i);
        }

        r = json_get_array(o, "akCertChain", &arr, e);
        if (r < 0)
                goto fail;
        if (json_object_array_length(arr) > EVIDENCE_MAX_CERTS)
                return errmsg_set(e, EBADMSG, "evidence: more than %u AK certificates", EVIDENCE_MAX_CERTS);
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
                json_object *v = json_object_array_get_idx(arr, i);
                size_t len;
                if (!json_object_is_type(v, json_type_string))
                        return errmsg_set(e, EBADMSG, "evidence: akCertChain[%zu] is not a string", i);
                len = (size_t) json_object_get_string_len(v);
                if (len / 4 * 3 > EVIDENCE_MAX_CERT_SIZE + 2)
                        return errmsg_set(e, EFBIG, "evidence: akCertChain[%zu] is too large", i);
                r = base64_decode(json_object_get_string(v), len, &ev->ak_certs[i].data,
                                  &ev->ak_certs[i].size);
                if (r < 0)
                        return errmsg_set(e, EBADMSG, "evidence: akCertChain[%zu] is not base64", i);
                ev->n_ak_certs++;
                if (ev->ak_certs[i].size == 0 || ev->ak_certs[i].size > EVIDENCE_MAX_CERT_SIZE)
                        return errmsg_set(e, EBADMSG, "evidence: akCertChain[%zu] has a bad size", i);
        }

        if (json_object_object_get_ex(o, "eventLog", NULL)) {
                r = get_blob(o, "eventLog", EVIDENCE_MAX_EVENT_LOG, &ev->event_log, e);
                if (r < 0)
                        goto fail;
        }

        r = get_blob(o, "userData", EVIDENCE_USER_DATA_SIZE, &ud, e);
        if (r < 0)
                goto fail;
        if (ud.size != EVIDENCE_USER_DATA_SIZE) {
                blob_done(&ud);
                return errmsg_set(e, EBADMSG, "evidence: field 'userData' must be %u bytes",
                                  EVIDENCE_USER_DATA_SIZE);
        }
        memcpy(ev->user_data, ud.data, EVIDENCE_USER_DATA_SIZE);
        blob_done(&ud);

        *ret = TAKE_PTR(ev);
        return 0;
fail:
        errmsg_prefix(e, "evidence");
        return r;
}

int evidence_serialize(const struct evidence *ev, char **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pcrs, *certs;
        const char *s;
        size_t len;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_int(o, "version", ev->version)) < 0 ||
            (r = json_add_string(o, "variant", ev->variant)) < 0 ||
            (r = json_add_base64(o, "quote", ev->quote.data, ev->quote.size)) < 0 ||
            (r = json_add_base64(o, "signature", ev->signature.data, ev->signature.size)) < 0)
                return r;
        pcrs = json_object_new_array_ext(24);
        r = json_add(o, "pcrs", pcrs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 24; i++) {
                char hex[65];
                hex_encode_buf(ev->pcrs[i], 32, hex);
                if (json_object_array_add(pcrs, json_object_new_string(hex)) < 0)
                        return -ENOMEM;
        }
        if ((r = json_add_base64(o, "akPublic", ev->ak_public.data, ev->ak_public.size)) < 0)
                return r;
        certs = json_object_new_array();
        r = json_add(o, "akCertChain", certs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ev->n_ak_certs; i++) {
                _cleanup_free_ char *b = NULL;
                r = base64_encode(ev->ak_certs[i].data, ev->ak_certs[i].size, &b);
                if (r < 0)
                        return r;
                if (json_object_array_add(certs, json_object_new_string(b)) < 0)
                        return -ENOMEM;
        }
        if (ev->event_log.size > 0 &&
            (r = json_add_base64(o, "eventLog", ev->event_log.data, ev->event_log.size)) < 0)
                return r;
        if ((r = json_add_base64(o, "userData", ev->user_data, sizeof(ev->user_data))) < 0)
                return r;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        *ret = strndup(s, len);
        if (!*ret)
                return -ENOMEM;
        *ret_size = len;
        return 0;
}
