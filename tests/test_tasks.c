/* test_tasks.c - the generated tasks: determinism, correct golds checked by
 * independent solvers, slips at the stated rate, texts that fit the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "earlystop_lm.h"

enum { N_EXAMPLES = 3000 };

static void test_names_and_types(void **state)
{
    (void)state;
    es_task_kind k;
    assert_int_equal(es_task_parse("last_letters", &k), ES_OK);
    assert_int_equal(k, ES_TASK_LAST_LETTERS);
    assert_int_equal(es_task_parse("date", &k), ES_OK);
    assert_int_equal(es_task_parse("arithmetic", &k), ES_OK);
    assert_int_equal(es_task_parse("gsm8k", &k), ES_EINVAL);
    assert_int_equal(es_task_parse(NULL, &k), ES_EINVAL);
    assert_string_equal(es_task_name(ES_TASK_DATE), "date");
    assert_int_equal(es_task_answer_type(ES_TASK_LAST_LETTERS), ES_ANSWER_TEXT);
    assert_int_equal(es_task_answer_type(ES_TASK_DATE), ES_ANSWER_DATE);
    assert_int_equal(es_task_answer_type(ES_TASK_ARITHMETIC), ES_ANSWER_NUMBER);
}

static void test_deterministic_from_seed(void **state)
{
    (void)state;
    for (int k = 0; k < ES_TASK_COUNT; k++) {
        es_task_example a, b, c;
        assert_int_equal(es_task_make((es_task_kind)k, 7, 3, &a), ES_OK);
        assert_int_equal(es_task_make((es_task_kind)k, 7, 3, &b), ES_OK);
        assert_int_equal(es_task_make((es_task_kind)k, 7, 4, &c), ES_OK);
        assert_string_equal(a.prompt, b.prompt);
        assert_string_equal(a.completion, b.completion);
        assert_string_not_equal(a.prompt, c.prompt);
    }
}

static void test_extract_answer(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(es_task_extract_answer("no cue here", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(es_task_extract_answer("So the answer is 12", out, sizeof out), 0);
    assert_int_equal(es_task_extract_answer("So the answer is 12.\nWait, let me check: "
                                            "So the answer is 13.\n", out, sizeof out), 1);
    assert_string_equal(out, "13");
    assert_int_equal(es_task_extract_answer("So the answer is 04/01/2020.", out, sizeof out), 1);
    assert_string_equal(out, "04/01/2020");
}

/* Independent solvers. */
static int days_in(int m, int y)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return d[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100) || y % 400 == 0));
}

static void solve_date(const char *q, char *out, size_t cap)
{
    int add, m, d, y;
    assert_int_equal(sscanf(q, "What is the date %d days after %d/%d/%d?", &add, &m, &d, &y), 4);
    while (add-- > 0)
        if (++d > days_in(m, y)) { d = 1; if (++m > 12) { m = 1; y++; } }
    snprintf(out, cap, "%02d/%02d/%04d", m, d, y);
}

static void solve_arith(const char *q, char *out, size_t cap)
{
    const char *p = strstr(q, "Compute ");
    assert_non_null(p);
    p += 8;
    while (*p == '(') p++;
    long v = strtol(p, (char **)&p, 10);
    while (*p && *p != '.') {
        char op = *p++;
        long a = strtol(p, (char **)&p, 10);
        v = op == '+' ? v + a : op == '-' ? v - a : v * a;
        if (*p == ')') p++;
    }
    snprintf(out, cap, "%ld", v);
}

static void solve_letters(const char *q, char *out, size_t cap)
{
    const char *p = strchr(q, '"');
    assert_non_null(p);
    size_t n = 0;
    for (p++; *p && *p != '"'; p++)
        if ((p[1] == ' ' || p[1] == '"') && n + 1 < cap) out[n++] = *p;
    out[n] = '\0';
}

static void test_golds_are_right_and_texts_fit(void **state)
{
    (void)state;
    int toks[1024];
    for (int k = 0; k < ES_TASK_COUNT; k++) {
        size_t slips = 0;
        for (uint64_t i = 0; i < N_EXAMPLES; i++) {
            es_task_example ex;
            assert_int_equal(es_task_make((es_task_kind)k, 1, i, &ex), ES_OK);
            char want[64], got[32];
            if (k == ES_TASK_DATE) solve_date(ex.prompt, want, sizeof want);
            else if (k == ES_TASK_ARITHMETIC) solve_arith(ex.prompt, want, sizeof want);
            else solve_letters(ex.prompt, want, sizeof want);
            assert_string_equal(ex.gold, want);
            /* the chain's last answer is the gold, slip or not */
            assert_int_equal(es_task_extract_answer(ex.completion, got, sizeof got), 1);
            assert_string_equal(got, ex.gold);
            if (ex.slipped) {
                slips++;
                assert_non_null(strstr(ex.completion, "Wait, let me check:"));
                assert_non_null(strstr(ex.completion, ", not "));
            }
            int np = es_lm_encode(ex.prompt, toks, 1024), nc = es_lm_encode(ex.completion, toks, 1024);
            assert_true(np > 0 && nc > 0);
            /* the first answer line fits what generation allows (BOS, probe
             * room); re-checks may run past it and are then cut */
            const char *line = strstr(ex.completion, ES_LM_ANSWER_CUE);
            assert_non_null(line);
            size_t upto = (size_t)(strchr(line, '\n') - ex.completion) + 1;
            assert_true(1 + (size_t)np + upto <= 256 - 32);
        }
        double rate = (double)slips / N_EXAMPLES;
        print_message("%s: slip rate %.3f\n", es_task_name((es_task_kind)k), rate);
        /* slips that leave the answer unchanged (a wrong month length with no
         * month change) do not count: the answer-changing rate is lower */
        assert_true(rate > 0.5 * ES_TASK_SLIP_RATE && rate < ES_TASK_SLIP_RATE + 0.03);
    }
}

static void test_rng_streams(void **state)
{
    (void)state;
    es_rng a, b, c;
    es_lm_sample_rng(&a, 1, 2, 3);
    es_lm_sample_rng(&b, 1, 2, 3);
    es_lm_sample_rng(&c, 1, 3, 2);
    uint64_t x = es_rng_u64(&a);
    assert_true(x == es_rng_u64(&b));
    assert_true(x != es_rng_u64(&c));
    double s = 0;
    for (int i = 0; i < 10000; i++) {
        float f = es_rng_float(&a);
        assert_true(f >= 0.0f && f < 1.0f);
        s += f;
        assert_true(es_rng_below(&a, 7) < 7);
    }
    assert_true(s / 10000 > 0.48 && s / 10000 < 0.52);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_types),
        cmocka_unit_test(test_deterministic_from_seed),
        cmocka_unit_test(test_extract_answer),
        cmocka_unit_test(test_golds_are_right_and_texts_fit),
        cmocka_unit_test(test_rng_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
