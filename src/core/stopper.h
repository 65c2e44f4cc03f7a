/*
 * stopper.h - the learned stopper's weights inside the core (stopper.c),
 * shared by the `learned` rule, the policy (which holds a reference) and
 * the shipped model (learned_builtin.c, generated from data/stopper.json).
 */
#ifndef ES_CORE_STOPPER_H
#define ES_CORE_STOPPER_H

#include <stdatomic.h>

#include "earlystop.h"

struct es_stopper {
    atomic_int refs;
    int builtin;           /* the shipped one: static, never counted or freed */
    es_stopper_desc d;     /* pointers into the memory after the struct (or static arrays) */
};

void es_stopper_retain(const es_stopper *m);
/* The head at a level (ES_AT_*), NULL when the stopper has none there. */
const es_stopper_head *es_stopper_head_at(const es_stopper *m, int level);
/* The head that scores operating point `point` at a level (across: its
 * pick among the alternatives; NULL when none). */
const es_stopper_head *es_stopper_head_for(const es_stopper *m, uint32_t point, int level);
/* The head's score on its own inputs x[n_in] (NaN = missing). */
double es_stopper_head_score(const es_stopper_head *h, const double *x);

#endif
