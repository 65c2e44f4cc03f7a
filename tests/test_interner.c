/* test_interner.c - answer -> id interning with fixed capacity; id 0
 * (ES_NULL_ANSWER) is the null answer's, real answers 1, 2, ... */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "earlystop.h"

static es_interner *make(es_answer_type t, uint32_t max_answers, size_t max_key_bytes)
{
    es_interner *in = NULL;
    assert_int_equal(es_interner_new(t, max_answers, max_key_bytes, &in), ES_OK);
    assert_non_null(in);
    return in;
}

static void test_first_appearance_order(void **state)
{
    (void)state;
    es_interner *in = make(ES_ANSWER_NUMBER, 8, 64);
    /* id 0 is the null answer's from the start: nothing else was interned */
    assert_int_equal(es_interner_count(in), 1);
    assert_int_equal(es_interner_intern(in, "5"), 1);
    assert_int_equal(es_interner_intern(in, "$5.00"), 1);   /* same value */
    assert_int_equal(es_interner_intern(in, "7"), 2);
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER); /* null is always id 0 */
    assert_int_equal(es_interner_intern(in, "1,000"), 3);  /* null took no new id */
    assert_int_equal(es_interner_intern(in, "5"), 1);
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER);
    assert_int_equal(es_interner_intern(in, "1000.0"), 3);
    assert_int_equal(es_interner_intern(in, ""), 4);        /* empty is not null */
    assert_int_equal(es_interner_count(in), 5);
    assert_null(es_interner_key(in, ES_NULL_ANSWER));
    assert_string_equal(es_interner_key(in, 1), "5");
    assert_string_equal(es_interner_key(in, 2), "7");
    assert_string_equal(es_interner_key(in, 3), "1000");
    assert_string_equal(es_interner_key(in, 4), "");
    assert_null(es_interner_key(in, 5));
    assert_null(es_interner_key(in, -1));
    es_interner_free(in);
}

static void test_types(void **state)
{
    (void)state;
    es_interner *in = make(ES_ANSWER_TEXT, 4, 64);
    assert_int_equal(es_interner_intern(in, "The Answer"), 1);
    assert_int_equal(es_interner_intern(in, "answer!"), 1);
    assert_string_equal(es_interner_key(in, 1), "answer");
    es_interner_free(in);

    in = make(ES_ANSWER_DATE, 4, 64);
    assert_int_equal(es_interner_intern(in, "5/1/2021"), 1);
    assert_int_equal(es_interner_intern(in, "05/01/2021"), 1);
    assert_int_equal(es_interner_intern(in, "05/02/2021"), 2);
    assert_string_equal(es_interner_key(in, 1), "05/01/2021");
    es_interner_free(in);

    in = make(ES_ANSWER_CHOICE, 4, 64);
    assert_int_equal(es_interner_intern(in, "(B)"), 1);
    assert_int_equal(es_interner_intern(in, "b."), 1);
    assert_int_equal(es_interner_intern(in, "A"), 2);
    es_interner_free(in);
}

/* max_answers counts the null answer's id too: 3 ids hold null and two
 * real answers.  The null answer never needs room, even when full. */
static void test_full_answers(void **state)
{
    (void)state;
    es_interner *in = make(ES_ANSWER_TEXT, 3, 64);
    assert_int_equal(es_interner_intern(in, "x"), 1);
    assert_int_equal(es_interner_intern(in, "y"), 2);
    assert_int_equal(es_interner_intern(in, "z"), ES_ERANGE);
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER);
    /* known answers still resolve when full */
    assert_int_equal(es_interner_intern(in, "Y"), 2);
    assert_int_equal(es_interner_intern(in, "x"), 1);
    assert_int_equal(es_interner_count(in), 3);
    es_interner_free(in);
    /* one id: the null answer's alone */
    in = make(ES_ANSWER_TEXT, 1, 64);
    assert_int_equal(es_interner_count(in), 1);
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER);
    assert_int_equal(es_interner_intern(in, "x"), ES_ERANGE);
    es_interner_free(in);
}

static void test_full_key_bytes(void **state)
{
    (void)state;
    es_interner *in = make(ES_ANSWER_TEXT, 16, 5);
    assert_int_equal(es_interner_intern(in, "abc"), 1);
    assert_int_equal(es_interner_intern(in, "de"), 2);      /* 5 key bytes used */
    assert_int_equal(es_interner_intern(in, "f"), ES_ERANGE);
    assert_int_equal(es_interner_intern(in, "!"), 3);       /* key "" takes no key bytes */
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER); /* nor does the null answer */
    assert_int_equal(es_interner_intern(in, "ABC"), 1);
    assert_int_equal(es_interner_intern(in, "The DE"), 2);
    /* a key longer than all key bytes can never be stored */
    assert_int_equal(es_interner_intern(in, "abcdefgh"), ES_ERANGE);
    assert_int_equal(es_interner_count(in), 4);
    es_interner_free(in);

    in = make(ES_ANSWER_TEXT, 4, 0);
    assert_int_equal(es_interner_intern(in, "The"), 1);     /* key "" fits */
    assert_int_equal(es_interner_intern(in, "b"), ES_ERANGE);
    es_interner_free(in);
}

static void test_long_answer(void **state)
{
    (void)state;
    size_t n = 1u << 20;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'q', n);
    s[n] = '\0';
    es_interner *in = make(ES_ANSWER_TEXT, 4, 64);
    assert_int_equal(es_interner_intern(in, s), ES_ERANGE);
    es_interner_free(in);
    in = make(ES_ANSWER_TEXT, 4, n);
    assert_int_equal(es_interner_intern(in, s), 1);
    s[0] = 'Q';
    assert_int_equal(es_interner_intern(in, s), 1);
    assert_int_equal(strlen(es_interner_key(in, 1)), n);
    es_interner_free(in);
    free(s);
}

static void test_reset(void **state)
{
    (void)state;
    es_interner *in = make(ES_ANSWER_TEXT, 2, 8);
    assert_int_equal(es_interner_intern(in, "x"), 1);
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER);
    assert_int_equal(es_interner_intern(in, "y"), ES_ERANGE);
    es_interner_reset(in);
    assert_int_equal(es_interner_count(in), 1);   /* the null answer's id stays */
    assert_null(es_interner_key(in, 1));
    /* capacity is back, order restarts from the new first appearance */
    assert_int_equal(es_interner_intern(in, NULL), ES_NULL_ANSWER);
    assert_int_equal(es_interner_intern(in, "y"), 1);
    assert_int_equal(es_interner_intern(in, "x"), ES_ERANGE);
    assert_null(es_interner_key(in, ES_NULL_ANSWER));
    assert_string_equal(es_interner_key(in, 1), "y");
    es_interner_reset(in);
    assert_int_equal(es_interner_intern(in, "12345678"), 1);  /* all 8 key bytes again */
    es_interner_free(in);
}

static void test_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    es_interner *in = make(ES_ANSWER_NUMBER, N + 1, N * 8);
    char buf[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            snprintf(buf, sizeof buf, "%d.0", i * 7);
            assert_int_equal(es_interner_intern(in, buf), i + 1);
        }
        assert_int_equal(es_interner_count(in), N + 1);
        for (int i = N - 1; i >= 0; i--) {
            snprintf(buf, sizeof buf, "%d", i * 7);
            assert_int_equal(es_interner_intern(in, buf), i + 1);
            assert_string_equal(es_interner_key(in, i + 1), buf);
        }
        assert_int_equal(es_interner_intern(in, "-1"), ES_ERANGE);
        es_interner_reset(in);
    }
    es_interner_free(in);
}

static void test_bad_args(void **state)
{
    (void)state;
    es_interner *in = (es_interner *)&in;
    assert_int_equal(es_interner_new(ES_ANSWER_TEXT, 4, 16, NULL), ES_EINVAL);
    assert_int_equal(es_interner_new(ES_ANSWER_TEXT, 0, 16, &in), ES_EINVAL);
    assert_null(in);
    assert_int_equal(es_interner_new((es_answer_type)9, 4, 16, &in), ES_EINVAL);
    assert_int_equal(es_interner_new(ES_ANSWER_TEXT, UINT32_MAX, 16, &in), ES_ERANGE);
    assert_int_equal(es_interner_new(ES_ANSWER_TEXT, 4, SIZE_MAX, &in), ES_ERANGE);
    assert_int_equal(es_interner_new(ES_ANSWER_TEXT, 4, SIZE_MAX - 8, &in), ES_ERANGE);
    assert_null(in);
    assert_int_equal(es_interner_intern(NULL, "x"), ES_EINVAL);
    assert_null(es_interner_key(NULL, 0));
    assert_int_equal(es_interner_count(NULL), 0);
    es_interner_reset(NULL);
    es_interner_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_appearance_order),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_full_answers),
        cmocka_unit_test(test_full_key_bytes),
        cmocka_unit_test(test_long_answer),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
