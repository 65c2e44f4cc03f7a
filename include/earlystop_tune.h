/*
 * earlystop_tune.h - multi-objective tuning (libearlystop-tune): the
 * tokens-vs-EM front of every rule family on recorded traces, and the
 * operating point that meets a user's constraint with a statistical
 * guarantee (Learn-then-Test).  docs/tuning.md says precisely what is
 * guaranteed.
 *
 * Depends on the replay layer (earlystop_replay.h) and the core.
 */
#ifndef EARLYSTOP_TUNE_H
#define EARLYSTOP_TUNE_H

#include "earlystop_replay.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ data */

/* The items a tuner sees: trace sets (one per file, borrowed) pooled item
 * by item.  Figures over several files are means over all their items. */
typedef struct es_tune_data es_tune_data;

ES_API int es_tune_data_new(es_tune_data **out);
ES_API void es_tune_data_free(es_tune_data *d);
/* ts must outlive d; name labels the file in reports. */
ES_API int es_tune_data_add(es_tune_data *d, const es_traceset *ts, const char *name);
/* Some of ts's items only (indices into ts, each at most once): one side of
 * a calibration/test split.  An item keeps its index in its file, so it is
 * replayed in the same orders as when the whole file is added.  ES_EINVAL
 * for an index past the file's items. */
ES_API int es_tune_data_add_items(es_tune_data *d, const es_traceset *ts, const char *name, const uint32_t *items,
                                  size_t n);
ES_API size_t es_tune_data_n_items(const es_tune_data *d);
ES_API size_t es_tune_data_n_files(const es_tune_data *d);
/* Pooled item i: its view (may be NULL), the file it came from (the index
 * of the es_tune_data_add* call) and its index there. */
ES_API int es_tune_data_item(const es_tune_data *d, size_t i, es_item_view *v, size_t *file, uint32_t *index);
/* File f's trace set and name; NULL past the end. */
ES_API const es_traceset *es_tune_data_file(const es_tune_data *d, size_t f, const char **name);

/* --------------------------------------------------------------- options */

/* What one item loses against the full run (every sample, majority). */
typedef enum es_tune_loss {
    ES_LOSS_WRONG = 0,    /* 1 when the policy is wrong where full is right (needs gold) */
    ES_LOSS_DISAGREE = 1, /* 1 when the policy's answer differs from full's (no gold needed) */
    ES_LOSS_NET = 2       /* wrong-where-full-right minus right-where-full-wrong, in [-1, 1] */
} es_tune_loss;

/* What a policy costs. */
typedef enum es_tune_objective {
    ES_OBJECTIVE_TOKENS = 0, /* tokens generated, probes included */
    ES_OBJECTIVE_KV = 1      /* peak KV-cache positions with samples drawn `batch` at a time */
} es_tune_objective;

typedef struct es_tune_opts {
    uint32_t shuffles;          /* random sample orders per item (0 = file order) */
    uint64_t seed;              /* of the orders and of the inner split */
    int threads;                /* 0 = one per core */
    int32_t probe_cost;         /* ES_PROBE_COST_FIELD or tokens per probe */
    es_tune_loss loss;
    es_tune_objective objective;
    uint32_t batch;             /* ES_OBJECTIVE_KV: samples drawn at once (>= 1) */
    double max_em_drop;         /* eps: the mean loss allowed, as a fraction
                                   (0.005 = 0.5 points of EM); < 0: pick by token budget */
    double delta;               /* the guarantee fails with probability at most delta */
    double token_budget;        /* with max_em_drop < 0: the best EM within this many mean
                                   tokens per item (no guarantee) */
    double opt_share;           /* share of the calibration items that build and order
                                   the candidates; the rest tests them (default 0.5) */
    void (*progress)(void *ctx, const char *what, size_t done, size_t total);
    void *progress_ctx;
    /* NULL, or the split given: item i of the calibration data builds and
     * orders the candidates when opt_mask[i] is 1, tests them when 0 (a
     * learner passes the items it trained on, so that the test part is
     * untouched); opt_share is then unused */
    const uint8_t *opt_mask;
    /* 1: the budget must hold on every file of the calibration data, not
     * only pooled over them (a user of one workload gets that one's loss).
     * A point's `loss` is then its worst file's mean loss (what orders and
     * prunes the candidates, and what an uncertified fallback compares
     * with the budget), and its p-value the largest of the files' p-values
     * (the intersection-union test: valid at delta with no correction; a
     * file with no test items gives p = 1).  0 (default): pooled. */
    int per_file;
} es_tune_opts;

/* Defaults: 10 orders, seed 1, all cores, cost field, loss wrong, tokens,
 * eps 0.5 pt, delta 0.1, opt_share 0.5, pooled (per_file 0). */
ES_API void es_tune_opts_init(es_tune_opts *o);

/* ----------------------------------------------------------------- points */

/* A candidate policy and its figures on a set of items. */
typedef struct es_tune_point {
    char spec[512];             /* canonical spec */
    char family[64];
    double em;                  /* exact match */
    double em_full;             /* the full run's, on the same items */
    double tokens;              /* mean tokens per item, probes included */
    double share;               /* tokens / full's tokens, mean over items */
    double kv;                  /* mean peak KV positions per item (objective kv) */
    double cost;                /* what the objective minimises: share, or kv / full's kv */
    double loss;                /* mean loss against full (the chosen loss); with
                                   per_file, the worst file's mean loss */
    double pvalue;              /* Learn-then-Test p-value for "loss > eps", NaN if untested
                                   (per_file: the largest over the files) */
    int certified;              /* in the certified prefix of the fixed sequence */
} es_tune_point;

/* ------------------------------------------------------------------ tuner */

typedef struct es_tune es_tune;

/* Calibration data and options; families are added next. */
ES_API int es_tune_new(const es_tune_data *cal, const es_tune_opts *o, es_tune **out, es_error *err);
ES_API void es_tune_free(es_tune *t);

/*
 * A family: a rule (or a within+across pair, "dynasor+ac-beta") with its
 * parameters searched: the one the rule's decision compares (a threshold)
 * exactly, every breakpoint collected in one replay; the others on a grid.
 * "all" adds every family that applies to the data (no probe rule without
 * probes).  ES_ENOTSUP with a message when the family does not apply.
 */
ES_API int es_tune_add_family(es_tune *t, const char *family, es_error *err);
/* A family of one's own: a clone of proto joins the family `family` (made
 * on first use; later calls add configurations to it), its across rule's
 * parameter swept exactly where it has one (es_policy_sweep_param), else
 * the policy as a grid point.  How a learned stopper (its weights are not
 * in a spec) takes part in the fronts and in Learn-then-Test. */
ES_API int es_tune_add_policy(es_tune *t, const es_policy *proto, const char *family, es_error *err);
/* The same as one grid point, nothing swept: its parameters stay as given
 * (a learned stopper's within threshold tried beside an across threshold
 * calibrated elsewhere). */
ES_API int es_tune_add_point(es_tune *t, const es_policy *proto, const char *family, es_error *err);
/* The families es_tune_add_family knows, with one line each. */
ES_API size_t es_tune_n_known_families(void);
ES_API const char *es_tune_known_family(size_t i, const char **doc);

/*
 * Build every family's front on the opt part of the calibration items, the
 * global front across families, then test the global front's candidates in
 * order (conservative to aggressive, by their opt-part loss) on the rest
 * (fixed-sequence testing at level delta) and choose the cheapest certified
 * one; or, with a token budget, the best EM within it.  ES_ENOTSUP (with
 * err saying why and what would help) when no candidate is certified.
 */
ES_API int es_tune_run(es_tune *t, es_error *err);

/* The fronts: family f's (f < es_tune_n_families), or the global one (f = -1),
 * with their figures on the items es_tune_front_data holds. */
ES_API size_t es_tune_n_families(const es_tune *t);
ES_API const char *es_tune_family_name(const es_tune *t, size_t f);
ES_API size_t es_tune_front_size(const es_tune *t, int f);
ES_API const es_tune_point *es_tune_front_point(const es_tune *t, int f, size_t i);
/* Hypervolume of a front against `full`: the area of (cost, EM) space the
 * front dominates with cost in [0, 1] and EM above full's minus 5 points,
 * in cost x EM points. */
ES_API double es_tune_hypervolume(const es_tune *t, int f);
/* The items the fronts (and the figures of the tested and chosen points)
 * were measured on, after es_tune_run: the opt part of the calibration
 * items, or all of them with a token budget.  Borrowed from t; NULL before
 * es_tune_run.  Evaluating a policy on it (es_tune_evaluate) places it on
 * the same axes as the fronts. */
ES_API const es_tune_data *es_tune_front_data(const es_tune *t);
/* The chosen point; ES_ENOTSUP when none. */
ES_API int es_tune_chosen(const es_tune *t, es_tune_point *out);
/* The candidates tested, in the order tested, with their p-values. */
ES_API size_t es_tune_n_tested(const es_tune *t);
ES_API const es_tune_point *es_tune_tested(const es_tune *t, size_t i);

/* --------------------------------------------------------- evaluation */

/* A policy (and full) on a set of items: the figures of a point, with the
 * EM change's paired bootstrap 95% interval, pooled over all items. */
typedef struct es_tune_eval {
    es_tune_point p;
    double d_em, d_lo, d_hi;    /* EM change against full (fraction), 95% CI */
    double full_tokens;         /* full's mean tokens per item */
    double oracle_tokens;       /* the reference oracle's mean tokens (stable-final on
                                   traces with probes, else consistency), as eval's */
    double oracle_share;        /* the oracle's tokens / full's, mean over items (as p.share) */
    double oracle_x;            /* tokens / oracle tokens */
} es_tune_eval;

ES_API int es_tune_evaluate(const es_tune_data *d, const char *spec, const es_tune_opts *o, es_tune_eval *out,
                            es_error *err);
/* The same for a policy object (a clone of it per thread). */
ES_API int es_tune_evaluate_policy(const es_tune_data *d, const es_policy *proto, const es_tune_opts *o,
                                   es_tune_eval *out, es_error *err);

/* ------------------------------------------- per-item figures (cells.c) */

/* What a policy did on one item, each a mean over the item's orders. */
typedef struct es_tune_cell {
    double wrong;               /* share of orders wrong where full is right */
    double disagree;            /* share of orders answering other than full */
    double correct;             /* share of orders answering correctly */
    double tokens;              /* mean tokens, probe cost included */
} es_tune_cell;

/*
 * The policy `spec` at each of `values` of the parameter its across rule
 * compares (es_policy_sweep_param: "threshold", "m"), on every item of d, in
 * one exact sweep: cells[v * n_items + i] for value v and item i (d's
 * order).  A rule with nothing to sweep takes values NaN (the spec as it
 * is).  full (may be NULL): full's cell of each item (wrong and disagree 0).
 * Orders, seed, threads and probe cost from o (NULL = defaults).
 */
ES_API int es_tune_cells(const es_tune_data *d, const char *spec, const double *values, size_t n_values,
                         const es_tune_opts *o, es_tune_cell *cells, es_tune_cell *full, es_error *err);

/* A valid p-value for "the mean loss exceeds eps" from n items' losses in
 * [0, 1] (each an item's mean over its orders): the betting test of
 * Learn-then-Test (docs/tuning.md), the items taken in an order fixed by
 * seed. */
ES_API double es_tune_pvalue(const double *loss, size_t n, double eps, double delta, uint64_t seed);
/* How many items, none of them lost, certify a mean loss of at most eps at
 * delta by the exact binomial test: ceil(log delta / log(1 - eps)), 460 at
 * eps = 0.005, delta = 0.1 (the betting test needs somewhat more).  NaN for
 * eps or delta outside (0, 1). */
ES_API double es_tune_items_needed(double eps, double delta);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_TUNE_H */
