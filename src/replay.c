/*
 * replay.c - run a policy over a recorded item exactly as a live loop would.
 *
 * The live loop and the replay share the policy object and the event order,
 * so that tokens saved in replay are tokens a live run saves: a sample the
 * within rule stops ends at the probe's `at`; a sample never drawn costs
 * nothing.  Probes are only made (and paid for) when a within rule exists.
 */
#include "earlystop.h"
#include "order.h"

/* Cost of probe j under the chosen accounting. */
static uint64_t probe_price(const es_item_view *v, uint32_t j, int32_t probe_cost)
{
    if (probe_cost >= 0) return (uint64_t)probe_cost;
    int32_t c = v->probe_cost[j];
    return c > 0 ? (uint64_t)c : 0;
}

/* Feed sample s's probes; set its answer and tokens as the run would end it. */
static int replay_sample(es_policy *p, const es_item_view *v, uint32_t s, int32_t probe_cost, uint32_t limit,
                         int32_t *answer, uint32_t *tokens, es_outcome *out)
{
    *answer = v->answer[s];
    *tokens = v->tokens[s];
    int32_t last = v->null_answer;
    uint32_t b = v->probe_off[s], e = v->probe_off[s + 1];
    for (uint32_t j = b; j < e; j++) {
        uint32_t at = v->probe_at[j];
        if (at > limit) break;
        out->probes++;
        out->probe_tokens += probe_price(v, j, probe_cost);
        last = v->probe_answer[j];
        int rc = es_policy_probe(p, at, last, v->probe_confidence[j], v->probe_window_confidence[j]);
        if (rc < 0) return rc;
        if (rc == ES_STOP) {
            *answer = es_policy_sample_answer(p);
            if (*answer < 0) *answer = last;
            *tokens = at;
            return ES_OK;
        }
    }
    if (*tokens > limit) {
        /* budget forcing: the answer forced at the cap is what the last probe
         * before it said; with no such probe nothing was said */
        *tokens = limit;
        *answer = last >= 0 ? last : v->null_answer;
        if (*answer < 0) *answer = (int32_t)v->n_answers; /* a null id beyond the item's answers */
    }
    return ES_OK;
}

/* The replay loop; samples come from `lazy` when set (drawn only as the
 * policy asks for them), else from `order` (NULL = file order). */
static int replay_item(es_policy *p, const es_item_view *v, const uint32_t *order, es_order *lazy,
                       int32_t probe_cost, es_outcome *out)
{
    *out = (es_outcome){.answer = -1};
    /* +1: room for a forced null answer on items that have none */
    int rc = es_policy_begin_item(p, v->n_samples, v->n_answers + 1,
                                  v->null_answer >= 0 ? v->null_answer : (int32_t)v->n_answers);
    if (rc) return rc;
    int probes = es_policy_probes(p);
    uint32_t limit = es_policy_token_limit(p);
    for (uint32_t i = 0; i < v->n_samples; i++) {
        uint32_t s = lazy ? es_order_next(lazy) : order ? order[i] : i;
        int32_t answer;
        uint32_t tokens;
        es_policy_begin_sample(p);
        if (probes) {
            rc = replay_sample(p, v, s, probe_cost, limit, &answer, &tokens, out);
            if (rc) return rc;
        } else {
            answer = v->answer[s];
            tokens = v->tokens[s];
        }
        out->samples++;
        out->tokens += tokens;
        rc = es_policy_end_sample(p, answer, tokens, v->confidence[s]);
        if (rc < 0) return rc;
        if (rc == ES_STOP) break;
    }
    uint32_t batch = es_policy_batch(p);
    out->rounds = batch == 0 ? 1 : (out->samples + batch - 1) / batch;
    out->answer = es_policy_answer(p);
    out->correct = out->answer >= 0 && (uint32_t)out->answer < v->n_answers && v->correct[out->answer];
    return ES_OK;
}

int es_replay_item(es_policy *p, const es_item_view *v, const uint32_t *order, int32_t probe_cost,
                   es_outcome *out)
{
    return replay_item(p, v, order, NULL, probe_cost, out);
}

int es_replay_item_lazy(es_policy *p, const es_item_view *v, es_order *o, int32_t probe_cost, es_outcome *out)
{
    return replay_item(p, v, NULL, o, probe_cost, out);
}
