/* The generic model object (corrsde/model.h) and the dense helpers the built-in models
 * share (model_internal.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>

#include "corrsde/model.h"
#include "core/linalg.h"
#include "model/model_internal.h"

static const char *const output_names[] = {"score", "cscore", "noise", "x0", "v",
                                             "flow", "flow-shifted"};
#define NOUTPUTS (sizeof output_names / sizeof output_names[0])

static int kind_valid(csde_model_output k) { return (unsigned)k < NOUTPUTS; }

int csde_model_ctx_placeholder(double t, size_t batch, const double *x, double *out, void *user)
{
  (void)t, (void)batch, (void)x, (void)out, (void)user;
  return -1;
}

int csde_model_wrap(csde_model **out, const char *name, csde_model_fn fn,
                    csde_model_output kind, void *user, void (*free_user)(void *),
                    csde_model_tag tag, size_t tau, size_t D, csde_err *err)
{
  int s = CSDE_SUCCESS;
  csde_model *M = NULL;
  if (!out) {
    s = csde_err_set(err, CSDE_EINVAL, "model: output pointer is NULL");
    goto fail;
  }
  *out = NULL;
  if (!fn) {
    s = csde_err_set(err, CSDE_EINVAL, "model '%s': callback is NULL", name ? name : "user");
    goto fail;
  }
  if (!kind_valid(kind)) {
    s = csde_err_set(err, CSDE_EINVAL,
                     "model '%s': output kind %d is not one of score (0), cscore (1), "
                     "noise (2), x0 (3), v (4), flow (5), flow-shifted (6)",
                     name ? name : "user", (int)kind);
    goto fail;
  }
  M = calloc(1, sizeof *M);
  if (M) M->name = strdup(name ? name : "user");
  if (!M || !M->name) {
    free(M);
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory for model '%s'", name ? name : "user");
    goto fail;
  }
  M->fn = fn;
  M->kind = kind;
  M->user = user;
  M->free_user = free_user;
  M->tag = tag;
  M->priv = tag == CSDE_MODEL_GAUSSIAN || tag == CSDE_MODEL_GMM ? user : NULL;
  M->tau = tau;
  M->D = D;
  *out = M;
  return CSDE_SUCCESS;
fail:
  if (free_user && user) free_user(user);
  return s;
}

int csde_model_alloc(csde_model **out, const char *name, csde_model_fn fn,
                     csde_model_output kind, void *user, void (*free_user)(void *),
                     csde_err *err)
{
  /* the caller keeps `user` on failure: wrap without its free function, then set it */
  int s = csde_model_wrap(out, name, fn, kind, user, NULL, CSDE_MODEL_USER, 0, 0, err);
  if (!s) (*out)->free_user = free_user;
  return s;
}

int csde_model_alloc_ctx(csde_model **out, const char *name, csde_model_ctx_fn fn,
                         csde_model_output kind, void *user, void (*free_user)(void *),
                         csde_err *err)
{
  if (!fn) {
    if (out) *out = NULL;
    return csde_err_set(err, CSDE_EINVAL, "model '%s': callback is NULL", name ? name : "user");
  }
  /* wrap a placeholder plain callback, then hand the model the context one */
  int s = csde_model_alloc(out, name, csde_model_ctx_placeholder, kind, user, free_user, err);
  if (!s) {
    (*out)->fn = NULL;
    (*out)->fn_ctx = fn;
  }
  return s;
}

void csde_model_free(csde_model *M)
{
  if (!M) return;
  /* the plugin's free lives in the library: call it before dlclose */
  if (M->free_user && M->user) M->free_user(M->user);
  if (M->dl) dlclose(M->dl);
  free(M->name);
  free(M);
}

const char *csde_model_name(const csde_model *M) { return M ? M->name : "(null)"; }

csde_model_output csde_model_output_of(const csde_model *M) { return M->kind; }

const char *csde_model_output_name(csde_model_output k)
{
  return kind_valid(k) ? output_names[k] : "unknown";
}

int csde_model_call(const csde_model *M, double t, size_t batch, const double *x,
                    double *out)
{
  if (M->fn) return M->fn(t, batch, x, out, M->user);
  csde_model_ctx c = {.t = t, .batch = batch, .tau = M->tau, .D = M->D, .abar = NAN,
                      .sigma = NAN, .logsnr = NAN, .index = -1, .ncond = batch,
                      .alpha = NAN, .sigma_path = NAN, .lambda = NAN, .t_shifted = NAN};
  return M->fn_ctx(&c, x, out, M->user);
}

int csde_model_call_ctx(const csde_model *M, const csde_model_ctx *ctx, const double *x,
                        double *out)
{
  return M->fn ? M->fn(ctx->t, ctx->batch, x, out, M->user) : M->fn_ctx(ctx, x, out, M->user);
}

int csde_model_set_jvp(csde_model *M, csde_model_jvp_fn jvp, csde_err *err)
{
  if (!M) return csde_err_set(err, CSDE_EINVAL, "csde_model_set_jvp: no model");
  M->jvp = jvp;
  return CSDE_SUCCESS;
}

int csde_model_has_jvp(const csde_model *M) { return M && M->jvp; }

int csde_model_call_jvp(const csde_model *M, const csde_model_ctx *ctx, const double *x,
                        const double *v, double *jv)
{
  return M->jvp ? M->jvp(ctx, x, v, jv, M->user) : CSDE_ENOTSUP;
}

void csde_model_dims(const csde_model *M, size_t *tau, size_t *D)
{
  if (tau) *tau = M ? M->tau : 0;
  if (D) *D = M ? M->D : 0;
}

/* ---- the exact divergence tr(C grad^2 log p_t) of the built-ins (gaussian.c, gmm.c) ---- */

static int cdiv_refuse(const csde_model *M, const char *fn, csde_err *err)
{
  if (!M) return csde_err_set(err, CSDE_EINVAL, "%s: model is NULL", fn);
  return csde_err_set(err, CSDE_ENOTSUP,
                      "%s: model '%s' has no closed-form divergence (only the built-in "
                      "gaussian and gmm models have one)",
                      fn, M->name);
}

int csde_model_exact_cdiv_prepare(csde_model *M, csde_err *err)
{
  const char *fn = "exact divergence";
  if (M && M->tag == CSDE_MODEL_GAUSSIAN) return csde_model_gaussian_prepare(M, err);
  if (M && M->tag == CSDE_MODEL_GMM) return csde_model_gmm_cdiv_prepare(M, err);
  return cdiv_refuse(M, fn, err);
}

int csde_model_exact_cdiv(const csde_model *M, double t, size_t batch, const double *x,
                          double *tr, csde_err *err)
{
  const char *fn = "exact divergence";
  if (!M || (M->tag != CSDE_MODEL_GAUSSIAN && M->tag != CSDE_MODEL_GMM))
    return cdiv_refuse(M, fn, err);
  if (batch && (!tr || (!x && M->tag == CSDE_MODEL_GMM)))
    return csde_err_set(err, CSDE_EINVAL, "%s: %s is NULL", fn, !tr ? "tr" : "x");
  /* t in the span of the model's schedule (VP [0, 1]; edm [smin, smax]): checked there */
  return M->tag == CSDE_MODEL_GAUSSIAN ? csde_model_gaussian_cdiv(M, t, batch, tr, err)
                                       : csde_model_gmm_cdiv(M, t, batch, x, tr, err);
}

/* ---- dense helpers ---- */

size_t csde_mat_chol(double *A, size_t n)
{
  for (size_t j = 0; j < n; j++) {
    double *Lj = A + j * n;
    double d = Lj[j]; /* L_jj^2 = A_jj - sum_{k<j} L_jk^2 */
    for (size_t k = 0; k < j; k++) d -= Lj[k] * Lj[k];
    if (!(d > 0)) return j + 1;
    double ljj = sqrt(d);
    Lj[j] = ljj;
    for (size_t k = j + 1; k < n; k++) Lj[k] = 0;
    for (size_t i = j + 1; i < n; i++) { /* L_ij = (A_ij - sum_{k<j} L_ik L_jk) / L_jj */
      double *Li = A + i * n, v = Li[j];
      for (size_t k = 0; k < j; k++) v -= Li[k] * Lj[k];
      Li[j] = v / ljj;
    }
  }
  return 0;
}

void csde_mat_chol_solve(const double *L, size_t n, size_t m, double *B, size_t ldb)
{
  /* L w = B, then L^T B = w */
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)n,
              (int)m, 1.0, L, (int)n, B, (int)ldb);
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)n, (int)m,
              1.0, L, (int)n, B, (int)ldb);
}

double csde_mat_chol_logdet(const double *L, size_t n)
{
  double ld = 0; /* log det A = 2 sum_j log L_jj */
  for (size_t j = 0; j < n; j++) ld += log(L[j * n + j]);
  return 2 * ld;
}

int csde_mat_check_cov(double *S, size_t n, const char *what, csde_err *err)
{
  double smax = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double v = S[i * n + j];
      if (!isfinite(v))
        return csde_err_set(err, CSDE_ENAN, "%s has a non-finite entry %g at [%zu][%zu]",
                            what, v, i, j);
      smax = fmax(smax, fabs(v));
    }
  double tol = 1e-12 * smax;
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) {
      double a = S[i * n + j], b = S[j * n + i];
      if (fabs(a - b) > tol)
        return csde_err_set(err, CSDE_ENOTSYM,
                            "%s is not symmetric: [%zu][%zu] = %.17g but [%zu][%zu] = %.17g "
                            "(|diff| %.3g > tolerance %.3g)",
                            what, i, j, a, j, i, b, fabs(a - b), tol);
      S[i * n + j] = S[j * n + i] = 0.5 * (a + b); /* exact symmetry */
    }
  int s = CSDE_SUCCESS;
  gsl_matrix *A = gsl_matrix_alloc(n, n);
  gsl_vector *e = gsl_vector_alloc(n);
  gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(n);
  if (!A || !e || !w) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory checking %s (%zu x %zu)", what, n, n);
    goto done;
  }
  memcpy(A->data, S, n * n * sizeof(double));
  csde_gsl_quiet_begin();
  int es = gsl_eigen_symm(A, e, w);
  csde_gsl_quiet_end();
  if (es) {
    s = csde_err_set(err, CSDE_EFAILED, "eigensolver failed on %s", what);
    goto done;
  }
  double emin = INFINITY, emax = 0;
  for (size_t k = 0; k < n; k++) {
    emin = fmin(emin, gsl_vector_get(e, k));
    emax = fmax(emax, fabs(gsl_vector_get(e, k)));
  }
  double etol = 8.0 * (double)n * DBL_EPSILON * emax; /* round-off of n-term sums */
  if (emin < -etol)
    s = csde_err_set(err, CSDE_ENOTPSD,
                     "%s is not positive semi-definite: most negative eigenvalue %.6g "
                     "(tolerance %.3g)",
                     what, emin, etol);
done:
  gsl_matrix_free(A);
  gsl_vector_free(e);
  gsl_eigen_symm_free(w);
  return s;
}

double csde_one_minus_abar(const csde_schedule *s, double t)
{
  if (!csde_schedule_is_vp(s)) {
    const double sg = csde_schedule_path_sigma(s, t);
    return sg * sg;
  }
  return -expm1(-csde_schedule_int_beta(s, t));
}

double csde_model_alpha2(const csde_schedule *s, double t)
{
  if (!csde_schedule_is_vp(s)) {
    const double a = csde_schedule_path_alpha(s, t);
    return a * a;
  }
  return csde_schedule_abar(s, t);
}

double csde_model_alpha(const csde_schedule *s, double t)
{
  return csde_schedule_is_vp(s) ? sqrt(csde_schedule_abar(s, t))
                                : csde_schedule_path_alpha(s, t);
}

int csde_model_check_t(const csde_schedule *s, double t, const char *fn, const char *which,
                       csde_err *err)
{
  if (!s || csde_schedule_is_vp(s)) {
    if (!(t >= 0 && t <= 1))
      return csde_err_set(err, CSDE_EDOM, "%s: %s = %g is outside [0, 1]", fn, which, t);
    return CSDE_SUCCESS;
  }
  double t0, t1;
  csde_schedule_path_span(s, &t0, &t1);
  if (!(t >= t0 && t <= t1))
    return csde_err_set(err, CSDE_EDOM, "%s: %s = %g is outside [%g, %g], the span of "
                        "schedule '%s'", fn, which, t, t0, t1, csde_schedule_spec(s));
  return CSDE_SUCCESS;
}
