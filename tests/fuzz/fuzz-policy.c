/* SPDX-License-Identifier: Apache-2.0 */
/* policy_parse() on arbitrary bytes; whatever it accepts must serialize
 * with policy_to_json() and parse back to the same policy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *json = NULL;
        struct policy p, q;
        struct errmsg e = {};

        if (policy_parse((const char *) data, size, &p, &e) < 0) {
                /* Every refusal says why. */
                if (!e.text[0])
                        abort();
                return 0;
        }
        if (policy_to_json(&p, &json) < 0)
                abort();
        memset(&q, 0, sizeof(q));
        if (policy_parse(json, strlen(json), &q, NULL) < 0)
                abort();
        if (memcmp(&p, &q, sizeof(p)) != 0)
                abort();
        return 0;
}
