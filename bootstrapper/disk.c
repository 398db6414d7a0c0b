/* SPDX-License-Identifier: Apache-2.0 */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "secret.h"
#include "validate.h"

/* One state disk per node; the hook's userdata belongs to all hand-offs, so
 * the disk keeps its own. */
static struct {
        char mapper[PATH_MAX];
        char device[PATH_MAX];
        char uuid[UUID_STRING_SIZE];
} disk;

/* Run the mapper with `args`, feeding `in` (may be NULL) on stdin and
 * reading up to out_size-1 bytes of stdout. */
static int run_mapper(char *const args[], const void *in, size_t in_size, char *out, size_t out_size,
                      struct errmsg *e) {
        int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, status;
        size_t got = 0;
        pid_t pid;

        if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0) {
                int r = -errno;
                for (int i = 0; i < 2; i++) {
                        if (pin[i] >= 0)
                                close(pin[i]);
                        if (pout[i] >= 0)
                                close(pout[i]);
                }
                return errmsg_set(e, r, "pipe: %s", strerror(-r));
        }
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]);
                return errmsg_set(e, r, "fork: %s", strerror(-r));
        }
        if (pid == 0) {
                if (dup2(pin[0], STDIN_FILENO) < 0 || dup2(pout[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execv(disk.mapper, args);
                fprintf(stderr, "cannot run %s: %s\n", disk.mapper, strerror(errno));
                _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        /* A child that stops reading fails, and says why in its status. */
        if (in)
                (void) write_all(pin[1], in, in_size);
        close(pin[1]);
        while (out && got + 1 < out_size) {
                ssize_t n = read(pout[0], out + got, out_size - 1 - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        if (out)
                out[got] = 0;
        close(pout[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return errmsg_set(e, errno, "waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return errmsg_set(e, EIO, "%s %s failed (status 0x%x; see its log)", disk.mapper, args[3],
                                  (unsigned) status);
        return 0;
}

static int rekey_hook(void *userdata, const char *disk_uuid, const uint8_t key[KEY_SIZE], struct errmsg *e) {
        char *args[] = { disk.mapper, "--device", disk.device, "rekey", "--uuid", (char *) disk_uuid, NULL };
        /* getopt permutes: options after the command are fine. */
        int r = run_mapper(args, key, KEY_SIZE, NULL, 0, e);
        if (r < 0)
                return r;
        log_info("State disk %s re-keyed with its derived key.", disk_uuid);
        return 0;
}

int disk_handoff_setup(struct node *n, const char *mapper, const char *device, struct errmsg *e) {
        char out[128];
        char *args[] = { disk.mapper, "--device", disk.device, "uuid", NULL };
        int r;

        if (snprintf(disk.mapper, sizeof(disk.mapper), "%s", mapper) >= (int) sizeof(disk.mapper) ||
            snprintf(disk.device, sizeof(disk.device), "%s", device) >= (int) sizeof(disk.device))
                return errmsg_set(e, ENAMETOOLONG, "path too long");
        r = run_mapper(args, NULL, 0, out, sizeof(out), e);
        if (r < 0)
                return r;
        out[strcspn(out, "\n")] = 0;
        if (!valid_uuid(out))
                return errmsg_set(e, EBADMSG, "%s uuid printed \"%.64s\", not a UUID", mapper, out);
        snprintf(disk.uuid, sizeof(disk.uuid), "%s", out);
        n->opt.disk_uuid = disk.uuid;
        n->handoff.rekey_disk = rekey_hook;
        return 0;
}
