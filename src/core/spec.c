/*
 * spec.c - policy spec strings: "name:key=value,key=value+name2:...".
 *
 * The rules' own parameter tables (es_rule_def.params) drive parsing,
 * validation, error messages and the canonical spec, so a new rule brings
 * its syntax with it.  Parsing yields rule configurations (policy_int.h);
 * placing them at their levels and configuring them is policy.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

void es_spec_list_rules(char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < es_rule_registry_n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", es_rule_registry[i]->name);
}

/* Comma-separated list of a rule's keys, for error messages. */
static void list_keys(const es_rule_def *d, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < d->n_params && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", d->params[i].key);
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

void es_spec_rule_defaults(const es_rule_def *d, es_rule_conf *c)
{
    memset(c, 0, sizeof *c);
    c->def = d;
    for (uint32_t i = 0; i < d->n_params; i++) c->param[i] = d->params[i].def;
}

int es_spec_check_value(const es_rule_def *d, const es_param_def *p, double x, es_error *err)
{
    if (p->kind == ES_PARAM_CHOICE) {
        int n = 1;
        for (const char *w = p->word; *w; w++) n += *w == '|';
        if (x >= 0 && x < n && x == floor(x)) return ES_OK;
        return es_error_set(err, ES_EINVAL, "", 0, "policy", "%s: %s must be a choice index in [0, %d], got %g",
                            d->name, p->key, n - 1, x);
    }
    if (p->word && x == p->word_value) return ES_OK;
    if (!(x >= p->lo && x <= p->hi) || (p->kind == ES_PARAM_COUNT && x != (double)(uint64_t)x)) {
        char alt[48] = "";
        if (p->word) snprintf(alt, sizeof alt, " or '%s'", p->word);
        return es_error_set(err, ES_EINVAL, "", 0, "policy", "%s: %s must be %s in [%g, %g]%s, got %.17g", d->name,
                            p->key, p->kind == ES_PARAM_COUNT ? "an integer" : "a number", p->lo, p->hi, alt, x);
    }
    return ES_OK;
}

int es_spec_parse_value(const es_rule_def *d, const es_param_def *p, const char *val, double *out, es_error *err)
{
    if (p->kind == ES_PARAM_CHOICE) {
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
    if (errno || end == val || *end || !(x >= p->lo && x <= p->hi) ||
        (p->kind == ES_PARAM_COUNT && x != (double)(uint64_t)x)) {
        char alt[48] = "";
        if (p->word) snprintf(alt, sizeof alt, " or '%s'", p->word);
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: %s must be %s in [%g, %g]%s, got '%s'", d->name,
                            p->key, p->kind == ES_PARAM_COUNT ? "an integer" : "a number", p->lo, p->hi, alt, val);
    }
    *out = x;
    return ES_OK;
}

/* Apply "key=value" to c; `given` has a bit per parameter already set, so
 * that a repeated key is an error rather than a silent override. */
static int parse_kv(es_rule_conf *c, unsigned *given, const char *kv, size_t n, es_error *err)
{
    const es_rule_def *d = c->def;
    const char *eq = memchr(kv, '=', n);
    char keys[160];
    list_keys(d, keys, sizeof keys);
    if (!eq)
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: expected key=value, got '%.*s' (keys: %s)",
                            d->name, (int)n, kv, keys);
    size_t kn = (size_t)(eq - kv);
    for (uint32_t i = 0; i < d->n_params; i++) {
        const es_param_def *p = &d->params[i];
        if (strlen(p->key) != kn || strncmp(p->key, kv, kn)) continue;
        char val[64];
        size_t vn = n - kn - 1;
        if (vn == 0 || vn >= sizeof val) break;
        if (*given & 1u << i)
            return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s: %s is given twice (last '%.*s')", d->name,
                                p->key, (int)n, kv);
        memcpy(val, eq + 1, vn);
        val[vn] = '\0';
        int rc = es_spec_parse_value(d, p, val, &c->param[i], err);
        if (rc) return rc;
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

void es_spec_format_value(const es_param_def *p, double x, char *val, size_t cap)
{
    if (p->kind == ES_PARAM_CHOICE) {
        const char *w = p->word;
        for (uint32_t k = 0; k < (uint32_t)x && strchr(w, '|'); k++) w = strchr(w, '|') + 1;
        snprintf(val, cap, "%.*s", (int)strcspn(w, "|"), w);
    } else if (p->word && x == p->word_value) {
        snprintf(val, cap, "%s", p->word);
    } else if (p->kind == ES_PARAM_COUNT) {
        snprintf(val, cap, "%u", (uint32_t)x);
    } else {
        format_double(x, val, cap);
    }
}

size_t es_spec_format_rule(const es_rule_conf *c, char *buf, size_t cap)
{
    const es_rule_def *d = c->def;
    size_t at = (size_t)snprintf(buf, cap, "%s", d->name);
    int first = 1;
    for (uint32_t i = 0; i < d->n_params && at < cap; i++) {
        const es_param_def *p = &d->params[i];
        if ((p->omit == 1 && c->param[i] == 0) || (p->omit == 2 && c->param[i] == p->def)) continue;
        char val[64];
        es_spec_format_value(p, c->param[i], val, sizeof val);
        at += (size_t)snprintf(buf + at, cap - at, "%s%s=%s", first ? ":" : ",", p->key, val);
        first = 0;
    }
    return at;
}

/* Parse one "name[:params]" part of length n. */
static int parse_part(const char *s, size_t n, es_rule_conf *c, es_error *err)
{
    const char *colon = memchr(s, ':', n);
    size_t nn = colon ? (size_t)(colon - s) : n;
    const es_rule_def *d = es_rule_find(s, nn);
    if (!d) {
        char names[256];
        es_spec_list_rules(names, sizeof names);
        return es_error_set(err, ES_EPARSE, "", 0, "policy", "unknown policy '%.*s' (known: %s)", (int)nn, s, names);
    }
    es_spec_rule_defaults(d, c);
    unsigned given = 0;
    const char *p = colon ? colon + 1 : s + n, *end = s + n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        int rc = parse_kv(c, &given, p, len, err);
        if (rc) return rc;
        p += len + (comma ? 1 : 0);
    }
    return ES_OK;
}

int es_spec_parse(const char *spec, es_rule_conf *out, uint32_t *n_out, es_error *err)
{
    *n_out = 0;
    if (!spec || !*spec) return es_error_set(err, ES_EPARSE, "", 0, "policy", "empty policy spec");
    const char *p = spec;
    for (;;) {
        const char *plus = strchr(p, '+');
        size_t n = plus ? (size_t)(plus - p) : strlen(p);
        if (n == 0) return es_error_set(err, ES_EPARSE, "", 0, "policy", "empty part in spec '%s'", spec);
        if (*n_out == ES_POLICY_MAX_RULES)
            return es_error_set(err, ES_EPARSE, "", 0, "policy",
                                "'%s': combine at most one within-sample and one across-sample rule", spec);
        int rc = parse_part(p, n, &out[*n_out], err);
        if (rc) return rc;
        ++*n_out;
        if (!plus) break;
        p = plus + 1;
    }
    return ES_OK;
}
