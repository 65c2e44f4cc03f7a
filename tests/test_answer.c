/* test_answer.c - answer types, canonical keys, equality and token F1. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "earlystop.h"

/* Canonical key of s under t, into a static-free caller buffer. */
static const char *key(es_answer_type t, const char *s, char *buf, size_t cap)
{
    int n = es_answer_normalize(t, s, strlen(s), buf, cap);
    assert_true(n >= 0);
    assert_int_equal((size_t)n, strlen(buf));
    return buf;
}

#define ASSERT_KEY(t, s, want)                                       \
    do {                                                             \
        char kb_[256];                                               \
        assert_string_equal(key((t), (s), kb_, sizeof kb_), (want)); \
    } while (0)

#define ASSERT_EQ(t, a, b) assert_int_equal(es_answer_equal((t), (a), (b)), 1)
#define ASSERT_NE(t, a, b) assert_int_equal(es_answer_equal((t), (a), (b)), 0)

static void test_type_names(void **state)
{
    (void)state;
    es_answer_type t = ES_ANSWER_TEXT;
    const char *names[] = {"text", "number", "date", "choice"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(es_answer_type_parse(names[i], &t), ES_OK);
        assert_int_equal(t, i);
        assert_string_equal(es_answer_type_name(t), names[i]);
    }
    assert_int_equal(es_answer_type_parse("Number", &t), ES_OK);
    assert_int_equal(t, ES_ANSWER_NUMBER);
    assert_int_equal(es_answer_type_parse("num", &t), ES_EINVAL);
    assert_int_equal(es_answer_type_parse("numbers", &t), ES_EINVAL);
    assert_int_equal(es_answer_type_parse("", &t), ES_EINVAL);
    assert_int_equal(es_answer_type_parse(NULL, &t), ES_EINVAL);
    assert_int_equal(es_answer_type_parse("text", NULL), ES_EINVAL);
    assert_string_equal(es_answer_type_name((es_answer_type)42), "unknown");
}

static void test_text(void **state)
{
    (void)state;
    ASSERT_KEY(ES_ANSWER_TEXT, "The Answer", "answer");
    ASSERT_EQ(ES_ANSWER_TEXT, "The Answer", "answer");
    ASSERT_KEY(ES_ANSWER_TEXT, "  Hello,\t  World!\n", "hello world");
    ASSERT_KEY(ES_ANSWER_TEXT, "an apple a day", "apple day");
    ASSERT_KEY(ES_ANSWER_TEXT, "theater Anna", "theater anna");   /* whole words only */
    ASSERT_KEY(ES_ANSWER_TEXT, "(a) don't", "dont");               /* SQuAD deletes punctuation */
    ASSERT_KEY(ES_ANSWER_TEXT, "yajo.", "yajo");
    ASSERT_KEY(ES_ANSWER_TEXT, "- - -", "");
    ASSERT_NE(ES_ANSWER_TEXT, "yajo", "yaj");
    ASSERT_NE(ES_ANSWER_TEXT, "new york", "newyork");
}

static void test_empty(void **state)
{
    (void)state;
    char buf[8] = "xxxxxxx";
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "", 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    ASSERT_KEY(ES_ANSWER_TEXT, "   ", "");
    ASSERT_KEY(ES_ANSWER_TEXT, "the", "");
    ASSERT_KEY(ES_ANSWER_NUMBER, "", "");
    ASSERT_KEY(ES_ANSWER_DATE, "", "");
    ASSERT_KEY(ES_ANSWER_CHOICE, "", "");
    ASSERT_EQ(ES_ANSWER_TEXT, "", "");
    ASSERT_EQ(ES_ANSWER_TEXT, "", " the ");
    ASSERT_NE(ES_ANSWER_TEXT, "", "x");
    /* an empty answer is not the null answer */
    ASSERT_NE(ES_ANSWER_TEXT, "", NULL);
    ASSERT_NE(ES_ANSWER_NUMBER, NULL, "");
}

static void test_null_never_equal(void **state)
{
    (void)state;
    for (int t = 0; t < 4; t++) {
        ASSERT_NE((es_answer_type)t, NULL, NULL);
        ASSERT_NE((es_answer_type)t, "5", NULL);
        ASSERT_NE((es_answer_type)t, NULL, "5");
    }
    ASSERT_NE((es_answer_type)9, "5", "5");   /* unknown type */
}

static void test_non_ascii(void **state)
{
    (void)state;
    ASSERT_KEY(ES_ANSWER_TEXT, "M\xc3\xa9yl", "m\xc3\xa9yl");
    /* non-ASCII upper case is left as is: only ASCII bytes change */
    ASSERT_KEY(ES_ANSWER_TEXT, "\xc3\x89T\xc3\x89!", "\xc3\x89t\xc3\x89");
    ASSERT_KEY(ES_ANSWER_TEXT, "Na\xc3\xafve  caf\xc3\xa9.", "na\xc3\xafve caf\xc3\xa9");
    ASSERT_KEY(ES_ANSWER_TEXT, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    /* no-break space folds like a space */
    ASSERT_KEY(ES_ANSWER_TEXT, "new\xc2\xa0york", "new york");
    ASSERT_EQ(ES_ANSWER_TEXT, "M\xc3\xa9yl", "m\xc3\xa9yl!");
    ASSERT_NE(ES_ANSWER_TEXT, "m\xc3\xa9yl", "meyl");
    /* invalid UTF-8 and lone lead bytes pass through, no crash */
    ASSERT_KEY(ES_ANSWER_TEXT, "\xff\xfe \xc2", "\xff\xfe \xc2");
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xe2\x88\x92" "3", "-3");   /* U+2212 minus */
    ASSERT_KEY(ES_ANSWER_NUMBER, "5\xe2\x82\xac", "5\xe2\x82\xac");   /* "5 euro sign": text */
}

static void test_embedded_control_bytes(void **state)
{
    (void)state;
    char buf[16];
    /* a NUL inside the n bytes counts as white space: keys never hold NULs */
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "ab\0cd", 5, buf, sizeof buf), 5);
    assert_string_equal(buf, "ab cd");
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "The Answer", 3, buf, sizeof buf), 0);
}

static void test_number(void **state)
{
    (void)state;
    ASSERT_EQ(ES_ANSWER_NUMBER, "$1,000.00", "1000");
    ASSERT_KEY(ES_ANSWER_NUMBER, "$1,000.00", "1000");
    ASSERT_EQ(ES_ANSWER_NUMBER, "18.0", "18");
    ASSERT_KEY(ES_ANSWER_NUMBER, "18.0", "18");
    ASSERT_EQ(ES_ANSWER_NUMBER, "-0", "0");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-0", "0");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-0.000", "0");
    ASSERT_EQ(ES_ANSWER_NUMBER, "0.50", ".5");
    ASSERT_EQ(ES_ANSWER_NUMBER, ".5", "0.5");
    ASSERT_KEY(ES_ANSWER_NUMBER, ".5", "0.5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "007", "7");
    ASSERT_KEY(ES_ANSWER_NUMBER, "100", "100");
    ASSERT_KEY(ES_ANSWER_NUMBER, "0.001", "0.001");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-12.340", "-12.34");
    ASSERT_KEY(ES_ANSWER_NUMBER, " +5 ", "5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "18.", "18");
    ASSERT_KEY(ES_ANSWER_NUMBER, "18.0.", "18");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-$5", "-5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "$ -5", "-5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "20%", "20");
    ASSERT_NE(ES_ANSWER_NUMBER, "18", "18.5");
    ASSERT_NE(ES_ANSWER_NUMBER, "5", "-5");
    ASSERT_NE(ES_ANSWER_NUMBER, "1000", "100");
}

static void test_number_exact(void **state)
{
    (void)state;
    /* no double rounding: 0.1 stays 0.1, long values keep every digit */
    ASSERT_KEY(ES_ANSWER_NUMBER, "0.1", "0.1");
    ASSERT_KEY(ES_ANSWER_NUMBER, "123456789012345678901234567890.50",
               "123456789012345678901234567890.5");
    ASSERT_NE(ES_ANSWER_NUMBER, "9007199254740993", "9007199254740992");
    ASSERT_NE(ES_ANSWER_NUMBER, "0.30000000000000001", "0.3");
}

static void test_number_exponent(void **state)
{
    (void)state;
    ASSERT_KEY(ES_ANSWER_NUMBER, "1e3", "1000");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1.5E-2", "0.015");
    ASSERT_KEY(ES_ANSWER_NUMBER, "12.5e+1", "125");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1234e-2", "12.34");
    ASSERT_KEY(ES_ANSWER_NUMBER, "0e5", "0");
    ASSERT_EQ(ES_ANSWER_NUMBER, "2.5e2", "250.0");
    /* malformed or absurd exponents are not numbers: text keys */
    ASSERT_KEY(ES_ANSWER_NUMBER, "5e", "5e");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1e999999", "1e999999");
}

static void test_number_latex(void **state)
{
    (void)state;
    /* forms found in the GSM8K think traces: the README's reference figures
     * count them wrong, so they are not numbers and keep their spelling */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\\7\\!425.00", "\\7\\!425.00");
    ASSERT_KEY(ES_ANSWER_NUMBER, "20\\%", "20\\%");
    ASSERT_NE(ES_ANSWER_NUMBER, "\\125", "125");
    ASSERT_NE(ES_ANSWER_NUMBER, "-10\\!000", "-10000");
    ASSERT_EQ(ES_ANSWER_NUMBER, "\\125", " \\125 ");
}

static void test_number_fallback(void **state)
{
    (void)state;
    /* not a number: the answer as written, trimmed and ASCII lower-cased */
    ASSERT_KEY(ES_ANSWER_NUMBER, " abc\n", "abc");
    ASSERT_EQ(ES_ANSWER_NUMBER, "twelve", "  twelve ");
    ASSERT_EQ(ES_ANSWER_NUMBER, "twelve", "Twelve");
    ASSERT_NE(ES_ANSWER_NUMBER, "twelve", "12");
    ASSERT_KEY(ES_ANSWER_NUMBER, "12 apples", "12 apples");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1.2.3", "1.2.3");
    ASSERT_KEY(ES_ANSWER_NUMBER, "3 4", "3 4");   /* two numbers, not 34 */
    ASSERT_KEY(ES_ANSWER_NUMBER, ".", ".");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-", "-");
    ASSERT_NE(ES_ANSWER_NUMBER, "5!", "5");
}

static void test_raw_key_bytes(void **state)
{
    (void)state;
    char buf[16];
    /* a NUL inside a raw key becomes a space: keys stay C strings */
    assert_int_equal(es_answer_normalize(ES_ANSWER_DATE, "a\0b ", 4, buf, sizeof buf), 3);
    assert_string_equal(buf, "a b");
    assert_int_equal(es_answer_normalize(ES_ANSWER_CHOICE, "\xc2\xa0x y\xc2\xa0", 7, buf,
                                         sizeof buf), 3);
    assert_string_equal(buf, "x y");
}

static void test_date(void **state)
{
    (void)state;
    ASSERT_EQ(ES_ANSWER_DATE, "5/1/2021", "05/01/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "5/1/2021", "05/01/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "12/31/1899", "12/31/1899");
    ASSERT_KEY(ES_ANSWER_DATE, " 11/11/2019\n", "11/11/2019");
    ASSERT_EQ(ES_ANSWER_DATE, "6/08/2019", "06/8/2019");
    ASSERT_NE(ES_ANSWER_DATE, "05/01/2021", "01/05/2021");
    ASSERT_NE(ES_ANSWER_DATE, "05/01/2021", "05/01/2020");
}

static void test_date_fallback(void **state)
{
    (void)state;
    /* values are not range checked, as in the reference figures */
    ASSERT_KEY(ES_ANSWER_DATE, "1/45/2021", "01/45/2021");
    /* not dates: the answer as written, trimmed and lower-cased */
    ASSERT_KEY(ES_ANSWER_DATE, "5/1/21", "5/1/21");            /* 2-digit year */
    ASSERT_KEY(ES_ANSWER_DATE, "11/11/2019.", "11/11/2019.");
    ASSERT_KEY(ES_ANSWER_DATE, "2021-05-01", "2021-05-01");
    ASSERT_KEY(ES_ANSWER_DATE, "123/1/2021", "123/1/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "Tomorrow is 11/13/2019.", "tomorrow is 11/13/2019.");
    ASSERT_NE(ES_ANSWER_DATE, "Tomorrow is 11/13/2019.", "11/13/2019");
    ASSERT_NE(ES_ANSWER_DATE, "Tomorrow is 11/13/2019.", "tomorrow is 11/13/2019");
    ASSERT_EQ(ES_ANSWER_DATE, "No answer!", " No answer!");
}

static void test_choice(void **state)
{
    (void)state;
    const char *bs[] = {"(B)", "B", "b", "B.", "(b) something", "[B]", "b)", " B: text"};
    for (size_t i = 0; i < sizeof bs / sizeof *bs; i++) {
        ASSERT_KEY(ES_ANSWER_CHOICE, bs[i], "b");
        ASSERT_EQ(ES_ANSWER_CHOICE, bs[i], "(B)");
    }
    ASSERT_KEY(ES_ANSWER_CHOICE, "A", "a");   /* a letter, not an article */
    ASSERT_KEY(ES_ANSWER_CHOICE, "(a) an apple", "a");
    ASSERT_NE(ES_ANSWER_CHOICE, "(B)", "(C)");
    ASSERT_KEY(ES_ANSWER_CHOICE, "None of these", "none of these");
    ASSERT_KEY(ES_ANSWER_CHOICE, "BC", "bc");
    ASSERT_NE(ES_ANSWER_CHOICE, "B 42", "b");
}

static void test_normalize_bounds(void **state)
{
    (void)state;
    char buf[8];
    memset(buf, 'x', sizeof buf);
    /* "hello world" needs 12 bytes: ES_ERANGE, nothing written past cap */
    char small[6];
    memset(small, 'x', sizeof small);
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "Hello World", 11, small, 5), ES_ERANGE);
    assert_int_equal(small[5], 'x');
    assert_string_equal(small, "");
    /* exactly len + 1 fits */
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "Hello", 5, buf, 6), 5);
    assert_string_equal(buf, "hello");
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "Hello", 5, buf, 5), ES_ERANGE);
    assert_int_equal(es_answer_normalize(ES_ANSWER_NUMBER, "1e3", 3, buf, 4), ES_ERANGE);
    assert_int_equal(es_answer_normalize(ES_ANSWER_DATE, "5/1/2021", 8, buf, 8), ES_ERANGE);
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "", 0, buf, 0), ES_ERANGE);
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "", 0, NULL, 0), ES_ERANGE);
    /* bad arguments */
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, NULL, 0, buf, 8), ES_EINVAL);
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, "a", 1, NULL, 8), ES_EINVAL);
    assert_int_equal(es_answer_normalize((es_answer_type)7, "a", 1, buf, 8), ES_EINVAL);
    assert_int_equal(es_answer_normalize((es_answer_type)-1, "a", 1, buf, 8), ES_EINVAL);
}

/* n bytes of `unit` repeated, NUL-terminated (heap). */
static char *repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) s[i] = unit[i % u];
    s[n] = '\0';
    return s;
}

static void test_long_answers(void **state)
{
    (void)state;
    const size_t k = 180000, mb = 6 * k;          /* 180000 words, just over 1 MB */
    char *a = repeat("Word, ", mb);
    char *b = repeat("word   ", 7 * k);             /* same words, other spacing */
    char *c = repeat("Word, ", mb);
    c[mb - 3] = 'X';                               /* last word differs */
    ASSERT_EQ(ES_ANSWER_TEXT, a, a);
    ASSERT_EQ(ES_ANSWER_TEXT, a, b);
    ASSERT_NE(ES_ANSWER_TEXT, a, c);
    char buf[16];
    assert_int_equal(es_answer_normalize(ES_ANSWER_TEXT, a, mb, buf, sizeof buf), ES_ERANGE);
    /* 1 MB of digits as a number: exact, no overflow */
    char *d = repeat("9", mb);
    char *e = malloc(mb + 8);
    assert_non_null(e);
    memcpy(e, d, mb);
    strcpy(e + mb, ".000");
    ASSERT_EQ(ES_ANSWER_NUMBER, d, e);
    e[0] = '8';
    ASSERT_NE(ES_ANSWER_NUMBER, d, e);
    /* every type copes with a long input */
    for (int t = 0; t < 4; t++) ASSERT_EQ((es_answer_type)t, a, a);
    assert_true(es_answer_f1(a, a) == 1.0);
    assert_true(es_answer_f1(a, "word") > 0.0);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

static void test_f1(void **state)
{
    (void)state;
    /* pred {cat, sat}, gold {cat, sat, on, mat}: P = 1, R = 1/2 */
    assert_float_equal(es_answer_f1("The cat sat", "cat sat on the mat"), 2.0 / 3.0, 1e-12);
    /* bag of words: x x y vs x y y overlaps in 2 of 3 */
    assert_float_equal(es_answer_f1("x x y", "x y y"), 2.0 / 3.0, 1e-12);
    assert_float_equal(es_answer_f1("Paris!", "paris"), 1.0, 1e-12);
    assert_float_equal(es_answer_f1("b a c", "a b c"), 1.0, 1e-12);
    assert_float_equal(es_answer_f1("london", "paris"), 0.0, 1e-12);
    assert_float_equal(es_answer_f1("", ""), 1.0, 1e-12);
    assert_float_equal(es_answer_f1("the", " "), 1.0, 1e-12);
    assert_float_equal(es_answer_f1("", "paris"), 0.0, 1e-12);
    assert_float_equal(es_answer_f1("paris", ""), 0.0, 1e-12);
    assert_float_equal(es_answer_f1(NULL, "paris"), 0.0, 1e-12);
    assert_float_equal(es_answer_f1("paris", NULL), 0.0, 1e-12);
    assert_float_equal(es_answer_f1(NULL, NULL), 0.0, 1e-12);
    /* prefix tokens are different tokens */
    assert_float_equal(es_answer_f1("ab", "abc"), 0.0, 1e-12);
}

static void test_f1_many_tokens(void **state)
{
    (void)state;
    /* more tokens than the on-stack token array: 100 in pred, 50 shared */
    char pred[1024] = "", gold[1024] = "";
    for (int i = 0; i < 100; i++) {
        char w[16];
        snprintf(w, sizeof w, "w%d ", i);
        strcat(pred, w);
        if (i % 2 == 0) strcat(gold, w);
    }
    /* P = 50/100, R = 50/50 */
    assert_float_equal(es_answer_f1(pred, gold), 2.0 / 3.0, 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_null_never_equal),
        cmocka_unit_test(test_non_ascii),
        cmocka_unit_test(test_embedded_control_bytes),
        cmocka_unit_test(test_number),
        cmocka_unit_test(test_number_exact),
        cmocka_unit_test(test_number_exponent),
        cmocka_unit_test(test_number_latex),
        cmocka_unit_test(test_number_fallback),
        cmocka_unit_test(test_raw_key_bytes),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_date_fallback),
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_normalize_bounds),
        cmocka_unit_test(test_long_answers),
        cmocka_unit_test(test_f1),
        cmocka_unit_test(test_f1_many_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
