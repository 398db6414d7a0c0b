/* SPDX-License-Identifier: Apache-2.0 */
#include "mount.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"

static bool safe_sub(const char *s) {
        if (!*s || s[0] == '/')
                return false;
        for (const char *p = s; *p;) {
                size_t n = strcspn(p, "/");
                if ((n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.') || n == 0)
                        return false;
                p += n;
                if (*p == '/')
                        p++;
        }
        return true;
}

int bind_spec_parse(char *s, struct bind_spec *ret) {
        char *colon = strchr(s, ':');

        if (!colon)
                return -EINVAL;
        *colon = 0;
        if (!safe_sub(s) || colon[1] != '/')
                return -EINVAL;
        *ret = (struct bind_spec){ .sub = s, .target = colon + 1 };
        return 0;
}

int state_mkfs(const struct mount_config *m, const char *device, struct errmsg *e) {
        int status;
        pid_t pid;

        pid = fork();
        if (pid < 0)
                return errmsg_set(e, errno, "fork: %s", strerror(errno));
        if (pid == 0) {
                execl(m->mkfs, m->mkfs, "-q", "-F", "-L", "arca-state", device, (char *) NULL);
                fprintf(stderr, "arca-disk-mapper: cannot run %s: %s\n", m->mkfs, strerror(errno));
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0)
                return errmsg_set(e, errno, "waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return errmsg_set(e, EIO, "%s %s failed (status 0x%x)", m->mkfs, device, (unsigned) status);
        return 0;
}

int state_mount(const struct mount_config *m, const char *device, struct errmsg *e) {
        char sub[4096];
        int r;

        r = mkdir_p(m->state_dir, 0755);
        if (r < 0)
                return errmsg_set(e, r, "Cannot create %s: %s", m->state_dir, strerror(-r));
        if (mount(device, m->state_dir, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
                return errmsg_set(e, errno, "Cannot mount %s at %s: %s", device, m->state_dir, strerror(errno));
        for (size_t i = 0; i < m->n_binds; i++) {
                snprintf(sub, sizeof(sub), "%s/%s", m->state_dir, m->binds[i].sub);
                if ((r = mkdir_p(sub, 0755)) < 0 || (r = mkdir_p(m->binds[i].target, 0755)) < 0)
                        return errmsg_set(e, r, "Cannot create %s or %s: %s", sub, m->binds[i].target, strerror(-r));
                if (mount(sub, m->binds[i].target, NULL, MS_BIND, NULL) < 0)
                        return errmsg_set(e, errno, "Cannot bind-mount %s on %s: %s", sub, m->binds[i].target,
                                          strerror(errno));
        }
        return 0;
}

int state_umount(const struct mount_config *m, struct errmsg *e) {
        for (size_t i = m->n_binds; i > 0; i--)
                if (umount(m->binds[i - 1].target) < 0 && errno != EINVAL && errno != ENOENT)
                        return errmsg_set(e, errno, "Cannot unmount %s: %s", m->binds[i - 1].target, strerror(errno));
        if (umount(m->state_dir) < 0 && errno != EINVAL && errno != ENOENT)
                return errmsg_set(e, errno, "Cannot unmount %s: %s", m->state_dir, strerror(errno));
        return 0;
}
