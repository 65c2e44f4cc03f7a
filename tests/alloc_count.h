/*
 * alloc_count.h - count the heap allocations a stretch of a test makes, to
 * check "nothing allocates on the per-token or per-sample decision path"
 * (the developers' guide) by counting rather than by watching resident memory.
 *
 * Included by one test file per binary.  The test binary defines malloc,
 * calloc and realloc and forwards them to glibc's own (__libc_*): a
 * definition in the executable interposes on every call, the statically
 * linked library's included.  Under AddressSanitizer (which owns malloc) or
 * off glibc nothing is defined, es_alloc_counting() is 0 and callers skip
 * the count, saying so; the resident-memory checks still run there.
 *
 *   es_alloc_begin();
 *   ... the stretch that must not allocate ...
 *   assert_int_equal(es_alloc_end(), 0);
 */
#ifndef ES_TEST_ALLOC_COUNT_H
#define ES_TEST_ALLOC_COUNT_H

#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || __has_feature(thread_sanitizer)
#define ES_ALLOC_NO_COUNT 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
#define ES_ALLOC_NO_COUNT 1
#endif

static volatile int es_alloc_on;
static volatile long es_alloc_n;

#ifndef ES_ALLOC_NO_COUNT
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

void *malloc(size_t n)
{
    if (es_alloc_on) es_alloc_n++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (es_alloc_on) es_alloc_n++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (es_alloc_on) es_alloc_n++;
    return __libc_realloc(p, n);
}
#endif

/* 1 when allocations are counted in this build. */
static inline int es_alloc_counting(void)
{
#ifdef ES_ALLOC_NO_COUNT
    return 0;
#else
    return 1;
#endif
}

static inline void es_alloc_begin(void)
{
    es_alloc_n = 0;
    es_alloc_on = 1;
}

/* Allocations since es_alloc_begin (0 when not counting). */
static inline long es_alloc_end(void)
{
    es_alloc_on = 0;
    return es_alloc_n;
}

#endif
