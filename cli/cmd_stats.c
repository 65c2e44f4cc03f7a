/* cmd_stats.c - `earlystop stats FILE...`: summary figures per trace file. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "earlystop_io.h"

static const char usage_text[] =
    "usage: earlystop stats [--json] [--skip-bad] FILE...\n"
    "\n"
    "Summary figures of trace files (format v1), samples taken in file order:\n"
    "  items, samples per item (k), single-sample EM (first sample), maj@k EM\n"
    "  (ties to the answer seen first), oracle@k (any sample correct), mean\n"
    "  tokens per item, and the consistency oracle (fewest first samples whose\n"
    "  running majority equals the full majority from then on) in samples and\n"
    "  tokens.  Files with probes also get probes per trace, full EM and the\n"
    "  stable-final oracle tokens.  Files of answer_type text also get the\n"
    "  token-level F1 of the majority answer (SQuAD-style), a second metric.\n"
    "  Files with sample texts get duplicate_rate in --json (share of samples\n"
    "  whose text equals an earlier sample's in the same item) and a warning\n"
    "  on stderr when texts repeat in a copy pattern (docs/import.md).\n"
    "\n"
    "options:\n"
    "  --json       one JSON object per file, one per line\n"
    "  --skip-bad   skip items that break the format and report how many\n"
    "  -h, --help   this text\n"
    "\n"
    "exit status: 0 ok, 2 bad usage or bad input (the message names file, line, field)\n";

static json_t *stats_json(const char *path, const es_stats *s, const es_dup_stats *d, size_t skipped)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "file", path, "items",
                          (json_int_t)s->items, "samples", (json_int_t)s->samples, "samples_per_item",
                          s->samples_per_item, "single_em", s->single_em, "maj_em", s->maj_em, "oracle_em",
                          s->oracle_em, "tokens_per_item", s->tokens_per_item, "consistency_oracle_samples",
                          s->consistency_oracle_samples, "consistency_oracle_tokens",
                          s->consistency_oracle_tokens, "skipped", (json_int_t)skipped);
    if (o && s->text_items) {
        json_object_set_new(o, "text_items", json_integer((json_int_t)s->text_items));
        json_object_set_new(o, "maj_f1", json_real(s->maj_f1));
    }
    if (o) {
        /* null when no sample carries a text: nothing to compare */
        double rate = es_dup_rate(d);
        json_object_set_new(o, "duplicate_rate", d->text_samples ? json_real(rate) : json_null());
        json_object_set_new(o, "copy_pattern_items", json_integer((json_int_t)d->pattern_items));
        json_object_set_new(o, "copy_checked_items", json_integer((json_int_t)d->pattern_checked));
    }
    if (o && s->traces_with_probes) {
        json_object_set_new(o, "traces_with_probes", json_integer((json_int_t)s->traces_with_probes));
        json_object_set_new(o, "probes_per_trace", json_real(s->probes_per_trace));
        json_object_set_new(o, "full_em", json_real(s->full_em));
        json_object_set_new(o, "stable_final_tokens", json_real(s->stable_final_tokens));
    }
    return o;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void print_row(const char *path, const es_stats *s)
{
    printf("%-34s %6zu %6.2f %7.3f %7.3f %8.3f %11.1f %8.3f %9.1f", base_name(path), s->items,
           s->samples_per_item, s->single_em, s->maj_em, s->oracle_em, s->tokens_per_item,
           s->consistency_oracle_samples, s->consistency_oracle_tokens);
    if (s->text_items) printf("   maj F1 %.3f", s->maj_f1);
    if (s->traces_with_probes)
        printf("   probes/trace %.2f  full EM %.3f  stable-final tokens %.1f", s->probes_per_trace, s->full_em,
               s->stable_final_tokens);
    putchar('\n');
}

/*
 * es_traceset_load, plus the duplicate-text count of every item: the reader
 * hands out each item's texts (inside its parsed line, nothing copied), the
 * set keeps none of them, so memory does not grow with the texts.
 */
static int load_counting_dups(const char *path, unsigned flags, es_traceset **out, size_t *skipped,
                              es_dup_stats *dup, es_error *err)
{
    es_trace_reader *r = NULL;
    es_traceset *ts = NULL;
    es_dup *d = NULL;
    *out = NULL;
    int rc = es_trace_reader_open(path, flags & ~(unsigned)ES_READ_NO_TEXT, &r, err);
    if (rc) return rc;
    if (es_traceset_new(0, &ts) || es_dup_new(&d)) rc = es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    es_item item;
    size_t set_skipped = 0;
    while (rc == ES_OK && (rc = es_trace_reader_next(r, &item, err)) == ES_OK) {
        rc = es_traceset_add(ts, &item, err);
        if (rc) {   /* what a single line cannot show (a duplicate id): name the line */
            snprintf(err->file, sizeof err->file, "%s", path);
            err->line = es_trace_reader_line(r);
        }
        if (rc == ES_EFORMAT && (flags & ES_READ_SKIP_BAD)) {
            set_skipped++;
            rc = ES_OK;
        } else if (rc == ES_OK && es_dup_add_item(d, &item)) {
            rc = es_error_set(err, ES_ENOMEM, path, es_trace_reader_line(r), "", "out of memory");
        }
    }
    *skipped = es_trace_reader_skipped(r) + set_skipped;
    memset(dup, 0, sizeof *dup);
    if (d) es_dup_get(d, dup);
    es_dup_free(d);
    es_trace_reader_free(r);
    if (rc != ES_EOF) {
        es_traceset_free(ts);
        return rc;
    }
    *out = ts;
    return ES_OK;
}

static int stats_file(const char *path, unsigned flags, int as_json, int *printed_header)
{
    es_error err = {0};
    es_traceset *ts;
    size_t skipped = 0;
    es_dup_stats dup;
    int rc = load_counting_dups(path, flags, &ts, &skipped, &dup, &err);
    if (rc) return cli_report(&err, rc);
    es_stats s;
    rc = es_stats_compute(ts, &s);
    es_traceset_free(ts);
    if (rc) return cli_report(NULL, rc);
    if (skipped) fprintf(stderr, "earlystop stats: %s: skipped %zu bad item(s)\n", path, skipped);
    if (es_dup_suspicious(&dup)) {
        char msg[512];
        es_dup_describe(&dup, msg, sizeof msg);
        fprintf(stderr, "earlystop stats: warning: %s: %s\n", path, msg);
    }
    if (as_json) {
        json_t *o = stats_json(path, &s, &dup, skipped);
        if (!o) return cli_report(NULL, ES_ENOMEM);
        json_dumpf(o, stdout, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(10));
        putchar('\n');
        json_decref(o);
        return CLI_OK;
    }
    if (!*printed_header) {
        printf("%-34s %6s %6s %7s %7s %8s %11s %8s %9s\n", "file", "items", "k", "single", "maj@k", "oracle@k",
               "tokens/item", "c-oracle", "c-tokens");
        *printed_header = 1;
    }
    print_row(path, &s);
    return CLI_OK;
}

int cmd_stats(int argc, char **argv)
{
    int as_json = 0, nfiles = 0, printed = 0;
    unsigned flags = ES_READ_NO_TEXT;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage_text, stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--skip-bad")) flags |= ES_READ_SKIP_BAD;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("stats", "unknown option '%s'", argv[i]);
        else nfiles++;
    }
    if (!nfiles) return cli_usage_error("stats", "no trace file given");
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) continue;
        int rc = stats_file(argv[i], flags, as_json, &printed);
        if (rc) return rc;
    }
    return CLI_OK;
}
