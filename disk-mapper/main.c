/* SPDX-License-Identifier: Apache-2.0 */
/* arca-disk-mapper: prepares the state disk (docs/DISK.md). Wires the disk
 * (libcryptsetup through checked private header copies), the file system
 * and the key wait (recovery server, rejoin) together. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discover.h"
#include "disk-recover.h"
#include "disk.h"
#include "keywait.h"
#include "log.h"
#include "mount.h"
#include "nodestate.h"
#include "secret.h"
#include "tpm.h"

struct options {
        struct disk_config disk;
        const char *device_id; /* DISCOVER_AUTO or a by-id pattern; NULL: disk.device is a path */
        unsigned device_wait_s;
        struct mount_config mnt;
        const char *tcti;
        const char *variant;
        uint32_t ak_handle;
        const char *listen;
        uint16_t port;
        const char *join[KEYWAIT_MAX_JOIN];
        size_t n_join;
        const char *platform_ca;
        const char *uuid;
        char uuid_waiting[UUID_STRING_SIZE];
        bool no_node_lock;
        bool binds_set;
};

static void help(void) {
        printf("Usage: arca-disk-mapper [OPTIONS] COMMAND\n\n"
               "Prepares arca's state disk: LUKS2 (aes-xts-plain64 + hmac(sha256) integrity)\n"
               "with its header checked before any key is used. See docs/DISK.md.\n\n"
               "Commands:\n"
               "  setup     blank or uninitialized disk: format it under a random initial key,\n"
               "            make ext4, mount it; initialized disk: wait for its key (recovery\n"
               "            server, rejoin), open, mount, take the node lock (PCR 15)\n"
               "  rekey     replace the initial key by the derived disk key (32 raw bytes on\n"
               "            stdin) and mark the disk initialized (the bootstrapper's hook)\n"
               "  open      open and mount with a key (32 raw bytes on stdin)\n"
               "  check     check the header and print the disk's state and UUID\n"
               "  uuid      print the disk's LUKS2 UUID\n"
               "  close     unmount and close the disk\n\n"
               "Options:\n"
               "  --device PATH|auto     the state disk (default /dev/vdb); \"auto\": the name the\n"
               "                         cloud gives it (Azure LUN 0, GCP device name state-disk,\n"
               "                         virtio serial arca-state; see docs/DISK.md)\n"
               "  --device-id PATTERN    the one disk whose /dev/disk/by-id name (or virtio serial\n"
               "                         as virtio-SERIAL) matches PATTERN, e.g. google-state-disk\n"
               "  --device-wait SECONDS  wait that long for an auto or by-id disk (default 30)\n"
               "  --name NAME            device-mapper name (default arca-state)\n"
               "  --run-dir DIR          tmpfs directory for the initial key and the header copy\n"
               "                         (default /run/arca-disk)\n"
               "  --state-dir DIR        mount point (default /run/state)\n"
               "  --bind SUB:TARGET      bind-mount STATE/SUB on TARGET (repeatable; default\n"
               "                         var:/var and kubernetes:/etc/kubernetes; \"none\" for none)\n"
               "  --mkfs PATH            mkfs.ext4 (default /sbin/mkfs.ext4)\n"
               "  --uuid UUID            rekey: the disk the key was derived for\n"
               "  --tcti CONF            TPM (default $ARCA_TCTI or device:/dev/tpmrm0)\n"
               "  --variant NAME         attestation variant (default qemu-vtpm)\n"
               "  --ak-handle HEX        AK handle (default 0x%08x)\n"
               "  --listen ADDR          recovery server address (default 0.0.0.0; \"none\": off)\n"
               "  --port N               recovery server port (default %u)\n"
               "  --join HOST:PORT       a join service for rejoin (repeatable)\n"
               "  --platform-ca FILE     CA of the platform (verifies join services)\n"
               "  --no-node-lock         do not extend PCR 15 after opening (tests)\n"
               "  --log-level LEVEL      err, warning, info, debug\n"
               "  -h, --help             show this help\n",
               TPM_AK_HANDLE, RECOVERY_PORT);
}

static int parse_args(int argc, char **argv, struct options *o) {
        enum {
                ARG_DEVICE = 256, ARG_DEVICE_ID, ARG_DEVICE_WAIT, ARG_NAME, ARG_RUN, ARG_STATE, ARG_BIND, ARG_MKFS, ARG_UUID, ARG_TCTI, ARG_VARIANT,
                ARG_AK, ARG_LISTEN, ARG_PORT, ARG_JOIN, ARG_CA, ARG_NOLOCK, ARG_LOG,
        };
        static const struct option opts[] = {
                { "device", required_argument, NULL, ARG_DEVICE },
                { "device-id", required_argument, NULL, ARG_DEVICE_ID },
                { "device-wait", required_argument, NULL, ARG_DEVICE_WAIT },
                { "name", required_argument, NULL, ARG_NAME },
                { "run-dir", required_argument, NULL, ARG_RUN },
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "bind", required_argument, NULL, ARG_BIND },
                { "mkfs", required_argument, NULL, ARG_MKFS },
                { "uuid", required_argument, NULL, ARG_UUID },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "variant", required_argument, NULL, ARG_VARIANT },
                { "ak-handle", required_argument, NULL, ARG_AK },
                { "listen", required_argument, NULL, ARG_LISTEN },
                { "port", required_argument, NULL, ARG_PORT },
                { "join", required_argument, NULL, ARG_JOIN },
                { "platform-ca", required_argument, NULL, ARG_CA },
                { "no-node-lock", no_argument, NULL, ARG_NOLOCK },
                { "log-level", required_argument, NULL, ARG_LOG },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        char *end;
        unsigned long v;
        int c, l;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0)
                switch (c) {
                case ARG_DEVICE:
                        if (strcmp(optarg, DISCOVER_AUTO) == 0)
                                o->device_id = DISCOVER_AUTO;
                        else if (optarg[0] != '/')
                                return log_error_errno(EINVAL, "Invalid --device \"%s\": an absolute path or \"%s\"",
                                                       optarg, DISCOVER_AUTO);
                        else {
                                o->disk.device = optarg;
                                o->device_id = NULL;
                        }
                        break;
                case ARG_DEVICE_ID:
                        if (!*optarg || strchr(optarg, '/'))
                                return log_error_errno(EINVAL, "Invalid --device-id \"%s\": a name in /dev/disk/by-id "
                                                               "(wildcards allowed)", optarg);
                        o->device_id = optarg;
                        break;
                case ARG_DEVICE_WAIT:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || !*optarg || v > 3600)
                                return log_error_errno(EINVAL, "Invalid --device-wait \"%s\": 0-3600 seconds", optarg);
                        o->device_wait_s = (unsigned) v;
                        break;
                case ARG_NAME:
                        if (!*optarg || strchr(optarg, '/') || strlen(optarg) > 64)
                                return log_error_errno(EINVAL, "Invalid --name \"%s\"", optarg);
                        o->disk.name = optarg;
                        break;
                case ARG_RUN:
                        o->disk.run_dir = optarg;
                        break;
                case ARG_STATE:
                        o->mnt.state_dir = optarg;
                        break;
                case ARG_BIND:
                        if (!o->binds_set)
                                o->mnt.n_binds = 0;
                        o->binds_set = true;
                        if (strcmp(optarg, "none") == 0)
                                break;
                        if (o->mnt.n_binds >= MOUNT_MAX_BINDS ||
                            bind_spec_parse(optarg, &o->mnt.binds[o->mnt.n_binds]) < 0)
                                return log_error_errno(EINVAL, "Invalid --bind \"%s\": SUB:/TARGET, at most %d",
                                                       optarg, MOUNT_MAX_BINDS);
                        o->mnt.n_binds++;
                        break;
                case ARG_MKFS:
                        o->mnt.mkfs = optarg;
                        break;
                case ARG_UUID:
                        if (!valid_uuid(optarg))
                                return log_error_errno(EINVAL, "Invalid --uuid \"%s\"", optarg);
                        o->uuid = optarg;
                        break;
                case ARG_TCTI:
                        o->tcti = optarg;
                        break;
                case ARG_VARIANT:
                        o->variant = optarg;
                        break;
                case ARG_AK:
                        if (tpm_parse_persistent_handle(optarg, &o->ak_handle) < 0)
                                return log_error_errno(EINVAL, "Invalid --ak-handle \"%s\": expected 0x81xxxxxx",
                                                       optarg);
                        break;
                case ARG_LISTEN:
                        o->listen = strcmp(optarg, "none") == 0 ? NULL : optarg;
                        break;
                case ARG_PORT:
                        errno = 0;
                        v = strtoul(optarg, &end, 10);
                        if (errno || *end || v > 65535)
                                return log_error_errno(EINVAL, "Invalid --port \"%s\"", optarg);
                        o->port = (uint16_t) v;
                        break;
                case ARG_JOIN:
                        if (!valid_endpoint(optarg) || o->n_join >= KEYWAIT_MAX_JOIN)
                                return log_error_errno(EINVAL, "Invalid --join \"%s\" (HOST:PORT, at most %d)", optarg,
                                                       KEYWAIT_MAX_JOIN);
                        o->join[o->n_join++] = optarg;
                        break;
                case ARG_CA:
                        o->platform_ca = optarg;
                        break;
                case ARG_NOLOCK:
                        o->no_node_lock = true;
                        break;
                case ARG_LOG:
                        l = log_level_from_string(optarg);
                        if (l < 0)
                                return log_error_errno(EINVAL, "Invalid --log-level \"%s\"", optarg);
                        log_set_max_level(l);
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        return 1;
}

static char dm_path[128];

/* --device auto / --device-id: the one matching disk, waiting for it to
 * appear (udev may name it after we start). */
static int find_device(struct options *o) {
        static char path[PATH_MAX], via[PATH_MAX];
        struct errmsg e = {};
        unsigned waited_ms = 0;
        int r;

        for (;;) {
                e = (struct errmsg){};
                r = disk_discover("", o->device_id, path, via, &e);
                if (r != -ENOENT || waited_ms >= o->device_wait_s * 1000u)
                        break;
                if (waited_ms == 0)
                        log_info("Waiting up to %u s for the state disk (%s).", o->device_wait_s, o->device_id);
                usleep(200 * 1000);
                waited_ms += 200;
        }
        if (r < 0)
                return log_error_errno(r, "Cannot find the state disk: %s", errmsg_str(&e));
        log_info("State disk: %s (found as %s).", path, via);
        o->disk.device = path;
        return 0;
}

static int mount_state(struct options *o, bool mkfs, struct errmsg *e) {
        int r;

        if (mkfs) {
                r = state_mkfs(&o->mnt, dm_path, e);
                if (r < 0)
                        return r;
        }
        return state_mount(&o->mnt, dm_path, e);
}

static int try_key(void *userdata, const uint8_t key[KEY_SIZE], struct errmsg *e) {
        struct options *o = userdata;
        return disk_open(&o->disk, key, KEY_SIZE, NULL, e);
}

static void on_ready(void *userdata, uint16_t port) {
        struct options *o = userdata;

        printf("WAITING recover-port=%u disk=%s\n", port, o->uuid_waiting);
        fflush(stdout);
}

/* Extend PCR 15 with the cluster ID, as a joined node does: the node can
 * then never be initialized or joined again in this boot. */
static int node_lock(struct options *o, struct tpm_ctx *tpm, struct errmsg *e) {
        struct node_state s;
        int r;

        r = nodestate_read(o->mnt.state_dir, &s, e);
        if (r == -ENOENT)
                return errmsg_set(e, r, "no node state (%s/arca/node.json) on the disk: this node never finished "
                                        "init or join", o->mnt.state_dir);
        if (r < 0) {
                errmsg_prefix(e, "the node state on the disk");
                return r;
        }
        return node_lock_take(tpm, s.cluster_id, e);
}

static int cmd_setup(struct options *o) {
        _cleanup_tpm_ struct tpm_ctx *tpm = NULL;
        struct luks2_info info = {};
        enum disk_state state;
        struct errmsg e = {};
        const char *source = NULL;
        int r;

        r = disk_probe(&o->disk, &state, &info, &e);
        if (r < 0)
                return log_error_errno(r, "Refusing the state disk: %s", errmsg_str(&e));
        log_info("State disk %s: %s%s%s.", o->disk.device, disk_state_to_string(state), info.uuid[0] ? ", LUKS2 UUID " : "",
                 info.uuid);
        if (state != DISK_INITIALIZED) {
                /* Blank, or the node failed before init/join last time: start
                 * afresh. */
                r = disk_format(&o->disk, &info, &e);
                if (r < 0)
                        return log_error_errno(r, "Cannot format %s: %s", o->disk.device, errmsg_str(&e));
                r = disk_open_initial(&o->disk, NULL, &e);
                if (r < 0)
                        return log_error_errno(r, "Cannot open the new disk: %s", errmsg_str(&e));
                r = mount_state(o, true, &e);
                if (r < 0)
                        return log_error_errno(r, "Cannot set up the state file system: %s", errmsg_str(&e));
                log_info("State disk %s formatted (UUID %s) and mounted at %s; waiting for init or join to re-key it.",
                         o->disk.device, info.uuid, o->mnt.state_dir);
                printf("READY state=formatted disk=%s\n", info.uuid);
                return 0;
        }

        r = tpm_open(o->tcti, &tpm, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot open the TPM: %s", errmsg_str(&e));
        {
                struct keywait_config kw = {
                        .tpm = tpm, .tcti = o->tcti, .ready = on_ready, .variant = o->variant, .ak_handle = o->ak_handle, .listen = o->listen,
                        .port = o->port, .n_join = o->n_join, .platform_ca = o->platform_ca, .try_key = try_key,
                        .userdata = o,
                };
                memcpy(kw.join, o->join, sizeof(o->join));
                snprintf(kw.disk_uuid, sizeof(kw.disk_uuid), "%s", info.uuid);
                snprintf(o->uuid_waiting, sizeof(o->uuid_waiting), "%s", info.uuid);
                r = keywait_run(&kw, &source, &e);
                if (r < 0)
                        return log_error_errno(r, "No key for disk %s: %s", info.uuid, errmsg_str(&e));
        }
        r = mount_state(o, false, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot mount the state file system: %s", errmsg_str(&e));
        if (!o->no_node_lock) {
                r = node_lock(o, tpm, &e);
                if (r < 0)
                        return log_error_errno(r, "Cannot take the node lock: %s", errmsg_str(&e));
        }
        log_info("State disk %s opened (%s) and mounted at %s.", info.uuid, source, o->mnt.state_dir);
        printf("READY state=%s disk=%s\n", source, info.uuid);
        return 0;
}

static int read_key_stdin(uint8_t key[KEY_SIZE]) {
        size_t got = 0;
        uint8_t extra;

        while (got < KEY_SIZE) {
                ssize_t n = read(STDIN_FILENO, key + got, KEY_SIZE - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return log_error_errno(EINVAL, "Expected %d key bytes on stdin, got %zu", KEY_SIZE, got);
                got += (size_t) n;
        }
        if (read(STDIN_FILENO, &extra, 1) > 0)
                return log_error_errno(EINVAL, "More than %d key bytes on stdin", KEY_SIZE);
        return 0;
}

/* Open and mount with a key from stdin (operators, tests): the same checks
 * as at boot, no node lock. */
static int cmd_open(struct options *o) {
        _cleanup_(secret32_wipe) uint8_t key[KEY_SIZE] = {};
        struct luks2_info info = {};
        struct errmsg e = {};
        int r;

        r = read_key_stdin(key);
        if (r < 0)
                return r;
        r = disk_open(&o->disk, key, KEY_SIZE, &info, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot open %s: %s", o->disk.device, errmsg_str(&e));
        r = mount_state(o, false, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot mount the state file system: %s", errmsg_str(&e));
        log_info("State disk %s opened and mounted at %s.", info.uuid, o->mnt.state_dir);
        return 0;
}

static int cmd_rekey(struct options *o) {
        _cleanup_(secret32_wipe) uint8_t key[KEY_SIZE] = {};
        struct errmsg e = {};
        int r;

        r = read_key_stdin(key);
        if (r < 0)
                return r;
        r = disk_rekey(&o->disk, o->uuid, key, &e);
        if (r < 0)
                return log_error_errno(r, "Cannot re-key %s: %s", o->disk.device, errmsg_str(&e));
        log_info("State disk %s re-keyed with its derived key and marked initialized.", o->disk.device);
        return 0;
}

static int cmd_check(struct options *o, bool uuid_only) {
        struct luks2_info info = {};
        enum disk_state state;
        struct errmsg e = {};
        int r;

        r = disk_probe(&o->disk, &state, &info, &e);
        if (r < 0)
                return log_error_errno(r, "Refusing the state disk: %s", errmsg_str(&e));
        if (uuid_only) {
                if (state == DISK_BLANK)
                        return log_error_errno(ENODATA, "%s is blank: no UUID yet", o->disk.device);
                printf("%s\n", info.uuid);
        } else
                printf("state=%s uuid=%s data-offset=%llu\n", disk_state_to_string(state), info.uuid[0] ? info.uuid : "-",
                       (unsigned long long) info.data_offset);
        return 0;
}

static int cmd_close(struct options *o) {
        struct errmsg e = {};
        int r;

        r = state_umount(&o->mnt, &e);
        if (r >= 0)
                r = disk_close(&o->disk, &e);
        if (r < 0)
                return log_error_errno(r, "%s", errmsg_str(&e));
        return 0;
}

int main(int argc, char **argv) {
        struct options o = {
                .disk = { .device = "/dev/vdb", .name = "arca-state", .run_dir = "/run/arca-disk" },
                .mnt = {
                        .mkfs = "/sbin/mkfs.ext4", .state_dir = "/run/state",
                        .binds = { { "var", "/var" }, { "kubernetes", "/etc/kubernetes" } }, .n_binds = 2,
                },
                .device_wait_s = 30,
                .variant = "qemu-vtpm",
                .ak_handle = TPM_AK_HANDLE,
                .listen = "0.0.0.0",
                .port = RECOVERY_PORT,
        };
        const char *cmd;
        int r;

        log_setup("arca-disk-mapper");
        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        if (optind + 1 != argc) {
                log_error("Expected one command (setup, rekey, open, check, uuid, close); see --help.");
                return 2;
        }
        cmd = argv[optind];
        signal(SIGPIPE, SIG_IGN);
        snprintf(dm_path, sizeof(dm_path), "/dev/mapper/%s", o.disk.name);
        /* close needs only the mapping's name, not the disk under it. */
        if (o.device_id && strcmp(cmd, "close") != 0 && find_device(&o) < 0)
                return 1;
        o.tcti = tpm_tcti_default(o.tcti);
        if (strcmp(cmd, "setup") == 0)
                r = cmd_setup(&o);
        else if (strcmp(cmd, "rekey") == 0)
                r = cmd_rekey(&o);
        else if (strcmp(cmd, "open") == 0)
                r = cmd_open(&o);
        else if (strcmp(cmd, "check") == 0)
                r = cmd_check(&o, false);
        else if (strcmp(cmd, "uuid") == 0)
                r = cmd_check(&o, true);
        else if (strcmp(cmd, "close") == 0)
                r = cmd_close(&o);
        else {
                log_error("Unknown command \"%s\"; see --help.", cmd);
                return 2;
        }
        fflush(stdout);
        return r < 0 ? 1 : 0;
}
