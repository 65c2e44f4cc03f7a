/*
 * fuzz_policy.c - libFuzzer target for the policy spec parser and the policy
 * state machine: es_policy_new on arbitrary text, then, when it parses, a
 * stream of events decoded from the remaining bytes.
 *
 * Besides "no crash", it checks that a canonical spec parses to itself and
 * that every event answers ES_CONTINUE, ES_STOP or a negative error.
 *
 * Input layout: the spec up to the first NUL byte, then events: for each
 * 4 bytes (kind, answer, confidence, window confidence).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rc(int rc)
{
    if (rc != ES_CONTINUE && rc != ES_STOP && rc >= 0) abort();
}

/* Feed events until the input runs out; answers stay below max_answers. */
static void drive(es_policy *p, const uint8_t *ev, size_t n)
{
    enum { MAX_ANSWERS = 8 };
    if (es_policy_begin_item(p, 16, MAX_ANSWERS, 7) != ES_OK) abort();
    if (es_policy_probe_lag(p) > 1) abort();
    es_policy_begin_sample(p);
    uint32_t at = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int32_t a = ev[i + 1] % MAX_ANSWERS;
        float conf = ev[i + 2] == 255 ? NAN : ev[i + 2] / 254.0f;
        float wconf = ev[i + 3] == 255 ? NAN : ev[i + 3] / 16.0f;
        switch (ev[i] % 4) {
        case 0: check_rc(es_policy_probe(p, at += ev[i + 3], a, conf, wconf)); break;
        case 1: check_rc(es_policy_token(p, -conf, wconf)); break;
        case 2:
            check_rc(es_policy_end_sample(p, a, at, conf));
            es_policy_begin_sample(p);
            at = 0;
            break;
        default:
            if (es_policy_begin_item(p, 16, MAX_ANSWERS, 7) != ES_OK) abort();
            es_policy_begin_sample(p);
            break;
        }
        int32_t ans = es_policy_answer(p);
        if (ans < -1 || ans >= MAX_ANSWERS) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - data) : size;
    char *spec = malloc(len + 1);
    if (!spec) abort();
    memcpy(spec, data, len);
    spec[len] = '\0';
    es_policy *p = NULL;
    es_error err;
    int rc = es_policy_new(spec, &p, &err);
    if (rc == ES_OK) {
        /* the canonical spec is itself a spec, with the same canonical form */
        es_policy *q = NULL;
        if (es_policy_new(es_policy_spec(p), &q, NULL) != ES_OK) abort();
        if (strcmp(es_policy_spec(p), es_policy_spec(q))) abort();
        es_policy_free(q);
        if (nul) drive(p, nul + 1, size - len - 1);
        es_policy_free(p);
    } else if (rc >= 0 || p) {
        abort();
    }
    free(spec);
    return 0;
}
