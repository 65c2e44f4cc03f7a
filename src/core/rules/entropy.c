/*
 * entropy.c - Adaptive-Consistency's EntropyStoppingCriteria: stop once the
 * normalised entropy of the vote is at most the threshold.  The counts go
 * in order of first vote, as upstream's Counter lists them, so the float
 * sum (posterior.c, scipy's order) is the same double.
 */
#include <stdlib.h>

#include "posterior.h"
#include "rules.h"

enum { P_THRESHOLD, P_MIN, P_MAX, P_CLINCH };

typedef struct entropy_state {
    es_tally t;
    double threshold;
    uint32_t *scratch, scratch_cap; /* counts in order of first vote */
} entropy_state;
ES_RULE_TALLY_FIRST(entropy_state);

static const es_param_def params[] = {
    {"threshold", ES_PARAM_REAL, 0.75, 0, 1, NULL, 0, 0, "stop once the normalised entropy is at most this"},
    {"min", ES_PARAM_COUNT, 2, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
    ES_PARAM_CLINCH,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    ((entropy_state *)st)->threshold = param[P_THRESHOLD];
    return ES_OK;
}

static void release(void *st)
{
    entropy_state *s = st;
    es_tally_release(&s->t);
    free(s->scratch);
    s->scratch = NULL;
    s->scratch_cap = 0;
}

static int begin_item(void *st, uint32_t max_answers)
{
    entropy_state *s = st;
    if (es_rule_tally_begin(&s->t, max_answers)) return ES_ENOMEM;
    if (s->scratch_cap < s->t.cap) {
        uint32_t *p = realloc(s->scratch, s->t.cap * sizeof *p);
        if (!p) return ES_ENOMEM;
        s->scratch = p;
        s->scratch_cap = s->t.cap;
    }
    return ES_OK;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    entropy_state *s = st;
    es_tally_vote(&s->t, ev->answer);
    if (!ev->may_stop) return ES_CONTINUE;
    for (uint32_t i = 0; i < s->t.n_seen; i++) s->scratch[i] = s->t.count[s->t.seen[i]];
    return es_vote_entropy_norm(s->scratch, s->t.n_seen) <= s->threshold;
}

/* It stops iff H <= threshold: at every threshold >= H. */
static int boundary(const void *st, double *b)
{
    const entropy_state *s = st;
    for (uint32_t i = 0; i < s->t.n_seen; i++) s->scratch[i] = s->t.count[s->t.seen[i]];
    *b = es_vote_entropy_norm(s->scratch, s->t.n_seen);
    return ES_BOUND_LOWER;
}

const es_rule_def es_rule_entropy = {
    .name = "entropy",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 4,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(entropy_state),
    .doc = "stop once the vote's normalised entropy is low",
    .configure = configure,
    .release = release,
    .begin_item = begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .counts_only = 1,
    .sweep_param = P_THRESHOLD,
    .boundary = boundary,
};
