/* Tests for corrsde/solve.h (fast suite): solves checked against exact answers.
 *
 * The exact problem is MATH.md's gaussian data X_0 ~ N(m, S0 (x) I_D) (the built-in
 * gaussian model, default S0 = 0.25 ar1(0.95)), C = ar1(0.9), vp-linear unless stated.
 * Statistical checks pool every pixel and sample (i.i.d. tau-vectors), use fixed seeds, and
 * allow 5 standard errors computed from the sample size plus a stated discretisation bound.
 * Convergence orders live in test_orders.c (slow suite). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

#include "corrsde/corrsde.h"
#include "corrsde/model.h"
#include "corrsde/solve.h"
#include "tap.h"

static int quick = 0;

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Deterministic O(1) inputs. */
static void fill(double *x, size_t n, double seed)
{
  for (size_t i = 0; i < n; i++)
    x[i] = sin(1.37 * (double)i + seed) + 0.5 * cos(0.11 * (double)i * seed + 1);
}

static int all_finite(const double *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* ---- the shared exact problem ---- */

typedef struct {
  size_t tau, D;
  csde_cov *C;
  csde_schedule *s;
  csde_model *M;
  double mean[16]; /* m per frame, from -0.5 to 0.5 */
  double Cm[256];  /* the dense C */
} setup;

static int setup_make(setup *u, size_t tau, size_t D, const char *sched)
{
  csde_err err = {0};
  memset(u, 0, sizeof *u);
  u->tau = tau;
  u->D = D;
  for (size_t i = 0; i < tau; i++) u->mean[i] = 0.5 * (-1.0 + 2.0 * (double)i / (double)(tau - 1));
  int st = csde_cov_alloc(&u->C, "ar1:rho=0.9", tau, NULL, &err);
  if (!st) st = csde_schedule_alloc(&u->s, sched, &err);
  if (!st) st = csde_model_gaussian_alloc(&u->M, u->C, u->s, D, u->mean, tau, NULL, &err);
  if (!st) csde_cov_matrix(u->C, u->Cm);
  ok(!st, "setup: ar1:rho=0.9, %s, gaussian model (tau %zu, D %zu)%s%s", sched, tau, D,
     st ? ": " : "", st ? err.msg : "");
  return st;
}

static void setup_free(setup *u)
{
  csde_model_free(u->M);
  csde_schedule_free(u->s);
  csde_cov_free(u->C);
}

static csde_problem problem(const setup *u, csde_process proc, size_t batch)
{
  csde_problem P = csde_problem_default();
  P.process = proc;
  P.tau = u->tau;
  P.D = u->D;
  P.batch = batch;
  P.C = u->C;
  P.sched = u->s;
  P.model = proc == CSDE_PROC_FORWARD_SDE ? NULL : u->M;
  return P;
}

/* Pooled moments of the tau-vectors y = x[b][:, p] - c[:, p] over every sample b and
 * pixel p: mean[i] and the second moment S[i][j] = mean(y_i y_j) (about c, not the
 * sample mean). */
static void pooled(const double *x, const double *c, size_t batch, size_t tau, size_t D,
                   double *mean, double *S)
{
  memset(mean, 0, tau * sizeof *mean);
  memset(S, 0, tau * tau * sizeof *S);
  double y[16];
  for (size_t b = 0; b < batch; b++)
    for (size_t p = 0; p < D; p++) {
      for (size_t i = 0; i < tau; i++) y[i] = x[(b * tau + i) * D + p] - c[i * D + p];
      for (size_t i = 0; i < tau; i++) {
        mean[i] += y[i];
        for (size_t j = 0; j < tau; j++) S[i * tau + j] += y[i] * y[j];
      }
    }
  double M = (double)(batch * D);
  for (size_t i = 0; i < tau; i++) mean[i] /= M;
  for (size_t i = 0; i < tau * tau; i++) S[i] /= M;
}

/* ---- forward SDE against eq. 1 ----
 *
 * From a fixed x0, X(T) ~ N(sqrt(abar(T)) x0, (1 - abar(T)) C) (MATH.md, continuous
 * time). Euler-Maruyama is not exact in distribution for finite steps, but on this linear
 * additive SDE its law is known exactly: with a_n = 1 - beta(t_n) h / 2,
 *     E X_N = (prod a_n) x0,     Cov X_N = v_N C,   v_{n+1} = a_n^2 v_n + beta(t_n) h,
 * whose distance to eq. 1 is O(h). The test allows 5 standard errors of the pooled
 * estimates plus exactly that distance (computed below from the recursion, printed). */
static void test_forward_exact(void)
{
  setup u;
  if (setup_make(&u, 6, quick ? 32 : 256, "vp-linear")) return;
  const size_t tau = u.tau, D = u.D, batch = quick ? 8 : 128, N = 200, n = batch * tau * D;
  const double T = 0.3; /* abar(0.3) = 0.396: the mean is not negligible */
  csde_problem P = problem(&u, CSDE_PROC_FORWARD_SDE, batch);
  P.T = T;
  csde_solve_params par = csde_solve_default_params();
  par.solver = "em";
  par.steps = N;
  par.seed = 11;
  double *x0 = malloc(tau * D * sizeof *x0), *x = malloc(n * sizeof *x);
  double *c = malloc(tau * D * sizeof *c);
  fill(x0, tau * D, 0.4);
  for (size_t b = 0; b < batch; b++) memcpy(x + b * tau * D, x0, tau * D * sizeof *x);
  csde_err err = {0};
  csde_solve_stats st;
  int s = csde_solve(&P, &par, x, &st, &err);
  ok(!s && st.steps == N && st.nfe == 0, "forward SDE: %zu EM steps, no model calls (nfe %zu)%s%s",
     st.steps, st.nfe, s ? ": " : "", s ? err.msg : "");
  /* eq. 1 and the EM law */
  double ab = csde_schedule_abar(u.s, T), sa = sqrt(ab), om = -expm1(-csde_schedule_int_beta(u.s, T));
  double aN = 1, vN = 0;
  for (size_t k = 0; k < N; k++) {
    double t = T * (double)k / (double)N, h = T / (double)N, be = csde_schedule_beta(u.s, t);
    double a = 1 - 0.5 * be * h; /* a_n = 1 - beta(t_n) h / 2 */
    aN *= a;
    vN = a * a * vN + be * h;
  }
  double x0max = 0;
  for (size_t i = 0; i < tau * D; i++) {
    c[i] = sa * x0[i];
    x0max = fmax(x0max, fabs(x0[i]));
  }
  double mean[16], S[256];
  pooled(x, c, batch, tau, D, mean, S);
  double M = (double)(batch * D), dmean = fabs(aN - sa) * x0max, dv = fabs(vN - om);
  printf("# forward SDE to T = %g, %zu EM steps, %g trajectories: EM mean factor %.6f vs "
         "sqrt(abar) %.6f, EM variance factor %.6f vs 1 - abar %.6f\n",
         T, N, M, aN, sa, vN, om);
  double wm = 0, wc = 0; /* worst |error| / tolerance */
  for (size_t i = 0; i < tau; i++) {
    double se = sqrt(om * u.Cm[i * tau + i] / M);
    wm = fmax(wm, fabs(mean[i]) / (5 * se + dmean));
    for (size_t j = 0; j < tau; j++) {
      double Pij = om * u.Cm[i * tau + j], Pii = om * u.Cm[i * tau + i], Pjj = om * u.Cm[j * tau + j];
      /* Var of y_i y_j for a centred gaussian: P_ii P_jj + P_ij^2 */
      double sec = sqrt((Pii * Pjj + Pij * Pij) / M);
      double bias = dv * fabs(u.Cm[i * tau + j]) + dmean * dmean;
      wc = fmax(wc, fabs(S[i * tau + j] - Pij) / (5 * sec + bias));
    }
  }
  ok(wm <= 1, "forward SDE mean = sqrt(abar(T)) x0 (eq. 1): worst |error| / (5 SE + EM bias %.2g) = %.3f",
     dmean, wm);
  ok(wc <= 1, "forward SDE covariance = (1 - abar(T)) C (eq. 1): worst |error| / (5 SE + EM bias %.2g) = %.3f",
     dv, wc);
  free(x0);
  free(x);
  free(c);
  setup_free(&u);
}

/* ---- DDPM ancestral sampling ends at the data law ----
 *
 * The gaussian model on ddpm-linear:n=1000 (its continuous view has abar(i/N) = abar_i
 * exactly), x_N drawn from the exact p_1, then N = 1000 ancestral steps (eq. 2 with the
 * exact noise prediction). With the exact model mu_theta is the exact E[x_{i-1} | x_i], so
 * the mean ends exactly at m; but the kernel N(mu, beta~_i C) is not the true reverse
 * kernel (which adds coef^2 Cov[x_0 | x_i]), so the covariance ends below S0 by an O(1/N)
 * amount. The exact moment recursion of this chain (NumPy, tau = 6) gives a final
 * covariance error max_ij |P - S0|_ij of 7.4e-3, 3.85e-3, 1.98e-3, 1.02e-3 for N = 500,
 * 1000, 2000, 4000 (same continuous schedule), mean error 1e-15. The test allows
 * 4.0e-3 (that bias) + 5 SE per entry for the covariance, 5 SE for the mean. */
static void test_ddpm(void)
{
  setup u;
  if (setup_make(&u, 6, quick ? 32 : 256, "ddpm-linear:n=1000")) return;
  const size_t tau = u.tau, D = u.D, batch = quick ? 8 : 128, n = batch * tau * D;
  csde_problem P = problem(&u, CSDE_PROC_REVERSE_SDE, batch);
  csde_solve_params par = csde_solve_default_params();
  par.seed = 5;
  double *x = malloc(n * sizeof *x), *c = malloc(tau * D * sizeof *c), S0[36], mu0[16 * 256];
  csde_err err = {0};
  int s = csde_model_gaussian_sample(u.M, 1.0, (csde_rng_key){99, 0}, 0, batch, x, &err);
  if (!s) s = csde_model_gaussian_marginal(u.M, 0.0, mu0, S0, &err);
  csde_solve_stats st;
  double t0 = now();
  if (!s) s = csde_sample_ddpm(&P, &par, x, &st, &err);
  ok(!s && st.steps == 1000 && st.nfe == 1000,
     "ddpm: 1000 ancestral steps from exact p_1 (%.2f s, steps %zu, nfe %zu)%s%s", now() - t0,
     st.steps, st.nfe, s ? ": " : "", s ? err.msg : "");
  if (s) goto done;
  for (size_t i = 0; i < tau * D; i++) c[i] = u.mean[i / D];
  double mean[16], S[256], M = (double)(batch * D);
  pooled(x, c, batch, tau, D, mean, S);
  double wm = 0, wc = 0, emax = 0;
  for (size_t i = 0; i < tau; i++) {
    double se = sqrt(S0[i * tau + i] / M);
    wm = fmax(wm, fabs(mean[i]) / (5 * se));
    for (size_t j = 0; j < tau; j++) {
      double a = S0[i * tau + i], b = S0[j * tau + j], cc = S0[i * tau + j];
      double sec = sqrt((a * b + cc * cc) / M);
      emax = fmax(emax, fabs(S[i * tau + j] - cc));
      wc = fmax(wc, fabs(S[i * tau + j] - cc) / (4.0e-3 + 5 * sec));
    }
  }
  printf("# ddpm N = 1000 over %g trajectories: max |cov - S0| = %.3e (chain bias 3.85e-3, "
         "SE of an entry ~ %.2e)\n", M, emax, sqrt(2 * S0[0] * S0[0] / M));
  ok(wm <= 1, "ddpm ends at mean m: worst |error| / 5 SE = %.3f", wm);
  ok(wc <= 1, "ddpm ends at covariance S0: worst |error| / (4e-3 + 5 SE) = %.3f", wc);
  /* a continuous schedule has no DDPM chain */
  csde_schedule *sc;
  csde_schedule_alloc(&sc, "vp-linear", NULL);
  P.sched = sc;
  s = csde_sample_ddpm(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "discrete schedule", "ddpm on vp-linear: CSDE_EINVAL");
  csde_schedule_free(sc);
done:
  free(x);
  free(c);
  setup_free(&u);
}

/* ---- DDIM(eta = 0) is a first-order PF-ODE integrator ----
 * DDIM with eta = 0 is the exponential (first-order) integrator of the PF-ODE in the noise
 * parametrisation. Against the exact flow T -> eps (NumPy model of the same problem,
 * uniform grid): RMS errors 5.3e-2, 2.7e-2, 1.4e-2, 7.1e-3 at N = 20..160, local orders
 * 0.95-0.98. Required: each doubling of N reduces the error by a factor in [1.6, 2.4]
 * (order 1 +- 0.3), and the fitted order within 0.2 of 1. */
static void test_ddim(void)
{
  setup u;
  if (setup_make(&u, 6, 8, "vp-linear")) return;
  const size_t batch = 2, n = batch * u.tau * u.D;
  double *x0 = malloc(n * sizeof *x0), *xe = malloc(n * sizeof *xe), *x = malloc(n * sizeof *x);
  fill(x0, n, 0.9);
  csde_err err = {0};
  int s = csde_model_gaussian_flow_apply(u.M, 1.0, 1e-3, batch, x0, xe, &err);
  csde_problem P = problem(&u, CSDE_PROC_PFODE, batch);
  const size_t Ns[] = {20, 40, 80, 160};
  double e[4];
  for (size_t k = 0; k < 4 && !s; k++) {
    csde_solve_params par = csde_solve_default_params();
    par.steps = Ns[k];
    memcpy(x, x0, n * sizeof *x);
    csde_solve_stats st;
    s = csde_sample_ddim(&P, &par, 0.0, x, &st, &err);
    double e2 = 0;
    for (size_t i = 0; i < n; i++) e2 += (x[i] - xe[i]) * (x[i] - xe[i]);
    e[k] = sqrt(e2 / (double)n);
    if (!s && st.nfe != Ns[k]) s = -1;
  }
  if (!ok(!s, "ddim eta = 0: solves at N = 20..160%s%s", s > 0 ? ": " : "", s > 0 ? err.msg : ""))
    goto done;
  printf("# ddim eta=0 RMS errors vs exact flow:");
  for (size_t k = 0; k < 4; k++) printf(" N=%zu %.4e", Ns[k], e[k]);
  printf("\n");
  int good = 1;
  for (size_t k = 0; k + 1 < 4; k++) {
    double r = e[k] / e[k + 1];
    good &= r >= 1.6 && r <= 2.4;
    printf("# ddim ratio e(%zu)/e(%zu) = %.3f\n", Ns[k], Ns[k + 1], r);
  }
  double p = log(e[0] / e[3]) / log(8.0);
  ok(good, "ddim eta = 0: error halves with the step (ratios in [1.6, 2.4])");
  ok(fabs(p - 1) <= 0.2, "ddim eta = 0: order %.3f within 0.2 of 1", p);
done:
  free(x0);
  free(xe);
  free(x);
  setup_free(&u);
}

/* ---- the four output kinds ----
 * Wrappers around the gaussian model (which answers CSCORE, C grad log p_t) that answer
 *   SCORE  grad log p_t = -Sigma_t^-1 (x - sqrt(abar) m)   (Cholesky of the exact Sigma_t)
 *   NOISE  delta = -sqrt(1 - abar) C grad log p_t
 *   X0     x0 = (x + (1 - abar) C grad log p_t) / sqrt(abar)
 * (model.h's conversions, inverted). Ten Euler steps of the PF-ODE, and a 10-step heun
 * reverse SDE, must agree with the CSCORE solve to 1e-12 relative: the conversions lose
 * at most a few ulps times 1 / (1 - abar) <= 1e4 (X0, heun evaluates at eps) or
 * cond(Sigma_t) (SCORE); measured: <= 1.1e-14. */
typedef struct {
  const csde_model *g;
  const csde_schedule *s;
  csde_model_output kind;
  size_t tau, D;
  double *mean, *cov, *sc; /* marginal at t; a C grad log p buffer */
} wrap;

static int wrap_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  wrap *w = user;
  size_t tau = w->tau, D = w->D, bs = tau * D, n = batch * bs;
  double om = -expm1(-csde_schedule_int_beta(w->s, t)), sa = sqrt(csde_schedule_abar(w->s, t));
  if (w->kind == CSDE_OUT_SCORE) {
    if (csde_model_gaussian_marginal(w->g, t, w->mean, w->cov, NULL)) return -1;
    gsl_matrix_view L = gsl_matrix_view_array(w->cov, tau, tau);
    if (gsl_linalg_cholesky_decomp1(&L.matrix)) return -2;
    double z[16], y[16];
    for (size_t b = 0; b < batch; b++)
      for (size_t p = 0; p < D; p++) {
        for (size_t i = 0; i < tau; i++) z[i] = x[b * bs + i * D + p] - w->mean[i * D + p];
        gsl_vector_view zv = gsl_vector_view_array(z, tau), yv = gsl_vector_view_array(y, tau);
        gsl_linalg_cholesky_solve(&L.matrix, &zv.vector, &yv.vector); /* y = Sigma^-1 z */
        for (size_t i = 0; i < tau; i++) out[b * bs + i * D + p] = -y[i];
      }
    return 0;
  }
  int rc = csde_model_call(w->g, t, batch, x, w->sc);
  if (rc) return rc;
  /* delta = -sqrt(1 - abar) s, x0 = (x + (1 - abar) s) / sqrt(abar),
   * v = sqrt(abar) delta - sqrt(1 - abar) x0 */
  for (size_t i = 0; i < n; i++) {
    double delta = -sqrt(om) * w->sc[i], x0 = (x[i] + om * w->sc[i]) / sa;
    out[i] = w->kind == CSDE_OUT_NOISE ? delta : w->kind == CSDE_OUT_X0 ? x0
                                               : sa * delta - sqrt(om) * x0;
  }
  return 0;
}

static void test_kinds(void)
{
  setup u;
  if (setup_make(&u, 6, 8, "vp-linear")) return;
  const size_t batch = 3, tau = u.tau, D = u.D, n = batch * tau * D;
  double *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr), *x = malloc(n * sizeof *x);
  fill(x0, n, 1.3);
  const csde_model_output kinds[] = {CSDE_OUT_SCORE, CSDE_OUT_NOISE, CSDE_OUT_X0, CSDE_OUT_V};
  const csde_process procs[] = {CSDE_PROC_PFODE, CSDE_PROC_REVERSE_SDE};
  const char *solvers[] = {"euler", "heun"};
  for (size_t q = 0; q < 2; q++) {
    csde_problem P = problem(&u, procs[q], batch);
    csde_solve_params par = csde_solve_default_params();
    par.solver = solvers[q];
    par.steps = 10;
    par.seed = 3;
    csde_err err = {0};
    memcpy(xr, x0, n * sizeof *x);
    int s = csde_solve(&P, &par, xr, NULL, &err);
    ok(!s, "kinds: %s %s with the cscore model%s%s", csde_process_name(procs[q]), solvers[q],
       s ? ": " : "", s ? err.msg : "");
    double xmax = 0;
    for (size_t i = 0; i < n; i++) xmax = fmax(xmax, fabs(xr[i]));
    for (size_t k = 0; k < 4; k++) {
      wrap w = {u.M, u.s, kinds[k], tau, D, malloc(tau * D * sizeof(double)),
                malloc(tau * tau * sizeof(double)), malloc(n * sizeof(double))};
      csde_model *W = NULL;
      s = csde_model_alloc(&W, csde_model_output_name(kinds[k]), wrap_fn, kinds[k], &w, NULL, &err);
      P.model = W;
      memcpy(x, x0, n * sizeof *x);
      if (!s) s = csde_solve(&P, &par, x, NULL, &err);
      double d = 0;
      for (size_t i = 0; i < n; i++) d = fmax(d, fabs(x[i] - xr[i]));
      ok(!s && d <= 1e-12 * xmax, "kinds: %s answer gives the cscore result (%s %s): rel %.2e <= 1e-12%s%s",
         csde_model_output_name(kinds[k]), csde_process_name(procs[q]), solvers[q], d / xmax,
         s ? ": " : "", s ? err.msg : "");
      csde_model_free(W);
      free(w.mean);
      free(w.cov);
      free(w.sc);
    }
  }
  free(x0);
  free(xr);
  free(x);
  setup_free(&u);
}

/* ---- the plugin example ---- */
static void test_plugin(void)
{
  const char *path = getenv("CSDE_PLUGIN_MLP");
  if (!path || !*path) {
    ok(1, "plugin # SKIP CSDE_PLUGIN_MLP not set");
    return;
  }
  const size_t tau = 6, D = 16, batch = 3, n = batch * tau * D;
  csde_err err = {0};
  csde_model *M = NULL;
  csde_cov *C = NULL;
  csde_schedule *s = NULL;
  csde_cov_ws *ws = NULL;
  int st = csde_model_plugin_load(&M, path, "hidden=8,seed=3", tau, D, &err);
  if (!ok(!st && M, "plugin loads from %s%s%s", path, st ? ": " : "", st ? err.msg : "")) return;
  ok(csde_model_output_of(M) == CSDE_OUT_NOISE, "plugin model '%s' answers %s", csde_model_name(M),
     csde_model_output_name(csde_model_output_of(M)));
  st = csde_cov_alloc(&C, "ar1:rho=0.9", tau, NULL, &err);
  if (!st) st = csde_schedule_alloc(&s, "vp-linear", &err);
  if (!st) st = csde_cov_ws_alloc(&ws, C, D, 1, &err);
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  if (!st) st = csde_cov_sample(C, ws, (csde_rng_key){8, 0}, 0, batch, x, &err);
  memcpy(y, x, n * sizeof *y);
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_REVERSE_SDE;
  P.tau = tau;
  P.D = D;
  P.batch = batch;
  P.C = C;
  P.sched = s;
  P.model = M;
  csde_solve_params par = csde_solve_default_params();
  par.steps = 50;
  par.seed = 1;
  csde_solve_stats sst;
  if (!st) st = csde_solve(&P, &par, x, &sst, &err);
  ok(!st && all_finite(x, n) && sst.nfe == 50, "plugin: 50-step reverse SDE, finite output, nfe %zu%s%s",
     sst.nfe, st ? ": " : "", st ? err.msg : "");
  if (!st) st = csde_solve(&P, &par, y, NULL, &err);
  ok(!st && !memcmp(x, y, n * sizeof *x), "plugin: the same solve twice gives the same bits");
  free(x);
  free(y);
  csde_cov_ws_free(ws);
  csde_model_free(M);
  csde_schedule_free(s);
  csde_cov_free(C);
}

/* ---- determinism ----
 * Noise is keyed by (seed, sample, step, element), never by the thread or the batch
 * layout (STYLE.md), so: threads 1 vs 2 give the same bits, and sample b of a batch of 4
 * equals the same sample solved alone with first_sample = b. D = 64 makes the state large
 * enough to be split across threads. */
static void test_determinism(void)
{
  setup u;
  if (setup_make(&u, 6, 64, "vp-linear")) return;
  const size_t B = 4, per = u.tau * u.D, n = B * per;
  double *x0 = malloc(n * sizeof *x0), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  fill(x0, n, 2.1);
  struct {
    const char *solver;
    csde_noise_kind noise;
    csde_process proc;
  } cases[] = {
    {"euler", CSDE_NOISE_STREAM, CSDE_PROC_REVERSE_SDE},
    {"heun", CSDE_NOISE_STREAM, CSDE_PROC_REVERSE_SDE},
    {"euler", CSDE_NOISE_PATH, CSDE_PROC_REVERSE_SDE},
    {"heun", CSDE_NOISE_PATH, CSDE_PROC_REVERSE_SDE},
    {"em", CSDE_NOISE_PATH, CSDE_PROC_FORWARD_SDE},
    {"rk45", CSDE_NOISE_STREAM, CSDE_PROC_PFODE},
    {"dopri5", CSDE_NOISE_STREAM, CSDE_PROC_PFODE},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    const char *nk = cases[c].noise == CSDE_NOISE_PATH ? "path" : "stream";
    const char *pn = csde_process_name(cases[c].proc);
    csde_problem P = problem(&u, cases[c].proc, B);
    csde_solve_params par = csde_solve_default_params();
    par.solver = cases[c].solver;
    par.steps = 16;
    par.noise = cases[c].noise;
    par.seed = 77;
    csde_err err = {0};
    int s = 0;
    memcpy(a, x0, n * sizeof *a);
    memcpy(b, x0, n * sizeof *b);
    par.threads = 1;
    s |= csde_solve(&P, &par, a, NULL, &err);
    par.threads = 2;
    s |= csde_solve(&P, &par, b, NULL, &err);
    ok(!s && !memcmp(a, b, n * sizeof *a), "determinism %s %s %s: threads 1 and 2 bitwise equal%s%s",
       pn, cases[c].solver, nk, s ? ": " : "", s ? err.msg : "");
    /* each sample alone, first_sample = j */
    P.batch = 1;
    int same = 1;
    for (size_t j = 0; j < B && !s; j++) {
      par.first_sample = j;
      par.threads = 1;
      memcpy(b, x0 + j * per, per * sizeof *b);
      s = csde_solve(&P, &par, b, NULL, &err);
      same &= !memcmp(b, a + j * per, per * sizeof *b);
    }
    ok(!s && same, "determinism %s %s %s: batch of 4 = each sample alone with first_sample%s%s",
       pn, cases[c].solver, nk, s ? ": " : "", s ? err.msg : "");
  }
  /* the discrete samplers too (threads) */
  {
    csde_problem P = problem(&u, CSDE_PROC_REVERSE_SDE, B);
    csde_solve_params par = csde_solve_default_params();
    par.steps = 16;
    par.seed = 9;
    csde_err err = {0};
    memcpy(a, x0, n * sizeof *a);
    memcpy(b, x0, n * sizeof *b);
    par.threads = 1;
    int s = csde_sample_ddim(&P, &par, 0.7, a, NULL, &err);
    par.threads = 2;
    s |= csde_sample_ddim(&P, &par, 0.7, b, NULL, &err);
    ok(!s && !memcmp(a, b, n * sizeof *a), "determinism ddim eta = 0.7: threads 1 and 2 bitwise equal");
  }
  free(x0);
  free(a);
  free(b);
  setup_free(&u);
}

/* ---- adaptive rk45: a recoverable model failure, output times ----
 * A model answering > 0 asks an adaptive solver to retry a smaller step (model.h): the
 * gaussian model wrapped so that its first call below t = 0.5 returns 1 must still reach
 * the exact flow to the accuracy of rtol = atol = 1e-8 (global error < 1e-6, as in
 * test_orders). Output times must be landed on exactly and shown to the observer. */
typedef struct {
  const csde_model *g;
  int refused;
} once;

static int once_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  once *o = user;
  if (t < 0.5 && !o->refused) {
    o->refused = 1;
    return 1;
  }
  return csde_model_call(o->g, t, batch, x, out);
}

typedef struct {
  double t[64];
  size_t n;
} times_seen;

static int record_t(size_t step, double t, const double *x, void *user)
{
  times_seen *r = user;
  (void)step;
  (void)x;
  if (r->n < 64) r->t[r->n++] = t;
  return 0;
}

static void test_adaptive(const char *solver)
{
  setup u;
  if (setup_make(&u, 6, 8, "vp-linear")) return;
  const size_t batch = 2, n = batch * u.tau * u.D;
  double *x0 = malloc(n * sizeof *x0), *xe = malloc(n * sizeof *xe), *x = malloc(n * sizeof *x);
  fill(x0, n, 0.5);
  csde_err err = {0};
  int s = csde_model_gaussian_flow_apply(u.M, 1.0, 1e-3, batch, x0, xe, &err);
  once o = {u.M, 0};
  csde_model *W = NULL;
  if (!s) s = csde_model_alloc(&W, "once", once_fn, CSDE_OUT_CSCORE, &o, NULL, &err);
  csde_problem P = problem(&u, CSDE_PROC_PFODE, batch);
  P.model = W;
  csde_solve_params par = csde_solve_default_params();
  par.solver = solver;
  par.steps = 0;
  par.rtol = par.atol = 1e-8;
  const double outs[] = {0.5, 0.1};
  times_seen seen = {{0}, 0};
  par.out_times = outs;
  par.n_out_times = 2;
  par.observer = record_t;
  par.observer_user = &seen;
  memcpy(x, x0, n * sizeof *x);
  csde_solve_stats st;
  if (!s) s = csde_solve(&P, &par, x, &st, &err);
  double em = 0;
  for (size_t i = 0; i < n; i++) em = fmax(em, fabs(x[i] - xe[i]));
  ok(!s && o.refused && em < 1e-6,
     "adaptive %s recovers from a model asking for a smaller step: max error %.2e < 1e-6 "
     "(nfe %zu, rejected %zu)%s%s", solver, em, st.nfe, st.rejected, s ? ": " : "",
     s ? err.msg : "");
  int hit5 = 0, hit1 = 0, mono = 1;
  for (size_t i = 0; i < seen.n; i++) {
    hit5 |= seen.t[i] == 0.5;
    hit1 |= seen.t[i] == 0.1;
    if (i) mono &= seen.t[i] < seen.t[i - 1];
  }
  ok(hit5 && hit1 && mono && seen.n == st.steps && seen.n && seen.t[seen.n - 1] == 1e-3,
     "adaptive %s lands exactly on the output times 0.5 and 0.1 and on eps (%zu observer "
     "calls)", solver, seen.n);
  /* threads never change a bit of an adaptive solve (the error norm sums fixed tiles) */
  P.model = u.M;
  par.observer = NULL;
  par.n_out_times = 0;
  double *y = malloc(n * sizeof *y);
  memcpy(x, x0, n * sizeof *x);
  memcpy(y, x0, n * sizeof *y);
  par.threads = 1;
  int s2 = csde_solve(&P, &par, x, NULL, &err);
  par.threads = 2;
  s2 |= csde_solve(&P, &par, y, NULL, &err);
  ok(!s2 && !memcmp(x, y, n * sizeof *x), "adaptive %s: threads 1 and 2 bitwise equal",
     solver);
  free(y);
  csde_model_free(W);
  free(x0);
  free(xe);
  free(x);
  setup_free(&u);
}

/* ---- one Euler-Maruyama step, written out ----
 * The fused step (noise drawn inside the update) must be the textbook formula
 *   x1 = x0 + h (-1/2 beta x0 - beta s(t0, x0)) + sqrt(beta) V' (sqrt|h| z),
 * z the streaming noise of step 0: csde_cov_sample with key (seed, 0), first sample 0.
 * D = 1100 spans two covariance tiles (of 1024 pixels) and a partial one. */
static void test_em_step(void)
{
  setup u;
  if (setup_make(&u, 6, 1100, "vp-linear")) return;
  const size_t batch = 3, n = batch * u.tau * u.D;
  double *x = malloc(n * sizeof *x), *s = malloc(n * sizeof *s), *z = malloc(n * sizeof *z);
  double *x0 = malloc(n * sizeof *x0);
  fill(x0, n, 0.3);
  /* V' by each method kind: a dense GEMM added in place, FFTs through a tile */
  const csde_cov_method methods[] = {CSDE_COV_DENSE, CSDE_COV_EMBED, CSDE_COV_CIRC_TCHAN};
  for (int mth = 0; mth < 3; mth++) {
    csde_err err = {0};
    csde_cov *C = NULL;
    csde_cov_ws *ws = NULL;
    csde_cov_params cp = csde_cov_default_params();
    cp.method = methods[mth];
    int st = csde_cov_alloc(&C, "ar1:rho=0.9", u.tau, &cp, &err);
    csde_problem P = problem(&u, CSDE_PROC_REVERSE_SDE, batch);
    P.C = C;
    csde_solve_params par = csde_solve_default_params();
    par.solver = "em";
    par.steps = 1;
    par.seed = 4242;
    par.threads = 2;
    memcpy(x, x0, n * sizeof *x);
    if (!st) st = csde_solve(&P, &par, x, NULL, &err);
    if (!st) st = csde_model_call(u.M, 1.0, batch, x0, s);
    if (!st) st = csde_cov_ws_alloc(&ws, C, u.D, 1, &err);
    if (!st) st = csde_cov_sample(C, ws, (csde_rng_key){4242, 0}, 0, batch, z, &err);
    const double t0 = 1.0, h = 1e-3 - 1.0, beta = csde_schedule_beta(u.s, t0);
    double emax = 0, xmax = 0;
    for (size_t i = 0; i < n && !st; i++) {
      double ref = x0[i] + h * (-0.5 * beta * x0[i] - beta * s[i]) + sqrt(beta) * sqrt(-h) * z[i];
      emax = fmax(emax, fabs(x[i] - ref));
      xmax = fmax(xmax, fabs(ref));
    }
    ok(!st && emax <= 1e-14 * xmax, "one fused Euler-Maruyama step, cov method %s = x0 + h f "
       "+ g V'(sqrt|h| z) (max diff %.2e, scale %.2f)%s%s", csde_cov_method_name(cp.method),
       emax, xmax, st ? ": " : "", st ? err.msg : "");
    csde_cov_ws_free(ws);
    csde_cov_free(C);
  }
  free(x), free(s), free(z), free(x0);
  setup_free(&u);
}

static void test_adaptive_all(void)
{
  test_adaptive("rk45");
  test_adaptive("dopri5");
}

/* ---- errors: every path provoked, status and message ---- */

typedef struct {
  int mode;     /* 0 NaN at index 5 once t < 0.75; 1 return -7; 2 return 3 */
} bad;

static int bad_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  bad *b = user;
  (void)x;
  memset(out, 0, batch * 6 * 4 * sizeof *out);
  if (b->mode == 1) return -7;
  if (b->mode == 2) return 3;
  if (t < 0.75) out[5] = NAN;
  return 0;
}

typedef struct {
  size_t stop_at, calls, last_step;
  double last_t;
  double *copy;
  size_t n;
} obs;

static int observer(size_t step, double t, const double *x, void *user)
{
  obs *o = user;
  o->calls++;
  o->last_step = step;
  o->last_t = t;
  memcpy(o->copy, x, o->n * sizeof *x);
  return step == o->stop_at;
}

static void test_errors(void)
{
  setup u;
  if (setup_make(&u, 6, 4, "vp-linear")) return;
  const size_t n = u.tau * u.D;
  double x[24];
  csde_err err;
  int s;

  /* a model that answers NaN at flat index 5 from step 3 on (t_3 = 1 - 3 (0.999/10) =
   * 0.7003 is the first node below 0.75): CSDE_ENAN naming t, step and index */
  bad b = {0};
  csde_model *Mb = NULL;
  csde_model_alloc(&Mb, "bad", bad_fn, CSDE_OUT_CSCORE, &b, NULL, NULL);
  csde_problem P = problem(&u, CSDE_PROC_PFODE, 1);
  P.model = Mb;
  csde_solve_params par = csde_solve_default_params();
  par.steps = 10;
  fill(x, n, 0.1);
  csde_err_clear(&err);
  csde_solve_stats st;
  s = csde_solve(&P, &par, x, &st, &err);
  ok_status(s, CSDE_ENAN, err.msg, "NaN", "model NaN: CSDE_ENAN");
  ok(strstr(err.msg, "t = 0.7003") && strstr(err.msg, "step 3") && strstr(err.msg, "index 5"),
     "model NaN: message names t = 0.7003, step 3 and index 5");
  ok(st.steps == 3, "model NaN: 3 steps completed before it (%zu)", st.steps);
  /* the same through Euler-Maruyama's fused update (noise drawn inside the pass), with
   * streaming and path noise */
  for (int k = 0; k < 2; k++) {
    csde_problem Ps = problem(&u, CSDE_PROC_REVERSE_SDE, 1);
    Ps.model = Mb;
    csde_solve_params ps = par;
    ps.noise = k ? CSDE_NOISE_PATH : CSDE_NOISE_STREAM;
    ps.steps = 8;
    fill(x, n, 0.1);
    csde_err_clear(&err);
    s = csde_solve(&Ps, &ps, x, &st, &err);
    ok(s == CSDE_ENAN && strstr(err.msg, "step 3") && strstr(err.msg, "index 5") &&
           st.steps == 3,
       "model NaN in the fused Euler-Maruyama step (%s noise): CSDE_ENAN at step 3, index 5 "
       "(%s)", k ? "path" : "stream", err.msg);
  }

  b.mode = 1; /* fatal */
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EBADFUNC, err.msg, "-7", "model returns -7: CSDE_EBADFUNC with the code");
  par.solver = "rk45";
  par.steps = 0;
  par.rtol = par.atol = 1e-6;
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EBADFUNC, err.msg, "-7", "model returns -7 in adaptive rk45: CSDE_EBADFUNC");

  b.mode = 2; /* recoverable, but a fixed step cannot shrink */
  par = csde_solve_default_params();
  par.steps = 10;
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_ERETRY, err.msg, "smaller step", "model returns 3 in a fixed-step solve: CSDE_ERETRY");
  csde_model_free(Mb);

  /* impossible grids */
  P = problem(&u, CSDE_PROC_PFODE, 1);
  P.eps = 1.0; /* eps >= T */
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EDOM, err.msg, "eps", "eps >= T: CSDE_EDOM");
  P.eps = 1e-3;
  par.steps = 0;
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "zero steps", "zero steps: CSDE_EINVAL");
  par.steps = 10;
  par.grid = "spiral";
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok(s != 0 && err.msg[0], "unknown grid kind 'spiral' fails (status %d: %s)", s, err.msg);
  par.grid = "uniform";
  csde_err_clear(&err);
  s = csde_sample_ddim(&P, &(csde_solve_params){.steps = 0, .grid = "uniform"}, 0.0, x, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "zero steps", "ddim with zero steps: CSDE_EINVAL");

  /* solvers */
  par.solver = "rk99";
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "unknown", "unknown solver 'rk99': CSDE_EINVAL");
  P = problem(&u, CSDE_PROC_REVERSE_SDE, 1);
  par.solver = "rk45";
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "euler, heun", "rk45 on the reverse SDE: CSDE_EINVAL listing the SDE solvers");
  par.solver = "heun";
  par.rtol = 1e-6;
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "path noise", "heun with rtol and stream noise: CSDE_EINVAL (adaptive SDE steps need path noise)");
  par.rtol = 0;

  /* the NFE guard: adaptive rk45 needs ~200 evaluations at 1e-8 (test_orders); allow 20 */
  P = problem(&u, CSDE_PROC_PFODE, 1);
  par = csde_solve_default_params();
  par.solver = "rk45";
  par.steps = 0;
  par.rtol = par.atol = 1e-8;
  par.max_nfe = 20;
  fill(x, n, 0.1);
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, &st, &err);
  ok_status(s, CSDE_EMAXITER, err.msg, "NFE", "NFE guard (max_nfe 20, adaptive rk45): CSDE_EMAXITER");
  ok(st.nfe <= 20, "NFE guard: at most 20 evaluations made (%zu)", st.nfe);

  /* an observer that stops after step 4: clean stop, counted */
  double copy[24];
  obs o = {4, 0, 0, 0, copy, n};
  par = csde_solve_default_params();
  par.steps = 10;
  par.observer = observer;
  par.observer_user = &o;
  fill(x, n, 0.1);
  csde_err_clear(&err);
  s = csde_solve(&P, &par, x, &st, &err);
  ok(s == 0 && st.stopped == 1 && st.steps == 4 && st.nfe == 4 && o.calls == 4,
     "observer stop: status %d, stopped %d, steps %zu, nfe %zu, observer calls %zu", s, st.stopped,
     st.steps, st.nfe, o.calls);
  ok(!memcmp(copy, x, n * sizeof *x) && fabs(o.last_t - (1 - 4 * 0.0999)) < 1e-12,
     "observer stop: x is the state the observer saw last, at t_4 = %.6f", o.last_t);
  setup_free(&u);
}

/* ---- the model's context (csde_model_alloc_ctx) ---- */

typedef struct {
  const csde_model *g; /* the gaussian model whose answer it passes on */
  const csde_problem *P;
  size_t calls, bad, fail_at;
  double last_t;
} ctx_rec;

/* Checks every field against what the solve must give, answers as the gaussian model
 * does, and fails at call fail_at with a reason. */
static int ctx_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  ctx_rec *r = user;
  const csde_problem *P = r->P;
  double B = csde_schedule_int_beta(P->sched, c->t), ab = exp(-B);
  size_t N = csde_schedule_nsteps(P->sched);
  long idx = N ? lround(c->t * (double)N) : -1;
  int good = c->step == r->calls && c->batch == P->batch && c->tau == P->tau && c->D == P->D &&
             c->abar == ab && fabs(c->sigma - sqrt((1 - ab) / ab)) <= 1e-12 * c->sigma &&
             fabs(c->logsnr - log(ab / (1 - ab))) <= 1e-9 * fmax(1, fabs(c->logsnr)) &&
             c->index == idx && c->C == P->C && c->sched == P->sched && c->errmsg &&
             c->errlen >= 64 && (r->calls == 0 || c->t < r->last_t);
  r->bad += !good;
  r->last_t = c->t;
  if (++r->calls == r->fail_at) {
    snprintf(c->errmsg, c->errlen, "the network saw sigma %.3g", c->sigma);
    return -3;
  }
  return csde_model_call(r->g, c->t, c->batch, x, out);
}

static void test_context(void)
{
  setup u;
  if (setup_make(&u, 5, 3, "vp-linear")) return;
  const size_t batch = 2, n = batch * u.tau * u.D;
  double *x = malloc(n * sizeof *x), *xr = malloc(n * sizeof *xr);
  csde_problem P = problem(&u, CSDE_PROC_REVERSE_SDE, batch);
  csde_solve_params par = csde_solve_default_params();
  par.solver = "euler";
  par.steps = 12;
  par.seed = 4;
  csde_err err = {0};
  fill(x, n, 0.7);
  memcpy(xr, x, n * sizeof *x);
  int s = csde_solve(&P, &par, xr, NULL, &err); /* the gaussian model itself */
  ctx_rec r = {u.M, &P, 0, 0, 0, 0};
  csde_model *W = NULL;
  if (!s) s = csde_model_alloc_ctx(&W, "ctx", ctx_fn, CSDE_OUT_CSCORE, &r, NULL, &err);
  P.model = W;
  if (!s) s = csde_solve(&P, &par, x, NULL, &err);
  ok(!s && r.calls == 12 && r.bad == 0 && !memcmp(x, xr, n * sizeof *x),
     "context: 12 calls, step, t, abar, sigma, logsnr, index, C, sched and sizes right "
     "(%zu wrong), the same bits as the plain model%s%s", r.bad, s ? ": " : "",
     s ? err.msg : "");
  /* a failing call's reason joins the library's message */
  r = (ctx_rec){u.M, &P, 0, 0, 5, 0};
  fill(x, n, 0.7);
  s = csde_solve(&P, &par, x, NULL, &err);
  ok(s == CSDE_EBADFUNC && strstr(err.msg, "fatal code -3") && strstr(err.msg, "(step 4)") &&
     strstr(err.msg, ": the network saw sigma"), "context: the model's reason reaches the "
     "message: %s", err.msg);
  /* a discrete schedule: the index of t = i / N */
  csde_schedule *d = NULL;
  csde_model *G = NULL;
  s = csde_schedule_alloc(&d, "ddpm-linear:n=40", &err);
  if (!s) s = csde_model_gaussian_alloc(&G, u.C, d, u.D, u.mean, u.tau, NULL, &err);
  P.sched = d;
  par.grid = "uniform";
  r = (ctx_rec){G, &P, 0, 0, 0, 0};
  P.T = 1, P.eps = 0.05; /* 12 uniform steps from 1 to 0.05 land on no node but t = 1 */
  fill(x, n, 0.7);
  if (!s) s = csde_solve(&P, &par, x, NULL, &err);
  ok(!s && r.calls == 12 && r.bad == 0, "context, ddpm-linear:n=40: index = round(t N) "
     "(%zu wrong)%s%s", r.bad, s ? ": " : "", s ? err.msg : "");
  csde_model_free(G);
  csde_schedule_free(d);
  csde_model_free(W);
  free(x);
  free(xr);
  setup_free(&u);
}

int main(void)
{
  csde_init();
  quick = getenv("CSDE_TEST_QUICK") != NULL;
  struct {
    const char *name;
    void (*fn)(void);
  } tests[] = {{"forward exactness", test_forward_exact}, {"ddpm", test_ddpm},
               {"ddim", test_ddim}, {"output kinds", test_kinds}, {"plugin", test_plugin},
               {"determinism", test_determinism}, {"adaptive", test_adaptive_all}, {"em step", test_em_step},
               {"errors", test_errors}, {"context", test_context}};
  double t0 = now();
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    double t1 = now();
    tests[i].fn();
    printf("# %s: %.2f s\n", tests[i].name, now() - t1);
  }
  printf("# total %.2f s\n", now() - t0);
  return tap_done();
}
