/*
 * earlystop_meta.h - meta-learning (libearlystop-meta): learn across many
 * tasks how the stopping rules' thresholds should move with the task, so
 * that a new task is adapted from a handful of its items (k = 8, 16, 32),
 * with gold answers or without.  docs/learning.md ("Meta-learning") says
 * what is estimated, how, and what was measured.
 *
 *   es_meta_task    one task's items (a trace file, or some of its items)
 *                   replayed at every grid value of every family: per item,
 *                   the loss, EM and tokens at each value; a descriptor
 *                   computed without gold (answer diversity, agreement
 *                   with the item's majority, sample length, ...)
 *   es_meta_prior   what meta-training learns from many tasks: per family
 *                   and kind of label, the population of the tasks' best
 *                   values, a regression of them on the descriptor, and how
 *                   noisy the best value measured on k items is; a JSON file
 *   es_meta_adapt   a new task's k items + the prior -> a policy: the
 *                   k items' own estimate shrunk toward the descriptor's
 *                   prediction (empirical Bayes), and Learn-then-Test over
 *                   the grid from conservative to that point, which says
 *                   whether the k items certify it and, if not, how many
 *                   items would
 *
 * Depends on the tuning layer (earlystop_tune.h: the exact sweep gives the
 * per-item figures, Learn-then-Test the p-values), the replay layer and the
 * core; jansson for the prior file.
 */
#ifndef EARLYSTOP_META_H
#define EARLYSTOP_META_H

#include <stdio.h>

#include "earlystop_tune.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The prior file's format version (its "version" key). */
#define ES_META_PRIOR_VERSION 1

/* --------------------------------------------------------------- options */

/* What the adaptation may use from the k items: their gold answers (the
 * loss is "wrong where full is right") or none (the loss is "disagrees with
 * the full run", measured with all the samples of the k items). */
typedef enum es_meta_labels {
    ES_META_GOLD = 0,
    ES_META_NONE = 1
} es_meta_labels;
enum { ES_META_N_LABELS = 2 };

typedef struct es_meta_opts {
    double max_em_drop;   /* eps: the mean loss a task's best value may have (0.005 = 0.5 pt) */
    double delta;         /* Learn-then-Test's level (0.1) */
    uint32_t shuffles;    /* sample orders per item (10; 0 = file order) */
    uint64_t seed;        /* of the orders, the draws and the betting order (1) */
    int threads;          /* 0 = one per core */
    int32_t probe_cost;   /* ES_PROBE_COST_FIELD or tokens per probe */
    void (*progress)(void *ctx, const char *what, size_t done, size_t total);
    void *progress_ctx;
} es_meta_opts;

ES_API void es_meta_opts_init(es_meta_opts *o);
/* The tuning layer's options for the same replays (orders, seed, threads,
 * probe cost), the rest at its defaults. */
ES_API void es_meta_tune_opts(const es_meta_opts *o, es_tune_opts *out);

/* -------------------------------------------------------------- families */

/*
 * A family is a policy with one parameter the across rule compares
 * (es_policy_sweep_param) and a fixed grid of its values, conservative
 * first.  Values are compared on a scale where the tasks' best values are
 * roughly normal: `log` (z = ln v, margin's m), `neglog1m` (z = -ln(1-v),
 * a probability threshold such as ac-beta's) or `linear` (z = v, the
 * learned stopper's score threshold).  The built-in families: margin,
 * ac-beta and learned (the built-in stopper); a prior file may define
 * others (any rule with a swept parameter, e.g. a learned stopper of one's
 * own with its weights in the spec).
 */
ES_API size_t es_meta_n_builtin_families(void);
ES_API const char *es_meta_builtin_family(size_t i, const char **doc);

/* ----------------------------------------------------------------- tasks */

typedef struct es_meta_task es_meta_task;
typedef struct es_meta_prior es_meta_prior;

/*
 * A task: items of ts (indices, each once; NULL = all n of them) replayed
 * at every grid value of every family (those of `grids`' families, or the
 * built-in ones when grids is NULL).  ts must outlive the task.  A trace
 * set with one sample per item is a task too, but no family applies to it
 * (es_meta_task_applies).
 */
ES_API int es_meta_task_new(const es_traceset *ts, const char *name, const uint32_t *items, size_t n,
                            const es_meta_prior *grids, const es_meta_opts *o, es_meta_task **out, es_error *err);
/* Some of t's items (indices into t's items), without replaying anything:
 * what a task made of those items alone would hold. */
ES_API int es_meta_task_subset(const es_meta_task *t, const uint32_t *items, size_t n, es_meta_task **out);
ES_API void es_meta_task_free(es_meta_task *t);
ES_API size_t es_meta_task_n_items(const es_meta_task *t);
ES_API const char *es_meta_task_name(const es_meta_task *t);
/* 1 when the families apply (more than one sample on some item). */
ES_API int es_meta_task_applies(const es_meta_task *t);

/* The descriptor: figures of the items that need no gold. */
enum { ES_META_N_DESC = 8 };
ES_API const char *es_meta_descriptor_name(size_t j);
ES_API void es_meta_task_descriptor(const es_meta_task *t, double x[ES_META_N_DESC]);

/* Figures of grid point g of family f on the task's items (g ==
 * ES_META_FULL: the full run). */
#define ES_META_FULL ((size_t)-1)
typedef struct es_meta_figures {
    double em, em_full;   /* exact match, of the policy and of full */
    double tokens;        /* mean tokens per item, probes included */
    double full_tokens;
    double share;         /* tokens / full's tokens, mean over items */
    double loss;          /* mean loss against full (the labels' loss) */
} es_meta_figures;
ES_API int es_meta_task_figures(const es_meta_task *t, size_t f, size_t g, es_meta_labels l, es_meta_figures *out);

/* The task's best grid point of family f: the most aggressive g such that
 * every grid point up to it (from the conservative end) has a mean loss of
 * at most eps on the task's items; ES_META_FULL when not even the first
 * has. */
ES_API size_t es_meta_task_best(const es_meta_task *t, size_t f, es_meta_labels l, double eps);

/* ----------------------------------------------------------------- prior */

/* Learn the prior from tasks (those to which the families apply; the others
 * are left out, and at least 3 must remain).  The tasks must have been
 * made with the built-in grids (grids = NULL). */
ES_API int es_meta_train(es_meta_task *const *tasks, size_t n, const es_meta_opts *o, es_meta_prior **out,
                         es_error *err);
ES_API void es_meta_prior_free(es_meta_prior *p);

/* The prior file (JSON, "format": "earlystop-prior", "version" 1). */
ES_API int es_meta_prior_write(const es_meta_prior *p, FILE *fp, es_error *err);
/* Errors name the file and the field ("families[0].grid[3]"). */
ES_API int es_meta_prior_read(const char *path, es_meta_prior **out, es_error *err);

ES_API size_t es_meta_prior_n_families(const es_meta_prior *p);
ES_API const char *es_meta_prior_family(const es_meta_prior *p, size_t f);
/* The family adapt uses unless told otherwise. */
ES_API size_t es_meta_prior_default_family(const es_meta_prior *p);
/* Index of a family by name; ES_EINVAL (with the known names) when none. */
ES_API int es_meta_prior_find_family(const es_meta_prior *p, const char *name, size_t *f, es_error *err);
ES_API size_t es_meta_prior_n_tasks(const es_meta_prior *p);
ES_API const char *es_meta_prior_task(const es_meta_prior *p, size_t i);
/* The settings it was trained with: eps, delta, orders per item, seed. */
ES_API double es_meta_prior_eps(const es_meta_prior *p);
ES_API double es_meta_prior_delta(const es_meta_prior *p);
ES_API uint32_t es_meta_prior_shuffles(const es_meta_prior *p);
ES_API uint64_t es_meta_prior_seed(const es_meta_prior *p);
/* The grid of family f: its size, and value g as a policy spec. */
ES_API size_t es_meta_prior_grid_size(const es_meta_prior *p, size_t f);
ES_API int es_meta_prior_spec(const es_meta_prior *p, size_t f, size_t g, char *buf, size_t cap, es_error *err);

/* What was learned for family f and labels l, on the family's scale z. */
typedef struct es_meta_fit_info {
    double mean, sd;          /* the tasks' best z: population mean and spread */
    double resid_sd;          /* the descriptor regression's leave-one-task-out error */
    double lambda;            /* its ridge penalty (INFINITY: intercept only) */
    double noise_sd[3];       /* the k items' best minus the task's, at k = 8, 16, 32 */
    double bias[3];
    double default_value;     /* the prior's default point */
} es_meta_fit_info;
ES_API int es_meta_prior_fit(const es_meta_prior *p, size_t f, es_meta_labels l, es_meta_fit_info *out);

/* ---------------------------------------------------------------- adapt */

typedef enum es_meta_method {
    ES_META_ADAPT = 0,    /* the descriptor's prediction as prior mean, the k items'
                             best shrunk toward it (default) */
    ES_META_SHRINK,       /* the population mean as prior mean, the k items' best
                             shrunk toward it (no descriptor) */
    ES_META_DESCRIPTOR,   /* the descriptor's prediction alone (no loss measured on
                             the k items, so no gold is used even with ES_META_GOLD) */
    ES_META_DEFAULT,      /* the prior's default: nothing from the k items */
    ES_META_SCRATCH,      /* from scratch: the k items' best alone (no prior) */
    ES_META_SCRATCH_LTT   /* from scratch with a guarantee: the most aggressive grid
                             point Learn-then-Test certifies on the k items, else full */
} es_meta_method;
ES_API const char *es_meta_method_name(es_meta_method m);

typedef struct es_meta_choice {
    char spec[512];           /* what to run */
    char family[64];
    size_t f, g;              /* family and grid point (g = ES_META_FULL: full) */
    double value;             /* the parameter's value (NaN for full) */
    /* the estimate, on the family's scale (z) */
    double z_prior, tau2;     /* prior mean and variance for this task */
    double z_data, var_data;  /* the k items' best (bias-corrected) and its noise variance */
    double weight;            /* how far toward z_data: tau2 / (tau2 + var_data) */
    double z_post;            /* the posterior mean; g is the grid point nearest it */
    /* Learn-then-Test on the k items, grid points from the conservative end
     * to g, at the prior's eps and delta */
    size_t n_certified;       /* grid points certified, from the conservative end */
    int certified;            /* the sequence reached g: the choice has the guarantee */
    size_t g_certified;       /* the most aggressive certified point up to g (ES_META_FULL: none) */
    char certified_spec[512]; /* its spec ("full" when none) */
    double pvalue;            /* the choice's p-value */
    double pvalue_certified;  /* g_certified's (NaN when none) */
    double items_needed;      /* items (none lost) that would certify eps at delta */
    es_meta_figures k_fig;    /* the choice on the k items */
} es_meta_choice;

/* Adapt the prior to task k (its items are the k items) by method m, with
 * family f of the prior (ES_META_FULL: the prior's default).  k must have
 * been made with the prior's grids (es_meta_task_new(..., p, ...)). */
ES_API int es_meta_adapt(const es_meta_prior *p, const es_meta_task *k, es_meta_labels l, es_meta_method m, size_t f,
                         es_meta_choice *out, es_error *err);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_META_H */
