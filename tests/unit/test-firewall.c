/* SPDX-License-Identifier: Apache-2.0 */
/* The firewall's script rendering and input checks (no nftables needed;
 * tests/integration/test-firewall.sh runs the rules for real). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "errmsg.h"
#include "firewall.h"
#include "macro.h"

static int render(const char *const *nodes, size_t n, char **ret, struct errmsg *e) {
        struct firewall_config c;

        firewall_config_default(&c);
        c.nodes = nodes;
        c.n_nodes = n;
        return firewall_render(&c, ret, e);
}

Test(firewall, default_config_has_the_arca_ports) {
        struct firewall_config c;

        firewall_config_default(&c);
        cr_assert_str_eq(c.mesh_interface, "arca0");
        cr_assert_eq(c.wireguard_port, 51820);
        cr_assert_eq(c.n_tcp_ports, 3);
        cr_assert_eq(c.tcp_ports[0], 9000);
        cr_assert_eq(c.tcp_ports[1], 30090);
        cr_assert_eq(c.tcp_ports[2], 9999);
        cr_assert_eq(c.n_nodes, 0);
}

Test(firewall, render_replaces_the_table_in_one_script) {
        const char *nodes[] = { "10.0.0.2", "fd00::1" };
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        cr_assert_eq(render(nodes, 2, &s, &e), 0, "%s", e.text);
        cr_assert(strncmp(s, "add table inet arca\ndelete table inet arca\ntable inet arca {\n", 58) == 0, "%s", s);
        cr_assert(strstr(s, "elements = { 10.0.0.2 }"), "%s", s);
        cr_assert(strstr(s, "elements = { fd00::1 }"), "%s", s);
        cr_assert(strstr(s, "iifname \"arca0\" accept"));
        cr_assert(strstr(s, "oifname \"arca0\" accept"));
        cr_assert(strstr(s, "udp dport 51820 accept"));
        cr_assert(strstr(s, "tcp dport { 9000, 9999, 30090 } accept"));
        cr_assert(strstr(s, "counter drop"));
        cr_assert(strstr(s, "type filter hook input priority filter; policy accept;"));
        cr_assert(strstr(s, "type filter hook output priority filter; policy accept;"));
        cr_assert(strstr(s, "type filter hook forward priority filter; policy accept;"));
        cr_assert(strstr(s, "meta l4proto tcp counter reject with tcp reset"));
}

Test(firewall, render_sorts_merges_and_maps_v4_in_v6) {
        const char *a[] = { "10.0.0.9", "::ffff:10.0.0.1", "fd00::2", "10.0.0.1", "fd00:0::2", "10.0.0.9" };
        const char *b[] = { "fd00::2", "10.0.0.1", "10.0.0.9" };
        _cleanup_free_ char *sa = NULL, *sb = NULL;
        struct errmsg e = {};

        cr_assert_eq(render(a, ELEMENTSOF(a), &sa, &e), 0, "%s", e.text);
        cr_assert_eq(render(b, ELEMENTSOF(b), &sb, &e), 0, "%s", e.text);
        cr_assert_str_eq(sa, sb);
        cr_assert(strstr(sa, "elements = { 10.0.0.1, 10.0.0.9 }"), "%s", sa);
        cr_assert(strstr(sa, "elements = { fd00::2 }"), "%s", sa);
}

Test(firewall, empty_node_set_has_no_elements) {
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        cr_assert_eq(render(NULL, 0, &s, &e), 0, "%s", e.text);
        cr_assert_null(strstr(s, "elements"));
}

static void refused(const char *addr, const char *why) {
        const char *nodes[] = { "10.0.0.1", addr };
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        cr_assert_eq(render(nodes, 2, &s, &e), -EINVAL, "%s accepted", addr);
        cr_assert_null(s);
        cr_assert(strstr(e.text, "node address 1 '"), "%s", e.text);
        cr_assert(strstr(e.text, why), "%s: %s", addr, e.text);
        memset(&e, 0, sizeof(e));
        cr_assert_eq(firewall_render_nodes(nodes, 2, &s, &e), -EINVAL);
        cr_assert(strstr(e.text, why), "%s", e.text);
}

Test(firewall, refuses_what_is_not_an_address) {
        refused("10.0.0.1; flush ruleset", "'10.0.0.1; flush ruleset' is not an IPv4 or IPv6 address");
        refused("", "is not an IPv4 or IPv6 address");
        refused("10.0.0.0/24", "'10.0.0.0/24' is not an IPv4 or IPv6 address");
        refused("fe80::1%eth0", "is not an IPv4 or IPv6 address");
        refused("node-1", "'node-1' is not");
        refused("10.0.0.1:51820", "is not an IPv4 or IPv6 address");
        refused("010.0.0.1", "is not an IPv4 or IPv6 address");
}

Test(firewall, refuses_addresses_no_node_has) {
        refused("0.0.0.0", "unspecified");
        refused("::", "unspecified");
        refused("127.0.0.1", "loopback");
        refused("::1", "loopback");
        refused("::ffff:127.0.0.1", "loopback");
        refused("224.0.0.1", "multicast");
        refused("ff02::1", "multicast");
        refused("255.255.255.255", "broadcast");
}

Test(firewall, error_shows_control_characters_safely) {
        const char *nodes[] = { "10.0.0.1\n\x1b[2Jx" };
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        cr_assert_eq(render(nodes, 1, &s, &e), -EINVAL);
        cr_assert(strstr(e.text, "'10.0.0.1??[2Jx'"), "%s", e.text);
}

Test(firewall, missing_entry_is_refused) {
        const char *nodes[] = { "10.0.0.1", NULL };
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        cr_assert_eq(render(nodes, 2, &s, &e), -EINVAL);
        cr_assert(strstr(e.text, "node address 1 is missing"), "%s", e.text);
}

Test(firewall, too_many_nodes_are_refused) {
        static const char *nodes[FIREWALL_NODES_MAX + 1];
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        for (size_t i = 0; i < ELEMENTSOF(nodes); i++)
                nodes[i] = "10.0.0.1";
        cr_assert_eq(render(nodes, FIREWALL_NODES_MAX, &s, &e), 0, "%s", e.text);
        s = mfree(s);
        cr_assert_eq(render(nodes, FIREWALL_NODES_MAX + 1, &s, &e), -EINVAL);
        cr_assert(strstr(e.text, "at most 4096"), "%s", e.text);
}

Test(firewall, refuses_bad_interface_names_and_ports) {
        static const char *const bad_if[] = { "", "arca0\" accept", "a b", "waytoolonginterface", "a;b", "x/y" };
        _cleanup_free_ char *s = NULL;
        struct firewall_config c;
        struct errmsg e = {};

        for (size_t i = 0; i < ELEMENTSOF(bad_if); i++) {
                firewall_config_default(&c);
                c.mesh_interface = bad_if[i];
                memset(&e, 0, sizeof(e));
                cr_assert_eq(firewall_render(&c, &s, &e), -EINVAL, "'%s' accepted", bad_if[i]);
                cr_assert(strstr(e.text, "mesh interface"), "%s", e.text);
        }
        firewall_config_default(&c);
        c.mesh_interface = NULL;
        cr_assert_eq(firewall_render(&c, &s, &e), -EINVAL);

        firewall_config_default(&c);
        c.wireguard_port = 0;
        memset(&e, 0, sizeof(e));
        cr_assert_eq(firewall_render(&c, &s, &e), -EINVAL);
        cr_assert(strstr(e.text, "WireGuard port 0"), "%s", e.text);

        firewall_config_default(&c);
        c.tcp_ports[2] = 9000;
        memset(&e, 0, sizeof(e));
        cr_assert_eq(firewall_render(&c, &s, &e), -EINVAL);
        cr_assert(strstr(e.text, "TCP port 9000 listed twice"), "%s", e.text);

        firewall_config_default(&c);
        c.n_tcp_ports = FIREWALL_TCP_PORTS_MAX + 1;
        memset(&e, 0, sizeof(e));
        cr_assert_eq(firewall_render(&c, &s, &e), -EINVAL);

        firewall_config_default(&c);
        c.n_tcp_ports = 0;
        cr_assert_eq(firewall_render(&c, &s, &e), 0);
        cr_assert_null(strstr(s, "tcp dport"));
}

Test(firewall, render_nodes_flushes_and_adds_in_one_script) {
        const char *nodes[] = { "fd00::1", "10.0.0.2" };
        _cleanup_free_ char *s = NULL;
        struct errmsg e = {};

        cr_assert_eq(firewall_render_nodes(nodes, 2, &s, &e), 0, "%s", e.text);
        cr_assert_str_eq(s, "flush set inet arca nodes4\n"
                            "flush set inet arca nodes6\n"
                            "add element inet arca nodes4 { 10.0.0.2 }\n"
                            "add element inet arca nodes6 { fd00::1 }\n");
        s = mfree(s);
        cr_assert_eq(firewall_render_nodes(NULL, 0, &s, &e), 0);
        cr_assert_str_eq(s, "flush set inet arca nodes4\nflush set inet arca nodes6\n");
}
