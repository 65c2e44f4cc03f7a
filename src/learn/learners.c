/*
 * learners.c - the learned stopper's heads from decision states.
 *
 * logistic: the probability that stopping now is rewarded (the answer
 *   agrees with the full run, or is correct); no lambda: the threshold on
 *   it is the whole trade-off.
 * fqi: optimal stopping by fitted-Q iteration.  S(x) is that probability
 *   (the value of stopping); C(x) the value of going on, regressed on
 *   -lambda * (next cost - cost) + V(next) with V = S or max(S, C) where
 *   the next state may stop, and the reward itself where it must (the
 *   episode's end): backward induction with a model in place of a table,
 *   iterated to a fixed point.  The score is S - C: > 0 where stopping is
 *   worth more than the best continuation at this lambda.
 * reinforce: a stochastic policy pi(stop | x) = logistic(net(z)), rolled
 *   out on sampled episodes; the gradient of the expected return (reward
 *   at the stop minus lambda times the cost from here) with a learned
 *   linear baseline subtracted; Adam.  The score is pi.
 *
 * All in one thread with seeded random numbers: the same head for a seed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_int.h"

static int decision(const lr_data *s, size_t i) { return (s->kind[i] & LR_MAY_STOP) && !(s->kind[i] & LR_TERMINAL); }

static void progress(const lr_train *t, const char *what, size_t done, size_t total)
{
    if (t->progress) t->progress(t->progress_ctx, what, done, total);
}

double lr_head_score(const lr_head *h, const double *z)
{
    double s = 0;
    for (uint32_t k = 0; k < h->n_nets; k++) s += h->weight[k] * lr_net_eval(&h->net[k], z, NULL);
    return s;
}

/* The decision states' rows: z, target, weight (compacted). */
typedef struct rows {
    double *z, *y, *w;
    size_t *idx;              /* state of each row */
    size_t n;
} rows;

static void rows_free(rows *r)
{
    free(r->z);
    free(r->y);
    free(r->w);
    free(r->idx);
}

static int rows_of(const lr_data *s, const double *zall, rows *r)
{
    memset(r, 0, sizeof *r);
    size_t n = 0, d = s->d;
    for (size_t i = 0; i < s->n; i++) n += decision(s, i);
    r->z = malloc((n * d + 1) * sizeof *r->z);
    r->y = malloc((n + 1) * sizeof *r->y);
    r->w = malloc((n + 1) * sizeof *r->w);
    r->idx = malloc((n + 1) * sizeof *r->idx);
    if (!r->z || !r->y || !r->w || !r->idx) {
        rows_free(r);
        return ES_ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (!decision(s, i)) continue;
        memcpy(r->z + r->n * d, zall + i * d, d * sizeof *r->z);
        r->y[r->n] = s->reward[i];
        r->w[r->n] = s->w[i];
        r->idx[r->n++] = i;
    }
    return ES_OK;
}

static int no_rows(es_error *err)
{
    return es_error_set(err, ES_EINVAL, "", 0, "", "no decision states to learn from (files with one sample "
                                                   "each have none across samples; files without probes none within)");
}

/* ----------------------------------------------------------- logistic */

static int fit_stop_value(const lr_data *s, const lr_train *t, const rows *r, lr_net *S)
{
    lr_net_init(S, s->d, t->hidden, 1, t->seed);
    lr_fit_opts fo = {t->l2, t->epochs, t->seed};
    return lr_net_fit(S, r->z, r->y, r->w, r->n, &fo);
}

int lr_train_logistic(const lr_data *s, const lr_train *t, lr_head *h, es_error *err)
{
    lr_norm_fit(s, t->clip, &h->nz);
    double *z = lr_standardise(s, &h->nz);
    rows r;
    int rc = z ? rows_of(s, z, &r) : ES_ENOMEM;
    free(z);
    if (rc) return es_error_set(err, rc, "", 0, "", "out of memory");
    if (r.n == 0) {
        rows_free(&r);
        return no_rows(err);
    }
    progress(t, "logistic", 0, 1);
    rc = fit_stop_value(s, t, &r, &h->net[0]);
    progress(t, "logistic", 1, 1);
    h->n_nets = 1;
    h->weight[0] = 1;
    rows_free(&r);
    return rc ? es_error_set(err, rc, "", 0, "", "out of memory") : ES_OK;
}

/* ---------------------------------------------------------------- FQI */

int lr_train_fqi(const lr_data *s, const lr_train *t, lr_head *h, es_error *err)
{
    lr_norm_fit(s, t->clip, &h->nz);
    double *z = lr_standardise(s, &h->nz);
    rows r;
    int rc = z ? rows_of(s, z, &r) : ES_ENOMEM;
    if (rc) {
        free(z);
        return es_error_set(err, rc, "", 0, "", "out of memory");
    }
    if (r.n == 0) {
        free(z);
        rows_free(&r);
        return no_rows(err);
    }
    lr_net *S = &h->net[0], *C = &h->net[1];
    double *sv = malloc((s->n + 1) * sizeof *sv), *cv = malloc((s->n + 1) * sizeof *cv);
    if (!sv || !cv) rc = ES_ENOMEM;
    if (!rc) rc = fit_stop_value(s, t, &r, S);
    for (size_t i = 0; !rc && i < s->n; i++) {
        sv[i] = s->kind[i] & LR_TERMINAL ? s->reward[i] : lr_net_eval(S, z + i * s->d, NULL);
        cv[i] = -INFINITY; /* no continuation value yet: V = S */
    }
    lr_net_init(C, s->d, t->hidden, 0, t->seed + 1);
    lr_fit_opts fo = {t->l2, t->epochs, t->seed + 1};
    for (uint32_t it = 0; !rc && it < t->iterations; it++) {
        progress(t, "fitted-Q", it, t->iterations);
        /* targets: the cost of one more step and the value of the next state */
        for (size_t q = 0; q < r.n; q++) {
            size_t i = r.idx[q], j = i + 1; /* a decision state is never an episode's last */
            double v = s->kind[j] & LR_TERMINAL ? s->reward[j]
                       : s->kind[j] & LR_MAY_STOP ? fmax(sv[j], cv[j])
                                                  : cv[j];
            r.y[q] = -t->lambda * ((double)s->cost[j] - s->cost[i]) + v;
        }
        rc = lr_net_fit(C, r.z, r.y, r.w, r.n, &fo);
        double moved = 0;
        for (size_t q = 0; !rc && q < r.n; q++) {
            size_t i = r.idx[q];
            double c = lr_net_eval(C, z + i * s->d, NULL);
            if (cv[i] > -INFINITY) moved = fmax(moved, fabs(c - cv[i]));
            else moved = INFINITY;
            cv[i] = c;
        }
        if (moved < 1e-6) break;
    }
    progress(t, "fitted-Q", t->iterations, t->iterations);
    h->n_nets = 2;
    h->weight[0] = 1;
    h->weight[1] = -1;
    free(sv);
    free(cv);
    free(z);
    rows_free(&r);
    return rc ? es_error_set(err, rc, "", 0, "", "out of memory") : ES_OK;
}

/* ---------------------------------------------------------- REINFORCE */

typedef struct adam_state {
    double *m, *v;
    uint64_t t;
} adam_state;

/* One Adam step, ascent when sign = +1. */
static void adam(adam_state *a, double *p, const double *g, size_t n, double lr, double sign)
{
    a->t++;
    double c1 = 1 - pow(0.9, (double)a->t), c2 = 1 - pow(0.999, (double)a->t);
    for (size_t i = 0; i < n; i++) {
        a->m[i] = 0.9 * a->m[i] + 0.1 * g[i];
        a->v[i] = 0.999 * a->v[i] + 0.001 * g[i] * g[i];
        p[i] += sign * lr * (a->m[i] / c1) / (sqrt(a->v[i] / c2) + 1e-8);
    }
}

int lr_train_reinforce(const lr_data *s, const lr_train *t, lr_head *h, es_error *err)
{
    lr_norm_fit(s, t->clip, &h->nz);
    double *z = lr_standardise(s, &h->nz);
    if (!z) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (s->n_ep == 0) {
        free(z);
        return no_rows(err);
    }
    uint32_t d = s->d;
    lr_net *pi = &h->net[0];
    lr_net_init(pi, d, t->hidden, 1, t->seed);
    pi->b2 = -2.0; /* start by going on: most decisions in an episode are "not yet" */
    size_t np = lr_net_n_params(pi), nb = d + 1;
    double *p = calloc(np, sizeof *p), *g = calloc(np, sizeof *g), *bw = calloc(nb, sizeof *bw),
           *gb = calloc(nb, sizeof *gb), *m1 = calloc(np, sizeof *m1), *v1 = calloc(np, sizeof *v1),
           *m2 = calloc(nb, sizeof *m2), *v2 = calloc(nb, sizeof *v2);
    double hid[ES_STOPPER_MAX_HIDDEN];
    int rc = p && g && bw && gb && m1 && v1 && m2 && v2 ? ES_OK : ES_ENOMEM;
    adam_state ap = {m1, v1, 0}, ab = {m2, v2, 0};
    uint64_t rng = t->seed ^ 0x5EEDULL;
    const size_t batch = 256;
    if (!rc) lr_net_pack(pi, p, 1);
    for (uint32_t it = 0; !rc && it < t->iterations; it++) {
        if (it % 16 == 0) progress(t, "REINFORCE", it, t->iterations);
        memset(g, 0, np * sizeof *g);
        memset(gb, 0, nb * sizeof *gb);
        double n_dec = 0;
        for (size_t b = 0; b < batch; b++) {
            size_t e = (size_t)(lr_mix(&rng) % s->n_ep), a = s->ep[e], end = s->ep[e + 1], stop = end - 1;
            /* roll the stochastic policy out: where does it stop? */
            for (size_t i = a; i < end; i++) {
                if (s->kind[i] & LR_TERMINAL) {
                    stop = i;
                    break;
                }
                if (!(s->kind[i] & LR_MAY_STOP)) continue;
                if (lr_unif(&rng) < lr_net_eval(pi, z + i * d, NULL)) {
                    stop = i;
                    break;
                }
            }
            /* each decision taken, with the return from there on */
            for (size_t i = a; i <= stop; i++) {
                if (!decision(s, i)) continue;
                const double *zi = z + i * d;
                double G = s->reward[stop] - t->lambda * ((double)s->cost[stop] - s->cost[i]);
                double base = bw[d];
                for (uint32_t k = 0; k < d; k++) base += bw[k] * zi[k];
                double prob = lr_net_eval(pi, zi, hid), adv = G - base;
                /* d log pi(action) / d logit: 1 - pi for stop, -pi for go on */
                double dl = i == stop ? 1 - prob : -prob;
                lr_net_grad(pi, zi, hid, s->w[i] * adv * dl, g);
                for (uint32_t k = 0; k < d; k++) gb[k] += s->w[i] * (base - G) * zi[k];
                gb[d] += s->w[i] * (base - G);
                n_dec += s->w[i];
            }
        }
        if (n_dec <= 0) continue;
        for (size_t i = 0; i < np; i++) g[i] = g[i] / n_dec - t->l2 * p[i];
        for (size_t i = 0; i < nb; i++) gb[i] /= n_dec;
        double lr = 0.02 * (1.0 - 0.9 * (double)it / (double)t->iterations);
        adam(&ap, p, g, np, lr, +1.0);
        adam(&ab, bw, gb, nb, 0.05, -1.0);
        lr_net_pack(pi, p, 0);
    }
    progress(t, "REINFORCE", t->iterations, t->iterations);
    h->n_nets = 1;
    h->weight[0] = 1;
    free(p), free(g), free(bw), free(gb), free(m1), free(v1), free(m2), free(v2), free(z);
    return rc ? es_error_set(err, rc, "", 0, "", "out of memory") : ES_OK;
}

int lr_train_head(const lr_data *s, const lr_train *t, lr_head *h, es_error *err)
{
    memset(h, 0, sizeof *h);
    switch (t->learner) {
    case ES_LEARNER_FQI: return lr_train_fqi(s, t, h, err);
    case ES_LEARNER_REINFORCE: return lr_train_reinforce(s, t, h, err);
    case ES_LEARNER_LOGISTIC: return lr_train_logistic(s, t, h, err);
    }
    return es_error_set(err, ES_EINVAL, "", 0, "--learner", "unknown learner");
}

void lr_head_export(const lr_head *h, const uint32_t *feat, es_stopper_head *out)
{
    memset(out, 0, sizeof *out);
    out->n_in = h->nz.d;
    out->feature = feat;
    out->mean = h->nz.mean;
    out->scale = h->nz.scale;
    out->clip = h->nz.clip;
    out->n_nets = h->n_nets;
    for (uint32_t k = 0; k < h->n_nets; k++) {
        const lr_net *n = &h->net[k];
        out->net[k] = (es_stopper_net){n->hidden, n->hidden ? n->w1 : NULL, n->hidden ? n->b1 : NULL, n->w2, n->b2,
                                       n->sigmoid, h->weight[k]};
    }
}
