/* tokenizer.c - the character vocabulary (BOS, EOS, newline, printable ASCII). */
#include "earlystop_lm.h"

/* A fixed table: no tokenizer file to ship, exact token counts. */
int es_lm_char_token(int c)
{
    if (c == '\n') return 2;
    if (c >= 32 && c <= 126) return c - 32 + 3;
    return -1;
}

/* Inverse of es_lm_char_token; specials map to NUL. */
int es_lm_token_char(int tok)
{
    if (tok == 2) return '\n';
    if (tok >= 3 && tok < ES_LM_VOCAB) return tok - 3 + 32;
    return '\0';
}

/* Refuses characters outside the vocabulary instead of guessing. */
int es_lm_encode(const char *text, int *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int t = es_lm_char_token(*p);
        if (t < 0) return ES_EINVAL;
        if (n >= cap) return ES_ERANGE;
        out[n++] = t;
    }
    return (int)n;
}
