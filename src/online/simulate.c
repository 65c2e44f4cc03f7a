/*
 * simulate.c - the controller in the loop of a stream of recorded requests
 * (earlystop_online.h), beside every candidate held fixed and the anchors.
 *
 * Per request: an item is drawn from its segment's sets and its samples
 * ordered at random; the samples are settled once (the within rule, if
 * any, decides each sample's answer and length whatever the across
 * parameter) and replayed at every candidate (es_controller_outcomes): that
 * gives the full run's answer, what each static choice would have done, and
 * the check that the controller's own run below saw the same.  The
 * controller's request then runs like a live one: a ticket, the policy
 * with the ticket applied driven through an es_session sample by sample
 * (on to the policy's end for an audit), the samples observed.  Audits
 * are paid in tokens (and their memory counts).  Figures are kept per
 * window of W requests; windows never straddle a shift.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "online_int.h"

void es_sim_opts_init(es_sim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->probe_cost = ES_PROBE_COST_FIELD;
    o->tune_orders = 5;
}

struct es_sim_result {
    es_sim_row *rows;
    uint32_t n_rows;
    es_sim_static *statics;
    uint32_t n_static;
    uint64_t shifts, fallbacks;
};

/* The simulator's tools: policies and sessions, sample buffers. */
typedef struct sim {
    const es_stream *s;
    const es_controller_opts *co;
    const es_sim_opts *o;
    es_controller *ctl;
    uint32_t n_cand, batch;
    es_policy *settle_p, *run_p, **anchor_p;
    es_session *settle_s, *run_s, **anchor_s;
    uint32_t n_anchors;
    uint32_t max_samples;
    uint32_t *order, *tok, *prb, *rtok, *rprb;
    int32_t *ans, *rans;
    float *conf, *rconf;
    es_controller_cand *cand;
    es_window_log *log;       /* rows: the controller, every candidate, the anchors */
    uint64_t rng;
    /* labels in flight */
    struct {
        uint64_t request, due;
        const uint8_t *correct;
        uint32_t n_answers;
    } *pending;
    uint32_t pend_head, pend_n, pend_cap;
} sim;

static uint64_t next_rand(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint32_t below(uint64_t *x, uint64_t n) { return (uint32_t)(next_rand(x) % n); }

/* ------------------------------------------------------------ set-up */

static int new_run(const es_policy *proto, const char *spec, uint32_t batch, int observe, es_policy **p,
                   es_session **s, es_error *err)
{
    int rc = spec ? es_policy_new(spec, p, err) : es_policy_clone(proto, p, err);
    if (!rc && observe && es_policy_observe(*p, 1))
        rc = es_error_set(err, ES_ENOTSUP, "", 0, "policy", "%s cannot be swept", es_policy_spec(*p));
    if (!rc && es_session_new(*p, s)) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc) es_session_set_batch(*s, batch);
    return rc;
}

/* Rows of the window log. */
enum { ROW_CONTROLLER = 0, ROW_STATIC = 1 };
static uint32_t row_anchor(const sim *S, uint32_t a) { return ROW_STATIC + S->n_cand + a; }

static int lay_windows(sim *S, es_error *err)
{
    uint64_t req[ON_MAX_SEGMENTS];
    for (uint32_t g = 0; g < S->s->n; g++) req[g] = S->s->seg[g].requests;
    if (es_window_log_new(S->co->target, S->co->budget, S->co->window, req, S->s->n, 1 + S->n_cand + S->n_anchors,
                          &S->log))
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    return ES_OK;
}

static int sim_init(sim *S, const es_stream *s, const es_policy *proto, es_controller *ctl,
                    const es_controller_opts *co, const es_sim_opts *o, es_error *err)
{
    static const char *const default_anchors[] = {"ac-beta", "esc"};
    memset(S, 0, sizeof *S);
    S->s = s;
    S->co = co;
    S->o = o;
    S->ctl = ctl;
    S->n_cand = es_controller_n_candidates(ctl);
    S->batch = co->batch > 1 ? co->batch : 1;
    S->rng = o->seed ^ 0x5DEECE66DULL;
    for (uint32_t g = 0; g < s->n; g++)
        for (uint32_t i = 0; i < s->seg[g].n; i++) {
            uint32_t ms, ma;
            es_traceset_max_sizes(s->seg[g].sets[i], &ms, &ma);
            if (ms > S->max_samples) S->max_samples = ms;
        }
    uint32_t M = S->max_samples + 1;
    S->order = malloc(M * sizeof *S->order);
    S->tok = malloc(M * sizeof *S->tok);
    S->prb = malloc(M * sizeof *S->prb);
    S->rtok = malloc(M * sizeof *S->rtok);
    S->rprb = malloc(M * sizeof *S->rprb);
    S->ans = malloc(M * sizeof *S->ans);
    S->rans = malloc(M * sizeof *S->rans);
    S->conf = malloc(M * sizeof *S->conf);
    S->rconf = malloc(M * sizeof *S->rconf);
    S->cand = malloc(S->n_cand * sizeof *S->cand);
    const char *const *anchors = o->anchors ? o->anchors : default_anchors;
    S->n_anchors = o->anchors ? o->n_anchors : 2;
    S->anchor_p = calloc(S->n_anchors + 1, sizeof *S->anchor_p);
    S->anchor_s = calloc(S->n_anchors + 1, sizeof *S->anchor_s);
    if (!S->order || !S->tok || !S->prb || !S->rtok || !S->rprb || !S->ans || !S->rans || !S->conf || !S->rconf ||
        !S->cand || !S->anchor_p || !S->anchor_s)
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    int rc = lay_windows(S, err);
    if (!rc) rc = new_run(proto, NULL, S->batch, 1, &S->settle_p, &S->settle_s, err);
    if (!rc) rc = new_run(proto, NULL, S->batch, 0, &S->run_p, &S->run_s, err);
    for (uint32_t a = 0; a < S->n_anchors && !rc; a++)
        rc = new_run(NULL, anchors[a], S->batch, 0, &S->anchor_p[a], &S->anchor_s[a], err);
    return rc;
}

static void sim_free(sim *S)
{
    free(S->order);
    free(S->tok);
    free(S->prb);
    free(S->rtok);
    free(S->rprb);
    free(S->ans);
    free(S->rans);
    free(S->conf);
    free(S->rconf);
    free(S->cand);
    es_session_free(S->settle_s);
    es_policy_free(S->settle_p);
    es_session_free(S->run_s);
    es_policy_free(S->run_p);
    for (uint32_t a = 0; S->anchor_p && a < S->n_anchors; a++) {
        es_session_free(S->anchor_s[a]);
        es_policy_free(S->anchor_p[a]);
    }
    free(S->anchor_p);
    free(S->anchor_s);
    es_window_log_free(S->log);
    free(S->pending);
}

/* ---------------------------------------------------------- requests */

/* Feed samples in `order` to session ses until it stops, keeping each as
 * settled: answers, tokens, probe tokens, confidences.  Returns how many. */
static int feed(es_session *ses, const es_item_view *v, const uint32_t *order, int32_t probe_cost, int32_t *ans,
                uint32_t *tok, uint32_t *prb, float *conf, uint32_t *m)
{
    int rc = es_session_begin_item(ses, v->n_samples, v->n_answers);
    if (rc) return rc;
    uint64_t before = 0;
    uint32_t i = 0;
    while (i < v->n_samples) {
        rc = es_replay_sample(ses, v, order[i], probe_cost);
        if (rc < 0) return rc;
        es_session_last_sample(ses, &ans[i], &tok[i]);
        uint64_t now = es_session_outcome(ses)->probe_tokens;
        prb[i] = (uint32_t)(now - before);
        before = now;
        conf[i] = v->confidence[order[i]];
        i++;
        if (rc == ES_STOP) break;
    }
    es_session_end_item(ses);
    *m = i;
    return ES_OK;
}

/* The settled samples of item v in `order` at every candidate. */
static int all_candidates(sim *S, const es_item_view *v, const uint32_t *order, int32_t *full, es_error *err)
{
    uint32_t m = 0;
    int rc = feed(S->settle_s, v, order, S->o->probe_cost, S->ans, S->tok, S->prb, S->conf, &m);
    es_controller_request req = {NULL, m, S->ans, S->tok, S->prb, S->conf, v->n_samples, v->n_answers};
    if (!rc) rc = es_controller_outcomes(S->ctl, &req, S->cand, full);
    if (rc) return es_error_set(err, rc, "", 0, "item", "%s: %s", v->id, es_policy_errmsg(S->settle_p));
    if (*full < 0) return es_error_set(err, ES_EINVAL, "", 0, "item", "%s: the full run did not end", v->id);
    return ES_OK;
}

static int correct_of(const es_item_view *v, int32_t a)
{
    return a >= 0 && (uint32_t)a < v->n_answers && v->correct[a];
}

static void add(sim *S, uint32_t row, uint64_t r, int correct, int dis, double tokens, double audit_tokens, double kv,
                double param, int audit)
{
    es_request_figures f = {correct, dis, tokens, audit_tokens, kv, param, audit};
    es_window_log_add(S->log, row, r, &f);
}

static int queue_label(sim *S, uint64_t request, const es_item_view *v)
{
    if (S->pend_n == S->pend_cap) {
        uint32_t cap = S->pend_cap ? 2 * S->pend_cap : 64;
        void *p = malloc(cap * sizeof *S->pending);
        if (!p) return ES_ENOMEM;
        for (uint32_t i = 0; i < S->pend_n; i++)
            memcpy((char *)p + i * sizeof *S->pending, &S->pending[(S->pend_head + i) % S->pend_cap],
                   sizeof *S->pending);
        free(S->pending);
        S->pending = p;
        S->pend_cap = cap;
        S->pend_head = 0;
    }
    uint32_t k = (S->pend_head + S->pend_n++) % S->pend_cap;
    S->pending[k].request = request;
    S->pending[k].due = request + S->o->label_delay;
    S->pending[k].correct = v->correct;
    S->pending[k].n_answers = v->n_answers;
    return ES_OK;
}

static void deliver_labels(sim *S, uint64_t now)
{
    while (S->pend_n && S->pending[S->pend_head].due <= now) {
        es_controller_label(S->ctl, S->pending[S->pend_head].request, S->pending[S->pend_head].correct,
                            S->pending[S->pend_head].n_answers);
        S->pend_head = (S->pend_head + 1) % S->pend_cap;
        S->pend_n--;
    }
}

/* The controller's request, run as a live driver runs it. */
static int run_controller(sim *S, uint64_t r, const es_item_view *v, int32_t full, es_error *err)
{
    es_controller_ticket t;
    es_controller_begin(S->ctl, r, &t);
    int rc = es_controller_apply(S->ctl, &t, S->run_p, err);
    if (rc) return rc;
    uint32_t m = 0;
    rc = feed(S->run_s, v, S->order, S->o->probe_cost, S->rans, S->rtok, S->rprb, S->rconf, &m);
    if (rc) return es_error_set(err, rc, "", 0, "item", "%s: %s", v->id, es_policy_errmsg(S->run_p));
    es_controller_request req = {&t, m, S->rans, S->rtok, S->rprb, S->rconf, v->n_samples, v->n_answers};
    es_controller_result res;
    if ((rc = es_controller_observe(S->ctl, &req, &res, err))) return rc;
    /* the run and the replay at every candidate must agree */
    const es_controller_cand *c = &S->cand[t.candidate];
    if (res.answer != c->answer || res.tokens != c->tokens || res.samples != c->samples ||
        (t.audit && res.full_answer != full))
        return es_error_set(err, ES_EINVAL, "", 0, "item",
                            "%s: the live run (answer %d, %llu tokens) and the replay at %s=%g (answer %d, %llu "
                            "tokens) disagree",
                            v->id, res.answer, (unsigned long long)res.tokens, es_controller_param_name(S->ctl),
                            t.value, c->answer, (unsigned long long)c->tokens);
    double kv = (double)(res.audit_kv_peak > res.kv_peak ? res.audit_kv_peak : res.kv_peak);
    add(S, ROW_CONTROLLER, r, correct_of(v, res.answer), res.answer != full, (double)(res.tokens + res.audit_tokens),
        (double)res.audit_tokens, kv * S->co->kv_bytes_per_position, t.value, t.audit);
    if (t.audit && S->o->label_delay && queue_label(S, r, v)) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    return ES_OK;
}

/* One request of the stream: every row. */
static int one_request(sim *S, uint64_t r, uint32_t g, es_error *err)
{
    const on_segment *seg = &S->s->seg[g];
    const es_traceset *ts = seg->sets[seg->n > 1 ? below(&S->rng, seg->n) : 0];
    uint32_t item = below(&S->rng, es_traceset_n_items(ts));
    es_item_view v;
    es_traceset_item(ts, item, &v);
    es_shuffle_order(S->o->seed, (uint32_t)r, item, v.n_samples, S->order);
    int32_t full;
    int rc = all_candidates(S, &v, S->order, &full, err);
    if (rc) return rc;
    double bpp = S->co->kv_bytes_per_position;
    for (uint32_t i = 0; i < S->n_cand; i++) {
        const es_controller_cand *c = &S->cand[i];
        add(S, ROW_STATIC + i, r, correct_of(&v, c->answer), c->answer != full, (double)c->tokens, 0,
            (double)c->kv_peak * bpp, es_controller_candidate(S->ctl, i), 0);
    }
    for (uint32_t a = 0; a < S->n_anchors; a++) {
        es_outcome o;
        rc = es_replay_item(S->anchor_s[a], &v, S->order, S->o->probe_cost, &o);
        if (rc)
            return es_error_set(err, rc, "", 0, "item", "%s: %s: %s", v.id, es_policy_spec(S->anchor_p[a]),
                                es_policy_errmsg(S->anchor_p[a]));
        add(S, row_anchor(S, a), r, o.correct, o.answer != full, (double)(o.tokens + o.probe_tokens), 0,
            (double)o.kv_peak * bpp, NAN, 0);
    }
    deliver_labels(S, r);
    return run_controller(S, r, &v, full, err);
}

/* --------------------------------------------------------------- tuning */

/* The static choice on the first segment's sets: every item, tune_orders
 * orders, each set weighing as the segment draws it. */
static int tune_first(sim *S, uint32_t *choice, es_error *err)
{
    const on_segment *seg = &S->s->seg[0];
    uint32_t R = S->o->tune_orders ? S->o->tune_orders : 1, n = S->n_cand;
    double cost[64] = {0}, dis[64] = {0};
    for (uint32_t k = 0; k < seg->n; k++) {
        const es_traceset *ts = seg->sets[k];
        size_t items = es_traceset_n_items(ts);
        double c1[64] = {0}, d1[64] = {0};
        for (size_t i = 0; i < items; i++) {
            es_item_view v;
            es_traceset_item(ts, i, &v);
            for (uint32_t r = 0; r < R; r++) {
                es_shuffle_order(S->o->seed ^ 0xA5A5A5A5ULL, r, (uint32_t)i, v.n_samples, S->order);
                int32_t full;
                int rc = all_candidates(S, &v, S->order, &full, err);
                if (rc) return rc;
                for (uint32_t j = 0; j < n; j++) {
                    const es_controller_cand *c = &S->cand[j];
                    c1[j] += S->co->target == ES_TARGET_KV ? (double)c->kv_peak * S->co->kv_bytes_per_position
                                                           : (double)c->tokens;
                    d1[j] += c->answer != full;
                }
            }
        }
        for (uint32_t j = 0; j < n; j++) {
            cost[j] += c1[j] / ((double)items * R) / seg->n;
            dis[j] += d1[j] / ((double)items * R) / seg->n;
        }
    }
    *choice = on_choose(S->co, cost, dis, n);
    return ES_OK;
}

/* The static rule: within a cost budget, the most conservative candidate
 * (the most aggressive if none is); within an em-loss bound, the most
 * aggressive (the most conservative if none is). */
uint32_t on_choose(const es_controller_opts *co, const double *cost, const double *dis, uint32_t n)
{
    if (co->target == ES_TARGET_EM_LOSS) {
        uint32_t best = 0;
        for (uint32_t j = 0; j < n; j++)
            if (dis[j] <= co->budget) best = j;
        return best;
    }
    for (uint32_t j = 0; j < n; j++)
        if (cost[j] <= co->budget) return j;
    return n - 1;
}

/* ------------------------------------------------------------ results */

/* The best static choice whose every window meets the target: the most
 * aggressive (em-loss) or most conservative (costs) such candidate; the
 * safest end when none is. */
static uint32_t safest(const sim *S)
{
    int em = S->co->target == ES_TARGET_EM_LOSS;
    for (uint32_t k = 0; k < S->n_cand; k++) {
        uint32_t i = em ? S->n_cand - 1 - k : k;
        if (es_window_log_every_window(S->log, ROW_STATIC + i)) return i;
    }
    return em ? 0 : S->n_cand - 1;
}

/* The spec of the policy at candidate i. */
static void spec_at(const sim *S, uint32_t i, char *buf, size_t cap)
{
    es_policy_set_param(S->run_p, es_controller_param_name(S->ctl), es_controller_candidate(S->ctl, i), NULL);
    snprintf(buf, cap, "%s", es_policy_spec(S->run_p));
}

static int results(sim *S, uint32_t first, es_sim_result **out, es_error *err)
{
    es_sim_result *R = calloc(1, sizeof *R);
    if (!R) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    R->n_static = S->n_cand;
    R->statics = calloc(S->n_cand, sizeof *R->statics);
    R->rows = calloc(4 + S->n_anchors, sizeof *R->rows);
    if (!R->statics || !R->rows) {
        es_sim_result_free(R);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    double cost[64] = {0}, dis[64] = {0};
    int rc = ES_OK;
    for (uint32_t i = 0; i < S->n_cand && !rc; i++) {
        es_sim_row row;
        if ((rc = es_window_log_row(S->log, ROW_STATIC + i, "static", "", NAN, &row))) break;
        R->statics[i] = (es_sim_static){es_controller_candidate(S->ctl, i), row.sum.em, row.sum.tokens, row.sum.kv_peak,
                                        row.sum.disagreement};
        es_sim_row_release(&row);
        cost[i] = S->co->target == ES_TARGET_KV ? R->statics[i].kv_peak : R->statics[i].tokens;
        dis[i] = R->statics[i].disagreement;
    }
    uint32_t hind = on_choose(S->co, cost, dis, S->n_cand), safe = safest(S);
    char spec[512];
    if (!rc)
        rc = es_window_log_row(S->log, ROW_CONTROLLER, "controller", es_policy_spec(S->settle_p), NAN,
                               &R->rows[R->n_rows++]);
    static const char *const names[] = {"static-first", "static-hindsight", "static-every-window"};
    uint32_t pick[] = {first, hind, safe};
    for (int k = 0; k < 3 && !rc; k++) {
        spec_at(S, pick[k], spec, sizeof spec);
        rc = es_window_log_row(S->log, ROW_STATIC + pick[k], names[k], spec, es_controller_candidate(S->ctl, pick[k]),
                               &R->rows[R->n_rows++]);
    }
    for (uint32_t a = 0; a < S->n_anchors && !rc; a++)
        rc = es_window_log_row(S->log, row_anchor(S, a), "anchor", es_policy_spec(S->anchor_p[a]), NAN,
                               &R->rows[R->n_rows++]);
    es_controller_status st;
    es_controller_get_status(S->ctl, &st);
    R->shifts = st.shifts;
    R->fallbacks = st.fallbacks;
    if (rc) {
        es_sim_result_free(R);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    }
    *out = R;
    return ES_OK;
}

int es_simulate(const es_stream *s, const es_policy *proto, es_controller *ctl, const es_controller_opts *co,
                const es_sim_opts *o, es_sim_result **out, es_error *err)
{
    *out = NULL;
    if (!s || s->n == 0) return es_error_set(err, ES_EINVAL, "", 0, "stream", "the stream has no segment");
    if (es_controller_n_candidates(ctl) > 64)
        return es_error_set(err, ES_EINVAL, "", 0, "candidates", "the simulator compares at most 64 candidates");
    sim S;
    int rc = sim_init(&S, s, proto, ctl, co, o, err);
    uint32_t first = 0;
    if (!rc) rc = tune_first(&S, &first, err);
    uint64_t r = 0, total_req = s->total;
    for (uint32_t g = 0; g < s->n && !rc; g++) {
        for (uint64_t j = 0; j < s->seg[g].requests && !rc; j++, r++) {
            rc = one_request(&S, r, g, err);
            if (o->progress && (r % 256 == 0 || r + 1 == total_req)) o->progress(o->progress_ctx, r + 1, total_req);
        }
    }
    if (!rc) rc = results(&S, first, out, err);
    sim_free(&S);
    return rc;
}

void es_sim_result_free(es_sim_result *r)
{
    if (!r) return;
    for (uint32_t i = 0; r->rows && i < r->n_rows; i++) es_sim_row_release(&r->rows[i]);
    free(r->rows);
    free(r->statics);
    free(r);
}

uint32_t es_sim_n_rows(const es_sim_result *r) { return r->n_rows; }
const es_sim_row *es_sim_row_get(const es_sim_result *r, uint32_t i) { return i < r->n_rows ? &r->rows[i] : NULL; }
uint32_t es_sim_n_static(const es_sim_result *r) { return r->n_static; }
const es_sim_static *es_sim_static_get(const es_sim_result *r, uint32_t i)
{
    return i < r->n_static ? &r->statics[i] : NULL;
}

void es_sim_controller_events(const es_sim_result *r, uint64_t *shifts, uint64_t *fallbacks)
{
    *shifts = r->shifts;
    *fallbacks = r->fallbacks;
}

/* Pure candidates reaching em, and every mixture of a candidate above em
 * with one below, at the share that lands on em exactly. */
double es_sim_static_tokens_at(const es_sim_result *r, double em)
{
    double best = NAN;
    for (uint32_t i = 0; i < r->n_static; i++) {
        const es_sim_static *a = &r->statics[i];
        if (a->em < em) continue;
        if (!(best <= a->tokens)) best = a->tokens;
        for (uint32_t j = 0; j < r->n_static; j++) {
            const es_sim_static *b = &r->statics[j];
            if (b->em >= em) continue;
            double f = (em - b->em) / (a->em - b->em); /* share of a */
            double t = f * a->tokens + (1 - f) * b->tokens;
            if (!(best <= t)) best = t;
        }
    }
    return best;
}
