/*
 * replay.c - run a policy over a recorded item exactly as a live loop would.
 *
 * The live loop and the replay share the policy object and the event order,
 * so that tokens saved in replay are tokens a live run saves: a sample the
 * within rule stops ends at the probe's `at`; a sample never drawn costs
 * nothing.  Probes are only made (and paid for) when a within rule exists.
 */
#include "order.h"
#include "policy.h"

/* Cost of probe j under the chosen accounting. */
static uint64_t probe_price(const es_item_view *v, uint32_t j, int32_t probe_cost)
{
    if (probe_cost >= 0) return (uint64_t)probe_cost;
    int32_t c = v->probe_cost[j];
    return c > 0 ? (uint64_t)c : 0;
}

/* Read probe f to the policy; on ES_STOP the sample ends at `at` answering
 * what the policy says (else that probe's answer). */
static int read_probe(es_policy *p, const es_item_view *v, uint32_t f, uint32_t at, int32_t *answer, uint32_t *tokens)
{
    int rc = es_policy_probe(p, v->probe_at[f], v->probe_answer[f], v->probe_confidence[f],
                             v->probe_window_confidence[f]);
    if (rc == ES_STOP) {
        *answer = es_policy_sample_answer(p);
        if (*answer < 0) *answer = v->probe_answer[f];
        *tokens = at;
    }
    return rc;
}

/* Feed sample s's probes; set its answer and tokens as the run would end it.
 * With a probe lag (Dynasor's cot.py: the probe of the prefix runs beside
 * the next chunk and is read once that chunk is out), probe j-1 is read when
 * the sample reaches probe j: a stop there ends the sample at probe j's
 * `at` without making probe j, and the last probe is never read. */
static int replay_sample(es_policy *p, const es_item_view *v, uint32_t s, int32_t probe_cost, uint32_t limit,
                         uint32_t lag, int32_t *answer, uint32_t *tokens, es_outcome *out)
{
    *answer = v->answer[s];
    *tokens = v->tokens[s];
    int32_t last = v->null_answer;
    uint32_t b = v->probe_off[s], e = v->probe_off[s + 1];
    for (uint32_t j = b; j < e; j++) {
        uint32_t at = v->probe_at[j];
        if (at > limit) break;
        int rc = lag && j > b ? read_probe(p, v, j - 1, at, answer, tokens) : ES_CONTINUE;
        if (rc) return rc == ES_STOP ? ES_OK : rc;
        out->probes++;
        out->probe_tokens += probe_price(v, j, probe_cost);
        last = v->probe_answer[j];
        rc = lag ? ES_CONTINUE : read_probe(p, v, j, at, answer, tokens);
        if (rc) return rc == ES_STOP ? ES_OK : rc;
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
    uint32_t limit = es_policy_token_limit(p), lag = es_policy_probe_lag(p);
    for (uint32_t i = 0; i < v->n_samples; i++) {
        uint32_t s = lazy ? es_order_next(lazy) : order ? order[i] : i;
        int32_t answer;
        uint32_t tokens;
        es_policy_begin_sample(p);
        if (probes) {
            rc = replay_sample(p, v, s, probe_cost, limit, lag, &answer, &tokens, out);
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
    out->rounds = es_policy_rounds(p, out->samples);
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
