/*
 * meta_int.h - internals of the meta-learning layer, shared by its files:
 * family.c (families, grids, scales), task.c (a task's per-item figures and
 * descriptor), train.c (the prior learned from tasks), adapt.c (a new task
 * from k items), prior_json.c (the prior file).
 */
#ifndef ES_META_INT_H
#define ES_META_INT_H

#include "earlystop_meta.h"

enum { MT_MAX_GRID = 128, MT_MAX_FAMILIES = 8, MT_N_K = 8 };

typedef enum mt_scale { MT_SCALE_LOG = 0, MT_SCALE_NEGLOG1M = 1, MT_SCALE_LINEAR = 2 } mt_scale;

/* A family: a base spec, the key swept, its scale, and the grid of values,
 * conservative first (z decreasing). */
typedef struct mt_family {
    char name[64];
    char spec[512];
    char key[64];
    mt_scale scale;
    size_t n_grid;
    double grid[MT_MAX_GRID];
    const char *doc;     /* built-in families only */
    int never_default;   /* built-in families only: never the prior's default (family.c says why) */
} mt_family;

/* family.c */
size_t mt_builtin_count(void);
const mt_family *mt_builtin(size_t i);
double mt_to_z(mt_scale s, double v);
double mt_from_z(mt_scale s, double z);
const char *mt_scale_name(mt_scale s);
int mt_scale_parse(const char *name, mt_scale *out);
/* The spec of value v of family fam (canonical, full precision). */
int mt_spec_of(const mt_family *fam, double v, char *buf, size_t cap, es_error *err);
/* The grid point whose z is nearest z (ties to the conservative side). */
size_t mt_nearest(const mt_family *fam, double z);
/* The same family (name, spec, key, scale, grid)? */
int mt_same_family(const mt_family *a, const mt_family *b);
/* A family's definition is sound: the spec names a swept key, the grid is
 * in range and conservative first.  err names `where`. */
int mt_family_check(const mt_family *fam, const char *where, es_error *err);

/* Per-item figures that need no gold, summed over a task's items into its
 * descriptor. */
typedef struct mt_item_desc {
    double samples;       /* samples drawn */
    double leader;        /* the leader's votes */
    double second;        /* the runner-up's votes */
    double distinct;      /* distinct answers (the null answer counts as one) */
    double nulls;         /* samples without an answer */
    double tokens;        /* tokens of all samples */
    double probes, probes_agree; /* probes, and those equal to their sample's final answer */
} mt_item_desc;

struct es_meta_task {
    char name[256];
    size_t n;                        /* items */
    size_t n_fam;
    mt_family fam[MT_MAX_FAMILIES];
    es_tune_cell *cells[MT_MAX_FAMILIES]; /* [n_grid * n]: cell (g, i) at g * n + i */
    es_tune_cell *full;              /* [n] */
    mt_item_desc *desc;              /* [n] */
    int applies;
};

/* One family and kind of label, as learned. */
typedef struct mt_fit {
    double mean, var;                /* the tasks' best z: population mean and variance */
    double coef[ES_META_N_DESC + 1]; /* intercept, then standardised descriptor coefficients */
    double lambda;                   /* the ridge penalty chosen (leave-one-task-out) */
    double resid_var;                /* leave-one-task-out squared error of the regression */
    double k[MT_N_K];                /* k of the noise table */
    double bias[MT_N_K], noise[MT_N_K]; /* the k items' best minus the task's: mean, variance */
    size_t n_k;
    size_t g_default;                /* the prior's default grid point */
} mt_fit;

typedef struct mt_task_rec {
    char name[256];
    size_t items;
    double x[ES_META_N_DESC];
    double z[MT_MAX_FAMILIES][ES_META_N_LABELS]; /* the task's best, NaN where none */
} mt_task_rec;

struct es_meta_prior {
    double eps, delta;
    uint32_t shuffles;
    uint64_t seed;
    size_t n_fam;
    mt_family fam[MT_MAX_FAMILIES];
    size_t default_fam;
    double x_mean[ES_META_N_DESC], x_scale[ES_META_N_DESC]; /* standardisation (scale 0: unused) */
    mt_fit fit[MT_MAX_FAMILIES][ES_META_N_LABELS];
    size_t n_tasks;
    mt_task_rec *tasks;
};

/* task.c */
/* The first-crossing best of family f's cells over the items `items` (NULL:
 * all n), loss by labels. */
size_t mt_best(const es_meta_task *t, size_t f, es_meta_labels l, double eps, const uint32_t *items, size_t n);
/* Each item's loss at grid point g (labels' loss) into out[n]. */
void mt_item_losses(const es_meta_task *t, size_t f, size_t g, es_meta_labels l, double *out);
double mt_cell_loss(const es_tune_cell *c, es_meta_labels l);

/* train.c: the standardised descriptor and the regression's prediction. */
double mt_predict(const es_meta_prior *p, const mt_fit *fit, const double x[ES_META_N_DESC]);
/* The noise table at k (interpolated in log k). */
void mt_noise_at(const mt_fit *fit, double k, double *bias, double *var);

/* splitmix64 step: the layer's one seeded generator. */
uint64_t mt_rand(uint64_t *state);
/* n distinct indices of 0..m-1 (a seeded partial shuffle), in increasing order. */
int mt_draw(uint64_t *state, size_t m, size_t n, uint32_t *out);

#endif
