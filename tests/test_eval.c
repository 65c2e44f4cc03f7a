/*
 * test_eval.c - the replay layer over whole trace sets (src/replay/): hand-
 * built items replayed through a session, the random orders (pinned to a
 * plain rewrite), the determinism of es_eval_policy however the orders are
 * split, the oracles' ties, that replaying allocates nothing per item, the
 * report (es_report: every figure of `earlystop eval` against a hand
 * computation from replays and oracles written here), and the paired
 * bootstrap against a brute-force resampling written independently.
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
#include <unistd.h>

#include "earlystop_replay.h"
#include "alloc_count.h"
#include "testutil.h"

/* --------------------------------------------------------- hand-built sets */

/* A traceset of one item: sample s has answer ans[s], tokens tok[s] and the
 * probes given by its (at, answer) lists. */
typedef struct hand_sample {
    const char *answer;
    uint32_t tokens;
    uint32_t n_probes;
    es_probe probes[8];
} hand_sample;

static es_traceset *hand_set(const char *gold, const hand_sample *hs, size_t n)
{
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    es_sample smp[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        smp[i] = (es_sample){.answer = hs[i].answer, .tokens = hs[i].tokens, .confidence = NAN,
                             .n_probes = hs[i].n_probes, .probes = hs[i].probes};
    }
    const char *golds[] = {gold};
    es_item it = {.id = "q1", .task = "t", .answer_type = ES_ANSWER_NUMBER, .n_gold = 1, .gold = golds,
                  .n_samples = n, .samples = smp};
    es_error err = {0};
    if (es_traceset_add(ts, &it, &err)) fail_msg("traceset_add: %s", err.msg);
    return ts;
}

#define PR(at_, ans_) {.at = (at_), .answer = (ans_), .confidence = NAN, .window_confidence = NAN, .cost = -1}

static const char *answer_of(const es_item_view *v, int32_t id)
{
    return id >= 0 && (uint32_t)id < v->n_answers ? v->answer_raw[id] : NULL;
}

static void test_replay_budget_tokens(void **state)
{
    hand_sample hs[] = {
        {"9", 100, 3, {PR(20, "7"), PR(50, "8"), PR(90, "9")}},
        {"8", 30, 0, {{0}}},
        {"9", 70, 2, {PR(10, NULL), PR(65, "9")}},
        {"9", 80, 0, {{0}}},
    };
    es_traceset *ts = hand_set("8", hs, 4);
    es_item_view v;
    assert_int_equal(es_traceset_item(ts, 0, &v), ES_OK);
    es_test_pol p = es_test_pol_new("budget:tokens=60");
    es_outcome o;
    assert_int_equal(es_replay_item(p.s, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
    /* s0 cut at 60 answering the probe at 50 ("8"); s1 whole (30); s2 cut at
     * 60 answering the null probe at 10; s3 cut with no probe: null */
    assert_int_equal(o.samples, 4);
    assert_int_equal(o.tokens, 60 + 30 + 60 + 60);
    assert_int_equal(o.probes, 2 + 0 + 1 + 0);
    assert_int_equal(o.rounds, 1);
    /* votes 8, 8, null, null: tie -> "8", seen first */
    assert_string_equal(answer_of(&v, o.answer), "8");
    assert_int_equal(o.correct, 1);
    /* a probe exactly at the cap is the forced answer */
    es_test_pol_free(&p);
    p = es_test_pol_new("budget:tokens=50");
    assert_int_equal(es_replay_item(p.s, &v, NULL, 7, &o), ES_OK);
    assert_int_equal(o.tokens, 50 + 30 + 50 + 50);
    assert_int_equal(o.probes, 2 + 1);
    assert_int_equal(o.probe_tokens, 3 * 7);
    es_test_pol_free(&p);
    /* no cap: full tokens, no probes made without a within rule */
    p = es_test_pol_new("full");
    assert_int_equal(es_replay_item(p.s, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
    assert_int_equal(o.tokens, 280);
    assert_int_equal(o.probes, 0);
    assert_string_equal(answer_of(&v, o.answer), "9");
    assert_int_equal(o.correct, 0);
    es_test_pol_free(&p);
    /* a token budget combined with esc:window=2 */
    p = es_test_pol_new("budget:tokens=95+esc:window=2");
    assert_int_equal(es_replay_item(p.s, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
    /* s0 cut at 95 answering its probe at 90 ("9"), s1 = 30 ("8"): not
     * unanimous; s2 (70) and s3 (80) run whole, both "9": window stops */
    assert_int_equal(o.samples, 4);
    assert_int_equal(o.rounds, 2);
    assert_int_equal(o.tokens, 95 + 30 + 70 + 80);
    assert_string_equal(answer_of(&v, o.answer), "9");
    es_test_pol_free(&p);
    es_traceset_free(ts);
}

static void test_replay_within_stop(void **state)
{
    hand_sample hs[] = {
        {"3", 400, 5, {PR(50, "1"), PR(100, "3"), PR(150, "3"), PR(200, "3"), PR(300, "3")}},
    };
    hs[0].probes[1].cost = 4;
    es_traceset *ts = hand_set("3", hs, 1);
    es_item_view v;
    es_traceset_item(ts, 0, &v);
    /* Dynasor's timing: the probe at 200 is read once the chunk after it is
     * out, at 300; the sample ends there and the probe at 300 is never made.
     * The last probe is never read: k=4 would need the probe at 300. */
    static const struct { const char *spec; uint32_t lag; uint64_t tokens, probes; } dyn[] = {
        {"dynasor:k=3", 1, 300, 4}, {"dynasor:k=3,decide=at-probe", 0, 200, 4},
        {"dynasor:k=4", 1, 400, 5}, {"dynasor:k=4,decide=at-probe", 0, 300, 5}};
    es_test_pol p;
    es_outcome o;
    for (int i = 0; i < 4; i++) {
        p = es_test_pol_new(dyn[i].spec);
        assert_int_equal(es_session_info(p.s)->probe_lag, dyn[i].lag);
        assert_int_equal(es_replay_item(p.s, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
        assert_int_equal(o.tokens, dyn[i].tokens);
        assert_int_equal(o.probes, dyn[i].probes);
        assert_int_equal(o.probe_tokens, 4); /* only the probe with a cost field */
        assert_int_equal(o.correct, 1);
        es_test_pol_free(&p);
    }
    p = es_test_pol_new("convergence:m=1");
    assert_int_equal(es_replay_item(p.s, &v, NULL, 10, &o), ES_OK);
    assert_int_equal(o.tokens, 150);
    assert_int_equal(o.probe_tokens, 30);
    es_test_pol_free(&p);
    /* deer on probes without confidences: an error naming the cause */
    p = es_test_pol_new("deer");
    assert_int_equal(es_replay_item(p.s, &v, NULL, 0, &o), ES_ENOTSUP);
    assert_true(strstr(es_policy_errmsg(p.p), "deer needs probe confidences") != NULL);
    es_test_pol_free(&p);
    es_traceset_free(ts);
}

/* The oracles' majority of all samples breaks a tie on the answer seen
 * first in each order, as `full` does: answers 1 and 2 tie 2-2, gold 2, so
 * an order is correct exactly when a "2" comes before every "1". */
static void test_oracle_ties_in_order(void **state)
{
    hand_sample hs[] = {{"1", 10, 0, {{0}}}, {"2", 20, 0, {{0}}}, {"2", 30, 0, {{0}}},
                        {"1", 40, 0, {{0}}}, {"3", 50, 0, {{0}}}};
    es_traceset *ts = hand_set("2", hs, 5);
    es_item_view v;
    es_traceset_item(ts, 0, &v);
    uint64_t want = 0;
    for (uint32_t r = 0; r < 200; r++) {
        uint32_t order[5], i = 0;
        es_shuffle_order(9, r, 0, 5, order);
        while (v.answer[order[i]] != v.answer[0] && v.answer[order[i]] != v.answer[1]) i++;
        want += v.answer[order[i]] == v.answer[1];
    }
    assert_true(want > 50 && want < 150);
    es_eval_acc acc = {0}, full = {0};
    assert_int_equal(es_eval_oracle(ts, ES_ORACLE_CONSISTENCY, 9, 0, 200, &acc), ES_OK);
    assert_int_equal(acc.correct, want);
    es_test_pol p = es_test_pol_new("full");
    assert_int_equal(es_eval_policy(ts, p.s, 9, 0, 200, ES_PROBE_COST_FIELD, &full, NULL), ES_OK);
    assert_int_equal(full.correct, want);
    es_test_pol_free(&p);
    es_traceset_free(ts);
}

/* ------------------------------------------------------------- determinism */

/* 40 items of 12..27 samples over a few answers, some null; with `probes`,
 * each sample also carries 0..3 probes, mostly agreeing with its answer. */
static es_traceset *random_set_probes(int probes)
{
    es_traceset *ts = NULL;
    assert_int_equal(es_traceset_new(0, &ts), ES_OK);
    static const char *const vals[] = {"1", "2", "3", "4", NULL};
    char id[16];
    for (int i = 0; i < 40; i++) {
        es_sample smp[32];
        es_probe pr[32][3];
        uint32_t n = 12 + (uint32_t)(es_test_uniform() * 16);
        for (uint32_t s = 0; s < n; s++) {
            double u = es_test_uniform();
            /* skewed towards "1" so that rules stop at various points */
            int k = u < 0.55 ? 0 : (int)(es_test_uniform() * 5);
            uint32_t tokens = 10 + (uint32_t)(es_test_uniform() * 90);
            smp[s] = (es_sample){.answer = vals[k], .tokens = tokens, .confidence = NAN};
            uint32_t np = probes ? (uint32_t)(es_test_uniform() * 4) : 0;
            for (uint32_t j = 0; j < np; j++)
                pr[s][j] = (es_probe){.at = (j + 1) * smp[s].tokens / 4,
                                      .answer = es_test_uniform() < 0.7 ? vals[k] : vals[(int)(es_test_uniform() * 5)],
                                      .confidence = NAN, .window_confidence = NAN, .cost = (int32_t)j - 1};
            smp[s].n_probes = np;
            smp[s].probes = pr[s];
        }
        snprintf(id, sizeof id, "i%d", i);
        const char *golds[] = {i % 3 ? "1" : "2"};
        es_item it = {.id = id, .task = "t", .answer_type = ES_ANSWER_NUMBER, .n_gold = 1, .gold = golds,
                      .n_samples = n, .samples = smp};
        assert_int_equal(es_traceset_add(ts, &it, NULL), ES_OK);
    }
    return ts;
}

static es_traceset *random_set(void) { return random_set_probes(0); }

static void test_eval_chunking_deterministic(void **state)
{
    es_traceset *ts = random_set_probes(1);
    size_t n = es_traceset_n_items(ts);
    /* ac-dirichlet is left out: each of its decisions integrates (slow) */
    static const char *const specs[] = {"ac-beta", "esc:window=3", "entropy", "majority", "full",
                                        "budget:samples=2", "dynasor:k=2+ac-beta", "budget:tokens=40+majority",
                                        "dynasor:k=2"};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        es_eval_acc *one = calloc(n, sizeof *one), *three = calloc(n, sizeof *three);
        assert_non_null(one);
        assert_non_null(three);
        es_test_pol p = es_test_pol_new(specs[k]), q = es_test_pol_new(specs[k]);
        assert_int_equal(es_eval_policy(ts, p.s, 7, 0, 30, ES_PROBE_COST_FIELD, one, NULL), ES_OK);
        /* three chunks, in a scrambled order, on another policy object */
        assert_int_equal(es_eval_policy(ts, q.s, 7, 20, 30, ES_PROBE_COST_FIELD, three, NULL), ES_OK);
        assert_int_equal(es_eval_policy(ts, q.s, 7, 0, 7, ES_PROBE_COST_FIELD, three, NULL), ES_OK);
        assert_int_equal(es_eval_policy(ts, q.s, 7, 7, 20, ES_PROBE_COST_FIELD, three, NULL), ES_OK);
        assert_memory_equal(one, three, n * sizeof *one);
        /* es_eval_policy draws each order lazily, only as far as the policy
         * reads it: the sums of replays on the full orders of
         * es_shuffle_order (the orders the oracles see) */
        memset(three, 0, n * sizeof *three);
        uint64_t drawn = 0, all = 0;
        for (size_t i = 0; i < n; i++) {
            es_item_view v;
            es_outcome o;
            uint32_t order[32];
            es_traceset_item(ts, i, &v);
            for (uint32_t r = 0; r < 30; r++) {
                es_shuffle_order(7, r, (uint32_t)i, v.n_samples, order);
                assert_int_equal(es_replay_item(q.s, &v, order, ES_PROBE_COST_FIELD, &o), ES_OK);
                es_eval_acc_add(&three[i], &o);
                drawn += o.samples;
                all += v.n_samples;
            }
        }
        assert_memory_equal(one, three, n * sizeof *one);
        if (k == 0) assert_true(drawn < all); /* ac-beta stops early: the rest of an order is never drawn */
        uint64_t samples = 0;
        for (size_t i = 0; i < n; i++) samples += one[i].samples;
        assert_true(samples > 0);
        /* file order = shuffles (0, 0) */
        memset(one, 0, n * sizeof *one);
        assert_int_equal(es_eval_policy(ts, p.s, 99, 0, 0, ES_PROBE_COST_FIELD, one, NULL), ES_OK);
        for (size_t i = 0; i < n; i++) {
            es_item_view v;
            es_outcome o;
            es_traceset_item(ts, i, &v);
            assert_int_equal(es_replay_item(q.s, &v, NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
            assert_int_equal(one[i].samples, o.samples);
            assert_int_equal(one[i].tokens, o.tokens);
            assert_int_equal(one[i].correct, o.correct);
        }
        es_test_pol_free(&p);
        es_test_pol_free(&q);
        free(one);
        free(three);
    }
    es_traceset_free(ts);
}

/* The orders, written out the plain way: splitmix64 seeded from (seed,
 * shuffle, item), each output giving two 32-bit values (high half first);
 * Fisher-Yates from the front (a replay draws only the samples a policy
 * reads), j uniform in [i, n) as the high half of (value * range), redrawn
 * while the low half is below 2^32 mod range.  Pinning them keeps a
 * speed-up of es_shuffle_order from silently changing every --shuffles
 * figure. */
static uint64_t ref_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void ref_shuffle(uint64_t seed, uint32_t shuffle, uint32_t item, uint32_t n, uint32_t *order)
{
    uint64_t s = seed ^ ((uint64_t)shuffle << 32 | item) * 0xD6E8FEB86659FD93ULL;
    ref_splitmix(&s);
    uint32_t vals[2 * 200 + 64], used = 0, have = 0;
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    for (uint32_t i = 0; i + 1 < n; i++) {
        uint64_t range = n - i, lim = (1ULL << 32) % range, m;
        do {
            if (used == have) {
                assert_true(have + 2 <= sizeof vals / sizeof vals[0]);
                uint64_t x = ref_splitmix(&s);
                vals[have++] = (uint32_t)(x >> 32);
                vals[have++] = (uint32_t)x;
            }
            m = vals[used++] * range;
        } while ((m & 0xFFFFFFFFULL) < lim);
        uint32_t j = i + (uint32_t)(m >> 32), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static void test_shuffle_order(void **state)
{
    {
        uint32_t got[200], want[200];
        for (uint32_t k = 0; k < 3000; k++) {
            uint32_t n = k % 200;
            uint64_t seed = k * 0x1234567ULL + (k & 7);
            es_shuffle_order(seed, k / 3, k % 97, n, got);
            ref_shuffle(seed, k / 3, k % 97, n, want);
            assert_memory_equal(got, want, n * sizeof *got);
        }
    }

    uint32_t a[64], b[64], seen[64];
    int differs = 0;
    for (uint32_t n = 0; n <= 64; n += 7) {
        for (uint32_t r = 0; r < 20; r++) {
            es_shuffle_order(42, r, 3, n, a);
            es_shuffle_order(42, r, 3, n, b);
            assert_memory_equal(a, b, n * sizeof *a); /* pure */
            memset(seen, 0, sizeof seen);
            for (uint32_t i = 0; i < n; i++) {
                assert_true(a[i] < n);
                seen[a[i]]++;
            }
            for (uint32_t i = 0; i < n; i++) assert_int_equal(seen[i], 1); /* a permutation */
            if (n >= 14) {
                es_shuffle_order(42, r + 1, 3, n, b);
                differs += memcmp(a, b, n * sizeof *a) != 0;
                es_shuffle_order(43, r, 3, n, b);
                differs += memcmp(a, b, n * sizeof *a) != 0;
                es_shuffle_order(42, r, 4, n, b);
                differs += memcmp(a, b, n * sizeof *a) != 0;
            }
        }
    }
    /* seed, shuffle and item each change the order (n = 14, 21, ..., 63) */
    assert_int_equal(differs, 3 * 20 * 8);
    /* every position is reached: first element roughly uniform over 10 */
    uint32_t first[10] = {0};
    for (uint32_t r = 0; r < 5000; r++) {
        es_shuffle_order(1, r, 0, 10, a);
        first[a[0]]++;
    }
    for (int i = 0; i < 10; i++) assert_true(first[i] > 400 && first[i] < 600);
}

/* ------------------------------------------------------------- allocation */

/* Replaying allocates nothing per item or event: counted where the build
 * allows, and resident memory stays flat (which a malloc/free per event
 * would also show under ASan, through its quarantine of freed blocks). */
static long resident_kib(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!fp) return -1;
    if (fscanf(fp, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(fp);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_replay_memory_flat(void **state)
{
    es_traceset *ts = random_set();
    size_t n = es_traceset_n_items(ts);
    static const char *const specs[] = {"ac-beta", "majority", "entropy", "esc", "deepconf:warmup=2"};
    es_test_pol p[5];
    for (int k = 0; k < 5; k++) p[k] = es_test_pol_new(specs[k]);
    es_item_view v;
    es_outcome o;
    uint32_t order[32];
    /* warm up: buffers reach their size */
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < n; i++) {
            es_traceset_item(ts, i, &v);
            assert_int_equal(es_replay_item(p[k].s, &v, NULL, 0, &o), ES_OK);
        }
    long before = resident_kib();
    uint64_t events = 0;
    es_alloc_begin();
    for (uint32_t r = 0; r < 500; r++)
        for (size_t i = 0; i < n; i++) {
            es_traceset_item(ts, i, &v);
            es_shuffle_order(5, r, (uint32_t)i, v.n_samples, order);
            for (int k = 0; k < 4; k++) {
                if (es_replay_item(p[k].s, &v, order, 0, &o) != ES_OK) fail_msg("%s: item %zu", specs[k], i);
                events += o.samples;
            }
        }
    long allocs = es_alloc_end(), after = resident_kib();
    print_message("replay: %llu sample events, %ld allocations, resident %ld -> %ld KiB\n",
                  (unsigned long long)events, allocs, before, after);
    if (es_alloc_counting()) assert_int_equal(allocs, 0);
    else print_message("allocations not counted in this build (sanitizer): resident memory only\n");
    if (before >= 0) assert_true(after - before < 1024);
    /* es_eval_policy allocates its order buffers per call, nothing per item
     * or order: the same count for 1 order and for 40 */
    es_eval_acc *acc = calloc(n, sizeof *acc);
    assert_non_null(acc);
    es_alloc_begin();
    assert_int_equal(es_eval_policy(ts, p[0].s, 3, 0, 1, 0, acc, NULL), ES_OK);
    long one = es_alloc_end();
    es_alloc_begin();
    assert_int_equal(es_eval_policy(ts, p[0].s, 3, 0, 40, 0, acc, NULL), ES_OK);
    long forty = es_alloc_end();
    if (es_alloc_counting()) {
        assert_int_equal(one, forty);
        assert_true(one <= 4);
    }
    free(acc);
    /* deepconf without confidences fails cleanly, without leaking either */
    es_traceset_item(ts, 0, &v);
    assert_int_equal(es_replay_item(p[4].s, &v, NULL, 0, &o), ES_ENOTSUP);
    for (int k = 0; k < 5; k++) es_test_pol_free(&p[k]);
    es_traceset_free(ts);
}

/* -------------------------------------------------------------- bootstrap */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The paired bootstrap by brute force, as documented: B resamples, each of
 * n items drawn with replacement (index = draw % n, splitmix64 (ref_splitmix
 * above, written out from its definition) from seed ^
 * 0xB007B007B007B007), the resample's mean difference, then the 2.5% and
 * 97.5% points of the sorted means (nearest rank on B - 1). */
static void brute_bootstrap(const double *a, const double *b, size_t n, uint32_t B, uint64_t seed, double *lo,
                            double *hi)
{
    *lo = *hi = 0;
    if (!n || !B) return;
    double *m = malloc(B * sizeof *m);
    assert_non_null(m);
    uint64_t s = seed ^ 0xB007B007B007B007ULL;
    for (uint32_t r = 0; r < B; r++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)(ref_splitmix(&s) % n);
            sum += a[k] - b[k];
        }
        m[r] = sum / (double)n;
    }
    qsort(m, B, sizeof *m, cmp_dbl);
    *lo = m[(size_t)(0.025 * (B - 1) + 0.5)];
    *hi = m[(size_t)(0.975 * (B - 1) + 0.5)];
    free(m);
}

static void expect_close(double got, double want, const char *what)
{
    if (!(fabs(got - want) <= 1e-12 * (1 + fabs(want)))) fail_msg("%s: %.17g, want %.17g", what, got, want);
}

static void test_bootstrap(void **state)
{
    static const struct {
        size_t n;
        uint32_t B;
        uint64_t seed;
    } cases[] = {{1, 10, 1}, {7, 1, 2}, {7, 1000, 3}, {50, 200, 99}, {333, 500, 12345}, {1000, 100, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = cases[c].n;
        double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        assert_non_null(a);
        assert_non_null(b);
        /* EM-like per-item means: most items equal, some differ either way */
        for (size_t i = 0; i < n; i++) {
            b[i] = es_test_uniform() < 0.6 ? 1 : (double)(int)(es_test_uniform() * 5) / 4;
            a[i] = es_test_uniform() < 0.8 ? b[i] : (double)(int)(es_test_uniform() * 5) / 4;
        }
        double lo, hi, wlo, whi;
        brute_bootstrap(a, b, n, cases[c].B, cases[c].seed, &wlo, &whi);
        assert_int_equal(es_bootstrap_diff(a, b, n, cases[c].B, cases[c].seed, &lo, &hi), ES_OK);
        expect_close(lo, wlo, "lo");
        expect_close(hi, whi, "hi");
        assert_true(lo <= hi);
        /* swapped: the interval mirrored */
        assert_int_equal(es_bootstrap_diff(b, a, n, cases[c].B, cases[c].seed, &lo, &hi), ES_OK);
        expect_close(lo, -whi, "swapped lo");
        expect_close(hi, -wlo, "swapped hi");
        /* one es_bootstrap for many rows paired against the same baseline */
        es_bootstrap *bs = NULL;
        assert_int_equal(es_bootstrap_new(n, cases[c].B, cases[c].seed, &bs), ES_OK);
        for (int row = 0; row < 3; row++) {
            for (size_t i = 0; i < n; i++)
                if (es_test_uniform() < 0.1) a[i] = (double)(int)(es_test_uniform() * 5) / 4;
            brute_bootstrap(a, b, n, cases[c].B, cases[c].seed, &wlo, &whi);
            assert_int_equal(es_bootstrap_interval(bs, a, b, &lo, &hi), ES_OK);
            expect_close(lo, wlo, "reused lo");
            expect_close(hi, whi, "reused hi");
        }
        /* no difference: [0, 0]; a constant shift d: [d, d] */
        assert_int_equal(es_bootstrap_interval(bs, b, b, &lo, &hi), ES_OK);
        assert_true(lo == 0 && hi == 0);
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.25;
        assert_int_equal(es_bootstrap_interval(bs, a, b, &lo, &hi), ES_OK);
        expect_close(lo, 0.25, "shift lo");
        expect_close(hi, 0.25, "shift hi");
        es_bootstrap_free(bs);
        free(a);
        free(b);
    }
    /* what the interval means, independently of the draws: for n paired
     * differences of mean 0.2, the 95% interval holds the observed mean
     * and is about +-1.96 standard errors wide */
    enum { N = 2000 };
    static double a[N], b[N];
    double mean = 0, var = 0;
    for (size_t i = 0; i < N; i++) {
        double u = es_test_uniform();
        b[i] = 0.5;
        a[i] = 0.5 + (u < 0.3 ? 1 : u < 0.4 ? -1 : 0);
        mean += a[i] - b[i];
    }
    mean /= N;
    for (size_t i = 0; i < N; i++) var += (a[i] - b[i] - mean) * (a[i] - b[i] - mean);
    double se = sqrt(var / (N - 1) / N), lo, hi;
    assert_int_equal(es_bootstrap_diff(a, b, N, 1000, 7, &lo, &hi), ES_OK);
    print_message("bootstrap: mean %.4f, interval [%.4f, %.4f], 1.96 se = %.4f\n", mean, lo, hi, 1.96 * se);
    assert_true(lo < mean && mean < hi);
    assert_true(fabs((hi - lo) / 2 - 1.96 * se) < 0.15 * 1.96 * se);
    assert_true(fabs((hi + lo) / 2 - mean) < 0.5 * se);
    /* nothing to resample */
    assert_int_equal(es_bootstrap_diff(a, b, 0, 1000, 7, &lo, &hi), ES_OK);
    assert_true(lo == 0 && hi == 0);
    es_bootstrap *bs = (es_bootstrap *)&bs;
    assert_int_equal(es_bootstrap_new((size_t)1 << 62, 1000, 1, &bs), ES_ERANGE);
    assert_null(bs);
}

/* ----------------------------------------------------------------- report */

/* Per-item sums of a policy replayed the plain way: es_replay_item on every
 * order of es_shuffle_order (the file order when shuffles is 0). */
static void hand_policy(const es_traceset *ts, const char *spec, uint64_t seed, uint32_t shuffles, es_eval_acc *acc)
{
    es_test_pol p = es_test_pol_new(spec);
    uint32_t order[64];
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_item_view v;
        es_outcome o;
        es_traceset_item(ts, i, &v);
        assert_true(v.n_samples <= 64);
        memset(&acc[i], 0, sizeof acc[i]);
        for (uint32_t r = 0; r < (shuffles ? shuffles : 1); r++) {
            if (shuffles) es_shuffle_order(seed, r, (uint32_t)i, v.n_samples, order);
            assert_int_equal(es_replay_item(p.s, &v, shuffles ? order : NULL, ES_PROBE_COST_FIELD, &o), ES_OK);
            es_eval_acc_add(&acc[i], &o);
        }
    }
    es_test_pol_free(&p);
}

/* The leader of a[0..n) by counts, ties to the answer seen first. */
static int32_t hand_leader(const int32_t *a, uint32_t n)
{
    int32_t best = -1;
    uint32_t best_count = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = 0;
        int seen_before = 0;
        for (uint32_t j = 0; j < i; j++) seen_before |= a[j] == a[i];
        if (seen_before) continue;
        for (uint32_t j = 0; j < n; j++) c += a[j] == a[i];
        if (c > best_count) best_count = c, best = a[i];
    }
    return best;
}

/* The oracles, from their definitions. */
static void hand_oracle(const es_traceset *ts, es_oracle which, uint64_t seed, uint32_t shuffles, es_eval_acc *acc)
{
    uint32_t order[64];
    int32_t ans[64];
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        es_item_view v;
        es_traceset_item(ts, i, &v);
        memset(&acc[i], 0, sizeof acc[i]);
        uint32_t n = v.n_samples;
        for (uint32_t r = 0; r < shuffles; r++) {
            es_shuffle_order(seed, r, (uint32_t)i, n, order);
            for (uint32_t k = 0; k < n; k++) ans[k] = v.answer[order[k]];
            int32_t maj = hand_leader(ans, n);
            uint32_t take = n;
            uint8_t correct = v.correct[maj];
            uint64_t tokens = 0;
            if (which == ES_ORACLE_CONSISTENCY) {
                /* fewest first samples whose every longer prefix leads with maj */
                for (take = 1; take < n; take++) {
                    int ok = 1;
                    for (uint32_t m = take; m <= n && ok; m++) ok = hand_leader(ans, m) == maj;
                    if (ok) break;
                }
            } else if (which == ES_ORACLE_CORRECTNESS) {
                correct = 0;
                for (take = 1; take <= n && !correct; take++) correct = v.correct[hand_leader(ans, take)];
                take = correct ? take - 1 : n;
            }
            if (which == ES_ORACLE_STABLE_FINAL) {
                for (uint32_t k = 0; k < n; k++) {
                    uint32_t s = order[k], b = v.probe_off[s], e = v.probe_off[s + 1], cut = v.tokens[s];
                    /* the earliest probe from which all say the final answer */
                    if (e > b && v.probe_answer[e - 1] == v.answer[s]) {
                        uint32_t j = e - 1;
                        while (j > b && v.probe_answer[j - 1] == v.answer[s]) j--;
                        cut = v.probe_at[j];
                    }
                    tokens += cut;
                }
            } else {
                for (uint32_t k = 0; k < take; k++) tokens += v.tokens[order[k]];
            }
            acc[i].correct += correct;
            acc[i].samples += take;
            acc[i].rounds += 1;
            acc[i].tokens += tokens;
        }
    }
}

/* A row's figures from its sums, as `earlystop eval` defines them. */
typedef struct hand_figs {
    double em, tokens, gen_tokens, samples, rounds, probes;
} hand_figs;

static hand_figs hand_means(const es_eval_acc *acc, size_t n, uint32_t shuffles)
{
    hand_figs f = {0};
    for (size_t i = 0; i < n; i++) {
        f.em += (double)acc[i].correct;
        f.tokens += (double)(acc[i].tokens + acc[i].probe_tokens);
        f.gen_tokens += (double)acc[i].tokens;
        f.samples += (double)acc[i].samples;
        f.rounds += (double)acc[i].rounds;
        f.probes += (double)acc[i].probes;
    }
    double d = (double)n * (shuffles ? shuffles : 1);
    f.em /= d, f.tokens /= d, f.gen_tokens /= d, f.samples /= d, f.rounds /= d, f.probes /= d;
    return f;
}

static void test_report_figures(void **state)
{
    es_traceset *ts = random_set_probes(1);
    size_t n = es_traceset_n_items(ts);
    es_report_opts o;
    es_report_opts_init(&o);
    assert_int_equal(o.shuffles, 0);
    assert_int_equal(o.seed, 1);
    assert_int_equal(o.probe_cost, ES_PROBE_COST_FIELD);
    assert_int_equal(o.bootstrap, 1000);
    o.shuffles = 6;
    o.seed = 5;
    o.threads = 2;
    o.bootstrap = 300;
    es_report *r = NULL;
    es_error err = {0};
    if (es_report_new(ts, &o, &r, &err)) fail_msg("report: %s", err.msg);
    static const char *const specs[] = {"ac-beta", "esc:window=3", "deer", "dynasor:k=2+ac-beta",
                                        "budget:tokens=40+majority"};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        es_policy *p = NULL;
        assert_int_equal(es_policy_new(specs[k], &p, NULL), ES_OK);
        memset(&err, 0, sizeof err);
        int rc = es_report_add_policy(r, p, &err);
        if (k == 2) {
            /* deer cannot be fed probes without confidences: its row fails
             * with the reason, and the report goes on */
            assert_int_equal(rc, ES_ENOTSUP);
            assert_non_null(strstr(err.msg, "confidence"));
        } else if (rc) {
            fail_msg("%s: %s", specs[k], err.msg);
        }
        es_policy_free(p);
    }
    assert_int_equal(es_report_oracle_row(r, ES_ORACLE_CONSISTENCY), -1);
    assert_int_equal(es_report_add_oracles(r), ES_OK);
    assert_int_equal(es_report_n_rows(r), 1 + 5 + 3);
    /* rows: the baseline, the policies in order, the oracles by name */
    assert_int_equal(es_report_row_kind(r, 0), ES_ROW_BASELINE);
    assert_string_equal(es_report_row_name(r, 0), "full:max=all");
    for (int k = 0; k < 5; k++) {
        es_policy *p = NULL;
        assert_int_equal(es_policy_new(specs[k], &p, NULL), ES_OK);
        assert_int_equal(es_report_row_kind(r, 1 + k), ES_ROW_POLICY);
        assert_string_equal(es_report_row_name(r, 1 + k), es_policy_spec(p));
        es_policy_free(p);
    }
    static const es_oracle oracles[] = {ES_ORACLE_CONSISTENCY, ES_ORACLE_CORRECTNESS, ES_ORACLE_STABLE_FINAL};
    for (int k = 0; k < 3; k++) {
        int row = es_report_oracle_row(r, oracles[k]);
        assert_int_equal(row, 6 + k);
        assert_int_equal(es_report_row_kind(r, row), ES_ROW_ORACLE);
        char name[64];
        snprintf(name, sizeof name, "oracle:%s", es_oracle_name(oracles[k]));
        assert_string_equal(es_report_row_name(r, row), name);
    }
    const es_error *why = NULL;
    assert_int_equal(es_report_row_failed(r, 3, &why), ES_ENOTSUP);
    assert_non_null(strstr(why->msg, "deer"));
    es_row_figures f;
    assert_int_equal(es_report_figures(r, 3, &f), ES_EINVAL);
    assert_int_equal(es_report_figures(r, 99, &f), ES_EINVAL);

    /* every other row against the hand computation */
    es_eval_acc *want = calloc(n, sizeof *want), *base = calloc(n, sizeof *base), *sf = calloc(n, sizeof *sf);
    double *em = malloc(n * sizeof *em), *em_base = malloc(n * sizeof *em_base);
    assert_true(want && base && sf && em && em_base);
    hand_policy(ts, "full", 5, 6, base);
    hand_oracle(ts, ES_ORACLE_STABLE_FINAL, 5, 6, sf);
    hand_figs fb = hand_means(base, n, 6), fo = hand_means(sf, n, 6);
    for (size_t i = 0; i < n; i++) em_base[i] = (double)base[i].correct / 6;
    for (int row = 0; row < es_report_n_rows(r); row++) {
        if (row == 3) continue;
        assert_int_equal(es_report_row_failed(r, row, NULL), 0);
        es_row_kind kind = es_report_row_kind(r, row);
        if (kind == ES_ROW_ORACLE) hand_oracle(ts, oracles[row - 6], 5, 6, want);
        else hand_policy(ts, row ? specs[row - 1] : "full", 5, 6, want);
        const es_eval_acc *got = es_report_row_acc(r, row);
        for (size_t i = 0; i < n; i++)
            if (memcmp(&got[i], &want[i], sizeof want[i]))
                fail_msg("%s, item %zu: correct %llu samples %llu tokens %llu, hand %llu %llu %llu",
                         es_report_row_name(r, row), i, (unsigned long long)got[i].correct,
                         (unsigned long long)got[i].samples, (unsigned long long)got[i].tokens,
                         (unsigned long long)want[i].correct, (unsigned long long)want[i].samples,
                         (unsigned long long)want[i].tokens);
        hand_figs h = hand_means(want, n, 6);
        assert_int_equal(es_report_figures(r, row, &f), ES_OK);
        const char *name = es_report_row_name(r, row);
        expect_close(f.em, h.em, name);
        expect_close(f.tokens, h.tokens, name);
        expect_close(f.gen_tokens, h.gen_tokens, name);
        expect_close(f.samples, h.samples, name);
        expect_close(f.rounds, h.rounds, name);
        expect_close(f.probes, h.probes, name);
        expect_close(f.d_em, h.em - fb.em, name);
        expect_close(f.reduction, 100 * (1 - h.tokens / fb.tokens), name);
        /* traces with probes: measured against the stable-final oracle */
        expect_close(f.oracle_x, h.tokens / fo.tokens, name);
        if (kind == ES_ROW_ORACLE) {
            assert_true(isnan(f.d_lo) && isnan(f.d_hi));
        } else {
            for (size_t i = 0; i < n; i++) em[i] = (double)want[i].correct / 6;
            double lo, hi;
            brute_bootstrap(em, em_base, n, 300, 5, &lo, &hi);
            expect_close(f.d_lo, lo, name);
            expect_close(f.d_hi, hi, name);
            if (row == 0) assert_true(f.d_lo == 0 && f.d_hi == 0 && f.d_em == 0 && f.reduction == 0);
        }
        print_message("%-56s EM %.3f dEM %+.3f [%+.3f, %+.3f] tokens %.1f reduct %.1f%% oracle x %.2f\n", name, f.em,
                      f.d_em, f.d_lo, f.d_hi, f.tokens, f.reduction, f.oracle_x);
    }
    es_report_free(r);

    /* without probes: a probe rule gets a failed row, the stable-final oracle
     * is not added and the consistency oracle is the reference; without
     * oracle rows there is no oracle multiple */
    es_traceset *plain = random_set();
    n = es_traceset_n_items(plain);
    o.shuffles = 0;
    assert_int_equal(es_report_new(plain, &o, &r, NULL), ES_OK);
    es_policy *p = NULL;
    assert_int_equal(es_policy_new("dynasor", &p, NULL), ES_OK);
    memset(&err, 0, sizeof err);
    assert_int_equal(es_report_add_policy(r, p, &err), ES_ENOTSUP);
    assert_non_null(strstr(err.msg, "decides on probes"));
    es_policy_free(p);
    assert_int_equal(es_policy_new("esc", &p, NULL), ES_OK);
    assert_int_equal(es_report_add_policy(r, p, NULL), ES_OK);
    es_policy_free(p);
    assert_int_equal(es_report_figures(r, 2, &f), ES_OK);
    assert_true(isnan(f.oracle_x));
    assert_int_equal(es_report_add_oracles(r), ES_OK);
    assert_int_equal(es_report_n_rows(r), 3 + 2);
    assert_int_equal(es_report_oracle_row(r, ES_ORACLE_STABLE_FINAL), -1);
    es_eval_acc *esc = realloc(want, n * sizeof *esc), *cons = calloc(n, sizeof *cons);
    assert_true(esc && cons);
    want = esc;
    hand_policy(plain, "esc", 1, 0, esc);
    /* the file order: the oracle on the identity order */
    for (size_t i = 0; i < n; i++) {
        es_item_view v;
        es_traceset_item(plain, i, &v);
        uint32_t take = 1;
        for (; take < v.n_samples; take++) {
            int ok = 1;
            for (uint32_t m = take; m <= v.n_samples && ok; m++)
                ok = hand_leader(v.answer, m) == hand_leader(v.answer, v.n_samples);
            if (ok) break;
        }
        for (uint32_t k = 0; k < take; k++) cons[i].tokens += v.tokens[k];
    }
    assert_int_equal(es_report_figures(r, 2, &f), ES_OK);
    expect_close(f.oracle_x, hand_means(esc, n, 0).tokens / hand_means(cons, n, 0).tokens, "esc vs consistency");
    es_report_free(r);
    es_traceset_free(plain);
    free(want);
    free(base);
    free(sf);
    free(cons);
    free(em);
    free(em_base);
    es_traceset_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_budget_tokens),
        cmocka_unit_test(test_replay_within_stop),
        cmocka_unit_test(test_oracle_ties_in_order),
        cmocka_unit_test(test_eval_chunking_deterministic),
        cmocka_unit_test(test_shuffle_order),
        cmocka_unit_test(test_replay_memory_flat),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_report_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
