/* DPM-Solver++(3M) (stepper.h): the third-order multistep exponential integrator of the
 * PF-ODE in data prediction, one model evaluation per step (dpmpp2m.c has the setting).
 *
 * In lambda = log(alpha / sigma) the exact step t0 -> t1, h = lambda1 - lambda0, is
 *   x1 = (sigma1 / sigma0) x + alpha1 int_0^h e^(u - h) x0_theta(lambda0 + u) du,
 * and x0_theta is expanded around lambda0 as D0 + u D' + u^2/2 D'', which gives
 *   x1 = (sigma1 / sigma0) x + alpha1 (phi1 D0 + phi2 (h D') - phi3 (h^2 D'')),
 *   phi1 = 1 - e^-h,  phi2 = 1 - phi1 / h,  phi3 = phi2 / h - 1/2
 * (the integrals of e^(u-h) times 1, u/h and u^2/(2 h^2); -phi3 is the last). The
 * derivatives come from the predictions D1, D2 of the last two steps (lambda steps h1,
 * h2 before this one), with r0 = h1 / h, r1 = h2 / h:
 *   d0 = (D0 - D1) / r0,  d1 = (D1 - D2) / r1,
 *   h D'   = d0 + (d0 - d1) r0 / (r0 + r1),   h^2 D'' = 2 (d0 - d1) / (r0 + r1).
 * The first step uses D0 alone (DDIM), the second D0 and D1 (h D' = (D0 - D1) / r0).
 * Below 15 steps the last two steps lower the order the same way, to 2 and then 1
 * (DPM-Solver's lower_order_final). The DDIM first step's local error, h^2/2 dD/dlambda
 * at T, bounds the global order by 2; dD/dlambda at T is about e^(2 lambda_T) (1e-4 at
 * sigma/alpha = 80), so order 3 holds up to N ~ 1000 steps and order 2 beyond
 * (tests/test_paths_proc.c, check_dpmpp3m_start).
 *
 * Buffers 0, 1, 2 hold the last three predictions, by turns. */
#include <math.h>

#include "solve/stepper.h"

typedef struct {
  size_t k;      /* steps taken in this run */
  int have;      /* predictions kept from earlier steps (0, 1 or 2) */
  unsigned cur;  /* the buffer this step's prediction goes into */
  double h1, h2; /* lambda steps of the last step and the one before */
} dpm3_state;

static int dpm3_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                     int last)
{
  (void)dW;
  (void)last;
  dpm3_state *st = csde_stepper_state(S);
  /* the order of this step, less one: what the history allows, and near the end of a
   * short run what is left */
  const size_t N = csde_stepper_params(S)->steps;
  int use = st->have;
  if (N < 15 && N > st->k && (size_t)use > N - st->k - 1) use = (int)(N - st->k - 1);
  double *D0 = csde_stepper_buf(S, st->cur), *D1 = csde_stepper_buf(S, (st->cur + 2) % 3),
         *D2 = csde_stepper_buf(S, (st->cur + 1) % 3);
  double a0, s0, l0, a1, s1, l1;
  csde_stepper_view(S, t0, &a0, &s0, &l0);
  csde_stepper_view(S, t1, &a1, &s1, &l1);
  int s = csde_stepper_denoise(S, t0, x, D0); /* D0 = x0_theta(x, t0) */
  if (s) return s;
  const double h = l1 - l0, cx = s1 / s0, p1 = -expm1(-h), p2 = 1 - p1 / h,
               p3 = p2 / h - 0.5;
  /* x1 = cx x + w0 D0 + w1 D1 + w2 D2: the weights of the D's in the formula above */
  double w0 = a1 * p1, w1 = 0, w2 = 0;
  if (use == 1) { /* h D' = (D0 - D1) / r0 */
    const double r0 = st->h1 / h, c = a1 * p2 / r0;
    w0 += c;
    w1 -= c;
  } else if (use == 2) {
    const double r0 = st->h1 / h, r1 = st->h2 / h;
    /* h D' = (1 + r0/(r0+r1)) d0 - r0/(r0+r1) d1;  h^2 D'' = 2 (d0 - d1) / (r0 + r1) */
    const double f = r0 / (r0 + r1), e0 = a1 * (p2 * (1 + f) - 2 * p3 / (r0 + r1)),
                 e1 = a1 * (-p2 * f + 2 * p3 / (r0 + r1)); /* coefficients of d0, d1 */
    w0 += e0 / r0;
    w1 += -e0 / r0 + e1 / r1;
    w2 += -e1 / r1;
  }
  /* (buffers not yet written are not read: 0 times garbage need not be 0) */
  const double w[3] = {w0, w1, w2}, *b[3] = {D0, D1, D2};
  csde_stepper_lincomb(S, x, cx, x, (unsigned)use + 1, w, b);
  if (st->have < 2) st->have++;
  st->k++;
  st->cur = (st->cur + 1) % 3;
  st->h2 = st->h1;
  st->h1 = h;
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_dpmpp3m = {
  .name = "dpmpp3m",
  .summary = "DPM-Solver++(3M): PF-ODE, order 3, for few steps",
  .ode = 1,
  .nfe_per_step = 1, .order_ode = 3.0,
  .nbuf = 3, .state_size = sizeof(dpm3_state),
  .view = CSDE_VIEW_LAMBDA,
  .step = dpm3_step,
};
