/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the parsers of the files arca reads back: the node state (node.json)
 * and the owner's secrets file. The first byte selects the parser. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "nodestate.h"
#include "owner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct errmsg e = {};
        const char *text;
        int r;

        if (size < 1)
                return 0;
        text = (const char *) data + 1;
        if (data[0] & 1) {
                struct owner_secrets s;
                r = owner_secrets_parse(text, size - 1, &s, &e);
        } else {
                struct node_state s;
                r = nodestate_parse(text, size - 1, &s, &e);
                if (r >= 0 && (s.n_registry > NODESTATE_MAX_ENDPOINTS || !valid_uuid(s.disk_uuid)))
                        abort();
        }
        /* Every refusal says why. */
        if (r < 0 && !e.text[0] && r != -ENOMEM)
                abort();
        return 0;
}
