/*
 * grow.h - an array grown by doubling to hold at least n elements (header
 * only, for the layers that keep reusable buffers: io, the CLI).
 *
 * The buffers that carry one item or line at a time are sized to the
 * largest seen and then reused, so a steady stream allocates nothing.
 */
#ifndef ES_COMMON_GROW_H
#define ES_COMMON_GROW_H

#include <stdlib.h>

#include "earlystop.h"

/* *arr holds at least n elements of sz bytes (from 16, doubling), *cap its
 * capacity: ES_OK, or ES_ENOMEM with *arr as it was. */
static inline int es_grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap) return ES_OK;
    size_t c = *cap ? *cap : 16;
    while (c < n) c *= 2;
    void *p = realloc(*arr, c * sz);
    if (!p) return ES_ENOMEM;
    *arr = p;
    *cap = c;
    return ES_OK;
}

#endif
