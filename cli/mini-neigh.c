/* SPDX-License-Identifier: Apache-2.0 */
/* The host's ARP table, shared by every node's network namespace
 * (mini-neigh.h; docs/MINI.md, "Neighbour table"). */
#include "mini-neigh.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

#define STAT_PATH "/proc/net/stat/arp_cache"

/* The limits hold the largest cluster: every node an entry per other node,
 * the bridge one per node. */
_Static_assert(MINI_NEIGH_THRESH2 >= MINI_NEIGH_NEEDED, "gc_thresh2 below what the largest cluster needs");
_Static_assert(MINI_NEIGH_THRESH3 >= MINI_NEIGH_THRESH2, "gc_thresh3 below gc_thresh2");
#define SYSCTL_DIR "/proc/sys/net/ipv4/neigh/default"
#define STAT_MAX_SIZE (256 * 1024)
#define STAT_MAX_COLUMNS 64
#define STAT_MAX_ROWS 8192 /* CPUs */

/* The next whitespace-separated word of [*p, end): its start and length,
 * or 0 at the end of the line. */
static size_t next_word(const char **p, const char *end, const char **ret) {
        const char *s = *p;
        size_t n = 0;

        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        while (s + n < end && s[n] != ' ' && s[n] != '\t' && s[n] != '\n')
                n++;
        *ret = s;
        *p = s + n;
        return n;
}

int mini_neigh_parse_stat(const char *text, size_t len, uint64_t *ret_fulls) {
        const char *p = text, *end = text + len, *w;
        size_t column = SIZE_MAX, n_columns = 0, rows = 0, n;
        uint64_t sum = 0;

        /* The header names the columns; table_fulls is not always last. */
        while ((n = next_word(&p, end, &w)) > 0) {
                if (n_columns >= STAT_MAX_COLUMNS)
                        return -EBADMSG;
                if (n == strlen("table_fulls") && memcmp(w, "table_fulls", n) == 0)
                        column = n_columns;
                n_columns++;
        }
        if (column == SIZE_MAX || p >= end || *p != '\n')
                return -EBADMSG;
        p++;
        while (p < end) {
                size_t k = 0;
                bool have = false;

                if (++rows > STAT_MAX_ROWS)
                        return -EBADMSG;
                while ((n = next_word(&p, end, &w)) > 0) {
                        uint64_t v = 0;

                        if (k >= n_columns || n > 16)
                                return -EBADMSG;
                        for (size_t i = 0; i < n; i++) {
                                int d = w[i] >= '0' && w[i] <= '9'   ? w[i] - '0'
                                        : w[i] >= 'a' && w[i] <= 'f' ? w[i] - 'a' + 10
                                                                     : -1;
                                if (d < 0)
                                        return -EBADMSG;
                                v = v << 4 | (uint64_t) d;
                        }
                        if (k == column) {
                                if (sum > UINT64_MAX - v)
                                        return -EBADMSG;
                                sum += v;
                                have = true;
                        }
                        k++;
                }
                if (k != n_columns || !have || p >= end || *p != '\n')
                        return -EBADMSG;
                p++;
        }
        if (rows == 0)
                return -EBADMSG;
        *ret_fulls = sum;
        return 0;
}

int mini_neigh_overflows(uint64_t *ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        r = read_full_file(STAT_PATH, STAT_MAX_SIZE, &buf, &len);
        if (r < 0)
                return r;
        return mini_neigh_parse_stat(buf, len, ret);
}

static int read_thresh(const char *name, unsigned *ret) {
        _cleanup_free_ char *buf = NULL;
        char path[128], *end;
        size_t len;
        unsigned long v;
        int r;

        snprintf(path, sizeof(path), SYSCTL_DIR "/%s", name);
        r = read_full_file(path, 32, &buf, &len);
        if (r < 0)
                return r;
        errno = 0;
        v = strtoul(buf, &end, 10);
        if (errno || end == buf || (*end && *end != '\n') || v > INT32_MAX)
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

static int write_thresh(const char *name, unsigned v) {
        char path[128], buf[16];
        int fd, n, r = 0;

        snprintf(path, sizeof(path), SYSCTL_DIR "/%s", name);
        n = snprintf(buf, sizeof(buf), "%u\n", v);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, buf, (size_t) n) != n)
                r = errno ? -errno : -EIO;
        close(fd);
        return r;
}

int mini_neigh_ensure(struct mini_neigh_limits *ret) {
        struct mini_neigh_limits l = {};
        int r;

        r = read_thresh("gc_thresh2", &l.thresh2);
        if (r >= 0)
                r = read_thresh("gc_thresh3", &l.thresh3);
        if (r < 0)
                return r;
        l.new_thresh2 = l.thresh2 < MINI_NEIGH_THRESH2 ? MINI_NEIGH_THRESH2 : l.thresh2;
        l.new_thresh3 = l.thresh3 < MINI_NEIGH_THRESH3 ? MINI_NEIGH_THRESH3 : l.thresh3;
        *ret = l;
        /* The hard limit first, so that gc_thresh2 never exceeds it. */
        if (l.new_thresh3 != l.thresh3 && (r = write_thresh("gc_thresh3", l.new_thresh3)) < 0) {
                ret->new_thresh2 = l.thresh2;
                ret->new_thresh3 = l.thresh3;
                return r;
        }
        if (l.new_thresh2 != l.thresh2 && (r = write_thresh("gc_thresh2", l.new_thresh2)) < 0) {
                ret->new_thresh2 = l.thresh2;
                return r;
        }
        return 0;
}

void mini_neigh_report(int r, const struct mini_neigh_limits *l, unsigned n_nodes) {
        if (r < 0) {
                unsigned fit = 0;
                while ((fit + 1) * (fit + 1) <= l->new_thresh3)
                        fit++; /* n nodes need about n * n entries */
                errno = -r;
                if (fit)
                        printf("  neighbours:    WARNING: cannot raise the host's ARP table limit (%s/gc_thresh3 = "
                               "%u: %m); the nodes' namespaces share that table, which holds about %u nodes: "
                               "beyond that, packets between nodes are dropped%s\n",
                               SYSCTL_DIR, l->new_thresh3, fit, n_nodes > fit ? " (this cluster is larger)" : "");
                else
                        printf("  neighbours:    WARNING: cannot read the host's ARP table limit (%s: %m); the "
                               "nodes' namespaces share that table, and large clusters may overflow it\n",
                               SYSCTL_DIR);
                return;
        }
        if (l->new_thresh3 != l->thresh3 || l->new_thresh2 != l->thresh2)
                printf("  neighbours:    raised the host's ARP table limit to %u entries (gc_thresh3, was %u; "
                       "gc_thresh2 %u, was %u): the nodes' namespaces share one table, and n nodes need about n * n "
                       "entries\n",
                       l->new_thresh3, l->thresh3, l->new_thresh2, l->thresh2);
}
