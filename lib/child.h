/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <sys/types.h>

/* In a child just forked from a daemon, before it runs anything: it dies
 * with `parent` (signal `deathsig`), has default handling of every signal
 * and nothing blocked (a daemon may block or ignore signals the child
 * relies on: SIGTERM, SIGCHLD, SIGPIPE, and libevent's handlers would
 * only write into the parent's socket), stdin on /dev/null, stdout on
 * out_fd (or /dev/null when negative), stderr on err_fd, and no other
 * descriptor. Only async-signal-safe calls; exits with 127 when it
 * cannot. */
void child_reset(pid_t parent, int deathsig, int out_fd, int err_fd);
