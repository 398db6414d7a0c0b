/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "encoding.h"
#include "errmsg.h"
#include "fileio.h"
#include "hkdf.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "secret.h"
#include "time-util.h"
#include "tpm.h"

/* Decode a hex literal of the test vectors; aborts the test on bad input. */
static size_t unhex(const char *s, uint8_t *out, size_t max) {
        _cleanup_free_ uint8_t *d = NULL;
        size_t n;

        cr_assert_eq(hex_decode(s, strlen(s), &d, &n), 0, "bad test vector %s", s);
        cr_assert_leq(n, max);
        memcpy(out, d, n);
        return n;
}

/* --- HKDF-SHA256, RFC 5869 appendix A ------------------------------------ */

static void check_hkdf(const char *ikm_hex, const char *salt_hex, const char *info_hex,
                       const char *okm_hex) {
        uint8_t ikm[128], salt[128], info[128], want[128], got[128];
        size_t ikm_len = unhex(ikm_hex, ikm, sizeof(ikm));
        size_t salt_len = unhex(salt_hex, salt, sizeof(salt));
        size_t info_len = unhex(info_hex, info, sizeof(info));
        size_t okm_len = unhex(okm_hex, want, sizeof(want));

        memset(got, 0, sizeof(got));
        /* Empty salt and info are passed as zero-length buffers, not NULL:
         * hkdf_sha256() fails (-EIO from OpenSSL) on a NULL salt. */
        cr_assert_eq(hkdf_sha256(ikm, ikm_len, salt, salt_len, info, info_len, got, okm_len), 0);
        cr_assert_arr_eq(got, want, okm_len);
        /* Nothing written past the requested length. */
        for (size_t i = okm_len; i < sizeof(got); i++)
                cr_assert_eq(got[i], 0);
}

Test(hkdf, rfc5869_a1_basic) {
        check_hkdf("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
                   "f0f1f2f3f4f5f6f7f8f9",
                   "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

Test(hkdf, rfc5869_a2_long_inputs) {
        check_hkdf("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                   "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
                   "404142434445464748494a4b4c4d4e4f",
                   "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
                   "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
                   "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                   "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
                   "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
                   "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                   "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                   "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                   "cc30c58179ec3e87c14c01d5c1f3434f1d87");
}

Test(hkdf, rfc5869_a3_empty_salt_and_info) {
        check_hkdf("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
                   "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

Test(hkdf, rejects_bad_output_length) {
        uint8_t ikm[32] = {}, salt[32] = {}, out[255 * 32 + 1];

        cr_assert_eq(hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), "i", 1, out, 0), -EINVAL);
        cr_assert_eq(hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), "i", 1, out, sizeof(out)), -EINVAL);
        cr_assert_eq(hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), "i", 1, out, sizeof(out) - 1), 0);
}

/* The derivation our keys use (32-byte IKM and salt, info "key-<id>"),
 * against an independent implementation: the openssl CLI. */
Test(hkdf, matches_openssl_cli) {
        uint8_t ikm[32], salt[32], got[32], want[32];
        char ikm_hex[65], salt_hex[65], cmd[512], line[256], digits[128];
        const char *info = "key-test";
        FILE *p;
        size_t n = 0;
        int st;

        if (system("command -v openssl >/dev/null 2>&1") != 0)
                cr_skip_test("the openssl command line tool is not installed");

        cr_assert_eq(secret_random(ikm, sizeof(ikm)), 0);
        cr_assert_eq(secret_random(salt, sizeof(salt)), 0);
        hex_encode_buf(ikm, sizeof(ikm), ikm_hex);
        hex_encode_buf(salt, sizeof(salt), salt_hex);
        snprintf(cmd, sizeof(cmd),
                 "openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:%s -kdfopt hexsalt:%s "
                 "-kdfopt info:%s HKDF",
                 ikm_hex, salt_hex, info);
        p = popen(cmd, "r");
        cr_assert_not_null(p);
        /* "3C:B2:5F:...", possibly followed by an empty line. */
        while (fgets(line, sizeof(line), p))
                for (char *c = line; *c; c++)
                        if (*c != ':' && *c != '\n' && *c != '\r' && *c != ' ') {
                                cr_assert_lt(n, sizeof(digits) - 1, "unexpected output from openssl kdf");
                                digits[n++] = *c;
                        }
        digits[n] = 0;
        st = pclose(p);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "openssl kdf failed");
        cr_assert_eq(hex_decode_exact(digits, want, sizeof(want)), 0, "openssl kdf printed \"%s\"", digits);

        cr_assert_eq(hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), info, strlen(info), got, sizeof(got)),
                     0);
        cr_assert_arr_eq(got, want, sizeof(got));

        /* A different info gives a different key. */
        cr_assert_eq(hkdf_sha256(ikm, sizeof(ikm), salt, sizeof(salt), "key-tesu", 8, got, sizeof(got)), 0);
        cr_assert_arr_neq(got, want, sizeof(got));
}

/* --- hex ----------------------------------------------------------------- */

Test(hex, encode) {
        const uint8_t b[] = { 0x00, 0xff, 0x10, 0xab, 0x9c };
        _cleanup_free_ char *s = NULL, *empty = NULL;
        char buf[11];

        cr_assert_eq(hex_encode(b, sizeof(b), &s), 0);
        cr_assert_str_eq(s, "00ff10ab9c");
        hex_encode_buf(b, sizeof(b), buf);
        cr_assert_str_eq(buf, "00ff10ab9c");
        cr_assert_eq(hex_encode(b, 0, &empty), 0);
        cr_assert_str_eq(empty, "");
}

Test(hex, decode_any_case) {
        _cleanup_free_ uint8_t *d = NULL;
        size_t n;
        const uint8_t want[] = { 0xde, 0xad, 0xbe, 0xef, 0x09 };

        cr_assert_eq(hex_decode("DeAdbEEF09", 10, &d, &n), 0);
        cr_assert_eq(n, 5);
        cr_assert_arr_eq(d, want, 5);
}

Test(hex, decode_empty) {
        _cleanup_free_ uint8_t *d = NULL;
        size_t n = 99;

        cr_assert_eq(hex_decode("", 0, &d, &n), 0);
        cr_assert_eq(n, 0);
}

Test(hex, decode_refuses_odd_length) {
        uint8_t *d = NULL;
        size_t n = 99;

        cr_assert_eq(hex_decode("abc", 3, &d, &n), -EINVAL);
        cr_assert_null(d);
        cr_assert_eq(n, 99);
}

Test(hex, decode_refuses_bad_characters) {
        static const char *const bad[] = { "0g", "g0", "  ", "0x", "-1", "ab\n0", "ab 0", "\xc3\xa9" };
        uint8_t *d = NULL;
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                cr_assert_eq(hex_decode(bad[i], strlen(bad[i]), &d, &n), -EINVAL, "\"%s\"", bad[i]);
                cr_assert_null(d);
        }
        /* A NUL within the given length is not a hex digit either. */
        cr_assert_eq(hex_decode("a\0", 2, &d, &n), -EINVAL);
}

Test(hex, decode_exact) {
        uint8_t out[4];
        const uint8_t want[] = { 0x01, 0x23, 0x45, 0x67 };

        cr_assert_eq(hex_decode_exact("01234567", out, 4), 0);
        cr_assert_arr_eq(out, want, 4);
        cr_assert_eq(hex_decode_exact("012345", out, 4), -EINVAL);
        cr_assert_eq(hex_decode_exact("0123456789", out, 4), -EINVAL);
        cr_assert_eq(hex_decode_exact("0123456z", out, 4), -EINVAL);
        cr_assert_eq(hex_decode_exact(NULL, out, 4), -EINVAL);
}

/* --- base64, RFC 4648 section 10 ----------------------------------------- */

static const struct {
        const char *plain, *b64;
} rfc4648[] = {
        { "", "" },
        { "f", "Zg==" },
        { "fo", "Zm8=" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" },
        { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
};

Test(base64, rfc4648_encode) {
        for (size_t i = 0; i < ELEMENTSOF(rfc4648); i++) {
                _cleanup_free_ char *s = NULL;

                cr_assert_eq(base64_encode(rfc4648[i].plain, strlen(rfc4648[i].plain), &s), 0);
                cr_assert_str_eq(s, rfc4648[i].b64);
        }
}

Test(base64, rfc4648_decode) {
        for (size_t i = 0; i < ELEMENTSOF(rfc4648); i++) {
                _cleanup_free_ uint8_t *d = NULL;
                size_t n = 99;

                cr_assert_eq(base64_decode(rfc4648[i].b64, strlen(rfc4648[i].b64), &d, &n), 0, "\"%s\"",
                             rfc4648[i].b64);
                cr_assert_eq(n, strlen(rfc4648[i].plain), "\"%s\"", rfc4648[i].b64);
                cr_assert_arr_eq(d, rfc4648[i].plain, n);
        }
}

Test(base64, binary_round_trip) {
        uint8_t b[256];
        _cleanup_free_ char *s = NULL;
        _cleanup_free_ uint8_t *d = NULL;
        size_t n;

        for (size_t i = 0; i < sizeof(b); i++)
                b[i] = (uint8_t) i;
        cr_assert_eq(base64_encode(b, sizeof(b), &s), 0);
        cr_assert_eq(base64_decode(s, strlen(s), &d, &n), 0);
        cr_assert_eq(n, sizeof(b));
        cr_assert_arr_eq(d, b, n);
}

Test(base64, decode_refuses_bad_padding) {
        static const char *const bad[] = {
                "Zg",       /* padding missing */
                "Zg=",      /* padding short */
                "Z===",     /* three pad characters */
                "====",     /* only padding */
                "Zg==Zg==", /* padding in the middle */
                "Z=g=",     /* pad character inside the group */
                "Zm9vY",    /* length not a multiple of 4 */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t *d = NULL;
                size_t n = 99;

                cr_assert_eq(base64_decode(bad[i], strlen(bad[i]), &d, &n), -EINVAL, "\"%s\"", bad[i]);
                cr_assert_null(d);
                cr_assert_eq(n, 99);
        }
}

Test(base64, decode_refuses_bad_characters) {
        static const char *const bad[] = {
                "Zm9v!A==", "Zm9v YQ=", "Zm9v\nYQ=", "Zm9-", "Zm9_", "Zm9\x80", "Zm9v\tA==",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint8_t *d = NULL;
                size_t n;

                cr_assert_eq(base64_decode(bad[i], strlen(bad[i]), &d, &n), -EINVAL, "\"%s\"", bad[i]);
                cr_assert_null(d);
        }
        cr_assert_eq(base64_decode("Zm\0v", 4, &(uint8_t *){ NULL }, &(size_t){ 0 }), -EINVAL);
}

/* --- json_parse ---------------------------------------------------------- */

static int parse(const char *s, struct errmsg *e) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r = json_parse(s, strlen(s), &o, e);

        cr_assert(r < 0 ? o == NULL : o != NULL);
        return r;
}

Test(json_parse, accepts_document_and_trailing_whitespace) {
        struct errmsg e = {};

        cr_assert_eq(parse("{\"a\": [1, 2, {\"b\": true}]}", &e), 0, "%s", e.text);
        cr_assert_eq(parse(" {\"a\": 1} \n\t\r\n", &e), 0, "%s", e.text);
        cr_assert_eq(parse("[]", &e), 0, "%s", e.text);
}

Test(json_parse, refuses_trailing_data) {
        static const char *const bad[] = { "{} x", "{}{}", "[1] 2", "{\"a\": 1}}", "{} \"x\"" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct errmsg e = {};

                cr_assert_eq(parse(bad[i], &e), -EBADMSG, "\"%s\"", bad[i]);
                cr_assert(e.text[0], "no reason for \"%s\"", bad[i]);
        }
        /* A NUL in the middle of the given length is data too. */
        {
                _cleanup_(json_object_putp) json_object *o = NULL;
                cr_assert_eq(json_parse("{}\0{}", 5, &o, NULL), -EBADMSG);
        }
}

Test(json_parse, refuses_truncated) {
        static const char *const bad[] = { "{", "{\"a\":", "{\"a\": [1, 2", "{\"a\": \"xy", "[", "" };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct errmsg e = {};

                cr_assert_eq(parse(bad[i], &e), -EBADMSG, "\"%s\"", bad[i]);
                cr_assert_not_null(strstr(e.text, "truncated"), "\"%s\": %s", bad[i], e.text);
        }
}

Test(json_parse, refuses_invalid) {
        static const char *const bad[] = {
                "{a: 1}", "[1,]", "{\"a\": 1,}", "[01]", "{\"a\" 1}", "/* c */ {}"
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(parse(bad[i], NULL), -EBADMSG, "\"%s\"", bad[i]);
}

static char *nested(unsigned depth) {
        char *s = malloc(2 * depth + 1);

        cr_assert_not_null(s);
        memset(s, '[', depth);
        memset(s + depth, ']', depth);
        s[2 * depth] = 0;
        return s;
}

/* json-util bounds nesting at 16 levels. */
Test(json_parse, depth_bound) {
        _cleanup_free_ char *ok = nested(16), *deep = nested(17), *very = nested(100000);
        struct errmsg e = {};

        cr_assert_eq(parse(ok, &e), 0, "%s", e.text);
        cr_assert_eq(parse(deep, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "nest"), "%s", e.text);
        cr_assert_eq(parse(very, NULL), -EBADMSG);
}

/* A message's top level: size bound first, then an object with only the
 * allowed members; every refusal says which. */
Test(json_parse, object_with_allowed_fields) {
        static const char *const fields[] = { "a", "b", NULL };
        static const char ok[] = "{\"a\": 1}", extra[] = "{\"a\": 1, \"evil\": 2}";
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *none = NULL;
        struct errmsg e = {};

        cr_assert_eq(json_parse_object(ok, strlen(ok), 64, fields, &o, &e), 0, "%s", e.text);
        cr_assert(json_object_is_type(o, json_type_object));

        e = (struct errmsg){};
        cr_assert_eq(json_parse_object(extra, strlen(extra), 64, fields, &none, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "unknown field 'evil'"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(json_parse_object("[1]", 3, 64, fields, &none, &e), -EBADMSG);
        cr_assert_not_null(strstr(e.text, "expected a JSON object"), "%s", e.text);
        e = (struct errmsg){};
        cr_assert_eq(json_parse_object(ok, strlen(ok), strlen(ok) - 1, fields, &none, &e), -EFBIG);
        cr_assert_not_null(strstr(e.text, "larger than"), "%s", e.text);
        cr_assert_null(none);
}

/* --- errmsg -------------------------------------------------------------- */

Test(errmsg, first_writer_wins) {
        struct errmsg e = {};

        cr_assert_eq(errmsg_set(&e, EBADMSG, "inner %d", 1), -EBADMSG);
        cr_assert_eq(errmsg_set(&e, EIO, "outer %d", 2), -EIO);
        cr_assert_str_eq(e.text, "inner 1");
        cr_assert_str_eq(errmsg_str(&e), "inner 1");
}

Test(errmsg, returns_negative_errno_either_sign) {
        cr_assert_eq(errmsg_set(NULL, EPERM, "x"), -EPERM);
        cr_assert_eq(errmsg_set(NULL, -EPERM, "x"), -EPERM);
        cr_assert_eq(errmsg_replace(NULL, -ENOENT, "x"), -ENOENT);
}

Test(errmsg, replace_overwrites) {
        struct errmsg e = {};

        errmsg_set(&e, EIO, "first");
        cr_assert_eq(errmsg_replace(&e, EINVAL, "second %s", "reason"), -EINVAL);
        cr_assert_str_eq(e.text, "second reason");
}

Test(errmsg, prefix) {
        struct errmsg e = {}, empty = {};

        errmsg_set(&e, EBADMSG, "not valid hex");
        errmsg_prefix(&e, "field '%s'", "expected");
        cr_assert_str_eq(e.text, "field 'expected': not valid hex");
        errmsg_prefix(&e, "PCR %u", 4);
        cr_assert_str_eq(e.text, "PCR 4: field 'expected': not valid hex");

        errmsg_prefix(&empty, "ctx");
        cr_assert_str_eq(empty.text, "ctx: unknown error");
        errmsg_prefix(NULL, "ctx");
}

Test(errmsg, truncates_long_reasons) {
        struct errmsg e = {};
        char long_reason[2000];

        memset(long_reason, 'x', sizeof(long_reason) - 1);
        long_reason[sizeof(long_reason) - 1] = 0;
        errmsg_set(&e, EIO, "%s", long_reason);
        cr_assert_eq(strlen(e.text), sizeof(e.text) - 1);
        errmsg_prefix(&e, "ctx");
        cr_assert_eq(strlen(e.text), sizeof(e.text) - 1);
        cr_assert(strncmp(e.text, "ctx: xxx", 8) == 0);
}

Test(errmsg, str_without_reason) {
        struct errmsg e = {};

        cr_assert_str_eq(errmsg_str(NULL), "unknown error");
        cr_assert_str_eq(errmsg_str(&e), "unknown error");
}

/* Outside text in a message: printable ASCII only, cut with "...". */
Test(errmsg, printable_escapes_all_but_printable_ascii) {
        char buf[32];

        cr_assert_str_eq(printable_str("node-1 [::1]:9000 ~", buf, sizeof(buf)), "node-1 [::1]:9000 ~");
        /* A forged log line, a terminal escape, DEL, UTF-8 and a raw CSI byte. */
        cr_assert_str_eq(printable_str("a\nERR x\r\x1b[2J\x7f\xc3\xa9\x9b", buf, sizeof(buf)),
                         "a?ERR x??[2J????");
        /* NUL bytes inside a counted buffer are escaped too, and end it nowhere. */
        cr_assert_str_eq(printable("a\0b\tc", 5, buf, sizeof(buf)), "a?b?c");
        cr_assert_str_eq(printable("abc", 0, buf, sizeof(buf)), "");
        cr_assert_str_eq(printable_str(NULL, buf, sizeof(buf)), "(null)");
        cr_assert_str_eq(printable(NULL, 3, buf, sizeof(buf)), "(null)");
        cr_assert_str_eq(PRINTABLE("\x1b]0;owned\x07"), "?]0;owned?");
}

Test(errmsg, printable_cuts_at_size_minus_four) {
        char buf[8], big[300];

        /* Up to size - 4 bytes shown whole; one more and it is cut. */
        cr_assert_str_eq(printable_str("abcd", buf, sizeof(buf)), "abcd");
        cr_assert_str_eq(printable_str("abcde", buf, sizeof(buf)), "abcd...");
        cr_assert_str_eq(printable("abcdefgh", 4, buf, sizeof(buf)), "abcd");
        cr_assert_str_eq(printable("abcdefgh", 5, buf, sizeof(buf)), "abcd...");
        cr_assert_str_eq(printable_str("\x01\x02\x03\x04\x05", buf, 4), "...");
        /* The counted form reads no further than len: no NUL needed. */
        memset(big, 'k', sizeof(big));
        cr_assert_str_eq(printable(big, 3, buf, sizeof(buf)), "kkk");
        big[sizeof(big) - 1] = 0;
        cr_assert_eq(strlen(PRINTABLE(big)), PRINTABLE_MAX + 3);
        cr_assert(strcmp(PRINTABLE(big) + PRINTABLE_MAX, "...") == 0);
}

/* --- write_all ----------------------------------------------------------- */

#define WA_SIZE (2u << 20)

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
        alarms++;
}

struct wa_reader {
        int fd;
        uint8_t *got;
        size_t n;
};

/* Reads slowly, in small pieces, with the timer's signal blocked. */
static void *wa_read(void *arg) {
        struct wa_reader *rd = arg;
        sigset_t ss;
        ssize_t k;

        sigemptyset(&ss);
        sigaddset(&ss, SIGALRM);
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
        while (rd->n < WA_SIZE && (k = read(rd->fd, rd->got + rd->n, 1024)) > 0) {
                rd->n += (size_t) k;
                if (rd->n % (64 * 1024) == 0)
                        usleep(1000);
        }
        return NULL;
}

/* A signal that lands while write blocks on a full pipe makes it return
 * what it wrote so far (a short write) or EINTR: write_all carries on. */
Test(fileio, write_all_through_signals_and_short_writes) {
        struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
        struct itimerval it = { .it_interval.tv_usec = 300, .it_value.tv_usec = 300 };
        _cleanup_free_ uint8_t *data = malloc(WA_SIZE);
        _cleanup_free_ uint8_t *got = malloc(WA_SIZE);
        struct wa_reader rd = { .got = got };
        pthread_t t;
        int p[2];

        cr_assert(data && got);
        for (size_t i = 0; i < WA_SIZE; i++)
                data[i] = (uint8_t) (i * 7 + i / 4093);
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        (void) fcntl(p[1], F_SETPIPE_SZ, 4096);
        rd.fd = p[0];
        cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
        cr_assert_eq(pthread_create(&t, NULL, wa_read, &rd), 0);
        cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
        cr_assert_eq(write_all(p[1], data, WA_SIZE), 0);
        it = (struct itimerval){};
        setitimer(ITIMER_REAL, &it, NULL);
        close(p[1]);
        pthread_join(t, NULL);
        close(p[0]);
        cr_assert_gt(alarms, 0, "no signal arrived during the write: the test did not test anything");
        cr_assert_eq(rd.n, WA_SIZE, "the reader got %zu of %u bytes", rd.n, WA_SIZE);
        cr_assert_eq(memcmp(data, got, WA_SIZE), 0, "the bytes arrived changed or out of order");
}

Test(fileio, write_all_reports_a_closed_reader) {
        int p[2];

        signal(SIGPIPE, SIG_IGN);
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        close(p[0]);
        cr_assert_eq(write_all(p[1], "x", 1), -EPIPE);
        cr_assert_eq(write_all(p[1], "", 0), 0, "nothing to write is no error");
        close(p[1]);
        cr_assert_eq(write_all(p[1], "x", 1), -EBADF);
}

Test(fileio, mkdir_p_makes_what_is_missing) {
        char dir[] = "/tmp/arca-mkdir.XXXXXX", path[128], file[128];
        struct stat st;
        int fd;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/a/b/c", dir);
        cr_assert_eq(mkdir_p(path, 0700), 0);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert(S_ISDIR(st.st_mode));
        cr_assert_eq(st.st_mode & 0777, 0700);
        cr_assert_eq(mkdir_p(path, 0700), 0, "a second time is no error");
        /* A file where a directory should be is refused, at the end or on the way. */
        snprintf(file, sizeof(file), "%s/a/f", dir);
        fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(mkdir_p(file, 0700), -ENOTDIR);
        snprintf(path, sizeof(path), "%s/a/f/g", dir);
        cr_assert_eq(mkdir_p(path, 0700), -ENOTDIR);
        unlink(file);
        snprintf(path, sizeof(path), "%s/a/b/c", dir), rmdir(path);
        snprintf(path, sizeof(path), "%s/a/b", dir), rmdir(path);
        snprintf(path, sizeof(path), "%s/a", dir), rmdir(path);
        cr_assert_eq(rmdir(dir), 0, "mkdir_p left something behind in %s", dir);
}

/* --- monotonic time ------------------------------------------------------ */

/* sleep_ms sleeps its whole time even when signals interrupt it, and the
 * two clocks agree. */
Test(time, sleep_ms_outlasts_signals_and_clocks_agree) {
        struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
        struct itimerval it = { .it_interval.tv_usec = 2000, .it_value.tv_usec = 2000 };
        uint64_t t0 = now_ms(), t1;
        double s0 = now_s(), s1;

        alarms = 0;
        cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
        cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
        sleep_ms(60);
        t1 = now_ms();
        s1 = now_s();
        it = (struct itimerval){};
        setitimer(ITIMER_REAL, &it, NULL);
        cr_assert_gt(alarms, 0, "no signal interrupted the sleep: the test did not test anything");
        cr_assert_geq(t1 - t0, 60, "slept %llu ms of 60", (unsigned long long) (t1 - t0));
        cr_assert_lt(t1 - t0, 5000, "slept %llu ms (a clock not in milliseconds?)",
                     (unsigned long long) (t1 - t0));
        /* now_s is the same clock in seconds: each reading is at or after
         * the other one taken before it (however long the scheduler waits
         * in between; 1 ms for rounding). */
        cr_assert_geq((uint64_t) (s0 * 1000) + 1, t0, "now_s %.4f s before now_ms %llu ms", s0,
                      (unsigned long long) t0);
        t0 = now_ms();
        cr_assert_geq(t0 + 1, (uint64_t) (s1 * 1000), "now_ms %llu ms before now_s %.4f s",
                      (unsigned long long) t0, s1);
}

/* --- secrets ------------------------------------------------------------- */

Test(secret, equal) {
        uint8_t a[32], b[32];

        for (size_t i = 0; i < sizeof(a); i++)
                a[i] = b[i] = (uint8_t) (i * 7);
        cr_assert(secret_equal(a, b, sizeof(a)));
        b[0] ^= 1;
        cr_assert_not(secret_equal(a, b, sizeof(a)));
        b[0] ^= 1;
        b[31] ^= 0x80;
        cr_assert_not(secret_equal(a, b, sizeof(a)));
        /* Only the first n bytes count. */
        cr_assert(secret_equal(a, b, 31));
        cr_assert(secret_equal(a, b, 0));
}

Test(secret, wipe_and_random) {
        uint8_t a[64], zero[64] = {};

        cr_assert_eq(secret_random(a, sizeof(a)), 0);
        /* 2^-512 chance of a false failure. */
        cr_assert_arr_neq(a, zero, sizeof(a));
        secret_wipe(a, sizeof(a));
        cr_assert_arr_eq(a, zero, sizeof(a));
        secret_wipe(NULL, 0);
        cr_assert_null(secret_free(NULL, 0));
}

/* json-c would read these as other documents (last duplicate wins, escapes
 * and NULs shorten keys); a signed or attested document must have exactly one
 * reading, so json_parse refuses them. */
Test(json_parse, refuses_ambiguous_documents) {
        static const struct {
                const char *doc, *reason;
        } bad[] = {
                { "{\"a\": 1, \"a\": 2}", "duplicate key \"a\"" },
                { "{\"x\": {\"b\": 1, \"c\": 2, \"b\": 3}}", "duplicate key \"b\" in \"x\"" },
                { "[{\"a\": 1}, {\"c\": [{\"d\": 1, \"d\": 1}]}]", "duplicate key \"d\" in \"c\"" },
                { "{\"v\\u0061riant\": 1}", "escape sequence in JSON key" },
                { "{\"a\": \"x\\u0000y\"}", "NUL character in JSON string" },
                { "{'a': 1}", "single-quoted" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct errmsg e = {};

                cr_assert_eq(parse(bad[i].doc, &e), -EBADMSG, "%s", bad[i].doc);
                cr_assert_not_null(strstr(e.text, bad[i].reason), "%s: \"%s\"", bad[i].doc, e.text);
        }
        /* Same key in sibling objects, escapes in values: fine. */
        struct errmsg e = {};
        cr_assert_eq(parse("[{\"a\": 1}, {\"a\": 1}, {\"b\": {\"a\": \"\\\\\\\"\\u00e9\"}}]", &e), 0, "%s", e.text);
}

Test(tpm, persistent_handle_from_command_line) {
        static const char *const bad[] = {
                "", "0x", "-0x81000003", " 0x81000003", "+0x81000003", "0x81000003x", "0x80ffffff",
                "0x82000000", "0x181000003", "0x10000000081000003", "81000003",
        };
        uint32_t h = 0;

        cr_assert_eq(tpm_parse_persistent_handle("0x81000003", &h), 0);
        cr_assert_eq(h, UINT32_C(0x81000003));
        cr_assert_eq(tpm_parse_persistent_handle("2164260868", &h), 0); /* decimal 0x81000004 */
        cr_assert_eq(h, UINT32_C(0x81000004));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                h = 7;
                cr_assert_eq(tpm_parse_persistent_handle(bad[i], &h), -EINVAL, "accepted \"%s\"", bad[i]);
                cr_assert_eq(h, 7, "\"%s\" changed the result", bad[i]);
        }
}

/* --- journald's native protocol (lib/log.c) ---------------------------------- */

/* The value of field `name` in a native-protocol datagram, or NULL. */
static char *journal_field_value(const char *d, size_t n, const char *name) {
        size_t at = 0;

        while (at < n) {
                const char *nl = memchr(d + at, '\n', n - at), *eq = memchr(d + at, '=', n - at);
                uint64_t le, len;

                cr_assert_not_null(nl, "field without a newline");
                if (eq && eq < nl) { /* NAME=value */
                        if ((size_t) (eq - (d + at)) == strlen(name) && !memcmp(d + at, name, strlen(name)))
                                return strndup(eq + 1, (size_t) (nl - eq - 1));
                        at = (size_t) (nl - d) + 1;
                        continue;
                }
                cr_assert_leq((size_t) (nl - d) + 1 + 8, n, "truncated length");
                memcpy(&le, nl + 1, 8);
                len = le64toh(le);
                cr_assert_leq((size_t) (nl - d) + 1 + 8 + len + 1, n, "truncated value");
                cr_assert_eq(nl[1 + 8 + len], '\n');
                if ((size_t) (nl - (d + at)) == strlen(name) && !memcmp(d + at, name, strlen(name)))
                        return strndup(nl + 1 + 8, len);
                at = (size_t) (nl - d) + 1 + 8 + len + 1;
        }
        return NULL;
}

Test(log, journal_entries_in_the_native_protocol) {
        char dir[] = "/tmp/arca-test-journal-XXXXXX", path[128], d[8192];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 5 };
        _cleanup_free_ char *msg = NULL, *prio = NULL, *err = NULL, *ident = NULL, *func = NULL;
        ssize_t n;
        int fd;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/socket", dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_DGRAM, 0);
        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);

        log_setup("arca-test");
        cr_assert_eq(log_setup_journal(path), 0);
        cr_assert_eq(log_error_errno(-ENOENT, "two\nlines, %d, %s", 5, "x=y"), -ENOENT);
        n = recv(fd, d, sizeof(d), 0);
        cr_assert_gt(n, 0, "no entry arrived");
        msg = journal_field_value(d, (size_t) n, "MESSAGE");
        prio = journal_field_value(d, (size_t) n, "PRIORITY");
        err = journal_field_value(d, (size_t) n, "ERRNO");
        ident = journal_field_value(d, (size_t) n, "SYSLOG_IDENTIFIER");
        func = journal_field_value(d, (size_t) n, "CODE_FUNC");
        cr_assert_str_eq(msg, "two\nlines, 5, x=y");
        cr_assert_str_eq(prio, "3");
        cr_assert_str_eq(err, "2");
        cr_assert_str_eq(ident, "arca-test");
        cr_assert_not_null(func);

        /* An entry without error has no ERRNO field. */
        log_info("plain");
        n = recv(fd, d, sizeof(d), 0);
        cr_assert_gt(n, 0);
        free(err);
        err = journal_field_value(d, (size_t) n, "ERRNO");
        cr_assert_null(err);
        close(fd);
        unlink(path);
        rmdir(dir);
}
