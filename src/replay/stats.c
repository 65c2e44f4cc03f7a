/*
 * stats.c - the per-file summary figures of `earlystop stats` (votes go
 * through the core's es_tally) and the duplicate-text counter (es_dup) that
 * serves `stats` and `import`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_replay.h"

uint32_t es_stable_final_tokens(const uint32_t *at, const int32_t *ans, uint32_t n_probes,
                                int32_t final_answer, uint32_t total_tokens)
{
    if (n_probes == 0 || ans[n_probes - 1] != final_answer) return total_tokens;
    uint32_t i = n_probes - 1;
    while (i > 0 && ans[i - 1] == final_answer) i--;
    return at[i];
}

/* Per-item contributions, summed by es_stats_compute. */
static void item_stats(const es_item_view *v, es_tally *t, es_stats *acc)
{
    uint32_t n = v->n_samples;
    int32_t maj = es_vote_majority(v->answer, n, t);
    uint64_t tokens = 0;
    int any = 0;
    for (uint32_t i = 0; i < n; i++) {
        tokens += v->tokens[i];
        any |= v->correct[v->answer[i]];
    }
    uint32_t orc = es_consistency_oracle(v->answer, n, t);
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
    es_tally *tally;
    if (es_tally_new((uint32_t)max_ans, &tally)) return ES_ENOMEM;
    for (size_t i = 0; i < n_items; i++) {
        es_traceset_item(ts, i, &v);
        item_stats(&v, tally, &acc);
    }
    es_tally_free(tally);
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

/* ------------------------------------------------------ duplicate texts */

/*
 * Copies among sample texts.  Identical texts inflate every saving a
 * stopping rule reports (a copy always agrees with its original), so
 * `stats` and `import` measure them.  Texts are compared by a 64-bit hash
 * (FNV-1a): no text is kept, and a collision (about n^2 / 2^64 per item)
 * is ignored.
 */
typedef struct dup_slot {
    uint64_t hash;
    uint32_t index;
} dup_slot;

struct es_dup {
    es_dup_stats s;
    size_t cap;
    dup_slot *slot;          /* [cap] (hash, sample) pairs, sorted per item */
    uint32_t *cls;           /* [cap] class of each sample: first sample with its text */
    uint32_t *border;        /* [cap + 1] prefix-function scratch */
    const char **texts;      /* [cap] es_dup_add_item's gathered texts */
};

int es_dup_new(es_dup **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? ES_OK : ES_ENOMEM;
}

void es_dup_free(es_dup *d)
{
    if (!d) return;
    free(d->slot);
    free(d->cls);
    free(d->border);
    free(d->texts);
    free(d);
}

/* Room for n samples; grows only past the largest item so far. */
static int dup_reserve(es_dup *d, size_t n)
{
    if (n <= d->cap) return ES_OK;
    dup_slot *s = realloc(d->slot, n * sizeof *s);
    if (s) d->slot = s;
    uint32_t *c = realloc(d->cls, n * sizeof *c);
    if (c) d->cls = c;
    uint32_t *b = realloc(d->border, (n + 1) * sizeof *b);
    if (b) d->border = b;
    const char **t = realloc(d->texts, n * sizeof *t);
    if (t) d->texts = t;
    if (!s || !c || !b || !t) return ES_ENOMEM;
    d->cap = n;
    return ES_OK;
}

uint64_t es_text_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int slot_cmp(const void *a, const void *b)
{
    const dup_slot *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Longest proper border of cls[0..n) (a prefix that is also a suffix):
 * KMP's prefix function, O(n).  n - border is the smallest period. */
static uint32_t longest_border(const uint32_t *cls, uint32_t n, uint32_t *b)
{
    b[0] = 0;
    uint32_t j = 0;
    for (uint32_t i = 1; i < n; i++) {
        while (j > 0 && cls[i] != cls[j]) j = b[j - 1];
        if (cls[i] == cls[j]) j++;
        b[i] = j;
    }
    return n ? b[n - 1] : 0;
}

/*
 * The copy patterns (docs/import.md, "Duplicate texts"): the texts repeat
 * with a period p <= n/2, so at least the second half copies the first
 * (whole list repeated, or the first samples appended again), or every
 * sample is directly followed by its copy (a a b b c c).
 */
static int copy_pattern(const uint32_t *cls, uint32_t n, uint32_t *b)
{
    if (2 * (uint64_t)longest_border(cls, n, b) >= n) return 1;
    for (uint32_t j = 0; j + 1 < n; j += 2)
        if (cls[j] != cls[j + 1]) return 0;
    return 1;
}

int es_dup_add(es_dup *d, const char *const *texts, size_t n)
{
    if (n > UINT32_MAX - 1) return ES_ERANGE;
    if (dup_reserve(d, n)) return ES_ENOMEM;
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (texts[i]) d->slot[m++] = (dup_slot){es_text_hash(texts[i], strlen(texts[i])), (uint32_t)i};
    qsort(d->slot, m, sizeof *d->slot, slot_cmp);
    /* a sample's class is the first sample with its text (runs are sorted by index) */
    uint32_t distinct = 0;
    for (uint32_t i = 0; i < m; i++) {
        int first = i == 0 || d->slot[i].hash != d->slot[i - 1].hash;
        distinct += first;
        d->cls[d->slot[i].index] = first ? d->slot[i].index : d->cls[d->slot[i - 1].index];
    }
    d->s.items++;
    d->s.text_samples += m;
    d->s.dup_samples += m - distinct;
    /* a pattern needs all texts, enough samples to tell copying from chance
     * and two different texts (one text repeated is no pattern) */
    if (m == n && n >= 4 && distinct >= 2) {
        d->s.pattern_checked++;
        d->s.pattern_items += (size_t)copy_pattern(d->cls, (uint32_t)n, d->border);
    }
    return ES_OK;
}

int es_dup_add_item(es_dup *d, const es_item *item)
{
    if (dup_reserve(d, item->n_samples)) return ES_ENOMEM;
    for (size_t i = 0; i < item->n_samples; i++) d->texts[i] = item->samples[i].text;
    return es_dup_add(d, d->texts, item->n_samples);
}

void es_dup_get(const es_dup *d, es_dup_stats *out) { *out = d->s; }

double es_dup_rate(const es_dup_stats *s)
{
    return s->text_samples ? (double)s->dup_samples / (double)s->text_samples : NAN;
}

/* The warning rule: copy patterns in at least half of the items that can
 * show one, and in two items or more.  By chance (texts drawn independently)
 * the share stays below 0.29 even for coin-flip texts at k = 4 and under
 * 0.01 on the shared files; see docs/import.md. */
int es_dup_suspicious(const es_dup_stats *s)
{
    return s->pattern_items >= 2 && 2 * s->pattern_items >= s->pattern_checked;
}

void es_dup_describe(const es_dup_stats *s, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "%zu of %zu items repeat their sample texts in a copy pattern (a later run of samples equal "
             "to an earlier one); %.1f%% of samples copy an earlier sample's text: copies inflate every "
             "saving (docs/import.md, \"Duplicate texts\")",
             s->pattern_items, s->pattern_checked, 100.0 * es_dup_rate(s));
}
