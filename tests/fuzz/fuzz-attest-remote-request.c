/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the attestation channel's request parser (the bootstrapper reads
 * what the network-facing join service sends). A request that parses
 * builds back to the very same bytes; a refusal always says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest-remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct attest_remote_request req;
        struct errmsg e = {};
        uint8_t *again = NULL;
        size_t again_size;
        int r;

        r = attest_remote_request_parse(data, size, &req, &e);
        if (r < 0) {
                if (!e.text[0])
                        abort();
                return 0;
        }
        if (size > ATTEST_REMOTE_MAX_REQUEST || strlen(req.purpose) > ATTEST_REMOTE_PURPOSE_MAX)
                abort();
        if (attest_remote_request_build(&req, &again, &again_size) < 0)
                abort();
        if (again_size != size || memcmp(again, data, size) != 0)
                abort();
        free(again);
        return 0;
}
