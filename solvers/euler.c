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
 * Milstein correction g g' vanishes; weak order 1; ODE order 1.
 *
 * Adaptive (SDEs, `evolve`, path noise; the controller: src/solve/sde_adapt.c): the step
 * x_em = x + h k1 + g(t0) dW with stochastic Heun as the estimator,
 *   e = x_em - x_heun = h/2 (k1 - f(t1, x_em)) - 1/2 (g(t1) - g(t0)) dW,
 * two evaluations per accepted step. Buffers (adaptive only): 0 = k1, 1 = e, 2 = f(t1, x_em),
 * 3 = x_em, 4 = dW. */
#include "solve/stepper.h"

typedef struct {
  double err_prev; /* the PI controller's memory */
} em_state;

static int em_trial(csde_stepper *S, double t0, double h, const double *x, const double *dW,
                    const double *dH)
{
  (void)dH;
  const double *k1 = csde_stepper_buf(S, 0);
  double *e = csde_stepper_buf(S, 1), *k2 = csde_stepper_buf(S, 2), *xn = csde_stepper_buf(S, 3);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double g0 = csde_stepper_diffusion(S, t0), g1 = csde_stepper_diffusion(S, t0 + h);
  int s = csde_stepper_em_stage(S, t0, h, x, dW, xn, k2); /* x_em, f(t1, x_em) */
  if (s) return s;
  const double hh = 0.5 * h, gd = 0.5 * (g1 - g0);
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) e[i] = hh * (k1[i] - k2[i]) - gd * dW[i];
  return CSDE_SUCCESS;
}

static int em_evolve(csde_stepper *S, double *t, double t1, double *h, double *x)
{
  em_state *st = csde_stepper_state(S);
  return csde_stepper_sde_evolve(S, t, t1, h, x, em_trial, &st->err_prev);
}

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
  .sde = 1, .ode = 1, .own_noise = 1, .adaptive = CSDE_ADAPT_SDE,
  .nfe_per_step = 1, .order_ode = 1.0,
  .order_strong = 1.0, /* additive noise */ .order_weak = 1.0,
  .nbuf_adaptive = 5, .state_size = sizeof(em_state),
  .step = euler_step, .evolve = em_evolve,
};
