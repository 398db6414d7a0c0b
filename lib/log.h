/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Logging. Library code never prints user-facing output; daemons and the CLI
 * log through these macros. Under systemd (JOURNAL_STREAM names our stderr)
 * messages go to journald with structured fields (PRIORITY, CODE_FILE,
 * CODE_LINE, CODE_FUNC, ERRNO, SYSLOG_IDENTIFIER); otherwise to stderr as
 * "ident: message". The log_*_errno() variants set errno for %m and return
 * -abs(error), so that `return log_error_errno(r, "...: %m");` works. */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

void log_setup(const char *ident);
/* Send entries to journald's native socket at socket_path (NULL: the
 * standard /run/systemd/journal/socket) from now on, whatever stderr is;
 * for tests and for daemons that know they run under systemd. */
int log_setup_journal(const char *socket_path);
void log_set_max_level(int level);
int log_get_max_level(void);
/* Parse "debug", "info", "notice", "warning", "err", or a number. */
int log_level_from_string(const char *s);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                                  \
        ({                                                                                 \
                int _l_ = (level), _e_ = (error);                                          \
                (_l_ <= log_get_max_level())                                               \
                        ? log_internal(_l_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e_);                                                       \
        })

#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* Log "Out of memory." and return -ENOMEM. */
#define log_oom() log_full_errno(LOG_ERR, ENOMEM, "Out of memory.")
