/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Finding the state disk by a stable name instead of a kernel name (sdb,
 * vdb and nvme1n1 depend on probe order). Two ways:
 *   - DISCOVER_AUTO ("auto"): the names clouds give a data disk, all of
 *     them looked at:
 *       /dev/disk/azure/scsi1/lun0, /dev/disk/azure/data/by-lun/0  Azure, LUN 0
 *       /dev/disk/by-id/google-state-disk        GCP, device name "state-disk"
 *       /dev/disk/by-id/virtio-arca-state        qemu, virtio serial "arca-state"
 *     plus, for systems without udev (an initramfs), a virtio disk whose
 *     /sys/block/NAME/serial is "arca-state";
 *   - a pattern (fnmatch) over the names in /dev/disk/by-id, e.g.
 *     "google-state-disk", "scsi-3600*", "virtio-arca-*". Virtio disks also
 *     match as "virtio-" + their sysfs serial, as udev would name them.
 * Exactly one block device must match (names of the same device count
 * once): arca formats a blank disk it finds, so two candidates are refused,
 * never guessed between. */

#include <limits.h>
#include <stdbool.h>

#include "errmsg.h"

#define DISCOVER_AUTO "auto"
#define DISCOVER_VIRTIO_SERIAL "arca-state"

/* root: prefix of /dev and /sys ("" on a real system; a directory in
 * tests). pattern: DISCOVER_AUTO or a by-id pattern. On success ret_path is
 * the device node (symlinks resolved) and ret_via the name it was found by.
 * -ENOENT: nothing matches (yet: the caller may wait for the device);
 * -ENOTUNIQ: more than one device matches. */
int disk_discover(const char *root, const char *pattern, char ret_path[PATH_MAX], char ret_via[PATH_MAX],
                  struct errmsg *e);
