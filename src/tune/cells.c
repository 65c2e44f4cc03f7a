/*
 * cells.c - per-item figures of one family at chosen values of its swept
 * parameter (es_tune_cells), and the p-value and item count of a loss bound
 * on a handful of items (es_tune_pvalue, es_tune_items_needed): what a
 * caller that chooses among a fixed grid of settings itself (the
 * meta-learner, src/meta) needs from the exact sweep and Learn-then-Test,
 * without the fronts.
 *
 * One sweep of the configuration gives every requested value (tn_sweep's
 * `at` callback sees every (item, order)'s outcome there), so a grid of 64
 * thresholds costs one replay per order, as a front does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tune_int.h"

typedef struct cells_ctx {
    const tn_set *s;
    es_tune_cell *cells;
} cells_ctx;

/* Each item's mean over its orders at value i, against full's outcome in
 * the same order. */
static int cells_at(void *ctx, size_t i, const int32_t *counts, const tn_sum *sum, const tn_out *cur)
{
    (void)counts;
    (void)sum;
    cells_ctx *c = ctx;
    const tn_set *s = c->s;
    double R = s->R;
    for (size_t k = 0; k < s->n; k++) {
        double wrong = 0, disagree = 0, correct = 0, tokens = 0;
        for (uint32_t r = 0; r < s->R; r++) {
            const tn_out *o = &cur[k * s->R + r], *b = &s->base[k * s->R + r];
            wrong += tn_loss(ES_LOSS_WRONG, o, b);
            disagree += tn_loss(ES_LOSS_DISAGREE, o, b);
            correct += o->correct;
            tokens += (double)o->tokens;
        }
        c->cells[i * s->n + k] = (es_tune_cell){wrong / R, disagree / R, correct / R, tokens / R};
    }
    return ES_OK;
}

int es_tune_cells(const es_tune_data *d, const char *spec, const double *values, size_t n_values,
                  const es_tune_opts *o, es_tune_cell *cells, es_tune_cell *full, es_error *err)
{
    es_tune_opts def;
    if (!o) {
        es_tune_opts_init(&def);
        o = &def;
    }
    size_t n = d->n_items;
    uint32_t *items = malloc((n + 1) * sizeof *items);
    tn_config cfg = {NULL, NULL, "cells"};
    tn_set s;
    memset(&s, 0, sizeof s);
    int rc = items ? ES_OK : es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    for (size_t i = 0; !rc && i < n; i++) items[i] = (uint32_t)i;
    if (!rc) rc = es_policy_new(spec, &cfg.proto, err);
    if (!rc) {
        const char *key;
        cfg.sweep_key = es_policy_sweep_param(cfg.proto, &key) == ES_OK ? key : NULL;
        for (size_t v = 0; v < n_values && !rc; v++)
            if (isnan(values[v]) != !cfg.sweep_key)
                rc = es_error_set(err, ES_EINVAL, "", 0, "",
                                  cfg.sweep_key ? "%s: a value of %s is needed for each cell"
                                                : "%s: nothing to sweep, so a cell's value must be NaN",
                                  es_policy_spec(cfg.proto), cfg.sweep_key ? cfg.sweep_key : "");
    }
    if (!rc) rc = tn_set_init(&s, d, items, n, o, err);
    cells_ctx c = {&s, cells};
    tn_cand *cand = NULL;
    size_t nc;
    if (!rc && n_values) rc = tn_sweep(&s, &cfg, &cand, &nc, values, n_values, cells_at, &c, err);
    free(cand);
    for (size_t k = 0; !rc && full && k < n; k++) {
        double correct = 0;
        for (uint32_t r = 0; r < s.R; r++) correct += s.base[k * s.R + r].correct;
        full[k] = (es_tune_cell){0, 0, correct / s.R, s.base_tokens[k]};
    }
    es_policy_free(cfg.proto);
    tn_set_free(&s);
    free(items);
    return rc;
}

double es_tune_pvalue(const double *loss, size_t n, double eps, double delta, uint64_t seed)
{
    uint32_t *perm = malloc((n + 1) * sizeof *perm);
    if (!perm) return 1.0;
    /* the betting order, fixed by the seed before any loss is seen */
    es_shuffle_order(seed, 0, 0xBE771u, (uint32_t)n, perm);
    double p = es_pvalue_betting(loss, perm, n, eps, delta);
    free(perm);
    return p;
}

double es_tune_items_needed(double eps, double delta)
{
    if (!(eps > 0 && eps < 1) || !(delta > 0 && delta < 1)) return NAN;
    return ceil(log(delta) / log1p(-eps));
}
