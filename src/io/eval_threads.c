/*
 * eval_threads.c - replay a policy over many random orders on several cores.
 *
 * Lives beside the I/O layer rather than in the core because it starts
 * threads (pthreads).  The orders are cut into CHUNKS contiguous ranges that
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

#include "earlystop_io.h"

enum { CHUNKS = 16, MAX_THREADS = 256 };

typedef struct job {
    const es_traceset *ts;
    const char *spec;
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
    char *canon;
    size_t canon_cap;
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

/* One thread's share: its own policy (made by the caller: building one
 * calls lgamma, which writes the global signgam) and accumulators. */
typedef struct share {
    job *j;
    es_policy *p;
} share;

static void *worker(void *arg)
{
    share *sh = arg;
    job *j = sh->j;
    es_policy *p = sh->p;
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
            rc = es_eval_policy(j->ts, p, j->seed, b, en, j->probe_cost, mine, &bad);
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
    if (rc == ES_OK) {
        acc_add(j->acc, mine, j->n);
        if (j->canon && p) snprintf(j->canon, j->canon_cap, "%s", es_policy_spec(p));
    }
    pthread_mutex_unlock(&j->mu);
    free(mine);
    return NULL;
}

int es_eval_policy_threads(const es_traceset *ts, const char *spec, uint64_t seed, uint32_t shuffles,
                           int threads, int32_t probe_cost, es_eval_acc *acc, char *canon, size_t canon_cap,
                           es_error *err)
{
    job j = {.ts = ts, .spec = spec, .seed = seed, .shuffles = shuffles, .probe_cost = probe_cost,
             .n = es_traceset_n_items(ts), .acc = acc, .canon = canon, .canon_cap = canon_cap};
    j.n_chunks = shuffles == 0 ? 1 : shuffles < CHUNKS ? shuffles : CHUNKS;
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c < 1 ? 1 : c > MAX_THREADS ? MAX_THREADS : (int)c;
    }
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if ((uint32_t)threads > j.n_chunks) threads = (int)j.n_chunks;
    share sh[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        sh[t].j = &j;
        sh[t].p = NULL;
        int rc = es_policy_new_any(spec, &sh[t].p, err);
        if (rc) {
            for (int k = 0; k < t; k++) es_policy_free(sh[k].p);
            return rc;
        }
    }
    if (pthread_mutex_init(&j.mu, NULL)) {
        for (int t = 0; t < threads; t++) es_policy_free(sh[t].p);
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
    for (int t = 0; t < threads; t++) es_policy_free(sh[t].p);
    pthread_mutex_destroy(&j.mu);
    if (j.failed && err) *err = j.err;
    return j.failed ? j.rc : ES_OK;
}
