/*
 * deer.c - DEER (2025): at each probe (a forced trial answer at a "Wait"),
 * stop when the trial answer's mean token probability exceeds the
 * threshold (strictly, as upstream), after min_tokens.
 */
#include <math.h>
#include <stdio.h>

#include "rules.h"

enum { P_THRESHOLD, P_MIN_TOKENS, P_EVERY };

typedef struct deer_state {
    double threshold;
    uint32_t min_tokens;
} deer_state;

static const es_param_def params[] = {
    {"threshold", ES_PARAM_REAL, 0.95, 0, 1, NULL, 0, 0, "stop when the probe's confidence exceeds it"},
    {"min_tokens", ES_PARAM_COUNT, 0, 0, 4e9, NULL, 0, 0, "ignore probes before this many tokens"},
    ES_PARAM_EVERY,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    deer_state *s = st;
    s->threshold = param[P_THRESHOLD];
    s->min_tokens = (uint32_t)param[P_MIN_TOKENS];
    return ES_OK;
}

static void begin_sample(void *st) { (void)st; }

static int probe(void *st, const es_probe_event *ev, es_rule_msg *msg)
{
    const deer_state *s = st;
    if (isnan(ev->confidence)) {
        snprintf(msg->text, sizeof msg->text,
                 "deer needs probe confidences (the probed answer's mean token probability); these probes carry none");
        return ES_ENOTSUP;
    }
    return ev->at >= s->min_tokens && ev->confidence > s->threshold && ev->answer != ES_NULL_ANSWER;
}

const es_rule_def es_rule_deer = {
    .name = "deer",
    .level = ES_LEVEL_WITHIN,
    .params = params,
    .n_params = 3,
    .min_param = -1,
    .max_param = -1,
    .state_size = sizeof(deer_state),
    .doc = "stop at a probe with confidence > threshold",
    .configure = configure,
    .begin_sample = begin_sample,
    .probe = probe,
    .needs_probes = 1,
    .every_param = P_EVERY,
};
