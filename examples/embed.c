/*
 * embed.c - libearlystop inside an inference loop, as an engine would embed
 * it: the core library alone (libc + libm), built with pkg-config only:
 *
 *   cc embed.c $(pkg-config --cflags --libs earlystop) -o embed && ./embed
 *
 * A stand-in "engine" draws self-consistency samples of one question; every
 * sample probes its answer every 32 tokens.  The policy stops a sample once
 * three probes agree (Dynasor) and stops drawing samples once the vote is
 * settled (Adaptive-Consistency's Beta criterion).  Between questions the
 * threshold is moved on the live policy, as an online controller would.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <earlystop.h>

/* The engine's "samples": final answers and per-probe answers. */
static const char *answers[] = {"42", "42", "41", "42.0", "42", "42", "7", "42"};
static const char *probe_text(int sample, int probe)
{
    return probe < 2 ? "40" : answers[sample]; /* settles after two probes */
}

static int run_question(es_session *s, es_interner *in, int max_samples, char *out, size_t cap)
{
    es_interner_reset(in);
    if (es_session_begin_item(s, (uint32_t)max_samples, 64) != ES_OK) return -1;
    for (int i = 0; i < max_samples; i++) {
        es_session_begin_sample(s);
        uint32_t tokens = 200;
        for (uint32_t at = 32; at < 200; at += 32) {
            if (es_session_reach(s, at) == ES_STOP) break;
            int32_t id = es_interner_intern(in, probe_text(i, (int)(at / 32) - 1));
            if (es_session_probe(s, at, id, NAN, NAN, 0, 6) == ES_STOP) break;
        }
        int32_t own = es_interner_intern(in, answers[i]);
        if (es_session_end_sample(s, own, tokens, NAN, 1) == ES_STOP) break;
    }
    const es_outcome *o = es_session_end_item(s);
    const char *key = es_interner_key(in, o->answer);
    snprintf(out, cap, "%s after %u samples, %llu tokens + %llu probe tokens", key ? key : "(none)", o->samples,
             (unsigned long long)o->tokens, (unsigned long long)o->probe_tokens);
    return 0;
}

int main(void)
{
    es_policy *p;
    es_session *s;
    es_interner *in;
    es_error err;
    printf("libearlystop %s (header %s)\n", es_version(), ES_VERSION_STRING);
    if (es_policy_new("dynasor:k=3+ac-beta:threshold=0.95", &p, &err)) {
        fprintf(stderr, "policy: %s\n", err.msg);
        return 1;
    }
    if (es_session_new(p, &s) || es_interner_new(ES_ANSWER_NUMBER, 64, 4096, &in)) return 1;
    char line[256];
    for (int q = 0; q < 2; q++) {
        if (run_question(s, in, 8, line, sizeof line)) return 1;
        printf("%s: %s\n", es_policy_spec(p), line);
        /* an online controller moves the threshold between questions */
        if (es_policy_set_param(p, "threshold", 0.8, &err)) {
            fprintf(stderr, "set_param: %s\n", err.msg);
            return 1;
        }
    }
    es_interner_free(in);
    es_session_free(s);
    es_policy_free(p);
    return 0;
}
