/*
 * controller_int.h - the controller's internals, shared by controller.c (the
 * API: creation, tickets, observing), ctl_learn.c (the estimates and the
 * control law), ctl_replay.c (every candidate replayed on one request's
 * samples, and on reorderings of an audit's) and ctl_state.c (the state as
 * named arrays).  docs/controller.md describes the law.
 */
#ifndef ES_CORE_CONTROLLER_INT_H
#define ES_CORE_CONTROLLER_INT_H

#include <pthread.h>

#include "policy_int.h"

enum { CTL_MAX_CANDIDATES = 64, CTL_RING = 1024, CTL_FEATURES = 2, CTL_ORDERS = 32 };

/* A two-sided CUSUM on one standardised feature (shift detection), with
 * the feature's exponentially weighted mean and variance as reference. */
typedef struct ctl_cusum {
    double w, mean, var;      /* reference: EW weight, mean, variance */
    double up, down;          /* the two sums */
} ctl_cusum;

/* One request's outcome at every candidate, from its samples. */
typedef struct ctl_cf {
    uint32_t known_from;      /* candidates [known_from, n) stopped within the samples */
    int complete;             /* the samples reach the policy's end (cap or clinch): all known */
    int32_t full;             /* complete: the answer at the end (the full run's) */
    uint64_t full_tokens, full_kv;
    uint32_t *stop;           /* [n] samples at the stop */
    int32_t *answer;          /* [n] */
    uint64_t *tokens, *kv;    /* [n] */
} ctl_cf;

/* An audit's figures per candidate, over reorderings of its samples (or
 * its own order alone when it has not every sample). */
typedef struct ctl_audit {
    double *dis;              /* [n] share of orders whose answer differs from the full run's */
    double *cost, *cost2;     /* [n] the target's measure, and its square */
    int32_t *alt;             /* [n] the first differing answer met (for a late label) */
    double *alt_share;        /* [n] share of orders that answered it */
    double *pair;             /* [n * n] share of orders where candidates r < i differ */
} ctl_audit;

/* The request as served (its own order), kept apart from c->cf, which an
 * audit's reorderings overwrite. */
typedef struct ctl_served {
    uint32_t candidate, stop, known_from;
    int32_t answer, full;     /* full: an audit's, else -1 */
    uint64_t tokens, kv, full_kv, audit_tokens;
} ctl_served;

/* An audited request, kept for a late label. */
typedef struct ctl_audit_rec {
    uint64_t request;
    double log_scale;         /* the audit statistics' log scale when it was added */
    int32_t full;
    int used;                 /* in the ring and not yet labelled */
} ctl_audit_rec;

struct es_controller {
    pthread_mutex_t mu;
    /* configuration */
    es_target_kind kind;
    double budget, kv_bpp;
    uint32_t batch, window;
    double audit_share, audit_min, audit_max, confidence, margin;
    uint64_t seed;
    char key[96];             /* "rule.key" */
    int dir;                  /* ES_BOUND_UPPER: lower values stop sooner (aggressive) */
    uint32_t n;
    double cand[CTL_MAX_CANDIDATES];
    es_policy *cf_policy;     /* a clone in observe mode, for the replays */
    ctl_cf cf;
    ctl_audit au;
    /* reordered samples of an audit (grown when a request has more samples
     * than any before) */
    uint32_t scratch_cap;
    uint32_t *order, *s_tok, *s_prb;
    int32_t *s_ans;
    float *s_conf;

    /* The law's state: position and exponentially weighted statistics.
     * Every statistic is multiplied by its decay per request and by a
     * factor at a restart; log_scale_d sums the logs of the audit
     * statistics' multipliers (what a late label needs to undo its audit). */
    double x;
    double lam_c, lam_d;
    double log_scale_d;
    double cw[CTL_MAX_CANDIDATES], cs[CTL_MAX_CANDIDATES], cq[CTL_MAX_CANDIDATES]; /* costs */
    double dw[CTL_MAX_CANDIDATES], ds[CTL_MAX_CANDIDATES]; /* audits: disagreement with the full run */
    double *pw, *ps;          /* [n * n]: pairs r < i, how often i's answer differs from r's */
    double sk, sm;            /* served disagreement among audits since the last restart */
    double served_w, served_s;            /* served cost (target units) */
    double audit_w, audit_cost_s;         /* audits: extra cost (target units) per audit */
    double shadow_w, shadow_s;            /* audits: shadow tokens per audit */
    double tok_all, tok_audit;            /* tokens, all and the audits' */
    double boost;
    ctl_cusum feat[CTL_FEATURES];
    double bern;              /* Bernoulli CUSUM of the audits' served disagreement */
    double requests, audits, shifts, fallbacks, since_restart;
    int infeasible;
    double estimate, aim;

    /* audits for late labels */
    ctl_audit_rec ring[CTL_RING];
    int32_t *ring_alt;        /* [CTL_RING * n] */
    float *ring_dis, *ring_alt_share; /* [CTL_RING * n] */
    uint32_t ring_next;
};

/* splitmix64's finaliser: the controller's draws are pure functions of
 * (seed, request). */
static inline uint64_t ctl_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ctl_replay.c */
int ctl_cf_alloc(ctl_cf *cf, uint32_t n);
void ctl_cf_free(ctl_cf *cf);
int ctl_audit_alloc(ctl_audit *a, uint32_t n);
void ctl_audit_free(ctl_audit *a);
int ctl_replay(es_controller *c, const es_controller_request *r);
int ctl_replay_audit(es_controller *c, const es_controller_request *r, int reorder);
int ctl_direction(const es_policy *p, int *dir);
int ctl_default_grid(const es_param_info *pi, int dir, double *out, uint32_t *n);
int ctl_covers(int dir, double b, double v);
double ctl_measure(const es_controller *c, uint64_t tokens, uint64_t kv);

/* ctl_learn.c */
void ctl_reset(es_controller *c, double x0);
double ctl_audit_prob(const es_controller *c);
double ctl_disagreement(const es_controller *c, uint32_t i);
void ctl_learn(es_controller *c, const es_controller_ticket *t, const es_controller_request *r, const ctl_served *sv);
void ctl_learn_outcome(es_controller *c, const es_controller_ticket *t, const es_outcome *o, int32_t full_answer,
                       uint64_t audit_tokens);
int ctl_label(es_controller *c, uint64_t request, const uint8_t *correct, uint32_t n_answers);

#endif
