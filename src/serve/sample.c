/* sample.c - one sample drawn from an OpenAI-compatible engine as a stream,
 * its probes and its final answer.
 *
 * The stream is asked with n = 1, the sample's own seed (seed + i, what vLLM
 * gives choice i of a request with n > 1), usage in every chunk
 * (stream_options.continuous_usage_stats, which vLLM and SGLang send and
 * `earlystop serve` too: it counts tokens exactly) and logprobs (the tokens'
 * boundaries and probabilities).  Every chunk adds text and tokens; where a
 * chunk holds several tokens their logprob entries say where each ends.
 * Reasoning that arrives as `reasoning_content` (vLLM's reasoning parsers)
 * is kept inside the family's think tags, so that the text is what the model
 * wrote and a probe can continue it.
 *
 * A probe at `at` tokens asks, greedily and without streaming, for the
 * continuation of prompt + the first `at` tokens' text + the probe cue: a
 * completion, or for chat an assistant message continued
 * (continue_final_message, add_generation_prompt false).  The answer is read
 * from what it decoded with the family's rule; its cost is the tokens it
 * decoded plus the cue's (its prompt minus the sample's prompt and `at`).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

int es_sv_sample_init(es_sv_sample *s, es_sv_target *t, int index, void *owner)
{
    memset(s, 0, sizeof *s);
    s->t = t;
    s->index = index;
    s->owner = owner;
    return es_sse_reader_new(8u << 20, &s->sse);
}

void es_sv_sample_cancel(es_sv_sample *s)
{
    if (s->call) es_sv_call_cancel(s->call);
    s->call = NULL;
    if (s->state == SAMPLE_RUNNING || s->state == SAMPLE_IDLE) s->state = SAMPLE_CANCELLED;
    for (uint32_t k = 0; k < s->n_points; k++) {
        es_sv_probe *p = &s->probes[k];
        if (p->call) es_sv_call_cancel(p->call);
        p->call = NULL;
        if (p->state == PROBE_RUNNING) p->state = PROBE_FAILED;
    }
}

void es_sv_sample_release(es_sv_sample *s)
{
    es_sv_sample_cancel(s);
    es_sse_reader_free(s->sse);
    es_sv_buf_free(&s->text);
    es_sv_buf_free(&s->err_body);
    free(s->tok_end);
    free(s->tok_lp);
    free(s->tok_conf);
    free(s->tok_kind);
    json_decref(s->lp_json);
    for (uint32_t k = 0; k < s->n_points; k++) es_sv_buf_free(&s->probes[k].out);
    free(s->probes);
    memset(s, 0, sizeof *s);
}

/* The base body with the fields every call sets removed. */
static json_t *body_for(const es_sv_target *t)
{
    json_t *b = json_deep_copy(t->base);
    static const char *const drop[] = {"n", "stream", "stream_options", "logprobs", "top_logprobs", "seed",
                                       "max_tokens", "max_completion_tokens", "earlystop", "echo", "best_of"};
    for (size_t i = 0; b && i < sizeof drop / sizeof drop[0]; i++) json_object_del(b, drop[i]);
    return b;
}

static const char *path_of(const es_sv_target *t) { return t->chat ? "/v1/chat/completions" : "/v1/completions"; }

static es_sv_call *post(es_sv_target *t, json_t *body, void *owner, int kind)
{
    es_sv_buf b = {0};
    es_sv_call *c = NULL;
    if (!es_sv_buf_json(&b, body)) c = es_sv_call_start(t->up, path_of(t), b.p, b.n, t->client_auth, owner, kind);
    es_sv_buf_free(&b);
    return c;
}

int es_sv_sample_start(es_sv_sample *s)
{
    es_sv_target *t = s->t;
    json_t *b = body_for(t);
    if (!b) return ES_ENOMEM;
    json_object_set_new(b, "n", json_integer(1));
    json_object_set_new(b, "stream", json_true());
    json_object_set_new(b, "stream_options", json_pack("{s:b,s:b}", "include_usage", 1, "continuous_usage_stats",
                                                       t->continuous_usage));
    if (t->has_seed) json_object_set_new(b, "seed", json_integer((json_int_t)(t->seed + s->index)));
    if (t->max_tokens > 0) json_object_set_new(b, "max_tokens", json_integer(t->max_tokens));
    if (t->chat) {
        json_object_set_new(b, "logprobs", json_true());
        if (t->top_k) json_object_set_new(b, "top_logprobs", json_integer(t->top_k));
    } else {
        json_object_set_new(b, "logprobs", json_integer(t->top_k));
    }
    s->call = post(t, b, s, ES_SV_CALL_SAMPLE);
    json_decref(b);
    if (!s->call) return ES_ENOMEM;
    s->state = SAMPLE_RUNNING;
    s->t_start = es_sv_now();
    return ES_OK;
}

static int grow_tokens(es_sv_sample *s, uint32_t need)
{
    if (need <= s->cap) return ES_OK;
    uint32_t cap = s->cap ? s->cap : 256;
    while (cap < need) cap *= 2;
    uint32_t *e = realloc(s->tok_end, cap * sizeof *e);
    if (e) s->tok_end = e;
    float *l = realloc(s->tok_lp, cap * sizeof *l);
    if (l) s->tok_lp = l;
    float *c = realloc(s->tok_conf, cap * sizeof *c);
    if (c) s->tok_conf = c;
    uint8_t *k = realloc(s->tok_kind, cap);
    if (k) s->tok_kind = k;
    if (!e || !l || !c || !k) return ES_ENOMEM;
    s->cap = cap;
    return ES_OK;
}

/* DeepConf's token confidence: minus the mean log-probability of the top
 * alternatives (NaN without them). */
static float top_conf(json_t *tops, int chat)
{
    double sum = 0;
    int n = 0;
    if (chat && json_is_array(tops)) {
        size_t i;
        json_t *e;
        json_array_foreach(tops, i, e) {
            json_t *lp = json_object_get(e, "logprob");
            if (json_is_number(lp) && n < 5) sum += json_number_value(lp), n++;
        }
    } else if (!chat && json_is_object(tops)) {
        const char *k;
        json_t *lp;
        json_object_foreach(tops, k, lp) {
            if (json_is_number(lp) && n < 5) sum += json_number_value(lp), n++;
        }
    }
    return n ? (float)(-sum / n) : NAN;
}

/* The logprob entries of a choice: chat {"content": [{token, logprob,
 * top_logprobs}]}, completions {tokens, token_logprobs, top_logprobs}.
 * Returns how many, with the token texts' total length in *len. */
static size_t lp_entries(json_t *lp, int chat, size_t *len)
{
    *len = 0;
    if (!json_is_object(lp)) return 0;
    json_t *arr = json_object_get(lp, chat ? "content" : "tokens");
    if (!json_is_array(arr)) return 0;
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        json_t *tok = chat ? json_object_get(json_array_get(arr, i), "token") : json_array_get(arr, i);
        *len += json_is_string(tok) ? json_string_length(tok) : 0;
    }
    return n;
}

static void lp_entry(json_t *lp, int chat, size_t i, float *logprob, float *conf, size_t *tlen)
{
    json_t *tok, *v, *tops;
    if (chat) {
        json_t *e = json_array_get(json_object_get(lp, "content"), i);
        tok = json_object_get(e, "token");
        v = json_object_get(e, "logprob");
        tops = json_object_get(e, "top_logprobs");
    } else {
        tok = json_array_get(json_object_get(lp, "tokens"), i);
        v = json_array_get(json_object_get(lp, "token_logprobs"), i);
        tops = json_array_get(json_object_get(lp, "top_logprobs"), i);
    }
    *logprob = json_is_number(v) ? (float)json_number_value(v) : NAN;
    *conf = top_conf(tops, chat);
    *tlen = json_is_string(tok) ? json_string_length(tok) : 0;
}

/* Text of one chunk, reasoning kept inside the think tags. */
static int add_text(es_sv_sample *s, const char *p, size_t n, int reasoning)
{
    const es_family *f = s->t->fam;
    if (reasoning && !s->in_reasoning) {
        if (!s->had_reasoning && es_sv_buf_str(&s->text, f->think_open)) return ES_ENOMEM;
        s->in_reasoning = s->had_reasoning = 1;
    } else if (!reasoning && s->in_reasoning && n) {
        if (es_sv_buf_str(&s->text, f->think_close)) return ES_ENOMEM;
        s->in_reasoning = 0;
    }
    return es_sv_buf_add(&s->text, p, n);
}

/* One chunk of the stream. */
static int on_chunk(es_sv_sample *s, json_t *v)
{
    es_sv_target *t = s->t;
    json_t *err = json_object_get(v, "error");
    if (err) {
        json_t *m = json_object_get(err, "message");
        snprintf(s->err_msg, sizeof s->err_msg, "the upstream reported an error mid-stream: %s",
                 json_is_string(m) ? json_string_value(m) : "(no message)");
        return -1;
    }
    json_t *model = json_object_get(v, "model");
    if (json_is_string(model) && !s->model[0]) snprintf(s->model, sizeof s->model, "%s", json_string_value(model));
    json_t *usage = json_object_get(v, "usage");
    int usage_tokens = -1;
    if (json_is_object(usage)) {
        json_t *ct = json_object_get(usage, "completion_tokens"), *pt = json_object_get(usage, "prompt_tokens");
        if (json_is_integer(ct)) usage_tokens = (int)json_integer_value(ct);
        if (json_is_integer(pt)) s->prompt_tokens = (uint32_t)json_integer_value(pt);
    }
    json_t *choices = json_object_get(v, "choices");
    json_t *ch = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    const char *piece = "", *rpiece = "";
    size_t plen = 0, rlen = 0;
    json_t *lp = NULL;
    if (json_is_object(ch)) {
        if (t->chat) {
            json_t *d = json_object_get(ch, "delta");
            json_t *c = json_object_get(d, "content");
            json_t *r = json_object_get(d, "reasoning_content");
            if (!json_is_string(r)) r = json_object_get(d, "reasoning");
            if (json_is_string(c)) piece = json_string_value(c), plen = json_string_length(c);
            if (json_is_string(r)) rpiece = json_string_value(r), rlen = json_string_length(r);
        } else {
            json_t *c = json_object_get(ch, "text");
            if (json_is_string(c)) piece = json_string_value(c), plen = json_string_length(c);
        }
        lp = json_object_get(ch, "logprobs");
        json_t *fr = json_object_get(ch, "finish_reason");
        if (json_is_string(fr)) snprintf(s->finish, sizeof s->finish, "%s", json_string_value(fr));
    } else if (!usage || !json_is_array(choices)) {
        snprintf(s->err_msg, sizeof s->err_msg, "the upstream sent a chunk without choices");
        return -1;
    }
    size_t lplen;
    size_t nlp = lp_entries(lp, t->chat, &lplen);
    /* tokens in this chunk: the usage's count when it is sent every chunk,
     * else the logprob entries, else one per non-empty chunk */
    long k;
    if (usage_tokens >= 0 && t->continuous_usage) k = usage_tokens - s->usage_seen;
    else if (nlp) k = (long)nlp;
    else k = (plen + rlen) > 0;
    if (usage_tokens >= 0) s->usage_seen = usage_tokens;
    if (k < 0) k = 0;
    if (k > 1 << 20) {
        snprintf(s->err_msg, sizeof s->err_msg, "the upstream's token count jumped by %ld", k);
        return -1;
    }
    if (grow_tokens(s, s->n + (uint32_t)k)) return ES_ENOMEM;
    size_t start = s->text.n;
    if (rlen && add_text(s, rpiece, rlen, 1)) return ES_ENOMEM;
    if (plen && add_text(s, piece, plen, 0)) return ES_ENOMEM;
    size_t end = s->text.n;
    /* each token's end: the logprob entries' texts when they spell the chunk */
    int exact = nlp == (size_t)k && lplen == plen + rlen && !(rlen && plen);
    size_t off = end - (plen + rlen);
    for (long i = 0; i < k; i++) {
        float l = NAN, c = NAN;
        size_t tl = 0;
        if ((size_t)i < nlp) lp_entry(lp, t->chat, (size_t)i, &l, &c, &tl);
        if (exact) off += tl;
        s->tok_end[s->n] = (uint32_t)(exact ? off : (i + 1 == k ? end : start));
        s->tok_lp[s->n] = l;
        s->tok_conf[s->n] = c;
        s->tok_kind[s->n] = rlen && !plen;
        s->n++;
    }
    if (t->keep_logprobs && nlp) {
        /* one entry per token: chat's as received, completions' as
         * {token, logprob, top} to be put back in columns */
        if (!s->lp_json) s->lp_json = json_array();
        if (t->chat) json_array_extend(s->lp_json, json_object_get(lp, "content"));
        else
            for (size_t i = 0; i < nlp; i++)
                json_array_append_new(s->lp_json,
                                      json_pack("{s:O?,s:O?,s:O?}", "token", json_array_get(json_object_get(lp, "tokens"), i),
                                                "logprob", json_array_get(json_object_get(lp, "token_logprobs"), i),
                                                "top", json_array_get(json_object_get(lp, "top_logprobs"), i)));
    }
    return 0;
}

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    (void)event;
    es_sv_sample *s = ctx;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) return 0;
    json_error_t je;
    json_t *v = json_loadb(data, len, 0, &je);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        snprintf(s->err_msg, sizeof s->err_msg, "the upstream sent an event that is not a JSON object: %.60s", data);
        return -1;
    }
    int rc = on_chunk(s, v);
    json_decref(v);
    return rc;
}

/* The paragraph probes the text so far has reached (final: the text is
 * complete); on running out of memory the sample fails saying so (-1). */
static int read_paragraphs(es_sv_sample *s, int final)
{
    if (!es_sv_sample_paragraphs(s, final)) return 0;
    snprintf(s->err_msg, sizeof s->err_msg, "out of memory for a paragraph probe");
    s->err_status = 500;
    s->state = SAMPLE_FAILED;
    return -1;
}

int es_sv_sample_on_call(es_sv_sample *s, es_sv_call *c)
{
    int changed = 0;
    s->bytes += c->in.n;
    if (c->status >= 200 && c->status < 300 && c->is_sse) {
        if (c->in.n) {
            if (!s->t_first) s->t_first = es_sv_now();
            int rc = es_sse_reader_feed(s->sse, c->in.p, c->in.n, on_event, s);
            es_sv_buf_reset(&c->in);
            changed = 1;
            if (rc) {
                if (!s->err_msg[0])
                    snprintf(s->err_msg, sizeof s->err_msg, rc == ES_ERANGE ? "the upstream sent an event over 8 MiB"
                                                                            : "out of memory");
                s->err_status = 502;
                s->state = SAMPLE_FAILED;
                es_sv_call_cancel(c);
                s->call = NULL;
                return 1;
            }
        }
    } else if (c->in.n) {
        /* an error body (or a body that is not a stream): kept to pass on */
        es_sv_buf_add(&s->err_body, c->in.p, c->in.n < 65536 ? c->in.n : 65536);
        es_sv_buf_reset(&c->in);
    }
    if (s->t->paragraphs && changed && s->state == SAMPLE_RUNNING && read_paragraphs(s, 0)) {
        es_sv_call_cancel(c);
        s->call = NULL;
        return 1;
    }
    if (!c->done) return changed;
    s->call = NULL;
    if ((s->err_status = es_sv_call_failure(c, s->err_msg, sizeof s->err_msg))) {
        s->state = SAMPLE_FAILED;
    } else if (!c->is_sse) {
        s->state = SAMPLE_FAILED;
        s->err_status = 502;
        snprintf(s->err_msg, sizeof s->err_msg, "the upstream did not answer with an event stream");
    } else if (!s->finish[0]) {
        s->state = SAMPLE_FAILED;
        s->err_status = 502;
        snprintf(s->err_msg, sizeof s->err_msg, "the upstream's stream ended before a finish_reason%s",
                 es_sse_reader_pending(s->sse) ? " (cut mid-event)" : "");
    } else {
        s->state = SAMPLE_DONE;
        if (s->t->paragraphs) read_paragraphs(s, 1);
    }
    return 1;
}

size_t es_sv_sample_prefix(const es_sv_sample *s, uint32_t at)
{
    if (!at) return 0;
    if (at > s->n) at = s->n;
    return s->tok_end[at - 1];
}

float es_sv_sample_confidence(const es_sv_sample *s)
{
    double sum = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (!isnan(s->tok_lp[i])) sum += exp((double)s->tok_lp[i]), n++;
    return n ? (float)(sum / n) : NAN;
}

float es_sv_sample_window(const es_sv_sample *s, uint32_t at)
{
    uint32_t w = (uint32_t)(s->t->window > 0 ? s->t->window : 32);
    if (at > s->n) at = s->n;
    uint32_t from = at > w ? at - w : 0;
    double sum = 0;
    uint32_t n = 0;
    for (uint32_t i = from; i < at; i++) {
        if (isnan(s->tok_conf[i])) return NAN;
        sum += s->tok_conf[i];
        n++;
    }
    return n ? (float)(sum / n) : NAN;
}

/* The continuation body: the prompt, the sample's first `at` tokens, a cue. */
static json_t *continuation(es_sv_sample *s, uint32_t at, const char *cue, int max_tokens, int probe)
{
    es_sv_target *t = s->t;
    const es_family *f = t->fam;
    size_t pre = es_sv_sample_prefix(s, at);
    es_sv_buf text = {0};
    es_sv_buf_add(&text, s->text.p, pre);
    if (f->cue_newline && pre && s->text.p[pre - 1] != '\n') es_sv_buf_str(&text, "\n");
    es_sv_buf_str(&text, cue);
    json_t *b = body_for(t);
    if (!b) {
        es_sv_buf_free(&text);
        return NULL;
    }
    if (t->chat) {
        json_t *msgs = json_object_get(b, "messages");
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        json_t *cont = json_object_get(b, "continue_final_message");
        if (json_is_true(cont) && last) {
            es_sv_buf all = {0};
            es_sv_message_text(json_object_get(last, "content"), &all);
            es_sv_buf_add(&all, text.p, text.n);
            json_object_set_new(last, "content", json_stringn(all.p ? all.p : "", all.n));
            es_sv_buf_free(&all);
        } else {
            json_array_append_new(msgs, json_pack("{s:s,s:s%}", "role", "assistant", "content", text.p, text.n));
        }
        json_object_set_new(b, "continue_final_message", json_true());
        json_object_set_new(b, "add_generation_prompt", json_false());
        json_object_set_new(b, "logprobs", json_true());
    } else {
        json_t *p = json_object_get(b, "prompt");
        const char *ps = json_is_string(p) ? json_string_value(p) : "";
        es_sv_buf all = {0};
        es_sv_buf_str(&all, ps);
        es_sv_buf_add(&all, text.p, text.n);
        json_object_set_new(b, "prompt", json_stringn(all.p ? all.p : "", all.n));
        es_sv_buf_free(&all);
        json_object_set_new(b, "logprobs", json_integer(0));
    }
    json_object_set_new(b, "n", json_integer(1));
    json_object_set_new(b, "stream", json_false());
    json_object_set_new(b, "temperature", json_real(0));
    json_object_set_new(b, "max_tokens", json_integer(max_tokens));
    json_object_del(b, "top_p");
    json_object_del(b, "stop");
    if (!f->boxed) json_object_set_new(b, "stop", probe ? json_pack("[s,s]", ".", "\n") : json_pack("[s]", "\n"));
    es_sv_buf_free(&text);
    return b;
}

/* Room for probe k. */
static es_sv_probe *probe_slot(es_sv_sample *s, uint32_t k)
{
    if (k >= s->cap_points) {
        uint32_t cap = s->cap_points ? s->cap_points * 2 : 16;
        while (cap <= k) cap *= 2;
        es_sv_probe *p = realloc(s->probes, cap * sizeof *p);
        if (!p) return NULL;
        memset(p + s->cap_points, 0, (cap - s->cap_points) * sizeof *p);
        s->probes = p;
        s->cap_points = cap;
    }
    if (k >= s->n_points) s->n_points = k + 1;
    return &s->probes[k];
}

es_sv_probe *es_sv_sample_probe(es_sv_sample *s, uint32_t k, uint32_t at)
{
    es_sv_probe *p = probe_slot(s, k);
    if (!p) return NULL;
    if (p->state != PROBE_NONE) return p;
    p->s = s;
    p->at = at;
    p->window_confidence = es_sv_sample_window(s, at);
    json_t *b = continuation(s, at, s->t->fam->probe_cue, s->t->fam->probe_max_tokens, 1);
    /* the sample owns the call and the tag names the probe: probes[] may move */
    p->call = b ? post(s->t, b, s, ES_SV_CALL_PROBE) : NULL;
    if (p->call) p->call->tag = k;
    json_decref(b);
    if (!p->call) {
        p->state = PROBE_FAILED;
        snprintf(p->error, sizeof p->error, "out of memory");
        return p;
    }
    p->state = PROBE_RUNNING;
    return p;
}

/* The first token whose text ends past pos (s->n when none does): token
 * ends never go back, so a binary search. */
static uint32_t first_past(const es_sv_sample *s, size_t pos)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->tok_end[mid] > pos) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* Tokens that cover text[0..pos): the first count whose last token ends at
 * or past pos (all of them when none does yet). */
static uint32_t tokens_to(const es_sv_sample *s, size_t pos)
{
    if (!pos) return 0;
    uint32_t k = first_past(s, pos - 1);
    return k < s->n ? k + 1 : s->n;
}

uint32_t es_sv_sample_tokens_before(const es_sv_sample *s, size_t pos) { return first_past(s, pos); }

int es_sv_sample_paragraphs(es_sv_sample *s, int final)
{
    size_t a, b;
    uint32_t flags;
    while (es_para_split_next(&s->para, s->text.p, s->text.n, final, &a, &b, &flags)) {
        char ans[sizeof s->para_answer];
        if (es_sv_paragraph_answer(s->t->fam, s->t->answer_type, s->text.p, a, b, ans, sizeof ans)) {
            memcpy(s->para_answer, ans, sizeof ans);
            s->para_has = 1;
        }
        if (!s->para_has) continue; /* nothing written yet: no probe, as in the *_think files */
        es_sv_probe *p = probe_slot(s, s->n_points);
        if (!p) return ES_ENOMEM;
        p->s = s;
        p->at = tokens_to(s, b);
        p->state = PROBE_DONE;
        p->is_free = 1;
        p->has_answer = 1;
        memcpy(p->answer, s->para_answer, sizeof p->answer);
        p->confidence = NAN;
        p->window_confidence = es_sv_sample_window(s, p->at);
        p->cues = es_text_cues(s->text.p + a, b - a) | flags;
    }
    return ES_OK;
}

es_sv_call *es_sv_sample_answer_call(es_sv_sample *s, uint32_t at, void *owner)
{
    json_t *b = continuation(s, at, s->t->fam->answer_cue, s->t->fam->answer_max_tokens, 0);
    es_sv_call *c = b ? post(s->t, b, owner, ES_SV_CALL_ANSWER) : NULL;
    json_decref(b);
    return c;
}

int es_sv_decoded(es_sv_call *c, int chat, es_sv_buf *out, uint32_t *prompt, uint32_t *completion, float *conf,
                  char *msg, size_t cap)
{
    *prompt = *completion = 0;
    *conf = NAN;
    if (es_sv_call_failure(c, msg, cap)) {
        size_t k = strlen(msg);
        if (c->result == CURLE_OK && k < cap) snprintf(msg + k, cap - k, ": %.100s", c->in.p ? c->in.p : "");
        return -1;
    }
    json_error_t je;
    json_t *v = json_loadb(c->in.p ? c->in.p : "", c->in.n, 0, &je);
    json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
    json_t *text = chat ? json_object_get(json_object_get(ch, "message"), "content") : json_object_get(ch, "text");
    if (!json_is_object(ch) || !(json_is_string(text) || json_is_null(text))) {
        snprintf(msg, cap, "the upstream's answer is not a completion");
        json_decref(v);
        return -1;
    }
    es_sv_buf_reset(out);
    if (json_is_string(text)) es_sv_buf_add(out, json_string_value(text), json_string_length(text));
    /* the stop sequence that ended it is not in the text: vLLM (and serve)
     * name it in stop_reason; else the logprob entries spell it */
    json_t *sr = json_object_get(ch, "stop_reason");
    json_t *lp = json_object_get(ch, "logprobs");
    size_t lplen, nlp = lp_entries(lp, chat, &lplen);
    if (json_is_string(sr)) {
        es_sv_buf_add(out, json_string_value(sr), json_string_length(sr));
    } else if (nlp && lplen > out->n) {
        es_sv_buf all = {0};
        json_t *arr = json_object_get(lp, chat ? "content" : "tokens");
        for (size_t i = 0; i < nlp; i++) {
            json_t *tok = chat ? json_object_get(json_array_get(arr, i), "token") : json_array_get(arr, i);
            if (json_is_string(tok)) es_sv_buf_add(&all, json_string_value(tok), json_string_length(tok));
        }
        if (all.n >= out->n && !memcmp(all.p, out->p ? out->p : "", out->n)) {
            es_sv_buf_reset(out);
            es_sv_buf_add(out, all.p, all.n);
        }
        es_sv_buf_free(&all);
    }
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < nlp; i++) {
        float l, cf;
        size_t tl;
        lp_entry(lp, chat, i, &l, &cf, &tl);
        if (!isnan(l)) sum += exp((double)l), n++;
    }
    if (n) *conf = (float)(sum / (double)n);
    json_t *usage = json_object_get(v, "usage");
    json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens");
    if (json_is_integer(pt)) *prompt = (uint32_t)json_integer_value(pt);
    if (json_is_integer(ct)) *completion = (uint32_t)json_integer_value(ct);
    else *completion = (uint32_t)nlp;
    json_decref(v);
    return 0;
}

void es_sv_probe_on_call(es_sv_probe *p, es_sv_call *c)
{
    if (!c->done) return;
    p->call = NULL;
    if (es_sv_decoded(c, p->s->t->chat, &p->out, &p->prompt_tokens, &p->completion_tokens, &p->confidence, p->error,
                      sizeof p->error)) {
        p->state = PROBE_FAILED;
        return;
    }
    p->has_answer = es_family_probe_answer(p->s->t->fam, p->out.p ? p->out.p : "", p->out.n, p->answer,
                                           sizeof p->answer);
    p->state = PROBE_DONE;
}

uint32_t es_sv_probe_cost(const es_sv_probe *p)
{
    uint32_t base = p->s->prompt_tokens + p->at;
    uint32_t cue = p->prompt_tokens > base && p->s->prompt_tokens ? p->prompt_tokens - base : 0;
    return cue + p->completion_tokens;
}
