/* SPDX-License-Identifier: Apache-2.0 */
/* arca: the cluster owner's CLI. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *help;
} verbs[] = {
        { "config", verb_config, "generate a cluster configuration and the owner's secrets" },
        { "verify", verb_verify, "verify a node's attestation and print its PCRs" },
        { "platform", verb_platform, "play the platform of qemu-vtpm: platform CA, AK provisioning" },
};

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
