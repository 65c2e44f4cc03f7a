/*
 * prior_json.c - the prior file: what es_meta_train learned, as JSON
 * (docs/learning.md has an annotated example).
 *
 *   {"format": "earlystop-prior", "version": 1, "tool", "earlystop_version",
 *    "max_em_drop_pts", "delta", "shuffles", "seed", "default_family",
 *    "descriptor": {"names": [...], "mean": [...], "scale": [...]},
 *    "families": [{"name", "spec", "key", "scale", "grid": [...],
 *                  "fits": {"gold": FIT, "none": FIT}}],
 *    "tasks": [{"name", "items", "descriptor": [...],
 *               "best": {FAMILY: {"gold": v, "none": v}}}]}
 *   FIT = {"mean", "var", "coef": [intercept, one per descriptor],
 *          "lambda" (null: intercept only), "resid_var", "default",
 *          "noise": [{"k", "bias", "var"}]}
 *
 * The reader checks every field it uses and names it in its errors
 * ("families[1].fits.gold.noise[2].var"); the version is checked first, so
 * a file of a later format is refused as such, not as broken.  "tasks" is
 * provenance: read, checked lightly, never used by adapt.  Keys it does not
 * know are ignored (room for provenance), a key given twice is an error.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_file.h"
#include "meta_int.h"

static const char *const label_key[ES_META_N_LABELS] = {"gold", "none"};

/* ------------------------------------------------------------- writer */

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *num_array(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, num(v[i]));
    return a;
}

static json_t *fit_json(const mt_fit *fit, const mt_family *fam)
{
    json_t *j = json_object(), *noise = json_array();
    json_object_set_new(j, "mean", num(fit->mean));
    json_object_set_new(j, "var", num(fit->var));
    json_object_set_new(j, "coef", num_array(fit->coef, ES_META_N_DESC + 1));
    json_object_set_new(j, "lambda", num(fit->lambda));
    json_object_set_new(j, "resid_var", num(fit->resid_var));
    json_object_set_new(j, "default", num(fam->grid[fit->g_default]));
    for (size_t i = 0; i < fit->n_k; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "k", num(fit->k[i]));
        json_object_set_new(e, "bias", num(fit->bias[i]));
        json_object_set_new(e, "var", num(fit->noise[i]));
        json_array_append_new(noise, e);
    }
    json_object_set_new(j, "noise", noise);
    return j;
}

int es_meta_prior_write(const es_meta_prior *p, FILE *fp, es_error *err)
{
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string("earlystop-prior"));
    json_object_set_new(j, "version", json_integer(ES_META_PRIOR_VERSION));
    json_object_set_new(j, "tool", json_string("earlystop meta-train"));
    json_object_set_new(j, "earlystop_version", json_string(ES_VERSION_STRING));
    json_object_set_new(j, "max_em_drop_pts", num(100 * p->eps));
    json_object_set_new(j, "delta", num(p->delta));
    json_object_set_new(j, "shuffles", json_integer(p->shuffles));
    json_object_set_new(j, "seed", json_integer((json_int_t)p->seed));
    json_object_set_new(j, "default_family", json_string(p->fam[p->default_fam].name));
    json_t *desc = json_object(), *names = json_array();
    for (size_t d = 0; d < ES_META_N_DESC; d++) json_array_append_new(names, json_string(es_meta_descriptor_name(d)));
    json_object_set_new(desc, "names", names);
    json_object_set_new(desc, "mean", num_array(p->x_mean, ES_META_N_DESC));
    json_object_set_new(desc, "scale", num_array(p->x_scale, ES_META_N_DESC));
    json_object_set_new(j, "descriptor", desc);
    json_t *fams = json_array();
    for (size_t f = 0; f < p->n_fam; f++) {
        const mt_family *fam = &p->fam[f];
        json_t *o = json_object(), *fits = json_object();
        json_object_set_new(o, "name", json_string(fam->name));
        json_object_set_new(o, "spec", json_string(fam->spec));
        json_object_set_new(o, "key", json_string(fam->key));
        json_object_set_new(o, "scale", json_string(mt_scale_name(fam->scale)));
        json_object_set_new(o, "grid", num_array(fam->grid, fam->n_grid));
        for (int l = 0; l < ES_META_N_LABELS; l++) json_object_set_new(fits, label_key[l], fit_json(&p->fit[f][l], fam));
        json_object_set_new(o, "fits", fits);
        json_array_append_new(fams, o);
    }
    json_object_set_new(j, "families", fams);
    json_t *tasks = json_array();
    for (size_t t = 0; t < p->n_tasks; t++) {
        const mt_task_rec *r = &p->tasks[t];
        json_t *o = json_object(), *best = json_object();
        json_object_set_new(o, "name", json_string(r->name));
        json_object_set_new(o, "items", json_integer((json_int_t)r->items));
        json_object_set_new(o, "descriptor", num_array(r->x, ES_META_N_DESC));
        for (size_t f = 0; f < p->n_fam; f++) {
            json_t *b = json_object();
            for (int l = 0; l < ES_META_N_LABELS; l++)
                json_object_set_new(b, label_key[l], num(mt_from_z(p->fam[f].scale, r->z[f][l])));
            json_object_set_new(best, p->fam[f].name, b);
        }
        json_object_set_new(o, "best", best);
        json_array_append_new(tasks, o);
    }
    json_object_set_new(j, "tasks", tasks);
    int bad = !j || json_dumpf(j, fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) ||
              fputc('\n', fp) == EOF;
    json_decref(j);
    return bad ? es_error_set(err, ES_EIO, "", 0, "", "the prior could not be written") : ES_OK;
}

/* ------------------------------------------------------------- reader */

typedef struct rd {
    const char *path;
    es_error *err;
    char field[128];
} rd;

/* Name the field being read: printf-style path. */
static void at(rd *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void at(rd *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->field, sizeof r->field, fmt, ap);
    va_end(ap);
}

static int bad(rd *r, const char *what) { return es_error_set(r->err, ES_EFORMAT, r->path, 0, r->field, "%s", what); }

/* A finite number in [lo, hi]. */
static int get_num(rd *r, json_t *v, double lo, double hi, double *out)
{
    if (!json_is_number(v)) return bad(r, "must be a number");
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi) {
        char m[128];
        snprintf(m, sizeof m, "%g is outside [%g, %g]", x, lo, hi);
        return bad(r, m);
    }
    *out = x;
    return ES_OK;
}

/* An array of exactly n numbers (NaN allowed where nullable). */
static int get_nums(rd *r, json_t *a, size_t n, double lo, double hi, int nullable, double *out)
{
    if (!json_is_array(a) || json_array_size(a) != n) {
        char m[96];
        snprintf(m, sizeof m, "must be an array of %zu numbers", n);
        return bad(r, m);
    }
    char base[128];
    snprintf(base, sizeof base, "%s", r->field);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        at(r, "%.100s[%zu]", base, i);
        if (nullable && json_is_null(v)) out[i] = NAN;
        else if (get_num(r, v, lo, hi, &out[i])) return r->err ? r->err->code : ES_EFORMAT;
    }
    return ES_OK;
}

static int get_str(rd *r, json_t *v, char *buf, size_t cap)
{
    if (!json_is_string(v) || !json_string_length(v)) return bad(r, "must be a non-empty string");
    if (json_string_length(v) >= cap) return bad(r, "is too long");
    snprintf(buf, cap, "%s", json_string_value(v));
    return ES_OK;
}

static int read_fit(rd *r, json_t *o, const char *base, const mt_family *fam, mt_fit *fit)
{
    if (!json_is_object(o)) return at(r, "%s", base), bad(r, "must be an object");
    int rc;
    at(r, "%s.mean", base);
    if ((rc = get_num(r, json_object_get(o, "mean"), -1e6, 1e6, &fit->mean))) return rc;
    at(r, "%s.var", base);
    if ((rc = get_num(r, json_object_get(o, "var"), 0, 1e6, &fit->var))) return rc;
    at(r, "%s.coef", base);
    if ((rc = get_nums(r, json_object_get(o, "coef"), ES_META_N_DESC + 1, -1e6, 1e6, 0, fit->coef))) return rc;
    at(r, "%s.lambda", base);
    json_t *lam = json_object_get(o, "lambda");
    if (json_is_null(lam)) fit->lambda = INFINITY;
    else if ((rc = get_num(r, lam, 0, 1e12, &fit->lambda))) return rc;
    at(r, "%s.resid_var", base);
    if ((rc = get_num(r, json_object_get(o, "resid_var"), 0, 1e6, &fit->resid_var))) return rc;
    at(r, "%s.default", base);
    double def;
    if ((rc = get_num(r, json_object_get(o, "default"), -1e12, 1e12, &def))) return rc;
    fit->g_default = ES_META_FULL;
    for (size_t g = 0; g < fam->n_grid; g++)
        if (fam->grid[g] == def) fit->g_default = g;
    if (fit->g_default == ES_META_FULL) return bad(r, "is not a value of the family's grid");
    json_t *noise = json_object_get(o, "noise");
    at(r, "%s.noise", base);
    if (!json_is_array(noise) || json_array_size(noise) > MT_N_K) {
        char m[96];
        snprintf(m, sizeof m, "must be an array of at most %d entries {\"k\", \"bias\", \"var\"}", MT_N_K);
        return bad(r, m);
    }
    fit->n_k = json_array_size(noise);
    for (size_t i = 0; i < fit->n_k; i++) {
        json_t *e = json_array_get(noise, i);
        at(r, "%s.noise[%zu]", base, i);
        if (!json_is_object(e)) return bad(r, "must be an object {\"k\", \"bias\", \"var\"}");
        at(r, "%s.noise[%zu].k", base, i);
        if ((rc = get_num(r, json_object_get(e, "k"), 1, 1e9, &fit->k[i]))) return rc;
        if (i && !(fit->k[i] > fit->k[i - 1])) return bad(r, "the noise table's k must increase");
        at(r, "%s.noise[%zu].bias", base, i);
        if ((rc = get_num(r, json_object_get(e, "bias"), -1e6, 1e6, &fit->bias[i]))) return rc;
        at(r, "%s.noise[%zu].var", base, i);
        if ((rc = get_num(r, json_object_get(e, "var"), 0, 1e6, &fit->noise[i]))) return rc;
    }
    return ES_OK;
}

static int read_family(rd *r, json_t *o, size_t f, mt_family *fam, mt_fit fits[ES_META_N_LABELS])
{
    at(r, "families[%zu]", f);
    if (!json_is_object(o)) return bad(r, "must be an object");
    int rc;
    at(r, "families[%zu].name", f);
    if ((rc = get_str(r, json_object_get(o, "name"), fam->name, sizeof fam->name))) return rc;
    at(r, "families[%zu].spec", f);
    if ((rc = get_str(r, json_object_get(o, "spec"), fam->spec, sizeof fam->spec))) return rc;
    at(r, "families[%zu].key", f);
    if ((rc = get_str(r, json_object_get(o, "key"), fam->key, sizeof fam->key))) return rc;
    at(r, "families[%zu].scale", f);
    char scale[32];
    if ((rc = get_str(r, json_object_get(o, "scale"), scale, sizeof scale))) return rc;
    if (mt_scale_parse(scale, &fam->scale)) return bad(r, "must be \"log\", \"neglog1m\" or \"linear\"");
    json_t *grid = json_object_get(o, "grid");
    at(r, "families[%zu].grid", f);
    if (!json_is_array(grid) || json_array_size(grid) < 2 || json_array_size(grid) > MT_MAX_GRID) {
        char m[96];
        snprintf(m, sizeof m, "must be an array of 2 to %d values", MT_MAX_GRID);
        return bad(r, m);
    }
    fam->n_grid = json_array_size(grid);
    if ((rc = get_nums(r, grid, fam->n_grid, -1e12, 1e12, 0, fam->grid))) return rc;
    at(r, "families[%zu]", f);
    es_error e2 = {0};
    if (mt_family_check(fam, r->field, &e2)) return es_error_set(r->err, ES_EFORMAT, r->path, 0, e2.field, "%s", e2.msg);
    json_t *fo = json_object_get(o, "fits");
    at(r, "families[%zu].fits", f);
    if (!json_is_object(fo)) return bad(r, "must be an object {\"gold\": ..., \"none\": ...}");
    for (int l = 0; l < ES_META_N_LABELS; l++) {
        char base[96];
        snprintf(base, sizeof base, "families[%zu].fits.%s", f, label_key[l]);
        if ((rc = read_fit(r, json_object_get(fo, label_key[l]), base, fam, &fits[l]))) return rc;
    }
    return ES_OK;
}

static int read_tasks(rd *r, json_t *a, es_meta_prior *p)
{
    at(r, "tasks");
    if (!json_is_array(a)) return bad(r, "must be an array");
    p->n_tasks = json_array_size(a);
    if (!(p->tasks = calloc(p->n_tasks + 1, sizeof *p->tasks)))
        return es_error_set(r->err, ES_ENOMEM, r->path, 0, "", "out of memory");
    for (size_t t = 0; t < p->n_tasks; t++) {
        json_t *o = json_array_get(a, t);
        mt_task_rec *rec = &p->tasks[t];
        int rc;
        at(r, "tasks[%zu].name", t);
        if (!json_is_object(o)) return bad(r, "must be an object");
        if ((rc = get_str(r, json_object_get(o, "name"), rec->name, sizeof rec->name))) return rc;
        double items;
        at(r, "tasks[%zu].items", t);
        if ((rc = get_num(r, json_object_get(o, "items"), 1, 1e12, &items))) return rc;
        rec->items = (size_t)items;
        at(r, "tasks[%zu].descriptor", t);
        if ((rc = get_nums(r, json_object_get(o, "descriptor"), ES_META_N_DESC, -1e6, 1e6, 1, rec->x))) return rc;
        for (size_t f = 0; f < p->n_fam; f++)
            for (int l = 0; l < ES_META_N_LABELS; l++) rec->z[f][l] = NAN;
        json_t *best = json_object_get(o, "best");
        for (size_t f = 0; json_is_object(best) && f < p->n_fam; f++) {
            json_t *b = json_object_get(best, p->fam[f].name);
            for (int l = 0; json_is_object(b) && l < ES_META_N_LABELS; l++) {
                json_t *v = json_object_get(b, label_key[l]);
                if (json_is_number(v) && json_number_value(v) > 0)
                    rec->z[f][l] = mt_to_z(p->fam[f].scale, json_number_value(v));
            }
        }
    }
    return ES_OK;
}

static int read_prior(rd *r, json_t *j, es_meta_prior *p)
{
    int rc;
    at(r, "format");
    json_t *fmt = json_object_get(j, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "earlystop-prior"))
        return bad(r, "must be \"earlystop-prior\" (is this a prior written by `earlystop meta-train`?)");
    at(r, "version");
    json_t *ver = json_object_get(j, "version");
    if (!json_is_integer(ver)) return bad(r, "must be an integer");
    if (json_integer_value(ver) != ES_META_PRIOR_VERSION) {
        char m[160];
        snprintf(m, sizeof m, "version %lld is not one this earlystop reads (%d): write the prior again with this "
                 "version's `earlystop meta-train`", (long long)json_integer_value(ver), ES_META_PRIOR_VERSION);
        return bad(r, m);
    }
    double pts, sh, seed;
    at(r, "max_em_drop_pts");
    if ((rc = get_num(r, json_object_get(j, "max_em_drop_pts"), 1e-9, 99.999999, &pts))) return rc;
    p->eps = pts / 100;
    at(r, "delta");
    if ((rc = get_num(r, json_object_get(j, "delta"), 1e-12, 0.999999, &p->delta))) return rc;
    at(r, "shuffles");
    if ((rc = get_num(r, json_object_get(j, "shuffles"), 0, 1e6, &sh))) return rc;
    if (sh != floor(sh)) return bad(r, "must be a whole number");
    p->shuffles = (uint32_t)sh;
    at(r, "seed");
    if ((rc = get_num(r, json_object_get(j, "seed"), 0, 9007199254740992.0, &seed))) return rc;
    p->seed = (uint64_t)seed;
    json_t *desc = json_object_get(j, "descriptor");
    at(r, "descriptor");
    if (!json_is_object(desc)) return bad(r, "must be an object {\"names\", \"mean\", \"scale\"}");
    json_t *names = json_object_get(desc, "names");
    at(r, "descriptor.names");
    if (!json_is_array(names) || json_array_size(names) != ES_META_N_DESC)
        return bad(r, "must list the descriptor's names in order");
    for (size_t d = 0; d < ES_META_N_DESC; d++) {
        json_t *v = json_array_get(names, d);
        at(r, "descriptor.names[%zu]", d);
        if (!json_is_string(v) || strcmp(json_string_value(v), es_meta_descriptor_name(d))) {
            char m[128];
            snprintf(m, sizeof m, "must be \"%s\" (the descriptor this earlystop computes)", es_meta_descriptor_name(d));
            return bad(r, m);
        }
    }
    at(r, "descriptor.mean");
    if ((rc = get_nums(r, json_object_get(desc, "mean"), ES_META_N_DESC, -1e6, 1e6, 0, p->x_mean))) return rc;
    at(r, "descriptor.scale");
    if ((rc = get_nums(r, json_object_get(desc, "scale"), ES_META_N_DESC, 0, 1e6, 0, p->x_scale))) return rc;
    json_t *fams = json_object_get(j, "families");
    at(r, "families");
    if (!json_is_array(fams) || json_array_size(fams) < 1 || json_array_size(fams) > MT_MAX_FAMILIES) {
        char m[96];
        snprintf(m, sizeof m, "must be an array of 1 to %d families", MT_MAX_FAMILIES);
        return bad(r, m);
    }
    p->n_fam = json_array_size(fams);
    for (size_t f = 0; f < p->n_fam; f++) {
        if ((rc = read_family(r, json_array_get(fams, f), f, &p->fam[f], p->fit[f]))) return rc;
        for (size_t e = 0; e < f; e++)
            if (!strcmp(p->fam[e].name, p->fam[f].name)) return at(r, "families[%zu].name", f), bad(r, "is given twice");
    }
    at(r, "default_family");
    char def[64];
    if ((rc = get_str(r, json_object_get(j, "default_family"), def, sizeof def))) return rc;
    p->default_fam = ES_META_FULL;
    for (size_t f = 0; f < p->n_fam; f++)
        if (!strcmp(p->fam[f].name, def)) p->default_fam = f;
    if (p->default_fam == ES_META_FULL) return bad(r, "names no family of the file");
    return read_tasks(r, json_object_get(j, "tasks"), p);
}

int es_meta_prior_read(const char *path, es_meta_prior **out, es_error *err)
{
    *out = NULL;
    json_t *j;
    int jrc = es_json_read_file(path, "(a prior is one JSON object, written by `earlystop meta-train`)", &j, err);
    if (jrc) return jrc;
    es_meta_prior *p = calloc(1, sizeof *p);
    rd r = {path, err, ""};
    int rc = p ? ES_OK : es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc && !json_is_object(j)) rc = bad(&r, "a prior file is one JSON object");
    if (!rc) rc = read_prior(&r, j, p);
    json_decref(j);
    if (rc) {
        es_meta_prior_free(p);
        return rc;
    }
    *out = p;
    return ES_OK;
}

/* ----------------------------------------------------------- accessors */

size_t es_meta_prior_n_families(const es_meta_prior *p) { return p->n_fam; }
const char *es_meta_prior_family(const es_meta_prior *p, size_t f) { return f < p->n_fam ? p->fam[f].name : NULL; }
size_t es_meta_prior_default_family(const es_meta_prior *p) { return p->default_fam; }
size_t es_meta_prior_n_tasks(const es_meta_prior *p) { return p->n_tasks; }
const char *es_meta_prior_task(const es_meta_prior *p, size_t i) { return i < p->n_tasks ? p->tasks[i].name : NULL; }
double es_meta_prior_eps(const es_meta_prior *p) { return p->eps; }
double es_meta_prior_delta(const es_meta_prior *p) { return p->delta; }
uint32_t es_meta_prior_shuffles(const es_meta_prior *p) { return p->shuffles; }
uint64_t es_meta_prior_seed(const es_meta_prior *p) { return p->seed; }
size_t es_meta_prior_grid_size(const es_meta_prior *p, size_t f) { return f < p->n_fam ? p->fam[f].n_grid : 0; }

int es_meta_prior_spec(const es_meta_prior *p, size_t f, size_t g, char *buf, size_t cap, es_error *err)
{
    if (f >= p->n_fam || g >= p->fam[f].n_grid) return es_error_set(err, ES_EINVAL, "", 0, "", "no such grid point");
    return mt_spec_of(&p->fam[f], p->fam[f].grid[g], buf, cap, err);
}

int es_meta_prior_fit(const es_meta_prior *p, size_t f, es_meta_labels l, es_meta_fit_info *out)
{
    memset(out, 0, sizeof *out);
    if (f >= p->n_fam || (int)l < 0 || (int)l >= ES_META_N_LABELS) return ES_EINVAL;
    const mt_fit *fit = &p->fit[f][l];
    out->mean = fit->mean;
    out->sd = sqrt(fit->var);
    out->resid_sd = sqrt(fit->resid_var);
    out->lambda = fit->lambda;
    for (int j = 0; j < 3; j++) {
        double v;
        mt_noise_at(fit, 8 << j, &out->bias[j], &v);
        out->noise_sd[j] = sqrt(v);
    }
    out->default_value = p->fam[f].grid[fit->g_default];
    return ES_OK;
}

int es_meta_prior_find_family(const es_meta_prior *p, const char *name, size_t *f, es_error *err)
{
    char list[512] = "";
    size_t n = 0;
    for (size_t i = 0; i < p->n_fam; i++) {
        if (!strcmp(p->fam[i].name, name)) {
            *f = i;
            return ES_OK;
        }
        n += (size_t)snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s", i ? ", " : "", p->fam[i].name);
    }
    return es_error_set(err, ES_EINVAL, "", 0, "--family", "the prior has no family '%s' (it has: %s)", name, list);
}
