/*
 * fuzz_cues.c - libFuzzer target for the text cues: es_text_cues on a
 * paragraph and es_paragraph_cues on a whole text, on arbitrary bytes.
 *
 * Besides "no crash" and no read past the given length (the paragraph is
 * handed over without a terminator, in a buffer of exactly its size), it
 * checks the promises the learned stopper relies on: ES_CUE_READ is always
 * set and only the three cue bits besides it; a text's probes line up with
 * its last paragraphs, so asking for fewer probes gives the tail of the
 * same answer, and ES_CUE_END falls on the last probe or nowhere.
 *
 * Input layout: byte 0 = probes asked for (mod 16), then the text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"
#include "earlystop_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    size_t n = data[0] % 16, len = size - 1;
    char *para = malloc(len ? len : 1);
    if (!para) abort();
    memcpy(para, data + 1, len);
    uint32_t c = es_text_cues(para, len);
    if (!(c & ES_CUE_READ) || (c & ~(uint32_t)(ES_CUE_READ | ES_CUE_CONCLUDE | ES_CUE_CHECK))) abort();
    free(para);

    char *text = malloc(len + 1);
    if (!text) abort();
    memcpy(text, data + 1, len);
    text[len] = '\0';
    uint32_t all[16], tail[16];
    int rc = es_paragraph_cues(text, n, all);
    if (rc == ES_OK && n > 0) {
        for (size_t j = 0; j < n; j++) {
            if (!(all[j] & ES_CUE_READ)) abort();
            if ((all[j] & ES_CUE_END) && j + 1 != n) abort();
        }
        if (es_paragraph_cues(text, n - 1, tail) != ES_OK) abort();
        for (size_t j = 0; j + 1 < n; j++)
            if (tail[j] != all[j + 1]) abort();
    } else if (rc != ES_OK && rc != ES_EFORMAT) {
        abort();
    }
    free(text);
    return 0;
}
