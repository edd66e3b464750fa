/* Tests for the processes and exact models on every Gaussian path (issue 28):
 * x_t = alpha(t) x0 + sigma(t) V' z with the path's f = alpha'/alpha and
 * g^2 = (sigma^2)' - 2 f sigma^2 (docs/MATH.md, "Gaussian paths").
 *   1. the forward SDE's law at T from data N(m, S0) at t_min: mean r m, covariance
 *      r^2 S0 + (sigma_T^2 - r^2 sigma_0^2) C (r = alpha_T / alpha_0; at t_min = 0 of a VP
 *      or rf path this is alpha^2 S0 + sigma^2 C) within 4 standard errors. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/problem.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "tap.h"

static csde_schedule *make(const char *spec)
{
  csde_schedule *s = NULL;
  csde_err err = {0};
  int st = csde_schedule_alloc(&s, spec, &err);
  ok(st == 0 && s, "alloc '%s'%s%s", spec, st ? ": " : "", st ? err.msg : "");
  return s;
}

/* a fixed-seed standard normal (splitmix64 and Box-Muller): the tests' own data draw */
static uint64_t sm_state = 0x9e3779b97f4a7c15ull;
static double unif(void)
{
  uint64_t z = (sm_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void)
{
  return sqrt(-2 * log(unif())) * cos(6.283185307179586 * unif());
}

#define TAU 3
/* the data law N(m, S0), S0 = L L' */
static const double L0[TAU][TAU] = {{0.8, 0, 0}, {0.3, 0.6, 0}, {-0.2, 0.4, 0.5}};
static const double M0[TAU] = {0.5, -1.0, 0.25};

/* ---- 1. the forward SDE's marginal on a path ---- */

static void check_forward(const char *spec, double T, size_t steps)
{
  csde_schedule *s = make(spec);
  csde_cov *C = NULL;
  csde_err err = {0};
  if (!s || csde_cov_alloc(&C, "ar1:rho=0.5", TAU, NULL, &err)) {
    ok(0, "setup %s: %s", spec, err.msg);
    csde_schedule_free(s);
    return;
  }
  const size_t batch = 512, D = 8, n = batch * D; /* n = 4096 independent tau-vectors */
  double *x = malloc(batch * TAU * D * sizeof *x);
  for (size_t b = 0; b < batch; b++)
    for (size_t p = 0; p < D; p++) {
      double z[TAU];
      for (int i = 0; i < TAU; i++) z[i] = gauss();
      for (int i = 0; i < TAU; i++) {
        double v = M0[i];
        for (int j = 0; j <= i; j++) v += L0[i][j] * z[j];
        x[(b * TAU + (size_t)i) * D + p] = v;
      }
    }
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_FORWARD_SDE;
  P.tau = TAU, P.D = D, P.batch = batch, P.C = C, P.sched = s, P.T = T, P.eps = 0;
  csde_solve_params par = csde_solve_default_params();
  par.steps = steps;
  par.seed = 28;
  int st = csde_solve(&P, &par, x, NULL, &err);
  ok(st == 0, "forward-sde on %s to T = %g: %s", spec, T, st ? err.msg : "ok");
  if (!st) {
    double t0 = csde_problem_t_min(s);
    double r = csde_schedule_path_alpha(s, T) / csde_schedule_path_alpha(s, t0);
    double sT = csde_schedule_path_sigma(s, T), s0 = csde_schedule_path_sigma(s, t0);
    double want[TAU][TAU], mean[TAU] = {0}, cov[TAU][TAU] = {{0}};
    for (int i = 0; i < TAU; i++)
      for (int j = 0; j < TAU; j++) {
        double S0 = 0;
        for (int k = 0; k < TAU; k++) S0 += L0[i][k] * L0[j][k];
        want[i][j] = r * r * S0 + (sT * sT - r * r * s0 * s0) * csde_cov_entry(C, (size_t)i, (size_t)j);
      }
    for (size_t b = 0; b < batch; b++)
      for (size_t p = 0; p < D; p++)
        for (int i = 0; i < TAU; i++) mean[i] += x[(b * TAU + (size_t)i) * D + p] / (double)n;
    for (size_t b = 0; b < batch; b++)
      for (size_t p = 0; p < D; p++)
        for (int i = 0; i < TAU; i++)
          for (int j = 0; j < TAU; j++)
            cov[i][j] += (x[(b * TAU + (size_t)i) * D + p] - mean[i]) *
                         (x[(b * TAU + (size_t)j) * D + p] - mean[j]) / (double)(n - 1);
    double worst = 0, wmean = 0;
    for (int i = 0; i < TAU; i++) {
      double se_m = sqrt(want[i][i] / (double)n);
      wmean = fmax(wmean, fabs(mean[i] - r * M0[i]) / se_m);
      for (int j = 0; j < TAU; j++) {
        double se = sqrt((want[i][j] * want[i][j] + want[i][i] * want[j][j]) / (double)n);
        worst = fmax(worst, fabs(cov[i][j] - want[i][j]) / se);
      }
    }
    printf("# forward-sde %s T = %g: alpha^2 = %.4g, sigma^2 = %.4g, covariance off by "
           "%.2f SE at most, mean by %.2f SE\n", spec, T, r * r, sT * sT, worst, wmean);
    ok(worst < 4 && wmean < 4,
       "forward-sde on %s: the law at T = %g is N(r m, r^2 S0 + (sigma_T^2 - r^2 sigma_0^2) C) "
       "(covariance %.2f SE, mean %.2f SE, both < 4)", spec, T, worst, wmean);
  }
  free(x);
  csde_cov_free(C);
  csde_schedule_free(s);
}

static void check_spans(void)
{
  csde_schedule *e = make("edm:smin=0.002,smax=80"), *r = make("rf:shift=3"),
                *v = make("ve");
  if (!e || !r || !v) goto done;
  ok(csde_problem_t_max(e) == 80 && csde_problem_t_min(e) == 0.002,
     "edm: t_min = smin, t_max = smax");
  ok(csde_problem_t_max(r) == CSDE_T_COSINE && csde_problem_t_min(r) == 0,
     "rf: t_max = 0.999 (f infinite at 1), t_min = 0");
  ok(csde_problem_t_max(v) == 1 && csde_problem_t_min(v) == 0, "ve: [0, 1]");
  /* a span outside the path's domain: refused, naming the span */
  csde_cov *C = NULL;
  csde_err err = {0};
  if (csde_cov_alloc(&C, "ar1:rho=0.5", TAU, NULL, &err)) goto done;
  double x[TAU * 2] = {0};
  csde_problem P = csde_problem_default();
  P.process = CSDE_PROC_FORWARD_SDE;
  P.tau = TAU, P.D = 2, P.batch = 1, P.C = C, P.sched = e, P.T = 81, P.eps = 0;
  csde_solve_params par = csde_solve_default_params();
  par.steps = 4;
  int st = csde_solve(&P, &par, x, NULL, &err);
  ok(st == CSDE_EDOM && err.param && !strcmp(err.param, CSDE_PARAM_SPAN) &&
         strstr(err.msg, "edm"),
     "edm forward-sde to T = 81 > smax: EDOM, param span: %s", err.msg);
  csde_cov_free(C);
done:
  csde_schedule_free(e);
  csde_schedule_free(r);
  csde_schedule_free(v);
}

int main(void)
{
  check_spans();
  check_forward("vp-linear", 1.0, 1000);
  check_forward("edm:smin=0.01,smax=1.5", 1.5, 1000);
  check_forward("ve:smin=0.01,smax=2", 1.0, 1000);
  check_forward("rf:shift=3", 0.5, 1000);
  check_forward("rf:shift=3", 0.9, 2000);
  return tap_done();
}
