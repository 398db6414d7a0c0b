/* SPDX-License-Identifier: Apache-2.0 */
/* The member cache and the member views it hands out (registry.h).
 *
 * A view is an array of pointers to member records; records and views are
 * immutable once made and reference-counted, so that threads share them
 * without a lock and the last one to let go frees them. A read that
 * brings changes makes a new view: the unchanged records are shared with
 * the previous one, the changed ones are new. A view costs a pointer per
 * member; a record is held once however many views name it. */
#include <stdatomic.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "registry-internal.h"

struct member_rec {
        atomic_uint refs;
        struct registry_member m;
};

struct view {
        atomic_uint refs;
        struct registry_members pub;
        const struct registry_member *m[];
};

struct registry_cache {
        pthread_mutex_t lock; /* guards the two below, never held across a read */
        struct view *view;    /* NULL until the first read */
        int64_t revision;     /* of the store when view was read */
};


static struct member_rec *rec_of(const struct registry_member *m) {
        return container_of(m, struct member_rec, m);
}

static void rec_unref(const struct registry_member *m) {
        struct member_rec *rec = rec_of(m);

        if (atomic_fetch_sub_explicit(&rec->refs, 1, memory_order_acq_rel) == 1)
                free(rec);
}

static struct view *view_ref(struct view *v) {
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
        return v;
}

static void view_unref(struct view *v) {
        if (!v || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
                return;
        for (size_t i = 0; i < v->pub.n; i++)
                rec_unref(v->m[i]);
        free(v);
}

struct registry_members *registry_members_unref(struct registry_members *pub) {
        if (pub)
                view_unref(container_of(pub, struct view, pub));
        return NULL;
}

static int cmp_member_name(const void *a, const void *b) {
        return strcmp(((const struct registry_member *) a)->name, ((const struct registry_member *) b)->name);
}

static int cmp_key_name(const void *key, const void *elem) {
        return strcmp(key, (*(const struct registry_member *const *) elem)->name);
}

const struct registry_member *registry_members_find(const struct registry_members *v, const char *name) {
        const struct registry_member *const *hit;

        if (!v || v->n == 0)
                return NULL;
        hit = bsearch(name, v->m, v->n, sizeof(v->m[0]), cmp_key_name);
        return hit ? *hit : NULL;
}

/* `old` (NULL: none) with `changed` added or replacing the records of the
 * same name: a new view sharing old's unchanged records. changed is sorted
 * here; of two records of one name (etcd sends none) one is kept. */
static int view_merge(const struct view *old, struct registry_member *changed, size_t k, struct view **ret) {
        size_t on = old ? old->pub.n : 0, i = 0, j = 0, n = 0;
        struct view *v;

        if (k > SIZE_MAX / sizeof(v->m[0]) - on - 1)
                return -ENOMEM;
        v = malloc(sizeof(*v) + (on + k) * sizeof(v->m[0]));
        if (!v)
                return -ENOMEM;
        atomic_init(&v->refs, 1);
        v->pub = (struct registry_members){ .m = v->m };
        if (k > 1)
                qsort(changed, k, sizeof(changed[0]), cmp_member_name);
        while (i < on || j < k) {
                int c = i >= on ? 1 : j >= k ? -1 : strcmp(old->m[i]->name, changed[j].name);
                struct member_rec *rec;

                if (c < 0) {
                        atomic_fetch_add_explicit(&rec_of(old->m[i])->refs, 1, memory_order_relaxed);
                        v->m[n++] = old->m[i++];
                        continue;
                }
                if (j + 1 < k && streq(changed[j].name, changed[j + 1].name)) {
                        j++;
                        continue;
                }
                rec = malloc(sizeof(*rec));
                if (!rec) {
                        v->pub.n = n;
                        view_unref(v);
                        return -ENOMEM;
                }
                atomic_init(&rec->refs, 1);
                rec->m = changed[j++];
                v->m[n++] = &rec->m;
                if (c == 0)
                        i++;
        }
        v->pub.n = n;
        *ret = v;
        return 0;
}

int registry_cache_new(struct registry_cache **ret) {
        struct registry_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        *ret = c;
        return 0;
}

struct registry_cache *registry_cache_free(struct registry_cache *c) {
        if (!c)
                return NULL;
        pthread_mutex_destroy(&c->lock);
        view_unref(c->view);
        free(c);
        return NULL;
}

void registry_set_cache(struct registry *reg, struct registry_cache *c) {
        reg->cache = c;
}

/* Every member, read afresh: a new view of new records. */
static int read_all(struct registry *reg, struct view **ret, int64_t *ret_revision, struct errmsg *e) {
        _cleanup_free_ struct registry_member *all = NULL;
        int64_t count, revision;
        size_t n = 0;
        int r;

        r = reg_read_members(reg, 0, &all, &n, &count, &revision, e);
        if (r < 0)
                return r;
        r = view_merge(NULL, all, n, ret);
        if (r < 0)
                return r;
        *ret_revision = revision;
        return 0;
}

static int cmp_name(const void *a, const void *b) {
        return strcmp(a, b);
}

/* v without the members whose names are not in `names` (sorted here), as
 * a new view sharing v's records; -ESTALE when names lists one that v
 * does not hold. */
static int view_filter(const struct view *v, char (*names)[NODE_NAME_MAX + 1], size_t n_names, struct view **ret) {
        struct view *f;
        size_t n = 0;

        if (n_names > 1)
                qsort(names, n_names, sizeof(names[0]), cmp_name);
        f = malloc(sizeof(*f) + v->pub.n * sizeof(f->m[0]));
        if (!f)
                return -ENOMEM;
        atomic_init(&f->refs, 1);
        f->pub = (struct registry_members){ .m = f->m };
        for (size_t i = 0; i < v->pub.n; i++)
                if (n_names > 0 && bsearch(v->m[i]->name, names, n_names, sizeof(names[0]), cmp_name)) {
                        atomic_fetch_add_explicit(&rec_of(v->m[i])->refs, 1, memory_order_relaxed);
                        f->m[n++] = v->m[i];
                }
        f->pub.n = n;
        if (n != n_names) {
                view_unref(f);
                return -ESTALE;
        }
        *ret = f;
        return 0;
}

/* The view at etcd's revision now, read incrementally from `base` (the
 * view at revision base_rev): the records written since merged into a new
 * view. Only additions and updates come that way: when etcd counts fewer
 * members than the merged view holds, some were removed, and the names as
 * of the same revision (keys only) tell which. -ESTALE when that does not
 * add up (e.g. that revision was compacted meanwhile): then everything is
 * read again. A full read is etcd's whole member range as JSON, several
 * MiB of transient memory in a large cluster, where the names are a few
 * dozen bytes a member. */
static int read_since(struct registry *reg, struct view *base, int64_t base_rev, struct view **ret,
                      int64_t *ret_revision, struct errmsg *e) {
        _cleanup_free_ struct registry_member *changed = NULL;
        _cleanup_free_ char(*names)[NODE_NAME_MAX + 1] = NULL;
        struct view *v, *f;
        int64_t count, revision;
        size_t k = 0, n_names = 0;
        int r;

        r = reg_read_members(reg, base_rev, &changed, &k, &count, &revision, e);
        if (r < 0)
                return r;
        if (k == 0)
                v = view_ref(base);
        else {
                r = view_merge(base, changed, k, &v);
                if (r < 0)
                        return r;
        }
        if (count < (int64_t) v->pub.n &&
            reg_read_member_names(reg, revision, &names, &n_names, &(struct errmsg){}) >= 0 &&
            view_filter(v, names, n_names, &f) >= 0) {
                view_unref(v);
                v = f;
        }
        if (count != (int64_t) v->pub.n) {
                view_unref(v);
                return -ESTALE;
        }
        *ret = v;
        *ret_revision = revision;
        return 0;
}

/* Read the members without the cache's lock, from the view installed when
 * the read began, and install the result if it is newer than what is
 * installed by then (other readers may have been quicker): a reader never
 * waits for another's etcd round trips, only for the pointer swap. The
 * view returned is the newest of the two. */
int registry_members_get(struct registry *reg, struct registry_members **ret, struct errmsg *e) {
        struct registry_cache *c = reg->cache;
        struct view *base = NULL, *v = NULL, *old = NULL;
        int64_t base_rev, revision = 0;
        int r = -ESTALE;

        if (!c) {
                r = read_all(reg, &v, &revision, e);
                if (r < 0)
                        return r;
                *ret = &v->pub;
                return 0;
        }
        pthread_mutex_lock(&c->lock);
        if (c->view)
                base = view_ref(c->view);
        base_rev = c->revision;
        pthread_mutex_unlock(&c->lock);

        if (base)
                r = read_since(reg, base, base_rev, &v, &revision, e);
        view_unref(base);
        if (r == -ESTALE)
                r = read_all(reg, &v, &revision, e);
        if (r < 0)
                return r;

        pthread_mutex_lock(&c->lock);
        if (revision > c->revision || !c->view) {
                old = c->view;
                c->view = view_ref(v);
                c->revision = revision;
        } else if (c->view != v) {
                /* Installed meanwhile, at the same revision or a newer one. */
                old = v;
                v = view_ref(c->view);
        }
        pthread_mutex_unlock(&c->lock);
        view_unref(old);
        *ret = &v->pub;
        return 0;
}

int registry_list_members(struct registry *reg, struct registry_member **ret, size_t *ret_n, struct errmsg *e) {
        _cleanup_registry_members_ struct registry_members *v = NULL;
        struct registry_member *list = NULL;
        int r;

        r = registry_members_get(reg, &v, e);
        if (r < 0)
                return r;
        if (v->n > 0) {
                list = malloc(v->n * sizeof(list[0]));
                if (!list)
                        return -ENOMEM;
                for (size_t i = 0; i < v->n; i++)
                        list[i] = *v->m[i];
        }
        *ret = list;
        *ret_n = v->n;
        return 0;
}
