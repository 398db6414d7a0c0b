/* SPDX-License-Identifier: Apache-2.0 */
#include "owner.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "openssl-util.h"
#include "secret.h"

int owner_secrets_generate(struct owner_secrets *ret) {
        return secret_random(ret, sizeof(*ret));
}

int owner_secrets_parse(const char *buf, size_t len, struct owner_secrets *ret, struct errmsg *e) {
        static const char *const fields[] = { "masterSecret", "masterSalt", "measurementSalt", "initSecret", NULL };
        struct owner_secrets s = {};
        json_object *o = NULL;
        int r;

        r = json_parse(buf, len, &o, e);
        if (r >= 0 && (r = json_check_fields(o, fields, e)) >= 0 &&
            (r = json_get_bytes_exact(o, "masterSecret", s.master_secret, KEY_SIZE, e)) >= 0 &&
            (r = json_get_bytes_exact(o, "masterSalt", s.master_salt, KEY_SIZE, e)) >= 0 &&
            (r = json_get_bytes_exact(o, "measurementSalt", s.measurement_salt, KEY_SIZE, e)) >= 0 &&
            (r = json_get_bytes_exact(o, "initSecret", s.init_secret, KEY_SIZE, e)) >= 0)
                *ret = s;
        secret_wipe(&s, sizeof(s));
        json_wipe_strings(o);
        json_object_put(o);
        return r;
}

int owner_secrets_create(const char *path, const struct owner_secrets *s, struct errmsg *e) {
        json_object *o = json_object_new_object();
        char *text = NULL;
        int fd, r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_base64(o, "masterSecret", s->master_secret, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "masterSalt", s->master_salt, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "measurementSalt", s->measurement_salt, KEY_SIZE)) < 0 ||
            (r = json_add_base64(o, "initSecret", s->init_secret, KEY_SIZE)) < 0 ||
            (r = json_serialize_secret(o, &text)) < 0)
                goto out;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = errmsg_set(e, errno, "Cannot create %s: %s", path, strerror(errno));
                goto out;
        }
        size_t len = strlen(text);
        if (write(fd, text, len) != (ssize_t) len || write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
                r = errmsg_set(e, errno ? errno : EIO, "Cannot write %s: %s", path, strerror(errno ? errno : EIO));
                close(fd);
                unlink(path);
                goto out;
        }
        close(fd);
        r = 0;
out:
        if (text)
                secret_free(text, strlen(text));
        json_wipe_strings(o);
        json_object_put(o);
        return r;
}

int owner_secrets_load(const char *path, struct owner_secrets *ret, struct errmsg *e) {
        char *buf = NULL;
        struct stat st;
        size_t len;
        int r;

        if (stat(path, &st) < 0)
                return errmsg_set(e, errno, "Cannot read the owner secrets %s: %s", path, strerror(errno));
        if (st.st_mode & 077)
                return errmsg_set(e, EPERM, "%s is accessible to other users (mode %04o); it must be 0600", path,
                                  (unsigned) (st.st_mode & 07777));
        r = read_full_file(path, 4096, &buf, &len);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the owner secrets %s: %s", path, strerror(-r));
        r = owner_secrets_parse(buf, len, ret, e);
        secret_free(buf, len);
        if (r < 0)
                errmsg_prefix(e, "%s", path);
        return r;
}

int owner_init_secret_hash(const struct owner_secrets *s, char ret[65]) {
        uint8_t h[32];
        int r = sha256(s->init_secret, KEY_SIZE, h);
        if (r < 0)
                return r;
        hex_encode_buf(h, sizeof(h), ret);
        return 0;
}
