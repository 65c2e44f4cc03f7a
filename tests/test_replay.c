/*
 * test_replay.c - the policies replayed on the shared real traces, samples in
 * file order, against the reference figures of $ES_SHARED_DATA/README.md
 * (computed independently of the project): AC-beta .95 and ESC w5 EM and
 * mean samples, `full` = maj@k EM, the consistency oracle's samples and
 * tokens and, for the long-trace files, the stable-final oracle's tokens.
 *
 * The figures are parsed from the README at run time (tests/refdata.h), never
 * copied here, and compared at the precision the README prints.  Skips when
 * the data is absent.
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

#include "earlystop.h"
#include "earlystop_io.h"
#include "refdata.h"

static es_ref_table tabs[ES_REF_MAX_TABLES];
static int n_tabs;

static int setup(void **state)
{
    char readme[1024];
    snprintf(readme, sizeof readme, "%s/README.md", es_ref_data_dir());
    n_tabs = es_ref_load(readme, tabs, ES_REF_MAX_TABLES);
    return 0;
}

/* Means over items of one replay in file order. */
typedef struct figs {
    double em, samples, tokens;
} figs;

static figs means(const es_eval_acc *acc, size_t n)
{
    figs f = {0};
    for (size_t i = 0; i < n; i++) {
        f.em += (double)acc[i].correct;
        f.samples += (double)acc[i].samples;
        f.tokens += (double)acc[i].tokens;
    }
    f.em /= (double)n;
    f.samples /= (double)n;
    f.tokens /= (double)n;
    return f;
}

static figs replay_policy(const es_traceset *ts, const char *spec)
{
    size_t n = es_traceset_n_items(ts), bad = 0;
    es_eval_acc *acc = calloc(n, sizeof *acc);
    assert_non_null(acc);
    es_policy *p = NULL;
    es_error err = {0};
    if (es_policy_new(spec, &p, &err)) fail_msg("%s: %s", spec, err.msg);
    int rc = es_eval_policy(ts, p, 1, 0, 0, ES_PROBE_COST_FIELD, acc, &bad);
    if (rc) fail_msg("%s: item %zu: %s", spec, bad, es_policy_errmsg(p));
    figs f = means(acc, n);
    es_policy_free(p);
    free(acc);
    return f;
}

static figs replay_oracle(const es_traceset *ts, es_oracle which)
{
    size_t n = es_traceset_n_items(ts);
    es_eval_acc *acc = calloc(n, sizeof *acc);
    assert_non_null(acc);
    assert_int_equal(es_eval_oracle(ts, which, 1, 0, 0, acc), ES_OK);
    figs f = means(acc, n);
    free(acc);
    return f;
}

/* Compare `got` with part `part` of the row's cell in `column`; 1 when the
 * column exists (a check was made), failures counted. */
static int check(const es_ref_table *t, int r, const char *column, int part, double got, const char *what,
                 int *failures)
{
    double ref;
    int dec;
    if (!es_ref_cell(t, r, column, part, &ref, &dec, failures)) return 0;
    if (!es_ref_matches(got, ref, dec)) {
        print_error("%s: %s: replay %.*f, README %.*f\n", t->cells[r][0], what, dec + 3, got, dec, ref);
        (*failures)++;
    }
    return 1;
}

static void test_reference_replay(void **state)
{
    if (n_tabs < 2) {
        print_message("shared data absent (%s/README.md): set ES_SHARED_DATA; skipping\n", es_ref_data_dir());
        skip();
    }
    int files = 0, checked = 0, failures = es_ref_check_tables(tabs, n_tabs), think = 0;
    for (int t = 0; t < n_tabs; t++)
        for (int r = 0; r < tabs[t].nrows; r++) {
            const es_ref_table *tb = &tabs[t];
            char path[1200];
            snprintf(path, sizeof path, "%s/traces/%s.jsonl", es_ref_data_dir(), tb->cells[r][0]);
            struct stat sb;
            if (stat(path, &sb)) {
                print_message("%s absent; skipping it\n", path);
                continue;
            }
            es_traceset *ts = NULL;
            es_error err = {0};
            if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err)) fail_msg("%s: %s", path, err.msg);
            files++;
            figs full = replay_policy(ts, "full");
            checked += check(tb, r, "maj@k EM", 0, full.em, "full EM", &failures);
            checked += check(tb, r, "full EM", 0, full.em, "full EM", &failures);
            if (es_ref_col(tb, "AC-beta .95 EM / samples") >= 0) {
                figs ac = replay_policy(ts, "ac-beta");
                checked += check(tb, r, "AC-beta .95 EM / samples", 0, ac.em, "ac-beta EM", &failures);
                checked += check(tb, r, "AC-beta .95 EM / samples", 1, ac.samples, "ac-beta samples", &failures);
            }
            if (es_ref_col(tb, "ESC w5 EM / samples") >= 0) {
                figs esc = replay_policy(ts, "esc");
                checked += check(tb, r, "ESC w5 EM / samples", 0, esc.em, "esc EM", &failures);
                checked += check(tb, r, "ESC w5 EM / samples", 1, esc.samples, "esc samples", &failures);
            }
            if (es_ref_col(tb, "consistency-oracle samples / tokens") >= 0) {
                figs o = replay_oracle(ts, ES_ORACLE_CONSISTENCY);
                checked += check(tb, r, "consistency-oracle samples / tokens", 0, o.samples,
                                 "consistency-oracle samples", &failures);
                checked += check(tb, r, "consistency-oracle samples / tokens", 1, o.tokens,
                                 "consistency-oracle tokens", &failures);
                /* the oracle answers the full majority */
                if (o.em != full.em) fail_msg("%s: consistency oracle EM %f != full %f", path, o.em, full.em);
            }
            if (es_ref_col(tb, "stable-final oracle tokens") >= 0) {
                figs o = replay_oracle(ts, ES_ORACLE_STABLE_FINAL);
                checked += check(tb, r, "stable-final oracle tokens", 0, o.tokens, "stable-final oracle tokens",
                                 &failures);
                think++;
            }
            es_traceset_free(ts);
        }
    print_message("replay vs README: %d files (%d long-trace), %d figures checked, %d differ\n", files, think,
                  checked, failures);
    if (files == 0) {
        print_message("no trace file of the README found under %s/traces; skipping\n", es_ref_data_dir());
        skip();
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_replay),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
