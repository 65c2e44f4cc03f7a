/*
 * test_tally.c - the one vote count of the core (src/core/tally.c): es_tally,
 * es_vote_majority and es_consistency_oracle.
 *
 * The convention every rule, oracle and summary relies on: ties go to the
 * answer whose first vote came first, never to the lower id, so a shuffled
 * replay (ids out of first-appearance order) and a live run agree.  Hand
 * cases pin the definitions; then random vote sequences are checked against
 * a plain reference written here (counts in an array, the leader found by
 * scanning in order of first vote) and against relabelled ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"
#include "testutil.h"

/* Real answers are ids >= 1; 0 is the null answer, a value like any other
 * in a vote. */
enum { A = 1, B, C, D };

static es_tally *tally(uint32_t max_answers)
{
    es_tally *t = NULL;
    assert_int_equal(es_tally_new(max_answers, &t), ES_OK);
    assert_non_null(t);
    return t;
}

static void test_tally_basics(void **state)
{
    es_tally *t = tally(8);
    assert_int_equal(es_tally_leader(t), -1);
    assert_int_equal(es_tally_votes(t), 0);
    assert_int_equal(es_tally_distinct(t), 0);
    uint32_t second = 99;
    assert_int_equal(es_tally_top(t, &second), 0);
    assert_int_equal(second, 0);
    /* B A A B B ES_NULL_ANSWER */
    static const int32_t v[] = {B, A, A, B, B, ES_NULL_ANSWER};
    static const int32_t lead[] = {B, B, A, B, B, B};      /* A 2-1 after three; 2-2 goes back to B */
    static const uint32_t top[] = {1, 1, 2, 2, 3, 3}, sec[] = {0, 1, 1, 2, 2, 2};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(es_tally_add(t, v[i]), ES_OK);
        assert_int_equal(es_tally_leader(t), lead[i]);
        assert_int_equal(es_tally_top(t, &second), top[i]);
        assert_int_equal(second, sec[i]);
    }
    assert_int_equal(es_tally_count(t, A), 2);
    assert_int_equal(es_tally_count(t, B), 3);
    assert_int_equal(es_tally_count(t, ES_NULL_ANSWER), 1);
    assert_int_equal(es_tally_count(t, C), 0);
    assert_int_equal(es_tally_count(t, -1), 0);
    assert_int_equal(es_tally_votes(t), 6);
    assert_int_equal(es_tally_distinct(t), 3);
    es_tally_top(t, NULL); /* second may be NULL */
    /* an id out of range is refused and changes nothing */
    assert_int_equal(es_tally_add(t, -1), ES_ERANGE);
    assert_int_equal(es_tally_add(t, INT32_MAX), ES_ERANGE);
    assert_int_equal(es_tally_votes(t), 6);
    /* reset forgets every vote */
    es_tally_reset(t);
    assert_int_equal(es_tally_leader(t), -1);
    assert_int_equal(es_tally_votes(t), 0);
    assert_int_equal(es_tally_distinct(t), 0);
    assert_int_equal(es_tally_count(t, B), 0);
    assert_int_equal(es_tally_top(t, &second), 0);
    /* after a reset the order of first votes starts again: A first now */
    assert_int_equal(es_tally_add(t, A), ES_OK);
    assert_int_equal(es_tally_add(t, B), ES_OK);
    assert_int_equal(es_tally_leader(t), A);
    /* reserve makes room for larger ids and forgets the votes */
    assert_int_equal(es_tally_reserve(t, 5000), ES_OK);
    assert_int_equal(es_tally_votes(t), 0);
    assert_int_equal(es_tally_count(t, A), 0);
    assert_int_equal(es_tally_add(t, 4999), ES_OK);
    assert_int_equal(es_tally_leader(t), 4999);
    assert_int_equal(es_tally_count(t, 4999), 1);
    /* a smaller reserve keeps the room and forgets the votes too */
    assert_int_equal(es_tally_reserve(t, 2), ES_OK);
    assert_int_equal(es_tally_votes(t), 0);
    assert_int_equal(es_tally_add(t, 4999), ES_OK);
    es_tally_free(t);
    es_tally_free(NULL);
}

/* The tie goes to the answer voted first, whatever the ids. */
static void test_tally_ties_by_first_vote(void **state)
{
    es_tally *t = tally(16);
    static const struct {
        int32_t v[6];
        uint32_t n;
        int32_t leader;
    } cases[] = {
        {{A, B, B, A}, 4, A},
        {{B, A, A, B}, 4, B},          /* the higher id, voted first */
        {{D, A, A, D}, 4, D},
        {{C, B, A, A, B, C}, 6, C},    /* three-way tie */
        {{A, B, C, C, B, A}, 6, A},
        {{D, C, C}, 3, C},
        {{ES_NULL_ANSWER, A, A, ES_NULL_ANSWER}, 4, ES_NULL_ANSWER},
        {{A, ES_NULL_ANSWER, ES_NULL_ANSWER, A}, 4, A},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        es_tally_reset(t);
        for (uint32_t i = 0; i < cases[c].n; i++) assert_int_equal(es_tally_add(t, cases[c].v[i]), ES_OK);
        if (es_tally_leader(t) != cases[c].leader)
            fail_msg("case %zu: leader %d, want %d", c, es_tally_leader(t), cases[c].leader);
        assert_int_equal(es_vote_majority(cases[c].v, cases[c].n, t), cases[c].leader);
    }
    es_tally_free(t);
}

/* The reference: counts in an array, the leader the first in order of first
 * vote among the largest counts. */
typedef struct ref_tally {
    uint32_t count[64];
    int32_t seen[64];
    uint32_t n_seen;
} ref_tally;

static void ref_add(ref_tally *r, int32_t a)
{
    if (r->count[a]++ == 0) r->seen[r->n_seen++] = a;
}

static int32_t ref_leader(const ref_tally *r, uint32_t *top, uint32_t *second)
{
    int32_t best = -1;
    *top = *second = 0;
    for (uint32_t i = 0; i < r->n_seen; i++) {
        uint32_t c = r->count[r->seen[i]];
        if (c > *top) {
            *second = *top;
            *top = c;
            best = r->seen[i];
        } else if (c > *second) {
            *second = c;
        }
    }
    return best;
}

/* Fewest first votes whose running leader is the final leader from then on,
 * by brute force: try every prefix length. */
static uint32_t ref_consistency(const int32_t *v, uint32_t n)
{
    if (n == 0) return 0;
    ref_tally all;
    memset(&all, 0, sizeof all);
    uint32_t top, second;
    for (uint32_t i = 0; i < n; i++) ref_add(&all, v[i]);
    int32_t final = ref_leader(&all, &top, &second);
    for (uint32_t m = 1; m <= n; m++) {
        int ok = 1;
        ref_tally r;
        memset(&r, 0, sizeof r);
        for (uint32_t i = 0; i < n && ok; i++) {
            ref_add(&r, v[i]);
            if (i + 1 >= m) ok = ref_leader(&r, &top, &second) == final;
        }
        if (ok) return m;
    }
    return n;
}

/* Random sequences: the tally against the reference after every vote; the
 * majority and the consistency oracle against theirs; and the same sequence
 * with its ids relabelled by a random permutation gives the relabelled
 * leader (the id order plays no part). */
static void test_tally_against_reference(void **state)
{
    es_tally *t = tally(64), *u = tally(64);
    int32_t v[80], w[80], perm[64];
    int ties = 0;
    for (int round = 0; round < 3000; round++) {
        uint32_t n = 1 + es_test_below(40), k = 1 + es_test_below(round % 3 ? 4 : 12);
        for (uint32_t i = 0; i < 64; i++) perm[i] = (int32_t)i;
        for (uint32_t i = 63; i > 0; i--) {
            uint32_t j = es_test_below(i + 1);
            int32_t x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        for (uint32_t i = 0; i < n; i++) {
            v[i] = (int32_t)es_test_below(k);
            w[i] = perm[v[i]];
        }
        ref_tally r;
        memset(&r, 0, sizeof r);
        es_tally_reset(t);
        es_tally_reset(u);
        for (uint32_t i = 0; i < n; i++) {
            ref_add(&r, v[i]);
            assert_int_equal(es_tally_add(t, v[i]), ES_OK);
            assert_int_equal(es_tally_add(u, w[i]), ES_OK);
            uint32_t top, second, got2;
            int32_t want = ref_leader(&r, &top, &second);
            assert_int_equal(es_tally_leader(t), want);
            assert_int_equal(es_tally_top(t, &got2), top);
            assert_int_equal(got2, second);
            assert_int_equal(es_tally_leader(u), perm[want]);
            assert_int_equal(es_tally_count(t, v[i]), r.count[v[i]]);
            ties += top == second;
        }
        assert_int_equal(es_tally_distinct(t), r.n_seen);
        assert_int_equal(es_tally_votes(t), n);
        uint32_t top, second;
        int32_t maj = ref_leader(&r, &top, &second);
        assert_int_equal(es_vote_majority(v, n, t), maj);
        assert_int_equal(es_vote_majority(w, n, u), perm[maj]);
        uint32_t co = ref_consistency(v, n);
        assert_int_equal(es_consistency_oracle(v, n, t), co);
        assert_int_equal(es_consistency_oracle(w, n, u), co);
    }
    assert_true(ties > 1000); /* ties are common: the rule was exercised */
    es_tally_free(t);
    es_tally_free(u);
}

static void test_majority_hand(void **state)
{
    es_tally *t = tally(16);
    int32_t tie[] = {A, B, B, A};
    assert_int_equal(es_vote_majority(tie, 4, t), A);
    int32_t tie3[] = {A, B, C, C, B, A};
    assert_int_equal(es_vote_majority(tie3, 6, t), A);
    int32_t b_wins[] = {A, B, B};
    assert_int_equal(es_vote_majority(b_wins, 3, t), B);
    int32_t late[] = {A, B, C, D, D};
    assert_int_equal(es_vote_majority(late, 5, t), D);
    /* ids out of first-appearance order: the tie still goes to the first vote */
    int32_t shuffled[] = {D, B, A, B, D};
    assert_int_equal(es_vote_majority(shuffled, 5, t), D);
    /* the null answer is a value of its own */
    int32_t nulls[] = {ES_NULL_ANSWER, A, ES_NULL_ANSWER};
    assert_int_equal(es_vote_majority(nulls, 3, t), ES_NULL_ANSWER);
    /* the scratch comes back reset (the contract callers rely on) */
    assert_int_equal(es_tally_votes(t), 0);
    assert_int_equal(es_tally_leader(t), -1);
    for (int32_t i = 0; i < 5; i++) assert_int_equal(es_tally_count(t, i), 0);
    /* nothing to vote on */
    assert_int_equal(es_vote_majority(tie, 0, t), -1);
    /* out-of-range ids are ignored, not counted */
    int32_t odd[] = {-1, INT32_MAX, B, -7};
    assert_int_equal(es_vote_majority(odd, 4, t), B);
    int32_t none[] = {-1, INT32_MAX};
    assert_int_equal(es_vote_majority(none, 2, t), -1);
    assert_int_equal(es_tally_votes(t), 0);
    es_tally_free(t);
}

static void test_consistency_oracle_hand(void **state)
{
    es_tally *t = tally(16);
    /* [a,b,b,a,a]: full majority a; running leaders a,a(tie->a),b,a(tie->a),a:
     * the last prefix that disagrees is 3, so 4 samples suffice */
    int32_t x1[] = {A, B, B, A, A};
    assert_int_equal(es_vote_majority(x1, 5, t), A);
    assert_int_equal(es_consistency_oracle(x1, 5, t), 4);
    /* [a,b,b,c,a]: leaders a,a,b,b,a (full majority a by the tie) -> 5 */
    int32_t x2[] = {A, B, B, C, A};
    assert_int_equal(es_vote_majority(x2, 5, t), A);
    assert_int_equal(es_consistency_oracle(x2, 5, t), 5);
    /* the same votes with ids swapped: the same answer */
    int32_t x2s[] = {C, B, B, A, C};
    assert_int_equal(es_vote_majority(x2s, 5, t), C);
    assert_int_equal(es_consistency_oracle(x2s, 5, t), 5);
    /* unanimous and first-sample-leads cases need one sample */
    int32_t x3[] = {C, C, C};
    assert_int_equal(es_consistency_oracle(x3, 3, t), 1);
    int32_t x4[] = {A, B, A, C};
    assert_int_equal(es_consistency_oracle(x4, 4, t), 1);
    /* b leads from the 3rd sample on */
    int32_t x5[] = {A, B, B, B, C};
    assert_int_equal(es_consistency_oracle(x5, 5, t), 3);
    assert_int_equal(es_consistency_oracle(x5, 1, t), 1);
    assert_int_equal(es_consistency_oracle(x5, 0, t), 0);
    /* null answers vote */
    int32_t x6[] = {ES_NULL_ANSWER, A, ES_NULL_ANSWER};
    assert_int_equal(es_consistency_oracle(x6, 3, t), 1);
    assert_int_equal(es_tally_votes(t), 0);
    for (int32_t i = 0; i < 5; i++) assert_int_equal(es_tally_count(t, i), 0);
    es_tally_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tally_basics),
        cmocka_unit_test(test_tally_ties_by_first_vote),
        cmocka_unit_test(test_tally_against_reference),
        cmocka_unit_test(test_majority_hand),
        cmocka_unit_test(test_consistency_oracle_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
