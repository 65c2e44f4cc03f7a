/* lm_cli.c - summaries, votes and threads shared by generate and run. */
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lm_cli.h"

/* All counters start at zero. */
void lm_summary_init(lm_summary *s)
{
    memset(s, 0, sizeof *s);
}

/* Equality with the null answer never matching anything but itself: a null
 * is a value of its own in a vote. */
static int same_answer(es_answer_type t, const char *a, const char *b)
{
    if (!a || !b) return !a && !b;
    return es_answer_equal(t, a, b);
}

/* Quadratic in k, which is at most a few dozen samples here. */
size_t lm_majority(es_answer_type t, const char *const *answers, size_t n)
{
    size_t best = 0, best_count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t seen = 0, count = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = same_answer(t, answers[i], answers[j]);
        if (seen) continue;
        for (size_t j = i; j < n; j++) count += same_answer(t, answers[i], answers[j]);
        if (count > best_count) { best = i; best_count = count; }
    }
    return best;
}

/* Same definition as es_stable_final_tokens, on strings instead of ids. */
uint32_t lm_stable_final(es_answer_type t, const es_sample *s)
{
    if (!s->n_probes || !s->answer) return s->tokens;
    size_t i = s->n_probes;
    while (i > 0 && same_answer(t, s->probes[i - 1].answer, s->answer)) i--;
    return i == s->n_probes ? s->tokens : s->probes[i].at;
}

/* Single-sample EM averages every sample (a tighter estimate than the
 * first sample alone); both are reported. */
void lm_summary_add(lm_summary *s, es_task_kind task, const char *gold,
                    const es_sample *samples, size_t k)
{
    es_answer_type t = es_task_answer_type(task);
    const char *answers[1024];
    size_t n = k < 1024 ? k : 1024;
    s->items++;
    for (size_t i = 0; i < k; i++) {
        const es_sample *x = &samples[i];
        int ok = x->answer && es_answer_equal(t, x->answer, gold);
        if (i < n) answers[i] = x->answer;
        s->samples++;
        s->sample_correct += (size_t)ok;
        if (i == 0) s->first_correct += (size_t)ok;
        s->tokens += x->tokens;
        for (size_t p = 0; p < x->n_probes; p++)
            s->probe_tokens += x->probes[p].cost > 0 ? x->probes[p].cost : 0;
        if (x->n_probes) {
            s->probed_samples++;
            s->probed_tokens += x->tokens;
            s->stable_tokens += lm_stable_final(t, x);
        }
    }
    const char *maj = answers[lm_majority(t, answers, n)];
    s->maj_correct += (size_t)(maj && es_answer_equal(t, maj, gold));
}

/* Human lines by default, one JSON object with --json. */
void lm_summary_print(const lm_summary *s, es_task_kind task, long k, double seconds,
                      int json, FILE *fp)
{
    double items = s->items ? (double)s->items : 1.0, samples = s->samples ? (double)s->samples : 1.0;
    double single = s->sample_correct / samples, first = s->first_correct / items;
    double maj = s->maj_correct / items;
    double stable = s->probed_tokens > 0 ? s->stable_tokens / s->probed_tokens : NAN;
    if (json) {
        fprintf(fp, "{\"task\":\"%s\",\"items\":%zu,\"samples\":%zu,\"single_em\":%.4f,"
                    "\"first_sample_em\":%.4f,\"maj_em\":%.4f,\"k\":%ld,\"tokens_per_sample\":%.2f,"
                    "\"probe_tokens_per_sample\":%.2f,\"stable_final_frac\":%.4f,\"seconds\":%.2f,"
                    "\"tokens_per_s\":%.1f}\n",
                es_task_name(task), s->items, s->samples, single, first, maj, k,
                s->tokens / samples, s->probe_tokens / samples, stable, seconds,
                (s->tokens + s->probe_tokens) / (seconds > 0 ? seconds : 1));
        return;
    }
    fprintf(fp, "%s: %zu items x %ld samples\n", es_task_name(task), s->items, k);
    fprintf(fp, "  single-sample EM  %.3f (mean over all samples; first sample %.3f)\n", single, first);
    fprintf(fp, "  maj@%-3ld EM        %.3f (%+.1f points)\n", k, maj, 100 * (maj - single));
    fprintf(fp, "  tokens/sample     %.1f (+ %.1f probe tokens)\n", s->tokens / samples,
            s->probe_tokens / samples);
    if (s->probed_tokens > 0)
        fprintf(fp, "  stable-final      %.1f%% of the trace tokens\n", 100 * stable);
    fprintf(fp, "  wall              %.2f s, %.0f tokens/s\n", seconds,
            (s->tokens + s->probe_tokens) / (seconds > 0 ? seconds : 1));
}

/* Only when asked: the OpenMP default (all cores) otherwise. */
void lm_set_threads(long n)
{
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads((int)n);
#else
    (void)n;
#endif
}

/* One generator per possible thread. */
int lm_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Monotonic clock for wall times. */
double lm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Lets `build/earlystop generate` find the shipped model from any directory. */
const char *lm_model_path(const char *given, char *buf, size_t cap)
{
    if (given) return given;
    const char *def = es_lm_default_path();
    if (strcmp(def, "data/model.bin") || access(def, R_OK) == 0) return def;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return def;
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) {   /* strip the file name, then its directory */
        char *slash = strrchr(exe, '/');
        if (!slash) return def;
        *slash = '\0';
    }
    snprintf(buf, cap, "%s/data/model.bin", exe);
    return access(buf, R_OK) == 0 ? buf : def;
}
