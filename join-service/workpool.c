/* SPDX-License-Identifier: Apache-2.0 */
#include "workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "macro.h"

struct work_queue {
        struct work_item *head, *tail;
};

struct work_pool {
        pthread_mutex_t lock;
        pthread_cond_t wake;
        struct work_queue todo, finished;
        bool stopping;
        unsigned pending; /* loop thread only */
        pthread_t threads[WORK_POOL_MAX_WORKERS];
        unsigned n_threads;
        int efd;
        struct event *ev;
        work_run_t run;
        work_done_t done;
        void *userdata;
};

struct worker_arg {
        struct work_pool *pool;
        unsigned index;
};

static void queue_push(struct work_queue *q, struct work_item *w) {
        w->next = NULL;
        if (q->tail)
                q->tail->next = w;
        else
                q->head = w;
        q->tail = w;
}

static struct work_item *queue_pop(struct work_queue *q) {
        struct work_item *w = q->head;

        if (w) {
                q->head = w->next;
                if (!q->head)
                        q->tail = NULL;
        }
        return w;
}

static void *worker_main(void *arg) {
        struct worker_arg a = *(struct worker_arg *) arg;
        struct work_pool *p = a.pool;
        uint64_t one = 1;

        free(arg);
        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct work_item *w;

                while (!p->stopping && !p->todo.head)
                        pthread_cond_wait(&p->wake, &p->lock);
                if (p->stopping)
                        break;
                w = queue_pop(&p->todo);
                pthread_mutex_unlock(&p->lock);
                p->run(w, a.index, p->userdata);
                pthread_mutex_lock(&p->lock);
                queue_push(&p->finished, w);
                /* Wakes the loop; a full counter still wakes it. */
                (void) !write(p->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void on_finished(evutil_socket_t fd, short what, void *arg) {
        struct work_pool *p = arg;
        struct work_queue q;
        struct work_item *w;
        uint64_t n;

        (void) !read(p->efd, &n, sizeof(n));
        pthread_mutex_lock(&p->lock);
        q = p->finished;
        p->finished = (struct work_queue){};
        pthread_mutex_unlock(&p->lock);
        while ((w = queue_pop(&q))) {
                p->pending--;
                p->done(w, p->userdata);
        }
}

int work_pool_new(struct event_base *base, unsigned n_workers, work_run_t run, work_done_t done, void *userdata,
                  struct work_pool **ret, struct errmsg *e) {
        struct work_pool *p;

        if (n_workers == 0 || n_workers > WORK_POOL_MAX_WORKERS)
                return errmsg_set(e, EINVAL, "between 1 and %u workers", WORK_POOL_MAX_WORKERS);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (struct work_pool){ .run = run, .done = done, .userdata = userdata, .efd = -1 };
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->efd < 0) {
                int r = -errno;
                work_pool_free(p);
                return errmsg_set(e, r, "cannot create an eventfd: %s", strerror(-r));
        }
        p->ev = event_new(base, p->efd, EV_READ | EV_PERSIST, on_finished, p);
        if (!p->ev || event_add(p->ev, NULL) < 0) {
                work_pool_free(p);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < n_workers; i++) {
                struct worker_arg *a = malloc(sizeof(*a));
                int r;

                if (!a) {
                        work_pool_free(p);
                        return -ENOMEM;
                }
                *a = (struct worker_arg){ .pool = p, .index = i };
                /* Small stacks: the workers' frames are a few KiB. */
                pthread_attr_t attr;
                pthread_attr_init(&attr);
                pthread_attr_setstacksize(&attr, 256 * 1024);
                r = pthread_create(&p->threads[i], &attr, worker_main, a);
                pthread_attr_destroy(&attr);
                if (r != 0) {
                        free(a);
                        work_pool_free(p);
                        return errmsg_set(e, r, "cannot start a worker thread: %s", strerror(r));
                }
                p->n_threads++;
        }
        *ret = p;
        return 0;
}

struct work_pool *work_pool_free(struct work_pool *p) {
        struct work_item *w;

        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        while ((w = queue_pop(&p->finished)))
                p->done(w, p->userdata);
        while ((w = queue_pop(&p->todo)))
                p->done(w, p->userdata);
        if (p->ev)
                event_free(p->ev);
        if (p->efd >= 0)
                close(p->efd);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

void work_pool_submit(struct work_pool *p, struct work_item *job) {
        pthread_mutex_lock(&p->lock);
        queue_push(&p->todo, job);
        p->pending++;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
}

unsigned work_pool_pending(const struct work_pool *p) {
        return p->pending;
}
