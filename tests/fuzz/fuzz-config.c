/* SPDX-License-Identifier: Apache-2.0 */
/* config_parse() on arbitrary bytes, without a base path (parsing stays
 * pure). An accepted configuration has what the parser promises. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct arca_config c = {};
        struct errmsg e = {};

        if (config_parse((const char *) data, size, NULL, &c, &e) < 0) {
                /* Every refusal says why. */
                if (!e.text[0])
                        abort();
                return 0;
        }
        if (!c.variant || !c.policy || (c.policy_signature && !c.policy_key))
                abort();
        config_done(&c);
        return 0;
}
