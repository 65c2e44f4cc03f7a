/* serve.c - `earlystop serve`: the built-in model behind the OpenAI API.
 *
 * Two threads.  The loop thread owns HTTP (http.c) and every request object:
 * it parses and checks a request, answers errors, starts streams, and turns
 * the tokens the scheduler publishes into SSE chunks or a whole JSON
 * response.  The scheduler thread owns the model: every choice of every
 * request is one sequence of an es_lm_batch, so one forward step serves all
 * requests at once (continuous batching: a finished sequence's slot takes
 * the next waiting choice).
 *
 * Hand-over without copying: a choice's token array is allocated for its
 * whole budget before it is queued, the scheduler fills it and publishes the
 * count with a release store, the loop reads up to an acquire load.  A
 * mutex guards only the queue of waiting choices and the list of requests
 * with news; an eventfd wakes the loop.  Requests are freed on the loop
 * thread once the client is gone and the scheduler holds none of their
 * choices.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "earlystop_lm.h"
#include "sv.h"

enum { FIN_NONE = 0, FIN_EOS, FIN_LENGTH, FIN_STOP, FIN_CANCEL };

typedef struct tok_rec {
    int16_t tok;
    float lp;
} tok_rec;

typedef struct sreq sreq;

/* One choice: one sequence of the batch. */
typedef struct schoice {
    sreq *r;
    int index;               /* the choice's index in the response */
    int prompt;              /* which prompt */
    es_lm_seq_params sp;
    int limit;               /* tokens at most */
    tok_rec *toks;           /* [limit] written by the scheduler */
    tok_rec *tops;           /* [limit * top] alternatives */
    _Atomic int published;   /* tokens the loop may read */
    _Atomic int finish;      /* FIN_*: set after the last token is published */
    int stop_len;            /* the matched stop sequence's length (FIN_STOP) */
    int stop_which;
    /* scheduler side */
    int seq;                 /* batch sequence, -1 when none */
    char *text;              /* [limit + 1] the text so far (stop sequences) */
    int tlen;
    /* loop side */
    int sent;                /* tokens already sent in chunks */
    int done_sent;           /* the final chunk went out */
    struct schoice *qnext;   /* waiting queue */
} schoice;

struct sreq {
    struct srv *s;
    es_sv_xchg *x;           /* NULL once the client is gone */
    es_oai_req *q;
    char id[48];
    long created;
    int chat, stream;
    int n_choices;
    schoice *ch;
    char **prompts;          /* rendered prompts */
    int *prompt_tokens;
    int total_prompt_tokens;
    _Atomic int cancel;
    int sched_held;          /* choices queued or running (under srv.mu) */
    int dirty;               /* on the news list (under srv.mu) */
    sreq *dnext;
    int finished;            /* the response is complete */
    double t0, t_first;
    sreq *prev, *next;       /* every live request (loop thread) */
};

typedef struct srv {
    es_serve_opts o;
    es_lm *m;
    es_lm_pool *pool;
    es_lm_batch *b;
    es_sv_http *h;
    pthread_t th;
    int th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    schoice *wait_head, *wait_tail;
    int waiting;
    sreq *news;
    sreq *all;
    int wake_fd;
    uint64_t nreq;
    es_rng seeds;
    int seq_len;
    /* metrics (loop thread) */
    uint64_t m_req[2], m_err, m_prompt_tok, m_gen_tok, m_choices;
    es_sv_hist h_req, h_ttft;
    _Atomic int m_active;
    _Atomic uint64_t m_steps;
} srv;

void es_serve_opts_init(es_serve_opts *o)
{
    memset(o, 0, sizeof *o);
    es_listen_opts_init(&o->listen);
    o->model_name = "earlystop-builtin";
    o->threads = 1;
    o->max_seqs = 32;
    o->max_queue = 4096;
    o->seed = (uint64_t)time(NULL);
}

void es_serve_seed_stream(uint64_t e, uint64_t *seed, uint64_t *item, uint64_t *sample)
{
    *seed = e >> 20;
    *item = (e >> 10) & 1023;
    *sample = e & 1023;
}

/* ----------------------------------------------------- scheduler thread */

static void wake_loop(srv *s)
{
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w;
}

/* Under s->mu: put r on the news list. */
static void mark_news(srv *s, sreq *r)
{
    if (r->dirty) return;
    r->dirty = 1;
    r->dnext = s->news;
    s->news = r;
}

/* The matched stop sequence's index, or -1. */
static int stop_match(const schoice *c)
{
    const es_oai_req *q = c->r->q;
    for (int i = 0; i < q->n_stop; i++) {
        size_t k = strlen(q->stop[i]);
        if ((size_t)c->tlen >= k && !memcmp(c->text + c->tlen - k, q->stop[i], k)) return i;
    }
    return -1;
}

/* One token of a choice (scheduler thread): store, check stop sequences,
 * publish. */
static void on_token(void *ctx, int seq, const es_lm_token_event *ev)
{
    schoice *c = ctx;
    srv *s = c->r->s;
    int i = atomic_load_explicit(&c->published, memory_order_relaxed);
    c->toks[i] = (tok_rec){(int16_t)ev->token, ev->logprob};
    int k = c->sp.top_logprobs;
    for (int j = 0; j < k; j++)
        c->tops[(size_t)i * (size_t)k + (size_t)j] =
            j < ev->n_top ? (tok_rec){(int16_t)ev->top_token[j], ev->top_logprob[j]} : (tok_rec){-1, 0};
    int fin = ev->finish == ES_LM_SEQ_EOS ? FIN_EOS : ev->finish == ES_LM_SEQ_LENGTH ? FIN_LENGTH : FIN_NONE;
    if (ev->ch) c->text[c->tlen++] = (char)ev->ch;
    int m = ev->ch ? stop_match(c) : -1;
    if (m >= 0) {
        c->stop_which = m;
        c->stop_len = (int)strlen(c->r->q->stop[m]);
        if (!fin) es_lm_batch_cancel(s->b, seq);
        fin = FIN_STOP;
    }
    atomic_store_explicit(&c->published, i + 1, memory_order_release);
    if (fin) {
        c->seq = -1;
        atomic_store_explicit(&c->finish, fin, memory_order_release);
    }
}

/* Under s->mu: a choice leaves the scheduler. */
static void release_choice(srv *s, schoice *c, int fin)
{
    if (fin) atomic_store_explicit(&c->finish, fin, memory_order_release);
    c->r->sched_held--;
    mark_news(s, c->r);
}

/* Under s->mu: waiting choices into free slots (slot[seq] remembers whose
 * sequence it is); choices of cancelled requests are dropped. */
static void admit(srv *s, schoice **slot)
{
    while (s->wait_head && es_lm_batch_free_slots(s->b) > 0) {
        schoice *c = s->wait_head;
        s->wait_head = c->qnext;
        if (!s->wait_head) s->wait_tail = NULL;
        s->waiting--;
        if (atomic_load(&c->r->cancel)) {
            release_choice(s, c, FIN_CANCEL);
            continue;
        }
        c->seq = es_lm_batch_add(s->b, c->r->prompts[c->prompt], &c->sp, on_token, c);
        if (c->seq < 0) release_choice(s, c, FIN_CANCEL); /* prompts are checked before queueing */
        else slot[c->seq] = c;
    }
}

/* Under s->mu: running sequences of cancelled requests end now. */
static void drop_cancelled(srv *s, schoice **slot)
{
    for (int i = 0; i < s->o.max_seqs; i++) {
        schoice *c = slot[i];
        if (!c || !atomic_load(&c->r->cancel)) continue;
        es_lm_batch_cancel(s->b, i);
        slot[i] = NULL;
        c->seq = -1;
        release_choice(s, c, FIN_CANCEL);
    }
}

/* Steps while there is work; the lock is held except around the step. */
static void *sched_main(void *arg)
{
    srv *s = arg;
    schoice **slot = calloc((size_t)s->o.max_seqs, sizeof *slot);
    pthread_mutex_lock(&s->mu);
    while (!s->stop && slot) {
        admit(s, slot);
        drop_cancelled(s, slot);
        if (s->news) wake_loop(s);
        if (es_lm_batch_active(s->b) == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        atomic_store(&s->m_active, es_lm_batch_active(s->b));
        pthread_mutex_unlock(&s->mu);
        es_lm_batch_step(s->b);
        atomic_fetch_add(&s->m_steps, 1);
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < s->o.max_seqs; i++) {
            schoice *c = slot[i];
            if (!c) continue;
            if (atomic_load_explicit(&c->finish, memory_order_acquire)) {
                slot[i] = NULL;
                release_choice(s, c, 0);
            } else {
                mark_news(s, c->r);
            }
        }
        if (s->news) wake_loop(s);
    }
    atomic_store(&s->m_active, 0);
    pthread_mutex_unlock(&s->mu);
    free(slot);
    return NULL;
}

/* ------------------------------------------------------------ responses */

static const char *finish_name(int fin) { return fin == FIN_LENGTH ? "length" : "stop"; }

/* A token's text: its character, "" for EOS. */
static void tok_text(int tok, char out[2])
{
    out[0] = (char)es_lm_token_char(tok);
    out[1] = '\0';
}

/* Characters of tokens [0, n) that are visible: the stop sequence that
 * ended a choice is not part of its text (its tokens are in the logprobs). */
static int visible_end(const schoice *c, int n, int fin)
{
    return fin == FIN_STOP ? n - c->stop_len : n;
}

/* While running: tokens at the end that may be the start of a stop
 * sequence are held back until it is clear they are not. */
static int held_back(const schoice *c, int n)
{
    const es_oai_req *q = c->r->q;
    int hold = 0;
    for (int i = 0; i < q->n_stop; i++) {
        int k = (int)strlen(q->stop[i]);
        for (int len = k - 1; len > hold; len--) {
            if (len > n) continue;
            int ok = 1;
            for (int j = 0; j < len && ok; j++) ok = es_lm_token_char(c->toks[n - len + j].tok) == q->stop[i][j];
            if (ok) {
                hold = len;
                break;
            }
        }
    }
    return hold;
}

/* The UTF-8 bytes of a token's text (none for EOS). */
static json_t *token_bytes(const char *tx)
{
    return tx[0] ? json_pack("[i]", (int)(unsigned char)tx[0]) : json_array();
}

static json_t *top_entries_chat(const schoice *c, int i)
{
    int k = c->sp.top_logprobs;
    json_t *a = json_array();
    for (int j = 0; j < k; j++) {
        tok_rec t = c->tops[(size_t)i * (size_t)k + (size_t)j];
        if (t.tok < 0) break;
        char tx[2];
        tok_text(t.tok, tx);
        json_array_append_new(a, json_pack("{s:s,s:f,s:o}", "token", tx, "logprob", (double)t.lp, "bytes",
                                           token_bytes(tx)));
    }
    return a;
}

/* Logprobs of tokens [a, b): the chat form ({"content": [...]}) or the
 * completions form (tokens, token_logprobs, top_logprobs, text_offset). */
static json_t *logprobs_json(const schoice *c, int a, int b, int chat, int offset)
{
    if (chat) {
        json_t *content = json_array();
        for (int i = a; i < b; i++) {
            char tx[2];
            tok_text(c->toks[i].tok, tx);
            json_array_append_new(content,
                                  json_pack("{s:s,s:f,s:o,s:o}", "token", tx, "logprob", (double)c->toks[i].lp,
                                            "bytes", token_bytes(tx), "top_logprobs", top_entries_chat(c, i)));
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    int k = c->sp.top_logprobs;
    for (int i = a; i < b; i++) {
        char tx[2];
        tok_text(c->toks[i].tok, tx);
        json_array_append_new(tokens, json_string(tx));
        json_array_append_new(lps, json_real((double)c->toks[i].lp));
        json_array_append_new(offs, json_integer(offset));
        offset += tx[0] != 0;
        json_t *d = json_object();
        for (int j = 0; j < k; j++) {
            tok_rec t = c->tops[(size_t)i * (size_t)k + (size_t)j];
            if (t.tok < 0) break;
            char ty[2];
            tok_text(t.tok, ty);
            json_object_set_new(d, ty, json_real((double)t.lp));
        }
        json_array_append_new(tops, d);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

static json_t *usage_json(int prompt, int completion)
{
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", prompt, "completion_tokens", completion, "total_tokens",
                     prompt + completion);
}

/* The visible characters of tokens [a, b) of a choice into buf. */
static void text_of(const schoice *c, int a, int b, es_sv_buf *buf)
{
    for (int i = a; i < b; i++) {
        int ch = es_lm_token_char(c->toks[i].tok);
        if (ch) es_sv_buf_add(buf, &(char){(char)ch}, 1);
    }
}

static json_t *chunk_head(const sreq *r)
{
    return json_pack("{s:s,s:s,s:I,s:s}", "id", r->id, "object", r->chat ? "chat.completion.chunk" : "text_completion",
                     "created", (json_int_t)r->created, "model", r->s->o.model_name);
}

/* One SSE chunk with the tokens of choice c not sent yet (and its end). */
static void stream_choice(sreq *r, schoice *c, es_sv_buf *out)
{
    int fin = atomic_load_explicit(&c->finish, memory_order_acquire);
    int n = atomic_load_explicit(&c->published, memory_order_acquire);
    if (c->done_sent || fin == FIN_CANCEL) return;
    int to = fin ? n : n - held_back(c, n);
    if (to <= c->sent && !fin) return;
    int vis = fin ? visible_end(c, n, fin) : to;
    es_sv_buf text = {0};
    text_of(c, c->sent, vis > c->sent ? vis : c->sent, &text);
    json_t *ch = json_pack("{s:i,s:n,s:n,s:n}", "index", c->index, "logprobs", "finish_reason", "stop_reason");
    if (r->chat) json_object_set_new(ch, "delta", json_pack("{s:s%}", "content", text.p ? text.p : "", text.n));
    else json_object_set_new(ch, "text", json_stringn(text.p ? text.p : "", text.n));
    if (r->q->logprobs && to > c->sent) {
        int off = 0;
        for (int i = 0; i < c->sent; i++) off += es_lm_token_char(c->toks[i].tok) != 0;
        json_object_set_new(ch, "logprobs", logprobs_json(c, c->sent, to, r->chat, off));
    }
    if (fin) {
        json_object_set_new(ch, "finish_reason", json_string(finish_name(fin)));
        if (fin == FIN_STOP) json_object_set_new(ch, "stop_reason", json_string(r->q->stop[c->stop_which]));
        c->done_sent = 1;
    }
    c->sent = to;
    json_t *chunk = chunk_head(r);
    json_object_set_new(chunk, "choices", json_pack("[o]", ch));
    if (r->q->continuous_usage)
        json_object_set_new(chunk, "usage", usage_json(r->prompt_tokens[c->prompt], c->sent));
    es_sv_buf_sse(out, chunk);
    json_decref(chunk);
    es_sv_buf_free(&text);
}

static int all_finished(sreq *r)
{
    for (int i = 0; i < r->n_choices; i++)
        if (!atomic_load_explicit(&r->ch[i].finish, memory_order_acquire)) return 0;
    return 1;
}

static int completion_tokens(const sreq *r)
{
    int t = 0;
    for (int i = 0; i < r->n_choices; i++) t += atomic_load(&r->ch[i].published);
    return t;
}

/* The whole response of a non-streamed request. */
static json_t *full_response(sreq *r)
{
    json_t *choices = json_array();
    for (int i = 0; i < r->n_choices; i++) {
        schoice *c = &r->ch[i];
        int fin = atomic_load(&c->finish), n = atomic_load(&c->published);
        es_sv_buf text = {0};
        text_of(c, 0, visible_end(c, n, fin), &text);
        json_t *ch = json_pack("{s:i,s:o,s:s,s:o}", "index", c->index, "logprobs",
                               r->q->logprobs ? logprobs_json(c, 0, n, r->chat, 0) : json_null(), "finish_reason",
                               finish_name(fin), "stop_reason",
                               fin == FIN_STOP ? json_string(r->q->stop[c->stop_which]) : json_null());
        if (r->chat)
            json_object_set_new(ch, "message", json_pack("{s:s,s:s%}", "role", "assistant", "content",
                                                         text.p ? text.p : "", text.n));
        else
            json_object_set_new(ch, "text", json_stringn(text.p ? text.p : "", text.n));
        json_array_append_new(choices, ch);
        es_sv_buf_free(&text);
    }
    json_t *v = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", r->id, "object", r->chat ? "chat.completion" : "text_completion",
                          "created", (json_int_t)r->created, "model", r->s->o.model_name, "choices", choices, "usage",
                          usage_json(r->total_prompt_tokens, completion_tokens(r)));
    return v;
}

/* ---------------------------------------------------------- requests */

static void sreq_free(sreq *r)
{
    if (!r) return;
    if (r->s) {
        if (r->prev) r->prev->next = r->next;
        else if (r->s->all == r) r->s->all = r->next;
        if (r->next) r->next->prev = r->prev;
    }
    for (int i = 0; r->ch && i < r->n_choices; i++) {
        free(r->ch[i].toks);
        free(r->ch[i].tops);
        free(r->ch[i].text);
    }
    free(r->ch);
    for (size_t i = 0; r->prompts && i < (r->q ? r->q->n_prompts : 1); i++) free(r->prompts[i]);
    free(r->prompts);
    free(r->prompt_tokens);
    es_oai_req_free(r->q);
    free(r);
}

/* News from the scheduler: chunks out, a finished response out, a request
 * whose client left and whose choices are all back freed. */
static void on_news(srv *s, sreq *r, int held)
{
    if (!r->x) {
        if (!held) sreq_free(r);
        return;
    }
    if (r->finished) return;
    if (r->stream) {
        /* read once: a choice finishing after this is sent next time, and
         * [DONE] only follows every choice's final chunk */
        int finished = all_finished(r);
        es_sv_buf out = {0};
        for (int i = 0; i < r->n_choices; i++) stream_choice(r, &r->ch[i], &out);
        if (out.n && !r->t_first) {
            r->t_first = es_sv_now();
            es_sv_hist_add(&s->h_ttft, r->t_first - r->t0);
        }
        if (finished) {
            if (r->q->include_usage) {
                json_t *u = chunk_head(r);
                json_object_set_new(u, "choices", json_array());
                json_object_set_new(u, "usage", usage_json(r->total_prompt_tokens, completion_tokens(r)));
                es_sv_buf_sse(&out, u);
                json_decref(u);
            }
            es_sv_buf_str(&out, "data: [DONE]\n\n");
        }
        if (out.n) es_sv_stream_write(r->x, out.p, out.n);
        es_sv_buf_free(&out);
        if (finished) {
            es_sv_stream_end(r->x);
            r->finished = 1;
        }
    } else if (all_finished(r)) {
        json_t *v = full_response(r);
        es_sv_reply_json(r->x, 200, v);
        json_decref(v);
        r->finished = 1;
    }
    if (r->finished) {
        s->m_gen_tok += (uint64_t)completion_tokens(r);
        es_sv_hist_add(&s->h_req, es_sv_now() - r->t0);
    }
}

static void drain_news(srv *s)
{
    uint64_t v;
    ssize_t rd = read(s->wake_fd, &v, sizeof v);
    (void)rd;
    pthread_mutex_lock(&s->mu);
    sreq *list = s->news;
    s->news = NULL;
    enum { MAXN = 4096 };
    int n = 0;
    sreq *batch[MAXN];
    int held[MAXN];
    while (list && n < MAXN) {
        sreq *r = list;
        list = r->dnext;
        r->dirty = 0;
        batch[n] = r;
        held[n++] = r->sched_held;
    }
    while (list) { /* more than MAXN at once: keep the rest for the next round */
        sreq *r = list;
        list = r->dnext;
        r->dirty = 0;
        mark_news(s, r);
    }
    if (s->news) wake_loop(s);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) on_news(s, batch[i], held[i]);
}

/* The client is gone: stop its choices; free it once the scheduler let go. */
static void on_gone(void *ctx, es_sv_xchg *x)
{
    srv *s = ctx;
    sreq *r = es_sv_xchg_owner(x);
    if (!r) return;
    r->x = NULL;
    atomic_store(&r->cancel, 1);
    pthread_mutex_lock(&s->mu);
    int keep = r->dirty || r->sched_held > 0;
    if (keep) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!keep) sreq_free(r);
}

/* Prompts in the vocabulary and the context, max_tokens within it. */
static int check_prompts(srv *s, sreq *r, es_sv_xchg *x)
{
    int def_max = r->chat ? 0 : 16;
    for (size_t i = 0; i < r->q->n_prompts; i++) {
        int np = es_lm_batch_prompt_tokens(s->b, r->prompts[i]);
        const char *param = r->chat ? "messages" : "prompt";
        if (np == ES_EINVAL)
            return es_sv_reply_error(x, 400, "invalid_request_error", param,
                                     "the prompt holds a character outside the built-in model's vocabulary "
                                     "(printable ASCII and newline)"),
                   -1;
        if (np < 0)
            return es_sv_reply_error(x, 400, "invalid_request_error", param,
                                     "This model's maximum context length is %d tokens: the prompt leaves no room "
                                     "to generate", s->seq_len),
                   -1;
        int room = s->seq_len - np;
        if (r->q->max_tokens > room)
            return es_sv_reply_error(x, 400, "invalid_request_error", "max_tokens",
                                     "This model's maximum context length is %d tokens. However, you requested "
                                     "%d tokens (%d in the prompt, %d for the completion).",
                                     s->seq_len, np + r->q->max_tokens, np, r->q->max_tokens),
                   -1;
        r->prompt_tokens[i] = np;
        r->total_prompt_tokens += np;
        (void)def_max;
    }
    return 0;
}

/* Choices with their budgets and streams: choice c of a request with seed
 * e draws seed e + c (vLLM's convention), which is a `generate` stream. */
static int make_choices(srv *s, sreq *r)
{
    const es_oai_req *q = r->q;
    r->n_choices = (int)q->n_prompts * q->n;
    r->ch = calloc((size_t)r->n_choices, sizeof *r->ch);
    if (!r->ch) return ES_ENOMEM;
    uint64_t base = q->has_seed ? (uint64_t)q->seed : es_rng_u64(&s->seeds) >> 11;
    for (int i = 0; i < r->n_choices; i++) {
        schoice *c = &r->ch[i];
        c->r = r;
        c->index = i;
        c->prompt = i / q->n;
        int room = s->seq_len - r->prompt_tokens[c->prompt];
        int max = q->max_tokens > 0 ? q->max_tokens : r->chat ? room : 16;
        c->limit = max < room ? max : room;
        c->sp.temperature = isnan(q->temperature) ? ES_LM_DEFAULT_TEMPERATURE : (float)q->temperature;
        c->sp.max_tokens = c->limit;
        c->sp.top_logprobs = q->logprobs ? q->top_logprobs : 0;
        uint64_t seed, item, sample;
        es_serve_seed_stream(base + (uint64_t)(i % q->n), &seed, &item, &sample);
        es_lm_sample_rng(&c->sp.rng, seed, item, sample);
        c->seq = -1;
        c->toks = calloc((size_t)c->limit, sizeof *c->toks);
        c->text = calloc((size_t)c->limit + 1, 1);
        if (c->sp.top_logprobs) c->tops = calloc((size_t)c->limit * (size_t)c->sp.top_logprobs, sizeof *c->tops);
        if (!c->toks || !c->text || (c->sp.top_logprobs && !c->tops)) return ES_ENOMEM;
    }
    return ES_OK;
}

static int render_prompts(sreq *r, es_sv_xchg *x)
{
    r->prompts = calloc(r->q->n_prompts, sizeof *r->prompts);
    r->prompt_tokens = calloc(r->q->n_prompts, sizeof *r->prompt_tokens);
    if (!r->prompts || !r->prompt_tokens) return ES_ENOMEM;
    if (!r->chat) {
        for (size_t i = 0; i < r->q->n_prompts; i++)
            if (!(r->prompts[i] = strdup(r->q->prompts[i]))) return ES_ENOMEM;
        return ES_OK;
    }
    es_sv_buf b = {0};
    es_oai_error e;
    int rc = es_sv_chat_prompt(r->q, &b, &e);
    if (rc == ES_EINVAL) es_sv_reply_error(x, (unsigned)e.status, e.type, e.param, "%s", e.message);
    r->prompts[0] = b.p ? b.p : strdup("");
    return rc ? rc : r->prompts[0] ? ES_OK : ES_ENOMEM;
}

/* What the built-in model cannot do is refused, not ignored. */
static int unsupported(const srv *s, const es_oai_req *q, es_sv_xchg *x)
{
    if (q->model && strcmp(q->model, s->o.model_name))
        return es_sv_reply_error(x, 404, "invalid_request_error", "model",
                                 "The model `%s` does not exist; this server serves `%s`", q->model,
                                 s->o.model_name),
               1;
    if (!isnan(q->top_p) && q->top_p < 1)
        return es_sv_reply_error(x, 400, "invalid_request_error", "top_p",
                                 "top_p < 1 is not supported by the built-in model (it samples the whole "
                                 "distribution)"),
               1;
    if (q->echo) return es_sv_reply_error(x, 400, "invalid_request_error", "echo", "echo is not supported"), 1;
    return 0;
}

static void submit(srv *s, sreq *r)
{
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < r->n_choices; i++) {
        schoice *c = &r->ch[i];
        c->qnext = NULL;
        if (s->wait_tail) s->wait_tail->qnext = c;
        else s->wait_head = c;
        s->wait_tail = c;
    }
    s->waiting += r->n_choices;
    r->sched_held = r->n_choices;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void handle_generate(srv *s, es_sv_xchg *x, int chat)
{
    es_oai_limits lim;
    es_oai_limits_default(&lim);
    s->m_req[chat]++;
    es_oai_req *q = es_sv_read_request(x, chat, &lim);
    if (!q) return;
    if (unsupported(s, q, x)) {
        es_oai_req_free(q);
        return;
    }
    sreq *r = calloc(1, sizeof *r);
    if (!r) {
        es_oai_req_free(q);
        es_sv_reply_error(x, 500, "server_error", NULL, "out of memory");
        return;
    }
    r->s = s;
    r->q = q;
    r->chat = chat;
    r->stream = q->stream;
    r->created = (long)time(NULL);
    r->t0 = es_sv_now();
    es_sv_request_id(r->id, sizeof r->id, chat ? "chatcmpl" : "cmpl", ++s->nreq);
    int rc = render_prompts(r, x);
    if (!rc && check_prompts(s, r, x)) rc = ES_EINVAL;
    if (!rc) rc = make_choices(s, r);
    if (rc == ES_ENOMEM) es_sv_reply_error(x, 500, "server_error", NULL, "out of memory");
    if (!rc) {
        pthread_mutex_lock(&s->mu);
        int busy = s->waiting + r->n_choices > s->o.max_queue;
        pthread_mutex_unlock(&s->mu);
        if (busy) {
            es_sv_reply_error(x, 503, "server_error", NULL, "the server is busy (%d choices waiting); retry later",
                              s->waiting);
            rc = ES_ERANGE;
        }
    }
    if (rc) {
        sreq_free(r);
        return;
    }
    r->next = s->all;
    if (s->all) s->all->prev = r;
    s->all = r;
    s->m_prompt_tok += (uint64_t)r->total_prompt_tokens;
    s->m_choices += (uint64_t)r->n_choices;
    r->x = x;
    es_sv_xchg_set_owner(x, r);
    if (r->stream) {
        es_sv_stream_begin(x, 200, "text/event-stream");
        if (chat) {
            es_sv_buf out = {0};
            for (int i = 0; i < r->n_choices; i++) {
                json_t *c = chunk_head(r);
                json_object_set_new(c, "choices", json_pack("[{s:i,s:{s:s,s:s},s:n,s:n}]", "index", i, "delta", "role",
                                                            "assistant", "content", "", "logprobs", "finish_reason"));
                es_sv_buf_sse(&out, c);
                json_decref(c);
            }
            es_sv_stream_write(x, out.p, out.n);
            es_sv_buf_free(&out);
        }
    }
    submit(s, r);
}

static void handle_metrics(srv *s, es_sv_xchg *x)
{
    es_sv_buf b = {0};
    es_sv_metric(&b, "earlystop_serve_requests_total", "counter", "generation requests by endpoint",
                 "endpoint=\"completions\"", (double)s->m_req[0]);
    es_sv_metric(&b, "earlystop_serve_requests_total", "counter", NULL, "endpoint=\"chat\"", (double)s->m_req[1]);
    es_sv_metric(&b, "earlystop_serve_choices_total", "counter", "choices (sequences) requested", NULL,
                 (double)s->m_choices);
    es_sv_metric(&b, "earlystop_serve_prompt_tokens_total", "counter", "prompt tokens", NULL, (double)s->m_prompt_tok);
    es_sv_metric(&b, "earlystop_serve_completion_tokens_total", "counter", "tokens generated", NULL,
                 (double)s->m_gen_tok);
    es_sv_metric(&b, "earlystop_serve_steps_total", "counter", "forward steps of the batch", NULL,
                 (double)atomic_load(&s->m_steps));
    es_sv_metric(&b, "earlystop_serve_running_sequences", "gauge", "sequences in the batch", NULL,
                 (double)atomic_load(&s->m_active));
    pthread_mutex_lock(&s->mu);
    int waiting = s->waiting;
    pthread_mutex_unlock(&s->mu);
    es_sv_metric(&b, "earlystop_serve_waiting_choices", "gauge", "choices waiting for a slot", NULL, (double)waiting);
    es_sv_metric(&b, "earlystop_serve_open_requests", "gauge", "HTTP requests open", NULL,
                 (double)es_sv_http_open(s->h));
    es_sv_hist_print(&b, "earlystop_serve_request_seconds", "time to the complete response", NULL, &s->h_req);
    es_sv_hist_print(&b, "earlystop_serve_first_chunk_seconds", "time to the first streamed token", NULL, &s->h_ttft);
    es_sv_reply(x, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.n);
    es_sv_buf_free(&b);
}

static void handle_models(srv *s, es_sv_xchg *x)
{
    json_t *m = json_pack("{s:s,s:s,s:I,s:s,s:i}", "id", s->o.model_name, "object", "model", "created",
                          (json_int_t)time(NULL), "owned_by", "earlystop", "max_model_len", s->seq_len);
    const char *path = es_sv_xchg_path(x);
    if (!strcmp(path, "/v1/models")) {
        json_t *v = json_pack("{s:s,s:[o]}", "object", "list", "data", m);
        es_sv_reply_json(x, 200, v);
        json_decref(v);
    } else if (!strcmp(path + strlen("/v1/models/"), s->o.model_name)) {
        es_sv_reply_json(x, 200, m);
        json_decref(m);
    } else {
        json_decref(m);
        es_sv_reply_error(x, 404, "invalid_request_error", "model", "The model `%s` does not exist",
                          path + strlen("/v1/models/"));
    }
}

/* Routes; a known path with the wrong method is a 405. */
static void on_request(void *ctx, es_sv_xchg *x)
{
    srv *s = ctx;
    const char *m = es_sv_xchg_method(x), *p = es_sv_xchg_path(x);
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST");
    if (!strcmp(p, "/v1/completions") || !strcmp(p, "/v1/chat/completions")) {
        if (!post) {
            es_sv_reply_error(x, 405, "invalid_request_error", NULL, "%s takes POST, not %s", p, m);
            return;
        }
        handle_generate(s, x, p[4] == 'c' && p[5] == 'h');
    } else if (!strcmp(p, "/v1/models") || !strncmp(p, "/v1/models/", 11)) {
        if (get) handle_models(s, x);
        else es_sv_reply_error(x, 405, "invalid_request_error", NULL, "%s takes GET, not %s", p, m);
    } else if (!strcmp(p, "/healthz") || !strcmp(p, "/health")) {
        es_sv_reply(x, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
    } else if (!strcmp(p, "/metrics")) {
        handle_metrics(s, x);
    } else {
        es_sv_reply_error(x, 404, "invalid_request_error", NULL, "no route %s %s", m, p);
    }
}

/* ------------------------------------------------------------------ run */

static int serve_setup(srv *s, es_error *err)
{
    int rc = es_lm_load(s->o.model_path, &s->m, err);
    if (rc) return rc;
    s->seq_len = es_lm_get_config(s->m)->seq_len;
    if (s->o.threads > 1 && (rc = es_lm_pool_new(s->o.threads, &s->pool, err)) != 0) return rc;
    if ((rc = es_lm_batch_new(s->m, s->o.max_seqs, s->pool, &s->b, err)) != 0) return rc;
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) return es_error_set(err, ES_EIO, NULL, 0, NULL, "eventfd: %s", strerror(errno));
    es_rng_seed(&s->seeds, s->o.seed);
    es_sv_http_cfg hc = {s->o.listen.host, s->o.listen.port, s->o.listen.api_key, s->o.listen.max_body,
                         s->o.listen.max_header, s->o.listen.header_timeout, s->o.listen.body_timeout,
                         s->o.listen.idle_timeout, s->o.listen.max_conns, on_request, on_gone, s,
                         s->o.listen.log, "serve"};
    if ((rc = es_sv_http_new(&hc, &s->h, err)) != 0) return rc;
    if (pthread_create(&s->th, NULL, sched_main, s))
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "cannot start the scheduler thread");
    s->th_started = 1;
    return ES_OK;
}

static void serve_teardown(srv *s)
{
    if (s->th_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
        /* the scheduler is gone: every request is the loop's alone */
        s->news = NULL;
        s->wait_head = s->wait_tail = NULL;
        for (sreq *r = s->all; r; r = r->next) r->dirty = r->sched_held = 0;
    }
    /* open requests get on_gone and are freed there; then the rest */
    if (s->h) es_sv_http_free(s->h);
    while (s->all) sreq_free(s->all);
    if (s->wake_fd > 0) close(s->wake_fd);
    es_lm_batch_free(s->b);
    es_lm_pool_free(s->pool);
    es_lm_free(s->m);
}

int es_serve_run(const es_serve_opts *o, es_error *err)
{
    srv *s = calloc(1, sizeof *s);
    if (!s) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "server");
    s->o = *o;
    s->wake_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = serve_setup(s, err);
    if (!rc && o->listen.on_ready) o->listen.on_ready(o->listen.ctx, o->listen.host, es_sv_http_port(s->h));
    while (!rc) {
        struct pollfd pfd[3] = {{es_sv_http_fd(s->h), POLLIN, 0}, {s->wake_fd, POLLIN, 0}, {o->listen.stop_fd, POLLIN, 0}};
        int n = poll(pfd, o->listen.stop_fd >= 0 ? 3 : 2, es_sv_http_timeout(s->h, 250));
        if (n < 0 && errno != EINTR) {
            rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "poll: %s", strerror(errno));
            break;
        }
        if (o->listen.stop_fd >= 0 && (pfd[2].revents & (POLLIN | POLLHUP))) break;
        if (pfd[1].revents & POLLIN) drain_news(s);
        es_sv_http_run(s->h);
    }
    serve_teardown(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return rc;
}
