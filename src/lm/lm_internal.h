/* lm_internal.h - shared pieces of the lm layer: weight layout, kernels. */
#ifndef ES_LM_INTERNAL_H
#define ES_LM_INTERNAL_H

#include <stddef.h>
#include "earlystop_lm.h"

/* Pointers into one flat parameter array (the file order).  The same layout
 * maps parameters, gradients and AdamW moments. */
typedef struct es_lm_weights {
    float *emb;       /* [vocab][dim], also the classifier */
    float *rms_att;   /* [L][dim] */
    float *wq;        /* [L][dim][dim] */
    float *wk;
    float *wv;
    float *wo;
    float *rms_ffn;   /* [L][dim] */
    float *w1;        /* [L][hidden][dim] */
    float *w2;        /* [L][dim][hidden] */
    float *w3;        /* [L][hidden][dim] */
    float *rms_final; /* [dim] */
} es_lm_weights;

struct es_lm {
    es_lm_config cfg;
    size_t n_params;
    float *params;     /* one allocation, carved by es_lm_map */
    es_lm_weights w;
};

/* Activations of up to `cap` rows, one token each: the batch of a forward
 * step (forward.c).  Rows may belong to different states (samples drawn in
 * lock-step) or to one state at successive positions (a prompt). */
typedef struct es_lm_rows {
    int cap;
    float *x, *xb, *xb2;   /* [cap][dim] residual stream and scratch */
    float *q, *k, *v;      /* [cap][dim] */
    float *hb, *hb2;       /* [cap][hidden] */
    float *att;            /* [cap][n_heads][seq_len] */
    float *logits;         /* [cap][vocab] */
    float *mem;
} es_lm_rows;

int es_lm_rows_init(es_lm_rows *w, const es_lm_config *c, int cap);
void es_lm_rows_free(es_lm_rows *w);

/* One sequence: its KV cache, the RoPE table, and a one-row workspace for
 * es_lm_forward. */
struct es_lm_state {
    es_lm_config cfg;
    es_lm_pool *pool;      /* borrowed; NULL = the caller's thread only */
    const struct es_lm_state *prefix;  /* positions < prefix_len live in its cache */
    int prefix_len;
    float *kcache, *vcache;/* [L][n_heads][seq_len][head_size] (es_lm_kv_offset) */
    float *rope;           /* [seq_len][head_size] */
    float *logits;         /* = one.logits: what es_lm_forward returns */
    es_lm_rows one;
    float *mem;            /* cache and table */
};

/* Where (layer l, head h, position pos) starts in a KV cache: a head's
 * keys over the positions are contiguous, so attention streams them. */
static inline size_t es_lm_kv_offset(const es_lm_config *c, int l, int h, int pos)
{
    size_t hs = (size_t)(c->dim / c->n_heads);
    return (((size_t)l * (size_t)c->n_heads + (size_t)h) * (size_t)c->seq_len + (size_t)pos) * hs;
}

/* Feed rows r < n: token tok[r] of state st[r] at position pos[r].  Within a
 * layer every row's K/V is written before any row attends, so rows of one
 * state at successive positions (a prompt) see each other causally.  Logits
 * are computed for rows >= logits_from only (into w->logits[r]).  Each
 * output element is computed by the same code whatever n and the threads,
 * so a row's logits do not depend on what else is in the batch. */
void es_lm_forward_rows(const es_lm *m, es_lm_pool *pool, es_lm_rows *w, es_lm_state *const *st,
                        const int *tok, const int *pos, int n, int logits_from);

size_t es_lm_count_params(const es_lm_config *cfg);
void es_lm_map(const es_lm_config *cfg, float *base, es_lm_weights *w);
/* 1 when parameter index i belongs to an RMSNorm gain (no weight decay). */
int es_lm_is_norm_param(const es_lm_config *cfg, size_t i);

/* RoPE table: cos/sin of pos * 10000^(-2i/head) for pos < seq, i < head/2. */
float *es_lm_rope_table(const es_lm_config *cfg);

#define ES_RMS_EPS 1e-5f

/* The sampler (generate.c), shared with the serving batch (batch.c) so that
 * both draw the same token from the same logits and stream. */
/* probs = softmax(logits / temp); temp 0 counts as 1 (greedy keeps meaningful
 * probabilities). */
void es_lm_scaled_softmax(float *probs, const float *logits, int n, float temp);
/* Largest entry, ties to the lower index. */
int es_lm_argmax(const float *x, int n);
/* Inverse-CDF draw with exactly one uniform. */
int es_lm_sample_token(const float *probs, int n, es_rng *r);

/* ------------------------------------------------------------ threads */

/* Below this many multiply-adds a loop stays on the calling thread: a
 * hand-off costs a microsecond or so, far more on a busy machine. */
#define ES_POOL_MIN_WORK 8192.0

/* Chunk c of a job; chunks are independent and each runs on one thread. */
typedef void (*es_pool_fn)(void *ctx, int chunk);
/* Runs fn for c < chunks on the pool's threads and the caller; returns when
 * all are done.  Inline when p is NULL, single-threaded or already busy, or
 * when the pool measured that its workers do not help (a busy machine).
 * work: the job's size in any unit proportional to its time (multiply-adds),
 * for that measurement. */
void es_pool_run(es_lm_pool *p, int chunks, double work, es_pool_fn fn, void *ctx);
/* fn(ctx, i0, i1) over [0, n) in ranges that start at multiples of grain;
 * one range on the caller when work (multiply-adds) is small. */
typedef void (*es_range_fn)(void *ctx, long i0, long i1);
void es_pool_for(es_lm_pool *p, long n, long grain, double work, es_range_fn fn, void *ctx);

/* ------------------------------------------------------------ kernels */

/* Training kernels (kernels.c), threaded over the pool (NULL: one thread).
 * out[r][d] = inp[r][:n] . W[d][:n] for r < rows. */
void es_k_matmul_fwd(es_lm_pool *p, float *out, const float *inp, const float *W, int rows, int n, int d);
/* dinp[r][:n] += dout[r][:d] . W[:d][:n] */
void es_k_matmul_bwd_inp(es_lm_pool *p, float *dinp, const float *dout, const float *W, int rows, int n, int d);
/* dW[d][:n] += sum_r dout[r][d] * inp[r][:n] */
void es_k_matmul_bwd_w(es_lm_pool *p, float *dW, const float *dout, const float *inp, int rows, int n, int d);
float es_k_dot(const float *a, const float *b, int n);
void es_k_axpy(float *y, float a, const float *x, int n);
/* Returns 1/rms(x) and writes out = x * r * g. */
float es_k_rmsnorm(float *out, const float *x, const float *g, int n);
void es_k_softmax(float *x, int n);
/* Rotate pairs of v (dim floats, heads of hs) by the table row of pos;
 * sign = -1 rotates back (the backward pass). */
void es_k_rope(float *v, const float *rope, int pos, int dim, int hs, float sign);

/* Inference kernels: AVX2+FMA where the CPU has it (checked at run time),
 * portable C elsewhere.  Training keeps the exact expf, so the weights it
 * produces do not depend on the approximate exp below. */

/* y[i] = exp(x[i]) by range reduction and a degree-5 polynomial (Cephes'
 * coefficients): within 2 ulp of exp for x in [-87, 88], clamped outside;
 * NaN in gives NaN out.  es_k_exp dispatches, _portable is the fallback. */
void es_k_exp(float *y, const float *x, int n);
void es_k_exp_portable(float *y, const float *x, int n);
void es_k_softmax_fast(float *x, int n);
void es_k_softmax_fast_portable(float *x, int n);
/* h = silu(h) * h3 */
void es_k_swiglu_fast(float *h, const float *h3, int n);
void es_k_swiglu_fast_portable(float *h, const float *h3, int n);
/* out[r*ldo + o] = W[o][:n] . in[r*ldi : +n] for o in [o0, o1), r < rows.
 * Each weight row is loaded once for all rows (a matrix-matrix product for a
 * batch); each output is summed in the same order whatever rows, o0 and o1
 * are, so a batch gives the bytes of one row at a time. */
void es_k_matmul_rows(float *out, int ldo, const float *in, int ldi, const float *W, int n,
                      int o0, int o1, int rows);
/* Where the key and value of position t are: below plen in a prefix shared
 * by the samples of a batch (pk, pv: the prompt, computed once), else in the
 * sequence's own cache (k, v); rows `stride` floats apart. */
typedef struct es_kv_view {
    const float *k, *v, *pk, *pv;
    int plen, stride;
} es_kv_view;

static inline const float *es_kv_key(const es_kv_view *c, int t)
{
    return (t < c->plen ? c->pk : c->k) + (size_t)t * (size_t)c->stride;
}

static inline const float *es_kv_value(const es_kv_view *c, int t)
{
    return (t < c->plen ? c->pv : c->v) + (size_t)t * (size_t)c->stride;
}

/* out[:hs] = softmax(q . k_t / sqrt(hs)) . v_t over t <= pos; att: scratch
 * of pos + 1 floats.  Each position's score and each accumulator's order do
 * not depend on where its key and value live. */
void es_k_attend(float *out, float *att, const float *q, const es_kv_view *kv, int pos, int hs);

#endif
