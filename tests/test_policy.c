/*
 * test_policy.c - the stopping policies: their posteriors against independent
 * references, spec parsing, the event semantics of every rule on hand-made
 * sequences, replay of hand-built items and the determinism of evaluation.
 *
 * References are computed here by other means than the library uses (exact
 * Gauss-Legendre quadrature in long double, Monte Carlo), so a shared mistake
 * in the maths cannot make both sides agree.
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
#include <unistd.h>

#include "earlystop.h"
#include "earlystop_io.h"
#include "posterior.h"

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

/* xorshift64*: the test's own generator, independent of the library's. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((rng_state * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0) + 0x1p-54;
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
            for (uint32_t k = 0; k <= counts[i]; k++) g -= log(urand());
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

/* ------------------------------------------------------------ spec parsing */

static void expect_canon(const char *spec, const char *canon)
{
    es_policy *p = NULL;
    es_error err = {0};
    int rc = es_policy_new(spec, &p, &err);
    if (rc) fail_msg("'%s': %d %s", spec, rc, err.msg);
    if (strcmp(es_policy_spec(p), canon)) fail_msg("'%s' -> '%s', want '%s'", spec, es_policy_spec(p), canon);
    /* the canonical spec parses to itself */
    es_policy *q = NULL;
    assert_int_equal(es_policy_new(es_policy_spec(p), &q, NULL), ES_OK);
    assert_string_equal(es_policy_spec(q), canon);
    es_policy_free(q);
    es_policy_free(p);
}

/* ES_EPARSE with every `want` (NULL-terminated) in the message. */
static void expect_parse_error(const char *spec, ...)
{
    es_policy *p = (es_policy *)&p; /* must be reset to NULL */
    es_error err = {0};
    int rc = es_policy_new(spec, &p, &err);
    if (rc != ES_EPARSE) fail_msg("'%s': rc %d, want ES_EPARSE", spec, rc);
    assert_null(p);
    assert_int_equal(err.code, ES_EPARSE);
    va_list ap;
    va_start(ap, spec);
    for (const char *w; (w = va_arg(ap, const char *));)
        if (!strstr(err.msg, w)) fail_msg("'%s': message '%s' lacks '%s'", spec, err.msg, w);
    va_end(ap);
    /* NULL err is allowed too */
    assert_int_equal(es_policy_new(spec, &p, NULL), ES_EPARSE);
}

static void test_spec_parse(void **state)
{
    /* canonical specs and defaults: no cap is "max=all" (max=0 read as "no samples") */
    expect_canon("full", "full:max=all");
    expect_canon("ac-beta", "ac-beta:threshold=0.95,min=1,max=all");
    expect_canon("ac-beta:threshold=0.9,max=20", "ac-beta:threshold=0.9,min=1,max=20");
    expect_canon("ac-dirichlet", "ac-dirichlet:threshold=0.95,top_k=5,min=1,max=all");
    expect_canon("majority", "majority:fraction=0.8,min=2,max=all");
    expect_canon("entropy", "entropy:threshold=0.75,min=2,max=all");
    expect_canon("esc", "esc:window=5,remainder=draw,max=all");
    expect_canon("esc:window=4", "esc:window=4,remainder=draw,max=all");
    expect_canon("esc:remainder=skip,window=3", "esc:window=3,remainder=skip,max=all");
    expect_canon("deer", "deer:threshold=0.95,min_tokens=0");
    expect_canon("dynasor", "dynasor:k=3,min_tokens=0,decide=after-chunk");
    expect_canon("dynasor:decide=at-probe", "dynasor:k=3,min_tokens=0,decide=at-probe");
    expect_canon("convergence", "convergence:m=2,min_tokens=0");
    expect_canon("deepconf", "deepconf:warmup=16,eta=10,window=2048,consensus=off,vote=weighted,round=3,max=all");
    expect_canon("deepconf:consensus=0.95,vote=count,round=off,max=64",
                 "deepconf:warmup=16,eta=10,window=2048,consensus=0.95,vote=count,round=off,max=64");
    /* an unset budget is left out rather than spelt "samples=0" */
    expect_canon("budget:samples=8", "budget:samples=8");
    expect_canon("budget:samples=0,tokens=7", "budget:tokens=7");
    /* max=all on input; max=0, the canonical spelling of earlier versions, means the same */
    expect_canon("ac-beta:max=all", "ac-beta:threshold=0.95,min=1,max=all");
    expect_canon("ac-beta:max=0", "ac-beta:threshold=0.95,min=1,max=all");
    /* numbers round-trip with their shortest spelling, never with an exponent's '+' */
    expect_canon("ac-beta:threshold=0.99999999999", "ac-beta:threshold=0.99999999999,min=1,max=all");
    expect_canon("ac-beta:threshold=0.1234567890123456789", "ac-beta:threshold=0.12345678901234568,min=1,max=all");
    expect_canon("majority:fraction=1e-300", "majority:fraction=1e-300,min=2,max=all");
    expect_canon("deepconf:eta=10.0", "deepconf:warmup=16,eta=10,window=2048,consensus=off,vote=weighted,round=3,max=all");
    expect_canon("deepconf:eta=100", "deepconf:warmup=16,eta=100,window=2048,consensus=off,vote=weighted,round=3,max=all");
    /* '+' combinations */
    expect_canon("dynasor:k=3+ac-beta", "dynasor:k=3,min_tokens=0,decide=after-chunk+ac-beta:threshold=0.95,min=1,max=all");
    expect_canon("esc+deer:threshold=0.9", "esc:window=5,remainder=draw,max=all+deer:threshold=0.9,min_tokens=0");
    expect_canon("budget:tokens=100+esc", "budget:tokens=100+esc:window=5,remainder=draw,max=all");

    /* the canonical spec keeps the value: 0.99999999999 is not 1 */
    {
        es_policy *q = NULL;
        assert_int_equal(es_policy_new("ac-beta:threshold=0.99999999999", &q, NULL), ES_OK);
        assert_null(strstr(es_policy_spec(q), "threshold=1,"));
        es_policy_free(q);
    }
    /* settings that cannot be meant together */
    expect_parse_error("ac-beta:threshold=0.9,threshold=0.1", "threshold is given twice", (char *)NULL);
    expect_parse_error("esc:window=3,max=9,window=4", "window is given twice", (char *)NULL);
    expect_parse_error("ac-beta:min=5,max=3", "min=5 is more than max=3", (char *)NULL);
    expect_parse_error("majority:max=1", "min=2 is more than max=1", (char *)NULL);
    expect_parse_error("deepconf:warmup=16,max=8", "warmup=16 is more than max=8", (char *)NULL);
    expect_parse_error("esc:remainder=drop", "remainder must be one of draw, skip", "drop", (char *)NULL);
    expect_parse_error("dynasor:decide=later", "decide must be one of after-chunk, at-probe", (char *)NULL);
    expect_parse_error("deepconf:consensus=1.5", "consensus", "or 'off'", (char *)NULL);
    expect_parse_error("deepconf:threshold=0.9", "unknown", "consensus", (char *)NULL);
    expect_parse_error("ac-beta:max=-1", "max", "or 'all'", (char *)NULL);
    expect_parse_error("ac-beta:threshold= 0.5", "threshold", (char *)NULL);
    expect_parse_error("ac-beta:threshold=0x", "threshold", (char *)NULL);

    /* unknown policy: the message lists the known ones */
    expect_parse_error("nope", "unknown policy 'nope'", "ac-beta", "esc", "deepconf", (char *)NULL);
    expect_parse_error("ac-beta:thresh=0.9", "thresh", "keys: threshold, min, max", (char *)NULL);
    expect_parse_error("esc:k=3", "keys: window, remainder, max", (char *)NULL);
    expect_parse_error("dynasor:3", "key=value", "keys: k, min_tokens", (char *)NULL);
    /* bad values */
    expect_parse_error("ac-beta:threshold=1.5", "threshold", "1.5", (char *)NULL);
    expect_parse_error("ac-beta:threshold=-0.1", "threshold", (char *)NULL);
    expect_parse_error("ac-beta:threshold=abc", "threshold", "abc", (char *)NULL);
    expect_parse_error("ac-beta:threshold=", "threshold", (char *)NULL);
    expect_parse_error("esc:window=0", "window", (char *)NULL);
    expect_parse_error("esc:window=2.5", "window", "integer", (char *)NULL);
    expect_parse_error("dynasor:k=-1", "k", (char *)NULL);
    expect_parse_error("ac-dirichlet:top_k=65", "top_k", (char *)NULL);
    /* empty and malformed combinations */
    expect_parse_error("", "empty", (char *)NULL);
    expect_parse_error("+esc", "empty part", (char *)NULL);
    expect_parse_error("esc+", "empty part", (char *)NULL);
    expect_parse_error("esc++deer", "empty part", (char *)NULL);
    /* two rules at one level */
    expect_parse_error("ac-beta+esc", "at most one", (char *)NULL);
    expect_parse_error("deer+dynasor", "at most one", (char *)NULL);
    expect_parse_error("deepconf+ac-beta", "at most one", (char *)NULL);
    expect_parse_error("dynasor+deepconf", "at most one", (char *)NULL);
    expect_parse_error("budget:samples=4+esc", "at most one", (char *)NULL);
    expect_parse_error("esc+budget:samples=4", "already has a rule", (char *)NULL);
    expect_parse_error("budget:tokens=10+deer", "at most one", (char *)NULL);
    expect_parse_error("budget", "samples", "tokens", (char *)NULL);

    /* budget placement: tokens within a sample, samples across */
    es_policy *p;
    assert_int_equal(es_policy_new("budget:tokens=100", &p, NULL), ES_OK);
    assert_int_equal(es_policy_token_limit(p), 100);
    assert_int_equal(es_policy_probes(p), 1);
    assert_int_equal(es_policy_batch(p), 0); /* across: full, every sample */
    es_policy_free(p);
    assert_int_equal(es_policy_new("budget:samples=6", &p, NULL), ES_OK);
    assert_int_equal(es_policy_token_limit(p), UINT32_MAX);
    assert_int_equal(es_policy_probes(p), 0);
    assert_int_equal(es_policy_batch(p), 6);
    es_policy_free(p);
    assert_int_equal(es_policy_new("budget:samples=6,tokens=50", &p, NULL), ES_OK);
    assert_int_equal(es_policy_token_limit(p), 50);
    assert_int_equal(es_policy_batch(p), 6);
    es_policy_free(p);
    assert_int_equal(es_policy_new("esc:window=4", &p, NULL), ES_OK);
    assert_int_equal(es_policy_batch(p), 4);
    assert_int_equal(es_policy_probes(p), 0);
    es_policy_free(p);
    assert_int_equal(es_policy_new("ac-beta", &p, NULL), ES_OK);
    assert_int_equal(es_policy_batch(p), 1);
    es_policy_free(p);
    assert_int_equal(es_policy_new("dynasor", &p, NULL), ES_OK);
    assert_int_equal(es_policy_probes(p), 1);
    es_policy_free(p);
}

/* Policy files (@file.json): the spec they load, and the files that must be
 * refused rather than read one way silently. */
static int load_policy_file(const char *json, char *spec, size_t cap, es_error *err)
{
    char path[] = "/tmp/es_test_policy_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(json, fp);
    fclose(fp);
    int rc = es_policy_spec_load(path, spec, cap, err);
    unlink(path);
    return rc;
}

static void test_policy_file(void **state)
{
    char spec[1024];
    es_error err = {0};
    assert_int_equal(load_policy_file("{\"spec\": \"esc:window=4\", \"note\": \"tuned\"}", spec, sizeof spec, &err), ES_OK);
    assert_string_equal(spec, "esc:window=4");
    /* rules: numbers and words */
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"dynasor\", \"k\": 2, \"decide\": \"at-probe\"},"
                                      " {\"name\": \"esc\", \"remainder\": \"skip\", \"max\": \"all\"}]}",
                                      spec, sizeof spec, &err), ES_OK);
    es_policy *p = NULL;
    assert_int_equal(es_policy_new(spec, &p, &err), ES_OK);
    assert_string_equal(es_policy_spec(p), "dynasor:k=2,min_tokens=0,decide=at-probe+esc:window=5,remainder=skip,max=all");
    es_policy_free(p);
    /* both forms at once could disagree: refused */
    memset(&err, 0, sizeof err);
    assert_int_equal(load_policy_file("{\"spec\": \"esc\", \"rules\": [{\"name\": \"ac-beta\"}]}", spec, sizeof spec, &err),
                     ES_EFORMAT);
    assert_non_null(strstr(err.msg, "both \"spec\" and \"rules\""));
    /* a key given twice, at any level */
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"ac-beta\", \"threshold\": 0.9, \"threshold\": 0.1}]}",
                                      spec, sizeof spec, &err), ES_EPARSE);
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_int_equal(load_policy_file("{\"spec\": \"esc\", \"spec\": \"ac-beta\"}", spec, sizeof spec, &err), ES_EPARSE);
    /* nothing may smuggle spec syntax past the JSON */
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"ac-beta\", \"threshold\": \"0.9,min=30\"}]}", spec,
                                      sizeof spec, &err), ES_EFORMAT);
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"ac-beta+esc\"}]}", spec, sizeof spec, &err), ES_EFORMAT);
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"ac-beta\", \"min=9,max\": 3}]}", spec, sizeof spec, &err),
                     ES_EFORMAT);
    assert_int_equal(load_policy_file("{\"rules\": [3]}", spec, sizeof spec, &err), ES_EFORMAT);
    assert_int_equal(load_policy_file("{\"spec\": 3}", spec, sizeof spec, &err), ES_EFORMAT);
    assert_int_equal(load_policy_file("[\"esc\"]", spec, sizeof spec, &err), ES_EFORMAT);
    /* a repeated key inside the spec string is the spec parser's error */
    assert_int_equal(load_policy_file("{\"spec\": \"ac-beta:threshold=0.9,threshold=0.1\"}", spec, sizeof spec, &err), ES_OK);
    assert_int_equal(es_policy_new_any("@/nonexistent/policy.json", &p, &err), ES_EPARSE);
}

/* --------------------------------------------------------- event semantics */

static es_policy *new_policy(const char *spec)
{
    es_policy *p = NULL;
    es_error err = {0};
    if (es_policy_new(spec, &p, &err)) fail_msg("'%s': %s", spec, err.msg);
    return p;
}

/* Feed whole samples (no probes) with answers ans[0..n); returns the number
 * of samples drawn when the policy said stop (n when it never did). */
static uint32_t feed(es_policy *p, const int32_t *ans, uint32_t n, uint32_t max_answers, int32_t null_answer)
{
    assert_int_equal(es_policy_begin_item(p, n, max_answers, null_answer), ES_OK);
    for (uint32_t i = 0; i < n; i++) {
        es_policy_begin_sample(p);
        int rc = es_policy_end_sample(p, ans[i], 10, NAN);
        assert_true(rc == ES_CONTINUE || rc == ES_STOP);
        if (rc == ES_STOP) return i + 1;
    }
    return n;
}

static void test_ac_beta_events(void **state)
{
    es_policy *p = new_policy("ac-beta:threshold=0.95");
    int32_t same[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    /* P = 31/32 after 4 unanimous samples, 15/16 after 3 */
    assert_int_equal(feed(p, same, 10, 4, -1), 4);
    assert_int_equal(es_policy_answer(p), 0);
    /* directly: not after 3 */
    es_policy_begin_item(p, 0, 4, -1);
    for (int i = 0; i < 3; i++) {
        es_policy_begin_sample(p);
        assert_int_equal(es_policy_end_sample(p, 2, 1, NAN), ES_CONTINUE);
    }
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, 2, 1, NAN), ES_STOP);
    /* a rival: (a, b) = (5, 1): P(Bin(7,.5) <= 5) = 1 - 8/128 = .9375 -> go on;
     * (6, 1): 1 - 9/256 = .965 -> stop */
    int32_t rival[] = {0, 1, 0, 0, 0, 0, 0, 0};
    assert_int_equal(feed(p, rival, 8, 2, -1), 7);
    es_policy_free(p);
    /* the cap stops too */
    p = new_policy("ac-beta:max=3");
    int32_t mixed[] = {0, 1, 2, 0, 1, 2};
    assert_int_equal(feed(p, mixed, 6, 3, -1), 3);
    es_policy_free(p);
    /* min holds it back */
    p = new_policy("ac-beta:min=6");
    assert_int_equal(feed(p, same, 10, 1, -1), 6);
    es_policy_free(p);
}

/* AC-beta's threshold table is filled on demand, in order of the second
 * count, and kept across items: every stop must be where the whole table,
 * built up front the plain way, puts it, whichever second counts the items
 * reach first (and past the table, at 128+, the direct probability). */
static void test_ac_beta_table_on_demand(void **state)
{
    static const double th[] = {0.95, 0.99, 0.9};
    static const uint32_t bs[] = {30, 2, 0, 17, 5, 31, 1, 127, 64, 3, 130, 40};
    for (size_t t = 0; t < sizeof th / sizeof th[0]; t++) {
        uint32_t ref[131], a = 0;
        for (uint32_t b = 0; b < 131; b++) {
            if (a < b) a = b;
            while (es_beta_lead_prob(a, b) < th[t]) a++;
            ref[b] = a;
        }
        char spec[64];
        snprintf(spec, sizeof spec, "ac-beta:threshold=%g", th[t]);
        es_policy *p = new_policy(spec);
        for (size_t k = 0; k < sizeof bs / sizeof bs[0]; k++) {
            uint32_t b = bs[k], n = 0;
            es_policy_begin_item(p, 0, 4, -1);
            /* 1, 0, 1, 0, ...: ties and one-vote leads never reach 0.9 */
            for (uint32_t i = 0; i < 2 * b; i++, n++) {
                es_policy_begin_sample(p);
                assert_int_equal(es_policy_end_sample(p, (int32_t)(1 - i % 2), 1, NAN), ES_CONTINUE);
            }
            /* then 0 until the lead is enough: counts (a, b) */
            int rc;
            do {
                es_policy_begin_sample(p);
                rc = es_policy_end_sample(p, 0, 1, NAN);
                n++;
            } while (rc == ES_CONTINUE && n < 1000);
            assert_int_equal(rc, ES_STOP);
            assert_int_equal(n, b + ref[b]);
            assert_int_equal(es_policy_answer(p), 0);
        }
        es_policy_free(p);
    }
}

static void test_esc_events(void **state)
{
    es_policy *p = new_policy("esc");
    /* windows [0,0,0,0,1] [0,0,0,0,2] [1,1,1,1,1]: the overall majority is 0,
     * ESC answers the unanimous window's 1, and stops only at window ends */
    int32_t a[] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    assert_int_equal(feed(p, a, 20, 3, -1), 15);
    assert_int_equal(es_policy_answer(p), 1);
    /* five equal answers across a window boundary are not a window */
    int32_t b[] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(feed(p, b, 14, 2, -1), 14);
    assert_int_equal(es_policy_answer(p), 0); /* no unanimous window: majority of all */
    /* a window of null answers counts: null is a value */
    int32_t c[] = {2, 2, 2, 2, 2, 0, 0};
    assert_int_equal(feed(p, c, 7, 3, 2), 5);
    assert_int_equal(es_policy_answer(p), 2);
    es_policy_free(p);
    p = new_policy("esc:window=2");
    int32_t d[] = {0, 1, 1, 0, 1, 1};
    assert_int_equal(feed(p, d, 6, 2, -1), 6);
    assert_int_equal(es_policy_answer(p), 1);
    es_policy_free(p);
    /* 7 samples in windows of 3: by default the 7th is drawn and votes; with
     * remainder=skip, as ESC's scripts (k // window windows), it never is */
    int32_t e[] = {0, 1, 1, 1, 0, 0, 1};
    p = new_policy("esc:window=3");
    assert_int_equal(feed(p, e, 7, 2, -1), 7);
    assert_int_equal(es_policy_answer(p), 1); /* 4 to 3 */
    es_policy_free(p);
    p = new_policy("esc:window=3,remainder=skip");
    assert_int_equal(feed(p, e, 7, 2, -1), 6);
    assert_int_equal(es_policy_answer(p), 0); /* 3 to 3: the answer seen first */
    /* fewer samples than a window: all of them */
    assert_int_equal(feed(p, e, 2, 2, -1), 2);
    es_policy_free(p);
    /* the rule's own max is rounded down to whole windows too */
    p = new_policy("esc:window=3,remainder=skip,max=5");
    assert_int_equal(feed(p, e, 7, 2, -1), 3);
    es_policy_free(p);
}

static void test_majority_entropy_events(void **state)
{
    int32_t same[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    es_policy *p = new_policy("majority");
    /* 1/1 >= 0.8, but never at one sample */
    assert_int_equal(feed(p, same, 8, 1, -1), 2);
    int32_t m[] = {0, 1, 0, 0, 0, 0, 0, 0};
    /* 4/5 = 0.8 */
    assert_int_equal(feed(p, m, 8, 2, -1), 5);
    es_policy_free(p);
    p = new_policy("entropy");
    /* counts {k} + pseudo-count 1: k=2 .918, k=3 .811, k=4 .722 <= .75 */
    assert_int_equal(feed(p, same, 8, 1, -1), 4);
    /* counts (8, 3, 1) after 12 samples: exactly 0.75, and upstream goes on */
    int32_t t[] = {0, 1, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(feed(p, t, 13, 3, -1), 13);
    es_policy_free(p);
    p = new_policy("majority:min=1");
    assert_int_equal(feed(p, same, 8, 1, -1), 1);
    es_policy_free(p);
}

/* Ties go to the answer seen first (with ids interned in order of first
 * appearance, the lower id). */
static void test_ties_first_seen(void **state)
{
    es_policy *p = new_policy("full");
    int32_t b[] = {0, 1, 1, 0, 2};
    assert_int_equal(feed(p, b, 5, 3, -1), 5);
    assert_int_equal(es_policy_answer(p), 0);
    int32_t c[] = {0, 1, 2, 2, 1};
    feed(p, c, 5, 3, -1);
    assert_int_equal(es_policy_answer(p), 1);
    es_policy_free(p);
    p = new_policy("esc:window=3");
    int32_t d[] = {0, 1, 2, 2, 1, 0};
    feed(p, d, 6, 3, -1);
    assert_int_equal(es_policy_answer(p), 0);
    es_policy_free(p);
    /* A shuffled replay feeds ids out of first-appearance order: the tie
     * still goes to the answer voted first in this run, not the lower id. */
    p = new_policy("full");
    int32_t e[] = {2, 0, 0, 2, 1};
    feed(p, e, 5, 3, -1);
    assert_int_equal(es_policy_answer(p), 2);
    es_policy_free(p);
}

/* One sample of probes (answers, confidences); returns the 1-based probe at
 * which the policy stopped the sample, 0 if it did not, or an error. */
static int probe_sample(es_policy *p, const int32_t *ans, const float *conf, const float *wconf, uint32_t n)
{
    es_policy_begin_sample(p);
    for (uint32_t i = 0; i < n; i++) {
        int rc = es_policy_probe(p, 100 * (i + 1), ans[i], conf ? conf[i] : NAN, wconf ? wconf[i] : NAN);
        if (rc < 0) return rc;
        if (rc == ES_STOP) return (int)i + 1;
    }
    return 0;
}

static void test_within_events(void **state)
{
    const int32_t NUL = 9;
    es_policy *p = new_policy("dynasor:k=3");
    es_policy_begin_item(p, 1, 10, NUL);
    int32_t a1[] = {1, 1, NUL, NUL, NUL, 1, 1, 1};
    assert_int_equal(probe_sample(p, a1, NULL, NULL, 8), 8);
    assert_int_equal(es_policy_sample_answer(p), 1);
    int32_t a2[] = {2, 2, 3, 3};
    assert_int_equal(probe_sample(p, a2, NULL, NULL, 4), 0);
    es_policy_free(p);

    p = new_policy("dynasor:k=3,min_tokens=500");
    es_policy_begin_item(p, 1, 10, NUL);
    int32_t a3[] = {4, 4, 4, 4, 4, 4};
    assert_int_equal(probe_sample(p, a3, NULL, NULL, 6), 5); /* at = 500 */
    es_policy_free(p);

    /* convergence:m=2 = the answer repeated twice after it first appeared */
    p = new_policy("convergence:m=2");
    es_policy_begin_item(p, 1, 10, NUL);
    int32_t c1[] = {5, 5, 6, 6, 6};
    assert_int_equal(probe_sample(p, c1, NULL, NULL, 5), 5);
    int32_t c2[] = {5, 5, 5};
    assert_int_equal(probe_sample(p, c2, NULL, NULL, 3), 3);
    es_policy_free(p);

    /* deer: first confidence strictly above the threshold, null excluded */
    p = new_policy("deer:threshold=0.95");
    es_policy_begin_item(p, 1, 10, NUL);
    int32_t d1[] = {1, NUL, 2, 3};
    float f1[] = {0.5f, 0.99f, 0.95f, 0.96f};
    assert_int_equal(probe_sample(p, d1, f1, NULL, 4), 4);
    assert_int_equal(es_policy_sample_answer(p), 3);
    float f2[] = {0.5f, NAN, 0.99f, 0.99f};
    int rc = probe_sample(p, d1, f2, NULL, 4);
    assert_int_equal(rc, ES_ENOTSUP);
    if (!strstr(es_policy_errmsg(p), "confidence")) fail_msg("errmsg '%s'", es_policy_errmsg(p));
    /* a new item clears the message */
    es_policy_begin_item(p, 1, 10, NUL);
    assert_string_equal(es_policy_errmsg(p), "");
    es_policy_free(p);
}

/* DeepConf online as facebookresearch/deepconf's wrapper.py runs it: the
 * warm-up traces fix the threshold at a percentile of their confidences and
 * vote only when they clear it; later traces are cut at a group below it and
 * then do not vote; a trace without an answer never votes; every sample is
 * drawn (no consensus stop unless asked); a trace shorter than the window has
 * the mean of all its tokens as its confidence. */
static void test_deepconf_events(void **state)
{
    const int32_t A = 0, B = 1, NUL = 2;
    es_policy *p = new_policy("deepconf:warmup=2,eta=50,round=off");
    assert_int_equal(es_policy_begin_item(p, 0, 3, NUL), ES_OK);
    int32_t aa[] = {A, A}, bb[] = {B, B}, b1[] = {B};
    float w1[] = {1.0f, 1.5f}, w2[] = {0.5f, 2.0f}, hi[] = {0.875f}, lo[] = {0.5f};
    assert_int_equal(probe_sample(p, aa, NULL, w1, 2), 0); /* warm-up: nothing ends a trace */
    assert_int_equal(es_policy_end_sample(p, A, 200, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, bb, NULL, w2, 2), 0);
    assert_int_equal(es_policy_end_sample(p, B, 200, NAN), ES_CONTINUE);
    /* threshold: 50th percentile of {1.0, 0.5} = 0.75; the warm-up B (0.5)
     * is below it and does not vote, A (1.0) does */
    assert_int_equal(es_policy_answer(p), A);
    /* a later trace with a group below 0.75 is cut there and does not vote */
    assert_int_equal(probe_sample(p, b1, NULL, lo, 1), 1);
    assert_int_equal(es_policy_sample_answer(p), B);
    assert_int_equal(es_policy_end_sample(p, B, 16, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), A);
    /* a kept trace with no answer does not vote either */
    int32_t n1[] = {NUL};
    assert_int_equal(probe_sample(p, n1, NULL, hi, 1), 0);
    assert_int_equal(es_policy_end_sample(p, NUL, 100, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), A);
    /* kept B traces vote with their confidence: 0.875 < 1.0, then 1.75 > 1.0 */
    assert_int_equal(probe_sample(p, b1, NULL, hi, 1), 0);
    assert_int_equal(es_policy_end_sample(p, B, 100, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), A);
    assert_int_equal(probe_sample(p, b1, NULL, hi, 1), 0);
    assert_int_equal(es_policy_end_sample(p, B, 100, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), B);
    /* no consensus stop: 40 more unanimous traces, still drawing */
    int32_t a1[] = {A};
    float one[] = {1.0f};
    for (int i = 0; i < 40; i++) {
        assert_int_equal(probe_sample(p, a1, NULL, one, 1), 0);
        assert_int_equal(es_policy_end_sample(p, A, 100, NAN), ES_CONTINUE);
    }
    assert_int_equal(es_policy_answer(p), A);
    /* a sample with no confidence at all (too short for a probe) is no error:
     * it sets no threshold and does not vote */
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, B, 10, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), A);
    es_policy_free(p);

    /* vote=count: every kept trace weighs 1 (compute_multiple_voting's majority) */
    p = new_policy("deepconf:warmup=1,eta=100,vote=count,round=off");
    assert_int_equal(es_policy_begin_item(p, 4, 3, NUL), ES_OK);
    float c9[] = {0.9f}, c1[] = {0.1f}, c2[] = {0.2f};
    int32_t bq[] = {B}, aq[] = {A};
    assert_int_equal(probe_sample(p, aq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_CONTINUE);
    /* eta=100: the threshold is the lowest warm-up confidence, 0.9: both B cut */
    assert_int_equal(probe_sample(p, bq, NULL, c1, 1), 1);
    assert_int_equal(es_policy_end_sample(p, B, 10, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, bq, NULL, c2, 1), 1);
    assert_int_equal(es_policy_end_sample(p, B, 10, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, bq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, B, 10, NAN), ES_STOP); /* the caller's 4 samples */
    assert_int_equal(es_policy_answer(p), A);                        /* 1 to 1: A voted first */
    /* every trace cut or without an answer: no answer, as upstream's None */
    assert_int_equal(es_policy_begin_item(p, 2, 3, NUL), ES_OK);
    int32_t nq[] = {NUL};
    assert_int_equal(probe_sample(p, nq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, NUL, 10, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, aq, NULL, c1, 1), 1);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_STOP);
    assert_int_equal(es_policy_answer(p), NUL);
    /* no sample of the question carries a confidence: an error that says why */
    assert_int_equal(es_policy_begin_item(p, 2, 3, NUL), ES_OK);
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, A, 5, NAN), ES_CONTINUE);
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, A, 5, NAN), ES_ENOTSUP);
    assert_true(strstr(es_policy_errmsg(p), "confidence") != NULL);
    /* probes without window_confidence: the file has none */
    assert_int_equal(es_policy_begin_item(p, 2, 3, NUL), ES_OK);
    assert_int_equal(probe_sample(p, aq, NULL, NULL, 1), ES_ENOTSUP);
    es_policy_free(p);

    /* the paper's consensus stop, as an option: after warm-up, stop once the
     * weighted leader holds `consensus` of the weight */
    p = new_policy("deepconf:warmup=2,eta=100,consensus=0.95,round=off");
    assert_int_equal(es_policy_begin_item(p, 0, 3, NUL), ES_OK);
    assert_int_equal(probe_sample(p, aq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, aq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_STOP); /* unanimous at the end of warm-up */
    es_policy_free(p);

    /* per-token events: groups are full windows (of 2 here); a trace shorter
     * than the window has the mean of all its tokens */
    p = new_policy("deepconf:warmup=1,eta=100,window=4,round=off");
    assert_int_equal(es_policy_begin_item(p, 0, 3, NUL), ES_OK);
    es_policy_begin_sample(p);
    float toks[] = {1.0f, 0.75f, 0.5f, 1.0f, 0.25f}; /* groups .8125, .625 -> .625 */
    for (int i = 0; i < 5; i++) assert_int_equal(es_policy_token(p, -0.1f, toks[i]), ES_CONTINUE);
    assert_int_equal(es_policy_end_sample(p, A, 5, NAN), ES_CONTINUE);
    /* threshold .625; a 3-token trace: no full window, mean (.5+.5+.5)/3 = .5 < .625: no vote */
    es_policy_begin_sample(p);
    for (int i = 0; i < 3; i++) assert_int_equal(es_policy_token(p, -0.1f, 0.5f), ES_CONTINUE);
    assert_int_equal(es_policy_end_sample(p, B, 3, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), A);
    /* mean .75 >= .625: votes (.75 > .625, B leads) */
    es_policy_begin_sample(p);
    for (int i = 0; i < 2; i++) assert_int_equal(es_policy_token(p, -0.1f, 0.75f), ES_CONTINUE);
    assert_int_equal(es_policy_end_sample(p, B, 2, NAN), ES_CONTINUE);
    assert_int_equal(es_policy_answer(p), B);
    /* a full window below the threshold cuts the trace */
    es_policy_begin_sample(p);
    for (int i = 0; i < 3; i++) assert_int_equal(es_policy_token(p, -0.1f, 0.5f), ES_CONTINUE);
    assert_int_equal(es_policy_token(p, -0.1f, 0.5f), ES_STOP);
    es_policy_free(p);
}

/* --------------------------------------------------------- hand-built sets */

/* A traceset of one item: sample s has answer ans[s], tokens tok[s] and the
 * probes given by its (at, answer) lists. */
typedef struct hand_sample {
    const char *answer;
    uint32_t tokens;
    uint32_t n_probes;
    es_probe probes[8];
} hand_sample;

static es_traceset *hand_set(const char *gold, const hand_sample *hs, size_t n)
{
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    es_sample smp[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        smp[i] = (es_sample){.answer = hs[i].answer, .tokens = hs[i].tokens, .confidence = NAN,
                             .n_probes = hs[i].n_probes, .probes = hs[i].probes};
    }
    const char *golds[] = {gold};
    es_item it = {.id = "q1", .task = "t", .answer_type = ES_ANSWER_NUMBER, .n_gold = 1, .gold = golds,
                  .n_samples = n, .samples = smp};
    es_error err = {0};
    if (es_traceset_add(ts, &it, &err)) fail_msg("traceset_add: %s", err.msg);
    return ts;
}

#define PR(at_, ans_) {.at = (at_), .answer = (ans_), .confidence = NAN, .window_confidence = NAN, .cost = -1}

static const char *answer_of(const es_item_view *v, int32_t id)
{
    return id >= 0 && (uint32_t)id < v->n_answers ? v->answer_raw[id] : NULL;
}

static void test_replay_budget_tokens(void **state)
{
    hand_sample hs[] = {
        {"9", 100, 3, {PR(20, "7"), PR(50, "8"), PR(90, "9")}},
        {"8", 30, 0, {{0}}},
        {"9", 70, 2, {PR(10, NULL), PR(65, "9")}},
        {"9", 80, 0, {{0}}},
    };
    es_traceset *ts = hand_set("8", hs, 4);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    es_policy *p = new_policy("budget:tokens=60");
    es_outcome o;
    assert_int_equal(es_replay_item(p, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
    /* s0 cut at 60 answering the probe at 50 ("8"); s1 whole (30); s2 cut at
     * 60 answering the null probe at 10; s3 cut with no probe: null */
    assert_int_equal(o.samples, 4);
    assert_int_equal(o.tokens, 60 + 30 + 60 + 60);
    assert_int_equal(o.probes, 2 + 0 + 1 + 0);
    assert_int_equal(o.rounds, 1);
    /* votes 8, 8, null, null: tie -> "8", seen first */
    assert_string_equal(answer_of(&v, o.answer), "8");
    assert_int_equal(o.correct, 1);
    /* a probe exactly at the cap is the forced answer */
    es_policy_free(p);
    p = new_policy("budget:tokens=50");
    assert_int_equal(es_replay_item(p, &v, NULL, 7, &o), ES_OK);
    assert_int_equal(o.tokens, 50 + 30 + 50 + 50);
    assert_int_equal(o.probes, 2 + 1);
    assert_int_equal(o.probe_tokens, 3 * 7);
    es_policy_free(p);
    /* no cap: full tokens, no probes made without a within rule */
    p = new_policy("full");
    assert_int_equal(es_replay_item(p, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
    assert_int_equal(o.tokens, 280);
    assert_int_equal(o.probes, 0);
    assert_string_equal(answer_of(&v, o.answer), "9");
    assert_int_equal(o.correct, 0);
    es_policy_free(p);
    /* a token budget combined with esc:window=2 */
    p = new_policy("budget:tokens=95+esc:window=2");
    assert_int_equal(es_replay_item(p, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
    /* s0 cut at 95 answering its probe at 90 ("9"), s1 = 30 ("8"): not
     * unanimous; s2 (70) and s3 (80) run whole, both "9": window stops */
    assert_int_equal(o.samples, 4);
    assert_int_equal(o.rounds, 2);
    assert_int_equal(o.tokens, 95 + 30 + 70 + 80);
    assert_string_equal(answer_of(&v, o.answer), "9");
    es_policy_free(p);
    es_traceset_free(ts);
}

static void test_replay_within_stop(void **state)
{
    hand_sample hs[] = {
        {"3", 400, 5, {PR(50, "1"), PR(100, "3"), PR(150, "3"), PR(200, "3"), PR(300, "3")}},
    };
    hs[0].probes[1].cost = 4;
    es_traceset *ts = hand_set("3", hs, 1);
    es_item_view v;
    es_traceset_item(ts, 0, &v);
    /* Dynasor's timing: the probe at 200 is read once the chunk after it is
     * out, at 300; the sample ends there and the probe at 300 is never made.
     * The last probe is never read: k=4 would need the probe at 300. */
    static const struct { const char *spec; uint32_t lag; uint64_t tokens, probes; } dyn[] = {
        {"dynasor:k=3", 1, 300, 4}, {"dynasor:k=3,decide=at-probe", 0, 200, 4},
        {"dynasor:k=4", 1, 400, 5}, {"dynasor:k=4,decide=at-probe", 0, 300, 5}};
    es_policy *p;
    es_outcome o;
    for (int i = 0; i < 4; i++) {
        p = new_policy(dyn[i].spec);
        assert_int_equal(es_policy_probe_lag(p), dyn[i].lag);
        assert_int_equal(es_replay_item(p, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
        assert_int_equal(o.tokens, dyn[i].tokens);
        assert_int_equal(o.probes, dyn[i].probes);
        assert_int_equal(o.probe_tokens, 4); /* only the probe with a cost field */
        assert_int_equal(o.correct, 1);
        es_policy_free(p);
    }
    p = new_policy("convergence:m=1");
    assert_int_equal(es_replay_item(p, &v, NULL, 10, &o), ES_OK);
    assert_int_equal(o.tokens, 150);
    assert_int_equal(o.probe_tokens, 30);
    es_policy_free(p);
    /* deer on probes without confidences: an error naming the cause */
    p = new_policy("deer");
    assert_int_equal(es_replay_item(p, &v, NULL, 0, &o), ES_ENOTSUP);
    assert_true(strstr(es_policy_errmsg(p), "deer needs probe confidences") != NULL);
    es_policy_free(p);
    es_traceset_free(ts);
}

/* The oracles' majority of all samples breaks a tie on the answer seen
 * first in each order, as `full` does: answers 1 and 2 tie 2-2, gold 2, so
 * an order is correct exactly when a "2" comes before every "1". */
static void test_oracle_ties_in_order(void **state)
{
    hand_sample hs[] = {{"1", 10, 0, {{0}}}, {"2", 20, 0, {{0}}}, {"2", 30, 0, {{0}}},
                        {"1", 40, 0, {{0}}}, {"3", 50, 0, {{0}}}};
    es_traceset *ts = hand_set("2", hs, 5);
    es_item_view v;
    es_traceset_item(ts, 0, &v);
    uint64_t want = 0;
    for (uint32_t r = 0; r < 200; r++) {
        uint32_t order[5], i = 0;
        es_shuffle_order(9, r, 0, 5, order);
        while (v.answer[order[i]] != v.answer[0] && v.answer[order[i]] != v.answer[1]) i++;
        want += v.answer[order[i]] == v.answer[1];
    }
    assert_true(want > 50 && want < 150);
    es_eval_acc acc = {0}, full = {0};
    assert_int_equal(es_eval_oracle(ts, ES_ORACLE_CONSISTENCY, 9, 0, 200, &acc), ES_OK);
    assert_int_equal(acc.correct, want);
    es_policy *p = new_policy("full");
    assert_int_equal(es_eval_policy(ts, p, 9, 0, 200, ES_PROBE_COST_FIELD, &full, NULL), ES_OK);
    assert_int_equal(full.correct, want);
    es_policy_free(p);
    es_traceset_free(ts);
}

/* ------------------------------------------------------------- determinism */

/* 40 items of 12..27 samples over a few answers, some null; with `probes`,
 * each sample also carries 0..3 probes, mostly agreeing with its answer. */
static es_traceset *random_set_probes(int probes)
{
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    static const char *const vals[] = {"1", "2", "3", "4", NULL};
    char id[16];
    for (int i = 0; i < 40; i++) {
        es_sample smp[32];
        es_probe pr[32][3];
        uint32_t n = 12 + (uint32_t)(urand() * 16);
        for (uint32_t s = 0; s < n; s++) {
            double u = urand();
            /* skewed towards "1" so that rules stop at various points */
            int k = u < 0.55 ? 0 : (int)(urand() * 5);
            smp[s] = (es_sample){.answer = vals[k], .tokens = 10 + (uint32_t)(urand() * 90), .confidence = NAN};
            uint32_t np = probes ? (uint32_t)(urand() * 4) : 0;
            for (uint32_t j = 0; j < np; j++)
                pr[s][j] = (es_probe){.at = (j + 1) * smp[s].tokens / 4,
                                      .answer = urand() < 0.7 ? vals[k] : vals[(int)(urand() * 5)],
                                      .confidence = NAN, .window_confidence = NAN, .cost = (int32_t)j - 1};
            smp[s].n_probes = np;
            smp[s].probes = pr[s];
        }
        snprintf(id, sizeof id, "i%d", i);
        const char *golds[] = {i % 3 ? "1" : "2"};
        es_item it = {.id = id, .task = "t", .answer_type = ES_ANSWER_NUMBER, .n_gold = 1, .gold = golds,
                      .n_samples = n, .samples = smp};
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    return ts;
}

static es_traceset *random_set(void) { return random_set_probes(0); }

static void test_eval_chunking_deterministic(void **state)
{
    es_traceset *ts = random_set_probes(1);
    size_t n = es_traceset_n_items(ts);
    /* ac-dirichlet is left out: each of its decisions integrates (slow) */
    static const char *const specs[] = {"ac-beta", "esc:window=3", "entropy", "majority", "full",
                                        "budget:samples=2", "dynasor:k=2+ac-beta", "budget:tokens=40+majority",
                                        "dynasor:k=2"};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        es_eval_acc *one = calloc(n, sizeof *one), *three = calloc(n, sizeof *three);
        assert_non_null(one);
        assert_non_null(three);
        es_policy *p = new_policy(specs[k]), *q = new_policy(specs[k]);
        assert_int_equal(es_eval_policy(ts, p, 7, 0, 30, ES_PROBE_COST_FIELD, one, NULL), ES_OK);
        /* three chunks, in a scrambled order, on another policy object */
        assert_int_equal(es_eval_policy(ts, q, 7, 20, 30, ES_PROBE_COST_FIELD, three, NULL), ES_OK);
        assert_int_equal(es_eval_policy(ts, q, 7, 0, 7, ES_PROBE_COST_FIELD, three, NULL), ES_OK);
        assert_int_equal(es_eval_policy(ts, q, 7, 7, 20, ES_PROBE_COST_FIELD, three, NULL), ES_OK);
        assert_memory_equal(one, three, n * sizeof *one);
        /* es_eval_policy draws each order lazily, only as far as the policy
         * reads it: the sums of replays on the full orders of
         * es_shuffle_order (the orders the oracles see) */
        memset(three, 0, n * sizeof *three);
        uint64_t drawn = 0, all = 0;
        for (size_t i = 0; i < n; i++) {
            es_item_view v;
            es_outcome o;
            uint32_t order[32];
            es_traceset_item(ts, i, &v);
            for (uint32_t r = 0; r < 30; r++) {
                es_shuffle_order(7, r, (uint32_t)i, v.n_samples, order);
                assert_int_equal(es_replay_item(q, &v, order, ES_PROBE_COST_FIELD, &o), ES_OK);
                three[i].correct += o.correct;
                three[i].samples += o.samples;
                three[i].rounds += o.rounds;
                three[i].probes += o.probes;
                three[i].tokens += o.tokens;
                three[i].probe_tokens += o.probe_tokens;
                drawn += o.samples;
                all += v.n_samples;
            }
        }
        assert_memory_equal(one, three, n * sizeof *one);
        if (k == 0) assert_true(drawn < all); /* ac-beta stops early: the rest of an order is never drawn */
        uint64_t samples = 0;
        for (size_t i = 0; i < n; i++) samples += one[i].samples;
        assert_true(samples > 0);
        /* file order = shuffles (0, 0) */
        memset(one, 0, n * sizeof *one);
        assert_int_equal(es_eval_policy(ts, p, 99, 0, 0, ES_PROBE_COST_FIELD, one, NULL), ES_OK);
        for (size_t i = 0; i < n; i++) {
            es_item_view v;
            es_outcome o;
            es_traceset_item(ts, i, &v);
            assert_int_equal(es_replay_item(q, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
            assert_int_equal(one[i].samples, o.samples);
            assert_int_equal(one[i].tokens, o.tokens);
            assert_int_equal(one[i].correct, o.correct);
        }
        es_policy_free(p);
        es_policy_free(q);
        free(one);
        free(three);
    }
    es_traceset_free(ts);
}

/* The orders, written out the plain way: splitmix64 seeded from (seed,
 * shuffle, item), each output giving two 32-bit values (high half first);
 * Fisher-Yates from the front (a replay draws only the samples a policy
 * reads), j uniform in [i, n) as the high half of (value * range), redrawn
 * while the low half is below 2^32 mod range.  Pinning them keeps a
 * speed-up of es_shuffle_order from silently changing every --shuffles
 * figure. */
static uint64_t ref_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void ref_shuffle(uint64_t seed, uint32_t shuffle, uint32_t item, uint32_t n, uint32_t *order)
{
    uint64_t s = seed ^ ((uint64_t)shuffle << 32 | item) * 0xD6E8FEB86659FD93ULL;
    ref_splitmix(&s);
    uint32_t vals[2 * 200 + 64], used = 0, have = 0;
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    for (uint32_t i = 0; i + 1 < n; i++) {
        uint64_t range = n - i, lim = (1ULL << 32) % range, m;
        do {
            if (used == have) {
                assert_true(have + 2 <= sizeof vals / sizeof vals[0]);
                uint64_t x = ref_splitmix(&s);
                vals[have++] = (uint32_t)(x >> 32);
                vals[have++] = (uint32_t)x;
            }
            m = vals[used++] * range;
        } while ((m & 0xFFFFFFFFULL) < lim);
        uint32_t j = i + (uint32_t)(m >> 32), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static void test_shuffle_order(void **state)
{
    {
        uint32_t got[200], want[200];
        for (uint32_t k = 0; k < 3000; k++) {
            uint32_t n = k % 200;
            uint64_t seed = k * 0x1234567ULL + (k & 7);
            es_shuffle_order(seed, k / 3, k % 97, n, got);
            ref_shuffle(seed, k / 3, k % 97, n, want);
            assert_memory_equal(got, want, n * sizeof *got);
        }
    }

    uint32_t a[64], b[64], seen[64];
    int differs = 0;
    for (uint32_t n = 0; n <= 64; n += 7) {
        for (uint32_t r = 0; r < 20; r++) {
            es_shuffle_order(42, r, 3, n, a);
            es_shuffle_order(42, r, 3, n, b);
            assert_memory_equal(a, b, n * sizeof *a); /* pure */
            memset(seen, 0, sizeof seen);
            for (uint32_t i = 0; i < n; i++) {
                assert_true(a[i] < n);
                seen[a[i]]++;
            }
            for (uint32_t i = 0; i < n; i++) assert_int_equal(seen[i], 1); /* a permutation */
            if (n >= 14) {
                es_shuffle_order(42, r + 1, 3, n, b);
                differs += memcmp(a, b, n * sizeof *a) != 0;
                es_shuffle_order(43, r, 3, n, b);
                differs += memcmp(a, b, n * sizeof *a) != 0;
                es_shuffle_order(42, r, 4, n, b);
                differs += memcmp(a, b, n * sizeof *a) != 0;
            }
        }
    }
    /* seed, shuffle and item each change the order (n = 14, 21, ..., 63) */
    assert_int_equal(differs, 3 * 20 * 8);
    /* every position is reached: first element roughly uniform over 10 */
    uint32_t first[10] = {0};
    for (uint32_t r = 0; r < 5000; r++) {
        es_shuffle_order(1, r, 0, 10, a);
        first[a[0]]++;
    }
    for (int i = 0; i < 10; i++) assert_true(first[i] > 400 && first[i] < 600);
}

/* (g) no allocation per event.  Counting malloc calls portably from a test is
 * not possible (glibc dropped its hooks; interposing malloc clashes with
 * ASan), so this checks what can be checked: replaying many items leaves
 * resident memory flat.  Under ASan a malloc/free per event would also show,
 * through its quarantine of freed blocks. */
static long resident_kib(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!fp) return -1;
    if (fscanf(fp, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(fp);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_replay_memory_flat(void **state)
{
    es_traceset *ts = random_set();
    size_t n = es_traceset_n_items(ts);
    static const char *const specs[] = {"ac-beta", "majority", "entropy", "esc", "deepconf:warmup=2"};
    es_policy *p[5];
    for (int k = 0; k < 5; k++) p[k] = new_policy(specs[k]);
    es_item_view v;
    es_outcome o;
    uint32_t order[32];
    /* warm up: buffers reach their size */
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < n; i++) {
            es_traceset_item(ts, i, &v);
            assert_int_equal(es_replay_item(p[k], &v, NULL, 0, &o), ES_OK);
        }
    long before = resident_kib();
    if (before < 0) {
        for (int k = 0; k < 5; k++) es_policy_free(p[k]);
        es_traceset_free(ts);
        skip();
    }
    uint64_t events = 0;
    for (uint32_t r = 0; r < 500; r++)
        for (size_t i = 0; i < n; i++) {
            es_traceset_item(ts, i, &v);
            es_shuffle_order(5, r, (uint32_t)i, v.n_samples, order);
            for (int k = 0; k < 4; k++) {
                assert_int_equal(es_replay_item(p[k], &v, order, 0, &o), ES_OK);
                events += o.samples;
            }
        }
    long after = resident_kib();
    print_message("replay: %llu sample events, resident %ld -> %ld KiB\n", (unsigned long long)events, before, after);
    assert_true(after - before < 1024);
    /* deepconf without confidences fails cleanly, without leaking either */
    es_traceset_item(ts, 0, &v);
    assert_int_equal(es_replay_item(p[4], &v, NULL, 0, &o), ES_ENOTSUP);
    for (int k = 0; k < 5; k++) es_policy_free(p[k]);
    es_traceset_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_beta_lead_prob_quadrature),
        cmocka_unit_test(test_dirichlet_lead_prob),
        cmocka_unit_test(test_vote_entropy),
        cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_policy_file),
        cmocka_unit_test(test_ac_beta_events),
        cmocka_unit_test(test_ac_beta_table_on_demand),
        cmocka_unit_test(test_esc_events),
        cmocka_unit_test(test_majority_entropy_events),
        cmocka_unit_test(test_ties_first_seen),
        cmocka_unit_test(test_within_events),
        cmocka_unit_test(test_deepconf_events),
        cmocka_unit_test(test_replay_budget_tokens),
        cmocka_unit_test(test_replay_within_stop),
        cmocka_unit_test(test_oracle_ties_in_order),
        cmocka_unit_test(test_eval_chunking_deterministic),
        cmocka_unit_test(test_shuffle_order),
        cmocka_unit_test(test_replay_memory_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
