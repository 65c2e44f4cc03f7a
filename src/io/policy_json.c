/*
 * policy_json.c - policies stored as JSON files ("@policy.json" on the
 * command line), so that tuners can write what they found to disk.
 *
 * Accepted forms (one of the two; both at once is an error):
 *   {"spec": "dynasor:k=3+ac-beta:threshold=0.9"}
 *   {"rules": [{"name": "dynasor", "k": 3}, {"name": "esc", "remainder": "skip"}]}
 * Other top-level keys (provenance, tuning figures) are ignored; a key given
 * twice anywhere is an error.  A learned stopper's file ("format":
 * "earlystop-stopper", stopper_json.c) is a policy file too: its spec with
 * its weights.
 */
#include <string.h>

#include <jansson.h>

#include "earlystop_io.h"
#include "json_file.h"
#include "stopper_int.h"

/* 1 when s can stand in a spec as a rule name, key or value: it must not
 * carry the spec's own separators (':', ',', '=', '+'), or a file could
 * smuggle in parameters or rules the JSON does not show. */
static int spec_safe(const char *s)
{
    return *s && !strpbrk(s, ":,=+ \t\n");
}

/* Append "name:key=value,..." for one rule object.  Values are numbers, or
 * words ("max": "all", "remainder": "skip"). */
static int rule_to_spec(json_t *r, size_t idx, char *buf, size_t cap, size_t *at, const char *path, es_error *err)
{
    char field[96];
    snprintf(field, sizeof field, "rules[%zu]", idx);
    if (!json_is_object(r)) return es_error_set(err, ES_EFORMAT, path, 0, field, "must be an object");
    json_t *name = json_object_get(r, "name");
    snprintf(field, sizeof field, "rules[%zu].name", idx);
    if (!json_is_string(name) || !spec_safe(json_string_value(name)))
        return es_error_set(err, ES_EFORMAT, path, 0, field, "must be a rule name (a string)");
    *at += (size_t)snprintf(buf + *at, *at < cap ? cap - *at : 0, "%s%s", idx ? "+" : "", json_string_value(name));
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(r, k, v) {
        if (!strcmp(k, "name")) continue;
        snprintf(field, sizeof field, "rules[%zu].%.40s", idx, k);
        if (!spec_safe(k)) return es_error_set(err, ES_EFORMAT, path, 0, field, "is not a parameter name");
        char val[64];
        if (json_is_number(v))
            snprintf(val, sizeof val, "%.17g", json_number_value(v));
        else if (json_is_string(v) && spec_safe(json_string_value(v)) && strlen(json_string_value(v)) < sizeof val)
            snprintf(val, sizeof val, "%s", json_string_value(v));
        else
            return es_error_set(err, ES_EFORMAT, path, 0, field, "must be a number or a word such as \"all\"");
        *at += (size_t)snprintf(buf + *at, *at < cap ? cap - *at : 0, "%s%s=%s", first ? ":" : ",", k, val);
        first = 0;
    }
    return ES_OK;
}

int es_policy_spec_load(const char *path, char *buf, size_t cap, es_error *err)
{
    json_t *j;
    int jrc = es_json_read_file(path, "(a policy file is a JSON object with \"spec\" or \"rules\")", &j, err);
    if (jrc) return jrc;
    int rc = ES_OK;
    size_t at = 0;
    json_t *spec = json_object_get(j, "spec"), *rules = json_object_get(j, "rules");
    json_t *fmt = json_object_get(j, "format");
    if (!json_is_object(j)) {
        rc = es_error_set(err, ES_EFORMAT, path, 0, "", "a policy file is a JSON object with \"spec\" or \"rules\"");
    } else if (fmt || json_object_get(j, "across") || json_object_get(j, "within")) {
        /* Policy files carry no "format"; read as one, another file's "spec"
         * (a prior's family, a stopper's "learned") would silently stand
         * for the built-in rule and drop the file's weights. */
        rc = es_io_is_stopper(j)
                     ? es_error_set(err, ES_EFORMAT, path, 0, "format",
                                    "a stopper file: its weights do not fit in a spec (eval and run load it with --policy @FILE,"
                                    " the C API with es_policy_new_any)")
             : json_is_string(fmt)
                     ? es_error_set(err, ES_EFORMAT, path, 0, "format",
                                    "\"%s\" is not a policy file (a policy file has \"spec\" or \"rules\" and no \"format\";"
                                    " a stopper file has \"format\": \"earlystop-stopper\")",
                                    json_string_value(fmt))
                     : es_error_set(err, ES_EFORMAT, path, 0, "format",
                                    "has a stopper's \"across\" or \"within\" head but not \"format\": \"earlystop-stopper\"");
    } else if (spec && rules) {
        rc = es_error_set(err, ES_EFORMAT, path, 0, "spec",
                          "the file has both \"spec\" and \"rules\": keep one, they could disagree");
    } else if (json_is_string(spec)) {
        at = (size_t)snprintf(buf, cap, "%s", json_string_value(spec));
    } else if (json_is_array(rules) && json_array_size(rules)) {
        for (size_t i = 0; rc == ES_OK && i < json_array_size(rules); i++)
            rc = rule_to_spec(json_array_get(rules, i), i, buf, cap, &at, path, err);
    } else if (spec) {
        rc = es_error_set(err, ES_EFORMAT, path, 0, "spec", "must be a string such as \"ac-beta:threshold=0.9\"");
    } else {
        rc = es_error_set(err, ES_EFORMAT, path, 0, "spec", "a policy file needs \"spec\" or a non-empty \"rules\" list");
    }
    json_decref(j);
    if (rc == ES_OK && at >= cap) rc = es_error_set(err, ES_ERANGE, path, 0, "spec", "policy spec too long");
    return rc;
}

int es_policy_new_any(const char *spec, es_policy **out, es_error *err)
{
    *out = NULL; /* as es_policy_new: a failed load leaves no stale pointer */
    if (spec && spec[0] == '@') {
        char buf[1024];
        json_t *j = json_load_file(spec + 1, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(j) && es_io_is_stopper(j)) {
            es_stopper *m;
            int rc = es_io_stopper_from_json(j, spec + 1, &m, buf, sizeof buf, err);
            json_decref(j);
            if (rc) return rc;
            rc = es_policy_new_stopper(buf, m, out, err);
            es_stopper_free(m); /* the policy holds its own reference */
            if (rc && err) snprintf(err->file, sizeof err->file, "%s", spec + 1);
            return rc;
        }
        json_decref(j);
        int rc = es_policy_spec_load(spec + 1, buf, sizeof buf, err);
        if (rc) return rc;
        rc = es_policy_new(buf, out, err);
        if (rc && err) snprintf(err->file, sizeof err->file, "%s", spec + 1);
        return rc;
    }
    return es_policy_new(spec, out, err);
}
