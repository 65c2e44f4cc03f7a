/*
 * controller_json.c - the controller's state saved and restored as JSON
 * (earlystop_io.h).  The core hands the state over as named arrays of
 * numbers (es_controller_export / es_controller_import, ctl_state.c); this
 * file only turns them into a JSON object and back.  Numbers are written
 * with 17 significant digits, so a state saved and loaded is the same
 * state to the bit.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "earlystop_io.h"

static const char *const FORMAT = "earlystop-controller";
enum { VERSION = 1 };

static int put_json(void *ctx, const char *name, const double *v, uint32_t n)
{
    json_t *a = json_array();
    if (!a) return ES_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_real(v[i]))) {
            json_decref(a);
            return ES_ENOMEM;
        }
    return json_object_set_new((json_t *)ctx, name, a) ? ES_ENOMEM : ES_OK;
}

/* The state as a JSON object of arrays. */
static json_t *state_object(es_controller *c)
{
    json_t *st = json_object();
    if (st && es_controller_export(c, put_json, st)) {
        json_decref(st);
        st = NULL;
    }
    return st;
}

int es_controller_save(es_controller *c, const char *path, es_error *err)
{
    es_outfile *of;
    int rc = es_outfile_open(path, NULL, &of, err);
    if (rc) return rc;
    json_t *root = json_pack("{s:s, s:i, s:s}", "format", FORMAT, "version", VERSION, "param",
                             es_controller_param_name(c));
    json_t *st = state_object(c);
    if (!root || !st || json_object_set_new(root, "state", st)) {
        json_decref(root);
        es_outfile_abort(of);
        return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    }
    if (json_dumpf(root, es_outfile_fp(of), JSON_INDENT(1) | JSON_REAL_PRECISION(17)) ||
        fputc('\n', es_outfile_fp(of)) == EOF) {
        json_decref(root);
        es_outfile_abort(of);
        return es_error_set(err, ES_EIO, path, 0, "", "write failed");
    }
    json_decref(root);
    return es_outfile_commit(of, err);
}

/* One field: an array of finite numbers. */
static int import_field(es_controller *c, const char *path, const char *name, json_t *a, es_error *err)
{
    char field[96];
    snprintf(field, sizeof field, "state.%.56s", name);
    if (!json_is_array(a)) return es_error_set(err, ES_EFORMAT, path, 0, field, "must be an array of numbers");
    size_t n = json_array_size(a);
    if (n > 1000000) return es_error_set(err, ES_EFORMAT, path, 0, field, "too many values (%zu)", n);
    double *v = malloc((n + 1) * sizeof *v);
    if (!v) return es_error_set(err, ES_ENOMEM, path, 0, field, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_number(x)) {
            free(v);
            return es_error_set(err, ES_EFORMAT, path, 0, field, "value %zu is not a number", i);
        }
        v[i] = json_number_value(x);
    }
    int rc = es_controller_import(c, name, v, (uint32_t)n, err);
    free(v);
    if (rc && err) {
        snprintf(err->file, sizeof err->file, "%s", path);
        snprintf(err->field, sizeof err->field, "%.63s", field);
    }
    return rc;
}

/* Every field of st: the fixed ones first (they are checked, not set). */
static int import_all(es_controller *c, const char *path, json_t *st, es_error *err)
{
    static const char *const fixed[] = {"candidates", "unit"};
    for (size_t i = 0; i < 2; i++) {
        json_t *a = json_object_get(st, fixed[i]);
        if (!a) return es_error_set(err, ES_EFORMAT, path, 0, "state", "no \"%s\"", fixed[i]);
        int rc = import_field(c, path, fixed[i], a, err);
        if (rc) return rc;
    }
    const char *k;
    json_t *a;
    json_object_foreach(st, k, a) {
        if (!strcmp(k, "candidates") || !strcmp(k, "unit")) continue;
        int rc = import_field(c, path, k, a, err);
        if (rc) return rc;
    }
    return ES_OK;
}

int es_controller_load(es_controller *c, const char *path, es_error *err)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) return es_error_set(err, ES_EPARSE, path, je.line, "", "%s", je.text);
    int rc = ES_OK;
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version"),
           *param = json_object_get(root, "param"), *st = json_object_get(root, "state");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), FORMAT))
        rc = es_error_set(err, ES_EFORMAT, path, 0, "format", "not a controller state (\"format\": \"%s\" expected)",
                          FORMAT);
    else if (!json_is_integer(ver) || json_integer_value(ver) != VERSION)
        rc = es_error_set(err, ES_EFORMAT, path, 0, "version", "version %d expected", VERSION);
    else if (!json_is_string(param) || strcmp(json_string_value(param), es_controller_param_name(c)))
        rc = es_error_set(err, ES_EINVAL, path, 0, "param", "the state moved %s; this controller moves %s",
                          json_is_string(param) ? json_string_value(param) : "?", es_controller_param_name(c));
    else if (!json_is_object(st))
        rc = es_error_set(err, ES_EFORMAT, path, 0, "state", "must be an object");
    if (!rc) {
        /* all or nothing: keep the current state to put back on failure */
        json_t *backup = state_object(c);
        if (!backup) rc = es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
        else if ((rc = import_all(c, path, st, err)) != ES_OK) import_all(c, path, backup, NULL);
        json_decref(backup);
    }
    json_decref(root);
    return rc;
}
