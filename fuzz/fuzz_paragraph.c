/*
 * fuzz_paragraph.c - libFuzzer target for the paragraph splitter
 * (es_para_split) and the last-number reading (es_text_last_number) on
 * arbitrary bytes.
 *
 * Besides "no crash", it checks what the live drivers rely on: the text fed
 * in pieces (of a size the first byte picks) gives the same paragraphs as
 * the whole text at once; paragraphs lie inside the text, in order, never
 * overlap, hold some non-white text, and only the last one may carry
 * ES_CUE_END; es_paragraph_cues (the stored-text reading) accepts exactly as
 * many probes as there are paragraphs; a last number is found exactly when
 * the text has a digit, and fits the buffer however small.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"
#include "earlystop_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAXP = 4096 };

static size_t split(const char *t, size_t n, size_t step, size_t *pa, size_t *pb, uint32_t *pf)
{
    es_para_split ps;
    es_para_split_init(&ps);
    size_t k = 0, a, b;
    uint32_t f;
    for (size_t m = step ? 0 : n;; m = m + step < n ? m + step : n) {
        while (es_para_split_next(&ps, t, m, m == n, &a, &b, &f)) {
            if (k >= MAXP) abort();
            pa[k] = a, pb[k] = b, pf[k] = f, k++;
        }
        if (m == n) break;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    size_t step = data[0] % 17, n = size - 1;
    char *t = malloc(n + 1);
    if (!t) abort();
    memcpy(t, data + 1, n);
    t[n] = '\0';
    static size_t a1[MAXP], b1[MAXP], a2[MAXP], b2[MAXP];
    static uint32_t f1[MAXP], f2[MAXP], cues[MAXP];
    size_t k1 = split(t, n, 0, a1, b1, f1), k2 = split(t, n, step, a2, b2, f2);
    if (k1 != k2) abort();
    for (size_t i = 0; i < k1; i++) {
        if (a1[i] != a2[i] || b1[i] != b2[i] || f1[i] != f2[i]) abort();
        if (a1[i] >= b1[i] || b1[i] > n || (i && a1[i] < b1[i - 1])) abort();
        if (f1[i] & ~(uint32_t)ES_CUE_END) abort();
        if (f1[i] && i + 1 != k1) abort();
        int text = 0;
        for (size_t j = a1[i]; j < b1[i]; j++) text |= t[j] != ' ' && t[j] != '\t' && t[j] != '\n' && t[j] != '\r';
        if (!text) abort();
    }
    /* the stored-text reading sees the same paragraphs up to the first NUL */
    if (!memchr(t, '\0', n)) {
        if (es_paragraph_cues(t, k1, cues) != ES_OK) abort();
        if (es_paragraph_cues(t, k1 + 1, cues) != ES_EFORMAT) abort();
        for (size_t i = 0; i < k1; i++)
            if ((cues[i] & ES_CUE_END) != f1[i] || !(cues[i] & ES_CUE_READ)) abort();
    }
    int digit = 0;
    for (size_t j = 0; j < n; j++) digit |= t[j] >= '0' && t[j] <= '9';
    char small[3], big[64];
    if (es_text_last_number(t, n, big, sizeof big) != digit) abort();
    if (es_text_last_number(t, n, small, sizeof small) != digit || strlen(small) > 2) abort();
    free(t);
    return 0;
}
