/* family.c - how to ask a model family for its answer and how to read it.
 *
 * generic: the built-in model and plain chains of thought.  A probe appends
 * "So the answer is " (on a new line when the text is mid-line) and reads
 * the answer up to '.', as the built-in generator's own probes do (a newline
 * or the end first: no answer).  A whole sample's answer is what follows its
 * last "So the answer is " up to '.' or a newline (es_task_extract_answer_cue:
 * the built-in model's own rule).
 *
 * deepseek-r1, qwen3: reasoning between <think> and </think>, the final
 * answer in \boxed{}.  The probe stays inside the reasoning with Dynasor's
 * cue ("... **Final Answer**\n\n\\[ \\boxed{") and reads up to the brace that
 * closes the box; a whole sample's answer is its last \boxed{...}.
 */
#include <stdio.h>
#include <string.h>

#include "earlystop_lm.h"
#include "sv.h"

static const char dynasor_cue[] =
    "\n\n... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{";

const char *es_family_names(void) { return "generic, deepseek-r1, qwen3"; }

int es_family_get(const char *name, es_family *f)
{
    memset(f, 0, sizeof *f);
    if (!strcmp(name, "generic")) {
        snprintf(f->probe_cue, sizeof f->probe_cue, "So the answer is ");
        snprintf(f->answer_cue, sizeof f->answer_cue, "So the answer is ");
        snprintf(f->sample_cue, sizeof f->sample_cue, "So the answer is ");
        f->cue_newline = 1;
        f->probe_max_tokens = 12;
        f->answer_max_tokens = 32;
    } else if (!strcmp(name, "deepseek-r1") || !strcmp(name, "qwen3")) {
        snprintf(f->probe_cue, sizeof f->probe_cue, "%s", dynasor_cue);
        snprintf(f->answer_cue, sizeof f->answer_cue, "%s", dynasor_cue);
        snprintf(f->think_open, sizeof f->think_open, "<think>\n");
        snprintf(f->think_close, sizeof f->think_close, "\n</think>\n\n");
        f->boxed = 1;
        f->probe_max_tokens = 24;
        f->answer_max_tokens = 64;
    } else {
        return ES_EINVAL;
    }
    snprintf(f->name, sizeof f->name, "%s", name);
    return ES_OK;
}

static int copy_answer(const char *s, size_t n, char *ans, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) {
        if (cap) ans[0] = '\0';
        return 0;
    }
    if (n >= cap) n = cap - 1;
    memcpy(ans, s, n);
    ans[n] = '\0';
    return 1;
}

/* The content of a box whose '{' was just before s: up to the brace that
 * closes it (nested braces counted); -1 when it never closes. */
static long box_len(const char *s, size_t n)
{
    int depth = 1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) { i++; continue; }
        if (s[i] == '{') depth++;
        else if (s[i] == '}' && --depth == 0) return (long)i;
    }
    return -1;
}

int es_family_probe_answer(const es_family *f, const char *out, size_t n, char *ans, size_t cap)
{
    if (cap) ans[0] = '\0';
    if (f->boxed) {
        long k = box_len(out, n);
        return k < 0 ? 0 : copy_answer(out, (size_t)k, ans, cap);
    }
    size_t k = 0;
    while (k < n && out[k] != '.' && out[k] != '\n') k++;
    if (k == n || out[k] != '.' || k == 0) return 0;
    if (k >= cap) return 0;
    memcpy(ans, out, k);
    ans[k] = '\0';
    return 1;
}

int es_family_sample_answer(const es_family *f, const char *text, char *ans, size_t cap)
{
    if (cap) ans[0] = '\0';
    if (f->boxed) {
        const char *last = NULL, *p = text;
        while ((p = strstr(p, "\\boxed{")) != NULL) {
            last = p;
            p += 7;
        }
        if (!last) return 0;
        const char *s = last + 7;
        long k = box_len(s, strlen(s));
        return k < 0 ? 0 : copy_answer(s, (size_t)k, ans, cap);
    }
    return es_task_extract_answer_cue(text, f->sample_cue, ans, cap);
}

/* The answer a paragraph shows (paragraph probes, sample.h).  Numbers are
 * read as the *_think files read them (the last number written); math
 * answers are the family's when the paragraph writes one (a box, a cue)
 * and else the last number (most math answers that get boxed are numbers,
 * and the box often comes only at the very end); the other types have no
 * reading of their own in free text, so only the family's answer counts. */
int es_sv_paragraph_answer(const es_family *f, es_answer_type t, char *text, size_t a, size_t b, char *ans, size_t cap)
{
    if (cap) ans[0] = '\0';
    if (b <= a) return 0;
    if (t == ES_ANSWER_NUMBER) return es_text_last_number(text + a, b - a, ans, cap);
    char keep = text[b];
    text[b] = '\0';
    int got = es_family_sample_answer(f, text + a, ans, cap);
    text[b] = keep;
    if (!got && t == ES_ANSWER_MATH) got = es_text_last_number(text + a, b - a, ans, cap);
    return got;
}
