/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A fixed-size reason string that library functions fill in when they
 * refuse input, so the caller can log once, with the exact field or check
 * that failed ("PCR 4: expected ab.., got cd.."). Library code does not
 * print. Every function taking a `struct errmsg *` accepts NULL. */

#include <stddef.h>

#include "macro.h"

struct errmsg {
        char text[512];
};

/* Set the reason (first writer wins, so the innermost, most specific reason
 * is kept) and return -abs(error). */
int errmsg_set(struct errmsg *e, int error, const char *fmt, ...) _printf_(3, 4);
/* Overwrite any reason already set. */
int errmsg_replace(struct errmsg *e, int error, const char *fmt, ...) _printf_(3, 4);
/* Prefix an existing reason with context: "field 'x': <reason>". */
void errmsg_prefix(struct errmsg *e, const char *fmt, ...) _printf_(2, 3);

static inline const char *errmsg_str(const struct errmsg *e) {
        return e && e->text[0] ? e->text : "unknown error";
}
