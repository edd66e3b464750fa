/* Tests for corrsde/schedule.h: VP schedules, continuous and discrete. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_integration.h>

#include "corrsde/schedule.h"
#include "tap.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static csde_schedule *make(const char *spec)
{
  csde_schedule *s = NULL;
  csde_err err = {0};
  int st = csde_schedule_alloc(&s, spec, &err);
  ok(st == 0 && s, "alloc '%s'%s%s", spec, st ? ": " : "", st ? err.msg : "");
  return s;
}

static double rel(double got, double want)
{
  return fabs(got - want) / fmax(fabs(want), DBL_MIN);
}

/* |got - want| <= tol |want| */
static int ok_rel(double got, double want, double tol, const char *what)
{
  double r = rel(got, want);
  if (!(r <= tol)) printf("# %s: got %.17g want %.17g rel %.3g\n", what, got, want, r);
  return ok(r <= tol, "%s (rel %.3g <= %.3g)", what, r, tol);
}

/* ---- B(t) against quadrature of beta ---- */

static double beta_fn(double t, void *p) { return csde_schedule_beta(p, t); }

static void check_B_quadrature(const char *spec, double tmax)
{
  csde_schedule *s = make(spec);
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
  gsl_function f = {beta_fn, s};
  double worst = 0;
  int fails = 0;
  for (int k = 1; k <= 20; k++) {
    double t = tmax * k / 20, q, qerr;
    int st = gsl_integration_qag(&f, 0, t, 1e-14, 1e-13, 1000, GSL_INTEG_GAUSS61, w, &q, &qerr);
    double B = csde_schedule_int_beta(s, t);
    double d = fabs(B - q) / fmax(1, fabs(q));
    if (st || !(d <= 1e-12)) {
      fails++;
      printf("# %s t=%g: B %.17g quadrature %.17g (status %d)\n", spec, t, B, q, st);
    }
    if (d > worst) worst = d;
  }
  ok(!fails, "%s: B(t) = int_0^t beta (GSL qag) for 20 t in (0, %g], worst %.3g <= 1e-12",
     spec, tmax, worst);
  gsl_integration_workspace_free(w);
  csde_schedule_free(s);
}

/* ---- sigma and logsnr identities ---- */

static void check_identities(const char *spec)
{
  csde_schedule *s = make(spec);
  double worst_sig = 0, worst_lsnr = 0, worst_exact = 0;
  for (int k = 0; k <= 40; k++) {
    double t = k == 0 ? 1e-9 : 0.99 * k / 40;
    double B = csde_schedule_int_beta(s, t), ab = csde_schedule_abar(s, t);
    double sg = csde_schedule_sigma(s, t), l = csde_schedule_logsnr(s, t);
    /* abar = e^-B; sigma^2 = e^B - 1 (long double reference); logsnr = -2 log sigma */
    worst_exact = fmax(worst_exact, rel(ab, exp(-B)));
    worst_sig = fmax(worst_sig, rel(sg * sg, (double)expm1l((long double)B)));
    worst_lsnr = fmax(worst_lsnr, fabs(l + 2 * log(sg)) / fmax(1, fabs(l)));
    if (t >= 0.05) { /* where 1 - abar has no cancellation: the defining forms */
      worst_sig = fmax(worst_sig, rel(sg, sqrt((1 - ab) / ab)) / 100);
      worst_lsnr = fmax(worst_lsnr, fabs(l - log(ab / (1 - ab))) / fmax(1, fabs(l)) / 100);
    }
  }
  ok(worst_exact <= 0, "%s: abar = exp(-B) exactly", spec);
  ok(worst_sig <= 4e-15, "%s: sigma^2 = expm1(B) = (1-abar)/abar (rel %.3g)", spec, worst_sig);
  ok(worst_lsnr <= 4e-15, "%s: logsnr = -2 log sigma = log(abar/(1-abar)) (%.3g)", spec,
     worst_lsnr);
  csde_schedule_free(s);
}

/* ---- t_of_logsnr(logsnr(t)) = t ---- */

static void check_inverse(const char *spec)
{
  csde_schedule *s = make(spec);
  double worst = 0, worst_t = 0;
  for (int k = 0; k <= 200; k++) {
    double t = k / 200.0;
    double back = csde_schedule_t_of_logsnr(s, csde_schedule_logsnr(s, t));
    if (fabs(back - t) > worst) worst = fabs(back - t), worst_t = t;
  }
  const double small[] = {1e-12, 1e-9, 1e-6, 1e-3, 0.999, 0.999999};
  for (size_t k = 0; k < sizeof small / sizeof *small; k++) {
    double t = small[k];
    double back = csde_schedule_t_of_logsnr(s, csde_schedule_logsnr(s, t));
    if (fabs(back - t) > worst) worst = fabs(back - t), worst_t = t;
  }
  ok(worst <= 1e-12, "%s: t_of_logsnr(logsnr(t)) = t on [0, 1] (worst %.3g at t = %g)", spec,
     worst, worst_t);
  ok(csde_schedule_t_of_logsnr(s, 800) == 0 && csde_schedule_t_of_logsnr(s, INFINITY) == 0,
     "%s: t_of_logsnr clamps a large logsnr to 0", spec);
  ok(csde_schedule_t_of_logsnr(s, -800) == 1 && csde_schedule_t_of_logsnr(s, -INFINITY) == 1,
     "%s: t_of_logsnr clamps a small logsnr to 1", spec);
  csde_schedule_free(s);
}

/* ---- error paths ---- */

static void check_alloc_error(const char *spec, int want, const char *substr)
{
  csde_schedule *s = (csde_schedule *)&s; /* must come back NULL */
  csde_err err = {0};
  int st = csde_schedule_alloc(&s, spec, &err);
  char what[160];
  snprintf(what, sizeof what, "alloc '%s' fails", spec);
  ok_status(st, want, err.msg, substr, what);
  ok(s == NULL && err.status == want, "alloc '%s': *out is NULL, err.status set", spec);
}

int main(void)
{
  csde_init();

  /* vp-linear: defaults, canonical spec, abar(1) = exp(-(bmin + (bmax-bmin)/2)) */
  {
    csde_schedule *s = make("vp-linear");
    ok(!strcmp(csde_schedule_spec(s), "vp-linear:bmin=0.1,bmax=20"), "canonical spec '%s'",
       csde_schedule_spec(s));
    ok(csde_schedule_nsteps(s) == 0, "vp-linear is continuous (nsteps 0)");
    /* B(1) = 0.1 + 9.95 rounds to 10.05 - 2 ulp: abar to rel 4e-15 */
    ok_rel(csde_schedule_abar(s, 1), exp(-10.05), 4e-15,
           "vp-linear abar(1) = exp(-10.05) = 4.3186e-5");
    ok_rel(csde_schedule_int_beta(s, 0.5), 0.05 + 19.9 / 8, 1e-15,
           "vp-linear B(1/2) = bmin/2 + (bmax-bmin)/8");
    ok_rel(csde_schedule_beta(s, 0.25), 0.1 + 0.25 * 19.9, 1e-15, "vp-linear beta(1/4)");
    ok(csde_schedule_abar(s, 0) == 1 && csde_schedule_sigma(s, 0) == 0 &&
           csde_schedule_logsnr(s, 0) == INFINITY,
       "vp-linear at t = 0: abar 1, sigma 0, logsnr +inf");
    ok(csde_schedule_int_beta(s, 1.5) == csde_schedule_int_beta(s, 1) &&
           csde_schedule_int_beta(s, -0.5) == 0 && isnan(csde_schedule_abar(s, NAN)),
       "t outside [0, 1] is clamped, NaN stays NaN");
    ok(isnan(csde_schedule_beta_step(s, 1)) && csde_schedule_abar_step(s, 0) == 1,
       "continuous: beta_step NaN, abar_step(0) = 1");
    csde_schedule_free(s);
    s = make("vp-linear:bmax=7.5,bmin=0.25");
    ok(!strcmp(csde_schedule_spec(s), "vp-linear:bmin=0.25,bmax=7.5"),
       "canonical spec orders keys: '%s'", csde_schedule_spec(s));
    csde_schedule_free(s);
  }

  /* B(t) against numerical integration of beta */
  check_B_quadrature("vp-linear", 1);
  check_B_quadrature("vp-linear:bmin=0,bmax=3", 1);
  check_B_quadrature("vp-linear:bmin=2,bmax=2", 1);
  check_B_quadrature("vp-linear:bmin=0.1,bmax=1e6", 1); /* allowed: stiff, not wrong */
  check_B_quadrature("cosine:s=1000", 0.99); /* large s: still consistent (1e-16 s) */
  check_B_quadrature("cosine", 0.99);
  check_B_quadrature("cosine:s=0", 0.99);

  /* cosine against its closed form */
  {
    csde_schedule *s = make("cosine");
    ok(!strcmp(csde_schedule_spec(s), "cosine:s=0.008"), "canonical spec '%s'",
       csde_schedule_spec(s));
    double so = 0.008, worst_ab = 0, worst_b = 0;
    double f0 = pow(cos(M_PI / 2 * so / (1 + so)), 2);
    for (int k = 0; k <= 100; k++) {
      double t = 0.99 * k / 100, u = M_PI / 2 * (t + so) / (1 + so);
      worst_ab = fmax(worst_ab, rel(csde_schedule_abar(s, t), pow(cos(u), 2) / f0));
      worst_b = fmax(worst_b, rel(csde_schedule_beta(s, t), M_PI / (1 + so) * tan(u)));
    }
    ok(worst_ab <= 1e-13, "cosine abar = f(t)/f(0) (rel %.3g)", worst_ab);
    ok(worst_b <= 1e-13, "cosine beta = pi/(1+s) tan(pi/2 (t+s)/(1+s)) (rel %.3g)", worst_b);
    /* small t, where the closed form above has cancelled: Taylor
     * B = beta(0) t + beta'(0) t^2/2, beta(0) = 2a tan u0, beta'(0) = 2a^2 / cos^2 u0 */
    double t = 1e-10, a = M_PI / 2 / (1 + so), u0 = a * so;
    ok_rel(csde_schedule_int_beta(s, t), 2 * a * tan(u0) * t + a * a / pow(cos(u0), 2) * t * t,
           1e-13, "cosine B(1e-10) by Taylor (no cancellation)");
    ok(csde_schedule_abar(s, 1) == 0 && csde_schedule_int_beta(s, 1) == INFINITY &&
           csde_schedule_logsnr(s, 1) == -INFINITY,
       "cosine at t = 1: abar 0, B +inf, logsnr -inf");
    csde_schedule_free(s);
  }

  /* ddpm-linear: betas, abar_N against a direct product, continuous view */
  {
    csde_schedule *s = make("ddpm-linear");
    size_t N = csde_schedule_nsteps(s);
    ok(N == 1000, "ddpm-linear nsteps %zu = 1000", N);
    ok(!strcmp(csde_schedule_spec(s), "ddpm-linear:n=1000,b1=0.0001,bN=0.02"),
       "canonical spec '%s'", csde_schedule_spec(s));
    double worst = 0;
    for (size_t i = 1; i <= N; i++)
      worst = fmax(worst, fabs(csde_schedule_beta_step(s, i) -
                               (1e-4 + (0.02 - 1e-4) * (double)(i - 1) / 999)));
    ok(worst <= 1e-17 && csde_schedule_beta_step(s, 1000) == 0.02,
       "ddpm-linear betas = linspace(1e-4, 0.02, 1000) (|diff| %.3g)", worst);
    long double prod = 1;
    double worst_prod = 0;
    for (size_t i = 1; i <= N; i++) {
      prod *= 1.0L - (long double)csde_schedule_beta_step(s, i);
      worst_prod = fmax(worst_prod, rel(csde_schedule_abar_step(s, i), (double)prod));
    }
    ok_rel(csde_schedule_abar_step(s, 1000), (double)prod, 1e-14,
           "ddpm-linear abar_1000 = prod(1 - beta_i)");
    ok(worst_prod <= 1e-14, "ddpm-linear abar_i = prod_{s<=i}(1 - beta_s), all i (rel %.3g)",
       worst_prod);
    ok_rel(csde_schedule_abar_step(s, 1000), 4.035829765375676e-05, 1e-13,
           "ddpm-linear abar_1000 = 4.0358e-5 (numpy)");
    ok(isnan(csde_schedule_beta_step(s, 0)) && isnan(csde_schedule_beta_step(s, 1001)) &&
           isnan(csde_schedule_abar_step(s, 1001)) && csde_schedule_abar_step(s, 0) == 1,
       "beta_step/abar_step NaN outside 1..N, abar_0 = 1");

    /* continuous view: abar(i/N) = abar_i, also for t = i * (1/N) */
    double w1 = 0, w2 = 0, wslope = 0, wmid = 0;
    for (size_t i = 1; i <= N; i++) {
      double ai = csde_schedule_abar_step(s, i);
      w1 = fmax(w1, rel(csde_schedule_abar(s, (double)i / (double)N), ai));
      w2 = fmax(w2, rel(csde_schedule_abar(s, (double)i * (1.0 / (double)N)), ai));
      /* B linear on each interval with slope beta(t) = -N log1p(-beta_i) */
      double lo = csde_schedule_int_beta(s, (double)(i - 1) / (double)N);
      double hi = csde_schedule_int_beta(s, (double)i / (double)N);
      double tm = ((double)i - 0.5) / (double)N;
      double slope = -(double)N * log1p(-csde_schedule_beta_step(s, i));
      wslope = fmax(wslope, rel(csde_schedule_beta(s, tm), slope));
      wslope = fmax(wslope, rel((hi - lo) * (double)N, slope) / 100);
      wmid = fmax(wmid, rel(csde_schedule_int_beta(s, tm), 0.5 * (lo + hi)));
    }
    ok(w1 <= 1e-14, "ddpm-linear continuous view: abar(i/N) = abar_i (rel %.3g)", w1);
    ok(w2 <= 1e-14, "ddpm-linear continuous view: abar(i * (1/N)) = abar_i (rel %.3g)", w2);
    ok(wslope <= 1e-12, "ddpm-linear beta(t) = -N log1p(-beta_i) on ((i-1)/N, i/N] (%.3g)",
       wslope);
    ok(wmid <= 1e-14, "ddpm-linear B is linear between nodes (rel %.3g)", wmid);
    ok(csde_schedule_beta(s, 0) == csde_schedule_beta(s, 0.5 / (double)N) &&
           csde_schedule_beta(s, 1.0 / (double)N) == csde_schedule_beta(s, 0.5 / (double)N),
       "beta(t) takes the interval ((i-1)/N, i/N] (and t = 0 the first)");

    /* discretize: same N -> own betas; N/2 -> abar-ratio betas */
    double *b = malloc(N * sizeof *b);
    csde_err err = {0};
    int st = csde_schedule_discretize(s, N, b, &err);
    int same = !st;
    for (size_t i = 1; i <= N && same; i++) same = b[i - 1] == csde_schedule_beta_step(s, i);
    ok(same, "discretize(ddpm-linear, 1000) = its own betas");
    st = csde_schedule_discretize(s, 500, b, &err);
    double cum = 0, wr = 0;
    for (size_t i = 1; i <= 500 && !st; i++) {
      cum += log1p(-b[i - 1]);
      wr = fmax(wr, rel(exp(cum), csde_schedule_abar_step(s, 2 * i)));
    }
    ok(!st && wr <= 1e-13,
       "discretize(ddpm-linear, 500): prod(1 - beta_i) = abar(i/500) = abar_{2i} (rel %.3g)",
       wr);
    free(b);
    csde_schedule_free(s);
  }

  /* a user array: canonical spec lists the betas and reads back bitwise */
  {
    const double bs[] = {0.1, 1.0 / 3, 0.02, 0.5, 0.999};
    csde_schedule *s = NULL, *r = NULL;
    csde_err err = {0};
    int st = csde_schedule_alloc_discrete(&s, bs, 5, &err);
    ok(!st && s, "alloc_discrete of 5 betas");
    ok(!strcmp(csde_schedule_spec(s), "discrete:betas=0.1,0.3333333333333333,0.02,0.5,0.999"),
       "canonical spec '%s'", csde_schedule_spec(s));
    st = csde_schedule_alloc(&r, csde_schedule_spec(s), &err);
    int same = !st;
    for (size_t i = 1; i <= 5 && same; i++)
      same = csde_schedule_beta_step(r, i) == bs[i - 1] &&
             csde_schedule_abar_step(r, i) == csde_schedule_abar_step(s, i);
    ok(same, "the spec reads back to the same schedule, bitwise");
    csde_schedule_free(r);
    csde_schedule_free(s);
  }

  /* discretize a continuous schedule: beta_i = beta(i/N)/N exactly */
  {
    csde_schedule *s = make("vp-linear:bmin=0.1,bmax=20");
    const size_t N = 1000;
    double *b = malloc(N * sizeof *b);
    csde_err err = {0};
    int st = csde_schedule_discretize(s, N, b, &err);
    int exact = !st;
    for (size_t i = 1; i <= N && exact; i++)
      exact = b[i - 1] == (0.1 + (double)i / (double)N * (20 - 0.1)) / (double)N;
    ok(exact, "discretize(vp-linear 0.1..20, 1000): beta_i = (bmin + (i/N)(bmax-bmin))/N");
    ok_rel(b[N - 1], 0.02, 1e-15, "discretize(vp-linear, 1000): beta_N = bmax/N = 0.02");
    /* the chain approximates the continuous abar: sum log(1-beta_i) = -B(1) - e1/N + O(N^-2),
     * e1 = (beta(1) - beta(0))/2 (right Riemann sum) + int_0^1 beta^2/2 (log1p's square term),
     * int beta^2 = (bmax^3 - bmin^3) / (3 (bmax - bmin)); the O(N^-2) rest is
     * ~ int beta^3 / (3 N^2) = 7e-4 */
    double lp = 0;
    for (size_t i = 0; i < N; i++) lp += log1p(-b[i]);
    double e1 = (20 - 0.1) / 2 + (8000 - 0.001) / (3 * 19.9) / 2;
    double pred = -csde_schedule_int_beta(s, 1) - e1 / (double)N;
    ok(fabs(lp - pred) < 1e-3, "discretized chain: log prod(1-beta_i) = %.6f ~ -B(1) - e1/N = %.6f",
       lp, pred);
    free(b);
    csde_schedule_free(s);
  }

  /* sigma / logsnr identities and the exact inverse, every type */
  const char *all[] = {"vp-linear", "vp-linear:bmin=0,bmax=5", "vp-linear:bmin=1,bmax=1",
                       "cosine", "cosine:s=0", "cosine:s=10000", "ddpm-linear", "ddpm-linear:n=7,b1=0.3,bN=0.01",
                       "discrete:betas=0.5,0.001,0.2"};
  for (size_t k = 0; k < sizeof all / sizeof *all; k++) {
    check_identities(all[k]);
    check_inverse(all[k]);
  }

  /* error paths */
  check_alloc_error("linear", CSDE_ESPEC, "expected: vp-linear, cosine, ddpm-linear, discrete");
  check_alloc_error("", CSDE_ESPEC, "empty");
  check_alloc_error("vp-linear:bmin", CSDE_ESPEC, "key=value");
  check_alloc_error("vp-linear:beta=3", CSDE_ESPEC, "unknown parameter 'beta'");
  check_alloc_error("vp-linear:beta=3", CSDE_ESPEC, "expected: bmin, bmax");
  check_alloc_error("cosine:bmin=3", CSDE_ESPEC, "expected: s");
  check_alloc_error("ddpm-linear:N=3", CSDE_ESPEC, "expected: n, b1, bN");
  check_alloc_error("vp-linear:bmin=abc", CSDE_ESPEC, "finite number");
  check_alloc_error("vp-linear:bmin=-0.1", CSDE_EDOM, "bmin = -0.1 must be >= 0");
  check_alloc_error("vp-linear:bmin=5,bmax=2", CSDE_EDOM, "bmax = 2 must be >= bmin = 5");
  check_alloc_error("vp-linear:bmin=0,bmax=0", CSDE_EDOM, "bmax = 0 must be > 0");
  check_alloc_error("cosine:s=-0.5", CSDE_EDOM, "s = -0.5 must be >= 0");
  /* issue 23, item 16: s where B(t) no longer matches int beta (1e17: abar ~ 1 where it
   * should be (1 - t)^2) is refused, naming the range */
  check_alloc_error("cosine:s=1e17", CSDE_EDOM, "s = 1e+17 is outside [0, 1e4]");
  check_alloc_error("cosine:s=1e308", CSDE_EDOM, "s = 1e+308 is outside [0, 1e4]");
  check_alloc_error("cosine:s=10000.000001", CSDE_EDOM, "s = 10000.000001 is outside [0, 1e4]");
  check_alloc_error("cosine:s=inf", CSDE_ESPEC, "finite number");
  check_alloc_error("cosine:s=nan", CSDE_ESPEC, "finite number");
  check_alloc_error("vp-linear:bmax=inf", CSDE_ESPEC, "finite number");
  check_alloc_error("vp-linear:bmin=nan", CSDE_ESPEC, "finite number");
  check_alloc_error("vp-linear:bmax=1e309", CSDE_ESPEC, "finite number");
  check_alloc_error("vp-linear:bmin=-1,bmax=1e6", CSDE_EDOM, "bmin = -1 must be >= 0");
  check_alloc_error("ddpm-linear:n=0", CSDE_ESPEC, "positive integer");
  check_alloc_error("ddpm-linear:b1=1.5", CSDE_EDOM, "b1 = 1.5 must be in (0, 1)");
  check_alloc_error("ddpm-linear:bN=0", CSDE_EDOM, "bN = 0 must be in (0, 1)");
  check_alloc_error("discrete", CSDE_ESPEC, "needs betas=");
  check_alloc_error("discrete:betas=0.1,1.5", CSDE_EDOM, "beta_2 = 1.5");
  check_alloc_error("discrete:betas=0.1,x", CSDE_ESPEC, "not a finite number");
  {
    csde_schedule *s = (csde_schedule *)&s;
    csde_err err = {0};
    const double bad[] = {0.1, 0.2, 0.0};
    int st = csde_schedule_alloc_discrete(&s, bad, 3, &err);
    ok_status(st, CSDE_EDOM, err.msg, "beta_3 = 0 must be finite and in (0, 1)",
              "alloc_discrete with beta_3 = 0 fails");
    ok(s == NULL, "alloc_discrete failure leaves *out NULL");
    const double nan[] = {NAN};
    st = csde_schedule_alloc_discrete(&s, nan, 1, &err);
    ok_status(st, CSDE_EDOM, err.msg, "beta_1 = nan", "alloc_discrete with a NaN beta fails");
    st = csde_schedule_alloc_discrete(&s, bad, 0, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "n = 0", "alloc_discrete with n = 0 fails");
    st = csde_schedule_alloc(NULL, "vp-linear", &err);
    ok_status(st, CSDE_EINVAL, err.msg, "out is NULL", "alloc with out NULL fails");
    st = csde_schedule_alloc(&s, "linear", NULL);
    ok(st == CSDE_ESPEC, "err may be NULL");
  }
  {
    double b[1000];
    csde_err err = {0};
    csde_schedule *s = make("vp-linear");
    int st = csde_schedule_discretize(s, 10, b, &err);
    ok_status(st, CSDE_EDOM, err.msg, "beta_5 =",
              "discretize(vp-linear, N = 10): beta(t)/10 passes 1 at i = 5");
    st = csde_schedule_discretize(s, 0, b, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "N must be >= 1", "discretize with N = 0 fails");
    st = csde_schedule_discretize(s, 10, NULL, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "betas is NULL", "discretize with betas NULL fails");
    csde_schedule_free(s);
    s = make("cosine");
    st = csde_schedule_discretize(s, 1000, b, &err);
    ok_status(st, CSDE_EDOM, err.msg, "beta_999 =",
              "discretize(cosine, 1000) fails where beta(t)/N reaches 1");
    csde_schedule_free(s);
    csde_schedule_free(NULL);
    ok(1, "csde_schedule_free(NULL) is a no-op");
  }
  return tap_done();
}
