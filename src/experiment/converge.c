/* Solver convergence experiments: the solve stage and the analysis (converge.h). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <gsl/gsl_cdf.h>

#include "corrsde/rng.h"
#include "experiment/converge.h"
#include "solve/stepper.h"

/* ---- names ---- */

static const char *const kind_names[] = {"strong", "weak-mean", "weak-cov", "ode", NULL};

const char *csde_conv_kind_name(csde_conv_kind k)
{
  return (unsigned)k < 4 ? kind_names[k] : "?";
}

char *csde_conv_kind_names(char *buf, size_t len)
{
  size_t o = 0;
  if (!buf || !len) return buf;
  buf[0] = '\0';
  for (int i = 0; kind_names[i] && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", kind_names[i]);
  return buf;
}

int csde_conv_kind_parse(const char *s, csde_conv_kind *k)
{
  for (int i = 0; s && kind_names[i]; i++)
    if (!strcmp(s, kind_names[i])) {
      *k = (csde_conv_kind)i;
      return CSDE_SUCCESS;
    }
  return CSDE_EINVAL;
}

const char *csde_conv_kind_order_key(csde_conv_kind k)
{
  return k == CSDE_CONV_ODE ? "ode" : k == CSDE_CONV_STRONG ? "strong" : "weak";
}

int csde_conv_kind_is_weak(csde_conv_kind k)
{
  return k == CSDE_CONV_WEAK_MEAN || k == CSDE_CONV_WEAK_COV;
}

const char *csde_conv_decision_name(csde_conv_decision d)
{
  switch (d) {
  case CSDE_CONV_USED: return "used";
  case CSDE_CONV_DROP_UNRESOLVED: return "unresolved";
  case CSDE_CONV_DROP_FLOOR: return "below-floor";
  case CSDE_CONV_DROP_PREASYMPTOTIC: return "pre-asymptotic";
  case CSDE_CONV_DROP_ZERO: return "zero";
  }
  return "?";
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- small statistics ---- */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of the finite values among x[0..n-1] (type 7: linear between
 * order statistics); NaN if none. tmp has room for n values. */
static double quantile(const double *x, size_t n, size_t stride, double q, double *tmp)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i * stride])) tmp[m++] = x[i * stride];
  if (m == 0) return NAN;
  qsort(tmp, m, sizeof *tmp, cmp_double);
  double pos = q * (double)(m - 1);
  size_t lo = (size_t)floor(pos);
  if (lo + 1 >= m) return tmp[m - 1];
  double f = pos - (double)lo;
  return tmp[lo] + f * (tmp[lo + 1] - tmp[lo]);
}

/* Standard deviation of the finite values (n - 1 in the denominator); NaN if < 2. */
static double stdev(const double *x, size_t n, size_t stride)
{
  double s = 0, s2 = 0;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    double v = x[i * stride];
    if (!isfinite(v)) continue;
    s += v;
    m++;
  }
  if (m < 2) return NAN;
  double mean = s / (double)m;
  for (size_t i = 0; i < n; i++) {
    double v = x[i * stride];
    if (isfinite(v)) s2 += (v - mean) * (v - mean);
  }
  return sqrt(s2 / (double)(m - 1));
}

/* ---- the order fit ---- */

#define FIT_MAXPAR 4 /* 1, log h, h, h^2 */

/* Weighted least squares of y on the columns of X (n rows, k <= FIT_MAXPAR columns,
 * row-major), weights w; beta receives k coefficients. Returns 0, or -1 if singular. */
static int wls(size_t n, size_t k, const double *X, const double *y, const double *w,
               double *beta)
{
  double A[FIT_MAXPAR][FIT_MAXPAR + 1] = {{0}};
  for (size_t i = 0; i < n; i++) {
    if (!(w[i] > 0)) continue;
    for (size_t a = 0; a < k; a++) {
      for (size_t b = 0; b < k; b++) A[a][b] += w[i] * X[i * k + a] * X[i * k + b];
      A[a][k] += w[i] * X[i * k + a] * y[i];
    }
  }
  /* Gaussian elimination with partial pivoting on the k x (k+1) system */
  for (size_t c = 0; c < k; c++) {
    size_t piv = c;
    for (size_t r = c + 1; r < k; r++)
      if (fabs(A[r][c]) > fabs(A[piv][c])) piv = r;
    if (!(fabs(A[piv][c]) > 1e-300)) return -1;
    if (piv != c)
      for (size_t j = 0; j <= k; j++) {
        double t = A[c][j];
        A[c][j] = A[piv][j];
        A[piv][j] = t;
      }
    for (size_t r = 0; r < k; r++) {
      if (r == c) continue;
      double f = A[r][c] / A[c][c];
      for (size_t j = c; j <= k; j++) A[r][j] -= f * A[c][j];
    }
  }
  for (size_t a = 0; a < k; a++) beta[a] = A[a][k] / A[a][a];
  for (size_t a = 0; a < k; a++)
    if (!isfinite(beta[a])) return -1;
  return 0;
}

/* Design of the fit on the m used levels: columns 1, log h, h/h_max, (h/h_max)^2. */
static void design(size_t m, const double *hu, size_t k, double *X)
{
  double hmax = 0;
  for (size_t i = 0; i < m; i++) hmax = fmax(hmax, hu[i]);
  for (size_t i = 0; i < m; i++) {
    double u = hu[i] / hmax;
    X[i * k] = 1;
    X[i * k + 1] = log(hu[i]);
    if (k > 2) X[i * k + 2] = u;
    if (k > 3) X[i * k + 3] = u * u;
  }
}

/* Replicate b's log errors on the m used levels idx into yb; 0 if one is not positive. */
static int boot_logs(size_t L, const double *E, size_t b, const size_t *idx, size_t m,
                     double *yb)
{
  int okb = 1;
  for (size_t i = 0; i < m; i++) {
    double v = E[b * L + idx[i]];
    okb &= v > 0 && isfinite(v);
    yb[i] = okb ? log(v) : 0;
  }
  return okb;
}

/* The bootstrap replicates of coefficient coef of a model with npar columns (design X of
 * the m used levels idx), into pb (NaN where a replicate has a non-positive error). */
static void boot_coef(size_t L, const double *E, size_t B, const size_t *idx, size_t m,
                      const double *X, size_t npar, const double *w, double *pb, size_t coef)
{
  double yb[CSDE_CONV_MAXLEVEL + 1], bb[FIT_MAXPAR];
  for (size_t b = 0; b < B; b++)
    pb[b] = boot_logs(L, E, b, idx, m, yb) && !wls(m, npar, X, yb, w, bb) ? bb[coef] : NAN;
}

/* The misfit of a fit beyond its sampling noise, as a variance in log e:
 *   s2 = max(0, (|r|^2 - sum_i Var_b r_i) / tr((I - H)'(I - H))),
 * r the residuals, Var_b r_i the bootstrap variance of residual i (every replicate
 * refitted), H the hat matrix of the weighted fit. It is the variance of an extra error,
 * independent and of one size on every level, that the residuals show beyond the noise
 * (for a deterministic error, all of their scatter: the higher-order terms the model
 * leaves out). Its effect on the order is s2 sum_i c_i^2, c the slope row of
 * (X'WX)^-1 X'W (csde_conv_fit_order). 0 without degrees of freedom. */
static double misfit_var(size_t L, const double *E, size_t B, const size_t *idx, size_t m,
                         const double *X, size_t npar, const double *w, const double *y,
                         const double *beta, double trace)
{
  double r[CSDE_CONV_MAXLEVEL + 1], yb[CSDE_CONV_MAXLEVEL + 1], bb[FIT_MAXPAR];
  double s[CSDE_CONV_MAXLEVEL + 1] = {0}, s2[CSDE_CONV_MAXLEVEL + 1] = {0};
  if (!(trace > 1e-12) || m <= npar) return 0;
  double rr = 0;
  for (size_t i = 0; i < m; i++) {
    r[i] = y[i];
    for (size_t a = 0; a < npar; a++) r[i] -= X[i * npar + a] * beta[a];
    rr += r[i] * r[i];
  }
  size_t nb = 0;
  for (size_t b = 0; b < B; b++) {
    if (!boot_logs(L, E, b, idx, m, yb) || wls(m, npar, X, yb, w, bb)) continue;
    for (size_t i = 0; i < m; i++) {
      double ri = yb[i] - r[i]; /* centred on the data's residual: less cancellation */
      for (size_t a = 0; a < npar; a++) ri -= X[i * npar + a] * bb[a];
      s[i] += ri;
      s2[i] += ri * ri;
    }
    nb++;
  }
  double noise = 0;
  if (nb > 1)
    for (size_t i = 0; i < m; i++) {
      double mu = s[i] / (double)nb;
      noise += fmax(0.0, (s2[i] - (double)nb * mu * mu) / (double)(nb - 1));
    }
  return fmax(0.0, (rr - noise) / trace);
}

void csde_conv_fit_order(size_t L, const double *h, const double *e, const double *E,
                         size_t B, const int *use, double conf, double ref_err,
                         csde_conv_fit *f)
{
  f->order = f->order_lo = f->order_hi = f->order_boot_lo = f->order_boot_hi = NAN;
  f->order_plain = NAN;
  f->order_sys = f->order_sys_ref = f->order_misfit = 0;
  f->curvature = f->curvature2 = 0;
  f->curved = 0;
  f->fit[0] = '\0';
  size_t m = 0, idx[CSDE_CONV_MAXLEVEL + 1];
  for (size_t k = 0; k < L && m <= CSDE_CONV_MAXLEVEL; k++)
    if (use[k]) idx[m++] = k;
  if (m < 3) { /* two points always lie on a line: no order, and no interval, from them */
    snprintf(f->fit, sizeof f->fit, "not fitted: only %zu resolved level%s (need 3)", m,
             m == 1 ? "" : "s");
    return;
  }
  enum { M = CSDE_CONV_MAXLEVEL + 1 };
  double hu[M], y[M], w[M], Xs[FIT_MAXPAR - 1][FIT_MAXPAR * M], bs[FIT_MAXPAR - 1][FIT_MAXPAR];
  double *col = malloc(B * sizeof *col), *tmp = malloc((B + 1) * sizeof *tmp);
  double *pb = calloc(B, sizeof *pb);
  if (!col || !tmp || !pb) {
    snprintf(f->fit, sizeof f->fit, "no fit: out of memory");
    goto done;
  }
  /* weights: 1 / Var_boot(log e_k), the s.d. floored at 1e-6 */
  for (size_t i = 0; i < m; i++) {
    size_t k = idx[i];
    hu[i] = h[k];
    y[i] = log(e[k]);
    for (size_t b = 0; b < B; b++) col[b] = E[b * L + k] > 0 ? log(E[b * L + k]) : NAN;
    double sd = B > 1 ? stdev(col, B, 1) : NAN;
    if (!isfinite(sd)) sd = 1e-6;
    sd = fmax(sd, 1e-6);
    w[i] = 1 / (sd * sd);
  }
  const double alpha = (1 - conf) / 2;
  /* the plain power law log e = c + p log h (model 0: 2 columns) */
  design(m, hu, 2, Xs[0]);
  if (wls(m, 2, Xs[0], y, w, bs[0])) {
    snprintf(f->fit, sizeof f->fit, "no fit: singular design");
    goto done;
  }
  f->order_plain = bs[0][1];
  /* the next terms of the error expansion, log e = c + p log h + d h/h_max + d2 (h/h_max)^2,
   * added one at a time while the new coefficient is resolved (its bootstrap interval
   * excludes 0); d h from 3 levels, d2 h^2 from 5 (one level to spare) */
  size_t npar = 2;
  for (size_t k = 3; k <= FIT_MAXPAR; k++) {
    if (m < (k == 3 ? 3 : 5)) break;
    design(m, hu, k, Xs[k - 2]);
    if (wls(m, k, Xs[k - 2], y, w, bs[k - 2])) break;
    boot_coef(L, E, B, idx, m, Xs[k - 2], k, w, pb, k - 1);
    double dlo = quantile(pb, B, 1, alpha, tmp), dhi = quantile(pb, B, 1, 1 - alpha, tmp);
    if (!(isfinite(dlo) && isfinite(dhi) && (dlo > 0 || dhi < 0))) break;
    npar = k;
  }
  const double *X = Xs[npar - 2], *beta = bs[npar - 2];
  f->curved = (int)npar - 2;
  if (npar > 2) f->curvature = beta[2];
  if (npar > 3) f->curvature2 = beta[3];
  const double p = beta[1];
  boot_coef(L, E, B, idx, m, X, npar, w, pb, 1);
  const double lo = quantile(pb, B, 1, alpha, tmp), hi = quantile(pb, B, 1, 1 - alpha, tmp);
  f->order = p;
  f->order_boot_lo = lo;
  f->order_boot_hi = hi;
  /* c_i, the weight of log e_i in p (the slope row of (X'WX)^-1 X'W), and
   * tr((I - H)'(I - H)), both by fitting the unit vectors */
  double c[M], trace = 0, c2 = 0;
  for (size_t i = 0; i < m; i++) {
    double u[M], bb[FIT_MAXPAR];
    for (size_t j = 0; j < m; j++) u[j] = i == j;
    if (wls(m, npar, X, u, w, bb)) {
      c[i] = 0;
      continue;
    }
    c[i] = bb[1];
    c2 += c[i] * c[i];
    for (size_t j = 0; j < m; j++) {
      double rj = u[j];
      for (size_t a = 0; a < npar; a++) rj -= X[j * npar + a] * bb[a];
      trace += rj * rj;
    }
  }
  /* systematic: an extrapolated order is trusted no further than the correction made */
  f->order_sys = npar > 2 ? fabs(p - f->order_plain) : 0;
  /* systematic: the misfit beyond noise, z sqrt(s2 sum c_i^2) (misfit_var) */
  const double z = gsl_cdf_ugaussian_Qinv(alpha);
  f->order_misfit = z * sqrt(misfit_var(L, E, B, idx, m, X, npar, w, y, beta, trace) * c2);
  /* systematic: the reference's error ref_err moves every e_k by up to +-ref_err, in
   * the same direction when the errors are correlated (a fine solve of the same scheme on
   * the same path errs like the levels do); its effect on the slope is
   * |sum_k c_k ref_err / e_k| */
  f->order_sys_ref = 0;
  if (ref_err > 0) {
    double shift = 0;
    for (size_t i = 0; i < m; i++) shift += c[i] * ref_err / e[idx[i]];
    f->order_sys_ref = fabs(shift);
  }
  double sys2 = f->order_sys * f->order_sys + f->order_misfit * f->order_misfit +
                f->order_sys_ref * f->order_sys_ref;
  double ulo = fmax(p - lo, 0), uhi = fmax(hi - p, 0);
  f->order_lo = isfinite(lo) ? p - sqrt(ulo * ulo + sys2) : NAN;
  f->order_hi = isfinite(hi) ? p + sqrt(uhi * uhi + sys2) : NAN;
  static const char *const models[] = {"log e = c + p log h",
                                       "log e = c + p log h + d h (correction resolved)",
                                       ("log e = c + p log h + d h + d2 h^2 (corrections "
                                        "resolved)")};
  int n = snprintf(f->fit, sizeof f->fit, "%s over %zu levels", models[npar - 2], m);
  if (n > 0 && (size_t)n < sizeof f->fit && npar > 2)
    n += snprintf(f->fit + n, sizeof f->fit - (size_t)n,
                  "; extrapolation +-%.2g (plain slope %.4g)", f->order_sys, f->order_plain);
  if (n > 0 && (size_t)n < sizeof f->fit && f->order_misfit > 0)
    n += snprintf(f->fit + n, sizeof f->fit - (size_t)n, "; misfit +-%.2g", f->order_misfit);
  if (n > 0 && (size_t)n < sizeof f->fit && f->order_sys_ref > 0)
    snprintf(f->fit + n, sizeof f->fit - (size_t)n, "; reference error +-%.2g",
             f->order_sys_ref);
done:
  free(col);
  free(tmp);
  free(pb);
}

/* ---- analysis ---- */

void csde_conv_fit_free(csde_conv_fit *f)
{
  if (!f) return;
  void *arrays[] = {f->err,      f->err_lo,   f->err_hi, f->rms,   f->rms_lo,
                    f->rms_hi,   f->halfwidth, f->mc_noise, f->log_sd, f->slope,
                    f->slope_lo, f->slope_hi, f->decision, f->reason};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
  memset(f, 0, sizeof *f);
}

/* The estimate for one level from path weights c (NULL: every path once): scalar data
 * give the mean and the RMS; vector data the norm of the mean. m is Q scratch. */
static void estimate(const csde_conv_data *d, const double *v, size_t stride, const int *c,
                     double *m, double *mean_out, double *rms_out)
{
  const size_t N = d->N, Q = d->Q;
  if (!d->vector) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) {
      double x = v[i * stride], wgt = c ? (double)c[i] : 1.0;
      s += wgt * x;
      s2 += wgt * x * x;
    }
    *mean_out = s / (double)N;
    if (rms_out) *rms_out = sqrt(s2 / (double)N);
    return;
  }
  for (size_t q = 0; q < Q; q++) m[q] = 0;
  for (size_t i = 0; i < N; i++) {
    if (c && !c[i]) continue;
    double wgt = c ? (double)c[i] : 1.0;
    const double *vi = v + i * stride;
    for (size_t q = 0; q < Q; q++) m[q] += wgt * vi[q];
  }
  double s = 0;
  for (size_t q = 0; q < Q; q++) {
    double x = m[q] / (double)N;
    s += x * x;
  }
  *mean_out = sqrt(d->rms_norm ? s / (double)Q : s);
  if (rms_out) *rms_out = NAN;
}

static double slope_of(double e1, double e2, double h1, double h2)
{
  if (!(e1 > 0 && e2 > 0 && isfinite(e1) && isfinite(e2))) return NAN;
  return log(e1 / e2) / log(h1 / h2);
}

/* The weighted least-squares slope of log e on log h over the m levels idx (weights
 * 1/sd^2, sd floored at 1e-6); NaN if an error is not positive. */
static double plain_slope(size_t m, const size_t *idx, const double *h, const double *e,
                          const double *sd)
{
  double sw = 0, sx = 0, sy = 0;
  for (size_t i = 0; i < m; i++) {
    double v = e[idx[i]];
    if (!(v > 0) || !isfinite(v)) return NAN;
    double s = isfinite(sd[idx[i]]) ? fmax(sd[idx[i]], 1e-6) : 1e-6, w = 1 / (s * s);
    sw += w;
    sx += w * log(h[idx[i]]);
    sy += w * log(v);
  }
  double mx = sx / sw, my = sy / sw, sxy = 0, sxx = 0;
  for (size_t i = 0; i < m; i++) {
    double s = isfinite(sd[idx[i]]) ? fmax(sd[idx[i]], 1e-6) : 1e-6, w = 1 / (s * s);
    double dx = log(h[idx[i]]) - mx;
    sxy += w * dx * (log(e[idx[i]]) - my);
    sxx += w * dx * dx;
  }
  return sxy / sxx;
}

/* The analysis' scratch: the replicates and the per-thread resampling buffers. */
typedef struct {
  size_t nr;     /* per replicate: L levels and the reference check */
  int nth;
  double *E;     /* [B][nr] the replicates' estimates */
  double *R2;    /* [B][L] their RMS variants (scalar data), else NULL */
  double *tmp, *vals; /* [B + 1] quantile scratch, [B] */
  double *m;     /* [Q] */
  double *EL;    /* [B][L] the replicates' estimates of the levels alone */
  int *counts;   /* [nth][N] */
  double *mth, *uni; /* [nth][Q], [nth][N] */
} analyse_ws;

static void analyse_ws_free(analyse_ws *w)
{
  void *arrays[] = {w->E, w->R2, w->tmp, w->m, w->EL, w->counts, w->mth, w->uni};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

/* The fit's arrays and the scratch; 0, or -1 (out of memory) with f freed. */
static int analyse_alloc(const csde_conv_data *d, csde_conv_fit *f, analyse_ws *w)
{
  const size_t N = d->N, L = d->L, Q = d->Q, B = d->boot;
  const int scalar = !d->vector;
#define ALLOC(p, n) ((p) = calloc((n), sizeof *(p)))
  ALLOC(f->err, L);
  ALLOC(f->err_lo, L);
  ALLOC(f->err_hi, L);
  ALLOC(f->halfwidth, L);
  ALLOC(f->log_sd, L);
  ALLOC(f->slope, L - 1);
  ALLOC(f->slope_lo, L - 1);
  ALLOC(f->slope_hi, L - 1);
  ALLOC(f->decision, L);
  ALLOC(f->reason, L);
  if (scalar) {
    ALLOC(f->rms, L);
    ALLOC(f->rms_lo, L);
    ALLOC(f->rms_hi, L);
  } else {
    ALLOC(f->mc_noise, L);
  }
#undef ALLOC
  w->nr = L + 1;
  w->E = malloc(B * w->nr * sizeof *w->E);
  w->R2 = scalar ? malloc(B * L * sizeof *w->R2) : NULL;
  w->tmp = malloc((2 * B + 1) * sizeof *w->tmp);
  w->vals = w->tmp ? w->tmp + B + 1 : NULL;
  w->m = malloc(Q * sizeof *w->m);
  w->EL = malloc(B * L * sizeof *w->EL);
  w->nth = d->threads > 0 ? d->threads : 1;
  w->counts = malloc((size_t)w->nth * N * sizeof *w->counts);
  w->mth = malloc((size_t)w->nth * Q * sizeof *w->mth);
  w->uni = malloc((size_t)w->nth * N * sizeof *w->uni);
  if (!f->err || !f->err_lo || !f->err_hi || !f->halfwidth || !f->log_sd || !f->slope ||
      !f->slope_lo || !f->slope_hi || !f->decision || !f->reason ||
      (scalar && (!f->rms || !f->rms_lo || !f->rms_hi)) || (!scalar && !f->mc_noise) || !w->E ||
      (scalar && !w->R2) || !w->tmp || !w->m || !w->EL || !w->counts || !w->mth || !w->uni) {
    csde_conv_fit_free(f);
    return -1;
  }
  return 0;
}

/* The bootstrap: replicate b resamples N whole paths with the uniforms (seed, b); split
 * over processes, rank q draws b in [q B / size, (q + 1) B / size), then every share is
 * broadcast from its rank, in order. Nonzero if a broadcast failed. */
static int analyse_replicates(const csde_conv_data *d, analyse_ws *w)
{
  const size_t N = d->N, L = d->L, Q = d->Q, B = d->boot, nr = w->nr, stride = L * Q;
  const int scalar = !d->vector;
  double *E = w->E, *R2 = w->R2;
  const int nproc = d->dist && d->dist->size > 1 ? d->dist->size : 1,
            me = nproc > 1 ? d->dist->rank : 0;
  const long b0 = (long)((size_t)me * B / (size_t)nproc),
             b1 = (long)((size_t)(me + 1) * B / (size_t)nproc);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(w->nth)
#endif
  for (long bl = b0; bl < b1; bl++) {
    size_t b = (size_t)bl;
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    int *c = w->counts + (size_t)t * N;
    double *u = w->uni + (size_t)t * N, *mm = w->mth + (size_t)t * Q;
    csde_rng_key key = {d->boot_seed, (uint64_t)b};
    csde_rng_uniform(key, 0, N, u);
    memset(c, 0, N * sizeof *c);
    for (size_t i = 0; i < N; i++) {
      size_t j = (size_t)(u[i] * (double)N);
      c[j < N ? j : N - 1]++;
    }
    for (size_t k = 0; k < L; k++) {
      double rv = NAN;
      estimate(d, d->v + k * Q, stride, c, mm, &E[b * nr + k], scalar ? &rv : NULL);
      if (scalar) R2[b * L + k] = rv;
    }
    E[b * nr + L] = NAN;
    if (d->vref) estimate(d, d->vref, Q, c, mm, &E[b * nr + L], NULL);
  }
  for (int q = 0; nproc > 1 && q < nproc; q++) {
    const size_t q0 = (size_t)q * B / (size_t)nproc, q1 = (size_t)(q + 1) * B / (size_t)nproc;
    int bad = d->dist->bcast(d->dist->user, E + q0 * nr, (q1 - q0) * nr * sizeof *E, q);
    if (scalar) bad |= d->dist->bcast(d->dist->user, R2 + q0 * L, (q1 - q0) * L * sizeof *R2, q);
    if (bad) return -1;
  }
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < L; k++) w->EL[b * L + k] = E[b * nr + k];
  return 0;
}

/* The noise level of a vector error's norm at level k: sqrt(sum_q Var(v_q) / N), in the
 * same norm. */
static double mc_noise(const csde_conv_data *d, size_t k)
{
  const size_t N = d->N, Q = d->Q, stride = d->L * Q;
  double tot = 0;
  for (size_t q = 0; q < Q; q++) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) s += d->v[i * stride + k * Q + q];
    double mean = s / (double)N;
    for (size_t i = 0; i < N; i++) {
      double x = d->v[i * stride + k * Q + q] - mean;
      s2 += x * x;
    }
    tot += s2 / (double)(N - 1) / (double)N;
  }
  return sqrt(d->rms_norm ? tot / (double)Q : tot);
}

/* Each level's interval, log s.d. and noise level, and the local slopes' intervals. */
static void analyse_intervals(const csde_conv_data *d, csde_conv_fit *f, analyse_ws *w)
{
  const size_t L = d->L, B = d->boot, nr = w->nr;
  const double alpha = (1 - d->conf) / 2, *E = w->E;
  double *tmp = w->tmp, *vals = w->vals;
  for (size_t k = 0; k < L; k++) {
    f->err_lo[k] = quantile(E + k, B, nr, alpha, tmp);
    f->err_hi[k] = quantile(E + k, B, nr, 1 - alpha, tmp);
    f->halfwidth[k] = (f->err_hi[k] - f->err_lo[k]) / 2;
    for (size_t b = 0; b < B; b++) vals[b] = E[b * nr + k] > 0 ? log(E[b * nr + k]) : NAN;
    f->log_sd[k] = stdev(vals, B, 1);
    if (!d->vector) {
      f->rms_lo[k] = quantile(w->R2 + k, B, L, alpha, tmp);
      f->rms_hi[k] = quantile(w->R2 + k, B, L, 1 - alpha, tmp);
    } else {
      f->mc_noise[k] = mc_noise(d, k);
    }
  }
  for (size_t k = 0; k + 1 < L; k++) {
    f->slope[k] = slope_of(f->err[k], f->err[k + 1], d->h[k], d->h[k + 1]);
    for (size_t b = 0; b < B; b++)
      vals[b] = slope_of(E[b * nr + k], E[b * nr + k + 1], d->h[k], d->h[k + 1]);
    f->slope_lo[k] = quantile(vals, B, 1, alpha, tmp);
    f->slope_hi[k] = quantile(vals, B, 1, 1 - alpha, tmp);
  }
}

/* The reference check: the error of the reference by Richardson from level R-1 (dref
 * its estimate from all paths), the ratio to the finest level and the floor. */
static void analyse_reference(const csde_conv_data *d, csde_conv_fit *f, analyse_ws *w,
                              double dref)
{
  const size_t L = d->L;
  const double alpha = (1 - d->conf) / 2;
  double p = d->theory > 0 ? d->theory : 1;
  f->ref_error = d->ref_floor > 0 ? d->ref_floor : 0;
  f->ref_diff = f->ref_diff_hi = NAN;
  f->ref_ratio = NAN;
  f->ref_ok = 1;
  if (d->vref) {
    f->have_ref_check = 1;
    f->ref_diff = dref;
    f->ref_diff_hi = quantile(w->E + L, d->boot, w->nr, 1 - alpha, w->tmp);
    double up = isfinite(f->ref_diff_hi) ? fmax(f->ref_diff_hi, dref) : dref;
    f->ref_error = up / (pow(2.0, p) - 1);
  }
  if (f->ref_error > 0) {
    f->ref_ratio = f->err[L - 1] / f->ref_error;
    f->ref_ok = f->ref_ratio >= CSDE_CONV_MINRATIO;
  }
  f->floor = fmax(d->float_floor, f->ref_error);
  snprintf(f->floor_name, sizeof f->floor_name, "%s",
           f->ref_error > d->float_floor
               ? (d->vref ? "reference error" : d->ref_floor_name ? d->ref_floor_name
                                                                    : "exact reference")
               : "float64 round-off");
}

/* Screening: levels not positive, below a floor or unresolved are dropped. */
static void analyse_screen(const csde_conv_data *d, csde_conv_fit *f)
{
  for (size_t k = 0; k < d->L; k++) {
    double e = f->err[k], hw = f->halfwidth[k];
    double noise = f->mc_noise ? f->mc_noise[k] : 0;
    f->decision[k] = CSDE_CONV_USED;
    f->reason[k][0] = '\0';
    if (!(e > 0) || !isfinite(e)) {
      f->decision[k] = CSDE_CONV_DROP_ZERO;
      snprintf(f->reason[k], sizeof f->reason[k], "error %g is not positive and finite", e);
    } else if (e < d->float_floor) {
      f->decision[k] = CSDE_CONV_DROP_FLOOR;
      snprintf(f->reason[k], sizeof f->reason[k],
               "below the floor: error %.3g < float64 round-off %.3g", e, d->float_floor);
    } else if (e < 3 * f->ref_error) {
      f->decision[k] = CSDE_CONV_DROP_FLOOR;
      snprintf(f->reason[k], sizeof f->reason[k],
               "below the floor: error %.3g < 3 x the reference's error %.3g", e, f->ref_error);
    } else if (noise > 0 && e < 3 * noise) {
      f->decision[k] = CSDE_CONV_DROP_FLOOR;
      snprintf(f->reason[k], sizeof f->reason[k],
               "below the floor: error %.3g < 3 x Monte Carlo noise %.3g", e, noise);
    } else if (!(hw < e / 3)) {
      f->decision[k] = CSDE_CONV_DROP_UNRESOLVED;
      snprintf(f->reason[k], sizeof f->reason[k],
               "unresolved: half-width %.3g >= error/3 = %.3g", hw, e / 3);
    }
  }
}

/* Pre-asymptotic coarse levels: the slope from a level j to the next remaining one
 * against the weighted slope p* of all the finer remaining levels, tested from the
 * finest j that leaves 3 levels to the coarse end; the first j off p* and every level
 * coarser than it are dropped (a level that happens to lie on p* between two that do
 * not is no more asymptotic than they are). */
static void analyse_preasymptotic(const csde_conv_data *d, csde_conv_fit *f,
                                  const analyse_ws *w)
{
  const size_t L = d->L, B = d->boot, nr = w->nr;
  size_t cand[CSDE_CONV_MAXLEVEL + 1], nc = 0;
  for (size_t k = 0; k < L; k++)
    if (f->decision[k] == CSDE_CONV_USED) cand[nc++] = k;
  double *diff = malloc(B * sizeof *diff), *ev = malloc((L + 1) * sizeof *ev);
  for (size_t t = nc > 3 ? nc - 3 : 0; diff && ev && t-- > 0;) {
    size_t j = cand[t], nx = cand[t + 1];
    const size_t *rest = cand + t + 1, nrest = nc - t - 1;
    double sj = slope_of(f->err[j], f->err[nx], d->h[j], d->h[nx]);
    double ps = plain_slope(nrest, rest, d->h, f->err, f->log_sd);
    for (size_t r = 0; r < B; r++) {
      for (size_t k = 0; k < L; k++) ev[k] = w->E[r * nr + k];
      diff[r] = slope_of(ev[j], ev[nx], d->h[j], d->h[nx]) -
                plain_slope(nrest, rest, d->h, ev, f->log_sd);
    }
    double sd = stdev(diff, B, 1);
    if (!isfinite(sd)) sd = 0;
    double tol = 0.1 * fmax(1.0, fabs(ps)) + 2 * sd;
    if (!(fabs(sj - ps) > tol)) continue;
    f->decision[j] = CSDE_CONV_DROP_PREASYMPTOTIC;
    snprintf(f->reason[j], sizeof f->reason[j],
             "pre-asymptotic: slope %.3f to the next level differs from the finer levels' "
             "slope %.3f by more than %.3f", sj, ps, tol);
    for (size_t q = 0; q < t; q++) {
      f->decision[cand[q]] = CSDE_CONV_DROP_PREASYMPTOTIC;
      snprintf(f->reason[cand[q]], sizeof f->reason[cand[q]],
               "pre-asymptotic: coarser than level %u, which is off the finer levels' slope",
               d->level ? d->level[j] : (unsigned)j);
    }
    break;
  }
  free(diff);
  free(ev);
}

int csde_conv_analyse(const csde_conv_data *d, csde_conv_fit *f, csde_err *err)
{
  memset(f, 0, sizeof *f);
  const size_t N = d->N, L = d->L, Q = d->Q, B = d->boot;
  if (N < 2 || L < 2 || Q < 1 || (!d->vector && Q != 1) || B < 2 || L > CSDE_CONV_MAXLEVEL + 1 ||
      !(d->conf > 0 && d->conf < 1))
    return csde_err_set(err, CSDE_EINVAL,
                        "convergence analysis: bad sizes (paths %zu, levels %zu, Q %zu, "
                        "bootstrap %zu, confidence %g)", N, L, Q, B, d->conf);
  f->L = L;
  analyse_ws w;
  memset(&w, 0, sizeof w);
  int st = CSDE_SUCCESS;
  if (analyse_alloc(d, f, &w)) {
    st = csde_err_set(err, CSDE_ENOMEM, "convergence analysis: out of memory");
    goto done;
  }
  /* the estimates from all paths */
  for (size_t k = 0; k < L; k++)
    estimate(d, d->v + k * Q, L * Q, NULL, w.m, &f->err[k], d->vector ? NULL : &f->rms[k]);
  double dref = NAN;
  if (d->vref) estimate(d, d->vref, Q, NULL, w.m, &dref, NULL);
  if (analyse_replicates(d, &w)) {
    csde_conv_fit_free(f);
    st = csde_err_set(err, CSDE_EFAILED, "convergence analysis: the replicates could not be "
                                         "shared");
    goto done;
  }
  analyse_intervals(d, f, &w);
  analyse_reference(d, f, &w, dref);
  analyse_screen(d, f);
  analyse_preasymptotic(d, f, &w);
  int use[CSDE_CONV_MAXLEVEL + 1];
  f->nused = 0;
  for (size_t k = 0; k < L; k++) {
    use[k] = f->decision[k] == CSDE_CONV_USED;
    f->nused += (size_t)use[k];
    if (use[k]) snprintf(f->reason[k], sizeof f->reason[k], "used");
  }
  csde_conv_fit_order(L, d->h, f->err, w.EL, B, use, d->conf, f->ref_error, f);
done:
  analyse_ws_free(&w);
  return st;
}

/* ---- the solve stage ---- */

csde_conv_params csde_conv_default_params(void)
{
  csde_conv_params p;
  memset(&p, 0, sizeof p);
  p.P = csde_problem_default();
  p.P.process = CSDE_PROC_PFODE;
  p.kind = CSDE_CONV_ODE;
  p.k0 = 3;
  p.k1 = 8;
  p.paths = CSDE_CONV_DEFAULT_PATHS;
  p.ref = CSDE_CONV_REF_AUTO;
  p.threads = 1;
  p.batch = 64;
  p.boot = CSDE_CONV_DEFAULT_BOOT;
  p.boot_seed = 20240605;
  p.conf = 0.95;
  return p;
}

unsigned csde_conv_default_ref_level(const csde_conv_params *p, const char *solver)
{
  double o = csde_solver_type_order(csde_solver_lookup(solver), csde_conv_kind_order_key(p->kind));
  if (!(o > 0) || !isfinite(o)) o = 1;
  /* 2^(p d) >= 10: the reference at least 10x more accurate than the finest level */
  unsigned d = (unsigned)ceil(log2(CSDE_CONV_MINRATIO) / o - 1e-9);
  /* order <= 1: one level more, since the check's Richardson estimate assumes the errors
   * of levels R-1 and R aligned, which overstates the reference's error when they are not
   * (strong errors: about 2x) */
  if (o <= 1) d++;
  if (d < 3) d = 3;
  return p->k1 + d;
}

int csde_conv_exact_available(const csde_conv_params *p, const csde_model *M, const char **why)
{
  const char *w = NULL;
  int gauss = M && csde_model_is_gaussian(M);
  if (p->kind == CSDE_CONV_STRONG)
    w = "strong errors need a pathwise solution, and an SDE has no exact one here "
        "(use fine[:LEVEL])";
  else if (!gauss)
    w = p->kind == CSDE_CONV_ODE ? "the model gives no exact flow (only gaussian does; use "
                                   "fine[:LEVEL])"
                                 : "the model gives no exact moments (only gaussian does; use "
                                   "fine[:LEVEL])";
  if (why) *why = w;
  return w == NULL;
}

void csde_conv_result_free(csde_conv_result *r)
{
  if (!r) return;
  if (r->s)
    for (size_t i = 0; i < r->nsolvers; i++) {
      csde_conv_fit_free(&r->s[i].fit);
      free(r->s[i].v);
      free(r->s[i].vref);
      free(r->s[i].exact_dev);
    }
  void *arrays[] = {r->s, r->h, r->steps, r->level, r->xref};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
  memset(r, 0, sizeof *r);
}

/* RMS over n entries of a - b. */
static double rms_diff(const double *a, const double *b, size_t n)
{
  double s = 0;
  for (size_t j = 0; j < n; j++) {
    double d = a[j] - b[j];
    s += d * d;
  }
  return sqrt(s / (double)n);
}

/* F(x) = (1/D) sum_p x_p x_p^T, tau x tau, x one sample (frame-major). */
static void frame_moment(const double *x, size_t tau, size_t D, double *F)
{
  for (size_t a = 0; a < tau; a++)
    for (size_t b = 0; b <= a; b++) {
      const double *xa = x + a * D, *xb = x + b * D;
      double s = 0;
      for (size_t p = 0; p < D; p++) s += xa[p] * xb[p];
      F[a * tau + b] = F[b * tau + a] = s / (double)D;
    }
}

typedef struct {
  csde_err err;
  int status;
} item_status;

/* An item's status as one process sends it to the others (no pointers). */
typedef struct {
  int status;
  char param[32];
  char msg[CSDE_MSG_MAX];
} item_wire;

/* The param names a failure can blame, to turn a received name back into the constant. */
static const char *param_const(const char *name)
{
  static const char *const known[] = {CSDE_PARAM_SOLVER, CSDE_PARAM_MODEL, CSDE_PARAM_SIZE,
                                      CSDE_PARAM_GRID, CSDE_PARAM_SPAN, CSDE_PARAM_NOISE,
                                      CSDE_PARAM_STEPS, CSDE_PARAM_TOLERANCES,
                                      CSDE_CONV_PARAM_REFERENCE, CSDE_CONV_PARAM_OUTPUT};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(name, known[i])) return known[i];
  return NULL;
}

/* ---- the shared reference's setting ---- */

int csde_conv_reference_parse(const char *spec, csde_conv_params *p, csde_err *err)
{
  static const char forms[] = "expected auto, exact, fine, fine:LEVEL (an integer 1 to 30) or "
                              "fine:SOLVER:rtol=R[,atol=A] (an adaptive solver: dopri5, rk45, "
                              "rkck, rk8pd for the ODEs; heun, em, sra1 for the SDEs)";
#define BAD(...) csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, \
                                csde_err_set(err, CSDE_ESPEC, __VA_ARGS__))
  if (!spec) return BAD("reference: %s, got nothing", forms);
  p->ref_level = 0;
  p->ref_solver = NULL;
  p->ref_rtol = p->ref_atol = 0;
  if (!strcmp(spec, "auto") || !strcmp(spec, "exact") || !strcmp(spec, "fine")) {
    p->ref = spec[0] == 'a' ? CSDE_CONV_REF_AUTO : spec[0] == 'e' ? CSDE_CONV_REF_EXACT
                                                                 : CSDE_CONV_REF_FINE;
    return CSDE_SUCCESS;
  }
  if (strncmp(spec, "fine:", 5)) return BAD("reference: %s, got '%s'", forms, spec);
  const char *a = spec + 5, *colon = strchr(a, ':');
  if (!colon) { /* fine:LEVEL */
    unsigned v = 0;
    const char *q = a;
    for (; *q >= '0' && *q <= '9' && v <= 30; q++) v = v * 10 + (unsigned)(*q - '0');
    if (q == a && csde_solver_lookup(a))
      return BAD("reference %s: a shared reference needs its tolerance: expected "
                 "fine:%s:rtol=R[,atol=A]", spec, a);
    if (q == a || *q || v < 1 || v > 30) return BAD("reference: %s, got '%s'", forms, spec);
    p->ref = CSDE_CONV_REF_FINE;
    p->ref_level = v;
    return CSDE_SUCCESS;
  }
  char name[32];
  size_t nl = (size_t)(colon - a);
  if (nl == 0 || nl >= sizeof name) return BAD("reference: %s, got '%s'", forms, spec);
  memcpy(name, a, nl);
  name[nl] = '\0';
  const csde_solver_type *T = csde_solver_lookup(name);
  if (!T)
    return BAD("reference %s: unknown solver '%s' (%s)", spec, name, forms + 9);
  if (!T->adaptive)
    return BAD("reference %s: %s has no adaptive mode (rtol), so it cannot give a shared "
               "reference (dopri5, rk45, rkck, rk8pd for the ODEs; heun, em, sra1 for the "
               "SDEs)", spec, name);
  double rtol = NAN, atol = NAN;
  for (const char *o = colon + 1; *o;) {
    const char *eq = strchr(o, '=');
    char *end = NULL;
    if (!eq) return BAD("reference %s: expected rtol=R[,atol=A] after the solver", spec);
    double v = strtod(eq + 1, &end);
    if (end == eq + 1 || (*end && *end != ',') || !isfinite(v) || v < 0)
      return BAD("reference %s: expected a number >= 0 after '%.*s='", spec, (int)(eq - o), o);
    if ((size_t)(eq - o) == 4 && !strncmp(o, "rtol", 4)) rtol = v;
    else if ((size_t)(eq - o) == 4 && !strncmp(o, "atol", 4)) atol = v;
    else return BAD("reference %s: unknown option '%.*s' (expected rtol, atol)", spec,
                    (int)(eq - o), o);
    o = *end ? end + 1 : end;
  }
  if (!(rtol > 0)) return BAD("reference %s: expected rtol=R with R > 0", spec);
  p->ref = CSDE_CONV_REF_SHARED;
  p->ref_solver = csde_solver_type_name(T);
  p->ref_rtol = rtol;
  p->ref_atol = isnan(atol) ? rtol : atol;
  return CSDE_SUCCESS;
#undef BAD
}

/* ---- the solve stage ----
 *
 * Stages, each a parallel loop over the batches of paths (items), run in order: the
 * shared or exact reference (if any), then solver by solver its own fine reference (level
 * R, and R-1 for the check) and its levels, coarse to fine. A reference stage keeps the
 * final states of every path (XR, N tau D doubles, one solver at a time); a level stage
 * compares a level's solve with them. A stage is done when every item is; only then do
 * its values count (levels_done, ref_done), the file is rewritten and the progress hook
 * told. Starts are made again in every stage (a pure function of the path index). */

enum { STAGE_REF_COMMON, STAGE_REF_SOLVER, STAGE_LEVEL };
#define ITEM_STOPPED (-1) /* an item whose solve the stop flag ended */

typedef struct conv_run conv_run;

typedef struct {
  conv_run *c;
  int t;
  unsigned per_step; /* model calls a step of the solve in progress */
} obs_ctx;

struct conv_run {
  const csde_conv_params *p;
  const csde_conv_hooks *hooks;
  csde_conv_result *res;
  size_t ns, N, L, Q, tau, D, per, nb, bs, nsl;
  int nt, sde, exact_flow, exact_moments, shared, nproc, rank;
  int ref_exact, fine;  /* an exact reference; each solver's own fine one */
  int nalloc;           /* threads whose hooks' thread_alloc succeeded */
  unsigned Rs[CSDE_CONV_MAXSOLVERS];
  double t_start, t_end, t_wall;
  const csde_model **M;
  void **ust;
  csde_solver **S;    /* [nt][ns][nsl]: levels, then R-1 and R (fine) */
  csde_solver **Sref; /* [nt][2]: the shared reference at rtol and rtol / 10 */
  double **buf;       /* [nt] x0, xa, xb, Fa, Fb */
  double *XR;         /* [N][per] the reference's final states */
  double *scale;      /* [ns][N] */
  double *dev;        /* [ns][N][Q] f(X_ref) - f exact (weak, gaussian), else NULL */
  double *fexact;
  double *check;      /* [bs] the shared reference's check, per path */
  double *pack;       /* [bs][Q + 1] scratch of the broadcasts */
  item_status *ist;   /* [nb] of the stage in progress */
  obs_ctx *obs;       /* [nt] */
  /* the stage in progress */
  int stage;
  size_t si, l;
  /* progress */
  atomic_int stop;
  atomic_size_t nfe_items;   /* finished solves' model calls (this process; all, at a
                                stage's end) */
  atomic_size_t stage_nfe;   /* this process's, in the stage */
  atomic_size_t *cur;        /* [nt] the calls of each thread's solve in progress */
  atomic_size_t items_left;  /* of the stage, this process */
  atomic_size_t paths_done;  /* of the stage, this process */
  size_t nfe_fixed, nfe_total, nfe_reported, ref_first_nfe;
  int nfe_est, ref_pending, est_sent, sec_ok;
  int planned;               /* the plan is out: from here on res is kept on failure */
  double sec_per_call, acc_time, last_obs;
  double t_cur;              /* the calling thread's solve: the time reached (NaN: none) */
  size_t acc_calls;
};

static void report(conv_run *c, csde_conv_event ev)
{
  if (!c->hooks->progress) return;
  size_t done = atomic_load(&c->nfe_items);
  for (int t = 0; t < c->nt; t++) done += atomic_load_explicit(&c->cur[t], memory_order_relaxed);
  if (done < c->nfe_reported) done = c->nfe_reported; /* a solve just counted twice */
  c->nfe_reported = done;
  csde_conv_progress pr;
  memset(&pr, 0, sizeof pr);
  pr.event = ev;
  int common = c->stage == STAGE_REF_COMMON;
  pr.solver = common ? SIZE_MAX : c->si;
  pr.solver_name = common ? (c->shared ? c->p->ref_solver : "exact") : c->p->solvers[c->si];
  pr.reference = c->stage != STAGE_LEVEL;
  pr.level = c->stage == STAGE_LEVEL        ? c->res->level[c->l]
             : c->stage == STAGE_REF_SOLVER ? c->Rs[c->si]
                                            : 0;
  pr.paths_done = atomic_load(&c->paths_done);
  pr.paths = c->N;
  pr.nfe_done = done;
  pr.nfe_total = c->nfe_total;
  pr.nfe_total_estimated = c->nfe_est || c->ref_pending;
  pr.batch = c->bs;
  pr.batches = c->nb;
  pr.threads = c->nt;
  pr.fraction = c->nfe_total ? fmin(1.0, (double)done / (double)c->nfe_total) : 0;
  pr.elapsed = now() - c->t_wall;
  pr.sec_per_call = c->est_sent ? c->sec_per_call : NAN;
  double par = (double)(c->nt < (int)c->nb ? (size_t)c->nt : c->nb) * (double)c->nproc;
  pr.seconds_total = c->est_sent ? (double)c->nfe_total * c->sec_per_call / par : NAN;
  pr.t = c->t_cur;
  if (c->hooks->progress(c->hooks->user, &pr)) atomic_store(&c->stop, 1);
}

/* The estimate, once its parts are known (the calling thread only). */
static void maybe_estimate(conv_run *c)
{
  if (c->est_sent || !c->sec_ok || c->ref_pending) return;
  c->est_sent = 1;
  report(c, CSDE_CONV_ESTIMATE);
}

/* After every step of every solve (csde_solve_params.observer): the calls so far of this
 * thread's solve; on the calling thread also the timing and the hook. Non-zero stops. */
static int conv_observe(size_t step, double t, const double *x, void *user)
{
  obs_ctx *o = user;
  conv_run *c = o->c;
  (void)x;
  atomic_store_explicit(&c->cur[o->t], step * o->per_step, memory_order_relaxed);
  if (o->t == 0) {
    double tn = now();
    c->t_cur = t;
    if (step > 1 && !c->sec_ok && o->per_step) { /* a step's time over its calls */
      c->acc_time += tn - c->last_obs;
      c->acc_calls += o->per_step;
      if (c->acc_calls >= 4) {
        c->sec_per_call = c->acc_time / (double)c->acc_calls;
        c->sec_ok = 1;
      }
    }
    c->last_obs = tn;
    maybe_estimate(c);
    report(c, CSDE_CONV_WORKING);
  }
  return atomic_load(&c->stop);
}

/* One solve of the item's batch from x (in place); its calls are counted. */
static int conv_solve(conv_run *c, int t, csde_solver *S, const char *solver, size_t first,
                      double *x, size_t *nfe, csde_err *e)
{
  csde_solve_stats st;
  memset(&st, 0, sizeof st);
  c->obs[t].per_step = csde_solver_type_nfe_per_step(csde_solver_lookup(solver));
  csde_solver_set_seed(S, c->p->seed, first);
  int s = csde_solver_run(S, x, &st, e);
  atomic_store_explicit(&c->cur[t], 0, memory_order_relaxed); /* before the count grows */
  if (t == 0) c->t_cur = NAN;
  atomic_fetch_add(&c->nfe_items, st.nfe);
  atomic_fetch_add(&c->stage_nfe, st.nfe);
  if (nfe) *nfe = st.nfe;
  return s ? s : st.stopped ? ITEM_STOPPED : CSDE_SUCCESS;
}

/* The per-path value of a solve against its reference: kind's norm or difference. */
static void put_diff(const conv_run *c, const double *xi, const double *ri, double *dst,
                     double *Fa, double *Fb)
{
  csde_conv_kind k = c->p->kind;
  if (k == CSDE_CONV_STRONG || k == CSDE_CONV_ODE) {
    dst[0] = rms_diff(xi, ri, c->per);
  } else if (k == CSDE_CONV_WEAK_MEAN) {
    for (size_t q = 0; q < c->per; q++) dst[q] = xi[q] - ri[q];
  } else {
    frame_moment(xi, c->tau, c->D, Fa);
    frame_moment(ri, c->tau, c->D, Fb);
    for (size_t q = 0; q < c->tau * c->tau; q++) dst[q] = Fa[q] - Fb[q];
  }
}

/* A reference's final states of paths first.. (n of them) into XR, with their sizes and
 * (weak, gaussian) their deviation from the exact law, in slot `slot`. */
static void keep_reference(conv_run *c, size_t slot, size_t first, size_t n, const double *xr,
                           double *Fa)
{
  const size_t per = c->per, Q = c->Q, N = c->N;
  memcpy(c->XR + first * per, xr, n * per * sizeof *xr);
  for (size_t i = 0; i < n; i++) {
    const double *ri = xr + i * per;
    double sc, s2 = 0;
    if (c->p->kind == CSDE_CONV_WEAK_COV) {
      frame_moment(ri, c->tau, c->D, Fa);
      for (size_t q = 0; q < c->tau * c->tau; q++) s2 += Fa[q] * Fa[q];
      sc = sqrt(s2);
      if (c->dev)
        for (size_t q = 0; q < Q; q++) c->dev[(slot * N + first + i) * Q + q] = Fa[q] - c->fexact[q];
    } else {
      for (size_t j = 0; j < per; j++) s2 += ri[j] * ri[j];
      sc = sqrt(s2 / (double)per);
      if (c->dev)
        for (size_t q = 0; q < Q; q++) c->dev[(slot * N + first + i) * Q + q] = ri[q] - c->fexact[q];
    }
    c->scale[slot * N + first + i] = sc;
  }
}

/* Item b of the stage in progress, on thread t. */
static int run_item(conv_run *c, int t, size_t b, csde_err *e)
{
  const csde_conv_params *p = c->p;
  const size_t per = c->per, bs = c->bs, first = b * bs, L = c->L, Q = c->Q;
  const size_t n = first + bs <= c->N ? bs : c->N - first;
  double *x0 = c->buf[t], *xa = x0 + bs * per, *xb = xa + bs * per;
  double *Fa = xb + bs * per, *Fb = Fa + c->tau * c->tau;
  int s = c->hooks->start(c->hooks->user, c->ust[t], first, bs, x0, e);
  if (s) return s;
  size_t nfe = 0;
  memcpy(xa, x0, bs * per * sizeof *xa);
  if (c->stage == STAGE_REF_COMMON) {
    if (c->exact_flow) {
      s = csde_model_gaussian_flow_apply(c->M[t], c->t_start, c->t_end, bs, x0, xa, e);
    } else {
      s = conv_solve(c, t, c->Sref[2 * t], p->ref_solver, first, xa, &nfe, e);
      if (!s && t == 0 && c->ref_pending) { /* the reference's calls, from this batch */
        /* the check at rtol / 10 takes 10^(1/q) times as many steps, q the solver's order
         * (a local error ~ h^q held at rtol) */
        double q = csde_solver_type_order(csde_solver_lookup(p->ref_solver),
                                          c->sde ? "strong" : "ode");
        double fc = pow(10.0, 1.0 / (q >= 1 && isfinite(q) ? q : 1.0));
        c->ref_first_nfe = nfe;
        c->nfe_total = c->nfe_fixed + (size_t)((double)nfe * ((double)c->nb + fc) + 0.5);
        c->nfe_est = 1;
        c->ref_pending = 0;
      }
      if (!s && b == 0) { /* the check: the first batch again at rtol / 10 */
        memcpy(xb, x0, bs * per * sizeof *xb);
        s = conv_solve(c, t, c->Sref[2 * t + 1], p->ref_solver, first, xb, NULL, e);
        for (size_t i = 0; i < n && !s; i++) {
          const double *u = xb + i * per, *w = xa + i * per;
          if (p->kind == CSDE_CONV_WEAK_COV) {
            frame_moment(u, c->tau, c->D, Fa);
            frame_moment(w, c->tau, c->D, Fb);
            double s2 = 0;
            for (size_t q = 0; q < c->tau * c->tau; q++) s2 += (Fa[q] - Fb[q]) * (Fa[q] - Fb[q]);
            c->check[i] = sqrt(s2);
          } else {
            c->check[i] = rms_diff(u, w, per);
          }
        }
      }
    }
    if (!s) keep_reference(c, 0, first, n, xa, Fa);
  } else if (c->stage == STAGE_REF_SOLVER) {
    csde_solver **Ss = c->S + ((size_t)t * c->ns + c->si) * c->nsl;
    s = conv_solve(c, t, Ss[L + 1], p->solvers[c->si], first, xa, NULL, e); /* level R */
    if (!s) {
      memcpy(xb, x0, bs * per * sizeof *xb);
      s = conv_solve(c, t, Ss[L], p->solvers[c->si], first, xb, NULL, e); /* level R-1 */
    }
    if (!s) {
      csde_conv_solver_result *r = &c->res->s[c->si];
      for (size_t i = 0; i < n; i++)
        put_diff(c, xb + i * per, xa + i * per, r->vref + (first + i) * Q, Fa, Fb);
      keep_reference(c, c->si, first, n, xa, Fa);
    }
  } else {
    csde_solver **Ss = c->S + ((size_t)t * c->ns + c->si) * c->nsl;
    s = conv_solve(c, t, Ss[c->l], p->solvers[c->si], first, xa, NULL, e);
    if (!s) {
      csde_conv_solver_result *r = &c->res->s[c->si];
      for (size_t i = 0; i < n; i++)
        put_diff(c, xa + i * per, c->XR + (first + i) * per, r->v + ((first + i) * L + c->l) * Q,
                 Fa, Fb);
    }
  }
  return s;
}

/* The process an item runs on: the batch's, wherever the stages of a batch share XR. */
static int item_owner(const conv_run *c, size_t b)
{
  size_t key = c->stage == STAGE_REF_COMMON || c->shared || c->exact_flow ? b : c->si * c->nb + b;
  return (int)(key % (size_t)c->nproc);
}

/* Every item's values and status from its process, in item order, then the stage's calls
 * and stop flags in process order (corrsde-mpi). Nonzero on failure. */
static int share_stage(conv_run *c)
{
  const csde_conv_dist *dd = c->p->dist;
  const size_t N = c->N, L = c->L, Q = c->Q, bs = c->bs;
  int bad = 0;
  for (size_t b = 0; b < c->nb && !bad; b++) {
    const int root = item_owner(c, b);
    const size_t first = b * bs, n = first + bs <= N ? bs : N - first;
    item_wire w;
    memset(&w, 0, sizeof w);
    if (root == dd->rank) {
      w.status = c->ist[b].status;
      if (w.status > 0) snprintf(w.msg, sizeof w.msg, "rank %d: %.480s", root, c->ist[b].err.msg);
      if (c->ist[b].err.param) snprintf(w.param, sizeof w.param, "%s", c->ist[b].err.param);
    }
    bad |= dd->bcast(dd->user, &w, sizeof w, root);
    c->ist[b].status = w.status;
    memcpy(c->ist[b].err.msg, w.msg, sizeof w.msg);
    c->ist[b].err.param = w.param[0] ? param_const(w.param) : NULL;
    if (w.status) continue; /* its values are not needed */
    const size_t slot = c->stage == STAGE_REF_COMMON ? 0 : c->si;
    if (c->stage != STAGE_LEVEL) {
      bad |= dd->bcast(dd->user, c->scale + slot * N + first, n * sizeof *c->scale, root);
      if (c->dev) bad |= dd->bcast(dd->user, c->dev + (slot * N + first) * Q, n * Q * sizeof *c->dev, root);
    }
    if (c->stage == STAGE_REF_SOLVER) {
      double *vr = c->res->s[c->si].vref + first * Q;
      bad |= dd->bcast(dd->user, vr, n * Q * sizeof *vr, root);
    } else if (c->stage == STAGE_LEVEL) { /* level l of rows first.., packed */
      const double *v = c->res->s[c->si].v;
      if (root == dd->rank)
        for (size_t i = 0; i < n; i++)
          memcpy(c->pack + i * Q, v + ((first + i) * L + c->l) * Q, Q * sizeof *v);
      bad |= dd->bcast(dd->user, c->pack, n * Q * sizeof *c->pack, root);
      if (root != dd->rank)
        for (size_t i = 0; i < n; i++)
          memcpy(c->res->s[c->si].v + ((first + i) * L + c->l) * Q, c->pack + i * Q,
                 Q * sizeof *v);
    } else if (c->shared && b == 0) {
      bad |= dd->bcast(dd->user, c->check, n * sizeof *c->check, root);
    }
  }
  size_t total = 0;
  int stop = 0;
  for (int q = 0; q < dd->size && !bad; q++) {
    size_t v = atomic_load(&c->stage_nfe);
    int sq = atomic_load(&c->stop);
    bad |= dd->bcast(dd->user, &v, sizeof v, q);
    bad |= dd->bcast(dd->user, &sq, sizeof sq, q);
    total += v;
    stop |= sq;
  }
  if (!bad) {
    atomic_store(&c->stage_nfe, total);
    atomic_store(&c->stop, stop);
  }
  return bad;
}

/* The lowest item b that failed, as the stage's error: the solve, the paths and the
 * setting blamed. */
static int stage_failure(conv_run *c, size_t b, csde_err *err)
{
  const csde_conv_params *p = c->p;
  const int s = c->ist[b].status;
  const size_t f0 = b * c->bs, f1 = f0 + c->bs < c->N ? f0 + c->bs : c->N;
  /* the setting the solve blamed; else a failing answer is the model's */
  const char *pa = c->ist[b].err.param;
  if (!pa) pa = s == CSDE_EBADFUNC || s == CSDE_ENAN || s == CSDE_ERETRY ? CSDE_PARAM_MODEL
                                                                          : CSDE_PARAM_SOLVER;
  const char *msg = c->ist[b].err.msg[0] ? c->ist[b].err.msg : csde_strerror(s);
  if (c->stage == STAGE_REF_COMMON && c->shared) {
    csde_err_set(err, s, "reference %s (rtol %g), paths %zu..%zu: %s", p->ref_solver,
                 p->ref_rtol, f0, f1 - 1, msg);
    if (!c->ist[b].err.param) pa = s == CSDE_EBADFUNC || s == CSDE_ENAN ? CSDE_PARAM_MODEL
                                                                        : CSDE_CONV_PARAM_REFERENCE;
  } else if (c->stage == STAGE_REF_COMMON) {
    csde_err_set(err, s, "the exact reference, paths %zu..%zu: %s", f0, f1 - 1, msg);
  } else {
    csde_err_set(err, s, "solver %s, paths %zu..%zu: %s", p->solvers[c->si], f0, f1 - 1, msg);
  }
  return csde_err_blame(err, pa, s);
}

/* Run the stage's items over the threads; the agreed status: 0, ITEM_STOPPED, or the
 * lowest failing item's (in err). */
static int run_stage(conv_run *c, csde_err *err)
{
  const csde_conv_params *p = c->p;
  const size_t nb = c->nb;
  size_t mine = 0;
  for (size_t b = 0; b < nb; b++) {
    memset(&c->ist[b], 0, sizeof c->ist[b]);
    mine += item_owner(c, b) == c->rank;
  }
  size_t before = atomic_load(&c->nfe_items);
  atomic_store(&c->stage_nfe, 0);
  atomic_store(&c->items_left, mine);
  atomic_store(&c->paths_done, 0);
  double t0 = now();
  /* the lowest item that failed (nb: none): items above it are skipped, items below it
   * still run, so the failure reported does not depend on the threads or the schedule */
  atomic_long first_failed = (long)nb;
#ifdef _OPENMP
#pragma omp parallel num_threads(c->nt)
#endif
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1) nowait
#endif
    for (long bl = 0; bl < (long)nb; bl++) {
      const size_t b = (size_t)bl;
      if (item_owner(c, b) != c->rank) continue; /* another process's */
      item_status *o = &c->ist[b];
      if (bl > atomic_load(&first_failed) || atomic_load(&c->stop)) {
        o->status = ITEM_STOPPED; /* not run; a failure below or a stop ends the stage */
      } else {
        o->status = run_item(c, t, b, &o->err);
        if (o->status > 0) { /* first_failed = min(first_failed, b) */
          long cur = atomic_load(&first_failed);
          while (bl < cur && !atomic_compare_exchange_weak(&first_failed, &cur, bl)) {
          }
        }
        if (!o->status)
          atomic_fetch_add(&c->paths_done, b * c->bs + c->bs <= c->N ? c->bs : c->N - b * c->bs);
      }
      atomic_fetch_sub(&c->items_left, 1);
      if (t == 0) {
        maybe_estimate(c);
        report(c, CSDE_CONV_WORKING);
      }
    }
    /* the calling thread keeps the hook going while the others finish */
    if (t == 0 && c->nt > 1) {
      double nap = 5e-4;
      while (atomic_load(&c->items_left) > 0) {
        struct timespec ts = {0, (long)(nap * 1e9)};
        nanosleep(&ts, NULL);
        nap = fmin(2 * nap, 0.02);
        report(c, CSDE_CONV_WORKING);
      }
    }
  }
  if (p->dist && p->dist->size > 1 && share_stage(c))
    return csde_err_set(err, CSDE_EFAILED, "the processes' results could not be shared");
  /* every process: the stage's calls from all of them */
  atomic_store(&c->nfe_items, before + atomic_load(&c->stage_nfe));
  c->res->nfe = atomic_load(&c->nfe_items);
  if (!c->sec_ok && atomic_load(&c->stage_nfe) > 0) { /* too few steps to time one by one */
    c->sec_per_call = c->acc_calls ? c->acc_time / (double)c->acc_calls
                                   : (now() - t0) * (double)(c->nt < (int)nb ? (size_t)c->nt : nb) *
                                         (double)c->nproc / (double)atomic_load(&c->stage_nfe);
    c->sec_ok = 1;
  }
  for (size_t b = 0; b < nb; b++)
    if (c->ist[b].status > 0) return stage_failure(c, b, err);
  return atomic_load(&c->stop) ? ITEM_STOPPED : CSDE_SUCCESS;
}

/* Solver si's sizes, exact-law deviation and analysis of its first Lw levels. */
static int analyse_solver(conv_run *c, size_t si, size_t Lw, csde_err *err)
{
  const csde_conv_params *p = c->p;
  const size_t N = c->N, L = c->L, Q = c->Q;
  csde_conv_solver_result *r = &c->res->s[si];
  double sc = 0;
  for (size_t j = 0; j < N; j++) sc += c->scale[si * N + j];
  r->ref_scale = sc / (double)N;
  if (c->dev && !r->exact_dev) { /* plain Monte Carlo deviation of f(X_ref) from the exact law */
    r->exact_dev = calloc(Q, sizeof *r->exact_dev);
    if (!r->exact_dev) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
    double tot = 0, nrm = 0;
    for (size_t q = 0; q < Q; q++) {
      double m = 0, v2 = 0;
      for (size_t j = 0; j < N; j++) m += c->dev[(si * N + j) * Q + q];
      m /= (double)N;
      for (size_t j = 0; j < N; j++) {
        double dd = c->dev[(si * N + j) * Q + q] - m;
        v2 += dd * dd;
      }
      r->exact_dev[q] = m;
      nrm += m * m;
      tot += v2 / (double)(N - 1) / (double)N;
    }
    int rms = p->kind == CSDE_CONV_WEAK_MEAN;
    r->exact_dev_norm = sqrt(rms ? nrm / (double)Q : nrm);
    r->exact_dev_halfwidth = 1.96 * sqrt(rms ? tot / (double)Q : tot);
  }
  double *v = r->v;
  if (Lw < L) { /* the finished levels alone, [N][Lw][Q] */
    v = malloc(N * Lw * Q * sizeof *v);
    if (!v) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
    for (size_t i = 0; i < N; i++) memcpy(v + i * Lw * Q, r->v + i * L * Q, Lw * Q * sizeof *v);
  }
  csde_conv_data d;
  memset(&d, 0, sizeof d);
  d.N = N;
  d.L = Lw;
  d.Q = Q;
  d.v = v;
  d.vref = r->vref;
  d.vector = csde_conv_kind_is_weak(p->kind);
  d.rms_norm = p->kind == CSDE_CONV_WEAK_MEAN;
  d.h = c->res->h;
  d.level = c->res->level;
  d.theory = r->theory;
  d.float_floor = 1e-12 * r->ref_scale;
  d.ref_floor = c->exact_flow ? 1e-13 * r->ref_scale : c->shared ? c->res->ref_check : 0;
  d.ref_floor_name = c->shared ? "shared reference's error" : NULL;
  d.boot = p->boot ? p->boot : 1000;
  d.boot_seed = p->boot_seed;
  d.conf = p->conf > 0 ? p->conf : 0.95;
  d.threads = c->nt;
  d.dist = p->dist;
  csde_conv_fit_free(&r->fit);
  int s = csde_conv_analyse(&d, &r->fit, err);
  if (v != r->v) free(v);
  r->analysed = !s;
  return s;
}

/* The file's copy of the run so far (rank 0 writes, everyone agrees on the outcome). */
static int write_checkpoint(conv_run *c, csde_err *err)
{
  const csde_conv_params *p = c->p;
  int s = CSDE_SUCCESS;
  c->res->wall_seconds = now() - c->t_wall;
  if (p->file) s = csde_conv_file_write(p->file, c->res, p, "running", err);
  if (p->dist && p->dist->size > 1) {
    item_wire w;
    memset(&w, 0, sizeof w);
    w.status = s;
    if (s) snprintf(w.msg, sizeof w.msg, "%s", err->msg);
    if (p->dist->bcast(p->dist->user, &w, sizeof w, 0))
      return csde_err_set(err, CSDE_EFAILED, "the processes' results could not be shared");
    if (w.status && !s) csde_err_set(err, w.status, "%s", w.msg);
    s = w.status;
  }
  return s ? csde_err_blame(err, CSDE_CONV_PARAM_OUTPUT, s) : s;
}

/* ---- the run, step by step ---- */

/* The params a run can take: solvers that fit the process, the error kind, the levels,
 * the paths, the hooks, the problem, a shared reference's solver. */
static int conv_validate(const csde_conv_params *p, const csde_conv_hooks *hooks,
                         csde_err *err)
{
  const csde_problem *P0 = &p->P;
  const size_t ns = p->nsolvers;
  const int sde = csde_process_is_sde(P0->process);
  if (ns == 0 || ns > CSDE_CONV_MAXSOLVERS)
    return csde_err_blame(err, CSDE_PARAM_SOLVER,
                          csde_err_set(err, CSDE_EINVAL, "solvers: expected 1 to %d, got %zu",
                                       CSDE_CONV_MAXSOLVERS, ns));
  for (size_t s = 0; s < ns; s++) {
    const csde_solver_type *T = csde_solver_lookup(p->solvers[s]);
    if (!T)
      return csde_err_blame(err, CSDE_PARAM_SOLVER, csde_err_set(err, CSDE_EINVAL,
                            "solver '%s' is unknown", p->solvers[s]));
    if (!csde_solver_type_fits(T, P0->process))
      return csde_err_blame(err, CSDE_PARAM_SOLVER,
                            csde_err_set(err, CSDE_EINVAL, "solver '%s' does not fit process %s",
                                         p->solvers[s], csde_process_name(P0->process)));
  }
  if (p->kind == CSDE_CONV_ODE && sde)
    return csde_err_blame(err, CSDE_CONV_PARAM_KIND,
                          csde_err_set(err, CSDE_EINVAL,
                                       "error ode is the deterministic error of pf-ode and "
                                       "pf-ode-encode; %s takes strong, weak-mean or weak-cov",
                                       csde_process_name(P0->process)));
  if (!(p->k0 < p->k1) || p->k1 > CSDE_CONV_MAXLEVEL)
    return csde_err_blame(err, CSDE_CONV_PARAM_LEVELS,
                          csde_err_set(err, CSDE_EINVAL, "levels %u:%u: expected K0 < K1 <= %d",
                                       p->k0, p->k1, CSDE_CONV_MAXLEVEL));
  if (p->paths < 2)
    return csde_err_blame(err, CSDE_CONV_PARAM_PATHS, csde_err_set(err, CSDE_EINVAL,
                          "paths: expected at least 2, got %zu", p->paths));
  if (!hooks || !hooks->thread_alloc || !hooks->start)
    return csde_err_set(err, CSDE_EINVAL, "convergence run: missing hooks");
  if (P0->tau == 0 || P0->D == 0 || !P0->C || !P0->sched)
    return csde_err_set(err, CSDE_EINVAL, "convergence run: incomplete problem");
  if (p->ref == CSDE_CONV_REF_SHARED) { /* the solver can give this process a shared one */
    const csde_solver_type *T = p->ref_solver ? csde_solver_lookup(p->ref_solver) : NULL;
    const char *fits = sde ? "heun, em or sra1 (adaptive SDE steps on the same Brownian path)"
                           : "dopri5, rk45, rkck or rk8pd";
    if (!T || !(p->ref_rtol > 0) || !(p->ref_atol >= 0))
      return csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, csde_err_set(err, CSDE_EINVAL,
                            "reference fine:SOLVER:rtol=R: expected an adaptive solver (%s) and "
                            "R > 0", fits));
    if (!csde_solver_type_fits(T, P0->process) ||
        !(T->adaptive & (sde ? CSDE_ADAPT_SDE : CSDE_ADAPT_ODE)))
      return csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, csde_err_set(err, CSDE_EINVAL,
                            "reference fine:%s: %s cannot give %s a shared reference (it needs "
                            "an adaptive solver of %s on the same path: %s)", p->ref_solver,
                            p->ref_solver, csde_process_name(P0->process),
                            sde ? "the SDE" : "the ODE", fits));
  }
  return CSDE_SUCCESS;
}

/* The run's sizes and counters. */
static void conv_init(conv_run *c, const csde_conv_params *p, const csde_conv_hooks *hooks,
                      csde_conv_result *res)
{
  const csde_problem *P0 = &p->P;
  memset(c, 0, sizeof *c);
  c->p = p;
  c->hooks = hooks;
  c->res = res;
  c->ns = p->nsolvers;
  c->N = p->paths;
  c->tau = P0->tau;
  c->D = P0->D;
  c->per = c->tau * c->D;
  c->sde = csde_process_is_sde(P0->process);
  c->t_wall = now();
  c->nt = p->threads > 0 ? p->threads : 1;
  c->nproc = p->dist && p->dist->size > 1 ? p->dist->size : 1;
  c->rank = c->nproc > 1 ? p->dist->rank : 0;
  c->L = p->k1 - p->k0 + 1;
  c->Q = p->kind == CSDE_CONV_WEAK_MEAN ? c->tau * c->D
         : p->kind == CSDE_CONV_WEAK_COV ? c->tau * c->tau : 1;
  csde_problem_span(P0, &c->t_start, &c->t_end);
  atomic_init(&c->stop, 0);
  atomic_init(&c->nfe_items, 0);
  atomic_init(&c->stage_nfe, 0);
  atomic_init(&c->items_left, 0);
  atomic_init(&c->paths_done, 0);
  c->t_cur = NAN;
}

/* Per-thread contexts (the hooks' models and states), made serially. */
static int conv_threads(conv_run *c, csde_err *err)
{
  const int nt = c->nt;
  c->M = calloc((size_t)nt, sizeof *c->M);
  c->ust = calloc((size_t)nt, sizeof *c->ust);
  c->obs = calloc((size_t)nt, sizeof *c->obs);
  c->cur = calloc((size_t)nt, sizeof *c->cur);
  if (!c->M || !c->ust || !c->obs || !c->cur)
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  for (int t = 0; t < nt; t++) {
    atomic_init(&c->cur[t], 0);
    c->obs[t].c = c;
    c->obs[t].t = t;
  }
  for (int t = 0; t < nt; t++) {
    int s = c->hooks->thread_alloc(c->hooks->user, t, &c->M[t], &c->ust[t], err);
    if (s) return s;
    c->nalloc = t + 1;
  }
  return CSDE_SUCCESS;
}

/* The reference: exact, shared, or each solver's own fine level Rs[i]. */
static int conv_reference(conv_run *c, csde_err *err)
{
  const csde_conv_params *p = c->p;
  const char *why = NULL;
  int avail = csde_conv_exact_available(p, c->M[0], &why);
  if (p->ref == CSDE_CONV_REF_EXACT && !avail)
    return csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE,
                          csde_err_set(err, CSDE_EINVAL, "reference exact: %s", why));
  c->ref_exact = p->ref == CSDE_CONV_REF_EXACT || (p->ref == CSDE_CONV_REF_AUTO && avail);
  c->exact_flow = c->ref_exact && p->kind == CSDE_CONV_ODE;
  c->shared = p->ref == CSDE_CONV_REF_SHARED;
  c->exact_moments = csde_conv_kind_is_weak(p->kind) && c->M[0] && csde_model_is_gaussian(c->M[0]);
  c->fine = !c->exact_flow && !c->shared; /* each solver's own reference */
  for (size_t i = 0; i < c->ns && c->fine; i++) {
    unsigned R = p->ref_level ? p->ref_level : csde_conv_default_ref_level(p, p->solvers[i]);
    if (R <= p->k1)
      return csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, csde_err_set(err, CSDE_EINVAL,
                            "reference level %u is not finer than the finest level %u (expected "
                            "a level > %u)", R, p->k1, p->k1));
    if (R > 30)
      return csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, csde_err_set(err, CSDE_EINVAL,
                            "reference level %u is too deep (at most 30)", R));
    c->Rs[i] = R;
  }
  c->nsl = c->fine ? c->L + 2 : c->L; /* levels, then R-1 and R */
  return CSDE_SUCCESS;
}

/* Batches: at most p->batch paths, and up to 8 batches of at least 4 paths so that small
 * runs still spread over threads. A function of N alone: a path's last bits may depend on
 * the size of the batch it is solved in (BLAS blocking), never on threads. */
static void conv_batches(conv_run *c)
{
  const size_t N = c->N, maxb = c->p->batch ? c->p->batch : 64;
  size_t nb = (N + maxb - 1) / maxb, nb8 = (N + 3) / 4 < 8 ? (N + 3) / 4 : 8;
  if (nb < nb8) nb = nb8;
  c->bs = (N + nb - 1) / nb;
  c->nb = (N + c->bs - 1) / c->bs;
}

/* The result's arrays and the run's per-path ones. */
static int conv_alloc_results(conv_run *c, csde_err *err)
{
  const csde_conv_params *p = c->p;
  csde_conv_result *res = c->res;
  const size_t ns = c->ns, N = c->N, L = c->L, Q = c->Q, per = c->per;
  res->N = N;
  res->L = L;
  res->Q = Q;
  res->nsolvers = ns;
  res->k0 = p->k0;
  res->k1 = p->k1;
  res->ref_level = c->shared ? 0 : p->ref_level;
  res->ref_exact = c->ref_exact;
  res->s = calloc(ns, sizeof *res->s);
  res->h = malloc(L * sizeof *res->h);
  res->steps = malloc(L * sizeof *res->steps);
  res->level = malloc(L * sizeof *res->level);
  c->XR = malloc(N * per * sizeof *c->XR);
  c->scale = calloc(ns * N, sizeof *c->scale);
  c->ist = calloc(c->nb, sizeof *c->ist);
  c->pack = malloc(c->bs * (Q + 1) * sizeof *c->pack);
  c->check = calloc(c->bs, sizeof *c->check);
  if (c->exact_moments) {
    c->fexact = malloc(Q * sizeof *c->fexact);
    c->dev = malloc(ns * N * Q * sizeof *c->dev);
  }
  if (!res->s || !res->h || !res->steps || !res->level || !c->XR || !c->scale || !c->ist ||
      !c->pack || !c->check || (c->exact_moments && (!c->fexact || !c->dev)))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the reference states (%zu x %zu) "
                        "and the per-path values", N, per);
  for (size_t k = 0; k < L; k++) {
    res->level[k] = p->k0 + (unsigned)k;
    res->steps[k] = (size_t)1 << res->level[k];
    res->h[k] = fabs(c->t_end - c->t_start) / (double)res->steps[k];
  }
  for (size_t i = 0; i < ns; i++) {
    csde_conv_solver_result *r = &res->s[i];
    snprintf(r->name, sizeof r->name, "%s", p->solvers[i]);
    r->theory = csde_solver_type_order(csde_solver_lookup(p->solvers[i]),
                                       csde_conv_kind_order_key(p->kind));
    r->v = malloc(N * L * Q * sizeof *r->v);
    if (c->fine) r->vref = malloc(N * Q * sizeof *r->vref);
    if (!r->v || (c->fine && !r->vref))
      return csde_err_set(err, CSDE_ENOMEM, "out of memory for %zu x %zu x %zu per-path values",
                          N, L, Q);
    for (size_t j = 0; j < N * L * Q; j++) r->v[j] = NAN; /* a level not run reads NaN */
  }
  return CSDE_SUCCESS;
}

/* Weak errors on the gaussian model: f at the end time from the exact law. */
static int conv_exact_moments(conv_run *c, csde_err *err)
{
  const size_t tau = c->tau, per = c->per;
  if (!c->exact_moments) return CSDE_SUCCESS;
  double *mean = malloc(per * sizeof *mean), cov[64 * 64], *cv = tau <= 64 ? cov : NULL;
  double *cvh = cv ? NULL : malloc(tau * tau * sizeof *cvh);
  if (!cv) cv = cvh;
  if (!mean || !cv) {
    free(mean);
    free(cvh);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  }
  int s = csde_model_gaussian_marginal(c->M[0], c->t_end, mean, cv, err);
  if (!s) {
    if (c->p->kind == CSDE_CONV_WEAK_MEAN) {
      memcpy(c->fexact, mean, per * sizeof *mean);
    } else { /* E F = Sigma + (1/D) sum_p m_p m_p^T */
      frame_moment(mean, tau, c->D, c->fexact);
      for (size_t q = 0; q < tau * tau; q++) c->fexact[q] += cv[q];
    }
  }
  free(mean);
  free(cvh);
  return s;
}

/* The steps of slot l of solver i: its levels, then R-1 and R (fine). */
static size_t slot_steps(const conv_run *c, size_t i, size_t l)
{
  const unsigned R = c->Rs[i];
  return (size_t)1 << (l < c->L ? c->res->level[l] : l == c->L ? R - 1 : R);
}

/* Thread t's solvers (every solver at every slot, and the shared reference at rtol and
 * rtol / 10) and its buffer. */
static int conv_thread_solvers(conv_run *c, int t, csde_err *err)
{
  const csde_conv_params *p = c->p;
  const size_t ns = c->ns, nbuf = 3 * c->bs * c->per + 2 * c->tau * c->tau;
  int s = CSDE_SUCCESS;
  if (!(c->buf[t] = malloc(nbuf * sizeof **c->buf)))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  csde_problem Pt = p->P;
  Pt.model = c->M[t];
  Pt.batch = c->bs;
  csde_solve_params par = csde_solve_default_params();
  par.grid = p->grid ? p->grid : "uniform";
  par.seed = p->seed;
  par.threads = 1;
  par.observer = conv_observe;
  par.observer_user = &c->obs[t];
  if (c->sde) par.noise = CSDE_NOISE_PATH; /* one Brownian tree for every level */
  for (size_t i = 0; i < ns && !s; i++)
    for (size_t l = 0; l < c->nsl && !s; l++) {
      par.solver = p->solvers[i];
      par.steps = slot_steps(c, i, l);
      s = csde_solver_alloc(&c->S[((size_t)t * ns + i) * c->nsl + l], &Pt, &par, err);
    }
  for (int k = 0; k < 2 && c->shared && !s; k++) { /* rtol, and rtol / 10 for the check */
    par.solver = p->ref_solver;
    par.steps = 0;
    par.rtol = k ? p->ref_rtol / 10 : p->ref_rtol;
    par.atol = k ? p->ref_atol / 10 : p->ref_atol;
    if (!(par.atol > 0)) par.atol = 0;
    s = csde_solver_alloc(&c->Sref[2 * t + k], &Pt, &par, err);
    if (s) s = csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, s);
  }
  return s;
}

static int conv_solvers(conv_run *c, csde_err *err)
{
  const int nt = c->nt;
  c->S = calloc((size_t)nt * c->ns * c->nsl, sizeof *c->S);
  c->Sref = calloc((size_t)nt * 2, sizeof *c->Sref);
  c->buf = calloc((size_t)nt, sizeof *c->buf);
  if (!c->S || !c->Sref || !c->buf) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  for (int t = 0; t < nt; t++) {
    int s = conv_thread_solvers(c, t, err);
    if (s) return s;
  }
  return CSDE_SUCCESS;
}

/* The reference in words, for the output. */
static void conv_describe_reference(conv_run *c)
{
  const csde_conv_params *p = c->p;
  csde_conv_result *res = c->res;
  if (c->exact_flow)
    snprintf(res->reference, sizeof res->reference, "exact: the gaussian model's PF-ODE flow");
  else if (c->shared)
    snprintf(res->reference, sizeof res->reference,
             "fine: %s at rtol %g, atol %g (adaptive) on the same path, one reference per path "
             "shared by every solver", p->ref_solver, p->ref_rtol, p->ref_atol);
  else if (c->exact_moments && c->ref_exact)
    snprintf(res->reference, sizeof res->reference,
             "exact: the gaussian moments check a fine solve of each solver on the same path "
             "(the control variate)");
  else
    snprintf(res->reference, sizeof res->reference,
             "fine: each solver at its reference level on the same path");
  if (c->shared) {
    res->ref_shared = 1;
    snprintf(res->ref_solver, sizeof res->ref_solver, "%s", p->ref_solver);
    res->ref_rtol = p->ref_rtol;
    res->ref_atol = p->ref_atol;
    res->ref_check_paths = c->bs < c->N ? c->bs : c->N;
  }
  for (size_t i = 0; i < c->ns; i++) {
    res->s[i].ref_level = c->Rs[i];
    if (c->exact_flow)
      snprintf(res->s[i].reference, sizeof res->s[i].reference, "exact flow");
    else if (c->shared)
      snprintf(res->s[i].reference, sizeof res->s[i].reference,
               "%s at rtol %g (shared), same path", p->ref_solver, p->ref_rtol);
    else
      snprintf(res->s[i].reference, sizeof res->s[i].reference,
               "%s at level %u (2^%u steps), same path", p->solvers[i], c->Rs[i], c->Rs[i]);
  }
}

/* The estimator in words, for the output. */
static void conv_describe_estimator(conv_run *c)
{
  const csde_conv_kind kind = c->p->kind;
  csde_conv_result *res = c->res;
  if (kind == CSDE_CONV_STRONG || kind == CSDE_CONV_ODE)
    snprintf(res->estimator, sizeof res->estimator,
             "mean over paths of ||X_h - X_ref|| at t = %g, ||.|| the RMS over the %zu "
             "entries of a sample; RMS variant sqrt(mean ||X_h - X_ref||^2) beside it",
             c->t_end, c->per);
  else
    snprintf(res->estimator, sizeof res->estimator,
             "same-path control variate ||mean over paths of f(X_h) - f(X_ref)||, f = %s; "
             "the reference's own bias is not added: %s",
             kind == CSDE_CONV_WEAK_MEAN
                 ? "X (RMS norm over the tau x D entries of the mean)"
                 : "the frame second moment (1/D) sum_p x_p x_p^T (Frobenius norm of the "
                   "tau x tau difference)",
             c->shared ? "its estimate (rtol against rtol / 10 on the first batch) must be <= "
                         "1/10 of the finest level's error"
                       : "its Richardson estimate (levels R-1 vs R on the same paths) must be "
                         "<= 1/10 of the finest level's error");
}

/* The plan: every fixed-step solve's calls (an adaptive reference's come later), told to
 * the progress hook and written to the file. */
static int conv_plan(conv_run *c, csde_err *err)
{
  for (size_t i = 0; i < c->ns; i++) {
    const size_t nps = csde_solver_type_nfe_per_step(csde_solver_lookup(c->p->solvers[i]));
    for (size_t l = 0; l < c->nsl; l++) c->nfe_fixed += c->nb * nps * slot_steps(c, i, l);
  }
  c->nfe_total = c->nfe_fixed;
  c->ref_pending = c->shared;
  c->stage = c->exact_flow || c->shared ? STAGE_REF_COMMON : STAGE_REF_SOLVER;
  c->si = 0;
  report(c, CSDE_CONV_PLAN);
  int s = write_checkpoint(c, err);
  if (!s) c->planned = 1;
  return s;
}

/* A stage finished for every path: what it gives the result (and the analysis of a
 * solver whose levels are done). */
static int conv_stage_done(conv_run *c, csde_err *err)
{
  csde_conv_result *res = c->res;
  const size_t ns = c->ns, N = c->N, Q = c->Q;
  if (c->stage == STAGE_REF_COMMON) {
    for (size_t i = 1; i < ns; i++) { /* one reference for every solver */
      memcpy(c->scale + i * N, c->scale, N * sizeof *c->scale);
      if (c->dev) memcpy(c->dev + i * N * Q, c->dev, N * Q * sizeof *c->dev);
    }
    for (size_t i = 0; i < ns; i++) res->s[i].ref_done = 1;
    if (c->shared) {
      double sum = 0;
      for (size_t i = 0; i < res->ref_check_paths; i++) sum += c->check[i];
      res->ref_check = sum / (double)res->ref_check_paths;
      res->ref_nfe = atomic_load(&c->stage_nfe);
      c->nfe_total = c->nfe_fixed + res->ref_nfe;
      c->nfe_est = c->ref_pending = 0;
    }
  } else if (c->stage == STAGE_REF_SOLVER) {
    res->s[c->si].ref_done = 1;
  } else {
    res->s[c->si].levels_done = c->l + 1;
    if (c->l + 1 == c->L) return analyse_solver(c, c->si, c->L, err);
  }
  return CSDE_SUCCESS;
}

/* The stages in order: the common reference, then solver by solver its own reference and
 * its levels. */
static int conv_stages(conv_run *c, csde_err *err)
{
  const int common = c->exact_flow || c->shared, fine = c->fine;
  const size_t per_solver = c->L + (fine ? 1 : 0);
  const size_t nstages = (common ? 1 : 0) + c->ns * per_solver;
  int s = CSDE_SUCCESS;
  for (size_t k = 0; k < nstages && !s; k++) {
    if (common && k == 0) {
      c->stage = STAGE_REF_COMMON;
      c->si = c->l = 0;
    } else {
      const size_t j = k - (common ? 1 : 0), w = j % per_solver;
      c->si = j / per_solver;
      c->stage = fine && w == 0 ? STAGE_REF_SOLVER : STAGE_LEVEL;
      c->l = fine ? (w ? w - 1 : 0) : w;
    }
    if ((s = run_stage(c, err)) || (s = conv_stage_done(c, err)) ||
        (s = write_checkpoint(c, err)))
      break;
    report(c, CSDE_CONV_STAGE);
    maybe_estimate(c);
  }
  return s;
}

/* The end of the stages: a stop in words, and a run that stopped or failed analysed as
 * far as it got; the common reference's states kept. */
static int conv_finish(conv_run *c, int s, csde_err *err)
{
  const csde_conv_params *p = c->p;
  csde_conv_result *res = c->res;
  if (s == ITEM_STOPPED) {
    s = csde_err_set(err, CSDE_EFAILED, "stopped (the progress hook asked) during %s %s%s",
                     c->stage == STAGE_REF_COMMON ? "the reference" : "solver",
                     c->stage == STAGE_REF_COMMON ? (c->shared ? p->ref_solver : "(exact)")
                                                  : p->solvers[c->si],
                     c->stage == STAGE_LEVEL ? ", a level" : c->stage == STAGE_REF_SOLVER
                                                                ? ", its reference" : "");
  }
  res->complete = !s;
  for (size_t i = 0; i < c->ns && s; i++) {
    csde_conv_solver_result *r = &res->s[i];
    if (!r->analysed && r->levels_done >= 2) {
      csde_err e2;
      csde_err_clear(&e2);
      analyse_solver(c, i, r->levels_done, &e2);
    }
  }
  if (c->exact_flow || c->shared) { /* the one reference of every solver, kept */
    res->xref = c->XR;
    c->XR = NULL;
  }
  return s;
}

/* Everything the run made (the result excepted). */
static void conv_release(conv_run *c)
{
  const int nt = c->nt;
  if (c->S)
    for (size_t j = 0; j < (size_t)nt * c->ns * c->nsl; j++) csde_solver_free(c->S[j]);
  if (c->Sref)
    for (int j = 0; j < 2 * nt; j++) csde_solver_free(c->Sref[j]);
  free(c->S);
  free(c->Sref);
  if (c->buf)
    for (int t = 0; t < nt; t++) free(c->buf[t]);
  free(c->buf);
  for (int t = 0; t < c->nalloc; t++)
    if (c->hooks->thread_free) c->hooks->thread_free(c->hooks->user, c->ust[t]);
  void *arrays[] = {c->M,     c->ust, c->obs, c->cur,  c->ist, c->fexact,
                    c->scale, c->dev, c->XR,  c->pack, c->check};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}

int csde_conv_run(const csde_conv_params *p, const csde_conv_hooks *hooks,
                  csde_conv_result *res, csde_err *err)
{
  memset(res, 0, sizeof *res);
  int s = conv_validate(p, hooks, err);
  if (s) return s;
  conv_run cr, *c = &cr;
  conv_init(c, p, hooks, res);
  if (!(s = conv_threads(c, err)) && !(s = conv_reference(c, err))) {
    conv_batches(c);
    if (!(s = conv_alloc_results(c, err)) && !(s = conv_exact_moments(c, err)) &&
        !(s = conv_solvers(c, err))) {
      conv_describe_reference(c);
      conv_describe_estimator(c);
      if (!(s = conv_plan(c, err))) s = conv_finish(c, conv_stages(c, err), err);
    }
  }
  conv_release(c);
  res->wall_seconds = now() - c->t_wall;
  if (s && !c->planned) csde_conv_result_free(res); /* it never started */
  return s;
}
