/* Toeplitz and circulant helpers shared by the covariance methods. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


#include <gsl/gsl_cblas.h>

#include "core/linalg.h"
#include "core/util.h"
#include "cov/cov_internal.h"

static pthread_mutex_t fftw_mutex = PTHREAD_MUTEX_INITIALIZER;
void csde_fftw_lock(void) { pthread_mutex_lock(&fftw_mutex); }
void csde_fftw_unlock(void) { pthread_mutex_unlock(&fftw_mutex); }

void csde_cov_lags(const csde_cov_family *f, size_t n, double *t)
{
  for (size_t k = 0; k < n; k++) t[k] = f->lag(f, k);
}

double csde_eig_tol(size_t n, double maxabs)
{
  /* round-off of an eigenvalue computed from n-term sums: a few n eps |C| */
  return 8.0 * (double)(n > 0 ? n : 1) * DBL_EPSILON * maxabs;
}

size_t csde_fft_size(size_t n)
{
  size_t m = 1; /* FFTW's fastest sizes here (measured: 126 and 768 ran slower than 256, 1024) */
  while (m < n) m *= 2;
  return m;
}

/* Levinson-Durbin: prediction error variances P_k = P_{k-1} (1 - kappa_k^2), P_0 = c_0;
 * det T = prod P_k. T is positive definite iff every P_k > 0. The predictor update
 * a_j <- a_j - kappa_k a_{k-j} runs in place on the pairs (j, k - j). A column whose
 * largest entry is outside [2^-500, 2^500] runs scaled by a power of two 2^-e (exact;
 * csde_pow2_scale), so that its dot products cannot overflow: log det gains n e log 2. */
int csde_toeplitz_levinson_at(const double *t, size_t n, double *logdet, int *pd,
                              size_t *kfail, double *pfail)
{
  double *a = calloc(2 * n + 1, sizeof *a);
  if (!a) return CSDE_ENOMEM;
  const int e = csde_pow2_scale(t, n); /* 0 for ordinary columns: no ldexp changes a bit */
  double *rt = a + n + 1; /* rt[i] = t[n-1-i]: the dot below runs forward in both */
  for (size_t i = 0; i < n; i++) rt[i] = ldexp(t[n - 1 - i], -e);
  double P = ldexp(t[0], -e), ld = 0;
  *pd = P > 0;
  if (kfail) *kfail = 0;
  if (pfail) *pfail = t[0];
  if (*pd) ld = log(P);
  for (size_t k = 1; k < n && *pd; k++) {
    /* kappa_k = (c_k - sum_{j<k} a_j c_{k-j}) / P_{k-1}, with c_{k-j} = rt[n-1-k+j]
     * (BLAS: vectorised, and single-threaded inside the library, so bits are fixed) */
    double acc = ldexp(t[k], -e) -
                 (k > 1 ? cblas_ddot((int)(k - 1), a + 1, 1, rt + n - k, 1) : 0.0);
    double kap = acc / P;
    size_t j = 1, l = k - 1;
    for (; j < l; j++, l--) { /* a_j, a_{k-j} <- a_j - kap a_{k-j}, a_{k-j} - kap a_j */
      double aj = a[j], al = a[l];
      a[j] = aj - kap * al;
      a[l] = al - kap * aj;
    }
    if (j == l) a[j] -= kap * a[j];
    a[k] = kap;
    P *= (1.0 - kap) * (1.0 + kap);
    if (!(P > 0)) {
      *pd = 0;
      if (kfail) *kfail = k;
      if (pfail) *pfail = ldexp(P, e);
    } else {
      ld += log(P);
    }
  }
  if (e && *pd) ld += (double)n * (double)e * 0.69314718055994530942; /* det(2^e T') = 2^(n e) det T' */
  *logdet = *pd ? ld : -INFINITY;
  free(a);
  return CSDE_SUCCESS;
}

int csde_toeplitz_levinson(const double *t, size_t n, double *logdet, int *pd)
{
  return csde_toeplitz_levinson_at(t, n, logdet, pd, NULL, NULL);
}

/* T. Chan: c_k = ((n-k) t_k + k t_{n-k}) / n, the Frobenius-nearest circulant. Where the
 * weighted sum overflows (entries near the double range), the same sum on the entries
 * scaled by 2^-64 (exact), scaled back. */
void csde_toeplitz_tchan(const double *t, size_t n, double *c)
{
  c[0] = t[0];
  for (size_t k = 1; k < n; k++) {
    c[k] = ((double)(n - k) * t[k] + (double)k * t[n - k]) / (double)n;
    if (!isfinite(c[k]) && isfinite(t[k]) && isfinite(t[n - k]))
      c[k] = ldexp(((double)(n - k) * ldexp(t[k], -64) + (double)k * ldexp(t[n - k], -64)) /
                       (double)n,
                   64);
  }
}

/* Strang: c_k = t_k for k <= n/2, t_{n-k} above (the central band of T). */
void csde_toeplitz_strang(const double *t, size_t n, double *c)
{
  for (size_t k = 0; k < n; k++) c[k] = k <= n / 2 ? t[k] : t[n - k];
}

/* lambda_k = sum_j c_j e^{-2 pi i jk/n}: real for a symmetric column; half spectrum.
 * A column whose largest entry is outside [2^-500, 2^500] is transformed scaled by 2^-e
 * (exact; csde_pow2_scale) and the eigenvalues scaled back, so that the FFT's sums
 * cannot overflow; an eigenvalue beyond the double range even so is CSDE_ERANGE. */
int csde_circulant_eigs(const double *c, size_t n, double *lam, csde_err *err)
{
  const int e = csde_pow2_scale(c, n);
  double *in = fftw_malloc(n * sizeof *in);
  fftw_complex *out = fftw_malloc((n / 2 + 1) * sizeof *out);
  if (!in || !out) {
    fftw_free(in);
    fftw_free(out);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for a size-%zu FFT", n);
  }
  csde_fftw_lock();
  fftw_plan p = fftw_plan_dft_r2c_1d((int)n, in, out, FFTW_ESTIMATE);
  csde_fftw_unlock();
  memcpy(in, c, n * sizeof *in);
  if (e)
    for (size_t k = 0; k < n; k++) in[k] = ldexp(in[k], -e);
  fftw_execute(p);
  int s = CSDE_SUCCESS;
  for (size_t k = 0; k <= n / 2; k++) {
    lam[k] = e ? ldexp(out[k][0], e) : out[k][0];
    if (!isfinite(lam[k]) && !s) { /* a finite column: only its scale can overflow */
      double cmax = 0;
      int x2;
      for (size_t j = 0; j < n; j++) cmax = fmax(cmax, fabs(c[j]));
      const double mant = 2 * frexp(out[k][0], &x2);
      s = csde_err_set(err, CSDE_ERANGE,
                       "its size-%zu circulant's eigenvalue at frequency %zu, %.6g x 2^%d, is "
                       "beyond the double range (largest entry %.6g); scale the covariance "
                       "down",
                       n, k, mant, x2 - 1 + e, cmax);
    }
  }
  csde_fftw_lock();
  fftw_destroy_plan(p);
  csde_fftw_unlock();
  fftw_free(in);
  fftw_free(out);
  return s;
}

double csde_circulant_sum(const double *lam, size_t n, double (*f)(double, void *), void *u)
{
  double s = 0;
  for (size_t k = 0; k < n; k++) s += f(lam[k <= n / 2 ? k : n - k], u);
  return s;
}

int csde_symeig_scaled(const double *A, size_t n, double *eval, double *evec, int even,
                       int *scale, csde_err *err)
{
  int e = csde_pow2_scale(A, n * n);
  if (even && (e & 1)) e++; /* m 2^-e in [1/4, 1) */
  *scale = e;
  if (!e) return csde_symeig(A, n, eval, evec, err);
  double *B = malloc(n * n * sizeof *B);
  if (!B) return csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu eigensolve", n, n);
  for (size_t i = 0; i < n * n; i++) B[i] = ldexp(A[i], -e);
  int s = csde_symeig(B, n, eval, evec, err);
  free(B);
  return s;
}

int csde_dense_min_eig(const double *mat, size_t n, double *emin, csde_err *err)
{
  double *e = malloc(n * sizeof *e);
  if (!e) return csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu eigensolve", n, n);
  int sc = 0;
  int s = csde_symeig_scaled(mat, n, e, NULL, 0, &sc, err);
  *emin = s ? NAN : ldexp(e[0], sc);
  free(e);
  return s;
}
