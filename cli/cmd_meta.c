/*
 * cmd_meta.c - `earlystop meta-train FILE... --out PRIOR` (learn, across
 * tasks, how the stopping rules' thresholds move with the task) and
 * `earlystop adapt --prior PRIOR FILE --items K` (a new task's policy from
 * K of its items, with or without gold).  The library (earlystop_meta.h)
 * does the work; this file parses, prints and writes.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


#include <jansson.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_meta.h"

enum { HELP = -1 };

/* ------------------------------------------------------------ shared */

/* --shuffles, --seed, --threads, --probe-cost, --max-em-drop, --delta:
 * 1 when argv[*i] was one of them (consumed), -1 on a bad value (reported),
 * 0 when it is another option. */
static int common_opt(const char *cmd, int argc, char **argv, int *i, es_meta_opts *o, int *have_eps)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    double d;
    if (strcmp(a, "--shuffles") && strcmp(a, "--seed") && strcmp(a, "--threads") && strcmp(a, "--probe-cost") &&
        strcmp(a, "--max-em-drop") && strcmp(a, "--delta"))
        return 0;
    if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a), -1;
    ++*i;
    if (!strcmp(a, "--shuffles")) {
        if (cli_parse_long(v, 0, 1000000, &n))
            return cli_usage_error(cmd, "--shuffles: '%s' is not a whole number in 0..1000000", v), -1;
        o->shuffles = (uint32_t)n;
    } else if (!strcmp(a, "--seed")) {
        if (cli_parse_long(v, 0, LONG_MAX, &n))
            return cli_usage_error(cmd, "--seed: '%s' is not a whole number in 0..%ld", v, LONG_MAX), -1;
        o->seed = (uint64_t)n;
    } else if (!strcmp(a, "--threads")) {
        if (cli_parse_threads(cmd, v, &o->threads)) return -1;
    } else if (!strcmp(a, "--probe-cost")) {
        if (cli_parse_long(v, 0, 1000000, &n))
            return cli_usage_error(cmd, "--probe-cost: '%s' is not a whole number of tokens in 0..1000000", v), -1;
        o->probe_cost = (int32_t)n;
    } else if (!strcmp(a, "--max-em-drop")) {
        if (cli_parse_double(v, &d) || !(d > 0 && d < 100))
            return cli_usage_error(cmd, "--max-em-drop: '%s' is not a number of EM points in (0, 100), e.g. 0.5", v),
                   -1;
        o->max_em_drop = d / 100;
        if (have_eps) *have_eps = 1;
    } else {
        if (cli_parse_double(v, &d) || !(d > 0 && d < 1))
            return cli_usage_error(cmd, "--delta: '%s' is not a probability in (0, 1), e.g. 0.1", v), -1;
        o->delta = d;
        if (have_eps) *have_eps = 1;
    }
    return 1;
}

static int load_one(const char *cmd, const char *path, int threads, es_traceset **out)
{
    es_read_opts ro;
    es_read_opts_init(&ro);
    ro.flags = ES_READ_NO_TEXT;
    ro.threads = threads;
    es_error err = {0};
    int rc = es_traceset_load_opts(path, &ro, out, NULL, &err);
    if (rc) return cli_report(&err, rc);
    if (es_traceset_n_items(*out) == 0) {
        fprintf(stderr, "earlystop %s: %s: no items\n", cmd, path);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int dump_json(json_t *doc)
{
    if (json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) || putchar('\n') == EOF)
        return CLI_FAIL; /* main says why when it closes stdout */
    return CLI_OK;
}

/* Write into an es_outfile opened before the work; the error names it. */
static int commit(es_outfile *of, int ok)
{
    es_error err = {0};
    if (!ok) {
        es_outfile_abort(of);
        return CLI_FAIL;
    }
    int rc = es_outfile_commit(of, &err);
    return rc ? cli_report(&err, rc) : CLI_OK;
}

/* ------------------------------------------------------------ meta-train */

/* A file named twice would be two tasks with the same items: refused, by
 * name and by device and inode. */
static int distinct_files(const char **paths, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < i; k++)
            if (cli_same_file(paths[i], paths[k]))
                return cli_usage_error("meta-train", "'%s' is given twice (as '%s'): each file is one task", paths[i],
                                       paths[k]);
    return CLI_OK;
}

/* The task's name: the file's name without its directory, so that a prior
 * names its tasks the same wherever the files were. */
static const char *task_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

static const char train_usage[] =
    "usage: earlystop meta-train FILE... --out PRIOR.json [options]\n"
    "\n"
    "Learn, across tasks, how the stopping rules' thresholds should move with\n"
    "the task, so that `earlystop adapt` can tune a new task from a handful of\n"
    "its items.  Each FILE is one task (a model, prompt, temperature and\n"
    "dataset).  Per family (below) and per kind of label, each task's best\n"
    "setting is found exactly on all its items: the most aggressive grid value\n"
    "whose mean loss against `full` stays within --max-em-drop (loss: wrong\n"
    "where full is right, with gold; disagrees with full, without).  The prior\n"
    "holds: the population of those settings; a ridge regression of them on\n"
    "a descriptor of the task that needs no gold (answer diversity, a sample's\n"
    "agreement with its item's majority, sample length, ...); and how far the\n"
    "best setting measured on k items strays from the task's (k = 4 .. 512).\n"
    "docs/learning.md (\"Meta-learning\") says what is estimated and how.\n"
    "\n"
    "families:\n";

static const char train_usage_tail[] =
    "\n"
    "options:\n"
    "  --out FILE          the prior (JSON, versioned); required\n"
    "  --max-em-drop PTS   the mean loss a task's best setting may have, in EM\n"
    "                      points (default 0.5); adapt aims at the same\n"
    "  --delta D           Learn-then-Test's level for adapt (default 0.1)\n"
    "  --shuffles R        random sample orders per item (default 10; 0 = file\n"
    "                      order)\n"
    "  --seed S            seed of the orders and of the k-item draws (default 1)\n"
    "  --probe-cost N      charge N tokens per probe (default: the cost field)\n"
    "  --threads N         threads (default: one per core)\n"
    "  --json              the summary as one JSON object\n"
    "  -h, --help          this text\n"
    "A file with one sample per item is listed and left out (the families\n"
    "decide across samples); at least 3 tasks must remain.\n"
    "\n"
    "exit status: 0 ok, 1 I/O failure, 2 bad usage or input\n";

static void train_help(void)
{
    fputs(train_usage, stdout);
    for (size_t i = 0; i < es_meta_n_builtin_families(); i++) {
        const char *doc = "", *name = es_meta_builtin_family(i, &doc);
        printf("  %-10s %s\n", name, doc);
    }
    fputs(train_usage_tail, stdout);
}

typedef struct train_progress {
    size_t file, n_files;
} train_progress;

static void train_summary(const es_meta_prior *p, es_meta_task **tasks, const char **paths, int n, int json,
                          json_t *doc)
{
    json_t *rows = json_array();
    if (!json) {
        printf("%-44s %6s %6s %7s %7s", "task", "items", "k", "agree", "diverse");
        for (size_t f = 0; f < es_meta_prior_n_families(p); f++) printf(" %18s", es_meta_prior_family(p, f));
        printf("\n%-44s %6s %6s %7s %7s", "", "", "", "", "");
        for (size_t f = 0; f < es_meta_prior_n_families(p); f++) printf(" %8s %9s", "gold", "unlabel.");
        printf("\n");
    }
    for (int i = 0; i < n; i++) {
        double x[ES_META_N_DESC];
        es_meta_task_descriptor(tasks[i], x);
        json_t *r = json_object();
        json_object_set_new(r, "file", json_string(paths[i]));
        json_object_set_new(r, "items", json_integer((json_int_t)es_meta_task_n_items(tasks[i])));
        json_object_set_new(r, "used", json_boolean(es_meta_task_applies(tasks[i])));
        json_t *desc = json_object(), *best = json_object();
        for (size_t j = 0; j < ES_META_N_DESC; j++) json_object_set_new(desc, es_meta_descriptor_name(j), num(x[j]));
        json_object_set_new(r, "descriptor", desc);
        if (!json)
            printf("%-44.44s %6zu %6.1f %7.3f %7.3f", task_name(paths[i]), es_meta_task_n_items(tasks[i]), exp(x[0]),
                   x[1], x[2]);
        if (!es_meta_task_applies(tasks[i])) {
            if (!json) printf("  left out: one sample per item\n");
            json_object_set_new(r, "best", json_null());
            json_array_append_new(rows, r);
            json_decref(best);
            continue;
        }
        for (size_t f = 0; f < es_meta_prior_n_families(p); f++) {
            json_t *b = json_object();
            for (int l = 0; l < ES_META_N_LABELS; l++) {
                size_t g = es_meta_task_best(tasks[i], f, (es_meta_labels)l, es_meta_prior_eps(p));
                char spec[512] = "full";
                if (g != ES_META_FULL) es_meta_prior_spec(p, f, g, spec, sizeof spec, NULL);
                /* the value alone: after the key's '=' */
                const char *eq = g == ES_META_FULL ? NULL : strchr(spec, '=');
                char val[32];
                snprintf(val, sizeof val, "%.*s", eq ? (int)strcspn(eq + 1, ",") : 4, eq ? eq + 1 : "full");
                if (!json) printf(" %*s", l ? 9 : 8, val);
                json_object_set_new(b, l ? "none" : "gold", json_string(spec));
            }
            json_object_set_new(best, es_meta_prior_family(p, f), b);
        }
        if (!json) printf("\n");
        json_object_set_new(r, "best", best);
        json_array_append_new(rows, r);
    }
    json_object_set_new(doc, "tasks", rows);
}

int cmd_meta_train(int argc, char **argv)
{
    es_meta_opts o;
    es_meta_opts_init(&o);
    const char **paths = calloc((size_t)argc, sizeof *paths), *out = NULL;
    int n = 0, json = 0, rc = paths ? CLI_OK : cli_report(NULL, ES_ENOMEM);
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        int c;
        if (cli_is_help(a)) {
            train_help();
            rc = HELP;
        } else if (a[0] != '-' || !a[1]) {
            paths[n++] = a;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--out")) {
            if (i + 1 >= argc) rc = cli_usage_error("meta-train", "--out needs a file name");
            else out = argv[++i];
        } else if ((c = common_opt("meta-train", argc, argv, &i, &o, NULL)) != 0) {
            if (c < 0) rc = CLI_USAGE;
        } else {
            rc = cli_usage_error("meta-train", "unknown option '%s'", a);
        }
    }
    if (!rc && !n) rc = cli_usage_error("meta-train", "no trace file given (each FILE is one task)");
    if (!rc && !out) rc = cli_usage_error("meta-train", "--out PRIOR.json is required (the prior written)");
    if (!rc) rc = distinct_files(paths, n);
    es_outfile *of = NULL;
    es_error err = {0};
    if (!rc) {
        const char **inputs = calloc((size_t)n + 1, sizeof *inputs);
        for (int i = 0; inputs && i < n; i++) inputs[i] = paths[i];
        int orc = inputs ? es_outfile_open(out, inputs, &of, &err) : ES_ENOMEM;
        free(inputs);
        if (orc) rc = cli_report(&err, orc);
    }
    es_traceset **ts = calloc((size_t)n + 1, sizeof *ts);
    es_meta_task **tasks = calloc((size_t)n + 1, sizeof *tasks);
    if (!rc && (!ts || !tasks)) rc = cli_report(NULL, ES_ENOMEM);
    for (int i = 0; i < n && !rc; i++) {
        cli_progress("meta-train: replaying tasks", (size_t)i, (size_t)n);
        rc = load_one("meta-train", paths[i], o.threads, &ts[i]);
        if (!rc) {
            int trc = es_meta_task_new(ts[i], task_name(paths[i]), NULL, 0, NULL, &o, &tasks[i], &err);
            if (trc && !err.file[0]) snprintf(err.file, sizeof err.file, "%s", paths[i]);
            if (trc) rc = cli_report(&err, trc);
        }
    }
    cli_progress("meta-train: replaying tasks", (size_t)n, (size_t)n);
    cli_progress_end();
    es_meta_prior *p = NULL;
    if (!rc) {
        int trc = es_meta_train(tasks, (size_t)n, &o, &p, &err);
        if (trc) rc = cli_report(&err, trc);
    }
    json_t *doc = json_object();
    if (!rc) {
        json_object_set_new(doc, "format", json_string("earlystop-meta-train"));
        json_object_set_new(doc, "version", json_string(ES_VERSION_STRING));
        json_object_set_new(doc, "out", json_string(out));
        json_object_set_new(doc, "max_em_drop_pts", json_real(100 * o.max_em_drop));
        json_object_set_new(doc, "delta", json_real(o.delta));
        json_object_set_new(doc, "shuffles", json_integer(o.shuffles));
        json_object_set_new(doc, "seed", json_integer((json_int_t)o.seed));
        json_object_set_new(doc, "tasks_used", json_integer((json_int_t)es_meta_prior_n_tasks(p)));
        json_object_set_new(doc, "default_family",
                            json_string(es_meta_prior_family(p, es_meta_prior_default_family(p))));
        if (!json)
            printf("meta-train: %d file(s), %zu task(s) used; each task's best setting at a loss of at most %.2f EM "
                   "points (%u orders per item):\n",
                   n, es_meta_prior_n_tasks(p), 100 * o.max_em_drop, o.shuffles);
        train_summary(p, tasks, paths, n, json, doc);
        json_t *fits = json_array();
        if (!json)
            printf("learned, on each family's scale (log m; -ln(1 - threshold); the learned score): the tasks' "
                   "best, its spread, the descriptor's error (leave one task out), the error of k items' best "
                   "(k = 8, 16, 32):\n");
        for (size_t f = 0; f < es_meta_prior_n_families(p); f++)
            for (int l = 0; l < ES_META_N_LABELS; l++) {
                es_meta_fit_info fi;
                es_meta_prior_fit(p, f, (es_meta_labels)l, &fi);
                if (!json)
                    printf("  %-8s %-5s mean %.3f sd %.3f | descriptor %.3f | k items %.3f %.3f %.3f | default "
                           "%g\n",
                           es_meta_prior_family(p, f), l ? "none" : "gold", fi.mean, fi.sd, fi.resid_sd,
                           fi.noise_sd[0], fi.noise_sd[1], fi.noise_sd[2], fi.default_value);
                json_t *fo = json_object();
                json_object_set_new(fo, "family", json_string(es_meta_prior_family(p, f)));
                json_object_set_new(fo, "labels", json_string(l ? "none" : "gold"));
                json_object_set_new(fo, "mean", num(fi.mean));
                json_object_set_new(fo, "sd", num(fi.sd));
                json_object_set_new(fo, "descriptor_sd", num(fi.resid_sd));
                json_object_set_new(fo, "noise_sd_k8_16_32", json_pack("[o,o,o]", num(fi.noise_sd[0]),
                                                                       num(fi.noise_sd[1]), num(fi.noise_sd[2])));
                json_object_set_new(fo, "default", num(fi.default_value));
                json_array_append_new(fits, fo);
            }
        json_object_set_new(doc, "fits", fits);
        if (!json)
            printf("default family: %s (its tasks' best settings cost the fewest tokens; learned is never the "
                   "default)\n",
                   es_meta_prior_family(p, es_meta_prior_default_family(p)));
        int wrc = es_meta_prior_write(p, es_outfile_fp(of), &err);
        rc = commit(of, wrc == ES_OK);
        of = NULL;
        if (!rc && !json) printf("wrote %s\n", out);
    }
    if (of) es_outfile_abort(of);
    if (!rc && json) rc = dump_json(doc);
    json_decref(doc);
    es_meta_prior_free(p);
    for (int i = 0; i < n; i++) {
        if (tasks) es_meta_task_free(tasks[i]);
        if (ts) es_traceset_free(ts[i]);
    }
    free(tasks);
    free(ts);
    free(paths);
    return rc == HELP ? CLI_OK : rc;
}

/* ----------------------------------------------------------------- adapt */

static const char adapt_usage[] =
    "usage: earlystop adapt --prior PRIOR.json FILE --items K [options]\n"
    "\n"
    "Tune a stopping policy for a new task from K of its items, starting from\n"
    "a prior learned across other tasks (`earlystop meta-train`; the project\n"
    "ships data/prior.json).  K items are drawn at random (--seed) from FILE\n"
    "and only they are used: their descriptor (no gold) predicts the task's\n"
    "best setting, the best setting measured on them is shrunk toward that\n"
    "prediction by how noisy K items are (empirical Bayes), and Learn-then-Test\n"
    "tests the grid from the conservative end to the chosen point on them.\n"
    "The output says whether K items certify the policy (mean EM loss within\n"
    "the prior's eps with probability 1 - delta) and, when they cannot, how\n"
    "many items would.  docs/learning.md (\"Meta-learning\").\n"
    "\n"
    "options:\n"
    "  --prior FILE        the prior (required)\n"
    "  --items K           items of FILE to adapt on (required; at most FILE's)\n"
    "  --labels gold|none  gold: the K items' gold answers are used (loss: wrong\n"
    "                      where full is right); none: only their samples (loss:\n"
    "                      disagrees with the full run of all their samples).\n"
    "                      Default gold\n"
    "  --seed S            which items are drawn (default 1)\n"
    "  --family NAME       the prior's family to tune (default: the prior's)\n"
    "  --method M          adapt (default): the descriptor's prediction, the K\n"
    "                      items' best shrunk toward it; shrink: toward the\n"
    "                      population mean instead; descriptor: the prediction\n"
    "                      alone; default: the prior's default, nothing from\n"
    "                      the items; scratch: the K items' best alone;\n"
    "                      scratch-ltt: what Learn-then-Test certifies on them\n"
    "                      alone (full when nothing)\n"
    "  --guarantee         keep only what the K items certify: the most\n"
    "                      aggressive certified point up to the estimate; exit 2\n"
    "                      when none is (nothing written)\n"
    "  --evaluate          also measure the policy on FILE's other items (EM\n"
    "                      change against full with its 95% interval, tokens)\n"
    "  --shuffles R        sample orders per item (default: the prior's)\n"
    "  --threads N         threads (default: one per core)\n"
    "  --probe-cost N      charge N tokens per probe (default: the cost field)\n"
    "  --out FILE          the policy: `eval --policy @FILE`, `run --policy @FILE`\n"
    "                      load it as it is; the other keys say where it came from\n"
    "  --json              everything printed, as one JSON object\n"
    "  -h, --help          this text\n"
    "\n"
    "exit status: 0 ok, 1 I/O failure, 2 bad usage or input (a bad prior, K\n"
    "larger than FILE, a file with one sample per item, --guarantee with\n"
    "nothing certified)\n";

typedef struct adapt_args {
    const char *prior_path, *file, *out, *family;
    long items;
    es_meta_labels labels;
    es_meta_method method;
    uint64_t item_seed;
    int guarantee, evaluate, json, have_shuffles;
    es_meta_opts o;
} adapt_args;

static int parse_method(const char *v, es_meta_method *m)
{
    static const es_meta_method all[] = {ES_META_ADAPT, ES_META_SHRINK, ES_META_DESCRIPTOR, ES_META_DEFAULT,
                                         ES_META_SCRATCH, ES_META_SCRATCH_LTT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(v, es_meta_method_name(all[i]))) {
            *m = all[i];
            return 0;
        }
    return -1;
}

static int adapt_parse(int argc, char **argv, adapt_args *a)
{
    es_meta_opts_init(&a->o);
    a->items = -1;
    a->item_seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int c;
        if (cli_is_help(o)) {
            fputs(adapt_usage, stdout);
            return HELP;
        }
        if (o[0] != '-' || !o[1]) {
            if (a->file) return cli_usage_error("adapt", "one FILE at a time ('%s' and '%s' given)", a->file, o);
            a->file = o;
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
        } else if (!strcmp(o, "--guarantee")) {
            a->guarantee = 1;
        } else if (!strcmp(o, "--evaluate")) {
            a->evaluate = 1;
        } else if (!strcmp(o, "--seed")) {
            long n;
            if (!v || cli_parse_long(v, 0, LONG_MAX, &n))
                return cli_usage_error("adapt", "--seed: '%s' is not a whole number in 0..%ld", v ? v : "", LONG_MAX);
            a->item_seed = (uint64_t)n;
            i++;
        } else if (!strcmp(o, "--shuffles") || !strcmp(o, "--threads") || !strcmp(o, "--probe-cost")) {
            a->have_shuffles |= !strcmp(o, "--shuffles");
            if (common_opt("adapt", argc, argv, &i, &a->o, NULL) < 0) return CLI_USAGE;
        } else if (!v) {
            return cli_usage_error("adapt", "option '%s' needs a value or is unknown", o);
        } else if (!strcmp(o, "--prior")) {
            a->prior_path = argv[++i];
        } else if (!strcmp(o, "--out")) {
            a->out = argv[++i];
        } else if (!strcmp(o, "--family")) {
            a->family = argv[++i];
        } else if (!strcmp(o, "--items")) {
            if (cli_parse_long(argv[++i], 1, 100000000, &a->items))
                return cli_usage_error("adapt", "--items: '%s' is not a whole number of items >= 1", v);
        } else if (!strcmp(o, "--labels")) {
            i++;
            if (!strcmp(v, "gold")) a->labels = ES_META_GOLD;
            else if (!strcmp(v, "none")) a->labels = ES_META_NONE;
            else return cli_usage_error("adapt", "--labels: '%s' is neither gold nor none", v);
        } else if (!strcmp(o, "--method")) {
            i++;
            if (parse_method(v, &a->method))
                return cli_usage_error("adapt", "--method: '%s' is none of adapt, shrink, descriptor, default, "
                                                "scratch, scratch-ltt", v);
        } else if ((c = common_opt("adapt", argc, argv, &i, &a->o, NULL)) != 0) {
            if (c < 0) return CLI_USAGE;
            return cli_usage_error("adapt", "%s is the prior's: set it when training it (meta-train)", o);
        } else {
            return cli_usage_error("adapt", "unknown option '%s'", o);
        }
    }
    if (!a->prior_path) return cli_usage_error("adapt", "--prior PRIOR.json is required (e.g. data/prior.json)");
    if (!a->file) return cli_usage_error("adapt", "no trace file given");
    if (a->items < 0) return cli_usage_error("adapt", "--items K is required (how many of FILE's items to adapt on)");
    if (a->out && a->file && !strcmp(a->out, a->file))
        return cli_usage_error("adapt", "--out '%s' is the input file", a->out);
    return CLI_OK;
}

static json_t *figures_json(const es_meta_figures *f)
{
    json_t *j = json_object();
    json_object_set_new(j, "em", num(f->em));
    json_object_set_new(j, "em_full", num(f->em_full));
    json_object_set_new(j, "tokens", num(f->tokens));
    json_object_set_new(j, "full_tokens", num(f->full_tokens));
    json_object_set_new(j, "share", num(f->share));
    json_object_set_new(j, "loss_pts", num(100 * f->loss));
    return j;
}

static json_t *choice_json(const es_meta_choice *c, const adapt_args *a, double eps, double delta, size_t n,
                           size_t n_file)
{
    json_t *est = json_object(), *g = json_object(), *j = json_object();
    json_object_set_new(est, "z_prior", num(c->z_prior));
    json_object_set_new(est, "tau2", num(c->tau2));
    json_object_set_new(est, "z_data", num(c->z_data));
    json_object_set_new(est, "var_data", num(c->var_data));
    json_object_set_new(est, "weight", num(c->weight));
    json_object_set_new(est, "z_post", num(c->z_post));
    json_object_set_new(g, "certified", json_boolean(c->certified));
    json_object_set_new(g, "max_em_drop_pts", num(100 * eps));
    json_object_set_new(g, "delta", num(delta));
    json_object_set_new(g, "pvalue", num(c->pvalue));
    json_object_set_new(g, "certified_pvalue", num(c->pvalue_certified));
    json_object_set_new(g, "certified_points", json_integer((json_int_t)c->n_certified));
    json_object_set_new(g, "certified_spec", json_string(c->certified_spec));
    json_object_set_new(g, "items_needed", num(c->items_needed));
    json_object_set_new(j, "spec", json_string(c->spec));
    json_object_set_new(j, "tool", json_string("earlystop adapt"));
    json_object_set_new(j, "version", json_string(ES_VERSION_STRING));
    json_object_set_new(j, "prior", json_string(a->prior_path));
    json_object_set_new(j, "file", json_string(a->file));
    json_object_set_new(j, "items", json_integer((json_int_t)n));
    json_object_set_new(j, "file_items", json_integer((json_int_t)n_file));
    json_object_set_new(j, "item_seed", json_integer((json_int_t)a->item_seed));
    json_object_set_new(j, "labels", json_string(a->labels == ES_META_NONE ? "none" : "gold"));
    json_object_set_new(j, "method", json_string(es_meta_method_name(a->method)));
    json_object_set_new(j, "family", json_string(c->family));
    json_object_set_new(j, "estimate", est);
    json_object_set_new(j, "guarantee", g);
    json_object_set_new(j, "on_items", figures_json(&c->k_fig));
    return j;
}

/* The items drawn: K of FILE's N, seeded, in file order. */
static uint32_t *draw_items(size_t N, size_t K, uint64_t seed)
{
    uint32_t *perm = malloc((N + 1) * sizeof *perm);
    if (!perm) return NULL;
    /* es_shuffle_order: the same pure function of the seed the replays use */
    es_shuffle_order(seed, 0, 0xADA97u, (uint32_t)N, perm);
    uint32_t *out = malloc((K + 1) * sizeof *out);
    if (out) {
        unsigned char *take = calloc(N + 1, 1);
        if (!take) {
            free(out);
            free(perm);
            return NULL;
        }
        for (size_t i = 0; i < K; i++) take[perm[i]] = 1;
        size_t k = 0;
        for (size_t i = 0; i < N; i++)
            if (take[i]) out[k++] = (uint32_t)i;
        free(take);
    }
    free(perm);
    return out;
}

static void print_choice(const es_meta_choice *c, const adapt_args *a, const es_meta_prior *p, size_t k,
                         size_t n_file)
{
    double eps = es_meta_prior_eps(p), delta = es_meta_prior_delta(p);
    printf("adapt: %s, %zu of %zu items (seed %llu), labels %s, family %s, method %s\n", a->file, k, n_file,
           (unsigned long long)a->item_seed, a->labels == ES_META_NONE ? "none (agreement with full)" : "gold",
           c->family, es_meta_method_name(a->method));
    if (a->method == ES_META_ADAPT || a->method == ES_META_SHRINK)
        printf("estimate (on the family's scale): prior %.3f (sd %.3f, %s), the items' best %.3f (bias-corrected, "
               "noise sd %.3f), weight %.2f -> %.3f\n",
               c->z_prior, sqrt(c->tau2), a->method == ES_META_ADAPT ? "from the descriptor" : "the population's",
               c->z_data, sqrt(c->var_data), c->weight, c->z_post);
    else if (a->method == ES_META_DESCRIPTOR)
        printf("estimate (on the family's scale): the descriptor predicts %.3f (sd %.3f)\n", c->z_prior,
               sqrt(c->tau2));
    printf("policy: %s\n", c->spec);
    printf("on the %zu items: EM %.3f (full %.3f), tokens %.1f%% of full's, loss %.2f pts\n", k, c->k_fig.em,
           c->k_fig.em_full, 100 * c->k_fig.share, 100 * c->k_fig.loss);
    if (c->g == ES_META_FULL)
        printf("guarantee: full draws every sample and loses nothing against itself\n");
    else if (c->certified)
        printf("guarantee: certified by the %zu items: mean loss at most %.2f EM points with probability at least "
               "%.2f (p = %.3g), for items exchangeable with them\n",
               k, 100 * eps, 1 - delta, c->pvalue);
    else if (c->n_certified)
        printf("guarantee: none for this point: it loses too much on the %zu items to be certified (p = %.3g). "
               "They certify a mean loss of at most %.2f EM points at delta %.3g for the grid from the conservative "
               "end up to %s (%zu point(s)); --guarantee keeps that one\n",
               k, c->pvalue, 100 * eps, delta, c->certified_spec, c->n_certified);
    else if ((double)k < c->items_needed)
        printf("guarantee: none. %zu items cannot certify a mean loss of at most %.2f EM points at delta %.3g, not "
               "even at the most conservative grid point (this point's p = %.3g); about %.0f items, none of them "
               "lost, would. The policy is the prior's estimate, with no guarantee\n",
               k, 100 * eps, delta, c->pvalue, c->items_needed);
    else
        printf("guarantee: none. Not even the most conservative grid point is certified on the %zu items at a mean "
               "loss of at most %.2f EM points, delta %.3g: they show too many losses (this point's p = %.3g). The "
               "policy is the prior's estimate, with no guarantee\n",
               k, 100 * eps, delta, c->pvalue);
}

/* --evaluate: the policy on FILE's other items, as tune reports a test. */
static int evaluate_rest(const es_traceset *ts, const adapt_args *a, const uint32_t *items, size_t k,
                         const char *spec, json_t *doc)
{
    size_t N = es_traceset_n_items(ts);
    if (k >= N) {
        if (!a->json) printf("evaluate: no other items in %s\n", a->file);
        json_object_set_new(doc, "evaluate", json_null());
        return CLI_OK;
    }
    uint32_t *rest = malloc((N - k + 1) * sizeof *rest);
    es_tune_data *d = NULL;
    if (!rest || es_tune_data_new(&d)) {
        free(rest);
        return cli_report(NULL, ES_ENOMEM);
    }
    size_t n = 0, at = 0;
    for (size_t i = 0; i < N; i++) {
        if (at < k && items[at] == i) at++;
        else rest[n++] = (uint32_t)i;
    }
    es_tune_opts o;
    es_meta_tune_opts(&a->o, &o);
    es_tune_eval e;
    es_error err = {0};
    int rc = es_tune_data_add_items(d, ts, a->file, rest, n);
    if (!rc) rc = es_tune_evaluate(d, spec, &o, &e, &err);
    if (rc) rc = cli_report(&err, rc);
    if (!rc) {
        double red = e.full_tokens > 0 ? 100 * (1 - e.p.tokens / e.full_tokens) : NAN;
        if (!a->json)
            printf("evaluate: on the other %zu items: EM %.3f (full %.3f), change %+.2f pts [%+.2f, %+.2f], tokens "
                   "%.1f (full %.1f), %.1f%% of full's per item, reduction %.1f%%\n",
                   n, e.p.em, e.p.em_full, 100 * e.d_em, 100 * e.d_lo, 100 * e.d_hi, e.p.tokens, e.full_tokens,
                   100 * e.p.share, red);
        json_t *j = json_object();
        json_object_set_new(j, "items", json_integer((json_int_t)n));
        json_object_set_new(j, "em", num(e.p.em));
        json_object_set_new(j, "em_full", num(e.p.em_full));
        json_object_set_new(j, "em_delta_pts", num(100 * e.d_em));
        json_object_set_new(j, "em_delta_lo_pts", num(100 * e.d_lo));
        json_object_set_new(j, "em_delta_hi_pts", num(100 * e.d_hi));
        json_object_set_new(j, "tokens", num(e.p.tokens));
        json_object_set_new(j, "full_tokens", num(e.full_tokens));
        json_object_set_new(j, "share", num(e.p.share));
        json_object_set_new(j, "token_reduction_pct", num(red));
        json_object_set_new(doc, "evaluate", j);
    }
    es_tune_data_free(d);
    free(rest);
    return rc;
}

int cmd_adapt(int argc, char **argv)
{
    adapt_args a;
    memset(&a, 0, sizeof a);
    int rc = adapt_parse(argc, argv, &a);
    es_meta_prior *p = NULL;
    es_traceset *ts = NULL;
    es_meta_task *task = NULL;
    es_outfile *of = NULL;
    uint32_t *items = NULL;
    json_t *doc = NULL;
    es_error err = {0};
    if (!rc && a.out) {
        const char *inputs[] = {a.file, a.prior_path, NULL};
        int orc = es_outfile_open(a.out, inputs, &of, &err);
        if (orc) rc = cli_report(&err, orc);
    }
    if (!rc) {
        int prc = es_meta_prior_read(a.prior_path, &p, &err);
        if (prc) rc = cli_report(&err, prc);
    }
    size_t f = ES_META_FULL;
    if (!rc && a.family) {
        int frc = es_meta_prior_find_family(p, a.family, &f, &err);
        if (frc) rc = cli_report(&err, frc);
    }
    if (!rc) rc = load_one("adapt", a.file, a.o.threads, &ts);
    size_t N = ts ? es_traceset_n_items(ts) : 0, K = (size_t)(a.items > 0 ? a.items : 0);
    if (!rc && K > N)
        rc = cli_usage_error("adapt", "--items %zu: %s has only %zu items", K, a.file, N);
    if (!rc && !(items = draw_items(N, K, a.item_seed))) rc = cli_report(NULL, ES_ENOMEM);
    if (!rc) {
        /* the losses as the prior measured them: its orders and seed */
        es_meta_opts o = a.o;
        o.max_em_drop = es_meta_prior_eps(p);
        o.delta = es_meta_prior_delta(p);
        if (!a.have_shuffles) o.shuffles = es_meta_prior_shuffles(p);
        o.seed = es_meta_prior_seed(p);
        a.o = o;
        int trc = es_meta_task_new(ts, a.file, items, K, p, &o, &task, &err);
        if (trc) rc = cli_report(&err, trc);
    }
    es_meta_choice c;
    char estimate_spec[512] = "";
    if (!rc) {
        int arc = es_meta_adapt(p, task, a.labels, a.method, f, &c, &err);
        if (arc) rc = cli_report(&err, arc);
    }
    if (!rc && a.guarantee && !c.certified) {
        if (!c.n_certified) {
            if ((double)K < c.items_needed)
                fprintf(stderr, "earlystop adapt: --guarantee: %zu items certify no grid point of %s at a loss of at "
                                "most %.2f EM points, delta %.3g: about %.0f items, none of them lost, would\n",
                        K, c.family, 100 * es_meta_prior_eps(p), es_meta_prior_delta(p), c.items_needed);
            else
                fprintf(stderr, "earlystop adapt: --guarantee: the %zu items certify no grid point of %s at a loss of "
                                "at most %.2f EM points, delta %.3g: they show too many losses even at the most "
                                "conservative point\n",
                        K, c.family, 100 * es_meta_prior_eps(p), es_meta_prior_delta(p));
            rc = CLI_USAGE;
        } else {
            /* keep what is certified: the last point of the certified prefix */
            snprintf(estimate_spec, sizeof estimate_spec, "%s", c.spec);
            snprintf(c.spec, sizeof c.spec, "%s", c.certified_spec);
            c.g = c.g_certified;
            c.certified = 1;
            c.pvalue = c.pvalue_certified;
            es_meta_task_figures(task, c.f, c.g, a.labels, &c.k_fig);
        }
    }
    if (!rc) {
        doc = choice_json(&c, &a, es_meta_prior_eps(p), es_meta_prior_delta(p), K, N);
        /* --guarantee replaced the estimate by what is certified: say which */
        if (estimate_spec[0]) json_object_set_new(doc, "estimate_spec", json_string(estimate_spec));
        if (!a.json) print_choice(&c, &a, p, K, N);
        if (!a.json && estimate_spec[0])
            printf("--guarantee: the estimate %s is not certified; the most aggressive certified point before it is "
                   "kept\n", estimate_spec);
    }
    if (!rc && a.evaluate) rc = evaluate_rest(ts, &a, items, K, c.spec, doc);
    if (!rc && of) {
        FILE *fp = es_outfile_fp(of);
        int bad = json_dumpf(doc, fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) ||
                  fputc('\n', fp) == EOF;
        rc = commit(of, !bad);
        of = NULL;
        if (!rc && !a.json) printf("wrote %s\n", a.out);
    }
    if (of) es_outfile_abort(of);
    if (!rc && a.json) rc = dump_json(doc);
    json_decref(doc);
    es_meta_task_free(task);
    es_traceset_free(ts);
    es_meta_prior_free(p);
    free(items);
    return rc == HELP ? CLI_OK : rc;
}
