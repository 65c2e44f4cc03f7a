/* forward.c - inference: tokens against per-sequence KV caches, one row
 * per token, any number of rows per step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"

/* One malloc carved into every activation buffer of `cap` rows. */
int es_lm_rows_init(es_lm_rows *w, const es_lm_config *c, int cap)
{
    size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim, R = (size_t)cap;
    size_t total = R * (6 * d + 2 * h + (size_t)c->n_heads * (size_t)c->seq_len + (size_t)c->vocab_size);
    memset(w, 0, sizeof *w);
    float *p = calloc(total, sizeof(float));
    if (!p) return ES_ENOMEM;
    w->cap = cap;
    w->mem = p;
    w->x = p; p += R * d;
    w->xb = p; p += R * d;
    w->xb2 = p; p += R * d;
    w->q = p; p += R * d;
    w->k = p; p += R * d;
    w->v = p; p += R * d;
    w->hb = p; p += R * h;
    w->hb2 = p; p += R * h;
    w->att = p; p += R * (size_t)c->n_heads * (size_t)c->seq_len;
    w->logits = p;
    return ES_OK;
}

void es_lm_rows_free(es_lm_rows *w)
{
    free(w->mem);
    memset(w, 0, sizeof *w);
}

/* The cache and the RoPE table in one allocation, a one-row workspace in
 * another: a state is cheap to make and free and holds nothing per token. */
int es_lm_state_new(const es_lm *m, es_lm_state **out)
{
    const es_lm_config *c = &m->cfg;
    size_t d = (size_t)c->dim, T = (size_t)c->seq_len;
    size_t hs = d / (size_t)c->n_heads, kv = (size_t)c->n_layers * T * d;
    es_lm_state *s = calloc(1, sizeof *s);
    float *p = s ? calloc(2 * kv + T * hs, sizeof(float)) : NULL;
    if (!p || es_lm_rows_init(&s->one, c, 1)) { free(p); free(s); return ES_ENOMEM; }
    s->cfg = *c;
    s->mem = p;
    s->kcache = p; p += kv;
    s->vcache = p; p += kv;
    s->rope = p;
    s->logits = s->one.logits;
    float *rope = es_lm_rope_table(c);
    if (!rope) { es_lm_state_free(s); return ES_ENOMEM; }
    memcpy(s->rope, rope, T * hs * sizeof(float));
    free(rope);
    *out = s;
    return ES_OK;
}

/* NULL is a no-op like free(). */
void es_lm_state_free(es_lm_state *s)
{
    if (!s) return;
    es_lm_rows_free(&s->one);
    free(s->mem);
    free(s);
}

void es_lm_state_set_pool(es_lm_state *s, es_lm_pool *p) { s->pool = p; }

/* The cache is allocated for the whole context up front, so this is
 * what a sequence holds whatever its length (for memory reports). */
size_t es_lm_state_kv_bytes(const es_lm_state *s)
{
    return 2 * (size_t)s->cfg.n_layers * (size_t)s->cfg.seq_len * (size_t)s->cfg.dim *
           sizeof(float);
}

/* One weight matrix applied to the input rows of a step, split over the
 * pool by output rows. */
typedef struct mm_job {
    float *out;
    const float *in, *W;
    int n, d, rows;
} mm_job;

static void mm_job_range(void *ctx, long o0, long o1)
{
    const mm_job *j = ctx;
    es_k_matmul_rows(j->out, j->d, j->in, j->n, j->W, j->n, (int)o0, (int)o1, j->rows);
}

/* out[r][:d] = W . in[r][:n]; ranges start at multiples of 4 (the tiles),
 * though results do not depend on the split either way. */
static void mm_run(es_lm_pool *pool, float *out, const float *in, const float *W, int n, int d, int rows)
{
    mm_job j = {out, in, W, n, d, rows};
    es_pool_for(pool, d, d % 4 ? 1 : 4, (double)n * d * rows, mm_job_range, &j);
}

/* What a layer's jobs need: the rows of one step. */
typedef struct layer_job {
    const es_lm *m;
    es_lm_rows *w;
    es_lm_state *const *st;
    const int *pos;
    int n, layer;
} layer_job;

/* Heads h0..h1 of every row: their q, k and v (rows of wq, wk, wv), RoPE,
 * k and v into the caches, then attention.  A head needs nothing from the
 * others until wo, so one hand-off serves the projections and attention;
 * rows of one state at successive positions (a prompt) write all their
 * keys of the head before any of them attends. */
static void heads_range(void *ctx, long h0, long h1)
{
    const layer_job *j = ctx;
    const es_lm *m = j->m;
    const es_lm_config *c = &m->cfg;
    es_lm_rows *w = j->w;
    int d = c->dim, nh = c->n_heads, hs = d / nh, T = c->seq_len, n = j->n, l = j->layer;
    size_t ld = (size_t)l * d * d;
    for (int hd = (int)h0; hd < (int)h1; hd++) {
        int o0 = hd * hs, o1 = o0 + hs;
        es_k_matmul_rows(w->q, d, w->xb, d, m->w.wq + ld, d, o0, o1, n);
        es_k_matmul_rows(w->k, d, w->xb, d, m->w.wk + ld, d, o0, o1, n);
        es_k_matmul_rows(w->v, d, w->xb, d, m->w.wv + ld, d, o0, o1, n);
        for (int r = 0; r < n; r++) {
            es_lm_state *s = j->st[r];
            float *q = w->q + (size_t)r * d + o0, *k = w->k + (size_t)r * d + o0;
            es_k_rope(q, s->rope, j->pos[r], hs, hs, 1.0f);
            es_k_rope(k, s->rope, j->pos[r], hs, hs, 1.0f);
            size_t at = es_lm_kv_offset(c, l, hd, j->pos[r]);
            memcpy(s->kcache + at, k, (size_t)hs * sizeof(float));
            memcpy(s->vcache + at, w->v + (size_t)r * d + o0, (size_t)hs * sizeof(float));
        }
        for (int r = 0; r < n; r++) {
            const es_lm_state *s = j->st[r], *pre = s->prefix ? s->prefix : s;
            size_t at = es_lm_kv_offset(c, l, hd, 0);
            es_kv_view kv = {s->kcache + at, s->vcache + at, pre->kcache + at, pre->vcache + at,
                             s->prefix ? s->prefix_len : 0, hs};
            es_k_attend(w->xb2 + (size_t)r * d + o0, w->att + ((size_t)r * nh + hd) * T,
                        w->q + (size_t)r * d + o0, &kv, j->pos[r], hs);
        }
    }
}

/* Attention half of layer l: x += wo . attention(rmsnorm(x)). */
static void attention_block(const es_lm *m, es_lm_pool *pool, es_lm_rows *w, es_lm_state *const *st,
                            const int *pos, int n, int l)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim;
    size_t ld = (size_t)l * d * d;
    for (int r = 0; r < n; r++)
        es_k_rmsnorm(w->xb + (size_t)r * d, w->x + (size_t)r * d, m->w.rms_att + (size_t)l * d, d);
    layer_job j = {m, w, st, pos, n, l};
    double work = 3.0 * d * d * n;
    for (int r = 0; r < n; r++) work += 2.0 * (pos[r] + 1) * d;
    es_pool_for(pool, c->n_heads, 1, work, heads_range, &j);
    mm_run(pool, w->xb, w->xb2, m->w.wo + ld, d, d, n);
    for (size_t i = 0; i < (size_t)n * d; i++) w->x[i] += w->xb[i];
}

/* Hidden units a..b of every row: w1 and w3 rows, then SwiGLU on them
 * (elementwise, so a slice gives the bytes of the whole). */
static void ffn_up_range(void *ctx, long a, long b)
{
    const layer_job *j = ctx;
    const es_lm *m = j->m;
    es_lm_rows *w = j->w;
    int d = m->cfg.dim, h = m->cfg.hidden_dim, n = j->n;
    size_t lh = (size_t)j->layer * h * d;
    es_k_matmul_rows(w->hb, h, w->xb, d, m->w.w1 + lh, d, (int)a, (int)b, n);
    es_k_matmul_rows(w->hb2, h, w->xb, d, m->w.w3 + lh, d, (int)a, (int)b, n);
    for (int r = 0; r < n; r++)
        es_k_swiglu_fast(w->hb + (size_t)r * h + a, w->hb2 + (size_t)r * h + a, (int)(b - a));
}

/* SwiGLU half: x += w2(silu(w1 x) * w3 x), x normalised first. */
static void ffn_block(const es_lm *m, es_lm_pool *pool, es_lm_rows *w, int n, int l)
{
    int d = m->cfg.dim, h = m->cfg.hidden_dim;
    size_t lh = (size_t)l * h * d;
    for (int r = 0; r < n; r++)
        es_k_rmsnorm(w->xb + (size_t)r * d, w->x + (size_t)r * d, m->w.rms_ffn + (size_t)l * d, d);
    layer_job j = {m, w, NULL, NULL, n, l};
    es_pool_for(pool, h, h % 8 ? 1 : 8, 2.0 * h * d * n, ffn_up_range, &j);
    mm_run(pool, w->xb, w->hb, m->w.w2 + lh, h, d, n);
    for (size_t i = 0; i < (size_t)n * d; i++) w->x[i] += w->xb[i];
}

void es_lm_forward_rows(const es_lm *m, es_lm_pool *pool, es_lm_rows *w, es_lm_state *const *st,
                        const int *tok, const int *pos, int n, int logits_from)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim, V = c->vocab_size;
    for (int r = 0; r < n; r++)
        memcpy(w->x + (size_t)r * d, m->w.emb + (size_t)tok[r] * d, (size_t)d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        attention_block(m, pool, w, st, pos, n, l);
        ffn_block(m, pool, w, n, l);
    }
    if (logits_from < 0) logits_from = 0;
    for (int r = logits_from; r < n; r++)
        es_k_rmsnorm(w->x + (size_t)r * d, w->x + (size_t)r * d, m->w.rms_final, d);
    if (logits_from < n)
        mm_run(pool, w->logits + (size_t)logits_from * V, w->x + (size_t)logits_from * d, m->w.emb, d, V,
               n - logits_from);
}

/* One position through every layer; the caller owns positions, which is
 * what makes a probe's rollback free. */
const float *es_lm_forward(const es_lm *m, es_lm_state *s, int token, int pos)
{
    es_lm_forward_rows(m, s->pool, &s->one, &s, &token, &pos, 1, 0);
    return s->logits;
}

/* ------------------------------------------------------------ reference */

/* The plain version: naive loops, powf/cosf computed in place, no table,
 * no threads.  Slow on purpose; only the tests call it. */
static void ref_matvec(float *out, const float *x, const float *W, int n, int d)
{
    for (int i = 0; i < d; i++) {
        double sum = 0.0;
        for (int j = 0; j < n; j++) sum += (double)W[(size_t)i * n + j] * x[j];
        out[i] = (float)sum;
    }
}

/* Double accumulation: the reference should be more exact than the kernel. */
static void ref_rmsnorm(float *out, const float *x, const float *g, int n)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + ES_RMS_EPS);
    for (int i = 0; i < n; i++) out[i] = (float)(x[i] * r * g[i]);
}

/* Recomputes the angles with pow/cos/sin instead of the table, so a wrong
 * table would show up as a mismatch. */
static void ref_rope(float *v, int pos, int d, int hs)
{
    for (int i = 0; i < d; i += 2) {
        int hd = i % hs;
        double freq = 1.0 / pow(10000.0, (double)hd / hs), a = pos * freq;
        double x0 = v[i], x1 = v[i + 1];
        v[i] = (float)(x0 * cos(a) - x1 * sin(a));
        v[i + 1] = (float)(x0 * sin(a) + x1 * cos(a));
    }
}

/* Two-pass softmax in double over the cached keys, head by head. */
static void ref_attention(const es_lm *m, es_lm_state *s, int l, int pos)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim, hs = d / c->n_heads;
    for (int hd = 0; hd < c->n_heads; hd++) {
        double w[8192], mx = -1e300, z = 0.0;
        for (int t = 0; t <= pos; t++) {
            const float *k = s->kcache + es_lm_kv_offset(c, l, hd, t);
            double dot = 0.0;
            for (int i = 0; i < hs; i++) dot += (double)s->one.q[hd * hs + i] * k[i];
            w[t] = dot / sqrt((double)hs);
            if (w[t] > mx) mx = w[t];
        }
        for (int t = 0; t <= pos; t++) { w[t] = exp(w[t] - mx); z += w[t]; }
        for (int i = 0; i < hs; i++) {
            double acc = 0.0;
            for (int t = 0; t <= pos; t++)
                acc += w[t] / z * s->vcache[es_lm_kv_offset(c, l, hd, t) + (size_t)i];
            s->one.xb[hd * hs + i] = (float)acc;
        }
    }
}

/* The layer written the way the paper reads: no fusion, no threads. */
static void ref_layer(const es_lm *m, es_lm_state *s, int l, int pos)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim, h = c->hidden_dim, hs = d / c->n_heads;
    size_t ld = (size_t)l * d * d, lh = (size_t)l * h * d;
    float *k = s->one.k, *v = s->one.v;
    ref_rmsnorm(s->one.xb, s->one.x, m->w.rms_att + (size_t)l * d, d);
    ref_matvec(s->one.q, s->one.xb, m->w.wq + ld, d, d);
    ref_matvec(k, s->one.xb, m->w.wk + ld, d, d);
    ref_matvec(v, s->one.xb, m->w.wv + ld, d, d);
    ref_rope(s->one.q, pos, d, hs);
    ref_rope(k, pos, d, hs);
    for (int hd = 0; hd < c->n_heads; hd++) {
        memcpy(s->kcache + es_lm_kv_offset(c, l, hd, pos), k + hd * hs, (size_t)hs * sizeof(float));
        memcpy(s->vcache + es_lm_kv_offset(c, l, hd, pos), v + hd * hs, (size_t)hs * sizeof(float));
    }
    ref_attention(m, s, l, pos);
    ref_matvec(s->one.xb2, s->one.xb, m->w.wo + ld, d, d);
    for (int i = 0; i < d; i++) s->one.x[i] += s->one.xb2[i];
    ref_rmsnorm(s->one.xb, s->one.x, m->w.rms_ffn + (size_t)l * d, d);
    ref_matvec(s->one.hb, s->one.xb, m->w.w1 + lh, d, h);
    ref_matvec(s->one.hb2, s->one.xb, m->w.w3 + lh, d, h);
    for (int i = 0; i < h; i++)
        s->one.hb[i] = (float)(s->one.hb[i] / (1.0 + exp(-(double)s->one.hb[i])) * s->one.hb2[i]);
    ref_matvec(s->one.xb, s->one.hb, m->w.w2 + lh, h, d);
    for (int i = 0; i < d; i++) s->one.x[i] += s->one.xb[i];
}

/* Same contract as es_lm_forward; the stack buffer of ref_attention
 * bounds pos, which the tests respect. */
const float *es_lm_forward_ref(const es_lm *m, es_lm_state *s, int token, int pos)
{
    const es_lm_config *c = &m->cfg;
    if (pos >= 8192) return NULL;
    memcpy(s->one.x, m->w.emb + (size_t)token * c->dim, (size_t)c->dim * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) ref_layer(m, s, l, pos);
    ref_rmsnorm(s->one.x, s->one.x, m->w.rms_final, c->dim);
    ref_matvec(s->logits, s->one.x, m->w.emb, c->dim, c->vocab_size);
    return s->logits;
}
