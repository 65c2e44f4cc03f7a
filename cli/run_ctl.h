/* run_ctl.h - `earlystop run --controller` (run_controller.c): the online
 * controller live on the built-in model, over a stream of tasks. */
#ifndef ES_RUN_CTL_H
#define ES_RUN_CTL_H

#include "earlystop_lm.h"

typedef struct run_ctl_opts {
    const char *policy, *target, *stream, *plot;
    long window, seed, samples, probe_every, start;
    double temperature, audit_share;
    int json;
    es_lm_pool *pool;
    int probe_lines;    /* --probe-every lines: free text probes at line ends */
    int probe_given;    /* --probe-every was given (else a cue-reading policy gets text probes) */
} run_ctl_opts;

/* Static, controller (and full, for em-loss) over the stream; prints the
 * windows and the summary.  CLI_USAGE after a usage error it printed, else
 * 0 or an ES_* code with err set. */
int run_controller(const es_lm *m, const run_ctl_opts *o, es_error *err);

#endif
