/*
 * tune_out.c - the files `earlystop tune` writes: the chosen policy
 * (--out, a policy file `eval --policy @FILE` loads), the fronts (--front,
 * JSON or CSV) and their picture (--plot, SVG).  Each writes into a stream
 * the caller opened with es_outfile before the run and commits after it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "svg.h"
#include "tune_cli.h"

const char *const tune_anchor_specs[2] = {"ac-beta", "esc"};

const char *tune_loss_name(es_tune_loss l)
{
    return l == ES_LOSS_DISAGREE ? "disagree" : l == ES_LOSS_NET ? "net" : "wrong";
}

const char *tune_objective_name(es_tune_objective o) { return o == ES_OBJECTIVE_KV ? "kv" : "tokens"; }

json_t *tune_num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *tune_point_json(const es_tune_point *p, const tune_args *a)
{
    json_t *j = json_object();
    json_object_set_new(j, "spec", json_string(p->spec));
    json_object_set_new(j, "family", json_string(p->family));
    json_object_set_new(j, "cost", tune_num(p->cost));
    json_object_set_new(j, "tokens", tune_num(p->tokens));
    json_object_set_new(j, "share", tune_num(p->share));
    if (a->o.objective == ES_OBJECTIVE_KV) json_object_set_new(j, "kv", tune_num(p->kv));
    json_object_set_new(j, "em", tune_num(p->em));
    json_object_set_new(j, "em_full", tune_num(p->em_full));
    json_object_set_new(j, "loss", tune_num(p->loss));
    return j;
}

/* The test figures of the chosen policy, as --out and --json give them. */
static json_t *test_json(const tune_run *r)
{
    const es_tune_eval *e = &r->test;
    json_t *j = json_object();
    json_object_set_new(j, "items", json_integer((json_int_t)r->test_items));
    json_object_set_new(j, "em", tune_num(e->p.em));
    json_object_set_new(j, "em_full", tune_num(e->p.em_full));
    json_object_set_new(j, "em_delta_pts", tune_num(100 * e->d_em));
    json_object_set_new(j, "em_delta_lo_pts", tune_num(100 * e->d_lo));
    json_object_set_new(j, "em_delta_hi_pts", tune_num(100 * e->d_hi));
    json_object_set_new(j, "loss_pts", tune_num(100 * e->p.loss));
    json_object_set_new(j, "tokens", tune_num(e->p.tokens));
    json_object_set_new(j, "cost", tune_num(e->p.cost));
    json_object_set_new(j, "token_reduction_pct",
                        tune_num(e->full_tokens > 0 ? 100 * (1 - e->p.tokens / e->full_tokens) : NAN));
    json_object_set_new(j, "oracle_multiple", tune_num(e->oracle_x));
    return j;
}

int tune_write_policy(FILE *fp, const tune_run *r, const tune_args *a)
{
    json_t *files = json_array();
    for (int i = 0; i < r->n_cal_files; i++) json_array_append_new(files, json_string(r->cal_files[i]));
    const es_tune_point *c = &r->chosen;
    json_t *j = json_object();
    json_object_set_new(j, "spec", json_string(c->spec));
    json_object_set_new(j, "tool", json_string("earlystop tune"));
    json_object_set_new(j, "version", json_string(ES_VERSION_STRING));
    json_object_set_new(j, "files", files);
    json_object_set_new(j, "calibration_items", json_integer((json_int_t)r->cal_items));
    json_object_set_new(j, "family", json_string(c->family));
    if (a->budget) {
        json_object_set_new(j, "token_budget", json_real(a->o.token_budget));
    } else {
        json_object_set_new(j, "max_em_drop_pts", json_real(100 * a->o.max_em_drop));
        json_object_set_new(j, "delta", json_real(a->o.delta));
        json_object_set_new(j, "pvalue", tune_num(c->pvalue));
    }
    json_object_set_new(j, "loss", json_string(tune_loss_name(a->o.loss)));
    json_object_set_new(j, "objective", json_string(tune_objective_name(a->o.objective)));
    if (a->o.objective == ES_OBJECTIVE_KV) json_object_set_new(j, "batch", json_integer(a->o.batch));
    json_object_set_new(j, "shuffles", json_integer(a->o.shuffles));
    json_object_set_new(j, "seed", json_integer((json_int_t)a->o.seed));
    json_object_set_new(j, "calibration", tune_point_json(c, a));
    json_object_set_new(j, "test", r->have_test ? test_json(r) : json_null());
    int bad = !j || json_dumpf(j, fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) ||
              fputc('\n', fp) == EOF;
    json_decref(j);
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------- --front */

static json_t *front_json(const es_tune *t, int f, const tune_args *a)
{
    json_t *pts = json_array();
    for (size_t i = 0; i < es_tune_front_size(t, f); i++)
        json_array_append_new(pts, tune_point_json(es_tune_front_point(t, f, i), a));
    json_t *j = json_object();
    json_object_set_new(j, "family", json_string(f < 0 ? "global" : es_tune_family_name(t, (size_t)f)));
    json_object_set_new(j, "hypervolume", tune_num(es_tune_hypervolume(t, f)));
    json_object_set_new(j, "points", pts);
    return j;
}

json_t *tune_fronts_json(const es_tune *t, const tune_args *a)
{
    json_t *fams = json_array();
    for (size_t f = 0; f < es_tune_n_families(t); f++) json_array_append_new(fams, front_json(t, (int)f, a));
    json_t *j = json_object();
    json_object_set_new(j, "families", fams);
    json_object_set_new(j, "global", front_json(t, -1, a));
    return j;
}

static void front_csv(FILE *fp, const es_tune *t, int f)
{
    for (size_t i = 0; i < es_tune_front_size(t, f); i++) {
        const es_tune_point *p = es_tune_front_point(t, f, i);
        cli_csv_field(fp, f < 0 ? "global" : es_tune_family_name(t, (size_t)f));
        fputc(',', fp);
        cli_csv_field(fp, p->spec);
        fputc(',', fp);
        cli_csv_field(fp, p->family);
        fprintf(fp, ",%.6f,%.3f,%.6f,%.3f,%.6f,%.6f,%.6f\n", p->cost, p->tokens, p->share, p->kv, p->em, p->em_full,
                p->loss);
    }
}

int tune_write_front(FILE *fp, const tune_run *r, const tune_args *a)
{
    const es_tune *t = r->t;
    if (a->front_csv) {
        fputs("front,spec,family,cost,tokens,share,kv,em,em_full,loss\n", fp);
        for (size_t f = 0; f < es_tune_n_families(t); f++) front_csv(fp, t, (int)f);
        front_csv(fp, t, -1);
        return ferror(fp) ? -1 : 0;
    }
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string("earlystop-tune-front"));
    json_object_set_new(j, "version", json_string(ES_VERSION_STRING));
    json_object_set_new(j, "objective", json_string(tune_objective_name(a->o.objective)));
    json_object_set_new(j, "cost", json_string(a->o.objective == ES_OBJECTIVE_KV
                                                   ? "peak KV positions as a share of full's, mean over items"
                                                   : "tokens as a share of full's, mean over items"));
    json_object_set_new(j, "loss", json_string(tune_loss_name(a->o.loss)));
    json_object_set_new(j, "shuffles", json_integer(a->o.shuffles));
    json_object_set_new(j, "seed", json_integer((json_int_t)a->o.seed));
    json_object_set_new(j, "items", json_integer((json_int_t)es_tune_data_n_items(es_tune_front_data(t))));
    json_t *fronts = tune_fronts_json(t, a);
    json_object_update(j, fronts);
    json_decref(fronts);
    int bad = json_dumpf(j, fp, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) || fputc('\n', fp) == EOF;
    json_decref(j);
    return bad ? -1 : 0;
}

/* -------------------------------------------------------------- --plot */

/* The range of EM shown: full's EM, the anchors and the chosen point with
 * room around them, and every front point down to 5 points below the
 * lowest of those; what lies lower is cut at the bottom edge. */
static void em_range(const tune_run *r, double *lo, double *hi)
{
    double a = r->full.p.em, b = r->full.p.em;
    const double marks[] = {r->chosen.em, r->anchor_ok[0] ? r->anchor[0].p.em : NAN,
                            r->anchor_ok[1] ? r->anchor[1].p.em : NAN};
    for (size_t i = 0; i < 3; i++) {
        if (marks[i] < a) a = marks[i];
        if (marks[i] > b) b = marks[i];
    }
    double floor_ = a - 0.05, top = b;
    for (size_t i = 0; i < es_tune_front_size(r->t, -1); i++) {
        const es_tune_point *p = es_tune_front_point(r->t, -1, i);
        if (p->em > top) top = p->em;
        if (p->em < a && p->em >= floor_) a = p->em;
    }
    double m = (top - a) * 0.06 + 0.002;
    *lo = 100 * (a - m);
    *hi = 100 * (top + m);
}

int tune_write_plot(FILE *fp, const tune_run *r, const tune_args *a)
{
    const es_tune *t = r->t;
    const es_tune_data *fd = es_tune_front_data(t);
    int kv = a->o.objective == ES_OBJECTIVE_KV;
    char title[256], xlabel[160], note[640];
    if (r->n_cal_files == 1)
        snprintf(title, sizeof title, "earlystop tune: EM against %s on %.120s", kv ? "peak KV" : "tokens",
                 cli_base_name(r->cal_files[0]));
    else
        snprintf(title, sizeof title, "earlystop tune: EM against %s on %d files", kv ? "peak KV" : "tokens",
                 r->n_cal_files);
    if (kv)
        snprintf(xlabel, sizeof xlabel, "peak KV positions (batch %u), share of full's, mean over items (log scale)",
                 a->o.batch);
    else
        snprintf(xlabel, sizeof xlabel, "tokens, share of full's, mean over items (log scale)");
    svg_plot *p = svg_plot_new(title, xlabel, "exact match (%)");
    if (!p) return -1;
    svg_plot_log_x(p, 1);
    int rc = 0;
    /* full's EM across the chart, under everything: what a policy loses from */
    double hx[2] = {1e-9, 1e3}, hy[2] = {100 * r->full.p.em, 100 * r->full.p.em};
    rc = svg_plot_series(p, NULL, SVG_LINE, hx, hy, 2, "#999999", SVG_NONE);
    svg_plot_style(p, 1, "2 3");
    /* the families' fronts, then the global one over them */
    size_t cap = es_tune_front_size(t, -1);
    for (size_t f = 0; f < es_tune_n_families(t); f++)
        if (es_tune_front_size(t, (int)f) > cap) cap = es_tune_front_size(t, (int)f);
    double *x = malloc((cap + 1) * sizeof *x), *y = malloc((cap + 1) * sizeof *y), lo = 1;
    if (!x || !y) rc = -1;
    for (size_t f = 0; f < es_tune_n_families(t) && !rc; f++) {
        size_t n = es_tune_front_size(t, (int)f);
        for (size_t i = 0; i < n; i++) {
            const es_tune_point *q = es_tune_front_point(t, (int)f, i);
            x[i] = q->cost;
            y[i] = 100 * q->em;
        }
        rc = svg_plot_series(p, es_tune_family_name(t, f), SVG_STEP, x, y, n, NULL, SVG_DOT);
    }
    size_t n = rc ? 0 : es_tune_front_size(t, -1);
    for (size_t i = 0; i < n; i++) {
        const es_tune_point *q = es_tune_front_point(t, -1, i);
        x[i] = q->cost;
        y[i] = 100 * q->em;
        if (q->cost > 0 && q->cost < lo) lo = q->cost;
    }
    if (!rc) rc = svg_plot_series(p, "global front", SVG_STEP, x, y, n, "#000000", SVG_NONE);
    svg_plot_style(p, 1.4, "4 3");
    free(x);
    free(y);
    char lab[160];
    for (int i = 0; i < 2 && !rc; i++) {
        /* on one sample per item an anchor is full itself: one marker says it */
        const es_tune_eval *e = &r->anchor[i];
        if (!r->anchor_ok[i] || (e->p.cost >= 1 - 1e-12 && e->p.em == r->full.p.em)) continue;
        snprintf(lab, sizeof lab, "%s (default)", tune_anchor_specs[i]);
        /* colours are the families'; the reference points are black, told apart by shape */
        rc = svg_plot_point(p, lab, r->anchor[i].p.cost, 100 * r->anchor[i].p.em, "#000000",
                            i ? SVG_TRIANGLE : SVG_SQUARE);
        if (r->anchor[i].p.cost > 0 && r->anchor[i].p.cost < lo) lo = r->anchor[i].p.cost;
    }
    if (!rc) rc = svg_plot_point(p, "full (every sample)", 1.0, 100 * r->full.p.em, "#000000", SVG_DIAMOND);
    /* the oracle's cost is in tokens; it has no KV figure */
    if (!rc && !kv && r->full.oracle_share > 0) {
        rc = svg_plot_point(p, "oracle (knows the future)", r->full.oracle_share, 100 * r->full.p.em, "#555555",
                            SVG_STAR);
        if (r->full.oracle_share < lo) lo = r->full.oracle_share;
    }
    if (!rc) {
        snprintf(lab, sizeof lab, "chosen: %s", r->chosen.family);
        rc = svg_plot_point(p, lab, r->chosen.cost, 100 * r->chosen.em, "#e31a1c", SVG_RING);
    }
    if (!rc) rc = svg_plot_text(p, r->chosen.cost, 100 * r->chosen.em, "chosen");
    double ylo, yhi;
    em_range(r, &ylo, &yhi);
    svg_plot_range(p, lo / 1.25, 1.25, ylo, yhi);
    snprintf(note, sizeof note, "chosen: %s", r->chosen.spec);
    if (!rc) rc = svg_plot_note(p, note);
    size_t nfi = es_tune_data_n_items(fd);
    snprintf(note, sizeof note, "every figure on %s%zu calibration items x %u sample orders (loss: %s)",
             a->budget ? "all " : "the opt part: ", nfi, a->o.shuffles ? a->o.shuffles : 1, tune_loss_name(a->o.loss));
    if (!rc) rc = svg_plot_note(p, note);
    if (a->budget)
        snprintf(note, sizeof note, "chosen: the best EM within %g tokens per item (no guarantee)", a->o.token_budget);
    else
        snprintf(note, sizeof note,
                 "chosen by Learn-then-Test on the other %zu: mean loss <= %.2f pts of EM with probability >= %g",
                 r->cal_items - nfi, 100 * a->o.max_em_drop, 1 - a->o.delta);
    if (!rc) rc = svg_plot_note(p, note);
    if (!rc) rc = svg_plot_write(p, fp, 1000, 620);
    svg_plot_free(p);
    return rc;
}
