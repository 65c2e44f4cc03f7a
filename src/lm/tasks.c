/* tasks.c - the generated reasoning tasks the built-in model learns.
 *
 * Each example is a question (the prompt), a chain of thought with one step
 * per line, an answer line "So the answer is X." and then, like a reasoning
 * model, usually one or two re-checks "Wait, let me check: ... So the answer
 * is X.".  At rate ES_TASK_SLIP_RATE a step makes a slip (an off-by-one sum,
 * a wrong month length, the wrong letter) that carries into the first answer
 * line; the first re-check then names and corrects it.  So the answer settles
 * before the trace ends, and sometimes changes once on the way: something
 * real for a stopping rule to decide.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "earlystop_lm.h"

typedef struct sbuf {
    char *p;
    size_t cap, n;
    int overflow;
} sbuf;

/* Starts an empty string in a caller buffer. */
static void sb_init(sbuf *b, char *p, size_t cap)
{
    b->p = p; b->cap = cap; b->n = 0; b->overflow = 0;
    p[0] = '\0';
}

/* Bounded append: an overflow is remembered and reported once at the end. */
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= b->cap - b->n) { b->overflow = 1; b->n = b->cap - 1; }
    else b->n += (size_t)k;
}

static const char *const task_names[ES_TASK_COUNT] = {"last_letters", "date", "arithmetic"};

/* Names as on the command line and in trace files. */
int es_task_parse(const char *name, es_task_kind *out)
{
    for (int i = 0; name && i < ES_TASK_COUNT; i++)
        if (!strcmp(name, task_names[i])) { *out = (es_task_kind)i; return ES_OK; }
    return ES_EINVAL;
}

/* Never NULL, so it can go straight into printf. */
const char *es_task_name(es_task_kind k)
{
    return (unsigned)k < ES_TASK_COUNT ? task_names[k] : "unknown";
}

/* How answers of each task compare (trace format v1 answer_type). */
es_answer_type es_task_answer_type(es_task_kind k)
{
    switch (k) {
    case ES_TASK_DATE: return ES_ANSWER_DATE;
    case ES_TASK_ARITHMETIC: return ES_ANSWER_NUMBER;
    default: return ES_ANSWER_TEXT;
    }
}

/* Re-checks after the settled answer: none 15%, one 60%, two 25%. */
static int draw_rechecks(es_rng *r)
{
    uint32_t u = es_rng_below(r, 100);
    return u < 15 ? 0 : (u < 75 ? 1 : 2);
}

/* One uniform per decision keeps the streams easy to reason about. */
static int chance(es_rng *r, float p)
{
    return es_rng_float(r) < p;
}

/* ----------------------------------------------------------- last letters */

/* Random pronounceable words: the model must copy letters, not recall names. */
static void random_word(es_rng *r, char *w)
{
    static const char cons[] = "bcdfghklmnprstvz", vow[] = "aeiou";
    int syl = 1 + (int)es_rng_below(r, 3), n = 0;
    for (int s = 0; s < syl; s++) {
        w[n++] = cons[es_rng_below(r, sizeof cons - 1)];
        w[n++] = vow[es_rng_below(r, sizeof vow - 1)];
        if (chance(r, 0.35f)) w[n++] = cons[es_rng_below(r, sizeof cons - 1)];
    }
    w[n] = '\0';
}

/* Words, their last letters, an optional slip on one word, re-checks. */
static int make_last_letters(es_rng *r, es_task_example *ex)
{
    char words[5][16], right[8], said[8];
    int n = 3 + (int)es_rng_below(r, 3);
    for (int i = 0; i < n; i++) {
        random_word(r, words[i]);
        size_t len = strlen(words[i]);
        right[i] = words[i][len - 1];
    }
    right[n] = '\0';
    memcpy(said, right, sizeof said);
    int slip = chance(r, ES_TASK_SLIP_RATE) ? (int)es_rng_below(r, (uint32_t)n) : -1;
    if (slip >= 0) said[slip] = words[slip][strlen(words[slip]) - 2];
    ex->slipped = slip >= 0;
    sbuf q, c;
    sb_init(&q, ex->prompt, sizeof ex->prompt);
    sb_add(&q, "Last letters of \"");
    for (int i = 0; i < n; i++) sb_add(&q, i ? " %s" : "%s", words[i]);
    sb_add(&q, "\"?\n");
    sb_init(&c, ex->completion, sizeof ex->completion);
    for (int i = 0; i < n; i++) sb_add(&c, "%s -> %c\n", words[i], said[i]);
    sb_add(&c, "So the answer is %s.\n", said);
    if (slip >= 0)
        sb_add(&c, "Wait, let me check: %s ends in %c, not %c. So the answer is %s.\n",
               words[slip], right[slip], said[slip], right);
    int k = draw_rechecks(r) - (slip >= 0);
    for (int j = 0; j < k; j++) {
        sb_add(&c, "Wait, let me check: ");
        for (int i = 0; i < n; i++) sb_add(&c, i ? "+%c" : "%c", right[i]);
        sb_add(&c, "=%s. So the answer is %s.\n", right, right);
    }
    snprintf(ex->gold, sizeof ex->gold, "%s", right);
    return q.overflow || c.overflow ? ES_ERANGE : ES_OK;
}

/* ------------------------------------------------------------------- date */

static const char *const month_names[12] = {
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December"};

/* Gregorian leap years, so February is right in every year drawn. */
static int month_days(int m, int y)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

typedef struct date_steps {
    int m, d, y, add, sum, len, nm, nd, ny;
} date_steps;

/* Work out m/d/y + add days the way the chain says it (one month wrap). */
static void date_solve(date_steps *s)
{
    s->sum = s->d + s->add;
    s->nm = s->m; s->nd = s->sum; s->ny = s->y;
    if (s->sum > s->len) {
        s->nd = s->sum - s->len;
        s->nm = s->m == 12 ? 1 : s->m + 1;
        s->ny = s->m == 12 ? s->y + 1 : s->y;
    }
}

/* The chain as the model writes it, from possibly slipped steps. */
static void date_chain(sbuf *c, const date_steps *s)
{
    sb_add(c, "%d+%d=%d.\n", s->d, s->add, s->sum);
    if (s->sum > s->len)
        sb_add(c, "%s has %d days, %d-%d=%d, so %02d/%02d.\n", month_names[s->m - 1], s->len,
               s->sum, s->len, s->nd, s->nm, s->nd);
    else
        sb_add(c, "%s has %d days, %d<=%d, same month.\n", month_names[s->m - 1], s->len,
               s->sum, s->len);
    sb_add(c, "So the answer is %02d/%02d/%04d.\n", s->nm, s->nd, s->ny);
}

/* Level 0 adds up to 28 days (two-digit sums), level 1 up to 12. */
static int make_date(es_rng *r, es_task_example *ex, int level)
{
    date_steps ok, bad;
    ok.y = 2015 + (int)es_rng_below(r, 11);
    ok.m = 1 + (int)es_rng_below(r, 12);
    ok.len = month_days(ok.m, ok.y);
    ok.d = 1 + (int)es_rng_below(r, (uint32_t)ok.len);
    ok.add = 1 + (int)es_rng_below(r, level == 0 ? 28 : 12);
    date_solve(&ok);
    bad = ok;
    int slip = chance(r, ES_TASK_SLIP_RATE) ? 1 + (int)es_rng_below(r, 2) : 0;
    if (slip == 2) bad.len = ok.len == 31 ? 30 : 31;
    if (slip == 1) {
        bad.sum = ok.sum + (chance(r, 0.5f) ? 1 : -1);
        bad.nm = bad.m; bad.nd = bad.sum; bad.ny = bad.y;
        if (bad.sum > bad.len) {
            bad.nd = bad.sum - bad.len;
            bad.nm = bad.m == 12 ? 1 : bad.m + 1;
            bad.ny = bad.m == 12 ? bad.y + 1 : bad.y;
        }
    } else if (slip == 2) {
        date_solve(&bad);
    }
    ex->slipped = slip && (bad.nd != ok.nd || bad.nm != ok.nm);
    if (!ex->slipped) bad = ok;
    sbuf q, c;
    sb_init(&q, ex->prompt, sizeof ex->prompt);
    sb_add(&q, "What is the date %d days after %02d/%02d/%04d?\n", ok.add, ok.m, ok.d, ok.y);
    sb_init(&c, ex->completion, sizeof ex->completion);
    date_chain(&c, &bad);
    char ans[40];
    snprintf(ans, sizeof ans, "%02d/%02d/%04d", ok.nm, ok.nd, ok.ny);
    if (ex->slipped && bad.sum != ok.sum)
        sb_add(&c, "Wait, let me check: %d+%d=%d, not %d. So the answer is %s.\n",
               ok.d, ok.add, ok.sum, bad.sum, ans);
    else if (ex->slipped)
        sb_add(&c, "Wait, let me check: %s has %d days, not %d. So the answer is %s.\n",
               month_names[ok.m - 1], ok.len, bad.len, ans);
    int k = draw_rechecks(r) - ex->slipped;
    for (int j = 0; j < k; j++) {
        if (ok.sum > ok.len)
            sb_add(&c, "Wait, let me check: %d-%d=%d. So the answer is %s.\n", ok.sum, ok.len,
                   ok.nd, ans);
        else
            sb_add(&c, "Wait, let me check: %d-%d=%d. So the answer is %s.\n", ok.sum, ok.d,
                   ok.add, ans);
    }
    snprintf(ex->gold, sizeof ex->gold, "%.31s", ans);
    return q.overflow || c.overflow ? ES_ERANGE : ES_OK;
}

/* ------------------------------------------------------------- arithmetic */

enum { ARITH_MAX_STEPS = 3 };

typedef struct arith {
    int n;                       /* steps */
    int start;
    char op[ARITH_MAX_STEPS];
    int arg[ARITH_MAX_STEPS];
    int val[ARITH_MAX_STEPS + 1];   /* val[0] = start, val[i+1] after step i */
} arith;

/* The three operations the arithmetic task uses. */
static int apply(char op, int a, int b)
{
    return op == '+' ? a + b : (op == '-' ? a - b : a * b);
}

/* Level 0: two or three steps, sums and differences of two-digit numbers, at
 * most one product by 2..5, every value between 0 and 999. */
static void arith_draw(es_rng *r, arith *a)
{
    a->n = 2 + (int)es_rng_below(r, 2);
    a->start = 10 + (int)es_rng_below(r, 90);
    a->val[0] = a->start;
    int used_mul = 0;
    for (int i = 0; i < a->n; i++) {
        int cur = a->val[i];
        uint32_t pick = es_rng_below(r, 3);
        if (pick == 2 && !used_mul && cur * 5 < 1000) {
            a->op[i] = '*'; a->arg[i] = 2 + (int)es_rng_below(r, 4); used_mul = 1;
        } else if (pick == 1 && cur >= 11) {
            a->op[i] = '-'; a->arg[i] = 1 + (int)es_rng_below(r, (uint32_t)(cur < 99 ? cur : 99));
        } else {
            a->op[i] = '+'; a->arg[i] = 1 + (int)es_rng_below(r, 99);
        }
        a->val[i + 1] = apply(a->op[i], cur, a->arg[i]);
    }
}

/* Parenthesised left to right so the steps follow the writing order. */
static void arith_question(sbuf *q, const arith *a)
{
    sb_add(q, "Compute ");
    for (int i = 0; i < a->n - 1; i++) sb_add(q, "(");
    sb_add(q, "%d", a->start);
    for (int i = 0; i < a->n; i++) sb_add(q, "%c%d%s", a->op[i], a->arg[i], i < a->n - 1 ? ")" : "");
    sb_add(q, ".\n");
}

/* Level 1: three steps on small numbers, one-digit operands (a product by 2
 * or 3 at most once), every value between 0 and 199. */
static void arith_draw_small(es_rng *r, arith *a)
{
    a->n = 3;
    a->start = 2 + (int)es_rng_below(r, 29);
    a->val[0] = a->start;
    int used_mul = 0;
    for (int i = 0; i < a->n; i++) {
        int cur = a->val[i];
        uint32_t pick = es_rng_below(r, 3);
        if (pick == 2 && !used_mul && cur <= 60) {
            a->op[i] = '*'; a->arg[i] = 2 + (int)es_rng_below(r, 2); used_mul = 1;
        } else if (pick == 1 && cur >= 10) {
            a->op[i] = '-'; a->arg[i] = 1 + (int)es_rng_below(r, 9);
        } else {
            a->op[i] = '+'; a->arg[i] = 1 + (int)es_rng_below(r, 9);
        }
        a->val[i + 1] = apply(a->op[i], cur, a->arg[i]);
    }
}

static int make_arithmetic(es_rng *r, es_task_example *ex, int level)
{
    arith a, said;
    if (level == 0) arith_draw(r, &a);
    else arith_draw_small(r, &a);
    said = a;
    int slip = chance(r, ES_TASK_SLIP_RATE) ? (int)es_rng_below(r, (uint32_t)a.n) : -1;
    if (slip >= 0) {
        int off = chance(r, 0.5f) ? 1 : 10;
        said.val[slip + 1] += chance(r, 0.5f) || said.val[slip + 1] < off ? off : -off;
        for (int i = slip + 1; i < a.n; i++) said.val[i + 1] = apply(a.op[i], said.val[i], a.arg[i]);
    }
    ex->slipped = slip >= 0 && said.val[a.n] != a.val[a.n] && said.val[a.n] >= 0;
    if (!ex->slipped) { said = a; slip = -1; }
    sbuf q, c;
    sb_init(&q, ex->prompt, sizeof ex->prompt);
    arith_question(&q, &a);
    sb_init(&c, ex->completion, sizeof ex->completion);
    for (int i = 0; i < a.n; i++)
        sb_add(&c, "%d%c%d=%d.\n", said.val[i], a.op[i], a.arg[i], said.val[i + 1]);
    sb_add(&c, "So the answer is %d.\n", said.val[a.n]);
    int ans = a.val[a.n];
    if (slip >= 0) {
        sb_add(&c, "Wait, let me check: %d%c%d=%d, not %d.", a.val[slip], a.op[slip], a.arg[slip],
               a.val[slip + 1], said.val[slip + 1]);
        for (int i = slip + 1; i < a.n; i++)
            sb_add(&c, " %d%c%d=%d.", a.val[i], a.op[i], a.arg[i], a.val[i + 1]);
        sb_add(&c, " So the answer is %d.\n", ans);
    }
    int k = draw_rechecks(r) - (slip >= 0);
    for (int j = 0; j < k; j++) {
        int i = a.n - 1;
        sb_add(&c, "Wait, let me check: %d%c%d=%d. So the answer is %d.\n", a.val[i], a.op[i],
               a.arg[i], a.val[i + 1], ans);
    }
    snprintf(ex->gold, sizeof ex->gold, "%d", ans);
    return q.overflow || c.overflow ? ES_ERANGE : ES_OK;
}

/* ------------------------------------------------------------------ entry */

int es_task_draw_level(es_task_kind k, int level, es_rng *rng, es_task_example *out)
{
    memset(out, 0, sizeof *out);
    out->kind = k;
    if (level < 0 || level > 1) return ES_EINVAL;
    switch (k) {
    case ES_TASK_LAST_LETTERS: return make_last_letters(rng, out);
    case ES_TASK_DATE: return make_date(rng, out, level);
    case ES_TASK_ARITHMETIC: return make_arithmetic(rng, out, level);
    default: return ES_EINVAL;
    }
}

/* The evaluated level; training may ask for another. */
int es_task_draw(es_task_kind k, es_rng *rng, es_task_example *out)
{
    return es_task_draw_level(k, ES_TASK_LEVEL, rng, out);
}

/* The question stream is salted so that item j of seed S never shares its
 * random stream with sample streams es_lm_sample_rng(S, j, i). */
int es_task_make(es_task_kind k, uint64_t seed, uint64_t index, es_task_example *out)
{
    es_rng r;
    es_rng_stream(&r, seed ^ ES_LM_QUESTION_SALT, (uint64_t)k, index);
    return es_task_draw(k, &r, out);
}

/* The last cue wins: a re-check that corrects an answer replaces it. */
int es_task_extract_answer_cue(const char *text, const char *cue, char *out, size_t cap)
{
    const char *last = NULL;
    out[0] = '\0';
    if (!*cue) return 0;
    for (const char *p = strstr(text, cue); p; p = strstr(p + 1, cue)) last = p;
    if (!last) return 0;
    const char *a = last + strlen(cue);
    size_t n = strcspn(a, ".\n");
    if (!a[n] || n == 0) return 0;     /* cut off before the '.': no answer */
    if (n >= cap) n = cap - 1;
    memcpy(out, a, n);
    out[n] = '\0';
    return 1;
}

int es_task_extract_answer(const char *text, char *out, size_t cap)
{
    return es_task_extract_answer_cue(text, ES_LM_ANSWER_CUE, out, cap);
}
