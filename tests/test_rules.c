/*
 * test_rules.c - every built-in rule (src/core/rules/) on hand-made event
 * sequences, through the raw policy events (es_policy_begin_item,
 * _end_sample, _probe, _token): where each stops and what it answers.  The
 * protocol around the events (probe lag, stopped and forced answers, costs)
 * is test_session.c's; the rules against their authors' code on the shared
 * traces are test_replay.c's.
 *
 * Answer ids follow the core's convention: 0 is the null answer
 * (ES_NULL_ANSWER), real answers are 1, 2, ...  Several cases feed ids out
 * of first-appearance order, as a shuffled replay does: ties must still go
 * to the answer voted first.
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

enum { NUL = ES_NULL_ANSWER };

/* Feed whole samples (no probes) with answers ans[0..n), the caller's cap
 * being `cap` (0 = unknown); returns the number of samples drawn when the
 * policy said stop (n when it never did). */
static uint32_t feed_cap(es_policy *p, const int32_t *ans, uint32_t n, uint32_t cap, uint32_t max_answers)
{
    assert_int_equal(es_policy_begin_item(p, cap, max_answers), ES_OK);
    for (uint32_t i = 0; i < n; i++) {
        es_policy_begin_sample(p);
        int rc = es_policy_end_sample(p, ans[i], 10, NAN);
        assert_true(rc == ES_CONTINUE || rc == ES_STOP);
        if (rc == ES_STOP) return i + 1;
    }
    return n;
}

static uint32_t feed(es_policy *p, const int32_t *ans, uint32_t n, uint32_t max_answers)
{
    return feed_cap(p, ans, n, n, max_answers);
}

/* ------------------------------------------------------------ across rules */

enum { MAXN = 24 };

/* One across case: the votes, where the policy stops and what it answers. */
typedef struct across_case {
    const char *spec;
    int32_t votes[MAXN];
    uint32_t n, cap;      /* samples offered; the caller's cap (0 = unknown) */
    uint32_t stop;        /* samples drawn */
    int32_t answer;
    const char *why;
} across_case;

#define SAME8(a) {a, a, a, a, a, a, a, a}
#define SAME10(a) {a, a, a, a, a, a, a, a, a, a}

static const across_case across[] = {
    /* ac-beta: P = 31/32 after 4 unanimous samples, 15/16 after 3 */
    {"ac-beta:threshold=0.95", SAME10(1), 10, 10, 4, 1, "unanimous: 4 samples"},
    {"ac-beta:threshold=0.95", SAME10(3), 10, 0, 4, 3, "any id, the cap unknown"},
    {"ac-beta:threshold=0.95", SAME10(NUL), 10, 10, 4, NUL, "null is a value: unanimous nulls stop too"},
    /* a rival: (5, 1): P(Bin(7,.5) <= 5) = 1 - 8/128 = .9375 -> go on; (6, 1): .965 -> stop */
    {"ac-beta", {1, 2, 1, 1, 1, 1, 1, 1}, 8, 8, 7, 1, "one rival"},
    {"ac-beta", {2, 1, 2, 2, 2, 2, 2, 2}, 8, 8, 7, 2, "one rival, ids swapped"},
    {"ac-beta:max=3", {1, 2, 3, 1, 2, 3}, 6, 6, 3, 1, "the rule's cap"},
    {"ac-beta", {1, 2, 3, 1, 2, 3}, 6, 3, 3, 1, "the caller's cap"},
    {"ac-beta:min=6", SAME10(1), 10, 10, 6, 1, "min holds it back"},
    {"ac-beta:threshold=0", {2, 1}, 2, 2, 1, 2, "threshold 0 stops at once"},
    {"ac-beta:threshold=1", SAME10(1), 10, 10, 10, 1, "threshold 1 never stops"},
    /* ac-dirichlet with two answers is the Beta criterion */
    {"ac-dirichlet", {1, 2, 1, 1, 1, 1, 1, 1}, 8, 8, 7, 1, "dirichlet, two answers"},
    {"ac-dirichlet", SAME10(2), 10, 10, 4, 2, "dirichlet, unanimous"},
    {"ac-dirichlet:min=5", SAME10(2), 10, 10, 5, 2, "dirichlet, min"},
    /* majority: the leader holds `fraction` of the samples, never at one sample */
    {"majority", SAME8(1), 8, 8, 2, 1, "1/1 >= 0.8 but min=2"},
    {"majority", {1, 2, 1, 1, 1, 1, 1, 1}, 8, 8, 5, 1, "4/5 = 0.8"},
    {"majority", {2, 1, 2, 2, 2, 2, 2, 2}, 8, 8, 5, 2, "4/5, ids swapped"},
    {"majority:min=1", SAME8(1), 8, 8, 1, 1, "min=1: one sample"},
    {"majority:fraction=1", {1, 1, 2, 1, 1, 1, 1, 1}, 8, 8, 2, 1, "unanimous so far"},
    /* entropy: counts {k} + pseudo-count 1: k=2 .918, k=3 .811, k=4 .722 <= .75 */
    {"entropy", SAME8(1), 8, 8, 4, 1, "entropy, unanimous"},
    /* counts (8, 3, 1) after 12 samples: exactly 0.75, and upstream goes on */
    {"entropy", {1, 2, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1}, 13, 13, 13, 1, "entropy: exact 0.75 does not stop"},
    {"entropy", {3, 2, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3}, 13, 13, 13, 3, "the same, ids reversed"},
    /* esc: windows [1,1,1,1,2] [1,1,1,1,3] [2,2,2,2,2]: the overall majority
     * is 1, ESC answers the unanimous window's 2 and stops only at window ends */
    {"esc", {1, 1, 1, 1, 2, 1, 1, 1, 1, 3, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1}, 20, 20, 15, 2, "esc: first unanimous window"},
    /* five equal answers across a window boundary are not a window */
    {"esc", {2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1}, 14, 14, 14, 1, "esc: no window, majority of all"},
    /* a window of null answers counts: null is a value */
    {"esc", {NUL, NUL, NUL, NUL, NUL, 1, 1}, 7, 7, 5, NUL, "esc: a window of nulls"},
    {"esc:window=2", {1, 2, 2, 1, 2, 2}, 6, 6, 6, 2, "windows of 2"},
    /* 7 samples in windows of 3: by default the 7th is drawn and votes; with
     * remainder=skip, as ESC's scripts (k // window windows), it never is */
    {"esc:window=3", {1, 2, 2, 2, 1, 1, 2}, 7, 7, 7, 2, "remainder=draw: 4 to 3"},
    {"esc:window=3,remainder=skip", {1, 2, 2, 2, 1, 1, 2}, 7, 7, 6, 1, "remainder=skip: 3 to 3, the first seen"},
    {"esc:window=3,remainder=skip", {1, 2, 2, 2, 1, 1, 2}, 2, 2, 2, 1, "fewer samples than a window: all"},
    {"esc:window=3,remainder=skip,max=5", {1, 2, 2, 2, 1, 1, 2}, 7, 7, 3, 2, "max rounded down to whole windows"},
    /* full: every sample, ties to the answer voted first */
    {"full", {1, 2, 2, 1, 3}, 5, 5, 5, 1, "tie: the first voted"},
    {"full", {1, 2, 3, 3, 2}, 5, 5, 5, 2, "tie of 2 and 3: 2 voted first"},
    {"full", {3, 1, 1, 3, 2}, 5, 5, 5, 3, "tie: the higher id voted first wins"},
    {"full", {NUL, 1, 1, NUL}, 4, 4, 4, NUL, "tie: null voted first"},
    {"full:max=3", {1, 2, 2, 1, 1}, 5, 5, 3, 2, "full's own cap"},
    {"esc:window=3", {1, 2, 3, 3, 2, 1}, 6, 6, 6, 1, "esc, three-way tie"},
    {"budget:samples=3", {2, 1, 1, 2, 2}, 5, 5, 3, 1, "budget: the first 3"},
    {"budget:samples=3", {2, 1, 3, 2, 2}, 5, 5, 3, 2, "budget: three-way tie"},
};

static void test_across_rules(void **state)
{
    for (size_t c = 0; c < sizeof across / sizeof across[0]; c++) {
        const across_case *k = &across[c];
        es_policy *p = es_test_policy(k->spec);
        /* twice: a policy reused for a second question starts afresh */
        for (int round = 0; round < 2; round++) {
            uint32_t got = feed_cap(p, k->votes, k->n, k->cap, 4);
            int32_t ans = es_policy_answer(p);
            if (got != k->stop || ans != k->answer)
                fail_msg("%s (%s): stopped at %u answering %d, want %u answering %d", k->spec, k->why, got, ans,
                         k->stop, k->answer);
        }
        es_policy_free(p);
    }
}

/* ac-beta stops one sample later than 3 and no later than 4 when unanimous:
 * the single step, event by event. */
static void test_ac_beta_step(void **state)
{
    es_policy *p = es_test_policy("ac-beta:threshold=0.95");
    assert_int_equal(es_policy_begin_item(p, 0, 4), ES_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(es_policy_begin_sample(p), ES_CONTINUE);
        assert_int_equal(es_policy_end_sample(p, 3, 1, NAN), ES_CONTINUE);
    }
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, 3, 1, NAN), ES_STOP);
    assert_int_equal(es_policy_answer(p), 3);
    /* an id beyond the question's answers is refused, with a message */
    assert_int_equal(es_policy_begin_item(p, 0, 4), ES_OK);
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, 4, 1, NAN), ES_EINVAL);
    assert_non_null(strstr(es_policy_errmsg(p), "out of range"));
    assert_int_equal(es_policy_end_sample(p, -1, 1, NAN), ES_EINVAL);
    /* the next question clears the message */
    assert_int_equal(es_policy_begin_item(p, 0, 4), ES_OK);
    assert_string_equal(es_policy_errmsg(p), "");
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
        es_policy *p = es_test_policy(spec);
        for (size_t k = 0; k < sizeof bs / sizeof bs[0]; k++) {
            uint32_t b = bs[k], n = 0;
            es_policy_begin_item(p, 0, 3);
            /* 2, 1, 2, 1, ...: ties and one-vote leads never reach 0.9 */
            for (uint32_t i = 0; i < 2 * b; i++, n++) {
                es_policy_begin_sample(p);
                assert_int_equal(es_policy_end_sample(p, (int32_t)(2 - i % 2), 1, NAN), ES_CONTINUE);
            }
            /* then 1 until the lead is enough: counts (a, b) */
            int rc;
            do {
                es_policy_begin_sample(p);
                rc = es_policy_end_sample(p, 1, 1, NAN);
                n++;
            } while (rc == ES_CONTINUE && n < 1000);
            assert_int_equal(rc, ES_STOP);
            assert_int_equal(n, b + ref[b]);
            assert_int_equal(es_policy_answer(p), 1);
        }
        es_policy_free(p);
    }
}

/* With at most two distinct answers the Dirichlet criterion is the Beta
 * one (upstream's rule): ac-dirichlet stops where ac-beta stops. */
static void test_ac_dirichlet_two_answers(void **state)
{
    es_policy *beta = es_test_policy("ac-beta:threshold=0.9"), *dir = es_test_policy("ac-dirichlet:threshold=0.9");
    int32_t v[60];
    uint32_t stops = 0;
    for (int r = 0; r < 500; r++) {
        int32_t a = (int32_t)es_test_below(4), b = (int32_t)es_test_below(4);
        for (int i = 0; i < 60; i++) v[i] = es_test_below(3) ? a : b;
        uint32_t x = feed(beta, v, 60, 4), y = feed(dir, v, 60, 4);
        assert_int_equal(x, y);
        assert_int_equal(es_policy_answer(beta), es_policy_answer(dir));
        stops += x < 60;
    }
    assert_true(stops > 400);
    es_policy_free(beta);
    es_policy_free(dir);
}

/* ------------------------------------------------------------ within rules */

/* One sample of probes (answers, confidences); returns the 1-based probe at
 * which the policy stopped the sample, 0 if it did not, or an error. */
static int probe_sample(es_policy *p, const int32_t *ans, const float *conf, const float *wconf, uint32_t n)
{
    es_policy_begin_sample(p);
    for (uint32_t i = 0; i < n; i++) {
        int rc = es_policy_probe(p, 100 * (i + 1), ans[i], conf ? conf[i] : NAN, wconf ? wconf[i] : NAN, 0);
        if (rc < 0) return rc;
        if (rc == ES_STOP) return (int)i + 1;
    }
    return 0;
}

/* One within case: probes at 100, 200, ... */
typedef struct within_case {
    const char *spec;
    int32_t ans[8];
    float conf[8];        /* all 0: none given (NaN) */
    uint32_t n;
    int stop;             /* 1-based probe, 0 = never, or the error */
    int32_t sample_answer;
    const char *why;
} within_case;

static const within_case within[] = {
    /* dynasor: k agreeing non-null probes in a row */
    {"dynasor:k=3", {1, 1, NUL, NUL, NUL, 1, 1, 1}, {0}, 8, 8, 1, "nulls never agree"},
    {"dynasor:k=3", {2, 2, 3, 3}, {0}, 4, 0, -1, "no run of 3"},
    {"dynasor:k=3", {NUL, NUL, NUL, NUL}, {0}, 4, 0, -1, "a run of nulls"},
    {"dynasor:k=3", {3, 2, 2, 2}, {0}, 4, 4, 2, "the run, not the first answer"},
    {"dynasor:k=1", {NUL, 4}, {0}, 2, 2, 4, "k=1: the first non-null probe"},
    {"dynasor:k=3,min_tokens=500", {4, 4, 4, 4, 4, 4}, {0}, 6, 5, 4, "min_tokens: not before 500"},
    {"dynasor:k=3,decide=at-probe", {1, 1, 1}, {0}, 3, 3, 1, "the lag is the session's, not the rule's"},
    /* convergence:m=2 = the answer repeated twice after it first appeared */
    {"convergence:m=2", {5, 5, 6, 6, 6}, {0}, 5, 5, 6, "convergence m=2"},
    {"convergence:m=2", {5, 5, 5}, {0}, 3, 3, 5, "convergence, at once"},
    {"convergence:m=1", {NUL, NUL, 2, 2}, {0}, 4, 4, 2, "convergence: not on nulls"},
    /* deer: the first confidence strictly above the threshold, null excluded */
    {"deer:threshold=0.95", {1, NUL, 2, 3}, {0.5f, 0.99f, 0.95f, 0.96f}, 4, 4, 3, "deer: strictly above, not null"},
    {"deer:threshold=0.95,min_tokens=300", {1, 2, 3, 4}, {0.99f, 0.99f, 0.99f, 0.99f}, 4, 3, 3, "deer: min_tokens"},
    {"deer:threshold=0.95", {1, NUL, 2}, {0.5f, NAN, 0.99f}, 3, ES_ENOTSUP, -1, "deer: a probe without confidence"},
    /* budget:tokens: a probe at or past the cap ends the sample */
    {"budget:tokens=250", {1, 2, 3, 4}, {0}, 4, 3, 3, "budget: the probe at 300"},
    {"budget:tokens=200", {1, 2, 3, 4}, {0}, 4, 2, 2, "budget: a probe exactly at the cap"},
};

static void test_within_rules(void **state)
{
    for (size_t c = 0; c < sizeof within / sizeof within[0]; c++) {
        const within_case *k = &within[c];
        es_policy *p = es_test_policy(k->spec);
        assert_int_equal(es_policy_begin_item(p, 1, 10), ES_OK);
        int has_conf = 0;
        for (uint32_t i = 0; i < k->n; i++) has_conf |= k->conf[i] != 0;
        int got = probe_sample(p, k->ans, has_conf ? k->conf : NULL, NULL, k->n);
        if (got != k->stop) fail_msg("%s (%s): stopped at probe %d, want %d", k->spec, k->why, got, k->stop);
        if (got > 0 && es_policy_sample_answer(p) != k->sample_answer)
            fail_msg("%s (%s): sample answer %d, want %d", k->spec, k->why, es_policy_sample_answer(p),
                     k->sample_answer);
        if (got == 0) assert_int_equal(es_policy_sample_answer(p), -1);
        if (got < 0) {
            if (!strstr(es_policy_errmsg(p), "confidence")) fail_msg("errmsg '%s'", es_policy_errmsg(p));
            /* a new item clears the message */
            assert_int_equal(es_policy_begin_item(p, 1, 10), ES_OK);
            assert_string_equal(es_policy_errmsg(p), "");
        }
        /* a new sample starts afresh: a run does not carry over */
        if (got > 0 && strncmp(k->spec, "deer", 4) && !strstr(k->spec, "k=1")) {
            int32_t one[1] = {k->sample_answer};
            assert_int_equal(probe_sample(p, one, NULL, NULL, 1), 0);
        }
        es_policy_free(p);
    }
}

/* budget:tokens counts token events too: the T-th token ends the sample. */
static void test_budget_tokens_events(void **state)
{
    es_policy *p = es_test_policy("budget:tokens=5");
    assert_int_equal(es_policy_begin_item(p, 2, 3), ES_OK);
    for (int s = 0; s < 2; s++) {
        es_policy_begin_sample(p);
        for (int i = 0; i < 4; i++) assert_int_equal(es_policy_token(p, -0.5f, NAN), ES_CONTINUE);
        assert_int_equal(es_policy_token(p, -0.5f, NAN), ES_STOP);
        assert_int_equal(es_policy_end_sample(p, 1, 5, NAN), s ? ES_STOP : ES_CONTINUE);
    }
    es_policy_free(p);
    /* rules without a token hook ignore tokens */
    p = es_test_policy("dynasor");
    assert_int_equal(es_policy_begin_item(p, 1, 3), ES_OK);
    es_policy_begin_sample(p);
    for (int i = 0; i < 100; i++) assert_int_equal(es_policy_token(p, -0.5f, 0.1f), ES_CONTINUE);
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
    const int32_t A = 1, B = 2;
    es_policy *p = es_test_policy("deepconf:warmup=2,eta=50,round=off");
    assert_int_equal(es_policy_begin_item(p, 0, 3), ES_OK);
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
    p = es_test_policy("deepconf:warmup=1,eta=100,vote=count,round=off");
    assert_int_equal(es_policy_begin_item(p, 4, 3), ES_OK);
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
    /* every trace cut or without an answer: no answer (the null answer), as upstream's None */
    assert_int_equal(es_policy_begin_item(p, 2, 3), ES_OK);
    int32_t nq[] = {NUL};
    assert_int_equal(probe_sample(p, nq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, NUL, 10, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, aq, NULL, c1, 1), 1);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_STOP);
    assert_int_equal(es_policy_answer(p), NUL);
    /* no sample of the question carries a confidence: an error that says why */
    assert_int_equal(es_policy_begin_item(p, 2, 3), ES_OK);
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, A, 5, NAN), ES_CONTINUE);
    es_policy_begin_sample(p);
    assert_int_equal(es_policy_end_sample(p, A, 5, NAN), ES_ENOTSUP);
    assert_true(strstr(es_policy_errmsg(p), "confidence") != NULL);
    /* probes without window_confidence: the file has none */
    assert_int_equal(es_policy_begin_item(p, 2, 3), ES_OK);
    assert_int_equal(probe_sample(p, aq, NULL, NULL, 1), ES_ENOTSUP);
    es_policy_free(p);

    /* the paper's consensus stop, as an option: after warm-up, stop once the
     * weighted leader holds `consensus` of the weight */
    p = es_test_policy("deepconf:warmup=2,eta=100,consensus=0.95,round=off");
    assert_int_equal(es_policy_begin_item(p, 0, 3), ES_OK);
    assert_int_equal(probe_sample(p, aq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_CONTINUE);
    assert_int_equal(probe_sample(p, aq, NULL, c9, 1), 0);
    assert_int_equal(es_policy_end_sample(p, A, 10, NAN), ES_STOP); /* unanimous at the end of warm-up */
    es_policy_free(p);

    /* per-token events: groups are full windows (of 2 here); a trace shorter
     * than the window has the mean of all its tokens */
    p = es_test_policy("deepconf:warmup=1,eta=100,window=4,round=off");
    assert_int_equal(es_policy_begin_item(p, 0, 3), ES_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_across_rules),
        cmocka_unit_test(test_ac_beta_step),
        cmocka_unit_test(test_ac_beta_table_on_demand),
        cmocka_unit_test(test_ac_dirichlet_two_answers),
        cmocka_unit_test(test_within_rules),
        cmocka_unit_test(test_budget_tokens_events),
        cmocka_unit_test(test_deepconf_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
