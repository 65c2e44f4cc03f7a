/*
 * eval.c - replay evaluation over a whole trace set: policies, oracles,
 * random sample orders and the paired bootstrap.
 *
 * Orders are pure functions of (seed, shuffle, item) and every sum is an
 * integer, so a run split across any number of threads adds up to the same
 * bytes as a run on one.
 */
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"
#include "order.h"
#include "policy.h"

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

static void add_outcome(es_eval_acc *a, const es_outcome *o)
{
    a->correct += o->correct;
    a->samples += o->samples;
    a->rounds += o->rounds;
    a->probes += o->probes;
    a->tokens += o->tokens;
    a->probe_tokens += o->probe_tokens;
}

/* An item whose samples all give one answer, under a policy that decides on
 * vote counts alone (es_policy_counts_only): every order stops at the same
 * sample with the same answer, so the policy runs on the first order only
 * and the others just sum the tokens of the samples they draw first. */
static int replay_unanimous(es_policy *p, const es_item_view *v, uint32_t item, es_order *o, const uint32_t *ident,
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
    add_outcome(acc, &out);
    uint32_t k = out.samples;
    o->first = k;
    for (uint32_t r = shuffle_begin + 1; r < shuffle_end; r++) {
        memcpy(o->idx, ident, o->n * sizeof *o->idx);
        es_order_begin(o, seed, r, item);
        out.tokens = 0;
        for (uint32_t j = 0; j < k; j++) out.tokens += v->tokens[es_order_next(o)];
        add_outcome(acc, &out);
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
int es_eval_policy(const es_traceset *ts, es_policy *p, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, int32_t probe_cost, es_eval_acc *acc, size_t *bad_item)
{
    uint32_t ms, ma;
    es_traceset_max_sizes(ts, &ms, &ma);
    uint32_t *ident = malloc(ms * sizeof *ident);
    es_order o = {.idx = malloc(ms * sizeof *o.idx)};
    int rc = ident && o.idx ? ES_OK : ES_ENOMEM;
    for (uint32_t k = 0; rc == ES_OK && k < ms; k++) ident[k] = k;
    int file_order = shuffle_begin == 0 && shuffle_end == 0, unanimous_fast = es_policy_counts_only(p);
    es_item_view v;
    es_outcome out;
    for (size_t i = 0; i < es_traceset_n_items(ts) && rc == ES_OK; i++) {
        es_traceset_item(ts, i, &v);
        if (file_order) {
            rc = es_replay_item(p, &v, NULL, probe_cost, &out);
            if (rc == ES_OK) add_outcome(&acc[i], &out);
        } else if (unanimous_fast && v.n_answers == 1) {
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
                if (rc == ES_OK) add_outcome(&acc[i], &out);
            }
        }
        if (rc && bad_item) *bad_item = i;
    }
    free(ident);
    free(o.idx);
    return rc;
}

/* Sum of the first n tokens of the ordered samples. */
static uint64_t prefix_tokens(const es_item_view *v, const uint32_t *order, uint32_t n)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < n; i++) t += v->tokens[order[i]];
    return t;
}

/* Scratch of the oracles: answers of the ordered samples renumbered by first
 * appearance in that order, so that "ties go to the answer seen first" holds
 * for any order, as it does in a live run; orig maps back to item ids. */
typedef struct oracle_scratch {
    int32_t *ans, *map, *orig;
    uint32_t *counts;
    /* the item's votes over all its samples, which no order changes: top is
     * the largest count, unique the answer holding it alone (-1 on a tie) */
    uint32_t *all, top;
    int32_t unique;
} oracle_scratch;

/* Count the item's votes once, for every order (see majority_in). */
static void count_all(const es_item_view *v, oracle_scratch *s)
{
    for (uint32_t a = 0; a < v->n_answers; a++) s->all[a] = 0;
    for (uint32_t i = 0; i < v->n_samples; i++) s->all[v->answer[i]]++;
    uint32_t top = 0, holders = 0;
    for (uint32_t a = 0; a < v->n_answers; a++) {
        if (s->all[a] > top) {
            top = s->all[a];
            holders = 0;
            s->unique = (int32_t)a;
        }
        holders += s->all[a] == top;
    }
    s->top = top;
    if (holders > 1) s->unique = -1;
}

/* The majority of all samples in this order, ties to the answer seen first:
 * the same answer es_vote_majority finds on the renumbered order, without
 * counting again; only a tie looks at the order. */
static int32_t majority_in(const es_item_view *v, const uint32_t *order, const oracle_scratch *s)
{
    if (s->unique >= 0) return s->unique;
    for (uint32_t i = 0;; i++)
        if (s->all[v->answer[order[i]]] == s->top) return v->answer[order[i]];
}

static void renumber(const es_item_view *v, const uint32_t *order, oracle_scratch *s)
{
    for (uint32_t a = 0; a < v->n_answers; a++) s->map[a] = -1;
    int32_t next = 0;
    for (uint32_t i = 0; i < v->n_samples; i++) {
        int32_t a = v->answer[order[i]];
        if (s->map[a] < 0) {
            s->orig[next] = a;
            s->map[a] = next++;
        }
        s->ans[i] = s->map[a];
    }
}

/* Fewest first samples whose running majority is correct; n when never. */
static uint32_t correctness_oracle(const es_item_view *v, const oracle_scratch *s, int *ok)
{
    int32_t lead = -1;
    uint32_t found = 0, *counts = s->counts;
    for (uint32_t i = 0; i < v->n_samples && !found; i++) {
        int32_t a = s->ans[i];
        uint32_t c = ++counts[a];
        if (lead < 0 || c > counts[lead] || (c == counts[lead] && a < lead)) lead = a;
        if (v->correct[s->orig[lead]]) found = i + 1;
    }
    for (uint32_t i = 0; i < v->n_samples; i++) counts[s->ans[i]] = 0;
    *ok = found > 0;
    return found ? found : v->n_samples;
}

/* Oracle outcome of one item in one order. */
static void oracle_item(const es_item_view *v, es_oracle which, const uint32_t *order, oracle_scratch *s,
                        es_outcome *o)
{
    uint32_t n = v->n_samples;
    renumber(v, order, s);
    int32_t maj = majority_in(v, order, s);
    *o = (es_outcome){.answer = maj, .correct = v->correct[maj], .rounds = 1};
    if (which == ES_ORACLE_CONSISTENCY) {
        o->samples = es_consistency_oracle(s->ans, n, s->counts, v->n_answers);
        o->tokens = prefix_tokens(v, order, o->samples);
    } else if (which == ES_ORACLE_CORRECTNESS) {
        int ok;
        o->samples = correctness_oracle(v, s, &ok);
        o->correct = (uint8_t)ok;
        o->tokens = prefix_tokens(v, order, o->samples);
    } else {
        o->samples = n;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = order[i], b = v->probe_off[k], e = v->probe_off[k + 1];
            o->tokens += es_stable_final_tokens(v->probe_at + b, v->probe_answer + b, e - b, v->answer[k],
                                                v->tokens[k]);
        }
    }
}

int es_eval_oracle(const es_traceset *ts, es_oracle which, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, es_eval_acc *acc)
{
    uint32_t ms, ma;
    es_traceset_max_sizes(ts, &ms, &ma);
    uint32_t *order = malloc(ms * sizeof *order);
    oracle_scratch s = {malloc(ms * sizeof *s.ans), malloc(ma * sizeof *s.map), malloc(ma * sizeof *s.orig),
                        calloc(ma, sizeof *s.counts), malloc(ma * sizeof *s.all), 0, -1};
    int rc = order && s.ans && s.map && s.orig && s.counts && s.all ? ES_OK : ES_ENOMEM;
    int file_order = shuffle_begin == 0 && shuffle_end == 0;
    es_item_view v;
    es_outcome o;
    for (size_t i = 0; i < es_traceset_n_items(ts) && rc == ES_OK; i++) {
        es_traceset_item(ts, i, &v);
        count_all(&v, &s);
        if (file_order) {
            for (uint32_t k = 0; k < v.n_samples; k++) order[k] = k;
            oracle_item(&v, which, order, &s, &o);
            add_outcome(&acc[i], &o);
        }
        for (uint32_t r = shuffle_begin; r < shuffle_end; r++) {
            es_shuffle_order(seed, r, (uint32_t)i, v.n_samples, order);
            oracle_item(&v, which, order, &s, &o);
            add_outcome(&acc[i], &o);
        }
    }
    free(order);
    free(s.ans);
    free(s.map);
    free(s.orig);
    free(s.counts);
    free(s.all);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * The paired bootstrap draws the same B x n item indices for every row of a
 * file (they depend on seed and n only), so they are drawn once and kept as
 * per-item counts, item-major: resample r of row d is then
 * sum_i count[i][r] * d_i, and only the items where the row differs from its
 * baseline (d_i != 0, a few percent of them for a good policy) cost
 * anything.  The draws are those of the one-shot loop this replaced
 * (splitmix64 from seed ^ 0xB007..., index = draw % n, B rows of n draws).
 */
struct es_bootstrap {
    size_t n;
    uint32_t resamples;
    uint16_t *count;   /* [n][resamples]: times item i is drawn in resample r */
    double *means;     /* [resamples] scratch */
};

int es_bootstrap_new(size_t n, uint32_t resamples, uint64_t seed, es_bootstrap **out)
{
    *out = NULL;
    es_bootstrap *b = calloc(1, sizeof *b);
    if (!b) return ES_ENOMEM;
    b->n = n;
    b->resamples = resamples;
    size_t cells = n * (size_t)resamples;
    if (n && resamples && cells / n != resamples) {
        free(b);
        return ES_ERANGE;
    }
    b->count = calloc(cells ? cells : 1, sizeof *b->count);
    b->means = malloc((resamples ? resamples : 1) * sizeof *b->means);
    if (!b->count || !b->means) {
        es_bootstrap_free(b);
        return ES_ENOMEM;
    }
    uint64_t s = seed ^ 0xB007B007B007B007ULL;
    for (uint32_t r = 0; r < resamples && n; r++)
        for (size_t i = 0; i < n; i++) {
            uint16_t *c = &b->count[(size_t)(es_splitmix(&s) % n) * resamples + r];
            if (*c < UINT16_MAX) ++*c; /* n draws: only n > 65535 could saturate, and then never in practice */
        }
    *out = b;
    return ES_OK;
}

void es_bootstrap_free(es_bootstrap *b)
{
    if (!b) return;
    free(b->count);
    free(b->means);
    free(b);
}

int es_bootstrap_interval(es_bootstrap *b, const double *a, const double *base, double *lo, double *hi)
{
    *lo = *hi = 0;
    uint32_t B = b->resamples;
    if (b->n == 0 || B == 0) return ES_OK;
    double *m = b->means;
    for (uint32_t r = 0; r < B; r++) m[r] = 0;
    for (size_t i = 0; i < b->n; i++) {
        double d = a[i] - base[i];
        if (d == 0) continue;
        const uint16_t *c = &b->count[i * B];
        for (uint32_t r = 0; r < B; r++) m[r] += c[r] * d;
    }
    for (uint32_t r = 0; r < B; r++) m[r] /= (double)b->n;
    qsort(m, B, sizeof *m, cmp_double);
    *lo = m[(size_t)(0.025 * (B - 1) + 0.5)];
    *hi = m[(size_t)(0.975 * (B - 1) + 0.5)];
    return ES_OK;
}

int es_bootstrap_diff(const double *a, const double *b, size_t n, uint32_t resamples, uint64_t seed,
                      double *lo, double *hi)
{
    *lo = *hi = 0;
    es_bootstrap *bs;
    int rc = es_bootstrap_new(n, resamples, seed, &bs);
    if (rc) return rc;
    rc = es_bootstrap_interval(bs, a, b, lo, hi);
    es_bootstrap_free(bs);
    return rc;
}
