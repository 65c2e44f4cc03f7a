/*
 * test_stats.c - votes, oracles and es_stats_compute.
 *
 * Hand cases pin down tie-breaking and the oracles' definitions; then every
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

#include "earlystop_io.h"
#include "refdata.h"

enum { A, B, C, D };

static void test_majority_ties_first_seen(void **state)
{
    uint32_t counts[4] = {0};
    /* ids are first-appearance order, so "lower id" is "seen first" */
    int32_t tie[] = {A, B, B, A};
    assert_int_equal(es_vote_majority(tie, 4, counts, 4), A);
    int32_t tie3[] = {A, B, C, C, B, A};
    assert_int_equal(es_vote_majority(tie3, 6, counts, 4), A);
    int32_t b_wins[] = {A, B, B};
    assert_int_equal(es_vote_majority(b_wins, 3, counts, 4), B);
    int32_t late[] = {A, B, C, D, D};
    assert_int_equal(es_vote_majority(late, 5, counts, 4), D);
    /* scratch must come back zeroed (the contract callers rely on) */
    for (int i = 0; i < 4; i++) assert_int_equal(counts[i], 0);
    /* nothing to vote on */
    assert_int_equal(es_vote_majority(tie, 0, counts, 4), -1);
    /* out-of-range ids are ignored, not counted */
    int32_t odd[] = {-1, 7, B, 9};
    assert_int_equal(es_vote_majority(odd, 4, counts, 4), B);
    for (int i = 0; i < 4; i++) assert_int_equal(counts[i], 0);
}

static void test_consistency_oracle_hand(void **state)
{
    uint32_t counts[4] = {0};
    /* [a,b,b,a,a]: full majority a; running leaders a,a(tie->a),b,a(tie->a),a:
     * the last prefix that disagrees is 3, so 4 samples suffice */
    int32_t x1[] = {A, B, B, A, A};
    assert_int_equal(es_vote_majority(x1, 5, counts, 4), A);
    assert_int_equal(es_consistency_oracle(x1, 5, counts, 4), 4);
    /* [a,b,b,c,a]: leaders a,a,b,b,a (full majority a by the tie) -> 5 */
    int32_t x2[] = {A, B, B, C, A};
    assert_int_equal(es_vote_majority(x2, 5, counts, 4), A);
    assert_int_equal(es_consistency_oracle(x2, 5, counts, 4), 5);
    /* unanimous and first-sample-leads cases need one sample */
    int32_t x3[] = {C, C, C};
    assert_int_equal(es_consistency_oracle(x3, 3, counts, 4), 1);
    int32_t x4[] = {A, B, A, C};
    assert_int_equal(es_consistency_oracle(x4, 4, counts, 4), 1);
    /* b leads from the 3rd sample on */
    int32_t x5[] = {A, B, B, B, C};
    assert_int_equal(es_consistency_oracle(x5, 5, counts, 4), 3);
    assert_int_equal(es_consistency_oracle(x5, 1, counts, 4), 1);
    assert_int_equal(es_consistency_oracle(x5, 0, counts, 4), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(counts[i], 0);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_majority_ties_first_seen),
        cmocka_unit_test(test_consistency_oracle_hand),
        cmocka_unit_test(test_stable_final_tokens),
        cmocka_unit_test(test_stats_compute_small),
        cmocka_unit_test(test_reference_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
