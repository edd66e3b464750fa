/* Tests for the Gaussian paths of corrsde/schedule.h (issue 28, first slice):
 * x_t = alpha(t) x0 + sigma(t) V' z for every schedule (VP, edm, ve, rf): derivatives
 * against central differences, f and g^2 against their definitions, lambda and its
 * inverse, the VP equalities, the VP functions' bits against the formulas they had before
 * the paths, the new forms' values, registry, refusals, and the processes' refusal. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/problem.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
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

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static double rel(double got, double want)
{
  if (got == want) return 0; /* also equal infinities */
  return fabs(got - want) / fmax(fabs(want), DBL_MIN);
}

/* Every schedule the tests walk: the VP ones and the paths. */
static const char *const all_specs[] = {
  "vp-linear", "vp-linear:bmin=0,bmax=5", "cosine", "ddpm-linear:n=50", "edm",
  "edm:smin=0.5,smax=3", "ve", "ve:smin=1e-3,smax=1e3", "rf", "rf:shift=3", "rf:shift=0.2",
  NULL};

/* n interior points of the span, away from its ends (and, for a discrete schedule, from
 * its nodes: (k + 1/2) / N) */
static double interior(const csde_schedule *s, int k, int n)
{
  double a, b;
  csde_schedule_path_span(s, &a, &b);
  size_t N = csde_schedule_nsteps(s);
  if (N) return (floor((double)k / (n + 1) * (double)N) + 0.5) / (double)N;
  return a + (b - a) * (k + 0.0) / (n + 1);
}

/* ---- 1. derivatives against central differences ---- */

static void check_derivatives(const char *spec)
{
  csde_schedule *s = make(spec);
  if (!s) return;
  double worst_a = 0, worst_s = 0;
  size_t N = csde_schedule_nsteps(s);
  for (int k = 1; k <= 19; k++) {
    double t = interior(s, k, 19);
    /* h: small beside t's distance to the span's ends and (discrete) to the nodes */
    double h = N ? 1e-4 / (double)N : 1e-5 * fmax(t, 1e-2);
    double da = (csde_schedule_path_alpha(s, t + h) - csde_schedule_path_alpha(s, t - h)) / (2 * h);
    double ds = (csde_schedule_path_sigma(s, t + h) - csde_schedule_path_sigma(s, t - h)) / (2 * h);
    double ga = csde_schedule_path_dalpha(s, t), gs = csde_schedule_path_dsigma(s, t);
    /* the difference's error: h^2 |f'''| / 6 and rounding 1e-16 / h, against the scale of
     * the derivative and of the function */
    double ea = fabs(ga - da) / fmax(fabs(ga), fabs(csde_schedule_path_alpha(s, t)));
    double es = fabs(gs - ds) / fmax(fabs(gs), fabs(csde_schedule_path_sigma(s, t)));
    if (!(ea <= 1e-7)) printf("# %s t=%g: dalpha %.17g, difference %.17g\n", spec, t, ga, da);
    if (!(es <= 1e-7)) printf("# %s t=%g: dsigma %.17g, difference %.17g\n", spec, t, gs, ds);
    worst_a = fmax(worst_a, ea > 0 || ea == 0 ? ea : INFINITY);
    worst_s = fmax(worst_s, es > 0 || es == 0 ? es : INFINITY);
  }
  ok(worst_a <= 1e-7, "%s: dalpha/dt = central difference of alpha at 19 t (worst rel %.2g <= 1e-7)",
     spec, worst_a);
  ok(worst_s <= 1e-7, "%s: dsigma/dt = central difference of sigma at 19 t (worst rel %.2g <= 1e-7)",
     spec, worst_s);
  csde_schedule_free(s);
}

/* ---- 2. f and g^2 against their definitions; lambda; its inverse ---- */

static void check_definitions(const char *spec)
{
  csde_schedule *s = make(spec);
  if (!s) return;
  double wf = 0, wg = 0, wl = 0, wt = 0, wb = 0;
  for (int k = 1; k <= 39; k++) {
    double t = interior(s, k, 39);
    double a = csde_schedule_path_alpha(s, t), sg = csde_schedule_path_sigma(s, t);
    double da = csde_schedule_path_dalpha(s, t), ds = csde_schedule_path_dsigma(s, t);
    double f = csde_schedule_path_f(s, t), g2 = csde_schedule_path_g2(s, t);
    double f_def = da / a, g2_def = 2 * sg * ds - 2 * f_def * sg * sg;
    double l = csde_schedule_path_lambda(s, t);
    wf = fmax(wf, rel(f, f_def) <= 1 ? rel(f, f_def) : INFINITY);
    if (f_def == 0) wf = fmax(wf, f == 0 ? 0 : INFINITY);
    wg = fmax(wg, rel(g2, g2_def) <= 1 ? rel(g2, g2_def) : INFINITY);
    wl = fmax(wl, fabs(l - log(a / sg)) / fmax(1, fabs(l)));
    double t2 = csde_schedule_path_t_of_lambda(s, l);
    wt = fmax(wt, fabs(t2 - t) / fmax(1, fabs(t)));
    /* the VP-equivalent's beta = g^2 / (alpha^2 + sigma^2) */
    wb = fmax(wb, rel(csde_schedule_beta(s, t), g2 / (a * a + sg * sg)));
  }
  ok(wf <= 1e-13, "%s: f = alpha'/alpha at 39 t (worst rel %.2g <= 1e-13)", spec, wf);
  ok(wg <= 1e-13, "%s: g^2 = (sigma^2)' - 2 f sigma^2 at 39 t (worst rel %.2g <= 1e-13)", spec, wg);
  ok(wl <= 1e-14, "%s: lambda = log(alpha / sigma) at 39 t (worst %.2g <= 1e-14)", spec, wl);
  ok(wt <= 1e-12, "%s: t_of_lambda(lambda(t)) = t at 39 t (worst %.2g <= 1e-12)", spec, wt);
  ok(wb <= 1e-13, "%s: beta = g^2 / (alpha^2 + sigma^2) at 39 t (worst rel %.2g <= 1e-13)", spec,
     wb);
  /* the inverse's clamps and NaN */
  double a, b;
  csde_schedule_path_span(s, &a, &b);
  ok(csde_schedule_path_t_of_lambda(s, INFINITY) == a &&
         csde_schedule_path_t_of_lambda(s, 1e300) == a &&
         csde_schedule_path_t_of_lambda(s, -INFINITY) == b &&
         csde_schedule_path_t_of_lambda(s, -1e300) == b &&
         isnan(csde_schedule_path_t_of_lambda(s, NAN)),
     "%s: t_of_lambda clamps to [%g, %g] (+-inf, +-1e300) and keeps NaN", spec, a, b);
  ok(isnan(csde_schedule_path_alpha(s, NAN)) && isnan(csde_schedule_path_lambda(s, NAN)) &&
         csde_schedule_path_sigma(s, a - 1) == csde_schedule_path_sigma(s, a) &&
         csde_schedule_path_sigma(s, b + 1) == csde_schedule_path_sigma(s, b),
     "%s: NaN gives NaN, t outside the span is clamped to it", spec);
  csde_schedule_free(s);
}

/* ---- 3. VP: the path equals the VP formulas; the VP functions keep their bits ---- */

/* The formulas of the VP functions before the paths (schedule.c at d975af9), written
 * out here: vp-linear's and cosine's B, and abar, sigma, logsnr from B. */
static double old_clamp01(double t) { return t < 0 ? 0 : (t > 1 ? 1 : t); }
static double old_logsnr_of_B(double B) { return B <= 1 ? -log(expm1(B)) : -B - log1p(-exp(-B)); }
static double old_vp_B(double bmin, double bmax, double t)
{
  return bmin * t + 0.5 * (bmax - bmin) * t * t;
}
static double old_cos_B(double off, double t)
{
  double a = 0.5 * M_PI / (1 + off), du = a * t, h = sin(0.5 * du);
  double x = 2 * h * h + tan(a * off) * sin(du);
  if (x < 0.5) return -2 * log1p(-x);
  return -2 * log(sin(a * (1 - t)) / cos(a * off));
}

static void check_vp(void)
{
  static const char *const vp[] = {"vp-linear", "vp-linear:bmin=0,bmax=5", "cosine:s=0.008",
                                   "ddpm-linear:n=50", "discrete:betas=0.1,0.2,0.3", NULL};
  for (int i = 0; vp[i]; i++) {
    csde_schedule *s = make(vp[i]);
    if (!s) continue;
    int bits = 1;
    double worst = 0;
    for (int k = -2; k <= 102; k++) {
      double t = k / 100.0;
      if (!strncmp(vp[i], "cosine", 6) && t >= 1) continue; /* beta(1) = inf: below */
      double B = csde_schedule_int_beta(s, t), beta = csde_schedule_beta(s, t);
      double a = csde_schedule_path_alpha(s, t), sg = csde_schedule_path_sigma(s, t);
      /* exactly the VP formulas, bit for bit */
      bits &= same_bits(a, exp(-B / 2)) && same_bits(sg, sqrt(-expm1(-B))) &&
              same_bits(csde_schedule_path_f(s, t), -beta / 2) &&
              same_bits(csde_schedule_path_g2(s, t), beta) &&
              same_bits(csde_schedule_path_lambda(s, t), csde_schedule_logsnr(s, t) / 2);
      /* and the identities to rounding */
      double e = fmax(fabs(a * a - csde_schedule_abar(s, t)), fabs(a * a + sg * sg - 1));
      if (t > 0) e = fmax(e, rel(sg / a, csde_schedule_sigma(s, t)));
      worst = fmax(worst, e);
    }
    ok(bits, "%s: alpha = exp(-B/2), sigma = sqrt(-expm1(-B)), f = -beta/2, g^2 = beta, "
             "lambda = logsnr/2 bit for bit at t = -0.02..1.02", vp[i]);
    ok(worst <= 1e-15, "%s: alpha^2 = abar, alpha^2 + sigma^2 = 1, sigma/alpha = the VE sigma "
                       "(worst %.2g <= 1e-15)", vp[i], worst);
    double a, b;
    csde_schedule_path_span(s, &a, &b);
    ok(a == 0 && b == 1 && csde_schedule_path_prior_scale(s) == 1 &&
           !strcmp(csde_schedule_path_name(s), "vp") && csde_schedule_is_vp(s),
       "%s: span [0, 1], prior scale 1, path 'vp'", vp[i]);
    /* t_of_lambda is t_of_logsnr at 2 lambda, bit for bit */
    int inv = 1;
    for (int k = -40; k <= 40; k++)
      inv &= same_bits(csde_schedule_path_t_of_lambda(s, k / 4.0),
                       csde_schedule_t_of_logsnr(s, k / 2.0));
    ok(inv, "%s: t_of_lambda(l) = t_of_logsnr(2 l) bit for bit, l = -10..10", vp[i]);
    csde_schedule_free(s);
  }

  /* the VP functions against the formulas they had before the paths, bit for bit */
  struct {
    const char *spec;
    double p;
    double q;
  } kinds[] = {{"vp-linear:bmin=0.1,bmax=20", 0.1, 20}, {"vp-linear:bmin=0,bmax=5", 0, 5},
               {"cosine:s=0.008", 0.008, 0}, {"cosine:s=2", 2, 0}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    csde_schedule *s = make(kinds[i].spec);
    if (!s) continue;
    int cos = kinds[i].q == 0, bits = 1;
    for (int k = -3; k <= 103; k++) {
      double t = k / 100.0, tc = old_clamp01(t);
      double B = cos ? old_cos_B(kinds[i].p, tc) : old_vp_B(kinds[i].p, kinds[i].q, tc);
      double beta = cos ? 2 * (0.5 * M_PI / (1 + kinds[i].p)) /
                              tan(0.5 * M_PI / (1 + kinds[i].p) * (1 - tc))
                        : kinds[i].p + tc * (kinds[i].q - kinds[i].p);
      bits &= same_bits(csde_schedule_int_beta(s, t), B) &&
              same_bits(csde_schedule_beta(s, t), beta) &&
              same_bits(csde_schedule_abar(s, t), exp(-B)) &&
              same_bits(csde_schedule_sigma(s, t), sqrt(expm1(B))) &&
              same_bits(csde_schedule_logsnr(s, t), old_logsnr_of_B(B));
      if (!bits) {
        printf("# %s: t = %g differs\n", kinds[i].spec, t);
        break;
      }
    }
    /* t_of_logsnr: its clamps (0 above logsnr(0) = inf, 1 below logsnr(1)) */
    bits &= csde_schedule_t_of_logsnr(s, INFINITY) == 0 &&
            csde_schedule_t_of_logsnr(s, -INFINITY) == 1 &&
            csde_schedule_t_of_logsnr(s, 1e300) == 0 && isnan(csde_schedule_t_of_logsnr(s, NAN));
    if (!cos) bits &= csde_schedule_t_of_logsnr(s, old_logsnr_of_B(kinds[i].p / 2 +
                                                                   kinds[i].q / 2) - 1) == 1;
    ok(bits, "%s: beta, int_beta, abar, sigma, logsnr bit for bit the pre-path formulas at "
             "t = -0.03..1.03 (clamped), t_of_logsnr's clamps", kinds[i].spec);
    csde_schedule_free(s);
  }
  /* a discrete schedule: B at the nodes is the compensated sum of -log1p(-beta_i) */
  {
    const double betas[] = {0.1, 0.2, 0.3};
    csde_schedule *s = make("discrete:betas=0.1,0.2,0.3");
    if (s) {
      /* cumB[i] = -sum_{s<=i} log1p(-beta_s), Neumaier-compensated (as before the paths) */
      double cum[4] = {0}, sum = 0, comp = 0;
      for (int i = 0; i < 3; i++) {
        double v = -log1p(-betas[i]), u = sum + v;
        comp += fabs(sum) >= fabs(v) ? (sum - u) + v : (v - u) + sum;
        sum = u;
        cum[i + 1] = sum + comp;
      }
      double c1 = cum[1], c2 = cum[2];
      ok(same_bits(csde_schedule_int_beta(s, 1.0 / 3), c1) &&
             same_bits(csde_schedule_int_beta(s, 2.0 / 3), c2) &&
             same_bits(csde_schedule_abar(s, 1.0 / 3), exp(-c1)) &&
             same_bits(csde_schedule_int_beta(s, 1), cum[3]) &&
             same_bits(csde_schedule_int_beta(s, -1), 0) &&
             same_bits(csde_schedule_int_beta(s, 2), csde_schedule_int_beta(s, 1)),
         "discrete:betas=0.1,0.2,0.3: B at the nodes 1/3, 2/3 = the compensated sum, clamped "
         "outside [0, 1]");
      csde_schedule_free(s);
    }
  }
  /* cosine at t = 1: beta infinite, and so f and g^2 */
  {
    csde_schedule *s = make("cosine");
    if (s) {
      ok(csde_schedule_path_f(s, 1) == -INFINITY && csde_schedule_path_g2(s, 1) == INFINITY &&
             csde_schedule_path_alpha(s, 1) < 1e-16 && csde_schedule_path_sigma(s, 1) == 1 &&
             csde_schedule_path_lambda(s, 1) == -INFINITY,
         "cosine at t = 1: f = -inf, g^2 = inf, alpha = 0, sigma = 1, lambda = -inf");
      csde_schedule_free(s);
    }
  }
}

/* ---- 4. the new forms' values ---- */

static void check_forms(void)
{
  csde_schedule *s = make("edm");
  if (s) {
    double a, b;
    csde_schedule_path_span(s, &a, &b);
    ok(!strcmp(csde_schedule_spec(s), "edm:smin=0.002,smax=80") && a == 0.002 && b == 80 &&
           csde_schedule_path_prior_scale(s) == 80 && !strcmp(csde_schedule_path_name(s), "edm") &&
           !csde_schedule_is_vp(s),
       "edm: canonical spec edm:smin=0.002,smax=80, span [0.002, 80], prior scale 80");
    int exact = 1;
    for (double t = 0.002; t <= 80; t *= 1.7)
      exact &= csde_schedule_path_alpha(s, t) == 1 && csde_schedule_path_sigma(s, t) == t &&
               csde_schedule_path_dalpha(s, t) == 0 && csde_schedule_path_dsigma(s, t) == 1 &&
               csde_schedule_path_f(s, t) == 0 && csde_schedule_path_g2(s, t) == 2 * t &&
               csde_schedule_path_lambda(s, t) == -log(t);
    ok(exact, "edm: alpha = 1, sigma = t, alpha' = 0, sigma' = 1, f = 0, g^2 = 2t, lambda = -log t");
    double w = 0;
    for (double t = 0.002; t <= 80; t *= 1.7) {
      w = fmax(w, rel(csde_schedule_sigma(s, t), t));
      w = fmax(w, rel(csde_schedule_abar(s, t), 1 / (1 + t * t)));
      w = fmax(w, rel(csde_schedule_int_beta(s, t), log1p(t * t)));
      w = fmax(w, rel(csde_schedule_logsnr(s, t), -2 * log(t)));
      w = fmax(w, rel(csde_schedule_t_of_logsnr(s, -2 * log(t)), t));
    }
    ok(w <= 1e-14, "edm: the VP view: sigma = t, abar = 1/(1+t^2), B = log1p(t^2), logsnr = "
                   "-2 log t and its inverse (worst rel %.2g <= 1e-14)", w);
    ok(csde_schedule_int_beta(s, 0) == csde_schedule_int_beta(s, 0.002) &&
           csde_schedule_path_sigma(s, 1000) == 80 && csde_schedule_t_of_logsnr(s, 100) == 0.002,
       "edm: times outside [smin, smax] clamp to it (VP view and path)");
    csde_schedule_free(s);
  }
  s = make("ve");
  if (s) {
    double a, b;
    csde_schedule_path_span(s, &a, &b);
    double L = log(50 / 0.01);
    ok(!strcmp(csde_schedule_spec(s), "ve:smin=0.01,smax=50") && a == 0 && b == 1 &&
           csde_schedule_path_sigma(s, 0) == 0.01 &&
           rel(csde_schedule_path_sigma(s, 1), 50) <= 1e-15 &&
           rel(csde_schedule_path_prior_scale(s), 50) <= 1e-15 &&
           rel(csde_schedule_path_g2(s, 0.5), 2 * L * 0.01 * 50) <= 1e-14 &&
           csde_schedule_path_f(s, 0.3) == 0 && csde_schedule_path_alpha(s, 0.3) == 1,
       "ve: spec ve:smin=0.01,smax=50, span [0, 1], sigma(0) = smin, sigma(1) = smax, "
       "g^2(1/2) = 2 log(smax/smin) smin smax, f = 0");
    csde_schedule_free(s);
  }
  s = make("rf");
  if (s) {
    int exact = 1;
    for (int k = 0; k <= 8; k++) {
      double t = k / 8.0;
      exact &= csde_schedule_path_alpha(s, t) == 1 - t && csde_schedule_path_sigma(s, t) == t &&
               csde_schedule_path_dalpha(s, t) == -1 && csde_schedule_path_dsigma(s, t) == 1;
      if (k < 8)
        exact &= rel(csde_schedule_path_f(s, t), -1 / (1 - t)) <= 1e-15 &&
                 rel(csde_schedule_path_g2(s, t), 2 * t / (1 - t)) <= 1e-15;
    }
    ok(exact && !strcmp(csde_schedule_spec(s), "rf:shift=1") &&
           csde_schedule_path_prior_scale(s) == 1,
       "rf: alpha = 1 - t, sigma = t, f = -1/(1-t), g^2 = 2t/(1-t), prior scale 1");
    ok(csde_schedule_path_lambda(s, 0) == INFINITY && csde_schedule_path_lambda(s, 1) == -INFINITY &&
           csde_schedule_path_f(s, 1) == -INFINITY && csde_schedule_path_g2(s, 1) == INFINITY &&
           csde_schedule_path_t_of_lambda(s, INFINITY) == 0 &&
           csde_schedule_path_t_of_lambda(s, -INFINITY) == 1 &&
           csde_schedule_path_t_of_lambda(s, 0) == 0.5,
       "rf at the ends: lambda(0) = inf, lambda(1) = -inf, f(1) = -inf, g^2(1) = inf; "
       "t_of_lambda(+-inf) = 0, 1; t_of_lambda(0) = 1/2");
    csde_schedule_free(s);
  }
  s = make("rf:shift=3");
  if (s) {
    /* t = 1/2: t' = 1.5 / 2 = 0.75; dt'/dt = 3 / 4 = 0.75 */
    ok(csde_schedule_path_sigma(s, 0.5) == 0.75 && csde_schedule_path_alpha(s, 0.5) == 0.25 &&
           csde_schedule_path_dsigma(s, 0.5) == 0.75 &&
           rel(csde_schedule_path_lambda(s, 0.5), -log(3)) <= 1e-15 &&
           rel(csde_schedule_path_t_of_lambda(s, -log(3)), 0.5) <= 1e-15,
       "rf:shift=3 at t = 1/2: t' = 0.75, alpha = 0.25, sigma' = 0.75, lambda = -log 3");
    csde_schedule_free(s);
  }
}

/* ---- 5. the registry and the refusals ---- */

static void check_alloc_error(const char *spec, int want, const char *substr)
{
  csde_schedule *s = NULL;
  csde_err err = {0};
  int st = csde_schedule_alloc(&s, spec, &err);
  ok_status(st, want, err.msg, substr, spec);
  ok(s == NULL, "'%s' leaves *out NULL", spec);
  csde_schedule_free(s);
}

static void check_registry_and_refusals(void)
{
  const char *want[][2] = {{"edm", "edm[:smin=0.002,smax=80]"},
                           {"ve", "ve[:smin=0.01,smax=50]"},
                           {"rf", "rf[:shift=1]"}};
  for (size_t w = 0; w < 3; w++) {
    const char *name, *form, *what;
    int found = 0;
    for (size_t i = 0; (name = csde_schedule_entry(i, &form, &what)); i++)
      found |= !strcmp(name, want[w][0]) && !strcmp(form, want[w][1]) && strlen(what) > 10;
    ok(found, "the registry lists %s as %s with a summary", want[w][0], want[w][1]);
  }
  char buf[512];
  ok(!strcmp(csde_schedule_names(buf, sizeof buf),
             "vp-linear, cosine, ddpm-linear, discrete, edm, ve, rf"),
     "csde_schedule_names: %s", buf);

  check_alloc_error("edm:smin=0", CSDE_EDOM, "edm: smin = 0 must be > 0");
  check_alloc_error("edm:smin=-1", CSDE_EDOM, "edm: smin = -1 must be > 0");
  check_alloc_error("edm:smin=5,smax=5", CSDE_EDOM, "edm: smax = 5 must be > smin = 5");
  check_alloc_error("edm:smax=0.001", CSDE_EDOM, "edm: smax = 0.001 must be > smin = 0.002");
  check_alloc_error("edm:smax=inf", CSDE_ESPEC, "finite number");
  check_alloc_error("edm:sigma=1", CSDE_ESPEC, "smin, smax");
  check_alloc_error("ve:smin=0", CSDE_EDOM, "ve: smin = 0 must be > 0");
  check_alloc_error("ve:smin=2,smax=1", CSDE_EDOM, "ve: smax = 1 must be > smin = 2");
  check_alloc_error("rf:shift=0", CSDE_EDOM, "rf: shift = 0 must be > 0");
  check_alloc_error("rf:shift=-3", CSDE_EDOM, "rf: shift = -3 must be > 0");
  check_alloc_error("rf:shift=1e7", CSDE_EDOM, "rf: shift = 1e+07 is outside [1e-6, 1e6]");
  check_alloc_error("rf:shift=1e-7", CSDE_EDOM, "rf: shift = 1e-07 is outside [1e-6, 1e6]");
  check_alloc_error("rf:s=3", CSDE_ESPEC, "shift");

  /* the VP-only discretisation and the processes refuse the paths, naming the schedule */
  static const char *const paths[] = {"edm", "ve", "rf:shift=3", NULL};
  for (int i = 0; paths[i]; i++) {
    csde_schedule *s = make(paths[i]);
    if (!s) continue;
    double betas[10];
    csde_err err = {0};
    int st = csde_schedule_discretize(s, 10, betas, &err);
    ok_status(st, CSDE_ENOTSUP, err.msg, csde_schedule_spec(s),
              "discretize refuses a path, naming the schedule");
    err = (csde_err){0};
    st = csde_schedule_require_vp(s, "the processes", &err);
    ok(st == CSDE_ENOTSUP && err.param && !strcmp(err.param, CSDE_PARAM_SCHEDULE) &&
           strstr(err.msg, csde_schedule_spec(s)) && strstr(err.msg, "variance-preserving"),
       "require_vp(%s): ENOTSUP, param 'schedule': %s", paths[i], err.msg);
    csde_cov *C = NULL;
    csde_model *M = NULL;
    if (csde_cov_alloc(&C, "ar1:rho=0.5", 3, NULL, &err)) {
      ok(0, "cov: %s", err.msg);
      csde_schedule_free(s);
      continue;
    }
    err = (csde_err){0};
    st = csde_model_gaussian_alloc(&M, C, s, 2, NULL, 0, NULL, &err);
    ok(st == 0 && M, "the gaussian model runs on %s (test_paths_proc checks it)%s%s",
       paths[i], st ? ": " : "", st ? err.msg : "");
    /* a denoiser-view solver runs on it (test_paths_proc checks the orders); the discrete
     * VP chain (ddpm) refuses it, naming the schedule */
    csde_problem P = csde_problem_default();
    P.process = CSDE_PROC_PFODE;
    P.model = M;
    if (strcmp(csde_schedule_path_name(s), "edm") == 0) P.T = 2, P.eps = 0.5;
    if (strcmp(csde_schedule_path_name(s), "rf") == 0) P.T = 0.9;
    P.tau = 3, P.D = 2, P.batch = 1, P.C = C, P.sched = s;
    csde_solve_params par = csde_solve_default_params();
    par.steps = 4;
    par.solver = "dpmpp2m";
    double x[6] = {0};
    err = (csde_err){0};
    st = csde_solve(&P, &par, x, NULL, &err);
    ok(st == 0, "a dpmpp2m solve on %s runs%s%s", paths[i], st ? ": " : "", st ? err.msg : "");
    par.solver = "ddpm";
    err = (csde_err){0};
    st = csde_solve(&P, &par, x, NULL, &err);
    ok(st == CSDE_ENOTSUP && err.param && !strcmp(err.param, CSDE_PARAM_SCHEDULE) &&
           strstr(err.msg, "discrete VP chain") && strstr(err.msg, csde_schedule_spec(s)),
       "a ddpm solve on %s is refused: %s", paths[i], err.msg);
    csde_model_free(M);
    csde_cov_free(C);
    csde_schedule_free(s);
  }
  {
    csde_schedule *s = make("vp-linear");
    csde_err err = {0};
    ok(s && csde_schedule_require_vp(s, "x", &err) == 0, "require_vp(vp-linear) = 0");
    csde_schedule_free(s);
  }
}

int main(void)
{
  for (int i = 0; all_specs[i]; i++) check_derivatives(all_specs[i]);
  for (int i = 0; all_specs[i]; i++) check_definitions(all_specs[i]);
  check_vp();
  check_forms();
  check_registry_and_refusals();
  return tap_done();
}
