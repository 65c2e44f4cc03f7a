/*
 * learned.c - the learned stopper (docs/learning.md): a model scores the
 * state after each sample (across) and at each probe (within) from
 * features the rule keeps incrementally (feature.h), and the rule stops
 * once the score reaches the threshold.  The weights (es_stopper) come from
 * the policy: a stopper file loaded by the io layer, one a caller made, or
 * the shipped one (learned_builtin.c, from data/stopper.json).  The
 * stopper carries thresholds calibrated for several EM budgets;
 * max_em_drop picks one, `threshold` / `probe_threshold` override it (the
 * tuner sweeps `threshold` exactly through boundary()).
 *
 * Per decision: the model's dozen features from running sums, one small
 * net or two: no allocation, well under a microsecond (bench_learn).
 */
#include <math.h>
#include <stdio.h>

#include "feature.h"
#include "rules.h"
#include "stopper.h"

enum { P_THRESHOLD, P_PROBE_THRESHOLD, P_MAX_EM_DROP, P_LEVEL, P_MIN, P_MAX, P_CLINCH, P_EVERY };
enum { LEVEL_AUTO, LEVEL_WITHIN, LEVEL_ACROSS, LEVEL_BOTH };

/* `auto`: the stopper's calibrated threshold, outside every real value */
#define AUTO (-1e300)

typedef struct learned_state {
    es_feat f;
    const es_stopper *m;
    const es_stopper_head *across, *within;   /* the heads this instance serves */
    unsigned levels;
    double thr, pthr;
    uint32_t every;                           /* probe spacing read */
    double score;                             /* the last across score (boundary) */
} learned_state;

static const es_param_def params[] = {
    {"threshold", ES_PARAM_REAL, AUTO, -1e9, 1e9, "auto", AUTO, 2,
     "across: stop once the score reaches it (auto: the stopper's for max_em_drop)"},
    {"probe_threshold", ES_PARAM_REAL, AUTO, -1e9, 1e9, "auto", AUTO, 2,
     "within: end the sample once a probe's score reaches it (auto: the stopper's)"},
    {"max_em_drop", ES_PARAM_REAL, 0.1, 0, 100, NULL, 0, 0,
     "operating point: the stopper's thresholds calibrated to lose at most this many EM points"},
    {"level", ES_PARAM_CHOICE, 0, 0, 0, "auto|within|across|both", 0, 2, "levels served (auto: the stopper's heads)"},
    {"min", ES_PARAM_COUNT, 2, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
    {"clinch", ES_PARAM_CHOICE, 1, 0, 0, "off|on", 0, 2, "also stop once the leader cannot be caught"},
    {"every", ES_PARAM_COUNT, 0, 1, 1e6, "auto", 0, 2,
     "read every m-th probe point (auto: the spacing the within head was trained at)"},
};

static void attach(void *st, const es_stopper *m) { ((learned_state *)st)->m = m; }

/* The operating point for a budget: the largest calibrated budget within it. */
static int point_for(const es_stopper_desc *d, double budget, es_rule_msg *msg)
{
    int k = -1;
    for (uint32_t i = 0; i < d->n_points; i++)
        if (d->max_em_drop[i] <= budget + 1e-9) k = (int)i;
    if (k < 0)
        snprintf(msg->text, sizeof msg->text,
                 "learned: max_em_drop=%g is below the stopper's smallest calibrated budget (%g points)", budget,
                 d->max_em_drop[0]);
    return k;
}

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    learned_state *s = st;
    if (!s->m) {
        snprintf(msg->text, sizeof msg->text,
                 "learned: no stopper: this build ships none; load one (--policy @stopper.json, es_stopper_load)");
        return ES_EINVAL;
    }
    es_stopper_desc d;
    es_stopper_get(s->m, &d);
    const es_stopper_head *w = es_stopper_head_at(s->m, ES_AT_WITHIN), *a = es_stopper_head_at(s->m, ES_AT_ACROSS);
    int lv = (int)param[P_LEVEL];
    unsigned want = lv == LEVEL_WITHIN ? ES_LEVEL_WITHIN : lv == LEVEL_ACROSS ? ES_LEVEL_ACROSS
                    : lv == LEVEL_BOTH ? ES_LEVEL_BOTH : (w ? ES_LEVEL_WITHIN : 0u) | (a ? ES_LEVEL_ACROSS : 0u);
    if (((want & ES_LEVEL_WITHIN) && !w) || ((want & ES_LEVEL_ACROSS) && !a)) {
        snprintf(msg->text, sizeof msg->text, "learned: the stopper has no %s head (it has: %s%s%s)",
                 (want & ES_LEVEL_WITHIN) && !w ? "within" : "across", w ? "within" : "", w && a ? ", " : "",
                 a ? "across" : "");
        return ES_EINVAL;
    }
    /* a threshold for a level the policy does not serve would do nothing */
    if (param[P_THRESHOLD] != AUTO && !(want & ES_LEVEL_ACROSS)) {
        snprintf(msg->text, sizeof msg->text, "learned: threshold is the across head's, and this policy serves within only");
        return ES_EINVAL;
    }
    if (param[P_PROBE_THRESHOLD] != AUTO && !(want & ES_LEVEL_WITHIN)) {
        snprintf(msg->text, sizeof msg->text,
                 "learned: probe_threshold is the within head's, and this policy serves across only");
        return ES_EINVAL;
    }
    int k = point_for(&d, param[P_MAX_EM_DROP], msg);
    if (k < 0) return ES_EINVAL;
    a = es_stopper_head_for(s->m, (uint32_t)k, ES_AT_ACROSS); /* the point's own model */
    /* auto: a within head whose threshold at this point never fires (learn
     * writes 1e9 where nothing passed the budget) would only pay for probes */
    double pthr = param[P_PROBE_THRESHOLD] == AUTO ? d.probe_threshold[k] : param[P_PROBE_THRESHOLD];
    if (lv == LEVEL_AUTO && a && !(pthr < 1e9)) want &= ~ES_LEVEL_WITHIN;
    s->levels = want;
    s->across = want & ES_LEVEL_ACROSS ? a : NULL;
    s->within = want & ES_LEVEL_WITHIN ? w : NULL;
    s->thr = param[P_THRESHOLD] == AUTO ? d.threshold[k] : param[P_THRESHOLD];
    s->pthr = pthr;
    s->every = param[P_EVERY] > 0 ? (uint32_t)param[P_EVERY] : w && w->every > 1 ? w->every : 1;
    /* a within head that never fires here reads no probe (unless told `every`):
     * the point stands for the full chain, not the full chain plus probes */
    if (s->within && !(pthr < 1e9) && param[P_EVERY] == 0) s->every = UINT32_MAX;
    s->score = NAN;
    return ES_OK;
}

static uint32_t probe_every(const void *st) { return ((const learned_state *)st)->every; }

static int is_cue(uint32_t f)
{
    es_feature_info fi;
    return es_feature_get_info(f, &fi) == ES_OK && fi.cue;
}

/* A within head that reads probes and any of the text cues. */
static int reads_cues(const void *st)
{
    const learned_state *s = st;
    for (uint32_t i = 0; s->within && s->every != UINT32_MAX && i < s->within->n_in; i++)
        if (is_cue(s->within->feature[i])) return 1;
    return 0;
}

/* ... and requires one (--require p_conclude): it cannot stop without cues. */
static int needs_cues(const void *st)
{
    const learned_state *s = st;
    for (uint32_t i = 0; s->within && s->every != UINT32_MAX && i < s->within->n_in && i < 64; i++)
        if (is_cue(s->within->feature[i]) && (s->within->required >> i & 1)) return 1;
    return 0;
}

static unsigned levels(const void *st, const double *param)
{
    (void)param;
    return ((const learned_state *)st)->levels;
}

static void release(void *st) { es_feat_release(&((learned_state *)st)->f); }

static int begin_item(void *st, uint32_t max_answers)
{
    learned_state *s = st;
    s->score = NAN;
    return es_feat_begin_item(&s->f, 0, max_answers, NULL);
}

/* The head's score on the tracker's current features. */
static double score(const learned_state *s, const es_stopper_head *h)
{
    double x[ES_STOPPER_MAX_INPUTS];
    for (uint32_t i = 0; i < h->n_in; i++) x[i] = es_feat_value(&s->f, h->feature[i]);
    return es_stopper_head_score(h, x);
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    learned_state *s = st;
    s->f.flags = ev->flags;
    s->f.cap = ev->cap;
    es_feat_sample(&s->f, ev->answer, ev->tokens, ev->confidence);
    if (!s->across || !ev->may_stop) {
        s->score = NAN;
        return ES_CONTINUE;
    }
    s->score = score(s, s->across);
    return s->score >= s->thr;
}

static int32_t answer(const void *st) { return ((const learned_state *)st)->f.t.leader; }

static const es_tally *tally(const void *st) { return &((const learned_state *)st)->f.t; }

/* It stops iff score >= threshold: at every threshold <= the score. */
static int boundary(const void *st, double *b)
{
    *b = ((const learned_state *)st)->score;
    return ES_BOUND_UPPER;
}

static void begin_sample(void *st) { es_feat_begin_sample(&((learned_state *)st)->f); }

static int probe(void *st, const es_probe_event *ev, es_rule_msg *msg)
{
    learned_state *s = st;
    if (ev->answer < 0 || (uint32_t)ev->answer >= s->f.cap_answers) {
        snprintf(msg->text, sizeof msg->text, "probe answer id %d out of range (the question has %u)", ev->answer,
                 s->f.cap_answers);
        return ES_EINVAL;
    }
    s->f.flags = ev->flags;
    es_feat_probe(&s->f, ev->at, ev->answer, ev->confidence, ev->window_confidence, ev->cues);
    return s->within && score(s, s->within) >= s->pthr;
}

const es_rule_def es_rule_learned = {
    .name = "learned",
    .level = ES_LEVEL_BOTH,
    .params = params,
    .n_params = 8,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = tally,
    .state_size = sizeof(learned_state),
    .doc = "learned stopper: a small model on vote, token, confidence and probe features (docs/learning.md)",
    .levels = levels,
    .attach = attach,
    .configure = configure,
    .release = release,
    .begin_item = begin_item,
    .end_sample = end_sample,
    .answer = answer,
    .sweep_param = P_THRESHOLD,
    .boundary = boundary,
    .begin_sample = begin_sample,
    .probe = probe,
    /* probes help where there are any; without them the within head never
     * fires and the rule decides across samples alone (eval on a file
     * without probes is not refused) */
    .needs_probes = 0,
    .every_param = P_EVERY,
    .probe_every = probe_every,
    .reads_cues = reads_cues,
    .needs_cues = needs_cues,
};
