/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the parser of /proc/net/stat/arp_cache that `arca mini add` reads
 * to tell whether the host's shared ARP table overflowed (cli/mini-neigh.c;
 * the kernel writes it, but a parser of another program's output gets a
 * fuzz target). The CLI is not part of libarca: its file is compiled in. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/mini-neigh.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint64_t fulls = 42;
        int r = mini_neigh_parse_stat((const char *) data, size, &fulls);

        /* Refused: the result is untouched; accepted: the text ends a line. */
        if (r < 0 && fulls != 42)
                abort();
        if (r >= 0 && (size == 0 || data[size - 1] != '\n'))
                abort();
        return 0;
}
