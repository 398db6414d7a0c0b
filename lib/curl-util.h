/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* A bounded response body for libcurl's write callback, shared by every
 * HTTP client in lib/ (aTLS RPCs, the registry, the drivers' etcd calls). */

#include <stdbool.h>
#include <stddef.h>

struct curl_body {
        char *data; /* NUL-terminated */
        size_t size;
        size_t max; /* a larger body aborts the transfer and sets too_large */
        bool too_large;
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA = struct curl_body *. */
size_t curl_body_write(char *p, size_t size, size_t n, void *arg);
/* Forget the data (free), keep max. */
void curl_body_reset(struct curl_body *b);
