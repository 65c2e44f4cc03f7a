/*
 * margin.c - stop once the leader is `m` votes ahead of the runner-up.
 *
 * The plainest vote rule there is, and the worked example of
 * docs/architecture.md: one file, one es_rule_def, one line in registry.c.
 * It reads the top two counts that its tally keeps current in O(1), like
 * ac-beta, but with a margin that does not grow with the samples drawn: a
 * 3-0 start stops at m = 3 as a 13-10 one does.
 */
#include "rules.h"

enum { P_M, P_MIN, P_MAX, P_CLINCH };

typedef struct margin_state {
    es_tally t;
    uint32_t m;
} margin_state;
ES_RULE_TALLY_FIRST(margin_state);

static const es_param_def params[] = {
    {"m", ES_PARAM_COUNT, 3, 1, 1e6, NULL, 0, 0, "votes the leader must be ahead by"},
    {"min", ES_PARAM_COUNT, 1, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
    ES_PARAM_CLINCH,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    ((margin_state *)st)->m = (uint32_t)param[P_M];
    return ES_OK;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    margin_state *s = st;
    es_tally_vote(&s->t, ev->answer);
    return s->t.top1 - s->t.top2 >= s->m;
}

/* It stops iff top1 - top2 >= m: at every m <= the lead; a tie stops at
 * no m the rule accepts (m >= 1). */
static int boundary(const void *st, double *b)
{
    const margin_state *s = st;
    *b = (double)(s->t.top1 - s->t.top2);
    return *b >= 1 ? ES_BOUND_UPPER : ES_BOUND_NEVER;
}

const es_rule_def es_rule_margin = {
    .name = "margin",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 4,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(margin_state),
    .doc = "stop once the leader is m votes ahead",
    .configure = configure,
    .release = es_rule_tally_release,
    .begin_item = es_rule_tally_begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .counts_only = 1,
    .sweep_param = P_M,
    .boundary = boundary,
};
