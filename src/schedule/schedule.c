/* Variance-preserving noise schedules (corrsde/schedule.h).
 *
 * Each kind is one const type table (name, spec keys, beta, B, inverse of B, spec
 * writer); everything else (abar, sigma, logsnr, t_of_logsnr, discretize) is written
 * once in terms of B(t) = -log abar(t). Adding a kind adds a table to `types`.
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

struct csde_schedule {
  const sched_type *type;
  double p[6];  /* parameters and constants of the kind, see each kind's init */
  double B1;    /* B(1) */
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

static double clamp01(double t) { return t < 0 ? 0 : (t > 1 ? 1 : t); }

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

/* ---- the type tables: the registry (a new form is its functions, a table and one entry
 * in types[]) ---- */

static const sched_type vp_linear_type = {"vp-linear", vp_keys, vp_init, vp_beta,
                                          vp_B, vp_t_of_B, vp_spec,
    "vp-linear[:bmin=0.1,bmax=20]", "beta(t) = bmin + t (bmax - bmin); 0 <= bmin <= bmax, bmax > 0"};
static const sched_type cosine_type = {"cosine", cos_keys, cos_init, cos_beta,
                                       cos_B, cos_t_of_B, cos_spec,
    "cosine[:s=0.008]", "abar(t) = f(t) / f(0), f(t) = cos^2(pi/2 (t + s) / (1 + s)); "
    "0 <= s <= " STR(CSDE_SCHEDULE_COSINE_S_MAX) "; beta(1) = inf, so runs end at T = 0.999"};
static const sched_type ddpm_linear_type = {"ddpm-linear", ddpm_keys, ddpm_init, disc_beta,
                                            disc_B, disc_t_of_B, ddpm_spec,
    "ddpm-linear[:n=1000,b1=1e-4,bN=0.02]", "discrete: betas linspace(b1, bN, n), b1 and bN in (0, 1)"};
static const sched_type discrete_type = {"discrete", disc_keys, disc_init, disc_beta,
                                         disc_B, disc_t_of_B, disc_spec,
    "discrete:betas=b1,b2,...", "discrete: any betas in (0, 1)"};

static const sched_type *const types[] = {&vp_linear_type, &cosine_type, &ddpm_linear_type,
                                          &discrete_type, NULL};

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
  s->B1 = s->type->B(s, 1.0);
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
  return isnan(t) ? t : s->type->beta(s, clamp01(t));
}

double csde_schedule_int_beta(const csde_schedule *s, double t)
{
  return isnan(t) ? t : s->type->B(s, clamp01(t));
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
  if (B <= 0) return 0;
  if (B >= s->B1) return 1;
  return clamp01(s->type->t_of_B(s, B));
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
