/*
 * task.c - one task as the meta-learner sees it: every item's figures at
 * every grid value of every family (one exact sweep per family, through
 * es_tune_cells), and the item's descriptor figures, which need no gold.
 * Everything after this replay is arithmetic on these tables, so that a
 * subset of the items (k of them, drawn again and again) costs nothing to
 * form.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_int.h"

void es_meta_opts_init(es_meta_opts *o)
{
    *o = (es_meta_opts){.max_em_drop = 0.005, .delta = 0.1, .shuffles = 10, .seed = 1, .threads = 0,
                        .probe_cost = ES_PROBE_COST_FIELD};
}

void es_meta_tune_opts(const es_meta_opts *o, es_tune_opts *out)
{
    es_tune_opts_init(out);
    out->shuffles = o->shuffles;
    out->seed = o->seed;
    out->threads = o->threads;
    out->probe_cost = o->probe_cost;
}

/* ------------------------------------------------------------- draws */

uint64_t mt_rand(uint64_t *state)
{
    uint64_t x = (*state += 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static int by_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int mt_draw(uint64_t *state, size_t m, size_t n, uint32_t *out)
{
    if (n > m) return ES_EINVAL;
    uint32_t *perm = malloc((m + 1) * sizeof *perm);
    if (!perm) return ES_ENOMEM;
    for (size_t i = 0; i < m; i++) perm[i] = (uint32_t)i;
    for (size_t i = 0; i < n; i++) {
        size_t j = i + (size_t)(mt_rand(state) % (m - i));
        uint32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    memcpy(out, perm, n * sizeof *out);
    free(perm);
    qsort(out, n, sizeof *out, by_u32);
    return ES_OK;
}

/* ------------------------------------------------------- descriptors */

static const char *const desc_names[ES_META_N_DESC] = {
    "log_samples",     /* ln of the mean samples per item */
    "agreement",       /* a sample's agreement with its item's majority: leader votes / samples */
    "diversity",       /* (distinct answers - 1) / (samples - 1) */
    "unanimous",       /* share of items whose samples all agree */
    "null_share",      /* share of samples without an answer */
    "log_tokens",      /* ln of the mean tokens per sample */
    "probe_agreement", /* share of probes equal to their sample's final answer (NaN: no probes) */
    "contested",       /* share of items whose runner-up has at least half the leader's votes */
};

const char *es_meta_descriptor_name(size_t j) { return j < ES_META_N_DESC ? desc_names[j] : NULL; }

/* One item's figures; counts is scratch of at least v->n_answers. */
static void item_desc(const es_item_view *v, uint32_t *counts, mt_item_desc *d)
{
    memset(d, 0, sizeof *d);
    memset(counts, 0, v->n_answers * sizeof *counts);
    for (uint32_t s = 0; s < v->n_samples; s++) {
        int32_t a = v->answer[s];
        if (a >= 0 && (uint32_t)a < v->n_answers && counts[a]++ == 0) d->distinct++;
        d->nulls += a == ES_NULL_ANSWER;
        d->tokens += v->tokens[s];
        for (uint32_t j = v->probe_off[s]; j < v->probe_off[s + 1]; j++) {
            d->probes++;
            d->probes_agree += v->probe_answer[j] == a;
        }
    }
    for (uint32_t a = 0; a < v->n_answers; a++) {
        if (counts[a] > d->leader) {
            d->second = d->leader;
            d->leader = counts[a];
        } else if (counts[a] > d->second) {
            d->second = counts[a];
        }
    }
    d->samples = v->n_samples;
}

void es_meta_task_descriptor(const es_meta_task *t, double x[ES_META_N_DESC])
{
    double samples = 0, agree = 0, div = 0, unan = 0, nulls = 0, tokens = 0, probes = 0, pagree = 0, cont = 0, n = 0;
    for (size_t i = 0; i < t->n; i++) {
        const mt_item_desc *d = &t->desc[i];
        if (d->samples < 1) continue;
        n++;
        samples += d->samples;
        agree += d->leader / d->samples;
        div += d->samples > 1 ? (d->distinct - 1) / (d->samples - 1) : 0;
        unan += d->distinct <= 1;
        nulls += d->nulls / d->samples;
        tokens += d->tokens;
        probes += d->probes;
        pagree += d->probes_agree;
        cont += d->second >= 0.5 * d->leader && d->second > 0;
    }
    if (n == 0) n = 1;
    x[0] = log(samples > 0 ? samples / n : 1);
    x[1] = agree / n;
    x[2] = div / n;
    x[3] = unan / n;
    x[4] = nulls / n;
    x[5] = log(samples > 0 && tokens > 0 ? tokens / samples : 1);
    x[6] = probes > 0 ? pagree / probes : NAN;
    x[7] = cont / n;
}

/* ------------------------------------------------------------ tasks */

void es_meta_task_free(es_meta_task *t)
{
    if (!t) return;
    for (size_t f = 0; f < t->n_fam; f++) free(t->cells[f]);
    free(t->full);
    free(t->desc);
    free(t);
}

static es_meta_task *task_alloc(const char *name, size_t n, const mt_family *fam, size_t n_fam, int applies)
{
    es_meta_task *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->n = n;
    t->n_fam = n_fam;
    t->applies = applies;
    memcpy(t->fam, fam, n_fam * sizeof *fam);
    int bad = !(t->full = calloc(n + 1, sizeof *t->full)) || !(t->desc = calloc(n + 1, sizeof *t->desc));
    for (size_t f = 0; applies && f < n_fam && !bad; f++)
        bad = !(t->cells[f] = calloc(fam[f].n_grid * n + 1, sizeof *t->cells[f]));
    if (bad) {
        es_meta_task_free(t);
        return NULL;
    }
    return t;
}

int es_meta_task_new(const es_traceset *ts, const char *name, const uint32_t *items, size_t n,
                     const es_meta_prior *grids, const es_meta_opts *o, es_meta_task **out, es_error *err)
{
    *out = NULL;
    es_meta_opts def;
    if (!o) {
        es_meta_opts_init(&def);
        o = &def;
    }
    size_t m = es_traceset_n_items(ts);
    if (!items) n = m;
    if (n == 0) return es_error_set(err, ES_EINVAL, name ? name : "", 0, "", "no items");
    for (size_t i = 0; items && i < n; i++)
        if (items[i] >= m) return es_error_set(err, ES_EINVAL, name ? name : "", 0, "", "item %u past the file's %zu",
                                               items[i], m);
    mt_family fam[MT_MAX_FAMILIES];
    size_t n_fam = grids ? grids->n_fam : mt_builtin_count();
    for (size_t f = 0; f < n_fam; f++) fam[f] = grids ? grids->fam[f] : *mt_builtin(f);
    uint32_t max_samples, max_answers;
    es_traceset_max_sizes(ts, &max_samples, &max_answers);
    es_meta_task *t = task_alloc(name, n, fam, n_fam, max_samples > 1);
    uint32_t *counts = malloc((max_answers + 1) * sizeof *counts);
    es_tune_data *d = NULL;
    int rc = t && counts && !es_tune_data_new(&d) ? ES_OK : es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc && es_tune_data_add_items(d, ts, t->name, items, n))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    es_tune_opts to;
    es_meta_tune_opts(o, &to);
    /* one sweep per family; full's figures come with the first (or alone
     * when no family applies) */
    if (!rc && !t->applies) rc = es_tune_cells(d, fam[0].spec, NULL, 0, &to, NULL, t->full, err);
    for (size_t f = 0; !rc && t->applies && f < n_fam; f++)
        rc = es_tune_cells(d, fam[f].spec, fam[f].grid, fam[f].n_grid, &to, t->cells[f], f ? NULL : t->full, err);
    for (size_t i = 0; !rc && i < n; i++) {
        es_item_view v;
        es_traceset_item(ts, items ? items[i] : i, &v);
        item_desc(&v, counts, &t->desc[i]);
    }
    if (rc && err && !err->file[0] && name) snprintf(err->file, sizeof err->file, "%s", name);
    es_tune_data_free(d);
    free(counts);
    if (rc) {
        es_meta_task_free(t);
        return rc;
    }
    *out = t;
    return ES_OK;
}

int es_meta_task_subset(const es_meta_task *t, const uint32_t *items, size_t n, es_meta_task **out)
{
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (items[i] >= t->n) return ES_EINVAL;
    es_meta_task *s = task_alloc(t->name, n, t->fam, t->n_fam, t->applies);
    if (!s) return ES_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        s->full[i] = t->full[items[i]];
        s->desc[i] = t->desc[items[i]];
    }
    for (size_t f = 0; t->applies && f < t->n_fam; f++)
        for (size_t g = 0; g < t->fam[f].n_grid; g++)
            for (size_t i = 0; i < n; i++) s->cells[f][g * n + i] = t->cells[f][g * t->n + items[i]];
    *out = s;
    return ES_OK;
}

size_t es_meta_task_n_items(const es_meta_task *t) { return t->n; }
const char *es_meta_task_name(const es_meta_task *t) { return t->name; }
int es_meta_task_applies(const es_meta_task *t) { return t->applies; }

/* ----------------------------------------------------------- figures */

double mt_cell_loss(const es_tune_cell *c, es_meta_labels l) { return l == ES_META_NONE ? c->disagree : c->wrong; }

void mt_item_losses(const es_meta_task *t, size_t f, size_t g, es_meta_labels l, double *out)
{
    for (size_t i = 0; i < t->n; i++) out[i] = g == ES_META_FULL ? 0 : mt_cell_loss(&t->cells[f][g * t->n + i], l);
}

int es_meta_task_figures(const es_meta_task *t, size_t f, size_t g, es_meta_labels l, es_meta_figures *out)
{
    memset(out, 0, sizeof *out);
    if (f >= t->n_fam || (g != ES_META_FULL && (!t->applies || g >= t->fam[f].n_grid))) return ES_EINVAL;
    double n = (double)(t->n ? t->n : 1);
    for (size_t i = 0; i < t->n; i++) {
        const es_tune_cell *full = &t->full[i], *c = g == ES_META_FULL ? full : &t->cells[f][g * t->n + i];
        out->em += c->correct;
        out->em_full += full->correct;
        out->tokens += c->tokens;
        out->full_tokens += full->tokens;
        out->share += full->tokens > 0 ? c->tokens / full->tokens : 1.0;
        out->loss += mt_cell_loss(c, l);
    }
    out->em /= n;
    out->em_full /= n;
    out->tokens /= n;
    out->full_tokens /= n;
    out->share /= n;
    out->loss /= n;
    return ES_OK;
}

size_t mt_best(const es_meta_task *t, size_t f, es_meta_labels l, double eps, const uint32_t *items, size_t n)
{
    if (!items) n = t->n;
    if (!t->applies || n == 0) return ES_META_FULL;
    const es_tune_cell *c = t->cells[f];
    /* a mean of losses that are multiples of 1/R: compare with a margin for
     * the sum's rounding, so that a loss of exactly eps passes */
    double bound = eps * (double)n + 1e-9;
    for (size_t g = 0; g < t->fam[f].n_grid; g++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += mt_cell_loss(&c[g * t->n + (items ? items[i] : i)], l);
        if (sum > bound) return g ? g - 1 : ES_META_FULL;
    }
    return t->fam[f].n_grid - 1;
}

size_t es_meta_task_best(const es_meta_task *t, size_t f, es_meta_labels l, double eps)
{
    if (f >= t->n_fam) return ES_META_FULL;
    return mt_best(t, f, l, eps, NULL, 0);
}
