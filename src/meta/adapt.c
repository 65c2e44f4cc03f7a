/*
 * adapt.c - a new task from k of its items (es_meta_adapt).
 *
 * The estimate, on the family's scale z (ES_META_ADAPT):
 *   prior mean   m   = the regression's prediction from the k items'
 *                      descriptor (no gold), prior variance tau2 = its
 *                      leave-one-task-out error
 *   data         z_k = the k items' best point (the labels' loss within
 *                      eps on them), less the bias the prior measured for k
 *                      items; its variance v = the prior's noise at k
 *   posterior    m + tau2 / (tau2 + v) * (z_k - m), rounded to the
 *                      nearest grid point
 * The normal-normal posterior mean: with few items v is large and the
 * descriptor's prediction dominates; with many, the task's own best does.
 *
 * The guarantee: the grid points from the conservative end to the chosen
 * one are tested in turn on the k items (p-value for "mean loss > eps",
 * fixed-sequence testing at delta).  The grid's order is fixed before the
 * data, so the certified prefix keeps its family-wise guarantee wherever
 * the data made the sequence end.  The choice is certified when the
 * sequence reaches it; otherwise the most aggressive certified point (or
 * full) is reported beside it, with the items a loss-free test would need.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"

const char *es_meta_method_name(es_meta_method m)
{
    switch (m) {
    case ES_META_ADAPT: return "adapt";
    case ES_META_SHRINK: return "shrink";
    case ES_META_DESCRIPTOR: return "descriptor";
    case ES_META_DEFAULT: return "default";
    case ES_META_SCRATCH: return "scratch";
    case ES_META_SCRATCH_LTT: return "scratch-ltt";
    }
    return "?";
}

static double z_at(const mt_family *fam, size_t g) { return mt_to_z(fam->scale, fam->grid[g]); }

/* Fixed-sequence testing of grid points 0..last on the task's items: how
 * many lead points are certified; *pv_last the p-value of `last` (NaN when
 * the sequence stopped before it), *pv_cert that of the last certified
 * point (NaN when none). */
static size_t certify(const es_meta_prior *p, const es_meta_task *k, size_t f, es_meta_labels l, size_t last,
                      double *loss, double *pv_last, double *pv_cert)
{
    size_t j = 0;
    *pv_last = *pv_cert = NAN;
    for (; j <= last && j < k->fam[f].n_grid; j++) {
        mt_item_losses(k, f, j, l, loss);
        double pv = es_tune_pvalue(loss, k->n, p->eps, p->delta, p->seed);
        if (j == last) *pv_last = pv;
        if (pv > p->delta) break;
        *pv_cert = pv;
    }
    return j;
}

static int check_task(const es_meta_prior *p, const es_meta_task *k, size_t f, es_error *err)
{
    if (f >= p->n_fam) return es_error_set(err, ES_EINVAL, "", 0, "--family", "no family %zu in the prior", f);
    if (!k->applies)
        return es_error_set(err, ES_ENOTSUP, k->name, 0, "", "one sample per item: the prior's families decide "
                            "across samples, so none applies");
    if (f >= k->n_fam || !mt_same_family(&k->fam[f], &p->fam[f]))
        return es_error_set(err, ES_EINVAL, k->name, 0, "", "the task was replayed on other grids than the prior's "
                            "family '%s'", p->fam[f].name);
    if (k->n == 0) return es_error_set(err, ES_EINVAL, k->name, 0, "", "no items");
    return ES_OK;
}

int es_meta_adapt(const es_meta_prior *p, const es_meta_task *k, es_meta_labels l, es_meta_method m, size_t f,
                  es_meta_choice *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    if (f == ES_META_FULL) f = p->default_fam;
    int rc = check_task(p, k, f, err);
    if (rc) return rc;
    const mt_family *fam = &p->fam[f];
    const mt_fit *fit = &p->fit[f][l];
    double x[ES_META_N_DESC];
    es_meta_task_descriptor(k, x);
    out->f = f;
    snprintf(out->family, sizeof out->family, "%s", fam->name);
    out->z_prior = m == ES_META_SHRINK ? fit->mean : mt_predict(p, fit, x);
    out->tau2 = m == ES_META_SHRINK ? fit->var : fit->resid_var;
    size_t best_k = mt_best(k, f, l, p->eps, NULL, 0);
    double bias, noise;
    mt_noise_at(fit, (double)k->n, &bias, &noise);
    out->z_data = z_at(fam, best_k == ES_META_FULL ? 0 : best_k) - bias;
    out->var_data = noise;
    double *loss = malloc((k->n + 1) * sizeof *loss);
    if (!loss) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    size_t g;
    switch (m) {
    case ES_META_ADAPT:
    case ES_META_SHRINK:
        out->weight = out->tau2 + noise > 0 ? out->tau2 / (out->tau2 + noise) : 1;
        out->z_post = out->z_prior + out->weight * (out->z_data - out->z_prior);
        g = mt_nearest(fam, out->z_post);
        break;
    case ES_META_DESCRIPTOR:
        out->z_post = out->z_prior;
        g = mt_nearest(fam, out->z_post);
        break;
    case ES_META_DEFAULT:
        g = fit->g_default;
        out->z_post = z_at(fam, g);
        break;
    case ES_META_SCRATCH:
        g = best_k;
        out->weight = 1;
        out->z_post = out->z_data = z_at(fam, g == ES_META_FULL ? 0 : g);
        break;
    case ES_META_SCRATCH_LTT:
    default: {
        double pv, pc;
        size_t c = certify(p, k, f, l, fam->n_grid - 1, loss, &pv, &pc);
        g = c ? c - 1 : ES_META_FULL;
        out->z_post = g == ES_META_FULL ? NAN : z_at(fam, g);
        break;
    }
    }
    out->g = g;
    out->value = g == ES_META_FULL ? NAN : fam->grid[g];
    if (g == ES_META_FULL) snprintf(out->spec, sizeof out->spec, "full");
    else rc = mt_spec_of(fam, fam->grid[g], out->spec, sizeof out->spec, err);
    /* Learn-then-Test from the conservative end to the choice */
    out->items_needed = es_tune_items_needed(p->eps, p->delta);
    if (!rc && g == ES_META_FULL) {
        out->certified = 1; /* full loses nothing against itself */
        out->g_certified = ES_META_FULL;
        out->pvalue = 0;
        out->pvalue_certified = NAN;
    } else if (!rc) {
        out->n_certified = certify(p, k, f, l, g, loss, &out->pvalue, &out->pvalue_certified);
        out->certified = out->n_certified > g;
        if (isnan(out->pvalue)) {
            mt_item_losses(k, f, g, l, loss);
            out->pvalue = es_tune_pvalue(loss, k->n, p->eps, p->delta, p->seed);
        }
        out->g_certified = out->n_certified ? out->n_certified - 1 : ES_META_FULL;
    }
    if (!rc && out->g_certified == ES_META_FULL) snprintf(out->certified_spec, sizeof out->certified_spec, "full");
    else if (!rc) rc = mt_spec_of(fam, fam->grid[out->g_certified], out->certified_spec, sizeof out->certified_spec, err);
    if (!rc) es_meta_task_figures(k, f, g, l, &out->k_fig);
    free(loss);
    return rc;
}
