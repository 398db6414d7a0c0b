/* SPDX-License-Identifier: Apache-2.0 */
/* arca mini and the host's shared ARP table (cli/mini-neigh.c): the
 * parser of /proc/net/stat/arp_cache that tells `add` whether the kernel
 * dropped packets for want of a neighbour entry, each malformed table
 * refused; the limit `up` and `add` raise is large enough for the largest
 * cluster; this kernel's table is read. The CLI is not part of libarca: its file is compiled in. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../cli/mini-neigh.c"

#define HEADER                                                                                                    \
        "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast "     \
        "periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n"

static int parse(const char *text, uint64_t *ret) {
        return mini_neigh_parse_stat(text, strlen(text), ret);
}

Test(mini_neigh, sums_table_fulls_over_cpus) {
        /* As this host's kernel wrote it while 36 nodes overflowed it. */
        const char *text = HEADER
                "00000409 00013d88 00013dce 00000007   0009b2f0 00064ab2 000000a2   00000000         00000000         "
                "00000880         0003fb7c       00000000            0003cc00\n"
                "00000409 00013603 000131b4 00000001   00092613 0005df3d 0000006f   00000000         00000000         "
                "00000000         0003d913       00000000            0003abf8\n";
        uint64_t fulls = 0;

        cr_assert_eq(parse(text, &fulls), 0);
        cr_assert_eq(fulls, 0x3cc00 + 0x3abf8);
}

Test(mini_neigh, finds_the_column_by_name) {
        uint64_t fulls = 0;

        cr_assert_eq(parse("table_fulls entries\n0000000a 00000001\n00000005 00000002\n", &fulls), 0);
        cr_assert_eq(fulls, 15);
}

Test(mini_neigh, refuses_malformed_tables) {
        static const char *const bad[] = {
                "",                                            /* nothing */
                "entries allocs\n00000001 00000002\n",         /* no table_fulls column */
                "entries table_fulls\n",                        /* no CPU rows */
                "entries table_fulls\n00000001\n",              /* a row too short */
                "entries table_fulls\n1 2 3\n",                 /* a row too long */
                "entries table_fulls\n00000001 0000000g\n",     /* not hex */
                "entries table_fulls\n00000001 0000000A\n",     /* the kernel writes lower case */
                "entries table_fulls\n00000001 00000002",       /* no newline at the end */
                "entries table_fulls",                          /* header without newline */
                "entries table_fulls\n1 11111111111111111\n",   /* more than 64 bits */
                "entries table_fulls\n1 ffffffffffffffff\n1 1\n", /* the sum overflows */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint64_t fulls = 77;
                cr_assert_eq(parse(bad[i], &fulls), -EBADMSG, "case %zu accepted", i);
                cr_assert_eq(fulls, 77, "case %zu touched the result", i);
        }
}

Test(mini_neigh, reads_this_hosts_table) {
        uint64_t fulls = 0;
        int r = mini_neigh_overflows(&fulls);

        if (r == -ENOENT)
                cr_skip_test("no /proc/net/stat/arp_cache here");
        cr_assert_eq(r, 0, "cannot parse this kernel's /proc/net/stat/arp_cache: %s", strerror(-r));
}
