/*
 * svg.c - one x-y chart as a self-contained SVG (see svg.h).
 *
 * Layout: the title on top, the plot area on the left with its ticks and
 * grid, the legend on the right, notes under the x label.  Series are drawn
 * inside a clip path of the plot area, so a range set by the caller cuts
 * them cleanly.  Ticks fall on 1, 2, 5 x 10^k on both linear and log axes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "svg.h"

enum { MAX_NOTES = 4 };

typedef struct svg_series {
    char *label;
    svg_kind kind;
    double *x, *y;
    size_t n;
    char colour[8];
    svg_marker marker;
    double width;
    char dash[16];
} svg_series;

typedef struct svg_text {
    double x, y;
    char *text;
} svg_text;

struct svg_plot {
    char *title, *xlabel, *ylabel;
    int log_x;
    double x0, x1, y0, y1;
    char *notes[MAX_NOTES];
    int n_notes;
    svg_series *s;
    size_t n, cap;
    svg_text *t;
    size_t n_t, cap_t;
    size_t next_colour;
};

/* Tableau's ten colours: distinct, and readable on white and in grey. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
enum { N_PALETTE = sizeof palette / sizeof palette[0] };

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
    }
    for (size_t i = 0; i < p->n_t; i++) free(p->t[i].text);
    for (int i = 0; i < p->n_notes; i++) free(p->notes[i]);
    free(p->s);
    free(p->t);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    free(p);
}

void svg_plot_log_x(svg_plot *p, int on) { p->log_x = on != 0; }

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

int svg_plot_series(svg_plot *p, const char *label, svg_kind kind, const double *x, const double *y, size_t n,
                    const char *colour, svg_marker marker)
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
    s->label = label ? dup(label) : NULL;
    if (!s->x || !s->y || (label && !s->label)) {
        free(s->x);
        free(s->y);
        free(s->label);
        return -1;
    }
    /* a log axis cannot place x <= 0: such points are left out */
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]) && (!p->log_x || x[i] > 0)) {
            s->x[s->n] = x[i];
            s->y[s->n++] = y[i];
        }
    if (colour) {
        snprintf(s->colour, sizeof s->colour, "%s", colour);
    } else {
        size_t c = p->next_colour++;
        snprintf(s->colour, sizeof s->colour, "%s", palette[c % N_PALETTE]);
        /* past the palette, the colours come back dashed */
        if (c >= N_PALETTE) snprintf(s->dash, sizeof s->dash, "6 3");
    }
    p->n++;
    return 0;
}

void svg_plot_style(svg_plot *p, double width, const char *dash)
{
    if (!p->n) return;
    svg_series *s = &p->s[p->n - 1];
    if (width > 0) s->width = width;
    snprintf(s->dash, sizeof s->dash, "%s", dash ? dash : "");
}

int svg_plot_point(svg_plot *p, const char *label, double x, double y, const char *colour, svg_marker marker)
{
    return svg_plot_series(p, label, SVG_POINTS, &x, &y, 1, colour ? colour : "#000000", marker);
}

int svg_plot_text(svg_plot *p, double x, double y, const char *text)
{
    if (p->n_t == p->cap_t) {
        size_t c = p->cap_t ? 2 * p->cap_t : 8;
        svg_text *t = realloc(p->t, c * sizeof *t);
        if (!t) return -1;
        p->t = t;
        p->cap_t = c;
    }
    if (!(p->t[p->n_t].text = dup(text))) return -1;
    p->t[p->n_t].x = x;
    p->t[p->n_t].y = y;
    p->n_t++;
    return 0;
}

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
    double x0, x1, y0, y1;       /* data range (x in log10 on a log axis) */
    double left, top, w, h;      /* plot area in pixels */
    int log_x;
} frame;

static double px(const frame *f, double x)
{
    double v = f->log_x ? log10(x) : x;
    return f->left + (v - f->x0) / (f->x1 - f->x0) * f->w;
}

static double py(const frame *f, double y) { return f->top + f->h - (y - f->y0) / (f->y1 - f->y0) * f->h; }

/* The data's extent over every series (and text anchor). */
static void extent(const svg_plot *p, double *x0, double *x1, double *y0, double *y1)
{
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (size_t i = 0; i < p->n; i++)
        for (size_t k = 0; k < p->s[i].n; k++) {
            double x = p->s[i].x[k], y = p->s[i].y[k];
            if (x < *x0) *x0 = x;
            if (x > *x1) *x1 = x;
            if (y < *y0) *y0 = y;
            if (y > *y1) *y1 = y;
        }
    if (!isfinite(*x0)) *x0 = p->log_x ? 0.1 : 0, *x1 = 1;
    if (!isfinite(*y0)) *y0 = 0, *y1 = 1;
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

static void series_path(FILE *fp, const frame *f, const svg_series *s)
{
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
    size_t n = f->log_x ? log_ticks(f->x0, f->x1, t, 64) : linear_ticks(f->x0, f->x1, 6, t, 64, &dec);
    fputs("<g font-size=\"12\" fill=\"#333333\">\n", fp);
    for (size_t i = 0; i < n; i++) {
        double x = px(f, t[i]);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x, f->top, x,
                f->top + f->h);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", x, f->top + f->h,
                x, f->top + f->h + 5);
        char lab[32];
        if (f->log_x) snprintf(lab, sizeof lab, "%g", t[i]);
        else snprintf(lab, sizeof lab, "%.*f", dec, t[i]);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, f->top + f->h + 19, lab);
    }
    n = linear_ticks(f->y0, f->y1, 6, t, 64, &dec);
    for (size_t i = 0; i < n; i++) {
        double y = py(f, t[i]);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", f->left, y,
                f->left + f->w, y);
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", f->left - 5, y,
                f->left, y);
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", f->left - 8, y + 4, dec, t[i]);
    }
    fprintf(fp, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
            f->left, f->top, f->w, f->h);
    fputs("</g>\n", fp);
    fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">", f->left + f->w / 2,
            f->top + f->h + 40);
    put_text(fp, p->xlabel);
    fputs("</text>\n", fp);
    fprintf(fp, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">",
            f->left - 52, f->top + f->h / 2);
    put_text(fp, p->ylabel);
    fputs("</text>\n", fp);
}

static void legend(FILE *fp, const svg_plot *p, double x, double y)
{
    size_t row = 0;
    fputs("<g font-size=\"12\">\n", fp);
    for (size_t i = 0; i < p->n; i++) {
        const svg_series *s = &p->s[i];
        if (!s->label) continue;
        double cy = y + 20.0 * (double)row++;
        if (s->kind != SVG_POINTS)
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

int svg_plot_write(const svg_plot *p, FILE *fp, int width, int height)
{
    frame f = {.log_x = p->log_x};
    double x0, x1, y0, y1;
    extent(p, &x0, &x1, &y0, &y1);
    if (p->log_x && !(x0 > 0)) x0 = 1e-3;
    pad(&x0, &x1, p->log_x);
    pad(&y0, &y1, 0);
    /* a bound the caller set replaces the fitted one */
    if (isfinite(p->x0)) x0 = p->log_x ? log10(p->x0) : p->x0;
    if (isfinite(p->x1)) x1 = p->log_x ? log10(p->x1) : p->x1;
    if (isfinite(p->y0)) y0 = p->y0;
    if (isfinite(p->y1)) y1 = p->y1;
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    f.x0 = x0, f.x1 = x1, f.y0 = y0, f.y1 = y1;
    double legend_w = 250;
    f.left = 78;
    f.top = 46;
    f.w = width - f.left - legend_w - 20;
    f.h = height - f.top - 62 - 16.0 * p->n_notes;
    if (f.w < 100) f.w = 100;
    if (f.h < 100) f.h = 100;

    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            width, height, width, height);
    fputs("<title>", fp);
    put_text(fp, p->title);
    fputs("</title>\n", fp);
    fprintf(fp, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height);
    fprintf(fp, "<defs><clipPath id=\"area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
            f.left, f.top, f.w, f.h);
    fprintf(fp, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">",
            f.left + f.w / 2);
    put_text(fp, p->title);
    fputs("</text>\n", fp);
    axes(fp, p, &f);
    fputs("<g clip-path=\"url(#area)\">\n", fp);
    for (size_t i = 0; i < p->n; i++) series_path(fp, &f, &p->s[i]);
    for (size_t i = 0; i < p->n; i++)
        for (size_t k = 0; k < p->s[i].n; k++)
            marker(fp, p->s[i].marker, px(&f, p->s[i].x[k]), py(&f, p->s[i].y[k]), p->s[i].colour);
    fputs("</g>\n<g font-size=\"12\">\n", fp);
    for (size_t i = 0; i < p->n_t; i++) {
        if (p->log_x && !(p->t[i].x > 0)) continue;
        double x = px(&f, p->t[i].x), y = py(&f, p->t[i].y);
        /* beside the point, turned back inwards near the right edge */
        int right = x > f.left + f.w * 0.6;
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", right ? x - 12 : x + 12, y - 10,
                right ? "end" : "start");
        put_text(fp, p->t[i].text);
        fputs("</text>\n", fp);
    }
    fputs("</g>\n", fp);
    legend(fp, p, f.left + f.w + 22, f.top + 10);
    for (int i = 0; i < p->n_notes; i++) {
        fprintf(fp, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555555\">", f.left,
                f.top + f.h + 58 + 16.0 * i);
        put_text(fp, p->notes[i]);
        fputs("</text>\n", fp);
    }
    fputs("</svg>\n", fp);
    return ferror(fp) ? -1 : 0;
}
