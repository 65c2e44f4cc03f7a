/*
 * bench_paragraph.c - what the paragraph splitter behind live paragraph
 * probes (es_para_split, src/core/paragraph.c) costs per byte of streamed
 * reasoning, the text arriving a byte at a time (the worst case for an
 * incremental reader: every call sees one new byte).  Two texts: the
 * shared qwq32b_gsm8k_think samples as the model wrote them, and a
 * degenerate one, a newline then a long run of spaces (a model stuck
 * emitting white space), where an undecided blank line must not be
 * rescanned on every call.  Figures: ns per byte, the median of ROUNDS
 * interleaved rounds; a cost that grows with the run's length would show
 * as ns per byte growing with N.  Nothing fails on a slow machine.
 *
 * Usage: bench_paragraph [ROUNDS]   (default 5)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "earlystop.h"
#include "earlystop_io.h"
#include "refdata.h"

static double stream(const char *t, size_t n, long *paragraphs)
{
    es_para_split p;
    es_para_split_init(&p);
    size_t a, b;
    uint32_t f;
    double t0 = es_wall_seconds();
    for (size_t k = 1; k <= n; k++)
        while (es_para_split_next(&p, t, k, k == n, &a, &b, &f)) (*paragraphs)++;
    return (es_wall_seconds() - t0) * 1e9 / (double)n;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > 99) rounds = 5;
    /* the real texts, one after another in one buffer (each streamed on its own) */
    char path[600];
    snprintf(path, sizeof path, "%s/traces/qwq32b_gsm8k_think.jsonl", es_ref_data_dir());
    es_trace_reader *r = NULL;
    es_error err = {0};
    size_t cap = 1 << 20, len = 0, n_texts = 0, off[1024];
    char *real = malloc(cap);
    if (!real) return 1;
    if (es_trace_reader_open(path, 0, &r, &err) == ES_OK) {
        es_item it;
        while (n_texts < 1023 && es_trace_reader_next(r, &it, &err) == ES_OK) {
            const char *s = it.samples[0].text;
            size_t m = s ? strlen(s) : 0;
            if (len + m >= cap) break;
            off[n_texts++] = len;
            memcpy(real + len, s, m);
            len += m;
        }
        off[n_texts] = len;
        es_trace_reader_free(r);
    }
    static const size_t spaces[3] = {10000, 40000, 160000};
    char *ws = malloc(spaces[2] + 2);
    if (!ws) return 1;
    ws[0] = 'A';
    ws[1] = '\n';
    memset(ws + 2, ' ', spaces[2]);
    double t[4][99];
    long paragraphs = 0;
    for (int k = 0; k < rounds; k++) {
        double ns = 0;
        for (size_t i = 0; i < n_texts; i++)
            ns += stream(real + off[i], off[i + 1] - off[i], &paragraphs) * (double)(off[i + 1] - off[i]);
        t[0][k] = len ? ns / (double)len : 0;
        for (int j = 0; j < 3; j++) t[1 + j][k] = stream(ws, spaces[j] + 2, &paragraphs);
    }
    printf("bench_paragraph: ns per streamed byte, median of %d interleaved rounds (byte-at-a-time)\n", rounds);
    for (int j = 0; j < 4; j++) qsort(t[j], (size_t)rounds, sizeof(double), cmp);
    if (len) printf("  qwq32b_gsm8k_think, %zu texts, %zu bytes %6.1f\n", n_texts, len, t[0][rounds / 2]);
    else printf("  qwq32b_gsm8k_think texts: shared data absent, skipped\n");
    for (int j = 0; j < 3; j++) printf("  newline + %6zu spaces               %8.1f\n", spaces[j], t[1 + j][rounds / 2]);
    printf("  (%ld paragraphs read in all)\n", paragraphs);
    free(real);
    free(ws);
    return 0;
}
