/*
 * sim_plot.c - `earlystop simulate --plot` (and `run --controller --plot`):
 * a self-contained SVG of the windows, two charts of svg.c stacked.  Top:
 * the target's measure per window (mean tokens or KV bytes per request, or
 * the disagreement with the full run with the controller's 95% band) for
 * the controller, the static threshold tuned on the first segment, the best
 * static in hindsight and the anchors, with the budget as a red line.
 * Bottom: the parameter each ran with.  Shifts are dashed vertical lines
 * named by their segment.  A measure spanning more than 20x is drawn on a
 * log scale.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_out.h"
#include "svg.h"

enum { W = 1000, H_TOP = 410, H_BOTTOM = 230 };

static const char *const BUDGET_COLOUR = "#d62728";

/* The measure the target constrains, for one window. */
static double measure(const es_controller_opts *co, const es_sim_window *w)
{
    return co->target == ES_TARGET_TOKENS ? w->tokens : co->target == ES_TARGET_KV ? w->kv_peak : w->disagreement;
}

/* What a window shows: its measure (x scale, in [lo, hi]: a row far above
 * the range is drawn along its edge) or its parameter. */
static double shown(const es_controller_opts *co, const es_sim_window *w, int param, double scale, double lo,
                    double hi)
{
    double v = param ? w->param : scale * measure(co, w);
    return isfinite(v) ? fmin(fmax(v, lo), hi) : v;
}

/* Each row as a line, a flat step per window across its requests; row 0
 * (the controller) wider and on top, followed in the legend by its band
 * when `band` (em-loss).  Both charts add the rows alike, so that a row
 * keeps its colour and dashes. */
static int add_rows(svg_plot *p, const es_sim_row *const *rows, uint32_t n, const es_controller_opts *co, int param,
                    double scale, double lo, double hi, int band)
{
    int rc = 0;
    for (uint32_t k = 0; k < n && !rc; k++) {
        const es_sim_row *row = rows[k];
        size_t m = 2 * (size_t)row->n_windows;
        double *x = malloc((m + 1) * sizeof *x), *y = malloc((m + 1) * sizeof *y),
               *y2 = malloc((m + 1) * sizeof *y2);
        if (!x || !y || !y2) rc = -1;
        for (uint32_t i = 0; i < row->n_windows && !rc; i++) {
            const es_sim_window *w = &row->windows[i];
            x[2 * i] = (double)w->start;
            x[2 * i + 1] = (double)(w->start + w->requests);
            y[2 * i] = y[2 * i + 1] = shown(co, w, param, scale, lo, hi);
        }
        char name[256], label[300];
        sim_row_name(row, name, sizeof name);
        if (isfinite(row->param)) snprintf(label, sizeof label, "%s %.4g", name, row->param);
        else snprintf(label, sizeof label, "%s", name);
        if (!rc) rc = svg_plot_series(p, param ? NULL : label, SVG_LINE, x, y, m, NULL, SVG_NONE);
        if (!rc) svg_plot_style(p, k ? 1.4 : 2.2, NULL);
        if (!rc && !k) svg_plot_on_top(p);
        if (!rc && !k && band) {
            for (uint32_t i = 0; i < row->n_windows; i++) {
                const es_sim_window *w = &row->windows[i];
                y[2 * i] = y[2 * i + 1] = fmin(fmax(scale * w->disagreement_lo, lo), hi);
                y2[2 * i] = y2[2 * i + 1] = fmin(fmax(scale * w->disagreement_hi, lo), hi);
            }
            rc = svg_plot_band(p, "controller's 95% interval", x, y, y2, m, NULL);
        }
        free(x);
        free(y);
        free(y2);
    }
    return rc;
}

/* A segment's name as a label: each file of a mix without its directory
 * and ".jsonl". */
static void segment_label(const char *seg, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    while (*seg && o + 1 < cap) {
        size_t n = strcspn(seg, "+");
        const char *base = seg;
        for (const char *c = seg; c < seg + n; c++)
            if (*c == '/') base = c + 1;
        size_t b = (size_t)(seg + n - base);
        if (b > 6 && !memcmp(base + b - 6, ".jsonl", 6)) b -= 6;
        o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o ? "+" : "", (int)b, base);
        if (o >= cap) break;
        seg += n + (seg[n] == '+');
    }
}

/* The measure's range over every row and the budget; em-loss up to 4x the
 * bound (or the controller's highest), so that a static row far above does
 * not flatten the rest. */
static void measure_range(const es_sim_row *const *rows, uint32_t n, const es_controller_opts *co, double *lo,
                          double *hi, int *log_scale)
{
    int em = co->target == ES_TARGET_EM_LOSS;
    *lo = *hi = co->budget;
    for (uint32_t k = 0; k < n; k++)
        for (uint32_t i = 0; i < rows[k]->n_windows; i++) {
            const es_sim_window *w = &rows[k]->windows[i];
            double v = em && !k ? w->disagreement_hi : measure(co, w);
            if (!isfinite(v)) continue;
            if (v > *hi) *hi = v;
            if (v < *lo && (v > 0 || em)) *lo = v;
        }
    if (em) {
        double top = 4 * co->budget;
        for (uint32_t i = 0; i < rows[0]->n_windows; i++) top = fmax(top, 1.1 * rows[0]->windows[i].disagreement_hi);
        *hi = fmin(*hi, top);
    }
    *log_scale = !em && *lo > 0 && *hi / *lo > 20;
    if (*log_scale) {
        *lo /= 1.3;
        *hi *= 1.3;
        return;
    }
    double pad = (*hi - *lo) * 0.08 + (*hi == *lo ? fabs(*hi) * 0.1 + 1e-9 : 0);
    *lo = em || *lo - pad < 0 ? 0 : *lo - pad;
    *hi += pad;
}

static int draw(FILE *fp, const es_sim_row *const *rows, uint32_t n, const char *const *segments, uint32_t n_seg,
                const es_controller_opts *co, svg_plot *top, svg_plot *bottom, const char *title)
{
    const es_sim_row *ctl = rows[0];
    const es_sim_window *last = &ctl->windows[ctl->n_windows - 1];
    double total = (double)(last->start + last->requests), scale = co->target == ES_TARGET_EM_LOSS ? 100 : 1;
    if (!(total > 0)) total = 1;
    double lo, hi, plo = INFINITY, phi = -INFINITY;
    int log_scale;
    measure_range(rows, n, co, &lo, &hi, &log_scale);
    for (uint32_t k = 0; k < n; k++)
        for (uint32_t i = 0; i < rows[k]->n_windows; i++) {
            double v = rows[k]->windows[i].param;
            if (isfinite(v)) plo = fmin(plo, v), phi = fmax(phi, v);
        }
    if (!(plo <= phi)) plo = 0, phi = 1;
    double ppad = (phi - plo) * 0.1 + (phi == plo ? 0.05 : 0);

    svg_plot_log_y(top, log_scale);
    svg_plot_range(top, 0, total, scale * lo, scale * hi);
    svg_plot_range(bottom, 0, total, plo - ppad, phi + ppad);
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        svg_plot *p = k ? bottom : top;
        svg_plot_dashes(p, 1);
        rc = svg_plot_reserve(p, BUDGET_COLOUR);
        if (!rc) rc = add_rows(p, rows, n, co, k, k ? 1 : scale, k ? -INFINITY : scale * lo, k ? INFINITY : scale * hi,
                               !k && co->target == ES_TARGET_EM_LOSS);
    }
    double bx[2] = {0, total}, by[2] = {scale * co->budget, scale * co->budget};
    if (!rc) rc = svg_plot_series(top, "budget", SVG_LINE, bx, by, 2, BUDGET_COLOUR, SVG_NONE);
    svg_plot_style(top, 1.5, NULL);
    /* the shifts: a line where each segment starts, named on top */
    uint64_t at = 0;
    for (uint32_t g = 0; g < n_seg && !rc; g++) {
        char label[256];
        segment_label(segments[g], label, sizeof label);
        rc = svg_plot_vline(top, (double)at, label);
        if (!rc) rc = svg_plot_vline(bottom, (double)at, NULL);
        for (uint32_t i = 0; i < ctl->n_windows; i++)
            if (ctl->windows[i].segment == g) at = ctl->windows[i].start + ctl->windows[i].requests;
    }
    if (!rc) rc = svg_doc_begin(fp, W, H_TOP + H_BOTTOM, title);
    if (!rc) rc = svg_plot_draw(top, fp, 0, 0, W, H_TOP, 0);
    if (!rc) rc = svg_plot_draw(bottom, fp, 0, H_TOP, W, H_BOTTOM, 1);
    return rc ? rc : svg_doc_end(fp);
}

int sim_plot_rows(FILE *fp, const es_sim_row *const *rows, uint32_t n, const char *const *segments, uint32_t n_seg,
                  const es_controller_opts *co, const char *param_name)
{
    int em = co->target == ES_TARGET_EM_LOSS;
    char title[256];
    snprintf(title, sizeof title, "online controller: %s <= %g%s, window %u",
             em ? "disagreement" : co->target == ES_TARGET_KV ? "KV bytes/request" : "tokens/request",
             em ? co->budget * 100 : co->budget, em ? " pts" : "", co->window);
    svg_plot *top = svg_plot_new(title, "", em ? "disagreement with the full run (%)"
                                            : co->target == ES_TARGET_KV ? "KV bytes per request" : "tokens per request");
    svg_plot *bottom = svg_plot_new("", "requests", param_name);
    int rc = top && bottom ? draw(fp, rows, n, segments, n_seg, co, top, bottom, title) : -1;
    svg_plot_free(top);
    svg_plot_free(bottom);
    return rc;
}
