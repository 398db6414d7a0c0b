/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the firewall's handling of node addresses (they come from the
 * network: peers' WireGuard endpoints). The input is split at newlines into
 * a node list; the first line is the mesh interface name. Whatever the
 * input, a rendered script must contain only the characters the fixed
 * script text and inet_ntop produce, so no input can add an nft command. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "firewall.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Letters, digits, and what the fixed text uses, but no ';', '#', '$',
 * quotes other than the ones around the interface name, or '@' outside the
 * fixed set references. */
static void check_script(const char *s, const char *ifname) {
        size_t ifn = strlen(ifname);

        for (const char *p = s; *p; p++) {
                char c = *p;
                if (c == '"') {
                        /* Only "lo" and "<ifname>" are quoted. */
                        if (strncmp(p + 1, "lo\"", 3) == 0)
                                p += 3;
                        else if (strncmp(p + 1, ifname, ifn) == 0 && p[1 + ifn] == '"')
                                p += 1 + ifn;
                        else
                                abort();
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr(" \t\n.:,{}_-@;=", c)))
                        abort();
                /* ';' only where the fixed text has it. */
                if (c == ';' && (p - s < 6 || (strncmp(p - 6, "filter; policy", 14) != 0 && strncmp(p - 6, "accept;", 7) != 0)))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *script = NULL;
        _cleanup_free_ const char **nodes = NULL;
        struct firewall_config c;
        struct errmsg e = {};
        size_t n = 0;
        char *p;
        int r;

        if (size > 65536)
                return 0;
        text = malloc(size + 1);
        nodes = calloc(size + 1, sizeof(*nodes));
        if (!text || !nodes)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        firewall_config_default(&c);
        p = strchr(text, '\n');
        if (p) {
                *p++ = 0;
                c.mesh_interface = text;
                while (p) {
                        nodes[n++] = p;
                        p = strchr(p, '\n');
                        if (p)
                                *p++ = 0;
                }
        }
        c.nodes = nodes;
        c.n_nodes = n;

        r = firewall_render(&c, &script, &e);
        if (r < 0 && !e.text[0] && r != -ENOMEM)
                abort();
        if (r >= 0)
                check_script(script, c.mesh_interface);
        script = mfree(script);
        memset(&e, 0, sizeof(e));
        r = firewall_render_nodes(nodes, n, &script, &e);
        if (r < 0 && !e.text[0] && r != -ENOMEM)
                abort();
        if (r >= 0)
                check_script(script, "");
        return 0;
}
