/*
 * feature.h - the learned stopper's features, kept incrementally (internal
 * to the core; the public es_features_* wrap these).
 *
 * The tracker keeps running sums, O(1) per sample and per probe, and turns
 * them into feature values only when asked, and only the ones asked for:
 * a decision reads the dozen features its model uses, not the catalogue.
 * Per-answer arrays are sized at begin_item (grown only for a question
 * with more answers than any before); nothing else allocates.
 */
#ifndef ES_CORE_FEATURE_H
#define ES_CORE_FEATURE_H

#include <math.h>
#include <stdint.h>

#include "earlystop.h"
#include "tally.h"

/* The catalogue, in the order es_feature_get_info lists it. */
enum {
    /* across samples, after each finished sample */
    ES_F_LOG_N,
    ES_F_MARGIN,
    ES_F_MARGIN_SQRT,
    ES_F_TOP1_SHARE,
    ES_F_TOP2_SHARE,
    ES_F_BETA_LOGIT,
    ES_F_DISTINCT_SHARE,
    ES_F_NULL_SHARE,
    ES_F_LEADER_NULL,
    ES_F_ENTROPY,
    ES_F_LAST_AGREES,
    ES_F_TOK_LEADER_OTHERS,
    ES_F_TOK_LAST,
    ES_F_LOG_BUDGET_LEFT,
    ES_F_HAS_CONF,
    ES_F_CONF_LEADER,
    ES_F_CONF_LEADER_OTHERS,
    ES_F_LEADER_WF,
    ES_F_WF_SHARE,
    /* within a sample, at each probe */
    ES_F_P_LOG_TOKENS,
    ES_F_P_LOG_PROBES,
    ES_F_P_RUN,
    ES_F_P_RUN_SHARE,
    ES_F_P_DISTINCT_SHARE,
    ES_F_P_CUR_SHARE,
    ES_F_P_CHANGED,
    ES_F_P_NULL,
    ES_F_P_WF,
    ES_F_P_HAS_CONF,
    ES_F_P_CONF,
    ES_F_P_CONF_TREND,
    ES_F_P_WCONF,
    ES_F_P_TOKENS_REL,
    ES_F_P_AGREES_LEADER,
    ES_F_P_CONCLUDE,
    ES_F_P_CHECK,
    ES_F_P_END,
    ES_N_FEATURES
};

typedef struct es_feat {
    es_tally t;                /* the vote */
    uint32_t cap_answers;      /* ids the arrays below hold */
    double *tok_sum;           /* [cap] tokens of each answer's voters */
    double *conf_sum;          /* [cap] their confidences */
    uint32_t *conf_n;          /* [cap] voters with a confidence */
    uint32_t *p_count;         /* [cap] probes of each answer in the running sample */
    uint32_t *p_stamp;         /* [cap] the sample p_count[a] belongs to */
    const uint8_t *flags;      /* the driver's answer flags, or NULL */
    /* across */
    uint32_t cap;              /* the caller's sample cap, 0 = unknown */
    uint32_t nulls, wf;        /* null answers, well-formed answers */
    double tok_total, conf_total;
    uint32_t conf_count;
    double clogc;              /* sum over answers of c ln c (the vote entropy) */
    int32_t last_answer;
    uint32_t last_tokens;
    /* within: the running sample */
    uint32_t stamp;            /* samples begun */
    uint32_t probes, run, p_distinct, at;
    int32_t cur;               /* the last probed answer, -1 before one */
    int changed;               /* the last probe changed the answer */
    float conf, prev_conf, wconf;
    uint32_t cues;             /* the last probe's text cues (ES_CUE_*) */
} es_feat;

/* Ready for a question: ES_ENOMEM when growing fails. */
int es_feat_begin_item(es_feat *f, uint32_t cap, uint32_t max_answers, const uint8_t *flags);
void es_feat_release(es_feat *f);

/* One finished sample (answer < cap_answers: the caller checks). */
static inline void es_feat_sample(es_feat *f, int32_t a, uint32_t tokens, float conf)
{
    uint32_t c = f->t.count[a];
    /* (c+1) ln(c+1) - c ln c, the entropy's running sum */
    f->clogc += (double)(c + 1) * log((double)(c + 1)) - (c ? (double)c * log((double)c) : 0.0);
    es_tally_vote(&f->t, a);
    f->tok_sum[a] += tokens;
    f->tok_total += tokens;
    if (conf == conf) {
        f->conf_sum[a] += conf;
        f->conf_n[a]++;
        f->conf_total += conf;
        f->conf_count++;
    }
    f->nulls += a == ES_NULL_ANSWER;
    if (f->flags) f->wf += (f->flags[a] & ES_ANSWER_WELLFORMED) != 0;
    f->last_answer = a;
    f->last_tokens = tokens;
}

static inline void es_feat_begin_sample(es_feat *f)
{
    f->stamp++;
    f->probes = f->run = f->p_distinct = f->at = 0;
    f->cur = -1;
    f->changed = 0;
    f->conf = f->prev_conf = f->wconf = NAN;
    f->cues = 0;
}

static inline void es_feat_probe(es_feat *f, uint32_t at, int32_t a, float conf, float wconf, uint32_t cues)
{
    if (f->p_stamp[a] != f->stamp) {
        f->p_stamp[a] = f->stamp;
        f->p_count[a] = 0;
        f->p_distinct++;
    }
    f->p_count[a]++;
    f->changed = f->probes > 0 && a != f->cur;
    f->run = a == f->cur ? f->run + 1 : 1;
    f->cur = a;
    f->probes++;
    f->at = at;
    f->prev_conf = f->conf;
    f->conf = conf;
    f->wconf = wconf;
    f->cues = cues;
}

/* Feature `id` now (NaN where missing). */
double es_feat_value(const es_feat *f, uint32_t id);

#endif
