/* SPDX-License-Identifier: Apache-2.0 */
#include "curl-util.h"

#include <stdlib.h>
#include <string.h>

size_t curl_body_write(char *p, size_t size, size_t n, void *arg) {
        struct curl_body *b = arg;
        size_t len = size * n;
        char *nd;

        if (n && len / n != size)
                return 0;
        if (len > b->max - b->size) {
                b->too_large = true;
                return 0;
        }
        nd = realloc(b->data, b->size + len + 1);
        if (!nd)
                return 0;
        memcpy(nd + b->size, p, len);
        b->data = nd;
        b->size += len;
        b->data[b->size] = 0;
        return len;
}

void curl_body_reset(struct curl_body *b) {
        free(b->data);
        b->data = NULL;
        b->size = 0;
        b->too_large = false;
}
