/*
 * bench_learn.c - what a learned stopper's decision costs (the issue's
 * target: under a microsecond), beside the rules it replaces: the same
 * stream of events (samples with their probes) through an es_session, for
 * `margin`, `ac-beta`, the shipped `learned` (when the build has one), and
 * learned stoppers of the default features with a linear head and with a
 * 64-unit hidden layer.  Rounds interleave the policies so that a busy
 * machine slows them alike; figures are medians over rounds of nanoseconds
 * per decision (a decision: one sample end across, one probe within).
 * Figures only: nothing fails on a slow machine.
 *
 * Usage: bench_learn [ROUNDS]   (default 7)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "earlystop_learn.h"

enum { ITEMS = 2000, SAMPLES = 40, PROBES = 8, ANSWERS = 12 };

typedef struct stream {
    int32_t answer[ITEMS][SAMPLES], probe[ITEMS][SAMPLES][PROBES];
    uint32_t tokens[ITEMS][SAMPLES];
    float conf[ITEMS][SAMPLES], pconf[ITEMS][SAMPLES][PROBES];
} stream;

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void make_stream(stream *s)
{
    for (int i = 0; i < ITEMS; i++)
        for (int k = 0; k < SAMPLES; k++) {
            s->answer[i][k] = next() % 3 ? 1 + (int32_t)(next() % 2) : (int32_t)(next() % ANSWERS);
            s->tokens[i][k] = 50 + (uint32_t)(next() % 400);
            s->conf[i][k] = (float)(next() % 1000) / 1000.0f;
            for (int j = 0; j < PROBES; j++) {
                s->probe[i][k][j] = next() % 2 ? s->answer[i][k] : (int32_t)(next() % ANSWERS);
                s->pconf[i][k][j] = (float)(next() % 1000) / 1000.0f;
            }
        }
}

/* Every item through the session, no stop taken into account (the policy
 * is in observe mode where it can be, so every event is a decision);
 * returns ns per decision. */
static double run(es_policy *p, const stream *s, int probes)
{
    es_session *ses;
    if (es_session_new(p, &ses)) return NAN;
    static const uint8_t flags[ANSWERS] = {0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
    double t0 = es_wall_seconds();
    uint64_t decisions = 0;
    for (int i = 0; i < ITEMS; i++) {
        es_session_begin_item(ses, SAMPLES, ANSWERS);
        es_session_set_answer_flags(ses, flags);
        for (int k = 0; k < SAMPLES; k++) {
            es_session_begin_sample(ses);
            for (int j = 0; probes && j < PROBES; j++) {
                uint32_t at = 16u * (uint32_t)(j + 1);
                if (es_session_reach(ses, at) != ES_CONTINUE) break;
                decisions++;
                if (es_session_probe(ses, at, s->probe[i][k][j], s->pconf[i][k][j], NAN, 0, 0) == ES_STOP) break;
            }
            decisions++;
            if (es_session_end_sample(ses, s->answer[i][k], s->tokens[i][k], s->conf[i][k], 1) == ES_STOP) break;
        }
        es_session_end_item(ses);
    }
    double dt = es_wall_seconds() - t0;
    es_session_free(ses);
    return 1e9 * dt / (double)decisions;
}

/* A stopper of the default features with random weights (what a decision
 * costs does not depend on the values), linear or with a hidden layer. */
static es_stopper *random_stopper(uint32_t hidden)
{
    static double mean[2][64], scale[2][64], w1[2][64 * 64], b1[2][64], w2[2][64];
    static uint32_t feat[2][64];
    static double budget[1] = {0.1}, thr[1] = {0.9}, pthr[1] = {0.9};
    es_stopper_desc d;
    memset(&d, 0, sizeof d);
    for (int lv = 0; lv < 2; lv++) {
        const char *list = es_learn_default_features(lv ? ES_AT_ACROSS : ES_AT_WITHIN);
        uint32_t n = 0;
        char name[64];
        for (const char *p = list; *p;) {
            size_t len = strcspn(p, ",");
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            es_feature_find(name, &feat[lv][n++]);
            p += len + (p[len] == ',');
        }
        for (uint32_t i = 0; i < n; i++) mean[lv][i] = 0.1, scale[lv][i] = 1.3;
        for (uint32_t i = 0; i < 64 * 64; i++) w1[lv][i] = (double)(next() % 200) / 1000.0 - 0.1;
        for (uint32_t i = 0; i < 64; i++) b1[lv][i] = 0.01, w2[lv][i] = (double)(next() % 200) / 1000.0 - 0.1;
        es_stopper_head h = {n, feat[lv], mean[lv], scale[lv], 5, 1,
                             {{hidden, hidden ? w1[lv] : NULL, hidden ? b1[lv] : NULL, w2[lv], 0.2, 1, 1}}, 0, 0};
        if (lv) d.across = h;
        else d.within = h;
    }
    d.n_points = 1;
    d.max_em_drop = budget;
    d.threshold = thr;
    d.probe_threshold = pthr;
    es_stopper *m = NULL;
    es_error err;
    if (es_stopper_new(&d, &m, &err)) fprintf(stderr, "bench_learn: %s\n", err.msg);
    return m;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1) rounds = 1;
    stream *s = malloc(sizeof *s);
    if (!s) return 1;
    make_stream(s);
    es_stopper *lin = random_stopper(0), *mlp = random_stopper(64);
    struct {
        const char *label, *spec;
        const es_stopper *m;
        int probes;
    } pol[] = {
        {"margin (across)", "margin:clinch=on", NULL, 0},
        {"ac-beta (across)", "ac-beta:clinch=on", NULL, 0},
        {"learned linear (across)", "learned:level=across", lin, 0},
        {"learned 64 hidden (across)", "learned:level=across", mlp, 0},
        {"dynasor+margin (both)", "dynasor:k=3+margin:clinch=on", NULL, 1},
        {"learned linear (both)", "learned", lin, 1},
        {"learned 64 hidden (both)", "learned", mlp, 1},
        {"shipped learned (auto levels)", "learned", NULL, 1},
    };
    enum { NP = sizeof pol / sizeof pol[0] };
    es_policy *p[NP];
    double t[NP][64];
    for (int k = 0; k < NP; k++) {
        es_error err;
        p[k] = NULL;
        if (!pol[k].m && !strcmp(pol[k].spec, "learned") && !es_stopper_builtin()) continue;
        if (es_policy_new_stopper(pol[k].spec, pol[k].m, &p[k], &err)) {
            fprintf(stderr, "bench_learn: %s: %s\n", pol[k].spec, err.msg);
            return 1;
        }
        es_policy_observe(p[k], 1); /* where it can: every sample is a decision */
    }
    for (int r = 0; r < rounds && r < 64; r++)
        for (int k = 0; k < NP; k++) t[k][r] = p[k] ? run(p[k], s, pol[k].probes) : NAN;
    printf("bench_learn: ns per decision (a sample's end across, a probe within), median of %d interleaved rounds,\n"
           "%d items x %d samples x %d probes of random events\n",
           rounds, ITEMS, SAMPLES, PROBES);
    for (int k = 0; k < NP; k++) {
        if (!p[k]) {
            printf("  %-32s (no built-in stopper in this build)\n", pol[k].label);
            continue;
        }
        qsort(t[k], (size_t)rounds, sizeof t[k][0], cmp);
        printf("  %-32s %8.1f ns\n", pol[k].label, t[k][rounds / 2]);
        es_policy_free(p[k]);
    }
    es_stopper_free(lin);
    es_stopper_free(mlp);
    free(s);
    return 0;
}
