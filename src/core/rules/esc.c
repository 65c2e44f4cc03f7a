/*
 * esc.c - Early-Stopping Self-Consistency (Li et al., ICLR 2024): samples in
 * windows of `window`; stop after the first window whose answers are all
 * equal, answering that window's answer; otherwise the majority of all.
 *
 * remainder=draw (default) draws every sample, the last partial window
 * included; remainder=skip reproduces the authors' scripts, which loop over
 * k // window whole windows and never draw the last k mod window samples
 * (docs/policies.md).  A window of nulls counts as unanimous, as in
 * early_stop_last.py.
 */
#include "rules.h"

enum { P_WINDOW, P_REMAINDER, P_MAX };

typedef struct esc_state {
    es_tally t;
    uint32_t window, skip_tail;
    uint32_t fill;
    int same;
    int32_t win_answer, answer;
} esc_state;
ES_RULE_TALLY_FIRST(esc_state);

static const es_param_def params[] = {
    {"window", ES_PARAM_COUNT, 5, 1, 1e6, NULL, 0, 0, "samples per window"},
    {"remainder", ES_PARAM_CHOICE, 0, 0, 0, "draw|skip", 0, 0, "the last partial window: draw it, or skip it as upstream"},
    ES_PARAM_MAX,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    esc_state *s = st;
    s->window = (uint32_t)param[P_WINDOW];
    s->skip_tail = (uint32_t)param[P_REMAINDER];
    return ES_OK;
}

static int begin_item(void *st, uint32_t max_answers)
{
    esc_state *s = st;
    s->fill = 0;
    s->same = 1;
    s->win_answer = s->answer = -1;
    return es_rule_tally_begin(&s->t, max_answers);
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    esc_state *s = st;
    int32_t a = ev->answer;
    es_tally_vote(&s->t, a);
    if (s->fill++ == 0) {
        s->win_answer = a;
        s->same = 1;
    } else if (a != s->win_answer) {
        s->same = 0;
    }
    if (s->fill < s->window) return ES_CONTINUE;
    s->fill = 0;
    if (!s->same) return ES_CONTINUE;
    s->answer = s->win_answer;
    return ES_STOP;
}

static int32_t answer(const void *st)
{
    const esc_state *s = st;
    return s->answer >= 0 ? s->answer : s->t.leader;
}

static uint32_t batch(const void *st) { return ((const esc_state *)st)->window; }

/* remainder=skip: whole windows only; fewer samples than a window: all */
static uint32_t sample_cap(const void *st, uint32_t cap)
{
    const esc_state *s = st;
    return s->skip_tail && cap >= s->window ? cap - cap % s->window : cap;
}

const es_rule_def es_rule_esc = {
    .name = "esc",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 3,
    .min_param = -1,
    .max_param = P_MAX,
    .state_size = sizeof(esc_state),
    .doc = "ESC: stop at the first unanimous window",
    .configure = configure,
    .release = es_rule_tally_release,
    .begin_item = begin_item,
    .end_sample = end_sample,
    .answer = answer,
    .batch = batch,
    .counts_only = 1,
    .sample_cap = sample_cap,
};
