/* policy.h - internals of the stopping policies shared by policy.c and spec.c. */
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
    double threshold;     /* ac-beta, ac-dirichlet, entropy, deer, deepconf consensus */
    double fraction;      /* majority */
    double eta;           /* deepconf: percent of warm-up traces kept (10 = DeepConf-low) */
    uint32_t window;      /* esc: samples per window; deepconf: tokens per group */
    uint32_t k;           /* dynasor: agreeing probes; convergence: repeats */
    uint32_t max_samples; /* across cap, 0 = none; budget:samples */
    uint32_t min_samples; /* across: never stop before */
    uint32_t max_tokens;  /* budget:tokens */
    uint32_t min_tokens;  /* within: ignore probes before this many tokens */
    uint32_t top_k;       /* ac-dirichlet: counts kept */
    uint32_t warmup;      /* deepconf: warm-up traces per question */
} rule_cfg;

/* Parse a spec ("a:k=v,k=v+b") into the within and across rules and write the
 * canonical spec.  deepconf fills both.  0 or ES_EPARSE with a message. */
int es_spec_parse(const char *spec, rule_cfg *within, rule_cfg *across, char *canon, size_t canon_cap,
                  es_error *err);

#endif
