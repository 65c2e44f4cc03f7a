/*
 * stream.c - a stream of requests in segments (earlystop_online.h): which
 * trace sets each segment draws from and how many requests it has.  The
 * drawing itself is the simulator's (simulate.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "online_int.h"

int es_stream_new(es_stream **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? ES_OK : ES_ENOMEM;
}

void es_stream_free(es_stream *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->n; i++) free(s->seg[i].sets);
    free(s->seg);
    free(s);
}

int es_stream_add(es_stream *s, const es_traceset *const *sets, const char *const *names, uint32_t n,
                  uint64_t requests, es_error *err)
{
    if (n == 0 || requests == 0)
        return es_error_set(err, ES_EINVAL, "", 0, "stream", "a segment needs a trace set and at least one request");
    if (s->n == ON_MAX_SEGMENTS)
        return es_error_set(err, ES_EINVAL, "", 0, "stream", "at most %d segments", ON_MAX_SEGMENTS);
    for (uint32_t i = 0; i < n; i++)
        if (es_traceset_n_items(sets[i]) == 0)
            return es_error_set(err, ES_EINVAL, names ? names[i] : "", 0, "stream", "a trace set without items");
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? 2 * s->cap : 8;
        on_segment *g = realloc(s->seg, cap * sizeof *g);
        if (!g) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
        s->seg = g;
        s->cap = cap;
    }
    on_segment *g = &s->seg[s->n];
    memset(g, 0, sizeof *g);
    g->sets = malloc(n * sizeof *g->sets);
    if (!g->sets) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    memcpy(g->sets, sets, n * sizeof *sets);
    g->n = n;
    g->requests = requests;
    size_t at = 0;
    for (uint32_t i = 0; i < n && at < sizeof g->name; i++) {
        const char *nm = names && names[i] ? names[i] : "set";
        const char *base = strrchr(nm, '/');
        at += (size_t)snprintf(g->name + at, sizeof g->name - at, "%s%s", i ? "+" : "", base ? base + 1 : nm);
    }
    s->total += requests;
    s->n++;
    return ES_OK;
}

uint32_t es_stream_n_segments(const es_stream *s) { return s->n; }
uint64_t es_stream_requests(const es_stream *s) { return s->total; }
const char *es_stream_segment_name(const es_stream *s, uint32_t seg) { return seg < s->n ? s->seg[seg].name : NULL; }
