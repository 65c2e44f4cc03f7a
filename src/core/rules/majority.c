/*
 * majority.c - stop once the leader holds `fraction` of the samples drawn
 * (Adaptive-Consistency's MajorityStoppingCriteria).
 */
#include <math.h>

#include "rules.h"

enum { P_FRACTION, P_MIN, P_MAX, P_CLINCH };

typedef struct majority_state {
    es_tally t;
    double fraction;
} majority_state;
ES_RULE_TALLY_FIRST(majority_state);

static const es_param_def params[] = {
    {"fraction", ES_PARAM_REAL, 0.8, 0, 1, NULL, 0, 0, "stop once the leader holds this share"},
    {"min", ES_PARAM_COUNT, 2, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
    ES_PARAM_CLINCH,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    ((majority_state *)st)->fraction = param[P_FRACTION];
    return ES_OK;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    majority_state *s = st;
    es_tally_vote(&s->t, ev->answer);
    return (double)s->t.top1 >= s->fraction * ev->n;
}

/* It stops iff top1 >= fraction * n in doubles: the largest fraction that
 * passes, found from top1 / n and checked with the very comparison. */
static int boundary(const void *st, double *b)
{
    const majority_state *s = st;
    double top = s->t.top1, n = s->t.votes, x = top / n;
    while (x * n > top) x = nextafter(x, -INFINITY);
    while (nextafter(x, INFINITY) * n <= top) x = nextafter(x, INFINITY);
    *b = x;
    return ES_BOUND_UPPER;
}

const es_rule_def es_rule_majority = {
    .name = "majority",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 4,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(majority_state),
    .doc = "stop once the leader holds a share of the votes",
    .configure = configure,
    .release = es_rule_tally_release,
    .begin_item = es_rule_tally_begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .counts_only = 1,
    .sweep_param = P_FRACTION,
    .boundary = boundary,
};
