/* lm_cli.c - summaries, votes and threads shared by generate and run. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "lm_cli.h"

/* All counters start at zero. */
void lm_summary_init(lm_summary *s)
{
    memset(s, 0, sizeof *s);
}

/* The item goes through the same compact form and vote code as `stats`
 * and `eval` (interning, correctness, majority with ties to the first seen,
 * stable-final oracle), so the summary cannot drift from them.  Single-sample
 * EM averages every sample (a tighter estimate than the first sample alone);
 * both are reported. */
int lm_summary_add(lm_summary *s, es_task_kind task, const char *gold, const es_sample *samples, size_t k,
                   es_error *err)
{
    es_item item = {.id = "item", .task = es_task_name(task), .answer_type = es_task_answer_type(task),
                    .n_gold = 1, .gold = &gold, .n_samples = k, .samples = samples};
    es_traceset *ts = NULL;
    es_item_view v;
    es_tally *t = NULL;
    if (es_traceset_new(0, &ts) || es_traceset_add(ts, &item, NULL) || es_traceset_item(ts, 0, &v) ||
        es_tally_new(v.n_answers, &t)) {
        es_traceset_free(ts);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory for the summary of %zu samples", k);
    }
    s->items++;
    for (uint32_t i = 0; i < v.n_samples; i++) {
        uint32_t b = v.probe_off[i], e = v.probe_off[i + 1];
        s->samples++;
        s->sample_correct += v.correct[v.answer[i]];
        s->tokens += v.tokens[i];
        for (uint32_t p = b; p < e; p++) s->probe_tokens += v.probe_cost[p] > 0 ? v.probe_cost[p] : 0;
        if (e > b) {
            s->probed_samples++;
            s->probed_tokens += v.tokens[i];
            s->stable_tokens += es_stable_final_tokens(v.probe_at + b, v.probe_answer + b, e - b, v.answer[i],
                                                       v.tokens[i]);
        }
    }
    s->first_correct += v.correct[v.answer[0]];
    s->maj_correct += v.correct[es_vote_majority(v.answer, v.n_samples, t)];
    es_tally_free(t);
    es_traceset_free(ts);
    return ES_OK;
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

/* 0 asks for every core the process may use; the library caps the rest. */
int lm_pool_open(const char *cmd, int threads, es_lm_pool **out)
{
    *out = NULL;
    int n = threads > 0 ? threads : es_lm_cpu_count();
    if (n <= 1) return CLI_OK;
    es_error err;
    memset(&err, 0, sizeof err);
    int rc = es_lm_pool_new(n, out, &err);
    if (rc) fprintf(stderr, "earlystop %s: %s\n", cmd, err.msg);
    return rc ? CLI_FAIL : CLI_OK;
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

void lm_gen_opts_init(lm_gen_opts *g, long items)
{
    memset(g, 0, sizeof *g);
    g->items = items;
    g->samples = 16;
    g->probe_every = 16;
    g->seed = 1;
    g->temperature = ES_LM_DEFAULT_TEMPERATURE;
}

/* The options generate and run share: one table for parsing and --help. */
typedef struct gen_opt {
    const char *name, *arg, *help;
} gen_opt;

static const gen_opt gen_opts[] = {
    {"--model", "M", "model file (default $ES_MODEL or data/model.bin)"},
    {"--task", "T", "last_letters | date | arithmetic"},
    {"--items", "N", "questions (default %ld)"},
    {"--start", "J", "index of the first question (default 0)"},
    {"--samples", "K", "samples per question at most (default %ld)"},
    {"--probe-every", "P", "tokens between forced probes, 0 = none (default %ld); `lines`: instead a free\n"
                           "                    text probe at each line end (the answer written so far, the\n"
                           "                    line's cues: docs/model.md)"},
    {"--temperature", "X", "sampling temperature (default %.2f)"},
    {"--seed", "S", "questions and samples (default %ld)"},
    {"--threads", "N", LM_THREADS_HELP},
};
enum { N_GEN_OPTS = sizeof gen_opts / sizeof gen_opts[0] };

void lm_gen_opts_help(FILE *fp, const lm_gen_opts *def)
{
    for (int i = 0; i < N_GEN_OPTS; i++) {
        const gen_opt *o = &gen_opts[i];
        char flag[32], help[400];
        snprintf(flag, sizeof flag, "%s %s", o->name, o->arg);
        if (!strcmp(o->name, "--temperature")) snprintf(help, sizeof help, o->help, def->temperature);
        else if (!strcmp(o->name, "--items")) snprintf(help, sizeof help, o->help, def->items);
        else if (!strcmp(o->name, "--samples")) snprintf(help, sizeof help, o->help, def->samples);
        else if (!strcmp(o->name, "--probe-every")) snprintf(help, sizeof help, o->help, def->probe_every);
        else if (!strcmp(o->name, "--seed")) snprintf(help, sizeof help, o->help, def->seed);
        else snprintf(help, sizeof help, "%s", o->help);
        fprintf(fp, "  %-17s %s\n", flag, help);
    }
}

/* The integer options, by name. */
static long *gen_long(lm_gen_opts *g, const char *a)
{
    return !strcmp(a, "--items") ? &g->items : !strcmp(a, "--samples") ? &g->samples
         : !strcmp(a, "--probe-every") ? &g->probe_every : !strcmp(a, "--seed") ? &g->seed
         : !strcmp(a, "--start") ? &g->start : NULL;
}

static int is_gen_opt(const char *a)
{
    for (int i = 0; i < N_GEN_OPTS; i++)
        if (!strcmp(a, gen_opts[i].name)) return 1;
    return 0;
}

int lm_gen_opt(const char *cmd, int argc, char **argv, int *i, lm_gen_opts *g)
{
    const char *a = argv[*i];
    if (!is_gen_opt(a)) return 0;
    long *lv = gen_long(g, a);
    int threads = !strcmp(a, "--threads");
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    if (threads) return cli_parse_threads(cmd, v, &g->threads) ? -1 : 1;
    if (lv == &g->probe_every) {
        g->probe_given = 1;
        g->probe_lines = !strcmp(v, "lines");
        if (g->probe_lines) {
            g->probe_every = 0;
            return 1;
        }
    }
    if (lv) {
        if (cli_parse_long(v, 0, 1L << 40, lv)) goto bad;
    } else if (!strcmp(a, "--model")) {
        g->model = v;
    } else if (!strcmp(a, "--task")) {
        if (es_task_parse(v, &g->task)) {
            cli_usage_error(cmd, "unknown task '%s' (last_letters, date, arithmetic)", v);
            return -1;
        }
        g->have_task = 1;
    } else if (cli_parse_double(v, &g->temperature) || g->temperature < 0 || g->temperature > 10) {
        goto bad;
    }
    return 1;
bad:
    cli_usage_error(cmd, "bad %s '%s'%s", a, v, lv == &g->probe_every ? " (tokens between probes, or `lines`)" : "");
    return -1;
}

int lm_probe_lines(int lines, int given, const es_policy_info *info) { return lines || (!given && info->reads_cues); }

int lm_gen_opts_check(const char *cmd, const lm_gen_opts *g)
{
    if (!g->have_task) return cli_usage_error(cmd, "--task is required"), -1;
    if (g->items < 1 || g->samples < 1 || g->samples > 100000)
        return cli_usage_error(cmd, "--items and --samples must be positive"), -1;
    /* the generator takes an int: a larger value would wrap (4294967312 probed every 16) */
    if (g->probe_every > 1L << 20)
        return cli_usage_error(cmd, "--probe-every: %ld is not in 0..1048576 (or `lines`)", g->probe_every), -1;
    return 0;
}
