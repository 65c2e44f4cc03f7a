/*
 * cues.c - probe cues for recorded traces whose probes sit at paragraph
 * ends (es_paragraph_cues).  The per-paragraph reading is the core's
 * es_text_cues, the same one a live driver calls on the paragraph it has
 * just streamed; this file only finds the paragraphs in a stored text.
 */
#include <string.h>

#include "earlystop.h"
#include "earlystop_io.h"

static const char think_close[] = "</think>";

/* A blank line ends a paragraph: '\n', spaces or tabs, '\n'. */
static size_t blank_line_end(const char *t, size_t i, size_t n)
{
    if (t[i] != '\n') return 0;
    size_t j = i + 1;
    while (j < n && (t[j] == ' ' || t[j] == '\t' || t[j] == '\r')) j++;
    return j < n && t[j] == '\n' ? j + 1 : 0;
}

static int has_text(const char *t, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (t[i] != ' ' && t[i] != '\t' && t[i] != '\n' && t[i] != '\r') return 1;
    return 0;
}

/* Visits the non-blank paragraphs of t[0..n) in order; with cues, writes the
 * cues of the paragraphs from index `first` on.  Returns the count. */
static size_t paragraphs(const char *t, size_t n, size_t first, uint32_t *cues)
{
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= n;) {
        size_t e = i < n ? blank_line_end(t, i, n) : 0;
        if (i == n || e) {
            if (has_text(t, start, i)) {
                if (cues && count >= first) cues[count - first] = es_text_cues(t + start, i - start);
                count++;
            }
            if (i == n) break;
            start = i = e;
            continue;
        }
        i++;
    }
    return count;
}

int es_paragraph_cues(const char *text, size_t n_probes, uint32_t *cues)
{
    if (!text) return ES_EFORMAT;
    const char *close = strstr(text, think_close);
    size_t n = close ? (size_t)(close - text) : strlen(text);
    size_t total = paragraphs(text, n, 0, NULL);
    if (n_probes > total) return ES_EFORMAT;
    if (!n_probes) return ES_OK;
    paragraphs(text, n, total - n_probes, cues);
    if (close) cues[n_probes - 1] |= ES_CUE_END;
    return ES_OK;
}
