/* SPDX-License-Identifier: Apache-2.0 */
#include "mesh-notify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const uint8_t mesh_notify_message[MESH_NOTIFY_SIZE] = "arca/mesh-bell/1";

int mesh_notify_check(const void *buf, size_t len, const struct mesh_notify_origin *from,
                      const struct mesh_notify_policy *p, struct errmsg *e) {
        char addr[INET_ADDRSTRLEN];

        if (!inet_ntop(AF_INET, &from->source, addr, sizeof(addr)))
                snprintf(addr, sizeof(addr), "?");
        if (len != MESH_NOTIFY_SIZE || memcmp(buf, mesh_notify_message, MESH_NOTIFY_SIZE) != 0)
                return errmsg_set(e, EBADMSG, "datagram from %s is no mesh doorbell (%zu bytes)", addr, len);
        /* Our own join service: from our own mesh address, looped back
         * (reported as loopback or as arca0). No peer can send from it:
         * WireGuard takes from a peer only its allowed IPs, and no peer
         * is given this node's address (wg_peer_from_mesh). */
        if (from->source.s_addr == p->self.s_addr && from->ifindex &&
            (from->ifindex == p->loopback_ifindex || from->ifindex == p->mesh_ifindex))
                return 0;
        if (p->loopback_ifindex && from->ifindex == p->loopback_ifindex)
                return errmsg_set(e, EPERM, "doorbell on loopback from %s, not from this node's mesh address", addr);
        /* Anything else must have come through the mesh: WireGuard hands a
         * packet to arca0 only from the peer whose allowed IP it names. */
        if (!p->mesh_ifindex || from->ifindex != p->mesh_ifindex)
                return errmsg_set(e, EPERM, "doorbell from %s did not arrive on the mesh interface", addr);
        for (size_t i = 0; i < p->n_control_planes; i++)
                if (p->control_planes[i].s_addr == from->source.s_addr)
                        return 0;
        return errmsg_set(e, EPERM, "doorbell from %s, which is no control-plane peer's mesh address", addr);
}

int mesh_notify_socket(void) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        return fd < 0 ? -errno : fd;
}

size_t mesh_notify_send(int fd, const char *const *addresses, size_t n) {
        size_t sent = 0;

        for (size_t i = 0; i < n; i++) {
                struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(MESH_NOTIFY_PORT) };

                if (inet_pton(AF_INET, addresses[i], &to.sin_addr) != 1)
                        continue;
                if (sendto(fd, mesh_notify_message, MESH_NOTIFY_SIZE, MSG_DONTWAIT, (struct sockaddr *) &to,
                           sizeof(to)) == MESH_NOTIFY_SIZE)
                        sent++;
        }
        return sent;
}
