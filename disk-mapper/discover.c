/* SPDX-License-Identifier: Apache-2.0 */
#include "discover.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "macro.h"

#define MAX_FOUND 8

static const char *const auto_names[] = {
        "/dev/disk/azure/scsi1/lun0",
        "/dev/disk/azure/data/by-lun/0",
        "/dev/disk/by-id/google-state-disk",
        "/dev/disk/by-id/virtio-" DISCOVER_VIRTIO_SERIAL,
};

struct found {
        char path[PATH_MAX];
        char via[PATH_MAX];
        dev_t rdev;
};

struct search {
        struct found f[MAX_FOUND];
        size_t n;
        size_t total; /* distinct devices, also beyond MAX_FOUND */
};

/* `name` (a path below root) names a block device: remember it once. */
static void consider(struct search *s, const char *root, const char *name) {
        char link[PATH_MAX], real[PATH_MAX];
        struct stat st;

        if (snprintf(link, sizeof(link), "%s%s", root, name) >= (int) sizeof(link))
                return;
        if (!realpath(link, real) || stat(real, &st) < 0 || !S_ISBLK(st.st_mode))
                return;
        for (size_t i = 0; i < s->n; i++)
                if (s->f[i].rdev == st.st_rdev)
                        return;
        s->total++;
        if (s->n >= MAX_FOUND)
                return;
        snprintf(s->f[s->n].path, sizeof(s->f[s->n].path), "%s", real);
        snprintf(s->f[s->n].via, sizeof(s->f[s->n].via), "%s", name);
        s->f[s->n].rdev = st.st_rdev;
        s->n++;
}

/* Virtio disks by their serial, as udev's by-id name "virtio-<serial>"
 * (without udev there is no /dev/disk/by-id). */
static void virtio_serials(struct search *s, const char *root, const char *pattern) {
        _cleanup_free_ char *dir = NULL;
        struct dirent *d;
        DIR *dp;

        if (asprintf(&dir, "%s/sys/block", root) < 0)
                return;
        dp = opendir(dir);
        if (!dp)
                return;
        while ((d = readdir(dp))) {
                _cleanup_free_ char *path = NULL, *serial = NULL;
                char name[300], dev[300];
                size_t len;

                if (d->d_name[0] == '.' || asprintf(&path, "%s/%s/serial", dir, d->d_name) < 0)
                        continue;
                if (read_full_file(path, 256, &serial, &len) < 0)
                        continue;
                while (len > 0 && (serial[len - 1] == '\n' || serial[len - 1] == ' '))
                        serial[--len] = 0;
                if (len == 0 || strlen(serial) != len)
                        continue;
                snprintf(name, sizeof(name), "virtio-%s", serial);
                if (fnmatch(pattern, name, 0) != 0)
                        continue;
                snprintf(dev, sizeof(dev), "/dev/%s", d->d_name);
                consider(s, root, dev);
        }
        closedir(dp);
}

static void by_id(struct search *s, const char *root, const char *pattern) {
        _cleanup_free_ char *dir = NULL;
        struct dirent *d;
        DIR *dp;

        if (asprintf(&dir, "%s/dev/disk/by-id", root) < 0)
                return;
        dp = opendir(dir);
        if (!dp)
                return;
        while ((d = readdir(dp))) {
                char name[PATH_MAX];

                if (d->d_name[0] == '.' || fnmatch(pattern, d->d_name, 0) != 0)
                        continue;
                snprintf(name, sizeof(name), "/dev/disk/by-id/%s", d->d_name);
                consider(s, root, name);
        }
        closedir(dp);
}

int disk_discover(const char *root, const char *pattern, char ret_path[PATH_MAX], char ret_via[PATH_MAX],
                  struct errmsg *e) {
        struct search s = {};

        if (!pattern || !*pattern || strchr(pattern, '/'))
                return errmsg_set(e, EINVAL, "invalid disk name pattern \"%s\": a name in /dev/disk/by-id or \"%s\"",
                                  pattern ? pattern : "", DISCOVER_AUTO);
        if (strcmp(pattern, DISCOVER_AUTO) == 0) {
                for (size_t i = 0; i < ELEMENTSOF(auto_names); i++)
                        consider(&s, root, auto_names[i]);
                virtio_serials(&s, root, "virtio-" DISCOVER_VIRTIO_SERIAL);
        } else {
                by_id(&s, root, pattern);
                virtio_serials(&s, root, pattern);
        }
        if (s.total == 0) {
                if (strcmp(pattern, DISCOVER_AUTO) == 0)
                        return errmsg_set(e, ENOENT,
                                          "no state disk found: none of /dev/disk/azure/scsi1/lun0, "
                                          "/dev/disk/azure/data/by-lun/0, /dev/disk/by-id/google-state-disk, "
                                          "/dev/disk/by-id/virtio-%s or a virtio disk with serial \"%s\"",
                                          DISCOVER_VIRTIO_SERIAL, DISCOVER_VIRTIO_SERIAL);
                return errmsg_set(e, ENOENT, "no block device in /dev/disk/by-id (or virtio serial) matches \"%s\"",
                                  pattern);
        }
        if (s.total > 1)
                return errmsg_set(e, ENOTUNIQ,
                                  "%zu block devices match \"%s\" (%s -> %s, %s -> %s%s): refusing to guess which "
                                  "is the state disk",
                                  s.total, pattern, s.f[0].via, s.f[0].path, s.f[1].via, s.f[1].path,
                                  s.total > 2 ? ", ..." : "");
        snprintf(ret_path, PATH_MAX, "%s", s.f[0].path);
        snprintf(ret_via, PATH_MAX, "%s", s.f[0].via);
        return 0;
}
