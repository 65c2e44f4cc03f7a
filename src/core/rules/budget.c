/*
 * budget.c - `budget:samples=N,tokens=T`: plain caps, as budget forcing (s1)
 * and the thinking budgets of vLLM and llama.cpp apply them.  samples caps
 * the samples drawn (the across half, through the policy's cap); tokens
 * caps each sample (the within half): the caller stops generating there and
 * the session forces the sample's answer (the last probe before the cap).
 */
#include <stdio.h>

#include "rules.h"

enum { P_SAMPLES, P_TOKENS, P_EVERY, P_CLINCH };

typedef struct budget_state {
    es_tally t;
    uint32_t samples, tokens, seen;
} budget_state;
ES_RULE_TALLY_FIRST(budget_state);

static const es_param_def params[] = {
    {"samples", ES_PARAM_COUNT, 0, 0, 1e9, NULL, 0, 1, "samples per question"},
    {"tokens", ES_PARAM_COUNT, 0, 0, 4e9, NULL, 0, 1, "tokens per sample"},
    ES_PARAM_EVERY,
    ES_PARAM_CLINCH,
};

static unsigned levels(const void *st, const double *param)
{
    (void)st;
    return (param[P_TOKENS] > 0 ? ES_LEVEL_WITHIN : 0u) | (param[P_SAMPLES] > 0 ? ES_LEVEL_ACROSS : 0u);
}

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    budget_state *b = st;
    if (!param[P_SAMPLES] && !param[P_TOKENS]) {
        snprintf(msg->text, sizeof msg->text, "budget: set samples=N and/or tokens=T");
        return ES_EINVAL;
    }
    b->samples = (uint32_t)param[P_SAMPLES];
    b->tokens = (uint32_t)param[P_TOKENS];
    return ES_OK;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    es_tally_vote(&((budget_state *)st)->t, ev->answer);
    return ES_CONTINUE; /* samples= is the policy's cap (max_param) */
}

static uint32_t batch(const void *st) { return ((const budget_state *)st)->samples; }

static void begin_sample(void *st) { ((budget_state *)st)->seen = 0; }

static int token(void *st, float logprob, float conf)
{
    (void)logprob;
    (void)conf;
    budget_state *b = st;
    return ++b->seen >= b->tokens ? ES_STOP : ES_CONTINUE;
}

static int probe(void *st, const es_probe_event *ev, es_rule_msg *msg)
{
    (void)msg;
    return ev->at >= ((budget_state *)st)->tokens ? ES_STOP : ES_CONTINUE;
}

static uint32_t token_limit(const void *st) { return ((const budget_state *)st)->tokens; }

const es_rule_def es_rule_budget = {
    .name = "budget",
    .level = ES_LEVEL_BOTH,
    .params = params,
    .n_params = 4,
    .min_param = -1,
    .max_param = P_SAMPLES,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(budget_state),
    .doc = "plain caps, samples=N and/or tokens=T (s1 budget forcing)",
    .levels = levels,
    .configure = configure,
    .release = es_rule_tally_release,
    .begin_item = es_rule_tally_begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .batch = batch,
    .counts_only = 1,
    .begin_sample = begin_sample,
    .token = token,
    .probe = probe,
    .token_limit = token_limit,
    .needs_probes = 0,
    .every_param = P_EVERY,
};
