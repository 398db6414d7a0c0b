/* SPDX-License-Identifier: Apache-2.0 */
/* arca-wgnode: lib/wireguard on its own, for tests/integration/test-mesh.sh.
 *
 *   arca-wgnode genkey
 *       prints "<private hex> <public base64>"
 *   arca-wgnode up IFNAME PRIVATE_HEX ADDRESS/PREFIX PEERS_FILE [BACKEND]
 *       makes the device, applies PEERS_FILE (lines "KEY_B64 ENDPOINT
 *       ALLOWED_IP"), prints "READY <backend>"; on SIGHUP re-reads the file
 *       and syncs ("SYNCED upserted=N removed=M"); on SIGTERM deletes the
 *       device and exits
 *   arca-wgnode get IFNAME
 *       UAPI get: "listen_port N" and one line per peer:
 *       "peer KEY_B64 endpoint=E handshake=SEC.NSEC rx=N tx=N allowed=A,B" */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "encoding.h"
#include "secret.h"
#include "wgkey.h"
#include "wireguard.h"

static volatile sig_atomic_t got_hup, got_term;

static void on_signal(int sig) {
        if (sig == SIGHUP)
                got_hup = 1;
        else
                got_term = 1;
}

static int read_peers(const char *path, struct wg_peer **ret, size_t *ret_n) {
        FILE *f = fopen(path, "re");
        struct wg_peer *peers = calloc(WG_MAX_PEERS, sizeof(*peers));
        char line[512];
        size_t n = 0;

        if (!f || !peers) {
                if (f)
                        fclose(f);
                free(peers);
                return -errno;
        }
        while (fgets(line, sizeof(line), f) && n < WG_MAX_PEERS) {
                char k[64], ep[ENDPOINT_MAX], ip[CIDR_MAX];
                uint8_t *raw = NULL;
                size_t raw_n = 0;

                if (sscanf(line, "%63s %63s %43s", k, ep, ip) != 3)
                        continue;
                if (base64_decode(k, strlen(k), &raw, &raw_n) < 0 || raw_n != WG_KEY_SIZE) {
                        free(raw);
                        fprintf(stderr, "arca-wgnode: bad key %s\n", k);
                        continue;
                }
                peers[n] = (struct wg_peer){ .keepalive = WG_KEEPALIVE_DEFAULT };
                memcpy(peers[n].public_key, raw, WG_KEY_SIZE);
                free(raw);
                snprintf(peers[n].endpoint, sizeof(peers[n].endpoint), "%s", ep);
                snprintf(peers[n].allowed_ip, sizeof(peers[n].allowed_ip), "%s", ip);
                n++;
        }
        fclose(f);
        *ret = peers;
        *ret_n = n;
        return 0;
}

static int sync_file(struct wg_device *d, const char *path) {
        struct wg_peer *peers = NULL;
        size_t n = 0, up = 0, rm = 0;
        struct errmsg e = {};
        int r;

        r = read_peers(path, &peers, &n);
        if (r < 0) {
                fprintf(stderr, "arca-wgnode: cannot read %s: %s\n", path, strerror(-r));
                return r;
        }
        r = wg_device_sync_peers(d, peers, n, &up, &rm, &e);
        free(peers);
        if (r < 0) {
                fprintf(stderr, "arca-wgnode: sync failed: %s\n", errmsg_str(&e));
                return r;
        }
        printf("SYNCED upserted=%zu removed=%zu\n", up, rm);
        fflush(stdout);
        return 0;
}

static int cmd_up(int argc, char **argv) {
        struct wg_options o = { .ifname = argv[2], .backend = WG_BACKEND_USERSPACE, .log_path = "/dev/stderr" };
        struct wg_device *d = NULL;
        struct errmsg e = {};
        uint8_t priv[WG_KEY_SIZE];
        char addr[ADDRESS_MAX], *slash;
        sigset_t mask, old;
        int r;

        if (argc > 6 && wg_backend_from_string(argv[6], &o.backend) < 0)
                return 2;
        if (hex_decode_exact(argv[3], priv, sizeof(priv)) < 0 || strlen(argv[4]) >= sizeof(addr))
                return 2;
        snprintf(addr, sizeof(addr), "%s", argv[4]);
        slash = strchr(addr, '/');
        if (!slash)
                return 2;
        *slash = 0;
        signal(SIGHUP, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        r = wg_device_new(&o, &d, &e);
        if (r >= 0)
                r = wg_device_set_key(d, priv, 51820, &e);
        secret_wipe(priv, sizeof(priv));
        if (r >= 0)
                r = wg_device_set_address(d, addr, (unsigned) atoi(slash + 1), &e);
        if (r < 0) {
                fprintf(stderr, "arca-wgnode: %s\n", errmsg_str(&e));
                wg_device_destroy(d);
                return 1;
        }
        if (sync_file(d, argv[5]) < 0) {
                wg_device_destroy(d);
                return 1;
        }
        printf("READY %s\n", wg_device_backend(d));
        fflush(stdout);
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, &old);
        while (!got_term) {
                if (got_hup) {
                        got_hup = 0;
                        sigprocmask(SIG_SETMASK, &old, NULL);
                        (void) sync_file(d, argv[5]);
                        sigprocmask(SIG_BLOCK, &mask, NULL);
                        continue;
                }
                sigsuspend(&old);
        }
        wg_device_destroy(d);
        return 0;
}

static int cmd_get(const char *ifname) {
        struct wg_status st = {};
        struct errmsg e = {};
        int r;

        r = wg_uapi_get(NULL, ifname, &st, &e);
        if (r < 0) {
                fprintf(stderr, "arca-wgnode: %s\n", errmsg_str(&e));
                return 1;
        }
        printf("listen_port %u\n", st.listen_port);
        for (size_t i = 0; i < st.n_peers; i++) {
                const struct wg_peer_status *p = &st.peers[i];
                char k[WG_KEY_B64_SIZE + 1];
                EVP_EncodeBlock((unsigned char *) k, p->public_key, WG_KEY_SIZE);
                printf("peer %s endpoint=%s handshake=%lld.%09lld rx=%llu tx=%llu allowed=", k,
                       p->endpoint[0] ? p->endpoint : "-", (long long) p->last_handshake_sec,
                       (long long) p->last_handshake_nsec, (unsigned long long) p->rx_bytes,
                       (unsigned long long) p->tx_bytes);
                for (size_t j = 0; j < p->n_allowed_ips; j++)
                        printf("%s%s", j ? "," : "", p->allowed_ips[j]);
                printf("\n");
        }
        wg_status_done(&st);
        return 0;
}

int main(int argc, char **argv) {
        if (argc == 2 && strcmp(argv[1], "genkey") == 0) {
                uint8_t priv[WG_KEY_SIZE];
                char pub[WG_KEY_B64_SIZE], hex[2 * WG_KEY_SIZE + 1];
                if (wg_keypair_generate(priv, pub) < 0)
                        return 1;
                hex_encode_buf(priv, WG_KEY_SIZE, hex);
                printf("%s %s\n", hex, pub);
                return 0;
        }
        if (argc >= 6 && strcmp(argv[1], "up") == 0)
                return cmd_up(argc, argv);
        if (argc == 3 && strcmp(argv[1], "get") == 0)
                return cmd_get(argv[2]);
        fprintf(stderr, "usage: arca-wgnode genkey | up IFNAME PRIVHEX ADDR/PFX PEERSFILE [BACKEND] | get IFNAME\n");
        return 2;
}
