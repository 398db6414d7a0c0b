/* SPDX-License-Identifier: Apache-2.0 */
#include "json-util.h"

#include <errno.h>

#include "encoding.h"

#define JSON_MAX_DEPTH 16

int json_parse(const char *buf, size_t len, json_object **ret, struct errmsg *e) {
        json_tokener *tok;
        json_object *o;
        enum json_tokener_error err;
        size_t consumed;

        if (len > INT32_MAX)
                return errmsg_set(e, EFBIG, "JSON document too large");
        tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, buf, (int) len);
        err = json_tokener_get_error(tok);
        consumed = json_tokener_get_parse_end(tok);
        if (!o && err == json_tokener_continue) {
                /* All input used and the value still open: a number or
                 * literal at the very end needs an explicit end; anything
                 * else is truncated. */
                o = json_tokener_parse_ex(tok, "", 1);
                err = json_tokener_get_error(tok);
                consumed = len;
                if (!o && err != json_tokener_success) {
                        json_tokener_free(tok);
                        return errmsg_set(e, EBADMSG, "JSON document is truncated");
                }
        }
        json_tokener_free(tok);
        if (!o && err == json_tokener_success)
                return errmsg_set(e, EBADMSG, "JSON document is null");
        if (!o || err != json_tokener_success) {
                json_object_put(o);
                return errmsg_set(e, EBADMSG, "invalid JSON at offset %zu: %s", consumed,
                                  json_tokener_error_desc(err));
        }
        /* Allow trailing whitespace only. */
        for (size_t i = consumed; i < len; i++)
                if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t') {
                        json_object_put(o);
                        return errmsg_set(e, EBADMSG, "trailing data after JSON document at offset %zu", i);
                }
        *ret = o;
        return 0;
}

static int get_typed(json_object *o, const char *field, json_type type, json_object **ret,
                     struct errmsg *e) {
        json_object *v;

        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "expected a JSON object around '%s'", field);
        if (!json_object_object_get_ex(o, field, &v) || !v)
                return errmsg_set(e, EBADMSG, "missing field '%s'", field);
        if (!json_object_is_type(v, type))
                return errmsg_set(e, EBADMSG, "field '%s' must be of type %s", field,
                                  json_type_to_name(type));
        *ret = v;
        return 0;
}

int json_get_object(json_object *o, const char *field, json_object **ret, struct errmsg *e) {
        return get_typed(o, field, json_type_object, ret, e);
}

int json_get_array(json_object *o, const char *field, json_object **ret, struct errmsg *e) {
        return get_typed(o, field, json_type_array, ret, e);
}

int json_get_string(json_object *o, const char *field, const char **ret, struct errmsg *e) {
        json_object *v;
        int r = get_typed(o, field, json_type_string, &v, e);
        if (r < 0)
                return r;
        *ret = json_object_get_string(v);
        return 0;
}

int json_get_int(json_object *o, const char *field, int64_t *ret, struct errmsg *e) {
        json_object *v;
        int r = get_typed(o, field, json_type_int, &v, e);
        if (r < 0)
                return r;
        *ret = json_object_get_int64(v);
        return 0;
}

int json_get_bool(json_object *o, const char *field, bool *ret, struct errmsg *e) {
        json_object *v;
        int r = get_typed(o, field, json_type_boolean, &v, e);
        if (r < 0)
                return r;
        *ret = json_object_get_boolean(v);
        return 0;
}

int json_get_base64(json_object *o, const char *field, size_t max, uint8_t **ret,
                    size_t *ret_size, struct errmsg *e) {
        json_object *v;
        size_t len;
        int r;

        r = get_typed(o, field, json_type_string, &v, e);
        if (r < 0)
                return r;
        len = (size_t) json_object_get_string_len(v);
        if (len / 4 * 3 > max + 2)
                return errmsg_set(e, EFBIG, "field '%s' is larger than %zu bytes", field, max);
        r = base64_decode(json_object_get_string(v), len, ret, ret_size);
        if (r == -EINVAL)
                return errmsg_set(e, EBADMSG, "field '%s' is not valid base64", field);
        if (r < 0)
                return r;
        if (*ret_size > max) {
                *ret = mfree(*ret);
                return errmsg_set(e, EFBIG, "field '%s' is larger than %zu bytes", field, max);
        }
        return 0;
}

int json_add(json_object *o, const char *field, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, field, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int json_add_string(json_object *o, const char *field, const char *v) {
        return json_add(o, field, json_object_new_string(v));
}

int json_add_int(json_object *o, const char *field, int64_t v) {
        return json_add(o, field, json_object_new_int64(v));
}

int json_add_bool(json_object *o, const char *field, bool v) {
        return json_add(o, field, json_object_new_boolean(v));
}

int json_add_base64(json_object *o, const char *field, const void *p, size_t n) {
        _cleanup_free_ char *s = NULL;
        int r = base64_encode(p, n, &s);
        if (r < 0)
                return r;
        return json_add_string(o, field, s);
}

int json_add_hex(json_object *o, const char *field, const void *p, size_t n) {
        _cleanup_free_ char *s = NULL;
        int r = hex_encode(p, n, &s);
        if (r < 0)
                return r;
        return json_add_string(o, field, s);
}
