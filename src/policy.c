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
    char spec[512];
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
    uint32_t *scratch;       /* [cap] entropy: counts in order of first vote */
    double *warm;            /* [warmup] deepconf: each warm-up trace's confidence, NaN = none */
    int32_t *warm_answer;    /* [warmup] and its answer */
    double *sorted;          /* [warmup] percentile scratch */
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
    uint32_t n_warm, n_scored;
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
    uint32_t *scratch = realloc(p->scratch, c * sizeof *scratch);
    if (scratch) p->scratch = scratch;
    if (!counts || !w || !seen || !rank || !scratch) return ES_ENOMEM;
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
        p->warm_answer = malloc(p->across.warmup * sizeof *p->warm_answer);
        p->sorted = malloc(p->across.warmup * sizeof *p->sorted);
        p->ring = malloc(p->across.window * sizeof *p->ring);
        if (!p->warm || !p->warm_answer || !p->sorted || !p->ring) rc = ES_ENOMEM;
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
    free(p->scratch);
    free(p->warm);
    free(p->warm_answer);
    free(p->sorted);
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

uint32_t es_policy_probe_lag(const es_policy *p)
{
    return p->within.kind == RULE_DYNASOR && !p->within.at_probe;
}

uint32_t es_policy_batch(const es_policy *p)
{
    switch (p->across.kind) {
    case RULE_ESC: return p->across.window;
    case RULE_FULL: case RULE_BUDGET_SAMPLES: return p->across.max_samples;
    default: return 1;
    }
}

/* DeepConf draws its warm-up traces at once, then (released code) all the
 * others at once, or (consensus stop) one at a time. */
int es_policy_counts_only(const es_policy *p)
{
    if (p->within.kind != RULE_NONE) return 0;
    switch (p->across.kind) {
    case RULE_FULL: case RULE_BUDGET_SAMPLES: case RULE_AC_BETA: case RULE_AC_DIRICHLET:
    case RULE_MAJORITY: case RULE_ENTROPY: case RULE_ESC:
        return 1;
    default:
        return 0;
    }
}

uint32_t es_policy_rounds(const es_policy *p, uint32_t samples)
{
    if (p->across.kind == RULE_DEEPCONF) {
        uint32_t w = p->across.warmup;
        if (samples <= w) return samples ? 1 : 0;
        return p->across.consensus < 0 ? 2 : 1 + samples - w;
    }
    uint32_t batch = es_policy_batch(p);
    return batch == 0 ? 1 : (samples + batch - 1) / batch;
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
    /* one cap: the caller's and the rule's max, the smaller */
    uint32_t cap = p->across.max_samples;
    if (max_samples && (!cap || max_samples < cap)) cap = max_samples;
    /* ESC's scripts loop over k // window whole windows and never draw the
     * last k mod window samples (remainder=skip); fewer than a window: all */
    if (p->across.kind == RULE_ESC && p->across.skip_tail && cap >= p->across.window) cap -= cap % p->across.window;
    p->max_samples = cap;
    p->null_answer = null_answer;
    p->n_samples = p->n_seen = 0;
    p->leader = p->esc_answer = p->w_leader = -1;
    p->top1 = p->top2 = 0;
    p->win_fill = 0;
    p->win_same = 1;
    p->win_answer = -1;
    p->dc_threshold = -INFINITY;
    p->w_total = 0;
    p->n_warm = p->n_scored = 0;
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

/* AC's EntropyStoppingCriteria: the counts go in order of first vote, as
 * upstream's Counter lists them, so the float sum matches its order. */
NOINLINE static int entropy_stop(es_policy *p)
{
    for (uint32_t i = 0; i < p->n_seen; i++) p->scratch[i] = p->counts[p->seen[i]];
    return es_vote_entropy_norm(p->scratch, p->n_seen) <= p->across.threshold;
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

/* np.percentile(v, q) with its default linear method, operation for
 * operation: virtual index (n-1) * (q/100), and numpy's _lerp, which
 * interpolates from the upper neighbour once the fraction reaches 1/2.
 * Sorts v (n is a warm-up count: insertion sort is fine). */
static double percentile(double *v, uint32_t n, double q)
{
    for (uint32_t i = 1; i < n; i++) {
        double x = v[i];
        uint32_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    double pos = (double)(n - 1) * (q / 100.0), fl = floor(pos);
    uint32_t lo = (uint32_t)fl;
    if (lo + 1 >= n) return v[n - 1];
    double t = pos - fl, a = v[lo], b = v[lo + 1], d = b - a;
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

/* A kept trace votes for its answer, weighted by its confidence (or 1 with
 * vote=count); no answer, no vote (upstream skips a falsy extracted_answer).
 * count_vote keeps the order of first votes among voters: upstream's dict
 * order, which breaks its ties. */
static void deepconf_vote(es_policy *p, int32_t a, double conf)
{
    if (a == p->null_answer) return;
    count_vote(p, a);
    double w = p->across.plain_vote ? 1.0 : conf, wa = p->weights[a] += w;
    p->w_total += w;
    if (p->w_leader < 0 || wa > p->weights[p->w_leader] ||
        (wa == p->weights[p->w_leader] && p->rank[a] < p->rank[p->w_leader]))
        p->w_leader = a;
}

/* Threshold from the warm-up traces so far and their votes: a warm-up trace
 * votes only when its confidence clears the threshold (wrapper.py,
 * _perform_basic_voting).  Redone after every warm-up trace, so that a
 * question with fewer samples than `warmup` ends with the votes its traces
 * earn; O(warmup^2) per question, nothing per token. */
static void deepconf_warmup_tally(es_policy *p)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < p->n_warm; i++)
        if (!isnan(p->warm[i])) p->sorted[m++] = p->warm[i];
    p->dc_threshold = m ? percentile(p->sorted, m, 100.0 - p->across.eta) : -INFINITY;
    for (uint32_t i = 0; i < p->n_seen; i++) {
        p->counts[p->seen[i]] = 0;
        p->weights[p->seen[i]] = 0.0;
    }
    p->n_seen = 0;
    p->leader = p->w_leader = -1;
    p->top1 = p->top2 = 0;
    p->w_total = 0;
    for (uint32_t i = 0; i < p->n_warm; i++)
        if (!isnan(p->warm[i]) && p->warm[i] >= p->dc_threshold) deepconf_vote(p, p->warm_answer[i], p->warm[i]);
}

/* x rounded to d decimals as Python's round(x, d) does it (the exact binary
 * value, ties to even): printf's %.*f rounds the same way. */
static double round_decimals(double x, uint32_t d)
{
    char buf[400];
    snprintf(buf, sizeof buf, "%.*f", (int)d, x);
    return strtod(buf, NULL);
}

/* A trace's confidence: its lowest group, rounded to `round` decimals as
 * upstream's compute_least_grouped rounds its window means (its logits
 * processor still cuts on unrounded ones); a trace shorter than the window
 * gets the mean of all its tokens, unrounded as upstream's; NaN when it
 * carries no confidence at all (no token events, no probe). */
static double deepconf_trace_conf(const es_policy *p)
{
    if (!isinf(p->sample_cmin))
        return p->across.round_digits == UINT32_MAX ? p->sample_cmin
                                                     : round_decimals(p->sample_cmin, p->across.round_digits);
    return p->ring_fill ? p->ring_sum / p->ring_fill : NAN;
}

/* DeepConf online as facebookresearch/deepconf's wrapper.py runs it: the
 * warm-up traces fix the threshold; a later trace is cut at its first group
 * below it (the within half) and a later trace votes when its confidence is
 * at or above it; every sample is drawn.  consensus >= 0 adds the paper's
 * stop: the weighted leader's share of the votes reaches it. */
NOINLINE static int deepconf_end(es_policy *p, int32_t a)
{
    double conf = deepconf_trace_conf(p);
    p->n_scored += !isnan(conf);
    if (p->n_warm < p->across.warmup) {
        p->warm[p->n_warm] = conf;
        p->warm_answer[p->n_warm++] = a;
        deepconf_warmup_tally(p);
    } else if (!p->dc_terminated && !isnan(conf) && conf >= p->dc_threshold) {
        /* a cut trace never votes: upstream's forced EOS leaves it no answer,
         * even where its rounded confidence is back at the threshold */
        deepconf_vote(p, a, conf);
    }
    return p->across.consensus >= 0 && p->n_warm >= p->across.warmup && p->w_leader >= 0 && p->w_total > 0 &&
           p->weights[p->w_leader] / p->w_total >= p->across.consensus;
}

static int across_stop(es_policy *p, int32_t a)
{
    const rule_cfg *r = &p->across;
    if (r->kind == RULE_DEEPCONF) return deepconf_end(p, a);
    count_vote(p, a);
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
    if (p->max_samples && p->n_samples >= p->max_samples) stop = 1;
    if (stop && p->across.kind == RULE_DEEPCONF && !p->n_scored)
        return fail(p, ES_ENOTSUP, "deepconf needs token confidences: window_confidence at probes or "
                                   "per-token events; no sample of this question carries any");
    return stop ? ES_STOP : ES_CONTINUE;
}

int32_t es_policy_answer(const es_policy *p)
{
    if (p->esc_answer >= 0) return p->esc_answer;
    /* deepconf with no kept trace that has an answer answers nothing, as
     * upstream's weighted_majority_vote returns None */
    if (p->across.kind == RULE_DEEPCONF) return p->w_leader >= 0 ? p->w_leader : p->null_answer;
    return p->leader;
}
