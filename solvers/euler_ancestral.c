/* Euler ancestral (stepper.h; k-diffusion's sample_euler_ancestral): a sampler of the
 * reverse SDE's law, one model evaluation per step, its fresh noise drawn as V' z.
 *
 * In sigma-space coordinates (x_ve = x / alpha, s = sigma / alpha; edm_heun.c) a step
 * s0 -> s1 splits s1 into a deterministic and a fresh part:
 *   s_up = min(s1, sqrt(s1^2 (s0^2 - s1^2) / s0^2)),  s_down = sqrt(s1^2 - s_up^2),
 *   x_ve1 = x_ve + (s_down - s0) (x_ve - D(x_ve, s0)) / s0 + s_up z,
 * and x1 = alpha1 x_ve1. z ~ N(0, C) along the frames: the loop's coloured increment
 * dW = V'(W(t1) - W(t0)) divided by sqrt(|t1 - t0|), so that --noise path gives one
 * Brownian path for every step count (the fresh noise of a coarse step is the normalised
 * sum of the fine ones). Weak order 1 (the ancestral DDPM step, as eta = 1 DDIM).
 *
 * Buffer 0 = D. */
#include <math.h>

#include "solve/stepper.h"

static int ea_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                   int last)
{
  (void)last;
  double *D = csde_stepper_buf(S, 0);
  double a0, g0, l0, a1, g1, l1;
  csde_stepper_view(S, t0, &a0, &g0, &l0);
  csde_stepper_view(S, t1, &a1, &g1, &l1);
  const double s0 = g0 / a0, s1 = g1 / a1;
  double up = s0 > s1 ? sqrt(s1 * s1 * (s0 * s0 - s1 * s1) / (s0 * s0)) : 0.0;
  if (up > s1) up = s1;
  const double down = sqrt(s1 * s1 - up * up);
  int s = csde_stepper_denoise(S, t0, x, D); /* D = x_theta(x, t0) */
  if (s) return s;
  /* x1 = alpha1 (x_ve + (down - s0) (x_ve - D) / s0 + up z), x_ve = x / alpha0 */
  const double cx = a1 * (1 + (down - s0) / s0) / a0, cD = -a1 * (down - s0) / s0,
               cz = dW ? a1 * up / sqrt(fabs(t1 - t0)) : 0.0;
  const double w[2] = {cD, cz}, *b[2] = {D, dW};
  csde_stepper_lincomb(S, x, cx, x, dW ? 2 : 1, w, b);
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_euler_ancestral = {
  .name = "euler-ancestral",
  .summary = "Euler ancestral, V' z noise: reverse SDE, weak order 1",
  .sde = 1, .reverse_only = 1,
  .nfe_per_step = 1, .order_weak = 1.0, /* order_strong 0: not a discretisation of the
                                            SDE's own path */
  .nbuf = 1,
  .view = CSDE_VIEW_SIGMA_START | CSDE_VIEW_ALPHA_START,
  .step = ea_step,
};
