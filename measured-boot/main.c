/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure: PE/Authenticode hashes, UKI tools, PCR prediction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "measure.h"

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *help;
} verbs[] = {
        { "pe-hash", verb_pe_hash, "print the Authenticode image hash of PE files" },
        { "uki", verb_uki, "list, extract or assemble the sections of a unified kernel image" },
        { "predict", verb_predict, "predict the PCRs of booting a UKI and write a measurement policy" },
        { "log", verb_log, "print and replay a TPM event log; explain where it departs from a policy" },
        { "sign", verb_sign, "sign a measurement policy (detached ECDSA P-256, openssl dgst compatible)" },
        { "verify", verb_verify, "verify a measurement policy's detached signature" },
};

int measure_load_pe(const char *path, uint8_t **ret_data, size_t *ret_size, struct pe_image **ret_pe) {
        _cleanup_free_ struct pe_image *pe = NULL;
        _cleanup_free_ char *data = NULL;
        struct errmsg e = {};
        size_t size;
        int r;

        r = read_full_file(path, MEASURE_MAX_IMAGE_SIZE, &data, &size);
        if (r < 0)
                return log_error_errno(r, "Cannot read \"%s\": %m", path);
        pe = malloc(sizeof(*pe));
        if (!pe)
                return log_oom();
        r = pe_parse(data, size, pe, &e);
        if (r < 0)
                return log_error_errno(r, "\"%s\" is not a valid PE image: %s", path, errmsg_str(&e));
        *ret_data = (uint8_t *) TAKE_PTR(data);
        *ret_size = size;
        *ret_pe = TAKE_PTR(pe);
        return 0;
}

static void help(void) {
        printf("Usage: arca-measure COMMAND [OPTIONS]\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                printf("  %-10s %s\n", verbs[i].name, verbs[i].help);
        printf("\nRun 'arca-measure COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
        log_setup("arca-measure");
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
        log_error("Unknown command \"%s\". Run 'arca-measure --help'.", argv[1]);
        return 2;
}
