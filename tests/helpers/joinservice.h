/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Test helper: the real arca-join-service binary on loopback, as a
 * control-plane node runs it: a state directory holding the node state
 * (the registry's etcd, the mesh CIDR, the cluster ID), the master secret
 * and the owner's policy; its own TPM (a swtpm's TCTI) and the platform
 * CA. It logs to a file, appended across restarts. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keys.h"

struct policy;
struct tpm_ctx;

struct test_join_service {
        pid_t pid;
        unsigned port;     /* once started */
        char state[300];   /* <dir>/state */
        char log[300];     /* <dir>/join-service.log */
        size_t log_start;  /* where the current run's log begins */
};

/* Write the state directory under dir for a control-plane node of
 * cluster_id (mesh_address in cidr) with this master secret and salt and
 * policy, whose registry is the etcd at `registry`. 0 or a negative
 * errno. */
int test_join_service_prepare(struct test_join_service *js, const char *dir, const char *registry,
                              const char *cidr, const char *mesh_address, const struct policy *p,
                              const uint8_t master_secret[KEY_SIZE], const uint8_t master_salt[KEY_SIZE],
                              const uint8_t cluster_id[KEY_SIZE]);
/* Start it on 127.0.0.1 and a free port with `tcti` and the platform CA,
 * plus NULL-terminated extra arguments (or NULL); wait up to 6 s until it
 * says READY. 0, -ENOENT when the binary is not built, -ETIMEDOUT. */
int test_join_service_start(struct test_join_service *js, const char *tcti, const char *platform_ca,
                            const char *const *extra);
/* SIGTERM and wait; safe when not running. */
void test_join_service_stop(struct test_join_service *js);
/* Whether its log (all runs) has `needle`. */
bool test_join_service_log_has(const struct test_join_service *js, const char *needle);

/* Boot-like measurements into PCRs 4, 9 and 11, the same on every TPM, so
 * that "same image" checks compare non-zero values. 0 or a negative errno. */
int test_measure_boot(struct tpm_ctx *tpm);
