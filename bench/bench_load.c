/*
 * bench_load.c - how fast the trace layer loads, how much memory a loaded
 * set takes, and how fast a replayed vote runs.
 *
 * Targets of the issue: load >= 100 MB/s and memory < 3x the file size with
 * texts dropped; 2 reader threads never much slower than 1, also on a busy
 * machine (scripts/bench-busy.sh runs this with a CPU hog per core).  Figures only: timing depends on the machine, so nothing
 * here fails on a slow run (only on a load error).
 *
 * Usage: bench_load [FILE]   (default: the largest file of
 *                             $ES_SHARED_DATA/traces, ../shared/data if unset)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "earlystop_io.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Peak resident set size in bytes (ru_maxrss is KiB on Linux). */
static double peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* Current resident set size in bytes, from /proc (0 where unavailable). */
static double cur_rss(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!fp) return 0;
    if (fscanf(fp, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(fp);
    return (double)res * (double)sysconf(_SC_PAGESIZE);
}

/* Largest regular file in dir; 0 when none. */
static int largest_file(const char *dir, char *out, size_t cap, off_t *size)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    *size = -1;
    while ((e = readdir(d))) {
        char p[4096];
        struct stat sb;
        int n = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof p || (size_t)n >= cap) continue; /* path too long */
        if (stat(p, &sb) || !S_ISREG(sb.st_mode)) continue;
        if (sb.st_size > *size) {
            *size = sb.st_size;
            memcpy(out, p, (size_t)n + 1);
        }
    }
    closedir(d);
    return *size >= 0;
}

static int fail(const char *what, const es_error *err)
{
    char buf[1024];
    es_error_format(err, buf, sizeof buf);
    fprintf(stderr, "bench_load: %s: %s\n", what, buf);
    return 1;
}

int main(int argc, char **argv)
{
    char path[4096];
    off_t size = 0;
    if (argc > 1) {
        struct stat sb;
        snprintf(path, sizeof path, "%s", argv[1]);
        if (stat(path, &sb)) {
            perror(path);
            return 1;
        }
        size = sb.st_size;
    } else {
        const char *data = getenv("ES_SHARED_DATA");
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/traces", data && *data ? data : "../shared/data");
        if (!largest_file(dir, path, sizeof path, &size)) {
            printf("bench_load: no trace files in %s (set ES_SHARED_DATA); nothing to measure\n", dir);
            return 0;
        }
    }
    double mb = (double)size / 1e6;
    printf("file: %s (%.2f MB)\n", path, mb);

    /* Memory first, on a fresh process, so the peak belongs to this load. */
    double rss0 = cur_rss(), peak0 = peak_rss();
    es_traceset *ts;
    es_error err = {0};
    size_t skipped = 0;
    if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, &skipped, &err)) return fail("load", &err);
    double rss1 = cur_rss(), peak1 = peak_rss();
    size_t bytes = es_traceset_bytes(ts);
    printf("set: %zu items, %zu samples, %zu probes, %zu skipped\n", es_traceset_n_items(ts),
           es_traceset_n_samples(ts), es_traceset_n_probes(ts), skipped);
    printf("memory (texts dropped): es_traceset_bytes %.2f MB = %.3fx file; RSS growth %.2f MB = %.3fx; "
           "peak RSS %.2f MB (growth of peak during load %.2f MB = %.3fx)  [target < 3x]\n",
           bytes / 1e6, bytes / (double)size, (rss1 - rss0) / 1e6, (rss1 - rss0) / (double)size, peak1 / 1e6,
           (peak1 - peak0) / 1e6, (peak1 - peak0) / (double)size);

    /* Load speed on 1 and 2 reader threads, runs interleaved so that both
     * see the same machine (the file is in the page cache after the first
     * load, which is what a replay loop sees). */
    enum { RUNS = 5 };
    static const int threads[2] = {1, 2};
    double best[2] = {1e30, 1e30}, sum[2] = {0, 0}, rbest[2] = {1e30, 1e30};
    for (int i = 0; i < RUNS; i++)
        for (int t = 0; t < 2; t++) {
            es_read_opts o;
            es_read_opts_init(&o);
            o.flags = ES_READ_NO_TEXT;
            o.threads = threads[t];
            es_traceset *t2;
            double t0 = now();
            if (es_traceset_load_opts(path, &o, &t2, NULL, &err)) return fail("load", &err);
            double dt = now() - t0;
            es_traceset_free(t2);
            if (dt < best[t]) best[t] = dt;
            sum[t] += dt;
            /* the streaming reader alone: parse and validate, no set */
            es_trace_reader *r;
            t0 = now();
            if (es_trace_reader_open_opts(path, &o, &r, &err)) return fail("open", &err);
            es_item it;
            int rc;
            while ((rc = es_trace_reader_next(r, &it, &err)) == ES_OK) {}
            es_trace_reader_free(r);
            if (rc != ES_EOF) return fail("read", &err);
            dt = now() - t0;
            if (dt < rbest[t]) rbest[t] = dt;
        }
    for (int t = 0; t < 2; t++)
        printf("es_traceset_load (NO_TEXT), %d thread%s: best %.1f MB/s, mean %.1f MB/s over %d runs; "
               "reader loop alone best %.1f MB/s  [target >= 100 MB/s]\n",
               threads[t], threads[t] > 1 ? "s" : " ", mb / best[t], mb * RUNS / sum[t], RUNS, mb / rbest[t]);
    printf("2 threads / 1 thread (load, mean): %.2fx faster\n", sum[0] / sum[1]);

    /* Replayed majority votes over every item, many times. */
    size_t n_items = es_traceset_n_items(ts);
    uint32_t max_ans = 1;
    es_item_view v;
    for (size_t i = 0; i < n_items; i++) {
        es_traceset_item(ts, i, &v);
        if (v.n_answers > max_ans) max_ans = v.n_answers;
    }
    es_tally *tally = NULL;
    if (es_tally_new(max_ans, &tally)) return 1;
    volatile int64_t sink = 0;
    size_t votes = 0;
    double t0 = now(), dt;
    do {
        for (int rep = 0; rep < 100; rep++)
            for (size_t i = 0; i < n_items; i++) {
                es_traceset_item(ts, i, &v);
                sink += es_vote_majority(v.answer, v.n_samples, tally);
                votes++;
            }
        dt = now() - t0;
    } while (dt < 1.0);
    printf("es_vote_majority: %.3g votes/s (%.1f samples per vote, %zu votes in %.2f s)\n", votes / dt,
           (double)es_traceset_n_samples(ts) / (double)(n_items ? n_items : 1), votes, dt);
    es_tally_free(tally);
    es_traceset_free(ts);
    return 0;
}
