#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>

#include "core/linalg.h"

static pthread_mutex_t gsl_quiet_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t gsl_quiet_depth;             /* begins without their end, all threads */
static gsl_error_handler_t *gsl_quiet_saved; /* the caller's handler */

void csde_gsl_quiet_begin(void)
{
  pthread_mutex_lock(&gsl_quiet_lock);
  if (gsl_quiet_depth++ == 0) gsl_quiet_saved = gsl_set_error_handler_off();
  pthread_mutex_unlock(&gsl_quiet_lock);
}

void csde_gsl_quiet_end(void)
{
  pthread_mutex_lock(&gsl_quiet_lock);
  if (gsl_quiet_depth > 0 && --gsl_quiet_depth == 0) gsl_set_error_handler(gsl_quiet_saved);
  pthread_mutex_unlock(&gsl_quiet_lock);
}

#ifdef CSDE_HAVE_DSYEVD
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info);

const char *csde_symeig_name(void) { return "lapack-dsyevd"; }

int csde_symeig(const double *A, size_t n, double *eval, double *evec, csde_err *err)
{
  int nn = (int)n, info = 0, lwork = -1, liwork = -1, iw;
  double wq;
  char jobz = evec ? 'V' : 'N', uplo = 'L';
  double *a = malloc(n * n * sizeof *a);
  if (!a) return csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu eigensolve", n, n);
  memcpy(a, A, n * n * sizeof *a); /* symmetric: row- and column-major are the same */
  dsyevd_(&jobz, &uplo, &nn, a, &nn, eval, &wq, &lwork, &iw, &liwork, &info); /* query */
  lwork = (int)wq + 1;
  liwork = iw > 1 ? iw : 1;
  double *work = malloc((size_t)lwork * sizeof *work);
  int *iwork = malloc((size_t)liwork * sizeof *iwork);
  int s = CSDE_SUCCESS;
  if (!work || !iwork) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu eigensolve", n, n);
  } else {
    dsyevd_(&jobz, &uplo, &nn, a, &nn, eval, work, &lwork, iwork, &liwork, &info);
    if (info != 0)
      s = csde_err_set(err, CSDE_EFAILED, "eigensolver dsyevd failed (info %d, n = %zu)", info, n);
    else if (evec) /* a holds the vectors column-major: transpose to row-major */
      for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) evec[i * n + j] = a[j * n + i];
  }
  free(work);
  free(iwork);
  free(a);
  return s;
}
#else
const char *csde_symeig_name(void) { return "gsl-symmv"; }

int csde_symeig(const double *A, size_t n, double *eval, double *evec, csde_err *err)
{
  gsl_matrix *M = gsl_matrix_alloc(n, n), *V = evec ? gsl_matrix_alloc(n, n) : NULL;
  gsl_vector_view e = gsl_vector_view_array(eval, n);
  gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(n);
  int s = CSDE_SUCCESS;
  if (!M || !w || (evec && !V)) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory for a %zu x %zu eigensolve", n, n);
    goto done;
  }
  memcpy(M->data, A, n * n * sizeof(double));
  gsl_matrix *VV = V ? V : gsl_matrix_alloc(n, n);
  csde_gsl_quiet_begin();
  int g = VV ? gsl_eigen_symmv(M, &e.vector, VV, w) : GSL_ENOMEM;
  csde_gsl_quiet_end();
  if (g) {
    s = csde_err_set(err, CSDE_EFAILED, "eigensolver failed (GSL status %d, n = %zu)", g, n);
  } else {
    gsl_eigen_symmv_sort(&e.vector, VV, GSL_EIGEN_SORT_VAL_ASC);
    if (evec) memcpy(evec, VV->data, n * n * sizeof(double));
  }
  if (!V) gsl_matrix_free(VV);
done:
  gsl_matrix_free(M);
  gsl_matrix_free(V);
  gsl_eigen_symmv_free(w);
  return s;
}
#endif
