/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Between lib/attest.c and the other attesters: an attester is one of
 * several kinds (the local one on this process's TPM, in attest.c; the
 * remote one asking the node's TPM user over a socket, in
 * attest-remote.c), each embedding struct attester and filling in its
 * operations. attester_issue() and friends dispatch on them. Not for other
 * modules. */

#include "attest.h"

struct attester_ops {
        const char *(*variant)(const struct attester *a);
        int (*ak_name)(const struct attester *a, uint8_t ret[ATTEST_AK_NAME_SIZE], struct errmsg *e);
        int (*issue)(struct attester *a, const char *purpose, const uint8_t nonce[ATTEST_NONCE_SIZE],
                     const uint8_t user_data[ATTEST_USER_DATA_SIZE], char **ret, size_t *ret_size,
                     struct errmsg *e);
        void (*free)(struct attester *a);
};

struct attester {
        const struct attester_ops *ops;
};
