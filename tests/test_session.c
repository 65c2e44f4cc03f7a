/*
 * test_session.c - the event protocol (src/core/session.c): one copy of it
 * drives a policy for the replay, the live loop and the serving proxy, so
 * it is tested here on its own, with the calls a generator makes:
 *  - which probes are made (none without a within rule, none past the
 *    token limit);
 *  - the probe lag (Dynasor's timing): a probe is read when the sample
 *    reaches the next probe point, and a stop then ends the sample at that
 *    point without making its probe; the last probe of a sample that ends
 *    first is never read;
 *  - what a stopped sample answers and where it ends;
 *  - budget forcing: a sample cut at the token limit answers the last probe
 *    made at or before the limit, the null answer when there was none;
 *  - the accounting (samples, rounds, probes and their cost, tokens), and
 *    that nothing allocates per event.
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
#include "alloc_count.h"
#include "testutil.h"

enum { NUL = ES_NULL_ANSWER, A = 1, B, C, D };

/* One sample as a generator reports it: probe points at[i] with the probe
 * answers it would give there, then its own end. */
typedef struct script {
    uint32_t n;
    uint32_t at[8];
    int32_t ans[8];
    float conf[8];            /* the probe's confidence and window confidence; 0: NaN */
    int32_t own_answer;
    uint32_t own_tokens;
    int complete;             /* 1: ended by itself; 0: the caller cut it at the limit */
} script;

/* What happened: probes made, the end_sample verdict, the settled answer
 * and tokens. */
typedef struct seen {
    uint32_t made;
    int rc;
    int32_t answer;
    uint32_t tokens;
} seen;

/* ... with `tokens` token events (no confidence) before the probes */
static seen run_sample_tokens(es_session *s, const script *k, uint32_t cost, uint32_t tokens)
{
    seen r = {0, 0, -2, 0};
    es_session_begin_sample(s);
    for (uint32_t t = 0; t < tokens; t++) es_session_token(s, -0.2f, NAN);
    for (uint32_t i = 0; i < k->n; i++) {
        if (es_session_reach(s, k->at[i]) == ES_STOP) break;
        r.made++;
        float conf = k->conf[i] != 0 ? k->conf[i] : NAN;
        int rc = es_session_probe(s, k->at[i], k->ans[i], conf, conf, 0, cost);
        if (rc < 0) {
            r.rc = rc;
            return r;
        }
        if (rc == ES_STOP) break;
    }
    r.rc = es_session_end_sample(s, k->own_answer, k->own_tokens, NAN, k->complete);
    es_session_last_sample(s, &r.answer, &r.tokens);
    return r;
}

static seen run_sample(es_session *s, const script *k, uint32_t cost)
{
    return run_sample_tokens(s, k, cost, 0);
}

/* ---------------------------------------------------------- which probes */

static void test_no_within_rule_no_probes(void **state)
{
    static const char *const specs[] = {"full", "ac-beta", "esc:window=2", "budget:samples=3"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        es_test_pol c = es_test_pol_new(specs[i]);
        assert_int_equal(es_session_info(c.s)->has_within, 0);
        assert_int_equal(es_session_begin_item(c.s, 3, 4), ES_OK);
        script k = {3, {10, 20, 30}, {A, A, A}, {0}, B, 40, 1};
        seen r = run_sample(c.s, &k, 5);
        /* the first probe point already says: make no probe */
        assert_int_equal(r.made, 0);
        assert_int_equal(r.answer, B);
        assert_int_equal(r.tokens, 40);
        const es_outcome *o = es_session_end_item(c.s);
        assert_int_equal(o->probes, 0);
        assert_int_equal(o->probe_tokens, 0);
        assert_int_equal(o->tokens, 40);
        es_test_pol_free(&c);
    }
}

/* ------------------------------------------------- stops inside a sample */

typedef struct within_case {
    const char *spec;
    script k;
    uint32_t made;            /* probes made */
    int32_t answer;           /* the sample's settled answer */
    uint32_t tokens;          /* and where it ended */
    const char *why;
} within_case;

static const within_case within[] = {
    /* Dynasor's timing (decide=after-chunk): the probe at 10 is read on
     * reaching 20, the one at 20 on reaching 30, where the run of 2 ends the
     * sample before its probe is made */
    {"dynasor:k=2", {4, {10, 20, 30, 40}, {A, A, A, B}, {0}, C, 50, 1}, 2, A, 30, "lag: stop at the reach point, no probe"},
    {"dynasor:k=2", {4, {10, 20, 30, 40}, {A, B, B, B}, {0}, C, 50, 1}, 3, B, 40, "lag: the run read on reaching 40"},
    /* the last probe of a sample that ends first is never read */
    {"dynasor:k=2", {2, {10, 20}, {A, A}, {0}, C, 25, 1}, 2, C, 25, "lag: the last probe unread"},
    /* decide=at-probe: read at once, the sample ends at the probe */
    {"dynasor:k=2,decide=at-probe", {4, {10, 20, 30, 40}, {A, A, A, B}, {0}, C, 50, 1}, 2, A, 20, "at-probe"},
    {"dynasor:k=2,decide=at-probe", {3, {10, 20, 30}, {NUL, NUL, NUL}, {0}, C, 50, 1}, 3, C, 50, "null runs never stop"},
    {"convergence:m=1", {3, {10, 20, 30}, {B, A, A}, {0}, C, 50, 1}, 3, A, 30, "convergence"},
    /* deer: the first confident non-null probe */
    {"deer:threshold=0.9", {3, {10, 20, 30}, {A, NUL, B}, {0.5f, 0.99f, 0.95f}, C, 50, 1}, 3, B, 30, "deer"},
};

static void test_within_stops(void **state)
{
    for (size_t i = 0; i < sizeof within / sizeof within[0]; i++) {
        const within_case *w = &within[i];
        es_test_pol c = es_test_pol_new(w->spec);
        assert_int_equal(es_session_begin_item(c.s, 1, 5), ES_OK);
        seen r = run_sample(c.s, &w->k, 3);
        if (r.made != w->made || r.answer != w->answer || r.tokens != w->tokens)
            fail_msg("%s (%s): %u probes, answer %d at %u tokens; want %u, %d at %u", w->spec, w->why, r.made,
                     r.answer, r.tokens, w->made, w->answer, w->tokens);
        assert_int_equal(r.rc, ES_STOP); /* one sample: the implicit `full` is done */
        const es_outcome *o = es_session_end_item(c.s);
        assert_int_equal(o->samples, 1);
        assert_int_equal(o->probes, w->made);
        assert_int_equal(o->probe_tokens, 3 * w->made);
        assert_int_equal(o->tokens, w->tokens);
        assert_int_equal(o->answer, w->answer);
        es_test_pol_free(&c);
    }
}

/* A lagged read is per sample: a probe made at the end of one sample is not
 * read in the next. */
static void test_lag_does_not_cross_samples(void **state)
{
    es_test_pol c = es_test_pol_new("dynasor:k=2+full");
    assert_int_equal(es_session_begin_item(c.s, 2, 5), ES_OK);
    script k1 = {2, {10, 20}, {A, A}, {0}, B, 25, 1};
    seen r = run_sample(c.s, &k1, 0);
    assert_int_equal(r.answer, B); /* the probe at 20 never read */
    /* next sample: if the held probe at 20 were read on reaching 10, the run
     * A, A would stop it there */
    script k2 = {2, {10, 20}, {A, C}, {0}, D, 30, 1};
    r = run_sample(c.s, &k2, 0);
    assert_int_equal(r.answer, D);
    assert_int_equal(r.tokens, 30);
    assert_int_equal(r.made, 2);
    es_test_pol_free(&c);
}

/* ----------------------------------------------------------- budget forcing */

typedef struct budget_case {
    script k;
    uint32_t made;
    int32_t answer;
    uint32_t tokens;
    const char *why;
} budget_case;

/* budget:tokens=50; probe points every 10 or 20 tokens */
static const budget_case budget[] = {
    {{3, {20, 40, 60}, {A, B, C}, {0}, D, 100, 1}, 2, B, 50, "a recorded longer trace: the last probe before the cap"},
    {{3, {20, 40, 60}, {A, B, C}, {0}, D, 50, 0}, 2, B, 50, "live: cut at the cap"},
    {{2, {20, 40}, {A, NUL}, {0}, D, 100, 1}, 2, NUL, 50, "the last probe said nothing"},
    {{1, {60}, {C}, {0}, D, 100, 1}, 0, NUL, 50, "no probe before the cap: null"},
    {{0, {0}, {0}, {0}, D, 50, 0}, 0, NUL, 50, "no probes at all: null"},
    {{3, {20, 50, 60}, {A, B, C}, {0}, D, 100, 1}, 2, B, 50, "a probe exactly at the cap"},
    {{2, {20, 40}, {A, B}, {0}, D, 45, 1}, 2, D, 45, "ended by itself before the cap: its own answer"},
    {{2, {20, 40}, {A, B}, {0}, D, 50, 1}, 2, D, 50, "ended by itself exactly at the cap"},
    {{2, {20, 40}, {A, B}, {0}, D, 51, 1}, 2, B, 50, "one token past the cap"},
};

static void test_budget_forcing(void **state)
{
    es_test_pol c = es_test_pol_new("budget:tokens=50");
    assert_int_equal(es_session_info(c.s)->token_limit, 50);
    assert_int_equal(es_session_info(c.s)->has_within, 1);
    for (size_t i = 0; i < sizeof budget / sizeof budget[0]; i++) {
        const budget_case *b = &budget[i];
        assert_int_equal(es_session_begin_item(c.s, 1, 5), ES_OK);
        seen r = run_sample(c.s, &b->k, 4);
        if (r.made != b->made || r.answer != b->answer || r.tokens != b->tokens)
            fail_msg("case %zu (%s): %u probes, answer %d at %u; want %u, %d at %u", i, b->why, r.made, r.answer,
                     r.tokens, b->made, b->answer, b->tokens);
        const es_outcome *o = es_session_end_item(c.s);
        assert_int_equal(o->answer, b->answer);
        assert_int_equal(o->tokens, b->tokens);
        assert_int_equal(o->probe_tokens, 4 * b->made);
    }
    es_test_pol_free(&c);
    /* per-token events: the T-th token ends the sample, which answers the
     * last probe read (null without one) */
    c = es_test_pol_new("budget:tokens=6");
    assert_int_equal(es_session_begin_item(c.s, 2, 5), ES_OK);
    for (int s = 0; s < 2; s++) {
        es_session_begin_sample(c.s);
        int rc = ES_CONTINUE;
        uint32_t t = 0;
        while (rc == ES_CONTINUE) {
            rc = es_session_token(c.s, -0.1f, NAN);
            t++;
            if (t == 3 && s == 1) {
                assert_int_equal(es_session_reach(c.s, 3), ES_CONTINUE);
                assert_int_equal(es_session_probe(c.s, 3, C, NAN, NAN, 0, 1), ES_CONTINUE);
            }
        }
        assert_int_equal(t, 6);
        es_session_end_sample(c.s, D, t, NAN, 0);
        int32_t a;
        uint32_t n;
        es_session_last_sample(c.s, &a, &n);
        assert_int_equal(a, s ? C : NUL);
        assert_int_equal(n, 6);
    }
    assert_int_equal(es_session_end_item(c.s)->tokens, 12);
    es_test_pol_free(&c);
}

/* A token-driven stop (deepconf on per-token confidences) ends the sample
 * where the caller stops, answering the last probe read. */
static void test_token_stop(void **state)
{
    es_test_pol c = es_test_pol_new("deepconf:warmup=1,eta=100,window=2,round=off");
    assert_int_equal(es_session_begin_item(c.s, 3, 5), ES_OK);
    /* warm-up: confidences 1.0, the threshold is 1.0 */
    es_session_begin_sample(c.s);
    for (int i = 0; i < 4; i++) assert_int_equal(es_session_token(c.s, -0.1f, 1.0f), ES_CONTINUE);
    assert_int_equal(es_session_end_sample(c.s, A, 4, NAN, 1), ES_CONTINUE);
    /* then a probe (B) and a group below the threshold */
    es_session_begin_sample(c.s);
    assert_int_equal(es_session_token(c.s, -0.1f, 1.0f), ES_CONTINUE);
    assert_int_equal(es_session_token(c.s, -0.1f, 1.0f), ES_CONTINUE);
    assert_int_equal(es_session_reach(c.s, 2), ES_CONTINUE);
    assert_int_equal(es_session_probe(c.s, 2, B, NAN, NAN, 0, 0), ES_CONTINUE);
    /* the group (1.0 + 0.5) / 2 is below 1.0 */
    assert_int_equal(es_session_token(c.s, -0.1f, 0.5f), ES_STOP);
    es_session_end_sample(c.s, C, 3, NAN, 0);
    int32_t a;
    uint32_t n;
    es_session_last_sample(c.s, &a, &n);
    assert_int_equal(a, B);
    assert_int_equal(n, 3);
    /* the same without a probe: the null answer */
    es_session_begin_sample(c.s);
    assert_int_equal(es_session_token(c.s, -0.1f, 0.25f), ES_CONTINUE);
    assert_int_equal(es_session_token(c.s, -0.1f, 0.25f), ES_STOP);
    es_session_end_sample(c.s, C, 2, NAN, 0);
    es_session_last_sample(c.s, &a, &n);
    assert_int_equal(a, NUL);
    assert_int_equal(n, 2);
    const es_outcome *o = es_session_end_item(c.s);
    assert_int_equal(o->samples, 3);
    assert_int_equal(o->tokens, 4 + 3 + 2);
    assert_int_equal(o->answer, A); /* the cut traces do not vote */
    es_test_pol_free(&c);
}

/* ------------------------------------------------------------- accounting */

static void test_accounting(void **state)
{
    /* dynasor (at the probe) inside, esc:window=2 across: 4 samples, 2 rounds */
    es_test_pol c = es_test_pol_new("dynasor:k=2,decide=at-probe+esc:window=2");
    for (int round = 0; round < 2; round++) { /* a second question starts from zero */
        assert_int_equal(es_session_begin_item(c.s, 6, 5), ES_OK);
        static const script k[] = {
            {3, {10, 20, 30}, {A, A, A}, {0}, A, 35, 1},   /* stopped at 20: A, 2 probes */
            {2, {10, 20}, {B, C}, {0}, B, 25, 1},          /* whole: B, 2 probes */
            {3, {10, 20, 30}, {C, C, C}, {0}, D, 40, 1},   /* stopped at 20: C, 2 probes */
            {1, {10}, {C}, {0}, C, 12, 1},                 /* whole: C, 1 probe -> window C, C */
        };
        static const int32_t ans[] = {A, B, C, C};
        static const uint32_t tok[] = {20, 25, 20, 12};
        for (int i = 0; i < 4; i++) {
            seen r = run_sample(c.s, &k[i], 7);
            assert_int_equal(r.answer, ans[i]);
            assert_int_equal(r.tokens, tok[i]);
            assert_int_equal(r.rc, i == 3 ? ES_STOP : ES_CONTINUE);
        }
        const es_outcome *o = es_session_end_item(c.s);
        assert_int_equal(o->samples, 4);
        assert_int_equal(o->rounds, 2);
        assert_int_equal(o->probes, 7);
        assert_int_equal(o->probe_tokens, 7 * 7);
        assert_int_equal(o->tokens, 20 + 25 + 20 + 12);
        assert_int_equal(o->answer, C);
    }
    es_test_pol_free(&c);
    /* es_session_sample: a sample without probes in one call */
    c = es_test_pol_new("ac-beta");
    assert_int_equal(es_session_begin_item(c.s, 0, 3), ES_OK);
    int rc = ES_CONTINUE;
    uint32_t n = 0;
    while (rc == ES_CONTINUE) rc = es_session_sample(c.s, B, 11, NAN), n++;
    assert_int_equal(rc, ES_STOP);
    const es_outcome *o = es_session_end_item(c.s);
    assert_int_equal(o->samples, n);
    assert_int_equal(o->rounds, n);
    assert_int_equal(o->tokens, 11 * n);
    assert_int_equal(o->answer, B);
    /* an answer id beyond the question's is an error, not a vote */
    assert_int_equal(es_session_begin_item(c.s, 0, 3), ES_OK);
    assert_int_equal(es_session_sample(c.s, 3, 11, NAN), ES_EINVAL);
    es_test_pol_free(&c);
    es_session *s = (es_session *)&s;
    assert_int_equal(es_session_new(NULL, &s), ES_EINVAL);
    assert_null(s);
    es_session_free(NULL);
}

/* A rule that cannot decide on what it is fed says so through the session. */
static void test_errors(void **state)
{
    es_test_pol c = es_test_pol_new("deer");
    assert_int_equal(es_session_begin_item(c.s, 1, 5), ES_OK);
    script k = {2, {10, 20}, {A, B}, {0.5f, 0}, C, 30, 1};
    seen r = run_sample(c.s, &k, 1);
    assert_int_equal(r.rc, ES_ENOTSUP);
    assert_non_null(strstr(es_policy_errmsg(c.p), "confidence"));
    es_test_pol_free(&c);
}

/* Nothing allocates after es_session_new and the first question: many
 * questions of every kind of rule, counted. */
static void test_no_allocation_per_event(void **state)
{
    if (!es_alloc_counting()) {
        print_message("allocations not counted in this build (sanitizer): skipping\n");
        skip();
    }
    static const char *const specs[] = {"full", "ac-beta", "ac-dirichlet", "majority", "entropy", "esc:window=3",
                                        "budget:samples=4,tokens=45", "dynasor:k=2+ac-beta", "convergence+esc",
                                        "deer:threshold=0.9+majority", "deepconf:warmup=3,round=off"};
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        es_test_pol c = es_test_pol_new(specs[i]);
        long allocs = 0;
        for (int item = 0; item < 300; item++) {
            if (item == 1) es_alloc_begin(); /* the first question sizes the buffers */
            assert_int_equal(es_session_begin_item(c.s, 12, 6), ES_OK);
            int rc = ES_CONTINUE;
            for (int s = 0; s < 12 && rc == ES_CONTINUE; s++) {
                script k = {4, {10, 20, 30, 40}, {0}, {0}, 0, 50, 1};
                for (int j = 0; j < 4; j++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    k.ans[j] = (int32_t)(x % 6);
                    k.conf[j] = 0.5f + (float)(x % 50) / 100.0f;
                }
                k.own_answer = (int32_t)(x % 3);
                seen r = run_sample_tokens(c.s, &k, 2, 5);
                rc = r.rc;
                if (rc != ES_CONTINUE && rc != ES_STOP)
                    fail_msg("%s: item %d sample %d: %d %s", specs[i], item, s, rc, es_policy_errmsg(c.p));
            }
            es_session_end_item(c.s);
        }
        allocs = es_alloc_end();
        if (allocs) fail_msg("%s: %ld allocations over 299 questions", specs[i], allocs);
        es_test_pol_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_within_rule_no_probes),
        cmocka_unit_test(test_within_stops),
        cmocka_unit_test(test_lag_does_not_cross_samples),
        cmocka_unit_test(test_budget_forcing),
        cmocka_unit_test(test_token_stop),
        cmocka_unit_test(test_accounting),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_allocation_per_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
