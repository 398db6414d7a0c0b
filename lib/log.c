/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static int max_level = LOG_INFO;
static const char *log_ident = "arca";
static bool use_journal = false;

/* systemd sets JOURNAL_STREAM=dev:ino for the stream it connected to our
 * stderr; only then is structured logging to journald appropriate. */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *ident) {
        const char *e;

        if (ident)
                log_ident = ident;
        use_journal = stderr_is_journal();
        e = getenv("ARCA_LOG_LEVEL");
        if (e) {
                int l = log_level_from_string(e);
                if (l >= 0)
                        max_level = l;
        }
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
                [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };
        char *end;
        long v;

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i]))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < 0 || v > LOG_DEBUG)
                return -EINVAL;
        return (int) v;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) {
        char buf[2048];
        int saved = errno;
        va_list ap;

        if (error < 0)
                error = -error;
        /* %m in fmt refers to the error we were given, not a stale errno. */
        errno = error;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);

        if (use_journal) {
                char l[32];
                snprintf(l, sizeof(l), "CODE_LINE=%d", line);
                if (error)
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "CODE_FILE=%s", file,
                                        l, "CODE_FUNC=%s", func, "SYSLOG_IDENTIFIER=%s", log_ident,
                                        "ERRNO=%i", error, NULL);
                else
                        sd_journal_send("MESSAGE=%s", buf, "PRIORITY=%i", level, "CODE_FILE=%s", file,
                                        l, "CODE_FUNC=%s", func, "SYSLOG_IDENTIFIER=%s", log_ident,
                                        NULL);
        } else if (max_level >= LOG_DEBUG)
                fprintf(stderr, "%s: %s (%s:%d)\n", log_ident, buf, file, line);
        else
                fprintf(stderr, "%s: %s\n", log_ident, buf);

        errno = saved;
        return -error;
}
