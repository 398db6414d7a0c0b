/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Subcommands of arca-measure; each gets argv starting at its own name and
 * returns the exit status: 0 success, 1 failure, 2 usage error. */

#include <stddef.h>
#include <stdint.h>

#include "pe.h"

int verb_pe_hash(int argc, char **argv);
int verb_uki(int argc, char **argv);
int verb_predict(int argc, char **argv);
int verb_log(int argc, char **argv);
int verb_sign(int argc, char **argv);
int verb_verify(int argc, char **argv);

/* Largest file arca-measure reads as a PE image (a UKI with a big initrd). */
#define MEASURE_MAX_IMAGE_SIZE ((size_t) 2 * 1024 * 1024 * 1024)

/* Read `path` and parse it as a PE image; logs why on failure. *ret_pe
 * borrows *ret_data. */
int measure_load_pe(const char *path, uint8_t **ret_data, size_t *ret_size, struct pe_image **ret_pe);
