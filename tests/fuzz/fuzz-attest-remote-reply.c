/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the attestation channel's reply parser (the join service reads what
 * comes back). A reply that parses builds back to the very same bytes, its
 * evidence lies inside the packet; a refusal always says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest-remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct attest_remote_reply rep;
        struct errmsg e = {};
        uint8_t *again = NULL;
        size_t again_size;
        int r;

        r = attest_remote_reply_parse(data, size, &rep, &e);
        if (r < 0) {
                if (!e.text[0])
                        abort();
                return 0;
        }
        if (rep.type == ATTEST_REMOTE_REPLY_EVIDENCE &&
            (rep.doc < data || rep.doc_size == 0 || rep.doc + rep.doc_size != data + size))
                abort();
        if (rep.type == ATTEST_REMOTE_REPLY_ERROR && (rep.error <= 0 || rep.error > 4095))
                abort();
        if (attest_remote_reply_build(&rep, &again, &again_size) < 0)
                abort();
        if (again_size != size || memcmp(again, data, size) != 0)
                abort();
        free(again);
        return 0;
}
