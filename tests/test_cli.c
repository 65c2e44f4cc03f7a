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
    /* cues --json puts its counts on stdout: the trace may not go there too */
    snprintf(args, sizeof args, "cues '%s' --out - --json", path);
    assert_int_equal(run(args, &out, &err), 2);
    assert_non_null(strstr(err, "--out FILE"));
    assert_string_equal(out, "");
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
    /* a directory where a file goes is called one, for every kind of input
     * file, with exit 1 (it was "read failed", "file too short" or "'[' or
     * '{' expected") */
    static const char *const dir_args[] = {"stats '%s'", "eval '%s' --policy esc", "run --model '%s' --task date --policy esc",
                                           "eval data/faithful_date_codex002_k40.jsonl --policy '@%s'"};
    for (size_t i = 0; i < sizeof dir_args / sizeof dir_args[0]; i++) {
        snprintf(args, sizeof args, dir_args[i], tmpdir);
        assert_int_equal(run(args, &out, &err), 1);
        if (!strstr(err, "is a directory")) fail_msg("%s: stderr '%s' does not say it is a directory", args, err);
        free(out);
        free(err);
    }
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

/* ------------------------------------------------- output files (issue 7) */

/* Raw records for import: two good, and a file whose second record breaks. */
#define RAW_OK "{\"id\":\"a\",\"gold\":\"1\",\"s\":[\"so 1\",\"so 2\"]}\n{\"id\":\"b\",\"gold\":\"2\",\"s\":[\"so 2\"]}\n"
#define RAW_BAD "{\"id\":\"a\",\"gold\":\"1\",\"s\":[\"so 1\"]}\n{\"id\":\"b\",\"gold\":\n"
#define IMPORT_ARGS "import --samples s --gold gold --answer-regex 'so (\\d)'"

/* A temp file name in the test dir. */
static const char *tmp_name(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmpdir, name);
    return buf;
}

static void write_named(const char *path, const char *content)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

/* No temporary file left behind in the test dir (".NAME.earlystop-*"). */
static void assert_no_temporaries(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q 'earlystop-'", tmpdir);
    if (system(cmd) == 0) fail_msg("a temporary output file was left in %s", tmpdir);
}

/* `import --out FILE` opened FILE with O_TRUNC before reading and unlinked
 * it on failure: --out equal to the input destroyed the input, an existing
 * output was emptied then removed, a symlink was removed.  Now the output
 * is refused when it is an input, and replaced only by a successful run. */
static void test_import_out_never_destroys(void **state)
{
    if (!bin_present()) skip();
    char in[512], bak[512], gold[512], out[512], target[512], link[512], args[2048], *o, *e;
    write_named(tmp_name(in, sizeof in, "raw.jsonl"), RAW_OK);
    write_named(tmp_name(bak, sizeof bak, "raw.bak"), RAW_OK);
    /* --out is the input (by name, and through another name for it) */
    snprintf(args, sizeof args, IMPORT_ARGS " '%s' --out '%s'", in, in);
    assert_int_equal(run(args, &o, &e), 2);
    if (!strstr(e, "also an input")) fail_msg("stderr: %s", e);
    assert_true(same_bytes(in, bak));
    free(o);
    free(e);
    tmp_name(link, sizeof link, "raw-link.jsonl");
    assert_int_equal(symlink(in, link), 0);
    snprintf(args, sizeof args, IMPORT_ARGS " '%s' --out '%s'", in, link);
    assert_int_equal(run(args, &o, &e), 2);
    assert_true(same_bytes(in, bak));
    free(o);
    free(e);
    unlink(link);
    /* --out is the gold file */
    write_named(tmp_name(gold, sizeof gold, "gold.jsonl"), "{\"id\":\"a\",\"g\":\"1\"}\n{\"id\":\"b\",\"g\":\"2\"}\n");
    snprintf(args, sizeof args, "import --samples s --gold g --gold-file '%s' --answer-regex 'so (\\d)' '%s' --out '%s'",
             gold, in, gold);
    assert_int_equal(run(args, &o, &e), 2);
    char *g = slurp(gold);
    assert_string_equal(g, "{\"id\":\"a\",\"g\":\"1\"}\n{\"id\":\"b\",\"g\":\"2\"}\n");
    free(g);
    free(o);
    free(e);
    /* an existing output survives a failed run byte for byte */
    write_named(tmp_name(out, sizeof out, "out.jsonl"), "precious\n");
    write_named(in, RAW_BAD);
    snprintf(args, sizeof args, IMPORT_ARGS " '%s' --out '%s'", in, out);
    assert_int_equal(run(args, &o, &e), 2);
    char *c = slurp(out);
    assert_string_equal(c, "precious\n");
    free(c);
    free(o);
    free(e);
    assert_no_temporaries();
    /* a symlink as output: a failed run leaves link and target alone, a good
     * run replaces the target and keeps the link */
    write_named(tmp_name(target, sizeof target, "target.jsonl"), "precious\n");
    tmp_name(link, sizeof link, "link.jsonl");
    assert_int_equal(symlink("target.jsonl", link), 0);
    snprintf(args, sizeof args, IMPORT_ARGS " '%s' --out '%s'", in, link);
    assert_int_equal(run(args, &o, &e), 2);
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    c = slurp(target);
    assert_string_equal(c, "precious\n");
    free(c);
    free(o);
    free(e);
    write_named(in, RAW_OK);
    assert_int_equal(run(args, &o, &e), 0);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    c = slurp(target);
    if (strncmp(c, "{\"format\": \"earlystop-traces\"", 29) || !strstr(c, "\"gold\": \"2\"")) fail_msg("target: %s", c);
    free(c);
    free(o);
    free(e);
    assert_no_temporaries();
    /* a device is written in place and never unlinked: /dev/full fails with
     * the reason, and is still there */
    snprintf(args, sizeof args, IMPORT_ARGS " '%s' --out /dev/full", in);
    assert_int_equal(run(args, &o, &e), 1);
    if (!strstr(e, "/dev/full") || !strstr(e, "No space left")) fail_msg("stderr: %s", e);
    assert_int_equal(stat("/dev/full", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));
    free(o);
    free(e);
    /* an output in a directory that does not exist fails before reading */
    snprintf(args, sizeof args, IMPORT_ARGS " '%s' --out '%s/no/such/dir/x.jsonl'", in, tmpdir);
    assert_int_equal(run(args, &o, &e), 1);
    if (!strstr(e, "no/such/dir")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
}

/* train checked --out only after training; generate and train refuse an
 * output that is their model input. */
static void test_model_outputs(void **state)
{
    if (!bin_present()) skip();
    char args[2048], model[512], bak[512], *o, *e;
    snprintf(args, sizeof args,
             "train --steps 20 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96 --threads 1 "
             "--log-every 1 --out '%s/no/such/dir/m.bin'", tmpdir);
    assert_int_equal(run(args, &o, &e), 1);
    if (!strstr(e, "no/such/dir") || strstr(e, "step ") || strstr(e, "parameters")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
    tmp_name(model, sizeof model, "m.bin");
    snprintf(args, sizeof args,
             "train --steps 2 --batch 2 --dim 16 --layers 1 --heads 2 --hidden 32 --seq 96 --threads 1 --out '%s'",
             model);
    assert_int_equal(run(args, &o, &e), 0);
    free(o);
    free(e);
    snprintf(args, sizeof args, "cp '%s' '%s'", model, tmp_name(bak, sizeof bak, "m.bak"));
    assert_int_equal(system(args), 0);
    snprintf(args, sizeof args,
             "train --steps 2 --batch 2 --threads 1 --init '%s' --out '%s'", model, model);
    assert_int_equal(run(args, &o, &e), 2);
    if (!strstr(e, "also an input")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
    snprintf(args, sizeof args, "generate --model '%s' --task date --items 1 --samples 1 --threads 1 --out '%s'",
             model, model);
    assert_int_equal(run(args, &o, &e), 2);
    if (!strstr(e, "also an input")) fail_msg("stderr: %s", e);
    assert_true(same_bytes(model, bak));
    free(o);
    free(e);
    assert_no_temporaries();
}

/* `stats > /dev/full`, `eval > /dev/full`, `eval --decisions /dev/full`
 * exited 0 with nothing said: every write is checked, stdout at exit too. */
static void test_lost_output(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[1400], *e, *o;
    write_tmp(path, sizeof path, HDR GOOD("a") GOOD("b"));
    snprintf(args, sizeof args, "stats '%s'", path);
    assert_int_equal(run_to(args, "/dev/full", &e), 1);
    /* the reason is known when the failure shows at exit; under stdbuf -oL
     * (scripts/run-tests.sh) it showed in a printf earlier */
    if (!strstr(e, "standard output: write failed")) fail_msg("stderr: %s", e);
    free(e);
    snprintf(args, sizeof args, "stats --json '%s'", path);
    assert_int_equal(run_to(args, "/dev/full", &e), 1);
    free(e);
    snprintf(args, sizeof args, "eval '%s'", path);
    assert_int_equal(run_to(args, "/dev/full", &e), 1);
    if (!strstr(e, "standard output")) fail_msg("stderr: %s", e);
    free(e);
    snprintf(args, sizeof args, "eval '%s' --decisions /dev/full", path);
    assert_int_equal(run(args, &o, &e), 1);
    if (!strstr(e, "/dev/full") || !strstr(e, "No space left")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
    assert_int_equal(run_to("stats --help", "/dev/full", &e), 1);
    free(e);
    /* and a good run still exits 0 */
    assert_int_equal(run_to(args, "/dev/null", &e), 1); /* decisions still go to /dev/full */
    free(e);
    snprintf(args, sizeof args, "eval '%s' --decisions /dev/null", path);
    assert_int_equal(run_to(args, "/dev/null", &e), 0);
    free(e);    /* import to stdout: said once, not again by the check at exit */
    char raw[512];
    write_named(tmp_name(raw, sizeof raw, "lost.jsonl"), RAW_OK);
    snprintf(args, sizeof args, IMPORT_ARGS " '%s'", raw);
    assert_int_equal(run_to(args, "/dev/full", &e), 1);
    const char *first = strstr(e, "write failed");
    if (!first || strstr(first + 1, "write failed")) fail_msg("stderr: %s", e);
    free(e);
}

/* `stats /dev/zero` grew to 5.5 GB: binary input and over-long lines are
 * errors that say what is wrong. */
static void test_hostile_input(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[1400], *o, *e;
    assert_int_equal(run("stats /dev/zero", &o, &e), 2);
    if (!strstr(e, "NUL byte")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
    assert_int_equal(run("stats --skip-bad /dev/zero", &o, &e), 2);
    free(o);
    free(e);
    write_tmp(path, sizeof path, HDR GOOD("a") "{\"id\":\"b\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                                 "\"question\":\"a very long question indeed\",\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n");
    snprintf(args, sizeof args, "stats --max-line 100 '%s'", path);
    assert_int_equal(run(args, &o, &e), 2);
    char want[600];
    snprintf(want, sizeof want, "%s:3: line longer than the limit of 100 bytes", path);
    if (!strstr(e, want)) fail_msg("stderr '%s' lacks '%s'", e, want);
    free(o);
    free(e);
    snprintf(args, sizeof args, "stats --max-line 1K '%s'", path);
    assert_int_equal(run(args, &o, &e), 0);
    free(o);
    free(e);
    assert_int_equal(run("stats --max-line 0 x", &o, &e), 2);
    free(o);
    free(e);
    /* a NUL byte mid-line said "near end of file" */
    snprintf(path, sizeof path, "%s/nul.jsonl", tmpdir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(HDR, fp);
    fwrite("{\"id\":\0\"a\"}\n", 1, 12, fp);
    fclose(fp);
    snprintf(args, sizeof args, "stats '%s'", path);
    assert_int_equal(run(args, &o, &e), 2);
    snprintf(want, sizeof want, "%s:2: a NUL byte at column 7", path);
    if (!strstr(e, want)) fail_msg("stderr '%s' lacks '%s'", e, want);
    free(o);
    free(e);
    /* gzip input said "truncated line" */
    snprintf(path, sizeof path, "%s/t.jsonl.gz", tmpdir);
    snprintf(args, sizeof args, "printf '%s' | gzip -c > '%s'", "{}", path);
    if (system(args) == 0) {
        snprintf(args, sizeof args, "stats '%s'", path);
        assert_int_equal(run(args, &o, &e), 2);
        if (!strstr(e, "gzip-compressed input: decompress it first")) fail_msg("stderr: %s", e);
        free(o);
        free(e);
    }
    /* a token count of 2^32 said "must be a non-negative integer" */
    write_tmp(path, sizeof path, HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                                 "\"samples\":[{\"answer\":\"x\",\"tokens\":4294967296}]}\n");
    snprintf(args, sizeof args, "stats '%s'", path);
    assert_int_equal(run(args, &o, &e), 2);
    if (!strstr(e, "at most 4294967295")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
    /* ids "a\u0000b" and "a\u0000c" collided */
    write_tmp(path, sizeof path, HDR "{\"id\":\"a\\u0000b\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                                 "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n");
    snprintf(args, sizeof args, "stats '%s'", path);
    assert_int_equal(run(args, &o, &e), 2);
    if (!strstr(e, ":2: id: contains a NUL character")) fail_msg("stderr: %s", e);
    free(o);
    free(e);
}

/* --skip-bad gave a count and no reasons: the first 5, as file:line: field. */
static void test_skip_bad_reasons(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[1400], want[700], *o, *e;
    write_tmp(path, sizeof path,
              HDR GOOD("a") "[1]\n" GOOD("a") "{\"id\":\"c\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                  "\"samples\":[{\"answer\":\"x\",\"tokens\":-1}]}\n" "nope\n" "{}\n" "[2]\n" GOOD("d"));
    const char *cmds[] = {"stats", "eval"};
    for (int c = 0; c < 2; c++) {
        snprintf(args, sizeof args, "%s --skip-bad '%s'", cmds[c], path);
        assert_int_equal(run(args, &o, &e), 0);
        if (!strstr(e, "skipped 6 bad item(s)")) fail_msg("stderr: %s", e);
        snprintf(want, sizeof want, "%s:4: id:", path);
        if (!strstr(e, want)) fail_msg("stderr '%s' lacks '%s'", e, want);
        snprintf(want, sizeof want, "%s:5: samples[0].tokens: must be a non-negative integer, got -1", path);
        if (!strstr(e, want)) fail_msg("stderr '%s' lacks '%s'", e, want);
        snprintf(want, sizeof want, "%s:8:", path); /* the 6th reason is not listed */
        if (strstr(e, want)) fail_msg("stderr '%s' lists more than 5 reasons", e);
        free(o);
        free(e);
    }
}

/* --threads: past the cores it is capped (with a note), not a crash; bad
 * values are usage errors naming the limit. */
static void test_threads_and_counts(void **state)
{
    if (!bin_present()) skip();
    char path[512], args[1400], *o1, *e1, *o2, *e2;
    write_tmp(path, sizeof path, HDR GOOD("a") GOOD("b"));
    snprintf(args, sizeof args, "eval '%s' --shuffles 5 --threads 100000", path);
    assert_int_equal(run(args, &o1, &e1), 0);
    if (!strstr(e1, "--threads 100000: using")) fail_msg("stderr: %s", e1);
    snprintf(args, sizeof args, "eval '%s' --shuffles 5 --threads 1", path);
    assert_int_equal(run(args, &o2, &e2), 0);
    assert_string_equal(o1, o2);
    free(o1);
    free(e1);
    free(o2);
    free(e2);
    snprintf(args, sizeof args, "stats '%s' --threads 100000", path);
    assert_int_equal(run(args, &o1, &e1), 0);
    free(o1);
    free(e1);
    const char *bad[][2] = {{"--threads -1", "--threads"}, {"--threads x", "--threads"},
                            {"--shuffles 2000000", "0..1000000"}, {"--bootstrap -3", "0..1000000"},
                            {"--probe-cost x", "0..1000000"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "eval '%s' %s", path, bad[i][0]);
        assert_int_equal(run(args, &o1, &e1), 2);
        if (!strstr(e1, bad[i][1])) fail_msg("%s: stderr: %s", bad[i][0], e1);
        free(o1);
        free(e1);
    }
}

/* The column names are spelled out in --help, with the two oracles told apart. */
static void test_help_explains_columns(void **state)
{
    if (!bin_present()) skip();
    char *o, *e;
    assert_int_equal(run("stats --help", &o, &e), 0);
    const char *stats_words[] = {"c-oracle", "c-tokens", "oracle@k", "maj@k", "oracle:correctness", "--max-line"};
    for (size_t i = 0; i < sizeof stats_words / sizeof stats_words[0]; i++)
        if (!strstr(o, stats_words[i])) fail_msg("stats --help lacks %s", stats_words[i]);
    free(o);
    free(e);
    assert_int_equal(run("eval --help", &o, &e), 0);
    const char *eval_words[] = {"dEM pts", "reduct%", "oracle x", "oracle:correctness", "oracle@k",
                                "oracle:stable-final", "not computed"};
    for (size_t i = 0; i < sizeof eval_words / sizeof eval_words[0]; i++)
        if (!strstr(o, eval_words[i]) && !strstr(o, "cannot run")) fail_msg("eval --help lacks %s", eval_words[i]);
    free(o);
    free(e);
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
        cmocka_unit_test(test_import_out_never_destroys),
        cmocka_unit_test(test_model_outputs),
        cmocka_unit_test(test_lost_output),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_skip_bad_reasons),
        cmocka_unit_test(test_threads_and_counts),
        cmocka_unit_test(test_help_explains_columns),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
