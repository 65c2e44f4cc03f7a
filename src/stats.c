/*
 * stats.c - votes, oracles and the per-file summary figures.
 *
 * Everything here counts interned answer ids with caller-provided scratch,
 * so the same routines serve `earlystop stats`, the replay evaluator and a
 * live loop without allocating.
 */
#include <stdlib.h>

#include "earlystop.h"

/* Majority with ties to the lower id, which is the answer seen first because
 * ids are handed out in order of first appearance. */
int32_t es_vote_majority(const int32_t *answers, uint32_t n, uint32_t *counts, uint32_t n_answers)
{
    int32_t best = -1;
    for (uint32_t i = 0; i < n; i++) {
        int32_t a = answers[i];
        if (a < 0 || (uint32_t)a >= n_answers) continue;
        uint32_t c = ++counts[a];
        if (best < 0 || c > counts[best] || (c == counts[best] && a < best)) best = a;
    }
    for (uint32_t i = 0; i < n; i++)
        if (answers[i] >= 0 && (uint32_t)answers[i] < n_answers) counts[answers[i]] = 0;
    return best;
}

/* One pass: the running leader after each sample; the oracle is one past the
 * last prefix whose leader differs from the full majority. */
uint32_t es_consistency_oracle(const int32_t *answers, uint32_t n, uint32_t *counts, uint32_t n_answers)
{
    if (n == 0) return 0;
    int32_t final = es_vote_majority(answers, n, counts, n_answers);
    int32_t lead = -1;
    uint32_t last_bad = 0; /* 1-based prefix length of the last disagreeing prefix */
    for (uint32_t i = 0; i < n; i++) {
        int32_t a = answers[i];
        if (a >= 0 && (uint32_t)a < n_answers) {
            uint32_t c = ++counts[a];
            if (lead < 0 || c > counts[lead] || (c == counts[lead] && a < lead)) lead = a;
        }
        if (lead != final) last_bad = i + 1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (answers[i] >= 0 && (uint32_t)answers[i] < n_answers) counts[answers[i]] = 0;
    return last_bad + 1 > n ? n : last_bad + 1;
}

uint32_t es_stable_final_tokens(const uint32_t *at, const int32_t *ans, uint32_t n_probes,
                                int32_t final_answer, uint32_t total_tokens)
{
    if (n_probes == 0 || ans[n_probes - 1] != final_answer) return total_tokens;
    uint32_t i = n_probes - 1;
    while (i > 0 && ans[i - 1] == final_answer) i--;
    return at[i];
}

/* Per-item contributions, summed by es_stats_compute. */
static void item_stats(const es_item_view *v, uint32_t *counts, es_stats *acc)
{
    uint32_t n = v->n_samples;
    int32_t maj = es_vote_majority(v->answer, n, counts, v->n_answers);
    uint64_t tokens = 0;
    int any = 0;
    for (uint32_t i = 0; i < n; i++) {
        tokens += v->tokens[i];
        any |= v->correct[v->answer[i]];
    }
    uint32_t orc = es_consistency_oracle(v->answer, n, counts, v->n_answers);
    uint64_t orc_tokens = 0;
    for (uint32_t i = 0; i < orc; i++) orc_tokens += v->tokens[i];
    acc->single_em += v->correct[v->answer[0]];
    acc->maj_em += v->correct[maj];
    acc->oracle_em += any;
    acc->tokens_per_item += (double)tokens;
    acc->consistency_oracle_samples += orc;
    acc->consistency_oracle_tokens += (double)orc_tokens;
    if (v->answer_type == ES_ANSWER_TEXT) {
        /* F1 gives partial credit where EM gives none: a second metric for text */
        acc->text_items++;
        acc->maj_f1 += es_answer_f1(v->answer_raw[maj], v->gold);
    }
    /* every trace counts, with or without probes: the README's means are
     * over all traces of a probe file, and a trace without probes has to run
     * to its end (es_stable_final_tokens gives its whole tokens) */
    for (uint32_t s = 0; s < n; s++) {
        uint32_t b = v->probe_off[s], e = v->probe_off[s + 1];
        if (e != b) acc->traces_with_probes++;
        acc->probes_per_trace += e - b;
        /* the probe arrays are NULL in a set without probes: no NULL + 0 */
        acc->stable_final_tokens += es_stable_final_tokens(e > b ? v->probe_at + b : NULL,
                                                           e > b ? v->probe_answer + b : NULL, e - b,
                                                           v->answer[s], v->tokens[s]);
        acc->full_em += v->correct[v->answer[s]];
    }
}

/* Figures as in the data README: means over items; probe figures are means
 * over all traces (samples) of a file in which any trace carries probes. */
int es_stats_compute(const es_traceset *ts, es_stats *out)
{
    es_stats acc = {0};
    size_t n_items = es_traceset_n_items(ts), max_ans = 1;
    es_item_view v;
    for (size_t i = 0; i < n_items; i++) {
        es_traceset_item(ts, i, &v);
        if (v.n_answers > max_ans) max_ans = v.n_answers;
    }
    uint32_t *counts = calloc(max_ans, sizeof *counts);
    if (!counts) return ES_ENOMEM;
    for (size_t i = 0; i < n_items; i++) {
        es_traceset_item(ts, i, &v);
        item_stats(&v, counts, &acc);
    }
    free(counts);
    /* probe figures are means over all traces (samples) of a file that has
     * probes at all, and 0 for a file without any */
    double k = n_items ? (double)n_items : 1.0;
    double t = acc.traces_with_probes && es_traceset_n_samples(ts) ? (double)es_traceset_n_samples(ts) : 0.0;
    acc.items = n_items;
    acc.samples = es_traceset_n_samples(ts);
    acc.samples_per_item = (double)acc.samples / k;
    acc.single_em /= k;
    acc.maj_em /= k;
    acc.oracle_em /= k;
    acc.tokens_per_item /= k;
    acc.consistency_oracle_samples /= k;
    acc.consistency_oracle_tokens /= k;
    acc.probes_per_trace = t > 0 ? acc.probes_per_trace / t : 0.0;
    acc.stable_final_tokens = t > 0 ? acc.stable_final_tokens / t : 0.0;
    acc.full_em = t > 0 ? acc.full_em / t : 0.0;
    if (acc.text_items) acc.maj_f1 /= (double)acc.text_items;
    *out = acc;
    return ES_OK;
}
