/*
 * sim_plot.c - `earlystop simulate --plot`: a self-contained SVG of the
 * windows.  Top: the target's measure per window (mean tokens or KV bytes
 * per request, or the disagreement with the full run with the controller's
 * 95% band) for the controller, the static threshold tuned on the first
 * segment, the best static in hindsight and the anchors, with the budget
 * as a red line.  Bottom: the parameter each ran with.  Shifts are dashed
 * vertical lines named by their segment.  A measure spanning more than 20x
 * is drawn on a log scale.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim_out.h"

enum { W = 1000, H = 640, L = 90, R = 240, T = 50, PH1 = 330, GAP = 60, PH2 = 150 };

typedef struct axis {
    double lo, hi;
    int log;
    double px0, px1; /* pixel of lo, of hi */
} axis;

static double map(const axis *a, double v)
{
    double f = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return a->px0 + f * (a->px1 - a->px0);
}

/* 1, 2, 5 x 10^k steps, about n of them. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt(double v, char *buf, size_t cap)
{
    double a = fabs(v);
    if (a >= 1e9) snprintf(buf, cap, "%gG", v / 1e9);
    else if (a >= 1e6) snprintf(buf, cap, "%gM", v / 1e6);
    else if (a >= 1e4) snprintf(buf, cap, "%gk", v / 1e3);
    else snprintf(buf, cap, "%g", v);
}

static void text(FILE *fp, double x, double y, const char *anchor, int size, const char *fill, const char *s)
{
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" fill=\"%s\">", x, y, anchor, size,
            fill);
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", fp);
        else if (*s == '>') fputs("&gt;", fp);
        else if (*s == '&') fputs("&amp;", fp);
        else fputc(*s, fp);
    }
    fputs("</text>\n", fp);
}

/* Ticks and grid of a y axis. */
static void y_axis(FILE *fp, const axis *a, const char *label, double scale)
{
    char buf[64];
    if (a->log) {
        for (double p = pow(10, floor(log10(a->lo))); p <= a->hi * 1.0001; p *= 10)
            for (int m = 1; m < 10; m += (m == 1 ? 1 : 3)) {
                double v = p * m;
                if (v < a->lo || v > a->hi) continue;
                double y = map(a, v);
                fprintf(fp, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n", L, y, W - R, y);
                fmt(v * scale, buf, sizeof buf);
                text(fp, L - 6, y + 4, "end", 11, "#333", buf);
            }
    } else {
        double step = nice_step(a->hi - a->lo, 5);
        for (double v = ceil(a->lo / step) * step; v <= a->hi + step * 1e-9; v += step) {
            double y = map(a, v);
            fprintf(fp, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n", L, y, W - R, y);
            fmt(fabs(v) < step * 1e-9 ? 0 : v * scale, buf, sizeof buf);
            text(fp, L - 6, y + 4, "end", 11, "#333", buf);
        }
    }
    double mid = (a->px0 + a->px1) / 2;
    fprintf(fp, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" fill=\"#333\" "
                "transform=\"rotate(-90 %d %.1f)\">%s</text>\n",
            22, mid, 22, mid, label);
}

/* The measure the target constrains, for one window. */
static double measure(const es_controller_opts *co, const es_sim_window *w)
{
    return co->target == ES_TARGET_TOKENS ? w->tokens : co->target == ES_TARGET_KV ? w->kv_peak : w->disagreement;
}

static void polyline(FILE *fp, const es_sim_row *row, const axis *x, const axis *y, const es_controller_opts *co,
                     int param, const char *color, const char *dash, double width)
{
    fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s%s points=\"", color, width,
            dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
    for (uint32_t i = 0; i < row->n_windows; i++) {
        const es_sim_window *w = &row->windows[i];
        double v = param ? w->param : measure(co, w);
        if (y->log && !(v > 0)) continue;
        if (!isfinite(v)) continue;
        double yy = map(y, v < y->lo ? y->lo : v > y->hi ? y->hi : v);
        /* a step per window: flat across its requests */
        fprintf(fp, "%.1f,%.1f %.1f,%.1f ", map(x, (double)w->start), yy, map(x, (double)(w->start + w->requests)), yy);
    }
    fputs("\"/>\n", fp);
}

static void legend(FILE *fp, int i, const char *color, const char *dash, const char *label)
{
    double y = T + 14 + 20 * i, x = W - R + 14;
    fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s%s%s/>\n", x,
            y - 4, x + 26, y - 4, color, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
    char buf[48];
    snprintf(buf, sizeof buf, "%.34s", label);
    text(fp, x + 32, y, "start", 11, "#333", buf);
}

static const char *const COLORS[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#7f7f7f", "#8c564b", "#bcbd22"};
static const char *const DASHES[] = {NULL, "7,4", "2,3", "8,3,2,3", "4,2,1,2", "1,2", "6,2"};

void sim_plot_rows(FILE *fp, const es_sim_row *const *rows, uint32_t n, const char *const *segments, uint32_t n_seg,
                   const es_controller_opts *co, const char *param_name)
{
    const es_sim_row *ctl = rows[0];
    const es_sim_window *last = &ctl->windows[ctl->n_windows - 1];
    uint64_t total = last->start + last->requests;
    axis x = {0, (double)(total ? total : 1), 0, L, W - R};
    int em = co->target == ES_TARGET_EM_LOSS;
    /* the measure's range over every row, and the budget */
    double lo = co->budget, hi = co->budget;
    for (uint32_t k = 0; k < n; k++) {
        const es_sim_row *row = rows[k];
        for (uint32_t i = 0; i < row->n_windows; i++) {
            double v = measure(co, &row->windows[i]);
            if (!isfinite(v)) continue;
            if (em && k == 0) v = row->windows[i].disagreement_hi;
            if (v > hi) hi = v;
            if (v < lo && (v > 0 || em)) lo = v;
        }
    }
    /* em-loss: up to 4x the bound (or the controller's highest), so that a
     * static row far above does not flatten the rest; it is drawn at the
     * top edge */
    if (em) {
        double top = 4 * co->budget;
        for (uint32_t i = 0; i < ctl->n_windows; i++) top = fmax(top, 1.1 * ctl->windows[i].disagreement_hi);
        hi = fmin(hi, top);
    }
    axis y1 = {em ? 0 : lo, hi, !em && lo > 0 && hi / lo > 20, T + PH1, T};
    if (y1.log) y1.lo /= 1.3, y1.hi *= 1.3;
    else {
        double pad = (y1.hi - y1.lo) * 0.08 + (y1.hi == y1.lo ? fabs(y1.hi) * 0.1 + 1e-9 : 0);
        y1.lo = em || y1.lo - pad < 0 ? 0 : y1.lo - pad;
        y1.hi += pad;
    }
    double plo = INFINITY, phi = -INFINITY;
    for (uint32_t k = 0; k < n; k++) {
        const es_sim_row *row = rows[k];
        for (uint32_t i = 0; i < row->n_windows; i++) {
            double v = row->windows[i].param;
            if (isfinite(v)) plo = fmin(plo, v), phi = fmax(phi, v);
        }
    }
    if (!(plo <= phi)) plo = 0, phi = 1;
    double ppad = (phi - plo) * 0.1 + (phi == plo ? 0.05 : 0);
    axis y2 = {plo - ppad, phi + ppad, 0, T + PH1 + GAP + PH2, T + PH1 + GAP};

    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    char title[256];
    snprintf(title, sizeof title, "online controller: %s <= %g%s, window %u", em ? "disagreement" :
             co->target == ES_TARGET_KV ? "KV bytes/request" : "tokens/request",
             em ? co->budget * 100 : co->budget, em ? " pts" : "", co->window);
    text(fp, L, 28, "start", 15, "#111", title);
    y_axis(fp, &y1, em ? "disagreement with the full run (%)" : co->target == ES_TARGET_KV ? "KV bytes per request"
                                                                                          : "tokens per request",
           em ? 100 : 1);
    y_axis(fp, &y2, param_name, 1);
    /* x axis under each panel */
    double step = nice_step(x.hi, 8);
    char buf[64];
    for (double v = 0; v <= x.hi + 1e-9; v += step) {
        double px = map(&x, v);
        fmt(v, buf, sizeof buf);
        text(fp, px, T + PH1 + GAP + PH2 + 16, "middle", 11, "#333", buf);
        text(fp, px, T + PH1 + 16, "middle", 11, "#333", buf);
    }
    text(fp, (L + W - R) / 2.0, H - 8, "middle", 12, "#333", "requests");
    /* shifts */
    uint64_t at = 0;
    for (uint32_t g = 0; g < n_seg; g++) {
        double px = map(&x, (double)at);
        if (g)
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\" stroke-dasharray=\"5,4\"/>\n",
                    px, T, px, T + PH1 + GAP + PH2);
        snprintf(buf, sizeof buf, "%.28s", segments[g]);
        text(fp, px + 4, T - 6, "start", 10, "#555", buf);
        for (uint32_t i = 0; i < ctl->n_windows; i++)
            if (ctl->windows[i].segment == g) at = ctl->windows[i].start + ctl->windows[i].requests;
    }
    /* em-loss: the controller's 95% band */
    if (em) {
        fputs("<polygon fill=\"#1f77b4\" fill-opacity=\"0.15\" stroke=\"none\" points=\"", fp);
        for (uint32_t i = 0; i < ctl->n_windows; i++) {
            const es_sim_window *w = &ctl->windows[i];
            fprintf(fp, "%.1f,%.1f %.1f,%.1f ", map(&x, (double)w->start), map(&y1, fmin(w->disagreement_hi, y1.hi)),
                    map(&x, (double)(w->start + w->requests)), map(&y1, fmin(w->disagreement_hi, y1.hi)));
        }
        for (uint32_t i = ctl->n_windows; i-- > 0;) {
            const es_sim_window *w = &ctl->windows[i];
            fprintf(fp, "%.1f,%.1f %.1f,%.1f ", map(&x, (double)(w->start + w->requests)), map(&y1, w->disagreement_lo),
                    map(&x, (double)w->start), map(&y1, w->disagreement_lo));
        }
        fputs("\"/>\n", fp);
    }
    /* the budget */
    double by = map(&y1, co->budget);
    fprintf(fp, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n", L, by,
            W - R, by);
    /* rows, the controller last (on top) */
    for (uint32_t k = n; k-- > 0;) {
        const es_sim_row *row = rows[k];
        uint32_t c = k < 7 ? k : 6;
        polyline(fp, row, &x, &y1, co, 0, COLORS[c], DASHES[c], k == 0 ? 2.2 : 1.4);
        polyline(fp, row, &x, &y2, co, 1, COLORS[c], DASHES[c], k == 0 ? 2.2 : 1.4);
    }
    /* frames */
    fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", L, T, W - R - L,
            PH1);
    fprintf(fp, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", L,
            T + PH1 + GAP, W - R - L, PH2);
    /* legend */
    for (uint32_t k = 0; k < n; k++) {
        const es_sim_row *row = rows[k];
        char lab[96];
        if (isfinite(row->param)) snprintf(lab, sizeof lab, "%.60s %.4g", row->name, row->param);
        else if (strcmp(row->name, "anchor")) snprintf(lab, sizeof lab, "%.90s", row->name);
        else snprintf(lab, sizeof lab, "%.*s", (int)strcspn(row->spec, ","), row->spec); /* "esc:window=5" */
        uint32_t c = k < 7 ? k : 6;
        legend(fp, (int)k, COLORS[c], DASHES[c], lab);
    }
    fprintf(fp, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n",
            W - R + 14, T + 10 + 20 * (int)n, W - R + 40, T + 10 + 20 * (int)n);
    text(fp, W - R + 46, T + 14 + 20 * (int)n, "start", 11, "#333", "budget");
    fputs("</svg>\n", fp);
}
