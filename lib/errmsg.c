/* SPDX-License-Identifier: Apache-2.0 */
#include "errmsg.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int errmsg_set(struct errmsg *e, int error, const char *fmt, ...) {
        va_list ap;

        if (e && !e->text[0]) {
                va_start(ap, fmt);
                vsnprintf(e->text, sizeof(e->text), fmt, ap);
                va_end(ap);
        }
        return -abs(error);
}

int errmsg_replace(struct errmsg *e, int error, const char *fmt, ...) {
        va_list ap;

        if (e) {
                va_start(ap, fmt);
                vsnprintf(e->text, sizeof(e->text), fmt, ap);
                va_end(ap);
        }
        return -abs(error);
}

void errmsg_prefix(struct errmsg *e, const char *fmt, ...) {
        char prefix[256], old[sizeof(e->text)];
        va_list ap;

        if (!e)
                return;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        memcpy(old, e->text, sizeof(old));
        snprintf(e->text, sizeof(e->text), "%s: %s", prefix, old[0] ? old : "unknown error");
}

const char *printable(const char *s, size_t len, char *buf, size_t size) {
        size_t n;

        assert(size >= 4);
        if (!s)
                return "(null)";
        n = len > size - 4 ? size - 4 : len;
        for (size_t i = 0; i < n; i++)
                buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        memcpy(buf + n, n < len ? "..." : "", n < len ? 4 : 1);
        return buf;
}

const char *printable_str(const char *s, char *buf, size_t size) {
        /* One byte past what fits tells whether it was cut. */
        return printable(s, s ? strnlen(s, size - 3) : 0, buf, size);
}
