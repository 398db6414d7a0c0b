/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read a whole file of at most max_size bytes (-EFBIG beyond). The buffer is
 * NUL-terminated (not counted in *ret_size). */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* Write all n bytes to fd, resuming after EINTR and short writes (pipes,
 * sockets). 0, or a negative errno (-EIO when write returns 0). */
int write_all(int fd, const void *p, size_t n);

/* Write through a temporary file in the same directory and rename, so that
 * readers never see a half-written file. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir -p: the missing directories of path with `mode`; -ENOTDIR when
 * something else stands at path. */
int mkdir_p(const char *path, mode_t mode);

/* Resolve `p` relative to the directory of `base` unless p is absolute. */
int path_relative_to(const char *base, const char *p, char **ret);
