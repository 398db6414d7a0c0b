/* SPDX-License-Identifier: Apache-2.0 */
#include "validate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"

bool valid_node_name(const char *s) {
        size_t n;

        if (!s || (n = strlen(s)) == 0 || n > NODE_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (!alnum && ((c != '-' && c != '.') || i == 0 || i == n - 1))
                        return false;
        }
        return true;
}

bool valid_uuid(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                char c = s[i];
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return false;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                        return false;
        }
        return true;
}

/* Canonical text only (what inet_ntop prints), so that one address has one
 * spelling in the registry and in certificates. */
static bool canonical_address(int family, const char *s) {
        uint8_t buf[16];
        char back[INET6_ADDRSTRLEN];

        return inet_pton(family, s, buf) == 1 && inet_ntop(family, buf, back, sizeof(back)) && streq(back, s);
}

bool valid_address(const char *s) {
        return s && (canonical_address(AF_INET, s) || canonical_address(AF_INET6, s));
}

/* Decimal digits only, no sign, space or leading zero, at most max. */
static bool parse_decimal(const char *s, long max, long *ret) {
        long v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                v = v * 10 + (*s - '0');
                if (v > max)
                        return false;
        }
        *ret = v;
        return true;
}

bool valid_endpoint(const char *s) {
        char host[ENDPOINT_MAX];
        const char *colon;
        long port;
        size_t hl;

        if (!s || strlen(s) >= ENDPOINT_MAX)
                return false;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return false;
                hl = (size_t) (close - s - 1);
                memcpy(host, s + 1, hl);
                host[hl] = 0;
                if (!canonical_address(AF_INET6, host))
                        return false;
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || strchr(s, ':') != colon)
                        return false;
                hl = (size_t) (colon - s);
                memcpy(host, s, hl);
                host[hl] = 0;
                if (!canonical_address(AF_INET, host) && !valid_node_name(host))
                        return false;
        }
        return parse_decimal(colon + 1, 65535, &port) && port > 0;
}

bool valid_cidr4(const char *s) {
        char addr[16];
        const char *slash;
        struct in_addr a;
        long bits;
        uint32_t host;

        if (!s || !(slash = strchr(s, '/')) || (size_t) (slash - s) >= sizeof(addr))
                return false;
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        if (!canonical_address(AF_INET, addr) || inet_pton(AF_INET, addr, &a) != 1)
                return false;
        if (!parse_decimal(slash + 1, 32, &bits))
                return false;
        host = bits == 32 ? 0 : (UINT32_MAX >> bits);
        return (ntohl(a.s_addr) & host) == 0;
}

bool valid_wg_key(const char *s) {
        uint8_t *d = NULL;
        size_t n;
        bool ok;

        if (!s || strlen(s) != 44)
                return false;
        ok = base64_decode(s, 44, &d, &n) == 0 && n == 32;
        free(d);
        return ok;
}

bool valid_role(const char *s) {
        return s && (streq(s, "control-plane") || streq(s, "worker"));
}
