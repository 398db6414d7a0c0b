/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Test helper: a private swtpm per test (own state directory and ports),
 * optionally provisioned as a qemu-vtpm platform would (AK + certificate
 * from a platform CA of the test's own). */

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <sys/types.h>

struct test_swtpm {
        pid_t pid;
        unsigned port;
        char dir[256];
        char tcti[96];
};

/* Start swtpm; returns 0, or -ENOENT when swtpm is not installed (the
 * caller skips the test naming what is missing). */
int test_swtpm_start(struct test_swtpm *t);
void test_swtpm_stop(struct test_swtpm *t);

/* A platform CA (key + cert) made once per process. */
struct test_platform {
        EVP_PKEY *ca_key;
        X509 *ca_cert;
        X509_STORE *roots;
        char ca_pem[256]; /* CA certificate written to a file */
};
int test_platform_new(struct test_platform *p);
void test_platform_done(struct test_platform *p);
/* Create and certify the AK on t. */
int test_platform_provision(struct test_platform *p, struct test_swtpm *t);

/* Directory containing the built binaries (ARCA_BUILD_DIR, else ./build). */
const char *test_build_dir(void);
/* A fresh temporary directory under /tmp. */
int test_tmpdir(char *buf, size_t size);
