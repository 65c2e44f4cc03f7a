/*
 * session.c - the event protocol around a policy, in one place: the replay
 * of recorded traces, the live loop of the built-in model and the serving
 * proxy all drive a policy through it, so that what a replay decides is what
 * a live run does, by construction.
 *
 * Per question: begin_item, then per sample begin_sample, the probe points
 * the sample reaches (reach, then probe when the probe is made), and
 * end_sample with the sample's own end; then end_item.  The session decides
 * what the protocol leaves open:
 *  - which probes are made: none without a within rule; none past the token
 *    limit (the generator stops there);
 *  - the probe lag (Dynasor's cot.py): a probe is read when the sample
 *    reaches the next probe point, and a stop then ends the sample at that
 *    point without making its probe;
 *  - what a stopped sample answers: the rule's answer, else the last probe
 *    the policy read; where it ends: the probe point of the stop;
 *  - budget forcing: a sample cut at the token limit answers the last probe
 *    made at or before the limit (null if none);
 *  - the accounting: samples, rounds, tokens up to each sample's end, probes
 *    and what they cost.
 * Nothing here allocates after es_session_new.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

struct es_session {
    es_policy *p;
    es_policy_info info;
    uint32_t generation;      /* the policy's, when info was read */
    es_outcome out;
    uint32_t max_answers;
    /* the running sample */
    int32_t last_made;        /* answer of the last probe made (budget forcing) */
    int32_t last_read;        /* answer of the last probe the policy read */
    int pending;              /* a lag: a probe made, not yet read */
    uint32_t points;          /* probe points reached in this sample */
    es_probe_event held;
    int stopped;              /* the within rule ended the sample */
    uint32_t stop_at;
    int32_t stop_answer;
    /* the last finished sample */
    int32_t sample_answer;
    uint32_t sample_tokens;
    /* rounds of `batch` samples drawn at once */
    uint32_t batch, next_batch;
    uint64_t round_tokens;
};

int es_session_new(es_policy *p, es_session **out)
{
    *out = NULL;
    if (!p) return ES_EINVAL;
    es_session *s = calloc(1, sizeof *s);
    if (!s) return ES_ENOMEM;
    s->p = p;
    es_policy_get_info(p, &s->info);
    s->generation = p->generation;
    *out = s;
    return ES_OK;
}

void es_session_free(es_session *s) { free(s); }

es_policy *es_session_policy(const es_session *s) { return s->p; }

const es_policy_info *es_session_info(const es_session *s) { return &s->info; }

int es_session_begin_item(es_session *s, uint32_t max_samples, uint32_t max_answers)
{
    /* parameters may have moved between items (es_policy_set_param) */
    if (s->generation != s->p->generation) {
        es_policy_get_info(s->p, &s->info);
        s->generation = s->p->generation;
    }
    s->out = (es_outcome){.answer = -1};
    s->max_answers = max_answers;
    s->batch = s->next_batch > 1 ? s->next_batch : 1;
    s->round_tokens = 0;
    return es_policy_begin_item(s->p, max_samples, max_answers);
}

void es_session_begin_sample(es_session *s)
{
    s->last_made = s->last_read = ES_NULL_ANSWER;
    s->pending = s->stopped = 0;
    s->points = 0;
    es_policy_begin_sample(s->p);
}

/* The policy reads one probe; on a stop the sample ends at `at`. */
static int read_probe(es_session *s, const es_probe_event *ev, uint32_t at)
{
    s->last_read = ev->answer;
    int rc = es_policy_probe(s->p, ev->at, ev->answer, ev->confidence, ev->window_confidence, ev->cues);
    if (rc == ES_STOP) {
        int32_t a = es_policy_sample_answer(s->p);
        s->stopped = 1;
        s->stop_at = at;
        s->stop_answer = a >= 0 ? a : ev->answer;
    }
    return rc;
}

int es_session_reach(es_session *s, uint32_t at)
{
    if (!s->info.has_within || at > s->info.token_limit) return ES_STOP;
    /* every m-th point: the others are not probe points for the rule */
    if (++s->points % s->info.probe_every) return ES_SKIP;
    if (!s->info.probe_lag || !s->pending) return ES_CONTINUE;
    s->pending = 0;
    return read_probe(s, &s->held, at);
}

int es_session_probe(es_session *s, uint32_t at, int32_t answer, float confidence, float window_confidence,
                     uint32_t cues, uint32_t cost)
{
    s->out.probes++;
    s->out.probe_tokens += cost;
    s->last_made = answer;
    es_probe_event ev = {at, answer, confidence, window_confidence, cues, NULL};
    if (s->info.probe_lag) {
        s->held = ev;
        s->pending = 1;
        return ES_CONTINUE;
    }
    return read_probe(s, &ev, at);
}

int es_session_token(es_session *s, float logprob, float token_confidence)
{
    int rc = es_policy_token(s->p, logprob, token_confidence);
    if (rc == ES_STOP && !s->stopped) {
        int32_t a = es_policy_sample_answer(s->p);
        s->stopped = 1;
        s->stop_at = UINT32_MAX; /* where the caller stops: its token count */
        s->stop_answer = a >= 0 ? a : s->last_read;
    }
    return rc;
}

/* Count a finished sample: its tokens, and the round it belongs to for the
 * memory held at once. */
static inline void account(es_session *s, uint32_t tokens)
{
    s->out.samples++;
    s->out.tokens += tokens;
    s->round_tokens += tokens;
    if (s->round_tokens > s->out.kv_peak) s->out.kv_peak = s->round_tokens;
    if (s->out.samples % s->batch == 0) s->round_tokens = 0;
}

/* With rounds, the policy's verdict counts only at a round's end (its cap
 * still stops anywhere: the caller draws no more). */
static inline int round_verdict(const es_session *s, int rc)
{
    if (rc != ES_STOP || s->batch <= 1 || s->out.samples % s->batch == 0) return rc;
    return s->p->cap && s->out.samples >= s->p->cap ? ES_STOP : ES_CONTINUE;
}

/* The sample's end as the protocol has it, then the across decision. */
int es_session_end_sample(es_session *s, int32_t answer, uint32_t tokens, float confidence, int complete)
{
    uint32_t limit = s->info.token_limit;
    if (s->stopped) {
        answer = s->stop_answer;
        if (s->stop_at < tokens) tokens = s->stop_at;
    } else if (complete ? tokens > limit : tokens >= limit) {
        /* budget forcing: the answer forced at the cap is what the last probe
         * at or before it said; with no such probe nothing was said */
        tokens = limit;
        answer = s->last_made;
    }
    s->sample_answer = answer;
    s->sample_tokens = tokens;
    account(s, tokens);
    return round_verdict(s, es_policy_end_sample(s->p, answer, tokens, confidence));
}

/* The replay's hot path: without a within rule there is no probe state to
 * reset and no stop or cut to settle, only the across decision. */
int es_session_sample(es_session *s, int32_t answer, uint32_t tokens, float confidence)
{
    if (s->info.has_within) {
        es_session_begin_sample(s);
        return es_session_end_sample(s, answer, tokens, confidence, 1);
    }
    s->sample_answer = answer;
    s->sample_tokens = tokens;
    account(s, tokens);
    int rc = es_policy_end_sample_inline(s->p, answer, tokens, confidence);
    if (rc < 0) es_policy_note_error(s->p, rc, answer);
    return round_verdict(s, rc);
}

int es_session_samples(es_session *s, const uint32_t *idx, uint32_t n, const int32_t *answer, const uint32_t *tokens,
                       const float *confidence, uint32_t *used)
{
    *used = 0;
    if (s->info.has_within) return ES_EINVAL;
    es_policy *p = s->p;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = idx ? idx[i] : i;
        float c = confidence ? confidence[k] : (float)NAN;
        account(s, tokens[k]);
        int rc = round_verdict(s, es_policy_end_sample_inline(p, answer[k], tokens[k], c));
        if (rc) {
            *used = i + 1;
            s->sample_answer = answer[k];
            s->sample_tokens = tokens[k];
            if (rc < 0) es_policy_note_error(p, rc, answer[k]);
            return rc;
        }
    }
    *used = n;
    if (n) {
        uint32_t k = idx ? idx[n - 1] : n - 1;
        s->sample_answer = answer[k];
        s->sample_tokens = tokens[k];
    }
    return ES_CONTINUE;
}

void es_session_set_batch(es_session *s, uint32_t batch) { s->next_batch = batch; }

const es_outcome *es_session_outcome(const es_session *s) { return &s->out; }

void es_session_last_sample(const es_session *s, int32_t *answer, uint32_t *tokens)
{
    if (answer) *answer = s->sample_answer;
    if (tokens) *tokens = s->sample_tokens;
}

void es_session_set_answer_flags(es_session *s, const uint8_t *flags) { es_policy_set_answer_flags(s->p, flags); }

const es_outcome *es_session_end_item(es_session *s)
{
    s->out.rounds = es_policy_rounds(s->p, s->out.samples);
    s->out.answer = es_policy_answer(s->p);
    return &s->out;
}
