/* rng.c - deterministic random streams (splitmix64 seeding, xorshift64*). */
#include <math.h>

#include "earlystop_lm.h"

/* The standard mixer for seeding: nearby seeds give unrelated states. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* splitmix64 spreads any seed (0 included) into a non-zero xorshift state. */
void es_rng_seed(es_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    r->s = splitmix64(&x);
    if (!r->s) r->s = 0x2545F4914F6CDD1DULL;
}

/* Chained mixing: a stream depends on (seed, a, b) and on nothing else, so
 * sample i of item j is the same whatever ran before it. */
void es_rng_stream(es_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ a;
    h = splitmix64(&x);
    x = h ^ b;
    es_rng_seed(r, splitmix64(&x));
}

/* xorshift64*: fast, one word of state, good enough for sampling. */
uint64_t es_rng_u64(es_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* Multiply-shift: no modulo bias worth caring about for n < 2^32. */
uint32_t es_rng_below(es_rng *r, uint32_t n)
{
    return (uint32_t)(((es_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

/* 24 high bits: exactly representable floats in [0, 1). */
float es_rng_float(es_rng *r)
{
    return (float)(es_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

/* Box-Muller; wasting the second value keeps the state a single word. */
float es_rng_normal(es_rng *r)
{
    float u1 = es_rng_float(r), u2 = es_rng_float(r);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* The one definition of a sample's stream, shared by generate and run. */
void es_lm_sample_rng(es_rng *r, uint64_t seed, uint64_t item, uint64_t sample)
{
    es_rng_stream(r, seed, item, sample);
}
