/*
 * test_cli_learn.c - `earlystop learn` end to end on real traces: a stopper
 * trained on two files is written, says what it chose, loads in `eval
 * --policy @FILE` (where it saves tokens) and gives the same file for the
 * same seed on 1 and 2 threads; bad input exits 2 with a message and
 * writes nothing; `learned` without a stopper file says what to do; the
 * shipped stopper (data/stopper.json, built in) runs at its 0.1- and
 * 0.5-point operating points on a demo file, as a file and built in alike;
 * --per-file is in the help and the file written says so.
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
        {"eval %s --policy learned:level=across,probe_threshold=0.5", "probe_threshold is the within head's"},
        {"eval %s --policy learned:level=within,threshold=0.5", "threshold is the across head's"},
        {"learn %s --require nope --out %s/x.json", "--require: unknown feature 'nope'"},
        {"learn %s --require p_conf --out %s/x.json", "'p_conf' is not among the features the stopper reads"},
        {"learn %s --join data/stopper.json --out %s/x.json", "--join takes no trace files"},
        {"learn --join data/stopper.json data/stopper.json", "--join needs --out FILE"},
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

/* A within head trained on the built-in model's probes with --require
 * p_conf carries the requirement and its probe spacing; --join puts it
 * beside an across head (same budgets) into a both-level stopper that
 * loads and runs; joins that cannot be meant are refused. */
static void test_join_and_require(void **state)
{
    (void)state;
    if (!bin_present() || access("data/model.bin", R_OK)) skip();
    char args[2400], *out, *err;
    const char *steps[] = {
        "generate --task date --items 24 --samples 4 --probe-every 16 --seed 3 --out %s/g.jsonl",
        "learn %s/g.jsonl --level within --every 2 --require p_conf --shuffles 2 --out %s/w.json",
        "learn %s/g.jsonl --level across --shuffles 2 --out %s/a.json",
        "learn %s/g.jsonl --level across --budgets 0.5,1 --max-em-drop 0.5 --shuffles 2 --out %s/a2.json",
        "learn --join %s/a.json %s/w.json --out %s/both.json --json",
        "learn %s/g.jsonl --level within --every 2 --require p_conf --across-from %s/a.json --shuffles 2 --out %s/bw.json",
        "learn %s/g.jsonl --level across --min 3 --shuffles 2 --out %s/a3.json",
        "learn %s/g.jsonl --level within --across-from %s/a3.json --shuffles 2 --out %s/bw3.json",
        "learn %s/g.jsonl --level within --every 2 --across-from %s/a.json --per-file --shuffles 2 --out %s/bwp.json",
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        snprintf(args, sizeof args, steps[i], tmpdir, tmpdir, tmpdir);
        int rc = run(args, &out, &err);
        if (rc) fail_msg("%s: exit %d: %s", args, rc, err);
        free(out);
        free(err);
    }
    /* a cue required where no probe has cues: the head could never fire, so
     * it is refused rather than written (it used to be, silently) */
    snprintf(args, sizeof args, "learn %s/g.jsonl --level within --require p_conclude --shuffles 2 --out %s/c.json",
             tmpdir, tmpdir);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "no probe of the training files carries text cues"));
    free(out);
    free(err);
    char path[600];
    snprintf(path, sizeof path, "%s/c.json", tmpdir);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/both.json", tmpdir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) fail_msg("%s: %s", path, je.text);
    json_t *w = json_object_get(j, "within"), *a = json_object_get(j, "across");
    assert_true(json_is_object(w) && json_is_object(a));
    assert_string_equal(json_string_value(json_array_get(json_object_get(w, "required"), 0)), "p_conf");
    assert_int_equal(json_integer_value(json_object_get(w, "every")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "spec")), "learned:max_em_drop=0.1,min=2");
    assert_non_null(json_object_get(json_object_get(j, "within_from"), "trained_on"));
    json_decref(j);
    /* --across-from: the within head calibrated beside a.json's across head,
     * which it carries unchanged with its thresholds */
    char pa[600];
    snprintf(pa, sizeof pa, "%s/a.json", tmpdir);
    snprintf(path, sizeof path, "%s/bw.json", tmpdir);
    json_t *ja = json_load_file(pa, 0, &je), *jb = json_load_file(path, 0, &je);
    if (!ja || !jb) fail_msg("%s", je.text);
    assert_true(json_equal(json_object_get(ja, "across"), json_object_get(jb, "across")));
    assert_true(json_is_object(json_object_get(jb, "within")));
    json_t *pa_pts = json_object_get(ja, "operating_points"), *pb_pts = json_object_get(jb, "operating_points");
    assert_int_equal(json_array_size(pa_pts), json_array_size(pb_pts));
    for (size_t i = 0; i < json_array_size(pa_pts); i++)
        assert_true(json_equal(json_object_get(json_array_get(pa_pts, i), "threshold"),
                               json_object_get(json_array_get(pb_pts, i), "threshold")));
    assert_non_null(json_object_get(json_object_get(jb, "across_from"), "file"));
    json_decref(ja);
    json_decref(jb);
    /* beside an across head calibrated at min=3 the stopper keeps min=3 */
    snprintf(path, sizeof path, "%s/bw3.json", tmpdir);
    jb = json_load_file(path, 0, &je);
    if (!jb) fail_msg("%s: %s", path, je.text);
    assert_string_equal(json_string_value(json_object_get(jb, "spec")), "learned:max_em_drop=0.1,min=3");
    json_decref(jb);
    /* --per-file: the file says its budget was held file by file */
    snprintf(path, sizeof path, "%s/bwp.json", tmpdir);
    jb = json_load_file(path, 0, &je);
    if (!jb) fail_msg("%s: %s", path, je.text);
    assert_true(json_is_true(json_object_get(jb, "per_file")));
    json_decref(jb);
    snprintf(path, sizeof path, "%s/both.json", tmpdir);
    /* it runs at both levels, reading every 2nd probe */
    snprintf(args, sizeof args, "eval %s/g.jsonl --policy @%s --json --no-oracle --shuffles 2", tmpdir, path);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(out, "\"policy\": \"learned:max_em_drop=0.1,min=2,max=all\""));
    free(out);
    free(err);
    /* two stopper files and the built-in one share a spec: the files' rows
     * are named by the files, and a file given twice (however its path is
     * spelt) is listed once */
    snprintf(args, sizeof args, "eval %s/g.jsonl --policy learned --policy @%s/a.json --policy @%s --policy @%s "
             "--policy @%s/./both.json --json --no-oracle --shuffles 2 --decisions %s/dec.jsonl", tmpdir, tmpdir, path,
             path, tmpdir, tmpdir);
    rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    char row[700];
    snprintf(row, sizeof row, "\"policy\": \"@%s/a.json\"", tmpdir);
    assert_non_null(strstr(out, row));
    snprintf(row, sizeof row, "\"policy\": \"@%s\"", path);
    assert_non_null(strstr(out, row));
    assert_null(strstr(strstr(out, row) + 1, row));
    assert_null(strstr(out, "/./both.json"));
    assert_non_null(strstr(out, "\"policy\": \"learned:max_em_drop=0.1,min=2,max=all\""));
    free(out);
    free(err);
    /* the decisions carry the rows' names: each file's rows apart */
    char dec[600];
    snprintf(dec, sizeof dec, "%s/dec.jsonl", tmpdir);
    char *d = slurp(dec);
    assert_non_null(d);
    snprintf(row, sizeof row, "\"policy\":\"@%s/a.json\"", tmpdir);
    assert_non_null(strstr(d, row));
    snprintf(row, sizeof row, "\"policy\":\"@%s\"", path);
    assert_non_null(strstr(d, row));
    assert_non_null(strstr(d, "\"policy\":\"learned:max_em_drop=0.1,min=2,max=all\""));
    free(d);
    struct {
        const char *args, *msg;
    } bad[] = {
        {"learn --join %s/w.json %s/w.json --out %s/x.json", "has no across head"},
        {"learn --join %s/a.json %s/a.json --out %s/x.json", "has no within head"},
        {"learn --join %s/a2.json %s/w.json --out %s/x.json", "different EM budgets"},
        {"learn %s/g.jsonl --level within --across-from %s/w.json --out %s/x.json", "the stopper has no across head"},
        {"learn %s/g.jsonl --level within --across-from %s/a2.json --out %s/x.json", "no operating point for 0.1 EM points"},
        {"learn %s/g.jsonl --across-from %s/a.json --out %s/x.json", "goes with --level within"},
        {"learn %s/g.jsonl --level within --across-from %s/a3.json --min 2 --out %s/x.json",
         "a3.json was calibrated at min=3, not --min 2"},
        /* a fit's options would be ignored by a join */
        {"learn --join %s/a.json %s/w.json --out %s/x.json --level within", "no options of a fit (--level given)"},
        {"learn --join %s/a.json %s/w.json --out %s/x.json --leave-one-file-out", "(--leave-one-file-out given)"},
        /* a spec that does not run on its weights would be joined into max_em_drop=nan */
        {"learn --join %s/abad.json %s/w.json --out %s/x.json", "abad.json: its spec 'ac-beta' is not `learned`"},
        {"learn --join %s/a.json %s/wbad.json --out %s/x.json", "wbad.json: its spec 'learned:max_em_drop=0.07'"},
    };
    const char *respec[][2] = {{"a", "ac-beta"}, {"w", "learned:max_em_drop=0.07"}};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.json", tmpdir, respec[i][0]);
        json_t *s = json_load_file(path, 0, &je);
        if (!s) fail_msg("%s: %s", path, je.text);
        json_object_set_new(s, "spec", json_string(respec[i][1]));
        snprintf(path, sizeof path, "%s/%sbad.json", tmpdir, respec[i][0]);
        assert_int_equal(json_dump_file(s, path, 0), 0);
        json_decref(s);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, bad[i].args, tmpdir, tmpdir, tmpdir);
        rc = run(args, &out, &err);
        if (rc != 2) fail_msg("%s: exit %d", args, rc);
        if (!strstr(err, bad[i].msg)) fail_msg("'%s' not in: %s", bad[i].msg, err);
        free(out);
        free(err);
    }
    snprintf(path, sizeof path, "%s/x.json", tmpdir);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* Two feature sets: each budget says which model (set, lambda) serves it,
 * the file carries one across head per model chosen, and it runs at each
 * budget; several sets go with the across level only. */
static void test_feature_sets(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    char args[2400], *out, *err;
    snprintf(args, sizeof args, "learn %s --features margin,leader_wf,wf_share --features margin,beta_logit "
             "--budgets 0.5,3 --max-em-drop 0.5 --shuffles 4 --out %s/fs.json --json", files, tmpdir);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j) fail_msg("not JSON: %s", out);
    json_t *pts = json_object_get(j, "operating_points");
    assert_int_equal(json_array_size(pts), 2);
    int sets[2];
    for (size_t i = 0; i < 2; i++) {
        json_t *fs = json_object_get(json_array_get(pts, i), "feature_set");
        assert_true(json_is_integer(fs));
        sets[i] = (int)json_integer_value(fs);
        assert_true(sets[i] == 0 || sets[i] == 1);
    }
    json_decref(j);
    free(out);
    free(err);
    char path[600];
    snprintf(path, sizeof path, "%s/fs.json", tmpdir);
    j = json_load_file(path, 0, &je);
    if (!j) fail_msg("%s", je.text);
    /* a second head exactly when the two budgets chose different models */
    json_t *alt = json_object_get(j, "across_alt");
    json_t *cal = json_object_get(j, "calibration");
    int differ = sets[0] != sets[1] ||
                 !json_equal(json_object_get(json_array_get(cal, 0), "lambda"),
                             json_object_get(json_array_get(cal, 1), "lambda"));
    assert_int_equal(alt != NULL, differ);
    json_decref(j);
    /* it runs at each budget: the file's own spec (0.5 pt), and a copy standing for 3 pt */
    j = json_load_file(path, 0, &je);
    json_object_set_new(j, "spec", json_string("learned:max_em_drop=3"));
    char path3[600];
    snprintf(path3, sizeof path3, "%s/fs3.json", tmpdir);
    assert_int_equal(json_dump_file(j, path3, JSON_REAL_PRECISION(17)), 0);
    json_decref(j);
    const char *both[2] = {path, path3};
    for (int b = 0; b < 2; b++) {
        snprintf(args, sizeof args, "eval %s/traces/mot_gpt35_date_cot2.jsonl --policy @%s --no-oracle --json",
                 es_ref_data_dir(), both[b]);
        rc = run(args, &out, &err);
        if (rc) fail_msg("exit %d: %s", rc, err);
        assert_non_null(strstr(out, b ? "learned:max_em_drop=3," : "learned:max_em_drop=0.5,"));
        free(out);
        free(err);
    }
    snprintf(args, sizeof args, "learn %s --features margin --features beta_logit --level within --out %s/x.json",
             files, tmpdir);
    rc = run(args, &out, &err);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "several feature sets go with --level across"));
    free(out);
    free(err);
}

/* Every budget has its calibration entry in the file, the ones chosen on
 * the training items too (their p-value is undefined: null), each with the
 * model that serves it: a NaN must not drop an entry or move another's. */
static void test_calibration_every_point(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    char args[2400], *out, *err;
    snprintf(args, sizeof args, "learn %s/traces/mot_gpt4_crepe_cot1_k3.jsonl --budgets 0.5,1,2,3 --max-em-drop 3 "
             "--shuffles 2 --out %s/cal.json --json", es_ref_data_dir(), tmpdir);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je), *pts = json_object_get(j, "operating_points");
    if (!j) fail_msg("not JSON: %s", out);
    char path[600];
    snprintf(path, sizeof path, "%s/cal.json", tmpdir);
    json_t *f = json_load_file(path, 0, &je), *cal = json_object_get(f, "calibration");
    if (!f) fail_msg("%s", je.text);
    assert_int_equal(json_array_size(cal), 4);
    int empirical = 0;
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_array_get(cal, i), *p = json_array_get(pts, i);
        assert_true(json_number_value(json_object_get(c, "max_em_drop")) ==
                    json_number_value(json_object_get(p, "max_em_drop")));
        assert_string_equal(json_string_value(json_object_get(c, "selection")),
                            json_string_value(json_object_get(p, "selection")));
        assert_true(json_equal(json_object_get(c, "lambda"), json_object_get(p, "lambda")));
        assert_int_equal(json_is_null(json_object_get(c, "pvalue")), json_is_null(json_object_get(p, "pvalue")));
        assert_int_equal(json_object_get(c, "feature_set") != NULL, 1);
        empirical += !strcmp(json_string_value(json_object_get(c, "selection")), "empirical");
    }
    assert_true(empirical > 0); /* the case this is about: 0.5 and 1 pt are beyond 171 test items */
    json_decref(f);
    json_decref(j);
    free(out);
    free(err);
}

static void test_help_lists_features(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char *out, *err;
    assert_int_equal(run("learn --help", &out, &err), 0);
    assert_non_null(strstr(out, "beta_logit"));
    assert_non_null(strstr(out, "p_wconf"));
    assert_non_null(strstr(out, "--per-file"));
    free(out);
    free(err);
    assert_int_equal(run("tune --help", &out, &err), 0);
    assert_non_null(strstr(out, "--per-file"));
    free(out);
    free(err);
}

/* `earlystop cues` marks the shared *_think files' paragraph-end probes
 * (every sample, and again on its own output: a fixed point); a within head
 * trained on one model's cues, calibrated there, then stops the other
 * model's chains early at no pooled EM cost, leave one file out, far
 * closer to the stable-final oracle than the same learner without cues. */
static void test_cues_within(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    const char *names[2] = {"r1qwen32b_gsm8k_think", "qwq32b_gsm8k_think"};
    char marked[2][600], args[4000], *out, *err;
    for (int i = 0; i < 2; i++) {
        snprintf(marked[i], sizeof marked[i], "%s/%s.jsonl", tmpdir, names[i]);
        snprintf(args, sizeof args, "cues %s/traces/%s.jsonl --out %s --json", es_ref_data_dir(), names[i], marked[i]);
        assert_int_equal(run(args, &out, &err), 0);
        json_t *c = json_loads(out, 0, NULL);
        assert_non_null(c);
        json_int_t with = json_integer_value(json_object_get(c, "samples_with_probes"));
        assert_true(with > 300);
        assert_int_equal(json_integer_value(json_object_get(c, "marked")), with);
        assert_int_equal(json_integer_value(json_object_get(c, "end")), with); /* one per closed thinking */
        assert_true(json_integer_value(json_object_get(c, "conclude")) > 0);
        json_decref(c);
        free(out);
        free(err);
        char again[1300];
        snprintf(again, sizeof again, "%s.again", marked[i]);
        snprintf(args, sizeof args, "cues %s --out %s", marked[i], again);
        assert_int_equal(run(args, &out, &err), 0);
        assert_true(same_bytes(marked[i], again));
        free(out);
        free(err);
    }
    double x[2][2]; /* [with cues, without][learned pooled dEM, median x] */
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args,
                 "learn %s %s --level within --leave-one-file-out --reward gold --loss net --json %s", marked[0],
                 marked[1],
                 k ? "--within-features p_log_tokens,p_run,p_run_share,p_distinct_share,p_cur_share,p_changed,p_null,"
                     "p_wf,p_has_conf,p_conf,p_conf_trend,p_wconf,p_tokens_rel,p_agrees_leader"
                   : ""); /* the default features, with and without the three cues */
        assert_int_equal(run(args, &out, &err), 0);
        json_t *o = json_loads(out, 0, NULL);
        assert_non_null(o);
        json_t *pooled = json_object_get(o, "pooled"), *row = json_array_get(pooled, 0);
        assert_string_equal(json_string_value(json_object_get(row, "method")), "learned");
        x[k][0] = json_real_value(json_object_get(row, "em_delta_pts"));
        x[k][1] = json_real_value(json_object_get(row, "median_oracle_multiple"));
        /* and with cues, on each file: within the budget, and fewer tokens than the full chain */
        for (size_t f = 0; k == 0 && f < 2; f++) {
            json_t *file = json_array_get(json_object_get(o, "files"), f);
            json_t *l = json_array_get(json_object_get(file, "learned"), 1); /* the 0.5-pt point */
            assert_true(json_real_value(json_object_get(l, "em_delta_pts")) >= -0.5);
            assert_true(json_real_value(json_object_get(l, "tokens")) <
                        0.95 * json_real_value(json_object_get(file, "full_tokens")));
        }
        json_decref(o);
        free(out);
        free(err);
    }
    print_message("within, leave one file out: cues %+.2f pt at %.2fx; no cues %+.2f pt at %.2fx\n", x[0][0],
                  x[0][1], x[1][0], x[1][1]);
    assert_true(x[0][0] >= -0.5);
    assert_true(x[0][1] < x[1][1] - 0.1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learn_and_eval),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_help_lists_features),
        cmocka_unit_test(test_eval_shipped),
        cmocka_unit_test(test_join_and_require),
        cmocka_unit_test(test_feature_sets),
        cmocka_unit_test(test_calibration_every_point),
        cmocka_unit_test(test_cues_within),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
