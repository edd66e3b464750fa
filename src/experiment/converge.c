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

/* ---- names ---- */

static const char *const kind_names[] = {"strong", "weak-mean", "weak-cov", "ode", NULL};

const char *csde_conv_kind_name(csde_conv_kind k)
{
  return (unsigned)k < 4 ? kind_names[k] : "?";
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
  if (m < 2) {
    snprintf(f->fit, sizeof f->fit, "no fit: fewer than 2 levels used");
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
                                       "log e = c + p log h + d h + d2 h^2 (corrections "
                                       "resolved)"};
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
  free(f->err);
  free(f->err_lo);
  free(f->err_hi);
  free(f->rms);
  free(f->rms_lo);
  free(f->rms_hi);
  free(f->halfwidth);
  free(f->mc_noise);
  free(f->log_sd);
  free(f->slope);
  free(f->slope_lo);
  free(f->slope_hi);
  free(f->decision);
  free(f->reason);
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
  int scalar = !d->vector, st = CSDE_SUCCESS;
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
  const size_t nr = L + 1; /* per replicate: L levels and the reference check */
  double *E = malloc(B * nr * sizeof *E), *R2 = scalar ? malloc(B * L * sizeof *R2) : NULL;
  double *tmp = malloc((2 * B + 1) * sizeof *tmp), *vals = tmp ? tmp + B + 1 : NULL;
  double *m = malloc(Q * sizeof *m);
  double *EL = malloc(B * L * sizeof *EL);
  int nth = d->threads > 0 ? d->threads : 1;
  int *counts = malloc((size_t)nth * N * sizeof *counts);
  double *mth = malloc((size_t)nth * Q * sizeof *mth), *uni = malloc((size_t)nth * N * sizeof *uni);
  if (!f->err || !f->err_lo || !f->err_hi || !f->halfwidth || !f->log_sd || !f->slope ||
      !f->slope_lo || !f->slope_hi || !f->decision || !f->reason ||
      (scalar && (!f->rms || !f->rms_lo || !f->rms_hi)) || (!scalar && !f->mc_noise) || !E ||
      (scalar && !R2) || !tmp || !m || !EL || !counts || !mth || !uni) {
    csde_conv_fit_free(f);
    st = csde_err_set(err, CSDE_ENOMEM, "convergence analysis: out of memory");
    goto done;
  }
#undef ALLOC

  /* the estimates from all paths */
  const size_t stride = L * Q;
  for (size_t k = 0; k < L; k++)
    estimate(d, d->v + k * Q, stride, NULL, m, &f->err[k], scalar ? &f->rms[k] : NULL);
  double dref = NAN;
  if (d->vref) estimate(d, d->vref, Q, NULL, m, &dref, NULL);

  /* the bootstrap: replicate b resamples N whole paths with the uniforms (seed, b); split
   * over processes, rank q draws b in [q B / size, (q + 1) B / size) */
  const int nproc = d->dist && d->dist->size > 1 ? d->dist->size : 1,
            me = nproc > 1 ? d->dist->rank : 0;
  const long b0 = (long)((size_t)me * B / (size_t)nproc),
             b1 = (long)((size_t)(me + 1) * B / (size_t)nproc);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nth)
#endif
  for (long bl = b0; bl < b1; bl++) {
    size_t b = (size_t)bl;
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    int *c = counts + (size_t)t * N;
    double *u = uni + (size_t)t * N, *mm = mth + (size_t)t * Q;
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
  for (int q = 0; nproc > 1 && q < nproc; q++) { /* every share from its rank, in order */
    const size_t q0 = (size_t)q * B / (size_t)nproc, q1 = (size_t)(q + 1) * B / (size_t)nproc;
    int bad = d->dist->bcast(d->dist->user, E + q0 * nr, (q1 - q0) * nr * sizeof *E, q);
    if (scalar) bad |= d->dist->bcast(d->dist->user, R2 + q0 * L, (q1 - q0) * L * sizeof *R2, q);
    if (bad) {
      csde_conv_fit_free(f);
      st = csde_err_set(err, CSDE_EFAILED, "convergence analysis: the replicates could not be "
                                           "shared");
      goto done;
    }
  }
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < L; k++) EL[b * L + k] = E[b * nr + k];

  const double alpha = (1 - d->conf) / 2;
  for (size_t k = 0; k < L; k++) {
    f->err_lo[k] = quantile(E + k, B, nr, alpha, tmp);
    f->err_hi[k] = quantile(E + k, B, nr, 1 - alpha, tmp);
    f->halfwidth[k] = (f->err_hi[k] - f->err_lo[k]) / 2;
    for (size_t b = 0; b < B; b++) vals[b] = E[b * nr + k] > 0 ? log(E[b * nr + k]) : NAN;
    f->log_sd[k] = stdev(vals, B, 1);
    if (scalar) {
      f->rms_lo[k] = quantile(R2 + k, B, L, alpha, tmp);
      f->rms_hi[k] = quantile(R2 + k, B, L, 1 - alpha, tmp);
    } else { /* the noise level of the norm: sqrt(sum_q Var(v_q) / N), in the same norm */
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
      f->mc_noise[k] = sqrt(d->rms_norm ? tot / (double)Q : tot);
    }
  }
  for (size_t k = 0; k + 1 < L; k++) {
    f->slope[k] = slope_of(f->err[k], f->err[k + 1], d->h[k], d->h[k + 1]);
    for (size_t b = 0; b < B; b++)
      vals[b] = slope_of(E[b * nr + k], E[b * nr + k + 1], d->h[k], d->h[k + 1]);
    f->slope_lo[k] = quantile(vals, B, 1, alpha, tmp);
    f->slope_hi[k] = quantile(vals, B, 1, 1 - alpha, tmp);
  }

  /* the reference check: the error of the reference by Richardson from level R-1 */
  double p = d->theory > 0 ? d->theory : 1;
  f->ref_error = d->ref_floor > 0 ? d->ref_floor : 0;
  f->ref_diff = f->ref_diff_hi = NAN;
  f->ref_ratio = NAN;
  f->ref_ok = 1;
  if (d->vref) {
    f->have_ref_check = 1;
    f->ref_diff = dref;
    f->ref_diff_hi = quantile(E + L, B, nr, 1 - alpha, tmp);
    double up = isfinite(f->ref_diff_hi) ? fmax(f->ref_diff_hi, dref) : dref;
    f->ref_error = up / (pow(2.0, p) - 1);
  }
  if (f->ref_error > 0) {
    f->ref_ratio = f->err[L - 1] / f->ref_error;
    f->ref_ok = f->ref_ratio >= CSDE_CONV_MINRATIO;
  }
  f->floor = fmax(d->float_floor, f->ref_error);
  snprintf(f->floor_name, sizeof f->floor_name, "%s",
           f->ref_error > d->float_floor ? (d->vref ? "reference error" : "exact reference")
                                         : "float64 round-off");

  /* screening */
  for (size_t k = 0; k < L; k++) {
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
  /* pre-asymptotic coarse levels: the slope from a level j to the next remaining one
   * against the weighted slope p* of all the finer remaining levels, tested from the
   * finest j that leaves 3 levels to the coarse end; the first j off p* and every level
   * coarser than it are dropped (a level that happens to lie on p* between two that do
   * not is no more asymptotic than they are) */
  {
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
        for (size_t k = 0; k < L; k++) ev[k] = E[r * nr + k];
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
  int use[CSDE_CONV_MAXLEVEL + 1];
  f->nused = 0;
  for (size_t k = 0; k < L; k++) {
    use[k] = f->decision[k] == CSDE_CONV_USED;
    f->nused += (size_t)use[k];
    if (use[k]) snprintf(f->reason[k], sizeof f->reason[k], "used");
  }
  csde_conv_fit_order(L, d->h, f->err, EL, B, use, d->conf, f->ref_error, f);

done:
  free(E);
  free(R2);
  free(tmp);
  free(m);
  free(EL);
  free(counts);
  free(mth);
  free(uni);
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
  p.paths = 16;
  p.ref = CSDE_CONV_REF_AUTO;
  p.threads = 1;
  p.batch = 64;
  p.boot = 1000;
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
  free(r->s);
  free(r->h);
  free(r->steps);
  free(r->level);
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
                                      CSDE_PARAM_STEPS, CSDE_PARAM_TOLERANCES};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (!strcmp(name, known[i])) return known[i];
  return NULL;
}

int csde_conv_run(const csde_conv_params *p, const csde_conv_hooks *hooks,
                  csde_conv_result *res, csde_err *err)
{
  memset(res, 0, sizeof *res);
  const csde_problem *P0 = &p->P;
  const size_t ns = p->nsolvers, N = p->paths, tau = P0->tau, D = P0->D;
  const int sde = csde_process_is_sde(P0->process);
  double t_wall = now();
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
  if (N < 2)
    return csde_err_blame(err, CSDE_CONV_PARAM_PATHS, csde_err_set(err, CSDE_EINVAL,
                          "paths: expected at least 2, got %zu", N));
  if (!hooks || !hooks->thread_alloc || !hooks->start)
    return csde_err_set(err, CSDE_EINVAL, "convergence run: missing hooks");
  if (tau == 0 || D == 0 || !P0->C || !P0->sched)
    return csde_err_set(err, CSDE_EINVAL, "convergence run: incomplete problem");

  const int nt = p->threads > 0 ? p->threads : 1;
  const size_t L = p->k1 - p->k0 + 1;
  const size_t Q = p->kind == CSDE_CONV_WEAK_MEAN ? tau * D
                   : p->kind == CSDE_CONV_WEAK_COV ? tau * tau : 1;
  const size_t per = tau * D;
  double t_start, t_end;
  csde_problem_span(P0, &t_start, &t_end);

  /* per-thread contexts, made serially */
  const csde_model **M = calloc((size_t)nt, sizeof *M);
  void **ust = calloc((size_t)nt, sizeof *ust);
  csde_solver **S = NULL;
  double **buf = NULL;
  item_status *ist = NULL;
  double *fexact = NULL, *scale = NULL, *dev = NULL;
  size_t nsl = 0;
  int s = CSDE_SUCCESS, nalloc = 0;
  if (!M || !ust) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
    goto done;
  }
  for (int t = 0; t < nt; t++) {
    if ((s = hooks->thread_alloc(hooks->user, t, &M[t], &ust[t], err))) goto done;
    nalloc = t + 1;
  }

  /* the reference */
  const char *why = NULL;
  int avail = csde_conv_exact_available(p, M[0], &why);
  if (p->ref == CSDE_CONV_REF_EXACT && !avail) {
    s = csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE,
                       csde_err_set(err, CSDE_EINVAL, "reference exact: %s", why));
    goto done;
  }
  int ref_exact = p->ref == CSDE_CONV_REF_EXACT || (p->ref == CSDE_CONV_REF_AUTO && avail);
  int exact_flow = ref_exact && p->kind == CSDE_CONV_ODE;
  int exact_moments = csde_conv_kind_is_weak(p->kind) && M[0] && csde_model_is_gaussian(M[0]);
  unsigned Rs[CSDE_CONV_MAXSOLVERS] = {0}; /* each solver's reference level */
  for (size_t i = 0; i < ns && !exact_flow; i++) {
    unsigned R = p->ref_level ? p->ref_level : csde_conv_default_ref_level(p, p->solvers[i]);
    if (R <= p->k1) {
      s = csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, csde_err_set(err, CSDE_EINVAL,
                         "reference level %u is not finer than the finest level %u (expected "
                         "a level > %u)", R, p->k1, p->k1));
      goto done;
    }
    if (R > 30) {
      s = csde_err_blame(err, CSDE_CONV_PARAM_REFERENCE, csde_err_set(err, CSDE_EINVAL,
                         "reference level %u is too deep (at most 30)", R));
      goto done;
    }
    Rs[i] = R;
  }
  nsl = exact_flow ? L : L + 2; /* levels, then R-1 and R */

  /* batches: at most p->batch paths, and up to 8 batches of at least 4 paths so that
   * small runs still spread over threads. A function of N alone: a path's last bits may
   * depend on the size of the batch it is solved in (BLAS blocking), never on threads. */
  const size_t maxb = p->batch ? p->batch : 64;
  size_t nb = (N + maxb - 1) / maxb, nb8 = (N + 3) / 4 < 8 ? (N + 3) / 4 : 8;
  if (nb < nb8) nb = nb8;
  const size_t bs = (N + nb - 1) / nb;
  nb = (N + bs - 1) / bs;

  /* results */
  res->N = N;
  res->L = L;
  res->Q = Q;
  res->nsolvers = ns;
  res->k0 = p->k0;
  res->k1 = p->k1;
  res->ref_level = p->ref_level;
  res->ref_exact = ref_exact;
  res->s = calloc(ns, sizeof *res->s);
  res->h = malloc(L * sizeof *res->h);
  res->steps = malloc(L * sizeof *res->steps);
  res->level = malloc(L * sizeof *res->level);
  scale = calloc(ns * N, sizeof *scale);
  if (exact_moments) {
    fexact = malloc(Q * sizeof *fexact);
    dev = malloc(ns * N * Q * sizeof *dev);
  }
  ist = calloc(ns * nb, sizeof *ist);
  if (!res->s || !res->h || !res->steps || !res->level || !scale || !ist ||
      (exact_moments && (!fexact || !dev))) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t k = 0; k < L; k++) {
    res->level[k] = p->k0 + (unsigned)k;
    res->steps[k] = (size_t)1 << res->level[k];
    res->h[k] = fabs(t_end - t_start) / (double)res->steps[k];
  }
  for (size_t i = 0; i < ns; i++) {
    csde_conv_solver_result *r = &res->s[i];
    snprintf(r->name, sizeof r->name, "%s", p->solvers[i]);
    r->theory = csde_solver_type_order(csde_solver_lookup(p->solvers[i]),
                                       csde_conv_kind_order_key(p->kind));
    r->v = malloc(N * L * Q * sizeof *r->v);
    if (!exact_flow) r->vref = malloc(N * Q * sizeof *r->vref);
    if (!r->v || (!exact_flow && !r->vref)) {
      s = csde_err_set(err, CSDE_ENOMEM, "out of memory for %zu x %zu x %zu per-path values",
                       N, L, Q);
      goto done;
    }
  }
  if (exact_moments) { /* f at the end time from the exact law */
    double *mean = malloc(per * sizeof *mean), cov[64 * 64], *cv = tau <= 64 ? cov : NULL;
    double *cvh = cv ? NULL : malloc(tau * tau * sizeof *cvh);
    if (!cv) cv = cvh;
    if (!mean || !cv) {
      free(mean);
      free(cvh);
      s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
      goto done;
    }
    s = csde_model_gaussian_marginal(M[0], t_end, mean, cv, err);
    if (!s) {
      if (p->kind == CSDE_CONV_WEAK_MEAN) {
        memcpy(fexact, mean, per * sizeof *mean);
      } else { /* E F = Sigma + (1/D) sum_p m_p m_p^T */
        frame_moment(mean, tau, D, fexact);
        for (size_t q = 0; q < tau * tau; q++) fexact[q] += cv[q];
      }
    }
    free(mean);
    free(cvh);
    if (s) goto done;
  }

  /* per-thread solvers and buffers */
  S = calloc((size_t)nt * ns * nsl, sizeof *S);
  buf = calloc((size_t)nt, sizeof *buf);
  if (!S || !buf) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
    goto done;
  }
  const size_t nbuf = 3 * bs * per + 2 * tau * tau;
  for (int t = 0; t < nt && !s; t++) {
    buf[t] = malloc(nbuf * sizeof **buf);
    if (!buf[t]) {
      s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
      break;
    }
    csde_problem Pt = *P0;
    Pt.model = M[t];
    Pt.batch = bs;
    for (size_t i = 0; i < ns && !s; i++)
      for (size_t l = 0; l < nsl && !s; l++) {
        csde_solve_params par = csde_solve_default_params();
        par.solver = p->solvers[i];
        const unsigned R = Rs[i];
        par.steps = (size_t)1 << (l < L ? res->level[l] : l == L ? R - 1 : R);
        par.grid = p->grid ? p->grid : "uniform";
        par.seed = p->seed;
        par.threads = 1;
        if (sde) par.noise = CSDE_NOISE_PATH; /* one Brownian tree for every level */
        s = csde_solver_alloc(&S[((size_t)t * ns + i) * nsl + l], &Pt, &par, err);
      }
  }
  if (s) goto done;

  /* the cost of each solve, for the progress fraction */
  double cost_total = 0, cost_done = 0;
  double *cost = malloc(ns * nsl * sizeof *cost);
  size_t *paths_done = calloc(ns, sizeof *paths_done);
  if (!cost || !paths_done) {
    free(cost);
    free(paths_done);
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < ns; i++)
    for (size_t l = 0; l < nsl; l++) {
      const unsigned R = Rs[i];
      double steps = (double)((size_t)1 << (l < L ? res->level[l] : l == L ? R - 1 : R));
      cost[i * nsl + l] = steps * csde_solver_type_nfe_per_step(csde_solver_lookup(p->solvers[i])) +
                          (sde ? 0.5 * (double)((size_t)1 << R) : 0);
      cost_total += (double)nb * cost[i * nsl + l];
    }
  size_t nfe_total = 0;
  const long nitems = (long)(ns * nb);
  /* the lowest item that failed (nitems: none), shared by the threads: items above it
   * are skipped, items below it still run, so the failure reported (the lowest) does not
   * depend on the thread count or the schedule */
  atomic_long first_failed = nitems;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(+ : nfe_total)
#endif
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    double *x0 = buf[t], *xr = x0 + bs * per, *x = xr + bs * per;
    double *Fr = x + bs * per, *Fx = Fr + tau * tau;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (long it = 0; it < nitems; it++) {
      if (it > atomic_load(&first_failed)) continue;
      if (p->dist && it % p->dist->size != p->dist->rank) continue; /* another process's */
      const size_t si = (size_t)it / nb, b = (size_t)it % nb, first = b * bs;
      const size_t n = first + bs <= N ? bs : N - first;
      item_status *o = &ist[it];
      csde_err *e = &o->err;
      csde_conv_solver_result *r = &res->s[si];
      csde_solver **Ss = S + ((size_t)t * ns + si) * nsl;
      csde_solve_stats st;
      int stt = hooks->start(hooks->user, ust[t], first, bs, x0, e);
      /* the reference */
      if (!stt && exact_flow) {
        stt = csde_model_gaussian_flow_apply(M[t], t_start, t_end, bs, x0, xr, e);
      } else if (!stt) {
        memcpy(xr, x0, bs * per * sizeof *xr);
        csde_solver_set_seed(Ss[L + 1], p->seed, first);
        memset(&st, 0, sizeof st);
        stt = csde_solver_run(Ss[L + 1], xr, &st, e);
        nfe_total += st.nfe;
      }
      if (!stt && !exact_flow) {
#ifdef _OPENMP
#pragma omp critical(csde_conv_progress)
#endif
        {
          cost_done += cost[si * nsl + L + 1];
          if (hooks->progress) {
            csde_conv_progress pr = {si, p->solvers[si], Rs[si], paths_done[si], N,
                                     cost_done / cost_total, now() - t_wall};
            hooks->progress(hooks->user, &pr);
          }
        }
      }
      for (size_t i = 0; i < n && !stt; i++) { /* sizes and the exact-law deviation */
        const double *ri = xr + i * per;
        double sc;
        if (p->kind == CSDE_CONV_WEAK_COV) {
          frame_moment(ri, tau, D, Fr);
          double s2 = 0;
          for (size_t q = 0; q < tau * tau; q++) s2 += Fr[q] * Fr[q];
          sc = sqrt(s2);
          if (dev)
            for (size_t q = 0; q < Q; q++) dev[(si * N + first + i) * Q + q] = Fr[q] - fexact[q];
        } else {
          double s2 = 0;
          for (size_t j = 0; j < per; j++) s2 += ri[j] * ri[j];
          sc = sqrt(s2 / (double)per);
          if (dev)
            for (size_t q = 0; q < Q; q++) dev[(si * N + first + i) * Q + q] = ri[q] - fexact[q];
        }
        scale[si * N + first + i] = sc;
      }
      /* the levels and the reference check */
      for (size_t l = 0; l < nsl - (exact_flow ? 0 : 1) && !stt &&
                         it < atomic_load(&first_failed);
           l++) {
        memcpy(x, x0, bs * per * sizeof *x);
        csde_solver_set_seed(Ss[l], p->seed, first);
        memset(&st, 0, sizeof st);
        stt = csde_solver_run(Ss[l], x, &st, e);
        nfe_total += st.nfe;
        if (stt) break;
        for (size_t i = 0; i < n; i++) {
          const double *xi = x + i * per, *ri = xr + i * per;
          double *dst = l < L ? r->v + ((first + i) * L + l) * Q : r->vref + (first + i) * Q;
          if (p->kind == CSDE_CONV_STRONG || p->kind == CSDE_CONV_ODE) {
            dst[0] = rms_diff(xi, ri, per);
          } else if (p->kind == CSDE_CONV_WEAK_MEAN) {
            for (size_t q = 0; q < per; q++) dst[q] = xi[q] - ri[q];
          } else {
            frame_moment(xi, tau, D, Fx);
            frame_moment(ri, tau, D, Fr);
            for (size_t q = 0; q < tau * tau; q++) dst[q] = Fx[q] - Fr[q];
          }
        }
#ifdef _OPENMP
#pragma omp critical(csde_conv_progress)
#endif
        {
          cost_done += cost[si * nsl + l];
          if (l + 1 == nsl - (exact_flow ? 0 : 1)) paths_done[si] += n;
          if (hooks->progress) {
            csde_conv_progress pr = {si, p->solvers[si],
                                     l < L ? res->level[l] : Rs[si] - 1, paths_done[si], N,
                                     cost_done / cost_total, now() - t_wall};
            hooks->progress(hooks->user, &pr);
          }
        }
      }
      o->status = stt;
      if (stt) { /* first_failed = min(first_failed, it) */
        long cur = atomic_load(&first_failed);
        while (it < cur && !atomic_compare_exchange_weak(&first_failed, &cur, it)) {
        }
      }
    }
  }
  free(cost);
  free(paths_done);
  if (p->dist && p->dist->size > 1) { /* every item's values and status from its process */
    const csde_conv_dist *dd = p->dist;
    int bad = 0;
    for (long it = 0; it < nitems && !bad; it++) {
      const int root = (int)(it % dd->size);
      const size_t si = (size_t)it / nb, first = ((size_t)it % nb) * bs;
      const size_t n = first + bs <= N ? bs : N - first;
      csde_conv_solver_result *r = &res->s[si];
      item_wire w;
      memset(&w, 0, sizeof w);
      if (root == dd->rank) {
        w.status = ist[it].status;
        if (w.status) snprintf(w.msg, sizeof w.msg, "rank %d: %s", root, ist[it].err.msg);
        if (ist[it].err.param) snprintf(w.param, sizeof w.param, "%s", ist[it].err.param);
      }
      bad |= dd->bcast(dd->user, &w, sizeof w, root);
      ist[it].status = w.status;
      memcpy(ist[it].err.msg, w.msg, sizeof w.msg);
      ist[it].err.param = w.param[0] ? param_const(w.param) : NULL;
      bad |= dd->bcast(dd->user, r->v + first * L * Q, n * L * Q * sizeof *r->v, root);
      if (r->vref) bad |= dd->bcast(dd->user, r->vref + first * Q, n * Q * sizeof *r->vref, root);
      if (dev) bad |= dd->bcast(dd->user, dev + (si * N + first) * Q, n * Q * sizeof *dev, root);
      bad |= dd->bcast(dd->user, scale + si * N + first, n * sizeof *scale, root);
    }
    size_t total = 0; /* the nfe counts, summed in process order */
    for (int q = 0; q < dd->size && !bad; q++) {
      size_t v = nfe_total;
      bad |= dd->bcast(dd->user, &v, sizeof v, q);
      total += v;
    }
    nfe_total = total;
    if (bad) {
      s = csde_err_set(err, CSDE_EFAILED, "the processes' results could not be shared");
      goto done;
    }
  }
  res->nfe = nfe_total;
  for (long it = 0; it < nitems; it++)
    if (ist[it].status) {
      size_t si = (size_t)it / nb;
      s = ist[it].status;
      size_t f0 = (size_t)(it % nb) * bs, f1 = f0 + bs < N ? f0 + bs : N;
      /* the setting the solve blamed; else a failing answer is the model's */
      const char *pa = ist[it].err.param;
      if (!pa) pa = s == CSDE_EBADFUNC || s == CSDE_ENAN || s == CSDE_ERETRY ? CSDE_PARAM_MODEL
                                                                              : CSDE_PARAM_SOLVER;
      csde_err_set(err, s, "solver %s, paths %zu..%zu: %s", p->solvers[si], f0, f1 - 1,
                   ist[it].err.msg[0] ? ist[it].err.msg : csde_strerror(s));
      csde_err_blame(err, pa, s);
      goto done;
    }

  /* words for the output */
  if (exact_flow)
    snprintf(res->reference, sizeof res->reference, "exact: the gaussian model's PF-ODE flow");
  else if (exact_moments && ref_exact)
    snprintf(res->reference, sizeof res->reference,
             "exact: the gaussian moments check a fine solve of each solver on the same path "
             "(the control variate)");
  else
    snprintf(res->reference, sizeof res->reference,
             "fine: each solver at its reference level on the same path");
  for (size_t i = 0; i < ns; i++) {
    res->s[i].ref_level = Rs[i];
    if (exact_flow)
      snprintf(res->s[i].reference, sizeof res->s[i].reference, "exact flow");
    else
      snprintf(res->s[i].reference, sizeof res->s[i].reference,
               "%s at level %u (2^%u steps), same path", p->solvers[i], Rs[i], Rs[i]);
  }
  if (p->kind == CSDE_CONV_STRONG || p->kind == CSDE_CONV_ODE)
    snprintf(res->estimator, sizeof res->estimator,
             "mean over paths of ||X_h - X_ref|| at t = %g, ||.|| the RMS over the %zu "
             "entries of a sample; RMS variant sqrt(mean ||X_h - X_ref||^2) beside it",
             t_end, per);
  else
    snprintf(res->estimator, sizeof res->estimator,
             "same-path control variate ||mean over paths of f(X_h) - f(X_ref)||, f = %s; "
             "the reference's own bias is not added: its Richardson estimate (levels R-1 vs R "
             "on the same paths) must be <= 1/10 of the finest level's error",
             p->kind == CSDE_CONV_WEAK_MEAN
                 ? "X (RMS norm over the tau x D entries of the mean)"
                 : "the frame second moment (1/D) sum_p x_p x_p^T (Frobenius norm of the "
                   "tau x tau difference)");

  /* analysis, solver by solver */
  for (size_t i = 0; i < ns && !s; i++) {
    csde_conv_solver_result *r = &res->s[i];
    double sc = 0;
    for (size_t j = 0; j < N; j++) sc += scale[i * N + j];
    r->ref_scale = sc / (double)N;
    if (dev) { /* plain Monte Carlo deviation of f(X_ref) from the exact law */
      r->exact_dev = calloc(Q, sizeof *r->exact_dev);
      if (!r->exact_dev) {
        s = csde_err_set(err, CSDE_ENOMEM, "out of memory");
        break;
      }
      double tot = 0, nrm = 0;
      for (size_t q = 0; q < Q; q++) {
        double m = 0, v2 = 0;
        for (size_t j = 0; j < N; j++) m += dev[(i * N + j) * Q + q];
        m /= (double)N;
        for (size_t j = 0; j < N; j++) {
          double dd = dev[(i * N + j) * Q + q] - m;
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
    csde_conv_data d;
    memset(&d, 0, sizeof d);
    d.N = N;
    d.L = L;
    d.Q = Q;
    d.v = r->v;
    d.vref = r->vref;
    d.vector = csde_conv_kind_is_weak(p->kind);
    d.rms_norm = p->kind == CSDE_CONV_WEAK_MEAN;
    d.h = res->h;
    d.level = res->level;
    d.theory = r->theory;
    d.float_floor = 1e-12 * r->ref_scale;
    d.ref_floor = exact_flow ? 1e-13 * r->ref_scale : 0;
    d.boot = p->boot ? p->boot : 1000;
    d.boot_seed = p->boot_seed;
    d.conf = p->conf > 0 ? p->conf : 0.95;
    d.threads = nt;
    d.dist = p->dist;
    s = csde_conv_analyse(&d, &r->fit, err);
  }

done:
  if (S)
    for (size_t j = 0; j < (size_t)nt * ns * nsl; j++) csde_solver_free(S[j]);
  free(S);
  if (buf)
    for (int t = 0; t < nt; t++) free(buf[t]);
  free(buf);
  for (int t = 0; t < nalloc; t++)
    if (hooks->thread_free) hooks->thread_free(hooks->user, ust[t]);
  free(M);
  free(ust);
  free(ist);
  free(fexact);
  free(scale);
  free(dev);
  res->wall_seconds = now() - t_wall;
  if (s) csde_conv_result_free(res);
  return s;
}
