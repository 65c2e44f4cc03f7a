/*
 * test_cli_eval.c - end-to-end tests of `earlystop eval` ($ES_BIN, default
 * build/earlystop): the JSON rows against the reference figures of
 * $ES_SHARED_DATA/README.md, thread-count independence of the output, and
 * what a user sees on a bad spec, a rule the data cannot feed and a policy
 * file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "refdata.h"
#include "clirun.h"

static es_ref_table tabs[ES_REF_MAX_TABLES];
static int n_tabs;

static int setup(void **state)
{
    char readme[1024];
    snprintf(readme, sizeof readme, "%s/README.md", es_ref_data_dir());
    n_tabs = es_ref_load(readme, tabs, ES_REF_MAX_TABLES);
    return clirun_setup("test_cli_eval");
}

static int teardown(void **state)
{
    return clirun_teardown();
}

static int data_present(void)
{
    if (n_tabs >= 2) return 1;
    print_message("shared data absent (%s/README.md): set ES_SHARED_DATA; skipping\n", es_ref_data_dir());
    return 0;
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

/* The row of `rows` whose policy starts with `prefix`. */
static json_t *find_row(json_t *rows, const char *prefix)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        const char *p = json_string_value(json_object_get(r, "policy"));
        if (p && !strncmp(p, prefix, strlen(prefix))) return r;
    }
    return NULL;
}

/* Compare a row's `key` with part `part` of the README cell in `column`;
 * 1 when a check was made. */
static int check(const es_ref_table *t, int r, const char *column, int part, json_t *row, const char *key,
                 int *failures)
{
    double ref;
    int dec;
    if (!es_ref_cell(t, r, column, part, &ref, &dec, failures)) return 0;
    json_t *v = json_object_get(row, key);
    if (!json_is_number(v)) fail_msg("%s: row %s lacks %s", t->cells[r][0],
                                     json_string_value(json_object_get(row, "policy")), key);
    double got = json_number_value(v);
    if (!es_ref_matches(got, ref, dec)) {
        print_error("%s: %s %s: eval %.*f, README %.*f\n", t->cells[r][0],
                    json_string_value(json_object_get(row, "policy")), key, dec + 3, got, dec, ref);
        (*failures)++;
    }
    return 1;
}

static void test_eval_json_reference(void **state)
{
    if (!bin_present() || !data_present()) skip();
    int files = 0, checked = 0, failures = es_ref_check_tables(tabs, n_tabs);
    for (int t = 0; t < n_tabs; t++)
        for (int r = 0; r < tabs[t].nrows; r++) {
            const es_ref_table *tb = &tabs[t];
            char args[1400];
            snprintf(args, sizeof args, "eval '%s/traces/%s.jsonl' --json --policy ac-beta --policy esc --bootstrap 50",
                     es_ref_data_dir(), tb->cells[r][0]);
            char *out, *err;
            int rc = run(args, &out, &err);
            if (rc != 0) fail_msg("%s: exit %d: %s", args, rc, err);
            json_error_t je;
            json_t *doc = json_loads(out, 0, &je), *rows = json_object_get(doc, "rows");
            if (!json_is_array(rows)) fail_msg("%s: no rows in %s", args, out);
            json_t *full = find_row(rows, "full:"), *ac = find_row(rows, "ac-beta:"), *esc = find_row(rows, "esc:"),
                   *cons = find_row(rows, "oracle:consistency"), *sf = find_row(rows, "oracle:stable-final");
            if (!full || !ac || !esc || !cons) fail_msg("%s: rows missing in %s", args, out);
            files++;
            checked += check(tb, r, "maj@k EM", 0, full, "em", &failures);
            checked += check(tb, r, "full EM", 0, full, "em", &failures);
            checked += check(tb, r, "AC-beta .95 EM / samples", 0, ac, "em", &failures);
            checked += check(tb, r, "AC-beta .95 EM / samples", 1, ac, "samples", &failures);
            checked += check(tb, r, "ESC w5 EM / samples", 0, esc, "em", &failures);
            checked += check(tb, r, "ESC w5 EM / samples", 1, esc, "samples", &failures);
            checked += check(tb, r, "consistency-oracle samples / tokens", 0, cons, "samples", &failures);
            checked += check(tb, r, "consistency-oracle samples / tokens", 1, cons, "tokens", &failures);
            if (es_ref_col(tb, "stable-final oracle tokens") >= 0) {
                if (!sf) fail_msg("%s: no stable-final oracle row in %s", args, out);
                checked += check(tb, r, "stable-final oracle tokens", 0, sf, "tokens", &failures);
            }
            json_decref(doc);
            free(out);
            free(err);
        }
    print_message("eval --json vs README: %d files, %d figures checked, %d differ\n", files, checked, failures);
    assert_true(files >= 12);
    assert_int_equal(failures, 0);
}

/* Orders are split across threads; integer sums make the bytes identical. */
static void test_eval_threads_identical(void **state)
{
    if (!bin_present() || !data_present()) skip();
    char a1[1400], a2[1400];
    const char *f = "esc_last_letters_gpt35_k40";
    snprintf(a1, sizeof a1, "eval '%s/traces/%s.jsonl' --shuffles 50 --seed 7 --threads 1 --policy ac-beta --policy esc",
             es_ref_data_dir(), f);
    snprintf(a2, sizeof a2, "eval '%s/traces/%s.jsonl' --shuffles 50 --seed 7 --threads 2 --policy ac-beta --policy esc",
             es_ref_data_dir(), f);
    char *o1, *e1, *o2, *e2;
    assert_int_equal(run(a1, &o1, &e1), 0);
    assert_int_equal(run(a2, &o2, &e2), 0);
    assert_true(strlen(o1) > 200);
    assert_string_equal(o1, o2);
    free(o1);
    free(e1);
    free(o2);
    free(e2);
    /* --json too, and a third thread count that does not divide 50 */
    strcat(a1, " --json");
    snprintf(a2, sizeof a2, "eval '%s/traces/%s.jsonl' --shuffles 50 --seed 7 --threads 3 --policy ac-beta --policy esc --json",
             es_ref_data_dir(), f);
    assert_int_equal(run(a1, &o1, &e1), 0);
    assert_int_equal(run(a2, &o2, &e2), 0);
    assert_string_equal(o1, o2);
    free(o1);
    free(e1);
    free(o2);
    free(e2);
}

#define HDR "{\"format\":\"earlystop-traces\",\"version\":1}\n"

/* Two long traces: the first carries probe confidences, the second none. */
static const char probes_file[] =
    HDR "{\"id\":\"q-conf\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"4\",\"samples\":[{\"answer\":\"4\","
        "\"tokens\":300,\"probes\":[{\"at\":100,\"answer\":\"3\",\"confidence\":0.5},{\"at\":200,\"answer\":\"4\","
        "\"confidence\":0.99}]}]}\n"
        "{\"id\":\"q-noconf\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"4\",\"samples\":[{\"answer\":\"4\","
        "\"tokens\":300,\"probes\":[{\"at\":100,\"answer\":\"4\"},{\"at\":200,\"answer\":\"4\"}]}]}\n";

static void test_eval_errors(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[1400];
    snprintf(path, sizeof path, "%s/probes.jsonl", tmpdir);
    write_file(path, probes_file);
    char *out, *err;
    /* bad specs: exit 2 and a message naming what is wrong */
    snprintf(args, sizeof args, "eval '%s' --policy nope", path);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "unknown policy 'nope'") || !strstr(err, "ac-beta")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval '%s' --policy esc:windw=3", path);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "windw") || !strstr(err, "window")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval '%s' --policy ac-beta+esc", path);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "at most one")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    /* deer needs confidences: exit 2 naming the item that lacks them */
    snprintf(args, sizeof args, "eval '%s' --policy deer", path);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "q-noconf") || !strstr(err, "confidence") || !strstr(err, path)) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    /* the same with random orders on two threads */
    snprintf(args, sizeof args, "eval '%s' --policy deer --shuffles 4 --threads 2", path);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "q-noconf")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    /* with confidences it runs: q-conf stops at its probe at 200 */
    write_file(path, HDR "{\"id\":\"q-conf\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"4\",\"samples\":["
                         "{\"answer\":\"4\",\"tokens\":300,\"probes\":[{\"at\":100,\"answer\":\"3\",\"confidence\":0.5},"
                         "{\"at\":200,\"answer\":\"4\",\"confidence\":0.99}]}]}\n");
    snprintf(args, sizeof args, "eval '%s' --policy deer --json --probe-cost 0", path);
    assert_int_equal(run(args, &out, &err), 0);
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    json_t *deer = find_row(json_object_get(doc, "rows"), "deer:");
    assert_non_null(deer);
    assert_true(json_number_value(json_object_get(deer, "tokens")) == 200.0);
    assert_true(json_number_value(json_object_get(deer, "em")) == 1.0);
    json_decref(doc);
    free(out);
    free(err);
}

static void test_eval_policy_file(void **state)
{
    if (!bin_present()) skip();
    char trace[512], pol[512], bad[512], args[2000];
    snprintf(trace, sizeof trace, "%s/votes.jsonl", tmpdir);
    /* 6 samples: the first window of 4 is unanimous */
    write_file(trace, HDR "{\"id\":\"v1\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"a\",\"samples\":["
                          "{\"answer\":\"a\",\"tokens\":10},{\"answer\":\"a\",\"tokens\":10},{\"answer\":\"a\",\"tokens\":10},"
                          "{\"answer\":\"a\",\"tokens\":10},{\"answer\":\"b\",\"tokens\":10},{\"answer\":\"b\",\"tokens\":10}]}\n");
    snprintf(pol, sizeof pol, "%s/esc4.json", tmpdir);
    write_file(pol, "{\"spec\": \"esc:window=4\", \"note\": \"tuned by hand\"}\n");
    snprintf(args, sizeof args, "eval '%s' --policy '@%s' --json", trace, pol);
    char *out, *err;
    int rc = run(args, &out, &err);
    if (rc) fail_msg("exit %d: %s", rc, err);
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je);
    json_t *row = find_row(json_object_get(doc, "rows"), "esc:window=4,remainder=draw,max=all");
    if (!row) fail_msg("no esc:window=4 row in %s", out);
    assert_true(json_number_value(json_object_get(row, "samples")) == 4.0);
    assert_true(json_number_value(json_object_get(row, "tokens")) == 40.0);
    json_decref(doc);
    free(out);
    free(err);
    /* a broken policy file: exit 2 naming the file */
    snprintf(bad, sizeof bad, "%s/broken.json", tmpdir);
    write_file(bad, "{\"spec\": \"esc:window=4\"\n");
    snprintf(args, sizeof args, "eval '%s' --policy '@%s'", trace, bad);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, bad)) fail_msg("stderr '%s' does not name %s", err, bad);
    free(out);
    free(err);
    /* well-formed JSON, bad spec inside: still names the file */
    write_file(bad, "{\"spec\": \"esc:windw=4\"}\n");
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, bad) || !strstr(err, "windw")) fail_msg("stderr '%s'", err);
    free(out);
    free(err);
    /* no spec at all */
    write_file(bad, "{\"threshold\": 0.9}\n");
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, bad)) fail_msg("stderr '%s'", err);
    free(out);
    free(err);
    /* a missing file: an I/O error (exit 1), as a missing trace file is */
    snprintf(args, sizeof args, "eval '%s' --policy '@%s/none.json'", trace, tmpdir);
    assert_int_equal(run(args, &out, &err), 1);
    if (!strstr(err, "none.json")) fail_msg("stderr '%s'", err);
    free(out);
    free(err);
}

/* One row that cannot run on one file (deer without confidences) made eval
 * exit 2 and drop every other row: the row reports its error, the rest are
 * computed, later files too, and the status is 2 at the end. */
static void test_eval_row_error_keeps_the_rest(void **state)
{
    if (!bin_present()) skip();
    char path[512], votes[512], args[1600], *out, *err;
    snprintf(path, sizeof path, "%s/probes2.jsonl", tmpdir);
    write_file(path, probes_file);
    snprintf(votes, sizeof votes, "%s/votes2.jsonl", tmpdir);
    write_file(votes, HDR "{\"id\":\"v1\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"a\",\"samples\":["
                          "{\"answer\":\"a\",\"tokens\":10},{\"answer\":\"a\",\"tokens\":10}]}\n");
    snprintf(args, sizeof args, "eval '%s' '%s' --policy deer --policy dynasor:k=2 --policy ac-beta", path, votes);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "q-noconf") || !strstr(err, "confidence")) fail_msg("stderr: %s", err);
    /* every other row of the probe file, and the second file's table */
    const char *want[] = {"full:", "dynasor:k=2", "ac-beta:", "oracle:stable-final", "not computed", votes};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i])) fail_msg("stdout lacks '%s': %s", want[i], out);
    free(out);
    free(err);
    /* --json: the failed row carries its error, the others their figures */
    snprintf(args, sizeof args, "eval '%s' --policy deer --policy dynasor:k=2 --json", path);
    assert_int_equal(run(args, &out, &err), 2);
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je), *rows = json_object_get(doc, "rows");
    if (!json_is_array(rows)) fail_msg("no rows: %s", out);
    json_t *deer = find_row(rows, "deer:"), *dyn = find_row(rows, "dynasor:");
    assert_non_null(deer);
    assert_non_null(dyn);
    assert_true(json_is_string(json_object_get(deer, "error")));
    assert_true(json_is_number(json_object_get(dyn, "em")));
    json_decref(doc);
    free(out);
    free(err);
    /* a probe rule on a file without probes is such a row too */
    snprintf(args, sizeof args, "eval '%s' --policy dynasor --policy esc:window=2", votes);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "decides on probes") || !strstr(out, "esc:window=2")) fail_msg("stdout %s stderr %s", out, err);
    free(out);
    free(err);
}

/* `--policy full` printed the baseline twice and wrote its decisions twice;
 * a policy given twice (in two spellings) too.  The header says how many
 * shuffles were averaged. */
static void test_eval_dedupe_and_header(void **state)
{
    if (!bin_present()) skip();
    char path[512], dec[512], args[1600], *out, *err;
    snprintf(path, sizeof path, "%s/votes3.jsonl", tmpdir);
    write_file(path, HDR "{\"id\":\"v1\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"a\",\"samples\":["
                         "{\"answer\":\"a\",\"tokens\":10},{\"answer\":\"b\",\"tokens\":10}]}\n"
                         "{\"id\":\"v2\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"a\",\"samples\":["
                         "{\"answer\":\"a\",\"tokens\":10},{\"answer\":\"a\",\"tokens\":10}]}\n");
    snprintf(dec, sizeof dec, "%s/dec.jsonl", tmpdir);
    snprintf(args, sizeof args, "eval '%s' --policy full --policy esc --policy esc:window=5 --shuffles 7 --decisions '%s'",
             path, dec);
    assert_int_equal(run(args, &out, &err), 0);
    int fulls = 0, escs = 0;
    for (const char *p = out; (p = strstr(p, "\nfull:")); p++) fulls++;
    for (const char *p = out; (p = strstr(p, "\nesc:")); p++) escs++;
    assert_int_equal(fulls, 1);
    assert_int_equal(escs, 1);
    if (!strstr(out, "mean over 7 random sample orders")) fail_msg("stdout: %s", out);
    if (!strstr(err, "listed once")) fail_msg("stderr: %s", err);
    char *d = slurp(dec);
    int lines = 0;
    for (const char *p = d; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 2 * 2); /* full and esc, 2 items each */
    free(d);
    free(out);
    free(err);
    /* --decisions naming an input is refused; a failed run leaves it alone */
    snprintf(args, sizeof args, "eval '%s' --decisions '%s'", path, path);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "also an input")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
    write_file(dec, "precious\n");
    snprintf(args, sizeof args, "eval '%s' '%s/missing.jsonl' --decisions '%s'", path, tmpdir, dec);
    assert_int_not_equal(run(args, &out, &err), 0);
    d = slurp(dec);
    assert_string_equal(d, "precious\n");
    free(d);
    free(out);
    free(err);
    /* a bad policy is named as the policy, not as the trace file, and is
     * found before any file is read */
    snprintf(args, sizeof args, "eval '%s/missing.jsonl' --policy esc:window=0", tmpdir);
    assert_int_equal(run(args, &out, &err), 2);
    if (!strstr(err, "--policy 'esc:window=0'") || strstr(err, "missing.jsonl")) fail_msg("stderr: %s", err);
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_json_reference),
        cmocka_unit_test(test_eval_threads_identical),
        cmocka_unit_test(test_eval_errors),
        cmocka_unit_test(test_eval_policy_file),
        cmocka_unit_test(test_eval_row_error_keeps_the_rest),
        cmocka_unit_test(test_eval_dedupe_and_header),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
