/*
 * test_learn.c - the learning layer: on a toy stopping problem whose
 * optimal rule is known (backward induction by hand), fitted-Q iteration
 * and REINFORCE both find it; the learners and the training states are
 * deterministic (same seed, same bits; any thread count); states from a
 * real file agree with the rule's own features; a whole fit on real
 * traces gives a stopper whose certified operating points hold on the
 * items it was tested on; the shipped stopper equals data/stopper.json;
 * --per-file's fallback holds the budget on each training file.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "earlystop_io.h"
#include "earlystop_learn.h"
#include "learn/learn_int.h"
#include "earlystop_tune.h"
#include "refdata.h"
#include "reftrace.h"
#include "refhalves.h"
#include "testutil.h"

/* ------------------------------------------------------------ the toy */

/* Stopping at step t (0..T-1) is rewarded with probability p[t]; each step
 * costs 0.1 of the full run; at T the episode must stop (p[T]).  With
 * lambda 0.6 a step costs 0.06: going on pays while p rises by more than
 * that, so the optimal rule stops from t = 3 on (p is concave: the myopic
 * rule is the optimal one), with a margin of 0.04 either side. */
enum { T = 6 };
static const double toy_p[T + 1] = {0.3, 0.6, 0.8, 0.9, 0.92, 0.93, 0.935};
static const double toy_lambda = 0.6;

static uint32_t optimal_stop(void)
{
    /* backward induction on the true values */
    double V = toy_p[T];
    uint32_t first = T;
    double cont[T];
    for (int t = T - 1; t >= 0; t--) {
        cont[t] = -toy_lambda * 0.1 + V;
        V = fmax(toy_p[t], cont[t]);
    }
    for (uint32_t t = 0; t < T; t++)
        if (toy_p[t] >= cont[t]) {
            first = t;
            break;
        }
    return first;
}

static void toy_data(lr_data *s, size_t episodes)
{
    memset(s, 0, sizeof *s);
    s->d = T; /* one-hot of t: a linear model is a table */
    assert_int_equal(lr_data_reserve(s, episodes * (T + 1)), ES_OK);
    s->ep = malloc((episodes + 1) * sizeof *s->ep);
    s->ep[0] = 0;
    for (size_t e = 0; e < episodes; e++) {
        for (uint32_t t = 0; t <= T; t++) {
            float *x = s->x + s->n * T;
            for (uint32_t k = 0; k < T; k++) x[k] = t < T && k == t ? 1.0f : 0.0f;
            s->reward[s->n] = es_test_uniform() < toy_p[t] ? 1.0f : 0.0f;
            s->cost[s->n] = 0.1f * (float)t;
            s->kind[s->n] = t == T ? LR_TERMINAL : LR_MAY_STOP;
            s->w[s->n] = 1.0f;
            s->n++;
        }
        s->ep[++s->n_ep] = s->n;
    }
}

/* The first step at which the head's score reaches thr. */
static uint32_t learned_stop(const lr_head *h, double thr)
{
    for (uint32_t t = 0; t < T; t++) {
        float x[T];
        double z[T];
        for (uint32_t k = 0; k < T; k++) x[k] = k == t ? 1.0f : 0.0f;
        lr_norm_apply(&h->nz, x, z);
        if (lr_head_score(h, z) >= thr) return t;
    }
    return T;
}

static void test_fqi_finds_the_optimal_rule(void **state)
{
    (void)state;
    assert_int_equal(optimal_stop(), 3);
    lr_data s;
    toy_data(&s, 20000);
    lr_train tr = {ES_LEARNER_FQI, toy_lambda, 0, 50, 4, 1e-6, 5, 7, NULL, NULL};
    lr_head *h = calloc(1, sizeof *h), *h2 = calloc(1, sizeof *h2);
    es_error err = {0};
    assert_int_equal(lr_train_head(&s, &tr, h, &err), ES_OK);
    assert_int_equal(learned_stop(h, 0.0), optimal_stop());
    /* with no cost, going on never loses: it waits for the end */
    tr.lambda = 0;
    assert_int_equal(lr_train_head(&s, &tr, h2, &err), ES_OK);
    assert_int_equal(learned_stop(h2, 0.0), T);
    /* deterministic: the same seed gives the same bits */
    tr.lambda = toy_lambda;
    assert_int_equal(lr_train_head(&s, &tr, h2, &err), ES_OK);
    assert_memory_equal(h, h2, sizeof *h);
    free(h);
    free(h2);
    lr_data_free(&s);
}

static void test_reinforce_finds_the_optimal_rule(void **state)
{
    (void)state;
    lr_data s;
    toy_data(&s, 20000);
    lr_train tr = {ES_LEARNER_REINFORCE, toy_lambda, 0, 1500, 4, 0, 5, 11, NULL, NULL};
    lr_head *h = calloc(1, sizeof *h), *h2 = calloc(1, sizeof *h2);
    es_error err = {0};
    assert_int_equal(lr_train_head(&s, &tr, h, &err), ES_OK);
    /* the deterministic policy: stop where pi(stop) >= 1/2 */
    assert_int_equal(learned_stop(h, 0.5), optimal_stop());
    assert_int_equal(lr_train_head(&s, &tr, h2, &err), ES_OK);
    assert_memory_equal(h, h2, sizeof *h);
    /* another seed, the same rule */
    tr.seed = 12;
    assert_int_equal(lr_train_head(&s, &tr, h2, &err), ES_OK);
    assert_int_equal(learned_stop(h2, 0.5), optimal_stop());
    free(h);
    free(h2);
    lr_data_free(&s);
}

/* ----------------------------------------------------- real traces */

static es_traceset *load(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/traces/%s", es_ref_data_dir(), name);
    es_traceset *ts = NULL;
    es_error err = {0};
    if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err)) return NULL;
    return ts;
}

/* The states are the same bits on 1 and on 2 threads, and the learned
 * heads too. */
static void test_states_deterministic(void **state)
{
    (void)state;
    es_traceset *ts = load("verifycot_date_gpt35_k10.jsonl");
    if (!ts) skip();
    es_tune_data *d;
    assert_int_equal(es_tune_data_new(&d), ES_OK);
    assert_int_equal(es_tune_data_add(d, ts, "verifycot"), ES_OK);
    uint32_t feat[ES_STOPPER_MAX_INPUTS], nf;
    es_error err = {0};
    assert_int_equal(lr_parse_features(es_learn_default_features(ES_AT_ACROSS), ES_AT_ACROSS, feat, &nf, &err), ES_OK);
    lr_build b = {ES_AT_ACROSS, 0, feat, nf, ES_REWARD_AGREE, 2, 1, 3, ES_PROBE_COST_FIELD, 5, 1};
    lr_data s1, s2;
    assert_int_equal(lr_build_states(d, NULL, &b, &s1, &err), ES_OK);
    b.threads = 2;
    assert_int_equal(lr_build_states(d, NULL, &b, &s2, &err), ES_OK);
    assert_int_equal(s1.n, s2.n);
    assert_true(s1.n > 1000);
    assert_int_equal(s1.n_ep, 369 * 3);
    assert_memory_equal(s1.x, s2.x, s1.n * s1.d * sizeof(float));
    assert_memory_equal(s1.reward, s2.reward, s1.n * sizeof(float));
    assert_memory_equal(s1.kind, s2.kind, s1.n);
    /* every episode ends in a terminal state, worth 1 under `agree` when every sample is in */
    for (size_t e = 0; e < s1.n_ep; e++) {
        size_t last = s1.ep[e + 1] - 1;
        assert_true(s1.kind[last] & LR_TERMINAL);
        for (size_t i = s1.ep[e]; i < last; i++) assert_false(s1.kind[i] & LR_TERMINAL);
    }
    lr_train tr = {ES_LEARNER_FQI, 0.03, 0, 10, 2, 1e-3, 5, 3, NULL, NULL};
    lr_head *h1 = calloc(1, sizeof *h1), *h2 = calloc(1, sizeof *h2);
    assert_int_equal(lr_train_head(&s1, &tr, h1, &err), ES_OK);
    assert_int_equal(lr_train_head(&s2, &tr, h2, &err), ES_OK);
    assert_memory_equal(h1, h2, sizeof *h1);
    free(h1);
    free(h2);
    lr_data_free(&s1);
    lr_data_free(&s2);
    es_tune_data_free(d);
    es_traceset_free(ts);
}

/* A fit on real traces, saved and loaded: the same figures on 1 and 2
 * threads, and every certified budget holds where it was tested. */
static void test_fit_real(void **state)
{
    (void)state;
    es_traceset *a = load("mot_gpt35_date_cot1.jsonl"), *b = load("verifycot_date_gpt35_k10.jsonl");
    if (!a || !b) {
        es_traceset_free(a);
        es_traceset_free(b);
        skip();
    }
    es_tune_data *d;
    assert_int_equal(es_tune_data_new(&d), ES_OK);
    assert_int_equal(es_tune_data_add(d, a, "mot_gpt35_date_cot1.jsonl"), ES_OK);
    assert_int_equal(es_tune_data_add(d, b, "verifycot_date_gpt35_k10.jsonl"), ES_OK);
    es_learn_opts o;
    es_learn_opts_init(&o);
    o.threads = 1;
    o.tune.shuffles = 4;
    o.budgets[0] = 1.0;
    o.budgets[1] = 3.0;
    o.n_budgets = 2;
    o.lambdas[0] = 0.03;
    o.lambdas[1] = 0.3;
    o.n_lambdas = 2;
    es_learn_result r1, r2;
    es_error err = {0};
    if (es_learn_fit(d, &o, &r1, &err)) fail_msg("%s", err.msg);
    o.threads = 2;
    if (es_learn_fit(d, &o, &r2, &err)) fail_msg("%s", err.msg);
    assert_true(r1.lambda == r2.lambda);
    for (size_t k = 0; k < r1.n_points; k++) {
        assert_true(r1.points[k].threshold == r2.points[k].threshold);
        assert_int_equal(r1.points[k].certified, r2.points[k].certified);
    }
    assert_true(r1.points[1].certified);
    double x[64];
    for (uint32_t i = 0; i < es_feature_count(); i++) x[i] = 0.5;
    double s1 = es_stopper_score(r1.stopper, ES_AT_ACROSS, x), s2 = es_stopper_score(r2.stopper, ES_AT_ACROSS, x);
    assert_memory_equal(&s1, &s2, sizeof s1);
    /* the stopper at its certified budget loses at most that on the whole data (its test half is half of it) */
    es_policy *p;
    assert_int_equal(es_policy_new_stopper("learned:max_em_drop=3", r1.stopper, &p, &err), ES_OK);
    es_tune_eval e;
    es_tune_opts to;
    es_tune_opts_init(&to);
    to.shuffles = 4;
    assert_int_equal(es_tune_evaluate_policy(d, p, &to, &e, &err), ES_OK);
    assert_true(e.d_em > -0.03 - 0.02);
    assert_true(e.p.tokens < e.p.tokens / e.p.share); /* it saves tokens */
    es_policy_free(p);
    es_learn_result_free(&r1);
    es_learn_result_free(&r2);
    es_tune_data_free(d);
    es_traceset_free(a);
    es_traceset_free(b);
}

/* --per-file's fallback: where nothing is certified on every file, the
 * point chosen on the training items keeps each file's loss there within
 * the budget, where the pooled choice (the cheapest point whose pooled
 * training loss is within it) lets one file lose more.  Real files, one
 * order, the tuner's ac-beta family: what lr_tune_choose does for the
 * learner and the leave-one-file-out tuned rule alike. */
static void test_per_file_fallback(void **state)
{
    (void)state;
    static const char *const files[] = {"cotuq_llama31_8b_cod_asdiv_k5", "mot_gpt35_date_cot1_40"};
    es_ref_halves sp;
    es_tune_opts o;
    es_ref_halves_load(&sp, files, 2, 0, &o);
    es_tune_data *cal = sp.cal, **train = sp.part;
    const double budget = 1.0; /* points: the date file's ~184 test items cannot certify it */
    o.max_em_drop = budget / 100;
    es_error err;
    /* pooled: the cheapest candidate within the budget on the pooled training items */
    es_tune *t;
    assert_int_equal(es_tune_new(cal, &o, &t, &err), ES_OK);
    assert_int_equal(es_tune_add_family(t, "ac-beta", &err), ES_OK);
    es_tune_run(t, &err);
    es_tune_point pooled = {0};
    int have = 0;
    for (size_t i = 0; i < es_tune_n_tested(t); i++) {
        const es_tune_point *p = es_tune_tested(t, i);
        if (p->loss <= o.max_em_drop && (!have || p->cost < pooled.cost)) pooled = *p, have = 1;
    }
    es_tune_free(t);
    assert_true(have);
    /* per file: what the learner's Learn-then-Test takes */
    o.per_file = 1;
    assert_int_equal(es_tune_new(cal, &o, &t, &err), ES_OK);
    assert_int_equal(es_tune_add_family(t, "ac-beta", &err), ES_OK);
    es_tune_point chosen;
    int cert;
    assert_int_equal(lr_tune_choose(t, budget, &chosen, &cert, &err), ES_OK);
    assert_int_equal(cert, -1); /* nothing certified on every file; a point within the budget on each */
    double worst_pooled = 0, worst_chosen = 0;
    es_tune_opts po = o;
    po.per_file = 0;
    for (int f = 0; f < 2; f++) {
        es_tune_eval a, b;
        assert_int_equal(es_tune_evaluate(train[f], chosen.spec, &po, &a, &err), ES_OK);
        assert_int_equal(es_tune_evaluate(train[f], pooled.spec, &po, &b, &err), ES_OK);
        print_message("%s training items: per-file choice loses %.2f pt, pooled choice %.2f pt\n", files[f],
                      100 * a.p.loss, 100 * b.p.loss);
        assert_true(a.p.loss <= o.max_em_drop + 1e-12);
        worst_chosen = fmax(worst_chosen, a.p.loss);
        worst_pooled = fmax(worst_pooled, b.p.loss);
    }
    /* the front point's loss is its worst file's, exactly */
    assert_true(fabs(chosen.loss - worst_chosen) < 1e-12);
    assert_true(worst_pooled > o.max_em_drop); /* the pooled choice breaks the budget on one file */
    print_message("per-file fallback: %s; pooled: %s\n", chosen.spec, pooled.spec);
    es_tune_free(t);
    es_ref_halves_free(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fqi_finds_the_optimal_rule),
        cmocka_unit_test(test_reinforce_finds_the_optimal_rule),
        cmocka_unit_test(test_states_deterministic),
        cmocka_unit_test(test_fit_real),
        cmocka_unit_test(test_per_file_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
