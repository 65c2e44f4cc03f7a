/* sim_out.h - output shared by `earlystop simulate` and `earlystop run
 * --controller` (sim_out.c), and the SVG of the windows (sim_plot.c, drawn
 * with svg.c like `tune --plot`). */
#ifndef ES_SIM_OUT_H
#define ES_SIM_OUT_H

#include <stdio.h>

#include "cli.h"
#include "earlystop_online.h"

/* "tokens=B" | "kv=BYTES" | "em-loss=PTS" (points -> a fraction); a usage
 * error printed for `cmd` and CLI_USAGE when bad. */
int sim_parse_target(const char *cmd, const char *t, es_target_kind *kind, double *budget);
const char *sim_kind_name(es_target_kind k);
/* "key":v, (null when not finite) */
void sim_json_num(const char *key, double v, int comma);
/* {"name", "policy", "param", "windows": [...], "summary": {...}} */
void sim_json_row(const es_sim_row *r);
/* "0,200,never" */
void sim_fmt_recovery(const es_sim_summary *s, char *buf, size_t cap);
/* A row's name for tables and legends: its name, an anchor's its spec's
 * first setting ("esc:window=5"; the full spec is in --json). */
void sim_row_name(const es_sim_row *r, char *buf, size_t cap);
/* A row's parameter: its value, "moving" where it changes per window (the
 * controller's), "-" where the row has none (an anchor of another rule). */
void sim_fmt_param(const es_sim_row *r, char *buf, size_t cap);

/* The SVG: the target's measure and the parameter per window of rows
 * 0..n (row 0 the controller, drawn on top); segments name the shifts.
 * 0, or -1 when out of memory or a write failed. */
int sim_plot_rows(FILE *fp, const es_sim_row *const *rows, uint32_t n, const char *const *segments, uint32_t n_seg,
                  const es_controller_opts *co, const char *param_name);

#endif
