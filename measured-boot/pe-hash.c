/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure pe-hash [--algorithm sha256] FILE... */
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "authenticode.h"
#include "encoding.h"
#include "log.h"
#include "macro.h"
#include "measure.h"

static void help(void) {
        printf("Usage: arca-measure pe-hash [--algorithm ALG] FILE...\n\n"
               "Print the Authenticode image hash of each PE/COFF file (the digest that a\n"
               "signature covers and that firmware measures into PCR 4), as \"HEX  FILE\".\n\n"
               "  -a, --algorithm ALG  sha256 (default), sha1, sha384 or sha512\n");
}

int verb_pe_hash(int argc, char **argv) {
        static const struct option opts[] = {
                { "algorithm", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *alg = "sha256";
        const EVP_MD *md;
        int c, ret = 0;

        optind = 0;
        while ((c = getopt_long(argc, argv, "a:h", opts, NULL)) >= 0)
                switch (c) {
                case 'a':
                        alg = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (streq(alg, "sha256"))
                md = EVP_sha256();
        else if (streq(alg, "sha1"))
                md = EVP_sha1();
        else if (streq(alg, "sha384"))
                md = EVP_sha384();
        else if (streq(alg, "sha512"))
                md = EVP_sha512();
        else {
                log_error("Unknown algorithm \"%s\": use sha256, sha1, sha384 or sha512.", alg);
                return 2;
        }
        if (optind >= argc) {
                log_error("arca-measure pe-hash needs at least one FILE (see --help).");
                return 2;
        }

        for (int i = optind; i < argc; i++) {
                _cleanup_free_ struct pe_image *pe = NULL;
                _cleanup_free_ uint8_t *data = NULL;
                uint8_t digest[EVP_MAX_MD_SIZE];
                char hex[2 * EVP_MAX_MD_SIZE + 1];
                struct errmsg e = {};
                size_t size;

                if (measure_load_pe(argv[i], &data, &size, &pe) < 0) {
                        ret = 1;
                        continue;
                }
                if (authenticode_digest(pe, md, digest, &e) < 0) {
                        log_error("Cannot hash \"%s\": %s", argv[i], errmsg_str(&e));
                        ret = 1;
                        continue;
                }
                hex_encode_buf(digest, (size_t) EVP_MD_get_size(md), hex);
                printf("%s  %s\n", hex, argv[i]);
        }
        return ret;
}
