/* cmd_generate.c - `earlystop generate`: record traces (trace format v1) from
 * the built-in model, with probes, confidences and exact token counts. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_lm.h"
#include "lm_cli.h"

typedef struct gen_cli {
    lm_gen_opts g;
    const char *out;
    int json, no_text;
} gen_cli;

/* What one sample left behind; filled by one thread, written by the main. */
typedef struct slot {
    es_lm_sample_result res;
    char *text;
    es_probe *probes;
    char (*pans)[32];
    uint32_t n_probes, cap;
} slot;

/* States the stream contract, since `run` relies on it. */
static void generate_help(void)
{
    lm_gen_opts def;
    lm_gen_opts_init(&def, 100);
    printf("usage: earlystop generate [--model M] --task T [--items N] [--samples K]\n"
           "                          [--probe-every P] [--seed S] [--out F] [options]\n\n"
           "Sample chains of thought from the built-in model on fresh generated questions\n"
           "and write them as trace format v1, with a probe every P tokens (answer,\n"
           "confidence, window_confidence, cost).  Sample i of item j draws from the\n"
           "random stream of (seed, j, i) only, so `earlystop run` with the same seed\n"
           "draws the same samples.\n\n");
    lm_gen_opts_help(stdout, &def);
    printf("  --out F           trace file to write, - = stdout (default -); F is replaced\n"
           "                    only when the run succeeds\n"
           "  --no-text         leave the sample texts out\n"
           "  --json            summary as JSON on stdout (needs --out FILE)\n");
}

/* Exit 2 with the option named on any bad value. */
static int generate_parse(int argc, char **argv, gen_cli *o)
{
    memset(o, 0, sizeof *o);
    lm_gen_opts_init(&o->g, 100);
    o->out = "-";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = lm_gen_opt("generate", argc, argv, &i, &o->g);
        if (r < 0) return CLI_USAGE;
        if (r) continue;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--no-text")) o->no_text = 1;
        else if (!strcmp(a, "--out") && i + 1 < argc) o->out = argv[++i];
        else return cli_usage_error("generate", "unknown option or missing value: '%s'", a);
    }
    if (lm_gen_opts_check("generate", &o->g)) return CLI_USAGE;
    if (o->json && !strcmp(o->out, "-"))
        return cli_usage_error("generate", "--json writes the summary to stdout: give --out FILE");
    return 0;
}

/* Copies the probe into the sample's slot; answers are copied because the
 * generator reuses its buffer. */
static int slot_on_probe(void *ctx, const es_lm_probe *p)
{
    slot *s = ctx;
    if (s->n_probes >= s->cap) return ES_CONTINUE;
    es_probe *q = &s->probes[s->n_probes];
    memcpy(s->pans[s->n_probes], p->answer, sizeof s->pans[0]);
    q->at = p->at;
    q->answer = p->has_answer ? s->pans[s->n_probes] : NULL;
    q->confidence = p->confidence;
    q->window_confidence = p->window_confidence;
    q->cost = p->cost;
    q->cues = p->cues; /* a text probe's (--probe-every lines); 0 for a forced one */
    s->n_probes++;
    return ES_CONTINUE;
}

/* One slot per sample with room for every probe a context can hold, so the
 * item loop allocates nothing. */
static int slots_new(slot **out, long k, int seq_len, long probe_every)
{
    slot *s = calloc((size_t)k, sizeof *s);
    if (!s) return ES_ENOMEM;
    uint32_t cap = probe_every > 0 ? (uint32_t)(seq_len / probe_every + 2) : 1;
    for (long i = 0; i < k; i++) {
        s[i].cap = cap;
        s[i].text = malloc((size_t)seq_len + 1);
        s[i].probes = calloc(cap, sizeof *s[i].probes);
        s[i].pans = calloc(cap, sizeof *s[i].pans);
        if (!s[i].text || !s[i].probes || !s[i].pans) { *out = s; return ES_ENOMEM; }
    }
    *out = s;
    return ES_OK;
}

/* Tolerates a partly built array (allocation failure midway). */
static void slots_free(slot *s, long k)
{
    for (long i = 0; s && i < k; i++) { free(s[i].text); free(s[i].probes); free(s[i].pans); }
    free(s);
}

/* Samples run at once: enough to share each weight load (matrix-matrix
 * products), few enough that their caches (1 MiB each at the shipped shape)
 * stay in the last-level cache; 8 measured best on the 2-core machine
 * (docs/model.md, Speed). */
#define GEN_BATCH 8

/* What es_lm_gen_sample_batch takes per sample, for one item. */
typedef struct draws {
    es_rng *rngs;
    es_lm_gen_hooks *hooks;
    es_lm_sample_result *res;
} draws;

/* All samples of one item in one call: GEN_BATCH run in lock-step (each
 * weight row loaded once per step for all of them, the kernels split over
 * the threads), a finished sample's lane taking the next.  Each sample's
 * stream is (seed, item, sample) and a batch gives the bytes of one sample at
 * a time, so neither the batch nor the threads change a byte. */
static int draw_item(es_lm_gen *g, slot *slots, const draws *d, long k, const char *prompt, uint64_t seed,
                     uint64_t item)
{
    for (long i = 0; i < k; i++) {
        slots[i].n_probes = 0;
        d->hooks[i] = (es_lm_gen_hooks){NULL, slot_on_probe, NULL, &slots[i]};
        es_lm_sample_rng(&d->rngs[i], seed, item, (uint64_t)i);
    }
    int rc = es_lm_gen_sample_batch(g, prompt, d->rngs, d->hooks, d->res, (int)k);
    if (rc) return rc;
    for (long i = 0; i < k; i++) {
        slot *s = &slots[i];
        s->res = d->res[i];
        snprintf(s->text, strlen(d->res[i].text) + 1, "%s", d->res[i].text);
        s->res.text = s->text;
    }
    return ES_OK;
}

/* Maps the slots onto es_item for the shared trace writer. */
static int write_item(es_trace_writer *w, const gen_cli *o, const es_task_example *ex,
                      long j, slot *slots, es_sample *samples, es_error *err)
{
    char id[64], question[ES_TASK_TEXT_CAP];
    snprintf(id, sizeof id, "%s-%05ld", es_task_name(o->g.task), j);
    snprintf(question, sizeof question, "%s", ex->prompt);
    question[strcspn(question, "\n")] = '\0';
    const char *gold[1] = {ex->gold};
    for (long i = 0; i < o->g.samples; i++) {
        const slot *s = &slots[i];
        samples[i].answer = s->res.has_answer ? s->res.answer : NULL;
        samples[i].tokens = s->res.tokens;
        samples[i].confidence = s->res.confidence;
        samples[i].text = o->no_text ? NULL : s->text;
        samples[i].n_probes = s->n_probes;
        samples[i].probes = s->probes;
    }
    es_item it = {id, es_task_name(o->g.task), question, es_task_answer_type(o->g.task),
                  1, gold, (size_t)o->g.samples, samples};
    return es_trace_writer_write(w, &it, err);
}

/* The header records model, shape, seed, temperature and probe cue: what
 * is needed to regenerate or interpret the file. */
static int open_out(const gen_cli *o, const es_lm *m, es_outfile **of, es_trace_writer **w, es_error *err)
{
    /* written beside and renamed on success: a failed run leaves the old file */
    const char *inputs[] = {o->g.model, NULL};
    int rc = es_outfile_open(o->out, inputs, of, err);
    if (rc) return rc;
    const es_lm_config *c = es_lm_get_config(m);
    char probes[256], hdr[1280];
    if (o->g.probe_lines)
        snprintf(probes, sizeof probes,
                 "\"probes\":\"text proxy at each line end: the answer written so far (the last "
                 "'So the answer is X'), no cost; cues of the line\"");
    else
        snprintf(probes, sizeof probes, "\"probe_every\":%ld,\"probe_cue\":\"So the answer is \"", o->g.probe_every);
    snprintf(hdr, sizeof hdr,
             "{\"model\":\"earlystop built-in (%s)\",\"params\":%zu,\"shape\":\"dim %d, hidden %d, "
             "layers %d, heads %d, seq %d\",\"tokenizer\":\"characters (tokens are exact)\","
             "\"source\":\"earlystop generate\",\"task\":\"%s\",\"seed\":%ld,\"temperature\":%g,"
             "%s,\"window\":32,"
             "\"answer_extraction\":\"text after the last 'So the answer is ' up to '.'\"}",
             o->g.model, es_lm_n_params(m), c->dim, c->hidden_dim, c->n_layers, c->n_heads,
             c->seq_len, es_task_name(o->g.task), o->g.seed, o->g.temperature, probes);
    return es_trace_writer_open(es_outfile_fp(*of), hdr, w, err);
}

/* Items in order (the file is deterministic); samples of an item in parallel. */
static int generate_loop(const gen_cli *o, const es_lm *m, es_lm_gen *gen, slot *slots, const draws *d,
                         es_sample *samples, es_trace_writer *w, lm_summary *sum, es_error *err)
{
    for (long j = o->g.start; j < o->g.start + o->g.items; j++) {
        es_task_example ex;
        int rc = es_task_make(o->g.task, (uint64_t)o->g.seed, (uint64_t)j, &ex);
        if (!rc) rc = draw_item(gen, slots, d, o->g.samples, ex.prompt, (uint64_t)o->g.seed, (uint64_t)j);
        if (rc) return es_error_set(err, rc, NULL, 0, "item", "item %ld: generation failed", j);
        if ((rc = write_item(w, o, &ex, j, slots, samples, err)) != 0) return rc;
        if ((rc = lm_summary_add(sum, o->g.task, ex.gold, samples, (size_t)o->g.samples, err)) != 0) return rc;
        cli_progress("generate", (size_t)(j - o->g.start + 1), (size_t)o->g.items);
    }
    cli_progress_end();
    return ES_OK;
}

/* One batched generator on the thread pool; everything allocated before the
 * first item. */
int cmd_generate(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) { generate_help(); return CLI_OK; }
    gen_cli o;
    int rc = generate_parse(argc, argv, &o);
    if (rc) return rc;
    es_lm_pool *pool = NULL;
    if ((rc = lm_pool_open("generate", o.g.threads, &pool)) != 0) return rc;
    es_error err;
    memset(&err, 0, sizeof err);
    es_lm *m = NULL;
    char model_buf[4096];
    o.g.model = lm_model_path(o.g.model, model_buf, sizeof model_buf);
    if ((rc = es_lm_load(o.g.model, &m, &err)) != 0) {
        es_lm_pool_free(pool);
        return cli_report(&err, rc);
    }
    es_lm_gen_opts go;
    es_lm_gen_opts_default(&go);
    go.temperature = (float)o.g.temperature;
    go.probe_every = (int)o.g.probe_every;
    go.probe_lines = o.g.probe_lines;
    go.batch = o.g.samples < GEN_BATCH ? (int)o.g.samples : GEN_BATCH;
    go.pool = pool;
    es_lm_gen *gen = NULL;
    slot *slots = NULL;
    size_t k = (size_t)o.g.samples;
    draws d = {calloc(k, sizeof(es_rng)), calloc(k, sizeof(es_lm_gen_hooks)), calloc(k, sizeof(es_lm_sample_result))};
    es_sample *samples = calloc((size_t)o.g.samples, sizeof *samples);
    es_outfile *of = NULL;
    es_trace_writer *w = NULL;
    lm_summary sum;
    lm_summary_init(&sum);
    double t0 = es_wall_seconds();
    rc = es_lm_gen_new(m, &go, &gen, &err);
    if (!rc && (!samples || !d.rngs || !d.hooks || !d.res ||
                slots_new(&slots, o.g.samples, es_lm_get_config(m)->seq_len, o.g.probe_lines ? 1 : o.g.probe_every)))
        rc = es_error_set(&err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
    if (!rc) rc = open_out(&o, m, &of, &w, &err);
    if (!rc) rc = generate_loop(&o, m, gen, slots, &d, samples, w, &sum, &err);
    if (w && es_trace_writer_free(w) && !rc) {
        rc = es_error_set(&err, ES_EIO, es_outfile_name(of), 0, NULL, "write failed: %s", strerror(errno));
        clearerr(es_outfile_fp(of)); /* said here: not again at exit for stdout */
    }
    if (rc == ES_EIO && of && !err.file[0]) snprintf(err.file, sizeof err.file, "%s", es_outfile_name(of));
    if (!rc) rc = es_outfile_commit(of, &err);
    else es_outfile_abort(of);
    if (!rc) lm_summary_print(&sum, o.g.task, o.g.samples, es_wall_seconds() - t0, o.json, strcmp(o.out, "-") ? stdout : stderr);
    es_lm_gen_free(gen);
    free(d.rngs);
    free(d.hooks);
    free(d.res);
    free(samples);
    slots_free(slots, o.g.samples);
    es_lm_free(m);
    es_lm_pool_free(pool);
    return rc ? cli_report(&err, rc) : CLI_OK;
}
