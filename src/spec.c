/*
 * spec.c - policy spec strings: "name:key=value,key=value+name2:...".
 *
 * One table lists every rule, its level (within a sample, across samples, or
 * both) and its parameters with defaults and bounds, so parsing, validation,
 * error messages and the canonical spec all come from the same place.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

enum { LV_WITHIN = 1, LV_ACROSS = 2, LV_BOTH = 3 };

typedef enum param_kind { P_NUM, P_INT, P_ENUM } param_kind;

typedef struct param_def {
    const char *key;
    size_t offset;      /* into rule_cfg */
    param_kind kind;    /* double, uint32_t, or uint32_t index into `word` */
    double def, lo, hi;
    /* P_ENUM: the choices, "a|b", stored as their index.  P_NUM/P_INT: a word
     * that stands for word_value ("all" for max = 0), or NULL. */
    const char *word;
    double word_value;
    int omit_zero;      /* the canonical spec leaves the key out at 0 (an unset budget) */
} param_def;

#define PD(key, field, def, lo, hi) {key, offsetof(rule_cfg, field), P_NUM, def, lo, hi, NULL, 0, 0}
#define PI(key, field, def, lo, hi) {key, offsetof(rule_cfg, field), P_INT, def, lo, hi, NULL, 0, 0}
#define PE(key, field, words) {key, offsetof(rule_cfg, field), P_ENUM, 0, 0, 0, words, 0, 0}
/* a sample cap: "all" (or 0, the spelling of earlier versions) = no cap */
#define PMAX {"max", offsetof(rule_cfg, max_samples), P_INT, 0, 0, 1e9, "all", 0, 0}
#define MAXP 8

typedef struct rule_def {
    const char *name;
    rule_kind kind;
    int level;
    param_def params[MAXP];
} rule_def;

static const rule_def rules[] = {
    {"full", RULE_FULL, LV_ACROSS, {PMAX}},
    {"budget", RULE_BUDGET_SAMPLES, LV_BOTH,
     {{"samples", offsetof(rule_cfg, max_samples), P_INT, 0, 0, 1e9, NULL, 0, 1},
      {"tokens", offsetof(rule_cfg, max_tokens), P_INT, 0, 0, 4e9, NULL, 0, 1}}},
    {"ac-beta", RULE_AC_BETA, LV_ACROSS,
     {PD("threshold", threshold, 0.95, 0, 1), PI("min", min_samples, 1, 1, 1e9), PMAX}},
    {"ac-dirichlet", RULE_AC_DIRICHLET, LV_ACROSS,
     {PD("threshold", threshold, 0.95, 0, 1), PI("top_k", top_k, 5, 2, 64), PI("min", min_samples, 1, 1, 1e9), PMAX}},
    {"majority", RULE_MAJORITY, LV_ACROSS,
     {PD("fraction", fraction, 0.8, 0, 1), PI("min", min_samples, 2, 1, 1e9), PMAX}},
    {"entropy", RULE_ENTROPY, LV_ACROSS,
     {PD("threshold", threshold, 0.75, 0, 1), PI("min", min_samples, 2, 1, 1e9), PMAX}},
    {"esc", RULE_ESC, LV_ACROSS,
     {PI("window", window, 5, 1, 1e6), PE("remainder", skip_tail, "draw|skip"), PMAX}},
    {"deer", RULE_DEER, LV_WITHIN,
     {PD("threshold", threshold, 0.95, 0, 1), PI("min_tokens", min_tokens, 0, 0, 4e9)}},
    {"dynasor", RULE_DYNASOR, LV_WITHIN,
     {PI("k", k, 3, 1, 1e6), PI("min_tokens", min_tokens, 0, 0, 4e9), PE("decide", at_probe, "after-chunk|at-probe")}},
    {"convergence", RULE_CONVERGENCE, LV_WITHIN, {PI("m", k, 2, 1, 1e6), PI("min_tokens", min_tokens, 0, 0, 4e9)}},
    {"deepconf", RULE_DEEPCONF, LV_BOTH,
     {PI("warmup", warmup, 16, 1, 1e6), PD("eta", eta, 10, 0, 100), PI("window", window, 2048, 1, 1e7),
      {"consensus", offsetof(rule_cfg, consensus), P_NUM, -1, 0, 1, "off", -1, 0},
      PE("vote", plain_vote, "weighted|count"),
      {"round", offsetof(rule_cfg, round_digits), P_INT, 3, 0, 9, "off", UINT32_MAX, 0}, PMAX}},
};
#define N_RULES (sizeof rules / sizeof rules[0])

static const rule_def *find_rule(const char *name, size_t n)
{
    for (size_t i = 0; i < N_RULES; i++)
        if (strlen(rules[i].name) == n && !strncmp(rules[i].name, name, n)) return &rules[i];
    return NULL;
}

static double get_param(const param_def *p, const rule_cfg *c)
{
    if (p->kind == P_NUM) return *(const double *)((const char *)c + p->offset);
    return *(const uint32_t *)((const char *)c + p->offset);
}

static void put_param(const param_def *p, rule_cfg *c, double x)
{
    if (p->kind == P_NUM) *(double *)((char *)c + p->offset) = x;
    else *(uint32_t *)((char *)c + p->offset) = (uint32_t)x;
}

static void set_defaults(const rule_def *d, rule_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->kind = d->kind;
    for (int i = 0; i < MAXP && d->params[i].key; i++) put_param(&d->params[i], c, d->params[i].def);
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

/* Index of `val` among the '|'-separated choices, or -1. */
static int choice_index(const char *choices, const char *val)
{
    size_t n = strlen(val);
    for (int i = 0;; i++) {
        const char *bar = strchr(choices, '|');
        size_t len = bar ? (size_t)(bar - choices) : strlen(choices);
        if (len == n && !strncmp(choices, val, n)) return i;
        if (!bar) return -1;
        choices = bar + 1;
    }
}

/* The value text of one parameter; 0 or ES_EPARSE. */
static int parse_value(const rule_def *d, const param_def *p, const char *val, double *out, es_error *err)
{
    if (p->kind == P_ENUM) {
        int i = choice_index(p->word, val);
        if (i < 0) {
            char list[96];
            size_t n = 0;
            for (const char *w = p->word; *w && n + 3 < sizeof list; w++) {
                if (*w == '|') list[n++] = ',', list[n++] = ' ';
                else list[n++] = *w;
            }
            list[n] = '\0';
            return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: %s must be one of %s, got '%s'", d->name,
                                p->key, list, val);
        }
        *out = i;
        return ES_OK;
    }
    if (p->word && !strcmp(val, p->word)) {
        *out = p->word_value;
        return ES_OK;
    }
    char *end = (char *)val;
    double x = NAN;
    errno = 0;
    if (!isspace((unsigned char)val[0])) x = strtod(val, &end); /* strtod would skip it */
    if (errno || end == val || *end || !(x >= p->lo && x <= p->hi) || (p->kind == P_INT && x != (double)(uint64_t)x)) {
        char alt[48] = "";
        if (p->word) snprintf(alt, sizeof alt, " or '%s'", p->word);
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: %s must be %s in [%g, %g]%s, got '%s'", d->name,
                            p->key, p->kind == P_INT ? "an integer" : "a number", p->lo, p->hi, alt, val);
    }
    *out = x;
    return ES_OK;
}

/* Apply "key=value" to c; `given` has a bit per parameter already set, so
 * that a repeated key is an error rather than a silent override. */
static int set_param(const rule_def *d, rule_cfg *c, unsigned *given, const char *kv, size_t n, es_error *err)
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
        if (*given & 1u << i)
            return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: %s is given twice (last '%.*s')", d->name,
                                p->key, (int)n, kv);
        memcpy(val, eq + 1, vn);
        val[vn] = '\0';
        double x = 0;
        int rc = parse_value(d, p, val, &x, err);
        if (rc) return rc;
        put_param(p, c, x);
        *given |= 1u << i;
        return ES_OK;
    }
    return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: unknown or empty parameter '%.*s' (keys: %s)",
                        d->name, (int)n, kv, keys);
}

/* Shortest "%.*g" spelling of x that reads back as x (strtod), so that the
 * canonical spec round-trips: 0.99999999999 must not print as 1.  "1e+01"
 * is skipped for "10": '+' joins rules in a spec. */
static void format_double(double x, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (!strchr(buf, '+') && strtod(buf, NULL) == x) return;
    }
}

/* Canonical "name:key=value,..." of one rule. */
static size_t canon_rule(const rule_def *d, const rule_cfg *c, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "%s", d->name);
    int first = 1;
    for (int i = 0; i < MAXP && d->params[i].key && at < cap; i++) {
        const param_def *p = &d->params[i];
        double x = get_param(p, c);
        if (p->omit_zero && x == 0) continue;
        char val[64];
        if (p->kind == P_ENUM) {
            const char *w = p->word;
            for (uint32_t k = 0; k < (uint32_t)x && strchr(w, '|'); k++) w = strchr(w, '|') + 1;
            snprintf(val, sizeof val, "%.*s", (int)strcspn(w, "|"), w);
        } else if (p->word && x == p->word_value) {
            snprintf(val, sizeof val, "%s", p->word);
        } else if (p->kind == P_INT) {
            snprintf(val, sizeof val, "%u", (uint32_t)x);
        } else {
            format_double(x, val, sizeof val);
        }
        at += (size_t)snprintf(buf + at, cap - at, "%s%s=%s", first ? ":" : ",", p->key, val);
        first = 0;
    }
    return at;
}

/* Settings that parse one by one but cannot be meant together. */
static int check_rule(const rule_def *d, const rule_cfg *c, es_error *err)
{
    if (c->max_samples && c->min_samples > c->max_samples)
        return es_error_set(err, ES_EPARSE, "", 0, "policy",
                            "%s: min=%u is more than max=%u (the rule could never stop before the cap)", d->name,
                            c->min_samples, c->max_samples);
    if (d->kind == RULE_DEEPCONF && c->max_samples && c->warmup > c->max_samples)
        return es_error_set(err, ES_EPARSE, "", 0, "policy",
                            "deepconf: warmup=%u is more than max=%u (the warm-up could never end)", c->warmup,
                            c->max_samples);
    return ES_OK;
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
    unsigned given = 0;
    const char *p = colon ? colon + 1 : s + n, *end = s + n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        int rc = set_param(d, &c, &given, p, len, err);
        if (rc) return rc;
        p += len + (comma ? 1 : 0);
    }
    int rc = check_rule(d, &c, err);
    if (rc) return rc;
    rc = place(d, &c, within, across, err);
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
    if (at >= canon_cap)
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "spec too long: its canonical form needs %zu bytes, %zu at most",
                            at + 1, canon_cap);
    if (!across->kind) {
        /* a within-sample rule alone: every sample drawn (one, for long traces) */
        across->kind = RULE_FULL;
    }
    return ES_OK;
}
