/* cmd_cues.c - `earlystop cues FILE`: mark paragraph-end probes with the
 * cues their paragraphs show (es_paragraph_cues), so that the learned
 * stopper's p_conclude / p_check / p_end features can read them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "grow.h"
#include "earlystop_io.h"

static const char usage_text[] =
    "usage: earlystop cues FILE [--out OUT] [--json]\n"
    "\n"
    "Mark each probe of a trace file with the text cues of the paragraph it\n"
    "ends (docs/trace-format.md, \"Probe cues\"): `conclude` (the paragraph\n"
    "states a conclusion: \"Therefore\", \"the answer is\"), `check` (it begins a\n"
    "re-check: \"Wait\", \"Let me double-check\") and `end` (the thinking closes\n"
    "right after it).  For probes made at paragraph ends, as in the *_think\n"
    "files: the reasoning is the text before </think>, its paragraphs are split\n"
    "at blank lines, and a sample's n probes are its last n paragraphs.  A\n"
    "sample with more probes than paragraphs, or without text, is left as it\n"
    "was (counted), and so is one whose probes carry a cost (even 0) or a\n"
    "confidence: those are forced answers made every P tokens (`record`,\n"
    "`generate`) or line probes (`generate --probe-every lines`, cued by their\n"
    "line already), not paragraph ends.  The learned stopper reads the cues as p_conclude, p_check\n"
    "and p_end (docs/learning.md); a file without them leaves those missing.\n"
    "\n"
    "options:\n"
    "  --out OUT     write there (replaced only when the run succeeds; default:\n"
    "                standard output)\n"
    "  --json        the counts as one JSON object on stdout (needs --out)\n"
    "  -h, --help    this text\n"
    "\n"
    "exit status: 0 ok, 1 I/O failure, 2 bad usage or bad input (the message\n"
    "names file, line and field)\n";

typedef struct cue_counts {
    size_t items, samples, marked, no_text, forced, unaligned, probes, conclude, check, end;
} cue_counts;

/* The reader's header with a note of what was added. */
static char *cued_header(const char *header)
{
    json_t *h = header ? json_loads(header, 0, NULL) : json_object();
    if (!h || !json_is_object(h)) {
        json_decref(h);
        h = json_object();
    }
    json_object_set_new(h, "probe_cues", json_string(ES_PROBE_CUES_NOTE));
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    return s;
}

/* Copies the item's samples and probes (reader-owned) with cues set.  The
 * buffers grow to the largest item seen. */
typedef struct cue_buf {
    es_sample *samples;
    es_probe *probes;
    uint32_t *cues;
    size_t samples_cap, probes_cap, cues_cap;
} cue_buf;

/* A probe with a cost (even 0) or a confidence is not a paragraph end: a
 * forced answer made every P tokens (`record`, `generate`), or a line probe
 * (`generate --probe-every lines`, cost 0, cued already by its line).  Its
 * sample is left alone rather than given the cues of paragraphs it does not
 * end.  Paragraph probes (the *_think files, `record --probe-at
 * paragraphs`) carry no cost field (-1). */
static int forced_probes(const es_sample *s)
{
    for (size_t j = 0; j < s->n_probes; j++)
        if (s->probes[j].cost >= 0 || s->probes[j].confidence == s->probes[j].confidence) return 1;
    return 0;
}

static int mark_item(const es_item *in, es_item *out, cue_buf *b, cue_counts *c)
{
    size_t np = 0;
    for (size_t i = 0; i < in->n_samples; i++) np += in->samples[i].n_probes;
    if (es_grow((void **)&b->samples, &b->samples_cap, in->n_samples, sizeof *b->samples) ||
        es_grow((void **)&b->probes, &b->probes_cap, np, sizeof *b->probes) ||
        es_grow((void **)&b->cues, &b->cues_cap, np, sizeof *b->cues))
        return ES_ENOMEM;
    *out = *in;
    out->samples = b->samples;
    es_probe *p = b->probes;
    for (size_t i = 0; i < in->n_samples; i++) {
        const es_sample *s = &in->samples[i];
        b->samples[i] = *s;
        if (!s->n_probes) continue;
        memcpy(p, s->probes, s->n_probes * sizeof *p);
        b->samples[i].probes = p;
        c->samples++;
        if (!s->text) c->no_text++;
        else if (forced_probes(s)) c->forced++;
        else if (es_paragraph_cues(s->text, s->n_probes, b->cues)) c->unaligned++;
        else {
            c->marked++;
            for (size_t j = 0; j < s->n_probes; j++) {
                p[j].cues = b->cues[j];
                c->probes++;
                c->conclude += (b->cues[j] & ES_CUE_CONCLUDE) != 0;
                c->check += (b->cues[j] & ES_CUE_CHECK) != 0;
                c->end += (b->cues[j] & ES_CUE_END) != 0;
            }
        }
        p += s->n_probes;
    }
    c->items++;
    return ES_OK;
}

static int mark_all(es_trace_reader *r, es_outfile *of, cue_counts *c, es_error *err)
{
    char *header = cued_header(es_trace_reader_header(r));
    if (!header) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    es_trace_writer *w = NULL;
    int rc = es_trace_writer_open(es_outfile_fp(of), header, &w, err);
    free(header);
    cue_buf b = {0};
    es_item in, out;
    while (rc == ES_OK && (rc = es_trace_reader_next(r, &in, err)) == ES_OK) {
        rc = mark_item(&in, &out, &b, c);
        if (rc == ES_ENOMEM) es_error_set(err, rc, "", 0, "", "out of memory");
        else rc = es_trace_writer_write(w, &out, err);
    }
    if (rc == ES_EOF) rc = ES_OK;
    int frc = w ? es_trace_writer_free(w) : ES_OK;
    if (rc == ES_OK && frc) rc = es_error_set(err, frc, es_outfile_name(of), 0, "", "write failed: %s", strerror(errno));
    free(b.samples);
    free(b.probes);
    free(b.cues);
    return rc;
}

static void print_counts(const char *path, const cue_counts *c, int json)
{
    if (json) {
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "file", path, "items",
                              (json_int_t)c->items, "samples_with_probes", (json_int_t)c->samples, "marked",
                              (json_int_t)c->marked, "no_text", (json_int_t)c->no_text, "forced",
                              (json_int_t)c->forced, "unaligned", (json_int_t)c->unaligned, "probes",
                              (json_int_t)c->probes, "conclude", (json_int_t)c->conclude, "check",
                              (json_int_t)c->check, "end", (json_int_t)c->end);
        if (o) json_dumpf(o, stdout, JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(o);
        return;
    }
    fprintf(stderr,
            "earlystop cues: %s: %zu items; %zu of %zu samples with probes marked (%zu without text, %zu with "
            "forced or line probes, %zu with more probes than paragraphs); %zu probes: %zu conclude, %zu check, "
            "%zu end\n",
            path, c->items, c->marked, c->samples, c->no_text, c->forced, c->unaligned, c->probes, c->conclude, c->check, c->end);
}

int cmd_cues(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage_text, stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("cues", "unknown option or missing value: '%s'", argv[i]);
        else if (in) return cli_usage_error("cues", "one input file at a time (got '%s' and '%s')", in, argv[i]);
        else in = argv[i];
    }
    if (!in) return cli_usage_error("cues", "no input file (earlystop cues --help)");
    if (json && (!out || !strcmp(out, "-"))) return cli_usage_error("cues", "--json writes the counts to stdout: give --out FILE");
    es_error err;
    memset(&err, 0, sizeof err);
    const char *inputs[] = {in, NULL};
    es_outfile *of = NULL;
    int rc = es_outfile_open(out ? out : "-", inputs, &of, &err);
    if (rc) {
        snprintf(err.field, sizeof err.field, "--out");
        return cli_report(&err, rc);
    }
    es_trace_reader *r = NULL;
    rc = es_trace_reader_open(in, 0, &r, &err);
    cue_counts c = {0};
    if (!rc) rc = mark_all(r, of, &c, &err);
    es_trace_reader_free(r);
    if (!rc) rc = es_outfile_commit(of, &err);
    else es_outfile_abort(of);
    if (rc) return cli_report(&err, rc);
    print_counts(in, &c, json);
    return CLI_OK;
}
