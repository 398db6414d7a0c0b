/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Small language helpers used everywhere: scope-based cleanup, ownership
 * transfer, array sizes. Modelled on the conventions of systemd. */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
/* The struct of `type` whose `member` ptr points to. */
#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))

/* Hand ownership of *p to the caller and leave NULL behind, so that the
 * cleanup handler of the scope does nothing. */
#define TAKE_PTR(p)                                                         \
        ({                                                                  \
                __typeof__(p) *_pp_ = &(p);                                 \
                __typeof__(p) _p_ = *_pp_;                                  \
                *_pp_ = NULL;                                               \
                _p_;                                                        \
        })

#define TAKE_FD(fd)                                                         \
        ({                                                                  \
                int *_fdp_ = &(fd);                                         \
                int _fd_ = *_fdp_;                                          \
                *_fdp_ = -EBADF;                                            \
                _fd_;                                                       \
        })

/* Define `name##p(type **p)` that calls `func(*p)` when *p is not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                             \
        static inline void func##p(type *p) {                               \
                if (*p)                                                     \
                        func(*p);                                           \
        }

#define DEFINE_TRIVIAL_CLEANUP_FUNC_FULL(type, func, name)                  \
        static inline void name(type *p) {                                  \
                if (*p)                                                     \
                        func(*p);                                           \
        }

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* Free a pointer and return NULL, for `x = mfree(x)`. */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

static inline int streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

#define STRLEN(s) (sizeof(s "") - 1)
