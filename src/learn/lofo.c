/*
 * lofo.c - leave one file out: for each file, the learned stopper and the
 * tuned threshold rules are fitted on every other file (the same items
 * train / order candidates, the same items test them), then evaluated with
 * the two anchors at their defaults on the file left out.  The tuned rules
 * are what `earlystop tune` would pick there: every family that applies,
 * Learn-then-Test at the same budget and delta.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learn_int.h"

static void cell_of(const es_tune_eval *e, const char *spec, int certified, es_lofo_cell *c)
{
    snprintf(c->spec, sizeof c->spec, "%s", spec);
    c->d_em = e->d_em;
    c->tokens = e->p.tokens;
    c->oracle_x = e->oracle_x;
    c->certified = certified;
}

static void failed_cell(const char *why, es_lofo_cell *c)
{
    snprintf(c->spec, sizeof c->spec, "%.500s", why);
    c->d_em = c->tokens = c->oracle_x = NAN;
    c->certified = 0;
}

/* The tuned threshold rules at one budget, on the same split as the learner. */
static int tuned(const es_tune_data *d, const es_learn_opts *o, const uint8_t *mask, double budget, char *spec,
                 size_t cap, int *certified, es_error *err)
{
    es_tune_opts to = o->tune;
    to.seed = o->seed;
    to.threads = o->threads;
    to.max_em_drop = budget / 100.0;
    to.opt_mask = mask;
    if (lr_max_samples(d) <= 1) to.shuffles = 0;
    es_tune *t;
    int rc = es_tune_new(d, &to, &t, err);
    if (!rc) rc = es_tune_add_family(t, "all", err);
    es_tune_point p;
    /* nothing certified: as the learner does, the training items' choice, no guarantee */
    if (!rc) rc = lr_tune_choose(t, budget, &p, certified, err);
    if (!rc) snprintf(spec, cap, "%s", *certified ? p.spec : "full");
    es_tune_free(t);
    return rc;
}

int es_learn_lofo(const es_tune_data *files, const es_learn_opts *o, const char *const anchors[2], es_lofo_row *rows,
                  es_error *err)
{
    size_t nf = es_tune_data_n_files(files);
    const char *anch[2] = {anchors && anchors[0] ? anchors[0] : "ac-beta", anchors && anchors[1] ? anchors[1] : "esc"};
    int rc = ES_OK;
    es_tune_opts eo = o->tune;
    eo.seed = o->seed;
    eo.threads = o->threads;
    for (size_t f = 0; f < nf && !rc; f++) {
        es_lofo_row *row = &rows[f];
        memset(row, 0, sizeof *row);
        const char *name;
        const es_traceset *held = es_tune_data_file(files, f, &name);
        snprintf(row->file, sizeof row->file, "%s", name);
        row->items = es_traceset_n_items(held);
        es_tune_data *train = NULL, *test = NULL;
        if (es_tune_data_new(&train) || es_tune_data_new(&test)) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
        for (size_t g = 0; g < nf && !rc; g++) {
            const char *n2;
            const es_traceset *ts = es_tune_data_file(files, g, &n2);
            if (g != f && es_tune_data_add(train, ts, n2)) rc = ES_ENOMEM;
        }
        if (!rc && es_tune_data_add(test, held, name)) rc = ES_ENOMEM;
        uint32_t ms, ma;
        es_traceset_max_sizes(held, &ms, &ma);
        es_tune_opts eo_f = eo;
        if (ms <= 1) eo_f.shuffles = 0;
        /* the learned stopper, fitted on the others */
        es_learn_result lr;
        memset(&lr, 0, sizeof lr);
        if (o->progress) o->progress(o->progress_ctx, name, f, nf);
        if (!rc) rc = es_learn_fit(train, o, &lr, err);
        for (size_t b = 0; !rc && b < o->n_budgets; b++) {
            char spec[128];
            /* the budget's shortest spelling that reads back to it (%g can round
             * below it, and the point below would be taken) */
            char num[32];
            snprintf(num, sizeof num, "%.15g", o->budgets[b]);
            if (strtod(num, NULL) != o->budgets[b]) snprintf(num, sizeof num, "%.17g", o->budgets[b]);
            snprintf(spec, sizeof spec, "learned:max_em_drop=%s,min=%u", num, o->min_samples);
            es_policy *p;
            es_tune_eval e;
            rc = es_policy_new_stopper(spec, lr.stopper, &p, err);
            if (!rc) rc = es_tune_evaluate_policy(test, p, &eo_f, &e, err);
            es_policy_free(p);
            if (!rc) {
                cell_of(&e, spec, lr.points[b].certified, &row->cell[ES_LOFO_LEARNED][b]);
                row->full_tokens = e.full_tokens;
                row->oracle_tokens = e.oracle_tokens;
            }
        }
        es_learn_result_free(&lr);
        /* the tuned threshold rules, on the same split of the others */
        uint8_t *mask = rc ? NULL : lr_split_mask(train, o->train_share, o->seed);
        if (!rc && !mask) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
        for (size_t b = 0; !rc && b < o->n_budgets; b++) {
            char spec[512];
            int cert = 0;
            es_tune_eval e;
            rc = tuned(train, o, mask, o->budgets[b], spec, sizeof spec, &cert, err);
            if (!rc) rc = es_tune_evaluate(test, spec, &eo_f, &e, err);
            if (!rc) cell_of(&e, spec, cert, &row->cell[ES_LOFO_TUNED][b]);
        }
        free(mask);
        /* the anchors at their defaults (a file they cannot run on gets a note) */
        for (int a = 0; a < 2 && !rc; a++) {
            es_tune_eval e;
            es_error e2 = {0};
            int r2 = es_tune_evaluate(test, anch[a], &eo_f, &e, &e2);
            for (size_t b = 0; b < o->n_budgets; b++) {
                if (r2) failed_cell(e2.msg, &row->cell[ES_LOFO_AC_BETA + a][b]);
                else cell_of(&e, e.p.spec, 1, &row->cell[ES_LOFO_AC_BETA + a][b]);
            }
        }
        es_tune_data_free(train);
        es_tune_data_free(test);
    }
    if (o->progress) o->progress(o->progress_ctx, "done", nf, nf);
    return rc;
}
