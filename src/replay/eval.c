/*
 * eval.c - a policy replayed over a whole trace set, in file order or over
 * many random sample orders.
 *
 * Orders are pure functions of (seed, shuffle, item) and every sum is an
 * integer, so a run split across any number of threads adds up to the same
 * bytes as a run on one.
 */
#include <stdlib.h>
#include <string.h>

#include "order.h"

void es_shuffle_order(uint64_t seed, uint32_t shuffle, uint32_t item, uint32_t n, uint32_t *order)
{
    es_rng g = es_order_rng(seed, shuffle, item);
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    for (uint32_t i = 0; i + 1 < n; i++) es_order_step(&g, order, i, n);
}

void es_traceset_max_sizes(const es_traceset *ts, uint32_t *max_samples, uint32_t *max_answers)
{
    es_item_view v;
    uint32_t ms = 1, ma = 1;
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_traceset_item(ts, i, &v);
        if (v.n_samples > ms) ms = v.n_samples;
        if (v.n_answers > ma) ma = v.n_answers;
    }
    *max_samples = ms;
    *max_answers = ma;
}

static int unanimous(const es_item_view *v)
{
    for (uint32_t i = 1; i < v->n_samples; i++)
        if (v->answer[i] != v->answer[0]) return 0;
    return 1;
}

/* An item whose samples all give one answer, under a policy that decides on
 * vote counts alone (es_policy_info.counts_only): every order stops at the same
 * sample with the same answer, so the policy runs on the first order only
 * and the others just sum the tokens of the samples they draw first. */
static int replay_unanimous(es_session *p, const es_item_view *v, uint32_t item, es_order *o, const uint32_t *ident,
                            uint64_t seed, uint32_t shuffle_begin, uint32_t shuffle_end, int32_t probe_cost,
                            es_eval_acc *acc)
{
    es_outcome out;
    o->n = v->n_samples;
    o->first = ES_ORDER_BLOCK;
    memcpy(o->idx, ident, o->n * sizeof *o->idx);
    es_order_begin(o, seed, shuffle_begin, item);
    int rc = es_replay_item_lazy(p, v, o, probe_cost, &out);
    if (rc) return rc;
    es_eval_acc_add(acc, &out);
    uint32_t k = out.samples;
    o->first = k;
    for (uint32_t r = shuffle_begin + 1; r < shuffle_end; r++) {
        memcpy(o->idx, ident, o->n * sizeof *o->idx);
        es_order_begin(o, seed, r, item);
        out.tokens = 0;
        for (uint32_t j = 0; j < k; j++) out.tokens += v->tokens[es_order_next(o)];
        es_eval_acc_add(acc, &out);
    }
    memcpy(o->idx, ident, o->n * sizeof *o->idx);
    return ES_OK;
}

/* Items outer, orders inner: an item's samples and sums stay in cache over
 * all its orders, and its view is built once.  Each order is drawn lazily
 * (order.h), only as far as the policy reads it; the first fill draws as
 * many samples as the item's previous order used, since the orders of one
 * item tend to stop at the same point (ac-beta stops 78% of the ESC file's
 * items at 4 of 40). */
int es_eval_policy(const es_traceset *ts, es_session *p, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, int32_t probe_cost, es_eval_acc *acc, size_t *bad_item)
{
    uint32_t ms, ma;
    es_traceset_max_sizes(ts, &ms, &ma);
    uint32_t *ident = malloc(ms * sizeof *ident);
    es_order o = {.idx = malloc(ms * sizeof *o.idx)};
    int rc = ident && o.idx ? ES_OK : ES_ENOMEM;
    for (uint32_t k = 0; rc == ES_OK && k < ms; k++) ident[k] = k;
    int file_order = shuffle_begin == 0 && shuffle_end == 0, unanimous_fast = es_session_info(p)->counts_only;
    es_item_view v;
    es_outcome out;
    for (size_t i = 0; i < es_traceset_n_items(ts) && rc == ES_OK; i++) {
        es_traceset_item(ts, i, &v);
        if (file_order) {
            rc = es_replay_item(p, &v, NULL, probe_cost, &out);
            if (rc == ES_OK) es_eval_acc_add(&acc[i], &out);
        } else if (unanimous_fast && unanimous(&v)) {
            rc = replay_unanimous(p, &v, (uint32_t)i, &o, ident, seed, shuffle_begin, shuffle_end, probe_cost, &acc[i]);
        } else {
            o.n = v.n_samples;
            o.first = ES_ORDER_BLOCK;
            memcpy(o.idx, ident, o.n * sizeof *o.idx);
            for (uint32_t r = shuffle_begin; r < shuffle_end && rc == ES_OK; r++) {
                es_order_begin(&o, seed, r, (uint32_t)i);
                rc = es_replay_item_lazy(p, &v, &o, probe_cost, &out);
                memcpy(o.idx, ident, o.n * sizeof *o.idx); /* undo the draws */
                o.first = o.drawn;
                if (rc == ES_OK) es_eval_acc_add(&acc[i], &out);
            }
        }
        if (rc && bad_item) *bad_item = i;
    }
    free(ident);
    free(o.idx);
    return rc;
}

