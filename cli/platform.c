/* SPDX-License-Identifier: Apache-2.0 */
/* arca platform create-ca --dir DIR
 * arca platform provision --ca-dir DIR [--tcti CONF] [--ak-handle HEX]
 *
 * What a cloud does for its vTPMs, for variant qemu-vtpm: keep a platform
 * CA, create each VM's attestation key and certify it into NV. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli.h"
#include "log.h"
#include "openssl-util.h"
#include "platform.h"
#include "tpm.h"

static void help(void) {
        printf("Usage: arca platform create-ca --dir DIR\n"
               "       arca platform provision --ca-dir DIR [--tcti CONF] [--ak-handle HEX]\n\n"
               "create-ca writes DIR/platform-ca.key (0600) and DIR/platform-ca.pem.\n"
               "provision creates the attestation key on the TPM reached through --tcti\n"
               "(default $ARCA_TCTI), certifies it with the platform CA and writes the\n"
               "certificate to NV index 0x%08x.\n",
               TPM_AK_CERT_NV_INDEX);
}

static int ca_paths(const char *dir, char **ret_key, char **ret_cert) {
        if (asprintf(ret_key, "%s/platform-ca.key", dir) < 0)
                return -ENOMEM;
        if (asprintf(ret_cert, "%s/platform-ca.pem", dir) < 0) {
                free(*ret_key);
                return -ENOMEM;
        }
        return 0;
}

static int create_ca(const char *dir) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        struct errmsg e = {};
        struct stat st;
        int r;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create %s: %m", dir);
        if (ca_paths(dir, &kp, &cp) < 0)
                return log_oom();
        if (stat(kp, &st) == 0)
                return log_error_errno(EEXIST, "%s exists already; refusing to replace a platform CA.", kp);
        r = platform_ca_create("arca platform CA", 3650, &key, &cert, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot create platform CA: %s", errmsg_str(&e));
        r = pem_write_privkey_file(kp, key);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", kp);
        r = pem_write_x509_file(cp, cert);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", cp);
        printf("Platform CA written to %s and %s\n", kp, cp);
        return 0;
}

static int provision(const char *dir, const char *tcti, uint32_t ak_handle) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ char *kp = NULL, *cp = NULL;
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        struct errmsg e = {};
        int r;

        if (ca_paths(dir, &kp, &cp) < 0)
                return log_oom();
        r = pem_read_privkey_file(kp, &key);
        if (r < 0)
                return log_error_errno(r, "Cannot read platform CA key %s: %s", kp,
                                       r == -EBADMSG ? "not a PEM private key" : strerror(-r));
        r = pem_read_x509_file(cp, &cert);
        if (r < 0)
                return log_error_errno(r, "Cannot read platform CA certificate %s: %s", cp,
                                       r == -EBADMSG ? "not a PEM certificate" : strerror(-r));
        r = tpm_open(tcti, &tpm, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot open TPM: %s", errmsg_str(&e));
        r = platform_provision_ak(tpm, ak_handle, key, cert, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot provision the attestation key: %s", errmsg_str(&e));
        printf("AK 0x%08x certified; certificate in NV 0x%08x\n", ak_handle, TPM_AK_CERT_NV_INDEX);
        return 0;
}

int verb_platform(int argc, char **argv) {
        static const struct option opts[] = {
                { "dir", required_argument, NULL, 'd' },
                { "ca-dir", required_argument, NULL, 'd' },
                { "tcti", required_argument, NULL, 't' },
                { "ak-handle", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *dir = NULL, *tcti = NULL, *sub;
        uint32_t ak = TPM_AK_HANDLE;
        int c;

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h")) {
                help();
                return argc < 2 ? 2 : 0;
        }
        sub = argv[1];
        optind = 0;
        while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) >= 0)
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 't':
                        tcti = optarg;
                        break;
                case 'a':
                        if (tpm_parse_persistent_handle(optarg, &ak) < 0) {
                                log_error("Invalid --ak-handle \"%s\": expected 0x81xxxxxx.", optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        if (!dir) {
                log_error("arca platform %s needs --dir/--ca-dir.", sub);
                return 2;
        }
        if (streq(sub, "create-ca"))
                return create_ca(dir) < 0 ? 1 : 0;
        if (streq(sub, "provision"))
                return provision(dir, tcti, ak) < 0 ? 1 : 0;
        log_error("Unknown platform command \"%s\".", sub);
        return 2;
}
