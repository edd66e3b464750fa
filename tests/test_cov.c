/* test_cov: the conformance battery of corrsde/cov.h, run over every family x method.
 *
 * Every operator is checked against references computed here, independently of the
 * library: the analytic Toeplitz matrix of the family (or the T. Chan / Strang circulant
 * built from it by the closed forms), dense products with cblas_dgemm, dense Cholesky
 * (gsl_linalg_cholesky_decomp1) and eigenvalues (gsl_eigen_symm).
 *
 * Tolerances. eps = DBL_EPSILON. normC = max row sum of |C| (>= the spectral radius, and
 * for a Toeplitz C it also bounds, up to a factor 2, the eigenvalues of its circulant
 * embedding). A product with inner dimension n has a forward error <= n eps |A||B|; the
 * 1e-12 relative bounds below (about 4500 eps) cover n up to a few hundred and the log n
 * of an FFT. A backward-stable solve has a residual <= c n eps |C| |y| <= c n eps cond(C)
 * |x|, so C^-1 and everything built on it (Mahalanobis, logpdf, KL) get tolerances
 * proportional to tau eps cond(C), plus the CG tolerance for embed.
 *
 * CSDE_TEST_QUICK (or running under valgrind) shrinks the sample-covariance test from
 * D = 4000 to D = 1000 pixels (5 standard errors stay 5 standard errors) and drops the
 * D = 70 inputs except at tau = 16 and the repeated auto cases at tau = 200.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_sort.h>
#include <hdf5.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CSDE_TEST_HAVE_VALGRIND 1
#endif
#endif

#include "corrsde/cov.h"
#include "corrsde/rng.h"
#include "corrsde/status.h"
#include "tap.h"

#define EPS DBL_EPSILON

/* ---- small deterministic generator for test inputs (independent of the library) ---- */

static uint64_t rs = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
  /* splitmix64 -> uniform in (0, 1) */
  uint64_t z = (rs += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static double nrand(void)
{
  /* Box-Muller */
  double u = urand(), v = urand();
  return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}
static void fill_normal(double *x, size_t n)
{
  for (size_t i = 0; i < n; i++) x[i] = nrand();
}

static void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* ---- dense reference linear algebra ---- */

static double maxabs(const double *x, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(x[i]) > m) m = fabs(x[i]);
  return m;
}
static double maxdiff(const double *x, const double *y, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(x[i] - y[i]);
    if (!(d <= m)) m = d; /* NaN propagates */
  }
  return m;
}
/* max_i sum_j |A_ij| */
static double norm_inf(const double *A, size_t r, size_t c)
{
  double m = 0;
  for (size_t i = 0; i < r; i++) {
    double s = 0;
    for (size_t j = 0; j < c; j++) s += fabs(A[i * c + j]);
    if (s > m) m = s;
  }
  return m;
}
/* eigenvalues of the symmetric n x n A, ascending */
static void sym_eig(const double *A, size_t n, double *ev)
{
  gsl_matrix *M = gsl_matrix_alloc(n, n);
  memcpy(M->data, A, n * n * sizeof *A);
  gsl_vector_view v = gsl_vector_view_array(ev, n);
  gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(n);
  gsl_eigen_symm(M, &v.vector, w);
  gsl_eigen_symm_free(w);
  gsl_matrix_free(M);
  gsl_sort(ev, 1, n);
}
/* L (lower, row-major, upper part garbage) with A = L L^T; returns GSL status */
static int chol(const double *A, size_t n, double *L)
{
  memcpy(L, A, n * n * sizeof *A);
  gsl_matrix_view m = gsl_matrix_view_array(L, n, n);
  return gsl_linalg_cholesky_decomp1(&m.matrix);
}
/* log det A = 2 sum log L_ii */
static double chol_logdet(const double *L, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++) s += 2.0 * log(L[i * n + i]);
  return s;
}
/* q[p] = d_p^T A^-1 d_p for the columns of the n x D row-major d, from L */
static void chol_quad(const double *L, size_t n, size_t D, const double *d, double *q)
{
  double *w = xmalloc(n * D * sizeof *w);
  memcpy(w, d, n * D * sizeof *w);
  /* w = L^-1 d;  q_p = |w_p|^2 */
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)n,
              (int)D, 1.0, L, (int)n, w, (int)D);
  for (size_t p = 0; p < D; p++) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += w[i * D + p] * w[i * D + p];
    q[p] = s;
  }
  free(w);
}
/* Y = A X for nblk blocks; A is r x c, X blocks c x D, Y blocks r x D */
static void blk_gemm(const double *A, size_t r, size_t c, size_t nblk, size_t D,
                     const double *X, double *Y)
{
  for (size_t b = 0; b < nblk; b++)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)D, (int)c, 1.0, A,
                (int)c, X + b * c * D, (int)D, 0.0, Y + b * r * D, (int)D);
}

/* Does msg contain a number within reltol of want (|want| > 0) or within abstol? */
static int msg_has_number(const char *msg, double want, double reltol)
{
  for (const char *p = msg; *p; p++) {
    if (!(*p == '-' || *p == '+' || *p == '.' || (*p >= '0' && *p <= '9'))) continue;
    char *end;
    double v = strtod(p, &end);
    if (end != p && fabs(v - want) <= reltol * fabs(want) + 1e-300) return 1;
  }
  return 0;
}

/* ---- the families ---- */

enum {
  F_IDENT,
  F_AR1,
  F_MIXED,
  F_COL,
  F_M32,
  F_M52,
  F_RBF,
  F_PEXP,
  F_TXT,
  F_H5COL,
  F_APITOEP,
  F_DENSE,
  F_APIDENSE
};

typedef struct {
  const char *spec; /* spec string (%s: temp dir for file families) */
  int kind;
  double a, b, c; /* rho / r / (ell, var, nugget) */
} family;

static const family fams[] = {
    {"identity", F_IDENT, 0, 0, 0},
    {"ar1:rho=0.9", F_AR1, 0.9, 0, 0},
    {"ar1:rho=-0.5", F_AR1, -0.5, 0, 0},
    {"mixed:alpha=1", F_MIXED, 0.5, 0, 0}, /* r = 1/(1+1) */
    {"mixed:r=0.3", F_MIXED, 0.3, 0, 0},
    {"toeplitz:col=1,0.5,0.25", F_COL, 0, 0, 0},
    {"matern32:ell=4", F_M32, 4, 1, 0},
    {"matern52:ell=3,var=2", F_M52, 3, 2, 0},
    {"rbf:ell=2,nugget=1e-6", F_RBF, 2, 1, 1e-6},
    {"powerexp:ell=3,p=1.5", F_PEXP, 3, 1.5, 0},
    {"powerexp:ell=2,p=0.5", F_PEXP, 2, 0.5, 0},
    {"toeplitz:file=%s/col.txt", F_TXT, 0, 0, 0},
    {"toeplitz:file=%s/col.h5:/col", F_H5COL, 0, 0, 0},
    {"csde_cov_alloc_toeplitz", F_APITOEP, 0.6, 0, 0},
    {"dense:file=%s/dense_%zu.h5:/C", F_DENSE, 0, 0, 0},
    {"csde_cov_alloc_dense", F_APIDENSE, 0, 0, 0},
};
#define NFAM (sizeof fams / sizeof fams[0])

static const double col_spec[] = {1, 0.5, 0.25};
static const double col_txt[] = {1, 0.6, 0.3, 0.1};  /* symbol >= 0.2: PD at every tau */
static const double col_h5[] = {1, -0.4, 0.05};      /* symbol >= 0.3 */
#define APITOEP_NCOL 40                              /* ar1 0.6 cut at 40 lags */

static char tmpdir[256];

static int is_toep_kind(int k) { return k != F_DENSE && k != F_APIDENSE; }

/* c[0..tau-1]: the analytic first column */
static void fam_col(const family *f, size_t tau, double *c)
{
  for (size_t k = 0; k < tau; k++) {
    double kk = (double)k, a;
    switch (f->kind) {
    case F_IDENT: c[k] = k == 0; break;
    case F_AR1: c[k] = pow(f->a, kk); break; /* c_k = rho^k */
    case F_MIXED: c[k] = k == 0 ? 1.0 : f->a; break; /* (1-r) I + r 11^T */
    case F_COL: c[k] = k < 3 ? col_spec[k] : 0.0; break;
    case F_TXT: c[k] = k < 4 ? col_txt[k] : 0.0; break;
    case F_H5COL: c[k] = k < 3 ? col_h5[k] : 0.0; break;
    case F_APITOEP: c[k] = k < APITOEP_NCOL ? pow(f->a, kk) : 0.0; break;
    case F_M32: /* V (1 + a) e^-a, a = sqrt3 k / L */
      a = sqrt(3.0) * kk / f->a;
      c[k] = f->b * (1 + a) * exp(-a);
      break;
    case F_M52: /* V (1 + a + a^2/3) e^-a, a = sqrt5 k / L */
      a = sqrt(5.0) * kk / f->a;
      c[k] = f->b * (1 + a + a * a / 3) * exp(-a);
      break;
    case F_RBF: /* V exp(-k^2 / (2 L^2)) + nugget at k = 0 */
      c[k] = f->b * exp(-kk * kk / (2 * f->a * f->a)) + (k == 0 ? f->c : 0.0);
      break;
    case F_PEXP: c[k] = exp(-pow(kk / f->a, f->b)); break; /* exp(-(k/L)^p) */
    default: c[k] = NAN;
    }
  }
}

static void toeplitz_from_col(const double *c, size_t n, double *T)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) T[i * n + j] = c[i > j ? i - j : j - i];
}

/* the random SPD matrix of the dense family: G G^T / tau + 0.5 I, exactly symmetric.
 * For tau > 256 (only the auto threshold check) an O(tau^2) one instead:
 * diag(1 + i / tau) + v v^T / |v|^2, v random: SPD, not Toeplitz. */
static void dense_matrix(size_t tau, double *M)
{
  uint64_t save = rs;
  rs = 0xC0FFEEULL + tau;
  if (tau > 256) {
    double *v = xmalloc(tau * sizeof *v), vv = 0;
    fill_normal(v, tau);
    for (size_t i = 0; i < tau; i++) vv += v[i] * v[i];
    for (size_t i = 0; i < tau; i++)
      for (size_t j = 0; j <= i; j++)
        M[i * tau + j] = M[j * tau + i] =
            v[i] * v[j] / vv + (i == j ? 1.0 + (double)i / (double)tau : 0.0);
    free(v);
    rs = save;
    return;
  }
  double *G = xmalloc(tau * tau * sizeof *G);
  fill_normal(G, tau * tau);
  for (size_t i = 0; i < tau; i++)
    for (size_t j = 0; j <= i; j++) {
      double s = 0;
      for (size_t k = 0; k < tau; k++) s += G[i * tau + k] * G[j * tau + k];
      M[i * tau + j] = M[j * tau + i] = s / (double)tau + (i == j ? 0.5 : 0.0);
    }
  free(G);
  rs = save;
}

/* the tau x tau matrix the family defines */
static void fam_matrix(const family *f, size_t tau, double *T)
{
  if (is_toep_kind(f->kind)) {
    double *c = xmalloc(tau * sizeof *c);
    fam_col(f, tau, c);
    toeplitz_from_col(c, tau, T);
    free(c);
  } else {
    dense_matrix(tau, T);
  }
}

/* T. Chan: c_k = ((n-k) t_k + k t_(n-k)) / n */
static void tchan_col(const double *t, size_t n, double *c)
{
  c[0] = t[0];
  for (size_t k = 1; k < n; k++) c[k] = ((double)(n - k) * t[k] + (double)k * t[n - k]) / n;
}
/* Strang: c_k = t_k for k <= n/2, t_(n-k) otherwise */
static void strang_col(const double *t, size_t n, double *c)
{
  for (size_t k = 0; k < n; k++) c[k] = 2 * k <= n ? t[k] : t[n - k];
}

/* ---- files ---- */

static char created[64][320];
static int ncreated = 0;

static int h5_write(const char *path, const char *name, const double *data, int rank,
                    const hsize_t *dims)
{
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(f);
  if (ncreated < 64) snprintf(created[ncreated++], sizeof created[0], "%s", path);
  return e < 0 ? -1 : 0;
}

static void write_dense_file(size_t tau)
{
  char path[320];
  snprintf(path, sizeof path, "%s/dense_%zu.h5", tmpdir, tau);
  double *M = xmalloc(tau * tau * sizeof *M);
  dense_matrix(tau, M);
  hsize_t dims[2] = {tau, tau};
  ok(h5_write(path, "/C", M, 2, dims) == 0, "wrote %s", path);
  free(M);
}

static void setup_files(void)
{
  snprintf(tmpdir, sizeof tmpdir, "/tmp/csde_test_cov_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    exit(2);
  }
  char path[320];
  snprintf(path, sizeof path, "%s/col.txt", tmpdir);
  FILE *fp = fopen(path, "w");
  fprintf(fp, "# first column of a Toeplitz covariance\n1\n0.6 0.3\n0.1\n");
  fclose(fp);
  snprintf(created[ncreated++], sizeof created[0], "%s", path);
  snprintf(path, sizeof path, "%s/col.h5", tmpdir);
  hsize_t n = 3;
  ok(h5_write(path, "/col", col_h5, 1, &n) == 0, "wrote %s", path);
  const size_t taus[] = {1, 2, 7, 16, 33, 200, CSDE_COV_AUTO_TAU};
  for (size_t i = 0; i < sizeof taus / sizeof taus[0]; i++) write_dense_file(taus[i]);
}

static void cleanup_files(void)
{
  for (int i = 0; i < ncreated; i++) unlink(created[i]);
  rmdir(tmpdir);
}

/* ---- building an operator of a family ---- */

static void fam_spec(const family *f, size_t tau, char *out, size_t len)
{
  if (f->kind == F_APITOEP) snprintf(out, len, "toeplitz");
  else if (f->kind == F_APIDENSE) snprintf(out, len, "dense");
  else if (f->kind == F_DENSE) snprintf(out, len, f->spec, tmpdir, tau);
  else if (strchr(f->spec, '%')) snprintf(out, len, f->spec, tmpdir);
  else snprintf(out, len, "%s", f->spec);
}

static int fam_alloc(const family *f, size_t tau, const csde_cov_params *par, csde_cov **C,
                     csde_err *err)
{
  char spec[512];
  if (f->kind == F_APITOEP) {
    double c[APITOEP_NCOL];
    for (size_t k = 0; k < APITOEP_NCOL; k++) c[k] = pow(f->a, (double)k);
    return csde_cov_alloc_toeplitz(C, c, APITOEP_NCOL, tau, par, err);
  }
  if (f->kind == F_APIDENSE) {
    double *M = xmalloc(tau * tau * sizeof *M);
    dense_matrix(tau, M);
    int s = csde_cov_alloc_dense(C, M, tau, par, err);
    free(M);
    return s;
  }
  fam_spec(f, tau, spec, sizeof spec);
  return csde_cov_alloc(C, spec, tau, par, err);
}

/* ---- the battery ---- */

static int quick = 0;
static const csde_rng_key KEY = {20240917u, 3u};

static int is_circ(csde_cov_method m)
{
  return m == CSDE_COV_CIRC_TCHAN || m == CSDE_COV_CIRC_STRANG;
}

/* Sample covariance of nblk * D draws against Cm, entry by entry within 5 standard
 * errors: SE(S_ij) = sqrt((C_ii C_jj + C_ij^2) / n) for the known-mean estimator
 * S_ij = (1/n) sum x_i x_j of Gaussian draws. */
static void check_sample_stats(const char *name, const csde_cov *C, const double *Cm,
                               size_t tau)
{
  size_t D = quick ? 1000 : 4000, nblk = 3, n = D * nblk;
  csde_cov_ws *ws = NULL;
  csde_err err;
  csde_err_clear(&err);
  int s = csde_cov_ws_alloc(&ws, C, D, 1, &err);
  double *x = xmalloc(nblk * tau * D * sizeof *x);
  if (s == 0) s = csde_cov_sample(C, ws, KEY, 100, nblk, x, &err);
  if (!ok(s == 0, "%s: sample %zu blocks of D=%zu", name, nblk, D)) {
    printf("# %s\n", err.msg);
    goto done;
  }
  double *S = xmalloc(tau * tau * sizeof *S), *mean = xmalloc(tau * sizeof *mean);
  memset(S, 0, tau * tau * sizeof *S);
  memset(mean, 0, tau * sizeof *mean);
  for (size_t b = 0; b < nblk; b++) {
    const double *xb = x + b * tau * D;
    /* S += X_b X_b^T */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tau, (int)tau, (int)D, 1.0, xb,
                (int)D, xb, (int)D, 1.0, S, (int)tau);
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++) mean[i] += xb[i * D + p];
  }
  double worst = 0, worstm = 0;
  size_t bad = 0;
  for (size_t i = 0; i < tau; i++) {
    double zm = fabs(mean[i] / n) / sqrt(Cm[i * tau + i] / n);
    if (!(zm <= worstm)) worstm = zm;
    for (size_t j = 0; j < tau; j++) {
      double se = sqrt((Cm[i * tau + i] * Cm[j * tau + j] + Cm[i * tau + j] * Cm[i * tau + j]) /
                       (double)n);
      double z = fabs(S[i * tau + j] / n - Cm[i * tau + j]) / se;
      if (!(z <= 5.0)) bad++;
      if (!(z <= worst)) worst = z;
    }
  }
  ok(bad == 0, "%s: sample covariance of %zu draws within 5 SE of C (worst %.2f SE)", name,
     n, worst);
  ok(worstm <= 5.0, "%s: sample mean within 5 SE of 0 (worst %.2f SE)", name, worstm);
  free(S);
  free(mean);
done:
  free(x);
  csde_cov_ws_free(ws);
}

/* apply / inverse / mahalanobis / logpdf / sample on random inputs, D pixels, nblk blocks */
static void check_random(const char *name, const csde_cov *C, csde_cov_method eff,
                         const double *Cm, const double *L, const double *Vp, size_t tau,
                         size_t nd, size_t D, size_t nblk, double cond, double lmin,
                         double ld_ref, double tol_ld, double cg_tol, int threads_check)
{
  csde_err err;
  csde_err_clear(&err);
  csde_cov_ws *ws = NULL;
  int s = csde_cov_ws_alloc(&ws, C, D, 1, &err);
  if (!ok(s == 0, "%s D=%zu: ws_alloc", name, D)) {
    printf("# %s\n", err.msg);
    return;
  }
  ok(csde_cov_ws_D(ws) == D, "%s D=%zu: ws_D", name, D);
  size_t nx = nblk * tau * D, nz = nblk * nd * D;
  double *x = xmalloc(nx * sizeof *x), *bv = xmalloc(nx * sizeof *bv);
  double *z = xmalloc(nz * sizeof *z), *y = xmalloc(nx * sizeof *y);
  double *yr = xmalloc(nx * sizeof *yr), *r = xmalloc(nx * sizeof *r);
  double *q = xmalloc(nblk * D * sizeof *q), *qr = xmalloc(nblk * D * sizeof *qr);
  double *dd = xmalloc(nx * sizeof *dd), *lp = xmalloc(nblk * sizeof *lp);
  fill_normal(x, nx);
  fill_normal(bv, nx);
  fill_normal(z, nz);
  /* outputs start as NaN, so a call that fails without writing them cannot pass */
  for (size_t i = 0; i < nx; i++) y[i] = r[i] = NAN;
  for (size_t i = 0; i < nblk * D; i++) q[i] = NAN;
  for (size_t i = 0; i < nblk; i++) lp[i] = NAN;
  double normC = norm_inf(Cm, tau, tau), normV = norm_inf(Vp, tau, nd);

  /* y = C x against dgemm */
  s = csde_cov_apply(C, ws, CSDE_COV_OP_C, nblk, x, y, &err);
  blk_gemm(Cm, tau, tau, nblk, D, x, yr);
  ok(s == 0 && maxdiff(y, yr, nx) <= 1e-12 * normC * maxabs(x, nx),
     "%s D=%zu nblk=%zu: C x = dgemm (diff %.3g, tol %.3g) %s", name, D, nblk,
     maxdiff(y, yr, nx), 1e-12 * normC * maxabs(x, nx), s ? err.msg : "");

  /* y = V' z against dgemm with the V' extracted from the identity */
  s = csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, nblk, z, y, &err);
  blk_gemm(Vp, tau, nd, nblk, D, z, yr);
  ok(s == 0 && maxdiff(y, yr, nx) <= 1e-12 * normV * maxabs(z, nz),
     "%s D=%zu nblk=%zu: V' z = dgemm (diff %.3g) %s", name, D, nblk, maxdiff(y, yr, nx),
     s ? err.msg : "");

  /* y = C^-1 x, per pixel. A direct solve is backward stable: |C y - x| <= tdir |x| with
   * tdir = 10 tau eps cond. embed's CG stops on the normwise backward error
   * |x - C y| <= cg_tol (|C| |y| + |x|), |C| <= lambda_max(B) <= 2 normC: allow 10x that. */
  int cgm = eff == CSDE_COV_EMBED;
  double tdir = 10.0 * tau * EPS * cond;
  s = csde_cov_apply(C, ws, CSDE_COV_OP_INV, nblk, x, y, &err);
  blk_gemm(Cm, tau, tau, nblk, D, y, r);
  double worst = 0;
  for (size_t b = 0; b < nblk; b++)
    for (size_t p = 0; p < D; p++) {
      double rn = 0, xn = 0, yn = 0;
      for (size_t i = 0; i < tau; i++) {
        size_t o = b * tau * D + i * D + p;
        rn += (r[o] - x[o]) * (r[o] - x[o]);
        xn += x[o] * x[o];
        yn += y[o] * y[o];
      }
      double bound = tdir * sqrt(xn) +
                     (cgm ? 10.0 * cg_tol * (2.0 * normC * sqrt(yn) + sqrt(xn)) : 0.0);
      double rel = sqrt(rn) / bound;
      if (!(rel <= worst)) worst = rel;
    }
  ok(s == 0 && worst <= 1.0, "%s D=%zu nblk=%zu: C (C^-1 x) = x (worst residual / bound %.3g) %s",
     name, D, nblk, worst, s ? err.msg : "");
  /* For the quadratic forms below: with |y| <= |x| / lambda_min, the residual bound above
   * is <= tinv |x| and |q - q_ref| = |x^T C^-1 r| <= tinv |x|^2 / lambda_min. */
  double tinv = tdir + (cgm ? 10.0 * cg_tol * (2.0 * normC / lmin + 1.0) : 0.0);

  /* Mahalanobis with b: q = (a-b)^T C^-1 (a-b); |dq| <= tinv |d|^2 / lambda_min */
  for (size_t i = 0; i < nx; i++) dd[i] = x[i] - bv[i];
  for (size_t b = 0; b < nblk; b++) chol_quad(L, tau, D, dd + b * tau * D, qr + b * D);
  double total = NAN, tref = 0, ttol = 0, qworst = 0;
  s = csde_cov_mahalanobis(C, ws, nblk, x, bv, q, &total, &err);
  int qok = s == 0;
  for (size_t b = 0; b < nblk; b++)
    for (size_t p = 0; p < D; p++) {
      double dn = 0;
      for (size_t i = 0; i < tau; i++) dn += dd[b * tau * D + i * D + p] * dd[b * tau * D + i * D + p];
      double tq = tinv * dn / lmin + 1e-14 * qr[b * D + p];
      double e = fabs(q[b * D + p] - qr[b * D + p]);
      if (!(e <= tq)) qok = 0;
      if (!(e / tq <= qworst)) qworst = e / tq;
      tref += qr[b * D + p];
      ttol += tq;
    }
  ok(qok, "%s D=%zu nblk=%zu: mahalanobis(a, b) per pixel (worst |dq|/tol %.3g) %s", name, D,
     nblk, qworst, s ? err.msg : "");
  ok(s == 0 && fabs(total - tref) <= ttol, "%s D=%zu: mahalanobis total = sum (got %.17g want %.17g)",
     name, D, total, tref);

  /* Mahalanobis without b, q only; then total only */
  double qtol_sum = 0;
  for (size_t b = 0; b < nblk; b++) chol_quad(L, tau, D, x + b * tau * D, qr + b * D);
  s = csde_cov_mahalanobis(C, ws, nblk, x, NULL, q, NULL, &err);
  qok = s == 0;
  tref = 0;
  for (size_t b = 0; b < nblk; b++)
    for (size_t p = 0; p < D; p++) {
      double xn = 0;
      for (size_t i = 0; i < tau; i++) xn += x[b * tau * D + i * D + p] * x[b * tau * D + i * D + p];
      double tq = tinv * xn / lmin + 1e-14 * qr[b * D + p];
      if (!(fabs(q[b * D + p] - qr[b * D + p]) <= tq)) qok = 0;
      tref += qr[b * D + p];
      qtol_sum += tq;
    }
  ok(qok, "%s D=%zu: mahalanobis(a, NULL) = a^T C^-1 a %s", name, D, s ? err.msg : "");
  total = NAN;
  s = csde_cov_mahalanobis(C, ws, nblk, x, NULL, NULL, &total, &err);
  ok(s == 0 && fabs(total - tref) <= qtol_sum, "%s D=%zu: mahalanobis q=NULL total (got %.17g want %.17g)",
     name, D, total, tref);

  /* logpdf: -1/2 (sum_p q_p + D log det C + D tau log 2 pi) */
  s = csde_cov_logpdf(C, ws, nblk, x, lp, &err);
  int lok = s == 0;
  double lworst = 0;
  for (size_t b = 0; b < nblk; b++) {
    double sq = 0, st = 0;
    for (size_t p = 0; p < D; p++) {
      double xn = 0;
      for (size_t i = 0; i < tau; i++) xn += x[b * tau * D + i * D + p] * x[b * tau * D + i * D + p];
      sq += qr[b * D + p];
      st += tinv * xn / lmin;
    }
    double want = -0.5 * (sq + D * ld_ref + (double)(D * tau) * log(2 * M_PI));
    double tol = 0.5 * (st + D * tol_ld) + 1e-13 * fabs(want);
    if (!(fabs(lp[b] - want) <= tol)) {
      lok = 0;
      printf("# logpdf block %zu: got %.17g want %.17g tol %.3g\n", b, lp[b], want, tol);
    }
    if (!(fabs(lp[b] - want) / tol <= lworst)) lworst = fabs(lp[b] - want) / tol;
  }
  ok(lok, "%s D=%zu nblk=%zu: logpdf = dense Gaussian log density (worst |d|/tol %.3g) %s",
     name, D, nblk, lworst, s ? err.msg : "");

  /* sample: sample j is V' applied to normal(key, (first+j) nd D + row D + pixel) */
  size_t first = 5;
  s = csde_cov_sample(C, ws, KEY, first, nblk, y, &err);
  csde_rng_normal(KEY, (uint64_t)(first * nd * D), nz, z);
  csde_cov_ws *ws2 = NULL;
  blk_gemm(Vp, tau, nd, nblk, D, z, yr);
  ok(s == 0 && maxdiff(y, yr, nx) <= 1e-12 * normV * maxabs(z, nz),
     "%s D=%zu nblk=%zu: sample = V' normal(key, (first+j) m D + row D + pixel) (diff %.3g) %s",
     name, D, nblk, maxdiff(y, yr, nx), s ? err.msg : "");
  /* each block alone (first = first + b) is bitwise the same */
  int same = 1;
  for (size_t b = 0; b < nblk; b++) {
    s = csde_cov_sample(C, ws, KEY, first + b, 1, r, &err);
    if (s || memcmp(r, y + b * tau * D, tau * D * sizeof *r)) same = 0;
  }
  ok(same, "%s D=%zu nblk=%zu: sample blocks alone == inside the batch (bitwise)", name, D,
     nblk);

  if (threads_check) {
    /* a workspace for 2 threads gives bitwise the same results as one for 1 thread */
    s = csde_cov_ws_alloc(&ws2, C, D, 2, &err);
    if (ok(s == 0, "%s D=%zu: ws_alloc nthreads=2", name, D)) {
      const csde_cov_op ops[3] = {CSDE_COV_OP_C, CSDE_COV_OP_SQRT, CSDE_COV_OP_INV};
      const char *opn[3] = {"C", "SQRT", "INV"};
      for (int o = 0; o < 3; o++) {
        const double *in = ops[o] == CSDE_COV_OP_SQRT ? z : x;
        int s1 = csde_cov_apply(C, ws, ops[o], nblk, in, y, &err);
        int s2 = csde_cov_apply(C, ws2, ops[o], nblk, in, yr, &err);
        ok(s1 == 0 && s2 == 0 && !memcmp(y, yr, nx * sizeof *y),
           "%s D=%zu: apply %s with 1 and 2 threads bitwise equal", name, D, opn[o]);
      }
      int s1 = csde_cov_sample(C, ws, KEY, 9, nblk, y, &err);
      int s2 = csde_cov_sample(C, ws2, KEY, 9, nblk, yr, &err);
      ok(s1 == 0 && s2 == 0 && !memcmp(y, yr, nx * sizeof *y),
         "%s D=%zu: sample with 1 and 2 threads bitwise equal", name, D);
      double t1 = 0, t2 = 1;
      s1 = csde_cov_mahalanobis(C, ws, nblk, x, bv, q, &t1, &err);
      s2 = csde_cov_mahalanobis(C, ws2, nblk, x, bv, qr, &t2, &err);
      ok(s1 == 0 && s2 == 0 && !memcmp(q, qr, nblk * D * sizeof *q) && !memcmp(&t1, &t2, sizeof t1),
         "%s D=%zu: mahalanobis with 1 and 2 threads bitwise equal", name, D);
    }
    csde_cov_ws_free(ws2);

#ifdef _OPENMP
    /* the operator is shared by two threads, each with its own workspace */
    double *y2[2] = {xmalloc(nx * sizeof(double)), xmalloc(nx * sizeof(double))};
    for (size_t i = 0; i < nx; i++) y2[0][i] = y2[1][i] = NAN;
    int st[2] = {-1, -1};
    s = csde_cov_apply(C, ws, CSDE_COV_OP_INV, nblk, x, y, &err);
#pragma omp parallel num_threads(2)
    {
      int t = omp_get_thread_num();
      if (t < 2) {
        csde_cov_ws *w = NULL;
        csde_err e;
        st[t] = csde_cov_ws_alloc(&w, C, D, 1, &e);
        if (!st[t]) st[t] = csde_cov_apply(C, w, CSDE_COV_OP_INV, nblk, x, y2[t], &e);
        csde_cov_ws_free(w);
      }
    }
    int nt = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      nt = omp_get_num_threads();
    }
    if (nt == 2)
      ok(s == 0 && st[0] == 0 && st[1] == 0 && !memcmp(y, y2[0], nx * sizeof *y) &&
             !memcmp(y, y2[1], nx * sizeof *y),
         "%s D=%zu: one operator shared by 2 threads with their own ws", name, D);
    free(y2[0]);
    free(y2[1]);
#endif
  }

  free(x);
  free(bv);
  free(z);
  free(y);
  free(yr);
  free(r);
  free(q);
  free(qr);
  free(dd);
  free(lp);
  csde_cov_ws_free(ws);
}

static void run_case(const family *f, csde_cov_method m, size_t tau)
{
  char name[600], spec[512];
  fam_spec(f, tau, spec, sizeof spec);
  snprintf(name, sizeof name, "%s [%s] tau=%zu",
           f->kind == F_DENSE ? "dense:file" : f->spec, csde_cov_method_name(m), tau);
  int toep = is_toep_kind(f->kind);
  csde_cov_params par = csde_cov_default_params();
  par.method = m;
  csde_err err;
  csde_err_clear(&err);
  csde_cov *C = NULL;
  int s = fam_alloc(f, tau, &par, &C, &err);

  if (!toep && (is_circ(m) || m == CSDE_COV_EMBED)) {
    ok((s == CSDE_EINVAL || s == CSDE_ENOTSUP) && C == NULL && err.status == s && err.msg[0],
       "%s: refused for a dense matrix (status %d)", name, s);
    printf("# message: %s\n", err.msg);
    csde_cov_free(C);
    return;
  }

  double *T = xmalloc(tau * tau * sizeof *T), *want = xmalloc(tau * tau * sizeof *want);
  fam_matrix(f, tau, T);
  memcpy(want, T, tau * tau * sizeof *T);
  if (is_circ(m)) {
    double *t = xmalloc(tau * sizeof *t), *c = xmalloc(tau * sizeof *c);
    for (size_t k = 0; k < tau; k++) t[k] = T[k];
    if (m == CSDE_COV_CIRC_TCHAN) tchan_col(t, tau, c);
    else strang_col(t, tau, c);
    toeplitz_from_col(c, tau, want); /* a symmetric circulant is the Toeplitz of its column */
    free(t);
    free(c);
  }
  double *evw = xmalloc(tau * sizeof *evw);
  sym_eig(want, tau, evw);
  double scale_ev = fmax(fabs(evw[0]), fabs(evw[tau - 1]));

  if (m == CSDE_COV_CIRC_STRANG && s != 0) {
    /* refused: it must be because the Strang circulant is indefinite */
    ok(s == CSDE_ENOTPSD && err.status == s && strstr(err.msg, "eigenvalue") &&
           evw[0] < -64.0 * tau * EPS * scale_ev && msg_has_number(err.msg, evw[0], 1e-4),
       "%s: refused as indefinite, naming the eigenvalue %.6g (status %d)", name, evw[0], s);
    printf("# message: %s\n", err.msg);
    goto out;
  }
  if (!ok(s == 0 && C != NULL, "%s: alloc", name)) {
    printf("# status %d: %s\n", s, err.msg);
    goto out;
  }
  if (m == CSDE_COV_CIRC_STRANG)
    ok(evw[0] > -64.0 * tau * EPS * scale_ev, "%s: accepted Strang circulant is PSD (min %.3g)",
       name, evw[0]);

  csde_cov_method eff = m;
  if (m == CSDE_COV_AUTO) eff = toep && tau >= CSDE_COV_AUTO_TAU ? CSDE_COV_EMBED : CSDE_COV_DENSE;
  ok(csde_cov_method_of(C) == eff, "%s: method_of = %s (got %s)", name,
     csde_cov_method_name(eff), csde_cov_method_name(csde_cov_method_of(C)));
  ok(csde_cov_tau(C) == tau, "%s: tau", name);
  size_t nd = csde_cov_noise_dim(C), es = csde_cov_embed_size(C);
  if (eff == CSDE_COV_EMBED)
    ok(nd == es && es >= tau && es + 2 >= 2 * tau && es <= (64 * tau > 1024 ? 64 * tau : 1024),
       "%s: noise_dim = embed size %zu >= 2(tau-1)", name, es);
  else
    ok(nd == tau && es == 0, "%s: noise_dim = tau, embed_size = 0 (got %zu, %zu)", name, nd,
       es);
  ok(!strcmp(csde_cov_spec(C), spec), "%s: spec '%s'", name, csde_cov_spec(C));
  ok(csde_cov_is_toeplitz(C) == toep, "%s: is_toeplitz = %d", name, toep);
  ok(!csde_cov_is_singular(C), "%s: not singular", name);

  /* the matrix: analytic to 1e-14 (a few ulps of entries of size <= 2) */
  double *Cm = xmalloc(tau * tau * sizeof *Cm);
  csde_cov_matrix(C, Cm);
  double dm = maxdiff(Cm, want, tau * tau);
  ok(dm <= 1e-14 * fmax(1.0, maxabs(want, tau * tau)), "%s: matrix = %s (diff %.3g)", name,
     m == CSDE_COV_CIRC_TCHAN    ? "T. Chan ((n-k) t_k + k t_(n-k))/n"
     : m == CSDE_COV_CIRC_STRANG ? "Strang t_k / t_(n-k)"
                                 : "the family's analytic matrix",
     dm);

  /* eigenvalues: Weyl, |d lambda| <= |E|_2 <= 64 tau eps lambda_max */
  double *ev = xmalloc(tau * sizeof *ev), *ev_ref = xmalloc(tau * sizeof *ev_ref);
  for (size_t i = 0; i < tau; i++) ev[i] = NAN;
  sym_eig(Cm, tau, ev_ref);
  double lmin = ev_ref[0], lmax = ev_ref[tau - 1], cond = lmax / lmin;
  s = csde_cov_eigenvalues(C, ev, &err);
  int asc = 1;
  for (size_t i = 1; i < tau; i++)
    if (!(ev[i] >= ev[i - 1])) asc = 0;
  ok(s == 0 && asc && maxdiff(ev, ev_ref, tau) <= 64.0 * tau * EPS * lmax,
     "%s: eigenvalues ascending = gsl_eigen_symm (diff %.3g, cond %.3g) %s", name,
     maxdiff(ev, ev_ref, tau), cond, s ? err.msg : "");

  /* log det against Cholesky; first-order |d logdet| = |tr(C^-1 E)| <= tau eps cond */
  double *L = xmalloc(tau * tau * sizeof *L);
  int cs = chol(Cm, tau, L);
  ok(cs == 0, "%s: reference Cholesky", name);
  double ld_ref = chol_logdet(L, tau), ld = csde_cov_logdet(C);
  double tol_ld = 1e-10 * fmax(1.0, fabs(ld_ref)) + 10.0 * tau * EPS * cond;
  char what[700];
  snprintf(what, sizeof what, "%s: log det = dense Cholesky", name);
  ok_close(ld, ld_ref, tol_ld, what);

  /* the approximation report */
  csde_cov_report rep = csde_cov_approx_report(C);
  if (is_circ(m)) {
    /* KL(N(0,T) || N(0,circ)) / tau = 1/2 [tr(circ^-1 T) - tau + logdet circ - logdet T] / tau */
    double *X = xmalloc(tau * tau * sizeof *X), *LT = xmalloc(tau * tau * sizeof *LT);
    memcpy(X, T, tau * tau * sizeof *T);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)tau,
                (int)tau, 1.0, L, (int)tau, X, (int)tau);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)tau,
                (int)tau, 1.0, L, (int)tau, X, (int)tau);
    double tr = 0;
    for (size_t i = 0; i < tau; i++) tr += X[i * tau + i];
    chol(T, tau, LT);
    double kl = 0.5 * (tr - tau + ld_ref - chol_logdet(LT, tau)) / tau;
    ok(rep.approx == 1, "%s: report.approx = 1", name);
    snprintf(what, sizeof what, "%s: report KL per frame = dense KL", name);
    ok_close(rep.kl_per_frame, kl, 1e-10 * fmax(1.0, kl) + 10.0 * EPS * cond, what);
    snprintf(what, sizeof what, "%s: report max_entry_diff", name);
    ok_close(rep.max_entry_diff, maxdiff(Cm, T, tau * tau),
             1e-14 * fmax(1.0, maxabs(T, tau * tau)), what);
    snprintf(what, sizeof what, "%s: report eig_min", name);
    ok_close(rep.eig_min, lmin, 64.0 * tau * EPS * lmax, what);
    snprintf(what, sizeof what, "%s: report eig_max", name);
    ok_close(rep.eig_max, lmax, 64.0 * tau * EPS * lmax, what);
    free(X);
    free(LT);
  } else {
    ok(rep.approx == 0 && rep.kl_per_frame == 0 && rep.max_entry_diff == 0 && rep.eig_min == 0 &&
           rep.eig_max == 0,
       "%s: report of an exact method is all zero", name);
  }

  /* C applied to the identity (D = tau) is the matrix */
  double normC = norm_inf(Cm, tau, tau);
  csde_cov_ws *ws = NULL;
  double *I = NULL, *Y = NULL, *Vp = xmalloc(tau * nd * sizeof *Vp);
  for (size_t i = 0; i < tau * nd; i++) Vp[i] = NAN;
  s = csde_cov_ws_alloc(&ws, C, tau, 1, &err);
  if (ok(s == 0, "%s: ws_alloc D=tau", name)) {
    I = calloc(tau * tau, sizeof *I);
    Y = xmalloc(tau * tau * sizeof *Y);
    for (size_t i = 0; i < tau * tau; i++) Y[i] = NAN;
    for (size_t i = 0; i < tau; i++) I[i * tau + i] = 1;
    s = csde_cov_apply(C, ws, CSDE_COV_OP_C, 1, I, Y, &err);
    ok(s == 0 && maxdiff(Y, Cm, tau * tau) <= 1e-12 * normC,
       "%s: C I = matrix (diff %.3g)", name, maxdiff(Y, Cm, tau * tau));
    free(I);
    free(Y);
  }
  csde_cov_ws_free(ws);
  ws = NULL;

  /* V' = V' I_nd (D = nd); V' V'^T = C */
  s = csde_cov_ws_alloc(&ws, C, nd, 1, &err);
  if (ok(s == 0, "%s: ws_alloc D=noise_dim", name)) {
    I = calloc(nd * nd, sizeof *I);
    for (size_t i = 0; i < nd; i++) I[i * nd + i] = 1;
    s = csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, 1, I, Vp, &err);
    double *VV = xmalloc(tau * tau * sizeof *VV);
    /* VV = V' V'^T */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)tau, (int)tau, (int)nd, 1.0, Vp,
                (int)nd, Vp, (int)nd, 0.0, VV, (int)tau);
    ok(s == 0 && maxdiff(VV, Cm, tau * tau) <= 1e-12 * normC,
       "%s: V' V'^T = C, V' %zu x %zu (diff %.3g)", name, tau, nd, maxdiff(VV, Cm, tau * tau));
    if (eff == CSDE_COV_DENSE_CHOLESKY) {
      int lower = 1;
      for (size_t i = 0; i < tau; i++)
        for (size_t j = i + 1; j < tau; j++)
          if (Vp[i * nd + j] != 0.0) lower = 0;
      ok(lower, "%s: V' is the lower-triangular Cholesky factor", name);
    }
    free(VV);
    free(I);
  }
  csde_cov_ws_free(ws);

  /* random inputs. At large tau (embed: every C^-1 is a CG solve) fewer pixels: auto
   * there is the same embed operator again, and quick mode (valgrind) keeps D <= 3. The
   * thread checks run at tau = 16 only: each 2-thread region costs the OpenMP spin-wait. */
  const size_t Ds[3] = {1, 3, 70}, nblks[3] = {2, 1, 3};
  int big = tau > 100;
  for (int i = 0; i < 3; i++) {
    if (Ds[i] == 70 && ((big && m == CSDE_COV_AUTO) || (quick && tau != 16))) continue;
    if (big && Ds[i] == 1 && m == CSDE_COV_AUTO) continue;
    check_random(name, C, eff, Cm, L, Vp, tau, nd, Ds[i], big && Ds[i] == 70 ? 1 : nblks[i],
                 cond, lmin, ld_ref, tol_ld, par.cg_tol, Ds[i] == 70 && tau == 16);
  }

  if (tau == 7) check_sample_stats(name, C, Cm, tau);

  free(Cm);
  free(ev);
  free(ev_ref);
  free(L);
  free(Vp);
out:
  free(T);
  free(want);
  free(evw);
  csde_cov_free(C);
}

static void check_methods(void)
{
  const struct {
    const char *s;
    csde_cov_method m;
  } names[] = {{"auto", CSDE_COV_AUTO},
               {"dense", CSDE_COV_DENSE},
               {"dense-cholesky", CSDE_COV_DENSE_CHOLESKY},
               {"circulant", CSDE_COV_CIRC_TCHAN},
               {"circulant-tchan", CSDE_COV_CIRC_TCHAN},
               {"circulant-strang", CSDE_COV_CIRC_STRANG},
               {"embed", CSDE_COV_EMBED}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    csde_cov_method m = (csde_cov_method)-1;
    csde_err err;
    int s = csde_cov_method_parse(names[i].s, &m, &err);
    ok(s == 0 && m == names[i].m, "method_parse('%s')", names[i].s);
    /* the name round-trips (circulant is an alias of circulant-tchan) */
    csde_cov_method m2 = (csde_cov_method)-1;
    const char *nm = csde_cov_method_name(m);
    s = nm ? csde_cov_method_parse(nm, &m2, &err) : -1;
    ok(s == 0 && m2 == m, "method_name(%d) = '%s' parses back", (int)m, nm ? nm : "(null)");
  }
  csde_cov_params p = csde_cov_default_params();
  ok(p.method == CSDE_COV_AUTO && p.cg_tol == 1e-12 && p.cg_maxiter == 0 && p.embed_max == 0 &&
         p.sym_tol == 1e-12,
     "default params as documented");
}

/* auto: dense below CSDE_COV_AUTO_TAU, embed from it on, dense for the dense family */
static void check_auto_threshold(void)
{
  /* Just below the threshold auto builds a dense operator (an O(tau^3) eigensolve each):
   * one family there, three at the threshold; quick mode (valgrind) skips the dense ones. */
  const char *specs[] = {"ar1:rho=0.9", "matern32:ell=4", "identity"};
  for (size_t i = 0; i < 3; i++) {
    for (size_t tau = CSDE_COV_AUTO_TAU - 1; tau <= CSDE_COV_AUTO_TAU; tau++) {
      if (tau < CSDE_COV_AUTO_TAU && (i > 0 || quick)) continue;
      csde_cov *C = NULL;
      csde_err err;
      int s = csde_cov_alloc(&C, specs[i], tau, NULL, &err);
      csde_cov_method want = tau < CSDE_COV_AUTO_TAU ? CSDE_COV_DENSE : CSDE_COV_EMBED;
      ok(s == 0 && csde_cov_method_of(C) == want, "auto %s tau=%zu picks %s", specs[i], tau,
         csde_cov_method_name(want));
      csde_cov_free(C);
    }
  }
  if (quick) return;
  char spec[400];
  snprintf(spec, sizeof spec, "dense:file=%s/dense_%d.h5:/C", tmpdir, CSDE_COV_AUTO_TAU);
  csde_cov *C = NULL;
  csde_err err;
  int s = csde_cov_alloc(&C, spec, CSDE_COV_AUTO_TAU, NULL, &err);
  ok(s == 0 && csde_cov_method_of(C) == CSDE_COV_DENSE, "auto dense family tau=%d picks dense",
     CSDE_COV_AUTO_TAU);
  if (s) printf("# %s\n", err.msg);
  csde_cov_free(C);
}

/* a tiny asymmetry within sym_tol is accepted; the matrix is then symmetric */
static void check_sym_tol(void)
{
  size_t tau = 7;
  double *M = xmalloc(tau * tau * sizeof *M), *Cm = xmalloc(tau * tau * sizeof *Cm);
  dense_matrix(tau, M);
  M[2 * tau + 5] += 1e-14 * maxabs(M, tau * tau);
  csde_cov *C = NULL;
  csde_err err;
  int s = csde_cov_alloc_dense(&C, M, tau, NULL, &err);
  if (ok(s == 0, "asymmetry 1e-14 max|C| within sym_tol accepted")) {
    csde_cov_matrix(C, Cm);
    int sym = 1;
    for (size_t i = 0; i < tau; i++)
      for (size_t j = 0; j < tau; j++)
        if (Cm[i * tau + j] != Cm[j * tau + i]) sym = 0;
    ok(sym && maxdiff(Cm, M, tau * tau) <= 1e-14 * maxabs(M, tau * tau),
       "the accepted matrix is symmetric and close to the input");
  }
  csde_cov_free(C);
  free(M);
  free(Cm);
}

/* a singular PSD C: the operator exists, samples, but has no inverse */
static void check_singular(void)
{
  /* 11^T (tau = 4): rank 1, exactly singular */
  csde_cov_params par = csde_cov_default_params();
  par.method = CSDE_COV_DENSE;
  csde_cov *C = NULL;
  csde_err err;
  size_t tau = 4, D = 4;
  int s = csde_cov_alloc(&C, "toeplitz:col=1,1,1,1", tau, &par, &err);
  if (!ok(s == 0, "singular PSD 11^T accepted by dense")) {
    printf("# %s\n", err.msg);
    return;
  }
  ok(csde_cov_is_singular(C) == 1, "11^T: is_singular");
  ok(csde_cov_logdet(C) == -INFINITY, "11^T: logdet = -inf");
  csde_cov_ws *ws = NULL;
  s = csde_cov_ws_alloc(&ws, C, D, 1, &err);
  /* V' from the identity (D = tau = 4); V' V'^T = 11^T to round-off. (V' z itself is only
   * constant along frames to sqrt(eps): eigenvalues at round-off level have square roots
   * near 1e-8.) */
  double x[16] = {0}, y[16], VV[16];
  for (size_t i = 0; i < tau; i++) x[i * D + i] = 1;
  s = csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, 1, x, y, &err);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 4, 4, 4, 1.0, y, 4, y, 4, 0.0, VV, 4);
  double e = 0;
  for (int i = 0; i < 16; i++) e = fmax(e, fabs(VV[i] - 1.0));
  ok(s == 0 && e <= 1e-12 * 4, "11^T: V' V'^T = 11^T (diff %.3g)", e);
  s = csde_cov_sample(C, ws, KEY, 0, 1, y, &err);
  ok(s == 0, "11^T: sample works");
  csde_cov_ws_free(ws);
  csde_cov_free(C);
}

/* ---- long clips (issue 10, item 12): embed at large tau forms nothing tau x tau ---- */

/* Sample autocovariance at lag k of N independent stationary sequences of length tau
 * stored frame-major [blk][tau][D] (N = nblk D): chat_k = sum x_i x_{i+k} / (N (tau-k)).
 * Its standard deviation (Bartlett, exact for Gaussian sequences up to O(1/tau) edge
 * terms): sd^2 = sum_{|j| < tau} (c_j^2 + c_{j+k} c_{j-k}) / (N (tau - k)). */
static double acov(const double *x, size_t nblk, size_t tau, size_t D, size_t k)
{
  double s = 0;
  for (size_t b = 0; b < nblk; b++)
    for (size_t i = 0; i + k < tau; i++)
      for (size_t p = 0; p < D; p++)
        s += x[(b * tau + i) * D + p] * x[(b * tau + i + k) * D + p];
  return s / ((double)(nblk * D) * (double)(tau - k));
}
static double acov_sd(double (*c)(size_t, const void *), const void *u, size_t N, size_t tau,
                      size_t k)
{
  double v = 0;
  for (long j = -4000; j <= 4000; j++) {
    size_t a = (size_t)labs(j), b = (size_t)labs(j + (long)k), d = (size_t)labs(j - (long)k);
    v += c(a, u) * c(a, u) + c(b, u) * c(d, u);
  }
  return sqrt(v / ((double)N * (double)(tau - k)));
}
static double c_ar1(size_t k, const void *u) { return pow(*(const double *)u, (double)k); }
static double c_m52(size_t k, const void *u)
{
  double a = sqrt(5.0) * (double)k / *(const double *)u; /* matern52, var 1 */
  return (1 + a + a * a / 3) * exp(-a);
}

static void check_long_clips(void)
{
  csde_err err;
  csde_cov_params pe = csde_cov_default_params();
  pe.method = CSDE_COV_EMBED;

  /* 1. a million frames: would need 8 TB per tau x tau matrix */
  {
    const size_t tau = quick ? 100000 : 1000000;
    csde_cov *C = NULL;
    csde_err_clear(&err);
    int s = csde_cov_alloc(&C, "ar1:rho=0.9", tau, &pe, &err);
    ok(s == 0, "embed ar1:rho=0.9 with %zu frames builds (status %d %s)", tau, s, err.msg);
    if (!s) {
      double want = (double)(tau - 1) * log1p(-0.81), ld = csde_cov_logdet(C), lo, hi;
      ok(csde_cov_logdet_cheap(C) && fabs(ld - want) <= 1e-12 * fabs(want),
         "... log det = (tau - 1) log(1 - rho^2) = %.17g (got %.17g), closed form", want, ld);
      int ex = csde_cov_eig_bounds(C, &lo, &hi);
      /* ar1's spectral density (1 - rho^2) / |1 - rho e^iw|^2 spans [0.19/3.61, 0.19/0.01] */
      ok(!ex && lo >= 0.19 / 3.61 * (1 - 1e-9) && hi <= 19 * (1 + 1e-9) && lo <= hi,
         "... eigenvalue bounds from the embedding [%.6g, %.6g] within ar1's [%.6g, 19]", lo,
         hi, 0.19 / 3.61);
      ok(csde_cov_entry(C, 7, 2) == pow(0.9, 5.0) && csde_cov_entry(C, tau - 1, 0) ==
             pow(0.9, (double)(tau - 1)),
         "... csde_cov_entry(7, 2) = 0.9^5, entry (tau-1, 0) = 0.9^(tau-1)");
      ok(!csde_cov_is_singular(C), "... not singular (the embedding's lambda_min > 0)");
    }
    csde_cov_free(C);
  }

  /* 2. V' z has the Toeplitz covariance at large tau: lags against c_k, to 5 sd */
  struct {
    const char *spec;
    double par;
    double (*c)(size_t, const void *);
  } lc[] = {{"ar1:rho=0.9", 0.9, c_ar1}, {"matern52:ell=6", 6.0, c_m52}};
  for (int f = 0; f < 2; f++) {
    const size_t tau = quick ? 8192 : 65536, D = 8, nblk = 2;
    csde_cov *C = NULL;
    csde_cov_ws *ws = NULL;
    csde_err_clear(&err);
    int s = csde_cov_alloc(&C, lc[f].spec, tau, &pe, &err);
    if (!s) s = csde_cov_ws_alloc(&ws, C, D, 2, &err);
    double *x = xmalloc(nblk * tau * D * sizeof *x);
    if (!s) s = csde_cov_sample(C, ws, (csde_rng_key){2026, 12}, 0, nblk, x, &err);
    ok(s == 0, "embed %s, %zu frames: sample (status %d %s)", lc[f].spec, tau, s, err.msg);
    const size_t lags[] = {0, 1, 2, 5, 20};
    for (int i = 0; !s && i < 5; i++) {
      size_t k = lags[i];
      double ch = acov(x, nblk, tau, D, k), c = lc[f].c(k, &lc[f].par);
      double sd = acov_sd(lc[f].c, &lc[f].par, nblk * D, tau, k);
      ok(fabs(ch - c) <= 5 * sd, "embed %s: sample lag-%zu covariance %.5f = c_%zu = %.5f "
         "(|diff| %.2g <= 5 sd = %.2g)", lc[f].spec, k, ch, k, c, fabs(ch - c), 5 * sd);
    }
    free(x);
    csde_cov_ws_free(ws);
    csde_cov_free(C);
  }

  /* 3. log det and Mahalanobis without a closed form (Levinson-Durbin on first use)
   * against a dense Cholesky reference at moderate tau */
  {
    const size_t tau = quick ? 300 : 1024, D = 3;
    const char *spec = "matern32:ell=8,nugget=1e-3";
    csde_cov *C = NULL;
    csde_cov_ws *ws = NULL;
    csde_err_clear(&err);
    int s = csde_cov_alloc(&C, spec, tau, &pe, &err);
    if (!s) s = csde_cov_ws_alloc(&ws, C, D, 1, &err);
    ok(s == 0 && !csde_cov_logdet_cheap(C), "embed %s, %zu frames: builds; log det not yet "
       "computed (status %d %s)", spec, tau, s, err.msg);
    double *T = xmalloc(tau * tau * sizeof *T), *x = xmalloc(tau * D * sizeof *x);
    double *q = xmalloc(D * sizeof *q), *qr = xmalloc(D * sizeof *qr);
    for (size_t i = 0; i < tau; i++)
      for (size_t j = 0; j < tau; j++) {
        double a = sqrt(3.0) * (double)(i > j ? i - j : j - i) / 8.0;
        T[i * tau + j] = (1 + a) * exp(-a) + (i == j ? 1e-3 : 0.0);
      }
    fill_normal(x, tau * D);
    gsl_matrix_view Lv = gsl_matrix_view_array(T, tau, tau);
    gsl_linalg_cholesky_decomp1(&Lv.matrix);
    double ldr = 0;
    for (size_t i = 0; i < tau; i++) ldr += 2 * log(T[i * tau + i]);
    chol_quad(T, tau, D, x, qr);
    double tot = 0;
    if (!s) s = csde_cov_mahalanobis(C, ws, 1, x, NULL, q, &tot, &err);
    double ld = s ? NAN : csde_cov_logdet(C);
    /* |d logdet| <= tau eps cond; cond(C) <= 1/nugget-ish: tolerance 1e-9 relative */
    ok(!s && fabs(ld - ldr) <= 1e-9 * fabs(ldr) && csde_cov_logdet_cheap(C),
       "embed %s: log det %.15g = Cholesky's %.15g (Levinson-Durbin, then cached)", spec, ld,
       ldr);
    double e = 0;
    for (size_t p = 0; p < D; p++) e = fmax(e, fabs(q[p] - qr[p]) / qr[p]);
    ok(!s && e <= 1e-8, "embed %s: Mahalanobis forms = Cholesky's (rel %.3g)", spec, e);
    /* the circulant report's KL uses the same log det T */
    csde_cov_params pc = csde_cov_default_params();
    pc.method = CSDE_COV_CIRC_TCHAN;
    csde_cov *Cc = NULL;
    csde_err_clear(&err);
    if (csde_cov_alloc(&Cc, spec, tau, &pc, &err) == 0) {
      csde_cov_report r = csde_cov_approx_report(Cc);
      ok(r.approx && isfinite(r.kl_per_frame) && r.kl_per_frame >= 0,
         "circulant-tchan %s, %zu frames: KL per frame %.3g (log det T on first use)", spec,
         tau, r.kl_per_frame);
    } else {
      ok(0, "circulant-tchan %s builds (%s)", spec, err.msg);
    }
    csde_cov_free(Cc);
    free(T);
    free(x);
    free(q);
    free(qr);
    csde_cov_ws_free(ws);
    csde_cov_free(C);
  }
}

int main(void)
{
  csde_init();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  quick = getenv("CSDE_TEST_QUICK") != NULL;
#ifdef CSDE_TEST_HAVE_VALGRIND
  if (RUNNING_ON_VALGRIND) quick = 1; /* the valgrind test setup does not set it */
#endif
  if (quick) printf("# quick mode: smaller samples and sizes\n");
  setup_files();
  check_methods();

  const csde_cov_method methods[] = {CSDE_COV_DENSE,       CSDE_COV_DENSE_CHOLESKY,
                                     CSDE_COV_CIRC_TCHAN,  CSDE_COV_CIRC_STRANG,
                                     CSDE_COV_EMBED,       CSDE_COV_AUTO};
  const size_t taus[] = {1, 2, 7, 16, 33, 200};
  for (size_t fi = 0; fi < NFAM; fi++)
    for (size_t mi = 0; mi < sizeof methods / sizeof methods[0]; mi++)
      for (size_t ti = 0; ti < sizeof taus / sizeof taus[0]; ti++) {
        size_t tau = taus[ti];
        /* the large tau only for the methods meant for it */
        if (tau > 100 && methods[mi] != CSDE_COV_EMBED && methods[mi] != CSDE_COV_AUTO)
          continue;
        if (fams[fi].kind == F_APIDENSE && tau > 100) continue;
        /* quick (valgrind): auto at the large tau is the embed case again */
        if (quick && tau > 100 && methods[mi] == CSDE_COV_AUTO && is_toep_kind(fams[fi].kind))
          continue;
        run_case(&fams[fi], methods[mi], tau);
      }

  check_auto_threshold();
  check_sym_tol();
  check_singular();
  check_long_clips();
  cleanup_files();
  return tap_done();
}
