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

/* Up to three weight matrices applied to the same input rows in one pool
 * job (q, k, v; or w1, w3): one hand-off instead of three. */
typedef struct mm_job {
    const float *in;
    int ldi, n, rows;
    int nmat;
    const float *W[3];
    float *out[3];
    int d[3], ldo[3];
} mm_job;

/* Output rows of all the job's matrices, numbered end to end; ranges start
 * at multiples of 4 within each matrix because every d is. */
static void mm_job_range(void *ctx, long i0, long i1)
{
    const mm_job *j = ctx;
    long base = 0;
    for (int k = 0; k < j->nmat; base += j->d[k], k++) {
        long a = i0 > base ? i0 : base, b = i1 < base + j->d[k] ? i1 : base + j->d[k];
        if (a < b)
            es_k_matmul_rows(j->out[k], j->ldo[k], j->in, j->ldi, j->W[k], j->n, (int)(a - base),
                             (int)(b - base), j->rows);
    }
}

/* The grain of 4 keeps a matrix's four-row tiles whole when its row count is
 * a multiple of 4; results do not depend on the split either way. */
static void mm_run(es_lm_pool *pool, mm_job *j)
{
    long total = 0;
    for (int k = 0; k < j->nmat; k++) total += j->d[k];
    int grain = 4;
    for (int k = 0; k < j->nmat; k++) if (j->d[k] % 4) grain = 1;
    es_pool_for(pool, total, grain, (double)total * j->n * j->rows, mm_job_range, j);
}

/* What attention needs for the rows of one step. */
typedef struct att_job {
    const es_lm_config *c;
    es_lm_rows *w;
    es_lm_state *const *st;
    const int *pos;
    int layer;
} att_job;

/* Tasks are (row, head) pairs. */
static void att_range(void *ctx, long i0, long i1)
{
    const att_job *a = ctx;
    const es_lm_config *c = a->c;
    int d = c->dim, nh = c->n_heads, hs = d / nh, T = c->seq_len;
    for (long i = i0; i < i1; i++) {
        int r = (int)(i / nh), hd = (int)(i % nh);
        const es_lm_state *s = a->st[r], *pre = s->prefix ? s->prefix : s;
        size_t at = es_lm_kv_offset(c, a->layer, hd, 0);
        es_kv_view kv = {s->kcache + at, s->vcache + at, pre->kcache + at, pre->vcache + at,
                         s->prefix ? s->prefix_len : 0, hs};
        es_k_attend(a->w->xb + (size_t)r * d + hd * hs, a->w->att + ((size_t)r * nh + hd) * T,
                    a->w->q + (size_t)r * d + hd * hs, &kv, a->pos[r], hs);
    }
}

/* Attention half of layer l: K/V of every row go into the caches before
 * any row attends. */
static void attention_block(const es_lm *m, es_lm_pool *pool, es_lm_rows *w, es_lm_state *const *st,
                            const int *pos, int n, int l)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim, hs = d / c->n_heads;
    size_t ld = (size_t)l * d * d;
    for (int r = 0; r < n; r++)
        es_k_rmsnorm(w->xb + (size_t)r * d, w->x + (size_t)r * d, m->w.rms_att + (size_t)l * d, d);
    mm_job qkv = {w->xb, d, d, n, 3, {m->w.wq + ld, m->w.wk + ld, m->w.wv + ld},
                  {w->q, w->k, w->v}, {d, d, d}, {d, d, d}};
    mm_run(pool, &qkv);
    for (int r = 0; r < n; r++) {
        float *q = w->q + (size_t)r * d, *k = w->k + (size_t)r * d;
        es_k_rope(q, st[r]->rope, pos[r], d, hs, 1.0f);
        es_k_rope(k, st[r]->rope, pos[r], d, hs, 1.0f);
        for (int hd = 0; hd < c->n_heads; hd++) {
            size_t at = es_lm_kv_offset(c, l, hd, pos[r]);
            memcpy(st[r]->kcache + at, k + hd * hs, (size_t)hs * sizeof(float));
            memcpy(st[r]->vcache + at, w->v + (size_t)r * d + hd * hs, (size_t)hs * sizeof(float));
        }
    }
    att_job a = {c, w, st, pos, l};
    double work = 0;
    for (int r = 0; r < n; r++) work += 2.0 * (pos[r] + 1) * d;
    es_pool_for(pool, (long)n * c->n_heads, 1, work, att_range, &a);
    mm_job o = {w->xb, d, d, n, 1, {m->w.wo + ld}, {w->xb2}, {d}, {d}};
    mm_run(pool, &o);
    for (size_t i = 0; i < (size_t)n * d; i++) w->x[i] += w->xb2[i];
}

/* SwiGLU half: w2(silu(w1 x) * w3 x). */
static void ffn_block(const es_lm *m, es_lm_pool *pool, es_lm_rows *w, int n, int l)
{
    int d = m->cfg.dim, h = m->cfg.hidden_dim;
    size_t lh = (size_t)l * h * d;
    for (int r = 0; r < n; r++)
        es_k_rmsnorm(w->xb + (size_t)r * d, w->x + (size_t)r * d, m->w.rms_ffn + (size_t)l * d, d);
    mm_job up = {w->xb, d, d, n, 2, {m->w.w1 + lh, m->w.w3 + lh}, {w->hb, w->hb2}, {h, h}, {h, h}};
    mm_run(pool, &up);
    es_k_swiglu_fast(w->hb, w->hb2, n * h);
    mm_job down = {w->hb, h, h, n, 1, {m->w.w2 + lh}, {w->xb}, {d}, {d}};
    mm_run(pool, &down);
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
    if (logits_from < n) {
        mm_job cls = {w->x + (size_t)logits_from * d, d, d, n - logits_from, 1, {m->w.emb},
                      {w->logits + (size_t)logits_from * V}, {V}, {V}};
        mm_run(pool, &cls);
    }
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
