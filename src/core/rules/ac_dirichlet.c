/*
 * ac_dirichlet.c - Adaptive-Consistency's Dirichlet criterion: the
 * probability, under a Dirichlet(counts + 1) posterior over the top_k
 * answers, that the leader has the largest share; with two answers or fewer
 * it is the Beta criterion, as upstream does it.  The integral is exact
 * (posterior.c) where upstream samples it by Monte Carlo.
 */
#include <stdlib.h>
#include <string.h>

#include "posterior.h"
#include "rules.h"

enum { P_THRESHOLD, P_TOP_K, P_MIN, P_MAX, P_CLINCH };

/* The integral costs ~16 us and the same few count vectors come back again
 * and again (every order of every item passes through (2, 1, 1), ...): a
 * small cache of them, made when the policy is configured.  An entry holds
 * up to CACHE_K counts; vectors with more stay uncached. */
enum { CACHE_SLOTS = 4096, CACHE_K = 6 };

typedef struct prob_entry {
    uint32_t n;                 /* counts held, 0 = empty */
    uint32_t counts[CACHE_K];
    double p;
} prob_entry;

typedef struct dirichlet_state {
    es_tally t;
    es_beta_table table;
    uint32_t top_k;
    prob_entry *cache;          /* [CACHE_SLOTS] */
} dirichlet_state;
ES_RULE_TALLY_FIRST(dirichlet_state);

/* P(leader largest) of the top counts (largest first), through the cache. */
static double lead_prob(dirichlet_state *s, const uint32_t *top, uint32_t n)
{
    if (n > CACHE_K || !s->cache) return es_dirichlet_lead_prob(top, n);
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ top[i]) * 16777619u;
    for (uint32_t i = 0, slot = h & (CACHE_SLOTS - 1); i < 8; i++, slot = (slot + 1) & (CACHE_SLOTS - 1)) {
        prob_entry *e = &s->cache[slot];
        if (e->n == n && !memcmp(e->counts, top, n * sizeof *top)) return e->p;
        if (e->n == 0) {
            e->n = n;
            memcpy(e->counts, top, n * sizeof *top);
            return e->p = es_dirichlet_lead_prob(top, n);
        }
    }
    return es_dirichlet_lead_prob(top, n); /* a crowded neighbourhood: not cached */
}

static const es_param_def params[] = {
    {"threshold", ES_PARAM_REAL, 0.95, 0, 1, NULL, 0, 0, "stop once P(leader largest) reaches it"},
    {"top_k", ES_PARAM_COUNT, 5, 2, 64, NULL, 0, 0, "answers kept in the posterior"},
    {"min", ES_PARAM_COUNT, 1, 1, 1e9, NULL, 0, 0, "samples at least"},
    ES_PARAM_MAX,
    ES_PARAM_CLINCH,
};

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    (void)msg;
    dirichlet_state *s = st;
    es_beta_table_set(&s->table, param[P_THRESHOLD]);
    s->top_k = (uint32_t)param[P_TOP_K];
    if (!s->cache && !(s->cache = calloc(CACHE_SLOTS, sizeof *s->cache))) return ES_ENOMEM;
    return ES_OK;
}

static void release(void *st)
{
    dirichlet_state *s = st;
    es_tally_release(&s->t);
    free(s->cache);
    s->cache = NULL;
}

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
    return lead_prob(s, top, n) >= s->table.threshold;
}

/* The probability end_sample compares with the threshold. */
static int boundary(const void *st, double *b)
{
    dirichlet_state *s = (dirichlet_state *)st; /* the cache only */
    if (s->t.n_seen < 3) {
        *b = es_beta_lead_prob(s->t.top1, s->t.top2);
    } else {
        uint32_t top[64];
        uint32_t n = top_counts(&s->t, top, s->top_k);
        *b = lead_prob(s, top, n);
    }
    return ES_BOUND_UPPER;
}

const es_rule_def es_rule_ac_dirichlet = {
    .name = "ac-dirichlet",
    .level = ES_LEVEL_ACROSS,
    .params = params,
    .n_params = 5,
    .min_param = P_MIN,
    .max_param = P_MAX,
    .clinch_param = P_CLINCH,
    .tally = es_rule_tally_of,
    .state_size = sizeof(dirichlet_state),
    .doc = "Adaptive-Consistency, Dirichlet criterion",
    .configure = configure,
    .release = release,
    .begin_item = begin_item,
    .end_sample = end_sample,
    .answer = es_rule_tally_answer,
    .counts_only = 1,
    .sweep_param = P_THRESHOLD,
    .boundary = boundary,
};
