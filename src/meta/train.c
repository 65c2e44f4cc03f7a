/*
 * train.c - the prior, learned from many tasks (es_meta_train).
 *
 * For each family and kind of label, each task contributes its best grid
 * point (es_meta_task_best: the most aggressive setting whose loss on all
 * the task's items stays within eps), on the family's scale z.  From those:
 *
 *  - the population: mean and variance of z over tasks (the prior of a
 *    task about which nothing is known);
 *  - a ridge regression of z on the standardised descriptor (figures of
 *    the items that need no gold), its penalty chosen by leave-one-task-out
 *    error, the intercept-only model among the candidates, so that a
 *    descriptor that does not predict is given no weight; its
 *    leave-one-task-out squared error is the prior variance of a task whose
 *    descriptor is known (an empirical-Bayes estimate: it is measured on
 *    tasks the fit did not see);
 *  - the noise of the estimate k items give: for k = 4 .. 512, k items drawn
 *    20 times from every task with at least 2k items, the best point on
 *    them minus the task's, its mean (a bias: few items rarely show a loss,
 *    so their best is too aggressive) and variance.
 *
 * adapt.c combines them: the k items' best, less its bias, is shrunk toward
 * the regression's prediction by tau2 / (tau2 + noise(k)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"

static const double K_TABLE[MT_N_K] = {4, 8, 16, 32, 64, 128, 256, 512};
enum { DRAWS = 20 };
static const double LAMBDAS[] = {0.1, 0.3, 1, 3, 10, 30, 100, INFINITY};
enum { N_LAMBDAS = sizeof LAMBDAS / sizeof LAMBDAS[0] };

/* --------------------------------------------------------- prediction */

double mt_predict(const es_meta_prior *p, const mt_fit *fit, const double x[ES_META_N_DESC])
{
    double y = fit->coef[0];
    for (size_t j = 0; j < ES_META_N_DESC; j++)
        if (p->x_scale[j] > 0 && isfinite(x[j])) y += fit->coef[j + 1] * (x[j] - p->x_mean[j]) / p->x_scale[j];
    return y;
}

void mt_noise_at(const mt_fit *fit, double k, double *bias, double *var)
{
    size_t n = fit->n_k;
    if (n == 0) {
        *bias = 0;
        *var = fit->var;
        return;
    }
    if (k <= fit->k[0]) {
        *bias = fit->bias[0];
        *var = fit->noise[0];
        return;
    }
    if (k >= fit->k[n - 1]) {
        /* past the table: the noise of a mean, falling as 1/k */
        double r = fit->k[n - 1] / k;
        *bias = fit->bias[n - 1] * r;
        *var = fit->noise[n - 1] * r;
        return;
    }
    size_t j = 1;
    while (fit->k[j] < k) j++;
    double a = (log(k) - log(fit->k[j - 1])) / (log(fit->k[j]) - log(fit->k[j - 1]));
    *bias = (1 - a) * fit->bias[j - 1] + a * fit->bias[j];
    *var = (1 - a) * fit->noise[j - 1] + a * fit->noise[j];
}

/* -------------------------------------------------------------- ridge */

/* Solve A x = b (m x m, row-major, overwritten) by Gaussian elimination
 * with partial pivoting; -1 when singular. */
static int solve(double *A, double *b, size_t m)
{
    for (size_t c = 0; c < m; c++) {
        size_t piv = c;
        for (size_t r = c + 1; r < m; r++)
            if (fabs(A[r * m + c]) > fabs(A[piv * m + c])) piv = r;
        if (fabs(A[piv * m + c]) < 1e-12) return -1;
        if (piv != c) {
            for (size_t k = 0; k < m; k++) {
                double x = A[c * m + k];
                A[c * m + k] = A[piv * m + k];
                A[piv * m + k] = x;
            }
            double x = b[c];
            b[c] = b[piv];
            b[piv] = x;
        }
        for (size_t r = c + 1; r < m; r++) {
            double f = A[r * m + c] / A[c * m + c];
            for (size_t k = c; k < m; k++) A[r * m + k] -= f * A[c * m + k];
            b[r] -= f * b[c];
        }
    }
    for (size_t c = m; c-- > 0;) {
        double s = b[c];
        for (size_t k = c + 1; k < m; k++) s -= A[c * m + k] * b[k];
        b[c] = s / A[c * m + c];
    }
    return 0;
}

/* Ridge fit of y on X (rows of p standardised features) over the rows with
 * use[r] set, the intercept unpenalised; lambda = INFINITY: intercept only.
 * beta[0] intercept, beta[1..p]. */
static int ridge(const double *X, const double *y, size_t n, size_t p, const unsigned char *use, double lambda,
                 double *beta)
{
    size_t m = p + 1;
    double A[(ES_META_N_DESC + 1) * (ES_META_N_DESC + 1)], b[ES_META_N_DESC + 1];
    memset(A, 0, sizeof A);
    memset(b, 0, sizeof b);
    memset(beta, 0, m * sizeof *beta);
    double cnt = 0, sum = 0;
    for (size_t r = 0; r < n; r++)
        if (use[r]) cnt++, sum += y[r];
    if (cnt == 0) return -1;
    if (isinf(lambda)) {
        beta[0] = sum / cnt;
        return 0;
    }
    for (size_t r = 0; r < n; r++) {
        if (!use[r]) continue;
        double row[ES_META_N_DESC + 1];
        row[0] = 1;
        for (size_t j = 0; j < p; j++) row[j + 1] = X[r * p + j];
        for (size_t a = 0; a < m; a++) {
            b[a] += row[a] * y[r];
            for (size_t c = 0; c < m; c++) A[a * m + c] += row[a] * row[c];
        }
    }
    for (size_t a = 1; a < m; a++) A[a * m + a] += lambda;
    if (solve(A, b, m)) return -1;
    memcpy(beta, b, m * sizeof *beta);
    return 0;
}

static double dot1(const double *beta, const double *x, size_t p)
{
    double s = beta[0];
    for (size_t j = 0; j < p; j++) s += beta[j + 1] * x[j];
    return s;
}

/* The penalty with the least leave-one-task-out error, the fit on all tasks
 * with it, and that error (mean square) as the residual variance. */
static void fit_regression(const double *X, const double *y, size_t n, size_t p, const size_t *feat, mt_fit *fit)
{
    unsigned char *use = malloc(n + 1);
    double beta[ES_META_N_DESC + 1], best_press = INFINITY, best_lambda = INFINITY;
    if (!use) return;
    for (size_t li = 0; li < N_LAMBDAS; li++) {
        double press = 0;
        int ok = 1;
        for (size_t t = 0; t < n && ok; t++) {
            for (size_t r = 0; r < n; r++) use[r] = r != t;
            if (ridge(X, y, n, p, use, LAMBDAS[li], beta)) ok = 0;
            double e = y[t] - dot1(beta, &X[t * p], p);
            press += e * e;
        }
        /* the simpler model (larger penalty) wins a tie */
        if (ok && press <= best_press + 1e-12) {
            best_press = press;
            best_lambda = LAMBDAS[li];
        }
    }
    for (size_t r = 0; r < n; r++) use[r] = 1;
    if (ridge(X, y, n, p, use, best_lambda, beta)) ridge(X, y, n, p, use, INFINITY, beta);
    memset(fit->coef, 0, sizeof fit->coef);
    fit->coef[0] = beta[0];
    for (size_t j = 0; j < p; j++) fit->coef[feat[j] + 1] = beta[j + 1];
    fit->lambda = best_lambda;
    fit->resid_var = best_press / (double)n;
    free(use);
}

/* ------------------------------------------------------------ noise */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static double z_of(const mt_family *fam, size_t g)
{
    return mt_to_z(fam->scale, fam->grid[g == ES_META_FULL ? 0 : g]);
}

/* The k items' best minus the task's, over DRAWS draws of k items from
 * every task with at least 2k items, seeded by the task's name (so one
 * task's draws do not depend on which other tasks are trained on). */
static int noise_table(es_meta_task *const *tasks, const size_t *idx, size_t n, const double *y, size_t f,
                       es_meta_labels l, const es_meta_opts *o, mt_fit *fit)
{
    uint32_t *pick = NULL;
    size_t cap = 0;
    fit->n_k = 0;
    for (size_t kk = 0; kk < MT_N_K; kk++) {
        size_t k = (size_t)K_TABLE[kk], cnt = 0;
        double sum = 0, sum2 = 0;
        size_t n_tasks = 0;
        for (size_t a = 0; a < n; a++) {
            const es_meta_task *t = tasks[idx[a]];
            if (t->n < 2 * k) continue;
            n_tasks++;
            if (k > cap) {
                uint32_t *q = realloc(pick, k * sizeof *q);
                if (!q) {
                    free(pick);
                    return ES_ENOMEM;
                }
                pick = q;
                cap = k;
            }
            uint64_t s = o->seed ^ name_hash(t->name) ^ ((uint64_t)k << 40);
            for (int d = 0; d < DRAWS; d++) {
                if (mt_draw(&s, t->n, k, pick)) {
                    free(pick);
                    return ES_ENOMEM;
                }
                double e = z_of(&t->fam[f], mt_best(t, f, l, o->max_em_drop, pick, k)) - y[a];
                sum += e;
                sum2 += e * e;
                cnt++;
            }
        }
        if (n_tasks < 3) break;
        double mean = sum / (double)cnt;
        fit->k[fit->n_k] = (double)k;
        fit->bias[fit->n_k] = mean;
        fit->noise[fit->n_k] = sum2 / (double)cnt - mean * mean;
        fit->n_k++;
    }
    free(pick);
    return ES_OK;
}

/* ------------------------------------------------------------ train */

void es_meta_prior_free(es_meta_prior *p)
{
    if (!p) return;
    free(p->tasks);
    free(p);
}

/* Mean and standard deviation of each descriptor over the tasks (NaN left
 * out); a descriptor with no spread (or seen on fewer than 3 tasks) gets
 * scale 0: unused. */
static void standardise(es_meta_prior *p)
{
    for (size_t j = 0; j < ES_META_N_DESC; j++) {
        double s = 0, s2 = 0, c = 0;
        for (size_t t = 0; t < p->n_tasks; t++)
            if (isfinite(p->tasks[t].x[j])) s += p->tasks[t].x[j], c++;
        double mean = c ? s / c : 0;
        for (size_t t = 0; t < p->n_tasks; t++)
            if (isfinite(p->tasks[t].x[j])) s2 += (p->tasks[t].x[j] - mean) * (p->tasks[t].x[j] - mean);
        double sd = c > 1 ? sqrt(s2 / (c - 1)) : 0;
        p->x_mean[j] = mean;
        p->x_scale[j] = c >= 3 && sd > 1e-9 ? sd : 0;
    }
}

static int fit_one(es_meta_prior *p, es_meta_task *const *tasks, const size_t *idx, size_t n, size_t f,
                   es_meta_labels l, const es_meta_opts *o)
{
    mt_fit *fit = &p->fit[f][l];
    size_t feat[ES_META_N_DESC], nf = 0;
    for (size_t j = 0; j < ES_META_N_DESC; j++)
        if (p->x_scale[j] > 0) feat[nf++] = j;
    double *X = malloc((n * nf + 1) * sizeof *X), *y = malloc((n + 1) * sizeof *y);
    if (!X || !y) {
        free(X);
        free(y);
        return ES_ENOMEM;
    }
    double s = 0, s2 = 0;
    for (size_t a = 0; a < n; a++) {
        y[a] = p->tasks[a].z[f][l];
        s += y[a];
        for (size_t j = 0; j < nf; j++) {
            double v = p->tasks[a].x[feat[j]];
            X[a * nf + j] = isfinite(v) ? (v - p->x_mean[feat[j]]) / p->x_scale[feat[j]] : 0;
        }
    }
    fit->mean = s / (double)n;
    for (size_t a = 0; a < n; a++) s2 += (y[a] - fit->mean) * (y[a] - fit->mean);
    fit->var = s2 / (double)(n - 1);
    fit_regression(X, y, n, nf, feat, fit);
    int rc = noise_table(tasks, idx, n, y, f, l, o, fit);
    fit->g_default = mt_nearest(&p->fam[f], fit->mean);
    free(X);
    free(y);
    return rc;
}

int es_meta_train(es_meta_task *const *tasks, size_t n, const es_meta_opts *o, es_meta_prior **out, es_error *err)
{
    *out = NULL;
    es_meta_opts def;
    if (!o) {
        es_meta_opts_init(&def);
        o = &def;
    }
    if (!(o->max_em_drop > 0 && o->max_em_drop < 1))
        return es_error_set(err, ES_EINVAL, "", 0, "--max-em-drop",
                            "the EM drop allowed must lie in (0, 100) points, got %g", 100 * o->max_em_drop);
    if (!(o->delta > 0 && o->delta < 1))
        return es_error_set(err, ES_EINVAL, "", 0, "--delta", "delta must lie in (0, 1), got %g", o->delta);
    size_t nb = mt_builtin_count();
    for (size_t t = 0; t < n; t++) {
        int same = tasks[t]->n_fam == nb;
        for (size_t f = 0; same && f < nb; f++) same = mt_same_family(&tasks[t]->fam[f], mt_builtin(f));
        if (!same)
            return es_error_set(err, ES_EINVAL, tasks[t]->name, 0, "", "task made with other grids than the built-in "
                                "families'");
    }
    size_t *idx = malloc((n + 1) * sizeof *idx), m = 0;
    es_meta_prior *p = calloc(1, sizeof *p);
    if (!idx || !p || !(p->tasks = calloc(n + 1, sizeof *p->tasks))) {
        free(idx);
        es_meta_prior_free(p);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    for (size_t t = 0; t < n; t++)
        if (tasks[t]->applies) idx[m++] = t;
    if (m < 3) {
        free(idx);
        es_meta_prior_free(p);
        return es_error_set(err, ES_EINVAL, "", 0, "", "%zu task(s) with more than one sample per item: a prior "
                            "needs at least 3", m);
    }
    p->eps = o->max_em_drop;
    p->delta = o->delta;
    p->shuffles = o->shuffles;
    p->seed = o->seed;
    p->n_fam = nb;
    for (size_t f = 0; f < nb; f++) p->fam[f] = *mt_builtin(f);
    p->n_tasks = m;
    for (size_t a = 0; a < m; a++) {
        const es_meta_task *t = tasks[idx[a]];
        mt_task_rec *r = &p->tasks[a];
        snprintf(r->name, sizeof r->name, "%s", t->name);
        r->items = t->n;
        es_meta_task_descriptor(t, r->x);
        for (size_t f = 0; f < nb; f++)
            for (int l = 0; l < ES_META_N_LABELS; l++)
                r->z[f][l] = z_of(&t->fam[f], mt_best(t, f, (es_meta_labels)l, o->max_em_drop, NULL, 0));
    }
    standardise(p);
    int rc = ES_OK;
    for (size_t f = 0; f < nb && !rc; f++)
        for (int l = 0; l < ES_META_N_LABELS && !rc; l++) rc = fit_one(p, tasks, idx, m, f, (es_meta_labels)l, o);
    /* the default family: the one whose tasks' best points cost the least
     * tokens on average (what a perfectly adapted policy of it would
     * spend), among those that may be a default */
    double best = INFINITY;
    for (size_t f = 0; f < nb && !rc; f++) {
        if (p->fam[f].never_default) continue;
        double share = 0;
        for (size_t a = 0; a < m; a++) {
            es_meta_figures fig;
            const es_meta_task *t = tasks[idx[a]];
            es_meta_task_figures(t, f, mt_best(t, f, ES_META_GOLD, o->max_em_drop, NULL, 0), ES_META_GOLD, &fig);
            share += fig.share;
        }
        if (share < best) best = share, p->default_fam = f;
    }
    free(idx);
    if (rc) {
        es_meta_prior_free(p);
        return es_error_set(err, rc, "", 0, "", "out of memory");
    }
    *out = p;
    return ES_OK;
}
