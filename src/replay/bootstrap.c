/*
 * bootstrap.c - the paired bootstrap behind every "EM change [95% CI]".
 */
#include <stdlib.h>

#include "order.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * The paired bootstrap draws the same B x n item indices for every row of a
 * file (they depend on seed and n only), so they are drawn once and kept as
 * per-item counts, item-major: resample r of row d is then
 * sum_i count[i][r] * d_i, and only the items where the row differs from its
 * baseline (d_i != 0, a few percent of them for a good policy) cost
 * anything.  The draws are those of the one-shot loop this replaced
 * (splitmix64 from seed ^ 0xB007..., index = draw % n, B rows of n draws).
 */
struct es_bootstrap {
    size_t n;
    uint32_t resamples;
    uint16_t *count;   /* [n][resamples]: times item i is drawn in resample r */
    double *means;     /* [resamples] scratch */
};

int es_bootstrap_new(size_t n, uint32_t resamples, uint64_t seed, es_bootstrap **out)
{
    *out = NULL;
    es_bootstrap *b = calloc(1, sizeof *b);
    if (!b) return ES_ENOMEM;
    b->n = n;
    b->resamples = resamples;
    size_t cells = n * (size_t)resamples;
    if (n && resamples && cells / n != resamples) {
        free(b);
        return ES_ERANGE;
    }
    b->count = calloc(cells ? cells : 1, sizeof *b->count);
    b->means = malloc((resamples ? resamples : 1) * sizeof *b->means);
    if (!b->count || !b->means) {
        es_bootstrap_free(b);
        return ES_ENOMEM;
    }
    uint64_t s = seed ^ 0xB007B007B007B007ULL;
    for (uint32_t r = 0; r < resamples && n; r++)
        for (size_t i = 0; i < n; i++) {
            uint16_t *c = &b->count[(size_t)(es_splitmix(&s) % n) * resamples + r];
            if (*c < UINT16_MAX) ++*c; /* n draws: only n > 65535 could saturate, and then never in practice */
        }
    *out = b;
    return ES_OK;
}

void es_bootstrap_free(es_bootstrap *b)
{
    if (!b) return;
    free(b->count);
    free(b->means);
    free(b);
}

int es_bootstrap_interval(es_bootstrap *b, const double *a, const double *base, double *lo, double *hi)
{
    *lo = *hi = 0;
    uint32_t B = b->resamples;
    if (b->n == 0 || B == 0) return ES_OK;
    double *m = b->means;
    for (uint32_t r = 0; r < B; r++) m[r] = 0;
    for (size_t i = 0; i < b->n; i++) {
        double d = a[i] - base[i];
        if (d == 0) continue;
        const uint16_t *c = &b->count[i * B];
        for (uint32_t r = 0; r < B; r++) m[r] += c[r] * d;
    }
    for (uint32_t r = 0; r < B; r++) m[r] /= (double)b->n;
    qsort(m, B, sizeof *m, cmp_double);
    *lo = m[(size_t)(0.025 * (B - 1) + 0.5)];
    *hi = m[(size_t)(0.975 * (B - 1) + 0.5)];
    return ES_OK;
}

int es_bootstrap_diff(const double *a, const double *b, size_t n, uint32_t resamples, uint64_t seed,
                      double *lo, double *hi)
{
    *lo = *hi = 0;
    es_bootstrap *bs;
    int rc = es_bootstrap_new(n, resamples, seed, &bs);
    if (rc) return rc;
    rc = es_bootstrap_interval(bs, a, b, lo, hi);
    es_bootstrap_free(bs);
    return rc;
}
