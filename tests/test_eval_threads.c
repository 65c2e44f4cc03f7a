/*
 * test_eval_threads.c - the threaded replay (src/replay/threads.c):
 * es_eval_threads, each thread on a clone of the prototype policy.
 *
 * The orders are cut into chunks that threads take in turn; sums are
 * integers, so the result must be the same bytes for any thread count,
 * including more threads than chunks or cores, and a failing policy must
 * report the same item whatever the thread count; and the sums are those of
 * es_eval_policy on one session, no threads.  The traces are made up
 * here (votes drawn from a fixed generator), so nothing depends on
 * ../shared.
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

#include "earlystop_io.h"

enum { ITEMS = 120, SAMPLES = 12 };

static const char *const answers[] = {"a", "b", "c", "d", NULL};

/* ITEMS items of SAMPLES votes; with probes (one without a confidence in
 * item `noconf`, -1 for none) when `probes` is set. */
static es_traceset *make_set(int probes, int noconf)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < ITEMS; i++) {
        es_sample s[SAMPLES];
        es_probe pr[SAMPLES][2];
        for (int k = 0; k < SAMPLES; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* skewed votes: "a" wins most items, not all */
            const char *a = answers[(x % 10) < 5 ? 0 : (x % 5)];
            s[k] = (es_sample){.answer = a, .tokens = (uint32_t)(50 + x % 200), .confidence = NAN};
            if (probes) {
                double c = i == noconf && k == SAMPLES - 1 ? NAN : 0.5 + 0.4 * (double)(x % 2);
                pr[k][0] = (es_probe){.at = 10, .answer = answers[x % 4], .confidence = c,
                                      .window_confidence = NAN, .cost = 3};
                pr[k][1] = (es_probe){.at = 30, .answer = a, .confidence = c, .window_confidence = NAN, .cost = 3};
                s[k].probes = pr[k];
                s[k].n_probes = 2;
            }
        }
        char id[16];
        snprintf(id, sizeof id, "q%03d", i);
        const char *gold[] = {"a"};
        es_item it = {.id = id, .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold,
                      .n_samples = SAMPLES, .samples = s};
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    return ts;
}

static es_policy *policy(const char *spec)
{
    es_policy *p = NULL;
    es_error err = {0};
    if (es_policy_new(spec, &p, &err)) fail_msg("%s: %s", spec, err.msg);
    return p;
}

/* The one-thread reference: es_eval_policy on a session of its own. */
static void eval_direct(const es_traceset *ts, const es_policy *proto, uint64_t seed, uint32_t shuffles,
                        es_eval_acc *acc)
{
    es_policy *p = NULL;
    es_session *s = NULL;
    assert_int_equal(es_policy_clone(proto, &p, NULL), ES_OK);
    assert_int_equal(es_session_new(p, &s), ES_OK);
    assert_int_equal(es_eval_policy(ts, s, seed, 0, shuffles, ES_PROBE_COST_FIELD, acc, NULL), ES_OK);
    es_session_free(s);
    es_policy_free(p);
}

static void test_same_sums_any_thread_count(void **state)
{
    es_traceset *ts = make_set(1, -1);
    static const char *const specs[] = {"ac-beta", "esc:window=3", "dynasor:k=2+majority", "deer"};
    static const uint32_t shuffles[] = {0, 1, 7, 50};
    static const int threads[] = {1, 2, 3, 5, 16, 0};
    es_eval_acc ref[ITEMS], acc[ITEMS];
    for (size_t p = 0; p < sizeof specs / sizeof specs[0]; p++) {
        es_policy *proto = policy(specs[p]);
        for (size_t s = 0; s < sizeof shuffles / sizeof shuffles[0]; s++) {
            /* the reference: one session, no threads */
            memset(ref, 0, sizeof ref);
            eval_direct(ts, proto, 11, shuffles[s], ref);
            for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
                memset(acc, 0, sizeof acc);
                es_error err = {0};
                int rc = es_eval_threads(ts, proto, 11, shuffles[s], threads[t], ES_PROBE_COST_FIELD, acc, &err);
                if (rc) fail_msg("%s, %u shuffles, %d threads: %s", specs[p], shuffles[s], threads[t], err.msg);
                assert_memory_equal(acc, ref, sizeof ref);
            }
        }
        es_policy_free(proto);
    }
    /* and the sums are real: every item drew at least one sample per order */
    es_policy *full = policy("full");
    memset(acc, 0, sizeof acc);
    assert_int_equal(es_eval_threads(ts, full, 1, 7, 2, 0, acc, NULL), ES_OK);
    for (int i = 0; i < ITEMS; i++) assert_int_equal(acc[i].samples, 7 * SAMPLES);
    /* sums are added to what acc holds */
    assert_int_equal(es_eval_threads(ts, full, 1, 7, 3, 0, acc, NULL), ES_OK);
    for (int i = 0; i < ITEMS; i++) assert_int_equal(acc[i].samples, 2 * 7 * SAMPLES);
    es_policy_free(full);
    es_traceset_free(ts);
}

/* Every thread replays a clone of the prototype: a parameter moved on the
 * prototype (es_policy_set_param) reaches all of them, and the result is
 * the one of a policy made with that value from a spec. */
static void test_threads_clone_the_prototype(void **state)
{
    es_traceset *ts = make_set(0, -1);
    es_policy *moved = policy("ac-beta"), *fresh = policy("ac-beta:threshold=0.6"), *dflt = policy("ac-beta");
    assert_int_equal(es_policy_set_param(moved, "threshold", 0.6, NULL), ES_OK);
    es_eval_acc a[ITEMS], b[ITEMS], c[ITEMS];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(c, 0, sizeof c);
    assert_int_equal(es_eval_threads(ts, moved, 5, 20, 4, 0, a, NULL), ES_OK);
    assert_int_equal(es_eval_threads(ts, fresh, 5, 20, 1, 0, b, NULL), ES_OK);
    assert_int_equal(es_eval_threads(ts, dflt, 5, 20, 4, 0, c, NULL), ES_OK);
    assert_memory_equal(a, b, sizeof a);
    uint64_t sa = 0, sc = 0;
    for (int i = 0; i < ITEMS; i++) {
        sa += a[i].samples;
        sc += c[i].samples;
    }
    assert_true(sa < sc); /* the lower threshold stops sooner: the move was not lost */
    es_policy_free(moved);
    es_policy_free(fresh);
    es_policy_free(dflt);
    es_traceset_free(ts);
}

/* deer on a probe without confidence fails; the error names the item and
 * the policy, the same for every thread count (the first failing chunk). */
static void test_same_error_any_thread_count(void **state)
{
    es_traceset *ts = make_set(1, 77);
    es_policy *deer = policy("deer");
    char first[512] = "";
    static const int threads[] = {1, 2, 4, 16};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        es_eval_acc acc[ITEMS];
        memset(acc, 0, sizeof acc);
        es_error err = {0};
        int rc = es_eval_threads(ts, deer, 3, 40, threads[t], ES_PROBE_COST_FIELD, acc, &err);
        assert_int_not_equal(rc, ES_OK);
        assert_int_equal(err.code, rc);
        if (!strstr(err.msg, "q077") || !strstr(err.msg, "deer")) fail_msg("message '%s'", err.msg);
        if (t == 0) snprintf(first, sizeof first, "%s", err.msg);
        assert_string_equal(err.msg, first);
    }
    /* the file order on threads fails the same way; err may be NULL */
    es_eval_acc acc[ITEMS];
    memset(acc, 0, sizeof acc);
    assert_int_not_equal(es_eval_threads(ts, deer, 3, 0, 4, ES_PROBE_COST_FIELD, acc, NULL), ES_OK);
    es_policy_free(deer);
    es_traceset_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_sums_any_thread_count),
        cmocka_unit_test(test_threads_clone_the_prototype),
        cmocka_unit_test(test_same_error_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
