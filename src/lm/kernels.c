/* kernels.c - the numeric inner loops of the model (matmuls, norms, RoPE).
 *
 * Every output element is computed by one thread in a fixed order, so the
 * results do not depend on the number of threads (training on 2 cores and
 * on 16 gives the same weights).  The hot loops are compiled twice on x86-64
 * (AVX2+FMA and baseline) and picked at run time, since the build uses no
 * -march flag. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lm_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define ES_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ES_HOT
#endif

/* Lets callers skip entering a parallel region that would run on one thread. */
int es_k_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Threads pay off only when a loop has this many multiply-adds (a fork and
 * join costs microseconds; on a busy machine much more). */
#define ES_PAR_MIN 8192L
#define ES_PAR_MIN_BATCH 65536L

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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ES_HAVE_AVX2_PATH 1

__attribute__((target("avx2,fma"))) static float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The inference matvec with explicit AVX2 FMAs: the build is strict C11, so
 * the compiler may not fuse a*b+c on its own, and its omp-simd reductions
 * over four rows spill to the stack.  Four rows share each load of x. */
__attribute__((target("avx2,fma"))) static void matvec_rows_avx2(float *out, const float *x,
                                                                 const float *W, int n, int d0, int d1)
{
    int n8 = n & ~7, d = d0;
    for (; d + 4 <= d1; d += 4) {
        const float *w0 = W + (size_t)d * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < n8; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
        }
        float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
        for (int i = n8; i < n; i++) {
            s0 += w0[i] * x[i]; s1 += w1[i] * x[i]; s2 += w2[i] * x[i]; s3 += w3[i] * x[i];
        }
        out[d] = s0; out[d + 1] = s1; out[d + 2] = s2; out[d + 3] = s3;
    }
    for (; d < d1; d++) {
        const float *w = W + (size_t)d * n;
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < n8; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a);
        float s = hsum8(a);
        for (int i = n8; i < n; i++) s += w[i] * x[i];
        out[d] = s;
    }
}
#endif

/* Picked once per call: the CPU check reads a word libgcc filled at start. */
static void matvec_range(float *out, const float *x, const float *W, int n, int d0, int d1)
{
#ifdef ES_HAVE_AVX2_PATH
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        matvec_rows_avx2(out, x, W, n, d0, d1);
        return;
    }
#endif
    matvec_rows(out, x, W, n, d0, d1);
}

/* One call of the row kernel per thread, on a contiguous range that starts
 * at a multiple of 4: rows group into fours the same way on any thread
 * count (so results never depend on it), and the kernel is entered once per
 * thread instead of once per four rows. */
void es_k_matvec(float *out, const float *x, const float *W, int n, int d)
{
    int many = (long)n * d >= ES_PAR_MIN;
#ifdef _OPENMP
    many = many && omp_get_max_threads() > 1;
#endif
#pragma omp parallel if (many)
    {
        int nth = 1, tid = 0;
#ifdef _OPENMP
        nth = omp_get_num_threads();
        tid = omp_get_thread_num();
#endif
        int per = ((d + 3) / 4 + nth - 1) / nth * 4;
        int d0 = tid * per, d1 = d0 + per < d ? d0 + per : d;
        if (d0 < d1) matvec_range(out, x, W, n, d0, d1);
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

/* Blocks of 16 rows per task: enough rows to reuse each weight row from
 * cache, enough blocks to keep both cores busy. */
void es_k_matmul_fwd(float *out, const float *inp, const float *W, int rows, int n, int d)
{
    int blocks = (rows + 15) / 16;
#pragma omp parallel for schedule(static) if ((long)rows * n * d >= ES_PAR_MIN_BATCH)
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

/* Rows are independent, so threads split them with no reduction. */
void es_k_matmul_bwd_inp(float *dinp, const float *dout, const float *W, int rows, int n, int d)
{
#pragma omp parallel for schedule(static) if ((long)rows * n * d >= ES_PAR_MIN_BATCH)
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

/* Each thread owns whole rows of dW and sums over the batch in order: no
 * atomics and the same bytes on any thread count. */
void es_k_matmul_bwd_w(float *dW, const float *dout, const float *inp, int rows, int n, int d)
{
#pragma omp parallel for schedule(static) if ((long)rows * n * d >= ES_PAR_MIN_BATCH)
    for (int o = 0; o < d; o++)
        matmul_bwd_w_row(dW + (size_t)o * n, dout, inp, rows, n, d, o);
}

/* Returns the reciprocal rms because the backward pass needs it. */
float es_k_rmsnorm(float *out, const float *x, const float *g, int n)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + ES_RMS_EPS);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * g[i];
    return r;
}

/* Max-subtracted for stability; in place to avoid a buffer. */
void es_k_softmax(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) if (x[i] > mx) mx = x[i];
    float s = 0.0f;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); s += x[i]; }
    float inv = 1.0f / s;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* Table-driven (cos then sin per position) so inference does no
 * transcendental math per token; the sign flip gives the inverse rotation the
 * backward pass needs. */
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

/* ------------------------------------------------------------ inference */

/* exp for the inference path: Cephes' range reduction and polynomial (about
 * 2 ulp on the range softmax and SiLU use), written so that the loops around
 * it vectorise; libm's expf does not without -ffast-math.  Training keeps
 * expf, so the weights it produces do not depend on this approximation. */
static inline float fast_expf(float x)
{
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    /* round to nearest with the 1.5 * 2^23 trick: branch-free, so it vectorises */
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    int32_t n = (int32_t)fn;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

ES_HOT void es_k_softmax_fast(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) {
        x[i] = fast_expf(x[i] - mx);
        s += x[i];
    }
    float inv = 1.0f / s;
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] *= inv;
}

ES_HOT void es_k_swiglu_fast(float *h, const float *h3, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) h[i] = h[i] / (1.0f + fast_expf(-h[i])) * h3[i];
}

#ifdef ES_HAVE_AVX2_PATH
/* The same with explicit FMAs for head sizes that are a multiple of 8. */
__attribute__((target("avx2,fma"))) static void attend_avx2(float *out, float *att, const float *q,
                                                            const float *kc, const float *vc,
                                                            int pos, int hs, int stride)
{
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t <= pos; t++) {
        const float *k = kc + (size_t)t * stride;
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < hs; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), a);
        att[t] = hsum8(a) * scale;
    }
    es_k_softmax_fast(att, pos + 1);
    for (int i = 0; i < hs; i += 8) {
        __m256 o = _mm256_setzero_ps();
        for (int t = 0; t <= pos; t++)
            o = _mm256_fmadd_ps(_mm256_set1_ps(att[t]), _mm256_loadu_ps(vc + (size_t)t * stride + i), o);
        _mm256_storeu_ps(out + i, o);
    }
}
#endif

/* One head at one position against the cache: scores, softmax, weighted sum
 * of values, all in one clone-dispatched function so the short loops (head
 * size 32) are inlined instead of called per cached position. */
ES_HOT static void attend_generic(float *out, float *att, const float *q, const float *kc,
                                  const float *vc, int pos, int hs, int stride)
{
    float scale = 1.0f / sqrtf((float)hs);
    for (int t = 0; t <= pos; t++) {
        const float *k = kc + (size_t)t * stride;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < hs; i++) s += q[i] * k[i];
        att[t] = s * scale;
    }
    es_k_softmax_fast(att, pos + 1);
    for (int i = 0; i < hs; i++) out[i] = 0.0f;
    for (int t = 0; t <= pos; t++) {
        const float *v = vc + (size_t)t * stride;
        float a = att[t];
#pragma omp simd
        for (int i = 0; i < hs; i++) out[i] += a * v[i];
    }
}

void es_k_attend(float *out, float *att, const float *q, const float *kc, const float *vc,
                 int pos, int hs, int stride)
{
#ifdef ES_HAVE_AVX2_PATH
    if (hs % 8 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        attend_avx2(out, att, q, kc, vc, pos, hs, stride);
        return;
    }
#endif
    attend_generic(out, att, q, kc, vc, pos, hs, stride);
}
