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

#include "earlystop_io.h"

/* ----------------------------------------------------------------- helpers */

/* Write text to a fresh temporary file; returns its malloc'd path. */
static char *tmp_file(const char *text)
{
    char *path = strdup("/tmp/es_test_import_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static void tmp_done(char *path)
{
    unlink(path);
    free(path);
}

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
    record_fails(im, "{\"id\":8,\"g\":\"a\",\"s\":[\"x\",\"y\"],\"toks\":[5]}", ES_EFORMAT, "s[1].toks");
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
    char *gold = tmp_file("{\"id\": 0, \"answer\": \"#### 05/01/2021\"}\n\n"
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
    tmp_done(gold);
}

static void test_gold_file_errors(void **state)
{
    (void)state;
    char *gold = tmp_file("{\"id\": 0, \"answer\": \"a\"}\n{\"id\": 0, \"answer\": \"b\"}\n");
    es_import_opts o = base_opts();
    o.gold_file = gold;
    o.gold_path = "answer";
    es_importer *im = NULL;
    es_error err;
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EFORMAT);
    assert_string_equal(err.file, gold);
    assert_int_equal(err.line, 2);
    tmp_done(gold);

    gold = tmp_file("{\"id\": 0, \"answer\": \"a\"}\n{\"id\": 1, \"answer\": \n");
    o.gold_file = gold;
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EPARSE);
    assert_int_equal(err.line, 2);
    tmp_done(gold);

    o.gold_file = "/nonexistent/gold.jsonl";
    assert_int_equal(es_importer_new(&o, &im, &err), ES_EIO);
    assert_string_equal(err.file, "/nonexistent/gold.jsonl");

    gold = tmp_file(" [ {\"id\": 3, \"answer\": \"c\"} ]");   /* array form */
    o.gold_file = gold;
    im = new_ok(&o);
    es_item it;
    record_ok(im, "{\"id\":3,\"s\":[\"x\"]}", &it);
    assert_string_equal(it.gold[0], "c");
    es_importer_free(im);
    tmp_done(gold);
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
    char *in = tmp_file("{\"g\":\"a\",\"s\":[\"answer is a\"]}\n\n"
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
    tmp_done(in);

    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, "/nonexistent/x.jsonl", &err), ES_EIO);
    assert_int_equal(es_importer_next(im, &it, &err), ES_EINVAL);
    es_importer_free(im);
}

/* A top-level JSON array works like JSON Lines; errors name the element. */
static void test_array_input(void **state)
{
    (void)state;
    char *in = tmp_file("\n [ {\"g\":\"a\",\"s\":[\"answer is a\"]},\n"
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
    tmp_done(in);

    in = tmp_file("[{\"g\":\"a\",\"s\":[\"x\"]},");
    im = new_ok(&o);
    assert_int_equal(es_importer_open(im, in, &err), ES_EPARSE);
    assert_string_equal(err.file, in);
    es_importer_free(im);
    tmp_done(in);
}

/* Default task: the input file's name without directory and extension. */
static void test_task_default(void **state)
{
    (void)state;
    char *in = tmp_file("{\"g\":\"a\",\"s\":[\"x\"]}\n");
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
    tmp_done(in);
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
        cmocka_unit_test(test_e2e_esc),
        cmocka_unit_test(test_e2e_faithful),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
