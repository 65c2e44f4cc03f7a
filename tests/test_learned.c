/*
 * test_learned.c - the learned stopper in the core: its features kept
 * incrementally equal a plain recomputation from the events so far; the
 * score equals a hand computation of the nets; the rule's verdicts equal
 * "score >= threshold" and its boundary agrees with them at every
 * threshold; nothing allocates per event; clones share the weights;
 * operating points, levels and errors.
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

#include "earlystop.h"
#include "testutil.h"
#include "alloc_count.h"

static uint32_t fid(const char *name)
{
    uint32_t id;
    if (es_feature_find(name, &id)) fail_msg("no feature %s", name);
    return id;
}

/* ------------------------------------------------- batch recomputation */

enum { MAXN = 64, MAXA = 12 };

/* Every across feature from the first n samples, written plainly. */
static void across_batch(const int32_t *a, const uint32_t *tok, const float *conf, const uint8_t *flags, uint32_t n,
                         uint32_t cap, double *x)
{
    uint32_t cnt[MAXA] = {0}, first[MAXA], conf_n[MAXA] = {0};
    double toks[MAXA] = {0}, confs[MAXA] = {0}, tot = 0, ctot = 0;
    uint32_t nulls = 0, wf = 0, cn = 0;
    for (uint32_t i = 0; i < MAXA; i++) first[i] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        if (first[a[i]] == UINT32_MAX) first[a[i]] = i;
        cnt[a[i]]++;
        toks[a[i]] += tok[i];
        tot += tok[i];
        if (conf[i] == conf[i]) confs[a[i]] += conf[i], conf_n[a[i]]++, ctot += conf[i], cn++;
        nulls += a[i] == 0;
        if (flags) wf += flags[a[i]] & 1;
    }
    int32_t L = -1;
    uint32_t distinct = 0;
    for (int32_t k = 0; k < MAXA; k++) {
        if (!cnt[k]) continue;
        distinct++;
        if (L < 0 || cnt[k] > cnt[L] || (cnt[k] == cnt[L] && first[k] < first[L])) L = k;
    }
    uint32_t c1 = cnt[L], c2 = 0;
    for (int32_t k = 0; k < MAXA; k++)
        if (k != L && cnt[k] > c2) c2 = cnt[k];
    double H = 0;
    for (int32_t k = 0; k < MAXA; k++)
        if (cnt[k]) H -= (double)cnt[k] / n * log((double)cnt[k] / n);
    for (uint32_t i = 0; i < es_feature_count(); i++) x[i] = NAN;
    x[fid("log_n")] = log(n);
    x[fid("margin")] = (double)c1 - c2;
    x[fid("margin_sqrt")] = ((double)c1 - c2) / sqrt(n);
    x[fid("top1_share")] = (double)c1 / n;
    x[fid("top2_share")] = (double)c2 / n;
    /* P(p1 > p2) = P(Bin(c1 + c2 + 1, 1/2) <= c1), summed plainly */
    double m = c1 + c2 + 1.0, lower = 0, upper = 0;
    for (uint32_t j = 0; j <= c1 + c2 + 1; j++) {
        double t = exp(lgamma(m + 1) - lgamma(j + 1.0) - lgamma(m - j + 1) - m * log(2.0));
        if (j <= c1) lower += t;
        else upper += t;
    }
    double lg = log(lower) - log(upper);
    x[fid("beta_logit")] = lg > 30 ? 30 : lg < -30 ? -30 : lg;
    x[fid("distinct_share")] = (double)distinct / n;
    x[fid("null_share")] = (double)nulls / n;
    x[fid("leader_null")] = L == 0;
    if (n >= 2) x[fid("entropy")] = H / log(n);
    x[fid("last_agrees")] = a[n - 1] == L;
    if (n > c1) x[fid("tok_leader_others")] = log((toks[L] / c1 + 1) / ((tot - toks[L]) / (n - c1) + 1));
    x[fid("tok_last")] = log((tok[n - 1] + 1.0) / (tot / n + 1.0));
    if (cap) x[fid("log_budget_left")] = log(1.0 + (cap - n));
    x[fid("has_conf")] = cn > 0;
    if (conf_n[L]) x[fid("conf_leader")] = confs[L] / conf_n[L];
    if (conf_n[L] && cn > conf_n[L]) x[fid("conf_leader_others")] = confs[L] / conf_n[L] - (ctot - confs[L]) / (cn - conf_n[L]);
    if (flags) {
        x[fid("leader_wf")] = flags[L] & 1;
        x[fid("wf_share")] = (double)wf / n;
    }
}

/* Every within feature from the first k probes of a sample (and, for the
 * cross-level ones, the n samples before it). */
static void within_batch(const uint32_t *at, const int32_t *pa, const float *pc, const float *pw, uint32_t k,
                         const uint8_t *flags, const int32_t *a, const uint32_t *tok, uint32_t n, double *x)
{
    for (uint32_t i = 0; i < es_feature_count(); i++) x[i] = NAN;
    int32_t cur = pa[k - 1];
    uint32_t run = 0, same = 0, distinct = 0;
    for (uint32_t j = k; j-- > 0 && pa[j] == cur;) run++;
    for (uint32_t j = 0; j < k; j++) {
        same += pa[j] == cur;
        int seen = 0;
        for (uint32_t i = 0; i < j; i++) seen |= pa[i] == pa[j];
        distinct += !seen;
    }
    x[fid("p_log_tokens")] = log(1.0 + at[k - 1]);
    x[fid("p_log_probes")] = log(k);
    x[fid("p_run")] = run;
    x[fid("p_run_share")] = (double)run / k;
    x[fid("p_distinct_share")] = (double)distinct / k;
    x[fid("p_cur_share")] = (double)same / k;
    if (k >= 2) x[fid("p_changed")] = pa[k - 1] != pa[k - 2];
    x[fid("p_null")] = cur == 0;
    if (flags) x[fid("p_wf")] = flags[cur] & 1;
    x[fid("p_has_conf")] = pc[k - 1] == pc[k - 1];
    x[fid("p_conf")] = pc[k - 1];
    if (k >= 2) x[fid("p_conf_trend")] = pc[k - 1] - pc[k - 2];
    else x[fid("p_conf_trend")] = NAN;
    x[fid("p_wconf")] = pw[k - 1];
    if (n) {
        double tot = 0;
        uint32_t cnt[MAXA] = {0}, first[MAXA];
        for (uint32_t i = 0; i < MAXA; i++) first[i] = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++) {
            tot += tok[i];
            cnt[a[i]]++;
            if (first[a[i]] == UINT32_MAX) first[a[i]] = i;
        }
        int32_t L = -1;
        for (int32_t j = 0; j < MAXA; j++)
            if (cnt[j] && (L < 0 || cnt[j] > cnt[L] || (cnt[j] == cnt[L] && first[j] < first[L]))) L = j;
        x[fid("p_tokens_rel")] = (at[k - 1] + 1.0) / (tot / n + 1.0);
        x[fid("p_agrees_leader")] = cur == L;
    }
}

static void assert_same(const double *inc, const double *bat, int level, const char *where)
{
    for (uint32_t i = 0; i < es_feature_count(); i++) {
        es_feature_info fi;
        es_feature_get_info(i, &fi);
        if (fi.level != level) continue;
        double u = inc[i], v = bat[i];
        if (isnan(u) != isnan(v) || (!isnan(u) && fabs(u - v) > 1e-9 * (1 + fabs(v))))
            fail_msg("%s: feature %s incremental %.17g, recomputed %.17g", where, fi.name, u, v);
    }
}

static float maybe_nan(float x, int missing) { return missing ? NAN : x; }

/* Random questions: samples with probes, confidences present or not, flags
 * known or not; after every event the tracker's features equal the plain
 * recomputation from the events so far. */
static void test_features_incremental_equal_batch(void **state)
{
    (void)state;
    es_features *f;
    assert_int_equal(es_features_new(&f), ES_OK);
    double inc[64], bat[64];
    assert_true(es_feature_count() <= 64);
    for (int q = 0; q < 300; q++) {
        uint32_t answers = 2 + es_test_below(MAXA - 2), cap = es_test_below(2) ? 0 : MAXN;
        int no_conf = es_test_below(3) == 0, some_conf = es_test_below(2);
        uint8_t flags[MAXA];
        for (uint32_t i = 0; i < MAXA; i++) flags[i] = i && es_test_below(4) ? ES_ANSWER_WELLFORMED : 0;
        const uint8_t *fl = es_test_below(3) ? flags : NULL;
        assert_int_equal(es_features_begin_item(f, cap, answers, fl), ES_OK);
        int32_t a[MAXN];
        uint32_t tok[MAXN];
        float conf[MAXN];
        uint32_t n = 1 + es_test_below(MAXN);
        for (uint32_t s = 0; s < n; s++) {
            /* a sample's probes */
            es_features_begin_sample(f);
            uint32_t k = es_test_below(8), at[8];
            int32_t pa[8];
            float pc[8], pw[8];
            for (uint32_t j = 0; j < k; j++) {
                at[j] = (j + 1) * 10 + es_test_below(10);
                pa[j] = es_test_below(4) ? (int32_t)es_test_below(3) : (int32_t)es_test_below(answers);
                pc[j] = maybe_nan((float)es_test_uniform(), no_conf || (some_conf && es_test_below(3) == 0));
                pw[j] = maybe_nan((float)es_test_uniform() * 10, no_conf);
                assert_int_equal(es_features_probe(f, at[j], pa[j], pc[j], pw[j], 0), ES_OK);
                es_features_get(f, ES_AT_WITHIN, inc);
                within_batch(at, pa, pc, pw, j + 1, fl, a, tok, s, bat);
                assert_same(inc, bat, ES_AT_WITHIN, "probe");
            }
            /* answers skewed towards a few, as votes are */
            a[s] = es_test_below(3) ? (int32_t)es_test_below(3) : (int32_t)es_test_below(answers);
            tok[s] = 1 + es_test_below(500);
            conf[s] = maybe_nan((float)es_test_uniform(), no_conf || (some_conf && es_test_below(4) == 0));
            assert_int_equal(es_features_sample(f, a[s], tok[s], conf[s]), ES_OK);
            es_features_get(f, ES_AT_ACROSS, inc);
            across_batch(a, tok, conf, fl, s + 1, cap, bat);
            assert_same(inc, bat, ES_AT_ACROSS, "sample");
        }
    }
    assert_int_equal(es_features_sample(f, MAXA + 5, 1, NAN), ES_EINVAL);
    es_features_free(f);
}

/* ------------------------------------------------------------ stoppers */

/* An across head: logistic on four features; a within head: an MLP of 3
 * tanh units minus a linear net. */
static const double a_mean[4] = {1.0, 0.6, 0.5, 0.0}, a_scale[4] = {2.0, 0.2, 0.3, 0.5};
static const double a_w[4] = {1.2, 0.8, -0.4, 0.3};
static const double w_mean[3] = {1.0, 0.5, 0.7}, w_scale[3] = {1.0, 0.25, 0.2};
static const double w_w1[9] = {0.5, -0.2, 0.1, 0.3, 0.4, -0.5, -0.1, 0.2, 0.6}, w_b1[3] = {0.1, -0.1, 0.05},
                    w_w2[3] = {1.0, -0.5, 0.7}, w_lin[3] = {0.2, 0.1, -0.3};
static const double pts_b[3] = {0.1, 0.5, 1.0}, pts_t[3] = {0.9, 0.7, 0.5}, pts_p[3] = {1.5, 1.0, 0.5};
static uint32_t a_feat[4], w_feat[3];

static es_stopper *make_stopper(int within, int across)
{
    a_feat[0] = fid("margin");
    a_feat[1] = fid("top1_share");
    a_feat[2] = fid("leader_wf");
    a_feat[3] = fid("tok_leader_others");
    w_feat[0] = fid("p_run");
    w_feat[1] = fid("p_cur_share");
    w_feat[2] = fid("p_conf");
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    if (across)
        d.across = (es_stopper_head){4, a_feat, a_mean, a_scale, 5.0, 1, {{0, NULL, NULL, a_w, -0.2, 1, 1.0}}, 0, 0};
    if (within)
        d.within = (es_stopper_head){3, w_feat, w_mean, w_scale, 3.0, 2,
                                     {{3, w_w1, w_b1, w_w2, 0.3, 0, 1.0}, {0, NULL, NULL, w_lin, 0.1, 1, -0.5}}, 0, 0};
    d.n_points = 3;
    d.max_em_drop = pts_b;
    d.threshold = pts_t;
    d.probe_threshold = pts_p;
    es_stopper *m;
    es_error err = {0};
    if (es_stopper_new(&d, &m, &err)) fail_msg("stopper: %s", err.msg);
    return m;
}

static double clip(double z, double c) { return z > c ? c : z < -c ? -c : z; }

static void test_score_by_hand(void **state)
{
    (void)state;
    es_stopper *m = make_stopper(1, 1);
    double x[64];
    for (uint32_t i = 0; i < es_feature_count(); i++) x[i] = NAN;
    x[fid("margin")] = 30; /* clipped at 5 */
    x[fid("top1_share")] = 0.8;
    /* leader_wf missing: z = 0; tok_leader_others missing too */
    double z[4] = {clip((30 - 1.0) / 2.0, 5), (0.8 - 0.6) / 0.2, 0, 0};
    double y = -0.2;
    for (int i = 0; i < 4; i++) y += a_w[i] * z[i];
    assert_true(fabs(es_stopper_score(m, ES_AT_ACROSS, x) - 1 / (1 + exp(-y))) < 1e-15);
    x[fid("p_run")] = 3;
    x[fid("p_cur_share")] = 0.75;
    x[fid("p_conf")] = 0.9;
    double v[3] = {(3 - 1.0) / 1.0, (0.75 - 0.5) / 0.25, (0.9 - 0.7) / 0.2}, s = 0.3, l = 0.1;
    for (int h = 0; h < 3; h++) {
        double u = w_b1[h];
        for (int i = 0; i < 3; i++) u += w_w1[h * 3 + i] * clip(v[i], 3);
        s += w_w2[h] * tanh(u);
    }
    for (int i = 0; i < 3; i++) l += w_lin[i] * clip(v[i], 3);
    assert_true(fabs(es_stopper_score(m, ES_AT_WITHIN, x) - (s - 0.5 / (1 + exp(-l)))) < 1e-14);
    es_stopper_free(m);
}

/* A fixed question replayed through a session: the rule stops exactly
 * where its score first reaches the threshold, and in observe mode the
 * boundary after every sample is that score. */
static void test_verdicts_and_boundary(void **state)
{
    (void)state;
    es_stopper *m = make_stopper(0, 1);
    uint8_t flags[6] = {0, 1, 1, 0, 1, 1};
    for (int q = 0; q < 200; q++) {
        uint32_t n = 3 + es_test_below(30);
        int32_t a[64];
        uint32_t tok[64];
        for (uint32_t i = 0; i < n; i++) {
            a[i] = es_test_below(3) ? 1 + (int32_t)es_test_below(2) : (int32_t)es_test_below(6);
            tok[i] = 10 + es_test_below(90);
        }
        /* the scores, by observe mode */
        es_policy *p;
        es_error err = {0};
        assert_int_equal(es_policy_new_stopper("learned:clinch=off", m, &p, &err), ES_OK);
        assert_int_equal(es_policy_observe(p, 1), ES_OK);
        assert_int_equal(es_policy_begin_item(p, n, 6), ES_OK);
        es_policy_set_answer_flags(p, flags);
        double sc[64];
        es_features *f;
        assert_int_equal(es_features_new(&f), ES_OK);
        assert_int_equal(es_features_begin_item(f, n, 6, flags), ES_OK);
        for (uint32_t i = 0; i < n; i++) {
            es_policy_end_sample(p, a[i], tok[i], NAN);
            double b;
            int d = es_policy_boundary(p, &b);
            es_features_sample(f, a[i], tok[i], NAN);
            double x[64];
            es_features_get(f, ES_AT_ACROSS, x);
            if (i == 0) {
                assert_int_equal(d, ES_BOUND_NEVER); /* min = 2 */
                sc[i] = -INFINITY;
            } else {
                assert_int_equal(d, ES_BOUND_UPPER);
                assert_true(b == es_stopper_score(m, ES_AT_ACROSS, x)); /* to the bit */
                sc[i] = b;
            }
        }
        es_features_free(f);
        es_policy_free(p);
        /* at thresholds around every score: stops at the first sample whose score reaches it */
        for (uint32_t t = 1; t < n; t++) {
            double thr[3] = {sc[t], nextafter(sc[t], INFINITY), nextafter(sc[t], -INFINITY)};
            for (int k = 0; k < 3; k++) {
                es_policy *pp = NULL;
                assert_int_equal(es_policy_new_stopper("learned:clinch=off", m, &pp, &err), ES_OK);
                assert_int_equal(es_policy_set_param(pp, "threshold", thr[k], &err), ES_OK);
                assert_int_equal(es_policy_begin_item(pp, n, 6), ES_OK);
                es_policy_set_answer_flags(pp, flags);
                uint32_t stop = n;
                for (uint32_t i = 0; i < n; i++)
                    if (es_policy_end_sample(pp, a[i], tok[i], NAN) == ES_STOP) {
                        stop = i + 1;
                        break;
                    }
                uint32_t want = n;
                for (uint32_t i = 1; i < n; i++)
                    if (sc[i] >= thr[k]) {
                        want = i + 1;
                        break;
                    }
                assert_int_equal(stop, want);
                es_policy_free(pp);
            }
        }
    }
    es_stopper_free(m);
}

/* Within: a probe stops the sample once its score reaches probe_threshold. */
static void test_within_verdicts(void **state)
{
    (void)state;
    es_stopper *m = make_stopper(1, 0);
    es_error err = {0};
    es_policy *p;
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=0.2", m, &p, &err), ES_OK);
    es_policy_info info;
    es_policy_get_info(p, &info);
    assert_true(info.has_within && !info.needs_probes); /* probes help, none is not an error */
    assert_string_equal(es_policy_spec(p), "learned:probe_threshold=0.2,max_em_drop=0.1,min=2,max=all");
    es_features *f;
    assert_int_equal(es_features_new(&f), ES_OK);
    for (int q = 0; q < 100; q++) {
        assert_int_equal(es_policy_begin_item(p, 1, 5), ES_OK);
        assert_int_equal(es_features_begin_item(f, 0, 5, NULL), ES_OK);
        es_policy_begin_sample(p);
        es_features_begin_sample(f);
        for (uint32_t j = 0; j < 20; j++) {
            int32_t ans = es_test_below(3) ? 1 : (int32_t)es_test_below(5);
            float c = (float)es_test_uniform();
            int v = es_policy_probe(p, 16 * (j + 1), ans, c, NAN, 0);
            es_features_probe(f, 16 * (j + 1), ans, c, NAN, 0);
            double x[64];
            es_features_get(f, ES_AT_WITHIN, x);
            assert_int_equal(v, es_stopper_score(m, ES_AT_WITHIN, x) >= 0.2);
            if (v == ES_STOP) break;
        }
    }
    es_features_free(f);
    es_policy_free(p);
    es_stopper_free(m);
}

/* A within head that requires p_conf never stops on a probe without a
 * confidence, whatever the rest says, and scores as before on one with; its
 * trained probe spacing is what `every=auto` reads. */
static void test_required_and_every(void **state)
{
    (void)state;
    es_stopper *m0 = make_stopper(1, 0);
    es_stopper_desc d;
    es_stopper_get(m0, &d);
    d.within.required = 1ULL << 2; /* p_conf */
    d.within.every = 4;
    es_stopper *m;
    es_error err = {0};
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_OK);
    double x[64];
    for (int i = 0; i < 64; i++) x[i] = NAN;
    x[w_feat[0]] = 5;
    x[w_feat[1]] = 1;
    assert_true(isnan(es_stopper_score(m, ES_AT_WITHIN, x)));     /* p_conf missing: no score */
    assert_false(isnan(es_stopper_score(m0, ES_AT_WITHIN, x)));   /* without the requirement: the mean */
    x[w_feat[2]] = 0.9;
    assert_true(es_stopper_score(m, ES_AT_WITHIN, x) == es_stopper_score(m0, ES_AT_WITHIN, x));
    es_policy *p, *p1;
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=-100", m, &p, &err), ES_OK);
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=-100,every=1", m, &p1, &err), ES_OK);
    es_policy_info info;
    es_policy_get_info(p, &info);
    assert_int_equal(info.probe_every, 4);
    assert_string_equal(es_policy_spec(p), "learned:probe_threshold=-100,max_em_drop=0.1,min=2,max=all");
    es_policy_get_info(p1, &info);
    assert_int_equal(info.probe_every, 1);
    assert_int_equal(es_policy_begin_item(p, 1, 5), ES_OK);
    es_policy_begin_sample(p);
    for (uint32_t j = 1; j <= 10; j++) assert_int_equal(es_policy_probe(p, 16 * j, 1, NAN, NAN, 0), ES_CONTINUE);
    assert_int_equal(es_policy_probe(p, 176, 1, 0.5f, NAN, 0), ES_STOP);
    es_policy_free(p);
    es_policy_free(p1);
    /* beside an across head, a within threshold that never fires (1e9, what
     * learn writes where nothing passed) makes no probes unless asked */
    es_stopper *mb = make_stopper(1, 1);
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=1e9", mb, &p, &err), ES_OK);
    es_policy_get_info(p, &info);
    assert_false(info.has_within);
    es_policy_free(p);
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=1e9,level=both", mb, &p, &err), ES_OK);
    es_policy_get_info(p, &info);
    assert_true(info.has_within);
    assert_int_equal(info.probe_every, UINT32_MAX); /* kept, but it reads no probe */
    es_policy_free(p);
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=1e9,level=both,every=2", mb, &p, &err), ES_OK);
    es_policy_get_info(p, &info);
    assert_int_equal(info.probe_every, 2); /* unless told */
    es_policy_free(p);
    es_stopper_free(mb);
    /* a requirement past the head's inputs is refused, naming the field */
    d.within.required = 1ULL << 3;
    es_stopper *m2;
    assert_int_equal(es_stopper_new(&d, &m2, &err), ES_EINVAL);
    assert_non_null(strstr(err.field, "within.required"));
    es_stopper_free(m);
    es_stopper_free(m0);
}

/* A point that picks another across head scores with it: the boundary at
 * max_em_drop=0.5 is the alternative head's score, at 0.1 and 1 the first's. */
/* Text cues reach the within features through the event protocol: missing
 * when a probe's cues were not read, 0 / 1 when they were; a head that
 * requires p_conclude stops at a concluding probe, never where no cues came. */
static void test_cue_features(void **state)
{
    (void)state;
    uint32_t conclude = fid("p_conclude"), check = fid("p_check"), end = fid("p_end");
    es_features *f;
    assert_int_equal(es_features_new(&f), ES_OK);
    assert_int_equal(es_features_begin_item(f, 1, 4, NULL), ES_OK);
    es_features_begin_sample(f);
    double x[64];
    assert_true(es_feature_count() <= 64);
    assert_int_equal(es_features_probe(f, 10, 1, NAN, NAN, 0), ES_OK);
    es_features_get(f, ES_AT_WITHIN, x);
    assert_true(isnan(x[conclude]) && isnan(x[check]) && isnan(x[end]));
    assert_int_equal(es_features_probe(f, 20, 1, NAN, NAN, ES_CUE_READ | ES_CUE_CONCLUDE | ES_CUE_END), ES_OK);
    es_features_get(f, ES_AT_WITHIN, x);
    assert_true(x[conclude] == 1 && x[check] == 0 && x[end] == 1);
    es_features_begin_sample(f); /* a new sample forgets the cues */
    assert_int_equal(es_features_probe(f, 5, 2, NAN, NAN, ES_CUE_READ), ES_OK);
    es_features_get(f, ES_AT_WITHIN, x);
    assert_true(x[conclude] == 0 && x[check] == 0 && x[end] == 0);
    es_features_free(f);

    es_stopper *m = es_test_cue_stopper(); /* p_conclude (required) + p_run >= 1.5 */
    es_error err = {0};
    es_policy *p;
    assert_int_equal(es_policy_new_stopper("learned", m, &p, &err), ES_OK);
    assert_int_equal(es_policy_begin_item(p, 1, 4), ES_OK);
    assert_int_equal(es_policy_begin_sample(p), ES_OK);
    assert_int_equal(es_policy_probe(p, 10, 1, NAN, NAN, 0), ES_CONTINUE);           /* unknown */
    assert_int_equal(es_policy_probe(p, 20, 2, NAN, NAN, ES_CUE_READ), ES_CONTINUE); /* 0 + 1 */
    assert_int_equal(es_policy_probe(p, 30, 3, NAN, NAN, ES_CUE_READ | ES_CUE_CONCLUDE), ES_STOP);
    es_policy_free(p);
    es_stopper_free(m);
}

static void test_alt_heads(void **state)
{
    (void)state;
    es_stopper *m0 = make_stopper(0, 1);
    es_stopper_desc d;
    es_stopper_get(m0, &d);
    static uint32_t xf[1];
    static const double xm[1] = {2.0}, xs[1] = {3.0}, xw[1] = {0.9};
    static const uint32_t pick[3] = {0, 1, 0};
    xf[0] = fid("margin");
    es_stopper_head alt = {1, xf, xm, xs, 5.0, 1, {{0, NULL, NULL, xw, -0.3, 0, 1.0}}, 0, 0};
    d.n_across_alt = 1;
    d.across_alt = &alt;
    d.across_pick = pick;
    es_stopper *m;
    es_error err = {0};
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_OK);
    const int32_t a[4] = {1, 1, 2, 1};
    for (int k = 0; k < 3; k++) {
        const double budget[3] = {0.1, 0.5, 1.0};
        es_policy *p;
        char spec[80];
        snprintf(spec, sizeof spec, "learned:max_em_drop=%g,clinch=off", budget[k]);
        assert_int_equal(es_policy_new_stopper(spec, m, &p, &err), ES_OK);
        assert_int_equal(es_policy_observe(p, 1), ES_OK);
        assert_int_equal(es_policy_begin_item(p, 4, 3), ES_OK);
        es_features *f;
        assert_int_equal(es_features_new(&f), ES_OK);
        assert_int_equal(es_features_begin_item(f, 4, 3, NULL), ES_OK);
        for (uint32_t i = 0; i < 4; i++) {
            es_policy_end_sample(p, a[i], 50, NAN);
            es_features_sample(f, a[i], 50, NAN);
            double b, x[64];
            int r = es_policy_boundary(p, &b);
            es_features_get(f, ES_AT_ACROSS, x);
            if (i == 0) continue;
            assert_int_equal(r, ES_BOUND_UPPER);
            assert_true(b == es_stopper_score_at(m, (uint32_t)k, ES_AT_ACROSS, x));
            if (k == 1) assert_true(b == 0.9 * ((x[xf[0]] - 2.0) / 3.0) - 0.3);
            else assert_true(b == es_stopper_score(m, ES_AT_ACROSS, x));
        }
        es_features_free(f);
        es_policy_free(p);
    }
    /* a pick past the heads is refused, naming the point */
    static const uint32_t bad_pick[3] = {0, 2, 0};
    d.across_pick = bad_pick;
    es_stopper *m2;
    assert_int_equal(es_stopper_new(&d, &m2, &err), ES_EINVAL);
    assert_non_null(strstr(err.field, "operating_points[1]"));
    es_stopper_free(m);
    es_stopper_free(m0);
}

/* Operating points, levels, clones and errors. */
static void test_points_levels_clone(void **state)
{
    (void)state;
    es_stopper *m = make_stopper(1, 1);
    es_error err = {0};
    es_policy *p, *c;
    double v;
    assert_int_equal(es_policy_new_stopper("learned", m, &p, &err), ES_OK);
    assert_string_equal(es_policy_spec(p), "learned:max_em_drop=0.1,min=2,max=all");
    /* the clone shares the stopper, never copies it */
    assert_int_equal(es_policy_clone(p, &c, &err), ES_OK);
    assert_ptr_equal(es_policy_stopper(c), m);
    es_stopper_free(m); /* the policies hold their own references */
    es_policy_free(p);
    es_policy_info info;
    es_policy_get_info(c, &info);
    assert_true(info.has_within);
    /* budgets pick the largest calibrated point within them */
    assert_int_equal(es_policy_set_param(c, "max_em_drop", 0.7, &err), ES_OK);
    assert_int_equal(es_policy_get_param(c, "max_em_drop", &v, &err), ES_OK);
    assert_true(v == 0.7);
    assert_int_not_equal(es_policy_set_param(c, "max_em_drop", 0.05, &err), ES_OK);
    assert_non_null(strstr(err.msg, "smallest calibrated budget"));
    es_policy_free(c);
    /* level=across leaves the within level free for another rule */
    m = make_stopper(0, 1);
    assert_int_equal(es_policy_new_stopper("dynasor:k=3+learned:level=across", m, &p, &err), ES_OK);
    es_policy_free(p);
    assert_int_not_equal(es_policy_new_stopper("learned:level=within", m, &p, &err), ES_OK);
    assert_non_null(strstr(err.msg, "no within head"));
    es_stopper_free(m);
    /* without a stopper (and none built in) `learned` says what to do */
    if (!es_stopper_builtin()) {
        assert_int_not_equal(es_policy_new("learned", &p, &err), ES_OK);
        assert_non_null(strstr(err.msg, "stopper"));
    }
}

/* Bad descriptions are refused with the field named. */
static void test_bad_stopper(void **state)
{
    (void)state;
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    es_stopper *m;
    es_error err = {0};
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_EINVAL);
    uint32_t wrong_level[1] = {fid("p_run")};
    double mean[1] = {0}, scale[1] = {1}, w[1] = {1}, b[1] = {0}, t[1] = {0.5}, nan1[1] = {NAN};
    d.across = (es_stopper_head){1, wrong_level, mean, scale, 5, 1, {{0, NULL, NULL, w, 0, 1, 1}}, 0, 0};
    d.n_points = 1;
    d.max_em_drop = b;
    d.threshold = t;
    d.probe_threshold = nan1;
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_EINVAL);
    assert_non_null(strstr(err.msg, "not an across feature"));
    uint32_t ok[1] = {fid("margin")};
    d.across.feature = ok;
    double zero[1] = {0};
    d.across.scale = zero;
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_EINVAL);
    d.across.scale = scale;
    d.threshold = nan1;
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_EINVAL);
    d.threshold = t;
    d.across.net[0].hidden = 65;
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_EINVAL);
    d.across.net[0].hidden = 0;
    assert_int_equal(es_stopper_new(&d, &m, &err), ES_OK);
    es_stopper_free(m);
}

/* After the first question sizes the buffers, a session over many questions
 * with probes and samples allocates nothing. */
static void test_no_allocation_per_event(void **state)
{
    (void)state;
    if (!es_alloc_counting()) {
        print_message("allocations not counted in this build (sanitizer): skipping\n");
        return;
    }
    es_stopper *m = make_stopper(1, 1);
    es_policy *p;
    es_session *s;
    es_error err = {0};
    assert_int_equal(es_policy_new_stopper("learned:probe_threshold=3", m, &p, &err), ES_OK);
    assert_int_equal(es_session_new(p, &s), ES_OK);
    uint8_t flags[10] = {0, 1, 1, 1, 0, 1, 1, 1, 1, 1};
    for (int item = 0; item < 300; item++) {
        if (item == 1) es_alloc_begin();
        assert_int_equal(es_session_begin_item(s, 16, 10), ES_OK);
        es_session_set_answer_flags(s, flags);
        for (int k = 0; k < 16; k++) {
            es_session_begin_sample(s);
            uint32_t at = 0;
            int stop = 0;
            for (int j = 0; j < 6 && !stop; j++) {
                at += 16;
                if (es_session_reach(s, at) != ES_CONTINUE) break;
                stop = es_session_probe(s, at, (int32_t)es_test_below(10), (float)es_test_uniform(), NAN, 0, 20) == ES_STOP;
            }
            if (es_session_end_sample(s, (int32_t)es_test_below(4), at + 5, (float)es_test_uniform(), 1) == ES_STOP)
                break;
        }
        es_session_end_item(s);
    }
    long allocs = es_alloc_end();
    if (allocs) fail_msg("%ld allocations over 299 questions", allocs);
    es_session_free(s);
    es_policy_free(p);
    es_stopper_free(m);
}

static void test_wellformed(void **state)
{
    (void)state;
    char key[128];
    struct {
        es_answer_type t;
        const char *raw;
        int wf;
    } cases[] = {
        {ES_ANSWER_NUMBER, "$1,000.00", 1}, {ES_ANSWER_NUMBER, "20%", 0},      {ES_ANSWER_DATE, "May 2, 2021", 1},
        {ES_ANSWER_DATE, "Today is 09/07/2003.", 0}, {ES_ANSWER_CHOICE, "(B)", 1}, {ES_ANSWER_CHOICE, "B 42", 0},
        {ES_ANSWER_MATH, "\\frac{9}{100}", 1},  {ES_ANSWER_MATH, "\\frac{9}{100", 0},
        {ES_ANSWER_TEXT, "yajo", 1},           {ES_ANSWER_TEXT, "If Jane is correct then the date is", 0},
        {ES_ANSWER_TEXT, "new york city", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_true(es_answer_normalize(cases[i].t, cases[i].raw, strlen(cases[i].raw), key, sizeof key) >= 0);
        if (es_answer_wellformed(cases[i].t, key) != cases[i].wf)
            fail_msg("%s (key %s): expected %d", cases[i].raw, key, cases[i].wf);
    }
    assert_int_equal(es_answer_wellformed(ES_ANSWER_TEXT, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_incremental_equal_batch),
        cmocka_unit_test(test_score_by_hand),
        cmocka_unit_test(test_verdicts_and_boundary),
        cmocka_unit_test(test_within_verdicts),
        cmocka_unit_test(test_required_and_every),
        cmocka_unit_test(test_cue_features),
        cmocka_unit_test(test_alt_heads),
        cmocka_unit_test(test_points_levels_clone),
        cmocka_unit_test(test_bad_stopper),
        cmocka_unit_test(test_no_allocation_per_event),
        cmocka_unit_test(test_wellformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
