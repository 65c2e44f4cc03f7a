/*
 * ac_beta.c - Adaptive-Consistency's Beta criterion (Aggarwal et al. 2023):
 * after each sample, stop once P(p1 > p2) >= threshold, with a and b the
 * top two vote counts and P the Beta(a+1, b+1) mass above 1/2.
 *
 * For integer counts P is a binomial tail (posterior.h), and it grows with
 * a, so the whole decision for a second count b is the smallest a that
 * clears the threshold: a table, filled on demand in order of b (replays
 * rarely see b above ~20 and the large-b entries cost the most).
 */
#include "posterior.h"
#include "rules.h"

enum { P_THRESHOLD, P_MIN, P_MAX, P_CLINCH };

enum { LEAD_CACHE = 64 };

typedef struct beta_state {
    es_tally t;
    es_beta_table table;
    /* P(p1 > p2) for small counts, for boundary(): a tuner's replay asks it
     * after every sample, and each costs a sum of ~a exponentials */
    int cache_ready;
    double lead[LEAD_CACHE][LEAD_CACHE];
} beta_state;
ES_RULE_TALLY_FIRST(beta_state);

void es_beta_table_set(es_beta_table *b, double threshold)
{
    b->threshold = threshold;
    b->filled = 0;
}

/* min_a[second], filling the table up to it first; beyond the table the
 * probability itself.  Each entry resumes where the one before stopped: the
 * smallest stopping a never decreases as b grows. */
ES_NOINLINE uint32_t es_beta_table_fill(es_beta_table *b, uint32_t second)
{
    if (second >= ES_BETA_TABLE) {
        uint32_t a = second;
        while (a < 100000 && es_beta_lead_prob(a, second) < b->threshold) a++;
        return a;
    }
    while (b->filled <= second) {
        uint32_t k = b->filled, a = k ? b->min_a[k - 1] : 0;
        if (a < k) a = k;
        while (a < 100000 && es_beta_lead_prob(a, k) < b->threshold) a++;
        b->min_a[b->filled++] = a;
    }
    return b->min_a[second];
}

static const es_param_def params[] = {
    {"threshold", ES_PARAM_REAL, 0.95, 0, 1, NULL, 0, 0, "stop once P(p1 > p2) reaches it"},
    {"min", ES_PARAM_COUNT, 1, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
    ES_PARAM_CLINCH,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    beta_state *s = st;
    es_beta_table_set(&s->table, param[P_THRESHOLD]);
    if (!s->cache_ready) { /* the probabilities do not depend on the threshold */
        for (int a = 0; a < LEAD_CACHE; a++)
            for (int b = 0; b < LEAD_CACHE; b++) s->lead[a][b] = -1;
        s->cache_ready = 1;
    }
    return ES_OK;
}

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    (void)msg;
    beta_state *s = st;
    es_tally_vote(&s->t, ev->answer);
    return es_beta_stop(&s->table, s->t.top1, s->t.top2);
}

/* It stops iff top1 >= min_a[top2], the least a with P(a, top2) >= t, and P
 * grows with a: iff t <= P(top1, top2). */
static int boundary(const void *st, double *b)
{
    beta_state *s = (beta_state *)st; /* the cache only */
    uint32_t a = s->t.top1, c = s->t.top2;
    if (a < LEAD_CACHE && c < LEAD_CACHE) {
        if (s->lead[a][c] < 0) s->lead[a][c] = es_beta_lead_prob(a, c);
        *b = s->lead[a][c];
    } else {
        *b = es_beta_lead_prob(a, c);
    }
    return ES_BOUND_UPPER;
}

const es_rule_def es_rule_ac_beta = {
    .name = "ac-beta",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 4,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(beta_state),
    .doc = "Adaptive-Consistency, Beta criterion",
    .configure = configure,
    .release = es_rule_tally_release,
    .begin_item = es_rule_tally_begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .counts_only = 1,
    .sweep_param = P_THRESHOLD,
    .boundary = boundary,
};
