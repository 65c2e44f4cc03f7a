/*
 * cmd_tune.c - `earlystop tune FILE...`: the tokens-vs-EM fronts of every
 * rule family on recorded traces, and the policy that loses at most a given
 * EM with a guarantee (Learn-then-Test), reported on items the tuner never
 * saw.  The library (earlystop_tune.h) does the work; this file parses,
 * splits the items, prints, and writes the output files (tune_out.c).
 *
 * Three ways to run:
 *   one split     FILE...'s items split (seeded) into calibration and test,
 *                 or --calibrate/--test files; the full report and outputs
 *   --repeats R   R splits: per repeat the test loss against eps, and the
 *                 share of repeats above it (the guarantee, checked)
 *   --leave-one-file-out  each file tested with the policy tuned on the rest
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "tune_cli.h"

static const char usage_head[] =
    "usage: earlystop tune FILE... [options]\n"
    "       earlystop tune --calibrate FILE... --test FILE... [options]\n"
    "\n"
    "Find the trade-offs between tokens and exact match (EM) that the stopping\n"
    "rules offer on recorded traces, and pick the cheapest policy that loses at\n"
    "most a given EM against `full` (every sample, majority vote) with a\n"
    "statistical guarantee (Learn-then-Test; docs/tuning.md says exactly what\n"
    "is guaranteed and what is not).\n"
    "\n"
    "How: the calibration items are split (seeded) into an opt part and a test\n"
    "part.  On the opt part every family's parameters are searched (exactly\n"
    "where a rule compares a statistic with a threshold: every breakpoint in\n"
    "one replay, no grid) and reduced to the Pareto front of (cost, EM); the\n"
    "fronts are merged.  The candidates, ordered from conservative to\n"
    "aggressive, are tested in turn on the other part until one's p-value for\n"
    "\"mean loss > eps\" exceeds delta; the cheapest one certified before it is\n"
    "chosen.  The chosen policy is then reported on test items the tuner never\n"
    "saw (the rest of FILE...'s items, or --test files), beside ac-beta and esc\n"
    "at their defaults.\n"
    "\n"
    "families (--family NAME, repeatable; default: every one that applies to\n"
    "the files; a probe rule needs probes in every file):\n";

static const char usage_tail[] =
    "  all              every family that applies to the files\n"
    "\n"
    "the constraint:\n"
    "  --max-em-drop PTS   the mean EM loss allowed against full, in points\n"
    "                      (default 0.5; in (0, 100))\n"
    "  --delta D           the guarantee may fail with probability at most D\n"
    "                      (default 0.1; in (0, 1))\n"
    "  --token-budget T    instead of the two above: the best EM within T mean\n"
    "                      tokens per item on the calibration items (no guarantee)\n"
    "  --loss wrong|net|disagree\n"
    "                      what one item loses against full: wrong = the policy's\n"
    "                      answer is wrong where full's is right (default; uses the\n"
    "                      gold); disagree = the two answers differ (no gold needed,\n"
    "                      so it works on unlabelled traffic; stricter); net = wrong\n"
    "                      where full is right minus right where full is wrong (the\n"
    "                      EM change itself, in [-1, 1] per item)\n"
    "  --per-file          the constraint holds on every calibration file, not\n"
    "                      only pooled over them: a point is certified only where\n"
    "                      each file's p-value passes (the largest is the test's);\n"
    "                      the loss then shown is the worst file's\n"
    "  --objective tokens|kv\n"
    "                      the cost minimised: tokens generated, probe cost\n"
    "                      included (default), or peak KV-cache positions when\n"
    "                      samples are drawn --batch B at a time (the memory a\n"
    "                      server holds)\n"
    "  --batch B           samples drawn at once, with --objective kv (default 1)\n"
    "\n"
    "data:\n"
    "  --calibrate FILE... --test FILE...\n"
    "                      tune on the first files, report on the second\n"
    "  --split S           share of FILE...'s items drawn at random (seeded) for\n"
    "                      calibration; the rest is the test (default 0.5; 1 =\n"
    "                      tune on every item and report no test)\n"
    "  --repeats R         R splits with seeds S, S+1, ...: per repeat the test\n"
    "                      loss and whether it exceeded eps, then the share of\n"
    "                      repeats that did (about delta or less: the guarantee,\n"
    "                      checked); not with output files\n"
    "  --leave-one-file-out\n"
    "                      per file: tune on all the others, test on it; a table\n"
    "                      per file and a pooled one\n"
    "  --seed S            seed of the split, the sample orders and the opt/test\n"
    "                      split inside (default 1)\n"
    "  --shuffles R        random sample orders per item (default 10; 0 = the file\n"
    "                      order once)\n"
    "  --probe-cost N      charge N tokens per probe (default: each probe's cost\n"
    "                      field)\n"
    "  --threads N         threads (default: one per core; capped at the cores);\n"
    "                      the figures do not depend on it\n"
    "\n"
    "output:\n"
    "  --out FILE          the chosen policy as JSON: `eval --policy @FILE`, `run\n"
    "                      --policy @FILE` and es_policy_new_any load it as it is;\n"
    "                      the other keys record where it came from\n"
    "  --front FILE        every family's front and the global one, with their\n"
    "                      figures (FILE ending in .json or .csv)\n"
    "  --plot FILE.svg     a picture: EM against cost, the fronts, ac-beta and esc\n"
    "                      at their defaults, full, the oracle, the chosen point\n"
    "  --json              everything printed, as one JSON object\n"
    "  -h, --help          this text\n"
    "Output files are checked before the tuning starts and written only when it\n"
    "succeeds; an existing file keeps its content otherwise.\n"
    "\n"
    "figures:\n"
    "  EM, dEM pts [95% CI]  EM and its change against full, in points, with a\n"
    "                      paired bootstrap interval over items\n"
    "  loss pts            the mean loss against full (--loss), in points\n"
    "  tokens              mean tokens per item, probe cost included\n"
    "  share               tokens as a share of full's, per item, mean over items:\n"
    "                      the cost tune minimises (of peak KV with --objective kv)\n"
    "  reduct%             1 - mean tokens / full's mean tokens, as eval prints it\n"
    "  oracle x            tokens / the oracle's tokens (stable-final on traces\n"
    "                      with probes, else consistency): 1.00 is the best stop\n"
    "  hypervolume         the area of (cost, EM) a front dominates, cost in [0, 1]\n"
    "                      and EM above full's minus 5 points, in cost x EM points\n"
    "\n"
    "exit status: 0 ok, 1 I/O failure, 2 bad usage or input (an eps or delta out\n"
    "of range, a family unknown or that does not apply, no candidate certified,\n"
    "an output that cannot be written)\n";

enum { HELP = -1 };

static void print_usage(void)
{
    fputs(usage_head, stdout);
    for (size_t i = 0; i < es_tune_n_known_families(); i++) {
        const char *doc = "", *name = es_tune_known_family(i, &doc);
        if (strlen(name) > 16) printf("  %s\n  %-16s %s\n", name, "", doc);
        else printf("  %-16s %s\n", name, doc);
    }
    fputs(usage_tail, stdout);
}

/* ------------------------------------------------------------- parsing */

static int known_family(const char *name)
{
    if (!strcmp(name, "all")) return 1;
    for (size_t i = 0; i < es_tune_n_known_families(); i++)
        if (!strcmp(name, es_tune_known_family(i, NULL))) return 1;
    return 0;
}

static int unknown_family(const char *name)
{
    char list[1024];
    size_t at = 0;
    for (size_t i = 0; i < es_tune_n_known_families() && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s, ", es_tune_known_family(i, NULL));
    return cli_usage_error("tune", "--family: unknown family '%s' (known: %sall)", name, list);
}

/* 1 when path ends in ext, case aside. */
static int ends_with(const char *path, const char *ext)
{
    size_t n = strlen(path), m = strlen(ext);
    return n > m && !strcasecmp(path + n - m, ext);
}

static int parse_args(int argc, char **argv, tune_args *a)
{
    es_tune_opts_init(&a->o);
    a->split = 0.5;
    a->repeats = 1;
    int have_eps = 0, have_delta = 0, have_batch = 0, have_split = 0, have_repeats = 0;
    int into = 0; /* where a bare name goes: 0 FILE..., 1 --calibrate, 2 --test */
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double d;
        if (cli_is_help(o)) {
            print_usage();
            return HELP;
        }
        if (o[0] != '-' || !o[1]) {
            if (into == 1) a->cal[a->n_cal++] = o;
            else if (into == 2) a->test[a->n_test++] = o;
            else a->files[a->n_files++] = o;
            continue;
        }
        into = 0;
        if (!strcmp(o, "--json")) a->json = 1;
        else if (!strcmp(o, "--leave-one-file-out")) a->lofo = 1;
        else if (!strcmp(o, "--per-file")) a->o.per_file = 1;
        else if (!strcmp(o, "--calibrate")) into = 1;
        else if (!strcmp(o, "--test")) into = 2;
        else if (!v) return cli_usage_error("tune", "option '%s' needs a value or is unknown", o);
        else if (!strcmp(o, "--family")) {
            i++;
            if (!known_family(v)) return unknown_family(v);
            if (a->n_families == TUNE_MAX_FAMILIES)
                return cli_usage_error("tune", "at most %d --family", TUNE_MAX_FAMILIES);
            a->families[a->n_families++] = v;
        } else if (!strcmp(o, "--max-em-drop")) {
            i++;
            if (cli_parse_double(v, &d) || !(d > 0 && d < 100))
                return cli_usage_error("tune", "--max-em-drop: '%s' is not a number of EM points in (0, 100), e.g. 0.5",
                                       v);
            a->o.max_em_drop = d / 100;
            have_eps = 1;
        } else if (!strcmp(o, "--delta")) {
            i++;
            if (cli_parse_double(v, &d) || !(d > 0 && d < 1))
                return cli_usage_error("tune", "--delta: '%s' is not a probability in (0, 1), e.g. 0.1", v);
            a->o.delta = d;
            have_delta = 1;
        } else if (!strcmp(o, "--token-budget")) {
            i++;
            if (cli_parse_double(v, &d) || !(d > 0) || isinf(d))
                return cli_usage_error("tune", "--token-budget: '%s' is not a number of tokens > 0", v);
            a->o.token_budget = d;
            a->budget = 1;
        } else if (!strcmp(o, "--loss")) {
            i++;
            if (!strcmp(v, "wrong")) a->o.loss = ES_LOSS_WRONG;
            else if (!strcmp(v, "disagree")) a->o.loss = ES_LOSS_DISAGREE;
            else if (!strcmp(v, "net")) a->o.loss = ES_LOSS_NET;
            else return cli_usage_error("tune", "--loss: '%s' is none of wrong, net, disagree", v);
        } else if (!strcmp(o, "--objective")) {
            i++;
            if (!strcmp(v, "tokens")) a->o.objective = ES_OBJECTIVE_TOKENS;
            else if (!strcmp(v, "kv")) a->o.objective = ES_OBJECTIVE_KV;
            else return cli_usage_error("tune", "--objective: '%s' is neither tokens nor kv", v);
        } else if (!strcmp(o, "--batch")) {
            if (cli_parse_long(argv[++i], 1, 1000000, &n))
                return cli_usage_error("tune", "--batch: '%s' is not a whole number of samples in 1..1000000", v);
            a->o.batch = (uint32_t)n;
            have_batch = 1;
        } else if (!strcmp(o, "--split")) {
            i++;
            if (cli_parse_double(v, &d) || !(d > 0 && d <= 1))
                return cli_usage_error("tune", "--split: '%s' is not a share in (0, 1], e.g. 0.5", v);
            a->split = d;
            have_split = 1;
        } else if (!strcmp(o, "--repeats")) {
            if (cli_parse_long(argv[++i], 1, 1000000, &n))
                return cli_usage_error("tune", "--repeats: '%s' is not a whole number in 1..1000000", v);
            a->repeats = (uint32_t)n;
            have_repeats = 1;
        } else if (!strcmp(o, "--seed")) {
            if (cli_parse_long(argv[++i], 0, LONG_MAX, &n))
                return cli_usage_error("tune", "--seed: '%s' is not a whole number in 0..%ld", v, LONG_MAX);
            a->o.seed = (uint64_t)n;
        } else if (!strcmp(o, "--shuffles")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n))
                return cli_usage_error("tune", "--shuffles: '%s' is not a whole number in 0..1000000", v);
            a->o.shuffles = (uint32_t)n;
        } else if (!strcmp(o, "--probe-cost")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n))
                return cli_usage_error("tune", "--probe-cost: '%s' is not a whole number of tokens in 0..1000000", v);
            a->o.probe_cost = (int32_t)n;
        } else if (!strcmp(o, "--threads")) {
            if (cli_parse_threads("tune", argv[++i], &a->threads)) return CLI_USAGE;
            a->o.threads = a->threads;
        } else if (!strcmp(o, "--out")) {
            a->out_path = argv[++i];
        } else if (!strcmp(o, "--front")) {
            a->front_path = argv[++i];
        } else if (!strcmp(o, "--plot")) {
            a->plot_path = argv[++i];
        } else {
            return cli_usage_error("tune", "unknown option '%s'", o);
        }
    }
    /* what goes with what */
    int explicit_sets = a->n_cal || a->n_test;
    if (!a->n_files && !explicit_sets) return cli_usage_error("tune", "no trace file given");
    if (a->n_files && explicit_sets)
        return cli_usage_error("tune", "give FILE... (split into calibration and test) or --calibrate FILE... --test "
                                       "FILE..., not both");
    if (explicit_sets && (!a->n_cal || !a->n_test))
        return cli_usage_error("tune", "--calibrate and --test go together, each with at least one file");
    if (a->budget && (have_eps || have_delta))
        return cli_usage_error("tune", "--token-budget picks the best EM within a budget, with no guarantee: it does "
                                       "not go with --max-em-drop or --delta");
    if (a->budget) a->o.max_em_drop = -1;
    if (have_batch && a->o.objective != ES_OBJECTIVE_KV)
        return cli_usage_error("tune", "--batch sets how many samples are drawn at once for --objective kv");
    if (explicit_sets && (have_split || have_repeats))
        return cli_usage_error("tune", "--split and --repeats split FILE...; with --calibrate/--test the sets are given");
    if (a->lofo) {
        if (explicit_sets || have_split || have_repeats)
            return cli_usage_error("tune", "--leave-one-file-out tests each whole file in turn: it does not go with "
                                           "--calibrate, --test, --split or --repeats");
        if (a->n_files < 2) return cli_usage_error("tune", "--leave-one-file-out needs at least two files");
    }
    int outputs = a->out_path || a->front_path || a->plot_path;
    if (outputs && (a->lofo || a->repeats > 1))
        return cli_usage_error("tune", "--out, --front and --plot describe one tuning run: not with %s",
                               a->lofo ? "--leave-one-file-out" : "--repeats");
    if (a->repeats > 1 && a->split >= 1)
        return cli_usage_error("tune", "--repeats checks the chosen policy on held-out items: --split must be < 1");
    if (a->repeats > 1 && a->budget)
        return cli_usage_error("tune", "--repeats checks the guarantee of --max-em-drop; a --token-budget has none");
    if (a->front_path && !ends_with(a->front_path, ".json") && !ends_with(a->front_path, ".csv"))
        return cli_usage_error("tune", "--front: '%s' must end in .json or .csv (the format it is written in)",
                               a->front_path);
    a->front_csv = a->front_path && ends_with(a->front_path, ".csv");
    if (a->plot_path && !ends_with(a->plot_path, ".svg"))
        return cli_usage_error("tune", "--plot: '%s' must end in .svg", a->plot_path);
    const char *outs[3] = {a->out_path, a->front_path, a->plot_path};
    for (int i = 0; i < 3; i++)
        for (int k = i + 1; k < 3; k++)
            if (outs[i] && outs[k] && !strcmp(outs[i], outs[k]))
                return cli_usage_error("tune", "'%s' is given for two outputs", outs[i]);
    return CLI_OK;
}

/* ------------------------------------------------------------ the data */

typedef struct loaded {
    const char *path;
    es_traceset *ts;
} loaded;

/* A file named twice would put its items on both sides of a split (or
 * count them twice): refused, by name and by device and inode. */
static int check_distinct(const char **paths, int n)
{
    struct stat *st = calloc((size_t)n + 1, sizeof *st);
    int *ok = calloc((size_t)n + 1, sizeof *ok);
    int rc = st && ok ? CLI_OK : cli_report(NULL, ES_ENOMEM);
    for (int i = 0; i < n && !rc; i++) {
        ok[i] = strcmp(paths[i], "-") && stat(paths[i], &st[i]) == 0;
        for (int k = 0; k < i && !rc; k++)
            if (!strcmp(paths[i], paths[k]) ||
                (ok[i] && ok[k] && st[i].st_dev == st[k].st_dev && st[i].st_ino == st[k].st_ino))
                rc = cli_usage_error("tune", "'%s' is given twice%s%s: its items would be counted twice (or be both "
                                             "calibration and test)",
                                     paths[i], strcmp(paths[i], paths[k]) ? " (as " : "",
                                     strcmp(paths[i], paths[k]) ? paths[k] : "");
    }
    free(st);
    free(ok);
    return rc;
}

static int load_files(const char **paths, int n, int threads, loaded *out)
{
    es_read_opts ro;
    es_read_opts_init(&ro);
    ro.flags = ES_READ_NO_TEXT;
    ro.threads = threads;
    for (int i = 0; i < n; i++) {
        cli_progress("tune: reading", (size_t)i, (size_t)n);
        es_error err = {0};
        out[i].path = paths[i];
        int rc = es_traceset_load_opts(paths[i], &ro, &out[i].ts, NULL, &err);
        if (rc) {
            cli_progress_end();
            return cli_report(&err, rc);
        }
        if (es_traceset_n_items(out[i].ts) == 0) {
            cli_progress_end();
            fprintf(stderr, "earlystop tune: %s: no items\n", paths[i]);
            return CLI_USAGE;
        }
    }
    cli_progress("tune: reading", (size_t)n, (size_t)n);
    cli_progress_end();
    return CLI_OK;
}

/* Whole files as one data set. */
static int data_of(const loaded *f, int n, int skip, es_tune_data **out)
{
    if (es_tune_data_new(out)) return ES_ENOMEM;
    for (int i = 0; i < n; i++)
        if (i != skip && es_tune_data_add(*out, f[i].ts, f[i].path)) return ES_ENOMEM;
    return ES_OK;
}

static uint64_t mix64(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* FILE...'s items pooled and split at random: round(share x items) for
 * calibration, the rest for the test, each side kept in file order. */
static int split_data(const loaded *f, int n, double share, uint64_t seed, es_tune_data **cal, es_tune_data **test)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += es_traceset_n_items(f[i].ts);
    uint32_t *perm = malloc((total + 1) * sizeof *perm);
    unsigned char *side = calloc(total + 1, 1);
    uint32_t *idx = malloc((total + 1) * sizeof *idx);
    int rc = perm && side && idx && !es_tune_data_new(cal) && !es_tune_data_new(test) ? ES_OK : ES_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < total; i++) perm[i] = (uint32_t)i;
        uint64_t s = seed ^ 0xC0FFEE5EEDULL;
        for (size_t i = total; i > 1; i--) {
            size_t j = (size_t)(mix64(&s) % i);
            uint32_t x = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = x;
        }
        size_t k = (size_t)((double)total * share + 0.5);
        for (size_t i = 0; i < k && i < total; i++) side[perm[i]] = 1;
    }
    size_t base = 0;
    for (int i = 0; i < n && !rc; i++) {
        size_t m = es_traceset_n_items(f[i].ts);
        for (int want = 1; want >= 0 && !rc; want--) {
            size_t c = 0;
            for (size_t j = 0; j < m; j++)
                if (side[base + j] == want) idx[c++] = (uint32_t)j;
            if (c) rc = es_tune_data_add_items(want ? *cal : *test, f[i].ts, f[i].path, idx, c);
        }
        base += m;
    }
    free(perm);
    free(side);
    free(idx);
    return rc;
}

/* ------------------------------------------------------------ progress */

typedef struct progress_ctx {
    char prefix[96];
} progress_ctx;

static void on_progress(void *ctx, const char *what, size_t done, size_t total)
{
    const progress_ctx *p = ctx;
    char label[160];
    /* padded, so that a shorter label wipes a longer one */
    snprintf(label, sizeof label, "tune: %s%-24s", p->prefix, what);
    cli_progress(label, done, total);
}

/* ------------------------------------------------------------- tuning */

/* Tune on cal: every family asked for (default all that apply), then the
 * run.  *t is set even when the run fails (the fronts may still be read);
 * err says why. */
static int tune_on(const es_tune_data *cal, const tune_args *a, uint64_t seed, progress_ctx *pc, es_tune **t,
                   es_error *err)
{
    es_tune_opts o = a->o;
    o.seed = seed;
    o.progress = on_progress;
    o.progress_ctx = pc;
    int rc = es_tune_new(cal, &o, t, err);
    for (int i = 0; !rc && i < (a->n_families ? a->n_families : 1); i++)
        rc = es_tune_add_family(*t, a->n_families ? a->families[i] : "all", err);
    if (!rc && es_tune_n_families(*t) == 0)
        rc = es_error_set(err, ES_ENOTSUP, "", 0, "--family", "no family applies to these files");
    if (!rc) rc = es_tune_run(*t, err);
    cli_progress_end();
    return rc;
}

/* The run failed only because no candidate passed the test (the user
 * keeps full); a family that does not apply is an error instead. */
static int nothing_certified(int rc, const es_error *err) { return rc == ES_ENOTSUP && !err->field[0]; }

/* ------------------------------------------------------------ printing */

static void print_eval_row(const char *role, const char *spec, const es_tune_eval *e, int full_row)
{
    char ci[64] = "", ox[16] = "-", red[16];
    if (!full_row) snprintf(ci, sizeof ci, "%+.1f [%+.1f, %+.1f]", 100 * e->d_em, 100 * e->d_lo, 100 * e->d_hi);
    double tokens = full_row ? e->full_tokens : e->p.tokens, ot = e->oracle_tokens;
    if (ot > 0) snprintf(ox, sizeof ox, "%.2f", tokens / ot);
    snprintf(red, sizeof red, "%.1f", e->full_tokens > 0 ? 100 * (1 - tokens / e->full_tokens) : 0.0);
    if (strlen(spec) > 52) printf("%-6s %s\n%-6s %-52s", role, spec, "", "");
    else printf("%-6s %-52s", role, spec);
    printf(" %6.3f %22s %10.1f %6.3f %8s %8s\n", full_row ? e->p.em_full : e->p.em, ci, tokens,
           full_row ? 1.0 : e->p.cost, red, ox);
}

static void print_eval_header(const tune_args *a)
{
    printf("%-6s %-52s %6s %22s %10s %6s %8s %8s\n", "", "policy", "EM", "dEM pts [95% CI]", "tokens",
           a->o.objective == ES_OBJECTIVE_KV ? "kv sh" : "share", "reduct%", "oracle x");
}

static json_t *eval_json(const char *role, const char *spec, const es_tune_eval *e, int full_row)
{
    double tokens = full_row ? e->full_tokens : e->p.tokens;
    json_t *j = json_object();
    json_object_set_new(j, "role", json_string(role));
    json_object_set_new(j, "policy", json_string(spec));
    json_object_set_new(j, "em", tune_num(full_row ? e->p.em_full : e->p.em));
    json_object_set_new(j, "em_delta_pts", full_row ? json_null() : tune_num(100 * e->d_em));
    json_object_set_new(j, "em_delta_lo_pts", full_row ? json_null() : tune_num(100 * e->d_lo));
    json_object_set_new(j, "em_delta_hi_pts", full_row ? json_null() : tune_num(100 * e->d_hi));
    json_object_set_new(j, "loss_pts", tune_num(full_row ? 0.0 : 100 * e->p.loss));
    json_object_set_new(j, "tokens", tune_num(tokens));
    json_object_set_new(j, "cost", tune_num(full_row ? 1.0 : e->p.cost));
    json_object_set_new(j, "token_reduction_pct",
                        tune_num(e->full_tokens > 0 ? 100 * (1 - tokens / e->full_tokens) : NAN));
    json_object_set_new(j, "oracle_multiple", tune_num(e->oracle_tokens > 0 ? tokens / e->oracle_tokens : NAN));
    return j;
}

static json_t *settings_json(const tune_args *a)
{
    json_t *fam = json_array();
    for (int i = 0; i < a->n_families; i++) json_array_append_new(fam, json_string(a->families[i]));
    if (!a->n_families) json_array_append_new(fam, json_string("all"));
    json_t *j = json_object();
    json_object_set_new(j, "families", fam);
    json_object_set_new(j, "max_em_drop_pts", a->budget ? json_null() : json_real(100 * a->o.max_em_drop));
    json_object_set_new(j, "delta", a->budget ? json_null() : json_real(a->o.delta));
    json_object_set_new(j, "token_budget", a->budget ? json_real(a->o.token_budget) : json_null());
    json_object_set_new(j, "loss", json_string(tune_loss_name(a->o.loss)));
    if (a->o.per_file) json_object_set_new(j, "per_file", json_true()); /* absent: pooled, as before */
    json_object_set_new(j, "objective", json_string(tune_objective_name(a->o.objective)));
    json_object_set_new(j, "batch", json_integer(a->o.batch));
    json_object_set_new(j, "split", a->n_files ? json_real(a->split) : json_null());
    json_object_set_new(j, "shuffles", json_integer(a->o.shuffles));
    json_object_set_new(j, "seed", json_integer((json_int_t)a->o.seed));
    json_object_set_new(j, "probe_cost", a->o.probe_cost == ES_PROBE_COST_FIELD ? json_string("field")
                                                                                 : json_integer(a->o.probe_cost));
    return j;
}

/* The chosen policy and the three others on a set: tuned, the anchors, full. */
typedef struct side_eval {
    es_tune_eval tuned, anchor[2];
    int anchor_ok[2];
    es_error anchor_err[2];
} side_eval;

static int evaluate_side(const es_tune_data *d, const char *spec, const tune_args *a, uint64_t seed, side_eval *s,
                         es_error *err)
{
    es_tune_opts o = a->o;
    o.seed = seed;
    cli_progress("tune: testing", 0, 3);
    int rc = es_tune_evaluate(d, spec, &o, &s->tuned, err);
    for (int i = 0; i < 2 && !rc; i++) {
        cli_progress("tune: testing", (size_t)i + 1, 3);
        memset(&s->anchor_err[i], 0, sizeof s->anchor_err[i]);
        int arc = es_tune_evaluate(d, tune_anchor_specs[i], &o, &s->anchor[i], &s->anchor_err[i]);
        if (arc == ES_ENOMEM) rc = es_error_set(err, arc, "", 0, "", "out of memory");
        s->anchor_ok[i] = arc == ES_OK;
    }
    cli_progress("tune: testing", 3, 3);
    cli_progress_end();
    return rc;
}

static void print_side(const side_eval *s, const tune_args *a)
{
    print_eval_header(a);
    print_eval_row("full", "full", &s->tuned, 1);
    print_eval_row("tuned", s->tuned.p.spec, &s->tuned, 0);
    for (int i = 0; i < 2; i++) {
        if (s->anchor_ok[i]) print_eval_row("anchor", s->anchor[i].p.spec, &s->anchor[i], 0);
        else printf("%-6s %-52s not computed: %s\n", "anchor", tune_anchor_specs[i], s->anchor_err[i].msg);
    }
}

static json_t *side_json(const side_eval *s)
{
    json_t *rows = json_array();
    json_array_append_new(rows, eval_json("full", "full", &s->tuned, 1));
    json_array_append_new(rows, eval_json("tuned", s->tuned.p.spec, &s->tuned, 0));
    for (int i = 0; i < 2; i++) {
        if (s->anchor_ok[i]) {
            json_array_append_new(rows, eval_json("anchor", s->anchor[i].p.spec, &s->anchor[i], 0));
        } else {
            json_t *j = json_pack("{s:s, s:s, s:s}", "role", "anchor", "policy", tune_anchor_specs[i], "error",
                                  s->anchor_err[i].msg);
            if (j) json_array_append_new(rows, j);
        }
    }
    return rows;
}

static void print_families(const es_tune *t)
{
    printf("%-2s %-24s %7s %12s\n", "", "front", "points", "hypervolume");
    for (size_t f = 0; f < es_tune_n_families(t); f++)
        printf("%-2s %-24s %7zu %12.3f\n", "", es_tune_family_name(t, f), es_tune_front_size(t, (int)f),
               es_tune_hypervolume(t, (int)f));
    printf("%-2s %-24s %7zu %12.3f\n", "", "global", es_tune_front_size(t, -1), es_tune_hypervolume(t, -1));
}

static size_t n_certified(const es_tune *t)
{
    size_t c = 0;
    for (size_t i = 0; i < es_tune_n_tested(t); i++) c += es_tune_tested(t, i)->certified != 0;
    return c;
}

static json_t *tested_json(const es_tune *t, const tune_args *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < es_tune_n_tested(t); i++) {
        const es_tune_point *p = es_tune_tested(t, i);
        json_t *j = tune_point_json(p, a);
        json_object_set_new(j, "pvalue", tune_num(p->pvalue));
        json_object_set_new(j, "certified", json_boolean(p->certified));
        json_array_append_new(arr, j);
    }
    return arr;
}

/* ------------------------------------------------------------- outputs */

typedef struct outputs {
    es_outfile *out, *front, *plot;
} outputs;

/* Every output is opened before any input is read: a typo in a directory
 * should not wait for a long tuning run.  None may be an input. */
static int open_outputs(const tune_args *a, outputs *w)
{
    int n = a->n_files + a->n_cal + a->n_test;
    const char **inputs = calloc((size_t)n + 4, sizeof *inputs);
    if (!inputs) return cli_report(NULL, ES_ENOMEM);
    int k = 0;
    for (int i = 0; i < a->n_files; i++) inputs[k++] = a->files[i];
    for (int i = 0; i < a->n_cal; i++) inputs[k++] = a->cal[i];
    for (int i = 0; i < a->n_test; i++) inputs[k++] = a->test[i];
    const char *paths[3] = {a->out_path, a->front_path, a->plot_path};
    const char *opts[3] = {"--out", "--front", "--plot"};
    es_outfile **slots[3] = {&w->out, &w->front, &w->plot};
    int rc = CLI_OK;
    for (int i = 0; i < 3 && !rc; i++) {
        if (!paths[i]) continue;
        es_error err = {0};
        int orc = es_outfile_open(paths[i], inputs, slots[i], &err);
        if (orc) {
            snprintf(err.field, sizeof err.field, "%s", opts[i]);
            rc = cli_report(&err, orc);
            /* cannot write is bad usage here, whatever the code */
            rc = CLI_USAGE;
        }
    }
    free(inputs);
    return rc;
}

static void abort_outputs(outputs *w, int said)
{
    es_outfile *of[3] = {w->out, w->front, w->plot};
    for (int i = 0; i < 3; i++) {
        if (!of[i]) continue;
        if (said) fprintf(stderr, "earlystop tune: %s not written\n", es_outfile_name(of[i]));
        es_outfile_abort(of[i]);
    }
    memset(w, 0, sizeof *w);
}

/* Write each output and commit it; on a failed write, the ones not yet
 * committed keep their old content. */
static int write_outputs(outputs *w, const tune_run *r, const tune_args *a)
{
    es_outfile **slots[3] = {&w->out, &w->front, &w->plot};
    int (*writers[3])(FILE *, const tune_run *, const tune_args *) = {tune_write_policy, tune_write_front,
                                                                      tune_write_plot};
    int rc = CLI_OK;
    for (int i = 0; i < 3; i++) {
        es_outfile *of = *slots[i];
        if (!of) continue;
        *slots[i] = NULL;
        if (rc) {
            es_outfile_abort(of);
            continue;
        }
        es_error err = {0};
        if (writers[i](es_outfile_fp(of), r, a)) {
            fprintf(stderr, "earlystop tune: %s: write failed\n", es_outfile_name(of));
            es_outfile_abort(of);
            rc = CLI_FAIL;
        } else {
            int crc = es_outfile_commit(of, &err);
            if (crc) {
                cli_report(&err, crc);
                rc = CLI_FAIL;
            }
        }
    }
    return rc;
}

/* ------------------------------------------------------------ one run */

static const char *plural(size_t n) { return n == 1 ? "" : "s"; }

static void print_settings(const tune_args *a)
{
    if (a->budget)
        printf("constraint: the best EM within %g tokens per item (--token-budget: no guarantee)\n", a->o.token_budget);
    else
        printf("constraint: mean loss (%s) <= %.2f points of EM against full%s, with probability >= %g\n",
               tune_loss_name(a->o.loss), 100 * a->o.max_em_drop, a->o.per_file ? " on every file" : "",
               1 - a->o.delta);
    if (a->o.shuffles)
        printf("cost: %s; %u random sample orders per item, seed %llu\n",
               a->o.objective == ES_OBJECTIVE_KV ? "peak KV positions" : "tokens (probe cost included)", a->o.shuffles,
               (unsigned long long)a->o.seed);
    else
        printf("cost: %s; samples in file order, seed %llu\n",
               a->o.objective == ES_OBJECTIVE_KV ? "peak KV positions" : "tokens (probe cost included)",
               (unsigned long long)a->o.seed);
}

/* The fronts and the choice, as printed after a run. */
static void print_choice(const es_tune *t, const tune_run *r, const tune_args *a)
{
    size_t nf = es_tune_data_n_items(es_tune_front_data(t));
    printf("\nfronts on %s%zu calibration item%s (cost: %s as a share of full's):\n", a->budget ? "all " : "the opt part, ",
           nf, plural(nf), a->o.objective == ES_OBJECTIVE_KV ? "peak KV" : "tokens");
    print_families(t);
    const es_tune_point *c = &r->chosen;
    if (a->budget) {
        printf("\nchosen (best EM within %g tokens per item; no guarantee):\n  %s\n", a->o.token_budget, c->spec);
    } else {
        size_t tested = es_tune_n_tested(t), cert = n_certified(t);
        printf("\nLearn-then-Test on the other %zu calibration item%s: %zu candidate%s in order, the first %zu "
               "certified (p <= %g)\n",
               r->cal_items - nf, plural(r->cal_items - nf), tested, plural(tested), cert, a->o.delta);
        printf("chosen: %s\n  family %s, p = %.3g\n", c->spec, c->family, c->pvalue);
    }
    printf("  on those %zu items: EM %.3f (full %.3f), loss %.2f pts, tokens %.1f, %s %.3f\n", nf, c->em,
           c->em_full, 100 * c->loss, c->tokens, a->o.objective == ES_OBJECTIVE_KV ? "kv share" : "share", c->cost);
}

static json_t *choice_json(const es_tune *t, const tune_run *r, const tune_args *a)
{
    json_t *j = json_object();
    json_object_set_new(j, "front_items", json_integer((json_int_t)es_tune_data_n_items(es_tune_front_data(t))));
    json_object_set_new(j, "fronts", tune_fronts_json(t, a));
    if (!a->budget) {
        json_object_set_new(j, "tested", tested_json(t, a));
        json_object_set_new(j, "certified", json_integer((json_int_t)n_certified(t)));
    }
    json_t *c = tune_point_json(&r->chosen, a);
    json_object_set_new(c, "pvalue", tune_num(r->chosen.pvalue));
    json_object_set_new(j, "chosen", c);
    return j;
}

/* Full, the oracle and the anchors on the items the fronts were measured
 * on: where --plot places them. */
static int plot_marks(tune_run *r, const tune_args *a, uint64_t seed, es_error *err)
{
    const es_tune_data *fd = es_tune_front_data(r->t);
    es_tune_opts o = a->o;
    o.seed = seed;
    int rc = es_tune_evaluate(fd, "full", &o, &r->full, err);
    for (int i = 0; i < 2 && !rc; i++) {
        es_error e2 = {0};
        int arc = es_tune_evaluate(fd, tune_anchor_specs[i], &o, &r->anchor[i], &e2);
        if (arc == ES_ENOMEM) rc = es_error_set(err, arc, "", 0, "", "out of memory");
        r->anchor_ok[i] = arc == ES_OK;
    }
    return rc;
}

static int run_single(const loaded *f, int n_f, const loaded *tf, int n_tf, const tune_args *a, outputs *w,
                      json_t *doc)
{
    es_tune_data *cal = NULL, *test = NULL;
    size_t total = 0;
    for (int i = 0; i < n_f; i++) total += es_traceset_n_items(f[i].ts);
    int rc;
    if (tf) {
        rc = data_of(f, n_f, -1, &cal);
        if (!rc) rc = data_of(tf, n_tf, -1, &test);
    } else if (a->split >= 1) {
        rc = data_of(f, n_f, -1, &cal);
    } else {
        rc = split_data(f, n_f, a->split, a->o.seed, &cal, &test);
    }
    if (rc) {
        es_tune_data_free(cal);
        es_tune_data_free(test);
        return cli_report(NULL, rc);
    }
    size_t n_cal = es_tune_data_n_items(cal), n_test = test ? es_tune_data_n_items(test) : 0;
    const char **cal_names = malloc(((size_t)n_f + 1) * sizeof *cal_names);
    for (int i = 0; cal_names && i < n_f; i++) cal_names[i] = f[i].path;
    tune_run r = {.cal_files = cal_names, .n_cal_files = n_f, .cal_items = n_cal, .test_items = n_test};
    if (!a->json) {
        if (tf)
            printf("earlystop tune: calibration %d file%s (%zu items), test %d file%s (%zu items)\n", n_f,
                   plural((size_t)n_f), n_cal, n_tf, plural((size_t)n_tf), n_test);
        else if (test)
            printf("earlystop tune: %d file%s, %zu item%s: %zu for calibration, %zu for the test (--split %g, seed %llu)\n",
                   n_f, plural((size_t)n_f), total, plural(total), n_cal, n_test, a->split,
                   (unsigned long long)a->o.seed);
        else
            printf("earlystop tune: %d file%s, %zu item%s, all for calibration (--split 1: no test)\n", n_f,
                   plural((size_t)n_f), total, plural(total));
        print_settings(a);
    }
    if (!cal_names || (test && n_test == 0) || n_cal == 0) {
        rc = !cal_names ? cli_report(NULL, ES_ENOMEM)
                        : cli_usage_error("tune", "%zu item%s leave%s none for %s at --split %g", total, plural(total),
                                          total == 1 ? "s" : "", n_cal ? "the test" : "calibration", a->split);
        es_tune_data_free(cal);
        es_tune_data_free(test);
        free(cal_names);
        return rc;
    }
    es_error err = {0};
    progress_ctx pc = {""};
    rc = tune_on(cal, a, a->o.seed, &pc, &r.t, &err);
    side_eval se;
    memset(&se, 0, sizeof se);
    if (!rc) es_tune_chosen(r.t, &r.chosen);
    if (!rc && test) {
        rc = evaluate_side(test, r.chosen.spec, a, a->o.seed, &se, &err);
        r.have_test = !rc;
        r.test = se.tuned;
    }
    if (!rc && w->plot) rc = plot_marks(&r, a, a->o.seed, &err);
    if (rc) {
        int code = cli_report(&err, rc);
        /* nothing certified: with a split, more calibration items are a flag away */
        if (nothing_certified(rc, &err) && !a->budget && !tf && a->split < 1)
            fprintf(stderr, "earlystop tune: calibration got %zu of the %zu items (--split %g); a larger --split "
                            "gives it more\n", n_cal, total, a->split);
        abort_outputs(w, 1);
        es_tune_free(r.t);
        es_tune_data_free(cal);
        es_tune_data_free(test);
        free(cal_names);
        return code;
    }
    if (!a->json) {
        print_choice(r.t, &r, a);
        if (test) {
            printf("\ntest: %zu item%s the tuner never saw\n", n_test, plural(n_test));
            print_side(&se, a);
        }
    } else {
        json_object_set_new(doc, "calibration_items", json_integer((json_int_t)n_cal));
        json_object_set_new(doc, "test_items", test ? json_integer((json_int_t)n_test) : json_null());
        json_t *cj = choice_json(r.t, &r, a);
        json_object_update(doc, cj);
        json_decref(cj);
        json_object_set_new(doc, "test", test ? side_json(&se) : json_null());
    }
    rc = write_outputs(w, &r, a);
    es_tune_free(r.t);
    es_tune_data_free(cal);
    es_tune_data_free(test);
    free(cal_names);
    return rc;
}

/* ----------------------------------------------------------- --repeats */

static int run_repeats(const loaded *f, int n_f, const tune_args *a, json_t *doc)
{
    double eps = a->o.max_em_drop;
    uint32_t exceeded = 0, none = 0;
    json_t *rows = json_array();
    if (!a->json) {
        size_t total = 0;
        for (int i = 0; i < n_f; i++) total += es_traceset_n_items(f[i].ts);
        printf("earlystop tune: %d file%s, %zu items; %u random splits (--split %g) with seeds %llu..%llu\n", n_f,
               plural((size_t)n_f), total, a->repeats, a->split, (unsigned long long)a->o.seed,
               (unsigned long long)(a->o.seed + a->repeats - 1));
        print_settings(a);
        printf("\n%6s %6s %6s %9s %6s %20s %6s  %s\n", "seed", "cal", "test", "loss pts", "> eps", "dEM pts [95% CI]",
               a->o.objective == ES_OBJECTIVE_KV ? "kv sh" : "share", "chosen");
    }
    int rc = CLI_OK;
    for (uint32_t r = 0; r < a->repeats && !rc; r++) {
        uint64_t seed = a->o.seed + r;
        es_tune_data *cal = NULL, *test = NULL;
        if (split_data(f, n_f, a->split, seed, &cal, &test)) {
            rc = cli_report(NULL, ES_ENOMEM);
        } else if (!es_tune_data_n_items(test) || !es_tune_data_n_items(cal)) {
            rc = cli_usage_error("tune", "--split %g leaves no items for %s", a->split,
                                 es_tune_data_n_items(cal) ? "the test" : "calibration");
        } else {
            progress_ctx pc;
            snprintf(pc.prefix, sizeof pc.prefix, "repeat %u/%u: ", r + 1, a->repeats);
            es_tune *t = NULL;
            es_error err = {0};
            int trc = tune_on(cal, a, seed, &pc, &t, &err);
            es_tune_point c;
            es_tune_eval e;
            memset(&e, 0, sizeof e);
            /* no candidate certified: the user keeps full, which loses nothing */
            int chosen = trc == ES_OK && es_tune_chosen(t, &c) == ES_OK;
            if (trc && !nothing_certified(trc, &err)) rc = cli_report(&err, trc);
            if (!rc && chosen) {
                es_tune_opts o = a->o;
                o.seed = seed;
                int erc = es_tune_evaluate(test, c.spec, &o, &e, &err);
                if (erc) rc = cli_report(&err, erc);
            }
            if (!rc) {
                double loss = chosen ? e.p.loss : 0.0;
                int over = loss > eps;
                exceeded += (uint32_t)over;
                none += (uint32_t)!chosen;
                size_t nc = es_tune_data_n_items(cal), nt = es_tune_data_n_items(test);
                if (!a->json) {
                    char ci[48] = "", cost[16] = "";
                    if (chosen) {
                        snprintf(ci, sizeof ci, "%+.1f [%+.1f, %+.1f]", 100 * e.d_em, 100 * e.d_lo, 100 * e.d_hi);
                        snprintf(cost, sizeof cost, "%.3f", e.p.cost);
                    }
                    printf("%6llu %6zu %6zu %9.2f %6s %20s %6s  %s\n", (unsigned long long)seed, nc, nt, 100 * loss,
                           over ? "yes" : "no", ci, cost, chosen ? c.spec : "none certified (full kept)");
                }
                json_t *j = json_object();
                json_object_set_new(j, "seed", json_integer((json_int_t)seed));
                json_object_set_new(j, "calibration_items", json_integer((json_int_t)nc));
                json_object_set_new(j, "test_items", json_integer((json_int_t)nt));
                json_object_set_new(j, "chosen", chosen ? json_string(c.spec) : json_null());
                json_object_set_new(j, "pvalue", chosen ? tune_num(c.pvalue) : json_null());
                json_object_set_new(j, "test_loss_pts", json_real(100 * loss));
                json_object_set_new(j, "exceeded", json_boolean(over));
                json_object_set_new(j, "em_delta_pts", chosen ? tune_num(100 * e.d_em) : json_real(0));
                json_object_set_new(j, "cost", chosen ? tune_num(e.p.cost) : json_real(1));
                json_array_append_new(rows, j);
            }
            es_tune_free(t);
        }
        es_tune_data_free(cal);
        es_tune_data_free(test);
    }
    if (!rc) {
        double share = (double)exceeded / a->repeats, sd = sqrt(a->o.delta * (1 - a->o.delta) / a->repeats);
        if (!a->json) {
            printf("\ntest loss above %.2f pts in %u of %u repeats: %.1f%% (delta %.1f%%; binomial noise at delta: "
                   "2 sd = %.1f%%)\n",
                   100 * eps, exceeded, a->repeats, 100 * share, 100 * a->o.delta, 200 * sd);
            if (none) printf("%u repeat%s certified no candidate (full kept: no loss)\n", none, plural(none));
        }
        json_object_set_new(doc, "repeats", rows);
        json_object_set_new(doc, "exceeded", json_integer(exceeded));
        json_object_set_new(doc, "exceeded_share", json_real(share));
        json_object_set_new(doc, "none_certified", json_integer(none));
        rows = NULL;
    }
    json_decref(rows);
    return rc;
}

/* ------------------------------------------------- --leave-one-file-out */

/* Item-weighted sums for the pooled line. */
typedef struct pooled {
    double n, d_em, var, tokens, full_tokens, oracle_tokens;
} pooled;

static void pool_add(pooled *p, const es_tune_eval *e, size_t n)
{
    double w = (double)n, se = (e->d_hi - e->d_lo) / (2 * 1.96);
    p->n += w;
    p->d_em += w * e->d_em;
    p->var += w * w * se * se;
    p->tokens += w * e->p.tokens;
    p->full_tokens += w * e->full_tokens;
    p->oracle_tokens += w * e->oracle_tokens;
}

/* A pooled row as an es_tune_eval: means over all items, the interval a
 * normal approximation from the files' own (each file's items independent
 * of the others'). */
static es_tune_eval pool_eval(const pooled *p)
{
    es_tune_eval e;
    memset(&e, 0, sizeof e);
    double n = p->n > 0 ? p->n : 1, half = 1.96 * sqrt(p->var) / n;
    e.d_em = p->d_em / n;
    e.d_lo = e.d_em - half;
    e.d_hi = e.d_em + half;
    e.p.tokens = p->tokens / n;
    e.full_tokens = p->full_tokens / n;
    e.oracle_tokens = p->oracle_tokens / n;
    return e;
}

static void print_lofo_row(const char *name, const es_tune_eval *e)
{
    char ci[64], ox[16] = "-";
    snprintf(ci, sizeof ci, "%+.1f [%+.1f, %+.1f]", 100 * e->d_em, 100 * e->d_lo, 100 * e->d_hi);
    if (e->oracle_tokens > 0) snprintf(ox, sizeof ox, "%.2f", e->p.tokens / e->oracle_tokens);
    printf("  %-10s %22s %12.1f %8.1f %8s\n", name, ci, e->p.tokens,
           e->full_tokens > 0 ? 100 * (1 - e->p.tokens / e->full_tokens) : 0.0, ox);
}

static json_t *lofo_row_json(const char *role, const char *spec, const es_tune_eval *e)
{
    json_t *j = json_object();
    json_object_set_new(j, "role", json_string(role));
    json_object_set_new(j, "policy", spec ? json_string(spec) : json_null());
    json_object_set_new(j, "em_delta_pts", tune_num(100 * e->d_em));
    json_object_set_new(j, "em_delta_lo_pts", tune_num(100 * e->d_lo));
    json_object_set_new(j, "em_delta_hi_pts", tune_num(100 * e->d_hi));
    json_object_set_new(j, "tokens", tune_num(e->p.tokens));
    json_object_set_new(j, "token_reduction_pct",
                        tune_num(e->full_tokens > 0 ? 100 * (1 - e->p.tokens / e->full_tokens) : NAN));
    json_object_set_new(j, "oracle_multiple", tune_num(e->oracle_tokens > 0 ? e->p.tokens / e->oracle_tokens : NAN));
    return j;
}

static int run_lofo(const loaded *f, int n_f, const tune_args *a, json_t *doc)
{
    pooled pool[3];
    memset(pool, 0, sizeof pool);
    int pool_ok[3] = {1, 1, 1};
    json_t *rows = json_array();
    if (!a->json) {
        printf("earlystop tune: leave one file out: each of %d files tested with the policy tuned on the other %d\n",
               n_f, n_f - 1);
        print_settings(a);
    }
    int rc = CLI_OK;
    for (int k = 0; k < n_f && !rc; k++) {
        es_tune_data *cal = NULL, *test = NULL;
        if (data_of(f, n_f, k, &cal) || data_of(f + k, 1, -1, &test)) {
            rc = cli_report(NULL, ES_ENOMEM);
            es_tune_data_free(cal);
            es_tune_data_free(test);
            break;
        }
        progress_ctx pc;
        snprintf(pc.prefix, sizeof pc.prefix, "file %d/%d: ", k + 1, n_f);
        es_tune *t = NULL;
        es_error err = {0};
        int trc = tune_on(cal, a, a->o.seed, &pc, &t, &err);
        es_tune_point c;
        int chosen = trc == ES_OK && es_tune_chosen(t, &c) == ES_OK;
        const char *why = NULL;
        char whybuf[600];
        if (nothing_certified(trc, &err)) {
            /* no candidate certified: full is kept */
            snprintf(whybuf, sizeof whybuf, "%s", err.msg);
            why = whybuf;
        } else if (trc) {
            rc = cli_report(&err, trc);
        }
        side_eval se;
        memset(&se, 0, sizeof se);
        if (!rc) {
            rc = evaluate_side(test, chosen ? c.spec : "full", a, a->o.seed, &se, &err);
            if (rc) rc = cli_report(&err, rc);
        }
        if (!rc) {
            size_t n = es_tune_data_n_items(test);
            pool_add(&pool[0], &se.tuned, n);
            for (int i = 0; i < 2; i++) {
                if (se.anchor_ok[i]) pool_add(&pool[i + 1], &se.anchor[i], n);
                else pool_ok[i + 1] = 0;
            }
            if (!a->json) {
                printf("\n%s (%zu items), tuned on %zu items: %s\n", f[k].path, n, es_tune_data_n_items(cal),
                       chosen ? c.spec : "none certified, full kept");
                if (why) printf("  (%s)\n", why);
                printf("  %-10s %22s %12s %8s %8s\n", "policy", "dEM pts [95% CI]", "tokens", "reduct%", "oracle x");
                print_lofo_row("tuned", &se.tuned);
                for (int i = 0; i < 2; i++) {
                    if (se.anchor_ok[i]) print_lofo_row(tune_anchor_specs[i], &se.anchor[i]);
                    else printf("  %-10s not computed: %s\n", tune_anchor_specs[i], se.anchor_err[i].msg);
                }
            }
            json_t *fr = json_array();
            json_array_append_new(fr, lofo_row_json("tuned", chosen ? c.spec : "full", &se.tuned));
            for (int i = 0; i < 2; i++)
                if (se.anchor_ok[i])
                    json_array_append_new(fr, lofo_row_json("anchor", se.anchor[i].p.spec, &se.anchor[i]));
            json_t *j = json_object();
            json_object_set_new(j, "file", json_string(f[k].path));
            json_object_set_new(j, "items", json_integer((json_int_t)n));
            json_object_set_new(j, "calibration_items", json_integer((json_int_t)es_tune_data_n_items(cal)));
            json_object_set_new(j, "chosen", chosen ? json_string(c.spec) : json_null());
            json_object_set_new(j, "note", why ? json_string(why) : json_null());
            json_object_set_new(j, "rows", fr);
            json_array_append_new(rows, j);
        }
        es_tune_free(t);
        es_tune_data_free(cal);
        es_tune_data_free(test);
    }
    if (!rc) {
        const char *names[3] = {"tuned", tune_anchor_specs[0], tune_anchor_specs[1]};
        if (!a->json) {
            printf("\npooled over %d files (%.0f items; interval: normal approximation from the files'):\n", n_f,
                   pool[0].n);
            printf("  %-10s %22s %12s %8s %8s\n", "policy", "dEM pts [95% CI]", "tokens", "reduct%", "oracle x");
        }
        json_t *pj = json_array();
        for (int i = 0; i < 3; i++) {
            if (!pool_ok[i]) continue;
            es_tune_eval e = pool_eval(&pool[i]);
            if (!a->json) print_lofo_row(names[i], &e);
            json_array_append_new(pj, lofo_row_json(i ? "anchor" : "tuned", i ? names[i] : NULL, &e));
        }
        json_object_set_new(doc, "leave_one_file_out", rows);
        json_object_set_new(doc, "pooled", pj);
        rows = NULL;
    }
    json_decref(rows);
    return rc;
}

/* ------------------------------------------------------------- command */

int cmd_tune(int argc, char **argv)
{
    tune_args a;
    memset(&a, 0, sizeof a);
    a.files = calloc((size_t)argc, sizeof *a.files);
    a.cal = calloc((size_t)argc, sizeof *a.cal);
    a.test = calloc((size_t)argc, sizeof *a.test);
    loaded *f = calloc((size_t)argc, sizeof *f), *tf = NULL;
    outputs w = {0};
    json_t *doc = json_object();
    int rc = a.files && a.cal && a.test && f && doc ? CLI_OK : cli_report(NULL, ES_ENOMEM);
    if (!rc) rc = parse_args(argc, argv, &a);
    const char **names = a.n_files ? a.files : a.cal;
    int n_names = a.n_files ? a.n_files : a.n_cal;
    if (!rc) {
        /* every input distinct, the calibration and the test files included */
        const char **all = calloc((size_t)argc, sizeof *all);
        int n = 0;
        for (int i = 0; all && i < n_names; i++) all[n++] = names[i];
        for (int i = 0; all && i < a.n_test; i++) all[n++] = a.test[i];
        rc = all ? check_distinct(all, n) : cli_report(NULL, ES_ENOMEM);
        free(all);
    }
    if (!rc) rc = open_outputs(&a, &w);
    if (!rc) rc = load_files(names, n_names, a.threads, f);
    if (!rc && a.n_test) {
        tf = f + n_names;
        rc = load_files(a.test, a.n_test, a.threads, tf);
    }
    if (!rc) {
        json_object_set_new(doc, "format", json_string("earlystop-tune"));
        json_object_set_new(doc, "version", json_string(ES_VERSION_STRING));
        json_object_set_new(doc, "settings", settings_json(&a));
        json_t *files = json_array(), *tests = json_array();
        for (int i = 0; i < n_names; i++)
            json_array_append_new(files, json_pack("{s:s, s:I}", "path", f[i].path,
                                                   "items", (json_int_t)es_traceset_n_items(f[i].ts)));
        for (int i = 0; i < a.n_test; i++)
            json_array_append_new(tests, json_pack("{s:s, s:I}", "path", tf[i].path,
                                                   "items", (json_int_t)es_traceset_n_items(tf[i].ts)));
        json_object_set_new(doc, a.n_files ? "files" : "calibration_files", files);
        if (a.n_test) json_object_set_new(doc, "test_files", tests);
        else json_decref(tests);
        if (a.lofo) rc = run_lofo(f, n_names, &a, doc);
        else if (a.repeats > 1) rc = run_repeats(f, n_names, &a, doc);
        else rc = run_single(f, n_names, tf, a.n_test, &a, &w, doc);
    }
    abort_outputs(&w, rc != CLI_OK && rc != HELP);
    if (!rc && a.json) {
        if (json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) ||
            putchar('\n') == EOF)
            rc = CLI_FAIL; /* main says why, once, when it closes stdout */
    }
    for (int i = 0; i < n_names + a.n_test; i++) es_traceset_free(f[i].ts);
    json_decref(doc);
    free(f);
    free(a.files);
    free(a.cal);
    free(a.test);
    return rc == HELP ? CLI_OK : rc;
}
