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
 * 1 - e^-x sum_{i<k} x^i / i!, with e^-x given (one per abscissa, shared
 * by every count). */
static double gamma_cdf_int(uint32_t k, double x, double emx)
{
    double term = emx, sum = term;
    for (uint32_t i = 1; i < k; i++) {
        term *= x / (double)i;
        sum += term;
    }
    double p = 1.0 - sum;
    return p < 0 ? 0 : p;
}

/* 48-point Gauss-Legendre on [-1, 1], the positive half (the nodes are
 * symmetric): numpy.polynomial.legendre.leggauss(48), to 17 digits. */
static const double gl_x[24] = {0.032380170962869367, 0.097004699209462697, 0.16122235606889171, 0.22476379039468905, 0.28736248735545555, 0.34875588629216075, 0.40868648199071672, 0.46690290475095841, 0.523160974722233, 0.57722472608397268, 0.6288673967765136, 0.67787237963266389, 0.72403413092381463, 0.76715903251574036, 0.80706620402944262, 0.84358826162439349, 0.87657202027424785, 0.90587913671556963, 0.93138669070655433, 0.95298770316043091, 0.97059159254624727, 0.98412458372282685, 0.99353017226635076, 0.99877100725242607};

static const double gl_w[24] = {0.064737696812683682, 0.064466164435949838, 0.063924238584647949, 0.063114192286253784, 0.062039423159892464, 0.060704439165893583, 0.059114839698395483, 0.05727729210040293, 0.055199503699984054, 0.052890189485193487, 0.050359035553854278, 0.047616658492490284, 0.0446745608566941, 0.041545082943464554, 0.038241351065830674, 0.034777222564770657, 0.031167227832798339, 0.027426509708356882, 0.023570760839324092, 0.019616160457355297, 0.015579315722942928, 0.011477234579234974, 0.0073275539012764923, 0.0031533460523091796};

/* The integrand of the Dirichlet criterion at x: the Gamma(k0, 1) density
 * times every other answer's Gamma cdf (e^-x shared by all of them). */
static double dirichlet_integrand(const uint32_t *counts, uint32_t n, double x, double lg0)
{
    uint32_t k0 = counts[0] + 1;
    double f = x <= 0 ? (k0 == 1 ? 1.0 : 0.0) : exp((double)(k0 - 1) * log(x) - x - lg0);
    double emx = exp(-x);
    for (uint32_t j = 1; j < n && f > 0; j++) f *= gamma_cdf_int(counts[j] + 1, x, emx);
    return f;
}

/* Four panels of 48-point Gauss-Legendre over where the leader's Gamma
 * density lives, [k0 - 10 sd, k0 + 12 sd + 30]: 192 evaluations, error
 * below 1e-12 against a 40,000-step Simpson rule (tests/test_posterior.c
 * checks it against exact quadrature), where the 2,000-step Simpson rule
 * this replaced erred by 1e-8 at ten times the cost: a tuner evaluates it
 * after every sample of every order. */
double es_dirichlet_lead_prob(const uint32_t *counts, uint32_t n)
{
    if (n == 0) return 0.0;
    if (n == 1) return 1.0;
    if (n == 2 && counts[0] >= counts[1]) return es_beta_lead_prob(counts[0], counts[1]);
    uint32_t k0 = counts[0] + 1;
    double sd = sqrt((double)k0), lo = (double)k0 - 10.0 * sd, hi = (double)k0 + 12.0 * sd + 30.0;
    if (lo < 0) lo = 0;
    double lg0 = lgam((double)k0), sum = 0.0;
    enum { PANELS = 4 };
    for (int p = 0; p < PANELS; p++) {
        double a = lo + (hi - lo) * p / PANELS, b = lo + (hi - lo) * (p + 1) / PANELS;
        double half = (b - a) / 2, mid = (a + b) / 2, s = 0.0;
        for (int i = 0; i < 24; i++)
            s += gl_w[i] * (dirichlet_integrand(counts, n, mid - half * gl_x[i], lg0) +
                            dirichlet_integrand(counts, n, mid + half * gl_x[i], lg0));
        sum += s * half;
    }
    return sum > 1.0 ? 1.0 : sum < 0 ? 0 : sum;
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
