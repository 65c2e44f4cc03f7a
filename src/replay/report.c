/*
 * report.c - the figures of `earlystop eval` (and of every tuner that
 * compares policies), computed once, here, from the rows' integer sums.
 *
 * A row is a policy (or the baseline, or an oracle) replayed over the same
 * orders of the same items.  Its figures are means over items of per-item
 * means over orders; the EM change is paired against the baseline item by
 * item, with one set of bootstrap resamples for the whole report; the
 * oracle multiple is measured against the reference oracle, found by kind,
 * never by position.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_replay.h"

typedef struct report_row {
    char name[512];
    es_row_kind kind;
    es_oracle oracle;
    int failed;
    es_error err;
    es_eval_acc *acc;   /* [n items] */
} report_row;

struct es_report {
    const es_traceset *ts;
    es_report_opts o;
    size_t n;                 /* items */
    report_row *rows;
    int n_rows, cap;
    es_bootstrap *bs;         /* made at the first interval asked for */
    double *em, *em_base;     /* [n] per-item EM scratch */
};

void es_report_opts_init(es_report_opts *o)
{
    *o = (es_report_opts){.shuffles = 0, .seed = 1, .threads = 0, .probe_cost = ES_PROBE_COST_FIELD,
                          .bootstrap = 1000};
}

/* A new row, its sums zeroed. */
static report_row *add_row(es_report *r, es_row_kind kind, const char *name)
{
    if (r->n_rows == r->cap) {
        int c = r->cap ? 2 * r->cap : 8;
        report_row *rows = realloc(r->rows, (size_t)c * sizeof *rows);
        if (!rows) return NULL;
        r->rows = rows;
        r->cap = c;
    }
    report_row *w = &r->rows[r->n_rows];
    memset(w, 0, sizeof *w);
    if (!(w->acc = calloc(r->n ? r->n : 1, sizeof *w->acc))) return NULL;
    w->kind = kind;
    snprintf(w->name, sizeof w->name, "%s", name);
    r->n_rows++;
    return w;
}

/* Replay a policy into row w; a failure stays with the row. */
static int replay_into(es_report *r, report_row *w, const es_policy *proto, es_error *err)
{
    es_policy_info info;
    es_policy_get_info(proto, &info);
    int rc;
    if (info.needs_probes && es_traceset_n_probes(r->ts) == 0) {
        /* replaying it would silently be `full`, which is never what was asked */
        rc = es_error_set(&w->err, ES_ENOTSUP, "", 0, "",
                          "no row for '%s': it decides on probes and these traces have none (record traces "
                          "with probes: earlystop generate --probe-every N)", w->name);
    } else {
        rc = es_eval_threads(r->ts, proto, r->o.seed, r->o.shuffles, r->o.threads, r->o.probe_cost, w->acc, &w->err);
    }
    w->failed = rc;
    if (rc && err) *err = w->err;
    return rc;
}

int es_report_new(const es_traceset *ts, const es_report_opts *o, es_report **out, es_error *err)
{
    *out = NULL;
    es_report *r = calloc(1, sizeof *r);
    if (!r) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    r->ts = ts;
    if (o) r->o = *o;
    else es_report_opts_init(&r->o);
    r->n = es_traceset_n_items(ts);
    r->em = malloc((r->n ? r->n : 1) * sizeof *r->em);
    r->em_base = malloc((r->n ? r->n : 1) * sizeof *r->em_base);
    es_policy *full = NULL;
    int rc = r->em && r->em_base ? es_policy_new("full", &full, err) : es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    report_row *w = rc ? NULL : add_row(r, ES_ROW_BASELINE, es_policy_spec(full));
    if (!rc && !w) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc) rc = replay_into(r, w, full, err);
    es_policy_free(full);
    if (rc) {
        es_report_free(r);
        return rc;
    }
    *out = r;
    return ES_OK;
}

void es_report_free(es_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_rows; i++) free(r->rows[i].acc);
    free(r->rows);
    es_bootstrap_free(r->bs);
    free(r->em);
    free(r->em_base);
    free(r);
}

int es_report_add_policy(es_report *r, const es_policy *proto, es_error *err)
{
    return es_report_add_policy_as(r, proto, es_policy_spec(proto), err);
}

int es_report_add_policy_as(es_report *r, const es_policy *proto, const char *name, es_error *err)
{
    report_row *w = add_row(r, ES_ROW_POLICY, name);
    if (!w) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    return replay_into(r, w, proto, err);
}

int es_report_add_oracles(es_report *r)
{
    es_oracle which[3] = {ES_ORACLE_CONSISTENCY, ES_ORACLE_CORRECTNESS, ES_ORACLE_STABLE_FINAL};
    int n = es_traceset_n_probes(r->ts) > 0 ? 3 : 2;
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "oracle:%s", es_oracle_name(which[i]));
        report_row *w = add_row(r, ES_ROW_ORACLE, name);
        if (!w) return ES_ENOMEM;
        w->oracle = which[i];
        if (es_eval_oracle(r->ts, which[i], r->o.seed, 0, r->o.shuffles, w->acc)) return ES_ENOMEM;
    }
    return ES_OK;
}

int es_report_n_rows(const es_report *r) { return r->n_rows; }
es_row_kind es_report_row_kind(const es_report *r, int row) { return r->rows[row].kind; }
const char *es_report_row_name(const es_report *r, int row) { return r->rows[row].name; }
const es_eval_acc *es_report_row_acc(const es_report *r, int row) { return r->rows[row].acc; }

int es_report_row_failed(const es_report *r, int row, const es_error **why)
{
    if (why) *why = &r->rows[row].err;
    return r->rows[row].failed;
}

int es_report_oracle_row(const es_report *r, es_oracle which)
{
    for (int i = 0; i < r->n_rows; i++)
        if (r->rows[i].kind == ES_ROW_ORACLE && r->rows[i].oracle == which) return i;
    return -1;
}

/* Means over items of the per-item means over orders. */
static void means(const es_report *r, const es_eval_acc *acc, es_row_figures *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < r->n; i++) {
        f->em += (double)acc[i].correct;
        f->gen_tokens += (double)acc[i].tokens;
        f->tokens += (double)(acc[i].tokens + acc[i].probe_tokens);
        f->samples += (double)acc[i].samples;
        f->rounds += (double)acc[i].rounds;
        f->probes += (double)acc[i].probes;
    }
    double d = (r->o.shuffles ? r->o.shuffles : 1) * (double)(r->n ? r->n : 1);
    f->em /= d;
    f->gen_tokens /= d;
    f->tokens /= d;
    f->samples /= d;
    f->rounds /= d;
    f->probes /= d;
}

static void per_item_em(const es_report *r, const es_eval_acc *acc, double *em)
{
    double orders = r->o.shuffles ? r->o.shuffles : 1;
    for (size_t i = 0; i < r->n; i++) em[i] = (double)acc[i].correct / orders;
}

/* The oracle a row's tokens are measured against: stable-final cuts each
 * trace where it settles (traces with probes), else the consistency one. */
static int reference_oracle(const es_report *r)
{
    int row = es_traceset_n_probes(r->ts) > 0 ? es_report_oracle_row(r, ES_ORACLE_STABLE_FINAL) : -1;
    return row >= 0 ? row : es_report_oracle_row(r, ES_ORACLE_CONSISTENCY);
}

int es_report_figures(es_report *r, int row, es_row_figures *out)
{
    if (row < 0 || row >= r->n_rows || r->rows[row].failed) return ES_EINVAL;
    es_row_figures base, orc;
    means(r, r->rows[0].acc, &base);
    means(r, r->rows[row].acc, out);
    out->d_em = out->em - base.em;
    out->d_lo = out->d_hi = NAN;
    if (r->rows[row].kind != ES_ROW_ORACLE) {
        if (!r->bs && es_bootstrap_new(r->n, r->o.bootstrap, r->o.seed, &r->bs)) return ES_ENOMEM;
        per_item_em(r, r->rows[0].acc, r->em_base);
        per_item_em(r, r->rows[row].acc, r->em);
        if (es_bootstrap_interval(r->bs, r->em, r->em_base, &out->d_lo, &out->d_hi)) return ES_ENOMEM;
    }
    out->reduction = base.tokens > 0 ? 100.0 * (1.0 - out->tokens / base.tokens) : 0;
    int o = reference_oracle(r);
    out->oracle_x = NAN;
    if (o >= 0) {
        means(r, r->rows[o].acc, &orc);
        if (orc.tokens > 0) out->oracle_x = out->tokens / orc.tokens;
    }
    return ES_OK;
}
