/* policy.h - internals of the stopping policies shared by policy.c, spec.c and replay.c. */
#ifndef ES_POLICY_H
#define ES_POLICY_H

#include <stdint.h>

#include "earlystop.h"

typedef enum rule_kind {
    RULE_NONE = 0,
    /* across samples */
    RULE_FULL,
    RULE_BUDGET_SAMPLES,
    RULE_AC_BETA,
    RULE_AC_DIRICHLET,
    RULE_MAJORITY,
    RULE_ENTROPY,
    RULE_ESC,
    /* within a sample */
    RULE_BUDGET_TOKENS,
    RULE_DEER,
    RULE_DYNASOR,
    RULE_CONVERGENCE,
    /* both levels at once */
    RULE_DEEPCONF
} rule_kind;

/* One rule's parameters (Config).  Unused fields stay at their defaults. */
typedef struct rule_cfg {
    rule_kind kind;
    double threshold;     /* ac-beta, ac-dirichlet, entropy, deer */
    double fraction;      /* majority */
    double eta;           /* deepconf: percent of warm-up traces kept (10 = DeepConf-low) */
    double consensus;     /* deepconf: the paper's consensus stop, < 0 = off (released code) */
    uint32_t window;      /* esc: samples per window; deepconf: tokens per group */
    uint32_t k;           /* dynasor: agreeing probes; convergence: repeats */
    uint32_t max_samples; /* across cap, 0 = none; budget:samples */
    uint32_t min_samples; /* across: never stop before */
    uint32_t max_tokens;  /* budget:tokens */
    uint32_t min_tokens;  /* within: ignore probes before this many tokens */
    uint32_t top_k;       /* ac-dirichlet: counts kept */
    uint32_t warmup;      /* deepconf: warm-up traces per question */
    uint32_t skip_tail;   /* esc remainder=skip: never draw the k mod window last samples (upstream) */
    uint32_t at_probe;    /* dynasor decide=at-probe: a probe's verdict is immediate */
    uint32_t plain_vote;  /* deepconf vote=count: every kept trace weighs 1 */
    uint32_t round_digits;/* deepconf: round trace confidences to this many decimals, UINT32_MAX = off */
} rule_cfg;

/* Parse a spec ("a:k=v,k=v+b") into the within and across rules and write the
 * canonical spec.  deepconf fills both.  0 or ES_EPARSE with a message. */
int es_spec_parse(const char *spec, rule_cfg *within, rule_cfg *across, char *canon, size_t canon_cap,
                  es_error *err);

/* Sequential rounds `samples` drawn samples took (see es_outcome.rounds). */
uint32_t es_policy_rounds(const es_policy *p, uint32_t samples);

/* 1 when the policy's decisions depend on the sequence of answers alone (no
 * within rule; an across rule that reads vote counts, not tokens or
 * confidences): then every order of an item whose samples all give one
 * answer stops at the same sample with the same answer, which the replay
 * evaluator uses to decide such an item once for all its orders. */
int es_policy_counts_only(const es_policy *p);

#endif
