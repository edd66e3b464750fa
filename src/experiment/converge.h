/* Internal: solver convergence experiments (`corrsde converge`, issue 5); the types and
 * the entry points are public (corrsde/converge.h).
 *
 * Two stages, usable separately:
 *
 *   csde_conv_run      solves, in stages (a reference, or a level of one solver, for
 *                      every path; csde_conv_progress): for every solver, every path i < N and every level k in
 *                      K0..K1 (2^k fixed steps), the per-path contribution v[i][k] of that
 *                      path to the error (definitions below), against a reference on the
 *                      SAME path: all levels of a path share one Brownian path (path noise:
 *                      the Brownian tree of the seed, first_sample = the path index) and one starting state (a pure function of the path
 *                      index). Work is cut into (solver, batch of paths) items run by
 *                      OpenMP threads, each with its OWN model and solver objects; every
 *                      value is stored at [path][level] and reduced in a fixed order, so
 *                      the result is bitwise the same for any thread count.
 *   csde_conv_analyse  turns per-path contributions into estimates, bootstrap intervals,
 *                      level screening and a fitted order (it is what the synthetic
 *                      coverage test calls directly).
 *
 * ---- errors (one sample = one path = a tau x D block; ||v|| is the RMS over its
 *      tau * D entries, sqrt(sum v^2 / (tau D)), so sizes do not depend on the shape) ----
 *   strong     v_i = ||X_h,i - X_ref,i|| at the final time; error = mean_i v_i, with the
 *              RMS variant sqrt(mean_i v_i^2) reported beside it. Reference: a fine solve
 *              of the same solver at level R on the same path (no exact pathwise solution
 *              exists).
 *   ode        the same per-path norm for the deterministic processes (pf-ode,
 *              pf-ode-encode); reference: the exact flow (gaussian model; counted as
 *              accurate to 1e-13 relative, the propagator's tolerance) or a fine solve.
 *   weak-mean  v_i = X_h,i - X_ref,i (tau * D numbers); error = ||mean_i v_i|| (RMS norm
 *              over the tau * D entries of the mean vector), i.e. |E X_h - E X_ref|.
 *   weak-cov   v_i = F(X_h,i) - F(X_ref,i) with F(X) = (1/D) sum_p x_p x_p^T the frame
 *              second moment E[X X^T] (tau x tau, x_p the tau-vector of pixel p, pooled
 *              over the D pixels); error = Frobenius norm of mean_i v_i.
 * Weak estimator ("same-path control variate"): E[f(X_h) - f(X_ref)] with X_ref the fine
 * solve at level R on the same path and from the same start, whose variance shrinks with
 * the strong error instead of staying at Var f(X). The reference's own bias is NOT added:
 * it is estimated by Richardson from the same paths, |E f(X_{R-1}) - E f(X_R)| / (2^p - 1)
 * (p the solver's theoretical order), and required to be <= 1/10 of the finest level's
 * error (a warning is recorded otherwise). With an exact law (gaussian) the reference is
 * also checked against the exact moments by plain Monte Carlo (deviation and half-width
 * recorded); adding that plain Monte Carlo term would bring back exactly the variance the
 * control variate removes.
 *
 * ---- analysis ----
 * Bootstrap over whole paths (the levels of one path are resampled together): B
 * replicates, replicate b draws N path indices from the uniforms (boot_seed, stream b);
 * percentile intervals at `conf` for every level's error, local slope and the order.
 * The reference check: e_R <= max(d, d_hi) / (2^p - 1), d the error of level R-1 against
 * R on the same paths and d_hi its upper bootstrap limit (Richardson with aligned
 * errors, an upper bound when they are not), p the theoretical order; the finest level
 * must be >= 10 e_R above it (recorded, and warned about, when not).
 * Level screening (every decision is recorded with its reason), in this order:
 *   below floor    error < the float64 floor (1e-12 x the mean size of X_ref, or of
 *                  F(X_ref)), or < 3 e_R, or (weak) < 3 x the Monte Carlo noise level
 *                  sqrt(sum_q Var(v_q) / N) (what the norm of the mean shows when the true
 *                  error is 0);
 *   unresolved     the interval's half-width >= error / 3;
 *   pre-asymptotic the finest level j with at least 3 remaining levels finer than it
 *                  whose slope to the next remaining level differs from the weighted
 *                  slope p* of all finer remaining levels by more than 0.1 max(1, |p*|)
 *                  plus two bootstrap standard deviations of the difference, and every
 *                  level coarser than j (levels are tested from the fine end, so one
 *                  coarse level that happens to sit on p* does not keep the ones between
 *                  it and j).
 * Fit and interval: csde_conv_fit_order, from 3 used levels or more ("not fitted: only N
 * resolved levels (need 3)" otherwise: a line through two points has no misfit to
 * show that they are not asymptotic, and its interval would be the noise alone).
 */
#ifndef CSDE_EXPERIMENT_CONVERGE_H
#define CSDE_EXPERIMENT_CONVERGE_H

#include <stddef.h>
#include <stdint.h>

#include "corrsde/converge.h"
#include "corrsde/model.h"
#include "corrsde/solve.h"
#include "corrsde/status.h"

/* The csde_solver_type_order key of a kind: "strong", "weak" or "ode". */
const char *csde_conv_kind_order_key(csde_conv_kind k);
int csde_conv_kind_is_weak(csde_conv_kind k);

/* ---- analysis of per-path contributions ---- */

typedef struct {
  size_t N, L, Q;        /* paths, levels (coarse to fine), numbers per contribution */
  const double *v;       /* [N][L][Q] per-path contributions */
  const double *vref;    /* [N][Q]: level R-1 against R (the reference check), or NULL */
  int vector;            /* 0: Q == 1, error = mean_i v_i (+ RMS variant);
                            1: error = norm of mean_i v_i */
  int rms_norm;          /* vector norm: 1 = sqrt(sum/Q), 0 = sqrt(sum) (Frobenius) */
  const double *h;       /* [L] step sizes */
  const unsigned *level; /* [L] level numbers (for messages), may be NULL */
  double theory;         /* theoretical order (Richardson factor of the reference check) */
  double float_floor;    /* absolute round-off floor of the errors */
  double ref_floor;      /* absolute error of an exact reference, or the estimated error
                            of a shared one (0 if none) */
  const char *ref_floor_name; /* its name in floor_name (NULL: "exact reference") */
  size_t boot;           /* bootstrap replicates (>= 100) */
  uint64_t boot_seed;
  double conf;           /* e.g. 0.95 */
  int threads;           /* for the bootstrap; results do not depend on it */
  const csde_conv_dist *dist; /* the replicates split over processes (rank q draws the
                            q-th contiguous share, then broadcasts it); NULL: all here */
} csde_conv_data;

int csde_conv_analyse(const csde_conv_data *d, csde_conv_fit *out, csde_err *err);
void csde_conv_fit_free(csde_conv_fit *f); /* accepts a zeroed struct */

/* The order fit on its own (at least 3 used levels, else NaN and "not fitted: ..."): levels with use[k] != 0, estimates e[k], step sizes h[k],
 * bootstrap replicates E[b * L + k] (b < B), the reference's error ref_err (0: exact).
 * Model: log e = c + p log h by weighted least squares, weights 1/Var_boot(log e_k); then
 * the first terms of the asymptotic error expansion, e = C h^p (1 + D h + D2 h^2 + ...)
 * (integer powers for ODE and weak errors of one-step schemes, and for the strong error
 * of additive-noise schemes, whose mean-square error is a polynomial in h), one at a
 * time: log e = c + p log h + d h/h_max (at least 3 levels), then + d2 (h/h_max)^2 (at
 * least 5), each kept while its coefficient is resolved (its bootstrap percentile
 * interval excludes 0). The last model kept gives p.
 * Interval: the bootstrap percentile interval of p combined in quadrature with three
 * systematic half-widths:
 *   extrapolation  |p - plain slope| when a correction is used: an extrapolated order is
 *                  trusted no further than the whole correction it made (a
 *                  deterministic error has no sampling noise; what it has is the
 *                  truncation of the expansion, and this is its size);
 *   misfit         z sqrt(s2 sum_k c_k^2), z the normal quantile of conf, c_k the weight
 *                  of log e_k in p and s2 the residuals' scatter beyond their bootstrap
 *                  noise (misfit_var in converge.c): the terms the model leaves out,
 *                  counted as an extra error of one size on every level, in absolute
 *                  units (never a factor on the sampling noise, which is 0 for ODE
 *                  errors);
 *   reference      |sum_k c_k ref_err / e_k|: the reference's error shifts every e_k by
 *                  up to ref_err, in the same direction when the errors are correlated
 *                  (a fine solve of the same scheme on the same path errs like the
 *                  levels do), which tilts the slope.
 * Writes order, order_lo/hi, order_boot_lo/hi, order_plain, curved, curvature(2),
 * order_sys, order_misfit, order_sys_ref and fit (in words). */
void csde_conv_fit_order(size_t L, const double *h, const double *e, const double *E,
                         size_t B, const int *use, double conf, double ref_err,
                         csde_conv_fit *f);

/* The default reference level of one solver: K1 + max(3, ceil(log2(10) / p) (+ 1 if
 * p <= 1)), p its theoretical order for the kind. */
unsigned csde_conv_default_ref_level(const csde_conv_params *p, const char *solver);

/* csde_conv_exact_available: corrsde/converge.h. */

#endif
