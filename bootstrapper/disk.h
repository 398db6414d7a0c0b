/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The bootstrapper's side of the state disk: arca-disk-mapper has formatted
 * and mounted it before the bootstrapper starts; after init or join the
 * node hands the derived disk key to `arca-disk-mapper rekey` (key on a
 * pipe, never on the command line). docs/DISK.md, Re-key. */

#include "errmsg.h"
#include "node.h"

/* Ask arca-disk-mapper (path `mapper`) for the UUID of `device`, make it
 * the node's disk UUID and install the rekey_disk hook. */
int disk_handoff_setup(struct node *n, const char *mapper, const char *device, struct errmsg *e);
