/*
 * answer.c - answer types and canonical keys.
 *
 * Every comparison of answers goes through one function, answer_key(), that
 * writes the canonical key of an answer: two answers are equal exactly when
 * their keys are.  Keys are built byte by byte through a bounded writer that
 * keeps counting past its capacity, so a caller learns how much room a key
 * needs without any allocation here.  Only ASCII bytes are ever changed;
 * bytes >= 0x80 pass through untouched, so UTF-8 is never split.
 *
 * A number, date or choice that does not parse keeps its own spelling
 * (trimmed, ASCII lower-cased) as its key.  That is what the reference figures of the shared
 * data were computed with (see its README): a text key there would merge
 * \125 (a boxed $125 whose $ was lost) with the number 125 and merge date-less sentences that differ in
 * punctuation, and the figures would no longer come out.  Such a raw key
 * can never equal a typed key, since any typed key parses as its type.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"

/* Largest |exponent| accepted in "1.5e3": keeps a key's length bounded. */
#define NUM_EXP_MAX 400L
/* Keys up to this size are built on the stack by es_answer_equal / _f1. */
#define KEY_STACK 256

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

/* Bytes of white space at s[i], 0 if none.  Control bytes (NUL included)
 * count as space so a key never holds them; U+00A0 (no-break space) is the
 * one non-ASCII space that models emit often enough to matter. */
static size_t ws_len(const char *s, size_t n, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f) return 1;
    if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0) return 2;
    return 0;
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

/* Cursor over a number that skips what may surround or split its digits:
 * white space, '$', ',' and '%'.  LaTeX escapes (10\!000, \$5) are
 * deliberately not numbers: the reference figures count them as wrong. */
typedef struct num_cur {
    const char *s;
    size_t n, i;
} num_cur;

static void num_skip(num_cur *c)
{
    while (c->i < c->n) {
        char ch = c->s[c->i];
        size_t k = ws_len(c->s, c->n, c->i);
        if (k) {
            c->i += k;
        } else if (ch == '$' || ch == ',' || ch == '%') {
            c->i++;
        } else {
            break;
        }
    }
}

/* Next significant byte (-1 at the end) and its width in *w; the Unicode
 * minus sign U+2212 reads as '-'. */
static int num_peek(num_cur *c, size_t *w)
{
    num_skip(c);
    if (c->i >= c->n) return -1;
    const unsigned char *u = (const unsigned char *)c->s + c->i;
    *w = 1;
    if (u[0] == 0xE2 && c->i + 2 < c->n && u[1] == 0x88 && u[2] == 0x92) {
        *w = 3;
        return '-';
    }
    return u[0];
}

/* What one scan learns of a number: its mantissa digits live in s[m0, m1);
 * of those, nint precede the point; first_nz/last_nz index the first and
 * last non-zero digit (has_nz = 0 for a zero). */
typedef struct num_info {
    int neg, has_nz;
    size_t m0, m1, ndig, nint, first_nz, last_nz;
    long exp;
} num_info;

/* White space between two digits ends a number: "3 4" is two numbers, not
 * 34. */
static int ws_splits(num_cur *c, const num_info *ni)
{
    size_t w = 1;
    if (ni->ndig == 0 || c->i >= c->n || !ws_len(c->s, c->n, c->i)) return 0;
    return is_digit(num_peek(c, &w));
}

/* digits ['.' digits]: at least one digit, at most one point. */
static int num_mantissa(num_cur *c, num_info *ni)
{
    size_t w = 1;
    int ch, dot = 0;
    ni->m0 = c->i;
    for (;;) {
        if (ws_splits(c, ni)) return 0;
        if ((ch = num_peek(c, &w)) == -1) break;
        if (is_digit(ch)) {
            if (ch != '0') {
                if (!ni->has_nz) ni->first_nz = ni->ndig;
                ni->has_nz = 1;
                ni->last_nz = ni->ndig;
            }
            ni->nint += !dot;
            ni->ndig++;
        } else if (ch == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
        c->i += w;
    }
    ni->m1 = c->i;
    return ni->ndig > 0;
}

/* Optional [eE][+-]digits; 0 when malformed or beyond NUM_EXP_MAX. */
static int num_exponent(num_cur *c, long *e)
{
    size_t w = 1, nd = 0;
    int neg = 0, ch = num_peek(c, &w);
    *e = 0;
    if (ch != 'e' && ch != 'E') return 1;
    c->i += w;
    ch = num_peek(c, &w);
    if (ch == '+' || ch == '-') {
        neg = ch == '-';
        c->i += w;
        ch = num_peek(c, &w);
    }
    for (; is_digit(ch); nd++, c->i += w, ch = num_peek(c, &w))
        if (*e <= NUM_EXP_MAX) *e = *e * 10 + (ch - '0');
    if (nd == 0 || *e > NUM_EXP_MAX) return 0;
    if (neg) *e = -*e;
    return 1;
}

/* [+-] mantissa [exponent] ['.']: the trailing point ends a sentence. */
static int num_scan(const char *s, size_t n, num_info *ni)
{
    num_cur c = {s, n, 0};
    size_t w = 1;
    int ch = num_peek(&c, &w);
    memset(ni, 0, sizeof *ni);
    if (ch == '+' || ch == '-') {
        ni->neg = ch == '-';
        c.i += w;
    }
    if (!num_mantissa(&c, ni) || !num_exponent(&c, &ni->exp)) return 0;
    if (num_peek(&c, &w) == '.') c.i += w;
    return num_peek(&c, &w) == -1;
}

/* Write the significant digits (first_nz..last_nz), a '.' before digit
 * index dot_at (none when out of range). */
static void num_digits(const char *s, const num_info *ni, size_t dot_at, key_writer *w)
{
    size_t k = 0;
    for (size_t i = ni->m0; i < ni->m1 && k <= ni->last_nz; i++) {
        if (!is_digit(s[i])) continue;
        if (k == dot_at) wr_put(w, '.');
        if (k >= ni->first_nz) wr_put(w, s[i]);
        k++;
    }
}

static void put_zeros(key_writer *w, long long k)
{
    for (; k > 0; k--) wr_put(w, '0');
}

/* Canonical decimal, exact (no double rounding): no leading zeros, no
 * trailing fractional zeros, "0" for any zero, "0.5" for ".5". */
static void num_emit(const char *s, const num_info *ni, key_writer *w)
{
    if (!ni->has_nz) {
        wr_put(w, '0');
        return;
    }
    long long len = (long long)(ni->last_nz - ni->first_nz + 1);
    long long point = (long long)ni->nint + ni->exp - (long long)ni->first_nz;
    if (ni->neg) wr_put(w, '-');
    if (point <= 0) {
        wr_put(w, '0');
        wr_put(w, '.');
        put_zeros(w, -point);
        num_digits(s, ni, SIZE_MAX, w);
    } else if (point < len) {
        num_digits(s, ni, ni->first_nz + (size_t)point, w);
    } else {
        num_digits(s, ni, SIZE_MAX, w);
        put_zeros(w, point - len);
    }
}

/* 1 and the key written when s is a number, else 0 and nothing written. */
static int number_key(const char *s, size_t n, key_writer *w)
{
    num_info ni;
    if (!num_scan(s, n, &ni)) return 0;
    num_emit(s, &ni, w);
    return 1;
}

/* ---------------------------------------------------------------- dates */

/* A run of lo..hi digits at s[*i] into *v. */
static int read_uint(const char *s, size_t n, size_t *i, size_t lo, size_t hi, unsigned *v)
{
    size_t k = 0;
    *v = 0;
    while (*i + k < n && is_digit(s[*i + k])) {
        if (++k > hi) return 0;
        *v = *v * 10 + (unsigned)(s[*i + k - 1] - '0');
    }
    *i += k;
    return k >= lo;
}

static int eat(const char *s, size_t n, size_t *i, char c)
{
    if (*i >= n || s[*i] != c) return 0;
    (*i)++;
    return 1;
}

/* M/D/YYYY: 1-2 digits, 1-2 digits, 4 digits.  Values are not range
 * checked ("13/45/2021" is a date key), as in the reference figures. */
static int date_parse(const char *s, size_t n, size_t *i, unsigned *m, unsigned *d, unsigned *y)
{
    return read_uint(s, n, i, 1, 2, m) && eat(s, n, i, '/') && read_uint(s, n, i, 1, 2, d) &&
           eat(s, n, i, '/') && read_uint(s, n, i, 4, 4, y);
}

static void put_uint(key_writer *w, unsigned v, int width)
{
    char b[8];
    for (int k = width - 1; k >= 0; k--, v /= 10) b[k] = (char)('0' + v % 10);
    for (int k = 0; k < width; k++) wr_put(w, b[k]);
}

/* The whole answer must be one date (white space around it allowed, not a
 * final '.': the reference figures count "11/11/2019." as another answer);
 * key MM/DD/YYYY. */
static int date_key(const char *s, size_t n, key_writer *w)
{
    unsigned m, d, y;
    size_t i = skip_ws(s, n, 0);
    if (!date_parse(s, n, &i, &m, &d, &y) || skip_ws(s, n, i) != n) return 0;
    put_uint(w, m, 2);
    wr_put(w, '/');
    put_uint(w, d, 2);
    wr_put(w, '/');
    put_uint(w, y, 4);
    return 1;
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
 * of white space and ASCII lower-cased, otherwise verbatim (NUL bytes,
 * possible only through an explicit n, become spaces so a key stays a C
 * string).  Lower-casing is what the reference figures need: AC-beta on
 * mot_gpt35_date_cot2_t08 stops at 8.407 samples only when "Today is ..."
 * and "today is ..." are one answer; punctuation and articles are kept. */
static void raw_key(const char *s, size_t n, key_writer *w)
{
    size_t i = skip_ws(s, n, 0), end = i;
    for (size_t j = i; j < n;) {
        size_t k = ws_len(s, n, j);
        j += k ? k : 1;
        if (!k) end = j;
    }
    for (; i < end; i++) {
        char c = s[i] ? s[i] : ' ';
        wr_put(w, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
    }
}

/* ------------------------------------------------------------ dispatch */

static int type_ok(es_answer_type t)
{
    return (unsigned)t <= (unsigned)ES_ANSWER_CHOICE;
}

/* Typed key, falling back to the raw key when s does not parse as t. */
static void answer_key(es_answer_type t, const char *s, size_t n, key_writer *w)
{
    int done = 0;
    switch (t) {
    case ES_ANSWER_TEXT: text_key(s, n, w); return;
    case ES_ANSWER_NUMBER: done = number_key(s, n, w); break;
    case ES_ANSWER_DATE: done = date_key(s, n, w); break;
    case ES_ANSWER_CHOICE: done = choice_key(s, n, w); break;
    }
    if (!done) raw_key(s, n, w);
}

/* Key of NUL-terminated s in buf when it fits, else in a heap buffer the
 * caller frees (result != buf); NULL when that allocation fails.  Keys of
 * any length work, at the cost of one malloc beyond KEY_STACK bytes. */
static char *key_of(es_answer_type t, const char *s, char *buf, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    key_writer w = {buf, cap, 0};
    answer_key(t, s, n, &w);
    if (w.len < cap) {
        buf[w.len] = '\0';
        *len = w.len;
        return buf;
    }
    char *heap = malloc(w.len + 1);
    if (!heap) return NULL;
    w = (key_writer){heap, w.len + 1, 0};
    answer_key(t, s, n, &w);
    heap[w.len] = '\0';
    *len = w.len;
    return heap;
}

static void key_release(char *key, const char *buf)
{
    if (key != buf) free(key);
}

/* ------------------------------------------------------------ public API */

static const char *const type_names[] = {"text", "number", "date", "choice"};

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
    answer_key(t, s, n, &w);
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
