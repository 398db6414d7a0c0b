/* SPDX-License-Identifier: Apache-2.0 */
/* The join service's side of mesh refresh (POST /v1/mesh), against the real
 * arca-join-service binary, a real etcd-server and a swtpm per node:
 *   - a refresh returns the peers and records the node's new key, endpoint
 *     and lastSeen; it is refused (and nobody removed) before the node
 *     lock, under another member's name, or for a stranger;
 *   - from the attacker's side: replayed evidence, evidence for another
 *     nonce, an AK the platform does not vouch for and a bad quote
 *     signature are each refused by exactly that check and evict nobody;
 *     a genuine member whose PCR drifted is evicted at its next refresh;
 *   - a member that stops refreshing is removed after --member-timeout,
 *     its disk stays registered; a restarted join service carries on.
 * Members are put into the registry as a join does (registry_join with the
 * AK name), because a real join needs a control-plane driver's etcd on
 * fixed ports (test-cluster.sh covers joins end to end). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atls-http.h"
#include "atls.h"
#include "attest.h"
#include "encoding.h"
#include "etcd.h"
#include "evidence.h"
#include "fileio.h"
#include "joinservice.h"
#include "keys.h"
#include "messages.h"
#include "nodestate.h"
#include "openssl-util.h"
#include "policy.h"
#include "registry.h"
#include "secret.h"
#include "swtpm.h"
#include "tpm-parse.h"
#include "tpm.h"
#include "variant.h"

#define CIDR "10.124.0.0/16"

static struct test_etcd etcd;
static struct test_platform plat;
static char dir[256];
static struct test_swtpm js_tpm;
static struct test_join_service js;
static uint8_t cluster_id[KEY_SIZE];
static struct policy pol; /* PCRs 0-14 as every node measures them */
static struct registry *reg;

/* A member node: its own TPM, attester and the verifier it uses for the
 * join service ("same image"). */
struct node {
        const char *name;
        const char *disk;
        struct test_swtpm swtpm;
        struct tpm_ctx *tpm;
        struct attester *attester;
        struct verifier *verifier;
        char ak_name[REGISTRY_AK_NAME_HEX + 1];
};

static struct node a = { .name = "node-a", .disk = "0a0a0a0a-0000-4000-8000-00000000000a" };
static struct node b = { .name = "node-b", .disk = "0b0b0b0b-0000-4000-8000-00000000000b" };

/* --- setup ------------------------------------------------------------------------ */

static void start_tpm(struct test_swtpm *t, struct tpm_ctx **ret) {
        struct errmsg e = {};
        int r = test_swtpm_start(t);

        if (r == -ENOENT)
                cr_skip_test("swtpm is not installed (package swtpm)");
        cr_assert_eq(r, 0, "swtpm did not start: %s", strerror(-r));
        cr_assert_eq(test_platform_provision(&plat, t), 0);
        cr_assert_eq(tpm_open(t->tcti, ret, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(test_measure_boot(*ret), 0);
}

static void ak_name_of(struct node *n) {
        _cleanup_evidence_ struct evidence *ev = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_free_ char *doc = NULL;
        uint8_t nonce[32] = {}, ud[32] = {}, name[TPM_NAME_SIZE];
        struct errmsg e = {};
        size_t size;

        cr_assert_eq(attester_issue(n->attester, ATTEST_PURPOSE_ATLS, nonce, ud, &doc, &size, &e), 0, "%s",
                     errmsg_str(&e));
        cr_assert_eq(evidence_parse((const uint8_t *) doc, size, &ev, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(tpm_public_parse(ev->ak_public.data, ev->ak_public.size, &key, name, &e), 0);
        hex_encode_buf(name, sizeof(name), n->ak_name);
        /* What a first node records for itself at init is the same name. */
        {
                uint8_t own[ATTEST_AK_NAME_SIZE];
                cr_assert_eq(attester_ak_name(n->attester, own, &e), 0, "%s", errmsg_str(&e));
                cr_assert_eq(memcmp(own, name, sizeof(own)), 0, "attester_ak_name differs from the evidence's AK");
        }
}

static void node_start(struct node *n) {
        struct errmsg e = {};

        start_tpm(&n->swtpm, &n->tpm);
        cr_assert_eq(attester_new("qemu-vtpm", n->tpm, TPM_AK_HANDLE, &n->attester, &e), 0, "%s",
                     errmsg_str(&e));
        cr_assert_eq(verifier_new("qemu-vtpm", &pol, plat.roots, &n->verifier, &e), 0, "%s", errmsg_str(&e));
        ak_name_of(n);
}

static void node_stop(struct node *n) {
        n->verifier = verifier_free(n->verifier);
        n->attester = attester_free(n->attester);
        n->tpm = tpm_free(n->tpm);
        test_swtpm_stop(&n->swtpm);
}

/* Registered as a join registers it (PCR 15 still zero then), then the
 * node lock taken. */
static void node_join(struct node *n, bool lock) {
        struct registry_member m = { .role = "worker", .endpoint = "192.0.2.1:51820" };
        _cleanup_free_ char *key = NULL;
        uint8_t raw[32] = {};
        struct errmsg e = {};

        /* A key of its own (the registry refuses one another member holds). */
        memcpy(raw, n->name, strnlen(n->name, sizeof(raw)));
        cr_assert_eq(base64_encode(raw, sizeof(raw), &key), 0);
        snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", key);
        snprintf(m.name, sizeof(m.name), "%s", n->name);
        snprintf(m.disk_uuid, sizeof(m.disk_uuid), "%s", n->disk);
        snprintf(m.ak_name, sizeof(m.ak_name), "%s", n->ak_name);
        m.join_time = m.last_seen = (int64_t) time(NULL);
        cr_assert_eq(registry_join(reg, &m, CIDR, &e), 0, "%s", errmsg_str(&e));
        if (lock)
                cr_assert_eq(node_lock_take(n->tpm, cluster_id, &e), 0, "%s", errmsg_str(&e));
}

static void js_start(unsigned timeout, unsigned interval) {
        char t[16], i[16];
        const char *extra[] = {
                "--member-timeout", t, "--refresh-interval", i, "--log-level", "debug", NULL
        };
        int r;

        snprintf(t, sizeof(t), "%u", timeout);
        snprintf(i, sizeof(i), "%u", interval);
        r = test_join_service_start(&js, js_tpm.tcti, plat.ca_pem, extra);
        cr_assert_eq(r, 0, "arca-join-service did not get ready: %s (see %s)", strerror(-r), js.log);
}

static void js_stop(void) {
        test_join_service_stop(&js);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
        return remove(p);
}

static void setup(void) {
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        uint8_t pcrs[TPM_PCR_COUNT][TPM_DIGEST_SIZE];
        struct master_state m = {};
        struct registry_config cfg = {};
        const char *eps[1];
        struct errmsg e = {};
        int r;

        setenv("TSS2_LOG", "all+none", 1);
        signal(SIGPIPE, SIG_IGN); /* refused connections close under our writes */
        r = test_etcd_start(&etcd);
        if (r == -ENOENT)
                cr_skip_test(TEST_ETCD_MISSING);
        cr_assert_eq(r, 0, "etcd did not start");
        cr_assert_eq(test_platform_new(&plat), 0);
        cr_assert_eq(test_tmpdir(dir, sizeof(dir)), 0);

        /* The join service's node, and the policy everything measures. */
        start_tpm(&js_tpm, &tpm);
        cr_assert_eq(tpm_pcr_read(tpm, pcrs, &e), 0, "%s", errmsg_str(&e));
        for (unsigned i = 0; i < 15; i++) {
                pol.pcr[i].set = true;
                memcpy(pol.pcr[i].expected, pcrs[i], 32);
        }
        tpm = tpm_free(tpm);

        cr_assert_eq(secret_random(cluster_id, sizeof(cluster_id)), 0);
        cr_assert_eq(secret_random(m.master_secret, KEY_SIZE), 0);
        cr_assert_eq(secret_random(m.master_salt, KEY_SIZE), 0);
        cr_assert_eq(test_join_service_prepare(&js, dir, etcd.endpoint, CIDR, "10.124.0.9", &pol,
                                               m.master_secret, m.master_salt, cluster_id),
                     0);

        eps[0] = etcd.endpoint;
        cfg = (struct registry_config){ .endpoints = eps, .n_endpoints = 1 };
        cr_assert_eq(registry_new(&cfg, &reg, &e), 0, "%s", errmsg_str(&e));
        node_start(&a);
        node_start(&b);
}

static void teardown(void) {
        js_stop();
        node_stop(&a);
        node_stop(&b);
        test_swtpm_stop(&js_tpm);
        reg = registry_free(reg);
        test_etcd_stop(&etcd);
        test_platform_done(&plat);
        if (dir[0] && !getenv("KEEP"))
                nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- an honest refresh ------------------------------------------------------------- */

static int refresh(struct node *n, const char *as, const char *key, const char *endpoint,
                   struct http_response *ret) {
        struct atls_config cfg = { .attester = n->attester, .verifier = n->verifier };
        struct mesh_request m = {};
        _cleanup_free_ char *body = NULL;
        struct errmsg e = {};
        char url[64];

        snprintf(m.node_name, sizeof(m.node_name), "%s", as);
        snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", key);
        snprintf(m.endpoint, sizeof(m.endpoint), "%s", endpoint);
        cr_assert_eq(mesh_request_serialize(&m, &body), 0);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/v1/mesh", js.port);
        *ret = (struct http_response){};
        return atls_http_request(&cfg, url, "POST", body, strlen(body), 10000, ret, &e);
}

static bool is_member(const char *name, struct registry_member *ret) {
        struct registry_member m;
        int r = registry_get_member(reg, name, &m, NULL);

        cr_assert(r == 0 || r == -ENOENT, "registry_get_member: %d", r);
        if (r == 0 && ret)
                *ret = m;
        return r == 0;
}

static bool log_has(const char *needle) {
        return test_join_service_log_has(&js, needle);
}

#define KEY_A "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
#define KEY_B "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="

Test(mesh_server, refresh_returns_peers_and_records_the_node, .init = setup, .fini = teardown) {
        struct http_response h = {};
        struct mesh_response m = {};
        struct registry_member rec, before;
        struct errmsg e = {};

        node_join(&a, true);
        node_join(&b, true);
        js_start(60, 10);
        cr_assert(is_member("node-a", &before));

        cr_assert_eq(refresh(&a, "node-a", KEY_A, "192.0.2.10:51820", &h), 0);
        cr_assert_eq(h.status, 200, "%s", h.body);
        cr_assert_eq(mesh_response_parse(h.body, h.body_size, &m, &e), 0, "%s", errmsg_str(&e));
        cr_assert_str_eq(m.mesh_address, before.mesh_address);
        cr_assert_str_eq(m.mesh_cidr, CIDR);
        cr_assert_eq(m.refresh_interval, 10);
        cr_assert_eq(m.n_peers, 1);
        cr_assert_str_eq(m.peers[0].name, "node-b");
        mesh_response_done(&m);
        http_response_done(&h);

        cr_assert(is_member("node-a", &rec));
        cr_assert_str_eq(rec.wg_public_key, KEY_A, "the new key is recorded");
        cr_assert_str_eq(rec.endpoint, "192.0.2.10:51820");
        cr_assert_geq(rec.last_seen, before.last_seen);
        cr_assert_str_eq(rec.ak_name, a.ak_name);
        cr_assert_eq(rec.join_time, before.join_time);

        /* b cannot announce a's key: every agent would refuse the list. */
        cr_assert_eq(refresh(&b, "node-b", KEY_A, "192.0.2.11:51820", &h), 0);
        cr_assert_eq(h.status, 409, "%s", h.body);
        cr_assert(strstr(h.body, "is member 'node-a''s already"), "%s", h.body);
        http_response_done(&h);
        cr_assert(is_member("node-b", &rec));
        cr_assert_str_neq(rec.wg_public_key, KEY_A);

        /* b sees a's new key and endpoint. */
        cr_assert_eq(refresh(&b, "node-b", KEY_B, "192.0.2.11:51820", &h), 0);
        cr_assert_eq(h.status, 200, "%s", h.body);
        cr_assert_eq(mesh_response_parse(h.body, h.body_size, &m, &e), 0, "%s", errmsg_str(&e));
        cr_assert_eq(m.n_peers, 1);
        cr_assert_str_eq(m.peers[0].name, "node-a");
        cr_assert_str_eq(m.peers[0].wg_public_key, KEY_A);
        cr_assert_str_eq(m.peers[0].endpoint, "192.0.2.10:51820");
        cr_assert_str_eq(m.peers[0].mesh_address, before.mesh_address);
        mesh_response_done(&m);
        http_response_done(&h);
}

Test(mesh_server, refusals_that_remove_nobody, .init = setup, .fini = teardown) {
        struct http_response h = {};
        struct registry_member rec;

        node_join(&a, true);
        node_join(&b, false); /* b has not taken its node lock */
        js_start(60, 10);

        /* Before the node lock: refused, still a member. */
        cr_assert_eq(refresh(&b, "node-b", KEY_B, "192.0.2.11:51820", &h), 0);
        cr_assert_eq(h.status, 403, "%s", h.body);
        cr_assert(strstr(h.body, "PCR 15") && strstr(h.body, "has not taken its node lock"), "%s", h.body);
        http_response_done(&h);
        cr_assert(is_member("node-b", NULL));

        /* a, genuine and locked, claiming b's name: refused, b untouched. */
        cr_assert_eq(node_lock_take(b.tpm, cluster_id, NULL), 0);
        cr_assert_eq(refresh(&a, "node-b", KEY_A, "192.0.2.66:51820", &h), 0);
        cr_assert_eq(h.status, 403, "%s", h.body);
        cr_assert(strstr(h.body, "another attestation key"), "%s", h.body);
        http_response_done(&h);
        cr_assert(is_member("node-b", &rec));
        cr_assert_str_neq(rec.endpoint, "192.0.2.66:51820");
        cr_assert(is_member("node-a", NULL));

        /* A record without an AK name (as init wrote the first node's
         * before it recorded one) is not taken over by the first genuine,
         * locked node that refreshes under its name. */
        {
                struct registry_member c = { .name = "node-c", .role = "control-plane",
                                             .wg_public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                             .endpoint = "192.0.2.3:51820",
                                             .disk_uuid = "33333333-3333-4333-8333-333333333333" };
                struct errmsg e = {};

                c.join_time = c.last_seen = (int64_t) time(NULL);
                cr_assert_eq(registry_join(reg, &c, CIDR, &e), 0, "%s", errmsg_str(&e));
                cr_assert_eq(refresh(&a, "node-c", KEY_A, "192.0.2.66:51820", &h), 0);
                cr_assert_eq(h.status, 403, "%s", h.body);
                cr_assert(strstr(h.body, "no attestation key on record"), "%s", h.body);
                http_response_done(&h);
                cr_assert(is_member("node-c", &rec));
                cr_assert_str_eq(rec.ak_name, "", "the record did not take a's AK");
                cr_assert_str_eq(rec.endpoint, "192.0.2.3:51820");
        }

        /* A name that is no member. */
        cr_assert_eq(refresh(&a, "node-x", KEY_A, "192.0.2.10:51820", &h), 0);
        cr_assert_eq(h.status, 403, "%s", h.body);
        cr_assert(strstr(h.body, "not a member"), "%s", h.body);
        http_response_done(&h);

        /* An endpoint that is a host name, not an address. */
        cr_assert_eq(refresh(&a, "node-a", KEY_A, "evil.example:51820", &h), 0);
        cr_assert_eq(h.status, 400, "%s", h.body);
        http_response_done(&h);
        cr_assert(is_member("node-a", NULL));
        cr_assert(is_member("node-b", NULL));
}

/* --- the attacker's side ---------------------------------------------------------- */

enum evil_mode {
        EVIL_HONEST,       /* control: the hand-built client works */
        EVIL_REPLAY,       /* the certificate (and key) of an earlier connection */
        EVIL_WRONG_NONCE,  /* fresh evidence for a nonce of its own choosing */
        EVIL_UNTRUSTED_AK, /* the AK certified by a CA of its own */
        EVIL_BAD_SIGNATURE /* the quote signature altered */
};

struct evil {
        enum evil_mode mode;
        struct node *n;
        uint8_t client_nonce[32];
        uint8_t server_nonce[32];
        bool have_server_nonce;
        X509 *last_cert;
        EVP_PKEY *last_key;
        char error[256];
};

static int evil_nonce_add(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char **out,
                          size_t *outlen, X509 *x, size_t chainidx, int *al, void *arg) {
        struct evil *ev = arg;

        /* The server attests itself only to a client that sends a nonce. */
        *out = ev->client_nonce;
        *outlen = sizeof(ev->client_nonce);
        return 1;
}

static int evil_nonce_parse(SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char *in,
                            size_t inlen, X509 *x, size_t chainidx, int *al, void *arg) {
        struct evil *ev = arg;

        if (inlen != sizeof(ev->server_nonce))
                return 0;
        memcpy(ev->server_nonce, in, inlen);
        ev->have_server_nonce = true;
        return 1;
}

/* A certificate for key, signed by signer (self-signed if signer == key),
 * optionally carrying evidence in the qemu-vtpm extension. */
static X509 *make_x509(EVP_PKEY *key, EVP_PKEY *signer, const char *cn, const void *evidence, size_t size) {
        _cleanup_(X509_freep) X509 *x = X509_new();
        X509_NAME *name;

        if (!x)
                return NULL;
        name = X509_get_subject_name(x);
        if (X509_set_version(x, X509_VERSION_3) != 1 || !ASN1_INTEGER_set(X509_get_serialNumber(x), 7) ||
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0) != 1 ||
            X509_set_issuer_name(x, name) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || X509_set_pubkey(x, key) != 1)
                return NULL;
        if (evidence) {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(variant_qemu_vtpm.oid, 1);
                _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
                _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;

                if (!obj || !os || ASN1_OCTET_STRING_set(os, evidence, (int) size) != 1)
                        return NULL;
                ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
                if (!ext || X509_add_ext(x, ext, -1) != 1)
                        return NULL;
        }
        if (X509_sign(x, signer, EVP_sha256()) <= 0)
                return NULL;
        return TAKE_PTR(x);
}

/* Evidence issued honestly by the node's TPM, then altered per mode. */
static int evil_evidence(struct evil *ev, const uint8_t user_data[32], char **ret, size_t *ret_size) {
        _cleanup_evidence_ struct evidence *doc = NULL;
        _cleanup_free_ char *raw = NULL;
        uint8_t nonce[32];
        struct errmsg e = {};
        size_t size;

        memcpy(nonce, ev->server_nonce, sizeof(nonce));
        if (ev->mode == EVIL_WRONG_NONCE)
                nonce[0] ^= 0x5a;
        if (attester_issue(ev->n->attester, ATTEST_PURPOSE_ATLS, nonce, user_data, &raw, &size, &e) < 0 ||
            evidence_parse((const uint8_t *) raw, size, &doc, &e) < 0) {
                snprintf(ev->error, sizeof(ev->error), "%s", errmsg_str(&e));
                return -EIO;
        }
        if (ev->mode == EVIL_BAD_SIGNATURE) {
                /* TPMT_SIGNATURE: alg, hash, then r (size, bytes): flip a bit of r. */
                if (doc->signature.size < 12)
                        return -EIO;
                doc->signature.data[10] ^= 0x01;
        }
        if (ev->mode == EVIL_UNTRUSTED_AK) {
                /* The same AK, vouched for by a CA the owner never trusted. */
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *ak = NULL, *ca = NULL;
                _cleanup_(X509_freep) X509 *cert = NULL;
                uint8_t name[TPM_NAME_SIZE];
                unsigned char *der = NULL;
                int len;

                if (tpm_public_parse(doc->ak_public.data, doc->ak_public.size, &ak, name, &e) < 0 ||
                    ec_p256_generate(&ca) < 0 || !(cert = make_x509(ak, ca, "evil platform", NULL, 0)) ||
                    (len = i2d_X509(cert, &der)) <= 0)
                        return -EIO;
                for (size_t i = 0; i < doc->n_ak_certs; i++)
                        blob_done(&doc->ak_certs[i]);
                doc->n_ak_certs = 1;
                blob_set(&doc->ak_certs[0], der, (size_t) len);
                OPENSSL_free(der);
        }
        return evidence_serialize(doc, ret, ret_size);
}

static int evil_cert_cb(SSL *ssl, void *arg) {
        struct evil *ev = arg;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        _cleanup_free_ char *doc = NULL;
        uint8_t user_data[32];
        size_t size = 0;

        if (ev->mode == EVIL_REPLAY) {
                if (!ev->last_cert || SSL_use_certificate(ssl, ev->last_cert) != 1 ||
                    SSL_use_PrivateKey(ssl, ev->last_key) != 1) {
                        snprintf(ev->error, sizeof(ev->error), "nothing to replay");
                        return 0;
                }
                return 1;
        }
        if (!ev->have_server_nonce) {
                snprintf(ev->error, sizeof(ev->error), "the join service sent no nonce");
                return 0;
        }
        if (ec_p256_generate(&key) < 0 || pubkey_spki_sha256(key, user_data) < 0 ||
            evil_evidence(ev, user_data, &doc, &size) < 0 || !(cert = make_x509(key, key, "arca-atls", doc, size)) ||
            SSL_use_certificate(ssl, cert) != 1 || SSL_use_PrivateKey(ssl, key) != 1) {
                if (!ev->error[0])
                        snprintf(ev->error, sizeof(ev->error), "cannot make the certificate");
                return 0;
        }
        if (ev->mode == EVIL_HONEST) {
                X509_free(ev->last_cert);
                EVP_PKEY_free(ev->last_key);
                ev->last_cert = TAKE_PTR(cert);
                ev->last_key = TAKE_PTR(key);
        }
        return 1;
}

/* One POST /v1/mesh as node n over a hand-built TLS client in `mode`: the
 * HTTP status, or -1 when the join service ended the connection. */
static int evil_refresh(struct evil *ev, enum evil_mode mode) {
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        struct sockaddr_in sa = { .sin_family = AF_INET,
                                  .sin_port = htons((uint16_t) js.port),
                                  .sin_addr.s_addr = htonl(0x7f000001) };
        struct mesh_request m = {};
        _cleanup_free_ char *body = NULL, *req = NULL;
        char resp[4096];
        size_t got = 0;
        int fd, status = -1;
        SSL *ssl;

        ev->mode = mode;
        ev->have_server_nonce = false;
        ev->error[0] = 0;
        cr_assert_not_null(ctx);
        cr_assert_eq(secret_random(ev->client_nonce, sizeof(ev->client_nonce)), 0);
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        cr_assert_eq(SSL_CTX_add_custom_ext(ctx, ATLS_EXT_NONCE,
                                            SSL_EXT_TLS1_3_ONLY | SSL_EXT_CLIENT_HELLO |
                                                    SSL_EXT_TLS1_3_CERTIFICATE_REQUEST,
                                            evil_nonce_add, NULL, ev, evil_nonce_parse, ev),
                     1);
        SSL_CTX_set_cert_cb(ctx, evil_cert_cb, ev);

        snprintf(m.node_name, sizeof(m.node_name), "%s", ev->n->name);
        snprintf(m.wg_public_key, sizeof(m.wg_public_key), "%s", KEY_A);
        snprintf(m.endpoint, sizeof(m.endpoint), "192.0.2.10:51820");
        cr_assert_eq(mesh_request_serialize(&m, &body), 0);
        cr_assert_gt(asprintf(&req,
                              "POST /v1/mesh HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                              strlen(body), body),
                     0);

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ssl = SSL_new(ctx);
        cr_assert_not_null(ssl);
        SSL_set_fd(ssl, fd);
        /* TLS 1.3: the client may finish before the server has checked its
         * certificate; the refusal then ends the exchange below. */
        if (SSL_connect(ssl) == 1 && SSL_write(ssl, req, (int) strlen(req)) > 0) {
                int n;
                while (got < sizeof(resp) - 1 && (n = SSL_read(ssl, resp + got, (int) (sizeof(resp) - 1 - got))) > 0)
                        got += (size_t) n;
                resp[got] = 0;
                if (got > 12 && strncmp(resp, "HTTP/1.1 ", 9) == 0)
                        status = atoi(resp + 9);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        cr_assert_eq(ev->error[0], 0, "the hand-built client could not do its part: %s", ev->error);
        return status;
}

/* Wait until the join service's log names the check (it logs each refusal). */
static void assert_refused_by(const char *check) {
        char needle[128];

        snprintf(needle, sizeof(needle), "Refused a peer (verifying the peer): %s check failed", check);
        for (int k = 0; k < 100 && !log_has(needle); k++)
                usleep(20000);
        cr_assert(log_has(needle), "the join service did not log \"%s\" (see %s)", needle, js.log);
}

Test(mesh_server, forged_evidence_evicts_nobody_drift_does, .init = setup, .fini = teardown) {
        struct evil ev = { .n = &a };
        struct http_response h = {};
        static const struct {
                enum evil_mode mode;
                const char *check;
        } attacks[] = {
                { EVIL_REPLAY, "nonce" },
                { EVIL_WRONG_NONCE, "nonce" },
                { EVIL_UNTRUSTED_AK, "AK certificate chain" },
                { EVIL_BAD_SIGNATURE, "quote signature" },
        };

        node_join(&a, true);
        node_join(&b, true);
        js_start(60, 10);

        /* Control: the hand-built client, honest, is a member's refresh. */
        cr_assert_eq(evil_refresh(&ev, EVIL_HONEST), 200);

        for (size_t i = 0; i < ELEMENTSOF(attacks); i++) {
                cr_assert_neq(evil_refresh(&ev, attacks[i].mode), 200, "attack %zu accepted", i);
                assert_refused_by(attacks[i].check);
                /* Nobody evicted: a's record and its disk are there... */
                cr_assert(is_member("node-a", NULL), "attack %zu (%s) evicted node-a", i, attacks[i].check);
                cr_assert(is_member("node-b", NULL));
        }
        cr_assert(!log_has("Evicted member"), "an attack evicted somebody");
        /* ...and a refreshes as before. */
        cr_assert_eq(refresh(&a, "node-a", KEY_A, "192.0.2.10:51820", &h), 0);
        cr_assert_eq(h.status, 200, "%s", h.body);
        http_response_done(&h);

        /* a's measurements drift: its next refresh, genuine evidence of a
         * PCR outside the policy, evicts it at once. */
        {
                uint8_t digest[32] = { 0xd1 };
                struct errmsg e = {};
                char owner[NODE_NAME_MAX + 1];

                cr_assert_eq(tpm_pcr_extend(a.tpm, 9, digest, &e), 0, "%s", errmsg_str(&e));
                cr_assert_lt(refresh(&a, "node-a", KEY_A, "192.0.2.10:51820", &h), 0, "a drifted node refreshed");
                http_response_done(&h);
                assert_refused_by("measurement policy");
                for (int k = 0; k < 100 && is_member("node-a", NULL); k++)
                        usleep(20000);
                cr_assert(!is_member("node-a", NULL), "the drifted member is still registered");
                /* The worker logs after its registry write: a moment later. */
                for (int k = 0; k < 100 && !log_has("Evicted member node-a"); k++)
                        usleep(20000);
                cr_assert(log_has("Evicted member node-a"));
                cr_assert_eq(registry_get_disk(reg, a.disk, owner, NULL), -ENOENT, "its disk gets no key again");
                cr_assert(is_member("node-b", NULL), "b was evicted too");
        }
        X509_free(ev.last_cert);
        EVP_PKEY_free(ev.last_key);
}

/* PCR 15 extended once more after the node lock (neither zero nor this
 * cluster's lock) is drift too. */
Test(mesh_server, pcr15_drift_evicts, .init = setup, .fini = teardown) {
        struct http_response h = {};
        uint8_t digest[32] = { 0x15 };

        node_join(&a, true);
        node_join(&b, true);
        js_start(60, 10);
        cr_assert_eq(tpm_pcr_extend(a.tpm, NODE_LOCK_PCR, digest, NULL), 0);
        cr_assert_eq(refresh(&a, "node-a", KEY_A, "192.0.2.10:51820", &h), 0);
        cr_assert_eq(h.status, 403, "%s", h.body);
        cr_assert(strstr(h.body, "locked to another cluster"), "%s", h.body);
        http_response_done(&h);
        for (int k = 0; k < 100 && is_member("node-a", NULL); k++)
                usleep(20000);
        cr_assert(!is_member("node-a", NULL));
        cr_assert(is_member("node-b", NULL));
}

/* --- expiry ------------------------------------------------------------------------- */

Test(mesh_server, silent_member_expires_and_a_restart_changes_nothing, .init = setup, .fini = teardown) {
        struct http_response h = {};
        struct registry_member ra, rb, again;
        char owner[NODE_NAME_MAX + 1];
        time_t t0;

        node_join(&a, true);
        node_join(&b, true);
        cr_assert(is_member("node-b", &rb));
        /* Timeout 3 s, looked at every second. */
        js_start(3, 1);
        t0 = time(NULL);
        while (time(NULL) - t0 < 6) {
                cr_assert_eq(refresh(&a, "node-a", KEY_A, "192.0.2.10:51820", &h), 0);
                cr_assert_eq(h.status, 200, "%s", h.body);
                http_response_done(&h);
                if (!is_member("node-b", NULL))
                        break;
                usleep(500000);
        }
        cr_assert(!is_member("node-b", NULL), "b did not expire");
        cr_assert_geq(time(NULL) - rb.last_seen, 3, "b expired early");
        cr_assert(is_member("node-a", &ra), "a (refreshing) expired");
        cr_assert_eq(registry_get_disk(reg, b.disk, owner, NULL), 0, "b's disk stays registered");
        for (int k = 0; k < 100 && !log_has("Removed members without a refresh for 3 s: node-b"); k++)
                usleep(20000);
        cr_assert(log_has("Removed members without a refresh for 3 s: node-b"));

        /* b's refresh now: refused, it is no member any more. */
        cr_assert_eq(refresh(&b, "node-b", KEY_B, "192.0.2.11:51820", &h), 0);
        cr_assert_eq(h.status, 403, "%s", h.body);
        http_response_done(&h);

        /* A restarted join service: a's refresh carries on, same address. */
        js_stop();
        js_start(60, 10);
        cr_assert_eq(refresh(&a, "node-a", KEY_A, "192.0.2.10:51820", &h), 0);
        cr_assert_eq(h.status, 200, "%s", h.body);
        http_response_done(&h);
        cr_assert(is_member("node-a", &again));
        cr_assert_str_eq(again.mesh_address, ra.mesh_address);
        cr_assert_str_eq(again.ak_name, ra.ak_name);
}
