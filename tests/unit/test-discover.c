/* SPDX-License-Identifier: Apache-2.0 */
/* Finding the state disk (disk-mapper/discover.c) in a fake root: /dev with
 * block device nodes (mknod; not opened) and the symlinks udev makes on
 * Azure, GCP and qemu, and /sys/block/NAME/serial as virtio_blk shows it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../disk-mapper/discover.h"
#include "swtpm.h"

static char root[256];

static void path_of(char *buf, size_t size, const char *rel) {
        snprintf(buf, size, "%s%s", root, rel);
}

static void mkdirs(const char *rel) {
        char p[PATH_MAX];

        path_of(p, sizeof(p), rel);
        for (char *s = p + strlen(root) + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        mkdir(p, 0755);
                        *s = '/';
                }
        mkdir(p, 0755);
}

static void blockdev(const char *name, unsigned minor) {
        char p[PATH_MAX];

        path_of(p, sizeof(p), name);
        if (mknod(p, S_IFBLK | 0600, makedev(7, minor)) < 0) {
                if (errno == EPERM)
                        cr_skip_test("cannot make block device nodes (needs CAP_MKNOD)");
                cr_assert_fail("mknod %s: %s", p, strerror(errno));
        }
}

static void link_to(const char *rel, const char *target) {
        char p[PATH_MAX];

        path_of(p, sizeof(p), rel);
        cr_assert_eq(symlink(target, p), 0, "symlink %s: %s", p, strerror(errno));
}

static void serial(const char *disk, const char *value) {
        char dir[64], p[PATH_MAX];
        FILE *f;

        snprintf(dir, sizeof(dir), "/sys/block/%s", disk);
        mkdirs(dir);
        snprintf(dir, sizeof(dir), "/sys/block/%s/serial", disk);
        path_of(p, sizeof(p), dir);
        f = fopen(p, "w");
        cr_assert(f);
        fprintf(f, "%s\n", value);
        fclose(f);
}

static void setup(void) {
        cr_assert_eq(test_tmpdir(root, sizeof(root)), 0);
        mkdirs("/dev/disk/by-id");
        mkdirs("/sys/block");
        blockdev("/dev/sda", 1);
        blockdev("/dev/sdb", 2);
        blockdev("/dev/sdc", 3);
        blockdev("/dev/vda", 4);
        blockdev("/dev/vdb", 5);
}

static void teardown(void) {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        (void) !system(cmd);
}

static void expect(const char *pattern, const char *dev, const char *via) {
        char path[PATH_MAX], got_via[PATH_MAX], want[PATH_MAX];
        struct errmsg e = {};
        int r;

        r = disk_discover(root, pattern, path, got_via, &e);
        cr_assert_eq(r, 0, "disk_discover(%s) = %d: %s", pattern, r, errmsg_str(&e));
        path_of(want, sizeof(want), dev);
        cr_assert_str_eq(path, want);
        cr_assert_str_eq(got_via, via);
}

static void expect_error(const char *pattern, int err, const char *text) {
        char path[PATH_MAX] = "untouched", via[PATH_MAX];
        struct errmsg e = {};
        int r;

        r = disk_discover(root, pattern, path, via, &e);
        cr_assert_eq(r, -err, "disk_discover(%s) = %d (%s), want %d", pattern, r, errmsg_str(&e), -err);
        cr_assert(strstr(errmsg_str(&e), text), "message \"%s\" lacks \"%s\"", errmsg_str(&e), text);
        cr_assert_str_eq(path, "untouched");
}

TestSuite(discover, .init = setup, .fini = teardown);

Test(discover, azure_lun0) {
        mkdirs("/dev/disk/azure/scsi1");
        link_to("/dev/disk/azure/scsi1/lun0", "../../../sdc");
        link_to("/dev/disk/by-id/scsi-3600224800000000000000000000000aa", "../../sdc");
        expect("auto", "/dev/sdc", "/dev/disk/azure/scsi1/lun0");
}

Test(discover, azure_by_lun_and_scsi1_name_one_disk) {
        /* Both Azure rule sets installed: two names, one device. */
        mkdirs("/dev/disk/azure/scsi1");
        mkdirs("/dev/disk/azure/data/by-lun");
        link_to("/dev/disk/azure/scsi1/lun0", "../../../sdc");
        link_to("/dev/disk/azure/data/by-lun/0", "../../../../sdc");
        expect("auto", "/dev/sdc", "/dev/disk/azure/scsi1/lun0");
}

Test(discover, gcp_device_name) {
        link_to("/dev/disk/by-id/google-persistent-disk-0", "../../sda");
        link_to("/dev/disk/by-id/google-state-disk", "../../sdb");
        expect("auto", "/dev/sdb", "/dev/disk/by-id/google-state-disk");
        expect("google-state-*", "/dev/sdb", "/dev/disk/by-id/google-state-disk");
}

Test(discover, virtio_serial_through_udev_or_sysfs) {
        serial("vda", "");
        serial("vdb", "arca-state");
        /* No udev: found through sysfs. */
        expect("auto", "/dev/vdb", "/dev/vdb");
        expect("virtio-arca-*", "/dev/vdb", "/dev/vdb");
        /* With udev's name as well: still one disk. */
        link_to("/dev/disk/by-id/virtio-arca-state", "../../vdb");
        expect("auto", "/dev/vdb", "/dev/disk/by-id/virtio-arca-state");
}

Test(discover, two_candidates_are_refused) {
        link_to("/dev/disk/by-id/google-state-disk", "../../sdb");
        serial("vda", "arca-state");
        expect_error("auto", ENOTUNIQ, "refusing to guess");
        link_to("/dev/disk/by-id/scsi-0QEMU_disk_1", "../../sda");
        link_to("/dev/disk/by-id/scsi-0QEMU_disk_2", "../../sdc");
        expect_error("scsi-0QEMU_*", ENOTUNIQ, "2 block devices match");
}

Test(discover, nothing_found_names_what_was_searched) {
        serial("vda", "other-serial");
        link_to("/dev/disk/by-id/google-boot", "../../sda");
        expect_error("auto", ENOENT, "google-state-disk");
        expect_error("virtio-arca-state", ENOENT, "matches \"virtio-arca-state\"");
}

Test(discover, only_block_devices_count) {
        char p[PATH_MAX];
        int fd;

        /* A regular file and a dangling link under the right names. */
        path_of(p, sizeof(p), "/dev/file");
        fd = open(p, O_CREAT | O_WRONLY, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        link_to("/dev/disk/by-id/google-state-disk", "../../file");
        link_to("/dev/disk/by-id/virtio-arca-state", "../../vdz");
        expect_error("auto", ENOENT, "no state disk found");
}

Test(discover, invalid_patterns) {
        expect_error("", EINVAL, "invalid disk name pattern");
        expect_error("../sda", EINVAL, "invalid disk name pattern");
}
