/* SPDX-License-Identifier: Apache-2.0 */
#include "encoding.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

void hex_encode_buf(const void *p, size_t n, char *buf) {
        static const char table[] = "0123456789abcdef";
        const uint8_t *b = p;

        for (size_t i = 0; i < n; i++) {
                buf[2 * i] = table[b[i] >> 4];
                buf[2 * i + 1] = table[b[i] & 15];
        }
        buf[2 * n] = 0;
}

int hex_encode(const void *p, size_t n, char **ret) {
        char *s;

        if (n > (SIZE_MAX - 1) / 2)
                return -ENOMEM;
        s = malloc(2 * n + 1);
        if (!s)
                return -ENOMEM;
        hex_encode_buf(p, n, s);
        *ret = s;
        return 0;
}

static int hex_decode_into(const char *s, size_t len, uint8_t *out) {
        for (size_t i = 0; i < len / 2; i++) {
                int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

int hex_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        int r;

        if (len % 2)
                return -EINVAL;
        out = malloc(len / 2 + 1);
        if (!out)
                return -ENOMEM;
        r = hex_decode_into(s, len, out);
        if (r < 0)
                return r;
        *ret_size = len / 2;
        *ret = TAKE_PTR(out);
        return 0;
}

int hex_decode_exact(const char *s, void *out, size_t n) {
        if (!s || strlen(s) != 2 * n)
                return -EINVAL;
        return hex_decode_into(s, 2 * n, out);
}

int base64_encode(const void *p, size_t n, char **ret) {
        char *s;

        if (n > (size_t) INT_MAX / 4 * 3 - 3)
                return -ENOMEM;
        s = malloc((n + 2) / 3 * 4 + 1);
        if (!s)
                return -ENOMEM;
        EVP_EncodeBlock((unsigned char *) s, p, (int) n);
        *ret = s;
        return 0;
}

static bool is_b64(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '+' || c == '/';
}

int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t pad = 0;
        int n;

        /* EVP_DecodeBlock skips whitespace and does not report padding, so
         * validate the exact shape here first. */
        if (len % 4 || len > (size_t) INT_MAX)
                return -EINVAL;
        if (len >= 1 && s[len - 1] == '=')
                pad++;
        if (len >= 2 && s[len - 2] == '=')
                pad++;
        for (size_t i = 0; i < len - pad; i++)
                if (!is_b64(s[i]))
                        return -EINVAL;
        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        if (len == 0) {
                *ret_size = 0;
                *ret = TAKE_PTR(out);
                return 0;
        }
        n = EVP_DecodeBlock(out, (const unsigned char *) s, (int) len);
        if (n < 0 || (size_t) n < pad)
                return -EINVAL;
        /* Canonical form only: the bits before the padding must be zero, so
         * that one byte string has exactly one encoding. */
        if (pad) {
                const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                const char *c = strchr(alphabet, s[len - pad - 1]);
                if (!c || ((c - alphabet) & (pad == 1 ? 0x03 : 0x0f)) != 0)
                        return -EINVAL;
        }
        *ret_size = (size_t) n - pad;
        *ret = TAKE_PTR(out);
        return 0;
}
