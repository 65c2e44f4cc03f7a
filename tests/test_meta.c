/*
 * test_meta.c - the meta-learning layer on real traces: per-item figures
 * against a plain replay, a task made of k items against the same items cut
 * from the whole task, leave-one-task-out adaptation on held-out items
 * (adapted against the prior's default, and unlabelled against labelled),
 * shrinkage toward the items' own estimate as k grows, a prior that does
 * not depend on the order of its tasks nor see the held-out one,
 * Learn-then-Test's certified prefix, the prior file's round trip and its
 * errors, and tasks no family applies to.
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

#include "earlystop_io.h"
#include "earlystop_meta.h"
#include "meta/meta_int.h"
#include "refdata.h"
#include "reftrace.h"

/* Tasks of different kinds: date (several prompts, temperatures, sample
 * counts), last letters, GSM8K with 5 samples, CREPE with 3. */
static const char *const names[] = {
    "mot_gpt35_date_cot1",   "mot_gpt35_date_cot2_t08",       "mot_gpt35_date_cot1_40",
    "verifycot_date_gpt35_k10", "esc_last_letters_gpt35_k40", "faithful_date_codex002_k40",
    "cotuq_llama31_8b_cod_gsm8k_k5", "mot_gpt4_crepe_cot1_k3",
};
enum { N_TASKS = sizeof names / sizeof names[0], SHUFFLES = 4 };

static es_traceset *ts[N_TASKS];
static es_meta_task *task[N_TASKS];
static es_meta_opts opts;
static int have_data;

static int setup(void **state)
{
    (void)state;
    es_meta_opts_init(&opts);
    opts.shuffles = SHUFFLES;
    for (int i = 0; i < N_TASKS; i++) {
        if (!(ts[i] = es_ref_load_trace(names[i]))) return 0;
        es_error err = {0};
        if (es_meta_task_new(ts[i], names[i], NULL, 0, NULL, &opts, &task[i], &err)) {
            fprintf(stderr, "%s: %s\n", names[i], err.msg);
            return -1;
        }
    }
    have_data = 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N_TASKS; i++) {
        es_meta_task_free(task[i]);
        es_traceset_free(ts[i]);
    }
    return 0;
}

#define NEED_DATA()                                                                                                    \
    do {                                                                                                               \
        if (!have_data) {                                                                                              \
            print_message("shared data absent (%s): skipping\n", es_ref_data_dir());                                  \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

/* A prior trained on every task but `out` (-1: all). */
static es_meta_prior *prior_without(int out)
{
    es_meta_task *tr[N_TASKS];
    size_t n = 0;
    for (int i = 0; i < N_TASKS; i++)
        if (i != out) tr[n++] = task[i];
    es_meta_prior *p;
    es_error err = {0};
    if (es_meta_train(tr, n, &opts, &p, &err)) fail_msg("train without %d: %s", out, err.msg);
    return p;
}

/* k distinct items of m, and the others, by the layer's seeded draw. */
static void draw(uint64_t *s, size_t m, size_t k, uint32_t *pick, uint32_t *rest, size_t *n_rest)
{
    assert_int_equal(mt_draw(s, m, k, pick), ES_OK);
    size_t j = 0;
    *n_rest = 0;
    for (size_t i = 0; i < m; i++) {
        if (j < k && pick[j] == i) j++;
        else rest[(*n_rest)++] = (uint32_t)i;
    }
}

/* ---------------------------------------------------------------- tests */

/* Cells of family f at every `step`-th grid point, every 7th item, against
 * a plain replay of the point's spec. */
static void check_cells(const es_meta_task *t, size_t f, size_t step)
{
    const mt_family *fam = &t->fam[f];
    size_t ti = 0;
    while (task[ti] != t) ti++;
    es_error err = {0};
    int checked = 0;
    for (size_t g = 0; g < fam->n_grid; g += step) {
        char spec[512];
        assert_int_equal(mt_spec_of(fam, fam->grid[g], spec, sizeof spec, &err), ES_OK);
        es_policy *p;
        es_session *s;
        assert_int_equal(es_policy_new(spec, &p, &err), ES_OK);
        assert_int_equal(es_session_new(p, &s), ES_OK);
        uint32_t order[64];
        for (size_t i = 0; i < t->n; i += 7) {
            es_item_view v;
            es_traceset_item(ts[ti], i, &v);
            double correct = 0, tokens = 0;
            for (uint32_t r = 0; r < SHUFFLES; r++) {
                es_shuffle_order(opts.seed, r, (uint32_t)i, v.n_samples, order);
                es_outcome o;
                assert_int_equal(es_replay_item(s, &v, order, ES_PROBE_COST_FIELD, &o), ES_OK);
                correct += o.correct;
                tokens += (double)(o.tokens + o.probe_tokens);
            }
            const es_tune_cell *c = &t->cells[f][g * t->n + i];
            if (fabs(c->correct - correct / SHUFFLES) > 1e-12 || fabs(c->tokens - tokens / SHUFFLES) > 1e-9)
                fail_msg("%s item %zu: cell %.4f/%.2f, replay %.4f/%.2f", spec, i, c->correct, c->tokens,
                         correct / SHUFFLES, tokens / SHUFFLES);
            checked++;
        }
        es_session_free(s);
        es_policy_free(p);
    }
    print_message("%s: cells = replay on %d (item, grid point) pairs\n", fam->name, checked);
}

/* The figures a task holds at a grid point are a plain replay of that
 * policy: per item, correct answers and tokens summed over the orders. */
static void test_cells_are_replays(void **state)
{
    (void)state;
    NEED_DATA();
    const es_meta_task *t = task[0];
    static const char *const fams[] = {"margin", "ac-beta", "learned"};
    assert_int_equal(t->n_fam, sizeof fams / sizeof fams[0]);
    for (size_t f = 0; f < t->n_fam; f++) {
        assert_string_equal(t->fam[f].name, fams[f]);
        check_cells(t, f, 6);
    }
}

/* The learned family (the built-in stopper's score threshold): its grid is
 * on the score's scale (the conservative end spends more than twice the
 * aggressive end's tokens), every grid point's cells are replays, and a
 * task replayed on a prior's grids (what adapt does) holds the same. */
static void test_learned_family(void **state)
{
    (void)state;
    NEED_DATA();
    const es_meta_task *t = task[1];
    size_t f = 2;
    assert_string_equal(t->fam[f].name, "learned");
    es_meta_figures first, last;
    assert_int_equal(es_meta_task_figures(t, f, 0, ES_META_GOLD, &first), ES_OK);
    assert_int_equal(es_meta_task_figures(t, f, t->fam[f].n_grid - 1, ES_META_GOLD, &last), ES_OK);
    assert_true(first.tokens > 2 * last.tokens);
    check_cells(t, f, 1);
    es_meta_prior *p = prior_without(-1);
    es_meta_task *again;
    es_error err = {0};
    assert_int_equal(es_meta_task_new(ts[1], names[1], NULL, 0, p, &opts, &again, &err), ES_OK);
    assert_string_equal(again->fam[f].name, "learned");
    for (size_t g = 0; g < t->fam[f].n_grid; g++)
        for (size_t i = 0; i < t->n; i++) {
            const es_tune_cell *a = &t->cells[f][g * t->n + i], *b = &again->cells[f][g * t->n + i];
            assert_true(a->correct == b->correct && a->tokens == b->tokens);
        }
    es_meta_task_free(again);
    es_meta_prior_free(p);
}

/* A task replayed on k items holds what the same items cut from the whole
 * task hold: adapt on k items alone sees what the benchmark's draws see. */
static void test_subset_is_replay_of_items(void **state)
{
    (void)state;
    NEED_DATA();
    const es_meta_task *t = task[3];
    uint32_t pick[16], rest[512];
    size_t nr;
    uint64_t s = 42;
    draw(&s, t->n, 16, pick, rest, &nr);
    es_meta_task *cut, *alone;
    es_error err = {0};
    assert_int_equal(es_meta_task_subset(t, pick, 16, &cut), ES_OK);
    assert_int_equal(es_meta_task_new(ts[3], names[3], pick, 16, NULL, &opts, &alone, &err), ES_OK);
    for (size_t f = 0; f < t->n_fam; f++)
        for (size_t g = 0; g < t->fam[f].n_grid; g++) {
            es_meta_figures a, b;
            assert_int_equal(es_meta_task_figures(cut, f, g, ES_META_GOLD, &a), ES_OK);
            assert_int_equal(es_meta_task_figures(alone, f, g, ES_META_GOLD, &b), ES_OK);
            assert_true(a.em == b.em && a.tokens == b.tokens && a.loss == b.loss && a.share == b.share);
        }
    double x[ES_META_N_DESC], y[ES_META_N_DESC];
    es_meta_task_descriptor(cut, x);
    es_meta_task_descriptor(alone, y);
    for (size_t j = 0; j < ES_META_N_DESC; j++) assert_true(x[j] == y[j] || (isnan(x[j]) && isnan(y[j])));
    es_meta_task_free(cut);
    es_meta_task_free(alone);
}

/* Leave one task out: for each task, a prior trained on the others adapts
 * to 16 of its items; on its other items the adapted policy keeps EM within
 * eps of full on average, loses no more EM than the prior's default beyond
 * 0.25 pt on average (1 pt on any task), saves tokens, and adapting without
 * labels keeps at least 85% of the labelled adaptation's savings. */
static void test_leave_one_task_out(void **state)
{
    (void)state;
    NEED_DATA();
    enum { K = 16, DRAWS = 8 };
    double sum_c = 0, sum_a = 0, share_c = 0, share_a = 0, save_gold = 0, save_none = 0, share_full = 0;
    int n = 0;
    for (int h = 0; h < N_TASKS; h++) {
        es_meta_prior *p = prior_without(h);
        const es_meta_task *t = task[h];
        uint32_t *pick = malloc(K * sizeof *pick), *rest = malloc(t->n * sizeof *rest);
        size_t nr;
        uint64_t s = 1000 + (uint64_t)h;
        double task_c = 0, task_a = 0;
        for (int d = 0; d < DRAWS; d++) {
            draw(&s, t->n, K, pick, rest, &nr);
            es_meta_task *k, *held;
            assert_int_equal(es_meta_task_subset(t, pick, K, &k), ES_OK);
            assert_int_equal(es_meta_task_subset(t, rest, nr, &held), ES_OK);
            es_meta_choice c, a, u;
            es_error err = {0};
            assert_int_equal(es_meta_adapt(p, k, ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err), ES_OK);
            assert_int_equal(es_meta_adapt(p, k, ES_META_GOLD, ES_META_DEFAULT, ES_META_FULL, &a, &err), ES_OK);
            assert_int_equal(es_meta_adapt(p, k, ES_META_NONE, ES_META_ADAPT, ES_META_FULL, &u, &err), ES_OK);
            es_meta_figures fc, fa, fu;
            es_meta_task_figures(held, c.f, c.g, ES_META_GOLD, &fc);
            es_meta_task_figures(held, a.f, a.g, ES_META_GOLD, &fa);
            es_meta_task_figures(held, u.f, u.g, ES_META_GOLD, &fu);
            task_c += 100 * (fc.em - fc.em_full);
            task_a += 100 * (fa.em - fa.em_full);
            share_c += fc.share;
            share_a += fa.share;
            save_gold += 1 - fc.share;
            save_none += 1 - fu.share;
            share_full += 1;
            n++;
            es_meta_task_free(k);
            es_meta_task_free(held);
        }
        print_message("%-32s adapted %+.2f pts, default %+.2f pts (mean of %d draws of %d items)\n", names[h],
                      task_c / DRAWS, task_a / DRAWS, DRAWS, K);
        assert_true(task_c / DRAWS >= task_a / DRAWS - 1.0);
        sum_c += task_c;
        sum_a += task_a;
        free(pick);
        free(rest);
        es_meta_prior_free(p);
    }
    print_message("mean over %d draws: adapted %+.3f pts at %.3f of full's tokens, default %+.3f pts at %.3f; "
                  "savings unlabelled %.3f vs labelled %.3f\n", n, sum_c / n, share_c / n, sum_a / n, share_a / n,
                  save_none / n, save_gold / n);
    assert_true(sum_c / n >= -100 * opts.max_em_drop);
    assert_true(sum_c / n >= sum_a / n - 0.25);
    assert_true(share_c / n < 0.9 * share_full / n);
    assert_true(save_none >= 0.85 * save_gold);
}

/* The weight on the k items' own estimate grows with k, and with all of a
 * task's items the posterior lies nearer the task's best than the prior. */
static void test_shrinkage_grows_with_k(void **state)
{
    (void)state;
    NEED_DATA();
    const int h = 4; /* last letters, 500 items */
    es_meta_prior *p = prior_without(h);
    const es_meta_task *t = task[h];
    static const size_t ks[] = {8, 32, 128};
    double prev = -1;
    uint32_t pick[128], rest[512];
    size_t nr;
    for (size_t j = 0; j < 3; j++) {
        uint64_t s = 7;
        draw(&s, t->n, ks[j], pick, rest, &nr);
        es_meta_task *k;
        assert_int_equal(es_meta_task_subset(t, pick, ks[j], &k), ES_OK);
        es_meta_choice c;
        es_error err = {0};
        assert_int_equal(es_meta_adapt(p, k, ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err), ES_OK);
        print_message("k = %zu: weight %.3f (noise var %.3f, prior var %.3f)\n", ks[j], c.weight, c.var_data, c.tau2);
        assert_true(c.weight > prev);
        prev = c.weight;
        es_meta_task_free(k);
    }
    es_meta_choice c;
    es_error err = {0};
    assert_int_equal(es_meta_adapt(p, t, ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err), ES_OK);
    size_t best = es_meta_task_best(t, c.f, ES_META_GOLD, p->eps);
    double zb = mt_to_z(p->fam[c.f].scale, p->fam[c.f].grid[best == ES_META_FULL ? 0 : best]);
    print_message("all %zu items: prior %.3f, posterior %.3f, the task's best %.3f (weight %.3f)\n", t->n, c.z_prior,
                  c.z_post, zb, c.weight);
    assert_true(c.weight > 0.5);
    assert_true(fabs(c.z_post - zb) <= fabs(c.z_prior - zb) + 1e-12);
    es_meta_prior_free(p);
}

static int same_fit(const mt_fit *a, const mt_fit *b)
{
    int ok = fabs(a->mean - b->mean) < 1e-9 && fabs(a->var - b->var) < 1e-9 &&
             fabs(a->resid_var - b->resid_var) < 1e-9 && a->n_k == b->n_k && a->g_default == b->g_default;
    for (size_t j = 0; ok && j <= ES_META_N_DESC; j++) ok = fabs(a->coef[j] - b->coef[j]) < 1e-9;
    for (size_t j = 0; ok && j < a->n_k; j++)
        ok = fabs(a->noise[j] - b->noise[j]) < 1e-9 && fabs(a->bias[j] - b->bias[j]) < 1e-9;
    return ok;
}

/* A prior depends on its training tasks only, not on their order (draws are
 * seeded by task name), and never on the held-out task; with the held-out
 * task among them it does change. */
static void test_prior_independent_of_heldout(void **state)
{
    (void)state;
    NEED_DATA();
    const int h = 0;
    es_meta_task *fwd[N_TASKS], *rev[N_TASKS];
    size_t n = 0;
    for (int i = 0; i < N_TASKS; i++)
        if (i != h) fwd[n++] = task[i];
    for (size_t i = 0; i < n; i++) rev[i] = fwd[n - 1 - i];
    es_meta_prior *a, *b, *with;
    es_error err = {0};
    assert_int_equal(es_meta_train(fwd, n, &opts, &a, &err), ES_OK);
    assert_int_equal(es_meta_train(rev, n, &opts, &b, &err), ES_OK);
    with = prior_without(-1);
    int differs = 0;
    for (size_t f = 0; f < a->n_fam; f++)
        for (int l = 0; l < ES_META_N_LABELS; l++) {
            assert_true(same_fit(&a->fit[f][l], &b->fit[f][l]));
            differs |= !same_fit(&a->fit[f][l], &with->fit[f][l]);
        }
    assert_true(differs);
    for (size_t t = 0; t < a->n_tasks; t++) assert_string_not_equal(a->tasks[t].name, names[h]);
    /* the same choice for the held-out task from either */
    es_meta_choice ca, cb;
    assert_int_equal(es_meta_adapt(a, task[h], ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &ca, &err), ES_OK);
    assert_int_equal(es_meta_adapt(b, task[h], ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &cb, &err), ES_OK);
    assert_string_equal(ca.spec, cb.spec);
    es_meta_prior_free(a);
    es_meta_prior_free(b);
    es_meta_prior_free(with);
}

/* The certified prefix is what fixed-sequence testing gives on the items'
 * losses; with 16 items and eps 0.5 pt nothing is certified and the output
 * says how many items would be needed. */
static void test_learn_then_test(void **state)
{
    (void)state;
    NEED_DATA();
    const int h = 6; /* GSM8K, 1312 items x 5 samples */
    es_meta_opts o = opts;
    o.max_em_drop = 0.05;
    es_meta_task *tr[N_TASKS];
    size_t n = 0;
    for (int i = 0; i < N_TASKS; i++)
        if (i != h) tr[n++] = task[i];
    es_meta_prior *p;
    es_error err = {0};
    assert_int_equal(es_meta_train(tr, n, &o, &p, &err), ES_OK);
    es_meta_choice c;
    assert_int_equal(es_meta_adapt(p, task[h], ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err), ES_OK);
    print_message("%zu items at eps 5 pts: %zu grid points certified, choice %s certified %d\n", task[h]->n,
                  c.n_certified, c.spec, c.certified);
    assert_true(c.n_certified > 0);
    double *loss = malloc(task[h]->n * sizeof *loss);
    for (size_t g = 0; g <= c.g && g < task[h]->fam[c.f].n_grid; g++) {
        mt_item_losses(task[h], c.f, g, ES_META_GOLD, loss);
        double pv = es_tune_pvalue(loss, task[h]->n, p->eps, p->delta, p->seed);
        if (g < c.n_certified) assert_true(pv <= p->delta);
        else {
            assert_true(pv > p->delta); /* the sequence stopped here */
            break;
        }
    }
    assert_int_equal(c.certified, c.n_certified > c.g);
    free(loss);
    es_meta_prior_free(p);

    /* 16 items at eps 0.5 pt: none, and the count that would be needed */
    p = prior_without(h);
    uint32_t pick[16], rest[2048];
    size_t nr;
    uint64_t s = 3;
    draw(&s, task[h]->n, 16, pick, rest, &nr);
    es_meta_task *k;
    assert_int_equal(es_meta_task_subset(task[h], pick, 16, &k), ES_OK);
    assert_int_equal(es_meta_adapt(p, k, ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err), ES_OK);
    assert_false(c.certified);
    assert_int_equal(c.n_certified, 0);
    assert_string_equal(c.certified_spec, "full");
    assert_true(c.items_needed == ceil(log(p->delta) / log1p(-p->eps)));
    es_meta_choice b;
    assert_int_equal(es_meta_adapt(p, k, ES_META_GOLD, ES_META_SCRATCH_LTT, ES_META_FULL, &b, &err), ES_OK);
    assert_string_equal(b.spec, "full");
    es_meta_task_free(k);
    es_meta_prior_free(p);
}

/* ------------------------------------------------------------ prior file */

static char tmp_path[256];

static void write_json(json_t *j)
{
    assert_int_equal(json_dump_file(j, tmp_path, JSON_INDENT(1)), 0);
}

/* Read back what was written: the same choices.  Then every kind of damage
 * is refused with the field named. */
static void test_prior_file(void **state)
{
    (void)state;
    NEED_DATA();
    snprintf(tmp_path, sizeof tmp_path, "/tmp/es_test_meta_%d.json", (int)getpid());
    es_meta_prior *p = prior_without(1), *q;
    FILE *fp = fopen(tmp_path, "w");
    es_error err = {0};
    assert_non_null(fp);
    assert_int_equal(es_meta_prior_write(p, fp, &err), ES_OK);
    fclose(fp);
    assert_int_equal(es_meta_prior_read(tmp_path, &q, &err), ES_OK);
    for (int l = 0; l < ES_META_N_LABELS; l++) {
        es_meta_choice a, b;
        assert_int_equal(es_meta_adapt(p, task[1], (es_meta_labels)l, ES_META_ADAPT, ES_META_FULL, &a, &err), ES_OK);
        assert_int_equal(es_meta_adapt(q, task[1], (es_meta_labels)l, ES_META_ADAPT, ES_META_FULL, &b, &err), ES_OK);
        assert_string_equal(a.spec, b.spec);
        assert_true(fabs(a.z_post - b.z_post) < 1e-9);
    }
    es_meta_prior_free(q);

    json_error_t je;
    json_t *good = json_load_file(tmp_path, 0, &je);
    assert_non_null(good);
    static const struct {
        const char *path; /* a.b.c, [n] as .n */
        const char *json; /* new value, or NULL to delete */
        const char *field, *says;
    } bad[] = {
        {"version", "2", "version", "version 2"},
        {"format", "\"earlystop-traces\"", "format", "earlystop-prior"},
        {"delta", "1.5", "delta", "outside"},
        {"delta", NULL, "delta", "number"},
        {"families.0.grid.3", "500", "families[0]", "conservative to aggressive"},
        {"families.0.spec", "\"esc\"", "families[0]", "does not sweep"},
        {"families.0.fits.gold.noise.2.k", "1", "families[0].fits.gold.noise[2].k", "increase"},
        {"families.0.fits.none.default", "2.5", "families[0].fits.none.default", "grid"},
        {"families.1.fits.gold.coef", "[1, 2]", "families[1].fits.gold.coef", "array of"},
        {"descriptor.names.1", "\"agree\"", "descriptor.names[1]", "agreement"},
        {"default_family", "\"dynasor\"", "default_family", "no family"},
        {"families.0.scale", "\"sqrt\"", "families[0].scale", "log"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_deep_copy(good), *at = j, *parent = NULL;
        char path[128], *save = NULL, *key = NULL;
        snprintf(path, sizeof path, "%s", bad[i].path);
        for (char *tok = strtok_r(path, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
            parent = at;
            key = tok;
            at = json_is_array(at) ? json_array_get(at, (size_t)atoi(tok)) : json_object_get(at, tok);
        }
        assert_non_null(parent);
        json_t *v = bad[i].json ? json_loads(bad[i].json, JSON_DECODE_ANY, &je) : NULL;
        if (json_is_array(parent)) json_array_set_new(parent, (size_t)atoi(key), v);
        else if (v) json_object_set_new(parent, key, v);
        else json_object_del(parent, key);
        write_json(j);
        json_decref(j);
        memset(&err, 0, sizeof err);
        int rc = es_meta_prior_read(tmp_path, &q, &err);
        if (rc != ES_EFORMAT || !strstr(err.field, bad[i].field) || !strstr(err.msg, bad[i].says) ||
            strcmp(err.file, tmp_path))
            fail_msg("%s = %s: rc %d, file '%s', field '%s', message '%s'", bad[i].path,
                     bad[i].json ? bad[i].json : "(deleted)", rc, err.file, err.field, err.msg);
        assert_null(q);
    }
    json_decref(good);
    /* not JSON, and no file */
    fp = fopen(tmp_path, "w");
    fputs("{\"format\": \"earlystop-prior\",\n  \"version\": 1,,\n}\n", fp);
    fclose(fp);
    assert_int_equal(es_meta_prior_read(tmp_path, &q, &err), ES_EPARSE);
    assert_int_equal(err.line, 2);
    unlink(tmp_path);
    assert_int_equal(es_meta_prior_read(tmp_path, &q, &err), ES_EIO);
    es_meta_prior_free(p);
}

/* One sample per item: no family applies; a prior needs three tasks that
 * have more. */
static void test_tasks_that_do_not_apply(void **state)
{
    (void)state;
    NEED_DATA();
    es_traceset *think = es_ref_load_trace("r1qwen32b_gsm8k_think");
    if (!think) skip();
    es_meta_task *t;
    es_error err = {0};
    assert_int_equal(es_meta_task_new(think, "think", NULL, 0, NULL, &opts, &t, &err), ES_OK);
    assert_false(es_meta_task_applies(t));
    es_meta_prior *p = prior_without(-1), *q;
    es_meta_choice c;
    assert_int_equal(es_meta_adapt(p, t, ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err), ES_ENOTSUP);
    assert_non_null(strstr(err.msg, "one sample per item"));
    es_meta_task *two[3] = {task[0], task[1], t};
    assert_int_equal(es_meta_train(two, 3, &opts, &q, &err), ES_EINVAL);
    assert_non_null(strstr(err.msg, "at least 3"));
    es_meta_prior_free(p);
    es_meta_task_free(t);
    es_traceset_free(think);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cells_are_replays),
        cmocka_unit_test(test_learned_family),
        cmocka_unit_test(test_subset_is_replay_of_items),
        cmocka_unit_test(test_leave_one_task_out),
        cmocka_unit_test(test_shrinkage_grows_with_k),
        cmocka_unit_test(test_prior_independent_of_heldout),
        cmocka_unit_test(test_learn_then_test),
        cmocka_unit_test(test_prior_file),
        cmocka_unit_test(test_tasks_that_do_not_apply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
