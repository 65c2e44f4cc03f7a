/*
 * test_trace.c - the trace format v1 reader and writer (src/io/trace_io.c).
 *
 * Reader: every way a file can break the format must produce an error naming
 * the file, the line and the field, because that is what a user needs to fix
 * a file of thousands of lines.  Writer: read -> write -> read -> write must
 * be a byte-identical fixed point, so tools can rewrite files without churn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "earlystop_io.h"
#include "refdata.h"

#define HDR "{\"format\":\"earlystop-traces\",\"version\":1,\"model\":\"m\"}\n"
#define GOOD(id) "{\"id\":\"" id "\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\"," \
                 "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n"

static char tmpdir[256];
static int file_no;

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/es_test_trace_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write `content` (len bytes) to a fresh file in the temp dir; path into buf. */
static const char *write_file_n(char *buf, size_t cap, const char *content, size_t len)
{
    snprintf(buf, cap, "%s/f%03d.jsonl", tmpdir, file_no++);
    FILE *fp = fopen(buf, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    return buf;
}

static const char *write_file(char *buf, size_t cap, const char *content)
{
    return write_file_n(buf, cap, content, strlen(content));
}

/* Read `content` until the first error; check it names this file, the line,
 * the field, and says `needle`.  Returns the code. */
static int expect_error(const char *content, unsigned flags, long line, const char *field, const char *needle)
{
    char path[512];
    write_file(path, sizeof path, content);
    es_error err = {0};
    es_trace_reader *r = NULL;
    int rc = es_trace_reader_open(path, flags, &r, &err);
    if (rc == ES_OK) {
        es_item it;
        while ((rc = es_trace_reader_next(r, &it, &err)) == ES_OK) {}
        es_trace_reader_free(r);
    }
    assert_true(rc != ES_OK && rc != ES_EOF);
    assert_int_equal(err.code, rc);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, line);
    assert_string_equal(err.field, field);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    /* the formatted form is what the CLI prints: file:line: field: msg */
    char fmt[1024], want[600];
    es_error_format(&err, fmt, sizeof fmt);
    if (line > 0)
        snprintf(want, sizeof want, "%s:%ld: %s%s", path, line, field, field[0] ? ": " : "");
    else /* no line to name (an empty file) */
        snprintf(want, sizeof want, "%s: %s%s", path, field, field[0] ? ": " : "");
    if (strncmp(fmt, want, strlen(want))) fail_msg("formatted '%s' does not start with '%s'", fmt, want);
    return rc;
}

static void test_missing_gold(void **state)
{
    expect_error(HDR GOOD("a") "{\"id\":\"b\",\"task\":\"t\",\"answer_type\":\"text\","
                 "\"samples\":[{\"answer\":\"x\",\"tokens\":1}]}\n",
                 0, 3, "gold", "missing");
}

static void test_bad_tokens(void **state)
{
    static const char *bad[] = {"-1", "1.5", "\"3\"", "null", "4294967296"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char content[512];
        snprintf(content, sizeof content,
                 HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3},{\"answer\":\"y\",\"tokens\":%s}]}\n",
                 bad[i]);
        int rc = expect_error(content, 0, 2, "samples[1].tokens", "non-negative integer");
        assert_int_equal(rc, ES_EFORMAT);
    }
    /* 2^32 is too large, not negative: the message gives the limit and the value */
    char content[512];
    snprintf(content, sizeof content,
             HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                 "\"samples\":[{\"answer\":\"x\",\"tokens\":4294967296}]}\n");
    expect_error(content, 0, 2, "samples[0].tokens", "at most 4294967295 (2^32 - 1), got 4294967296");
    snprintf(content, sizeof content,
             HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                 "\"samples\":[{\"answer\":\"x\",\"tokens\":-7}]}\n");
    expect_error(content, 0, 2, "samples[0].tokens", "got -7");
    /* absent tokens is named as missing */
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\"}]}\n",
                 0, 2, "samples[0].tokens", "missing");
}

static void test_probe_backwards(void **state)
{
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"1\","
                     "\"samples\":[{\"answer\":\"1\",\"tokens\":50,\"probes\":[{\"at\":10,\"answer\":\"2\"},"
                     "{\"at\":5,\"answer\":\"1\"}]}]}\n",
                 0, 2, "samples[0].probes[1].at", "backwards");
    /* a probe past the sample's end is as wrong */
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"1\","
                     "\"samples\":[{\"answer\":\"1\",\"tokens\":50,\"probes\":[{\"at\":60,\"answer\":\"2\"}]}]}\n",
                 0, 2, "samples[0].probes[0].at", "beyond");
    /* confidence outside [0,1] */
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"1\","
                     "\"samples\":[{\"answer\":\"1\",\"tokens\":50,\"probes\":[{\"at\":6,\"answer\":\"2\","
                     "\"confidence\":1.5}]}]}\n",
                 0, 2, "samples[0].probes[0].confidence", "[0, 1]");
}

static void test_truncated_last_line(void **state)
{
    /* cut mid-object, no newline: the typical half-written file */
    int rc = expect_error(HDR GOOD("a") GOOD("b") "{\"id\":\"c\",\"task\":\"t\",\"answer_type\":\"te", 0, 4, "",
                          "truncated");
    assert_int_equal(rc, ES_EPARSE);
    /* a complete last object without its newline is fine */
    char path[512];
    const char *ok = HDR GOOD("a") "{\"id\":\"b\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                                   "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}";
    write_file(path, sizeof path, ok);
    es_traceset *ts;
    assert_int_equal(es_traceset_load(path, 0, &ts, NULL, NULL), ES_OK);
    assert_int_equal(es_traceset_n_items(ts), 2);
    es_traceset_free(ts);
}

static void test_not_an_object(void **state)
{
    assert_int_equal(expect_error(HDR GOOD("a") "[1,2,3]\n", 0, 3, "", "JSON object"), ES_EFORMAT);
    /* jansson rejects a bare scalar as a document: "invalid JSON" is fine */
    expect_error(HDR "\"just a string\"\n", 0, 2, "", "JSON");
    assert_int_equal(expect_error(HDR "{\"id\": oops}\n", 0, 2, "", "invalid JSON"), ES_EPARSE);
    /* a sample or a probe that is not an object */
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\",\"samples\":[3]}\n", 0, 2,
                 "samples[0]", "object");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\",\"samples\":[]}\n", 0, 2,
                 "samples", "non-empty");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\"}\n", 0, 2, "samples",
                 "missing");
    expect_error(HDR "{\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "id", "missing");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"tokens\":3}]}\n",
                 0, 2, "samples[0].answer", "missing");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":[\"x\",true],"
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "gold[1]", "string");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":[],"
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "gold", "empty");
}

static void test_bad_header(void **state)
{
    expect_error("{\"format\":\"other\",\"version\":1}\n" GOOD("a"), 0, 1, "format", "header");
    expect_error("{\"version\":1}\n" GOOD("a"), 0, 1, "format", "header");
    expect_error("{\"format\":\"earlystop-traces\",\"version\":2}\n" GOOD("a"), 0, 1, "version", "version 1");
    expect_error("{\"format\":\"earlystop-traces\",\"version\":\"1\"}\n" GOOD("a"), 0, 1, "version", "version");
    /* a file that starts with an item, not a header */
    expect_error(GOOD("a") GOOD("b"), 0, 1, "format", "header");
    expect_error("not json\n", 0, 1, "", "invalid JSON");
}

static void test_empty_file(void **state)
{
    expect_error("", 0, 0, "", "empty file");
    /* blank lines only: still no header; the line is where the reader gave up */
    char path[512];
    write_file(path, sizeof path, "\n\n  \n");
    es_error err = {0};
    es_trace_reader *r;
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_EFORMAT);
    assert_string_equal(err.file, path);
    assert_non_null(strstr(err.msg, "empty file"));
    /* header only: a valid file with no items */
    write_file(path, sizeof path, HDR);
    es_traceset *ts;
    assert_int_equal(es_traceset_load(path, 0, &ts, NULL, NULL), ES_OK);
    assert_int_equal(es_traceset_n_items(ts), 0);
    es_traceset_free(ts);
}

static void test_nonexistent(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/file.jsonl", tmpdir);
    es_error err = {0};
    es_trace_reader *r;
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_EIO);
    assert_string_equal(err.file, path);
    assert_non_null(strstr(err.msg, "cannot open"));
}

static void test_duplicate_id(void **state)
{
    char path[512];
    write_file(path, sizeof path, HDR GOOD("a") GOOD("b") "\n" GOOD("a"));
    es_error err = {0};
    es_traceset *ts = (es_traceset *)&err; /* must come back NULL */
    assert_int_equal(es_traceset_load(path, 0, &ts, NULL, &err), ES_EFORMAT);
    assert_null(ts);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 5);
    assert_string_equal(err.field, "id");
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_non_null(strstr(err.msg, "'a'"));
}

static void test_bad_answer_type(void **state)
{
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"boolean\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "answer_type", "text, number, date, choice");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":3,\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "answer_type", "string");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "answer_type", "missing");
}

static void test_skip_bad(void **state)
{
    char path[512];
    write_file(path, sizeof path,
               HDR GOOD("a") "[1]\n" GOOD("b")
                   "{\"id\":\"c\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                   "\"samples\":[{\"answer\":\"x\",\"tokens\":-1}]}\n" GOOD("d"));
    es_trace_reader *r;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(path, ES_READ_SKIP_BAD, &r, &err), ES_OK);
    es_item it;
    const char *want[] = {"a", "b", "d"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
        assert_string_equal(it.id, want[i]);
    }
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_EOF);
    assert_int_equal(es_trace_reader_skipped(r), 2);
    const es_error *last = es_trace_reader_last_skip(r);
    assert_int_equal(last->line, 5);
    assert_string_equal(last->field, "samples[0].tokens");
    assert_string_equal(last->file, path);
    es_trace_reader_free(r);

    /* es_traceset_load passes the count through */
    es_traceset *ts;
    size_t skipped = 99;
    assert_int_equal(es_traceset_load(path, ES_READ_SKIP_BAD, &ts, &skipped, &err), ES_OK);
    assert_int_equal(skipped, 2);
    assert_int_equal(es_traceset_n_items(ts), 3);
    es_traceset_free(ts);

    /* a duplicate id is skipped like a bad line, and counted */
    write_file(path, sizeof path, HDR GOOD("a") GOOD("b") GOOD("a") "[]\n" GOOD("c"));
    assert_int_equal(es_traceset_load(path, ES_READ_SKIP_BAD, &ts, &skipped, &err), ES_OK);
    assert_int_equal(skipped, 2);
    assert_int_equal(es_traceset_n_items(ts), 3);
    es_traceset_free(ts);

    /* a truncated last line is skipped too; without the flag it is fatal */
    write_file(path, sizeof path, HDR GOOD("a") "{\"id\":\"b\"");
    assert_int_equal(es_traceset_load(path, ES_READ_SKIP_BAD, &ts, &skipped, &err), ES_OK);
    assert_int_equal(skipped, 1);
    assert_int_equal(es_traceset_n_items(ts), 1);
    es_traceset_free(ts);
    assert_int_equal(es_traceset_load(path, 0, &ts, &skipped, &err), ES_EPARSE);
}

static void test_blank_lines(void **state)
{
    char path[512];
    write_file(path, sizeof path, "\n  \n" HDR "\n" GOOD("a") "\t\n\r\n" GOOD("b") "\n\n");
    es_trace_reader *r;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_OK);
    es_item it;
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_string_equal(it.id, "a");
    assert_int_equal(es_trace_reader_line(r), 5);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_string_equal(it.id, "b");
    assert_int_equal(es_trace_reader_line(r), 8);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_EOF);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(es_trace_reader_bytes(r), (uint64_t)sb.st_size);
    /* the header keeps its provenance fields */
    assert_non_null(strstr(es_trace_reader_header(r), "\"model\""));
    es_trace_reader_free(r);
    /* CRLF line ends are accepted */
    write_file(path, sizeof path,
               "{\"format\":\"earlystop-traces\",\"version\":1}\r\n"
               "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
               "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\r\n");
    es_traceset *ts;
    assert_int_equal(es_traceset_load(path, 0, &ts, NULL, &err), ES_OK);
    assert_int_equal(es_traceset_n_items(ts), 1);
    es_traceset_free(ts);
}

static void test_gold_list_and_numbers(void **state)
{
    char path[512];
    write_file(path, sizeof path,
               HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":[18,\"18.0\",2.5],"
                   "\"samples\":[{\"answer\":18,\"tokens\":3},{\"answer\":0.25,\"tokens\":4},"
                   "{\"answer\":null,\"tokens\":5,\"probes\":[{\"at\":1,\"answer\":-7},{\"at\":2,\"answer\":null}]}]}\n"
                   "{\"id\":\"b\",\"answer_type\":\"number\",\"gold\":1e3,"
                   "\"samples\":[{\"answer\":\"1000\",\"tokens\":3}]}\n");
    es_trace_reader *r;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_OK);
    es_item it;
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_int_equal(it.answer_type, ES_ANSWER_NUMBER);
    assert_int_equal(it.n_gold, 3);
    assert_string_equal(it.gold[0], "18");
    assert_string_equal(it.gold[1], "18.0");
    assert_string_equal(it.gold[2], "2.5");
    assert_int_equal(it.n_samples, 3);
    assert_string_equal(it.samples[0].answer, "18");
    assert_string_equal(it.samples[1].answer, "0.25");
    assert_null(it.samples[2].answer);
    assert_int_equal(it.samples[2].n_probes, 2);
    assert_string_equal(it.samples[2].probes[0].answer, "-7");
    assert_null(it.samples[2].probes[1].answer);
    assert_int_equal(it.samples[0].n_probes, 0);
    assert_true(isnan(it.samples[0].confidence));
    assert_true(isnan(it.samples[2].probes[0].confidence));
    assert_true(isnan(it.samples[2].probes[0].window_confidence));
    assert_int_equal(it.samples[2].probes[0].cost, -1);
    assert_null(it.question);
    assert_string_equal(it.task, "t");
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_string_equal(it.gold[0], "1000");
    assert_string_equal(it.task, ""); /* task is optional */
    es_trace_reader_free(r);
}

static void test_no_text(void **state)
{
    char path[512];
    write_file(path, sizeof path,
               HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\",\"question\":\"Q?\","
                   "\"samples\":[{\"answer\":\"x\",\"tokens\":3,\"text\":\"so x\"},{\"answer\":\"y\",\"tokens\":3}]}\n");
    es_trace_reader *r;
    es_error err = {0};
    es_item it;
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_OK);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_string_equal(it.question, "Q?");
    assert_string_equal(it.samples[0].text, "so x");
    assert_null(it.samples[1].text);
    es_trace_reader_free(r);
    assert_int_equal(es_trace_reader_open(path, ES_READ_NO_TEXT, &r, &err), ES_OK);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_null(it.question);
    assert_null(it.samples[0].text);
    es_trace_reader_free(r);
    /* the traceset keeps texts only when asked */
    es_traceset *ts;
    es_item_view v;
    assert_int_equal(es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err), ES_OK);
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    assert_null(v.text);
    es_traceset_free(ts);
    assert_int_equal(es_traceset_load(path, 0, &ts, NULL, &err), ES_OK);
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    assert_non_null(v.text);
    assert_string_equal(v.text[0], "so x");
    assert_null(v.text[1]);
    es_traceset_free(ts);
}

/* ------------------------------------------------------------- writer */

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static int dbl_eq(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* Field-by-field equality of two items (as read). */
static void assert_items_equal(const es_item *a, const es_item *b)
{
    assert_true(str_eq(a->id, b->id));
    assert_true(str_eq(a->task, b->task));
    assert_true(str_eq(a->question, b->question));
    assert_int_equal(a->answer_type, b->answer_type);
    assert_int_equal(a->n_gold, b->n_gold);
    for (size_t i = 0; i < a->n_gold; i++) assert_true(str_eq(a->gold[i], b->gold[i]));
    assert_int_equal(a->n_samples, b->n_samples);
    for (size_t i = 0; i < a->n_samples; i++) {
        const es_sample *x = &a->samples[i], *y = &b->samples[i];
        assert_true(str_eq(x->answer, y->answer));
        assert_int_equal(x->tokens, y->tokens);
        assert_true(dbl_eq(x->confidence, y->confidence));
        assert_true(str_eq(x->text, y->text));
        assert_int_equal(x->n_probes, y->n_probes);
        for (size_t j = 0; j < x->n_probes; j++) {
            const es_probe *p = &x->probes[j], *q = &y->probes[j];
            assert_int_equal(p->at, q->at);
            assert_true(str_eq(p->answer, q->answer));
            assert_true(dbl_eq(p->confidence, q->confidence));
            assert_true(dbl_eq(p->window_confidence, q->window_confidence));
            assert_int_equal(p->cost, q->cost);
            assert_int_equal(p->cues, q->cues);
        }
    }
}

/* Read `in` and write it to `out`; returns the item count. */
static size_t rewrite(const char *in, const char *out)
{
    es_trace_reader *r;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(in, 0, &r, &err), ES_OK);
    FILE *fp = fopen(out, "wb");
    assert_non_null(fp);
    es_trace_writer *w;
    assert_int_equal(es_trace_writer_open(fp, es_trace_reader_header(r), &w, &err), ES_OK);
    es_item it;
    size_t n = 0;
    int rc;
    while ((rc = es_trace_reader_next(r, &it, &err)) == ES_OK) {
        assert_int_equal(es_trace_writer_write(w, &it, &err), ES_OK);
        n++;
    }
    assert_int_equal(rc, ES_EOF);
    assert_int_equal(es_trace_writer_free(w), ES_OK);
    assert_int_equal(fclose(fp), 0);
    es_trace_reader_free(r);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

/* Items of files a and b equal pairwise, and as many. */
static void assert_files_same_items(const char *a, const char *b)
{
    es_trace_reader *ra, *rb;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(a, 0, &ra, &err), ES_OK);
    assert_int_equal(es_trace_reader_open(b, 0, &rb, &err), ES_OK);
    assert_string_equal(es_trace_reader_header(ra), es_trace_reader_header(rb));
    es_item x, y;
    int rca, rcb;
    while ((rca = es_trace_reader_next(ra, &x, &err)) == ES_OK) {
        rcb = es_trace_reader_next(rb, &y, &err);
        assert_int_equal(rcb, ES_OK);
        assert_items_equal(&x, &y);
    }
    assert_int_equal(rca, ES_EOF);
    assert_int_equal(es_trace_reader_next(rb, &y, &err), ES_EOF);
    es_trace_reader_free(ra);
    es_trace_reader_free(rb);
}

static void check_fixed_point(const char *src)
{
    char w1[512], w2[512];
    snprintf(w1, sizeof w1, "%s/w1_%03d.jsonl", tmpdir, file_no);
    snprintf(w2, sizeof w2, "%s/w2_%03d.jsonl", tmpdir, file_no++);
    size_t n1 = rewrite(src, w1), n2 = rewrite(w1, w2);
    assert_int_equal(n1, n2);
    size_t l1, l2;
    char *b1 = slurp(w1, &l1), *b2 = slurp(w2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    assert_files_same_items(src, w1);
}

static void test_writer_fixed_point_shared(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/traces/r1qwen32b_gsm8k_think.jsonl", es_ref_data_dir());
    struct stat sb;
    if (stat(path, &sb)) {
        print_message("shared data absent (%s): set ES_SHARED_DATA; skipping\n", path);
        skip();
    }
    check_fixed_point(path);
    snprintf(path, sizeof path, "%s/traces/verifycot_date_gpt35_k10.jsonl", es_ref_data_dir());
    if (!stat(path, &sb)) check_fixed_point(path);
}

static void test_writer_fixed_point_small(void **state)
{
    char path[512];
    write_file(path, sizeof path,
               "{\"format\":\"earlystop-traces\",\"version\":1,\"model\":\"m\",\"note\":\"\\u00e9t\\u00e9 \\\"q\\\"\","
               "\"nested\":{\"a\":[1,2.5,null]}}\n"
               "{\"samples\":[{\"tokens\":40,\"answer\":\"4\",\"confidence\":0.95,\"text\":\"line1\\nline2 \\u2713\","
               "\"probes\":[{\"at\":0,\"answer\":null,\"cost\":0},"
               "{\"at\":10,\"answer\":\"3\",\"confidence\":0.123456789012345,\"window_confidence\":17.25,\"cost\":12},"
               "{\"at\":40,\"answer\":4,\"confidence\":1,\"window_confidence\":-3}]}],"
               "\"gold\":[\"4\",\"four\"],\"answer_type\":\"number\",\"id\":\"q-1\",\"task\":\"arith\","
               "\"question\":\"2+2?\",\"extra\":\"ignored\"}\n"
               "{\"id\":\"q-2\",\"task\":\"arith\",\"answer_type\":\"choice\",\"gold\":\"B\","
               "\"samples\":[{\"answer\":\"(b)\",\"tokens\":7,\"confidence\":1e-07},{\"answer\":null,\"tokens\":0}]}\n");
    check_fixed_point(path);
    /* the values survive, and the writer's key order is canonical */
    char w[512];
    snprintf(w, sizeof w, "%s/canon.jsonl", tmpdir);
    rewrite(path, w);
    es_trace_reader *r;
    es_error err = {0};
    es_item it;
    assert_int_equal(es_trace_reader_open(w, 0, &r, &err), ES_OK);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_true(it.samples[0].confidence == 0.95);
    assert_int_equal(it.samples[0].probes[0].cost, 0);
    assert_true(it.samples[0].probes[1].confidence == 0.123456789012345);
    assert_true(it.samples[0].probes[1].window_confidence == 17.25);
    assert_int_equal(it.samples[0].probes[1].cost, 12);
    assert_true(it.samples[0].probes[2].window_confidence == -3);
    assert_int_equal(it.samples[0].probes[2].cost, -1);
    assert_string_equal(it.samples[0].text, "line1\nline2 \xe2\x9c\x93");
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_true(it.samples[0].confidence == 1e-07);
    es_trace_reader_free(r);
    size_t len;
    char *b = slurp(w, &len);
    const char *line2 = strchr(b, '\n') + 1;
    const char *keys[] = {"\"id\"", "\"task\"", "\"answer_type\"", "\"gold\"", "\"question\"", "\"samples\""};
    const char *prev = line2;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *k = strstr(line2, keys[i]);
        assert_non_null(k);
        assert_true(k >= prev);
        prev = k;
    }
    assert_null(strstr(b, "\"extra\"")); /* unknown item fields are not kept */
    assert_non_null(strstr(b, "\"nested\"")); /* header provenance is */
    assert_true(strncmp(b, "{\"format\": \"earlystop-traces\", \"version\": 1", 43) == 0);
    free(b);
}

/* Probe cues: a list of names, present (even empty) = read; unknown names
 * and non-lists are errors naming the probe; the writer keeps them. */
static void test_probe_cues(void **state)
{
    char path[512], w[512];
    write_file(path, sizeof path,
               HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"1\",\"samples\":[{\"answer\":\"1\","
                   "\"tokens\":50,\"probes\":[{\"at\":10,\"answer\":\"2\"},{\"at\":20,\"answer\":\"1\",\"cues\":[]},"
                   "{\"at\":30,\"answer\":\"1\",\"cues\":[\"end\",\"conclude\",\"check\"]}]}]}\n");
    check_fixed_point(path);
    snprintf(w, sizeof w, "%s/cues.jsonl", tmpdir);
    rewrite(path, w);
    es_trace_reader *r;
    es_error err = {0};
    es_item it;
    assert_int_equal(es_trace_reader_open(w, 0, &r, &err), ES_OK);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_int_equal(it.samples[0].probes[0].cues, 0);
    assert_int_equal(it.samples[0].probes[1].cues, ES_CUE_READ);
    assert_int_equal(it.samples[0].probes[2].cues, ES_CUE_READ | ES_CUE_CONCLUDE | ES_CUE_CHECK | ES_CUE_END);
    es_trace_reader_free(r);
    size_t len;
    char *b = slurp(w, &len);
    assert_non_null(strstr(b, "\"cues\": [\"conclude\", \"check\", \"end\"]")); /* canonical order */
    assert_non_null(strstr(b, "\"cues\": []"));
    free(b);
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"1\",\"samples\":[{\"answer\":\"1\","
                     "\"tokens\":50,\"probes\":[{\"at\":10,\"answer\":\"2\",\"cues\":[\"wait\"]}]}]}\n",
                 0, 2, "samples[0].probes[0].cues", "unknown cue");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"1\",\"samples\":[{\"answer\":\"1\","
                     "\"tokens\":50,\"probes\":[{\"at\":10,\"answer\":\"2\",\"cues\":\"end\"}]}]}\n",
                 0, 2, "samples[0].probes[0].cues", "must be a list");
}

static void test_writer_rejects(void **state)
{
    FILE *fp = tmpfile();
    assert_non_null(fp);
    es_trace_writer *w;
    es_error err = {0};
    assert_int_equal(es_trace_writer_open(fp, "[1,2]", &w, &err), ES_EINVAL);
    assert_string_equal(err.field, "header");
    assert_int_equal(es_trace_writer_open(fp, NULL, &w, &err), ES_OK);
    es_sample s = {.answer = "x", .tokens = 1, .confidence = NAN};
    es_item it = {.id = "a", .task = "t", .n_gold = 0, .n_samples = 1, .samples = &s};
    assert_int_equal(es_trace_writer_write(w, &it, &err), ES_EINVAL);
    assert_string_equal(err.field, "gold");
    assert_int_equal(es_trace_writer_free(w), ES_OK);
    fclose(fp);
}

/* ------------------------------------------------ hostile input (issue 7) */

/* "a\u0000b" and "a\u0000c" were read with JSON_ALLOW_NUL and compared as C
 * strings, so the two ids collided: NUL in a string is refused, field named. */
static void test_nul_in_strings(void **state)
{
    expect_error(HDR "{\"id\":\"a\\u0000b\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n"
                     "{\"id\":\"a\\u0000c\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "id", "NUL character");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3},{\"answer\":\"x\\u0000y\",\"tokens\":3}]}\n",
                 0, 2, "samples[1].answer", "NUL character");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":[\"x\",\"y\\u0000\"],"
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3}]}\n",
                 0, 2, "gold[1]", "NUL character");
    expect_error(HDR "{\"id\":\"a\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                     "\"samples\":[{\"answer\":\"x\",\"tokens\":3,\"text\":\"ab\\u0000\"}]}\n",
                 0, 2, "samples[0].text", "NUL character");
}

/* A raw NUL byte mid-line said "near end of file"; now it is named, with
 * its column, also with --skip-bad (where the line is skipped). */
static void test_nul_byte(void **state)
{
    static const char line[] = HDR "{\"id\":\"a\",\"task\"\0:\"t\"}\n" GOOD("b");
    char path[512];
    write_file_n(path, sizeof path, line, sizeof line - 1);
    es_trace_reader *r;
    es_error err = {0};
    es_item it;
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_OK);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_EPARSE);
    assert_int_equal(err.line, 2);
    if (!strstr(err.msg, "NUL byte at column 17")) fail_msg("message '%s'", err.msg);
    es_trace_reader_free(r);
    assert_int_equal(es_trace_reader_open(path, ES_READ_SKIP_BAD, &r, &err), ES_OK);
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_OK);
    assert_string_equal(it.id, "b");
    assert_int_equal(es_trace_reader_skipped(r), 1);
    if (!strstr(es_trace_reader_skip_reason(r, 0)->msg, "NUL byte")) fail_msg("reason '%s'", es_trace_reader_skip_reason(r, 0)->msg);
    es_trace_reader_free(r);
}

/* gzip input said "truncated line"; it is named, as are other compressors. */
static void test_compressed_input(void **state)
{
    static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
                                       0x4b, 0x4c, 0x4a, 0x06, 0x00, 0xc2, 0x41, 0x24, 0x35, 0x03, 0, 0, 0};
    static const struct { char magic[11]; const char *name; } kinds[] = {
        {"\x28\xb5\x2f\xfd\x04\x58\x01\x02\x03\x04", "zstd"}, {"\xfd" "7zXZ\x00\x00\x04\x01\x02", "xz"},
        {"BZh91AY&SY", "bzip2"}};
    char path[512];
    es_trace_reader *r = NULL;
    es_error err = {0};
    write_file_n(path, sizeof path, (const char *)gz, sizeof gz);
    assert_int_equal(es_trace_reader_open(path, ES_READ_SKIP_BAD, &r, &err), ES_EFORMAT);
    assert_null(r);
    if (!strstr(err.msg, "gzip-compressed input: decompress it first")) fail_msg("message '%s'", err.msg);
    assert_string_equal(err.file, path);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        write_file_n(path, sizeof path, kinds[i].magic, 10);
        assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_EFORMAT);
        if (!strstr(err.msg, kinds[i].name)) fail_msg("message '%s' lacks %s", err.msg, kinds[i].name);
    }
}

/* A UTF-8 byte order mark (Notepad, PowerShell) before the header is skipped. */
static void test_bom(void **state)
{
    char path[512];
    write_file(path, sizeof path, "\xef\xbb\xbf" HDR GOOD("a") GOOD("b"));
    es_traceset *ts;
    es_error err = {0};
    assert_int_equal(es_traceset_load(path, 0, &ts, NULL, &err), ES_OK);
    assert_int_equal(es_traceset_n_items(ts), 2);
    es_traceset_free(ts);
}

/* `stats /dev/zero` grew without bound: lines are capped (ES_READ_MAX_LINE by
 * default), a NUL byte stops the reading of a header at once, and a
 * too-long line is an error even with --skip-bad. */
static void test_max_line(void **state)
{
    es_read_opts o;
    es_read_opts_init(&o);
    assert_true(o.max_line == ES_READ_MAX_LINE && ES_READ_MAX_LINE == (uint64_t)256 << 20);
    es_trace_reader *r = NULL;
    es_error err = {0};
    o.flags = ES_READ_SKIP_BAD;
    assert_int_equal(es_trace_reader_open_opts("/dev/zero", &o, &r, &err), ES_EPARSE);
    if (!strstr(err.msg, "NUL byte at column 1")) fail_msg("message '%s'", err.msg);
    /* a header, then a line of 3000 bytes under a limit of 1000 */
    size_t n = strlen(HDR) + 3000 + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memcpy(big, HDR, strlen(HDR));
    memset(big + strlen(HDR), 'x', 3000);
    big[n - 1] = '\n';
    char path[512];
    write_file_n(path, sizeof path, big, n);
    o.max_line = 1000;
    assert_int_equal(es_trace_reader_open_opts(path, &o, &r, &err), ES_OK);
    es_item it;
    assert_int_equal(es_trace_reader_next(r, &it, &err), ES_ERANGE);
    assert_int_equal(err.line, 2);
    if (!strstr(err.msg, "longer than the limit of 1000 bytes")) fail_msg("message '%s'", err.msg);
    es_trace_reader_free(r);
    /* the same file loads under a limit above the line */
    o.max_line = 3000;
    es_traceset *ts;
    assert_int_equal(es_traceset_load_opts(path, &o, &ts, NULL, &err), ES_OK); /* the line is skipped as bad JSON */
    es_traceset_free(ts);
    o.max_line = 2999;
    assert_int_equal(es_traceset_load_opts(path, &o, &ts, NULL, &err), ES_ERANGE);
    free(big);
}

/* --skip-bad gave a count and the last reason: the first ES_READ_REASONS
 * reasons are kept in file order, duplicate ids (found by the set) included. */
static void test_skip_reasons(void **state)
{
    char path[512];
    write_file(path, sizeof path,
               HDR GOOD("a") "[1]\n" GOOD("a") "{\"id\":\"c\",\"task\":\"t\",\"answer_type\":\"text\",\"gold\":\"x\","
                   "\"samples\":[{\"answer\":\"x\",\"tokens\":-1}]}\n" "nope\n" "{}\n" GOOD("d") "[2]\n" GOOD("e"));
    es_read_opts o;
    es_read_opts_init(&o);
    o.flags = ES_READ_SKIP_BAD;
    es_read_report rep;
    es_traceset *ts;
    es_error err = {0};
    assert_int_equal(es_traceset_load_opts(path, &o, &ts, &rep, &err), ES_OK);
    assert_int_equal(es_traceset_n_items(ts), 3);
    assert_int_equal(rep.skipped, 6);
    assert_int_equal(rep.n_reasons, ES_READ_REASONS);
    const long lines[] = {3, 4, 5, 6, 7};
    const char *fields[] = {"", "id", "samples[0].tokens", "", "id"};
    for (int i = 0; i < ES_READ_REASONS; i++) {
        assert_int_equal(rep.reasons[i].line, lines[i]);
        assert_string_equal(rep.reasons[i].field, fields[i]);
        assert_string_equal(rep.reasons[i].file, path);
    }
    es_traceset_free(ts);
    /* the reader alone keeps its own first reasons */
    es_trace_reader *r;
    assert_int_equal(es_trace_reader_open(path, ES_READ_SKIP_BAD, &r, &err), ES_OK);
    es_item it;
    while (es_trace_reader_next(r, &it, &err) == ES_OK) {}
    assert_int_equal(es_trace_reader_skipped(r), 5);
    assert_int_equal(es_trace_reader_skip_reason(r, 0)->line, 3);
    assert_int_equal(es_trace_reader_skip_reason(r, 4)->line, 9);
    assert_null(es_trace_reader_skip_reason(r, 5));
    es_trace_reader_free(r);
}

/* The parallel read-ahead must hand out the same items, and stop at the same
 * error, whatever the thread count. */
static void test_threads_identical(void **state)
{
    enum { N = 2000 };
    size_t cap = (size_t)N * 200 + 256, at = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    at += (size_t)snprintf(buf + at, cap - at, "%s", HDR);
    for (int i = 0; i < N; i++)
        at += (size_t)snprintf(buf + at, cap - at,
                               "{\"id\":\"q%d\",\"task\":\"t\",\"answer_type\":\"number\",\"gold\":\"%d\","
                               "\"samples\":[{\"answer\":\"%d\",\"tokens\":%d},{\"answer\":%d,\"tokens\":%d}]}\n%s",
                               i, i % 7, i % 5, i, i % 3, i + 1, i % 97 == 0 ? "\n" : "");
    char path[512];
    write_file_n(path, sizeof path, buf, at);
    const int threads[] = {1, 2, 3, 8};
    es_stats ref = {0};
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        es_read_opts o;
        es_read_opts_init(&o);
        o.threads = threads[t];
        es_trace_reader *r;
        es_error err = {0};
        assert_int_equal(es_trace_reader_open_opts(path, &o, &r, &err), ES_OK);
        es_item it;
        int i = 0, rc;
        while ((rc = es_trace_reader_next(r, &it, &err)) == ES_OK) {
            char want[32];
            snprintf(want, sizeof want, "q%d", i);
            assert_string_equal(it.id, want);
            assert_int_equal(it.samples[1].tokens, i + 1);
            i++;
        }
        assert_int_equal(rc, ES_EOF);
        assert_int_equal(i, N);
        es_trace_reader_free(r);
        es_traceset *ts;
        assert_int_equal(es_traceset_load_opts(path, &o, &ts, NULL, &err), ES_OK);
        es_stats st;
        assert_int_equal(es_stats_compute(ts, &st), ES_OK);
        if (t == 0) ref = st;
        assert_memory_equal(&st, &ref, sizeof st);
        es_traceset_free(ts);
    }
    /* a bad line deep in the file: the same error on every thread count */
    char *bad = strstr(buf, "{\"id\":\"q1500\"");
    assert_non_null(bad);
    memcpy(bad, "[\"", 2);
    write_file_n(path, sizeof path, buf, at);
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        es_read_opts o;
        es_read_opts_init(&o);
        o.threads = threads[t];
        es_traceset *ts = NULL;
        es_error err = {0};
        assert_int_equal(es_traceset_load_opts(path, &o, &ts, NULL, &err), ES_EPARSE);
        assert_int_equal(err.line, 1500 + 2 + 1500 / 97 + 1);
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_gold),
        cmocka_unit_test(test_bad_tokens),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_compressed_input),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_max_line),
        cmocka_unit_test(test_skip_reasons),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_probe_backwards),
        cmocka_unit_test(test_truncated_last_line),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_bad_header),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_nonexistent),
        cmocka_unit_test(test_duplicate_id),
        cmocka_unit_test(test_bad_answer_type),
        cmocka_unit_test(test_skip_bad),
        cmocka_unit_test(test_blank_lines),
        cmocka_unit_test(test_gold_list_and_numbers),
        cmocka_unit_test(test_no_text),
        cmocka_unit_test(test_writer_fixed_point_shared),
        cmocka_unit_test(test_writer_fixed_point_small),
        cmocka_unit_test(test_probe_cues),
        cmocka_unit_test(test_writer_rejects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
