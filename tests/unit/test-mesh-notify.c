/* SPDX-License-Identifier: Apache-2.0 */
/* The mesh doorbell's acceptance check (lib/mesh-notify.c), from the
 * sender's side: only a doorbell through arca0 from a control-plane peer,
 * or through loopback from this node's own address, is accepted; for each
 * condition a case where only it fails. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "mesh-notify.h"

#define MESH_IF 7
#define LO_IF 1

static struct in_addr ip(const char *s) {
        struct in_addr a;
        cr_assert_eq(inet_pton(AF_INET, s, &a), 1);
        return a;
}

static int check(const void *buf, size_t len, const char *source, unsigned ifindex, struct errmsg *e) {
        static struct in_addr cps[2];
        struct mesh_notify_policy p = {
                .mesh_ifindex = MESH_IF,
                .loopback_ifindex = LO_IF,
                .self = ip("10.123.0.5"),
                .control_planes = cps,
                .n_control_planes = 2,
        };
        struct mesh_notify_origin from = { .source = ip(source), .ifindex = ifindex };

        cps[0] = ip("10.123.0.2");
        cps[1] = ip("10.123.0.3");
        return mesh_notify_check(buf, len, &from, &p, e);
}

Test(mesh_notify, accepts_a_control_plane_peer_through_the_mesh) {
        struct errmsg e = {};
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.2", MESH_IF, &e), 0);
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.3", MESH_IF, &e), 0);
}

Test(mesh_notify, accepts_its_own_join_service_looped_back) {
        struct errmsg e = {};
        /* The kernel reports loopback or the interface of the address. */
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.5", LO_IF, &e), 0);
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.5", MESH_IF, &e), 0);
}

Test(mesh_notify, rejects_its_own_address_from_the_underlay) {
        struct errmsg e = {};
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.5", 3, &e), -EPERM);
}

Test(mesh_notify, rejects_a_worker_peer_through_the_mesh) {
        struct errmsg e = {};
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.9", MESH_IF, &e), -EPERM);
        cr_assert(strstr(e.text, "10.123.0.9") && strstr(e.text, "control-plane"), "%s", e.text);
}

Test(mesh_notify, rejects_a_control_plane_address_on_another_interface) {
        /* A forged source on the underlay: WireGuard vouches for nothing. */
        struct errmsg e = {};
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.2", 3, &e), -EPERM);
        cr_assert(strstr(e.text, "mesh interface"), "%s", e.text);
}

Test(mesh_notify, rejects_loopback_from_another_address) {
        struct errmsg e = {};
        cr_assert_eq(check(mesh_notify_message, MESH_NOTIFY_SIZE, "10.123.0.2", LO_IF, &e), -EPERM);
        cr_assert(strstr(e.text, "loopback"), "%s", e.text);
}

Test(mesh_notify, rejects_a_node_without_mesh_interface) {
        struct mesh_notify_policy p = { .loopback_ifindex = LO_IF };
        struct mesh_notify_origin from = { .source = ip("10.123.0.2"), .ifindex = 0 };
        struct errmsg e = {};
        cr_assert_eq(mesh_notify_check(mesh_notify_message, MESH_NOTIFY_SIZE, &from, &p, &e), -EPERM);
}

Test(mesh_notify, rejects_other_payloads) {
        uint8_t buf[MESH_NOTIFY_SIZE + 1];
        struct errmsg e = {};

        memcpy(buf, mesh_notify_message, MESH_NOTIFY_SIZE);
        cr_assert_eq(check(buf, MESH_NOTIFY_SIZE - 1, "10.123.0.2", MESH_IF, &e), -EBADMSG);
        cr_assert_eq(check(buf, MESH_NOTIFY_SIZE + 1, "10.123.0.2", MESH_IF, &e), -EBADMSG);
        buf[MESH_NOTIFY_SIZE - 1] ^= 1; /* another version */
        cr_assert_eq(check(buf, MESH_NOTIFY_SIZE, "10.123.0.2", MESH_IF, &e), -EBADMSG);
        cr_assert_eq(check(buf, 0, "10.123.0.2", MESH_IF, &e), -EBADMSG);
}
