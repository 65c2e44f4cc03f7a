/*
 * testutil.h - helpers the unit tests share: the tests' own random
 * generator (xorshift64*, independent of the library's generators, so that
 * a test's data never shares a mistake with the code under test), and a
 * policy made from a spec, alone or with the es_session that drives it.
 *
 * Include after <cmocka.h>.  Each test binary is one file, so everything
 * here is static; the generator's state is the binary's own.  Temporary
 * files (es_test_tmp_file) are made under /tmp and removed by the test.
 */
#ifndef ES_TEST_UTIL_H
#define ES_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop.h"

static uint64_t es_test_rng_state = 0x9E3779B97F4A7C15ULL;

/* xorshift64* (Vigna 2016): 64 random bits. */
static inline uint64_t es_test_next(void)
{
    es_test_rng_state ^= es_test_rng_state >> 12;
    es_test_rng_state ^= es_test_rng_state << 25;
    es_test_rng_state ^= es_test_rng_state >> 27;
    return es_test_rng_state * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) (n > 0; the modulo bias is immaterial here). */
static inline uint32_t es_test_below(uint32_t n)
{
    return (uint32_t)((es_test_next() >> 32) % n);
}

/* Uniform in (0, 1), never 0 (a log of it is finite). */
static inline double es_test_uniform(void)
{
    return (double)(es_test_next() >> 11) * (1.0 / 9007199254740992.0) + 0x1p-54;
}

/* A policy from a spec; the test fails with the parser's message if not. */
static inline es_policy *es_test_policy(const char *spec)
{
    es_policy *p = NULL;
    es_error err = {0};
    if (es_policy_new(spec, &p, &err)) fail_msg("'%s': %s", spec, err.msg);
    return p;
}

/* A policy and the session that drives it. */
typedef struct es_test_pol {
    es_policy *p;
    es_session *s;
} es_test_pol;

static inline es_test_pol es_test_pol_new(const char *spec)
{
    es_test_pol x = {es_test_policy(spec), NULL};
    assert_int_equal(es_session_new(x.p, &x.s), ES_OK);
    assert_true(es_session_policy(x.s) == x.p);
    return x;
}

static inline void es_test_pol_free(es_test_pol *x)
{
    es_session_free(x->s);
    es_policy_free(x->p);
    x->s = NULL;
    x->p = NULL;
}

/* Write text to a fresh temporary file; returns its malloc'd path. */
static inline char *es_test_tmp_file(const char *text)
{
    char *path = strdup("/tmp/es_test_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
    return path;
}

/* Remove it and free the path. */
static inline void es_test_tmp_done(char *path)
{
    unlink(path);
    free(path);
}

/* A stopper with one within head on the text cues that needs them
 * (p_conclude required) and the run length: score p_conclude + p_run, stop at
 * 1.5: at a concluding probe, or once two probes in a row agree (when cued). */
static inline es_stopper *es_test_cue_stopper(void)
{
    static const double mean[2] = {0, 0}, scale[2] = {1, 1}, w[2] = {1, 1}, budget[1] = {0.1}, thr[1] = {NAN},
                        pthr[1] = {1.5};
    static uint32_t feat[2];
    assert_int_equal(es_feature_find("p_conclude", &feat[0]), ES_OK);
    assert_int_equal(es_feature_find("p_run", &feat[1]), ES_OK);
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    d.within = (es_stopper_head){2, feat, mean, scale, 5.0, 1, {{0, NULL, NULL, w, 0, 0, 1.0}}, 1, 1};
    d.n_points = 1;
    d.max_em_drop = budget;
    d.threshold = thr;
    d.probe_threshold = pthr;
    es_stopper *st = NULL;
    assert_int_equal(es_stopper_new(&d, &st, NULL), ES_OK);
    return st;
}

#endif
