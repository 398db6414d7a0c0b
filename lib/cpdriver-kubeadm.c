/* SPDX-License-Identifier: Apache-2.0 */
/* Control-plane driver "kubeadm": `kubeadm init` and `kubeadm join` with a
 * generated kubeadm.k8s.io/v1beta3 configuration whose node IP, advertise
 * address and API endpoint are the node's mesh address.
 *
 * Nothing long-lived is handed out to joiners: for every join the join
 * service creates a fresh bootstrap token (`kubeadm token create`, valid
 * 1 h) and, for a control-plane joiner, uploads the control-plane
 * certificates again under a fresh certificate key (`kubeadm init phase
 * upload-certs`; kubeadm deletes them after 2 h). So `kubeadm init` itself
 * uploads no certificates, and its own bootstrap token is short-lived and
 * never used. Tokens and keys reach kubeadm in configuration files, never
 * on a command line (visible in /proc).
 *
 * Configuration files carry secrets (token, certificate key): they are
 * written 0600 under <state_dir>/kubeadm (the encrypted state disk) and
 * removed as soon as kubeadm returns. Every value that goes into them has
 * been validated against a restrictive grammar first (cpdriver.c), so none
 * can break out of its double-quoted YAML scalar. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "cpdriver.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "openssl-util.h"
#include "secret.h"

#define KUBEADM_TIMEOUT_SEC (30 * 60)
#define KUBEADM_QUICK_TIMEOUT_SEC 120
#define KUBEADM_TOKEN_TTL "1h0m0s"
#define KUBEADM_CONFIG_MAX (32 * 1024)
#define KUBECONFIG_MAX (1024 * 1024)

static const char *kdir(const struct cp_node *n) {
        return n->kubernetes_dir ? n->kubernetes_dir : CP_KUBERNETES_DIR_DEFAULT;
}

static uint16_t api_port(const struct cp_node *n) {
        return n->api_port ? n->api_port : CP_API_PORT_DEFAULT;
}

static int kubeadm_find(char **ret, struct errmsg *e) {
        return cp_find_binary("kubeadm", ret, e);
}

static int kubeadm_check(struct errmsg *e) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        int r;

        r = kubeadm_find(&a, e);
        if (r < 0)
                return r;
        r = cp_find_binary("kubelet", &b, e);
        if (r == -ENOENT)
                errmsg_prefix(e, "kubeadm needs the kubelet on every node");
        return r;
}

/* A configuration document in a fixed buffer that is wiped when freed. */
struct doc {
        char *p;
        size_t len;
        bool overflow;
};

static void doc_free(struct doc *d) {
        if (d->p)
                secret_free(d->p, KUBEADM_CONFIG_MAX);
        *d = (struct doc){};
}

static _printf_(2, 3) void doc_add(struct doc *d, const char *fmt, ...) {
        va_list ap;
        int n;

        if (d->overflow)
                return;
        va_start(ap, fmt);
        n = vsnprintf(d->p + d->len, KUBEADM_CONFIG_MAX - d->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= KUBEADM_CONFIG_MAX - d->len)
                d->overflow = true;
        else
                d->len += (size_t) n;
}

static void add_node_registration(struct doc *d, const struct cp_node *n) {
        doc_add(d,
                "nodeRegistration:\n"
                "  name: \"%s\"\n"
                "  kubeletExtraArgs:\n"
                "    node-ip: \"%s\"\n",
                n->name, n->address);
}

/* InitConfiguration (with a bootstrap token and/or certificate key)
 * followed by the ClusterConfiguration. Version and networking are
 * optional here: only init needs them (validate_node). */
static int make_init_config(const struct cp_node *n, const char *token, const char *description,
                            const char *certificate_key, struct doc *d) {
        char endpoint[80];
        int r;

        r = cp_hostport(n->address, api_port(n), endpoint, sizeof(endpoint));
        if (r < 0)
                return r;
        d->p = malloc(KUBEADM_CONFIG_MAX);
        if (!d->p)
                return -ENOMEM;
        d->p[0] = 0;
        doc_add(d, "apiVersion: kubeadm.k8s.io/v1beta3\n"
                   "kind: InitConfiguration\n");
        if (token) {
                doc_add(d,
                        "bootstrapTokens:\n"
                        "  - token: \"%s\"\n"
                        "    ttl: \"%s\"\n",
                        token, KUBEADM_TOKEN_TTL);
                if (description)
                        doc_add(d, "    description: \"%s\"\n", description);
                doc_add(d, "    usages:\n"
                           "      - \"signing\"\n"
                           "      - \"authentication\"\n"
                           "    groups:\n"
                           "      - \"system:bootstrappers:kubeadm:default-node-token\"\n");
        }
        if (certificate_key)
                doc_add(d, "certificateKey: \"%s\"\n", certificate_key);
        doc_add(d,
                "localAPIEndpoint:\n"
                "  advertiseAddress: \"%s\"\n"
                "  bindPort: %u\n",
                n->address, api_port(n));
        add_node_registration(d, n);
        doc_add(d,
                "---\n"
                "apiVersion: kubeadm.k8s.io/v1beta3\n"
                "kind: ClusterConfiguration\n"
                "clusterName: \"%s\"\n",
                n->cluster_name ? n->cluster_name : CP_CLUSTER_NAME_DEFAULT);
        if (n->k8s_version)
                doc_add(d, "kubernetesVersion: \"%s\"\n", n->k8s_version);
        doc_add(d,
                "controlPlaneEndpoint: \"%s\"\n"
                "certificatesDir: \"%s/pki\"\n",
                endpoint, kdir(n));
        if (n->pod_cidr || n->service_cidr)
                doc_add(d, "networking:\n");
        if (n->pod_cidr)
                doc_add(d, "  podSubnet: \"%s\"\n", n->pod_cidr);
        if (n->service_cidr)
                doc_add(d, "  serviceSubnet: \"%s\"\n", n->service_cidr);
        doc_add(d,
                "apiServer:\n"
                "  certSANs:\n"
                "    - \"%s\"\n",
                n->address);
        for (size_t i = 0; n->api_sans && n->api_sans[i]; i++)
                if (!streq(n->api_sans[i], n->address))
                        doc_add(d, "    - \"%s\"\n", n->api_sans[i]);
        return d->overflow ? -E2BIG : 0;
}

static int make_join_config(const struct cp_node *n, const struct cp_join_params *p, struct doc *d) {
        d->p = malloc(KUBEADM_CONFIG_MAX);
        if (!d->p)
                return -ENOMEM;
        d->p[0] = 0;
        doc_add(d,
                "apiVersion: kubeadm.k8s.io/v1beta3\n"
                "kind: JoinConfiguration\n"
                "caCertPath: \"%s/pki/ca.crt\"\n"
                "discovery:\n"
                "  bootstrapToken:\n"
                "    apiServerEndpoint: \"%s\"\n"
                "    token: \"%s\"\n"
                "    caCertHashes:\n"
                "      - \"%s\"\n"
                "  tlsBootstrapToken: \"%s\"\n",
                kdir(n), p->endpoint, p->token, p->ca_cert_hash, p->token);
        add_node_registration(d, n);
        if (p->role == CP_ROLE_CONTROL_PLANE)
                doc_add(d,
                        "controlPlane:\n"
                        "  localAPIEndpoint:\n"
                        "    advertiseAddress: \"%s\"\n"
                        "    bindPort: %u\n"
                        "  certificateKey: \"%s\"\n",
                        n->address, api_port(n), p->certificate_key);
        return d->overflow ? -E2BIG : 0;
}

/* Write the document to <state_dir>/kubeadm/<file> (0600), run kubeadm
 * with `args` (the path substituted for "@CONFIG@"), remove the file. */
static int run_with_config(const struct cp_node *n, const char *what, const char *file, const struct doc *d,
                           char *const args[], struct errmsg *e) {
        _cleanup_free_ char *dir = NULL, *path = NULL, *bin = NULL;
        char *argv[16];
        size_t k = 0;
        int r;

        r = kubeadm_find(&bin, e);
        if (r < 0)
                return r;
        if (asprintf(&dir, "%s/kubeadm", n->state_dir) < 0 || asprintf(&path, "%s/%s", dir, file) < 0)
                return -ENOMEM;
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return errmsg_set(e, r, "cannot create %s: %s", dir, strerror(-r));
        argv[k++] = bin;
        for (size_t i = 0; args[i] && k < ELEMENTSOF(argv) - 1; i++)
                argv[k++] = streq(args[i], "@CONFIG@") ? path : args[i];
        argv[k] = NULL;
        r = write_file_atomic(path, d->p, d->len, 0600);
        if (r < 0)
                return errmsg_set(e, r, "cannot write %s: %s", path, strerror(-r));
        r = cp_run(what, argv, KUBEADM_TIMEOUT_SEC, e);
        (void) unlink(path);
        return r;
}

static int read_kubeconfig(const struct cp_node *n, const char *file, struct cp_result *ret,
                           struct errmsg *e) {
        _cleanup_free_ char *path = NULL;
        char *buf;
        size_t size;
        int r;

        if (asprintf(&path, "%s/%s", kdir(n), file) < 0)
                return -ENOMEM;
        r = read_full_file(path, KUBECONFIG_MAX, &buf, &size);
        if (r < 0)
                return errmsg_set(e, r, "kubeadm succeeded but %s cannot be read: %s", path, strerror(-r));
        ret->kubeconfig = buf;
        ret->kubeconfig_size = size;
        return 0;
}

static int new_token(char token[static 24]) {
        int r = cp_random_alnum(token, 6);
        if (r < 0)
                return r;
        token[6] = '.';
        r = cp_random_alnum(token + 7, 16);
        token[23] = 0;
        return r;
}

static int kubeadm_init(const struct cp_node *node, struct cp_result *ret, struct errmsg *e) {
        _cleanup_(doc_free) struct doc d = {};
        char token[24];
        int r;

        r = kubeadm_check(e);
        if (r < 0)
                return r;
        r = new_token(token);
        if (r >= 0)
                r = make_init_config(node, token, NULL, NULL, &d);
        secret_wipe(token, sizeof(token));
        if (r < 0)
                return r == -E2BIG ? errmsg_set(e, r, "kubeadm configuration too large") : r;
        /* Secrets on stdout: kubeadm prints the join command otherwise. */
        r = run_with_config(node, "kubeadm init", "init.yaml", &d,
                            (char *[]){ "init", "--config", "@CONFIG@", "--skip-token-print", NULL }, e);
        if (r < 0)
                return r;
        return read_kubeconfig(node, "admin.conf", ret, e);
}

/* "sha256:<hex>" of the DER SubjectPublicKeyInfo of the cluster CA, as
 * kubeadm's discovery.bootstrapToken.caCertHashes expects. */
static int ca_cert_hash(const struct cp_node *n, char ret[static 72], struct errmsg *e) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(X509_freep) X509 *x = NULL;
        uint8_t h[32];
        EVP_PKEY *k;
        int r;

        if (asprintf(&path, "%s/pki/ca.crt", kdir(n)) < 0)
                return -ENOMEM;
        r = pem_read_x509_file(path, &x);
        if (r < 0)
                return errmsg_set(e, r, "cannot read the cluster CA %s: %s", path,
                                  r == -EBADMSG ? "not a PEM certificate" : strerror(-r));
        k = X509_get0_pubkey(x);
        if (!k)
                return openssl_error(e, -EBADMSG, "public key of the cluster CA");
        r = pubkey_spki_sha256(k, h);
        if (r < 0)
                return errmsg_set(e, r, "cannot hash the cluster CA's public key");
        memcpy(ret, "sha256:", 7);
        hex_encode_buf(h, sizeof(h), ret + 7);
        return 0;
}

static int kubeadm_join_params(const struct cp_node *node, const char *joiner_name,
                               const char *joiner_address, enum cp_role role, json_object **ret,
                               struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *out = NULL;
        _cleanup_(doc_free) struct doc d = {};
        _cleanup_free_ char *kubeconfig = NULL, *description = NULL;
        _cleanup_(secret32_wipe) uint8_t key[32] = {};
        char hash[72], token[24] = "", endpoint[80], key_hex[65] = "";
        bool cp = role == CP_ROLE_CONTROL_PLANE;
        _cleanup_free_ char *bin = NULL;
        int r;

        r = kubeadm_find(&bin, e);
        if (r < 0)
                return r;
        r = ca_cert_hash(node, hash, e);
        if (r < 0)
                return r;
        r = cp_hostport(node->address, api_port(node), endpoint, sizeof(endpoint));
        if (r < 0)
                return r;
        if (asprintf(&kubeconfig, "%s/admin.conf", kdir(node)) < 0 ||
            asprintf(&description, "arca: %s joins as %s", joiner_name, cp_role_to_string(role)) < 0)
                return -ENOMEM;

        /* One configuration file carries the token and the certificate key,
         * so that neither appears on a command line. */
        r = new_token(token);
        if (r >= 0 && cp) {
                r = secret_random(key, sizeof(key));
                hex_encode_buf(key, sizeof(key), key_hex);
        }
        if (r >= 0)
                r = make_init_config(node, token, description, cp ? key_hex : NULL, &d);
        if (r < 0) {
                r = r == -E2BIG ? errmsg_set(e, r, "kubeadm configuration too large") : r;
                goto out;
        }
        r = run_with_config(
                node, "kubeadm token create", "join-token.yaml", &d,
                (char *[]){ "token", "create", "--config", "@CONFIG@", "--kubeconfig", kubeconfig, NULL },
                e);
        if (r < 0)
                goto out;
        if (cp) {
                /* kubeadm deletes uploaded certificates after two hours. */
                r = run_with_config(node, "kubeadm init phase upload-certs", "upload-certs.yaml", &d,
                                    (char *[]){ "init", "phase", "upload-certs", "--upload-certs",
                                                "--config", "@CONFIG@", "--kubeconfig", kubeconfig,
                                                "--skip-certificate-key-print", NULL },
                                    e);
                if (r < 0)
                        goto out;
        }

        r = -ENOMEM;
        out = json_object_new_object();
        if (!out || json_add_string(out, "endpoint", endpoint) < 0 ||
            json_add_string(out, "token", token) < 0 || json_add_string(out, "caCertHash", hash) < 0 ||
            (cp && json_add_string(out, "certificateKey", key_hex) < 0))
                goto out;
        *ret = TAKE_PTR(out);
        r = 0;
out:
        secret_wipe(token, sizeof(token));
        secret_wipe(key_hex, sizeof(key_hex));
        return r;
}

static bool valid_certificate_key(const char *s) {
        return cp_valid_hex(s, 32);
}

static int kubeadm_parse_params(json_object *o, enum cp_role role, struct cp_join_params *ret,
                                struct errmsg *e) {
        static const char *const worker_fields[] = { "endpoint", "token", "caCertHash", NULL };
        static const char *const cp_fields[] = { "endpoint", "token", "caCertHash", "certificateKey", NULL };
        int r;

        r = cp_json_only_fields(o, role == CP_ROLE_CONTROL_PLANE ? cp_fields : worker_fields, e);
        if (r < 0) {
                if (role == CP_ROLE_WORKER && json_object_object_get_ex(o, "certificateKey", NULL))
                        return errmsg_replace(e, EBADMSG, "a worker must not be given the certificate key");
                return r;
        }
        r = cp_json_get_valid(o, "endpoint", cp_valid_hostport, "host:port", &ret->endpoint, e);
        if (r < 0)
                return r;
        r = cp_json_get_valid(o, "token", cp_valid_token, "a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})",
                              &ret->token, e);
        if (r < 0)
                return r;
        r = cp_json_get_valid(o, "caCertHash", cp_valid_ca_cert_hash, "sha256: and 64 lowercase hex digits",
                              &ret->ca_cert_hash, e);
        if (r < 0)
                return r;
        if (role == CP_ROLE_CONTROL_PLANE) {
                r = cp_json_get_valid(o, "certificateKey", valid_certificate_key, "64 lowercase hex digits",
                                      &ret->certificate_key, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int kubeadm_join(const struct cp_node *node, const struct cp_join_params *p, struct cp_result *ret,
                        struct errmsg *e) {
        _cleanup_(doc_free) struct doc d = {};
        int r;

        r = kubeadm_check(e);
        if (r < 0)
                return r;
        r = make_join_config(node, p, &d);
        if (r < 0)
                return r == -E2BIG ? errmsg_set(e, r, "kubeadm configuration too large") : r;
        r = run_with_config(node, "kubeadm join", "join.yaml", &d,
                            (char *[]){ "join", "--config", "@CONFIG@", NULL }, e);
        if (r < 0)
                return r;
        /* A control-plane node gets an admin kubeconfig; a worker only its
         * kubelet's, which stays where kubeadm put it. */
        if (p->role == CP_ROLE_CONTROL_PLANE)
                return read_kubeconfig(node, "admin.conf", ret, e);
        return 0;
}

const struct cp_driver cp_driver_kubeadm = {
        .name = "kubeadm",
        .kubernetes = true,
        .check = kubeadm_check,
        .init = kubeadm_init,
        .join_params = kubeadm_join_params,
        .parse_params = kubeadm_parse_params,
        .join = kubeadm_join,
};
