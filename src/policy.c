/*
 * policy.c - the stopping policies at run time.
 *
 * One es_policy holds a within-sample rule and an across-sample rule (Config),
 * tables precomputed from them, and the State of the question in progress.
 * Every buffer is sized in es_policy_new or grown in es_policy_begin_item, so
 * the per-token, per-probe and per-sample events allocate nothing and cost a
 * few branches: AC-beta's threshold is a table lookup, votes are counters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "posterior.h"

enum { BETA_TABLE = 128 };

/* Rarely taken rules stay out of line, so that the per-sample path of the
 * common ones (ac-beta, esc, majority) keeps a small stack frame. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

struct es_policy {
    rule_cfg within, across;
    char spec[256];
    char errmsg[200];
    /* AC-beta: smallest top count a that stops for second count b, known for
     * b < beta_filled (see beta_min) */
    uint32_t beta_min_a[BETA_TABLE];
    uint32_t beta_filled;
    /* buffers */
    uint32_t cap;            /* answers the buffers hold */
    uint32_t *counts;        /* [cap] votes per answer */
    double *weights;         /* [cap] deepconf weighted votes */
    int32_t *seen;           /* [cap] distinct answers in order of first vote */
    uint32_t *rank;          /* [cap] position of an answer's first vote: ties go to
                              * the answer seen first in this run's order, which is
                              * not the id order when a replay shuffles samples */
    double *warm;            /* [warmup] deepconf lowest group confidences */
    float *ring;             /* [window] deepconf per-token confidences */
    /* question state */
    uint32_t max_samples;
    int32_t null_answer;
    uint32_t n_samples, n_seen;
    int32_t leader;
    uint32_t top1, top2;
    int32_t esc_answer, win_answer;
    uint32_t win_fill;
    int win_same;
    double dc_threshold, w_total;
    int32_t w_leader;
    uint32_t n_warm;
    /* sample state */
    int32_t streak_answer, sample_answer;
    uint32_t streak, tokens_seen;
    int sample_stopped, dc_terminated;
    double sample_cmin, ring_sum;
    uint32_t ring_fill, ring_pos;
};

/* beta_min_a[b], filling the table up to b first.  P(p1 > p2) grows with a,
 * so the first a that clears the threshold is the whole decision for that
 * b, and the smallest stopping a never decreases as b grows, so each entry
 * resumes where the one before it stopped.  Filled on demand, in order of b:
 * replays rarely see a second count above ~20, and the entries for large b
 * cost the most (each probability sums O(a) terms), so a policy that
 * evaluates one --shuffles row no longer spends more time building its
 * table than replaying. */
NOINLINE static uint32_t beta_min(es_policy *p, uint32_t b)
{
    while (p->beta_filled <= b) {
        uint32_t k = p->beta_filled, a = k ? p->beta_min_a[k - 1] : 0;
        if (a < k) a = k;
        while (a < 100000 && es_beta_lead_prob(a, k) < p->across.threshold) a++;
        p->beta_min_a[p->beta_filled++] = a;
    }
    return p->beta_min_a[b];
}

static int grow_answers(es_policy *p, uint32_t need)
{
    if (need <= p->cap) return ES_OK;
    uint32_t c = p->cap ? p->cap : 64;
    while (c < need) c *= 2;
    uint32_t *counts = realloc(p->counts, c * sizeof *counts);
    if (counts) p->counts = counts;
    double *w = realloc(p->weights, c * sizeof *w);
    if (w) p->weights = w;
    int32_t *seen = realloc(p->seen, c * sizeof *seen);
    if (seen) p->seen = seen;
    uint32_t *rank = realloc(p->rank, c * sizeof *rank);
    if (rank) p->rank = rank;
    if (!counts || !w || !seen || !rank) return ES_ENOMEM;
    /* new buffers start clean; from here on only answers listed in `seen`
     * are ever non-zero, so es_policy_begin_item clears just those */
    memset(counts, 0, c * sizeof *counts);
    for (uint32_t i = 0; i < c; i++) w[i] = 0.0;
    p->n_seen = 0;
    p->cap = c;
    return ES_OK;
}

int es_policy_new(const char *spec, es_policy **out, es_error *err)
{
    *out = NULL;
    es_policy *p = calloc(1, sizeof *p);
    if (!p) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    int rc = es_spec_parse(spec, &p->within, &p->across, p->spec, sizeof p->spec, err);
    if (rc) {
        free(p);
        return rc;
    }
    if (p->across.kind == RULE_DEEPCONF) {
        p->warm = malloc(p->across.warmup * sizeof *p->warm);
        p->ring = malloc(p->across.window * sizeof *p->ring);
        if (!p->warm || !p->ring) rc = ES_ENOMEM;
    }
    if (rc == ES_OK) rc = grow_answers(p, 64);
    if (rc) {
        es_policy_free(p);
        return es_error_set(err, rc, "", 0, "", "out of memory");
    }
    *out = p;
    return ES_OK;
}

void es_policy_free(es_policy *p)
{
    if (!p) return;
    free(p->counts);
    free(p->weights);
    free(p->seen);
    free(p->rank);
    free(p->warm);
    free(p->ring);
    free(p);
}

const char *es_policy_spec(const es_policy *p) { return p->spec; }
const char *es_policy_errmsg(const es_policy *p) { return p->errmsg; }

uint32_t es_policy_token_limit(const es_policy *p)
{
    return p->within.kind == RULE_BUDGET_TOKENS ? p->within.max_tokens : UINT32_MAX;
}

int es_policy_probes(const es_policy *p) { return p->within.kind != RULE_NONE; }

uint32_t es_policy_batch(const es_policy *p)
{
    switch (p->across.kind) {
    case RULE_ESC: return p->across.window;
    case RULE_FULL: case RULE_BUDGET_SAMPLES: return p->across.max_samples;
    default: return 1;
    }
}

int es_policy_begin_item(es_policy *p, uint32_t max_samples, uint32_t max_answers, int32_t null_answer)
{
    if (max_answers > p->cap && grow_answers(p, max_answers)) return ES_ENOMEM;
    /* only voted answers are non-zero (grow_answers clears new buffers):
     * clearing those is O(answers seen) rather than O(capacity) per item */
    for (uint32_t i = 0; i < p->n_seen; i++) {
        p->counts[p->seen[i]] = 0;
        p->weights[p->seen[i]] = 0.0;
    }
    p->max_samples = max_samples;
    p->null_answer = null_answer;
    p->n_samples = p->n_seen = 0;
    p->leader = p->esc_answer = p->w_leader = -1;
    p->top1 = p->top2 = 0;
    p->win_fill = 0;
    p->win_same = 1;
    p->win_answer = -1;
    p->dc_threshold = -INFINITY;
    p->w_total = 0;
    p->n_warm = 0;
    p->errmsg[0] = '\0';
    return ES_OK;
}

int es_policy_begin_sample(es_policy *p)
{
    p->streak_answer = p->sample_answer = -1;
    p->streak = p->tokens_seen = 0;
    p->sample_stopped = p->dc_terminated = 0;
    p->sample_cmin = INFINITY;
    p->ring_sum = 0;
    p->ring_fill = p->ring_pos = 0;
    return ES_CONTINUE;
}

static int fail(es_policy *p, int code, const char *msg)
{
    snprintf(p->errmsg, sizeof p->errmsg, "%s", msg);
    return code;
}

/* DeepConf: a group confidence below the warm-up threshold ends the trace;
 * the trace then leaves the vote. */
static int deepconf_group(es_policy *p, double group_conf)
{
    if (group_conf < p->sample_cmin) p->sample_cmin = group_conf;
    if (p->n_warm >= p->across.warmup && group_conf < p->dc_threshold) {
        p->dc_terminated = p->sample_stopped = 1;
        return ES_STOP;
    }
    return ES_CONTINUE;
}

int es_policy_token(es_policy *p, float logprob, float token_confidence)
{
    (void)logprob;
    p->tokens_seen++;
    if (p->within.kind == RULE_BUDGET_TOKENS && p->tokens_seen >= p->within.max_tokens) {
        p->sample_stopped = 1;
        return ES_STOP;
    }
    if (p->within.kind != RULE_DEEPCONF || isnan(token_confidence)) return ES_CONTINUE;
    uint32_t w = p->within.window;
    if (p->ring_fill == w) p->ring_sum -= p->ring[p->ring_pos];
    else p->ring_fill++;
    p->ring[p->ring_pos] = token_confidence;
    p->ring_sum += token_confidence;
    p->ring_pos = (p->ring_pos + 1) % w;
    if (p->ring_fill < w) return ES_CONTINUE; /* a group is a full window */
    return deepconf_group(p, p->ring_sum / w);
}

/* Same non-null answer on the last `need` probes. */
static int streak_stop(es_policy *p, int32_t answer, uint32_t need)
{
    if (answer == p->streak_answer) p->streak++;
    else {
        p->streak_answer = answer;
        p->streak = 1;
    }
    return p->streak >= need && answer != p->null_answer && answer >= 0;
}

int es_policy_probe(es_policy *p, uint32_t at, int32_t answer, float confidence, float window_confidence)
{
    const rule_cfg *w = &p->within;
    int stop = 0;
    switch (w->kind) {
    case RULE_DEER:
        if (isnan(confidence))
            return fail(p, ES_ENOTSUP, "deer needs probe confidences (the probed answer's mean token "
                                       "probability); these probes carry none");
        stop = at >= w->min_tokens && confidence > w->threshold && answer != p->null_answer;
        break;
    case RULE_DYNASOR:
        stop = streak_stop(p, answer, w->k) && at >= w->min_tokens;
        break;
    case RULE_CONVERGENCE:
        stop = streak_stop(p, answer, w->k + 1) && at >= w->min_tokens;
        break;
    case RULE_BUDGET_TOKENS:
        stop = at >= w->max_tokens;
        break;
    case RULE_DEEPCONF:
        if (p->ring_fill) break; /* per-token confidences drive it */
        if (isnan(window_confidence))
            return fail(p, ES_ENOTSUP, "deepconf needs token confidences: window_confidence at probes or "
                                       "per-token events; these traces carry neither");
        p->sample_answer = answer;
        return deepconf_group(p, window_confidence);
    default:
        break;
    }
    if (stop) {
        p->sample_stopped = 1;
        p->sample_answer = answer;
        return ES_STOP;
    }
    return ES_CONTINUE;
}

int32_t es_policy_sample_answer(const es_policy *p) { return p->sample_answer; }

/* Count a vote, keeping the leader (ties to the answer whose first vote came
 * first) and the top two counts up to date in O(1). */
static inline void count_vote(es_policy *p, int32_t a)
{
    uint32_t c = ++p->counts[a];
    if (c == 1) {
        p->rank[a] = p->n_seen;
        p->seen[p->n_seen++] = a;
    }
    if (a == p->leader) {
        p->top1 = c;
    } else if (p->leader < 0 || c > p->top1 || (c == p->top1 && p->rank[a] < p->rank[p->leader])) {
        p->top2 = p->top1;
        p->top1 = c;
        p->leader = a;
    } else if (c > p->top2) {
        p->top2 = c;
    }
}

static inline int beta_stop(es_policy *p)
{
    if (p->top2 < p->beta_filled) return p->top1 >= p->beta_min_a[p->top2];
    if (p->top2 < BETA_TABLE) return p->top1 >= beta_min(p, p->top2);
    return es_beta_lead_prob(p->top1, p->top2) >= p->across.threshold;
}

/* Top-k counts, leader first, for the Dirichlet criterion. */
static uint32_t top_counts(const es_policy *p, uint32_t *out, uint32_t k)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->n_seen; i++) {
        uint32_t c = p->counts[p->seen[i]], j = n < k ? n++ : k;
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

NOINLINE static int dirichlet_stop(es_policy *p)
{
    if (p->n_seen < 3) return beta_stop(p); /* as upstream: two answers are the Beta case */
    uint32_t top[64];
    uint32_t n = top_counts(p, top, p->across.top_k);
    return es_dirichlet_lead_prob(top, n) >= p->across.threshold;
}

NOINLINE static int entropy_stop(const es_policy *p)
{
    uint32_t c[64];
    uint32_t n = p->n_seen;
    double h;
    if (n <= 64) {
        for (uint32_t i = 0; i < n; i++) c[i] = p->counts[p->seen[i]];
        h = es_vote_entropy_norm(c, n);
    } else {
        h = 1.0; /* 65+ distinct answers: nowhere near settled */
    }
    return h <= p->across.threshold;
}

/* ESC: unanimous window -> stop with that window's answer. */
static int esc_stop(es_policy *p, int32_t a)
{
    if (p->win_fill++ == 0) {
        p->win_answer = a;
        p->win_same = 1;
    } else if (a != p->win_answer) {
        p->win_same = 0;
    }
    if (p->win_fill < p->across.window) return 0;
    p->win_fill = 0;
    if (!p->win_same) return 0;
    p->esc_answer = p->win_answer;
    return 1;
}

/* Percentile with linear interpolation (numpy's default), q in [0, 100]. */
static double percentile(double *v, uint32_t n, double q)
{
    for (uint32_t i = 1; i < n; i++) { /* n is a warm-up count: insertion sort is fine */
        double x = v[i];
        uint32_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    double pos = q / 100.0 * (n - 1);
    uint32_t lo = (uint32_t)pos;
    if (lo + 1 >= n) return v[n - 1];
    return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

/* DeepConf: warm-up traces fix the threshold; kept traces vote with their
 * lowest group confidence as weight; stop once the weighted leader holds the
 * consensus threshold. */
NOINLINE static int deepconf_end(es_policy *p, int32_t a)
{
    if (isinf(p->sample_cmin))
        return fail(p, ES_ENOTSUP, "deepconf needs token confidences: window_confidence at probes or "
                                   "per-token events; this sample carries neither");
    if (p->n_warm < p->across.warmup) {
        p->warm[p->n_warm++] = p->sample_cmin;
        if (p->n_warm == p->across.warmup)
            p->dc_threshold = percentile(p->warm, p->n_warm, 100.0 - p->across.eta);
    }
    if (!p->dc_terminated) {
        double w = p->weights[a] += p->sample_cmin;
        p->w_total += p->sample_cmin;
        if (p->w_leader < 0 || w > p->weights[p->w_leader] || (w == p->weights[p->w_leader] && p->rank[a] < p->rank[p->w_leader]))
            p->w_leader = a;
    }
    return p->n_warm >= p->across.warmup && p->w_leader >= 0 && p->w_total > 0 &&
           p->weights[p->w_leader] / p->w_total >= p->across.threshold;
}

static int across_stop(es_policy *p, int32_t a)
{
    const rule_cfg *r = &p->across;
    count_vote(p, a);
    if (r->kind == RULE_DEEPCONF) return deepconf_end(p, a);
    if (p->n_samples < r->min_samples) return 0;
    switch (r->kind) {
    case RULE_BUDGET_SAMPLES: return p->n_samples >= r->max_samples;
    case RULE_AC_BETA: return beta_stop(p);
    case RULE_AC_DIRICHLET: return dirichlet_stop(p);
    case RULE_MAJORITY: return (double)p->top1 >= r->fraction * p->n_samples;
    case RULE_ENTROPY: return entropy_stop(p);
    case RULE_ESC: return esc_stop(p, a);
    default: return 0;
    }
}

int es_policy_end_sample(es_policy *p, int32_t answer, uint32_t tokens, float confidence)
{
    (void)tokens;
    (void)confidence;
    if (answer < 0 || (uint32_t)answer >= p->cap) return fail(p, ES_EINVAL, "answer id out of range");
    p->n_samples++;
    int stop = across_stop(p, answer);
    if (stop < 0) return stop;
    if (p->across.max_samples && p->n_samples >= p->across.max_samples) stop = 1;
    if (p->max_samples && p->n_samples >= p->max_samples) stop = 1;
    return stop ? ES_STOP : ES_CONTINUE;
}

int32_t es_policy_answer(const es_policy *p)
{
    if (p->esc_answer >= 0) return p->esc_answer;
    if (p->across.kind == RULE_DEEPCONF && p->w_leader >= 0) return p->w_leader;
    /* deepconf with every trace ended early falls back to the plain vote */
    return p->leader;
}
