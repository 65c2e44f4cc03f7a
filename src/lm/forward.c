/* forward.c - inference: one token at a time against a KV cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"


/* One malloc carved into every buffer: a state is cheap to make and free
 * and holds nothing per token. */
int es_lm_state_new(const es_lm *m, es_lm_state **out)
{
    const es_lm_config *c = &m->cfg;
    size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim, T = (size_t)c->seq_len;
    size_t hs = d / (size_t)c->n_heads, kv = (size_t)c->n_layers * T * d;
    size_t total = 4 * d + 2 * h + (size_t)c->n_heads * T + (size_t)c->vocab_size +
                   2 * kv + T * hs;
    es_lm_state *s = calloc(1, sizeof *s);
    float *p = s ? calloc(total, sizeof(float)) : NULL;
    if (!p) { free(s); return ES_ENOMEM; }
    s->cfg = *c;
    s->mem = p;
    s->x = p; p += d;
    s->xb = p; p += d;
    s->xb2 = p; p += d;
    s->q = p; p += d;
    s->hb = p; p += h;
    s->hb2 = p; p += h;
    s->att = p; p += (size_t)c->n_heads * T;
    s->logits = p; p += (size_t)c->vocab_size;
    s->kcache = p; p += kv;
    s->vcache = p; p += kv;
    s->rope = p;
    float *rope = es_lm_rope_table(c);
    if (!rope) { es_lm_state_free(s); return ES_ENOMEM; }
    memcpy(s->rope, rope, T * hs * sizeof(float));
    free(rope);
    *out = s;
    return ES_OK;
}

/* Frees the single carved block; NULL is a no-op like free(). */
void es_lm_state_free(es_lm_state *s)
{
    if (!s) return;
    free(s->mem);
    free(s);
}

/* The cache is allocated for the whole context up front, so this is
 * what a sequence holds whatever its length (for memory reports). */
size_t es_lm_state_kv_bytes(const es_lm_state *s)
{
    return 2 * (size_t)s->cfg.n_layers * (size_t)s->cfg.seq_len * (size_t)s->cfg.dim *
           sizeof(float);
}

/* Causal attention of one head at `pos` over the cached keys/values. */
static void attend_head(const es_lm_state *s, int l, int hd, int pos)
{
    const es_lm_config *c = &s->cfg;
    int d = c->dim, hs = d / c->n_heads, T = c->seq_len;
    es_k_attend(s->xb + hd * hs, s->att + (size_t)hd * T, s->q + hd * hs,
                s->kcache + (size_t)l * T * d + hd * hs, s->vcache + (size_t)l * T * d + hd * hs,
                pos, hs, d);
}

/* Writes K/V of this position into the cache before attending, so the
 * position attends to itself; heads run in parallel once the history is long
 * enough to pay for a fork. */
static void attention_block(const es_lm *m, es_lm_state *s, int l, int pos)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim, hs = d / c->n_heads, T = c->seq_len;
    size_t ld = (size_t)l * d * d;
    float *k = s->kcache + ((size_t)l * T + pos) * d;
    float *v = s->vcache + ((size_t)l * T + pos) * d;
    es_k_rmsnorm(s->xb, s->x, m->w.rms_att + (size_t)l * d, d);
    es_k_matvec(s->q, s->xb, m->w.wq + ld, d, d);
    es_k_matvec(k, s->xb, m->w.wk + ld, d, d);
    es_k_matvec(v, s->xb, m->w.wv + ld, d, d);
    es_k_rope(s->q, s->rope, pos, d, hs, 1.0f);
    es_k_rope(k, s->rope, pos, d, hs, 1.0f);
#pragma omp parallel for schedule(static) if ((long)(pos + 1) * d >= 16384 && es_k_threads() > 1)
    for (int hd = 0; hd < c->n_heads; hd++) attend_head(s, l, hd, pos);
    es_k_matvec(s->xb2, s->xb, m->w.wo + ld, d, d);
    for (int i = 0; i < d; i++) s->x[i] += s->xb2[i];
}

/* SwiGLU: w2(silu(w1 x) * w3 x), fused into one pass over the hidden. */
static void ffn_block(const es_lm *m, es_lm_state *s, int l)
{
    int d = m->cfg.dim, h = m->cfg.hidden_dim;
    size_t lh = (size_t)l * h * d;
    es_k_rmsnorm(s->xb, s->x, m->w.rms_ffn + (size_t)l * d, d);
    es_k_matvec(s->hb, s->xb, m->w.w1 + lh, d, h);
    es_k_matvec(s->hb2, s->xb, m->w.w3 + lh, d, h);
    es_k_swiglu_fast(s->hb, s->hb2, h);
    es_k_matvec(s->xb, s->hb, m->w.w2 + lh, h, d);
    for (int i = 0; i < d; i++) s->x[i] += s->xb[i];
}

/* One position through every layer; the caller owns positions, which is
 * what makes a probe's rollback free. */
const float *es_lm_forward(const es_lm *m, es_lm_state *s, int token, int pos)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim;
    memcpy(s->x, m->w.emb + (size_t)token * d, (size_t)d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        attention_block(m, s, l, pos);
        ffn_block(m, s, l);
    }
    es_k_rmsnorm(s->x, s->x, m->w.rms_final, d);
    es_k_matvec(s->logits, s->x, m->w.emb, d, c->vocab_size);
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
    int d = c->dim, hs = d / c->n_heads, T = c->seq_len;
    for (int hd = 0; hd < c->n_heads; hd++) {
        double w[8192], mx = -1e300, z = 0.0;
        for (int t = 0; t <= pos; t++) {
            const float *k = s->kcache + ((size_t)l * T + t) * d + hd * hs;
            double dot = 0.0;
            for (int i = 0; i < hs; i++) dot += (double)s->q[hd * hs + i] * k[i];
            w[t] = dot / sqrt((double)hs);
            if (w[t] > mx) mx = w[t];
        }
        for (int t = 0; t <= pos; t++) { w[t] = exp(w[t] - mx); z += w[t]; }
        for (int i = 0; i < hs; i++) {
            double acc = 0.0;
            for (int t = 0; t <= pos; t++)
                acc += w[t] / z * s->vcache[((size_t)l * T + t) * d + hd * hs + i];
            s->xb[hd * hs + i] = (float)acc;
        }
    }
}

/* The layer written the way the paper reads: no fusion, no threads. */
static void ref_layer(const es_lm *m, es_lm_state *s, int l, int pos)
{
    const es_lm_config *c = &m->cfg;
    int d = c->dim, h = c->hidden_dim, hs = d / c->n_heads, T = c->seq_len;
    size_t ld = (size_t)l * d * d, lh = (size_t)l * h * d;
    float *k = s->kcache + ((size_t)l * T + pos) * d, *v = s->vcache + ((size_t)l * T + pos) * d;
    ref_rmsnorm(s->xb, s->x, m->w.rms_att + (size_t)l * d, d);
    ref_matvec(s->q, s->xb, m->w.wq + ld, d, d);
    ref_matvec(k, s->xb, m->w.wk + ld, d, d);
    ref_matvec(v, s->xb, m->w.wv + ld, d, d);
    ref_rope(s->q, pos, d, hs);
    ref_rope(k, pos, d, hs);
    ref_attention(m, s, l, pos);
    ref_matvec(s->xb2, s->xb, m->w.wo + ld, d, d);
    for (int i = 0; i < d; i++) s->x[i] += s->xb2[i];
    ref_rmsnorm(s->xb, s->x, m->w.rms_ffn + (size_t)l * d, d);
    ref_matvec(s->hb, s->xb, m->w.w1 + lh, d, h);
    ref_matvec(s->hb2, s->xb, m->w.w3 + lh, d, h);
    for (int i = 0; i < h; i++)
        s->hb[i] = (float)(s->hb[i] / (1.0 + exp(-(double)s->hb[i])) * s->hb2[i]);
    ref_matvec(s->xb, s->hb, m->w.w2 + lh, h, d);
    for (int i = 0; i < d; i++) s->x[i] += s->xb[i];
}

/* Same contract as es_lm_forward; the stack buffer of ref_attention
 * bounds pos, which the tests respect. */
const float *es_lm_forward_ref(const es_lm *m, es_lm_state *s, int token, int pos)
{
    const es_lm_config *c = &m->cfg;
    if (pos >= 8192) return NULL;
    memcpy(s->x, m->w.emb + (size_t)token * c->dim, (size_t)c->dim * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) ref_layer(m, s, l, pos);
    ref_rmsnorm(s->x, s->x, m->w.rms_final, c->dim);
    ref_matvec(s->logits, s->x, m->w.emb, c->dim, c->vocab_size);
    return s->logits;
}
