/*
 * deepconf.c - DeepConf online (2025), as facebookresearch/deepconf's
 * wrapper.py runs it (@675529d, deepthink(mode="online")).
 *
 * Both levels at once.  Within a sample: a sliding window of `window`
 * token confidences (DeepConf's group confidence); once the warm-up is over,
 * a group below the threshold ends the trace.  Across samples: the first
 * `warmup` traces fix the threshold at the (100 - eta)th percentile of their
 * lowest group confidences (np.percentile, operation for operation); a trace
 * votes when its confidence is at or above it, weighted by it (vote=count:
 * 1 each); no answer, no vote; a cut trace never votes.  Every sample is
 * drawn unless consensus= turns on the paper's stop (the weighted leader's
 * share reaches it).  Trace confidences are rounded to `round` decimals as
 * upstream's compute_least_grouped rounds its window means; a trace shorter
 * than the window gets the mean of all its tokens.  Traces replayed from a
 * file carry window_confidence at their probes instead of token events.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rules.h"

enum { P_WARMUP, P_ETA, P_WINDOW, P_CONSENSUS, P_VOTE, P_ROUND, P_MAX, P_EVERY };

typedef struct deepconf_state {
    /* config */
    uint32_t warmup, window, plain_vote, round_digits;
    double eta, consensus;
    /* buffers (configure) */
    double *warm;           /* [warmup] each warm-up trace's confidence, NaN = none */
    int32_t *warm_answer;   /* [warmup] and its answer */
    double *sorted;         /* [warmup] percentile scratch */
    float *ring;            /* [window] per-token confidences */
    /* question */
    es_tally t;             /* the voters, in order of first vote (upstream's dict order) */
    double *weights;        /* [t.cap] */
    uint32_t weights_cap;
    double threshold, w_total;
    int32_t w_leader;
    uint32_t n_warm, n_scored;
    /* sample */
    int terminated;
    int32_t sample_answer;
    double cmin, ring_sum;
    uint32_t ring_fill, ring_pos;
} deepconf_state;

static const es_param_def params[] = {
    {"warmup", ES_PARAM_COUNT, 16, 1, 1e6, NULL, 0, 0, "warm-up traces per question"},
    {"eta", ES_PARAM_REAL, 10, 0, 100, NULL, 0, 0, "percent of warm-up traces kept (10 = DeepConf-low)"},
    {"window", ES_PARAM_COUNT, 2048, 1, 1e7, NULL, 0, 0, "tokens per group"},
    {"consensus", ES_PARAM_REAL, -1, 0, 1, "off", -1, 0, "the paper's consensus stop (off = released code)"},
    {"vote", ES_PARAM_CHOICE, 0, 0, 0, "weighted|count", 0, 0, "confidence-weighted vote or a plain count"},
    {"round", ES_PARAM_COUNT, 3, 0, 9, "off", UINT32_MAX, 0, "decimals of trace confidences"},
    ES_PARAM_MAX,
    ES_PARAM_EVERY,
};

static void release(void *st)
{
    deepconf_state *s = st;
    free(s->warm);
    free(s->warm_answer);
    free(s->sorted);
    free(s->ring);
    free(s->weights);
    es_tally_release(&s->t);
    s->warm = s->sorted = s->weights = NULL;
    s->warm_answer = NULL;
    s->ring = NULL;
    s->weights_cap = 0;
}

static int configure(void *st, const double *param, es_rule_msg *msg)
{
    deepconf_state *s = st;
    uint32_t max = (uint32_t)param[P_MAX];
    if (max && param[P_WARMUP] > max) {
        snprintf(msg->text, sizeof msg->text, "deepconf: warmup=%u is more than max=%u (the warm-up could never end)",
                 (uint32_t)param[P_WARMUP], max);
        return ES_EINVAL;
    }
    uint32_t warmup = (uint32_t)param[P_WARMUP], window = (uint32_t)param[P_WINDOW];
    if (warmup != s->warmup || !s->warm) {
        free(s->warm);
        free(s->warm_answer);
        free(s->sorted);
        s->warm = malloc(warmup * sizeof *s->warm);
        s->warm_answer = malloc(warmup * sizeof *s->warm_answer);
        s->sorted = malloc(warmup * sizeof *s->sorted);
    }
    if (window != s->window || !s->ring) {
        free(s->ring);
        s->ring = malloc(window * sizeof *s->ring);
    }
    if (!s->warm || !s->warm_answer || !s->sorted || !s->ring) return ES_ENOMEM;
    s->warmup = warmup;
    s->window = window;
    s->eta = param[P_ETA];
    s->consensus = param[P_CONSENSUS];
    s->plain_vote = (uint32_t)param[P_VOTE];
    s->round_digits = (uint32_t)param[P_ROUND];
    return ES_OK;
}

static int begin_item(void *st, uint32_t max_answers)
{
    deepconf_state *s = st;
    /* the last question's weights, while the tally still lists its voters */
    for (uint32_t i = 0; i < s->t.n_seen && s->weights; i++) s->weights[s->t.seen[i]] = 0.0;
    if (es_rule_tally_begin(&s->t, max_answers)) return ES_ENOMEM;
    if (s->weights_cap < s->t.cap) {
        double *w = realloc(s->weights, s->t.cap * sizeof *w);
        if (!w) return ES_ENOMEM;
        for (uint32_t i = s->weights_cap; i < s->t.cap; i++) w[i] = 0;
        s->weights = w;
        s->weights_cap = s->t.cap;
    }
    s->threshold = -INFINITY;
    s->w_total = 0;
    s->w_leader = -1;
    s->n_warm = s->n_scored = 0;
    return ES_OK;
}

/* Clear the votes (only answers voted are non-zero). */
static void clear_votes(deepconf_state *s)
{
    for (uint32_t i = 0; i < s->t.n_seen; i++) s->weights[s->t.seen[i]] = 0.0;
    es_tally_clear(&s->t);
    s->w_leader = -1;
    s->w_total = 0;
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
 * The tally keeps the order of first votes among voters: upstream's dict
 * order, which breaks its ties. */
static void vote(deepconf_state *s, int32_t a, double conf)
{
    if (a == ES_NULL_ANSWER) return;
    es_tally_vote(&s->t, a);
    double w = s->plain_vote ? 1.0 : conf, wa = s->weights[a] += w;
    s->w_total += w;
    if (s->w_leader < 0 || wa > s->weights[s->w_leader] ||
        (wa == s->weights[s->w_leader] && s->t.rank[a] < s->t.rank[s->w_leader]))
        s->w_leader = a;
}

/* Threshold from the warm-up traces so far and their votes: a warm-up trace
 * votes only when its confidence clears the threshold (wrapper.py,
 * _perform_basic_voting).  Redone after every warm-up trace, so that a
 * question with fewer samples than `warmup` ends with the votes its traces
 * earn; O(warmup^2) per question, nothing per token. */
static void warmup_tally(deepconf_state *s)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < s->n_warm; i++)
        if (!isnan(s->warm[i])) s->sorted[m++] = s->warm[i];
    s->threshold = m ? percentile(s->sorted, m, 100.0 - s->eta) : -INFINITY;
    clear_votes(s);
    for (uint32_t i = 0; i < s->n_warm; i++)
        if (!isnan(s->warm[i]) && s->warm[i] >= s->threshold) vote(s, s->warm_answer[i], s->warm[i]);
}

/* x rounded to d decimals as Python's round(x, d) does it (the exact binary
 * value, ties to even): printf's %.*f rounds the same way. */
static double round_decimals(double x, uint32_t d)
{
    char buf[400];
    snprintf(buf, sizeof buf, "%.*f", (int)d, x);
    return strtod(buf, NULL);
}

/* A trace's confidence: its lowest group, rounded to `round` decimals (its
 * logits processor still cuts on unrounded ones); a trace shorter than the
 * window gets the mean of all its tokens, unrounded as upstream's; NaN when
 * it carries no confidence at all (no token events, no probe). */
static double trace_conf(const deepconf_state *s)
{
    if (!isinf(s->cmin)) return s->round_digits == UINT32_MAX ? s->cmin : round_decimals(s->cmin, s->round_digits);
    return s->ring_fill ? s->ring_sum / s->ring_fill : NAN;
}

static const char no_conf[] = "deepconf needs token confidences: window_confidence at probes or per-token events; ";

static int end_sample(void *st, const es_sample_event *ev, es_rule_msg *msg)
{
    deepconf_state *s = st;
    double conf = trace_conf(s);
    s->n_scored += !isnan(conf);
    if (s->n_warm < s->warmup) {
        s->warm[s->n_warm] = conf;
        s->warm_answer[s->n_warm++] = ev->answer;
        warmup_tally(s);
    } else if (!s->terminated && !isnan(conf) && conf >= s->threshold) {
        /* a cut trace never votes: upstream's forced EOS leaves it no answer,
         * even where its rounded confidence is back at the threshold */
        vote(s, ev->answer, conf);
    }
    int stop = s->consensus >= 0 && s->n_warm >= s->warmup && s->w_leader >= 0 && s->w_total > 0 &&
               s->weights[s->w_leader] / s->w_total >= s->consensus;
    if ((stop || ev->last) && !s->n_scored) {
        snprintf(msg->text, sizeof msg->text, "%sno sample of this question carries any", no_conf);
        return ES_ENOTSUP;
    }
    return stop;
}

/* no kept trace with an answer: no answer, as upstream's
 * weighted_majority_vote returns None */
static int32_t answer(const void *st)
{
    const deepconf_state *s = st;
    return s->w_leader >= 0 ? s->w_leader : ES_NULL_ANSWER;
}

/* the warm-up traces at once, then (released code) all the others at once,
 * or (consensus stop) one at a time */
static uint32_t rounds(const void *st, uint32_t samples)
{
    const deepconf_state *s = st;
    if (samples <= s->warmup) return samples ? 1 : 0;
    return s->consensus < 0 ? 2 : 1 + samples - s->warmup;
}

static void begin_sample(void *st)
{
    deepconf_state *s = st;
    s->terminated = 0;
    s->sample_answer = -1;
    s->cmin = INFINITY;
    s->ring_sum = 0;
    s->ring_fill = s->ring_pos = 0;
}

/* A group confidence below the warm-up threshold ends the trace. */
static int group(deepconf_state *s, double g)
{
    if (g < s->cmin) s->cmin = g;
    if (s->n_warm >= s->warmup && g < s->threshold) {
        s->terminated = 1;
        return ES_STOP;
    }
    return ES_CONTINUE;
}

static int token(void *st, float logprob, float conf)
{
    (void)logprob;
    deepconf_state *s = st;
    if (isnan(conf)) return ES_CONTINUE;
    uint32_t w = s->window;
    if (s->ring_fill == w) s->ring_sum -= s->ring[s->ring_pos];
    else s->ring_fill++;
    s->ring[s->ring_pos] = conf;
    s->ring_sum += conf;
    s->ring_pos = (s->ring_pos + 1) % w;
    if (s->ring_fill < w) return ES_CONTINUE; /* a group is a full window */
    return group(s, s->ring_sum / w);
}

static int probe(void *st, const es_probe_event *ev, es_rule_msg *msg)
{
    deepconf_state *s = st;
    if (s->ring_fill) return ES_CONTINUE; /* per-token confidences drive it */
    if (isnan(ev->window_confidence)) {
        snprintf(msg->text, sizeof msg->text, "%sthese traces carry neither", no_conf);
        return ES_ENOTSUP;
    }
    s->sample_answer = ev->answer;
    return group(s, ev->window_confidence);
}

static int32_t sample_answer(const void *st) { return ((const deepconf_state *)st)->sample_answer; }

const es_rule_def es_rule_deepconf = {
    .name = "deepconf",
    .level = ES_LEVEL_BOTH,
    .params = params,
    .n_params = 8,
    .min_param = -1,
    .max_param = P_MAX,
    .state_size = sizeof(deepconf_state),
    .doc = "DeepConf online",
    .configure = configure,
    .release = release,
    .begin_item = begin_item,
    .end_sample = end_sample,
    .answer = answer,
    .rounds = rounds,
    .begin_sample = begin_sample,
    .token = token,
    .probe = probe,
    .sample_answer = sample_answer,
    .needs_probes = 1,
    .every_param = P_EVERY,
};
