/*
 * fit.c - the numerical pieces the learners share: z-scores, a small net
 * (linear, or one tanh hidden layer) with its evaluation, and a weighted
 * fit of it: exact for a linear net (Newton's method with step halving on
 * the logistic loss; the ridge normal equations on the squared loss), Adam
 * on minibatches for a hidden layer.  Sums run in a fixed order on one
 * thread, so a seed gives the same weights on any machine thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_int.h"

/* ------------------------------------------------------- normalisation */

void lr_norm_fit(const lr_data *s, double clip, lr_norm *nz)
{
    memset(nz, 0, sizeof *nz);
    nz->d = s->d;
    nz->clip = clip;
    for (uint32_t k = 0; k < s->d; k++) {
        double sw = 0, m = 0, m2 = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (s->kind[i] & LR_TERMINAL) continue;
            double x = s->x[i * s->d + k], w = s->w[i];
            if (x != x) continue;
            /* West's weighted running mean and variance */
            sw += w;
            double dm = x - m;
            m += dm * w / sw;
            m2 += w * dm * (x - m);
        }
        double var = sw > 0 ? m2 / sw : 0;
        nz->mean[k] = sw > 0 ? m : 0;
        nz->scale[k] = var > 1e-12 ? sqrt(var) : 1.0;
    }
}

void lr_norm_apply(const lr_norm *nz, const float *x, double *z)
{
    for (uint32_t k = 0; k < nz->d; k++) {
        double v = x[k];
        if (v != v) {
            z[k] = 0;
            continue;
        }
        v = (v - nz->mean[k]) / nz->scale[k];
        z[k] = v > nz->clip ? nz->clip : v < -nz->clip ? -nz->clip : v;
    }
}

double *lr_standardise(const lr_data *s, const lr_norm *nz)
{
    double *z = malloc((s->n * s->d + 1) * sizeof *z);
    for (size_t i = 0; z && i < s->n; i++) lr_norm_apply(nz, s->x + i * s->d, z + i * s->d);
    return z;
}

/* ----------------------------------------------------------------- nets */

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

double lr_net_eval(const lr_net *n, const double *z, double *h)
{
    double y = n->b2;
    if (!n->hidden) {
        for (uint32_t i = 0; i < n->d; i++) y += n->w2[i] * z[i];
    } else {
        for (uint32_t k = 0; k < n->hidden; k++) {
            const double *w = n->w1 + (size_t)k * n->d;
            double a = n->b1[k];
            for (uint32_t i = 0; i < n->d; i++) a += w[i] * z[i];
            double t = tanh(a);
            if (h) h[k] = t;
            y += n->w2[k] * t;
        }
    }
    return n->sigmoid ? sigm(y) : y;
}

void lr_net_init(lr_net *n, uint32_t d, uint32_t hidden, int sigmoid, uint64_t seed)
{
    memset(n, 0, sizeof *n);
    n->d = d;
    n->hidden = hidden;
    n->sigmoid = sigmoid;
    uint64_t s = seed;
    double r = 1.0 / sqrt((double)(d ? d : 1));
    for (size_t i = 0; i < (size_t)hidden * d; i++) n->w1[i] = (2 * lr_unif(&s) - 1) * r;
    for (uint32_t k = 0; k < hidden; k++) n->w2[k] = (2 * lr_unif(&s) - 1) / sqrt((double)hidden);
}

/* ------------------------------------------------------ linear fits */

/* Solve A x = b (m x m, symmetric positive definite) by Cholesky; A and b
 * are overwritten.  -1 when A is not positive definite. */
static int cholesky_solve(double *A, double *b, uint32_t m)
{
    for (uint32_t j = 0; j < m; j++) {
        double s = A[j * m + j];
        for (uint32_t k = 0; k < j; k++) s -= A[j * m + k] * A[j * m + k];
        if (!(s > 0)) return -1;
        A[j * m + j] = sqrt(s);
        for (uint32_t i = j + 1; i < m; i++) {
            double t = A[i * m + j];
            for (uint32_t k = 0; k < j; k++) t -= A[i * m + k] * A[j * m + k];
            A[i * m + j] = t / A[j * m + j];
        }
    }
    for (uint32_t i = 0; i < m; i++) {
        double t = b[i];
        for (uint32_t k = 0; k < i; k++) t -= A[i * m + k] * b[k];
        b[i] = t / A[i * m + i];
    }
    for (uint32_t i = m; i-- > 0;) {
        double t = b[i];
        for (uint32_t k = i + 1; k < m; k++) t -= A[k * m + i] * b[k];
        b[i] = t / A[i * m + i];
    }
    return 0;
}

/* theta = (w, b) over inputs z plus a constant 1 */
static double lin(const double *th, const double *z, uint32_t d)
{
    double y = th[d];
    for (uint32_t i = 0; i < d; i++) y += th[i] * z[i];
    return y;
}

/* The weighted mean loss (+ l2 |w|^2 / 2 per unit weight). */
static double loss_of(const double *th, const double *z, const double *y, const double *w, size_t rows, uint32_t d,
                      int logistic, double l2)
{
    double sl = 0, sw = 0;
    for (size_t i = 0; i < rows; i++) {
        double a = lin(th, z + i * d, d), l;
        if (logistic) l = (a > 0 ? a + log1p(exp(-a)) : log1p(exp(a))) - y[i] * a;
        else l = 0.5 * (a - y[i]) * (a - y[i]);
        sl += w[i] * l;
        sw += w[i];
    }
    double r = 0;
    for (uint32_t i = 0; i < d; i++) r += th[i] * th[i];
    return (sw > 0 ? sl / sw : 0) + 0.5 * l2 * r;
}

/* Newton's method on the weighted, l2-penalised loss (one step for the
 * squared loss), halving steps that do not lower it. */
static int fit_linear(lr_net *n, const double *z, const double *y, const double *w, size_t rows, double l2)
{
    uint32_t d = n->d, m = d + 1;
    double th[ES_STOPPER_MAX_INPUTS + 1], g[ES_STOPPER_MAX_INPUTS + 1], step[ES_STOPPER_MAX_INPUTS + 1];
    double *H = malloc((size_t)m * m * sizeof *H);
    if (!H) return ES_ENOMEM;
    for (uint32_t i = 0; i < d; i++) th[i] = n->w2[i];
    th[d] = n->b2;
    double sw = 0;
    for (size_t i = 0; i < rows; i++) sw += w[i];
    if (!(sw > 0)) sw = 1;
    double cur = loss_of(th, z, y, w, rows, d, n->sigmoid, l2);
    for (int it = 0; it < (n->sigmoid ? 50 : 1); it++) {
        memset(H, 0, (size_t)m * m * sizeof *H);
        memset(g, 0, m * sizeof *g);
        for (size_t i = 0; i < rows; i++) {
            const double *zi = z + i * d;
            double a = lin(th, zi, d), p = n->sigmoid ? sigm(a) : a;
            double r = w[i] / sw * (p - y[i]), h = w[i] / sw * (n->sigmoid ? p * (1 - p) : 1.0);
            for (uint32_t u = 0; u < m; u++) {
                double zu = u < d ? zi[u] : 1.0;
                g[u] += r * zu;
                double hz = h * zu;
                for (uint32_t v = 0; v <= u; v++) H[u * m + v] += hz * (v < d ? zi[v] : 1.0);
            }
        }
        for (uint32_t u = 0; u < m; u++) {
            for (uint32_t v = 0; v < u; v++) H[v * m + u] = H[u * m + v];
            if (u < d) {
                H[u * m + u] += l2;
                g[u] += l2 * th[u];
            }
            H[u * m + u] += 1e-10;
            step[u] = g[u];
        }
        if (cholesky_solve(H, step, m)) break;
        double t = 1.0, next[ES_STOPPER_MAX_INPUTS + 1], nl = cur;
        for (int half = 0; half < 30; half++, t *= 0.5) {
            for (uint32_t u = 0; u < m; u++) next[u] = th[u] - t * step[u];
            nl = loss_of(next, z, y, w, rows, d, n->sigmoid, l2);
            if (nl <= cur) break;
        }
        if (!(nl <= cur)) break;
        double moved = 0;
        for (uint32_t u = 0; u < m; u++) moved += fabs(next[u] - th[u]);
        memcpy(th, next, m * sizeof *th);
        int done = cur - nl < 1e-12 || moved < 1e-10;
        cur = nl;
        if (done) break;
    }
    free(H);
    for (uint32_t i = 0; i < d; i++) n->w2[i] = th[i];
    n->b2 = th[d];
    return ES_OK;
}

/* ------------------------------------------------------- MLP by Adam */

typedef struct adam {
    double *m, *v;
    size_t n;
    uint64_t t;
} adam;

static void adam_step(adam *a, double *p, const double *g, double lr)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    a->t++;
    double c1 = 1 - pow(b1, (double)a->t), c2 = 1 - pow(b2, (double)a->t);
    for (size_t i = 0; i < a->n; i++) {
        a->m[i] = b1 * a->m[i] + (1 - b1) * g[i];
        a->v[i] = b2 * a->v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= lr * (a->m[i] / c1) / (sqrt(a->v[i] / c2) + eps);
    }
}

size_t lr_net_n_params(const lr_net *n) { return n->hidden ? (size_t)n->hidden * n->d + 2 * n->hidden + 1 : n->d + 1; }

void lr_net_pack(const lr_net *n, double *p, int out)
{
    size_t k = 0, h = n->hidden, d = n->d;
    double *fields[4] = {(double *)n->w1, (double *)n->b1, (double *)n->w2, (double *)&n->b2};
    size_t len[4] = {h * d, h, h ? h : d, 1};
    for (int f = 0; f < 4; f++)
        for (size_t i = 0; i < len[f]; i++, k++) {
            if (out) p[k] = fields[f][i];
            else fields[f][i] = p[k];
        }
}

void lr_net_grad(const lr_net *n, const double *z, const double *h, double c, double *g)
{
    if (!n->hidden) {
        for (uint32_t i = 0; i < n->d; i++) g[i] += c * z[i];
        g[n->d] += c;
        return;
    }
    double *gb1 = g + (size_t)n->hidden * n->d, *gw2 = gb1 + n->hidden, *gb2 = gw2 + n->hidden;
    for (uint32_t k = 0; k < n->hidden; k++) {
        gw2[k] += c * h[k];
        double dh = c * n->w2[k] * (1 - h[k] * h[k]);
        gb1[k] += dh;
        for (uint32_t i = 0; i < n->d; i++) g[(size_t)k * n->d + i] += dh * z[i];
    }
    *gb2 += c;
}

static int fit_mlp(lr_net *n, const double *z, const double *y, const double *w, size_t rows, const lr_fit_opts *o)
{
    size_t np = lr_net_n_params(n), bs = 256;
    double *p = calloc(np, sizeof *p), *g = calloc(np, sizeof *g), *m = calloc(np, sizeof *m),
           *v = calloc(np, sizeof *v);
    size_t *perm = malloc((rows + 1) * sizeof *perm);
    if (!p || !g || !m || !v || !perm) {
        free(p), free(g), free(m), free(v), free(perm);
        return ES_ENOMEM;
    }
    lr_net_pack(n, p, 1);
    adam a = {m, v, np, 0};
    double wmean = 0, h[ES_STOPPER_MAX_HIDDEN];
    for (size_t i = 0; i < rows; i++) wmean += w[i];
    wmean = rows ? wmean / rows : 1;
    uint64_t s = o->seed ^ 0xADA3ULL;
    for (size_t i = 0; i < rows; i++) perm[i] = i;
    size_t steps = 0, total = (size_t)o->epochs * ((rows + bs - 1) / bs);
    for (uint32_t e = 0; e < o->epochs; e++) {
        for (size_t i = rows; i > 1; i--) {
            size_t j = (size_t)(lr_mix(&s) % i), t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t b0 = 0; b0 < rows; b0 += bs, steps++) {
            memset(g, 0, np * sizeof *g);
            size_t b1 = b0 + bs < rows ? b0 + bs : rows;
            double scale = 1.0 / ((double)(b1 - b0) * wmean);
            for (size_t q = b0; q < b1; q++) {
                size_t i = perm[q];
                const double *zi = z + i * n->d;
                double out = lr_net_eval(n, zi, h);
                /* d loss / d pre-activation: p - y for the logistic loss, y' - y for the squared */
                double r = (out - y[i]) * w[i] * scale;
                lr_net_grad(n, zi, h, r, g);
            }
            for (size_t i = 0; i < (size_t)n->hidden * n->d; i++) g[i] += o->l2 * p[i];
            for (size_t i = 0; i < n->hidden; i++) g[(size_t)n->hidden * n->d + n->hidden + i] += o->l2 * p[(size_t)n->hidden * n->d + n->hidden + i];
            /* a learning rate decayed over the fit */
            double lr = 3e-3 * (1.0 - 0.9 * (double)steps / (double)(total ? total : 1));
            adam_step(&a, p, g, lr);
            lr_net_pack(n, p, 0);
        }
    }
    free(p), free(g), free(m), free(v), free(perm);
    return ES_OK;
}

int lr_net_fit(lr_net *n, const double *z, const double *y, const double *w, size_t rows, const lr_fit_opts *o)
{
    return n->hidden ? fit_mlp(n, z, y, w, rows, o) : fit_linear(n, z, y, w, rows, o->l2);
}
