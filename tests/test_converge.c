/* Convergence experiments (src/experiment/converge.h): the analysis on synthetic errors,
 * the solve stage on the exact gaussian problem, determinism over threads, and errors.
 *
 * Fast (default): the bootstrap's coverage on synthetic per-path errors with a known
 * slope; screening decisions; the ODE orders of euler, heun and rk45 against the exact
 * flow (intervals contain 1, 2 and 5; well under a second); bitwise identity for 1 and 3
 * threads; every error path.
 * Slow (argument "slow", suite 'slow'): EM strong against a fine reference on the same
 * Brownian path (interval contains 1), Heun weak on the reverse SDE from the exact p_T
 * with the vp-linear (non-constant beta) schedule (interval contains 2), and, printed for
 * the record, Heun strong.
 * CSDE_TEST_QUICK (valgrind) shrinks the sizes and skips the statistical assertions. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corrsde/corrsde.h"
#include "experiment/converge.h"
#include "tap.h"

static int quick = 0;

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- synthetic per-path errors ---- */

/* v[i][k] = c h_k^p exp(sp z_i + sl z_ik): E v_k = const h_k^p exactly, so the true
 * slope of the mean error is p; paths share the factor exp(sp z_i) across levels (the
 * correlation the bootstrap must keep by resampling whole paths). */
static void synth(double *v, size_t N, size_t L, const double *h, double p, double sp, double sl,
                  uint64_t seed)
{
  double *z = malloc(N * (L + 1) * sizeof *z);
  csde_rng_key key = {seed, 7};
  csde_rng_normal(key, 0, N * (L + 1), z);
  for (size_t i = 0; i < N; i++)
    for (size_t k = 0; k < L; k++)
      v[i * L + k] = 0.3 * pow(h[k], p) * exp(sp * z[i * (L + 1)] + sl * z[i * (L + 1) + 1 + k]);
  free(z);
}

static csde_conv_data synth_data(const double *v, size_t N, size_t L, const double *h, double p)
{
  csde_conv_data d;
  memset(&d, 0, sizeof d);
  d.N = N;
  d.L = L;
  d.Q = 1;
  d.v = v;
  d.h = h;
  d.theory = p;
  d.boot = 1000;
  d.conf = 0.95;
  d.threads = 2;
  return d;
}

/* Over R repetitions with independent data and bootstrap seeds, the 95% interval of the
 * order covers the true slope in 95% of them, within 3 binomial standard errors. */
static void test_coverage(void)
{
  const size_t N = quick ? 100 : 400, L = 5, R = quick ? 4 : 200;
  const double p = 1.5;
  double h[5], *v = malloc(N * L * sizeof *v);
  for (size_t k = 0; k < L; k++) h[k] = 1.0 / (double)(8 << k);
  size_t cover = 0, curved = 0, failed = 0;
  double width = 0, t0 = now();
  for (size_t r = 0; r < R; r++) {
    synth(v, N, L, h, p, 0.3, 0.3, 1000 + r);
    csde_conv_data d = synth_data(v, N, L, h, p);
    d.boot_seed = 99 + r;
    if (quick) d.boot = 200;
    csde_conv_fit f;
    csde_err err = {0};
    if (csde_conv_analyse(&d, &f, &err)) {
      failed++;
      continue;
    }
    cover += f.order_lo <= p && p <= f.order_hi;
    curved += (size_t)f.curved;
    width += f.order_hi - f.order_lo;
    csde_conv_fit_free(&f);
  }
  ok(!failed, "coverage: %zu analyses, none failed", R);
  double rate = (double)cover / (double)R, se = sqrt(0.95 * 0.05 / (double)R);
  printf("# coverage of the true slope %g: %zu/%zu = %.3f (mean width %.4f, curvature term "
         "chosen %zu times), %.2f s\n",
         p, cover, R, rate, width / (double)R, curved, now() - t0);
  if (quick)
    ok(1, "coverage %.3f # SKIP quick mode", rate);
  else
    ok(fabs(rate - 0.95) <= 3 * se, "coverage %.3f within 0.95 +- 3 SE (%.3f)", rate, 3 * se);
  free(v);
}

/* Screening on synthetic errors: a pre-asymptotic coarse level, a level below the float
 * floor, an unresolved level; a pure power law without noise gives its exponent. */
static void test_screening(void)
{
  const size_t N = 64, L = 7;
  double h[7], *v = malloc(N * L * sizeof *v);
  for (size_t k = 0; k < L; k++) h[k] = 1.0 / (double)(4 << k);
  /* exact power law, p = 2, plus small noise; level 0 pre-asymptotic (x 4), level 6 at
   * 1e-13 (below a float floor of 1e-12), level 5 carried by one path (unresolved: the
   * bootstrap draws that path 0, 1, 2, ... times) */
  synth(v, N, L, h, 2.0, 0.05, 0.01, 5);
  for (size_t i = 0; i < N; i++) {
    v[i * L + 0] *= 4;
    v[i * L + 6] = 1e-13;
    v[i * L + 5] *= i == 7 ? (double)N : 1e-3;
  }
  csde_conv_data d = synth_data(v, N, L, h, 2.0);
  d.float_floor = 1e-12;
  csde_conv_fit f;
  csde_err err = {0};
  int s = csde_conv_analyse(&d, &f, &err);
  if (!ok(!s, "screening: analysis%s%s", s ? ": " : "", err.msg)) {
    free(v);
    return;
  }
  for (size_t k = 0; k < L; k++) printf("# level %zu: %.4e  %s\n", k, f.err[k], f.reason[k]);
  ok(f.decision[0] == CSDE_CONV_DROP_PREASYMPTOTIC, "coarse level x4 off the power law: %s",
     f.reason[0]);
  ok(f.decision[6] == CSDE_CONV_DROP_FLOOR && strstr(f.reason[6], "float64"),
     "level at 1e-13: %s", f.reason[6]);
  ok(f.decision[5] == CSDE_CONV_DROP_UNRESOLVED, "level with a huge spread: %s", f.reason[5]);
  ok(f.nused == 4 && fabs(f.order - 2) < 0.1 && f.order_lo <= 2 && 2 <= f.order_hi,
     "order from the 4 good levels %.4f [%.4f, %.4f] contains 2", f.order, f.order_lo,
     f.order_hi);
  csde_conv_fit_free(&f);
  free(v);

  /* h-corrected power law e = h (1 - 3 h): the plain slope is biased, the curvature
   * term is resolved and the interval contains 1 */
  const size_t N2 = 32, L2 = 5;
  double h2[5], *w = malloc(N2 * L2 * sizeof *w);
  for (size_t k = 0; k < L2; k++) h2[k] = 1.0 / (double)(8 << k);
  synth(w, N2, L2, h2, 1.0, 0.1, 0.001, 9);
  for (size_t i = 0; i < N2; i++)
    for (size_t k = 0; k < L2; k++) w[i * L2 + k] *= 1 - 3 * h2[k];
  d = synth_data(w, N2, L2, h2, 1.0);
  s = csde_conv_analyse(&d, &f, &err);
  if (ok(!s, "curvature: analysis")) {
    printf("# curved: order %.4f [%.4f, %.4f], plain %.4f, %s\n", f.order, f.order_lo,
           f.order_hi, f.order_plain, f.fit);
    ok(f.curved && f.order_lo <= 1 && 1 <= f.order_hi && fabs(f.order_plain - 1) > 0.05,
       "h correction resolved: order %.4f [%.4f, %.4f] contains 1 (plain slope %.4f)",
       f.order, f.order_lo, f.order_hi, f.order_plain);
    csde_conv_fit_free(&f);
  }

  /* bad sizes */
  d = synth_data(w, 1, L2, h2, 1.0);
  s = csde_conv_analyse(&d, &f, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "paths 1", "analysis of 1 path is refused");
  free(w);
}

/* ---- the gaussian problem ---- */

typedef struct {
  const csde_cov *C;
  const csde_schedule *s;
  size_t tau, D;
  int data_law; /* 1: starts from p_0 (forward SDE), 0: from the exact p_T */
  double T;
  uint64_t seed;
  int allocs;
  int custom;        /* 1: the data law below, else mean 0.1 and S0 0.25 ar1(0.95) */
  void *log;         /* the progress tests' record */
  double mean;
  const double *S0;  /* tau x tau */
} gauss_user;

static int g_alloc(void *user, int t, const csde_model **m, void **st, csde_err *err)
{
  gauss_user *u = user;
  (void)t;
  csde_model *M = NULL;
  double mean = u->custom ? u->mean : 0.1; /* S0: the model's default 0.25 ar1(0.95) */
  int s = csde_model_gaussian_alloc(&M, u->C, u->s, u->D, &mean, 1, u->custom ? u->S0 : NULL,
                                    err);
  *m = M;
  *st = M;
  u->allocs++;
  return s;
}

static void g_free(void *user, void *st)
{
  (void)user;
  csde_model_free(st);
}

static int g_start(void *user, void *st, size_t first, size_t n, double *x, csde_err *err)
{
  gauss_user *u = user;
  csde_rng_key key = {u->seed, (uint64_t)1 << 63};
  return csde_model_gaussian_sample(st, u->data_law ? 0.0 : u->T, key, first, n, x, err);
}

typedef struct {
  csde_cov *C;
  csde_schedule *s;
  gauss_user u;
  csde_conv_hooks hooks;
} gauss_problem;

static int gp_make_cov(gauss_problem *g, size_t tau, size_t D, const char *sched,
                       const char *cov)
{
  csde_err err = {0};
  memset(g, 0, sizeof *g);
  int s = csde_cov_alloc(&g->C, cov, tau, NULL, &err);
  if (!s) s = csde_schedule_alloc(&g->s, sched, &err);
  g->u.C = g->C;
  g->u.s = g->s;
  g->u.tau = tau;
  g->u.D = D;
  g->u.T = 1.0;
  g->hooks.user = &g->u;
  g->hooks.thread_alloc = g_alloc;
  g->hooks.thread_free = g_free;
  g->hooks.start = g_start;
  if (s) printf("# setup: %s\n", err.msg);
  return s;
}

static int gp_make(gauss_problem *g, size_t tau, size_t D, const char *sched)
{
  return gp_make_cov(g, tau, D, sched, "ar1:rho=0.9");
}

static void gp_free(gauss_problem *g)
{
  csde_cov_free(g->C);
  csde_schedule_free(g->s);
}

static csde_conv_params gp_params(gauss_problem *g, csde_process proc, csde_conv_kind kind,
                                  const char *const *solvers, size_t ns, unsigned k0,
                                  unsigned k1, size_t paths)
{
  csde_conv_params p = csde_conv_default_params();
  p.P.process = proc;
  if (proc == CSDE_PROC_FORWARD_SDE) p.P.eps = 0;
  p.P.tau = g->u.tau;
  p.P.D = g->u.D;
  p.P.C = g->C;
  p.P.sched = g->s;
  p.solvers = solvers;
  p.nsolvers = ns;
  p.kind = kind;
  p.k0 = k0;
  p.k1 = k1;
  p.paths = paths;
  g->u.data_law = proc == CSDE_PROC_FORWARD_SDE;
  return p;
}

static void print_result(const csde_conv_result *r)
{
  printf("# reference: %s\n# estimator: %s\n", r->reference, r->estimator);
  for (size_t i = 0; i < r->nsolvers; i++) {
    const csde_conv_fit *f = &r->s[i].fit;
    printf("# %s (%s):", r->s[i].name, r->s[i].reference);
    for (size_t k = 0; k < r->L; k++)
      printf(" %zu:%.3e%s", r->steps[k], f->err[k], f->decision[k] == CSDE_CONV_USED ? "" : "*");
    printf("\n#   slopes:");
    for (size_t k = 0; k + 1 < r->L; k++) printf(" %.3f", f->slope[k]);
    printf("\n#   order %.4f [%.4f, %.4f] (theory %g); %s\n", f->order, f->order_lo, f->order_hi,
           r->s[i].theory, f->fit);
    if (f->have_ref_check)
      printf("#   reference error %.3g, finest level %.3gx above it\n", f->ref_error,
             f->ref_ratio);
    if (r->s[i].exact_dev)
      printf("#   reference vs exact moments: %.3g (noise half-width %.3g)\n",
             r->s[i].exact_dev_norm, r->s[i].exact_dev_halfwidth);
  }
}

static int covers(const csde_conv_solver_result *s)
{
  return s->fit.order_lo <= s->theory && s->theory <= s->fit.order_hi;
}

/* PF-ODE against the exact flow: euler 1, heun 2, rk45 (GSL rkf45, 5th-order solution) 5. */
static void test_ode_orders(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 8, 16, "vp-linear"), "ode: setup")) return;
  const char *solvers[] = {"euler", "heun", "rk45"};
  csde_conv_params p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, solvers, 3, 3, 8, 16);
  p.threads = 2;
  csde_conv_result r;
  csde_err err = {0};
  double t0 = now();
  int s = csde_conv_run(&p, &g.hooks, &r, &err);
  if (ok(!s, "ode: euler, heun, rk45 at 8..256 steps, 16 paths, exact flow (%.2f s)%s%s",
         now() - t0, s ? ": " : "", err.msg)) {
    print_result(&r);
    ok(r.ref_exact && r.s[0].vref == NULL, "ode: the reference is the exact flow");
    for (size_t i = 0; i < 3; i++)
      ok(covers(&r.s[i]), "ode order of %s: %.4f [%.4f, %.4f] contains %g", r.s[i].name,
         r.s[i].fit.order, r.s[i].fit.order_lo, r.s[i].fit.order_hi, r.s[i].theory);
    ok(r.s[0].fit.decision[0] == CSDE_CONV_DROP_PREASYMPTOTIC,
       "euler's coarsest level (slope %.2f) is dropped as pre-asymptotic", r.s[0].fit.slope[0]);
    int rms_ge = 1;
    for (size_t i = 0; i < 3; i++)
      for (size_t k = 0; k < r.L; k++) rms_ge &= r.s[i].fit.rms[k] >= r.s[i].fit.err[k];
    ok(rms_ge, "RMS variant >= mean at every level (Jensen)");
    csde_conv_result_free(&r);
  }
  gp_free(&g);
}

/* Issue 10, item 13: the ODE error is deterministic, so the bootstrap interval of the
 * order is nearly a point and the fit's misfit is the truncation of the error expansion;
 * the interval must come from that truncation, not from the sampling noise scaled up.
 * `corrsde converge`'s default problem (8 frames of 4x4, levels 3..8, 16 paths, the
 * default solvers euler, heun, rk45, the exact flow) with data N(0, 0.25 ar1(rho)) for
 * rho = 0, 0.5, 0.95 and noise C = ar1(0.9) or mixed(alpha = 1): every interval contains
 * the theoretical order (1, 2, 5) and has half-widths below 0.5. Before, heun's interval
 * was [-3.92, 8.15] for rho = 0 and ar1 C (a Birge factor of 4e4 on a width of 1e-4). */
static void test_ode_settings(void)
{
  static const char *const covs[] = {"ar1:rho=0.9", "mixed:alpha=1"};
  static const double rhos[] = {0, 0.5, 0.95};
  const char *solvers[] = {"euler", "heun", "rk45"};
  const size_t tau = 8;
  double S0[64];
  int all_cover = 1, all_narrow = 1, all_run = 1;
  double widest = 0, t0 = now();
  const size_t nc = quick ? 1 : 2, nq = quick ? 1 : 3; /* valgrind: the first setting */
  for (size_t c = 0; c < nc; c++)
    for (size_t q = 0; q < nq; q++) {
      gauss_problem g;
      if (gp_make_cov(&g, tau, 16, "vp-linear", covs[c])) {
        all_run = 0;
        continue;
      }
      for (size_t i = 0; i < tau; i++) /* S0 = 0.5^2 rho^|i-j| */
        for (size_t j = 0; j < tau; j++)
          S0[i * tau + j] = 0.25 * pow(rhos[q], (double)(i > j ? i - j : j - i));
      g.u.custom = 1;
      g.u.mean = 0;
      g.u.S0 = S0;
      csde_conv_params p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, solvers, 3, 3, 8, 16);
      p.threads = 2;
      csde_conv_result r;
      csde_err err = {0};
      int s = csde_conv_run(&p, &g.hooks, &r, &err);
      if (s) {
        printf("# %s, rho %g: %s\n", covs[c], rhos[q], err.msg);
        all_run = 0;
        gp_free(&g);
        continue;
      }
      for (size_t i = 0; i < 3; i++) {
        const csde_conv_fit *f = &r.s[i].fit;
        double hw = fmax(f->order - f->order_lo, f->order_hi - f->order);
        int cov_ok = covers(&r.s[i]), narrow = hw < 0.5;
        printf("# %-13s rho %-4g %-5s order %.4f [%.4f, %.4f] (theory %g)%s%s; %s\n", covs[c],
               rhos[q], r.s[i].name, f->order, f->order_lo, f->order_hi, r.s[i].theory,
               cov_ok ? "" : " MISSES", narrow ? "" : " WIDE", f->fit);
        all_cover &= cov_ok;
        all_narrow &= narrow;
        widest = fmax(widest, hw);
      }
      csde_conv_result_free(&r);
      gp_free(&g);
    }
  ok(all_run, "ode settings: %zu runs of euler, heun, rk45 (%.2f s)", nc * nq, now() - t0);
  ok(all_cover, "ode settings: every interval contains the theoretical order");
  ok(all_narrow, "ode settings: every half-width is below 0.5 (widest %.3f)", widest);
}

/* The same on synthetic, nearly deterministic errors: per-path factors shared by every
 * level times h^2 (1 - 2 h + 4 h^2 ...) with h up to 1/4, where the h^2 term still bends
 * the slope, and a noise of 1e-6 relative per level (so the bootstrap sees almost none
 * in the slope). The interval contains 2, is narrow, and its width comes from the
 * truncation, not from the noise. */
static void test_deterministic_synth(void)
{
  const size_t N = 16, L = 6;
  double h[6], *v = malloc(N * L * sizeof *v), z[16 * 7];
  for (size_t k = 0; k < L; k++) h[k] = 1.0 / (double)(4 << k);
  csde_rng_key key = {3, 7};
  csde_rng_normal(key, 0, N * (L + 1), z);
  for (size_t i = 0; i < N; i++)
    for (size_t k = 0; k < L; k++)
      v[i * L + k] = exp(0.3 * z[i * (L + 1)] + 1e-6 * z[i * (L + 1) + 1 + k]) * h[k] * h[k] *
                     (1 - 2 * h[k] + 4 * h[k] * h[k]) / (1 + 3 * h[k] * h[k] * h[k]);
  csde_conv_data d = synth_data(v, N, L, h, 2.0);
  csde_conv_fit f;
  csde_err err = {0};
  int s = csde_conv_analyse(&d, &f, &err);
  if (ok(!s, "deterministic: analysis%s%s", s ? ": " : "", err.msg)) {
    double hw = fmax(f.order - f.order_lo, f.order_hi - f.order);
    printf("# deterministic: order %.4f [%.4f, %.4f], bootstrap [%.6f, %.6f], %zu levels; "
           "%s\n", f.order, f.order_lo, f.order_hi, f.order_boot_lo, f.order_boot_hi, f.nused,
           f.fit);
    ok(f.order_lo <= 2 && 2 <= f.order_hi && hw < 0.5,
       "deterministic errors: order %.4f [%.4f, %.4f] contains 2, half-width %.3f < 0.5",
       f.order, f.order_lo, f.order_hi, hw);
    ok(f.order_boot_hi - f.order_boot_lo < 1e-4 && hw > 1e-3,
       "the bootstrap alone is nearly a point (width %.2g); the width is the truncation's",
       f.order_boot_hi - f.order_boot_lo);
    csde_conv_fit_free(&f);
  }
  free(v);
}

/* The same run with 1 and 3 threads: every per-path value and every output bitwise equal. */
static void test_threads(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 4, 8, "vp-linear"), "threads: setup")) return;
  const char *solvers[] = {"em", "heun"};
  csde_conv_result r[2];
  int st[2];
  for (int t = 0; t < 2; t++) {
    csde_conv_params p = gp_params(&g, CSDE_PROC_REVERSE_SDE, CSDE_CONV_WEAK_COV, solvers, 2,
                                   2, 4, 19);
    p.threads = t ? 3 : 1;
    p.boot = 200;
    g.u.allocs = 0;
    csde_err err = {0};
    st[t] = csde_conv_run(&p, &g.hooks, &r[t], &err);
    ok(!st[t] && g.u.allocs == p.threads, "threads %d: run, one model per thread (%d)%s%s",
       p.threads, g.u.allocs, st[t] ? ": " : "", err.msg);
  }
  if (!st[0] && !st[1]) {
    int same = r[0].N == r[1].N && r[0].L == r[1].L && r[0].Q == r[1].Q;
    for (size_t i = 0; same && i < 2; i++) {
      const csde_conv_solver_result *a = &r[0].s[i], *b = &r[1].s[i];
      size_t n = r[0].N * r[0].L * r[0].Q;
      same &= !memcmp(a->v, b->v, n * sizeof *a->v);
      same &= !memcmp(a->vref, b->vref, r[0].N * r[0].Q * sizeof *a->vref);
      same &= !memcmp(a->fit.err, b->fit.err, r[0].L * sizeof *a->fit.err);
      same &= !memcmp(a->fit.err_lo, b->fit.err_lo, r[0].L * sizeof *a->fit.err_lo);
      same &= !memcmp(&a->fit.order, &b->fit.order, sizeof a->fit.order) &&
              !memcmp(&a->fit.order_lo, &b->fit.order_lo, sizeof a->fit.order_lo) &&
              !memcmp(&a->fit.order_hi, &b->fit.order_hi, sizeof a->fit.order_hi);
      same &= a->exact_dev && b->exact_dev &&
              !memcmp(a->exact_dev, b->exact_dev, r[0].Q * sizeof *a->exact_dev);
    }
    ok(same, "1 and 3 threads give bitwise the same per-path values, intervals and orders");
    ok(r[0].s[0].exact_dev != NULL && isfinite(r[0].s[0].exact_dev_norm),
       "weak-cov on gaussian: the reference is checked against the exact moments (%.3g, "
       "half-width %.3g)", r[0].s[0].exact_dev_norm, r[0].s[0].exact_dev_halfwidth);
  }
  for (int t = 0; t < 2; t++)
    csde_conv_result_free(&r[t]);
  gp_free(&g);
}

/* ---- a model that fails inside the threaded loop ---- */

/* Per thread: the gaussian model and a wrapper of it that fails on a poisoned batch. */
typedef struct {
  csde_model *inner, *outer;
  size_t per; /* tau D */
} poison_state;

/* The gaussian model's C grad log p, except that a batch holding an entry above 1e3 (a
 * poisoned start) returns -5: a fatal model error in the middle of a solve. */
static int poison_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  const poison_state *ps = user;
  for (size_t j = 0; j < batch * ps->per; j++)
    if (fabs(x[j]) > 1e3) return -5;
  return csde_model_call(ps->inner, t, batch, x, out);
}

static int p_alloc(void *user, int t, const csde_model **m, void **st, csde_err *err)
{
  gauss_user *u = user;
  (void)t;
  poison_state *ps = calloc(1, sizeof *ps);
  if (!ps) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  ps->per = u->tau * u->D;
  *st = ps;
  double mean = 0.1;
  int s = csde_model_gaussian_alloc(&ps->inner, u->C, u->s, u->D, &mean, 1, NULL, err);
  if (!s) s = csde_model_alloc(&ps->outer, "poison", poison_fn, CSDE_OUT_CSCORE, ps, NULL, err);
  *m = ps->outer;
  u->allocs++;
  return s;
}

static void p_free(void *user, void *st)
{
  poison_state *ps = st;
  (void)user;
  if (!ps) return;
  csde_model_free(ps->outer);
  csde_model_free(ps->inner);
  free(ps);
}

/* Starts from the exact p_T; paths 5 and 13 poisoned (batches 1 and 3 of 4 paths). */
static int p_start(void *user, void *st, size_t first, size_t n, double *x, csde_err *err)
{
  gauss_user *u = user;
  poison_state *ps = st;
  csde_rng_key key = {u->seed, (uint64_t)1 << 63};
  int s = csde_model_gaussian_sample(ps->inner, u->T, key, first, n, x, err);
  for (size_t i = 0; i < n && !s; i++)
    if (first + i == 5 || first + i == 13) x[i * ps->per] = 1e4;
  return s;
}

/* A model error inside the threaded loop: the run fails with the model's error, names the
 * lowest failing batch (paths 4..7 of solver euler, though batch 3 fails as well), and
 * the message is the same for 1 thread and for 4 threads in every repetition (the items
 * share the lowest failing index atomically; the ones below it always run). */
static void test_model_failure(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 4, 4, "vp-linear"), "model failure: setup")) return;
  g.hooks.thread_alloc = p_alloc;
  g.hooks.thread_free = p_free;
  g.hooks.start = p_start;
  const char *solvers[] = {"euler", "heun"};
  char first[sizeof ((csde_err *)0)->msg] = "";
  int all_same = 1, all_fail = 1, reps = quick ? 2 : 20;
  for (int rep = 0; rep < reps; rep++) {
    csde_conv_params p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, solvers, 2, 2, 4, 16);
    p.threads = rep ? 4 : 1;
    p.boot = 100;
    csde_conv_result r;
    csde_err err = {0};
    g.u.allocs = 0;
    int s = csde_conv_run(&p, &g.hooks, &r, &err);
    csde_conv_result_free(&r); /* what finished before the failure */
    all_fail &= s == CSDE_EBADFUNC && g.u.allocs == p.threads;
    if (!rep) {
      snprintf(first, sizeof first, "%s", err.msg);
      printf("# message: %s\n", err.msg);
    } else if (strcmp(first, err.msg)) {
      all_same = 0;
      printf("# threads 4, repetition %d: %s\n", rep, err.msg);
    }
  }
  ok(all_fail, "a model error inside the loop fails the run with CSDE_EBADFUNC (1 and 4 "
               "threads, %d runs)", reps);
  ok(strstr(first, "solver euler, paths 4..7") && strstr(first, "-5"),
     "the message names the solver, the lowest failing batch and the model's code: %s", first);
  ok(all_same, "4 threads report the same failure as 1 thread in all %d repetitions", reps - 1);
  gp_free(&g);
}

/* Every refusal, with its message. */
static void test_errors(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 4, 4, "vp-linear"), "errors: setup")) return;
  const char *ode[] = {"euler"}, *sde[] = {"em"}, *bad[] = {"nope"}, *rk[] = {"rk45"};
  csde_conv_result r;
  csde_err err = {0};
  csde_conv_params p;
  int s;

  p = gp_params(&g, CSDE_PROC_FORWARD_SDE, CSDE_CONV_STRONG, sde, 1, 3, 6, 4);
  p.ref = CSDE_CONV_REF_FINE;
  p.ref_level = 6;
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "not finer than the finest level 6",
            "a reference level equal to the finest level is refused");
  p.ref_level = 5;
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "reference level 5 is not finer",
            "a reference level coarser than the finest level is refused");

  p = gp_params(&g, CSDE_PROC_FORWARD_SDE, CSDE_CONV_STRONG, sde, 1, 3, 6, 4);
  p.ref = CSDE_CONV_REF_EXACT;
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "no exact one", "an exact reference for strong errors");

  p = gp_params(&g, CSDE_PROC_REVERSE_SDE, CSDE_CONV_ODE, sde, 1, 3, 6, 4);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "error ode", "error ode on an SDE");

  p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, bad, 1, 3, 6, 4);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "'nope' is unknown", "unknown solver");

  p = gp_params(&g, CSDE_PROC_REVERSE_SDE, CSDE_CONV_STRONG, rk, 1, 3, 6, 4);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "does not fit", "an ODE solver on an SDE");

  p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, ode, 1, 6, 6, 4);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "K0 < K1", "a single level");

  p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, ode, 1, 3, 6, 1);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "at least 2", "one path");

  /* default reference levels: K1 + 5 for order 1, K1 + 3 for orders >= 2 */
  p = gp_params(&g, CSDE_PROC_FORWARD_SDE, CSDE_CONV_STRONG, sde, 1, 3, 6, 4);
  ok(csde_conv_default_ref_level(&p, "em") == 11 && csde_conv_default_ref_level(&p, "heun") == 11,
     "default reference level for strong order 1: K1 + 5 = %u",
     csde_conv_default_ref_level(&p, "em"));
  p.kind = CSDE_CONV_WEAK_COV;
  ok(csde_conv_default_ref_level(&p, "heun") == 9, "default for heun weak (order 2): K1 + 3 = %u",
     csde_conv_default_ref_level(&p, "heun"));
  gp_free(&g);
}

/* A small strong run: the reference check is there and sane. */
static void test_strong_small(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 4, 8, "vp-linear"), "strong small: setup")) return;
  const char *solvers[] = {"em"};
  csde_conv_params p = gp_params(&g, CSDE_PROC_FORWARD_SDE, CSDE_CONV_STRONG, solvers, 1, 2,
                                 quick ? 3 : 5, 8);
  p.boot = 200;
  csde_conv_result r;
  csde_err err = {0};
  int s = csde_conv_run(&p, &g.hooks, &r, &err);
  if (ok(!s, "strong small: run%s%s", s ? ": " : "", err.msg)) {
    print_result(&r);
    const csde_conv_fit *f = &r.s[0].fit;
    ok(f->have_ref_check && f->ref_diff > 0 && f->ref_error > 0 && r.s[0].ref_level == p.k1 + 5,
       "reference check at level %u: difference %.3g, reference error %.3g", r.s[0].ref_level,
       f->ref_diff, f->ref_error);
    int nonneg = 1;
    for (size_t i = 0; i < r.N * r.L; i++) nonneg &= r.s[0].v[i] >= 0;
    ok(nonneg, "per-path strong errors are norms (>= 0)");
    csde_conv_result_free(&r);
  }
  gp_free(&g);
}

/* ---- issue 24: progress, stopping, the shared reference, the 3-level rule ---- */

typedef struct {
  int n;
  csde_conv_progress ev[256]; /* every event but CSDE_CONV_WORKING */
  size_t working;
  pthread_t caller;
  int other_thread;           /* a call from a thread other than the caller's */
  size_t last_done;
  int monotone;               /* nfe_done never decreased */
  int stop_after;             /* stop at the STAGE event of the stop_after-th level (1-based) */
  int stop_at_plan;
  int levels_seen;
} prog_log;

/* The hooks' user is the gauss_user; its log field holds the prog_log. */
static int log_progress(void *user, const csde_conv_progress *p)
{
  prog_log *g = ((gauss_user *)user)->log;
  if (!pthread_equal(pthread_self(), g->caller)) g->other_thread = 1;
  if (p->nfe_done < g->last_done) g->monotone = 0;
  g->last_done = p->nfe_done;
  if (p->event == CSDE_CONV_WORKING) {
    g->working++;
    return 0;
  }
  if (g->n < 256) g->ev[g->n++] = *p;
  if (p->event == CSDE_CONV_STAGE && !p->reference) g->levels_seen++;
  return (g->stop_after && g->levels_seen >= g->stop_after) ||
         (g->stop_at_plan && p->event == CSDE_CONV_PLAN);
}

static void log_init(prog_log *g)
{
  memset(g, 0, sizeof *g);
  g->caller = pthread_self();
  g->monotone = 1;
}

/* The progress hook, on 3 threads: called from the calling thread only; the plan first
 * (its nfe_total the run's model calls), the estimate before the first level finishes,
 * then a STAGE per reference and level in the order of the stages (euler's reference,
 * its levels coarse to fine, heun's); nfe_done never falls and ends at the run's count.
 * A hook that returns 1 after euler's level 3 stops the run: CSDE_EFAILED "stopped",
 * euler's levels 2 and 3 kept (bitwise those of the whole run) and analysed, nothing of
 * heun. And for every fixed-step solver the plan's count is the run's. */
static void test_progress(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 4, 8, "vp-linear"), "progress: setup")) return;
  const char *solvers[] = {"euler", "heun"};
  csde_conv_params p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, solvers, 2, 2, 5, 9);
  p.ref = CSDE_CONV_REF_FINE;
  p.threads = 3;
  p.boot = 200;
  prog_log lg;
  log_init(&lg);
  g.u.log = &lg;
  g.hooks.progress = log_progress;
  csde_conv_result r, r2;
  csde_err err = {0};
  int s = csde_conv_run(&p, &g.hooks, &r, &err);
  if (!ok(!s, "progress: run%s%s", s ? ": " : "", err.msg)) {
    csde_conv_result_free(&r);
    gp_free(&g);
    return;
  }
  ok(!lg.other_thread && lg.monotone && lg.working > 0,
     "the hook is called from the calling thread only (3 threads), nfe_done never falls (%zu "
     "working calls)", lg.working);
  ok(lg.n > 0 && lg.ev[0].event == CSDE_CONV_PLAN && lg.ev[0].nfe_total == r.nfe &&
         !lg.ev[0].nfe_total_estimated,
     "the plan comes first; its model calls %zu are the run's %zu", lg.n ? lg.ev[0].nfe_total : 0,
     r.nfe);
  int est = -1, first_level = -1, nplan = 0, nest = 0;
  for (int i = 0; i < lg.n; i++) {
    nplan += lg.ev[i].event == CSDE_CONV_PLAN;
    nest += lg.ev[i].event == CSDE_CONV_ESTIMATE;
    if (lg.ev[i].event == CSDE_CONV_ESTIMATE && est < 0) est = i;
    if (lg.ev[i].event == CSDE_CONV_STAGE && !lg.ev[i].reference && first_level < 0) first_level = i;
  }
  ok(nplan == 1 && nest == 1 && est > 0 && first_level > est &&
         lg.ev[est].sec_per_call > 0 && lg.ev[est].seconds_total > 0,
     "one estimate (%.3g s a call, %.3g s in all), before the first level finishes",
     est >= 0 ? lg.ev[est].sec_per_call : NAN, est >= 0 ? lg.ev[est].seconds_total : NAN);
  /* the stages in order: (solver, reference, level) */
  static const struct {
    size_t si;
    int ref;
    unsigned level;
  } want[] = {{0, 1, 10}, {0, 0, 2}, {0, 0, 3}, {0, 0, 4}, {0, 0, 5},
              {1, 1, 8},  {1, 0, 2}, {1, 0, 3}, {1, 0, 4}, {1, 0, 5}};
  int order_ok = 1, k = 0;
  size_t last_done = 0;
  for (int i = 0; i < lg.n; i++) {
    const csde_conv_progress *e = &lg.ev[i];
    if (e->event != CSDE_CONV_STAGE) continue;
    if (k >= 10 || e->solver != want[k].si || e->reference != want[k].ref ||
        e->level != want[k].level || e->paths_done != 9 ||
        strcmp(e->solver_name, solvers[want[k].si])) {
      printf("# stage %d: solver %zu (%s) reference %d level %u paths %zu\n", k, e->solver,
             e->solver_name, e->reference, e->level, e->paths_done);
      order_ok = 0;
    }
    k++;
    last_done = e->nfe_done;
  }
  ok(order_ok && k == 10, "10 stages in order: euler's reference (level 10), levels 2..5, "
                          "heun's reference (level 8), levels 2..5, all 9 paths each");
  ok(last_done == r.nfe, "the last stage's nfe_done %zu is the run's %zu", last_done, r.nfe);

  /* stopped by the hook after euler's level 3 */
  log_init(&lg);
  lg.stop_after = 2;
  s = csde_conv_run(&p, &g.hooks, &r2, &err);
  ok_status(s, CSDE_EFAILED, err.msg, "stopped", "a hook that returns 1 stops the run");
  const csde_conv_solver_result *a = &r2.s[0], *b = &r.s[0];
  int kept = r2.nsolvers == 2 && !r2.complete && a->levels_done == 2 && a->analysed &&
             a->fit.L == 2 && r2.s[1].levels_done == 0 && !r2.s[1].analysed && !r2.s[1].ref_done;
  for (size_t i = 0; kept && i < r.N; i++)
    kept &= !memcmp(a->v + i * r.L, b->v + i * r.L, 2 * sizeof *a->v);
  ok(kept, "stopped after euler's level 3: levels 2, 3 kept (bitwise the whole run's) and "
           "analysed; heun untouched");
  ok(kept && a->fit.err[0] == b->fit.err[0] && isnan(a->fit.order),
     "the stopped run's errors are the whole run's; 2 levels give no order (%s)",
     kept ? a->fit.fit : "");
  csde_conv_result_free(&r2);
  /* stopped at the plan: nothing ran */
  log_init(&lg);
  lg.stop_at_plan = 1;
  s = csde_conv_run(&p, &g.hooks, &r2, &err);
  ok(s == CSDE_EFAILED && r2.s && r2.s[0].levels_done == 0 && !r2.s[0].ref_done && r2.nfe == 0,
     "stopped at the plan: no model call, nothing done");
  csde_conv_result_free(&r2);
  csde_conv_result_free(&r);
  g.hooks.progress = NULL;
  gp_free(&g);
}

/* The plan's model calls are the run's for every fixed-step solver (fine references). */
static void test_plan_nfe(void)
{
  static const char *const ode[] = {"euler", "heun", "rk45", "rkck", "rk8pd", "dopri5",
                                    "dpmpp2m", "dpmpp3m", "unipc", "unipc3", "ipndm", "ddim",
                                    "edm-heun"};
  static const char *const sde[] = {"em", "heun", "sra1", "euler-ancestral", "dpmpp2m-sde"};
  gauss_problem g;
  if (!ok(!gp_make(&g, 3, 4, "vp-linear"), "plan: setup")) return;
  prog_log lg;
  g.u.log = &lg;
  g.hooks.progress = log_progress;
  int all = 1;
  for (size_t j = 0; j < sizeof ode / sizeof *ode + sizeof sde / sizeof *sde; j++) {
    int isode = j < sizeof ode / sizeof *ode;
    const char *sv[1] = {isode ? ode[j] : sde[j - sizeof ode / sizeof *ode]};
    csde_conv_params p = gp_params(&g, isode ? CSDE_PROC_PFODE : CSDE_PROC_REVERSE_SDE,
                                   isode ? CSDE_CONV_ODE : CSDE_CONV_STRONG, sv, 1, 2, 3, 5);
    p.ref = CSDE_CONV_REF_FINE;
    p.boot = 100;
    log_init(&lg);
    csde_conv_result r;
    csde_err err = {0};
    int s = csde_conv_run(&p, &g.hooks, &r, &err);
    size_t plan = lg.n ? lg.ev[0].nfe_total : 0;
    if (s || plan != r.nfe) {
      printf("# %s: plan %zu, run %zu%s%s\n", sv[0], plan, r.nfe, s ? ": " : "", err.msg);
      all = 0;
    }
    csde_conv_result_free(&r);
  }
  ok(all, "the plan's model calls are the run's for %zu ODE and %zu SDE solvers",
     sizeof ode / sizeof *ode, sizeof sde / sizeof *sde);
  g.hooks.progress = NULL;
  gp_free(&g);
}

/* Issue 24: one reference per path shared by every solver (fine:dopri5:rtol=1e-10 on the
 * gaussian PF-ODE). res->xref is the one array: every solver's per-path errors are their
 * own solve's distance to it, bitwise (a solve done here again, batch of 4 like the run's);
 * the reference's sizes are bitwise the same for every solver; it is within its estimated
 * error of the exact flow; the orders agree with the exact reference's within its
 * interval; 1 and 3 threads give the same bits. Refusals: a solver that cannot give the
 * process a shared reference, and malformed settings. */
static void test_shared_reference(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 8, 16, "vp-linear"), "shared: setup")) return;
  const char *solvers[] = {"euler", "heun"};
  csde_conv_result ex, sh, sh3;
  csde_err err = {0};
  csde_conv_params p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, solvers, 2, 3, 8, 16);
  int s0 = csde_conv_run(&p, &g.hooks, &ex, &err); /* the exact flow */
  int s1 = csde_conv_reference_parse("fine:dopri5:rtol=1e-10", &p, &err);
  ok(!s1 && p.ref == CSDE_CONV_REF_SHARED && !strcmp(p.ref_solver, "dopri5") &&
         p.ref_rtol == 1e-10 && p.ref_atol == 1e-10,
     "fine:dopri5:rtol=1e-10 parses (atol defaults to rtol)");
  s1 = csde_conv_run(&p, &g.hooks, &sh, &err);
  p.threads = 3;
  int s3 = csde_conv_run(&p, &g.hooks, &sh3, &err);
  if (!ok(!s0 && !s1 && !s3, "shared: the exact and the shared-reference runs (1 and 3 "
                             "threads)%s%s", err.msg[0] ? ": " : "", err.msg)) {
    csde_conv_result_free(&ex);
    csde_conv_result_free(&sh);
    csde_conv_result_free(&sh3);
    gp_free(&g);
    return;
  }
  print_result(&sh);
  const size_t N = sh.N, L = sh.L, per = 8 * 16;
  ok(sh.ref_shared && sh.xref && ex.xref && sh.ref_nfe > 0 && sh.ref_check > 0 &&
         sh.ref_check_paths == 4 && !sh.s[0].vref,
     "one reference: %zu model calls, its check %.3g over %zu paths", sh.ref_nfe, sh.ref_check,
     sh.ref_check_paths);
  ok(!memcmp(&sh.s[0].ref_scale, &sh.s[1].ref_scale, sizeof sh.s[0].ref_scale),
     "the reference's size is bitwise the same for both solvers (%.17g)", sh.s[0].ref_scale);
  /* each solver's per-path values against the one xref, recomputed here */
  int same = 1;
  for (size_t i = 0; i < 2 && same; i++)
    for (size_t k = 0; k < L; k += 5) { /* levels 3 and 8 */
      csde_problem P = p.P;
      csde_model *M = NULL;
      double mean = 0.1;
      csde_model_gaussian_alloc(&M, g.C, g.s, 16, &mean, 1, NULL, &err);
      P.model = M;
      P.batch = 4;
      csde_solve_params par = csde_solve_default_params();
      par.solver = solvers[i];
      par.steps = sh.steps[k];
      csde_solver *S = NULL;
      double *x = malloc(4 * per * sizeof *x);
      csde_rng_key key = {g.u.seed, (uint64_t)1 << 63};
      int s = csde_solver_alloc(&S, &P, &par, &err);
      for (size_t b = 0; b < N / 4 && !s; b++) {
        s = csde_model_gaussian_sample(M, 1.0, key, b * 4, 4, x, &err);
        csde_solve_stats st;
        if (!s) s = csde_solver_run(S, x, &st, &err);
        for (size_t j = 0; j < 4 && !s; j++) {
          double d = 0;
          for (size_t q = 0; q < per; q++) {
            double e = x[j * per + q] - sh.xref[(b * 4 + j) * per + q];
            d += e * e;
          }
          d = sqrt(d / (double)per);
          same &= !memcmp(&d, &sh.s[i].v[(b * 4 + j) * L + k], sizeof d);
        }
      }
      same &= !s;
      csde_solver_free(S);
      csde_model_free(M);
      free(x);
    }
  ok(same, "every solver's per-path errors are its solve's distance to the one shared "
           "reference, bitwise");
  double dmax = 0;
  for (size_t i = 0; i < N; i++) {
    double d = 0;
    for (size_t q = 0; q < per; q++) {
      double e = sh.xref[i * per + q] - ex.xref[i * per + q];
      d += e * e;
    }
    dmax = fmax(dmax, sqrt(d / (double)per));
  }
  ok(dmax <= 10 * sh.ref_check, "the shared reference is within 10x its estimated error of "
                                "the exact flow (largest path %.3g, estimate %.3g)", dmax,
     sh.ref_check);
  for (size_t i = 0; i < 2; i++) {
    const csde_conv_fit *fe = &ex.s[i].fit, *fs = &sh.s[i].fit;
    ok(fe->order_lo <= fs->order && fs->order <= fe->order_hi && fs->order_lo <= fe->order &&
           fe->order <= fs->order_hi && fs->ref_ok,
       "%s: the shared reference's order %.4f [%.4f, %.4f] and the exact flow's %.4f [%.4f, "
       "%.4f] each lie in the other's interval", solvers[i], fs->order, fs->order_lo,
       fs->order_hi, fe->order, fe->order_lo, fe->order_hi);
  }
  int same3 = !memcmp(sh.xref, sh3.xref, N * per * sizeof *sh.xref) &&
              !memcmp(&sh.ref_check, &sh3.ref_check, sizeof sh.ref_check);
  for (size_t i = 0; i < 2; i++)
    same3 &= !memcmp(sh.s[i].v, sh3.s[i].v, N * L * sizeof *sh.s[i].v) &&
             !memcmp(&sh.s[i].fit.order, &sh3.s[i].fit.order, sizeof sh.s[i].fit.order);
  ok(same3, "1 and 3 threads: the same reference, per-path values and orders, bitwise");
  csde_conv_result_free(&ex);
  csde_conv_result_free(&sh);
  csde_conv_result_free(&sh3);

  /* refusals */
  csde_conv_result r;
  const char *sde[] = {"em"};
  p = gp_params(&g, CSDE_PROC_REVERSE_SDE, CSDE_CONV_STRONG, sde, 1, 2, 4, 4);
  csde_conv_reference_parse("fine:dopri5:rtol=1e-6", &p, &err);
  int s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok(s == CSDE_EINVAL && err.param && !strcmp(err.param, CSDE_CONV_PARAM_REFERENCE) &&
         strstr(err.msg, "cannot give reverse-sde a shared reference") && strstr(err.msg, "heun"),
     "dopri5 cannot give an SDE a shared reference: %s", err.msg);
  p = gp_params(&g, CSDE_PROC_PFODE, CSDE_CONV_ODE, solvers, 2, 2, 4, 4);
  csde_conv_reference_parse("fine:em:rtol=1e-6", &p, &err);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  ok(s == CSDE_EINVAL && strstr(err.msg, "cannot give pf-ode a shared reference") &&
         strstr(err.msg, "dopri5"),
     "em (adaptive only for SDEs) cannot give the PF-ODE one: %s", err.msg);
  static const char *const bad[] = {"fine:dopri5",           "fine:dopri5:rtol=0",
                                    "fine:nope:rtol=1e-6",   "fine:dopri5:rtol=1e-6,foo=1",
                                    "fine:dopri5:rtol=x",    "fine:31",
                                    "fine:0",                "fine:ipndm:rtol=1e-6",
                                    "coarse"};
  int all_bad = 1;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    csde_err e2 = {0};
    int st = csde_conv_reference_parse(bad[i], &p, &e2);
    if (st != CSDE_ESPEC || !e2.param || strcmp(e2.param, CSDE_CONV_PARAM_REFERENCE) ||
        !strstr(e2.msg, "reference")) {
      printf("# '%s': %d %s\n", bad[i], st, e2.msg);
      all_bad = 0;
    }
  }
  ok(all_bad, "%zu malformed reference settings are refused naming the reference",
     sizeof bad / sizeof *bad);
  /* an SDE with a shared adaptive reference on the same Brownian path */
  p = gp_params(&g, CSDE_PROC_REVERSE_SDE, CSDE_CONV_STRONG, sde, 1, 2, 5, 8);
  p.boot = 200;
  csde_conv_reference_parse("fine:heun:rtol=1e-3", &p, &err);
  csde_err_clear(&err);
  s = csde_conv_run(&p, &g.hooks, &r, &err);
  if (ok(!s, "reverse-sde, em against heun at rtol 1e-3 (path noise)%s%s", s ? ": " : "",
         err.msg)) {
    print_result(&r);
    ok(r.ref_check > 0 && r.s[0].fit.err[3] > 3 * r.ref_check,
       "the adaptive SDE reference's check %.3g is below the finest level's error %.3g / 3",
       r.ref_check, r.s[0].fit.err[3]);
  }
  csde_conv_result_free(&r);
  gp_free(&g);
}

/* Issue 24: no order from fewer than 3 used levels. Synthetic errors e = h^p: 4 levels
 * of which 2 are unresolved leave 2 (before: a line through them, with a narrow
 * interval); 3 levels on one power law give their order. */
static void test_three_levels(void)
{
  const size_t N = 32;
  double h[4], v[32 * 4];
  for (size_t k = 0; k < 4; k++) h[k] = 1.0 / (double)(8 << k);
  synth(v, N, 4, h, 1.0, 0.05, 0.01, 11);
  for (size_t i = 0; i < N; i++) /* levels 0 and 1 carried by one path each: unresolved */
    for (size_t k = 0; k < 2; k++) v[i * 4 + k] *= i == k ? (double)N : 1e-3;
  csde_conv_data d = synth_data(v, N, 4, h, 1.0);
  csde_conv_fit f;
  csde_err err = {0};
  int s = csde_conv_analyse(&d, &f, &err);
  if (ok(!s, "3-level rule: analysis")) {
    printf("# decisions: %s | %s | %s | %s\n", f.reason[0], f.reason[1], f.reason[2], f.reason[3]);
    ok(f.nused == 2 && isnan(f.order) && isnan(f.order_lo) && isnan(f.order_hi) &&
           !strcmp(f.fit, "not fitted: only 2 resolved levels (need 3)"),
       "2 resolved levels of 4: no order, '%s'", f.fit);
    csde_conv_fit_free(&f);
  }
  /* 3 levels on one law fit */
  double v3[32 * 3];
  synth(v3, N, 3, h, 1.0, 0.05, 0.005, 12);
  d = synth_data(v3, N, 3, h, 1.0);
  s = csde_conv_analyse(&d, &f, &err);
  if (ok(!s, "3 levels on one law: analysis")) {
    ok(f.nused == 3 && f.order_lo <= 1 && 1 <= f.order_hi,
       "3 levels on e = h: order %.4f [%.4f, %.4f] contains 1", f.order, f.order_lo, f.order_hi);
    csde_conv_fit_free(&f);
  }
}

/* ---- the slow suite: stochastic orders ---- */

static void test_strong_orders(void)
{
  gauss_problem g;
  if (!ok(!gp_make(&g, 8, 16, "vp-linear"), "strong: setup")) return;
  const char *solvers[] = {"em", "heun"};
  csde_conv_params p = gp_params(&g, CSDE_PROC_FORWARD_SDE, CSDE_CONV_STRONG, solvers, 2, 4, 8,
                                 quick ? 8 : 256);
  p.threads = 2;
  csde_conv_result r;
  csde_err err = {0};
  double t0 = now();
  int s = csde_conv_run(&p, &g.hooks, &r, &err);
  if (ok(!s, "strong: em and heun on the forward SDE, 16..256 steps, %zu paths, fine "
             "reference on the same path (%.1f s)%s%s",
         p.paths, now() - t0, s ? ": " : "", err.msg)) {
    print_result(&r);
    if (quick) {
      ok(1, "strong order of em # SKIP quick mode");
    } else {
      ok(covers(&r.s[0]), "strong order of em: %.4f [%.4f, %.4f] contains 1", r.s[0].fit.order,
         r.s[0].fit.order_lo, r.s[0].fit.order_hi);
      ok(r.s[0].fit.ref_ok, "em: the reference is %.3gx below the finest level (>= 10)",
         r.s[0].fit.ref_ratio);
      printf("# (heun strong, for the record: %.4f [%.4f, %.4f])\n", r.s[1].fit.order,
             r.s[1].fit.order_lo, r.s[1].fit.order_hi);
    }
    csde_conv_result_free(&r);
  }
  gp_free(&g);
}

static void test_weak_orders(void)
{
  /* tau = 5, 8 x 8 pixels pooled into each path's frame second moment */
  gauss_problem g;
  if (!ok(!gp_make(&g, 5, 64, "vp-linear"), "weak: setup")) return;
  const char *solvers[] = {"heun"};
  csde_conv_params p = gp_params(&g, CSDE_PROC_REVERSE_SDE, CSDE_CONV_WEAK_COV, solvers, 1, 3, 6,
                                 quick ? 8 : 1024);
  p.threads = 2;
  csde_conv_result r;
  csde_err err = {0};
  double t0 = now();
  int s = csde_conv_run(&p, &g.hooks, &r, &err);
  if (ok(!s, "weak: heun on the reverse SDE from the exact p_T, 8..64 steps, %zu "
             "paths (%.1f s)%s%s",
         p.paths, now() - t0, s ? ": " : "", err.msg)) {
    print_result(&r);
    if (quick) {
      ok(1, "weak order of heun # SKIP quick mode");
    } else {
      ok(covers(&r.s[0]), "weak order of heun: %.4f [%.4f, %.4f] contains 2", r.s[0].fit.order,
         r.s[0].fit.order_lo, r.s[0].fit.order_hi);
      ok(r.s[0].fit.nused >= 3, "heun: %zu resolved levels in the fit", r.s[0].fit.nused);
      ok(r.s[0].fit.ref_ok, "heun: the reference is %.3gx below the finest level (>= 10)",
         r.s[0].fit.ref_ratio);
      ok(r.s[0].exact_dev_norm <= r.s[0].exact_dev_halfwidth,
         "heun's reference agrees with the exact moments of p_eps: %.3g <= half-width %.3g",
         r.s[0].exact_dev_norm, r.s[0].exact_dev_halfwidth);
    }
    csde_conv_result_free(&r);
  }
  gp_free(&g);
}

int main(int argc, char **argv)
{
  csde_init();
  quick = getenv("CSDE_TEST_QUICK") != NULL;
  int slow = (argc > 1 && !strcmp(argv[1], "slow")) || getenv("CSDE_TEST_SLOW");
  double t0 = now();
  if (!slow) {
    test_coverage();
    test_screening();
    test_deterministic_synth();
    test_ode_orders();
    test_ode_settings();
    test_threads();
    test_errors();
    test_model_failure();
    test_strong_small();
    test_progress();
    test_plan_nfe();
    test_shared_reference();
    test_three_levels();
  } else {
    test_strong_orders();
    printf("# strong: %.1f s\n", now() - t0);
    double t1 = now();
    test_weak_orders();
    printf("# weak: %.1f s\n", now() - t1);
  }
  printf("# total %.2f s\n", now() - t0);
  return tap_done();
}
