/* test_lm_batch.c - es_lm_batch (the serving scheduler's continuous
 * batching) against the generator: sequences of different prompts stepped
 * together give the bytes es_lm_gen_sample gives each alone, and a probe
 * asked as a fresh greedy sequence (prompt + text + cue) gives the probe the
 * generator makes inside the sample.  That is what lets `earlystop serve`
 * behind `earlystop proxy` reproduce `earlystop generate` traces. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "earlystop_lm.h"

enum { N_SEQ = 6, PROBE_EVERY = 16, MAX_PROBES = 32 };

static const char *model_path(void)
{
    return access("data/model.bin", R_OK) == 0 ? "data/model.bin" : NULL;
}

typedef struct seq_out {
    char text[512];
    int len, tokens, finish;
    double psum;
    float prob[512];
} seq_out;

static void collect(void *ctx, int seq, const es_lm_token_event *ev)
{
    (void)seq;
    seq_out *o = ctx;
    o->tokens++;
    o->psum += exp((double)ev->logprob);
    if (o->tokens <= 512) o->prob[o->tokens - 1] = expf(ev->logprob);
    if (ev->ch) o->text[o->len++] = (char)ev->ch;
    o->text[o->len] = '\0';
    o->finish = ev->finish;
    /* the alternatives are sorted and the sampled token's logprob is among them when greedy */
    for (int i = 1; i < ev->n_top; i++) assert_true(ev->top_logprob[i - 1] >= ev->top_logprob[i]);
}

/* Probes recorded by the generator. */
typedef struct probes {
    es_lm_probe p[MAX_PROBES];
    int n;
} probes;

static int on_probe(void *ctx, const es_lm_probe *p)
{
    probes *ps = ctx;
    if (ps->n < MAX_PROBES) ps->p[ps->n++] = *p;
    return ES_CONTINUE;
}

static void run_batch(es_lm_batch *b)
{
    while (es_lm_batch_active(b) > 0) es_lm_batch_step(b);
}

/* Six questions of all three tasks, added two at a time while the others
 * run: each text equals the generator's sample of the same stream. */
static void test_batch_equals_generator(void **state)
{
    (void)state;
    const char *path = model_path();
    if (!path) { print_message("no data/model.bin: skipped\n"); skip(); }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(path, &m, NULL), ES_OK);
    es_lm_gen_opts go;
    es_lm_gen_opts_default(&go);
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &go, &g, NULL), ES_OK);
    es_lm_batch *b = NULL;
    assert_int_equal(es_lm_batch_new(m, 4, NULL, &b, NULL), ES_OK);
    es_task_example ex[N_SEQ];
    seq_out out[N_SEQ];
    memset(out, 0, sizeof out);
    int added = 0;
    while (added < N_SEQ || es_lm_batch_active(b) > 0) {
        while (added < N_SEQ && es_lm_batch_free_slots(b) > 0 && (added % 2 == 0 || es_lm_batch_active(b) < 3)) {
            assert_int_equal(es_task_make((es_task_kind)(added % ES_TASK_COUNT), 7, (uint64_t)added, &ex[added]), ES_OK);
            es_lm_seq_params sp = {go.temperature, 0, 3, {0}};
            es_lm_sample_rng(&sp.rng, 7, (uint64_t)added, 1);
            assert_true(es_lm_batch_add(b, ex[added].prompt, &sp, collect, &out[added]) >= 0);
            added++;
        }
        es_lm_batch_step(b);
    }
    for (int i = 0; i < N_SEQ; i++) {
        es_rng r;
        es_lm_sample_rng(&r, 7, (uint64_t)i, 1);
        es_lm_sample_result res;
        assert_int_equal(es_lm_gen_sample(g, ex[i].prompt, &r, NULL, &res), ES_OK);
        assert_string_equal(out[i].text, res.text);
        assert_int_equal((uint32_t)out[i].tokens, res.tokens);
        assert_int_equal(out[i].finish == ES_LM_SEQ_EOS, res.ended);
    }
    es_lm_batch_free(b);
    es_lm_gen_free(g);
    es_lm_free(m);
}

/* Every probe the generator makes inside a sample is the greedy answer of a
 * fresh sequence on prompt + text so far (+ newline when mid-line) + cue:
 * same answer, same cost, same confidence up to float rounding. */
static void test_probe_as_a_request(void **state)
{
    (void)state;
    const char *path = model_path();
    if (!path) { print_message("no data/model.bin: skipped\n"); skip(); }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(path, &m, NULL), ES_OK);
    es_lm_gen_opts go;
    es_lm_gen_opts_default(&go);
    go.probe_every = PROBE_EVERY;
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &go, &g, NULL), ES_OK);
    es_lm_batch *b = NULL;
    assert_int_equal(es_lm_batch_new(m, 2, NULL, &b, NULL), ES_OK);
    int checked = 0, answered = 0;
    for (int item = 0; item < 6; item++) {
        es_task_example ex;
        assert_int_equal(es_task_make((es_task_kind)(item % ES_TASK_COUNT), 11, (uint64_t)item, &ex), ES_OK);
        es_rng r;
        es_lm_sample_rng(&r, 11, (uint64_t)item, 0);
        probes ps = {.n = 0};
        es_lm_gen_hooks h = {NULL, on_probe, NULL, &ps};
        es_lm_sample_result res;
        assert_int_equal(es_lm_gen_sample(g, ex.prompt, &r, &h, &res), ES_OK);
        for (int k = 0; k < ps.n; k++) {
            const es_lm_probe *p = &ps.p[k];
            char prompt[1024];
            int at = (int)p->at;
            int mid = at > 0 && res.text[at - 1] != '\n';
            snprintf(prompt, sizeof prompt, "%s%.*s%s%s", ex.prompt, at, res.text, mid ? "\n" : "", ES_LM_ANSWER_CUE);
            seq_out o;
            memset(&o, 0, sizeof o);
            es_lm_seq_params sp = {0.0f, 12, 0, {0}};
            if (es_lm_batch_add(b, prompt, &sp, collect, &o) < 0) continue;   /* past the context */
            run_batch(b);
            /* the answer: up to '.', none when a newline or the end comes first */
            size_t dot = strcspn(o.text, ".\n");
            int has = o.text[dot] == '.' && dot > 0;
            int decoded = o.text[dot] ? (int)dot + 1 : o.tokens;
            assert_int_equal(has, p->has_answer);
            if (has) assert_memory_equal(o.text, p->answer, dot);
            int cue = (int)strlen(ES_LM_ANSWER_CUE) + mid;
            assert_int_equal(cue + decoded, p->cost);
            float psum = 0.0f;
            for (int t = 0; t < decoded; t++) psum += o.prob[t];
            assert_float_equal(psum / (float)decoded, p->confidence, 1e-5);
            checked++;
            answered += has;
        }
    }
    assert_true(checked >= 10);
    assert_true(answered >= 1);
    es_lm_batch_free(b);
    es_lm_gen_free(g);
    es_lm_free(m);
}

/* Refusals: characters outside the vocabulary, a prompt that fills the
 * context, a full batch; cancelling frees the slot at once. */
static void test_refusals(void **state)
{
    (void)state;
    const char *path = model_path();
    if (!path) { print_message("no data/model.bin: skipped\n"); skip(); }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(path, &m, NULL), ES_OK);
    es_lm_batch *b = NULL;
    es_error err;
    assert_int_equal(es_lm_batch_new(m, 0, NULL, &b, &err), ES_EINVAL);
    assert_int_equal(es_lm_batch_new(m, 1, NULL, &b, NULL), ES_OK);
    seq_out o;
    memset(&o, 0, sizeof o);
    es_lm_seq_params sp = {0.0f, 4, 0, {0}};
    assert_int_equal(es_lm_batch_add(b, "caf\xc3\xa9\n", &sp, collect, &o), ES_EINVAL);
    assert_int_equal(es_lm_batch_prompt_tokens(b, "tab\there"), ES_EINVAL);
    char big[400];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(es_lm_batch_add(b, big, &sp, collect, &o), ES_ERANGE);
    assert_int_equal(es_lm_batch_prompt_tokens(b, big), ES_ERANGE);
    assert_int_equal(es_lm_batch_prompt_tokens(b, "ab\n"), 4);
    int s = es_lm_batch_add(b, "Compute 1+2.\n", &sp, collect, &o);
    assert_true(s >= 0);
    assert_int_equal(es_lm_batch_add(b, "Compute 1+2.\n", &sp, collect, &o), ES_ERANGE);
    es_lm_batch_cancel(b, s);
    assert_int_equal(es_lm_batch_free_slots(b), 1);
    s = es_lm_batch_add(b, "Compute 1+2.\n", &sp, collect, &o);
    assert_true(s >= 0);
    run_batch(b);
    assert_true(o.tokens >= 1 && o.tokens <= 4);
    assert_true(o.finish == ES_LM_SEQ_EOS || (o.finish == ES_LM_SEQ_LENGTH && o.tokens == 4));
    es_lm_batch_free(b);
    es_lm_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_generator),
        cmocka_unit_test(test_probe_as_a_request),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
