/*
 * test_stopper_json.c - stopper files (src/io/stopper_json.c): a stopper
 * written and read back is the same to the bit (every array, every score);
 * `@file` loads it as a policy through es_policy_new_any; malformed files
 * fail with the field named; the built-in stopper (learned_builtin.c) is
 * data/stopper.json to the bit.
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
#include "testutil.h"

static uint32_t fid(const char *name)
{
    uint32_t id;
    if (es_feature_find(name, &id)) fail_msg("no feature %s", name);
    return id;
}

/* Random weights (awkward doubles: many digits, tiny and huge) for a both-
 * level stopper with an MLP and a linear net. */
static es_stopper *random_stopper(int with_alt)
{
    static uint32_t xf[3], pick[4] = {0, 1, 0, 1};
    static double xm[3], xs[3], xw[3];
    static es_stopper_head alt[1];
    const char *xn[3] = {"margin", "top1_share", "log_n"};
    for (int i = 0; i < 3; i++) {
        xf[i] = fid(xn[i]);
        xm[i] = es_test_uniform() * 10;
        xs[i] = es_test_uniform() + 0.5;
        xw[i] = es_test_uniform() - 0.5;
    }
    alt[0] = (es_stopper_head){3, xf, xm, xs, 3.0, 1, {{0, NULL, NULL, xw, 0.7, 1, 1.0}}, 0, 0};
    static uint32_t af[5], wf[4];
    static double am[5], as[5], aw1[5 * 7], ab1[7], aw2[7], aw[5], wm[4], ws[4], ww[4], b[4], t[4], pt[4];
    const char *an[5] = {"margin", "beta_logit", "leader_wf", "conf_leader_others", "tok_leader_others"};
    const char *wn[4] = {"p_run_share", "p_conf", "p_wconf", "p_agrees_leader"};
    for (int i = 0; i < 5; i++) {
        af[i] = fid(an[i]);
        am[i] = (es_test_uniform() - 0.5) * 1e3;
        as[i] = es_test_uniform() * 1e-3 + 1e-9;
        aw[i] = (es_test_uniform() - 0.5) / 3.0;
    }
    for (int i = 0; i < 35; i++) aw1[i] = (es_test_uniform() - 0.5) * 7.0;
    for (int i = 0; i < 7; i++) ab1[i] = es_test_uniform() / 7.0, aw2[i] = (es_test_uniform() - 0.5) * 1e-7;
    for (int i = 0; i < 4; i++) {
        wf[i] = fid(wn[i]);
        wm[i] = es_test_uniform();
        ws[i] = es_test_uniform() + 0.1;
        ww[i] = es_test_uniform() * 3 - 1;
        b[i] = 0.1 * (i + 1) + es_test_uniform() * 0.01;
        t[i] = es_test_uniform();
        pt[i] = es_test_uniform() * 2;
    }
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    d.across = (es_stopper_head){5, af, am, as, 4.5, 2, {{7, aw1, ab1, aw2, 0.125, 1, 1.0}, {0, NULL, NULL, aw, -1.0 / 3, 0, -1.0}}, 0, 0};
    d.within = (es_stopper_head){4, wf, wm, ws, 5.0, 1, {{0, NULL, NULL, ww, 0.3, 1, 1.0}}, 0, 0};
    d.n_points = 4;
    d.max_em_drop = b;
    d.threshold = t;
    d.probe_threshold = pt;
    if (with_alt) { /* points 1 and 3 scored by another across head */
        d.n_across_alt = 1;
        d.across_alt = alt;
        d.across_pick = pick;
    }
    es_stopper *m;
    es_error err = {0};
    if (es_stopper_new(&d, &m, &err)) fail_msg("%s", err.msg);
    return m;
}

static void same_arrays(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i])) fail_msg("entry %zu: %.17g != %.17g", i, a[i], b[i]);
}

static void same_head(const es_stopper_head *a, const es_stopper_head *b)
{
    assert_int_equal(a->n_in, b->n_in);
    if (!a->n_in) return;
    assert_memory_equal(a->feature, b->feature, a->n_in * sizeof(uint32_t));
    same_arrays(a->mean, b->mean, a->n_in);
    same_arrays(a->scale, b->scale, a->n_in);
    same_arrays(&a->clip, &b->clip, 1);
    assert_int_equal(a->n_nets, b->n_nets);
    for (uint32_t k = 0; k < a->n_nets; k++) {
        const es_stopper_net *x = &a->net[k], *y = &b->net[k];
        assert_int_equal(x->hidden, y->hidden);
        assert_int_equal(x->sigmoid, y->sigmoid);
        same_arrays(&x->weight, &y->weight, 1);
        same_arrays(&x->b2, &y->b2, 1);
        same_arrays(x->w2, y->w2, x->hidden ? x->hidden : a->n_in);
        if (x->hidden) {
            same_arrays(x->w1, y->w1, (size_t)x->hidden * a->n_in);
            same_arrays(x->b1, y->b1, x->hidden);
        }
    }
}

/* The same alternative heads and picks. */
static void same_alt(const es_stopper_desc *a, const es_stopper_desc *b)
{
    assert_int_equal(a->n_across_alt, b->n_across_alt);
    for (uint32_t k = 0; k < a->n_across_alt; k++) same_head(&a->across_alt[k], &b->across_alt[k]);
    assert_true((a->across_pick == NULL) == (b->across_pick == NULL));
    if (a->across_pick) assert_memory_equal(a->across_pick, b->across_pick, a->n_points * sizeof(uint32_t));
}

/* Two stoppers hold the same model to the bit: heads, alternatives, picks,
 * budgets and thresholds (NaN where a level has none, on both sides). */
static void same_stopper(const es_stopper *m1, const es_stopper *m2)
{
    es_stopper_desc a, b;
    es_stopper_get(m1, &a);
    es_stopper_get(m2, &b);
    same_head(&a.across, &b.across);
    same_head(&a.within, &b.within);
    assert_int_equal(a.n_points, b.n_points);
    same_alt(&a, &b);
    same_arrays(a.max_em_drop, b.max_em_drop, a.n_points);
    for (uint32_t i = 0; i < a.n_points; i++) {
        assert_true(isnan(a.threshold[i]) == isnan(b.threshold[i]));
        if (!isnan(a.threshold[i])) same_arrays(&a.threshold[i], &b.threshold[i], 1);
        assert_true(isnan(a.probe_threshold[i]) == isnan(b.probe_threshold[i]));
        if (!isnan(a.probe_threshold[i])) same_arrays(&a.probe_threshold[i], &b.probe_threshold[i], 1);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    char *path = es_test_tmp_file("");
    for (int r = 0; r < 20; r++) {
        es_stopper *m = random_stopper(r & 1), *back;
        es_error err = {0};
        assert_int_equal(es_stopper_save(m, path, "learned:max_em_drop=0.2", "{\"learner\": \"fqi\", \"lambda\": 0.05}", &err),
                         ES_OK);
        char spec[128];
        if (es_stopper_load(path, &back, spec, sizeof spec, &err)) fail_msg("%s: %s", err.field, err.msg);
        assert_string_equal(spec, "learned:max_em_drop=0.2");
        same_stopper(m, back);
        es_stopper_desc a;
        es_stopper_get(m, &a);
        /* and so every score, at random feature values */
        double x[64];
        for (int k = 0; k < 100; k++) {
            for (uint32_t i = 0; i < es_feature_count(); i++)
                x[i] = es_test_below(5) ? (es_test_uniform() - 0.5) * 40 : NAN;
            double s1 = es_stopper_score(m, ES_AT_ACROSS, x), s2 = es_stopper_score(back, ES_AT_ACROSS, x);
            assert_memory_equal(&s1, &s2, sizeof s1);
            s1 = es_stopper_score(m, ES_AT_WITHIN, x);
            s2 = es_stopper_score(back, ES_AT_WITHIN, x);
            assert_memory_equal(&s1, &s2, sizeof s1);
            for (uint32_t pt = 0; pt < a.n_points; pt++) {
                s1 = es_stopper_score_at(m, pt, ES_AT_ACROSS, x);
                s2 = es_stopper_score_at(back, pt, ES_AT_ACROSS, x);
                assert_memory_equal(&s1, &s2, sizeof s1);
            }
        }
        if (r & 1) { /* a point scores with the head it picks */
            x[fid("margin")] = 3;
            x[fid("top1_share")] = 0.6;
            x[fid("log_n")] = 1.5;
            double s1 = es_stopper_score_at(back, 1, ES_AT_ACROSS, x), z = 0.7;
            const double v[3] = {3, 0.6, 1.5};
            for (int i = 0; i < 3; i++) {
                double t = (v[i] - a.across_alt[0].mean[i]) / a.across_alt[0].scale[i];
                z += a.across_alt[0].net[0].w2[i] * (t > 3 ? 3 : t < -3 ? -3 : t);
            }
            assert_true(fabs(s1 - 1 / (1 + exp(-z))) < 1e-12);
            assert_true(es_stopper_score_at(back, 0, ES_AT_ACROSS, x) == es_stopper_score(back, ES_AT_ACROSS, x));
        }
        /* the file is a policy file: its spec with its weights */
        es_policy *p;
        char at[300];
        snprintf(at, sizeof at, "@%s", path);
        if (es_policy_new_any(at, &p, &err)) fail_msg("%s", err.msg);
        assert_string_equal(es_policy_spec(p), "learned:max_em_drop=0.2,min=2,max=all");
        assert_non_null(es_policy_stopper(p));
        es_policy_free(p);
        es_stopper_free(m);
        es_stopper_free(back);
    }
    unlink(path);
    free(path);
}

/* Malformed files: the error names the field, nothing is made. */
static void test_bad_files(void **state)
{
    (void)state;
    const char *head = "{\"format\": \"earlystop-stopper\", \"version\": 1, ";
    const char *ok_across = "\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, "
                            "\"nets\": [{\"output\": \"logistic\", \"w\": [1], \"b\": 0}]}, ";
    const char *ok_points = "\"operating_points\": [{\"max_em_drop\": 0.1, \"threshold\": 0.5}]}";
    struct {
        const char *body, *field;
    } cases[] = {
        {"\"across\": {\"features\": [\"nope\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, \"nets\": []}, ", "across.features[0]"},
        {"\"across\": {\"features\": [\"p_run\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, \"nets\": []}, ", "across.features[0]"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0, 1], \"scale\": [1], \"clip\": 5, \"nets\": []}, ", "across.mean"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, \"nets\": []}, ", "across.nets"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, "
         "\"nets\": [{\"output\": \"softmax\", \"w\": [1], \"b\": 0}]}, ", "across.nets[0].output"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, "
         "\"nets\": [{\"output\": \"linear\", \"w1\": [[1, 2]], \"b1\": [0], \"w2\": [1], \"b2\": 0}]}, ", "across.nets[0].w1[0]"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [0], \"clip\": 5, "
         "\"nets\": [{\"output\": \"linear\", \"w\": [1], \"b\": 0}]}, ", "across.features[0]"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, \"every\": 2, "
         "\"nets\": [{\"output\": \"linear\", \"w\": [1], \"b\": 0}]}, ", "across.every"},
        {"\"across\": {\"features\": [\"margin\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, \"required\": [\"p_conf\"], "
         "\"nets\": [{\"output\": \"linear\", \"w\": [1], \"b\": 0}]}, ", "across.required"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s%s", head, cases[i].body, ok_points);
        char *path = es_test_tmp_file(text);
        es_stopper *m = (es_stopper *)1;
        es_error err = {0};
        assert_int_not_equal(es_stopper_load(path, &m, NULL, 0, &err), ES_OK);
        assert_null(m);
        if (strcmp(err.field, cases[i].field)) fail_msg("case %zu: field '%s' (%s), expected '%s'", i, err.field, err.msg, cases[i].field);
        assert_string_equal(err.file, path);
        unlink(path);
        free(path);
    }
    /* alternative heads: malformed, or a point picking one that is not there */
    struct {
        const char *body, *points, *field;
    } alt_cases[] = {
        {"\"across_alt\": [], ", ok_points, "across_alt"},
        {"\"across_alt\": [7], ", ok_points, "across_alt[0]"},
        {"\"across_alt\": [{\"features\": [\"p_run\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, "
         "\"nets\": [{\"output\": \"linear\", \"w\": [1], \"b\": 0}]}], ", ok_points, "across_alt[0].features[0]"},
        {"", "\"operating_points\": [{\"max_em_drop\": 0.1, \"threshold\": 0.5, \"across_head\": 1}]}",
         "operating_points[0].across_head"},
        {"\"across_alt\": [{\"features\": [\"log_n\"], \"mean\": [0], \"scale\": [1], \"clip\": 5, "
         "\"nets\": [{\"output\": \"linear\", \"w\": [1], \"b\": 0}]}], ",
         "\"operating_points\": [{\"max_em_drop\": 0.1, \"threshold\": 0.5, \"across_head\": -1}]}",
         "operating_points[0].across_head"},
    };
    for (size_t i = 0; i < sizeof alt_cases / sizeof alt_cases[0]; i++) {
        char text[2048];
        snprintf(text, sizeof text, "%s%s%s%s", head, ok_across, alt_cases[i].body, alt_cases[i].points);
        char *path = es_test_tmp_file(text);
        es_stopper *m = (es_stopper *)1;
        es_error err = {0};
        assert_int_not_equal(es_stopper_load(path, &m, NULL, 0, &err), ES_OK);
        assert_null(m);
        if (strcmp(err.field, alt_cases[i].field))
            fail_msg("alt case %zu: field '%s' (%s), expected '%s'", i, err.field, err.msg, alt_cases[i].field);
        if (i == 2) assert_non_null(strstr(err.msg, "p_run is not an across feature")); /* the level, not the head */
        unlink(path);
        free(path);
    }
    /* a missing point and a wrong version */
    char text[1024];
    snprintf(text, sizeof text, "%s%s\"operating_points\": []}", head, ok_across);
    char *path = es_test_tmp_file(text);
    es_stopper *m;
    es_error err = {0};
    assert_int_not_equal(es_stopper_load(path, &m, NULL, 0, &err), ES_OK);
    assert_string_equal(err.field, "operating_points");
    unlink(path);
    free(path);
    snprintf(text, sizeof text, "{\"format\": \"earlystop-stopper\", \"version\": 2, %s%s", ok_across, ok_points);
    path = es_test_tmp_file(text);
    assert_int_not_equal(es_stopper_load(path, &m, NULL, 0, &err), ES_OK);
    assert_string_equal(err.field, "version");
    /* and through @file the policy is refused with the same message */
    es_policy *p = (es_policy *)1;
    char at[300];
    snprintf(at, sizeof at, "@%s", path);
    assert_int_not_equal(es_policy_new_any(at, &p, &err), ES_OK);
    assert_null(p);
    assert_string_equal(err.field, "version");
    unlink(path);
    free(path);
    /* a plain policy file is not a stopper */
    path = es_test_tmp_file("{\"spec\": \"margin\"}");
    assert_int_not_equal(es_stopper_load(path, &m, NULL, 0, &err), ES_OK);
    assert_string_equal(err.field, "format");
    unlink(path);
    free(path);
    /* a stopper without its "format", or another file's, is refused as a
     * policy: read as {"spec": "learned"} it would silently be the built-in */
    const char *others[] = {"{\"spec\": \"learned\", %s%s", "{\"format\": \"earlystop-prior\", \"spec\": \"learned\", %s%s"};
    for (int k = 0; k < 2; k++) {
        snprintf(text, sizeof text, others[k], ok_across, ok_points);
        path = es_test_tmp_file(text);
        snprintf(at, sizeof at, "@%s", path);
        p = (es_policy *)1;
        assert_int_equal(es_policy_new_any(at, &p, &err), ES_EFORMAT);
        assert_null(p);
        assert_string_equal(err.field, "format");
        assert_string_equal(err.file, path);
        char spec[256];
        assert_int_equal(es_policy_spec_load(path, spec, sizeof spec, &err), ES_EFORMAT);
        unlink(path);
        free(path);
    }
    /* a whole stopper file read as a spec (the proxy) is refused, not cut to its spec */
    snprintf(text, sizeof text, "%s%s%s", head, ok_across, ok_points);
    path = es_test_tmp_file(text);
    char spec[256];
    assert_int_equal(es_policy_spec_load(path, spec, sizeof spec, &err), ES_EFORMAT);
    assert_non_null(strstr(err.msg, "stopper file"));
    unlink(path);
    free(path);
}

/* The shipped stopper compiled in equals data/stopper.json, array by array
 * (`make stopper` writes both; a file retrained without regenerating the C
 * source fails here). */
static void test_builtin_is_the_file(void **state)
{
    (void)state;
    if (access("data/stopper.json", R_OK)) {
        print_message("data/stopper.json absent: skipping\n");
        skip();
    }
    const es_stopper *b = es_stopper_builtin();
    if (!b) fail_msg("data/stopper.json ships but the build has no built-in stopper (make stopper)");
    es_stopper *m;
    es_error err = {0};
    char spec[128];
    if (es_stopper_load("data/stopper.json", &m, spec, sizeof spec, &err)) fail_msg("%s: %s", err.field, err.msg);
    same_stopper(m, b);
    es_stopper_free(m);
}

/* What the core accepts the file reads back: a probe spacing ("every") is
 * a within head's, so an across head (or an alternative one) with one is
 * refused when made, not written into a file that will not load. */
static void test_every_is_within_only(void **state)
{
    (void)state;
    es_stopper *m = random_stopper(1), *bad;
    es_stopper_desc d;
    es_stopper_get(m, &d);
    es_error err = {0};
    d.within.every = 4; /* the within head may carry it */
    assert_int_equal(es_stopper_new(&d, &bad, &err), ES_OK);
    es_stopper_free(bad);
    es_stopper_head alt = d.across_alt[0];
    alt.every = 3;
    d.across_alt = &alt;
    assert_int_equal(es_stopper_new(&d, &bad, &err), ES_EINVAL);
    assert_string_equal(err.field, "across_alt[0].every");
    alt.every = 0;
    d.across.every = 2;
    assert_int_equal(es_stopper_new(&d, &bad, &err), ES_EINVAL);
    assert_string_equal(err.field, "across.every");
    es_stopper_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_builtin_is_the_file),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_every_is_within_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
