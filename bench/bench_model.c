/* bench_model.c - speed of the built-in model: generation tokens/s on 1 and
 * 2 threads, batch 1 and a batch of self-consistency samples, and training
 * tokens/s.  Prints figures; asserts nothing about time.
 *
 * ES_BENCH_QUICK=1 shortens every measurement (for smoke runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "earlystop_lm.h"

/* Monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each measurement sets its own thread count. */
static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* The same work run.c does per token (softmax + draw), for a fair comparison. */
static int sample_from(const float *logits, int n, es_rng *r)
{
    float p[ES_LM_VOCAB], mx = logits[0], s = 0;
    for (int i = 1; i < n; i++) if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < n; i++) { p[i] = __builtin_expf(logits[i] - mx); s += p[i]; }
    float u = es_rng_float(r) * s, c = 0;
    for (int i = 0; i < n; i++) { c += p[i]; if (u < c) return i; }
    return n - 1;
}

/* One full context: every position fed, next token sampled (as run.c's loop). */
static long one_sequence(const es_lm *m, es_lm_state *s, es_rng *r)
{
    int T = es_lm_get_config(m)->seq_len, tok = ES_LM_BOS;
    for (int pos = 0; pos < T; pos++) {
        const float *lg = es_lm_forward(m, s, tok, pos);
        tok = sample_from(lg, ES_LM_VOCAB, r);
    }
    return T;
}

/* One warm-up context, then `reps` full contexts on one state. */
static double bench_batch1(const es_lm *m, int threads, int reps)
{
    set_threads(threads);
    es_lm_state *s = NULL;
    if (es_lm_state_new(m, &s)) return 0;
    es_rng r;
    es_rng_seed(&r, 1);
    one_sequence(m, s, &r);   /* warm up */
    long toks = 0;
    double t0 = now_s();
    for (int i = 0; i < reps; i++) toks += one_sequence(m, s, &r);
    double el = now_s() - t0;
    es_lm_state_free(s);
    return toks / el;
}

/* K samples of one question at once: one state per sample, samples spread
 * over the threads (the kernels then run single-threaded inside). */
static double bench_batchk(const es_lm *m, int threads, int k, int reps)
{
    set_threads(threads);
    es_lm_state **s = calloc((size_t)k, sizeof *s);
    for (int i = 0; i < k; i++) if (es_lm_state_new(m, &s[i])) return 0;
    long toks = 0;
    double t0 = now_s();
    for (int rep = 0; rep < reps; rep++) {
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : toks)
        for (int i = 0; i < k; i++) {
            es_rng r;
            es_rng_stream(&r, 1, (uint64_t)rep, (uint64_t)i);
            toks += one_sequence(m, s[i], &r);
        }
    }
    double el = now_s() - t0;
    for (int i = 0; i < k; i++) es_lm_state_free(s[i]);
    free(s);
    return toks / el;
}

/* The real sampling path (generator, sampler, token confidence), one
 * question's samples with probes every 16 tokens. */
static double bench_gen(const es_lm *m, int threads, int k, int *ntok)
{
    set_threads(threads);
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    o.probe_every = 16;
    es_lm_gen *g = NULL;
    if (es_lm_gen_new(m, &o, &g, NULL)) return 0;
    es_task_example ex;
    es_task_make(ES_TASK_DATE, 1, 0, &ex);
    long toks = 0;
    double t0 = now_s();
    for (int i = 0; i < k; i++) {
        es_rng r;
        es_lm_sample_rng(&r, 1, 0, (uint64_t)i);
        es_lm_sample_result res;
        if (es_lm_gen_sample(g, ex.prompt, &r, NULL, &res) == ES_OK)
            toks += res.tokens + res.probe_tokens + (long)strlen(ex.prompt) + 1;
    }
    double el = now_s() - t0;
    es_lm_gen_free(g);
    *ntok = (int)toks;
    return toks / el;
}

/* Random tokens: speed does not depend on the data. */
static double bench_train(es_lm *m, int threads, int B, int steps)
{
    set_threads(threads);
    int T = es_lm_get_config(m)->seq_len;
    es_lm_trainer *t = NULL;
    if (es_lm_trainer_new(m, B, T, &t)) return 0;
    int *inp = malloc(sizeof(int) * (size_t)B * T), *tgt = malloc(sizeof(int) * (size_t)B * T);
    es_rng r;
    es_rng_seed(&r, 3);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int)es_rng_below(&r, ES_LM_VOCAB);
        tgt[i] = (int)es_rng_below(&r, ES_LM_VOCAB);
    }
    es_lm_adamw opt = {1e-6f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    double t0 = now_s();
    for (int s = 1; s <= steps; s++) {
        es_lm_train_forward(t, inp, tgt, T);
        es_lm_train_backward(t);
        es_lm_adamw_step(t, &opt, s);
    }
    double el = now_s() - t0;
    free(inp);
    free(tgt);
    es_lm_trainer_free(t);
    return (double)B * T * steps / el;
}

/* The shipped model when present, else random weights of the same shape. */
int main(void)
{
    int quick = getenv("ES_BENCH_QUICK") != NULL;
    es_lm *m = NULL;
    const char *path = es_lm_default_path();
    es_error err;
    if (es_lm_load(path, &m, &err)) {
        es_lm_config c;
        es_lm_config_default(&c);
        if (es_lm_new(&c, 1, &m, NULL)) return 1;
        path = "(random weights, default shape)";
    }
    const es_lm_config *c = es_lm_get_config(m);
    printf("model %s: %zu parameters, dim %d, hidden %d, %d layers, %d heads, vocab %d, seq %d\n",
           path, es_lm_n_params(m), c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->vocab_size,
           c->seq_len);
    int reps = quick ? 2 : 20, k = 16, steps = quick ? 1 : 4;
    for (int th = 1; th <= 2; th++)
        printf("generation, batch 1,  %d thread%s: %8.0f tok/s (full %d-token contexts)\n", th,
               th > 1 ? "s" : "", bench_batch1(m, th, reps), c->seq_len);
    for (int th = 1; th <= 2; th++)
        printf("generation, batch %d, %d thread%s: %8.0f tok/s (self-consistency samples at once)\n",
               k, th, th > 1 ? "s" : "", bench_batchk(m, th, k, quick ? 1 : 3));
    for (int th = 1; th <= 2; th++) {
        int n = 0;
        double v = bench_gen(m, th, quick ? 2 : k, &n);
        printf("sampling path with probes, %d thread%s: %8.0f tok/s (%d tokens incl. prompt, probes)\n",
               th, th > 1 ? "s" : "", v, n);
    }
    for (int th = 1; th <= 2; th++)
        printf("training, batch 16 x %d,   %d thread%s: %8.0f tok/s (forward+backward+AdamW)\n",
               c->seq_len, th, th > 1 ? "s" : "", bench_train(m, th, 16, steps));
    es_lm_free(m);
    return 0;
}
