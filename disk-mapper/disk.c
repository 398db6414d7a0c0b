/* SPDX-License-Identifier: Apache-2.0 */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "secret.h"

/* Room for the keyslot and the second area a key change writes first. */
#define KEYSLOTS_SIZE (2u * 1024 * 1024)
#define METADATA_SIZE (16u * 1024)
/* Where LUKS2 headers (primary or secondary) can start: 0 .. 4 MiB. */
#define BLANK_PROBE_SIZE (LUKS2_MAX_HDR_SIZE + 4096)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

/* The passphrases are 256-bit keys: stretching adds nothing, and argon2's
 * memory cost would only slow every boot down. */
static const struct crypt_pbkdf_type pbkdf = {
        .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000, .flags = CRYPT_PBKDF_NO_BENCHMARK,
};

const char *disk_state_to_string(enum disk_state s) {
        switch (s) {
        case DISK_BLANK:
                return "blank";
        case DISK_UNINITIALIZED:
                return "uninitialized";
        case DISK_INITIALIZED:
                return "initialized";
        }
        return "?";
}

static void on_crypt_log(int level, const char *msg, void *usrptr) {
        size_t n = strlen(msg);
        if (level == CRYPT_LOG_ERROR)
                log_error("libcryptsetup: %.*s", (int) (n && msg[n - 1] == '\n' ? n - 1 : n), msg);
        else if (level != CRYPT_LOG_DEBUG && level != CRYPT_LOG_DEBUG_JSON)
                log_debug("libcryptsetup: %.*s", (int) (n && msg[n - 1] == '\n' ? n - 1 : n), msg);
}

static int read_at(int fd, void *buf, size_t len, uint64_t off) {
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, (uint8_t *) buf + done, len - done, (off_t) (off + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ENODATA;
                done += (size_t) n;
        }
        return 0;
}

static int write_at(int fd, const void *buf, size_t len, uint64_t off) {
        size_t done = 0;
        while (done < len) {
                ssize_t n = pwrite(fd, (const uint8_t *) buf + done, len - done, (off_t) (off + done));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t) n;
        }
        return 0;
}

/* Secrets and the header copy go to the run directory only if it is RAM. */
static int check_run_dir(const char *dir, struct errmsg *e) {
        struct statfs sfs;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return errmsg_set(e, errno, "Cannot create %s: %s", dir, strerror(errno));
        if (statfs(dir, &sfs) < 0)
                return errmsg_set(e, errno, "Cannot stat %s: %s", dir, strerror(errno));
        if (sfs.f_type != TMPFS_MAGIC && sfs.f_type != RAMFS_MAGIC)
                return errmsg_set(e, EPERM, "%s is not on tmpfs or ramfs: the initial key must not reach a disk", dir);
        return 0;
}

static int run_path(const struct disk_config *c, const char *name, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/%s", c->run_dir, name);
        return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}

/* Check buf; if the two header copies disagree or one is damaged (an update
 * interrupted between the two header writes), continue with the newer copy
 * that passes every check on its own (in buf only: the disk is not
 * written). */
static int check_or_repair(uint8_t *buf, size_t len, struct luks2_info *ret, struct errmsg *e) {
        struct errmsg first = {}, again = {};
        uint64_t seqid = 0;
        int r;

        r = luks2_header_check(buf, len, ret, &first);
        if (r >= 0)
                return 0;
        if (luks2_header_repair(buf, len, &seqid, NULL) > 0 && luks2_header_check(buf, len, ret, &again) >= 0) {
                log_warning("%s; continuing with the newer valid header copy (seqid %llu).", errmsg_str(&first),
                            (unsigned long long) seqid);
                return 0;
        }
        if (e)
                *e = first;
        return r;
}

/* Read and check the header region; on success *ret holds data_offset
 * bytes: both headers and the keyslots area, exactly as checked. */
static int read_checked_header(int fd, uint8_t **ret, struct luks2_info *ret_info, struct errmsg *e) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct luks2_info first, info;
        uint64_t hdr_size;
        uint8_t bin[LUKS2_BIN_HEADER_SIZE];
        int r;

        r = read_at(fd, bin, sizeof(bin), 0);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the disk: %s", strerror(-r));
        r = luks2_header_size(bin, sizeof(bin), &hdr_size, e);
        if (r < 0)
                return r;
        buf = malloc(2 * hdr_size);
        if (!buf)
                return -ENOMEM;
        r = read_at(fd, buf, 2 * hdr_size, 0);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the LUKS2 headers: %s", strerror(-r));
        r = check_or_repair(buf, 2 * hdr_size, &first, e);
        if (r < 0)
                return r;
        free(buf);
        /* Read everything up to the data once more, in one go, and check
         * what was read: that copy is what libcryptsetup gets. */
        buf = malloc(first.data_offset);
        if (!buf)
                return -ENOMEM;
        r = read_at(fd, buf, first.data_offset, 0);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the header region: %s", strerror(-r));
        r = check_or_repair(buf, first.data_offset, &info, e);
        if (r < 0)
                return r;
        if (info.data_offset != first.data_offset)
                return errmsg_set(e, EBADMSG, "LUKS2 header changed while it was read");
        *ret = TAKE_PTR(buf);
        *ret_info = info;
        return 0;
}

int disk_probe(const struct disk_config *c, enum disk_state *ret, struct luks2_info *ret_info, struct errmsg *e) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        struct luks2_info info = {};
        uint8_t head[LUKS2_BIN_HEADER_SIZE];
        int r;

        fd = open(c->device, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errmsg_set(e, errno, "Cannot open %s: %s", c->device, strerror(errno));
        r = read_at(fd, head, sizeof(head), 0);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read %s: %s", c->device, strerror(-r));
        if (!luks2_has_magic(head, sizeof(head))) {
                /* Blank only if no header could start anywhere. */
                buf = malloc(BLANK_PROBE_SIZE);
                if (!buf)
                        return -ENOMEM;
                r = read_at(fd, buf, BLANK_PROBE_SIZE, 0);
                if (r < 0)
                        return errmsg_set(e, r, "Cannot read %s: %s", c->device, strerror(-r));
                for (size_t i = 0; i < BLANK_PROBE_SIZE; i++)
                        if (buf[i])
                                return errmsg_set(e, EBADMSG,
                                                  "%s is neither blank nor an arca state disk (data at offset %zu, "
                                                  "no LUKS2 header at offset 0): refusing to touch it",
                                                  c->device, i);
                *ret = DISK_BLANK;
                if (ret_info)
                        *ret_info = info;
                return 0;
        }
        r = read_checked_header(fd, &buf, &info, e);
        if (r < 0) {
                errmsg_prefix(e, "%s", c->device);
                return r;
        }
        *ret = info.initialized ? DISK_INITIALIZED : DISK_UNINITIALIZED;
        if (ret_info)
                *ret_info = info;
        return 0;
}

/* A crypt_device on a private copy of the checked header. */
static int load_private(const struct disk_config *c, struct crypt_device **ret, struct luks2_info *ret_info,
                        struct errmsg *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        struct luks2_info info;
        char path[4096];
        int r;

        r = check_run_dir(c->run_dir, e);
        if (r < 0)
                return r;
        fd = open(c->device, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errmsg_set(e, errno, "Cannot open %s: %s", c->device, strerror(errno));
        r = read_checked_header(fd, &buf, &info, e);
        if (r < 0) {
                errmsg_prefix(e, "%s", c->device);
                return r;
        }
        if ((r = run_path(c, "header", path, sizeof(path))) < 0)
                return r;
        r = write_file_atomic(path, buf, info.data_offset, 0600);
        if (r < 0)
                return errmsg_set(e, r, "Cannot write the header copy %s: %s", path, strerror(-r));
        r = crypt_init_data_device(&cd, path, c->device);
        if (r < 0)
                return errmsg_set(e, r, "libcryptsetup cannot use %s: %s", c->device, strerror(-r));
        crypt_set_log_callback(cd, on_crypt_log, NULL);
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return errmsg_set(e, r, "libcryptsetup cannot load the checked header: %s", strerror(-r));
        *ret = TAKE_PTR(cd);
        if (ret_info)
                *ret_info = info;
        return 0;
}

static int wipe_progress(uint64_t size, uint64_t offset, void *userdata) {
        const struct disk_config *c = userdata;
        static int last = -1;
        int pct = size ? (int) (offset * 100 / size) : 100;

        if (!c->quiet && pct / 10 != last) {
                last = pct / 10;
                fprintf(stderr, "arca-disk-mapper: wiping %s: %d%%\n", c->device, pct);
        }
        return 0;
}

static int read_initial_key(const struct disk_config *c, uint8_t key[KEY_SIZE], struct errmsg *e) {
        _cleanup_free_ char *buf = NULL;
        char path[4096];
        size_t len;
        int r;

        if ((r = run_path(c, "initial-key", path, sizeof(path))) < 0)
                return r;
        r = read_full_file(path, KEY_SIZE, &buf, &len);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read the initial key %s: %s (was the disk formatted in this boot?)",
                                  path, strerror(-r));
        if (len != KEY_SIZE) {
                secret_wipe(buf, len);
                return errmsg_set(e, EBADMSG, "%s: %zu bytes, expected %d", path, len, KEY_SIZE);
        }
        memcpy(key, buf, KEY_SIZE);
        secret_wipe(buf, len);
        return 0;
}

int disk_format(const struct disk_config *c, struct luks2_info *ret_info, struct errmsg *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_(secret32_wipe) uint8_t key[KEY_SIZE] = {};
        struct crypt_params_luks2 params = {
                .pbkdf = &pbkdf, .integrity = ARCA_DISK_INTEGRITY, .sector_size = ARCA_DISK_SECTOR_SIZE,
        };
        char token[128], path[4096], dm[4096];
        enum disk_state state;
        int r;

        r = check_run_dir(c->run_dir, e);
        if (r < 0)
                return r;
        /* Never format what is not blank or an uninitialized arca disk. */
        r = disk_probe(c, &state, NULL, e);
        if (r < 0)
                return r;
        if (state == DISK_INITIALIZED)
                return errmsg_set(e, EEXIST, "%s is an initialized arca disk: it is never reformatted", c->device);
        r = secret_random(key, sizeof(key));
        if (r < 0)
                return errmsg_set(e, r, "Cannot get random bytes");
        if ((r = run_path(c, "initial-key", path, sizeof(path))) < 0)
                return r;
        r = write_file_atomic(path, key, sizeof(key), 0600);
        if (r < 0)
                return errmsg_set(e, r, "Cannot write %s: %s", path, strerror(-r));

        r = crypt_init(&cd, c->device);
        if (r < 0)
                return errmsg_set(e, r, "libcryptsetup cannot use %s: %s", c->device, strerror(-r));
        crypt_set_log_callback(cd, on_crypt_log, NULL);
        if ((r = crypt_set_pbkdf_type(cd, &pbkdf)) < 0 ||
            (r = crypt_set_metadata_size(cd, METADATA_SIZE, KEYSLOTS_SIZE)) < 0)
                return errmsg_set(e, r, "libcryptsetup refused the format parameters: %s", strerror(-r));
        r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, ARCA_DISK_VOLUME_KEY_SIZE, &params);
        if (r < 0)
                return errmsg_set(e, r, "Cannot format %s (LUKS2, aes-xts-plain64, hmac(sha256)): %s", c->device,
                                  strerror(-r));
        r = crypt_keyslot_add_by_volume_key(cd, 0, NULL, 0, (const char *) key, sizeof(key));
        if (r < 0)
                return errmsg_set(e, r, "Cannot add the keyslot: %s", strerror(-r));
        if ((r = luks2_token_format(false, token, sizeof(token))) < 0 || (r = crypt_token_json_set(cd, 0, token)) < 0)
                return errmsg_set(e, r, "Cannot write the arca-state-disk token: %s", strerror(-r));

        /* Initialize the integrity tags: every sector written once, without
         * the journal (what cryptsetup's luksFormat does). A crash here
         * leaves an uninitialized disk, reformatted at the next boot. */
        r = crypt_activate_by_passphrase(cd, c->name, 0, (const char *) key, sizeof(key),
                                         CRYPT_ACTIVATE_NO_JOURNAL | CRYPT_ACTIVATE_PRIVATE);
        if (r < 0)
                return errmsg_set(e, r, "Cannot open the new disk for the wipe: %s", strerror(-r));
        snprintf(dm, sizeof(dm), "/dev/mapper/%s", c->name);
        r = crypt_wipe(cd, dm, CRYPT_WIPE_ZERO, 0, 0, 1024 * 1024, CRYPT_WIPE_NO_DIRECT_IO, wipe_progress, (void *) c);
        if (r < 0) {
                crypt_deactivate(cd, c->name);
                return errmsg_set(e, r, "Wiping %s failed: %s", dm, strerror(-r));
        }
        r = crypt_deactivate(cd, c->name);
        if (r < 0)
                return errmsg_set(e, r, "Cannot close %s after the wipe: %s", dm, strerror(-r));
        crypt_free(TAKE_PTR(cd));
        /* Read back what was written, through the same checks as any disk. */
        r = disk_probe(c, &state, ret_info, e);
        if (r < 0) {
                errmsg_prefix(e, "the freshly formatted header fails the checks");
                return r;
        }
        if (state != DISK_UNINITIALIZED)
                return errmsg_set(e, EIO, "the freshly formatted disk reads back as %s", disk_state_to_string(state));
        return 0;
}

int disk_open(const struct disk_config *c, const void *key, size_t key_size, struct luks2_info *ret_info,
              struct errmsg *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = load_private(c, &cd, ret_info, e);
        if (r < 0)
                return r;
        r = crypt_activate_by_passphrase(cd, c->name, CRYPT_ANY_SLOT, key, key_size, 0);
        if (r == -EPERM)
                return errmsg_set(e, EPERM, "the key does not open %s", c->device);
        if (r < 0)
                return errmsg_set(e, r, "Cannot open %s as %s: %s", c->device, c->name, strerror(-r));
        return 0;
}

int disk_open_initial(const struct disk_config *c, struct luks2_info *ret_info, struct errmsg *e) {
        _cleanup_(secret32_wipe) uint8_t key[KEY_SIZE] = {};
        int r;

        r = read_initial_key(c, key, e);
        if (r < 0)
                return r;
        return disk_open(c, key, sizeof(key), ret_info, e);
}

int disk_close(const struct disk_config *c, struct errmsg *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        int r;

        r = crypt_init_by_name(&cd, c->name);
        if (r < 0)
                return errmsg_set(e, r, "%s is not open: %s", c->name, strerror(-r));
        r = crypt_deactivate(cd, c->name);
        if (r < 0)
                return errmsg_set(e, r, "Cannot close %s: %s", c->name, strerror(-r));
        return 0;
}

int disk_rekey(const struct disk_config *c, const char *expected_uuid, const uint8_t key[KEY_SIZE],
               struct errmsg *e) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_(secret32_wipe) uint8_t initial[KEY_SIZE] = {};
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct luks2_info info, after;
        char token[128], path[4096];
        size_t len;
        int r;

        r = load_private(c, &cd, &info, e);
        if (r < 0)
                return r;
        if (expected_uuid && strcasecmp(expected_uuid, info.uuid) != 0)
                return errmsg_set(e, EINVAL, "the key is for disk %s, but %s is disk %s", expected_uuid, c->device,
                                  info.uuid);
        if (info.initialized) {
                r = crypt_activate_by_passphrase(cd, NULL, CRYPT_ANY_SLOT, (const char *) key, KEY_SIZE, 0);
                if (r >= 0)
                        return 0; /* done before */
                return errmsg_set(e, EALREADY, "%s is initialized already and the key does not open it", c->device);
        }
        r = read_initial_key(c, initial, e);
        if (r < 0)
                return r;
        r = crypt_set_pbkdf_type(cd, &pbkdf);
        if (r < 0)
                return errmsg_set(e, r, "libcryptsetup refused the PBKDF parameters: %s", strerror(-r));
        r = crypt_keyslot_change_by_passphrase(cd, 0, 0, (const char *) initial, KEY_SIZE, (const char *) key,
                                               KEY_SIZE);
        if (r < 0)
                return errmsg_set(e, r, "Cannot replace the initial key: %s", strerror(-r));
        if ((r = luks2_token_format(true, token, sizeof(token))) < 0 || (r = crypt_token_json_set(cd, 0, token)) < 0)
                return errmsg_set(e, r, "Cannot mark the disk initialized: %s", strerror(-r));
        crypt_free(TAKE_PTR(cd));

        /* The new header region must pass the same checks before it goes to
         * the disk. */
        if ((r = run_path(c, "header", path, sizeof(path))) < 0)
                return r;
        r = read_full_file(path, LUKS2_MAX_DATA_OFFSET, &copy, &len);
        if (r < 0)
                return errmsg_set(e, r, "Cannot read back %s: %s", path, strerror(-r));
        if (len != info.data_offset)
                return errmsg_set(e, EIO, "the header copy changed size (%zu, expected %llu)", len,
                                  (unsigned long long) info.data_offset);
        r = luks2_header_check((const uint8_t *) copy, len, &after, e);
        if (r < 0) {
                errmsg_prefix(e, "the re-keyed header fails the checks");
                return r;
        }
        if (!after.initialized || after.data_offset != info.data_offset || strcmp(after.uuid, info.uuid) != 0)
                return errmsg_set(e, EIO, "the re-keyed header does not say what was written");
        fd = open(c->device, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return errmsg_set(e, errno, "Cannot open %s for writing: %s", c->device, strerror(errno));
        /* Keyslots area first, then both headers. A crash between the two
         * header writes leaves headers that disagree, which the checks
         * refuse (docs/DISK.md, Limits). */
        r = write_at(fd, copy + 2 * after.hdr_size, len - 2 * after.hdr_size, 2 * after.hdr_size);
        if (r >= 0)
                r = fdatasync(fd) < 0 ? -errno : 0;
        if (r >= 0)
                r = write_at(fd, copy + after.hdr_size, after.hdr_size, after.hdr_size);
        if (r >= 0)
                r = write_at(fd, copy, after.hdr_size, 0);
        if (r >= 0)
                r = fdatasync(fd) < 0 ? -errno : 0;
        if (r < 0)
                return errmsg_set(e, r, "Cannot write the re-keyed header to %s: %s", c->device, strerror(-r));
        /* The initial key has done its job. */
        if (run_path(c, "initial-key", path, sizeof(path)) >= 0) {
                int kfd = open(path, O_WRONLY | O_CLOEXEC);
                if (kfd >= 0) {
                        (void) write_at(kfd, (uint8_t[KEY_SIZE]){ 0 }, KEY_SIZE, 0);
                        close(kfd);
                }
                unlink(path);
        }
        return 0;
}
