/*
 * bench_meta.c - the meta-learner, leave one task out over the shared files.
 *
 *   build/bench/bench_meta [--shuffles R] [--draws D] [--k 8,16,32]
 *                          [--family NAME] [--extra FILE...] [--threads N]
 *
 * Every shared trace file with more than one sample per item is a task.
 * For each task t: a prior is trained on every OTHER task (and the --extra
 * files, e.g. built-in model tasks, which are never held out); then, for k
 * in 8, 16, 32 and D draws (default 20) of k of t's items, each method
 * chooses a policy from those k items and is measured on t's OTHER items:
 *
 *   (a) default   the prior's default point, nothing from the k items
 *   (b) scratch   from the k items alone, with a guarantee: the most
 *                 aggressive grid point Learn-then-Test certifies on them,
 *                 else full (at eps = 0.5 pt this certifies nothing below
 *                 about 460 items, so (b) is full)
 *   (b') emp      from the k items alone, no guarantee: the most aggressive
 *                 point whose loss on them is within eps
 *   (c) adapt     the descriptor's prediction + shrinkage of the k items'
 *                 estimate (es_meta_adapt, ES_META_ADAPT)
 *       shrink    shrinkage toward the population mean (no descriptor)
 *       desc      the descriptor's prediction alone
 *   (d) ceiling   the task's best point on all its items (which include the
 *                 held-out ones: an upper reference, not a method)
 *
 * Figures per task are means over the draws of the held-out items' token
 * share (tokens / full's, per item) and EM change against full (points).
 * With labels: the k items' loss is "wrong where full is right"; without:
 * "disagrees with full" (no gold), and (d) is tuned with that loss too.
 * EM is always measured with the gold answers of the held-out items.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "earlystop_io.h"
#include "earlystop_meta.h"
#include "meta/meta_int.h"

enum { MAX_FILES = 96, MAX_K = 8 };

static const es_meta_method methods[] = {ES_META_DEFAULT, ES_META_SCRATCH_LTT, ES_META_SCRATCH, ES_META_ADAPT,
                                         ES_META_SHRINK, ES_META_DESCRIPTOR};
enum { N_METHODS = sizeof methods / sizeof methods[0], N_COLS = N_METHODS + 1 /* + ceiling */ };
static const char *const col_name[N_COLS] = {"(a) default", "(b) scratch", "(b') emp", "(c) adapt", "shrink", "desc",
                                             "(d) ceiling"};
enum { C_DEFAULT, C_LTT, C_EMP, C_ADAPT, C_SHRINK, C_DESC, C_CEIL };

static const char *data_dir(void)
{
    const char *d = getenv("ES_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

typedef struct task_in {
    char path[512];
    const char *name;
    es_traceset *ts;
    es_meta_task *t;
} task_in;

static int load_task(task_in *ti, const es_meta_opts *o)
{
    es_error err = {0};
    if (es_traceset_load(ti->path, ES_READ_NO_TEXT, &ti->ts, NULL, &err) ||
        es_meta_task_new(ti->ts, ti->path, NULL, 0, NULL, o, &ti->t, &err)) {
        fprintf(stderr, "bench_meta: %s: %s\n", ti->path, err.msg);
        return -1;
    }
    const char *s = strrchr(ti->path, '/');
    ti->name = s ? s + 1 : ti->path;
    return 0;
}

/* Per task, label kind, k and column: sums over draws. */
typedef struct cell_sum {
    double share, dem, cert;
    int n;
} cell_sum;

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    if (n == 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, by_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t name_seed(const char *s, uint64_t k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h ^ (k * 0x9E3779B97F4A7C15ULL);
}

int main(int argc, char **argv)
{
    es_meta_opts o;
    es_meta_opts_init(&o);
    int draws = 20, n_k = 3, threads = 0;
    double ks[MAX_K] = {8, 16, 32};
    const char *family = NULL;
    int summary = 0;
    static task_in in[MAX_FILES];
    int n_in = 0, n_shared = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--shuffles") && v) o.shuffles = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(a, "--draws") && v) draws = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--family") && v) family = argv[++i];
        else if (!strcmp(a, "--summary")) summary = 1;
        else if (!strcmp(a, "--k") && v) {
            n_k = 0;
            for (char *p = argv[++i]; *p && n_k < MAX_K;) {
                ks[n_k++] = strtod(p, &p);
                if (*p == ',') p++;
            }
        } else if (!strcmp(a, "--extra")) {
            while (i + 1 < argc && argv[i + 1][0] != '-' && n_in < MAX_FILES)
                snprintf(in[n_in++].path, sizeof in[0].path, "%s", argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_meta [--shuffles R] [--draws D] [--k 8,16,32] [--family NAME] "
                            "[--extra FILE...] [--threads N]\n");
            return 2;
        }
    }
    o.threads = threads;
    /* the shared files first: they are the held-out tasks */
    int n_extra = n_in;
    task_in extra[MAX_FILES];
    memcpy(extra, in, sizeof(task_in) * (size_t)n_extra);
    n_in = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/traces/*.jsonl 2>/dev/null", data_dir());
    FILE *ls = popen(cmd, "r");
    if (!ls) return 1;
    while (n_in < MAX_FILES && fgets(in[n_in].path, sizeof in[0].path, ls)) {
        in[n_in].path[strcspn(in[n_in].path, "\n")] = '\0';
        n_in++;
    }
    pclose(ls);
    n_shared = n_in;
    for (int e = 0; e < n_extra && n_in < MAX_FILES; e++) in[n_in++] = extra[e];
    if (n_shared == 0) {
        fprintf(stderr, "bench_meta: no traces under %s/traces\n", data_dir());
        return 1;
    }
    double t0 = es_wall_seconds();
    for (int i = 0; i < n_in; i++)
        if (load_task(&in[i], &o)) return 1;
    double t_replay = es_wall_seconds() - t0;
    printf("meta-learning, leave one task out: %d shared files (+%d extra training tasks), %u orders per item, "
           "%d draws per k, eps %.2f pt, delta %.2f\n",
           n_shared, n_extra, o.shuffles, draws, 100 * o.max_em_drop, o.delta);
    printf("replaying every task at every grid point: %.1f s\n", t_replay);

    /* speed: adapt on 16 items of the file with the most samples (the
     * items replayed on every grid point, then the estimate and the test),
     * with a prior trained on all tasks; best of 5 */
    {
        int big = 0;
        for (int i = 1; i < n_shared; i++)
            if (es_traceset_n_samples(in[i].ts) > es_traceset_n_samples(in[big].ts)) big = i;
        es_meta_task **all = malloc((size_t)n_in * sizeof *all);
        for (int i = 0; i < n_in; i++) all[i] = in[i].t;
        es_meta_prior *p;
        es_error err = {0};
        double t1 = es_wall_seconds();
        if (es_meta_train(all, (size_t)n_in, &o, &p, &err)) {
            fprintf(stderr, "bench_meta: train: %s\n", err.msg);
            return 1;
        }
        double t_all = es_wall_seconds() - t1, best = 1e9;
        uint32_t pick[16];
        uint64_t s = 5;
        mt_draw(&s, es_traceset_n_items(in[big].ts), 16, pick);
        for (int r = 0; r < 5; r++) {
            double t2 = es_wall_seconds();
            es_meta_task *k;
            es_meta_choice c;
            if (es_meta_task_new(in[big].ts, in[big].name, pick, 16, p, &o, &k, &err) ||
                es_meta_adapt(p, k, ES_META_GOLD, ES_META_ADAPT, ES_META_FULL, &c, &err))
                return 1;
            es_meta_task_free(k);
            double dt = es_wall_seconds() - t2;
            if (dt < best) best = dt;
        }
        printf("speed: meta-train on all %d tasks (replays done) %.3f s; adapt on 16 items of %s (%zu samples in the "
               "file): %.1f ms best of 5 (file loading not included)\n",
               n_in, t_all, in[big].name, es_traceset_n_samples(in[big].ts), 1000 * best);
        es_meta_prior_free(p);
        free(all);
    }

    /* results[task][labels][k][col] */
    static cell_sum res[MAX_FILES][ES_META_N_LABELS][MAX_K][N_COLS];
    memset(res, 0, sizeof res);
    es_meta_task **train = malloc((size_t)n_in * sizeof *train);
    size_t fam_used[MAX_FILES];
    int held[MAX_FILES], n_held = 0;
    double t_train = 0;
    int n_train = 0;
    for (int h = 0; h < n_shared; h++) {
        if (!es_meta_task_applies(in[h].t)) {
            printf("  %s: one sample per item, no family applies: left out\n", in[h].name);
            continue;
        }
        held[n_held++] = h;
        size_t m = 0;
        for (int i = 0; i < n_in; i++)
            if (i != h) train[m++] = in[i].t;
        es_meta_prior *p;
        es_error err = {0};
        double t1 = es_wall_seconds();
        if (es_meta_train(train, m, &o, &p, &err)) {
            fprintf(stderr, "bench_meta: train without %s: %s\n", in[h].name, err.msg);
            return 1;
        }
        t_train += es_wall_seconds() - t1;
        n_train++;
        size_t f = es_meta_prior_default_family(p);
        if (family && es_meta_prior_find_family(p, family, &f, &err)) {
            fprintf(stderr, "bench_meta: %s\n", err.msg);
            return 1;
        }
        fam_used[h] = f;
        const es_meta_task *t = in[h].t;
        size_t N = es_meta_task_n_items(t);
        uint32_t *pick = malloc((N + 1) * sizeof *pick), *rest = malloc((N + 1) * sizeof *rest);
        unsigned char *in_k = malloc(N + 1);
        for (int kk = 0; kk < n_k; kk++) {
            size_t k = (size_t)ks[kk];
            if (k >= N) continue;
            uint64_t s = name_seed(in[h].name, k);
            for (int d = 0; d < draws; d++) {
                mt_draw(&s, N, k, pick);
                memset(in_k, 0, N);
                for (size_t i = 0; i < k; i++) in_k[pick[i]] = 1;
                size_t nr = 0;
                for (size_t i = 0; i < N; i++)
                    if (!in_k[i]) rest[nr++] = (uint32_t)i;
                es_meta_task *K, *H;
                if (es_meta_task_subset(t, pick, k, &K) || es_meta_task_subset(t, rest, nr, &H)) return 1;
                for (int l = 0; l < ES_META_N_LABELS; l++) {
                    for (int c = 0; c < N_COLS; c++) {
                        size_t g;
                        int cert = 0;
                        if (c == C_CEIL) {
                            g = es_meta_task_best(t, f, (es_meta_labels)l, o.max_em_drop);
                        } else {
                            es_meta_choice ch;
                            if (es_meta_adapt(p, K, (es_meta_labels)l, methods[c], f, &ch, &err)) {
                                fprintf(stderr, "bench_meta: %s: %s\n", in[h].name, err.msg);
                                return 1;
                            }
                            g = ch.g;
                            cert = ch.certified;
                        }
                        es_meta_figures fig;
                        es_meta_task_figures(H, f, g, ES_META_GOLD, &fig);
                        cell_sum *cs = &res[h][l][kk][c];
                        cs->share += fig.share;
                        cs->dem += 100 * (fig.em - fig.em_full);
                        cs->cert += cert;
                        cs->n++;
                    }
                }
                es_meta_task_free(K);
                es_meta_task_free(H);
            }
        }
        free(pick);
        free(rest);
        free(in_k);
        es_meta_prior_free(p);
    }
    int n_apply = 0;
    for (int i = 0; i < n_in; i++) n_apply += es_meta_task_applies(in[i].t);
    printf("meta-train on the %d other tasks that apply: %.3f s per prior (mean of %d)\n\n", n_apply - 1,
           n_train ? t_train / n_train : 0, n_train);

    static const char *const label_name[ES_META_N_LABELS] = {"labelled (gold)", "unlabelled (agreement with full)"};
    double save16[ES_META_N_LABELS][MAX_FILES];
    int have16[ES_META_N_LABELS][MAX_FILES];
    memset(have16, 0, sizeof have16);
    for (int l = 0; l < ES_META_N_LABELS; l++)
        for (int kk = 0; kk < n_k; kk++) {
            if (!summary) {
                printf("== %s, k = %g: held-out token share %% / EM change pts (mean of %d draws)\n", label_name[l],
                       ks[kk], draws);
                printf("%-44s %5s", "task", "items");
                for (int c = 0; c < N_COLS; c++) printf(" | %-15s", col_name[c]);
                printf(" | closed\n");
            }
            double sum_share[N_COLS] = {0}, sum_dem[N_COLS] = {0}, closed[MAX_FILES], worst = INFINITY;
            int n_rows = 0, n_closed = 0, n_worse = 0, n_below_full = 0;
            const char *worst_name = "";
            for (int j = 0; j < n_held; j++) {
                int h = held[j];
                cell_sum *r = res[h][l][kk];
                if (r[0].n == 0) continue;
                n_rows++;
                if (!summary) printf("%-44.44s %5zu", in[h].name, es_meta_task_n_items(in[h].t));
                double sh[N_COLS], de[N_COLS];
                for (int c = 0; c < N_COLS; c++) {
                    sh[c] = 100 * r[c].share / r[c].n;
                    de[c] = r[c].dem / r[c].n;
                    sum_share[c] += sh[c];
                    sum_dem[c] += de[c];
                    if (!summary) printf(" | %6.1f %+7.2f%s", sh[c], de[c], c == C_ADAPT && r[c].cert > 0 ? "*" : " ");
                }
                double gap = sh[C_LTT] - sh[C_CEIL];
                if (gap > 0.5) closed[n_closed++] = (sh[C_LTT] - sh[C_ADAPT]) / gap;
                if (!summary && gap > 0.5) printf(" | %5.2f\n", closed[n_closed - 1]);
                else if (!summary) printf(" |    -\n");
                n_below_full += de[C_ADAPT] < -0.5;
                double lag = de[C_ADAPT] - de[C_CEIL];
                if (lag < -0.5) n_worse++;
                if (lag < worst) worst = lag, worst_name = in[h].name;
                if (ks[kk] == 16) {
                    save16[l][h] = 100 - sh[C_ADAPT];
                    have16[l][h] = 1;
                }
            }
            if (summary) {
                printf("%s k=%-3g", l ? "none" : "gold", ks[kk]);
                for (int c = 0; c < N_COLS; c++)
                    if (c != C_LTT) printf(" %s %.1f/%+.2f", col_name[c], sum_share[c] / n_rows, sum_dem[c] / n_rows);
                printf(" | closed %.2f, c-d < -0.5: %d/%d, worst %+.2f, c < -0.5: %d\n", median(closed, n_closed),
                       n_worse, n_rows, worst, n_below_full);
                continue;
            }
            printf("%-44s %5s", "mean over tasks", "");
            for (int c = 0; c < N_COLS; c++)
                printf(" | %6.1f %+7.2f ", n_rows ? sum_share[c] / n_rows : NAN, n_rows ? sum_dem[c] / n_rows : NAN);
            printf("\n");
            printf("(c) closes a median %.2f of the token gap between (b) and (d) over the %d tasks with a gap "
                   "(> 0.5 pt of share); EM of (c) minus (d): worst %+.2f pts (%s), %d of %d tasks below -0.5; EM of (c) "
                   "against full below -0.5 pts on %d tasks\n\n",
                   median(closed, n_closed), n_closed, worst, worst_name, n_worse, n_rows, n_below_full);
            (void)fam_used;
        }
    /* unlabelled against labelled at k = 16: the tokens each saves */
    double ratio[MAX_FILES];
    int nr = 0;
    double s_gold = 0, s_none = 0;
    for (int j = 0; j < n_held; j++) {
        int h = held[j];
        if (!have16[0][h] || !have16[1][h]) continue;
        s_gold += save16[0][h];
        s_none += save16[1][h];
        if (save16[0][h] > 0.5) ratio[nr++] = save16[1][h] / save16[0][h];
    }
    if (nr)
        printf("k = 16, tokens saved by (c) (100 - share): unlabelled / labelled, median over %d tasks %.2f; mean "
               "saving %.1f%% unlabelled vs %.1f%% labelled (ratio of means %.2f)\n",
               nr, median(ratio, nr), s_none / nr, s_gold / nr, s_gold > 0 ? s_none / s_gold : NAN);
    free(train);
    for (int i = 0; i < n_in; i++) {
        es_meta_task_free(in[i].t);
        es_traceset_free(in[i].ts);
    }
    return 0;
}
