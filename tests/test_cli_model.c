/*
 * test_cli_model.c - the model commands (train, generate, run) end to end,
 * as a user meets them: thread counts, a diverging training run, an output
 * that cannot be written, a within-sample rule without probes, the `run`
 * table and its progress.  Each case is a finding of a hostile run of the
 * commands that failed before (issue 7).
 *
 * The binary is $ES_BIN (default build/earlystop); `run` and `generate` use
 * the shipped model ($ES_MODEL or data/model.bin) and skip without it.
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
#include <unistd.h>

#include <math.h>

#include <jansson.h>

#include "clirun.h"
#include "earlystop_io.h"
#include "testutil.h"

static int setup(void **state)
{
    (void)state;
    return clirun_setup("test_cli_model");
}

static int teardown(void **state)
{
    (void)state;
    return clirun_teardown();
}

/* The shipped model, or NULL (the caller skips). */
static const char *model(void)
{
    const char *p = getenv("ES_MODEL");
    if (p && *p) return p;
    return access("data/model.bin", R_OK) == 0 ? "data/model.bin" : NULL;
}

/* The binary and the shipped model, or the test is skipped (saying why). */
static const char *model_or_skip(void)
{
    if (!bin_present()) skip();
    const char *m = model();
    if (!m) {
        print_message("no data/model.bin: skipped\n");
        skip();
    }
    return m;
}

/* Cores this machine offers: what --threads is capped at. */
static long cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* --threads above the cores is capped at them with a note, as in every
 * command (100000 crashed in OpenMP before: SIGSEGV after 8.5 GB for
 * generate, at once for run; 64 threads on 2 cores ran 170x slower than 1);
 * a value that is not a count is a usage error. */
static void test_thread_counts(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    char args[1024], *out, *err;
    const char *cmds[] = {"generate --task date --items 1 --samples 1", "run --task date --items 1 --samples 1 --policy esc",
                          "train --steps 1 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        snprintf(args, sizeof args, "%s --model '%s' --threads 100000 --out '%s/t.bin'", cmds[i], m, tmpdir);
        if (i == 2) snprintf(args, sizeof args, "%s --threads 100000 --out '%s/t.bin'", cmds[i], tmpdir);
        if (i == 1) snprintf(args, sizeof args, "%s --model '%s' --threads 100000", cmds[i], m);
        assert_int_equal(run(args, &out, &err), 0);
        if (!strstr(err, "--threads 100000: using")) fail_msg("%s: stderr: %s", cmds[i], err);
        free(out);
        free(err);
    }
    snprintf(args, sizeof args, "run --model '%s' --task date --items 1 --samples 1 --policy esc --threads -2", m);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "--threads"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "run --model '%s' --task date --items 1 --samples 2 --policy esc --threads 64 --json", m);
    assert_int_equal(run(args, &out, &err), 0);
    char want[64];
    snprintf(want, sizeof want, "\"threads\":%ld,", cores() < 64 ? cores() : 64);
    assert_non_null(strstr(out, want));
    free(out);
    free(err);
}

/* A learning rate that makes training diverge stops it with a message and
 * exit 1, and no model file is written (it exited 0 with NaN weights). */
static void test_train_divergence(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char args[1024], path[512], *out, *err;
    snprintf(path, sizeof path, "%s/nan.bin", tmpdir);
    snprintf(args, sizeof args,
             "train --lr 1e10 --steps 2 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96 "
             "--threads 1 --log-every 1 --out '%s'", path);
    int rc = run(args, &out, &err);
    print_message("%s", err);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "diverged"));
    assert_non_null(strstr(err, "not written"));
    assert_int_equal(access(path, F_OK), -1);
    free(out);
    free(err);
}

/* An output that cannot be written is reported before the first step (it
 * was reported after the whole run). */
static void test_train_unwritable_out(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char *out, *err;
    assert_int_equal(run("train --steps 2 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96 "
                         "--log-every 1 --out /nonexistent/x", &out, &err), 1);
    assert_non_null(strstr(err, "/nonexistent/x"));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(strstr(err, "step 1/2"));
    free(out);
    free(err);
    char args[1024];
    snprintf(args, sizeof args, "train --steps 2 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96 --out '%s'",
             tmpdir);
    assert_int_equal(run(args, &out, &err), 1);
    assert_non_null(strstr(err, "is a directory"));
    assert_null(strstr(err, "step 1/2"));
    free(out);
    free(err);
}

/* A within-sample rule with no probes would never stop a sample and report
 * 0% saved: an error, as eval gives on a file without probes. */
static void test_run_within_rule_needs_probes(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "run --model '%s' --task date --items 2 --samples 2 --probe-every 0 --policy dynasor", m);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "needs probes"));
    assert_non_null(strstr(err, "--probe-every"));
    free(out);
    free(err);
    /* an across-sample rule needs none */
    snprintf(args, sizeof args, "run --model '%s' --task date --items 1 --samples 2 --probe-every 0 --policy esc", m);
    assert_int_equal(run(args, &out, &err), 0);
    free(out);
    free(err);
}

/* --probe-every out of range is refused, not wrapped into an int (4294967312
 * used to probe every 16 tokens while the header said 4294967312), and a
 * word other than `lines` is told what is accepted. */
static void test_probe_every_range(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    const char *cmds[] = {"generate", "run --policy dynasor"};
    char args[1024], *out, *err;
    for (int c = 0; c < 2; c++) {
        snprintf(args, sizeof args, "%s --model '%s' --task date --items 1 --samples 1 --probe-every 4294967312",
                 cmds[c], m);
        assert_int_equal(run(args, &out, &err), 2);
        assert_non_null(strstr(err, "--probe-every"));
        assert_non_null(strstr(err, "1048576"));
        free(out);
        free(err);
        snprintf(args, sizeof args, "%s --model '%s' --task date --items 1 --samples 1 --probe-every line", cmds[c], m);
        assert_int_equal(run(args, &out, &err), 2);
        assert_non_null(strstr(err, "`lines`"));
        free(out);
        free(err);
    }
}

/* A policy whose within rule reads text cues gets free text probes at line
 * ends in `run` (unless --probe-every says otherwise), and the live figures
 * equal `eval` of the same questions recorded with `generate --probe-every
 * lines`; with forced probes given it reads none (they carry no cues). */
static void test_run_line_probes(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    char stopper[600], trace[600], args[2048], *out, *err;
    snprintf(stopper, sizeof stopper, "%s/cue.json", tmpdir);
    snprintf(trace, sizeof trace, "%s/lines.jsonl", tmpdir);
    es_stopper *st = es_test_cue_stopper();
    assert_int_equal(es_stopper_save(st, stopper, "learned", NULL, NULL), ES_OK);
    es_stopper_free(st);
    snprintf(args, sizeof args,
             "run --model '%s' --task date --items 6 --samples 4 --seed 3 --baseline none --json --policy @%s", m,
             stopper);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "\"probes_at\":\"lines\""));
    assert_non_null(strstr(out, "\"probe_tokens\":0,"));
    json_t *lv = json_loads(out, 0, NULL);
    assert_non_null(lv);
    double live_em = json_real_value(json_object_get(lv, "em"));
    double live_tok = json_real_value(json_object_get(lv, "tokens_per_item"));
    json_decref(lv);
    free(out);
    free(err);
    snprintf(args, sizeof args,
             "generate --model '%s' --task date --items 6 --samples 4 --seed 3 --probe-every lines --out %s", m, trace);
    assert_int_equal(run(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "eval %s --policy @%s --json", trace, stopper);
    assert_int_equal(run(args, &out, &err), 0);
    json_t *ev = json_loads(out, 0, NULL), *row = NULL;
    assert_non_null(ev);
    for (size_t i = 0; i < json_array_size(json_object_get(ev, "rows")); i++) {
        json_t *r = json_array_get(json_object_get(ev, "rows"), i);
        if (!strncmp(json_string_value(json_object_get(r, "policy")), "learned", 7)) row = r;
    }
    assert_non_null(row);
    print_message("live EM %.4f, %.2f tokens/question; replay %.4f, %.2f\n", live_em, live_tok,
                  json_real_value(json_object_get(row, "em")), json_real_value(json_object_get(row, "tokens")));
    assert_true(fabs(json_real_value(json_object_get(row, "em")) - live_em) < 1e-4);
    assert_true(fabs(json_real_value(json_object_get(row, "tokens")) - live_tok) < 0.01);
    assert_true(json_real_value(json_object_get(row, "token_reduction_pct")) > 10); /* it stopped samples */
    json_decref(ev);
    free(out);
    free(err);
    /* --probe-every 16 given: this rule requires a cue (needs_cues), so
     * forced probes would be paid for and never read, and the replay neither
     * makes nor charges them; live it gets its text probes all the same and
     * still equals the replay (it paid 538 forced probes' tokens here) */
    snprintf(args, sizeof args,
             "run --model '%s' --task date --items 6 --samples 4 --seed 3 --probe-every 16 --baseline none --json "
             "--policy @%s",
             m, stopper);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "\"probes_at\":\"lines\""));
    assert_non_null(strstr(out, "\"probe_tokens\":0,"));
    lv = json_loads(out, 0, NULL);
    assert_non_null(lv);
    assert_true(fabs(json_real_value(json_object_get(lv, "em")) - live_em) < 1e-4);
    assert_true(fabs(json_real_value(json_object_get(lv, "tokens_per_item")) - live_tok) < 0.01);
    json_decref(lv);
    free(out);
    free(err);
}

/* Line probes decode nothing: a policy that reads them but never stops holds
 * the KV cache `full` holds (no room kept for a forced answer), and its text
 * header says where the probes are. */
static void test_run_line_probes_kv(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    char args[1024], *out, *err;
    snprintf(args, sizeof args,
             "run --model '%s' --task date --items 3 --samples 2 --probe-every lines --baseline full --json "
             "--policy dynasor:k=99", m);
    assert_int_equal(run(args, &out, &err), 0);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    json_t *full = json_loadb(out, (size_t)(second - out), 0, NULL), *pol = json_loads(second + 1, 0, NULL);
    assert_non_null(full);
    assert_non_null(pol);
    assert_true(json_integer_value(json_object_get(pol, "probes")) > 0);
    assert_int_equal(json_integer_value(json_object_get(pol, "tokens")), json_integer_value(json_object_get(full, "tokens")));
    assert_int_equal(json_integer_value(json_object_get(pol, "kv_peak_bytes")),
                     json_integer_value(json_object_get(full, "kv_peak_bytes")));
    json_decref(full);
    json_decref(pol);
    free(out);
    free(err);
    snprintf(args, sizeof args, "run --model '%s' --task date --items 1 --samples 1 --probe-every lines --policy dynasor",
             m);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "a text probe at each line end"));
    assert_null(strstr(out, "probe every 0"));
    free(out);
    free(err);
}

/* `earlystop cues` marks paragraph-end probes only: the line probes of
 * `generate --probe-every lines` (cost 0, cued by their line) are left as
 * they are, even in a sample with a single probe (its one "paragraph" is
 * the whole text, whose cues differ from the line's). */
static void test_cues_leaves_line_probes(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    char trace[600], again[600], args[2048], *out, *err;
    snprintf(trace, sizeof trace, "%s/lines_c.jsonl", tmpdir);
    snprintf(again, sizeof again, "%s/lines_c2.jsonl", tmpdir);
    snprintf(args, sizeof args,
             "generate --model '%s' --task arithmetic --items 20 --samples 4 --seed 1 --probe-every lines --out %s", m,
             trace);
    assert_int_equal(run(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "cues %s --out %s --json", trace, again);
    assert_int_equal(run(args, &out, &err), 0);
    json_t *c = json_loads(out, 0, NULL);
    assert_non_null(c);
    assert_int_equal(json_integer_value(json_object_get(c, "marked")), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "forced")),
                     json_integer_value(json_object_get(c, "samples_with_probes")));
    json_decref(c);
    free(out);
    free(err);
    /* the probes as generate wrote them; only the header's note differs */
    char *a = slurp(trace), *b = slurp(again);
    assert_non_null(strchr(a, '\n'));
    assert_non_null(strchr(b, '\n'));
    assert_string_equal(strchr(a, '\n'), strchr(b, '\n'));
    free(a);
    free(b);
}

/* The `run` table: a header, and every line of it (long specs get a line of
 * their own above their row) as wide as the header, so columns line up;
 * --progress reports items on stderr even when it is not a terminal (the
 * demo's live step). */
static void test_run_table_and_progress(void **state)
{
    (void)state;
    const char *m = model_or_skip();
    char args[1024], *out, *err;
    snprintf(args, sizeof args,
             "run --model '%s' --task date --items 2 --samples 2 --seed 7 --progress "
             "--policy 'dynasor:k=3+esc:window=4'", m);
    assert_int_equal(run(args, &out, &err), 0);
    print_message("%s", out);
    assert_non_null(strstr(err, "run (baseline): item 2/2"));
    assert_non_null(strstr(err, "run (policy): item 2/2"));
    char *header = strstr(out, "policy ");
    assert_non_null(header);
    size_t width = strcspn(header, "\n");
    int rows = 0, long_names = 0;
    for (char *line = header; *line; ) {
        size_t len = strcspn(line, "\n");
        if (strstr(line, "dynasor") == line && len > 28 && !memchr(line, ' ', len)) long_names++;
        else { assert_int_equal(len, width); rows++; }
        line += len + (line[len] == '\n');
    }
    assert_int_equal(long_names, 1);
    assert_int_equal(rows, 4);   /* two header lines, full, the policy */
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_counts),
        cmocka_unit_test(test_train_divergence),
        cmocka_unit_test(test_train_unwritable_out),
        cmocka_unit_test(test_run_within_rule_needs_probes),
        cmocka_unit_test(test_probe_every_range),
        cmocka_unit_test(test_run_line_probes),
        cmocka_unit_test(test_run_line_probes_kv),
        cmocka_unit_test(test_cues_leaves_line_probes),
        cmocka_unit_test(test_run_table_and_progress),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
