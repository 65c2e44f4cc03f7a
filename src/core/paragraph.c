/*
 * paragraph.c - paragraphs of reasoning as the text grows, and the last
 * number written in a text: the two readings behind paragraph-end probes.
 *
 * A reasoning model's paragraphs are its natural probe points: each one is a
 * step, and the answer it has reached so far costs nothing to read off the
 * text (the *_think files' text proxy), where a forced probe costs a
 * request.  A live driver sees the text arrive in pieces, so the splitter
 * is incremental: it hands a paragraph out only once what follows is known
 * (whether "</think>" closes the thinking right after it, ES_CUE_END), and
 * es_paragraph_cues runs the same splitter on a stored text, so that cues
 * read live and cues read from the file agree by construction.
 */
#include <string.h>

#include "earlystop.h"

static const char think_close[] = "</think>";
#define CLOSE_LEN (sizeof think_close - 1)

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int has_text(const char *t, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (!is_space(t[i])) return 1;
    return 0;
}

void es_para_split_init(es_para_split *p) { memset(p, 0, sizeof *p); }

/* At t[i..n): 1 "</think>" is there, 0 it is not, -1 undecided (a proper
 * prefix of it runs to the end of the text so far). */
static int close_at(const char *t, size_t n, size_t i)
{
    size_t k = 0;
    while (k < CLOSE_LEN && i + k < n && t[i + k] == think_close[k]) k++;
    if (k == CLOSE_LEN) return 1;
    return i + k == n ? -1 : 0;
}

/* A blank line starting at t[i] == '\n': its end, 0 when there is none, or
 * (size_t)-1 when the text so far ends before it is decided.  The spaces
 * after it are scanned from *ws on (what an earlier, undecided call already
 * read), and *ws is left where this call stopped: a text that grows a
 * space at a time is read once, not once per call. */
static size_t blank_end(const char *t, size_t n, size_t i, size_t *ws)
{
    size_t j = *ws > i + 1 ? *ws : i + 1;
    while (j < n && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r')) j++;
    *ws = j;
    if (j == n) return (size_t)-1;
    return t[j] == '\n' ? j + 1 : 0;
}

/* The paragraph waiting after its blank line: handed out once the first
 * text after the blank lines says whether the thinking closes there. */
static int settle_pending(es_para_split *p, const char *t, size_t n, int final, size_t *a, size_t *b,
                          uint32_t *flags)
{
    size_t j = p->pend_next;
    while (j < n && is_space(t[j])) j++;
    p->pend_next = j; /* the spaces read stay read */
    int c = j < n ? close_at(t, n, j) : -1;
    if (c < 0 && !final) return 0;
    *a = p->pend_a;
    *b = p->pend_b;
    *flags = c == 1 ? ES_CUE_END : 0;
    p->pending = 0;
    if (c == 1) p->done = 1;
    return 1;
}

int es_para_split_next(es_para_split *p, const char *t, size_t n, int final, size_t *a, size_t *b, uint32_t *flags)
{
    *flags = 0;
    if (p->pending) return settle_pending(p, t, n, final, a, b, flags);
    if (p->done || !t) return 0;
    for (size_t i = p->scan; i < n; i++) {
        if (t[i] == '<') {
            int c = close_at(t, n, i);
            if (c < 0 && !final) {
                p->scan = i;
                return 0;
            }
            if (c == 1) {
                p->done = 1;
                if (!has_text(t, p->start, i)) return 0; /* the previous paragraph took the close (pending) */
                *a = p->start, *b = i, *flags = ES_CUE_END;
                return 1;
            }
        } else if (t[i] == '\n') {
            if (p->scan != i) p->ws = 0; /* a new candidate blank line */
            size_t e = blank_end(t, n, i, &p->ws);
            if (e == (size_t)-1 && !final) {
                p->scan = i;
                return 0;
            }
            if (e && e != (size_t)-1) {
                size_t s = p->start;
                p->start = p->scan = e;
                if (has_text(t, s, i)) {
                    p->pending = 1, p->pend_a = s, p->pend_b = i, p->pend_next = e;
                    return settle_pending(p, t, n, final, a, b, flags);
                }
                i = e - 1;
            }
        }
    }
    p->scan = n;
    if (!final) return 0;
    p->done = 1;
    if (!has_text(t, p->start, n)) return 0;
    *a = p->start, *b = n;
    return 1;
}

/* A number starting at t[i] (a digit): its end, with thousands groups
 * ",ddd" and one ".digits". */
static size_t number_end(const char *t, size_t n, size_t i)
{
    while (i < n && is_digit(t[i])) i++;
    while (i + 3 < n && t[i] == ',' && is_digit(t[i + 1]) && is_digit(t[i + 2]) && is_digit(t[i + 3])) i += 4;
    if (i + 1 < n && t[i] == '.' && is_digit(t[i + 1])) {
        i++;
        while (i < n && is_digit(t[i])) i++;
    }
    return i;
}

int es_text_last_number(const char *t, size_t n, char *out, size_t cap)
{
    if (cap) out[0] = '\0';
    size_t ls = 0, le = 0;
    int found = 0;
    for (size_t i = 0; t && i < n;) {
        if (!is_digit(t[i])) {
            i++;
            continue;
        }
        size_t e = number_end(t, n, i);
        ls = i > 0 && t[i - 1] == '-' ? i - 1 : i;
        le = e;
        found = 1;
        i = e;
    }
    if (!found || !cap) return found;
    size_t k = 0;
    for (size_t i = ls; i < le && k + 1 < cap; i++)
        if (t[i] != ',') out[k++] = t[i];
    out[k] = '\0';
    return 1;
}
