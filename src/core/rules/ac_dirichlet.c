/*
 * ac_dirichlet.c - Adaptive-Consistency's Dirichlet criterion: the
 * probability, under a Dirichlet(counts + 1) posterior over the top_k
 * answers, that the leader has the largest share; with two answers or fewer
 * it is the Beta criterion, as upstream does it.  The integral is exact
 * (posterior.c) where upstream samples it by Monte Carlo.
 */
#include "posterior.h"
#include "rules.h"

enum { P_THRESHOLD, P_TOP_K, P_MIN, P_MAX };

typedef struct dirichlet_state {
    es_tally t;
    es_beta_table table;
    uint32_t top_k;
} dirichlet_state;

static const es_param_def params[] = {
    {"threshold", ES_PARAM_REAL, 0.95, 0, 1, NULL, 0, 0, "stop once P(leader largest) reaches it"},
    {"top_k", ES_PARAM_COUNT, 5, 2, 64, NULL, 0, 0, "answers kept in the posterior"},
    {"min", ES_PARAM_COUNT, 1, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    dirichlet_state *s = st;
    es_beta_table_set(&s->table, param[P_THRESHOLD]);
    s->top_k = (uint32_t)param[P_TOP_K];
    return ES_OK;
}

static void release(void *st) { es_tally_release(&((dirichlet_state *)st)->t); }

static int begin_item(void *st, uint32_t max_answers)
{
    return es_rule_tally_begin(&((dirichlet_state *)st)->t, max_answers);
}

/* The k largest counts, largest first. */
static uint32_t top_counts(const es_tally *t, uint32_t *out, uint32_t k)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n_seen; i++) {
        uint32_t c = t->count[t->seen[i]], j = n < k ? n++ : k;
        if (j == k) {
            if (c <= out[k - 1]) continue;
            j = k - 1;
        }
        while (j > 0 && out[j - 1] < c) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = c;
    }
    return n;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    dirichlet_state *s = st;
    es_tally_vote(&s->t, ev->answer);
    if (!ev->may_stop) return ES_CONTINUE;
    if (s->t.n_seen < 3) return es_beta_stop(&s->table, s->t.top1, s->t.top2);
    uint32_t top[64];
    uint32_t n = top_counts(&s->t, top, s->top_k);
    return es_dirichlet_lead_prob(top, n) >= s->table.threshold;
}

static int32_t answer(const void *st) { return ((const dirichlet_state *)st)->t.leader; }

/* The probability end_sample compares with the threshold. */
static int boundary(const void *st, double *b)
{
    const dirichlet_state *s = st;
    if (s->t.n_seen < 3) {
        *b = es_beta_lead_prob(s->t.top1, s->t.top2);
    } else {
        uint32_t top[64];
        uint32_t n = top_counts(&s->t, top, s->top_k);
        *b = es_dirichlet_lead_prob(top, n);
    }
    return ES_BOUND_UPPER;
}

const es_rule_def es_rule_ac_dirichlet = {
    .name = "ac-dirichlet",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 4,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .state_size = sizeof(dirichlet_state),
    .doc = "Adaptive-Consistency, Dirichlet criterion",
    .configure = configure,
    .release = release,
    .begin_item = begin_item,
    .end_sample = end_sample,
    .answer = answer,
    .counts_only = 1,
    .sweep_param = P_THRESHOLD,
    .boundary = boundary,
};
