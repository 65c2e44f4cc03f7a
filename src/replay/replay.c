/*
 * replay.c - a recorded item fed to a session exactly as a live loop would
 * feed it: the session (src/core/session.c) owns the protocol, this file
 * only reads the trace in the order given.  A sample never drawn costs
 * nothing; probes are only made (and paid for) when the policy has a
 * within rule.
 */
#include "order.h"

/* Cost of probe j under the chosen accounting. */
static uint32_t probe_price(const es_item_view *v, uint32_t j, int32_t probe_cost)
{
    if (probe_cost >= 0) return (uint32_t)probe_cost;
    int32_t c = v->probe_cost[j];
    return c > 0 ? (uint32_t)c : 0;
}

int es_replay_begin_item(es_session *s, const es_item_view *v)
{
    int rc = es_session_begin_item(s, v->n_samples, v->n_answers);
    if (!rc) es_session_set_answer_flags(s, v->answer_flags);
    return rc;
}

/* Sample s with its probes: the probe points it reaches, the probes made,
 * then its own end (the session settles a stop or a cut). */
int es_replay_sample(es_session *s, const es_item_view *v, uint32_t k, int32_t probe_cost)
{
    es_session_begin_sample(s);
    /* a rule that stops only on cued probes: a live driver makes text probes
     * for it, never forced ones, so a probe without cues was not made */
    int cued_only = es_session_info(s)->needs_cues;
    for (uint32_t j = v->probe_off[k], e = v->probe_off[k + 1]; j < e; j++) {
        if (cued_only && !(v->probe_cues[j] & ES_CUE_READ)) continue;
        uint32_t at = v->probe_at[j];
        int reach = es_session_reach(s, at);
        if (reach == ES_SKIP) continue;
        if (reach == ES_STOP) break;
        int rc = es_session_probe(s, at, v->probe_answer[j], v->probe_confidence[j], v->probe_window_confidence[j],
                                  v->probe_cues[j], probe_price(v, j, probe_cost));
        if (rc < 0) return rc;
        if (rc == ES_STOP) break;
    }
    return es_session_end_sample(s, v->answer[k], v->tokens[k], v->confidence[k], 1);
}

/* Samples without probes go to the session a batch at a time: the order
 * fills of the lazy order (order.h), or the whole order. */
static int feed_lazy(es_session *s, const es_item_view *v, es_order *o)
{
    int rc = ES_CONTINUE;
    while (rc == ES_CONTINUE && o->drawn < o->n) {
        if (o->drawn == o->filled) es_order_fill(o);
        uint32_t used;
        rc = es_session_samples(s, o->idx + o->drawn, o->filled - o->drawn, v->answer, v->tokens, v->confidence, &used);
        o->drawn += used;
    }
    return rc;
}

static int feed_whole(es_session *s, const es_item_view *v, const uint32_t *order)
{
    uint32_t used;
    return es_session_samples(s, order, v->n_samples, v->answer, v->tokens, v->confidence, &used);
}

/* The replay loop; samples come from `lazy` when set (drawn only as the
 * policy asks for them), else from `order` (NULL = file order). */
static int replay_item(es_session *s, const es_item_view *v, const uint32_t *order, es_order *lazy,
                       int32_t probe_cost, es_outcome *out)
{
    int rc = es_replay_begin_item(s, v);
    if (rc) return rc;
    if (!es_session_info(s)->has_within) {
        rc = lazy ? feed_lazy(s, v, lazy) : feed_whole(s, v, order);
    } else {
        for (uint32_t i = 0; i < v->n_samples; i++) {
            uint32_t k = lazy ? es_order_next(lazy) : order ? order[i] : i;
            rc = es_replay_sample(s, v, k, probe_cost);
            if (rc < 0) return rc;
            if (rc == ES_STOP) break;
        }
    }
    if (rc < 0) return rc;
    *out = *es_session_end_item(s);
    out->correct = out->answer >= 0 && (uint32_t)out->answer < v->n_answers && v->correct[out->answer];
    return ES_OK;
}

int es_replay_item(es_session *s, const es_item_view *v, const uint32_t *order, int32_t probe_cost, es_outcome *out)
{
    return replay_item(s, v, order, NULL, probe_cost, out);
}

int es_replay_item_lazy(es_session *s, const es_item_view *v, es_order *o, int32_t probe_cost, es_outcome *out)
{
    return replay_item(s, v, NULL, o, probe_cost, out);
}
