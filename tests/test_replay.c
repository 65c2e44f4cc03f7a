/*
 * test_replay.c - the policies replayed on the shared real traces, samples in
 * file order, against the reference figures of $ES_SHARED_DATA/README.md
 * (computed independently of the project): AC-beta .95 and ESC w5 EM and
 * mean samples, `full` = maj@k EM, the consistency oracle's samples and
 * tokens and, for the long-trace files, the stable-final oracle's tokens.
 *
 * The figures are parsed from the README at run time (tests/refdata.h), never
 * copied here, and compared at the precision the README prints.  Skips when
 * the data is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "earlystop.h"
#include "earlystop_io.h"
#include "earlystop_lm.h"
#include "refdata.h"
#include "testutil.h"

static es_ref_table tabs[ES_REF_MAX_TABLES];
static int n_tabs;

static int setup(void **state)
{
    char readme[1024];
    snprintf(readme, sizeof readme, "%s/README.md", es_ref_data_dir());
    n_tabs = es_ref_load(readme, tabs, ES_REF_MAX_TABLES);
    return 0;
}

/* Means over items of one replay in file order. */
typedef struct figs {
    double em, samples, tokens;
} figs;

static figs means(const es_eval_acc *acc, size_t n)
{
    figs f = {0};
    for (size_t i = 0; i < n; i++) {
        f.em += (double)acc[i].correct;
        f.samples += (double)acc[i].samples;
        f.tokens += (double)acc[i].tokens;
    }
    f.em /= (double)n;
    f.samples /= (double)n;
    f.tokens /= (double)n;
    return f;
}

/* A session driving p (which it borrows). */
static es_session *session_of(es_policy *p)
{
    es_session *s = NULL;
    assert_int_equal(es_session_new(p, &s), ES_OK);
    return s;
}

static figs replay_policy(const es_traceset *ts, const char *spec)
{
    size_t n = es_traceset_n_items(ts), bad = 0;
    es_eval_acc *acc = calloc(n, sizeof *acc);
    assert_non_null(acc);
    es_policy *p = NULL;
    es_error err = {0};
    if (es_policy_new(spec, &p, &err)) fail_msg("%s: %s", spec, err.msg);
    es_session *ses = session_of(p);
    int rc = es_eval_policy(ts, ses, 1, 0, 0, ES_PROBE_COST_FIELD, acc, &bad);
    if (rc) fail_msg("%s: item %zu: %s", spec, bad, es_policy_errmsg(p));
    figs f = means(acc, n);
    es_session_free(ses);
    es_policy_free(p);
    free(acc);
    return f;
}

static figs replay_oracle(const es_traceset *ts, es_oracle which)
{
    size_t n = es_traceset_n_items(ts);
    es_eval_acc *acc = calloc(n, sizeof *acc);
    assert_non_null(acc);
    assert_int_equal(es_eval_oracle(ts, which, 1, 0, 0, acc), ES_OK);
    figs f = means(acc, n);
    free(acc);
    return f;
}

/* Compare `got` with part `part` of the row's cell in `column`; 1 when the
 * column exists (a check was made), failures counted. */
static int check(const es_ref_table *t, int r, const char *column, int part, double got, const char *what,
                 int *failures)
{
    double ref;
    int dec;
    if (!es_ref_cell(t, r, column, part, &ref, &dec, failures)) return 0;
    if (!es_ref_matches(got, ref, dec)) {
        print_error("%s: %s: replay %.*f, README %.*f\n", t->cells[r][0], what, dec + 3, got, dec, ref);
        (*failures)++;
    }
    return 1;
}

static void test_reference_replay(void **state)
{
    if (n_tabs < 2) {
        print_message("shared data absent (%s/README.md): set ES_SHARED_DATA; skipping\n", es_ref_data_dir());
        skip();
    }
    int files = 0, checked = 0, failures = es_ref_check_tables(tabs, n_tabs), think = 0;
    for (int t = 0; t < n_tabs; t++)
        for (int r = 0; r < tabs[t].nrows; r++) {
            const es_ref_table *tb = &tabs[t];
            char path[1200];
            snprintf(path, sizeof path, "%s/traces/%s.jsonl", es_ref_data_dir(), tb->cells[r][0]);
            struct stat sb;
            if (stat(path, &sb)) {
                print_message("%s absent; skipping it\n", path);
                continue;
            }
            es_traceset *ts = NULL;
            es_error err = {0};
            if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err)) fail_msg("%s: %s", path, err.msg);
            files++;
            figs full = replay_policy(ts, "full");
            checked += check(tb, r, "maj@k EM", 0, full.em, "full EM", &failures);
            checked += check(tb, r, "full EM", 0, full.em, "full EM", &failures);
            if (es_ref_col(tb, "AC-beta .95 EM / samples") >= 0) {
                figs ac = replay_policy(ts, "ac-beta");
                checked += check(tb, r, "AC-beta .95 EM / samples", 0, ac.em, "ac-beta EM", &failures);
                checked += check(tb, r, "AC-beta .95 EM / samples", 1, ac.samples, "ac-beta samples", &failures);
            }
            if (es_ref_col(tb, "ESC w5 EM / samples") >= 0) {
                figs esc = replay_policy(ts, "esc");
                checked += check(tb, r, "ESC w5 EM / samples", 0, esc.em, "esc EM", &failures);
                checked += check(tb, r, "ESC w5 EM / samples", 1, esc.samples, "esc samples", &failures);
            }
            if (es_ref_col(tb, "consistency-oracle samples / tokens") >= 0) {
                figs o = replay_oracle(ts, ES_ORACLE_CONSISTENCY);
                checked += check(tb, r, "consistency-oracle samples / tokens", 0, o.samples,
                                 "consistency-oracle samples", &failures);
                checked += check(tb, r, "consistency-oracle samples / tokens", 1, o.tokens,
                                 "consistency-oracle tokens", &failures);
                /* the oracle answers the full majority */
                if (o.em != full.em) fail_msg("%s: consistency oracle EM %f != full %f", path, o.em, full.em);
            }
            if (es_ref_col(tb, "stable-final oracle tokens") >= 0) {
                figs o = replay_oracle(ts, ES_ORACLE_STABLE_FINAL);
                checked += check(tb, r, "stable-final oracle tokens", 0, o.tokens, "stable-final oracle tokens",
                                 &failures);
                think++;
            }
            es_traceset_free(ts);
        }
    print_message("replay vs README: %d files (%d long-trace), %d figures checked, %d differ\n", files, think,
                  checked, failures);
    if (files == 0) {
        print_message("no trace file of the README found under %s/traces; skipping\n", es_ref_data_dir());
        skip();
    }
    assert_int_equal(failures, 0);
}

/* ------------------------------------------------ rules against upstream */

/* Every trace file of the README tables whose name holds `only` (NULL: all)
 * and that loads here (an answer type may belong to a later build). */
typedef void (*file_fn)(const char *name, const es_traceset *ts, void *ctx);

static int each_file(file_fn fn, void *ctx, const char *only)
{
    int files = 0;
    for (int t = 0; t < n_tabs; t++)
        for (int r = 0; r < tabs[t].nrows; r++) {
            const char *name = tabs[t].cells[r][0];
            if (only && !strstr(name, only)) continue;
            char path[1200];
            snprintf(path, sizeof path, "%s/traces/%s.jsonl", es_ref_data_dir(), name);
            es_traceset *ts = NULL;
            es_error err = {0};
            if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err)) {
                print_message("%s: not loaded here (%s); left out\n", name, err.msg);
                continue;
            }
            fn(name, ts, ctx);
            es_traceset_free(ts);
            files++;
        }
    return files;
}

/* A policy from a spec with one number in it ("esc:window=%u"). */
static es_policy *policy(const char *fmt, uint32_t x)
{
    char spec[128];
    snprintf(spec, sizeof spec, fmt, x);
    es_policy *p = NULL;
    es_error err = {0};
    if (es_policy_new(spec, &p, &err)) fail_msg("%s: %s", spec, err.msg);
    return p;
}

/* Exponent of prime q in x. */
static int64_t valuation(uint64_t x, uint64_t q)
{
    int64_t e = 0;
    for (; x && x % q == 0; x /= q) e++;
    return e;
}

/* 1 when AC's normalised vote entropy of counts c[0..n) equals a/b exactly,
 * decided in integers: H / log2 n = a/b  <=>  (N^N / prod c^c)^b = n^(aN),
 * compared prime by prime (counts and n below 1000).  Upstream's pseudo-count
 * for a single answer is appended as it does. */
static int entropy_exact_tie(const uint32_t *c, uint32_t n, int64_t a, int64_t b)
{
    uint32_t one[2];
    if (n == 1) {
        one[0] = c[0];
        one[1] = 1;
        c = one;
        n = 2;
    }
    uint64_t N = 0;
    for (uint32_t i = 0; i < n; i++) N += c[i];
    for (uint64_t q = 2; q < 1000; q++) {
        int prime = 1;
        for (uint64_t d = 2; d * d <= q && prime; d++) prime = q % d != 0;
        if (!prime) continue;
        int64_t lhs = (int64_t)N * valuation(N, q);
        for (uint32_t i = 0; i < n; i++) lhs -= (int64_t)c[i] * valuation(c[i], q);
        if (b * lhs != a * (int64_t)N * valuation(n, q)) return 0;
    }
    return 1;
}

typedef struct tie_ctx {
    int items, tie_items, stopped_on_tie;
} tie_ctx;

/* entropy: counts whose value is 0.75 exactly, (8, 3, 1) among them, are
 * 0.7500000000000001 in upstream's scipy arithmetic, which then samples on:
 * no replay may stop on one. */
static void entropy_ties_file(const char *name, const es_traceset *ts, void *vctx)
{
    tie_ctx *ctx = vctx;
    es_policy *p = policy("entropy", 0);
    es_session *ses = session_of(p);
    uint32_t counts[512];
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_item_view v;
        es_outcome o;
        es_traceset_item(ts, i, &v);
        assert_true(v.n_answers <= 512);
        assert_int_equal(es_replay_item(ses, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
        /* counts in order of first vote after each prefix */
        uint32_t n = 0;
        int32_t pos[512];
        for (uint32_t a = 0; a < v.n_answers; a++) pos[a] = -1;
        int tie_seen = 0;
        for (uint32_t s = 0; s < o.samples; s++) {
            int32_t a = v.answer[s];
            if (pos[a] < 0) {
                pos[a] = (int32_t)n;
                counts[n++] = 0;
            }
            counts[pos[a]]++;
            if (s >= 1 && entropy_exact_tie(counts, n, 3, 4)) {
                if (s + 1 == o.samples) {
                    print_error("%s: %s stops at %u samples on an exact 0.75\n", name, v.id, o.samples);
                    ctx->stopped_on_tie++;
                }
                tie_seen = 1;
            }
        }
        ctx->tie_items += tie_seen;
        ctx->items++;
    }
    es_session_free(ses);
    es_policy_free(p);
}

static void test_entropy_exact_ties(void **state)
{
    if (n_tabs < 2) skip();
    tie_ctx ctx = {0};
    int files = each_file(entropy_ties_file, &ctx, NULL);
    print_message("entropy: %d files, %d items, %d pass an exact 0.75 before stopping, %d stop on one\n", files,
                  ctx.items, ctx.tie_items, ctx.stopped_on_tie);
    if (!files) skip();
    assert_int_equal(ctx.stopped_on_tie, 0);
    assert_true(ctx.tie_items > 0); /* the shared files do meet (8, 3, 1): the check bites */
}

/* ESC's scripts (early_stop_*.py) for one item, written out from their
 * loop: windows [i*w, (i+1)*w) for i < k // w; stop at the first whose
 * answers are all one value, answering it; else the majority of the k // w
 * windows' samples, ties to the first seen.  0 when k < w (upstream then
 * reads an unbound `index`). */
static uint32_t esc_upstream(const es_item_view *v, uint32_t w, int32_t *answer)
{
    uint32_t k = v->n_samples, windows = k / w;
    if (!windows) return 0;
    for (uint32_t i = 0; i < windows; i++) {
        int same = 1;
        for (uint32_t s = i * w + 1; s < (i + 1) * w; s++) same &= v->answer[s] == v->answer[i * w];
        if (same) {
            *answer = v->answer[i * w];
            return (i + 1) * w;
        }
    }
    uint32_t drawn = windows * w, best = 0, count[1024] = {0};
    assert_true(v->n_answers <= 1024);
    for (uint32_t s = 0; s < drawn; s++) count[v->answer[s]]++;
    *answer = -1;
    for (uint32_t s = 0; s < drawn; s++) /* first seen wins ties: scan in sample order */
        if (count[v->answer[s]] > best) {
            best = count[v->answer[s]];
            *answer = v->answer[s];
        }
    return drawn;
}

typedef struct esc_ctx {
    uint32_t window;
    int items, differ, draw_samples_differ, draw_answer_differ;
} esc_ctx;

static void esc_remainder_file(const char *name, const es_traceset *ts, void *vctx)
{
    esc_ctx *ctx = vctx;
    es_policy *skip = policy("esc:window=%u,remainder=skip", ctx->window), *draw = policy("esc:window=%u", ctx->window);
    es_session *sskip = session_of(skip), *sdraw = session_of(draw);
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_item_view v;
        es_outcome o, d;
        es_traceset_item(ts, i, &v);
        int32_t want;
        uint32_t n = esc_upstream(&v, ctx->window, &want);
        if (!n) continue;
        assert_int_equal(es_replay_item(sskip, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
        assert_int_equal(es_replay_item(sdraw, &v, NULL, ES_PROBE_COST_FIELD, &d), ES_OK);
        ctx->items++;
        if (o.samples != n || o.answer != want) {
            if (ctx->differ++ < 3)
                print_error("%s: %s: remainder=skip drew %u answering %d, ESC's loop %u answering %d\n", name, v.id,
                            o.samples, o.answer, n, want);
        }
        ctx->draw_samples_differ += d.samples != n;
        ctx->draw_answer_differ += d.answer != want;
    }
    es_session_free(sskip);
    es_session_free(sdraw);
    es_policy_free(skip);
    es_policy_free(draw);
}

static void test_esc_remainder(void **state)
{
    if (n_tabs < 2) skip();
    static const uint32_t windows[] = {3, 4, 7};
    for (int i = 0; i < 3; i++) {
        uint32_t w = windows[i];
        esc_ctx ctx = {.window = w};
        int files = each_file(esc_remainder_file, &ctx, NULL);
        if (!files) skip();
        print_message("esc window %u: %d items; remainder=skip differs from ESC's loop on %d; the default "
                      "(draw every sample) on %d stop points and %d answers\n",
                      w, ctx.items, ctx.differ, ctx.draw_samples_differ, ctx.draw_answer_differ);
        assert_int_equal(ctx.differ, 0);
        if (w == 3) assert_true(ctx.draw_samples_differ > 0); /* the option matters on these files */
    }
}

/* Dynasor's cot.py on one recorded trace, in the trace's own probe points:
 * the probe of the prefix at probe j is read once the chunk up to probe j+1
 * is out; the run stops there when the last k answers read agree and are
 * not null; the probe of the final chunk is never read. */
static void dynasor_upstream(const es_item_view *v, uint32_t s, uint32_t k, uint32_t *tokens, uint32_t *probes,
                             int32_t *answer)
{
    uint32_t b = v->probe_off[s], m = v->probe_off[s + 1] - b, run = 0;
    for (uint32_t j = 1; j < m; j++) {
        int32_t a = v->probe_answer[b + j - 1];
        run = j >= 2 && a == v->probe_answer[b + j - 2] ? run + 1 : 1;
        if (a != ES_NULL_ANSWER && run >= k) {
            *tokens = v->probe_at[b + j];
            *probes = j;
            *answer = a;
            return;
        }
    }
    *tokens = v->tokens[s];
    *probes = m;
    *answer = v->answer[s];
}

typedef struct dyn_ctx {
    uint32_t k;
    int items, differ;
    uint64_t tokens, tokens_at_probe;
} dyn_ctx;

static void dynasor_file(const char *name, const es_traceset *ts, void *vctx)
{
    dyn_ctx *ctx = vctx;
    if (es_traceset_n_probes(ts) == 0) return;
    es_policy *p = policy("dynasor:k=%u", ctx->k), *q = policy("dynasor:k=%u,decide=at-probe", ctx->k);
    es_session *sp = session_of(p), *sq = session_of(q);
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_item_view v;
        es_outcome o, at;
        es_traceset_item(ts, i, &v);
        assert_int_equal(v.n_samples, 1);
        uint32_t tokens, probes;
        int32_t answer;
        dynasor_upstream(&v, 0, ctx->k, &tokens, &probes, &answer);
        assert_int_equal(es_replay_item(sp, &v, NULL, 1, &o), ES_OK); /* 1 token per probe: probe_tokens counts them */
        assert_int_equal(es_replay_item(sq, &v, NULL, 1, &at), ES_OK);
        ctx->items++;
        ctx->tokens += o.tokens;
        ctx->tokens_at_probe += at.tokens;
        if (o.tokens != tokens || o.probe_tokens != probes || o.answer != answer) {
            if (ctx->differ++ < 3)
                print_error("%s: %s: replay %llu tokens %llu probes answer %d; cot.py %u, %u, %d\n", name, v.id,
                            (unsigned long long)o.tokens, (unsigned long long)o.probe_tokens, o.answer, tokens, probes,
                            answer);
        }
    }
    es_session_free(sp);
    es_session_free(sq);
    es_policy_free(p);
    es_policy_free(q);
}

static void test_dynasor_chunk_timing(void **state)
{
    if (n_tabs < 2) skip();
    static const uint32_t ks[] = {2, 3, 5};
    for (int i = 0; i < 3; i++) {
        dyn_ctx ctx = {.k = ks[i]};
        if (!each_file(dynasor_file, &ctx, "_think") || !ctx.items) skip();
        print_message("dynasor k=%u: %d long traces, %d differ from cot.py's timing; %.1f tokens/trace "
                      "(%.1f if decided at the probe)\n",
                      ctx.k, ctx.items, ctx.differ, (double)ctx.tokens / ctx.items,
                      (double)ctx.tokens_at_probe / ctx.items);
        assert_int_equal(ctx.differ, 0);
        assert_true(ctx.tokens > ctx.tokens_at_probe); /* one more chunk per stopped trace */
    }
}

/* deepconf on earlystop's own model output: `generate --task date --seed 7
 * --probe-every 16`, item date-00097, made here through the library as
 * generate makes it (sample i of item j draws from its own stream).  Its
 * sample 13 is 10 tokens long and has no probe; eval once exited 2 on it. */
typedef struct rec {
    uint32_t n;
    es_probe probes[32];
    char answers[32][32];
} rec;

static int rec_probe(void *ctx, const es_lm_probe *pr)
{
    rec *r = ctx;
    if (r->n < 32) {
        memcpy(r->answers[r->n], pr->answer, sizeof r->answers[0]);
        r->probes[r->n] = (es_probe){pr->at, pr->has_answer ? r->answers[r->n] : NULL, pr->confidence,
                                     pr->window_confidence, pr->cost, 0};
        r->n++;
    }
    return ES_CONTINUE;
}

/* wrapper.py's vote on the item, written out: confidence = min window
 * confidence rounded to 3 decimals (none without probes), threshold =
 * np.percentile(confidences of the warm-up traces, 100 - eta), a warm-up
 * trace votes at or above it, a later one is cut at its first window below
 * it (no vote) and otherwise votes at or above it; no answer, no vote. */
static int32_t deepconf_upstream(const es_item_view *v, uint32_t warmup, double eta)
{
    double conf[64], warm[64], weight[64] = {0};
    uint32_t m = 0;
    assert_true(v->n_samples <= 64 && v->n_answers <= 64);
    for (uint32_t s = 0; s < v->n_samples; s++) {
        conf[s] = NAN;
        for (uint32_t j = v->probe_off[s]; j < v->probe_off[s + 1]; j++)
            if (!(conf[s] <= v->probe_window_confidence[j])) conf[s] = v->probe_window_confidence[j];
        if (!isnan(conf[s])) conf[s] = round(conf[s] * 1000.0) / 1000.0; /* no tie at 5e-4 in these values */
        if (s < warmup && !isnan(conf[s])) warm[m++] = conf[s];
    }
    for (uint32_t i = 1; i < m; i++)
        for (uint32_t j = i; j > 0 && warm[j - 1] > warm[j]; j--) {
            double t = warm[j];
            warm[j] = warm[j - 1];
            warm[j - 1] = t;
        }
    double pos = (m - 1) * ((100.0 - eta) / 100.0), g = pos - floor(pos), bar = -INFINITY;
    if (m) {
        uint32_t lo = (uint32_t)pos, hi = lo + 1 < m ? lo + 1 : lo;
        bar = g >= 0.5 ? warm[hi] - (warm[hi] - warm[lo]) * (1 - g) : warm[lo] + (warm[hi] - warm[lo]) * g;
    }
    int32_t best = -1, first[64];
    uint32_t nfirst = 0;
    for (uint32_t s = 0; s < v->n_samples; s++) {
        int cut = 0;
        for (uint32_t j = v->probe_off[s]; s >= warmup && j < v->probe_off[s + 1]; j++)
            cut |= v->probe_window_confidence[j] < bar;
        int32_t a = v->answer[s];
        if (cut || isnan(conf[s]) || !(conf[s] >= bar) || a == ES_NULL_ANSWER) continue;
        if (weight[a] == 0) first[nfirst++] = a;
        weight[a] += conf[s];
    }
    for (uint32_t i = 0; i < nfirst; i++)
        if (best < 0 || weight[first[i]] > weight[best]) best = first[i];
    return best >= 0 ? best : ES_NULL_ANSWER;
}

static void test_deepconf_short_sample(void **state)
{
    const char *model = getenv("ES_MODEL");
    if (!model || !*model) model = "data/model.bin";
    if (access(model, R_OK)) {
        print_message("no %s: skipped\n", model);
        skip();
    }
    es_lm *m = NULL;
    assert_int_equal(es_lm_load(model, &m, NULL), ES_OK);
    es_lm_gen_opts o;
    es_lm_gen_opts_default(&o);
    o.probe_every = 16;
    es_lm_gen *g = NULL;
    assert_int_equal(es_lm_gen_new(m, &o, &g, NULL), ES_OK);
    es_task_example ex;
    assert_int_equal(es_task_make(ES_TASK_DATE, 7, 97, &ex), ES_OK);
    enum { K = 16 };
    static rec recs[K];
    static char answers[K][32];
    es_sample samples[K];
    for (uint32_t i = 0; i < K; i++) {
        es_rng r;
        es_lm_sample_rng(&r, 7, 97, i);
        recs[i].n = 0;
        es_lm_gen_hooks h = {NULL, rec_probe, NULL, &recs[i]};
        es_lm_sample_result res;
        assert_int_equal(es_lm_gen_sample(g, ex.prompt, &r, &h, &res), ES_OK);
        memcpy(answers[i], res.answer, sizeof answers[i]);
        samples[i] = (es_sample){res.has_answer ? answers[i] : NULL, res.tokens, res.confidence, NULL, recs[i].n,
                                 recs[i].probes};
    }
    /* the sample the issue names */
    assert_int_equal(samples[13].tokens, 10);
    assert_int_equal(samples[13].n_probes, 0);
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    const char *gold[1] = {ex.gold};
    es_item it = {"date-00097", "date", NULL, ES_ANSWER_DATE, 1, gold, K, samples};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    es_item_view v;
    es_traceset_item(ts, 0, &v);
    static const struct { const char *spec; uint32_t warmup; double eta; } cases[] = {
        {"deepconf", 16, 10}, {"deepconf:eta=90", 16, 90}, {"deepconf:warmup=4", 4, 10},
        {"deepconf:warmup=4,eta=90", 4, 90}, {"deepconf:warmup=14,eta=50", 14, 50}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        es_policy *p = policy(cases[c].spec, 0);
        es_session *ses = session_of(p);
        es_outcome out;
        int rc = es_replay_item(ses, &v, NULL, ES_PROBE_COST_FIELD, &out);
        if (rc) fail_msg("%s: %d %s", cases[c].spec, rc, es_policy_errmsg(p));
        assert_int_equal(out.samples, K); /* no consensus stop: every sample */
        int32_t want = deepconf_upstream(&v, cases[c].warmup, cases[c].eta);
        print_message("%s on date-00097: answer %s, wrapper.py's vote %s\n", cases[c].spec,
                      out.answer >= 0 && (uint32_t)out.answer < v.n_answers && v.answer_raw[out.answer] ? v.answer_raw[out.answer] : "(none)",
                      want >= 0 && (uint32_t)want < v.n_answers && v.answer_raw[want] ? v.answer_raw[want] : "(none)");
        assert_int_equal(out.answer, want);
        es_session_free(ses);
        es_policy_free(p);
    }
    es_traceset_free(ts);
    es_lm_gen_free(g);
    es_lm_free(m);
}

/* A rule that stops only on cued probes: the replay does not make, read or
 * charge a probe without cues (a forced answer, which a live driver never
 * makes for it: it makes free text probes), and stops on cued ones. */
static void test_cued_only_skips_uncued_probes(void **state)
{
    (void)state;
    es_probe forced[3] = {{10, "a", 0.9, NAN, 20, 0}, {20, "a", 0.9, NAN, 20, 0}, {30, "a", 0.9, NAN, 20, 0}};
    es_probe cued[3] = {{10, "b", NAN, NAN, 0, ES_CUE_READ},
                        {20, "a", NAN, NAN, 0, ES_CUE_READ | ES_CUE_CONCLUDE},
                        {30, "a", NAN, NAN, 0, ES_CUE_READ}};
    es_sample samples[2] = {{"a", 40, NAN, NULL, 3, forced}, {"a", 40, NAN, NULL, 3, cued}};
    const char *gold[1] = {"a"};
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    es_item it = {"q", "t", NULL, ES_ANSWER_TEXT, 1, gold, 2, samples};
    assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    es_stopper *st = es_test_cue_stopper();
    es_policy *p = NULL;
    assert_int_equal(es_policy_new_stopper("learned", st, &p, NULL), ES_OK);
    es_session *ses = NULL;
    assert_int_equal(es_session_new(p, &ses), ES_OK);
    es_outcome out;
    assert_int_equal(es_replay_item(ses, &v, NULL, ES_PROBE_COST_FIELD, &out), ES_OK);
    assert_int_equal(out.samples, 2);
    assert_int_equal(out.probes, 2);        /* the cued sample's first two; no forced one */
    assert_int_equal(out.probe_tokens, 0);
    assert_int_equal(out.tokens, 40 + 20);  /* the second sample stopped at its concluding probe */
    es_session_free(ses);
    es_policy_free(p);
    es_stopper_free(st);
    es_traceset_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_replay),
        cmocka_unit_test(test_entropy_exact_ties),
        cmocka_unit_test(test_esc_remainder),
        cmocka_unit_test(test_dynasor_chunk_timing),
        cmocka_unit_test(test_deepconf_short_sample),
        cmocka_unit_test(test_cued_only_skips_uncued_probes),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
