/*
 * policy_json.c - policies stored as JSON files ("@policy.json" on the
 * command line), so that tuners can write what they found to disk.
 *
 * Accepted forms:
 *   {"spec": "dynasor:k=3+ac-beta:threshold=0.9"}
 *   {"rules": [{"name": "dynasor", "k": 3}, {"name": "ac-beta", "threshold": 0.9}]}
 * Other top-level keys (provenance, tuning figures) are ignored.
 */
#include <string.h>

#include <jansson.h>

#include "earlystop_io.h"

/* Append "name:key=value,..." for one rule object. */
static int rule_to_spec(json_t *r, size_t idx, char *buf, size_t cap, size_t *at, const char *path, es_error *err)
{
    json_t *name = json_object_get(r, "name");
    char field[96];
    snprintf(field, sizeof field, "rules[%zu].name", idx);
    if (!json_is_string(name)) return es_error_set(err, ES_EFORMAT, path, 0, field, "must be a string");
    *at += (size_t)snprintf(buf + *at, *at < cap ? cap - *at : 0, "%s%s", idx ? "+" : "", json_string_value(name));
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(r, k, v) {
        if (!strcmp(k, "name")) continue;
        snprintf(field, sizeof field, "rules[%zu].%.40s", idx, k);
        if (!json_is_number(v)) return es_error_set(err, ES_EFORMAT, path, 0, field, "must be a number");
        *at += (size_t)snprintf(buf + *at, *at < cap ? cap - *at : 0, "%s%s=%.17g", first ? ":" : ",", k,
                                json_number_value(v));
        first = 0;
    }
    return ES_OK;
}

int es_policy_spec_load(const char *path, char *buf, size_t cap, es_error *err)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return es_error_set(err, ES_EPARSE, path, je.line, "", "%s", je.text);
    int rc = ES_OK;
    size_t at = 0;
    json_t *spec = json_object_get(j, "spec"), *rules = json_object_get(j, "rules");
    if (json_is_string(spec)) {
        at = (size_t)snprintf(buf, cap, "%s", json_string_value(spec));
    } else if (json_is_array(rules) && json_array_size(rules)) {
        for (size_t i = 0; rc == ES_OK && i < json_array_size(rules); i++)
            rc = rule_to_spec(json_array_get(rules, i), i, buf, cap, &at, path, err);
    } else {
        rc = es_error_set(err, ES_EFORMAT, path, 0, "spec", "a policy file needs \"spec\" or a non-empty \"rules\" list");
    }
    json_decref(j);
    if (rc == ES_OK && at >= cap) rc = es_error_set(err, ES_ERANGE, path, 0, "spec", "policy spec too long");
    return rc;
}

int es_policy_new_any(const char *spec, es_policy **out, es_error *err)
{
    if (spec && spec[0] == '@') {
        char buf[1024];
        int rc = es_policy_spec_load(spec + 1, buf, sizeof buf, err);
        if (rc) return rc;
        rc = es_policy_new(buf, out, err);
        if (rc && err) snprintf(err->file, sizeof err->file, "%s", spec + 1);
        return rc;
    }
    return es_policy_new(spec, out, err);
}
