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

/* Inference state (forward.c); generate.c saves and restores its logits. */
struct es_lm_state {
    es_lm_config cfg;
    float *x, *xb, *xb2;   /* [dim] residual stream and scratch */
    float *hb, *hb2;       /* [hidden] */
    float *q;              /* [dim] */
    float *att;            /* [n_heads][seq_len] */
    float *logits;         /* [vocab] */
    float *kcache, *vcache;/* [L][seq_len][dim] */
    float *rope;           /* [seq_len][head_size] */
    float *mem;            /* the one allocation the others point into */
};

size_t es_lm_count_params(const es_lm_config *cfg);
void es_lm_map(const es_lm_config *cfg, float *base, es_lm_weights *w);
/* 1 when parameter index i belongs to an RMSNorm gain (no weight decay). */
int es_lm_is_norm_param(const es_lm_config *cfg, size_t i);

/* RoPE table: cos/sin of pos * 10000^(-2i/head) for pos < seq, i < head/2. */
float *es_lm_rope_table(const es_lm_config *cfg);

#define ES_RMS_EPS 1e-5f

/* Kernels (kernels.c).  out[d] = W[d][:n] . x ; rows split across threads. */
void es_k_matvec(float *out, const float *x, const float *W, int n, int d);
/* out[r][d] = inp[r][:n] . W[d][:n] for r < rows (training forward). */
void es_k_matmul_fwd(float *out, const float *inp, const float *W, int rows, int n, int d);
/* dinp[r][:n] += dout[r][:d] . W[:d][:n] */
void es_k_matmul_bwd_inp(float *dinp, const float *dout, const float *W, int rows, int n, int d);
/* dW[d][:n] += sum_r dout[r][d] * inp[r][:n] */
void es_k_matmul_bwd_w(float *dW, const float *dout, const float *inp, int rows, int n, int d);
float es_k_dot(const float *a, const float *b, int n);
void es_k_axpy(float *y, float a, const float *x, int n);
/* Returns 1/rms(x) and writes out = x * r * g. */
float es_k_rmsnorm(float *out, const float *x, const float *g, int n);
void es_k_softmax(float *x, int n);
/* OpenMP threads a parallel region would get (1 without OpenMP). */
int es_k_threads(void);
/* Inference-only versions (approximate exp, see kernels.c); training keeps
 * the exact ones so that the weights do not depend on them. */
void es_k_softmax_fast(float *x, int n);
/* h = silu(h) * h3 */
void es_k_swiglu_fast(float *h, const float *h3, int n);
/* out[:hs] = softmax(q . k_t * scale) . v_t over t <= pos; att: scratch. */
void es_k_attend(float *out, float *att, const float *q, const float *kc, const float *vc,
                 int pos, int hs, int stride);
/* Rotate pairs of v (dim floats, heads of hs) by the table row of pos;
 * sign = -1 rotates back (the backward pass). */
void es_k_rope(float *v, const float *rope, int pos, int dim, int hs, float sign);

#endif
