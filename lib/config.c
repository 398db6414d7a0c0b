/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "attest.h"
#include "cpdriver.h"
#include "fileio.h"
#include "openssl-util.h"
#include "platform.h"
#include "policy.h"
#include "validate.h"
#include "variant.h"

struct key_def {
        const char *section;
        const char *key;
        size_t offset;
        bool is_path;
};

#define FIELD(f) offsetof(struct arca_config, f)
static const struct key_def keys[] = {
        { "cluster", "name", FIELD(cluster_name), false },
        { "cluster", "mesh-cidr", FIELD(mesh_cidr), false },
        { "nodes", "init", FIELD(init_endpoint), false },
        { "kubernetes", "version", FIELD(k8s_version), false },
        { "kubernetes", "pod-cidr", FIELD(pod_cidr), false },
        { "kubernetes", "service-cidr", FIELD(service_cidr), false },
        { "kubernetes", "api-sans", FIELD(api_sans), false },
        { "control-plane", "driver", FIELD(driver), false },
        { "owner", "secrets", FIELD(owner_secrets), true },
        { "owner", "state", FIELD(owner_state), true },
        { "owner", "kubeconfig", FIELD(owner_kubeconfig), true },
        { "attestation", "variant", FIELD(variant), false },
        { "attestation", "policy", FIELD(policy), true },
        { "attestation", "policy-signature", FIELD(policy_signature), true },
        { "attestation", "policy-key", FIELD(policy_key), true },
        { "attestation", "platform-ca", FIELD(platform_ca), true },
};

static char *strip(char *s) {
        char *end;

        while (*s == ' ' || *s == '\t')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
                *--end = 0;
        return s;
}

static int set_default(char **field, const char *value) {
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

static int set_default_path(char **field, const char *base, const char *value) {
        if (*field)
                return 0;
        if (!base)
                return set_default(field, value);
        return path_relative_to(base, value, field);
}

/* Fill what the owner left out and check the shape of what is there. */
static int apply_defaults(struct arca_config *c, const char *base, struct errmsg *e) {
        int r;

        if ((r = set_default(&c->cluster_name, "arca")) < 0 || (r = set_default(&c->mesh_cidr, "10.123.0.0/16")) < 0 ||
            (r = set_default(&c->k8s_version, "")) < 0 || (r = set_default(&c->pod_cidr, "10.244.0.0/16")) < 0 ||
            (r = set_default(&c->service_cidr, "10.96.0.0/12")) < 0 || (r = set_default(&c->api_sans, "")) < 0 ||
            (r = set_default(&c->driver, "kubeadm")) < 0 ||
            (r = set_default_path(&c->owner_secrets, base, "arca-owner.json")) < 0 ||
            (r = set_default_path(&c->owner_state, base, "arca-cluster.json")) < 0 ||
            (r = set_default_path(&c->owner_kubeconfig, base, "arca-admin.conf")) < 0)
                return r;
        if (!valid_node_name(c->cluster_name))
                return errmsg_set(e, EBADMSG, "[cluster] name \"%s\" must be lowercase letters, digits, '-' and '.'",
                                  c->cluster_name);
        if (!valid_cidr4(c->mesh_cidr))
                return errmsg_set(e, EBADMSG, "[cluster] mesh-cidr \"%s\" is not an IPv4 network", c->mesh_cidr);
        if (!valid_cidr4(c->pod_cidr))
                return errmsg_set(e, EBADMSG, "[kubernetes] pod-cidr \"%s\" is not an IPv4 network", c->pod_cidr);
        if (!valid_cidr4(c->service_cidr))
                return errmsg_set(e, EBADMSG, "[kubernetes] service-cidr \"%s\" is not an IPv4 network",
                                  c->service_cidr);
        if (c->k8s_version[0] && !cp_valid_k8s_version(c->k8s_version))
                return errmsg_set(e, EBADMSG, "[kubernetes] version \"%s\" must look like v1.29.3", c->k8s_version);
        if (!streq(c->driver, "kubeadm") && !streq(c->driver, "etcd"))
                return errmsg_set(e, EBADMSG, "[control-plane] driver \"%s\": use kubeadm or etcd", c->driver);
        return 0;
}

void config_done(struct arca_config *c) {
        if (!c)
                return;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                char **f = (char **) ((uint8_t *) c + keys[i].offset);
                free(*f);
        }
        *c = (struct arca_config){};
}

int config_parse(const char *text, size_t len, const char *base, struct arca_config *ret, struct errmsg *e) {
        _cleanup_free_ char *buf = NULL;
        struct arca_config c = {};
        char section[64] = "";
        unsigned lineno = 0;
        char *save = NULL, *line;
        int r;

        if (len > CONFIG_MAX_SIZE)
                return errmsg_set(e, EFBIG, "configuration larger than %u bytes", CONFIG_MAX_SIZE);
        if (memchr(text, 0, len))
                return errmsg_set(e, EBADMSG, "configuration contains a NUL byte");
        buf = strndup(text, len);
        if (!buf)
                return -ENOMEM;

        /* strtok_r would skip empty lines and so miscount; split by hand. */
        for (line = buf; line; line = save) {
                char *nl = strchr(line, '\n'), *s, *eq, *k, *v;
                const struct key_def *def = NULL;
                char **field;

                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = 0;
                lineno++;
                s = strip(line);
                if (*s == 0 || *s == '#' || *s == ';')
                        continue;
                if (*s == '[') {
                        char *end = strchr(s, ']');
                        if (!end || strip(end + 1)[0] != 0 || end - s - 1 <= 0 ||
                            (size_t) (end - s - 1) >= sizeof(section)) {
                                r = errmsg_set(e, EBADMSG, "line %u: malformed section header", lineno);
                                goto fail;
                        }
                        *end = 0;
                        snprintf(section, sizeof(section), "%s", s + 1);
                        bool known = false;
                        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                                if (streq(keys[i].section, section))
                                        known = true;
                        if (!known) {
                                r = errmsg_set(e, EBADMSG, "line %u: unknown section [%s]", lineno, section);
                                goto fail;
                        }
                        continue;
                }
                eq = strchr(s, '=');
                if (!eq) {
                        r = errmsg_set(e, EBADMSG, "line %u: expected 'key = value'", lineno);
                        goto fail;
                }
                *eq = 0;
                k = strip(s);
                v = strip(eq + 1);
                if (!section[0]) {
                        r = errmsg_set(e, EBADMSG, "line %u: key '%s' outside of any section", lineno, k);
                        goto fail;
                }
                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if (streq(keys[i].section, section) && streq(keys[i].key, k))
                                def = &keys[i];
                if (!def) {
                        r = errmsg_set(e, EBADMSG, "line %u: unknown key '%s' in section [%s]", lineno, k, section);
                        goto fail;
                }
                field = (char **) ((uint8_t *) &c + def->offset);
                if (*field) {
                        r = errmsg_set(e, EBADMSG, "line %u: duplicate key '%s'", lineno, k);
                        goto fail;
                }
                if (!*v) {
                        r = errmsg_set(e, EBADMSG, "line %u: key '%s' has an empty value", lineno, k);
                        goto fail;
                }
                for (char *p = v; *p; p++)
                        if (iscntrl((unsigned char) *p)) {
                                r = errmsg_set(e, EBADMSG, "line %u: control character in value of '%s'", lineno, k);
                                goto fail;
                        }
                if (def->is_path && base)
                        r = path_relative_to(base, v, field);
                else
                        r = (*field = strdup(v)) ? 0 : -ENOMEM;
                if (r < 0)
                        goto fail;
        }

        if (!c.variant) {
                r = errmsg_set(e, EBADMSG, "missing key 'variant' in section [attestation]");
                goto fail;
        }
        if (!variant_by_name(c.variant)) {
                r = errmsg_set(e, EBADMSG, "[attestation] variant: unknown variant \"%s\"", c.variant);
                goto fail;
        }
        if (!c.policy) {
                r = errmsg_set(e, EBADMSG, "missing key 'policy' in section [attestation]");
                goto fail;
        }
        if (c.policy_signature && !c.policy_key) {
                r = errmsg_set(e, EBADMSG, "[attestation] policy-signature needs policy-key");
                goto fail;
        }
        if (streq(c.variant, "qemu-vtpm") && !c.platform_ca) {
                r = errmsg_set(e, EBADMSG, "[attestation] variant qemu-vtpm needs platform-ca");
                goto fail;
        }
        r = apply_defaults(&c, base, e);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        config_done(&c);
        return r;
}

int config_load(const char *path, struct arca_config *ret, struct errmsg *e) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        r = read_full_file(path, CONFIG_MAX_SIZE, &text, &len);
        if (r < 0)
                return errmsg_set(e, r, "%s: %s", path, strerror(-r));
        r = config_parse(text, len, path, ret, e);
        if (r < 0)
                errmsg_prefix(e, "%s", path);
        return r;
}

int config_make_verifier(const struct arca_config *c, struct verifier **ret, struct errmsg *e) {
        _cleanup_(X509_STORE_freep) X509_STORE *roots = NULL;
        struct policy policy;
        int r;

        r = policy_load(c->policy, c->policy_signature, c->policy_key, &policy, e);
        if (r < 0)
                return r;
        if (c->platform_ca) {
                r = platform_roots_load(c->platform_ca, &roots, e);
                if (r < 0)
                        return r;
        }
        return verifier_new(c->variant, &policy, roots, ret, e);
}
