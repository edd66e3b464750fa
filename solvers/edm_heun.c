/* EDM's Heun sampler (stepper.h; Karras et al. 2022, Algorithm 1 without churn): Heun's
 * method on the PF-ODE in sigma-space coordinates, two model evaluations per step.
 *
 * With x_ve = x / alpha and s = sigma / alpha (the VE sigma of the context), the PF-ODE
 * is dx_ve/ds = (x_ve - D(x_ve, s)) / s, D the data prediction (docs/MATH.md, "The
 * denoiser view"): the same equation as in the isotropic case, the correlation being
 * inside D. A step t0 -> t1 (s0 -> s1):
 *   d0 = (x_ve - D0) / s0,  x~ = x_ve + (s1 - s0) d0,
 *   d1 = (x~ - D(x~, s1)) / s1,  x_ve1 = x_ve + (s1 - s0) (d0 + d1) / 2,
 * and x1 = alpha1 x_ve1. The model sees x = alpha x_ve at t. Order 2.
 *
 * Buffers: 0 = D0 then D1, 1 = x~ (in x units). */
#include <math.h>

#include "solve/stepper.h"

static int edm_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                    int last)
{
  (void)dW;
  (void)last;
  double *D = csde_stepper_buf(S, 0), *xt = csde_stepper_buf(S, 1);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  double a0, g0, l0, a1, g1, l1;
  csde_stepper_view(S, t0, &a0, &g0, &l0);
  csde_stepper_view(S, t1, &a1, &g1, &l1);
  const double s0 = g0 / a0, s1 = g1 / a1, ds = s1 - s0;
  int s = csde_stepper_denoise(S, t0, x, D); /* D0 = x_theta(x, t0) */
  if (s) return s;
  /* x~ (x units) = alpha1 (x_ve + ds d0), d0 = (x/alpha0 - D0) / s0 */
  const double c0 = a1 * (1 + ds / s0) / a0, cD = -a1 * ds / s0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) xt[i] = c0 * x[i] + cD * D[i];
  /* d0 is kept implicitly: x_ve1 = x_ve + ds/2 (d0 + d1), d0 = (x/a0 - D0)/s0; store
   * ds/2 d0 in D's place before D is overwritten by D1 */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) D[i] = 0.5 * ds * (x[i] / a0 - D[i]) / s0;
  /* x = alpha1 (x_ve + ds/2 d0): the state without d1 yet */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) x[i] = a1 * (x[i] / a0 + D[i]);
  s = csde_stepper_denoise(S, t1, xt, D); /* D1 = x_theta(x~, t1) */
  if (s) return s;
  /* x += alpha1 ds/2 d1, d1 = (x~/alpha1 - D1) / s1 */
  const double c1 = 0.5 * ds / s1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) x[i] += c1 * (xt[i] - a1 * D[i]);
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_edm_heun = {
  .name = "edm-heun",
  .alias = NULL,
  .summary = "EDM's Heun in sigma: PF-ODE, order 2",
  .sde = 0,
  .ode = 1,
  .adaptive = 0,
  .nfe_per_step = 2,
  .order_ode = 2.0,
  .order_strong = 0,
  .order_weak = 0,
  .nbuf = 2,
  .init = NULL,
  .free = NULL,
  .reset = NULL,
  .step = edm_step,
  .evolve = NULL,
};
