/*
 * test_cli.c - end-to-end tests of the `earlystop` binary ($ES_BIN, default
 * build/earlystop): what a user sees - figures, exit codes, messages.
 *
 * Each case runs the binary through the shell with stdout and stderr sent to
 * files in a temp dir, so both streams and the exit status can be checked.
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

static int file_no;

static int setup(void **state)
{
    return clirun_setup("test_cli");
}

static int teardown(void **state)
{
    return clirun_teardown();
}

static const char *write_tmp(char *buf, size_t cap, const char *content)
{
    snprintf(buf, cap, "%s/t%03d.jsonl", tmpdir, file_no++);
    FILE *fp = fopen(buf, "wb");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
    return buf;
}

#define HDR "{\"format\":\"earlystop-traces\",\"version\":1}\n"
#define GOOD(id) "{\"id\":\"" id "\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\"," \
                 "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n"

static void test_stats_json_reference(void **state)
{
    if (!bin_present()) skip();
    char readme[1024];
    snprintf(readme, sizeof readme, "%s/README.md", es_ref_data_dir());
    struct stat sb;
    if (stat(readme, &sb)) {
        print_message("shared data absent (%s): set ES_SHARED_DATA; skipping\n", readme);
        skip();
    }
    static es_ref_table tabs[ES_REF_MAX_TABLES];
    int nt = es_ref_load(readme, tabs, ES_REF_MAX_TABLES);
    int files = 0, checked = 0, failures = es_ref_check_tables(tabs, nt);
    for (int t = 0; t < nt; t++) {
        for (int r = 0; r < tabs[t].nrows; r++) {
            char args[1200];
            snprintf(args, sizeof args, "stats --json '%s/traces/%s.jsonl'", es_ref_data_dir(),
                     tabs[t].cells[r][0]);
            char *out, *err;
            int rc = run(args, &out, &err);
            if (rc != 0) fail_msg("%s: exit %d: %s", args, rc, err);
            json_error_t je;
            json_t *o = json_loads(out, 0, &je);
            if (!json_is_object(o)) fail_msg("%s: not one JSON object: %s", args, out);
            files++;
            for (size_t m = 0; m < ES_REF_N_METRICS; m++) {
                double ref;
                int dec;
                if (!es_ref_cell(&tabs[t], r, es_ref_metrics[m].column, es_ref_metrics[m].part, &ref, &dec, &failures))
                    continue;
                json_t *v = json_object_get(o, es_ref_metrics[m].key);
                if (!json_is_number(v)) fail_msg("%s: key %s missing in %s", args, es_ref_metrics[m].key, out);
                double got = json_number_value(v);
                checked++;
                if (!es_ref_matches(got, ref, dec)) {
                    print_error("%s: %s: stats --json %.*f, README %.*f\n", tabs[t].cells[r][0],
                                es_ref_metrics[m].key, dec + 3, got, dec, ref);
                    failures++;
                }
            }
            json_decref(o);
            free(out);
            free(err);
        }
    }
    print_message("stats --json: %d files, %d figures checked, %d differ\n", files, checked, failures);
    assert_true(files >= 12);
    assert_int_equal(failures, 0);
}

static void test_stats_broken_file(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[700], want[700];
    write_tmp(path, sizeof path,
              HDR GOOD("a") "{\"id\":\"b\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                            "\"samples\":[{\"answer\":\"x\",\"tokens\":1.5}]}\n");
    snprintf(args, sizeof args, "stats '%s'", path);
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 2);
    snprintf(want, sizeof want, "%s:3: samples[0].tokens:", path);
    if (!strstr(err, want)) fail_msg("stderr '%s' lacks '%s'", err, want);
    free(out);
    free(err);
    /* missing gold, and a duplicate id (caught by the set, named by line) */
    write_tmp(path, sizeof path,
              HDR "{\"id\":\"b\",\"task\":\"t\",\"answer_type\":\"text\","
                  "\"samples\":[{\"answer\":\"x\",\"tokens\":1}]}\n");
    snprintf(args, sizeof args, "stats --json '%s'", path);
    assert_int_equal(run(args, &out, &err), 2);
    snprintf(want, sizeof want, "%s:2: gold:", path);
    if (!strstr(err, want)) fail_msg("stderr '%s' lacks '%s'", err, want);
    free(out);
    free(err);
    write_tmp(path, sizeof path, HDR GOOD("a") GOOD("b") GOOD("a"));
    snprintf(args, sizeof args, "stats '%s'", path);
    assert_int_equal(run(args, &out, &err), 2);
    snprintf(want, sizeof want, "%s:4: id:", path);
    if (!strstr(err, want)) fail_msg("stderr '%s' lacks '%s'", err, want);
    free(out);
    free(err);
    /* truncated last line */
    write_tmp(path, sizeof path, HDR GOOD("a") "{\"id\":\"b\",\"ta");
    snprintf(args, sizeof args, "stats '%s'", path);
    assert_int_equal(run(args, &out, &err), 2);
    snprintf(want, sizeof want, "%s:3:", path);
    if (!strstr(err, want) || !strstr(err, "truncated")) fail_msg("stderr '%s' lacks '%s' truncated", err, want);
    free(out);
    free(err);
}

static void test_stats_skip_bad(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[700];
    write_tmp(path, sizeof path, HDR GOOD("a") "[]\n" GOOD("b") "{\"id\":\"c\"}\n" GOOD("d"));
    snprintf(args, sizeof args, "stats --skip-bad --json '%s'", path);
    char *out, *err;
    assert_int_equal(run(args, &out, &err), 0);
    if (!strstr(err, "skipped 2")) fail_msg("stderr '%s' lacks the skipped count", err);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    assert_true(json_is_object(o));
    assert_int_equal(json_integer_value(json_object_get(o, "items")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "skipped")), 2);
    json_decref(o);
    free(out);
    free(err);
    /* the text form works too and still reports on stderr */
    snprintf(args, sizeof args, "stats --skip-bad '%s'", path);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(err, "skipped 2"));
    assert_non_null(strstr(out, "items"));
    free(out);
    free(err);
}

static void test_usage_errors(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[700];
    write_tmp(path, sizeof path, HDR GOOD("a"));
    char *out, *err;
    snprintf(args, sizeof args, "stats --no-such-option '%s'", path);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "--no-such-option"));
    free(out);
    free(err);
    assert_int_equal(run("stats", &out, &err), 2); /* no file */
    free(out);
    free(err);
    assert_int_equal(run("no-such-command", &out, &err), 2);
    assert_non_null(strstr(err, "no-such-command"));
    free(out);
    free(err);
    assert_int_equal(run("", &out, &err), 2);
    free(out);
    free(err);
}

static void test_nonexistent_file(void **state)
{
    if (!bin_present()) skip();
    char args[700], path[512];
    snprintf(path, sizeof path, "%s/does/not/exist.jsonl", tmpdir);
    snprintf(args, sizeof args, "stats '%s'", path);
    char *out, *err;
    assert_int_not_equal(run(args, &out, &err), 0);
    if (!strstr(err, path)) fail_msg("stderr '%s' lacks the path %s", err, path);
    free(out);
    free(err);
}

/* Every command `earlystop --help` lists answers --help with its usage. */
static void test_help_everywhere(void **state)
{
    if (!bin_present()) skip();
    char *out, *err;
    assert_int_equal(run("--help", &out, &err), 0);
    assert_non_null(strstr(out, "usage:"));
    const char *p = strstr(out, "commands:");
    assert_non_null(p);
    int n = 0, bad = 0;
    /* the listing is "  NAME  summary" lines up to the first blank line */
    for (p = strchr(p, '\n'); p && p[1] == ' '; p = strchr(p + 1, '\n')) {
        char name[64];
        if (sscanf(p + 1, " %63s", name) != 1) break;
        char args[128], *o2, *e2;
        snprintf(args, sizeof args, "%s --help", name);
        int rc = run(args, &o2, &e2);
        n++;
        if (rc != 0 || !strstr(o2, "usage:")) {
            print_error("'earlystop %s' exits %d, stdout '%.60s', stderr '%.80s'\n", args, rc, o2, e2);
            bad++;
        }
        free(o2);
        free(e2);
    }
    free(out);
    free(err);
    assert_true(n >= 1);
    assert_int_equal(bad, 0);
    /* -h is the same */
    assert_int_equal(run("stats -h", &out, &err), 0);
    assert_non_null(strstr(out, "usage: earlystop stats"));
    free(out);
    free(err);
}

/* The model commands end to end: train a tiny model, generate traces from
 * it, read them back with stats, replay them with eval and run a policy
 * live; bad usage exits 2, a missing model file 1. */
static void test_model_commands(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char args[2048], *out, *err;
    snprintf(args, sizeof args,
             "train --steps 3 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96 --threads 1 "
             "--log-every 1 --out '%s/tiny.bin'", tmpdir);
    int rc = run(args, &out, &err);
    if (rc) print_error("train: %s\n", err);
    assert_int_equal(rc, 0);
    free(out);
    free(err);
    snprintf(args, sizeof args,
             "generate --model '%s/tiny.bin' --task date --items 3 --samples 2 --probe-every 16 --seed 5 "
             "--threads 1 --out '%s/gen.jsonl'", tmpdir, tmpdir);
    rc = run(args, &out, &err);
    if (rc) print_error("generate: %s\n", err);
    assert_int_equal(rc, 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "stats --json '%s/gen.jsonl'", tmpdir);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "\"items\":3"));
    assert_non_null(strstr(out, "\"samples\":6"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval '%s/gen.jsonl' --policy dynasor:k=2 --policy esc:window=2 --json", tmpdir);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "dynasor:k=2"));
    free(out);
    free(err);
    snprintf(args, sizeof args,
             "run --model '%s/tiny.bin' --task date --items 2 --samples 2 --policy esc:window=2 --seed 5 "
             "--threads 1 --json", tmpdir);
    rc = run(args, &out, &err);
    if (rc) print_error("run: %s\n", err);
    assert_int_equal(rc, 0);
    free(out);
    free(err);
    assert_int_equal(run("run --task no_such_task --policy esc", &out, &err), 2);
    free(out);
    free(err);
    snprintf(args, sizeof args, "generate --model '%s/missing.bin' --task date --items 1 --out '%s/x.jsonl'",
             tmpdir, tmpdir);
    rc = run(args, &out, &err);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err, "missing.bin"));
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_json_reference),
        cmocka_unit_test(test_stats_broken_file),
        cmocka_unit_test(test_stats_skip_bad),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_nonexistent_file),
        cmocka_unit_test(test_help_everywhere),
        cmocka_unit_test(test_model_commands),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
