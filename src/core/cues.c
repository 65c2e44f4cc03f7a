/*
 * cues.c - what a paragraph of reasoning says about itself (es_text_cues).
 *
 * A probe that reads only the answer written so far cannot tell a model
 * that has settled from one that will change its mind: on the *_think files
 * the same numbers recur across paragraphs either way.  The words around
 * them can.  Reasoning models mark a conclusion ("Therefore ...", "the
 * answer is ...") and the start of a re-check ("Wait, ...", "Let me
 * double-check ...") in a few fixed phrases; DEER probes at exactly those
 * "Wait"s.  The learned stopper reads the two marks as features
 * (p_conclude, p_check) beside whether the thinking closes there (p_end).
 *
 * The phrase lists are English, lower-case, matched case-insensitively on
 * whole words; a trailing '*' lets the last word be a prefix ("re*" takes
 * "recheck", "recalculate").  They are the lists measured in
 * docs/learning.md: change them and the shipped figures change.
 */
#include <stddef.h>
#include <stdint.h>

#include "earlystop.h"

/* Anywhere in the paragraph. */
static const char *const conclude_phrases[] = {
    "therefore", "thus", "the answer is", "final answer", "answer should be", "so the answer", NULL,
};

/* At the paragraph's start (after spaces and markdown emphasis). */
static const char *const check_phrases[] = {
    "wait", "hmm", "alternatively", "actually", "however", "but wait", "but let me", "double-check*",
    "let me double*", "let me check*", "let me verify*", "let me make sure", "let me confirm*", "let me re*",
    "let's double*", "let's check*", "let's verify*", "let's confirm*", "let us check*", "let us verify*",
    "to double*", "to verify*", "to confirm*", "to check*", "just to", "checking", "verifying", "another way",
    NULL,
};

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }
static int is_word(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/* Length of the match of `phrase` at t[i..n) (whole words), 0 if none.
 * "'" and "’" in the text both match "'" in a phrase. */
static size_t match_at(const char *t, size_t n, size_t i, const char *phrase)
{
    size_t j = i;
    const char *p = phrase;
    for (; *p && *p != '*'; p++) {
        if (j >= n) return 0;
        if (*p == '\'' && j + 2 < n && (unsigned char)t[j] == 0xE2 && (unsigned char)t[j + 1] == 0x80 &&
            (unsigned char)t[j + 2] == 0x99) {
            j += 3;
            continue;
        }
        if (lower((unsigned char)t[j]) != *p) return 0;
        j++;
    }
    if (*p != '*' && j < n && is_word((unsigned char)t[j])) return 0; /* "thus" must not take "thusly" */
    return j - i;
}

static int contains(const char *t, size_t n, const char *const *phrases)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && is_word((unsigned char)t[i - 1])) continue; /* words start only after a non-word */
        for (const char *const *p = phrases; *p; p++)
            if (match_at(t, n, i, *p)) return 1;
    }
    return 0;
}

static int starts_with(const char *t, size_t n, const char *const *phrases)
{
    size_t i = 0;
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r' || t[i] == '*' || t[i] == '_' ||
                     t[i] == '>' || t[i] == '-'))
        i++;
    for (const char *const *p = phrases; *p; p++)
        if (match_at(t, n, i, *p)) return 1;
    return 0;
}

uint32_t es_text_cues(const char *text, size_t n)
{
    uint32_t c = ES_CUE_READ;
    if (!text) return c;
    if (contains(text, n, conclude_phrases)) c |= ES_CUE_CONCLUDE;
    if (starts_with(text, n, check_phrases)) c |= ES_CUE_CHECK;
    return c;
}
