/*
 * front.c - Pareto fronts over (cost, EM) and their hypervolume.
 */
#include <stdlib.h>

#include "tune_int.h"

static int by_cost(const void *a, const void *b)
{
    const es_tune_point *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? -1 : 1;
    return (x->em < y->em) - (x->em > y->em); /* higher EM first at equal cost */
}

/* Sorted by cost, a point stays when its EM beats every cheaper one. */
size_t tn_pareto(es_tune_point *p, size_t n)
{
    qsort(p, n, sizeof *p, by_cost);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || p[i].em > p[m - 1].em) p[m++] = p[i];
    return m;
}

static int by_cost_loss(const void *a, const void *b)
{
    const es_tune_point *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? -1 : 1;
    return (x->loss > y->loss) - (x->loss < y->loss); /* lower loss first at equal cost */
}

/* The same on (cost, loss): the candidates a loss constraint can pick. */
size_t tn_pareto_loss(es_tune_point *p, size_t n)
{
    qsort(p, n, sizeof *p, by_cost_loss);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || p[i].loss < p[m - 1].loss) p[m++] = p[i];
    return m;
}

/* The area of {(c, e): c <= 1, e >= floor, some point has cost <= c and
 * EM >= e}, with floor = full's EM minus 5 points: each front point owns
 * the strip from its cost to the next point's (or 1). */
double tn_hypervolume(const es_tune_point *p, size_t n, double em_full)
{
    double floor = em_full - 0.05, area = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i].cost >= 1.0) break;
        double next = i + 1 < n && p[i + 1].cost < 1.0 ? p[i + 1].cost : 1.0;
        double h = p[i].em - floor;
        if (h > 0) area += (next - p[i].cost) * h;
    }
    return area * 100.0; /* in cost x EM points */
}
