/*
 * test_cli_meta.c - end-to-end tests of `earlystop meta-train` and
 * `earlystop adapt` ($ES_BIN, default build/earlystop) on real shared files
 * ($ES_SHARED_DATA): a prior trained on some files adapts to another, the
 * policy file loads into `eval`, --json agrees with the file, the shipped
 * data/prior.json works on the demo data, results do not depend on the
 * thread count, and bad input (usage, a damaged or newer prior, too many
 * items, a one-sample file) gets exit 2 (1 for a missing file), a message
 * naming what is wrong, and nothing written.
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

#include <jansson.h>

#include "refdata.h"
#include "clirun.h"

static char f_train[4][512], f_new[512], f_think[512], prior[600];
static const char *const train_names[4] = {"mot_gpt35_date_cot1", "verifycot_date_gpt35_k10",
                                           "faithful_date_codex002_k40", "mot_gpt35_date_cot2_t08"};

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++)
        snprintf(f_train[i], sizeof f_train[i], "%s/traces/%s.jsonl", es_ref_data_dir(), train_names[i]);
    snprintf(f_new, sizeof f_new, "%s/traces/mot_gpt35_date_cot1_t04.jsonl", es_ref_data_dir());
    snprintf(f_think, sizeof f_think, "%s/traces/r1qwen32b_gsm8k_think.jsonl", es_ref_data_dir());
    if (clirun_setup("test_cli_meta")) return -1;
    snprintf(prior, sizeof prior, "%s/prior.json", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return clirun_teardown();
}

static int data_present(void)
{
    for (int i = 0; i < 4; i++)
        if (access(f_train[i], R_OK)) {
            print_message("shared data absent (%s): set ES_SHARED_DATA; skipping\n", f_train[i]);
            return 0;
        }
    return access(f_new, R_OK) == 0 && access(f_think, R_OK) == 0;
}

static json_t *parse(const char *text, const char *what)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!json_is_object(j)) fail_msg("%s: not one JSON object (%s): %.300s", what, je.text, text);
    return j;
}

/* The prior every test adapts with: trained once on four date files. */
static void need_prior(void)
{
    if (access(prior, R_OK) == 0) return;
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "meta-train '%s' '%s' '%s' '%s' --shuffles 3 --out '%s'", f_train[0], f_train[1],
             f_train[2], f_train[3], prior);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("meta-train: exit %d: %s", rc, err);
    free(out);
    free(err);
}

static void test_help(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char *out, *err;
    assert_int_equal(run("meta-train --help", &out, &err), 0);
    assert_non_null(strstr(out, "usage: earlystop meta-train"));
    assert_non_null(strstr(out, "\n  margin "));
    free(out);
    free(err);
    assert_int_equal(run("adapt --help", &out, &err), 0);
    assert_non_null(strstr(out, "--labels gold|none"));
    assert_non_null(strstr(out, "--guarantee"));
    free(out);
    free(err);
    assert_int_equal(run("--help", &out, &err), 0);
    assert_non_null(strstr(out, "\n  meta-train "));
    assert_non_null(strstr(out, "\n  adapt "));
    free(out);
    free(err);
}

/* meta-train: the prior file, its tasks, and --json saying the same. */
static void test_meta_train(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    char args[4096], path[600], *out, *err;
    snprintf(path, sizeof path, "%s/p2.json", tmpdir);
    snprintf(args, sizeof args, "meta-train '%s' '%s' '%s' '%s' '%s' --shuffles 3 --out '%s' --json", f_train[0],
             f_train[1], f_train[2], f_train[3], f_think, path);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    json_t *doc = parse(out, "meta-train --json");
    assert_int_equal(json_integer_value(json_object_get(doc, "tasks_used")), 4);
    json_t *tasks = json_object_get(doc, "tasks");
    assert_int_equal(json_array_size(tasks), 5);
    /* the one-sample file is listed, not used */
    json_t *think = json_array_get(tasks, 4);
    assert_true(json_is_false(json_object_get(think, "used")));
    char *text = slurp(path);
    json_t *p = parse(text, "prior");
    assert_string_equal(json_string_value(json_object_get(p, "format")), "earlystop-prior");
    assert_int_equal(json_integer_value(json_object_get(p, "version")), 1);
    assert_int_equal(json_array_size(json_object_get(p, "tasks")), 4);
    assert_string_equal(json_string_value(json_object_get(p, "default_family")),
                        json_string_value(json_object_get(doc, "default_family")));
    /* each task's best in --json is the one in the file */
    for (size_t i = 0; i < 4; i++) {
        json_t *best = json_object_get(json_array_get(tasks, i), "best");
        json_t *margin = json_object_get(best, "margin");
        assert_non_null(strstr(json_string_value(json_object_get(margin, "gold")), "margin:m="));
    }
    json_decref(p);
    json_decref(doc);
    free(text);
    free(out);
    free(err);
}

/* adapt: the policy file loads into eval; --json holds the same policy; the
 * same seed gives the same bytes whatever the threads; another seed draws
 * other items. */
static void test_adapt_policy_file(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    need_prior();
    char args[4096], pol[600], pol2[600], *out, *err;
    snprintf(pol, sizeof pol, "%s/pol.json", tmpdir);
    snprintf(pol2, sizeof pol2, "%s/pol2.json", tmpdir);
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --seed 5 --out '%s' --threads 1", prior, f_new,
             pol);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(out, "policy: margin:"));
    assert_non_null(strstr(out, "guarantee: none"));
    assert_non_null(strstr(out, "460 items"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --seed 5 --out '%s' --threads 2", prior, f_new,
             pol2);
    assert_int_equal(run(args, &out, &err), 0);
    assert_true(same_bytes(pol, pol2));
    free(out);
    free(err);
    char *text = slurp(pol);
    json_t *p = parse(text, "policy file");
    const char *spec = json_string_value(json_object_get(p, "spec"));
    assert_non_null(spec);
    assert_int_equal(json_integer_value(json_object_get(p, "items")), 16);
    assert_true(json_is_false(json_object_get(json_object_get(p, "guarantee"), "certified")));
    snprintf(args, sizeof args, "eval '%s' --policy @'%s'", f_new, pol);
    rc = run(args, &out, &err);
    if (rc) fail_msg("eval --policy @file: exit %d: %s", rc, err);
    assert_non_null(strstr(out, spec));
    free(out);
    free(err);
    /* --json prints the same document */
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --seed 5 --json", prior, f_new);
    assert_int_equal(run(args, &out, &err), 0);
    json_t *j = parse(out, "adapt --json");
    assert_string_equal(json_string_value(json_object_get(j, "spec")), spec);
    json_decref(j);
    free(out);
    free(err);
    /* unlabelled adaptation says so, and --evaluate reports the other items */
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --seed 5 --labels none --evaluate --json", prior,
             f_new);
    assert_int_equal(run(args, &out, &err), 0);
    j = parse(out, "adapt --labels none --json");
    assert_string_equal(json_string_value(json_object_get(j, "labels")), "none");
    json_t *ev = json_object_get(j, "evaluate");
    assert_int_equal(json_integer_value(json_object_get(ev, "items")), 369 - 16);
    double lo = json_number_value(json_object_get(ev, "em_delta_lo_pts")),
           hi = json_number_value(json_object_get(ev, "em_delta_hi_pts")),
           d = json_number_value(json_object_get(ev, "em_delta_pts"));
    assert_true(lo <= d && d <= hi);
    assert_true(json_number_value(json_object_get(ev, "share")) < 1);
    json_decref(j);
    json_decref(p);
    free(text);
    free(out);
    free(err);
}

/* The shipped prior adapts the demo data (the project's own copy). */
static void test_shipped_prior(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    if (access("data/prior.json", R_OK) || access("data/verifycot_date_gpt35_k10.jsonl", R_OK)) {
        print_message("data/prior.json or the demo data absent: skipping\n");
        skip();
    }
    char *out, *err;
    int rc = run("adapt --prior data/prior.json data/verifycot_date_gpt35_k10.jsonl --items 32 --json", &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    json_t *j = parse(out, "adapt with data/prior.json");
    assert_non_null(strstr(json_string_value(json_object_get(j, "spec")), "clinch=on"));
    json_decref(j);
    free(out);
    free(err);
}

/* --guarantee with too few items: exit 2, the count needed, nothing written;
 * with a loose eps and all items of a large file, a certified policy. */
static void test_guarantee(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    need_prior();
    char args[4096], pol[600], *out, *err;
    snprintf(pol, sizeof pol, "%s/g.json", tmpdir);
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --guarantee --out '%s'", prior, f_new, pol);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "--guarantee"));
    assert_non_null(strstr(err, "460 items"));
    assert_int_equal(access(pol, F_OK), -1);
    free(out);
    free(err);
    char loose[600];
    snprintf(loose, sizeof loose, "%s/loose.json", tmpdir);
    snprintf(args, sizeof args, "meta-train '%s' '%s' '%s' --shuffles 2 --max-em-drop 5 --out '%s'", f_train[0],
             f_train[1], f_train[3], loose);
    assert_int_equal(run(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 359 --guarantee --json --out '%s'", loose,
             f_train[2], pol);
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    json_t *j = parse(out, "adapt --guarantee");
    assert_true(json_is_true(json_object_get(json_object_get(j, "guarantee"), "certified")));
    json_decref(j);
    assert_int_equal(access(pol, R_OK), 0);
    free(out);
    free(err);
    /* at 2 points, 200 items certify part of the grid but not the estimate:
     * --guarantee keeps the most aggressive certified point, a larger m */
    snprintf(args, sizeof args, "meta-train '%s' '%s' '%s' --shuffles 2 --max-em-drop 2 --out '%s'", f_train[0],
             f_train[1], f_train[2], loose);
    assert_int_equal(run(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 200 --guarantee --json", loose, f_train[3]);
    rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    j = parse(out, "adapt --guarantee, part of the grid certified");
    json_t *g = json_object_get(j, "guarantee");
    const char *spec = json_string_value(json_object_get(j, "spec"));
    const char *est = json_string_value(json_object_get(j, "estimate_spec"));
    if (!est) fail_msg("the estimate was certified: no partial case (%s)", out);
    assert_string_equal(spec, json_string_value(json_object_get(g, "certified_spec")));
    assert_true(json_number_value(json_object_get(g, "certified_pvalue")) <= 0.1);
    assert_true(atoi(strstr(spec, "m=") + 2) > atoi(strstr(est, "m=") + 2));
    json_decref(j);
    free(out);
    free(err);
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

/* args with @P (the prior), @N (the new file), @T (the one-sample file),
 * @V (a newer prior), @B (a broken one), @D (the temporary directory), @O
 * (an output that must not appear) replaced, quoted. */
static void fill(char *buf, size_t cap, const char *tmpl, const char *const subst[7])
{
    static const char keys[] = "PNTVBDO";
    size_t at = 0;
    for (const char *c = tmpl; *c && at + 1 < cap; c++) {
        const char *k = c[0] == '@' && c[1] ? strchr(keys, c[1]) : NULL;
        if (k) {
            const char *v = subst[k - keys];
            at += (size_t)snprintf(buf + at, cap - at, c[1] == 'D' ? "%s" : "'%s'", v);
            c++;
        } else {
            buf[at++] = *c;
        }
    }
    buf[at < cap ? at : cap - 1] = '\0';
}

/* Bad input: exit 2 (1 for a missing file), a message naming the problem,
 * no output written. */
static void test_bad_input(void **state)
{
    (void)state;
    if (!bin_present() || !data_present()) skip();
    need_prior();
    char newer[600], broken[600], pol[600];
    snprintf(newer, sizeof newer, "%s/newer.json", tmpdir);
    snprintf(broken, sizeof broken, "%s/broken.json", tmpdir);
    snprintf(pol, sizeof pol, "%s/bad-out.json", tmpdir);
    /* a prior of a later version, and one with a damaged field */
    char *text = slurp(prior);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    json_object_set_new(j, "version", json_integer(7));
    assert_int_equal(json_dump_file(j, newer, 0), 0);
    json_object_set_new(j, "version", json_integer(1));
    json_t *fit = json_object_get(json_object_get(json_array_get(json_object_get(j, "families"), 0), "fits"), "gold");
    json_object_set_new(fit, "var", json_string("wide"));
    assert_int_equal(json_dump_file(j, broken, 0), 0);
    json_decref(j);
    free(text);
    const struct {
        const char *args;
        int rc;
        const char *says;
    } cases[] = {
        {"adapt @N --items 16", 2, "--prior"},
        {"adapt --prior @P --items 16", 2, "no trace file"},
        {"adapt --prior @P @N", 2, "--items K is required"},
        {"adapt --prior @P @N --items 0", 2, "--items: '0'"},
        {"adapt --prior @P @N --items 5000", 2, "has only 369 items"},
        {"adapt --prior @P @N --items 16 --labels silver", 2, "--labels: 'silver'"},
        {"adapt --prior @P @N --items 16 --method magic", 2, "--method: 'magic'"},
        {"adapt --prior @P @N --items 16 --family dynasor", 2, "no family 'dynasor'"},
        {"adapt --prior @P @N --items 16 --max-em-drop 1", 2, "the prior's"},
        {"adapt --prior @P @T --items 16", 2, "one sample per item"},
        {"adapt --prior @V @N --items 16", 2, "version 7"},
        {"adapt --prior @B @N --items 16", 2, "families[0].fits.gold.var"},
        {"adapt --prior @D/none.json @N --items 16", 1, "none.json"},
        {"adapt --prior @N @N --items 16", 2, "written by `earlystop meta-train`"},
        {"meta-train @N @N @T --out @O", 2, "given twice"},
        {"meta-train @N @T --out @O", 2, "at least 3"},
        {"meta-train @N --shuffles 2", 2, "--out PRIOR.json is required"},
        {"meta-train --out @O", 2, "no trace file"},
        {"meta-train @N --out @O --delta 2", 2, "--delta: '2'"},
        {"meta-train @N --out @O --frobnicate", 2, "unknown option '--frobnicate'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4096], *out, *err;
        const char *subst[7] = {prior, f_new, f_think, newer, broken, tmpdir, pol};
        fill(args, sizeof args, cases[i].args, subst);
        int rc = run(args, &out, &err);
        if (rc != cases[i].rc) fail_msg("%s: exit %d, not %d: %s", args, rc, cases[i].rc, err);
        if (!strstr(err, cases[i].says)) fail_msg("%s: stderr lacks '%s': %s", args, cases[i].says, err);
        if (access(pol, F_OK) == 0) fail_msg("%s: wrote %s", args, pol);
        free(out);
        free(err);
    }
    /* an output that cannot be written fails before the work, and a failed
     * run leaves an existing output as it was */
    char args[4096], keep[600], *out, *err;
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --out '%s/no/such/dir/p.json'", prior, f_new,
             tmpdir);
    assert_int_not_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(err, "no/such/dir"));
    free(out);
    free(err);
    snprintf(keep, sizeof keep, "%s/keep.json", tmpdir);
    write_file(keep, "precious\n");
    snprintf(args, sizeof args, "adapt --prior '%s' '%s' --items 16 --guarantee --out '%s'", prior, f_new, keep);
    assert_int_equal(run(args, &out, &err), 2);
    char *k = slurp(keep);
    assert_string_equal(k, "precious\n");
    free(k);
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_meta_train),
        cmocka_unit_test(test_adapt_policy_file),
        cmocka_unit_test(test_shipped_prior),
        cmocka_unit_test(test_guarantee),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
