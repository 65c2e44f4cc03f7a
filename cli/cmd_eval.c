/*
 * cmd_eval.c - `earlystop eval FILE... --policy SPEC ...`: replay stopping
 * policies on recorded traces and report tokens against EM.
 *
 * Rows per file: `full` (the baseline every delta is paired against), each
 * policy, then the oracles.  Random orders are split across threads
 * (es_eval_policy_threads); each thread owns its policy object and integer
 * accumulators, so the output is byte for byte the same whatever the thread
 * count.  A row that cannot run on a file is reported and the rest go on.
 */
#include <errno.h>
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
    "Replay stopping policies on trace files and print one row per policy and\n"
    "file: the baseline `full` (every sample, majority vote) first, then each\n"
    "--policy, then the oracle rows.\n"
    "\n"
    "columns (--json / --csv names in brackets):\n"
    "  policy             canonical spec, every parameter spelled out [policy]\n"
    "  EM                 exact match, mean over items (and over orders) [em]\n"
    "  dEM pts [95% CI]   EM minus full's EM, in points, with a paired bootstrap\n"
    "                     95% interval over items [em_delta_pts, _lo_pts, _hi_pts]\n"
    "  tokens             mean tokens per item: generated + probe cost [tokens];\n"
    "                     a second line gives them without the probe cost\n"
    "                     [tokens_no_probe_cost] and the probes per item [probes]\n"
    "  reduct%            token reduction against full [token_reduction_pct]\n"
    "  samples, rounds    mean samples drawn and rounds (a window of ESC, a\n"
    "                     batch) per item [samples, rounds]\n"
    "  oracle x           tokens / the oracle's tokens: how far from the best\n"
    "                     stop (1.00) a rule is [oracle_multiple]; measured against\n"
    "                     oracle:stable-final for traces with probes, else\n"
    "                     oracle:consistency; '-' with --no-oracle\n"
    "oracle rows (they know the future; bounds, not rules):\n"
    "  oracle:consistency   the fewest first samples whose running majority equals\n"
    "                       the full majority from then on (stats: c-oracle)\n"
    "  oracle:correctness   the fewest first samples whose running majority is\n"
    "                       correct (uses the gold).  Its EM counts items whose\n"
    "                       majority is right at SOME point, so it lies between\n"
    "                       full's EM and stats' oracle@k, which counts items with\n"
    "                       ANY correct sample (the ceiling of any answer picker)\n"
    "  oracle:stable-final  each trace cut at the probe from which its answer stays\n"
    "                       its final one (files with probes)\n"
    "\n"
    "@POLICIES@"
    "(default policies: ac-beta and esc; a policy given twice, or `full`, which\n"
    "is always the first row, is listed once)\n"
    "\n"
    "options:\n"
    "  --policy SPEC       add a policy row (repeatable)\n"
    "  --shuffles R        average over R random sample orders (default 0: the\n"
    "                      file order once); the header says how many\n"
    "  --seed S            seed of the orders and the bootstrap (default 1)\n"
    "  --threads N         threads for --shuffles and for reading (default: one\n"
    "                      per core; capped at the cores).  Figures do not\n"
    "                      depend on it\n"
    "  --probe-cost N      charge N tokens per probe (default: each probe's cost field)\n"
    "  --bootstrap B       bootstrap resamples (default 1000)\n"
    "  --no-oracle         leave out the oracle rows\n"
    "  --json | --csv      machine-readable output\n"
    "  --decisions FILE    write each item's stop point and answer (JSON Lines, file\n"
    "                      order); FILE is replaced only when the run succeeds\n"
    "  --skip-bad          skip items that break the format; report how many and\n"
    "                      why (the first 5 reasons)\n"
    "  --max-line SIZE     longest line accepted, e.g. 512M (default 256M)\n"
    "  -h, --help          this text\n"
    "\n"
    "A policy that cannot run on a file (deer on traces without confidences, a\n"
    "probe rule on traces without probes) gets an error for that row; the other\n"
    "rows and files are still computed, and the exit status is then 2.\n"
    "exit status: 0 ok, 1 I/O failure, 2 bad usage or input, or a row not computed\n";

enum { MAX_POLICIES = 32, ROW_ORACLE = 1, HELP = -1 };

/* The usage text, with the rules listed from the library's catalogue so
 * that a new rule appears here by itself. */
static void print_usage(void)
{
    const char *mark = strstr(usage_text, "@POLICIES@");
    fwrite(usage_text, 1, (size_t)(mark - usage_text), stdout);
    cli_print_rules(stdout);
    fputs(mark + strlen("@POLICIES@"), stdout);
}

typedef struct eval_opts {
    const char *specs[MAX_POLICIES];  /* as given, duplicates removed */
    char canon[MAX_POLICIES][256];    /* their canonical specs */
    const char *label[MAX_POLICIES];  /* the row's name: the canonical spec, or the @file as given
                                         when stoppers from two files share that spec */
    int n_specs;
    uint32_t shuffles, bootstrap;
    uint64_t seed;
    int threads, json, csv, oracles;
    int32_t probe_cost;
    es_read_opts read;
    const char *decisions_path;
    es_outfile *decisions;
} eval_opts;

/* The exit status of a run that went on after an error: 1 when any I/O
 * failure happened, else 2 when some input or row was bad, else 0. */
static int worse(int a, int b)
{
    if (a == CLI_FAIL || b == CLI_FAIL) return CLI_FAIL;
    return a ? a : b;
}

static int parse_args(int argc, char **argv, eval_opts *o, const char **files, int *n_files)
{
    *o = (eval_opts){.bootstrap = 1000, .seed = 1, .oracles = 1, .probe_cost = ES_PROBE_COST_FIELD};
    es_read_opts_init(&o->read);
    o->read.flags = ES_READ_NO_TEXT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (cli_is_help(a)) {
            print_usage();
            return HELP;
        }
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--csv")) o->csv = 1;
        else if (!strcmp(a, "--no-oracle")) o->oracles = 0;
        else if (!strcmp(a, "--skip-bad")) o->read.flags |= ES_READ_SKIP_BAD;
        else if (a[0] == '-' && a[1] && !v) return cli_usage_error("eval", "option '%s' needs a value or is unknown", a);
        else if (!strcmp(a, "--policy")) {
            if (o->n_specs == MAX_POLICIES) return cli_usage_error("eval", "at most %d policies", MAX_POLICIES);
            o->specs[o->n_specs++] = argv[++i];
        } else if (!strcmp(a, "--shuffles")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n))
                return cli_usage_error("eval", "--shuffles: '%s' is not a whole number in 0..1000000", v);
            o->shuffles = (uint32_t)n;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_long(argv[++i], 0, LONG_MAX, &n))
                return cli_usage_error("eval", "--seed: '%s' is not a whole number in 0..%ld", v, LONG_MAX);
            o->seed = (uint64_t)n;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_threads("eval", argv[++i], &o->threads)) return CLI_USAGE;
        } else if (!strcmp(a, "--probe-cost")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n))
                return cli_usage_error("eval", "--probe-cost: '%s' is not a whole number of tokens in 0..1000000", v);
            o->probe_cost = (int32_t)n;
        } else if (!strcmp(a, "--bootstrap")) {
            if (cli_parse_long(argv[++i], 0, 1000000, &n))
                return cli_usage_error("eval", "--bootstrap: '%s' is not a whole number in 0..1000000", v);
            o->bootstrap = (uint32_t)n;
        } else if (!strcmp(a, "--max-line")) {
            if (cli_parse_size(argv[++i], 1, UINT64_MAX, &o->read.max_line))
                return cli_usage_error("eval", "--max-line: '%s' is not a size in bytes >= 1 (suffix K, M or G allowed)", v);
        } else if (!strcmp(a, "--decisions")) {
            o->decisions_path = argv[++i];
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
    o->read.threads = o->threads;
    return CLI_OK;
}

/* Two --policy @FILEs are one file however its path is spelt (s.json,
 * ./s.json): by device and inode. */
static int same_file(const char *a, const char *b)
{
    return !strcmp(a, b) || (a[0] == '@' && b[0] == '@' && cli_same_file(a + 1, b + 1));
}

/* Every --policy is checked before any file is read (a typo should not
 * wait for a large file to load), and errors name the policy, not a trace
 * file.  A policy whose canonical spec is full's or an earlier one's would
 * print the same row twice and write its decisions twice: listed once.  A
 * stopper file's spec does not name its weights: two files (or a file and
 * the built-in stopper) may share one, so those rows are named by the
 * @file as given, and a file is a duplicate only of itself. */
static int check_policies(eval_opts *o)
{
    char full[256];
    es_policy *p;
    es_error err = {0};
    if (es_policy_new("full", &p, &err)) return cli_report(&err, err.code);
    snprintf(full, sizeof full, "%s", es_policy_spec(p));
    es_policy_free(p);
    int kept = 0;
    for (int i = 0; i < o->n_specs; i++) {
        memset(&err, 0, sizeof err);
        int rc = es_policy_new_any(o->specs[i], &p, &err);
        if (rc) {
            char buf[1024];
            es_error_format(&err, buf, sizeof buf);
            fprintf(stderr, "earlystop eval: --policy '%s': %s\n", o->specs[i], buf);
            return rc == ES_ENOMEM || rc == ES_EIO ? CLI_FAIL : CLI_USAGE;
        }
        char canon[256];
        snprintf(canon, sizeof canon, "%s", es_policy_spec(p));
        int weights = o->specs[i][0] == '@' && es_policy_stopper(p) != NULL;
        es_policy_free(p);
        int dup = !strcmp(canon, full);
        for (int k = 0; k < kept && !dup; k++)
            dup = weights || o->label[k] ? same_file(o->specs[i], o->specs[k]) : !strcmp(canon, o->canon[k]);
        if (dup) {
            fprintf(stderr, "earlystop eval: --policy '%s' is %s, %s: listed once\n", o->specs[i], canon,
                    strcmp(canon, full) ? "given earlier" : "the baseline row every file gets");
            continue;
        }
        o->specs[kept] = o->specs[i];
        o->label[kept] = weights ? o->specs[i] : NULL;
        memcpy(o->canon[kept], canon, sizeof canon);
        kept++;
    }
    o->n_specs = kept;
    /* a stopper file keeps its spec as its name unless another row shares it */
    for (int i = 0; i < kept; i++) {
        int shared = 0;
        for (int k = 0; k < kept && !shared; k++) shared = k != i && !strcmp(o->canon[i], o->canon[k]);
        if (!shared) o->label[i] = NULL;
    }
    return CLI_OK;
}

/* The decisions file is opened before any work; it must not be an input. */
static int open_decisions(eval_opts *o, const char **files, int n_files)
{
    if (!o->decisions_path) return CLI_OK;
    const char **inputs = calloc((size_t)(n_files + o->n_specs + 1), sizeof *inputs);
    if (!inputs) return cli_report(NULL, ES_ENOMEM);
    int n = 0;
    for (int i = 0; i < n_files; i++) inputs[n++] = files[i];
    for (int i = 0; i < o->n_specs; i++)
        if (o->specs[i][0] == '@') inputs[n++] = o->specs[i] + 1;
    es_error err = {0};
    int rc = es_outfile_open(o->decisions_path, inputs, &o->decisions, &err);
    free(inputs);
    if (rc) {
        snprintf(err.field, sizeof err.field, "--decisions");
        return cli_report(&err, rc);
    }
    return CLI_OK;
}

static void print_header(const char *path, size_t n_items, const eval_opts *o)
{
    if (o->shuffles)
        printf("%s: %zu items, each figure the mean over %u random sample orders (--shuffles %u, seed %llu)\n",
               path, n_items, o->shuffles, o->shuffles, (unsigned long long)o->seed);
    else
        printf("%s: %zu items, samples in file order (--shuffles R averages over R random orders)\n", path,
               n_items);
    printf("%-56s %7s %22s %9s %9s %7s %7s %7s\n", "policy", "EM", "dEM pts [95% CI]", "tokens", "reduct%",
           "samples", "rounds", "oracle x");
}

/* A row that could not be computed: its name and why, in every format
 * (CSV leaves it out: the error is on stderr). */
static void print_failed_row(const char *name, const es_error *err, const eval_opts *o, const char *path,
                             json_t *rows)
{
    char buf[1024];
    es_error_format(err, buf, sizeof buf);
    if (o->json) {
        json_t *j = json_pack("{s:s, s:s, s:b, s:s}", "file", path, "policy", name, "oracle", 0, "error", buf);
        if (j) json_array_append_new(rows, j);
    } else if (!o->csv) {
        if (strlen(name) > 56) printf("%s\n", name);
        printf("%-56.56s not computed: %s\n", strlen(name) > 56 ? "" : name, err->msg);
    }
}

static void print_row(const char *name, int oracle, const es_row_figures *f, const eval_opts *o, const char *path,
                      json_t *rows)
{
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "file", json_string(path));
        json_object_set_new(j, "policy", json_string(name));
        json_object_set_new(j, "oracle", json_boolean(oracle));
        const struct { const char *k; double v; } nums[] = {
            {"em", f->em}, {"em_delta_pts", oracle ? NAN : 100 * f->d_em}, {"em_delta_lo_pts", oracle ? NAN : 100 * f->d_lo},
            {"em_delta_hi_pts", oracle ? NAN : 100 * f->d_hi}, {"tokens", f->tokens},
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
        cli_csv_field(stdout, path);
        putchar(',');
        cli_csv_field(stdout, name);
        printf(",%d,%.6f,%.4f,%.4f,%.4f,%.2f,%.2f,%.3f,%.4f,%.4f,%.4f,%.4f\n", oracle, f->em,
               100 * f->d_em, isnan(f->d_lo) ? 0.0 : 100 * f->d_lo, isnan(f->d_hi) ? 0.0 : 100 * f->d_hi, f->tokens, f->gen_tokens, f->reduction, f->samples, f->rounds,
               f->probes, f->oracle_x);
        return;
    }
    char ci[64];
    snprintf(ci, sizeof ci, "%+.1f [%+.1f, %+.1f]", 100 * f->d_em, 100 * f->d_lo, 100 * f->d_hi);
    char tok[32];
    snprintf(tok, sizeof tok, "%.1f", f->tokens);
    char ox[16] = "-"; /* no oracle row to measure against (--no-oracle) */
    if (isfinite(f->oracle_x)) snprintf(ox, sizeof ox, "%.2f", f->oracle_x);
    /* long combined specs keep their full name on a line of their own */
    if (strlen(name) > 56) printf("%s\n", name);
    printf("%-56.56s %7.3f %22s %9s %9.1f %7.3f %7.2f %8s\n", strlen(name) > 56 ? "" : name, f->em,
           oracle ? "" : ci, tok, f->reduction, f->samples, f->rounds, ox);
    if (f->tokens != f->gen_tokens)
        printf("%-56s %7s %22s %9.1f %9s (without probe cost; %.1f probes/item)\n", "", "", "", f->gen_tokens, "",
               f->probes);
}

/* Decisions of each policy on each item, file order, under the row's name
 * (a stopper file's, where two share a spec).  A failed write stops the run
 * (the message names the file when the output is committed). */
static int write_decisions(const es_traceset *ts, const es_policy *proto, const char *name, const eval_opts *o,
                           const char *path)
{
    es_policy *p;
    es_session *ses = NULL;
    es_error err = {0};
    int rc = es_policy_clone(proto, &p, &err);
    if (rc) return cli_report(&err, rc);
    if (es_session_new(p, &ses)) {
        es_policy_free(p);
        return cli_report(NULL, ES_ENOMEM);
    }
    FILE *fp = es_outfile_fp(o->decisions);
    es_item_view v;
    es_outcome out;
    size_t i = 0;
    for (; i < es_traceset_n_items(ts) && rc == ES_OK; i++) {
        es_traceset_item(ts, i, &v);
        rc = es_replay_item(ses, &v, NULL, o->probe_cost, &out);
        if (rc) break;
        const char *ans = out.answer >= 0 && (uint32_t)out.answer < v.n_answers ? v.answer_raw[out.answer] : NULL;
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:b}", "file", path, "policy",
                              name, "id", v.id, "samples", (json_int_t)out.samples, "rounds",
                              (json_int_t)out.rounds, "tokens", (json_int_t)out.tokens, "probe_tokens",
                              (json_int_t)out.probe_tokens, "answer", ans ? json_string(ans) : json_null(),
                              "correct", out.correct);
        if (!j) rc = ES_ENOMEM;
        else if (json_dumpf(j, fp, JSON_COMPACT | JSON_PRESERVE_ORDER) || fputc('\n', fp) == EOF) rc = ES_EIO;
        json_decref(j);
    }
    if (rc == ES_EIO) {
        es_error_set(&err, rc, es_outfile_name(o->decisions), 0, "--decisions", "write failed: %s",
                     strerror(errno ? errno : EIO));
    } else if (rc == ES_ENOMEM) {
        es_error_set(&err, rc, "", 0, "", "out of memory");
    } else if (rc) {
        es_item_view bad;
        es_traceset_item(ts, i, &bad);
        es_error_set(&err, rc, path, 0, "", "--decisions: item %s: %s: %s", bad.id, es_policy_spec(p),
                     es_policy_errmsg(p)[0] ? es_policy_errmsg(p) : es_strerror(rc));
    }
    es_session_free(ses);
    es_policy_free(p);
    return rc ? cli_report(&err, rc) : CLI_OK;
}

/* A row that failed: its error on stderr, naming the file. */
static int report_row_error(const es_error *why, const char *path)
{
    es_error e = *why;
    if (!e.file[0]) snprintf(e.file, sizeof e.file, "%s", path);
    return cli_report(&e, e.code ? e.code : ES_EINVAL);
}

/* Replays every row of one file into r (the library's es_report: the CLI
 * only prints it).  A policy the file cannot feed keeps its row, marked
 * failed, and the others go on; the status says so. */
static int replay_rows(es_report *r, const es_traceset *ts, const eval_opts *o, const char *path, int *fatal)
{
    int status = CLI_OK;
    *fatal = 0;
    if (o->decisions) {
        /* the baseline's decisions first, as every row's (es_report_new
         * replayed it without a decisions file) */
        es_policy *full;
        es_error err = {0};
        int rc = es_policy_new("full", &full, &err);
        rc = rc ? cli_report(&err, rc) : write_decisions(ts, full, es_policy_spec(full), o, path);
        es_policy_free(full);
        if (rc) {
            *fatal = 1;
            return rc;
        }
    }
    for (int i = 0; i < o->n_specs; i++) {
        cli_progress("eval: replaying", (size_t)i + 1, (size_t)o->n_specs + 1);
        es_policy *p;
        es_error err = {0};
        int rc = es_policy_new_any(o->specs[i], &p, &err);
        if (rc) return cli_report(&err, rc);
        const es_error *why;
        const char *name = o->label[i] ? o->label[i] : es_policy_spec(p);
        if (es_report_add_policy_as(r, p, name, NULL) == ES_ENOMEM)
            rc = CLI_FAIL;
        else if (es_report_row_failed(r, es_report_n_rows(r) - 1, &why))
            status = worse(status, report_row_error(why, path));
        else if (o->decisions)
            rc = write_decisions(ts, p, name, o, path);
        es_policy_free(p);
        if (rc) {
            /* an I/O error or a decision the file cannot give: no table */
            cli_progress_end();
            *fatal = 1;
            return rc;
        }
    }
    cli_progress_end();
    if (o->oracles && es_report_add_oracles(r)) {
        fprintf(stderr, "earlystop eval: %s: oracles: out of memory\n", path);
        *fatal = 1;
        return CLI_FAIL;
    }
    return status;
}

static int print_rows(es_report *r, size_t n_items, const eval_opts *o, const char *path, json_t *rows)
{
    if (!o->json && !o->csv) print_header(path, n_items, o);
    for (int i = 0; i < es_report_n_rows(r); i++) {
        const es_error *why;
        const char *name = es_report_row_name(r, i);
        if (es_report_row_failed(r, i, &why)) {
            print_failed_row(name, why, o, path, rows);
            continue;
        }
        es_row_figures f;
        if (es_report_figures(r, i, &f)) {
            fprintf(stderr, "earlystop eval: %s: bootstrap: out of memory\n", path);
            return CLI_FAIL;
        }
        print_row(name, es_report_row_kind(r, i) == ES_ROW_ORACLE, &f, o, path, rows);
    }
    if (!o->json && !o->csv) putchar('\n');
    return CLI_OK;
}

/* Rows of one file: the baseline, the policies, the oracles. */
static int eval_file(const char *path, const eval_opts *o, json_t *rows)
{
    es_traceset *ts;
    es_error err = {0};
    es_read_report rep;
    int rc = es_traceset_load_opts(path, &o->read, &ts, &rep, &err);
    if (rc) return cli_report(&err, rc);
    cli_report_skips("eval", path, &rep);
    es_report_opts ro;
    es_report_opts_init(&ro);
    ro.shuffles = o->shuffles;
    ro.seed = o->seed;
    ro.threads = o->threads;
    ro.probe_cost = o->probe_cost;
    ro.bootstrap = o->bootstrap;
    es_report *r = NULL;
    cli_progress("eval: replaying", 0, (size_t)o->n_specs + 1);
    rc = es_report_new(ts, &ro, &r, &err);
    if (rc) {
        /* no baseline, no table */
        cli_progress_end();
        rc = report_row_error(&err, path);
    } else {
        int fatal;
        rc = replay_rows(r, ts, o, path, &fatal);
        if (!fatal) rc = worse(rc, print_rows(r, es_traceset_n_items(ts), o, path, rows));
    }
    es_report_free(r);
    es_traceset_free(ts);
    return rc;
}

/* Every file is evaluated even when an earlier one failed; the status is
 * the worst met.  The decisions file replaces its old content only when
 * everything succeeded. */
int cmd_eval(int argc, char **argv)
{
    const char **files = calloc((size_t)argc, sizeof *files);
    int n_files = 0;
    eval_opts o;
    if (!files) return cli_report(NULL, ES_ENOMEM);
    int rc = parse_args(argc, argv, &o, files, &n_files);
    if (rc == CLI_OK) rc = check_policies(&o);
    if (rc == CLI_OK) rc = open_decisions(&o, files, n_files);
    if (rc) {
        free(files);
        return rc == HELP ? CLI_OK : rc;
    }
    json_t *rows = json_array();
    if (!rows) rc = cli_report(NULL, ES_ENOMEM);
    if (o.csv && rc == CLI_OK)
        puts("file,policy,oracle,em,em_delta_pts,em_delta_lo_pts,em_delta_hi_pts,tokens,tokens_no_probe_cost,"
             "token_reduction_pct,samples,rounds,probes,oracle_multiple");
    for (int i = 0; i < n_files && rc != CLI_FAIL; i++) rc = worse(rc, eval_file(files[i], &o, rows));
    if (rc != CLI_FAIL && o.json) {
        json_t *doc = json_pack("{s:s, s:I, s:I, s:o}", "format", "earlystop-eval", "shuffles", (json_int_t)o.shuffles,
                                "seed", (json_int_t)o.seed, "rows", json_incref(rows));
        if (!doc || json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))) {
            fprintf(stderr, "earlystop eval: %s\n", doc ? "standard output: write failed" : "out of memory");
            rc = worse(rc, CLI_FAIL);
        }
        putchar('\n');
        json_decref(doc);
    }
    json_decref(rows);
    if (o.decisions) {
        es_error err = {0};
        if (rc == CLI_OK) {
            int crc = es_outfile_commit(o.decisions, &err);
            if (crc) rc = cli_report(&err, crc);
        } else {
            fprintf(stderr, "earlystop eval: --decisions %s not written (the run failed; the file keeps what it held)\n",
                    es_outfile_name(o.decisions));
            es_outfile_abort(o.decisions);
        }
    }
    free(files);
    return rc;
}
