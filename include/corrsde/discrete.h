/* corrsde/discrete.h: the discrete correlated-noise diffusion (MATH.md eqs. 1-3).
 *
 * Steps t = 1..N of a discrete csde_schedule (e.g. ddpm-linear; a continuous one gives
 * CSDE_EINVAL, a t outside 1..N gives CSDE_EDOM); states are nblk blocks of tau x D
 * (frame-major), noise is N(0, C (x) I_D) from a csde_cov. D is the one the csde_cov_ws
 * was made for (csde_cov_ws_D). All pointers are borrowed; no function allocates.
 * Noise draws follow csde_cov_sample: global sample j = first + b uses the same numbers
 * whatever the batch split, so choose key.stream per step to keep steps independent.
 */
#ifndef CORRSDE_DISCRETE_H
#define CORRSDE_DISCRETE_H

#include <stddef.h>
#include "corrsde/cov.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scalar coefficients of step t (1 <= t <= N). 1 - abar is computed as -expm1(-B), exact
 * to rounding near abar = 1. At t = 1 (abar_0 = 1): mean_x0 = 1, mean_xt = 0, var = 0,
 * elbo_weight = 0 exactly. */
typedef struct {
  double beta, alpha, abar, abar_prev; /* beta_t, 1-beta_t, abar_t, abar_{t-1} */
  double mean_x0;    /* posterior mean coefficient of X_0: sqrt(abar_{t-1}) beta_t / (1-abar_t) */
  double mean_xt;    /* posterior mean coefficient of X_t: sqrt(alpha_t)(1-abar_{t-1})/(1-abar_t) */
  double var;        /* beta~_t = (1-abar_{t-1}) / (1-abar_t) beta_t */
  double noise_coef; /* mu_theta = (X_t - noise_coef delta_theta) / sqrt(alpha_t):
                        beta_t / sqrt(1-abar_t) */
  double elbo_weight;/* beta_t / (2 alpha_t (1-abar_{t-1})), t >= 2; 0 at t = 1 */
} csde_discrete_coef;

CSDE_API int csde_discrete_coef_at(const csde_schedule *s, size_t t, csde_discrete_coef *c,
                          csde_err *err);

/* Eq. 1: xt = sqrt(abar_t) x0 + sqrt(1-abar_t) delta, delta ~ N(0, C) drawn with
 * csde_cov_sample(key, first). If delta_out is not NULL it receives delta.
 * delta is drawn into delta_out (or xt) first: xt may equal x0 only if delta_out is
 * given and distinct; delta_out must not overlap x0. */
CSDE_API int csde_discrete_marginal_sample(const csde_schedule *s, size_t t, const csde_cov *C,
                                  csde_cov_ws *ws, csde_rng_key key, size_t first,
                                  size_t nblk, const double *x0, double *xt,
                                  double *delta_out, csde_err *err);

/* Eq. 2: mu = mean_x0 x0 + mean_xt xt (n = nblk * tau * D values); *var = beta~_t
 * (var may be NULL). mu may equal x0 or xt. The posterior covariance is beta~_t C. */
CSDE_API int csde_discrete_posterior(const csde_schedule *s, size_t t, size_t n, const double *x0,
                            const double *xt, double *mu, double *var, csde_err *err);

/* mu_theta = (xt - beta_t / sqrt(1-abar_t) delta_theta) / sqrt(alpha_t) (n values).
 * mu may equal xt or delta_theta. */
CSDE_API int csde_discrete_mu_from_noise(const csde_schedule *s, size_t t, size_t n,
                                const double *xt, const double *delta_theta, double *mu,
                                csde_err *err);

/* One ancestral step: x_prev = mu_theta + sqrt(beta~_t) V' z, z keyed by (key, first)
 * as in csde_cov_sample. At t = 1 beta~ = 0 and no noise is added. The noise is drawn
 * into x_prev first, so x_prev must overlap neither xt nor delta_theta. */
CSDE_API int csde_discrete_ancestral_step(const csde_schedule *s, size_t t, const csde_cov *C,
                                 csde_cov_ws *ws, csde_rng_key key, size_t first,
                                 size_t nblk, const double *xt, const double *delta_theta,
                                 double *x_prev, csde_err *err);

/* Eq. 3 loss term for step t: loss[b] = w_t sum_pixels (d - d_theta)^T C^-1 (d - d_theta)
 * for block b, w_t = elbo_weight (w_1 = 0: use unweighted = 1 to get the plain C^-1 form).
 * loss (nblk values) may be NULL; if total is not NULL it receives the sum over blocks.
 * A singular C fails as csde_cov_mahalanobis does (CSDE_ESING). */
CSDE_API int csde_discrete_loss(const csde_schedule *s, size_t t, const csde_cov *C,
                       csde_cov_ws *ws, size_t nblk, const double *delta,
                       const double *delta_theta, int unweighted, double *loss,
                       double *total, csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
