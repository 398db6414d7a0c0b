/* SPDX-License-Identifier: Apache-2.0 */
/* Messages of the recovery endpoint (see disk-recover.h). */
#include "disk-recover.h"

#include <errno.h>
#include <string.h>

#include "json-util.h"
#include "secret.h"

void recover_request_done(struct recover_request *m) {
        secret_wipe(m, sizeof(*m));
}

/* Every recovery message is a few hundred bytes. */
#define RECOVER_MSG_MAX 4096

static int parse_object(const char *buf, size_t len, const char *const *fields, json_object **ret, struct errmsg *e) {
        return json_parse_object(buf, len, RECOVER_MSG_MAX, fields, ret, e);
}

int recover_request_parse(const char *buf, size_t len, struct recover_request *ret, struct errmsg *e) {
        static const char *const fields[] = { "masterSecret", "masterSalt", NULL };
        struct recover_request m = {};
        json_object *o = NULL;
        int r;

        r = parse_object(buf, len, fields, &o, e);
        if (r >= 0)
                r = json_get_bytes_exact(o, "masterSecret", m.master_secret, KEY_SIZE, e);
        if (r >= 0)
                r = json_get_bytes_exact(o, "masterSalt", m.master_salt, KEY_SIZE, e);
        if (o) {
                json_wipe_strings(o);
                json_object_put(o);
        }
        if (r < 0) {
                errmsg_prefix(e, "recover request");
                secret_wipe(&m, sizeof(m));
                return r;
        }
        *ret = m;
        secret_wipe(&m, sizeof(m));
        return 0;
}

int recover_request_serialize(const struct recover_request *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_base64(o, "masterSecret", m->master_secret, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "masterSalt", m->master_salt, KEY_SIZE)) < 0) {
                json_wipe_strings(o);
                return r;
        }
        return json_serialize_secret(o, ret);
}

static int get_uuid(json_object *o, char buf[UUID_STRING_SIZE], struct errmsg *e) {
        int r = json_get_string_buf(o, "diskUuid", buf, UUID_STRING_SIZE, e);
        if (r < 0)
                return r;
        if (!valid_uuid(buf))
                return errmsg_set(e, EBADMSG, "field 'diskUuid': not a canonical UUID");
        return 0;
}

int recover_response_parse(const char *buf, size_t len, struct recover_response *ret, struct errmsg *e) {
        static const char *const fields[] = { "diskUuid", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct recover_response m = {};
        int r;

        r = parse_object(buf, len, fields, &o, e);
        if (r >= 0)
                r = get_uuid(o, m.disk_uuid, e);
        if (r < 0) {
                errmsg_prefix(e, "recover response");
                return r;
        }
        *ret = m;
        return 0;
}

int recover_response_serialize(const struct recover_response *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *s;
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add_string(o, "diskUuid", m->disk_uuid);
        if (r < 0)
                return r;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        *ret = s ? strdup(s) : NULL;
        return *ret ? 0 : -ENOMEM;
}

int recover_status_parse(const char *buf, size_t len, struct recover_status *ret, struct errmsg *e) {
        static const char *const fields[] = { "service", "variant", "state", "diskUuid", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct recover_status m = {};
        int r;

        r = parse_object(buf, len, fields, &o, e);
        if (r >= 0)
                r = json_get_string_buf(o, "service", m.service, sizeof(m.service), e);
        if (r >= 0)
                r = json_get_string_buf(o, "variant", m.variant, sizeof(m.variant), e);
        if (r >= 0)
                r = json_get_string_buf(o, "state", m.state, sizeof(m.state), e);
        if (r >= 0)
                r = get_uuid(o, m.disk_uuid, e);
        if (r >= 0 && strcmp(m.service, "recover") != 0)
                r = errmsg_set(e, EBADMSG, "field 'service': \"%s\", expected \"recover\"", m.service);
        if (r < 0) {
                errmsg_prefix(e, "recovery status");
                return r;
        }
        *ret = m;
        return 0;
}

int recover_status_serialize(const struct recover_status *m, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *s;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "service", m->service)) < 0 || (r = json_add_string(o, "variant", m->variant)) < 0 ||
            (r = json_add_string(o, "state", m->state)) < 0 || (r = json_add_string(o, "diskUuid", m->disk_uuid)) < 0)
                return r;
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        *ret = s ? strdup(s) : NULL;
        return *ret ? 0 : -ENOMEM;
}
