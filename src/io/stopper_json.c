/*
 * stopper_json.c - learned stoppers as JSON files (docs/learning.md):
 *
 *   {"format": "earlystop-stopper", "version": 1,
 *    "spec": "learned",                       the policy the file stands for
 *    "across": {"features": ["margin", ...], "mean": [...], "scale": [...],
 *               "required": ["p_conf"],   optional: no score without them
 *               "every": 4,               optional (within): the probe spacing trained at
 *               "clip": 5,
 *               "nets": [{"output": "logistic", "weight": 1, "w": [...], "b": 0.3},
 *                        {"output": "linear", "weight": -1, "w1": [[...], ...],
 *                         "b1": [...], "w2": [...], "b2": 0.1}]},
 *    "within": {...} or absent,
 *    "across_alt": [{...}, ...] or absent,    more across heads
 *    ("operating_points"[i]."across_head": k picks across_alt[k - 1]),
 *    "operating_points": [{"max_em_drop": 0.1, "threshold": 0.8,
 *                          "probe_threshold": 0.7}, ...],
 *    ...provenance: learner, reward, lambda, files, command, figures}
 *
 * Numbers are written with 17 significant digits, so a stopper read back
 * scores every state to the last bit as the one written.  The core checks
 * the model itself (es_stopper_new); this file checks the JSON's shape and
 * names the field that is wrong.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_file.h"
#include "stopper_int.h"

#define STOPPER_FORMAT "earlystop-stopper"

/* Arrays of one head while it is read: freed after es_stopper_new copies them. */
typedef struct head_buf {
    uint32_t feature[ES_STOPPER_MAX_INPUTS];
    double mean[ES_STOPPER_MAX_INPUTS], scale[ES_STOPPER_MAX_INPUTS];
    double *w1[2], *b1[2], *w2[2];
} head_buf;

static void head_buf_free(head_buf *b)
{
    for (int k = 0; k < 2; k++) {
        free(b->w1[k]);
        free(b->b1[k]);
        free(b->w2[k]);
    }
}

static int fail(es_error *err, const char *path, const char *field, const char *msg)
{
    return es_error_set(err, ES_EFORMAT, path, 0, field, "%s", msg);
}

/* An array of exactly n numbers into out. */
static int numbers(json_t *a, size_t n, double *out, const char *path, const char *field, es_error *err)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return es_error_set(err, ES_EFORMAT, path, 0, field, "must be an array of %zu numbers", n);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_number(v)) return es_error_set(err, ES_EFORMAT, path, 0, field, "item %zu is not a number", i);
        out[i] = json_number_value(v);
    }
    return ES_OK;
}

static int read_net(json_t *j, uint32_t n_in, es_stopper_net *net, head_buf *b, int k, const char *path,
                    const char *field, es_error *err)
{
    char f[96];
    if (!json_is_object(j)) return fail(err, path, field, "must be an object");
    json_t *out = json_object_get(j, "output"), *w = json_object_get(j, "weight");
    snprintf(f, sizeof f, "%.60s.output", field);
    if (!json_is_string(out) || (strcmp(json_string_value(out), "logistic") && strcmp(json_string_value(out), "linear")))
        return fail(err, path, f, "must be \"logistic\" or \"linear\"");
    net->sigmoid = !strcmp(json_string_value(out), "logistic");
    snprintf(f, sizeof f, "%.60s.weight", field);
    if (w && !json_is_number(w)) return fail(err, path, f, "must be a number");
    net->weight = w ? json_number_value(w) : 1.0;
    json_t *w1 = json_object_get(j, "w1");
    if (!w1) { /* linear in z */
        net->hidden = 0;
        b->w2[k] = malloc((n_in + 1) * sizeof(double));
        if (!b->w2[k]) return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
        snprintf(f, sizeof f, "%.60s.w", field);
        int rc = numbers(json_object_get(j, "w"), n_in, b->w2[k], path, f, err);
        if (rc) return rc;
        json_t *bias = json_object_get(j, "b");
        snprintf(f, sizeof f, "%.60s.b", field);
        if (!json_is_number(bias)) return fail(err, path, f, "must be a number");
        net->w2 = b->w2[k];
        net->b2 = json_number_value(bias);
        return ES_OK;
    }
    snprintf(f, sizeof f, "%.60s.w1", field);
    size_t h = json_is_array(w1) ? json_array_size(w1) : 0;
    if (h < 1 || h > ES_STOPPER_MAX_HIDDEN)
        return fail(err, path, f, "must be an array of 1 to 64 rows (one per hidden unit)");
    net->hidden = (uint32_t)h;
    b->w1[k] = malloc(h * n_in * sizeof(double) + 1);
    b->b1[k] = malloc(h * sizeof(double));
    b->w2[k] = malloc(h * sizeof(double));
    if (!b->w1[k] || !b->b1[k] || !b->w2[k]) return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    for (size_t r = 0; r < h; r++) {
        snprintf(f, sizeof f, "%.60s.w1[%zu]", field, r);
        int rc = numbers(json_array_get(w1, r), n_in, b->w1[k] + r * n_in, path, f, err);
        if (rc) return rc;
    }
    snprintf(f, sizeof f, "%.60s.b1", field);
    int rc = numbers(json_object_get(j, "b1"), h, b->b1[k], path, f, err);
    snprintf(f, sizeof f, "%.60s.w2", field);
    if (!rc) rc = numbers(json_object_get(j, "w2"), h, b->w2[k], path, f, err);
    if (rc) return rc;
    json_t *b2 = json_object_get(j, "b2");
    snprintf(f, sizeof f, "%.60s.b2", field);
    if (!json_is_number(b2)) return fail(err, path, f, "must be a number");
    net->w1 = b->w1[k];
    net->b1 = b->b1[k];
    net->w2 = b->w2[k];
    net->b2 = json_number_value(b2);
    return ES_OK;
}

/* An optional whole number in [lo, hi]: 1 with *out = it (0 when absent or
 * null), 0 when it is anything else. */
static int opt_whole(json_t *v, double lo, double hi, uint32_t *out)
{
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    *out = 0;
    if (!v || json_is_null(v)) return 1;
    if (!(x >= lo && x <= hi && x == floor(x))) return 0;
    *out = (uint32_t)x;
    return 1;
}

/* "required": the names, among the head's features, that must be present
 * for it to score (optional; absent = none). */
static int read_required(json_t *req, json_t *feats, es_stopper_head *h, const char *path, const char *name,
                         es_error *err)
{
    char f[96];
    snprintf(f, sizeof f, "%s.required", name);
    h->required = 0;
    if (!req || json_is_null(req)) return ES_OK;
    if (!json_is_array(req)) return fail(err, path, f, "must be an array of the head's feature names");
    for (size_t r = 0; r < json_array_size(req); r++) {
        json_t *v = json_array_get(req, r);
        size_t i = 0;
        while (json_is_string(v) && i < h->n_in && strcmp(json_string_value(json_array_get(feats, i)), json_string_value(v)))
            i++;
        if (!json_is_string(v) || i == h->n_in)
            return es_error_set(err, ES_EFORMAT, path, 0, f, "item %zu is not one of the head's features", r);
        h->required |= 1ULL << i;
    }
    return ES_OK;
}

static int read_head(json_t *j, int level, const char *name, es_stopper_head *h, head_buf *b, const char *path,
                     es_error *err)
{
    char f[96];
    memset(h, 0, sizeof *h);
    if (!j || json_is_null(j)) return ES_OK;
    if (!json_is_object(j)) return fail(err, path, name, "must be an object (or null: no head at this level)");
    json_t *feats = json_object_get(j, "features");
    snprintf(f, sizeof f, "%s.features", name);
    size_t n = json_is_array(feats) ? json_array_size(feats) : 0;
    if (n < 1 || n > ES_STOPPER_MAX_INPUTS) return fail(err, path, f, "must be an array of 1 to 64 feature names");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(feats, i);
        snprintf(f, sizeof f, "%s.features[%zu]", name, i);
        es_feature_info fi;
        if (!json_is_string(v) || es_feature_find(json_string_value(v), &b->feature[i]))
            return fail(err, path, f, "is not a feature name (earlystop learn --help lists them)");
        es_feature_get_info(b->feature[i], &fi);
        if (fi.level != level)
            return es_error_set(err, ES_EFORMAT, path, 0, f, "%s is not %s feature", fi.name,
                                level == ES_AT_WITHIN ? "a within" : "an across");
    }
    h->n_in = (uint32_t)n;
    h->feature = b->feature;
    snprintf(f, sizeof f, "%s.mean", name);
    int rc = numbers(json_object_get(j, "mean"), n, b->mean, path, f, err);
    snprintf(f, sizeof f, "%s.scale", name);
    if (!rc) rc = numbers(json_object_get(j, "scale"), n, b->scale, path, f, err);
    if (rc) return rc;
    h->mean = b->mean;
    h->scale = b->scale;
    if ((rc = read_required(json_object_get(j, "required"), feats, h, path, name, err))) return rc;
    json_t *every = json_object_get(j, "every");
    snprintf(f, sizeof f, "%s.every", name);
    if (every && !json_is_null(every) && level != ES_AT_WITHIN)
        return fail(err, path, f, "is a within head's (the probe spacing it was trained at)");
    if (!opt_whole(every, 1, 1000000, &h->every))
        return fail(err, path, f, "must be a whole number of probe points in 1..1000000");
    json_t *clip = json_object_get(j, "clip"), *nets = json_object_get(j, "nets");
    snprintf(f, sizeof f, "%s.clip", name);
    if (!json_is_number(clip)) return fail(err, path, f, "must be a number");
    h->clip = json_number_value(clip);
    snprintf(f, sizeof f, "%s.nets", name);
    if (!json_is_array(nets) || json_array_size(nets) < 1 || json_array_size(nets) > 2)
        return fail(err, path, f, "must be an array of one or two nets");
    h->n_nets = (uint32_t)json_array_size(nets);
    for (uint32_t k = 0; k < h->n_nets; k++) {
        snprintf(f, sizeof f, "%s.nets[%u]", name, k);
        if ((rc = read_net(json_array_get(nets, k), h->n_in, &h->net[k], b, (int)k, path, f, err))) return rc;
    }
    return ES_OK;
}

static int read_points(json_t *a, es_stopper_desc *d, double *budget, double *thr, double *pthr, const char *path,
                       es_error *err)
{
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n < 1 || n > ES_STOPPER_MAX_POINTS)
        return fail(err, path, "operating_points", "must be an array of 1 to 32 points");
    for (size_t i = 0; i < n; i++) {
        char f[64];
        snprintf(f, sizeof f, "operating_points[%zu]", i);
        json_t *p = json_array_get(a, i);
        json_t *b = json_object_get(p, "max_em_drop"), *t = json_object_get(p, "threshold"),
               *pt = json_object_get(p, "probe_threshold");
        if (!json_is_object(p) || !json_is_number(b))
            return fail(err, path, f, "must be an object with a number max_em_drop");
        if ((t && !json_is_number(t) && !json_is_null(t)) || (pt && !json_is_number(pt) && !json_is_null(pt)))
            return fail(err, path, f, "threshold and probe_threshold must be numbers (or null)");
        budget[i] = json_number_value(b);
        thr[i] = json_is_number(t) ? json_number_value(t) : NAN;
        pthr[i] = json_is_number(pt) ? json_number_value(pt) : NAN;
    }
    d->n_points = (uint32_t)n;
    d->max_em_drop = budget;
    d->threshold = thr;
    d->probe_threshold = pthr;
    return ES_OK;
}

/* "across_alt": more across heads (optional). */
static int read_alt(json_t *a, es_stopper_desc *d, es_stopper_head *alt, head_buf *b, const char *path, es_error *err)
{
    if (!a || json_is_null(a)) return ES_OK;
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n < 1 || n > ES_STOPPER_MAX_ALT) return fail(err, path, "across_alt", "must be an array of 1 to 8 across heads");
    for (size_t k = 0; k < n; k++) {
        char name[32];
        snprintf(name, sizeof name, "across_alt[%zu]", k);
        json_t *h = json_array_get(a, k);
        if (!json_is_object(h)) return fail(err, path, name, "must be an object (a head)");
        int rc = read_head(h, ES_AT_ACROSS, name, &alt[k], &b[k], path, err);
        if (rc) return rc;
    }
    d->n_across_alt = (uint32_t)n;
    d->across_alt = alt;
    return ES_OK;
}

/* operating_points[i].across_head: which across head the point uses
 * (optional; 0 = "across", k = across_alt[k - 1]). */
static int read_picks(json_t *a, es_stopper_desc *d, uint32_t *pick, const char *path, es_error *err)
{
    int any = 0;
    for (uint32_t i = 0; i < d->n_points; i++) {
        json_t *v = json_object_get(json_array_get(a, i), "across_head");
        char f[64];
        snprintf(f, sizeof f, "operating_points[%u].across_head", i);
        if (!opt_whole(v, 0, d->n_across_alt, &pick[i]))
            return fail(err, path, f, "must name a head: 0 (across) or k (across_alt[k - 1])");
        any |= pick[i] != 0;
    }
    d->across_pick = any ? pick : NULL;
    return ES_OK;
}

/* 1 when the object is a stopper file (policy_json.c dispatches on it). */
int es_io_is_stopper(const void *json)
{
    json_t *f = json_object_get((json_t *)json, "format");
    return json_is_string(f) && !strcmp(json_string_value(f), STOPPER_FORMAT);
}

int es_io_stopper_from_json(const void *json, const char *path, es_stopper **out, char *spec, size_t spec_cap,
                            es_error *err)
{
    json_t *j = (json_t *)json;
    *out = NULL;
    json_t *v = json_object_get(j, "version"), *sp = json_object_get(j, "spec");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return fail(err, path, "version", "this build reads stopper files of version 1");
    if (sp && !json_is_string(sp)) return fail(err, path, "spec", "must be a string such as \"learned\"");
    if (spec) {
        const char *s = sp ? json_string_value(sp) : "learned";
        if (strlen(s) >= spec_cap) return fail(err, path, "spec", "too long");
        snprintf(spec, spec_cap, "%s", s);
    }
    head_buf hw, ha;
    memset(&hw, 0, sizeof hw);
    memset(&ha, 0, sizeof ha);
    double budget[ES_STOPPER_MAX_POINTS], thr[ES_STOPPER_MAX_POINTS], pthr[ES_STOPPER_MAX_POINTS];
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    head_buf halt[ES_STOPPER_MAX_ALT];
    es_stopper_head alt[ES_STOPPER_MAX_ALT];
    uint32_t pick[ES_STOPPER_MAX_POINTS];
    memset(halt, 0, sizeof halt);
    int rc = read_head(json_object_get(j, "within"), ES_AT_WITHIN, "within", &d.within, &hw, path, err);
    if (!rc) rc = read_head(json_object_get(j, "across"), ES_AT_ACROSS, "across", &d.across, &ha, path, err);
    if (!rc) rc = read_alt(json_object_get(j, "across_alt"), &d, alt, halt, path, err);
    if (!rc) rc = read_points(json_object_get(j, "operating_points"), &d, budget, thr, pthr, path, err);
    if (!rc) rc = read_picks(json_object_get(j, "operating_points"), &d, pick, path, err);
    if (!rc) {
        rc = es_stopper_new(&d, out, err);
        if (rc && err) {
            snprintf(err->file, sizeof err->file, "%s", path);
            err->code = rc = ES_EFORMAT;
        }
    }
    head_buf_free(&hw);
    head_buf_free(&ha);
    for (int k = 0; k < ES_STOPPER_MAX_ALT; k++) head_buf_free(&halt[k]);
    return rc;
}

int es_stopper_load(const char *path, es_stopper **out, char *spec, size_t spec_cap, es_error *err)
{
    *out = NULL;
    json_t *j;
    int rc = es_json_read_file(path, "(a stopper file, written by `earlystop learn --out`)", &j, err);
    if (rc) return rc;
    rc = json_is_object(j) && es_io_is_stopper(j)
                 ? es_io_stopper_from_json(j, path, out, spec, spec_cap, err)
                 : fail(err, path, "format", "not a stopper file (\"format\": \"" STOPPER_FORMAT "\")");
    json_decref(j);
    return rc;
}

/* ---------------------------------------------------------------- write */

static json_t *array_of(const double *x, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_real(x[i]));
    return a;
}

static json_t *net_json(const es_stopper_net *n, uint32_t n_in)
{
    json_t *o = json_object();
    json_object_set_new(o, "output", json_string(n->sigmoid ? "logistic" : "linear"));
    json_object_set_new(o, "weight", json_real(n->weight));
    if (!n->hidden) {
        json_object_set_new(o, "w", array_of(n->w2, n_in));
        json_object_set_new(o, "b", json_real(n->b2));
        return o;
    }
    json_t *w1 = json_array();
    for (uint32_t h = 0; h < n->hidden; h++) json_array_append_new(w1, array_of(n->w1 + (size_t)h * n_in, n_in));
    json_object_set_new(o, "w1", w1);
    json_object_set_new(o, "b1", array_of(n->b1, n->hidden));
    json_object_set_new(o, "w2", array_of(n->w2, n->hidden));
    json_object_set_new(o, "b2", json_real(n->b2));
    return o;
}

static json_t *head_json(const es_stopper_head *h)
{
    if (!h->n_in) return json_null();
    json_t *o = json_object(), *f = json_array(), *nets = json_array();
    for (uint32_t i = 0; i < h->n_in; i++) {
        es_feature_info fi;
        es_feature_get_info(h->feature[i], &fi);
        json_array_append_new(f, json_string(fi.name));
    }
    json_object_set_new(o, "features", f);
    json_object_set_new(o, "mean", array_of(h->mean, h->n_in));
    json_object_set_new(o, "scale", array_of(h->scale, h->n_in));
    if (h->required) {
        json_t *req = json_array();
        for (uint32_t i = 0; i < h->n_in; i++)
            if ((h->required >> i) & 1) json_array_append(req, json_array_get(f, i));
        json_object_set_new(o, "required", req);
    }
    if (h->every > 1) json_object_set_new(o, "every", json_integer(h->every));
    json_object_set_new(o, "clip", json_real(h->clip));
    for (uint32_t k = 0; k < h->n_nets; k++) json_array_append_new(nets, net_json(&h->net[k], h->n_in));
    json_object_set_new(o, "nets", nets);
    return o;
}

static json_t *num_or_null(double x) { return isnan(x) ? json_null() : json_real(x); }

int es_stopper_write(const es_stopper *m, FILE *fp, const char *spec, const char *provenance_json, es_error *err)
{
    es_stopper_desc d;
    es_stopper_get(m, &d);
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string(STOPPER_FORMAT));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "spec", json_string(spec ? spec : "learned"));
    if (provenance_json) {
        json_error_t je;
        json_t *p = json_loads(provenance_json, 0, &je);
        if (!json_is_object(p)) {
            json_decref(p);
            json_decref(o);
            return es_error_set(err, ES_EINVAL, "", 0, "provenance", "not a JSON object: %s", je.text);
        }
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v) {
            if (strcmp(k, "format") && strcmp(k, "version") && strcmp(k, "spec") && strcmp(k, "within") &&
                strcmp(k, "across") && strcmp(k, "across_alt") && strcmp(k, "operating_points"))
                json_object_set(o, k, v);
        }
        json_decref(p);
    }
    json_t *pts = json_array();
    for (uint32_t i = 0; i < d.n_points; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "max_em_drop", json_real(d.max_em_drop[i]));
        json_object_set_new(p, "threshold", num_or_null(d.threshold[i]));
        json_object_set_new(p, "probe_threshold", num_or_null(d.probe_threshold[i]));
        if (d.across_pick && d.across_pick[i]) json_object_set_new(p, "across_head", json_integer(d.across_pick[i]));
        json_array_append_new(pts, p);
    }
    json_object_set_new(o, "operating_points", pts);
    json_object_set_new(o, "across", head_json(&d.across));
    if (d.n_across_alt) {
        json_t *alt = json_array();
        for (uint32_t k = 0; k < d.n_across_alt; k++) json_array_append_new(alt, head_json(&d.across_alt[k]));
        json_object_set_new(o, "across_alt", alt);
    }
    json_object_set_new(o, "within", head_json(&d.within));
    int rc = json_dumpf(o, fp, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) || fputc('\n', fp) == EOF
                 ? es_error_set(err, ES_EIO, "", 0, "", "write failed")
                 : ES_OK;
    json_decref(o);
    return rc;
}

int es_stopper_save(const es_stopper *m, const char *path, const char *spec, const char *provenance_json,
                    es_error *err)
{
    es_outfile *of;
    int rc = es_outfile_open(path, NULL, &of, err);
    if (rc) return rc;
    rc = es_stopper_write(m, es_outfile_fp(of), spec, provenance_json, err);
    if (rc) {
        es_outfile_abort(of);
        if (err) snprintf(err->file, sizeof err->file, "%s", path);
        return rc;
    }
    return es_outfile_commit(of, err);
}
