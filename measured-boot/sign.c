/* SPDX-License-Identifier: Apache-2.0 */
/* arca-measure sign --key KEY.pem [--output SIG] POLICY
 * arca-measure verify --pubkey PUB.pem [--signature SIG] POLICY */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "measure.h"
#include "openssl-util.h"
#include "policy.h"

/* policy_verify_signature() applies the real bound (an ECDSA signature is ~72 bytes). */
#define SIG_FILE_MAX_SIZE 4096u

static void help_sign(void) {
        printf("Usage: arca-measure sign --key KEY.pem [--output SIG] POLICY\n\n"
               "Sign a measurement policy file as it is, byte for byte: a detached ECDSA P-256\n"
               "signature (DER) over SHA-256 of the file, written to SIG (default POLICY.sig).\n"
               "The same as `openssl dgst -sha256 -sign KEY.pem -out SIG POLICY`, so that\n"
               "`openssl dgst -sha256 -verify PUB.pem -signature SIG POLICY` accepts it.\n"
               "The file must be a valid policy: nothing else gets signed.\n\n"
               "  --key KEY.pem        the owner's P-256 private key (PEM)\n"
               "  -o, --output SIG     where to write the signature\n");
}

static void help_verify(void) {
        printf("Usage: arca-measure verify --pubkey PUB.pem [--signature SIG] POLICY\n\n"
               "Check the detached signature of a measurement policy (default SIG: POLICY.sig)\n"
               "against the owner's ECDSA P-256 public key, then that the file is a valid policy.\n"
               "Exit status 0 only when both hold.\n");
}

static int read_policy(const char *path, char **ret, size_t *ret_size, struct policy *ret_policy) {
        struct errmsg e = {};
        int r;

        r = read_full_file(path, POLICY_MAX_SIZE, ret, ret_size);
        if (r == -EFBIG)
                return log_error_errno(r, "\"%s\" is larger than a policy can be (%u bytes).", path, POLICY_MAX_SIZE);
        if (r < 0)
                return log_error_errno(r, "Cannot read \"%s\": %m", path);
        r = policy_parse(*ret, *ret_size, ret_policy, &e);
        if (r < 0)
                return log_error_errno(r, "\"%s\" is not a valid measurement policy: %s", path, errmsg_str(&e));
        return 0;
}

int verb_sign(int argc, char **argv) {
        static const struct option opts[] = {
                { "key", required_argument, NULL, 'k' },
                { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ char *buf = NULL, *default_out = NULL;
        _cleanup_free_ uint8_t *sig = NULL;
        const char *key_path = NULL, *out = NULL;
        struct policy pol;
        size_t n, sig_len;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "k:o:h", opts, NULL)) >= 0)
                switch (c) {
                case 'k':
                        key_path = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'h':
                        help_sign();
                        return 0;
                default:
                        return 2;
                }
        if (!key_path || optind + 1 != argc) {
                log_error("arca-measure sign needs --key and one POLICY (see --help).");
                return 2;
        }
        if (!out) {
                if (asprintf(&default_out, "%s.sig", argv[optind]) < 0)
                        return log_oom(), 1;
                out = default_out;
        }
        if (read_policy(argv[optind], &buf, &n, &pol) < 0)
                return 1;
        r = pem_read_privkey_file(key_path, &key);
        if (r < 0) {
                log_error_errno(r, "Cannot read the private key \"%s\": %s", key_path,
                                r == -EBADMSG ? "not a PEM private key" : strerror(-r));
                return 1;
        }
        r = policy_sign(buf, n, key, &sig, &sig_len);
        if (r < 0) {
                log_error_errno(r, "Cannot sign with \"%s\" (an ECDSA P-256 key is needed): %m", key_path);
                return 1;
        }
        r = write_file_atomic(out, sig, sig_len, 0644);
        if (r < 0) {
                log_error_errno(r, "Cannot write \"%s\": %m", out);
                return 1;
        }
        return 0;
}

int verb_verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "pubkey", required_argument, NULL, 'p' },
                { "signature", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ char *buf = NULL, *sig = NULL, *default_sig = NULL;
        const char *key_path = NULL, *sig_path = NULL;
        struct errmsg e = {};
        struct policy pol;
        size_t n, sig_len;
        unsigned enforced = 0, warn = 0;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "p:s:h", opts, NULL)) >= 0)
                switch (c) {
                case 'p':
                        key_path = optarg;
                        break;
                case 's':
                        sig_path = optarg;
                        break;
                case 'h':
                        help_verify();
                        return 0;
                default:
                        return 2;
                }
        if (!key_path || optind + 1 != argc) {
                log_error("arca-measure verify needs --pubkey and one POLICY (see --help).");
                return 2;
        }
        if (!sig_path) {
                if (asprintf(&default_sig, "%s.sig", argv[optind]) < 0)
                        return log_oom(), 1;
                sig_path = default_sig;
        }
        r = read_full_file(argv[optind], POLICY_MAX_SIZE, &buf, &n);
        if (r < 0) {
                log_error_errno(r, "Cannot read \"%s\": %m", argv[optind]);
                return 1;
        }
        r = read_full_file(sig_path, SIG_FILE_MAX_SIZE, &sig, &sig_len);
        if (r < 0) {
                log_error_errno(r, "Cannot read the signature \"%s\": %s", sig_path,
                                r == -EFBIG ? "too large for an ECDSA signature" : strerror(-r));
                return 1;
        }
        r = pem_read_pubkey_file(key_path, &key);
        if (r < 0) {
                log_error_errno(r, "Cannot read the public key \"%s\": %s", key_path,
                                r == -EBADMSG ? "not a PEM public key" : strerror(-r));
                return 1;
        }
        r = policy_verify_signature(buf, n, sig, sig_len, key, &e);
        if (r < 0) {
                log_error("\"%s\": signature \"%s\" REFUSED: %s", argv[optind], sig_path, errmsg_str(&e));
                return 1;
        }
        r = policy_parse(buf, n, &pol, &e);
        if (r < 0) {
                log_error("\"%s\": the signature verifies, but the file is not a valid policy: %s", argv[optind],
                          errmsg_str(&e));
                return 1;
        }
        for (unsigned i = 0; i < POLICY_PCR_COUNT; i++)
                if (pol.pcr[i].set && pol.pcr[i].warn_only)
                        warn++;
                else if (pol.pcr[i].set)
                        enforced++;
        printf("%s: signature OK (%u enforced PCRs, %u warn-only)\n", argv[optind], enforced, warn);
        return 0;
}
