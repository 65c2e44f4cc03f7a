/*
 * full.c - `full`: draw every sample (up to `max`), answer the majority.
 * The baseline every saving is measured against.
 */
#include "rules.h"

enum { P_MAX, P_CLINCH };

typedef struct full_state {
    es_tally t;
    uint32_t max;
} full_state;
ES_RULE_TALLY_FIRST(full_state);

static const es_param_def params[] = {ES_PARAM_MAX, ES_PARAM_CLINCH};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    ((full_state *)st)->max = (uint32_t)param[P_MAX];
    return ES_OK;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    es_tally_vote(&((full_state *)st)->t, ev->answer);
    return ES_CONTINUE; /* the policy's cap ends it */
}

/* every sample at once: one round (max = all) or rounds of `max` */
static uint32_t batch(const void *st) { return ((const full_state *)st)->max; }

const es_rule_def es_rule_full = {
    .name = "full",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 2,
    .min_param = -1,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(full_state),
    .doc = "every sample; majority vote",
    .configure = configure,
    .release = es_rule_tally_release,
    .begin_item = es_rule_tally_begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .batch = batch,
    .counts_only = 1,
};
