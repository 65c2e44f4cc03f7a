/*
 * episodes.c - training states from replayed episodes.
 *
 * Across samples: an item in a random order is an episode; after each
 * sample (from the policy's `min` on) the state is the features the rule
 * would read there (es_features, the rule's own tracker), what stopping
 * there is worth (the leader agrees with the full run of that order, or is
 * correct) and what it has cost.  The episode ends where the rule must
 * stop: every sample drawn, or the leader clinched (the rule's clinch=on).
 * Within a sample: a sample is an episode, a state per probe the rule
 * reads (every m-th), worth the probed answer agreeing with the sample's
 * final answer (or being correct), costing the tokens up to the probe plus
 * the probes made; it ends at the sample's own end.
 *
 * Costs are shares of the file's mean full run (across: all samples of an
 * item; within: one whole sample, probes excluded), so one lambda means
 * the same on files of 5 samples and of 160, of 100 tokens and of 10,000.
 * Items are cut into chunks built on threads, each into its own buffer,
 * joined in chunk order: the same states for any thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_int.h"

enum { CHUNK = 32 };

void lr_data_free(lr_data *s)
{
    free(s->x);
    free(s->reward);
    free(s->cost);
    free(s->kind);
    free(s->w);
    free(s->ep);
    uint32_t d = s->d;
    memset(s, 0, sizeof *s);
    s->d = d;
}

static int grow(void **p, size_t n, size_t size)
{
    void *q = realloc(*p, n * size);
    if (!q) return ES_ENOMEM;
    *p = q;
    return ES_OK;
}

int lr_data_reserve(lr_data *s, size_t n)
{
    if (n <= s->cap) return ES_OK;
    size_t c = s->cap ? s->cap : 1024;
    while (c < n) c *= 2;
    if (grow((void **)&s->x, c * (s->d ? s->d : 1), sizeof(float)) || grow((void **)&s->reward, c, sizeof(float)) ||
        grow((void **)&s->cost, c, sizeof(float)) || grow((void **)&s->kind, c, 1) || grow((void **)&s->w, c, sizeof(float)))
        return ES_ENOMEM;
    s->cap = c;
    return ES_OK;
}

static int begin_episode(lr_data *s)
{
    if (s->n_ep + 2 > s->cap_ep) {
        size_t c = s->cap_ep ? 2 * s->cap_ep : 256;
        if (grow((void **)&s->ep, c, sizeof(size_t))) return ES_ENOMEM;
        s->cap_ep = c;
    }
    if (s->n_ep == 0) s->ep[0] = 0;
    return ES_OK;
}

static void end_episode(lr_data *s)
{
    if (s->n == s->ep[s->n_ep]) return; /* no state: no episode */
    s->ep[++s->n_ep] = s->n;
}

int lr_data_append(lr_data *dst, const lr_data *src)
{
    if (lr_data_reserve(dst, dst->n + src->n)) return ES_ENOMEM;
    for (size_t e = 0; e < src->n_ep; e++) {
        if (begin_episode(dst)) return ES_ENOMEM;
        size_t a = src->ep[e], b = src->ep[e + 1], at = dst->n;
        memcpy(dst->x + at * dst->d, src->x + a * src->d, (b - a) * src->d * sizeof(float));
        memcpy(dst->reward + at, src->reward + a, (b - a) * sizeof(float));
        memcpy(dst->cost + at, src->cost + a, (b - a) * sizeof(float));
        memcpy(dst->kind + at, src->kind + a, b - a);
        memcpy(dst->w + at, src->w + a, (b - a) * sizeof(float));
        dst->n += b - a;
        end_episode(dst);
    }
    return ES_OK;
}

/* One state: the head's features (NaN where missing) and its worth. */
static int push(lr_data *s, const lr_build *b, const double *all, float reward, double cost, int kind, float w)
{
    if (lr_data_reserve(s, s->n + 1)) return ES_ENOMEM;
    float *x = s->x + s->n * s->d;
    for (uint32_t i = 0; i < b->nf; i++) x[i] = all ? (float)all[b->feat[i]] : NAN;
    s->reward[s->n] = reward;
    s->cost[s->n] = (float)cost;
    s->kind[s->n] = (uint8_t)kind;
    s->w[s->n] = w;
    s->n++;
    return ES_OK;
}

/* ------------------------------------------------------------ the job */

typedef struct build_job {
    const es_tune_data *d;
    const uint8_t *mask;
    const lr_build *b;
    const double *norm;        /* [files] the cost unit of each file */
    lr_data *chunk;            /* [chunks] */
    es_features **feat;        /* [threads] */
    es_tally **tally;          /* [threads] */
    uint32_t **order;          /* [threads] */
    int32_t **seq;             /* [threads] the answers in order */
    uint32_t *order_cap;       /* [threads] */
} build_job;

static int ready(build_job *j, int th, uint32_t n)
{
    if (n <= j->order_cap[th]) return ES_OK;
    if (grow((void **)&j->order[th], n, sizeof(uint32_t)) || grow((void **)&j->seq[th], n, sizeof(int32_t)))
        return ES_ENOMEM;
    j->order_cap[th] = n;
    return ES_OK;
}

/* Across: one item in one order. */
static int across_episode(build_job *j, int th, const es_item_view *v, const uint32_t *order, double unit, float w,
                          lr_data *out)
{
    const lr_build *b = j->b;
    es_features *f = j->feat[th];
    es_tally *t = j->tally[th];
    uint32_t k = v->n_samples;
    int32_t *seq = j->seq[th];
    for (uint32_t i = 0; i < k; i++) seq[i] = v->answer[order[i]];
    if (es_tally_reserve(t, v->n_answers)) return ES_ENOMEM;
    int32_t full = es_vote_majority(seq, k, t);
    int rc = es_features_begin_item(f, k, v->n_answers, v->answer_flags);
    if (!rc) rc = begin_episode(out);
    double tokens = 0, x[64];
    for (uint32_t i = 0; !rc && i < k; i++) {
        uint32_t s = order[i];
        es_features_sample(f, seq[i], v->tokens[s], v->confidence[s]);
        es_tally_add(t, seq[i]);
        tokens += v->tokens[s];
        uint32_t n = i + 1, second, top = es_tally_top(t, &second);
        int32_t lead = es_tally_leader(t);
        int terminal = n == k || top > second + (k - n);
        if (n < b->min_samples && !terminal) continue;
        es_features_get(f, ES_AT_ACROSS, x);
        float r = b->reward == ES_REWARD_GOLD ? v->correct[lead] : (float)(lead == full);
        rc = push(out, b, x, r, tokens / unit, (n >= b->min_samples ? LR_MAY_STOP : 0) | (terminal ? LR_TERMINAL : 0), w);
        if (terminal) break;
    }
    es_tally_reset(t);
    if (!rc) end_episode(out);
    return rc;
}

/* Within: one sample (after the samples before it, when the rule serves
 * both levels). */
static int within_episode(build_job *j, int th, const es_item_view *v, uint32_t s, double unit, float w, lr_data *out)
{
    const lr_build *b = j->b;
    es_features *f = j->feat[th];
    int rc = begin_episode(out);
    double probe_cost = 0, x[64];
    uint32_t points = 0;
    int32_t final = v->answer[s];
    es_features_begin_sample(f);
    for (uint32_t p = v->probe_off[s]; !rc && p < v->probe_off[s + 1]; p++) {
        if (++points % b->every) continue; /* the session skips these: not made */
        int32_t c = b->probe_cost >= 0 ? b->probe_cost : v->probe_cost[p];
        probe_cost += c > 0 ? c : 0;
        int32_t a = v->probe_answer[p];
        es_features_probe(f, v->probe_at[p], a, v->probe_confidence[p], v->probe_window_confidence[p],
                          v->probe_cues[p]);
        es_features_get(f, ES_AT_WITHIN, x);
        float r = b->reward == ES_REWARD_GOLD ? v->correct[a] : (float)(a == final);
        rc = push(out, b, x, r, (v->probe_at[p] + probe_cost) / unit, LR_MAY_STOP, w);
    }
    /* the sample's own end: its answer, all its tokens */
    float r = b->reward == ES_REWARD_GOLD ? v->correct[final] : 1.0f;
    if (!rc) rc = push(out, b, NULL, r, (v->tokens[s] + probe_cost) / unit, LR_TERMINAL, w);
    if (!rc) end_episode(out);
    return rc;
}

static int build_chunk(void *ctx, int th, size_t chunk)
{
    build_job *j = ctx;
    const lr_build *b = j->b;
    lr_data *out = &j->chunk[chunk];
    size_t n = es_tune_data_n_items(j->d);
    for (size_t i = chunk * CHUNK; i < n && i < (chunk + 1) * CHUNK; i++) {
        if (j->mask && !j->mask[i]) continue;
        es_item_view v;
        size_t file;
        uint32_t index;
        es_tune_data_item(j->d, i, &v, &file, &index);
        if (ready(j, th, v.n_samples)) return ES_ENOMEM;
        uint32_t *order = j->order[th];
        /* within a sample alone the order changes nothing: one pass */
        uint32_t R = b->level == ES_AT_WITHIN && !b->both ? 1 : b->orders;
        if (b->level == ES_AT_ACROSS && v.n_samples < 2) continue;
        for (uint32_t r = 0; r < R; r++) {
            if (R > 1) es_shuffle_order(b->seed ^ 0x1EA2AULL, r, index, v.n_samples, order);
            else
                for (uint32_t s = 0; s < v.n_samples; s++) order[s] = s;
            float w = 1.0f / (float)R;
            int rc;
            if (b->level == ES_AT_ACROSS) {
                rc = across_episode(j, th, &v, order, j->norm[file], w, out);
            } else {
                rc = es_features_begin_item(j->feat[th], v.n_samples, v.n_answers, v.answer_flags);
                for (uint32_t s = 0; !rc && s < v.n_samples; s++) {
                    uint32_t k = order[s];
                    if (v.probe_off[k] == v.probe_off[k + 1]) continue;
                    rc = within_episode(j, th, &v, k, j->norm[file], w, out);
                    if (!rc && b->both) rc = es_features_sample(j->feat[th], v.answer[k], v.tokens[k], v.confidence[k]);
                }
            }
            if (rc) return rc;
        }
    }
    return ES_OK;
}

/* The cost unit of each file: its mean full run per item (across) or per
 * sample (within), over the items used. */
static int cost_units(const es_tune_data *d, const uint8_t *mask, int level, double **out)
{
    size_t nf = es_tune_data_n_files(d), n = es_tune_data_n_items(d);
    double *sum = calloc(nf + 1, sizeof *sum), *cnt = calloc(nf + 1, sizeof *cnt);
    if (!sum || !cnt) {
        free(sum);
        free(cnt);
        return ES_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        es_item_view v;
        size_t f;
        es_tune_data_item(d, i, &v, &f, NULL);
        for (uint32_t s = 0; s < v.n_samples; s++) sum[f] += v.tokens[s];
        cnt[f] += level == ES_AT_ACROSS ? 1 : v.n_samples;
    }
    for (size_t f = 0; f < nf; f++) sum[f] = cnt[f] > 0 && sum[f] > 0 ? sum[f] / cnt[f] : 1.0;
    free(cnt);
    *out = sum;
    return ES_OK;
}

int lr_build_states(const es_tune_data *d, const uint8_t *mask, const lr_build *b, lr_data *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    out->d = b->nf;
    size_t n = es_tune_data_n_items(d), chunks = (n + CHUNK - 1) / CHUNK;
    int threads = es_parallel_threads(b->threads);
    build_job j = {d, mask, b, NULL, calloc(chunks + 1, sizeof(lr_data)), calloc((size_t)threads, sizeof(es_features *)),
                   calloc((size_t)threads, sizeof(es_tally *)), calloc((size_t)threads, sizeof(uint32_t *)),
                   calloc((size_t)threads, sizeof(int32_t *)), calloc((size_t)threads, sizeof(uint32_t))};
    double *norm = NULL;
    int rc = j.chunk && j.feat && j.tally && j.order && j.seq && j.order_cap ? cost_units(d, mask, b->level, &norm)
                                                                              : ES_ENOMEM;
    j.norm = norm;
    for (int t = 0; !rc && t < threads; t++)
        if (es_features_new(&j.feat[t]) || es_tally_new(16, &j.tally[t])) rc = ES_ENOMEM;
    for (size_t c = 0; !rc && c < chunks; c++) j.chunk[c].d = b->nf;
    if (!rc) rc = es_parallel(threads, chunks, build_chunk, &j);
    for (size_t c = 0; !rc && c < chunks; c++) rc = lr_data_append(out, &j.chunk[c]);
    for (size_t c = 0; j.chunk && c < chunks; c++) lr_data_free(&j.chunk[c]);
    for (int t = 0; t < threads; t++) {
        if (j.feat) es_features_free(j.feat[t]);
        if (j.tally) es_tally_free(j.tally[t]);
        if (j.order) free(j.order[t]);
        if (j.seq) free(j.seq[t]);
    }
    free(j.chunk);
    free(j.feat);
    free(j.tally);
    free(j.order);
    free(j.seq);
    free(j.order_cap);
    free(norm);
    if (rc) {
        lr_data_free(out);
        return es_error_set(err, rc, "", 0, "", "building the training states: %s", es_strerror(rc));
    }
    return ES_OK;
}
