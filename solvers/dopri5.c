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
 * Passes. The drift is affine in the model's output, f = cx y + cs src (process.h), so
 * each k_j is kept as its src_j, never formed: by induction over the stages,
 *   k_j = P_j x + sum_{l <= j} Q_jl src_l   (x the step's start; scalars P, Q per attempt)
 *   y_s = x + h sum_{j<s} a_sj k_j = alpha_s x + sum_{l<s} beta_sl src_l
 *   alpha_s = 1 + h sum_j a_sj P_j,  beta_sl = h sum_j a_sj Q_jl,
 *   P_s = cx_s alpha_s,  Q_sl = cx_s beta_sl,  Q_ss = cs_s,
 * and the error e = h sum_j E_j k_j = gamma x + sum_l delta_l src_l alike. So an attempt
 * makes, besides the model's own reads and writes: one pass per stage input (reading x
 * and the srcs so far, writing y_s: 3 + 4 + ... + 8 = 33 arrays), one for the error norm
 * (x, y_new and the 7 srcs: 9) and the copy of y_new into x on acceptance (2): 44, where
 * forming each k_j = cx y_j + cs src_j took 3 more per evaluation (60 in all). The check
 * that a model's output is finite rides on the first pass that reads it (the next stage's
 * input, or the error norm for the seventh), before anything uses the result. Each pass
 * is one sweep (the terms added left to right), threaded over tiles of a fixed width; the error norm sums per tile, then the tiles in order, so
 * threads never change a bit. Buffers (one allocation, from the loop): src_1..src_7 and
 * ytmp; per thread one tile of scratch, allocated at init. Fixed step (`step`): the six
 * stages, y = x + h sum b_j k_j, copied into x. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "solve/stepper.h"

enum { NSTAGE = 7, BUF_YTMP = NSTAGE, DP_NBUF = NSTAGE + 1 };
/* tile width of the passes and the norm's partial sums (independent of threads) */
#define TILE 2048

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
  double *src[NSTAGE];   /* each stage's model output (or C times it) */
  double *ytmp;          /* stage input; after stage 7, y_new */
  double *part;          /* per-tile partial sums of the norms */
  double *scr;           /* one tile of scratch per thread (the norms' v) */
  size_t ntile;
  int nthr;
  double cx[NSTAGE], cs[NSTAGE], tk[NSTAGE]; /* call j: f = cx_j y_j + cs_j src_j at tk_j */
  double P[NSTAGE], Q[NSTAGE][NSTAGE];       /* k_j = P_j x + sum_l Q_jl src_l */
  int fsal;          /* src[0], cx[0], cs[0] give f at the current (t, x) */
  double habs;       /* the next trial |h|; 0: choose the initial step */
} dp_state;

static void dp_free(csde_stepper *S)
{
  dp_state *st = csde_stepper_state(S);
  if (!st) return;
  free(st->part);
  csde_free(st->scr);
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
    st->nthr = csde_stepper_threads(S) > 0 ? csde_stepper_threads(S) : 1;
    st->part = malloc((st->ntile ? st->ntile : 1) * sizeof *st->part);
    st->scr = csde_alloc((size_t)st->nthr * TILE, sizeof *st->scr);
  }
  if (!st || !st->part || !st->scr) {
    if (st) free(st->part), csde_free(st->scr), free(st);
    return csde_stepper_fail(S, CSDE_ENOMEM, "dopri5: out of memory");
  }
  for (int j = 0; j < NSTAGE; j++) st->src[j] = csde_stepper_buf(S, (unsigned)j);
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

/* v = a x + sum_{l < m} b_l src_l on tile [i0, i1) into v, one sweep, the terms added left
 * to right; adds 0 src_{m-1} to *chk (0, or NaN when the newest output is not finite) */
static inline void tile_lin(double *v, double a, const double *x, int m, const double *b,
                            double *const *src, long i0, long i1, double *chk)
{
  const long w = i1 - i0;
#define SRC(l) (m > (l) ? src[l] + i0 : NULL)
  const double *xi = x + i0, *s0 = SRC(0), *s1 = SRC(1), *s2 = SRC(2), *s3 = SRC(3),
               *s4 = SRC(4), *s5 = SRC(5), *s6 = SRC(6);
#undef SRC
  double ck = 0;
  switch (m) {
  case 0:
#pragma omp simd
    for (long i = 0; i < w; i++) v[i] = a * xi[i];
    break;
  case 1:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s0[i];
      v[i] = a * xi[i] + b[0] * s0[i];
    }
    break;
  case 2:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s1[i];
      v[i] = a * xi[i] + b[0] * s0[i] + b[1] * s1[i];
    }
    break;
  case 3:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s2[i];
      v[i] = a * xi[i] + b[0] * s0[i] + b[1] * s1[i] + b[2] * s2[i];
    }
    break;
  case 4:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s3[i];
      v[i] = a * xi[i] + b[0] * s0[i] + b[1] * s1[i] + b[2] * s2[i] + b[3] * s3[i];
    }
    break;
  case 5:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s4[i];
      v[i] = a * xi[i] + b[0] * s0[i] + b[1] * s1[i] + b[2] * s2[i] + b[3] * s3[i] + b[4] * s4[i];
    }
    break;
  case 6:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s5[i];
      v[i] = a * xi[i] + b[0] * s0[i] + b[1] * s1[i] + b[2] * s2[i] + b[3] * s3[i] + b[4] * s4[i] + b[5] * s5[i];
    }
    break;
  case 7:
#pragma omp simd reduction(+ : ck)
    for (long i = 0; i < w; i++) {
      ck += 0.0 * s6[i];
      v[i] = a * xi[i] + b[0] * s0[i] + b[1] * s1[i] + b[2] * s2[i] + b[3] * s3[i] + b[4] * s4[i] + b[5] * s5[i] + b[6] * s6[i];
    }
    break;
  }
  *chk += ck;
}

/* y = a x + sum_{l < m} b_l src_l, tile by tile; returns 1 when src_{m-1} is not finite */
static int lin(csde_stepper *S, double *y, double a, const double *x, int m, const double *b)
{
  const dp_state *st = csde_stepper_state(S);
  const size_t n = csde_stepper_n(S);
  const int th = st->nthr;
  double *const *src = st->src;
  double chk = 0; /* 0, or NaN when some src_{m-1} is not finite (any order) */
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) reduction(+ : chk) if (th > 1)
#endif
  for (long q = 0; q < (long)st->ntile; q++) {
    const long i0 = q * TILE, i1 = (size_t)i0 + TILE < n ? i0 + TILE : (long)n;
    tile_lin(y + i0, a, x, m, b, src, i0, i1, &chk);
  }
  return !(chk == 0);
}

/* sqrt((1/n) sum_i (v_i / (atol + rtol w_i))^2), v = g x + sum_{l < m} d_l src_l, w =
 * max(|x|, |ytmp|) when use_y, else |x|; tiles summed in order. *bad = 1 when src_{m-1} is
 * not finite. A NaN norm is HUGE_VAL. */
static double norm(csde_stepper *S, double g, const double *x, int m, const double *d,
                   int use_y, int *bad)
{
  dp_state *st = csde_stepper_state(S);
  const csde_solve_params *par = csde_stepper_params(S);
  const size_t n = csde_stepper_n(S);
  const int th = st->nthr;
  const double atol = par->atol, rtol = par->rtol, *yn = st->ytmp;
  double chk = 0;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) reduction(+ : chk) if (th > 1)
#endif
  for (long q = 0; q < (long)st->ntile; q++) {
    const long i0 = q * TILE, i1 = (size_t)i0 + TILE < n ? i0 + TILE : (long)n;
    double *v = st->scr + (size_t)csde_thread_num() * TILE, sum = 0;
    tile_lin(v, g, x, m, d, st->src, i0, i1, &chk);
    const double *xi = x + i0, *yi = yn + i0;
    if (use_y) {
#pragma omp simd reduction(+ : sum)
      for (long i = 0; i < i1 - i0; i++) {
        double ax = fabs(xi[i]), ay = fabs(yi[i]);
        double r = v[i] / (atol + rtol * (ax > ay ? ax : ay));
        sum += r * r;
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (long i = 0; i < i1 - i0; i++) {
        double r = v[i] / (atol + rtol * fabs(xi[i]));
        sum += r * r;
      }
    }
    st->part[q] = sum;
  }
  *bad = !(chk == 0);
  double sum = 0;
  for (size_t q = 0; q < st->ntile; q++) sum += st->part[q];
  double err = sqrt(sum / (double)(n ? n : 1));
  return isnan(err) ? HUGE_VAL : err;
}

/* The model at (t, y) into src[j]: f_j = cx_j y + cs_j src_j. */
static int eval(csde_stepper *S, int j, double t, const double *y)
{
  dp_state *st = csde_stepper_state(S);
  st->tk[j] = t;
  return csde_stepper_drift_src(S, t, y, st->src[j], &st->cx[j], &st->cs[j]);
}

/* Row a of the tableau: y = base x + h sum_{j<s} a_j k_j = alpha x + sum_{l < s} beta_l src_l
 * (the header's recursion; base 1 for a stage input, 0 for the error) */
static double coeffs(const dp_state *st, double base, double h, const double *a, int s,
                     double *beta)
{
  double alpha = base;
  for (int l = 0; l < s; l++) beta[l] = 0;
  for (int j = 0; j < s; j++) {
    if (a[j] == 0) continue;
    alpha += h * a[j] * st->P[j];
    for (int l = 0; l <= j; l++) beta[l] += h * a[j] * st->Q[j][l];
  }
  return alpha;
}

/* Stages 2..m from src_1 (f at (t0, x)): y_s from row s of the tableau, then the model;
 * y_m is left in ytmp when m = NSTAGE (y_new, and src_7 = its output) */
static int stages(csde_stepper *S, double t0, double h, const double *x, int m)
{
  dp_state *st = csde_stepper_state(S);
  memset(st->Q, 0, sizeof st->Q);
  st->P[0] = st->cx[0];
  st->Q[0][0] = st->cs[0];
  for (int s = 1; s < m; s++) {
    double beta[NSTAGE];
    double alpha = coeffs(st, 1.0, h, A_[s], s, beta);
    if (lin(S, st->ytmp, alpha, x, s, beta)) /* src_{s-1}: first read here */
      return csde_stepper_src_error(S, st->tk[s - 1], st->src[s - 1]);
    int rc = eval(S, s, t0 + C_[s] * h, st->ytmp); /* c = 1: t0 + h */
    if (rc) return rc;
    st->P[s] = st->cx[s] * alpha;
    for (int l = 0; l < s; l++) st->Q[s][l] = st->cx[s] * beta[l];
    st->Q[s][s] = st->cs[s];
  }
  return 0;
}

/* ---- fixed step ---- */

static int dp_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                   int last)
{
  dp_state *st = csde_stepper_state(S);
  const size_t n = csde_stepper_n(S);
  (void)last;
  if (dW) return csde_stepper_fail(S, CSDE_ENOTSUP, "dopri5 integrates ODEs only");
  const double h = t1 - t0;
  int rc = eval(S, 0, t0, x);
  if (!rc) rc = stages(S, t0, h, x, NSTAGE - 1);
  if (rc) return rc;
  double beta[NSTAGE];
  double alpha = coeffs(st, 1.0, h, A_[NSTAGE - 1], NSTAGE - 1, beta); /* x + h sum b_j k_j */
  if (lin(S, st->ytmp, alpha, x, NSTAGE - 1, beta))
    return csde_stepper_src_error(S, st->tk[NSTAGE - 2], st->src[NSTAGE - 2]);
  memcpy(x, st->ytmp, n * sizeof *x);
  st->fsal = 0;
  return 0;
}

/* ---- adaptive ---- */

/* scipy's select_initial_step with order 4 (the error estimator's), bounded by the
 * interval's length L as in SciPy >= 1.11 (so that the model is never called outside
 * the interval); src_1 and (cx_1, cs_1) give f0 = f(t0, x):
 *   d0 = |x|, d1 = |f0|, h0 = min(L, 0.01 d0 / d1) (1e-6 if d0 or d1 < 1e-5),
 *   d2 = |f(t0 + h0, x + h0 f0) - f0| / h0,  h1 = (0.01 / max(d1, d2))^(1/5),
 *   h = min(100 h0, h1, L),  |.| the RMS norm scaled by atol + rtol |x|.
 * With y1 = x + hd f0 = (1 + hd cx0) x + hd cs0 src_1 (hd = h0 dir) and f1 = cx1 y1 +
 * cs1 src_2:  f1 - f0 = (cx1 (1 + hd cx0) - cx0) x + (cx1 hd cs0 - cs0) src_1 + cs1 src_2. */
static int initial_step(csde_stepper *S, double t0, double t1, const double *x, double *habs)
{
  dp_state *st = csde_stepper_state(S);
  const double L = fabs(t1 - t0), dir = t1 > t0 ? 1.0 : -1.0;
  int bad;
  double d0 = norm(S, 1.0, x, 0, NULL, 0, &bad);
  double d1 = norm(S, st->cx[0], x, 1, &st->cs[0], 0, &bad);
  if (bad) return csde_stepper_src_error(S, st->tk[0], st->src[0]);
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : fmin(L, 0.01 * d0 / d1), hd = h0 * dir;
  double b0 = hd * st->cs[0];
  (void)lin(S, st->ytmp, 1 + hd * st->cx[0], x, 1, &b0); /* y1 = x + hd f0 */
  int rc = eval(S, 1, t0 + hd, st->ytmp);
  if (rc) return rc;
  double d[2] = {st->cx[1] * hd * st->cs[0] - st->cs[0], st->cs[1]};
  double d2 = norm(S, st->cx[1] * (1 + hd * st->cx[0]) - st->cx[0], x, 2, d, 0, &bad) / h0;
  if (bad) return csde_stepper_src_error(S, st->tk[1], st->src[1]);
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
    if ((rc = eval(S, 0, t0, x))) return rc; /* f(t0, x) */
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
    rc = stages(S, t0, hh, x, NSTAGE); /* ytmp = y_new, src_7 = its model output */
    if (rc == CSDE_ERETRY) { /* the model asked for a smaller step */
      habs *= 0.5;
      rejected = 1;
      csde_stepper_count(S, 0);
      continue;
    }
    if (rc) return rc;
    /* e = h sum_j E_j k_j = gamma x + sum_l delta_l src_l; src_7 checked here */
    double delta[NSTAGE];
    double gamma = coeffs(st, 0.0, hh, E_, NSTAGE, delta);
    int bad;
    double err = norm(S, gamma, x, NSTAGE, delta, 1, &bad);
    if (bad) return csde_stepper_src_error(S, st->tk[NSTAGE - 1], st->src[NSTAGE - 1]);
    double fac = err == 0 ? 10.0 : 0.9 * pow(err, -1.0 / 5.0);
    if (err < 1) {
      fac = fmin(10.0, fac);
      if (rejected) fac = fmin(1.0, fac);
      st->habs = habs * fac;
      memcpy(x, st->ytmp, n * sizeof *x);
      double *s0 = st->src[0]; /* FSAL: f(tn, y_new) = cx_7 y_new + cs_7 src_7 is the next f0 */
      st->src[0] = st->src[NSTAGE - 1];
      st->src[NSTAGE - 1] = s0;
      st->cx[0] = st->cx[NSTAGE - 1];
      st->cs[0] = st->cs[NSTAGE - 1];
      st->tk[0] = st->tk[NSTAGE - 1];
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
  .summary = "Dormand-Prince 5(4) (scipy's RK45): ODEs, adaptive, order 5",
  .ode = 1, .adaptive = CSDE_ADAPT_ODE,
  .nfe_per_step = 6, .order_ode = 5.0,
  .nbuf = DP_NBUF,
  .init = dp_init, .free = dp_free, .reset = dp_reset, .step = dp_step, .evolve = dp_evolve,
};
