/* sim_plot.h - `earlystop simulate --plot`: the windows as an SVG.  Written
 * for simulate alone (the tune command's plots live elsewhere; the lead
 * will unify them). */
#ifndef ES_SIM_PLOT_H
#define ES_SIM_PLOT_H

#include <stdio.h>

#include "earlystop_online.h"

void sim_plot_svg(FILE *fp, const es_sim_result *r, const es_stream *s, const es_controller_opts *co,
                  const char *param_name);

#endif
