/*
 * tune_cli.h - what `earlystop tune` (cmd_tune.c) shares with the writers of
 * its output files (tune_out.c): the settings as parsed, and the figures of
 * one tuning run.
 */
#ifndef ES_CLI_TUNE_H
#define ES_CLI_TUNE_H

#include <jansson.h>

#include "earlystop_io.h"
#include "earlystop_tune.h"

enum { TUNE_MAX_FAMILIES = 64 };

typedef struct tune_args {
    const char **files, **cal, **test;  /* FILE..., --calibrate, --test */
    int n_files, n_cal, n_test;
    const char *families[TUNE_MAX_FAMILIES];
    int n_families;
    es_tune_opts o;                     /* shuffles, seed, threads, costs, loss, eps, delta, budget */
    int budget;                         /* --token-budget given: no guarantee */
    double split;                       /* share of FILE...'s items for calibration */
    uint32_t repeats;
    int lofo, json, threads;
    const char *out_path, *front_path, *plot_path;
    int front_csv;
} tune_args;

/* One tuning run and what was measured around it. */
typedef struct tune_run {
    es_tune *t;
    const char *const *cal_files;       /* the calibration files, for provenance */
    int n_cal_files;
    size_t cal_items;
    es_tune_point chosen;               /* figures on es_tune_front_data(t) */
    int have_test;
    es_tune_eval test;                  /* the chosen policy on the test items */
    size_t test_items;
    /* on the items the fronts were measured on, for the plot: full (its
     * oracle too) and the anchors at their defaults; ok[i] = 0 where one
     * could not be evaluated */
    es_tune_eval full, anchor[2];
    int anchor_ok[2];
} tune_run;

/* The anchors every report sets the tuned policy beside. */
extern const char *const tune_anchor_specs[2];

const char *tune_loss_name(es_tune_loss l);
const char *tune_objective_name(es_tune_objective o);
/* JSON for a number (null where not finite). */
json_t *tune_num(double v);
json_t *tune_point_json(const es_tune_point *p, const tune_args *a);
/* The fronts as --json prints them and --front writes them. */
json_t *tune_fronts_json(const es_tune *t, const tune_args *a);

/* The output files, written into an es_outfile opened before the run. */
int tune_write_policy(FILE *fp, const tune_run *r, const tune_args *a);
int tune_write_front(FILE *fp, const tune_run *r, const tune_args *a);
int tune_write_plot(FILE *fp, const tune_run *r, const tune_args *a);

#endif
