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
 * Adaptive (SDEs, `evolve`, path noise; the controller: src/solve/sde_adapt.c): the step
 * above with Euler-Maruyama x~ = x + h k1 + g(t0) dW embedded,
 *   e = x_new - x~ = h/2 (k2 - k1) + 1/2 (g(t1) - g(t0)) dW = O(|h|^(3/2)).
 *
 * Buffers: 0 = k1, 1 = x~ (adaptive: then e), 2 = k2; adaptive: 3 = x_new, 4 = dW. */
#include "solve/stepper.h"

typedef struct {
  double err_prev; /* the last accepted step's error (PI controller); 0: none yet */
} heun_state;

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

/* The adaptive trial (sde_adapt.c): x_new = the Heun step, e = x_new - x_em. */
static int heun_trial(csde_stepper *S, double t0, double h, const double *x, const double *dW,
                      const double *dH)
{
  (void)dH;
  const double *k1 = csde_stepper_buf(S, 0);
  double *xt = csde_stepper_buf(S, 1), *k2 = csde_stepper_buf(S, 2), *xn = csde_stepper_buf(S, 3);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double t1 = t0 + h, g0 = csde_stepper_diffusion(S, t0), g1 = csde_stepper_diffusion(S, t1);
  int s = csde_stepper_em_stage(S, t0, h, x, dW, xt, k2); /* x~ = x_em, k2 = f(t1, x~) */
  if (s) return s;
  const double hh = 0.5 * h, gm = 0.5 * (g0 + g1), gd = 0.5 * (g1 - g0);
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) {
    /* x_new = x + h/2 (k1 + k2) + gm dW;  e = h/2 (k2 - k1) + gd dW (into x~'s place) */
    xn[i] = x[i] + hh * (k1[i] + k2[i]) + gm * dW[i];
    xt[i] = hh * (k2[i] - k1[i]) + gd * dW[i];
  }
  return CSDE_SUCCESS;
}

static int heun_evolve(csde_stepper *S, double *t, double t1, double *h, double *x)
{
  heun_state *st = csde_stepper_state(S);
  return csde_stepper_sde_evolve(S, t, t1, h, x, heun_trial, &st->err_prev);
}

const csde_solver_type csde_solver_heun = {
  .name = "heun",
  .summary = "Heun: SDEs (strong order 1, weak 2) and ODEs (order 2)",
  .sde = 1, .ode = 1, .adaptive = CSDE_ADAPT_SDE,
  .nfe_per_step = 2, /* 1 on the last step with heun_final_euler */
  .order_ode = 2.0, .order_strong = 1.0, .order_weak = 2.0, /* strong: additive noise; weak:
                                                                with the averaged diffusion */
  .nbuf = 3, .nbuf_adaptive = 5, .state_size = sizeof(heun_state),
  .step = heun_step, .evolve = heun_evolve,
};
