/* SPDX-License-Identifier: Apache-2.0 */
#include "firewall.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "macro.h"

/* libnftables is not linked: with its dependencies (libnftnl, libmnl,
 * libxtables, libgmp, libjansson) it cost the bootstrapper ~0.6 MiB
 * resident on every node, firewall or not (the loader's relocations and
 * the kernel's fault-around on each library; bench-join), and on a node
 * with the firewall ~1.4 MiB of library pages plus the heap its parser
 * and cache leave behind (`arca mini`). Each transaction runs in a child
 * process forked for it, which loads the library, runs the script and
 * exits: the daemon's memory never holds any of it, and a script is
 * applied whole or not at all either way (one nft transaction). A fork
 * costs well under a millisecond next to the transaction itself, and
 * firewall changes follow membership changes, not requests. */
#define NFT_SONAME "libnftables.so.1"

static struct {
        __typeof__(nft_ctx_new) *ctx_new;
        __typeof__(nft_ctx_free) *ctx_free;
        __typeof__(nft_ctx_buffer_output) *buffer_output;
        __typeof__(nft_ctx_buffer_error) *buffer_error;
        __typeof__(nft_run_cmd_from_buffer) *run_cmd_from_buffer;
        __typeof__(nft_ctx_get_error_buffer) *get_error_buffer;
} nft;
static char nft_load_error[256];

#define NFT_SYM(field, name) (nft.field = (__typeof__(nft.field)) dlsym(h, name))

static void nft_load(void) {
        void *h = dlopen(NFT_SONAME, RTLD_NOW | RTLD_LOCAL);

        if (!h) {
                snprintf(nft_load_error, sizeof(nft_load_error), "%s", dlerror());
                return;
        }
        if (!NFT_SYM(ctx_free, "nft_ctx_free") || !NFT_SYM(buffer_output, "nft_ctx_buffer_output") ||
            !NFT_SYM(buffer_error, "nft_ctx_buffer_error") ||
            !NFT_SYM(run_cmd_from_buffer, "nft_run_cmd_from_buffer") ||
            !NFT_SYM(get_error_buffer, "nft_ctx_get_error_buffer") || !NFT_SYM(ctx_new, "nft_ctx_new")) {
                snprintf(nft_load_error, sizeof(nft_load_error), "%s", dlerror());
                nft.ctx_new = NULL; /* set last: the mark of a complete load */
        }
}

static void nft_ctx_freep(struct nft_ctx **p) {
        if (*p)
                nft.ctx_free(*p);
}

#define TABLE FIREWALL_FAMILY " " FIREWALL_TABLE
#define IFNAME_MAX 15 /* IFNAMSIZ - 1 */

static const uint16_t default_tcp_ports[] = { 9000, 30090, 9999 };

void firewall_config_default(struct firewall_config *c) {
        *c = (struct firewall_config){
                .mesh_interface = FIREWALL_MESH_INTERFACE,
                .wireguard_port = FIREWALL_WIREGUARD_PORT,
                .n_tcp_ports = ELEMENTSOF(default_tcp_ports),
        };
        memcpy(c->tcp_ports, default_tcp_ports, sizeof(default_tcp_ports));
}

struct node_addr {
        int family;
        uint8_t bytes[16];
};

static int node_addr_cmp(const void *a, const void *b) {
        const struct node_addr *x = a, *y = b;

        if (x->family != y->family)
                return x->family == AF_INET ? -1 : 1;
        return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

static bool is_v4_mapped(const uint8_t b[16]) {
        static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return memcmp(b, prefix, sizeof(prefix)) == 0;
}

/* Why a parsed address cannot be a node's underlay address, or NULL. */
static const char *unusable(const struct node_addr *a) {
        static const uint8_t zero[16];
        const uint8_t *b = a->bytes;

        if (a->family == AF_INET) {
                if (b[0] == 0)
                        return "unspecified address"; /* 0.0.0.0/8 */
                if (b[0] == 127)
                        return "loopback address";
                if (b[0] >= 224 && b[0] < 240)
                        return "multicast address";
                if (b[0] >= 240)
                        return "reserved or broadcast address";
                return NULL;
        }
        if (memcmp(b, zero, 16) == 0)
                return "unspecified address";
        if (memcmp(b, zero, 15) == 0 && b[15] == 1)
                return "loopback address";
        if (b[0] == 0xff)
                return "multicast address";
        return NULL;
}

/* Parse, check, sort and merge the node addresses. */
static int parse_nodes(const char *const *nodes, size_t n, struct node_addr **ret, size_t *ret_n,
                       struct errmsg *e) {
        _cleanup_free_ struct node_addr *a = NULL;
        char buf[68];
        size_t m = 0;

        if (n > FIREWALL_NODES_MAX)
                return errmsg_set(e, EINVAL, "%zu node addresses, at most %d allowed", n, FIREWALL_NODES_MAX);
        if (n > 0 && !nodes)
                return errmsg_set(e, EINVAL, "%zu node addresses but no list", n);
        a = calloc(n ? n : 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                struct node_addr *x = &a[i];
                const char *why;

                if (!nodes[i])
                        return errmsg_set(e, EINVAL, "node address %zu is missing", i);
                if (inet_pton(AF_INET, nodes[i], x->bytes) == 1)
                        x->family = AF_INET;
                else if (inet_pton(AF_INET6, nodes[i], x->bytes) == 1) {
                        x->family = AF_INET6;
                        if (is_v4_mapped(x->bytes)) {
                                memmove(x->bytes, x->bytes + 12, 4);
                                memset(x->bytes + 4, 0, 12);
                                x->family = AF_INET;
                        }
                } else
                        return errmsg_set(e, EINVAL, "node address %zu '%s' is not an IPv4 or IPv6 address",
                                          i, printable_str(nodes[i], buf, sizeof(buf)));
                why = unusable(x);
                if (why)
                        return errmsg_set(e, EINVAL, "node address %zu '%s' is not a node's address: %s", i,
                                          printable_str(nodes[i], buf, sizeof(buf)), why);
        }
        qsort(a, n, sizeof(*a), node_addr_cmp);
        for (size_t i = 0; i < n; i++)
                if (m == 0 || node_addr_cmp(&a[m - 1], &a[i]) != 0)
                        a[m++] = a[i];
        *ret = TAKE_PTR(a);
        *ret_n = m;
        return 0;
}

static bool valid_ifname(const char *s) {
        size_t n;

        if (!s || (n = strlen(s)) == 0 || n > IFNAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.'))
                        return false;
        }
        return true;
}

static int check_config(const struct firewall_config *c, struct errmsg *e) {
        char buf[68];

        if (!c)
                return errmsg_set(e, EINVAL, "no firewall configuration");
        if (!valid_ifname(c->mesh_interface))
                return errmsg_set(e, EINVAL,
                                  "mesh interface '%s' is not an interface name ([A-Za-z0-9_.-], 1-%d)",
                                  printable_str(c->mesh_interface, buf, sizeof(buf)), IFNAME_MAX);
        if (c->wireguard_port == 0)
                return errmsg_set(e, EINVAL, "WireGuard port 0");
        if (c->n_tcp_ports > FIREWALL_TCP_PORTS_MAX)
                return errmsg_set(e, EINVAL, "%zu TCP ports, at most %d allowed", c->n_tcp_ports,
                                  FIREWALL_TCP_PORTS_MAX);
        for (size_t i = 0; i < c->n_tcp_ports; i++) {
                if (c->tcp_ports[i] == 0)
                        return errmsg_set(e, EINVAL, "TCP port %zu is 0", i);
                for (size_t j = 0; j < i; j++)
                        if (c->tcp_ports[j] == c->tcp_ports[i])
                                return errmsg_set(e, EINVAL, "TCP port %u listed twice", c->tcp_ports[i]);
        }
        return 0;
}

/* "a, b, c" of the addresses of one family, for an nft element list;
 * returns how many were written. */
static size_t put_addresses(FILE *f, const struct node_addr *a, size_t n, int family) {
        char text[INET6_ADDRSTRLEN];
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                if (a[i].family != family)
                        continue;
                /* Cannot fail: family and buffer size are right. */
                inet_ntop(family, a[i].bytes, text, sizeof(text));
                fprintf(f, "%s%s", k++ ? ", " : "", text);
        }
        return k;
}

static size_t count_family(const struct node_addr *a, size_t n, int family) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += a[i].family == family;
        return k;
}

static void put_set(FILE *f, const char *name, const char *type, const struct node_addr *a, size_t n,
                    int family) {
        fprintf(f, "\tset %s {\n\t\ttype %s\n", name, type);
        if (count_family(a, n, family) > 0) {
                fputs("\t\telements = { ", f);
                put_addresses(f, a, n, family);
                fputs(" }\n", f);
        }
        fputs("\t}\n", f);
}

static int cmp_port(const void *a, const void *b) {
        return (int) *(const uint16_t *) a - (int) *(const uint16_t *) b;
}

/* The verdicts for packets between this node and another node's underlay
 * address, `ifdir` "iifname" for input, "oifname" for output. */
static void put_node_chain(FILE *f, const char *name, const char *ifdir, const struct firewall_config *c,
                           const uint16_t *ports) {
        fprintf(f, "\tchain %s {\n", name);
        fprintf(f, "\t\t%s \"%s\" accept\n", ifdir, c->mesh_interface);
        fputs("\t\tct direction reply accept\n", f);
        fputs("\t\tct state related accept\n", f);
        fprintf(f, "\t\tudp dport %u accept\n", c->wireguard_port);
        if (streq(ifdir, "oifname"))
                fprintf(f, "\t\tudp sport %u accept\n", c->wireguard_port);
        if (c->n_tcp_ports > 0) {
                fputs("\t\ttcp dport { ", f);
                for (size_t i = 0; i < c->n_tcp_ports; i++)
                        fprintf(f, "%s%u", i ? ", " : "", ports[i]);
                fputs(" } accept\n", f);
        }
        fputs("\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n", f);
        if (streq(ifdir, "oifname")) {
                /* Our own service used an underlay address: make it fail at
                 * once and loudly (connection refused, EPERM) rather than
                 * hang. */
                fputs("\t\tmeta l4proto tcp counter reject with tcp reset\n", f);
                fputs("\t\tcounter reject with icmpx admin-prohibited\n", f);
        } else
                fputs("\t\tcounter drop\n", f);
        fputs("\t}\n", f);
}

static int finish_script(FILE **f, char **buf, char **ret) {
        int r = fflush(*f) != 0 || ferror(*f) ? -ENOMEM : 0;

        fclose(*f);
        *f = NULL;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(*buf);
        return 0;
}

int firewall_render(const struct firewall_config *c, char **ret, struct errmsg *e) {
        _cleanup_free_ struct node_addr *a = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        uint16_t ports[FIREWALL_TCP_PORTS_MAX];
        size_t n = 0, size = 0;
        int r;

        r = check_config(c, e);
        if (r < 0)
                return r;
        r = parse_nodes(c->nodes, c->n_nodes, &a, &n, e);
        if (r < 0)
                return r;
        memcpy(ports, c->tcp_ports, c->n_tcp_ports * sizeof(ports[0]));
        qsort(ports, c->n_tcp_ports, sizeof(ports[0]), cmp_port);

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        /* add + delete + define in one transaction: works whether or not the
         * table exists, and replaces it atomically. */
        fputs("add table " TABLE "\n"
              "delete table " TABLE "\n"
              "table " TABLE " {\n",
              f);
        put_set(f, "nodes4", "ipv4_addr", a, n, AF_INET);
        put_set(f, "nodes6", "ipv6_addr", a, n, AF_INET6);
        fputs("\tchain input {\n"
              "\t\ttype filter hook input priority filter; policy accept;\n"
              "\t\tiif \"lo\" accept\n"
              "\t\tip saddr @nodes4 jump from_node\n"
              "\t\tip6 saddr @nodes6 jump from_node\n"
              "\t}\n",
              f);
        put_node_chain(f, "from_node", "iifname", c, ports);
        fputs("\tchain output {\n"
              "\t\ttype filter hook output priority filter; policy accept;\n"
              "\t\toif \"lo\" accept\n"
              "\t\tip daddr @nodes4 jump to_node\n"
              "\t\tip6 daddr @nodes6 jump to_node\n"
              "\t}\n",
              f);
        put_node_chain(f, "to_node", "oifname", c, ports);
        /* Routed traffic (pods, a CNI that routes over the underlay) obeys
         * the same rules: from a node only via arca0, to a node likewise. */
        fputs("\tchain forward {\n"
              "\t\ttype filter hook forward priority filter; policy accept;\n"
              "\t\tip saddr @nodes4 jump from_node\n"
              "\t\tip6 saddr @nodes6 jump from_node\n"
              "\t\tip daddr @nodes4 jump to_node\n"
              "\t\tip6 daddr @nodes6 jump to_node\n"
              "\t}\n",
              f);
        fputs("}\n", f);
        return finish_script(&f, &buf, ret);
}

int firewall_render_nodes(const char *const *nodes, size_t n_nodes, char **ret, struct errmsg *e) {
        _cleanup_free_ struct node_addr *a = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t n = 0, size = 0;
        int r;

        r = parse_nodes(nodes, n_nodes, &a, &n, e);
        if (r < 0)
                return r;
        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fputs("flush set " TABLE " nodes4\n"
              "flush set " TABLE " nodes6\n",
              f);
        if (count_family(a, n, AF_INET) > 0) {
                fputs("add element " TABLE " nodes4 { ", f);
                put_addresses(f, a, n, AF_INET);
                fputs(" }\n", f);
        }
        if (count_family(a, n, AF_INET6) > 0) {
                fputs("add element " TABLE " nodes6 { ", f);
                put_addresses(f, a, n, AF_INET6);
                fputs(" }\n", f);
        }
        return finish_script(&f, &buf, ret);
}

/* nft's error text as one line: its first two lines (the message and the
 * command it refers to), control characters as spaces. */
static void nft_error_line(const char *s, char *out, size_t max) {
        size_t k = 0;
        int lines = 0;

        for (; s && *s && k + 1 < max; s++) {
                if (*s == '\n') {
                        if (++lines == 2 || !s[1])
                                break;
                        if (k + 4 < max)
                                memcpy(out + k, " in ", 4), k += 4;
                        continue;
                }
                out[k++] = (unsigned char) *s < 0x20 || *s == 0x7f ? ' ' : *s;
        }
        while (k > 0 && out[k - 1] == ' ')
                k--;
        out[k] = 0;
}

/* In the child: one transaction; 0, or a negative errno and the reason in
 * msg. */
static int nft_transaction(const char *script, char *msg, size_t size) {
        _cleanup_(nft_ctx_freep) struct nft_ctx *ctx = NULL;
        char line[400];

        nft_load(); /* in a child forked for this one transaction */
        if (!nft.ctx_new) {
                snprintf(msg, size, "cannot load %s (package libnftables1): %s", NFT_SONAME, nft_load_error);
                return -ENOPKG;
        }
        ctx = nft.ctx_new(NFT_CTX_DEFAULT);
        if (!ctx) {
                snprintf(msg, size, "cannot create an nftables context");
                return -ENOMEM;
        }
        if (nft.buffer_output(ctx) < 0 || nft.buffer_error(ctx) < 0) {
                snprintf(msg, size, "cannot buffer nftables output");
                return -ENOMEM;
        }
        if (nft.run_cmd_from_buffer(ctx, script) == 0)
                return 0;
        nft_error_line(nft.get_error_buffer(ctx), line, sizeof(line));
        snprintf(msg, size, "nft: %s", line[0] ? line : "failed without a message");
        if (strstr(line, "Operation not permitted"))
                return -EPERM;
        if (strstr(line, "No such file or directory"))
                return -ENOENT;
        return -EIO;
}

/* Run one script as one transaction, in a child (above). The child writes
 * its errno (an int) and then its reason to a pipe on its stdout; an exit
 * without them (libnftables exits by itself when it cannot open its
 * netlink socket or memory) is reported with its status. */
static int run_script(const char *script, const char *what, struct errmsg *e) {
        char msg[512] = "";
        size_t got = 0, n_msg = 0;
        int fds[2], st, child_errno = 0;
        pid_t parent = getpid(), pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return errmsg_set(e, errno, "%s: cannot make a pipe: %s", what, strerror(errno));
        pid = fork();
        if (pid < 0) {
                int r = errno;
                close(fds[0]);
                close(fds[1]);
                return errmsg_set(e, r, "%s: cannot fork for nftables: %s", what, strerror(r));
        }
        if (pid == 0) {
                int r;

                /* The daemon's signal handlers, mask and descriptors are
                 * not the child's; stderr stays the daemon's log. */
                child_reset(parent, SIGKILL, fds[1], STDERR_FILENO);
                r = nft_transaction(script, msg, sizeof(msg));
                if (r < 0) {
                        int err = -r;
                        (void) !write(STDOUT_FILENO, &err, sizeof(err));
                        (void) !write(STDOUT_FILENO, msg, strlen(msg));
                }
                /* No atexit handlers or stdio flushes of the parent's. */
                _exit(r < 0 ? 1 : 0);
        }
        close(fds[1]);
        for (;;) {
                char buf[sizeof(msg)];
                ssize_t n = read(fds[0], buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                for (ssize_t i = 0; i < n; i++, got++)
                        if (got < sizeof(child_errno))
                                ((char *) &child_errno)[got] = buf[i];
                        else if (n_msg < sizeof(msg) - 1)
                                msg[n_msg++] = buf[i];
        }
        msg[n_msg] = 0;
        close(fds[0]);
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return errmsg_set(e, errno, "%s: cannot wait for the nftables child: %s", what,
                                          strerror(errno));
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                return 0;
        if (got >= sizeof(child_errno) && child_errno > 0 && child_errno < 4096)
                return errmsg_set(e, child_errno, "%s: %s", what, msg[0] ? msg : "nftables failed without a message");
        if (WIFSIGNALED(st))
                return errmsg_set(e, EIO, "%s: the nftables child died of signal %d", what, WTERMSIG(st));
        return errmsg_set(e, EIO, "%s: nftables exited with status %d without a reason", what,
                          WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int firewall_apply(const struct firewall_config *c, struct errmsg *e) {
        _cleanup_free_ char *script = NULL;
        int r;

        r = firewall_render(c, &script, e);
        if (r < 0)
                return r;
        return run_script(script, "applying table " TABLE, e);
}

int firewall_update_nodes(const char *const *nodes, size_t n_nodes, struct errmsg *e) {
        _cleanup_free_ char *script = NULL;
        struct errmsg inner = {};
        int r;

        r = firewall_render_nodes(nodes, n_nodes, &script, e);
        if (r < 0)
                return r;
        r = run_script(script, "updating the node sets of table " TABLE, &inner);
        if (r == -ENOENT)
                return errmsg_set(e, r, "table " TABLE " is not applied (%s)", inner.text);
        if (r < 0)
                return errmsg_set(e, r, "%s", inner.text);
        return 0;
}

int firewall_remove(struct errmsg *e) {
        return run_script("add table " TABLE "\n"
                          "delete table " TABLE "\n",
                          "removing table " TABLE, e);
}
