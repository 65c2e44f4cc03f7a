/*
 * test_stats.c - es_stats_compute, the stable-final oracle and duplicate
 * texts (src/replay/stats.c).  The votes behind them (es_tally, majority,
 * consistency oracle) are test_tally.c's.
 *
 * Hand cases pin down the definitions; then every
 * shared trace file is checked against the reference table of the data
 * README, parsed at run time (tests/refdata.h), to the README's precision.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include <jansson.h>

#include "clirun.h"
#include "earlystop_io.h"
#include "refdata.h"

/* answer ids: 0 is the null answer, real answers 1, 2, ... */
enum { A = 1, B, C, D };

static void test_stable_final_tokens(void **state)
{
    uint32_t at[] = {10, 20, 30, 40};
    int32_t settle[] = {B, A, A, A};
    assert_int_equal(es_stable_final_tokens(at, settle, 4, A, 99), 20);
    int32_t flip[] = {A, B, A, A};
    assert_int_equal(es_stable_final_tokens(at, flip, 4, A, 99), 30);
    int32_t always[] = {A, A, A, A};
    assert_int_equal(es_stable_final_tokens(at, always, 4, A, 99), 10);
    /* last probe differs from the final answer: the whole trace */
    int32_t last_off[] = {A, A, A, B};
    assert_int_equal(es_stable_final_tokens(at, last_off, 4, A, 99), 99);
    /* no probes: the whole trace */
    assert_int_equal(es_stable_final_tokens(at, always, 0, A, 99), 99);
    assert_int_equal(es_stable_final_tokens(at, always, 1, A, 99), 10);
}

/* Small set built by hand: figures follow from the definitions. */
static void test_stats_compute_small(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    const char *gold1[] = {"x"};
    es_sample s1[] = {
        {.answer = "y", .tokens = 10, .confidence = NAN},
        {.answer = "x", .tokens = 20, .confidence = NAN},
        {.answer = "x", .tokens = 30, .confidence = NAN},
    };
    es_item it1 = {.id = "i1", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold1,
                   .n_samples = 3, .samples = s1};
    const char *gold2[] = {"z"};
    es_sample s2[] = {
        {.answer = NULL, .tokens = 5, .confidence = NAN},
        {.answer = "q", .tokens = 7, .confidence = NAN},
        {.answer = "q", .tokens = 9, .confidence = NAN},
    };
    es_item it2 = {.id = "i2", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold2,
                   .n_samples = 3, .samples = s2};
    assert_int_equal(es_traceset_add(ts, &it1, NULL), ES_OK);
    assert_int_equal(es_traceset_add(ts, &it2, NULL), ES_OK);
    es_stats st;
    assert_int_equal(es_stats_compute(ts, &st), ES_OK);
    assert_int_equal(st.items, 2);
    assert_int_equal(st.samples, 6);
    assert_true(fabs(st.samples_per_item - 3.0) < 1e-12);
    assert_true(fabs(st.single_em - 0.0) < 1e-12);
    assert_true(fabs(st.maj_em - 0.5) < 1e-12);
    assert_true(fabs(st.oracle_em - 0.5) < 1e-12);
    assert_true(fabs(st.tokens_per_item - 40.5) < 1e-12);
    /* item 1: leaders y,y,x -> 3 samples, 60 tokens; item 2: leaders
     * null,null(tie),q -> 3 samples, 21 tokens */
    assert_true(fabs(st.consistency_oracle_samples - 3.0) < 1e-12);
    assert_true(fabs(st.consistency_oracle_tokens - 40.5) < 1e-12);
    assert_int_equal(st.traces_with_probes, 0);
    es_traceset_free(ts);
}

/* es_stats field by the name `earlystop stats --json` gives it. */
static int stat_by_key(const es_stats *s, const char *key, double *x)
{
    static const struct {
        const char *key;
        size_t off;
    } dbl[] = {
        {"samples_per_item", offsetof(es_stats, samples_per_item)},
        {"single_em", offsetof(es_stats, single_em)},
        {"maj_em", offsetof(es_stats, maj_em)},
        {"oracle_em", offsetof(es_stats, oracle_em)},
        {"tokens_per_item", offsetof(es_stats, tokens_per_item)},
        {"consistency_oracle_samples", offsetof(es_stats, consistency_oracle_samples)},
        {"consistency_oracle_tokens", offsetof(es_stats, consistency_oracle_tokens)},
        {"probes_per_trace", offsetof(es_stats, probes_per_trace)},
        {"full_em", offsetof(es_stats, full_em)},
        {"stable_final_tokens", offsetof(es_stats, stable_final_tokens)},
    };
    if (!strcmp(key, "items")) {
        *x = (double)s->items;
        return 1;
    }
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0]; i++)
        if (!strcmp(key, dbl[i].key)) {
            memcpy(x, (const char *)s + dbl[i].off, sizeof *x);
            return 1;
        }
    return 0;
}

static void test_reference_figures(void **state)
{
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
            char path[1024];
            snprintf(path, sizeof path, "%s/traces/%s.jsonl", es_ref_data_dir(), tabs[t].cells[r][0]);
            es_traceset *ts;
            es_error err = {0};
            int rc = es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err);
            if (rc) {
                char msg[1024];
                es_error_format(&err, msg, sizeof msg);
                fail_msg("load %s: %s", path, msg);
            }
            es_stats st;
            assert_int_equal(es_stats_compute(ts, &st), ES_OK);
            es_traceset_free(ts);
            files++;
            for (size_t m = 0; m < ES_REF_N_METRICS; m++) {
                double ref, got;
                int dec;
                if (!es_ref_cell(&tabs[t], r, es_ref_metrics[m].column, es_ref_metrics[m].part, &ref, &dec, &failures))
                    continue;
                assert_true(stat_by_key(&st, es_ref_metrics[m].key, &got));
                checked++;
                if (!es_ref_matches(got, ref, dec)) {
                    print_error("%s: %s (%s): computed %.*f, README %.*f\n", tabs[t].cells[r][0],
                                es_ref_metrics[m].key, es_ref_metrics[m].column, dec + 3, got, dec, ref);
                    failures++;
                }
            }
        }
    }
    /* every trace file of the data has its row (a new file without
     * reference figures would otherwise go unchecked) */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/traces", es_ref_data_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".jsonl")) continue;
        int found = 0;
        for (int t = 0; t < nt && !found; t++)
            for (int r = 0; r < tabs[t].nrows && !found; r++)
                found = strlen(tabs[t].cells[r][0]) == n - 6 && !strncmp(tabs[t].cells[r][0], e->d_name, n - 6);
        if (!found) {
            print_error("%s/%s has no row in the README's reference tables\n", dir, e->d_name);
            failures++;
        }
    }
    closedir(d);
    print_message("reference figures: %d files, %d figures checked, %d differ\n", files, checked, failures);
    assert_true(files >= 12);
    assert_true(checked >= 80);
    assert_int_equal(failures, 0);
}

/* --------------------------------------------------------- duplicate texts */

static void dup_add(es_dup *d, const char *const *t, size_t n)
{
    assert_int_equal(es_dup_add(d, t, n), ES_OK);
}

/* The duplicate rate and the copy patterns on hand-made items. */
static void test_dup_hand(void **state)
{
    es_dup *d;
    es_dup_stats s;
    assert_int_equal(es_dup_new(&d), ES_OK);
    es_dup_get(d, &s);
    assert_true(isnan(es_dup_rate(&s)));   /* no texts: no rate */
    const char *none[] = {NULL, NULL, NULL, NULL};
    dup_add(d, none, 4);
    es_dup_get(d, &s);
    assert_int_equal(s.items, 1);
    assert_int_equal(s.text_samples, 0);
    assert_true(isnan(es_dup_rate(&s)));
    assert_int_equal(s.pattern_checked, 0);
    es_dup_free(d);

    struct {
        const char *t[8];
        size_t n;
        int dups, checked, pattern;
    } cases[] = {
        {{"a", "b", "c", "a", "b", "c"}, 6, 3, 1, 1},             /* list repeated */
        {{"a", "b", "c", "d", "e", "a", "b", "c"}, 8, 3, 1, 0},   /* 3 of 8 copied: < half */
        {{"a", "b", "c", "d", "a", "b", "c", "d"}, 8, 4, 1, 1},   /* halves */
        {{"a", "b", "c", "a", "b"}, 5, 2, 1, 0},                  /* 2 of 5 copied: < half */
        {{"a", "b", "c", "a", "b", "c", "a"}, 7, 4, 1, 1},        /* period 3: 4 of 7 copied */
        {{"a", "a", "b", "b", "c", "c"}, 6, 3, 1, 1},             /* each sample doubled */
        {{"a", "a", "a", "a", "a", "a"}, 6, 5, 0, 0},             /* one text: not checked */
        {{"a", "a", "b"}, 3, 1, 0, 0},                            /* k = 3: not checked */
        {{"a", "b", "a", "c", "a", "d"}, 6, 2, 1, 0},             /* duplicates, no pattern */
        {{"a", NULL, "a", "b"}, 4, 1, 0, 0},                      /* a sample without text */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(es_dup_new(&d), ES_OK);
        dup_add(d, cases[c].t, cases[c].n);
        es_dup_get(d, &s);
        print_message("case %zu\n", c);
        assert_int_equal(s.dup_samples, cases[c].dups);
        assert_int_equal(s.pattern_checked, cases[c].checked);
        assert_int_equal(s.pattern_items, cases[c].pattern);
        es_dup_free(d);
    }
    /* the rule: patterns in >= 2 items and >= half of the checked ones */
    assert_int_equal(es_dup_new(&d), ES_OK);
    const char *copy[] = {"a", "b", "a", "b"}, *honest[] = {"a", "b", "c", "a"};
    dup_add(d, copy, 4);
    es_dup_get(d, &s);
    assert_false(es_dup_suspicious(&s));   /* one item is not enough */
    dup_add(d, copy, 4);
    dup_add(d, honest, 4);
    dup_add(d, honest, 4);
    es_dup_get(d, &s);
    assert_true(es_dup_suspicious(&s));    /* 2 of 4 */
    dup_add(d, honest, 4);
    es_dup_get(d, &s);
    assert_false(es_dup_suspicious(&s));   /* 2 of 5 */
    assert_true(fabs(es_dup_rate(&s) - 7.0 / 20.0) < 1e-12);   /* 2 + 2 + 1 + 1 + 1 copies */
    char msg[512];
    es_dup_describe(&s, msg, sizeof msg);
    assert_non_null(strstr(msg, "2 of 5 items"));
    es_dup_free(d);
}

/* Items of a trace file into d (texts kept per item only). */
static int dup_file(const char *path, es_dup *d)
{
    es_trace_reader *r;
    es_error err = {0};
    if (es_trace_reader_open(path, 0, &r, &err)) fail_msg("open %s: %s", path, err.msg);
    es_item it;
    int rc;
    while ((rc = es_trace_reader_next(r, &it, &err)) == ES_OK) assert_int_equal(es_dup_add_item(d, &it), ES_OK);
    es_trace_reader_free(r);
    /* files of the math answer type need branch i7-answers; they carry no texts */
    if (rc != ES_EOF && !strcmp(err.field, "answer_type")) return 0;
    if (rc != ES_EOF) fail_msg("%s:%ld: %s: %s", path, err.line, err.field, err.msg);
    return 1;
}

/* The rule stays quiet on every honest shared file, though some hold many
 * identical texts (faithful_date: 97% of samples copy an earlier text;
 * mot_gpt4_*: identical texts at k = 3). */
static void test_dup_shared_files(void **state)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/traces", es_ref_data_dir());
    DIR *dd = opendir(dir);
    if (!dd) {
        print_message("shared data absent (%s): set ES_SHARED_DATA; skipping\n", dir);
        skip();
    }
    int files = 0, with_text = 0;
    for (struct dirent *e; (e = readdir(dd));) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".jsonl")) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        es_dup *d;
        assert_int_equal(es_dup_new(&d), ES_OK);
        if (dup_file(path, d)) {
            es_dup_stats s;
            es_dup_get(d, &s);
            print_message("%-45s duplicate rate %.4f, copy patterns in %zu of %zu items\n", e->d_name,
                          es_dup_rate(&s), s.pattern_items, s.pattern_checked);
            assert_false(es_dup_suspicious(&s));
            files++;
            with_text += s.text_samples > 0;
        }
        es_dup_free(d);
    }
    closedir(dd);
    assert_true(with_text >= 14);
    assert_true(files >= with_text);
}

/* Write `src`'s items with each item's first `half` samples twice. */
static void write_copied(const char *src, const char *dst, size_t half)
{
    es_trace_reader *r;
    es_trace_writer *w;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(src, 0, &r, &err), ES_OK);
    FILE *fp = fopen(dst, "w");
    assert_non_null(fp);
    assert_int_equal(es_trace_writer_open(fp, "{\"note\":\"copied\"}", &w, &err), ES_OK);
    es_sample *buf = calloc(2 * half, sizeof *buf);
    assert_non_null(buf);
    es_item it;
    while (es_trace_reader_next(r, &it, &err) == ES_OK) {
        assert_true(it.n_samples >= half);
        for (size_t i = 0; i < 2 * half; i++) buf[i] = it.samples[i % half];
        it.samples = buf;
        it.n_samples = 2 * half;
        assert_int_equal(es_trace_writer_write(w, &it, &err), ES_OK);
    }
    free(buf);
    assert_int_equal(es_trace_writer_free(w), ES_OK);
    assert_int_equal(fclose(fp), 0);
    es_trace_reader_free(r);
}

/* `stats --json` reports the duplicate rate (null without texts) and warns
 * on a constructed copied file, not on the honest file it came from. */
static void test_dup_stats_cli(void **state)
{
    if (!bin_present()) skip();
    char src[1024], copied[512], notext[1024], args[4096], *out, *err;
    snprintf(src, sizeof src, "%s/traces/mot_gpt35_date_cot1.jsonl", es_ref_data_dir());
    snprintf(notext, sizeof notext, "%s/traces/boinf_aime2024_Qwen3-4B_k80.jsonl", es_ref_data_dir());
    if (access(src, R_OK)) {
        print_message("shared data absent (%s): set ES_SHARED_DATA; skipping\n", src);
        skip();
    }
    snprintf(args, sizeof args, "stats --json '%s'", src);
    assert_int_equal(run(args, &out, &err), 0);
    assert_null(strstr(err, "warning"));
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    assert_non_null(o);
    double honest = json_real_value(json_object_get(o, "duplicate_rate"));
    assert_true(honest > 0.5 && honest < 0.7);   /* 0.6047: short date answers repeat honestly */
    assert_int_equal(json_integer_value(json_object_get(o, "copy_checked_items")), 347);
    json_decref(o);
    free(out);
    free(err);

    snprintf(copied, sizeof copied, "%s/copied_cot1.jsonl", tmpdir);
    write_copied(src, copied, 10);
    snprintf(args, sizeof args, "stats --json '%s'", copied);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(err, "earlystop stats: warning: "));
    assert_non_null(strstr(err, "copy pattern"));
    o = json_loads(out, 0, &je);
    assert_non_null(o);
    double rate = json_real_value(json_object_get(o, "duplicate_rate"));
    assert_true(rate >= 0.5 && rate > honest);
    json_int_t checked = json_integer_value(json_object_get(o, "copy_checked_items"));
    assert_true(checked > 300);
    assert_int_equal(json_integer_value(json_object_get(o, "copy_pattern_items")), checked);
    json_decref(o);
    free(out);
    free(err);

    /* the table form warns too */
    snprintf(args, sizeof args, "stats '%s'", copied);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(err, "warning"));
    free(out);
    free(err);

    if (access(notext, R_OK) == 0) {
        snprintf(args, sizeof args, "stats --json '%s'", notext);
        assert_int_equal(run(args, &out, &err), 0);
        assert_non_null(strstr(out, "\"duplicate_rate\":null"));
        free(out);
        free(err);
    }
}

static int setup(void **state)
{
    return clirun_setup("test_stats");
}

static int teardown(void **state)
{
    return clirun_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stable_final_tokens),
        cmocka_unit_test(test_stats_compute_small),
        cmocka_unit_test(test_reference_figures),
        cmocka_unit_test(test_dup_hand),
        cmocka_unit_test(test_dup_shared_files),
        cmocka_unit_test(test_dup_stats_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
