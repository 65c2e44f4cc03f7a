/*
 * svg.c - x-y charts as a self-contained SVG (see svg.h).
 *
 * Layout of a chart in its rectangle: the title on top, the plot area on
 * the left with its ticks and grid, the legend on the right, notes under
 * the x label.  Series are drawn inside a clip path of the plot area, so a
 * range set by the caller cuts them cleanly.  Ticks fall on 1, 2, 5 x 10^k
 * on both linear and log axes.  The legend's room is kept even when it is
 * empty, so that charts stacked in one document line their x axes up.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "svg.h"

enum { MAX_NOTES = 4, MAX_RESERVED = 4 };

typedef struct svg_series {
    char *label;
    svg_kind kind;
    double *x, *y;
    double *y2; /* a band's upper edge (y its lower); NULL for a line */
    size_t n;
    char colour[8];
    svg_marker marker;
    double width;
    char dash[16];
    int top; /* drawn after the others */
} svg_series;

/* A text at a point, or (vline) a marker line at x with its label. */
typedef struct svg_text {
    double x, y;
    char *text;
} svg_text;

typedef struct svg_texts {
    svg_text *t;
    size_t n, cap;
} svg_texts;

struct svg_plot {
    char *title, *xlabel, *ylabel;
    int log_x, log_y, dashes;
    double x0, x1, y0, y1;
    char *notes[MAX_NOTES];
    int n_notes;
    svg_series *s;
    size_t n, cap;
    svg_texts t, v;
    size_t next_colour;
    char reserved[MAX_RESERVED][8];
    int n_reserved;
};

/* Tableau's ten colours: distinct, and readable on white and in grey. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
enum { N_PALETTE = sizeof palette / sizeof palette[0] };
/* Dash patterns for svg_plot_dashes; seven against ten colours, so that
 * colour and pattern repeat together only after seventy series. */
static const char *const dash_cycle[] = {"", "7 4", "2 3", "8 3 2 3", "4 2 1 2", "1 2", "6 2"};
enum { N_DASH = sizeof dash_cycle / sizeof dash_cycle[0] };

static char *dup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

svg_plot *svg_plot_new(const char *title, const char *xlabel, const char *ylabel)
{
    svg_plot *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->title = dup(title ? title : "");
    p->xlabel = dup(xlabel ? xlabel : "");
    p->ylabel = dup(ylabel ? ylabel : "");
    p->x0 = p->x1 = p->y0 = p->y1 = NAN;
    if (!p->title || !p->xlabel || !p->ylabel) {
        svg_plot_free(p);
        return NULL;
    }
    return p;
}

void svg_plot_free(svg_plot *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->s[i].label);
        free(p->s[i].x);
        free(p->s[i].y);
        free(p->s[i].y2);
    }
    for (size_t i = 0; i < p->t.n; i++) free(p->t.t[i].text);
    for (size_t i = 0; i < p->v.n; i++) free(p->v.t[i].text);
    for (int i = 0; i < p->n_notes; i++) free(p->notes[i]);
    free(p->s);
    free(p->t.t);
    free(p->v.t);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    free(p);
}

void svg_plot_log_x(svg_plot *p, int on) { p->log_x = on != 0; }

void svg_plot_log_y(svg_plot *p, int on) { p->log_y = on != 0; }

void svg_plot_dashes(svg_plot *p, int on) { p->dashes = on != 0; }

int svg_plot_reserve(svg_plot *p, const char *colour)
{
    if (p->n_reserved == MAX_RESERVED) return -1;
    snprintf(p->reserved[p->n_reserved++], sizeof p->reserved[0], "%s", colour);
    return 0;
}

void svg_plot_on_top(svg_plot *p)
{
    if (p->n) p->s[p->n - 1].top = 1;
}

void svg_plot_range(svg_plot *p, double x0, double x1, double y0, double y1)
{
    p->x0 = x0;
    p->x1 = x1;
    p->y0 = y0;
    p->y1 = y1;
}

int svg_plot_note(svg_plot *p, const char *text)
{
    if (p->n_notes == MAX_NOTES) return -1;
    if (!(p->notes[p->n_notes] = dup(text))) return -1;
    p->n_notes++;
    return 0;
}

static int is_reserved(const svg_plot *p, const char *colour)
{
    for (int i = 0; i < p->n_reserved; i++)
        if (!strcmp(p->reserved[i], colour)) return 1;
    return 0;
}

/* The next palette colour not reserved (at most 4 of 10 are), and with
 * svg_plot_dashes its dash pattern. */
static void auto_style(svg_plot *p, svg_series *s)
{
    size_t c;
    do c = p->next_colour++;
    while (is_reserved(p, palette[c % N_PALETTE]));
    snprintf(s->colour, sizeof s->colour, "%s", palette[c % N_PALETTE]);
    if (p->dashes) snprintf(s->dash, sizeof s->dash, "%s", dash_cycle[c % N_DASH]);
    /* past the palette, the colours come back dashed */
    else if (c >= N_PALETTE) snprintf(s->dash, sizeof s->dash, "6 3");
}

/* A series of the points where x, y (and y2, for a band) are finite and,
 * on a log axis, > 0: such an axis cannot place the others. */
static int add_series(svg_plot *p, const char *label, svg_kind kind, const double *x, const double *y,
                      const double *y2, size_t n, const char *colour, svg_marker marker)
{
    if (p->n == p->cap) {
        size_t c = p->cap ? 2 * p->cap : 16;
        svg_series *s = realloc(p->s, c * sizeof *s);
        if (!s) return -1;
        p->s = s;
        p->cap = c;
    }
    svg_series *s = &p->s[p->n];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->marker = marker;
    s->width = 1.8;
    s->x = malloc((n + 1) * sizeof *s->x);
    s->y = malloc((n + 1) * sizeof *s->y);
    s->y2 = y2 ? malloc((n + 1) * sizeof *s->y2) : NULL;
    s->label = label ? dup(label) : NULL;
    if (!s->x || !s->y || (y2 && !s->y2) || (label && !s->label)) {
        free(s->x);
        free(s->y);
        free(s->y2);
        free(s->label);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int ok = isfinite(x[i]) && isfinite(y[i]) && (!p->log_x || x[i] > 0) && (!p->log_y || y[i] > 0);
        if (y2) ok = ok && isfinite(y2[i]) && (!p->log_y || y2[i] > 0);
        if (!ok) continue;
        s->x[s->n] = x[i];
        if (y2) s->y2[s->n] = y2[i];
        s->y[s->n++] = y[i];
    }
    if (colour) snprintf(s->colour, sizeof s->colour, "%s", colour);
    else auto_style(p, s);
    p->n++;
    return 0;
}

int svg_plot_series(svg_plot *p, const char *label, svg_kind kind, const double *x, const double *y, size_t n,
                    const char *colour, svg_marker marker)
{
    return add_series(p, label, kind, x, y, NULL, n, colour, marker);
}

int svg_plot_band(svg_plot *p, const char *label, const double *x, const double *lo, const double *hi, size_t n,
                  const char *colour)
{
    if (!colour) colour = p->n ? p->s[p->n - 1].colour : palette[0];
    char c[8];
    snprintf(c, sizeof c, "%s", colour); /* p->s may move */
    return add_series(p, label, SVG_LINE, x, lo, hi, n, c, SVG_NONE);
}

void svg_plot_style(svg_plot *p, double width, const char *dash)
{
    if (!p->n) return;
    svg_series *s = &p->s[p->n - 1];
    if (width > 0) s->width = width;
    if (dash) snprintf(s->dash, sizeof s->dash, "%s", dash);
}

int svg_plot_point(svg_plot *p, const char *label, double x, double y, const char *colour, svg_marker marker)
{
    return svg_plot_series(p, label, SVG_POINTS, &x, &y, 1, colour ? colour : "#000000", marker);
}

static int add_text(svg_texts *ts, double x, double y, const char *text)
{
    if (ts->n == ts->cap) {
        size_t c = ts->cap ? 2 * ts->cap : 8;
        svg_text *t = realloc(ts->t, c * sizeof *t);
        if (!t) return -1;
        ts->t = t;
        ts->cap = c;
    }
    ts->t[ts->n].text = NULL;
    if (text && !(ts->t[ts->n].text = dup(text))) return -1;
    ts->t[ts->n].x = x;
    ts->t[ts->n].y = y;
    ts->n++;
    return 0;
}

int svg_plot_text(svg_plot *p, double x, double y, const char *text) { return add_text(&p->t, x, y, text); }

int svg_plot_vline(svg_plot *p, double x, const char *label) { return add_text(&p->v, x, NAN, label); }

/* ------------------------------------------------------------- drawing */

/* Text with the five XML specials escaped. */
static void put_text(FILE *fp, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&#39;", fp); break;
        default: fputc(*s, fp);
        }
    }
}

/* The geometry: the data range and where the plot area lies. */
typedef struct frame {
    double x0, x1, y0, y1;       /* data range (in log10 on a log axis) */
    double left, top, w, h;      /* plot area in pixels */
    int log_x, log_y;
} frame;

static double px(const frame *f, double x)
{
    double v = f->log_x ? log10(x) : x;
    return f->left + (v - f->x0) / (f->x1 - f->x0) * f->w;
}

static double py(const frame *f, double y)
{
    double v = f->log_y ? log10(y) : y;
    return f->top + f->h - (v - f->y0) / (f->y1 - f->y0) * f->h;
}

/* The data's extent over every series (and text anchor). */
static void extent(const svg_plot *p, double *x0, double *x1, double *y0, double *y1)
{
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (size_t i = 0; i < p->n; i++)
        for (size_t k = 0; k < p->s[i].n; k++) {
            double x = p->s[i].x[k], y = p->s[i].y[k], y2 = p->s[i].y2 ? p->s[i].y2[k] : y;
            if (x < *x0) *x0 = x;
            if (x > *x1) *x1 = x;
            if (fmin(y, y2) < *y0) *y0 = fmin(y, y2);
            if (fmax(y, y2) > *y1) *y1 = fmax(y, y2);
        }
    if (!isfinite(*x0)) *x0 = p->log_x ? 0.1 : 0, *x1 = 1;
    if (!isfinite(*y0)) *y0 = p->log_y ? 0.1 : 0, *y1 = 1;
}

/* A range with room around the data; a point alone gets a unit around it. */
static void pad(double *lo, double *hi, int log_axis)
{
    if (log_axis) {
        double a = log10(*lo), b = log10(*hi), m = b > a ? (b - a) * 0.04 : 0.5;
        *lo = a - m;
        *hi = b + m;
        return;
    }
    double m = *hi > *lo ? (*hi - *lo) * 0.04 : (*lo != 0 ? fabs(*lo) * 0.1 : 1);
    *lo -= m;
    *hi += m;
}

/* The 1-2-5 step nearest raw. */
static double nice_step(double raw)
{
    double e = pow(10, floor(log10(raw))), f = raw / e;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * e;
}

/* Ticks of a linear range, about `target` of them; returns the count. */
static size_t linear_ticks(double lo, double hi, int target, double *t, size_t cap, int *decimals)
{
    double step = nice_step((hi - lo) / target);
    *decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    size_t n = 0;
    for (double v = ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9 && n < cap; v += step)
        t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

/* Ticks of a log range (given in log10): m x 10^k with m in 1..9 on a
 * range under a decade and a bit, 1, 2, 5 up to a few decades, else the
 * powers of ten only. */
static size_t log_ticks(double lo, double hi, double *t, size_t cap)
{
    static const double m9[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, m3[] = {1, 2, 5}, m1[] = {1};
    const double *m = hi - lo < 1.2 ? m9 : hi - lo < 2.5 ? m3 : m1;
    size_t nm = hi - lo < 1.2 ? 9 : hi - lo < 2.5 ? 3 : 1, n = 0;
    for (int k = (int)floor(lo); k <= (int)ceil(hi) && n < cap; k++)
        for (size_t j = 0; j < nm && n < cap; j++) {
            double v = m[j] * pow(10, k), l = log10(v);
            if (l >= lo - 1e-9 && l <= hi + 1e-9) t[n++] = v;
        }
    return n;
}

/* A tick's label: 12k, 1.5M, 2G from 10^4 on; below, %g on a log axis and
 * the step's decimals on a linear one. */
static void tick_label(double v, int log_axis, int decimals, char *buf, size_t cap)
{
    double a = fabs(v);
    if (a >= 1e9) snprintf(buf, cap, "%gG", v / 1e9);
    else if (a >= 1e6) snprintf(buf, cap, "%gM", v / 1e6);
    else if (a >= 1e4) snprintf(buf, cap, "%gk", v / 1e3);
    else if (log_axis) snprintf(buf, cap, "%g", v);
    else snprintf(buf, cap, "%.*f", decimals, v);
}

static void marker(FILE *fp, svg_marker m, double x, double y, const char *colour)
{
    switch (m) {
    case SVG_NONE: break;
    case SVG_DOT: fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\"/>\n", x, y, colour); break;
    case SVG_SQUARE:
        fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\" stroke=\"#ffffff\" "
                    "stroke-width=\"1\"/>\n", x - 5, y - 5, colour);
        break;
    case SVG_DIAMOND:
        fprintf(fp, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"#ffffff\" "
                    "stroke-width=\"1\"/>\n", x, y - 7, x + 7, y, x, y + 7, x - 7, y, colour);
        break;
    case SVG_TRIANGLE:
        fprintf(fp, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"#ffffff\" "
                    "stroke-width=\"1\"/>\n", x, y - 7, x + 6.5, y + 5, x - 6.5, y + 5, colour);
        break;
    case SVG_STAR:
        fputs("<polygon points=\"", fp);
        for (int i = 0; i < 10; i++) {
            double r = i % 2 ? 3.4 : 8, a = -M_PI / 2 + i * M_PI / 5;
            fprintf(fp, "%s%.1f,%.1f", i ? " " : "", x + r * cos(a), y + r * sin(a));
        }
        fprintf(fp, "\" fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"0.8\"/>\n", colour);
        break;
    case SVG_RING:
        fprintf(fp, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"9\" fill=\"none\" stroke=\"%s\" stroke-width=\"2.6\"/>\n", x,
                y, colour);
        break;
    }
}

/* A band: the upper edge left to right, the lower one back. */
static void band_path(FILE *fp, const frame *f, const svg_series *s)
{
    fprintf(fp, "<polygon fill=\"%s\" fill-opacity=\"0.15\" stroke=\"none\" points=\"", s->colour);
    for (size_t k = 0; k < s->n; k++) fprintf(fp, "%s%.1f,%.1f", k ? " " : "", px(f, s->x[k]), py(f, s->y2[k]));
    for (size_t k = s->n; k-- > 0;) fprintf(fp, " %.1f,%.1f", px(f, s->x[k]), py(f, s->y[k]));
    fputs("\"/>\n", fp);
}

static void series_path(FILE *fp, const frame *f, const svg_series *s)
{
    if (s->y2) {
        if (s->n >= 2) band_path(fp, f, s);
        return;
    }
    if (s->kind == SVG_POINTS || s->n < 2) return;
    fprintf(fp, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-linejoin=\"round\"%s%s%s "
                "points=\"", s->colour, s->width, s->dash[0] ? " stroke-dasharray=\"" : "", s->dash,
            s->dash[0] ? "\"" : "");
    for (size_t k = 0; k < s->n; k++) {
        if (k && s->kind == SVG_STEP) fprintf(fp, " %.1f,%.1f", px(f, s->x[k]), py(f, s->y[k - 1]));
        fprintf(fp, "%s%.1f,%.1f", k ? " " : "", px(f, s->x[k]), py(f, s->y[k]));
    }
    fputs("\"/>\n", fp);
}

static void axes(FILE *fp, const svg_plot *p, const frame *f)
{
    double t[64];
    int dec = 0;
    char lab[32];
    size_t n = f->log_x ? log_ticks(f->x0, f->x1, t, 64) : linear_ticks(f->x0, f->x1, 6, t, 64, &dec);
    fputs("<g font-size=\"12\" fill=\"#333333\">\n", fp);
    for (size_t i = 0; i < n; i++) {
        double x = px(f, t[i]);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x, f->top, x,
                f->top + f->h);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", x, f->top + f->h,
                x, f->top + f->h + 5);
        tick_label(t[i], f->log_x, dec, lab, sizeof lab);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, f->top + f->h + 19, lab);
    }
    /* a short panel gets fewer rows of ticks */
    n = f->log_y ? log_ticks(f->y0, f->y1, t, 64) : linear_ticks(f->y0, f->y1, f->h < 200 ? 4 : 6, t, 64, &dec);
    for (size_t i = 0; i < n; i++) {
        double y = py(f, t[i]);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", f->left, y,
                f->left + f->w, y);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", f->left - 5, y,
                f->left, y);
        tick_label(t[i], f->log_y, dec, lab, sizeof lab);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", f->left - 8, y + 4, lab);
    }
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
            f->left, f->top, f->w, f->h);
    fputs("</g>\n", fp);
    if (p->xlabel[0]) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">", f->left + f->w / 2,
                f->top + f->h + 40);
        put_text(fp, p->xlabel);
        fputs("</text>\n", fp);
    }
    if (p->ylabel[0]) {
        fprintf(fp, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">",
                f->left - 52, f->top + f->h / 2);
        put_text(fp, p->ylabel);
        fputs("</text>\n", fp);
    }
}

/* The marker lines across the plot area, under the data. */
static void vlines(FILE *fp, const svg_plot *p, const frame *f)
{
    for (size_t i = 0; i < p->v.n; i++) {
        double x = p->v.t[i].x;
        if (p->log_x && !(x > 0)) continue;
        double v = px(f, x);
        if (v > f->left + 0.5 && v < f->left + f->w - 0.5)
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999999\" "
                        "stroke-dasharray=\"5 4\"/>\n", v, f->top, v, f->top + f->h);
    }
}

/* Their labels above the plot area, each cut (with "...") to the room
 * before the next line to its right, or the area's end. */
static void vline_labels(FILE *fp, const svg_plot *p, const frame *f)
{
    for (size_t i = 0; i < p->v.n; i++) {
        const svg_text *v = &p->v.t[i];
        if (!v->text || (p->log_x && !(v->x > 0))) continue;
        double x = px(f, v->x), end = f->left + f->w;
        if (x < f->left - 0.5 || x >= end) continue;
        for (size_t k = 0; k < p->v.n; k++) {
            double o = p->v.t[k].x;
            if (k != i && (!p->log_x || o > 0) && px(f, o) > x + 0.5 && px(f, o) < end) end = px(f, o);
        }
        /* 10-pixel text: about 6.2 pixels a character at most */
        size_t fit = (size_t)fmax(0, (end - x - 10) / 6.2), len = strlen(v->text);
        if (fit < 4) continue;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v->text);
        if (len > fit && fit < sizeof buf) memcpy(buf + fit - 3, "...", 4);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#555555\">", x + 4, f->top - 5);
        put_text(fp, buf);
        fputs("</text>\n", fp);
    }
}

static void legend(FILE *fp, const svg_plot *p, double x, double y)
{
    size_t row = 0, labelled = 0;
    for (size_t i = 0; i < p->n; i++) labelled += p->s[i].label != NULL;
    if (!labelled) return;
    fputs("<g font-size=\"12\">\n", fp);
    for (size_t i = 0; i < p->n; i++) {
        const svg_series *s = &p->s[i];
        if (!s->label) continue;
        double cy = y + 20.0 * (double)row++;
        if (s->y2)
            fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"12\" fill=\"%s\" fill-opacity=\"0.15\"/>\n",
                    x, cy - 6, s->colour);
        else if (s->kind != SVG_POINTS)
            fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s%s/>\n",
                    x, cy, x + 26, cy, s->colour, s->width, s->dash[0] ? " stroke-dasharray=\"" : "", s->dash,
                    s->dash[0] ? "\"" : "");
        marker(fp, s->marker, x + 13, cy, s->colour);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\">", x + 34, cy + 4);
        char lab[48];
        snprintf(lab, sizeof lab, "%s", s->label);
        if (strlen(s->label) >= sizeof lab) memcpy(lab + sizeof lab - 4, "...", 4);
        put_text(fp, lab);
        fputs("</text>\n", fp);
    }
    fputs("</g>\n", fp);
}

int svg_doc_begin(FILE *fp, int width, int height, const char *title)
{
    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            width, height, width, height);
    fputs("<title>", fp);
    put_text(fp, title ? title : "");
    fputs("</title>\n", fp);
    fprintf(fp, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height);
    return ferror(fp) ? -1 : 0;
}

int svg_doc_end(FILE *fp)
{
    fputs("</svg>\n", fp);
    return ferror(fp) ? -1 : 0;
}

/* Series (lines, bands, then markers), those on top after the rest. */
static void data(FILE *fp, const svg_plot *p, const frame *f)
{
    for (int top = 0; top < 2; top++) {
        for (size_t i = 0; i < p->n; i++)
            if (p->s[i].top == top) series_path(fp, f, &p->s[i]);
        for (size_t i = 0; i < p->n; i++)
            if (p->s[i].top == top)
                for (size_t k = 0; k < p->s[i].n; k++)
                    marker(fp, p->s[i].marker, px(f, p->s[i].x[k]), py(f, p->s[i].y[k]), p->s[i].colour);
    }
}

int svg_plot_draw(const svg_plot *p, FILE *fp, double ox, double oy, double width, double height, int id)
{
    frame f = {.log_x = p->log_x, .log_y = p->log_y};
    double x0, x1, y0, y1;
    extent(p, &x0, &x1, &y0, &y1);
    if (p->log_x && !(x0 > 0)) x0 = 1e-3;
    if (p->log_y && !(y0 > 0)) y0 = 1e-3;
    pad(&x0, &x1, p->log_x);
    pad(&y0, &y1, p->log_y);
    /* a bound the caller set replaces the fitted one */
    if (isfinite(p->x0)) x0 = p->log_x ? log10(p->x0) : p->x0;
    if (isfinite(p->x1)) x1 = p->log_x ? log10(p->x1) : p->x1;
    if (isfinite(p->y0)) y0 = p->log_y ? log10(p->y0) : p->y0;
    if (isfinite(p->y1)) y1 = p->log_y ? log10(p->y1) : p->y1;
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    f.x0 = x0, f.x1 = x1, f.y0 = y0, f.y1 = y1;
    /* the title's room on top, the x label's and the notes' below */
    int labelled = 0;
    for (size_t i = 0; i < p->v.n; i++) labelled |= p->v.t[i].text != NULL;
    double legend_w = 250, top = (p->title[0] ? 46 : 14) + (labelled ? 8 : 0), bottom = p->xlabel[0] ? 62 : 28;
    f.left = ox + 78;
    f.top = oy + top;
    f.w = width - 78 - legend_w - 20;
    f.h = height - top - bottom - 16.0 * p->n_notes;
    if (f.w < 100) f.w = 100;
    if (f.h < 100) f.h = 100;

    char clip[32];
    if (id) snprintf(clip, sizeof clip, "area%d", id);
    else snprintf(clip, sizeof clip, "area");
    fprintf(fp, "<defs><clipPath id=\"%s\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
            clip, f.left, f.top, f.w, f.h);
    if (p->title[0]) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">",
                f.left + f.w / 2, oy + 28);
        put_text(fp, p->title);
        fputs("</text>\n", fp);
    }
    axes(fp, p, &f);
    fprintf(fp, "<g clip-path=\"url(#%s)\">\n", clip);
    vlines(fp, p, &f);
    data(fp, p, &f);
    fputs("</g>\n<g font-size=\"12\">\n", fp);
    for (size_t i = 0; i < p->t.n; i++) {
        const svg_text *t = &p->t.t[i];
        if (!t->text || (p->log_x && !(t->x > 0)) || (p->log_y && !(t->y > 0))) continue;
        double x = px(&f, t->x), y = py(&f, t->y);
        /* beside the point, turned back inwards near the right edge */
        int right = x > f.left + f.w * 0.6;
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", right ? x - 12 : x + 12, y - 10,
                right ? "end" : "start");
        put_text(fp, t->text);
        fputs("</text>\n", fp);
    }
    fputs("</g>\n", fp);
    vline_labels(fp, p, &f);
    legend(fp, p, f.left + f.w + 22, f.top + 10);
    for (int i = 0; i < p->n_notes; i++) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555555\">", f.left,
                f.top + f.h + bottom - 4 + 16.0 * i);
        put_text(fp, p->notes[i]);
        fputs("</text>\n", fp);
    }
    return ferror(fp) ? -1 : 0;
}

int svg_plot_write(const svg_plot *p, FILE *fp, int width, int height)
{
    svg_doc_begin(fp, width, height, p->title);
    svg_plot_draw(p, fp, 0, 0, width, height, 0);
    return svg_doc_end(fp);
}
