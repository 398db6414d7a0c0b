/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the parser of WireGuard UAPI replies (lib/wireguard.c): it reads what
 * another process (wireguard-go) wrote. The first byte selects a "get"
 * parse (status) or a "set" parse (errno only). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "wireguard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct wg_status st = {};
        struct errmsg e = {};
        char *buf;
        int r;

        if (size < 1)
                return 0;
        /* An exact-size copy, so ASan sees any read past the end. */
        buf = malloc(size - 1 ? size - 1 : 1);
        if (!buf)
                return 0;
        memcpy(buf, data + 1, size - 1);
        r = wg_uapi_parse_reply(buf, size - 1, (data[0] & 1) ? &st : NULL, &e);
        if (r >= 0 && (data[0] & 1)) {
                if (st.n_peers > WG_MAX_PEERS)
                        abort();
                for (size_t i = 0; i < st.n_peers; i++)
                        if (st.peers[i].n_allowed_ips > WG_MAX_ALLOWED_IPS ||
                            strlen(st.peers[i].endpoint) >= ENDPOINT_MAX ||
                            st.peers[i].last_handshake_nsec > 999999999)
                                abort();
        }
        /* Every refusal says why. */
        if (r < 0 && !e.text[0] && r != -ENOMEM)
                abort();
        wg_status_done(&st);
        free(buf);
        return 0;
}
