/* Euler / Euler-Maruyama (stepper.h): one drift evaluation per step.
 *
 *   x_{n+1} = x_n + f(t_n, x_n) h + g(t_n) dW_n,   h = t_{n+1} - t_n (signed)
 *
 * dW_n = V'(W(t_{n+1}) - W(t_n)) comes from the solve loop (NULL for the ODEs: the plain
 * explicit Euler method). For additive noise (MATH.md, "Orders to expect") the strong
 * order is 1, not 1/2, because the Milstein correction g g' vanishes; weak order 1;
 * ODE order 1. Buffers: 0 = f. */
#include "solve/stepper.h"

static int euler_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                      int last)
{
  (void)last;
  const double h = t1 - t0;
  double *f = csde_stepper_buf(S, 0);
  int s = csde_stepper_drift(S, t0, x, f); /* f = f(t0, x) */
  if (s) return s;
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  if (dW) {
    const double g = csde_stepper_diffusion(S, t0);
    /* x += f h + g(t0) dW */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) x[i] += h * f[i] + g * dW[i];
  } else {
    /* x += f h */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < n; i++) x[i] += h * f[i];
  }
  return 0;
}

const csde_solver_type csde_solver_euler = {
  .name = "euler",
  .alias = "em",
  .sde = 1,
  .ode = 1,
  .adaptive = 0,
  .nfe_per_step = 1,
  .order_ode = 1.0,
  .order_strong = 1.0, /* additive noise */
  .order_weak = 1.0,
  .nbuf = 1,
  .init = NULL,
  .free = NULL,
  .step = euler_step,
  .evolve = NULL,
};
