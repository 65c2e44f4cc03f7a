/*
 * answer.c - answer types and canonical keys.
 *
 * Every comparison of answers goes through one function, answer_key(), that
 * writes the canonical key of an answer: two answers are equal exactly when
 * their keys are.  Keys are built byte by byte through a bounded writer that
 * keeps counting past its capacity, so a caller learns how much room a key
 * needs.  Only ASCII bytes are ever changed; bytes >= 0x80 pass through
 * untouched, so UTF-8 is never split.
 *
 * The number, date and math keys are, case by case, those of the reference
 * code the shared data's figures were computed with (../shared/ref/ref_eval.py,
 * `norm`, `parse_date`, `math_key`), restricted to ASCII: Python's Unicode
 * digits, white space and case mapping are not followed (see
 * docs/trace-format.md).  A number or date that does not parse keeps its own
 * spelling (trimmed, ASCII lower-cased) as its key, as there: a text key would
 * merge \125 (a boxed $125 whose $ was lost) with the number 125 and merge
 * date-less sentences that differ in punctuation, and the figures would no
 * longer come out.  Such a raw key can never equal a typed key, since any
 * typed key parses as its type.
 *
 * Nothing here allocates except for keys of unusual size: a math answer of
 * MATH_STACK bytes or more normalised into a buffer no larger than itself.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"

/* Keys up to this size are built on the stack by es_answer_equal / _f1. */
#define KEY_STACK 256
/* Math answers shorter than this are cleaned in a stack buffer. */
#define MATH_STACK 1024

/* ------------------------------------------------------------ key writer */

/* Bounded output that keeps counting past cap: len is the size needed. */
typedef struct key_writer {
    char *out;
    size_t cap;
    size_t len;
} key_writer;

static void wr_put(key_writer *w, char c)
{
    if (w->len + 1 < w->cap) w->out[w->len] = c;
    w->len++;
}

/* Terminate the key; ES_ERANGE (and an empty out) when it did not fit. */
static int wr_finish(key_writer *w)
{
    if (w->len >= w->cap || w->len > (size_t)INT_MAX) {
        if (w->cap) w->out[0] = '\0';
        return ES_ERANGE;
    }
    w->out[w->len] = '\0';
    return (int)w->len;
}

/* ------------------------------------------------------ byte classifiers */

/* Locale-free ASCII classes: <ctype.h> may treat bytes >= 0x80 as letters
 * or punctuation under some locales, which would split UTF-8. */
static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int is_punct(unsigned char c)
{
    return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) ||
           (c >= 0x5b && c <= 0x60) || (c >= 0x7b && c <= 0x7e);
}

/* Bytes of white space at s[i], 0 if none: Python's str.isspace() set
 * (what ref_eval.py strips and splits on) in UTF-8, and every control byte,
 * NUL included, so a key never holds one. */
static size_t ws_len_utf8(const char *s, size_t n, size_t i);

static inline size_t ws_len(const char *s, size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c > 0x20 && c < 0x7f) return 0;   /* the common case, inline */
    if (c < 0x80) return 1;
    return ws_len_utf8(s, n, i);
}

/* The non-ASCII white space of ws_len. */
static size_t ws_len_utf8(const char *s, size_t n, size_t i)
{
    const unsigned char *u = (const unsigned char *)s + i;
    if (u[0] < 0xC2) return 0;
    if (u[0] == 0xC2) return i + 1 < n && (u[1] == 0x85 || u[1] == 0xA0) ? 2 : 0;   /* U+0085, U+00A0 */
    if (i + 2 >= n) return 0;
    if (u[0] == 0xE1) return u[1] == 0x9A && u[2] == 0x80 ? 3 : 0;                   /* U+1680 */
    if (u[0] == 0xE3) return u[1] == 0x80 && u[2] == 0x80 ? 3 : 0;                   /* U+3000 */
    if (u[0] != 0xE2) return 0;
    if (u[1] == 0x80) /* U+2000..U+200A, U+2028, U+2029, U+202F */
        return u[2] <= 0x8A || u[2] == 0xA8 || u[2] == 0xA9 || u[2] == 0xAF ? 3 : 0;
    return u[1] == 0x81 && u[2] == 0x9F ? 3 : 0;                                      /* U+205F */
}

/* Code point of the UTF-8 sequence at s[i] (at least 0x80), its length in
 * *w; -1 with *w = 1 when malformed. */
static long utf8_at(const char *s, size_t n, size_t i, size_t *w)
{
    const unsigned char *u = (const unsigned char *)s + i;
    size_t len = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 0;
    long cp = len == 4 ? (u[0] & 0x07) : len == 3 ? (u[0] & 0x0F) : (u[0] & 0x1F);
    *w = 1;
    if (len == 0 || u[0] > 0xF4 || i + len > n) return -1;
    for (size_t k = 1; k < len; k++) {
        if ((u[k] & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (u[k] & 0x3F);
    }
    *w = len;
    return cp;
}

/* First code point of each run of ten Unicode decimal digits (category Nd,
 * Unicode 14.0 as in Python 3.11): Python's float(), int() and regex \d read
 * them all, and real answers hold some (104 in mathematical bold digits,
 * U+1D7ED U+1D7EC U+1D7F0, in an AIME file). */
static const uint32_t nd_zero[] = {
    0x30,    0x660,   0x6F0,   0x7C0,   0x966,   0x9E6,   0xA66,   0xAE6,   0xB66,   0xBE6,   0xC66,
    0xCE6,   0xD66,   0xDE6,   0xE50,   0xED0,   0xF20,   0x1040,  0x1090,  0x17E0,  0x1810,  0x1946,
    0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,
    0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0,
    0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
};

static int digit_at_utf8(const char *s, size_t n, size_t i, size_t *w);

/* Value of the decimal digit at s[i] (i < n), its bytes in *w; -1 if none. */
static inline int digit_at(const char *s, size_t n, size_t i, size_t *w)
{
    unsigned char c = (unsigned char)s[i];
    *w = 1;
    if (c < 0x80) return is_digit(c) ? c - '0' : -1;
    return digit_at_utf8(s, n, i, w);
}

/* The non-ASCII digits of digit_at. */
static int digit_at_utf8(const char *s, size_t n, size_t i, size_t *w)
{
    long cp = utf8_at(s, n, i, w);
    size_t lo = 0, hi = sizeof nd_zero / sizeof *nd_zero;
    if (cp < 0x660) return -1;
    while (hi - lo > 1) {   /* largest zero <= cp */
        size_t mid = (lo + hi) / 2;
        if (nd_zero[mid] <= (uint32_t)cp) lo = mid;
        else hi = mid;
    }
    return (uint32_t)cp - nd_zero[lo] < 10 ? (int)((uint32_t)cp - nd_zero[lo]) : -1;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    size_t k;
    while (i < n && (k = ws_len(s, n, i)) > 0) i += k;
    return i;
}

/* ---------------------------------------------------------------- text */

/* SQuAD's article test, applied after punctuation is dropped, so "(a)" and
 * "The" are articles too; a token longer than 3 kept bytes never is. */
static int is_article(const char *t, size_t n)
{
    char b[3];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_punct((unsigned char)t[i])) continue;
        if (m == 3) return 0;
        b[m++] = to_lower(t[i]);
    }
    return (m == 1 && b[0] == 'a') || (m == 2 && !memcmp(b, "an", 2)) ||
           (m == 3 && !memcmp(b, "the", 3));
}

/* One white-space-delimited token: punctuation deleted (SQuAD deletes, it
 * does not split: "don't" -> "dont"), lower-cased, dropped when it is an
 * article or nothing is left of it. */
static void text_token(const char *t, size_t n, key_writer *w, int *first)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) kept += !is_punct((unsigned char)t[i]);
    if (kept == 0 || is_article(t, n)) return;
    if (!*first) wr_put(w, ' ');
    *first = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_punct((unsigned char)t[i])) wr_put(w, to_lower(t[i]));
}

/* The text key: tokens joined by single spaces, which also folds and trims
 * white space.  Never longer than the input. */
static void text_key(const char *s, size_t n, key_writer *w)
{
    int first = 1;
    size_t i = skip_ws(s, n, 0);
    while (i < n) {
        size_t j = i;
        while (j < n && !ws_len(s, n, j)) j++;
        text_token(s + i, j - i, w, &first);
        i = skip_ws(s, n, j);
    }
}

/* -------------------------------------------------------------- numbers */

/*
 * A number's key is its value as a double printed with 6 decimals ("%.6f"),
 * trailing zeros and point removed, "-0" read as "0": Python's
 * ("%.6f" % float(t)).rstrip("0").rstrip("."), so a program's
 * 28.000000000000004 = 28, and 18 = 18.0.  The decimal is read exactly into
 * up to NUM_DIG_MAX significant digits; most values (at most 9 integer digits
 * and 6 decimals) then print exactly without any floating point, the others
 * go through strtod and snprintf, fed a string without a decimal point and
 * read back whatever the radix character is, so a host's LC_NUMERIC cannot
 * change a key.
 */

/* Significant digits kept: more than the 767 that can decide the rounding of
 * a decimal to binary64; the rest fold into one sticky digit. */
#define NUM_DIG_MAX 800
/* Beyond this decimal exponent every double is 0 or infinite anyway. */
#define NUM_EXP_CLAMP 100000LL
/* "%.6f" of the largest double: 309 digits, '.', 6 decimals, sign. */
#define NUM_FIXED_MAX 330

typedef struct dec_num {
    int neg;
    int special;        /* 0 a finite number, 1 infinity, 2 NaN */
    int sticky;         /* a non-zero digit after the NUM_DIG_MAX kept ones */
    size_t nd;          /* significant digits seen, from the first non-zero */
    long long point;    /* value = 0.dig[0]dig[1]... x 10^point */
    char dig[NUM_DIG_MAX + 32];   /* + room for a sticky digit and "e<exp>" */
} dec_num;

/* Cursor over a number whose ',' and '$' the key drops wherever they are
 * (Python removes them before float() reads the rest). */
typedef struct num_cur {
    const char *s;
    size_t n, i;
} num_cur;

static int cur_peek(num_cur *c)
{
    while (c->i < c->n && (c->s[c->i] == ',' || c->s[c->i] == '$')) c->i++;
    return c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

/* Value of the digit at the cursor (after any ',' or '$'), -1 if none. */
static int cur_digit(num_cur *c, size_t *w)
{
    *w = 1;
    return cur_peek(c) == -1 ? -1 : digit_at(c->s, c->n, c->i, w);
}

static void cur_skip_ws(num_cur *c)
{
    size_t k;
    while (cur_peek(c) != -1 && (k = ws_len(c->s, c->n, c->i)) > 0) c->i += k;
}

/* One mantissa digit (its value): leading zeros only move the point. */
static void dec_add(dec_num *d, int v, int frac)
{
    if (d->nd == 0 && v == 0) {
        d->point -= frac;
        return;
    }
    if (d->nd < NUM_DIG_MAX) d->dig[d->nd] = (char)('0' + v);
    else if (v != 0) d->sticky = 1;
    d->nd++;
    d->point += !frac;
}

enum { PART_INT, PART_FRAC, PART_EXP };

/* digit (['_'] digit)*, the '_' only where `under` (Python's float()).
 * Digits go to d (mantissa parts) or *e (exponent, saturating).  The count
 * of digits, or -1 on a '_' not followed by a digit. */
static long long digit_part(num_cur *c, int under, int part, dec_num *d, long long *e)
{
    long long nd = 0;
    size_t w;
    for (int v = cur_digit(c, &w);; v = cur_digit(c, &w)) {
        if (v >= 0) {
            if (part == PART_EXP) {
                if (*e < NUM_EXP_CLAMP) *e = *e * 10 + v;
            } else {
                dec_add(d, v, part == PART_FRAC);
            }
            nd++;
            c->i += w;
        } else if (under && nd > 0 && cur_peek(c) == '_') {
            c->i++;
            if (cur_digit(c, &w) < 0) return -1;
        } else {
            return nd;
        }
    }
}

/* "inf", "infinity" or "nan" in any case (Python's float() spellings). */
static int num_special(num_cur *c, dec_num *d)
{
    char b[9];
    size_t k = 0;
    for (int ch; is_alpha(ch = cur_peek(c)); c->i++) {
        if (k == sizeof b - 1) return 0;
        b[k++] = to_lower((char)ch);
    }
    b[k] = '\0';
    if (!strcmp(b, "inf") || !strcmp(b, "infinity")) d->special = 1;
    else if (!strcmp(b, "nan")) d->special = 2;
    return d->special != 0;
}

/*
 * A whole number: [+-] (digits [. digits] | . digits) [e [+-] digits].
 * python_float adds what Python's float() also takes: white space around,
 * '_' between digits, inf / infinity / nan.  Without it, the regex of
 * ref_eval.py's number_key.  1 and d filled when s is a number.
 */
static int num_scan(const char *s, size_t n, int python_float, dec_num *d)
{
    num_cur c = {s, n, 0};
    d->neg = d->special = d->sticky = 0;
    d->nd = 0;
    d->point = 0;
    if (python_float) cur_skip_ws(&c);
    int ch = cur_peek(&c);
    if (ch == '+' || ch == '-') {
        d->neg = ch == '-';
        c.i++;
        ch = cur_peek(&c);
    }
    if (python_float && is_alpha(ch)) {
        if (!num_special(&c, d)) return 0;
    } else {
        long long e = 0, a = digit_part(&c, python_float, PART_INT, d, &e), b = 0;
        if (a < 0) return 0;
        if (cur_peek(&c) == '.') {
            c.i++;
            if ((b = digit_part(&c, python_float, PART_FRAC, d, &e)) < 0) return 0;
        }
        if (a == 0 && b == 0) return 0;
        ch = cur_peek(&c);
        if (ch == 'e' || ch == 'E') {
            int eneg = 0;
            c.i++;
            ch = cur_peek(&c);
            if (ch == '+' || ch == '-') {
                eneg = ch == '-';
                c.i++;
            }
            if (digit_part(&c, python_float, PART_EXP, d, &e) <= 0) return 0;
            d->point += eneg ? -e : e;
        }
        if (d->point > NUM_EXP_CLAMP) d->point = NUM_EXP_CLAMP;
        if (d->point < -NUM_EXP_CLAMP) d->point = -NUM_EXP_CLAMP;
    }
    if (python_float) cur_skip_ws(&c);
    return cur_peek(&c) == -1;
}

static void wr_str(key_writer *w, const char *s)
{
    for (; *s; s++) wr_put(w, *s);
}

#ifdef __SIZEOF_INT128__
/* |v| < 2^31: its 6-decimal rounding done exactly in integers, as printf
 * does it (the double's exact value, ties to even), without printf's cost.
 * v = m 2^e; N = round(|v| 10^6) = round(m 10^6 / 2^-e), m 10^6 < 2^73. */
static void put_fixed6_small(double v, key_writer *w)
{
    int e2;
    double f = frexp(fabs(v), &e2);                /* |v| = f 2^e2, f in [0.5, 1) */
    unsigned long long m = (unsigned long long)ldexp(f, 53), n = 0;
    int sh = 53 - e2;                              /* |v| = m / 2^sh, sh > 22 */
    if (sh < 128) {
        unsigned __int128 p = (unsigned __int128)m * 1000000u, half = (unsigned __int128)1 << (sh - 1);
        unsigned __int128 rem = p & ((half << 1) - 1);
        n = (unsigned long long)(p >> sh);
        n += rem > half || (rem == half && (n & 1));
    }
    char b[24];
    int k = 0, frac = (int)(n % 1000000), nz = 6;
    if (n == 0) {   /* "-0.000000" is "0" too */
        wr_put(w, '0');
        return;
    }
    if (v < 0) wr_put(w, '-');
    for (unsigned long long q = n / 1000000; k == 0 || q; q /= 10) b[k++] = (char)('0' + q % 10);
    while (k) wr_put(w, b[--k]);
    for (; nz > 0 && frac % 10 == 0; nz--) frac /= 10;
    if (nz == 0) return;
    wr_put(w, '.');
    for (int d = nz - 1; d >= 0; d--) b[d] = (char)('0' + frac % 10), frac /= 10;
    for (int d = 0; d < nz; d++) wr_put(w, b[d]);
}
#endif

/* Python's ("%.6f" % v).rstrip("0").rstrip("."), "-0" -> "0". */
static void put_fixed6(double v, key_writer *w)
{
    if (isnan(v)) {
        wr_str(w, "nan");
        return;
    }
    if (isinf(v)) {
        wr_str(w, v < 0 ? "-inf" : "inf");
        return;
    }
#ifdef __SIZEOF_INT128__
    if (fabs(v) < 2147483648.0) {
        put_fixed6_small(v, w);
        return;
    }
#endif
    char b[NUM_FIXED_MAX + 16];
    int len = snprintf(b, sizeof b, "%.6f", v);
    if (len < 8 || (size_t)len >= sizeof b) return;   /* cannot happen for a finite double */
    size_t i = b[0] == '-', j = i, f = (size_t)len - 6, e = (size_t)len;
    while (is_digit(b[j])) j++;                       /* b[j..f) is the radix, maybe not '.' */
    while (e > f && b[e - 1] == '0') e--;
    if (i && e == f && j - i == 1 && b[i] == '0') i = 0, b[0] = '0', j = 1;   /* "-0" */
    for (size_t k = 0; k < j; k++) wr_put(w, b[k]);
    if (e > f) wr_put(w, '.');
    for (size_t k = f; k < e; k++) wr_put(w, b[k]);
}

/* The key of a scanned number. */
static void num_emit(dec_num *d, key_writer *w)
{
    if (d->special) {
        wr_str(w, d->special == 2 ? "nan" : d->neg ? "-inf" : "inf");
        return;
    }
    if (d->nd == 0) {
        wr_put(w, '0');
        return;
    }
    size_t kept = d->nd < NUM_DIG_MAX ? d->nd : NUM_DIG_MAX, nz = kept;
    while (nz > 1 && d->dig[nz - 1] == '0') nz--;
    /* |value| < 1e9 < 2^30 with at most 6 decimals: the nearest double is
     * within 2^-24 of it, so "%.6f" prints the decimal itself. */
    if (!d->sticky && d->point <= 9 && (long long)nz - d->point <= 6) {
        if (d->neg) wr_put(w, '-');
        if (d->point <= 0) {
            wr_put(w, '0');
            wr_put(w, '.');
            for (long long k = d->point; k < 0; k++) wr_put(w, '0');
            for (size_t k = 0; k < nz; k++) wr_put(w, d->dig[k]);
        } else {
            for (size_t k = 0; k < nz || (long long)k < d->point; k++) {
                if ((long long)k == d->point) wr_put(w, '.');
                wr_put(w, k < nz ? d->dig[k] : '0');
            }
        }
        return;
    }
    /* digits "e" exponent: no radix character for the locale to read */
    size_t m = kept;
    long long ex = d->point - (long long)kept;
    if (d->sticky) {
        d->dig[m++] = '1';
        ex--;
    }
    snprintf(d->dig + m, sizeof d->dig - m, "e%lld", ex);
    double v = strtod(d->dig, NULL);
    put_fixed6(d->neg ? -v : v, w);
}

/* 1 and the key written when s is a number for Python's float() once ','
 * and '$' are gone, else 0 and nothing written. */
static int number_key(const char *s, size_t n, key_writer *w)
{
    dec_num d;
    if (!num_scan(s, n, 1, &d)) return 0;
    num_emit(&d, w);
    return 1;
}

/* ---------------------------------------------------------------- dates */

/* A run of decimal digits at s[*i] (before e), ASCII or Unicode: its count,
 * *i moved past it, its value in *v when v (saturating at 10^18). */
static size_t digit_run(const char *s, size_t e, size_t *i, unsigned long long *v)
{
    size_t k = 0, w;
    int d;
    if (v) *v = 0;
    while (*i < e && (d = digit_at(s, e, *i, &w)) >= 0) {
        if (v && *v < 1000000000000000000ULL) *v = *v * 10 + (unsigned)d;
        *i += w;
        k++;
    }
    return k;
}

/* A run of lo..hi digits (a longer run fails, as every place a date has
 * one is followed by a non-digit). */
static int read_uint(const char *s, size_t e, size_t *i, size_t lo, size_t hi, unsigned *v)
{
    unsigned long long x;
    size_t k = digit_run(s, e, i, &x);
    *v = (unsigned)(x > 99 ? 99 : x);
    return k >= lo && k <= hi;
}

static int eat(const char *s, size_t e, size_t *i, char c)
{
    if (*i >= e || s[*i] != c) return 0;
    (*i)++;
    return 1;
}

/* Optional ordinal suffix after a day: st, nd, rd or th, any case. */
static void eat_ordinal(const char *s, size_t e, size_t *i)
{
    if (*i + 2 > e) return;
    char a = to_lower(s[*i]), b = to_lower(s[*i + 1]);
    if ((a == 's' && b == 't') || (a == 'n' && b == 'd') || (a == 'r' && b == 'd') || (a == 't' && b == 'h'))
        *i += 2;
}

/* Month number of a name of letters s[0..len): three letters or more of
 * the start of a month's name ("may", "Sept", "janu", "December"), which is
 * what ref_eval.py's test (abbreviation in MONTHS, name found in its list of
 * names) comes to; 0 otherwise. */
static unsigned month_of(const char *s, size_t len)
{
    static const char *const names[] = {"january", "february", "march",     "april",   "may",      "june",
                                        "july",    "august",   "september", "october", "november", "december"};
    if (len < 3) return 0;
    for (unsigned m = 0; m < 12; m++) {
        size_t k = 0;
        while (k < len && names[m][k] && to_lower(s[k]) == names[m][k]) k++;
        if (k == len) return m + 1;
    }
    return 0;
}

/* Month, day and where the year's four digits lie. */
typedef struct date_parts {
    unsigned m, d;
    size_t y0, y1;
} date_parts;

/* ' ' then a four-digit year ending the date at e. */
static int date_year_last(const char *s, size_t e, size_t i, date_parts *p)
{
    unsigned u;
    if (!eat(s, e, &i, ' ')) return 0;
    p->y0 = i;
    if (!read_uint(s, e, &i, 4, 4, &u) || i != e) return 0;
    p->y1 = i;
    return 1;
}

/* Letters of a month name at i: 0 when they are not one. */
static size_t month_name(const char *s, size_t e, size_t i, date_parts *p)
{
    size_t len = 0;
    while (i + len < e && is_alpha(s[i + len])) len++;
    p->m = month_of(s + i, len);
    return p->m ? len : 0;
}

/* "May 2, 2021", "Sept. 1st, 2021": name [.] ' ' day [ordinal] [,] ' ' year. */
static int date_name_first(const char *s, size_t e, size_t i, date_parts *p)
{
    size_t len = month_name(s, e, i, p);
    if (!len) return 0;
    i += len;
    eat(s, e, &i, '.');
    if (!eat(s, e, &i, ' ') || !read_uint(s, e, &i, 1, 2, &p->d)) return 0;
    eat_ordinal(s, e, &i);
    eat(s, e, &i, ',');
    return date_year_last(s, e, i, p);
}

/* "2 May 2021": day [ordinal] ' ' name [.] [,] ' ' year. */
static int date_day_first(const char *s, size_t e, size_t i, date_parts *p)
{
    if (!read_uint(s, e, &i, 1, 2, &p->d)) return 0;
    eat_ordinal(s, e, &i);
    size_t len = eat(s, e, &i, ' ') ? month_name(s, e, i, p) : 0;
    if (!len) return 0;
    i += len;
    eat(s, e, &i, '.');
    eat(s, e, &i, ',');
    return date_year_last(s, e, i, p);
}

/* M/D/YYYY or YYYY-M-D (month and day of 1 or 2 digits). */
static int date_numeric(const char *s, size_t e, size_t i, date_parts *p)
{
    size_t j = i;
    unsigned u;
    if (read_uint(s, e, &j, 4, 4, &u) && eat(s, e, &j, '-')) {
        p->y0 = i;
        p->y1 = j - 1;
        return read_uint(s, e, &j, 1, 2, &p->m) && eat(s, e, &j, '-') && read_uint(s, e, &j, 1, 2, &p->d) &&
               j == e;
    }
    j = i;
    if (!read_uint(s, e, &j, 1, 2, &p->m) || !eat(s, e, &j, '/') || !read_uint(s, e, &j, 1, 2, &p->d) ||
        !eat(s, e, &j, '/'))
        return 0;
    p->y0 = j;
    p->y1 = e;
    return read_uint(s, e, &j, 4, 4, &u) && j == e;
}

static void put_uint2(key_writer *w, unsigned v)
{
    wr_put(w, (char)('0' + v / 10 % 10));
    wr_put(w, (char)('0' + v % 10));
}

/* The whole answer is one date: white space around it and trailing '.', ',',
 * ';', '!' ignored ("05/02/2021." is a date, "Today is 09/07/2003." is not);
 * month 1-12, day 1-31; key MM/DD/YYYY, the year as written. */
static int date_key(const char *s, size_t n, key_writer *w)
{
    size_t i = skip_ws(s, n, 0), e = n, wd;
    while (e > i) {   /* from the end: a long sentence is not scanned twice */
        char c = s[e - 1];
        size_t k = ws_len(s, n, e - 1);
        if (!k && e - i >= 2 && ws_len(s, n, e - 2) == 2) k = 2;
        if (!k && e - i >= 3 && ws_len(s, n, e - 3) == 3) k = 3;
        if (!k && (c == '.' || c == ',' || c == ';' || c == '!')) k = 1;
        if (!k) break;
        e -= k;
    }
    date_parts p = {0, 0, 0, 0};
    int ok = i < e && (digit_at(s, e, i, &wd) >= 0 ? date_numeric(s, e, i, &p) || date_day_first(s, e, i, &p)
                                                   : date_name_first(s, e, i, &p));
    if (!ok || p.m < 1 || p.m > 12 || p.d < 1 || p.d > 31) return 0;
    put_uint2(w, p.m);
    wr_put(w, '/');
    put_uint2(w, p.d);
    wr_put(w, '/');
    for (size_t k = p.y0; k < p.y1; k++) wr_put(w, s[k]);
    return 1;
}

/* ----------------------------------------------------------------- math */

/*
 * The key of a LaTeX answer, ref_eval.py's math_key step by step, each step
 * one pass over the answer copied without white space: Python's
 * str.replace (every non-overlapping occurrence, left to right, nothing
 * rescanned) and re.sub, in the same order, so that even odd inputs
 * ("\le\leftft") clean the same.  Then a plain number (commas only as
 * thousands separators) or an integer fraction keys as its value.
 */

/* One str.replace of the cleaning: pattern, replacement, their lengths. */
typedef struct math_rep {
    const char *pat, *rep;
    size_t pl, rl;
} math_rep;

#define MREP(p, r) {p, r, sizeof p - 1, sizeof r - 1}
static const math_rep math_layout[] = {
    MREP("\\left", ""), MREP("\\right", ""), MREP("\\displaystyle", ""), MREP("\\!", ""),
    MREP("\\,", ""),    MREP("\\;", ""),     MREP("\\:", ""),             MREP("\\dfrac", "\\frac"),
    MREP("\\tfrac", "\\frac"),
};
static const math_rep math_units[] = {
    MREP("^{\\circ}", ""), MREP("^\\circ", ""), MREP("\\%", ""), MREP("%", ""), MREP("\\$", ""), MREP("$", ""),
};
#undef MREP

/* t.replace(pat, rep) in place, rep no longer than pat; the new length. */
static size_t replace_all(char *t, size_t m, const math_rep *mr)
{
    const char *pat = mr->pat, *rep = mr->rep;
    size_t pl = mr->pl, rl = mr->rl, r = 0, o = 0;
    while (r < m && t[r] != pat[0]) r++;
    o = r;
    while (r < m) {
        if (t[r] == pat[0] && m - r >= pl && !memcmp(t + r, pat, pl)) {
            memcpy(t + o, rep, rl);
            o += rl;
            r += pl;
        } else {
            t[o++] = t[r++];
        }
    }
    return o;
}

/* re.sub(r"\\(?:text|mbox)\{([^{}]*)\}", r"\1", t) in place.  A failed
 * start scans only to the next brace, so the pass stays linear. */
static size_t unwrap_text(char *t, size_t m)
{
    size_t r = 0, o = 0;
    while (r < m) {
        if (t[r] == '\\' && m - r >= 6 && (!memcmp(t + r, "\\text{", 6) || !memcmp(t + r, "\\mbox{", 6))) {
            size_t q = r + 6;
            while (q < m && t[q] != '{' && t[q] != '}') q++;
            if (q < m && t[q] == '}') {
                memmove(t + o, t + r + 6, q - r - 6);
                o += q - r - 6;
                r = q + 1;
                continue;
            }
        }
        t[o++] = t[r++];
    }
    return o;
}

/* [-+]? \d{1,3} (,\d{3})+ (\.\d*)? : commas that are thousands separators. */
static int thousands(const char *t, size_t m)
{
    size_t i = (m && (t[0] == '+' || t[0] == '-')), k = digit_run(t, m, &i, NULL), groups = 0;
    if (k < 1 || k > 3) return 0;
    for (; i < m && t[i] == ','; groups++) {
        i++;
        size_t w;
        for (k = 0; k < 3; k++, i += w)
            if (i >= m || digit_at(t, m, i, &w) < 0) return 0;
    }
    if (i < m && t[i] == '.') {
        i++;
        digit_run(t, m, &i, NULL);
    }
    return groups && i == m;
}

/* The value of n digits at a: exact in *u when it fits 64 bits (1 is
 * returned), else 0 and an approximation in *ld. */
static int digits_value(const char *a, size_t n, unsigned long long *u, long double *ld)
{
    size_t w;
    int fits = 1;
    *u = 0;
    *ld = 0;
    for (size_t k = 0; k < n; k += w) {
        unsigned d = (unsigned)digit_at(a, n, k, &w);
        *ld = *ld * 10 + d;
        if (*u > (~0ULL - d) / 10) fits = 0;
        *u = *u * 10 + d;
    }
    return fits;
}

/* a / b (b > 0) correctly rounded to a double, as Python's int division.
 * Below 2^53 one IEEE division of exact operands is; up to 2^64 the
 * quotient is taken to 54+ bits in 128-bit integers, the remainder sticky. */
static double divide_exact(unsigned long long a, unsigned long long b)
{
    if (a < (1ULL << 53) && b < (1ULL << 53)) return (double)a / (double)b;
#ifdef __SIZEOF_INT128__
    if (a == 0) return 0.0;
    int la = 64 - __builtin_clzll(a), lb = 64 - __builtin_clzll(b);
    int sh = 55 - la + lb > 0 ? 55 - la + lb : 0;            /* a 2^sh / b >= 2^54, < 2^128 */
    unsigned __int128 one = 1, num = (unsigned __int128)a << sh, q = num / b;
    int sticky = num % b != 0, lq = 0;
    for (unsigned __int128 x = q; x; x >>= 1) lq++;
    int drop = lq - 53;                                     /* bits below the double's 53 */
    unsigned __int128 low = q & ((one << drop) - 1), half = one << (drop - 1);
    unsigned long long m = (unsigned long long)(q >> drop);
    if (low > half || (low == half && (sticky || (m & 1)))) m++;
    return ldexp((double)m, drop - sh);
#else
    return (double)((long double)a / (long double)b);
#endif
}

/*
 * -?(\frac{a}{b} | \frac ab | a/b), a and b digits, b non-zero: 1 and the
 * value.  Python divides its exact integers; so does this while both fit 64
 * bits; beyond, the quotient is taken in long double, which may differ from
 * Python's in the last bit (and is inf where Python raises an error).
 */
static int fraction(const char *t, size_t m, double *v)
{
    size_t i = m && t[0] == '-', a0, a1, b0, b1, w;
    int neg = (int)i;
    if (m - i >= 5 && !memcmp(t + i, "\\frac", 5)) {
        i += 5;
        if (i < m && t[i] == '{') {
            a0 = ++i;
            if (!digit_run(t, m, &i, NULL)) return 0;
            a1 = i;
            if (!eat(t, m, &i, '}') || !eat(t, m, &i, '{')) return 0;
            b0 = i;
            if (!digit_run(t, m, &i, NULL)) return 0;
            b1 = i;
            if (!eat(t, m, &i, '}') || i != m) return 0;
        } else {
            a0 = i;
            if (i >= m || digit_at(t, m, i, &w) < 0) return 0;
            a1 = b0 = i + w;
            if (b0 >= m || digit_at(t, m, b0, &w) < 0 || b0 + w != m) return 0;
            b1 = m;
        }
    } else {
        a0 = i;
        if (!digit_run(t, m, &i, NULL)) return 0;
        a1 = i;
        if (!eat(t, m, &i, '/')) return 0;
        b0 = i;
        if (!digit_run(t, m, &i, NULL) || i != m) return 0;
        b1 = m;
    }
    unsigned long long au, bu;
    long double al, bl;
    int exact = digits_value(t + a0, a1 - a0, &au, &al) & digits_value(t + b0, b1 - b0, &bu, &bl);
    if (bl == 0) return 0;
    double q = exact ? divide_exact(au, bu) : (double)(al / bl);
    *v = neg ? -q : q;
    return 1;
}

/* Clean the answer (in t, m bytes) and write its key; t may be w->out. */
static void math_clean(const char *s, size_t n, char *t, key_writer *w)
{
    size_t m = 0;
    int marks = 0;   /* which of '\\', '^', '%', '$' occur: passes that cannot match are skipped */
    for (size_t i = 0; i < n;) {
        size_t k = ws_len(s, n, i);
        if (k) {
            i += k;
            continue;
        }
        char c = s[i++];
        marks |= c == '\\' ? 1 : c == '^' ? 2 : c == '%' ? 4 : c == '$' ? 8 : 0;
        t[m++] = c;
    }
    if (marks & 1) {
        for (size_t k = 0; k < sizeof math_layout / sizeof *math_layout; k++) m = replace_all(t, m, &math_layout[k]);
    }
    for (size_t k = 0; k < sizeof math_units / sizeof *math_units; k++) {
        int first = math_units[k].pat[0];
        if (marks & (first == '\\' ? 1 : first == '^' ? 2 : first == '%' ? 4 : 8)) m = replace_all(t, m, &math_units[k]);
    }
    if (marks & 1) m = unwrap_text(t, m);
    if (m && t[m - 1] == '.') m--;
    for (size_t i = 0; i < m; i++) t[i] = to_lower(t[i]);
    dec_num d;
    double v;
    if ((thousands(t, m) || !memchr(t, ',', m)) && num_scan(t, m, 0, &d)) {
        num_emit(&d, w);
    } else if (fraction(t, m, &v)) {
        put_fixed6(v, w);
    } else {
        for (size_t i = 0; i < m; i++) wr_put(w, t[i]);
    }
}

/* Short answers are cleaned on the stack, long ones in the output when it
 * has room for the whole answer, else (rarely) in a heap copy. */
static int math_key(const char *s, size_t n, key_writer *w)
{
    char stack[MATH_STACK], *heap = NULL, *t = stack;
    if (n >= sizeof stack) {
        if (w->cap > n) t = w->out;
        else if (!(t = heap = malloc(n + 1))) return ES_ENOMEM;
    }
    math_clean(s, n, t, w);
    free(heap);
    return ES_OK;
}

/* -------------------------------------------------------------- choices */

/* An option letter: "B", "(B)", "[b]", "B.", "b)", "B:", "(b) text".
 * After a bracket, ')', '.' or ':' anything may follow; a bare letter
 * must stand alone ("B 42" is not a choice). */
static int choice_key(const char *s, size_t n, key_writer *w)
{
    size_t i = skip_ws(s, n, 0);
    char close = 0, letter;
    if (i < n && (s[i] == '(' || s[i] == '[')) close = s[i++] == '(' ? ')' : ']';
    if (i >= n || !is_alpha(s[i])) return 0;
    letter = to_lower(s[i++]);
    if (close) {
        if (!eat(s, n, &i, close)) return 0;
    } else if (!(i < n && (s[i] == ')' || s[i] == '.' || s[i] == ':')) &&
               skip_ws(s, n, i) != n) {
        return 0;
    }
    wr_put(w, letter);
    return 1;
}

/* ----------------------------------------------------------- raw keys */

/* Fallback key of a typed answer that does not parse: the answer trimmed
 * of white space and ASCII lower-cased, otherwise verbatim: ref_eval.py's
 * s.lower() of the stripped answer.  An inner NUL byte (possible only
 * through an explicit n) becomes U+FFFD, so a key stays a C string and
 * stays its own key (a space could turn "sept.\0" + "1 1010." into a date).  Lower-casing
 * matters to the figures: "Today is ..." and "today is ..." are one answer
 * there; punctuation and articles are kept. */
static void raw_key(const char *s, size_t n, key_writer *w)
{
    size_t i = skip_ws(s, n, 0), end = i;
    for (size_t j = i; j < n;) {
        size_t k = ws_len(s, n, j);
        j += k ? k : 1;
        if (!k) end = j;
    }
    for (; i < end; i++) {
        if (!s[i]) wr_str(w, "\xef\xbf\xbd");
        else wr_put(w, to_lower(s[i]));
    }
}


/* ------------------------------------------------------------ dispatch */

static int type_ok(es_answer_type t)
{
    return (unsigned)t <= (unsigned)ES_ANSWER_MATH;
}

/* Typed key, falling back to the raw key when s does not parse as t (math
 * never falls back: its cleaned string is its key).  ES_ENOMEM only from a
 * long math answer's heap copy. */
static int answer_key(es_answer_type t, const char *s, size_t n, key_writer *w)
{
    int done = 0;
    switch (t) {
    case ES_ANSWER_TEXT: text_key(s, n, w); return ES_OK;
    case ES_ANSWER_MATH: return math_key(s, n, w);
    case ES_ANSWER_NUMBER: done = number_key(s, n, w); break;
    case ES_ANSWER_DATE: done = date_key(s, n, w); break;
    case ES_ANSWER_CHOICE: done = choice_key(s, n, w); break;
    }
    if (!done) raw_key(s, n, w);
    return ES_OK;
}

/* Key of NUL-terminated s in buf when it fits, else in a heap buffer the
 * caller frees (result != buf); NULL when an allocation fails.  Keys of
 * any length work, at the cost of one malloc beyond KEY_STACK bytes. */
static char *key_of(es_answer_type t, const char *s, char *buf, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    key_writer w = {buf, cap, 0};
    if (answer_key(t, s, n, &w)) return NULL;
    if (w.len < cap) {
        buf[w.len] = '\0';
        *len = w.len;
        return buf;
    }
    char *heap = malloc(w.len + 1);
    if (!heap) return NULL;
    w = (key_writer){heap, w.len + 1, 0};
    if (answer_key(t, s, n, &w)) {
        free(heap);
        return NULL;
    }
    heap[w.len] = '\0';
    *len = w.len;
    return heap;
}

static void key_release(char *key, const char *buf)
{
    if (key != buf) free(key);
}

/* ------------------------------------------------------------ public API */

static const char *const type_names[] = {"text", "number", "date", "choice", "math"};

/* Case-insensitive, so a command line may say "Number". */
int es_answer_type_parse(const char *name, es_answer_type *out)
{
    if (!name || !out) return ES_EINVAL;
    for (unsigned t = 0; t < sizeof type_names / sizeof *type_names; t++) {
        const char *a = name, *b = type_names[t];
        while (*a && to_lower(*a) == *b) a++, b++;
        if (!*a && !*b) {
            *out = (es_answer_type)t;
            return ES_OK;
        }
    }
    return ES_EINVAL;
}

/* "unknown" rather than NULL, so it is always safe to print. */
const char *es_answer_type_name(es_answer_type t)
{
    return type_ok(t) ? type_names[t] : "unknown";
}

/* The one place keys are made; it never writes past cap. */
int es_answer_normalize(es_answer_type t, const char *s, size_t n, char *out, size_t cap)
{
    if (!type_ok(t) || !s || (!out && cap)) return ES_EINVAL;
    key_writer w = {out, cap, 0};
    int rc = answer_key(t, s, n, &w);
    if (rc) {
        if (cap) out[0] = '\0';
        return rc;
    }
    return wr_finish(&w);
}

/* Key comparison with keys of any length; an allocation failure (only for
 * keys over KEY_STACK bytes) answers 0, the safe side for a vote. */
int es_answer_equal(es_answer_type t, const char *a, const char *b)
{
    if (!a || !b || !type_ok(t)) return 0;
    char ba[KEY_STACK], bb[KEY_STACK];
    size_t la = 0, lb = 0;
    char *ka = key_of(t, a, ba, sizeof ba, &la);
    char *kb = ka ? key_of(t, b, bb, sizeof bb, &lb) : NULL;
    int eq = ka && kb && la == lb && !memcmp(ka, kb, la);
    if (ka) key_release(ka, ba);
    if (kb) key_release(kb, bb);
    return eq;
}

/* A token of a text key: keys separate tokens by exactly one space. */
typedef struct f1_tok {
    const char *p;
    size_t n;
} f1_tok;

static int tok_cmp(const void *x, const void *y)
{
    const f1_tok *a = x, *b = y;
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    if (c) return c;
    return (a->n > b->n) - (a->n < b->n);
}

/* Split a non-empty key into toks (room for every token); the count. */
static size_t split_key(const char *k, size_t len, f1_tok *toks)
{
    size_t nt = 0, i = 0;
    while (i <= len) {
        const char *sp = memchr(k + i, ' ', len - i);
        size_t j = sp ? (size_t)(sp - k) : len;
        toks[nt++] = (f1_tok){k + i, j - i};
        i = j + 1;
    }
    return nt;
}

static size_t count_tokens(const char *k, size_t len)
{
    size_t nt = 1;
    for (size_t i = 0; i < len; i++) nt += k[i] == ' ';
    return nt;
}

/* Multiset overlap of two sorted token lists. */
static size_t overlap(const f1_tok *a, size_t na, const f1_tok *b, size_t nb)
{
    size_t i = 0, j = 0, same = 0;
    while (i < na && j < nb) {
        int c = tok_cmp(a + i, b + j);
        if (c == 0) same++;
        i += c <= 0;
        j += c >= 0;
    }
    return same;
}

/* Bag-of-words F1 of two keys; sorting keeps long answers O(n log n).
 * NaN when the token arrays cannot be allocated. */
static double f1_keys(const char *p, size_t lp, const char *g, size_t lg)
{
    if (lp == 0 || lg == 0) return (lp == 0 && lg == 0) ? 1.0 : 0.0;
    size_t np = count_tokens(p, lp), ng = count_tokens(g, lg);
    f1_tok stack[64], *toks = stack;
    if (np + ng > sizeof stack / sizeof *stack && !(toks = malloc((np + ng) * sizeof *toks)))
        return NAN;
    split_key(p, lp, toks);
    split_key(g, lg, toks + np);
    qsort(toks, np, sizeof *toks, tok_cmp);
    qsort(toks + np, ng, sizeof *toks, tok_cmp);
    size_t same = overlap(toks, np, toks + np, ng);
    if (toks != stack) free(toks);
    if (same == 0) return 0.0;
    double prec = (double)same / (double)np, rec = (double)same / (double)ng;
    return 2.0 * prec * rec / (prec + rec);
}

/* SQuAD's token F1 on text keys: a null is never right (0); two answers
 * that normalise to nothing agree (1), as in the SQuAD v2 scorer. */
double es_answer_f1(const char *pred, const char *gold)
{
    if (!pred || !gold) return 0.0;
    char bp[KEY_STACK], bg[KEY_STACK];
    size_t lp = 0, lg = 0;
    char *kp = key_of(ES_ANSWER_TEXT, pred, bp, sizeof bp, &lp);
    char *kg = kp ? key_of(ES_ANSWER_TEXT, gold, bg, sizeof bg, &lg) : NULL;
    double f = (kp && kg) ? f1_keys(kp, lp, kg, lg) : NAN;
    if (kp) key_release(kp, bp);
    if (kg) key_release(kg, bg);
    return f;
}

/* ------------------------------------------------------- well-formedness */

/* A text key is already lower-cased with punctuation and articles gone:
 * what is left must look like an answer, not a sentence. */
static int text_wellformed(const char *k, size_t n)
{
    if (n == 0 || n > 40) return 0;
    unsigned words = 1;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (c == ' ') words++;
        else if (!is_alpha(c) && !is_digit(c) && c != '\'' && c != '-') return 0;
    }
    return words <= 4;
}

static int math_wellformed(const char *k, size_t n)
{
    if (n == 0 || n > 40) return 0;
    long depth = 0;
    for (size_t i = 0; i < n && depth >= 0; i++) depth += (k[i] == '{') - (k[i] == '}');
    return depth == 0;
}

/* A key reads as its type when the type's own parser accepts it again: a
 * parsed number or date keys as itself, a raw fallback key does not parse.
 * The writer only counts (cap 0): nothing is written. */
int es_answer_wellformed(es_answer_type t, const char *key)
{
    if (!key) return 0;
    size_t n = strlen(key);
    key_writer w = {NULL, 0, 0};
    switch (t) {
    case ES_ANSWER_TEXT: return text_wellformed(key, n);
    case ES_ANSWER_MATH: return math_wellformed(key, n);
    case ES_ANSWER_NUMBER: return n > 0 && number_key(key, n, &w);
    case ES_ANSWER_DATE: return n > 0 && date_key(key, n, &w);
    case ES_ANSWER_CHOICE: return n > 0 && choice_key(key, n, &w);
    }
    return 0;
}
