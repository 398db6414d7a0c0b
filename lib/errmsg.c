/* SPDX-License-Identifier: Apache-2.0 */
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

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
