/* posterior.c - the numbers behind Adaptive-Consistency's stopping rules. */
#include <math.h>

/* lgamma writes the global signgam: lgamma_r keeps the core free of global
 * state, so policies can be built and run on many threads at once. */
static double lgam(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

#include "posterior.h"

/* P(Bin(n, 1/2) <= a) with n = a + b + 1 is 1 minus its upper tail j > a,
 * which mirrors to i <= b: with b <= a (the top two counts) that is the
 * smaller sum, b + 1 terms.  The largest, C(n, b) 2^-n, comes from lgamma
 * once; the others by the ratio C(n, i-1) / C(n, i) = i / (n - i + 1),
 * added from the largest down so small ones are not lost.  A few flops per
 * term instead of three transcendentals: a tuner asks this after every
 * sample of every order. */
double es_beta_lead_prob(uint32_t a, uint32_t b)
{
    if (b > a) return 1.0 - es_beta_lead_prob(b, a) ; /* P(p1 > p2) with the roles swapped */
    double n = (double)a + (double)b + 1.0;
    double t = exp(lgam(n + 1.0) - lgam((double)b + 1.0) - lgam(n - (double)b + 1.0) - n * M_LN2), sum = 0.0;
    for (double i = (double)b; i >= 0; i--) {
        sum += t;
        if (t < sum * 1e-18) break;
        t *= i / (n - i + 1.0);
    }
    double p = 1.0 - sum;
    return p < 0 ? 0 : p;
}

/* Regularised lower incomplete gamma P(k, x) for integer shape k >= 1:
 * 1 - e^-x sum_{i<k} x^i / i!. */
static double gamma_cdf_int(uint32_t k, double x)
{
    double term = exp(-x), sum = term;
    for (uint32_t i = 1; i < k; i++) {
        term *= x / (double)i;
        sum += term;
    }
    double p = 1.0 - sum;
    return p < 0 ? 0 : p;
}

/* Gamma(k, 1) density for integer k >= 1. */
static double gamma_pdf_int(uint32_t k, double x)
{
    if (x <= 0) return k == 1 ? 1.0 : 0.0;
    return exp((double)(k - 1) * log(x) - x - lgam((double)k));
}

double es_dirichlet_lead_prob(const uint32_t *counts, uint32_t n)
{
    if (n == 0) return 0.0;
    if (n == 1) return 1.0;
    if (n == 2 && counts[0] >= counts[1]) return es_beta_lead_prob(counts[0], counts[1]);
    uint32_t k0 = counts[0] + 1;
    double sd = sqrt((double)k0), hi = (double)k0 + 12.0 * sd + 30.0;
    enum { STEPS = 2000 }; /* even; error < 2e-8 for all counts <= 64, < 1e-9 once the leader has 2 */
    double h = hi / STEPS, sum = 0.0;
    for (int i = 0; i <= STEPS; i++) {
        double x = i * h, f = gamma_pdf_int(k0, x);
        for (uint32_t j = 1; j < n && f > 0; j++) f *= gamma_cdf_int(counts[j] + 1, x);
        sum += f * (i == 0 || i == STEPS ? 1 : (i % 2 ? 4 : 2));
    }
    double p = sum * h / 3.0;
    return p > 1.0 ? 1.0 : p;
}

/* One term of scipy.special.entr on the normalised counts: -p ln p. */
static double entr_term(const uint32_t *counts, uint32_t i, double total)
{
    double p = (double)counts[i] / total;
    return p > 0 ? -(p * log(p)) : 0.0;
}

/* numpy's pairwise summation (pairwise_sum_DOUBLE) of the entr terms, in the
 * same order: sequential below 8 terms, 8 accumulators up to 128, halves
 * (cut at a multiple of 8) above, so the sum is numpy's to the last bit. */
static double pairwise_entr(const uint32_t *counts, uint32_t n, double total)
{
    if (n < 8) {
        double r = 0.0;
        for (uint32_t i = 0; i < n; i++) r += entr_term(counts, i, total);
        return r;
    }
    if (n <= 128) {
        double r[8];
        for (uint32_t j = 0; j < 8; j++) r[j] = entr_term(counts, j, total);
        uint32_t i;
        for (i = 8; i < n - n % 8; i += 8)
            for (uint32_t j = 0; j < 8; j++) r[j] += entr_term(counts, i + j, total);
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += entr_term(counts, i, total);
        return res;
    }
    uint32_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_entr(counts, n2, total) + pairwise_entr(counts + n2, n - n2, total);
}

double es_vote_entropy_norm(const uint32_t *counts, uint32_t n)
{
    uint32_t one[2];
    if (n == 1) {
        /* upstream appends a pseudo-count of 1 when a single answer was seen */
        one[0] = counts[0];
        one[1] = 1;
        counts = one;
        n = 2;
    }
    double total = 0;
    for (uint32_t i = 0; i < n; i++) total += counts[i];
    if (total <= 0 || n < 2) return 0.0;
    /* scipy.stats.entropy(counts, base=2) / np.log2(n), operation for
     * operation: natural-log entr terms, pairwise sum, / ln 2, / log2 n */
    return pairwise_entr(counts, n, total) / log(2.0) / log2((double)n);
}
