/*
 * registry.c - the built-in rules, in the order `eval --help` lists them.
 * A new rule is a file under src/core/rules/ and one line here.
 */
#include <string.h>

#include "rule.h"

extern const es_rule_def es_rule_full, es_rule_budget, es_rule_ac_beta, es_rule_ac_dirichlet, es_rule_majority,
    es_rule_entropy, es_rule_esc, es_rule_margin, es_rule_deer, es_rule_dynasor, es_rule_convergence, es_rule_deepconf,
    es_rule_learned;

const es_rule_def *const es_rule_registry[] = {
    &es_rule_full, &es_rule_budget, &es_rule_ac_beta, &es_rule_ac_dirichlet, &es_rule_majority, &es_rule_entropy,
    &es_rule_esc,  &es_rule_margin, &es_rule_deer,    &es_rule_dynasor,      &es_rule_convergence, &es_rule_deepconf,
    &es_rule_learned,
};
const size_t es_rule_registry_n = sizeof es_rule_registry / sizeof es_rule_registry[0];

const es_rule_def *es_rule_find(const char *name, size_t n)
{
    for (size_t i = 0; i < es_rule_registry_n; i++)
        if (strlen(es_rule_registry[i]->name) == n && !strncmp(es_rule_registry[i]->name, name, n))
            return es_rule_registry[i];
    return NULL;
}

uint32_t es_rule_count(void) { return (uint32_t)es_rule_registry_n; }

int es_rule_get(uint32_t i, es_rule_info *out)
{
    if (i >= es_rule_registry_n) return ES_ERANGE;
    const es_rule_def *d = es_rule_registry[i];
    *out = (es_rule_info){.name = d->name, .doc = d->doc, .within = (d->level & ES_LEVEL_WITHIN) != 0,
                          .across = (d->level & ES_LEVEL_ACROSS) != 0, .n_params = d->n_params};
    return ES_OK;
}

int es_rule_param(uint32_t i, uint32_t k, es_param_info *out)
{
    if (i >= es_rule_registry_n || k >= es_rule_registry[i]->n_params) return ES_ERANGE;
    const es_rule_def *d = es_rule_registry[i];
    const es_param_def *p = &d->params[k];
    *out = (es_param_info){.rule = d->name, .key = p->key, .value = p->def, .lo = p->lo, .hi = p->hi,
                           .integer = p->kind != ES_PARAM_REAL, .choices = p->kind == ES_PARAM_CHOICE ? p->word : NULL,
                           .word = p->kind == ES_PARAM_CHOICE ? NULL : p->word, .word_value = p->word_value,
                           .doc = p->doc};
    return ES_OK;
}
