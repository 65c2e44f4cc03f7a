/* kernels.c - the numeric inner loops of the model (matmuls, norms, RoPE,
 * softmax, SwiGLU, attention).
 *
 * Every output element is computed by one thread in a fixed order, so the
 * results do not depend on the number of threads (training on 2 cores and
 * on 16 gives the same weights) nor, for inference, on the batch.  The build
 * uses no -march flag: the hot loops have an AVX2+FMA version picked at run
 * time (explicit intrinsics, or target_clones for the training loops) and a
 * portable one for any other CPU. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lm_internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(ES_LM_PORTABLE)
#define ES_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ES_HOT
#endif

/* -DES_LM_PORTABLE builds the portable kernels only (to test them on a CPU
 * that would otherwise take the AVX2 ones). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(ES_LM_PORTABLE)
#include <immintrin.h>
#define ES_HAVE_AVX2_PATH 1
#define ES_AVX2 __attribute__((target("avx2,fma")))
/* libgcc fills the CPU model word once at start; reading it is cheap. */
static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* Training loops below this many multiply-adds stay on one thread. */
#define ES_PAR_MIN_BATCH 65536.0

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

/* ------------------------------------------------------------ training */

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

/* The arguments of a training matmul, for the pool's range callbacks. */
typedef struct mm_args {
    float *out;
    const float *a, *b;
    int rows, n, d;
} mm_args;

static void matmul_fwd_range(void *ctx, long b0, long b1)
{
    const mm_args *m = ctx;
    for (long b = b0; b < b1; b++) {
        int r1 = 16 * (int)b + 16 < m->rows ? 16 * (int)b + 16 : m->rows;
        matmul_fwd_block(m->out, m->a, m->b, 16 * (int)b, r1, m->n, m->d);
    }
}

/* Blocks of 16 rows per task: enough rows to reuse each weight row from
 * cache, enough blocks to keep both cores busy. */
void es_k_matmul_fwd(es_lm_pool *p, float *out, const float *inp, const float *W, int rows, int n, int d)
{
    mm_args m = {out, inp, W, rows, n, d};
    long blocks = (rows + 15) / 16;
    double work = (double)rows * n * d;
    es_pool_for(p, blocks, 1, work >= ES_PAR_MIN_BATCH ? work : 0, matmul_fwd_range, &m);
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

static void matmul_bwd_inp_range(void *ctx, long r0, long r1)
{
    const mm_args *m = ctx;
    for (long r = r0; r < r1; r++)
        matmul_bwd_inp_row(m->out + (size_t)r * m->n, m->a + (size_t)r * m->d, m->b, m->n, m->d);
}

/* Rows are independent, so threads split them with no reduction. */
void es_k_matmul_bwd_inp(es_lm_pool *p, float *dinp, const float *dout, const float *W, int rows, int n, int d)
{
    mm_args m = {dinp, dout, W, rows, n, d};
    double work = (double)rows * n * d;
    es_pool_for(p, rows, 1, work >= ES_PAR_MIN_BATCH ? work : 0, matmul_bwd_inp_range, &m);
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

static void matmul_bwd_w_range(void *ctx, long o0, long o1)
{
    const mm_args *m = ctx;
    for (long o = o0; o < o1; o++)
        matmul_bwd_w_row(m->out + (size_t)o * m->n, m->a, m->b, m->rows, m->n, m->d, (int)o);
}

/* Each thread owns whole rows of dW and sums over the batch in order: no
 * atomics and the same bytes on any thread count. */
void es_k_matmul_bwd_w(es_lm_pool *p, float *dW, const float *dout, const float *inp, int rows, int n, int d)
{
    mm_args m = {dW, dout, inp, rows, n, d};
    double work = (double)rows * n * d;
    es_pool_for(p, d, 1, work >= ES_PAR_MIN_BATCH ? work : 0, matmul_bwd_w_range, &m);
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

/* Cephes' expf: exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in
 * two parts, exp(r) by a degree-5 polynomial.  Rounding uses the 1.5 * 2^23
 * trick and the exponent comes from the bits of the shifted value, in
 * unsigned arithmetic: branch-free (the loops vectorise), no float-to-int
 * conversion (which is undefined for NaN), and NaN in gives NaN out. */
#define EXP_HI 88.0f
#define EXP_LO -87.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_SHIFT 12582912.0f          /* 1.5 * 2^23 */
#define EXP_SHIFT_BITS 0x4B400000u
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO -2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

static inline float exp_portable(float x)
{
    x = x > EXP_HI ? EXP_HI : x;
    x = x < EXP_LO ? EXP_LO : x;
    float t = x * EXP_LOG2E + EXP_SHIFT, fn = t - EXP_SHIFT;
    float r = x - fn * EXP_LN2_HI - fn * EXP_LN2_LO;
    float p = EXP_P0;
    p = p * r + EXP_P1;
    p = p * r + EXP_P2;
    p = p * r + EXP_P3;
    p = p * r + EXP_P4;
    p = p * r + EXP_P5;
    float y = p * r * r + r + 1.0f;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - EXP_SHIFT_BITS + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    return y * scale;
}

void es_k_exp_portable(float *y, const float *x, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] = exp_portable(x[i]);
}

/* The order in which every dot product of the inference kernels adds its 8
 * lane sums: pairs, then pairs of pairs, then the two halves (what the AVX2
 * horizontal adds below do). */
static inline float lanes_sum(const float a[8])
{
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Blocks of 8 lanes in a fixed order, so the sum is the same bytes on any
 * compiler that keeps C's evaluation order (no fast-math). */
void es_k_softmax_fast_portable(float *x, int n)
{
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
#pragma omp simd
        for (int j = 0; j < 8; j++) {
            x[i + j] = exp_portable(x[i + j] - mx);
            acc[j] += x[i + j];
        }
    for (int j = 0; i < n; i++, j++) {
        x[i] = exp_portable(x[i] - mx);
        acc[j] += x[i];
    }
    float inv = 1.0f / lanes_sum(acc);
#pragma omp simd
    for (int k = 0; k < n; k++) x[k] *= inv;
}

void es_k_swiglu_fast_portable(float *h, const float *h3, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) h[i] = h[i] / (1.0f + exp_portable(-h[i])) * h3[i];
}


#if defined(__GNUC__) || defined(__clang__)
/* Four-lane vectors of the compiler (SSE on x86-64, NEON on aarch64): the
 * 8 lanes of a sum are two of them, kept in registers, which plain arrays
 * of accumulators are not. */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* lanes_sum of the 8 lanes (lo: 0-3, hi: 4-7). */
static inline float v4_sum8(v4f lo, v4f hi)
{
    return ((lo[0] + lo[1]) + (lo[2] + lo[3])) + ((hi[0] + hi[1]) + (hi[2] + hi[3]));
}

/* One output: the row w against x in 8 lanes, then the tail. */
static inline float dot_portable(const float *w, const float *x, int n8, int n)
{
    v4f lo = {0, 0, 0, 0}, hi = lo;
    for (int i = 0; i < n8; i += 8) {
        lo += v4_load(w + i) * v4_load(x + i);
        hi += v4_load(w + i + 4) * v4_load(x + i + 4);
    }
    float s = v4_sum8(lo, hi);
    for (int i = n8; i < n; i++) s += w[i] * x[i];
    return s;
}

static void matmul_rows_portable(float *out, int ldo, const float *in, int ldi, const float *W, int n,
                                 int o0, int o1, int rows)
{
    int n8 = n & ~7, o = o0;
    for (; o + 4 <= o1; o += 4) {
        const float *w0 = W + (size_t)o * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        const float *nx = w0 + 4 * (size_t)n;   /* the next tile, fetched during the first row */
        for (int r = 0; r < rows; r++) {
            const float *x = in + (size_t)r * ldi;
            v4f z = {0, 0, 0, 0}, a0 = z, b0 = z, a1 = z, b1 = z, a2 = z, b2 = z, a3 = z, b3 = z;
            for (int i = 0; i < n8; i += 8) {
                if (r == 0 && (i & 15) == 0)
                    for (int k = 0; k < 4; k++) __builtin_prefetch(nx + (size_t)k * n + i);
                v4f xl = v4_load(x + i), xh = v4_load(x + i + 4);
                a0 += v4_load(w0 + i) * xl; b0 += v4_load(w0 + i + 4) * xh;
                a1 += v4_load(w1 + i) * xl; b1 += v4_load(w1 + i + 4) * xh;
                a2 += v4_load(w2 + i) * xl; b2 += v4_load(w2 + i + 4) * xh;
                a3 += v4_load(w3 + i) * xl; b3 += v4_load(w3 + i + 4) * xh;
            }
            float *y = out + (size_t)r * ldo + o;
            y[0] = v4_sum8(a0, b0); y[1] = v4_sum8(a1, b1); y[2] = v4_sum8(a2, b2); y[3] = v4_sum8(a3, b3);
            for (int k = 0; n8 < n && k < 4; k++)
                for (int i = n8; i < n; i++) y[k] += w0[(size_t)k * n + i] * x[i];
        }
    }
    for (; o < o1; o++)
        for (int r = 0; r < rows; r++)
            out[(size_t)r * ldo + o] = dot_portable(W + (size_t)o * n, in + (size_t)r * ldi, n8, n);
}
#else
/* Plain C for other compilers: the same order of additions. */
static void matmul_rows_portable(float *out, int ldo, const float *in, int ldi, const float *W, int n,
                                 int o0, int o1, int rows)
{
    int n8 = n & ~7;
    for (int o = o0; o < o1; o++)
        for (int r = 0; r < rows; r++) {
            const float *w = W + (size_t)o * n, *x = in + (size_t)r * ldi;
            float a[8] = {0};
            for (int i = 0; i < n8; i += 8)
                for (int j = 0; j < 8; j++) a[j] += w[i + j] * x[i + j];
            float s = lanes_sum(a);
            for (int i = n8; i < n; i++) s += w[i] * x[i];
            out[(size_t)r * ldo + o] = s;
        }
}
#endif

static void attend_portable(float *out, float *att, const float *q, const es_kv_view *kv, int pos, int hs)
{
    float scale = 1.0f / sqrtf((float)hs);
    int hs8 = hs & ~7;
    for (int t = 0; t <= pos; t++) {
        const float *k = es_kv_key(kv, t);
        float a[8] = {0};
        for (int i = 0; i < hs8; i += 8)
#pragma omp simd
            for (int j = 0; j < 8; j++) a[j] += q[i + j] * k[i + j];
        float s = lanes_sum(a);
        for (int i = hs8; i < hs; i++) s += q[i] * k[i];
        att[t] = s * scale;
    }
    es_k_softmax_fast_portable(att, pos + 1);
    for (int i = 0; i < hs; i++) out[i] = 0.0f;
    for (int t = 0; t <= pos; t++) {
        const float *v = es_kv_value(kv, t);
        float a = att[t];
#pragma omp simd
        for (int i = 0; i < hs; i++) out[i] += a * v[i];
    }
}

#ifdef ES_HAVE_AVX2_PATH

/* Sums of four 8-lane accumulators, in lanes_sum's order, as 4 floats. */
ES_AVX2 static inline __m128 hsum4x8(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* One accumulator's sum in the same order. */
ES_AVX2 static inline float hsum8(__m256 a)
{
    return _mm_cvtss_f32(hsum4x8(a, a, a, a));
}

/* Sums of eight accumulators as one vector (lane j = sum of a[j]). */
ES_AVX2 static inline __m256 hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5,
                                     __m256 a6, __m256 a7)
{
    __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}

/* The exp above on 8 lanes, with FMAs.  min/max take the constant first:
 * they return their second operand when one is NaN, so NaN stays NaN. */
ES_AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(EXP_LOG2E), _mm256_set1_ps(EXP_SHIFT));
    __m256 fn = _mm256_sub_ps(t, _mm256_set1_ps(EXP_SHIFT));
    __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_P5));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32((int)(EXP_SHIFT_BITS - 127u)));
    return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

/* Lanes < n of a tail block are live: masked loads read nothing beyond. */
ES_AVX2 static inline __m256i tail_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

ES_AVX2 static void exp_avx2(float *y, const float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(y + i, m, exp8(_mm256_maskload_ps(x + i, m)));
    }
}

ES_AVX2 static void softmax_avx2(float *x, int n)
{
    int n8 = n & ~7;
    __m256i m = tail_mask(n - n8);
    __m256 lo = _mm256_set1_ps(-INFINITY), mv = lo;
    for (int i = 0; i < n8; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    if (n8 < n) mv = _mm256_max_ps(mv, _mm256_blendv_ps(lo, _mm256_maskload_ps(x + n8, m), _mm256_castsi256_ps(m)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    __m256 mx = _mm256_set1_ps(_mm_cvtss_f32(h)), acc = _mm256_setzero_ps();
    for (int i = 0; i < n8; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (n8 < n) {
        __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + n8, m), mx)), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(x + n8, m, e);
        acc = _mm256_add_ps(acc, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum8(acc));
    for (int i = 0; i < n8; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    if (n8 < n) _mm256_maskstore_ps(x + n8, m, _mm256_mul_ps(_mm256_maskload_ps(x + n8, m), inv));
}

ES_AVX2 static inline __m256 swiglu8(__m256 h, __m256 h3)
{
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), h));
    return _mm256_mul_ps(_mm256_div_ps(h, _mm256_add_ps(one, e)), h3);
}

ES_AVX2 static void swiglu_avx2(float *h, const float *h3, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(h + i, swiglu8(_mm256_loadu_ps(h + i), _mm256_loadu_ps(h3 + i)));
    if (i < n) {
        __m256i m = tail_mask(n - i);
        _mm256_maskstore_ps(h + i, m, swiglu8(_mm256_maskload_ps(h + i, m), _mm256_maskload_ps(h3 + i, m)));
    }
}

/* Adds the scalar tail (n8 <= i < n) of row w against x to a sum. */
static inline float dot_tail(float s, const float *w, const float *x, int n8, int n)
{
    for (int i = n8; i < n; i++) s += w[i] * x[i];
    return s;
}

/* One line of each of 4 rows `rowb` bytes apart. */
ES_AVX2 static inline void prefetch_rows4(const char *p, size_t rowb)
{
    _mm_prefetch(p, _MM_HINT_T0);
    _mm_prefetch(p + rowb, _MM_HINT_T0);
    _mm_prefetch(p + 2 * rowb, _MM_HINT_T0);
    _mm_prefetch(p + 3 * rowb, _MM_HINT_T0);
}

/* The scalar tails of 4 outputs of weight rows w0.. (n apart) against x. */
static inline void dot_tails4(float *y, const float *w0, const float *x, int n8, int n)
{
    for (int k = 0; n8 < n && k < 4; k++) y[k] = dot_tail(y[k], w0 + (size_t)k * n, x, n8, n);
}

/* Each output: 8-lane FMA partial sums over the row, the lanes added in
 * lanes_sum's order, then the tail in scalar order; whatever tile computes
 * it.  Tiles: 8 weight rows x 1 input for a single row (eight independent
 * chains keep the loads in flight), 4 weight rows x 2 inputs for a batch
 * (each weight load feeds two FMAs), then 4 x 1 and 1 x 1 remainders. */
ES_AVX2 static void matmul_rows_avx2(float *out, int ldo, const float *in, int ldi, const float *W, int n,
                                     int o0, int o1, int rows)
{
    int n8 = n & ~7, o = o0;
    if (rows == 1) {
        const float *x = in;
        for (; o + 8 <= o1; o += 8) {
            const float *w0 = W + (size_t)o * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
            const float *w4 = w3 + n, *w5 = w4 + n, *w6 = w5 + n, *w7 = w6 + n;
            /* the next tile is the next 8n floats: 4 lines per step fetch it
             * in time (a prefetch past the matrix is harmless) */
            const char *nx = (const char *)(w0 + 8 * (size_t)n);
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int i = 0; i < n8; i += 8) {
                __m256 xv = _mm256_loadu_ps(x + i);
                const char *pf = nx + (size_t)i * 32;
                _mm_prefetch(pf, _MM_HINT_T0);
                _mm_prefetch(pf + 64, _MM_HINT_T0);
                _mm_prefetch(pf + 128, _MM_HINT_T0);
                _mm_prefetch(pf + 192, _MM_HINT_T0);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
                a4 = _mm256_fmadd_ps(_mm256_loadu_ps(w4 + i), xv, a4);
                a5 = _mm256_fmadd_ps(_mm256_loadu_ps(w5 + i), xv, a5);
                a6 = _mm256_fmadd_ps(_mm256_loadu_ps(w6 + i), xv, a6);
                a7 = _mm256_fmadd_ps(_mm256_loadu_ps(w7 + i), xv, a7);
            }
            float *y = out + o;
            _mm_storeu_ps(y, hsum4x8(a0, a1, a2, a3));
            _mm_storeu_ps(y + 4, hsum4x8(a4, a5, a6, a7));
            dot_tails4(y, w0, x, n8, n);
            dot_tails4(y + 4, w4, x, n8, n);
        }
    }
    for (; o + 4 <= o1; o += 4) {
        const float *w0 = W + (size_t)o * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        /* the next tile (4n floats on) comes in while this one is used for
         * every input: one line per row every other step of the first pass */
        const char *nx = (const char *)(w0 + 4 * (size_t)n);
        size_t rowb = (size_t)n * sizeof(float);
        int r = 0;
        for (; r + 3 <= rows; r += 3) {
            const float *x = in + (size_t)r * ldi, *z = x + ldi, *u = z + ldi;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
            for (int i = 0; i < n8; i += 8) {
                if (r == 0 && (i & 15) == 0) prefetch_rows4(nx + (size_t)i * sizeof(float), rowb);
                __m256 xv = _mm256_loadu_ps(x + i), zv = _mm256_loadu_ps(z + i), uv = _mm256_loadu_ps(u + i);
                __m256 v = _mm256_loadu_ps(w0 + i);
                a0 = _mm256_fmadd_ps(v, xv, a0); b0 = _mm256_fmadd_ps(v, zv, b0); c0 = _mm256_fmadd_ps(v, uv, c0);
                v = _mm256_loadu_ps(w1 + i);
                a1 = _mm256_fmadd_ps(v, xv, a1); b1 = _mm256_fmadd_ps(v, zv, b1); c1 = _mm256_fmadd_ps(v, uv, c1);
                v = _mm256_loadu_ps(w2 + i);
                a2 = _mm256_fmadd_ps(v, xv, a2); b2 = _mm256_fmadd_ps(v, zv, b2); c2 = _mm256_fmadd_ps(v, uv, c2);
                v = _mm256_loadu_ps(w3 + i);
                a3 = _mm256_fmadd_ps(v, xv, a3); b3 = _mm256_fmadd_ps(v, zv, b3); c3 = _mm256_fmadd_ps(v, uv, c3);
            }
            float *y = out + (size_t)r * ldo + o, *yz = y + ldo, *yu = yz + ldo;
            _mm_storeu_ps(y, hsum4x8(a0, a1, a2, a3));
            _mm_storeu_ps(yz, hsum4x8(b0, b1, b2, b3));
            _mm_storeu_ps(yu, hsum4x8(c0, c1, c2, c3));
            dot_tails4(y, w0, x, n8, n);
            dot_tails4(yz, w0, z, n8, n);
            dot_tails4(yu, w0, u, n8, n);
        }
        for (; r + 2 <= rows; r += 2) {
            const float *x = in + (size_t)r * ldi, *z = x + ldi;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int i = 0; i < n8; i += 8) {
                if (r == 0 && (i & 15) == 0) prefetch_rows4(nx + (size_t)i * sizeof(float), rowb);
                __m256 xv = _mm256_loadu_ps(x + i), zv = _mm256_loadu_ps(z + i);
                __m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i);
                __m256 v2 = _mm256_loadu_ps(w2 + i), v3 = _mm256_loadu_ps(w3 + i);
                a0 = _mm256_fmadd_ps(v0, xv, a0); b0 = _mm256_fmadd_ps(v0, zv, b0);
                a1 = _mm256_fmadd_ps(v1, xv, a1); b1 = _mm256_fmadd_ps(v1, zv, b1);
                a2 = _mm256_fmadd_ps(v2, xv, a2); b2 = _mm256_fmadd_ps(v2, zv, b2);
                a3 = _mm256_fmadd_ps(v3, xv, a3); b3 = _mm256_fmadd_ps(v3, zv, b3);
            }
            float *y = out + (size_t)r * ldo + o, *yz = y + ldo;
            _mm_storeu_ps(y, hsum4x8(a0, a1, a2, a3));
            _mm_storeu_ps(yz, hsum4x8(b0, b1, b2, b3));
            dot_tails4(y, w0, x, n8, n);
            dot_tails4(yz, w0, z, n8, n);
        }
        for (; r < rows; r++) {
            const float *x = in + (size_t)r * ldi;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < n8; i += 8) {
                if (r == 0 && (i & 15) == 0) prefetch_rows4(nx + (size_t)i * sizeof(float), rowb);
                __m256 xv = _mm256_loadu_ps(x + i);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
            }
            float *y = out + (size_t)r * ldo + o;
            _mm_storeu_ps(y, hsum4x8(a0, a1, a2, a3));
            dot_tails4(y, w0, x, n8, n);
        }
    }
    for (; o < o1; o++) {
        const float *w = W + (size_t)o * n;
        for (int r = 0; r < rows; r++) {
            const float *x = in + (size_t)r * ldi;
            __m256 a = _mm256_setzero_ps();
            for (int i = 0; i < n8; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a);
            out[(size_t)r * ldo + o] = dot_tail(hsum8(a), w, x, n8, n);
        }
    }
}

/* Head sizes that are a multiple of 8.  Scores of 8 positions at a time
 * (their lane sums reduced together), the vector softmax, then the weighted
 * values in one pass over the cache with the even and odd positions in
 * separate accumulators (two chains in flight), added at the end.  The cache
 * is read once per token, from L3 in a batch: the next blocks are
 * prefetched. */
ES_AVX2 static void attend_avx2(float *out, float *att, const float *q, const es_kv_view *kv, int pos, int hs)
{
    float sc = 1.0f / sqrtf((float)hs);
    __m256 scale = _mm256_set1_ps(sc);
    int n = pos + 1, t = 0, stride = kv->stride;
    size_t rowb = (size_t)stride * sizeof(float);
    for (; t + 8 <= n; t += 8) {
        if (t + 32 < n) {
            const char *pf = (const char *)es_kv_key(kv, t + 32);
            for (size_t j = 0; j < 8 * rowb; j += 64) _mm_prefetch(pf + j, _MM_HINT_T0);
        }
        const float *k0 = es_kv_key(kv, t), *k1 = es_kv_key(kv, t + 1), *k2 = es_kv_key(kv, t + 2);
        const float *k3 = es_kv_key(kv, t + 3), *k4 = es_kv_key(kv, t + 4), *k5 = es_kv_key(kv, t + 5);
        const float *k6 = es_kv_key(kv, t + 6), *k7 = es_kv_key(kv, t + 7);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int i = 0; i < hs; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
            a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k4 + i), a4);
            a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k5 + i), a5);
            a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k6 + i), a6);
            a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k7 + i), a7);
        }
        _mm256_storeu_ps(att + t, _mm256_mul_ps(hsum8x8(a0, a1, a2, a3, a4, a5, a6, a7), scale));
    }
    for (; t < n; t++) {
        const float *k = es_kv_key(kv, t);
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < hs; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), a);
        att[t] = hsum8(a) * sc;
    }
    softmax_avx2(att, n);
    int i = 0;
    for (; i + 32 <= hs; i += 32) {
        __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, f0 = e0, f1 = e0, f2 = e0, f3 = e0;
        int u = 0;
        for (; u + 2 <= n; u += 2) {
            if (u + 32 < n) {
                const char *pf = (const char *)(es_kv_value(kv, u + 32) + i);
                _mm_prefetch(pf, _MM_HINT_T0);
                _mm_prefetch(pf + 64, _MM_HINT_T0);
                _mm_prefetch(pf + rowb, _MM_HINT_T0);
                _mm_prefetch(pf + rowb + 64, _MM_HINT_T0);
            }
            __m256 p0 = _mm256_broadcast_ss(att + u), p1 = _mm256_broadcast_ss(att + u + 1);
            const float *v0 = es_kv_value(kv, u) + i, *v1 = es_kv_value(kv, u + 1) + i;
            e0 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0), e0);
            e1 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8), e1);
            e2 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 16), e2);
            e3 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 24), e3);
            f0 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1), f0);
            f1 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 8), f1);
            f2 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 16), f2);
            f3 = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 24), f3);
        }
        if (u < n) {
            __m256 p0 = _mm256_broadcast_ss(att + u);
            const float *v0 = es_kv_value(kv, u) + i;
            e0 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0), e0);
            e1 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8), e1);
            e2 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 16), e2);
            e3 = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 24), e3);
        }
        _mm256_storeu_ps(out + i, _mm256_add_ps(e0, f0));
        _mm256_storeu_ps(out + i + 8, _mm256_add_ps(e1, f1));
        _mm256_storeu_ps(out + i + 16, _mm256_add_ps(e2, f2));
        _mm256_storeu_ps(out + i + 24, _mm256_add_ps(e3, f3));
    }
    for (; i < hs; i += 8) {   /* head sizes that are not a multiple of 32 */
        __m256 e0 = _mm256_setzero_ps(), f0 = e0;
        int u = 0;
        for (; u + 2 <= n; u += 2) {
            e0 = _mm256_fmadd_ps(_mm256_broadcast_ss(att + u), _mm256_loadu_ps(es_kv_value(kv, u) + i), e0);
            f0 = _mm256_fmadd_ps(_mm256_broadcast_ss(att + u + 1), _mm256_loadu_ps(es_kv_value(kv, u + 1) + i), f0);
        }
        if (u < n) e0 = _mm256_fmadd_ps(_mm256_broadcast_ss(att + u), _mm256_loadu_ps(es_kv_value(kv, u) + i), e0);
        _mm256_storeu_ps(out + i, _mm256_add_ps(e0, f0));
    }
}
#endif

/* The dispatchers: the CPU check is one load of a word libgcc filled. */
void es_k_exp(float *y, const float *x, int n)
{
#ifdef ES_HAVE_AVX2_PATH
    if (have_avx2()) { exp_avx2(y, x, n); return; }
#endif
    es_k_exp_portable(y, x, n);
}

void es_k_softmax_fast(float *x, int n)
{
#ifdef ES_HAVE_AVX2_PATH
    if (have_avx2()) { softmax_avx2(x, n); return; }
#endif
    es_k_softmax_fast_portable(x, n);
}

void es_k_swiglu_fast(float *h, const float *h3, int n)
{
#ifdef ES_HAVE_AVX2_PATH
    if (have_avx2()) { swiglu_avx2(h, h3, n); return; }
#endif
    es_k_swiglu_fast_portable(h, h3, n);
}

void es_k_matmul_rows(float *out, int ldo, const float *in, int ldi, const float *W, int n,
                      int o0, int o1, int rows)
{
#ifdef ES_HAVE_AVX2_PATH
    if (have_avx2()) { matmul_rows_avx2(out, ldo, in, ldi, W, n, o0, o1, rows); return; }
#endif
    matmul_rows_portable(out, ldo, in, ldi, W, n, o0, o1, rows);
}

void es_k_attend(float *out, float *att, const float *q, const es_kv_view *kv, int pos, int hs)
{
#ifdef ES_HAVE_AVX2_PATH
    if (hs % 8 == 0 && have_avx2()) { attend_avx2(out, att, q, kv, pos, hs); return; }
#endif
    attend_portable(out, att, q, kv, pos, hs);
}
