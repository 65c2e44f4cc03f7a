/* cmd_import.c - `earlystop import`: other people's JSON -> trace format v1. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "earlystop_io.h"

static const char import_usage[] =
    "usage: earlystop import [OPTIONS] INPUT\n"
    "\n"
    "Turn JSON Lines (or one top-level JSON array) of model outputs into trace\n"
    "format v1 on stdout.  INPUT '-' reads stdin.  Field paths: key, a.b, a[2].b.\n"
    "\n"
    "where things are:\n"
    "  --samples PATH       the sample list: strings, or objects (required);\n"
    "                       PATH[].TEXT is short for --sample-text TEXT\n"
    "  --sample-text PATH   text inside object samples (default: text)\n"
    "  --gold PATH          gold answer, or list of accepted answers (this or\n"
    "                       --gold-scores is required)\n"
    "  --gold-scores PATH   gold as an object of scores (BIG-bench target_scores,\n"
    "                       {\"05/01/2021\": 1, \"05/02/2021\": 0}): the top-scoring\n"
    "                       key, or all keys that tie for the top\n"
    "  --gold-regex RE      gold = group 1 of the last match of RE in it\n"
    "  --gold-file FILE     take gold from FILE's records (--gold PATH in them),\n"
    "                       joined by id; FILE may be a trace file (header skipped)\n"
    "  --gold-key PATH      join key in FILE's records (default: id)\n"
    "  --join-id PATH       join key in INPUT's records (default: --id, else id)\n"
    "  --id PATH            item id (default: generated from the item index)\n"
    "  --id-prefix P        put P before every id (default: item- for generated ids)\n"
    "  --id-digits N        zero-pad integer ids and indexes to N digits\n"
    "                       (default: 4 for generated ids, none for --id)\n"
    "  --question PATH      question text (optional)\n"
    "\n"
    "answers and tokens:\n"
    "  --answer PATH        answer field of a sample (for string samples: a parallel\n"
    "                       array in the record)\n"
    "  --answer-regex RE    answer = group 1 (else the whole match) of the LAST match\n"
    "                       of RE in the answer field or else the sample text;\n"
    "                       no match = null\n"
    "  --answer-extract boxed\n"
    "                       answer = the argument of the last \\boxed{...} or\n"
    "                       \\fbox{...} (braces balanced), instead of a regex\n"
    "  --match first|last   which match or box counts (default: last)\n"
    "  --max-samples N      keep the first N samples of each record\n"
    "  --lower              lower-case answers and gold (ASCII)\n"
    "  --answer-type T      text | number | date | choice | math (default: text)\n"
    "  --task NAME          task name (default: INPUT's file name without extension)\n"
    "  --tokens PATH        token counts (like --answer); without it counts are\n"
    "                       estimated and the header says so\n"
    "\n"
    "output:\n"
    "  --out FILE           write to FILE instead of stdout; FILE is replaced only\n"
    "                       when the import succeeds (else it keeps what it held)\n"
    "  --model NAME         header provenance: model\n"
    "  --source TEXT        header provenance: source (default: INPUT)\n"
    "  --no-text            leave sample texts and questions out\n"
    "  --skip-bad           skip records that fail (counted on stderr)\n"
    "\n"
    "Records are checked: a parallel --answer/--tokens array of another length\n"
    "than the samples, and an id seen before (1 and \"1\" are the same id), are\n"
    "errors.  A warning goes to stderr when sample texts repeat in a copy\n"
    "pattern (docs/import.md, \"Duplicate texts\").\n"
    "  -h, --help           this help\n"
    "\n"
    "Exit status: 0 ok, 1 I/O failure, 2 bad options or bad input (the message\n"
    "names file, line and field).  See docs/import.md for worked examples.\n";

/* Options that take a value, and where the value goes. */
typedef struct import_args {
    es_import_opts o;
    const char *input, *out, *answer_type, *id_digits, *max_samples, *match;
} import_args;

static const char **value_slot(import_args *a, const char *name)
{
    static const struct { const char *name; size_t off; } tab[] = {
        {"--id", offsetof(import_args, o.id_path)},
        {"--id-prefix", offsetof(import_args, o.id_prefix)},
        {"--id-digits", offsetof(import_args, id_digits)},
        {"--question", offsetof(import_args, o.question_path)},
        {"--gold", offsetof(import_args, o.gold_path)},
        {"--gold-scores", offsetof(import_args, o.gold_scores_path)},
        {"--gold-regex", offsetof(import_args, o.gold_regex)},
        {"--gold-file", offsetof(import_args, o.gold_file)},
        {"--gold-key", offsetof(import_args, o.gold_key)},
        {"--join-id", offsetof(import_args, o.join_path)},
        {"--samples", offsetof(import_args, o.samples_path)},
        {"--sample-text", offsetof(import_args, o.sample_text_path)},
        {"--answer", offsetof(import_args, o.answer_path)},
        {"--answer-regex", offsetof(import_args, o.answer_regex)},
        {"--answer-extract", offsetof(import_args, o.answer_extract)},
        {"--match", offsetof(import_args, match)},
        {"--max-samples", offsetof(import_args, max_samples)},
        {"--answer-type", offsetof(import_args, answer_type)},
        {"--task", offsetof(import_args, o.task)},
        {"--tokens", offsetof(import_args, o.tokens_path)},
        {"--model", offsetof(import_args, o.model)},
        {"--source", offsetof(import_args, o.source)},
        {"--out", offsetof(import_args, out)},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(name, tab[i].name)) return (const char **)(void *)((char *)a + tab[i].off);
    return NULL;
}

/* Flags without a value; 1 when `arg` was one. */
static int flag_opt(import_args *a, const char *arg)
{
    if (!strcmp(arg, "--lower")) a->o.flags |= ES_IMPORT_LOWER;
    else if (!strcmp(arg, "--skip-bad")) a->o.flags |= ES_IMPORT_SKIP_BAD;
    else if (!strcmp(arg, "--no-text")) a->o.flags |= ES_IMPORT_NO_TEXT;
    else return 0;
    return 1;
}

/* Accepts "--opt VALUE" and "--opt=VALUE"; -1 after printing a usage error. */
static int parse_args(int argc, char **argv, import_args *a)
{
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (arg[0] != '-' || !strcmp(arg, "-")) {
            if (a->input) { cli_usage_error("import", "more than one INPUT ('%s')", arg); return -1; }
            a->input = arg;
            continue;
        }
        if (flag_opt(a, arg)) continue;
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), arg);
        const char **slot = value_slot(a, name);
        if (!slot) { cli_usage_error("import", "unknown option '%s'", arg); return -1; }
        if (!eq && i + 1 >= argc) { cli_usage_error("import", "%s needs a value", name); return -1; }
        *slot = eq ? eq + 1 : argv[++i];
    }
    return 0;
}

/* Turn the string-valued options into typed ones; -1 on a bad value. */
static int check_args(import_args *a)
{
    long digits;
    if (!a->input) { cli_usage_error("import", "no INPUT given"); return -1; }
    if (a->answer_type && es_answer_type_parse(a->answer_type, &a->o.answer_type)) {
        cli_usage_error("import", "--answer-type: '%s' is not text, number, date, choice or math", a->answer_type);
        return -1;
    }
    if (a->match && strcmp(a->match, "first") && strcmp(a->match, "last")) {
        cli_usage_error("import", "--match: '%s' is not first or last", a->match);
        return -1;
    }
    if (a->match && !strcmp(a->match, "first")) a->o.flags |= ES_IMPORT_FIRST_MATCH;
    if (a->max_samples) {
        long n;
        if (cli_parse_long(a->max_samples, 1, 1000000000L, &n)) {
            cli_usage_error("import", "--max-samples: '%s' is not a whole number 1..1000000000", a->max_samples);
            return -1;
        }
        a->o.max_samples = (size_t)n;
    }
    if (a->id_digits) {
        if (cli_parse_long(a->id_digits, 0, 20, &digits)) {
            cli_usage_error("import", "--id-digits: '%s' is not a whole number 0..20", a->id_digits);
            return -1;
        }
        a->o.id_digits = (int)digits;
    }
    return 0;
}

/* Stream every item from the importer into the writer. */
static int import_all(es_importer *im, es_outfile *of, size_t *items, size_t *samples, es_error *err)
{
    es_trace_writer *w = NULL;
    const char *header = es_importer_header(im);
    if (!header) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    int rc = es_trace_writer_open(es_outfile_fp(of), header, &w, err);
    es_item item;
    while (rc == ES_OK && (rc = es_importer_next(im, &item, err)) == ES_OK) {
        rc = es_trace_writer_write(w, &item, err);
        (*items)++;
        *samples += item.n_samples;
    }
    if (rc == ES_EOF) rc = ES_OK;
    int frc = w ? es_trace_writer_free(w) : ES_OK;
    if (rc == ES_OK && frc) {
        rc = es_error_set(err, frc, "", 0, "", "write failed: %s", strerror(errno));
        clearerr(es_outfile_fp(of)); /* said here: not again at exit for stdout */
    }
    /* the writer does not know the output's name: a write error gets it */
    if (rc == ES_EIO && err && !err->file[0]) snprintf(err->file, sizeof err->file, "%s", es_outfile_name(of));
    return rc;
}

/* The copy warning on what was written (see es_dup_suspicious). */
static void warn_copies(const es_importer *im)
{
    es_dup_stats d;
    es_importer_dup_stats(im, &d);
    if (!es_dup_suspicious(&d)) return;
    char msg[512];
    es_dup_describe(&d, msg, sizeof msg);
    fprintf(stderr, "earlystop import: warning: %s\n", msg);
}

/* The output is opened before the input is read (a bad --out fails first)
 * and replaces the old file only once the import succeeded: an existing
 * output survives a failed run, and --out naming an input is refused. */
static int run_import(import_args *a)
{
    es_error err;
    memset(&err, 0, sizeof err);
    const char *inputs[] = {a->input, a->o.gold_file, NULL};
    es_outfile *of = NULL;
    int rc = es_outfile_open(a->out ? a->out : "-", inputs, &of, &err);
    if (rc) {
        snprintf(err.field, sizeof err.field, "--out");
        return cli_report(&err, rc);
    }
    es_importer *im = NULL;
    rc = es_importer_new(&a->o, &im, &err);
    if (!rc) rc = es_importer_open(im, a->input, &err);
    size_t items = 0, samples = 0;
    if (!rc) rc = import_all(im, of, &items, &samples, &err);
    if (!rc) rc = es_outfile_commit(of, &err);
    else es_outfile_abort(of);
    size_t skipped = im ? es_importer_skipped(im) : 0;
    if (!rc) {
        fprintf(stderr, "earlystop import: %zu items, %zu samples", items, samples);
        if (skipped) {
            char buf[1024];
            es_error_format(es_importer_last_skip(im), buf, sizeof buf);
            fprintf(stderr, ", %zu record%s skipped (last: %s)", skipped, skipped == 1 ? "" : "s", buf);
        }
        fputc('\n', stderr);
        warn_copies(im);
    }
    es_importer_free(im);
    if (!rc) return CLI_OK;
    return cli_report(&err, rc);
}

int cmd_import(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) { fputs(import_usage, stdout); return CLI_OK; }
    import_args a;
    memset(&a, 0, sizeof a);
    es_import_opts_init(&a.o);
    if (parse_args(argc, argv, &a) || check_args(&a)) return CLI_USAGE;
    return run_import(&a);
}
