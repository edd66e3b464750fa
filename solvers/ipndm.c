/* iPNDM (stepper.h; Zhang & Chen 2023, "improved PNDM", in its variable-step form): the
 * Adams-Bashforth method of order up to 4 on the PF-ODE in the coordinates where it has no
 * linear part, one model evaluation per step.
 *
 * With y = x / alpha and rho = sigma / alpha (x = alpha (x0 + rho delta), delta ~ N(0, C)
 * along the frames), the PF-ODE reads dy/drho = eps(y, rho) = (y - x0_theta) / rho, the
 * model's correlated noise prediction delta_theta (docs/MATH.md, "The denoiser view"); C
 * enters only through the model. A step rho0 -> rho1 integrates the polynomial through
 * the last q values eps_j at rho_j (j = 0 this step, 1, 2, 3 the steps before):
 *   y1 = y0 + sum_j b_j eps_j,  b_j = int_rho0^rho1 prod_{m != j} (r - rho_m) / (rho_j - rho_m) dr,
 * x1 = alpha1 y1; on equal steps b = h (55, -59, 37, -9) / 24 at q = 4, PNDM's weights.
 * The integrals are exact by 3-point Gauss-Legendre (degree <= 5). q grows 1, 2, 3, 4 over
 * the first steps (iPNDM's start; the start's local errors are small where the noise
 * dominates) and, below CSDE_IPNDM_LOWER_FINAL steps, falls on the last ones the same way
 * (DPM-Solver's lower_order_final). Order 4.
 *
 * Buffers 0..3 hold the last four eps, by turns. */
#include <math.h>

#include "solve/stepper.h"

#define CSDE_IPNDM_Q 4
#define CSDE_IPNDM_LOWER_FINAL 15

typedef struct {
  size_t k;                /* steps taken in this run */
  int have;                /* eps kept from earlier steps (0 .. 3) */
  unsigned cur;            /* the buffer this step's eps goes into */
  double rho[CSDE_IPNDM_Q]; /* rho[j]: the node of the eps j steps back (rho[0] this step) */
} ipndm_state;

/* b[j] = int_a^b L_j(r) dr for the Lagrange basis on the q nodes rho[0..q-1]. */
static void ab_weights(const double *rho, int q, double a, double b, double *w)
{
  static const double gx[3] = {-0.7745966692414833770, 0.0, 0.7745966692414833770},
                      gw[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};
  const double mid = 0.5 * (a + b), half = 0.5 * (b - a);
  for (int j = 0; j < q; j++) {
    double s = 0;
    for (int g = 0; g < 3; g++) {
      double r = mid + half * gx[g], l = 1;
      for (int m = 0; m < q; m++)
        if (m != j) l *= (r - rho[m]) / (rho[j] - rho[m]);
      s += gw[g] * l;
    }
    w[j] = half * s;
  }
}

static int ipndm_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                      int last)
{
  (void)dW;
  (void)last;
  ipndm_state *st = csde_stepper_state(S);
  const size_t N = csde_stepper_params(S)->steps;
  int q = st->have + 1; /* the order of this step: what the history allows */
  if (N < CSDE_IPNDM_LOWER_FINAL && N > st->k && (size_t)q > N - st->k)
    q = (int)(N - st->k); /* ... and near the end of a short run what is left */
  double *E[CSDE_IPNDM_Q];
  for (unsigned j = 0; j < CSDE_IPNDM_Q; j++)
    E[j] = csde_stepper_buf(S, (st->cur + CSDE_IPNDM_Q - j) % CSDE_IPNDM_Q);
  double a0, s0, l0, a1, s1, l1;
  csde_stepper_view(S, t0, &a0, &s0, &l0);
  csde_stepper_view(S, t1, &a1, &s1, &l1);
  const double r0 = s0 / a0, r1 = s1 / a1;
  int s = csde_stepper_denoise(S, t0, x, E[0]); /* x0_theta(x, t0) */
  if (s) return s;
  /* eps = (x / alpha0 - x0_theta) / rho0 */
  const double ce = 1 / (a0 * r0), cd = -1 / r0, *e[4] = {E[0], E[1], E[2], E[3]};
  csde_stepper_lincomb(S, E[0], ce, x, 1, &cd, e);
  for (int j = CSDE_IPNDM_Q - 1; j > 0; j--) st->rho[j] = st->rho[j - 1];
  st->rho[0] = r0;
  double b[CSDE_IPNDM_Q] = {0};
  ab_weights(st->rho, q, r0, r1, b);
  /* x1 = alpha1 (x / alpha0 + sum_j b_j eps_j) */
  const double cx = a1 / a0, w[4] = {a1 * b[0], a1 * b[1], a1 * b[2], a1 * b[3]};
  for (int j = q; j < CSDE_IPNDM_Q; j++) e[j] = E[0]; /* unused terms: e0 with weight 0 */
  csde_stepper_lincomb(S, x, cx, x, CSDE_IPNDM_Q, w, e);
  if (st->have < CSDE_IPNDM_Q - 1) st->have++;
  st->k++;
  st->cur = (st->cur + 1) % CSDE_IPNDM_Q;
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_ipndm = {
  .name = "ipndm",
  .summary = "iPNDM: Adams-Bashforth 4 in sigma/alpha, PF-ODE, for few steps",
  .ode = 1,
  .nfe_per_step = 1, .order_ode = 4.0,
  .nbuf = CSDE_IPNDM_Q, .state_size = sizeof(ipndm_state),
  .view = CSDE_VIEW_SIGMA_START | CSDE_VIEW_ALPHA_START | CSDE_VIEW_ALPHA_END,
  .step = ipndm_step,
};
