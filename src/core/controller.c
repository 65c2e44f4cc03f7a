/*
 * controller.c - the online feedback loop's API: creation (the parameter,
 * its direction, the candidates), tickets, observing a request.  One
 * parameter of a policy moves over candidate values, conservative first,
 * to hold a token, memory or EM-loss target on live traffic; what is
 * learnt and the law are ctl_learn.c's, the replays ctl_replay.c's, the
 * saved state ctl_state.c's.  docs/controller.md gives the law, its
 * defaults and why.
 *
 * Threads: one mutex guards the state; every entry point that reads or
 * moves it takes the mutex, the replays included (they use the
 * controller's own policy and buffers).  Nothing allocates after
 * es_controller_new except the private policy's begin_item on a request
 * with more answers than any before, and the reorder buffers on an audit
 * with more samples than any before.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_int.h"

/* ------------------------------------------------------------ options */

void es_controller_opts_init(es_controller_opts *o, es_target_kind kind, double budget)
{
    memset(o, 0, sizeof *o);
    o->target = kind;
    o->budget = budget;
    o->kv_bytes_per_position = 1;
    o->batch = 1;
    o->window = 200;
    o->audit_share = kind == ES_TARGET_EM_LOSS ? 0.03 : 0.01;
    o->audit_min = 0.001;
    o->audit_max = 0.5;
    o->confidence = 0.99;
    o->margin = 0.2;
    o->seed = 1;
}

static int check_opts(const es_controller_opts *o, es_error *err)
{
    const char *f = "controller";
    if (o->target != ES_TARGET_TOKENS && o->target != ES_TARGET_KV && o->target != ES_TARGET_EM_LOSS)
        return es_error_set(err, ES_EINVAL, "", 0, f, "unknown target kind %d", (int)o->target);
    if (!(o->budget > 0) || !isfinite(o->budget))
        return es_error_set(err, ES_EINVAL, "", 0, f, "the budget must be a positive number (got %g)", o->budget);
    if (o->target == ES_TARGET_EM_LOSS && !(o->budget < 1))
        return es_error_set(err, ES_EINVAL, "", 0, f,
                            "an em-loss bound is a fraction below 1 (got %g; 0.01 is one point)", o->budget);
    if (!(o->kv_bytes_per_position > 0) || !isfinite(o->kv_bytes_per_position))
        return es_error_set(err, ES_EINVAL, "", 0, f, "bytes per KV position must be positive");
    if (o->window < 10) return es_error_set(err, ES_EINVAL, "", 0, f, "the window must be at least 10 requests");
    if (!(o->audit_share > 0 && o->audit_share <= 0.05))
        return es_error_set(err, ES_EINVAL, "", 0, f, "the audits' share of tokens must be in (0, 0.05] (got %g)",
                            o->audit_share);
    if (!(o->audit_min >= 0 && o->audit_min <= o->audit_max && o->audit_max <= 1))
        return es_error_set(err, ES_EINVAL, "", 0, f, "audit probability bounds must satisfy 0 <= min <= max <= 1");
    if (!(o->confidence > 0.5 && o->confidence < 1))
        return es_error_set(err, ES_EINVAL, "", 0, f, "confidence must be in (0.5, 1)");
    if (!(o->margin >= 0 && o->margin < 0.9)) return es_error_set(err, ES_EINVAL, "", 0, f, "margin must be in [0, 0.9)");
    if (o->n_candidates > CTL_MAX_CANDIDATES)
        return es_error_set(err, ES_EINVAL, "", 0, f, "at most %d candidates", CTL_MAX_CANDIDATES);
    if (o->candidates && o->n_candidates < 2)
        return es_error_set(err, ES_EINVAL, "", 0, f, "give at least two candidate values");
    return ES_OK;
}

/* ---------------------------------------------------------- creation */

/* The across rule's swept parameter, as "rule.key", and its description. */
static int find_param(es_controller *c, const es_policy *p, const char *want, es_param_info *pi, es_error *err)
{
    const char *sk;
    if (es_policy_sweep_param(p, &sk))
        return es_error_set(err, ES_ENOTSUP, "", 0, "policy",
                            "%s has no parameter a replay can sweep (the controller moves AC's threshold, "
                            "majority's fraction, entropy's threshold or margin's m)",
                            es_policy_spec(p));
    snprintf(c->key, sizeof c->key, "%s.%s", p->ad->name, sk);
    if (want && strcmp(want, sk) && strcmp(want, c->key))
        return es_error_set(err, ES_ENOTSUP, "", 0, "param",
                            "the controller moves the parameter a replay can sweep, %s, not '%s'", c->key, want);
    for (uint32_t i = 0; i < es_policy_n_params(p); i++) {
        es_policy_param(p, i, pi);
        if (!strcmp(pi->rule, p->ad->name) && !strcmp(pi->key, sk)) return ES_OK;
    }
    return es_error_set(err, ES_EINVAL, "", 0, "policy", "%s: parameter %s not found", es_policy_spec(p), c->key);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The candidates, checked against the rule and ordered conservative first. */
static int set_candidates(es_controller *c, const es_policy *p, const es_controller_opts *o, const es_param_info *pi,
                          es_error *err)
{
    double v[CTL_MAX_CANDIDATES];
    uint32_t n = 0;
    if (o->candidates) {
        memcpy(v, o->candidates, o->n_candidates * sizeof *v);
        n = o->n_candidates;
    } else if (ctl_default_grid(pi, c->dir, v, &n)) {
        return es_error_set(err, ES_ENOTSUP, "", 0, "candidates", "%s takes words: give the candidates", c->key);
    }
    qsort(v, n, sizeof *v, cmp_double);
    if (c->dir == ES_BOUND_UPPER) /* lower values stop sooner: conservative = high */
        for (uint32_t i = 0; i < n / 2; i++) {
            double t = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = t;
        }
    c->n = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || v[i] < pi->lo || v[i] > pi->hi || (pi->integer && v[i] != floor(v[i])))
            return es_error_set(err, ES_EINVAL, "", 0, "candidates", "%s=%g is outside its range [%g, %g]%s", c->key,
                                v[i], pi->lo, pi->hi, pi->integer ? " or not a whole number" : "");
        if (c->n && v[i] == c->cand[c->n - 1]) continue;
        c->cand[c->n++] = v[i];
    }
    if (c->n < 2) return es_error_set(err, ES_EINVAL, "", 0, "candidates", "give at least two different values");
    /* the rule must take every value as it is (es_policy_set_param checks
     * combinations too) */
    for (uint32_t i = 0; i < c->n; i++) {
        int rc = es_policy_set_param(c->cf_policy, c->key, c->cand[i], err);
        if (rc) return rc;
    }
    (void)p;
    return ES_OK;
}

static void release(es_controller *c)
{
    ctl_cf_free(&c->cf);
    ctl_audit_free(&c->au);
    free(c->pw);
    free(c->ps);
    free(c->ring_alt);
    free(c->ring_dis);
    free(c->ring_alt_share);
    free(c->order);
    free(c->s_tok);
    free(c->s_prb);
    free(c->s_ans);
    free(c->s_conf);
    es_policy_free(c->cf_policy);
    free(c);
}

static int alloc_state(es_controller *c)
{
    size_t nn = (size_t)c->n * c->n, rn = (size_t)CTL_RING * c->n;
    if (ctl_cf_alloc(&c->cf, c->n) || ctl_audit_alloc(&c->au, c->n)) return ES_ENOMEM;
    c->pw = calloc(nn, sizeof *c->pw);
    c->ps = calloc(nn, sizeof *c->ps);
    c->ring_alt = calloc(rn, sizeof *c->ring_alt);
    c->ring_dis = calloc(rn, sizeof *c->ring_dis);
    c->ring_alt_share = calloc(rn, sizeof *c->ring_alt_share);
    return c->pw && c->ps && c->ring_alt && c->ring_dis && c->ring_alt_share ? ES_OK : ES_ENOMEM;
}

int es_controller_new(const es_policy *p, const es_controller_opts *o, es_controller **out, es_error *err)
{
    *out = NULL;
    if (!p || !o) return es_error_set(err, ES_EINVAL, "", 0, "controller", "no policy or options");
    int rc = check_opts(o, err);
    if (rc) return rc;
    es_controller *c = calloc(1, sizeof *c);
    if (!c) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    es_param_info pi;
    rc = find_param(c, p, o->param, &pi, err);
    if (!rc && (rc = ctl_direction(p, &c->dir)) != ES_OK)
        es_error_set(err, rc, "", 0, "policy", "%s: cannot tell which way %s points", es_policy_spec(p), c->key);
    if (!rc) rc = es_policy_clone(p, &c->cf_policy, err);
    if (!rc) rc = set_candidates(c, p, o, &pi, err);
    if (!rc && (es_policy_observe(c->cf_policy, 1) || alloc_state(c)))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc && pthread_mutex_init(&c->mu, NULL)) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "mutex");
    if (rc) {
        release(c);
        return rc;
    }
    c->kind = o->target;
    c->budget = o->budget;
    c->kv_bpp = o->kv_bytes_per_position;
    c->batch = o->batch > 1 ? o->batch : 1;
    c->window = o->window;
    c->audit_share = o->audit_share;
    c->audit_min = o->audit_min;
    c->audit_max = o->audit_max;
    c->confidence = o->confidence;
    c->margin = o->margin;
    c->seed = o->seed;
    c->lam_c = exp2(-2.0 / c->window);  /* half-life W/2 requests */
    c->lam_d = exp2(-0.125 / c->window); /* 8W */
    /* start where the policy stands: the candidate nearest its value */
    uint32_t near = 0;
    for (uint32_t i = 1; i < c->n; i++)
        if (fabs(c->cand[i] - pi.value) < fabs(c->cand[near] - pi.value)) near = i;
    ctl_reset(c, near);
    *out = c;
    return ES_OK;
}

void es_controller_free(es_controller *c)
{
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    release(c);
}

/* ------------------------------------------------------------ tickets */

static double draw(const es_controller *c, uint64_t request, uint64_t salt)
{
    return (double)(ctl_mix64(c->seed ^ ctl_mix64(request * 4 + salt)) >> 11) * 0x1p-53;
}

int es_controller_begin(es_controller *c, uint64_t request, es_controller_ticket *t)
{
    pthread_mutex_lock(&c->mu);
    double x = c->x, fl = floor(x);
    uint32_t i = (uint32_t)fl;
    if (x > fl && draw(c, request, 1) < x - fl) i++;
    if (i >= c->n) i = c->n - 1;
    t->request = request;
    t->candidate = i;
    t->value = c->cand[i];
    t->audit_prob = ctl_audit_prob(c);
    t->audit = draw(c, request, 2) < t->audit_prob;
    pthread_mutex_unlock(&c->mu);
    return ES_OK;
}

int es_controller_should_audit(es_controller *c, uint64_t request)
{
    es_controller_ticket t;
    es_controller_begin(c, request, &t);
    return t.audit;
}

double es_controller_position(es_controller *c)
{
    pthread_mutex_lock(&c->mu);
    double x = c->x;
    pthread_mutex_unlock(&c->mu);
    return x;
}

double es_controller_param(es_controller *c)
{
    double x = es_controller_position(c);
    return c->cand[(uint32_t)(x + 0.5)];
}

uint32_t es_controller_n_candidates(const es_controller *c) { return c->n; }
double es_controller_candidate(const es_controller *c, uint32_t i) { return i < c->n ? c->cand[i] : NAN; }
const char *es_controller_param_name(const es_controller *c) { return c->key; }

int es_controller_apply(const es_controller *c, const es_controller_ticket *t, es_policy *p, es_error *err)
{
    double now;
    int rc = es_policy_get_param(p, c->key, &now, err);
    if (!rc && now != t->value) rc = es_policy_set_param(p, c->key, t->value, err);
    if (!rc && es_policy_observe(p, t->audit ? ES_OBSERVE_ALL : 0))
        rc = es_error_set(err, ES_ENOTSUP, "", 0, "policy", "%s cannot run an audit", es_policy_spec(p));
    return rc;
}

int es_controller_would_stop(const es_controller *c, const es_controller_ticket *t, const es_policy *p)
{
    (void)c;
    double b;
    int d = es_policy_boundary(p, &b);
    /* where the ticket's value stops, or the policy itself: its cap, or
     * clinch (ES_OBSERVE_ALL draws on past it) */
    return ctl_covers(d, b, t->value) || (p->cap && p->n_samples >= p->cap) || es_policy_clinched(p);
}

static int check_request(const es_controller *c, const es_controller_request *r, es_error *err)
{
    if (!r || !r->ticket) return es_error_set(err, ES_EINVAL, "", 0, "request", "no request or ticket");
    if (r->ticket->candidate >= c->n)
        return es_error_set(err, ES_EINVAL, "", 0, "ticket", "candidate %u of %u", r->ticket->candidate, c->n);
    if (r->n && (!r->answer || !r->tokens)) return es_error_set(err, ES_EINVAL, "", 0, "request", "no samples given");
    for (uint32_t i = 0; i < r->n; i++)
        if (r->answer[i] < 0 || (uint32_t)r->answer[i] >= r->max_answers)
            return es_error_set(err, ES_EINVAL, "", 0, "request", "sample %u: answer id %d out of range (max_answers %u)",
                                i, r->answer[i], r->max_answers);
    return ES_OK;
}

/* The samples against the ticket: they reach its candidate's stop, end
 * there unless audited, and an audit reaches the policy's end. */
static int check_against(const es_controller *c, const es_controller_request *r, es_error *err)
{
    const ctl_cf *cf = &c->cf;
    uint32_t op = r->ticket->candidate;
    if (op < cf->known_from)
        return es_error_set(err, ES_EINVAL, "", 0, "request",
                            "request %llu: its %u samples end before %s=%g would stop",
                            (unsigned long long)r->ticket->request, r->n, c->key, r->ticket->value);
    if (!r->ticket->audit && cf->stop[op] != r->n)
        return es_error_set(err, ES_EINVAL, "", 0, "request",
                            "request %llu: not audited, yet it drew %u samples where %s=%g stops at %u",
                            (unsigned long long)r->ticket->request, r->n, c->key, r->ticket->value, cf->stop[op]);
    if (r->ticket->audit && !cf->complete)
        return es_error_set(err, ES_EINVAL, "", 0, "request",
                            "request %llu: an audit runs on to the full run (the policy's cap); %u samples do not",
                            (unsigned long long)r->ticket->request, r->n);
    return ES_OK;
}

/* Tokens (probes included) and peak KV positions of every sample drawn. */
static void totals(const es_controller *c, const es_controller_request *r, uint64_t *tokens, uint64_t *kv)
{
    uint64_t round = 0;
    *tokens = *kv = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        *tokens += (uint64_t)r->tokens[i] + (r->probe_tokens ? r->probe_tokens[i] : 0);
        round += r->tokens[i];
        if (round > *kv) *kv = round;
        if ((i + 1) % c->batch == 0) round = 0;
    }
}

/* The replay in the request's own order, checked against the ticket; then
 * for an audit its figures over reorderings (when it drew every sample up
 * to the cap) or its own order; then the learning. */
static int observe_locked(es_controller *c, const es_controller_request *r, es_controller_result *out, es_error *err)
{
    int rc = ctl_replay(c, r);
    if (rc) return es_error_set(err, rc, "", 0, "request", "%s", es_policy_errmsg(c->cf_policy));
    if ((rc = check_against(c, r, err))) return rc;
    const ctl_cf *cf = &c->cf;
    const es_controller_ticket *t = r->ticket;
    uint32_t op = t->candidate;
    ctl_served sv = {op, cf->stop[op], cf->known_from, cf->answer[op], -1, cf->tokens[op], cf->kv[op], 0, 0};
    if (t->audit) {
        uint64_t all_tokens, all_kv;
        totals(c, r, &all_tokens, &all_kv);
        sv.full = cf->full;
        sv.full_kv = all_kv;
        sv.audit_tokens = all_tokens - sv.tokens;
        uint32_t cap = c->cf_policy->cap;
        if ((rc = ctl_replay_audit(c, r, cap && r->n >= cap)))
            return es_error_set(err, rc, "", 0, "request", "request %llu: its reorderings failed",
                                (unsigned long long)t->request);
    }
    if (out)
        *out = (es_controller_result){sv.answer, sv.stop, sv.tokens, sv.kv, sv.audit_tokens, sv.full_kv, sv.full};
    ctl_learn(c, t, r, &sv);
    return ES_OK;
}

int es_controller_observe(es_controller *c, const es_controller_request *r, es_controller_result *out, es_error *err)
{
    int rc = check_request(c, r, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    rc = observe_locked(c, r, out, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int es_controller_observe_outcome(es_controller *c, const es_controller_ticket *t, const es_outcome *o,
                                  int32_t full_answer, uint64_t audit_tokens)
{
    if (!t || !o || t->candidate >= c->n) return ES_EINVAL;
    pthread_mutex_lock(&c->mu);
    ctl_learn_outcome(c, t, o, full_answer, audit_tokens);
    pthread_mutex_unlock(&c->mu);
    return ES_OK;
}

int es_controller_label(es_controller *c, uint64_t request, const uint8_t *correct, uint32_t n_answers)
{
    if (!correct) return ES_EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = ctl_label(c, request, correct, n_answers);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int es_controller_outcomes(es_controller *c, const es_controller_request *r, es_controller_cand *out,
                           int32_t *full_answer)
{
    if (!r || (r->n && (!r->answer || !r->tokens))) return ES_EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = ctl_replay(c, r);
    if (!rc) {
        const ctl_cf *cf = &c->cf;
        for (uint32_t i = 0; i < c->n; i++)
            out[i] = (es_controller_cand){i >= cf->known_from, cf->answer[i], cf->stop[i], cf->tokens[i], cf->kv[i]};
        if (full_answer) *full_answer = cf->complete ? cf->full : -1;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ------------------------------------------------------------- status */

void es_controller_get_status(es_controller *c, es_controller_status *out)
{
    pthread_mutex_lock(&c->mu);
    uint32_t near = (uint32_t)(c->x + 0.5);
    *out = (es_controller_status){.position = c->x,
                                  .value = c->cand[near],
                                  .candidate = near,
                                  .audit_prob = ctl_audit_prob(c),
                                  .estimate = c->estimate,
                                  .aim = c->aim,
                                  .requests = (uint64_t)c->requests,
                                  .audits = (uint64_t)c->audits,
                                  .shifts = (uint64_t)c->shifts,
                                  .fallbacks = (uint64_t)c->fallbacks,
                                  .audit_token_share = c->tok_all > 0 ? c->tok_audit / c->tok_all : 0,
                                  .infeasible = c->infeasible};
    pthread_mutex_unlock(&c->mu);
}
