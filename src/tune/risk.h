/*
 * risk.h - valid p-values for "the mean loss exceeds eps" and the
 * fixed-sequence test that Learn-then-Test runs over ordered candidates.
 *
 * Learn-then-Test (Angelopoulos, Bates et al. 2021) turns a risk bound into a
 * multiple test: candidate j is certified when the null "R(j) > eps" is
 * rejected at level delta.  Testing candidates in a fixed order, from the
 * most conservative to the most aggressive, and stopping at the first that
 * fails, controls the family-wise error at delta with no correction.  What
 * makes that a guarantee is that each p-value below is valid (super-uniform
 * under its null) for i.i.d. (exchangeable) calibration items.
 */
#ifndef ES_TUNE_RISK_H
#define ES_TUNE_RISK_H

#include <stddef.h>
#include <stdint.h>

/* P(X <= k) for X ~ Binomial(n, p): 1 when k >= n. */
double es_binom_cdf(uint64_t k, uint64_t n, double p);

/* The regularised incomplete beta, es_incbeta, is the core's (earlystop.h). */

/* Exact p-value for binary losses: k of n calibration items lost, null
 * "the loss rate exceeds eps".  P(Bin(n, eps) <= k): the chance of a count
 * this low if the rate were eps (the null's least favourable point). */
double es_pvalue_binomial(uint64_t n, uint64_t k, double eps);

/* Hoeffding-Bentkus p-value for losses in [0, 1] with mean `mean` over n
 * items (Bates et al. 2021): min(exp(-n h(mean ^ eps, eps)),
 * e * P(Bin(n, eps) <= ceil(n mean))). */
double es_pvalue_hb(uint64_t n, double mean, double eps);

/*
 * Betting p-value for losses in [0, 1] (Waudby-Smith and Ramdas 2024): the
 * wealth K_t = prod (1 + l_t (eps - x_t)) of a gambler who bets the mean is
 * below eps is a nonnegative supermartingale under the null, so
 * 1 / max_t K_t is a valid p-value (Ville's inequality).  The bet l_t is
 * predictable (from x_1..x_{t-1} only) and shrinks with the running variance,
 * which is what makes this test far stronger than Hoeffding's when most
 * losses sit at one value.  `order` (may be NULL) is a permutation of the
 * items fixed before the losses are seen; delta only tunes the bet size.
 */
double es_pvalue_betting(const double *loss, const uint32_t *order, size_t n, double eps, double delta);

/* Fixed-sequence testing: candidates 0..m-1 in the order given, the first
 * whose p-value exceeds delta ends the sequence.  Returns how many lead
 * candidates are certified (0 = none). */
size_t es_fixed_sequence(const double *pvalues, size_t m, double delta);

#endif
