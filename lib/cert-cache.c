/* SPDX-License-Identifier: Apache-2.0 */
#include "cert-cache.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "openssl-util.h"

struct cert_entry {
        uint8_t *der;
        size_t size;
        X509 *x509;
};

struct cert_cache {
        pthread_mutex_t lock;
        size_t n, next;
        struct cert_entry entries[];
};

int cert_cache_new(size_t n_entries, struct cert_cache **ret) {
        struct cert_cache *c;

        if (n_entries == 0 || n_entries > 1024)
                return -EINVAL;
        c = calloc(1, sizeof(*c) + n_entries * sizeof(c->entries[0]));
        if (!c)
                return -ENOMEM;
        if (pthread_mutex_init(&c->lock, NULL) != 0) {
                free(c);
                return -ENOMEM;
        }
        c->n = n_entries;
        *ret = c;
        return 0;
}

struct cert_cache *cert_cache_free(struct cert_cache *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n; i++) {
                free(c->entries[i].der);
                X509_free(c->entries[i].x509);
        }
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

static int decode(const uint8_t *der, size_t size, X509 **ret) {
        const unsigned char *p = der;
        X509 *x;

        if (size == 0 || size > LONG_MAX)
                return -EBADMSG;
        x = d2i_X509(NULL, &p, (long) size);
        if (!x)
                return openssl_errno(-EBADMSG);
        if (p != der + size) {
                X509_free(x);
                return -EBADMSG;
        }
        *ret = x;
        return 0;
}

int cert_cache_decode(struct cert_cache *c, const uint8_t *der, size_t size, X509 **ret) {
        struct cert_entry *slot;
        uint8_t *copy;
        X509 *x;
        int r;

        if (!c)
                return decode(der, size, ret);

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++) {
                struct cert_entry *en = &c->entries[i];
                if (en->x509 && en->size == size && memcmp(en->der, der, size) == 0 && X509_up_ref(en->x509)) {
                        *ret = en->x509;
                        pthread_mutex_unlock(&c->lock);
                        return 0;
                }
        }
        pthread_mutex_unlock(&c->lock);

        r = decode(der, size, &x);
        if (r < 0)
                return r;
        copy = malloc(size);
        if (!copy || !X509_up_ref(x)) {
                free(copy);
                *ret = x; /* still usable, just not cached */
                return 0;
        }
        memcpy(copy, der, size);
        pthread_mutex_lock(&c->lock);
        slot = &c->entries[c->next];
        c->next = (c->next + 1) % c->n;
        free(slot->der);
        X509_free(slot->x509);
        *slot = (struct cert_entry){ copy, size, x };
        pthread_mutex_unlock(&c->lock);
        *ret = x;
        return 0;
}
