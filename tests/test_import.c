/* test_import.c - es_importer: field paths, regex extraction, --lower, gold
 * join, the token estimator, error messages, and end to end on the raw
 * ESC and Faithful-COT files against the shipped traces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "clirun.h"
#include "earlystop_io.h"
#include "testutil.h"

/* ----------------------------------------------------------------- helpers */


/* Options every test starts from: string samples under "s", gold "g". */
static es_import_opts base_opts(void)
{
    es_import_opts o;
    es_import_opts_init(&o);
    o.samples_path = "s";
    o.gold_path = "g";
    o.answer_regex = "answer is (\\w+)";
    return o;
}

static es_importer *new_ok(const es_import_opts *o)
{
    es_importer *im = NULL;
    es_error err;
    int rc = es_importer_new(o, &im, &err);
    if (rc) fprintf(stderr, "es_importer_new: %s\n", err.msg);
    assert_int_equal(rc, ES_OK);
    return im;
}

/* Convert one record text that must succeed. */
static void record_ok(es_importer *im, const char *json, es_item *item)
{
    es_error err;
    memset(&err, 0, sizeof err);
    int rc = es_importer_record(im, json, strlen(json), item, &err);
    if (rc) fprintf(stderr, "record: %s: %s\n", err.field, err.msg);
    assert_int_equal(rc, ES_OK);
}

/* Convert one record that must fail with `code`, naming `field`. */
static void record_fails(es_importer *im, const char *json, int code, const char *field)
{
    es_item item;
    es_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(es_importer_record(im, json, strlen(json), &item, &err), code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.field, field);
    assert_true(err.msg[0] != '\0');
}

static void new_fails(const es_import_opts *o, int code, const char *field)
{
    es_importer *im = (es_importer *)1;
    es_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(es_importer_new(o, &im, &err), code);
    assert_null(im);
    assert_string_equal(err.field, field);
}

/* ------------------------------------------------------------ field paths */

static void test_paths_nested(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.samples_path = "out.runs[1].texts";
    o.gold_path = "meta.gold";
    o.id_path = "meta.key\\.with\\.dots";
    o.question_path = "q[0]";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"meta\":{\"gold\":\"x\",\"key.with.dots\":\"k1\"},\"q\":[\"Q?\"],"
                  "\"out\":{\"runs\":[{\"texts\":[]},{\"texts\":[\"the answer is x\"]}]}}", &it);
    assert_string_equal(it.id, "k1");
    assert_string_equal(it.question, "Q?");
    assert_string_equal(it.gold[0], "x");
    assert_int_equal(it.n_samples, 1);
    assert_string_equal(it.samples[0].answer, "x");
    es_importer_free(im);
}

static void test_paths_bad(void **state)
{
    (void)state;
    const char *bad[] = {"a..b", "a.", "a[", "a[x]", "a[1", ".a", "", "a]b[", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        es_import_opts o = base_opts();
        o.id_path = bad[i];
        new_fails(&o, ES_EINVAL, "--id");
    }
    es_import_opts o = base_opts();
    o.samples_path = NULL;
    new_fails(&o, ES_EINVAL, "--samples");
    o = base_opts();
    o.gold_path = NULL;
    new_fails(&o, ES_EINVAL, "--gold");
    o = base_opts();
    o.answer_regex = NULL;
    new_fails(&o, ES_EINVAL, "--answer");
}

static void test_object_samples(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.samples_path = "s[].body";
    o.answer_regex = NULL;
    o.answer_path = "ans";
    o.tokens_path = "n";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":[\"7\",\"seven\"],\"s\":[{\"body\":\"b1\",\"ans\":7,\"n\":12},"
                  "{\"body\":\"b2\",\"ans\":null,\"n\":3}]}", &it);
    assert_int_equal(it.n_gold, 2);
    assert_string_equal(it.gold[1], "seven");
    assert_string_equal(it.samples[0].answer, "7");
    assert_string_equal(it.samples[0].text, "b1");
    assert_int_equal(it.samples[0].tokens, 12);
    assert_null(it.samples[1].answer);
    assert_int_equal(it.samples[1].tokens, 3);
    assert_string_equal(it.id, "item-0000");
    assert_non_null(strstr(es_importer_header(im), "from field n"));
    es_importer_free(im);
}

/* String samples take --tokens / --answer from parallel arrays. */
static void test_parallel_arrays(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.tokens_path = "toks";
    o.id_path = "id";
    o.id_prefix = "q-";
    o.id_digits = 3;
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"id\":7,\"g\":\"a\",\"s\":[\"the answer is a\",\"no\"],\"toks\":[5,6]}", &it);
    assert_string_equal(it.id, "q-007");
    assert_int_equal(it.samples[0].tokens, 5);
    assert_int_equal(it.samples[1].tokens, 6);
    record_fails(im, "{\"id\":8,\"g\":\"a\",\"s\":[\"x\",\"y\"],\"toks\":[5]}", ES_EFORMAT, "toks");
    record_fails(im, "{\"id\":8,\"g\":\"a\",\"s\":[\"x\"],\"toks\":[-1]}", ES_EFORMAT, "s[0].toks");
    record_fails(im, "{\"id\":8,\"g\":\"a\",\"s\":[\"x\"],\"toks\":[1.5]}", ES_EFORMAT, "s[0].toks");
    es_importer_free(im);
}

/* ------------------------------------------------------- regex extraction */

static void test_regex_last_match(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"b\",\"s\":[\"answer is a. no wait, answer is b.\",\"nothing\","
                  "\"answer is \\u00e9t\\u00e9\"]}", &it);
    assert_string_equal(it.samples[0].answer, "b");
    assert_null(it.samples[1].answer);
    assert_string_equal(it.samples[2].answer, "\xc3\xa9t\xc3\xa9");
    es_importer_free(im);

    o.answer_regex = "\\d+";   /* no group: the whole match */
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"3\",\"s\":[\"1 then 22 then 333\"]}", &it);
    assert_string_equal(it.samples[0].answer, "333");
    es_importer_free(im);

    /* empty matches must not loop; the last match of x* in "axxb" is the
     * empty one at the end (as in Python's findall), which counts as none */
    o.answer_regex = "x*";
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"3\",\"s\":[\"abc\",\"axxb\",\"axx\"]}", &it);
    assert_null(it.samples[0].answer);
    assert_null(it.samples[1].answer);
    assert_null(it.samples[2].answer);
    es_importer_free(im);
    o.answer_regex = "(x*)b";
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"3\",\"s\":[\"axxb b\"]}", &it);
    assert_null(it.samples[0].answer);   /* last match "b", group 1 empty */
    record_ok(im, "{\"g\":\"3\",\"s\":[\"b axxb\"]}", &it);
    assert_string_equal(it.samples[0].answer, "xx");
    es_importer_free(im);
}

static void test_regex_bad(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.answer_regex = "answer is (";
    new_fails(&o, ES_EINVAL, "--answer-regex");
    o = base_opts();
    o.gold_regex = "[a-";
    new_fails(&o, ES_EINVAL, "--gold-regex");
}

/* The answer regex also applies to an answer field. */
static void test_regex_on_field(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.samples_path = "s";
    o.answer_path = "a";
    o.answer_regex = "(\\d+)";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"5\",\"s\":[{\"a\":\"#### 5\",\"text\":\"t\"}]}", &it);
    assert_string_equal(it.samples[0].answer, "5");
    es_importer_free(im);
}

static void test_lower(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.answer_regex = "answer is (\\w+)";
    o.flags = ES_IMPORT_LOWER;
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"YaeA\",\"s\":[\"The answer is ABC\"]}", &it);
    assert_string_equal(it.samples[0].answer, "abc");
    assert_string_equal(it.gold[0], "yaea");
    es_importer_free(im);
    o.flags = 0;
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"YaeA\",\"s\":[\"The answer is ABC\"]}", &it);
    assert_string_equal(it.samples[0].answer, "ABC");
    assert_string_equal(it.gold[0], "YaeA");
    es_importer_free(im);
}

/* ---------------------------------------------------------------- gold */

static void test_gold_regex(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.gold_regex = "####\\s*(\\S+)";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"work... #### 05/01/2021\",\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "05/01/2021");
    record_fails(im, "{\"g\":\"no marks\",\"s\":[\"x\"]}", ES_EFORMAT, "g");
    record_fails(im, "{\"s\":[\"x\"]}", ES_EFORMAT, "g");
    record_fails(im, "{\"g\":{},\"s\":[\"x\"]}", ES_EFORMAT, "g");
    record_fails(im, "{\"g\":[],\"s\":[\"x\"]}", ES_EFORMAT, "g");
    es_importer_free(im);
}

static void test_gold_join(void **state)
{
    (void)state;
    char *gold = es_test_tmp_file("{\"id\": 0, \"answer\": \"#### 05/01/2021\"}\n\n"
                          "{\"id\": \"b\", \"answer\": \"#### 1/2/2000\"}\n");
    es_import_opts o = base_opts();
    o.gold_file = gold;
    o.gold_path = "answer";
    o.gold_regex = "####\\s*(\\S+)";
    o.id_path = "id";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"id\":0,\"answer\":\"model vote\",\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "05/01/2021");
    assert_string_equal(it.id, "0");
    record_ok(im, "{\"id\":\"b\",\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "1/2/2000");
    record_fails(im, "{\"id\":9,\"s\":[\"x\"]}", ES_EFORMAT, "id");
    record_fails(im, "{\"s\":[\"x\"]}", ES_EFORMAT, "id");
    es_importer_free(im);

    /* a separate join key */
    o.id_path = NULL;
    o.join_path = "meta.k";
    im = new_ok(&o);
    record_ok(im, "{\"meta\":{\"k\":\"b\"},\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "1/2/2000");
    assert_string_equal(it.id, "item-0000");
    es_importer_free(im);
    es_test_tmp_done(gold);
}

static void test_gold_file_errors(void **state)
{
    (void)state;
    char *gold = es_test_tmp_file("{\"id\": 0, \"answer\": \"a\"}\n{\"id\": 0, \"answer\": \"b\"}\n");
    es_import_opts o = base_opts();
    o.gold_file = gold;
    o.gold_path = "answer";
    es_importer *im = NULL;
    es_error err;
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EFORMAT);
    assert_string_equal(err.file, gold);
    assert_int_equal(err.line, 2);
    es_test_tmp_done(gold);

    gold = es_test_tmp_file("{\"id\": 0, \"answer\": \"a\"}\n{\"id\": 1, \"answer\": \n");
    o.gold_file = gold;
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EPARSE);
    assert_int_equal(err.line, 2);
    es_test_tmp_done(gold);

    o.gold_file = "/nonexistent/gold.jsonl";
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EIO);
    assert_string_equal(err.file, "/nonexistent/gold.jsonl");

    gold = es_test_tmp_file(" [ {\"id\": 3, \"answer\": \"c\"} ]");   /* array form */
    o.gold_file = gold;
    im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"id\":3,\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "c");
    es_importer_free(im);
    es_test_tmp_done(gold);
}

/* -------------------------------------------------------------- estimator */

static uint32_t est(const char *s) { return es_estimate_tokens(s, strlen(s)); }

static void test_estimator(void **state)
{
    (void)state;
    assert_int_equal(est(""), 0);
    assert_int_equal(est("hello"), 1);
    assert_int_equal(est("hello world"), 2);           /* " world" is one piece */
    assert_int_equal(est("Hello, world."), 4);         /* Hello , world . */
    assert_int_equal(est("12345"), 2);                 /* 123 45 */
    assert_int_equal(est("a\n\nb"), 3);
    assert_int_equal(est("internationalization"), 3);  /* 20 letters / 8 */
    assert_int_equal(est("Konstantinopel"), 3);        /* capitalised: 14 / 5 */
    assert_int_equal(est("   "), 1);
    assert_int_equal(est("a \t b"), 3);
    /* bytes are never read past n */
    assert_int_equal(es_estimate_tokens("hello world", 5), 1);
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"a\",\"s\":[\"hello world\"]}", &it);
    assert_int_equal(it.samples[0].tokens, 2);
    assert_non_null(strstr(es_importer_header(im), "estimated: "));
    es_importer_free(im);
}

/* ------------------------------------------------------ bad input, errors */

static void test_bad_records(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    record_fails(im, "{\"g\":\"a\",\"s\":", ES_EPARSE, "");
    record_fails(im, "[1,2]", ES_EFORMAT, "");
    record_fails(im, "{\"g\":\"a\"}", ES_EFORMAT, "s");
    record_fails(im, "{\"g\":\"a\",\"s\":\"x\"}", ES_EFORMAT, "s");
    record_fails(im, "{\"g\":\"a\",\"s\":[]}", ES_EFORMAT, "s");
    record_fails(im, "{\"g\":\"a\",\"s\":[\"x\",3]}", ES_EFORMAT, "s[1]");
    record_fails(im, "{\"g\":\"a\",\"s\":[{\"text\":5}]}", ES_EFORMAT, "s[0].text");
    record_fails(im, "{\"g\":\"a\",\"s\":[{\"other\":\"x\"}]}", ES_EFORMAT, "s[0].text");
    record_fails(im, "{\"g\":\"a\",\"g\":\"b\",\"s\":[\"x\"]}", ES_EPARSE, "");
    record_fails(im, "{\"g\":\"a\\u0000b\",\"s\":[\"x\"]}", ES_EPARSE, "");
    es_item it;
    record_ok(im, "{\"g\":\"a\",\"s\":[\"x\"]}", &it);   /* still usable */
    es_importer_free(im);

    o.id_path = "id";
    im = new_ok(&o);
    record_fails(im, "{\"id\":[1],\"g\":\"a\",\"s\":[\"x\"]}", ES_EFORMAT, "id");
    record_fails(im, "{\"id\":\"\",\"g\":\"a\",\"s\":[\"x\"]}", ES_EFORMAT, "id");
    es_importer_free(im);
}

/* Errors from a file name the file, the line and the field; the CLI prints
 * es_error_format's "file:line: field: message". */
static void test_file_errors(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("{\"g\":\"a\",\"s\":[\"answer is a\"]}\n\n"
                        "{\"g\":\"a\",\"s\":[\"x\", 4]}\n"
                        "not json\n");
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.samples[0].answer, "a");
    assert_int_equal(es_importer_next(im, &it, &err), ES_EFORMAT);
    char buf[1024], want[512];
    es_error_format(&err, buf, sizeof buf);
    snprintf(want, sizeof want, "%s:3: s[1]: ", in);
    assert_memory_equal(buf, want, strlen(want));
    es_importer_free(im);

    o.flags = ES_IMPORT_SKIP_BAD;
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_EOF);
    assert_int_equal(es_importer_skipped(im), 2);
    assert_int_equal(es_importer_last_skip(im)->line, 4);
    assert_int_equal(es_importer_last_skip(im)->code, ES_EPARSE);
    es_importer_free(im);
    es_test_tmp_done(in);

    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, "/nonexistent/x.jsonl", &err), ES_EIO);
    assert_int_equal(es_importer_next(im, &it, &err), ES_EINVAL);
    es_importer_free(im);
}

/* A top-level JSON array works like JSON Lines; errors name the element. */
static void test_array_input(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("\n [ {\"g\":\"a\",\"s\":[\"answer is a\"]},\n"
                        "  {\"g\":\"b\",\"s\":[\"answer is b\"]}, {\"g\":\"c\"} ]\n");
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.id, "item-0000");
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.id, "item-0001");
    assert_string_equal(it.samples[0].answer, "b");
    assert_int_equal(es_importer_next(im, &it, &err), ES_EFORMAT);
    assert_string_equal(err.field, "[2].s");
    es_importer_free(im);
    es_test_tmp_done(in);

    in = es_test_tmp_file("[{\"g\":\"a\",\"s\":[\"x\"]},");
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_EPARSE);
    assert_string_equal(err.file, in);
    es_importer_free(im);
    es_test_tmp_done(in);
}

/* Default task: the input file's name without directory and extension. */
static void test_task_default(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("{\"g\":\"a\",\"s\":[\"x\"]}\n");
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.task, strrchr(in, '/') + 1);
    es_importer_free(im);
    o.task = "date";
    o.answer_type = ES_ANSWER_DATE;
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.task, "date");
    assert_int_equal(it.answer_type, ES_ANSWER_DATE);
    es_importer_free(im);
    es_test_tmp_done(in);
}

/* ------------------------------------------------- parallel arrays (issue 7) */

/* Message of a failing record, formatted as the CLI prints it. */
static void record_fails_msg(es_importer *im, const char *json, int code, const char *field, char *msg,
                             size_t cap)
{
    es_item item;
    es_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(es_importer_record(im, json, strlen(json), &item, &err), code);
    assert_string_equal(err.field, field);
    es_error_format(&err, msg, cap);
}

/* A parallel --answer / --tokens array of another length than the samples
 * used to be padded with nulls (or silently cut): now an error naming the
 * record and both lengths. */
static void test_parallel_length_mismatch(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.answer_regex = NULL;
    o.answer_path = "ans";
    o.id_path = "id";
    es_importer *im = new_ok(&o);
    es_item it;
    char msg[1024];
    record_ok(im, "{\"id\":\"q1\",\"g\":\"a\",\"s\":[\"x\",\"y\"],\"ans\":[\"a\",null]}", &it);
    assert_string_equal(it.samples[0].answer, "a");
    assert_null(it.samples[1].answer);
    /* shorter */
    record_fails_msg(im, "{\"id\":\"q2\",\"g\":\"a\",\"s\":[\"x\",\"y\",\"z\"],\"ans\":[\"a\",\"b\"]}", ES_EFORMAT,
                     "ans", msg, sizeof msg);
    assert_non_null(strstr(msg, "record 'q2'"));
    assert_non_null(strstr(msg, "2 elements"));
    assert_non_null(strstr(msg, "3 samples"));
    /* longer */
    record_fails_msg(im, "{\"id\":\"q3\",\"g\":\"a\",\"s\":[\"x\"],\"ans\":[\"a\",\"b\"]}", ES_EFORMAT, "ans", msg,
                     sizeof msg);
    assert_non_null(strstr(msg, "record 'q3'"));
    assert_non_null(strstr(msg, "2 elements"));
    assert_non_null(strstr(msg, "1 sample "));
    /* missing, or not an array */
    record_fails_msg(im, "{\"id\":\"q4\",\"g\":\"a\",\"s\":[\"x\"]}", ES_EFORMAT, "ans", msg, sizeof msg);
    assert_non_null(strstr(msg, "record 'q4'"));
    record_fails(im, "{\"id\":\"q5\",\"g\":\"a\",\"s\":[\"x\"],\"ans\":\"a\"}", ES_EFORMAT, "ans");
    es_importer_free(im);

    /* tokens alike, and object samples are not parallel arrays */
    o = base_opts();
    o.tokens_path = "n";
    im = new_ok(&o);
    record_fails_msg(im, "{\"g\":\"a\",\"s\":[\"x\",\"y\"],\"n\":[1,2,3]}", ES_EFORMAT, "n", msg, sizeof msg);
    assert_non_null(strstr(msg, "3 elements"));
    assert_non_null(strstr(msg, "2 samples"));
    assert_non_null(strstr(msg, "record 'item-0000'"));
    record_ok(im, "{\"g\":\"a\",\"s\":[{\"text\":\"answer is a\",\"n\":4}]}", &it);
    assert_int_equal(it.samples[0].tokens, 4);
    es_importer_free(im);
}

/* From a file: the line of the record; --skip-bad skips it and counts it. */
static void test_parallel_mismatch_file(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("{\"id\":1,\"g\":\"a\",\"s\":[\"x\",\"y\"],\"ans\":[\"a\",\"b\"]}\n"
                        "{\"id\":2,\"g\":\"a\",\"s\":[\"x\",\"y\",\"z\"],\"ans\":[\"a\",\"b\"]}\n"
                        "{\"id\":3,\"g\":\"a\",\"s\":[\"x\"],\"ans\":[\"a\"]}\n");
    es_import_opts o = base_opts();
    o.answer_regex = NULL;
    o.answer_path = "ans";
    o.id_path = "id";
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_EFORMAT);
    assert_int_equal(err.line, 2);
    assert_string_equal(err.file, in);
    assert_non_null(strstr(err.msg, "record '2'"));
    es_importer_free(im);

    o.flags = ES_IMPORT_SKIP_BAD;
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.id, "1");
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.id, "3");
    assert_int_equal(es_importer_next(im, &it, &err), ES_EOF);
    assert_int_equal(es_importer_skipped(im), 1);
    assert_int_equal(es_importer_last_skip(im)->line, 2);
    es_importer_free(im);
    es_test_tmp_done(in);
}

/* ---------------------------------------------------------- gold scores */

static void test_gold_scores(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.gold_path = NULL;
    o.gold_scores_path = "target_scores";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"target_scores\":{\"05/01/2021\":1,\"05/02/2021\":0},\"s\":[\"x\"]}", &it);
    assert_int_equal(it.n_gold, 1);
    assert_string_equal(it.gold[0], "05/01/2021");
    /* a tie for the top: every tied key, in the object's order */
    record_ok(im, "{\"target_scores\":{\"c\":0.5,\"b\":1,\"a\":1.0},\"s\":[\"x\"]}", &it);
    assert_int_equal(it.n_gold, 2);
    assert_string_equal(it.gold[0], "b");
    assert_string_equal(it.gold[1], "a");
    record_fails(im, "{\"target_scores\":{\"a\":0,\"b\":0},\"s\":[\"x\"]}", ES_EFORMAT, "target_scores");
    record_fails(im, "{\"target_scores\":{\"a\":\"1\"},\"s\":[\"x\"]}", ES_EFORMAT, "target_scores");
    record_fails(im, "{\"target_scores\":{},\"s\":[\"x\"]}", ES_EFORMAT, "target_scores");
    record_fails(im, "{\"target_scores\":\"a\",\"s\":[\"x\"]}", ES_EFORMAT, "target_scores");
    record_fails(im, "{\"s\":[\"x\"]}", ES_EFORMAT, "target_scores");
    assert_non_null(strstr(es_importer_header(im), "top-scoring"));
    es_importer_free(im);

    /* --lower applies to the keys too */
    o.flags = ES_IMPORT_LOWER;
    im = new_ok(&o);
    record_ok(im, "{\"target_scores\":{\"Yes\":1,\"No\":0},\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "yes");
    es_importer_free(im);

    /* one of --gold and --gold-scores */
    o = base_opts();
    o.gold_scores_path = "t";
    new_fails(&o, ES_EINVAL, "--gold-scores");
    o.gold_path = NULL;
    o.gold_scores_path = NULL;
    new_fails(&o, ES_EINVAL, "--gold");
}

/* The gold file may be a trace file: its header line is skipped. */
static void test_gold_file_trace(void **state)
{
    (void)state;
    char *gold = es_test_tmp_file("{\"format\":\"earlystop-traces\",\"version\":1,\"model\":\"m\"}\n"
                          "{\"id\":\"q-1\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"yes\","
                          "\"samples\":[{\"answer\":\"yes\",\"tokens\":3}]}\n"
                          "{\"id\":\"q-2\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":[\"a\",\"b\"],"
                          "\"samples\":[{\"answer\":\"b\",\"tokens\":3}]}\n");
    es_import_opts o = base_opts();
    o.gold_file = gold;
    o.gold_path = "gold";
    o.id_path = "id";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"id\":\"q-2\",\"s\":[\"answer is b\"]}", &it);
    assert_int_equal(it.n_gold, 2);
    assert_string_equal(it.gold[1], "b");
    record_ok(im, "{\"id\":\"q-1\",\"s\":[\"answer is yes\"]}", &it);
    assert_string_equal(it.gold[0], "yes");
    es_importer_free(im);
    es_test_tmp_done(gold);

    /* only the first line may be a header: a later one is a record without gold */
    gold = es_test_tmp_file("{\"id\":\"q-1\",\"gold\":\"yes\"}\n{\"format\":\"earlystop-traces\",\"version\":1}\n");
    o.gold_file = gold;
    es_error err;
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EFORMAT);
    assert_int_equal(err.line, 2);
    es_test_tmp_done(gold);
}

/* ------------------------------------------------ max samples, first match */

static void test_max_samples_and_match(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.max_samples = 2;
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"a\",\"s\":[\"answer is a\",\"answer is b\",\"answer is c\"]}", &it);
    assert_int_equal(it.n_samples, 2);
    assert_string_equal(it.samples[1].answer, "b");
    record_ok(im, "{\"g\":\"a\",\"s\":[\"answer is a\"]}", &it);
    assert_int_equal(it.n_samples, 1);
    assert_non_null(strstr(es_importer_header(im), "first 2 samples"));
    es_importer_free(im);

    /* the parallel check sees the whole array, before --max-samples */
    o = base_opts();
    o.max_samples = 1;
    o.tokens_path = "n";
    im = new_ok(&o);
    record_fails(im, "{\"g\":\"a\",\"s\":[\"x\",\"y\"],\"n\":[1]}", ES_EFORMAT, "n");
    record_ok(im, "{\"g\":\"a\",\"s\":[\"x\",\"y\"],\"n\":[1,2]}", &it);
    assert_int_equal(it.n_samples, 1);
    es_importer_free(im);

    o = base_opts();
    o.flags = ES_IMPORT_FIRST_MATCH;
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"a\",\"s\":[\"answer is a. no wait, answer is b.\",\"nothing\"]}", &it);
    assert_string_equal(it.samples[0].answer, "a");
    assert_null(it.samples[1].answer);
    assert_non_null(strstr(es_importer_header(im), "first match of"));
    es_importer_free(im);
    o.flags = 0;
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"a\",\"s\":[\"answer is a. no wait, answer is b.\"]}", &it);
    assert_string_equal(it.samples[0].answer, "b");
    es_importer_free(im);

    /* --match without anything to match */
    o = base_opts();
    o.answer_regex = NULL;
    o.answer_path = "a";
    o.flags = ES_IMPORT_FIRST_MATCH;
    new_fails(&o, ES_EINVAL, "--match");
}

/* --------------------------------------------------------------- boxed */

static void test_boxed(void **state)
{
    (void)state;
    es_import_opts o = base_opts();
    o.answer_regex = NULL;
    o.answer_extract = "boxed";
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"a\",\"s\":["
                  "\"so \\\\boxed{\\\\frac{a}{b}} is it\","            /* nested braces */
                  "\"\\\\boxed{1} then \\\\boxed{ 2+\\\\sqrt{3} }\","   /* last box, trimmed */
                  "\"\\\\fbox{(3,4]}\","                                /* \\fbox too */
                  "\"\\\\boxed{\\\\{1,2\\\\}}\","                       /* escaped braces */
                  "\"\\\\boxed{1} and \\\\boxed{2\","                  /* last box cut off: null */
                  "\"\\\\boxed{}\","                                   /* empty: null */
                  "\"\\\\boxedx{1} \\\\\\\\boxed\","                   /* other command; \\\\ escape */
                  "\"no box at all\","
                  "\"\\\\boxed {7}\""                                  /* space before the brace */
                  "]}", &it);
    assert_string_equal(it.samples[0].answer, "\\frac{a}{b}");
    assert_string_equal(it.samples[1].answer, "2+\\sqrt{3}");
    assert_string_equal(it.samples[2].answer, "(3,4]");
    assert_string_equal(it.samples[3].answer, "\\{1,2\\}");
    assert_null(it.samples[4].answer);
    assert_null(it.samples[5].answer);
    assert_null(it.samples[6].answer);
    assert_null(it.samples[7].answer);
    assert_string_equal(it.samples[8].answer, "7");
    assert_non_null(strstr(es_importer_header(im), "\"last \\\\boxed{...} or \\\\fbox{...}"));
    es_importer_free(im);

    o.flags = ES_IMPORT_FIRST_MATCH;
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"a\",\"s\":[\"\\\\boxed{1} then \\\\boxed{2}\",\"\\\\boxed{x\"]}", &it);
    assert_string_equal(it.samples[0].answer, "1");
    assert_null(it.samples[1].answer);
    es_importer_free(im);

    /* on an answer field */
    o.flags = 0;
    o.answer_path = "a";
    o.samples_path = "s[].t";
    im = new_ok(&o);
    record_ok(im, "{\"g\":\"a\",\"s\":[{\"t\":\"x\",\"a\":\"$\\\\boxed{5}$\"},{\"t\":\"y\",\"a\":null}]}", &it);
    assert_string_equal(it.samples[0].answer, "5");
    assert_null(it.samples[1].answer);
    es_importer_free(im);

    o = base_opts();
    o.answer_extract = "boxed";
    new_fails(&o, ES_EINVAL, "--answer-extract");   /* and a regex: one or the other */
    o.answer_regex = NULL;
    o.answer_extract = "box";
    new_fails(&o, ES_EINVAL, "--answer-extract");
    /* option strings that end up in JSON must be UTF-8 */
    o = base_opts();
    o.id_prefix = "\xff-";
    new_fails(&o, ES_EINVAL, "--id-prefix");
}

/* --answer-type math: needs ES_ANSWER_MATH from answer.c (branch i7-answers);
 * until it is merged es_answer_type_parse("math") fails and so does this. */
static void test_answer_type_math(void **state)
{
    (void)state;
    es_answer_type t;
    assert_int_equal(es_answer_type_parse("math", &t), ES_OK);
    es_import_opts o = base_opts();
    o.answer_regex = NULL;
    o.answer_extract = "boxed";
    o.answer_type = t;
    es_importer *im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"g\":\"\\\\frac{9}{100}\",\"s\":[\"so \\\\boxed{0.09}\",\"\\\\boxed{-0.09}\"]}", &it);
    assert_int_equal(it.answer_type, t);
    assert_string_equal(es_answer_type_name(it.answer_type), "math");
    assert_true(es_answer_equal(t, it.samples[0].answer, it.gold[0]));
    assert_false(es_answer_equal(t, it.samples[1].answer, it.gold[0]));
    es_importer_free(im);
}

/* -------------------------------------------------------- duplicate ids */

static void test_duplicate_ids(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("{\"id\":1,\"g\":\"a\",\"s\":[\"x\"]}\n"
                        "{\"id\":2,\"g\":\"a\",\"s\":[\"x\"]}\n"
                        "\n"
                        "{\"id\":\"1\",\"g\":\"a\",\"s\":[\"x\"]}\n");
    es_import_opts o = base_opts();
    o.id_path = "id";
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_EFORMAT);
    assert_int_equal(err.line, 4);
    assert_string_equal(err.field, "id");
    assert_non_null(strstr(err.msg, "duplicate id '1'"));
    assert_non_null(strstr(err.msg, "line 1"));
    es_importer_free(im);

    o.flags = ES_IMPORT_SKIP_BAD;
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    size_t n = 0;
    while (es_importer_next(im, &it, &err) == ES_OK) n++;
    assert_int_equal(n, 2);
    assert_int_equal(es_importer_skipped(im), 1);
    /* opening again starts a fresh set of ids */
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    es_importer_free(im);
    es_test_tmp_done(in);

    /* ids that agree after zero-padding; an array input names the element */
    in = es_test_tmp_file("[{\"id\":7,\"g\":\"a\",\"s\":[\"x\"]},{\"id\":\"007\",\"g\":\"a\",\"s\":[\"x\"]}]");
    o.flags = 0;
    o.id_digits = 3;
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_string_equal(it.id, "007");
    assert_int_equal(es_importer_next(im, &it, &err), ES_EFORMAT);
    assert_string_equal(err.field, "[1].id");
    assert_non_null(strstr(err.msg, "element [0]"));
    es_importer_free(im);
    es_test_tmp_done(in);
}

/* ------------------------------------------------------ large subjects */

/* Every match of a long subject is visited in turn (the last one found is
 * the 100000th, the first the 1st), now that UTF-8 is checked once per
 * subject, not once per match: 100k matches in 1.5 MB, which took minutes
 * when each match re-scanned the rest of the subject. */
static void test_regex_large_subject(void **state)
{
    (void)state;
    enum { N = 100000 };
    size_t cap = (size_t)N * 24 + 64, len = 0;
    char *rec = malloc(cap);
    assert_non_null(rec);
    len += (size_t)snprintf(rec + len, cap - len, "{\"g\":\"a\",\"s\":[\"\\u00e9 ");
    for (int i = 1; i <= N; i++) len += (size_t)snprintf(rec + len, cap - len, "answer is %d. ", i);
    len += (size_t)snprintf(rec + len, cap - len, "\"]}");
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_item it;
    es_error err;
    assert_int_equal(es_importer_record(im, rec, len, &it, &err), ES_OK);
    assert_string_equal(it.samples[0].answer, "100000");
    es_importer_free(im);
    o.flags = ES_IMPORT_FIRST_MATCH;
    im = new_ok(&o);
    assert_int_equal(es_importer_record(im, rec, len, &it, &err), ES_OK);
    assert_string_equal(it.samples[0].answer, "1");
    es_importer_free(im);
    /* anchored at the end of the long subject */
    o = base_opts();
    o.answer_regex = "(\\d+)\\D*$";
    im = new_ok(&o);
    assert_int_equal(es_importer_record(im, rec, len, &it, &err), ES_OK);
    assert_string_equal(it.samples[0].answer, "100000");
    es_importer_free(im);
    free(rec);
}

/* Invalid UTF-8 never reaches the regex: the JSON parser refuses it, with
 * the record's line. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("{\"g\":\"a\",\"s\":[\"answer is a\"]}\n{\"g\":\"a\",\"s\":[\"answer is \xff\"]}\n");
    es_import_opts o = base_opts();
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_OK);
    assert_int_equal(es_importer_next(im, &it, &err), ES_EPARSE);
    assert_int_equal(err.line, 2);
    es_importer_free(im);
    es_test_tmp_done(in);
}

/* ----------------------------------------------------- duplicate texts */

/* The importer counts copies among the texts it hands out, also with
 * --no-text; a file whose records hold their samples twice is suspicious. */
static void test_import_dup_stats(void **state)
{
    (void)state;
    char *in = es_test_tmp_file("{\"g\":\"a\",\"s\":[\"answer is a\",\"answer is b\",\"answer is a\",\"answer is b\"]}\n"
                        "{\"g\":\"a\",\"s\":[\"answer is c\",\"answer is d\",\"answer is c\",\"answer is d\"]}\n"
                        "{\"g\":\"a\",\"s\":[\"answer is e\",\"answer is e\",\"answer is f\",\"answer is f\"]}\n");
    es_import_opts o = base_opts();
    o.flags = ES_IMPORT_NO_TEXT;
    es_importer *im = new_ok(&o);
    es_error err;
    es_item it;
    assert_int_equal(es_importer_open(im, in, &err), ES_OK);
    while (es_importer_next(im, &it, &err) == ES_OK) assert_null(it.samples[0].text);
    es_dup_stats d;
    es_importer_dup_stats(im, &d);
    assert_int_equal(d.items, 3);
    assert_int_equal(d.text_samples, 12);
    assert_int_equal(d.dup_samples, 6);
    assert_int_equal(d.pattern_checked, 3);
    assert_int_equal(d.pattern_items, 3);
    assert_true(es_dup_suspicious(&d));
    es_importer_free(im);
    es_test_tmp_done(in);
}

/* ------------------------------------------------------------ end to end */

static const char *data_dir(void)
{
    const char *d = getenv("ES_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Import `raw` and compare answers and golds, item by item, with the
 * shipped trace file; returns 0 when the files are absent (skip). */
static int compare_with_traces(const es_import_opts *o, const char *raw, const char *traces,
                               size_t want_items, size_t want_samples)
{
    if (access(raw, R_OK) || access(traces, R_OK)) {
        fprintf(stderr, "SKIP: %s or %s not found (set ES_SHARED_DATA)\n", raw, traces);
        return 0;
    }
    es_importer *im = new_ok(o);
    es_trace_reader *r = NULL;
    es_error err;
    assert_int_equal(es_importer_open(im, raw, &err), ES_OK);
    assert_int_equal(es_trace_reader_open(traces, 0, &r, &err), ES_OK);
    size_t items = 0, answers_equal = 0, samples = 0, golds_equal = 0;
    double est = 0, real = 0;
    es_item a, b;
    int ra, rb;
    while ((ra = es_importer_next(im, &a, &err)) == ES_OK) {
        rb = es_trace_reader_next(r, &b, &err);
        assert_int_equal(rb, ES_OK);
        items++;
        assert_string_equal(a.id, b.id);
        assert_int_equal(a.n_samples, b.n_samples);
        golds_equal += a.n_gold == b.n_gold && str_eq(a.gold[0], b.gold[0]);
        for (size_t i = 0; i < a.n_samples; i++) {
            samples++;
            answers_equal += str_eq(a.samples[i].answer, b.samples[i].answer);
            est += a.samples[i].tokens;
            real += b.samples[i].tokens;
        }
    }
    assert_int_equal(ra, ES_EOF);
    assert_int_equal(es_trace_reader_next(r, &b, &err), ES_EOF);
    fprintf(stderr, "%s: %zu/%zu answers, %zu/%zu golds equal; estimated/real tokens %.3f\n",
            raw, answers_equal, samples, golds_equal, items, est / real);
    assert_int_equal(items, want_items);
    assert_int_equal(samples, want_samples);
    assert_int_equal(answers_equal, want_samples);
    assert_int_equal(golds_equal, want_items);
    assert_true(est / real > 0.85 && est / real < 1.15);
    es_trace_reader_free(r);
    es_importer_free(im);
    return 1;
}

static void test_e2e_esc(void **state)
{
    (void)state;
    char raw[1024], tr[1024];
    snprintf(raw, sizeof raw, "%s/raw/ESC/last_letters_gpt35_T0.7.jsonl", data_dir());
    snprintf(tr, sizeof tr, "%s/traces/esc_last_letters_gpt35_k40.jsonl", data_dir());
    es_import_opts o;
    es_import_opts_init(&o);
    o.samples_path = "generated_answer";
    o.gold_path = "answer";
    o.question_path = "question";
    o.answer_regex = "[Tt]he answer is\\s*\"?'?([A-Za-z]+)";
    o.flags = ES_IMPORT_LOWER;
    o.task = "last_letters";
    o.id_prefix = "ll-";
    o.id_digits = 3;
    if (!compare_with_traces(&o, raw, tr, 500, 20000)) skip();
}

static void test_e2e_faithful(void **state)
{
    (void)state;
    char raw[1024], tr[1024], gold[1024];
    snprintf(raw, sizeof raw, "%s/raw/Faithful-COT/date_code002_LtM_n40_predictions.jsonl", data_dir());
    snprintf(gold, sizeof gold, "%s/raw/Faithful-COT/date_test_gold.jsonl", data_dir());
    snprintf(tr, sizeof tr, "%s/traces/faithful_date_codex002_k40.jsonl", data_dir());
    if (access(gold, R_OK)) {
        fprintf(stderr, "SKIP: %s not found (set ES_SHARED_DATA)\n", gold);
        skip();
    }
    es_import_opts o;
    es_import_opts_init(&o);
    o.id_path = "id";
    o.id_prefix = "fd-";
    o.id_digits = 3;
    o.samples_path = "completions";
    o.answer_regex = "answer is\\s*(\\d\\d?/\\d\\d?/\\d{4})";
    o.gold_file = gold;
    o.gold_path = "answer";
    o.gold_regex = "####\\s*(\\S+)";
    o.answer_type = ES_ANSWER_DATE;
    o.task = "date";
    if (!compare_with_traces(&o, raw, tr, 359, 14360)) skip();
}

/* ----------------------------------------------------------------- CLI */

/* Write text to tmpdir/name; returns the path (static buffer per call site). */
static void put_file(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Bad records and options exit 2 with file:line: field: message. */
static void test_cli_bad_records(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char in[512], args[2048], *out, *err;
    put_file("par.jsonl",
             "{\"id\":1,\"g\":\"a\",\"s\":[\"x\",\"y\"],\"ans\":[\"a\",\"b\"]}\n"
             "{\"id\":2,\"g\":\"a\",\"s\":[\"x\",\"y\",\"z\"],\"ans\":[\"a\",\"b\"]}\n"
             "{\"id\":\"1\",\"g\":\"a\",\"s\":[\"x\"],\"ans\":[\"a\"]}\n",
             in, sizeof in);
    snprintf(args, sizeof args, "import '%s' --id id --samples s --gold g --answer ans", in);
    assert_int_equal(run(args, &out, &err), 2);
    char want[1024];
    snprintf(want, sizeof want, "%s:2: ans: record '2': --answer array ans has 2 elements but s has 3 samples", in);
    assert_non_null(strstr(err, want));
    free(out);
    free(err);
    snprintf(args, sizeof args, "import '%s' --id id --samples s --gold g --answer ans --skip-bad", in);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(err, "1 items, 2 samples, 2 records skipped"));
    assert_non_null(strstr(err, ":3: id: duplicate id '1': the record at line 1 has it too"));
    free(out);
    free(err);

    const char *bad[] = {"--match middle", "--max-samples 0", "--max-samples x", "--answer-extract boxy",
                         "--answer-extract boxed --answer-regex x", "--gold-scores t",
                         "--answer-type maths", "--id-prefix \"$(printf '\\377')\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "import '%s' --samples s --gold g --answer ans %s", in, bad[i]);
        assert_int_equal(run(args, &out, &err), 2);
        assert_non_null(strstr(err, "earlystop"));
        assert_string_equal(out, "");
        free(out);
        free(err);
    }
}

/* Gold scores and the boxed extractor through the CLI. */
static void test_cli_scores_boxed(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char in[512], args[2048], *out, *err;
    put_file("bb.jsonl",
             "{\"input\":\"q\",\"target_scores\":{\"05/01/2021\":1,\"05/02/2021\":0},"
             "\"out\":[\"so \\\\boxed{05/01/2021}\",\"\\\\boxed{1} \\\\boxed{05/02/2021}\",\"none\"]}\n",
             in, sizeof in);
    snprintf(args, sizeof args,
             "import '%s' --samples out --gold-scores target_scores --answer-extract boxed "
             "--answer-type date --max-samples 2 --no-text", in);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "\"gold\": \"05/01/2021\""));
    assert_non_null(strstr(out, "[{\"answer\": \"05/01/2021\", \"tokens\": "));
    assert_non_null(strstr(out, "{\"answer\": \"05/02/2021\", \"tokens\": "));
    assert_null(strstr(out, "null"));   /* the third sample is cut by --max-samples */
    free(out);
    free(err);
    snprintf(args, sizeof args, "import '%s' --samples out --gold-scores target_scores --answer-extract boxed "
             "--match first --no-text", in);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "{\"answer\": \"1\", \"tokens\": "));
    free(out);
    free(err);
}

/* A raw file whose records hold their samples twice gets the copy warning;
 * the honest raw files of the shared data do not. */
static void test_cli_copy_warning(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    char raw[1024], copied[512], args[4096], *out, *err;
    snprintf(raw, sizeof raw, "%s/raw/ESC/last_letters_gpt35_T0.7.jsonl", data_dir());
    if (access(raw, R_OK)) {
        fprintf(stderr, "SKIP: %s not found (set ES_SHARED_DATA)\n", raw);
        skip();
    }
    const char *opts = "--samples generated_answer --gold answer --answer-regex "
                       "'[Tt]he answer is\\s*\"?([A-Za-z]+)' --lower --no-text";
    snprintf(args, sizeof args, "import '%s' %s", raw, opts);
    assert_int_equal(run(args, &out, &err), 0);
    assert_null(strstr(err, "warning"));
    free(out);
    free(err);

    /* the first 20 samples of each record, then the same 20 again */
    FILE *in = fopen(raw, "r");
    assert_non_null(in);
    snprintf(copied, sizeof copied, "%s/copied.jsonl", tmpdir);
    FILE *fo = fopen(copied, "w");
    assert_non_null(fo);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        json_error_t je;
        json_t *rec = json_loads(line, 0, &je);
        assert_non_null(rec);
        json_t *s = json_object_get(rec, "generated_answer"), *c = json_array();
        for (int r = 0; r < 2; r++)
            for (size_t i = 0; i < 20; i++) json_array_append(c, json_array_get(s, i));
        json_object_set_new(rec, "generated_answer", c);
        json_dumpf(rec, fo, JSON_COMPACT);
        fputc('\n', fo);
        json_decref(rec);
    }
    free(line);
    fclose(in);
    assert_int_equal(fclose(fo), 0);
    snprintf(args, sizeof args, "import '%s' %s", copied, opts);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(err, "earlystop import: warning: "));
    assert_non_null(strstr(err, "copy pattern"));
    free(out);
    free(err);
}

static int setup(void **state)
{
    (void)state;
    return clirun_setup("test_import");
}

static int teardown(void **state)
{
    (void)state;
    return clirun_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_nested),
        cmocka_unit_test(test_paths_bad),
        cmocka_unit_test(test_object_samples),
        cmocka_unit_test(test_parallel_arrays),
        cmocka_unit_test(test_regex_last_match),
        cmocka_unit_test(test_regex_bad),
        cmocka_unit_test(test_regex_on_field),
        cmocka_unit_test(test_lower),
        cmocka_unit_test(test_gold_regex),
        cmocka_unit_test(test_gold_join),
        cmocka_unit_test(test_gold_file_errors),
        cmocka_unit_test(test_estimator),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_array_input),
        cmocka_unit_test(test_task_default),
        cmocka_unit_test(test_parallel_length_mismatch),
        cmocka_unit_test(test_parallel_mismatch_file),
        cmocka_unit_test(test_gold_scores),
        cmocka_unit_test(test_gold_file_trace),
        cmocka_unit_test(test_max_samples_and_match),
        cmocka_unit_test(test_boxed),
        cmocka_unit_test(test_answer_type_math),
        cmocka_unit_test(test_duplicate_ids),
        cmocka_unit_test(test_regex_large_subject),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_import_dup_stats),
        cmocka_unit_test(test_e2e_esc),
        cmocka_unit_test(test_e2e_faithful),
        cmocka_unit_test(test_cli_bad_records),
        cmocka_unit_test(test_cli_scores_boxed),
        cmocka_unit_test(test_cli_copy_warning),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
