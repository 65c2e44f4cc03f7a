/*
 * cues.c - probe cues for recorded traces whose probes sit at paragraph
 * ends (es_paragraph_cues).  The per-paragraph reading is the core's
 * es_text_cues, the same one a live driver calls on the paragraph it has
 * just streamed, and the paragraphs are es_para_split's, the same splitter.
 */
#include <string.h>

#include "earlystop.h"
#include "earlystop_io.h"

/* Visits the paragraphs of the reasoning (es_para_split, the splitter a live
 * driver runs as the text streams in); with cues, writes the cues of the
 * paragraphs from index `first` on.  Returns the count. */
static size_t paragraphs(const char *t, size_t first, uint32_t *cues)
{
    es_para_split ps;
    es_para_split_init(&ps);
    size_t n = strlen(t), count = 0, a, b;
    uint32_t flags;
    while (es_para_split_next(&ps, t, n, 1, &a, &b, &flags)) {
        if (cues && count >= first) cues[count - first] = es_text_cues(t + a, b - a) | flags;
        count++;
    }
    return count;
}

int es_paragraph_cues(const char *text, size_t n_probes, uint32_t *cues)
{
    if (!text) return ES_EFORMAT;
    size_t total = paragraphs(text, 0, NULL);
    if (n_probes > total) return ES_EFORMAT;
    if (!n_probes) return ES_OK;
    paragraphs(text, total - n_probes, cues);
    return ES_OK;
}
