/* Heun (stepper.h): the explicit trapezoid rule, two drift evaluations per step.
 *
 * ODE (order 2):
 *   k1 = f(t0, x),  k2 = f(t1, x + h k1),  x_new = x + h/2 (k1 + k2)
 * With params->heun_final_euler the last step is a plain Euler step x + h k1 (EDM's
 * sampler: the final correction at the data end costs an evaluation for little gain).
 *
 * SDE, stochastic Heun for additive noise g(t) dW (strong order 1, weak order 2):
 *   x~    = x + f(t0, x) h + g(t0) dW
 *   x_new = x + h/2 (f(t0, x) + f(t1, x~)) + 1/2 (g(t0) + g(t1)) dW
 * with the same dW in both lines. The diffusion is averaged over the two ends of the
 * step: g depends on t through beta(t), and with g(t0) dW alone the weak order drops to 1
 * (MATH.md, "Orders to expect").
 *
 * Buffers: 0 = k1, 1 = x~, 2 = k2. */
#include "solve/stepper.h"

static int heun_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                     int last)
{
  const double h = t1 - t0;
  double *k1 = csde_stepper_buf(S, 0), *xt = csde_stepper_buf(S, 1),
         *k2 = csde_stepper_buf(S, 2);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  int s = csde_stepper_drift(S, t0, x, k1); /* k1 = f(t0, x) */
  if (s) return s;

  if (!dW && last && csde_stepper_params(S)->heun_final_euler) {
    /* x += h k1: a plain Euler step */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) x[i] += h * k1[i];
    return 0;
  }

  const double g0 = dW ? csde_stepper_diffusion(S, t0) : 0.0;
  if (dW) {
    /* x~ = x + h k1 + g(t0) dW */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) xt[i] = x[i] + h * k1[i] + g0 * dW[i];
  } else {
    /* x~ = x + h k1 */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) xt[i] = x[i] + h * k1[i];
  }

  s = csde_stepper_drift(S, t1, xt, k2); /* k2 = f(t1, x~) */
  if (s) return s;

  const double hh = 0.5 * h;
  if (dW) {
    const double gm = 0.5 * (g0 + csde_stepper_diffusion(S, t1));
    /* x += h/2 (k1 + k2) + 1/2 (g(t0) + g(t1)) dW */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) x[i] += hh * (k1[i] + k2[i]) + gm * dW[i];
  } else {
    /* x += h/2 (k1 + k2) */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) x[i] += hh * (k1[i] + k2[i]);
  }
  return 0;
}

const csde_solver_type csde_solver_heun = {
  .name = "heun",
  .alias = NULL,
  .summary = "Heun: SDEs (strong order 1, weak 2) and ODEs (order 2)",
  .sde = 1,
  .ode = 1,
  .adaptive = 0,
  .nfe_per_step = 2, /* 1 on the last step with heun_final_euler */
  .order_ode = 2.0,
  .order_strong = 1.0, /* additive noise */
  .order_weak = 2.0,   /* with the averaged diffusion */
  .nbuf = 3,
  .init = NULL,
  .free = NULL,
  .step = heun_step,
  .evolve = NULL,
};
