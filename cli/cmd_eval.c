/*
 * cmd_eval.c - `earlystop eval FILE... --policy SPEC ...`: replay stopping
 * policies on recorded traces and report tokens against EM.
 *
 * Rows per file: `full` (the baseline every delta is paired against), each
 * policy, then the oracles.  Random orders are split across OpenMP threads;
 * each thread owns its policy object and integer accumulators, so the output
 * is byte for byte the same whatever the thread count.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "earlystop_io.h"

static const char usage_text[] =
    "usage: earlystop eval FILE... [--policy SPEC]... [options]\n"
    "\n"
    "Replay stopping policies on trace files and print, per policy: EM, the EM\n"
    "change against `full` in points with a paired bootstrap 95% interval, mean\n"
    "tokens (generated + probe cost), token reduction against `full`, mean\n"
    "samples and rounds, and the oracle multiple (tokens / consistency-oracle\n"
    "tokens; stable-final oracle for traces with probes).  Oracle rows follow.\n"
    "\n"
    "policies (SPEC, or @file.json; combine a within- and an across-sample rule\n"
    "with '+', e.g. dynasor:k=3+ac-beta):\n"
    "  full[:max=N]                      every sample; majority vote\n"
    "  budget:samples=N|tokens=T         plain caps (s1-style budget forcing)\n"
    "  ac-beta[:threshold=0.95]          Adaptive-Consistency, Beta criterion\n"
    "  ac-dirichlet[:threshold=0.95,top_k=5]  Adaptive-Consistency, Dirichlet\n"
    "  majority[:fraction=0.8]  entropy[:threshold=0.75]\n"
    "  esc[:window=5,remainder=draw|skip]  ESC: stop at the first unanimous window\n"
    "  deer[:threshold=0.95]             stop at a probe with confidence > threshold\n"
    "  dynasor[:k=3,decide=after-chunk|at-probe]  stop when the last k probed answers agree\n"
    "  convergence[:m=2]                 stop when the probed answer repeats m times\n"
    "  deepconf[:warmup=16,eta=10,consensus=off,vote=weighted|count]  DeepConf online\n"
    "(max=N caps the samples of an across rule, max=all = no cap; docs/policies.md)\n"
    "(default policies: ac-beta and esc)\n"
    "\n"
    "options:\n"
    "  --policy SPEC       add a policy row (repeatable)\n"
    "  --shuffles R        average over R random sample orders (default 0: file order)\n"
    "  --seed S            seed of the orders and the bootstrap (default 1)\n"
    "  --threads N         threads for --shuffles (default: all cores)\n"
    "  --probe-cost N      charge N tokens per probe (default: each probe's cost field)\n"
    "  --bootstrap B       bootstrap resamples (default 1000)\n"
    "  --no-oracle         leave out the oracle rows\n"
    "  --json | --csv      machine-readable output\n"
    "  --decisions FILE    write each item's stop point and answer (JSON Lines, file order)\n"
    "  --skip-bad          skip items that break the format and report how many\n"
    "  -h, --help          this text\n";

enum { MAX_POLICIES = 32, ROW_ORACLE = 1 };

typedef struct eval_opts {
    const char *specs[MAX_POLICIES];
    int n_specs;
    uint32_t shuffles, bootstrap;
    uint64_t seed;
    int threads, json, csv, oracles;
    int32_t probe_cost;
    unsigned read_flags;
    FILE *decisions;
} eval_opts;

/* One output row: sums over orders for each item. */
typedef struct row {
    char name[256];
    int oracle;
    int skip;          /* not applicable to this file */
    es_eval_acc *acc;
} row;

static int parse_args(int argc, char **argv, eval_opts *o, const char **files, int *n_files)
{
    *o = (eval_opts){.bootstrap = 1000, .seed = 1, .oracles = 1, .probe_cost = ES_PROBE_COST_FIELD,
                     .read_flags = ES_READ_NO_TEXT};
    const char *dec = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (cli_is_help(a)) { fputs(usage_text, stdout); exit(0); }
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--csv")) o->csv = 1;
        else if (!strcmp(a, "--no-oracle")) o->oracles = 0;
        else if (!strcmp(a, "--skip-bad")) o->read_flags |= ES_READ_SKIP_BAD;
        else if (a[0] == '-' && a[1] && !v) return cli_usage_error("eval", "option '%s' needs a value or is unknown", a);
        else if (!strcmp(a, "--policy")) {
            if (o->n_specs == MAX_POLICIES) return cli_usage_error("eval", "at most %d policies", MAX_POLICIES);
            o->specs[o->n_specs++] = argv[++i];
        } else if (!strcmp(a, "--shuffles")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n)) return cli_usage_error("eval", "--shuffles: bad count '%s'", v);
            o->shuffles = (uint32_t)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_long(argv[++i], 0, LONG_MAX, &n)) return cli_usage_error("eval", "--seed: bad seed '%s'", v);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_long(argv[++i], 1, 1024, &n)) return cli_usage_error("eval", "--threads: bad count '%s'", v);
            o->threads = (int)n;
        } else if (!strcmp(a, "--probe-cost")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n)) return cli_usage_error("eval", "--probe-cost: bad count '%s'", v);
            o->probe_cost = (int32_t)n;
        } else if (!strcmp(a, "--bootstrap")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n)) return cli_usage_error("eval", "--bootstrap: bad count '%s'", v);
            o->bootstrap = (uint32_t)n;
        } else if (!strcmp(a, "--decisions")) {
            dec = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("eval", "unknown option '%s'", a);
        } else {
            files[(*n_files)++] = a;
        }
    }
    if (!*n_files) return cli_usage_error("eval", "no trace file given");
    if (o->json && o->csv) return cli_usage_error("eval", "--json and --csv exclude each other");
    if (!o->n_specs) {
        o->specs[o->n_specs++] = "ac-beta";
        o->specs[o->n_specs++] = "esc";
    }
    if (dec && !(o->decisions = fopen(dec, "w"))) {
        perror(dec);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* 1 when the policy has a within-sample rule that needs probes (a token
 * budget does not) and the file has none: replaying it would silently be
 * `full`, which is never what the user asked for. */
static int probe_rule_without_probes(const es_traceset *ts, const char *spec)
{
    if (es_traceset_n_probes(ts) > 0) return 0;
    es_policy *p;
    if (es_policy_new_any(spec, &p, NULL)) return 0;
    int bad = es_policy_probes(p) && es_policy_token_limit(p) == UINT32_MAX;
    es_policy_free(p);
    return bad;
}

/* Replay one policy over all orders (threads split them) into acc. */
static int run_policy(const es_traceset *ts, const char *spec, const eval_opts *o, es_eval_acc *acc,
                      char *canon, size_t canon_cap, const char *path)
{
    es_error err = {0};
    int rc = es_eval_policy_threads(ts, spec, o->seed, o->shuffles, o->threads, o->probe_cost, acc, canon,
                                    canon_cap, &err);
    if (rc) {
        if (!err.file[0]) snprintf(err.file, sizeof err.file, "%s", path); /* a policy file names itself */
        return cli_report(&err, rc);
    }
    return CLI_OK;
}

/* Means over items of the row's per-item means over orders. */
typedef struct row_figs {
    double em, tokens, gen_tokens, samples, rounds, probes, d_mean, d_lo, d_hi, reduction, oracle_x;
} row_figs;

static void per_item_em(const es_eval_acc *acc, size_t n, double orders, double *em)
{
    for (size_t i = 0; i < n; i++) em[i] = acc[i].correct / orders;
}

static void figures(const es_eval_acc *acc, size_t n, double orders, row_figs *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        f->em += acc[i].correct;
        f->gen_tokens += (double)acc[i].tokens;
        f->tokens += (double)(acc[i].tokens + acc[i].probe_tokens);
        f->samples += (double)acc[i].samples;
        f->rounds += (double)acc[i].rounds;
        f->probes += (double)acc[i].probes;
    }
    double d = orders * (double)(n ? n : 1);
    f->em /= d;
    f->gen_tokens /= d;
    f->tokens /= d;
    f->samples /= d;
    f->rounds /= d;
    f->probes /= d;
}

static void print_header(const char *path, size_t n_items, const eval_opts *o)
{
    printf("%s: %zu items, %s\n", path, n_items,
           o->shuffles ? "averaged over random orders" : "samples in file order");
    printf("%-56s %7s %22s %9s %9s %7s %7s %7s\n", "policy", "EM", "dEM pts [95% CI]", "tokens", "reduct%",
           "samples", "rounds", "oracle x");
}

/* A CSV field, quoted (RFC 4180) since canonical specs contain commas. */
static void csv_field(const char *v)
{
    putchar('"');
    for (; *v; v++) {
        if (*v == '"') putchar('"');
        putchar(*v);
    }
    putchar('"');
}

static void print_row(const row *r, const row_figs *f, const eval_opts *o, const char *path, json_t *rows)
{
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "file", json_string(path));
        json_object_set_new(j, "policy", json_string(r->name));
        json_object_set_new(j, "oracle", json_boolean(r->oracle));
        const struct { const char *k; double v; } nums[] = {
            {"em", f->em}, {"em_delta_pts", r->oracle ? NAN : 100 * f->d_mean}, {"em_delta_lo_pts", r->oracle ? NAN : 100 * f->d_lo},
            {"em_delta_hi_pts", r->oracle ? NAN : 100 * f->d_hi}, {"tokens", f->tokens},
            {"tokens_no_probe_cost", f->gen_tokens}, {"token_reduction_pct", f->reduction},
            {"samples", f->samples}, {"rounds", f->rounds}, {"probes", f->probes},
            {"oracle_multiple", f->oracle_x}};
        /* JSON has no NaN: figures that do not apply are null */
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
            json_object_set_new(j, nums[i].k, isfinite(nums[i].v) ? json_real(nums[i].v) : json_null());
        json_array_append_new(rows, j);
        return;
    }
    if (o->csv) {
        csv_field(path);
        putchar(',');
        csv_field(r->name);
        printf(",%d,%.6f,%.4f,%.4f,%.4f,%.2f,%.2f,%.3f,%.4f,%.4f,%.4f,%.4f\n", r->oracle, f->em,
               100 * f->d_mean, 100 * f->d_lo, 100 * f->d_hi, f->tokens, f->gen_tokens, f->reduction, f->samples, f->rounds,
               f->probes, f->oracle_x);
        return;
    }
    char ci[64];
    snprintf(ci, sizeof ci, "%+.1f [%+.1f, %+.1f]", 100 * f->d_mean, 100 * f->d_lo, 100 * f->d_hi);
    char tok[32];
    snprintf(tok, sizeof tok, "%.1f", f->tokens);
    char ox[16] = "-"; /* no oracle row to measure against (--no-oracle) */
    if (isfinite(f->oracle_x)) snprintf(ox, sizeof ox, "%.2f", f->oracle_x);
    /* long combined specs keep their full name on a line of their own */
    if (strlen(r->name) > 56) printf("%s\n", r->name);
    printf("%-56.56s %7.3f %22s %9s %9.1f %7.3f %7.2f %8s\n", strlen(r->name) > 56 ? "" : r->name, f->em,
           r->oracle ? "" : ci, tok, f->reduction, f->samples, f->rounds, ox);
    if (f->tokens != f->gen_tokens)
        printf("%-56s %7s %22s %9.1f %9s (without probe cost; %.1f probes/item)\n", "", "", "", f->gen_tokens, "",
               f->probes);
}

/* Decisions of each policy on each item, file order. */
static int write_decisions(const es_traceset *ts, const char *spec, const eval_opts *o, const char *path)
{
    es_policy *p;
    es_error err = {0};
    int rc = es_policy_new_any(spec, &p, &err);
    if (rc) return cli_report(&err, rc);
    es_item_view v;
    es_outcome out;
    for (size_t i = 0; i < es_traceset_n_items(ts) && rc == ES_OK; i++) {
        es_traceset_item(ts, i, &v);
        rc = es_replay_item(p, &v, NULL, o->probe_cost, &out);
        if (rc) break;
        const char *ans = out.answer >= 0 && (uint32_t)out.answer < v.n_answers ? v.answer_raw[out.answer] : NULL;
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:b}", "file", path, "policy",
                              es_policy_spec(p), "id", v.id, "samples", (json_int_t)out.samples, "rounds",
                              (json_int_t)out.rounds, "tokens", (json_int_t)out.tokens, "probe_tokens",
                              (json_int_t)out.probe_tokens, "answer", ans ? json_string(ans) : json_null(),
                              "correct", out.correct);
        json_dumpf(j, o->decisions, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', o->decisions);
        json_decref(j);
    }
    es_policy_free(p);
    return rc ? CLI_USAGE : CLI_OK;
}

static int eval_file(const char *path, const eval_opts *o, json_t *rows)
{
    es_traceset *ts;
    es_error err = {0};
    size_t skipped = 0;
    int rc = es_traceset_load(path, o->read_flags, &ts, &skipped, &err);
    if (rc) return cli_report(&err, rc);
    if (skipped) fprintf(stderr, "earlystop eval: %s: skipped %zu bad item(s)\n", path, skipped);
    size_t n = es_traceset_n_items(ts);
    int has_probes = es_traceset_n_probes(ts) > 0, n_rows = 1 + o->n_specs + (o->oracles ? 2 + has_probes : 0);
    row *rows_ = calloc((size_t)n_rows, sizeof *rows_);
    double *em = malloc(n * sizeof *em), *em_full = malloc(n * sizeof *em_full);
    rc = rows_ && em && em_full ? CLI_OK : CLI_FAIL;
    for (int r = 0; r < n_rows && rc == CLI_OK; r++)
        if (!(rows_[r].acc = calloc(n ? n : 1, sizeof(es_eval_acc)))) rc = CLI_FAIL;
    uint32_t e = o->shuffles; /* orders [0, e); 0 = file order */
    for (int r = 0; r < n_rows && rc == CLI_OK; r++) {
        if (r <= o->n_specs) {
            const char *spec = r == 0 ? "full" : o->specs[r - 1];
            cli_progress("eval: replaying", (size_t)r, (size_t)o->n_specs + 1);
            if (probe_rule_without_probes(ts, spec)) {
                /* replaying it would silently be `full`: say so and leave the row out */
                fprintf(stderr, "earlystop eval: %s: no row for '%s': it decides on probes and this file has "
                                "none (record traces with probes: earlystop generate --probe-every N)\n", path, spec);
                rows_[r].skip = 1;
                continue;
            }
            rc = run_policy(ts, spec, o, rows_[r].acc, rows_[r].name, sizeof rows_[r].name, path);
            if (rc == CLI_OK && o->decisions) rc = write_decisions(ts, spec, o, path);
        } else {
            int which = r - o->n_specs - 1;
            static const char *const names[] = {"oracle:consistency", "oracle:correctness", "oracle:stable-final"};
            snprintf(rows_[r].name, sizeof rows_[r].name, "%s", names[which]);
            rows_[r].oracle = 1;
            rc = es_eval_oracle(ts, (es_oracle)which, o->seed, 0, e, rows_[r].acc) ? CLI_FAIL : CLI_OK;
        }
    }
    cli_progress_end();
    if (rc == CLI_OK) {
        double orders = o->shuffles ? o->shuffles : 1;
        row_figs full, f, oracle;
        figures(rows_[0].acc, n, orders, &full);
        per_item_em(rows_[0].acc, n, orders, em_full);
        /* the oracle to measure against: stable-final cuts each trace where it settles */
        if (o->oracles) figures(rows_[has_probes ? n_rows - 1 : 1 + o->n_specs].acc, n, orders, &oracle);
        if (!o->json && !o->csv) print_header(path, n, o);
        for (int r = 0; r < n_rows; r++) {
            if (rows_[r].skip) continue;
            figures(rows_[r].acc, n, orders, &f);
            per_item_em(rows_[r].acc, n, orders, em);
            if (!rows_[r].oracle && es_bootstrap_diff(em, em_full, n, o->bootstrap, o->seed, &f.d_lo, &f.d_hi))
                rc = CLI_FAIL;
            f.d_mean = f.em - full.em;
            f.reduction = full.tokens > 0 ? 100.0 * (1.0 - f.tokens / full.tokens) : 0;
            f.oracle_x = o->oracles && oracle.tokens > 0 ? f.tokens / oracle.tokens : NAN;
            print_row(&rows_[r], &f, o, path, rows);
        }
        if (!o->json && !o->csv) putchar('\n');
    }
    for (int r = 0; rows_ && r < n_rows; r++) free(rows_[r].acc);
    free(rows_);
    free(em);
    free(em_full);
    es_traceset_free(ts);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char **files = calloc((size_t)argc, sizeof *files);
    int n_files = 0;
    eval_opts o;
    if (!files) return CLI_FAIL;
    int rc = parse_args(argc, argv, &o, files, &n_files);
    json_t *rows = json_array();
    if (o.csv && rc == CLI_OK)
        puts("file,policy,oracle,em,em_delta_pts,em_delta_lo_pts,em_delta_hi_pts,tokens,tokens_no_probe_cost,"
             "token_reduction_pct,samples,rounds,probes,oracle_multiple");
    for (int i = 0; i < n_files && rc == CLI_OK; i++) rc = eval_file(files[i], &o, rows);
    if (rc == CLI_OK && o.json) {
        json_t *doc = json_pack("{s:s, s:I, s:I, s:o}", "format", "earlystop-eval", "shuffles", (json_int_t)o.shuffles,
                                "seed", (json_int_t)o.seed, "rows", json_incref(rows));
        json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        putchar('\n');
        json_decref(doc);
    }
    json_decref(rows);
    if (o.decisions) fclose(o.decisions);
    free(files);
    return rc;
}
