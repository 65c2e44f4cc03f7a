/*
 * registry.c - the built-in rules, in the order `eval --help` lists them.
 * A new rule is a file under src/core/rules/ and one line here.
 */
#include <string.h>

#include "rule.h"

extern const es_rule_def es_rule_full, es_rule_budget, es_rule_ac_beta, es_rule_ac_dirichlet, es_rule_majority,
    es_rule_entropy, es_rule_esc, es_rule_deer, es_rule_dynasor, es_rule_convergence, es_rule_deepconf;

const es_rule_def *const es_rule_registry[] = {
    &es_rule_full,   &es_rule_budget, &es_rule_ac_beta, &es_rule_ac_dirichlet, &es_rule_majority,   &es_rule_entropy,
    &es_rule_esc,    &es_rule_deer,   &es_rule_dynasor, &es_rule_convergence,  &es_rule_deepconf,
};
const size_t es_rule_registry_n = sizeof es_rule_registry / sizeof es_rule_registry[0];

const es_rule_def *es_rule_find(const char *name, size_t n)
{
    for (size_t i = 0; i < es_rule_registry_n; i++)
        if (strlen(es_rule_registry[i]->name) == n && !strncmp(es_rule_registry[i]->name, name, n))
            return es_rule_registry[i];
    return NULL;
}
