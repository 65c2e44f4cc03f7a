/*
 * policy_int.h - the policy's internals, shared by policy.c (the object),
 * spec.c (spec strings) and session.c (the event driver).
 */
#ifndef ES_CORE_POLICY_INT_H
#define ES_CORE_POLICY_INT_H

#include "rule.h"

enum { ES_POLICY_MAX_RULES = 2 };

/* One rule with its parameters, as a spec names it. */
typedef struct es_rule_conf {
    const es_rule_def *def;
    double param[ES_RULE_MAX_PARAMS];
} es_rule_conf;

/* A rule in a policy: its configuration, the levels it serves there and
 * its state (def->state_size bytes). */
typedef struct es_rule_slot {
    es_rule_conf conf;
    unsigned levels;
    void *st;
} es_rule_slot;

struct es_policy {
    es_rule_slot slot[ES_POLICY_MAX_RULES + 1]; /* as named, then an implicit `full` */
    uint32_t n_slots, n_named;
    es_rule_slot *within, *across;              /* within may be NULL; across never is */
    /* the decision path reads these, cached from the slots */
    const es_rule_def *wd, *ad;
    void *wst, *ast;
    uint32_t min, max;          /* the across rule's caps, 0 = none */
    int clinch;                 /* the across rule's clinch=on (it answers its tally's leader) */
    es_policy_info info;
    uint32_t generation;        /* bumped when a parameter moves: drivers re-read info */
    int observe;                /* es_policy_observe: only the cap (and clinch) stops; ES_OBSERVE_ALL: the cap */
    int may_stop;               /* the last end_sample's may_stop (observe mode) */
    /* question */
    uint32_t cap, n_samples, max_answers;
    int32_t sample_answer;
    es_rule_msg msg;
    char spec[512];
    const es_stopper *stopper;  /* given at creation (a reference held), or NULL */
    const uint8_t *answer_flags;/* the driver's, for this question, or NULL */
};

/* clinch=on and the leader cannot be caught in the samples left: the full
 * run's answer is settled (strictly: a tie could go either way). */
static inline int es_policy_clinched(const es_policy *p)
{
    if (!p->clinch || !p->cap || p->n_samples >= p->cap) return 0;
    const es_tally *t = p->ad->tally(p->ast);
    return t->top1 > t->top2 + (p->cap - p->n_samples);
}

/* The across decision after one sample (es_policy_end_sample), inline so
 * that the session's per-sample path costs one indirect call into the rule. */
static inline int es_policy_end_sample_inline(es_policy *p, int32_t answer, uint32_t tokens, float confidence)
{
    if (answer < 0 || (uint32_t)answer >= p->max_answers) return ES_EINVAL;
    uint32_t n = ++p->n_samples;
    es_sample_event ev = {answer, tokens, confidence, n, n >= p->min, p->cap && n >= p->cap, p->cap, p->answer_flags};
    int rc = p->ad->end_sample(p->ast, &ev, &p->msg);
    if (rc < 0) return rc;
    if (!ev.last && p->observe != ES_OBSERVE_ALL && es_policy_clinched(p)) ev.last = 1;
    if (p->observe) {
        p->may_stop = ev.may_stop;
        return ev.last ? ES_STOP : ES_CONTINUE;
    }
    return (rc && ev.may_stop) || ev.last ? ES_STOP : ES_CONTINUE;
}

/* The message for an error es_policy_end_sample_inline returned. */
void es_policy_note_error(es_policy *p, int rc, int32_t answer);

/* spec.c */
void es_spec_list_rules(char *buf, size_t cap);
void es_spec_rule_defaults(const es_rule_def *d, es_rule_conf *c);
int es_spec_parse(const char *spec, es_rule_conf *out, uint32_t *n, es_error *err);
int es_spec_parse_value(const es_rule_def *d, const es_param_def *p, const char *text, double *out, es_error *err);
int es_spec_check_value(const es_rule_def *d, const es_param_def *p, double x, es_error *err);
void es_spec_format_value(const es_param_def *p, double x, char *buf, size_t cap);
size_t es_spec_format_rule(const es_rule_conf *c, char *buf, size_t cap);

#endif
