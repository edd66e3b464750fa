/* SRA1 (stepper.h; Rossler 2010): the stochastic Runge-Kutta method of strong order 1.5
 * for additive noise g(t) V' dW, two drift evaluations per step, using the space-time
 * Levy area of the step's Brownian increment.
 *
 * With J = I_(1,0) / |h| = dW / 2 + dH (I_(1,0) = int (W_s - W_t0) ds, dH = V' H the
 * loop's Levy area, in the path time of the noise, noise.h), on a step t0 -> t1 of signed
 * h (the reverse SDE runs backwards in t; its path time runs forwards):
 *   k1 = f(t0, x),  x~ = x + 3/4 h k1 + 3/2 g(t1) J,  k2 = f(t0 + 3/4 h, x~),
 *   x_new = x + h (k1 / 3 + 2 k2 / 3) + g(t1) (dW - J) + g(t0) J
 * (Rossler's SRA1 tableau: c0 = (0, 3/4), c1 = (1, 0), A0_21 = 3/4, B0_21 = 3/2,
 * alpha = (1/3, 2/3), beta1 = (1, 0), beta2 = (-1, 1)). For constant g the noise term is
 * g dW; the J terms carry the change of g(t) = sqrt(beta(t)) across the step. Strong
 * order 1.5, weak order 2. --noise path gives H of the Brownian tree's own steps, so the
 * levels of a convergence study share dW and H; streaming noise draws H fresh.
 *
 * Adaptive (SDEs, `evolve`, path noise, whose tree gives H of any step; the controller:
 * src/solve/sde_adapt.c): Euler-Maruyama embedded,
 *   e = x_new - (x + h k1 + g(t0) dW) = 2h/3 (k2 - k1) + (g(t1) - g(t0)) (dW/2 - dH),
 * O(|h|^(3/2)): the controller holds the lower order's error (the step keeps SRA1's).
 *
 * Buffers: 0 = k1, 1 = x~ (adaptive: then e), 2 = k2; adaptive: 3 = x_new, 4 = dW, 5 = dH. */
#include "solve/stepper.h"

typedef struct {
  double err_prev; /* the PI controller's memory */
} sra1_state;

/* x~ = x + 3/4 h k1 + 3/2 g(t1) (dW/2 + dH), k2 = f(t0 + 3/4 h, x~) (buffers 1, 2). */
static int stage2(csde_stepper *S, double t0, double h, const double *x, const double *k1,
                  const double *dW, const double *dH, double g1)
{
  double *xt = csde_stepper_buf(S, 1), *k2 = csde_stepper_buf(S, 2);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double a = 0.75 * h, b = 1.5 * g1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) xt[i] = x[i] + a * k1[i] + b * (0.5 * dW[i] + dH[i]);
  return csde_stepper_drift(S, t0 + 0.75 * h, xt, k2); /* k2 = f(t0 + 3/4 h, x~) */
}

static int sra1_trial(csde_stepper *S, double t0, double h, const double *x, const double *dW,
                      const double *dH)
{
  const double *k1 = csde_stepper_buf(S, 0), *k2 = csde_stepper_buf(S, 2);
  double *e = csde_stepper_buf(S, 1), *xn = csde_stepper_buf(S, 3);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double g0 = csde_stepper_diffusion(S, t0), g1 = csde_stepper_diffusion(S, t0 + h);
  int s = stage2(S, t0, h, x, k1, dW, dH, g1);
  if (s) return s;
  const double c = h / 3, cw = 0.5 * (g0 + g1), ch = g0 - g1, gd = g1 - g0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) {
    xn[i] = x[i] + c * (k1[i] + 2 * k2[i]) + cw * dW[i] + ch * dH[i];
    e[i] = 2 * c * (k2[i] - k1[i]) + gd * (0.5 * dW[i] - dH[i]);
  }
  return CSDE_SUCCESS;
}

static int sra1_evolve(csde_stepper *S, double *t, double t1, double *h, double *x)
{
  sra1_state *st = csde_stepper_state(S);
  return csde_stepper_sde_evolve(S, t, t1, h, x, sra1_trial, &st->err_prev);
}

static int sra1_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                     int last)
{
  (void)last;
  const double h = t1 - t0;
  const double *dH = csde_stepper_area(S);
  double *k1 = csde_stepper_buf(S, 0), *k2 = csde_stepper_buf(S, 2);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  if (!dW || !dH) return csde_stepper_fail(S, CSDE_EINVAL, "sra1: an SDE step without dW and H");
  int s = csde_stepper_drift(S, t0, x, k1); /* k1 = f(t0, x) */
  if (s) return s;
  const double g0 = csde_stepper_diffusion(S, t0), g1 = csde_stepper_diffusion(S, t1);
  if ((s = stage2(S, t0, h, x, k1, dW, dH, g1))) return s;
  /* x += h (k1 + 2 k2) / 3 + g1 (dW/2 - dH) + g0 (dW/2 + dH) */
  const double c = h / 3, cw = 0.5 * (g0 + g1), ch = g0 - g1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) x[i] += c * (k1[i] + 2 * k2[i]) + cw * dW[i] + ch * dH[i];
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_sra1 = {
  .name = "sra1",
  .summary = "Rossler's SRA1: SDEs with additive noise, strong order 1.5 (uses H)",
  .sde = 1, .area = 1, .adaptive = CSDE_ADAPT_SDE,
  .nfe_per_step = 2, .order_strong = 1.5, .order_weak = 2.0,
  .nbuf = 3, .nbuf_adaptive = 6, .state_size = sizeof(sra1_state),
  .step = sra1_step, .evolve = sra1_evolve,
};
