/* Tests for csde_grid_make (corrsde/solve.h): every kind's nodes against formulas
 * computed here, bitwise nesting, exact ends, monotonicity and every error path. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "corrsde/status.h"
#include "tap.h"

static csde_schedule *vp, *cosine;
static const double BMIN = 0.1, BMAX = 20.0;

/* vp-linear's B(t) = bmin t + (bmax - bmin) t^2 / 2, inverted in closed form. */
static double vp_t_of_B(double B)
{
  const double d = BMAX - BMIN;
  return 2.0 * B / (BMIN + sqrt(BMIN * BMIN + 2.0 * d * B)); /* the stable root */
}
static double vp_B(double t) { return BMIN * t + 0.5 * (BMAX - BMIN) * t * t; }
static double vp_sigma(double t) { return sqrt(expm1(vp_B(t))); }
static double vp_logsnr(double t) { return -log(expm1(vp_B(t))); }

static double *grid(const char *spec, const csde_schedule *s, double ts, double te, size_t N,
                    size_t *n, int *status, csde_err *err)
{
  double *t = (double *)0x1; /* must be reset on failure */
  *n = 77;
  csde_err_clear(err);
  *status = csde_grid_make(spec, s, ts, te, N, &t, n, err);
  if (*status && (t != NULL || *n != 0)) {
    printf("# %s: on failure the outputs must be NULL / 0\n", spec);
    return (double *)0x1;
  }
  return t;
}

/* ---- each kind against its formula ---- */

typedef double (*formula)(double u, double ts, double te, double p);

static double f_uniform(double u, double ts, double te, double p)
{
  (void)p;
  return ts + u * (te - ts);
}
/* distance to the data end (the smaller t) is span * (u or 1-u)^2 */
static double f_quadratic(double u, double ts, double te, double p)
{
  (void)p;
  if (ts < te) return ts + (te - ts) * u * u;
  return te + (ts - te) * (1 - u) * (1 - u);
}
static double f_karras(double u, double ts, double te, double rho)
{
  double a = pow(vp_sigma(ts), 1 / rho), b = pow(vp_sigma(te), 1 / rho);
  double sigma = pow(a + u * (b - a), rho);
  return vp_t_of_B(log1p(sigma * sigma));
}
static double f_logsnr(double u, double ts, double te, double p)
{
  (void)p;
  double l = vp_logsnr(ts) + u * (vp_logsnr(te) - vp_logsnr(ts));
  return vp_t_of_B(log1p(exp(-l)));
}

static void check_formula(const char *spec, formula f, double p, double ts, double te,
                          size_t N, double rtol)
{
  size_t n;
  int st;
  csde_err err;
  double *t = grid(spec, vp, ts, te, N, &n, &st, &err);
  if (!ok(st == 0 && n == N, "%s %g -> %g, N = %zu: made%s%s", spec, ts, te, N,
          st ? ": " : "", st ? err.msg : ""))
    return;
  double worst = 0;
  for (size_t i = 0; i <= N; i++) {
    double want = f((double)i / (double)N, ts, te, p);
    double d = fabs(t[i] - want) / fmax(fabs(want), 1e-300);
    if (want == 0 && t[i] == 0) d = 0;
    if (d > worst) worst = d;
    if (!(d <= rtol)) printf("# node %zu: got %.17g want %.17g\n", i, t[i], want);
  }
  ok(worst <= rtol, "%s %g -> %g, N = %zu: nodes match the formula (worst rel %.3g <= %.3g)",
     spec, ts, te, N, worst, rtol);
  ok(t[0] == ts && t[N] == te, "%s %g -> %g: ends exactly t_start and t_end", spec, ts, te);
  free(t);
}

static void test_formulas(void)
{
  /* reverse / pf-ode (T -> eps), forward (0 -> T), encode (eps -> T) */
  const double ends[3][2] = {{1.0, 1e-3}, {0.0, 1.0}, {1e-3, 1.0}};
  for (int e = 0; e < 3; e++) {
    double ts = ends[e][0], te = ends[e][1];
    check_formula("uniform", f_uniform, 0, ts, te, 10, 1e-15);
    check_formula("uniform", f_uniform, 0, ts, te, 1, 1e-15);
    check_formula("quadratic", f_quadratic, 0, ts, te, 16, 1e-15);
    check_formula("karras", f_karras, 7, ts, te, 20, 1e-12);
    check_formula("karras:rho=3", f_karras, 3, ts, te, 20, 1e-12);
    check_formula("karras:rho=1", f_karras, 1, ts, te, 9, 1e-12);
    if (ts > 0 && te > 0) check_formula("logsnr", f_logsnr, 0, ts, te, 20, 1e-12);
  }
  /* quadratic is dense near the data end, whichever end that is */
  size_t n;
  int st;
  csde_err err;
  double *t = grid("quadratic", NULL, 1.0, 1e-3, 10, &n, &st, &err);
  ok(st == 0 && fabs(t[10] - t[9]) < fabs(t[1] - t[0]) / 10,
     "quadratic 1 -> 1e-3: last step %.3g << first %.3g (dense at the data end t_end)",
     fabs(t[10] - t[9]), fabs(t[1] - t[0]));
  free(t);
  t = grid("quadratic", NULL, 0.0, 1.0, 10, &n, &st, &err);
  ok(st == 0 && t[1] - t[0] < (t[10] - t[9]) / 10,
     "quadratic 0 -> 1: first step %.3g << last %.3g (dense at the data end t_start)",
     t[1] - t[0], t[10] - t[9]);
  free(t);
  /* karras: sigma(t)^(1/rho) is linear in u (checked with the library's own sigma) */
  t = grid("karras:rho=5", vp, 1.0, 1e-3, 8, &n, &st, &err);
  double worst = 0;
  for (size_t i = 0; st == 0 && i <= 8; i++) {
    double a = pow(csde_schedule_sigma(vp, 1.0), 0.2), b = pow(csde_schedule_sigma(vp, 1e-3), 0.2);
    double want = a + (double)i / 8 * (b - a), got = pow(csde_schedule_sigma(vp, t[i]), 0.2);
    worst = fmax(worst, fabs(got - want) / want);
  }
  ok(st == 0 && worst < 1e-12, "karras:rho=5: sigma(t_i)^(1/5) linear in i (worst rel %.3g)",
     worst);
  free(t);
  /* logsnr on a cosine schedule: logsnr(t_i) linear in i */
  t = grid("logsnr", cosine, 0.999, 0.01, 12, &n, &st, &err);
  worst = 0;
  double l0 = csde_schedule_logsnr(cosine, 0.999), l1 = csde_schedule_logsnr(cosine, 0.01);
  for (size_t i = 0; st == 0 && i <= 12; i++) {
    double want = l0 + (double)i / 12 * (l1 - l0), got = csde_schedule_logsnr(cosine, t[i]);
    worst = fmax(worst, fabs(got - want) / fmax(1, fabs(want)));
  }
  ok(st == 0 && worst < 1e-10, "logsnr on cosine 0.999 -> 0.01: logsnr(t_i) linear in i "
     "(worst %.3g)%s%s", worst, st ? ": " : "", st ? err.msg : "");
  free(t);
  /* list: the user's nodes, N ignored */
  t = grid("list:1,0.5,0.25,0.001", vp, 1.0, 1e-3, 7, &n, &st, &err);
  ok(st == 0 && n == 3 && t[0] == 1.0 && t[1] == 0.5 && t[2] == 0.25 && t[3] == 1e-3,
     "list:1,0.5,0.25,0.001: 3 steps, the nodes as given (N = 7 ignored)");
  free(t);
  t = grid("list:0.001, 0.3 ,1", NULL, 1e-3, 1.0, 1, &n, &st, &err);
  ok(st == 0 && n == 2 && t[0] == 1e-3 && t[1] == 0.3 && t[2] == 1.0,
     "list with spaces, increasing (encode direction)");
  free(t);
  /* ends within printing noise are snapped to exactly t_start / t_end */
  t = grid("list:0.99999999999999989,0.5,0.0010000000000000002", NULL, 1.0, 1e-3, 1, &n, &st,
           &err);
  ok(st == 0 && n == 2 && t[0] == 1.0 && t[2] == 1e-3,
     "list: ends 1 ulp off are snapped to t_start and t_end exactly");
  free(t);
}

/* ---- nesting, ends, monotonicity ---- */

static void test_nesting(void)
{
  const char *kinds[] = {"uniform", "quadratic", "karras", "karras:rho=3", "logsnr"};
  const double ends[3][2] = {{1.0, 1e-3}, {0.0, 1.0}, {1e-3, 1.0}};
  const size_t bases[] = {1, 3, 5};
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
    for (int e = 0; e < 3; e++) {
      double ts = ends[e][0], te = ends[e][1];
      if (!strcmp(kinds[k], "logsnr") && (ts == 0 || te == 0)) continue; /* refused */
      for (size_t b = 0; b < 3; b++) {
        /* N = base * 2^j, j = 1..10: grid 2N holds grid N bitwise */
        int fails = 0, mono = 1, ends_ok = 1, made = 1;
        size_t N = bases[b], nmax = 0;
        double *prev = NULL;
        for (int j = 0; j <= 10; j++, N *= 2) {
          size_t n;
          int st;
          csde_err err;
          double *t = grid(kinds[k], vp, ts, te, N, &n, &st, &err);
          if (st || n != N) {
            printf("# %s N = %zu: %s\n", kinds[k], N, err.msg);
            made = 0;
            free(prev);
            prev = NULL;
            break;
          }
          nmax = N;
          if (t[0] != ts || t[N] != te) ends_ok = 0;
          for (size_t i = 1; i <= N; i++)
            if (!((te > ts) ? t[i] > t[i - 1] : t[i] < t[i - 1])) mono = 0;
          if (prev)
            for (size_t i = 0; i <= N / 2; i++)
              if (memcmp(&prev[i], &t[2 * i], sizeof(double))) {
                if (fails++ < 3)
                  printf("# %s N = %zu node %zu: %.17g vs 2N node %zu: %.17g\n", kinds[k],
                         N / 2, i, prev[i], 2 * i, t[2 * i]);
              }
          free(prev);
          prev = t;
        }
        free(prev);
        ok(made && !fails, "%s %g -> %g: grid 2N contains grid N bitwise, N = %zu..%zu",
           kinds[k], ts, te, bases[b] * 2, nmax);
        ok(made && ends_ok, "%s %g -> %g: t_0 = t_start and t_N = t_end exactly, N = %zu..%zu",
           kinds[k], ts, te, bases[b], nmax);
        ok(made && mono, "%s %g -> %g: strictly monotone, N = %zu..%zu", kinds[k], ts, te,
           bases[b], nmax);
      }
    }
  /* the finest grid holds every coarser one (what path noise needs): 1024 vs 2^k */
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
    size_t n;
    int st, fails = 0;
    csde_err err;
    double *fine = grid(kinds[k], vp, 1.0, 1e-3, 1024, &n, &st, &err);
    for (size_t N = 2; st == 0 && N <= 512; N *= 2) {
      double *t = grid(kinds[k], vp, 1.0, 1e-3, N, &n, &st, &err);
      for (size_t i = 0; st == 0 && i <= N; i++)
        if (memcmp(&t[i], &fine[i * (1024 / N)], sizeof(double))) fails++;
      free(t);
    }
    ok(st == 0 && !fails, "%s: the 1024-step grid contains the 2^k-step grids bitwise",
       kinds[k]);
    free(fine);
  }
}

/* ---- errors ---- */

static void expect(const char *spec, const csde_schedule *s, double ts, double te, size_t N,
                   int want, const char *substr, const char *what)
{
  size_t n;
  int st;
  csde_err err;
  double *t = grid(spec, s, ts, te, N, &n, &st, &err);
  ok(t == NULL || st == 0, "%s: outputs NULL / 0 on failure", what);
  ok_status(st, want, err.msg, substr, what);
  if (st == 0) free(t);
  ok(st == 0 || err.status == st, "%s: err.status is the returned status", what);
}

static void test_errors(void)
{
  expect("uniform", vp, 1.0, 1e-3, 0, CSDE_EINVAL, "N = 0", "N = 0");
  expect("karras", vp, 1.0, 1e-3, 0, CSDE_EINVAL, "N = 0", "N = 0 (karras)");
  expect("uniform", vp, NAN, 1e-3, 10, CSDE_EDOM, "finite", "NaN t_start");
  expect("uniform", vp, 1.0, NAN, 10, CSDE_EDOM, "finite", "NaN t_end");
  expect("uniform", vp, INFINITY, 0, 10, CSDE_EDOM, "finite", "infinite t_start");
  expect("list:1,0.5", vp, NAN, 0.5, 10, CSDE_EDOM, "finite", "NaN t_start (list)");
  expect("uniform", vp, 0.5, 0.5, 10, CSDE_EDOM, "empty interval", "t_start == t_end");
  expect("logsnr", vp, 0.5, 0.5, 10, CSDE_EDOM, "empty interval", "t_start == t_end (logsnr)");
  expect("chebyshev", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "unknown grid kind 'chebyshev'",
         "unknown kind");
  expect("", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "empty grid spec", "empty spec");
  expect(NULL, vp, 1.0, 1e-3, 10, CSDE_ESPEC, "empty grid spec", "NULL spec");
  expect("uniform:rho=7", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "unknown parameter 'rho'",
         "uniform takes no parameters");
  expect("logsnr:n=3", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "unknown parameter 'n'",
         "logsnr takes no parameters");
  expect("karras:sigma=3", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "expected: rho",
         "karras: unknown key");
  expect("karras:rho=0", vp, 1.0, 1e-3, 10, CSDE_EDOM, "rho = 0 must be > 0", "karras rho = 0");
  expect("karras:rho=-2", vp, 1.0, 1e-3, 10, CSDE_EDOM, "must be > 0", "karras rho < 0");
  expect("karras:rho=abc", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "finite number", "karras rho = abc");
  expect("karras:7", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "key=value", "karras:7 (no key)");
  expect("karras", NULL, 1.0, 1e-3, 10, CSDE_EINVAL, "needs a noise schedule",
         "karras without a schedule");
  expect("logsnr", NULL, 1.0, 1e-3, 10, CSDE_EINVAL, "needs a noise schedule",
         "logsnr without a schedule");
  expect("karras", vp, 1.5, 1e-3, 10, CSDE_EDOM, "must lie in [0, 1]", "karras end > 1");
  expect("logsnr", vp, 1.0, -0.1, 10, CSDE_EDOM, "must lie in [0, 1]", "logsnr end < 0");
  expect("logsnr", vp, 0.0, 1.0, 10, CSDE_EDOM, "log-SNR is +inf at t = 0 (t_start)",
         "logsnr from t = 0 (forward SDE)");
  expect("logsnr", vp, 1.0, 0.0, 10, CSDE_EDOM, "log-SNR is +inf at t = 0 (t_end)",
         "logsnr to t = 0 (eps = 0)");
  expect("logsnr", cosine, 1.0, 1e-3, 10, CSDE_EDOM, "log-SNR is -inf at t = 1",
         "logsnr from t = 1 on cosine (abar = 0)");
  expect("karras", cosine, 1.0, 1e-3, 10, CSDE_EDOM, "sigma(t) is infinite at t = 1",
         "karras from t = 1 on cosine");
  /* list */
  expect("list", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "needs its nodes", "list without nodes");
  expect("list:", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "needs its nodes", "list: empty");
  expect("list:1", vp, 1.0, 1e-3, 10, CSDE_EINVAL, "at least 2 nodes", "list of one node");
  expect("list:1,0.5,abc,0.001", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "'abc' is not a finite number",
         "list with a non-number");
  expect("list:1,,0.5,0.001", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "entry 2 is empty",
         "list with an empty entry (,,)");
  expect("list:,1,0.001", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "entry 1 is empty",
         "list with a leading comma");
  expect("list:1,0.001,", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "entry 3 is empty (a trailing comma)",
         "list with a trailing comma");
  expect("list:1, ,0.5,0.001", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "entry 2 is empty",
         "list with only a blank between two commas");
  expect("list:1,nan,0.001", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "not a finite number",
         "list with NaN");
  expect("list:0.9,0.5,0.001", vp, 1.0, 1e-3, 10, CSDE_EINVAL,
         "first node 0.90000000000000002 must be t_start = 1", "list: first node != t_start");
  expect("list:1,0.5,0.01", vp, 1.0, 1e-3, 10, CSDE_EINVAL, "last node", "list: last != t_end");
  expect("list:1,0.5,0.7,0.001", vp, 1.0, 1e-3, 10, CSDE_EDOM,
         "strictly decreasing from t_start to t_end, but node 2 (t = 0.69999999999999996)",
         "list: not monotone");
  expect("list:1,0.5,0.5,0.001", vp, 1.0, 1e-3, 10, CSDE_EDOM, "strictly decreasing",
         "list: a repeated node");
  expect("list:0.001,0.5,0.3,1", vp, 1e-3, 1.0, 10, CSDE_EDOM, "strictly increasing",
         "list: not increasing (encode)");
  expect("list:1,1.5,0.001", vp, 1.0, 1e-3, 10, CSDE_EDOM, "node 1", "list: leaves the interval");
  expect("listing", vp, 1.0, 1e-3, 10, CSDE_ESPEC, "unknown grid kind 'listing'",
         "listing is not list");
  /* resolution and size */
  expect("uniform", vp, 1.0, 1.0 + 1e-14, 1000, CSDE_EDOM, "N is too large",
         "nodes that round together");
  expect("uniform", vp, 1.0, 1e-3, SIZE_MAX, CSDE_EINVAL, "too many", "N = SIZE_MAX");
  expect("uniform", vp, 1.0, 1e-3, ((size_t)1 << 52) + 1, CSDE_EINVAL, "too many",
         "N > 2^52 (u_i no longer exact)");
}

int main(void)
{
  csde_init();
  csde_err err;
  int s1 = csde_schedule_alloc(&vp, "vp-linear:bmin=0.1,bmax=20", &err);
  int s2 = csde_schedule_alloc(&cosine, "cosine", &err);
  if (!ok(!s1 && !s2, "schedules")) return tap_done();
  test_formulas();
  test_nesting();
  test_errors();
  csde_schedule_free(vp);
  csde_schedule_free(cosine);
  return tap_done();
}
