/* record.c - `earlystop record`: trace files (format v1) from any
 * OpenAI-compatible engine, so that users replay and tune stopping rules on
 * their own model and traffic.
 *
 * Each question's samples are drawn as the proxy draws them (sample.c: one
 * stream each, seed + j * 1024 + i, usage and logprobs in every chunk) and
 * probed at every point (every P tokens, and at a cut at the token limit, as
 * `earlystop generate` does), or with --probe-at paragraphs at each
 * paragraph end of the reasoning (the answer written so far, read off the
 * text as the sample streams: sample.c); nothing is stopped.  A sample's record: its
 * answer (the family's rule), tokens, text, mean token probability, and
 * its probes with their answers, confidences and costs.  Samples of many
 * questions are in flight at once (--concurrency); items are written in
 * the order of the questions file, through es_outfile (a failed run leaves
 * an old file as it was).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_io.h"
#include "sample.h"

typedef struct ritem {
    char *id, *task, *question;
    char **gold;
    size_t n_gold;
    es_answer_type type;
    es_sv_target t;
    es_sv_sample *sm;
    int launched, finished, failed;
    char why[320];
} ritem;

typedef struct rec {
    const es_record_opts *o;
    es_sv_up *up;
    ritem *items;
    size_t n_items, next_launch, next_write;
    int in_flight;
    es_trace_writer *w;
    es_record_summary *sum;
    char first_why[400]; /* the first question left out, and why */
} rec;

void es_record_opts_init(es_record_opts *o)
{
    memset(o, 0, sizeof *o);
    o->chat = 1;
    o->samples = 1;
    o->probe_every = 32;
    o->temperature = NAN;
    o->concurrency = 16;
    o->default_type = ES_ANSWER_TEXT;
    es_family_get("generic", &o->family);
    o->connect_timeout = 10;
    o->idle_timeout = 120;
    o->request_timeout = 3600;
    o->stop_fd = -1;
}

static void item_free(ritem *it)
{
    free(it->id);
    free(it->task);
    free(it->question);
    for (size_t g = 0; g < it->n_gold; g++) free(it->gold[g]);
    free(it->gold);
    json_decref(it->t.base);
}

/* gold: a string, a number, or a non-empty list of them. */
static int read_gold(json_t *g, ritem *it)
{
    json_t *one[1] = {g};
    json_t **list = one;
    size_t n = 1;
    if (json_is_array(g)) {
        n = json_array_size(g);
        if (!n) return -1;
        list = NULL;
    }
    it->gold = calloc(n, sizeof *it->gold);
    if (!it->gold) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = list ? list[i] : json_array_get(g, i);
        char buf[64];
        if (json_is_string(v)) it->gold[i] = strdup(json_string_value(v));
        else if (json_is_integer(v)) snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v)), it->gold[i] = strdup(buf);
        else if (json_is_real(v)) snprintf(buf, sizeof buf, "%.17g", json_real_value(v)), it->gold[i] = strdup(buf);
        else return -1;
        if (!it->gold[i]) return -1;
        it->n_gold++;
    }
    return 0;
}

/* One line of the questions file into an item and its request body. */
static int read_question(rec *r, json_t *v, size_t line, ritem *it, es_error *err)
{
    const es_record_opts *o = r->o;
    const char *path = o->questions;
    if (!json_is_object(v)) return es_error_set(err, ES_EFORMAT, path, (long)line, NULL, "not a JSON object");
    json_t *id = json_object_get(v, "id"), *q = json_object_get(v, "question"), *pr = json_object_get(v, "prompt");
    json_t *msgs = json_object_get(v, "messages"), *gold = json_object_get(v, "gold");
    json_t *type = json_object_get(v, "answer_type"), *task = json_object_get(v, "task");
    json_t *mt = json_object_get(v, "max_tokens");
    char idbuf[32];
    if (json_is_integer(id)) snprintf(idbuf, sizeof idbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    else snprintf(idbuf, sizeof idbuf, "q%05zu", line - 1);
    it->id = strdup(json_is_string(id) ? json_string_value(id) : idbuf);
    it->task = strdup(json_is_string(task) ? json_string_value(task) : "");
    if (!gold || read_gold(gold, it))
        return es_error_set(err, ES_EFORMAT, path, (long)line, "gold", "needs \"gold\": a string, a number or a list");
    it->type = o->default_type;
    if (type && (!json_is_string(type) || es_answer_type_parse(json_string_value(type), &it->type)))
        return es_error_set(err, ES_EFORMAT, path, (long)line, "answer_type", "not one of text, number, date, choice, math");
    if (mt && (!json_is_integer(mt) || json_integer_value(mt) < 1))
        return es_error_set(err, ES_EFORMAT, path, (long)line, "max_tokens", "must be a whole number >= 1");
    json_t *body = json_object();
    if (o->model) json_object_set_new(body, "model", json_string(o->model));
    if (!isnan(o->temperature)) json_object_set_new(body, "temperature", json_real(o->temperature));
    int chat = o->chat;
    if (json_is_array(msgs)) {
        chat = 1;
        json_object_set(body, "messages", msgs);
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        it->question = strdup(json_is_string(json_object_get(last, "content")) ? json_string_value(json_object_get(last, "content")) : "");
    } else if (json_is_string(pr)) {
        chat = 0;
        json_object_set(body, "prompt", pr);
        it->question = strdup(json_string_value(pr));
    } else if (json_is_string(q)) {
        it->question = strdup(json_string_value(q));
        if (chat) json_object_set_new(body, "messages", json_pack("[{s:s,s:O}]", "role", "user", "content", q));
        else {
            size_t n = json_string_length(q);
            char *p = malloc(n + 2);
            if (p) {
                memcpy(p, json_string_value(q), n);
                p[n] = '\n';
                p[n + 1] = '\0';
                json_object_set_new(body, "prompt", json_string(p));
                free(p);
            }
        }
    } else {
        json_decref(body);
        return es_error_set(err, ES_EFORMAT, path, (long)line, NULL, "needs \"question\", \"prompt\" or \"messages\"");
    }
    it->t.base = body;
    it->t.up = r->up;
    it->t.chat = chat;
    it->t.fam = &o->family;
    it->t.has_seed = o->have_seed;
    it->t.seed = (int64_t)(o->seed + (uint64_t)(line - 1) * 1024u);
    it->t.max_tokens = mt ? (int)json_integer_value(mt) : o->max_tokens;
    it->t.top_k = 5;
    it->t.continuous_usage = 1;
    it->t.window = 32;
    it->t.paragraphs = o->probe_at == ES_PROBE_AT_PARAGRAPHS;
    it->t.answer_type = it->type;
    if (!it->id || !it->task || !it->question) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
    return ES_OK;
}

static int read_questions(rec *r, es_error *err)
{
    FILE *fp = strcmp(r->o->questions, "-") ? fopen(r->o->questions, "r") : stdin;
    if (!fp) return es_error_set(err, ES_EIO, r->o->questions, 0, NULL, "cannot open: %s", strerror(errno));
    size_t cap = 0, line = 0;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t got;
    int rc = ES_OK;
    while (!rc && (got = getline(&buf, &bcap, fp)) >= 0) {
        line++;
        size_t k = 0;
        while (k < (size_t)got && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r' || buf[k] == '\n')) k++;
        if (k == (size_t)got) continue;
        json_error_t je;
        json_t *v = json_loadb(buf, (size_t)got, 0, &je);
        if (!v) {
            rc = es_error_set(err, ES_EPARSE, r->o->questions, (long)line, NULL, "not JSON: %s", je.text);
            break;
        }
        if (r->n_items == cap) {
            cap = cap ? cap * 2 : 64;
            ritem *n = realloc(r->items, cap * sizeof *n);
            if (!n) {
                json_decref(v);
                rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
                break;
            }
            r->items = n;
        }
        ritem *it = &r->items[r->n_items++];
        memset(it, 0, sizeof *it);
        rc = read_question(r, v, line, it, err);
        json_decref(v);
    }
    free(buf);
    if (fp != stdin) fclose(fp);
    if (!rc && !r->n_items) rc = es_error_set(err, ES_EFORMAT, r->o->questions, 0, NULL, "no questions");
    return rc;
}

static int is_length(const es_sv_sample *s) { return !strcmp(s->finish, "length"); }

/* Every point the sample passed gets its probe, as generate makes them. */
static void probe_points(rec *r, es_sv_sample *s)
{
    uint32_t every = (uint32_t)r->o->probe_every;
    if (!every || r->o->probe_at == ES_PROBE_AT_PARAGRAPHS) return;
    for (uint32_t k = 0;; k++) {
        uint32_t at = (k + 1) * every;
        int reached = s->n > at || (s->state == SAMPLE_DONE && is_length(s) && s->n >= at);
        if (!reached) break;
        if (k >= s->n_points || s->probes[k].state == PROBE_NONE) es_sv_sample_probe(s, k, at);
    }
}

static int sample_complete(const es_sv_sample *s)
{
    if (s->state != SAMPLE_DONE) return s->state == SAMPLE_FAILED;
    for (uint32_t k = 0; k < s->n_points; k++)
        if (s->probes[k].state == PROBE_RUNNING) return 0;
    return 1;
}

static int write_item(rec *r, ritem *it, es_error *err)
{
    int K = r->o->samples;
    es_sample *samples = calloc((size_t)K, sizeof *samples);
    es_probe **probes = calloc((size_t)K, sizeof *probes);
    char (*ans)[128] = calloc((size_t)K, sizeof *ans);
    int rc = samples && probes && ans ? ES_OK : es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
    for (int i = 0; !rc && i < K; i++) {
        es_sv_sample *s = &it->sm[i];
        int has = es_family_sample_answer(&r->o->family, s->text.p ? s->text.p : "", ans[i], sizeof ans[i]);
        uint32_t np = s->n_points;
        probes[i] = calloc(np ? np : 1, sizeof **probes);
        if (!probes[i]) {
            rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
            break;
        }
        for (uint32_t k = 0; k < np; k++) {
            const es_sv_probe *p = &s->probes[k];
            /* a paragraph probe costs nothing and says so as the *_think files do: no cost */
            probes[i][k] = (es_probe){p->at, p->state == PROBE_DONE && p->has_answer ? p->answer : NULL,
                                      isnan(p->confidence) ? NAN : p->confidence,
                                      isnan(p->window_confidence) ? NAN : p->window_confidence,
                                      p->is_free ? -1 : (int32_t)es_sv_probe_cost(p), p->cues};
            r->sum->probes++;
            r->sum->probe_tokens += es_sv_probe_cost(p);
        }
        float c = es_sv_sample_confidence(s);
        samples[i] = (es_sample){has ? ans[i] : NULL, s->n, isnan(c) ? NAN : c, s->text.p ? s->text.p : "", np, probes[i]};
        r->sum->samples++;
        r->sum->tokens += s->n;
    }
    if (!rc) {
        es_item item = {it->id, it->task, it->question, it->type, it->n_gold, (const char *const *)it->gold,
                        (size_t)K, samples};
        rc = es_trace_writer_write(r->w, &item, err);
        r->sum->items++;
    }
    for (int i = 0; probes && i < K; i++) free(probes[i]);
    free(probes);
    free(samples);
    free(ans);
    return rc;
}

/* Done items in file order; a failed item is reported and left out. */
static int write_ready(rec *r, es_error *err)
{
    while (r->next_write < r->n_items) {
        ritem *it = &r->items[r->next_write];
        if (!it->failed && it->finished < r->o->samples) break;
        int rc = ES_OK;
        if (it->failed) {
            if (!r->sum->failed++) snprintf(r->first_why, sizeof r->first_why, "%.60s: %s", it->id, it->why);
            if (r->o->log) fprintf(r->o->log, "earlystop record: %s: left out: %s\n", it->id, it->why);
        } else {
            rc = write_item(r, it, err);
        }
        for (int i = 0; it->sm && i < r->o->samples; i++) es_sv_sample_release(&it->sm[i]);
        free(it->sm);
        it->sm = NULL;
        r->next_write++;
        if (r->o->progress)
            fprintf(r->o->progress, "earlystop record: %zu/%zu questions\n", r->next_write, r->n_items), fflush(r->o->progress);
        if (rc) return rc;
    }
    return ES_OK;
}

/* More samples in flight, up to the concurrency, questions in order. */
static void launch(rec *r)
{
    while (r->in_flight < r->o->concurrency && r->next_launch < r->n_items) {
        ritem *it = &r->items[r->next_launch];
        if (!it->sm) {
            it->sm = calloc((size_t)r->o->samples, sizeof *it->sm);
            for (int i = 0; it->sm && i < r->o->samples; i++) es_sv_sample_init(&it->sm[i], &it->t, i, it);
            if (!it->sm) {
                it->failed = 1;
                snprintf(it->why, sizeof it->why, "out of memory");
                r->next_launch++;
                continue;
            }
        }
        if (it->launched == r->o->samples) {
            r->next_launch++;
            continue;
        }
        if (es_sv_sample_start(&it->sm[it->launched])) {
            it->failed = 1;
            snprintf(it->why, sizeof it->why, "out of memory");
        }
        it->launched++;
        r->in_flight++;
    }
}

static void on_call(es_sv_call *c, void *ctx)
{
    rec *r = ctx;
    es_sv_sample *s = c->owner;
    ritem *it = s->owner;
    int was = sample_complete(s);
    if (c->kind == ES_SV_CALL_SAMPLE) es_sv_sample_on_call(s, c);
    else if (c->tag < s->n_points) es_sv_probe_on_call(&s->probes[c->tag], c);
    if (s->state == SAMPLE_FAILED && !it->failed) {
        it->failed = 1;
        snprintf(it->why, sizeof it->why, "sample %d: %s%s%.120s", s->index, s->err_msg, s->err_body.n ? ": " : "",
                 s->err_body.n ? s->err_body.p : "");
    }
    probe_points(r, s);
    if (!was && sample_complete(s)) {
        it->finished++;
        r->in_flight--;
    }
}

/* How a paragraph probe reads the answer, for the header. */
static const char *paragraph_reading(const es_family *f)
{
    return f->boxed ? "text proxy, not a forced answer: at each paragraph end of the reasoning (the text before "
                      "</think>), the answer written so far: number, the last number; math, the last \\boxed{} "
                      "else the last number; other types, the last \\boxed{}; 'at' = the tokens up to there"
                    : "text proxy, not a forced answer: at each paragraph end of the reasoning (the text before "
                      "</think>, all of it when there is none), the answer written so far: number, the last number; "
                      "math, the text after the last answer cue up to '.' else the last number; other types, the "
                      "text after the last answer cue up to '.'; 'at' = the tokens up to there";
}

static int open_writer(rec *r, es_outfile *of, es_error *err)
{
    const es_record_opts *o = r->o;
    int para = o->probe_at == ES_PROBE_AT_PARAGRAPHS;
    json_t *h = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "source", "earlystop record", "upstream", o->upstream,
                          "model", o->model ? o->model : "", "endpoint", o->chat ? "chat" : "completions", "samples",
                          o->samples, "family", o->family.name, "answer_extraction",
                          o->family.boxed ? "the last \\boxed{} of the sample; probes: the box after the cue"
                                          : "text after the last answer cue up to '.'");
    if (h) json_object_set_new(h, "probe_at", json_string(es_probe_at_name(o->probe_at)));
    if (h && para) {
        json_object_set_new(h, "probes", json_string(paragraph_reading(&o->family)));
        json_object_set_new(h, "probe_cues", json_string(ES_PROBE_CUES_NOTE));
    } else if (h) {
        json_object_set_new(h, "probe_every", json_integer(o->probe_every));
        json_object_set_new(h, "probe_cue", json_string(o->family.probe_cue));
    }
    if (!h) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
    if (!isnan(o->temperature)) json_object_set_new(h, "temperature", json_real(o->temperature));
    if (o->have_seed) json_object_set_new(h, "seed", json_integer((json_int_t)o->seed));
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    int rc = hs ? es_trace_writer_open(es_outfile_fp(of), hs, &r->w, err) : ES_ENOMEM;
    free(hs);
    return rc;
}

int es_record_run(const es_record_opts *o, es_record_summary *sum, es_error *err)
{
    memset(sum, 0, sizeof *sum);
    if (o->samples < 1 || o->concurrency < 1 || o->probe_every < 0)
        return es_error_set(err, ES_EINVAL, NULL, 0, NULL, "samples and concurrency must be >= 1");
    rec r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.sum = sum;
    double t0 = es_sv_now();
    es_outfile *of = NULL;
    const char *inputs[] = {o->questions, NULL};
    int rc = es_outfile_open(o->out, inputs, &of, err);
    if (!rc) rc = es_sv_up_new(o->upstream, o->upstream_key, o->connect_timeout, o->idle_timeout, o->request_timeout,
                               o->concurrency * 4 + 4, &r.up, err);
    if (!rc) rc = read_questions(&r, err);
    if (!rc) rc = open_writer(&r, of, err);
    if (!rc && o->stop_fd >= 0 && es_sv_up_watch(r.up, o->stop_fd, 0))
        rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "event loop: %s", strerror(errno));
    while (!rc && r.next_write < r.n_items) {
        launch(&r);
        unsigned ready = 0;
        if (es_sv_up_wait(r.up, 500, &ready)) {
            rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "event loop: %s", strerror(errno));
            break;
        }
        if (ready & 1u) {
            rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "interrupted after %zu of %zu questions", r.next_write, r.n_items);
            break;
        }
        es_sv_up_dispatch(r.up, on_call, &r);
        rc = write_ready(&r, err);
    }
    if (r.w && es_trace_writer_free(r.w) && !rc) rc = es_error_set(err, ES_EIO, o->out, 0, NULL, "write failed");
    /* nothing recorded: a failure, and the file a previous run wrote stays */
    if (!rc && !sum->items && sum->failed)
        rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "every question failed upstream (the first, %s)", r.first_why);
    if (!rc) rc = es_outfile_commit(of, err);
    else es_outfile_abort(of);
    for (size_t i = 0; i < r.n_items; i++) {
        for (int k = 0; r.items[i].sm && k < o->samples; k++) es_sv_sample_release(&r.items[i].sm[k]);
        free(r.items[i].sm);
        item_free(&r.items[i]);
    }
    free(r.items);
    es_sv_up_free(r.up);
    sum->seconds = es_sv_now() - t0;
    return rc;
}
