/*
 * test_tune.c - the tuning layer on real traces: the exact sweep against a
 * brute-force replay at grid points, the fronts, and Learn-then-Test's
 * guarantee over random calibration/test splits.
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

#include "earlystop_io.h"
#include "earlystop_tune.h"
#include "refdata.h"
#include "reftrace.h"
#include "refhalves.h"
#include "tune/tune_int.h" /* and risk.h: es_pvalue_binomial */

/* Brute force: the policy `spec` replayed on every item of ts in orders
 * 0..R-1 as eval replays them; sums of correct answers and tokens. */
static void brute(const es_traceset *ts, const char *spec, uint32_t R, uint64_t seed, uint64_t *correct,
                  uint64_t *tokens)
{
    es_policy *p;
    es_session *s;
    es_error err;
    if (es_policy_new(spec, &p, &err)) fail_msg("%s: %s", spec, err.msg);
    assert_int_equal(es_session_new(p, &s), ES_OK);
    *correct = *tokens = 0;
    uint32_t order[512];
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_item_view v;
        es_traceset_item(ts, i, &v);
        for (uint32_t r = 0; r < R; r++) {
            es_shuffle_order(seed, r, (uint32_t)i, v.n_samples, order);
            es_outcome o;
            assert_int_equal(es_replay_item(s, &v, order, ES_PROBE_COST_FIELD, &o), ES_OK);
            *correct += o.correct;
            *tokens += o.tokens + o.probe_tokens;
        }
    }
    es_session_free(s);
    es_policy_free(p);
}

typedef struct at_ctx {
    tn_sum got[16];
} at_ctx;

static int record(void *ctx, size_t i, const int32_t *loss, const tn_sum *sum, const tn_out *cur)
{
    (void)loss;
    (void)cur;
    ((at_ctx *)ctx)->got[i] = *sum;
    return ES_OK;
}

/* The sweep's figures at a threshold equal a replay with that threshold,
 * for every sweepable rule and thresholds on and between breakpoints. */
static void test_sweep_equals_brute_force(void **state)
{
    (void)state;
    es_traceset *ts = es_ref_load_trace("mot_gpt35_date_cot1");
    if (!ts) {
        print_message("shared data absent: skipping\n");
        skip();
    }
    es_tune_data *d;
    assert_int_equal(es_tune_data_new(&d), ES_OK);
    assert_int_equal(es_tune_data_add(d, ts, "cot1"), ES_OK);
    es_tune_opts o;
    es_tune_opts_init(&o);
    o.shuffles = 3;
    o.seed = 11;
    uint32_t *items = malloc(es_traceset_n_items(ts) * sizeof *items);
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) items[i] = (uint32_t)i;
    tn_set set;
    es_error err;
    assert_int_equal(tn_set_init(&set, d, items, es_traceset_n_items(ts), &o, &err), ES_OK);
    static const struct {
        const char *base, *key;
        double at[6];
    } cases[] = {
        {"ac-beta", "threshold", {0.5, 0.75, 0.8, 0.9, 0.95, 0.99}},
        {"ac-beta:min=3", "threshold", {0.6, 0.7, 0.85, 0.9375, 0.96875, 0.999}},
        {"majority", "fraction", {0.5, 0.6, 0.7, 0.75, 0.8, 0.9}},
        {"entropy", "threshold", {0.3, 0.5, 0.6, 0.75, 0.8, 0.95}},
        {"margin", "m", {1, 2, 3, 4, 6, 9}},
        {"ac-dirichlet:top_k=3", "threshold", {0.7, 0.8, 0.9, 0.95, 0.97, 0.99}},
    };
    int checked = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tn_config cfg = {NULL, NULL, "test"};
        assert_int_equal(es_policy_new(cases[c].base, &cfg.proto, &err), ES_OK);
        assert_int_equal(es_policy_sweep_param(cfg.proto, &cfg.sweep_key), ES_OK);
        assert_string_equal(cfg.sweep_key, cases[c].key);
        at_ctx ctx;
        tn_cand *cand;
        size_t nc;
        assert_int_equal(tn_sweep(&set, &cfg, &cand, &nc, cases[c].at, 6, record, &ctx, &err), ES_OK);
        for (int k = 0; k < 6; k++) {
            es_policy *q;
            assert_int_equal(es_policy_clone(cfg.proto, &q, &err), ES_OK);
            assert_int_equal(es_policy_set_param(q, cases[c].key, cases[c].at[k], &err), ES_OK);
            uint64_t correct, tokens;
            brute(ts, es_policy_spec(q), o.shuffles, o.seed, &correct, &tokens);
            if (correct != ctx.got[k].correct || tokens != ctx.got[k].tokens)
                fail_msg("%s: sweep gives correct %llu tokens %llu, replay %llu %llu", es_policy_spec(q),
                         (unsigned long long)ctx.got[k].correct, (unsigned long long)ctx.got[k].tokens,
                         (unsigned long long)correct, (unsigned long long)tokens);
            es_policy_free(q);
            checked++;
        }
        /* and at every breakpoint of the front it emits (a sample of them) */
        for (size_t i = 0; i < nc; i += nc / 5 + 1) {
            if (isnan(cand[i].value)) continue;
            es_policy *q;
            assert_int_equal(es_policy_clone(cfg.proto, &q, &err), ES_OK);
            if (es_policy_set_param(q, cases[c].key, cand[i].value, &err)) { /* outside the rule's range */
                es_policy_free(q);
                continue;
            }
            uint64_t correct, tokens;
            brute(ts, es_policy_spec(q), o.shuffles, o.seed, &correct, &tokens);
            if (correct != cand[i].sum.correct || tokens != cand[i].sum.tokens)
                fail_msg("%s (breakpoint %zu): sweep %llu/%llu, replay %llu/%llu", es_policy_spec(q), i,
                         (unsigned long long)cand[i].sum.correct, (unsigned long long)cand[i].sum.tokens,
                         (unsigned long long)correct, (unsigned long long)tokens);
            es_policy_free(q);
            checked++;
        }
        free(cand);
        es_policy_free(cfg.proto);
    }
    print_message("exact sweep = brute-force replay at %d thresholds (6 rules, 3 orders)\n", checked);
    tn_set_free(&set);
    free(items);
    es_tune_data_free(d);
    es_traceset_free(ts);
}

/* Learn-then-Test holds its level: over random splits of real items into
 * calibration and held-out test, the share of splits whose chosen policy
 * loses more than eps on the held-out items is at most delta plus noise. */
static void test_guarantee_over_splits(void **state)
{
    (void)state;
    static const char *files[] = {"cotuq_llama31_8b_cot_asdiv_k5", "mot_gpt35_date_cot1_40", "esc_last_letters_gpt35_k40"};
    es_traceset *ts[3];
    for (int f = 0; f < 3; f++)
        if (!(ts[f] = es_ref_load_trace(files[f]))) {
            for (int g = 0; g < f; g++) es_traceset_free(ts[g]);
            print_message("shared data absent: skipping\n");
            skip();
        }
    enum { SPLITS = 30 };
    const double eps = 0.01, delta = 0.2;
    int exceeded = 0, certified = 0;
    for (int s = 0; s < SPLITS; s++) {
        /* half of each file's items calibrate, the other half is new traffic */
        es_tune_data *cal, *test;
        es_tune_data_new(&cal);
        es_tune_data_new(&test);
        uint64_t x = 0x1234 + (uint64_t)s * 0x9E3779B97F4A7C15ULL;
        for (int f = 0; f < 3; f++) {
            size_t n = es_traceset_n_items(ts[f]);
            uint32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            size_t na = 0, nb = 0;
            for (size_t i = 0; i < n; i++) {
                x = x * 6364136223846793005ULL + 1442695040888963407ULL;
                if ((x >> 33) & 1) a[na++] = (uint32_t)i;
                else b[nb++] = (uint32_t)i;
            }
            assert_int_equal(es_tune_data_add_items(cal, ts[f], files[f], a, na), ES_OK);
            assert_int_equal(es_tune_data_add_items(test, ts[f], files[f], b, nb), ES_OK);
            free(a);
            free(b);
        }
        es_tune_opts o;
        es_tune_opts_init(&o);
        o.shuffles = 2;
        o.seed = (uint64_t)s + 1;
        o.max_em_drop = eps;
        o.delta = delta;
        es_tune *t;
        es_error err;
        assert_int_equal(es_tune_new(cal, &o, &t, &err), ES_OK);
        assert_int_equal(es_tune_add_family(t, "ac-beta", &err), ES_OK);
        int rc = es_tune_run(t, &err);
        es_tune_point p;
        if (rc == ES_OK && es_tune_chosen(t, &p) == ES_OK) {
            certified++;
            es_tune_eval ev;
            assert_int_equal(es_tune_evaluate(test, p.spec, &o, &ev, &err), ES_OK);
            exceeded += ev.p.loss > eps;
        } else {
            assert_int_equal(rc, ES_ENOTSUP); /* nothing certified is allowed, never wrong */
        }
        es_tune_free(t);
        es_tune_data_free(cal);
        es_tune_data_free(test);
    }
    double lim = delta + 3 * sqrt(delta * (1 - delta) / SPLITS);
    print_message("Learn-then-Test over %d splits (eps %.1f pt, delta %.2f): %d certified, %d exceeded eps on "
                  "held-out items (%.3f; limit %.3f)\n", SPLITS, 100 * eps, delta, certified, exceeded,
                  (double)exceeded / SPLITS, lim);
    assert_true(certified > 0);
    assert_true((double)exceeded / SPLITS <= lim);
    for (int f = 0; f < 3; f++) es_traceset_free(ts[f]);
}

/* A point's exact binomial p-value on one file's test items: its losses
 * counted by an independent replay (one order, loss wrong: 0/1 losses). */
static double file_pvalue(const es_tune_data *test, const char *spec, const es_tune_opts *o, double eps)
{
    es_tune_opts po = *o;
    po.per_file = 0;
    es_tune_eval e;
    es_error err;
    if (es_tune_evaluate(test, spec, &po, &e, &err)) fail_msg("%s: %s", spec, err.msg);
    size_t n = es_tune_data_n_items(test);
    return es_pvalue_binomial(n, (uint64_t)llround(e.p.loss * (double)n), eps);
}

/* --per-file: on two real files, one order (so every p-value is an exact
 * binomial one that can be recomputed file by file), every point tested
 * with per_file carries the largest of its two files' p-values (the
 * intersection-union test), and a point the pooled test certifies while
 * one file's own test rejects it is not certified per file; what per_file
 * chooses passes on each file. */
static void test_per_file_intersection_union(void **state)
{
    (void)state;
    static const char *const files[] = {"cotuq_llama31_8b_cod_asdiv_k5", "mot_gpt35_date_cot1_40"};
    es_ref_halves sp;
    es_tune_opts o;
    es_ref_halves_load(&sp, files, 2, 1, &o);
    es_tune_data *cal = sp.cal, **test = sp.part;
    int refused = 0, by_loss = 0, compared = 0;
    static const double eps_pts[] = {1, 2, 3, 5};
    for (size_t e = 0; e < sizeof eps_pts / sizeof eps_pts[0]; e++) {
        o.max_em_drop = eps_pts[e] / 100;
        es_tune *t[2];
        es_error err;
        int rc[2];
        for (int pf = 0; pf < 2; pf++) {
            o.per_file = pf;
            assert_int_equal(es_tune_new(cal, &o, &t[pf], &err), ES_OK);
            assert_int_equal(es_tune_add_family(t[pf], "ac-beta", &err), ES_OK);
            rc[pf] = es_tune_run(t[pf], &err);
            assert_true(rc[pf] == ES_OK || rc[pf] == ES_ENOTSUP);
        }
        /* per file: each tested point's p-value is its worst file's */
        for (size_t i = 0; i < es_tune_n_tested(t[1]); i++) {
            const es_tune_point *p = es_tune_tested(t[1], i);
            double p0 = file_pvalue(test[0], p->spec, &o, o.max_em_drop), p1 = file_pvalue(test[1], p->spec, &o, o.max_em_drop);
            assert_true(fabs(p->pvalue - fmax(p0, p1)) <= 1e-12 * fmax(1, p->pvalue));
            if (p->certified) assert_true(p0 <= o.delta && p1 <= o.delta);
            compared++;
        }
        /* pooled: points it certifies that one file alone rejects are refused per file */
        for (size_t i = 0; i < es_tune_n_tested(t[0]); i++) {
            const es_tune_point *p = es_tune_tested(t[0], i);
            if (!p->certified) continue;
            double p0 = file_pvalue(test[0], p->spec, &o, o.max_em_drop), p1 = file_pvalue(test[1], p->spec, &o, o.max_em_drop);
            if (fmax(p0, p1) <= o.delta) continue;
            refused++;
            /* refused for what the file lost, not for its size: with no loss it would pass */
            const es_tune_data *bad = p0 > o.delta ? test[0] : test[1];
            by_loss += es_pvalue_binomial(es_tune_data_n_items(bad), 0, o.max_em_drop) <= o.delta;
            for (size_t k = 0; k < es_tune_n_tested(t[1]); k++)
                if (!strcmp(es_tune_tested(t[1], k)->spec, p->spec)) assert_false(es_tune_tested(t[1], k)->certified);
            es_tune_point c;
            if (es_tune_chosen(t[1], &c) == ES_OK) assert_string_not_equal(c.spec, p->spec);
        }
        print_message("eps %.0f pt: pooled %s (%zu tested), per file %s (%zu tested)\n", eps_pts[e],
                      rc[0] ? "none" : "certified", es_tune_n_tested(t[0]), rc[1] ? "none" : "certified",
                      es_tune_n_tested(t[1]));
        es_tune_free(t[0]);
        es_tune_free(t[1]);
    }
    print_message("per file: %d tested points = max of two files' p-values; %d pooled-certified points refused "
                  "(%d for a file's losses, not its size)\n", compared, refused, by_loss);
    assert_true(compared > 0);
    assert_true(by_loss > 0);
    es_ref_halves_free(&sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_equals_brute_force),
        cmocka_unit_test(test_guarantee_over_splits),
        cmocka_unit_test(test_per_file_intersection_union),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
