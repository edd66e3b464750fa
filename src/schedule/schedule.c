/* Noise schedules (corrsde/schedule.h): the variance-preserving ones and the Gaussian
 * paths edm, ve and rf.
 *
 * Each kind is one const type table (name, spec keys, beta, B, inverse of B, spec
 * writer); everything else (abar, sigma, logsnr, t_of_logsnr, discretize) is written
 * once in terms of B(t) = -log abar(t). Adding a kind adds a table to `types`.
 * A Gaussian path's table also has its path_ops (alpha, sigma, their derivatives, f, g^2,
 * lambda and its inverse); its beta, B and t_of_B are the VP-equivalent's, written once
 * from the path (path_beta, path_B, path_t_of_B). A VP table has no path_ops: its path
 * accessors are written once from B and beta (csde_schedule_path_*).
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "core/util.h"
#include "corrsde/schedule.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

typedef struct sched_type sched_type;
typedef struct path_ops path_ops;

struct csde_schedule {
  const sched_type *type;
  double p[6];  /* parameters and constants of the kind, see each kind's init */
  double tmin, tmax; /* the span: [0, 1], or a path's own (edm: [smin, smax]) */
  double B0, B1;     /* B(t_min) (0 for VP), B(t_max) */
  size_t N;     /* steps of a discrete schedule, 0 for a continuous one */
  double *beta; /* beta_1..beta_N at beta[0..N-1] */
  double *cumB; /* cumB[i] = -log abar_i = -sum_{s<=i} log1p(-beta_s), cumB[0] = 0 */
  double *abar; /* abar[i] = exp(-cumB[i]), abar[0] = 1 */
  char *spec;   /* canonical spec, every parameter */
};

/* A growing string written in two passes: first to measure (buf NULL), then to fill. */
typedef struct {
  char *buf;
  size_t len, pos;
} strbuf;

struct sched_type {
  const char *name;
  const char *const *keys; /* allowed spec keys, NULL-terminated */
  int (*init)(csde_schedule *s, const csde_spec *sp, csde_err *err);
  double (*beta)(const csde_schedule *s, double t);   /* beta(t), t in [0, 1] */
  double (*B)(const csde_schedule *s, double t);      /* B(t) = int_0^t beta, t in [0, 1] */
  double (*t_of_B)(const csde_schedule *s, double B); /* inverse of B, 0 < B < B(1) */
  void (*spec)(const csde_schedule *s, strbuf *sb);   /* canonical spec */
  const char *form;    /* the spec with its defaults, "vp-linear[:bmin=0.1,bmax=20]" */
  const char *summary; /* the formula and the parameters' ranges, one sentence */
  const path_ops *path; /* a Gaussian path's own functions; NULL: variance-preserving */
};

/* A Gaussian path x_t = alpha x0 + sigma V' z; t already clamped to the span. */
struct path_ops {
  const char *name; /* "edm", "ve", "rf" */
  double (*alpha)(const csde_schedule *s, double t);
  double (*sigma)(const csde_schedule *s, double t);
  double (*dalpha)(const csde_schedule *s, double t);
  double (*dsigma)(const csde_schedule *s, double t);
  double (*f)(const csde_schedule *s, double t);       /* alpha' / alpha */
  double (*g2)(const csde_schedule *s, double t);      /* (sigma^2)' - 2 f sigma^2 */
  double (*lambda)(const csde_schedule *s, double t);  /* log(alpha / sigma) */
  double (*t_of_lambda)(const csde_schedule *s, double l); /* its inverse, unclamped */
};

/* ---- small helpers ---- */

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
  char *dst = sb->buf && sb->pos < sb->len ? sb->buf + sb->pos : NULL;
  size_t room = dst ? sb->len - sb->pos : 0;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, room, fmt, ap);
  va_end(ap);
  if (n > 0) sb->pos += (size_t)n;
}

/* The shortest %g form of x that reads back as x; "20", not "2e+01", for
 * 1 <= |x| < 1e17. */
static void sb_double(strbuf *sb, double x)
{
  char tmp[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, x);
    if (strtod(tmp, NULL) == x) break;
  }
  if (strchr(tmp, 'e') && isfinite(x) && x != 0) {
    int e10 = (int)floor(log10(fabs(x)));
    if (e10 >= 0 && e10 < 17) snprintf(tmp, sizeof tmp, "%.*g", e10 + 1, x);
  }
  sb_printf(sb, "%s", tmp);
}

/* log(1 + e^y) without overflow. */
static double softplus(double y)
{
  return y > 0 ? y + log1p(exp(-y)) : log1p(exp(y));
}

/* logsnr = log(abar / (1 - abar)) = -log(expm1(B)); for B > 1 the form
 * -B - log1p(-e^-B) does not overflow. */
static double logsnr_of_B(double B)
{
  return B <= 1 ? -log(expm1(B)) : -B - log1p(-exp(-B));
}

/* t clamped to the span (for VP [0, 1], the same bits as clamp01) */
static double clamp_span(const csde_schedule *s, double t)
{
  return t < s->tmin ? s->tmin : (t > s->tmax ? s->tmax : t);
}

/* ---- vp-linear: beta(t) = bmin + t (bmax - bmin); p = {bmin, bmax} ---- */

static const char *const vp_keys[] = {"bmin", "bmax", NULL};

static int vp_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  double bmin, bmax;
  int st;
  if ((st = csde_spec_double(sp, "bmin", 0.1, &bmin, err))) return st;
  if ((st = csde_spec_double(sp, "bmax", 20.0, &bmax, err))) return st;
  if (bmin < 0)
    return csde_err_set(err, CSDE_EDOM, "vp-linear: bmin = %g must be >= 0", bmin);
  if (bmax < bmin)
    return csde_err_set(err, CSDE_EDOM, "vp-linear: bmax = %g must be >= bmin = %g", bmax,
                        bmin);
  if (!(bmax > 0)) return csde_err_set(err, CSDE_EDOM, "vp-linear: bmax = %g must be > 0", bmax);
  s->p[0] = bmin;
  s->p[1] = bmax;
  return CSDE_SUCCESS;
}

static double vp_beta(const csde_schedule *s, double t)
{
  return s->p[0] + t * (s->p[1] - s->p[0]); /* bmin + t (bmax - bmin) */
}

static double vp_B(const csde_schedule *s, double t)
{
  return s->p[0] * t + 0.5 * (s->p[1] - s->p[0]) * t * t; /* bmin t + (bmax-bmin) t^2/2 */
}

static double vp_t_of_B(const csde_schedule *s, double B)
{
  /* Root of (d/2) t^2 + bmin t - B = 0, d = bmax - bmin, in the form without
   * cancellation: t = 2B / (bmin + sqrt(bmin^2 + 2 d B)). */
  double bmin = s->p[0], d = s->p[1] - s->p[0];
  return 2 * B / (bmin + sqrt(bmin * bmin + 2 * d * B));
}

static void vp_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "vp-linear:bmin=");
  sb_double(sb, s->p[0]);
  sb_printf(sb, ",bmax=");
  sb_double(sb, s->p[1]);
}

/* ---- cosine (Nichol-Dhariwal): abar(t) = cos^2(u(t)) / cos^2(u(0)),
 * u(t) = a (t + s), a = pi/2 / (1 + s). p = {s, a, sin u0, cos u0, tan u0}. ---- */

static const char *const cos_keys[] = {"s", NULL};

static int cos_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  double off;
  int st;
  if ((st = csde_spec_double(sp, "s", 0.008, &off, err))) return st;
  if (off < 0) return csde_err_set(err, CSDE_EDOM, "cosine: s = %g must be >= 0", off);
  /* u0 = a s = pi/2 - a is formed as a product whose rounding (1e-16 pi/2) is nothing
   * beside cos u0 = sin a ~ pi / (2 (1 + s)) only while s is moderate: B(t) carries a
   * relative error of about 1e-16 s (1e-12 at s = 1e4, all of it at s = 1e17, where
   * abar no longer matches int beta). Larger s buy nothing: abar(t) tends to (1 - t)^2,
   * reached within 1e-8 at s = 1e4. */
  if (!(off <= CSDE_SCHEDULE_COSINE_S_MAX))
    return csde_err_set(err, CSDE_EDOM,
                        "cosine: s = %.12g is outside [0, " STR(CSDE_SCHEDULE_COSINE_S_MAX) "]: "
                        "beyond it abar(t) is (1 - t)^2 to within 1e-8, and its computation "
                        "loses a relative 1e-16 s of B(t) = -log abar(t) (at s = 1e17, all "
                        "of it)",
                        off);
  double a = 0.5 * M_PI / (1 + off);
  s->p[0] = off;
  s->p[1] = a;
  s->p[2] = sin(a * off);
  s->p[3] = cos(a * off);
  s->p[4] = tan(a * off);
  return CSDE_SUCCESS;
}

static double cos_beta(const csde_schedule *s, double t)
{
  /* beta = pi/(1+s) tan(u) = 2a / tan(a (1 - t)), since u + a (1 - t) = pi/2 (inf at t = 1) */
  double a = s->p[1];
  return 2 * a / tan(a * (1 - t));
}

static double cos_B(const csde_schedule *s, double t)
{
  /* B = -2 log(cos u / cos u0). With du = a t:
   *   cos u / cos u0 = 1 - x,  x = 2 sin^2(du/2) + tan(u0) sin(du)  (no cancellation),
   * and cos u = sin(a (1 - t)) for the ratio itself when it is small. */
  double a = s->p[1], du = a * t, h = sin(0.5 * du);
  double x = 2 * h * h + s->p[4] * sin(du);
  if (x < 0.5) return -2 * log1p(-x);
  return -2 * log(sin(a * (1 - t)) / s->p[3]);
}

static double cos_t_of_B(const csde_schedule *s, double B)
{
  /* cos u = sqrt(abar) cos u0, sin u = sqrt((1 - abar) + abar sin^2 u0); then du = u - u0
   * from sin du = cos u0 (1 - abar) / (sin u + sqrt(abar) sin u0),
   *      cos du = sqrt(abar) cos^2 u0 + sin u sin u0, and t = du / a. */
  double a = s->p[1], su0 = s->p[2], cu0 = s->p[3];
  double ab = exp(-B), omab = -expm1(-B), rab = sqrt(ab);
  double su = sqrt(omab + ab * su0 * su0);
  double sdu = cu0 * omab / (su + rab * su0);
  double cdu = rab * cu0 * cu0 + su * su0;
  return atan2(sdu, cdu) / a;
}

static void cos_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "cosine:s=");
  sb_double(sb, s->p[0]);
}

/* ---- discrete: betas beta_1..beta_N; continuous view with B piecewise linear between
 * the nodes B(i/N) = cumB[i]. ddpm-linear is a discrete schedule with linspace betas:
 * p = {b1, bN}. ---- */

/* Node test: t N within rounding of an integer k counts as the node k/N, so that
 * B(i/N) = cumB[i] exactly even when (i/N) N is not exactly i. */
static int disc_node(double x, size_t *k)
{
  double r = nearbyint(x);
  if (fabs(x - r) <= 4 * DBL_EPSILON * r) {
    *k = (size_t)r;
    return 1;
  }
  return 0;
}

static double disc_beta(const csde_schedule *s, double t)
{
  /* beta(t) = -N log1p(-beta_i) on ((i-1)/N, i/N]; the first interval also holds t = 0 */
  double x = t * (double)s->N;
  size_t i;
  if (!disc_node(x, &i)) i = (size_t)floor(x) + 1;
  if (i < 1) i = 1;
  if (i > s->N) i = s->N;
  return -(double)s->N * log1p(-s->beta[i - 1]);
}

static double disc_B(const csde_schedule *s, double t)
{
  /* B linear between the nodes: cumB[k] + (tN - k)(cumB[k+1] - cumB[k]) */
  double x = t * (double)s->N;
  size_t k;
  if (disc_node(x, &k)) return s->cumB[k];
  k = (size_t)floor(x);
  if (k >= s->N) return s->cumB[s->N];
  return s->cumB[k] + (x - (double)k) * (s->cumB[k + 1] - s->cumB[k]);
}

static double disc_t_of_B(const csde_schedule *s, double B)
{
  /* The interval with cumB[i-1] <= B < cumB[i] (bisection; cumB is increasing), then
   * invert the linear piece. */
  size_t lo = 0, hi = s->N; /* cumB[lo] <= B < cumB[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->cumB[mid] <= B) lo = mid;
    else hi = mid;
  }
  double f = (B - s->cumB[lo]) / (s->cumB[hi] - s->cumB[lo]);
  return ((double)lo + f) / (double)s->N;
}

/* Validate betas (each finite and in (0, 1)), copy them and build cumB and abar. */
static int disc_setup(csde_schedule *s, const double *betas, size_t n, csde_err *err)
{
  if (n == 0) return csde_err_set(err, CSDE_EINVAL, "discrete schedule: no steps (n = 0)");
  if (!betas) return csde_err_set(err, CSDE_EINVAL, "discrete schedule: betas is NULL");
  for (size_t i = 0; i < n; i++)
    if (!(betas[i] > 0 && betas[i] < 1)) /* also rejects NaN */
      return csde_err_set(err, CSDE_EDOM,
                          "discrete schedule: beta_%zu = %.17g must be finite and in (0, 1)",
                          i + 1, betas[i]);
  size_t total;
  if (n > SIZE_MAX / 4 || csde_mul_size(3, n + 1, &total))
    return csde_err_set(err, CSDE_ENOMEM, "discrete schedule: %zu steps is too many", n);
  double *mem = csde_alloc(total, sizeof *mem);
  if (!mem)
    return csde_err_set(err, CSDE_ENOMEM, "discrete schedule: out of memory for %zu steps", n);
  s->N = n;
  s->beta = mem;
  s->cumB = mem + n;
  s->abar = mem + 2 * n + 1;
  memcpy(s->beta, betas, n * sizeof *betas);
  /* cumB[i] = -sum_{s<=i} log1p(-beta_s), Neumaier-compensated; abar_i = exp(-cumB[i]) */
  double sum = 0, comp = 0;
  s->cumB[0] = 0;
  s->abar[0] = 1;
  for (size_t i = 0; i < n; i++) {
    double v = -log1p(-betas[i]), u = sum + v;
    comp += fabs(sum) >= fabs(v) ? (sum - u) + v : (v - u) + sum;
    sum = u;
    s->cumB[i + 1] = sum + comp;
    s->abar[i + 1] = exp(-s->cumB[i + 1]);
  }
  return CSDE_SUCCESS;
}

static const char *const disc_keys[] = {"betas", NULL};

static int disc_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  const char *v = csde_spec_get(sp, "betas");
  if (!v)
    return csde_err_set(err, CSDE_ESPEC,
                        "'discrete' needs betas=b1,b2,... (or use csde_schedule_alloc_discrete)");
  double *b;
  size_t n;
  int st = csde_parse_double_list(v, &b, &n, err);
  if (st) return st;
  st = disc_setup(s, b, n, err);
  free(b);
  return st;
}

static void disc_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "discrete:betas=");
  for (size_t i = 0; i < s->N; i++) {
    if (i) sb_printf(sb, ",");
    sb_double(sb, s->beta[i]);
  }
}

static const char *const ddpm_keys[] = {"n", "b1", "bN", NULL};

static int ddpm_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  size_t n;
  double b1, bN;
  int st;
  if ((st = csde_spec_size(sp, "n", 1000, &n, err))) return st;
  if ((st = csde_spec_double(sp, "b1", 1e-4, &b1, err))) return st;
  if ((st = csde_spec_double(sp, "bN", 0.02, &bN, err))) return st;
  if (!(b1 > 0 && b1 < 1))
    return csde_err_set(err, CSDE_EDOM, "ddpm-linear: b1 = %g must be in (0, 1)", b1);
  if (!(bN > 0 && bN < 1))
    return csde_err_set(err, CSDE_EDOM, "ddpm-linear: bN = %g must be in (0, 1)", bN);
  double *b = csde_alloc(n, sizeof *b);
  if (!b) return csde_err_set(err, CSDE_ENOMEM, "ddpm-linear: out of memory for n = %zu", n);
  /* linspace(b1, bN, n) as numpy computes it: b1 + i step, the last one exactly bN */
  double step = n > 1 ? (bN - b1) / (double)(n - 1) : 0;
  for (size_t i = 0; i < n; i++) b[i] = (double)i * step + b1;
  b[n - 1] = n > 1 ? bN : b1;
  st = disc_setup(s, b, n, err);
  csde_free(b);
  s->p[0] = b1;
  s->p[1] = bN;
  return st;
}

static void ddpm_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "ddpm-linear:n=%zu,b1=", s->N);
  sb_double(sb, s->p[0]);
  sb_printf(sb, ",bN=");
  sb_double(sb, s->p[1]);
}

/* ---- the Gaussian paths: their VP-equivalent (abar = alpha^2 / (alpha^2 + sigma^2)),
 * written once from path_ops ---- */

static double path_beta(const csde_schedule *s, double t)
{
  /* beta = dB/dt = (sigma^2 / alpha^2)' / (1 + sigma^2 / alpha^2) = g^2 / (alpha^2 + sigma^2) */
  const path_ops *o = s->type->path;
  double a = o->alpha(s, t), sg = o->sigma(s, t);
  return o->g2(s, t) / (a * a + sg * sg);
}

static double path_B(const csde_schedule *s, double t)
{
  return softplus(-2 * s->type->path->lambda(s, t)); /* B = log(1 + e^{-2 lambda}) */
}

static double path_t_of_B(const csde_schedule *s, double B)
{
  /* lambda = logsnr / 2 = -log(expm1(B)) / 2 */
  return s->type->path->t_of_lambda(s, 0.5 * logsnr_of_B(B));
}

/* ---- edm: alpha = 1, sigma = t on [smin, smax]; p = {smin, smax} ---- */

static const char *const edm_keys[] = {"smin", "smax", NULL};

/* smin, smax with 0 < smin < smax, for edm and ve */
static int smin_smax(const char *name, const csde_spec *sp, double dmin, double dmax,
                     double *smin, double *smax, csde_err *err)
{
  int st;
  if ((st = csde_spec_double(sp, "smin", dmin, smin, err))) return st;
  if ((st = csde_spec_double(sp, "smax", dmax, smax, err))) return st;
  if (!(*smin > 0))
    return csde_err_set(err, CSDE_EDOM, "%s: smin = %g must be > 0", name, *smin);
  if (!(*smax > *smin))
    return csde_err_set(err, CSDE_EDOM, "%s: smax = %g must be > smin = %g", name, *smax,
                        *smin);
  return CSDE_SUCCESS;
}

static int edm_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  int st = smin_smax("edm", sp, 0.002, 80.0, &s->p[0], &s->p[1], err);
  if (st) return st;
  s->tmin = s->p[0];
  s->tmax = s->p[1];
  return CSDE_SUCCESS;
}

static double one(const csde_schedule *s, double t) { (void)s, (void)t; return 1; }
static double zero(const csde_schedule *s, double t) { (void)s, (void)t; return 0; }
static double edm_sigma(const csde_schedule *s, double t) { (void)s; return t; }
static double edm_g2(const csde_schedule *s, double t) { (void)s; return 2 * t; } /* (t^2)' */
static double edm_lambda(const csde_schedule *s, double t) { (void)s; return -log(t); }
static double edm_t_of_lambda(const csde_schedule *s, double l) { (void)s; return exp(-l); }

static void edm_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "edm:smin=");
  sb_double(sb, s->p[0]);
  sb_printf(sb, ",smax=");
  sb_double(sb, s->p[1]);
}

/* ---- ve: alpha = 1, sigma = smin e^{t L}, L = log(smax / smin), on [0, 1];
 * p = {smin, smax, L, log smin} ---- */

static int ve_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  int st = smin_smax("ve", sp, 0.01, 50.0, &s->p[0], &s->p[1], err);
  if (st) return st;
  s->p[2] = log(s->p[1]) - log(s->p[0]); /* no overflow of smax / smin */
  s->p[3] = log(s->p[0]);
  return CSDE_SUCCESS;
}

static double ve_sigma(const csde_schedule *s, double t) { return s->p[0] * exp(t * s->p[2]); }
static double ve_dsigma(const csde_schedule *s, double t) { return s->p[2] * ve_sigma(s, t); }
static double ve_g2(const csde_schedule *s, double t)
{
  double sg = ve_sigma(s, t);
  return 2 * s->p[2] * sg * sg; /* (sigma^2)' = 2 L sigma^2 */
}
static double ve_lambda(const csde_schedule *s, double t) { return -(s->p[3] + t * s->p[2]); }
static double ve_t_of_lambda(const csde_schedule *s, double l)
{
  return (-l - s->p[3]) / s->p[2]; /* -l = log smin + t L */
}

static void ve_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "ve:smin=");
  sb_double(sb, s->p[0]);
  sb_printf(sb, ",smax=");
  sb_double(sb, s->p[1]);
}

/* ---- rf: alpha = 1 - t', sigma = t', t' = S t / q, q = 1 + (S - 1) t; p = {S, log S}.
 * 1 - t' = (1 - t) / q (no cancellation), dt'/dt = S / q^2. ---- */

static const char *const rf_keys[] = {"shift", NULL};

static int rf_init(csde_schedule *s, const csde_spec *sp, csde_err *err)
{
  double sh;
  int st;
  if ((st = csde_spec_double(sp, "shift", 1.0, &sh, err))) return st;
  if (!(sh > 0)) return csde_err_set(err, CSDE_EDOM, "rf: shift = %g must be > 0", sh);
  if (!(sh >= 1 / CSDE_SCHEDULE_RF_SHIFT_MAX && sh <= CSDE_SCHEDULE_RF_SHIFT_MAX))
    return csde_err_set(err, CSDE_EDOM,
                        "rf: shift = %g is outside [1e-6, " STR(CSDE_SCHEDULE_RF_SHIFT_MAX) "]",
                        sh);
  s->p[0] = sh;
  s->p[1] = log(sh);
  return CSDE_SUCCESS;
}

static double rf_q(const csde_schedule *s, double t) { return 1 + (s->p[0] - 1) * t; }
static double rf_alpha(const csde_schedule *s, double t) { return (1 - t) / rf_q(s, t); }
static double rf_sigma(const csde_schedule *s, double t) { return s->p[0] * t / rf_q(s, t); }
static double rf_dsigma(const csde_schedule *s, double t)
{
  double q = rf_q(s, t);
  return s->p[0] / (q * q); /* dt'/dt = S / q^2 */
}
static double rf_dalpha(const csde_schedule *s, double t) { return -rf_dsigma(s, t); }
static double rf_f(const csde_schedule *s, double t)
{
  return -s->p[0] / ((1 - t) * rf_q(s, t)); /* -(S / q^2) q / (1 - t) */
}
static double rf_g2(const csde_schedule *s, double t)
{
  double r = s->p[0] / rf_q(s, t);
  return 2 * r * r * t / (1 - t); /* 2 S^2 t / (q^2 (1 - t)) */
}
static double rf_lambda(const csde_schedule *s, double t)
{
  return log1p(-t) - log(t) - s->p[1]; /* alpha / sigma = (1 - t) / (S t) */
}
static double rf_t_of_lambda(const csde_schedule *s, double l)
{
  /* t = 1 / (1 + S e^l) = logistic(u), u = -(l + log S), without overflow */
  double u = -(l + s->p[1]);
  return u >= 0 ? 1 / (1 + exp(-u)) : exp(u) / (1 + exp(u));
}

static void rf_spec(const csde_schedule *s, strbuf *sb)
{
  sb_printf(sb, "rf:shift=");
  sb_double(sb, s->p[0]);
}

static const path_ops edm_path = {"edm", one, edm_sigma, zero, one, zero, edm_g2,
                                  edm_lambda, edm_t_of_lambda};
static const path_ops ve_path = {"ve", one, ve_sigma, zero, ve_dsigma, zero, ve_g2,
                                 ve_lambda, ve_t_of_lambda};
static const path_ops rf_path = {"rf", rf_alpha, rf_sigma, rf_dalpha, rf_dsigma, rf_f, rf_g2,
                                 rf_lambda, rf_t_of_lambda};

/* ---- the type tables: the registry (a new form is its functions, a table and one entry
 * in types[]) ---- */

static const sched_type vp_linear_type = {"vp-linear", vp_keys, vp_init, vp_beta,
                                          vp_B, vp_t_of_B, vp_spec,
    "vp-linear[:bmin=0.1,bmax=20]", "beta(t) = bmin + t (bmax - bmin); 0 <= bmin <= bmax, bmax > 0",
    NULL};
static const sched_type cosine_type = {"cosine", cos_keys, cos_init, cos_beta,
                                       cos_B, cos_t_of_B, cos_spec,
    "cosine[:s=0.008]", "abar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t + s) / (1 + s)); "
    "0 <= s <= " STR(CSDE_SCHEDULE_COSINE_S_MAX) "; beta(1) = inf, so runs end at T = 0.999",
    NULL};
static const sched_type ddpm_linear_type = {"ddpm-linear", ddpm_keys, ddpm_init, disc_beta,
                                            disc_B, disc_t_of_B, ddpm_spec,
    "ddpm-linear[:n=1000,b1=1e-4,bN=0.02]", "discrete: betas linspace(b1, bN, n), b1 and bN in (0, 1)",
    NULL};
static const sched_type discrete_type = {"discrete", disc_keys, disc_init, disc_beta,
                                         disc_B, disc_t_of_B, disc_spec,
    "discrete:betas=b1,b2,...", "discrete: any betas in (0, 1)", NULL};

static const sched_type edm_type = {"edm", edm_keys, edm_init, path_beta, path_B,
                                    path_t_of_B, edm_spec, "edm[:smin=0.002,smax=80]",
    "EDM path: alpha = 1, sigma = t on t in [smin, smax] (time = noise level); 0 < smin < smax; "
    "not for ddpm or the discrete bound (VP only)", &edm_path};
static const sched_type ve_type = {"ve", edm_keys, ve_init, path_beta, path_B, path_t_of_B,
                                   ve_spec, "ve[:smin=0.01,smax=50]",
    "VE path: alpha = 1, sigma = smin (smax/smin)^t on [0, 1]; 0 < smin < smax; "
    "not for ddpm or the discrete bound (VP only)", &ve_path};
static const sched_type rf_type = {"rf", rf_keys, rf_init, path_beta, path_B, path_t_of_B,
                                   rf_spec, "rf[:shift=1]",
    "rectified flow: alpha = 1 - t', sigma = t', t' = S t / (1 + (S - 1) t) on [0, 1]; "
    "1e-6 <= shift <= " STR(CSDE_SCHEDULE_RF_SHIFT_MAX) "; alpha(1) = 0, so runs end at T = 0.999; "
    "not for ddpm or the discrete bound (VP only)",
    &rf_path};

static const sched_type *const types[] = {&vp_linear_type, &cosine_type, &ddpm_linear_type,
                                          &discrete_type, &edm_type, &ve_type, &rf_type,
                                          NULL};

const char *csde_schedule_entry(size_t i, const char **form, const char **summary)
{
  for (size_t k = 0; types[k]; k++)
    if (k == i) {
      if (form) *form = types[k]->form;
      if (summary) *summary = types[k]->summary;
      return types[k]->name;
    }
  return NULL;
}

/* names (forms = 0) or forms (1) joined by ", " */
static char *join(int forms, char *buf, size_t len)
{
  size_t o = 0;
  if (!buf || !len) return buf;
  buf[0] = '\0';
  for (size_t k = 0; types[k] && o < len; k++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", k ? ", " : "",
                          forms ? types[k]->form : types[k]->name);
  return buf;
}

char *csde_schedule_names(char *buf, size_t len) { return join(0, buf, len); }
char *csde_schedule_forms(char *buf, size_t len) { return join(1, buf, len); }

/* ---- construction ---- */

/* Common tail of both constructors: B(1) and the canonical spec. */
static int finish(csde_schedule *s, csde_err *err)
{
  if (s->type != &edm_type) s->tmin = 0, s->tmax = 1; /* edm's init set [smin, smax] */
  s->B0 = s->type->path ? s->type->B(s, s->tmin) : 0; /* VP: B(0) = 0 */
  s->B1 = s->type->B(s, s->tmax);
  strbuf sb = {NULL, 0, 0};
  s->type->spec(s, &sb);
  s->spec = malloc(sb.pos + 1);
  if (!s->spec) return csde_err_set(err, CSDE_ENOMEM, "schedule: out of memory for the spec");
  sb.buf = s->spec;
  sb.len = sb.pos + 1;
  sb.pos = 0;
  s->type->spec(s, &sb);
  return CSDE_SUCCESS;
}

int csde_schedule_alloc(csde_schedule **out, const char *spec, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "csde_schedule_alloc: out is NULL");
  *out = NULL;
  csde_spec sp;
  int st = csde_spec_parse(spec, "schedule spec", &sp, err);
  if (st) return st;
  const sched_type *type = NULL;
  for (const sched_type *const *t = types; *t; t++)
    if (!strcmp((*t)->name, sp.name)) type = *t;
  if (!type) {
    char list[256];
    return csde_err_set(err, CSDE_ESPEC, "unknown schedule '%s' (expected: %s)", sp.name,
                        csde_schedule_names(list, sizeof list));
  }
  if ((st = csde_spec_check_keys(&sp, type->keys, err))) return st;
  csde_schedule *s = calloc(1, sizeof *s);
  if (!s) return csde_err_set(err, CSDE_ENOMEM, "schedule: out of memory");
  s->type = type;
  if ((st = type->init(s, &sp, err)) || (st = finish(s, err))) {
    csde_schedule_free(s);
    return st;
  }
  *out = s;
  return CSDE_SUCCESS;
}

int csde_schedule_alloc_discrete(csde_schedule **out, const double *betas, size_t n,
                                 csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "csde_schedule_alloc_discrete: out is NULL");
  *out = NULL;
  csde_schedule *s = calloc(1, sizeof *s);
  if (!s) return csde_err_set(err, CSDE_ENOMEM, "schedule: out of memory");
  s->type = &discrete_type;
  int st;
  if ((st = disc_setup(s, betas, n, err)) || (st = finish(s, err))) {
    csde_schedule_free(s);
    return st;
  }
  *out = s;
  return CSDE_SUCCESS;
}

void csde_schedule_free(csde_schedule *s)
{
  if (!s) return;
  csde_free(s->beta); /* beta, cumB and abar share one block */
  free(s->spec);
  free(s);
}

const char *csde_schedule_spec(const csde_schedule *s) { return s->spec; }

/* ---- continuous view ---- */

double csde_schedule_beta(const csde_schedule *s, double t)
{
  return isnan(t) ? t : s->type->beta(s, clamp_span(s, t));
}

double csde_schedule_int_beta(const csde_schedule *s, double t)
{
  return isnan(t) ? t : s->type->B(s, clamp_span(s, t));
}

double csde_schedule_abar(const csde_schedule *s, double t)
{
  return exp(-csde_schedule_int_beta(s, t)); /* abar = e^-B */
}

double csde_schedule_sigma(const csde_schedule *s, double t)
{
  return sqrt(expm1(csde_schedule_int_beta(s, t))); /* sigma^2 = (1-abar)/abar = e^B - 1 */
}

double csde_schedule_logsnr(const csde_schedule *s, double t)
{
  return logsnr_of_B(csde_schedule_int_beta(s, t));
}

double csde_schedule_t_of_logsnr(const csde_schedule *s, double lambda)
{
  if (isnan(lambda)) return lambda;
  double B = softplus(-lambda); /* B = log(1 + e^-lambda) inverts lambda = -log(e^B - 1) */
  if (B <= s->B0) return s->tmin;
  if (B >= s->B1) return s->tmax;
  return clamp_span(s, s->type->t_of_B(s, B));
}

/* ---- discrete view ---- */

size_t csde_schedule_nsteps(const csde_schedule *s) { return s->N; }

double csde_schedule_beta_step(const csde_schedule *s, size_t i)
{
  return i >= 1 && i <= s->N ? s->beta[i - 1] : NAN;
}

double csde_schedule_abar_step(const csde_schedule *s, size_t i)
{
  if (i == 0) return 1;
  return i <= s->N ? s->abar[i] : NAN;
}

int csde_schedule_discretize(const csde_schedule *s, size_t N, double *betas, csde_err *err)
{
  if (!s) return csde_err_set(err, CSDE_EINVAL, "csde_schedule_discretize: schedule is NULL");
  if (!betas) return csde_err_set(err, CSDE_EINVAL, "csde_schedule_discretize: betas is NULL");
  if (N == 0) return csde_err_set(err, CSDE_EINVAL, "csde_schedule_discretize: N must be >= 1");
  if (s->type->path)
    return csde_err_set(err, CSDE_ENOTSUP,
                        "csde_schedule_discretize: schedule '%s' is the %s path, which has no "
                        "N-step variance-preserving chain (a VP schedule is needed)",
                        s->spec, s->type->path->name);
  if (s->N == N) {
    memcpy(betas, s->beta, N * sizeof *betas);
    return CSDE_SUCCESS;
  }
  for (size_t i = 1; i <= N; i++) {
    double t = (double)i / (double)N, b;
    if (s->N) /* discrete, other N: beta_i = 1 - abar(i/N) / abar((i-1)/N) */
      b = -expm1(-(s->type->B(s, t) - s->type->B(s, (double)(i - 1) / (double)N)));
    else /* continuous: beta_i = beta(i/N) / N */
      b = s->type->beta(s, t) / (double)N;
    if (!(b > 0 && b < 1))
      return csde_err_set(err, CSDE_EDOM,
                          "%s with N = %zu steps: beta_%zu = %.17g (t = %.17g) is outside "
                          "(0, 1)%s",
                          s->spec, N, i, b, t,
                          b >= 1 ? ": beta(t)/N must stay below 1 (more steps, or a "
                                   "schedule whose beta(t) stays finite)"
                                 : "");
    betas[i - 1] = b;
  }
  return CSDE_SUCCESS;
}

/* ---- the Gaussian path of every schedule ---- */

const char *csde_schedule_path_name(const csde_schedule *s)
{
  return s->type->path ? s->type->path->name : "vp";
}

int csde_schedule_is_vp(const csde_schedule *s) { return !s->type->path; }

int csde_schedule_require_vp(const csde_schedule *s, const char *who, csde_err *err)
{
  if (!s || !s->type->path) return CSDE_SUCCESS;
  if (!who) who = "this operation";
  return csde_err_blame(err, CSDE_PARAM_SCHEDULE,
                        csde_err_set(err, CSDE_ENOTSUP,
                                     "%s: schedule '%s' is the %s path, not supported "
                                     "here yet: only the variance-preserving schedules "
                                     "(vp-linear, cosine, ddpm-linear, discrete) are",
                                     who, s->spec, s->type->path->name));
}

/* VP: alpha = e^{-B/2} */
double csde_schedule_path_alpha(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  return s->type->path ? s->type->path->alpha(s, t) : exp(-0.5 * s->type->B(s, t));
}

/* VP: sigma = sqrt(1 - e^{-B}) */
double csde_schedule_path_sigma(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  return s->type->path ? s->type->path->sigma(s, t) : sqrt(-expm1(-s->type->B(s, t)));
}

/* VP: alpha' = -beta alpha / 2 */
double csde_schedule_path_dalpha(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  if (s->type->path) return s->type->path->dalpha(s, t);
  return -0.5 * s->type->beta(s, t) * exp(-0.5 * s->type->B(s, t));
}

/* VP: sigma' = (1 - abar)' / (2 sigma) = beta abar / (2 sigma) */
double csde_schedule_path_dsigma(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  if (s->type->path) return s->type->path->dsigma(s, t);
  double B = s->type->B(s, t);
  return 0.5 * s->type->beta(s, t) * exp(-B) / sqrt(-expm1(-B));
}

/* VP: f = -beta / 2 */
double csde_schedule_path_f(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  return s->type->path ? s->type->path->f(s, t) : -0.5 * s->type->beta(s, t);
}

/* VP: g^2 = beta */
double csde_schedule_path_g2(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  return s->type->path ? s->type->path->g2(s, t) : s->type->beta(s, t);
}

/* VP: lambda = logsnr / 2 (the same bits halved) */
double csde_schedule_path_lambda(const csde_schedule *s, double t)
{
  if (isnan(t)) return t;
  t = clamp_span(s, t);
  return s->type->path ? s->type->path->lambda(s, t) : 0.5 * logsnr_of_B(s->type->B(s, t));
}

double csde_schedule_path_t_of_lambda(const csde_schedule *s, double lambda)
{
  if (isnan(lambda)) return lambda;
  if (!s->type->path) return csde_schedule_t_of_logsnr(s, 2 * lambda);
  const path_ops *o = s->type->path;
  if (lambda >= o->lambda(s, s->tmin)) return s->tmin;
  if (lambda <= o->lambda(s, s->tmax)) return s->tmax;
  return clamp_span(s, o->t_of_lambda(s, lambda));
}

void csde_schedule_path_span(const csde_schedule *s, double *t_min, double *t_max)
{
  if (t_min) *t_min = s->tmin;
  if (t_max) *t_max = s->tmax;
}

double csde_schedule_path_prior_scale(const csde_schedule *s)
{
  if (!s->type->path || s->type == &rf_type) return 1; /* VP: N(0, C); rf: sigma(1) = 1 */
  return s->type->path->sigma(s, s->tmax);
}
