/*
 * dynasor.c - Dynasor-CoT (2025) and its plain form, convergence.
 *
 * dynasor: probe every chunk; stop once the last k probed answers agree
 * (non-null).  decide=after-chunk (default) follows cot.py: the probe of a
 * prefix runs beside the next chunk and is read once that chunk is out, so a
 * stop costs one more chunk and the last probe is never read (the session
 * applies the lag); decide=at-probe reads each probe at once.
 * convergence:m: stop once the probed answer repeats m times after its first
 * appearance (m + 1 in a row), read at once: dynasor:k=m+1,decide=at-probe.
 */
#include "rules.h"

enum { P_K, P_MIN_TOKENS, P_DECIDE, P_EVERY };
enum { P_CONV_EVERY = 2 };

typedef struct streak_state {
    es_streak streak;
    uint32_t need, min_tokens, lag;
} streak_state;

static const es_param_def dynasor_params[] = {
    {"k", ES_PARAM_COUNT, 3, 1, 1e6, NULL, 0, 0, "agreeing probes in a row"},
    {"min_tokens", ES_PARAM_COUNT, 0, 0, 4e9, NULL, 0, 0, "ignore probes before this many tokens"},
    {"decide", ES_PARAM_CHOICE, 0, 0, 0, "after-chunk|at-probe", 0, 0,
     "read a probe after the next chunk (cot.py) or at once"},
    ES_PARAM_EVERY,
};

static const es_param_def convergence_params[] = {
    {"m", ES_PARAM_COUNT, 2, 1, 1e6, NULL, 0, 0, "repeats of the probed answer"},
    {"min_tokens", ES_PARAM_COUNT, 0, 0, 4e9, NULL, 0, 0, "ignore probes before this many tokens"},
    ES_PARAM_EVERY,
};

static int configure_dynasor(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    streak_state *s = st;
    s->need = (uint32_t)param[P_K];
    s->min_tokens = (uint32_t)param[P_MIN_TOKENS];
    s->lag = param[P_DECIDE] == 0;
    return ES_OK;
}

static int configure_convergence(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    streak_state *s = st;
    s->need = (uint32_t)param[P_K] + 1;
    s->min_tokens = (uint32_t)param[P_MIN_TOKENS];
    s->lag = 0;
    return ES_OK;
}

static void begin_sample(void *st)
{
    streak_state *s = st;
    s->streak.answer = -1;
    s->streak.len = 0;
}

static int probe(void *st, const es_probe_event *ev, es_rule_msg *msg)
{
    (void)msg;
    streak_state *s = st;
    return es_streak_push(&s->streak, ev->answer, s->need) && ev->at >= s->min_tokens;
}

static uint32_t probe_lag(const void *st) { return ((const streak_state *)st)->lag; }

const es_rule_def es_rule_dynasor = {
    .name = "dynasor",
    .level = ES_LEVEL_WITHIN,
    .params = dynasor_params,
    .n_params = 4,
    .min_param = -1,
    .max_param = -1,
    .state_size = sizeof(streak_state),
    .doc = "stop when the last k probed answers agree",
    .configure = configure_dynasor,
    .begin_sample = begin_sample,
    .probe = probe,
    .needs_probes = 1,
    .probe_lag = probe_lag,
    .every_param = P_EVERY,
};

const es_rule_def es_rule_convergence = {
    .name = "convergence",
    .level = ES_LEVEL_WITHIN,
    .params = convergence_params,
    .n_params = 3,
    .min_param = -1,
    .max_param = -1,
    .state_size = sizeof(streak_state),
    .doc = "stop when the probed answer repeats m times",
    .configure = configure_convergence,
    .begin_sample = begin_sample,
    .probe = probe,
    .needs_probes = 1,
    .every_param = P_CONV_EVERY,
};
