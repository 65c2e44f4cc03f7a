/*
 * tally.c - vote counting (tally.h) and the vote-based figures built on it:
 * the majority of a sequence and the consistency oracle.
 */
#include <stdlib.h>
#include <string.h>

#include "tally.h"

int es_tally_init_cap(es_tally *t, uint32_t n)
{
    if (n <= t->cap) return ES_OK;
    uint32_t c = t->cap ? t->cap : 16;
    while (c < n) c = c > UINT32_MAX / 2 ? n : c * 2;
    uint32_t *count = calloc(c, sizeof *count), *rank = malloc(c * sizeof *rank);
    int32_t *seen = malloc(c * sizeof *seen);
    if (!count || !rank || !seen) {
        free(count);
        free(rank);
        free(seen);
        return ES_ENOMEM;
    }
    es_tally_release(t);
    t->count = count;
    t->rank = rank;
    t->seen = seen;
    t->cap = c;
    t->n_seen = t->votes = t->top1 = t->top2 = 0;
    t->leader = -1;
    return ES_OK;
}

void es_tally_release(es_tally *t)
{
    free(t->count);
    free(t->rank);
    free(t->seen);
    t->count = t->rank = NULL;
    t->seen = NULL;
    t->cap = 0;
}

int es_tally_new(uint32_t max_answers, es_tally **out)
{
    *out = NULL;
    es_tally *t = calloc(1, sizeof *t);
    if (!t) return ES_ENOMEM;
    t->leader = -1;
    if (es_tally_init_cap(t, max_answers ? max_answers : 1)) {
        free(t);
        return ES_ENOMEM;
    }
    *out = t;
    return ES_OK;
}

void es_tally_free(es_tally *t)
{
    if (!t) return;
    es_tally_release(t);
    free(t);
}

int es_tally_reserve(es_tally *t, uint32_t max_answers)
{
    es_tally_clear(t);
    return es_tally_init_cap(t, max_answers);
}

void es_tally_reset(es_tally *t) { es_tally_clear(t); }

int es_tally_add(es_tally *t, int32_t answer)
{
    if (answer < 0 || (uint32_t)answer >= t->cap) return ES_ERANGE;
    es_tally_vote(t, answer);
    return ES_OK;
}

int32_t es_tally_leader(const es_tally *t) { return t->leader; }

uint32_t es_tally_top(const es_tally *t, uint32_t *second)
{
    if (second) *second = t->top2;
    return t->top1;
}

uint32_t es_tally_count(const es_tally *t, int32_t answer)
{
    return answer >= 0 && (uint32_t)answer < t->cap ? t->count[answer] : 0;
}

uint32_t es_tally_distinct(const es_tally *t) { return t->n_seen; }
uint32_t es_tally_votes(const es_tally *t) { return t->votes; }

int32_t es_vote_majority(const int32_t *answers, uint32_t n, es_tally *t)
{
    es_tally_clear(t);
    for (uint32_t i = 0; i < n; i++)
        if (answers[i] >= 0 && (uint32_t)answers[i] < t->cap) es_tally_vote(t, answers[i]);
    int32_t best = t->leader;
    es_tally_clear(t);
    return best;
}

/* Two passes: the full majority, then the running leader after each sample;
 * the oracle is one past the last prefix whose leader differs from it. */
uint32_t es_consistency_oracle(const int32_t *answers, uint32_t n, es_tally *t)
{
    if (n == 0) return 0;
    int32_t final = es_vote_majority(answers, n, t);
    uint32_t last_bad = 0; /* 1-based length of the last disagreeing prefix */
    for (uint32_t i = 0; i < n; i++) {
        if (answers[i] >= 0 && (uint32_t)answers[i] < t->cap) es_tally_vote(t, answers[i]);
        if (t->leader != final) last_bad = i + 1;
    }
    es_tally_clear(t);
    return last_bad + 1 > n ? n : last_bad + 1;
}
