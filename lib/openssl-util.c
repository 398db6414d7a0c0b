/* SPDX-License-Identifier: Apache-2.0 */
#include "openssl-util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <sys/stat.h>

int openssl_error(struct errmsg *e, int error, const char *what) {
        unsigned long code, last = 0;
        char buf[256];

        while ((code = ERR_get_error()) != 0)
                last = code;
        if (last) {
                ERR_error_string_n(last, buf, sizeof(buf));
                errmsg_set(e, error, "%s: %s", what, buf);
        } else
                errmsg_set(e, error, "%s", what);
        return -abs(error);
}

int openssl_errno(int error) {
        ERR_clear_error();
        return -abs(error);
}

static int fopen_read(const char *path, FILE **ret) {
        FILE *f = fopen(path, "re");
        if (!f)
                return negative_errno();
        *ret = f;
        return 0;
}

int pem_read_x509_file(const char *path, X509 **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        X509 *x;
        int r;

        r = fopen_read(path, &f);
        if (r < 0)
                return r;
        x = PEM_read_X509(f, NULL, NULL, NULL);
        if (!x)
                return openssl_errno(-EBADMSG);
        *ret = x;
        return 0;
}

int pem_read_x509_stack_file(const char *path, STACK_OF(X509) **ret) {
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *sk = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        X509 *x;
        int r;

        r = fopen_read(path, &f);
        if (r < 0)
                return r;
        sk = sk_X509_new_null();
        if (!sk)
                return -ENOMEM;
        while ((x = PEM_read_X509(f, NULL, NULL, NULL)))
                if (!sk_X509_push(sk, x)) {
                        X509_free(x);
                        return -ENOMEM;
                }
        ERR_clear_error();
        if (sk_X509_num(sk) == 0)
                return -EBADMSG;
        *ret = TAKE_PTR(sk);
        return 0;
}

int pem_read_pubkey_file(const char *path, EVP_PKEY **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        EVP_PKEY *k;
        int r;

        r = fopen_read(path, &f);
        if (r < 0)
                return r;
        k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        if (!k)
                return openssl_errno(-EBADMSG);
        *ret = k;
        return 0;
}

int pem_read_privkey_file(const char *path, EVP_PKEY **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        EVP_PKEY *k;
        int r;

        r = fopen_read(path, &f);
        if (r < 0)
                return r;
        k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        if (!k)
                return openssl_errno(-EBADMSG);
        *ret = k;
        return 0;
}

static int fopen_write(const char *path, mode_t mode, FILE **ret) {
        _cleanup_close_ int fd = -EBADF;
        FILE *f;

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return negative_errno();
        f = fdopen(fd, "w");
        if (!f)
                return negative_errno();
        TAKE_FD(fd);
        *ret = f;
        return 0;
}

static int fclose_checked(FILE *f) {
        if (fflush(f) != 0 || ferror(f)) {
                fclose(f);
                return -EIO;
        }
        return fclose(f) == 0 ? 0 : negative_errno();
}

int pem_write_x509_file(const char *path, X509 *x) {
        FILE *f;
        int r;

        r = fopen_write(path, 0644, &f);
        if (r < 0)
                return r;
        if (PEM_write_X509(f, x) != 1) {
                fclose(f);
                return openssl_errno(-EIO);
        }
        return fclose_checked(f);
}

int pem_write_privkey_file(const char *path, EVP_PKEY *k) {
        FILE *f;
        int r;

        r = fopen_write(path, 0600, &f);
        if (r < 0)
                return r;
        if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1) {
                fclose(f);
                return openssl_errno(-EIO);
        }
        return fclose_checked(f);
}

int pem_write_pubkey_file(const char *path, EVP_PKEY *k) {
        FILE *f;
        int r;

        r = fopen_write(path, 0644, &f);
        if (r < 0)
                return r;
        if (PEM_write_PUBKEY(f, k) != 1) {
                fclose(f);
                return openssl_errno(-EIO);
        }
        return fclose_checked(f);
}

/* A key made through the EC_KEY interface, deprecated in OpenSSL 3 but
 * supported through 3.x: such a key is encoded (certificate, SPKI) by its
 * ASN.1 method in ~5 us, where a provider-native key from EVP_EC_gen goes
 * through OSSL_ENCODER (~130 us per encoding). aTLS makes a key and a
 * certificate per handshake, so this is a third of a handshake's CPU. */
int ec_p256_generate(EVP_PKEY **ret) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        EVP_PKEY *k;

        if (!ec || EC_KEY_generate_key(ec) != 1) {
                EC_KEY_free(ec);
                return openssl_errno(-EIO);
        }
        k = EVP_PKEY_new();
        if (!k || EVP_PKEY_assign_EC_KEY(k, ec) != 1) {
                EVP_PKEY_free(k);
                EC_KEY_free(ec);
                return openssl_errno(-ENOMEM);
        }
#pragma GCC diagnostic pop
        *ret = k;
        return 0;
}

/* The SHA-256 of n bytes of DER that OpenSSL allocated for us (i2d_*
 * with a NULL *pp allocates; calling it once, not once to size and once
 * to write, since each call of an encoder costs as much as the other). */
static int der_sha256(unsigned char *der, int n, uint8_t out[32]) {
        int r;

        if (n <= 0)
                return openssl_errno(-EINVAL);
        r = sha256(der, (size_t) n, out);
        OPENSSL_free(der);
        return r;
}

int pubkey_spki_sha256(EVP_PKEY *k, uint8_t out[32]) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(k, &der);

        return der_sha256(der, n, out);
}

int x509_spki_sha256(const X509 *x, uint8_t out[32]) {
        unsigned char *der = NULL;
        /* The certificate's own SubjectPublicKeyInfo: no EVP_PKEY and no
         * trip through OpenSSL 3's encoders (~140 us per i2d_PUBKEY). */
        int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);

        return der_sha256(der, n, out);
}

int sha256(const void *p, size_t n, uint8_t out[32]) {
        if (!EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL))
                return openssl_errno(-EIO);
        return 0;
}
