/* SPDX-License-Identifier: Apache-2.0 */
/* Membership on etcd: member records, mesh addresses,
 * joins and disks, each write one transaction (registry-etcd.c sends it;
 * registry-cache.c keeps the member cache). */
#include "registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "registry-internal.h"
#include "secret.h"

/* --- small helpers ------------------------------------------------------------ */

static bool terminated(const char *buf, size_t size) {
        return memchr(buf, 0, size) != NULL;
}

/* The canonical text form (what inet_ntop prints), so that one address has
 * exactly one key. */
static bool canonical_address(const char *s) {
        char again[INET6_ADDRSTRLEN];
        uint8_t a[16];
        int af = strchr(s, ':') ? AF_INET6 : AF_INET;

        return inet_pton(af, s, a) == 1 && inet_ntop(af, a, again, sizeof(again)) && streq(again, s);
}

/* Decimal digits without sign, space or leading zero (validate.h's checks
 * go through strtol, which lets " 80" and "080" pass). */
static bool canonical_number(const char *s, size_t max_digits) {
        size_t n = strlen(s);

        if (n == 0 || n > max_digits || (n > 1 && s[0] == '0'))
                return false;
        return strspn(s, "0123456789") == n;
}

static bool canonical_endpoint(const char *s) {
        const char *colon = strrchr(s, ':');

        return valid_endpoint(s) && colon && canonical_number(colon + 1, 5);
}

static bool lowercase_uuid(const char *s) {
        if (!valid_uuid(s))
                return false;
        for (; *s; s++)
                if (*s >= 'A' && *s <= 'F')
                        return false;
        return true;
}

/* --- member records -------------------------------------------------------------- */

static const char *const member_fields[] = {
        "name",     "role",     "meshAddress", "wireguardPublicKey", "endpoint", "diskUuid",
        "joinTime", "lastSeen", "akName",      NULL,
};

/* "" (not recorded) or "000b" + 64 lowercase hex digits. */
static bool valid_ak_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0)
                return true;
        return n == REGISTRY_AK_NAME_HEX && strncmp(s, "000b", 4) == 0 &&
               strspn(s, "0123456789abcdef") == REGISTRY_AK_NAME_HEX;
}

int registry_member_validate(const struct registry_member *m, struct errmsg *e) {
        struct {
                const char *field;
                const char *buf;
                size_t size;
                bool (*valid)(const char *s);
        } fields[] = {
                { "name", m->name, sizeof(m->name), valid_node_name },
                { "role", m->role, sizeof(m->role), valid_role },
                { "meshAddress", m->mesh_address, sizeof(m->mesh_address), canonical_address },
                { "wireguardPublicKey", m->wg_public_key, sizeof(m->wg_public_key), valid_wg_key },
                { "endpoint", m->endpoint, sizeof(m->endpoint), canonical_endpoint },
                { "diskUuid", m->disk_uuid, sizeof(m->disk_uuid), lowercase_uuid },
                { "akName", m->ak_name, sizeof(m->ak_name), valid_ak_name },
        };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (!terminated(fields[i].buf, fields[i].size))
                        return errmsg_set(e, EINVAL, "member: field '%s' is not terminated",
                                          fields[i].field);
                if (!fields[i].valid(fields[i].buf))
                        return errmsg_set(e, EINVAL, "member: field '%s' has an invalid value \"%s\"",
                                          fields[i].field, PRINTABLE(fields[i].buf));
        }
        if (m->join_time < 0 || m->join_time > REGISTRY_MAX_TIME)
                return errmsg_set(e, EINVAL, "member: field 'joinTime' is out of range");
        if (m->last_seen < 0 || m->last_seen > REGISTRY_MAX_TIME)
                return errmsg_set(e, EINVAL, "member: field 'lastSeen' is out of range");
        return 0;
}

int registry_member_parse(const char *buf, size_t len, struct registry_member *ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct registry_member m = {};
        struct errmsg inner = {};
        int r;

        if (len > REGISTRY_MAX_MEMBER_JSON)
                return errmsg_set(e, EFBIG, "member: record larger than %u bytes", REGISTRY_MAX_MEMBER_JSON);
        r = json_parse(buf, len, &o, e);
        if (r < 0) {
                errmsg_prefix(e, "member");
                return r;
        }
        r = json_check_fields(o, member_fields, e);
        if (r < 0) {
                errmsg_prefix(e, "member");
                return r;
        }
        if ((r = json_get_string_buf(o, "name", m.name, sizeof(m.name), &inner)) < 0 ||
            (r = json_get_string_buf(o, "role", m.role, sizeof(m.role), &inner)) < 0 ||
            (r = json_get_string_buf(o, "meshAddress", m.mesh_address, sizeof(m.mesh_address), &inner)) <
                    0 ||
            (r = json_get_string_buf(o, "wireguardPublicKey", m.wg_public_key, sizeof(m.wg_public_key),
                                     &inner)) < 0 ||
            (r = json_get_string_buf(o, "endpoint", m.endpoint, sizeof(m.endpoint), &inner)) < 0 ||
            (r = json_get_string_buf(o, "diskUuid", m.disk_uuid, sizeof(m.disk_uuid), &inner)) < 0 ||
            (r = json_get_int(o, "joinTime", &m.join_time, &inner)) < 0 ||
            (r = json_get_int(o, "lastSeen", &m.last_seen, &inner)) < 0 ||
            (json_object_object_get_ex(o, "akName", NULL) &&
             (r = json_get_string_buf(o, "akName", m.ak_name, sizeof(m.ak_name), &inner)) < 0)) {
                errmsg_set(e, EBADMSG, "member: %s", inner.text);
                return r;
        }
        /* Absent and empty are one thing; only one of them is written. */
        if (json_object_object_get_ex(o, "akName", NULL) && !m.ak_name[0])
                return errmsg_set(e, EBADMSG, "member: field 'akName' is empty (omit it instead)");
        r = registry_member_validate(&m, &inner);
        if (r < 0)
                return errmsg_set(e, EBADMSG, "%s", inner.text);
        *ret = m;
        return 0;
}

int registry_member_to_json(const struct registry_member *m, char **ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s;
        size_t len;
        char *copy;
        int r;

        r = registry_member_validate(m, e);
        if (r < 0)
                return r;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (json_add_string(o, "name", m->name) < 0 || json_add_string(o, "role", m->role) < 0 ||
            json_add_string(o, "meshAddress", m->mesh_address) < 0 ||
            json_add_string(o, "wireguardPublicKey", m->wg_public_key) < 0 ||
            json_add_string(o, "endpoint", m->endpoint) < 0 ||
            json_add_string(o, "diskUuid", m->disk_uuid) < 0 ||
            json_add_int(o, "joinTime", m->join_time) < 0 || json_add_int(o, "lastSeen", m->last_seen) < 0 ||
            (m->ak_name[0] && json_add_string(o, "akName", m->ak_name) < 0))
                return -ENOMEM;
        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* --- keys ----------------------------------------------------------------------- */

static void make_key(const struct registry *reg, char buf[static KEY_BUF], const char *kind,
                     const char *suffix) {
        snprintf(buf, KEY_BUF, "%s%s/%s", reg->prefix, kind, suffix ? suffix : "");
}

/* The only range response of a txn at index i, checked for shape. */
static int txn_range(const struct registry_txn *t, size_t i, struct registry_range **ret, struct errmsg *e) {
        if (i >= t->n_responses || t->responses[i].type != REGISTRY_OP_RANGE)
                return errmsg_set(e, EBADMSG, "etcd txn response: response %zu is missing or not a range",
                                  i);
        *ret = &t->responses[i].range;
        return 0;
}

/* The single pair a range on one key can give, or NULL; checks the key. */
static int single_kv(const struct registry_range *rr, const char *key, const struct registry_kv **ret,
                     struct errmsg *e) {
        if (rr->n_kvs == 0) {
                *ret = NULL;
                return 0;
        }
        if (rr->n_kvs != 1 || rr->kvs[0].key_size != strlen(key) ||
            memcmp(rr->kvs[0].key, key, rr->kvs[0].key_size))
                return errmsg_set(e, EBADMSG, "etcd answered for other keys than \"%s\"", PRINTABLE(key));
        *ret = &rr->kvs[0];
        return 0;
}

/* A value that must be a node name. */
static int kv_node_name(const struct registry_kv *kv, char ret[static NODE_NAME_MAX + 1], struct errmsg *e) {
        if (kv->value_size > NODE_NAME_MAX || strlen(kv->value) != kv->value_size ||
            !valid_node_name(kv->value))
                return errmsg_set(e, EBADMSG, "registry key \"%s\" does not hold a node name",
                                  PRINTABLE(kv->key));
        memcpy(ret, kv->value, kv->value_size + 1);
        return 0;
}

static int kv_address(const struct registry_kv *kv, char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        if (kv->value_size >= INET6_ADDRSTRLEN || strlen(kv->value) != kv->value_size ||
            !canonical_address(kv->value))
                return errmsg_set(e, EBADMSG, "registry key \"%s\" does not hold an address",
                                  PRINTABLE(kv->key));
        memcpy(ret, kv->value, kv->value_size + 1);
        return 0;
}

static int kv_member(const struct registry_kv *kv, size_t prefix_len, struct registry_member *ret,
                     struct errmsg *e) {
        struct registry_member m;
        int r;

        r = registry_member_parse(kv->value, kv->value_size, &m, e);
        if (r < 0) {
                errmsg_prefix(e, "registry key \"%s\"", PRINTABLE(kv->key));
                return r;
        }
        if (kv->key_size != prefix_len + strlen(m.name) || !streq(kv->key + prefix_len, m.name))
                return errmsg_set(e, EBADMSG, "registry key \"%s\" holds the record of member '%s'",
                                  PRINTABLE(kv->key), m.name);
        m.mod_revision = kv->mod_revision;
        *ret = m;
        return 0;
}

/* A pair of a range over prefix (range answers are checked: etcd hands
 * out nothing outside what was asked). */
static int kv_under(const struct registry_kv *kv, const char *prefix, struct errmsg *e) {
        size_t plen = strlen(prefix);

        if (kv->key_size <= plen || memcmp(kv->key, prefix, plen) != 0)
                return errmsg_set(e, EBADMSG, "etcd answered with key \"%s\" outside \"%s\"", PRINTABLE(kv->key),
                                  prefix);
        return 0;
}

/* Whether kv holds exactly the string s. */
static bool kv_is(const struct registry_kv *kv, const char *s) {
        return kv->value_size == strlen(s) && memcmp(kv->value, s, kv->value_size) == 0;
}

/* Read one key into rr: its pair, or NULL when it is absent. */
static int get_key(struct registry *reg, const char *key, struct registry_range *rr, const struct registry_kv **ret,
                   struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = reg_range_body(key, NULL, false, 0);
        int r;

        if (!req)
                return -ENOMEM;
        r = reg_etcd_range(reg, req, 1, rr, e);
        return r < 0 ? r : single_kv(rr, key, ret, e);
}

static int check_name(const char *name, struct errmsg *e) {
        if (!name || !valid_node_name(name))
                return errmsg_set(e, EINVAL, "invalid node name \"%s\"", name ? PRINTABLE(name) : "(null)");
        return 0;
}

static int normalize_uuid(const char *uuid, char ret[static UUID_STRING_SIZE], struct errmsg *e) {
        if (!uuid || !valid_uuid(uuid))
                return errmsg_set(e, EINVAL, "invalid disk UUID \"%s\"", uuid ? PRINTABLE(uuid) : "(null)");
        for (size_t i = 0; i < UUID_STRING_SIZE; i++)
                ret[i] = (uuid[i] >= 'A' && uuid[i] <= 'F') ? (char) (uuid[i] - 'A' + 'a') : uuid[i];
        return 0;
}

/* --- WireGuard keys ------------------------------------------------------------- */

/* What the registry holds for a member record about to be written, as the
 * failure branch of the last transaction read it (or as assumed before
 * the first): the record, and the index entry of the key it is written
 * with. */
struct member_view {
        int64_t rev;                    /* the record's mod_revision; 0: no record */
        char key[WG_KEY_B64_SIZE];      /* the record's WireGuard key; "" without one */
        char holder[NODE_NAME_MAX + 1]; /* who wgkeys/<new key> names; "" if absent */
        int64_t entry_rev;              /* that entry's mod_revision */
        /* The entry names another member whose record does not name the
         * key (resolve_holder), at holder_rev (0: it has no record). */
        bool stale;
        int64_t holder_rev;
};

static bool member_view_eq(const struct member_view *a, const struct member_view *b) {
        return a->rev == b->rev && streq(a->key, b->key) && streq(a->holder, b->holder) && a->stale == b->stale &&
               (!a->stale || (a->entry_rev == b->entry_rev && a->holder_rev == b->holder_rev));
}

/* Add to t the write of record m (json) on the registry as v has it:
 * compares that the record is unchanged (at v->rev, absent for 0) and that
 * m's key is this member's in the index or absent (then created) or a
 * stale entry still as read (then taken over); the
 * record put; the entry of the key the record had before, if it is
 * another, deleted while it names this member (a nested transaction, so
 * that an entry is only ever removed for its holder); and, in the failure
 * branch, reads of the record and of m's key entry, for
 * member_view_read. */
static int add_member_write(const struct registry *reg, struct reg_txn_req *t, const struct registry_member *m,
                            const char *json, const struct member_view *v) {
        char member[KEY_BUF], key[KEY_BUF], old[KEY_BUF];
        int r;

        make_key(reg, member, "members", m->name);
        make_key(reg, key, "wgkeys", m->wg_public_key);
        r = reg_array_add(t->compare, v->rev > 0 ? reg_cmp_mod(member, v->rev) : reg_cmp_absent(member));
        if (r >= 0)
                r = reg_array_add(t->success, reg_op_put(member, json, strlen(json)));
        if (r >= 0 && streq(v->holder, m->name))
                r = reg_array_add(t->compare, reg_cmp_value(key, m->name));
        else if (r >= 0 && v->stale) {
                make_key(reg, old, "members", v->holder);
                if ((r = reg_array_add(t->compare, reg_cmp_mod(key, v->entry_rev))) >= 0)
                        r = reg_array_add(t->compare, reg_cmp_mod(old, v->holder_rev));
        } else if (r >= 0)
                r = reg_array_add(t->compare, reg_cmp_absent(key));
        if (r >= 0 && !streq(v->holder, m->name))
                r = reg_array_add(t->success, reg_op_put(key, m->name, strlen(m->name)));
        if (r >= 0 && v->key[0] && !streq(v->key, m->wg_public_key)) {
                make_key(reg, old, "wgkeys", v->key);
                r = reg_array_add(t->success, reg_op_delete_if(old, m->name));
        }
        if (r >= 0)
                r = reg_array_add(t->failure, reg_op_range(member, NULL, false, 0));
        if (r >= 0)
                r = reg_array_add(t->failure, reg_op_range(key, NULL, false, 0));
        return r;
}

/* The view a failed transaction of add_member_write read (its failure
 * responses i and i + 1). */
static int member_view_read(const struct registry *reg, const struct registry_txn *res, size_t i,
                            const struct registry_member *m, struct member_view *ret, struct errmsg *e) {
        char member[KEY_BUF], key[KEY_BUF];
        struct member_view v = {};
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        struct registry_member rec;
        int r;

        make_key(reg, member, "members", m->name);
        make_key(reg, key, "wgkeys", m->wg_public_key);
        if ((r = txn_range(res, i, &rr, e)) < 0 || (r = single_kv(rr, member, &kv, e)) < 0)
                return r;
        if (kv) {
                r = kv_member(kv, strlen(member) - strlen(m->name), &rec, e);
                if (r < 0)
                        return r;
                if (rec.mod_revision <= 0)
                        return errmsg_set(e, EBADMSG, "etcd gave registry key \"%s\" no mod_revision",
                                          PRINTABLE(member));
                v.rev = rec.mod_revision;
                memcpy(v.key, rec.wg_public_key, sizeof(v.key));
        }
        if ((r = txn_range(res, i + 1, &rr, e)) < 0 || (r = single_kv(rr, key, &kv, e)) < 0 ||
            (kv && (r = kv_node_name(kv, v.holder, e)) < 0))
                return r;
        v.entry_rev = kv ? kv->mod_revision : 0;
        *ret = v;
        return 0;
}

/* -EEXIST if v has m's WireGuard key held by another member: one whose
 * record names the key. An entry naming a member without a record, or
 * with a record naming another key, is stale (left by a join service that
 * did not know the index, or by the removal of a record that did not
 * parse): v is marked so, and the next write takes the entry over while
 * it and that record stay as read. */
static int resolve_holder(struct registry *reg, const struct registry_member *m, struct member_view *v,
                          struct errmsg *e) {
        _cleanup_(registry_range_done) struct registry_range rr = {};
        const struct registry_kv *kv;
        struct registry_member rec;
        char member[KEY_BUF];
        int r;

        if (!v->holder[0] || streq(v->holder, m->name))
                return 0;
        make_key(reg, member, "members", v->holder);
        r = get_key(reg, member, &rr, &kv, e);
        if (r < 0)
                return r;
        if (kv) {
                r = kv_member(kv, strlen(member) - strlen(v->holder), &rec, e);
                if (r < 0)
                        return r;
                if (streq(rec.wg_public_key, m->wg_public_key))
                        return errmsg_set(e, EEXIST, "WireGuard public key %s is held by member '%s'",
                                          m->wg_public_key, v->holder);
        }
        v->stale = true;
        v->holder_rev = kv ? kv->mod_revision : 0;
        return 0;
}

/* --- members ----------------------------------------------------------------------- */

/* Why a write of m whose member view held failed: which of its address
 * and disk the node does not hold (failure responses 0 and 1); 0 if it
 * holds both by now (changed between the comparison and the read). */
static int explain_not_held(const struct registry_txn *res, const struct registry_member *m, const char *mesh,
                            const char *disk, struct errmsg *e) {
        char holder[NODE_NAME_MAX + 1];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        if ((r = txn_range(res, 0, &rr, e)) < 0 || (r = single_kv(rr, mesh, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, EADDRNOTAVAIL, "member '%s': mesh address %s is not allocated", m->name,
                                  m->mesh_address);
        if (!kv_is(kv, m->name)) {
                r = kv_node_name(kv, holder, e);
                return r < 0 ? r
                             : errmsg_set(e, EADDRINUSE, "member '%s': mesh address %s is held by node '%s'",
                                          m->name, m->mesh_address, holder);
        }
        if ((r = txn_range(res, 1, &rr, e)) < 0 || (r = single_kv(rr, disk, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "member '%s': disk %s is not registered", m->name, m->disk_uuid);
        r = kv_node_name(kv, holder, e);
        if (r < 0)
                return r;
        if (!streq(holder, m->name))
                return errmsg_set(e, EEXIST, "member '%s': disk %s belongs to node '%s'", m->name,
                                  m->disk_uuid, holder);
        return 0;
}

/* Write record m while its node holds the address and disk it names and
 * no other member its key: registry_put_member replaces whatever record
 * there is; an update (registry_update_member) only the one read at
 * m->mod_revision. */
static int write_member(struct registry *reg, const struct registry_member *m, bool update, struct errmsg *e) {
        _cleanup_free_ char *json = NULL;
        char mesh[KEY_BUF], disk[KEY_BUF];
        struct member_view v = {};
        int r;

        r = registry_member_to_json(m, &json, e);
        if (r < 0)
                return r;
        if (update) {
                if (m->mod_revision <= 0)
                        return errmsg_set(e, EINVAL,
                                          "member '%s': no revision to update from (not read from the registry)",
                                          m->name);
                /* As a refresh mostly finds it: the record as read, its
                 * key unchanged and in the index. */
                v.rev = m->mod_revision;
                memcpy(v.key, m->wg_public_key, sizeof(v.key));
                memcpy(v.holder, m->name, strlen(m->name) + 1);
        }
        make_key(reg, mesh, "mesh", m->mesh_address);
        make_key(reg, disk, "disks", m->disk_uuid);
        for (unsigned round = 0; round < MAX_ROUNDS; round++) {
                _cleanup_(reg_txn_req_done) struct reg_txn_req t = {};
                _cleanup_(registry_txn_done) struct registry_txn res = {};
                struct member_view now;

                if ((r = reg_txn_req_init(&t)) < 0 || (r = reg_array_add(t.compare, reg_cmp_value(mesh, m->name))) < 0 ||
                    (r = reg_array_add(t.compare, reg_cmp_value(disk, m->name))) < 0 ||
                    (r = reg_array_add(t.failure, reg_op_range(mesh, NULL, false, 0))) < 0 ||
                    (r = reg_array_add(t.failure, reg_op_range(disk, NULL, false, 0))) < 0 ||
                    (r = add_member_write(reg, &t, m, json, &v)) < 0)
                        return r;
                r = reg_etcd_txn(reg, t.o, 1, &res, e);
                if (r < 0)
                        return r;
                if (res.succeeded)
                        return 0;
                r = member_view_read(reg, &res, 2, m, &now, e);
                if (r < 0)
                        return r;
                if (update && now.rev == 0)
                        return errmsg_set(e, ENOENT, "no member '%s' (removed meanwhile)", m->name);
                if (update && now.rev != m->mod_revision)
                        return errmsg_set(e, ESTALE, "member '%s' changed meanwhile", m->name);
                r = resolve_holder(reg, m, &now, e);
                if (r < 0)
                        return r;
                if (!member_view_eq(&now, &v)) {
                        /* Another record or key entry than assumed (a new
                         * key, a record without its entry): again, on
                         * what was read. */
                        v = now;
                        continue;
                }
                if (update)
                        return errmsg_set(e, EADDRNOTAVAIL,
                                          "member '%s' no longer holds mesh address %s or disk %s", m->name,
                                          m->mesh_address, m->disk_uuid);
                r = explain_not_held(&res, m, mesh, disk, e);
                if (r < 0)
                        return r;
        }
        return errmsg_set(e, EAGAIN, "writing member '%s': the registry kept changing (%u attempts)", m->name,
                          MAX_ROUNDS);
}

int registry_put_member(struct registry *reg, const struct registry_member *m, struct errmsg *e) {
        return write_member(reg, m, false, e);
}

int registry_get_member(struct registry *reg, const char *name, struct registry_member *ret,
                        struct errmsg *e) {
        _cleanup_(registry_range_done) struct registry_range rr = {};
        char key[KEY_BUF];
        const struct registry_kv *kv;
        int r;

        r = check_name(name, e);
        if (r < 0)
                return r;
        make_key(reg, key, "members", name);
        r = get_key(reg, key, &rr, &kv, e);
        if (r < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "no member '%s'", name);
        return kv_member(kv, strlen(key) - strlen(name), ret, e);
}

/* The member range (key: its prefix): records written after `since` (0:
 * all), or at store revision `at` (0: now); keys only if asked. */
static int range_members(struct registry *reg, bool keys_only, int64_t since, int64_t at, char key[static KEY_BUF],
                         struct registry_range *ret, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        char end[KEY_BUF];
        int r;

        make_key(reg, key, "members", NULL);
        reg_prefix_end(key, end, sizeof(end));
        req = reg_range_body(key, end, keys_only, REGISTRY_MAX_MEMBERS);
        /* etcd still counts every key of the range, filtered or not. */
        if (!req || (since > 0 && reg_add_int64(req, "min_mod_revision", since + 1) < 0) ||
            (at > 0 && reg_add_int64(req, "revision", at) < 0))
                return -ENOMEM;
        r = reg_etcd_range(reg, req, REGISTRY_MAX_MEMBERS, ret, e);
        if (r < 0)
                return r;
        if (ret->more || ret->count > REGISTRY_MAX_MEMBERS)
                return errmsg_set(e, EFBIG, "registry holds more than %u members", REGISTRY_MAX_MEMBERS);
        return 0;
}

int reg_read_members(struct registry *reg, int64_t since, struct registry_member **ret, size_t *ret_n,
                     int64_t *ret_count, int64_t *ret_revision, struct errmsg *e) {
        _cleanup_(registry_range_done) struct registry_range rr = {};
        _cleanup_free_ struct registry_member *list = NULL;
        char key[KEY_BUF];
        size_t plen;
        int r;

        r = range_members(reg, false, since, 0, key, &rr, e);
        if (r < 0)
                return r;
        plen = strlen(key);
        if (rr.n_kvs > 0) {
                list = calloc(rr.n_kvs, sizeof(list[0]));
                if (!list)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < rr.n_kvs; i++)
                if ((r = kv_under(&rr.kvs[i], key, e)) < 0 || (r = kv_member(&rr.kvs[i], plen, &list[i], e)) < 0)
                        return r;
        *ret_n = rr.n_kvs;
        *ret = TAKE_PTR(list);
        *ret_count = rr.count;
        *ret_revision = rr.revision;
        return 0;
}

int reg_read_member_names(struct registry *reg, int64_t revision, char (**ret)[NODE_NAME_MAX + 1], size_t *ret_n,
                          struct errmsg *e) {
        _cleanup_(registry_range_done) struct registry_range rr = {};
        _cleanup_free_ char(*names)[NODE_NAME_MAX + 1] = NULL;
        char key[KEY_BUF];
        size_t plen;
        int r;

        r = range_members(reg, true, 0, revision, key, &rr, e);
        if (r < 0)
                return r;
        plen = strlen(key);
        if (rr.n_kvs > 0) {
                names = calloc(rr.n_kvs, sizeof(names[0]));
                if (!names)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < rr.n_kvs; i++) {
                const char *name = rr.kvs[i].key + plen;

                if (rr.kvs[i].key_size <= plen || memcmp(rr.kvs[i].key, key, plen) != 0 ||
                    strlen(name) != rr.kvs[i].key_size - plen || !valid_node_name(name))
                        return errmsg_set(e, EBADMSG, "etcd answered with key \"%s\", not a member under \"%s\"",
                                          PRINTABLE(rr.kvs[i].key), key);
                memcpy(names[i], name, strlen(name) + 1);
        }
        *ret_n = rr.n_kvs;
        *ret = TAKE_PTR(names);
        return 0;
}

int registry_delete_member(struct registry *reg, const char *name, struct errmsg *e) {
        char member[KEY_BUF], node[KEY_BUF], disks[KEY_BUF], disks_end[KEY_BUF];
        int r;

        r = check_name(name, e);
        if (r < 0)
                return r;
        make_key(reg, member, "members", name);
        make_key(reg, node, "mesh-nodes", name);
        make_key(reg, disks, "disks", NULL);
        reg_prefix_end(disks, disks_end, sizeof(disks_end));

        for (unsigned round = 0; round < MAX_ROUNDS; round++) {
                _cleanup_(reg_txn_req_done) struct reg_txn_req snap = {}, del = {};
                _cleanup_(registry_txn_done) struct registry_txn s = {}, d = {};
                struct registry_range *rm = NULL, *rn = NULL, *rd = NULL;
                const struct registry_kv *kvm, *kvn;
                char address[INET6_ADDRSTRLEN], mesh[KEY_BUF];
                size_t n_deletes = 0;

                /* One consistent read of everything the node holds... */
                if ((r = reg_txn_req_init(&snap)) < 0 ||
                    (r = reg_array_add(snap.success, reg_op_range(member, NULL, false, 0))) < 0 ||
                    (r = reg_array_add(snap.success, reg_op_range(node, NULL, false, 0))) < 0 ||
                    (r = reg_array_add(snap.success, reg_op_range(disks, disks_end, false, REGISTRY_MAX_DISKS))) < 0)
                        return r;
                r = reg_etcd_txn(reg, snap.o, REGISTRY_MAX_DISKS, &s, e);
                if (r < 0)
                        return r;
                if ((r = txn_range(&s, 0, &rm, e)) < 0 || (r = txn_range(&s, 1, &rn, e)) < 0 ||
                    (r = txn_range(&s, 2, &rd, e)) < 0 || (r = single_kv(rm, member, &kvm, e)) < 0 ||
                    (r = single_kv(rn, node, &kvn, e)) < 0)
                        return r;
                if (rd->more)
                        return errmsg_set(e, EFBIG, "registry holds more than %u disks", REGISTRY_MAX_DISKS);

                /* ...deleted only if none of it changed since. */
                if ((r = reg_txn_req_init(&del)) < 0 ||
                    (r = reg_array_add(del.compare, reg_cmp_unchanged(member, NULL, s.revision))) < 0 ||
                    (r = reg_array_add(del.compare, reg_cmp_unchanged(node, NULL, s.revision))) < 0 ||
                    (r = reg_array_add(del.compare, reg_cmp_unchanged(disks, disks_end, s.revision))) < 0)
                        return r;
                if (kvm) {
                        struct registry_member rec;

                        if ((r = reg_array_add(del.success, reg_op_delete(member))) < 0)
                                return r;
                        n_deletes++;
                        /* Its key's entry too (while it names the node). A
                         * record that does not parse is removed all the
                         * same: it names no key. */
                        if (kv_member(kvm, strlen(member) - strlen(name), &rec, &(struct errmsg){}) >= 0) {
                                char wgkey[KEY_BUF];

                                make_key(reg, wgkey, "wgkeys", rec.wg_public_key);
                                if ((r = reg_array_add(del.success, reg_op_delete_if(wgkey, name))) < 0)
                                        return r;
                                n_deletes++;
                        }
                }
                if (kvn) {
                        r = kv_address(kvn, address, e);
                        if (r < 0)
                                return r;
                        make_key(reg, mesh, "mesh", address);
                        if ((r = reg_array_add(del.compare, reg_cmp_unchanged(mesh, NULL, s.revision))) < 0 ||
                            (r = reg_array_add(del.success, reg_op_delete(node))) < 0 ||
                            (r = reg_array_add(del.success, reg_op_delete(mesh))) < 0)
                                return r;
                        n_deletes += 2;
                }
                for (size_t i = 0; i < rd->n_kvs; i++) {
                        const struct registry_kv *kv = &rd->kvs[i];
                        if ((r = kv_under(kv, disks, e)) < 0)
                                return r;
                        if (!kv_is(kv, name))
                                continue;
                        if (n_deletes + 1 > REGISTRY_MAX_TXN_OPS)
                                return errmsg_set(e, EFBIG, "node '%s' owns too many disks", name);
                        if ((r = reg_array_add(del.success, reg_op_delete(kv->key))) < 0)
                                return r;
                        n_deletes++;
                }
                if (n_deletes == 0)
                        return errmsg_set(e, ENOENT, "no member '%s'", name);
                r = reg_etcd_txn(reg, del.o, 0, &d, e);
                if (r < 0)
                        return r;
                if (d.succeeded)
                        return 0;
        }
        return errmsg_set(e, EAGAIN, "deleting member '%s': the registry kept changing (%u attempts)", name,
                          MAX_ROUNDS);
}

/* --- mesh addresses ------------------------------------------------------------------ */

static int parse_cidr4(const char *cidr, uint32_t *ret_first, uint32_t *ret_last, struct errmsg *e) {
        struct in_addr a;
        char addr[16];
        const char *slash;
        unsigned bits;
        uint32_t net, bcast;

        if (!cidr || !valid_cidr4(cidr) || !canonical_number(strchr(cidr, '/') + 1, 2))
                return errmsg_set(e, EINVAL, "invalid IPv4 CIDR \"%s\" (a.b.c.d/n, host bits zero)",
                                  cidr ? PRINTABLE(cidr) : "(null)");
        slash = strchr(cidr, '/');
        memcpy(addr, cidr, (size_t) (slash - cidr));
        addr[slash - cidr] = 0;
        if (inet_pton(AF_INET, addr, &a) != 1)
                return -EINVAL;
        bits = (unsigned) strtoul(slash + 1, NULL, 10);
        if (bits > 30)
                return errmsg_set(e, EINVAL, "CIDR %s leaves no address to hand out", cidr);
        net = ntohl(a.s_addr);
        bcast = net | (bits == 0 ? UINT32_MAX : (UINT32_MAX >> bits));
        /* Skip the network address and reserve the first host address. */
        *ret_first = net + 2;
        *ret_last = bcast - 1;
        return 0;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* The addresses in [first, last] that have a key under <prefix>mesh/, sorted. */
static int used_addresses(struct registry *reg, uint32_t first, uint32_t last, uint32_t **ret, size_t *ret_n,
                          struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *req = NULL;
        _cleanup_(registry_range_done) struct registry_range rr = {};
        _cleanup_free_ uint32_t *used = NULL;
        char key[KEY_BUF], end[KEY_BUF];
        size_t plen, n = 0;
        int r;

        make_key(reg, key, "mesh", NULL);
        reg_prefix_end(key, end, sizeof(end));
        plen = strlen(key);
        req = reg_range_body(key, end, true, REGISTRY_MAX_ADDRESSES);
        if (!req)
                return -ENOMEM;
        r = reg_etcd_range(reg, req, REGISTRY_MAX_ADDRESSES, &rr, e);
        if (r < 0)
                return r;
        if (rr.more)
                return errmsg_set(e, ENOSPC, "registry holds more than %u mesh addresses",
                                  REGISTRY_MAX_ADDRESSES);
        used = calloc(rr.n_kvs + 1, sizeof(uint32_t));
        if (!used)
                return -ENOMEM;
        for (size_t i = 0; i < rr.n_kvs; i++) {
                struct in_addr a;
                uint32_t h;

                r = kv_under(&rr.kvs[i], key, e);
                if (r < 0)
                        return r;
                /* Other families and ranges share the prefix: not ours. */
                if (inet_pton(AF_INET, rr.kvs[i].key + plen, &a) != 1)
                        continue;
                h = ntohl(a.s_addr);
                if (h >= first && h <= last)
                        used[n++] = h;
        }
        qsort(used, n, sizeof(uint32_t), cmp_u32);
        *ret = TAKE_PTR(used);
        *ret_n = n;
        return 0;
}

/* Claim address for node. 1 if claimed, 0 if another node holds it; if the
 * node itself holds one already (a concurrent allocation), 2 with it in
 * held. */
static int claim(struct registry *reg, const char *node_name, const char *address,
                 char held[static INET6_ADDRSTRLEN], struct errmsg *e) {
        _cleanup_(reg_txn_req_done) struct reg_txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        char mesh[KEY_BUF], node[KEY_BUF];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        make_key(reg, mesh, "mesh", address);
        make_key(reg, node, "mesh-nodes", node_name);
        if ((r = reg_txn_req_init(&t)) < 0 || (r = reg_array_add(t.compare, reg_cmp_absent(mesh))) < 0 ||
            (r = reg_array_add(t.compare, reg_cmp_absent(node))) < 0 ||
            (r = reg_array_add(t.success, reg_op_put(mesh, node_name, strlen(node_name)))) < 0 ||
            (r = reg_array_add(t.success, reg_op_put(node, address, strlen(address)))) < 0 ||
            (r = reg_array_add(t.failure, reg_op_range(node, NULL, false, 0))) < 0)
                return r;
        r = reg_etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 1;
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, node, &kv, e)) < 0)
                return r;
        if (!kv)
                return 0;
        r = kv_address(kv, held, e);
        return r < 0 ? r : 2;
}

static int in_range(const char *address, uint32_t first, uint32_t last) {
        struct in_addr a;

        return inet_pton(AF_INET, address, &a) == 1 && ntohl(a.s_addr) >= first && ntohl(a.s_addr) <= last;
}

static int held_result(const char *node_name, const char *held, const char *cidr, uint32_t first,
                       uint32_t last, char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        if (!in_range(held, first, last))
                return errmsg_set(e, EADDRINUSE, "node '%s' holds mesh address %s outside %s", node_name,
                                  held, cidr);
        memcpy(ret, held, strlen(held) + 1);
        return 0;
}

/* Random picks before the used addresses are read: with a range at most
 * half full, 8 conflicts in a row come with probability <= 1/256. */
#define PROBES_BEFORE_SCAN 8
#define MAX_CONFLICTS 256

/* A candidate address in [first, last]: random while conflicts are few,
 * then a random one among those free on a fresh read (-ENOSPC if none). */
static int pick_address(struct registry *reg, uint32_t first, uint32_t last, unsigned conflicts, const char *cidr,
                        char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        uint64_t span = (uint64_t) last - first + 1, pos;
        uint32_t rnd;
        struct in_addr a;
        int r;

        r = secret_random(&rnd, sizeof(rnd));
        if (r < 0)
                return errmsg_set(e, r, "no randomness for address allocation");
        if (conflicts < PROBES_BEFORE_SCAN)
                pos = first + rnd % span;
        else {
                _cleanup_free_ uint32_t *used = NULL;
                size_t n_used = 0;

                r = used_addresses(reg, first, last, &used, &n_used, e);
                if (r < 0)
                        return r;
                if (n_used >= span)
                        return errmsg_set(e, ENOSPC, "no free mesh address left in %s", cidr);
                /* The (rnd mod free)-th free address: step over used ones below it. */
                pos = first + rnd % (span - n_used);
                for (size_t i = 0; i < n_used && used[i] <= pos; i++)
                        pos++;
        }
        a.s_addr = htonl((uint32_t) pos);
        inet_ntop(AF_INET, &a, ret, INET6_ADDRSTRLEN);
        return 0;
}

int registry_allocate_address(struct registry *reg, const char *node_name, const char *cidr,
                              char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        _cleanup_(registry_range_done) struct registry_range rr = {};
        char node[KEY_BUF], held[INET6_ADDRSTRLEN];
        const struct registry_kv *kv;
        uint32_t first = 0, last = 0;
        int r;

        if ((r = check_name(node_name, e)) < 0 || (r = parse_cidr4(cidr, &first, &last, e)) < 0)
                return r;

        /* Idempotent: an address the node holds already. */
        make_key(reg, node, "mesh-nodes", node_name);
        r = get_key(reg, node, &rr, &kv, e);
        if (r < 0)
                return r;
        if (kv) {
                r = kv_address(kv, held, e);
                return r < 0 ? r : held_result(node_name, held, cidr, first, last, ret, e);
        }

        for (unsigned conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
                char address[INET6_ADDRSTRLEN];

                r = pick_address(reg, first, last, conflicts, cidr, address, e);
                if (r < 0)
                        return r;
                r = claim(reg, node_name, address, held, e);
                if (r < 0)
                        return r;
                if (r == 1) {
                        memcpy(ret, address, strlen(address) + 1);
                        return 0;
                }
                if (r == 2)
                        return held_result(node_name, held, cidr, first, last, ret, e);
                /* Taken by another node: pick again. */
        }
        return errmsg_set(e, EAGAIN, "allocating for '%s': %u addresses taken concurrently", node_name,
                          MAX_CONFLICTS);
}

/* --- joins ----------------------------------------------------------------------------- */

/* What the registry holds for a joining node, as the last failed
 * transaction saw it. */
struct join_view {
        char held[INET6_ADDRSTRLEN]; /* its address, "" if none */
        bool disk_mine;              /* its disk registered to it (else absent) */
        struct member_view rec;      /* its record and its key's entry */
};

static bool join_view_eq(const struct join_view *a, const struct join_view *b) {
        return streq(a->held, b->held) && a->disk_mine == b->disk_mine && member_view_eq(&a->rec, &b->rec);
}

static int join_txn(struct registry *reg, const struct registry_member *m, const struct join_view *v,
                    const char *address, bool *ret_done, struct join_view *ret_view, struct errmsg *e) {
        _cleanup_(reg_txn_req_done) struct reg_txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        _cleanup_free_ char *json = NULL;
        struct registry_member rec = *m;
        char node[KEY_BUF], mesh[KEY_BUF], disk[KEY_BUF], holder[NODE_NAME_MAX + 1];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        memcpy(rec.mesh_address, address, strlen(address) + 1);
        r = registry_member_to_json(&rec, &json, e);
        if (r < 0)
                return r;
        make_key(reg, node, "mesh-nodes", m->name);
        make_key(reg, mesh, "mesh", address);
        make_key(reg, disk, "disks", m->disk_uuid);
        if ((r = reg_txn_req_init(&t)) < 0)
                return r;
        if (v->held[0]) {
                if ((r = reg_array_add(t.compare, reg_cmp_value(node, address))) < 0 ||
                    (r = reg_array_add(t.compare, reg_cmp_value(mesh, m->name))) < 0)
                        return r;
        } else if ((r = reg_array_add(t.compare, reg_cmp_absent(node))) < 0 ||
                   (r = reg_array_add(t.compare, reg_cmp_absent(mesh))) < 0 ||
                   (r = reg_array_add(t.success, reg_op_put(mesh, m->name, strlen(m->name)))) < 0 ||
                   (r = reg_array_add(t.success, reg_op_put(node, address, strlen(address)))) < 0)
                return r;
        if (v->disk_mine)
                r = reg_array_add(t.compare, reg_cmp_value(disk, m->name));
        else if ((r = reg_array_add(t.compare, reg_cmp_absent(disk))) >= 0)
                r = reg_array_add(t.success, reg_op_put(disk, m->name, strlen(m->name)));
        if (r < 0 || (r = reg_array_add(t.failure, reg_op_range(node, NULL, false, 0))) < 0 ||
            (r = reg_array_add(t.failure, reg_op_range(disk, NULL, false, 0))) < 0 ||
            (r = add_member_write(reg, &t, &rec, json, &v->rec)) < 0)
                return r;
        r = reg_etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded) {
                *ret_done = true;
                return 0;
        }
        *ret_done = false;
        *ret_view = (struct join_view){};
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, node, &kv, e)) < 0)
                return r;
        if (kv && (r = kv_address(kv, ret_view->held, e)) < 0)
                return r;
        if ((r = txn_range(&res, 1, &rr, e)) < 0 || (r = single_kv(rr, disk, &kv, e)) < 0)
                return r;
        if (kv) {
                r = kv_node_name(kv, holder, e);
                if (r < 0)
                        return r;
                if (!streq(holder, m->name))
                        return errmsg_set(e, EEXIST, "disk %s belongs to node '%s'", m->disk_uuid, holder);
                ret_view->disk_mine = true;
        }
        if ((r = member_view_read(reg, &res, 2, m, &ret_view->rec, e)) < 0)
                return r;
        return resolve_holder(reg, m, &ret_view->rec, e);
}

int registry_first_address(const char *cidr, char ret[static INET6_ADDRSTRLEN], struct errmsg *e) {
        struct in_addr a;
        uint32_t first = 0, last = 0;
        int r;

        r = parse_cidr4(cidr, &first, &last, e);
        if (r < 0)
                return r;
        a.s_addr = htonl(first);
        return inet_ntop(AF_INET, &a, ret, INET6_ADDRSTRLEN) ? 0 : -errno;
}

int registry_join(struct registry *reg, struct registry_member *m, const char *cidr, struct errmsg *e) {
        struct registry_member rec = *m;
        struct join_view v = {};
        uint32_t first = 0, last = 0;
        unsigned conflicts = 0;
        bool wanted = m->mesh_address[0] != 0;
        int r;

        if ((r = check_name(m->name, e)) < 0 || (r = normalize_uuid(m->disk_uuid, rec.disk_uuid, e)) < 0 ||
            (r = parse_cidr4(cidr, &first, &last, e)) < 0)
                return r;
        if (wanted && !in_range(m->mesh_address, first, last))
                return errmsg_set(e, EINVAL, "mesh address \"%.*s\" is not one handed out in %s",
                                  (int) sizeof(m->mesh_address), m->mesh_address, cidr);
        /* Optimistic: a new node, holding nothing. A failed transaction
         * says what the node holds; only an address taken by another node
         * counts as a conflict. */
        for (unsigned round = 0; round < MAX_ROUNDS + MAX_CONFLICTS; round++) {
                char address[INET6_ADDRSTRLEN];
                struct join_view now = {};
                bool done = false;

                if (v.held[0]) {
                        r = held_result(m->name, v.held, cidr, first, last, address, e);
                        if (r < 0)
                                return r;
                        if (wanted && !streq(address, m->mesh_address))
                                return errmsg_set(e, EADDRINUSE, "node '%s' holds mesh address %s, not %s",
                                                  m->name, address, m->mesh_address);
                } else if (wanted)
                        memcpy(address, m->mesh_address, strlen(m->mesh_address) + 1);
                else {
                        r = pick_address(reg, first, last, conflicts, cidr, address, e);
                        if (r < 0)
                                return r;
                }
                r = join_txn(reg, &rec, &v, address, &done, &now, e);
                if (r < 0)
                        return r;
                if (done) {
                        memcpy(m->mesh_address, address, strlen(address) + 1);
                        memcpy(m->disk_uuid, rec.disk_uuid, sizeof(rec.disk_uuid));
                        return 0;
                }
                if (join_view_eq(&now, &v)) {
                        if (v.held[0])
                                return errmsg_set(e, EADDRINUSE,
                                                  "node '%s' holds %s by the registry's index, but the address "
                                                  "is not recorded as its own",
                                                  m->name, v.held);
                        if (wanted)
                                return errmsg_set(e, EADDRINUSE, "mesh address %s is held by another node",
                                                  m->mesh_address);
                        if (++conflicts >= MAX_CONFLICTS)
                                return errmsg_set(e, EAGAIN,
                                                  "joining '%s': %u addresses taken concurrently", m->name,
                                                  conflicts);
                }
                v = now;
        }
        return errmsg_set(e, EAGAIN, "joining '%s': the registry kept changing", m->name);
}

/* Run a transaction conditional on members/<name> being at m->mod_revision
 * whose failure branch reads that key (keys only): 0 if it succeeded,
 * -ENOENT if the record is gone, -ESTALE if it changed, 1 if another of
 * its comparisons failed. */
static int member_txn(struct registry *reg, json_object *txn, const char *key, const struct registry_member *m,
                      struct errmsg *e) {
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        r = reg_etcd_txn(reg, txn, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 0;
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, key, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "no member '%s' (removed meanwhile)", m->name);
        if (kv->mod_revision != m->mod_revision)
                return errmsg_set(e, ESTALE, "member '%s' changed meanwhile", m->name);
        return 1;
}

int registry_update_member(struct registry *reg, const struct registry_member *m, struct errmsg *e) {
        return write_member(reg, m, true, e);
}

int registry_expire_member(struct registry *reg, const struct registry_member *m, struct errmsg *e) {
        _cleanup_(reg_txn_req_done) struct reg_txn_req t = {};
        char key[KEY_BUF], node[KEY_BUF], mesh[KEY_BUF], wgkey[KEY_BUF];
        int r;

        if ((r = check_name(m->name, e)) < 0)
                return r;
        if (!canonical_address(m->mesh_address))
                return errmsg_set(e, EINVAL, "member '%s': invalid mesh address", m->name);
        if (!valid_wg_key(m->wg_public_key))
                return errmsg_set(e, EINVAL, "member '%s': invalid WireGuard public key", m->name);
        /* Revision 0 would compare true for an absent record and delete
         * the node's address keys without one. */
        if (m->mod_revision <= 0)
                return errmsg_set(e, EINVAL, "member '%s': no revision to expire from (not read from the registry)",
                                  m->name);
        make_key(reg, key, "members", m->name);
        make_key(reg, node, "mesh-nodes", m->name);
        make_key(reg, mesh, "mesh", m->mesh_address);
        make_key(reg, wgkey, "wgkeys", m->wg_public_key);
        /* The address keys are compared too: they are deleted only while
         * they are this node's. */
        if ((r = reg_txn_req_init(&t)) < 0 || (r = reg_array_add(t.compare, reg_cmp_mod(key, m->mod_revision))) < 0 ||
            (r = reg_array_add(t.compare, reg_cmp_value(node, m->mesh_address))) < 0 ||
            (r = reg_array_add(t.compare, reg_cmp_value(mesh, m->name))) < 0 ||
            (r = reg_array_add(t.success, reg_op_delete(key))) < 0 || (r = reg_array_add(t.success, reg_op_delete(node))) < 0 ||
            (r = reg_array_add(t.success, reg_op_delete(mesh))) < 0 ||
            (r = reg_array_add(t.success, reg_op_delete_if(wgkey, m->name))) < 0 ||
            (r = reg_array_add(t.failure, reg_op_range(key, NULL, true, 0))) < 0)
                return r;
        r = member_txn(reg, t.o, key, m, e);
        if (r <= 0)
                return r;
        return errmsg_set(e, EADDRNOTAVAIL, "member '%s' does not hold mesh address %s", m->name,
                          m->mesh_address);
}

/* --- disks ------------------------------------------------------------------------------ */

int registry_put_disk(struct registry *reg, const char *uuid, const char *node_name, struct errmsg *e) {
        _cleanup_(reg_txn_req_done) struct reg_txn_req t = {};
        _cleanup_(registry_txn_done) struct registry_txn res = {};
        char u[UUID_STRING_SIZE], key[KEY_BUF], holder[NODE_NAME_MAX + 1];
        const struct registry_kv *kv;
        struct registry_range *rr = NULL;
        int r;

        if ((r = check_name(node_name, e)) < 0 || (r = normalize_uuid(uuid, u, e)) < 0)
                return r;
        make_key(reg, key, "disks", u);
        if ((r = reg_txn_req_init(&t)) < 0 || (r = reg_array_add(t.compare, reg_cmp_absent(key))) < 0 ||
            (r = reg_array_add(t.success, reg_op_put(key, node_name, strlen(node_name)))) < 0 ||
            (r = reg_array_add(t.failure, reg_op_range(key, NULL, false, 0))) < 0)
                return r;
        r = reg_etcd_txn(reg, t.o, 1, &res, e);
        if (r < 0)
                return r;
        if (res.succeeded)
                return 0;
        if ((r = txn_range(&res, 0, &rr, e)) < 0 || (r = single_kv(rr, key, &kv, e)) < 0)
                return r;
        if (!kv)
                return errmsg_set(e, EAGAIN, "disk %s: registry changed concurrently, try again", u);
        r = kv_node_name(kv, holder, e);
        if (r < 0)
                return r;
        if (!streq(holder, node_name))
                return errmsg_set(e, EEXIST, "disk %s belongs to node '%s'", u, holder);
        return 0;
}

int registry_get_disk(struct registry *reg, const char *uuid, char ret_node_name[static NODE_NAME_MAX + 1],
                      struct errmsg *e) {
        _cleanup_(registry_range_done) struct registry_range rr = {};
        char u[UUID_STRING_SIZE], key[KEY_BUF];
        const struct registry_kv *kv;
        int r;

        r = normalize_uuid(uuid, u, e);
        if (r < 0)
                return r;
        make_key(reg, key, "disks", u);
        r = get_key(reg, key, &rr, &kv, e);
        if (r < 0)
                return r;
        if (!kv)
                return errmsg_set(e, ENOENT, "disk %s is not registered", u);
        return kv_node_name(kv, ret_node_name, e);
}
