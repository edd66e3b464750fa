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
 * Adaptive (SDEs, `evolve`, path noise): the step above with Euler-Maruyama's
 * x~ - g(t0) dW + g(t0) dW = x + h k1 + g(t0) dW as the embedded lower-order solution,
 *   e = x_new - x_em = h/2 (k2 - k1) + 1/2 (g(t1) - g(t0)) dW,
 *   err = sqrt((1/n) sum_i (e_i / (atol + rtol max(|x_i|, |x_new_i|)))^2),
 * e = O(|h|^(3/2)) (its noise part); accept when err <= 1, and choose the next step by a
 * PI controller (Gustafsson) on that order, q = 3/2:
 *   h *= clamp(0.9 err^(-0.7/q) err_prev^(0.4/q), 0.2, 5)   (at most 1 after a rejection).
 * A rejected step asks the Brownian tree for W over the shorter step: the same path
 * (csde_stepper_noise), so rejections do not bias the law. The first trial step is 1/100
 * of the span (the loop's).
 *
 * Buffers: 0 = k1, 1 = x~, 2 = k2; adaptive: 3 = x_new, 4 = the trial's dW. */
#include <math.h>
#include <string.h>

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

/* err of a trial step t0 -> t0 + h from x (k1 = f(t0, x) given): x_new in buffer 3. */
static int trial(csde_stepper *S, double t0, double h, const double *x, const double *k1,
                 const double *dW, double *err)
{
  const csde_solve_params *par = csde_stepper_params(S);
  double *xt = csde_stepper_buf(S, 1), *k2 = csde_stepper_buf(S, 2),
         *xn = csde_stepper_buf(S, 3);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double t1 = t0 + h, g0 = csde_stepper_diffusion(S, t0), g1 = csde_stepper_diffusion(S, t1);
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) xt[i] = x[i] + h * k1[i] + g0 * dW[i];
  int s = csde_stepper_drift(S, t1, xt, k2); /* k2 = f(t1, x~) */
  if (s) return s;
  const double hh = 0.5 * h, gm = 0.5 * (g0 + g1), gd = 0.5 * (g1 - g0);
  /* per tile of TILE entries, in order, the sum of (e / sc)^2 into xt[tile start] (x~ is
   * spent); then the tiles in order: threads never change a bit of err */
  enum { TILE = 4096 };
  const long ntile = (n + TILE - 1) / TILE;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long b = 0; b < ntile; b++) {
    const long i1 = (b + 1) * TILE < n ? (b + 1) * TILE : n;
    double sum = 0;
    for (long i = b * TILE; i < i1; i++) {
      /* x_new = x + h/2 (k1 + k2) + gm dW;  e = h/2 (k2 - k1) + gd dW */
      xn[i] = x[i] + hh * (k1[i] + k2[i]) + gm * dW[i];
      const double e = hh * (k2[i] - k1[i]) + gd * dW[i];
      const double sc = par->atol + par->rtol * fmax(fabs(x[i]), fabs(xn[i]));
      sum += (e / sc) * (e / sc);
    }
    xt[b * TILE] = sum;
  }
  double sum = 0;
  for (long b = 0; b < ntile; b++) sum += xt[b * TILE];
  *err = sqrt(sum / (double)n);
  return isfinite(*err) ? CSDE_SUCCESS
                        : csde_stepper_fail(S, CSDE_ENAN, "heun: non-finite error estimate at t = %g",
                                            t0);
}

static int heun_evolve(csde_stepper *S, double *t, double t1, double *h, double *x)
{
  heun_state *st = csde_stepper_state(S);
  const csde_solve_params *par = csde_stepper_params(S);
  double *k1 = csde_stepper_buf(S, 0), *w = csde_stepper_buf(S, 4); /* w: the trial's dW */
  const double t0 = *t, dir = t1 > t0 ? 1.0 : -1.0, q = 1.5;
  if (!(par->rtol > 0 || par->atol > 0))
    return csde_stepper_fail(S, CSDE_EINVAL, "heun: the adaptive mode needs rtol > 0 or atol > 0");
  int s = csde_stepper_drift(S, t0, x, k1); /* k1 = f(t0, x), for every trial */
  if (s) return s;
  const double min_step = 10 * fabs(nextafter(t0, dir * INFINITY) - t0);
  double habs = fabs(*h);
  int rejected = 0;
  for (;;) {
    if (habs < min_step)
      return csde_stepper_fail(S, CSDE_EFAILED,
                               "heun cannot reach rtol = %g, atol = %g: step size underflow "
                               "(|h| = %.3g at t = %.17g)",
                               par->rtol, par->atol, habs, t0);
    double tn = t0 + dir * habs;
    if (dir * (tn - t1) > 0) tn = t1;
    const double hs = tn - t0;
    double err;
    if ((s = csde_stepper_noise(S, t0, tn, w))) return s;
    s = trial(S, t0, hs, x, k1, w, &err);
    if (s == CSDE_ERETRY) { /* the model asked for a smaller step */
      habs = 0.5 * fabs(hs);
      rejected = 1;
      csde_stepper_count(S, 0);
      continue;
    }
    if (s) return s;
    if (err <= 1) {
      double fac = err == 0 ? 5.0
                            : 0.9 * pow(err, -0.7 / q) *
                                  (st->err_prev > 0 ? pow(st->err_prev, 0.4 / q) : 1.0);
      fac = fmin(fmax(fac, 0.2), rejected ? 1.0 : 5.0);
      memcpy(x, csde_stepper_buf(S, 3), csde_stepper_n(S) * sizeof *x);
      st->err_prev = fmax(err, 1e-4);
      csde_stepper_count(S, 1);
      csde_stepper_fail(S, CSDE_SUCCESS, "%s", ""); /* clear a retry record */
      *t = tn;
      *h = dir * fabs(hs) * fac;
      return CSDE_SUCCESS;
    }
    habs = fabs(hs) * fmax(0.2, 0.9 * pow(err, -1.0 / q));
    rejected = 1;
    csde_stepper_count(S, 0);
  }
}

const csde_solver_type csde_solver_heun = {
  .name = "heun",
  .alias = NULL,
  .summary = "Heun: SDEs (strong order 1, weak 2) and ODEs (order 2)",
  .sde = 1,
  .ode = 1,
  .adaptive = CSDE_ADAPT_SDE,
  .nfe_per_step = 2, /* 1 on the last step with heun_final_euler */
  .order_ode = 2.0,
  .order_strong = 1.0, /* additive noise */
  .order_weak = 2.0,   /* with the averaged diffusion */
  .nbuf = 5,
  .state_size = sizeof(heun_state),
  .step = heun_step,
  .evolve = heun_evolve,
};
