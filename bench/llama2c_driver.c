/* llama2c_driver.c - times llama2.c's run.c on the loop bench_model times.
 *
 * Not built by `make`: bench/llama2c_compare.sh compiles it against
 * ../shared/ref/llama2.c/run.c (which it #includes with TESTING defined, so
 * run.c's main is left out) into a temporary directory, with run.c's fastest
 * flags.  Nothing of run.c is in the repository and no binary built from it
 * is kept.
 *
 * The loop is the one bench_model's `stream` mode times on the built-in
 * model: BOS, then at every position of the context run.c's forward(), its
 * sampler at temperature 1 with top-p off (softmax and one draw), the drawn
 * token fed next.  The exported checkpoint swaps token ids 0 and 1 so that
 * run.c's BOS (1) is the model's BOS.
 *
 *   llama2c_driver CHECKPOINT time CONTEXTS   -> "<tok/s> <tok per CPU-second>"
 *   llama2c_driver CHECKPOINT greedy          -> the greedy token ids, one line
 *                                                (in the model's numbering)
 */
#define TESTING
#include "run.c"

/* Monotonic and finer than run.c's millisecond clock; the CPU clock counts
 * only the time this process ran (all its threads). */
static double driver_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One full context from BOS, sampling every next token. */
static long driver_context(Transformer *t, Sampler *s)
{
    int T = t->config.seq_len, tok = 1;
    for (int pos = 0; pos < T; pos++) tok = sample(s, forward(t, tok, pos));
    return T;
}

/* run.c numbers BOS 1 and EOS 2 by convention; the export swapped 0 and 1. */
static int driver_unswap(int tok)
{
    return tok == 0 ? 1 : tok == 1 ? 0 : tok;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: llama2c_driver CHECKPOINT time CONTEXTS | greedy\n");
        return 2;
    }
    Transformer t;
    build_transformer(&t, argv[1]);
    int rc = 0;
    if (!strcmp(argv[2], "time") && argc > 3) {
        Sampler s;
        build_sampler(&s, t.config.vocab_size, 1.0f, 1.0f, 1234);
        long reps = atol(argv[3]), toks = 0;
        driver_context(&t, &s);   /* warm up */
        double t0 = driver_clock(CLOCK_MONOTONIC), c0 = driver_clock(CLOCK_PROCESS_CPUTIME_ID);
        for (long i = 0; i < reps; i++) toks += driver_context(&t, &s);
        double c1 = driver_clock(CLOCK_PROCESS_CPUTIME_ID), t1 = driver_clock(CLOCK_MONOTONIC);
        printf("%.1f %.1f\n", (double)toks / (t1 - t0), (double)toks / (c1 - c0));
        free_sampler(&s);
    } else if (!strcmp(argv[2], "greedy")) {
        int tok = 1;
        for (int pos = 0; pos + 1 < t.config.seq_len; pos++) {
            tok = sample_argmax(forward(&t, tok, pos), t.config.vocab_size);
            printf("%s%d", pos ? " " : "", driver_unswap(tok));
        }
        printf("\n");
    } else {
        fprintf(stderr, "llama2c_driver: unknown mode '%s'\n", argv[2]);
        rc = 2;
    }
    free_transformer(&t);
    return rc;
}
