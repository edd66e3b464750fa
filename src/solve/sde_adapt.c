/* Adaptive SDE steps (stepper.h, csde_stepper_sde_evolve): an embedded pair's error
 * estimate, a PI controller, and the path noise queried for every trial.
 *
 * The pair's trial (the solver's) gives x_new and the embedded difference e = x_new -
 * x_low of one step; here
 *   err = sqrt((1/n) sum_i (e_i / (atol + rtol max(|x_i|, |x_new_i|)))^2),
 * summed per tile of TILE entries in order, then the tiles in order (threads never change a
 * bit of err, so never a step). e is O(|h|^q), q = 3/2 for the pairs here (its noise part
 * (g(t1) - g(t0)) dW); accept when err <= 1, and the next step is (Gustafsson's PI)
 *   h *= clamp(0.9 err^(-0.7/q) err_prev^(0.4/q), 0.2, 5)   (at most 1 after a rejection),
 * a rejection h *= max(0.2, 0.9 err^(-1/q)). A rejected step asks the Brownian tree for W
 * (and H) over the shorter step, the same path, so rejections do not bias the law. The
 * first trial step is the loop's (1/100 of the span). f(t0, x) is evaluated once per
 * accepted step: a rejection costs the trial's other evaluations only. */
#include <math.h>
#include <string.h>

#include "solve/stepper.h"

enum { TILE = 4096 };

int csde_stepper_em_stage(csde_stepper *S, double t0, double h, const double *x, const double *dW,
                          double *xe, double *fe)
{
  const double *k1 = csde_stepper_buf(S, 0);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  const double g0 = csde_stepper_diffusion(S, t0);
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) xe[i] = x[i] + h * k1[i] + g0 * dW[i]; /* x_em */
  return csde_stepper_drift(S, t0 + h, xe, fe);                      /* f(t0 + h, x_em) */
}

/* err of the trial in buffers 1 (e) and 3 (x_new); tile sums go into buffer 2. */
static double error_norm(csde_stepper *S, const double *x)
{
  const csde_solve_params *par = csde_stepper_params(S);
  const double *e = csde_stepper_buf(S, 1), *xn = csde_stepper_buf(S, 3);
  double *part = csde_stepper_buf(S, 2);
  const long n = (long)csde_stepper_n(S), ntile = (n + TILE - 1) / TILE;
  const int th = csde_stepper_threads(S);
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1 && ntile > 1)
#endif
  for (long b = 0; b < ntile; b++) {
    const long i1 = (b + 1) * TILE < n ? (b + 1) * TILE : n;
    double sum = 0;
    for (long i = b * TILE; i < i1; i++) {
      const double sc = par->atol + par->rtol * fmax(fabs(x[i]), fabs(xn[i]));
      sum += (e[i] / sc) * (e[i] / sc);
    }
    part[b * TILE] = sum;
  }
  double sum = 0;
  for (long b = 0; b < ntile; b++) sum += part[b * TILE];
  return sqrt(sum / (double)n);
}

int csde_stepper_sde_evolve(csde_stepper *S, double *t, double t1, double *h, double *x,
                            csde_sde_trial_fn trial, double *err_prev)
{
  const csde_solve_params *par = csde_stepper_params(S);
  const char *name = csde_solver_type_name(csde_stepper_type(S));
  double *k1 = csde_stepper_buf(S, 0), *dW = csde_stepper_buf(S, 4);
  double *dH = csde_stepper_type(S)->area ? csde_stepper_buf(S, 5) : NULL;
  const double t0 = *t, dir = t1 > t0 ? 1.0 : -1.0, q = 1.5;
  if (!(par->rtol > 0 || par->atol > 0))
    return csde_stepper_fail(S, CSDE_EINVAL, "%s: the adaptive mode needs rtol > 0 or atol > 0",
                             name);
  int s = csde_stepper_drift(S, t0, x, k1); /* k1 = f(t0, x), for every trial */
  if (s) return s;
  const double min_step = 10 * fabs(nextafter(t0, dir * INFINITY) - t0);
  double habs = fabs(*h);
  int rejected = 0;
  for (;;) {
    if (habs < min_step)
      return csde_stepper_fail(S, CSDE_EFAILED,
                               "%s cannot reach rtol = %g, atol = %g: step size underflow "
                               "(|h| = %.3g at t = %.17g)",
                               name, par->rtol, par->atol, habs, t0);
    double tn = t0 + dir * habs;
    if (dir * (tn - t1) > 0) tn = t1;
    const double hs = tn - t0;
    if ((s = csde_stepper_noise_area(S, t0, tn, dW, dH))) return s;
    s = trial(S, t0, hs, x, dW, dH);
    if (s == CSDE_ERETRY) { /* the model asked for a smaller step */
      habs = 0.5 * fabs(hs);
      rejected = 1;
      csde_stepper_count(S, 0);
      continue;
    }
    if (s) return s;
    const double err = error_norm(S, x);
    if (!isfinite(err))
      return csde_stepper_fail(S, CSDE_ENAN, "%s: non-finite error estimate at t = %.17g", name,
                               t0);
    if (err <= 1) {
      double fac = err == 0 ? 5.0
                            : 0.9 * pow(err, -0.7 / q) *
                                  (*err_prev > 0 ? pow(*err_prev, 0.4 / q) : 1.0);
      fac = fmin(fmax(fac, 0.2), rejected ? 1.0 : 5.0);
      memcpy(x, csde_stepper_buf(S, 3), csde_stepper_n(S) * sizeof *x);
      *err_prev = fmax(err, 1e-4);
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
