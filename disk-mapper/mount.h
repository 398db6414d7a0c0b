/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The opened state disk as a file system: ext4 on /dev/mapper/<name>,
 * mounted at the state directory, with directories of it bind-mounted over
 * the paths that must persist (/var, /etc/kubernetes). */

#include <stddef.h>

#include "errmsg.h"

#define MOUNT_MAX_BINDS 8

struct bind_spec {
        const char *sub;    /* directory inside the state file system */
        const char *target; /* where it is bind-mounted */
};

struct mount_config {
        const char *mkfs;      /* mkfs.ext4 */
        const char *state_dir; /* /run/state */
        struct bind_spec binds[MOUNT_MAX_BINDS];
        size_t n_binds;
};

/* Parse "SUB:TARGET" (SUB relative, no "..", TARGET absolute). */
int bind_spec_parse(char *s, struct bind_spec *ret);

int state_mkfs(const struct mount_config *m, const char *device, struct errmsg *e);
int state_mount(const struct mount_config *m, const char *device, struct errmsg *e);
int state_umount(const struct mount_config *m, struct errmsg *e);
