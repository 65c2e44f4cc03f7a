/*
 * cmd_learn.c - `earlystop learn FILE...`: train a learned stopper on
 * recorded traces (libearlystop-learn) and write it as a stopper file, or
 * measure it leave-one-file-out beside the tuned threshold rules and the
 * published rules at their defaults.  Parses and prints; the library does
 * the work.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_learn.h"
#include "tune_cli.h"

static const char usage_text[] =
    "usage: earlystop learn FILE... [--level across|within|both] [--learner fqi|reinforce|logistic]\n"
    "                       [--reward agree|gold] [--max-em-drop PTS --delta D] --out stopper.json\n"
    "       earlystop learn FILE... --leave-one-file-out [options]\n"
    "       earlystop learn --join ACROSS.json WITHIN.json --out both.json\n"
    "       earlystop learn --emit-c stopper.json      (the C source of a built-in stopper)\n"
    "\n"
    "Train a learned stopper (the rule `learned`, docs/learning.md) on recorded\n"
    "traces: features of the vote, the samples' tokens and confidences and the\n"
    "probes, a small model per level, its operating points chosen by\n"
    "Learn-then-Test.  Each file's items are split (seeded): half train the model\n"
    "and order the candidates, the other half test them, so the EM budget holds\n"
    "with probability 1 - delta on items like those.  The stopper file loads with\n"
    "`eval --policy @stopper.json`, `run --policy @stopper.json` and the C API\n"
    "(es_stopper_load); its spec `learned:max_em_drop=B` picks the thresholds\n"
    "calibrated for budget B.\n"
    "\n"
    "options:\n"
    "  --level L            across (after each sample; default), within (at each\n"
    "                       probe) or both\n"
    "  --learner NAME       fqi: optimal stopping by fitted-Q iteration (default);\n"
    "                       reinforce: policy gradient with a learned baseline;\n"
    "                       logistic: P(stopping now is rewarded), no lambda\n"
    "  --reward R           agree: the answer equals the full run's (no labels;\n"
    "                       default); gold: the answer is correct\n"
    "  --lambda L[,L...]    cost per token as a share of the file's mean full run\n"
    "                       (default 0.01,0.03,0.1,0.3; Learn-then-Test picks one)\n"
    "  --max-em-drop PTS    the EM budget (points) that picks lambda (default 0.1)\n"
    "  --budgets B[,B...]   the budgets calibrated into the file (default\n"
    "                       0.1,0.25,0.5,1,2; with --leave-one-file-out 0.1,0.5)\n"
    "  --delta D            Learn-then-Test level (default 0.1)\n"
    "  --loss L             wrong (default), net or disagree: what an item loses\n"
    "                       against the full run (as `tune`)\n"
    "  --per-file           hold the budget on every training file, not only\n"
    "                       pooled over them: a point is certified only where each\n"
    "                       file's p-value passes (the largest is the test's), and\n"
    "                       an uncertified fallback keeps each file's training loss\n"
    "                       within the budget (a workload's gains do not pay for\n"
    "                       another's losses)\n"
    "  --features LIST      across features, comma-separated (default: a scale-free\n"
    "                       set; the catalogue is below).  Given again (at most 4\n"
    "                       sets, --level across): a model per set, and each budget\n"
    "                       takes the set and lambda Learn-then-Test finds cheapest\n"
    "                       there\n"
    "  --within-features LIST   within features\n"
    "  --require LIST       features that must be present for their head to stop\n"
    "                       (e.g. p_conf: a head trained on probes with confidences\n"
    "                       never stops on probes without); a text cue (p_conclude,\n"
    "                       p_check, p_end) needs training probes with cues\n"
    "  --across-from FILE   with --level within: calibrate the probe thresholds\n"
    "                       beside FILE's across head at its threshold for each\n"
    "                       budget and its min; the stopper written has both heads\n"
    "  --join A B           no training: a stopper of A's across head and B's within\n"
    "                       head with their thresholds (same budgets), A's min and\n"
    "                       its probe spacing; written to --out\n"
    "  --hidden H           one tanh layer of H units (<= 64; default 0: linear)\n"
    "  --min N              never stop before N samples (default 2)\n"
    "  --every M            read every M-th probe (default 1)\n"
    "  --orders R           random sample orders per training item (default 4)\n"
    "  --iterations N       FQI sweeps (30) or REINFORCE updates (400)\n"
    "  --shuffles R         orders per item when calibrating and evaluating (10)\n"
    "  --probe-cost N       charge N tokens per probe (default: each probe's cost)\n"
    "  --seed S             seed of the split, the orders and the learners (1)\n"
    "  --threads N          threads (default: one per core); results do not depend\n"
    "  --leave-one-file-out fit on all files but one, evaluate on it, for each file;\n"
    "                       print per file and pooled: EM change, tokens and oracle\n"
    "                       multiple of the learned stopper, the tuned threshold\n"
    "                       rules (`tune`, every family) and the two anchors\n"
    "  --anchors A,B        the anchors' specs (default ac-beta,esc; within:\n"
    "                       dynasor,deer)\n"
    "  --out FILE           the stopper file (written only when the run succeeds)\n"
    "  --json               machine-readable output\n"
    "  -h, --help           this text\n"
    "\n"
    "features (name, level, what):\n"
    "@FEATURES@"
    "\n"
    "exit status: 0 ok, 1 I/O failure, 2 bad usage or input\n";

static void print_usage(void)
{
    const char *mark = strstr(usage_text, "@FEATURES@");
    fwrite(usage_text, 1, (size_t)(mark - usage_text), stdout);
    for (uint32_t i = 0; i < es_feature_count(); i++) {
        es_feature_info fi;
        es_feature_get_info(i, &fi);
        printf("  %-20s %-6s %s\n", fi.name, fi.level == ES_AT_WITHIN ? "within" : "across", fi.doc);
    }
    fputs(mark + strlen("@FEATURES@"), stdout);
}

enum { HELP = -1, MAX_FILES = 256 };

typedef struct learn_args {
    es_learn_opts o;
    const char *files[MAX_FILES];
    int n_files;
    const char *out, *emit_c, *anchors, *join[2], *across_from;
    const char *fit_opt;        /* the first option of a fit given (--join refuses them) */
    int lofo, json, budgets_given, min_given;
    double primary;
    char anchor_buf[2][128];
    char features_buf[4096];
} learn_args;

/* "a,b,c" of numbers in [lo, hi] into x (at most cap). */
static int parse_list(const char *s, double lo, double hi, double *x, size_t cap, size_t *n)
{
    *n = 0;
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, ",");
        char buf[64];
        if (!len || len >= sizeof buf || *n == cap) return -1;
        memcpy(buf, p, len);
        buf[len] = '\0';
        double v;
        if (cli_parse_double(buf, &v) || !(v >= lo && v <= hi)) return -1;
        x[(*n)++] = v;
        p += len + (p[len] == ',');
    }
    return *n ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse_args(int argc, char **argv, learn_args *a)
{
    memset(a, 0, sizeof *a);
    es_learn_opts_init(&a->o);
    a->primary = 0.1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        size_t cnt;
        if (cli_is_help(s)) {
            print_usage();
            return HELP;
        }
        if (s[0] == '-' && s[1] && !a->fit_opt && strcmp(s, "--join") && strcmp(s, "--out") && strcmp(s, "--json") &&
            strcmp(s, "--emit-c"))
            a->fit_opt = s;
        if (!strcmp(s, "--leave-one-file-out")) a->lofo = 1;
        else if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "--per-file")) a->o.tune.per_file = 1;
        else if (s[0] == '-' && s[1] && !v) return cli_usage_error("learn", "option '%s' needs a value or is unknown", s);
        else if (!strcmp(s, "--level")) {
            v = argv[++i];
            if (!strcmp(v, "across")) a->o.level = ES_AT_ACROSS;
            else if (!strcmp(v, "within")) a->o.level = ES_AT_WITHIN;
            else if (!strcmp(v, "both")) a->o.level = ES_AT_WITHIN | ES_AT_ACROSS;
            else return cli_usage_error("learn", "--level: '%s' is not across, within or both", v);
        } else if (!strcmp(s, "--learner")) {
            if (es_learner_parse(argv[++i], &a->o.learner))
                return cli_usage_error("learn", "--learner: '%s' is not fqi, reinforce or logistic", v);
        } else if (!strcmp(s, "--reward")) {
            v = argv[++i];
            if (!strcmp(v, "agree")) a->o.reward = ES_REWARD_AGREE;
            else if (!strcmp(v, "gold")) a->o.reward = ES_REWARD_GOLD;
            else return cli_usage_error("learn", "--reward: '%s' is not agree or gold", v);
        } else if (!strcmp(s, "--loss")) {
            v = argv[++i];
            if (!strcmp(v, "wrong")) a->o.tune.loss = ES_LOSS_WRONG;
            else if (!strcmp(v, "net")) a->o.tune.loss = ES_LOSS_NET;
            else if (!strcmp(v, "disagree")) a->o.tune.loss = ES_LOSS_DISAGREE;
            else return cli_usage_error("learn", "--loss: '%s' is not wrong, net or disagree", v);
        } else if (!strcmp(s, "--lambda")) {
            if (parse_list(argv[++i], 0, 1e3, a->o.lambdas, ES_LEARN_MAX_LAMBDAS, &a->o.n_lambdas))
                return cli_usage_error("learn", "--lambda: '%s' is not a list of at most %d numbers in [0, 1000]", v,
                                       ES_LEARN_MAX_LAMBDAS);
        } else if (!strcmp(s, "--max-em-drop")) {
            if (cli_parse_double(argv[++i], &a->primary) || !(a->primary > 0 && a->primary < 100))
                return cli_usage_error("learn", "--max-em-drop: '%s' is not a number of points in (0, 100)", v);
        } else if (!strcmp(s, "--budgets")) {
            if (parse_list(argv[++i], 1e-9, 99.999, a->o.budgets, ES_LEARN_MAX_BUDGETS - 1, &cnt))
                return cli_usage_error("learn", "--budgets: '%s' is not a list of at most %d points in (0, 100)", v,
                                       ES_LEARN_MAX_BUDGETS - 1);
            a->o.n_budgets = cnt;
            a->budgets_given = 1;
        } else if (!strcmp(s, "--delta")) {
            if (cli_parse_double(argv[++i], &a->o.tune.delta) || !(a->o.tune.delta > 0 && a->o.tune.delta < 1))
                return cli_usage_error("learn", "--delta: '%s' is not a number in (0, 1)", v);
        } else if (!strcmp(s, "--features")) {
            /* given again: another set; each budget takes the model that serves it best */
            size_t used = strlen(a->features_buf);
            if (used + strlen(v) + 2 > sizeof a->features_buf)
                return cli_usage_error("learn", "--features: the lists are too long");
            snprintf(a->features_buf + used, sizeof a->features_buf - used, "%s%s", used ? ";" : "", argv[++i]);
            a->o.across_features = a->features_buf;
        }
        else if (!strcmp(s, "--within-features")) a->o.within_features = argv[++i];
        else if (!strcmp(s, "--require")) a->o.required = argv[++i];
        else if (!strcmp(s, "--across-from")) a->across_from = argv[++i];
        else if (!strcmp(s, "--join")) {
            if (i + 2 >= argc) return cli_usage_error("learn", "--join takes two stopper files: ACROSS.json WITHIN.json");
            a->join[0] = argv[++i];
            a->join[1] = argv[++i];
        }
        else if (!strcmp(s, "--anchors")) a->anchors = argv[++i];
        else if (!strcmp(s, "--out")) a->out = argv[++i];
        else if (!strcmp(s, "--emit-c")) a->emit_c = argv[++i];
        else if (!strcmp(s, "--threads")) {
            if (cli_parse_threads("learn", argv[++i], &a->o.threads)) return CLI_USAGE;
        } else {
            struct {
                const char *name;
                long lo, hi;
            } nums[] = {{"--hidden", 0, ES_STOPPER_MAX_HIDDEN}, {"--min", 1, 1000000}, {"--every", 1, 1000000},
                        {"--orders", 1, 1000},  {"--iterations", 1, 1000000}, {"--shuffles", 0, 100000},
                        {"--probe-cost", 0, 1000000}, {"--seed", 0, LONG_MAX}};
            size_t k = 0;
            while (k < sizeof nums / sizeof nums[0] && strcmp(s, nums[k].name)) k++;
            if (k < sizeof nums / sizeof nums[0]) {
                if (cli_parse_long(argv[++i], nums[k].lo, nums[k].hi, &n))
                    return cli_usage_error("learn", "%s: '%s' is not a whole number in %ld..%ld", s, v, nums[k].lo,
                                           nums[k].hi);
                switch (k) {
                case 0: a->o.hidden = (uint32_t)n; break;
                case 1: a->o.min_samples = (uint32_t)n; a->min_given = 1; break;
                case 2: a->o.every = (uint32_t)n; break;
                case 3: a->o.orders = (uint32_t)n; break;
                case 4: a->o.iterations = (uint32_t)n; break;
                case 5: a->o.tune.shuffles = (uint32_t)n; break;
                case 6: a->o.tune.probe_cost = (int32_t)n; break;
                case 7: a->o.seed = (uint64_t)n; break;
                }
            } else if (s[0] == '-' && s[1]) {
                return cli_usage_error("learn", "unknown option '%s' (see earlystop learn --help)", s);
            } else {
                if (a->n_files == MAX_FILES) return cli_usage_error("learn", "at most %d files", MAX_FILES);
                a->files[a->n_files++] = s;
            }
        }
    }
    if (a->emit_c) {
        /* it only turns a stopper file into C: anything else given would be ignored */
        if (a->n_files || a->out || a->lofo || a->json || a->fit_opt || a->join[0])
            return cli_usage_error("learn", "--emit-c FILE takes nothing else (%s given): it prints the C source of "
                                   "a stopper file", a->n_files ? "trace files" : a->out ? "--out" : a->lofo ?
                                   "--leave-one-file-out" : a->json ? "--json" : a->fit_opt ? a->fit_opt : "--join");
        return CLI_OK;
    }
    if (a->join[0]) {
        /* joining trains nothing: options of a fit would be ignored */
        if (a->n_files) return cli_usage_error("learn", "--join takes no trace files");
        if (a->fit_opt)
            return cli_usage_error("learn", "--join takes no options of a fit (%s given): it only puts two trained "
                                   "heads together", a->fit_opt);
        if (!a->out) return cli_usage_error("learn", "--join needs --out FILE");
        return CLI_OK;
    }
    if (a->n_files == 0) return cli_usage_error("learn", "no trace files (see earlystop learn --help)");
    if (!a->lofo && !a->out) return cli_usage_error("learn", "--out FILE is required (or --leave-one-file-out)");
    if (a->lofo && a->n_files < 2) return cli_usage_error("learn", "--leave-one-file-out needs at least two files");
    if (a->lofo && !a->budgets_given) {
        a->o.budgets[0] = 0.1;
        a->o.budgets[1] = 0.5;
        a->o.n_budgets = 2;
    }
    /* the budget that picks lambda comes first among the calibrated ones */
    size_t k = 0;
    while (k < a->o.n_budgets && a->o.budgets[k] != a->primary) k++;
    if (k == a->o.n_budgets) a->o.budgets[a->o.n_budgets++] = a->primary;
    qsort(a->o.budgets, a->o.n_budgets, sizeof a->o.budgets[0], cmp_double);
    for (size_t j = 1; j < a->o.n_budgets; j++)
        if (a->o.budgets[j] == a->o.budgets[j - 1]) return cli_usage_error("learn", "--budgets: a budget is given twice");
    for (k = 0; a->o.budgets[k] != a->primary; k++) {}
    a->o.primary = k;
    return CLI_OK;
}

static void progress(void *ctx, const char *what, size_t done, size_t total)
{
    (void)ctx;
    char label[160];
    snprintf(label, sizeof label, "learn: %-40.40s", what);
    cli_progress(label, done, total);
}

/* ---------------------------------------------------------- emit-c */

static void emit_array(FILE *fp, const char *name, const double *x, size_t n)
{
    fprintf(fp, "static const double %s[%zu] = {", name, n ? n : 1);
    for (size_t i = 0; i < n; i++) fprintf(fp, "%s%.17g", i ? ", " : "", x[i]);
    fprintf(fp, "%s};\n", n ? "" : "0");
}

static void emit_head(FILE *fp, const char *lv, const es_stopper_head *h)
{
    if (!h->n_in) return;
    fprintf(fp, "static const uint32_t %s_feature[%u] = {", lv, h->n_in);
    for (uint32_t i = 0; i < h->n_in; i++) fprintf(fp, "%s%u", i ? ", " : "", h->feature[i]);
    fprintf(fp, "};\n");
    char nm[64];
    snprintf(nm, sizeof nm, "%s_mean", lv);
    emit_array(fp, nm, h->mean, h->n_in);
    snprintf(nm, sizeof nm, "%s_scale", lv);
    emit_array(fp, nm, h->scale, h->n_in);
    for (uint32_t k = 0; k < h->n_nets; k++) {
        const es_stopper_net *n = &h->net[k];
        if (n->hidden) {
            snprintf(nm, sizeof nm, "%s_w1_%u", lv, k);
            emit_array(fp, nm, n->w1, (size_t)n->hidden * h->n_in);
            snprintf(nm, sizeof nm, "%s_b1_%u", lv, k);
            emit_array(fp, nm, n->b1, n->hidden);
        }
        snprintf(nm, sizeof nm, "%s_w2_%u", lv, k);
        emit_array(fp, nm, n->w2, n->hidden ? n->hidden : h->n_in);
    }
}

/* A head's initializer; `field` names the member (".across = ") or is "". */
static void emit_head_init(FILE *fp, const char *field, const char *lv, const es_stopper_head *h)
{
    if (!h->n_in) {
        fprintf(fp, "        %s{0},\n", field);
        return;
    }
    fprintf(fp, "        %s{%u, %s_feature, %s_mean, %s_scale, %.17g, %u, {\n", field, h->n_in, lv, lv, lv, h->clip,
            h->n_nets);
    for (uint32_t k = 0; k < h->n_nets; k++) {
        const es_stopper_net *n = &h->net[k];
        if (n->hidden)
            fprintf(fp, "            {%u, %s_w1_%u, %s_b1_%u, %s_w2_%u, %.17g, %d, %.17g},\n", n->hidden, lv, k, lv, k, lv,
                    k, n->b2, n->sigmoid, n->weight);
        else
            fprintf(fp, "            {0, NULL, NULL, %s_w2_%u, %.17g, %d, %.17g},\n", lv, k, n->b2, n->sigmoid, n->weight);
    }
    fprintf(fp, "        }, 0x%llxULL, %u},\n", (unsigned long long)h->required, h->every);
}

/* The C source of src/core/rules/learned_builtin.c: the stopper as static
 * constants, numbers to 17 digits (tests/test_stopper_json.c checks it equals the
 * file to the bit). */
static int emit_c(const char *path)
{
    es_stopper *m;
    es_error err = {0};
    char spec[256];
    int rc = es_stopper_load(path, &m, spec, sizeof spec, &err);
    if (rc) return cli_report(&err, rc);
    es_stopper_desc d;
    es_stopper_get(m, &d);
    FILE *fp = stdout;
    fprintf(fp, "/*\n * learned_builtin.c - the stopper `learned` uses when none is given:\n"
                " * data/stopper.json as C constants (docs/learning.md says how it was\n"
                " * trained).  Generated by `earlystop learn --emit-c data/stopper.json`;\n"
                " * do not edit: tests/test_stopper_json.c checks it equals the file to the bit.\n */\n"
                "#include <math.h>\n#include <stddef.h>\n\n#include \"stopper.h\"\n\n");
    emit_head(fp, "within", &d.within);
    emit_head(fp, "across", &d.across);
    char lv[32];
    for (uint32_t k = 0; k < d.n_across_alt; k++) {
        snprintf(lv, sizeof lv, "across_alt%u", k);
        emit_head(fp, lv, &d.across_alt[k]);
    }
    if (d.n_across_alt) {
        fprintf(fp, "static const es_stopper_head across_alt[%u] = {\n", d.n_across_alt);
        for (uint32_t k = 0; k < d.n_across_alt; k++) {
            snprintf(lv, sizeof lv, "across_alt%u", k);
            emit_head_init(fp, "", lv, &d.across_alt[k]);
        }
        fprintf(fp, "};\n");
    }
    if (d.across_pick) {
        fprintf(fp, "static const uint32_t across_pick[%u] = {", d.n_points);
        for (uint32_t i = 0; i < d.n_points; i++) fprintf(fp, "%s%u", i ? ", " : "", d.across_pick[i]);
        fprintf(fp, "};\n");
    }
    emit_array(fp, "points_budget", d.max_em_drop, d.n_points);
    const double *thr[2] = {d.threshold, d.probe_threshold};
    const char *tn[2] = {"points_threshold", "points_probe_threshold"};
    for (int k = 0; k < 2; k++) {
        fprintf(fp, "static const double %s[%u] = {", tn[k], d.n_points);
        for (uint32_t i = 0; i < d.n_points; i++) {
            if (isnan(thr[k][i])) fprintf(fp, "%sNAN", i ? ", " : "");
            else fprintf(fp, "%s%.17g", i ? ", " : "", thr[k][i]);
        }
        fprintf(fp, "};\n");
    }
    fprintf(fp, "\nstatic const es_stopper shipped = {\n    .builtin = 1,\n    .d = {\n");
    emit_head_init(fp, ".within = ", "within", &d.within);
    emit_head_init(fp, ".across = ", "across", &d.across);
    fprintf(fp, "        .n_points = %u,\n        .max_em_drop = points_budget,\n"
                "        .threshold = points_threshold,\n        .probe_threshold = points_probe_threshold,\n",
            d.n_points);
    if (d.n_across_alt)
        fprintf(fp, "        .n_across_alt = %u,\n        .across_alt = across_alt,\n", d.n_across_alt);
    if (d.across_pick) fprintf(fp, "        .across_pick = across_pick,\n");
    fprintf(fp, "    },\n};\n\nconst es_stopper *es_stopper_builtin(void) { return &shipped; }\n");
    es_stopper_free(m);
    (void)spec;
    return CLI_OK;
}

/* ------------------------------------------------------------ output */

static void pts(FILE *fp, double x) { isnan(x) ? fprintf(fp, "%8s", "-") : fprintf(fp, "%+8.2f", 100 * x); }
static void mult(FILE *fp, double x) { isnan(x) ? fprintf(fp, "%7s", "-") : fprintf(fp, "%6.2fx", x); }

static const char *const method_names[ES_LOFO_METHODS] = {"learned", "tuned", "anchor1", "anchor2"};

static int cmp_plain(const void *a, const void *b) { return cmp_double(a, b); }

/* Pooled: EM change weighted by items; the median and geometric mean of
 * the per-file oracle multiples. */
static void pooled(const es_lofo_row *rows, int n, int m, size_t b, double *d_em, double *med, double *geo)
{
    double sw = 0, se = 0, lg = 0, x[MAX_FILES];
    int k = 0;
    for (int f = 0; f < n; f++) {
        const es_lofo_cell *c = &rows[f].cell[m][b];
        if (isnan(c->d_em)) continue;
        sw += (double)rows[f].items;
        se += (double)rows[f].items * c->d_em;
        if (c->oracle_x > 0) {
            x[k++] = c->oracle_x;
            lg += log(c->oracle_x);
        }
    }
    qsort(x, (size_t)k, sizeof x[0], cmp_plain);
    *d_em = sw > 0 ? se / sw : NAN;
    *med = k ? (k % 2 ? x[k / 2] : 0.5 * (x[k / 2 - 1] + x[k / 2])) : NAN;
    *geo = k ? exp(lg / k) : NAN;
}

static void print_lofo(const learn_args *a, const es_lofo_row *rows, const char *const anchors[2])
{
    const es_learn_opts *o = &a->o;
    printf("leave one file out: %s, %s, reward %s, loss %s%s, delta %g, %d files\n",
           o->level == ES_AT_ACROSS ? "across" : o->level == ES_AT_WITHIN ? "within" : "both",
           es_learner_name(o->learner), o->reward == ES_REWARD_GOLD ? "gold" : "agree",
           tune_loss_name(o->tune.loss), o->tune.per_file ? " per file" : "", o->tune.delta,
           a->n_files);
    printf("anchors: %s, %s (defaults); tuned: `tune` with every family, same split and budget\n", anchors[0],
           anchors[1]);
    for (size_t b = 0; b < o->n_budgets; b++) {
        printf("\nbudget %.2f pt: dEM (pts) and tokens / oracle's (tokens per item: full, the consistency oracle)\n",
               o->budgets[b]);
        printf("%-44s %6s %8s %8s %16s %16s %16s %16s\n", "file", "items", "full", "oracle", "learned", "tuned",
               anchors[0], anchors[1]);
        for (int f = 0; f < a->n_files; f++) {
            const es_lofo_row *r = &rows[f];
            printf("%-44.44s %6zu %8.0f %8.0f", r->file, r->items, r->full_tokens, r->oracle_tokens);
            for (int m = 0; m < ES_LOFO_METHODS; m++) {
                printf(" ");
                pts(stdout, r->cell[m][b].d_em);
                mult(stdout, r->cell[m][b].oracle_x);
                printf("%s", m >= 2 || r->cell[m][b].certified == 1 ? " " : r->cell[m][b].certified ? "~" : "*");
            }
            printf("\n");
        }
        double d[ES_LOFO_METHODS], med[ES_LOFO_METHODS], geo[ES_LOFO_METHODS];
        for (int m = 0; m < ES_LOFO_METHODS; m++) pooled(rows, a->n_files, m, b, &d[m], &med[m], &geo[m]);
        printf("%-62s", "pooled dEM / median x");
        for (int m = 0; m < ES_LOFO_METHODS; m++) {
            printf(" ");
            pts(stdout, d[m]);
            mult(stdout, med[m]);
            printf(" ");
        }
        printf("\n%-62s", "geometric mean x");
        for (int m = 0; m < ES_LOFO_METHODS; m++) {
            printf(" %8s", "");
            mult(stdout, geo[m]);
            printf(" ");
        }
        /* each file's share of its full run, averaged: files of 100 and of
         * 10^6 tokens per item count alike */
        printf("\n%-62s", "tokens, % of full's (mean over files)");
        for (int m = 0; m < ES_LOFO_METHODS; m++) {
            double t = 0;
            int k = 0;
            for (int f = 0; f < a->n_files; f++) {
                const es_lofo_cell *c = &rows[f].cell[m][b];
                if (isnan(c->tokens) || !(rows[f].full_tokens > 0)) continue;
                t += c->tokens / rows[f].full_tokens;
                k++;
            }
            k ? printf(" %14.1f%% ", 100 * t / k) : printf(" %15s ", "-");
        }
        printf("\n");
    }
    printf("\n(~ nothing certified on the other files at this budget: chosen on their training items, no guarantee;\n"
           " * nothing within the budget even there: the most conservative point)\n");
    printf("specs chosen per file (learned, tuned) at %.2f pt:\n", o->budgets[0]);
    for (int f = 0; f < a->n_files; f++)
        printf("  %-40.40s %s | %s\n", rows[f].file, rows[f].cell[0][0].spec, rows[f].cell[1][0].spec);
}

static void print_lofo_json(const learn_args *a, const es_lofo_row *rows, const char *const anchors[2])
{
    const es_learn_opts *o = &a->o;
    json_t *j = json_object(), *arr = json_array(), *pool = json_array();
    json_object_set_new(j, "learner", json_string(es_learner_name(o->learner)));
    json_object_set_new(j, "anchors", json_pack("[ss]", anchors[0], anchors[1]));
    for (int f = 0; f < a->n_files; f++) {
        json_t *r = json_object();
        json_object_set_new(r, "file", json_string(rows[f].file));
        json_object_set_new(r, "items", json_integer((json_int_t)rows[f].items));
        json_object_set_new(r, "full_tokens", json_real(rows[f].full_tokens));
        json_object_set_new(r, "oracle_tokens", json_real(rows[f].oracle_tokens));
        for (int m = 0; m < ES_LOFO_METHODS; m++) {
            json_t *cells = json_array();
            for (size_t b = 0; b < o->n_budgets; b++) {
                const es_lofo_cell *c = &rows[f].cell[m][b];
                json_array_append_new(cells, json_pack("{sf,ss,sf,sf,sf,sb}", "budget_pts", o->budgets[b], "spec",
                                                       c->spec, "em_delta_pts", 100 * c->d_em, "tokens", c->tokens,
                                                       "oracle_multiple", c->oracle_x, "certified", c->certified == 1));
            }
            json_object_set_new(r, method_names[m], cells);
        }
        json_array_append_new(arr, r);
    }
    for (size_t b = 0; b < o->n_budgets; b++)
        for (int m = 0; m < ES_LOFO_METHODS; m++) {
            double d, med, geo;
            pooled(rows, a->n_files, m, b, &d, &med, &geo);
            json_array_append_new(pool, json_pack("{ss,sf,sf,sf,sf}", "method", method_names[m], "budget_pts",
                                                  o->budgets[b], "em_delta_pts", 100 * d, "median_oracle_multiple", med,
                                                  "geomean_oracle_multiple", geo));
        }
    json_object_set_new(j, "files", arr);
    json_object_set_new(j, "pooled", pool);
    json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    printf("\n");
    json_decref(j);
}

/* A file's provenance (what is not the stopper itself), with its path. */
static json_t *source_of(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je), *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    const char *k;
    json_t *v;
    if (json_is_object(j))
        json_object_foreach(j, k, v) if (strcmp(k, "format") && strcmp(k, "version") && strcmp(k, "within") &&
                                         strcmp(k, "across") && strcmp(k, "across_alt") &&
                                         strcmp(k, "operating_points"))
            json_object_set(o, k, v);
    json_decref(j);
    return o;
}

/* How an operating point was chosen, as the file and --json name it. */
static const char *selection_name(int certified)
{
    return certified == 1 ? "learn-then-test" : certified < 0 ? "empirical" : "none";
}

/* The provenance written into the stopper file. */
static char *provenance(const learn_args *a, const es_learn_result *r, int argc, char **argv)
{
    const es_learn_opts *o = &a->o;
    json_t *j = json_object(), *files = json_array(), *cmd = json_array(), *pts = json_array();
    for (int i = 0; i < a->n_files; i++) json_array_append_new(files, json_string(a->files[i]));
    for (int i = 0; i < argc; i++) json_array_append_new(cmd, json_string(argv[i]));
    json_object_set_new(j, "learner", json_string(es_learner_name(o->learner)));
    json_object_set_new(j, "reward", json_string(o->reward == ES_REWARD_GOLD ? "gold" : "agree"));
    json_object_set_new(j, "lambda", tune_num(r->lambda));
    json_object_set_new(j, "delta", json_real(o->tune.delta));
    if (o->tune.per_file) json_object_set_new(j, "per_file", json_true()); /* the budget held on each file */
    json_object_set_new(j, "trained_on", files);
    json_object_set_new(j, "command", cmd);
    json_object_set_new(j, "train_items", json_integer((json_int_t)r->train_items));
    json_object_set_new(j, "test_items", json_integer((json_int_t)r->test_items));
    for (size_t b = 0; b < r->n_points; b++) {
        const es_learn_point *p = &r->points[b];
        /* json_pack's "f" fails on NaN (an empirical point's p-value): null */
        json_t *c = json_pack("{sf,sb,ss}", "max_em_drop", p->max_em_drop, "certified", p->certified == 1,
                              "selection", selection_name(p->certified));
        const struct { const char *k; double v; } nums[] = {
            {"opt_loss", p->test.loss}, {"opt_cost", p->test.cost}, {"pvalue", p->test.pvalue}, {"lambda", p->lambda}};
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
            json_object_set_new(c, nums[i].k, tune_num(nums[i].v));
        json_object_set_new(c, "feature_set", json_integer(p->feature_set));
        json_array_append_new(pts, c);
    }
    json_object_set_new(j, "calibration", pts);
    if (a->across_from) json_object_set_new(j, "across_from", source_of(a->across_from));
    char *s = json_dumps(j, JSON_REAL_PRECISION(17));
    json_decref(j);
    return s;
}

/* What `learn --out FILE --json` prints: the fit and its operating points
 * (a threshold that is not there, or no stop before the cap, is null). */
static void print_fit_json(const learn_args *a, const es_learn_result *r)
{
    json_t *j = json_object(), *pts = json_array();
    json_object_set_new(j, "out", json_string(a->out));
    json_object_set_new(j, "learner", json_string(es_learner_name(a->o.learner)));
    json_object_set_new(j, "lambda", tune_num(r->lambda));
    json_object_set_new(j, "train_states", json_integer((json_int_t)r->train_states));
    json_object_set_new(j, "train_items", json_integer((json_int_t)r->train_items));
    json_object_set_new(j, "test_items", json_integer((json_int_t)r->test_items));
    json_object_set_new(j, "seconds", json_real(r->seconds));
    for (size_t b = 0; b < r->n_points; b++) {
        const es_learn_point *p = &r->points[b];
        json_t *o = json_object();
        json_object_set_new(o, "max_em_drop", json_real(p->max_em_drop));
        json_object_set_new(o, "threshold", tune_num(p->threshold));
        json_object_set_new(o, "probe_threshold",
                            tune_num(p->probe_threshold));
        json_object_set_new(o, "certified", json_boolean(p->certified == 1));
        json_object_set_new(o, "selection", json_string(selection_name(p->certified)));
        json_object_set_new(o, "pvalue", tune_num(p->test.pvalue));
        json_object_set_new(o, "lambda", tune_num(p->lambda));
        json_object_set_new(o, "feature_set", json_integer(p->feature_set));
        json_array_append_new(pts, o);
    }
    json_object_set_new(j, "operating_points", pts);
    json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
    putchar('\n');
    json_decref(j);
}

/* ------------------------------------------------------------- join */

/* A spec's value of one parameter, through the rule's own parser: the file's
 * spec must run on its weights and have the parameter (a `learned` spec), or
 * the joined file would carry a spec that does not (max_em_drop=nan). */
static int spec_param(const char *opt, const char *path, const char *spec, const es_stopper *m, const char *name,
                      double *v)
{
    es_policy *p;
    es_error err = {0};
    int rc = es_policy_new_stopper(spec, m, &p, &err);
    if (!rc) rc = es_policy_get_param(p, name, v, &err);
    es_policy_free(p);
    if (rc)
        return cli_usage_error("learn", "%s: %s: its spec '%s' is not `learned` running on its weights: %s", opt,
                               path, spec, err.msg);
    return CLI_OK;
}

/* --join A B: A's across head and thresholds with B's within head and probe
 * thresholds.  Each head was calibrated alone; the two together are
 * checked by replay or live (docs/learning.md), not certified here. */
static int join(const learn_args *a, int argc, char **argv)
{
    es_stopper *m[2] = {NULL, NULL}, *out = NULL;
    char spec[2][256];
    es_error err = {0};
    int rc = CLI_OK;
    for (int k = 0; k < 2 && !rc; k++) {
        int r = es_stopper_load(a->join[k], &m[k], spec[k], sizeof spec[k], &err);
        if (r) rc = cli_report(&err, r);
    }
    es_stopper_desc d[2], j;
    if (!rc) {
        es_stopper_get(m[0], &d[0]);
        es_stopper_get(m[1], &d[1]);
        if (!d[0].across.n_in) rc = cli_usage_error("learn", "--join: %s has no across head", a->join[0]);
        else if (!d[1].within.n_in) rc = cli_usage_error("learn", "--join: %s has no within head", a->join[1]);
        else if (d[0].n_points != d[1].n_points ||
                 memcmp(d[0].max_em_drop, d[1].max_em_drop, d[0].n_points * sizeof(double)))
            rc = cli_usage_error("learn", "--join: the two files are calibrated for different EM budgets (train "
                                 "both with the same --budgets)");
    }
    double every = 0, drop = 0, min = 0;
    if (!rc) rc = spec_param("--join", a->join[1], spec[1], m[1], "every", &every);
    if (!rc) rc = spec_param("--join", a->join[0], spec[0], m[0], "max_em_drop", &drop);
    if (!rc) rc = spec_param("--join", a->join[0], spec[0], m[0], "min", &min);
    if (!rc) {
        j = d[0];
        j.within = d[1].within;
        if (j.within.every < 2) j.within.every = (uint32_t)every;
        j.probe_threshold = d[1].probe_threshold;
        int r = es_stopper_new(&j, &out, &err);
        if (r) rc = cli_report(&err, r);
    }
    char joined[256];
    if (!rc)
        /* the within head carries its probe spacing (every=auto reads it) */
        snprintf(joined, sizeof joined, "learned:max_em_drop=%g,min=%g", drop, min);
    if (!rc) {
        json_t *p = json_object(), *cmd = json_array();
        for (int i = 0; i < argc; i++) json_array_append_new(cmd, json_string(argv[i]));
        json_object_set_new(p, "command", cmd);
        json_object_set_new(p, "across_from", source_of(a->join[0]));
        json_object_set_new(p, "within_from", source_of(a->join[1]));
        char *prov = json_dumps(p, JSON_REAL_PRECISION(17));
        json_decref(p);
        int r = es_stopper_save(out, a->out, joined, prov, &err);
        free(prov);
        if (r) rc = cli_report(&err, r);
    }
    if (!rc && a->json) {
        json_t *o = json_pack("{ss,ss,ss,ss}", "out", a->out, "spec", joined, "across_from", a->join[0], "within_from",
                              a->join[1]);
        json_dumpf(o, stdout, JSON_INDENT(1));
        putchar('\n');
        json_decref(o);
    } else if (!rc) {
        printf("joined: across head of %s, within head of %s: %s\nwrote %s\n", a->join[0], a->join[1], joined, a->out);
    }
    es_stopper_free(out);
    es_stopper_free(m[0]);
    es_stopper_free(m[1]);
    return rc;
}

/* --across-from with --leave-one-file-out: a file left out that FILE's
 * across head was trained on makes the across half of its figures
 * in-sample; said, not refused (the within half is still held out). */
static void warn_in_sample(const learn_args *a)
{
    json_t *src = source_of(a->across_from), *on = json_object_get(src, "trained_on");
    for (int i = 0; i < a->n_files; i++) {
        const char *base = cli_base_name(a->files[i]);
        for (size_t k = 0; k < json_array_size(on); k++)
            if (json_is_string(json_array_get(on, k)) && !strcmp(json_string_value(json_array_get(on, k)), base)) {
                fprintf(stderr, "earlystop learn: note: %s's across head was trained on %s, a file left out here: "
                                "the across half of its figures is in-sample\n", a->across_from, base);
                break;
            }
    }
    json_decref(src);
}

/* ------------------------------------------------------------- main */

static int load_all(const learn_args *a, es_traceset **ts, es_tune_data *d)
{
    for (int i = 0; i < a->n_files; i++) {
        es_error err = {0};
        int rc = es_traceset_load(a->files[i], ES_READ_NO_TEXT, &ts[i], NULL, &err);
        if (rc) return cli_report(&err, rc);
        if (es_tune_data_add(d, ts[i], cli_base_name(a->files[i]))) {
            fprintf(stderr, "earlystop learn: out of memory\n");
            return CLI_FAIL;
        }
    }
    return CLI_OK;
}

int cmd_learn(int argc, char **argv)
{
    learn_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc == HELP) return CLI_OK;
    if (rc) return rc;
    if (a.emit_c) return emit_c(a.emit_c);
    if (a.join[0]) return join(&a, argc, argv);
    es_outfile *of = NULL;
    es_error err = {0};
    /* a bad output fails before any work */
    if (a.out) {
        const char *inputs[MAX_FILES + 1];
        for (int i = 0; i < a.n_files; i++) inputs[i] = a.files[i];
        inputs[a.n_files] = NULL;
        if ((rc = es_outfile_open(a.out, inputs, &of, &err))) return cli_report(&err, rc);
    }
    a.o.progress = progress;
    es_stopper *from = NULL;
    if (a.across_from) {
        char fspec[256];
        double min = 0;
        if ((rc = es_stopper_load(a.across_from, &from, fspec, sizeof fspec, &err))) rc = cli_report(&err, rc);
        /* its across thresholds hold their budgets at the min they were calibrated at */
        if (!rc) rc = spec_param("--across-from", a.across_from, fspec, from, "min", &min);
        if (!rc && a.min_given && min != a.o.min_samples)
            rc = cli_usage_error("learn", "--across-from: %s was calibrated at min=%g, not --min %u", a.across_from, min,
                                 a.o.min_samples);
        if (rc) {
            es_stopper_free(from);
            es_outfile_abort(of);
            return rc;
        }
        a.o.min_samples = (uint32_t)min;
        a.o.across_from = from;
        if (a.lofo) warn_in_sample(&a);
    }
    es_traceset *ts[MAX_FILES] = {0};
    es_tune_data *d = NULL;
    if (es_tune_data_new(&d)) rc = CLI_FAIL;
    if (!rc) rc = load_all(&a, ts, d);
    const char *anchors[2] = {a.o.level == ES_AT_WITHIN ? "dynasor" : "ac-beta",
                              a.o.level == ES_AT_WITHIN ? "deer" : "esc"};
    if (a.anchors) {
        size_t len = strcspn(a.anchors, ",");
        snprintf(a.anchor_buf[0], sizeof a.anchor_buf[0], "%.*s", (int)len, a.anchors);
        snprintf(a.anchor_buf[1], sizeof a.anchor_buf[1], "%s", a.anchors[len] ? a.anchors + len + 1 : "esc");
        anchors[0] = a.anchor_buf[0];
        anchors[1] = a.anchor_buf[1];
    }
    if (!rc && a.lofo) {
        es_lofo_row *rows = calloc((size_t)a.n_files, sizeof *rows);
        int r2 = rows ? es_learn_lofo(d, &a.o, anchors, rows, &err) : ES_ENOMEM;
        cli_progress_end();
        if (r2) rc = cli_report(&err, r2);
        else if (a.json) print_lofo_json(&a, rows, anchors);
        else print_lofo(&a, rows, anchors);
        free(rows);
    }
    if (!rc && a.out) {
        es_learn_result r;
        int r2 = es_learn_fit(d, &a.o, &r, &err);
        cli_progress_end();
        if (r2) {
            rc = cli_report(&err, r2);
        } else {
            char *prov = provenance(&a, &r, argc, argv);
            /* the file stands for the stopper at the budget asked for (a
             * within head carries its probe spacing: every=auto reads it) */
            char spec[160];
            snprintf(spec, sizeof spec, "learned:max_em_drop=%g,min=%u", a.o.budgets[a.o.primary], a.o.min_samples);
            r2 = es_stopper_write(r.stopper, es_outfile_fp(of), spec, prov, &err);
            free(prov);
            if (!r2) {
                rc = es_outfile_commit(of, &err) ? cli_report(&err, ES_EIO) : CLI_OK;
                of = NULL;
            } else {
                rc = cli_report(&err, r2);
            }
            if (!rc && a.json) {
                print_fit_json(&a, &r);
            } else if (!rc) {
                printf("learned stopper: %s, lambda %g, %zu training states, %zu train / %zu test items, %.1f s\n",
                       es_learner_name(a.o.learner), r.lambda, r.train_states, r.train_items, r.test_items, r.seconds);
                for (size_t b = 0; b < r.n_points; b++) {
                    const es_learn_point *p = &r.points[b];
                    char t1[32] = "-", t2[32] = "-";
                    if (!isnan(p->threshold)) snprintf(t1, sizeof t1, "%.6g", p->threshold);
                    if (!isnan(p->probe_threshold)) snprintf(t2, sizeof t2, "%.6g", p->probe_threshold);
                    printf("  max_em_drop %.2f pt: threshold %s, probe_threshold %s, lambda %g, features #%u, "
                           "%s (p = %.3g)\n",
                           p->max_em_drop, t1, t2, p->lambda, p->feature_set,
                           p->certified == 1   ? "certified"
                           : p->certified < 0 ? "NOT certified: chosen on the training items"
                                              : "NOT certified: nothing within the budget, stops only at the cap",
                           p->test.pvalue);
                }
                printf("wrote %s\n", a.out);
            }
            es_learn_result_free(&r);
        }
    }
    es_outfile_abort(of);
    es_stopper_free(from);
    es_tune_data_free(d);
    for (int i = 0; i < a.n_files; i++) es_traceset_free(ts[i]);
    return rc;
}
