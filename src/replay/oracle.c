/*
 * oracle.c - the bounds no policy can beat, as rows replayed over the same
 * orders as the policies:
 *  - consistency: the fewest first samples whose running majority equals the
 *    full majority from there on (it knows the future);
 *  - correctness: the fewest first samples to a correct running majority
 *    (it knows the gold answer);
 *  - stable-final: each trace cut where its probes settle on its final answer.
 * Every vote goes through es_tally, so ties go to the answer seen first in
 * the order replayed, as for the policies.
 */
#include <stdlib.h>

#include "order.h"

const char *es_oracle_name(es_oracle which)
{
    switch (which) {
    case ES_ORACLE_CONSISTENCY: return "consistency";
    case ES_ORACLE_CORRECTNESS: return "correctness";
    case ES_ORACLE_STABLE_FINAL: return "stable-final";
    }
    return "?";
}

typedef struct oracle_scratch {
    int32_t *ans;        /* [max samples] the answers in this order */
    es_tally *t;
    /* the item's votes over all its samples, which no order changes: top is
     * the largest count, unique the answer holding it alone (-1 on a tie) */
    uint32_t *all, top;
    int32_t unique;
} oracle_scratch;

/* Count the item's votes once, for every order (see majority_in). */
static void count_all(const es_item_view *v, oracle_scratch *s)
{
    for (uint32_t a = 0; a < v->n_answers; a++) s->all[a] = 0;
    for (uint32_t i = 0; i < v->n_samples; i++) s->all[v->answer[i]]++;
    uint32_t top = 0, holders = 0;
    for (uint32_t a = 0; a < v->n_answers; a++) {
        if (s->all[a] > top) {
            top = s->all[a];
            holders = 0;
            s->unique = (int32_t)a;
        }
        holders += s->all[a] == top;
    }
    s->top = top;
    if (holders > 1) s->unique = -1;
}

/* The majority of all samples in this order, ties to the answer seen first,
 * without counting again: only a tie looks at the order. */
static int32_t majority_in(const oracle_scratch *s, uint32_t n)
{
    if (s->unique >= 0) return s->unique;
    for (uint32_t i = 0; i + 1 < n; i++)
        if (s->all[s->ans[i]] == s->top) return s->ans[i];
    return s->ans[n - 1];
}

static uint64_t prefix_tokens(const es_item_view *v, const uint32_t *order, uint32_t n)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < n; i++) t += v->tokens[order[i]];
    return t;
}

/* Fewest first samples whose running majority is correct; n when never. */
static uint32_t correctness_oracle(const es_item_view *v, const oracle_scratch *s, int *ok)
{
    uint32_t found = 0;
    es_tally_reset(s->t);
    for (uint32_t i = 0; i < v->n_samples && !found; i++) {
        es_tally_add(s->t, s->ans[i]);
        if (v->correct[es_tally_leader(s->t)]) found = i + 1;
    }
    es_tally_reset(s->t);
    *ok = found > 0;
    return found ? found : v->n_samples;
}

/* Oracle outcome of one item in one order. */
static void oracle_item(const es_item_view *v, es_oracle which, const uint32_t *order, oracle_scratch *s,
                        es_outcome *o)
{
    uint32_t n = v->n_samples;
    for (uint32_t i = 0; i < n; i++) s->ans[i] = v->answer[order[i]];
    int32_t maj = majority_in(s, n);
    *o = (es_outcome){.answer = maj, .correct = v->correct[maj], .rounds = 1};
    if (which == ES_ORACLE_CONSISTENCY) {
        o->samples = es_consistency_oracle(s->ans, n, s->t);
        o->tokens = prefix_tokens(v, order, o->samples);
    } else if (which == ES_ORACLE_CORRECTNESS) {
        int ok;
        o->samples = correctness_oracle(v, s, &ok);
        o->correct = (uint8_t)ok;
        o->tokens = prefix_tokens(v, order, o->samples);
    } else {
        o->samples = n;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = order[i], b = v->probe_off[k], e = v->probe_off[k + 1];
            o->tokens += es_stable_final_tokens(v->probe_at + b, v->probe_answer + b, e - b, v->answer[k],
                                                v->tokens[k]);
        }
    }
}

int es_eval_oracle(const es_traceset *ts, es_oracle which, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, es_eval_acc *acc)
{
    uint32_t ms, ma;
    es_traceset_max_sizes(ts, &ms, &ma);
    uint32_t *order = malloc(ms * sizeof *order);
    oracle_scratch s = {malloc(ms * sizeof *s.ans), NULL, malloc(ma * sizeof *s.all), 0, -1};
    int rc = order && s.ans && s.all && es_tally_new(ma, &s.t) == ES_OK ? ES_OK : ES_ENOMEM;
    int file_order = shuffle_begin == 0 && shuffle_end == 0;
    es_item_view v;
    es_outcome o;
    for (size_t i = 0; i < es_traceset_n_items(ts) && rc == ES_OK; i++) {
        es_traceset_item(ts, i, &v);
        count_all(&v, &s);
        if (file_order) {
            for (uint32_t k = 0; k < v.n_samples; k++) order[k] = k;
            oracle_item(&v, which, order, &s, &o);
            es_eval_acc_add(&acc[i], &o);
        }
        for (uint32_t r = shuffle_begin; r < shuffle_end; r++) {
            es_shuffle_order(seed, r, (uint32_t)i, v.n_samples, order);
            oracle_item(&v, which, order, &s, &o);
            es_eval_acc_add(&acc[i], &o);
        }
    }
    free(order);
    free(s.ans);
    free(s.all);
    es_tally_free(s.t);
    return rc;
}
