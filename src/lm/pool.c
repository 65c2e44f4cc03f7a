/* pool.c - the model's threads: a small pthread pool that spins briefly,
 * then sleeps.
 *
 * Why not OpenMP: its threads wait for work by spinning, and on a machine
 * where other processes want the cores a spinning thread holds a core the
 * others need, while the thread it waits for is descheduled; every one of the
 * ~30 fork/joins of a token then costs a scheduler time slice.  Here a worker
 * spins for at most ES_POOL_SPIN_NS (long enough to bridge the gaps between
 * the kernels of one token) and then blocks on a condition variable.
 *
 * Whether the workers help at all is measured as the work goes (see
 * ES_POOL_PROBE_NS): on a busy machine jobs run on the caller alone.
 *
 * Work is split into chunks.  Each thread owns a contiguous home range of the
 * chunks (so a thread keeps meeting the same slice of the weights, which then
 * stays in its core's cache) and, when its range is done, takes chunks from
 * the others' ranges.  The caller is thread 0 and runs chunks too, so a job
 * finishes even when every worker is descheduled: a busy machine costs at
 * most the chunk a preempted worker holds.  Each chunk is computed by one
 * thread with the same code whoever takes it, so results never depend on
 * the number of threads or on who ran what.
 *
 * Claiming: a range is one 64-bit word, end << 32 | next.  fetch_add on it
 * hands out `next`; a value at or past `end` means the range is spent.  A
 * claim below `end` also proves the job is still running (it cannot finish
 * without that chunk), so the job's function and context, written before the
 * ranges were published, are still the ones to run.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lm_internal.h"

/* Spin this long for the next job or for the last chunk before sleeping. */
#define ES_POOL_SPIN_NS 50000L
/* Whether threads pay is measured, not assumed: on a machine where other
 * processes hold the cores, a worker is descheduled for a time slice at a
 * time and every hand-off waits for it, and a spinning worker that shares a
 * core with the caller slows what the caller does between jobs.  So the
 * caller alternates short windows of wall time with the workers and on its
 * own thread, compares the work done per nanosecond of wall time in each
 * (everything the caller does counts, between jobs too), and uses the faster
 * way until the next comparison.  The windows are interleaved so that a
 * change in the machine's load hits both ways alike.  They cost a few percent
 * on an idle machine; on a busy one n threads then cost about what one does. */
#define ES_POOL_PROBE_NS 2000000L      /* each measured window */
#define ES_POOL_PROBES 8               /* windows per comparison, alternating */
#define ES_POOL_EXPLOIT_NS 200000000L  /* then the faster way, this long */
/* A window with a pause this long in it (no job: the caller is doing
 * something else) is not counted. */
#define ES_POOL_PAUSE_NS 1000000L

/* One range per cache line: threads claim from their own without sharing. */
typedef struct pool_range {
    _Atomic uint64_t w;
    char pad[64 - sizeof(uint64_t)];
} pool_range;

typedef struct pool_worker {
    es_lm_pool *p;
    int id;
} pool_worker;

struct es_lm_pool {
    int n;                       /* threads, the caller included */
    pool_range *ranges;          /* [n] */
    pthread_t *tids;             /* [n - 1] */
    pool_worker *workers;        /* [n - 1] */
    int started;                 /* workers created */
    es_pool_fn fn;               /* the job: valid while a chunk is unclaimed */
    void *ctx;
    int total;                   /* chunks of the job */
    _Atomic int done;            /* chunks finished */
    _Atomic uint32_t gen;        /* job count: workers wait for it to move */
    _Atomic int stop;
    _Atomic int sleepers;        /* workers blocked on `wake` */
    _Atomic int caller_waits;    /* the caller is blocked on `finished` */
    pthread_mutex_t mu;
    pthread_cond_t wake, finished;
    pthread_mutex_t busy;        /* one job at a time; others run inline */
    /* caller only: the measured windows.  phase < ES_POOL_PROBES: even
     * with the workers, odd alone; then the faster of the two. */
    int phase, use_workers, paused;
    long phase_start, last_job;
    double phase_work;
    double work[2], ns[2];        /* per way: work done, wall time */
};

/* A hint to the core that this is a spin loop (lets the sibling run). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Cores this process may run on: more threads than that only wait for
 * each other. */
int es_lm_cpu_count(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < ES_LM_MAX_THREADS ? n : ES_LM_MAX_THREADS) : 1;
}

/* Runs chunks while any range has one: its own first, then the others'.
 * The finished count is added once at the end (one contended atomic per
 * thread and job, not per chunk); the thread that completes the job wakes a
 * caller that went to sleep waiting for it.  Returns the chunks it ran. */
static int pool_work(es_lm_pool *p, int self)
{
    int mine = 0;
    for (int k = 0; k < p->n; k++) {
        pool_range *r = &p->ranges[(self + k) % p->n];
        for (;;) {
            uint64_t v = atomic_fetch_add(&r->w, 1);
            uint32_t next = (uint32_t)v, end = (uint32_t)(v >> 32);
            if (next >= end) break;
            p->fn(p->ctx, (int)next);
            mine++;
        }
    }
    if (!mine) return 0;
    int total = p->total;   /* read before our chunks count: then the job may end */
    if (atomic_fetch_add(&p->done, mine) + mine == total && self && atomic_load(&p->caller_waits)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->finished);
        pthread_mutex_unlock(&p->mu);
    }
    return mine;
}

/* Spin for a new job, then sleep until one is published or the pool stops. */
static void *pool_main(void *arg)
{
    pool_worker *w = arg;
    es_lm_pool *p = w->p;
    uint32_t seen = 0;
    for (;;) {
        long t0 = 0;
        for (int i = 0; atomic_load(&p->gen) == seen && !atomic_load(&p->stop); i++) {
            cpu_relax();
            if ((i & 63) == 63) {
                long t = now_ns();
                if (!t0) t0 = t;
                else if (t - t0 > ES_POOL_SPIN_NS) break;
            }
        }
        if (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load(&p->gen);
        pool_work(p, w->id);
    }
}

/* Threads beyond the cores are not started: they could only take turns. */
int es_lm_pool_new(int threads, es_lm_pool **out, es_error *err)
{
    if (threads < 1 || threads > ES_LM_MAX_THREADS)
        return es_error_set(err, ES_EINVAL, NULL, 0, "threads", "thread count %d is outside 1..%d",
                            threads, ES_LM_MAX_THREADS);
    int cores = es_lm_cpu_count();
    if (threads > cores) threads = cores;
    es_lm_pool *p = calloc(1, sizeof *p);
    if (!p) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "thread pool");
    p->n = threads;
    p->ranges = aligned_alloc(64, sizeof(pool_range) * (size_t)threads);
    p->tids = calloc((size_t)threads, sizeof *p->tids);
    p->workers = calloc((size_t)threads, sizeof *p->workers);
    if (!p->ranges || !p->tids || !p->workers) {
        free(p->ranges); free(p->tids); free(p->workers); free(p);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "thread pool");
    }
    for (int i = 0; i < threads; i++) atomic_init(&p->ranges[i].w, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->finished, NULL);
    for (int i = 1; i < threads; i++) {
        p->workers[i - 1].p = p;
        p->workers[i - 1].id = i;
        if (pthread_create(&p->tids[i - 1], NULL, pool_main, &p->workers[i - 1])) {
            p->n = i;   /* run with the threads that did start */
            break;
        }
        p->started++;
    }
    *out = p;
    return ES_OK;
}

/* Wakes every worker with the stop flag and joins them. */
void es_lm_pool_free(es_lm_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->tids[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->busy);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->finished);
    free(p->ranges);
    free(p->tids);
    free(p->workers);
    free(p);
}

int es_lm_pool_threads(const es_lm_pool *p)
{
    return p ? p->n : 1;
}

/* Which way the next job runs: alternating windows with the workers and
 * alone, then the faster way for ES_POOL_EXPLOIT_NS; counts the job's work
 * in its window. */
static int pool_choose(es_lm_pool *p, long now, double work)
{
    if (!p->phase_start) p->phase_start = p->last_job = now;
    if (now - p->last_job > ES_POOL_PAUSE_NS) p->paused = 1;
    p->last_job = now;
    long len = p->phase == ES_POOL_PROBES ? ES_POOL_EXPLOIT_NS : ES_POOL_PROBE_NS;
    if (now - p->phase_start >= len) {
        if (p->phase < ES_POOL_PROBES && !p->paused) {
            p->work[p->phase % 2] += p->phase_work;
            p->ns[p->phase % 2] += (double)(now - p->phase_start);
        }
        p->phase = (p->phase + 1) % (ES_POOL_PROBES + 1);
        if (p->phase == ES_POOL_PROBES) {
            /* a way never measured (pauses): keep the last choice */
            if (p->ns[0] > 0 && p->ns[1] > 0) p->use_workers = p->work[0] / p->ns[0] > p->work[1] / p->ns[1];
            p->work[0] = p->work[1] = p->ns[0] = p->ns[1] = 0;
        }
        p->phase_start = now;
        p->phase_work = 0;
        p->paused = 0;
    }
    p->phase_work += work;
    return p->phase == ES_POOL_PROBES ? p->use_workers : p->phase % 2 == 0;
}

/* Publish the job (ranges first, then the generation that wakes workers),
 * run chunks on this thread, then wait for the ones others hold. */
void es_pool_run(es_lm_pool *p, int chunks, double work, es_pool_fn fn, void *ctx)
{
    if (chunks <= 0) return;
    if (!p || p->n < 2 || chunks == 1 || pthread_mutex_trylock(&p->busy)) {
        for (int c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    if (!pool_choose(p, now_ns(), work)) {
        for (int c = 0; c < chunks; c++) fn(ctx, c);
        pthread_mutex_unlock(&p->busy);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->total = chunks;
    atomic_store(&p->done, 0);
    for (int t = 0; t < p->n; t++) {
        uint64_t b = (uint64_t)chunks * (uint64_t)t / (uint64_t)p->n;
        uint64_t e = (uint64_t)chunks * (uint64_t)(t + 1) / (uint64_t)p->n;
        atomic_store(&p->ranges[t].w, e << 32 | b);
    }
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    pool_work(p, 0);
    long t0 = now_ns();
    for (int i = 0; atomic_load(&p->done) < chunks; i++) {
        cpu_relax();
        if ((i & 63) == 63 && now_ns() - t0 > ES_POOL_SPIN_NS) break;
    }
    if (atomic_load(&p->done) < chunks) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_waits, 1);
        while (atomic_load(&p->done) < chunks) pthread_cond_wait(&p->finished, &p->mu);
        atomic_store(&p->caller_waits, 0);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->busy);
}

/* Adapter from chunk numbers to contiguous index ranges. */
typedef struct pool_for_ctx {
    es_range_fn fn;
    void *ctx;
    long n, grain;
    int chunks;
} pool_for_ctx;

static void pool_for_chunk(void *arg, int c)
{
    pool_for_ctx *f = arg;
    long units = (f->n + f->grain - 1) / f->grain;
    long u0 = units * c / f->chunks, u1 = units * (c + 1) / f->chunks;
    long i0 = u0 * f->grain, i1 = u1 * f->grain < f->n ? u1 * f->grain : f->n;
    if (i0 < i1) f->fn(f->ctx, i0, i1);
}

/* Chunks start at multiples of `grain` (so kernels that group rows group
 * them the same way on any thread count); a few chunks per thread let a
 * thread that is ahead help one that was descheduled. */
void es_pool_for(es_lm_pool *p, long n, long grain, double work, es_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    long units = (n + grain - 1) / grain;
    int th = es_lm_pool_threads(p);
    if (th < 2 || units < 2 || work < ES_POOL_MIN_WORK) {
        fn(ctx, 0, n);
        return;
    }
    long chunks = (long)th * 4;
    if (chunks > units) chunks = units;
    pool_for_ctx f = {fn, ctx, n, grain, (int)chunks};
    es_pool_run(p, (int)chunks, work, pool_for_chunk, &f);
}
