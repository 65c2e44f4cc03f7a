/*
 * test_cli_tune.c - end-to-end tests of `earlystop tune` ($ES_BIN, default
 * build/earlystop) on real shared files ($ES_SHARED_DATA): what a user sees
 * on bad input (exit 2, a message naming what is wrong, nothing written),
 * the policy file loading back into `eval`, the --front and --plot files,
 * the --json document agreeing with itself, --repeats keeping its
 * guarantee, leave-one-file-out pooling, and figures that do not depend on
 * the thread count.  Kept fast: small files, --family ac-beta, few orders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "earlystop_tune.h"
#include "refdata.h"
#include "clirun.h"

/* Small files of the shared data: date questions, 10 to 40 samples each. */
static char f_mot[512], f_verify[512], f_faithful[512], f_think[512];

static int setup(void **state)
{
    snprintf(f_mot, sizeof f_mot, "%s/traces/mot_gpt35_date_cot1.jsonl", es_ref_data_dir());
    snprintf(f_verify, sizeof f_verify, "%s/traces/verifycot_date_gpt35_k10.jsonl", es_ref_data_dir());
    snprintf(f_faithful, sizeof f_faithful, "%s/traces/faithful_date_codex002_k40.jsonl", es_ref_data_dir());
    snprintf(f_think, sizeof f_think, "%s/traces/r1qwen32b_gsm8k_think.jsonl", es_ref_data_dir());
    return clirun_setup("test_cli_tune");
}

static int teardown(void **state) { return clirun_teardown(); }

static int data_present(void)
{
    if (access(f_mot, R_OK) == 0 && access(f_verify, R_OK) == 0 && access(f_faithful, R_OK) == 0 &&
        access(f_think, R_OK) == 0)
        return 1;
    print_message("shared data absent (%s): set ES_SHARED_DATA; skipping\n", f_mot);
    return 0;
}

/* The common, fast settings. */
#define FAST "--family ac-beta --shuffles 2"

static json_t *parse_json(const char *text, const char *what)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!json_is_object(j)) fail_msg("%s: not one JSON object (%s): %.400s", what, je.text, text);
    return j;
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) fail_msg("key '%s' is not a number", key);
    return json_number_value(v);
}

/* Files in tmpdir whose name starts with prefix (temporaries left behind). */
static int count_files(const char *prefix)
{
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

/* --help names every family the library knows. */
static void test_tune_help(void **state)
{
    if (!bin_present()) skip();
    char *out, *err;
    assert_int_equal(run("tune --help", &out, &err), 0);
    assert_true(es_tune_n_known_families() > 0);
    for (size_t i = 0; i < es_tune_n_known_families(); i++) {
        const char *name = es_tune_known_family(i, NULL);
        char line[128];
        snprintf(line, sizeof line, "\n  %s ", name);
        if (!strstr(out, line)) fail_msg("--help does not list family %s", name);
    }
    assert_non_null(strstr(out, "--max-em-drop"));
    assert_non_null(strstr(out, "--leave-one-file-out"));
    free(out);
    free(err);
    /* and the command is listed by `earlystop --help` (the man page reads it) */
    assert_int_equal(run("--help", &out, &err), 0);
    assert_non_null(strstr(out, "\n  tune "));
    free(out);
    free(err);
}

/* Bad input: exit 2, a message naming what is wrong, no output file. */
static void test_tune_bad_input(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char p[600];
    snprintf(p, sizeof p, "%s/p.json", tmpdir);
    const struct {
        const char *file, *args, *says;
    } cases[] = {
        {f_mot, FAST " --max-em-drop 0", "--max-em-drop: '0'"},
        {f_mot, FAST " --max-em-drop 100", "(0, 100)"},
        {f_mot, FAST " --max-em-drop -1", "--max-em-drop"},
        {f_mot, FAST " --delta 1", "--delta: '1'"},
        {f_mot, FAST " --delta 0", "--delta"},
        {f_mot, FAST " --delta nan", "--delta"},
        {f_mot, "--family nope", "unknown family 'nope'"},
        {f_mot, "--family deer", "family 'deer' does not apply"},
        {f_think, "--family ac-beta", "family 'ac-beta' does not apply"},
        {f_mot, FAST " --max-em-drop 0.05", "no candidate is certified"},
        {f_mot, FAST " --loss maybe", "--loss: 'maybe'"},
        {f_mot, FAST " --batch 4", "--batch"},
        {f_mot, FAST " --token-budget 100 --delta 0.2", "--token-budget"},
        {f_mot, FAST " --front f.txt", "--front"},
        {f_mot, FAST " --plot f.png", "--plot"},
        {f_mot, FAST " --split 0", "--split"},
        {f_mot, FAST " --leave-one-file-out", "at least two files"},
        {f_mot, FAST " --repeats 3 --out x.json", "--repeats"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4096];
        snprintf(args, sizeof args, "tune '%s' %s --out '%s'", cases[i].file, cases[i].args, p);
        char *out, *err;
        int rc = run(args, &out, &err);
        if (rc != 2) fail_msg("%s: exit %d, not 2: %s", args, rc, err);
        if (!strstr(err, cases[i].says)) fail_msg("%s: stderr lacks '%s': %s", args, cases[i].says, err);
        if (access(p, F_OK) == 0) fail_msg("%s: wrote %s", args, p);
        free(out);
        free(err);
    }
    /* no certified candidate says what would help */
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "tune '%s' " FAST " --max-em-drop 0.05", f_mot);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "larger --max-em-drop") || !strstr(err, "more calibration items")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    /* an output that cannot be written fails before any file is read */
    snprintf(args, sizeof args, "tune '%s/missing.jsonl' " FAST " --out '%s/no/such/dir/p.json'", tmpdir, tmpdir);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "--out") || strstr(err, "missing.jsonl")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    /* a file given twice would sit on both sides of the split */
    snprintf(args, sizeof args, "tune '%s' '%s' " FAST, f_mot, f_mot);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "given twice"));
    free(out);
    free(err);
}

/* A failed run leaves an existing output as it was, and no temporary. */
static void test_tune_failure_keeps_outputs(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char p[600], f[600], args[4096], *out, *err;
    snprintf(p, sizeof p, "%s/keep.json", tmpdir);
    snprintf(f, sizeof f, "%s/keep.csv", tmpdir);
    write_file(p, "precious\n");
    write_file(f, "precious too\n");
    snprintf(args, sizeof args, "tune '%s' " FAST " --max-em-drop 0.05 --out '%s' --front '%s'", f_mot, p, f);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "not written"));
    char *a = slurp(p), *b = slurp(f);
    assert_string_equal(a, "precious\n");
    assert_string_equal(b, "precious too\n");
    free(a);
    free(b);
    assert_int_equal(count_files("keep"), 2);
    assert_int_equal(count_files(".keep"), 0);
    free(out);
    free(err);
}

/* --out writes a policy file that eval loads as it is; --json says the
 * same policy; the chosen point is certified and on the tested list. */
static void test_tune_out_loads_in_eval(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char p[600], args[4096], *out, *err;
    snprintf(p, sizeof p, "%s/policy.json", tmpdir);
    snprintf(args, sizeof args, "tune '%s' " FAST " --max-em-drop 5 --delta 0.1 --out '%s' --json", f_faithful, p);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err);
    json_t *doc = parse_json(out, "tune --json");
    assert_string_equal(json_string_value(json_object_get(doc, "format")), "earlystop-tune");
    json_t *chosen = json_object_get(doc, "chosen");
    const char *spec = json_string_value(json_object_get(chosen, "spec"));
    assert_non_null(spec);
    assert_true(num(chosen, "pvalue") <= 0.1);

    char *text = slurp(p);
    json_t *pol = parse_json(text, "policy file");
    assert_string_equal(json_string_value(json_object_get(pol, "spec")), spec);
    assert_string_equal(json_string_value(json_object_get(pol, "tool")), "earlystop tune");
    assert_true(fabs(num(pol, "max_em_drop_pts") - 5) < 1e-12);
    assert_int_equal((int)num(pol, "calibration_items"), (int)num(doc, "calibration_items"));
    json_t *test = json_object_get(pol, "test");
    assert_true(json_is_object(test));
    assert_int_equal((int)num(test, "items"), (int)num(doc, "test_items"));
    free(text);

    /* eval loads it unchanged: its row is the canonical spec itself */
    char *out2, *err2;
    snprintf(args, sizeof args, "eval '%s' --policy '@%s' --json --no-oracle", f_faithful, p);
    rc = run(args, &out2, &err2);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err2);
    json_t *ev = parse_json(out2, "eval --json");
    json_t *rows = json_object_get(ev, "rows");
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "policy")), spec);

    /* the tested list: the first `certified` passed, the next did not */
    json_t *tested = json_object_get(doc, "tested");
    size_t cert = (size_t)num(doc, "certified");
    assert_true(cert >= 1 && cert <= json_array_size(tested));
    int found = 0;
    for (size_t i = 0; i < json_array_size(tested); i++) {
        json_t *t = json_array_get(tested, i);
        int c = json_is_true(json_object_get(t, "certified"));
        assert_int_equal(c, i < cert);
        if (c) assert_true(num(t, "pvalue") <= 0.1);
        if (i == cert) assert_true(num(t, "pvalue") > 0.1);
        if (c && !strcmp(json_string_value(json_object_get(t, "spec")), spec)) found = 1;
    }
    assert_true(found);

    /* the test rows: full, tuned, the two anchors, on the same items */
    json_t *trows = json_object_get(doc, "test");
    assert_int_equal(json_array_size(trows), 4);
    json_t *full = json_array_get(trows, 0), *tuned = json_array_get(trows, 1);
    assert_string_equal(json_string_value(json_object_get(tuned, "policy")), spec);
    assert_true(fabs(num(full, "em") + num(tuned, "em_delta_pts") / 100 - num(tuned, "em")) < 1e-9);
    assert_true(num(tuned, "em_delta_lo_pts") <= num(tuned, "em_delta_pts") + 1e-9);
    assert_true(num(tuned, "em_delta_hi_pts") >= num(tuned, "em_delta_pts") - 1e-9);
    assert_true(num(tuned, "tokens") < num(full, "tokens"));
    json_decref(ev);
    json_decref(pol);
    json_decref(doc);
    free(out);
    free(err);
    free(out2);
    free(err2);
}

/* --front (JSON and CSV) holds the fronts --json prints; --plot is one
 * SVG document with the legend's entries. */
static void test_tune_front_and_plot(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char fj[600], fc[600], sv[600], args[4096], *out, *err;
    snprintf(fj, sizeof fj, "%s/front.json", tmpdir);
    snprintf(fc, sizeof fc, "%s/front.CSV", tmpdir);
    snprintf(sv, sizeof sv, "%s/front.svg", tmpdir);
    snprintf(args, sizeof args,
             "tune '%s' --family ac-beta --family esc --shuffles 2 --max-em-drop 5 --front '%s' --plot '%s' --json",
             f_faithful, fj, sv);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err);
    json_t *doc = parse_json(out, "tune --json");
    char *text = slurp(fj);
    json_t *front = parse_json(text, "--front json");
    free(text);
    assert_string_equal(json_string_value(json_object_get(front, "format")), "earlystop-tune-front");
    assert_true(json_equal(json_object_get(front, "global"), json_object_get(json_object_get(doc, "fronts"), "global")));
    json_t *fams = json_object_get(front, "families");
    assert_int_equal(json_array_size(fams), 2);
    size_t n_points = 0;
    for (size_t f = 0; f < 3; f++) {
        json_t *fr = f < 2 ? json_array_get(fams, f) : json_object_get(front, "global");
        json_t *pts = json_object_get(fr, "points");
        assert_true(json_array_size(pts) > 0);
        n_points += json_array_size(pts);
        /* a front: cost up, EM up */
        for (size_t i = 1; i < json_array_size(pts); i++) {
            assert_true(num(json_array_get(pts, i), "cost") >= num(json_array_get(pts, i - 1), "cost"));
            assert_true(num(json_array_get(pts, i), "em") > num(json_array_get(pts, i - 1), "em"));
        }
    }
    free(out);
    free(err);

    /* the same run with a CSV front: a header and one line per point */
    snprintf(args, sizeof args, "tune '%s' --family ac-beta --family esc --shuffles 2 --max-em-drop 5 --front '%s'",
             f_faithful, fc);
    rc = run(args, &out, &err);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err);
    text = slurp(fc);
    assert_true(!strncmp(text, "front,spec,family,cost,tokens,share,kv,em,em_full,loss\n", 55));
    size_t lines = 0;
    for (const char *c = text; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, n_points + 1);
    free(text);

    text = slurp(sv);
    assert_true(!strncmp(text, "<?xml", 5));
    assert_non_null(strstr(text, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    size_t len = strlen(text);
    assert_true(len > 7 && !strcmp(text + len - 7, "</svg>\n"));
    const char *must[] = {"ac-beta (default)", "esc (default)", "full (every sample)", "oracle (knows the future)",
                          "global front", "exact match (%)", "chosen: "};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(text, must[i])) fail_msg("the SVG lacks '%s'", must[i]);
    /* the chosen spec is named in the picture */
    const char *spec = json_string_value(json_object_get(json_object_get(doc, "chosen"), "spec"));
    assert_non_null(strstr(text, spec));
    /* self-contained: nothing fetched */
    assert_null(strstr(text, "href"));
    free(text);
    json_decref(front);
    json_decref(doc);
    free(out);
    free(err);
}

/* --repeats: the share of splits whose test loss exceeds eps stays near
 * delta or below (the guarantee, checked on real data), and the summary
 * agrees with the rows. */
static void test_tune_repeats(void **state)
{
    if (!bin_present() || !data_present()) skip();
    const double eps_pts = 2, delta = 0.2;
    const int R = 30;
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "tune '%s' '%s' " FAST " --max-em-drop %g --delta %g --repeats %d --seed 7 --json",
             f_mot, f_verify, eps_pts, delta, R);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err);
    json_t *doc = parse_json(out, "tune --repeats --json");
    json_t *rows = json_object_get(doc, "repeats");
    assert_int_equal(json_array_size(rows), R);
    int over = 0;
    for (int i = 0; i < R; i++) {
        json_t *r = json_array_get(rows, (size_t)i);
        assert_int_equal((int)num(r, "seed"), 7 + i);
        int ex = json_is_true(json_object_get(r, "exceeded"));
        assert_int_equal(ex, num(r, "test_loss_pts") > eps_pts);
        over += ex;
    }
    assert_int_equal(over, (int)num(doc, "exceeded"));
    /* delta plus three binomial standard deviations */
    double bound = delta + 3 * sqrt(delta * (1 - delta) / R);
    if ((double)over / R > bound) fail_msg("%d of %d splits above eps: more than delta allows", over, R);
    json_decref(doc);
    free(out);
    free(err);
}

/* Leave one file out: one entry per file, each tested on its own items;
 * the pooled line is the item-weighted mean of the files'. */
static void test_tune_leave_one_file_out(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "tune '%s' '%s' '%s' " FAST " --max-em-drop 3 --leave-one-file-out --json", f_mot,
             f_verify, f_faithful);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err);
    json_t *doc = parse_json(out, "tune --leave-one-file-out --json");
    json_t *files = json_object_get(doc, "leave_one_file_out");
    assert_int_equal(json_array_size(files), 3);
    double n = 0, tok[3] = {0, 0, 0};
    size_t total = 0;
    json_t *inputs = json_object_get(doc, "files");
    for (size_t i = 0; i < 3; i++) total += (size_t)num(json_array_get(inputs, i), "items");
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_array_get(files, i);
        double items = num(f, "items");
        assert_int_equal((size_t)num(f, "calibration_items"), total - (size_t)items);
        json_t *rows = json_object_get(f, "rows");
        assert_int_equal(json_array_size(rows), 3);
        for (size_t k = 0; k < 3; k++) tok[k] += items * num(json_array_get(rows, k), "tokens");
        n += items;
    }
    json_t *pooled = json_object_get(doc, "pooled");
    assert_int_equal(json_array_size(pooled), 3);
    for (size_t k = 0; k < 3; k++)
        assert_true(fabs(num(json_array_get(pooled, k), "tokens") - tok[k] / n) < 1e-6 * (1 + tok[k] / n));
    json_decref(doc);
    free(out);
    free(err);
}

/* --calibrate/--test: the test side is the --test files' items; the
 * figures are the same bytes whatever the thread count. */
static void test_tune_explicit_sets_and_threads(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char args[4096], *out1, *err1, *out2, *err2;
    snprintf(args, sizeof args, "tune --calibrate '%s' '%s' --test '%s' " FAST " --max-em-drop 3 --json --threads 1",
             f_mot, f_verify, f_faithful);
    int rc = run(args, &out1, &err1);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err1);
    snprintf(args, sizeof args, "tune --calibrate '%s' '%s' --test '%s' " FAST " --max-em-drop 3 --json --threads 2",
             f_mot, f_verify, f_faithful);
    rc = run(args, &out2, &err2);
    if (rc) fail_msg("%s: exit %d: %s", args, rc, err2);
    json_t *a = parse_json(out1, "threads 1"), *b = parse_json(out2, "threads 2");
    assert_true(json_equal(a, b));
    json_t *tf = json_object_get(a, "test_files");
    assert_int_equal(json_array_size(tf), 1);
    assert_int_equal((int)num(a, "test_items"), (int)num(json_array_get(tf, 0), "items"));
    json_t *cf = json_object_get(a, "calibration_files");
    assert_int_equal((int)num(a, "calibration_items"),
                     (int)(num(json_array_get(cf, 0), "items") + num(json_array_get(cf, 1), "items")));
    json_decref(a);
    json_decref(b);
    free(out1);
    free(err1);
    free(out2);
    free(err2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tune_help),
        cmocka_unit_test(test_tune_bad_input),
        cmocka_unit_test(test_tune_failure_keeps_outputs),
        cmocka_unit_test(test_tune_out_loads_in_eval),
        cmocka_unit_test(test_tune_front_and_plot),
        cmocka_unit_test(test_tune_repeats),
        cmocka_unit_test(test_tune_leave_one_file_out),
        cmocka_unit_test(test_tune_explicit_sets_and_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
