/* test_model.c - the built-in model: gradients, forward vs reference,
 * training lowers the loss, file round trip, reproducible generation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "earlystop_lm.h"

static void tiny_config(es_lm_config *c)
{
    c->dim = 8;
    c->hidden_dim = 12;
    c->n_layers = 2;
    c->n_heads = 2;
    c->vocab_size = ES_LM_VOCAB;
    c->seq_len = 8;
}

static es_lm *tiny_model(uint64_t seed)
{
    es_lm_config c;
    tiny_config(&c);
    es_lm *m = NULL;
    assert_int_equal(es_lm_new(&c, seed, &m, NULL), ES_OK);
    /* larger weights than the training init so every path carries signal */
    float *p = es_lm_params(m);
    es_rng r;
    es_rng_seed(&r, seed + 99);
    for (size_t i = 0; i < es_lm_n_params(m); i++) p[i] += 0.3f * es_rng_normal(&r);
    return m;
}

static void tiny_batch(int B, int T, int *inp, int *tgt, uint64_t seed)
{
    es_rng r;
    es_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        inp[i] = (int)es_rng_below(&r, ES_LM_VOCAB);
        tgt[i] = (i % 5 == 3) ? -1 : (int)es_rng_below(&r, ES_LM_VOCAB);
    }
}

/* Central differences in double-checked float: every tensor is sampled. */
static void test_gradients_match_finite_differences(void **state)
{
    (void)state;
    es_lm *m = tiny_model(3);
    const int B = 2, T = 8;
    int inp[16], tgt[16];
    tiny_batch(B, T, inp, tgt, 5);
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, B, T, &t), ES_OK);
    es_lm_train_forward(t, inp, tgt, T);
    es_lm_train_backward(t);
    size_t n = es_lm_n_params(m);
    float *grad = malloc(n * sizeof(float));
    memcpy(grad, es_lm_trainer_grads(t), n * sizeof(float));
    float *p = es_lm_params(m);
    es_rng r;
    es_rng_seed(&r, 11);
    int checked = 0, bad = 0;
    for (size_t k = 0; k < 400; k++) {
        size_t i = k < 200 ? (size_t)es_rng_below(&r, (uint32_t)n) : n - 1 - (k - 200) * (n / 200);
        float orig = p[i], h = 1e-2f;
        p[i] = orig + h;
        double lp = es_lm_train_forward(t, inp, tgt, T);
        p[i] = orig - h;
        double lm = es_lm_train_forward(t, inp, tgt, T);
        p[i] = orig;
        double num = (lp - lm) / (2.0 * h), an = grad[i];
        double err = fabs(num - an) / fmax(1e-2, fabs(num) + fabs(an));
        checked++;
        if (err > 5e-2) {
            bad++;
            print_message("param %zu: numeric %.6f analytic %.6f\n", i, num, an);
        }
    }
    assert_true(checked == 400);
    assert_int_equal(bad, 0);
    free(grad);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

/* Variable batch length: a forward on fewer columns scores the same rows. */
static void test_short_batch_matches_prefix(void **state)
{
    (void)state;
    es_lm *m = tiny_model(4);
    int inp[16], tgt[16], tgt2[16];
    tiny_batch(2, 8, inp, tgt, 6);
    for (int i = 0; i < 16; i++) tgt2[i] = (i % 8) < 5 ? tgt[i] : -1;
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 2, 8, &t), ES_OK);
    float full = es_lm_train_forward(t, inp, tgt2, 8);
    float part = es_lm_train_forward(t, inp, tgt2, 5);
    assert_true(fabsf(full - part) < 1e-5f);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

/* The training forward, the fast inference forward and the reference agree
 * token by token. */
static void test_forward_matches_reference(void **state)
{
    (void)state;
    es_lm_config c;
    es_lm_config_default(&c);
    c.seq_len = 24;
    es_lm *m = NULL;
    assert_int_equal(es_lm_new(&c, 7, &m, NULL), ES_OK);
    float *p = es_lm_params(m);
    es_rng r;
    es_rng_seed(&r, 8);
    for (size_t i = 0; i < es_lm_n_params(m); i++) p[i] += 0.05f * es_rng_normal(&r);
    es_lm_state *a = NULL, *b = NULL;
    assert_int_equal(es_lm_state_new(m, &a), ES_OK);
    assert_int_equal(es_lm_state_new(m, &b), ES_OK);
    int toks[24];
    for (int i = 0; i < 24; i++) toks[i] = (int)es_rng_below(&r, ES_LM_VOCAB);
    double worst = 0;
    for (int pos = 0; pos < 24; pos++) {
        const float *fa = es_lm_forward(m, a, toks[pos], pos);
        const float *fb = es_lm_forward_ref(m, b, toks[pos], pos);
        for (int v = 0; v < ES_LM_VOCAB; v++) worst = fmax(worst, fabs(fa[v] - fb[v]));
    }
    assert_true(worst < 1e-3);
    /* the training path sees the same logits: compare its loss on the
     * sequence with the loss from the inference logits */
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 1, 24, &t), ES_OK);
    int tgt[24];
    double want = 0;
    for (int pos = 0; pos < 23; pos++) {
        tgt[pos] = toks[pos + 1];
        const float *lg = es_lm_forward_ref(m, b, toks[pos], pos);
        double mx = -1e30, z = 0;
        for (int v = 0; v < ES_LM_VOCAB; v++) mx = fmax(mx, lg[v]);
        for (int v = 0; v < ES_LM_VOCAB; v++) z += exp(lg[v] - mx);
        want += -(lg[tgt[pos]] - mx - log(z));
    }
    tgt[23] = -1;
    float got = es_lm_train_forward(t, toks, tgt, 24);
    assert_true(fabs(got - want / 23.0) < 1e-3);
    es_lm_trainer_free(t);
    es_lm_state_free(a);
    es_lm_state_free(b);
    es_lm_free(m);
}

static void test_training_lowers_loss(void **state)
{
    (void)state;
    es_lm_config c;
    tiny_config(&c);
    c.dim = 32; c.hidden_dim = 64; c.seq_len = 32; c.n_heads = 4;
    es_lm *m = NULL;
    assert_int_equal(es_lm_new(&c, 1, &m, NULL), ES_OK);
    es_lm_trainer *t = NULL;
    assert_int_equal(es_lm_trainer_new(m, 4, 32, &t), ES_OK);
    int inp[128], tgt[128];
    for (int i = 0; i < 128; i++) {      /* a repeating pattern to learn */
        inp[i] = 3 + (i * 7) % 11;
        tgt[i] = 3 + ((i + 1) * 7) % 11;
    }
    es_lm_adamw opt = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f};
    float first = es_lm_train_forward(t, inp, tgt, 32), last = first;
    for (int s = 1; s <= 30; s++) {
        es_lm_train_backward(t);
        es_lm_adamw_step(t, &opt, s);
        last = es_lm_train_forward(t, inp, tgt, 32);
    }
    assert_true(last < 0.5f * first);
    es_lm_trainer_free(t);
    es_lm_free(m);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    es_lm *m = tiny_model(9), *back = NULL;
    char path[] = "/tmp/es_model_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(es_lm_save(m, path, NULL), ES_OK);
    assert_int_equal(es_lm_load(path, &back, NULL), ES_OK);
    assert_int_equal(es_lm_n_params(back), es_lm_n_params(m));
    assert_memory_equal(es_lm_params(back), es_lm_params(m), es_lm_n_params(m) * sizeof(float));
    es_lm_free(back);
    /* a flipped byte is caught by the checksum */
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 100, SEEK_SET);
    fputc(0x5a, fp);
    fclose(fp);
    es_error err;
    assert_int_equal(es_lm_load(path, &back, &err), ES_EFORMAT);
    assert_string_equal(err.field, "checksum");
    /* a file that is not a model */
    fp = fopen(path, "wb");
    fputs("not a model at all, sorry, just text that is long enough for a header....", fp);
    fclose(fp);
    assert_int_equal(es_lm_load(path, &back, &err), ES_EFORMAT);
    assert_string_equal(err.field, "magic");
    unlink(path);
    es_lm_free(m);
}

static const char *shipped_model(void)
{
    const char *p = getenv("ES_MODEL");
    if (p && *p) return p;
    return access("data/model.bin", R_OK) == 0 ? "data/model.bin" : NULL;
}

/* Sampling with a fixed seed gives the same bytes, probes included, and a
 * probe does not change the sample it interrupts. */
static void test_generation_reproducible(void **state)
{
    (void)state;
    const char *path = shipped_model();
    if (!path) { print_message("no data/model.bin: skipped\n"); skip(); }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(path, &m, NULL), ES_OK);
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_task_example ex;
    assert_int_equal(es_task_make(ES_TASK_ARITHMETIC, 42, 0, &ex), ES_OK);
    char first[1024], second[1024];
    es_lm_sample_result a, b;
    es_rng r;
    es_lm_sample_rng(&r, 42, 0, 0);
    assert_int_equal(es_lm_gen_sample(g, ex.prompt, &r, NULL, &a), ES_OK);
    snprintf(first, sizeof first, "%s", a.text);
    es_lm_gen_free(g);
    o.probe_every = 8;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_lm_sample_rng(&r, 42, 0, 0);
    assert_int_equal(es_lm_gen_sample(g, ex.prompt, &r, NULL, &b), ES_OK);
    snprintf(second, sizeof second, "%s", b.text);
    assert_string_equal(first, second);
    assert_int_equal(a.tokens, b.tokens);
    assert_true(b.n_probes > 0);
    es_lm_gen_free(g);
    es_lm_free(m);
}


/* Record samples as `generate` does into a traceset item. */
typedef struct rec {
    es_probe probes[64];
    char pans[64][32];
    size_t n;
} rec;

static int rec_probe(void *ctx, const es_lm_probe *p)
{
    rec *r = ctx;
    if (r->n >= 64) return ES_CONTINUE;
    memcpy(r->pans[r->n], p->answer, 32);
    es_probe q = {p->at, p->has_answer ? r->pans[r->n] : NULL, p->confidence,
                  p->window_confidence, p->cost};
    r->probes[r->n++] = q;
    return ES_CONTINUE;
}

/* The live loop and the replay of the recorded trace make the same
 * decisions and count the same tokens, for within, across and budget rules. */
static void test_live_matches_replay(void **state)
{
    (void)state;
    const char *path = shipped_model();
    if (!path) { print_message("no data/model.bin: skipped\n"); skip(); }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(path, &m, NULL), ES_OK);
    enum { K = 5, ITEMS = 2 };
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    o.probe_every = 16;
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    static rec recs[K];
    static char answers[K][32];
    es_task_example exs[ITEMS];
    for (int j = 0; j < ITEMS; j++) {
        es_task_kind kind = j ? ES_TASK_DATE : ES_TASK_LAST_LETTERS;
        assert_int_equal(es_task_make(kind, 5, (uint64_t)j, &exs[j]), ES_OK);
        es_sample samples[K];
        for (int i = 0; i < K; i++) {
            es_rng r;
            es_lm_sample_rng(&r, 5, (uint64_t)j, (uint64_t)i);
            recs[i].n = 0;
            es_lm_gen_hooks h = {NULL, rec_probe, &recs[i]};
            es_lm_sample_result res;
            assert_int_equal(es_lm_gen_sample(g, exs[j].prompt, &r, &h, &res), ES_OK);
            memcpy(answers[i], res.answer, 32);
            es_sample s = {res.has_answer ? answers[i] : NULL, res.tokens, res.confidence, NULL,
                           recs[i].n, recs[i].probes};
            samples[i] = s;
        }
        const char *gold[1] = {exs[j].gold};
        char id[16];
        snprintf(id, sizeof id, "i%d", j);
        es_item it = {id, es_task_name(kind), NULL, es_task_answer_type(kind), 1, gold, K, samples};
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    const char *specs[] = {"full", "esc:window=2", "dynasor:k=2", "dynasor:k=2+ac-beta",
                           "budget:tokens=48", "deer:threshold=0.9"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        es_policy *p = NULL;
        assert_int_equal(es_policy_new(specs[s], &p, NULL), ES_OK);
        for (int j = 0; j < ITEMS; j++) {
            es_item_view v;
            assert_int_equal(es_traceset_item(ts, (size_t)j, &v), ES_OK);
            es_outcome want;
            assert_int_equal(es_replay_item(p, &v, NULL, ES_PROBE_COST_FIELD, &want), ES_OK);
            es_lm_live *lv = NULL;
            assert_int_equal(es_lm_live_new(m, &o, p, v.answer_type, K, &lv, NULL), ES_OK);
            es_lm_live_result got;
            assert_int_equal(es_lm_live_item(lv, exs[j].prompt, exs[j].gold, 5, (uint64_t)j, &got), ES_OK);
            print_message("%-22s item %d: replay %u samples %llu+%llu tokens, live %u samples %llu+%llu\n",
                          specs[s], j, want.samples, (unsigned long long)want.tokens,
                          (unsigned long long)want.probe_tokens, got.samples,
                          (unsigned long long)got.tokens, (unsigned long long)got.probe_tokens);
            assert_int_equal(got.samples, want.samples);
            assert_int_equal(got.tokens, want.tokens);
            assert_int_equal(got.probe_tokens, want.probe_tokens);
            assert_int_equal(got.probes, want.probes);
            assert_int_equal(got.correct, want.correct);
            const char *wk = want.answer >= 0 && (uint32_t)want.answer < v.n_answers ? v.answer_key[want.answer] : NULL;
            const char *gk = es_lm_live_key(lv, got.answer);
            if (wk || gk) assert_string_equal(wk ? wk : "(null)", gk ? gk : "(null)");
            es_lm_live_free(lv);
        }
        es_policy_free(p);
    }
    es_traceset_free(ts);
    es_lm_gen_free(g);
    es_lm_free(m);
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Two training steps on 1 and on 2 threads give the same bytes: every
 * kernel computes each output in one thread in a fixed order. */
static void test_threads_do_not_change_training(void **state)
{
    (void)state;
    es_lm_config c;
    tiny_config(&c);
    c.dim = 32; c.hidden_dim = 64; c.seq_len = 32; c.n_heads = 4;
    float *after[2];
    size_t n = 0;
    for (int th = 1; th <= 2; th++) {
        set_threads(th);
        es_lm *m = NULL;
        es_lm_trainer *t = NULL;
        assert_int_equal(es_lm_new(&c, 2, &m, NULL), ES_OK);
        assert_int_equal(es_lm_trainer_new(m, 4, 32, &t), ES_OK);
        int inp[128], tgt[128];
        tiny_batch(4, 32, inp, tgt, 17);
        es_lm_adamw opt = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.01f, 1.0f};
        for (int s = 1; s <= 2; s++) {
            es_lm_train_forward(t, inp, tgt, 32);
            es_lm_train_backward(t);
            es_lm_adamw_step(t, &opt, s);
        }
        n = es_lm_n_params(m);
        after[th - 1] = malloc(n * sizeof(float));
        memcpy(after[th - 1], es_lm_params(m), n * sizeof(float));
        es_lm_trainer_free(t);
        es_lm_free(m);
    }
    set_threads(1);
    assert_memory_equal(after[0], after[1], n * sizeof(float));
    free(after[0]);
    free(after[1]);
}

int main(void)
{
    /* one thread: the tests check numbers, and a busy CI machine makes
     * every fork/join of a tiny kernel expensive; threads get their own test */
    set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_threads_do_not_change_training),
        cmocka_unit_test(test_short_batch_matches_prefix),
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_training_lowers_loss),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_generation_reproducible),
        cmocka_unit_test(test_live_matches_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
