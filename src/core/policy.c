/*
 * policy.c - a stopping policy: one within-sample rule and one across-sample
 * rule (rule.h), their parameters, and the generic part of the decisions
 * (the across rule's min and max, the caller's cap, answer ids in range).
 *
 * Every buffer is sized when the policy is made or a parameter set, or grown
 * in es_policy_begin_item when a question has more answers than any before;
 * the per-token, per-probe and per-sample events allocate nothing and cost
 * one indirect call into the rule.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"
#include "stopper.h"

static int fail(es_policy *p, int code)
{
    if (!p->msg.text[0]) snprintf(p->msg.text, sizeof p->msg.text, "%s", es_strerror(code));
    return code;
}

/* What the decision path and callers read, from the placed rules. */
static void cache(es_policy *p)
{
    es_rule_slot *w = p->within, *a = p->across;
    p->wd = w ? w->conf.def : NULL;
    p->wst = w ? w->st : NULL;
    p->ad = a->conf.def;
    p->ast = a->st;
    p->min = p->ad->min_param >= 0 ? (uint32_t)a->conf.param[p->ad->min_param] : 0;
    p->max = p->ad->max_param >= 0 ? (uint32_t)a->conf.param[p->ad->max_param] : 0;
    p->clinch = p->ad->clinch_param > 0 && p->ad->tally && a->conf.param[p->ad->clinch_param] != 0;
    es_policy_info *in = &p->info;
    in->has_within = w != NULL;
    in->needs_probes = w && p->wd->needs_probes;
    in->token_limit = w && p->wd->token_limit ? p->wd->token_limit(p->wst) : UINT32_MAX;
    in->probe_lag = w && p->wd->probe_lag ? p->wd->probe_lag(p->wst) : 0;
    in->probe_every = !w                 ? 1
                      : p->wd->probe_every ? p->wd->probe_every(p->wst)
                      : p->wd->every_param > 0 ? (uint32_t)w->conf.param[p->wd->every_param]
                                               : 1;
    in->batch = p->ad->batch ? p->ad->batch(p->ast) : 1;
    in->counts_only = !w && p->ad->counts_only;
    in->reads_cues = w && p->wd->reads_cues ? p->wd->reads_cues(p->wst) : 0;
    in->needs_cues = w && p->wd->needs_cues ? p->wd->needs_cues(p->wst) : 0;
}

/* The canonical spec: the named rules, every parameter spelled out. */
static int format_spec(es_policy *p, es_error *err)
{
    size_t at = 0, cap = sizeof p->spec;
    for (uint32_t i = 0; i < p->n_named && at < cap; i++) {
        if (i) at += (size_t)snprintf(p->spec + at, cap - at, "+");
        if (at < cap) at += es_spec_format_rule(&p->slot[i].conf, p->spec + at, cap - at);
    }
    if (at >= cap)
        return es_error_set(err, ES_EPARSE, "", 0, "policy",
                            "spec too long: its canonical form needs %zu bytes, %zu at most", at + 1, cap);
    return ES_OK;
}

/* Settings that are valid one by one but cannot be meant together, then the
 * rule's own configuration. */
static int configure(es_rule_slot *s, es_error *err)
{
    const es_rule_def *d = s->conf.def;
    const double *v = s->conf.param;
    if (d->min_param >= 0 && d->max_param >= 0 && v[d->max_param] > 0 && v[d->min_param] > v[d->max_param])
        return es_error_set(err, ES_EPARSE, "", 0, "policy",
                            "%s: min=%u is more than max=%u (the rule could never stop before the cap)", d->name,
                            (uint32_t)v[d->min_param], (uint32_t)v[d->max_param]);
    es_rule_msg msg = {{0}};
    int rc = d->configure ? d->configure(s->st, v, &msg) : ES_OK;
    if (rc == ES_ENOMEM) return es_error_set(err, rc, "", 0, "", "out of memory");
    if (rc) return es_error_set(err, ES_EPARSE, "", 0, "policy", "%s", msg.text);
    s->levels = d->levels ? d->levels(s->st, v) : d->level;
    return ES_OK;
}

/* Put slot s at its levels; a level holds one rule. */
static int place(es_policy *p, es_rule_slot *s, es_error *err)
{
    if (((s->levels & ES_LEVEL_WITHIN) && p->within) || ((s->levels & ES_LEVEL_ACROSS) && p->across))
        return es_error_set(err, ES_EPARSE, "", 0, "policy",
                            "%s: combine at most one within-sample and one across-sample rule", s->conf.def->name);
    if (s->levels & ES_LEVEL_WITHIN) p->within = s;
    if (s->levels & ES_LEVEL_ACROSS) p->across = s;
    return ES_OK;
}

static int add_slot(es_policy *p, const es_rule_conf *c, es_error *err)
{
    es_rule_slot *s = &p->slot[p->n_slots];
    s->conf = *c;
    s->st = calloc(1, c->def->state_size ? c->def->state_size : 1);
    if (!s->st) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    p->n_slots++;
    if (c->def->attach) c->def->attach(s->st, p->stopper ? p->stopper : es_stopper_builtin());
    int rc = configure(s, err);
    return rc ? rc : place(p, s, err);
}

/* A policy from rule configurations; a within rule alone gets an implicit
 * `full` across (every sample drawn: one, for long traces). */
static int build(const es_rule_conf *confs, uint32_t n, const es_stopper *m, es_policy **out, es_error *err)
{
    *out = NULL;
    es_policy *p = calloc(1, sizeof *p);
    if (!p) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    es_stopper_retain(m);
    p->stopper = m;
    int rc = ES_OK;
    for (uint32_t i = 0; i < n && !rc; i++) rc = add_slot(p, &confs[i], err);
    p->n_named = p->n_slots;
    if (!rc && !p->across) {
        es_rule_conf full;
        es_spec_rule_defaults(es_rule_find("full", 4), &full);
        rc = add_slot(p, &full, err);
    }
    if (!rc) rc = format_spec(p, err);
    if (rc) {
        es_policy_free(p);
        return rc;
    }
    cache(p);
    p->sample_answer = -1;
    *out = p;
    return ES_OK;
}

int es_policy_new(const char *spec, es_policy **out, es_error *err)
{
    return es_policy_new_stopper(spec, NULL, out, err);
}

int es_policy_new_stopper(const char *spec, const es_stopper *m, es_policy **out, es_error *err)
{
    es_rule_conf confs[ES_POLICY_MAX_RULES];
    uint32_t n = 0;
    *out = NULL;
    int rc = es_spec_parse(spec, confs, &n, err);
    return rc ? rc : build(confs, n, m, out, err);
}

/* The clone shares the stopper (a reference), never copies it. */
int es_policy_clone(const es_policy *proto, es_policy **out, es_error *err)
{
    es_rule_conf confs[ES_POLICY_MAX_RULES];
    for (uint32_t i = 0; i < proto->n_named; i++) confs[i] = proto->slot[i].conf;
    return build(confs, proto->n_named, proto->stopper, out, err);
}

const es_stopper *es_policy_stopper(const es_policy *p) { return p->stopper; }

void es_policy_set_answer_flags(es_policy *p, const uint8_t *flags) { p->answer_flags = flags; }

void es_policy_free(es_policy *p)
{
    if (!p) return;
    for (uint32_t i = 0; i < p->n_slots; i++) {
        if (p->slot[i].conf.def->release) p->slot[i].conf.def->release(p->slot[i].st);
        free(p->slot[i].st);
    }
    es_stopper_free((es_stopper *)p->stopper);
    free(p);
}

const char *es_policy_spec(const es_policy *p) { return p->spec; }
const char *es_policy_errmsg(const es_policy *p) { return p->msg.text; }

void es_policy_get_info(const es_policy *p, es_policy_info *out) { *out = p->info; }

uint32_t es_policy_rounds(const es_policy *p, uint32_t samples)
{
    if (p->ad->rounds) return p->ad->rounds(p->ast, samples);
    uint32_t batch = p->info.batch;
    return batch == 0 ? (samples ? 1 : 0) : (samples + batch - 1) / batch;
}

/* ------------------------------------------------------------ sweeps */

int es_policy_sweep_param(const es_policy *p, const char **key)
{
    if (p->ad->sweep_param < 0 || !p->ad->boundary) return ES_ENOTSUP;
    if (key) *key = p->ad->params[p->ad->sweep_param].key;
    return ES_OK;
}

int es_policy_observe(es_policy *p, int on)
{
    if (on && es_policy_sweep_param(p, NULL)) return ES_ENOTSUP;
    p->observe = on == ES_OBSERVE_ALL ? ES_OBSERVE_ALL : on != 0;
    return ES_OK;
}

int es_policy_boundary(const es_policy *p, double *b)
{
    if (!p->observe || !p->may_stop) {
        *b = 0;
        return ES_BOUND_NEVER;
    }
    return p->ad->boundary(p->ast, b);
}

/* ------------------------------------------------------------- parameters */

uint32_t es_policy_n_params(const es_policy *p)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->n_named; i++) n += p->slot[i].conf.def->n_params;
    return n;
}

/* Slot and index of parameter number i (in spec order). */
static int param_at(const es_policy *p, uint32_t i, uint32_t *slot, uint32_t *k)
{
    for (uint32_t s = 0; s < p->n_named; s++) {
        uint32_t n = p->slot[s].conf.def->n_params;
        if (i < n) {
            *slot = s;
            *k = i;
            return ES_OK;
        }
        i -= n;
    }
    return ES_ERANGE;
}

int es_policy_param(const es_policy *p, uint32_t i, es_param_info *out)
{
    uint32_t s, k;
    if (param_at(p, i, &s, &k)) return ES_ERANGE;
    const es_rule_def *d = p->slot[s].conf.def;
    const es_param_def *pd = &d->params[k];
    *out = (es_param_info){.rule = d->name, .key = pd->key, .value = p->slot[s].conf.param[k], .lo = pd->lo,
                           .hi = pd->hi, .integer = pd->kind != ES_PARAM_REAL, .choices = pd->kind == ES_PARAM_CHOICE ? pd->word : NULL,
                           .word = pd->kind == ES_PARAM_CHOICE ? NULL : pd->word, .word_value = pd->word_value,
                           .doc = pd->doc};
    return ES_OK;
}

/* "key" or "rule.key"; a bare key found in both rules is ambiguous. */
static int find_param(const es_policy *p, const char *name, uint32_t *slot, uint32_t *k, es_error *err)
{
    const char *dot = strchr(name, '.');
    int found = 0;
    for (uint32_t s = 0; s < p->n_named; s++) {
        const es_rule_def *d = p->slot[s].conf.def;
        if (dot && (strlen(d->name) != (size_t)(dot - name) || strncmp(d->name, name, (size_t)(dot - name)))) continue;
        const char *key = dot ? dot + 1 : name;
        for (uint32_t i = 0; i < d->n_params; i++)
            if (!strcmp(d->params[i].key, key)) {
                if (found++)
                    return es_error_set(err, ES_EINVAL, "", 0, "policy",
                                        "'%s' names a parameter of both rules of %s: write rule.%s", name, p->spec, key);
                *slot = s;
                *k = i;
            }
    }
    if (!found) return es_error_set(err, ES_EINVAL, "", 0, "policy", "%s has no parameter '%s'", p->spec, name);
    return ES_OK;
}

/* Set, reconfigure the rule, and put the old value back when the rule
 * refuses the combination. */
static int set_value(es_policy *p, uint32_t s, uint32_t k, double x, es_error *err)
{
    es_rule_slot *slot = &p->slot[s];
    double old = slot->conf.param[k];
    unsigned levels = slot->levels;
    slot->conf.param[k] = x;
    int rc = configure(slot, err);
    if (!rc && slot->levels != levels) {
        rc = es_error_set(err, ES_EINVAL, "", 0, "policy", "%s: %s=%g would move the rule to another level",
                          slot->conf.def->name, slot->conf.def->params[k].key, x);
    }
    if (rc) {
        slot->conf.param[k] = old;
        configure(slot, NULL);
        return rc;
    }
    cache(p);
    p->generation++;
    return format_spec(p, err);
}

int es_policy_set_param(es_policy *p, const char *name, double value, es_error *err)
{
    uint32_t s, k;
    int rc = find_param(p, name, &s, &k, err);
    if (!rc) rc = es_spec_check_value(p->slot[s].conf.def, &p->slot[s].conf.def->params[k], value, err);
    return rc ? rc : set_value(p, s, k, value, err);
}

int es_policy_set_param_text(es_policy *p, const char *name, const char *text, es_error *err)
{
    uint32_t s, k;
    double x = 0;
    int rc = find_param(p, name, &s, &k, err);
    if (!rc) rc = es_spec_parse_value(p->slot[s].conf.def, &p->slot[s].conf.def->params[k], text, &x, err);
    return rc ? rc : set_value(p, s, k, x, err);
}

int es_policy_get_param(const es_policy *p, const char *name, double *value, es_error *err)
{
    uint32_t s, k;
    int rc = find_param(p, name, &s, &k, err);
    if (!rc) *value = p->slot[s].conf.param[k];
    return rc;
}

/* ----------------------------------------------------------------- events */

int es_policy_begin_item(es_policy *p, uint32_t max_samples, uint32_t max_answers)
{
    p->msg.text[0] = '\0';
    if (max_answers == 0) max_answers = 1;
    if (p->ad->begin_item(p->ast, max_answers)) return fail(p, ES_ENOMEM);
    /* a within rule of its own that keeps per-answer state (learned) */
    if (p->wst && p->wst != p->ast && p->wd->begin_item && p->wd->begin_item(p->wst, max_answers))
        return fail(p, ES_ENOMEM);
    p->answer_flags = NULL;
    p->max_answers = max_answers;
    /* one cap: the caller's and the rule's, the smaller */
    uint32_t cap = p->max;
    if (max_samples && (!cap || max_samples < cap)) cap = max_samples;
    if (p->ad->sample_cap) cap = p->ad->sample_cap(p->ast, cap);
    p->cap = cap;
    p->n_samples = 0;
    return ES_OK;
}

int es_policy_begin_sample(es_policy *p)
{
    p->sample_answer = -1;
    if (p->wd && p->wd->begin_sample) p->wd->begin_sample(p->wst);
    return ES_CONTINUE;
}

int es_policy_token(es_policy *p, float logprob, float token_confidence)
{
    if (!p->wd || !p->wd->token) return ES_CONTINUE;
    int rc = p->wd->token(p->wst, logprob, token_confidence);
    if (rc == ES_STOP) p->sample_answer = p->wd->sample_answer ? p->wd->sample_answer(p->wst) : -1;
    return rc;
}

int es_policy_probe(es_policy *p, uint32_t at, int32_t answer, float confidence, float window_confidence,
                    uint32_t cues)
{
    if (!p->wd) return ES_CONTINUE;
    es_probe_event ev = {at, answer, confidence, window_confidence, cues, p->answer_flags};
    int rc = p->wd->probe(p->wst, &ev, &p->msg);
    if (rc < 0) return fail(p, rc);
    if (rc == ES_STOP) {
        int32_t a = p->wd->sample_answer ? p->wd->sample_answer(p->wst) : -1;
        p->sample_answer = a >= 0 ? a : answer;
    }
    return rc;
}

int32_t es_policy_sample_answer(const es_policy *p) { return p->sample_answer; }

void es_policy_note_error(es_policy *p, int rc, int32_t answer)
{
    if (rc == ES_EINVAL)
        snprintf(p->msg.text, sizeof p->msg.text, "answer id %d out of range (the question has %u)", answer,
                 p->max_answers);
    else
        fail(p, rc);
}

int es_policy_end_sample(es_policy *p, int32_t answer, uint32_t tokens, float confidence)
{
    int rc = es_policy_end_sample_inline(p, answer, tokens, confidence);
    if (rc < 0) es_policy_note_error(p, rc, answer);
    return rc;
}

int32_t es_policy_answer(const es_policy *p) { return p->ad->answer(p->ast); }
