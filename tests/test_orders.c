/* Convergence orders against exact answers (slow suite; CI runs it).
 *
 * The test problem is MATH.md's "Exact test problems": gaussian data X_0 ~ N(m, S0 (x) I_D)
 * with S0 = 0.25 ar1(0.95) (the model's default, which does NOT commute with C),
 * C = ar1(0.9), the vp-linear schedule (beta from 0.1 to 20, not constant), T = 1,
 * eps = 1e-3. Everything is linear, so every reference is exact:
 *   ODE     the exact flow csde_model_gaussian_flow_apply(T -> eps) (propagator to 1e-13);
 *   strong  a fine solve (2^K steps) on the same Brownian path (path noise);
 *   weak    the exact marginal p_eps (csde_model_gaussian_marginal), through a fine
 *           reference on the same paths (variance reduction, see test_weak).
 * Orders are least-squares slopes of log(error) on log(h) over 4-5 step sizes, each
 * required within +-0.3 of the solver's theory (csde_solver_type_order) unless stated.
 * Step ranges were chosen from a NumPy model of the same schemes on the same problem
 * (local orders printed below). Every error is printed.
 *
 * CSDE_TEST_QUICK (valgrind) keeps the ODE part and shrinks the stochastic parts, whose
 * order assertions are then skipped. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The least-squares slope p of log e = c - p log N, i.e. of log e on log h (h ~ 1/N). */
static double fit_order(const size_t *N, const double *e, size_t k)
{
  double mx = 0, my = 0;
  for (size_t i = 0; i < k; i++) {
    mx += log((double)N[i]) / (double)k;
    my += log(e[i]) / (double)k;
  }
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < k; i++) {
    double dx = log((double)N[i]) - mx;
    sxy += dx * (log(e[i]) - my);
    sxx += dx * dx;
  }
  return -sxy / sxx;
}

/* One-sigma uncertainty of the fitted slope from independent relative errors r_i of the
 * e_i: the slope is sum_i w_i log e_i with w_i = -(log N_i - mean) / sxx. */
static double fit_sigma(const size_t *N, const double *rel, size_t k)
{
  double mx = 0, sxx = 0, v = 0;
  for (size_t i = 0; i < k; i++) mx += log((double)N[i]) / (double)k;
  for (size_t i = 0; i < k; i++) sxx += (log((double)N[i]) - mx) * (log((double)N[i]) - mx);
  for (size_t i = 0; i < k; i++) {
    double w = (log((double)N[i]) - mx) / sxx;
    v += w * w * rel[i] * rel[i];
  }
  return sqrt(v);
}

static void print_levels(const char *what, const size_t *N, const double *e, size_t k)
{
  printf("# %s errors:", what);
  for (size_t i = 0; i < k; i++) printf(" N=%zu %.4e", N[i], e[i]);
  printf("\n# %s local orders:", what);
  for (size_t i = 0; i + 1 < k; i++)
    printf(" %.3f", log(e[i] / e[i + 1]) / log((double)N[i + 1] / (double)N[i]));
  printf("\n");
}

/* ---- the shared problem ---- */

typedef struct {
  size_t tau, D;
  csde_cov *C;
  csde_schedule *s;
  csde_model *M;
  double *mean; /* tau values: m per frame */
} setup;

static int setup_make(setup *u, size_t tau, size_t D)
{
  csde_err err = {0};
  memset(u, 0, sizeof *u);
  u->tau = tau;
  u->D = D;
  u->mean = malloc(tau * sizeof *u->mean);
  for (size_t i = 0; i < tau; i++) /* m_i from -0.5 to 0.5 */
    u->mean[i] = tau > 1 ? 0.5 * (-1.0 + 2.0 * (double)i / (double)(tau - 1)) : 0.3;
  int st = csde_cov_alloc(&u->C, "ar1:rho=0.9", tau, NULL, &err);
  if (!st) st = csde_schedule_alloc(&u->s, "vp-linear", &err);
  if (!st) st = csde_model_gaussian_alloc(&u->M, u->C, u->s, D, u->mean, tau, NULL, &err);
  ok(!st, "setup: ar1:rho=0.9, vp-linear, gaussian model (tau %zu, D %zu)%s%s", tau, D,
     st ? ": " : "", st ? err.msg : "");
  return st;
}

static void setup_free(setup *u)
{
  csde_model_free(u->M);
  csde_schedule_free(u->s);
  csde_cov_free(u->C);
  free(u->mean);
}

static csde_problem problem(const setup *u, csde_process proc, size_t batch)
{
  csde_problem P = csde_problem_default();
  P.process = proc;
  P.T = 1.0;
  P.eps = 1e-3;
  P.tau = u->tau;
  P.D = u->D;
  P.batch = batch;
  P.C = u->C;
  P.sched = u->s;
  P.model = u->M;
  return P;
}

static double theory(const char *solver, const char *which)
{
  return csde_solver_type_order(csde_solver_lookup(solver), which);
}

/* ---- ODE orders: PF-ODE decode from a fixed x(T) against the exact flow ---- */

/* RMS over all entries of the error at eps of `solver` with N fixed steps (or adaptive
 * when N == 0). Returns -1 on failure. */
static double ode_error_grid(const setup *u, size_t batch, const double *x0, const double *xe,
                             const char *solver, const char *grid, size_t N, double rtol,
                             int max_norm, double *maxerr, csde_solve_stats *st)
{
  csde_problem P = problem(u, CSDE_PROC_PFODE, batch);
  csde_solve_params par = csde_solve_default_params();
  par.solver = solver;
  par.steps = N;
  if (grid) par.grid = grid;
  par.rtol = par.atol = rtol;
  par.max_norm = max_norm;
  size_t n = batch * u->tau * u->D;
  double *x = malloc(n * sizeof *x);
  memcpy(x, x0, n * sizeof *x);
  csde_err err = {0};
  csde_solve_stats stats;
  memset(&stats, 0, sizeof stats);
  int s = csde_solve(&P, &par, x, &stats, &err);
  double e2 = 0, em = 0;
  for (size_t i = 0; i < n; i++) {
    double d = x[i] - xe[i];
    e2 += d * d;
    em = fmax(em, fabs(d));
  }
  free(x);
  if (st) *st = stats;
  if (maxerr) *maxerr = em;
  if (s) {
    printf("# %s N=%zu failed: %s\n", solver, N, err.msg);
    return -1;
  }
  return sqrt(e2 / (double)n);
}

/* The same on the uniform grid. */
static double ode_error(const setup *u, size_t batch, const double *x0, const double *xe,
                        const char *solver, size_t N, double rtol, int max_norm,
                        double *maxerr, csde_solve_stats *st)
{
  return ode_error_grid(u, batch, x0, xe, solver, NULL, N, rtol, max_norm, maxerr, st);
}

static void test_ode_orders(void)
{
  /* tau = 6, D = 8, batch 3: the flow is linear and acts per pixel, so a few pixels with
   * different values exercise every mode of the 6 x 6 propagator. */
  setup u;
  if (setup_make(&u, 6, 8)) return;
  const size_t batch = 3, n = batch * u.tau * u.D;
  double *x0 = malloc(n * sizeof *x0), *xe = malloc(n * sizeof *xe);
  fill(x0, n, 0.3);
  csde_err err = {0};
  int s = csde_model_gaussian_flow_apply(u.M, 1.0, 1e-3, batch, x0, xe, &err);
  ok(!s, "exact flow T -> eps%s%s", s ? ": " : "", s ? err.msg : "");
  if (s) goto done;

  /* Step ranges where each method is asymptotic and above round-off (NumPy model of the
   * same problem, RMS error): euler N=16..256: 1.9e-2 .. 1.4e-3, local orders 0.87-0.98
   * (N = 8 is pre-asymptotic, 0.6); heun N=16..256: 7e-3 .. 3.4e-5, local 1.85-1.98;
   * rkf45 N=16..128: 1.7e-6 .. 4.8e-11, local 4.8-5.5 (GSL's rkf45 advances with the
   * 5th-order weights; the reference is good to 1e-13, 400x below the last error). */
  struct {
    const char *solver;
    size_t N[5], k;
    double lo, hi;    /* accepted range of the fitted order */
    const char *grid; /* NULL: uniform */
  } cases[] = {
    {"euler", {16, 32, 64, 128, 256}, 5, 0.7, 1.3, NULL},
    {"heun", {16, 32, 64, 128, 256}, 5, 1.7, 2.3, NULL},
    {"rk45", {16, 32, 64, 128}, 4, 3.7, 1e9, NULL},
    {"dopri5", {16, 32, 64, 128}, 4, 3.7, 1e9, NULL},
    /* the exponential integrator on the uniform t grid, whose last step is long in lambda
     * (lambda runs from -5 to 4.6): asymptotic from N = 64 (N = 32..256: local orders
     * 1.62, 1.92, 2.01) */
    {"dpmpp2m", {64, 128, 256, 512}, 4, 1.7, 2.3, NULL},
    /* its third-order sibling reaches order 3 later on this grid (N = 128..1024: local
     * orders 2.74, 2.84, 2.90; on the logsnr grid it is 4 from N = 32, a cancellation) */
    {"dpmpp3m", {256, 512, 1024, 2048}, 4, 2.6, 3.4, NULL},
    /* UniPC on the logsnr grid (uniform in lambda, its natural grid; on the uniform t grid
     * it is as slow to reach its order as dpmpp3m): the corrector adds one to the
     * predictor's order (local orders: unipc 2.78, 2.95, 2.99 from N = 16; unipc3 2.96,
     * 3.69, 3.87 from N = 32) */
    {"unipc", {16, 32, 64, 128}, 4, 2.7, 3.3, "logsnr"},
    {"unipc3", {64, 128, 256, 512}, 4, 3.6, 4.4, "logsnr"},
    /* EDM's Heun in sigma, on its own grid */
    {"edm-heun", {16, 32, 64, 128}, 4, 1.7, 2.3, "karras"},
    /* iPNDM (Adams-Bashforth 4 in sigma / alpha) on the karras grid, EDM's grid in the same
     * variable: asymptotic from N = 64 (local orders 3.69, 3.85, 3.92; from N = 16 the
     * first-order start still shows: 2.75, 3.37) */
    {"ipndm", {64, 128, 256, 512}, 4, 3.6, 4.4, "karras"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double e[5], em[5];
    int good = 1;
    for (size_t i = 0; i < cases[c].k; i++) {
      e[i] = ode_error_grid(&u, batch, x0, xe, cases[c].solver, cases[c].grid, cases[c].N[i], 0,
                            0, &em[i], NULL);
      good &= e[i] > 0;
    }
    if (!good) {
      ok(0, "ODE order of %s: a solve failed", cases[c].solver);
      continue;
    }
    char what[64];
    snprintf(what, sizeof what, "pf-ode %s", cases[c].solver);
    print_levels(what, cases[c].N, e, cases[c].k);
    double p = fit_order(cases[c].N, e, cases[c].k);
    double th = theory(cases[c].solver, "ode");
    printf("# pf-ode %s: fitted order %.3f (theory %g; max-norm error at finest N %.3e)\n",
           cases[c].solver, p, th, em[cases[c].k - 1]);
    if (cases[c].hi < 1e9)
      ok(p >= cases[c].lo && p <= cases[c].hi, "ODE order of %s: %.3f within [%g, %g] (theory %g)",
         cases[c].solver, p, cases[c].lo, cases[c].hi, th);
    else
      ok(p >= cases[c].lo, "ODE order of %s: %.3f >= %g (theory %g)", cases[c].solver, p,
         cases[c].lo, th);
  }

  /* Adaptive rk45 at rtol = atol = 1e-8: the local tolerance is 1e-8 per step on an O(1)
   * state; a global error below 1e-6 allows the usual 10-100x accumulation over the
   * steps. Both error norms (RMS, GSL's max norm). */
  for (int mn = 0; mn <= 2; mn++) { /* rk45 RMS and max norm; dopri5 (RMS) */
    csde_solve_stats st;
    double em;
    const char *sv = mn < 2 ? "rk45" : "dopri5";
    double e = ode_error(&u, batch, x0, xe, sv, 0, 1e-8, mn == 1, &em, &st);
    printf("# adaptive %s (%s norm), rtol = atol = 1e-8: RMS error %.3e, max error %.3e, "
           "NFE %zu, steps %zu (accepted %zu, rejected %zu)\n",
           sv, mn == 1 ? "max" : "RMS", e, em, st.nfe, st.steps, st.accepted, st.rejected);
    ok(e >= 0 && em < 1e-6, "adaptive %s (%s norm) at 1e-8: max error %.3e < 1e-6, NFE %zu",
       sv, mn == 1 ? "max" : "RMS", em, st.nfe);
  }
done:
  free(x0);
  free(xe);
  setup_free(&u);
}

/* ---- strong order: forward SDE, path-consistent noise ---- */

/* Euler-Maruyama (and stochastic Heun) on dX = -1/2 beta X dt + sqrt(beta) V' dW from a
 * fixed x0; every level walks the same Brownian tree (the reference: 2^K steps, K = 12), so the error
 * e_N = sqrt(mean over samples of ||X_N(T) - X_ref(T)||^2) with X_ref the 2^K-step solve
 * of the same method on the same path. Additive noise: strong order 1 for both (MATH.md).
 * NumPy model (tau 6, RMS per entry; the per-sample norm printed here is sqrt(tau D) =
 * 9.8 times larger): EM N=16..256: 0.32 .. 0.017, local orders 1.13, 1.04, 1.07, 0.99;
 * Heun N=16..256: 0.18 .. 0.011, local 0.98-1.02. The reference's own error is 16x below
 * the finest level's. 64 samples of 96 numbers each make the RMS stable to ~1%. */
static void test_strong(void)
{
  setup u;
  if (setup_make(&u, 6, 16)) return;
  const unsigned K = quick ? 9 : 12;
  const size_t batch = quick ? 4 : 64, n = batch * u.tau * u.D, per = u.tau * u.D;
  const size_t Ns[] = {16, 32, 64, 128, 256};
  const size_t k = sizeof Ns / sizeof Ns[0];
  double *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr), *x = malloc(n * sizeof *x);
  fill(x0, n, 0.7);
  const char *solvers[] = {"em", "heun"};
  for (size_t m = 0; m < 2; m++) {
    csde_problem P = problem(&u, CSDE_PROC_FORWARD_SDE, batch);
    P.model = NULL;
    csde_solve_params par = csde_solve_default_params();
    par.solver = solvers[m];
    par.noise = CSDE_NOISE_PATH;
    par.seed = 2024;
    par.threads = 1; /* results do not depend on it; 1 avoids OpenMP barriers per fine step */
    par.steps = (size_t)1 << K;
    csde_err err = {0};
    memcpy(xr, x0, n * sizeof *x);
    double t0 = now();
    int s = csde_solve(&P, &par, xr, NULL, &err);
    if (!ok(!s, "strong %s: reference solve with %zu steps%s%s", solvers[m], par.steps,
            s ? ": " : "", s ? err.msg : ""))
      continue;
    double e[5];
    for (size_t i = 0; i < k && !s; i++) {
      par.steps = Ns[i];
      memcpy(x, x0, n * sizeof *x);
      s = csde_solve(&P, &par, x, NULL, &err);
      double sum = 0;
      for (size_t b = 0; b < batch; b++) {
        double q = 0; /* ||X_N - X_ref||^2 of sample b */
        for (size_t j = 0; j < per; j++) {
          double d = x[b * per + j] - xr[b * per + j];
          q += d * d;
        }
        sum += q;
      }
      e[i] = sqrt(sum / (double)batch);
    }
    if (!ok(!s, "strong %s: solves at N = 16..256%s%s", solvers[m], s ? ": " : "", s ? err.msg : ""))
      continue;
    char what[64];
    snprintf(what, sizeof what, "strong %s (RMS over %zu samples of ||X_N - X_ref||)", solvers[m], batch);
    print_levels(what, Ns, e, k);
    double p = fit_order(Ns, e, k), th = theory(solvers[m], "strong");
    printf("# strong %s: fitted order %.3f (theory %g), %.2f s\n", solvers[m], p, th, now() - t0);
    if (quick)
      ok(1, "strong order of %s: %.3f # SKIP quick mode (path level %u)", solvers[m], p, K);
    else
      ok(fabs(p - th) <= 0.3, "strong order of %s: %.3f within 0.3 of %g", solvers[m], p, th);
  }
  free(x0);
  free(xr);
  free(x);
  setup_free(&u);
}

/* ---- weak order: reverse SDE from the exact p_T ----
 *
 * Functionals of one trajectory (sample b, pixel p; y = its tau-vector at eps, mu the
 * exact mean of p_eps): the mean y and the second moment F(y) = (y - mu)(y - mu)^T about
 * the exact mean (tau + tau^2 numbers, all pixels and samples pooled: they are i.i.d.).
 * The weak error of a level is the Euclidean norm of E[y_N] - mu and E[F(y_N)] - Sigma_eps
 * together (the mean error and the Frobenius norm of the covariance error).
 *
 * Estimator (variance reduction): every trajectory is solved at the coarse level N and by
 * a fine reference (heun, 2^K steps, K = 10) on the SAME Brownian path (path noise), from
 * the same exact draw of p_T. Then
 *     e_N ~ || mean over trajectories of (phi(y_N) - phi(y_ref)) ||,   phi = (y, F(y)),
 * an unbiased estimate of E phi(y_N) - E phi(y_ref) whose per-trajectory spread is of the
 * size of the strong error, not of phi itself. The reference's own bias
 * E phi(y_ref) - phi_exact is left out: heun with 2^10 steps has weak error ~1e-5 (NumPy
 * model), below (128/1024)^2 = 1.6% of heun's error at N = 128 and 0.1% of euler's. It is
 * checked on its own against the exact moments, with the plain Monte Carlo error.
 * MC error: sigma_e = sqrt(sum of the squared standard errors of the entries) bounds the
 * noise on e_N; the fitted slope's one-sigma MC error follows from sigma_e / e_N
 * (fit_sigma). The test requires that one-sigma error to be <= 0.1, so that the +-0.3
 * window is not consumed by Monte Carlo noise, and prints everything.
 *
 * Sizes (NumPy model, tau = 4): heun N=16..128 errors 3.1e-2 .. 4.6e-4 (local orders
 * 2.03, 2.03, 2.02) with strong errors 5e-2 .. 7.5e-3, so sigma_e / e at N = 128 is
 * ~ sqrt(20) 7.5e-3 / (4.6e-4 sqrt(M)): M = 2^19 trajectories give ~0.1 and a slope
 * uncertainty ~0.045. Euler N=16..128: 0.13 .. 0.011 (local 1.3, 1.14, 1.07) with strong
 * errors of the same size: M = 32768 gives sigma_e / e ~ 0.04 (slope +-0.02).
 *
 * Threads: the work is 16 chunks of 8 samples x 4096 pixels, split over two threads, each
 * with its own gaussian model (one model object must not be evaluated from two threads)
 * and its own solvers; the solvers themselves run single-threaded, which also avoids an
 * OpenMP barrier per fine noise step. Per-chunk sums are combined in chunk order, so the
 * result does not depend on how chunks were shared out. */
#define WEAK_TAU 4
#define WEAK_NPHI (WEAK_TAU + WEAK_TAU * WEAK_TAU)
#define WEAK_NLEV 9 /* euler x 4, heun x 4, reference */

typedef struct {
  size_t N[WEAK_NLEV];
  const char *solver[WEAK_NLEV];
  unsigned K;
  size_t D, B, em_chunks;
  const double *mu, *Se; /* exact moments of p_eps */
} weak_plan;

/* One chunk's sums: sum[l][q] and sq[l][q] of phi differences for the coarse levels,
 * and of phi(y_ref) - phi_exact for the reference (l = WEAK_NLEV - 1). */
typedef struct {
  double sum[WEAK_NLEV][WEAK_NPHI], sq[WEAK_NLEV][WEAK_NPHI];
  size_t count[WEAK_NLEV];
  int status;
  char msg[CSDE_MSG_MAX];
} weak_chunk;

static void weak_accumulate(const weak_plan *w, const double *y, const double *xr, int isref,
                            double *sum, double *sq)
{
  const size_t tau = WEAK_TAU, D = w->D;
  for (size_t b = 0; b < w->B; b++)
    for (size_t p = 0; p < D; p++) {
      const double *yb = y + b * tau * D + p, *rb = xr + b * tau * D + p;
      double dy[WEAK_TAU], dr[WEAK_TAU], phi[WEAK_NPHI];
      for (size_t i = 0; i < tau; i++) {
        dy[i] = yb[i * D] - w->mu[i * D + p];
        dr[i] = rb[i * D] - w->mu[i * D + p];
      }
      if (isref) { /* phi(y_ref) - phi_exact */
        for (size_t i = 0; i < tau; i++) phi[i] = dr[i];
        for (size_t i = 0; i < tau; i++)
          for (size_t j = 0; j < tau; j++) phi[tau + i * tau + j] = dr[i] * dr[j] - w->Se[i * tau + j];
      } else { /* phi(y_N) - phi(y_ref) */
        for (size_t i = 0; i < tau; i++) phi[i] = dy[i] - dr[i];
        for (size_t i = 0; i < tau; i++)
          for (size_t j = 0; j < tau; j++) phi[tau + i * tau + j] = dy[i] * dy[j] - dr[i] * dr[j];
      }
      for (size_t q = 0; q < WEAK_NPHI; q++) {
        sum[q] += phi[q];
        sq[q] += phi[q] * phi[q];
      }
    }
}

/* A worker: its own model and solvers; runs the chunks it is given. */
static void weak_worker(const weak_plan *w, const setup *shared, size_t chunks, weak_chunk *out,
                        int nthreads)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
  {
    const size_t tau = WEAK_TAU, D = w->D, B = w->B, n = B * tau * D;
    csde_err err = {0};
    csde_model *M = NULL;
    csde_solver *S[WEAK_NLEV] = {NULL};
    double *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr), *x = malloc(n * sizeof *x);
    int s = csde_model_gaussian_alloc(&M, shared->C, shared->s, D, shared->mean, tau, NULL, &err);
    setup u = *shared;
    u.M = M;
    csde_problem P = problem(&u, CSDE_PROC_REVERSE_SDE, B);
    for (size_t l = 0; l < WEAK_NLEV && !s; l++) {
      csde_solve_params par = csde_solve_default_params();
      par.solver = w->solver[l];
      par.steps = w->N[l];
      par.noise = CSDE_NOISE_PATH;
      par.threads = 1;
      s = csde_solver_alloc(&S[l], &P, &par, &err);
    }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (size_t c = 0; c < chunks; c++) {
      weak_chunk *o = &out[c];
      memset(o, 0, sizeof *o);
      int st = s;
      csde_rng_key key = {777, 0}; /* initial draws: a seed the solver noise never uses */
      if (!st) st = csde_model_gaussian_sample(M, 1.0, key, c * B, B, x0, &err);
      for (size_t l = WEAK_NLEV; l-- > 0 && !st;) { /* the reference first */
        int isref = l == WEAK_NLEV - 1;
        if (!isref && !strcmp(w->solver[l], "euler") && c >= w->em_chunks) continue;
        double *y = isref ? xr : x;
        memcpy(y, x0, n * sizeof *y);
        csde_solver_set_seed(S[l], 4242, c * B);
        if ((st = csde_solver_run(S[l], y, NULL, &err))) break;
        weak_accumulate(w, y, xr, isref, o->sum[l], o->sq[l]);
        o->count[l] = B * D;
      }
      o->status = st;
      if (st) snprintf(o->msg, sizeof o->msg, "%s", err.msg);
    }
    for (size_t l = 0; l < WEAK_NLEV; l++) csde_solver_free(S[l]);
    csde_model_free(M);
    free(x0);
    free(xr);
    free(x);
  }
  (void)nthreads;
}

static void test_weak(void)
{
  setup u;
  const size_t tau = WEAK_TAU;
  weak_plan w;
  memset(&w, 0, sizeof w);
  w.D = quick ? 64 : 4096;
  w.B = 8; /* 32768 trajectories per chunk */
  w.K = quick ? 6 : 10;
  w.em_chunks = 1;
  const size_t chunks = quick ? 1 : 16, k = 4;
  const size_t Ns[] = {16, 32, 64, 128};
  if (setup_make(&u, tau, w.D)) return;
  for (size_t i = 0; i < k; i++) {
    w.N[i] = w.N[k + i] = Ns[i] >> (quick ? 3 : 0);
    w.solver[i] = "euler";
    w.solver[k + i] = "heun";
  }
  w.N[WEAK_NLEV - 1] = (size_t)1 << w.K;
  w.solver[WEAK_NLEV - 1] = "heun";
  double *mu = malloc(tau * w.D * sizeof *mu), Se[WEAK_TAU * WEAK_TAU];
  weak_chunk *res = calloc(chunks, sizeof *res);
  csde_err err = {0};
  int s = csde_model_gaussian_marginal(u.M, 1e-3, mu, Se, &err);
  ok(!s, "weak: exact marginal at eps%s%s", s ? ": " : "", s ? err.msg : "");
  if (s) goto done;
  w.mu = mu;
  w.Se = Se;
  double t0 = now();
  weak_worker(&w, &u, chunks, res, 2);
  /* combine in chunk order */
  static double sum[WEAK_NLEV][WEAK_NPHI], sq[WEAK_NLEV][WEAK_NPHI];
  size_t count[WEAK_NLEV] = {0};
  memset(sum, 0, sizeof sum);
  memset(sq, 0, sizeof sq);
  for (size_t c = 0; c < chunks; c++) {
    if (res[c].status && !s) {
      s = res[c].status;
      snprintf(err.msg, sizeof err.msg, "%s", res[c].msg);
    }
    for (size_t l = 0; l < WEAK_NLEV; l++) {
      count[l] += res[c].count[l];
      for (size_t q = 0; q < WEAK_NPHI; q++) {
        sum[l][q] += res[c].sum[l][q];
        sq[l][q] += res[c].sq[l][q];
      }
    }
  }
  if (!ok(!s, "weak: %zu chunks of %zu trajectories solved in %.1f s (path level %u)%s%s", chunks,
          w.B * w.D, now() - t0, w.K, s ? ": " : "", s ? err.msg : ""))
    goto done;

  /* the reference alone against the exact moments of p_eps (plain MC): every entry of
   * mean(phi(y_ref)) - phi_exact within 4.5 standard errors (20 entries, fixed seed) */
  {
    const size_t l = WEAK_NLEV - 1, M = count[l];
    double worst = 0, enorm = 0;
    for (size_t q = 0; q < WEAK_NPHI; q++) {
      double m = sum[l][q] / (double)M, var = sq[l][q] / (double)M - m * m;
      double se = sqrt(fmax(var, 0) / (double)(M - 1));
      worst = fmax(worst, fabs(m) / se);
      enorm += m * m;
    }
    printf("# reference (heun, %zu steps) vs exact p_eps over %zu trajectories: "
           "||error|| %.3e, worst entry %.2f standard errors\n",
           w.N[l], M, sqrt(enorm), worst);
    ok(worst <= 4.5, "reverse SDE from exact p_T ends at p_eps: worst entry %.2f SE <= 4.5", worst);
  }

  for (int m = 0; m < 2; m++) {
    const char *name = m ? "heun" : "euler";
    double e[4], rel[4], em[4], ec[4];
    size_t NN[4], M = 0;
    for (size_t i = 0; i < k; i++) {
      size_t l = m * k + i;
      M = count[l];
      double v = 0, s2 = 0, vm = 0;
      for (size_t q = 0; q < WEAK_NPHI; q++) {
        double a = sum[l][q] / (double)M, var = sq[l][q] / (double)M - a * a;
        v += a * a;
        s2 += fmax(var, 0) / (double)(M - 1);
        if (q < tau) vm += a * a;
      }
      NN[i] = w.N[l];
      e[i] = sqrt(v);
      rel[i] = sqrt(s2) / e[i];
      em[i] = sqrt(vm);
      ec[i] = sqrt(v - vm);
    }
    char what[96];
    snprintf(what, sizeof what, "weak %s (%zu trajectories)", name, M);
    print_levels(what, NN, e, k);
    printf("# weak %s: mean-error part:", name);
    for (size_t i = 0; i < k; i++) printf(" %.3e", em[i]);
    printf("; covariance part (Frobenius):");
    for (size_t i = 0; i < k; i++) printf(" %.3e", ec[i]);
    printf("\n# weak %s: MC sigma_e / e per level:", name);
    for (size_t i = 0; i < k; i++) printf(" %.3f", rel[i]);
    double p = fit_order(NN, e, k), sp = fit_sigma(NN, rel, k), th = theory(name, "weak");
    printf("\n# weak %s: fitted order %.3f +- %.3f (MC, one sigma), theory %g\n", name, p, sp, th);
    if (quick) {
      ok(1, "weak order of %s: %.3f # SKIP quick mode", name, p);
      continue;
    }
    ok(sp <= 0.1, "weak %s: Monte Carlo slope uncertainty %.3f <= 0.1", name, sp);
    ok(fabs(p - th) <= 0.3, "weak order of %s: %.3f within 0.3 of %g", name, p, th);
  }
done:
  free(mu);
  free(res);
  setup_free(&u);
}

/* ---- conformance: every solver of the registry on every process it declares ----
 *
 * The solvers come from csde_solver_types() and the processes from csde_process_name, so a
 * new table entry is run here with no edit of this file. For each pair (solver,
 * process) with csde_solver_type_fits:
 *   ODE process  the order against the exact flow between the process's span ends
 *                (csde_problem_span, csde_model_gaussian_flow_apply) on the uniform,
 *                logsnr and karras grids, N = 2, 4, ..., 4096 until the RMS error is
 *                below 1e-12 (the flow is good to 1e-13); the order is the slope over the
 *                last three levels above that floor, and the grid whose order is nearest
 *                the declared order_ode is kept;
 *   SDE process  with a declared strong order: the strong order against a 2^11-step solve
 *                of the same solver on the same Brownian path (path noise), N = 16..256;
 *                with a weak order only (samplers that do not follow the path): the weak
 *                order of the mean and second moment at eps (test_weak's functionals),
 *                against a 2^10-step solve of the same solver on the same path (variance
 *                reduction), N = 16..128, with a Monte Carlo slope uncertainty <= 0.1;
 *                that reference is itself checked against the exact moments of p_eps
 *                (csde_model_gaussian_marginal) within 4.5 standard errors.
 * Each measured order must be at least the declared one less 0.3 (conf_order_ok; pairs
 * known to fall short are listed in conf_known with the order they reach and why).
 * NFE per step: the increase of the solve's NFE between the two finest levels divided by
 * the increase of the steps, which must equal csde_solver_type_nfe_per_step exactly (a
 * first or last step of another cost cancels). A solver that fits no process, a process
 * without a declared order or a solver with nfe_per_step 0 fails. Solvers reached only
 * through a process of their own (via_process) are listed in conf_via with the test that
 * runs them; one missing there fails. The table is printed at the end. */

typedef struct {
  char solver[24], process[24], kind[8], levels[48];
  double declared, measured, sigma; /* sigma: MC slope uncertainty (weak), else 0 */
  unsigned nfe_declared;
  double nfe_measured;
  int pass;
} conf_row;

#define CONF_MAXROWS 64
static conf_row conf_rows[CONF_MAXROWS];
static size_t conf_nrows;

/* Solvers reached only through a process of their own, and the test that runs them. */
static const struct {
  const char *solver, *where;
} conf_via[] = {
  {"ddpm", "tests/test_solve.c::test_ddpm (csde_sample_ddpm, NFE = steps, moments at N = 1000)"},
};

/* Pairs whose declared order is not reached, and the order they reach: the multistep
 * methods start with lower-order steps (the first one Euler-like, local error O(h^2); the
 * UniPC corrector adds one), which limits the global order where the flow varies fastest
 * at the start, as at t = eps when encoding. (Decoding starts at t = T, where the data
 * prediction hardly moves, and shows the declared order.) */
static const struct {
  const char *solver, *process;
  double order;
} conf_known[] = {
  {"dpmpp3m", "pf-ode-encode", 2},
  {"unipc3", "pf-ode-encode", 3},
  {"ipndm", "pf-ode-encode", 2},
};

/* The order a pair must reach: the declared one, or the known limit above. */
static double conf_expected(const conf_row *r)
{
  for (size_t i = 0; i < sizeof conf_known / sizeof conf_known[0]; i++)
    if (!strcmp(conf_known[i].solver, r->solver) && !strcmp(conf_known[i].process, r->process))
      return conf_known[i].order;
  return r->declared;
}

/* The order check: at least the expected order less 0.3 (more is not a failure: e.g. sra1,
 * strong order 1.5, is of order 2 on the linear forward SDE). */
static int conf_order_ok(const conf_row *r)
{
  return r->measured >= conf_expected(r) - 0.3;
}

static conf_row *conf_row_new(const csde_solver_type *T, csde_process p, const char *kind)
{
  if (conf_nrows == CONF_MAXROWS) return NULL;
  conf_row *r = &conf_rows[conf_nrows++];
  memset(r, 0, sizeof *r);
  snprintf(r->solver, sizeof r->solver, "%s", csde_solver_type_name(T));
  snprintf(r->process, sizeof r->process, "%s", csde_process_name(p));
  snprintf(r->kind, sizeof r->kind, "%s", kind);
  r->declared = csde_solver_type_order(T, kind);
  r->nfe_declared = csde_solver_type_nfe_per_step(T);
  r->measured = r->nfe_measured = NAN;
  return r;
}

static void conf_levels(conf_row *r, const size_t *N, size_t k)
{
  snprintf(r->levels, sizeof r->levels, "N=%zu..%zu (%zu levels)", N[0], N[k - 1], k);
}

/* The NFE check of two levels' stats. */
static void conf_nfe(conf_row *r, size_t N1, size_t nfe1, size_t N2, size_t nfe2)
{
  r->nfe_measured = ((double)nfe2 - (double)nfe1) / ((double)N2 - (double)N1);
}

/* The ODE errors of T on one grid: N = 2, 4, ..., 4096 until the error is below the
 * floor; the fitted slope over the last three levels above it (NAN: fewer levels). */
static double conf_ode_grid(const setup *u, const csde_solver_type *T, csde_problem *P,
                            const char *grid, const double *x0, const double *xe, size_t n,
                            double *x, size_t *Nl, double *nfe_per_step, csde_err *err)
{
  size_t N[12], nfe[12], k = 0;
  double e[12];
  int s = 0;
  for (size_t Nk = 2; !s && Nk <= 4096; Nk *= 2) {
    csde_solve_params par = csde_solve_default_params();
    par.solver = csde_solver_type_name(T);
    par.steps = Nk;
    par.grid = grid;
    par.threads = 1;
    csde_solve_stats st;
    memset(&st, 0, sizeof st);
    memcpy(x, x0, n * sizeof *x);
    if ((s = csde_solve(P, &par, x, &st, err))) break;
    double e2 = 0;
    for (size_t i = 0; i < n; i++) e2 += (x[i] - xe[i]) * (x[i] - xe[i]);
    e2 = sqrt(e2 / (double)n);
    if (!(e2 > 1e-12)) break; /* at the floor (or NaN: too few levels) */
    N[k] = Nk, nfe[k] = st.nfe, e[k++] = e2;
  }
  char what[96];
  snprintf(what, sizeof what, "conformance %s on %s, %s grid", csde_solver_type_name(T),
           csde_process_name(P->process), grid);
  if (s) printf("# %s: %s\n", what, err->msg);
  if (k < 3) return NAN;
  print_levels(what, N, e, k);
  memcpy(Nl, N + k - 3, 3 * sizeof *Nl);
  *nfe_per_step = ((double)nfe[k - 1] - (double)nfe[k - 2]) / ((double)N[k - 1] - (double)N[k - 2]);
  (void)u;
  return fit_order(N + k - 3, e + k - 3, 3);
}

/* ODE order on every grid kind whose spec needs no options; the row keeps the grid whose
 * order is nearest the declared one (the order is asymptotic on any smooth grid, but how
 * soon it shows depends on the grid: see test_ode_orders). */
static void conf_ode(const setup *u, const csde_solver_type *T, csde_process proc)
{
  conf_row *r = conf_row_new(T, proc, "ode");
  if (!r) return;
  static const char *const grids[] = {"uniform", "logsnr", "karras"};
  const size_t batch = 2, n = batch * u->tau * u->D;
  csde_problem P = problem(u, proc, batch);
  double t0, t1;
  csde_problem_span(&P, &t0, &t1);
  double *x0 = malloc(n * sizeof *x0), *xe = malloc(n * sizeof *xe), *x = malloc(n * sizeof *x);
  fill(x0, n, 0.9);
  csde_err err = {0};
  int s = csde_model_gaussian_flow_apply(u->M, t0, t1, batch, x0, xe, &err);
  for (size_t g = 0; g < sizeof grids / sizeof grids[0] && !s; g++) {
    size_t N[3];
    double nfe = NAN, p = conf_ode_grid(u, T, &P, grids[g], x0, xe, n, x, N, &nfe, &err);
    if (isnan(p) || (!isnan(r->measured) && fabs(p - r->declared) >= fabs(r->measured - r->declared)))
      continue;
    r->measured = p;
    r->nfe_measured = nfe;
    snprintf(r->levels, sizeof r->levels, "%s N=%zu..%zu", grids[g], N[0], N[2]);
  }
  r->pass = !s && conf_order_ok(r) && r->nfe_measured == (double)r->nfe_declared;
  ok(r->pass, "conformance: %s on %s: ODE order %.3f vs declared %g (%s), NFE/step %g vs %u%s%s",
     r->solver, r->process, r->measured, r->declared, r->levels, r->nfe_measured,
     r->nfe_declared, s ? ": " : "", s ? err.msg : "");
  free(x0);
  free(xe);
  free(x);
}

static void conf_strong(const setup *u, const csde_solver_type *T, csde_process proc)
{
  conf_row *r = conf_row_new(T, proc, "strong");
  if (!r) return;
  const unsigned K = quick ? 9 : 11;
  const size_t batch = quick ? 4 : 32, per = u->tau * u->D, n = batch * per;
  const size_t Ns[] = {16, 32, 64, 128, 256}, k = sizeof Ns / sizeof Ns[0];
  csde_problem P = problem(u, proc, batch);
  double *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr), *x = malloc(n * sizeof *x);
  fill(x0, n, 0.7);
  csde_solve_params par = csde_solve_default_params();
  par.solver = csde_solver_type_name(T);
  par.noise = CSDE_NOISE_PATH;
  par.seed = 2025;
  par.threads = 1;
  par.steps = (size_t)1 << K;
  csde_err err = {0};
  csde_solve_stats st[5];
  double e[5];
  memcpy(xr, x0, n * sizeof *x);
  int s = csde_solve(&P, &par, xr, NULL, &err);
  for (size_t i = 0; i < k && !s; i++) {
    par.steps = Ns[i];
    memcpy(x, x0, n * sizeof *x);
    memset(&st[i], 0, sizeof st[i]);
    s = csde_solve(&P, &par, x, &st[i], &err);
    double sum = 0; /* sum over samples of ||X_N - X_ref||^2 */
    for (size_t j = 0; j < n; j++) sum += (x[j] - xr[j]) * (x[j] - xr[j]);
    e[i] = sqrt(sum / (double)batch);
  }
  if (s) printf("# conformance %s on %s: %s\n", r->solver, r->process, err.msg);
  else {
    char what[96];
    snprintf(what, sizeof what, "conformance %s on %s (strong)", r->solver, r->process);
    print_levels(what, Ns, e, k);
    r->measured = fit_order(Ns, e, k);
    conf_levels(r, Ns, k);
    conf_nfe(r, Ns[k - 2], st[k - 2].nfe, Ns[k - 1], st[k - 1].nfe);
  }
  /* the forward SDE never calls the model */
  int nfe_ok = r->nfe_measured == (proc == CSDE_PROC_FORWARD_SDE ? 0 : (double)r->nfe_declared);
  r->pass = !s && nfe_ok && (quick || conf_order_ok(r));
  ok(r->pass, "conformance: %s on %s: strong order %.3f vs declared %g (%s), NFE/step %g vs %u%s",
     r->solver, r->process, r->measured, r->declared, r->levels, r->nfe_measured,
     r->nfe_declared, quick ? " # SKIP quick mode: order not asserted" : "");
  free(x0);
  free(xr);
  free(x);
}

/* Weak order on a process that starts from p_T (the reverse SDE): see the comment above
 * and test_weak. */
static void conf_weak(const setup *u, const csde_solver_type *T, csde_process proc)
{
  conf_row *r = conf_row_new(T, proc, "weak");
  if (!r) return;
  enum { NL = 5 }; /* four levels and the reference */
  const size_t tau = WEAK_TAU, D = u->D, B = 8, n = B * tau * D, chunks = quick ? 1 : 4;
  const size_t N[NL] = {16, 32, 64, 128, (size_t)1 << (quick ? 8 : 10)};
  double *mu = malloc(tau * D * sizeof *mu), Se[WEAK_TAU * WEAK_TAU];
  double *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr), *x = malloc(n * sizeof *x);
  static double sum[NL][WEAK_NPHI], sq[NL][WEAK_NPHI];
  memset(sum, 0, sizeof sum);
  memset(sq, 0, sizeof sq);
  csde_err err = {0};
  csde_problem P = problem(u, proc, B);
  csde_solver *S[NL] = {NULL};
  csde_solve_stats st[NL];
  double t0, t1;
  csde_problem_span(&P, &t0, &t1);
  int s = csde_model_gaussian_marginal(u->M, t1, mu, Se, &err);
  for (size_t l = 0; l < NL && !s; l++) {
    csde_solve_params par = csde_solve_default_params();
    par.solver = csde_solver_type_name(T);
    par.steps = N[l];
    par.noise = CSDE_NOISE_PATH;
    par.threads = 1;
    s = csde_solver_alloc(&S[l], &P, &par, &err);
  }
  weak_plan w = {.D = D, .B = B, .mu = mu, .Se = Se};
  for (size_t c = 0; c < chunks && !s; c++) {
    csde_rng_key key = {778, 0}; /* initial draws: a seed the solver noise never uses */
    s = csde_model_gaussian_sample(u->M, t0, key, c * B, B, x0, &err);
    for (size_t l = NL; l-- > 0 && !s;) { /* the reference first */
      double *y = l == NL - 1 ? xr : x;
      memcpy(y, x0, n * sizeof *y);
      csde_solver_set_seed(S[l], 4343, c * B);
      memset(&st[l], 0, sizeof st[l]);
      if ((s = csde_solver_run(S[l], y, &st[l], &err))) break;
      weak_accumulate(&w, y, xr, l == NL - 1, sum[l], sq[l]);
    }
  }
  const size_t M = chunks * B * D;
  double worst = 0;
  if (!s) { /* the reference against the exact moments (plain MC) */
    for (size_t q = 0; q < WEAK_NPHI; q++) {
      double m = sum[NL - 1][q] / (double)M, var = sq[NL - 1][q] / (double)M - m * m;
      worst = fmax(worst, fabs(m) / sqrt(fmax(var, 0) / (double)(M - 1)));
    }
    printf("# conformance %s on %s: reference (%zu steps) vs exact p_eps over %zu "
           "trajectories: worst entry %.2f standard errors\n",
           r->solver, r->process, N[NL - 1], M, worst);
    double e[NL - 1], rel[NL - 1];
    for (size_t l = 0; l + 1 < NL; l++) {
      double v = 0, s2 = 0;
      for (size_t q = 0; q < WEAK_NPHI; q++) {
        double a = sum[l][q] / (double)M, var = sq[l][q] / (double)M - a * a;
        v += a * a;
        s2 += fmax(var, 0) / (double)(M - 1);
      }
      e[l] = sqrt(v);
      rel[l] = sqrt(s2) / e[l];
    }
    char what[96];
    snprintf(what, sizeof what, "conformance %s on %s (weak)", r->solver, r->process);
    print_levels(what, N, e, NL - 1);
    r->measured = fit_order(N, e, NL - 1);
    r->sigma = fit_sigma(N, rel, NL - 1);
    conf_levels(r, N, NL - 1);
    conf_nfe(r, N[NL - 3], st[NL - 3].nfe, N[NL - 2], st[NL - 2].nfe);
  } else
    printf("# conformance %s on %s: %s\n", r->solver, r->process, err.msg);
  int nfe_ok = r->nfe_measured == (double)r->nfe_declared;
  r->pass = !s && nfe_ok &&
            (quick || (worst <= 4.5 && r->sigma <= 0.1 && conf_order_ok(r)));
  ok(r->pass,
     "conformance: %s on %s: weak order %.3f +- %.3f (MC) vs declared %g (%s), reference "
     "%.2f SE from p_eps, NFE/step %g vs %u%s",
     r->solver, r->process, r->measured, r->sigma, r->declared, r->levels, worst,
     r->nfe_measured, r->nfe_declared, quick ? " # SKIP quick mode: order not asserted" : "");
  for (size_t l = 0; l < NL; l++) csde_solver_free(S[l]);
  free(mu);
  free(x0);
  free(xr);
  free(x);
}

static void test_conformance(void)
{
  setup ode, sde, weak;
  if (setup_make(&ode, 6, 4)) return;
  if (setup_make(&sde, 6, 16)) return;
  if (setup_make(&weak, WEAK_TAU, quick ? 64 : 1024)) return;
  for (const csde_solver_type *const *t = csde_solver_types(); *t; t++) {
    const csde_solver_type *T = *t;
    const char *name = csde_solver_type_name(T);
    size_t fits = 0;
    if (!csde_solver_type_nfe_per_step(T))
      ok(0, "conformance: %s declares no NFE per step", name);
    for (int p = 0;; p++) {
      const char *pn = csde_process_name((csde_process)p);
      if (!pn || !strcmp(pn, "unknown")) break;
      if (!csde_solver_type_fits(T, (csde_process)p)) continue;
      fits++;
      if (!csde_process_is_sde((csde_process)p)) {
        if (csde_solver_type_order(T, "ode") > 0) conf_ode(&ode, T, (csde_process)p);
        else ok(0, "conformance: %s runs %s but declares no ODE order", name, pn);
      } else if (csde_solver_type_order(T, "strong") > 0)
        conf_strong(&sde, T, (csde_process)p);
      else if (csde_solver_type_order(T, "weak") > 0 && p == CSDE_PROC_REVERSE_SDE)
        conf_weak(&weak, T, (csde_process)p);
      else
        ok(0, "conformance: %s runs %s but declares no order this test can measure there "
              "(strong: any SDE; weak only: the reverse SDE)", name, pn);
    }
    if (fits) continue;
    const char *via = NULL;
    for (size_t i = 0; i < sizeof conf_via / sizeof conf_via[0]; i++)
      if (!strcmp(conf_via[i].solver, name)) via = conf_via[i].where;
    ok(via != NULL, "conformance: %s fits no process%s%s", name, via ? "; run by " : "",
       via ? via : " and is not in conf_via: give it a process and an order, or a test");
  }
  printf("# conformance table (order: the fitted slope over the levels shown; NFE/step: the "
         "NFE increase over the step increase of the two finest levels)\n");
  printf("# %-16s %-13s %-6s %8s %8s %8s %6s  %-22s %8s %8s  %s\n", "solver", "process", "order",
         "declared", "expected", "measured", "+-MC", "levels", "NFE decl", "NFE meas", "result");
  for (size_t i = 0; i < conf_nrows; i++) {
    const conf_row *r = &conf_rows[i];
    printf("# %-16s %-13s %-6s %8g %8g %8.3f %6.3f  %-22s %8u %8g  %s\n", r->solver, r->process,
           r->kind, r->declared, conf_expected(r), r->measured, r->sigma, r->levels,
           r->nfe_declared, r->nfe_measured, r->pass ? "ok" : "FAIL");
  }
  for (size_t i = 0; i < sizeof conf_via / sizeof conf_via[0]; i++)
    printf("# %-16s (via its process: %s)\n", conf_via[i].solver, conf_via[i].where);
  setup_free(&ode);
  setup_free(&sde);
  setup_free(&weak);
}

/* argv[1] == "conformance": that part only. */
int main(int argc, char **argv)
{
  csde_init();
  quick = getenv("CSDE_TEST_QUICK") != NULL;
  double t0 = now();
  if (argc > 1 && !strcmp(argv[1], "conformance")) {
    test_conformance();
    printf("# conformance: %.2f s\n", now() - t0);
    return tap_done();
  }
  test_ode_orders();
  printf("# ODE orders: %.2f s\n", now() - t0);
  double t1 = now();
  test_strong();
  printf("# strong orders: %.2f s\n", now() - t1);
  double t2 = now();
  test_weak();
  printf("# weak orders: %.2f s\n", now() - t2);
  double t3 = now();
  test_conformance();
  printf("# conformance: %.2f s\n", now() - t3);
  printf("# total %.2f s\n", now() - t0);
  return tap_done();
}
