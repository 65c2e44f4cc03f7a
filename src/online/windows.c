/*
 * windows.c - per-window figures of rows of requests fed side by side
 * (earlystop_online.h: es_window_log): what `simulate` reports for the
 * controller, every static choice and the anchors, and `run --controller`
 * for a live run.  Windows of W requests are laid per segment (a window
 * never straddles a shift; a segment's last window takes its remainder);
 * a row's summary adds the recovery after each shift.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "online_int.h"

typedef struct wl_acc {
    uint64_t n, correct, dis, dis_known, audits;
    double tokens, audit_tokens, kv, param;
} wl_acc;

typedef struct wl_win {
    uint32_t segment;
    uint64_t start, requests;
} wl_win;

struct es_window_log {
    es_target_kind kind;
    double budget;
    uint32_t n_segments, rows, n_win;
    wl_win *win;
    wl_acc *acc; /* [rows][n_win] */
};

int es_window_log_new(es_target_kind kind, double budget, uint32_t window, const uint64_t *segment_requests,
                      uint32_t n_segments, uint32_t rows, es_window_log **out)
{
    *out = NULL;
    if (window == 0 || n_segments == 0 || rows == 0) return ES_EINVAL;
    es_window_log *l = calloc(1, sizeof *l);
    if (!l) return ES_ENOMEM;
    l->kind = kind;
    l->budget = budget;
    l->n_segments = n_segments;
    l->rows = rows;
    uint64_t total = 0;
    for (uint32_t g = 0; g < n_segments; g++) {
        uint64_t k = segment_requests[g] / window;
        total += k ? k : 1;
    }
    l->win = calloc(total, sizeof *l->win);
    l->acc = calloc(total * rows, sizeof *l->acc);
    if (!l->win || !l->acc) {
        es_window_log_free(l);
        return ES_ENOMEM;
    }
    uint64_t start = 0;
    for (uint32_t g = 0; g < n_segments; g++) {
        uint64_t N = segment_requests[g], k = N / window ? N / window : 1;
        for (uint64_t j = 0; j < k; j++)
            l->win[l->n_win++] = (wl_win){g, start + j * window, j + 1 < k ? window : N - j * window};
        start += N;
    }
    *out = l;
    return ES_OK;
}

void es_window_log_free(es_window_log *l)
{
    if (!l) return;
    free(l->win);
    free(l->acc);
    free(l);
}

uint32_t es_window_log_n_windows(const es_window_log *l) { return l->n_win; }

/* The window of request r (the last one whose start is at or before r). */
static uint32_t window_of(const es_window_log *l, uint64_t r)
{
    uint32_t lo = 0, hi = l->n_win;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (l->win[mid].start <= r) lo = mid;
        else hi = mid;
    }
    return lo;
}

void es_window_log_add(es_window_log *l, uint32_t row, uint64_t request, const es_request_figures *f)
{
    if (row >= l->rows) return;
    wl_acc *a = &l->acc[(size_t)row * l->n_win + window_of(l, request)];
    a->n++;
    a->correct += f->correct > 0;
    if (f->disagrees >= 0) {
        a->dis_known++;
        a->dis += f->disagrees > 0;
    }
    a->tokens += f->tokens;
    a->audit_tokens += f->audit_tokens;
    a->kv += f->kv_bytes;
    a->param += f->param;
    a->audits += f->audited != 0;
}

/* Whether window w meets the target: a cost within the budget; a
 * disagreement not significantly above it (unknown: met). */
static int met(const es_window_log *l, const es_sim_window *w)
{
    switch (l->kind) {
    case ES_TARGET_TOKENS: return w->tokens <= l->budget;
    case ES_TARGET_KV: return w->kv_peak <= l->budget;
    default: return !(w->disagreement_lo > l->budget);
    }
}

static void window_figures(const es_window_log *l, const wl_acc *a, uint32_t i, es_sim_window *w)
{
    double n = a->n ? (double)a->n : 1;
    *w = (es_sim_window){.segment = l->win[i].segment,
                         .start = l->win[i].start,
                         .requests = a->n,
                         .em = a->correct / n,
                         .tokens = a->tokens / n,
                         .kv_peak = a->kv / n,
                         .param = a->param / n,
                         .disagreement = a->dis_known ? (double)a->dis / (double)a->dis_known : NAN,
                         .disagreement_lo = NAN,
                         .disagreement_hi = NAN,
                         .audit_token_share = a->tokens > 0 ? a->audit_tokens / a->tokens : 0,
                         .audits = a->audits};
    if (a->dis_known) es_binomial_interval((double)a->dis, (double)a->dis_known, 0.95, &w->disagreement_lo, &w->disagreement_hi);
    w->target_met = met(l, w);
}

int es_window_log_every_window(const es_window_log *l, uint32_t row)
{
    for (uint32_t i = 0; i < l->n_win; i++) {
        es_sim_window w;
        window_figures(l, &l->acc[(size_t)row * l->n_win + i], i, &w);
        if (!w.target_met) return 0;
    }
    return 1;
}

/* Recovery after the shift into segment g: requests from its start to the
 * start of the first window after which all of its windows meet the
 * target; 0 when all do, -1 when its last one misses. */
static int64_t recovery(const es_window_log *l, const es_sim_window *ws, uint32_t g)
{
    int64_t last_bad = -1, first = -1, end = -1;
    for (uint32_t i = 0; i < l->n_win; i++) {
        if (l->win[i].segment != g) continue;
        if (first < 0) first = i;
        end = i;
        if (!ws[i].target_met) last_bad = i;
    }
    if (last_bad < 0) return 0;
    if (last_bad == end) return -1;
    return (int64_t)(l->win[last_bad + 1].start - l->win[first].start);
}

int es_window_log_row(const es_window_log *l, uint32_t row, const char *name, const char *spec, double param,
                      es_sim_row *out)
{
    memset(out, 0, sizeof *out);
    if (row >= l->rows) return ES_EINVAL;
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->spec, sizeof out->spec, "%s", spec ? spec : "");
    out->param = param;
    out->windows = calloc(l->n_win, sizeof *out->windows);
    if (!out->windows) return ES_ENOMEM;
    out->n_windows = l->n_win;
    wl_acc tot = {0}, late = {0};
    es_sim_summary *sum = &out->sum;
    for (uint32_t i = 0; i < l->n_win; i++) {
        const wl_acc *a = &l->acc[(size_t)row * l->n_win + i];
        window_figures(l, a, i, &out->windows[i]);
        sum->windows_met += (uint32_t)out->windows[i].target_met;
        tot.n += a->n, tot.correct += a->correct, tot.dis += a->dis, tot.dis_known += a->dis_known;
        tot.audits += a->audits, tot.tokens += a->tokens, tot.audit_tokens += a->audit_tokens, tot.kv += a->kv;
        if (i > 0 && l->win[i - 1].segment == l->win[i].segment) late.dis_known += a->dis_known, late.dis += a->dis;
    }
    double n = tot.n ? (double)tot.n : 1;
    sum->requests = tot.n;
    sum->audits = tot.audits;
    sum->em = tot.correct / n;
    sum->tokens = tot.tokens / n;
    sum->kv_peak = tot.kv / n;
    sum->disagreement = tot.dis_known ? (double)tot.dis / (double)tot.dis_known : NAN;
    sum->audit_token_share = tot.tokens > 0 ? tot.audit_tokens / tot.tokens : 0;
    sum->windows = l->n_win;
    sum->disagreement_late = late.dis_known ? (double)late.dis / (double)late.dis_known : NAN;
    for (uint32_t g = 1; g < l->n_segments && sum->n_recovery < 64; g++)
        sum->recovery[sum->n_recovery++] = recovery(l, out->windows, g);
    return ES_OK;
}

void es_sim_row_release(es_sim_row *row)
{
    if (!row) return;
    free(row->windows);
    row->windows = NULL;
    row->n_windows = 0;
}
