/* bench_model.c - speed of the built-in model.  Prints figures; asserts
 * nothing about time.
 *
 *   bench_model                      the report: single-stream and batched
 *                                    generation on 1 and 2 threads (measured
 *                                    interleaved, medians), training
 *   bench_model stream TH CONTEXTS   tok/s of the run.c loop (below) and tokens
 *                                    per CPU-second, one line
 *   bench_model gen TH BATCH K       tok/s of the real sampling path: K
 *                                    samples of one question, BATCH at once
 *   bench_model greedy               greedy token ids from BOS, one line
 *   bench_model export PATH          the model as a llama2.c checkpoint
 *
 * bench/llama2c_compare.sh uses the last four to time llama2.c's run.c on the
 * same loop, shape and weights, interleaved with ours, with and without a
 * CPU hog.  ES_BENCH_QUICK=1 shortens the report (smoke runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "earlystop_lm.h"

/* Monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (all threads): on a machine shared with
 * other work, tokens per CPU-second of one thread tell the code's speed
 * apart from the share of the core it got. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A pool of n threads (NULL for 1); exits on failure, this is a bench. */
static es_lm_pool *pool_of(int n)
{
    es_lm_pool *p = NULL;
    if (n > 1 && es_lm_pool_new(n, &p, NULL)) {
        fprintf(stderr, "bench_model: no thread pool\n");
        exit(1);
    }
    return p;
}

/* The same work run.c's sampler does per token (softmax + one draw). */
static int sample_from(const float *logits, int n, es_rng *r)
{
    float p[ES_LM_VOCAB], mx = logits[0], s = 0;
    for (int i = 1; i < n; i++) if (logits[i] > mx) mx = logits[i];
    for (int i = 0; i < n; i++) { p[i] = __builtin_expf(logits[i] - mx); s += p[i]; }
    float u = es_rng_float(r) * s, c = 0;
    for (int i = 0; i < n; i++) { c += p[i]; if (u < c) return i; }
    return n - 1;
}

/* One full context: every position fed, next token sampled (run.c's loop). */
static long one_sequence(const es_lm *m, es_lm_state *s, es_rng *r)
{
    int T = es_lm_get_config(m)->seq_len, tok = ES_LM_BOS;
    for (int pos = 0; pos < T; pos++) {
        const float *lg = es_lm_forward(m, s, tok, pos);
        tok = sample_from(lg, ES_LM_VOCAB, r);
    }
    return T;
}

/* One warm-up context, then `reps` full contexts on one state; *cpu_rate
 * (when not NULL) gets tokens per CPU-second. */
static double bench_stream(const es_lm *m, int threads, int reps, double *cpu_rate)
{
    es_lm_pool *pool = pool_of(threads);
    es_lm_state *s = NULL;
    if (es_lm_state_new(m, &s)) return 0;
    es_lm_state_set_pool(s, pool);
    es_rng r;
    es_rng_seed(&r, 1);
    one_sequence(m, s, &r);
    long toks = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < reps; i++) toks += one_sequence(m, s, &r);
    double el = now_s() - t0, cel = cpu_s() - c0;
    es_lm_state_free(s);
    es_lm_pool_free(pool);
    if (cpu_rate) *cpu_rate = toks / cel;
    return toks / el;
}

/* The real sampling path (generator, sampler, token confidence, probes
 * every 16 tokens): k samples of one question in one call, `batch` of them
 * in lock-step (a finished sample's lane takes the next).  Counts the
 * tokens each sample generated and its probes fed (the prompt is left out:
 * a batch computes it once for all its samples). */
static double bench_gen(const es_lm *m, int threads, int batch, int k, double *cpu_rate)
{
    es_lm_pool *pool = pool_of(threads);
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    o.probe_every = 16;
    o.batch = batch;
    o.pool = pool;
    es_lm_gen *g = NULL;
    es_rng *rngs = calloc((size_t)k, sizeof *rngs);
    es_lm_sample_result *res = calloc((size_t)k, sizeof *res);
    if (!rngs || !res || es_lm_gen_new(m, &o, &g, NULL)) return 0;
    es_task_example ex;
    es_task_make(ES_TASK_DATE, 1, 0, &ex);
    long toks = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (int i = 0; i < k; i++) es_lm_sample_rng(&rngs[i], 1, 0, (uint64_t)i);
    if (es_lm_gen_sample_batch(g, ex.prompt, rngs, NULL, res, k) != ES_OK) return 0;
    for (int i = 0; i < k; i++) toks += res[i].tokens + res[i].probe_tokens;
    double el = now_s() - t0, cel = cpu_s() - c0;
    es_lm_gen_free(g);
    free(rngs);
    free(res);
    es_lm_pool_free(pool);
    if (cpu_rate) *cpu_rate = toks / cel;
    return toks / el;
}

/* Random tokens: speed does not depend on the data. */
static double bench_train(es_lm *m, int threads, int B, int steps)
{
    es_lm_pool *pool = pool_of(threads);
    int T = es_lm_get_config(m)->seq_len;
    es_lm_trainer *t = NULL;
    if (es_lm_trainer_new(m, B, T, &t)) return 0;
    es_lm_trainer_set_pool(t, pool);
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
    es_lm_pool_free(pool);
    return (double)B * T * steps / el;
}

/* llama2.c's legacy checkpoint (run.c reads it): 7 ints (dim, hidden, layers,
 * heads, kv heads = heads, vocab > 0 = shared classifier, seq), the tensors in
 * our order (it is llama2.c's), then the two unused RoPE tables.  Token ids 0
 * and 1 are swapped so that run.c's BOS (1) is ours. */
static int export_llama2c(const es_lm *m, const char *path)
{
    const es_lm_config *c = es_lm_get_config(m);
    FILE *fp = fopen(path, "wb");
    if (!fp) return 1;
    int hdr[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_heads, c->vocab_size, c->seq_len};
    const float *p = es_lm_params_const(m);
    size_t d = (size_t)c->dim, n = es_lm_n_params(m), rope = (size_t)c->seq_len * d / (size_t)c->n_heads;
    int ok = fwrite(hdr, sizeof hdr, 1, fp) == 1 && fwrite(p + d, sizeof(float), d, fp) == d &&
             fwrite(p, sizeof(float), d, fp) == d &&
             fwrite(p + 2 * d, sizeof(float), n - 2 * d, fp) == n - 2 * d;
    float zero = 0.0f;
    for (size_t i = 0; ok && i < rope; i++) ok = fwrite(&zero, sizeof zero, 1, fp) == 1;
    return (fclose(fp) == 0 && ok) ? 0 : 1;
}

/* The greedy continuation of BOS over the whole context, one line of ids. */
static void print_greedy(const es_lm *m)
{
    es_lm_state *s = NULL;
    if (es_lm_state_new(m, &s)) return;
    int T = es_lm_get_config(m)->seq_len, tok = ES_LM_BOS;
    for (int pos = 0; pos + 1 < T; pos++) {
        const float *lg = es_lm_forward(m, s, tok, pos);
        tok = 0;
        for (int i = 1; i < ES_LM_VOCAB; i++) if (lg[i] > lg[tok]) tok = i;
        printf("%s%d", pos ? " " : "", tok);
    }
    printf("\n");
    es_lm_state_free(s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The report: each round measures every configuration once, in alternating
 * order, so that a change in the machine's load hits all of them alike.
 * Wall-clock tok/s, and for one thread tokens per CPU-second (the code's
 * speed apart from the share of the core it got). */
static void report(es_lm *m, const char *path, int quick)
{
    const es_lm_config *c = es_lm_get_config(m);
    printf("model %s: %zu parameters, dim %d, hidden %d, %d layers, %d heads, vocab %d, seq %d; %d cores\n",
           path, es_lm_n_params(m), c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->vocab_size,
           c->seq_len, es_lm_cpu_count());
    enum { ROWS = 4, MAXR = 9 };
    static const char *const names[ROWS] = {"single stream (run.c's loop: full contexts)",
                                            "sampling path, probes every 16, batch 1",
                                            "sampling path, probes every 16, batch 8",
                                            "sampling path, probes every 16, batch 16"};
    static const int batch[ROWS] = {0, 1, 8, 16};
    int rounds = quick ? 1 : 5, reps = quick ? 1 : 8, k = quick ? 8 : 32;
    double wall[ROWS][2][MAXR], cpu[ROWS][MAXR];
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < 2 * ROWS; i++) {
            int cfg = r % 2 ? 2 * ROWS - 1 - i : i, row = cfg / 2, th = 1 + cfg % 2;
            double cr = 0;
            wall[row][th - 1][r] = row == 0 ? bench_stream(m, th, reps, &cr) : bench_gen(m, th, batch[row], k, &cr);
            if (th == 1) cpu[row][r] = cr;
        }
    double med[ROWS][3];
    for (int i = 0; i < ROWS; i++) {
        med[i][0] = median(wall[i][0], rounds);
        med[i][1] = median(wall[i][1], rounds);
        med[i][2] = median(cpu[i], rounds);
    }
    printf("generation, median of %d interleaved rounds     1 thread  2 threads   tok per CPU-s, 1 thread\n", rounds);
    for (int i = 0; i < ROWS; i++)
        printf("  %-44s %9.0f  %9.0f   %9.0f\n", names[i], med[i][0], med[i][1], med[i][2]);
    for (int i = 2; i < ROWS; i++)
        printf("  batch %-2d / batch 1 on the sampling path      %8.2fx  %8.2fx   %8.2fx\n", batch[i],
               med[i][0] / med[1][0], med[i][1] / med[1][1], med[i][2] / med[1][2]);
    int steps = quick ? 1 : 3;
    for (int th = 1; th <= 2; th++)
        printf("training, batch 16 x %d,   %d thread%s: %8.0f tok/s (forward+backward+AdamW)\n", c->seq_len,
               th, th > 1 ? "s" : "", bench_train(m, th, 16, steps));
}

/* The shipped model when present, else random weights of the same shape. */
int main(int argc, char **argv)
{
    es_lm *m = NULL;
    const char *path = es_lm_default_path();
    if (es_lm_load(path, &m, NULL)) {
        es_lm_config c;
        es_lm_config_default(&c);
        if (es_lm_new(&c, 1, &m, NULL)) return 1;
        path = "(random weights, default shape)";
    }
    int rc = 0;
    if (argc > 2 && !strcmp(argv[1], "export")) {
        rc = export_llama2c(m, argv[2]);
    } else if (argc > 1 && !strcmp(argv[1], "greedy")) {
        print_greedy(m);
    } else if (argc > 3 && !strcmp(argv[1], "stream")) {
        double cpu = 0, wall = bench_stream(m, atoi(argv[2]), atoi(argv[3]), &cpu);
        printf("%.1f %.1f\n", wall, cpu);
    } else if (argc > 4 && !strcmp(argv[1], "gen")) {
        double cpu = 0, wall = bench_gen(m, atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), &cpu);
        printf("%.1f %.1f\n", wall, cpu);
    } else if (argc > 1) {
        fprintf(stderr, "usage: bench_model [stream TH CONTEXTS | gen TH BATCH K | greedy | export PATH]\n");
        rc = 2;
    } else {
        report(m, path, getenv("ES_BENCH_QUICK") != NULL);
    }
    es_lm_free(m);
    return rc;
}
