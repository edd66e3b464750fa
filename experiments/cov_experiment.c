/* cov_experiment: the exact Toeplitz C against its T. Chan and Strang circulants
 * (issue 5, "a covariance experiment"). For each kernel, each tau and each method it
 * records how far the circulant is from C (csde_cov_approx_report: KL per frame, max entry
 * difference, eigenvalue range) and what that does to samples, exactly (no Monte Carlo):
 *
 *   The model is the true one: data X_0 ~ N(0, S0 (x) I), forward noise with the exact
 *   Toeplitz C, so p_t = N(0, Sigma_t), Sigma_t = abar(t) S0 + (1 - abar(t)) C, and the
 *   score is exact. Only the sampler's prior uses the approximation: x(T) ~ N(0, P) with
 *   P = C_circ (P = C for the method `exact`). The exact PF-ODE flow from T to eps is linear,
 *   x(eps) = Phi x(T), so the end state's frame covariance is Sigma_end = Phi P Phi^T,
 *   while the exact p_eps has Sigma_eps = Phi Sigma_T Phi^T. Reported:
 *     cov_err_fro = ||Sigma_end - Sigma_eps||_F / ||Sigma_eps||_F
 *     cov_err_max = max_ij |Sigma_end - Sigma_eps|_ij / max_ij |Sigma_eps|_ij
 *     kl_end      = KL(N(0, Sigma_eps) || N(0, Sigma_end)) / tau
 *     corr_first_last = Sigma_end[0][tau-1] / sqrt(Sigma_end[0][0] Sigma_end[tau-1][tau-1]):
 *                   a circulant prior ties the last frame to the first (wrap-around)
 *   For `exact` the error is the floor of the prior N(0, C) itself: P - Sigma_T =
 *   abar(T) (C - S0). kl_end equals KL(N(0, Sigma_T) || N(0, P)) / tau for any invertible
 *   Phi (KL is invariant under a common invertible linear map), i.e. the report's KL up to
 *   O(abar(T)); the Frobenius error is the quantity the flow changes.
 *
 * The flow in closed form for any S0 (no commuting needed): with C = L L^T and
 * K = L^-1 S0 L^-T = U diag(kappa) U^T, Sigma_t = W diag(s_t) W^T with W = L U and
 * s_t = abar(t) kappa + 1 - abar(t). In y = W^-1 z the PF-ODE
 * dz/dt = -1/2 beta (I - C Sigma_t^-1) z becomes dy/dt = -1/2 beta (1 - 1/s_t) y per mode,
 * whose solution is y(t2) = sqrt(s_t2 / s_t1) y(t1) (d/dt s_t = -beta abar (kappa - 1)).
 * So Phi = W diag(sqrt(s_eps / s_T)) W^-1, and
 *   Sigma_end - Sigma_eps = W D (W^-1 (P - Sigma_T) W^-T) D W^T,  D = diag(sqrt(s_eps/s_T)).
 * One Cholesky, one symmetric eigensolve and a few GEMMs per (kernel, tau): O(tau^3).
 * For tau <= --verify-max, Phi is compared with the library's csde_model_gaussian_flow
 * (the propagator ODE integrated to 1e-13), and Sigma_eps with csde_model_gaussian_marginal.
 *
 * Build: see experiments/README.md ("Covariance approximations"). Run with --help.
 */
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <hdf5.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "corrsde/corrsde.h"
#include "corrsde/model.h"

enum { M_EXACT = 0, M_TCHAN, M_STRANG, NMETH };
static const char *const meth_name[NMETH] = {"exact", "tchan", "strang"};
static const csde_cov_method meth_enum[NMETH] = {CSDE_COV_AUTO, CSDE_COV_CIRC_TCHAN,
                                                 CSDE_COV_CIRC_STRANG};

static const char *const default_kernels[] = {"ar1:rho=0.9", "matern32:ell=4",
                                              "matern52:ell=4", "rbf:ell=2,nugget=1e-4"};

typedef struct {
  const char *const *kernels;
  size_t nk;
  size_t *taus;
  size_t nt;
  const char *data;  /* family spec of S0 (before scaling) */
  double data_var;   /* S0 = data_var * matrix(data) */
  const char *sched_spec;
  double t_start, t_end;
  size_t verify_max;
  int threads;
  int quiet;
  const char *out;   /* prefix: OUT.csv, OUT.h5 */
} config;

typedef struct {
  const char *kernel;
  size_t tau;
  int method;
  char status[16];   /* ok, refused, error */
  char msg[CSDE_MSG_MAX + 128];
  double kl, maxdiff, eig_min, eig_max; /* the covariance report (exact: 0, 0, eig range) */
  double err_fro, err_max, kl_end;      /* the effect on samples */
  double corr_fl;                       /* end-state correlation of frames 0 and tau - 1 */
  double flow_check;                    /* max|Phi - Phi_lib| / max|Phi_lib|, NaN: none */
  double seconds;                       /* wall time of the whole (kernel, tau) task */
} row;

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- small dense helpers (row-major n x n) ---- */

static double *dalloc(size_t n) { return malloc((n ? n : 1) * sizeof(double)); }

/* In-place Cholesky, lower factor; the strict upper triangle is zeroed. 0 or a GSL code. */
static int chol_lower(double *A, size_t n)
{
  gsl_matrix_view v = gsl_matrix_view_array(A, n, n);
  int s = gsl_linalg_cholesky_decomp1(&v.matrix);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++) A[i * n + j] = 0;
  return s;
}

static double chol_logdet(const double *L, size_t n)
{
  double ld = 0;
  for (size_t i = 0; i < n; i++) ld += log(L[i * n + i]);
  return 2 * ld;
}

/* A <- L^-1 A L^-T (L lower triangular), then symmetrised. */
static void whiten(const double *L, size_t n, double *A)
{
  int N = (int)n;
  cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, N, N, 1.0, L,
              N, A, N);
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, N, N, 1.0, L, N,
              A, N);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      A[i * n + j] = A[j * n + i] = 0.5 * (A[i * n + j] + A[j * n + i]);
}

static double fro(const double *A, size_t nn)
{
  double s = 0;
  for (size_t i = 0; i < nn; i++) s += A[i] * A[i];
  return sqrt(s);
}

static double maxabs(const double *A, size_t nn)
{
  double m = 0;
  for (size_t i = 0; i < nn; i++) m = fmax(m, fabs(A[i]));
  return m;
}

/* The exact operator for a spec: embed (no dense eigensolve at construction), or dense
 * when the family has no PSD embedding (or is not Toeplitz). */
static int exact_cov(csde_cov **C, const char *spec, size_t n, csde_err *err)
{
  csde_cov_params p = csde_cov_default_params();
  p.method = CSDE_COV_EMBED;
  if (!csde_cov_alloc(C, spec, n, &p, err)) return 0;
  p.method = CSDE_COV_DENSE;
  return csde_cov_alloc(C, spec, n, &p, err);
}

static void set_status(row *r, const char *st, const char *msg)
{
  snprintf(r->status, sizeof r->status, "%s", st);
  snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
}

/* One (kernel, tau): fills r[0..NMETH-1]. Returns 0, or non-zero after an error that is
 * recorded in the rows (status "error"). */
static int run_task(const config *cf, const csde_schedule *sch, const char *kernel, size_t n,
                    row *r)
{
  double t0 = now();
  size_t nn = n * n;
  int N = (int)n, ret = 0;
  csde_err err;
  csde_cov *Cx = NULL, *Cd = NULL, *Ca = NULL;
  csde_model *Mg = NULL;
  gsl_eigen_symmv_workspace *ew = NULL;
  double *T = dalloc(nn), *S0 = dalloc(nn), *L = dalloc(nn), *K = dalloc(nn), *U = dalloc(nn),
         *Wm = dalloc(nn), *R = dalloc(nn), *G = dalloc(nn), *E = dalloc(nn),
         *Seps = dalloc(nn), *Leps = dalloc(nn), *X = dalloc(nn), *kap = dalloc(n),
         *dd = dalloc(n), *ev = dalloc(n);
  for (int m = 0; m < NMETH; m++) {
    r[m] = (row){.kernel = kernel, .tau = n, .method = m};
    r[m].kl = r[m].maxdiff = r[m].eig_min = r[m].eig_max = NAN;
    r[m].err_fro = r[m].err_max = r[m].kl_end = r[m].flow_check = r[m].corr_fl = NAN;
    set_status(&r[m], "error", "not run");
  }
  char fail[CSDE_MSG_MAX + 128] = "";
#define FAIL(...)                                      \
  do {                                                 \
    snprintf(fail, sizeof fail, __VA_ARGS__);          \
    goto done;                                         \
  } while (0)
  if (!T || !S0 || !L || !K || !U || !Wm || !R || !G || !E || !Seps || !Leps || !X || !kap ||
      !dd || !ev)
    FAIL("out of memory (tau = %zu)", n);

  /* data S0 and the exact C */
  if (exact_cov(&Cd, cf->data, n, &err)) FAIL("data covariance: %s", err.msg);
  csde_cov_matrix(Cd, S0);
  for (size_t i = 0; i < nn; i++) S0[i] *= cf->data_var;
  if (exact_cov(&Cx, kernel, n, &err)) FAIL("%s", err.msg);
  if (csde_cov_is_singular(Cx)) FAIL("the exact C is singular: no KL, no whitening");
  csde_cov_matrix(Cx, T);
  if (csde_cov_eigenvalues(Cx, ev, &err)) FAIL("%s", err.msg);
  r[M_EXACT].eig_min = ev[0];
  r[M_EXACT].eig_max = ev[n - 1];
  r[M_EXACT].kl = r[M_EXACT].maxdiff = 0;

  /* the schedule at both ends (1 - abar without cancellation) */
  double aT = csde_schedule_abar(sch, cf->t_start), oT = -expm1(-csde_schedule_int_beta(sch, cf->t_start));
  double ae = csde_schedule_abar(sch, cf->t_end), oe = -expm1(-csde_schedule_int_beta(sch, cf->t_end));

  /* C = L L^T, K = L^-1 S0 L^-T = U diag(kappa) U^T, W = L U */
  memcpy(L, T, nn * sizeof *L);
  if (chol_lower(L, n)) FAIL("Cholesky of the exact C failed");
  memcpy(K, S0, nn * sizeof *K);
  whiten(L, n, K);
  {
    gsl_matrix_view Uv = gsl_matrix_view_array(U, n, n);
    gsl_vector_view kv = gsl_vector_view_array(kap, n);
    memcpy(R, K, nn * sizeof *R); /* symmv destroys its input: keep K */
    gsl_matrix_view Rv = gsl_matrix_view_array(R, n, n);
    ew = gsl_eigen_symmv_alloc(n);
    if (!ew || gsl_eigen_symmv(&Rv.matrix, &kv.vector, &Uv.matrix, ew))
      FAIL("eigensolver failed on L^-1 S0 L^-T");
  }
  memcpy(Wm, U, nn * sizeof *Wm);
  cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, N, N, 1.0, L, N,
              Wm, N);
  for (size_t i = 0; i < n; i++) {
    double sT = aT * kap[i] + oT, se = ae * kap[i] + oe;
    if (!(sT > 0 && se > 0)) FAIL("Sigma_t is singular (mode %zu, kappa %.3g)", i, kap[i]);
    dd[i] = sqrt(se / sT);
  }

  /* Sigma_eps (directly, not through W) and its Cholesky factor */
  for (size_t i = 0; i < nn; i++) Seps[i] = ae * S0[i] + oe * T[i];
  double nrm_eps = fro(Seps, nn), max_eps = maxabs(Seps, nn);
  memcpy(Leps, Seps, nn * sizeof *Leps);
  if (chol_lower(Leps, n)) FAIL("Sigma_eps is not positive definite");
  double ld_eps = chol_logdet(Leps, n);

  /* check the closed form against the library's flow (ODE route) and marginal */
  if (n <= cf->verify_max) {
    double *Pl = E, *Ph = G;
    if (csde_model_gaussian_alloc(&Mg, Cx, sch, 1, NULL, 0, S0, &err) ||
        csde_model_gaussian_flow(Mg, cf->t_start, cf->t_end, Pl, &err))
      FAIL("library flow: %s", err.msg);
    /* Phi = W D W^-1, W^-1 = U^T L^-1 */
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) X[i * n + j] = U[j * n + i];
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, N, N, 1.0, L,
                N, X, N);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) X[i * n + j] *= dd[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, Wm, N, X, N, 0.0, Ph,
                N);
    double dmax = 0;
    for (size_t i = 0; i < nn; i++) dmax = fmax(dmax, fabs(Ph[i] - Pl[i]));
    double fc = dmax / maxabs(Pl, nn);
    if (csde_model_gaussian_marginal(Mg, cf->t_end, NULL, R, &err))
      FAIL("library marginal: %s", err.msg);
    dmax = 0;
    for (size_t i = 0; i < nn; i++) dmax = fmax(dmax, fabs(R[i] - Seps[i]));
    fc = fmax(fc, dmax / max_eps);
    for (int m = 0; m < NMETH; m++) r[m].flow_check = fc;
  }

  for (int m = 0; m < NMETH; m++) {
    row *q = &r[m];
    /* R = P (the prior's covariance) */
    if (m == M_EXACT) {
      memcpy(R, T, nn * sizeof *R);
    } else {
      csde_cov_params p = csde_cov_default_params();
      p.method = meth_enum[m];
      if (csde_cov_alloc(&Ca, kernel, n, &p, &err)) {
        set_status(q, err.status == CSDE_ENOTPSD ? "refused" : "error", err.msg);
        if (err.status != CSDE_ENOTPSD) ret = 1;
        continue;
      }
      csde_cov_report rep = csde_cov_approx_report(Ca);
      q->kl = rep.kl_per_frame;
      q->maxdiff = rep.max_entry_diff;
      q->eig_min = rep.eig_min;
      q->eig_max = rep.eig_max;
      csde_cov_matrix(Ca, R);
      csde_cov_free(Ca);
      Ca = NULL;
    }
    /* R = L^-1 (P - Sigma_T) L^-T */
    for (size_t i = 0; i < nn; i++) R[i] = R[i] - aT * S0[i] - oT * T[i];
    whiten(L, n, R);
    /* G = D U^T R U D;  E = W G W^T = Sigma_end - Sigma_eps */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, N, N, 1.0, U, N, R, N, 0.0, G, N);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, G, N, U, N, 0.0, R, N);
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) R[i * n + j] *= dd[i] * dd[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, Wm, N, R, N, 0.0, G, N);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, N, 1.0, G, N, Wm, N, 0.0, E, N);
    for (size_t i = 0; i < n; i++)
      for (size_t j = i + 1; j < n; j++)
        E[i * n + j] = E[j * n + i] = 0.5 * (E[i * n + j] + E[j * n + i]);
    q->err_fro = fro(E, nn) / nrm_eps;
    q->err_max = maxabs(E, nn) / max_eps;
    /* KL(N(0, Sigma_eps) || N(0, Sigma_end)) = 1/2 (tr(Send^-1 Seps) - n + logdet Send
     * - logdet Seps), tr(Send^-1 Seps) = ||Lend^-1 Leps||_F^2 */
    for (size_t i = 0; i < nn; i++) G[i] = Seps[i] + E[i];
    q->corr_fl = G[n - 1] / sqrt(G[0] * G[nn - 1]);
    if (chol_lower(G, n)) {
      q->kl_end = INFINITY; /* Sigma_end singular: the prior was */
    } else {
      memcpy(X, Leps, nn * sizeof *X);
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, N, N, 1.0,
                  G, N, X, N);
      double tr = fro(X, nn);
      q->kl_end = fmax(0.5 * (tr * tr - (double)n + chol_logdet(G, n) - ld_eps) / (double)n, 0.0);
    }
    set_status(q, "ok", "");
  }
done:
  if (fail[0]) {
    ret = 1;
    for (int m = 0; m < NMETH; m++) set_status(&r[m], "error", fail);
  }
#undef FAIL
  double dt = now() - t0;
  for (int m = 0; m < NMETH; m++) r[m].seconds = dt;
  gsl_eigen_symmv_free(ew);
  csde_model_free(Mg);
  csde_cov_free(Ca);
  csde_cov_free(Cx);
  csde_cov_free(Cd);
  free(T), free(S0), free(L), free(K), free(U), free(Wm), free(R), free(G), free(E);
  free(Seps), free(Leps), free(X), free(kap), free(dd), free(ev);
  return ret;
}

/* ---- output ---- */

static void csv_field(FILE *f, const char *s)
{
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static int write_csv(const char *path, const config *cf, const row *rows, size_t nr,
                     const char *cmdline)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "cov_experiment: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  fprintf(f, "# cov_experiment (corrsde %s): %s\n", csde_version(), cmdline);
  fprintf(f, "# data = %s, data_var = %.17g, schedule = %s, t_start = %.17g, t_end = %.17g\n",
          cf->data, cf->data_var, cf->sched_spec, cf->t_start, cf->t_end);
  fprintf(f, "kernel,tau,method,status,kl_per_frame,max_entry_diff,eig_min,eig_max,"
             "cov_err_fro,cov_err_max,kl_end_per_frame,corr_first_last,flow_check,seconds,"
             "message\n");
  for (size_t i = 0; i < nr; i++) {
    const row *r = &rows[i];
    csv_field(f, r->kernel);
    fprintf(f, ",%zu,%s,%s,%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,%.10g,%.3g,%.3f,", r->tau,
            meth_name[r->method], r->status, r->kl, r->maxdiff, r->eig_min, r->eig_max,
            r->err_fro, r->err_max, r->kl_end, r->corr_fl, r->flow_check, r->seconds);
    csv_field(f, r->msg);
    fputc('\n', f);
  }
  if (fclose(f)) {
    fprintf(stderr, "cov_experiment: error writing %s\n", path);
    return 1;
  }
  return 0;
}

static herr_t h5_strings(hid_t loc, const char *name, const char *const *v, size_t n)
{
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t d = n;
  hid_t sp = H5Screate_simple(1, &d, NULL);
  hid_t ds = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t s = ds < 0 ? -1 : H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  H5Tclose(t);
  return s;
}

static herr_t h5_doubles(hid_t loc, const char *name, const double *v, size_t n)
{
  hsize_t d = n;
  hid_t sp = H5Screate_simple(1, &d, NULL);
  hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t s = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  return s;
}

static herr_t h5_longs(hid_t loc, const char *name, const long long *v, size_t n)
{
  hsize_t d = n;
  hid_t sp = H5Screate_simple(1, &d, NULL);
  hid_t ds = H5Dcreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t s = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  return s;
}

static herr_t h5_attr_str(hid_t loc, const char *name, const char *v)
{
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t s = a < 0 ? -1 : H5Awrite(a, t, &v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  return s;
}

static herr_t h5_attr_dbl(hid_t loc, const char *name, double v)
{
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t s = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return s;
}

/* One 1-D dataset per column under /cov_experiment, rows in CSV order. */
static int write_h5(const char *path, const config *cf, const row *rows, size_t nr,
                    const char *cmdline)
{
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "cov_experiment: cannot create %s\n", path);
    return 1;
  }
  hid_t g = H5Gcreate2(f, "cov_experiment", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const char **s = malloc(nr * sizeof *s);
  double *v = malloc(nr * sizeof *v);
  long long *iv = malloc(nr * sizeof *iv);
  herr_t e = g < 0 || !s || !v || !iv ? -1 : 0;
#define STRCOL(name, expr)                               \
  for (size_t i = 0; !e && i < nr; i++) s[i] = (expr);   \
  if (!e) e = h5_strings(g, name, s, nr);
#define DBLCOL(name, expr)                               \
  for (size_t i = 0; !e && i < nr; i++) v[i] = (expr);   \
  if (!e) e = h5_doubles(g, name, v, nr);
  STRCOL("kernel", rows[i].kernel)
  for (size_t i = 0; !e && i < nr; i++) iv[i] = (long long)rows[i].tau;
  if (!e) e = h5_longs(g, "tau", iv, nr);
  STRCOL("method", meth_name[rows[i].method])
  STRCOL("status", rows[i].status)
  STRCOL("message", rows[i].msg)
  DBLCOL("kl_per_frame", rows[i].kl)
  DBLCOL("max_entry_diff", rows[i].maxdiff)
  DBLCOL("eig_min", rows[i].eig_min)
  DBLCOL("eig_max", rows[i].eig_max)
  DBLCOL("cov_err_fro", rows[i].err_fro)
  DBLCOL("cov_err_max", rows[i].err_max)
  DBLCOL("kl_end_per_frame", rows[i].kl_end)
  DBLCOL("corr_first_last", rows[i].corr_fl)
  DBLCOL("flow_check", rows[i].flow_check)
  DBLCOL("seconds", rows[i].seconds)
#undef STRCOL
#undef DBLCOL
  if (!e) e = h5_attr_str(g, "command_line", cmdline);
  if (!e) e = h5_attr_str(g, "version", csde_version());
  if (!e) e = h5_attr_str(g, "data", cf->data);
  if (!e) e = h5_attr_dbl(g, "data_var", cf->data_var);
  if (!e) e = h5_attr_str(g, "schedule", cf->sched_spec);
  if (!e) e = h5_attr_dbl(g, "t_start", cf->t_start);
  if (!e) e = h5_attr_dbl(g, "t_end", cf->t_end);
  if (!e)
    e = h5_attr_str(g, "definition",
                    "prior N(0, P) (P = C, or its circulant) pushed through the exact "
                    "PF-ODE flow Phi of the true model (data N(0, S0), noise C) from t_start "
                    "to t_end: cov_err_fro = ||Phi (P - Sigma_T) Phi^T||_F / "
                    "||Sigma_eps||_F");
  free(s);
  free(v);
  free(iv);
  if (g >= 0) H5Gclose(g);
  if (H5Fclose(f) < 0) e = -1;
  if (e < 0) {
    fprintf(stderr, "cov_experiment: error writing %s\n", path);
    return 1;
  }
  return 0;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
  fputs(
      "Usage: cov_experiment [--taus LIST] [--kernel SPEC]... [--data SPEC] [--data-var V]\n"
      "                      [--schedule SPEC] [--t-start T] [--t-end E] [--verify-max TAU]\n"
      "                      [--threads N] [--quiet] [--out PREFIX]\n"
      "\n"
      "The exact Toeplitz noise covariance C against its T. Chan and Strang circulants,\n"
      "for each kernel and each tau. Per (kernel, tau, method) it records the covariance\n"
      "report (KL per frame KL(N(0,C) || N(0,circ)) / tau, max entry difference, the\n"
      "circulant's eigenvalue range) and the effect on samples, computed exactly: the true\n"
      "model (data N(0, S0), noise C, exact score) is sampled with the PF-ODE from the\n"
      "prior N(0, P), P = the circulant (or C itself for 'exact'); the end state's frame\n"
      "covariance Phi P Phi^T (Phi: the exact flow from T to eps) is compared with the\n"
      "exact p_eps covariance Sigma_eps:\n"
      "  cov_err_fro   ||Phi P Phi^T - Sigma_eps||_F / ||Sigma_eps||_F\n"
      "  cov_err_max   max |Phi P Phi^T - Sigma_eps|_ij / max |Sigma_eps|_ij\n"
      "  kl_end        KL(N(0, Sigma_eps) || N(0, Phi P Phi^T)) / tau\n"
      "  corr_first_last  the end state's correlation of frames 0 and tau - 1\n"
      "'exact' shows the floor of the prior N(0, C) itself (abar(T) > 0). A Strang\n"
      "circulant that is indefinite is refused by the library: status 'refused'.\n"
      "\n"
      "Options:\n"
      "  -t, --taus LIST     frame counts: A:B (powers of two from A to B) or a comma\n"
      "                      list (default 8:1024)\n"
      "  -k, --kernel SPEC   a noise covariance spec (corrsde cov --help); repeat for\n"
      "                      several (default: ar1:rho=0.9, matern32:ell=4,\n"
      "                      matern52:ell=4, rbf:ell=2,nugget=1e-4)\n"
      "      --data SPEC     the data's frame covariance family (default ar1:rho=0.95)\n"
      "      --data-var V    S0 = V * that matrix (default 0.25; with the default family\n"
      "                      this is corrsde sample's default gaussian model)\n"
      "      --schedule SPEC (default vp-linear)\n"
      "      --t-start T     the prior's time (default 1)\n"
      "      --t-end E       the end state's time (default 1e-3)\n"
      "      --verify-max N  compare the closed-form flow with the library's\n"
      "                      csde_model_gaussian_flow (ODE, 1e-13) for tau <= N\n"
      "                      (default 64; 0: never); column flow_check\n"
      "  -j, --threads N     (kernel, tau) tasks run in parallel (default: all cores)\n"
      "  -q, --quiet         no progress lines on stderr\n"
      "  -o, --out PREFIX    write PREFIX.csv and PREFIX.h5, overwriting them (default\n"
      "                      results/cov_experiment; directories are created)\n"
      "  -h, --help          show this help and exit\n"
      "\n"
      "The table on stdout summarises the CSV. Exit status: 0 on success, 1 if any\n"
      "task failed (its rows say why), 2 for a bad command line.\n",
      f);
}

static int parse_size(const char *s, size_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v == 0) return 1;
  *out = (size_t)v;
  return 0;
}

static int parse_taus(const char *s, size_t **taus, size_t *nt)
{
  size_t cap = 64, n = 0;
  size_t *v = malloc(cap * sizeof *v);
  if (!v) return 1;
  const char *colon = strchr(s, ':');
  if (colon) {
    char a[64], b[64];
    size_t la = (size_t)(colon - s);
    if (la == 0 || la >= sizeof a || strlen(colon + 1) >= sizeof b) goto bad;
    memcpy(a, s, la);
    a[la] = 0;
    strcpy(b, colon + 1);
    size_t lo, hi;
    if (parse_size(a, &lo) || parse_size(b, &hi) || lo > hi) goto bad;
    for (size_t t = lo; t <= hi && n < cap; t *= 2) v[n++] = t;
  } else {
    char *dup = strdup(s), *save = NULL;
    if (!dup) goto bad;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
      if (n == cap || parse_size(tok, &v[n])) {
        free(dup);
        goto bad;
      }
      n++;
    }
    free(dup);
  }
  if (n == 0) goto bad;
  *taus = v;
  *nt = n;
  return 0;
bad:
  free(v);
  return 1;
}

static int parse_double(const char *s, double *out)
{
  char *end;
  errno = 0;
  *out = strtod(s, &end);
  return errno || end == s || *end || !isfinite(*out);
}

/* mkdir -p of PREFIX's directory */
static int ensure_dir(const char *prefix)
{
  const char *slash = strrchr(prefix, '/');
  if (!slash || slash == prefix) return 0;
  char dir[4096];
  size_t l = (size_t)(slash - prefix);
  if (l >= sizeof dir) return 1;
  memcpy(dir, prefix, l);
  dir[l] = 0;
  for (char *p = dir + 1;; p++) {
    int last = *p == 0;
    if (*p == '/' || last) {
      *p = 0;
      struct stat st;
      if (stat(dir, &st) ? mkdir(dir, 0777) && errno != EEXIST : !S_ISDIR(st.st_mode))
        return 1;
      if (last) return 0;
      *p = '/';
    }
  }
}

int main(int argc, char **argv)
{
  csde_init();
  config cf = {.kernels = default_kernels,
               .nk = sizeof default_kernels / sizeof *default_kernels,
               .data = "ar1:rho=0.95",
               .data_var = 0.25,
               .sched_spec = "vp-linear",
               .t_start = 1.0,
               .t_end = 1e-3,
               .verify_max = 64,
               .threads = 0,
               .out = "results/cov_experiment"};
  const char **kern = calloc((size_t)argc + 1, sizeof *kern);
  size_t nk = 0;
  const char *taus_s = "8:1024";
  enum { O_DATA = 256, O_DVAR, O_SCHED, O_TS, O_TE, O_VER };
  static const struct option opts[] = {
      {"taus", required_argument, 0, 't'},     {"kernel", required_argument, 0, 'k'},
      {"data", required_argument, 0, O_DATA},  {"data-var", required_argument, 0, O_DVAR},
      {"schedule", required_argument, 0, O_SCHED}, {"t-start", required_argument, 0, O_TS},
      {"t-end", required_argument, 0, O_TE},   {"verify-max", required_argument, 0, O_VER},
      {"threads", required_argument, 0, 'j'},  {"quiet", no_argument, 0, 'q'},
      {"out", required_argument, 0, 'o'},      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  size_t sz;
  while ((c = getopt_long(argc, argv, "t:k:j:qo:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': taus_s = optarg; break;
    case 'k': kern[nk++] = optarg; break;
    case O_DATA: cf.data = optarg; break;
    case O_DVAR:
      if (parse_double(optarg, &cf.data_var) || !(cf.data_var > 0)) {
        fprintf(stderr, "cov_experiment: --data-var: '%s' is not a positive number\n", optarg);
        return 2;
      }
      break;
    case O_SCHED: cf.sched_spec = optarg; break;
    case O_TS:
    case O_TE:
      if (parse_double(optarg, c == O_TS ? &cf.t_start : &cf.t_end)) {
        fprintf(stderr, "cov_experiment: --%s: '%s' is not a number\n",
                c == O_TS ? "t-start" : "t-end", optarg);
        return 2;
      }
      break;
    case O_VER:
      if (!strcmp(optarg, "0")) cf.verify_max = 0;
      else if (parse_size(optarg, &cf.verify_max)) {
        fprintf(stderr, "cov_experiment: --verify-max: '%s' is not a count\n", optarg);
        return 2;
      }
      break;
    case 'j':
      if (parse_size(optarg, &sz) || sz > 4096) {
        fprintf(stderr, "cov_experiment: --threads: '%s' is not a positive count\n", optarg);
        return 2;
      }
      cf.threads = (int)sz;
      break;
    case 'q': cf.quiet = 1; break;
    case 'o': cf.out = optarg; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "cov_experiment: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (nk) {
    cf.kernels = kern;
    cf.nk = nk;
  }
  if (parse_taus(taus_s, &cf.taus, &cf.nt)) {
    fprintf(stderr, "cov_experiment: --taus: '%s' is not A:B or a list of positive counts\n",
            taus_s);
    return 2;
  }
  if (!(cf.t_start > cf.t_end && cf.t_end > 0 && cf.t_start <= 1)) {
    fprintf(stderr, "cov_experiment: need 0 < --t-end < --t-start <= 1 (got %g, %g)\n",
            cf.t_end, cf.t_start);
    return 2;
  }
  csde_err err;
  csde_schedule *sch;
  if (csde_schedule_alloc(&sch, cf.sched_spec, &err)) {
    fprintf(stderr, "cov_experiment: --schedule: %s\n", err.msg);
    return 2;
  }
  /* reject bad specs before any work */
  for (size_t k = 0; k < cf.nk + 1; k++) {
    const char *spec = k < cf.nk ? cf.kernels[k] : cf.data;
    csde_cov *C;
    if (exact_cov(&C, spec, 2, &err)) {
      fprintf(stderr, "cov_experiment: %s '%s': %s\n", k < cf.nk ? "--kernel" : "--data", spec,
              err.msg);
      return 2;
    }
    csde_cov_free(C);
  }
  char cmdline[4096] = "";
  for (int i = 0; i < argc; i++) {
    size_t l = strlen(cmdline);
    snprintf(cmdline + l, sizeof cmdline - l, "%s%s", i ? " " : "", argv[i]);
  }

  /* tasks, largest tau first (dynamic scheduling balances the threads) */
  size_t ntask = cf.nk * cf.nt, nrow = ntask * NMETH;
  row *rows = calloc(nrow, sizeof *rows);
  size_t *order = malloc(ntask * sizeof *order);
  if (!rows || !order) {
    fprintf(stderr, "cov_experiment: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < ntask; i++) order[i] = i;
  for (size_t i = 1; i < ntask; i++) /* insertion sort by tau, descending; stable */
    for (size_t j = i; j > 0 && cf.taus[order[j] % cf.nt] > cf.taus[order[j - 1] % cf.nt]; j--) {
      size_t t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  int nth = cf.threads;
#ifdef _OPENMP
  if (nth <= 0) nth = omp_get_num_procs();
#else
  nth = 1;
#endif
  double t0 = now();
  int failed = 0;
  size_t done = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) reduction(| : failed)
  for (size_t i = 0; i < ntask; i++) {
    size_t id = order[i], k = id / cf.nt, ti = id % cf.nt;
    row *r = rows + id * NMETH;
    failed |= run_task(&cf, sch, cf.kernels[k], cf.taus[ti], r);
#pragma omp critical
    {
      done++;
      if (!cf.quiet)
        fprintf(stderr, "[%3zu/%zu] %-22s tau %5zu  %6.2f s%s%s\n", done, ntask, cf.kernels[k],
                cf.taus[ti], r[0].seconds, strcmp(r[0].status, "error") ? "" : "  error: ",
                strcmp(r[0].status, "error") ? "" : r[0].msg);
    }
  }
  double wall = now() - t0;

  /* the table */
  printf("Exact Toeplitz C vs its circulants. Effect on samples: the prior N(0, P) through "
         "the exact PF-ODE flow\nof the true model (data %g*%s, schedule %s, t %g -> %g).\n"
         "frame-cov error: ||Sigma_end - Sigma_eps||_F / ||Sigma_eps||_F; corr(0,last): "
         "the end state's correlation\nof the first and last frames (exact: the data's).\n\n",
         cf.data_var, cf.data, cf.sched_spec, cf.t_start, cf.t_end);
  printf("%-22s %5s | %-21s | %-32s | %-23s | %s\n", "", "", "    KL per frame",
         "   frame-cov error (rel. Frob.)", "   corr(0, last)", "flow");
  printf("%-22s %5s | %10s %10s | %10s %10s %10s | %7s %7s %7s | %s\n", "kernel", "tau",
         "tchan", "strang", "exact", "tchan", "strang", "exact", "tchan", "strang", "check");
  for (size_t k = 0; k < cf.nk; k++) {
    for (size_t ti = 0; ti < cf.nt; ti++) {
      const row *r = rows + (k * cf.nt + ti) * NMETH;
      char b[NMETH][3][16];
      for (int m = 0; m < NMETH; m++) {
        const char *st = r[m].status;
        if (!strcmp(st, "ok")) {
          snprintf(b[m][0], 16, "%10.3e", r[m].kl);
          snprintf(b[m][1], 16, "%10.3e", r[m].err_fro);
          snprintf(b[m][2], 16, "%7.3f", fabs(r[m].corr_fl) < 5e-4 ? 0.0 : r[m].corr_fl);
        } else {
          snprintf(b[m][0], 16, "%10s", st);
          snprintf(b[m][1], 16, "%10s", st);
          snprintf(b[m][2], 16, "%7s", st);
        }
      }
      char fc[16] = "";
      if (!isnan(r[0].flow_check)) snprintf(fc, sizeof fc, "%.0e", r[0].flow_check);
      printf("%-22s %5zu | %s %s | %s %s %s | %s %s %s | %s\n", ti ? "" : cf.kernels[k],
             cf.taus[ti], b[M_TCHAN][0], b[M_STRANG][0], b[M_EXACT][1], b[M_TCHAN][1],
             b[M_STRANG][1], b[M_EXACT][2], b[M_TCHAN][2], b[M_STRANG][2], fc);
    }
  }
  printf("\n%zu tasks on %d thread%s in %.1f s\n", ntask, nth, nth == 1 ? "" : "s", wall);

  /* files */
  int werr = 0;
  char path[4200];
  if (ensure_dir(cf.out)) {
    fprintf(stderr, "cov_experiment: cannot create the directory of '%s'\n", cf.out);
    werr = 1;
  } else {
    snprintf(path, sizeof path, "%s.csv", cf.out);
    werr |= write_csv(path, &cf, rows, nrow, cmdline);
    if (!werr && !cf.quiet) fprintf(stderr, "wrote %s\n", path);
    snprintf(path, sizeof path, "%s.h5", cf.out);
    int e = write_h5(path, &cf, rows, nrow, cmdline);
    if (!e && !cf.quiet) fprintf(stderr, "wrote %s\n", path);
    werr |= e;
  }
  csde_schedule_free(sch);
  free(rows);
  free(order);
  free(cf.taus);
  free(kern);
  return failed || werr ? 1 : 0;
}
