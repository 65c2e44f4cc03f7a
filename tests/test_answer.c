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
    const char *names[] = {"text", "number", "date", "choice", "math"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(es_answer_type_parse(names[i], &t), ES_OK);
        assert_int_equal(t, i);
        assert_string_equal(es_answer_type_name(t), names[i]);
    }
    assert_int_equal(es_answer_type_parse("Number", &t), ES_OK);
    assert_int_equal(t, ES_ANSWER_NUMBER);
    assert_int_equal(es_answer_type_parse("MATH", &t), ES_OK);
    assert_int_equal(t, ES_ANSWER_MATH);
    assert_int_equal(ES_ANSWER_MATH, 4);
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
    ASSERT_KEY(ES_ANSWER_MATH, "", "");
    ASSERT_KEY(ES_ANSWER_MATH, " \t", "");
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
    for (int t = 0; t < 5; t++) {
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
    /* U+2212 minus is not a sign for Python's float(), hence not here */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xe2\x88\x92" "3", "\xe2\x88\x92" "3");
    ASSERT_KEY(ES_ANSWER_NUMBER, "5\xe2\x82\xac", "5\xe2\x82\xac");   /* "5 euro sign": text */
    /* Unicode white space (ideographic, thin, next line) folds like a space */
    ASSERT_KEY(ES_ANSWER_TEXT, "new\xe3\x80\x80york\xe2\x80\x89" "city\xc2\x85", "new york city");
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xe2\x80\xaf" "12\xe3\x80\x80", "12");
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
    ASSERT_KEY(ES_ANSWER_NUMBER, "-$5", "-5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "$ -5", "-5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "5,$", "5");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1_000.5", "1000.5");   /* Python's float() takes '_' */
    /* not numbers for float(): they keep their spelling, as in the reference */
    ASSERT_KEY(ES_ANSWER_NUMBER, "18.0.", "18.0.");
    ASSERT_KEY(ES_ANSWER_NUMBER, "20%", "20%");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1, 000", "1, 000");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1__0", "1__0");
    ASSERT_KEY(ES_ANSWER_NUMBER, "_1", "_1");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1_", "1_");
    ASSERT_NE(ES_ANSWER_NUMBER, "18", "18.5");
    ASSERT_NE(ES_ANSWER_NUMBER, "5", "-5");
    ASSERT_NE(ES_ANSWER_NUMBER, "1000", "100");
}

/* The value rounded to 6 decimals: program-of-thought float noise is gone. */
static void test_number_six_decimals(void **state)
{
    (void)state;
    /* the examples and a real one (cotuq_llama31_8b_cod_gsm8k_k5,
     * item cotuq-cod-gsm8k-temp_407, sample 3) */
    ASSERT_KEY(ES_ANSWER_NUMBER, "28.000000000000004", "28");
    ASSERT_EQ(ES_ANSWER_NUMBER, "28.000000000000004", "28");
    ASSERT_KEY(ES_ANSWER_NUMBER, "5.000000000000002", "5");
    ASSERT_EQ(ES_ANSWER_NUMBER, "5.000000000000002", "5.0");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-80.00000000000001", "-80");
    ASSERT_KEY(ES_ANSWER_NUMBER, "0.1", "0.1");
    ASSERT_KEY(ES_ANSWER_NUMBER, "0.30000000000000004", "0.3");
    ASSERT_KEY(ES_ANSWER_NUMBER, "2.3333333333", "2.333333");
    ASSERT_KEY(ES_ANSWER_NUMBER, "0.0000005", "0");    /* the double is just below 5e-7 */
    ASSERT_KEY(ES_ANSWER_NUMBER, "0.0000015", "0.000002");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-0.0000001", "0");   /* "-0.000000" -> "-0" -> "0" */
    ASSERT_KEY(ES_ANSWER_NUMBER, "123456789.123456", "123456789.123456");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1234567890.1234567", "1234567890.123457");
    /* large values print every digit of their double, as "%.6f" does */
    ASSERT_KEY(ES_ANSWER_NUMBER, "123456789012345678901234567890.50", "123456789012345677877719597056");
    ASSERT_EQ(ES_ANSWER_NUMBER, "9007199254740993", "9007199254740992");
    ASSERT_NE(ES_ANSWER_NUMBER, "9007199254740995", "9007199254740992");
    ASSERT_NE(ES_ANSWER_NUMBER, "28.00001", "28");
}

/* Past 800 significant digits the rest folds into a sticky digit: the
 * rounding to a double still comes out as Python's. */
static void test_number_long_rounding(void **state)
{
    (void)state;
    /* 2^53 + 1 lies halfway between two doubles: ties to even (...992),
     * but any non-zero digit far after it rounds up (...994) */
    char s[2048];
    snprintf(s, sizeof s, "9007199254740993.%01000d", 0);
    ASSERT_KEY(ES_ANSWER_NUMBER, s, "9007199254740992");
    snprintf(s, sizeof s, "9007199254740993.%01000d1", 0);
    ASSERT_KEY(ES_ANSWER_NUMBER, s, "9007199254740994");
    snprintf(s, sizeof s, "0.%01500d5", 0);
    ASSERT_KEY(ES_ANSWER_NUMBER, s, "0");
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
    ASSERT_KEY(ES_ANSWER_NUMBER, "1e1_0", "10000000000");
    /* malformed exponents are not numbers: raw keys */
    ASSERT_KEY(ES_ANSWER_NUMBER, "5e", "5e");
    ASSERT_KEY(ES_ANSWER_NUMBER, "e5", "e5");
    /* out of range: what float() makes of them */
    ASSERT_KEY(ES_ANSWER_NUMBER, "1e999999", "inf");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-1e400", "-inf");
    ASSERT_KEY(ES_ANSWER_NUMBER, "1e-400", "0");
    ASSERT_KEY(ES_ANSWER_NUMBER, "Infinity", "inf");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-inf", "-inf");
    ASSERT_KEY(ES_ANSWER_NUMBER, "-NaN", "nan");
    ASSERT_KEY(ES_ANSWER_NUMBER, "infinit", "infinit");
}

/* Python's float() reads every Unicode decimal digit, and so does the key. */
static void test_number_unicode_digits(void **state)
{
    (void)state;
    /* mathematical bold 104: a real answer, boinf_aime2024_Phi-4-reasoning_k160
     * item boinf-aime2024-027 sample 73, gold 104 */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xf0\x9d\x9f\xad\xf0\x9d\x9f\xac\xf0\x9d\x9f\xb0", "104");
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xd9\xa3.\xd9\xa5", "3.5");            /* Arabic-Indic */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xef\xbc\x91\xef\xbc\x92", "12");       /* full-width */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xf0\x9d\x9f", "\xf0\x9d\x9f");          /* truncated UTF-8 */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\xc2\xb2", "\xc2\xb2");                   /* superscript 2: not Nd */
}

static void test_number_latex(void **state)
{
    (void)state;
    /* forms found in the GSM8K think traces: the README's reference figures
     * count them wrong, so they are not numbers and keep their spelling */
    ASSERT_KEY(ES_ANSWER_NUMBER, "\\7\\!425.00", "\\7\\!425.00");
    ASSERT_KEY(ES_ANSWER_NUMBER, "\\$5", "\\$5");   /* "\\5" once '$' is gone: no number */
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
    /* a NUL inside a raw key becomes U+FFFD: keys stay C strings, and a key
     * is its own key ("sept.\0001 1010." would be a date with a space) */
    assert_int_equal(es_answer_normalize(ES_ANSWER_DATE, "a\0b ", 4, buf, sizeof buf), 5);
    assert_string_equal(buf, "a\xef\xbf\xbd" "b");
    assert_int_equal(es_answer_normalize(ES_ANSWER_DATE, "Sept.\0001 1010.", 13, buf, sizeof buf), 15);
    assert_string_equal(buf, "sept.\xef\xbf\xbd" "1 1010.");
    assert_int_equal(es_answer_normalize(ES_ANSWER_CHOICE, "\xc2\xa0x y\xc2\xa0", 7, buf,
                                         sizeof buf), 3);
    assert_string_equal(buf, "x y");
}

static void test_date(void **state)
{
    (void)state;
    ASSERT_EQ(ES_ANSWER_DATE, "5/1/2021", "05/01/2021");
    /* trailing punctuation, ISO and month names (the examples; the
     * first is how gpt-3.5 ends 114 correct answers of mot_gpt35_date_cot1_t08,
     * "Jan 22, 2011" a correct one of mot_gpt35_date_cot1_40, mot-171) */
    ASSERT_KEY(ES_ANSWER_DATE, "05/02/2021.", "05/02/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "11/11/2019.", "11/11/2019");
    ASSERT_KEY(ES_ANSWER_DATE, "Jan 22, 2011", "01/22/2011");
    ASSERT_KEY(ES_ANSWER_DATE, "May 2, 2021", "05/02/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "Jul 29, 2002", "07/29/2002");
    ASSERT_KEY(ES_ANSWER_DATE, "2 May 2021", "05/02/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "Sept. 1st, 2021", "09/01/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "2021-05-02", "05/02/2021");
    ASSERT_EQ(ES_ANSWER_DATE, "May 2, 2021", "2021-5-2");
    ASSERT_KEY(ES_ANSWER_DATE, " 05/02/2021 .,;! ", "05/02/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "DECEMBER 31ST 1999!", "12/31/1999");
    ASSERT_KEY(ES_ANSWER_DATE, "2nd May, 2021", "05/02/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "3 Janu. 2020", "01/03/2020");   /* 3+ letters of a name */
    ASSERT_KEY(ES_ANSWER_DATE, "\xd9\xa5/\xd9\xa2/2021", "05/02/2021");   /* \d is Unicode */
    ASSERT_KEY(ES_ANSWER_DATE, "5/2/\xd9\xa2\xd9\xa0\xd9\xa2\xd9\xa1", "05/02/\xd9\xa2\xd9\xa0\xd9\xa2\xd9\xa1");
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
    /* not dates: the answer as written, trimmed and lower-cased (its
     * trailing punctuation kept) */
    ASSERT_KEY(ES_ANSWER_DATE, "1/45/2021", "1/45/2021");      /* day 1-31 */
    ASSERT_KEY(ES_ANSWER_DATE, "13/01/2021.", "13/01/2021.");  /* month 1-12 */
    ASSERT_KEY(ES_ANSWER_DATE, "0/1/2021", "0/1/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "5/1/21", "5/1/21");            /* 2-digit year */
    ASSERT_KEY(ES_ANSWER_DATE, "123/1/2021", "123/1/2021");
    ASSERT_KEY(ES_ANSWER_DATE, "Today is 09/07/2003.", "today is 09/07/2003.");
    ASSERT_KEY(ES_ANSWER_DATE, "Ju 2, 2021", "ju 2, 2021");     /* 2 letters */
    ASSERT_KEY(ES_ANSWER_DATE, "Mayo 2, 2021", "mayo 2, 2021"); /* not a month's start */
    ASSERT_KEY(ES_ANSWER_DATE, "May  2, 2021", "may  2, 2021"); /* one space exactly */
    ASSERT_KEY(ES_ANSWER_DATE, "May 2 , 2021", "may 2 , 2021");
    ASSERT_KEY(ES_ANSWER_DATE, "May 2, 2021?", "may 2, 2021?");
    ASSERT_KEY(ES_ANSWER_DATE, "05/02/2021 (Sunday)", "05/02/2021 (sunday)");
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

/* The and the README's examples, each from a MATH-500 file. */
static void test_math_examples(void **state)
{
    (void)state;
    /* merged: boinf_math500_Qwen3-14B_k80 item 326 spells the gold both ways */
    ASSERT_KEY(ES_ANSWER_MATH, "0.09", "0.09");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{9}{100}", "0.09");
    ASSERT_EQ(ES_ANSWER_MATH, "0.09", "9/100");
    ASSERT_EQ(ES_ANSWER_MATH, "\\frac{14}{3}", "14/3");
    /* kept apart, where the text key merges them */
    ASSERT_NE(ES_ANSWER_MATH, "0.09", "-0.09");
    ASSERT_EQ(ES_ANSWER_TEXT, "0.09", "-0.09");
    ASSERT_NE(ES_ANSWER_MATH, "1+\\sqrt{19}", "1-\\sqrt{19}");
    ASSERT_EQ(ES_ANSWER_TEXT, "1+\\sqrt{19}", "1-\\sqrt{19}");
    ASSERT_NE(ES_ANSWER_MATH, "(3,4]", "[3,4]");
    ASSERT_EQ(ES_ANSWER_TEXT, "(3,4]", "[3,4]");
    ASSERT_NE(ES_ANSWER_MATH, "-256", "256");
    ASSERT_KEY(ES_ANSWER_MATH, "(2,\\infty)", "(2,\\infty)");
}

/* ref_eval.py's math_key, step by step. */
static void test_math_cleaning(void **state)
{
    (void)state;
    /* white space, \left / \right, spacing commands, \displaystyle */
    ASSERT_KEY(ES_ANSWER_MATH, " \\left( 3 , 4 \\right] ", "(3,4]");
    ASSERT_KEY(ES_ANSWER_MATH, "10\\!000", "10000");
    ASSERT_KEY(ES_ANSWER_MATH, "1\\,2\\;3\\:4", "1234");
    ASSERT_KEY(ES_ANSWER_MATH, "\\displaystyle\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}");
    /* \dfrac, \tfrac are \frac */
    ASSERT_KEY(ES_ANSWER_MATH, "\\dfrac{3}{4}", "0.75");
    ASSERT_KEY(ES_ANSWER_MATH, "\\tfrac{\\pi}{2}", "\\frac{\\pi}{2}");
    ASSERT_EQ(ES_ANSWER_MATH, "\\dfrac{\\pi}{2}", "\\frac{\\pi}{2}");
    /* degrees, percent and dollar signs */
    ASSERT_KEY(ES_ANSWER_MATH, "90^\\circ", "90");
    ASSERT_KEY(ES_ANSWER_MATH, "90^{\\circ}", "90");
    ASSERT_KEY(ES_ANSWER_MATH, "50\\%", "50");
    ASSERT_KEY(ES_ANSWER_MATH, "5..", "5");      /* "5." is still a number */
    ASSERT_KEY(ES_ANSWER_MATH, "x..", "x.");
    ASSERT_KEY(ES_ANSWER_MATH, "\\$5.00", "5");
    ASSERT_KEY(ES_ANSWER_MATH, "$18.90", "18.9");
    /* \text{X}, \mbox{X} are X; only brace-free content, one pass */
    ASSERT_KEY(ES_ANSWER_MATH, "\\text{(B)}", "(b)");
    ASSERT_KEY(ES_ANSWER_MATH, "5\\mbox{ cm}", "5cm");
    ASSERT_KEY(ES_ANSWER_MATH, "\\text{5}", "5");
    ASSERT_KEY(ES_ANSWER_MATH, "\\text{a{b}c}", "\\text{a{b}c}");
    ASSERT_KEY(ES_ANSWER_MATH, "\\text{a\\text{b}}", "\\text{ab}");
    ASSERT_KEY(ES_ANSWER_MATH, "\\textbf{5}", "\\textbf{5}");
    /* one trailing '.', then lower case */
    ASSERT_KEY(ES_ANSWER_MATH, "5.", "5");
    ASSERT_KEY(ES_ANSWER_MATH, "5..", "5");      /* "5." is still a number */
    ASSERT_KEY(ES_ANSWER_MATH, "x..", "x.");
    ASSERT_KEY(ES_ANSWER_MATH, "\\text{Evelyn}.", "evelyn");
    ASSERT_KEY(ES_ANSWER_MATH, "\\Pi", "\\pi");
    /* each removal is one str.replace: what it joins is not rescanned */
    ASSERT_KEY(ES_ANSWER_MATH, "\\le\\leftft", "\\left");
    ASSERT_KEY(ES_ANSWER_MATH, "\\\\!!", "\\!");
}

/* Plain numbers and integer fractions key as their value. */
static void test_math_numbers(void **state)
{
    (void)state;
    ASSERT_KEY(ES_ANSWER_MATH, "1,000", "1000");        /* thousands separators */
    ASSERT_KEY(ES_ANSWER_MATH, "-12,345.50", "-12345.5");
    ASSERT_KEY(ES_ANSWER_MATH, "1,2", "1,2");           /* a list */
    ASSERT_KEY(ES_ANSWER_MATH, "12,34", "12,34");
    ASSERT_KEY(ES_ANSWER_MATH, "1234,567", "1234,567");
    ASSERT_KEY(ES_ANSWER_MATH, "36.00", "36");
    ASSERT_KEY(ES_ANSWER_MATH, "+5", "5");
    ASSERT_KEY(ES_ANSWER_MATH, "-0", "0");
    ASSERT_KEY(ES_ANSWER_MATH, "1e3", "1000");
    ASSERT_KEY(ES_ANSWER_MATH, "1E3", "1000");           /* lower-cased first */
    ASSERT_KEY(ES_ANSWER_MATH, ".5", "0.5");
    ASSERT_KEY(ES_ANSWER_MATH, "1_000", "1_000");        /* no '_' outside float() */
    ASSERT_KEY(ES_ANSWER_MATH, "inf", "inf");
    ASSERT_KEY(ES_ANSWER_MATH, "\\infty", "\\infty");
    ASSERT_KEY(ES_ANSWER_MATH, "10^{10}", "10^{10}");
    /* fractions: \frac{a}{b}, \frac ab, a/b, an optional leading '-' */
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{1}{3}", "0.333333");
    ASSERT_KEY(ES_ANSWER_MATH, "2/3", "0.666667");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac12", "0.5");
    ASSERT_KEY(ES_ANSWER_MATH, "-\\frac{1}{2}", "-0.5");
    ASSERT_KEY(ES_ANSWER_MATH, "-\\dfrac{7}{4}", "-1.75");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{1}{2}.", "0.5");
    ASSERT_KEY(ES_ANSWER_MATH, "\\tfrac{1}{2}\\%", "0.5");
    ASSERT_KEY(ES_ANSWER_MATH, "-0/5", "0");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{0}{3}", "0");
    /* not fractions: they keep their cleaned spelling */
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac123", "\\frac123");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{-1}{2}", "\\frac{-1}{2}");
    ASSERT_KEY(ES_ANSWER_MATH, "+\\frac{1}{2}", "+\\frac{1}{2}");
    ASSERT_KEY(ES_ANSWER_MATH, "1/0", "1/0");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{1}{0}", "\\frac{1}{0}");
    ASSERT_KEY(ES_ANSWER_MATH, "1.5/2", "1.5/2");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt{2}}{2}");
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{1}{2}x", "\\frac{1}{2}x");
    /* Unicode digits are digits here too (Python's \d) */
    ASSERT_KEY(ES_ANSWER_MATH, "\\frac{\xd9\xa1}{\xd9\xa4}", "0.25");
    ASSERT_KEY(ES_ANSWER_MATH, "\xf0\x9d\x9f\xad,\xf0\x9d\x9f\xac\xf0\x9d\x9f\xac\xf0\x9d\x9f\xac", "1000");
    /* beyond 2^53 the quotient is still the nearest double, as Python's
     * int division: 2^53 + 1 and 2^53 + 3 tie, to the even neighbour */
    ASSERT_KEY(ES_ANSWER_MATH, "18014398509481984/2", "9007199254740992");
    ASSERT_KEY(ES_ANSWER_MATH, "9007199254740993/1", "9007199254740992");
    ASSERT_KEY(ES_ANSWER_MATH, "27021597764222985/3", "9007199254740996");
    ASSERT_KEY(ES_ANSWER_MATH, "259109311719383020/7421", "34915686796844.496094");
    ASSERT_KEY(ES_ANSWER_MATH, "18446744073709551615/18446744073709551614", "1");
    /* ties at the 6th decimal go to even, as printf rounds the exact double */
    ASSERT_KEY(ES_ANSWER_MATH, "1/128", "0.007812");
    ASSERT_KEY(ES_ANSWER_MATH, "3/128", "0.023438");
    ASSERT_KEY(ES_ANSWER_MATH, "-5/128", "-0.039062");
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
    /* 1 MB of digits as a number: no overflow; past the doubles it is inf,
     * as float() makes it, and a 1 MB fraction rounds to its value */
    char *d = repeat("9", mb);
    char *e = malloc(mb + 8);
    assert_non_null(e);
    memcpy(e, d, mb);
    strcpy(e + mb, ".000");
    ASSERT_EQ(ES_ANSWER_NUMBER, d, e);
    ASSERT_EQ(ES_ANSWER_NUMBER, d, "inf");
    memcpy(e, "0.", 2);
    e[mb] = '\0';   /* "0.999...9" */
    ASSERT_EQ(ES_ANSWER_NUMBER, e, "1");
    ASSERT_EQ(ES_ANSWER_MATH, e, "1");
    /* every type copes with a long input */
    for (int t = 0; t < 5; t++) ASSERT_EQ((es_answer_type)t, a, a);
    assert_true(es_answer_f1(a, a) == 1.0);
    assert_true(es_answer_f1(a, "word") > 0.0);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

/* A long math answer is cleaned in the output when it has room, else in a
 * heap copy: the key is the same either way, and exactly key + 1 bytes do. */
static void test_math_long(void **state)
{
    (void)state;
    size_t n = 7 * 700;
    char *a = repeat("\\left( ", n);   /* cleans to 700 '(' */
    char *want = repeat("(", n / 7);
    char big[8192], small[800];
    assert_int_equal(es_answer_normalize(ES_ANSWER_MATH, a, n, big, sizeof big), (int)(n / 7));
    assert_string_equal(big, want);
    assert_int_equal(es_answer_normalize(ES_ANSWER_MATH, a, n, small, n / 7 + 1), (int)(n / 7));
    assert_string_equal(small, want);
    assert_int_equal(es_answer_normalize(ES_ANSWER_MATH, a, n, small, n / 7), ES_ERANGE);
    ASSERT_EQ(ES_ANSWER_MATH, a, want);
    free(a);
    free(want);
    /* a long number written with white space keys as its value */
    char *b = repeat("1 ", 3000);   /* 1500 ones: past the doubles, as float() has it */
    char k[16];
    assert_int_equal(es_answer_normalize(ES_ANSWER_MATH, b, 3000, k, sizeof k), 3);
    assert_string_equal(k, "inf");
    free(b);
    char *c = repeat(" ", 3000);
    memcpy(c + 1000, "1,000.50", 8);
    assert_int_equal(es_answer_normalize(ES_ANSWER_MATH, c, 3000, k, sizeof k), 6);
    assert_string_equal(k, "1000.5");
    free(c);
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
        cmocka_unit_test(test_number_six_decimals),
        cmocka_unit_test(test_number_long_rounding),
        cmocka_unit_test(test_number_exponent),
        cmocka_unit_test(test_number_unicode_digits),
        cmocka_unit_test(test_number_latex),
        cmocka_unit_test(test_number_fallback),
        cmocka_unit_test(test_raw_key_bytes),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_date_fallback),
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_math_examples),
        cmocka_unit_test(test_math_cleaning),
        cmocka_unit_test(test_math_numbers),
        cmocka_unit_test(test_math_long),
        cmocka_unit_test(test_normalize_bounds),
        cmocka_unit_test(test_long_answers),
        cmocka_unit_test(test_f1),
        cmocka_unit_test(test_f1_many_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
