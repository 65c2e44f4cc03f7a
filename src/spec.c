/*
 * spec.c - policy spec strings: "name:key=value,key=value+name2:...".
 *
 * One table lists every rule, its level (within a sample, across samples, or
 * both) and its parameters with defaults and bounds, so parsing, validation,
 * error messages and the canonical spec all come from the same place.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

enum { LV_WITHIN = 1, LV_ACROSS = 2, LV_BOTH = 3 };

typedef struct param_def {
    const char *key;
    size_t offset;      /* into rule_cfg */
    int integer;        /* uint32_t field, else double */
    double def, lo, hi;
} param_def;

#define PD(key, field, def, lo, hi) {key, offsetof(rule_cfg, field), 0, def, lo, hi}
#define PI(key, field, def, lo, hi) {key, offsetof(rule_cfg, field), 1, def, lo, hi}
#define MAXP 6

typedef struct rule_def {
    const char *name;
    rule_kind kind;
    int level;
    param_def params[MAXP];
} rule_def;

static const rule_def rules[] = {
    {"full", RULE_FULL, LV_ACROSS, {PI("max", max_samples, 0, 0, 1e9)}},
    {"budget", RULE_BUDGET_SAMPLES, LV_BOTH,
     {PI("samples", max_samples, 0, 0, 1e9), PI("tokens", max_tokens, 0, 0, 4e9)}},
    {"ac-beta", RULE_AC_BETA, LV_ACROSS,
     {PD("threshold", threshold, 0.95, 0, 1), PI("min", min_samples, 1, 1, 1e9),
      PI("max", max_samples, 0, 0, 1e9)}},
    {"ac-dirichlet", RULE_AC_DIRICHLET, LV_ACROSS,
     {PD("threshold", threshold, 0.95, 0, 1), PI("top_k", top_k, 5, 2, 64), PI("min", min_samples, 1, 1, 1e9),
      PI("max", max_samples, 0, 0, 1e9)}},
    {"majority", RULE_MAJORITY, LV_ACROSS,
     {PD("fraction", fraction, 0.8, 0, 1), PI("min", min_samples, 2, 1, 1e9), PI("max", max_samples, 0, 0, 1e9)}},
    {"entropy", RULE_ENTROPY, LV_ACROSS,
     {PD("threshold", threshold, 0.75, 0, 1), PI("min", min_samples, 2, 1, 1e9),
      PI("max", max_samples, 0, 0, 1e9)}},
    {"esc", RULE_ESC, LV_ACROSS, {PI("window", window, 5, 1, 1e6), PI("max", max_samples, 0, 0, 1e9)}},
    {"deer", RULE_DEER, LV_WITHIN,
     {PD("threshold", threshold, 0.95, 0, 1), PI("min_tokens", min_tokens, 0, 0, 4e9)}},
    {"dynasor", RULE_DYNASOR, LV_WITHIN, {PI("k", k, 3, 1, 1e6), PI("min_tokens", min_tokens, 0, 0, 4e9)}},
    {"convergence", RULE_CONVERGENCE, LV_WITHIN, {PI("m", k, 2, 1, 1e6), PI("min_tokens", min_tokens, 0, 0, 4e9)}},
    {"deepconf", RULE_DEEPCONF, LV_BOTH,
     {PI("warmup", warmup, 16, 1, 1e6), PD("eta", eta, 10, 0, 100), PI("window", window, 2048, 1, 1e7),
      PD("threshold", threshold, 0.95, 0, 1), PI("max", max_samples, 0, 0, 1e9)}},
};
#define N_RULES (sizeof rules / sizeof rules[0])

static const rule_def *find_rule(const char *name, size_t n)
{
    for (size_t i = 0; i < N_RULES; i++)
        if (strlen(rules[i].name) == n && !strncmp(rules[i].name, name, n)) return &rules[i];
    return NULL;
}

static void set_defaults(const rule_def *d, rule_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = d->kind;
    for (int i = 0; i < MAXP && d->params[i].key; i++) {
        const param_def *p = &d->params[i];
        if (p->integer) *(uint32_t *)((char *)c + p->offset) = (uint32_t)p->def;
        else *(double *)((char *)c + p->offset) = p->def;
    }
}

/* Comma-separated list of a rule's keys, for error messages. */
static void list_keys(const rule_def *d, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < MAXP && d->params[i].key && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", d->params[i].key);
}

static void list_rules(char *buf, size_t cap)
{
    size_t at = 0;
    for (size_t i = 0; i < N_RULES && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", rules[i].name);
}

/* Apply "key=value" to c. */
static int set_param(const rule_def *d, rule_cfg *c, const char *kv, size_t n, es_error *err)
{
    const char *eq = memchr(kv, '=', n);
    char keys[160];
    list_keys(d, keys, sizeof keys);
    if (!eq)
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: expected key=value, got '%.*s' (keys: %s)",
                            d->name, (int)n, kv, keys);
    size_t kn = (size_t)(eq - kv);
    for (int i = 0; i < MAXP && d->params[i].key; i++) {
        const param_def *p = &d->params[i];
        if (strlen(p->key) != kn || strncmp(p->key, kv, kn)) continue;
        char val[64];
        size_t vn = n - kn - 1;
        if (vn == 0 || vn >= sizeof val) break;
        memcpy(val, eq + 1, vn);
        val[vn] = '\0';
        char *end;
        errno = 0;
        double x = strtod(val, &end);
        if (errno || *end || !(x >= p->lo && x <= p->hi) || (p->integer && x != (double)(uint64_t)x))
            return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: %s must be %s in [%g, %g], got '%s'",
                                d->name, p->key, p->integer ? "an integer" : "a number", p->lo, p->hi, val);
        if (p->integer) *(uint32_t *)((char *)c + p->offset) = (uint32_t)x;
        else *(double *)((char *)c + p->offset) = x;
        return ES_OK;
    }
    return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: unknown or empty parameter '%.*s' (keys: %s)",
                        d->name, (int)n, kv, keys);
}

/* Canonical "name:key=value,..." of one rule. */
static size_t canon_rule(const rule_def *d, const rule_cfg *c, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "%s", d->name);
    for (int i = 0; i < MAXP && d->params[i].key && at < cap; i++) {
        const param_def *p = &d->params[i];
        const char *sep = i ? "," : ":";
        if (p->integer)
            at += (size_t)snprintf(buf + at, cap - at, "%s%s=%u", sep, p->key, *(const uint32_t *)((const char *)c + p->offset));
        else
            at += (size_t)snprintf(buf + at, cap - at, "%s%s=%g", sep, p->key, *(const double *)((const char *)c + p->offset));
    }
    return at;
}

/* Place a parsed budget rule: tokens go within, samples across. */
static int place_budget(const rule_cfg *c, rule_cfg *within, rule_cfg *across, es_error *err)
{
    if (!c->max_tokens && !c->max_samples)
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "budget: set samples=N and/or tokens=T");
    if (c->max_tokens) {
        if (within->kind) goto twice;
        *within = *c;
        within->kind = RULE_BUDGET_TOKENS;
    }
    if (c->max_samples) {
        if (across->kind) goto twice;
        *across = *c;
        across->kind = RULE_BUDGET_SAMPLES;
    }
    return ES_OK;
twice:
    return es_error_set(err, ES_EPARSE, "", 0, "policy", "budget: that level already has a rule");
}

static int place(const rule_def *d, const rule_cfg *c, rule_cfg *within, rule_cfg *across, es_error *err)
{
    if (d->kind == RULE_BUDGET_SAMPLES) return place_budget(c, within, across, err);
    int lv = d->level;
    if (((lv & LV_WITHIN) && within->kind) || ((lv & LV_ACROSS) && across->kind))
        return es_error_set(err, ES_EPARSE, "", 0, "policy",
                            "%s: combine at most one within-sample and one across-sample rule", d->name);
    if (lv & LV_WITHIN) *within = *c;
    if (lv & LV_ACROSS) *across = *c;
    return ES_OK;
}

/* Parse one "name[:params]" part of length n. */
static int parse_part(const char *s, size_t n, rule_cfg *within, rule_cfg *across, char *canon, size_t cap,
                      size_t *at, es_error *err)
{
    const char *colon = memchr(s, ':', n);
    size_t nn = colon ? (size_t)(colon - s) : n;
    const rule_def *d = find_rule(s, nn);
    if (!d) {
        char names[256];
        list_rules(names, sizeof names);
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "unknown policy '%.*s' (known: %s)", (int)nn, s, names);
    }
    rule_cfg c;
    set_defaults(d, &c);
    const char *p = colon ? colon + 1 : s + n, *end = s + n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        int rc = set_param(d, &c, p, len, err);
        if (rc) return rc;
        p += len + (comma ? 1 : 0);
    }
    int rc = place(d, &c, within, across, err);
    if (rc) return rc;
    if (*at && *at < cap) *at += (size_t)snprintf(canon + *at, cap - *at, "+");
    if (*at < cap) *at += canon_rule(d, &c, canon + *at, cap - *at);
    return ES_OK;
}

int es_spec_parse(const char *spec, rule_cfg *within, rule_cfg *across, char *canon, size_t canon_cap,
                  es_error *err)
{
    memset(within, 0, sizeof *within);
    memset(across, 0, sizeof *across);
    if (!spec || !*spec) return es_error_set(err, ES_EPARSE, "", 0, "policy", "empty policy spec");
    size_t at = 0;
    canon[0] = '\0';
    const char *p = spec;
    for (;;) {
        const char *plus = strchr(p, '+');
        size_t n = plus ? (size_t)(plus - p) : strlen(p);
        if (n == 0) return es_error_set(err, ES_EPARSE, "", 0, "policy", "empty part in spec '%s'", spec);
        int rc = parse_part(p, n, within, across, canon, canon_cap, &at, err);
        if (rc) return rc;
        if (!plus) break;
        p = plus + 1;
    }
    if (!across->kind) {
        /* a within-sample rule alone: every sample drawn (one, for long traces) */
        across->kind = RULE_FULL;
    }
    return ES_OK;
}
