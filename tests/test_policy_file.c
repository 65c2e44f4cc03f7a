/*
 * test_policy_file.c - policies in JSON files (src/io/policy_json.c):
 * {"spec": "..."} or {"rules": [{"name": ..., key: value}]}, loaded into a
 * spec string, and "@file.json" wherever a spec is taken
 * (es_policy_new_any).  Files that could be read two ways, or that smuggle
 * spec syntax past the JSON, are refused with an error naming the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_io.h"
#include "testutil.h"

/* The last file written, for the checks that errors name it. */
static char path[64];

/* es_policy_spec_load of a file holding json. */
static int load_policy_file(const char *json, char *spec, size_t cap, es_error *err)
{
    char *file = es_test_tmp_file(json);
    snprintf(path, sizeof path, "%s", file);
    int rc = es_policy_spec_load(file, spec, cap, err);
    es_test_tmp_done(file);
    return rc;
}

static void test_policy_file_forms(void **state)
{
    char spec[1024];
    es_error err = {0};
    assert_int_equal(load_policy_file("{\"spec\": \"esc:window=4\", \"note\": \"tuned\"}", spec, sizeof spec, &err), ES_OK);
    assert_string_equal(spec, "esc:window=4");
    /* rules: numbers and words */
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"dynasor\", \"k\": 2, \"decide\": \"at-probe\"},"
                                      " {\"name\": \"esc\", \"remainder\": \"skip\", \"max\": \"all\"}]}",
                                      spec, sizeof spec, &err), ES_OK);
    es_policy *p = NULL;
    assert_int_equal(es_policy_new(spec, &p, &err), ES_OK);
    assert_string_equal(es_policy_spec(p), "dynasor:k=2,min_tokens=0,decide=at-probe+esc:window=5,remainder=skip,max=all");
    es_policy_free(p);
    /* a number keeps its value (0.9, not 0.90000000000000002) */
    assert_int_equal(load_policy_file("{\"rules\": [{\"name\": \"ac-beta\", \"threshold\": 0.9}]}", spec, sizeof spec, &err), ES_OK);
    assert_int_equal(es_policy_new(spec, &p, &err), ES_OK);
    double x;
    assert_int_equal(es_policy_get_param(p, "threshold", &x, NULL), ES_OK);
    assert_true(x == 0.9);
    es_policy_free(p);
}

static void test_policy_file_refused(void **state)
{
    static const struct {
        const char *json;
        int rc;
        const char *want;   /* in the message, or NULL */
    } cases[] = {
        /* both forms at once could disagree */
        {"{\"spec\": \"esc\", \"rules\": [{\"name\": \"ac-beta\"}]}", ES_EFORMAT, "both \"spec\" and \"rules\""},
        /* a key given twice, at any level */
        {"{\"rules\": [{\"name\": \"ac-beta\", \"threshold\": 0.9, \"threshold\": 0.1}]}", ES_EPARSE, "duplicate"},
        {"{\"spec\": \"esc\", \"spec\": \"ac-beta\"}", ES_EPARSE, "duplicate"},
        /* nothing may smuggle spec syntax past the JSON */
        {"{\"rules\": [{\"name\": \"ac-beta\", \"threshold\": \"0.9,min=30\"}]}", ES_EFORMAT, NULL},
        {"{\"rules\": [{\"name\": \"ac-beta+esc\"}]}", ES_EFORMAT, NULL},
        {"{\"rules\": [{\"name\": \"ac-beta\", \"min=9,max\": 3}]}", ES_EFORMAT, "parameter name"},
        {"{\"rules\": [3]}", ES_EFORMAT, "object"},
        {"{\"rules\": []}", ES_EFORMAT, "non-empty"},
        {"{\"spec\": 3}", ES_EFORMAT, "string"},
        {"[\"esc\"]", ES_EFORMAT, "JSON object"},
        {"{}", ES_EFORMAT, NULL},
        {"{\"spec\": \"esc\"", ES_EPARSE, NULL},
        {"", ES_EPARSE, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char spec[1024];
        es_error err = {0};
        int rc = load_policy_file(cases[i].json, spec, sizeof spec, &err);
        if (rc != cases[i].rc) fail_msg("'%s': rc %d, want %d (%s)", cases[i].json, rc, cases[i].rc, err.msg);
        if (cases[i].want && !strstr(err.msg, cases[i].want))
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].json, err.msg, cases[i].want);
        assert_string_equal(err.file, path); /* the error names the file */
    }
    /* a repeated key inside the spec string is the spec parser's error */
    char spec[1024];
    assert_int_equal(load_policy_file("{\"spec\": \"ac-beta:threshold=0.9,threshold=0.1\"}", spec, sizeof spec, NULL), ES_OK);
    es_policy *p = NULL;
    assert_int_equal(es_policy_new(spec, &p, NULL), ES_EPARSE);
    /* too small a buffer is an error, not a cut spec */
    char small[8];
    assert_int_equal(load_policy_file("{\"spec\": \"ac-beta:threshold=0.9\"}", small, sizeof small, NULL), ES_ERANGE);
}

/* "@file" wherever a spec is taken; anything else is a spec. */
static void test_policy_new_any(void **state)
{
    es_policy *p = NULL;
    es_error err = {0};
    char *file = es_test_tmp_file("{\"rules\": [{\"name\": \"esc\", \"window\": 3}]}");
    char at[80];
    snprintf(at, sizeof at, "@%s", file);
    assert_int_equal(es_policy_new_any(at, &p, &err), ES_OK);
    assert_string_equal(es_policy_spec(p), "esc:window=3,remainder=draw,max=all");
    es_policy_free(p);
    es_test_tmp_done(file);
    assert_int_equal(es_policy_new_any("esc:window=3", &p, &err), ES_OK);
    assert_string_equal(es_policy_spec(p), "esc:window=3,remainder=draw,max=all");
    es_policy_free(p);
    /* a file whose spec is wrong: the spec parser's error, naming the file */
    file = es_test_tmp_file("{\"rules\": [{\"name\": \"esc\", \"window\": 0}]}");
    snprintf(at, sizeof at, "@%s", file);
    memset(&err, 0, sizeof err);
    assert_int_equal(es_policy_new_any(at, &p, &err), ES_EPARSE);
    assert_non_null(strstr(err.msg, "window"));
    assert_string_equal(err.file, file);
    es_test_tmp_done(file);
    memset(&err, 0, sizeof err);
    p = (es_policy *)&p; /* a failure leaves NULL, as es_policy_new does */
    assert_int_equal(es_policy_new_any("@/nonexistent/policy.json", &p, &err), ES_EIO);
    assert_null(p);
    assert_string_equal(err.file, "/nonexistent/policy.json");
    assert_int_equal(es_policy_new_any("nope", &p, NULL), ES_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_file_forms),
        cmocka_unit_test(test_policy_file_refused),
        cmocka_unit_test(test_policy_new_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
