/* online_int.h - the online layer's internals (stream.c, simulate.c). */
#ifndef ES_ONLINE_INT_H
#define ES_ONLINE_INT_H

#include "earlystop_online.h"

enum { ON_MAX_SEGMENTS = 64 };

typedef struct on_segment {
    const es_traceset **sets;
    uint32_t n;
    uint64_t requests;
    char name[512];
} on_segment;

struct es_stream {
    on_segment *seg;
    uint32_t n, cap;
    uint64_t total;
};

/* simulate.c: the static rule (the most conservative candidate within a cost
 * budget, the most aggressive within an em-loss bound) */
uint32_t on_choose(const es_controller_opts *co, const double *cost, const double *dis, uint32_t n);

#endif
