/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the mesh doorbell check (anyone can send a datagram to the port).
 * Input: 1 byte interface (0-3: none, loopback, arca0, other), 4 bytes
 * source address, then the payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh-notify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const struct in_addr cps[2] = { { .s_addr = 0x02007b0a }, { .s_addr = 0x03007b0a } };
        struct mesh_notify_policy p = {
                .mesh_ifindex = 2,
                .loopback_ifindex = 1,
                .self = { .s_addr = 0x05007b0a },
                .control_planes = cps,
                .n_control_planes = 2,
        };
        struct mesh_notify_origin from = {};
        struct errmsg e = {};
        int r;

        if (size < 5)
                return 0;
        from.ifindex = data[0] % 4;
        memcpy(&from.source, data + 1, 4);
        r = mesh_notify_check(data + 5, size - 5, &from, &p, &e);
        /* Accepted only: the doorbell, from arca0 and a control plane, or looped back from ourselves. */
        if (r >= 0 && (size - 5 != MESH_NOTIFY_SIZE || memcmp(data + 5, mesh_notify_message, MESH_NOTIFY_SIZE) != 0 ||
                       !((from.ifindex == 2 && (from.source.s_addr == cps[0].s_addr || from.source.s_addr == cps[1].s_addr)) ||
                         ((from.ifindex == 1 || from.ifindex == 2) && from.source.s_addr == p.self.s_addr))))
                abort();
        if (r < 0 && !e.text[0])
                abort();
        return 0;
}
