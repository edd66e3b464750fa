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
  csde_err err = {0, ""};
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
static double ode_error(const setup *u, size_t batch, const double *x0, const double *xe,
                        const char *solver, size_t N, double rtol, int max_norm,
                        double *maxerr, csde_solve_stats *st)
{
  csde_problem P = problem(u, CSDE_PROC_PFODE, batch);
  csde_solve_params par = csde_solve_default_params();
  par.solver = solver;
  par.steps = N;
  par.rtol = par.atol = rtol;
  par.max_norm = max_norm;
  size_t n = batch * u->tau * u->D;
  double *x = malloc(n * sizeof *x);
  memcpy(x, x0, n * sizeof *x);
  csde_err err = {0, ""};
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

static void test_ode_orders(void)
{
  /* tau = 6, D = 8, batch 3: the flow is linear and acts per pixel, so a few pixels with
   * different values exercise every mode of the 6 x 6 propagator. */
  setup u;
  if (setup_make(&u, 6, 8)) return;
  const size_t batch = 3, n = batch * u.tau * u.D;
  double *x0 = malloc(n * sizeof *x0), *xe = malloc(n * sizeof *xe);
  fill(x0, n, 0.3);
  csde_err err = {0, ""};
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
    double lo, hi; /* accepted range of the fitted order */
  } cases[] = {
    {"euler", {16, 32, 64, 128, 256}, 5, 0.7, 1.3},
    {"heun", {16, 32, 64, 128, 256}, 5, 1.7, 2.3},
    {"rk45", {16, 32, 64, 128}, 4, 3.7, 1e9},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double e[5], em[5];
    int good = 1;
    for (size_t i = 0; i < cases[c].k; i++) {
      e[i] = ode_error(&u, batch, x0, xe, cases[c].solver, cases[c].N[i], 0, 0, &em[i], NULL);
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
  for (int mn = 0; mn <= 1; mn++) {
    csde_solve_stats st;
    double em;
    double e = ode_error(&u, batch, x0, xe, "rk45", 0, 1e-8, mn, &em, &st);
    printf("# adaptive rk45 (%s norm), rtol = atol = 1e-8: RMS error %.3e, max error %.3e, "
           "NFE %zu, steps %zu (accepted %zu, rejected %zu)\n",
           mn ? "max" : "RMS", e, em, st.nfe, st.steps, st.accepted, st.rejected);
    ok(e >= 0 && em < 1e-6, "adaptive rk45 (%s norm) at 1e-8: max error %.3e < 1e-6, NFE %zu",
       mn ? "max" : "RMS", em, st.nfe);
  }
done:
  free(x0);
  free(xe);
  setup_free(&u);
}

/* ---- strong order: forward SDE, path-consistent noise ---- */

/* Euler-Maruyama (and stochastic Heun) on dX = -1/2 beta X dt + sqrt(beta) V' dW from a
 * fixed x0; every level sums the same finest increments (path level K = 12), so the error
 * e_N = sqrt(mean over samples of ||X_N(T) - X_ref(T)||^2) with X_ref the 2^K-step solve
 * of the same method on the same path. Additive noise: strong order 1 for both (MATH.md).
 * NumPy model (tau 6): EM N=16..256: 0.32 .. 0.017, local orders 1.13, 1.04, 1.07, 0.99;
 * Heun N=16..256: 0.18 .. 0.011, local 0.98-1.02. The reference's own error is 16x below
 * the finest level's. */
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
    par.path_level = K;
    par.seed = 2024;
    par.threads = 2;
    par.steps = (size_t)1 << K;
    csde_err err = {0, ""};
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
 * (mean and Frobenius norm of the covariance error together).
 *
 * Estimator (variance reduction): every trajectory is solved at the coarse level N and by
 * a fine reference (heun, 2^K steps) on the SAME Brownian path (path noise), from the same
 * exact draw of p_T. Then
 *     e_N ~ || mean over trajectories of (phi(y_N) - phi(y_ref)) ||,   phi = (y, F(y)),
 * an unbiased estimate of E phi(y_N) - E phi(y_ref) whose per-trajectory spread is of the
 * size of the strong error, not of phi itself. The reference's own bias
 * E phi(y_ref) - phi_exact is left out: heun with 2^10 steps has weak error ~1e-5 (NumPy
 * model), i.e. below (128/1024)^2 = 1.6% of heun's error at N = 128 and 0.1% of euler's.
 * It is checked on its own against the exact moments (with the plain Monte Carlo error).
 * Its MC error: sigma_e = sqrt(sum of the squared standard errors of the entries) bounds
 * the noise on e_N; the fitted slope's one-sigma MC error follows from sigma_e / e_N
 * (fit_sigma). The test requires that one-sigma error to be <= 0.1, so that the +-0.3
 * window is not consumed by Monte Carlo noise, and prints everything.
 *
 * Sizes (NumPy model, tau = 4): heun N=16..128 errors 3.1e-2 .. 4.6e-4 (local orders
 * 2.03, 2.03, 2.02) with strong errors 5e-2 .. 7.5e-3, so sigma_e / e at N = 128 is
 * ~ sqrt(20) 7.5e-3 / (4.6e-4 sqrt(M)): M ~ 5e5 trajectories give 0.07. Euler N=16..128:
 * 0.13 .. 0.011 (local 1.3, 1.14, 1.07) with strong errors of the same size: M = 32768
 * gives sigma_e / e ~ 0.04. D = 4096 makes one sample's white noise 16384 numbers, so the
 * path noise is drawn with both threads. */
typedef struct {
  size_t N;
  const char *solver;
  csde_solver *S;
  double *sum, *sq; /* per entry of phi: sum of differences and of their squares */
  size_t count;
} level;

static void test_weak(void)
{
  setup u;
  const size_t tau = 4, D = 4096, B = 8; /* B samples per chunk: 32768 trajectories */
  if (setup_make(&u, tau, D)) return;
  const unsigned K = quick ? 6 : 10;
  const size_t chunks = quick ? 1 : 16, em_chunks = 1;
  const size_t nphi = tau + tau * tau, n = B * tau * D;
  const size_t Ns[] = {16, 32, 64, 128}, k = 4;
  level lv[9];
  size_t nl = 0;
  for (size_t i = 0; i < k; i++) lv[nl++] = (level){Ns[i] >> (quick ? 3 : 0), "euler", NULL, NULL, NULL, 0};
  for (size_t i = 0; i < k; i++) lv[nl++] = (level){Ns[i] >> (quick ? 3 : 0), "heun", NULL, NULL, NULL, 0};
  lv[nl++] = (level){(size_t)1 << K, "heun", NULL, NULL, NULL, 0}; /* the reference, last */
  csde_problem P = problem(&u, CSDE_PROC_REVERSE_SDE, B);
  csde_err err = {0, ""};
  int s = 0;
  for (size_t l = 0; l < nl && !s; l++) {
    csde_solve_params par = csde_solve_default_params();
    par.solver = lv[l].solver;
    par.steps = lv[l].N;
    par.noise = CSDE_NOISE_PATH;
    par.path_level = K;
    par.threads = 2;
    s = csde_solver_alloc(&lv[l].S, &P, &par, &err);
    lv[l].sum = calloc(nphi, sizeof(double));
    lv[l].sq = calloc(nphi, sizeof(double));
  }
  if (!ok(!s, "weak: solvers allocated (path level %u)%s%s", K, s ? ": " : "", s ? err.msg : ""))
    goto done;
  double *mu = malloc(tau * D * sizeof *mu), *Se = malloc(tau * tau * sizeof *Se);
  double *x0 = malloc(n * sizeof *x0), *xr = malloc(n * sizeof *xr), *x = malloc(n * sizeof *x);
  /* the reference against the exact moments: plain sums of phi(y_ref) - phi_exact */
  double *rsum = calloc(nphi, sizeof(double)), *rsq = calloc(nphi, sizeof(double));
  s = csde_model_gaussian_marginal(u.M, 1e-3, mu, Se, &err);
  ok(!s, "weak: exact marginal at eps%s%s", s ? ": " : "", s ? err.msg : "");
  double t0 = now();
  for (size_t c = 0; c < chunks && !s; c++) {
    csde_rng_key key = {777, 0}; /* initial draws: a seed the solver noise never uses */
    s = csde_model_gaussian_sample(u.M, 1.0, key, c * B, B, x0, &err);
    for (size_t l = nl; l-- > 0 && !s;) { /* the reference first */
      int isref = l == nl - 1;
      if (!isref && !strcmp(lv[l].solver, "euler") && c >= em_chunks) continue;
      double *y = isref ? xr : x;
      memcpy(y, x0, n * sizeof *y);
      csde_solver_set_seed(lv[l].S, 4242, c * B);
      if ((s = csde_solver_run(lv[l].S, y, NULL, &err))) break;
      for (size_t b = 0; b < B; b++)
        for (size_t p = 0; p < D; p++) {
          const double *yb = y + b * tau * D + p, *rb = xr + b * tau * D + p;
          double dy[16], dr[16], phi[20];
          for (size_t i = 0; i < tau; i++) {
            dy[i] = yb[i * D] - mu[i * D + p];
            dr[i] = rb[i * D] - mu[i * D + p];
          }
          if (isref) { /* phi(y_ref) - phi_exact */
            for (size_t i = 0; i < tau; i++) phi[i] = dr[i];
            for (size_t i = 0; i < tau; i++)
              for (size_t j = 0; j < tau; j++) phi[tau + i * tau + j] = dr[i] * dr[j] - Se[i * tau + j];
            for (size_t q = 0; q < nphi; q++) {
              rsum[q] += phi[q];
              rsq[q] += phi[q] * phi[q];
            }
          } else { /* phi(y_N) - phi(y_ref) */
            for (size_t i = 0; i < tau; i++) phi[i] = dy[i] - dr[i];
            for (size_t i = 0; i < tau; i++)
              for (size_t j = 0; j < tau; j++)
                phi[tau + i * tau + j] = dy[i] * dy[j] - dr[i] * dr[j];
            for (size_t q = 0; q < nphi; q++) {
              lv[l].sum[q] += phi[q];
              lv[l].sq[q] += phi[q] * phi[q];
            }
          }
        }
      lv[l].count += B * D;
    }
  }
  if (!ok(!s, "weak: %zu chunks of %zu trajectories solved in %.1f s%s%s", chunks, B * D,
          now() - t0, s ? ": " : "", s ? err.msg : ""))
    goto free_all;

  /* the reference alone against the exact moments of p_eps (plain MC): every entry of
   * mean(phi(y_ref)) - phi_exact within 4.5 standard errors (20 entries, fixed seed) */
  {
    size_t M = lv[nl - 1].count;
    double worst = 0, enorm = 0;
    for (size_t q = 0; q < nphi; q++) {
      double m = rsum[q] / (double)M, var = rsq[q] / (double)M - m * m;
      double se = sqrt(fmax(var, 0) / (double)(M - 1));
      worst = fmax(worst, fabs(m) / se);
      enorm += m * m;
    }
    printf("# reference (heun, %zu steps) vs exact p_eps over %zu trajectories: "
           "||error|| %.3e, worst entry %.2f standard errors\n",
           lv[nl - 1].N, M, sqrt(enorm), worst);
    ok(worst <= 4.5, "reverse SDE from exact p_T ends at p_eps: worst entry %.2f SE <= 4.5", worst);
  }

  for (int m = 0; m < 2; m++) {
    const char *name = m ? "heun" : "euler";
    double e[4], rel[4], em[4], ec[4];
    size_t NN[4], M = 0;
    for (size_t i = 0; i < k; i++) {
      level *L = &lv[m * k + i];
      M = L->count;
      double v = 0, s2 = 0, vm = 0;
      for (size_t q = 0; q < nphi; q++) {
        double a = L->sum[q] / (double)M, var = L->sq[q] / (double)M - a * a;
        v += a * a;
        s2 += fmax(var, 0) / (double)(M - 1);
        if (q < tau) vm += a * a;
      }
      NN[i] = L->N;
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
free_all:
  free(mu);
  free(Se);
  free(x0);
  free(xr);
  free(x);
  free(rsum);
  free(rsq);
done:
  for (size_t l = 0; l < nl; l++) {
    csde_solver_free(lv[l].S);
    free(lv[l].sum);
    free(lv[l].sq);
  }
  setup_free(&u);
}

int main(void)
{
  csde_init();
  quick = getenv("CSDE_TEST_QUICK") != NULL;
  double t0 = now();
  test_ode_orders();
  printf("# ODE orders: %.2f s\n", now() - t0);
  double t1 = now();
  test_strong();
  printf("# strong orders: %.2f s\n", now() - t1);
  double t2 = now();
  test_weak();
  printf("# weak orders: %.2f s\n", now() - t2);
  printf("# total %.2f s\n", now() - t0);
  return tap_done();
}
