/*
 * tally.h - the one vote count of earlystop (internal to the core; the
 * public es_tally_* functions in earlystop.h wrap these).
 *
 * A tally counts votes for answer ids and keeps the leader and the top two
 * counts up to date in O(1) per vote.  Ties go to the answer whose first
 * vote came first in the order the votes were cast: that is the reference
 * convention ("majority, ties to the answer that appeared first"), it is
 * what a live run sees, and it does not depend on how ids were numbered, so
 * a shuffled replay needs no renumbering.  Only answers voted for are ever
 * non-zero, so a reset costs O(answers voted), not O(capacity).
 */
#ifndef ES_CORE_TALLY_H
#define ES_CORE_TALLY_H

#include <stdint.h>

#include "earlystop.h"

struct es_tally {
    uint32_t cap;       /* answer ids the arrays hold */
    uint32_t n_seen;    /* distinct answers voted for */
    uint32_t votes;     /* votes cast */
    uint32_t top1, top2;
    int32_t leader;     /* -1 before the first vote */
    uint32_t *count;    /* [cap] votes per answer */
    uint32_t *rank;     /* [cap] position of an answer's first vote */
    int32_t *seen;      /* [cap] answers in order of first vote */
};

/* Room for ids < n; allocates only when n exceeds every earlier need.  A
 * tally that grows keeps nothing (call before voting). */
int es_tally_init_cap(es_tally *t, uint32_t n);
void es_tally_release(es_tally *t);

static inline void es_tally_clear(es_tally *t)
{
    for (uint32_t i = 0; i < t->n_seen; i++) t->count[t->seen[i]] = 0;
    t->n_seen = t->votes = t->top1 = t->top2 = 0;
    t->leader = -1;
}

/* One vote for a (0 <= a < cap). */
static inline void es_tally_vote(es_tally *t, int32_t a)
{
    uint32_t c = ++t->count[a];
    t->votes++;
    if (c == 1) {
        t->rank[a] = t->n_seen;
        t->seen[t->n_seen++] = a;
    }
    if (a == t->leader) {
        t->top1 = c;
    } else if (t->leader < 0 || c > t->top1 || (c == t->top1 && t->rank[a] < t->rank[t->leader])) {
        t->top2 = t->top1;
        t->top1 = c;
        t->leader = a;
    } else if (c > t->top2) {
        t->top2 = c;
    }
}

#endif
