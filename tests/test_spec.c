/*
 * test_spec.c - policies as descriptions (src/core/spec.c, src/core/
 * policy.c): spec strings parsed and written back canonically, the errors a
 * user gets, what a driver reads about a policy (es_policy_get_info,
 * es_policy_rounds), and the parameters of a live policy: listed
 * (es_policy_param), read, moved between questions (es_policy_set_param,
 * _set_param_text) and refused, and es_policy_clone.
 *
 * A moved parameter is checked by its effect: a live policy, after the move,
 * must stop where a fresh policy made from a spec with that value stops, on
 * every sequence, and the move and the decisions after it must not allocate
 * (counted where the build allows, tests/alloc_count.h).
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

#include "earlystop.h"
#include "alloc_count.h"
#include "testutil.h"

/* ------------------------------------------------------------ spec strings */

static void test_canonical(void **state)
{
    static const struct {
        const char *spec, *canon;
    } cases[] = {
        /* defaults: no cap is "max=all" (max=0 read as "no samples") */
        {"full", "full:max=all"},
        {"ac-beta", "ac-beta:threshold=0.95,min=1,max=all"},
        {"ac-beta:threshold=0.9,max=20", "ac-beta:threshold=0.9,min=1,max=20"},
        {"ac-dirichlet", "ac-dirichlet:threshold=0.95,top_k=5,min=1,max=all"},
        {"majority", "majority:fraction=0.8,min=2,max=all"},
        {"entropy", "entropy:threshold=0.75,min=2,max=all"},
        {"esc", "esc:window=5,remainder=draw,max=all"},
        {"esc:window=4", "esc:window=4,remainder=draw,max=all"},
        {"esc:remainder=skip,window=3", "esc:window=3,remainder=skip,max=all"},
        {"deer", "deer:threshold=0.95,min_tokens=0"},
        {"dynasor", "dynasor:k=3,min_tokens=0,decide=after-chunk"},
        {"dynasor:decide=at-probe", "dynasor:k=3,min_tokens=0,decide=at-probe"},
        {"convergence", "convergence:m=2,min_tokens=0"},
        {"deepconf", "deepconf:warmup=16,eta=10,window=2048,consensus=off,vote=weighted,round=3,max=all"},
        {"deepconf:consensus=0.95,vote=count,round=off,max=64",
         "deepconf:warmup=16,eta=10,window=2048,consensus=0.95,vote=count,round=off,max=64"},
        /* an unset budget is left out rather than spelt "samples=0" */
        {"budget:samples=8", "budget:samples=8"},
        {"budget:samples=0,tokens=7", "budget:tokens=7"},
        /* max=all on input; max=0, the canonical spelling of earlier versions, means the same */
        {"ac-beta:max=all", "ac-beta:threshold=0.95,min=1,max=all"},
        {"ac-beta:max=0", "ac-beta:threshold=0.95,min=1,max=all"},
        /* numbers round-trip with their shortest spelling, never with an exponent's '+' */
        {"ac-beta:threshold=0.99999999999", "ac-beta:threshold=0.99999999999,min=1,max=all"},
        {"ac-beta:threshold=0.1234567890123456789", "ac-beta:threshold=0.12345678901234568,min=1,max=all"},
        {"majority:fraction=1e-300", "majority:fraction=1e-300,min=2,max=all"},
        {"deepconf:eta=10.0", "deepconf:warmup=16,eta=10,window=2048,consensus=off,vote=weighted,round=3,max=all"},
        {"deepconf:eta=100", "deepconf:warmup=16,eta=100,window=2048,consensus=off,vote=weighted,round=3,max=all"},
        /* '+' combinations */
        {"dynasor:k=3+ac-beta", "dynasor:k=3,min_tokens=0,decide=after-chunk+ac-beta:threshold=0.95,min=1,max=all"},
        {"esc+deer:threshold=0.9", "esc:window=5,remainder=draw,max=all+deer:threshold=0.9,min_tokens=0"},
        {"budget:tokens=100+esc", "budget:tokens=100+esc:window=5,remainder=draw,max=all"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        es_policy *p = es_test_policy(cases[i].spec);
        if (strcmp(es_policy_spec(p), cases[i].canon))
            fail_msg("'%s' -> '%s', want '%s'", cases[i].spec, es_policy_spec(p), cases[i].canon);
        /* the canonical spec parses to itself */
        es_policy *q = es_test_policy(es_policy_spec(p));
        assert_string_equal(es_policy_spec(q), cases[i].canon);
        es_policy_free(q);
        es_policy_free(p);
    }
    /* the canonical spec keeps the value: 0.99999999999 is not 1 */
    es_policy *q = es_test_policy("ac-beta:threshold=0.99999999999");
    assert_null(strstr(es_policy_spec(q), "threshold=1,"));
    double x = 0;
    assert_int_equal(es_policy_get_param(q, "threshold", &x, NULL), ES_OK);
    assert_true(x == 0.99999999999);
    es_policy_free(q);
}

static void test_parse_errors(void **state)
{
    /* ES_EPARSE with every `want` in the message */
    static const struct {
        const char *spec, *want[3];
    } cases[] = {
        /* settings that cannot be meant together */
        {"ac-beta:threshold=0.9,threshold=0.1", {"threshold is given twice"}},
        {"esc:window=3,max=9,window=4", {"window is given twice"}},
        {"ac-beta:min=5,max=3", {"min=5 is more than max=3"}},
        {"majority:max=1", {"min=2 is more than max=1"}},
        {"deepconf:warmup=16,max=8", {"warmup=16 is more than max=8"}},
        {"esc:remainder=drop", {"remainder must be one of draw, skip", "drop"}},
        {"dynasor:decide=later", {"decide must be one of after-chunk, at-probe"}},
        {"deepconf:consensus=1.5", {"consensus", "or 'off'"}},
        {"deepconf:threshold=0.9", {"unknown", "consensus"}},
        {"ac-beta:max=-1", {"max", "or 'all'"}},
        {"ac-beta:threshold= 0.5", {"threshold"}},
        {"ac-beta:threshold=0x", {"threshold"}},
        /* unknown policy: the message lists the known ones */
        {"nope", {"unknown policy 'nope'", "ac-beta", "deepconf"}},
        {"ac-beta:thresh=0.9", {"thresh", "keys: threshold, min, max"}},
        {"esc:k=3", {"keys: window, remainder, max"}},
        {"dynasor:3", {"key=value", "keys: k, min_tokens"}},
        /* bad values */
        {"ac-beta:threshold=1.5", {"threshold", "1.5"}},
        {"ac-beta:threshold=-0.1", {"threshold"}},
        {"ac-beta:threshold=abc", {"threshold", "abc"}},
        {"ac-beta:threshold=", {"threshold"}},
        {"esc:window=0", {"window"}},
        {"esc:window=2.5", {"window", "integer"}},
        {"dynasor:k=-1", {"k"}},
        {"ac-dirichlet:top_k=65", {"top_k"}},
        /* empty and malformed combinations */
        {"", {"empty"}},
        {"+esc", {"empty part"}},
        {"esc+", {"empty part"}},
        {"esc++deer", {"empty part"}},
        /* two rules at one level */
        {"ac-beta+esc", {"at most one"}},
        {"deer+dynasor", {"at most one"}},
        {"deepconf+ac-beta", {"at most one"}},
        {"dynasor+deepconf", {"at most one"}},
        {"budget:samples=4+esc", {"at most one"}},
        {"esc+budget:samples=4", {"at most one"}},
        {"budget:tokens=10+deer", {"at most one"}},
        {"esc+deer+full", {"at most one"}},
        {"budget", {"samples", "tokens"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        es_policy *p = (es_policy *)&p; /* must be reset to NULL */
        es_error err = {0};
        int rc = es_policy_new(cases[i].spec, &p, &err);
        if (rc != ES_EPARSE) fail_msg("'%s': rc %d, want ES_EPARSE", cases[i].spec, rc);
        assert_null(p);
        assert_int_equal(err.code, ES_EPARSE);
        for (int w = 0; w < 3 && cases[i].want[w]; w++)
            if (!strstr(err.msg, cases[i].want[w]))
                fail_msg("'%s': message '%s' lacks '%s'", cases[i].spec, err.msg, cases[i].want[w]);
        /* NULL err is allowed too */
        assert_int_equal(es_policy_new(cases[i].spec, &p, NULL), ES_EPARSE);
    }
    es_policy *p = (es_policy *)&p;
    assert_int_equal(es_policy_new(NULL, &p, NULL), ES_EPARSE);
    assert_null(p);
}

/* What a driver reads: levels, the token cap, the probe lag, the batch. */
static void test_info(void **state)
{
    static const struct {
        const char *spec;
        int has_within, needs_probes;
        uint32_t token_limit, probe_lag, batch;
        int counts_only;
        uint32_t rounds10; /* es_policy_rounds(p, 10) */
    } cases[] = {
        {"full", 0, 0, UINT32_MAX, 0, 0, 1, 1},
        {"full:max=4", 0, 0, UINT32_MAX, 0, 4, 1, 3},
        {"ac-beta", 0, 0, UINT32_MAX, 0, 1, 1, 10},
        {"majority", 0, 0, UINT32_MAX, 0, 1, 1, 10},
        {"esc:window=4", 0, 0, UINT32_MAX, 0, 4, 1, 3},
        /* budget: tokens within a sample (the across half is `full`), samples across */
        {"budget:tokens=100", 1, 0, 100, 0, 0, 0, 1},
        {"budget:samples=6", 0, 0, UINT32_MAX, 0, 6, 1, 2},
        {"budget:samples=6,tokens=50", 1, 0, 50, 0, 6, 0, 2},
        {"dynasor", 1, 1, UINT32_MAX, 1, 0, 0, 1},
        {"dynasor:decide=at-probe", 1, 1, UINT32_MAX, 0, 0, 0, 1},
        {"dynasor+ac-beta", 1, 1, UINT32_MAX, 1, 1, 0, 10},
        {"convergence", 1, 1, UINT32_MAX, 0, 0, 0, 1},
        {"deer", 1, 1, UINT32_MAX, 0, 0, 0, 1},
        {"budget:tokens=64+esc:window=3", 1, 0, 64, 0, 3, 0, 4},
        /* deepconf: the warm-up at once, then the rest (released code) or one by one */
        {"deepconf:warmup=4", 1, 1, UINT32_MAX, 0, 1, 0, 2},
        {"deepconf:warmup=4,consensus=0.9", 1, 1, UINT32_MAX, 0, 1, 0, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        es_policy *p = es_test_policy(cases[i].spec);
        es_policy_info in;
        memset(&in, 0xAB, sizeof in);
        es_policy_get_info(p, &in);
        const char *s = cases[i].spec;
        if (in.has_within != cases[i].has_within) fail_msg("%s: has_within %d", s, in.has_within);
        if (in.needs_probes != cases[i].needs_probes) fail_msg("%s: needs_probes %d", s, in.needs_probes);
        if (in.token_limit != cases[i].token_limit) fail_msg("%s: token_limit %u", s, in.token_limit);
        if (in.probe_lag != cases[i].probe_lag) fail_msg("%s: probe_lag %u", s, in.probe_lag);
        if (in.batch != cases[i].batch) fail_msg("%s: batch %u", s, in.batch);
        if (in.counts_only != cases[i].counts_only) fail_msg("%s: counts_only %d", s, in.counts_only);
        if (es_policy_rounds(p, 10) != cases[i].rounds10) fail_msg("%s: rounds(10) %u", s, es_policy_rounds(p, 10));
        assert_int_equal(es_policy_rounds(p, 0), 0);
        es_policy_free(p);
    }
}

/* ------------------------------------------------------------- parameters */

/* Every parameter of both rules, in spec order, with its range and kind. */
static void test_param_table(void **state)
{
    es_policy *p = es_test_policy("dynasor:k=2,decide=at-probe+ac-beta:threshold=0.9,max=30");
    static const struct {
        const char *rule, *key;
        double value, lo, hi;
        int integer;
        const char *choices;
    } want[] = {
        {"dynasor", "k", 2, 1, 1e6, 1, NULL},
        {"dynasor", "min_tokens", 0, 0, 4e9, 1, NULL},
        {"dynasor", "decide", 1, 0, 0, 1, "after-chunk|at-probe"},
        {"dynasor", "every", 1, 1, 1e6, 1, NULL},
        {"ac-beta", "threshold", 0.9, 0, 1, 0, NULL},
        {"ac-beta", "min", 1, 1, 1e9, 1, NULL},
        {"ac-beta", "max", 30, 0, 1e9, 1, NULL},
        {"ac-beta", "clinch", 0, 0, 0, 1, "off|on"},
    };
    uint32_t n = es_policy_n_params(p);
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (uint32_t i = 0; i < n; i++) {
        es_param_info pi;
        assert_int_equal(es_policy_param(p, i, &pi), ES_OK);
        assert_string_equal(pi.rule, want[i].rule);
        assert_string_equal(pi.key, want[i].key);
        assert_true(pi.value == want[i].value);
        assert_int_equal(pi.integer, want[i].integer);
        if (!want[i].choices) {
            assert_null(pi.choices);
            assert_true(pi.lo == want[i].lo && pi.hi == want[i].hi);
        } else {
            assert_string_equal(pi.choices, want[i].choices);
        }
        assert_non_null(pi.doc);
        assert_true(pi.doc[0] != '\0');
        /* get_param by "rule.key" reads the same value */
        char name[64];
        double x;
        snprintf(name, sizeof name, "%s.%s", pi.rule, pi.key);
        assert_int_equal(es_policy_get_param(p, name, &x, NULL), ES_OK);
        assert_true(x == pi.value);
    }
    es_param_info pi;
    assert_int_equal(es_policy_param(p, n, &pi), ES_ERANGE);
    assert_int_equal(es_policy_param(p, UINT32_MAX, &pi), ES_ERANGE);
    es_policy_free(p);
    /* the implicit `full` behind a lone within rule is not a named rule: no parameters */
    p = es_test_policy("deer");
    assert_int_equal(es_policy_n_params(p), 3); /* threshold, min_tokens, every */
    double x;
    assert_int_not_equal(es_policy_get_param(p, "max", &x, NULL), ES_OK);
    es_policy_free(p);
}

/* Feed whole samples with answers ans[0..n) (no probes); the number of
 * samples drawn when the policy said stop (n when it never did), and the
 * final answer. */
static uint32_t feed(es_policy *p, const int32_t *ans, uint32_t n, uint32_t max_answers, int32_t *answer)
{
    assert_int_equal(es_policy_begin_item(p, n, max_answers), ES_OK);
    uint32_t i = 0;
    while (i < n) {
        es_policy_begin_sample(p);
        int rc = es_policy_end_sample(p, ans[i++], 10, NAN);
        assert_true(rc == ES_CONTINUE || rc == ES_STOP);
        if (rc == ES_STOP) break;
    }
    *answer = es_policy_answer(p);
    return i;
}

/* A made-up question with probes and confidences, so that within rules,
 * deepconf and budgets all have something to decide on. */
enum { RI_SAMPLES = 32, RI_PROBES = 8, RI_ANSWERS = 6 };

typedef struct r_item {
    uint32_t n;
    int32_t answer[RI_SAMPLES];
    uint32_t tokens[RI_SAMPLES];
    float conf[RI_SAMPLES];
    uint32_t n_probes[RI_SAMPLES];
    int32_t pans[RI_SAMPLES][RI_PROBES];
    float pconf[RI_SAMPLES][RI_PROBES], pwconf[RI_SAMPLES][RI_PROBES];
} r_item;

static void random_item(r_item *it)
{
    it->n = 1 + es_test_below(RI_SAMPLES);
    uint32_t k = 2 + es_test_below(RI_ANSWERS - 1), favourite = es_test_below(k);
    for (uint32_t s = 0; s < it->n; s++) {
        /* ids 0 (null) .. k-1, skewed to one answer so that rules stop at various points */
        it->answer[s] = (int32_t)(es_test_below(10) < 6 ? favourite : es_test_below(k));
        it->tokens[s] = 16 + es_test_below(16 * RI_PROBES);
        it->conf[s] = 0.5f + 0.5f * (float)es_test_below(1000) / 1000.0f;
        it->n_probes[s] = (it->tokens[s] - 1) / 16;
        for (uint32_t j = 0; j < it->n_probes[s]; j++) {
            it->pans[s][j] = es_test_below(10) < 7 ? it->answer[s] : (int32_t)es_test_below(k);
            it->pconf[s][j] = 0.8f + 0.2f * (float)es_test_below(1000) / 1000.0f;
            it->pwconf[s][j] = 0.5f + (float)es_test_below(1000) / 1000.0f;
        }
    }
}

/* What a policy did on an item: the outcome and each sample's settled answer
 * and tokens. */
typedef struct r_out {
    es_outcome o;
    int32_t answer[RI_SAMPLES];
    uint32_t tokens[RI_SAMPLES];
} r_out;

/* Drive the item through a session as a live loop would: a probe every 16
 * tokens, each costing 2. */
static int drive(es_session *s, const r_item *it, r_out *out)
{
    memset(out, 0, sizeof *out);
    int rc = es_session_begin_item(s, it->n, RI_ANSWERS);
    if (rc) return rc;
    for (uint32_t i = 0; i < it->n; i++) {
        es_session_begin_sample(s);
        for (uint32_t j = 0; j < it->n_probes[i]; j++) {
            uint32_t at = 16 * (j + 1);
            if (es_session_reach(s, at) == ES_STOP) break;
            rc = es_session_probe(s, at, it->pans[i][j], it->pconf[i][j], it->pwconf[i][j], 0, 2);
            if (rc < 0) return rc;
            if (rc == ES_STOP) break;
        }
        rc = es_session_end_sample(s, it->answer[i], it->tokens[i], it->conf[i], 1);
        if (rc < 0) return rc;
        es_session_last_sample(s, &out->answer[i], &out->tokens[i]);
        if (rc == ES_STOP) break;
    }
    out->o = *es_session_end_item(s);
    return ES_OK;
}

static void expect_same(const r_out *a, const r_out *b, const char *what, int item)
{
    if (a->o.samples != b->o.samples || a->o.answer != b->o.answer || a->o.tokens != b->o.tokens ||
        a->o.probes != b->o.probes || a->o.probe_tokens != b->o.probe_tokens || a->o.rounds != b->o.rounds ||
        memcmp(a->answer, b->answer, sizeof a->answer) || memcmp(a->tokens, b->tokens, sizeof a->tokens))
        fail_msg("%s, item %d: %u samples answer %d tokens %llu, want %u samples answer %d tokens %llu", what, item,
                 a->o.samples, a->o.answer, (unsigned long long)a->o.tokens, b->o.samples, b->o.answer,
                 (unsigned long long)b->o.tokens);
}

/* AC-beta's threshold moved between questions on a live policy (its table
 * already filled for the old value): every stop is where a fresh policy
 * with the new threshold stops, on sequences that reach second counts in
 * a scrambled order and on random ones, and neither the move nor the
 * decisions after it allocate. */
static void test_set_threshold_live(void **state)
{
    static const char *const th[] = {"0.95", "0.6", "0.99", "0.8", "0.95", "0.5", "0.999"};
    static const uint32_t bs[] = {30, 2, 0, 17, 5, 1, 12, 3};
    es_policy *live = es_test_policy("ac-beta");
    int32_t seq[200] = {0}, a, b;
    uint32_t moved_stops = 0, allocs = 0, prev_total = 0;
    /* the tally's room for every question below, before counting */
    feed(live, seq, 0, 8, &a);
    for (size_t t = 0; t < sizeof th / sizeof th[0]; t++) {
        char spec[64];
        snprintf(spec, sizeof spec, "ac-beta:threshold=%s", th[t]);
        es_policy *fresh = es_test_policy(spec);
        es_alloc_begin();
        int rc = es_policy_set_param(live, "threshold", strtod(th[t], NULL), NULL);
        allocs += (uint32_t)es_alloc_end();
        assert_int_equal(rc, ES_OK);
        assert_string_equal(es_policy_spec(live), es_policy_spec(fresh));
        uint32_t total = 0;
        /* 1, 2, 1, 2, ... b times each, then 1 until the lead is enough */
        for (size_t k = 0; k < sizeof bs / sizeof bs[0]; k++) {
            uint32_t n = 0;
            for (uint32_t i = 0; i < 2 * bs[k]; i++) seq[n++] = 1 + (int32_t)(i % 2);
            while (n < 200) seq[n++] = 1;
            es_alloc_begin();
            uint32_t got = feed(live, seq, n, 3, &a);
            allocs += (uint32_t)es_alloc_end();
            uint32_t want = feed(fresh, seq, n, 3, &b);
            if (got != want || a != b)
                fail_msg("threshold %s, b=%u: live stops at %u (%d), fresh at %u (%d)", th[t], bs[k], got, a, want, b);
            total += got;
        }
        for (int r = 0; r < 300; r++) {
            uint32_t n = 1 + es_test_below(60), k = 2 + es_test_below(6);
            for (uint32_t i = 0; i < n; i++) seq[i] = (int32_t)(es_test_below(3) ? 1 : es_test_below(k));
            es_alloc_begin();
            uint32_t got = feed(live, seq, n, 8, &a);
            allocs += (uint32_t)es_alloc_end();
            uint32_t want = feed(fresh, seq, n, 8, &b);
            if (got != want || a != b)
                fail_msg("threshold %s, random %d: live %u (%d), fresh %u (%d)", th[t], r, got, a, want, b);
            total += got;
        }
        if (t && total != prev_total) moved_stops++;
        prev_total = total;
        es_policy_free(fresh);
    }
    assert_true(moved_stops >= 5); /* each move changed where it stops */
    if (es_alloc_counting()) assert_int_equal(allocs, 0);
    else print_message("allocations not counted in this build (sanitizer): skipped that part\n");
    es_policy_free(live);
}

/* The same for other rules and parameters, by spec text, on items with
 * probes driven through a session: moved (set_param_text, as a tuner or a
 * controller would) vs made from the spec. */
static void test_set_param_matches_fresh(void **state)
{
    static const struct {
        const char *base, *key, *fmt, *values[4];
    } cases[] = {
        {"esc", "window", "esc:window=%s", {"3", "1", "8", "2"}},
        {"esc", "remainder", "esc:remainder=%s", {"skip", "draw", "skip", NULL}},
        {"majority", "fraction", "majority:fraction=%s", {"0.6", "1", "0.5", "0.75"}},
        {"entropy", "threshold", "entropy:threshold=%s", {"0.5", "0.9", "0.3", NULL}},
        {"ac-dirichlet", "top_k", "ac-dirichlet:top_k=%s", {"2", "3", "64", NULL}},
        {"full", "max", "full:max=%s", {"3", "all", "1", "7"}},
        {"ac-beta", "min", "ac-beta:min=%s", {"4", "1", "9", NULL}},
        {"ac-beta", "max", "ac-beta:max=%s", {"5", "all", "2", NULL}},
        {"dynasor+ac-beta", "k", "dynasor:k=%s+ac-beta", {"1", "4", "2", NULL}},
        {"dynasor+ac-beta", "decide", "dynasor:decide=%s+ac-beta", {"at-probe", "after-chunk", NULL, NULL}},
        {"dynasor+ac-beta", "dynasor.min_tokens", "dynasor:min_tokens=%s+ac-beta", {"40", "0", "100", NULL}},
        {"convergence", "m", "convergence:m=%s", {"1", "3", NULL, NULL}},
        {"deer", "threshold", "deer:threshold=%s", {"0.9", "0.99", "0.85", NULL}},
        {"budget:tokens=60+esc:window=2", "tokens", "budget:tokens=%s+esc:window=2", {"30", "100", "17", NULL}},
        {"budget:samples=3", "samples", "budget:samples=%s", {"1", "5", "30", NULL}},
        {"deepconf:warmup=4,round=off", "eta", "deepconf:warmup=4,round=off,eta=%s", {"50", "90", "0", NULL}},
        {"deepconf:warmup=4,round=off", "warmup", "deepconf:round=off,warmup=%s", {"2", "8", "3", NULL}},
        {"deepconf:warmup=4,round=off", "consensus", "deepconf:warmup=4,round=off,consensus=%s", {"0.6", "off", NULL, NULL}},
    };
    enum { ITEMS = 150 };
    static r_item items[ITEMS];
    for (int i = 0; i < ITEMS; i++) random_item(&items[i]);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        es_policy *live = es_test_policy(cases[c].base);
        es_session *ls = NULL;
        assert_int_equal(es_session_new(live, &ls), ES_OK);
        r_out got, want;
        for (int i = 0; i < 5; i++) assert_int_equal(drive(ls, &items[i], &got), ES_OK); /* a live past */
        uint32_t distinct = 0;
        uint64_t prev = UINT64_MAX;
        for (int v = 0; v < 4 && cases[c].values[v]; v++) {
            char spec[160];
            snprintf(spec, sizeof spec, cases[c].fmt, cases[c].values[v]);
            es_policy *fresh = es_test_policy(spec);
            es_session *fs = NULL;
            assert_int_equal(es_session_new(fresh, &fs), ES_OK);
            es_error err = {0};
            if (es_policy_set_param_text(live, cases[c].key, cases[c].values[v], &err))
                fail_msg("%s: %s=%s: %s", cases[c].base, cases[c].key, cases[c].values[v], err.msg);
            assert_string_equal(es_policy_spec(live), es_policy_spec(fresh));
            es_policy_info li, fi;
            es_policy_get_info(live, &li);
            es_policy_get_info(fresh, &fi);
            assert_memory_equal(&li, &fi, sizeof li);
            uint64_t tokens = 0;
            for (int i = 0; i < ITEMS; i++) {
                assert_int_equal(drive(ls, &items[i], &got), ES_OK);
                if (i == 0) assert_memory_equal(es_session_info(ls), &fi, sizeof fi); /* refreshed at begin_item */
                assert_int_equal(drive(fs, &items[i], &want), ES_OK);
                expect_same(&got, &want, spec, i);
                tokens += got.o.tokens + 7 * got.o.samples;
            }
            distinct += tokens != prev;
            prev = tokens;
            es_session_free(fs);
            es_policy_free(fresh);
        }
        if (distinct < 2) fail_msg("%s: moving %s changed nothing on these items", cases[c].base, cases[c].key);
        es_session_free(ls);
        es_policy_free(live);
    }
}

/* A value out of range, or one the rule cannot combine with its other
 * settings, is refused; the old value stays, in the spec and in the
 * decisions. */
static void test_set_param_refused(void **state)
{
    static const struct {
        const char *spec, *key, *text; /* text NULL: set `value` */
        double value;
        const char *want;              /* in the message */
    } cases[] = {
        {"ac-beta", "threshold", NULL, 1.5, "threshold"},
        {"ac-beta", "threshold", NULL, -0.01, "threshold"},
        {"ac-beta", "threshold", NULL, NAN, "threshold"},
        {"ac-beta", "threshold", "abc", 0, "abc"},
        {"ac-beta", "threshold", "", 0, "threshold"},
        {"ac-beta:max=3", "min", NULL, 5, "min=5 is more than max=3"},
        {"ac-beta:max=3", "min", "5", 0, "min=5 is more than max=3"},
        {"ac-beta:min=4", "max", NULL, 3, "min=4 is more than max=3"},
        {"majority", "max", "1", 0, "min=2 is more than max=1"},
        {"ac-beta", "min", NULL, 0, "min"},
        {"ac-beta", "min", NULL, 2.5, "integer"},
        {"ac-beta", "max", NULL, -1, "max"},
        {"esc", "window", NULL, 0, "window"},
        {"esc", "window", NULL, 2.5, "window"},
        {"esc", "remainder", NULL, 2, "remainder"},
        {"esc", "remainder", NULL, 0.5, "remainder"},
        {"esc", "remainder", "drop", 0, "draw, skip"},
        {"dynasor", "decide", "later", 0, "after-chunk, at-probe"},
        {"ac-dirichlet", "top_k", NULL, 65, "top_k"},
        {"deepconf:max=20", "warmup", NULL, 32, "warmup=32 is more than max=20"},
        {"deepconf", "max", "8", 0, "warmup=16 is more than max=8"},
        {"deepconf", "consensus", NULL, -0.5, "consensus"},
        /* a budget half may not appear or vanish: the policy's levels are fixed */
        {"budget:samples=4", "tokens", NULL, 10, "level"},
        {"budget:samples=4,tokens=10", "tokens", NULL, 0, "level"},
        {"budget:tokens=10", "tokens", NULL, 0, "samples"},
    };
    int32_t seq[40];
    for (uint32_t i = 0; i < 40; i++) seq[i] = 1 + (int32_t)(i % 3 == 2);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        es_policy *p = es_test_policy(cases[c].spec), *ref = es_test_policy(cases[c].spec);
        char before[512];
        snprintf(before, sizeof before, "%s", es_policy_spec(p));
        double old, now;
        assert_int_equal(es_policy_get_param(p, cases[c].key, &old, NULL), ES_OK);
        es_error err = {0};
        int rc = cases[c].text ? es_policy_set_param_text(p, cases[c].key, cases[c].text, &err)
                               : es_policy_set_param(p, cases[c].key, cases[c].value, &err);
        if (rc >= 0) fail_msg("%s: %s accepted", cases[c].spec, cases[c].key);
        assert_int_equal(err.code, rc);
        if (!strstr(err.msg, cases[c].want))
            fail_msg("%s: %s: message '%s' lacks '%s'", cases[c].spec, cases[c].key, err.msg, cases[c].want);
        assert_int_equal(es_policy_get_param(p, cases[c].key, &now, NULL), ES_OK);
        assert_true(now == old);
        assert_string_equal(es_policy_spec(p), before);
        es_policy_info a, b;
        es_policy_get_info(p, &a);
        es_policy_get_info(ref, &b);
        assert_memory_equal(&a, &b, sizeof a);
        /* NULL err is allowed */
        rc = cases[c].text ? es_policy_set_param_text(p, cases[c].key, cases[c].text, NULL)
                           : es_policy_set_param(p, cases[c].key, cases[c].value, NULL);
        assert_true(rc < 0);
        /* and it still decides as before */
        int32_t x, y;
        es_session *s = NULL;
        if (!a.has_within) {
            assert_int_equal(feed(p, seq, 40, 3, &x), feed(ref, seq, 40, 3, &y));
            assert_int_equal(x, y);
        } else {
            r_item it;
            r_out o1, o2;
            es_session *t = NULL;
            assert_int_equal(es_session_new(p, &s), ES_OK);
            assert_int_equal(es_session_new(ref, &t), ES_OK);
            for (int i = 0; i < 20; i++) {
                random_item(&it);
                assert_int_equal(drive(s, &it, &o1), ES_OK);
                assert_int_equal(drive(t, &it, &o2), ES_OK);
                expect_same(&o1, &o2, cases[c].spec, i);
            }
            es_session_free(t);
        }
        es_session_free(s);
        es_policy_free(p);
        es_policy_free(ref);
    }
}

/* Names: "key", "rule.key"; a bare key two rules share is ambiguous; words
 * stand for their values. */
static void test_param_names(void **state)
{
    es_policy *p = es_test_policy("deer:threshold=0.9+ac-beta:threshold=0.8");
    double x;
    es_error err = {0};
    assert_int_equal(es_policy_get_param(p, "deer.threshold", &x, NULL), ES_OK);
    assert_true(x == 0.9);
    assert_int_equal(es_policy_get_param(p, "ac-beta.threshold", &x, NULL), ES_OK);
    assert_true(x == 0.8);
    /* ambiguous: refused, and the message says how to name it */
    assert_int_equal(es_policy_get_param(p, "threshold", &x, &err), ES_EINVAL);
    if (!strstr(err.msg, "both") || !strstr(err.msg, "rule.threshold")) fail_msg("message '%s'", err.msg);
    assert_true(es_policy_set_param(p, "threshold", 0.5, &err) < 0);
    assert_int_equal(es_policy_set_param(p, "ac-beta.threshold", 0.5, NULL), ES_OK);
    assert_string_equal(es_policy_spec(p), "deer:threshold=0.9,min_tokens=0+ac-beta:threshold=0.5,min=1,max=all");
    assert_int_equal(es_policy_set_param(p, "deer.threshold", 0.99, NULL), ES_OK);
    assert_string_equal(es_policy_spec(p), "deer:threshold=0.99,min_tokens=0+ac-beta:threshold=0.5,min=1,max=all");
    /* a key only one rule has needs no prefix */
    assert_int_equal(es_policy_set_param(p, "min_tokens", 64, NULL), ES_OK);
    assert_int_equal(es_policy_get_param(p, "deer.min_tokens", &x, NULL), ES_OK);
    assert_true(x == 64);
    /* unknown keys and rules, a key of the other rule, the wrong spelling */
    static const char *const bad[] = {"nope", "deer.max", "esc.window", "ac-beta.", ".threshold", "ac-bet.threshold",
                                      "deer.threshold.x", "Threshold", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        if (es_policy_get_param(p, bad[i], &x, &err) >= 0) fail_msg("'%s' found", bad[i]);
        assert_true(err.msg[0] != '\0');
        assert_true(es_policy_set_param(p, bad[i], 1, NULL) < 0);
    }
    es_policy_free(p);

    /* words: "all", "off", choices; numbers as text */
    p = es_test_policy("deepconf:max=40");
    assert_int_equal(es_policy_set_param_text(p, "max", "all", NULL), ES_OK);
    assert_int_equal(es_policy_get_param(p, "max", &x, NULL), ES_OK);
    assert_true(x == 0);
    assert_int_equal(es_policy_set_param_text(p, "consensus", "0.9", NULL), ES_OK);
    assert_int_equal(es_policy_set_param_text(p, "round", "off", NULL), ES_OK);
    assert_int_equal(es_policy_set_param_text(p, "vote", "count", NULL), ES_OK);
    assert_int_equal(es_policy_get_param(p, "vote", &x, NULL), ES_OK);
    assert_true(x == 1);
    assert_string_equal(es_policy_spec(p), "deepconf:warmup=16,eta=10,window=2048,consensus=0.9,vote=count,round=off,max=all");
    assert_int_equal(es_policy_set_param_text(p, "consensus", "off", NULL), ES_OK);
    assert_int_equal(es_policy_get_param(p, "consensus", &x, NULL), ES_OK);
    assert_true(x == -1);
    /* the numeric forms of the words */
    assert_int_equal(es_policy_set_param(p, "round", 4, NULL), ES_OK);
    assert_int_equal(es_policy_set_param(p, "vote", 0, NULL), ES_OK);
    assert_int_equal(es_policy_set_param(p, "consensus", -1, NULL), ES_OK);
    assert_string_equal(es_policy_spec(p), "deepconf:warmup=16,eta=10,window=2048,consensus=off,vote=weighted,round=4,max=all");
    es_policy_free(p);
}

/* A clone decides as its prototype, parameters moved on the prototype
 * included, and is independent of it afterwards. */
static void test_clone(void **state)
{
    static const char *const specs[] = {"full",
                                        "ac-beta:threshold=0.9",
                                        "ac-dirichlet",
                                        "majority:min=3",
                                        "entropy",
                                        "esc:window=3,remainder=skip",
                                        "budget:samples=5,tokens=40",
                                        "dynasor:k=2+ac-beta",
                                        "convergence+esc:window=2",
                                        "deer:threshold=0.9+majority",
                                        "deepconf:warmup=3,round=off,consensus=0.8"};
    enum { ITEMS = 120 };
    static r_item items[ITEMS];
    for (int i = 0; i < ITEMS; i++) random_item(&items[i]);
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        es_policy *proto = es_test_policy(specs[k]), *clone = NULL, *moved = NULL;
        assert_int_equal(es_policy_clone(proto, &clone, NULL), ES_OK);
        assert_true(clone != proto);
        assert_string_equal(es_policy_spec(clone), es_policy_spec(proto));
        es_session *a = NULL, *b = NULL;
        assert_int_equal(es_session_new(proto, &a), ES_OK);
        assert_int_equal(es_session_new(clone, &b), ES_OK);
        r_out x, y;
        for (int i = 0; i < ITEMS; i++) {
            assert_int_equal(drive(a, &items[i], &x), ES_OK);
            assert_int_equal(drive(b, &items[i], &y), ES_OK);
            expect_same(&x, &y, specs[k], i);
        }
        /* a clone of a prototype with a moved parameter carries the move */
        es_param_info pi;
        assert_int_equal(es_policy_param(proto, 0, &pi), ES_OK);
        double v = pi.integer ? (pi.choices ? !pi.value : pi.value + 1) : (pi.value + pi.lo) / 2;
        char key[64];
        snprintf(key, sizeof key, "%s.%s", pi.rule, pi.key);
        assert_int_equal(es_policy_set_param(proto, key, v, NULL), ES_OK);
        assert_int_equal(es_policy_clone(proto, &moved, NULL), ES_OK);
        assert_string_equal(es_policy_spec(moved), es_policy_spec(proto));
        assert_string_not_equal(es_policy_spec(moved), es_policy_spec(clone));
        es_session *c = NULL;
        assert_int_equal(es_session_new(moved, &c), ES_OK);
        for (int i = 0; i < ITEMS; i++) {
            assert_int_equal(drive(a, &items[i], &x), ES_OK);
            assert_int_equal(drive(c, &items[i], &y), ES_OK);
            expect_same(&x, &y, es_policy_spec(moved), i);
        }
        /* moving the clone leaves the prototype as it was */
        char before[512];
        snprintf(before, sizeof before, "%s", es_policy_spec(proto));
        assert_int_equal(es_policy_set_param(moved, key, pi.value, NULL), ES_OK);
        assert_string_equal(es_policy_spec(proto), before);
        assert_string_equal(es_policy_spec(moved), es_policy_spec(clone));
        es_session_free(a);
        es_session_free(b);
        es_session_free(c);
        es_policy_free(proto);
        es_policy_free(clone);
        es_policy_free(moved);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_param_table),
        cmocka_unit_test(test_set_threshold_live),
        cmocka_unit_test(test_set_param_matches_fresh),
        cmocka_unit_test(test_set_param_refused),
        cmocka_unit_test(test_param_names),
        cmocka_unit_test(test_clone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
