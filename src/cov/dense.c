/* Method `dense` / `dense-cholesky`: exact, with tau x tau factors applied by BLAS.
 *   C x      one GEMM
 *   V' z     one GEMM with V' = V sqrt(S) (C = V S V^T) or the Cholesky factor L
 *   C^-1 x   two triangular solves with L (C = L L^T) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>

#include "core/linalg.h"
#include "core/smallmm.h"
#include "core/util.h"
#include "cov/cov_internal.h"

static int dense_init(csde_cov *C, csde_err *err)
{
  size_t n = C->tau;
  int s = CSDE_SUCCESS;
  C->mat = malloc(n * n * sizeof(double));
  C->fac = calloc(n * n, sizeof(double));
  C->chol = malloc(n * n * sizeof(double));
  C->eig = malloc(n * sizeof(double));
  double *V = malloc(n * n * sizeof *V), *e = malloc(n * sizeof *e);
  csde_gsl_quiet_begin();
  if (!C->mat || !C->fac || !C->chol || !C->eig || !V || !e) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory for a dense %zu x %zu covariance", n, n);
    goto done;
  }
  if (C->fam.mat) {
    memcpy(C->mat, C->fam.mat, n * n * sizeof(double));
    double cmax = 0;
    for (size_t i = 0; i < n * n; i++) cmax = fmax(cmax, fabs(C->mat[i]));
    double tol = C->par.sym_tol * cmax;
    for (size_t i = 0; i < n && !s; i++)
      for (size_t j = i + 1; j < n && !s; j++) {
        double a = C->mat[i * n + j], b = C->mat[j * n + i];
        if (fabs(a - b) > tol)
          s = csde_err_set(err, CSDE_ENOTSYM,
                           "covariance '%s' is not symmetric: C[%zu][%zu] = %.17g but "
                           "C[%zu][%zu] = %.17g (|diff| %.3g > tolerance %.3g)",
                           C->spec, i, j, a, j, i, b, fabs(a - b), tol);
        C->mat[i * n + j] = C->mat[j * n + i] = 0.5 * (a + b); /* exact symmetry */
      }
    if (s) goto done;
  } else {
    for (size_t i = 0; i < n; i++) /* C_ij = c(|i-j|) */
      for (size_t j = 0; j < n; j++) C->mat[i * n + j] = C->fam.lag(&C->fam, i > j ? i - j : j - i);
  }
  /* C = V S V^T, eigenvalues ascending: of C 2^-sc, sc = 0 but for entries outside
   * [2^-500, 2^500] (then an even power, so that sqrt scales exactly by 2^(sc/2)) */
  int sc = 0;
  if ((s = csde_symeig_scaled(C->mat, n, e, V, 1, &sc, err))) goto done;
  double emax = fmax(fabs(e[0]), fabs(e[n - 1]));
  double tol = csde_eig_tol(n, emax);
  if (e[0] < -tol) {
    s = csde_err_set(err, CSDE_ENOTPSD,
                     "covariance '%s' with %zu frames is not positive semi-definite: most "
                     "negative eigenvalue %.6g (tolerance %.3g)",
                     C->spec, n, ldexp(e[0], sc), ldexp(tol, sc));
    goto done;
  }
  if (!isfinite(ldexp(e[n - 1], sc))) {
    int x2;
    const double mant = 2 * frexp(e[n - 1], &x2);
    s = csde_err_set(err, CSDE_ERANGE,
                     "covariance '%s' with %zu frames has an eigenvalue beyond the double "
                     "range (%.6g x 2^%d); scale it down",
                     C->spec, n, mant, x2 - 1 + sc);
    goto done;
  }
  for (size_t k = 0; k < n; k++) /* eigenvalues within round-off of 0 count as 0 */
    C->eig[k] = ldexp(fmax(e[k], 0.0), sc);
  C->eig_lo = C->eig[0];
  C->eig_hi = C->eig[n - 1];
  C->eig_exact = 1;
  /* C = L L^T; it fails (and C counts as singular) when C is only semi-definite. On
   * C 2^-sc, then L 2^(sc/2): its sums cannot overflow */
  for (size_t i = 0; i < n * n; i++) C->chol[i] = ldexp(C->mat[i], -sc);
  gsl_matrix_view L = gsl_matrix_view_array(C->chol, n, n);
  if (gsl_linalg_cholesky_decomp1(&L.matrix) != GSL_SUCCESS || C->eig[0] <= 0) {
    free(C->chol);
    C->chol = NULL;
    C->singular = 1;
    C->logdet = -INFINITY;
  } else {
    double ld = 0; /* log det C = 2 sum log L_ii */
    for (size_t i = 0; i < n; i++) ld += log(C->chol[i * n + i]);
    C->logdet = 2 * ld;
    if (sc) {
      C->logdet += (double)n * (double)sc * 0.69314718055994530942; /* det 2^sc C' */
      for (size_t i = 0; i < n * n; i++) C->chol[i] = ldexp(C->chol[i], sc / 2);
    }
  }
  if (C->method == CSDE_COV_DENSE_CHOLESKY) {
    if (!C->chol) {
      s = csde_err_set(err, CSDE_ESING,
                       "method dense-cholesky needs a positive definite C, but '%s' is "
                       "singular (smallest eigenvalue %.3g); use method dense",
                       C->spec, C->eig[0]);
      goto done;
    }
    for (size_t i = 0; i < n; i++) /* V' = L (lower triangle only) */
      for (size_t j = 0; j <= i; j++) C->fac[i * n + j] = C->chol[i * n + j];
  } else {
    for (size_t i = 0; i < n; i++) /* V' = V sqrt(S) */
      for (size_t j = 0; j < n; j++) C->fac[i * n + j] = V[i * n + j] * sqrt(C->eig[j]);
  }
  C->noise_dim = n;
done:
  csde_gsl_quiet_end();
  free(V);
  free(e);
  return s;
}

static size_t dense_tile_width(const csde_cov *C, size_t D)
{
  (void)C;
  return D < 1024 ? D : 1024;
}

static size_t dense_nfft(const csde_cov *C)
{
  (void)C;
  return 0;
}

static int dense_apply_tile(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                            csde_cov_op op, size_t nc, const double *x, size_t ldx, double *y,
                            size_t ldy)
{
  (void)ws;
  (void)th;
  int n = (int)C->tau, m = (int)nc;
  if (op == CSDE_COV_OP_INV) {
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * ldy, x + (size_t)i * ldx, nc * sizeof *y);
    /* L w = x, then L^T y = w */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, m, 1.0,
                C->chol, n, y, (int)ldy);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, m, 1.0,
                C->chol, n, y, (int)ldy);
    return CSDE_SUCCESS;
  }
  const double *A = op == CSDE_COV_OP_C ? C->mat : C->fac;
  if (csde_smallmm_use(C->tau)) { /* y = A x from registers (core/smallmm.c) */
    csde_smallmm(csde_smallmm_kernel(), C->tau, C->tau, nc, 1.0, A, C->tau, x, ldx, 0.0, NULL,
                 0.0, NULL, ldy, y);
    return CSDE_SUCCESS;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, n, 1.0, A, n, x, (int)ldx, 0.0,
              y, (int)ldy);
  return CSDE_SUCCESS;
}

/* y = a x + b u + s V' z: up to csde_smallmm_max_tau in one pass from registers; above, the
 * pass a x + b u, then one GEMM with beta = 1 (which spares BLAS its pass over y for beta) */
static double dense_sqrt_axpy_tile(const csde_cov *C, size_t nc, double s, const double *z,
                                   size_t ldz, double a, const double *x, double b,
                                   const double *u, size_t ld, double *y)
{
  size_t n = C->tau;
  if (csde_smallmm_use(n))
    return csde_smallmm(csde_smallmm_kernel(), n, n, nc, s, C->fac, n, z, ldz, a, x, b, u, ld,
                        y);
  double chk = 0; /* sum of 0 u_i: 0, or NaN when some u_i is not finite (any order) */
  for (size_t i = 0; i < n; i++) {
    const double *xi = x + i * ld, *ui = u ? u + i * ld : NULL;
    double *yi = y + i * ld;
    if (ui) {
#pragma omp simd reduction(+ : chk)
      for (size_t c = 0; c < nc; c++) {
        chk += 0.0 * ui[c];
        yi[c] = a * xi[c] + b * ui[c];
      }
    } else {
      for (size_t c = 0; c < nc; c++) yi[c] = a * xi[c];
    }
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)nc, (int)n, s, C->fac,
              (int)n, z, (int)ldz, 1.0, y, (int)ld);
  return chk;
}

const csde_cov_type csde_cov_dense_type = {
    "dense", dense_init, NULL, dense_tile_width, dense_nfft, 0, dense_apply_tile,
    dense_sqrt_axpy_tile,
};
