/*
 * clock.h - the one clock of the command line and the benchmarks (header
 * only, not part of any library): wall time on the monotonic clock, and the
 * process's CPU time, in seconds.
 */
#ifndef ES_COMMON_CLOCK_H
#define ES_COMMON_CLOCK_H

#include <time.h>

static inline double es_wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double es_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
