/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Test helper: a private single-member etcd-server (its own data directory
 * in a temporary directory, free loopback ports), started and waited for
 * until healthy, stopped and removed afterwards. Optionally with TLS and
 * client-certificate authentication (certificates made with the openssl
 * command line into the same directory). */

#include <stdbool.h>
#include <sys/types.h>

#define TEST_ETCD_BINARY "/usr/bin/etcd"
#define TEST_ETCD_MISSING "etcd-server is not installed (" TEST_ETCD_BINARY ", package etcd-server)"

struct test_etcd {
        pid_t pid;
        unsigned client_port;
        unsigned peer_port;
        bool tls;
        char dir[256];
        char endpoint[64]; /* "http://127.0.0.1:PORT" or "https://..." */
        /* With tls: the CA that signed the server and the client certificate. */
        char ca_file[300];
        char cert_file[300];
        char key_file[300];
};

/* Start etcd; returns 0, or -ENOENT when etcd-server is not installed (the
 * caller skips the test with TEST_ETCD_MISSING). */
int test_etcd_start(struct test_etcd *t);
/* The same over https, requiring a client certificate (ca/cert/key_file). */
int test_etcd_start_tls(struct test_etcd *t);
/* Stop the server (keeps the directory, so that it can be restarted). */
void test_etcd_kill(struct test_etcd *t);
/* Stop and remove everything. Safe on a never-started or stopped t. */
void test_etcd_stop(struct test_etcd *t);
/* A loopback port nothing listens on (for "unreachable endpoint" tests). */
unsigned test_etcd_unused_port(void);
