/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <endian.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int max_level = LOG_INFO;
static const char *log_ident = "arca";
static bool use_journal = false;
static int journal_fd = -1;
static struct sockaddr_un journal_addr = { .sun_family = AF_UNIX, .sun_path = "/run/systemd/journal/socket" };

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

/* journald's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL, stable):
 * one datagram per entry, each field as NAME '\n' <little-endian 64-bit
 * length> value '\n', which allows any byte in the value. Our entries are
 * a few KiB at most, far below the datagram limit, so no memfd is needed.
 * This is what sd_journal_send() does, without linking libsystemd and its
 * compression and crypto libraries into every daemon. */
static int journal_open(void) {
        int fd;

        if (journal_fd >= 0)
                return 0;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        journal_fd = fd;
        return 0;
}

int log_setup_journal(const char *socket_path) {
        if (socket_path) {
                if (strlen(socket_path) >= sizeof(journal_addr.sun_path))
                        return -ENAMETOOLONG;
                snprintf(journal_addr.sun_path, sizeof(journal_addr.sun_path), "%s", socket_path);
        }
        if (journal_open() < 0)
                return -errno;
        use_journal = true;
        return 0;
}

static size_t journal_field(char *buf, size_t size, size_t at, const char *name, const char *value) {
        size_t n = strlen(name), v = strlen(value);
        uint64_t le = htole64((uint64_t) v);

        if (at > size || n + 1 + sizeof(le) + v + 1 > size - at)
                return size + 1; /* does not fit: the caller falls back */
        memcpy(buf + at, name, n);
        buf[at + n] = '\n';
        memcpy(buf + at + n + 1, &le, sizeof(le));
        memcpy(buf + at + n + 1 + sizeof(le), value, v);
        buf[at + n + 1 + sizeof(le) + v] = '\n';
        return at + n + 1 + sizeof(le) + v + 1;
}

static int journal_send(int level, int error, const char *file, int line, const char *func, const char *msg) {
        char buf[4096], num[24];
        size_t at = 0;

        at = journal_field(buf, sizeof(buf), at, "MESSAGE", msg);
        snprintf(num, sizeof(num), "%d", level);
        at = journal_field(buf, sizeof(buf), at, "PRIORITY", num);
        at = journal_field(buf, sizeof(buf), at, "CODE_FILE", file);
        snprintf(num, sizeof(num), "%d", line);
        at = journal_field(buf, sizeof(buf), at, "CODE_LINE", num);
        at = journal_field(buf, sizeof(buf), at, "CODE_FUNC", func);
        at = journal_field(buf, sizeof(buf), at, "SYSLOG_IDENTIFIER", log_ident);
        if (error) {
                snprintf(num, sizeof(num), "%d", error);
                at = journal_field(buf, sizeof(buf), at, "ERRNO", num);
        }
        if (at > sizeof(buf))
                return -EMSGSIZE;
        if (sendto(journal_fd, buf, at, MSG_NOSIGNAL, (const struct sockaddr *) &journal_addr,
                   sizeof(journal_addr)) < 0)
                return -errno;
        return 0;
}

void log_setup(const char *ident) {
        const char *e;

        if (ident)
                log_ident = ident;
        use_journal = stderr_is_journal() && journal_open() >= 0;
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

        /* journald gone: the entry still reaches stderr (the journal's
         * stream, or wherever it points). */
        if (!use_journal || journal_send(level, error, file, line, func, buf) < 0) {
                if (max_level >= LOG_DEBUG)
                        fprintf(stderr, "%s: %s (%s:%d)\n", log_ident, buf, file, line);
                else
                        fprintf(stderr, "%s: %s\n", log_ident, buf);
        }

        errno = saved;
        return -error;
}
