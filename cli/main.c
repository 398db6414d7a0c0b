/* SPDX-License-Identifier: Apache-2.0 */
/* arca: the cluster owner's CLI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *help;
} verbs[] = {
        { "config", verb_config, "generate a cluster configuration and the owner's secrets" },
        { "init", verb_init, "verify the first node and initialize the cluster on it" },
        { "verify", verb_verify, "verify a node's attestation and print its PCRs" },
        { "platform", verb_platform, "play the platform of qemu-vtpm: platform CA, AK provisioning" },
        { "mini", verb_mini, "a whole cluster on this machine: mini up, status, verify, down" },
        { "recover", verb_recover, "verify nodes waiting with an initialized disk and unlock them" },
};

int cli_node_url(const char *node, int default_port, const char *path, char **ret) {
        const char *colon = strrchr(node, ':');
        char *end;
        long p;
        int n;

        if (!*node)
                return -EINVAL;
        if (node[0] == '[') {
                const char *close = strchr(node, ']');
                if (!close || (close[1] && close[1] != ':'))
                        return -EINVAL;
                colon = close[1] ? close + 1 : NULL;
        } else if (colon && strchr(node, ':') != colon)
                return -EINVAL; /* a bare IPv6 address needs brackets */
        if (colon) {
                p = strtol(colon + 1, &end, 10);
                if (*end || end == colon + 1 || p <= 0 || p > 65535)
                        return -EINVAL;
                n = asprintf(ret, "https://%s%s", node, path);
        } else
                n = asprintf(ret, "https://%s:%d%s", node, default_port, path);
        return n < 0 ? -ENOMEM : 0;
}

static void help(void) {
        printf("Usage: arca COMMAND [OPTIONS]\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-10s %s\n", verbs[i].name, verbs[i].help);
        printf("\nRun 'arca COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
        log_setup("arca");
        if (argc < 2) {
                help();
                return 2;
        }
        if (streq(argv[1], "-h") || streq(argv[1], "--help") || streq(argv[1], "help")) {
                help();
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[1], verbs[i].name))
                        return verbs[i].run(argc - 1, argv + 1);
        log_error("Unknown command \"%s\". Run 'arca --help'.", argv[1]);
        return 2;
}
