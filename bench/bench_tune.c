/*
 * bench_tune.c - the tuner's speed, and its guarantee measured on real data.
 *
 *   build/bench/bench_tune [speed|guarantee|all] [SPLITS]
 *
 * speed: `tune` with one family on the largest shared file, and every family
 * on every shared file with 20 orders (targets: under 1 s and under 30 s on
 * the 2-core machine).
 *
 * guarantee: for every shared multi-sample file, and for all of them pooled,
 * SPLITS random halvings into calibration and held-out items (default
 * 200); on each, Learn-then-Test picks a policy at (eps, delta) and the
 * held-out items measure its loss.  Printed: how often something was
 * certified, and the share of splits whose held-out loss exceeded eps, to
 * set against delta (plus binomial noise, 3 sd shown).  Per file: one
 * order per item (0/1 losses: the exact binomial test) and eps 5 points
 * below 1,000 items, 2 above (a half of 369 items, halved again to test,
 * cannot certify less); pooled: 2 orders, eps 0.5 points.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "earlystop_io.h"
#include "earlystop_tune.h"

enum { MAX_FILES = 64 };

static const char *data_dir(void)
{
    const char *d = getenv("ES_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

static int load_all(es_traceset **ts, char names[][512], int *n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/traces/*.jsonl 2>/dev/null", data_dir());
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    *n = 0;
    while (*n < MAX_FILES && fgets(names[*n], 512, p)) {
        names[*n][strcspn(names[*n], "\n")] = '\0';
        es_error err;
        if (es_traceset_load(names[*n], ES_READ_NO_TEXT, &ts[*n], NULL, &err)) {
            fprintf(stderr, "%s: %s\n", names[*n], err.msg);
            pclose(p);
            return -1;
        }
        (*n)++;
    }
    pclose(p);
    return *n ? 0 : -1;
}

static double tune_once(es_tune_data *d, const char *family, uint32_t shuffles, es_tune_point *chosen, int *ok)
{
    es_tune_opts o;
    es_tune_opts_init(&o);
    o.shuffles = shuffles;
    es_tune *t;
    es_error err;
    double t0 = es_wall_seconds();
    if (es_tune_new(d, &o, &t, &err) || es_tune_add_family(t, family, &err)) {
        fprintf(stderr, "tune: %s\n", err.msg);
        exit(1);
    }
    int rc = es_tune_run(t, &err);
    double dt = es_wall_seconds() - t0;
    *ok = rc == ES_OK && es_tune_chosen(t, chosen) == ES_OK;
    es_tune_free(t);
    return dt;
}

static void speed(es_traceset **ts, char names[][512], int n)
{
    int big = 0;
    for (int i = 1; i < n; i++)
        if (es_traceset_n_samples(ts[i]) > es_traceset_n_samples(ts[big])) big = i;
    es_tune_data *one, *all;
    es_tune_data_new(&one);
    es_tune_data_new(&all);
    es_tune_data_add(one, ts[big], names[big]);
    for (int i = 0; i < n; i++) es_tune_data_add(all, ts[i], names[i]);
    es_tune_point c;
    int ok;
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t = tune_once(one, "ac-beta", 10, &c, &ok);
        if (t < best) best = t;
    }
    printf("speed: tune --family ac-beta --shuffles 10 on %s (%zu items, %zu samples): %.3f s best of 3 "
           "[target < 1 s]\n", strrchr(names[big], '/') + 1, es_traceset_n_items(ts[big]), es_traceset_n_samples(ts[big]),
           best);
    double t = tune_once(all, "all", 20, &c, &ok);
    printf("speed: tune --family all --shuffles 20 on all %d files (%zu items): %.1f s [target < 30 s]; chosen %s\n",
           n, es_tune_data_n_items(all), t, ok ? c.spec : "(none)");
    es_tune_data_free(one);
    es_tune_data_free(all);
}

/* One halving of the items of ts[0..m) (each file split in two). */
static void halve(es_traceset **ts, char names[][512], const int *which, int m, uint64_t seed, es_tune_data *cal,
                  es_tune_data *test)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int k = 0; k < m; k++) {
        const es_traceset *t = ts[which[k]];
        size_t n = es_traceset_n_items(t);
        uint32_t *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
        size_t na = 0, nb = 0;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x & 1) a[na++] = (uint32_t)i;
            else b[nb++] = (uint32_t)i;
        }
        es_tune_data_add_items(cal, t, names[which[k]], a, na);
        es_tune_data_add_items(test, t, names[which[k]], b, nb);
        free(a);
        free(b);
    }
}

static void guarantee_on(es_traceset **ts, char names[][512], const int *which, int m, const char *label, double eps,
                         uint32_t shuffles, int splits)
{
    const double delta = 0.1;
    int certified = 0, exceeded = 0;
    double mean_share = 0;
    for (int s = 0; s < splits; s++) {
        es_tune_data *cal, *test;
        es_tune_data_new(&cal);
        es_tune_data_new(&test);
        halve(ts, names, which, m, (uint64_t)s + 1, cal, test);
        es_tune_opts o;
        es_tune_opts_init(&o);
        o.shuffles = shuffles;
        o.seed = (uint64_t)s + 1;
        o.max_em_drop = eps;
        o.delta = delta;
        es_tune *t;
        es_error err;
        if (es_tune_new(cal, &o, &t, &err) || es_tune_add_family(t, "ac-beta", &err)) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        es_tune_point p;
        if (es_tune_run(t, &err) == ES_OK && es_tune_chosen(t, &p) == ES_OK) {
            es_tune_eval ev;
            if (es_tune_evaluate(test, p.spec, &o, &ev, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                exit(1);
            }
            certified++;
            exceeded += ev.p.loss > eps;
            mean_share += ev.p.share;
        }
        es_tune_free(t);
        es_tune_data_free(cal);
        es_tune_data_free(test);
    }
    double noise = 3 * sqrt(delta * (1 - delta) / splits);
    printf("  %-42.42s eps %.1f pt: certified %3d/%d, held-out loss > eps in %3d (%.3f; delta %.2f + 3 sd %.3f = "
           "%.3f)%s; mean token share %.3f\n", label, 100 * eps, certified, splits, exceeded, (double)exceeded / splits,
           delta, noise, delta + noise, (double)exceeded / splits <= delta + noise ? "" : "  ** over **",
           certified ? mean_share / certified : NAN);
    fflush(stdout);
}

static void guarantee(es_traceset **ts, char names[][512], int n, int splits)
{
    printf("guarantee: %d random halvings per file, family ac-beta, loss wrong, delta 0.1\n", splits);
    int which[MAX_FILES], m = 0;
    for (int i = 0; i < n; i++) {
        uint32_t ms, ma;
        es_traceset_max_sizes(ts[i], &ms, &ma);
        if (ms < 2) continue;
        which[m++] = i;
        double eps = es_traceset_n_items(ts[i]) < 1000 ? 0.05 : 0.02;
        guarantee_on(ts, names, &i, 1, strrchr(names[i], '/') + 1, eps, 1, splits);
    }
    guarantee_on(ts, names, which, m, "all multi-sample files pooled", 0.005, 2, splits);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int splits = argc > 2 ? atoi(argv[2]) : 200;
    static es_traceset *ts[MAX_FILES];
    static char names[MAX_FILES][512];
    int n;
    if (load_all(ts, names, &n)) {
        printf("bench_tune: no shared traces under %s: skipped\n", data_dir());
        return 0;
    }
    if (!strcmp(what, "speed") || !strcmp(what, "all")) speed(ts, names, n);
    if (!strcmp(what, "guarantee") || !strcmp(what, "all")) guarantee(ts, names, n, splits);
    for (int i = 0; i < n; i++) es_traceset_free(ts[i]);
    return 0;
}
