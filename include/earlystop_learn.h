/*
 * earlystop_learn.h - learned stopping policies (libearlystop-learn):
 * training data from replayed episodes, two learners (fitted-Q iteration,
 * REINFORCE) and a supervised baseline, the operating point chosen by
 * Learn-then-Test, and the leave-one-file-out evaluation.
 * docs/learning.md describes the features, the reward and the results.
 *
 * A recorded trace reveals what every continuation gives: after any number
 * of samples (or at any probe) the answer the policy would give and the
 * tokens spent so far are known, so every episode is fully off-policy.
 * The reward of stopping is 1 when the answer is right (ES_REWARD_GOLD) or
 * equals the full run's (ES_REWARD_AGREE), minus lambda per token, tokens
 * counted as a share of the file's mean full run (one lambda means the
 * same on short and long traces).
 *
 * Depends on the tuning layer (earlystop_tune.h: the operating point is
 * its Learn-then-Test), the replay layer and the core.  Deterministic for
 * a seed whatever the thread count.
 */
#ifndef EARLYSTOP_LEARN_H
#define EARLYSTOP_LEARN_H

#include "earlystop_tune.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum es_learner {
    ES_LEARNER_FQI = 0,        /* optimal stopping: fitted-Q iteration (backward induction) */
    ES_LEARNER_REINFORCE = 1,  /* policy gradient with a learned baseline */
    ES_LEARNER_LOGISTIC = 2    /* no lambda: the probability that stopping now is rewarded */
} es_learner;

typedef enum es_reward {
    ES_REWARD_AGREE = 0,       /* the answer equals the full run's (no labels needed) */
    ES_REWARD_GOLD = 1         /* the answer is correct */
} es_reward;

ES_API const char *es_learner_name(es_learner l);
ES_API int es_learner_parse(const char *name, es_learner *out);

enum { ES_LEARN_MAX_LAMBDAS = 16, ES_LEARN_MAX_BUDGETS = 8, ES_LEARN_MAX_SETS = 4 };

typedef struct es_learn_opts {
    int level;                  /* ES_AT_WITHIN, ES_AT_ACROSS or both (bits) */
    es_learner learner;
    es_reward reward;
    const char *across_features;/* comma-separated catalogue names; NULL: the defaults.  Several
                                   sets, ';' between them (at most ES_LEARN_MAX_SETS, level across
                                   only): each budget takes the model (set and lambda) that
                                   Learn-then-Test finds cheapest there */
    const char *within_features;
    const char *required;       /* comma-separated names among the heads' features that must be
                                   present for a head to stop (es_stopper_head.required); NULL: none */
    const es_stopper *across_from; /* level within only: the within head is calibrated beside this
                                   stopper's across head, at its thresholds for each budget (every
                                   budget must be one of its points); the result has both heads */
    uint32_t hidden;            /* 0: linear nets; else one tanh layer of this many units (<= 64) */
    double lambdas[ES_LEARN_MAX_LAMBDAS];  /* the lambdas tried (Learn-then-Test picks one) */
    size_t n_lambdas;
    double clip;                /* z-scores clipped to +-clip (5) */
    double l2;                  /* ridge / weight decay (1e-3) */
    uint32_t min_samples;       /* never stop before this many samples (2) */
    uint32_t every;             /* read every m-th probe (1) */
    uint32_t orders;            /* random sample orders per training item (4) */
    uint32_t iterations;        /* FQI sweeps (30) / REINFORCE updates (400) */
    uint32_t epochs;            /* passes of an MLP fit (4) */
    double train_share;         /* share of each file's items that trains (0.5); the rest tests */
    uint64_t seed;
    int threads;                /* 0 = one per core */
    es_tune_opts tune;          /* Learn-then-Test: delta, loss, shuffles, probe cost, ... */
    double budgets[ES_LEARN_MAX_BUDGETS];  /* the EM budgets (points) calibrated, ascending */
    size_t n_budgets;
    size_t primary;             /* the budget that picks lambda (an index; 0) */
    void (*progress)(void *ctx, const char *what, size_t done, size_t total);
    void *progress_ctx;
} es_learn_opts;

/* Defaults: across, FQI, agree, default features, linear, lambdas 0.01 0.03
 * 0.1 0.3, clip 5, l2 1e-3, min 2, every 1, 4 orders, 30 iterations, 4
 * epochs, train share 0.5, seed 1, budgets 0.1 0.25 0.5 1 2 (points),
 * tune defaults with loss `wrong` and delta 0.1. */
ES_API void es_learn_opts_init(es_learn_opts *o);

/* The default feature lists (comma-separated names). */
ES_API const char *es_learn_default_features(int level);

/* What es_learn_fit found: the stopper (owned by the caller) and how it was
 * chosen. */
typedef struct es_learn_point {
    double max_em_drop;         /* points */
    double threshold, probe_threshold;  /* NaN where the level has no head */
    int certified;              /* 1: Learn-then-Test certified it at delta; -1: too few
                                   test items to certify anything, chosen on the training
                                   items without a guarantee; 0: nothing within the
                                   budget, the most conservative (no stop before the cap) */
    es_tune_point test;         /* its figures on the test part */
    double lambda;              /* the model's lambda at this budget (NaN: logistic) */
    uint32_t feature_set;       /* and its across feature set (index into the ';' list) */
} es_learn_point;

typedef struct es_learn_result {
    es_stopper *stopper;
    double lambda;              /* the one chosen (NaN for the logistic learner) */
    size_t n_points;
    es_learn_point points[ES_LEARN_MAX_BUDGETS];
    size_t train_items, test_items, train_states;
    double seconds;             /* wall time of the fit */
} es_learn_result;

/* Train on the items of d (each file's train_share, seeded), calibrate on
 * the rest by Learn-then-Test at every budget.  out->stopper is the
 * caller's to es_stopper_free. */
ES_API int es_learn_fit(const es_tune_data *d, const es_learn_opts *o, es_learn_result *out, es_error *err);
ES_API void es_learn_result_free(es_learn_result *r);

/* ---------------------------------------------------- leave one file out */

/* The figures of one method on one held-out file (or pooled). */
typedef struct es_lofo_cell {
    char spec[512];             /* the policy chosen for this file */
    double d_em;                /* EM change against full (fraction) */
    double tokens;              /* mean tokens per item */
    double oracle_x;            /* tokens / the reference oracle's */
    int certified;              /* learned and tuned: as es_learn_point.certified */
} es_lofo_cell;

enum { ES_LOFO_LEARNED = 0, ES_LOFO_TUNED = 1, ES_LOFO_AC_BETA = 2, ES_LOFO_ESC = 3, ES_LOFO_METHODS = 4 };

typedef struct es_lofo_row {
    char file[256];
    size_t items;
    double full_tokens, oracle_tokens;
    /* [method][budget]: learned and tuned at each budget; the anchors
     * (ac-beta, esc at their defaults) repeat across budgets */
    es_lofo_cell cell[ES_LOFO_METHODS][ES_LEARN_MAX_BUDGETS];
} es_lofo_row;

/* Leave each file of `files` out in turn: fit on the others (es_learn_fit,
 * and the tuned threshold rules by es_tune with every family that
 * applies, on the same split), evaluate both, and the anchors, on the
 * held-out file.  rows[n_files]: caller's.  anchors: the two default
 * specs (NULL: "ac-beta" and "esc"). */
ES_API int es_learn_lofo(const es_tune_data *files, const es_learn_opts *o, const char *const anchors[2],
                         es_lofo_row *rows, es_error *err);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_LEARN_H */
