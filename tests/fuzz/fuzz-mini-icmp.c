/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the parser of what `arca mini`'s mesh probe receives on a raw ICMP
 * socket bound to a node's arca0 (anything on the mesh can send it). The
 * parser lives in the CLI, which is not part of libarca, so its file is
 * compiled in here. Input: 2 bytes identifier, 1 byte peer count (0-8),
 * then the packet; peers are 10.123.0.2 .. 10.123.0.9. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/mini-icmp.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct in_addr peers[8] = {};
        size_t n_peers, seq = SIZE_MAX;
        uint16_t id;
        int r;

        if (size < 3)
                return 0;
        id = (uint16_t) (data[0] << 8 | data[1]);
        n_peers = data[2] % 9;
        for (size_t i = 0; i < n_peers; i++)
                peers[i].s_addr = htonl(0x0a7b0002u + (uint32_t) i);
        r = mini_icmp_parse_reply(data + 3, size - 3, id, peers, n_peers, &seq);
        /* Accepted: an echo reply from the peer its sequence number names. */
        if (r >= 0 && (seq >= n_peers || size - 3 < 28 || memcmp(data + 3 + 12, &peers[seq], 4) != 0))
                abort();
        if (r < 0 && seq != SIZE_MAX)
                abort();
        return 0;
}
