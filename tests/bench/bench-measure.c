/* SPDX-License-Identifier: Apache-2.0 */
/* PCR prediction speed: `arca-measure predict` of a ~50 MB UKI (the
 * kernel from /boot, a 42 MB initrd of random bytes) beside `sha256sum` of
 * the same file and `systemd-measure calculate` (PCR 11 only) of its
 * sections, in the same run, page cache warm, median of RUNS each. The
 * prediction reads the UKI once and hashes it about twice (Authenticode of
 * the UKI and of the kernel, the sections for PCR 11 and, shared with
 * them, PCR 9); `openssl dgst -sha256` (one pass, SHA extensions) is
 * printed too. Target: <= 1.3x sha256sum. Exit 77 when the stub or a
 * kernel is missing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "time-util.h"

#define RUNS 7
#define INITRD_SIZE (42u * 1024 * 1024)
#define TARGET_RATIO 1.3
#define STUB "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
#define SDMEASURE "/usr/lib/systemd/systemd-measure"

/* Run argv with stdout to /dev/null; seconds taken, or -1 on failure. */
static double run(char *const argv[]) {
        double t0 = now_s();
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return -1;
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY);
                if (fd >= 0) {
                        dup2(fd, STDOUT_FILENO);
                        dup2(fd, STDERR_FILENO);
                }
                execv(argv[0], argv);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1;
        return now_s() - t0;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(char *const argv[]) {
        double t[RUNS];
        if (run(argv) < 0) /* warm-up, and a check that it works */
                return -1;
        for (int i = 0; i < RUNS; i++)
                if ((t[i] = run(argv)) < 0)
                        return -1;
        qsort(t, RUNS, sizeof(double), cmp);
        return t[RUNS / 2];
}

static int find_kernel(char *buf, size_t size) {
        DIR *d = opendir("/boot");
        struct dirent *de;
        int r = -ENOENT;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "vmlinuz-", 8) == 0) {
                        snprintf(buf, size, "/boot/%s", de->d_name);
                        r = 0;
                }
        closedir(d);
        return r;
}

static int write_file(const char *path, const void *p, size_t n) {
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        if (fwrite(p, 1, n, f) != n) {
                fclose(f);
                return -EIO;
        }
        return fclose(f) == 0 ? 0 : -errno;
}

int main(void) {
        const char *build = getenv("ARCA_BUILD_DIR");
        char dir[] = "/tmp/bench-measure.XXXXXX", measure[512], kernel[512], uki[600], initrd[600], cmdline[600],
             osrel[600], a_linux[600], a_initrd[600], a_cmdline[600], a_osrel[600];
        double t_pred, t_sha, t_ossl, t_sd = -1;
        struct stat st;
        unsigned char *rnd;
        int rc = 1;

        snprintf(measure, sizeof(measure), "%s/arca-measure", build ? build : "build");
        if (access(STUB, R_OK) < 0 || find_kernel(kernel, sizeof(kernel)) < 0) {
                printf("skipped: missing %s (package systemd-boot-efi) or a kernel in /boot\n", STUB);
                return 77;
        }
        if (!mkdtemp(dir))
                return perror("mkdtemp"), 1;
        snprintf(uki, sizeof(uki), "%s/uki.efi", dir);
        snprintf(initrd, sizeof(initrd), "%s/initrd", dir);
        snprintf(cmdline, sizeof(cmdline), "%s/cmdline", dir);
        snprintf(osrel, sizeof(osrel), "%s/osrel", dir);
        rnd = malloc(INITRD_SIZE);
        if (!rnd)
                goto out;
        for (size_t i = 0; i < INITRD_SIZE; i += 4) {
                uint32_t v = (uint32_t) random();
                memcpy(rnd + i, &v, 4);
        }
        if (write_file(initrd, rnd, INITRD_SIZE) < 0 ||
            write_file(cmdline, "console=ttyS0 root=/dev/vda1 ro", 32) < 0 ||
            write_file(osrel, "ID=arca\nNAME=arca\n", 18) < 0) {
                printf("cannot write the inputs in %s\n", dir);
                goto out;
        }
        {
                char *argv[] = { measure, "uki", "assemble", "--linux", kernel, "--initrd", initrd, "--cmdline",
                                 cmdline, "--osrel", osrel, "--output", uki, NULL };
                if (run(argv) < 0 || stat(uki, &st) < 0) {
                        printf("arca-measure uki assemble failed\n");
                        goto out;
                }
        }
        printf("UKI: %.1f MB (kernel %s, %u MB initrd), median of %d runs, page cache warm\n",
               (double) st.st_size / 1e6, kernel, INITRD_SIZE >> 20, RUNS);

        {
                char *pred[] = { measure, "predict", "--uki", uki, "-o", "json", NULL };
                char *sha[] = { "/usr/bin/sha256sum", uki, NULL };
                char *ossl[] = { "/usr/bin/openssl", "dgst", "-sha256", uki, NULL };
                t_pred = median(pred);
                t_sha = median(sha);
                t_ossl = median(ossl);
        }
        if (t_pred < 0 || t_sha < 0 || t_ossl < 0) {
                printf("arca-measure predict, sha256sum or openssl dgst failed\n");
                goto out;
        }
        if (access(SDMEASURE, X_OK) == 0) {
                snprintf(a_linux, sizeof(a_linux), "--linux=%s", kernel);
                snprintf(a_initrd, sizeof(a_initrd), "--initrd=%s", initrd);
                snprintf(a_cmdline, sizeof(a_cmdline), "--cmdline=%s", cmdline);
                snprintf(a_osrel, sizeof(a_osrel), "--osrel=%s", osrel);
                char *sd[] = { SDMEASURE, "calculate", a_linux, a_initrd, a_cmdline, a_osrel, "--bank=sha256", NULL };
                t_sd = median(sd);
        }

        printf("arca-measure predict (PCRs 4, 9, 11, 12, 13)  %7.1f ms\n", t_pred * 1e3);
        printf("sha256sum of the UKI                          %7.1f ms\n", t_sha * 1e3);
        printf("openssl dgst -sha256 of the UKI               %7.1f ms\n", t_ossl * 1e3);
        if (t_sd >= 0)
                printf("systemd-measure calculate (PCR 11 only)       %7.1f ms\n", t_sd * 1e3);
        else
                printf("systemd-measure calculate: not available (%s)\n", SDMEASURE);
        printf("ratio predict / sha256sum: %.2fx (target <= %.1fx): %s\n", t_pred / t_sha, TARGET_RATIO,
               t_pred / t_sha <= TARGET_RATIO ? "met" : "MISSED");
        /* coreutils' SHA-256 does not use the CPU's SHA extensions; OpenSSL
         * does: the ratio to one OpenSSL pass shows the work done. */
        printf("ratio predict / openssl dgst -sha256: %.2fx (the prediction hashes the UKI about twice)\n",
               t_pred / t_ossl);
        if (t_sd >= 0)
                printf("ratio predict / systemd-measure calculate (4 phase paths of PCR 11): %.2fx\n",
                       t_pred / t_sd);
        rc = 0;
out:
        free(rnd);
        unlink(uki);
        unlink(initrd);
        unlink(cmdline);
        unlink(osrel);
        rmdir(dir);
        return rc;
}
