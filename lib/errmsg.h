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

/* Outside text (a peer's reply, a wire field, a file, an argument) for a
 * message: the first `len` bytes of s, each byte but printable ASCII
 * (0x20-0x7e) shown as '?', at most size - 4 of them and "..." when cut, so
 * that it can neither forge log lines nor send escape sequences to a
 * terminal, and a reader sees that it was cut. NULL is shown as "(null)".
 * Returns buf (or that literal); size is at least 4. */
const char *printable(const char *s, size_t len, char *buf, size_t size);
/* The same for a NUL-terminated string (read no further than it shows). */
const char *printable_str(const char *s, char *buf, size_t size);

/* For an argument of a message: its own buffer, alive to the end of the
 * enclosing block, at most PRINTABLE_MAX bytes shown. */
#define PRINTABLE_MAX 128
#define PRINTABLE(s) printable_str((s), (char[PRINTABLE_MAX + 4]){}, PRINTABLE_MAX + 4)
