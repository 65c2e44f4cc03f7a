/*
 * fuzz_answer.c - libFuzzer target for answer normalisation: es_answer_normalize,
 * es_answer_equal and es_answer_f1 on arbitrary bytes of every answer type.
 *
 * Besides "no crash", it checks the promises the replay relies on: a key that
 * does not fit gives ES_ERANGE (never a truncated key), exactly key + 1 bytes
 * always do (math answers too, whose long inputs are cleaned in place or in a
 * heap copy), the same input always gives the same key, equality is
 * reflexive and symmetric, and a number, date or choice key is its own key
 * (not so for math, whose one-pass cleaning, like the reference's, is not
 * idempotent: "\le\leftft" -> "\left" -> "", nor for text on invalid UTF-8,
 * where dropping the '$' of C2 '$' 85 makes U+0085, a space).
 *
 * Input layout: byte 0 = answer type (mod 5), byte 1 = where a and b split.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 4096) return 0;
    es_answer_type t = (es_answer_type)(data[0] % 5);
    size_t rest = size - 2, split = rest ? data[1] % (rest + 1) : 0;
    const char *body = (const char *)data + 2;
    char *a = malloc(split + 1), *b = malloc(rest - split + 1);
    if (!a || !b) abort();
    memcpy(a, body, split);
    a[split] = '\0';
    memcpy(b, body + split, rest - split);
    b[rest - split] = '\0';

    /* raw bytes, embedded NULs included */
    size_t cap = 4 * rest + 64;
    char *k1 = malloc(cap), *k2 = malloc(cap);
    if (!k1 || !k2) abort();
    int n1 = es_answer_normalize(t, body, rest, k1, cap);
    if (n1 >= 0) {
        if ((size_t)n1 >= cap || strlen(k1) != (size_t)n1) abort();
        /* deterministic */
        int n2 = es_answer_normalize(t, body, rest, k2, cap);
        if (n2 != n1 || memcmp(k1, k2, (size_t)n1 + 1)) abort();
        /* exactly enough room works; one byte less is ES_ERANGE */
        if (es_answer_normalize(t, body, rest, k2, (size_t)n1 + 1) != n1) abort();
        if (es_answer_normalize(t, body, rest, k2, (size_t)n1) != ES_ERANGE) abort();
        /* a key normalises to itself */
        if (t == ES_ANSWER_NUMBER || t == ES_ANSWER_DATE || t == ES_ANSWER_CHOICE) {
            int n3 = es_answer_normalize(t, k1, (size_t)n1, k2, cap);
            if (n3 != n1 || memcmp(k1, k2, (size_t)n1 + 1)) abort();
        }
    } else if (n1 != ES_ERANGE && n1 != ES_EINVAL) {
        abort();
    }
    /* tiny buffers must never be overrun (ASan watches) */
    char tiny[1];
    (void)es_answer_normalize(t, body, rest, tiny, sizeof tiny);

    int ab = es_answer_equal(t, a, b), ba = es_answer_equal(t, b, a);
    if (ab != ba) abort();
    if (es_answer_equal(t, a, a) != 1) abort();
    if (es_answer_equal(t, a, NULL) != 0 || es_answer_equal(t, NULL, a) != 0) abort();
    double f = es_answer_f1(a, b);
    if (!(f >= 0.0 && f <= 1.0)) abort();
    (void)es_answer_f1(NULL, b);

    free(k1);
    free(k2);
    free(a);
    free(b);
    return 0;
}
