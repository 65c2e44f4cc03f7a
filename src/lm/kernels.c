/* kernels.c - the numeric inner loops of the model (matmuls, norms, RoPE).
 *
 * Every output element is computed by one thread in a fixed order, so the
 * results do not depend on the number of threads (training on 2 cores and
 * on 16 gives the same weights).  The hot loops are compiled twice on x86-64
 * (AVX2+FMA and baseline) and picked at run time, since the build uses no
 * -march flag. */
#include <math.h>
#include <string.h>

#include "lm_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define ES_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ES_HOT
#endif

/* Threads pay off only when a loop has this many multiply-adds. */
#define ES_PAR_MIN 8192L

ES_HOT float es_k_dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

ES_HOT void es_k_axpy(float *y, float a, const float *x, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* Four rows at once share each load of x: matvec is bandwidth bound. */
ES_HOT static void matvec_rows(float *out, const float *x, const float *W, int n, int d0, int d1)
{
    int d = d0;
    for (; d + 4 <= d1; d += 4) {
        const float *w0 = W + (size_t)d * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int i = 0; i < n; i++) {
            s0 += w0[i] * x[i];
            s1 += w1[i] * x[i];
            s2 += w2[i] * x[i];
            s3 += w3[i] * x[i];
        }
        out[d] = s0; out[d + 1] = s1; out[d + 2] = s2; out[d + 3] = s3;
    }
    for (; d < d1; d++) out[d] = es_k_dot(W + (size_t)d * n, x, n);
}

/* One parallel region, rows split in blocks of 4 so each thread's range
 * keeps the 4-row kernel busy. */
void es_k_matvec(float *out, const float *x, const float *W, int n, int d)
{
    int blocks = (d + 3) / 4;
#pragma omp parallel for schedule(static) if ((long)n * d >= ES_PAR_MIN)
    for (int b = 0; b < blocks; b++) {
        int d1 = 4 * b + 4 < d ? 4 * b + 4 : d;
        matvec_rows(out, x, W, n, 4 * b, d1);
    }
}

/* Forward of a batch: 4 input rows per weight row load. */
ES_HOT static void matmul_fwd_block(float *out, const float *inp, const float *W,
                                    int r0, int r1, int n, int d)
{
    for (int o = 0; o < d; o++) {
        const float *w = W + (size_t)o * n;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            const float *a0 = inp + (size_t)r * n, *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int i = 0; i < n; i++) {
                s0 += a0[i] * w[i];
                s1 += a1[i] * w[i];
                s2 += a2[i] * w[i];
                s3 += a3[i] * w[i];
            }
            out[(size_t)r * d + o] = s0;
            out[(size_t)(r + 1) * d + o] = s1;
            out[(size_t)(r + 2) * d + o] = s2;
            out[(size_t)(r + 3) * d + o] = s3;
        }
        for (; r < r1; r++) out[(size_t)r * d + o] = es_k_dot(inp + (size_t)r * n, w, n);
    }
}

void es_k_matmul_fwd(float *out, const float *inp, const float *W, int rows, int n, int d)
{
    int blocks = (rows + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        int r1 = 16 * b + 16 < rows ? 16 * b + 16 : rows;
        matmul_fwd_block(out, inp, W, 16 * b, r1, n, d);
    }
}

ES_HOT static void matmul_bwd_inp_row(float *dinp, const float *dout, const float *W, int n, int d)
{
    for (int o = 0; o < d; o++) {
        float g = dout[o];
        const float *w = W + (size_t)o * n;
#pragma omp simd
        for (int i = 0; i < n; i++) dinp[i] += g * w[i];
    }
}

void es_k_matmul_bwd_inp(float *dinp, const float *dout, const float *W, int rows, int n, int d)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        matmul_bwd_inp_row(dinp + (size_t)r * n, dout + (size_t)r * d, W, n, d);
}

ES_HOT static void matmul_bwd_w_row(float *dw, const float *dout, const float *inp,
                                    int rows, int n, int d, int o)
{
    for (int r = 0; r < rows; r++) {
        float g = dout[(size_t)r * d + o];
        if (g == 0.0f) continue;
        const float *a = inp + (size_t)r * n;
#pragma omp simd
        for (int i = 0; i < n; i++) dw[i] += g * a[i];
    }
}

void es_k_matmul_bwd_w(float *dW, const float *dout, const float *inp, int rows, int n, int d)
{
#pragma omp parallel for schedule(static)
    for (int o = 0; o < d; o++)
        matmul_bwd_w_row(dW + (size_t)o * n, dout, inp, rows, n, d, o);
}

float es_k_rmsnorm(float *out, const float *x, const float *g, int n)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + ES_RMS_EPS);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * g[i];
    return r;
}

void es_k_softmax(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    float s = 0.0f;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); s += x[i]; }
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void es_k_rope(float *v, const float *rope, int pos, int dim, int hs, float sign)
{
    const float *row = rope + (size_t)pos * hs;   /* hs/2 cos then hs/2 sin */
    int half = hs / 2;
    for (int i = 0; i < dim; i += 2) {
        int j = (i % hs) / 2;
        float c = row[j], s = sign * row[half + j];
        float a = v[i], b = v[i + 1];
        v[i] = a * c - b * s;
        v[i + 1] = a * s + b * c;
    }
}
