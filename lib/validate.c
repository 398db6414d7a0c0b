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

bool valid_address(const char *s) {
        uint8_t buf[16];

        return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

bool valid_endpoint(const char *s) {
        char host[ENDPOINT_MAX];
        const char *colon;
        char *end;
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
                if (inet_pton(AF_INET6, host, (uint8_t[16]){}) != 1)
                        return false;
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || strchr(s, ':') != colon)
                        return false;
                hl = (size_t) (colon - s);
                memcpy(host, s, hl);
                host[hl] = 0;
                if (inet_pton(AF_INET, host, (uint8_t[4]){}) != 1 && !valid_node_name(host))
                        return false;
        }
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        return !errno && *end == 0 && end != colon + 1 && colon[1] != '+' && colon[1] != '-' && port > 0 &&
               port <= 65535;
}

bool valid_cidr4(const char *s) {
        char addr[16];
        const char *slash;
        struct in_addr a;
        char *end;
        long bits;
        uint32_t host;

        if (!s || !(slash = strchr(s, '/')) || (size_t) (slash - s) >= sizeof(addr))
                return false;
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = 0;
        if (inet_pton(AF_INET, addr, &a) != 1)
                return false;
        errno = 0;
        bits = strtol(slash + 1, &end, 10);
        if (errno || *end || end == slash + 1 || slash[1] == '+' || slash[1] == '-' || bits < 0 || bits > 32)
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
