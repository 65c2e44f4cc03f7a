/*
 * learn_int.h - internals of the learning layer, shared by its files:
 * episodes.c (states from replayed episodes), fit.c (standardisation,
 * logistic and ridge regression, small MLPs), learners.c (fitted-Q,
 * REINFORCE, logistic), learn.c (the fit with its operating points), lofo.c.
 */
#ifndef ES_LEARN_INT_H
#define ES_LEARN_INT_H

#include "earlystop_learn.h"

/* ------------------------------------------------------------- states */

enum { LR_MAY_STOP = 1, LR_TERMINAL = 2 };

/*
 * The decision states of many episodes, one level's features each.  An
 * episode's states are contiguous and in time order; its last state is
 * terminal (every sample drawn, the leader clinched, the sample's end):
 * there the policy stops whatever it scores.
 */
typedef struct lr_data {
    uint32_t d;            /* inputs per state */
    size_t n, cap;
    float *x;              /* [n][d] raw features, NaN = missing */
    float *reward;         /* [n] what stopping here is worth: agree or correct (0/1) */
    float *cost;           /* [n] tokens spent when stopping here / the file's mean full run */
    uint8_t *kind;         /* [n] LR_* */
    float *w;              /* [n] weight (1 / orders) */
    size_t n_ep, cap_ep;
    size_t *ep;            /* [n_ep + 1] first state of each episode */
} lr_data;

void lr_data_free(lr_data *s);
int lr_data_reserve(lr_data *s, size_t n);
/* Append src's episodes to dst (same d). */
int lr_data_append(lr_data *dst, const lr_data *src);

/* Build the states of the items with mask[i] != 0 of d (all when mask is
 * NULL) at one level (ES_AT_*), the head reading feature ids feat[0..nf),
 * `orders` seeded random orders per item, on threads. */
typedef struct lr_build {
    int level;             /* the head's level */
    int both;              /* the rule serves both levels: within states see the samples before */
    const uint32_t *feat;
    uint32_t nf;
    es_reward reward;
    uint32_t min_samples, every, orders;
    int32_t probe_cost;
    uint64_t seed;
    int threads;
} lr_build;

int lr_build_states(const es_tune_data *d, const uint8_t *mask, const lr_build *b, lr_data *out, es_error *err);

/* ------------------------------------------------------- normalisation */

/* z-scores: mean and scale (standard deviation, 1 where constant) over the
 * decision states, missing values skipped; z clipped to +-clip, 0 where
 * missing, exactly as the core's scorer. */
typedef struct lr_norm {
    uint32_t d;
    double mean[ES_STOPPER_MAX_INPUTS], scale[ES_STOPPER_MAX_INPUTS];
    double clip;
} lr_norm;

void lr_norm_fit(const lr_data *s, double clip, lr_norm *nz);
void lr_norm_apply(const lr_norm *nz, const float *x, double *z);

/* ----------------------------------------------------------------- nets */

/* A net as es_stopper_net holds it, with its own storage. */
typedef struct lr_net {
    uint32_t d, hidden;
    int sigmoid;
    double w1[ES_STOPPER_MAX_HIDDEN * ES_STOPPER_MAX_INPUTS], b1[ES_STOPPER_MAX_HIDDEN];
    double w2[ES_STOPPER_MAX_INPUTS > ES_STOPPER_MAX_HIDDEN ? ES_STOPPER_MAX_INPUTS : ES_STOPPER_MAX_HIDDEN];
    double b2;
} lr_net;

/* Output (after the logistic function when sigmoid), and the hidden
 * activations into h when given. */
double lr_net_eval(const lr_net *n, const double *z, double *h);
void lr_net_init(lr_net *n, uint32_t d, uint32_t hidden, int sigmoid, uint64_t seed);

/* A weighted fit of n rows z[i][d] to y[i] with weights w[i]: logistic
 * loss when the net is sigmoid (y in [0, 1]), squared loss when linear.
 * hidden = 0: exact (Newton / IRLS with step halving; closed-form ridge);
 * else Adam on minibatches, `epochs` passes from the net's current
 * weights (warm start), seeded.  l2 on the weights, not the biases. */
typedef struct lr_fit_opts {
    double l2;
    uint32_t epochs;
    uint64_t seed;
} lr_fit_opts;

int lr_net_fit(lr_net *n, const double *z, const double *y, const double *w, size_t rows, const lr_fit_opts *o);

/* The net's parameters as one vector, w1 | b1 | w2 | b2 (hidden) or w | b
 * (linear): how many, and packed into p (out = 1) or unpacked from it. */
size_t lr_net_n_params(const lr_net *n);
void lr_net_pack(const lr_net *n, double *p, int out);

/* d output-logit / d parameters at z, times c, added to g (packed as
 * above); h: the hidden activations lr_net_eval gave at z (unused when
 * linear). */
void lr_net_grad(const lr_net *n, const double *z, const double *h, double c, double *g);

/* ------------------------------------------------------------- learners */

/* A trained head: the normalisation and one or two nets (score = sum of
 * weight * output). */
typedef struct lr_head {
    lr_norm nz;
    uint32_t n_nets;
    lr_net net[2];
    double weight[2];
} lr_head;

typedef struct lr_train {
    es_learner learner;
    double lambda;
    uint32_t hidden, iterations, epochs;
    double l2, clip;
    uint64_t seed;
    void (*progress)(void *ctx, const char *what, size_t done, size_t total);
    void *progress_ctx;
} lr_train;

/* Standardised inputs of the states (n x d doubles, malloc'd). */
double *lr_standardise(const lr_data *s, const lr_norm *nz);

int lr_train_logistic(const lr_data *s, const lr_train *t, lr_head *h, es_error *err);
int lr_train_fqi(const lr_data *s, const lr_train *t, lr_head *h, es_error *err);
int lr_train_reinforce(const lr_data *s, const lr_train *t, lr_head *h, es_error *err);
int lr_train_head(const lr_data *s, const lr_train *t, lr_head *h, es_error *err);

/* The head's score on standardised inputs z. */
double lr_head_score(const lr_head *h, const double *z);

/* Fill an es_stopper_head from h (pointers into h; feat the head's ids). */
void lr_head_export(const lr_head *h, const uint32_t *feat, es_stopper_head *out);

/* Which items train (1) and which test (0): a seeded hash of each item's
 * file name and index, so a file splits the same way in every fold. */
uint8_t *lr_split_mask(const es_tune_data *d, double share, uint64_t seed);

/* learn.c: run Learn-then-Test on t and take its choice (certified 1);
 * where it certifies nothing but tested points, the training items' choice
 * (-1, or 0: the most conservative).  Else the tuner's error. */
int lr_tune_choose(es_tune *t, double budget, es_tune_point *chosen, int *certified, es_error *err);
/* The most samples an item has in any file (1: orders change nothing). */
uint32_t lr_max_samples(const es_tune_data *d);

/* Parse a comma-separated feature list of one level into ids. */
int lr_parse_features(const char *list, int level, uint32_t *ids, uint32_t *n, es_error *err);

/* splitmix64: the learners' random numbers (initial weights, minibatches,
 * sampled actions), deterministic for a seed. */
static inline uint64_t lr_mix(uint64_t *s)
{
    uint64_t x = (*s += 0x9E3779B97F4A7C15ULL);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static inline double lr_unif(uint64_t *s) { return (double)(lr_mix(s) >> 11) * (1.0 / 9007199254740992.0); }

#endif
