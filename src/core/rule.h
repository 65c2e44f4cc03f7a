/*
 * rule.h - the interface every stopping rule implements (internal to the
 * core).  A rule is one file under src/core/rules/ that defines one
 * es_rule_def and is listed once in rules/registry.c; nothing else names it.
 *
 * A rule works at one or both levels:
 *   within a sample (ES_LEVEL_WITHIN): begin_sample, token, probe -> STOP
 *     ends the running sample;
 *   across samples (ES_LEVEL_ACROSS): begin_item, end_sample -> STOP draws no
 *     more samples, answer gives the final answer.
 * A policy holds one within rule and one across rule; a rule at both levels
 * (deepconf) is one instance in both places.  The policy (policy.c) owns the
 * parameters, the generic sample caps (the across rule's `min` and `max`)
 * and the error message; the event protocol around it (which probes are
 * made, what a stopped sample answers, budget forcing) is the session's
 * (session.c).
 *
 * Parameters are doubles in the order of the rule's table; a rule reads its
 * own by index (an enum in its file).  configure() turns them into what the
 * decisions use (AC-beta's threshold table, deepconf's buffers); the policy
 * calls it at creation and after every es_policy_set_param, never on the
 * decision path, so that is where a rule may allocate.  Every other hook
 * runs per item, sample, probe or token and allocates nothing, except
 * begin_item when a question has more answers than any before it.
 */
#ifndef ES_CORE_RULE_H
#define ES_CORE_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "earlystop.h"
#include "tally.h"

enum { ES_LEVEL_WITHIN = 1, ES_LEVEL_ACROSS = 2, ES_LEVEL_BOTH = 3 };

enum { ES_RULE_MAX_PARAMS = 8 };

typedef enum es_param_kind {
    ES_PARAM_REAL = 0,   /* a double in [lo, hi] */
    ES_PARAM_COUNT = 1,  /* a whole number in [lo, hi] */
    ES_PARAM_CHOICE = 2  /* one of the '|'-separated words, stored as its index */
} es_param_kind;

typedef struct es_param_def {
    const char *key;
    es_param_kind kind;
    double def, lo, hi;
    /* CHOICE: "a|b|c".  REAL/COUNT: a word that stands for `word_value`
     * ("all" for max = 0: no cap), or NULL */
    const char *word;
    double word_value;
    int omit;            /* the canonical spec leaves the key out: 1 at 0 (an unset
                          * budget), 2 at its default (`every`, added later: old
                          * canonical specs stay as they were) */
    const char *doc;     /* one line for --help and es_policy_param_info */
} es_param_def;

/* What the rule hooks may report beyond a verdict. */
typedef struct es_rule_msg {
    char text[200];
} es_rule_msg;

/* A probe as the within rule sees it. */
typedef struct es_probe_event {
    uint32_t at;              /* tokens generated before the probe */
    int32_t answer;           /* probed answer id, ES_NULL_ANSWER for none */
    float confidence;         /* mean token probability of the probed answer, NaN if unknown */
    float window_confidence;  /* sliding-window token confidence here, NaN if unknown */
    uint32_t cues;            /* text cues here (ES_CUE_*), 0 if unknown */
    const uint8_t *flags;     /* the driver's answer flags (es_policy_set_answer_flags), or NULL */
} es_probe_event;

/* A finished sample as the across rule sees it. */
typedef struct es_sample_event {
    int32_t answer;           /* the sample's answer (a stopped sample: what it was stopped with) */
    uint32_t tokens;
    float confidence;         /* NaN if unknown */
    uint32_t n;               /* samples finished in this question, this one included */
    int may_stop;             /* 0 below the rule's `min`: the policy ignores a STOP, so a
                               * costly statistic need not be computed */
    int last;                 /* 1 when the policy stops after this sample anyway (its cap) */
    uint32_t cap;             /* the question's sample cap (the caller's and the rule's), 0 = none */
    const uint8_t *flags;     /* the driver's answer flags (es_policy_set_answer_flags), or NULL */
} es_sample_event;

typedef struct es_rule_def {
    const char *name;
    unsigned level;                      /* ES_LEVEL_* the rule can serve */
    const es_param_def *params;
    uint32_t n_params;
    int min_param, max_param;            /* index of the across sample caps, -1 if none */
    int clinch_param;                    /* index of `clinch` (0: none), with tally below */
    const es_tally *(*tally)(const void *st); /* the vote whose leader the rule answers */
    size_t state_size;                   /* bytes of per-policy state, zeroed before configure */
    const char *doc;                     /* one line: what the rule does and where it comes from */

    /* Levels this configured instance occupies (budget: tokens within,
     * samples across; learned: its stopper's heads); NULL = `level`.
     * Called after configure. */
    unsigned (*levels)(const void *st, const double *param);
    /* A rule that reads a learned stopper gets the policy's (or the
     * built-in one, or NULL) here, before configure; the policy holds the
     * reference. */
    void (*attach)(void *st, const es_stopper *m);
    /* Validate settings that only make sense together and build what the
     * decisions use.  May allocate.  Non-zero (ES_EINVAL) with msg set when
     * the parameters cannot be meant together. */
    int (*configure)(void *st, const double *param, es_rule_msg *msg);
    void (*release)(void *st);           /* free what configure allocated; may be NULL */

    /* across (and a within rule's own, when it is not the across rule too) */
    int (*begin_item)(void *st, uint32_t max_answers);               /* ES_ENOMEM only */
    int (*end_sample)(void *st, const es_sample_event *ev, es_rule_msg *msg);
    int32_t (*answer)(const void *st);
    uint32_t (*rounds)(const void *st, uint32_t samples);             /* NULL: one per sample */
    uint32_t (*batch)(const void *st);                                /* NULL: 1 */
    /* 1 when the stop points depend on the sequence of answers alone (not on
     * tokens, confidences or probes): see es_policy_info.counts_only */
    int counts_only;
    /* clamp the caller's sample cap (ESC's remainder=skip); NULL = none */
    uint32_t (*sample_cap)(const void *st, uint32_t cap);
    /* For an exact sweep (src/tune): the parameter the rule's decision
     * compares a statistic with (-1: none), and after end_sample the set of
     * its values at which the rule stops here: value <= *b (returns
     * ES_BOUND_UPPER) or value >= *b (ES_BOUND_LOWER).  Must agree with
     * end_sample's verdict at every value, to the last bit. */
    int sweep_param;
    int (*boundary)(const void *st, double *b);

    /* within */
    void (*begin_sample)(void *st);
    int (*token)(void *st, float logprob, float token_confidence);
    int (*probe)(void *st, const es_probe_event *ev, es_rule_msg *msg);
    int32_t (*sample_answer)(const void *st);                        /* NULL or -1: the stopping probe's */
    uint32_t (*token_limit)(const void *st);                          /* NULL: UINT32_MAX */
    int needs_probes;                    /* 0 for a within rule that only caps tokens */
    uint32_t (*probe_lag)(const void *st);                            /* NULL: 0 */
    int (*reads_cues)(const void *st);                                /* NULL: 0 (es_policy_info) */
    int (*needs_cues)(const void *st);                                /* NULL: 0 (es_policy_info) */
    int every_param;                     /* index of `every`: read every m-th probe point (0: none) */
    uint32_t (*probe_every)(const void *st);  /* NULL: the `every` parameter's value; else the
                                               * spacing configure settled on (`every=auto`) */
} es_rule_def;

/* The built-in rules, in the order --help lists them (rules/registry.c). */
extern const es_rule_def *const es_rule_registry[];
extern const size_t es_rule_registry_n;

const es_rule_def *es_rule_find(const char *name, size_t n);

#endif
