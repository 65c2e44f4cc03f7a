/*
 * feature.c - the learned stopper's feature catalogue and the incremental
 * tracker behind it (feature.h), with the public es_features_* wrappers
 * that training code uses to see exactly what the rule sees.
 *
 * Every feature is scale-free where it can be (shares, log-ratios), so that
 * a model trained on files of 5 samples reads a file of 160 the same way;
 * the ones that are not (log_n, margin, log_budget_left) are there for the
 * learners to try and the docs to report.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "feature.h"
#include "posterior.h"

static const struct {
    const char *name;
    int level;
    const char *doc;
    int cue;
} catalogue[ES_N_FEATURES] = {
    [ES_F_LOG_N] = {"log_n", ES_AT_ACROSS, "log of the samples drawn"},
    [ES_F_MARGIN] = {"margin", ES_AT_ACROSS, "leader's votes minus the runner-up's"},
    [ES_F_MARGIN_SQRT] = {"margin_sqrt", ES_AT_ACROSS, "margin / sqrt(samples)"},
    [ES_F_TOP1_SHARE] = {"top1_share", ES_AT_ACROSS, "leader's share of the votes"},
    [ES_F_TOP2_SHARE] = {"top2_share", ES_AT_ACROSS, "runner-up's share of the votes"},
    [ES_F_BETA_LOGIT] = {"beta_logit", ES_AT_ACROSS, "logit of AC's P(p1 > p2) for the top two counts, clipped to +-30"},
    [ES_F_DISTINCT_SHARE] = {"distinct_share", ES_AT_ACROSS, "distinct answers / samples"},
    [ES_F_NULL_SHARE] = {"null_share", ES_AT_ACROSS, "null answers / samples"},
    [ES_F_LEADER_NULL] = {"leader_null", ES_AT_ACROSS, "1 when the leader is the null answer"},
    [ES_F_ENTROPY] = {"entropy", ES_AT_ACROSS, "vote entropy / ln(samples) (missing at one sample)"},
    [ES_F_LAST_AGREES] = {"last_agrees", ES_AT_ACROSS, "1 when the last sample voted for the leader"},
    [ES_F_TOK_LEADER_OTHERS] = {"tok_leader_others", ES_AT_ACROSS,
                                "log of the leader's voters' mean tokens over the others' (missing when unanimous)"},
    [ES_F_TOK_LAST] = {"tok_last", ES_AT_ACROSS, "log of the last sample's tokens over the mean"},
    [ES_F_LOG_BUDGET_LEFT] = {"log_budget_left", ES_AT_ACROSS, "log(1 + samples left under the cap) (missing without a cap)"},
    [ES_F_HAS_CONF] = {"has_conf", ES_AT_ACROSS, "1 when the samples carry confidences"},
    [ES_F_CONF_LEADER] = {"conf_leader", ES_AT_ACROSS, "mean confidence of the leader's voters"},
    [ES_F_CONF_LEADER_OTHERS] = {"conf_leader_others", ES_AT_ACROSS,
                                 "mean confidence of the leader's voters minus the others' (missing when unanimous)"},
    [ES_F_LEADER_WF] = {"leader_wf", ES_AT_ACROSS, "1 when the leader is well-formed for its type"},
    [ES_F_WF_SHARE] = {"wf_share", ES_AT_ACROSS, "share of samples with a well-formed answer"},
    [ES_F_P_LOG_TOKENS] = {"p_log_tokens", ES_AT_WITHIN, "log(1 + tokens so far)"},
    [ES_F_P_LOG_PROBES] = {"p_log_probes", ES_AT_WITHIN, "log of the probes read"},
    [ES_F_P_RUN] = {"p_run", ES_AT_WITHIN, "run length of the current probed answer"},
    [ES_F_P_RUN_SHARE] = {"p_run_share", ES_AT_WITHIN, "run length / probes"},
    [ES_F_P_DISTINCT_SHARE] = {"p_distinct_share", ES_AT_WITHIN, "distinct probed answers / probes"},
    [ES_F_P_CUR_SHARE] = {"p_cur_share", ES_AT_WITHIN, "the current answer's share of the probes"},
    [ES_F_P_CHANGED] = {"p_changed", ES_AT_WITHIN, "1 when the last probe changed the answer (missing at the first)"},
    [ES_F_P_NULL] = {"p_null", ES_AT_WITHIN, "1 when the probed answer is null"},
    [ES_F_P_WF] = {"p_wf", ES_AT_WITHIN, "1 when the probed answer is well-formed for its type"},
    [ES_F_P_HAS_CONF] = {"p_has_conf", ES_AT_WITHIN, "1 when the probe carries a confidence"},
    [ES_F_P_CONF] = {"p_conf", ES_AT_WITHIN, "the probed answer's mean token probability"},
    [ES_F_P_CONF_TREND] = {"p_conf_trend", ES_AT_WITHIN, "probe confidence minus the previous probe's"},
    [ES_F_P_WCONF] = {"p_wconf", ES_AT_WITHIN, "sliding-window token confidence at the probe"},
    [ES_F_P_TOKENS_REL] = {"p_tokens_rel", ES_AT_WITHIN,
                           "tokens so far / the question's finished samples' mean (both levels; missing in the first)"},
    [ES_F_P_AGREES_LEADER] = {"p_agrees_leader", ES_AT_WITHIN,
                              "1 when the probed answer is the vote's leader (both levels; missing in the first)"},
    [ES_F_P_CONCLUDE] = {"p_conclude", ES_AT_WITHIN,
                         "1 when the text up to the probe states a conclusion (\"Therefore\"; missing without cues)", 1},
    [ES_F_P_CHECK] = {"p_check", ES_AT_WITHIN,
                      "1 when the paragraph at the probe begins a re-check (\"Wait\"; missing without cues)", 1},
    [ES_F_P_END] = {"p_end", ES_AT_WITHIN, "1 when the reasoning ends at the probe (missing without cues)", 1},
};

uint32_t es_feature_count(void) { return ES_N_FEATURES; }

int es_feature_get_info(uint32_t id, es_feature_info *out)
{
    if (id >= ES_N_FEATURES) return ES_ERANGE;
    *out = (es_feature_info){catalogue[id].name, catalogue[id].level, catalogue[id].doc, catalogue[id].cue};
    return ES_OK;
}

int es_feature_find(const char *name, uint32_t *id)
{
    for (uint32_t i = 0; name && i < ES_N_FEATURES; i++)
        if (!strcmp(catalogue[i].name, name)) {
            *id = i;
            return ES_OK;
        }
    return ES_EINVAL;
}

/* ---------------------------------------------------------------- tracker */

static int grow(void **p, size_t n, size_t size)
{
    void *q = calloc(n, size);
    if (!q) return ES_ENOMEM;
    free(*p);
    *p = q;
    return ES_OK;
}

int es_feat_begin_item(es_feat *f, uint32_t cap, uint32_t max_answers, const uint8_t *flags)
{
    if (max_answers == 0) max_answers = 1;
    /* only answers voted for hold sums: clear those (O(answers voted)) */
    for (uint32_t i = 0; f->cap_answers && i < f->t.n_seen; i++) {
        int32_t a = f->t.seen[i];
        f->tok_sum[a] = f->conf_sum[a] = 0;
        f->conf_n[a] = 0;
    }
    if (f->t.cap) es_tally_clear(&f->t);
    if (max_answers > f->cap_answers) {
        if (es_tally_init_cap(&f->t, max_answers) || grow((void **)&f->tok_sum, max_answers, sizeof(double)) ||
            grow((void **)&f->conf_sum, max_answers, sizeof(double)) ||
            grow((void **)&f->conf_n, max_answers, sizeof(uint32_t)) ||
            grow((void **)&f->p_count, max_answers, sizeof(uint32_t)) ||
            grow((void **)&f->p_stamp, max_answers, sizeof(uint32_t))) {
            es_feat_release(f);
            return ES_ENOMEM;
        }
        f->cap_answers = max_answers;
        f->stamp = 0;
    }
    if (f->stamp > UINT32_MAX - 2) { /* the probe stamps would wrap */
        memset(f->p_stamp, 0, f->cap_answers * sizeof *f->p_stamp);
        f->stamp = 0;
    }
    f->flags = flags;
    f->cap = cap;
    f->nulls = f->wf = f->conf_count = 0;
    f->tok_total = f->conf_total = f->clogc = 0;
    f->last_answer = -1;
    f->last_tokens = 0;
    es_feat_begin_sample(f);
    return ES_OK;
}

void es_feat_release(es_feat *f)
{
    es_tally_release(&f->t);
    free(f->tok_sum);
    free(f->conf_sum);
    free(f->conf_n);
    free(f->p_count);
    free(f->p_stamp);
    memset(f, 0, sizeof *f);
}

/* logit P(p1 > p2) from the smaller tail, so that a landslide does not
 * round to logit(1) = inf. */
static double beta_logit(uint32_t a, uint32_t b)
{
    double p = es_beta_lead_prob(a, b), q = 1.0 - p;
    double l = q <= 0 ? 30.0 : p <= 0 ? -30.0 : log(p) - log(q);
    return l > 30 ? 30 : l < -30 ? -30 : l;
}

static double across_value(const es_feat *f, uint32_t id)
{
    const es_tally *t = &f->t;
    double n = t->votes, c1 = t->top1, c2 = t->top2;
    int32_t L = t->leader;
    if (t->votes == 0) return NAN;
    switch (id) {
    case ES_F_LOG_N: return log(n);
    case ES_F_MARGIN: return c1 - c2;
    case ES_F_MARGIN_SQRT: return (c1 - c2) / sqrt(n);
    case ES_F_TOP1_SHARE: return c1 / n;
    case ES_F_TOP2_SHARE: return c2 / n;
    case ES_F_BETA_LOGIT: return beta_logit(t->top1, t->top2);
    case ES_F_DISTINCT_SHARE: return t->n_seen / n;
    case ES_F_NULL_SHARE: return f->nulls / n;
    case ES_F_LEADER_NULL: return L == ES_NULL_ANSWER;
    case ES_F_ENTROPY: return t->votes < 2 ? NAN : (log(n) - f->clogc / n) / log(n);
    case ES_F_LAST_AGREES: return f->last_answer == L;
    case ES_F_TOK_LEADER_OTHERS: {
        if (t->votes == t->top1) return NAN;
        double lead = f->tok_sum[L] / c1, other = (f->tok_total - f->tok_sum[L]) / (n - c1);
        return log((lead + 1.0) / (other + 1.0));
    }
    case ES_F_TOK_LAST: return log((f->last_tokens + 1.0) / (f->tok_total / n + 1.0));
    case ES_F_LOG_BUDGET_LEFT: return f->cap ? log(1.0 + (f->cap > t->votes ? f->cap - t->votes : 0)) : NAN;
    case ES_F_HAS_CONF: return f->conf_count > 0;
    case ES_F_CONF_LEADER: return f->conf_n[L] ? f->conf_sum[L] / f->conf_n[L] : NAN;
    case ES_F_CONF_LEADER_OTHERS: {
        uint32_t others = f->conf_count - f->conf_n[L];
        if (!f->conf_n[L] || !others) return NAN;
        return f->conf_sum[L] / f->conf_n[L] - (f->conf_total - f->conf_sum[L]) / others;
    }
    case ES_F_LEADER_WF: return f->flags ? (f->flags[L] & ES_ANSWER_WELLFORMED) != 0 : NAN;
    case ES_F_WF_SHARE: return f->flags ? f->wf / n : NAN;
    }
    return NAN;
}

/* A text cue of the last probe: 0 or 1, NaN when its cues were not read. */
static double cue(const es_feat *f, uint32_t bit) { return f->cues & ES_CUE_READ ? (f->cues & bit) != 0 : NAN; }

static double within_value(const es_feat *f, uint32_t id)
{
    if (f->probes == 0) return NAN;
    double k = f->probes;
    int32_t a = f->cur;
    int have_votes = f->t.votes > 0;
    switch (id) {
    case ES_F_P_LOG_TOKENS: return log(1.0 + f->at);
    case ES_F_P_LOG_PROBES: return log(k);
    case ES_F_P_RUN: return f->run;
    case ES_F_P_RUN_SHARE: return f->run / k;
    case ES_F_P_DISTINCT_SHARE: return f->p_distinct / k;
    case ES_F_P_CUR_SHARE: return f->p_count[a] / k;
    case ES_F_P_CHANGED: return f->probes < 2 ? NAN : f->changed;
    case ES_F_P_NULL: return a == ES_NULL_ANSWER;
    case ES_F_P_WF: return f->flags ? (f->flags[a] & ES_ANSWER_WELLFORMED) != 0 : NAN;
    case ES_F_P_HAS_CONF: return f->conf == f->conf;
    case ES_F_P_CONF: return f->conf;
    case ES_F_P_CONF_TREND: return f->conf - f->prev_conf; /* NaN unless both are there */
    case ES_F_P_WCONF: return f->wconf;
    case ES_F_P_TOKENS_REL: return have_votes ? (f->at + 1.0) / (f->tok_total / f->t.votes + 1.0) : NAN;
    case ES_F_P_AGREES_LEADER: return have_votes ? a == f->t.leader : NAN;
    case ES_F_P_CONCLUDE: return cue(f, ES_CUE_CONCLUDE);
    case ES_F_P_CHECK: return cue(f, ES_CUE_CHECK);
    case ES_F_P_END: return cue(f, ES_CUE_END);
    }
    return NAN;
}

double es_feat_value(const es_feat *f, uint32_t id)
{
    return id < ES_F_P_LOG_TOKENS ? across_value(f, id) : within_value(f, id);
}

/* ------------------------------------------------------- public tracker */

struct es_features {
    es_feat f;
};

int es_features_new(es_features **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? ES_OK : ES_ENOMEM;
}

void es_features_free(es_features *f)
{
    if (!f) return;
    es_feat_release(&f->f);
    free(f);
}

int es_features_begin_item(es_features *f, uint32_t max_samples, uint32_t max_answers, const uint8_t *flags)
{
    return es_feat_begin_item(&f->f, max_samples, max_answers, flags);
}

int es_features_sample(es_features *f, int32_t answer, uint32_t tokens, float confidence)
{
    if (answer < 0 || (uint32_t)answer >= f->f.cap_answers) return ES_EINVAL;
    es_feat_sample(&f->f, answer, tokens, confidence);
    return ES_OK;
}

void es_features_begin_sample(es_features *f) { es_feat_begin_sample(&f->f); }

int es_features_probe(es_features *f, uint32_t at, int32_t answer, float confidence, float window_confidence,
                      uint32_t cues)
{
    if (answer < 0 || (uint32_t)answer >= f->f.cap_answers) return ES_EINVAL;
    es_feat_probe(&f->f, at, answer, confidence, window_confidence, cues);
    return ES_OK;
}

void es_features_get(const es_features *f, int level, double *out)
{
    for (uint32_t i = 0; i < ES_N_FEATURES; i++)
        out[i] = catalogue[i].level == level ? es_feat_value(&f->f, i) : NAN;
}
