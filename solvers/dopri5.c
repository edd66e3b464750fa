/* Dormand-Prince 5(4) with FSAL, for the ODEs (stepper.h): the method of scipy's
 * solve_ivp(RK45), torchdiffeq's dopri5 and score_sde's ODE sampler.
 *
 * Tableau (Dormand & Prince 1980; Hairer, Norsett & Wanner I, Table II.5.2):
 *   c = 0, 1/5, 3/10, 4/5, 8/9, 1, 1
 *   a2 = 1/5
 *   a3 = 3/40, 9/40
 *   a4 = 44/45, -56/15, 32/9
 *   a5 = 19372/6561, -25360/2187, 64448/6561, -212/729
 *   a6 = 9017/3168, -355/33, 46732/5247, 49/176, -5103/18656
 *   a7 = b = 35/384, 0, 500/1113, 125/192, -2187/6784, 11/84      (5th order, propagated)
 *   e = b - b^ = 71/57600, 0, -71/16695, 71/1920, -17253/339200, 22/525, -1/40
 * Stage 7 is evaluated at (t + h, y_new), so its k is the next step's k1 (FSAL): 6 model
 * evaluations per attempt.
 *
 * Adaptive (`evolve`), as scipy's RK45 (scipy/integrate/_ivp/rk.py and common.py):
 *   err = sqrt( (1/n) sum_i (h e.k_i / (atol + rtol max(|y_i|, |y_new_i|)))^2 )
 *   err < 1: accept, h *= min(10, 0.9 err^(-1/5)) (10 if err = 0; at most 1 after a
 *            rejection in the same step);  else reject, h *= max(0.2, 0.9 err^(-1/5)).
 * The first step of a run is chosen as select_initial_step does (Hairer, Norsett &
 * Wanner I, II.4), at the cost of one model evaluation; a step is clamped to land on the
 * target, and a step below 10 ulp(t) fails. So on the same problem corrsde and SciPy take
 * the same steps, up to rounding (SciPy >= 1.11; see initial_step). params->max_norm does
 * not apply: the norm is always this RMS one.
 *
 * Every vector operation of a stage is one pass over the state, tile by tile
 * (ytmp = x + h sum_j a_sj k_j reads each k_j once), threaded over tiles of a fixed
 * width; the error norm sums per tile, then the tiles in order, so threads never change
 * a bit. Buffers (one allocation, from the loop): k1..k7 and ytmp; nothing else is
 * allocated per step. Fixed step (`step`): the six stages and x += h sum b_j k_j. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "solve/stepper.h"

enum { NSTAGE = 7, BUF_YTMP = NSTAGE, DP_NBUF = NSTAGE + 1 };
/* tile width of the passes and the norm's partial sums (independent of threads) */
#define TILE 4096

static const double C_[NSTAGE] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double A_[NSTAGE][NSTAGE - 1] = {
  {0},
  {1.0 / 5},
  {3.0 / 40, 9.0 / 40},
  {44.0 / 45, -56.0 / 15, 32.0 / 9},
  {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
  {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
  {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
static const double E_[NSTAGE] = {71.0 / 57600,      0,           -71.0 / 16695, 71.0 / 1920,
                                  -17253.0 / 339200, 22.0 / 525, -1.0 / 40};

typedef struct {
  double *k[NSTAGE]; /* stage derivatives; k[0] = f(t, x) when fsal */
  double *ytmp;      /* stage input; after stage 7, y_new */
  double *part;      /* per-tile partial sums of the norms */
  size_t ntile;
  int fsal;          /* k[0] holds f at the current (t, x) */
  double habs;       /* the next trial |h|; 0: choose the initial step */
} dp_state;

static void dp_free(csde_stepper *S)
{
  dp_state *st = csde_stepper_state(S);
  if (!st) return;
  free(st->part);
  free(st);
  csde_stepper_set_state(S, NULL);
}

static int dp_init(csde_stepper *S, csde_err *err)
{
  (void)err;
  const size_t n = csde_stepper_n(S);
  const csde_solve_params *par = csde_stepper_params(S);
  if (par->rtol > 0 || par->atol > 0)
    if (!(isfinite(par->rtol) && isfinite(par->atol)))
      return csde_stepper_fail(S, CSDE_EDOM, "dopri5: rtol and atol must be finite (rtol %g, "
                               "atol %g)", par->rtol, par->atol);
  dp_state *st = calloc(1, sizeof *st);
  if (st) {
    st->ntile = (n + TILE - 1) / TILE;
    st->part = malloc((st->ntile ? st->ntile : 1) * sizeof *st->part);
  }
  if (!st || !st->part) {
    if (st) free(st);
    return csde_stepper_fail(S, CSDE_ENOMEM, "dopri5: out of memory");
  }
  for (int j = 0; j < NSTAGE; j++) st->k[j] = csde_stepper_buf(S, (unsigned)j);
  st->ytmp = csde_stepper_buf(S, BUF_YTMP);
  csde_stepper_set_state(S, st);
  return 0;
}

/* a new run: nothing is known about its start */
static void dp_reset(csde_stepper *S)
{
  dp_state *st = csde_stepper_state(S);
  st->fsal = 0;
  st->habs = 0;
}

/* y = x + h sum_{j < m} a[j] k[j] (y may be x), tile by tile, all terms in one sweep */
static void combine(csde_stepper *S, double *y, const double *x, double h, const double *a,
                    double *const *k, int m)
{
  const dp_state *st = csde_stepper_state(S);
  const size_t n = csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  double c[NSTAGE - 1] = {0};
  for (int j = 0; j < m; j++) c[j] = h * a[j];
  const double *k0 = k[0], *k1 = k[1], *k2 = k[2], *k3 = k[3], *k4 = k[4], *k5 = k[5];
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long q = 0; q < (long)st->ntile; q++) {
    const long i0 = q * TILE, i1 = (size_t)i0 + TILE < n ? i0 + TILE : (long)n;
    switch (m) { /* the a_sj of stage m + 1 (zeros of the tableau cost a multiply) */
    case 1:
#pragma omp simd
      for (long i = i0; i < i1; i++) y[i] = x[i] + c[0] * k0[i];
      break;
    case 2:
#pragma omp simd
      for (long i = i0; i < i1; i++) y[i] = x[i] + (c[0] * k0[i] + c[1] * k1[i]);
      break;
    case 3:
#pragma omp simd
      for (long i = i0; i < i1; i++)
        y[i] = x[i] + (c[0] * k0[i] + c[1] * k1[i] + c[2] * k2[i]);
      break;
    case 4:
#pragma omp simd
      for (long i = i0; i < i1; i++)
        y[i] = x[i] + (c[0] * k0[i] + c[1] * k1[i] + c[2] * k2[i] + c[3] * k3[i]);
      break;
    case 5:
#pragma omp simd
      for (long i = i0; i < i1; i++)
        y[i] = x[i] +
               (c[0] * k0[i] + c[1] * k1[i] + c[2] * k2[i] + c[3] * k3[i] + c[4] * k4[i]);
      break;
    default: /* 6: b_2 = 0 */
#pragma omp simd
      for (long i = i0; i < i1; i++)
        y[i] = x[i] +
               (c[0] * k0[i] + c[2] * k2[i] + c[3] * k3[i] + c[4] * k4[i] + c[5] * k5[i]);
    }
  }
}

/* sqrt((1/n) sum_i (v_i / (atol + rtol w_i))^2), tiles summed in order; kind 0:
 * v = h e.k, w = max(|x|, |ytmp|) (the step's error); 1: v = x, w = |x|; 2: v = k1,
 * w = |x|; 3: v = k2 - k1, w = |x| (the initial step's d0, d1, d2 before scaling) */
static double rms(csde_stepper *S, int kind, const double *x, double h)
{
  dp_state *st = csde_stepper_state(S);
  const csde_solve_params *par = csde_stepper_params(S);
  const size_t n = csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  const double atol = par->atol, rtol = par->rtol;
  const double *k0 = st->k[0], *k1 = st->k[1], *k2 = st->k[2], *k3 = st->k[3],
               *k4 = st->k[4], *k5 = st->k[5], *k6 = st->k[6], *yn = st->ytmp;
  double e[NSTAGE];
  for (int j = 0; j < NSTAGE; j++) e[j] = h * E_[j];
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long q = 0; q < (long)st->ntile; q++) {
    const long i0 = q * TILE, i1 = (size_t)i0 + TILE < n ? i0 + TILE : (long)n;
    double sum = 0;
    if (kind == 0) {
#pragma omp simd reduction(+ : sum)
      for (long i = i0; i < i1; i++) {
        double v = e[0] * k0[i] + e[2] * k2[i] + e[3] * k3[i] + e[4] * k4[i] + e[5] * k5[i] +
                   e[6] * k6[i];
        double ax = fabs(x[i]), ay = fabs(yn[i]);
        double r = v / (atol + rtol * (ax > ay ? ax : ay));
        sum += r * r;
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (long i = i0; i < i1; i++) {
        double v = kind == 1 ? x[i] : kind == 2 ? k0[i] : k1[i] - k0[i];
        double r = v / (atol + rtol * fabs(x[i]));
        sum += r * r;
      }
    }
    st->part[q] = sum;
  }
  double sum = 0;
  for (size_t q = 0; q < st->ntile; q++) sum += st->part[q];
  double err = sqrt(sum / (double)(n ? n : 1));
  return isnan(err) ? HUGE_VAL : err;
}

/* Stages 2..m from k[0] = f(t0, x): k[s] = f(t0 + c_s h, x + h sum_j a_sj k_j). */
static int stages(csde_stepper *S, double t0, double h, const double *x, int m)
{
  dp_state *st = csde_stepper_state(S);
  for (int s = 1; s < m; s++) {
    combine(S, st->ytmp, x, h, A_[s], st->k, s);
    int rc = csde_stepper_drift(S, t0 + C_[s] * h, st->ytmp, st->k[s]); /* c = 1: t0 + h */
    if (rc) return rc;
  }
  return 0;
}

/* ---- fixed step ---- */

static int dp_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                   int last)
{
  dp_state *st = csde_stepper_state(S);
  (void)last;
  if (dW) return csde_stepper_fail(S, CSDE_ENOTSUP, "dopri5 integrates ODEs only");
  const double h = t1 - t0;
  int rc = csde_stepper_drift(S, t0, x, st->k[0]);
  if (!rc) rc = stages(S, t0, h, x, NSTAGE - 1);
  if (rc) return rc;
  combine(S, x, x, h, A_[NSTAGE - 1], st->k, NSTAGE - 1); /* x += h sum_j b_j k_j */
  st->fsal = 0;
  return 0;
}

/* ---- adaptive ---- */

/* scipy's select_initial_step with order 4 (the error estimator's), bounded by the
 * interval's length L as in SciPy >= 1.11 (so that the model is never called outside
 * the interval); k[0] = f(t0, x):
 *   d0 = |x|, d1 = |f0|, h0 = min(L, 0.01 d0 / d1) (1e-6 if d0 or d1 < 1e-5),
 *   d2 = |f(t0 + h0, x + h0 f0) - f0| / h0,  h1 = (0.01 / max(d1, d2))^(1/5),
 *   h = min(100 h0, h1, L),  |.| the RMS norm scaled by atol + rtol |x|. */
static int initial_step(csde_stepper *S, double t0, double t1, const double *x, double *habs)
{
  dp_state *st = csde_stepper_state(S);
  const double L = fabs(t1 - t0), dir = t1 > t0 ? 1.0 : -1.0;
  double d0 = rms(S, 1, x, 0), d1 = rms(S, 2, x, 0);
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : fmin(L, 0.01 * d0 / d1);
  double a = 1.0;
  combine(S, st->ytmp, x, h0 * dir, &a, st->k, 1); /* y1 = x + h0 dir f0 */
  int rc = csde_stepper_drift(S, t0 + h0 * dir, st->ytmp, st->k[1]);
  if (rc) return rc;
  double d2 = rms(S, 3, x, 0) / h0;
  double h1 = (d1 <= 1e-15 && d2 <= 1e-15) ? fmax(1e-6, h0 * 1e-3)
                                           : pow(0.01 / fmax(d1, d2), 1.0 / 5.0);
  *habs = fmin(fmin(100 * h0, h1), L);
  return 0;
}

static int dp_evolve(csde_stepper *S, double *t, double t1, double *h, double *x)
{
  dp_state *st = csde_stepper_state(S);
  const csde_solve_params *par = csde_stepper_params(S);
  const size_t n = csde_stepper_n(S);
  if (!(par->rtol > 0 || par->atol > 0))
    return csde_stepper_fail(S, CSDE_EINVAL, "dopri5: the adaptive mode needs rtol > 0 or "
                             "atol > 0");
  const double t0 = *t, dt = t1 - t0, dir = dt > 0 ? 1.0 : -1.0;
  if (!isfinite(t0) || !isfinite(t1))
    return csde_stepper_fail(S, CSDE_EDOM, "dopri5: step from t = %g to %g", t0, t1);
  if (dt == 0) return 0;
  int rc;
  if (!st->fsal) {
    if ((rc = csde_stepper_drift(S, t0, x, st->k[0]))) return rc; /* f(t0, x) */
    st->fsal = 1;
  }
  if (!(st->habs > 0) && (rc = initial_step(S, t0, t1, x, &st->habs))) return rc;
  const double min_step = 10 * fabs(nextafter(t0, dir * INFINITY) - t0);
  double habs = fmax(st->habs, min_step);
  int rejected = 0;
  for (;;) {
    if (habs < min_step)
      return csde_stepper_fail(S, CSDE_EFAILED,
                               "dopri5 cannot reach rtol = %g, atol = %g: step size underflow "
                               "(|h| = %.3g at t = %.17g)",
                               par->rtol, par->atol, habs, t0);
    double tn = t0 + habs * dir;
    if (dir * (tn - t1) > 0) tn = t1;
    const double hh = tn - t0;
    habs = fabs(hh);
    rc = stages(S, t0, hh, x, NSTAGE); /* ytmp = y_new, k[6] = f(tn, y_new) */
    if (rc == CSDE_ERETRY) { /* the model asked for a smaller step */
      habs *= 0.5;
      rejected = 1;
      csde_stepper_count(S, 0);
      continue;
    }
    if (rc) return rc;
    double err = rms(S, 0, x, hh);
    double fac = err == 0 ? 10.0 : 0.9 * pow(err, -1.0 / 5.0);
    if (err < 1) {
      fac = fmin(10.0, fac);
      if (rejected) fac = fmin(1.0, fac);
      st->habs = habs * fac;
      memcpy(x, st->ytmp, n * sizeof *x);
      double *k0 = st->k[0]; /* FSAL: f(tn, y_new) is the next k1 */
      st->k[0] = st->k[NSTAGE - 1];
      st->k[NSTAGE - 1] = k0;
      csde_stepper_count(S, 1);
      csde_stepper_fail(S, CSDE_SUCCESS, "%s", ""); /* clear a retry record */
      *t = tn;
      *h = dir * st->habs;
      return 0;
    }
    habs *= fmax(0.2, fac);
    rejected = 1;
    csde_stepper_count(S, 0);
  }
}

const csde_solver_type csde_solver_dopri5 = {
  .name = "dopri5",
  .alias = NULL,
  .summary = "Dormand-Prince 5(4) (scipy's RK45): ODEs, adaptive, order 5",
  .sde = 0,
  .ode = 1,
  .adaptive = CSDE_ADAPT_ODE,
  .nfe_per_step = 6,
  .order_ode = 5.0,
  .order_strong = 0.0,
  .order_weak = 0.0,
  .nbuf = DP_NBUF,
  .own_noise = 0,
  .init = dp_init,
  .free = dp_free,
  .reset = dp_reset,
  .step = dp_step,
  .evolve = dp_evolve,
};
