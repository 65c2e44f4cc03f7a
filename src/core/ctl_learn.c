/*
 * ctl_learn.c - what the controller learns from each request, and the law
 * that moves it (docs/controller.md).
 *
 * Estimates, exponentially weighted per request:
 *  - costs per candidate (half-life W/4): a request shows, without bias,
 *    every candidate from its own to the most aggressive (they stop first,
 *    on its samples); an audit shows all of them, averaged over reorderings;
 *  - disagreement with the full run per candidate (half-life 8W): audits
 *    only, each an average over reorderings of its samples, under a prior;
 *  - pairs (half-life 8W): how often candidate i answers otherwise than a
 *    more conservative r, from every request that showed both.  i disagrees
 *    with the full run at most as often as r does plus how often i and r
 *    differ, so audits need only certify the conservative candidates (which
 *    rarely disagree: cheap to certify) and the pairs, seen on every
 *    request, carry it to the aggressive ones.
 * The law aims at the most conservative mixture within a cost budget (less
 * a noise margin and the audits' expected cost), or the most aggressive
 * within eps (1 - margin) of disagreement, and moves there at once in the
 * safe direction and by bounded steps in the other.  Fallback, shift
 * detection and the audit rate as in controller.c's header.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "controller_int.h"

enum { BOOST = 8 };
static const double CUSUM_K = 0.5, CUSUM_H = 10.0, CUSUM_CLIP = 4.0;
static const double PRIOR_STRENGTH = 0.2; /* prior audits, in units of 1/eps */
static const double EPS_REF = 0.01;       /* the disagreement prior's scale for cost targets */

void ctl_reset(es_controller *c, double x0)
{
    size_t nn = (size_t)c->n * c->n;
    c->x = x0;
    c->log_scale_d = 0;
    memset(c->cw, 0, sizeof c->cw);
    memset(c->cs, 0, sizeof c->cs);
    memset(c->cq, 0, sizeof c->cq);
    memset(c->dw, 0, sizeof c->dw);
    memset(c->ds, 0, sizeof c->ds);
    memset(c->pw, 0, nn * sizeof *c->pw);
    memset(c->ps, 0, nn * sizeof *c->ps);
    c->sk = c->sm = 0;
    c->served_w = c->served_s = c->audit_w = c->audit_cost_s = c->shadow_s = c->shadow_w = 0;
    c->tok_all = c->tok_audit = 0;
    c->boost = BOOST;
    memset(c->feat, 0, sizeof c->feat);
    c->bern = 0;
    c->requests = c->audits = c->shifts = c->fallbacks = c->since_restart = 0;
    c->infeasible = 0;
    c->estimate = c->aim = NAN;
    memset(c->ring, 0, sizeof c->ring);
    c->ring_next = 0;
}

/* The audit probability: the share of tokens audits may spend, given what a
 * request costs and what an audit's shadow costs, times the boost. */
double ctl_audit_prob(const es_controller *c)
{
    double steady = c->audit_share;
    if (c->shadow_w > 0.5 && c->served_w > 0.5 && c->shadow_s > 0) {
        double served = (c->tok_all - c->tok_audit) / c->served_w;
        steady = c->audit_share * served / (c->shadow_s / c->shadow_w);
    }
    double pr = steady * c->boost;
    return pr < c->audit_min ? c->audit_min : pr > c->audit_max ? c->audit_max : pr;
}

/* ------------------------------------------------------------ estimates */

static double eps_of(const es_controller *c) { return c->kind == ES_TARGET_EM_LOSS ? c->budget : EPS_REF; }

/* Posterior mean of candidate i's disagreement with the full run from the
 * audits alone, under a prior of PRIOR_STRENGTH / eps audits whose mean
 * grows from eps/4 at the conservative end to 4 eps at the aggressive one
 * (before any evidence the middle of the order is taken to sit at the
 * bound). */
static double audited(const es_controller *c, uint32_t i)
{
    double eps = eps_of(c), s0 = PRIOR_STRENGTH / eps;
    double m0 = eps * pow(4.0, 2.0 * i / (c->n - 1) - 1.0);
    return (c->ds[i] + s0 * m0) / (c->dw[i] + s0);
}

/* How often candidate i answers otherwise than the more conservative r
 * (posterior mean under one pseudo-request at 1/2: a pair never seen
 * bounds nothing). */
static double pair(const es_controller *c, uint32_t r, uint32_t i)
{
    size_t k = (size_t)r * c->n + i;
    return (c->ps[k] + 0.5) / (c->pw[k] + 1.0);
}

/* The tightest bound over the more conservative r (r = i: the audits). */
double ctl_disagreement(const es_controller *c, uint32_t i)
{
    double best = audited(c, i);
    for (uint32_t r = 0; r < i; r++) {
        double b = audited(c, r) + pair(c, r, i);
        if (b < best) best = b;
    }
    return best;
}

/* -------------------------------------------------------------- scaling */

static void scale_audits(es_controller *c, double f)
{
    for (uint32_t i = 0; i < c->n; i++) {
        c->dw[i] *= f;
        c->ds[i] *= f;
    }
    c->log_scale_d += log(f);
}

static void scale_pairs(es_controller *c, double f)
{
    for (size_t k = 0; k < (size_t)c->n * c->n; k++) {
        c->pw[k] *= f;
        c->ps[k] *= f;
    }
}

static void scale_costs(es_controller *c, double f)
{
    for (uint32_t i = 0; i < c->n; i++) {
        c->cw[i] *= f;
        c->cs[i] *= f;
        c->cq[i] *= f;
    }
}

static void decay(es_controller *c)
{
    double lc = c->lam_c;
    scale_costs(c, lc);
    scale_audits(c, c->lam_d);
    scale_pairs(c, c->lam_d);
    c->sk *= c->lam_d;
    c->sm *= c->lam_d;
    c->served_w *= lc;
    c->served_s *= lc;
    c->audit_w *= c->lam_d;
    c->audit_cost_s *= c->lam_d;
    c->shadow_w *= c->lam_d;
    c->shadow_s *= c->lam_d;
    c->tok_all *= lc;
    c->tok_audit *= lc;
}

/* A restart after a detected shift: costs and pairs start over (every
 * request relearns them), the audits keep a quarter of their weight (they
 * are costly to relearn), the audit rate goes up. */
static void restart(es_controller *c)
{
    c->shifts++;
    scale_costs(c, 0.05);
    scale_audits(c, 0.25);
    scale_pairs(c, 0.05);
    c->sk = c->sm = 0;
    c->bern = 0;
    for (int f = 0; f < CTL_FEATURES; f++) c->feat[f] = (ctl_cusum){0};
    if (c->boost < BOOST) c->boost = BOOST;
    c->since_restart = 0;
}

/* The audits contradict the estimate: to the conservative end at once; the
 * estimates mostly start over, so the walk back waits for new evidence. */
static void fallback(es_controller *c)
{
    c->fallbacks++;
    c->x = 0;
    scale_audits(c, 0.25);
    scale_pairs(c, 0.05);
    c->sk = c->sm = 0;
    c->bern = 0;
    if (c->boost < BOOST) c->boost = BOOST;
}

/* The fallback's test: the audits' served disagreement since the last
 * restart has a lower confidence bound above eps, on two disagreements at
 * least (one in one audit already has a 99% bound of 1%: a single event is
 * never enough to throw away what was learnt). */
static int fallback_due(const es_controller *c)
{
    if (c->kind != ES_TARGET_EM_LOSS || c->sk < 1.5) return 0;
    double lo, hi;
    es_binomial_interval(c->sk, c->sm, 2 * c->confidence - 1, &lo, &hi);
    return lo > c->budget;
}

/* ------------------------------------------------------- shift detection */

/* One CUSUM step; 1 on an alarm.  The first W/4 values only build the
 * reference, which then follows slow drifts (half-life 2W). */
static int cusum(const es_controller *c, ctl_cusum *s, double f)
{
    double burn = c->window / 4.0, lam = exp2(-0.5 / c->window);
    int alarm = 0;
    if (s->w >= burn) {
        double sd = sqrt(s->var) + 1e-9 * (fabs(s->mean) + 1);
        double z = (f - s->mean) / sd;
        z = z > CUSUM_CLIP ? CUSUM_CLIP : z < -CUSUM_CLIP ? -CUSUM_CLIP : z;
        s->up = fmax(0, s->up + z - CUSUM_K);
        s->down = fmax(0, s->down - z - CUSUM_K);
        alarm = s->up > CUSUM_H || s->down > CUSUM_H;
    }
    double w = s->w * lam + 1, d = f - s->mean;
    s->mean += d / w;
    s->var = (s->var * s->w * lam + d * (f - s->mean)) / w;
    s->w = w;
    return alarm;
}

/* The features of a request that do not depend on the candidate it ran
 * with: tokens per sample (log) and whether its first answer is null. */
static int shift_check(es_controller *c, const es_controller_request *r, uint32_t samples, uint64_t tokens)
{
    double f0 = log1p((double)tokens / (samples ? samples : 1)), f1 = r->n && r->answer[0] == ES_NULL_ANSWER;
    int a = cusum(c, &c->feat[0], f0);
    a |= cusum(c, &c->feat[1], f1);
    return a;
}

/* Bernoulli CUSUM of the audits' served disagreement: eps (1 - margin)
 * against 3 eps; 1 on an alarm (em-loss only). */
static int bernoulli(es_controller *c, int served)
{
    double eps = eps_of(c), p0 = eps * (1 - c->margin), p1 = 3 * eps;
    c->bern = fmax(0, c->bern + (served ? log(p1 / p0) : log((1 - p1) / (1 - p0))));
    return c->kind == ES_TARGET_EM_LOSS && c->bern > log(1 / (1 - c->confidence));
}

/* -------------------------------------------------------------- learning */

static void ring_add(es_controller *c, uint64_t request, int32_t full)
{
    uint32_t k = c->ring_next++ % CTL_RING;
    c->ring[k] = (ctl_audit_rec){request, c->log_scale_d, full, 1};
    for (uint32_t i = 0; i < c->n; i++) {
        c->ring_alt[(size_t)k * c->n + i] = c->au.alt[i];
        c->ring_dis[(size_t)k * c->n + i] = (float)c->au.dis[i];
        c->ring_alt_share[(size_t)k * c->n + i] = (float)c->au.alt_share[i];
    }
}

/* An audit's figures (c->au): every candidate's cost and disagreement, and
 * every pair. */
static void learn_audit(es_controller *c)
{
    const ctl_audit *a = &c->au;
    uint32_t n = c->n;
    for (uint32_t i = 0; i < n; i++) {
        c->dw[i] += 1;
        c->ds[i] += a->dis[i];
        c->cw[i] += 1;
        c->cs[i] += a->cost[i];
        c->cq[i] += a->cost2[i];
        for (uint32_t j = i + 1; j < n; j++) {
            c->pw[(size_t)i * n + j] += 1;
            c->ps[(size_t)i * n + j] += a->pair[(size_t)i * n + j];
        }
    }
}

/* A request not audited: the candidates from `from` on, as its own order
 * showed them. */
static void learn_served(es_controller *c, uint32_t from)
{
    const ctl_cf *cf = &c->cf;
    uint32_t n = c->n;
    for (uint32_t i = from; i < n; i++) {
        double m = ctl_measure(c, cf->tokens[i], cf->kv[i]);
        c->cw[i] += 1;
        c->cs[i] += m;
        c->cq[i] += m * m;
        for (uint32_t j = i + 1; j < n; j++) {
            c->pw[(size_t)i * n + j] += 1;
            c->ps[(size_t)i * n + j] += cf->answer[j] != cf->answer[i];
        }
    }
}

/* ------------------------------------------------------------------ law */

/* Inverse of the standard normal's lower tail, by bisection. */
static double normal_quantile(double p)
{
    double lo = -10, hi = 10;
    for (int i = 0; i < 80; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / M_SQRT2) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Costs of candidates lo..n-1, fitted to grow toward the conservative end
 * (pool-adjacent-violators, weighted): a noisy estimate is pooled with its
 * neighbours instead of blocking every candidate past it. */
static void isotonic_costs(const es_controller *c, int lo, double *fit)
{
    double bw[CTL_MAX_CANDIDATES], bm[CTL_MAX_CANDIDATES];
    int bn[CTL_MAX_CANDIDATES], k = 0;
    for (int i = (int)c->n - 1; i >= lo; i--) { /* aggressive first: must not decrease */
        bw[k] = c->cw[i];
        bm[k] = c->cs[i] / c->cw[i];
        bn[k++] = 1;
        while (k > 1 && bm[k - 2] > bm[k - 1]) {
            double w = bw[k - 2] + bw[k - 1];
            bm[k - 2] = (bm[k - 2] * bw[k - 2] + bm[k - 1] * bw[k - 1]) / w;
            bw[k - 2] = w;
            bn[k - 2] += bn[k - 1];
            k--;
        }
    }
    int i = (int)c->n - 1;
    for (int b = 0; b < k; b++)
        for (int j = 0; j < bn[b]; j++) fit[i--] = bm[b];
}

/* Cost targets: the most conservative mixture of two known candidates
 * whose fitted cost is within the budget less the margin (z sd / sqrt W at
 * the served candidate: a window's mean stays within the budget with
 * probability `confidence`) and the audits' expected cost.  Costs are known
 * for a run of candidates from the aggressive end (w_min requests each);
 * past it the law explores one candidate at a time, slowly. */
static double law_cost(es_controller *c)
{
    const double w_min = 3;
    int n = (int)c->n;
    uint32_t op = (uint32_t)(c->x + 0.5);
    double z = normal_quantile(c->confidence), cv = 1.0;
    if (c->cw[op] > w_min) {
        double m = c->cs[op] / c->cw[op], v = c->cq[op] / c->cw[op] - m * m;
        cv = m > 0 && v > 0 ? sqrt(v) / m : 0;
    }
    double margin = z * cv / sqrt((double)c->window);
    margin = margin < 0.02 ? 0.02 : margin > 0.3 ? 0.3 : margin;
    double overhead = c->audit_w > 0.5 ? c->audit_cost_s / c->audit_w * ctl_audit_prob(c) : 0;
    double aim = c->budget * (1 - margin) - overhead;
    c->aim = aim;
    int lo = n;
    while (lo > 0 && c->cw[lo - 1] >= w_min) lo--;
    if (lo == n) return c->x; /* nothing known (a restart): stay */
    double fit[CTL_MAX_CANDIDATES];
    isotonic_costs(c, lo, fit);
    int ok = -1;
    for (int i = n - 1; i >= lo && fit[i] <= aim; i--) ok = i;
    c->infeasible = ok < 0;
    if (ok < 0) {
        c->estimate = fit[n - 1];
        return n - 1;
    }
    c->estimate = fit[ok];
    if (ok == 0) return 0;
    if (ok > lo) { /* the next one is known and over the aim */
        double f = fit[ok - 1] > fit[ok] ? (aim - fit[ok]) / (fit[ok - 1] - fit[ok]) : 1;
        return ok - (f < 0 ? 0 : f > 1 ? 1 : f);
    }
    return ok - 1; /* explore the next more conservative one */
}

/* EM-loss: the most aggressive mixture whose disagreement (made monotone)
 * is within eps (1 - margin). */
static double law_em(es_controller *c)
{
    double aim = c->budget * (1 - c->margin), env = 0, e_ok = 0;
    int ok = -1, n = (int)c->n;
    c->aim = aim;
    for (int i = 0; i < n; i++) {
        double d = ctl_disagreement(c, (uint32_t)i);
        env = d > env ? d : env;
        if (env > aim) {
            if (ok < 0) break;
            double f = env > e_ok ? (aim - e_ok) / (env - e_ok) : 0;
            c->estimate = e_ok;
            c->infeasible = 0;
            return ok + (f < 0 ? 0 : f > 1 ? 1 : f);
        }
        ok = i;
        e_ok = env;
    }
    c->infeasible = ok < 0;
    c->estimate = ok < 0 ? ctl_disagreement(c, 0) : e_ok;
    return ok < 0 ? 0 : ok;
}

/* Bounded steps: the safe direction at once (a candidate per request), the
 * other by ten candidates per window. */
static void move(es_controller *c, double target)
{
    double slow = 10.0 / c->window, fast = 1.0;
    int safe_is_up = c->kind != ES_TARGET_EM_LOSS; /* up = more aggressive */
    double lim_up = safe_is_up ? fast : slow, lim_down = safe_is_up ? slow : fast;
    if (!isfinite(target)) return; /* estimates overflowed (a corrupt state): stay */
    double step = target - c->x;
    if (step > lim_up) step = lim_up;
    if (step < -lim_down) step = -lim_down;
    c->x += step;
    if (c->x < 0) c->x = 0;
    if (c->x > c->n - 1) c->x = c->n - 1;
}

static void settle(es_controller *c, int alarm)
{
    if (alarm) restart(c);
    if (fallback_due(c)) fallback(c); /* at the conservative end for this request */
    else move(c, c->kind == ES_TARGET_EM_LOSS ? law_em(c) : law_cost(c));
    c->boost = 1 + (c->boost - 1) * (1 - 4.0 / c->window);
}

/*
 * One request: sv as served; c->cf its replay in its own order, or for an
 * audit c->au its figures over reorderings.  Unbiased views only: a request
 * shows every candidate from its own on whatever the question; one that
 * reached the policy's end unaudited shows the more conservative ones too,
 * but only because its question was hard, so those are kept out.
 */
void ctl_learn(es_controller *c, const es_controller_ticket *t, const es_controller_request *r, const ctl_served *sv)
{
    decay(c);
    c->requests++;
    c->since_restart++;
    double served = ctl_measure(c, sv->tokens, sv->kv);
    c->served_w += 1;
    c->served_s += served;
    c->tok_all += (double)(sv->tokens + sv->audit_tokens);
    c->tok_audit += (double)sv->audit_tokens;
    int alarm = 0;
    if (t->audit) {
        c->audits++;
        c->audit_w += 1;
        c->audit_cost_s +=
            c->kind == ES_TARGET_KV ? ctl_measure(c, 0, sv->full_kv) - served : (double)sv->audit_tokens;
        c->shadow_w += 1;
        c->shadow_s += (double)sv->audit_tokens;
        learn_audit(c);
        int dis = sv->answer != sv->full;
        c->sk += dis;
        c->sm += 1;
        alarm = bernoulli(c, dis);
        ring_add(c, t->request, sv->full);
    } else {
        learn_served(c, sv->known_from > sv->candidate ? sv->known_from : sv->candidate);
    }
    alarm |= shift_check(c, r, sv->stop, sv->tokens);
    settle(c, alarm);
}

/* From an outcome alone: the served candidate's cost and, for an audit,
 * its disagreement. */
void ctl_learn_outcome(es_controller *c, const es_controller_ticket *t, const es_outcome *o, int32_t full_answer,
                       uint64_t audit_tokens)
{
    uint32_t op = t->candidate;
    uint64_t tokens = o->tokens + o->probe_tokens;
    decay(c);
    c->requests++;
    c->since_restart++;
    double m = ctl_measure(c, tokens, o->kv_peak);
    c->cw[op] += 1;
    c->cs[op] += m;
    c->cq[op] += m * m;
    c->served_w += 1;
    c->served_s += m;
    int aud = t->audit && full_answer >= 0, alarm = 0;
    c->tok_all += (double)(tokens + (aud ? audit_tokens : 0));
    if (aud) {
        int dis = o->answer != full_answer;
        c->audits++;
        c->tok_audit += (double)audit_tokens;
        c->shadow_w += 1;
        c->shadow_s += (double)audit_tokens;
        c->audit_w += 1;
        c->audit_cost_s += c->kind == ES_TARGET_KV ? 0 : (double)audit_tokens;
        c->dw[op] += 1;
        c->ds[op] += dis;
        c->sk += dis;
        c->sm += 1;
        alarm = bernoulli(c, dis);
    }
    settle(c, alarm);
}

/* ---------------------------------------------------------------- labels */

/* A label turns the audit's loss from "differs from the full run" into "EM
 * lost to it": nothing where the full run is wrong, and not the share of
 * orders whose differing answer is right. */
int ctl_label(es_controller *c, uint64_t request, const uint8_t *correct, uint32_t n_answers)
{
    for (uint32_t k = 0; k < CTL_RING; k++) {
        ctl_audit_rec *a = &c->ring[k];
        if (!a->used || a->request != request) continue;
        int full_right = a->full >= 0 && (uint32_t)a->full < n_answers && correct[a->full];
        double w = exp(c->log_scale_d - a->log_scale); /* the audit's weight now */
        for (uint32_t i = 0; i < c->n; i++) {
            size_t j = (size_t)k * c->n + i;
            int32_t alt = c->ring_alt[j];
            double not_lost = full_right ? (alt >= 0 && (uint32_t)alt < n_answers && correct[alt] ? c->ring_alt_share[j] : 0)
                                         : c->ring_dis[j];
            c->ds[i] = fmax(0, c->ds[i] - w * not_lost);
        }
        a->used = 0;
        return ES_OK;
    }
    return ES_ERANGE;
}
