/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini: ICMP echo for the mesh probe. The parser of what a raw socket
 * receives is pure (bytes in, verdict out) and fuzzed by
 * tests/fuzz/fuzz-mini-icmp.c: anything on the node's arca0 can send it. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "mini.h"

static uint16_t checksum(const void *p, size_t n) {
        const uint8_t *b = p;
        uint32_t sum = 0;

        for (size_t i = 0; i + 1 < n; i += 2)
                sum += (uint32_t) (b[i] << 8 | b[i + 1]);
        if (n & 1)
                sum += (uint32_t) b[n - 1] << 8;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return htons((uint16_t) ~sum);
}

void mini_icmp_echo_request(uint16_t id, uint16_t seq, struct icmphdr *ret) {
        *ret = (struct icmphdr){ .type = ICMP_ECHO };
        ret->un.echo.id = htons(id);
        ret->un.echo.sequence = htons(seq);
        ret->checksum = checksum(ret, sizeof(*ret));
}

int mini_icmp_parse_reply(const void *buf, size_t len, uint16_t id, const struct in_addr *peers, size_t n_peers,
                          size_t *ret_seq) {
        const uint8_t *b = buf;
        struct icmphdr h;
        size_t ihl, seq;

        /* IPv4 header: version 4, a length within the packet, protocol ICMP. */
        if (len < 20 || (b[0] >> 4) != 4)
                return -EBADMSG;
        ihl = (size_t) (b[0] & 0x0f) * 4;
        if (ihl < 20 || len < ihl + sizeof(h) || b[9] != IPPROTO_ICMP)
                return -EBADMSG;
        memcpy(&h, b + ihl, sizeof(h));
        if (h.type != ICMP_ECHOREPLY || h.code != 0 || ntohs(h.un.echo.id) != id)
                return -ENOMSG;
        seq = ntohs(h.un.echo.sequence);
        /* Only from the very peer that echo was sent to. */
        if (seq >= n_peers || memcmp(b + 12, &peers[seq], 4) != 0)
                return -ENOMSG;
        *ret_seq = seq;
        return 0;
}
