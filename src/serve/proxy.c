/* proxy.c - `earlystop proxy`: early stopping in front of any
 * OpenAI-compatible engine.
 *
 * One thread, one event loop: libcurl's multi interface waits on the
 * upstream transfers and on the HTTP front's epoll set together
 * (curl socket events on one epoll set with the front's), so a request costs no thread.
 *
 * A client request (a job) is drawn as samples, each its own upstream
 * stream with n = 1 and seed + i; samples go out in rounds of the across
 * rule's batch (one at a time for sequential rules, ESC's window, all of
 * them for `full`).  The policy sees the samples through an es_session in
 * the order they were asked for, exactly as a replay feeds a recorded trace
 * (src/replay/replay.c): probe points every P tokens, reach, probe, end of
 * sample.  The session's current sample is driven live: at a probe point
 * the proxy asks reach, makes the probe (a short greedy continuation with
 * the family's cue, beside the still running stream), hands its answer to
 * the session, and on STOP cancels the stream.  The other samples of a round
 * run ahead and make their probes ahead; their events are handed over when
 * their turn comes, so the decisions are the replay's whatever the timing.
 *
 * The client sees only settled text: tokens up to the next point where the
 * policy could still cut the sample are held (one probe's latency, at probe
 * points).  A stopped sample's text ends at its stop point, then the
 * answer cue and the model's short answer follow (the deciding probe's own
 * output when it was made there with the same cue, else an answer request)
 * and finish_reason is "stop".  The usage is what the upstream really
 * generated (tokens past a stop point while a probe ran included); probes
 * are reported apart, in the "earlystop" object.
 *
 * GET /v1/models[/{id}] is the upstream's: one GET on the same loop, its
 * answer passed on (handle_models).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "earlystop_io.h"
#include "sample.h"

typedef struct px px;
typedef struct pjob pjob;

/* What owns a client exchange: a job, or a forward (first member of both). */
enum { OWN_JOB = 1, OWN_FWD = 2 };

/* GET /v1/models[/{id}] passed to the upstream: the exchange and the call. */
typedef struct pfwd {
    int own;                   /* OWN_FWD */
    px *p;
    es_sv_xchg *x;
    es_sv_call *call;          /* NULL once answered */
} pfwd;

/* What the client gets of one sample. */
typedef struct pout {
    uint32_t sent;             /* tokens forwarded */
    int role_sent;
    int ended;                 /* the session settled it */
    int stopped;               /* cut by the policy (or forced at its token budget) */
    uint32_t tokens;           /* its tokens as the session settled them */
    int32_t answer_id;
    es_sv_call *ans_call;      /* the final answer being asked */
    int final_state;           /* 0 none needed, 1 waiting, 2 ready */
    es_sv_buf final_text;      /* cue + answer */
    int final_sent;
    uint32_t answer_tokens;
    uint32_t probe_tokens;     /* what its probes cost, as the session counted them */
    float confidence;
    char raw_answer[128];      /* the sample's answer as written */
} pout;

struct pjob {
    int own;                   /* OWN_JOB */
    px *p;
    pjob *prev, *next;
    es_sv_xchg *x;             /* NULL once the client left */
    es_oai_req *q;
    int chat, stream;
    char id[48];
    long created;
    es_sv_target t;
    es_policy *pol;
    es_session *ses;
    es_interner *in;
    es_policy_info info;
    uint32_t every;            /* tokens between probe points (0: none) */
    int para;                  /* paragraph probes instead (free, read off the text: sample.c) */
    uint32_t limit;            /* the policy's token budget (UINT32_MAX none) */
    int K, round;
    es_sv_sample *sm;
    pout *po;
    uint32_t *pt_next;         /* per sample: the next point not yet read */
    int reach_open;            /* the current sample's reach at pt_next said CONTINUE */
    int launched, cur, cur_begun;
    int done;                  /* the session's question is over */
    es_outcome out;
    char voted[128];
    int failed;
    long fail_status;
    char fail_msg[320];
    es_sv_buf fail_body;
    int stream_begun, finished;
    int audited;
    int controlled;            /* the controller's ticket runs it: observed at its end */
    es_controller_ticket ticket;
    uint32_t max_answers;
    uint64_t probe_seen;       /* the session's probe tokens at the last end_sample */
    double t0, t_first;
    uint64_t n_probes, probe_prompt, probe_completion;
};

struct px {
    es_proxy_opts o;
    es_sv_http *h;
    es_sv_up *up;
    es_policy *proto;
    pjob *jobs;
    uint64_t nreq;
    /* metrics */
    uint64_t m_req[2], m_status[6], m_samples, m_samples_asked, m_stopped, m_probes, m_probe_fail, m_up_err;
    uint64_t m_tok_prompt, m_tok_completion, m_tok_probe, m_tok_answer, m_tok_settled, m_saved, m_across_stops;
    uint64_t m_audits, m_ctl_err;
    uint64_t ctl_next;         /* the controller's next request id (after a restored state's) */
    double len_sum;            /* mean length of samples that ended by themselves: the saving estimate */
    uint64_t len_n;
    es_sv_hist h_req, h_first, h_chunk;
};

void es_proxy_opts_init(es_proxy_opts *o)
{
    memset(o, 0, sizeof *o);
    es_listen_opts_init(&o->listen);
    o->listen.port = 8081;
    o->policy = "dynasor:k=3+ac-beta";
    o->answer_type = ES_ANSWER_TEXT;
    o->probe_every = 32;
    o->max_n = 64;
    es_family_get("generic", &o->family);
    o->connect_timeout = 10;
    o->first_byte_timeout = 600;
    o->idle_timeout = 120;
    o->request_timeout = 3600;
    o->max_upstream = 512;
}

/* ------------------------------------------------------------ the job */

static void job_free(pjob *j)
{
    px *p = j->p;
    for (int i = 0; j->sm && i < j->K; i++) es_sv_sample_release(&j->sm[i]);
    for (int i = 0; j->po && i < j->K; i++) {
        if (j->po[i].ans_call) es_sv_call_cancel(j->po[i].ans_call);
        es_sv_buf_free(&j->po[i].final_text);
    }
    if (j->prev) j->prev->next = j->next;
    else if (p->jobs == j) p->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    free(j->sm);
    free(j->po);
    free(j->pt_next);
    es_session_free(j->ses);
    es_policy_free(j->pol);
    es_interner_free(j->in);
    json_decref(j->t.base);
    es_oai_req_free(j->q);
    es_sv_buf_free(&j->fail_body);
    free(j);
}

static void job_fail(pjob *j, long status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void job_fail(pjob *j, long status, const char *fmt, ...)
{
    if (j->failed) return;
    j->failed = 1;
    j->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->fail_msg, sizeof j->fail_msg, fmt, ap);
    va_end(ap);
}

static int32_t intern(pjob *j, int has, const char *a)
{
    if (!has) return ES_NULL_ANSWER;
    int32_t id = es_interner_intern(j->in, a);
    return id < 0 ? ES_NULL_ANSWER : id;
}

/* ------------------------------------------------------------ output */

static json_t *chunk_head(const pjob *j)
{
    const char *model = j->sm[0].model[0] ? j->sm[0].model : j->q->model ? j->q->model : "";
    return json_pack("{s:s,s:s,s:I,s:s}", "id", j->id, "object", j->chat ? "chat.completion.chunk" : "text_completion",
                     "created", (json_int_t)j->created, "model", model);
}

static void emit(pjob *j, es_sv_buf *out, json_t *choice)
{
    json_t *c = chunk_head(j);
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    es_sv_buf_sse(out, c);
    json_decref(c);
}

/* The logprob entries of tokens [a, b) in the client's form. */
static json_t *logprobs_of(const pjob *j, const es_sv_sample *s, uint32_t a, uint32_t b)
{
    if (!j->q->logprobs || !s->lp_json) return json_null();
    if (j->chat) {
        json_t *content = json_array();
        for (uint32_t i = a; i < b && i < json_array_size(s->lp_json); i++)
            json_array_append(content, json_array_get(s->lp_json, i));
        return json_pack("{s:o}", "content", content);
    }
    json_t *tok = json_array(), *lps = json_array(), *tops = json_array();
    for (uint32_t i = a; i < b && i < json_array_size(s->lp_json); i++) {
        json_t *e = json_array_get(s->lp_json, i);
        json_array_append(tok, json_object_get(e, "token"));
        json_array_append(lps, json_object_get(e, "logprob"));
        json_t *t = json_object_get(e, "top");
        json_array_append(tops, t ? t : json_null());
    }
    return json_pack("{s:o,s:o,s:o}", "tokens", tok, "token_logprobs", lps, "top_logprobs", tops);
}

/* Text of tokens [a, b) of one kind, without the think tags the sample
 * put around reasoning. */
static void span_text(const es_sv_sample *s, uint32_t a, uint32_t b, es_sv_buf *out)
{
    size_t from = es_sv_sample_prefix(s, a), to = es_sv_sample_prefix(s, b);
    const es_family *f = s->t->fam;
    const char *p = s->text.p ? s->text.p : "";
    if (s->had_reasoning) {
        size_t ol = strlen(f->think_open), cl = strlen(f->think_close);
        if (from == 0 && to >= ol && !strncmp(p, f->think_open, ol)) from = ol;
        if (!s->tok_kind[a] && to - from >= cl && cl && !strncmp(p + from, f->think_close, cl)) from += cl;
    }
    if (to > from) es_sv_buf_add(out, p + from, to - from);
}

/* Tokens [a, b) of sample i as chunks, one per run of reasoning or content. */
static void forward_tokens(pjob *j, int i, uint32_t a, uint32_t b, es_sv_buf *out)
{
    es_sv_sample *s = &j->sm[i];
    while (a < b) {
        uint32_t e = a + 1;
        while (e < b && s->tok_kind[e] == s->tok_kind[a]) e++;
        es_sv_buf txt = {0};
        span_text(s, a, e, &txt);
        json_t *ch = json_pack("{s:i,s:o,s:n}", "index", i, "logprobs", logprobs_of(j, s, a, e), "finish_reason");
        if (j->chat)
            json_object_set_new(ch, "delta", json_pack("{s:s%}", s->tok_kind[a] ? "reasoning_content" : "content",
                                                       txt.p ? txt.p : "", txt.n));
        else
            json_object_set_new(ch, "text", json_stringn(txt.p ? txt.p : "", txt.n));
        emit(j, out, ch);
        es_sv_buf_free(&txt);
        a = e;
    }
}

/* With paragraph probes the next cut is at the next paragraph end, whose
 * place is unknown until the splitter has found it: the text up to the
 * first paragraph probe not yet read, else up to where the splitter has not
 * yet decided (a paragraph may end there), is all that is settled. */
static uint32_t para_settled(const pjob *j, int i)
{
    const es_sv_sample *s = &j->sm[i];
    if (j->pt_next[i] < s->n_points) return s->probes[j->pt_next[i]].at;
    if (s->para.done || s->state == SAMPLE_DONE) return s->n;
    return es_sv_sample_tokens_before(s, s->para.pending ? s->para.pend_b : s->para.scan);
}

/* Tokens of sample i the policy can no longer cut. */
static uint32_t settled(const pjob *j, int i)
{
    const es_sv_sample *s = &j->sm[i];
    if (i < j->cur || j->done) return j->po[i].ended ? j->po[i].tokens : 0;
    if (i > j->cur) return 0;
    if (j->para) return para_settled(j, i);
    if (!j->every) return s->n;
    uint64_t next = (uint64_t)(j->pt_next[i] + 1) * j->every;
    return next < s->n ? (uint32_t)next : s->n;
}

static const char *finish_of(const pjob *j, int i)
{
    const pout *o = &j->po[i];
    if (o->stopped) return "stop";
    return j->sm[i].finish[0] ? j->sm[i].finish : "stop";
}

static json_t *es_summary(const pjob *j)
{
    int stopped = 0;
    for (int i = 0; i < j->K; i++) stopped += j->po[i].stopped;
    return json_pack("{s:s,s:s?,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:b}", "policy", es_policy_spec(j->pol), "answer",
                     j->voted[0] ? j->voted : NULL, "samples", (int)j->out.samples, "samples_requested", j->K,
                     "samples_stopped", stopped, "probes", (int)j->n_probes, "probe_prompt_tokens",
                     (json_int_t)j->probe_prompt, "probe_completion_tokens", (json_int_t)j->probe_completion,
                     "tokens_at_stop", (json_int_t)j->out.tokens, "probe_tokens", (json_int_t)j->out.probe_tokens,
                     "audited", j->audited);
}

static void usage_counts(const pjob *j, uint64_t *prompt, uint64_t *completion)
{
    *prompt = j->sm[0].prompt_tokens;
    *completion = 0;
    for (int i = 0; i < j->launched; i++) *completion += j->sm[i].n + j->po[i].answer_tokens;
}

static json_t *usage_json(const pjob *j)
{
    uint64_t p, c;
    usage_counts(j, &p, &c);
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)p, "completion_tokens", (json_int_t)c,
                     "total_tokens", (json_int_t)(p + c));
}

static int all_final(const pjob *j)
{
    if (!j->done) return 0;
    for (int i = 0; i < (int)j->out.samples; i++)
        if (j->po[i].final_state == 1) return 0;
    return 1;
}

static void begin_stream(pjob *j)
{
    if (j->stream_begun || !j->x) return;
    j->stream_begun = 1;
    es_sv_stream_begin(j->x, 200, "text/event-stream");
}

/* Streamed: what is settled goes out; at the end the final answers, the
 * finish reasons, the usage and [DONE]. */
static void stream_out(pjob *j)
{
    es_sv_buf out = {0};
    int last = j->done ? (int)j->out.samples - 1 : j->cur;
    double now = es_sv_now();
    for (int i = 0; i <= last && i < j->launched; i++) {
        pout *o = &j->po[i];
        es_sv_sample *s = &j->sm[i];
        if (j->chat && !o->role_sent) {
            json_t *ch = json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", i, "delta", "role", "assistant", "content", "",
                                   "logprobs", "finish_reason");
            emit(j, &out, ch);
            o->role_sent = 1;
        }
        uint32_t to = settled(j, i);
        if (to > o->sent) {
            forward_tokens(j, i, o->sent, to, &out);
            o->sent = to;
        }
        if (o->ended && !o->final_sent && o->final_state != 1 && (!j->done ? i < j->cur : 1)) {
            if (o->final_state == 2 && o->final_text.n) {
                json_t *ch = json_pack("{s:i,s:n,s:n}", "index", i, "logprobs", "finish_reason");
                if (j->chat) json_object_set_new(ch, "delta", json_pack("{s:s%}", "content", o->final_text.p, o->final_text.n));
                else json_object_set_new(ch, "text", json_stringn(o->final_text.p, o->final_text.n));
                emit(j, &out, ch);
            }
            json_t *ch = json_pack("{s:i,s:n,s:s}", "index", i, "logprobs", "finish_reason", finish_of(j, i));
            if (j->chat) json_object_set_new(ch, "delta", json_object());
            else json_object_set_new(ch, "text", json_string(""));
            if (j->done && i == (int)j->out.samples - 1 && !j->q->include_usage && all_final(j))
                json_object_set_new(ch, "earlystop", es_summary(j));
            emit(j, &out, ch);
            o->final_sent = 1;
        }
        (void)s;
    }
    int complete = all_final(j);
    for (int i = 0; complete && i < (int)j->out.samples; i++) complete = j->po[i].final_sent;
    if (complete) {
        if (j->q->include_usage) {
            json_t *u = chunk_head(j);
            json_object_set_new(u, "choices", json_array());
            json_object_set_new(u, "usage", usage_json(j));
            json_object_set_new(u, "earlystop", es_summary(j));
            es_sv_buf_sse(&out, u);
            json_decref(u);
        }
        es_sv_buf_str(&out, "data: [DONE]\n\n");
    }
    if (out.n) {
        begin_stream(j);
        es_sv_stream_write(j->x, out.p, out.n);
        if (!j->t_first) {
            j->t_first = now;
            es_sv_hist_add(&j->p->h_first, now - j->t0);
        }
    }
    es_sv_buf_free(&out);
    if (complete) {
        es_sv_stream_end(j->x);
        j->finished = 1;
    }
}

/* Not streamed: the whole response once every final answer is in. */
static void whole_out(pjob *j)
{
    if (!all_final(j)) return;
    json_t *choices = json_array();
    for (int i = 0; i < (int)j->out.samples; i++) {
        pout *o = &j->po[i];
        es_sv_sample *s = &j->sm[i];
        es_sv_buf content = {0}, reasoning = {0};
        uint32_t a = 0;
        while (a < o->tokens) {
            uint32_t e = a + 1;
            while (e < o->tokens && s->tok_kind[e] == s->tok_kind[a]) e++;
            span_text(s, a, e, s->tok_kind[a] ? &reasoning : &content);
            a = e;
        }
        if (o->final_state == 2) es_sv_buf_add(&content, o->final_text.p, o->final_text.n);
        json_t *ch = json_pack("{s:i,s:o,s:s}", "index", i, "logprobs", logprobs_of(j, s, 0, o->tokens),
                               "finish_reason", finish_of(j, i));
        if (j->chat) {
            json_t *m = json_pack("{s:s,s:s%}", "role", "assistant", "content", content.p ? content.p : "", content.n);
            if (reasoning.n) json_object_set_new(m, "reasoning_content", json_stringn(reasoning.p, reasoning.n));
            json_object_set_new(ch, "message", m);
        } else {
            json_object_set_new(ch, "text", json_stringn(content.p ? content.p : "", content.n));
        }
        json_array_append_new(choices, ch);
        es_sv_buf_free(&content);
        es_sv_buf_free(&reasoning);
    }
    const char *model = j->sm[0].model[0] ? j->sm[0].model : j->q->model ? j->q->model : "";
    json_t *v = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o,s:o}", "id", j->id, "object",
                          j->chat ? "chat.completion" : "text_completion", "created", (json_int_t)j->created, "model",
                          model, "choices", choices, "usage", usage_json(j), "earlystop", es_summary(j));
    es_sv_reply_json(j->x, 200, v);
    json_decref(v);
    j->finished = 1;
}

/* The error object of an upstream failure: the upstream's own when its body
 * is one, else ours saying msg. */
static json_t *upstream_error(const es_sv_buf *up_body, long status, const char *msg)
{
    if (up_body->n) {
        json_t *v = json_loadb(up_body->p, up_body->n, 0, NULL);
        if (json_is_object(json_object_get(v, "error"))) return v;
        json_decref(v);
    }
    return es_sv_error_json(status >= 500 ? "upstream_error" : "invalid_request_error", NULL, msg, NULL);
}

/* The status a client gets for an upstream failure: the upstream's error
 * status, else 502. */
static unsigned upstream_status(long status) { return status >= 400 && status < 600 ? (unsigned)status : 502; }

/* An upstream failure: its status and error object passed on when nothing
 * was sent yet, else an error event ends the stream. */
static void fail_out(pjob *j)
{
    px *p = j->p;
    p->m_up_err++;
    json_t *body = upstream_error(&j->fail_body, j->fail_status, j->fail_msg);
    if (p->o.listen.log)
        fprintf(p->o.listen.log, "earlystop proxy: %s: %s\n", j->id, j->fail_msg), fflush(p->o.listen.log);
    if (j->stream_begun) {
        es_sv_buf out = {0};
        es_sv_buf_sse(&out, body);
        es_sv_buf_str(&out, "data: [DONE]\n\n");
        es_sv_stream_write(j->x, out.p, out.n);
        es_sv_stream_end(j->x);
        es_sv_buf_free(&out);
    } else {
        es_sv_reply_json(j->x, upstream_status(j->fail_status), body);
    }
    json_decref(body);
    j->finished = 1;
}

/* ------------------------------------------------------- the session */

/* Samples of the next round go out together. */
static void launch_round(pjob *j)
{
    int b = j->round > 0 ? j->round : j->K;
    int end = j->launched + b < j->K ? j->launched + b : j->K;
    for (; j->launched < end; j->launched++) {
        es_sv_sample *s = &j->sm[j->launched];
        if (es_sv_sample_start(s)) {
            job_fail(j, 500, "out of memory starting sample %d", j->launched);
            return;
        }
        j->p->m_samples++;
    }
}

static int is_length(const es_sv_sample *s) { return !strcmp(s->finish, "length"); }

/* Point k of sample s (at = (k + 1) * every) is reached once a token after
 * it came, or the sample was cut right at it (the generator also probes at
 * its limit). */
static int point_reached(const pjob *j, const es_sv_sample *s, uint32_t at)
{
    if (s->n > at) return 1;
    return s->state == SAMPLE_DONE && is_length(s) && s->n >= at;
}

enum { C_WAIT = 0, C_STOPPED, C_END, C_FAIL };

/* The end of the current sample's events: done, failed, or more to come. */
static int consume_end(pjob *j, int i)
{
    es_sv_sample *s = &j->sm[i];
    if (s->state == SAMPLE_DONE) return C_END;
    if (s->state == SAMPLE_FAILED) {
        j->fail_status = s->err_status;
        if (s->err_body.n) es_sv_buf_add(&j->fail_body, s->err_body.p, s->err_body.n);
        job_fail(j, s->err_status, "sample %d: %s", i, s->err_msg);
        return C_FAIL;
    }
    return C_WAIT;
}

/* The policy refused a probe (DEER on probes without a confidence, as
 * `eval` refuses it on such a file): the request fails saying why, rather
 * than running on as if the rule had said continue. */
static int policy_failed(pjob *j, int i)
{
    const char *m = es_policy_errmsg(es_session_policy(j->ses));
    job_fail(j, 400, "earlystop.policy: sample %d: %s", i, m[0] ? m : "the policy refused a probe");
    return C_FAIL;
}

/* The next probe point of sample i, into *at: with paragraph probes the
 * next one the text has reached (free, made as it arrived), else the next
 * multiple of `every` the sample has reached.  0 when none is there yet. */
static int next_point(const pjob *j, int i, uint32_t *at)
{
    const es_sv_sample *s = &j->sm[i];
    uint32_t k = j->pt_next[i];
    if (j->para) {
        if (k >= s->n_points) return 0;
        *at = s->probes[k].at;
        return 1;
    }
    if (!j->every) return 0;
    *at = (k + 1) * j->every;
    return point_reached(j, s, *at);
}

/* Feed the current sample's points to the session as far as they go: reach
 * at each point, then its probe (a paragraph probe is made already and
 * costs nothing; a forced one is asked for here and may still be running). */
static int consume(pjob *j, int i)
{
    es_sv_sample *s = &j->sm[i];
    uint32_t at;
    while (next_point(j, i, &at)) {
        uint32_t k = j->pt_next[i];
        if (!j->reach_open) {
            int r = es_session_reach(j->ses, at);
            if (r == ES_STOP) return C_STOPPED;
            if (r == ES_SKIP) {
                j->pt_next[i]++;
                continue;
            }
            j->reach_open = 1;
        }
        es_sv_probe *pr = j->para ? &s->probes[k] : es_sv_sample_probe(s, k, at);
        if (!pr) return job_fail(j, 500, "out of memory for a probe"), C_FAIL;
        if (pr->state == PROBE_RUNNING) return C_WAIT;
        if (pr->state == PROBE_FAILED) {
            j->p->m_probe_fail++;
            if (j->p->o.listen.log)
                fprintf(j->p->o.listen.log, "earlystop proxy: %s: probe at %u of sample %d failed: %s\n", j->id, at, i,
                        pr->error),
                    fflush(j->p->o.listen.log);
        }
        int32_t id = pr->state == PROBE_DONE ? intern(j, pr->has_answer, pr->answer) : ES_NULL_ANSWER;
        uint32_t cost = es_sv_probe_cost(pr);
        j->n_probes++;
        j->probe_prompt += pr->prompt_tokens;
        j->probe_completion += pr->completion_tokens;
        int r = es_session_probe(j->ses, at, id, pr->confidence, pr->window_confidence, pr->cues, cost);
        j->reach_open = 0;
        j->pt_next[i]++;
        if (r < 0) return policy_failed(j, i);
        if (r == ES_STOP) return C_STOPPED;
    }
    return consume_end(j, i);
}

/* The probe made at `at` whose output can stand for the final answer. */
static const es_sv_probe *probe_at(const es_sv_sample *s, uint32_t every, uint32_t at)
{
    if (!every || !at || at % every) return NULL;
    uint32_t k = at / every - 1;
    if (k >= s->n_points || s->probes[k].state != PROBE_DONE) return NULL;
    return &s->probes[k];
}

/* A sample the policy cut (or forced at its budget) gets the cue and the
 * model's short answer: the probe's own output when it was made right
 * there with the same cue, else an answer request. */
static void final_answer(pjob *j, int i)
{
    pout *o = &j->po[i];
    es_sv_sample *s = &j->sm[i];
    const es_family *f = j->t.fam;
    const es_sv_probe *pr = probe_at(s, j->every, o->tokens);
    es_sv_buf_str(&o->final_text, f->cue_newline && o->tokens && s->text.p &&
                                          s->text.p[es_sv_sample_prefix(s, o->tokens) - 1] != '\n'
                                      ? "\n"
                                      : "");
    es_sv_buf_str(&o->final_text, f->answer_cue);
    if (pr && !strcmp(f->answer_cue, f->probe_cue)) {
        es_sv_buf_add(&o->final_text, pr->out.p, pr->out.n);
        o->final_state = 2;
        return;
    }
    o->ans_call = es_sv_sample_answer_call(s, o->tokens, j);
    if (!o->ans_call) {
        o->final_state = 2;
        return;
    }
    o->ans_call->tag = (uint32_t)i;
    o->final_state = 1;
}

/* The session settles sample i; returns its verdict on drawing more. */
static int end_sample(pjob *j, int i, int how)
{
    es_sv_sample *s = &j->sm[i];
    pout *o = &j->po[i];
    px *p = j->p;
    int has = es_family_sample_answer(j->t.fam, s->text.p ? s->text.p : "", o->raw_answer, sizeof o->raw_answer);
    int32_t own = intern(j, has, o->raw_answer);
    int complete = how == C_END && !is_length(s);
    if (how == C_STOPPED) es_sv_sample_cancel(s);
    int r = es_session_end_sample(j->ses, own, s->n, es_sv_sample_confidence(s), complete);
    es_session_last_sample(j->ses, &o->answer_id, &o->tokens);
    uint64_t seen = es_session_outcome(j->ses)->probe_tokens;
    o->probe_tokens = (uint32_t)(seen - j->probe_seen);
    j->probe_seen = seen;
    o->confidence = es_sv_sample_confidence(s);
    o->ended = 1;
    int forced = how == C_END && !complete && j->limit != UINT32_MAX && s->n >= j->limit;
    o->stopped = how == C_STOPPED || forced;
    if (o->stopped) {
        p->m_stopped++;
        if (p->len_n) {
            double avg = p->len_sum / (double)p->len_n;
            if (avg > o->tokens) p->m_saved += (uint64_t)(avg - o->tokens);
        }
        const char *key = es_interner_key(j->in, o->answer_id);
        (void)key;
        final_answer(j, i);
    } else if (complete) {
        p->len_sum += s->n;
        p->len_n++;
    }
    return r;
}

/* The controller learns from the samples the request drew, in the order
 * the session settled them (an audit: every one up to the cap). */
static void observe(pjob *j, const es_outcome *oc)
{
    px *p = j->p;
    uint32_t n = oc->samples;
    int32_t *ans = malloc((size_t)n * sizeof *ans + 1);
    uint32_t *tok = malloc((size_t)n * sizeof *tok + 1), *prb = malloc((size_t)n * sizeof *prb + 1);
    float *conf = malloc((size_t)n * sizeof *conf + 1);
    es_error err;
    memset(&err, 0, sizeof err);
    int rc = ES_ENOMEM;
    if (ans && tok && prb && conf) {
        for (uint32_t i = 0; i < n; i++) {
            ans[i] = j->po[i].answer_id;
            tok[i] = j->po[i].tokens;
            prb[i] = j->po[i].probe_tokens;
            conf[i] = j->po[i].confidence;
        }
        es_controller_request req = {&j->ticket, n, ans, tok, prb, conf, (uint32_t)j->K, j->max_answers};
        es_controller_result res;
        rc = es_controller_observe(p->o.controller, &req, &res, &err);
    }
    if (rc) {
        p->m_ctl_err++;
        if (p->o.listen.log) {
            fprintf(p->o.listen.log, "earlystop proxy: %s: the controller could not learn from it: %s\n", j->id,
                    rc == ES_ENOMEM ? "out of memory" : err.msg);
            fflush(p->o.listen.log);
        }
    }
    free(ans);
    free(tok);
    free(prb);
    free(conf);
}

/* The question is over: its outcome, the vote, the samples not drawn. */
static void end_item(pjob *j)
{
    px *p = j->p;
    const es_outcome *oc = es_session_end_item(j->ses);
    j->out = *oc;
    j->done = 1;
    for (int i = (int)oc->samples; i < j->launched; i++) es_sv_sample_cancel(&j->sm[i]);
    /* the answer as the samples wrote it: the first sample whose answer has the voted id */
    j->voted[0] = '\0';
    for (int i = 0; i < (int)oc->samples; i++) {
        if (j->po[i].answer_id != oc->answer || oc->answer == ES_NULL_ANSWER) continue;
        const char *key = es_interner_key(j->in, oc->answer);
        if (j->po[i].stopped || !j->po[i].raw_answer[0]) snprintf(j->voted, sizeof j->voted, "%s", key ? key : "");
        else snprintf(j->voted, sizeof j->voted, "%s", j->po[i].raw_answer);
        break;
    }
    if (!j->voted[0] && oc->answer != ES_NULL_ANSWER) {
        const char *key = es_interner_key(j->in, oc->answer);
        snprintf(j->voted, sizeof j->voted, "%s", key ? key : "");
    }
    if ((int)oc->samples < j->K) {
        p->m_across_stops++;
        if (p->len_n) p->m_saved += (uint64_t)((double)(j->K - (int)oc->samples) * p->len_sum / (double)p->len_n);
    }
    p->m_tok_settled += oc->tokens;
    p->m_probes += oc->probes;
    p->m_tok_probe += oc->probe_tokens;
    if (j->controlled) observe(j, oc);
}

/* Probes ahead on samples the session has not reached: the points it will
 * read (every m-th, within the budget) are asked as they are passed. */
static void probe_ahead(pjob *j, int i)
{
    es_sv_sample *s = &j->sm[i];
    if (!j->every || s->state == SAMPLE_CANCELLED) return;
    uint32_t m = j->info.probe_every ? j->info.probe_every : 1;
    for (uint32_t k = 0;; k++) {
        uint32_t at = (k + 1) * j->every;
        if (!point_reached(j, s, at) || at > j->limit) break;
        if ((k + 1) % m == 0 && (k >= s->n_points || s->probes[k].state == PROBE_NONE)) es_sv_sample_probe(s, k, at);
    }
}

static void pump(pjob *j)
{
    if (j->finished || !j->x) return;
    while (!j->done && !j->failed) {
        if (j->cur >= j->launched) {
            launch_round(j);
            if (j->failed) break;
        }
        if (!j->cur_begun) {
            es_session_begin_sample(j->ses);
            j->cur_begun = 1;
            j->reach_open = 0;
        }
        int how = consume(j, j->cur);
        if (how == C_WAIT || how == C_FAIL) break;
        int r = end_sample(j, j->cur, how);
        j->cur++;
        j->cur_begun = 0;
        if (r == ES_STOP || j->cur >= j->K) end_item(j);
    }
    for (int i = j->cur + 1; !j->done && !j->failed && i < j->launched; i++) probe_ahead(j, i);
    if (j->failed) {
        fail_out(j);
        return;
    }
    /* the stream starts once the first sample's upstream said yes */
    if (j->stream) {
        if (j->sm[0].n || j->done || j->sm[0].state == SAMPLE_DONE) stream_out(j);
    } else {
        whole_out(j);
    }
    if (j->finished) {
        px *p = j->p;
        uint64_t pt, ct;
        usage_counts(j, &pt, &ct);
        p->m_tok_prompt += pt;
        p->m_tok_completion += ct;
        es_sv_hist_add(&p->h_req, es_sv_now() - j->t0);
        for (int i = 0; i < j->launched; i++) p->m_tok_answer += j->po[i].answer_tokens;
    }
}

/* ---------------------------------------------------------- upstream news */

static void models_done(pfwd *f, es_sv_call *c);

static void on_call(es_sv_call *c, void *ctx)
{
    px *p = ctx;
    pjob *j = NULL;
    double t_in = es_sv_now();
    if (c->kind == ES_SV_CALL_MODELS) {
        if (c->done) models_done(c->owner, c);
        return;
    }
    if (c->kind == ES_SV_CALL_SAMPLE) {
        es_sv_sample *s = c->owner;
        j = s->owner;
        if (!es_sv_sample_on_call(s, c)) return;
    } else if (c->kind == ES_SV_CALL_PROBE) {
        es_sv_sample *s = c->owner;
        j = s->owner;
        if (c->tag < s->n_points) es_sv_probe_on_call(&s->probes[c->tag], c);
        if (!c->done) return;
    } else {
        j = c->owner;
        if (!c->done) return;
        pout *o = &j->po[c->tag];
        es_sv_buf dec = {0};
        uint32_t pt, ct;
        float conf;
        char msg[160];
        o->ans_call = NULL;
        if (es_sv_decoded(c, j->chat, &dec, &pt, &ct, &conf, msg, sizeof msg) == 0) {
            es_sv_buf_add(&o->final_text, dec.p, dec.n);
            o->answer_tokens = ct;
        } else if (p->o.listen.log) {
            fprintf(p->o.listen.log, "earlystop proxy: %s: the final answer of sample %u failed: %s\n", j->id,
                    c->tag, msg);
            fflush(p->o.listen.log);
        }
        es_sv_buf_free(&dec);
        o->final_state = 2;
    }
    if (!j || j->finished) return;
    pump(j);
    es_sv_hist_add(&p->h_chunk, es_sv_now() - t_in);
}

/* --------------------------------------------------------- requests */

static void on_gone(void *ctx, es_sv_xchg *x)
{
    (void)ctx;
    int *own = es_sv_xchg_owner(x);
    if (!own) return;
    if (*own == OWN_FWD) {
        pfwd *f = (pfwd *)own;
        if (f->call) es_sv_call_cancel(f->call);
        free(f);
        return;
    }
    pjob *j = (pjob *)own;
    j->x = NULL;
    job_free(j);
}

/* GET /v1/models and /v1/models/{id}: asked of the upstream on the loop
 * (with the upstream key, or the client's Authorization when the proxy has
 * none, and the upstream timeouts), its answer passed on (models_done).  The
 * id comes unescaped from the HTTP front: escaped again for the upstream. */
static void handle_models(px *p, es_sv_xchg *x, const char *path)
{
    const char *id = path[10] ? path + 11 : NULL;
    char *esc = id ? curl_easy_escape(NULL, id, 0) : NULL;
    char up[1024];
    snprintf(up, sizeof up, "/v1/models%s%s", esc ? "/" : "", esc ? esc : "");
    pfwd *f = (!id || esc) ? malloc(sizeof *f) : NULL;
    curl_free(esc);
    if (f) *f = (pfwd){OWN_FWD, p, x, NULL};
    const char *auth = p->o.upstream_key ? NULL : es_sv_xchg_header(x, "Authorization");
    if (f && !(f->call = es_sv_call_start(p->up, up, NULL, 0, auth, f, ES_SV_CALL_MODELS))) {
        free(f);
        f = NULL;
    }
    if (f) es_sv_xchg_set_owner(x, f);
    else es_sv_reply_error(x, 500, "server_error", NULL, "out of memory");
}

/* The upstream's answer to a models request: a 2xx JSON body as it came,
 * a failure as the other routes pass one on (its status and error object,
 * 502 unreachable, 504 timed out).  f itself goes with the exchange. */
static void models_done(pfwd *f, es_sv_call *c)
{
    char msg[320];
    f->call = NULL;
    long st = es_sv_call_failure(c, msg, sizeof msg);
    json_t *v = st ? NULL : json_loadb(c->in.p ? c->in.p : "", c->in.n, 0, NULL);
    if (!st && !v) {
        st = 502;
        snprintf(msg, sizeof msg, "the upstream's %s answer is not JSON", es_sv_xchg_path(f->x));
    }
    if (v) {
        es_sv_reply(f->x, (unsigned)c->status, "application/json", c->in.p, c->in.n);
        json_decref(v);
        return;
    }
    f->p->m_up_err++;
    if (f->p->o.listen.log)
        fprintf(f->p->o.listen.log, "earlystop proxy: %s: %s\n", es_sv_xchg_path(f->x), msg), fflush(f->p->o.listen.log);
    json_t *body = upstream_error(&c->in, st, msg);
    es_sv_reply_json(f->x, upstream_status(st), body);
    json_decref(body);
}

/* The controller's ticket for a request on the default policy: its live
 * threshold, or an audit (observe mode: drawn to the cap, the full run's
 * vote answered).  A request's "earlystop.max_em_drop" below the
 * controller's em-loss budget (or with a cost target) runs at the most
 * conservative candidate instead, outside the controller's traffic. */
static int control(px *p, pjob *j, es_sv_xchg *x)
{
    double drop = j->q->es_max_em_drop;
    es_controller *ctl = p->o.controller;
    if (!isnan(drop) && !ctl) {
        es_sv_reply_error(x, 400, "invalid_request_error", "earlystop.max_em_drop",
                          "earlystop.max_em_drop needs the online controller (earlystop proxy --controller ...)");
        return -1;
    }
    if (!isnan(drop) && j->q->es_policy) {
        es_sv_reply_error(x, 400, "invalid_request_error", "earlystop.max_em_drop",
                          "earlystop.max_em_drop goes with the proxy's policy, not with earlystop.policy");
        return -1;
    }
    if (!ctl || j->q->es_policy) return 0;
    es_controller_begin(ctl, p->ctl_next++, &j->ticket);
    if (!isnan(drop) && !(p->o.controller_em_loss > 0 && drop >= p->o.controller_em_loss)) {
        j->ticket.candidate = 0;
        j->ticket.value = es_controller_candidate(ctl, 0);
        j->ticket.audit = 0;
    } else {
        j->controlled = 1;
    }
    es_error err;
    memset(&err, 0, sizeof err);
    if (es_controller_apply(ctl, &j->ticket, j->pol, &err)) {
        es_sv_reply_error(x, 500, "server_error", NULL, "the controller: %s", err.msg);
        return -1;
    }
    if (j->controlled && j->ticket.audit) {
        j->audited = 1;
        p->m_audits++;
    }
    return 0;
}

/* The policy of a request: the proxy's, or the body's "earlystop.policy"
 * (a spec string only: a client never names a file on this machine). */
static int job_policy(px *p, pjob *j, es_sv_xchg *x)
{
    es_error err;
    memset(&err, 0, sizeof err);
    int rc = j->q->es_policy ? es_policy_new(j->q->es_policy, &j->pol, &err) : es_policy_clone(p->proto, &j->pol, &err);
    if (rc) {
        es_sv_reply_error(x, 400, "invalid_request_error", "earlystop.policy", "earlystop.policy: %s", err.msg);
        return -1;
    }
    if (control(p, j, x)) return -1;
    es_policy_get_info(j->pol, &j->info);
    if (j->info.needs_probes && p->o.probe_at == ES_PROBE_AT_TOKENS && p->o.probe_every <= 0) {
        es_sv_reply_error(x, 400, "invalid_request_error", "earlystop.policy",
                          "policy '%s' decides on probes, and this proxy runs with --probe-every 0",
                          es_policy_spec(j->pol));
        return -1;
    }
    return 0;
}

static int job_setup(px *p, pjob *j)
{
    const es_oai_req *q = j->q;
    j->K = q->n;
    /* a rule that reads text cues gets paragraph probes, whatever --probe-at:
     * forced probes carry no cues, and they cost requests */
    j->para = j->info.has_within && (p->o.probe_at == ES_PROBE_AT_PARAGRAPHS || j->info.reads_cues);
    j->every = j->info.has_within && !j->para && p->o.probe_every > 0 ? (uint32_t)p->o.probe_every : 0;
    j->limit = j->info.token_limit;
    j->round = j->info.batch == 0 ? j->K : (int)j->info.batch;
    j->t.up = p->up;
    j->t.chat = j->chat;
    j->t.base = json_deep_copy(q->root);
    j->t.fam = &p->o.family;
    j->t.has_seed = q->has_seed;
    j->t.seed = q->seed;
    j->t.max_tokens = q->max_tokens > 0 ? q->max_tokens : 0;
    if (j->limit != UINT32_MAX && (j->t.max_tokens <= 0 || (uint32_t)j->t.max_tokens > j->limit))
        j->t.max_tokens = (int)j->limit;
    j->t.top_k = q->top_logprobs > 5 ? q->top_logprobs : 5;
    j->t.continuous_usage = 1;
    j->t.keep_logprobs = q->logprobs;
    j->t.window = 32;
    j->t.paragraphs = j->para;
    j->t.answer_type = p->o.answer_type;
    j->sm = calloc((size_t)j->K, sizeof *j->sm);
    j->po = calloc((size_t)j->K, sizeof *j->po);
    j->pt_next = calloc((size_t)j->K, sizeof *j->pt_next);
    uint32_t max_answers = 1024 + 64 * (uint32_t)j->K;
    j->max_answers = max_answers;
    if (!j->t.base || !j->sm || !j->po || !j->pt_next ||
        es_interner_new(p->o.answer_type, max_answers, (size_t)max_answers * 64, &j->in) ||
        es_session_new(j->pol, &j->ses))
        return ES_ENOMEM;
    for (int i = 0; i < j->K; i++)
        if (es_sv_sample_init(&j->sm[i], &j->t, i, j)) return ES_ENOMEM;
    if (es_session_begin_item(j->ses, (uint32_t)j->K, max_answers)) return ES_ENOMEM;
    return ES_OK;
}

static void handle_generate(px *p, es_sv_xchg *x, int chat)
{
    es_oai_limits lim;
    es_oai_limits_default(&lim);
    lim.max_n = p->o.max_n;
    p->m_req[chat]++;
    es_oai_req *q = es_sv_read_request(x, chat, &lim);
    if (!q) return;
    if (!chat && q->n_prompts != 1) {
        es_oai_req_free(q);
        es_sv_reply_error(x, 400, "invalid_request_error", "prompt", "the proxy takes one prompt per request");
        return;
    }
    pjob *j = calloc(1, sizeof *j);
    if (!j) {
        es_oai_req_free(q);
        es_sv_reply_error(x, 500, "server_error", NULL, "out of memory");
        return;
    }
    j->own = OWN_JOB;
    j->p = p;
    j->q = q;
    j->chat = chat;
    j->stream = q->stream;
    j->created = (long)time(NULL);
    j->t0 = es_sv_now();
    j->t.client_auth = NULL;
    es_sv_request_id(j->id, sizeof j->id, chat ? "chatcmpl" : "cmpl", ++p->nreq);
    if (job_policy(p, j, x)) {
        job_free(j);
        return;
    }
    if (job_setup(p, j)) {
        job_free(j);
        es_sv_reply_error(x, 500, "server_error", NULL, "out of memory");
        return;
    }
    /* the client's key goes upstream only when the proxy has none of its own */
    if (!p->o.upstream_key) j->t.client_auth = es_sv_xchg_header(x, "Authorization");
    p->m_samples_asked += (uint64_t)j->K;
    j->x = x;
    es_sv_xchg_set_owner(x, j);
    j->next = p->jobs;
    if (p->jobs) p->jobs->prev = j;
    p->jobs = j;
    pump(j);
}

/* The controller's state: where it sits, what it aims at, what it did. */
static void controller_metrics(px *p, es_sv_buf *b)
{
    es_controller_status st;
    es_controller_get_status(p->o.controller, &st);
    char labels[160];
    snprintf(labels, sizeof labels, "param=\"%s\"", es_controller_param_name(p->o.controller));
    es_sv_metric(b, "earlystop_proxy_controller_value", "gauge", "the live value of the parameter the controller moves",
                 labels, st.value);
    es_sv_metric(b, "earlystop_proxy_controller_position", "gauge",
                 "the controller's position among its candidates (0 = the most conservative)", NULL, st.position);
    es_sv_metric(b, "earlystop_proxy_controller_audit_probability", "gauge", "the current audit probability", NULL,
                 st.audit_prob);
    es_sv_metric(b, "earlystop_proxy_controller_estimate", "gauge",
                 "the target's measure estimated at the position (tokens, bytes or a loss rate)", NULL, st.estimate);
    es_sv_metric(b, "earlystop_proxy_controller_aim", "gauge", "what the controller aims at: the budget less its margin "
                 "and audits", NULL, st.aim);
    es_sv_metric(b, "earlystop_proxy_controller_requests_total", "counter",
                 "requests the controller learnt from (a restored state's included)", NULL, (double)st.requests);
    es_sv_metric(b, "earlystop_proxy_controller_shifts_total", "counter", "shifts the controller detected", NULL,
                 (double)st.shifts);
    es_sv_metric(b, "earlystop_proxy_controller_fallbacks_total", "counter", "falls back to the conservative end", NULL,
                 (double)st.fallbacks);
    es_sv_metric(b, "earlystop_proxy_controller_audit_token_share", "gauge", "recent share of tokens spent on audits",
                 NULL, st.audit_token_share);
    es_sv_metric(b, "earlystop_proxy_controller_infeasible", "gauge", "1 when no candidate can meet the target", NULL,
                 (double)st.infeasible);
    es_sv_metric(b, "earlystop_proxy_controller_errors_total", "counter", "requests the controller could not learn from",
                 NULL, (double)p->m_ctl_err);
}

static void handle_metrics(px *p, es_sv_xchg *x)
{
    es_sv_buf b = {0};
    es_sv_metric(&b, "earlystop_proxy_requests_total", "counter", "client requests by endpoint",
                 "endpoint=\"completions\"", (double)p->m_req[0]);
    es_sv_metric(&b, "earlystop_proxy_requests_total", "counter", NULL, "endpoint=\"chat\"", (double)p->m_req[1]);
    es_sv_metric(&b, "earlystop_proxy_samples_requested_total", "counter", "samples the clients asked for (n)", NULL,
                 (double)p->m_samples_asked);
    es_sv_metric(&b, "earlystop_proxy_samples_drawn_total", "counter", "samples started upstream", NULL,
                 (double)p->m_samples);
    es_sv_metric(&b, "earlystop_proxy_stops_total", "counter", "stops by level: samples cut by the within rule, "
                 "questions that drew fewer samples than asked", "level=\"within\"", (double)p->m_stopped);
    es_sv_metric(&b, "earlystop_proxy_stops_total", "counter", NULL, "level=\"across\"", (double)p->m_across_stops);
    es_sv_metric(&b, "earlystop_proxy_probes_total", "counter", "probes read by the policy", NULL, (double)p->m_probes);
    es_sv_metric(&b, "earlystop_proxy_probe_failures_total", "counter", "probes the upstream failed (read as no answer)",
                 NULL, (double)p->m_probe_fail);
    es_sv_metric(&b, "earlystop_proxy_upstream_errors_total", "counter", "requests failed by the upstream", NULL,
                 (double)p->m_up_err);
    es_sv_metric(&b, "earlystop_proxy_tokens_total", "counter",
                 "tokens: prompt and completion as the upstream counted them for the samples, probe cost, final "
                 "answers, and the samples' tokens up to their stop points",
                 "kind=\"prompt\"", (double)p->m_tok_prompt);
    es_sv_metric(&b, "earlystop_proxy_tokens_total", "counter", NULL, "kind=\"completion\"", (double)p->m_tok_completion);
    es_sv_metric(&b, "earlystop_proxy_tokens_total", "counter", NULL, "kind=\"probe\"", (double)p->m_tok_probe);
    es_sv_metric(&b, "earlystop_proxy_tokens_total", "counter", NULL, "kind=\"answer\"", (double)p->m_tok_answer);
    es_sv_metric(&b, "earlystop_proxy_tokens_total", "counter", NULL, "kind=\"settled\"", (double)p->m_tok_settled);
    es_sv_metric(&b, "earlystop_proxy_tokens_saved_estimate_total", "counter",
                 "tokens not generated: samples not drawn and cut samples, against the mean length of samples that "
                 "ended by themselves (an estimate)",
                 NULL, (double)p->m_saved);
    es_sv_metric(&b, "earlystop_proxy_audits_total", "counter", "requests the controller audited (drawn to the cap)", NULL,
                 (double)p->m_audits);
    es_sv_metric(&b, "earlystop_proxy_open_requests", "gauge", "client requests open", NULL,
                 (double)es_sv_http_open(p->h));
    es_sv_metric(&b, "earlystop_proxy_upstream_calls", "gauge", "upstream calls in flight", NULL,
                 (double)es_sv_up_calls(p->up));
    for (uint32_t i = 0; i < es_policy_n_params(p->proto); i++) {
        es_param_info pi;
        if (es_policy_param(p->proto, i, &pi)) continue;
        char labels[160];
        snprintf(labels, sizeof labels, "rule=\"%s\",key=\"%s\"", pi.rule, pi.key);
        es_sv_metric(&b, "earlystop_proxy_policy_param", "gauge", i ? NULL : "the default policy's parameters as "
                     "given (the controller's live value: earlystop_proxy_controller_value)", labels, pi.value);
    }
    es_sv_hist_print(&b, "earlystop_proxy_request_seconds", "time to the complete response", NULL, &p->h_req);
    es_sv_hist_print(&b, "earlystop_proxy_first_chunk_seconds", "time to the first streamed chunk", NULL, &p->h_first);
    es_sv_hist_print(&b, "earlystop_proxy_chunk_processing_seconds",
                     "proxy time per upstream event: parsing, policy, forwarding (added latency per chunk, hold-back "
                     "at probe points excluded)", NULL, &p->h_chunk);
    if (p->o.controller) controller_metrics(p, &b);
    es_sv_reply(x, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.n);
    es_sv_buf_free(&b);
}

static void on_request(void *ctx, es_sv_xchg *x)
{
    px *p = ctx;
    const char *m = es_sv_xchg_method(x), *path = es_sv_xchg_path(x);
    int post = !strcmp(m, "POST");
    if (!strcmp(path, "/v1/completions") || !strcmp(path, "/v1/chat/completions")) {
        if (!post) es_sv_reply_error(x, 405, "invalid_request_error", NULL, "%s takes POST, not %s", path, m);
        else handle_generate(p, x, path[4] == 'c' && path[5] == 'h');
    } else if (!strcmp(path, "/v1/models") || (!strncmp(path, "/v1/models/", 11) && path[11])) {
        if (strcmp(m, "GET")) es_sv_reply_error(x, 405, "invalid_request_error", NULL, "%s takes GET, not %s", path, m);
        else handle_models(p, x, path);
    } else if (!strcmp(path, "/healthz") || !strcmp(path, "/health")) {
        es_sv_reply(x, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
    } else if (!strcmp(path, "/metrics")) {
        handle_metrics(p, x);
    } else {
        es_sv_reply_error(x, 404, "invalid_request_error", NULL,
                          "no route %s %s (the proxy serves POST /v1/completions, POST /v1/chat/completions, "
                          "GET /v1/models, GET /v1/models/{id} (asked of the upstream), GET /healthz, GET /metrics)",
                          m, path);
    }
}

/* ------------------------------------------------------------------ run */

int es_proxy_run(const es_proxy_opts *o, es_error *err)
{
    px *p = calloc(1, sizeof *p);
    if (!p) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "proxy");
    p->o = *o;
    int rc = o->proto ? es_policy_clone(o->proto, &p->proto, err) : es_policy_new_any(o->policy, &p->proto, err);
    if (o->controller) {
        es_controller_status st;
        es_controller_get_status(o->controller, &st);
        p->ctl_next = st.requests;
    }
    if (!rc) rc = es_sv_up_new(o->upstream, o->upstream_key, o->connect_timeout, o->idle_timeout, o->request_timeout,
                               o->max_upstream, &p->up, err);
    es_sv_http_cfg hc = {o->listen.host, o->listen.port, o->listen.api_key, o->listen.max_body, o->listen.max_header,
                         o->listen.header_timeout, o->listen.body_timeout, o->listen.idle_timeout, o->listen.max_conns,
                         on_request, on_gone, p, o->listen.log, "proxy"};
    if (!rc) rc = es_sv_http_new(&hc, &p->h, err);
    if (!rc && o->listen.on_ready) o->listen.on_ready(o->listen.ctx, o->listen.host, es_sv_http_port(p->h));
    enum { TAG_HTTP = 0, TAG_STOP = 1 };
    if (!rc && (es_sv_up_watch(p->up, es_sv_http_fd(p->h), TAG_HTTP) ||
                (o->listen.stop_fd >= 0 && es_sv_up_watch(p->up, o->listen.stop_fd, TAG_STOP))))
        rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "event loop: %s", strerror(errno));
    while (!rc) {
        unsigned ready = 0;
        if (es_sv_up_wait(p->up, es_sv_http_timeout(p->h, 500), &ready)) {
            rc = es_error_set(err, ES_EIO, NULL, 0, NULL, "event loop: %s", strerror(errno));
            break;
        }
        if (ready & (1u << TAG_STOP)) break;
        es_sv_up_dispatch(p->up, on_call, p);
        es_sv_http_run(p->h);
    }
    /* jobs go with their connections (on_gone), then whatever is left */
    if (p->h) es_sv_http_free(p->h);
    while (p->jobs) job_free(p->jobs);
    es_sv_up_free(p->up);
    es_policy_free(p->proto);
    free(p);
    return rc;
}
