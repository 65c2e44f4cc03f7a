/*
 * test_posterior.c - the posteriors behind the vote rules (src/core/
 * posterior.c): Adaptive-Consistency's Beta criterion, the Dirichlet
 * criterion and the normalised vote entropy, against references computed
 * here by other means than the library uses (exact Gauss-Legendre
 * quadrature in long double, Monte Carlo), so a shared mistake in the maths
 * cannot make both sides agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"
#include "core/posterior.h"
#include "testutil.h"

/* ------------------------------------------------ Gauss-Legendre in long double */

/* 65 nodes integrate polynomials of degree <= 129 exactly: x^a (1-x)^b with
 * a, b <= 64 has degree <= 128, so the reference is exact up to rounding. */
enum { GL_N = 65 };
static long double gl_x[GL_N], gl_w[GL_N]; /* on [-1, 1] */

/* Nodes by Newton's method on P_n, in long double (~1e-19 relative). */
static void gl_init(void)
{
    if (gl_w[0] > 0) return;
    const long double pi = 3.141592653589793238462643383279502884L;
    for (int i = 0; i < GL_N; i++) {
        long double x = cosl(pi * (i + 0.75L) / (GL_N + 0.5L)), dp = 0;
        for (int it = 0; it < 100; it++) {
            long double p0 = 1, p1 = x;
            for (int k = 2; k <= GL_N; k++) {
                long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = GL_N * (x * p1 - p0) / (x * x - 1);
            long double dx = p1 / dp;
            x -= dx;
            if (fabsl(dx) < 1e-21L) break;
        }
        /* recompute the derivative at the converged node */
        long double p0 = 1, p1 = x;
        for (int k = 2; k <= GL_N; k++) {
            long double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
            p0 = p1;
            p1 = p2;
        }
        dp = GL_N * (x * p1 - p0) / (x * x - 1);
        gl_x[i] = x;
        gl_w[i] = 2 / ((1 - x * x) * dp * dp);
    }
}

/* int_lo^hi x^a (1-x)^b dx, exact for a + b <= 129 (up to rounding). */
static long double gl_beta_piece(long double lo, long double hi, unsigned a, unsigned b)
{
    long double s = 0, half = (hi - lo) / 2, mid = (hi + lo) / 2;
    for (int i = 0; i < GL_N; i++) {
        long double x = mid + half * gl_x[i];
        s += gl_w[i] * powl(x, (long double)a) * powl(1 - x, (long double)b);
    }
    return s * half;
}

/* (a) the Beta criterion against the quadrature, for every a, b in 0..64 */
static void test_beta_lead_prob_quadrature(void **state)
{
    gl_init();
    /* the reference's own accuracy: the full integral is B(a+1, b+1) */
    double worst_self = 0, worst = 0;
    for (unsigned a = 0; a <= 64; a++)
        for (unsigned b = 0; b <= 64; b++) {
            long double hi = gl_beta_piece(0.5L, 1, a, b), lo = gl_beta_piece(0, 0.5L, a, b);
            long double exact = expl(lgammal(a + 1.0L) + lgammal(b + 1.0L) - lgammal(a + b + 2.0L));
            double self = (double)fabsl((hi + lo) / exact - 1);
            if (self > worst_self) worst_self = self;
            long double ref = hi / (hi + lo);
            double got = es_beta_lead_prob(a, b), d = fabs(got - (double)ref);
            if (d > worst) worst = d;
            if (!(d <= 1e-9)) fail_msg("beta(%u, %u): got %.17g, quadrature %.17Lg", a, b, got, ref);
        }
    print_message("beta lead prob: worst |error| %.3g over a, b in 0..64; quadrature self-check %.3g\n", worst,
                  worst_self);
    assert_true(worst_self < 1e-12);
    /* the figures the rules hinge on, exactly */
    assert_true(fabs(es_beta_lead_prob(4, 0) - 31.0 / 32.0) < 1e-15);
    assert_true(fabs(es_beta_lead_prob(3, 0) - 15.0 / 16.0) < 1e-15);
    assert_true(fabs(es_beta_lead_prob(1, 1) - 0.5) < 1e-15);
    /* large counts stay in [0, 1] and symmetric */
    for (unsigned a = 0; a < 3000; a += 311) {
        double p = es_beta_lead_prob(a, a);
        assert_true(fabs(p - 0.5) < 1e-9);
        assert_true(es_beta_lead_prob(a + 50, a) <= 1.0);
    }
}

/* P(p0 > p1 and p0 > p2) under Dirichlet(a+1, b+1, c+1), exact by a product
 * Gauss-Legendre rule over the two pieces of the region (polynomial in both
 * variables, so exact for a + b + c <= 128). */
static long double gl_dirichlet3(unsigned a, unsigned b, unsigned c)
{
    /* x = p1, y = p2, p0 = 1-x-y; region: y < 1-2x, y < (1-x)/2, x < 1/2 */
    long double num = 0;
    for (int piece = 0; piece < 2; piece++) {
        long double xl = piece ? 1.0L / 3 : 0, xh = piece ? 0.5L : 1.0L / 3;
        long double xhalf = (xh - xl) / 2, xmid = (xh + xl) / 2;
        for (int i = 0; i < GL_N; i++) {
            long double x = xmid + xhalf * gl_x[i], yh = piece ? 1 - 2 * x : (1 - x) / 2, in = 0;
            for (int j = 0; j < GL_N; j++) {
                long double y = yh / 2 + yh / 2 * gl_x[j];
                in += gl_w[j] * powl(1 - x - y, (long double)a) * powl(y, (long double)c);
            }
            num += gl_w[i] * xhalf * powl(x, (long double)b) * in * yh / 2;
        }
    }
    long double den = expl(lgammal(a + 1.0L) + lgammal(b + 1.0L) + lgammal(c + 1.0L) - lgammal(a + b + c + 3.0L));
    return num / den;
}

/* P(share 0 is the largest) by Monte Carlo: p ~ Dirichlet(counts + 1) as
 * normalised Gamma(count + 1) variates, a Gamma(k) being a sum of k Exp(1). */
static double mc_dirichlet(const uint32_t *counts, uint32_t n, int draws)
{
    int wins = 0;
    for (int d = 0; d < draws; d++) {
        double g0 = 0, best = 0;
        for (uint32_t i = 0; i < n; i++) {
            double g = 0;
            for (uint32_t k = 0; k <= counts[i]; k++) g -= log(es_test_uniform());
            if (i == 0) g0 = g;
            else if (g > best) best = g;
        }
        wins += g0 > best;
    }
    return (double)wins / draws;
}

/* (b) the Dirichlet criterion */
static void test_dirichlet_lead_prob(void **state)
{
    gl_init();
    /* two answers: the Beta value */
    for (uint32_t a = 0; a <= 64; a++)
        for (uint32_t b = 0; b <= a; b++) {
            uint32_t c[2] = {a, b};
            assert_true(es_dirichlet_lead_prob(c, 2) == es_beta_lead_prob(a, b));
        }
    /* three answers: against the exact 2-D quadrature */
    double worst = 0;
    /* a + b + c <= 127 keeps the product rule exact */
    static const uint32_t extra[][3] = {{64, 30, 20}, {64, 60, 3}, {64, 63, 0}, {50, 49, 28}, {2, 2, 2}};
    for (uint32_t e = 0; e < 5; e++) {
        uint32_t cnt[3] = {extra[e][0], extra[e][1], extra[e][2]};
        double ref = (double)gl_dirichlet3(cnt[0], cnt[1], cnt[2]), got = es_dirichlet_lead_prob(cnt, 3);
        if (!(fabs(got - ref) <= 1e-6))
            fail_msg("dirichlet(%u,%u,%u): got %.12g, quadrature %.12g", cnt[0], cnt[1], cnt[2], got, ref);
    }
    /* every triple up to 8, then a coarser grid up to 40.  (0,0,0) and
     * (1,0,0) are off by 1.4e-8 and 1.2e-8: Simpson's fixed 2000 steps over
     * [0, k0 + 12 sqrt(k0) + 30] are too coarse for their narrow integrands.
     * The rule never meets them (it integrates only once three distinct
     * answers each have a vote), so they get 2e-8; everything else 1e-9. */
    for (uint32_t a = 0; a <= 40; a += a < 8 ? 1 : 3)
        for (uint32_t b = 0; b <= a; b += a <= 8 ? 1 : 4)
            for (uint32_t c = 0; c <= b; c += a <= 8 ? 1 : 5) {
                uint32_t cnt[3] = {a, b, c};
                double ref = (double)gl_dirichlet3(a, b, c), got = es_dirichlet_lead_prob(cnt, 3);
                double d = fabs(got - ref);
                int narrow = a <= 1 && b == 0; /* (0,0,0) and (1,0,0): see above */
                if (!narrow && d > worst) worst = d;
                if (!(d <= (narrow ? 2e-8 : 1e-9))) fail_msg("dirichlet(%u,%u,%u): got %.12g, quadrature %.12g", a, b, c, got, ref);
            }
    print_message("dirichlet lead prob, 3 answers: worst |error| %.3g against exact quadrature\n",
                  worst);
    /* four and five answers: Monte Carlo, 4 standard errors */
    static const uint32_t cases[][5] = {{5, 2, 1, 1, 0}, {8, 3, 3, 2, 0}, {3, 2, 2, 1, 1}, {12, 6, 2, 1, 1}, {2, 1, 1, 0, 0}};
    static const uint32_t ns[] = {4, 4, 5, 5, 5};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        double mc = mc_dirichlet(cases[i], ns[i], 40000), got = es_dirichlet_lead_prob(cases[i], ns[i]);
        double se = sqrt(mc * (1 - mc) / 40000) + 1e-4;
        if (fabs(got - mc) > 4 * se) fail_msg("dirichlet case %zu: got %.5f, Monte Carlo %.5f", i, got, mc);
    }
    /* monotone in the leader's count, towards 1 */
    uint32_t cnt[4] = {3, 3, 2, 1};
    double prev = 0;
    for (uint32_t a = 3; a <= 60; a++) {
        cnt[0] = a;
        double p = es_dirichlet_lead_prob(cnt, 4);
        assert_true(p >= prev - 1e-12);
        assert_true(p <= 1.0);
        prev = p;
    }
    assert_true(prev > 0.999);
    /* and decreasing in a rival's count */
    uint32_t r[3] = {10, 0, 1};
    prev = 1;
    for (uint32_t b = 0; b <= 10; b++) {
        r[1] = b;
        double p = es_dirichlet_lead_prob(r, 3);
        assert_true(p <= prev + 1e-12);
        prev = p;
    }
}

/* (c) AC's EntropyStoppingCriteria: entropy(counts, base 2) / log2(len), a
 * pseudo-count 1 appended when only one answer was seen */
static void test_vote_entropy(void **state)
{
    uint32_t one[] = {3};
    double h = -(0.75 * log2(0.75) + 0.25 * log2(0.25));
    assert_true(fabs(es_vote_entropy_norm(one, 1) - h) < 1e-12);
    uint32_t four[] = {4};
    assert_true(fabs(es_vote_entropy_norm(four, 1) - -(0.8 * log2(0.8) + 0.2 * log2(0.2))) < 1e-12);
    uint32_t tie[] = {5, 5};
    assert_true(fabs(es_vote_entropy_norm(tie, 2) - 1.0) < 1e-12);
    uint32_t three[] = {2, 1, 1};
    assert_true(fabs(es_vote_entropy_norm(three, 3) - 1.5 / log2(3.0)) < 1e-12);
    /* order does not matter beyond the last bit */
    uint32_t three2[] = {1, 2, 1};
    assert_true(fabs(es_vote_entropy_norm(three2, 3) - es_vote_entropy_norm(three, 3)) < 1e-15);
    /* (8, 3, 1) is 0.75 exactly (H = 0.75 log2 3); scipy.stats.entropy /
     * np.log2, whose steps the library repeats, gives 0.7500000000000001 in
     * every order, so the default entropy threshold does not stop there */
    static const uint32_t ties[][3] = {{8, 3, 1}, {3, 8, 1}, {1, 3, 8}, {16, 6, 2}, {2, 16, 6}};
    for (int i = 0; i < 5; i++) {
        double v = es_vote_entropy_norm(ties[i], 3);
        if (v != 0.7500000000000001) fail_msg("entropy(%u,%u,%u) = %.17g", ties[i][0], ties[i][1], ties[i][2], v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beta_lead_prob_quadrature),
        cmocka_unit_test(test_dirichlet_lead_prob),
        cmocka_unit_test(test_vote_entropy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
