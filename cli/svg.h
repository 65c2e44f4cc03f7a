/*
 * svg.h - a small chart writer for the command line: one x-y plot as a
 * self-contained SVG file (no scripts, no fonts or images fetched), with
 * axes, ticks, labels, a legend and a title.  `tune --plot` draws fronts with
 * it; `simulate` and `run --controller` draw their windows with it, two plots
 * stacked in one document.
 *
 *   svg_plot *p = svg_plot_new("title", "x label", "y label");
 *   svg_plot_series(p, "ac-beta", SVG_STEP, x, y, n, NULL, SVG_DOT);
 *   svg_plot_point(p, "full", 1.0, 0.82, "#000000", SVG_DIAMOND);
 *   svg_plot_write(p, fp, 960, 600);
 *   svg_plot_free(p);
 *
 * Several plots in one document:
 *
 *   svg_doc_begin(fp, 1000, 640, "title");
 *   svg_plot_draw(top, fp, 0, 0, 1000, 400, 0);
 *   svg_plot_draw(bottom, fp, 0, 400, 1000, 240, 1);
 *   svg_doc_end(fp);
 *
 * Points outside the range set with svg_plot_range are clipped to the plot
 * area; with no range set it fits every point.  Tick labels of 10^4 and
 * more are written 12k, 1.5M, 2G.
 */
#ifndef ES_CLI_SVG_H
#define ES_CLI_SVG_H

#include <stddef.h>
#include <stdio.h>

typedef struct svg_plot svg_plot;

typedef enum svg_kind {
    SVG_LINE = 0,  /* points joined in the order given */
    SVG_STEP = 1,  /* a staircase: flat to the next point's x, then up or down to it */
    SVG_POINTS = 2 /* markers only */
} svg_kind;

typedef enum svg_marker {
    SVG_NONE = 0,
    SVG_DOT,
    SVG_SQUARE,
    SVG_DIAMOND,
    SVG_TRIANGLE,
    SVG_STAR,
    SVG_RING       /* a large open circle: a highlighted point */
} svg_marker;

/* NULL when out of memory.  Labels are plain text (escaped on output). */
svg_plot *svg_plot_new(const char *title, const char *xlabel, const char *ylabel);
void svg_plot_free(svg_plot *p);

/* A logarithmic x axis (every x must then be > 0; others are dropped). */
void svg_plot_log_x(svg_plot *p, int on);
/* A logarithmic y axis, the same way; set both before adding series. */
void svg_plot_log_y(svg_plot *p, int on);
/* The axes' ranges; NaN leaves a bound to fit the data. */
void svg_plot_range(svg_plot *p, double x0, double x1, double y0, double y1);
/* A line of small print under the chart (at most 4). */
int svg_plot_note(svg_plot *p, const char *text);

/* A series; label NULL keeps it out of the legend; colour NULL takes the
 * next of the palette ("#rrggbb" otherwise).  x and y are copied.  0, or -1
 * when out of memory. */
int svg_plot_series(svg_plot *p, const char *label, svg_kind kind, const double *x, const double *y, size_t n,
                    const char *colour, svg_marker marker);
/* A translucent band between lo and hi, its edges joined in the order
 * given (as SVG_LINE); colour NULL takes the colour of the series added
 * last, the line the band goes with.  0, or -1 when out of memory. */
int svg_plot_band(svg_plot *p, const char *label, const double *x, const double *lo, const double *hi, size_t n,
                  const char *colour);
/* The line of the series added last: width in pixels (<= 0 keeps it), and
 * an SVG dash pattern ("6 3"; "" for solid, NULL keeps it). */
void svg_plot_style(svg_plot *p, double width, const char *dash);
/* Series that take the palette's colours also take a dash pattern of
 * their own, the first solid: lines drawn over each other stay apart. */
void svg_plot_dashes(svg_plot *p, int on);
/* Keep a palette colour ("#rrggbb") for what is drawn by hand: series that
 * take the palette's colours skip it.  0, or -1 past 4 colours. */
int svg_plot_reserve(svg_plot *p, const char *colour);
/* Draw the series added last over every other (its legend entry stays). */
void svg_plot_on_top(svg_plot *p);
/* One marked point with its legend entry. */
int svg_plot_point(svg_plot *p, const char *label, double x, double y, const char *colour, svg_marker marker);
/* A text beside a point (no legend entry). */
int svg_plot_text(svg_plot *p, double x, double y, const char *text);
/* A dashed vertical line at x across the plot area (none on its edges: a
 * label alone marks x there), with a label above the area cut to the room
 * before the next line's (NULL: none).  0, or -1 when out of memory. */
int svg_plot_vline(svg_plot *p, double x, const char *label);

/* Write the chart, width x height pixels.  0, or -1 when a write failed. */
int svg_plot_write(const svg_plot *p, FILE *fp, int width, int height);

/* A document of several charts: its head (width x height pixels, a white
 * page, title the document's name), each chart into its rectangle with an
 * id of its own (0, 1, ...), then its end.  An empty title or x label
 * leaves its room to the plot area.  0, or -1 when a write failed. */
int svg_doc_begin(FILE *fp, int width, int height, const char *title);
int svg_plot_draw(const svg_plot *p, FILE *fp, double x, double y, double width, double height, int id);
int svg_doc_end(FILE *fp);

#endif
