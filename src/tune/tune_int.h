/*
 * tune_int.h - internals of the tuning layer, shared by its files:
 * data.c (pooled items), sweep.c (outcomes, exact sweeps), family.c (the
 * families and their grids), front.c (Pareto fronts), tune.c (the tuner).
 */
#ifndef ES_TUNE_INT_H
#define ES_TUNE_INT_H

#include "earlystop_tune.h"
#include "risk.h"

typedef struct tn_file {
    const es_traceset *ts;
    char name[256];
} tn_file;

typedef struct tn_ref {
    uint32_t file, index;   /* an item: its file and its index there */
} tn_ref;

struct es_tune_data {
    tn_file *files;
    size_t n_files, cap_files;
    tn_ref *items;
    size_t n_items, cap_items;
};

/* What a policy did on one item in one order. */
typedef struct tn_out {
    uint64_t tokens;       /* generated + probe cost */
    uint64_t kv;           /* the largest round's tokens */
    int32_t answer;
    uint8_t correct;
} tn_out;

/*
 * A set of items (a subset of the pooled ones) with R orders each, and what
 * full did on every (item, order): the baseline every loss and share is
 * measured against.  io = k * R + r names item k's order r.
 */
typedef struct tn_set {
    const es_tune_data *d;
    uint32_t *items;       /* [n] indices into d->items */
    size_t n;
    uint32_t R;            /* orders per item; 1 with shuffles = 0 (file order) */
    const es_tune_opts *o;
    tn_out *base;          /* [n * R] full's outcomes */
    double *base_cost;     /* [n] full's mean cost per order: tokens or kv */
    double *base_tokens;   /* [n] full's mean tokens per order */
    double em_full;
    uint32_t *file_n;      /* per_file: [d->n_files] items of each file in the set; else NULL */
} tn_set;

/* The figures of one candidate as a sweep walks: integer sums where they
 * can be, so that sums do not depend on the order of events. */
typedef struct tn_sum {
    uint64_t correct;
    uint64_t tokens;
    uint64_t kv;
    int64_t loss;
    double share;          /* sum over items of (mean tokens / full's mean tokens) */
    double cost;           /* the same for the objective's cost (tokens or kv) */
    double worst;          /* per_file: the largest file's mean loss (from integer per-file sums) */
} tn_sum;

/* One point of a sweep: the swept parameter's value and the figures. */
typedef struct tn_cand {
    double value;
    tn_sum sum;
} tn_cand;

/* A configuration: a policy and, when it can be swept, the key swept. */
typedef struct tn_config {
    es_policy *proto;
    const char *sweep_key;  /* NULL: grid point only */
    char family[64];
} tn_config;

/* data.c */
void tn_view(const es_tune_data *d, size_t item, es_item_view *v);
int tn_data_subset(const es_tune_data *d, const uint32_t *items, size_t n, es_tune_data **out);

/* sweep.c */
int tn_set_init(tn_set *s, const es_tune_data *d, uint32_t *items, size_t n, const es_tune_opts *o, es_error *err);
void tn_set_free(tn_set *s);
void tn_point(const tn_set *s, const tn_sum *sum, es_tune_point *p);
int tn_loss(es_tune_loss loss, const tn_out *o, const tn_out *full);

/* The exact sweep of a configuration on a set: its candidates in order
 * from conservative to aggressive (cands, n_cands; malloc'd), and, when
 * `at` is given, a call for each of the n_at values there (any order; i is
 * the index in `at`; NaN stands for a grid point's own setting) with each
 * item's loss count over its orders and every (item, order)'s outcome at
 * that value (for Learn-then-Test and evaluation). */
typedef int (*tn_at_fn)(void *ctx, size_t i, const int32_t *loss_counts, const tn_sum *sum, const tn_out *cur);
int tn_sweep(const tn_set *s, const tn_config *c, tn_cand **cands, size_t *n_cands, const double *at, size_t n_at,
             tn_at_fn fn, void *ctx, es_error *err);

/* front.c */
/* Keep the points no other point beats on both cost (lower) and EM (higher);
 * sorted by cost.  Returns the new count. */
size_t tn_pareto(es_tune_point *p, size_t n);
/* The same on (cost, loss), lower loss better: where a loss bound chooses. */
size_t tn_pareto_loss(es_tune_point *p, size_t n);
double tn_hypervolume(const es_tune_point *p, size_t n, double em_full);

/* family.c */
typedef struct tn_family tn_family;
int tn_family_configs(const char *name, const es_tune_data *d, tn_config **out, size_t *n, es_error *err);
void tn_configs_free(tn_config *c, size_t n);
int tn_family_applies(const char *name, const es_tune_data *d);
size_t tn_family_count(void);
const char *tn_family_name(size_t i, const char **doc);

#endif
