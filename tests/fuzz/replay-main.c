/* SPDX-License-Identifier: Apache-2.0 */
/* Replays a fuzz target's corpus without libFuzzer, so that `make check`
 * (and `make check-asan`) run every corpus file through the parser. Each
 * argument is a file or a directory of files. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, unsigned *count) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        long n;

        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -1;
        }
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -1;
        }
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n) {
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) n);
        free(buf);
        (*count)++;
        return 0;
}

int main(int argc, char **argv) {
        unsigned count = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (S_ISDIR(st.st_mode)) {
                        struct dirent **list;
                        int n = scandir(argv[i], &list, NULL, alphasort);
                        if (n < 0)
                                return 1;
                        for (int j = 0; j < n; j++) {
                                char p[4096];
                                if (list[j]->d_name[0] != '.') {
                                        snprintf(p, sizeof(p), "%s/%s", argv[i], list[j]->d_name);
                                        if (run_file(p, &count) < 0)
                                                return 1;
                                }
                                free(list[j]);
                        }
                        free(list);
                } else if (run_file(argv[i], &count) < 0)
                        return 1;
        }
        printf("replayed %u inputs\n", count);
        return count > 0 ? 0 : 1;
}
