/*
 * tune.c - the tuner: fronts per family and across families, and the
 * operating point chosen by Learn-then-Test with Pareto testing.
 *
 * The calibration items are split once (seeded) into an opt part and a test
 * part.  On the opt part: every family's configurations are swept exactly
 * (sweep.c) and their points reduced to the Pareto front of (cost, EM); the
 * fronts are merged into a global one; its points are ordered from the
 * least opt-part loss (conservative) to the most.  On the test part: each
 * point's loss is measured and turned into a valid p-value for "mean loss >
 * eps" (risk.c); fixed-sequence testing certifies the points before the
 * first that fails, and the cheapest certified point is chosen.  Ordering
 * on one part and testing on the other keeps the test valid (Pareto
 * Testing, Laufer-Goldshtein et al. 2023): docs/tuning.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune_int.h"

typedef struct tn_family_run {
    char name[64];
    tn_config *cfg;
    size_t n_cfg;
    es_tune_point *front;    /* on the opt part */
    size_t n_front;
} tn_family_run;

/* Where a global-front point came from, to measure it again on the test part. */
typedef struct tn_origin {
    size_t family, config;
    double value;            /* the swept parameter's value, NaN for a grid point */
} tn_origin;

struct es_tune {
    const es_tune_data *d;
    es_tune_opts o;
    tn_family_run *fam;
    size_t n_fam, cap_fam;
    es_tune_point *global;   /* the global front of (cost, EM) on the opt part */
    size_t n_global;
    es_tune_point *cands;    /* the front of (cost, loss): what Learn-then-Test tests */
    tn_origin *origin;       /* [n_cands] where each came from */
    size_t n_cands;
    es_tune_point *tested;   /* in test order, with p-values */
    size_t n_tested;
    int have_chosen;
    es_tune_point chosen;
    double em_full;          /* full's EM on the opt part */
    es_tune_data *front_d;   /* the items the fronts were measured on */
};

void es_tune_opts_init(es_tune_opts *o)
{
    *o = (es_tune_opts){.shuffles = 10, .seed = 1, .threads = 0, .probe_cost = ES_PROBE_COST_FIELD,
                        .loss = ES_LOSS_WRONG, .objective = ES_OBJECTIVE_TOKENS, .batch = 1, .max_em_drop = 0.005,
                        .delta = 0.1, .token_budget = 0, .opt_share = 0.5, .opt_mask = NULL};
}

int es_tune_new(const es_tune_data *cal, const es_tune_opts *o, es_tune **out, es_error *err)
{
    *out = NULL;
    if (!cal || cal->n_items == 0) return es_error_set(err, ES_EINVAL, "", 0, "", "no calibration items");
    es_tune_opts def;
    if (!o) {
        es_tune_opts_init(&def);
        o = &def;
    }
    if (o->max_em_drop >= 0 && !(o->max_em_drop > 0 && o->max_em_drop < 1))
        return es_error_set(err, ES_EINVAL, "", 0, "--max-em-drop",
                            "the EM drop allowed must lie in (0, 100) points, got %g", 100 * o->max_em_drop);
    if (o->max_em_drop >= 0 && !(o->delta > 0 && o->delta < 1))
        return es_error_set(err, ES_EINVAL, "", 0, "--delta", "delta must lie in (0, 1), got %g", o->delta);
    if (o->max_em_drop < 0 && !(o->token_budget > 0))
        return es_error_set(err, ES_EINVAL, "", 0, "--token-budget", "the token budget must be > 0, got %g",
                            o->token_budget);
    if (!(o->opt_share > 0 && o->opt_share < 1))
        return es_error_set(err, ES_EINVAL, "", 0, "", "opt_share must lie in (0, 1), got %g", o->opt_share);
    if (o->objective == ES_OBJECTIVE_KV && o->batch < 1)
        return es_error_set(err, ES_EINVAL, "", 0, "--batch", "the batch must be at least 1");
    es_tune *t = calloc(1, sizeof *t);
    if (!t) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    t->d = cal;
    t->o = *o;
    *out = t;
    return ES_OK;
}

void es_tune_free(es_tune *t)
{
    if (!t) return;
    for (size_t f = 0; f < t->n_fam; f++) {
        tn_configs_free(t->fam[f].cfg, t->fam[f].n_cfg);
        free(t->fam[f].front);
    }
    free(t->fam);
    free(t->global);
    free(t->cands);
    free(t->origin);
    free(t->tested);
    es_tune_data_free(t->front_d);
    free(t);
}

/* A zeroed family slot named `name` just past the last one (the caller
 * counts it in once it is filled), or NULL when out of memory. */
static tn_family_run *family_slot(es_tune *t, const char *name, es_error *err)
{
    if (t->n_fam == t->cap_fam) {
        size_t c = t->cap_fam ? 2 * t->cap_fam : 16;
        tn_family_run *p = realloc(t->fam, c * sizeof *p);
        if (!p) {
            es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
            return NULL;
        }
        t->fam = p;
        t->cap_fam = c;
    }
    tn_family_run *fr = &t->fam[t->n_fam];
    memset(fr, 0, sizeof *fr);
    snprintf(fr->name, sizeof fr->name, "%s", name);
    return fr;
}

/* The family named `name`, or NULL when it has not been added. */
static tn_family_run *find_family(es_tune *t, const char *name)
{
    for (size_t f = 0; f < t->n_fam; f++)
        if (!strcmp(t->fam[f].name, name)) return &t->fam[f];
    return NULL;
}

static int add_one(es_tune *t, const char *name, es_error *err)
{
    if (find_family(t, name)) return ES_OK;
    tn_family_run *fr = family_slot(t, name, err);
    if (!fr) return ES_ENOMEM;
    int rc = tn_family_configs(name, t->d, &fr->cfg, &fr->n_cfg, err);
    if (rc == ES_OK) t->n_fam++;
    return rc;
}

/* One configuration of proto in `family`; its across parameter swept
 * exactly when `sweep` and the rule has one. */
static int add_config(es_tune *t, const es_policy *proto, const char *family, int sweep, es_error *err)
{
    tn_family_run *fr = find_family(t, family);
    if (!fr) {
        if (!(fr = family_slot(t, family, err))) return ES_ENOMEM;
        t->n_fam++;
    }
    tn_config *c = realloc(fr->cfg, (fr->n_cfg + 1) * sizeof *c);
    if (!c) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    fr->cfg = c;
    tn_config *cf = &c[fr->n_cfg];
    memset(cf, 0, sizeof *cf);
    int rc = es_policy_clone(proto, &cf->proto, err);
    if (rc) return rc;
    snprintf(cf->family, sizeof cf->family, "%s", family);
    const char *key;
    cf->sweep_key = sweep && es_policy_sweep_param(cf->proto, &key) == ES_OK ? key : NULL;
    fr->n_cfg++;
    return ES_OK;
}

int es_tune_add_policy(es_tune *t, const es_policy *proto, const char *family, es_error *err)
{
    return add_config(t, proto, family, 1, err);
}

int es_tune_add_point(es_tune *t, const es_policy *proto, const char *family, es_error *err)
{
    return add_config(t, proto, family, 0, err);
}

int es_tune_add_family(es_tune *t, const char *family, es_error *err)
{
    if (strcmp(family, "all")) return add_one(t, family, err);
    int rc = ES_OK;
    for (size_t i = 0; i < tn_family_count() && !rc; i++) {
        const char *name = tn_family_name(i, NULL);
        if (tn_family_applies(name, t->d)) rc = add_one(t, name, err);
    }
    return rc;
}

/* --------------------------------------------------------------- split */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* A seeded shuffle of the calibration items: the first opt_share of them
 * build and order the candidates, the rest test them (or the caller's
 * split, opt_mask). */
static int split(const es_tune *t, uint32_t **opt, size_t *n_opt, uint32_t **test, size_t *n_test)
{
    size_t n = t->d->n_items;
    uint32_t *perm = malloc(n * sizeof *perm);
    if (!perm) return ES_ENOMEM;
    size_t k = 0;
    if (t->o.opt_mask) { /* the caller's split: opt items first, each part in item order */
        for (size_t i = 0; i < n; i++)
            if (t->o.opt_mask[i]) perm[k++] = (uint32_t)i;
        for (size_t i = 0, j = k; i < n; i++)
            if (!t->o.opt_mask[i]) perm[j++] = (uint32_t)i;
    } else {
        for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
        uint64_t s = t->o.seed ^ 0x5151A11CULL;
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)((s = mix(s)) % i);
            uint32_t x = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = x;
        }
        k = (size_t)((double)n * t->o.opt_share + 0.5);
    }
    if (k < 1) k = 1;
    if (t->o.max_em_drop < 0) k = n; /* a token budget tests nothing: the front uses all */
    if (k > n) k = n;
    *opt = perm;
    *n_opt = k;
    *test = perm + k;
    *n_test = n - k;
    return ES_OK;
}

/* ---------------------------------------------------------------- fronts */

/* The point of config c at value v: its canonical spec and figures. */
static int make_point(const tn_set *s, const tn_config *c, double v, const tn_sum *sum, es_tune_point *p, es_error *err)
{
    memset(p, 0, sizeof *p);
    tn_point(s, sum, p);
    snprintf(p->family, sizeof p->family, "%s", c->family);
    if (!c->sweep_key || isnan(v)) {
        snprintf(p->spec, sizeof p->spec, "%s", es_policy_spec(c->proto));
        return ES_OK;
    }
    es_policy *q;
    int rc = es_policy_clone(c->proto, &q, err);
    if (!rc) rc = es_policy_set_param(q, c->sweep_key, v, err);
    if (!rc) snprintf(p->spec, sizeof p->spec, "%s", es_policy_spec(q));
    es_policy_free(q);
    return rc;
}

/* A config's candidates reduced to those on its own front of (cost, EM)
 * or of (cost, loss): what a plot shows, and what a loss bound can pick. */
static size_t pareto_cands(const tn_set *s, tn_cand *c, size_t n)
{
    es_tune_point *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
    unsigned char *keep = calloc(n ? n : 1, 1);
    if (!a || !b || !keep) {
        free(a);
        free(b);
        free(keep);
        return n;
    }
    /* the index rides in pvalue through the sorts */
    for (size_t i = 0; i < n; i++) {
        tn_point(s, &c[i].sum, &a[i]);
        a[i].pvalue = (double)i;
        b[i] = a[i];
    }
    size_t ma = tn_pareto(a, n), mb = tn_pareto_loss(b, n), m = 0;
    for (size_t i = 0; i < ma; i++) keep[(size_t)a[i].pvalue] = 1;
    for (size_t i = 0; i < mb; i++) keep[(size_t)b[i].pvalue] = 1;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) c[m++] = c[i];
    free(a);
    free(b);
    free(keep);
    return m;
}

/* One family's front on the opt part; its points remember their origin. */
static int family_front(es_tune *t, size_t f, const tn_set *opt, es_tune_point **pts, tn_origin **org, size_t *n,
                        size_t *cap, es_error *err)
{
    tn_family_run *fr = &t->fam[f];
    size_t first = *n;
    for (size_t c = 0; c < fr->n_cfg; c++) {
        if (t->o.progress) t->o.progress(t->o.progress_ctx, fr->name, c, fr->n_cfg);
        tn_cand *cand;
        size_t nc;
        int rc = tn_sweep(opt, &fr->cfg[c], &cand, &nc, NULL, 0, NULL, NULL, err);
        if (rc) return rc;
        nc = pareto_cands(opt, cand, nc);
        for (size_t i = 0; i < nc && !rc; i++) {
            if (*n == *cap) {
                size_t nc2 = *cap ? 2 * *cap : 256;
                es_tune_point *p = realloc(*pts, nc2 * sizeof *p);
                tn_origin *o = realloc(*org, nc2 * sizeof *o);
                if (p) *pts = p;
                if (o) *org = o;
                if (!p || !o) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
                else *cap = nc2;
            }
            if (!rc) {
                rc = make_point(opt, &fr->cfg[c], cand[i].value, &cand[i].sum, &(*pts)[*n], err);
                if (rc == ES_EINVAL) {
                    /* a breakpoint outside the parameter's range (a lead of 0
                     * for margin's m >= 1): no policy stands there */
                    rc = ES_OK;
                    continue;
                }
            }
            if (!rc) (*org)[(*n)++] = (tn_origin){f, c, cand[i].value};
        }
        free(cand);
        if (rc) return rc;
    }
    /* the family's own front: its points, reduced (origins follow the sort) */
    size_t m = *n - first;
    es_tune_point *fp = malloc((m ? m : 1) * sizeof *fp);
    if (!fp) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    memcpy(fp, *pts + first, m * sizeof *fp);
    fr->n_front = tn_pareto(fp, m);
    fr->front = fp;
    return ES_OK;
}

/* The global front of (cost, EM), for display, and the candidates a loss
 * bound chooses among: the front of (cost, opt-part loss), each with where
 * it came from. */
static int global_front(es_tune *t, es_tune_point *pts, tn_origin *org, size_t n, es_error *err)
{
    es_tune_point *g = malloc((n ? n : 1) * sizeof *g), *l = malloc((n ? n : 1) * sizeof *l);
    if (!g || !l) {
        free(g);
        free(l);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        g[i] = pts[i];
        g[i].pvalue = (double)i; /* the index rides through the sort */
        l[i] = g[i];
    }
    t->n_global = tn_pareto(g, n);
    for (size_t i = 0; i < t->n_global; i++) g[i].pvalue = NAN;
    t->global = g;
    size_t m = tn_pareto_loss(l, n);
    t->origin = malloc((m ? m : 1) * sizeof *t->origin);
    if (!t->origin) {
        free(l);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
        t->origin[i] = org[(size_t)l[i].pvalue];
        l[i].pvalue = NAN;
    }
    t->cands = l;
    t->n_cands = m;
    return ES_OK;
}

/* ----------------------------------------------------- Learn-then-Test */

typedef struct ltt_ctx {
    const es_tune *t;
    const tn_set *test;
    const size_t *which;     /* global-front indices measured in this sweep */
    double *pvalue;          /* [n_cands] */
    double *loss;            /* [n_cands] test-part mean loss */
    double *xs;              /* [n test items] scratch */
    uint32_t *perm;          /* the betting order, fixed before any loss is seen */
    uint32_t *pos;           /* per_file: [n test items] scratch, one file's part of perm */
    const uint8_t *file_used;/* per_file: [files] 1 where the calibration data holds items */
} ltt_ctx;

/* A valid p-value for "the mean loss exceeds eps" from the loss counts
 * over R orders of the test items in pos[0..n) (positions in the test set,
 * in the betting order): exact binomial when losses are 0/1 (one order,
 * loss wrong or disagree); otherwise the betting test on losses in [0, 1]
 * (net losses in [-1, 1] mapped to (l + 1) / 2 against (eps + 1) / 2). */
static double pvalue_items(const ltt_ctx *c, const int32_t *counts, const uint32_t *pos, size_t n)
{
    const tn_set *s = c->test;
    double eps = c->t->o.max_em_drop, R = s->R;
    if (n == 0) return 1.0;
    if (s->R == 1 && c->t->o.loss != ES_LOSS_NET) {
        uint64_t k = 0;
        for (size_t i = 0; i < n; i++) k += (uint64_t)counts[pos[i]];
        return es_pvalue_binomial(n, k, eps);
    }
    int net = c->t->o.loss == ES_LOSS_NET;
    for (size_t i = 0; i < n; i++) c->xs[i] = net ? (counts[pos[i]] / R + 1.0) / 2.0 : counts[pos[i]] / R;
    return es_pvalue_betting(c->xs, NULL, n, net ? (eps + 1.0) / 2.0 : eps, c->t->o.delta);
}

/* The p-value of one candidate: over every test item, or (per_file) the
 * largest of each file's own, its items taken in the same fixed betting
 * order.  The intersection-union test: the null "some file's loss exceeds
 * eps" is rejected only where every file's is, so the largest p-value is
 * valid at delta as it stands; a file with no test item cannot be shown
 * to hold (p = 1). */
static double pvalue_of(const ltt_ctx *c, const int32_t *counts)
{
    const tn_set *s = c->test;
    if (!s->file_n) return pvalue_items(c, counts, c->perm, s->n);
    double worst = s->n ? 0.0 : 1.0;
    for (size_t f = 0; f < s->d->n_files && worst < 1.0; f++) {
        if (!c->file_used[f]) continue;
        size_t n = 0;
        for (size_t i = 0; i < s->n; i++)
            if (s->d->items[s->items[c->perm[i]]].file == f) c->pos[n++] = c->perm[i];
        double p = pvalue_items(c, counts, c->pos, n);
        if (p > worst) worst = p;
    }
    return worst;
}

static int ltt_at(void *ctx, size_t i, const int32_t *counts, const tn_sum *sum, const tn_out *cur)
{
    (void)cur;
    ltt_ctx *c = ctx;
    size_t g = c->which[i];
    c->pvalue[g] = pvalue_of(c, counts);
    c->loss[g] = c->test->n ? (double)sum->loss / ((double)c->test->n * c->test->R) : 0;
    return ES_OK;
}

/* Every global-front point measured on the test part, one sweep per
 * configuration that has points there. */
static int measure_on_test(es_tune *t, const tn_set *test, double *pvalue, double *loss, es_error *err)
{
    uint8_t *used = calloc(t->d->n_files + 1, 1);
    ltt_ctx c = {t, test, NULL, pvalue, loss, malloc((test->n + 1) * sizeof(double)),
                 malloc((test->n + 1) * sizeof(uint32_t)), malloc((test->n + 1) * sizeof(uint32_t)), used};
    size_t *which = malloc((t->n_cands + 1) * sizeof *which);
    double *at = malloc((t->n_cands + 1) * sizeof *at);
    int rc = c.xs && c.perm && c.pos && used && which && at ? ES_OK
                                                            : es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    /* per_file: every file the calibration data draws on must pass, not only those the test part reached */
    for (size_t i = 0; !rc && i < t->d->n_items; i++) used[t->d->items[i].file] = 1;
    if (!rc) {
        uint64_t s = t->o.seed ^ 0xBE771ULL;
        for (size_t i = 0; i < test->n; i++) c.perm[i] = (uint32_t)i;
        for (size_t i = test->n; i > 1; i--) {
            size_t j = (size_t)((s = mix(s)) % i);
            uint32_t x = c.perm[i - 1];
            c.perm[i - 1] = c.perm[j];
            c.perm[j] = x;
        }
    }
    c.which = which;
    for (size_t f = 0; !rc && f < t->n_fam; f++)
        for (size_t k = 0; !rc && k < t->fam[f].n_cfg; k++) {
            size_t n = 0;
            for (size_t g = 0; g < t->n_cands; g++)
                if (t->origin[g].family == f && t->origin[g].config == k) {
                    which[n] = g;
                    at[n++] = t->origin[g].value;
                }
            if (!n) continue;
            tn_cand *cand;
            size_t nc;
            rc = tn_sweep(test, &t->fam[f].cfg[k], &cand, &nc, at, n, ltt_at, &c, err);
            if (!rc) free(cand);
        }
    free(c.xs);
    free(c.perm);
    free(c.pos);
    free(used);
    free(which);
    free(at);
    return rc;
}

/* Conservative first: the least opt-part loss, then the costliest. */
static int by_loss(const void *a, const void *b)
{
    const es_tune_point *x = a, *y = b;
    if (x->loss != y->loss) return x->loss < y->loss ? -1 : 1;
    return (x->cost < y->cost) - (x->cost > y->cost);
}

static int choose_ltt(es_tune *t, const tn_set *test, es_error *err)
{
    double *pv = malloc((t->n_cands + 1) * sizeof *pv), *ls = malloc((t->n_cands + 1) * sizeof *ls);
    t->tested = malloc((t->n_cands + 1) * sizeof *t->tested);
    if (!pv || !ls || !t->tested) {
        free(pv);
        free(ls);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    int rc = measure_on_test(t, test, pv, ls, err);
    for (size_t g = 0; !rc && g < t->n_cands; g++) {
        t->tested[g] = t->cands[g];
        t->tested[g].pvalue = pv[g];
    }
    free(pv);
    free(ls);
    if (rc) return rc;
    t->n_tested = t->n_cands;
    qsort(t->tested, t->n_tested, sizeof *t->tested, by_loss);
    double pvals[4096];
    size_t m = t->n_tested < 4096 ? t->n_tested : 4096, certified = 0;
    for (size_t i = 0; i < m; i++) pvals[i] = t->tested[i].pvalue;
    certified = es_fixed_sequence(pvals, m, t->o.delta);
    for (size_t i = 0; i < certified; i++) {
        t->tested[i].certified = 1;
        if (!t->have_chosen || t->tested[i].cost < t->chosen.cost) {
            t->chosen = t->tested[i];
            t->have_chosen = 1;
        }
    }
    if (!t->have_chosen) {
        /* how many items would have to show no loss at all to certify eps */
        double need = log(t->o.delta) / log1p(-t->o.max_em_drop);
        return es_error_set(err, ES_ENOTSUP, "", 0, "",
                            "no candidate is certified to lose at most %.2f points of EM at delta %g on %zu test "
                            "items%s (the most conservative has p = %.3g): allow a larger --max-em-drop, or give "
                            "more calibration items (with no loss at all, about %.0f test items%s certify this eps)",
                            100 * t->o.max_em_drop, t->o.delta, test->n, t->o.per_file ? ", file by file" : "",
                            m ? t->tested[0].pvalue : 1.0, ceil(need), t->o.per_file ? " per file" : "");
    }
    return ES_OK;
}

/* Best EM within the token budget (no guarantee): on all calibration items. */
static int choose_budget(es_tune *t, es_error *err)
{
    for (size_t g = 0; g < t->n_global; g++)
        if (t->global[g].tokens <= t->o.token_budget && (!t->have_chosen || t->global[g].em > t->chosen.em)) {
            t->chosen = t->global[g];
            t->have_chosen = 1;
        }
    if (!t->have_chosen)
        return es_error_set(err, ES_ENOTSUP, "", 0, "--token-budget",
                            "no candidate spends at most %g tokens per item (the cheapest spends %.1f)",
                            t->o.token_budget, t->n_global ? t->global[0].tokens : 0.0);
    return ES_OK;
}

int es_tune_run(es_tune *t, es_error *err)
{
    if (t->n_fam == 0) return es_error_set(err, ES_EINVAL, "", 0, "--family", "no family to tune");
    uint32_t *opt_items, *test_items;
    size_t n_opt, n_test;
    if (split(t, &opt_items, &n_opt, &test_items, &n_test)) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    tn_set opt, test;
    memset(&test, 0, sizeof test);
    es_tune_data_free(t->front_d);
    t->front_d = NULL;
    if (tn_data_subset(t->d, opt_items, n_opt, &t->front_d)) {
        free(opt_items);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    int rc = tn_set_init(&opt, t->d, opt_items, n_opt, &t->o, err);
    t->em_full = opt.em_full;
    es_tune_point *pts = NULL;
    tn_origin *org = NULL;
    size_t n = 0, cap = 0;
    for (size_t f = 0; !rc && f < t->n_fam; f++) rc = family_front(t, f, &opt, &pts, &org, &n, &cap, err);
    if (!rc) rc = global_front(t, pts, org, n, err);
    free(pts);
    free(org);
    if (!rc && t->o.max_em_drop >= 0) {
        if (n_test == 0) rc = es_error_set(err, ES_EINVAL, "", 0, "", "no calibration items left to test on");
        if (!rc) rc = tn_set_init(&test, t->d, test_items, n_test, &t->o, err);
        if (!rc) rc = choose_ltt(t, &test, err);
    } else if (!rc) {
        rc = choose_budget(t, err);
    }
    tn_set_free(&opt);
    tn_set_free(&test);
    free(opt_items);
    return rc;
}

/* ---------------------------------------------------------------- access */

size_t es_tune_n_families(const es_tune *t) { return t->n_fam; }
const char *es_tune_family_name(const es_tune *t, size_t f) { return f < t->n_fam ? t->fam[f].name : NULL; }

size_t es_tune_front_size(const es_tune *t, int f)
{
    return f < 0 ? t->n_global : (size_t)f < t->n_fam ? t->fam[f].n_front : 0;
}

const es_tune_point *es_tune_front_point(const es_tune *t, int f, size_t i)
{
    if (i >= es_tune_front_size(t, f)) return NULL;
    return f < 0 ? &t->global[i] : &t->fam[f].front[i];
}

double es_tune_hypervolume(const es_tune *t, int f)
{
    size_t n = es_tune_front_size(t, f);
    return tn_hypervolume(f < 0 ? t->global : t->fam[f].front, n, t->em_full);
}

int es_tune_chosen(const es_tune *t, es_tune_point *out)
{
    if (!t->have_chosen) return ES_ENOTSUP;
    *out = t->chosen;
    return ES_OK;
}

const es_tune_data *es_tune_front_data(const es_tune *t) { return t->front_d; }

size_t es_tune_n_tested(const es_tune *t) { return t->n_tested; }
const es_tune_point *es_tune_tested(const es_tune *t, size_t i) { return i < t->n_tested ? &t->tested[i] : NULL; }

/* ------------------------------------------------------------ evaluation */

typedef struct eval_ctx {
    const tn_set *s;
    double *em, *em_full;
    tn_sum sum;
} eval_ctx;

static int eval_at(void *ctx, size_t i, const int32_t *counts, const tn_sum *sum, const tn_out *cur)
{
    (void)i;
    (void)counts;
    eval_ctx *c = ctx;
    const tn_set *s = c->s;
    for (size_t k = 0; k < s->n; k++) {
        double a = 0, b = 0;
        for (uint32_t r = 0; r < s->R; r++) {
            a += cur[k * s->R + r].correct;
            b += s->base[k * s->R + r].correct;
        }
        c->em[k] = a / s->R;
        c->em_full[k] = b / s->R;
    }
    c->sum = *sum;
    return ES_OK;
}

/* The reference oracle's mean tokens over the same items and orders, as
 * eval measures against it (stable-final on traces with probes, else the
 * consistency oracle), and its mean share of full's tokens per item
 * (base_tokens: full's, per pooled item).  Only the items d holds count. */
static int oracle_tokens(const es_tune_data *d, const es_tune_opts *o, const double *base_tokens, double *tokens,
                         double *share)
{
    double total = 0, sh = 0, R = o->shuffles ? o->shuffles : 1;
    for (size_t f = 0; f < d->n_files; f++) {
        const es_traceset *ts = d->files[f].ts;
        size_t m = es_traceset_n_items(ts);
        es_eval_acc *acc = calloc(m + 1, sizeof *acc);
        if (!acc) return ES_ENOMEM;
        es_oracle which = es_traceset_n_probes(ts) > 0 ? ES_ORACLE_STABLE_FINAL : ES_ORACLE_CONSISTENCY;
        int rc = es_eval_oracle(ts, which, o->seed, 0, o->shuffles, acc);
        for (size_t k = 0; !rc && k < d->n_items; k++) {
            if (d->items[k].file != f) continue;
            const es_eval_acc *a = &acc[d->items[k].index];
            double t = (double)(a->tokens + a->probe_tokens) / R;
            total += t;
            sh += base_tokens[k] > 0 ? t / base_tokens[k] : 0.0;
        }
        free(acc);
        if (rc) return rc;
    }
    double n = (double)(d->n_items ? d->n_items : 1);
    *tokens = total / n;
    *share = sh / n;
    return ES_OK;
}

int es_tune_evaluate(const es_tune_data *d, const char *spec, const es_tune_opts *o, es_tune_eval *out, es_error *err)
{
    es_policy *p;
    memset(out, 0, sizeof *out);
    int rc = es_policy_new(spec, &p, err);
    if (rc) return rc;
    rc = es_tune_evaluate_policy(d, p, o, out, err);
    es_policy_free(p);
    return rc;
}

int es_tune_evaluate_policy(const es_tune_data *d, const es_policy *proto, const es_tune_opts *o, es_tune_eval *out,
                            es_error *err)
{
    memset(out, 0, sizeof *out);
    es_tune_opts def;
    if (!o) {
        es_tune_opts_init(&def);
        o = &def;
    }
    size_t n = d->n_items;
    uint32_t *items = malloc((n + 1) * sizeof *items);
    eval_ctx c = {NULL, malloc((n + 1) * sizeof(double)), malloc((n + 1) * sizeof(double)), {0}};
    tn_set s;
    memset(&s, 0, sizeof s);
    tn_config cfg = {NULL, NULL, "evaluate"};
    int rc = items && c.em && c.em_full ? ES_OK : es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    for (size_t i = 0; !rc && i < n; i++) items[i] = (uint32_t)i;
    if (!rc) rc = es_policy_clone(proto, &cfg.proto, err);
    if (!rc) rc = tn_set_init(&s, d, items, n, o, err);
    c.s = &s;
    double nan_at = NAN;
    tn_cand *cand = NULL;
    size_t nc;
    if (!rc) rc = tn_sweep(&s, &cfg, &cand, &nc, &nan_at, 1, eval_at, &c, err);
    free(cand);
    if (!rc) {
        tn_point(&s, &c.sum, &out->p);
        snprintf(out->p.spec, sizeof out->p.spec, "%s", es_policy_spec(cfg.proto));
        out->d_em = out->p.em - out->p.em_full;
        if (es_bootstrap_diff(c.em, c.em_full, n, 1000, o->seed, &out->d_lo, &out->d_hi))
            rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    if (!rc) {
        double ft = 0;
        for (size_t k = 0; k < n; k++) ft += s.base_tokens[k];
        out->full_tokens = n ? ft / (double)n : 0;
    }
    if (!rc && oracle_tokens(d, o, s.base_tokens, &out->oracle_tokens, &out->oracle_share))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    out->oracle_x = out->oracle_tokens > 0 ? out->p.tokens / out->oracle_tokens : NAN;
    es_policy_free(cfg.proto);
    tn_set_free(&s);
    free(items);
    free(c.em);
    free(c.em_full);
    return rc;
}
