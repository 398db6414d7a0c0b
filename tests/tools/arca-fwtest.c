/* SPDX-License-Identifier: Apache-2.0 */
/* Test tool for the node firewall (lib/firewall.c): drives the API and
 * probes what gets through. Run inside a test's network namespaces; never
 * part of a node image.
 *
 *   arca-fwtest apply  [--mesh IF] [--wg-port N] [--tcp-port N]... [NODE...]
 *   arca-fwtest update [NODE...]
 *   arca-fwtest remove
 *   arca-fwtest render [--mesh IF] [--tcp-port N]... [NODE...]   (prints the script)
 *   arca-fwtest churn  --rounds N NODE... then NODE...   (alternate update_nodes
 *                      between two node lists N times, print updates/s)
 *   arca-fwtest serve  [--tcp PORT]... [--udp PORT]... [ADDR]
 *        TCP: greets with "arca\n" and echoes; UDP: echoes. Dual-stack, on
 *        every address or only on ADDR.
 *        Prints "ready" once every socket is bound.
 *   arca-fwtest tcp  ADDR PORT [--from SRC] [--timeout MS]
 *   arca-fwtest udp  ADDR PORT [--from SRC] [--sport N] [--timeout MS]
 *        Print one word and exit: "open" (0: greeting or echo received),
 *        "timeout" (1), "refused" (2), "eperm" (3: dropped by the local
 *        output hook), "error" (4).
 *   arca-fwtest hold ADDR PORT --go FILE [--timeout MS]
 *        Connect, read the greeting, print "connected", wait for FILE to
 *        exist, then send a line and report as `tcp` whether it is echoed
 *        within MS.
 *   arca-fwtest udpflood ADDR PORT --ms DURATION [--go FILE] [--from SRC]
 *        Send a datagram every 100 us for DURATION ms or until FILE exists;
 *        print "sent N echoed M".
 * apply, update and remove exit 5 for ENOENT, 6 for EINVAL, 8 for EPERM,
 * 9 for ENOPKG (libnftables cannot be loaded), 7 for other errors, with
 * the reason on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errmsg.h"
#include "firewall.h"
#include "macro.h"
#include "time-util.h"

enum { OPEN = 0, TIMEOUT = 1, REFUSED = 2, EPERM_LOCAL = 3, ERROR = 4 };
static const char *const result_word[] = { "open", "timeout", "refused", "eperm", "error" };

static int finish(int res) {
        printf("%s\n", result_word[res]);
        return res;
}

static int from_errno(int err) {
        if (err == ECONNREFUSED)
                return REFUSED;
        if (err == EPERM || err == EACCES)
                return EPERM_LOCAL;
        if (err == ETIMEDOUT || err == EAGAIN)
                return TIMEOUT;
        return ERROR;
}

/* ADDR + PORT into a sockaddr (IPv4 or IPv6). */
static int make_addr(const char *addr, unsigned port, struct sockaddr_storage *ss, socklen_t *len) {
        struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;

        memset(ss, 0, sizeof(*ss));
        if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
                s4->sin_family = AF_INET;
                s4->sin_port = htons(port);
                *len = sizeof(*s4);
                return AF_INET;
        }
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(port);
                *len = sizeof(*s6);
                return AF_INET6;
        }
        fprintf(stderr, "bad address '%s'\n", addr);
        exit(ERROR);
}

/* A socket to `addr:port`, bound to `from:sport` when given. */
static int client_socket(int type, const char *addr, unsigned port, const char *from, unsigned sport,
                         struct sockaddr_storage *ss, socklen_t *len) {
        int family = make_addr(addr, port, ss, len);
        int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        if (from || sport) {
                struct sockaddr_storage ls;
                socklen_t ll;
                int one = 1;
                if (make_addr(from ? from : (family == AF_INET ? "0.0.0.0" : "::"), sport, &ls, &ll) != family) {
                        fprintf(stderr, "--from family differs from the target's\n");
                        exit(ERROR);
                }
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, (struct sockaddr *) &ls, ll) < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        }
        return fd;
}

/* Wait until fd is readable and read something: OPEN, TIMEOUT or an error. */
static int await_data(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char buf[256];
        int r = poll(&p, 1, timeout_ms);

        if (r == 0)
                return TIMEOUT;
        if (r < 0)
                return ERROR;
        r = recv(fd, buf, sizeof(buf), 0);
        if (r > 0)
                return OPEN;
        return r == 0 ? ERROR : from_errno(errno);
}

static int tcp_connect(const char *addr, unsigned port, const char *from, int timeout_ms, int *ret_fd) {
        struct sockaddr_storage ss;
        socklen_t len;
        struct pollfd p;
        int fd, err = 0, r;
        socklen_t el = sizeof(err);

        fd = client_socket(SOCK_STREAM, addr, port, from, 0, &ss, &len);
        if (fd < 0)
                return from_errno(-fd);
        if (connect(fd, (struct sockaddr *) &ss, len) < 0 && errno != EINPROGRESS) {
                r = from_errno(errno);
                close(fd);
                return r;
        }
        p = (struct pollfd){ .fd = fd, .events = POLLOUT };
        r = poll(&p, 1, timeout_ms);
        if (r <= 0) {
                close(fd);
                return r == 0 ? TIMEOUT : ERROR;
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
                close(fd);
                return from_errno(err);
        }
        r = await_data(fd, timeout_ms);
        if (r != OPEN)
                close(fd);
        else
                *ret_fd = fd;
        return r;
}

static int do_tcp(const char *addr, unsigned port, const char *from, int timeout_ms) {
        int fd = -1, r = tcp_connect(addr, port, from, timeout_ms, &fd);

        if (fd >= 0)
                close(fd);
        return finish(r);
}

static int do_udp(const char *addr, unsigned port, const char *from, unsigned sport, int timeout_ms) {
        struct sockaddr_storage ss;
        socklen_t len;
        int fd, r;

        fd = client_socket(SOCK_DGRAM, addr, port, from, sport, &ss, &len);
        if (fd < 0)
                return finish(from_errno(-fd));
        if (connect(fd, (struct sockaddr *) &ss, len) < 0 || send(fd, "probe\n", 6, 0) < 0) {
                r = from_errno(errno);
                close(fd);
                return finish(r);
        }
        r = await_data(fd, timeout_ms);
        close(fd);
        return finish(r);
}

static int do_hold(const char *addr, unsigned port, const char *go, int timeout_ms) {
        struct stat st;
        /* The connection is made before any firewall: allow for load. */
        int fd = -1, r = tcp_connect(addr, port, NULL, 10000, &fd);

        if (r != OPEN) {
                printf("not connected\n");
                return finish(r);
        }
        printf("connected\n");
        fflush(stdout);
        while (stat(go, &st) < 0)
                usleep(10000);
        if (send(fd, "again\n", 6, MSG_NOSIGNAL) < 0) {
                r = from_errno(errno);
                close(fd);
                return finish(r);
        }
        r = await_data(fd, timeout_ms);
        close(fd);
        return finish(r);
}

static int do_udpflood(const char *addr, unsigned port, const char *from, const char *stop, int ms) {
        struct sockaddr_storage ss;
        socklen_t len;
        unsigned long sent = 0, echoed = 0;
        uint64_t end;
        char buf[64];
        int fd;

        fd = client_socket(SOCK_DGRAM, addr, port, from, 0, &ss, &len);
        if (fd < 0 || connect(fd, (struct sockaddr *) &ss, len) < 0) {
                fprintf(stderr, "udpflood: %s\n", strerror(fd < 0 ? -fd : errno));
                return ERROR;
        }
        end = now_ms() + (uint64_t) ms;
        while (now_ms() < end) {
                struct stat st;
                if (stop && (sent & 63) == 0 && stat(stop, &st) == 0)
                        break;
                if (send(fd, "flood\n", 6, 0) >= 0)
                        sent++;
                while (recv(fd, buf, sizeof(buf), 0) > 0)
                        echoed++;
                usleep(100);
        }
        /* Late echoes of the last datagrams. */
        usleep(200000);
        while (recv(fd, buf, sizeof(buf), 0) > 0)
                echoed++;
        close(fd);
        printf("sent %lu echoed %lu\n", sent, echoed);
        return 0;
}

static int listen_on(int type, unsigned port, const char *addr) {
        struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any };
        int zero = 0, one = 1;
        int fd = socket(AF_INET6, type | SOCK_CLOEXEC, 0);
        struct in_addr a4;

        if (addr && inet_pton(AF_INET6, addr, &s6.sin6_addr) != 1) {
                /* An IPv4 address as the dual-stack socket sees it: ::ffff:a.b.c.d */
                if (inet_pton(AF_INET, addr, &a4) != 1) {
                        fprintf(stderr, "serve: '%s' is not an IP address\n", addr);
                        exit(ERROR);
                }
                memset(&s6.sin6_addr, 0, sizeof(s6.sin6_addr));
                s6.sin6_addr.s6_addr[10] = s6.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&s6.sin6_addr.s6_addr[12], &a4, 4);
        }

        if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *) &s6, sizeof(s6)) < 0 || (type == SOCK_STREAM && listen(fd, 64) < 0)) {
                fprintf(stderr, "serve: port %u: %s\n", port, strerror(errno));
                exit(ERROR);
        }
        return fd;
}

static void serve_connection(int fd) {
        char buf[512];
        ssize_t n;

        if (send(fd, "arca\n", 5, MSG_NOSIGNAL) < 0)
                _exit(0);
        while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
                if (send(fd, buf, (size_t) n, MSG_NOSIGNAL) < 0)
                        break;
        _exit(0);
}

static int do_serve(const unsigned *tcp, size_t n_tcp, const unsigned *udp, size_t n_udp, const char *addr) {
        struct pollfd p[64];
        bool is_tcp[64];
        size_t n = 0;

        signal(SIGCHLD, SIG_IGN);
        for (size_t i = 0; i < n_tcp; i++, n++) {
                p[n] = (struct pollfd){ .fd = listen_on(SOCK_STREAM, tcp[i], addr), .events = POLLIN };
                is_tcp[n] = true;
        }
        for (size_t i = 0; i < n_udp; i++, n++) {
                p[n] = (struct pollfd){ .fd = listen_on(SOCK_DGRAM, udp[i], addr), .events = POLLIN };
                is_tcp[n] = false;
        }
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                if (poll(p, n, -1) < 0 && errno != EINTR)
                        return ERROR;
                for (size_t i = 0; i < n; i++) {
                        struct sockaddr_storage ss;
                        socklen_t len = sizeof(ss);
                        char buf[512];
                        ssize_t k;
                        int c;

                        if (!(p[i].revents & POLLIN))
                                continue;
                        if (!is_tcp[i]) {
                                k = recvfrom(p[i].fd, buf, sizeof(buf), 0, (struct sockaddr *) &ss, &len);
                                if (k > 0)
                                        sendto(p[i].fd, buf, (size_t) k, 0, (struct sockaddr *) &ss, len);
                                continue;
                        }
                        c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
                        if (c < 0)
                                continue;
                        if (fork() == 0)
                                serve_connection(c);
                        close(c);
                }
        }
}

static unsigned parse_port(const char *s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);

        if (!*s || *end || v == 0 || v > 65535) {
                fprintf(stderr, "bad port '%s'\n", s);
                exit(ERROR);
        }
        return (unsigned) v;
}

static int do_churn(int argc, char **argv, long rounds) {
        const char **a = (const char **) argv, **b = NULL;
        size_t na = 0, nb = 0;
        struct errmsg e = {};
        uint64_t start;

        for (int i = 0; i < argc; i++)
                if (streq(argv[i], "then")) {
                        na = (size_t) i;
                        b = (const char **) argv + i + 1;
                        nb = (size_t) (argc - i - 1);
                }
        if (!b) {
                fprintf(stderr, "churn: two node lists separated by 'then'\n");
                return ERROR;
        }
        start = now_ms();
        for (long i = 0; i < rounds; i++) {
                int r = i % 2 ? firewall_update_nodes(b, nb, &e) : firewall_update_nodes(a, na, &e);
                if (r < 0) {
                        fprintf(stderr, "churn: %s\n", errmsg_str(&e));
                        return ERROR;
                }
        }
        printf("%.0f updates/s\n", (double) rounds * 1000.0 / (double) (now_ms() - start + 1));
        return 0;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "mesh", required_argument, NULL, 'm' },    { "wg-port", required_argument, NULL, 'w' },
                { "tcp-port", required_argument, NULL, 'p' }, { "tcp", required_argument, NULL, 't' },
                { "udp", required_argument, NULL, 'u' },     { "from", required_argument, NULL, 'f' },
                { "sport", required_argument, NULL, 's' },   { "timeout", required_argument, NULL, 'T' },
                { "go", required_argument, NULL, 'g' },      { "ms", required_argument, NULL, 'M' },
                { "rounds", required_argument, NULL, 'r' },  {},
        };
        struct firewall_config cfg;
        struct errmsg e = {};
        unsigned tcp[32], udp[32];
        size_t n_tcp = 0, n_udp = 0;
        const char *from = NULL, *go = NULL, *verb;
        unsigned sport = 0;
        int timeout_ms = 1000, ms = 1000, c, r;
        long rounds = 100;
        bool ports_given = false;

        if (argc < 2) {
                fprintf(stderr, "usage: arca-fwtest apply|update|remove|render|churn|serve|tcp|udp|hold|udpflood ...\n");
                return ERROR;
        }
        verb = argv[1];
        optind = 2;
        firewall_config_default(&cfg);
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'm': cfg.mesh_interface = optarg; break;
                case 'w': cfg.wireguard_port = (uint16_t) parse_port(optarg); break;
                case 'p':
                        if (!ports_given)
                                cfg.n_tcp_ports = 0, ports_given = true;
                        if (cfg.n_tcp_ports >= FIREWALL_TCP_PORTS_MAX)
                                return ERROR;
                        cfg.tcp_ports[cfg.n_tcp_ports++] = (uint16_t) parse_port(optarg);
                        break;
                case 't': if (n_tcp < ELEMENTSOF(tcp)) tcp[n_tcp++] = parse_port(optarg); break;
                case 'u': if (n_udp < ELEMENTSOF(udp)) udp[n_udp++] = parse_port(optarg); break;
                case 'f': from = optarg; break;
                case 's': sport = parse_port(optarg); break;
                case 'T': timeout_ms = atoi(optarg); break;
                case 'g': go = optarg; break;
                case 'M': ms = atoi(optarg); break;
                case 'r': rounds = atol(optarg); break;
                default: return ERROR;
                }
        argc -= optind;
        argv += optind;

        if (streq(verb, "apply") || streq(verb, "render")) {
                _cleanup_free_ char *script = NULL;
                cfg.nodes = (const char *const *) argv;
                cfg.n_nodes = (size_t) argc;
                r = streq(verb, "apply") ? firewall_apply(&cfg, &e) : firewall_render(&cfg, &script, &e);
                if (r >= 0 && script)
                        fputs(script, stdout);
        } else if (streq(verb, "update"))
                r = firewall_update_nodes((const char *const *) argv, (size_t) argc, &e);
        else if (streq(verb, "remove"))
                r = firewall_remove(&e);
        else if (streq(verb, "churn"))
                return do_churn(argc, argv, rounds);
        else if (streq(verb, "serve"))
                return do_serve(tcp, n_tcp, udp, n_udp, argc > 0 ? argv[0] : NULL);
        else if (argc != 2) {
                fprintf(stderr, "%s: ADDR PORT\n", verb);
                return ERROR;
        } else if (streq(verb, "tcp"))
                return do_tcp(argv[0], parse_port(argv[1]), from, timeout_ms);
        else if (streq(verb, "udp"))
                return do_udp(argv[0], parse_port(argv[1]), from, sport, timeout_ms);
        else if (streq(verb, "hold") && go)
                return do_hold(argv[0], parse_port(argv[1]), go, timeout_ms);
        else if (streq(verb, "udpflood"))
                return do_udpflood(argv[0], parse_port(argv[1]), from, go, ms);
        else {
                fprintf(stderr, "unknown verb '%s'\n", verb);
                return ERROR;
        }
        if (r < 0) {
                fprintf(stderr, "%s: %s (%s)\n", verb, errmsg_str(&e), strerror(-r));
                return -r == ENOENT ? 5 : -r == EINVAL ? 6 : -r == EPERM ? 8 : -r == ENOPKG ? 9 : 7;
        }
        return 0;
}
