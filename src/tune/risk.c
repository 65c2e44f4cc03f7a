/*
 * risk.c - p-values for Learn-then-Test (see risk.h).
 *
 * Everything is double precision, libm only; the binomial tail goes through
 * the regularised incomplete beta function (es_incbeta, in the core) so that
 * n in the millions costs the same as n = 10.
 */
#include <math.h>

#include "earlystop.h"
#include "risk.h"

double es_binom_cdf(uint64_t k, uint64_t n, double p)
{
    if (k >= n || p <= 0) return 1.0;
    if (p >= 1) return 0.0;
    /* P(X <= k) = I_{1-p}(n - k, k + 1) */
    double v = es_incbeta((double)(n - k), (double)k + 1.0, 1.0 - p);
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

double es_pvalue_binomial(uint64_t n, uint64_t k, double eps)
{
    if (n == 0) return 1.0;
    return es_binom_cdf(k, n, eps);
}

/* Kullback-Leibler divergence of Bernoulli(a) from Bernoulli(b). */
static double kl_bernoulli(double a, double b)
{
    double t1 = a > 0 ? a * log(a / b) : 0.0;
    double t2 = a < 1 ? (1.0 - a) * log((1.0 - a) / (1.0 - b)) : 0.0;
    return t1 + t2;
}

double es_pvalue_hb(uint64_t n, double mean, double eps)
{
    if (n == 0 || !(eps > 0)) return 1.0;
    if (eps >= 1) return 0.0;
    double m = mean < eps ? mean : eps;
    double hoeffding = exp(-(double)n * kl_bernoulli(m, eps));
    double k = ceil((double)n * mean - 1e-9);
    double bentkus = k >= (double)n ? 1.0 : M_E * es_binom_cdf((uint64_t)(k < 0 ? 0 : k), n, eps);
    double p = hoeffding < bentkus ? hoeffding : bentkus;
    return p > 1 ? 1 : p;
}

double es_pvalue_betting(const double *loss, const uint32_t *order, size_t n, double eps, double delta)
{
    if (n == 0 || !(eps > 0)) return 1.0;
    if (eps >= 1) return 0.0;
    /* the bet never risks more than 3/4 of the wealth on one item, so one
     * item that loses fully cannot ruin the gambler */
    const double cap = 0.75 / (1.0 - eps);
    double log_wealth = 0, best = 0, sum = 0, var_sum = 0.25;
    double log_inv_delta = log(1.0 / (delta > 0 && delta < 1 ? delta : 0.1));
    for (size_t t = 0; t < n; t++) {
        double var = var_sum / (double)(t + 1);
        double lambda = sqrt(2.0 * log_inv_delta / ((double)n * var));
        if (lambda > cap) lambda = cap;
        double x = loss[order ? order[t] : t];
        x = x < 0 ? 0 : x > 1 ? 1 : x;
        log_wealth += log1p(lambda * (eps - x));
        if (log_wealth > best) best = log_wealth;
        /* running mean and variance as in WSR: shrunk toward 1/2, 1/4 */
        sum += x;
        double mean = (0.5 + sum) / (double)(t + 2);
        var_sum += (x - mean) * (x - mean);
    }
    double p = exp(-best);
    return p > 1 ? 1 : p;
}

size_t es_fixed_sequence(const double *pvalues, size_t m, double delta)
{
    size_t j = 0;
    while (j < m && pvalues[j] <= delta) j++;
    return j;
}
