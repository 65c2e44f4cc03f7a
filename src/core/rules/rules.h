/*
 * rules.h - pieces the built-in rules share (internal to src/core/rules).
 */
#ifndef ES_CORE_RULES_H
#define ES_CORE_RULES_H

#include <stddef.h>

#include "rule.h"

/* The sample cap every across rule takes: "all" (or 0) = no cap. */
#define ES_PARAM_MAX \
    {"max", ES_PARAM_COUNT, 0, 0, 1e9, "all", 0, 0, "samples at most (all = no cap)"}

/* Stop once the leader cannot be caught within the samples left (the cap):
 * the answer is then the full run's, so it costs no EM against it, only
 * tokens saved.  Off by default: the published rules do not do it. */
#define ES_PARAM_CLINCH \
    {"clinch", ES_PARAM_CHOICE, 0, 0, 0, "off|on", 0, 2, "also stop once the leader cannot be caught"}

/* A within rule's probe spacing: read every m-th probe point the driver
 * offers (replay: every m-th recorded probe; live: probes m times sparser).
 * Probes cost tokens; on short chains fewer of them are worth more. */
#define ES_PARAM_EVERY \
    {"every", ES_PARAM_COUNT, 1, 1, 1e6, NULL, 0, 2, "read every m-th probe point (1 = all)"}

/* A tally made ready for a question with ids < max_answers (per item and
 * order in a replay: inline, and it allocates only to grow). */
static inline int es_rule_tally_begin(es_tally *t, uint32_t max_answers)
{
    es_tally_clear(t);
    return max_answers > t->cap ? es_tally_init_cap(t, max_answers) : ES_OK;
}

/* Most across rules keep their vote in an es_tally placed first in their
 * state (ES_RULE_TALLY_FIRST checks it): these hooks serve them all, since a
 * pointer to a struct points to its first member. */
#define ES_RULE_TALLY_FIRST(type) _Static_assert(offsetof(type, t) == 0, #type ": the es_tally must come first")

static inline void es_rule_tally_release(void *st) { es_tally_release((es_tally *)st); }

static inline int es_rule_tally_begin_item(void *st, uint32_t max_answers)
{
    return es_rule_tally_begin((es_tally *)st, max_answers);
}

static inline int32_t es_rule_tally_answer(const void *st) { return ((const es_tally *)st)->leader; }

static inline const es_tally *es_rule_tally_of(const void *st) { return (const es_tally *)st; }

/* Adaptive-Consistency's Beta criterion with a lazily filled table: min_a[b]
 * is the smallest leader count that stops for second count b. */
enum { ES_BETA_TABLE = 128 };
typedef struct es_beta_table {
    double threshold;
    uint32_t filled;
    uint32_t min_a[ES_BETA_TABLE];
} es_beta_table;

void es_beta_table_set(es_beta_table *b, double threshold);
uint32_t es_beta_table_fill(es_beta_table *b, uint32_t second);

/* P(p1 > p2) >= threshold for the top two counts: one table lookup. */
static inline int es_beta_stop(es_beta_table *b, uint32_t top1, uint32_t top2)
{
    if (top2 < b->filled) return top1 >= b->min_a[top2];
    return top1 >= es_beta_table_fill(b, top2);
}

/* Shortest run of probes: the same non-null answer `need` times in a row. */
typedef struct es_streak {
    int32_t answer;
    uint32_t len;
} es_streak;

static inline int es_streak_push(es_streak *s, int32_t answer, uint32_t need)
{
    if (answer == s->answer) s->len++;
    else {
        s->answer = answer;
        s->len = 1;
    }
    return s->len >= need && answer != ES_NULL_ANSWER && answer >= 0;
}

#if defined(__GNUC__)
#define ES_NOINLINE __attribute__((noinline))
#else
#define ES_NOINLINE
#endif

#endif
