/*
 * fuzz_import.c - libFuzzer target for `earlystop import`: the input bytes
 * are one record line, converted by four importers (string samples with
 * regex extraction and a gold regex; object samples with answer, token and
 * id fields; string samples with the boxed extractor, gold scores, first
 * match, --max-samples and parallel token arrays; parallel answer arrays
 * through the boxed extractor) and written through the trace writer.  Any crash, leak or
 * sanitizer report is a bug; errors are expected.
 *
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address) with the core,
 * replay and io layers (scripts/fuzz.sh), jansson and pcre2-8.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write the item the way the CLI would, into memory. */
static void write_item(es_importer *im, const es_item *item)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return;
    es_trace_writer *w = NULL;
    es_error err;
    if (es_trace_writer_open(fp, es_importer_header(im), &w, &err) == ES_OK) {
        es_trace_writer_write(w, item, &err);
        es_trace_writer_free(w);
    }
    fclose(fp);
    free(buf);
}

/* One importer configuration over the line. */
static void run(const es_import_opts *o, const uint8_t *data, size_t size)
{
    es_importer *im = NULL;
    es_error err;
    if (es_importer_new(o, &im, &err) != ES_OK) abort();   /* options are fixed and valid */
    es_item item;
    if (es_importer_record(im, (const char *)data, size, &item, &err) == ES_OK) {
        for (size_t i = 0; i < item.n_samples; i++)   /* touch every string */
            if (item.samples[i].answer && !item.samples[i].answer[0]) abort();
        write_item(im, &item);
    } else {
        char msg[1024];
        es_error_format(&err, msg, sizeof msg);
    }
    es_importer_free(im);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    es_import_opts a;
    es_import_opts_init(&a);
    a.samples_path = "generated_answer";
    a.gold_path = "answer";
    a.gold_regex = "####\\s*(\\S+)|^(.*)$";
    a.question_path = "question";
    a.answer_regex = "[Tt]he answer is\\s*\"?'?([A-Za-z]+)";
    a.flags = ES_IMPORT_LOWER;
    run(&a, data, size);

    es_import_opts b;
    es_import_opts_init(&b);
    b.id_path = "id";
    b.id_prefix = "x-";
    b.id_digits = 3;
    b.samples_path = "s[].t";
    b.gold_path = "g";
    b.answer_path = "a.v[0]";
    b.answer_regex = "(\\d+)";
    b.tokens_path = "n";
    b.answer_type = ES_ANSWER_NUMBER;
    run(&b, data, size);

    es_import_opts c;
    es_import_opts_init(&c);
    c.id_path = "id";
    c.samples_path = "s";
    c.gold_scores_path = "g";
    c.answer_extract = "boxed";
    c.tokens_path = "n";
    c.max_samples = 3;
    c.flags = ES_IMPORT_FIRST_MATCH | ES_IMPORT_LOWER;
    run(&c, data, size);

    es_import_opts d;
    es_import_opts_init(&d);
    d.samples_path = "s";
    d.gold_path = "g";
    d.gold_regex = "\\\\boxed\\{(.*)\\}";
    d.answer_path = "a";
    d.answer_extract = "boxed";
    d.flags = ES_IMPORT_NO_TEXT;
    run(&d, data, size);
    return 0;
}
