/* test_model.c - the built-in model: gradients, forward vs reference,
 * training lowers the loss, file round trip, reproducible generation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "earlystop_lm.h"
#include "earlystop_replay.h"   /* traces of generated samples, replayed */
#include "lm/lm_internal.h"   /* the kernels, for their own numeric tests */
#include "testutil.h"

static void tiny_config(es_lm_config *c)
{
    c->dim = 8;
    c->hidden_dim = 12;
    c->n_layers = 2;
    c->n_heads = 2;
    c->vocab_size = ES_LM_VOCAB;
    c->seq_len = 8;
}

static es_lm *tiny_model(uint64_t seed)
{
    es_lm_config c;
    tiny_config(&c);
    es_lm *m = NULL;
    assert_int_equal(es_lm_new(&c, seed, &m, NULL), ES_OK);
    /* larger weights than the training init so every path carries signal */
    float *p = es_lm_params(m);
    es_rng r;
    es_rng_seed(&r, seed + 99);
    for (size_t i = 0; i < es_lm_n_params(m); i++) p[i] += 0.3f * es_rng_normal(&r);
    return m;
}

static void tiny_batch(int B, int T, int *inp, int *tgt, uint64_t seed)
{
    es_rng r;
    es_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int)es_rng_below(&r, ES_LM_VOCAB);
        tgt[i] = (i % 5 == 3) ? -1 : (int)es_rng_below(&r, ES_LM_VOCAB);
    }
}

/* Central differences in double-checked float: every tensor is sampled. */
static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    es_lm *m = tiny_model(3);
    const int B = 2, T = 8;
    int inp[16], tgt[16];
    tiny_batch(B, T, inp, tgt, 5);
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, B, T, &t), ES_OK);
    es_lm_train_forward(t, inp, tgt, T);
    es_lm_train_backward(t);
    size_t n = es_lm_n_params(m);
    float *grad = malloc(n * sizeof(float));
    memcpy(grad, es_lm_trainer_grads(t), n * sizeof(float));
    float *p = es_lm_params(m);
    es_rng r;
    es_rng_seed(&r, 11);
    int checked = 0, bad = 0;
    for (size_t k = 0; k < 400; k++) {
        size_t i = k < 200 ? (size_t)es_rng_below(&r, (uint32_t)n) : n - 1 - (k - 200) * (n / 200);
        float orig = p[i], h = 1e-2f;
        p[i] = orig + h;
        double lp = es_lm_train_forward(t, inp, tgt, T);
        p[i] = orig - h;
        double lm = es_lm_train_forward(t, inp, tgt, T);
        p[i] = orig;
        double num = (lp - lm) / (2.0 * h), an = grad[i];
        double err = fabs(num - an) / fmax(1e-2, fabs(num) + fabs(an));
        checked++;
        if (err > 5e-2) {
            bad++;
            print_message("param %zu: numeric %.6f analytic %.6f\n", i, num, an);
        }
    }
    assert_true(checked == 400);
    assert_int_equal(bad, 0);
    free(grad);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

/* Variable batch length: a forward on fewer columns scores the same rows. */
static void test_short_batch_matches_prefix(void **state)
{
    (void)state;
    es_lm *m = tiny_model(4);
    int inp[16], tgt[16], tgt2[16];
    tiny_batch(2, 8, inp, tgt, 6);
    for (int i = 0; i < 16; i++) tgt2[i] = (i % 8) < 5 ? tgt[i] : -1;
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 2, 8, &t), ES_OK);
    float full = es_lm_train_forward(t, inp, tgt2, 8);
    float part = es_lm_train_forward(t, inp, tgt2, 5);
    assert_true(fabsf(full - part) < 1e-5f);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

/* The training forward, the fast inference forward and the reference agree
 * token by token. */
static void test_forward_matches_reference(void **state)
{
    (void)state;
    es_lm_config c;
    es_lm_config_default(&c);
    c.seq_len = 24;
    es_lm *m = NULL;
    assert_int_equal(es_lm_new(&c, 7, &m, NULL), ES_OK);
    float *p = es_lm_params(m);
    es_rng r;
    es_rng_seed(&r, 8);
    for (size_t i = 0; i < es_lm_n_params(m); i++) p[i] += 0.05f * es_rng_normal(&r);
    es_lm_state *a = NULL, *b = NULL;
    assert_int_equal(es_lm_state_new(m, &a), ES_OK);
    assert_int_equal(es_lm_state_new(m, &b), ES_OK);
    int toks[24];
    for (int i = 0; i < 24; i++) toks[i] = (int)es_rng_below(&r, ES_LM_VOCAB);
    double worst = 0;
    for (int pos = 0; pos < 24; pos++) {
        const float *fa = es_lm_forward(m, a, toks[pos], pos);
        const float *fb = es_lm_forward_ref(m, b, toks[pos], pos);
        for (int v = 0; v < ES_LM_VOCAB; v++) worst = fmax(worst, fabs(fa[v] - fb[v]));
    }
    assert_true(worst < 1e-3);
    /* the training path sees the same logits: compare its loss on the
     * sequence with the loss from the inference logits */
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 1, 24, &t), ES_OK);
    int tgt[24];
    double want = 0;
    for (int pos = 0; pos < 23; pos++) {
        tgt[pos] = toks[pos + 1];
        const float *lg = es_lm_forward_ref(m, b, toks[pos], pos);
        double mx = -1e30, z = 0;
        for (int v = 0; v < ES_LM_VOCAB; v++) mx = fmax(mx, lg[v]);
        for (int v = 0; v < ES_LM_VOCAB; v++) z += exp(lg[v] - mx);
        want += -(lg[tgt[pos]] - mx - log(z));
    }
    tgt[23] = -1;
    float got = es_lm_train_forward(t, toks, tgt, 24);
    assert_true(fabs(got - want / 23.0) < 1e-3);
    es_lm_trainer_free(t);
    es_lm_state_free(a);
    es_lm_state_free(b);
    es_lm_free(m);
}

static void test_training_lowers_loss(void **state)
{
    (void)state;
    es_lm_config c;
    tiny_config(&c);
    c.dim = 32; c.hidden_dim = 64; c.seq_len = 32; c.n_heads = 4;
    es_lm *m = NULL;
    assert_int_equal(es_lm_new(&c, 1, &m, NULL), ES_OK);
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 4, 32, &t), ES_OK);
    int inp[128], tgt[128];
    for (int i = 0; i < 128; i++) {      /* a repeating pattern to learn */
        inp[i] = 3 + (i * 7) % 11;
        tgt[i] = 3 + ((i + 1) * 7) % 11;
    }
    es_lm_adamw opt = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    float first = es_lm_train_forward(t, inp, tgt, 32), last = first;
    for (int s = 1; s <= 30; s++) {
        es_lm_train_backward(t);
        es_lm_adamw_step(t, &opt, s);
        last = es_lm_train_forward(t, inp, tgt, 32);
    }
    assert_true(last < 0.5f * first);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    es_lm *m = tiny_model(9), *back = NULL;
    char path[] = "/tmp/es_model_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(es_lm_save(m, path, NULL), ES_OK);
    assert_int_equal(es_lm_load(path, &back, NULL), ES_OK);
    assert_int_equal(es_lm_n_params(back), es_lm_n_params(m));
    assert_memory_equal(es_lm_params(back), es_lm_params(m), es_lm_n_params(m) * sizeof(float));
    es_lm_free(back);
    /* a flipped byte is caught by the checksum */
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 100, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    es_error err;
    assert_int_equal(es_lm_load(path, &back, &err), ES_EFORMAT);
    assert_string_equal(err.field, "checksum");
    /* a file that is not a model */
    fp = fopen(path, "wb");
    fputs("not a model at all, sorry, just text that is long enough for a header....", fp);
    fclose(fp);
    assert_int_equal(es_lm_load(path, &back, &err), ES_EFORMAT);
    assert_string_equal(err.field, "magic");
    unlink(path);
    es_lm_free(m);
}


/* ------------------------------------------------------------ kernels */

/* The vector exp (AVX2 where the CPU has it) and the portable one against
 * double-precision exp: within 2.5e-7 relative (about 2 ulp of float) on the
 * whole range they accept, [-87, 88]; clamped outside; NaN gives NaN (the
 * ASan+UBSan build checks that no undefined conversion happens on the way). */
static void test_fast_exp_accuracy(void **state)
{
    (void)state;
    enum { N = 200001 };
    static float x[N], y[N], z[N];
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / (float)(N - 1);
    es_k_exp(y, x, N);
    es_k_exp_portable(z, x, N);
    double worst_y = 0, worst_z = 0;
    for (int i = 0; i < N; i++) {
        double r = exp((double)x[i]);
        worst_y = fmax(worst_y, fabs(y[i] - r) / r);
        worst_z = fmax(worst_z, fabs(z[i] - r) / r);
    }
    print_message("exp max relative error: dispatched %.3g, portable %.3g\n", worst_y, worst_z);
    assert_true(worst_y < 2.5e-7);
    assert_true(worst_z < 2.5e-7);
    float odd[5] = {NAN, 200.0f, -200.0f, INFINITY, -INFINITY}, out[5], outp[5];
    es_k_exp(out, odd, 5);
    es_k_exp_portable(outp, odd, 5);
    assert_true(isnan(out[0]) && isnan(outp[0]));
    for (int i = 1; i < 5; i++) {
        assert_true(isfinite(out[i]) && isfinite(outp[i]));
        assert_true(out[i] > 0 && outp[i] > 0);
    }
    assert_true(out[1] > 1e38f && out[2] < 1e-37f);
}

/* Softmax and SwiGLU of the inference path against double precision, on
 * lengths that exercise the 8-lane tails: probabilities within 1e-6
 * relative + 1e-9, SwiGLU within 1e-6 relative + 1e-7. */
static void test_fast_softmax_swiglu_accuracy(void **state)
{
    (void)state;
    es_rng r;
    es_rng_seed(&r, 21);
    for (int n = 1; n <= 300; n += (n < 20 ? 1 : 37)) {
        float a[300], b[300], h[300], h3[300], g[300], gp[300];
        double ref[300], mx = -1e300, z = 0;
        for (int i = 0; i < n; i++) {
            a[i] = b[i] = 6.0f * es_rng_normal(&r);
            mx = fmax(mx, a[i]);
            h[i] = g[i] = gp[i] = 4.0f * es_rng_normal(&r);
            h3[i] = es_rng_normal(&r);
        }
        for (int i = 0; i < n; i++) z += (ref[i] = exp(a[i] - mx));
        es_k_softmax_fast(a, n);
        es_k_softmax_fast_portable(b, n);
        es_k_swiglu_fast(g, h3, n);
        es_k_swiglu_fast_portable(gp, h3, n);
        for (int i = 0; i < n; i++) {
            double p = ref[i] / z, sw = h[i] / (1.0 + exp(-(double)h[i])) * h3[i];
            assert_true(fabs(a[i] - p) <= 1e-6 * p + 1e-9);
            assert_true(fabs(b[i] - p) <= 1e-6 * p + 1e-9);
            assert_true(fabs(g[i] - sw) <= 1e-6 * fabs(sw) + 1e-7);
            assert_true(fabs(gp[i] - sw) <= 1e-6 * fabs(sw) + 1e-7);
        }
    }
}

/* A row of the batched matmul is the same bytes whatever the other rows, the
 * tile that computes it and the output range it falls in (so a batch, a
 * thread split and a single sample all agree), for widths with and without
 * an 8-lane tail. */
static void test_matmul_rows_batch_invariant(void **state)
{
    (void)state;
    es_rng r;
    es_rng_seed(&r, 33);
    const int ns[] = {8, 12, 64, 131};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k], d = 27, R = 7;
        float W[27 * 131], in[7 * 131], one[27], all[7 * 27], part[7 * 27];
        for (int i = 0; i < d * n; i++) W[i] = es_rng_normal(&r);
        for (int i = 0; i < R * n; i++) in[i] = es_rng_normal(&r);
        es_k_matmul_rows(all, d, in, n, W, n, 0, d, R);
        /* the same rows in two output ranges split off the tile grid */
        es_k_matmul_rows(part, d, in, n, W, n, 0, 13, R);
        es_k_matmul_rows(part, d, in, n, W, n, 13, d, R);
        assert_memory_equal(all, part, sizeof(float) * (size_t)(R * d));
        for (int row = 0; row < R; row++) {
            es_k_matmul_rows(one, d, in + (size_t)row * n, n, W, n, 0, d, 1);
            assert_memory_equal(one, all + (size_t)row * d, sizeof one);
            for (int o = 0; o < d; o++) {
                double want = 0;
                for (int i = 0; i < n; i++) want += (double)W[o * n + i] * in[row * n + i];
                assert_true(fabs(one[o] - want) < 1e-4 * (1 + fabs(want)));
            }
        }
    }
}

/* ------------------------------------------------------------ threads */

/* Counts how often each index was visited. */
static void count_range(void *ctx, long i0, long i1)
{
    int *hits = ctx;
    for (long i = i0; i < i1; i++) hits[i]++;
}

/* Thread counts are checked and capped at the cores; every index of a
 * parallel loop runs exactly once, job after job. */
static void test_pool_counts_and_coverage(void **state)
{
    (void)state;
    es_lm_pool *p = NULL;
    es_error err;
    assert_int_equal(es_lm_pool_new(0, &p, &err), ES_EINVAL);
    assert_int_equal(es_lm_pool_new(100000, &p, &err), ES_EINVAL);
    assert_non_null(strstr(err.msg, "1024"));
    assert_int_equal(es_lm_pool_new(ES_LM_MAX_THREADS + 1, &p, &err), ES_EINVAL);
    int cores = es_lm_cpu_count();
    assert_true(cores >= 1);
    assert_int_equal(es_lm_pool_new(64, &p, &err), ES_OK);
    assert_int_equal(es_lm_pool_threads(p), cores < 64 ? cores : 64);
    es_lm_pool_free(p);
    assert_int_equal(es_lm_pool_new(2, &p, &err), ES_OK);
    static int hits[5000];
    for (int job = 0; job < 2000; job++) {
        long n = 1 + (job * 37) % 5000;
        memset(hits, 0, sizeof hits);
        es_pool_for(p, n, 1 + job % 5, 1e9, count_range, hits);
        for (long i = 0; i < n; i++) assert_int_equal(hits[i], 1);
    }
    es_lm_pool_free(p);
    assert_int_equal(es_lm_pool_threads(NULL), 1);
}

/* ------------------------------------------------------------ reliability */

/* A model with a NaN weight is neither saved nor loaded, and the error names
 * the tensor: a diverged run cannot leave a poisoned model file behind. */
static void test_nonfinite_weights_refused(void **state)
{
    (void)state;
    es_lm *m = tiny_model(12), *back = NULL;
    char path[] = "/tmp/es_model_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(es_lm_save(m, path, NULL), ES_OK);
    /* the shape is known: poison one weight of wk and fix the checksum */
    const es_lm_config *c = es_lm_get_config(m);
    size_t d = (size_t)c->dim, at = (size_t)c->vocab_size * d + (size_t)c->n_layers * d +
                                     (size_t)c->n_layers * d * d + 5;
    float *p = es_lm_params(m);
    float keep = p[at];
    p[at] = NAN;
    es_error err;
    assert_int_equal(es_lm_save(m, path, &err), ES_EFORMAT);
    assert_non_null(strstr(err.msg, "wk"));
    unsigned char hdr[64];
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fread(hdr, 1, 64, fp), 64);
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < es_lm_n_params(m) * sizeof(float); i++) { h ^= b[i]; h *= 1099511628211ULL; }
    for (int i = 0; i < 8; i++) hdr[40 + i] = (unsigned char)(h >> (8 * i));
    fseek(fp, 0, SEEK_SET);
    fwrite(hdr, 1, 64, fp);
    fwrite(p, sizeof(float), es_lm_n_params(m), fp);
    fclose(fp);
    assert_int_equal(es_lm_load(path, &back, &err), ES_EFORMAT);
    print_message("%s\n", err.msg);
    assert_string_equal(err.field, "wk");
    assert_non_null(strstr(err.msg, "weight 5 of tensor wk is nan"));
    p[at] = keep;
    unlink(path);
    es_lm_free(m);
}

/* A learning rate far too high stops training with ES_ERANGE within a few
 * steps, and the weights it leaves are finite (AdamW refuses a non-finite
 * gradient instead of applying it). */
static void test_training_stops_on_divergence(void **state)
{
    (void)state;
    es_lm *m = tiny_model(5);
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 2, 8, &t), ES_OK);
    int inp[16], tgt[16];
    tiny_batch(2, 8, inp, tgt, 6);
    es_lm_adamw opt = {1e10f, 0.9f, 0.95f, 1e-8f, 0.01f, 1.0f};
    es_error err;
    int rc = ES_OK, step = 1;
    for (; step <= 20 && rc == ES_OK; step++) rc = es_lm_train_step(t, inp, tgt, 8, &opt, step, NULL, NULL, &err);
    assert_int_equal(rc, ES_ERANGE);
    print_message("stopped at step %d: %s\n", step - 1, err.msg);
    assert_non_null(strstr(err.msg, "diverged"));
    /* a finite model is still a model the caller could inspect */
    const float *p = es_lm_params(m);
    size_t bad = 0;
    for (size_t i = 0; i < es_lm_n_params(m); i++) bad += !isfinite(p[i]);
    assert_true(bad == 0 || strstr(err.msg, "weight") != NULL);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

static const char *shipped_model(void)
{
    const char *p = getenv("ES_MODEL");
    if (p && *p) return p;
    return access("data/model.bin", R_OK) == 0 ? "data/model.bin" : NULL;
}

/* The shipped model loaded, or the test is skipped (saying why). */
static es_lm *load_shipped(void)
{
    const char *path = shipped_model();
    if (!path) {
        print_message("no data/model.bin: skipped\n");
        skip();
    }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(path, &m, NULL), ES_OK);
    return m;
}

/* Sampling with a fixed seed gives the same bytes, probes included, and a
 * probe does not change the sample it interrupts. */
static void test_generation_reproducible(void **state)
{
    (void)state;
    es_lm *m = load_shipped();
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_task_example ex;
    assert_int_equal(es_task_make(ES_TASK_ARITHMETIC, 42, 0, &ex), ES_OK);
    char first[1024], second[1024];
    es_lm_sample_result a, b;
    es_rng r;
    es_lm_sample_rng(&r, 42, 0, 0);
    assert_int_equal(es_lm_gen_sample(g, ex.prompt, &r, NULL, &a), ES_OK);
    snprintf(first, sizeof first, "%s", a.text);
    es_lm_gen_free(g);
    o.probe_every = 8;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_lm_sample_rng(&r, 42, 0, 0);
    assert_int_equal(es_lm_gen_sample(g, ex.prompt, &r, NULL, &b), ES_OK);
    snprintf(second, sizeof second, "%s", b.text);
    assert_string_equal(first, second);
    assert_int_equal(a.tokens, b.tokens);
    assert_true(b.n_probes > 0);
    es_lm_gen_free(g);
    es_lm_free(m);
}

static int count_probe(void *ctx, const es_lm_probe *p);

/* Text probes (probe_lines) leave the sample as it was and sit at its line
 * ends: the answer the text has written by then, free, no confidence, and
 * the line's cues ("So the answer is" concludes, "Wait, let me check"
 * re-checks). */
typedef struct line_rec {
    const char *text; /* set after the sample: probes are checked then */
    es_lm_probe p[64];
    int n;
} line_rec;

static int count_probe(void *ctx, const es_lm_probe *p)
{
    line_rec *r = ctx;
    if (r->n < 64) r->p[r->n++] = *p;
    return ES_CONTINUE;
}

static void test_line_probes(void **state)
{
    (void)state;
    es_lm *m = load_shipped();
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    es_lm_gen *plain = NULL, *lines = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &plain, NULL), ES_OK);
    o.probe_lines = 1;
    assert_int_equal(es_lm_gen_new(m, &o, &lines, NULL), ES_OK);
    o.probe_every = 8; /* both kinds at once: refused */
    es_lm_gen *both = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &both, NULL), ES_EINVAL);
    int concluded = 0, checked = 0;
    for (uint64_t j = 0; j < 6; j++) {
        es_task_example ex;
        assert_int_equal(es_task_make(j % 2 ? ES_TASK_DATE : ES_TASK_ARITHMETIC, 9, j, &ex), ES_OK);
        es_rng r;
        es_lm_sample_result a, b;
        static char first[1024];
        es_lm_sample_rng(&r, 9, j, 0);
        assert_int_equal(es_lm_gen_sample(plain, ex.prompt, &r, NULL, &a), ES_OK);
        snprintf(first, sizeof first, "%s", a.text);
        static line_rec rec;
        rec.n = 0;
        es_lm_gen_hooks h = {NULL, count_probe, NULL, &rec};
        es_lm_sample_rng(&r, 9, j, 0);
        assert_int_equal(es_lm_gen_sample(lines, ex.prompt, &r, &h, &b), ES_OK);
        assert_string_equal(b.text, first);
        assert_int_equal(b.probe_tokens, 0);
        assert_true(rec.n > 0 && (uint32_t)rec.n == b.n_probes);
        for (int i = 0; i < rec.n; i++) {
            const es_lm_probe *p = &rec.p[i];
            char prefix[1024], want[32], line[1024];
            assert_true(p->at > 0 && p->at <= b.tokens && b.text[p->at - 1] == '\n');
            snprintf(prefix, sizeof prefix, "%.*s", (int)p->at, b.text);
            assert_int_equal(es_task_extract_answer(prefix, want, sizeof want), 1);
            assert_string_equal(p->answer, want);
            assert_int_equal(p->cost, 0);
            assert_true(isnan(p->confidence));
            const char *ls = prefix + p->at - 1;
            while (ls > prefix && ls[-1] != '\n') ls--;
            snprintf(line, sizeof line, "%.*s", (int)(prefix + p->at - 1 - ls), ls);
            assert_true(p->cues & ES_CUE_READ);
            assert_int_equal((p->cues & ES_CUE_CONCLUDE) != 0, strstr(line, "the answer is") != NULL);
            assert_int_equal((p->cues & ES_CUE_CHECK) != 0, strncmp(line, "Wait", 4) == 0);
            concluded += (p->cues & ES_CUE_CONCLUDE) != 0;
            checked += (p->cues & ES_CUE_CHECK) != 0;
        }
    }
    assert_true(concluded > 0 && checked > 0);
    es_lm_gen_free(plain);
    es_lm_gen_free(lines);
    es_lm_free(m);
}


/* Record samples as `generate` does into a traceset item. */
typedef struct rec {
    es_probe probes[64];
    char pans[64][32];
    size_t n;
} rec;

static int rec_probe(void *ctx, const es_lm_probe *p)
{
    rec *r = ctx;
    if (r->n >= 64) return ES_CONTINUE;
    memcpy(r->pans[r->n], p->answer, 32);
    es_probe q = {p->at, p->has_answer ? r->pans[r->n] : NULL, p->confidence,
                  p->window_confidence, p->cost, p->cues};
    r->probes[r->n++] = q;
    return ES_CONTINUE;
}


/* What one sample left: its result, its text and its probes. */
typedef struct drawn {
    es_lm_sample_result res;
    char text[300];
    rec probes;
} drawn;

/* Draw k samples of one question, `per_call` per call of a generator that
 * runs `batch` at once (refilling its lanes when per_call > batch), on
 * `threads`. */
static void draw_samples(const es_lm *m, int batch, int per_call, int threads, int k, drawn *out)
{
    es_lm_pool *pool = NULL;
    assert_int_equal(es_lm_pool_new(threads, &pool, NULL), ES_OK);
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    o.probe_every = 8;
    o.batch = batch;
    o.pool = pool;
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_task_example ex;
    assert_int_equal(es_task_make(ES_TASK_DATE, 3, 1, &ex), ES_OK);
    for (int i0 = 0; i0 < k; i0 += per_call) {
        int n = k - i0 < per_call ? k - i0 : per_call;
        es_rng rngs[16];
        es_lm_gen_hooks hooks[16];
        es_lm_sample_result res[16];
        for (int b = 0; b < n; b++) {
            es_lm_sample_rng(&rngs[b], 3, 1, (uint64_t)(i0 + b));
            out[i0 + b].probes.n = 0;
            hooks[b] = (es_lm_gen_hooks){NULL, rec_probe, NULL, &out[i0 + b].probes};
        }
        assert_int_equal(es_lm_gen_sample_batch(g, ex.prompt, rngs, hooks, res, n), ES_OK);
        for (int b = 0; b < n; b++) {
            out[i0 + b].res = res[b];
            snprintf(out[i0 + b].text, sizeof out[i0 + b].text, "%s", res[b].text);
        }
    }
    es_lm_gen_free(g);
    es_lm_pool_free(pool);
}

/* Samples drawn in lock-step batches (each weight load shared by the batch,
 * the prompt computed once) and on 2 threads are the bytes of samples drawn
 * one at a time on one thread: texts, token counts, confidences and every
 * probe's answer, confidences and cost. */
static void test_batch_matches_single(void **state)
{
    (void)state;
    es_lm *m = load_shipped();
    enum { K = 6 };
    static drawn one[K], other[3][K];
    draw_samples(m, 1, 1, 1, K, one);
    draw_samples(m, 4, 4, 1, K, other[0]);   /* a full batch, then a partial one */
    draw_samples(m, 4, K, 1, K, other[1]);   /* lanes refilled as samples end */
    draw_samples(m, 8, K, 2, K, other[2]);   /* on two threads */
    for (int i = 0; i < K; i++) {
        const drawn *want = &one[i];
        for (int v = 0; v < 3; v++) {
            const drawn *got = &other[v][i];
            assert_string_equal(got->text, want->text);
            assert_int_equal(got->res.tokens, want->res.tokens);
            assert_int_equal(got->res.n_probes, want->res.n_probes);
            assert_int_equal(got->res.probe_tokens, want->res.probe_tokens);
            assert_memory_equal(&got->res.confidence, &want->res.confidence, sizeof(float));
            assert_string_equal(got->res.answer, want->res.answer);
            assert_int_equal(got->probes.n, want->probes.n);
            for (size_t p = 0; p < want->probes.n; p++) {
                const es_probe *a = &got->probes.probes[p], *b = &want->probes.probes[p];
                assert_int_equal(a->at, b->at);
                assert_int_equal(a->cost, b->cost);
                assert_memory_equal(&a->confidence, &b->confidence, sizeof(float));
                assert_memory_equal(&a->window_confidence, &b->window_confidence, sizeof(float));
                assert_string_equal(a->answer ? a->answer : "(null)", b->answer ? b->answer : "(null)");
            }
        }
        assert_true(one[i].probes.n > 0);
    }
    es_lm_free(m);
}

/* The live loop and the replay of the recorded trace make the same
 * decisions and count the same tokens, for within, across and budget rules,
 * with forced probes every 16 tokens and with text probes at line ends. */
static void live_vs_replay(const es_lm *m, const es_lm_gen_opts *o, es_policy *const *pols, size_t n_pols)
{
    enum { K = 5, ITEMS = 2 };
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, o, &g, NULL), ES_OK);
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    static rec recs[K];
    static char answers[K][32];
    es_task_example exs[ITEMS];
    for (int j = 0; j < ITEMS; j++) {
        es_task_kind kind = j ? ES_TASK_DATE : ES_TASK_LAST_LETTERS;
        assert_int_equal(es_task_make(kind, 5, (uint64_t)j, &exs[j]), ES_OK);
        es_sample samples[K];
        for (int i = 0; i < K; i++) {
            es_rng r;
            es_lm_sample_rng(&r, 5, (uint64_t)j, (uint64_t)i);
            recs[i].n = 0;
            es_lm_gen_hooks h = {NULL, rec_probe, NULL, &recs[i]};
            es_lm_sample_result res;
            assert_int_equal(es_lm_gen_sample(g, exs[j].prompt, &r, &h, &res), ES_OK);
            memcpy(answers[i], res.answer, 32);
            es_sample s = {res.has_answer ? answers[i] : NULL, res.tokens, res.confidence, NULL,
                           recs[i].n, recs[i].probes};
            samples[i] = s;
        }
        const char *gold[1] = {exs[j].gold};
        char id[16];
        snprintf(id, sizeof id, "i%d", j);
        es_item it = {id, es_task_name(kind), NULL, es_task_answer_type(kind), 1, gold, K, samples};
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    for (size_t s = 0; s < n_pols; s++) {
        es_policy *p = pols[s];
        es_session *ses = NULL;
        assert_int_equal(es_session_new(p, &ses), ES_OK);
        for (int j = 0; j < ITEMS; j++) {
            es_item_view v;
            assert_int_equal(es_traceset_item(ts, (size_t)j, &v), ES_OK);
            es_outcome want;
            assert_int_equal(es_replay_item(ses, &v, NULL, ES_PROBE_COST_FIELD, &want), ES_OK);
            es_lm_live *lv = NULL;
            assert_int_equal(es_lm_live_new(m, o, p, v.answer_type, K, &lv, NULL), ES_OK);
            es_lm_live_result got;
            assert_int_equal(es_lm_live_item(lv, exs[j].prompt, exs[j].gold, 5, (uint64_t)j, &got), ES_OK);
            print_message("%-22s item %d: replay %u samples %llu+%llu tokens, live %u samples %llu+%llu\n",
                          es_policy_spec(p), j, want.samples, (unsigned long long)want.tokens,
                          (unsigned long long)want.probe_tokens, got.samples,
                          (unsigned long long)got.tokens, (unsigned long long)got.probe_tokens);
            assert_int_equal(got.samples, want.samples);
            assert_int_equal(got.tokens, want.tokens);
            assert_int_equal(got.probe_tokens, want.probe_tokens);
            assert_int_equal(got.probes, want.probes);
            assert_int_equal(got.correct, want.correct);
            const char *wk = want.answer >= 0 && (uint32_t)want.answer < v.n_answers ? v.answer_key[want.answer] : NULL;
            const char *gk = es_lm_live_key(lv, got.answer);
            if (wk || gk) assert_string_equal(wk ? wk : "(null)", gk ? gk : "(null)");
            es_lm_live_free(lv);
        }
        es_session_free(ses);
    }
    es_traceset_free(ts);
    es_lm_gen_free(g);
}

static void test_live_matches_replay(void **state)
{
    (void)state;
    es_lm *m = load_shipped();
    const char *specs[] = {"full", "esc:window=2", "dynasor:k=2", "dynasor:k=2+ac-beta",
                           "budget:tokens=48", "deer:threshold=0.9", "dynasor:k=2,every=2+ac-beta",
                           "convergence:m=1,every=3"};
    enum { N = sizeof specs / sizeof specs[0] };
    es_policy *pols[N + 1];
    for (size_t s = 0; s < N; s++) assert_int_equal(es_policy_new(specs[s], &pols[s], NULL), ES_OK);
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    o.probe_every = 16;
    live_vs_replay(m, &o, pols, N);
    /* text probes at line ends, with a rule on their cues and one on answers */
    es_stopper *st = es_test_cue_stopper();
    assert_int_equal(es_policy_new_stopper("learned", st, &pols[N], NULL), ES_OK);
    es_policy_info info;
    es_policy_get_info(pols[N], &info);
    assert_true(info.reads_cues && info.needs_cues);
    o.probe_every = 0;
    o.probe_lines = 1;
    es_policy *line_pols[3] = {pols[N], pols[2], pols[3]};
    live_vs_replay(m, &o, line_pols, 3);
    for (size_t s = 0; s <= N; s++) es_policy_free(pols[s]);
    es_stopper_free(st);
    es_lm_free(m);
}

/* Two training steps on 1 and on 2 threads give the same bytes: every
 * kernel computes each output in one thread in a fixed order. */
static void test_threads_do_not_change_training(void **state)
{
    (void)state;
    es_lm_config c;
    tiny_config(&c);
    c.dim = 32; c.hidden_dim = 64; c.seq_len = 32; c.n_heads = 4;
    float *after[2];
    size_t n = 0;
    for (int th = 1; th <= 2; th++) {
        es_lm_pool *pool = NULL;
        assert_int_equal(es_lm_pool_new(th, &pool, NULL), ES_OK);
        es_lm *m = NULL;
        es_lm_trainer *t = NULL;
        assert_int_equal(es_lm_new(&c, 2, &m, NULL), ES_OK);
        assert_int_equal(es_lm_trainer_new(m, 4, 32, &t), ES_OK);
        es_lm_trainer_set_pool(t, pool);
        int inp[128], tgt[128];
        tiny_batch(4, 32, inp, tgt, 17);
        es_lm_adamw opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 1.0f};
        for (int s = 1; s <= 2; s++) {
            es_lm_train_forward(t, inp, tgt, 32);
            es_lm_train_backward(t);
            es_lm_adamw_step(t, &opt, s);
        }
        n = es_lm_n_params(m);
        after[th - 1] = malloc(n * sizeof(float));
        memcpy(after[th - 1], es_lm_params(m), n * sizeof(float));
        es_lm_trainer_free(t);
        es_lm_free(m);
        es_lm_pool_free(pool);
    }
    assert_memory_equal(after[0], after[1], n * sizeof(float));
    free(after[0]);
    free(after[1]);
}

int main(void)
{
    /* one thread unless a test makes a pool: the tests check numbers, and
     * threads get tests of their own */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_threads_do_not_change_training),
        cmocka_unit_test(test_short_batch_matches_prefix),
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_training_lowers_loss),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_generation_reproducible),
        cmocka_unit_test(test_line_probes),
        cmocka_unit_test(test_live_matches_replay),
        cmocka_unit_test(test_batch_matches_single),
        cmocka_unit_test(test_fast_exp_accuracy),
        cmocka_unit_test(test_fast_softmax_swiglu_accuracy),
        cmocka_unit_test(test_matmul_rows_batch_invariant),
        cmocka_unit_test(test_pool_counts_and_coverage),
        cmocka_unit_test(test_nonfinite_weights_refused),
        cmocka_unit_test(test_training_stops_on_divergence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
