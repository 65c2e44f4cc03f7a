/* train.c - training: batched forward with stored activations, backward,
 * AdamW (the llm.c recipe, for the llama2.c architecture). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"

struct es_lm_trainer {
    es_lm *m;
    es_lm_pool *pool;            /* borrowed; NULL = one thread */
    es_lm_config cfg;
    int B, Tmax, T;              /* T: columns of the last forward */
    float *grads, *mom1, *mom2;  /* [n_params] each */
    es_lm_weights g;             /* gradients, mapped like the weights */
    int *inp, *tgt;              /* [B][Tmax] of the last forward */
    long n_valid;
    /* activations, per layer l at offset l * B * Tmax * width */
    float *res;                  /* [L+1][BT][C] residual stream into each layer */
    float *xn1, *q, *k, *v, *atty, *mid, *xn2;   /* [L][BT][C] */
    float *rr1, *rr2;            /* [L][BT] reciprocal rms */
    float *h1, *h3, *ga;         /* [L][BT][H] */
    float *att;                  /* [L][B][NH][Tmax][Tmax] */
    float *xf, *rrf;             /* [BT][C], [BT] */
    float *probs;                /* [BT][V], dlogits after backward */
    /* backward scratch */
    float *dres, *dmid, *dxn, *dq, *dk, *dv, *datty;   /* [BT][C] */
    float *dga, *dh1, *dh3;                            /* [BT][H] */
    float *datt;                                       /* [B][NH][Tmax] */
    float *rope;
    float *mem;
};

/* Size of the one allocation: parameters-sized buffers, per-layer
 * activations kept for backward, and backward scratch reused by every layer. */
static size_t trainer_floats(const es_lm_config *c, size_t BT, size_t B, size_t T, size_t np)
{
    size_t C = (size_t)c->dim, H = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t NH = (size_t)c->n_heads, V = (size_t)c->vocab_size;
    return 3 * np + (L + 1) * BT * C + 7 * L * BT * C + 2 * L * BT + 3 * L * BT * H +
           L * B * NH * T * T + BT * C + BT + BT * V + 7 * BT * C + 3 * BT * H + B * NH * T;
}

/* Carve the one allocation; the order matches trainer_floats. */
static void trainer_carve(es_lm_trainer *t, float *p, size_t np)
{
    const es_lm_config *c = &t->cfg;
    size_t C = (size_t)c->dim, H = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t NH = (size_t)c->n_heads, V = (size_t)c->vocab_size;
    size_t B = (size_t)t->B, T = (size_t)t->Tmax, BT = B * T;
    t->grads = p; p += np;
    t->mom1 = p; p += np;
    t->mom2 = p; p += np;
    t->res = p; p += (L + 1) * BT * C;
    float **lc[] = {&t->xn1, &t->q, &t->k, &t->v, &t->atty, &t->mid, &t->xn2};
    for (size_t i = 0; i < 7; i++) { *lc[i] = p; p += L * BT * C; }
    t->rr1 = p; p += L * BT;
    t->rr2 = p; p += L * BT;
    t->h1 = p; p += L * BT * H;
    t->h3 = p; p += L * BT * H;
    t->ga = p; p += L * BT * H;
    t->att = p; p += L * B * NH * T * T;
    t->xf = p; p += BT * C;
    t->rrf = p; p += BT;
    t->probs = p; p += BT * V;
    float **bc[] = {&t->dres, &t->dmid, &t->dxn, &t->dq, &t->dk, &t->dv, &t->datty};
    for (size_t i = 0; i < 7; i++) { *bc[i] = p; p += BT * C; }
    t->dga = p; p += BT * H;
    t->dh1 = p; p += BT * H;
    t->dh3 = p; p += BT * H;
    t->datt = p;
}

/* Allocates for the largest batch once; shorter batches reuse it. */
int es_lm_trainer_new(es_lm *m, int batch, int seq, es_lm_trainer **out)
{
    if (batch < 1 || seq < 1 || seq > m->cfg.seq_len) return ES_EINVAL;
    es_lm_trainer *t = calloc(1, sizeof *t);
    if (!t) return ES_ENOMEM;
    t->m = m;
    t->cfg = m->cfg;
    t->B = batch;
    t->Tmax = seq;
    size_t BT = (size_t)batch * (size_t)seq;
    size_t n = trainer_floats(&m->cfg, BT, (size_t)batch, (size_t)seq, m->n_params);
    t->mem = calloc(n, sizeof(float));
    t->inp = calloc(2 * BT, sizeof(int));
    t->rope = es_lm_rope_table(&m->cfg);
    if (!t->mem || !t->inp || !t->rope) { es_lm_trainer_free(t); return ES_ENOMEM; }
    t->tgt = t->inp + BT;
    trainer_carve(t, t->mem, m->n_params);
    es_lm_map(&m->cfg, t->grads, &t->g);
    *out = t;
    return ES_OK;
}

/* NULL is a no-op. */
void es_lm_trainer_free(es_lm_trainer *t)
{
    if (!t) return;
    free(t->mem);
    free(t->inp);
    free(t->rope);
    free(t);
}

float *es_lm_trainer_grads(es_lm_trainer *t) { return t->grads; }

void es_lm_trainer_set_pool(es_lm_trainer *t, es_lm_pool *p) { t->pool = p; }

/* ---------------------------------------------------------------- forward */

/* Below this many floats a loop runs on one thread. */
#define PAR_MIN 65536L

/* Arguments of the row-wise RMSNorm loops, for the pool's callbacks. */
typedef struct norm_args {
    float *out, *rr, *dg;
    const float *x, *g, *dy, *rrc;
    int C;
} norm_args;

static void rmsnorm_range(void *ctx, long r0, long r1)
{
    const norm_args *a = ctx;
    for (long r = r0; r < r1; r++)
        a->rr[r] = es_k_rmsnorm(a->out + (size_t)r * a->C, a->x + (size_t)r * a->C, a->g, a->C);
}

/* Row-parallel RMSNorm that keeps the reciprocal rms for backward. */
static void rmsnorm_rows(es_lm_pool *p, float *out, float *rr, const float *x, const float *g, int rows, int C)
{
    norm_args a = {out, rr, NULL, x, g, NULL, NULL, C};
    double work = (long)rows * C >= PAR_MIN ? (double)rows * C : 0;
    es_pool_for(p, rows, 1, work, rmsnorm_range, &a);
}

/* Causal attention of head h of row b, keeping the probabilities for the
 * backward pass. */
static void attn_fwd_head(es_lm_trainer *t, int l, int b, int h)
{
    int C = t->cfg.dim, NH = t->cfg.n_heads, hs = C / NH, T = t->T, Tm = t->Tmax;
    size_t base = ((size_t)l * t->B * Tm + (size_t)b * T) * C + (size_t)h * hs;
    const float *q = t->q + base, *k = t->k + base, *v = t->v + base;
    float *y = t->atty + base;
    float *att = t->att + (((size_t)l * t->B + b) * NH + h) * (size_t)Tm * Tm;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < T; i++) {
        float *row = att + (size_t)i * T;
        for (int j = 0; j <= i; j++) row[j] = es_k_dot(q + (size_t)i * C, k + (size_t)j * C, hs) * scale;
        es_k_softmax(row, i + 1);
        float *yi = y + (size_t)i * C;
        memset(yi, 0, (size_t)hs * sizeof(float));
        for (int j = 0; j <= i; j++) es_k_axpy(yi, row[j], v + (size_t)j * C, hs);
    }
}

/* (row, head) pairs of a layer, for the pool. */
typedef struct head_args {
    es_lm_trainer *t;
    int l;
} head_args;

static void attn_fwd_range(void *ctx, long i0, long i1)
{
    const head_args *a = ctx;
    int NH = a->t->cfg.n_heads;
    for (long bh = i0; bh < i1; bh++) attn_fwd_head(a->t, a->l, (int)(bh / NH), (int)(bh % NH));
}

/* Attention half then FFN half, storing every input backward needs. */
static void layer_fwd(es_lm_trainer *t, int l)
{
    const es_lm_weights *w = &t->m->w;
    int C = t->cfg.dim, H = t->cfg.hidden_dim, hs = C / t->cfg.n_heads, T = t->T;
    int BT = t->B * T;
    size_t oc = (size_t)l * t->B * t->Tmax * C, oh = (size_t)l * t->B * t->Tmax * H;
    size_t or = (size_t)l * t->B * t->Tmax, lw = (size_t)l * C * C, lh = (size_t)l * H * C;
    float *x = t->res + oc, *xn1 = t->xn1 + oc, *q = t->q + oc, *k = t->k + oc, *v = t->v + oc;
    float *mid = t->mid + oc, *xn2 = t->xn2 + oc, *out = t->res + oc + (size_t)t->B * t->Tmax * C;
    es_lm_pool *p = t->pool;
    rmsnorm_rows(p, xn1, t->rr1 + or, x, w->rms_att + (size_t)l * C, BT, C);
    es_k_matmul_fwd(p, q, xn1, w->wq + lw, BT, C, C);
    es_k_matmul_fwd(p, k, xn1, w->wk + lw, BT, C, C);
    es_k_matmul_fwd(p, v, xn1, w->wv + lw, BT, C, C);
    for (int r = 0; r < BT; r++) {
        es_k_rope(q + (size_t)r * C, t->rope, r % T, C, hs, 1.0f);
        es_k_rope(k + (size_t)r * C, t->rope, r % T, C, hs, 1.0f);
    }
    head_args ha = {t, l};
    es_pool_for(p, (long)t->B * t->cfg.n_heads, 1, (long)BT * T * C >= PAR_MIN ? (double)BT * T * C : 0,
                attn_fwd_range, &ha);
    es_k_matmul_fwd(p, mid, t->atty + oc, w->wo + lw, BT, C, C);
    for (size_t i = 0; i < (size_t)BT * C; i++) mid[i] += x[i];
    rmsnorm_rows(p, xn2, t->rr2 + or, mid, w->rms_ffn + (size_t)l * C, BT, C);
    float *h1 = t->h1 + oh, *h3 = t->h3 + oh, *ga = t->ga + oh;
    es_k_matmul_fwd(p, h1, xn2, w->w1 + lh, BT, C, H);
    es_k_matmul_fwd(p, h3, xn2, w->w3 + lh, BT, C, H);
    for (size_t i = 0; i < (size_t)BT * H; i++) ga[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
    es_k_matmul_fwd(p, out, ga, w->w2 + lh, BT, H, C);
    for (size_t i = 0; i < (size_t)BT * C; i++) out[i] += mid[i];
}

/* Residual blocks are laid out with stride B*Tmax so that a short batch
 * (T < Tmax) still uses contiguous rows. */
float es_lm_train_forward(es_lm_trainer *t, const int *inputs, const int *targets, int seq)
{
    const es_lm_config *c = &t->cfg;
    if (seq < 1 || seq > t->Tmax) return NAN;
    t->T = seq;
    int C = c->dim, V = c->vocab_size, L = c->n_layers, BT = t->B * seq;
    for (int b = 0; b < t->B; b++)
        for (int i = 0; i < seq; i++) {
            t->inp[b * seq + i] = inputs[b * t->Tmax + i];
            t->tgt[b * seq + i] = targets[b * t->Tmax + i];
        }
    for (int r = 0; r < BT; r++)
        memcpy(t->res + (size_t)r * C, t->m->w.emb + (size_t)t->inp[r] * C, (size_t)C * sizeof(float));
    for (int l = 0; l < L; l++) layer_fwd(t, l);
    const float *last = t->res + (size_t)L * t->B * t->Tmax * C;
    rmsnorm_rows(t->pool, t->xf, t->rrf, last, t->m->w.rms_final, BT, C);
    es_k_matmul_fwd(t->pool, t->probs, t->xf, t->m->w.emb, BT, C, V);
    double loss = 0.0;
    long n = 0;
    for (int r = 0; r < BT; r++) {
        float *p = t->probs + (size_t)r * V;
        es_k_softmax(p, V);
        if (t->tgt[r] >= 0 && t->tgt[r] < V) { loss -= log((double)p[t->tgt[r]] + 1e-30); n++; }
    }
    t->n_valid = n;
    return n ? (float)(loss / (double)n) : NAN;
}

/* --------------------------------------------------------------- backward */

/* dx += d(rmsnorm)/dx . dy; the gain's gradient accumulates into dg in a
 * fixed order (rows, then columns) so it is the same on any thread count. */
static void rmsnorm_bwd_range(void *ctx, long r0, long r1)
{
    const norm_args *a = ctx;
    int C = a->C;
    for (long r = r0; r < r1; r++) {
        const float *dyr = a->dy + (size_t)r * C, *xr = a->x + (size_t)r * C, *g = a->g;
        float *dxr = a->out + (size_t)r * C;
        float s = 0.0f, rv = a->rrc[r];
        for (int i = 0; i < C; i++) s += dyr[i] * g[i] * xr[i];
        float k = rv * rv * rv * s / (float)C;
        for (int i = 0; i < C; i++) dxr[i] += rv * dyr[i] * g[i] - k * xr[i];
    }
}

static void rmsnorm_bwd(es_lm_pool *p, float *dx, float *dg, const float *dy, const float *x, const float *g,
                        const float *rr, int rows, int C)
{
    norm_args a = {dx, NULL, dg, x, g, dy, rr, C};
    es_pool_for(p, rows, 1, (long)rows * C >= PAR_MIN ? (double)rows * C : 0, rmsnorm_bwd_range, &a);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < C; i++) dg[i] += dy[(size_t)r * C + i] * x[(size_t)r * C + i] * rr[r];
}

/* Softmax backward per query row; dk/dv of one (b, h) are written by the
 * one thread that owns that head, so no reduction is needed. */
static void attn_bwd_head(es_lm_trainer *t, int l, int b, int h)
{
    int C = t->cfg.dim, NH = t->cfg.n_heads, hs = C / NH, T = t->T, Tm = t->Tmax;
    size_t base = ((size_t)l * t->B * Tm + (size_t)b * T) * C + (size_t)h * hs;
    size_t dbase = (size_t)b * T * C + (size_t)h * hs;
    const float *q = t->q + base, *k = t->k + base, *v = t->v + base;
    const float *att = t->att + (((size_t)l * t->B + b) * NH + h) * (size_t)Tm * Tm;
    float *datt = t->datt + ((size_t)b * NH + h) * Tm;
    float *dq = t->dq + dbase, *dk = t->dk + dbase, *dv = t->dv + dbase;
    const float *dy = t->datty + dbase;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < T; i++) {
        const float *row = att + (size_t)i * T, *dyi = dy + (size_t)i * C;
        float s = 0.0f;
        for (int j = 0; j <= i; j++) {
            datt[j] = es_k_dot(dyi, v + (size_t)j * C, hs);
            es_k_axpy(dv + (size_t)j * C, row[j], dyi, hs);
            s += row[j] * datt[j];
        }
        for (int j = 0; j <= i; j++) {
            float dp = row[j] * (datt[j] - s) * scale;
            es_k_axpy(dq + (size_t)i * C, dp, k + (size_t)j * C, hs);
            es_k_axpy(dk + (size_t)j * C, dp, q + (size_t)i * C, hs);
        }
    }
}

/* The FFN half of layer l: dres (gradient at the layer output) -> dmid. */
static void ffn_bwd(es_lm_trainer *t, int l)
{
    const es_lm_weights *w = &t->m->w;
    int C = t->cfg.dim, H = t->cfg.hidden_dim, BT = t->B * t->T;
    size_t oc = (size_t)l * t->B * t->Tmax * C, oh = (size_t)l * t->B * t->Tmax * H;
    size_t lh = (size_t)l * H * C, or = (size_t)l * t->B * t->Tmax;
    const float *h1 = t->h1 + oh, *h3 = t->h3 + oh;
    memcpy(t->dmid, t->dres, (size_t)BT * C * sizeof(float));
    memset(t->dga, 0, (size_t)BT * H * sizeof(float));
    es_lm_pool *p = t->pool;
    es_k_matmul_bwd_inp(p, t->dga, t->dres, w->w2 + lh, BT, H, C);
    es_k_matmul_bwd_w(p, t->g.w2 + lh, t->dres, t->ga + oh, BT, H, C);
    for (size_t i = 0; i < (size_t)BT * H; i++) {
        float sg = 1.0f / (1.0f + expf(-h1[i]));
        t->dh3[i] = t->dga[i] * h1[i] * sg;
        t->dh1[i] = t->dga[i] * h3[i] * sg * (1.0f + h1[i] * (1.0f - sg));
    }
    memset(t->dxn, 0, (size_t)BT * C * sizeof(float));
    es_k_matmul_bwd_inp(p, t->dxn, t->dh1, w->w1 + lh, BT, C, H);
    es_k_matmul_bwd_inp(p, t->dxn, t->dh3, w->w3 + lh, BT, C, H);
    es_k_matmul_bwd_w(p, t->g.w1 + lh, t->dh1, t->xn2 + oc, BT, C, H);
    es_k_matmul_bwd_w(p, t->g.w3 + lh, t->dh3, t->xn2 + oc, BT, C, H);
    rmsnorm_bwd(p, t->dmid, t->g.rms_ffn + (size_t)l * C, t->dxn, t->mid + oc,
                w->rms_ffn + (size_t)l * C, t->rr2 + or, BT, C);
}

static void attn_bwd_range(void *ctx, long i0, long i1)
{
    const head_args *a = ctx;
    int NH = a->t->cfg.n_heads;
    for (long bh = i0; bh < i1; bh++) attn_bwd_head(a->t, a->l, (int)(bh / NH), (int)(bh % NH));
}

/* The attention half of layer l: dmid -> dres (gradient at the layer input). */
static void attn_bwd(es_lm_trainer *t, int l)
{
    const es_lm_weights *w = &t->m->w;
    int C = t->cfg.dim, NH = t->cfg.n_heads, hs = C / NH, T = t->T, BT = t->B * T;
    size_t oc = (size_t)l * t->B * t->Tmax * C, lw = (size_t)l * C * C;
    size_t or = (size_t)l * t->B * t->Tmax;
    es_lm_pool *p = t->pool;
    memset(t->datty, 0, (size_t)BT * C * sizeof(float));
    es_k_matmul_bwd_inp(p, t->datty, t->dmid, w->wo + lw, BT, C, C);
    es_k_matmul_bwd_w(p, t->g.wo + lw, t->dmid, t->atty + oc, BT, C, C);
    memset(t->dq, 0, (size_t)BT * C * sizeof(float));
    memset(t->dk, 0, (size_t)BT * C * sizeof(float));
    memset(t->dv, 0, (size_t)BT * C * sizeof(float));
    head_args ha = {t, l};
    es_pool_for(p, (long)t->B * NH, 1, (long)BT * T * C >= PAR_MIN ? (double)BT * T * C : 0,
                attn_bwd_range, &ha);
    for (int r = 0; r < BT; r++) {
        es_k_rope(t->dq + (size_t)r * C, t->rope, r % T, C, hs, -1.0f);
        es_k_rope(t->dk + (size_t)r * C, t->rope, r % T, C, hs, -1.0f);
    }
    memset(t->dxn, 0, (size_t)BT * C * sizeof(float));
    es_k_matmul_bwd_inp(p, t->dxn, t->dq, w->wq + lw, BT, C, C);
    es_k_matmul_bwd_inp(p, t->dxn, t->dk, w->wk + lw, BT, C, C);
    es_k_matmul_bwd_inp(p, t->dxn, t->dv, w->wv + lw, BT, C, C);
    es_k_matmul_bwd_w(p, t->g.wq + lw, t->dq, t->xn1 + oc, BT, C, C);
    es_k_matmul_bwd_w(p, t->g.wk + lw, t->dk, t->xn1 + oc, BT, C, C);
    es_k_matmul_bwd_w(p, t->g.wv + lw, t->dv, t->xn1 + oc, BT, C, C);
    memcpy(t->dres, t->dmid, (size_t)BT * C * sizeof(float));
    rmsnorm_bwd(p, t->dres, t->g.rms_att + (size_t)l * C, t->dxn, t->res + oc,
                w->rms_att + (size_t)l * C, t->rr1 + or, BT, C);
}

/* Reverse order of the forward; the embedding gets gradient from the
 * classifier and from the input rows (tied weights). */
void es_lm_train_backward(es_lm_trainer *t)
{
    const es_lm_config *c = &t->cfg;
    int C = c->dim, V = c->vocab_size, L = c->n_layers, BT = t->B * t->T;
    memset(t->grads, 0, t->m->n_params * sizeof(float));
    float inv = t->n_valid ? 1.0f / (float)t->n_valid : 0.0f;
    for (int r = 0; r < BT; r++) {
        float *p = t->probs + (size_t)r * V;
        int y = t->tgt[r];
        if (y < 0 || y >= V) { memset(p, 0, (size_t)V * sizeof(float)); continue; }
        for (int i = 0; i < V; i++) p[i] *= inv;
        p[y] -= inv;
    }
    es_k_matmul_bwd_w(t->pool, t->g.emb, t->probs, t->xf, BT, C, V);
    memset(t->dxn, 0, (size_t)BT * C * sizeof(float));
    es_k_matmul_bwd_inp(t->pool, t->dxn, t->probs, t->m->w.emb, BT, C, V);
    memset(t->dres, 0, (size_t)BT * C * sizeof(float));
    rmsnorm_bwd(t->pool, t->dres, t->g.rms_final, t->dxn, t->res + (size_t)L * t->B * t->Tmax * C,
                t->m->w.rms_final, t->rrf, BT, C);
    for (int l = L - 1; l >= 0; l--) {
        ffn_bwd(t, l);
        attn_bwd(t, l);
    }
    for (int r = 0; r < BT; r++)
        es_k_axpy(t->g.emb + (size_t)t->inp[r] * C, 1.0f, t->dres + (size_t)r * C, C);
}

/* ---------------------------------------------------------------- AdamW */

/* What the AdamW update loop needs, for the pool. */
typedef struct adamw_args {
    es_lm_trainer *t;
    const es_lm_adamw *o;
    float scale, bc1, bc2;
    size_t ra, rf, fin, Ld;
} adamw_args;

static void adamw_range(void *ctx, long i0, long i1)
{
    const adamw_args *a = ctx;
    const es_lm_adamw *o = a->o;
    es_lm_trainer *t = a->t;
    float *p = t->m->params;
    for (size_t i = (size_t)i0; i < (size_t)i1; i++) {
        float g = t->grads[i] * a->scale;
        t->mom1[i] = o->beta1 * t->mom1[i] + (1.0f - o->beta1) * g;
        t->mom2[i] = o->beta2 * t->mom2[i] + (1.0f - o->beta2) * g * g;
        float mh = t->mom1[i] / a->bc1, vh = t->mom2[i] / a->bc2;
        int norm_p = (i >= a->ra && i < a->ra + a->Ld) || (i >= a->rf && i < a->rf + a->Ld) || i >= a->fin;
        float wd = norm_p ? 0.0f : o->weight_decay;
        p[i] -= o->lr * (mh / (sqrtf(vh) + o->eps) + wd * p[i]);
    }
}

/* The norm is summed serially in double: a threaded reduction would make
 * the weights depend on the thread count.  A non-finite norm means NaN or
 * infinite gradients: applying them would poison every weight, so the step
 * is refused and the norm returned for the caller to report. */
float es_lm_adamw_step(es_lm_trainer *t, const es_lm_adamw *o, int step)
{
    size_t n = t->m->n_params;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)t->grads[i] * t->grads[i];
    float norm = (float)sqrt(ss);
    if (!isfinite(norm)) return norm;
    float scale = (o->grad_clip > 0 && norm > o->grad_clip) ? o->grad_clip / norm : 1.0f;
    const es_lm_config *c = &t->cfg;
    size_t d = (size_t)c->dim, L = (size_t)c->n_layers, h = (size_t)c->hidden_dim;
    size_t ra = (size_t)c->vocab_size * d, rf = ra + L * d + 4 * L * d * d;
    adamw_args a = {t, o, scale, 1.0f - powf(o->beta1, (float)step), 1.0f - powf(o->beta2, (float)step),
                    ra, rf, rf + L * d + 3 * L * h * d, L * d};
    es_pool_for(t->pool, (long)n, 1, n >= (size_t)PAR_MIN ? (double)n : 0, adamw_range, &a);
    return norm;
}

/* First non-finite parameter index, or n when all are finite. */
static size_t first_nonfinite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) if (!isfinite(p[i])) return i;
    return n;
}

/* "NaN", "inf" or "-inf": what a user reads in the message. */
static const char *nonfinite_name(float v)
{
    return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf";
}

/* The guard every training loop wants: a NaN or infinite loss, gradient or
 * update stops here with the step named, before it reaches the weights
 * (AdamW's own check covers the gradients; the weights are checked after
 * the update for an overflow of the update itself, and restored). */
int es_lm_train_step(es_lm_trainer *t, const int *inputs, const int *targets, int seq,
                     const es_lm_adamw *opt, int step, float *loss, float *gnorm, es_error *err)
{
    float l = es_lm_train_forward(t, inputs, targets, seq);
    if (loss) *loss = l;
    if (gnorm) *gnorm = NAN;
    if (!isfinite(l))
        return es_error_set(err, ES_ERANGE, NULL, 0, "loss",
                            "the loss is %s at step %d: training diverged (learning rate too high?)",
                            nonfinite_name(l), step);
    es_lm_train_backward(t);
    float g = es_lm_adamw_step(t, opt, step);
    if (gnorm) *gnorm = g;
    if (!isfinite(g))
        return es_error_set(err, ES_ERANGE, NULL, 0, "gradient",
                            "the gradient norm is %s at step %d: training diverged (learning rate too high?)",
                            nonfinite_name(g), step);
    size_t bad = first_nonfinite(t->m->params, t->m->n_params);
    if (bad < t->m->n_params)
        return es_error_set(err, ES_ERANGE, NULL, 0, "weights",
                            "weight %zu is %s after step %d: training diverged (learning rate too high?)",
                            bad, nonfinite_name(t->m->params[bad]), step);
    return ES_OK;
}
