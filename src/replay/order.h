/*
 * order.h - random sample orders, drawn lazily (internal to the replay layer).
 *
 * One generator behind es_shuffle_order (the whole order, for the oracles)
 * and the replay of a policy (only the samples the policy asks for): a
 * Fisher-Yates shuffle run front to back, so drawing the first m positions
 * gives the first m samples of the full order.  A policy that stops after 4
 * of 40 samples costs 4 draws, not 40, and policies and oracles still see
 * the same orders.
 *
 * The random stream of order (seed, shuffle, item) is splitmix64 seeded from
 * the three, each output split into two 32-bit values, high half first.
 * Position i takes j uniform in [i, n) from the next value u as the high
 * half of u * (n - i), redrawn (next value) while the low half is below
 * 2^32 mod (n - i): Lemire's method, exact, no division on the common path.
 */
#ifndef ES_ORDER_H
#define ES_ORDER_H

#include <stdint.h>

#include "earlystop_replay.h"

/* splitmix64: a counter-based generator, one state word, good mixing. */
static inline uint64_t es_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The stream of 32-bit values: `halves` of x not yet used. */
typedef struct es_rng {
    uint64_t s, x;
    uint32_t halves;
} es_rng;

static inline es_rng es_order_rng(uint64_t seed, uint32_t shuffle, uint32_t item)
{
    es_rng g = {seed ^ ((uint64_t)shuffle << 32 | item) * 0xD6E8FEB86659FD93ULL, 0, 0};
    es_splitmix(&g.s);
    return g;
}

static inline uint32_t es_rng_u32(es_rng *g)
{
    if (g->halves == 0) {
        g->x = es_splitmix(&g->s);
        g->halves = 2;
    }
    return (uint32_t)(g->x >> (32 * --g->halves));
}

/* Uniform in [0, n), n >= 1. */
static inline uint32_t es_below(es_rng *g, uint32_t n)
{
    uint64_t m = (uint64_t)es_rng_u32(g) * n;
    if ((uint32_t)m < n) {
        uint32_t t = (uint32_t)-n % n;
        while ((uint32_t)m < t) m = (uint64_t)es_rng_u32(g) * n;
    }
    return (uint32_t)(m >> 32);
}

/* One Fisher-Yates step: swap into position i (< n) a uniform pick of
 * positions [i, n). */
static inline void es_order_step(es_rng *g, uint32_t *idx, uint32_t i, uint32_t n)
{
    uint32_t j = n - i > 1 ? i + es_below(g, n - i) : i, t = idx[j];
    idx[j] = idx[i];
    idx[i] = t;
}

/* An order being drawn: idx[0..filled) are its first samples, of which the
 * policy has read `drawn`; idx[filled..n) the samples not yet drawn, in no
 * particular order.  `first` is how many positions the first fill draws
 * (a guess at where the policy stops, see es_eval_policy); later fills
 * draw ES_ORDER_BLOCK.  Draws within a fill do not wait on each other (the
 * generator's state only advances by a constant), so a fill of a few costs
 * little more than one draw. */
typedef struct es_order {
    uint32_t *idx;
    uint32_t n, drawn, filled, first;
    es_rng g;
} es_order;

enum { ES_ORDER_BLOCK = 8 };

/* Start order number `shuffle` of `item` over o->n samples; o->idx must hold
 * the identity. */
static inline void es_order_begin(es_order *o, uint64_t seed, uint32_t shuffle, uint32_t item)
{
    o->g = es_order_rng(seed, shuffle, item);
    o->drawn = o->filled = 0;
}

/* Draw the next fill of positions. */
static inline void es_order_fill(es_order *o)
{
    uint32_t want = o->filled ? ES_ORDER_BLOCK : o->first ? o->first : 1;
    uint32_t end = o->n - o->filled > want ? o->filled + want : o->n;
    es_rng g = o->g;
    for (uint32_t i = o->filled; i < end; i++) es_order_step(&g, o->idx, i, o->n);
    o->g = g;
    o->filled = end;
}

/* The next sample of the order (o->drawn < o->n). */
static inline uint32_t es_order_next(es_order *o)
{
    uint32_t i = o->drawn++;
    if (i == o->filled) es_order_fill(o);
    return o->idx[i];
}

/* Replay on v with samples in the lazy order o (drawn as the policy asks;
 * o->n == v->n_samples); same outcome as es_replay_item on the full order. */
int es_replay_item_lazy(es_session *s, const es_item_view *v, es_order *o, int32_t probe_cost, es_outcome *out);

#endif
