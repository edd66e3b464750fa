/* DPM-Solver++(2M) (stepper.h): the multistep exponential integrator of the PF-ODE in
 * data prediction (Lu et al. 2022), one model evaluation per step.
 *
 * With x = alpha x0 + sigma delta (alpha = sqrt(abar), sigma = sqrt(1 - abar), delta ~
 * N(0, C) along the frames) and lambda = log(alpha / sigma), the PF-ODE
 * dx/dt = -1/2 beta (x + C grad log p) reads dx/dlambda = (dsigma/dlambda / sigma) x +
 * alpha x0_theta(x): its linear part is integrated exactly, and C enters only through
 * the model (the derivation: docs/MATH.md, "Exponential integrators"). A step t0 -> t1,
 * h = lambda1 - lambda0:
 *   x1 = (sigma1 / sigma0) x - alpha1 (e^-h - 1) D,
 *   D  = x0_theta(x, t0)                                     (first step: DDIM),
 *   D  = (1 + 1/(2r)) x0_theta(x, t0) - 1/(2r) x0_prev,  r = h_prev / h   (after),
 * x0_prev the data prediction of the step before. Order 2 on any grid (the ODE's order;
 * the first step's local error is O(h^2)). Below CSDE_DPM_LOWER_FINAL steps the last step
 * is first order too (DPM-Solver's lower_order_final: with few steps the last one is
 * long in lambda, and extrapolating over it is what goes wrong).
 *
 * Buffers: 0 and 1 hold the data predictions of this step and the last one, by turns. */
#include <math.h>

#include "solve/stepper.h"

#define CSDE_DPM_LOWER_FINAL 15

typedef struct {
  int have;      /* a previous prediction exists (0 at the start of a run) */
  unsigned cur;  /* the buffer this step's prediction goes into */
  double h_prev; /* lambda step of the step before */
} dpm_state;

static int dpm_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                    int last)
{
  (void)dW;
  dpm_state *st = csde_stepper_state(S);
  const int lower = last && csde_stepper_params(S)->steps < CSDE_DPM_LOWER_FINAL;
  double *d = csde_stepper_buf(S, st->cur), *dp = csde_stepper_buf(S, st->cur ^ 1u);
  double a0, s0, l0, a1, s1, l1;
  csde_stepper_view(S, t0, &a0, &s0, &l0);
  csde_stepper_view(S, t1, &a1, &s1, &l1);
  int s = csde_stepper_denoise(S, t0, x, d); /* d = x0_theta(x, t0) */
  if (s) return s;
  const double h = l1 - l0, cx = s1 / s0, cd = -a1 * expm1(-h);
  const double *b[2] = {d, dp};
  if (!st->have || lower) {
    /* x = (sigma1 / sigma0) x + alpha1 (1 - e^-h) d */
    csde_stepper_lincomb(S, x, cx, x, 1, &cd, b);
  } else {
    /* x = (sigma1 / sigma0) x + alpha1 (1 - e^-h) ((1 + 1/(2r)) d - 1/(2r) dp) */
    const double r = st->h_prev / h, w[2] = {cd * (1 + 0.5 / r), -cd * 0.5 / r};
    csde_stepper_lincomb(S, x, cx, x, 2, w, b);
  }
  st->have = 1;
  st->cur ^= 1u;
  st->h_prev = h;
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_dpmpp2m = {
  .name = "dpmpp2m",
  .summary = "DPM-Solver++(2M): PF-ODE, order 2, for few steps",
  .ode = 1,
  .nfe_per_step = 1, .order_ode = 2.0,
  .nbuf = 2, .state_size = sizeof(dpm_state),
  .view = CSDE_VIEW_LAMBDA,
  .step = dpm_step,
};
