/*
 * test_traceset.c - the compact in-memory form (src/replay/traceset.c).
 *
 * Replays depend on three promises of the set: id 0 is the null answer
 * (ES_NULL_ANSWER) in every item, a value of its own that is never correct,
 * and real answers get 1, 2, ... in order of first appearance (samples, then
 * probes); and the flat arrays behind the views line up with the items as
 * added.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "earlystop_io.h"
#include "refdata.h"

#define S(a, t) {.answer = (a), .tokens = (t), .confidence = NAN}

static es_probe P(uint32_t at, const char *a)
{
    return (es_probe){.at = at, .answer = a, .confidence = NAN, .window_confidence = NAN, .cost = -1};
}

static void test_interning_order(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    /* probes of sample 0 carry "d" (new) and "a" (seen): samples are
     * interned first, so "c" of sample 4 gets its id before "d" */
    es_probe pr[] = {P(3, "d"), P(5, "a")};
    es_sample s[] = {S("b", 10), S("a", 11), S("b", 12), S(NULL, 13), S("c", 14)};
    s[0].probes = pr;
    s[0].n_probes = 2;
    const char *gold[] = {"a"};
    es_item it = {.id = "q1", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold,
                  .n_samples = 5, .samples = s};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    assert_int_equal(v.n_samples, 5);
    assert_int_equal(v.n_answers, 5); /* null, b, a, c, d */
    int32_t want[] = {1, 2, 1, ES_NULL_ANSWER, 3};
    for (int i = 0; i < 5; i++) assert_int_equal(v.answer[i], want[i]);
    assert_null(v.answer_key[ES_NULL_ANSWER]);
    assert_null(v.answer_raw[ES_NULL_ANSWER]);
    assert_int_equal(v.correct[ES_NULL_ANSWER], 0);
    assert_int_equal(v.probe_answer[v.probe_off[0]], 4);     /* "d" */
    assert_int_equal(v.probe_answer[v.probe_off[0] + 1], 2); /* "a" */
    assert_string_equal(v.answer_raw[4], "d");
    assert_string_equal(v.answer_raw[1], "b");
    const uint8_t correct[] = {0, 0, 1, 0, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(v.correct[i], correct[i]);

    /* ids restart per item; spellings that normalise alike share an id;
     * each spelling is written once, so the tie goes to the first seen */
    es_sample s2[] = {S("The Yajo.", 1), S("yajo", 2), S("  YAJO ", 3), S("other", 4)};
    const char *gold2[] = {"yajo"};
    es_item it2 = {.id = "q2", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold2,
                   .n_samples = 4, .samples = s2};
    assert_int_equal(es_traceset_add(ts, &it2, NULL), ES_OK);
    assert_int_equal(es_traceset_item(ts, 1, &v), ES_OK);
    /* no sample is null, yet id 0 is still the null answer's */
    assert_int_equal(v.n_answers, 3);
    assert_null(v.answer_key[ES_NULL_ANSWER]);
    assert_int_equal(v.correct[ES_NULL_ANSWER], 0);
    assert_int_equal(v.answer[0], 1);
    assert_int_equal(v.answer[1], 1);
    assert_int_equal(v.answer[2], 1);
    assert_int_equal(v.answer[3], 2);
    assert_string_equal(v.answer_raw[1], "The Yajo.");
    assert_string_equal(v.answer_key[1], "yajo");
    assert_int_equal(v.correct[1], 1);
    assert_int_equal(v.correct[2], 0);

    /* numbers compare by value */
    es_sample s3[] = {S("$1,000", 1), S("1000.0", 2), S("999", 3)};
    const char *gold3[] = {"1000"};
    es_item it3 = {.id = "q3", .task = "t", .answer_type = ES_ANSWER_NUMBER, .n_gold = 1, .gold = gold3,
                   .n_samples = 3, .samples = s3};
    assert_int_equal(es_traceset_add(ts, &it3, NULL), ES_OK);
    assert_int_equal(es_traceset_item(ts, 2, &v), ES_OK);
    assert_int_equal(v.n_answers, 3);
    assert_int_equal(v.answer[0], 1);
    assert_int_equal(v.answer[1], 1);
    assert_int_equal(v.answer[2], 2);
    assert_int_equal(v.correct[1], 1);
    assert_int_equal(v.correct[2], 0);
    assert_int_equal(v.answer_type, ES_ANSWER_NUMBER);
    es_traceset_free(ts);
}

static void test_null_never_correct(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    /* an empty gold normalises to the empty key; null must still not match,
     * and neither must an empty-string answer be confused with null */
    es_sample s[] = {S(NULL, 1), S("", 2), S(NULL, 3)};
    const char *gold[] = {""};
    es_item it = {.id = "q", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold,
                  .n_samples = 3, .samples = s};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    assert_int_equal(v.n_answers, 2);
    assert_int_equal(v.answer[0], ES_NULL_ANSWER);
    assert_int_equal(v.answer[1], 1);
    assert_int_equal(v.answer[2], ES_NULL_ANSWER);
    assert_int_equal(v.correct[ES_NULL_ANSWER], 0);
    assert_string_equal(v.answer_key[1], "");
    assert_int_equal(v.correct[1], 1); /* the empty answer is the empty gold */
    /* a vote counts null as a value: here it wins, and is wrong */
    es_tally *t;
    assert_int_equal(es_tally_new(v.n_answers, &t), ES_OK);
    int32_t maj = es_vote_majority(v.answer, v.n_samples, t);
    assert_int_equal(maj, ES_NULL_ANSWER);
    assert_int_equal(v.correct[maj], 0);
    es_tally_free(t);
    es_traceset_free(ts);
}

static void test_gold_list(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    es_sample s[] = {S("no", 1), S("Yes", 2), S("y", 3), S("maybe", 4)};
    const char *gold[] = {"yes", "Y"};
    es_item it = {.id = "q", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 2, .gold = gold,
                  .n_samples = 4, .samples = s};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    /* ids: null, "no", "yes", "y", "maybe"; both gold spellings are correct */
    assert_int_equal(v.n_answers, 5);
    const uint8_t want[] = {0, 0, 1, 1, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(v.correct[i], want[i]);
    assert_string_equal(v.gold, "yes"); /* the first gold, raw */
    es_traceset_free(ts);
}

static void test_views_and_probe_offsets(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(ES_KEEP_TEXT, &ts), ES_OK);
    es_probe p0[] = {P(1, "x"), P(2, "y")};
    p0[1].confidence = 0.5;
    p0[1].window_confidence = 12.5;
    p0[1].cost = 7;
    es_probe p2[] = {P(3, "z"), P(4, NULL), P(9, "x")};
    es_sample s[] = {S("x", 10), S("y", 20), S("z", 30)};
    s[0].probes = p0;
    s[0].n_probes = 2;
    s[2].probes = p2;
    s[2].n_probes = 3;
    s[1].confidence = 0.25;
    s[0].text = "text zero";
    const char *gold[] = {"x"};
    es_item a = {.id = "A", .task = "ta", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold,
                 .n_samples = 3, .samples = s};
    es_probe q[] = {P(5, "k")};
    es_sample s2[] = {S("k", 6)};
    s2[0].probes = q;
    s2[0].n_probes = 1;
    es_item b = {.id = "B", .task = "tb", .answer_type = ES_ANSWER_CHOICE, .n_gold = 1, .gold = gold,
                 .n_samples = 1, .samples = s2};
    assert_int_equal(es_traceset_add(ts, &a, NULL), ES_OK);
    assert_int_equal(es_traceset_add(ts, &b, NULL), ES_OK);
    assert_int_equal(es_traceset_n_items(ts), 2);
    assert_int_equal(es_traceset_n_samples(ts), 4);
    assert_int_equal(es_traceset_n_probes(ts), 6);

    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    assert_string_equal(v.id, "A");
    assert_string_equal(v.task, "ta");
    assert_int_equal(v.tokens[0], 10);
    assert_int_equal(v.tokens[2], 30);
    assert_true(isnan(v.confidence[0]));
    assert_true(v.confidence[1] == 0.25f);
    /* offsets index the set-wide probe arrays */
    const uint32_t off[] = {0, 2, 2, 5};
    for (int i = 0; i < 4; i++) assert_int_equal(v.probe_off[i], off[i]);
    const uint32_t at[] = {1, 2, 3, 4, 9};
    for (int i = 0; i < 5; i++) assert_int_equal(v.probe_at[i], at[i]);
    assert_int_equal(v.probe_cost[0], -1);
    assert_int_equal(v.probe_cost[1], 7);
    assert_true(isnan(v.probe_confidence[0]));
    assert_true(v.probe_confidence[1] == 0.5f);
    assert_true(v.probe_window_confidence[1] == 12.5f);
    assert_true(isnan(v.probe_window_confidence[0]));
    assert_int_equal(v.probe_answer[3], ES_NULL_ANSWER);
    assert_int_equal(v.probe_answer[4], v.answer[0]); /* "x" */
    assert_non_null(v.text);
    assert_string_equal(v.text[0], "text zero");
    assert_null(v.text[1]);

    assert_int_equal(es_traceset_item(ts, 1, &v), ES_OK);
    assert_string_equal(v.id, "B");
    assert_int_equal(v.answer_type, ES_ANSWER_CHOICE);
    assert_int_equal(v.probe_off[0], 5);
    assert_int_equal(v.probe_off[1], 6);
    assert_int_equal(v.probe_at[5], 5);
    assert_int_equal(v.answer[0], 1); /* ids restart per item */
    assert_int_equal(v.probe_answer[5], 1);

    assert_int_equal(es_traceset_item(ts, 2, &v), ES_ERANGE);
    es_traceset_free(ts);
}

static void test_bad_adds_roll_back(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    es_sample s[] = {S("x", 1), S("y", 2)};
    const char *gold[] = {"x"};
    es_item it = {.id = "dup", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold,
                  .n_samples = 2, .samples = s};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    es_error err = {0};
    assert_int_equal(es_traceset_add(ts, &it, &err), ES_EFORMAT);
    assert_string_equal(err.field, "id");
    assert_non_null(strstr(err.msg, "duplicate"));
    assert_int_equal(es_traceset_n_items(ts), 1);
    assert_int_equal(es_traceset_n_samples(ts), 2);
    /* no samples, no gold, no id */
    es_item empty = it;
    empty.id = "e";
    empty.n_samples = 0;
    assert_int_equal(es_traceset_add(ts, &empty, &err), ES_EFORMAT);
    assert_string_equal(err.field, "samples");
    es_item nogold = it;
    nogold.id = "g";
    nogold.n_gold = 0;
    assert_int_equal(es_traceset_add(ts, &nogold, &err), ES_EFORMAT);
    assert_string_equal(err.field, "gold");
    es_item noid = it;
    noid.id = NULL;
    assert_int_equal(es_traceset_add(ts, &noid, &err), ES_EFORMAT);
    assert_string_equal(err.field, "id");
    /* the set is still consistent: a new item lands right after the first */
    es_sample s2[] = {S("z", 5)};
    es_item next = {.id = "next", .task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold,
                    .n_samples = 1, .samples = s2};
    assert_int_equal(es_traceset_add(ts, &next, NULL), ES_OK);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 1, &v), ES_OK);
    assert_string_equal(v.id, "next");
    assert_int_equal(v.tokens[0], 5);
    assert_int_equal(v.n_answers, 2);
    assert_string_equal(v.answer_raw[1], "z");
    assert_int_equal(es_traceset_n_samples(ts), 3);
    /* many ids: the id table rehashes and still finds duplicates */
    for (int i = 0; i < 5000; i++) {
        char id[32];
        snprintf(id, sizeof id, "id-%d", i);
        it.id = id;
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    it.id = "id-1234";
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_EFORMAT);
    assert_int_equal(es_traceset_n_items(ts), 5002);
    es_traceset_free(ts);
}

static void test_bytes(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    size_t b0 = es_traceset_bytes(ts);
    assert_true(b0 > 0);
    es_sample s[64];
    for (int i = 0; i < 64; i++) s[i] = (es_sample)S(i % 2 ? "odd" : "even", (uint32_t)i);
    const char *gold[] = {"odd"};
    es_item it = {.task = "t", .answer_type = ES_ANSWER_TEXT, .n_gold = 1, .gold = gold, .n_samples = 64,
                  .samples = s};
    for (int i = 0; i < 100; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%d", i);
        it.id = id;
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    size_t b1 = es_traceset_bytes(ts);
    /* at least the per-sample arrays (answer, tokens, confidence, probe offset) */
    assert_true(b1 > b0);
    assert_true(b1 >= 6400 * 16);
    /* and not absurdly more: 6400 short samples in well under 10 MB */
    assert_true(b1 < 10u << 20);
    es_traceset_free(ts);

    /* a real file, texts dropped: the set must be smaller than the file */
    char path[1024];
    snprintf(path, sizeof path, "%s/traces/esc_last_letters_gpt35_k40.jsonl", es_ref_data_dir());
    struct stat sb;
    if (stat(path, &sb)) {
        print_message("shared data absent (%s): skipping the file part\n", path);
        return;
    }
    assert_int_equal(es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, NULL), ES_OK);
    size_t b = es_traceset_bytes(ts);
    print_message("esc_last_letters: %zu bytes in memory for a %lld-byte file (%.2fx)\n", b,
                  (long long)sb.st_size, (double)b / (double)sb.st_size);
    assert_true(b >= es_traceset_n_samples(ts) * 16);
    assert_true(b < (size_t)sb.st_size);
    es_traceset_free(ts);
}

/* The spelling shown for an answer is the samples' most common one. */
static void test_spelling_most_common(void **state)
{
    es_traceset *ts;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    /* "18" came first, "18.0" is written twice */
    const char *gold18[] = {"18"};
    es_sample n[] = {S("18", 1), S("18.0", 2), S("$18", 3), S("18.0", 4)};
    es_item in = {.id = "n", .task = "t", .answer_type = ES_ANSWER_NUMBER, .n_gold = 1, .gold = gold18,
                  .n_samples = 4, .samples = n};
    assert_int_equal(es_traceset_add(ts, &in, NULL), ES_OK);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    assert_int_equal(v.n_answers, 2);
    assert_string_equal(v.answer_raw[1], "18.0");
    const char *gold[] = {"\\frac{9}{100}"};
    es_probe pr[] = {P(1, "0.50"), P(2, "9/100"), P(3, "9/100"), P(4, "9/100")};
    es_sample s[] = {S("0.09", 1), S("\\frac{9}{100}", 2), S("0.09", 3), S("\\frac{9}{100}", 4),
                     S("\\frac{9}{100}", 5), S(NULL, 6), S("x", 7), S("X", 8)};
    s[6].probes = pr;
    s[6].n_probes = 4;
    es_item it = {.id = "q", .task = "t", .answer_type = ES_ANSWER_MATH, .n_gold = 1, .gold = gold,
                  .n_samples = 8, .samples = s};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    assert_int_equal(es_traceset_item(ts, 1, &v), ES_OK);
    assert_int_equal(v.n_answers, 4);   /* null, 0.09, x, 0.5 */
    assert_int_equal(v.answer[0], 1);
    assert_int_equal(v.answer[1], 1);
    assert_int_equal(v.answer[5], ES_NULL_ANSWER);
    assert_string_equal(v.answer_key[1], "0.09");
    /* 3 against 2, though "0.09" came first; probes' spellings do not count */
    assert_string_equal(v.answer_raw[1], "\\frac{9}{100}");
    assert_int_equal(v.correct[1], 1);
    assert_null(v.answer_raw[ES_NULL_ANSWER]);
    assert_string_equal(v.answer_raw[2], "x");   /* 1 to 1: the first seen */
    assert_string_equal(v.answer_raw[3], "0.50");   /* only a probe said it */
    es_traceset_free(ts);
}

/* The view of item `id` of shared file `name`, loaded into *ts; 0 when the
 * data is absent. */
static int real_item(const char *name, const char *id, es_traceset **ts, es_item_view *v)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/traces/%s.jsonl", es_ref_data_dir(), name);
    struct stat sb;
    if (stat(path, &sb)) {
        print_message("shared data absent (%s): skipping\n", path);
        return 0;
    }
    es_error err = {0};
    if (es_traceset_load(path, ES_READ_NO_TEXT, ts, NULL, &err)) fail_msg("%s: %s", path, err.msg);
    for (size_t i = 0; i < es_traceset_n_items(*ts); i++) {
        assert_int_equal(es_traceset_item(*ts, i, v), ES_OK);
        if (!strcmp(v->id, id)) return 1;
    }
    fail_msg("%s: no item %s", path, id);
    return 0;
}

/* A real item whose samples spell one date two ways: 6 write "04/26/1969"
 * first, 14 write "4/26/1969"; a decision shows the latter. */
static void test_real_spelling(void **state)
{
    es_traceset *ts;
    es_item_view v;
    if (!real_item("mot_gpt35_date_cot1", "mot-052", &ts, &v)) skip();
    assert_string_equal(v.answer_key[v.answer[0]], "04/26/1969");
    assert_string_equal(v.answer_raw[v.answer[0]], "4/26/1969");
    es_traceset_free(ts);
}

/* Math answers of the shared files that the text key got wrong. */
static void test_real_math(void **state)
{
    es_traceset *ts;
    es_item_view v;
    /* 38 "0.09" then 42 "\\frac{9}{100}" are one correct answer, shown in
     * its most common spelling */
    if (!real_item("boinf_math500_Qwen3-14B_k80", "boinf-math500-326", &ts, &v)) skip();
    assert_string_equal(v.answer_key[v.answer[0]], "0.09");
    for (uint32_t i = 0; i < v.n_samples; i++) assert_int_equal(v.answer[i], v.answer[0]);
    assert_int_equal(v.correct[v.answer[0]], 1);
    assert_string_equal(v.answer_raw[v.answer[0]], "\\frac{9}{100}");
    es_traceset_free(ts);
    /* [2,\\infty) is not the gold (2,\\infty), which the text key merged */
    if (!real_item("boinf_math500_EXAONE-Deep-32B_k80", "boinf-math500-184", &ts, &v)) skip();
    int open = 0, closed = 0;
    for (uint32_t a = 0; a < v.n_answers; a++) {
        if (v.answer_raw[a] && !strcmp(v.answer_raw[a], "(2,\\infty)")) open = 1, assert_int_equal(v.correct[a], 1);
        if (v.answer_raw[a] && !strcmp(v.answer_raw[a], "[2,\\infty)")) closed = 1, assert_int_equal(v.correct[a], 0);
    }
    assert_true(open && closed);
    es_traceset_free(ts);
    /* 1-\\sqrt{19} and 1+\\sqrt{19} are two answers */
    if (!real_item("boinf_math500_EXAONE-Deep-32B_k80", "boinf-math500-096", &ts, &v)) skip();
    int minus = -1, plus = -1;
    for (uint32_t a = 0; a < v.n_answers; a++) {
        if (v.answer_raw[a] && !strcmp(v.answer_raw[a], "1-\\sqrt{19}")) minus = (int)a;
        if (v.answer_raw[a] && !strcmp(v.answer_raw[a], "1+\\sqrt{19}")) plus = (int)a;
    }
    assert_true(minus >= 0 && plus >= 0 && minus != plus);
    es_traceset_free(ts);
}

/* Dates of the shared files that the M/D/YYYY-only key got wrong. */
static void test_real_dates(void **state)
{
    es_traceset *ts;
    es_item_view v;
    /* "05/08/2021." (sample 0) and 18 "05/08/2021" are one correct answer,
     * shown without the period */
    if (!real_item("mot_gpt35_date_cot1_t08", "mot-007", &ts, &v)) skip();
    assert_int_equal(v.n_answers, 2);   /* the null answer and the date */
    assert_int_equal(v.answer[0], 1);
    assert_int_equal(v.correct[1], 1);
    assert_string_equal(v.answer_raw[1], "05/08/2021");
    es_traceset_free(ts);
    /* "Jan 22, 2011" (sample 24) is the gold 01/22/2011 */
    if (!real_item("mot_gpt35_date_cot1_40", "mot-171", &ts, &v)) skip();
    assert_int_equal(v.answer[24], v.answer[8]);   /* sample 8 says "01/22/2011" */
    assert_string_equal(v.answer_key[v.answer[24]], "01/22/2011");
    assert_int_equal(v.correct[v.answer[24]], 1);
    es_traceset_free(ts);
}

/* Numbers of the shared files that the exact-decimal key got wrong. */
static void test_real_numbers(void **state)
{
    es_traceset *ts;
    es_item_view v;
    /* 104 in mathematical bold digits (sample 73) is the gold 104 */
    if (!real_item("boinf_aime2024_Phi-4-reasoning_k160", "boinf-aime2024-027", &ts, &v)) skip();
    assert_string_equal(v.answer_key[v.answer[73]], "104");
    assert_int_equal(v.correct[v.answer[73]], 1);
    es_traceset_free(ts);
    /* a program's float noise, -80.00000000000001 (sample 3) */
    if (!real_item("cotuq_llama31_8b_cod_gsm8k_k5", "cotuq-cod-gsm8k-temp_407", &ts, &v)) skip();
    assert_string_equal(v.answer_key[v.answer[3]], "-80");
    es_traceset_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interning_order),
        cmocka_unit_test(test_null_never_correct),
        cmocka_unit_test(test_gold_list),
        cmocka_unit_test(test_views_and_probe_offsets),
        cmocka_unit_test(test_bad_adds_roll_back),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_spelling_most_common),
        cmocka_unit_test(test_real_spelling),
        cmocka_unit_test(test_real_numbers),
        cmocka_unit_test(test_real_dates),
        cmocka_unit_test(test_real_math),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
