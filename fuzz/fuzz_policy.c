/*
 * fuzz_policy.c - libFuzzer target for the policy spec parser, the policy
 * state machine, parameters moved on a live policy, and the event protocol
 * (es_session): es_policy_new on arbitrary text, then, when it parses, a
 * stream of events decoded from the remaining bytes, fed twice: as raw
 * policy events, and through a session to a clone.
 *
 * Besides "no crash", it checks that a canonical spec parses to itself, that
 * every event answers ES_CONTINUE, ES_STOP or a negative error, that answers
 * stay in range, that a parameter move is either taken (the new spec still
 * round-trips) or refused with nothing changed, and the session's promises:
 * a settled sample never ends later than it did, and the question's tokens
 * and probes are the sums of its samples' and probes'.
 *
 * Input layout: the spec up to the first NUL byte, then events: for each
 * 4 bytes (kind, answer, confidence, window confidence / step).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_ANSWERS = 8 };

static void check_rc(int rc)
{
    if (rc != ES_CONTINUE && rc != ES_STOP && rc >= 0) abort();
}

static void check_answer(int32_t a)
{
    if (a < -1 || a >= MAX_ANSWERS) abort();
}

/* Parameter number ev[1] set to a value decoded from ev[2], ev[3]: often in
 * range, sometimes out of it or NaN.  Taken: the value reads back and the
 * spec round-trips; refused: the spec and the value are as they were. */
static void move_param(es_policy *p, const uint8_t *ev)
{
    uint32_t n = es_policy_n_params(p);
    if (n == 0) return;
    es_param_info pi;
    if (es_policy_param(p, ev[1] % n, &pi) != ES_OK) abort();
    double span = pi.hi > pi.lo ? pi.hi - pi.lo : 2;
    double x = pi.lo - 0.1 * span + 1.2 * span * (ev[2] / 255.0);
    if (pi.integer) x = floor(x);
    if (ev[3] == 255) x = NAN;
    else if (ev[3] == 254) x = pi.value; /* the word values ("all", "off") too */
    char key[128], before[1024];
    snprintf(key, sizeof key, "%s.%s", pi.rule, pi.key);
    snprintf(before, sizeof before, "%s", es_policy_spec(p));
    double old, now;
    if (es_policy_get_param(p, key, &old, NULL) != ES_OK) abort();
    es_error err;
    int rc = es_policy_set_param(p, key, x, &err);
    if (es_policy_get_param(p, key, &now, NULL) != ES_OK) abort();
    if (rc == ES_OK) {
        if (now != x) abort();
        es_policy *q = NULL;
        if (es_policy_new(es_policy_spec(p), &q, NULL) != ES_OK) abort();
        if (strcmp(es_policy_spec(p), es_policy_spec(q))) abort();
        es_policy_free(q);
    } else {
        if (rc > 0 || err.code != rc) abort();
        if (now != old || strcmp(before, es_policy_spec(p))) abort();
    }
}

/* Raw events until the input runs out; answers stay below MAX_ANSWERS. */
static void drive(es_policy *p, const uint8_t *ev, size_t n)
{
    if (es_policy_begin_item(p, 16, MAX_ANSWERS) != ES_OK) abort();
    es_policy_info info;
    es_policy_get_info(p, &info);
    if (info.probe_lag > 1) abort();
    es_policy_begin_sample(p);
    uint32_t at = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int32_t a = ev[i + 1] % MAX_ANSWERS;
        float conf = ev[i + 2] == 255 ? NAN : ev[i + 2] / 254.0f;
        float wconf = ev[i + 3] == 255 ? NAN : ev[i + 3] / 16.0f;
        switch (ev[i] % 5) {
        case 0: check_rc(es_policy_probe(p, at += ev[i + 3], a, conf, wconf, 0)); break;
        case 1: check_rc(es_policy_token(p, -conf, wconf)); break;
        case 2:
            check_rc(es_policy_end_sample(p, a, at, conf));
            es_policy_begin_sample(p);
            at = 0;
            break;
        case 3:
            if (es_policy_begin_item(p, 16, MAX_ANSWERS) != ES_OK) abort();
            es_policy_begin_sample(p);
            break;
        default:
            /* between questions */
            move_param(p, ev + i);
            if (es_policy_begin_item(p, 16, MAX_ANSWERS) != ES_OK) abort();
            es_policy_begin_sample(p);
            break;
        }
        check_answer(es_policy_answer(p));
        check_answer(es_policy_sample_answer(p));
    }
}

/* The same bytes through a session, as a generator would report them. */
static void drive_session(es_policy *p, const uint8_t *ev, size_t n)
{
    es_session *s = NULL;
    if (es_session_new(p, &s) != ES_OK) abort();
    if (es_session_begin_item(s, 16, MAX_ANSWERS) != ES_OK) abort();
    es_session_begin_sample(s);
    uint32_t at = 0, probes = 0;
    uint64_t tokens = 0, probe_tokens = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        int32_t a = ev[i + 1] % MAX_ANSWERS;
        float conf = ev[i + 2] == 255 ? NAN : ev[i + 2] / 254.0f;
        float wconf = ev[i + 3] == 255 ? NAN : ev[i + 3] / 16.0f;
        int kind = ev[i] % 5;
        if (kind == 0) {
            at += 1u + ev[i + 3] % 64;
            if (es_session_reach(s, at) == ES_CONTINUE) {
                uint32_t cost = ev[i + 1] >> 4;
                check_rc(es_session_probe(s, at, a, conf, wconf, 0, cost));
                probes++;
                probe_tokens += cost;
            }
        } else if (kind == 1) {
            check_rc(es_session_token(s, -conf, wconf));
        } else if (kind == 2) {
            uint32_t own = at + ev[i + 2] % 32;
            check_rc(es_session_end_sample(s, a, own, conf, ev[i + 1] >> 7));
            int32_t sa;
            uint32_t st;
            es_session_last_sample(s, &sa, &st);
            if (sa < 0 || sa >= MAX_ANSWERS || st > own) abort();
            tokens += st;
            es_session_begin_sample(s);
            at = 0;
        } else {
            const es_outcome *o = es_session_end_item(s);
            check_answer(o->answer);
            if (o->tokens != tokens || o->probes != probes || o->probe_tokens != probe_tokens) abort();
            if (kind == 4) move_param(p, ev + i);
            if (es_session_begin_item(s, 16, MAX_ANSWERS) != ES_OK) abort();
            es_session_begin_sample(s);
            at = probes = 0;
            tokens = probe_tokens = 0;
        }
    }
    es_session_free(s);
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
        /* a clone has the same spec; the session pass runs on it */
        if (es_policy_clone(p, &q, NULL) != ES_OK) abort();
        if (strcmp(es_policy_spec(p), es_policy_spec(q))) abort();
        if (nul) {
            drive(p, nul + 1, size - len - 1);
            drive_session(q, nul + 1, size - len - 1);
        }
        es_policy_free(q);
        es_policy_free(p);
    } else if (rc >= 0 || p) {
        abort();
    }
    free(spec);
    return 0;
}
