/*
 * earlystop_online.h - the online layer of earlystop (libearlystop-online):
 * the controller of earlystop.h (es_controller) in the loop of a stream of
 * requests replayed from recorded traces, with scheduled shifts, beside the
 * static choices it is meant to beat.  `earlystop simulate` prints what
 * es_simulate measures.  docs/controller.md.
 *
 * Depends on the replay layer (earlystop_replay.h) and the core.
 */
#ifndef EARLYSTOP_ONLINE_H
#define EARLYSTOP_ONLINE_H

#include "earlystop_replay.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- stream */

/*
 * A stream: segments of requests, each drawn from one trace set or a mix of
 * several (a set chosen uniformly, then an item uniformly: with
 * replacement), each request's samples in a random order.  A new segment is
 * a shift.  The sets are borrowed and must outlive the stream.
 */
typedef struct es_stream es_stream;

ES_API int es_stream_new(es_stream **out);
ES_API void es_stream_free(es_stream *s);
/* A segment of `requests` requests from sets[0..n) (names label them in
 * reports). */
ES_API int es_stream_add(es_stream *s, const es_traceset *const *sets, const char *const *names, uint32_t n,
                         uint64_t requests, es_error *err);
ES_API uint32_t es_stream_n_segments(const es_stream *s);
ES_API uint64_t es_stream_requests(const es_stream *s);
/* "a.jsonl+b.jsonl" */
ES_API const char *es_stream_segment_name(const es_stream *s, uint32_t seg);

/* ------------------------------------------------------------- simulation */

typedef struct es_sim_opts {
    uint64_t seed;               /* draws of items and orders (the controller has its own) */
    int32_t probe_cost;          /* ES_PROBE_COST_FIELD or tokens per probe */
    uint32_t label_delay;        /* gold labels reach the controller this many requests
                                    later (0: never) */
    uint32_t tune_orders;        /* orders per item when tuning on the first segment (5) */
    const char *const *anchors;  /* policies run beside it (NULL: "ac-beta", "esc") */
    uint32_t n_anchors;
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} es_sim_opts;

ES_API void es_sim_opts_init(es_sim_opts *o);

/* One window of W requests (windows never straddle a shift; a segment's last
 * window takes its remainder). */
typedef struct es_sim_window {
    uint32_t segment;
    uint64_t start, requests;
    double em;
    double tokens;               /* mean per request, probes and audits included */
    double kv_peak;              /* mean per request of its peak KV bytes (an audit: the whole run's) */
    double param;                /* mean value the requests ran with */
    double disagreement;         /* with the full run (the replay knows it for every request;
                                    NaN where unknown) */
    double disagreement_lo, disagreement_hi; /* its 95% Clopper-Pearson interval */
    double audit_token_share;
    uint64_t audits;
    int target_met;              /* tokens, kv: the mean within the budget;
                                    em-loss: disagreement_lo <= eps (not significantly above) */
} es_sim_window;

typedef struct es_sim_summary {
    uint64_t requests, audits;
    double em, tokens, kv_peak, disagreement, audit_token_share;
    uint32_t windows, windows_met;
    /* per shift (segments 1..): requests from the shift to the start of the
     * first window after which every window of the segment meets the
     * target (0: met from its start), -1 when its last window misses */
    int64_t recovery[64];
    uint32_t n_recovery;
    double disagreement_late;    /* pooled over every window but each segment's first */
} es_sim_summary;

typedef struct es_sim_row {
    char name[64];               /* "controller", "static-first", "static-hindsight",
                                    "static-every-window", "anchor" */
    char spec[512];              /* the policy (a static row: at its value) */
    double param;                /* static rows: the value; else NaN */
    es_sim_window *windows;
    uint32_t n_windows;
    es_sim_summary sum;
} es_sim_row;

typedef struct es_sim_result es_sim_result;

/*
 * Replay the stream with `ctl` in the loop: each request gets a ticket, runs
 * through an es_session on a clone of `proto` with the ticket applied, and
 * is observed; audits are paid in tokens.  Beside it the same requests (same
 * items, same orders) at every candidate held fixed, from which come the
 * static threshold tuned on the first segment's sets (the most conservative
 * candidate within a cost budget, the most aggressive within an em-loss
 * bound, over tune_orders orders of every item), the best static in
 * hindsight (the same choice on the stream itself; and the best whose every
 * window meets the target), and the anchors.
 */
ES_API int es_simulate(const es_stream *s, const es_policy *proto, es_controller *ctl, const es_controller_opts *copts,
                       const es_sim_opts *o, es_sim_result **out, es_error *err);
ES_API void es_sim_result_free(es_sim_result *r);

/* ------------------------------------------------------------ window log */

/*
 * Per-window figures of rows of requests fed side by side (the
 * simulator's, and a live run's: `earlystop run --controller`): windows of
 * `window` requests per segment, a row's summary with the recovery after
 * each shift.
 */
typedef struct es_window_log es_window_log;

/* What one request of one row cost and answered. */
typedef struct es_request_figures {
    int correct;
    int disagrees;               /* with the full run: 1, 0, or -1 unknown */
    double tokens;               /* audits included */
    double audit_tokens;
    double kv_bytes;             /* its peak (an audit: the whole run's) */
    double param;
    int audited;
} es_request_figures;

ES_API int es_window_log_new(es_target_kind kind, double budget, uint32_t window, const uint64_t *segment_requests,
                             uint32_t n_segments, uint32_t rows, es_window_log **out);
ES_API void es_window_log_free(es_window_log *l);
ES_API uint32_t es_window_log_n_windows(const es_window_log *l);
/* Request number `request` (0-based over the whole stream) of row `row`. */
ES_API void es_window_log_add(es_window_log *l, uint32_t row, uint64_t request, const es_request_figures *f);
/* A row's windows and summary; release with es_sim_row_release. */
ES_API int es_window_log_row(const es_window_log *l, uint32_t row, const char *name, const char *spec, double param,
                             es_sim_row *out);
/* 1 when every window of the row meets the target. */
ES_API int es_window_log_every_window(const es_window_log *l, uint32_t row);
ES_API void es_sim_row_release(es_sim_row *row);

/* Rows: 0 controller, 1 static-first, 2 static-hindsight (the static rule on
 * the whole stream's mean), 3 static-every-window (the best candidate whose
 * every window meets the target), then the anchors. */
ES_API uint32_t es_sim_n_rows(const es_sim_result *r);
ES_API const es_sim_row *es_sim_row_get(const es_sim_result *r, uint32_t i);

/* Every candidate held fixed over the stream: em, tokens, kv, disagreement. */
typedef struct es_sim_static {
    double value, em, tokens, kv_peak, disagreement;
} es_sim_static;
ES_API uint32_t es_sim_n_static(const es_sim_result *r);
ES_API const es_sim_static *es_sim_static_get(const es_sim_result *r, uint32_t i);

/* The fewest tokens a static choice (one candidate, or a random mixture of
 * two) spends to reach at least `em` on the stream; NaN when none does. */
ES_API double es_sim_static_tokens_at(const es_sim_result *r, double em);

/* Detected shifts and fallbacks of the controller over the run. */
ES_API void es_sim_controller_events(const es_sim_result *r, uint64_t *shifts, uint64_t *fallbacks);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_ONLINE_H */
