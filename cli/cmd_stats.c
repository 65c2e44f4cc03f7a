/* cmd_stats.c - `earlystop stats FILE...`: summary figures per trace file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "earlystop_io.h"

static const char usage_text[] =
    "usage: earlystop stats [--json] [--skip-bad] [--threads N] [--max-line SIZE] FILE...\n"
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
    "columns (--json keys in brackets):\n"
    "  items        items in the file [items]\n"
    "  k            samples per item [samples_per_item]\n"
    "  single       EM of each item's first sample [single_em]\n"
    "  maj@k        EM of the majority vote over all k samples [maj_em]\n"
    "  oracle@k     share of items with at least one correct sample: the ceiling\n"
    "               of any answer-picking rule [oracle_em].  Not eval's\n"
    "               oracle:correctness row, which is the fewest first samples\n"
    "               whose running MAJORITY is correct (its EM counts items where\n"
    "               the majority is right at some point, so it lies between\n"
    "               maj@k and oracle@k)\n"
    "  tokens/item  mean tokens of all k samples [tokens_per_item]\n"
    "  c-oracle     consistency oracle, samples: the fewest first samples after\n"
    "               which the running majority already equals the full one and\n"
    "               stays [consistency_oracle_samples]\n"
    "  c-tokens     the same in tokens [consistency_oracle_tokens]\n"
    "\n"
    "options:\n"
    "  --json            one JSON object per file, one per line\n"
    "  --skip-bad        skip items that break the format; report how many and why\n"
    "                    (the first 5 reasons, as file:line: field: message)\n"
    "  --threads N       threads parsing the file (default: one per core, up to 4;\n"
    "                    capped at the cores; 1 = no helper thread)\n"
    "  --max-line SIZE   longest line accepted, e.g. 512M (default 256M): a longer\n"
    "                    one is an error (a binary file or /dev/zero is not read\n"
    "                    to the end of memory)\n"
    "  -h, --help        this text\n"
    "\n"
    "exit status: 0 ok, 1 I/O failure (an unreadable file, output that could not\n"
    "be written), 2 bad usage or bad input (the message names file, line, field)\n";

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


static void print_row(const char *path, const es_stats *s)
{
    printf("%-34s %6zu %6.2f %7.3f %7.3f %8.3f %11.1f %8.3f %9.1f", cli_base_name(path), s->items,
           s->samples_per_item, s->single_em, s->maj_em, s->oracle_em, s->tokens_per_item,
           s->consistency_oracle_samples, s->consistency_oracle_tokens);
    if (s->text_items) printf("   maj F1 %.3f", s->maj_f1);
    if (s->traces_with_probes)
        printf("   probes/trace %.2f  full EM %.3f  stable-final tokens %.1f", s->probes_per_trace, s->full_em,
               s->stable_final_tokens);
    putchar('\n');
}

/* Counts each item's duplicate texts as it is loaded (the set keeps none). */
static int count_dups(void *ctx, const es_item *item)
{
    return es_dup_add_item(ctx, item);
}

static int stats_file(const char *path, const es_read_opts *opts, int as_json, int *printed_header)
{
    es_error err = {0};
    es_traceset *ts;
    es_read_report rep;
    es_dup *d = NULL;
    if (es_dup_new(&d)) return cli_report(NULL, ES_ENOMEM);
    es_read_opts ro = *opts;
    ro.on_item = count_dups;
    ro.on_item_ctx = d;
    es_dup_stats dup;
    int rc = es_traceset_load_opts(path, &ro, &ts, &rep, &err);
    es_dup_get(d, &dup);
    es_dup_free(d);
    if (rc) return cli_report(&err, rc);
    size_t skipped = rep.skipped;
    es_stats s;
    rc = es_stats_compute(ts, &s);
    es_traceset_free(ts);
    if (rc) return cli_report(NULL, rc);
    cli_report_skips("stats", path, &rep);
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
    es_read_opts ro;
    es_read_opts_init(&ro);
    ro.flags = ES_READ_NO_TEXT;
    char **files = calloc((size_t)argc, sizeof *files);
    if (!files) return cli_report(NULL, ES_ENOMEM);
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            fputs(usage_text, stdout);
            free(files);
            return CLI_OK;
        }
        if (!strcmp(a, "--json")) as_json = 1;
        else if (!strcmp(a, "--skip-bad")) ro.flags |= ES_READ_SKIP_BAD;
        else if (!strcmp(a, "--threads")) {
            if (cli_parse_threads("stats", v, &ro.threads)) rc = CLI_USAGE;
            i++;
        } else if (!strcmp(a, "--max-line")) {
            if (cli_parse_size(v, 1, UINT64_MAX, &ro.max_line))
                rc = cli_usage_error("stats", "--max-line: '%s' is not a size in bytes >= 1 (suffix K, M or G allowed)",
                                     v ? v : "");
            i++;
        } else if (a[0] == '-' && a[1]) rc = cli_usage_error("stats", "unknown option '%s'", a);
        else files[nfiles++] = argv[i];
    }
    if (rc == CLI_OK && !nfiles) rc = cli_usage_error("stats", "no trace file given");
    for (int i = 0; i < nfiles && rc == CLI_OK; i++) rc = stats_file(files[i], &ro, as_json, &printed);
    free(files);
    return rc;
}
