/* SPDX-License-Identifier: Apache-2.0 */
#include "json-util.h"

#include <errno.h>

#include "encoding.h"
#include "secret.h"

#define JSON_MAX_DEPTH 16

#define JSON_MAX_KEYS 1024

struct key_span {
        const char *p;
        size_t len;
};

struct raw_level {
        bool is_object;
        bool want_key;
        const char *parent; /* key under which this container sits, or NULL */
        size_t parent_len;
        size_t n_keys, cap;
        struct key_span *keys; /* grows up to JSON_MAX_KEYS */
};

/* json-c keeps the last of duplicate keys, decodes escapes in keys (so
 * "var\u0069ant" and "variant\u0000x" both read as "variant") and keeps
 * NULs inside strings. Two readers of one signed document must never see two
 * different documents, so refuse all of that on the raw text, which
 * json-c has already found grammatical. */
static int json_check_raw(const char *buf, size_t len, struct errmsg *e) {
        struct raw_level stack[JSON_MAX_DEPTH + 1] = {};
        int depth = -1, r = 0;

        for (size_t i = 0; i < len && r == 0; i++) {
                struct raw_level *l = depth >= 0 ? &stack[depth] : NULL;
                const char *str;
                size_t slen;
                bool escaped = false;

                switch (buf[i]) {
                case '{':
                case '[':
                        if (depth + 1 > JSON_MAX_DEPTH) {
                                r = errmsg_set(e, EBADMSG, "JSON nested too deeply");
                                break;
                        }
                        depth++;
                        stack[depth].is_object = buf[i] == '{';
                        stack[depth].want_key = buf[i] == '{';
                        stack[depth].n_keys = 0;
                        /* Name the nearest enclosing key, through arrays. */
                        stack[depth].parent = !l ? NULL : l->is_object ? l->keys[l->n_keys - 1].p : l->parent;
                        stack[depth].parent_len = !l ? 0 : l->is_object ? l->keys[l->n_keys - 1].len : l->parent_len;
                        continue;
                case '\'':
                        r = errmsg_set(e, EBADMSG, "single-quoted strings are not JSON (offset %zu)", i);
                        continue;
                case '}':
                case ']':
                        depth--;
                        continue;
                case ',':
                        if (l)
                                l->want_key = l->is_object;
                        continue;
                case '"':
                        break;
                default:
                        continue;
                }
                if (r < 0)
                        break;
                str = buf + i + 1;
                for (i++; i < len && buf[i] != '"'; i++) {
                        if ((unsigned char) buf[i] < 0x20) {
                                /* RFC 8259: control characters must be escaped. */
                                r = errmsg_set(e, EBADMSG, "control character in JSON string at offset %zu", i);
                                break;
                        }
                        if (buf[i] == '\\') {
                                escaped = true;
                                if (i + 5 < len && strncmp(buf + i + 1, "u0000", 5) == 0) {
                                        r = errmsg_set(e, EBADMSG, "NUL character in JSON string at offset %zu", i);
                                        break;
                                }
                                i++;
                        }
                }
                if (r < 0 || !l || !l->want_key)
                        continue;
                l->want_key = false;
                slen = (size_t) (buf + i - str);
                if (escaped) {
                        r = errmsg_set(e, EBADMSG, "escape sequence in JSON key at offset %zu", (size_t) (str - buf));
                        break;
                }
                for (size_t k = 0; k < l->n_keys; k++)
                        if (l->keys[k].len == slen && memcmp(l->keys[k].p, str, slen) == 0) {
                                if (l->parent)
                                        r = errmsg_set(e, EBADMSG, "duplicate key \"%.*s\" in \"%.*s\"",
                                                       (int) (slen > 64 ? 64 : slen), str,
                                                       (int) (l->parent_len > 64 ? 64 : l->parent_len), l->parent);
                                else
                                        r = errmsg_set(e, EBADMSG, "duplicate key \"%.*s\"",
                                                       (int) (slen > 64 ? 64 : slen), str);
                                break;
                        }
                if (r < 0)
                        break;
                if (l->n_keys >= JSON_MAX_KEYS) {
                        r = errmsg_set(e, EBADMSG, "more than %u keys in a JSON object", JSON_MAX_KEYS);
                        break;
                }
                if (l->n_keys == l->cap) {
                        size_t cap = l->cap ? l->cap * 2 : 16;
                        struct key_span *k = realloc(l->keys, cap * sizeof(*k));
                        if (!k) {
                                r = -ENOMEM;
                                break;
                        }
                        l->keys = k;
                        l->cap = cap;
                }
                l->keys[l->n_keys].p = str;
                l->keys[l->n_keys].len = slen;
                l->n_keys++;
        }
        for (size_t d = 0; d < ELEMENTSOF(stack); d++)
                free(stack[d].keys);
        return r;
}

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
        int r = json_check_raw(buf, len, e);
        if (r < 0) {
                json_object_put(o);
                return r;
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

int json_get_bytes_exact(json_object *o, const char *field, void *out, size_t n, struct errmsg *e) {
        uint8_t *p = NULL;
        size_t size;
        int r;

        r = json_get_base64(o, field, n, &p, &size, e);
        if (r == -EFBIG)
                return errmsg_replace(e, EBADMSG, "field '%s' must be %zu bytes", field, n);
        if (r < 0)
                return r;
        if (size != n) {
                secret_free(p, size);
                return errmsg_set(e, EBADMSG, "field '%s' must be %zu bytes, not %zu", field, n, size);
        }
        memcpy(out, p, n);
        secret_free(p, size);
        return 0;
}

int json_get_string_buf(json_object *o, const char *field, char *buf, size_t size, struct errmsg *e) {
        json_object *v;
        size_t len;
        int r;

        r = get_typed(o, field, json_type_string, &v, e);
        if (r < 0)
                return r;
        len = (size_t) json_object_get_string_len(v);
        if (len >= size)
                return errmsg_set(e, EBADMSG, "field '%s' is longer than %zu characters", field, size - 1);
        memcpy(buf, json_object_get_string(v), len);
        buf[len] = 0;
        if (strlen(buf) != len)
                return errmsg_set(e, EBADMSG, "field '%s' contains a NUL character", field);
        return 0;
}

int json_check_fields(json_object *o, const char *const *allowed, struct errmsg *e) {
        if (!json_object_is_type(o, json_type_object))
                return errmsg_set(e, EBADMSG, "expected a JSON object");
        json_object_object_foreach(o, key, val) {
                bool known = false;
                (void) val;
                for (size_t i = 0; allowed[i]; i++)
                        if (streq(key, allowed[i]))
                                known = true;
                if (!known)
                        return errmsg_set(e, EBADMSG, "unknown field '%.64s'", key);
        }
        return 0;
}

int json_parse_object(const char *buf, size_t len, size_t max, const char *const *allowed, json_object **ret,
                      struct errmsg *e) {
        json_object *o = NULL;
        int r;

        if (len > max)
                return errmsg_set(e, EFBIG, "message larger than %zu bytes", max);
        r = json_parse(buf, len, &o, e);
        if (r < 0)
                return r;
        r = json_check_fields(o, allowed, e);
        if (r < 0) {
                json_object_put(o);
                return r;
        }
        *ret = o;
        return 0;
}

void json_wipe_strings(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_string:
                /* json-c owns the buffer and frees it without wiping. */
                secret_wipe((char *) json_object_get_string(o), (size_t) json_object_get_string_len(o));
                break;
        case json_type_object: {
                json_object_object_foreach(o, key, val) {
                        (void) key;
                        json_wipe_strings(val);
                }
                break;
        }
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        json_wipe_strings(json_object_array_get_idx(o, i));
                break;
        default:
                break;
        }
}

int json_serialize_secret(json_object *o, char **ret) {
        const char *s;
        size_t len;
        char *copy;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s)
                return -ENOMEM;
        copy = strndup(s, len);
        secret_wipe((char *) s, len);
        json_wipe_strings(o);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
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
        char *s = NULL;
        int r = base64_encode(p, n, &s);
        if (r < 0)
                return r;
        r = json_add_string(o, field, s);
        /* The bytes may be a key: leave no copy behind in freed memory. */
        secret_free(s, strlen(s));
        return r;
}

int json_add_hex(json_object *o, const char *field, const void *p, size_t n) {
        _cleanup_free_ char *s = NULL;
        int r = hex_encode(p, n, &s);
        if (r < 0)
                return r;
        return json_add_string(o, field, s);
}
