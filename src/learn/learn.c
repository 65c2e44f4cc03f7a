/*
 * learn.c - a learned stopper from recorded traces, with its operating
 * points (docs/learning.md).
 *
 * Each file's items are split (seeded, by item: train_share of them
 * train).  On the training items: the decision states of replayed
 * episodes (episodes.c), one head per level and per lambda (learners.c).
 * Then Learn-then-Test (the tuning layer) on the same split: the training
 * items build and order the candidates (every lambda's stopper, its across
 * threshold swept exactly, its probe threshold on a grid of its training
 * scores' quantiles), the untouched items test them, and the cheapest
 * certified candidate at the first budget picks lambda; then the chosen
 * stopper's thresholds are certified at every budget in turn.  A budget no
 * candidate passes keeps the most conservative one (it never stops before
 * the cap or clinch) and says so.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "learn_int.h"

static const char *const learner_names[] = {"fqi", "reinforce", "logistic"};

const char *es_learner_name(es_learner l) { return (unsigned)l < 3 ? learner_names[l] : "unknown"; }

int es_learner_parse(const char *name, es_learner *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, learner_names[i])) {
            *out = (es_learner)i;
            return ES_OK;
        }
    return ES_EINVAL;
}

/* The defaults: scale-free features (no sample counts, nothing that knows
 * k), the ones the research on the shared files found useful first. */
static const char default_across[] =
    "margin_sqrt,beta_logit,top1_share,leader_wf,wf_share,tok_leader_others,null_share,distinct_share,entropy,"
    "conf_leader_others,has_conf";
static const char default_within[] =
    "p_log_tokens,p_run,p_run_share,p_distinct_share,p_cur_share,p_changed,p_null,p_wf,p_has_conf,p_conf,"
    "p_conf_trend,p_wconf,p_tokens_rel,p_agrees_leader,p_conclude,p_check,p_end";

const char *es_learn_default_features(int level) { return level == ES_AT_WITHIN ? default_within : default_across; }

void es_learn_opts_init(es_learn_opts *o)
{
    memset(o, 0, sizeof *o);
    o->level = ES_AT_ACROSS;
    o->learner = ES_LEARNER_FQI;
    o->reward = ES_REWARD_AGREE;
    const double lambdas[] = {0.01, 0.03, 0.1, 0.3};
    memcpy(o->lambdas, lambdas, sizeof lambdas);
    o->n_lambdas = 4;
    o->clip = 5;
    o->l2 = 1e-3;
    o->min_samples = 2;
    o->every = 1;
    o->orders = 4;
    o->iterations = 0; /* per learner: 30 FQI sweeps, 400 REINFORCE updates */
    o->epochs = 4;
    o->train_share = 0.5;
    o->seed = 1;
    es_tune_opts_init(&o->tune);
    const double budgets[] = {0.1, 0.25, 0.5, 1.0, 2.0};
    memcpy(o->budgets, budgets, sizeof budgets);
    o->n_budgets = 5;
}

int lr_parse_features(const char *list, int level, uint32_t *ids, uint32_t *n, es_error *err)
{
    const char *what = level == ES_AT_WITHIN ? "--within-features" : "--features";
    *n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        char name[64];
        if (len == 0 || len >= sizeof name) return es_error_set(err, ES_EINVAL, "", 0, what, "empty or overlong name in '%s'", list);
        memcpy(name, p, len);
        name[len] = '\0';
        uint32_t id;
        es_feature_info fi;
        if (es_feature_find(name, &id)) return es_error_set(err, ES_EINVAL, "", 0, what, "unknown feature '%s'", name);
        es_feature_get_info(id, &fi);
        if (fi.level != level)
            return es_error_set(err, ES_EINVAL, "", 0, what, "'%s' is %s feature", name,
                                fi.level == ES_AT_WITHIN ? "a within" : "an across");
        for (uint32_t i = 0; i < *n; i++)
            if (ids[i] == id) return es_error_set(err, ES_EINVAL, "", 0, what, "'%s' is listed twice", name);
        if (*n == ES_STOPPER_MAX_INPUTS) return es_error_set(err, ES_EINVAL, "", 0, what, "more than 64 features");
        ids[(*n)++] = id;
        p += len + (p[len] == ',');
    }
    if (*n == 0) return es_error_set(err, ES_EINVAL, "", 0, what, "no features");
    return ES_OK;
}

/* ---------------------------------------------------------------- split */

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Item i trains when a hash of (seed, its file's name, its index) falls
 * below the share: the same split whichever other files come along. */
uint8_t *lr_split_mask(const es_tune_data *d, double share, uint64_t seed)
{
    size_t n = es_tune_data_n_items(d);
    uint8_t *m = malloc(n + 1);
    for (size_t i = 0; m && i < n; i++) {
        size_t f;
        uint32_t index;
        const char *name;
        es_tune_data_item(d, i, NULL, &f, &index);
        es_tune_data_file(d, f, &name);
        uint64_t h = seed * 0x100000001B3ULL;
        for (const char *c = name; *c; c++) h = (h ^ (unsigned char)*c) * 0x100000001B3ULL;
        double u = (double)(mix64(h ^ mix64(index)) >> 11) * (1.0 / 9007199254740992.0);
        m[i] = u < share;
    }
    return m;
}

/* ------------------------------------------------------------- the fit */

/* One lambda's trained heads and the stopper made of them. */
typedef struct cand {
    lr_head *head[2];          /* [0] within, [1] across; NULL where not learned */
    uint32_t set;              /* its across feature set */
    double lambda;
    es_stopper *stopper;
    double grid[24];           /* probe thresholds tried */
    size_t n_grid;
} cand;

typedef struct fit_ctx {
    const es_tune_data *d;
    const es_learn_opts *o;
    uint8_t *mask;
    cand *c;
    size_t n_c;
    uint32_t wfeat[ES_STOPPER_MAX_INPUTS], wnf; /* the within head's features */
    uint64_t wreq;             /* its required inputs (bits) */
    uint32_t n_sets;           /* across feature sets */
    uint32_t set_feat[ES_LEARN_MAX_SETS][ES_STOPPER_MAX_INPUTS], set_nf[ES_LEARN_MAX_SETS];
    uint64_t set_req[ES_LEARN_MAX_SETS];
    es_tune_opts to;
} fit_ctx;

/* --across-from: its across threshold at a budget (one of its points). */
static double across_thr(const fit_ctx *x, double budget)
{
    if (!x->o->across_from) return NAN;
    es_stopper_desc a;
    es_stopper_get(x->o->across_from, &a);
    for (uint32_t i = 0; i < a.n_points; i++)
        if (a.max_em_drop[i] == budget) return a.threshold[i];
    return NAN;
}

static int level_index(int level) { return level == ES_AT_WITHIN ? 0 : 1; }

static int make_stopper(const fit_ctx *x, const cand *c, size_t n_points, const double *budget, const double *thr,
                        const double *pthr, es_stopper **out, es_error *err)
{
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    if (c->head[0]) lr_head_export(c->head[0], x->wfeat, &d.within);
    if (c->head[1]) lr_head_export(c->head[1], x->set_feat[c->set], &d.across);
    d.within.required = c->head[0] ? x->wreq : 0;
    d.across.required = c->head[1] ? x->set_req[c->set] : 0;
    d.within.every = c->head[0] ? x->o->every : 0;
    d.n_points = (uint32_t)n_points;
    d.max_em_drop = budget;
    d.threshold = thr;
    d.probe_threshold = pthr;
    uint32_t pick[ES_STOPPER_MAX_POINTS];
    if (x->o->across_from) { /* its heads, and for each budget its threshold and head */
        es_stopper_desc a;
        es_stopper_get(x->o->across_from, &a);
        d.across = a.across;
        d.n_across_alt = a.n_across_alt;
        d.across_alt = a.across_alt;
        for (size_t b = 0; b < n_points && a.across_pick; b++) {
            uint32_t i = 0;
            while (i + 1 < a.n_points && a.max_em_drop[i] != budget[b]) i++;
            pick[b] = a.across_pick[i];
        }
        d.across_pick = a.across_pick ? pick : NULL;
    }
    return es_stopper_new(&d, out, err);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Probe thresholds to try: quantiles of the head's scores on the decision
 * states, and one that never stops (the conservative end). */
static int probe_grid(const lr_data *s, const lr_head *h, cand *c)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) n += (s->kind[i] & LR_MAY_STOP) && !(s->kind[i] & LR_TERMINAL);
    double *sc = malloc((n + 1) * sizeof *sc), z[ES_STOPPER_MAX_INPUTS];
    if (!sc) return ES_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!(s->kind[i] & LR_MAY_STOP) || (s->kind[i] & LR_TERMINAL)) continue;
        lr_norm_apply(&h->nz, s->x + i * s->d, z);
        sc[m++] = lr_head_score(h, z);
    }
    qsort(sc, m, sizeof *sc, cmp_double);
    static const double q[] = {0.2, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999};
    c->n_grid = 0;
    for (size_t k = 0; m && k < sizeof q / sizeof q[0]; k++) {
        double v = sc[(size_t)(q[k] * (double)(m - 1))];
        if (c->n_grid && v == c->grid[c->n_grid - 1]) continue;
        c->grid[c->n_grid++] = v;
    }
    c->grid[c->n_grid++] = 1e9; /* never */
    free(sc);
    return ES_OK;
}

static const char *level_word(int level)
{
    return level == (ES_AT_WITHIN | ES_AT_ACROSS) ? "both" : level == ES_AT_WITHIN ? "within" : "across";
}

/* The policies of one candidate stopper for the tuner: its across
 * threshold swept (where it has an across head), its probe threshold on
 * the grid (where it has a within head). */
static int add_candidate(es_tune *t, const cand *c, int level, uint32_t min, double at_budget, const char *family,
                         es_error *err)
{
    size_t n = level & ES_AT_WITHIN ? c->n_grid : 1;
    int rc = ES_OK;
    for (size_t g = 0; g < n && !rc; g++) {
        char spec[320];
        if (!isnan(at_budget)) /* beside an across head calibrated elsewhere: its threshold and head at
                                * this budget stay (level auto: the point that never stops within
                                * makes no probes) */
            snprintf(spec, sizeof spec, "learned:max_em_drop=%.17g,probe_threshold=%.17g,min=%u", at_budget,
                     c->grid[g], min);
        else if (level & ES_AT_WITHIN) /* every=auto: the head's spacing, and no probe where it never fires */
            snprintf(spec, sizeof spec, "learned:level=%s,probe_threshold=%.17g,min=%u", level_word(level),
                     c->grid[g], min);
        else
            snprintf(spec, sizeof spec, "learned:level=across,min=%u", min);
        es_policy *p;
        rc = es_policy_new_stopper(spec, c->stopper, &p, err);
        if (!rc) rc = isnan(at_budget) ? es_tune_add_policy(t, p, family, err) : es_tune_add_point(t, p, family, err);
        es_policy_free(p);
    }
    return rc;
}

/* The thresholds a chosen spec names (auto: the stopper's). */
static int thresholds_of(const char *spec, const es_stopper *m, double *thr, double *pthr, es_error *err)
{
    es_policy *p;
    int rc = es_policy_new_stopper(spec, m, &p, err);
    if (rc) return rc;
    double v;
    *thr = *pthr = NAN;
    if (!es_policy_get_param(p, "threshold", &v, NULL) && v > -1e299) *thr = v;
    if (!es_policy_get_param(p, "probe_threshold", &v, NULL) && v > -1e299) *pthr = v;
    es_policy_free(p);
    return ES_OK;
}

/* Does any probe of the training data carry text cues? */
static int any_cued(const es_tune_data *d)
{
    for (size_t i = 0; i < es_tune_data_n_items(d); i++) {
        es_item_view v;
        if (es_tune_data_item(d, i, &v, NULL, NULL)) continue;
        for (uint32_t j = v.probe_off[0]; j < v.probe_off[v.n_samples]; j++)
            if (v.probe_cues[j] & ES_CUE_READ) return 1;
    }
    return 0;
}

/* --require: each name must be a feature one of the learned heads reads;
 * it sets that input's bit in its head's mask. */
static int parse_required(const char *list, fit_ctx *x, es_error *err)
{
    x->wreq = 0;
    memset(x->set_req, 0, sizeof x->set_req);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        uint32_t id;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), p);
        if (es_feature_find(name, &id))
            return es_error_set(err, ES_EINVAL, "", 0, "--require", "unknown feature '%s'", name);
        int found = 0;
        for (uint32_t i = 0; i < x->wnf; i++)
            if (x->wfeat[i] == id) {
                x->wreq |= 1ULL << i;
                found = 1;
            }
        for (uint32_t st = 0; st < x->n_sets; st++)
            for (uint32_t i = 0; i < x->set_nf[st]; i++)
                if (x->set_feat[st][i] == id) {
                    x->set_req[st] |= 1ULL << i;
                    found = 1;
                }
        if (!found)
            return es_error_set(err, ES_EINVAL, "", 0, "--require", "'%s' is not among the features the stopper reads",
                                name);
        /* a head that requires a cue never fires where no probe has one */
        es_feature_info fi;
        if (!es_feature_get_info(id, &fi) && fi.cue && !any_cued(x->d))
            return es_error_set(err, ES_EINVAL, "", 0, "--require",
                                "'%s': no probe of the training files carries text cues, so the head could never "
                                "fire (mark paragraph-end probes with `earlystop cues`, or record line or paragraph "
                                "probes: generate --probe-every lines, record --probe-at paragraphs)",
                                name);
        p += len + (p[len] == ',');
    }
    return ES_OK;
}

/* Where Learn-then-Test certifies nothing (too few test items for the
 * budget), the cheapest candidate whose loss on the training items (the
 * loss Learn-then-Test bounds, not the net EM change: gains on one task
 * must not pay for losses on another; with per_file, its worst file's) is
 * within the budget: chosen without a guarantee (certified = -1; 0 when
 * none is within it: the most conservative).  The candidates tested are
 * the front of (cost, that loss), where the cheapest within a loss budget
 * always lies. */
static int empirical_choice(const es_tune *t, double budget, es_tune_point *chosen)
{
    int found = 0;
    for (size_t i = 0; i < es_tune_n_tested(t); i++) {
        const es_tune_point *p = es_tune_tested(t, i);
        if (p->loss <= budget / 100.0 + 1e-12 && (!found || p->cost < chosen->cost)) {
            *chosen = *p;
            found = 1;
        }
    }
    if (!found) *chosen = *es_tune_tested(t, 0);
    return found;
}

int lr_tune_choose(es_tune *t, double budget, es_tune_point *chosen, int *certified, es_error *err)
{
    es_error e2 = {0};
    int r2 = es_tune_run(t, &e2);
    *certified = r2 == ES_OK;
    if (r2 == ES_OK) {
        es_tune_chosen(t, chosen);
        return ES_OK;
    }
    if (r2 == ES_ENOTSUP && es_tune_n_tested(t) > 0) {
        *certified = empirical_choice(t, budget, chosen) ? -1 : 0;
        return ES_OK;
    }
    if (err) *err = e2;
    return r2;
}

uint32_t lr_max_samples(const es_tune_data *d)
{
    uint32_t max = 0;
    for (size_t f = 0; f < es_tune_data_n_files(d); f++) {
        uint32_t s, a;
        es_traceset_max_sizes(es_tune_data_file(d, f, NULL), &s, &a);
        if (s > max) max = s;
    }
    return max;
}

/* Learn-then-Test over the candidates in [first, last) at one budget. */
static int ltt(fit_ctx *x, size_t first, size_t last, double budget, es_tune_point *chosen, size_t *which,
               int *certified, es_error *err)
{
    es_tune *t;
    es_tune_opts to = x->to;
    to.max_em_drop = budget / 100.0;
    int rc = es_tune_new(x->d, &to, &t, err);
    for (size_t k = first; !rc && k < last; k++) {
        char fam[32];
        snprintf(fam, sizeof fam, "learned#%zu", k);
        rc = add_candidate(t, &x->c[k], x->o->level, x->o->min_samples, x->o->across_from ? budget : NAN, fam, err);
    }
    if (!rc) rc = lr_tune_choose(t, budget, chosen, certified, err);
    if (!rc) {
        *which = first;
        sscanf(chosen->family, "learned#%zu", which);
    }
    es_tune_free(t);
    return rc;
}

static void say(const es_learn_opts *o, const char *what, size_t done, size_t total)
{
    if (o->progress) o->progress(o->progress_ctx, what, done, total);
}

/* One level's states, on one feature list, and a head per lambda for the
 * candidates [first, first + nl). */
static int train_level(fit_ctx *x, int lv, const uint32_t *feat, uint32_t nf, size_t first, size_t nl,
                       es_learn_result *out, es_error *err)
{
    const es_learn_opts *o = x->o;
    int li = level_index(lv);
    lr_build b = {lv, o->level == (ES_AT_WITHIN | ES_AT_ACROSS), feat, nf, o->reward,
                  o->min_samples, o->every, o->orders, o->tune.probe_cost, o->seed, o->threads};
    lr_data s;
    say(o, lv == ES_AT_WITHIN ? "states (within)" : "states (across)", 0, 1);
    int rc = lr_build_states(x->d, x->mask, &b, &s, err);
    if (rc) return rc;
    if (first == 0) out->train_states += s.n; /* one set's count, not the sum over sets */
    for (size_t k = 0; k < nl && !rc; k++) {
        cand *c = &x->c[first + k];
        lr_train tr = {o->learner, c->lambda, o->hidden,
                       o->iterations ? o->iterations : (o->learner == ES_LEARNER_REINFORCE ? 400 : 30),
                       o->epochs, o->l2, o->clip, o->seed + k, o->progress, o->progress_ctx};
        c->head[li] = calloc(1, sizeof(lr_head));
        if (!c->head[li]) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
        if (!rc) rc = lr_train_head(&s, &tr, c->head[li], err);
        if (!rc && lv == ES_AT_WITHIN) rc = probe_grid(&s, c->head[li], c);
    }
    lr_data_free(&s);
    return rc;
}

/* The candidates: per across feature set, a model per lambda (within and
 * both: one set).  Each as a stopper whose thresholds the specs give. */
static int train_candidates(fit_ctx *x, es_learn_result *out, es_error *err)
{
    const es_learn_opts *o = x->o;
    size_t nl = o->learner == ES_LEARNER_LOGISTIC ? 1 : o->n_lambdas;
    x->n_c = nl * x->n_sets;
    x->c = calloc(x->n_c, sizeof *x->c);
    if (!x->c) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    for (size_t i = 0; i < x->n_c; i++) {
        x->c[i].set = (uint32_t)(i / nl);
        x->c[i].lambda = o->lambdas[i % nl]; /* the logistic learner ignores it */
    }
    int rc = ES_OK;
    if (o->level & ES_AT_WITHIN) rc = train_level(x, ES_AT_WITHIN, x->wfeat, x->wnf, 0, nl, out, err);
    for (uint32_t st = 0; st < x->n_sets && !rc && (o->level & ES_AT_ACROSS); st++)
        rc = train_level(x, ES_AT_ACROSS, x->set_feat[st], x->set_nf[st], st * nl, nl, out, err);
    /* beside --across-from's head, every one of its points (a spec's budget
     * finds its threshold and head); else one point: the specs give them */
    double zero[ES_STOPPER_MAX_POINTS] = {0}, b0 = 0;
    es_stopper_desc a;
    memset(&a, 0, sizeof a);
    if (o->across_from) es_stopper_get(o->across_from, &a);
    for (size_t k = 0; k < x->n_c && !rc; k++)
        rc = o->across_from ? make_stopper(x, &x->c[k], a.n_points, a.max_em_drop, a.threshold, zero, &x->c[k].stopper, err)
                            : make_stopper(x, &x->c[k], 1, &b0, zero, zero, &x->c[k].stopper, err);
    return rc;
}

/* The across feature sets, ';' between them (several: level across only). */
static int parse_sets(const es_learn_opts *o, fit_ctx *x, es_error *err)
{
    const char *list = o->across_features ? o->across_features : es_learn_default_features(ES_AT_ACROSS);
    x->n_sets = 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ";");
        char one[1024];
        if (x->n_sets == ES_LEARN_MAX_SETS)
            return es_error_set(err, ES_EINVAL, "", 0, "--features", "at most %d feature sets", ES_LEARN_MAX_SETS);
        if (len >= sizeof one) return es_error_set(err, ES_EINVAL, "", 0, "--features", "a feature set is too long");
        memcpy(one, p, len);
        one[len] = '\0';
        int rc = lr_parse_features(one, ES_AT_ACROSS, x->set_feat[x->n_sets], &x->set_nf[x->n_sets], err);
        if (rc) return rc;
        x->n_sets++;
        if (!p[len]) break;
        p += len + 1;
    }
    if (x->n_sets > 1 && o->level != ES_AT_ACROSS)
        return es_error_set(err, ES_EINVAL, "", 0, "--features", "several feature sets go with --level across");
    return ES_OK;
}

/* --across-from: within only, a stopper with an across head calibrated at
 * every budget asked for. */
static int check_across_from(const es_learn_opts *o, es_error *err)
{
    es_stopper_desc a;
    es_stopper_get(o->across_from, &a);
    if (o->level != ES_AT_WITHIN)
        return es_error_set(err, ES_EINVAL, "", 0, "--across-from", "goes with --level within (the across head is given)");
    if (!a.across.n_in) return es_error_set(err, ES_EINVAL, "", 0, "--across-from", "the stopper has no across head");
    for (size_t b = 0; b < o->n_budgets; b++) {
        uint32_t i = 0;
        while (i < a.n_points && a.max_em_drop[i] != o->budgets[b]) i++;
        if (i == a.n_points)
            return es_error_set(err, ES_EINVAL, "", 0, "--across-from",
                                "the stopper has no operating point for %g EM points (train with the same --budgets)",
                                o->budgets[b]);
    }
    return ES_OK;
}

/* One budget's point from what Learn-then-Test chose there. */
static int point_of(fit_ctx *x, size_t b, size_t w, int cert, const es_tune_point *ch, es_learn_point *p, es_error *err)
{
    const es_learn_opts *o = x->o;
    p->max_em_drop = o->budgets[b];
    p->certified = cert;
    p->test = *ch;
    p->lambda = o->learner == ES_LEARNER_LOGISTIC ? NAN : x->c[w].lambda;
    p->feature_set = x->c[w].set;
    if (cert) { /* certified, or (-1) chosen on the training items without a guarantee */
        int rc = thresholds_of(ch->spec, x->c[w].stopper, &p->threshold, &p->probe_threshold, err);
        if (o->across_from) p->threshold = across_thr(x, o->budgets[b]); /* FILE's, at its point */
        return rc;
    }
    /* nothing within the budget even there: stop only where the rule must */
    p->threshold = o->level & ES_AT_ACROSS ? 1e9 : across_thr(x, o->budgets[b]);
    p->probe_threshold = o->level & ES_AT_WITHIN ? 1e9 : NAN;
    return ES_OK;
}

/* Within, both, or beside --across-from: one model.  Lambda is the
 * cheapest certified candidate's at the first budget; then its thresholds
 * at every budget. */
static int choose_one(fit_ctx *x, es_learn_result *out, es_error *err)
{
    const es_learn_opts *o = x->o;
    es_tune_point ch;
    size_t best = 0;
    int cert = 0, rc = ES_OK;
    say(o, "Learn-then-Test (lambda)", 0, 1);
    if (x->n_c > 1) rc = ltt(x, 0, x->n_c, o->budgets[o->primary], &ch, &best, &cert, err);
    out->lambda = o->learner == ES_LEARNER_LOGISTIC ? NAN : x->c[best].lambda;
    double budget[ES_LEARN_MAX_BUDGETS], thr[ES_LEARN_MAX_BUDGETS], pthr[ES_LEARN_MAX_BUDGETS];
    for (size_t b = 0; !rc && b < o->n_budgets; b++) {
        say(o, "Learn-then-Test (budgets)", b, o->n_budgets);
        size_t w;
        es_learn_point *p = &out->points[b];
        rc = ltt(x, best, best + 1, o->budgets[b], &ch, &w, &cert, err);
        if (!rc) rc = point_of(x, b, best, cert, &ch, p, err);
        budget[b] = o->budgets[b];
        thr[b] = p->threshold;
        pthr[b] = p->probe_threshold;
    }
    say(o, "Learn-then-Test (budgets)", o->n_budgets, o->n_budgets);
    out->n_points = o->n_budgets;
    return rc ? rc : make_stopper(x, &x->c[best], o->n_budgets, budget, thr, pthr, &out->stopper, err);
}

/* Across: each budget takes the cheapest certified model of all (feature
 * sets x lambdas) there; the stopper carries one head per model chosen,
 * the first budget's as `across`.  A budget nothing passes keeps the first
 * budget's model, stopping only at the cap. */
static int choose_per_budget(fit_ctx *x, es_learn_result *out, es_error *err)
{
    const es_learn_opts *o = x->o;
    size_t w[ES_LEARN_MAX_BUDGETS], heads[ES_LEARN_MAX_BUDGETS], n_heads = 0;
    int cert[ES_LEARN_MAX_BUDGETS];
    es_tune_point ch[ES_LEARN_MAX_BUDGETS];
    int rc = ES_OK;
    for (size_t i = 0; i < o->n_budgets && !rc; i++) {
        size_t b = i == 0 ? o->primary : i <= o->primary ? i - 1 : i; /* the first budget first */
        say(o, "Learn-then-Test (budgets)", i, o->n_budgets);
        rc = ltt(x, 0, x->n_c, o->budgets[b], &ch[b], &w[b], &cert[b], err);
        if (!rc && !cert[b]) w[b] = w[o->primary];
    }
    say(o, "Learn-then-Test (budgets)", o->n_budgets, o->n_budgets);
    double budget[ES_LEARN_MAX_BUDGETS], thr[ES_LEARN_MAX_BUDGETS], pthr[ES_LEARN_MAX_BUDGETS];
    uint32_t pick[ES_LEARN_MAX_BUDGETS];
    for (size_t i = 0; i < o->n_budgets && !rc; i++) {
        size_t b = i == 0 ? o->primary : i <= o->primary ? i - 1 : i;
        size_t h = 0;
        while (h < n_heads && heads[h] != w[b]) h++;
        if (h == n_heads) heads[n_heads++] = w[b];
        pick[b] = (uint32_t)h;
        rc = point_of(x, b, w[b], cert[b], &ch[b], &out->points[b], err);
        budget[b] = o->budgets[b];
        thr[b] = out->points[b].threshold;
        pthr[b] = NAN;
    }
    out->n_points = o->n_budgets;
    out->lambda = o->learner == ES_LEARNER_LOGISTIC ? NAN : x->c[w[o->primary]].lambda;
    if (rc) return rc;
    es_stopper_desc d;
    es_stopper_head alt[ES_STOPPER_MAX_ALT];
    memset(&d, 0, sizeof d);
    memset(alt, 0, sizeof alt);
    for (size_t h = 0; h < n_heads; h++) {
        const cand *c = &x->c[heads[h]];
        es_stopper_head *dst = h == 0 ? &d.across : &alt[h - 1];
        lr_head_export(c->head[1], x->set_feat[c->set], dst);
        dst->required = x->set_req[c->set];
    }
    d.n_points = (uint32_t)o->n_budgets;
    d.max_em_drop = budget;
    d.threshold = thr;
    d.probe_threshold = pthr;
    d.n_across_alt = (uint32_t)(n_heads - 1);
    d.across_alt = n_heads > 1 ? alt : NULL;
    d.across_pick = n_heads > 1 ? pick : NULL;
    return es_stopper_new(&d, &out->stopper, err);
}

int es_learn_fit(const es_tune_data *d, const es_learn_opts *o, es_learn_result *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!(o->level & (ES_AT_WITHIN | ES_AT_ACROSS)))
        return es_error_set(err, ES_EINVAL, "", 0, "--level", "choose within, across or both");
    if (o->n_budgets < 1 || o->n_budgets > ES_LEARN_MAX_BUDGETS || o->primary >= o->n_budgets)
        return es_error_set(err, ES_EINVAL, "", 0, "--max-em-drop", "between 1 and %d budgets", ES_LEARN_MAX_BUDGETS);
    for (size_t i = 0; i < o->n_budgets; i++)
        if (!(o->budgets[i] > 0 && o->budgets[i] < 100) || (i && o->budgets[i] <= o->budgets[i - 1]))
            return es_error_set(err, ES_EINVAL, "", 0, "--max-em-drop",
                                "EM budgets must lie in (0, 100) points and ascend");
    if (o->learner != ES_LEARNER_LOGISTIC && (o->n_lambdas < 1 || o->n_lambdas > ES_LEARN_MAX_LAMBDAS))
        return es_error_set(err, ES_EINVAL, "", 0, "--lambda", "between 1 and %d lambdas", ES_LEARN_MAX_LAMBDAS);
    if (o->across_from) {
        int r = check_across_from(o, err);
        if (r) return r;
    }
    if (o->hidden > ES_STOPPER_MAX_HIDDEN)
        return es_error_set(err, ES_EINVAL, "", 0, "--hidden", "at most %d hidden units", ES_STOPPER_MAX_HIDDEN);
    if (!(o->train_share > 0 && o->train_share < 1))
        return es_error_set(err, ES_EINVAL, "", 0, "", "train share must lie in (0, 1)");
    if (o->every < 1 || o->orders < 1 || o->min_samples < 1)
        return es_error_set(err, ES_EINVAL, "", 0, "", "every, orders and min must be at least 1");
    fit_ctx x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.o = o;
    x.to = o->tune;
    x.to.seed = o->seed;
    x.to.threads = o->threads;
    int rc = ES_OK;
    if (o->level & ES_AT_WITHIN)
        rc = lr_parse_features(o->within_features ? o->within_features : es_learn_default_features(ES_AT_WITHIN),
                               ES_AT_WITHIN, x.wfeat, &x.wnf, err);
    x.n_sets = 1;
    if (!rc && ((o->level & ES_AT_ACROSS) || (o->across_features && strchr(o->across_features, ';'))))
        rc = parse_sets(o, &x, err);
    if (!rc) rc = parse_required(o->required, &x, err);
    if (rc) return rc;
    /* one sample per item everywhere: orders change nothing */
    if (lr_max_samples(d) <= 1) x.to.shuffles = 0;
    if (!(x.mask = lr_split_mask(d, o->train_share, o->seed))) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    x.to.opt_mask = x.mask;
    size_t n = es_tune_data_n_items(d);
    for (size_t i = 0; i < n; i++) out->train_items += x.mask[i];
    out->test_items = n - out->train_items;
    rc = train_candidates(&x, out, err);
    if (!rc) rc = o->level == ES_AT_ACROSS ? choose_per_budget(&x, out, err) : choose_one(&x, out, err);
    for (size_t k = 0; k < x.n_c; k++) {
        free(x.c[k].head[0]);
        free(x.c[k].head[1]);
        es_stopper_free(x.c[k].stopper);
    }
    free(x.c);
    free(x.mask);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (rc) es_learn_result_free(out);
    return rc;
}

void es_learn_result_free(es_learn_result *r)
{
    es_stopper_free(r->stopper);
    r->stopper = NULL;
}
