/*
 * bench_replay.c - how fast policies replay: sample-decisions per second
 * (samples drawn, summed over items and orders, / wall time) for `ac-beta`
 * and `esc` over 1,000 random orders of the ESC last-letters file, on one
 * thread and on two.
 *
 * The threaded run is `earlystop eval`'s (through es_report): es_eval_threads,
 * whose threads take contiguous chunks of the orders, each with its own clone
 * of the policy, its es_session and its integer accumulators; the sums are
 * merged at the end (and checked equal to the one-thread sums: the split
 * must not change a figure).
 *
 * Target of the issue: 20 million sample-decisions/s per core.  A pass is one
 * random order of every item; bench/replay_vs_python.sh sets the time of one
 * pass through the CLI against the Python reference rule.  Figures only:
 * nothing fails on a slow machine, only on a load error or a mismatch.
 *
 * Usage: bench_replay [FILE] [SHUFFLES]
 *   default $ES_SHARED_DATA/traces/esc_last_letters_gpt35_k40.jsonl, 1000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "earlystop_io.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the whole process (all threads): cpu / wall says how many
 * cores a threaded run really got, which tells a loaded machine from code
 * that does not scale. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t total_samples(const es_eval_acc *acc, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += acc[i].samples;
    return s;
}

/* Replay clones of `proto` over orders [0, shuffles) on `threads` threads
 * into acc; returns the wall time, or a negative value on error. */
static double replay(const es_traceset *ts, const es_policy *proto, uint32_t shuffles, int threads, es_eval_acc *acc,
                     double *cpu)
{
    memset(acc, 0, es_traceset_n_items(ts) * sizeof *acc);
    double t0 = now(), c0 = cpu_now();
    int failed = es_eval_threads(ts, proto, 1, shuffles, threads, ES_PROBE_COST_FIELD, acc, NULL);
    double dt = now() - t0;
    *cpu = cpu_now() - c0;
    return failed ? -1.0 : dt;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("ES_SHARED_DATA");
    char path[4096];
    if (argc > 1) snprintf(path, sizeof path, "%s", argv[1]);
    else snprintf(path, sizeof path, "%s/traces/esc_last_letters_gpt35_k40.jsonl", dir && *dir ? dir : "../shared/data");
    uint32_t shuffles = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1000;
    if (!shuffles) shuffles = 1000;
    es_traceset *ts;
    es_error err = {0};
    if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err)) {
        char buf[1024];
        es_error_format(&err, buf, sizeof buf);
        fprintf(stderr, "bench_replay: %s (set ES_SHARED_DATA)\n", buf);
        return 1;
    }
    size_t n = es_traceset_n_items(ts);
    int threads = 2; /* the figure: 2 threads against 1 */
    printf("bench_replay: %s: %zu items, %zu samples, %u shuffles, %d threads\n", path, n,
           es_traceset_n_samples(ts), shuffles, threads);
    es_eval_acc *one = calloc(n, sizeof *one), *all = calloc(n, sizeof *all);
    if (!one || !all) return 1;
    static const char *const specs[] = {"ac-beta", "esc"};
    int status = 0;
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        es_policy *proto = NULL;
        if (es_policy_new(specs[k], &proto, &err)) {
            fprintf(stderr, "bench_replay: %s: %s\n", specs[k], err.msg);
            return 1;
        }
        /* a short warm-up run so page faults and frequency ramps are not timed */
        double c1, cn;
        replay(ts, proto, shuffles / 10 + 1, 1, one, &c1);
        double t1 = replay(ts, proto, shuffles, 1, one, &c1);
        double tn = replay(ts, proto, shuffles, threads, all, &cn);
        es_policy_free(proto);
        if (t1 < 0 || tn < 0) {
            fprintf(stderr, "bench_replay: %s: replay failed\n", specs[k]);
            return 1;
        }
        if (memcmp(one, all, n * sizeof *one)) {
            fprintf(stderr, "bench_replay: %s: %d-thread sums differ from 1-thread sums\n", specs[k], threads);
            status = 1;
        }
        double dec = (double)total_samples(one, n), r1 = dec / t1, rn = dec / tn;
        printf("%-8s %.0f decisions (%.3f samples/item)\n"
               "  1 thread:  %7.2f M/s  (%.3f s wall, %.3f s cpu; %.1f us per pass over the file)\n"
               "  %d threads: %7.2f M/s  (%.3f s wall, %.3f s cpu: %.2f cores busy; %.2f M/s per busy core; "
               "%.1f us per pass)\n"
               "  ratio %d/1 threads: %.2f   [target: 20 M/s per core]\n",
               specs[k], dec, dec / ((double)n * shuffles), r1 / 1e6, t1, c1, 1e6 * t1 / shuffles, threads, rn / 1e6,
               tn, cn, cn / tn, dec / cn / 1e6, 1e6 * tn / shuffles, threads, rn / r1);
    }
    free(one);
    free(all);
    es_traceset_free(ts);
    return status;
}
