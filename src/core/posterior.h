/* posterior.h - closed-form and quadrature posteriors behind the vote rules. */
#ifndef ES_POSTERIOR_H
#define ES_POSTERIOR_H

#include <stdint.h>

/* Adaptive-Consistency's Beta criterion: with a and b the top two vote counts,
 * P(p1 > p2) = int_.5^1 x^a (1-x)^b dx / int_0^1 x^a (1-x)^b dx.  For integer
 * counts this is a binomial tail: P(Bin(a + b + 1, 1/2) <= a). */
double es_beta_lead_prob(uint32_t a, uint32_t b);

/* Probability under a Dirichlet(counts + 1) posterior that answer 0 has the
 * largest share, counts[0] being the leader.  Exact reduction to one
 * dimension via the Gamma representation p_i = G_i / sum G, so P = int
 * f_0(x) prod_j F_j(x) dx, integrated by Gauss-Legendre (posterior.c).  n = 2 equals
 * es_beta_lead_prob. */
double es_dirichlet_lead_prob(const uint32_t *counts, uint32_t n);

/* Entropy (bits) of the vote distribution divided by log2(number of distinct
 * answers), as Adaptive-Consistency's EntropyStoppingCriteria computes it:
 * with a single distinct answer a pseudo-count of 1 is appended first.  The
 * arithmetic is scipy.stats.entropy's step for step (entr terms in natural
 * log, numpy's pairwise sum, then / ln 2 / log2 n), so that counts whose
 * exact value equals the threshold, such as (8, 3, 1) at 0.75, land on the
 * same side of it as upstream's: counts[] must be in order of first vote. */
double es_vote_entropy_norm(const uint32_t *counts, uint32_t n);

#endif
