/*
 * parallel.c - a parallel for over chunks on pthreads that wait passively.
 *
 * Threads take the next chunk when done, so a thread the machine starves
 * takes fewer and nobody waits for it longer than one chunk; no thread
 * spins.  The result does not depend on the thread count as long as fn
 * writes each chunk's results apart (the callers add integer sums, or keep
 * per-chunk outputs).
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "earlystop_replay.h"

enum { MAX_THREADS = 256 };

typedef struct par_job {
    int (*fn)(void *ctx, int thread, size_t chunk);
    void *ctx;
    size_t n, next;
    pthread_mutex_t mu;
    int rc;
    size_t bad;          /* lowest failing chunk */
} par_job;

typedef struct par_share {
    par_job *j;
    int thread;
} par_share;

static void *par_worker(void *arg)
{
    par_share *sh = arg;
    par_job *j = sh->j;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t c = j->next;
        int stop = j->rc || c >= j->n;
        if (!stop) j->next++;
        pthread_mutex_unlock(&j->mu);
        if (stop) break;
        int rc = j->fn(j->ctx, sh->thread, c);
        if (rc) {
            pthread_mutex_lock(&j->mu);
            if (!j->rc || c < j->bad) {
                j->rc = rc;
                j->bad = c;
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

int es_parallel_threads(int threads)
{
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c < 1 ? 1 : (int)c;
    }
    return threads > MAX_THREADS ? MAX_THREADS : threads;
}

int es_parallel(int threads, size_t n_chunks, int (*fn)(void *ctx, int thread, size_t chunk), void *ctx)
{
    par_job j = {.fn = fn, .ctx = ctx, .n = n_chunks};
    threads = es_parallel_threads(threads);
    if ((size_t)threads > n_chunks) threads = n_chunks ? (int)n_chunks : 1;
    if (pthread_mutex_init(&j.mu, NULL)) return ES_ENOMEM;
    par_share sh[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        sh[t] = (par_share){&j, t};
        if (pthread_create(&tid[started], NULL, par_worker, &sh[t])) break;
        started++;
    }
    sh[0] = (par_share){&j, 0};
    par_worker(&sh[0]);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j.mu);
    return j.rc;
}
