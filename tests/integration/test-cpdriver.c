/* SPDX-License-Identifier: Apache-2.0 */
/* Control-plane drivers. kubeadm runs against tests/doubles/kubeadm (a
 * fake cluster that checks every command and configuration it gets and
 * writes what kubeadm writes, a real CA included); etcd runs for real on
 * loopback addresses (127.x.y.2 and .3, free ports). Plus the strict join
 * parameter parser, field by field. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpdriver.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "swtpm.h"

static char tmp[256];
static char doubles[PATH_MAX];
static struct cp_result res[3];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
        (void) st;
        (void) flag;
        (void) f;
        return remove(p) < 0 ? -1 : 0;
}

static void teardown(void) {
        for (size_t i = 0; i < ELEMENTSOF(res); i++)
                (void) cp_stop(&res[i]);
        if (tmp[0])
                (void) nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmp/rel, in one of a few rotating buffers. */
static char *path_in(const char *rel) {
        static char buf[4][PATH_MAX];
        static unsigned k;
        char *p = buf[k++ % 4];
        snprintf(p, PATH_MAX, "%s/%s", tmp, rel);
        return p;
}

static void write_text(const char *path, const char *text, mode_t mode) {
        cr_assert_eq(write_file_atomic(path, text, strlen(text), mode), 0, "cannot write %s", path);
}

static char *read_text(const char *path) {
        char *s = NULL;
        int r = read_full_file(path, 1 << 20, &s, NULL);
        cr_assert_eq(r, 0, "cannot read %s: %s", path, strerror(-r));
        return s;
}

static bool exists(const char *path) {
        return access(path, F_OK) == 0;
}

/* --- kubeadm ---------------------------------------------------------------- */

static void find_doubles(void) {
        char cand[3][PATH_MAX];
        const char *src = getenv("ARCA_SOURCE_DIR");
        char build[PATH_MAX], *slash;

        snprintf(build, sizeof(build), "%s", test_build_dir());
        slash = strrchr(build, '/');
        if (slash)
                *slash = 0;
        else
                snprintf(build, sizeof(build), ".");
        snprintf(cand[0], PATH_MAX, "%s/tests/doubles", src ? src : "/nonexistent");
        snprintf(cand[1], PATH_MAX, "%s/tests/doubles", build);
        snprintf(cand[2], PATH_MAX, "tests/doubles");
        for (size_t i = 0; i < 3; i++) {
                char k[PATH_MAX + 16];
                snprintf(k, sizeof(k), "%s/kubeadm", cand[i]);
                if (access(k, X_OK) == 0 && realpath(cand[i], doubles))
                        return;
        }
        cr_assert_fail("tests/doubles/kubeadm not found (set ARCA_SOURCE_DIR)");
}

/* PATH=a[:b][:/usr/bin:/bin] */
static void set_path(const char *a, const char *b, bool system) {
        char p[3 * PATH_MAX];
        snprintf(p, sizeof(p), "%s%s%s%s", a, b ? ":" : "", b ? b : "", system ? ":/usr/bin:/bin" : "");
        setenv("PATH", p, 1);
}

static void setup_kubeadm(void) {
        cr_assert_eq(test_tmpdir(tmp, sizeof(tmp)), 0);
        find_doubles();
        cr_assert_eq(mkdir_p(path_in("bin"), 0755), 0);
        /* kubeadm drives the kubelet; the driver only insists it exists. */
        write_text(path_in("bin/kubelet"),
                   "#!/bin/sh\necho 'kubelet (test stub): the driver must not run me' >&2\nexit 1\n", 0755);
        set_path(doubles, path_in("bin"), true);
        setenv("KUBEADM_DOUBLE_STATE", path_in("cluster"), 1);
        unsetenv("KUBEADM_DOUBLE_FAIL");
}

struct tnode {
        char state[PATH_MAX], kdir[PATH_MAX];
        struct cp_node n;
};

static const char *const sans[] = { "api.arca.test", "10.99.0.1", "*.apps.arca.test", NULL };

/* What the join service and a joiner know: no Kubernetes settings. */
static void forget_k8s_settings(struct tnode *t) {
        t->n.api_sans = NULL;
        t->n.k8s_version = t->n.pod_cidr = t->n.service_cidr = NULL;
}

static void make_node(struct tnode *t, const char *name, const char *address) {
        snprintf(t->state, sizeof(t->state), "%s/%s/state", tmp, name);
        snprintf(t->kdir, sizeof(t->kdir), "%s/%s/kubernetes", tmp, name);
        t->n = (struct cp_node){
                .name = name,
                .address = address,
                .state_dir = t->state,
                .kubernetes_dir = t->kdir,
                .cluster_name = "arca-test",
                .api_sans = sans,
                .k8s_version = "v1.29.3",
                .pod_cidr = "10.244.0.0/16",
                .service_cidr = "10.96.0.0/12",
        };
}

/* sha256 of the CA's DER SPKI, the way the Kubernetes docs compute it. */
static void openssl_ca_hash(const char *kdir, char out[72]) {
        char cmd[PATH_MAX + 200], line[128] = "";
        FILE *f;

        snprintf(cmd, sizeof(cmd),
                 "openssl x509 -pubkey -noout -in '%s/pki/ca.crt' | openssl pkey -pubin -outform der | "
                 "sha256sum",
                 kdir);
        f = popen(cmd, "r");
        cr_assert_not_null(f);
        cr_assert_not_null(fgets(line, sizeof(line), f));
        cr_assert_eq(pclose(f), 0);
        cr_assert(strlen(line) > 64);
        snprintf(out, 72, "sha256:%.64s", line);
}

static bool file_has_line(const char *path, const char *line) {
        _cleanup_free_ char *s = read_text(path);
        size_t n = strlen(line);
        for (char *p = s; (p = strstr(p, line)); p++)
                if ((p == s || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
                        return true;
        return false;
}

Test(cpdriver, registry_selects_by_name) {
        cr_assert_eq(cp_driver_by_name("kubeadm"), &cp_driver_kubeadm);
        cr_assert_eq(cp_driver_by_name("etcd"), &cp_driver_etcd);
        cr_assert_null(cp_driver_by_name("k3s"));
        cr_assert_null(cp_driver_by_name(NULL));
        cr_assert_eq(cp_driver_all()[2], NULL);
}

Test(kubeadm, check_names_missing_kubeadm, .init = setup_kubeadm, .fini = teardown) {
        struct errmsg e = {};
        struct tnode a;
        struct cp_result r = {};

        set_path(path_in("bin"), NULL, false);
        cr_assert_eq(cp_check(&cp_driver_kubeadm, &e), -ENOENT);
        cr_assert(strstr(e.text, "kubeadm not found"), "%s", e.text);
        /* init does not start without it either, and writes nothing. */
        make_node(&a, "n1", "10.0.0.1");
        e = (struct errmsg){};
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &r, &e), -ENOENT);
        cr_assert(strstr(e.text, "kubeadm not found"), "%s", e.text);
        cr_assert(!exists(a.state));
}

Test(kubeadm, check_names_missing_kubelet, .init = setup_kubeadm, .fini = teardown) {
        struct errmsg e = {};

        set_path(doubles, NULL, false);
        cr_assert_eq(cp_check(&cp_driver_kubeadm, &e), -ENOENT);
        cr_assert(strstr(e.text, "kubelet not found"), "%s", e.text);
        set_path(doubles, path_in("bin"), false);
        e = (struct errmsg){};
        cr_assert_eq(cp_check(&cp_driver_kubeadm, &e), 0, "%s", e.text);
}

Test(kubeadm, init_returns_admin_kubeconfig, .init = setup_kubeadm, .fini = teardown) {
        struct errmsg e = {};
        struct tnode a;
        _cleanup_free_ char *admin = NULL, *cfg = NULL;

        make_node(&a, "n1", "10.0.0.1");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), 0, "%s", e.text);
        admin = read_text(path_in("n1/kubernetes/admin.conf"));
        cr_assert_not_null(res[0].kubeconfig);
        cr_assert_eq(res[0].kubeconfig_size, strlen(admin));
        cr_assert_str_eq(res[0].kubeconfig, admin);
        cr_assert(strstr(admin, "server: https://10.0.0.1:6443\n"), "%s", admin);
        cr_assert_eq(res[0].pid, 0);
        /* The configuration kubeadm got (kept by the double); the driver
         * removed its own copy, which held the bootstrap token. */
        cfg = read_text(path_in("cluster/init.yaml"));
        cr_assert(strstr(cfg, "  advertiseAddress: \"10.0.0.1\"\n"), "%s", cfg);
        cr_assert(strstr(cfg, "    node-ip: \"10.0.0.1\"\n"), "%s", cfg);
        cr_assert(strstr(cfg, "controlPlaneEndpoint: \"10.0.0.1:6443\"\n"), "%s", cfg);
        cr_assert(strstr(cfg, "    - \"10.0.0.1\"\n    - \"api.arca.test\"\n    - \"10.99.0.1\"\n    - "
                              "\"*.apps.arca.test\"\n"),
                  "%s", cfg);
        cr_assert(strstr(cfg, "  podSubnet: \"10.244.0.0/16\"\n  serviceSubnet: \"10.96.0.0/12\"\n"), "%s",
                  cfg);
        cr_assert(strstr(cfg, "kubernetesVersion: \"v1.29.3\"\n"), "%s", cfg);
        cr_assert(strstr(cfg, "ttl: \"1h0m0s\"\n"), "%s", cfg);
        cr_assert(!exists(path_in("n1/state/kubeadm/init.yaml")));
}

/* arca runs Kubernetes on mesh addresses: the double, told the mesh CIDR,
 * refuses a node IP outside it, so the configuration carries exactly the
 * address the node was given. */
Test(kubeadm, node_ip_is_the_nodes_address_and_must_be_in_the_mesh, .init = setup_kubeadm, .fini = teardown) {
        _cleanup_free_ char *ips = NULL;
        struct errmsg e = {};
        struct tnode a;

        setenv("KUBEADM_DOUBLE_NODE_CIDR", "10.123.0.0/16", 1);
        make_node(&a, "n1", "10.0.0.1");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), -EIO);
        cr_assert(strstr(e.text, "node-ip 10.0.0.1 is outside 10.123.0.0/16"), "%s", e.text);
        e = (struct errmsg){};
        make_node(&a, "n1", "10.123.0.2");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), 0, "%s", e.text);
        unsetenv("KUBEADM_DOUBLE_NODE_CIDR");
        cr_assert_eq(read_full_file(path_in("cluster/node-ips"), 4096, &ips, NULL), 0);
        cr_assert_str_eq(ips, "n1 10.123.0.2\n");
}

Test(kubeadm, init_failure_carries_kubeadm_stderr, .init = setup_kubeadm, .fini = teardown) {
        struct errmsg e = {};
        struct tnode a;
        struct cp_result r = {};

        setenv("KUBEADM_DOUBLE_FAIL", "init", 1);
        make_node(&a, "n1", "10.0.0.1");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &r, &e), -EIO);
        cr_assert(strstr(e.text, "kubeadm init failed (exit status 1)"), "%s", e.text);
        cr_assert(strstr(e.text, "[ERROR Port-6443]: Port 6443 is in use"), "%s", e.text);
        cr_assert_null(r.kubeconfig);
        cr_assert(!exists(path_in("n1/state/kubeadm/init.yaml")), "config with the token left behind");
}

Test(kubeadm, init_refuses_values_that_would_change_the_yaml, .init = setup_kubeadm, .fini = teardown) {
        static const char *const bad_sans[] = { "api.arca.test\"\n  extraArgs: {}", NULL };
        struct tnode a;
        struct {
                const char *field, *value, *expect;
        } cases[] = {
                { "address", "10.0.0.1\"\nfoo: \"bar", "node address" },
                { "address", "node1.example", "node address" },
                { "name", "Node_1", "node name" },
                { "k8s_version", "stable-1", "Kubernetes version" },
                { "pod_cidr", "10.244.0.0/33", "pod CIDR" },
                { "pod_cidr", NULL, "pod CIDR '(null)'" }, /* init needs it */
                { "service_cidr", "10.96.0.0/12,10.97.0.0/16", "service CIDR" },
                { "state_dir", "relative/state", "state directory" },
                { "kubernetes_dir", "/etc/../kubernetes", "Kubernetes directory" },
                { "api_sans", NULL, "API server SAN" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct errmsg e = {};
                struct cp_result r = {};

                make_node(&a, "n1", "10.0.0.1");
                if (streq(cases[i].field, "address"))
                        a.n.address = cases[i].value;
                else if (streq(cases[i].field, "name"))
                        a.n.name = cases[i].value;
                else if (streq(cases[i].field, "k8s_version"))
                        a.n.k8s_version = cases[i].value;
                else if (streq(cases[i].field, "pod_cidr"))
                        a.n.pod_cidr = cases[i].value;
                else if (streq(cases[i].field, "service_cidr"))
                        a.n.service_cidr = cases[i].value;
                else if (streq(cases[i].field, "state_dir"))
                        a.n.state_dir = cases[i].value;
                else if (streq(cases[i].field, "kubernetes_dir"))
                        a.n.kubernetes_dir = cases[i].value;
                else
                        a.n.api_sans = bad_sans;
                cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &r, &e), -EINVAL, "%s accepted",
                             cases[i].field);
                cr_assert(strstr(e.text, cases[i].expect), "%s: %s", cases[i].field, e.text);
                cr_assert(!strchr(e.text, '\n'), "unquoted value in message: %s", e.text);
        }
        cr_assert(!exists(path_in("cluster")), "kubeadm ran");
}

Test(kubeadm, join_params_fresh_token_and_ca_hash, .init = setup_kubeadm, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *w = NULL, *c = NULL;
        _cleanup_free_ char *argv = NULL;
        struct errmsg e = {};
        struct tnode a, svc;
        char expect[72];
        const char *s, *tok_w, *tok_c, *key;

        make_node(&a, "n1", "10.0.0.1");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), 0, "%s", e.text);
        openssl_ca_hash(a.kdir, expect);
        /* The join service on the same node knows no Kubernetes settings. */
        make_node(&svc, "n1", "10.0.0.1");
        forget_k8s_settings(&svc);

        cr_assert_eq(cp_join_params(&cp_driver_kubeadm, &svc.n, "w1", "10.0.0.5", CP_ROLE_WORKER, &w, &e), 0,
                     "%s", e.text);
        cr_assert_eq(json_get_string(w, "caCertHash", &s, NULL), 0);
        cr_assert_str_eq(s, expect);
        cr_assert_eq(json_get_string(w, "endpoint", &s, NULL), 0);
        cr_assert_str_eq(s, "10.0.0.1:6443");
        cr_assert_eq(json_get_string(w, "token", &tok_w, NULL), 0);
        cr_assert(cp_valid_token(tok_w), "%s", tok_w);
        cr_assert(!json_object_object_get_ex(w, "certificateKey", NULL), "worker got the certificate key");
        /* The token exists in the cluster (kubeadm token create). */
        cr_assert(file_has_line(path_in("cluster/tokens"), tok_w));

        cr_assert_eq(
                cp_join_params(&cp_driver_kubeadm, &svc.n, "n2", "10.0.0.2", CP_ROLE_CONTROL_PLANE, &c, &e),
                0, "%s", e.text);
        cr_assert_eq(json_get_string(c, "token", &tok_c, NULL), 0);
        cr_assert_str_neq(tok_c, tok_w, "token reused across joins");
        cr_assert(file_has_line(path_in("cluster/tokens"), tok_c));
        cr_assert_eq(json_get_string(c, "certificateKey", &key, NULL), 0);
        cr_assert(cp_valid_hex(key, 32), "%s", key);
        cr_assert(file_has_line(path_in("cluster/certificate-keys"), key), "certificates not uploaded");
        cr_assert(!exists(path_in("n1/state/kubeadm/upload-certs.yaml")));
        cr_assert(!exists(path_in("n1/state/kubeadm/join-token.yaml")));

        /* No secret on any command line (visible to every process). */
        argv = read_text(path_in("cluster/argv"));
        cr_assert(strstr(argv, "token create --config "), "%s", argv);
        cr_assert(!strstr(argv, tok_w) && !strstr(argv, tok_c) && !strstr(argv, key), "%s", argv);
        cr_assert(!strstr(argv, strchr(tok_w, '.') + 1), "%s", argv);
}

Test(kubeadm, join_control_plane_and_worker, .init = setup_kubeadm, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *pc = NULL, *pw = NULL;
        _cleanup_free_ char *admin2 = NULL, *cfg = NULL;
        struct errmsg e = {};
        struct tnode a, b, w;

        make_node(&a, "n1", "10.0.0.1");
        make_node(&b, "n2", "10.0.0.2");
        make_node(&w, "w1", "10.0.0.5");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), 0, "%s", e.text);
        /* Joiners and join services know no Kubernetes settings. */
        forget_k8s_settings(&a);
        forget_k8s_settings(&b);
        forget_k8s_settings(&w);

        cr_assert_eq(
                cp_join_params(&cp_driver_kubeadm, &a.n, "n2", "10.0.0.2", CP_ROLE_CONTROL_PLANE, &pc, &e),
                0, "%s", e.text);
        cr_assert_eq(cp_join(&cp_driver_kubeadm, &b.n, CP_ROLE_CONTROL_PLANE, pc, &res[1], &e), 0, "%s",
                     e.text);
        admin2 = read_text(path_in("n2/kubernetes/admin.conf"));
        cr_assert_str_eq(res[1].kubeconfig, admin2);
        cr_assert(strstr(admin2, "server: https://10.0.0.2:6443\n"));
        cfg = read_text(path_in("cluster/join-n2.yaml"));
        cr_assert(strstr(cfg, "    advertiseAddress: \"10.0.0.2\"\n"), "%s", cfg);
        cr_assert(strstr(cfg, "    node-ip: \"10.0.0.2\"\n"), "%s", cfg);
        cr_assert(!exists(path_in("n2/state/kubeadm/join.yaml")), "join config with secrets left behind");

        /* A worker, through the second control-plane node's join service. */
        cr_assert_eq(cp_join_params(&cp_driver_kubeadm, &b.n, "w1", "10.0.0.5", CP_ROLE_WORKER, &pw, &e), 0,
                     "%s", e.text);
        cr_assert_eq(cp_join(&cp_driver_kubeadm, &w.n, CP_ROLE_WORKER, pw, &res[2], &e), 0, "%s", e.text);
        cr_assert_null(res[2].kubeconfig);
        cr_assert(exists(path_in("w1/kubernetes/kubelet.conf")));
        cr_assert(!exists(path_in("w1/kubernetes/admin.conf")));
        free(cfg);
        cfg = read_text(path_in("cluster/join-w1.yaml"));
        cr_assert(strstr(cfg, "apiServerEndpoint: \"10.0.0.2:6443\"\n"), "%s", cfg);
        cr_assert(!strstr(cfg, "controlPlane"), "%s", cfg);
}

/* Parameters of the right shape that the cluster does not know: kubeadm
 * refuses, and its words reach the caller. */
Test(kubeadm, join_failures_carry_kubeadm_stderr, .init = setup_kubeadm, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *pw = NULL;
        struct errmsg e = {};
        struct tnode a, b;
        char hash[72];
        const char *token;
        /* NULL: the real value. */
        struct {
                const char *what, *endpoint, *token, *hash, *key, *expect;
        } cases[] = {
                { "unknown token", NULL, "abcdef.0123456789abcdef", NULL, NULL,
                  "could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\"" },
                { "other CA", NULL, NULL,
                  "sha256:0000000000000000000000000000000000000000000000000000000000000000", NULL,
                  "none of the public keys" },
                { "unknown endpoint", "10.0.0.9:6443", NULL, NULL, NULL,
                  "dial tcp 10.0.0.9:6443: connect: connection refused" },
                { "unknown certificate key", NULL, NULL, NULL,
                  "1111111111111111111111111111111111111111111111111111111111111111",
                  "error downloading certs" },
        };

        make_node(&a, "n1", "10.0.0.1");
        make_node(&b, "n2", "10.0.0.2");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_kubeadm, &a.n, "n2", "10.0.0.2", CP_ROLE_WORKER, &pw, &e), 0,
                     "%s", e.text);
        cr_assert_eq(json_get_string(pw, "token", &token, NULL), 0);
        openssl_ca_hash(a.kdir, hash);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(json_object_putp) json_object *p = json_object_new_object();
                struct cp_result r = {};

                cr_assert_eq(json_add_string(p, "endpoint",
                                             cases[i].endpoint ? cases[i].endpoint : "10.0.0.1:6443"),
                             0);
                cr_assert_eq(json_add_string(p, "token", cases[i].token ? cases[i].token : token), 0);
                cr_assert_eq(json_add_string(p, "caCertHash", cases[i].hash ? cases[i].hash : hash), 0);
                if (cases[i].key)
                        cr_assert_eq(json_add_string(p, "certificateKey", cases[i].key), 0);
                e = (struct errmsg){};
                cr_assert_eq(cp_join(&cp_driver_kubeadm, &b.n,
                                     cases[i].key ? CP_ROLE_CONTROL_PLANE : CP_ROLE_WORKER, p, &r, &e),
                             -EIO, "%s: %s", cases[i].what, e.text);
                cr_assert(strstr(e.text, "kubeadm join failed (exit status 1): "), "%s: %s", cases[i].what,
                          e.text);
                cr_assert(strstr(e.text, cases[i].expect), "%s: %s", cases[i].what, e.text);
                cr_assert(!exists(path_in("n2/state/kubeadm/join.yaml")));
        }
        /* The real parameters work on the same node afterwards. */
        e = (struct errmsg){};
        cr_assert_eq(cp_join(&cp_driver_kubeadm, &b.n, CP_ROLE_WORKER, pw, &res[1], &e), 0, "%s", e.text);
}

Test(kubeadm, join_validates_params_before_running_kubeadm, .init = setup_kubeadm, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *p = NULL;
        static const char json[] = "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"abcdef.0123456789abcdef\","
                                   "\"caCertHash\":\"sha256:"
                                   "0000000000000000000000000000000000000000000000000000000000000000\"}";
        struct errmsg e = {};
        struct cp_result r = {};
        struct tnode b;

        make_node(&b, "n2", "10.0.0.2");
        cr_assert_eq(json_parse(json, strlen(json), &p, NULL), 0);
        /* A control-plane joiner needs the certificate key. */
        cr_assert_eq(cp_join(&cp_driver_kubeadm, &b.n, CP_ROLE_CONTROL_PLANE, p, &r, &e), -EBADMSG);
        cr_assert(strstr(e.text, "missing field 'certificateKey'"), "%s", e.text);
        cr_assert(!exists(b.state), "kubeadm ran");
}

Test(kubeadm, join_params_fail_on_a_node_without_cluster, .init = setup_kubeadm, .fini = teardown) {
        json_object *p = NULL;
        struct errmsg e = {};
        struct tnode a;

        make_node(&a, "n1", "10.0.0.1");
        cr_assert_eq(cp_join_params(&cp_driver_kubeadm, &a.n, "n2", "10.0.0.2", CP_ROLE_WORKER, &p, &e),
                     -ENOENT);
        cr_assert(strstr(e.text, "cannot read the cluster CA"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(cp_join_params(&cp_driver_kubeadm, &a.n, "N2!", "10.0.0.2", CP_ROLE_WORKER, &p, &e),
                     -EINVAL);
        cr_assert(strstr(e.text, "joining node's name"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(cp_join_params(&cp_driver_kubeadm, &a.n, "n2", "10.0.0.256", CP_ROLE_WORKER, &p, &e),
                     -EINVAL);
        cr_assert(strstr(e.text, "joining node's address"), "%s", e.text);
        cr_assert_null(p);
}

static char *replace(const char *s, const char *from, const char *to) {
        const char *p = strstr(s, from);
        char *out;

        cr_assert_not_null(p, "'%s' not in the configuration", from);
        cr_assert_geq(asprintf(&out, "%.*s%s%s", (int) (p - s), s, to, p + strlen(from)), 0);
        return out;
}

/* The double is only worth something if it refuses what kubeadm would:
 * each case breaks one thing in a configuration the double accepted. */
Test(kubeadm, double_refuses_broken_configurations, .init = setup_kubeadm, .fini = teardown) {
        _cleanup_free_ char *base = NULL, *kubeadm = NULL;
        struct errmsg e = {};
        struct tnode a;
        struct {
                const char *what, *from, *to, *expect;
                mode_t mode;
        } cases[] = {
                { "node-ip", "node-ip: \"10.0.0.1\"", "node-ip: \"10.0.0.7\"",
                  "differs from advertiseAddress", 0600 },
                { "token format", "token: \"", "token: \"X", "was not of the form", 0600 },
                { "SANs", "    - \"10.0.0.1\"\n", "", "lack the advertise address", 0600 },
                { "unknown field", "podSubnet:", "podSubnets:",
                  "unknown field \"ClusterConfiguration.networking.podSubnets\"", 0600 },
                { "endpoint", "controlPlaneEndpoint: \"10.0.0.1:6443\"",
                  "controlPlaneEndpoint: \"10.0.0.1:7443\"",
                  "controlPlaneEndpoint 10.0.0.1:7443 is not the advertise address", 0600 },
                { "version", "kubernetesVersion: \"v1.29.3\"", "kubernetesVersion: \"stable\"",
                  "unable to fetch", 0600 },
                { "apiVersion", "kubeadm.k8s.io/v1beta3\nkind: Cluster",
                  "kubeadm.k8s.io/v1beta2\nkind: Cluster", "apiVersion must be kubeadm.k8s.io/v1beta3",
                  0600 },
                { "mode", "", "", "must not be readable by others", 0644 },
                { "none", "", "", NULL, 0600 },
        };

        make_node(&a, "n1", "10.0.0.1");
        cr_assert_eq(cp_init(&cp_driver_kubeadm, &a.n, &res[0], &e), 0, "%s", e.text);
        base = read_text(path_in("cluster/init.yaml"));
        cr_assert_geq(asprintf(&kubeadm, "%s/kubeadm", doubles), 0);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *fresh = NULL, *cfg = NULL, *mutated = NULL, *state = NULL, *kdir = NULL;
                char file[PATH_MAX];
                int r;

                /* A fresh cluster and kubernetes dir for every case. */
                cr_assert_geq(asprintf(&state, "%s/m%zu/cluster", tmp, i), 0);
                cr_assert_geq(asprintf(&kdir, "%s/m%zu/kubernetes", tmp, i), 0);
                setenv("KUBEADM_DOUBLE_STATE", state, 1);
                fresh = replace(base, a.kdir, kdir);
                mutated = cases[i].from[0] ? replace(fresh, cases[i].from, cases[i].to) : strdup(fresh);
                snprintf(file, sizeof(file), "%s/m%zu/init.yaml", tmp, i);
                {
                        char d[PATH_MAX];
                        snprintf(d, sizeof(d), "%s/m%zu", tmp, i);
                        cr_assert_eq(mkdir_p(d, 0700), 0);
                }
                write_text(file, mutated, cases[i].mode);
                e = (struct errmsg){};
                r = cp_run("kubeadm init", (char *[]){ kubeadm, "init", "--config", file, NULL }, 60, &e);
                if (!cases[i].expect) {
                        cr_assert_eq(r, 0, "unmodified configuration refused: %s", e.text);
                        continue;
                }
                cr_assert_eq(r, -EIO, "%s: accepted", cases[i].what);
                cr_assert(strstr(e.text, cases[i].expect), "%s: %s", cases[i].what, e.text);
        }
}

/* --- etcd ------------------------------------------------------------------ */

static char addr[3][32];
static uint16_t cport, pport;

static bool port_free(const char *a, uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok;

        inet_pton(AF_INET, a, &sa.sin_addr);
        ok = fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static void setup_etcd(void) {
        _cleanup_free_ char *bin = NULL;
        unsigned a, b;

        if (cp_find_binary("etcd", &bin, NULL) < 0)
                cr_skip_test("etcd is not installed (package etcd-server)");
        cr_assert_eq(test_tmpdir(tmp, sizeof(tmp)), 0);
        /* Own loopback addresses and ports per test: tests run in parallel. */
        srand((unsigned) (getpid() * 7919u + (unsigned) time(NULL)));
        a = 1 + (unsigned) rand() % 254;
        b = 1 + (unsigned) rand() % 254;
        for (int i = 0; i < 3; i++)
                snprintf(addr[i], sizeof(addr[i]), "127.%u.%u.%d", a, b, i + 2);
        for (int attempt = 0;; attempt++) {
                cr_assert_lt(attempt, 100, "no free ports");
                cport = (uint16_t) (20000 + rand() % 40000);
                pport = (uint16_t) (cport + 1);
                bool ok = true;
                for (int i = 0; i < 3 && ok; i++)
                        ok = port_free(addr[i], cport) && port_free(addr[i], pport);
                if (ok)
                        break;
        }
}

static void make_etcd_node(struct tnode *t, const char *name, int i) {
        make_node(t, name, addr[i]);
        forget_k8s_settings(t);
        t->n.kubernetes_dir = NULL;
        t->n.etcd_client_port = cport;
        t->n.etcd_peer_port = pport;
}

static char *url_of(int i, uint16_t port) {
        static char buf[4][64];
        static unsigned k;
        char *p = buf[k++ % 4];
        snprintf(p, 64, "http://%s:%u", addr[i], port);
        return p;
}

static json_object *etcd_post(int i, const char *api, const char *body) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        json_object *resp = NULL;
        struct errmsg e = {};
        char u[128];

        cr_assert_eq(json_parse(body, strlen(body), &req, NULL), 0);
        snprintf(u, sizeof(u), "%s%s", url_of(i, cport), api);
        cr_assert_eq(cp_http_json("POST", u, req, 5000, &resp, &e), 0, "%s: %s", u, e.text);
        return resp;
}

/* The members node i knows: names ("" before a member started) and how
 * many are learners. */
static size_t members(int i, const char *names[CP_MAX_MEMBERS], size_t *ret_learners) {
        _cleanup_(json_object_putp) json_object *l = etcd_post(i, "/v3/cluster/member/list", "{}");
        static char keep[CP_MAX_MEMBERS][64];
        json_object *arr;
        size_t n, learners = 0;

        cr_assert_eq(json_get_array(l, "members", &arr, NULL), 0);
        n = json_object_array_length(arr);
        for (size_t k = 0; k < n && k < CP_MAX_MEMBERS; k++) {
                json_object *m = json_object_array_get_idx(arr, k), *v;
                snprintf(keep[k], sizeof(keep[k]), "%s",
                         json_object_object_get_ex(m, "name", &v) ? json_object_get_string(v) : "");
                names[k] = keep[k];
                if (json_object_object_get_ex(m, "isLearner", &v) && json_object_get_boolean(v))
                        learners++;
        }
        if (ret_learners)
                *ret_learners = learners;
        return n;
}

static bool has_name(const char *names[], size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(names[i], name))
                        return true;
        return false;
}

/* The node's own services reach etcd on a local address that nobody else
 * is told about: clients and joiners get only the node (mesh) address. */
Test(etcd, local_address_serves_clients_and_is_never_advertised, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *health = NULL, *list = NULL, *params = NULL;
        struct errmsg e = {};
        struct tnode n1;
        json_object *arr, *urls;
        const char *s;
        char u[128];

        make_etcd_node(&n1, "n1", 0);
        n1.n.local_address = addr[0];
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), -EINVAL);
        cr_assert(strstr(e.text, "local address"), "%s", e.text);
        e = (struct errmsg){};
        n1.n.local_address = "localhost";
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), -EINVAL);

        e = (struct errmsg){};
        n1.n.local_address = addr[2];
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        snprintf(u, sizeof(u), "http://%s:%u/health", addr[2], cport);
        cr_assert_eq(cp_http_json("GET", u, NULL, 5000, &health, &e), 0, "%s: %s", u, e.text);
        cr_assert_eq(json_get_string(health, "health", &s, NULL), 0);
        cr_assert_str_eq(s, "true");
        cr_assert(!port_free(addr[2], cport), "etcd serves clients on the local address");
        cr_assert(port_free(addr[2], pport), "but not peers");

        list = etcd_post(0, "/v3/cluster/member/list", "{}");
        cr_assert_eq(json_get_array(list, "members", &arr, NULL), 0);
        cr_assert_eq(json_get_array(json_object_array_get_idx(arr, 0), "clientURLs", &urls, NULL), 0);
        cr_assert_eq(json_object_array_length(urls), 1);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(urls, 0)), url_of(0, cport));
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "w1", addr[1], CP_ROLE_WORKER, &params, &e), 0, "%s",
                     e.text);
        cr_assert_eq(json_get_array(params, "endpoints", &arr, NULL), 0);
        cr_assert_eq(json_object_array_length(arr), 1);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(arr, 0)), url_of(0, cport));
}

/* A control-plane joiner whose members cannot be reached yet (over the
 * mesh: until they add it as a WireGuard peer at their next refresh) keeps
 * starting its etcd, which exits at once without them, until they answer;
 * here the member's etcd is down for 2 s and comes back as it was. */
Test(etcd, joiner_waits_for_members_it_cannot_reach_yet, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *params = NULL;
        _cleanup_free_ char *log = NULL, *cmdline = NULL;
        char path[64], *argv[64];
        struct errmsg e = {};
        struct tnode n1, n2;
        const char *names[CP_MAX_MEMBERS];
        size_t learners, size = 0, argc = 0;
        pid_t back;

        make_etcd_node(&n1, "n1", 0);
        make_etcd_node(&n2, "n2", 1);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[1], CP_ROLE_CONTROL_PLANE, &params, &e), 0,
                     "%s", e.text);
        /* n1's etcd as it was started, stopped, and started again in 2 s. */
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int) res[0].pid);
        cr_assert_eq(read_full_file(path, 1 << 16, &cmdline, &size), 0);
        for (size_t k = 0; k < size && argc < ELEMENTSOF(argv) - 1; k += strlen(cmdline + k) + 1)
                argv[argc++] = cmdline + k;
        argv[argc] = NULL;
        cr_assert_eq(cp_stop(&res[0]), 0);
        back = fork();
        cr_assert_geq(back, 0);
        if (back == 0) {
                int fd = open("/dev/null", O_WRONLY);
                dup2(fd, 1), dup2(fd, 2);
                sleep(2);
                execv(argv[0], argv);
                _exit(127);
        }
        res[0].pid = back; /* stopped by the teardown */

        cr_assert_eq(cp_join(&cp_driver_etcd, &n2.n, CP_ROLE_CONTROL_PLANE, params, &res[1], &e), 0, "%s", e.text);
        cr_assert_eq(read_full_file(path_in("n2/state/etcd.log"), 1 << 24, &log, NULL), 0);
        cr_assert(strstr(log, "cannot fetch cluster info from peer urls"), "the joiner never found n1 missing");
        cr_assert_eq(members(1, names, &learners), 2);
        cr_assert_eq(learners, 0);
}

Test(etcd, init_join_and_replicate, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *params = NULL, *kc = NULL, *got = NULL;
        _cleanup_free_ char *ic = NULL, *b64key = NULL, *b64val = NULL;
        struct cp_join_params parsed = {};
        struct errmsg e = {};
        struct tnode n1, n2;
        const char *names[CP_MAX_MEMBERS], *s, *enc;
        json_object *arr, *kvs;
        char body[512], value[40];
        size_t learners;
        pid_t p1, p2;

        make_etcd_node(&n1, "n1", 0);
        make_etcd_node(&n2, "n2", 1);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_gt(res[0].pid, 0);
        cr_assert_eq(json_parse(res[0].kubeconfig, res[0].kubeconfig_size, &kc, NULL), 0);
        cr_assert_eq(json_get_array(kc, "etcdEndpoints", &arr, NULL), 0);
        cr_assert_eq(json_object_array_length(arr), 1);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(arr, 0)), url_of(0, cport));

        cr_assert_eq(
                cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[1], CP_ROLE_CONTROL_PLANE, &params, &e), 0,
                "%s", e.text);
        cr_assert_eq(json_get_string(params, "initialClusterState", &s, NULL), 0);
        cr_assert_str_eq(s, "existing");
        cr_assert_eq(json_get_string(params, "initialCluster", &s, NULL), 0);
        cr_assert_geq(asprintf(&ic, "n1=%s", url_of(0, pport)), 0);
        cr_assert(strstr(s, ic), "%s", s);
        free(ic);
        cr_assert_geq(asprintf(&ic, "n2=%s", url_of(1, pport)), 0);
        cr_assert(strstr(s, ic), "%s", s);
        /* What goes over the wire parses strictly on the other side. */
        enc = json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN);
        cr_assert_eq(
                cp_join_params_parse(&cp_driver_etcd, CP_ROLE_CONTROL_PLANE, enc, strlen(enc), &parsed, &e),
                0, "%s", e.text);
        cr_assert_eq(parsed.n_endpoints, 1);
        cr_assert_str_eq(parsed.endpoints[0], url_of(0, cport));
        cp_join_params_done(&parsed);

        /* Between join_params and join the cluster stays writable: the
         * joiner is a learner and does not count for the quorum (the join
         * service writes the registry to this very etcd meanwhile). */
        cr_assert_eq(members(0, names, &learners), 2);
        cr_assert_eq(learners, 1);
        json_object_put(etcd_post(0, "/v3/kv/put", "{\"key\":\"YXJjYS9iZWZvcmU=\",\"value\":\"eA==\"}"));

        cr_assert_eq(cp_join(&cp_driver_etcd, &n2.n, CP_ROLE_CONTROL_PLANE, params, &res[1], &e), 0, "%s",
                     e.text);
        cr_assert_gt(res[1].pid, 0);

        /* Both members, both started and voting, seen from either node. */
        for (int i = 0; i < 2; i++) {
                size_t n = members(i, names, &learners);
                cr_assert_eq(n, 2, "node %d sees %zu members", i, n);
                cr_assert(has_name(names, n, "n1") && has_name(names, n, "n2"));
                cr_assert_eq(learners, 0, "n2 was not promoted");
        }

        /* Written on n1, read on n2. */
        snprintf(value, sizeof(value), "value-%d-%ld", getpid(), (long) time(NULL));
        cr_assert_eq(base64_encode("arca/test", 9, &b64key), 0);
        cr_assert_eq(base64_encode(value, strlen(value), &b64val), 0);
        snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", b64key, b64val);
        json_object_put(etcd_post(0, "/v3/kv/put", body));
        snprintf(body, sizeof(body), "{\"key\":\"%s\"}", b64key);
        got = etcd_post(1, "/v3/kv/range", body);
        cr_assert_eq(json_get_array(got, "kvs", &kvs, NULL), 0, "key not found on n2");
        cr_assert_eq(json_object_array_length(kvs), 1);
        cr_assert_eq(json_get_string(json_object_array_get_idx(kvs, 0), "value", &s, NULL), 0);
        cr_assert_str_eq(s, b64val);

        p1 = res[0].pid;
        p2 = res[1].pid;
        /* Leader first: the last member alone waits for a leadership
         * transfer that cannot happen. */
        cr_assert_eq(cp_stop(&res[0]), 0);
        cr_assert_eq(cp_stop(&res[1]), 0);
        cr_assert(kill(p1, 0) < 0 && errno == ESRCH, "etcd n1 still there");
        cr_assert(kill(p2, 0) < 0 && errno == ESRCH, "etcd n2 still there");
        cr_assert_eq(res[0].pid, 0);
}

Test(etcd, worker_gets_endpoints_only, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *params = NULL, *kc = NULL;
        struct errmsg e = {};
        struct tnode n1, w;
        const char *names[CP_MAX_MEMBERS];
        json_object *arr;

        make_etcd_node(&n1, "n1", 0);
        make_etcd_node(&w, "w1", 2);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "w1", addr[2], CP_ROLE_WORKER, &params, &e), 0,
                     "%s", e.text);
        cr_assert_eq(json_object_object_length(params), 1, "%s", json_object_to_json_string(params));
        cr_assert_eq(members(0, names, NULL), 1, "a worker became an etcd member");

        cr_assert_eq(cp_join(&cp_driver_etcd, &w.n, CP_ROLE_WORKER, params, &res[2], &e), 0, "%s", e.text);
        cr_assert_eq(res[2].pid, 0, "a worker started etcd");
        cr_assert_eq(json_parse(res[2].kubeconfig, res[2].kubeconfig_size, &kc, NULL), 0);
        cr_assert_eq(json_get_array(kc, "etcdEndpoints", &arr, NULL), 0);
        cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(arr, 0)), url_of(0, cport));
        cr_assert(!exists(w.state), "a worker wrote etcd state");
}

/* A retried join reuses its member; a second joiner must wait until the
 * first has started. */
Test(etcd, join_params_retry_and_concurrent_join, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *p1 = NULL, *p2 = NULL;
        json_object *p3 = NULL;
        struct errmsg e = {};
        struct tnode n1;
        const char *names[CP_MAX_MEMBERS], *a, *b;

        make_etcd_node(&n1, "n1", 0);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[1], CP_ROLE_CONTROL_PLANE, &p1, &e),
                     0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[1], CP_ROLE_CONTROL_PLANE, &p2, &e),
                     0, "%s", e.text);
        cr_assert_eq(json_get_string(p1, "initialCluster", &a, NULL), 0);
        cr_assert_eq(json_get_string(p2, "initialCluster", &b, NULL), 0);
        cr_assert_str_eq(a, b);
        cr_assert_eq(members(0, names, NULL), 2);

        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n3", addr[2], CP_ROLE_CONTROL_PLANE, &p3, &e),
                     -EBUSY);
        cr_assert(strstr(e.text, "another control-plane join is under way"), "%s", e.text);
        cr_assert_null(p3);
        e = (struct errmsg){};
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n1", addr[2], CP_ROLE_CONTROL_PLANE, &p3, &e),
                     -EEXIST);
        cr_assert(strstr(e.text, "named 'n1' already exists"), "%s", e.text);
}

/* All peer URLs of the members node i knows, space separated, and the ID
 * of the member with peer URL `purl` (NULL: not asked). */
static const char *member_urls(int i, const char *purl, char id[64]) {
        _cleanup_(json_object_putp) json_object *l = etcd_post(i, "/v3/cluster/member/list", "{}");
        static char out[1024];
        json_object *arr;

        out[0] = 0;
        cr_assert_eq(json_get_array(l, "members", &arr, NULL), 0);
        for (size_t k = 0; k < json_object_array_length(arr); k++) {
                json_object *m = json_object_array_get_idx(arr, k), *urls;
                const char *mid = NULL;

                cr_assert_eq(json_get_string(m, "ID", &mid, NULL), 0);
                cr_assert(json_object_object_get_ex(m, "peerURLs", &urls));
                for (size_t u = 0; u < json_object_array_length(urls); u++) {
                        const char *x = json_object_get_string(json_object_array_get_idx(urls, u));
                        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s ", x);
                        if (purl && id && streq(x, purl))
                                snprintf(id, 64, "%s", mid);
                }
        }
        return out;
}

/* Make the learner record of member `id` look as if it were written long
 * ago (what a learner of a join that failed an hour ago has). */
static void backdate_learner(const char *id, const char *name) {
        _cleanup_free_ char *k64 = NULL, *v64 = NULL;
        char key[128], value[128], body[512];

        snprintf(key, sizeof(key), "/arca-etcd/learners/%s", id);
        snprintf(value, sizeof(value), "%lld %s", (long long) time(NULL) - 3600, name);
        cr_assert_eq(base64_encode(key, strlen(key), &k64), 0);
        cr_assert_eq(base64_encode(value, strlen(value), &v64), 0);
        snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
        json_object_put(etcd_post(0, "/v3/kv/put", body));
}

/* A control-plane joiner that failed after it was added as a learner (it
 * never started): another node's join waits while the learner may still
 * come, and removes it once it was not promoted in time. */
Test(etcd, stale_learner_of_a_failed_join_is_removed, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *p2 = NULL, *p3 = NULL;
        json_object *busy = NULL;
        struct errmsg e = {};
        struct tnode n1;
        const char *names[CP_MAX_MEMBERS], *ic;
        char id2[64] = "", p2url[64], p3url[64];
        size_t learners;

        /* (url_of's buffers are reused: keep copies) */
        snprintf(p2url, sizeof(p2url), "%s", url_of(1, pport));
        snprintf(p3url, sizeof(p3url), "%s", url_of(2, pport));
        make_etcd_node(&n1, "n1", 0);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[1], CP_ROLE_CONTROL_PLANE, &p2, &e),
                     0, "%s", e.text);
        member_urls(0, p2url, id2);
        cr_assert_neq(id2[0], 0, "n2's learner is not listed");

        /* While n2 may still come: busy, and n2's learner stays. */
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n3", addr[2], CP_ROLE_CONTROL_PLANE, &busy, &e),
                     -EBUSY);
        cr_assert(strstr(e.text, "removed if not done within"), "%s", e.text);
        cr_assert(strstr(e.text, "n2"), "%s", e.text);
        cr_assert_eq(members(0, names, &learners), 2);

        /* n2 failed long ago: n3's join removes its learner and proceeds. */
        backdate_learner(id2, "n2");
        e = (struct errmsg){};
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n3", addr[2], CP_ROLE_CONTROL_PLANE, &p3, &e), 0,
                     "%s", e.text);
        cr_assert_eq(members(0, names, &learners), 2);
        cr_assert_eq(learners, 1);
        cr_assert_null(strstr(member_urls(0, NULL, NULL), p2url), "n2's learner is still there");
        cr_assert_not_null(strstr(member_urls(0, NULL, NULL), p3url));
        cr_assert_eq(json_get_string(p3, "initialCluster", &ic, NULL), 0);
        cr_assert_null(strstr(ic, "n2="), "%s", ic);
}

/* The same node retrying its control-plane join from another address (a
 * new VM under the same name) replaces its own learner at once. */
Test(etcd, retried_join_replaces_its_own_learner, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *p1 = NULL, *p2 = NULL;
        struct errmsg e = {};
        struct tnode n1, n2;
        const char *names[CP_MAX_MEMBERS], *ic;
        char old[64], now[64];
        size_t learners;

        snprintf(old, sizeof(old), "%s", url_of(1, pport));
        snprintf(now, sizeof(now), "%s", url_of(2, pport));

        make_etcd_node(&n1, "n1", 0);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), 0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[1], CP_ROLE_CONTROL_PLANE, &p1, &e),
                     0, "%s", e.text);
        cr_assert_eq(cp_join_params(&cp_driver_etcd, &n1.n, "n2", addr[2], CP_ROLE_CONTROL_PLANE, &p2, &e),
                     0, "%s", e.text);
        cr_assert_eq(members(0, names, &learners), 2);
        cr_assert_eq(learners, 1);
        cr_assert_null(strstr(member_urls(0, NULL, NULL), old), "the old learner is still there");
        cr_assert_eq(json_get_string(p2, "initialCluster", &ic, NULL), 0);
        cr_assert(strstr(ic, now), "%s", ic);

        /* And the new one completes its join: started, caught up, voting. */
        make_etcd_node(&n2, "n2", 2);
        cr_assert_eq(cp_join(&cp_driver_etcd, &n2.n, CP_ROLE_CONTROL_PLANE, p2, &res[1], &e), 0, "%s", e.text);
        cr_assert_eq(members(0, names, &learners), 2);
        cr_assert_eq(learners, 0);
        cr_assert_eq(members(2, names, &learners), 2, "the joiner serves member requests itself");
}

Test(etcd, check_names_missing_etcd, .init = setup_etcd, .fini = teardown) {
        struct errmsg e = {};
        struct tnode n1;

        cr_assert_eq(mkdir_p(path_in("empty"), 0700), 0);
        setenv("PATH", path_in("empty"), 1);
        cr_assert_eq(cp_check(&cp_driver_etcd, &e), -ENOENT);
        cr_assert(strstr(e.text, "etcd not found"), "%s", e.text);
        cr_assert(strstr(e.text, "etcd-server"), "%s", e.text);
        make_etcd_node(&n1, "n1", 0);
        e = (struct errmsg){};
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), -ENOENT);
        cr_assert(strstr(e.text, "etcd not found"), "%s", e.text);
        cr_assert_eq(res[0].pid, 0);
}

Test(etcd, init_reports_why_etcd_exited, .init = setup_etcd, .fini = teardown) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(cport) };
        struct errmsg e = {};
        struct tnode n1;
        int fd;

        inet_pton(AF_INET, addr[0], &sa.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 && listen(fd, 1) == 0);
        make_etcd_node(&n1, "n1", 0);
        cr_assert_eq(cp_init(&cp_driver_etcd, &n1.n, &res[0], &e), -EIO);
        cr_assert(strstr(e.text, "etcd exited (exit status 1) before it became healthy"), "%s", e.text);
        cr_assert(strstr(e.text, "address already in use"), "%s", e.text);
        cr_assert_eq(res[0].pid, 0);
        close(fd);
}

Test(etcd, join_refuses_cluster_without_this_node, .init = setup_etcd, .fini = teardown) {
        _cleanup_(json_object_putp) json_object *p = NULL;
        struct errmsg e = {};
        struct tnode n2;
        char json[512];

        make_etcd_node(&n2, "n2", 1);
        /* Right name, other address; then right address, other name. */
        snprintf(json, sizeof(json),
                 "{\"endpoints\":[\"%s\"],\"initialCluster\":\"n1=%s,n2=%s\",\"initialClusterState\":"
                 "\"existing\"}",
                 url_of(0, cport), url_of(0, pport), url_of(2, pport));
        cr_assert_eq(json_parse(json, strlen(json), &p, NULL), 0);
        cr_assert_eq(cp_join(&cp_driver_etcd, &n2.n, CP_ROLE_CONTROL_PLANE, p, &res[1], &e), -EINVAL);
        cr_assert(strstr(e.text, "does not contain this node"), "%s", e.text);
        json_object_put(p);
        snprintf(json, sizeof(json),
                 "{\"endpoints\":[\"%s\"],\"initialCluster\":\"n1=%s,n3=%s\",\"initialClusterState\":"
                 "\"existing\"}",
                 url_of(0, cport), url_of(0, pport), url_of(1, pport));
        cr_assert_eq(json_parse(json, strlen(json), &p, NULL), 0);
        e = (struct errmsg){};
        cr_assert_eq(cp_join(&cp_driver_etcd, &n2.n, CP_ROLE_CONTROL_PLANE, p, &res[1], &e), -EINVAL);
        cr_assert_eq(res[1].pid, 0);
        cr_assert(!exists(n2.state), "etcd was started");
}

/* --- the join parameter parser ------------------------------------------- */

#define HASH "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define KEY "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
#define TOKEN "abcdef.0123456789abcdef"

struct pcase {
        const char *driver;
        enum cp_role role;
        const char *json;
        const char *expect; /* NULL: valid */
};

static const struct pcase pcases[] = {
        { "kubeadm", CP_ROLE_CONTROL_PLANE,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH
          "\",\"certificateKey\":\"" KEY "\"}",
          NULL },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"[fd00::1]:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}", NULL },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"api.arca.test:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          NULL },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"ABCDEF.0123456789abcdef\",\"caCertHash\":\"" HASH
          "\"}",
          "field 'token'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"abcdef.0123456789abcde\",\"caCertHash\":\"" HASH
          "\"}",
          "field 'token'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"abcdef-0123456789abcdef\",\"caCertHash\":\"" HASH
          "\"}",
          "field 'token'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":7,\"caCertHash\":\"" HASH "\"}",
          "field 'token' must be of type string" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN
          "\",\"caCertHash\":\"sha1:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b\"}",
          "field 'caCertHash'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN
          "\",\"caCertHash\":\"sha256:9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"}",
          "field 'caCertHash'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"sha256:9f86d0\"}",
          "field 'caCertHash'" },
        { "kubeadm", CP_ROLE_WORKER, "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\"}",
          "missing field 'caCertHash'" },
        { "kubeadm", CP_ROLE_CONTROL_PLANE,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "missing field 'certificateKey'" },
        { "kubeadm", CP_ROLE_CONTROL_PLANE,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH
          "\",\"certificateKey\":\"5e884898\"}",
          "field 'certificateKey'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH
          "\",\"certificateKey\":\"" KEY "\"}",
          "a worker must not be given the certificate key" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\",\"extra\":1}",
          "unknown field 'extra'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"https://10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:65536\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:06443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"fd00::1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"999.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"endpoint\":\"10.0.0.2:6443\",\"token\":\"" TOKEN
          "\",\"caCertHash\":\"" HASH "\"}",
          "duplicate key" },
        { "kubeadm", CP_ROLE_WORKER, "[\"10.0.0.1:6443\"]", "must be a JSON object" },
        { "kubeadm", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"} x",
          "invalid JSON" },
        { "etcd", CP_ROLE_WORKER,
          "{\"endpoints\":[\"http://10.0.0.1:2379\",\"https://etcd-1.arca.test:2379\"]}", NULL },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"n1=http://10.0.0.1:2380,n2=http://"
          "[fd00::2]:2380\",\"initialClusterState\":\"existing\"}",
          NULL },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":[]}", "field 'endpoints' must list" },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":\"http://10.0.0.1:2379\"}",
          "field 'endpoints' must be of type array" },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":[\"http://10.0.0.1:2379\",\"http://10.0.0.1:2379\"]}",
          "twice" },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":[\"ftp://10.0.0.1:2379\"]}", "entry 0 is not" },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":[\"http://10.0.0.1:2379/v3\"]}", "entry 0 is not" },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":[\"http://10.0.0.1\"]}", "entry 0 is not" },
        { "etcd", CP_ROLE_WORKER, "{\"endpoints\":[\"http://user@10.0.0.1:2379\"]}", "entry 0 is not" },
        { "etcd", CP_ROLE_WORKER,
          "{\"endpoints\":[\"http://10.0.0.1:1\",\"http://10.0.0.1:2\",\"http://10.0.0.1:3\",\"http://"
          "10.0.0.1:4\",\"http://10.0.0.1:5\","
          "\"http://10.0.0.1:6\",\"http://10.0.0.1:7\",\"http://10.0.0.1:8\",\"http://10.0.0.1:9\",\"http://"
          "10.0.0.1:10\",\"http://10.0.0.1:11\","
          "\"http://10.0.0.1:12\",\"http://10.0.0.1:13\",\"http://10.0.0.1:14\",\"http://"
          "10.0.0.1:15\",\"http://10.0.0.1:16\",\"http://10.0.0.1:17\"]}",
          "field 'endpoints' must list" },
        { "etcd", CP_ROLE_WORKER,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"n1=http://"
          "10.0.0.1:2380\",\"initialClusterState\":\"existing\"}",
          "a worker must not be given initialCluster" },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialClusterState\":\"existing\"}",
          "missing field 'initialCluster'" },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"N1=http://"
          "10.0.0.1:2380\",\"initialClusterState\":\"existing\"}",
          "field 'initialCluster'" },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"n1=http://10.0.0.1:2380,n2=http://"
          "10.0.0.1:2380\",\"initialClusterState\":\"existing\"}",
          "field 'initialCluster'" },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"n1=http://"
          "10.0.0.1:2380,\",\"initialClusterState\":\"existing\"}",
          "field 'initialCluster'" },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"http://"
          "10.0.0.1:2380\",\"initialClusterState\":\"existing\"}",
          "field 'initialCluster'" },
        { "etcd", CP_ROLE_CONTROL_PLANE,
          "{\"endpoints\":[\"http://10.0.0.1:2379\"],\"initialCluster\":\"n1=http://"
          "10.0.0.1:2380\",\"initialClusterState\":\"new\"}",
          "must be \"existing\"" },
        { "etcd", CP_ROLE_WORKER,
          "{\"endpoint\":\"10.0.0.1:6443\",\"token\":\"" TOKEN "\",\"caCertHash\":\"" HASH "\"}",
          "unknown field 'endpoint'" },
        { "kubeadm", CP_ROLE_WORKER, "{\"endpoints\":[\"http://10.0.0.1:2379\"]}",
          "unknown field 'endpoints'" },
};

Test(params, parser_checks_every_field) {
        for (size_t i = 0; i < ELEMENTSOF(pcases); i++) {
                const struct pcase *c = &pcases[i];
                const struct cp_driver *d = cp_driver_by_name(c->driver);
                struct cp_join_params p = {};
                struct errmsg e = {};
                int r = cp_join_params_parse(d, c->role, c->json, strlen(c->json), &p, &e);

                if (!c->expect) {
                        cr_assert_eq(r, 0, "case %zu refused: %s", i, e.text);
                        cr_assert_eq(p.role, c->role);
                        if (d == &cp_driver_kubeadm) {
                                cr_assert_str_eq(p.token, TOKEN);
                                cr_assert_str_eq(p.ca_cert_hash, HASH);
                                cr_assert_eq(p.certificate_key != NULL, c->role == CP_ROLE_CONTROL_PLANE);
                        } else {
                                cr_assert_gt(p.n_endpoints, 0);
                                cr_assert_null(p.endpoints[p.n_endpoints]);
                                cr_assert_eq(p.initial_cluster != NULL, c->role == CP_ROLE_CONTROL_PLANE);
                        }
                        cp_join_params_done(&p);
                        continue;
                }
                cr_assert_lt(r, 0, "case %zu accepted: %s", i, c->json);
                cr_assert(strstr(e.text, c->expect), "case %zu: expected '%s', got '%s'", i, c->expect,
                          e.text);
                cr_assert_null(p.token, "output touched on failure");
                cr_assert_eq(p.n_endpoints, 0, "output touched on failure");
        }
}

Test(params, validators) {
        cr_assert(cp_valid_name("n1") && cp_valid_name("node-1.zone-a") && cp_valid_name("123"));
        cr_assert(!cp_valid_name("") && !cp_valid_name("-n") && !cp_valid_name("n-") &&
                  !cp_valid_name("N1") && !cp_valid_name("a..b") && !cp_valid_name("a_b") &&
                  !cp_valid_name(NULL));
        cr_assert(cp_valid_cidrs("10.244.0.0/16") && cp_valid_cidrs("10.244.0.0/16,fd00:10:244::/56"));
        cr_assert(!cp_valid_cidrs("10.244.0.0/16,10.245.0.0/16") && !cp_valid_cidrs("10.244.0.0") &&
                  !cp_valid_cidrs("10.244.0.0/016") && !cp_valid_cidrs("fd00::/129"));
        cr_assert(cp_valid_k8s_version("v1.29.3") && !cp_valid_k8s_version("1.29.3") &&
                  !cp_valid_k8s_version("v1.29") && !cp_valid_k8s_version("v1.29.3-rc.1"));
        cr_assert(cp_valid_path("/run/state") && !cp_valid_path("run") && !cp_valid_path("/a/../b") &&
                  !cp_valid_path("/a/..") && cp_valid_path("/a/..b") && !cp_valid_path("/a b"));
        cr_assert(cp_valid_url("http://127.0.0.1:2379") && cp_valid_url("https://[::1]:2379") &&
                  !cp_valid_url("http://[127.0.0.1]:2379") && !cp_valid_url("http://:2379") &&
                  !cp_valid_url("http://h:0"));
        cr_assert(cp_valid_host("10.0.0.1") && cp_valid_host("fd00::1") && cp_valid_host("api.example") &&
                  !cp_valid_host("10.0.0.300") && !cp_valid_host("api.example.") &&
                  !cp_valid_host("*.example"));
}

Test(params, random_tokens_are_well_formed) {
        char a[17] = "", b[17] = "";
        cr_assert_eq(cp_random_alnum(a, 16), 0);
        cr_assert_eq(cp_random_alnum(b, 16), 0);
        cr_assert_str_neq(a, b);
        for (int i = 0; i < 16; i++)
                cr_assert((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9'), "%s", a);
}
