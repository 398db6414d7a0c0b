/* SPDX-License-Identifier: Apache-2.0 */
/* lib/wireguard: the UAPI reply parser (wireguard-go's output), the "set"
 * requests it is sent, and the peer diff behind incremental updates. The
 * device itself is tested against real wireguard-go in
 * tests/integration/test-mesh.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "messages.h"
#include "wireguard.h"

#define HEX_A "0101010101010101010101010101010101010101010101010101010101010101"
#define HEX_B "0202020202020202020202020202020202020202020202020202020202020202"
#define HEX_PRIV "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"

/* What wireguard-go v0.0.20220316 answers to get=1 (format checked against
 * the real daemon in the integration test). */
static const char get_reply[] = "private_key=" HEX_PRIV "\n"
                                "listen_port=51820\n"
                                "public_key=" HEX_A "\n"
                                "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
                                "protocol_version=1\n"
                                "endpoint=10.250.0.11:51820\n"
                                "last_handshake_time_sec=1700000000\n"
                                "last_handshake_time_nsec=5\n"
                                "tx_bytes=92\n"
                                "rx_bytes=180\n"
                                "persistent_keepalive_interval=25\n"
                                "allowed_ip=10.123.0.2/32\n"
                                "public_key=" HEX_B "\n"
                                "protocol_version=1\n"
                                "last_handshake_time_sec=0\n"
                                "last_handshake_time_nsec=0\n"
                                "tx_bytes=0\n"
                                "rx_bytes=0\n"
                                "persistent_keepalive_interval=0\n"
                                "allowed_ip=10.123.0.3/32\n"
                                "allowed_ip=10.124.0.0/16\n"
                                "errno=0\n\n";

static int parse(const char *text, struct wg_status *st, struct errmsg *e) {
        char *buf = strdup(text);
        int r;

        cr_assert_not_null(buf);
        r = wg_uapi_parse_reply(buf, strlen(buf), st, e);
        free(buf);
        return r;
}

static void key(uint8_t k[WG_KEY_SIZE], uint8_t v) {
        memset(k, v, WG_KEY_SIZE);
}

Test(wireguard, uapi_get_reply_is_parsed) {
        struct wg_status st = {};
        struct errmsg e = {};
        uint8_t a[WG_KEY_SIZE], b[WG_KEY_SIZE];
        const struct wg_peer_status *p;

        cr_assert_eq(parse(get_reply, &st, &e), 0, "%s", e.text);
        cr_assert(st.has_private_key);
        cr_assert_eq(st.listen_port, 51820);
        cr_assert_eq(st.n_peers, 2);
        key(a, 1);
        key(b, 2);
        p = wg_status_find(&st, a);
        cr_assert_not_null(p);
        cr_assert_str_eq(p->endpoint, "10.250.0.11:51820");
        cr_assert_eq(p->last_handshake_sec, 1700000000);
        cr_assert_eq(p->last_handshake_nsec, 5);
        cr_assert_eq(p->tx_bytes, 92);
        cr_assert_eq(p->rx_bytes, 180);
        cr_assert_eq(p->keepalive, 25);
        cr_assert_eq(p->n_allowed_ips, 1);
        cr_assert_str_eq(p->allowed_ips[0], "10.123.0.2/32");
        p = wg_status_find(&st, b);
        cr_assert_not_null(p);
        cr_assert_eq(p->n_allowed_ips, 2);
        cr_assert_str_eq(p->endpoint, "");
        wg_status_done(&st);
}

Test(wireguard, uapi_parser_wipes_the_private_key_in_the_buffer) {
        char *buf = strdup(get_reply);
        struct wg_status st = {};

        cr_assert_eq(wg_uapi_parse_reply(buf, strlen(get_reply), &st, NULL), 0);
        cr_assert_null(strstr(buf, HEX_PRIV), "the private key is still in the reply buffer");
        wg_status_done(&st);
        free(buf);
}

Test(wireguard, uapi_set_reply_errno) {
        struct errmsg e = {};

        cr_assert_eq(parse("errno=0\n\n", NULL, &e), 0);
        cr_assert_eq(parse("errno=-22\n\n", NULL, &e), -22);
        cr_assert(strstr(e.text, "refused"), "%s", e.text);
}

/* Each malformed reply is refused with a reason naming what was wrong. */
Test(wireguard, uapi_bad_replies_are_refused_with_a_reason) {
        static const struct {
                const char *text, *reason;
        } cases[] = {
                { "errno=0\n", "no blank line" },
                { "listen_port=1\n\n", "no errno" },
                { "errno=0\n\nmore", "after the blank line" },
                { "errno=0\nlisten_port=1\n\n", "data after errno" },
                { "listen_port=65536\nerrno=0\n\n", "line 1: bad listen_port" },
                { "listen_port\nerrno=0\n\n", "line 1: expected key=value" },
                { "Listen_port=1\nerrno=0\n\n", "line 1: bad key" },
                { "public_key=" HEX_A "\nendpoint=1.2.3.4:5 6\nerrno=0\n\n", "line 2: bad endpoint" },
                { "public_key=0101\nerrno=0\n\n", "line 1: bad public_key" },
                { "public_key=" HEX_A "\nrx_bytes=18446744073709551616\nerrno=0\n\n", "line 2: bad rx_bytes" },
                { "public_key=" HEX_A "\nlast_handshake_time_nsec=1000000000\nerrno=0\n\n", "bad handshake time" },
                { "public_key=" HEX_A "\nrx_bytes=-1\nerrno=0\n\n", "bad rx_bytes" },
                { "errno=x\n\n", "bad errno" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct wg_status st = {};
                struct errmsg e = {};
                int r = parse(cases[i].text, &st, &e);
                cr_assert_eq(r, -EBADMSG, "case %zu: %d", i, r);
                cr_assert(strstr(e.text, cases[i].reason), "case %zu: \"%s\" lacks \"%s\"", i, e.text,
                          cases[i].reason);
        }
}

Test(wireguard, uapi_peer_and_allowed_ip_counts_are_bounded) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        struct errmsg e = {};

        fprintf(f, "public_key=" HEX_A "\n");
        for (int i = 0; i <= WG_MAX_ALLOWED_IPS; i++)
                fprintf(f, "allowed_ip=10.0.%d.0/24\n", i);
        fprintf(f, "errno=0\n\n");
        fclose(f);
        cr_assert_eq(parse(text, &(struct wg_status){}, &e), -EBADMSG);
        cr_assert(strstr(e.text, "allowed IPs"), "%s", e.text);
        free(text);

        f = open_memstream(&text, &size);
        for (int i = 0; i <= WG_MAX_PEERS; i++)
                fprintf(f, "public_key=%064x\n", i);
        fprintf(f, "errno=0\n\n");
        fclose(f);
        e = (struct errmsg){};
        cr_assert_eq(parse(text, &(struct wg_status){}, &e), -EBADMSG);
        cr_assert(strstr(e.text, "peers"), "%s", e.text);
        free(text);
}

static struct wg_peer peer(uint8_t k, const char *endpoint, const char *ip) {
        struct wg_peer p = { .keepalive = 25 };
        key(p.public_key, k);
        snprintf(p.endpoint, sizeof(p.endpoint), "%s", endpoint);
        snprintf(p.allowed_ip, sizeof(p.allowed_ip), "%s", ip);
        return p;
}

Test(wireguard, set_request_names_only_the_given_peers) {
        struct wg_peer up[1] = { peer(1, "10.0.0.1:51820", "10.123.0.2/32") };
        uint8_t rm[1][WG_KEY_SIZE];
        char *req = NULL;

        key(rm[0], 2);
        cr_assert_eq(wg_uapi_format_peers(up, 1, (const uint8_t(*)[WG_KEY_SIZE]) rm, 1, &req), 0);
        cr_assert_str_eq(req, "set=1\n"
                              "public_key=" HEX_B "\nremove=true\n"
                              "public_key=" HEX_A "\nendpoint=10.0.0.1:51820\n"
                              "persistent_keepalive_interval=25\nreplace_allowed_ips=true\n"
                              "allowed_ip=10.123.0.2/32\n\n");
        /* Never replace_peers: that would drop every unchanged peer's session. */
        cr_assert_null(strstr(req, "replace_peers"));
        free(req);
}

Test(wireguard, diff_leaves_unchanged_peers_alone) {
        struct wg_peer cur[3] = { peer(1, "10.0.0.1:51820", "10.123.0.2/32"),
                                  peer(2, "10.0.0.2:51820", "10.123.0.3/32"),
                                  peer(3, "10.0.0.3:51820", "10.123.0.4/32") };
        /* 1 unchanged, 2 moved, 3 gone, 4 new */
        struct wg_peer want[3] = { peer(1, "10.0.0.1:51820", "10.123.0.2/32"),
                                   peer(2, "10.0.0.9:51820", "10.123.0.3/32"),
                                   peer(4, "10.0.0.4:51820", "10.123.0.5/32") };
        size_t *up = NULL, *rm = NULL, n_up = 0, n_rm = 0;

        cr_assert_eq(wg_peers_diff(cur, 3, want, 3, &up, &n_up, &rm, &n_rm), 0);
        cr_assert_eq(n_up, 2);
        cr_assert_eq(up[0], 1);
        cr_assert_eq(up[1], 2);
        cr_assert_eq(n_rm, 1);
        cr_assert_eq(rm[0], 2);
        free(up);
        free(rm);

        /* The same list again: nothing to do. */
        cr_assert_eq(wg_peers_diff(want, 3, want, 3, &up, &n_up, &rm, &n_rm), 0);
        cr_assert_eq(n_up, 0);
        cr_assert_eq(n_rm, 0);
        free(up);
        free(rm);

        /* Everything gone (eviction): every peer removed, none added. */
        cr_assert_eq(wg_peers_diff(want, 3, NULL, 0, &up, &n_up, &rm, &n_rm), 0);
        cr_assert_eq(n_up, 0);
        cr_assert_eq(n_rm, 3);
        free(up);
        free(rm);
}

Test(wireguard, diff_refuses_a_key_or_an_address_twice) {
        struct wg_peer twice_key[2] = { peer(1, "10.0.0.1:51820", "10.123.0.2/32"),
                                        peer(1, "10.0.0.2:51820", "10.123.0.3/32") };
        struct wg_peer twice_ip[2] = { peer(1, "10.0.0.1:51820", "10.123.0.2/32"),
                                       peer(2, "10.0.0.2:51820", "10.123.0.2/32") };
        size_t *up = NULL, *rm = NULL, n_up = 0, n_rm = 0;

        cr_assert_eq(wg_peers_diff(NULL, 0, twice_key, 2, &up, &n_up, &rm, &n_rm), -EINVAL);
        cr_assert_eq(wg_peers_diff(NULL, 0, twice_ip, 2, &up, &n_up, &rm, &n_rm), -EINVAL);
}

Test(wireguard, backend_names) {
        enum wg_backend b;

        cr_assert_eq(wg_backend_from_string("auto", &b), 0);
        cr_assert_eq(b, WG_BACKEND_AUTO);
        cr_assert_eq(wg_backend_from_string("wireguard-go", &b), 0);
        cr_assert_eq(b, WG_BACKEND_USERSPACE);
        cr_assert_eq(wg_backend_from_string("kernel", &b), 0);
        cr_assert_eq(b, WG_BACKEND_KERNEL);
        cr_assert_eq(wg_backend_from_string("bogus", &b), -EINVAL);
}

Test(wireguard, device_refuses_a_bad_interface_name) {
        struct wg_options o = { .ifname = "arca0;rm -rf", .backend = WG_BACKEND_USERSPACE };
        struct wg_device *d = NULL;
        struct errmsg e = {};

        cr_assert_eq(wg_device_new(&o, &d, &e), -EINVAL);
        cr_assert(strstr(e.text, "interface name"), "%s", e.text);
        o.ifname = "a-name-longer-than-15";
        cr_assert_eq(wg_device_new(&o, &d, &e), -EINVAL);
        cr_assert_null(d);
}

/* --- peers from the join service: each check fails alone --------------------- */

static struct mesh_peer good_peer(void) {
        struct mesh_peer p = {};
        snprintf(p.name, sizeof(p.name), "w1");
        snprintf(p.role, sizeof(p.role), "worker");
        /* base64 of 32 bytes 0x01 */
        snprintf(p.wg_public_key, sizeof(p.wg_public_key), "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
        snprintf(p.endpoint, sizeof(p.endpoint), "192.0.2.21:51820");
        snprintf(p.mesh_address, sizeof(p.mesh_address), "10.123.0.4");
        return p;
}

Test(wireguard, mesh_peer_becomes_a_device_peer) {
        struct mesh_peer p = good_peer();
        struct wg_peer w;
        uint8_t want[WG_KEY_SIZE];
        struct errmsg e = {};

        cr_assert_eq(wg_peer_from_mesh(&p, "10.123.0.0/16", "10.123.0.2", &w, &e), 0, "%s", e.text);
        key(want, 1);
        cr_assert_eq(memcmp(w.public_key, want, WG_KEY_SIZE), 0);
        cr_assert_str_eq(w.endpoint, "192.0.2.21:51820");
        cr_assert_str_eq(w.allowed_ip, "10.123.0.4/32");
        cr_assert_eq(w.keepalive, WG_KEEPALIVE_DEFAULT);
        snprintf(p.endpoint, sizeof(p.endpoint), "[2001:db8::21]:51820");
        cr_assert_eq(wg_peer_from_mesh(&p, "10.123.0.0/16", "10.123.0.2", &w, &e), 0, "%s", e.text);
}

Test(wireguard, mesh_peer_refusals_name_the_field) {
        static const struct {
                const char *field, *value, *reason;
        } cases[] = {
                { "key", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==", "invalid WireGuard key" }, /* 31 bytes */
                { "key", "not base64 at all", "invalid WireGuard key" },
                { "endpoint", "w2.example:51820", "not an IP address and port" },      /* a name: never resolved */
                { "endpoint", "192.0.2.21", "not an IP address and port" },            /* no port */
                { "endpoint", "192.0.2.21:0", "not an IP address and port" },
                { "address", "2001:db8::4", "not an IPv4 address" },
                { "address", "10.124.0.4", "not a host of 10.123.0.0/16" },            /* outside the mesh */
                { "address", "10.123.0.0", "not a host of" },                          /* network address */
                { "address", "10.123.255.255", "not a host of" },                      /* broadcast */
                { "address", "10.123.0.2", "holds this node's mesh address" },         /* hijack our address */
                { "address", "010.123.0.4", "not an IPv4 address" },
                { "name", "../etc", "invalid name" },
                /* A peer's text reaches the log only as printable ASCII. */
                { "endpoint", "\x1b[2J1.2.3.4\n:1", "endpoint \"?[2J1.2.3.4?:1\" is not" },
                { "address", "10.\xc3\xa9.0.4", "mesh address \"10.??.0.4\" is not" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct mesh_peer p = good_peer();
                struct wg_peer w;
                struct errmsg e = {};
                char *f = streq(cases[i].field, "key")        ? p.wg_public_key
                          : streq(cases[i].field, "endpoint") ? p.endpoint
                          : streq(cases[i].field, "address")  ? p.mesh_address
                                                              : p.name;
                size_t size = streq(cases[i].field, "key")        ? sizeof(p.wg_public_key)
                              : streq(cases[i].field, "endpoint") ? sizeof(p.endpoint)
                              : streq(cases[i].field, "address")  ? sizeof(p.mesh_address)
                                                                  : sizeof(p.name);
                snprintf(f, size, "%s", cases[i].value);
                cr_assert_eq(wg_peer_from_mesh(&p, "10.123.0.0/16", "10.123.0.2", &w, &e), -EBADMSG, "case %zu", i);
                cr_assert(strstr(e.text, cases[i].reason), "case %zu: \"%s\" lacks \"%s\"", i, e.text,
                          cases[i].reason);
        }
}

Test(wireguard, mesh_cidr_parsing) {
        uint32_t net, mask;
        unsigned prefix;

        cr_assert_eq(wg_parse_cidr4("10.123.0.0/16", &net, &mask, &prefix), 0);
        cr_assert_eq(net, 0x0a7b0000u);
        cr_assert_eq(mask, 0xffff0000u);
        cr_assert_eq(prefix, 16);
        cr_assert_eq(wg_parse_cidr4("10.123.0.0/31", &net, &mask, &prefix), -EINVAL);
        cr_assert_eq(wg_parse_cidr4("10.123.0.0/", &net, &mask, &prefix), -EINVAL);
        cr_assert_eq(wg_parse_cidr4("10.123.0.0/-1", &net, &mask, &prefix), -EINVAL);
        cr_assert_eq(wg_parse_cidr4("10.123.0.0", &net, &mask, &prefix), -EINVAL);
        cr_assert_eq(wg_parse_cidr4("fd00::/64", &net, &mask, &prefix), -EINVAL);
}
