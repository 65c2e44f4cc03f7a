/*
 * threads.c - replay a policy over many random orders on several cores.
 *
 * The orders are cut into CHUNKS contiguous ranges that
 * the threads take one at a time, so a thread the machine starves takes
 * fewer and no one waits for it longer than one chunk; threads that have
 * nothing to take exit (no spinning).  Each thread owns its policy object
 * (made before the threads start) and its integer accumulators; orders are
 * pure functions of (seed, shuffle, item) and sums are integers, so the
 * result is the same bytes whatever the thread count, and the error reported
 * is that of the first failing chunk, whose bounds do not depend on the
 * thread count either.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_replay.h"

enum { CHUNKS = 16, MAX_THREADS = 256 };

typedef struct job {
    const es_traceset *ts;
    const char *spec;       /* the policy's canonical spec, for messages */
    uint64_t seed;
    uint32_t shuffles, n_chunks;
    int32_t probe_cost;
    size_t n;
    pthread_mutex_t mu;
    uint32_t next;          /* next chunk to take */
    es_eval_acc *acc;       /* the caller's sums */
    int failed;             /* stop taking chunks */
    uint32_t bad_chunk;     /* lowest failing chunk so far */
    int rc;
    es_error err;
} job;

static void acc_add(es_eval_acc *dst, const es_eval_acc *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[i].correct += src[i].correct;
        dst[i].samples += src[i].samples;
        dst[i].rounds += src[i].rounds;
        dst[i].probes += src[i].probes;
        dst[i].tokens += src[i].tokens;
        dst[i].probe_tokens += src[i].probe_tokens;
    }
}

/* Name the item and the policy's reason. */
static void describe(const job *j, const es_policy *p, size_t bad, int rc, const es_error *e, es_error *out)
{
    es_item_view v;
    if (p && es_policy_errmsg(p)[0] && es_traceset_item(j->ts, bad, &v) == ES_OK)
        es_error_set(out, rc, "", 0, "", "item %s: %s: %s", v.id, j->spec, es_policy_errmsg(p));
    else if (e->code == rc)
        *out = *e;
    else
        es_error_set(out, rc, "", 0, "", "%s: %s", j->spec, es_strerror(rc));
}

/* Orders [begin, end) of chunk c. */
static void chunk_range(const job *j, uint32_t c, uint32_t *b, uint32_t *e)
{
    *b = (uint32_t)((uint64_t)j->shuffles * c / j->n_chunks);
    *e = (uint32_t)((uint64_t)j->shuffles * (c + 1) / j->n_chunks);
}

/* One thread's share: its own policy and session, made by the caller
 * before the threads start, and its accumulators. */
typedef struct share {
    job *j;
    es_policy *p;
    es_session *s;
} share;

static void *worker(void *arg)
{
    share *sh = arg;
    job *j = sh->j;
    es_policy *p = sh->p;
    es_session *ses = sh->s;
    es_eval_acc *mine = calloc(j->n ? j->n : 1, sizeof *mine);
    es_error e = {0};
    int rc = mine ? ES_OK : es_error_set(&e, ES_ENOMEM, "", 0, "", "out of memory");
    for (;;) {
        pthread_mutex_lock(&j->mu);
        uint32_t c = j->next;
        int stop = j->failed || c >= j->n_chunks;
        if (!stop) j->next++;
        pthread_mutex_unlock(&j->mu);
        if (stop && rc == ES_OK) break;
        size_t bad = 0;
        if (rc == ES_OK) {
            uint32_t b, en;
            chunk_range(j, c, &b, &en);
            if (j->shuffles == 0) b = en = 0; /* the file order, once */
            rc = es_eval_policy(j->ts, ses, j->seed, b, en, j->probe_cost, mine, &bad);
        }
        if (rc) {
            es_error d;
            describe(j, p, bad, rc, &e, &d);
            pthread_mutex_lock(&j->mu);
            if (!j->failed || c < j->bad_chunk) {
                j->bad_chunk = c;
                j->rc = rc;
                j->err = d;
            }
            j->failed = 1;
            pthread_mutex_unlock(&j->mu);
            break;
        }
    }
    pthread_mutex_lock(&j->mu);
    if (rc == ES_OK) acc_add(j->acc, mine, j->n);
    pthread_mutex_unlock(&j->mu);
    free(mine);
    return NULL;
}

static void free_shares(share *sh, int n)
{
    for (int t = 0; t < n; t++) {
        es_session_free(sh[t].s);
        es_policy_free(sh[t].p);
    }
}

int es_eval_threads(const es_traceset *ts, const es_policy *proto, uint64_t seed, uint32_t shuffles, int threads,
                    int32_t probe_cost, es_eval_acc *acc, es_error *err)
{
    job j = {.ts = ts, .spec = es_policy_spec(proto), .seed = seed, .shuffles = shuffles, .probe_cost = probe_cost,
             .n = es_traceset_n_items(ts), .acc = acc};
    j.n_chunks = shuffles == 0 ? 1 : shuffles < CHUNKS ? shuffles : CHUNKS;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c < 1 ? 1 : c > MAX_THREADS ? MAX_THREADS : (int)c;
    }
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if ((uint32_t)threads > j.n_chunks) threads = (int)j.n_chunks;
    share sh[MAX_THREADS];
    memset(sh, 0, sizeof sh);
    for (int t = 0; t < threads; t++) {
        sh[t].j = &j;
        int rc = es_policy_clone(proto, &sh[t].p, err);
        if (!rc && es_session_new(sh[t].p, &sh[t].s)) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
        if (rc) {
            free_shares(sh, t + 1);
            return rc;
        }
    }
    if (pthread_mutex_init(&j.mu, NULL)) {
        free_shares(sh, threads);
        return es_error_set(err, ES_ENOMEM, "", 0, "", "cannot start threads");
    }
    /* the caller's thread works too; helpers the system refuses are not needed */
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, worker, &sh[t])) break;
        started++;
    }
    worker(&sh[0]);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    free_shares(sh, threads);
    pthread_mutex_destroy(&j.mu);
    if (j.failed && err) *err = j.err;
    return j.failed ? j.rc : ES_OK;
}
