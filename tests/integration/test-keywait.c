/* SPDX-License-Identifier: Apache-2.0 */
/* The disk-mapper's key wait (disk-mapper/keywait.c) on a private swtpm:
 *   - rejoin: a real arca-join-service (its own swtpm, etcd as the
 *     registry) that knows the disk hands the rejoin child the disk key,
 *     which unlocks the wait; one that does not know it refuses, and the
 *     key comes from the owner's recovery instead;
 *   - rejoin requests run in a child process, so a join service that
 *     accepts the connection and never answers does not hold up the
 *     recovery server; a recovery that wins ends the rejoin child at once. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../disk-mapper/keywait.h"
#include "atls-http.h"
#include "attest.h"
#include "disk-recover.h"
#include "etcd.h"
#include "joinservice.h"
#include "keys.h"
#include "macro.h"
#include "policy.h"
#include "registry.h"
#include "secret.h"
#include "swtpm.h"
#include "time-util.h"
#include "tpm.h"

#define DISK_UUID "0b7e6f2a-4c1d-4e8f-9a3b-5c6d7e8f9a0b"

static struct test_swtpm swtpm;
static struct test_platform plat;
static struct tpm_ctx *tpm;
static uint8_t master[KEY_SIZE], salt[KEY_SIZE], disk_key[KEY_SIZE];

static void setup(void) {
        struct errmsg e = {};
        int r;

        setenv("TSS2_LOG", "all+none", 1);
        r = test_swtpm_start(&swtpm);
        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %d", r);
        cr_assert_eq(test_platform_new(&plat), 0);
        cr_assert_eq(test_platform_provision(&plat, &swtpm), 0);
        cr_assert_eq(tpm_open(swtpm.tcti, &tpm, &e), 0, "%s", errmsg_str(&e));
        for (size_t i = 0; i < KEY_SIZE; i++) {
                master[i] = (uint8_t) (0x11 + i);
                salt[i] = (uint8_t) (0x77 ^ i);
        }
        cr_assert_eq(key_disk(master, salt, DISK_UUID, disk_key), 0);
}

static void teardown(void) {
        tpm = tpm_free(tpm);
        test_swtpm_stop(&swtpm);
        test_platform_done(&plat);
}

/* A "join service" that accepts one connection and never answers: the
 * rejoin child's request hangs in the TLS handshake until its timeout. */
struct hang {
        int fd;
        unsigned port;
        pthread_t thread;
        _Atomic double accepted, closed; /* 0 until it happened */
};

static void *hang_main(void *arg) {
        struct hang *h = arg;
        char buf[4096];
        int c = accept(h->fd, NULL, NULL);

        if (c < 0)
                return NULL;
        atomic_store(&h->accepted, now_s());
        while (read(c, buf, sizeof(buf)) > 0)
                ;
        atomic_store(&h->closed, now_s());
        close(c);
        return NULL;
}

static void hang_start(struct hang *h) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);

        h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(h->fd, 0);
        cr_assert_eq(bind(h->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(h->fd, 4), 0);
        cr_assert_eq(getsockname(h->fd, (struct sockaddr *) &sa, &len), 0);
        h->port = ntohs(sa.sin_port);
        cr_assert_eq(pthread_create(&h->thread, NULL, hang_main, h), 0);
}

static double wait_for(_Atomic double *what, double seconds) {
        double deadline = now_s() + seconds, v;

        while ((v = atomic_load(what)) == 0 && now_s() < deadline)
                usleep(10000);
        return v;
}

/* The owner's side: `arca recover` in a thread, once the rejoin child is
 * stuck in its request. */
struct owner {
        uint16_t port;
        struct hang *hang;            /* start once it has a connection */
        struct test_join_service *js; /* or once it refused the rejoin */
        pthread_t thread;
        int result;
        long status;
        double started, answered;
        char error[512];
};

static void *owner_main(void *arg) {
        struct owner *o = arg;
        struct recover_request req = {};
        struct http_response http = {};
        struct verifier *v = NULL;
        struct policy p = {};
        struct atls_config atls;
        struct errmsg e = {};
        char url[64], *body = NULL;

        o->result = -EIO;
        if (o->hang && wait_for(&o->hang->accepted, 20) == 0) {
                snprintf(o->error, sizeof(o->error), "the rejoin child never connected to the join service");
                return NULL;
        }
        for (int k = 0; o->js && !test_join_service_log_has(o->js, "Refused rejoin of unknown disk"); k++)
                if (k == 1000) {
                        snprintf(o->error, sizeof(o->error),
                                 "the join service never refused the rejoin (see %s)", o->js->log);
                        return NULL;
                } else
                        usleep(20000);
        memcpy(req.master_secret, master, KEY_SIZE);
        memcpy(req.master_salt, salt, KEY_SIZE);
        if (verifier_new("qemu-vtpm", &p, plat.roots, &v, &e) < 0 ||
            recover_request_serialize(&req, &body) < 0) {
                snprintf(o->error, sizeof(o->error), "client setup: %s", errmsg_str(&e));
                verifier_free(v);
                return NULL;
        }
        atls = (struct atls_config){ .verifier = v };
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/recover", o->port);
        o->started = now_s();
        o->result = atls_http_request(&atls, url, "POST", body, strlen(body), 30000, &http, &e);
        o->answered = now_s();
        o->status = http.status;
        snprintf(o->error, sizeof(o->error), "%s", errmsg_str(&e));
        http_response_done(&http);
        free(body);
        verifier_free(v);
        return NULL;
}

struct ctx {
        struct owner owner;
        int tries;
        bool accept_any; /* take the first key, so that a wrong one fails the test at once */
        bool wrong_key;
};

static int try_key(void *userdata, const uint8_t key[KEY_SIZE], struct errmsg *e) {
        struct ctx *c = userdata;

        c->tries++;
        if (memcmp(key, disk_key, KEY_SIZE) != 0) {
                c->wrong_key = true;
                if (!c->accept_any)
                        return errmsg_set(e, EPERM, "the key does not open the disk");
        }
        return 0;
}

static void on_ready(void *userdata, uint16_t port) {
        struct ctx *c = userdata;

        c->owner.port = port;
        cr_assert_eq(pthread_create(&c->owner.thread, NULL, owner_main, &c->owner), 0);
}

Test(keywait, recovery_not_held_up_by_a_join_service_that_never_answers, .init = setup, .fini = teardown,
     .timeout = 120) {
        struct hang hang = {};
        struct ctx c = { .owner.hang = &hang };
        char endpoint[32];
        struct keywait_config kc = {
                .tpm = tpm, .tcti = swtpm.tcti, .variant = "qemu-vtpm", .ak_handle = TPM_AK_HANDLE,
                .listen = "127.0.0.1", .port = 0, .n_join = 1, .platform_ca = plat.ca_pem,
                .rejoin_timeout_ms = 30000, .try_key = try_key, .ready = on_ready, .userdata = &c,
        };
        const char *source = NULL;
        struct errmsg e = {};
        double returned;
        int r;

        hang_start(&hang);
        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", hang.port);
        kc.join[0] = endpoint;
        snprintf(kc.disk_uuid, sizeof(kc.disk_uuid), "%s", DISK_UUID);

        r = keywait_run(&kc, &source, &e);
        returned = now_s();
        pthread_join(c.owner.thread, NULL);
        cr_assert_eq(r, 0, "keywait_run: %s", errmsg_str(&e));
        cr_assert_eq(c.owner.result, 0, "recover request failed: %s", c.owner.error);
        cr_assert_eq(c.owner.status, 200, "recover answered %ld", c.owner.status);
        cr_assert_str_eq(source, "recover");
        cr_assert_eq(c.tries, 1, "try_key called %d times", c.tries);
        /* The rejoin request was hanging all the while the owner's request
         * was served: the recovery server did not wait for it. */
        double closed = atomic_load(&hang.closed), accepted = atomic_load(&hang.accepted);
        cr_assert(closed == 0 || closed >= c.owner.started,
                  "the rejoin request ended (%.2f s) before the recovery request started (%.2f s)",
                  closed - accepted, c.owner.started - accepted);
        cr_assert_lt(c.owner.answered - c.owner.started, 5.0, "recovery took %.1f s",
                     c.owner.answered - c.owner.started);
        /* The child is gone with keywait_run: its connection closes at once,
         * not at the 30 s timeout. */
        closed = wait_for(&hang.closed, 5);
        cr_assert_neq(closed, 0, "the rejoin child still holds its connection");
        cr_assert_lt(closed - returned, 2.0, "the connection closed %.1f s after keywait_run returned",
                     closed - returned);
        pthread_join(hang.thread, NULL);
        close(hang.fd);
}

Test(keywait, rejoin_needs_the_platform_ca, .init = setup, .fini = teardown) {
        struct ctx c = {};
        struct keywait_config kc = {
                .tpm = tpm, .tcti = swtpm.tcti, .variant = "qemu-vtpm", .ak_handle = TPM_AK_HANDLE,
                .n_join = 1, .join = { "127.0.0.1:1" }, .try_key = try_key, .userdata = &c,
        };
        const char *source = NULL;
        struct errmsg e = {};

        cr_assert_eq(keywait_run(&kc, &source, &e), -EINVAL);
        cr_assert(strstr(errmsg_str(&e), "platform CA"), "%s", errmsg_str(&e));
}

/* --- rejoin through a real join service ---------------------------------------- */

#define CIDR "10.125.0.0/16"

static struct test_etcd etcd;
static struct test_swtpm js_tpm;
static struct test_join_service js;
static char dir[256];

/* etcd with disk DISK_UUID registered (or not), and the node's cluster's
 * join service on its own swtpm with the master secret and salt the disk
 * key derives from. */
static void setup_join_service(bool register_disk) {
        _cleanup_tpm_ struct tpm_ctx *js_ctx = NULL;
        _cleanup_registry_ struct registry *reg = NULL;
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE], cluster_id[KEY_SIZE];
        const char *eps[1];
        struct registry_config cfg = { .endpoints = eps, .n_endpoints = 1 };
        struct policy pol = {};
        struct errmsg e = {};
        int r;

        setup();
        signal(SIGPIPE, SIG_IGN);
        r = test_etcd_start(&etcd);
        if (r == -ENOENT)
                cr_skip_test(TEST_ETCD_MISSING);
        cr_assert_eq(r, 0, "etcd did not start");
        cr_assert_eq(test_tmpdir(dir, sizeof(dir)), 0);
        r = test_swtpm_start(&js_tpm);
        cr_assert_eq(r, 0, "the join service's swtpm did not start: %d", r);
        cr_assert_eq(test_platform_provision(&plat, &js_tpm), 0);
        cr_assert_eq(tpm_open(js_tpm.tcti, &js_ctx, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(test_measure_boot(js_ctx), 0);
        cr_assert_eq(test_measure_boot(tpm), 0);
        /* The owner's policy: PCRs 0-14 as this image measures them. */
        cr_assert_eq(tpm_pcr_read(js_ctx, pcrs, &e), 0, "%s", errmsg_str(&e));
        for (unsigned i = 0; i < 15; i++) {
                pol.pcr[i].set = true;
                memcpy(pol.pcr[i].expected, pcrs[i], TPM_DIGEST_SIZE);
        }
        cr_assert_eq(secret_random(cluster_id, sizeof(cluster_id)), 0);
        cr_assert_eq(test_join_service_prepare(&js, dir, etcd.endpoint, CIDR, "10.125.0.1", &pol, master,
                                               salt, cluster_id),
                     0);
        eps[0] = etcd.endpoint;
        cr_assert_eq(registry_new(&cfg, &reg, &e), 0, "%s", errmsg_str(&e));
        if (register_disk)
                cr_assert_eq(registry_put_disk(reg, DISK_UUID, "node-r", &e), 0, "%s", errmsg_str(&e));
        r = test_join_service_start(&js, js_tpm.tcti, plat.ca_pem, NULL);
        if (r == -ENOENT)
                cr_skip_test("arca-join-service is not built (make)");
        cr_assert_eq(r, 0, "arca-join-service did not get ready: %s (see %s)", strerror(-r), js.log);
}

static void setup_known_disk(void) {
        setup_join_service(true);
}

static void setup_unknown_disk(void) {
        setup_join_service(false);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
        return remove(p);
}

static void teardown_join_service(void) {
        test_join_service_stop(&js);
        test_swtpm_stop(&js_tpm);
        test_etcd_stop(&etcd);
        if (dir[0] && !getenv("KEEP"))
                nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        teardown();
}

/* What boot 4 of tests/vm/test-disk.sh does in a guest: a rebooted node's
 * disk is unlocked by the key a join service of its cluster hands out. */
Test(keywait, rejoin_gets_the_disk_key_from_a_join_service, .init = setup_known_disk,
     .fini = teardown_join_service, .timeout = 120) {
        struct ctx c = { .accept_any = true };
        char endpoint[32], want[128];
        struct keywait_config kc = {
                .tpm = tpm,
                .tcti = swtpm.tcti,
                .variant = "qemu-vtpm",
                .ak_handle = TPM_AK_HANDLE,
                .n_join = 1,
                .platform_ca = plat.ca_pem,
                .rejoin_timeout_ms = 30000,
                .try_key = try_key,
                .userdata = &c,
        };
        const char *source = NULL;
        struct errmsg e = {};

        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", js.port);
        kc.join[0] = endpoint;
        snprintf(kc.disk_uuid, sizeof(kc.disk_uuid), "%s", DISK_UUID);
        cr_assert_eq(keywait_run(&kc, &source, &e), 0, "keywait_run: %s (join service log: %s)",
                     errmsg_str(&e), js.log);
        cr_assert_str_eq(source, "rejoin");
        cr_assert_eq(c.tries, 1, "try_key called %d times", c.tries);
        cr_assert(!c.wrong_key, "the join service's key is not the disk's key (HKDF of the master secret)");
        snprintf(want, sizeof(want), "Disk %s of node node-r rejoined.", DISK_UUID);
        cr_assert(test_join_service_log_has(&js, want), "the join service did not log \"%s\" (see %s)", want,
                  js.log);
}

/* Only the registry check fails: the node and the join service attest each
 * other, but the disk never joined this cluster. No key comes from the
 * join service; the owner's recovery still unlocks the disk. */
Test(keywait, rejoin_of_an_unknown_disk_gets_no_key, .init = setup_unknown_disk,
     .fini = teardown_join_service, .timeout = 120) {
        struct ctx c = { .owner.js = &js, .accept_any = true };
        char endpoint[32];
        struct keywait_config kc = {
                .tpm = tpm,
                .tcti = swtpm.tcti,
                .variant = "qemu-vtpm",
                .ak_handle = TPM_AK_HANDLE,
                .listen = "127.0.0.1",
                .port = 0,
                .n_join = 1,
                .platform_ca = plat.ca_pem,
                .rejoin_timeout_ms = 30000,
                .try_key = try_key,
                .ready = on_ready,
                .userdata = &c,
        };
        const char *source = NULL;
        struct errmsg e = {};
        int r;

        snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%u", js.port);
        kc.join[0] = endpoint;
        snprintf(kc.disk_uuid, sizeof(kc.disk_uuid), "%s", DISK_UUID);
        r = keywait_run(&kc, &source, &e);
        pthread_join(c.owner.thread, NULL);
        cr_assert_eq(r, 0, "keywait_run: %s", errmsg_str(&e));
        cr_assert_eq(c.owner.result, 0, "recover request failed: %s", c.owner.error);
        cr_assert_str_eq(source, "recover", "the disk was unlocked by %s", source);
        cr_assert_eq(c.tries, 1, "try_key called %d times: a key came from the join service", c.tries);
        cr_assert(!c.wrong_key);
        cr_assert(!test_join_service_log_has(&js, "rejoined."), "the join service handed out a key");
}
