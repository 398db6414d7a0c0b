/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Helpers over json-c for strict parsing of outside data: every getter
 * checks presence and type and names the field in the error. */

#include <json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* Parse exactly one JSON value spanning the whole buffer (no trailing
 * garbage), nesting depth bounded. */
int json_parse(const char *buf, size_t len, json_object **ret, struct errmsg *e);

int json_get_object(json_object *o, const char *field, json_object **ret, struct errmsg *e);
int json_get_array(json_object *o, const char *field, json_object **ret, struct errmsg *e);
/* String pointers stay valid as long as `o` does. */
int json_get_string(json_object *o, const char *field, const char **ret, struct errmsg *e);
int json_get_int(json_object *o, const char *field, int64_t *ret, struct errmsg *e);
int json_get_bool(json_object *o, const char *field, bool *ret, struct errmsg *e);
/* Base64 field decoded, at most max bytes. */
int json_get_base64(json_object *o, const char *field, size_t max, uint8_t **ret,
                    size_t *ret_size, struct errmsg *e);

/* Exactly n bytes of base64 into out (wiping the temporary copy): for keys. */
int json_get_bytes_exact(json_object *o, const char *field, void *out, size_t n, struct errmsg *e);
/* Copy a string field into buf; -EBADMSG if it does not fit (or holds a NUL). */
int json_get_string_buf(json_object *o, const char *field, char *buf, size_t size, struct errmsg *e);
/* Refuse any member of object o that is not listed (NULL-terminated). */
int json_check_fields(json_object *o, const char *const *allowed, struct errmsg *e);
/* A message's top level: at most max bytes, parsed by json_parse, an object
 * with only the allowed fields (NULL-terminated). */
int json_parse_object(const char *buf, size_t len, size_t max, const char *const *allowed, json_object **ret,
                      struct errmsg *e);

/* Overwrite every string value in o (recursively) before it is freed: for
 * documents that carried secrets. */
void json_wipe_strings(json_object *o);
/* Serialize (plain) into a new string, then wipe o's strings and its cached
 * serialization. */
int json_serialize_secret(json_object *o, char **ret);

/* Add helpers; return -ENOMEM on failure. */
int json_add_string(json_object *o, const char *field, const char *v);
int json_add_int(json_object *o, const char *field, int64_t v);
int json_add_bool(json_object *o, const char *field, bool v);
int json_add_base64(json_object *o, const char *field, const void *p, size_t n);
int json_add_hex(json_object *o, const char *field, const void *p, size_t n);
/* Takes ownership of v in every case. */
int json_add(json_object *o, const char *field, json_object *v);
