/*
 * eval_threads.c - replay a policy over many random orders on all cores.
 *
 * Lives beside the I/O layer rather than in the core because it needs
 * OpenMP.  Each thread owns its policy object and its integer accumulators;
 * orders are pure functions of (seed, shuffle, item) and sums are integers,
 * so the result is the same bytes whatever the thread count.
 */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "earlystop_io.h"

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

static int thread_count(int threads, uint32_t shuffles)
{
#ifdef _OPENMP
    if (threads <= 0) threads = omp_get_max_threads();
#endif
    if (threads < 1 || shuffles == 0) return 1;
    return (uint32_t)threads > shuffles ? (int)shuffles : threads;
}

/* Name the item and the policy's reason in err (first failing thread wins). */
static void report(const es_traceset *ts, const es_policy *p, const char *spec, size_t bad, int rc,
                   const es_error *e, es_error *err)
{
    es_item_view v;
    if (p && es_policy_errmsg(p)[0] && es_traceset_item(ts, bad, &v) == ES_OK)
        es_error_set(err, rc, "", 0, "", "item %s: %s: %s", v.id, spec, es_policy_errmsg(p));
    else if (e->code == rc)
        *err = *e;
    else
        es_error_set(err, rc, "", 0, "", "%s: %s", spec, es_strerror(rc));
}

int es_eval_policy_threads(const es_traceset *ts, const char *spec, uint64_t seed, uint32_t shuffles,
                           int threads, int32_t probe_cost, es_eval_acc *acc, char *canon, size_t canon_cap,
                           es_error *err)
{
    size_t n = es_traceset_n_items(ts);
    int failed = 0, nthreads = thread_count(threads, shuffles);
#pragma omp parallel num_threads(nthreads)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        es_policy *p = NULL;
        es_eval_acc *mine = calloc(n ? n : 1, sizeof *mine);
        es_error e = {0};
        int rc = mine ? es_policy_new_any(spec, &p, &e) : ES_ENOMEM;
        uint32_t b = (uint32_t)((uint64_t)shuffles * t / nt), en = (uint32_t)((uint64_t)shuffles * (t + 1) / nt);
        size_t bad = 0;
        if (rc == ES_OK) rc = es_eval_policy(ts, p, seed, b, en, probe_cost, mine, &bad);
#pragma omp critical
        {
            if (rc) {
                if (!failed) report(ts, p, spec, bad, rc, &e, err);
                failed = rc;
            } else {
                acc_add(acc, mine, n);
                if (t == 0 && canon) snprintf(canon, canon_cap, "%s", es_policy_spec(p));
            }
        }
        es_policy_free(p);
        free(mine);
    }
    return failed;
}
