/*
 * test_risk.c - the p-values behind Learn-then-Test: the binomial tail
 * against direct summation, and every p-value's validity (at most delta
 * rejections at the null's boundary) by simulation with a fixed seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tune/risk.h"

/* P(X <= k) by summing the pmf in logs, largest term last. */
static double binom_cdf_direct(uint64_t k, uint64_t n, double p)
{
    double s = 0;
    for (uint64_t j = 0; j <= k && j <= n; j++)
        s += exp(lgamma((double)n + 1) - lgamma((double)j + 1) - lgamma((double)(n - j) + 1) + (double)j * log(p) +
                 (double)(n - j) * log1p(-p));
    return s;
}

static void test_binom_cdf(void **state)
{
    (void)state;
    const uint64_t ns[] = {1, 2, 7, 50, 369, 1000, 12000};
    const double ps[] = {0.001, 0.005, 0.05, 0.3, 0.5, 0.9};
    double worst = 0;
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ps / sizeof ps[0]; b++)
            for (uint64_t k = 0; k < ns[a] && k < 400; k += 1 + k / 7) {
                double want = binom_cdf_direct(k, ns[a], ps[b]), got = es_binom_cdf(k, ns[a], ps[b]);
                double err = fabs(got - want) / (want > 1e-300 ? want : 1);
                if (want > 1e-250 && err > worst) worst = err;
            }
    printf("binomial cdf: worst relative error %.2e against direct summation\n", worst);
    assert_true(worst < 1e-9);
    assert_true(es_binom_cdf(5, 5, 0.5) == 1.0);
    assert_true(es_binom_cdf(0, 10, 0.0) == 1.0);
    assert_true(es_binom_cdf(3, 10, 1.0) == 0.0);
    assert_true(fabs(es_binom_cdf(0, 500, 0.005) - pow(0.995, 500)) < 1e-12);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1.0p-53; }

/* Share of trials whose p-value is <= delta when the true mean loss is
 * exactly eps (the least favourable null): must be <= delta + noise. */
static void test_validity(void **state)
{
    (void)state;
    enum { TRIALS = 4000, N = 300 };
    const double eps = 0.05, delta = 0.1;
    double *loss = malloc(N * sizeof *loss);
    uint64_t s = 42;
    int rej_bin = 0, rej_hb = 0, rej_bet = 0, rej_net = 0;
    for (int t = 0; t < TRIALS; t++) {
        uint64_t k = 0;
        for (int i = 0; i < N; i++) {
            loss[i] = uniform(&s) < eps;
            k += (uint64_t)loss[i];
        }
        rej_bin += es_pvalue_binomial(N, k, eps) <= delta;
        rej_hb += es_pvalue_hb(N, (double)k / N, eps) <= delta;
        rej_bet += es_pvalue_betting(loss, NULL, N, eps, delta) <= delta;
        /* net loss in {-1, 0, 1} with mean exactly eps: 8% wrong, 3% gained,
         * mapped to [0, 1] as (l + 1) / 2 against (eps + 1) / 2 */
        for (int i = 0; i < N; i++) {
            double u = uniform(&s);
            loss[i] = u < 0.08 ? 1.0 : u < 0.11 ? 0.0 : 0.5;
        }
        rej_net += es_pvalue_betting(loss, NULL, N, (eps + 1) / 2, delta) <= delta;
    }
    /* binomial noise of TRIALS Bernoulli(delta): sd 0.0047; allow 3 sd */
    double lim = delta + 3 * sqrt(delta * (1 - delta) / TRIALS);
    printf("rejection rate at the null's boundary (delta %.2f): binomial %.4f, HB %.4f, betting %.4f, "
           "betting on net losses %.4f\n", delta, (double)rej_bin / TRIALS, (double)rej_hb / TRIALS,
           (double)rej_bet / TRIALS, (double)rej_net / TRIALS);
    assert_true((double)rej_bin / TRIALS <= lim);
    assert_true((double)rej_hb / TRIALS <= lim);
    assert_true((double)rej_bet / TRIALS <= lim);
    assert_true((double)rej_net / TRIALS <= lim);
    free(loss);
}

/* Power: a clearly safe candidate (true loss far below eps) is certified by
 * each test, and the exact binomial is at least as strong as HB. */
static void test_power(void **state)
{
    (void)state;
    enum { N = 2000 };
    double *loss = calloc(N, sizeof *loss);
    for (int i = 0; i < N; i += 200) loss[i] = 1; /* 0.5% lost, eps 2% */
    uint64_t k = N / 200;
    double pb = es_pvalue_binomial(N, k, 0.02), ph = es_pvalue_hb(N, (double)k / N, 0.02),
           pw = es_pvalue_betting(loss, NULL, N, 0.02, 0.1);
    printf("p-values at 0.5%% observed vs eps 2%%, n %d: binomial %.2e, HB %.2e, betting %.2e\n", N, pb, ph, pw);
    assert_true(pb < 1e-6 && ph < 1e-4 && pw < 1e-3);
    assert_true(pb <= ph);
    /* nothing lost at all: certified at eps 0.5% with n 2000 */
    for (int i = 0; i < N; i++) loss[i] = 0;
    assert_true(es_pvalue_binomial(N, 0, 0.005) < 1e-4);
    assert_true(es_pvalue_betting(loss, NULL, N, 0.005, 0.1) < 0.1);
    free(loss);
}

static void test_fixed_sequence(void **state)
{
    (void)state;
    const double p[] = {0.001, 0.02, 0.09, 0.2, 0.01};
    assert_int_equal(es_fixed_sequence(p, 5, 0.1), 3);  /* stops at the first failure */
    assert_int_equal(es_fixed_sequence(p, 5, 0.01), 1);
    assert_int_equal(es_fixed_sequence(p, 5, 0.0001), 0);
    assert_int_equal(es_fixed_sequence(p, 0, 0.5), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binom_cdf),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_power),
        cmocka_unit_test(test_fixed_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
