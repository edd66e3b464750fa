/* DPM-Solver++(2M) SDE (stepper.h; Lu et al. 2022, the midpoint form of k-diffusion's
 * sample_dpmpp_2m_sde with eta = 1): a sampler of the reverse SDE's law in data
 * prediction, one model evaluation per step, its fresh noise V' z.
 *
 * The reverse SDE in lambda (docs/MATH.md, "Exponential integrators") has the exact
 * linear part x -> (sigma1 / sigma0) e^-h x, h = lambda1 - lambda0, and the noise
 * sigma1 sqrt(1 - e^(-2h)) z. A step:
 *   x1 = (sigma1 / sigma0) e^-h x + alpha1 (1 - e^(-2h)) D
 *        + sigma1 sqrt(1 - e^(-2h)) V' z,
 *   D  = D0 + (D0 - D_prev) / (2 r),  r = h_prev / h   (D0 alone on the first step and
 *        the last: the last is long in lambda, and extrapolating over it amplifies the
 *        noise of the step before; with it the 16-step weak error on the uniform grid
 *        was 2.6, without it 0.24)
 * with z the loop's coloured increment divided by sqrt(|t1 - t0|), so that --noise path
 * gives one Brownian path for every step count.
 *
 * Buffers 0 and 1 hold the predictions of this step and the last one, by turns. */
#include <math.h>

#include "solve/stepper.h"

typedef struct {
  int have;
  unsigned cur;
  double h_prev;
} sde2m_state;

static int sde2m_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                      int last)
{
  sde2m_state *st = csde_stepper_state(S);
  double *d = csde_stepper_buf(S, st->cur), *dp = csde_stepper_buf(S, st->cur ^ 1u);
  double a0, s0, l0, a1, s1, l1;
  csde_stepper_view(S, t0, &a0, &s0, &l0);
  csde_stepper_view(S, t1, &a1, &s1, &l1);
  int s = csde_stepper_denoise(S, t0, x, d);
  if (s) return s;
  const double h = l1 - l0, cx = s1 / s0 * exp(-h), cd = -a1 * expm1(-2 * h);
  const double cz = dW ? s1 * sqrt(-expm1(-2 * h)) / sqrt(fabs(t1 - t0)) : 0.0;
  const int lower = !st->have || last;
  const double r = st->have ? st->h_prev / h : 1.0, c1 = lower ? cd : cd * (1 + 0.5 / r),
               c2 = lower ? 0.0 : -cd * 0.5 / r;
  /* x = cx x + c1 d [+ c2 dp] [+ cz dW] (the terms left to right) */
  const double w[3] = {c1, lower ? cz : c2, cz}, *b[3] = {d, lower ? dW : dp, dW};
  csde_stepper_lincomb(S, x, cx, x, (lower ? 1u : 2u) + (dW ? 1u : 0u), w, b);
  st->have = 1;
  st->cur ^= 1u;
  st->h_prev = h;
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_dpmpp2m_sde = {
  .name = "dpmpp2m-sde",
  .summary = "DPM-Solver++(2M) SDE, V' z noise: reverse SDE, weak order 1",
  .sde = 1, .reverse_only = 1,
  .nfe_per_step = 1, .order_weak = 1.0,
  .nbuf = 2, .state_size = sizeof(sde2m_state),
  .view = CSDE_VIEW_SIGMA_START | CSDE_VIEW_ALPHA_START,
  .step = sde2m_step,
};
