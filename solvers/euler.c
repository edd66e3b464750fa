/* Euler / Euler-Maruyama (stepper.h): one drift evaluation per step.
 *
 *   x_{n+1} = x_n + f(t_n, x_n) h + g(t_n) dW_n,   h = t_{n+1} - t_n (signed)
 *
 * With the drift written f = cx x + cs src (the process's affine form of the model's
 * output), the whole update is one pass, x <- (1 + h cx) x + h cs src + g dW, in which
 * the noise dW_n = V'(W(t_{n+1}) - W(t_n)) is drawn and coloured tile by tile
 * (csde_stepper_advance): the state is read and written once per step, and no f or dW
 * array exists. For the ODEs (no noise) it is the plain explicit Euler method. For
 * additive noise (MATH.md, "Orders to expect") the strong order is 1, not 1/2, because the
 * Milstein correction g g' vanishes; weak order 1; ODE order 1. */
#include "solve/stepper.h"

static int euler_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                      int last)
{
  (void)dW; /* own_noise: always NULL */
  (void)last;
  const double h = t1 - t0;
  double cx, cs;
  const double *src;
  int s = csde_stepper_drift_parts(S, t0, x, &cx, &cs, &src); /* f = cx x + cs src */
  if (s) return s;
  /* x += h f + g(t0) dW */
  return csde_stepper_advance(S, t0, t1, x, 1.0 + h * cx, h * cs, src);
}

const csde_solver_type csde_solver_euler = {
  .name = "euler",
  .alias = "em",
  .summary = "Euler-Maruyama (em) / Euler: SDEs and ODEs, order 1",
  .sde = 1,
  .ode = 1,
  .adaptive = 0,
  .nfe_per_step = 1,
  .order_ode = 1.0,
  .order_strong = 1.0, /* additive noise */
  .order_weak = 1.0,
  .nbuf = 0,
  .own_noise = 1,
  .init = NULL,
  .free = NULL,
  .step = euler_step,
  .evolve = NULL,
};
