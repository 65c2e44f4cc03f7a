/*
 * stopper.c - a learned stopper's weights (es_stopper): checked once when
 * made, copied into one allocation, then immutable and shared by every
 * policy that uses it (a reference count, atomic, so clones on many threads
 * may come and go).  The score is plain arithmetic on a few dozen doubles:
 * normalise the head's features, run its one or two nets, add them up.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature.h"
#include "stopper.h"

/* ------------------------------------------------------------ checking */

static int bad(es_error *err, const char *field, const char *what)
{
    return es_error_set(err, ES_EINVAL, "", 0, field, "%s", what);
}

static int finite_all(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static int check_head(const es_stopper_head *h, int level, const char *name, es_error *err)
{
    char field[64];
    if (h->n_in == 0) return ES_OK;
    snprintf(field, sizeof field, "%s", name);
    if (h->n_in > ES_STOPPER_MAX_INPUTS) return bad(err, field, "too many features (at most 64)");
    if (!h->feature || !h->mean || !h->scale) return bad(err, field, "features, mean and scale are required");
    for (uint32_t i = 0; i < h->n_in; i++) {
        es_feature_info fi;
        snprintf(field, sizeof field, "%s.features[%u]", name, i);
        if (es_feature_get_info(h->feature[i], &fi)) return bad(err, field, "unknown feature id");
        if (fi.level != level)
            return es_error_set(err, ES_EINVAL, "", 0, field, "%s is not %s feature", fi.name,
                                level == ES_AT_WITHIN ? "a within" : "an across");
        if (!isfinite(h->mean[i]) || !(h->scale[i] > 0) || !isfinite(h->scale[i]))
            return bad(err, field, "mean must be finite and scale finite and > 0");
    }
    snprintf(field, sizeof field, "%s.required", name);
    if (h->n_in < 64 && (h->required >> h->n_in)) return bad(err, field, "names an input the head does not have");
    snprintf(field, sizeof field, "%s.every", name);
    if (h->every > 1000000) return bad(err, field, "a probe spacing of at most 1000000");
    /* the file reads it on a within head only: what is made here must load */
    if (h->every && level != ES_AT_WITHIN)
        return bad(err, field, "is a within head's (the probe spacing it was trained at)");
    snprintf(field, sizeof field, "%s.clip", name);
    if (!(h->clip > 0)) return bad(err, field, "must be > 0");
    snprintf(field, sizeof field, "%s.nets", name);
    if (h->n_nets < 1 || h->n_nets > 2) return bad(err, field, "a head has one or two nets");
    for (uint32_t k = 0; k < h->n_nets; k++) {
        const es_stopper_net *n = &h->net[k];
        snprintf(field, sizeof field, "%s.nets[%u]", name, k);
        if (n->hidden > ES_STOPPER_MAX_HIDDEN) return bad(err, field, "at most 64 hidden units");
        size_t n2 = n->hidden ? n->hidden : h->n_in;
        if (!n->w2 || !finite_all(n->w2, n2) || !isfinite(n->b2) || !isfinite(n->weight))
            return bad(err, field, "weights must be given and finite");
        if (n->hidden && (!n->w1 || !n->b1 || !finite_all(n->w1, (size_t)n->hidden * h->n_in) ||
                          !finite_all(n->b1, n->hidden)))
            return bad(err, field, "hidden-layer weights must be given and finite");
    }
    return ES_OK;
}

static int check(const es_stopper_desc *d, es_error *err)
{
    if (!d->within.n_in && !d->across.n_in) return bad(err, "heads", "a stopper needs a within or an across head");
    int rc = check_head(&d->within, ES_AT_WITHIN, "within", err);
    if (!rc) rc = check_head(&d->across, ES_AT_ACROSS, "across", err);
    if (rc) return rc;
    if (d->n_across_alt > ES_STOPPER_MAX_ALT || (d->n_across_alt && (!d->across_alt || !d->across.n_in)))
        return bad(err, "across_alt", "at most 8 more across heads, beside an across head");
    for (uint32_t k = 0; k < d->n_across_alt && !rc; k++) {
        char name[32];
        snprintf(name, sizeof name, "across_alt[%u]", k);
        rc = d->across_alt[k].n_in ? check_head(&d->across_alt[k], ES_AT_ACROSS, name, err)
                                   : bad(err, name, "an empty head");
    }
    if (rc) return rc;
    if (d->n_points < 1 || d->n_points > ES_STOPPER_MAX_POINTS)
        return bad(err, "operating_points", "between 1 and 32 operating points");
    for (uint32_t i = 0; i < d->n_points; i++) {
        char field[64];
        snprintf(field, sizeof field, "operating_points[%u]", i);
        if (!(d->max_em_drop[i] >= 0) || (i && !(d->max_em_drop[i] > d->max_em_drop[i - 1])))
            return bad(err, field, "max_em_drop must be >= 0 and strictly ascending");
        if (d->across.n_in && !isfinite(d->threshold[i])) return bad(err, field, "the across threshold must be finite");
        if (d->across_pick && d->across_pick[i] > d->n_across_alt)
            return bad(err, field, "across_head names no head (0 = across, k = across_alt[k - 1])");
        if (d->within.n_in && !isfinite(d->probe_threshold[i]))
            return bad(err, field, "the probe threshold must be finite");
    }
    return ES_OK;
}

/* ---------------------------------------------------------- the object */

/* Doubles in one head's arrays, as copy_head lays them out. */
static size_t head_doubles(const es_stopper_head *h)
{
    size_t n = 2 * (size_t)h->n_in;
    for (uint32_t k = 0; k < h->n_nets && h->n_in; k++) {
        const es_stopper_net *t = &h->net[k];
        n += t->hidden ? (size_t)t->hidden * h->n_in + 2 * (size_t)t->hidden : h->n_in;
    }
    return n;
}

static double *put(double **at, const double *src, size_t n)
{
    double *p = *at;
    memcpy(p, src, n * sizeof *p);
    *at += n;
    return p;
}

static void copy_head(es_stopper_head *dst, const es_stopper_head *src, double **at, uint32_t **ids)
{
    *dst = *src;
    if (!src->n_in) {
        memset(dst, 0, sizeof *dst);
        return;
    }
    memcpy(*ids, src->feature, src->n_in * sizeof **ids);
    dst->feature = *ids;
    *ids += src->n_in;
    dst->mean = put(at, src->mean, src->n_in);
    dst->scale = put(at, src->scale, src->n_in);
    for (uint32_t k = 0; k < src->n_nets; k++) {
        es_stopper_net *n = &dst->net[k];
        const es_stopper_net *s = &src->net[k];
        if (s->hidden) {
            n->w1 = put(at, s->w1, (size_t)s->hidden * src->n_in);
            n->b1 = put(at, s->b1, s->hidden);
            n->w2 = put(at, s->w2, s->hidden);
        } else {
            n->w1 = n->b1 = NULL;
            n->w2 = put(at, s->w2, src->n_in);
        }
    }
    for (uint32_t k = src->n_nets; k < 2; k++) memset(&dst->net[k], 0, sizeof dst->net[k]);
}

int es_stopper_new(const es_stopper_desc *d, es_stopper **out, es_error *err)
{
    *out = NULL;
    int rc = check(d, err);
    if (rc) return rc;
    /* one block: the struct, the alternative heads, the doubles, the ids and picks */
    size_t na = d->n_across_alt;
    size_t nd = head_doubles(&d->within) + head_doubles(&d->across) + 3 * (size_t)d->n_points;
    size_t ni = (size_t)d->within.n_in + d->across.n_in + (d->across_pick ? d->n_points : 0);
    for (size_t k = 0; k < na; k++) {
        nd += head_doubles(&d->across_alt[k]);
        ni += d->across_alt[k].n_in;
    }
    es_stopper *m = calloc(1, sizeof *m + na * sizeof(es_stopper_head) + nd * sizeof(double) + ni * sizeof(uint32_t));
    if (!m) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    es_stopper_head *alt = (es_stopper_head *)(m + 1);
    double *at = (double *)(alt + na);
    uint32_t *ids = (uint32_t *)(at + nd);
    copy_head(&m->d.within, &d->within, &at, &ids);
    copy_head(&m->d.across, &d->across, &at, &ids);
    for (size_t k = 0; k < na; k++) copy_head(&alt[k], &d->across_alt[k], &at, &ids);
    m->d.n_across_alt = (uint32_t)na;
    m->d.across_alt = na ? alt : NULL;
    if (d->across_pick) {
        memcpy(ids, d->across_pick, d->n_points * sizeof *ids);
        m->d.across_pick = ids;
    }
    m->d.n_points = d->n_points;
    m->d.max_em_drop = put(&at, d->max_em_drop, d->n_points);
    /* a level without a head keeps NaN thresholds whatever was given */
    double *thr = put(&at, d->threshold, d->n_points), *pthr = put(&at, d->probe_threshold, d->n_points);
    for (uint32_t i = 0; i < d->n_points; i++) {
        if (!d->across.n_in) thr[i] = NAN;
        if (!d->within.n_in) pthr[i] = NAN;
    }
    m->d.threshold = thr;
    m->d.probe_threshold = pthr;
    atomic_init(&m->refs, 1);
    *out = m;
    return ES_OK;
}

void es_stopper_retain(const es_stopper *m)
{
    if (m && !m->builtin) atomic_fetch_add(&((es_stopper *)m)->refs, 1);
}

void es_stopper_free(es_stopper *m)
{
    if (!m || m->builtin) return;
    if (atomic_fetch_sub(&m->refs, 1) == 1) free(m);
}

void es_stopper_get(const es_stopper *m, es_stopper_desc *out) { *out = m->d; }

/* ------------------------------------------------------------- scoring */

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* tanh through one expm1 (libm's tanh costs about twice as much, and a
 * 64-unit layer calls it 64 times per decision); equal to it within a few
 * ulps, saturated where it is +-1 in double. */
static double fast_tanh(double x)
{
    if (x > 19.1) return 1.0;
    if (x < -19.1) return -1.0;
    double e = expm1(2.0 * x);
    return e / (e + 2.0);
}

static double run_net(const es_stopper_net *n, const double *z, uint32_t n_in)
{
    double y = n->b2;
    if (!n->hidden) {
        for (uint32_t i = 0; i < n_in; i++) y += n->w2[i] * z[i];
    } else {
        for (uint32_t h = 0; h < n->hidden; h++) {
            const double *w = n->w1 + (size_t)h * n_in;
            double a = n->b1[h];
            for (uint32_t i = 0; i < n_in; i++) a += w[i] * z[i];
            y += n->w2[h] * fast_tanh(a);
        }
    }
    return n->weight * (n->sigmoid ? sigmoid(y) : y);
}

double es_stopper_head_score(const es_stopper_head *h, const double *x)
{
    double z[ES_STOPPER_MAX_INPUTS];
    for (uint32_t i = 0; i < h->n_in; i++) {
        double v = x[i];
        if (v != v) {
            if ((h->required >> i) & 1) return NAN; /* a signal the head never learned without */
            z[i] = 0; /* missing: the training mean */
            continue;
        }
        v = (v - h->mean[i]) / h->scale[i];
        z[i] = v > h->clip ? h->clip : v < -h->clip ? -h->clip : v;
    }
    double s = 0;
    for (uint32_t k = 0; k < h->n_nets; k++) s += run_net(&h->net[k], z, h->n_in);
    return s;
}

const es_stopper_head *es_stopper_head_for(const es_stopper *m, uint32_t point, int level)
{
    const es_stopper_desc *d = &m->d;
    if (level == ES_AT_ACROSS && point < d->n_points && d->across_pick && d->across_pick[point])
        return &d->across_alt[d->across_pick[point] - 1];
    return es_stopper_head_at(m, level);
}

double es_stopper_score_at(const es_stopper *m, uint32_t point, int level, const double *x)
{
    const es_stopper_head *h = es_stopper_head_for(m, point, level);
    if (!h) return NAN;
    double in[ES_STOPPER_MAX_INPUTS];
    for (uint32_t i = 0; i < h->n_in; i++) in[i] = x[h->feature[i]];
    return es_stopper_head_score(h, in);
}

const es_stopper_head *es_stopper_head_at(const es_stopper *m, int level)
{
    const es_stopper_head *h = level == ES_AT_WITHIN ? &m->d.within : level == ES_AT_ACROSS ? &m->d.across : NULL;
    return h && h->n_in ? h : NULL;
}

double es_stopper_score(const es_stopper *m, int level, const double *x)
{
    return es_stopper_score_at(m, UINT32_MAX, level, x);
}
