/* Covariance operators: construction, tiling and threading of applies, and the
 * operations every method shares (Mahalanobis forms, sampling, log densities). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_sort.h>

#include "core/linalg.h"
#include "core/util.h"
#include "cov/cov_internal.h"

#define CSDE_COV_STR_(x) #x
#define CSDE_COV_STR(x) CSDE_COV_STR_(x)

csde_cov_params csde_cov_default_params(void)
{
  csde_cov_params p = {CSDE_COV_AUTO, 1e-12, 0, 0, 1e-12};
  return p;
}

/* The methods' registry, in the order help texts list them; an alias (circulant) is never
 * a method's csde_cov_method_name. */
static const struct {
  const char *name;
  csde_cov_method m;
  int alias;
  const char *summary;
} method_names[] = {
    {"auto", CSDE_COV_AUTO, 0,
     "exact: dense below " CSDE_COV_STR(CSDE_COV_AUTO_TAU) " frames, embed from there on "
     "(dense for dense:file); never an approximation"},
    {"dense", CSDE_COV_DENSE, 0, "exact: eigendecomposition C = V S V^T; noise V sqrt(S) z"},
    {"dense-cholesky", CSDE_COV_DENSE_CHOLESKY, 0,
     "exact: Cholesky factor C = L L^T; noise L z"},
    {"circulant", CSDE_COV_CIRC_TCHAN, 1, "the same as circulant-tchan"},
    {"circulant-tchan", CSDE_COV_CIRC_TCHAN, 0, "T. Chan's circulant approximation of a Toeplitz C"},
    {"circulant-strang", CSDE_COV_CIRC_STRANG, 0,
     "Strang's circulant approximation (may be indefinite)"},
    {"embed", CSDE_COV_EMBED, 0,
     "exact for a Toeplitz C: FFTs through a PSD circulant embedding of size m (white noise z "
     "then has m rows)"},
};
#define NMETHODS (sizeof method_names / sizeof method_names[0])

const char *csde_cov_method_entry(size_t i, const char **summary)
{
  if (i >= NMETHODS) return NULL;
  if (summary) *summary = method_names[i].summary;
  return method_names[i].name;
}

char *csde_cov_method_names(char *buf, size_t len)
{
  size_t o = 0;
  if (!buf || !len) return buf;
  buf[0] = '\0';
  for (size_t i = 0; i < NMETHODS && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", method_names[i].name);
  return buf;
}

int csde_cov_method_parse(const char *name, csde_cov_method *out, csde_err *err)
{
  for (size_t i = 0; name && i < NMETHODS; i++)
    if (!strcmp(name, method_names[i].name)) {
      *out = method_names[i].m;
      return CSDE_SUCCESS;
    }
  char names[256];
  return csde_err_set(err, CSDE_ESPEC, "unknown covariance method '%s' (expected %s)",
                      name ? name : "", csde_cov_method_names(names, sizeof names));
}

const char *csde_cov_method_name(csde_cov_method m)
{
  for (size_t i = 0; i < NMETHODS; i++)
    if (method_names[i].m == m && !method_names[i].alias) return method_names[i].name;
  return "unknown";
}

static const csde_cov_type *method_type(csde_cov_method m)
{
  switch (m) {
  case CSDE_COV_DENSE:
  case CSDE_COV_DENSE_CHOLESKY:
    return &csde_cov_dense_type;
  case CSDE_COV_CIRC_TCHAN:
  case CSDE_COV_CIRC_STRANG:
    return &csde_cov_circulant_type;
  case CSDE_COV_EMBED:
    return &csde_cov_embed_type;
  default:
    return NULL;
  }
}

static void method_free(csde_cov *C)
{
  if (C->type && C->type->free) C->type->free(C);
  free(C->mat);
  free(C->fac);
  free(C->chol);
  free(C->eig);
  free(C->ccol);
  free(C->lam);
  free(C->lam_chan);
  for (int i = 0; i < 3; i++) free(C->fop[i]);
  C->fop[0] = C->fop[1] = C->fop[2] = NULL;
  C->mat = C->fac = C->chol = C->eig = C->ccol = C->lam = C->lam_chan = NULL;
  C->type = NULL;
}

void csde_cov_free(csde_cov *C)
{
  if (!C) return;
  method_free(C);
  csde_cov_family_clear(&C->fam);
  pthread_mutex_destroy(&C->lock);
  free(C);
}

/* Below this many frames an indefinite Toeplitz matrix is diagnosed by a dense
 * eigensolve, to name its most negative eigenvalue; above it by Levinson-Durbin alone. */
#define DIAG_TAU 4096

/* Why a Toeplitz C has no PSD circulant embedding (or, for circulant methods, whether
 * T is PSD at all): Levinson-Durbin (O(tau^2) time, O(tau) memory) sets pd_T and
 * logdet_T. A PD T keeps the status `s` and its message (an embedding problem: use
 * dense). An indefinite T is refused with ENOTPSD: below DIAG_TAU frames naming its
 * most negative eigenvalue (a singular PSD T keeps `s`), above it naming the order at
 * which the prediction error variance stopped being positive. */
static int toeplitz_diagnose(csde_cov *C, int s, csde_err *err)
{
  size_t tau = C->tau, kf = 0;
  double pf = 0;
  double *t = malloc(tau * sizeof *t);
  if (!t) return csde_err_set(err, CSDE_ENOMEM, "out of memory (tau = %zu)", tau);
  csde_cov_lags(&C->fam, tau, t);
  int ls = csde_toeplitz_levinson_at(t, tau, &C->logdet_T, &C->pd_T, &kf, &pf);
  if (ls) s = csde_err_set(err, ls, "out of memory (tau = %zu)", tau);
  C->have_logdet_T = !ls;
  if (ls || C->pd_T) goto done;
  double cmax = 0;
  for (size_t k = 0; k < tau; k++) cmax = fmax(cmax, fabs(t[k]));
  /* the round-off tolerance, on the column scaled as the eigensolve scales it (entries
   * near the double range: tau c_max would overflow, and an infinite tolerance would
   * pass any eigenvalue) */
  const int e = csde_pow2_scale(t, tau);
  double tol = ldexp(csde_eig_tol(tau, ldexp(cmax, -e) * (double)tau), e);
  if (tau <= DIAG_TAU) {
    double *T = malloc(tau * tau * sizeof *T), emin = 0;
    if (!T) {
      s = csde_err_set(err, CSDE_ENOMEM, "out of memory (tau = %zu)", tau);
      goto done;
    }
    for (size_t i = 0; i < tau; i++)
      for (size_t j = 0; j < tau; j++) T[i * tau + j] = t[i > j ? i - j : j - i];
    int es = csde_dense_min_eig(T, tau, &emin, err);
    free(T);
    if (es)
      s = es;
    else if (emin < -tol)
      s = csde_err_set(err, CSDE_ENOTPSD,
                       "covariance '%s' with %zu frames is not positive semi-definite: most "
                       "negative eigenvalue %.6g (tolerance %.3g)",
                       C->spec, tau, emin, tol);
  } else {
    s = csde_err_set(err, CSDE_ENOTPSD,
                     "covariance '%s' with %zu frames is not positive definite: the "
                     "Levinson-Durbin prediction error variance of order %zu is %.6g <= 0 "
                     "(the leading %zu x %zu block is singular or indefinite)",
                     C->spec, tau, kf, pf, kf + 1, kf + 1);
  }
done:
  free(t);
  return s;
}

/* Circulant methods replace T, but T itself must be a covariance (and its log det and
 * definiteness feed the report): a PSD circulant embedding proves it PSD, and PD when
 * its lambda_min > round-off; otherwise toeplitz_diagnose decides. */
static int toeplitz_psd(csde_cov *C, csde_err *err)
{
  size_t m = 0;
  double *lam = NULL, lmin = 0, tol = 0;
  csde_err e;
  csde_err_clear(&e);
  int s = csde_embed_spectrum(&C->fam, C->spec, C->tau, 0, &m, &lam, &lmin, &tol, &e);
  free(lam);
  if (s == CSDE_ENOMEM) return csde_err_set(err, s, "%s", e.msg);
  if (!s && lmin > tol) {
    C->pd_T = 1;
    return CSDE_SUCCESS;
  }
  return toeplitz_diagnose(C, CSDE_SUCCESS, err);
}

double csde_cov_logdet_T(const csde_cov *C)
{
  csde_cov *W = (csde_cov *)C; /* a cache filled once under the lock; C is const otherwise */
  pthread_mutex_lock(&W->lock);
  if (!W->have_logdet_T) {
    if (!W->pd_T) {
      W->logdet_T = -INFINITY;
    } else if (W->fam.logdet) {
      W->logdet_T = W->fam.logdet(&W->fam, W->tau);
    } else {
      double *t = malloc(W->tau * sizeof *t);
      int pd = 0;
      if (t) csde_cov_lags(&W->fam, W->tau, t);
      if (!t || csde_toeplitz_levinson(t, W->tau, &W->logdet_T, &pd)) W->logdet_T = NAN;
      free(t);
    }
    W->have_logdet_T = !isnan(W->logdet_T);
  }
  double ld = W->logdet_T;
  pthread_mutex_unlock(&W->lock);
  return ld;
}

static int is_circulant(csde_cov_method m)
{
  return m == CSDE_COV_CIRC_TCHAN || m == CSDE_COV_CIRC_STRANG;
}

static int build(csde_cov **out, csde_cov *C, const csde_cov_params *params, csde_err *err)
{
  int s = CSDE_SUCCESS;
  *out = NULL;
  C->par = params ? *params : csde_cov_default_params();
  if (!(C->par.cg_tol > 0) || !(C->par.sym_tol >= 0)) {
    s = csde_err_set(err, CSDE_EINVAL, "covariance params: cg_tol must be > 0 and sym_tol >= 0");
    goto fail;
  }
  int toeplitz = C->fam.lag != NULL;
  csde_cov_method m = C->par.method;
  if (m == CSDE_COV_AUTO)
    m = toeplitz && C->tau >= CSDE_COV_AUTO_TAU ? CSDE_COV_EMBED : CSDE_COV_DENSE;
  if (!method_type(m)) {
    s = csde_err_set(err, CSDE_EINVAL, "unknown covariance method %d", (int)m);
    goto fail;
  }
  if (!toeplitz && m != CSDE_COV_DENSE && m != CSDE_COV_DENSE_CHOLESKY) {
    s = csde_err_set(err, CSDE_ENOTSUP,
                     "method %s needs a Toeplitz covariance; '%s' is a dense matrix (use dense "
                     "or dense-cholesky)",
                     csde_cov_method_name(m), C->spec);
    goto fail;
  }
  /* dense methods check PSD by their own eigensolve; embed by its embedding */
  if (toeplitz && is_circulant(m) && (s = toeplitz_psd(C, err))) goto fail;
  C->method = m;
  C->type = method_type(m);
  s = C->type->init(C, err);
  /* no PSD embedding, or one whose eigenvalues overflow: is T itself indefinite? */
  if ((s == CSDE_ENOTPSD || s == CSDE_ERANGE) && m == CSDE_COV_EMBED)
    s = toeplitz_diagnose(C, s, err);
  if (s && s != CSDE_ENOMEM && C->par.method == CSDE_COV_AUTO && m == CSDE_COV_EMBED &&
      C->tau <= CSDE_COV_DENSE_FALLBACK_TAU) {
    /* auto: an embedding that cannot be made PSD falls back to the other exact method */
    method_free(C);
    C->method = CSDE_COV_DENSE;
    C->type = method_type(CSDE_COV_DENSE);
    s = C->type->init(C, err);
  }
  if (s) goto fail;
  *out = C;
  return CSDE_SUCCESS;
fail:
  csde_cov_free(C);
  return s;
}

static csde_cov *cov_new(size_t tau, const char *spec, csde_err *err)
{
  if (tau == 0) {
    csde_err_set(err, CSDE_EINVAL, "covariance size: tau = 0 frames (need at least 1)");
    return NULL;
  }
  if (tau > (size_t)1 << 28) {
    csde_err_set(err, CSDE_EINVAL, "covariance size: tau = %zu frames is too large", tau);
    return NULL;
  }
  csde_cov *C = calloc(1, sizeof *C);
  if (!C) {
    csde_err_set(err, CSDE_ENOMEM, "out of memory");
    return NULL;
  }
  C->tau = tau;
  pthread_mutex_init(&C->lock, NULL);
  snprintf(C->spec, sizeof C->spec, "%s", spec);
  return C;
}

int csde_cov_alloc(csde_cov **out, const char *spec, size_t tau,
                   const csde_cov_params *params, csde_err *err)
{
  *out = NULL;
  if (!spec) return csde_err_set(err, CSDE_ESPEC, "empty covariance spec");
  csde_cov *C = cov_new(tau, spec, err);
  if (!C) return err ? err->status : CSDE_EINVAL;
  int s = csde_cov_family_parse(&C->fam, spec, tau, err);
  if (s) {
    csde_cov_free(C);
    return s;
  }
  return build(out, C, params, err);
}

int csde_cov_alloc_toeplitz(csde_cov **out, const double *col, size_t ncol, size_t tau,
                            const csde_cov_params *params, csde_err *err)
{
  *out = NULL;
  if (!col || ncol == 0)
    return csde_err_set(err, CSDE_EINVAL, "toeplitz covariance: empty first column");
  if (!csde_all_finite(col, ncol))
    return csde_err_set(err, CSDE_ENAN, "toeplitz column has a NaN or Inf entry");
  csde_cov *C = cov_new(tau, "toeplitz", err);
  if (!C) return err ? err->status : CSDE_EINVAL;
  csde_cov_family_parse(&C->fam, "toeplitz:col=0", tau, NULL);
  free(C->fam.col);
  C->fam.col = malloc(ncol * sizeof(double));
  if (!C->fam.col) {
    csde_cov_free(C);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  }
  memcpy(C->fam.col, col, ncol * sizeof(double));
  C->fam.ncol = ncol;
  return build(out, C, params, err);
}

int csde_cov_alloc_dense(csde_cov **out, const double *mat, size_t tau,
                         const csde_cov_params *params, csde_err *err)
{
  *out = NULL;
  if (!mat) return csde_err_set(err, CSDE_EINVAL, "dense covariance: NULL matrix");
  csde_cov *C = cov_new(tau, "dense", err);
  if (!C) return err ? err->status : CSDE_EINVAL;
  snprintf(C->fam.name, sizeof C->fam.name, "dense");
  if (!csde_all_finite(mat, tau * tau)) {
    csde_cov_free(C);
    return csde_err_set(err, CSDE_ENAN, "dense covariance has a NaN or Inf entry");
  }
  C->fam.mat = malloc(tau * tau * sizeof(double));
  if (!C->fam.mat) {
    csde_cov_free(C);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  }
  memcpy(C->fam.mat, mat, tau * tau * sizeof(double));
  return build(out, C, params, err);
}

size_t csde_cov_tau(const csde_cov *C) { return C->tau; }
size_t csde_cov_noise_dim(const csde_cov *C) { return C->noise_dim; }
csde_cov_method csde_cov_method_of(const csde_cov *C) { return C->method; }
const char *csde_cov_spec(const csde_cov *C) { return C->spec; }
int csde_cov_is_toeplitz(const csde_cov *C) { return C->fam.lag != NULL; }
int csde_cov_is_singular(const csde_cov *C) { return C->singular; }
/* embed: log det T, computed on first use (closed form or Levinson-Durbin, O(tau^2)) */
double csde_cov_logdet(const csde_cov *C)
{
  if (C->method == CSDE_COV_EMBED && !C->singular) return csde_cov_logdet_T(C);
  return C->logdet;
}

int csde_cov_logdet_cheap(const csde_cov *C)
{
  int needs_T = C->method == CSDE_COV_EMBED || is_circulant(C->method);
  return !needs_T || !C->pd_T || C->have_logdet_T || C->fam.logdet != NULL;
}

csde_cov_report csde_cov_approx_report(const csde_cov *C)
{
  csde_cov_report r = C->report;
  if (r.approx) { /* KL(N(0,T) || N(0,circ)) / tau = (tr(circ^-1 T) - n + log det circ
                     - log det T) / (2n), >= 0: a tiny negative is round-off */
    double n = (double)C->tau;
    r.kl_per_frame = C->singular || !C->pd_T
                         ? INFINITY
                         : fmax(0.5 * (C->circ_tr - n + C->logdet - csde_cov_logdet_T(C)) / n,
                                0.0);
  }
  return r;
}

double csde_cov_entry(const csde_cov *C, size_t i, size_t j)
{
  size_t n = C->tau;
  if (C->mat) return C->mat[i * n + j];
  if (is_circulant(C->method)) return C->ccol[(i + n - j) % n]; /* circ_ij = c_{(i-j) mod n} */
  return C->fam.lag(&C->fam, i > j ? i - j : j - i);
}

int csde_cov_eig_bounds(const csde_cov *C, double *lo, double *hi)
{
  if (lo) *lo = C->eig_lo;
  if (hi) *hi = C->eig_hi;
  return C->eig_exact;
}
size_t csde_cov_embed_size(const csde_cov *C)
{
  return C->method == CSDE_COV_EMBED ? C->n : 0;
}

void csde_cov_matrix(const csde_cov *C, double *out)
{
  size_t n = C->tau;
  if (C->mat) {
    memcpy(out, C->mat, n * n * sizeof *out);
  } else if (C->method == CSDE_COV_CIRC_TCHAN || C->method == CSDE_COV_CIRC_STRANG) {
    for (size_t i = 0; i < n; i++) /* circ_ij = c_{(i-j) mod n} */
      for (size_t j = 0; j < n; j++) out[i * n + j] = C->ccol[(i + n - j) % n];
  } else {
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) out[i * n + j] = C->fam.lag(&C->fam, i > j ? i - j : j - i);
  }
}

int csde_cov_eigenvalues(const csde_cov *C, double *out, csde_err *err)
{
  size_t n = C->tau;
  if (C->eig) {
    memcpy(out, C->eig, n * sizeof *out);
    return CSDE_SUCCESS;
  }
  if (C->method != CSDE_COV_EMBED) { /* circulant: the spectrum, sorted */
    for (size_t k = 0; k < n; k++) out[k] = C->lam[k <= n / 2 ? k : n - k];
    gsl_sort(out, 1, n);
    return CSDE_SUCCESS;
  }
  double *A = malloc(n * n * sizeof *A);
  if (!A) return csde_err_set(err, CSDE_ENOMEM, "out of memory (tau = %zu)", n);
  csde_cov_matrix(C, A);
  int sc = 0; /* entries near the double range: solved scaled, then scaled back */
  int s = csde_symeig_scaled(A, n, out, NULL, 0, &sc, err);
  for (size_t k = 0; !s && sc && k < n; k++) out[k] = ldexp(out[k], sc);
  free(A);
  return s;
}

/* ---- workspaces ---- */

void csde_cov_ws_free(csde_cov_ws *ws)
{
  if (!ws) return;
  csde_fftw_lock();
  if (ws->fwd) fftw_destroy_plan(ws->fwd);
  if (ws->inv) fftw_destroy_plan(ws->inv);
  if (ws->fwd2) fftw_destroy_plan(ws->fwd2);
  if (ws->inv2) fftw_destroy_plan(ws->inv2);
  csde_fftw_unlock();
  csde_free(ws->slot);
  for (int i = 0; ws->th && i < ws->nthreads; i++) {
    csde_cov_thread *th = &ws->th[i];
    csde_free(th->buf);
    csde_free(th->cbuf);
    csde_free(th->buf2);
    csde_free(th->cbuf2);
    csde_free(th->t1);
    csde_free(th->t2);
    csde_free(th->z);
    csde_free(th->cg);
  }
  free(ws->th);
  free(ws->tsum);
  free(ws);
}

size_t csde_cov_ws_D(const csde_cov_ws *ws) { return ws->D; }

/* A batched plan of W transforms of size n, each a column of a row-major [n][W] array. */
static fftw_plan plan_many(size_t n, size_t W, double *r, fftw_complex *c, int forward)
{
  int nn = (int)n, w = (int)W;
  fftw_plan p;
  csde_fftw_lock();
  if (forward)
    p = fftw_plan_many_dft_r2c(1, &nn, w, r, NULL, w, 1, c, NULL, w, 1, FFTW_ESTIMATE);
  else
    p = fftw_plan_many_dft_c2r(1, &nn, w, c, NULL, w, 1, r, NULL, w, 1, FFTW_ESTIMATE);
  csde_fftw_unlock();
  return p;
}

int csde_cov_ws_alloc(csde_cov_ws **out, const csde_cov *C, size_t D, int nthreads,
                      csde_err *err)
{
  *out = NULL;
  if (D == 0) return csde_err_set(err, CSDE_EINVAL, "covariance workspace: D = 0 pixels");
  if (nthreads < 0 || nthreads > 4096)
    return csde_err_set(err, CSDE_EINVAL, "covariance workspace: %d threads", nthreads);
  csde_cov_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  ws->C = C;
  ws->D = D;
  ws->nthreads = nthreads ? nthreads : 1;
  ws->W = C->type->tile_width(C, D);
  size_t W = ws->W, tau = C->tau, nf = C->type->nfft(C);
  size_t nf2 = C->type->nfft2_is_tau ? tau : 0;
  ws->th = calloc((size_t)ws->nthreads, sizeof *ws->th);
  ws->tsum = calloc((D + W - 1) / W, sizeof *ws->tsum);
  ws->slot = csde_calloc((size_t)ws->nthreads, sizeof *ws->slot);
  int ok = ws->th != NULL && ws->tsum != NULL && ws->slot != NULL;
  for (int i = 0; ok && i < ws->nthreads; i++) {
    csde_cov_thread *th = &ws->th[i];
    th->t1 = csde_calloc(tau * W, sizeof(double));
    th->t2 = csde_calloc(tau * W, sizeof(double));
    th->z = csde_calloc(C->noise_dim * W, sizeof(double));
    ok = th->t1 && th->t2 && th->z;
    if (nf) {
      th->buf = csde_calloc(nf * W, sizeof(double));
      th->cbuf = csde_calloc((nf / 2 + 1) * W, sizeof(fftw_complex));
      ok = ok && th->buf && th->cbuf;
    }
    if (nf2) {
      th->buf2 = csde_calloc(nf2 * W, sizeof(double));
      th->cbuf2 = csde_calloc((nf2 / 2 + 1) * W, sizeof(fftw_complex));
      th->cg = csde_calloc(4 * tau * W + 6 * W, sizeof(double));
      ok = ok && th->buf2 && th->cbuf2 && th->cg;
    }
  }
  if (ok && nf) {
    ws->fwd = plan_many(nf, W, ws->th[0].buf, ws->th[0].cbuf, 1);
    ws->inv = plan_many(nf, W, ws->th[0].buf, ws->th[0].cbuf, 0);
    ok = ws->fwd && ws->inv;
  }
  if (ok && nf2) {
    ws->fwd2 = plan_many(nf2, W, ws->th[0].buf2, ws->th[0].cbuf2, 1);
    ws->inv2 = plan_many(nf2, W, ws->th[0].buf2, ws->th[0].cbuf2, 0);
    ok = ws->fwd2 && ws->inv2;
  }
  if (!ok) {
    csde_cov_ws_free(ws);
    return csde_err_set(err, CSDE_ENOMEM,
                        "out of memory for a covariance workspace (tau = %zu, D = %zu, %d "
                        "threads)",
                        tau, D, nthreads);
  }
  *out = ws;
  return CSDE_SUCCESS;
}

size_t csde_cov_ws_size(const csde_cov *C, size_t D, int nthreads)
{
  if (D == 0) return 0;
  const size_t th = nthreads > 0 ? (size_t)nthreads : 1, W = C->type->tile_width(C, D);
  const size_t tau = C->tau, nf = C->type->nfft(C), nf2 = C->type->nfft2_is_tau ? tau : 0;
  /* per thread, as csde_cov_ws_alloc makes them: t1, t2, z; the FFT buffers; CG's */
  double per = (double)W * (2.0 * (double)tau + (double)C->noise_dim);
  if (nf) per += (double)W * ((double)nf + 2.0 * (double)(nf / 2 + 1));
  if (nf2) per += (double)W * ((double)nf2 + 2.0 * (double)(nf2 / 2 + 1) + 4.0 * (double)tau + 6);
  /* the tiles' sums, and FFTW's plans (twiddles and scratch: a few times n per plan) */
  double total = sizeof(double) * ((double)th * per + (double)((D + W - 1) / W) +
                                   4.0 * 4.0 * (double)(nf + nf2));
  return total >= (double)SIZE_MAX ? SIZE_MAX : (size_t)total;
}

static int check_ws(const csde_cov *C, const csde_cov_ws *ws, csde_err *err)
{
  if (!ws || ws->C != C)
    return csde_err_set(err, CSDE_EINVAL,
                        "covariance workspace was not made for this operator");
  return CSDE_SUCCESS;
}

/* After a parallel loop: the first thread's error, if any. */
static int gather_error(csde_cov_ws *ws, csde_err *err)
{
  for (int i = 0; i < ws->nthreads; i++)
    if (ws->th[i].err.status) {
      if (err) *err = ws->th[i].err;
      return ws->th[i].err.status;
    }
  return CSDE_SUCCESS;
}

static void clear_errors(csde_cov_ws *ws)
{
  for (int i = 0; i < ws->nthreads; i++) ws->th[i].err.status = 0;
}

/* Tile k of a batch: block b = k / per, columns [c0, c0 + nc). */
#define TILE_SPLIT(k, per, W, D, b, c0, nc)        \
  size_t b = (size_t)(k) / (per);                   \
  size_t c0 = ((size_t)(k) % (per)) * (W);          \
  size_t nc = (D) - c0 < (W) ? (D) - c0 : (W)

/* White noise of tile (b, c0, nc) into th->z, times scale:
 * z[row][c] = scale normal(key, ((first + b) nd + row) D + c) */
static void tile_noise(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                       csde_rng_key key, size_t first, size_t b, size_t c0, size_t nc,
                       double scale)
{
  size_t nd = C->noise_dim, D = ws->D, W = ws->W;
  if (nc == D && W == D) { /* the tile is whole blocks' rows: indices are contiguous, one
                              call (each value depends on its index only: same bits) */
    csde_rng_normal(key, (uint64_t)((first + b) * nd * D), nd * D, th->z);
    if (scale != 1.0)
      for (size_t i = 0; i < nd * D; i++) th->z[i] *= scale;
    return;
  }
  for (size_t r = 0; r < nd; r++) {
    double *z = th->z + r * W;
    csde_rng_normal(key, (uint64_t)(((first + b) * nd + r) * D + c0), nc, z);
    if (scale != 1.0)
      for (size_t c = 0; c < nc; c++) z[c] *= scale; /* in cache: cheaper than a pass */
  }
}

/* y = op(C) x over nblk blocks, the tiles in parallel; with nz, x is instead each tile's
 * white noise (tile_noise) times nz->scale, drawn into th->z. */
typedef struct {
  csde_rng_key key;
  size_t first;
  double scale;
} tile_draw;

static int apply_tiles(const csde_cov *C, csde_cov_ws *ws, csde_cov_op op, size_t nblk,
                       const double *x, const tile_draw *nz, double *y, csde_err *err)
{
  size_t D = ws->D, W = ws->W, tau = C->tau, per = (D + W - 1) / W;
  size_t rin = op == CSDE_COV_OP_SQRT ? C->noise_dim : tau;
  long ntiles = (long)(nblk * per);
  clear_errors(ws);
#ifdef _OPENMP
#pragma omp parallel for num_threads(ws->nthreads) schedule(static) if (ws->nthreads > 1)
#endif
  for (long k = 0; k < ntiles; k++) {
    csde_cov_thread *th = &ws->th[csde_thread_num()];
    if (th->err.status) continue;
    TILE_SPLIT(k, per, W, D, b, c0, nc);
    if (nz) tile_noise(C, ws, th, nz->key, nz->first, b, c0, nc, nz->scale);
    C->type->apply_tile(C, ws, th, op, nc, nz ? th->z : x + b * rin * D + c0, nz ? W : D,
                        y + b * tau * D + c0, D);
  }
  return gather_error(ws, err);
}

int csde_cov_apply(const csde_cov *C, csde_cov_ws *ws, csde_cov_op op, size_t nblk,
                   const double *x, double *y, csde_err *err)
{
  int s = check_ws(C, ws, err);
  if (s) return s;
  if (op == CSDE_COV_OP_INV && C->singular)
    return csde_err_set(err, CSDE_ESING,
                        "C^-1 of a singular covariance '%s' (log det = -inf); add a nugget "
                        "or use another family",
                        C->spec);
  if (op != CSDE_COV_OP_C && op != CSDE_COV_OP_SQRT && op != CSDE_COV_OP_INV)
    return csde_err_set(err, CSDE_EINVAL, "unknown covariance operation %d", (int)op);
  return apply_tiles(C, ws, op, nblk, x, NULL, y, err);
}

int csde_cov_sample(const csde_cov *C, csde_cov_ws *ws, csde_rng_key key, size_t first,
                    size_t nblk, double *out, csde_err *err)
{
  return csde_cov_sample_scaled(C, ws, key, first, nblk, 1.0, out, err);
}

int csde_cov_sample_scaled(const csde_cov *C, csde_cov_ws *ws, csde_rng_key key, size_t first,
                           size_t nblk, double scale, double *out, csde_err *err)
{
  int s = check_ws(C, ws, err);
  if (s) return s;
  const tile_draw nz = {key, first, scale};
  return apply_tiles(C, ws, CSDE_COV_OP_SQRT, nblk, NULL, &nz, out, err);
}

int csde_cov_sample_axpy(const csde_cov *C, csde_cov_ws *ws, csde_rng_key key, size_t first,
                         size_t nblk, double scale, double a, const double *x, double b,
                         const double *u, double *out, int *bad, csde_err *err)
{
  int s = check_ws(C, ws, err);
  double chk = 0; /* sum of 0 u_i: 0, or NaN when some u_i is not finite (any order) */
  if (s) return s;
  size_t D = ws->D, W = ws->W, tau = C->tau, per = (D + W - 1) / W;
  long ntiles = (long)(nblk * per);
  int T = ws->nthreads;
  clear_errors(ws);
  csde_tiles_reset(ws->slot, T, ntiles);
#ifdef _OPENMP
#pragma omp parallel num_threads(T) reduction(+ : chk) if (T > 1)
#endif
  for (long k; (k = csde_tiles_take(ws->slot, T, csde_thread_num())) >= 0;) {
    csde_cov_thread *th = &ws->th[csde_thread_num()];
    if (th->err.status) continue;
    TILE_SPLIT(k, per, W, D, blk, c0, nc);
    size_t off = blk * tau * D + c0;
    if (C->type->sqrt_axpy_tile) { /* out = a x + b u + scale V' z, fused by the type */
      tile_noise(C, ws, th, key, first, blk, c0, nc, 1.0);
      chk += C->type->sqrt_axpy_tile(C, nc, scale, th->z, W, a, x + off, b, u ? u + off : NULL,
                                     D, out + off);
      continue;
    }
    tile_noise(C, ws, th, key, first, blk, c0, nc, scale);
    if (C->type->apply_tile(C, ws, th, CSDE_COV_OP_SQRT, nc, th->z, W, th->t1, W)) continue;
    for (size_t i = 0; i < tau; i++) { /* out = a x + b u + scale V' z, row i of the tile */
      const double *xi = x + off + i * D, *dw = th->t1 + i * W;
      const double *ui = u ? u + off + i * D : NULL;
      double *oi = out + off + i * D;
      if (ui) {
#pragma omp simd reduction(+ : chk)
        for (size_t c = 0; c < nc; c++) {
          chk += 0.0 * ui[c];
          oi[c] = a * xi[c] + b * ui[c] + dw[c];
        }
      } else {
        for (size_t c = 0; c < nc; c++) oi[c] = a * xi[c] + dw[c];
      }
    }
  }
  if (bad) *bad = !(chk == 0);
  return gather_error(ws, err);
}

int csde_cov_mahalanobis(const csde_cov *C, csde_cov_ws *ws, size_t nblk, const double *a,
                         const double *b, double *q, double *total, csde_err *err)
{
  int s = check_ws(C, ws, err);
  if (s) return s;
  if (C->singular)
    return csde_err_set(err, CSDE_ESING,
                        "x^T C^-1 x with a singular covariance '%s'; add a nugget", C->spec);
  size_t D = ws->D, W = ws->W, tau = C->tau, per = (D + W - 1) / W;
  double sum = 0;
  /* Blocks in order, the tiles of a block in parallel. Each tile sums its pixels in order
   * into tsum[k]; the block total adds tsum in order: threads never change the result. */
  for (size_t blk = 0; blk < nblk; blk++) {
    const double *ab = a + blk * tau * D, *bb = b ? b + blk * tau * D : NULL;
    clear_errors(ws);
#ifdef _OPENMP
#pragma omp parallel for num_threads(ws->nthreads) schedule(static) if (ws->nthreads > 1)
#endif
    for (long k = 0; k < (long)per; k++) {
      csde_cov_thread *th = &ws->th[csde_thread_num()];
      if (th->err.status) continue;
      size_t c0 = (size_t)k * W, nc = D - c0 < W ? D - c0 : W;
      for (size_t i = 0; i < tau; i++) /* t1 = a - b */
        for (size_t c = 0; c < nc; c++)
          th->t1[i * W + c] = ab[i * D + c0 + c] - (bb ? bb[i * D + c0 + c] : 0.0);
      if (C->type->apply_tile(C, ws, th, CSDE_COV_OP_INV, nc, th->t1, W, th->t2, W))
        continue;
      double part = 0;
      for (size_t c = 0; c < nc; c++) { /* q_p = t1_p . (C^-1 t1)_p */
        double acc = 0;
        for (size_t i = 0; i < tau; i++) acc += th->t1[i * W + c] * th->t2[i * W + c];
        if (q) q[blk * D + c0 + c] = acc;
        part += acc;
      }
      ws->tsum[k] = part;
    }
    if ((s = gather_error(ws, err))) return s;
    for (size_t k = 0; k < per; k++) sum += ws->tsum[k];
  }
  if (total) *total = sum;
  return CSDE_SUCCESS;
}

int csde_cov_logpdf(const csde_cov *C, csde_cov_ws *ws, size_t nblk, const double *x,
                    double *logp, csde_err *err)
{
  size_t D = ws ? ws->D : 0, tau = C->tau;
  double ld = csde_cov_logdet(C);
  for (size_t b = 0; b < nblk; b++) {
    double q;
    int s = csde_cov_mahalanobis(C, ws, 1, x + b * tau * D, NULL, NULL, &q, err);
    if (s) return s;
    /* log N(x; 0, C (x) I_D) = -1/2 (tau D log 2 pi + D log det C + sum_p x_p^T C^-1 x_p) */
    logp[b] = -0.5 * ((double)(tau * D) * log(2 * M_PI) + (double)D * ld + q);
  }
  return CSDE_SUCCESS;
}
