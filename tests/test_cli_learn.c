/*
 * test_cli_learn.c - `earlystop learn` end to end on real traces: a stopper
 * trained on two files is written, says what it chose, loads in `eval
 * --policy @FILE` (where it saves tokens) and gives the same file for the
 * same seed on 1 and 2 threads; bad input exits 2 with a message and
 * writes nothing; `learned` without a stopper file says what to do; the
 * shipped stopper (data/stopper.json, built in) runs at its 0.1- and
 * 0.5-point operating points on a demo file, as a file and built in alike.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "clirun.h"
#include "earlystop.h"
#include "refdata.h"

static char files[1200];

static int setup(void **state)
{
    (void)state;
    const char *d = es_ref_data_dir();
    snprintf(files, sizeof files, "%s/traces/mot_gpt35_date_cot1.jsonl %s/traces/verifycot_date_gpt35_k10.jsonl", d, d);
    return clirun_setup("cli_learn");
}

static int teardown(void **state)
{
    (void)state;
    return clirun_teardown();
}

static int data_present(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/traces/verifycot_date_gpt35_k10.jsonl", es_ref_data_dir());
    if (access(p, R_OK) == 0) return 1;
    print_message("shared data absent: skipping\n");
    return 0;
}

static void test_learn_and_eval(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    char args[2400], *out, *err;
    for (int th = 1; th <= 2; th++) {
        snprintf(args, sizeof args, "learn %s --budgets 1,3 --max-em-drop 1 --shuffles 4 --lambda 0.03,0.3 --threads %d --out %s/s%d.json%s",
                 files, th, tmpdir, th, th == 2 ? " --json" : "");
        int rc = run(args, &out, &err);
        if (rc) fail_msg("exit %d: %s", rc, err);
        if (th == 1) {
            assert_non_null(strstr(out, "learned stopper: fqi"));
            assert_non_null(strstr(out, "max_em_drop 3.00 pt"));
        } else { /* --json: one JSON object, its operating points those of the text */
            json_error_t je;
            json_t *j = json_loads(out, 0, &je);
            if (!j) fail_msg("--json output is not JSON (%s): %s", je.text, out);
            json_t *pts = json_object_get(j, "operating_points");
            assert_int_equal(json_array_size(pts), 2);
            assert_true(json_real_value(json_object_get(json_array_get(pts, 1), "max_em_drop")) == 3.0);
            assert_string_equal(json_string_value(json_object_get(j, "learner")), "fqi");
            json_decref(j);
        }
        free(out);
        free(err);
    }
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/s1.json", tmpdir);
    snprintf(b, sizeof b, "%s/s2.json", tmpdir);
    /* the same stopper whatever the threads, but for the command line it records */
    char *sa = slurp(a), *sb = slurp(b);
    char *ca = strstr(sa, "\"calibration\""), *cb = strstr(sb, "\"calibration\"");
    assert_non_null(ca);
    assert_non_null(cb);
    assert_string_equal(ca, cb);
    free(sa);
    free(sb);
    /* it loads as a policy and saves tokens on a file it never saw */
    snprintf(args, sizeof args, "eval %s/traces/mot_gpt35_date_cot2.jsonl --policy @%s --json --no-oracle", es_ref_data_dir(), a);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(out, "learned:max_em_drop=1,min=2"));
    free(out);
    free(err);
}

/* A figure of the eval --json row whose policy starts with `policy`. */
static double row_field(const char *json, const char *policy, const char *field)
{
    char key[200];
    snprintf(key, sizeof key, "\"policy\": \"%s", policy);
    const char *r = strstr(json, key);
    if (!r) fail_msg("no row %s in: %s", policy, json);
    snprintf(key, sizeof key, "\"%s\": ", field);
    const char *f = strstr(r, key);
    if (!f) fail_msg("no %s in row %s", field, policy);
    return strtod(f + strlen(key), NULL);
}

/* `eval --policy learned` on a demo file: the built-in stopper at its
 * 0.1-point operating point and at the half-point one, each saving tokens
 * against the full run (the half-point one at least as many), and the same
 * figures as data/stopper.json loaded from the file. */
static void test_eval_shipped(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    if (access("data/stopper.json", R_OK) || access("data/verifycot_date_gpt35_k10.jsonl", R_OK)) {
        print_message("data/stopper.json or the demo data absent: skipping\n");
        skip();
    }
    char *out, *err, *out2, *err2;
    int rc = run("eval data/verifycot_date_gpt35_k10.jsonl --policy learned --policy learned:max_em_drop=0.5 "
                 "--json --shuffles 4", &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    double full = row_field(out, "full", "tokens");
    double t1 = row_field(out, "learned:max_em_drop=0.1", "tokens");
    double t5 = row_field(out, "learned:max_em_drop=0.5", "tokens");
    assert_true(t1 > 0 && t1 < full);
    assert_true(t5 <= t1);
    /* the file is the built-in stopper: same spec, same tokens and EM */
    rc = run("eval data/verifycot_date_gpt35_k10.jsonl --policy @data/stopper.json --json --shuffles 4", &out2, &err2);
    if (rc) fail_msg("exit %d: %s", rc, err2);
    assert_true(row_field(out2, "learned:max_em_drop=0.1", "tokens") == t1);
    assert_true(row_field(out2, "learned:max_em_drop=0.1", "em") == row_field(out, "learned:max_em_drop=0.1", "em"));
    free(out);
    free(err);
    free(out2);
    free(err2);
}

static void test_bad_input(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    struct {
        const char *args, *msg;
    } cases[] = {
        {"learn %s --level sideways --out %s/x.json", "--level"},
        {"learn %s", "--out FILE is required"},
        {"learn %s --features margin,p_run --out %s/x.json", "'p_run' is a within feature"},
        {"learn %s --features nope --out %s/x.json", "--features: unknown feature 'nope'"},
        {"learn %s --within-features margin --level within --out %s/x.json", "'margin' is an across feature"},
        {"learn %s --hidden 65 --out %s/x.json", "--hidden"},
        {"learn %s --delta 1.5 --out %s/x.json", "--delta"},
        {"learn %s --learner sgd --out %s/x.json", "--learner"},
        {"learn %s --out /nonexistent-dir/x.json", "nonexistent-dir"},
        {"learn %s --emit-c data/stopper.json --out %s/x.json", "--emit-c FILE takes nothing else"},
        {"eval %s --policy learned:probe_threshold=0.5", "probe_threshold is the within head's"},
        {"eval %s --policy learned:level=within,threshold=0.5", "no within head"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[2400], *out, *err;
        snprintf(args, sizeof args, cases[i].args, files, tmpdir);
        int rc = run(args, &out, &err);
        if (rc != 2 && rc != 1) fail_msg("case %zu: exit %d", i, rc);
        if (!strstr(err, cases[i].msg)) fail_msg("case %zu: '%s' not in: %s", i, cases[i].msg, err);
        free(out);
        free(err);
    }
    char x[600];
    snprintf(x, sizeof x, "%s/x.json", tmpdir);
    assert_int_not_equal(access(x, F_OK), 0); /* nothing written */
}

static void test_help_lists_features(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char *out, *err;
    assert_int_equal(run("learn --help", &out, &err), 0);
    assert_non_null(strstr(out, "beta_logit"));
    assert_non_null(strstr(out, "p_wconf"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learn_and_eval),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_help_lists_features),
        cmocka_unit_test(test_eval_shipped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
