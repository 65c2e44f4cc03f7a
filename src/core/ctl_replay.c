/*
 * ctl_replay.c - what every candidate value would have done on one request,
 * from the samples it drew: the controller's private clone of the policy,
 * in observe mode, is fed the settled samples in order, and after each
 * round it says at which values the rule would stop there
 * (es_policy_boundary).  A candidate stops at the first round whose
 * boundary covers it; its answer is the policy's answer there, its cost the
 * tokens up to there.  Aggressive candidates stop first, so a request that
 * stopped early shows every candidate at least as aggressive as its own; an
 * audited one, run on to the policy's end, shows them all and the full
 * run's answer.  This is the exact sweep of src/tune (sweep.c) on one
 * request, kept in the core so that an engine embedding the core alone can
 * learn from its own traffic.
 *
 * An audit drew every sample up to the cap.  Its samples are exchangeable
 * (drawn independently for one question), so every reordering of them is
 * a request the traffic could have sent: ctl_replay_audit replays
 * CTL_ORDERS random orders and averages, which turns the audit's 0/1
 * disagreement at each candidate into that question's disagreement rate
 * (the randomness of the order integrated out, as `eval --shuffles` does).
 *
 * Also here: the boundary's direction and a default grid of candidates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "controller_int.h"

int ctl_cf_alloc(ctl_cf *cf, uint32_t n)
{
    memset(cf, 0, sizeof *cf);
    cf->stop = calloc(n, sizeof *cf->stop);
    cf->answer = calloc(n, sizeof *cf->answer);
    cf->tokens = calloc(n, sizeof *cf->tokens);
    cf->kv = calloc(n, sizeof *cf->kv);
    return cf->stop && cf->answer && cf->tokens && cf->kv ? ES_OK : ES_ENOMEM;
}

int ctl_audit_alloc(ctl_audit *a, uint32_t n)
{
    memset(a, 0, sizeof *a);
    a->dis = calloc(n, sizeof *a->dis);
    a->cost = calloc(n, sizeof *a->cost);
    a->cost2 = calloc(n, sizeof *a->cost2);
    a->alt = calloc(n, sizeof *a->alt);
    a->alt_share = calloc(n, sizeof *a->alt_share);
    a->pair = calloc((size_t)n * n, sizeof *a->pair);
    return a->dis && a->cost && a->cost2 && a->alt && a->alt_share && a->pair ? ES_OK : ES_ENOMEM;
}

void ctl_audit_free(ctl_audit *a)
{
    free(a->dis);
    free(a->cost);
    free(a->cost2);
    free(a->alt);
    free(a->alt_share);
    free(a->pair);
    memset(a, 0, sizeof *a);
}

/* What the target measures on an outcome: KV bytes, or tokens (em-loss
 * minimises tokens too). */
double ctl_measure(const es_controller *c, uint64_t tokens, uint64_t kv)
{
    return c->kind == ES_TARGET_KV ? (double)kv * c->kv_bpp : (double)tokens;
}

void ctl_cf_free(ctl_cf *cf)
{
    free(cf->stop);
    free(cf->answer);
    free(cf->tokens);
    free(cf->kv);
    memset(cf, 0, sizeof *cf);
}

/* Does the set of values at which the rule stops (value <= b for an upper
 * bound, >= b for a lower one) hold v? */
int ctl_covers(int dir, double b, double v)
{
    return dir == ES_BOUND_UPPER ? v <= b : dir == ES_BOUND_LOWER ? v >= b : 0;
}

static void set_stop(ctl_cf *cf, int i, uint32_t samples, int32_t answer, uint64_t tokens, uint64_t kv)
{
    cf->stop[i] = samples;
    cf->answer[i] = answer;
    cf->tokens[i] = tokens;
    cf->kv[i] = kv;
}

/*
 * The replay.  Rounds of `batch` samples as the session has them
 * (session.c: round_verdict): the rule's verdict, and so its boundary,
 * counts at a round's end; the policy's own end (its cap, or clinch) counts
 * at a round's end or at the cap.  Memory adds up each round's tokens and
 * keeps the largest round.
 */
int ctl_replay(es_controller *c, const es_controller_request *r)
{
    es_policy *p = c->cf_policy;
    ctl_cf *cf = &c->cf;
    if (es_policy_begin_item(p, r->max_samples, r->max_answers)) return ES_ENOMEM;
    uint32_t batch = c->batch > 1 ? c->batch : 1;
    int next = (int)c->n - 1; /* the most aggressive candidate not yet stopped */
    uint64_t tokens = 0, round = 0, kv = 0;
    cf->complete = 0;
    cf->full = -1;
    cf->full_tokens = cf->full_kv = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        float conf = r->confidence ? r->confidence[i] : (float)NAN;
        int rc = es_policy_end_sample(p, r->answer[i], r->tokens[i], conf);
        if (rc < 0) return rc;
        tokens += (uint64_t)r->tokens[i] + (r->probe_tokens ? r->probe_tokens[i] : 0);
        round += r->tokens[i];
        if (round > kv) kv = round;
        uint32_t done = i + 1;
        int round_end = done % batch == 0;
        if (round_end) round = 0;
        int end = rc == ES_STOP && (round_end || (p->cap && done >= p->cap));
        if (end) {
            int32_t a = es_policy_answer(p);
            for (; next >= 0; next--) set_stop(cf, next, done, a, tokens, kv);
            cf->complete = 1;
            cf->full = a;
            cf->full_tokens = tokens;
            cf->full_kv = kv;
            break;
        }
        if (!round_end) continue;
        double b;
        int d = es_policy_boundary(p, &b);
        if (d == ES_BOUND_NEVER || next < 0 || !ctl_covers(d, b, c->cand[next])) continue;
        int32_t a = es_policy_answer(p);
        for (; next >= 0 && ctl_covers(d, b, c->cand[next]); next--) set_stop(cf, next, done, a, tokens, kv);
    }
    cf->known_from = (uint32_t)(next + 1);
    return ES_OK;
}

/* Room for an audit of n samples, reordered. */
static int reserve(es_controller *c, uint32_t n)
{
    if (n <= c->scratch_cap) return ES_OK;
    uint32_t *order = realloc(c->order, n * sizeof *order);
    if (order) c->order = order;
    uint32_t *tok = realloc(c->s_tok, n * sizeof *tok);
    if (tok) c->s_tok = tok;
    uint32_t *prb = realloc(c->s_prb, n * sizeof *prb);
    if (prb) c->s_prb = prb;
    int32_t *ans = realloc(c->s_ans, n * sizeof *ans);
    if (ans) c->s_ans = ans;
    float *conf = realloc(c->s_conf, n * sizeof *conf);
    if (conf) c->s_conf = conf;
    if (!order || !tok || !prb || !ans || !conf) return ES_ENOMEM;
    c->scratch_cap = n;
    return ES_OK;
}

/* One order's outcome added to the audit's averages with weight w. */
static void add_order(es_controller *c, double w)
{
    const ctl_cf *cf = &c->cf;
    ctl_audit *a = &c->au;
    uint32_t n = c->n;
    for (uint32_t i = 0; i < n; i++) {
        double m = ctl_measure(c, cf->tokens[i], cf->kv[i]);
        a->cost[i] += w * m;
        a->cost2[i] += w * m * m;
        if (cf->answer[i] != cf->full) {
            a->dis[i] += w;
            if (a->alt[i] < 0) a->alt[i] = cf->answer[i];
            if (cf->answer[i] == a->alt[i]) a->alt_share[i] += w;
        }
        for (uint32_t j = i + 1; j < n; j++) a->pair[(size_t)i * n + j] += w * (cf->answer[j] != cf->answer[i]);
    }
}

/*
 * The audit's figures per candidate.  reorder: r holds every sample up to
 * the cap, replayed in CTL_ORDERS random orders (a pure function of the
 * seed and the request); else the order it came in, already replayed into
 * c->cf.  Leaves c->cf holding the last order replayed.
 */
int ctl_replay_audit(es_controller *c, const es_controller_request *r, int reorder)
{
    ctl_audit *a = &c->au;
    uint32_t n = c->n;
    memset(a->dis, 0, n * sizeof *a->dis);
    memset(a->cost, 0, n * sizeof *a->cost);
    memset(a->cost2, 0, n * sizeof *a->cost2);
    memset(a->alt_share, 0, n * sizeof *a->alt_share);
    memset(a->pair, 0, (size_t)n * n * sizeof *a->pair);
    for (uint32_t i = 0; i < n; i++) a->alt[i] = -1;
    if (!reorder) {
        add_order(c, 1.0);
        return ES_OK;
    }
    if (reserve(c, r->n)) return ES_ENOMEM;
    uint64_t state = ctl_mix64(c->seed ^ ctl_mix64(r->ticket ? r->ticket->request : 0) ^ 0x6F72646572ULL);
    es_controller_request p = *r;
    p.answer = c->s_ans;
    p.tokens = c->s_tok;
    p.probe_tokens = c->s_prb;
    p.confidence = c->s_conf;
    for (uint32_t k = 0; k < CTL_ORDERS; k++) {
        for (uint32_t i = 0; i < r->n; i++) c->order[i] = i;
        for (uint32_t i = r->n; i > 1; i--) { /* Fisher-Yates */
            state = ctl_mix64(state);
            uint32_t j = (uint32_t)(state % i);
            uint32_t t = c->order[i - 1];
            c->order[i - 1] = c->order[j];
            c->order[j] = t;
        }
        for (uint32_t i = 0; i < r->n; i++) {
            uint32_t o = c->order[i];
            c->s_ans[i] = r->answer[o];
            c->s_tok[i] = r->tokens[o];
            c->s_prb[i] = r->probe_tokens ? r->probe_tokens[o] : 0;
            c->s_conf[i] = r->confidence ? r->confidence[o] : (float)NAN;
        }
        int rc = ctl_replay(c, &p);
        if (rc) return rc;
        if (!c->cf.complete) return ES_EINVAL;
        add_order(c, 1.0 / CTL_ORDERS);
    }
    return ES_OK;
}

/* Which way the parameter points: feed a clone unanimous votes in observe
 * mode until the rule would stop somewhere; its boundary's kind says whether
 * lower values stop sooner (ES_BOUND_UPPER, AC's threshold) or higher ones
 * (ES_BOUND_LOWER, the entropy threshold). */
int ctl_direction(const es_policy *proto, int *dir)
{
    es_policy *p;
    *dir = 0;
    if (es_policy_clone(proto, &p, NULL)) return ES_ENOMEM;
    int rc = es_policy_observe(p, 1);
    if (!rc && es_policy_begin_item(p, 0, 2)) rc = ES_ENOMEM;
    for (int i = 0; !rc && i < 1024 && !*dir; i++) {
        int v = es_policy_end_sample(p, 1, 100, (float)NAN);
        if (v < 0) rc = v;
        double b;
        int d = rc ? ES_BOUND_NEVER : es_policy_boundary(p, &b);
        if (d != ES_BOUND_NEVER) *dir = d;
        if (v == ES_STOP) break;
    }
    es_policy_free(p);
    return rc ? rc : *dir ? ES_OK : ES_ENOTSUP;
}

/*
 * Sixteen values from the conservative end of the parameter's range to its
 * aggressive end.  A real parameter (a probability threshold): distances
 * from the conservative end log-spaced from 1/1000 of the range to all of
 * it, since the decisions that matter crowd near the end (AC's 0.95, 0.99,
 * 0.999).  A count (margin's m): whole numbers from max(16, 4 x its
 * default) down to its least, geometrically spaced.
 */
int ctl_default_grid(const es_param_info *pi, int dir, double *out, uint32_t *n)
{
    const uint32_t m = 16;
    if (pi->choices) return ES_ENOTSUP;
    double lo = pi->lo, hi = pi->hi;
    *n = 0;
    if (!pi->integer) {
        for (uint32_t j = 0; j < m; j++) {
            double g = pow(10.0, -3.0 + 3.0 * j / (m - 1));
            out[(*n)++] = dir == ES_BOUND_UPPER ? hi - (hi - lo) * g : lo + (hi - lo) * g;
        }
        return ES_OK;
    }
    double least = lo > 1 ? lo : 1, top = fmax(16.0, 4.0 * pi->value);
    if (top > hi) top = hi;
    if (top < least) top = least;
    for (uint32_t j = 0; j < m; j++) {
        double t = (double)j / (m - 1);
        double v = round(exp(log(top) + (log(least) - log(top)) * t));
        if (dir == ES_BOUND_LOWER) v = round(exp(log(least) + (log(top) - log(least)) * t));
        if (*n == 0 || out[*n - 1] != v) out[(*n)++] = v;
    }
    return ES_OK;
}
