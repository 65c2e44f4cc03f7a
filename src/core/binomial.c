/*
 * binomial.c - the regularised incomplete beta function and exact
 * (Clopper-Pearson) intervals for a rate.  The controller's fallback tests
 * its audits' disagreement with the lower bound, a simulator reports each
 * window's disagreement with the interval, and the tuner's p-values
 * (src/tune/risk.c) are binomial tails through es_incbeta.  Counts may be
 * fractional (exponentially weighted): the interval is then the Beta
 * quantiles at those counts, as for whole numbers.  Double precision, libm
 * only; n in the millions costs the same as n = 10.
 */
#include <math.h>

#include "earlystop.h"

/* lgamma_r: lgamma writes the global signgam. */
static double lgam(double x)
{
    int sign;
    return lgamma_r(x, &sign);
}

/* Continued fraction of I_x(a, b) (modified Lentz), valid and fast for
 * x < (a + 1) / (a + b + 2); the caller uses the symmetry otherwise. */
static double incbeta_cf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double f = d;
    for (int m = 1; m <= 10000; m++) {
        double m2 = 2.0 * m;
        /* even step */
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        f *= d * c;
        /* odd step */
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double delta = d * c;
        f *= delta;
        if (fabs(delta - 1.0) < eps) break;
    }
    return f;
}

double es_incbeta(double a, double b, double x)
{
    if (!(x > 0)) return 0.0;
    if (!(x < 1)) return 1.0;
    /* x^a (1-x)^b / (a B(a, b)), in logs */
    double lfront = lgam(a + b) - lgam(a) - lgam(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0)) return exp(lfront) * incbeta_cf(a, b, x) / a;
    return 1.0 - exp(lfront) * incbeta_cf(b, a, 1.0 - x) / b;
}

/* The q-quantile of Beta(a, b) by bisection (60 halvings: below 1e-18). */
static double beta_quantile(double a, double b, double q)
{
    double lo = 0, hi = 1;
    for (int i = 0; i < 60; i++) {
        double mid = 0.5 * (lo + hi);
        if (es_incbeta(a, b, mid) < q) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

void es_binomial_interval(double k, double n, double level, double *lo, double *hi)
{
    *lo = 0;
    *hi = 1;
    if (!(n > 0) || !(level > 0 && level < 1)) return;
    if (k < 0) k = 0;
    if (k > n) k = n;
    double alpha = (1.0 - level) / 2.0;
    if (k > 0) *lo = beta_quantile(k, n - k + 1.0, alpha);
    if (k < n) *hi = beta_quantile(k + 1.0, n - k, 1.0 - alpha);
}
