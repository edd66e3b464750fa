/* test_cov_errors: every error path of corrsde/cov.h, provoked on purpose.
 *
 * Each check asserts the status code and that err->status agrees with it, plus a
 * distinctive part of the message: a word ("eigenvalue", "rho", a file name) and, where
 * the message is meant to name a number (an eigenvalue, a shape, a parameter), that
 * number, read back out of the message whatever its format (%g or %.17g, "[5, 6]" or
 * "5x6"). The message itself is printed as a TAP comment.
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_sort.h>
#include <hdf5.h>

#include "corrsde/cov.h"
#include "corrsde/status.h"
#include "tap.h"

/* src/io/h5read.h: CSDE_TEXT_MAX_BYTES, 64 MiB */
#define CSDE_TEST_TEXT_MAX ((long)64 << 20)

static char tmpdir[256];
static char created[32][320];
static int ncreated = 0;

static int h5_write(const char *file, const char *name, const double *data, int rank,
                    const hsize_t *dims)
{
  char path[320];
  snprintf(path, sizeof path, "%s/%s", tmpdir, file);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return -1;
  hid_t sp = H5Screate_simple(rank, dims, NULL);
  hid_t d = H5Dcreate2(f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(f);
  if (ncreated < 32) snprintf(created[ncreated++], sizeof created[0], "%s", path);
  return e < 0 ? -1 : 0;
}

static void text_write(const char *file, const char *text)
{
  char path[320];
  snprintf(path, sizeof path, "%s/%s", tmpdir, file);
  FILE *fp = fopen(path, "w");
  fputs(text, fp);
  fclose(fp);
  if (ncreated < 32) snprintf(created[ncreated++], sizeof created[0], "%s", path);
}

/* Does msg contain a number within reltol of want? (any position, any format) */
static int has_number(const char *msg, double want, double reltol)
{
  for (const char *p = msg; *p; p++) {
    if (!(*p == '-' || *p == '.' || isdigit((unsigned char)*p))) continue;
    char *end;
    double v = strtod(p, &end);
    if (end != p && fabs(v - want) <= reltol * fabs(want)) return 1;
  }
  return 0;
}
/* Does msg contain the integer n as a whole number (not inside another one)? */
static int has_int(const char *msg, long n)
{
  for (const char *p = msg; *p; p++) {
    if (!isdigit((unsigned char)*p) || (p > msg && (isdigit((unsigned char)p[-1]) || p[-1] == '.')))
      continue;
    char *end;
    long v = strtol(p, &end, 10);
    if (v == n && *end != '.' && *end != 'e') return 1;
  }
  return 0;
}
static int has_ci(const char *msg, const char *word)
{
  size_t n = strlen(word);
  for (const char *p = msg; *p; p++)
    if (!strncasecmp(p, word, n)) return 1;
  return 0;
}

/* the most negative eigenvalue of a symmetric n x n matrix */
static double min_eig(const double *A, size_t n)
{
  gsl_matrix *M = gsl_matrix_alloc(n, n);
  memcpy(M->data, A, n * n * sizeof *A);
  gsl_vector *ev = gsl_vector_alloc(n);
  gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(n);
  gsl_eigen_symm(M, ev, w);
  double m = gsl_vector_min(ev);
  gsl_eigen_symm_free(w);
  gsl_vector_free(ev);
  gsl_matrix_free(M);
  return m;
}
static void toeplitz(const double *c, size_t nc, size_t n, double *T)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      size_t k = i > j ? i - j : j - i;
      T[i * n + j] = k < nc ? c[k] : 0.0;
    }
}

static csde_cov_params with_method(csde_cov_method m)
{
  csde_cov_params p = csde_cov_default_params();
  p.method = m;
  return p;
}

/* alloc from a spec; returns the status, the error in *err, frees any operator */
static int try_spec(const char *spec, size_t tau, const csde_cov_params *par, csde_err *err)
{
  csde_cov *C = NULL;
  csde_err_clear(err);
  int s = csde_cov_alloc(&C, spec, tau, par, err);
  csde_cov_free(C);
  return s;
}

/* status s in the set {a, b} and err agrees */
#define ONE_OF(s, a, b) ((s) == (a) || (s) == (b))

static void expect(int s, const csde_err *err, int want, const char *substr, const char *what)
{
  ok_status(s, want, err->msg, substr, what);
  if (s != 0 && err->status != s)
    ok(0, "%s: err->status %d agrees with the returned %d", what, err->status, s);
}

static void dense_errors(void)
{
  const size_t n = 7;
  double M[49], A[49];
  csde_err err;
  csde_cov *C = NULL;
  int s;
  /* a well-conditioned SPD matrix: 2 I + a small symmetric perturbation */
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) M[i * n + j] = (i == j ? 2.0 : 0.0) + 0.1 / (1.0 + i + j);

  /* non-symmetric: entry (2,5) off by 1e-3 >> sym_tol max|C| */
  memcpy(A, M, sizeof M);
  A[2 * n + 5] += 1e-3;
  csde_err_clear(&err);
  s = csde_cov_alloc_dense(&C, A, n, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  expect(s, &err, CSDE_ENOTSYM, "tol", "non-symmetric dense matrix: ENOTSYM naming the tolerance");
  ok(s == CSDE_ENOTSYM && ((has_int(err.msg, 2) && has_int(err.msg, 5)) ||
                           (has_int(err.msg, 3) && has_int(err.msg, 6))),
     "non-symmetric dense matrix: message names the entry (2,5) (0- or 1-based)");
  /* the same through an HDF5 file */
  hsize_t d2[2] = {n, n};
  h5_write("nonsym.h5", "/C", A, 2, d2);
  char spec[400];
  snprintf(spec, sizeof spec, "dense:file=%s/nonsym.h5:/C", tmpdir);
  s = try_spec(spec, n, NULL, &err);
  expect(s, &err, CSDE_ENOTSYM, "tol", "non-symmetric dense file: ENOTSYM");
  /* with sym_tol = 1e-2 the same matrix is accepted */
  csde_cov_params p = csde_cov_default_params();
  p.sym_tol = 1e-2;
  csde_err_clear(&err);
  s = csde_cov_alloc_dense(&C, A, n, &p, &err);
  ok(s == 0, "sym_tol = 1e-2 accepts an asymmetry of 1e-3 / max|C| (status %d %s)", s, err.msg);
  csde_cov_free(C);
  C = NULL;

  /* indefinite: [[1/4, 3/4], [3/4, 1/4]] (+) 1 has eigenvalues 1, 1, -1/2 */
  double I3[9] = {0.25, 0.75, 0, 0.75, 0.25, 0, 0, 0, 1};
  const csde_cov_method ms[3] = {CSDE_COV_AUTO, CSDE_COV_DENSE, CSDE_COV_DENSE_CHOLESKY};
  for (int i = 0; i < 3; i++) {
    csde_cov_params pm = with_method(ms[i]);
    csde_err_clear(&err);
    s = csde_cov_alloc_dense(&C, I3, 3, &pm, &err);
    csde_cov_free(C);
    C = NULL;
    char what[200];
    snprintf(what, sizeof what, "indefinite dense matrix [%s]: ENOTPSD, 'eigenvalue'",
             csde_cov_method_name(ms[i]));
    expect(s, &err, CSDE_ENOTPSD, "eigenvalue", what);
    ok(has_number(err.msg, -0.5, 1e-4) && has_ci(err.msg, "tol"),
       "indefinite dense matrix [%s]: names the eigenvalue -0.5 and the tolerance",
       csde_cov_method_name(ms[i]));
  }
  h5_write("indef.h5", "/C", I3, 2, (hsize_t[2]){3, 3});
  snprintf(spec, sizeof spec, "dense:file=%s/indef.h5:/C", tmpdir);
  s = try_spec(spec, 3, NULL, &err);
  expect(s, &err, CSDE_ENOTPSD, "eigenvalue", "indefinite dense file: ENOTPSD");

  /* NaN / Inf entries */
  memcpy(A, M, sizeof M);
  A[3 * n + 3] = NAN;
  csde_err_clear(&err);
  s = csde_cov_alloc_dense(&C, A, n, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  expect(s, &err, CSDE_ENAN, NULL, "NaN on the diagonal of a dense matrix: ENAN");
  memcpy(A, M, sizeof M);
  A[1 * n + 4] = A[4 * n + 1] = INFINITY;
  csde_err_clear(&err);
  s = csde_cov_alloc_dense(&C, A, n, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  expect(s, &err, CSDE_ENAN, NULL, "Inf in a dense matrix: ENAN");
  memcpy(A, M, sizeof M);
  A[0 * n + 6] = A[6 * n + 0] = NAN;
  h5_write("nan.h5", "/C", A, 2, d2);
  snprintf(spec, sizeof spec, "dense:file=%s/nan.h5:/C", tmpdir);
  s = try_spec(spec, n, NULL, &err);
  expect(s, &err, CSDE_ENAN, NULL, "NaN in a dense HDF5 file: ENAN");

  /* wrong shapes: 5 x 6, 5 x 5 and a 1-D dataset for tau = 7 */
  double buf[64] = {0};
  for (int i = 0; i < 5; i++) buf[i * 6 + i] = 1;
  h5_write("shape56.h5", "/C", buf, 2, (hsize_t[2]){5, 6});
  snprintf(spec, sizeof spec, "dense:file=%s/shape56.h5:/C", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  ok(ONE_OF(s, CSDE_EBADLEN, CSDE_ENOTSQR) && err.status == s && has_int(err.msg, 5) &&
         has_int(err.msg, 6) && has_int(err.msg, 7),
     "dense dataset 5 x 6 for tau = 7: EBADLEN/ENOTSQR naming 5, 6 and 7 (status %d)", s);
  printf("# message: %s\n", err.msg);
  for (int i = 0; i < 25; i++) buf[i] = i % 6 == 0;
  h5_write("shape55.h5", "/C", buf, 2, (hsize_t[2]){5, 5});
  snprintf(spec, sizeof spec, "dense:file=%s/shape55.h5:/C", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  ok(ONE_OF(s, CSDE_EBADLEN, CSDE_ENOTSQR) && err.status == s && has_int(err.msg, 5) &&
         has_int(err.msg, 7),
     "dense dataset 5 x 5 for tau = 7: EBADLEN naming 5 and 7 (status %d)", s);
  printf("# message: %s\n", err.msg);
  h5_write("shape1d.h5", "/C", buf, 1, (hsize_t[1]){49});
  snprintf(spec, sizeof spec, "dense:file=%s/shape1d.h5:/C", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  ok(ONE_OF(s, CSDE_EBADLEN, CSDE_ENOTSQR) && err.status == s && has_int(err.msg, 49) &&
         has_int(err.msg, 7),
     "dense dataset of rank 1 (49) for tau = 7: EBADLEN naming 49 and 7 (status %d)", s);
  printf("# message: %s\n", err.msg);
  /* a toeplitz column must be 1-D */
  snprintf(spec, sizeof spec, "toeplitz:file=%s/shape56.h5:/C", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  ok(ONE_OF(s, CSDE_EBADLEN, CSDE_EINVAL) && err.status == s && has_int(err.msg, 5) &&
         has_int(err.msg, 6),
     "toeplitz column from a 5 x 6 dataset: EBADLEN naming the shape (status %d)", s);
  printf("# message: %s\n", err.msg);

  /* missing files and datasets: EIO naming the path */
  snprintf(spec, sizeof spec, "dense:file=%s/missing.h5:/C", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  expect(s, &err, CSDE_EIO, "missing.h5", "missing HDF5 file: EIO naming it");
  snprintf(spec, sizeof spec, "dense:file=%s/shape55.h5:/nosuchset", tmpdir);
  s = try_spec(spec, 5, NULL, &err);
  expect(s, &err, CSDE_EIO, "nosuchset", "missing dataset: EIO naming it");
  s = try_spec("toeplitz:file=/nonexistent/dir/column.txt", 7, NULL, &err);
  expect(s, &err, CSDE_EIO, "/nonexistent/dir/column.txt", "missing text file: EIO naming it");
  /* a text file that is not numbers */
  text_write("junk.txt", "1 0.5 banana\n");
  snprintf(spec, sizeof spec, "toeplitz:file=%s/junk.txt", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  ok(s != 0 && err.status == s && strstr(err.msg, "junk.txt"),
     "text column with a non-number: refused naming the file (status %d)", s);
  printf("# message: %s\n", err.msg);
  text_write("nan.txt", "1\n0.5\nnan\n");
  snprintf(spec, sizeof spec, "toeplitz:file=%s/nan.txt", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  ok(ONE_OF(s, CSDE_ESPEC, CSDE_ENAN) && err.status == s && strstr(err.msg, "nan.txt"),
     "text column with a NaN: ESPEC/ENAN naming the file (status %d)", s);
  printf("# message: %s\n", err.msg);
  double cn[3] = {1, NAN, 0.2};
  h5_write("colnan.h5", "/col", cn, 1, (hsize_t[1]){3});
  snprintf(spec, sizeof spec, "toeplitz:file=%s/colnan.h5:/col", tmpdir);
  s = try_spec(spec, 7, NULL, &err);
  expect(s, &err, CSDE_ENAN, NULL, "HDF5 column with a NaN: ENAN");

  /* circulant and embed methods are refused for a dense matrix */
  const csde_cov_method nd[3] = {CSDE_COV_CIRC_TCHAN, CSDE_COV_CIRC_STRANG, CSDE_COV_EMBED};
  h5_write("spd.h5", "/C", M, 2, d2);
  for (int i = 0; i < 3; i++) {
    csde_cov_params pm = with_method(nd[i]);
    csde_err_clear(&err);
    s = csde_cov_alloc_dense(&C, M, n, &pm, &err);
    csde_cov_free(C);
    C = NULL;
    ok(ONE_OF(s, CSDE_EINVAL, CSDE_ENOTSUP) && err.status == s && err.msg[0],
       "%s on csde_cov_alloc_dense: EINVAL/ENOTSUP (status %d)", csde_cov_method_name(nd[i]), s);
    printf("# message: %s\n", err.msg);
    snprintf(spec, sizeof spec, "dense:file=%s/spd.h5:/C", tmpdir);
    s = try_spec(spec, n, &pm, &err);
    ok(ONE_OF(s, CSDE_EINVAL, CSDE_ENOTSUP) && err.status == s && err.msg[0],
       "%s on the dense family: EINVAL/ENOTSUP (status %d)", csde_cov_method_name(nd[i]), s);
    printf("# message: %s\n", err.msg);
  }
}

static void toeplitz_errors(void)
{
  csde_err err;
  csde_cov *C = NULL;
  int s;
  char what[300];

  /* indefinite column 1, 0.9, -0.9: eigenvalues -0.8, 1.9, 1.9 at tau = 3 */
  const size_t taus[2] = {3, 7};
  const double c3[3] = {1, 0.9, -0.9};
  for (int i = 0; i < 2; i++) {
    double T[49];
    toeplitz(c3, 3, taus[i], T);
    double lmin = min_eig(T, taus[i]);
    const csde_cov_method ms[3] = {CSDE_COV_AUTO, CSDE_COV_DENSE_CHOLESKY, CSDE_COV_CIRC_STRANG};
    for (int k = 0; k < 3; k++) {
      csde_cov_params pm = with_method(ms[k]);
      s = try_spec("toeplitz:col=1,0.9,-0.9", taus[i], &pm, &err);
      snprintf(what, sizeof what, "toeplitz:col=1,0.9,-0.9 tau=%zu [%s]: ENOTPSD", taus[i],
               csde_cov_method_name(ms[k]));
      expect(s, &err, CSDE_ENOTPSD, "eigenvalue", what);
      if (ms[k] != CSDE_COV_CIRC_STRANG)
        ok(has_number(err.msg, lmin, 1e-4), "%s names the eigenvalue %.6g", what, lmin);
    }
    /* through the C API too */
    csde_err_clear(&err);
    s = csde_cov_alloc_toeplitz(&C, c3, 3, taus[i], NULL, &err);
    csde_cov_free(C);
    C = NULL;
    snprintf(what, sizeof what, "csde_cov_alloc_toeplitz(1, 0.9, -0.9) tau=%zu: ENOTPSD", taus[i]);
    expect(s, &err, CSDE_ENOTPSD, "eigenvalue", what);
  }
  /* embed of an indefinite T: no PSD embedding can exist (T is a principal submatrix) */
  {
    csde_cov_params pm = with_method(CSDE_COV_EMBED);
    s = try_spec("toeplitz:col=1,0.9,-0.9", 40, &pm, &err);
    expect(s, &err, CSDE_ENOTPSD, NULL, "toeplitz:col=1,0.9,-0.9 tau=40 [embed]: ENOTPSD");
    s = try_spec("toeplitz:col=1,0.9,-0.9", 200, NULL, &err);
    expect(s, &err, CSDE_ENOTPSD, NULL, "toeplitz:col=1,0.9,-0.9 tau=200 [auto]: ENOTPSD");
    /* long clips: no dense eigensolve (nor a dense fallback for auto) above 4096 frames;
     * Levinson-Durbin names the order at which the prediction error variance failed:
     * P_1 = 1 - 0.81 = 0.19, kappa_2 = (-0.9 - 0.9 * 0.9) / 0.19 = -9, P_2 = 0.19 (1 - 81) */
    const csde_cov_method lm[3] = {CSDE_COV_EMBED, CSDE_COV_AUTO, CSDE_COV_CIRC_TCHAN};
    for (int k = 0; k < 3; k++) {
      csde_cov_params pl = with_method(lm[k]);
      s = try_spec("toeplitz:col=1,0.9,-0.9", 20000, &pl, &err);
      snprintf(what, sizeof what, "toeplitz:col=1,0.9,-0.9 tau=20000 [%s]: ENOTPSD 'Levinson'",
               csde_cov_method_name(lm[k]));
      expect(s, &err, CSDE_ENOTPSD, "Levinson", what);
      ok(has_int(err.msg, 2) && has_number(err.msg, 0.19 * (1 - 81), 1e-6),
         "%s: names order 2 and P_2 = %.6g", what, 0.19 * (1 - 81));
    }
  }

  /* Strang indefinite while T is PSD.
   * tau = 4, col 1, 0.7, 0.3: T has lambda_min 0.118; Strang's column 1, 0.7, 0.3, 0.7 has
   * eigenvalue 1 - 2 (0.7) + 0.3 = -0.1. T. Chan stays PSD (it always does for PSD T). */
  {
    csde_cov_params ps = with_method(CSDE_COV_CIRC_STRANG), pt = with_method(CSDE_COV_CIRC_TCHAN);
    s = try_spec("toeplitz:col=1,0.7,0.3", 4, &ps, &err);
    expect(s, &err, CSDE_ENOTPSD, "eigenvalue", "Strang of toeplitz:col=1,0.7,0.3 tau=4: ENOTPSD");
    ok(has_number(err.msg, -0.1, 1e-4), "Strang tau=4: names the eigenvalue -0.1");
    s = try_spec("toeplitz:col=1,0.7,0.3", 4, &pt, &err);
    ok(s == 0, "T. Chan of the same column is accepted (status %d %s)", s, err.msg);
    s = try_spec("toeplitz:col=1,0.7,0.3", 4, NULL, &err);
    ok(s == 0, "the exact operator of the same column is accepted (status %d %s)", s, err.msg);
    /* matern32:ell=4 at tau = 7: Strang's lambda_min, computed here */
    double t[7], c[7], S[49];
    for (int k = 0; k < 7; k++) {
      double a = sqrt(3.0) * k / 4.0;
      t[k] = (1 + a) * exp(-a);
    }
    for (int k = 0; k < 7; k++) c[k] = 2 * k <= 7 ? t[k] : t[7 - k];
    toeplitz(c, 7, 7, S);
    double lmin = min_eig(S, 7);
    s = try_spec("matern32:ell=4", 7, &ps, &err);
    expect(s, &err, CSDE_ENOTPSD, "eigenvalue", "Strang of matern32:ell=4 tau=7: ENOTPSD");
    ok(has_number(err.msg, lmin, 1e-4), "Strang matern32 tau=7: names the eigenvalue %.6g", lmin);
  }

  /* rho outside (-1, 1) */
  const char *rhos[] = {"ar1:rho=1.5", "ar1:rho=1", "ar1:rho=-1", "ar1:rho=-3"};
  const double rv[] = {1.5, 1, -1, -3};
  for (int i = 0; i < 4; i++) {
    s = try_spec(rhos[i], 5, NULL, &err);
    snprintf(what, sizeof what, "%s: EDOM naming rho", rhos[i]);
    expect(s, &err, CSDE_EDOM, "rho", what);
    ok(has_number(err.msg, rv[i], 1e-9), "%s: message gives the value", rhos[i]);
  }
  /* mixed r outside [0, 1) */
  const char *rs[] = {"mixed:r=1", "mixed:r=-0.1", "mixed:r=2"};
  for (int i = 0; i < 3; i++) {
    s = try_spec(rs[i], 5, NULL, &err);
    snprintf(what, sizeof what, "%s: EDOM naming r", rs[i]);
    expect(s, &err, CSDE_EDOM, "r", what);
  }
  /* kernel parameters */
  const struct {
    const char *spec, *word;
  } dom[] = {{"matern32:ell=0", "ell"},          {"matern52:ell=-1", "ell"},
             {"rbf:ell=0", "ell"},               {"rbf:ell=1,var=0", "var"},
             {"matern32:ell=2,var=-1", "var"},   {"rbf:ell=1,nugget=-0.5", "nugget"},
             {"powerexp:ell=0,p=1", "ell"},      {"powerexp:ell=2,p=0", "p"},
             {"powerexp:ell=2,p=2.5", "p"},      {"powerexp:ell=2,p=-1", "p"}};
  for (size_t i = 0; i < sizeof dom / sizeof dom[0]; i++) {
    s = try_spec(dom[i].spec, 5, NULL, &err);
    snprintf(what, sizeof what, "%s: EDOM naming %s", dom[i].spec, dom[i].word);
    expect(s, &err, CSDE_EDOM, dom[i].word, what);
  }

  /* tau = 0 */
  s = try_spec("ar1:rho=0.5", 0, NULL, &err);
  ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s &&
         (has_ci(err.msg, "tau") || has_ci(err.msg, "size") || has_ci(err.msg, "frame")),
     "tau = 0: EINVAL/EBADLEN mentioning the size (status %d)", s);
  printf("# message: %s\n", err.msg);
  double one = 1;
  csde_err_clear(&err);
  s = csde_cov_alloc_toeplitz(&C, &one, 1, 0, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s,
     "csde_cov_alloc_toeplitz tau = 0: EINVAL/EBADLEN (status %d: %s)", s, err.msg);
  csde_err_clear(&err);
  s = csde_cov_alloc_dense(&C, &one, 0, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s,
     "csde_cov_alloc_dense tau = 0: EINVAL/EBADLEN (status %d: %s)", s, err.msg);
  csde_err_clear(&err);
  s = csde_cov_alloc_toeplitz(&C, &one, 0, 5, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s,
     "csde_cov_alloc_toeplitz with ncol = 0: EINVAL/EBADLEN (status %d: %s)", s, err.msg);

  /* NaN / Inf in a spec or a column */
  const char *nans[] = {"toeplitz:col=1,nan", "toeplitz:col=1,inf,0.1", "ar1:rho=nan",
                        "matern32:ell=nan"};
  for (int i = 0; i < 4; i++) {
    s = try_spec(nans[i], 5, NULL, &err);
    ok((s == CSDE_ESPEC || s == CSDE_ENAN || (s == CSDE_EDOM && i >= 2)) && err.status == s &&
           (has_ci(err.msg, "nan") || has_ci(err.msg, "inf") || has_ci(err.msg, "finite") ||
            has_ci(err.msg, "number")),
       "%s: refused by the parser or the builder (status %d)", nans[i], s);
    printf("# message: %s\n", err.msg);
  }
  double cnan[3] = {1, 0.5, NAN};
  csde_err_clear(&err);
  s = csde_cov_alloc_toeplitz(&C, cnan, 3, 5, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  expect(s, &err, CSDE_ENAN, NULL, "csde_cov_alloc_toeplitz with a NaN: ENAN");
  /* a NaN past tau is cut away: the column is cut to tau */
  csde_err_clear(&err);
  s = csde_cov_alloc_toeplitz(&C, cnan, 3, 2, NULL, &err);
  csde_cov_free(C);
  C = NULL;
  ok(s == 0 || s == CSDE_ENAN, "NaN past tau: cut away or refused (status %d)", s);

  /* malformed specs */
  const struct {
    const char *spec, *word;
  } bad[] = {{"wiener:h=0.5", "wiener"},      {"ar1:rho=0.5,beta=2", "beta"},
             {"identity:gamma=1", "gamma"},   {"ar1", "rho"},
             {"matern52:var=2", "ell"},       {"rbf:ell=two", "two"},
             {"toeplitz:col=1,0.5,x", "x"},   {"powerexp:ell=2", "p"},
             {"powerexp:p=1", "ell"},         {"powerexp:ell=2,p=1,var=3", "var"},
             {"", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s = try_spec(bad[i].spec, 5, NULL, &err);
    snprintf(what, sizeof what, "spec '%s': ESPEC%s%s", bad[i].spec, bad[i].word ? " naming " : "",
             bad[i].word ? bad[i].word : "");
    expect(s, &err, CSDE_ESPEC, bad[i].word, what);
  }
  /* toeplitz with neither col nor file */
  s = try_spec("toeplitz", 5, NULL, &err);
  ok(s == CSDE_ESPEC && err.status == s && (strstr(err.msg, "col") || strstr(err.msg, "file")),
     "spec 'toeplitz' without col/file: ESPEC (status %d)", s);
  printf("# message: %s\n", err.msg);
  /* a NULL err is allowed */
  ok(csde_cov_alloc(&C, "wiener", 5, NULL, NULL) == CSDE_ESPEC, "a NULL err is allowed");
  C = NULL;

  /* unknown method names */
  const char *mnames[] = {"bogus", "", "circulant-foo", "dense cholesky"};
  for (int i = 0; i < 4; i++) {
    csde_cov_method m = CSDE_COV_DENSE;
    csde_err_clear(&err);
    s = csde_cov_method_parse(mnames[i], &m, &err);
    snprintf(what, sizeof what, "method_parse('%s'): ESPEC", mnames[i]);
    expect(s, &err, CSDE_ESPEC, mnames[i][0] ? mnames[i] : NULL, what);
  }
}

/* Inputs that used to be altered silently (issue 10, items 9 and 11): each is refused
 * with its own status and message. */
static void input_errors(void)
{
  csde_err err;
  int s;
  char spec[400], path[320];

  /* a NUL byte in a text column used to end the column there */
  snprintf(path, sizeof path, "%s/nul.txt", tmpdir);
  FILE *fp = fopen(path, "wb");
  fwrite("1\n0.5\0 0.25\n", 1, 12, fp);
  fclose(fp);
  if (ncreated < 32) snprintf(created[ncreated++], sizeof created[0], "%s", path);
  snprintf(spec, sizeof spec, "toeplitz:file=%s", path);
  s = try_spec(spec, 3, NULL, &err);
  expect(s, &err, CSDE_ESPEC, "NUL byte", "text column with a NUL byte: ESPEC 'NUL byte'");
  ok(has_int(err.msg, 5), "the NUL message gives its offset 5");

  /* an empty entry used to be dropped (lag 2 became lag 1) */
  const struct {
    const char *spec;
    long entry;
  } empty[] = {{"toeplitz:col=1,,0.5", 2}, {"toeplitz:col=1, ,0.5", 2},
               {"toeplitz:col=1,0.5,", 3}, {"toeplitz:col=1,0.5,,0.25,0.1", 3}};
  for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
    char what[200];
    s = try_spec(empty[i].spec, 5, NULL, &err);
    snprintf(what, sizeof what, "'%s': ESPEC 'empty'", empty[i].spec);
    expect(s, &err, CSDE_ESPEC, "empty", what);
    ok(has_int(err.msg, empty[i].entry), "'%s': the message names entry %ld", empty[i].spec,
       empty[i].entry);
  }
  text_write("empty.txt", "1\n0.5,,0.25\n");
  snprintf(spec, sizeof spec, "toeplitz:file=%s/empty.txt", tmpdir);
  s = try_spec(spec, 5, NULL, &err);
  expect(s, &err, CSDE_ESPEC, "empty", "text column '1 0.5,,0.25': ESPEC 'empty'");
  /* separators that are fine: blanks, single commas, comments */
  text_write("okcol.txt", "1, 0.5\n0.25 # lag 2\n\n0.125,\t0.0625\n");
  snprintf(spec, sizeof spec, "toeplitz:file=%s/okcol.txt", tmpdir);
  csde_cov *C = NULL;
  csde_err_clear(&err);
  s = csde_cov_alloc(&C, spec, 6, NULL, &err);
  ok(s == 0, "text column with mixed separators and a comment reads (status %d %s)", s,
     err.msg);
  if (!s) {
    double M[36];
    csde_cov_matrix(C, M);
    ok(M[1] == 0.5 && M[2] == 0.25 && M[3] == 0.125 && M[4] == 0.0625 && M[5] == 0,
       "... as c = 1, 0.5, 0.25, 0.125, 0.0625, 0");
  }
  csde_cov_free(C);

  /* dense:file=C.h5 without :/dataset used to be read as text */
  double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  hsize_t d33[2] = {3, 3};
  h5_write("noset.h5", "/C", I3, 2, d33);
  snprintf(spec, sizeof spec, "dense:file=%s/noset.h5", tmpdir);
  s = try_spec(spec, 3, NULL, &err);
  expect(s, &err, CSDE_EBADLEN, "HDF5", "dense:file=C.h5 without a dataset: EBADLEN 'HDF5'");
  ok(strstr(err.msg, ":/dataset") != NULL, "... and says to name the dataset (':/dataset')");
  snprintf(spec, sizeof spec, "toeplitz:file=%s/noset.h5", tmpdir);
  s = try_spec(spec, 3, NULL, &err);
  expect(s, &err, CSDE_EBADLEN, ":/dataset", "toeplitz:file=C.h5 without a dataset: EBADLEN");

  /* a device used to be read without limit */
  s = try_spec("toeplitz:file=/dev/zero", 3, NULL, &err);
  expect(s, &err, CSDE_EIO, "regular file", "toeplitz:file=/dev/zero: EIO 'regular file'");
  s = try_spec("toeplitz:file=/tmp", 3, NULL, &err);
  expect(s, &err, CSDE_EIO, "regular file", "toeplitz:file=/tmp (a directory): EIO");
  /* and a file over the size limit (sparse: no disk used) */
  snprintf(path, sizeof path, "%s/huge.txt", tmpdir);
  fp = fopen(path, "w");
  if (fp) {
    fputs("1\n", fp);
    ok(fseek(fp, (long)CSDE_TEST_TEXT_MAX + 16, SEEK_SET) == 0 && fputc('\n', fp) == '\n',
       "made a sparse text file past the limit");
    fclose(fp);
    if (ncreated < 32) snprintf(created[ncreated++], sizeof created[0], "%s", path);
    snprintf(spec, sizeof spec, "toeplitz:file=%s", path);
    s = try_spec(spec, 3, NULL, &err);
    expect(s, &err, CSDE_EBADLEN, "bytes", "text column over the size limit: EBADLEN 'bytes'");
  }

  /* mixed:alpha=1e200: alpha^2 used to overflow to r = -nan */
  s = try_spec("mixed:alpha=1e200", 4, NULL, &err);
  expect(s, &err, CSDE_EDOM, "alpha", "mixed:alpha=1e200: EDOM naming alpha");
  ok(!has_ci(err.msg, "nan") && has_number(err.msg, 1e200, 1e-9),
     "mixed:alpha=1e200: the message gives alpha = 1e200, not a NaN");
  s = try_spec("mixed:alpha=-1e200", 4, NULL, &err);
  expect(s, &err, CSDE_EDOM, "alpha", "mixed:alpha=-1e200: EDOM naming alpha");
  /* a large alpha that still fits: r = 1 / (1 + alpha^-2), exact to rounding */
  csde_err_clear(&err);
  s = csde_cov_alloc(&C, "mixed:alpha=1e5", 2, NULL, &err);
  if (!s) {
    double M[4];
    csde_cov_matrix(C, M);
    double want = 1.0 / (1.0 + 1e-10);
    ok(fabs(M[1] - want) <= 2 * DBL_EPSILON, "mixed:alpha=1e5: r = %.17g (want %.17g)", M[1],
       want);
  } else {
    ok(0, "mixed:alpha=1e5 builds (status %d %s)", s, err.msg);
  }
  csde_cov_free(C);
}

/* embedding and CG limits */
static void embed_errors(void)
{
  csde_err err;
  int s;
  /* embed_max smaller than the least embedding 2 (tau - 1) = 30 */
  csde_cov_params p = with_method(CSDE_COV_EMBED);
  p.embed_max = 8;
  s = try_spec("ar1:rho=0.5", 16, &p, &err);
  ok(s != 0 && err.status == s && has_ci(err.msg, "embed"),
     "embed with embed_max = 8 < 2 (tau-1): refused mentioning the embedding (status %d)", s);
  printf("# message: %s\n", err.msg);

  /* cg_maxiter = 1 cannot reach 1e-14 for ar1 0.95 at tau = 256 */
  p = with_method(CSDE_COV_EMBED);
  p.cg_maxiter = 1;
  p.cg_tol = 1e-14;
  csde_cov *C = NULL;
  csde_cov_ws *ws = NULL;
  csde_err_clear(&err);
  s = csde_cov_alloc(&C, "ar1:rho=0.95", 256, &p, &err);
  if (s == 0) s = csde_cov_ws_alloc(&ws, C, 2, 1, &err);
  if (ok(s == 0, "embed ar1:rho=0.95 tau=256 with cg_maxiter = 1 builds (%s)", err.msg)) {
    double *x = malloc(2 * 256 * sizeof *x), *y = malloc(2 * 256 * sizeof *y);
    for (int i = 0; i < 512; i++) x[i] = sin(0.37 * i) + (i % 7) * 0.1;
    csde_err_clear(&err);
    s = csde_cov_apply(C, ws, CSDE_COV_OP_INV, 1, x, y, &err);
    expect(s, &err, CSDE_EMAXITER, NULL, "C^-1 with cg_maxiter = 1: EMAXITER");
    free(x);
    free(y);
  }
  csde_cov_ws_free(ws);
  csde_cov_free(C);
}

/* C^-1 of a singular C */
static void singular_errors(void)
{
  csde_err err;
  const struct {
    const char *spec;
    size_t tau;
  } sg[] = {{"toeplitz:col=1,1,1,1", 4}, {"toeplitz:col=1,1", 2}};
  const csde_cov_method ms[4] = {CSDE_COV_AUTO, CSDE_COV_DENSE, CSDE_COV_DENSE_CHOLESKY,
                                 CSDE_COV_EMBED};
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 4; k++) {
      csde_cov_params p = with_method(ms[k]);
      csde_cov *C = NULL;
      csde_cov_ws *ws = NULL;
      size_t tau = sg[i].tau, D = 3;
      char what[300];
      snprintf(what, sizeof what, "singular %s tau=%zu [%s]", sg[i].spec, tau,
               csde_cov_method_name(ms[k]));
      csde_err_clear(&err);
      int s = csde_cov_alloc(&C, sg[i].spec, tau, &p, &err);
      if (s != 0) {
        /* a factorisation that needs C > 0 may refuse at construction */
        ok(ms[k] != CSDE_COV_AUTO && ms[k] != CSDE_COV_DENSE &&
               (s == CSDE_ESING || s == CSDE_ENOTPSD) && err.status == s,
           "%s: refused at construction (status %d)", what, s);
        printf("# message: %s\n", err.msg);
        continue;
      }
      ok(csde_cov_is_singular(C) == 1, "%s: is_singular", what);
      ok(csde_cov_logdet(C) == -INFINITY, "%s: logdet = -inf", what);
      s = csde_cov_ws_alloc(&ws, C, D, 1, &err);
      double x[12], y[12], q[3], tot, lp;
      for (int j = 0; j < 12; j++) x[j] = 1.0 + j % 5;
      csde_err_clear(&err);
      s = csde_cov_apply(C, ws, CSDE_COV_OP_INV, 1, x, y, &err);
      snprintf(what + strlen(what), sizeof what - strlen(what), ": ");
      size_t o = strlen(what);
      snprintf(what + o, sizeof what - o, "C^-1 gives ESING");
      expect(s, &err, CSDE_ESING, NULL, what);
      csde_err_clear(&err);
      s = csde_cov_mahalanobis(C, ws, 1, x, NULL, q, &tot, &err);
      snprintf(what + o, sizeof what - o, "mahalanobis gives ESING");
      expect(s, &err, CSDE_ESING, NULL, what);
      csde_err_clear(&err);
      s = csde_cov_logpdf(C, ws, 1, x, &lp, &err);
      snprintf(what + o, sizeof what - o, "logpdf gives ESING");
      expect(s, &err, CSDE_ESING, NULL, what);
      /* C x and sampling still work */
      s = csde_cov_apply(C, ws, CSDE_COV_OP_C, 1, x, y, &err);
      snprintf(what + o, sizeof what - o, "C x still works");
      ok(s == 0, "%s", what);
      s = csde_cov_sample(C, ws, (csde_rng_key){1, 2}, 0, 1, y, &err);
      snprintf(what + o, sizeof what - o, "sample still works");
      ok(s == 0, "%s (status %d %s)", what, s, s ? err.msg : "");
      csde_cov_ws_free(ws);
      csde_cov_free(C);
    }
}

/* workspaces */
/* Issue 23, item 15: entries near the double range. The PSD checks work on the column
 * scaled by a power of two (exact), so an indefinite C is refused naming its eigenvalue
 * instead of passing with an infinite tolerance, a C whose eigenvalues overflow is
 * refused (CSDE_ERANGE), and the results scale exactly with the entries. */
static void range_errors(void)
{
  static const csde_cov_method ms[] = {CSDE_COV_EMBED, CSDE_COV_DENSE, CSDE_COV_CIRC_TCHAN,
                                       CSDE_COV_AUTO};
  static const char *const mn[] = {"embed", "dense", "circulant", "auto"};
  char what[200];
  csde_err err;
  for (size_t i = 0; i < 4; i++) {
    csde_cov_params par = with_method(ms[i]);
    for (size_t tau = 16; tau <= 32; tau += 16) {
      /* tridiagonal c0 = c1 = a: eigenvalues a (1 + 2 cos(k pi / (tau + 1))) */
      const double emin = 1e308 * (1 - 2 * cos(M_PI / (double)(tau + 1)));
      int s = try_spec("toeplitz:col=1e308,1e308", tau, &par, &err);
      snprintf(what, sizeof what, "toeplitz:col=1e308,1e308, %zu frames, %s: not PSD", tau,
               mn[i]);
      expect(s, &err, CSDE_ENOTPSD, "eigenvalue", what);
      ok(has_number(err.msg, emin, 1e-5), "... naming its most negative eigenvalue %.6g", emin);
    }
    /* [[a, a], [a, a]]: eigenvalues 0 and 2a = 2e308, beyond the double range */
    int s = try_spec("toeplitz:col=1e308,1e308", 2, &par, &err);
    snprintf(what, sizeof what, "toeplitz:col=1e308,1e308, 2 frames, %s: eigenvalue 2e308", mn[i]);
    expect(s, &err, CSDE_ERANGE, "beyond the double range", what);
  }
  /* a dense file: [[a, a, 0], [a, a, a], [0, a, a]], eigenvalues a (1 - sqrt 2), a,
   * a (1 + sqrt 2) with a = 5e307: indefinite, and its largest eigenvalue overflows */
  {
    const double a = 5e307, M[9] = {a, a, 0, a, a, a, 0, a, a}, P[4] = {1e308, 5e307, 5e307, 1e308};
    hsize_t d3[2] = {3, 3}, d2[2] = {2, 2};
    char spec[400];
    h5_write("huge3.h5", "C", M, 2, d3);
    snprintf(spec, sizeof spec, "dense:file=%s/huge3.h5:/C", tmpdir);
    csde_cov_params par = with_method(CSDE_COV_DENSE);
    int s = try_spec(spec, 3, &par, &err);
    expect(s, &err, CSDE_ENOTPSD, "eigenvalue", "dense file of entries 5e307: not PSD");
    ok(has_number(err.msg, a * (1 - sqrt(2.0)), 1e-5), "... naming its eigenvalue %.6g",
       a * (1 - sqrt(2.0)));
    /* [[1e308, 5e307], [5e307, 1e308]]: eigenvalues 5e307 and 1.5e308, exactly */
    h5_write("huge2.h5", "C", P, 2, d2);
    snprintf(spec, sizeof spec, "dense:file=%s/huge2.h5:/C", tmpdir);
    csde_cov *C = NULL;
    s = csde_cov_alloc(&C, spec, 2, &par, &err);
    double lo = 0, hi = 0, ev[2] = {0, 0};
    if (!s) csde_cov_eig_bounds(C, &lo, &hi);
    if (!s) s = csde_cov_eigenvalues(C, ev, &err);
    ok(s == 0 && fabs(lo / 5e307 - 1) < 1e-14 && fabs(hi / 1.5e308 - 1) < 1e-14 &&
           fabs(ev[1] / 1.5e308 - 1) < 1e-14 &&
           fabs(csde_cov_logdet(C) - log(5e307) - log(1.5e308)) < 1e-12 * 1420,
       "dense file [[1e308, 5e307], [5e307, 1e308]]: eigenvalues %.17g, %.17g, log det %.17g",
       lo, hi, C ? csde_cov_logdet(C) : NAN);
    csde_cov_free(C);
  }
  /* exact scaling: col = 2^k (1, 0.5) gives 2^k times the eigenvalue bounds of (1, 0.5)
   * and log det + tau k log 2, for k = -900 and 1020 (outside [2^-500, 2^500]; results
   * above the subnormals) */
  for (size_t i = 0; i < 3; i++) {
    csde_cov_params par = with_method(ms[i]);
    csde_cov *R = NULL, *H = NULL;
    const size_t tau = 40;
    int s = csde_cov_alloc(&R, "toeplitz:col=1,0.5", tau, &par, &err);
    double rlo = 0, rhi = 0;
    if (!s) csde_cov_eig_bounds(R, &rlo, &rhi);
    for (int k = -900; k <= 1020; k += 1920) {
      char spec[200];
      snprintf(spec, sizeof spec, "toeplitz:col=%.17g,%.17g", ldexp(1, k), ldexp(1, k - 1));
      int s2 = s ? s : csde_cov_alloc(&H, spec, tau, &par, &err);
      double lo = 0, hi = 0;
      if (!s2) csde_cov_eig_bounds(H, &lo, &hi);
      const double ld = s2 ? NAN : csde_cov_logdet(H), want = csde_cov_logdet(R) + (double)tau * k * M_LN2;
      ok(s2 == 0 && lo == ldexp(rlo, k) && hi == ldexp(rhi, k) && fabs(ld - want) <= 1e-12 * fabs(want),
         "%s, 2^%d (1, 0.5), %zu frames: eigenvalue bounds 2^%d those of (1, 0.5) exactly "
         "(%.17g, %.17g), log det %.17g = %.17g + %zu %d log 2",
         mn[i], k, tau, k, lo, hi, ld, csde_cov_logdet(R), tau, k);
      csde_cov_free(H);
      H = NULL;
    }
    csde_cov_free(R);
  }
}

static void ws_errors(void)
{
  csde_err err;
  csde_cov *A = NULL, *B = NULL, *E = NULL;
  csde_cov_ws *ws = NULL;
  int s;
  csde_err_clear(&err);
  s = csde_cov_alloc(&A, "ar1:rho=0.5", 16, NULL, &err);
  s |= csde_cov_alloc(&B, "ar1:rho=0.5", 7, NULL, &err);
  csde_cov_params pe = with_method(CSDE_COV_EMBED);
  s |= csde_cov_alloc(&E, "ar1:rho=0.5", 16, &pe, &err);
  if (!ok(s == 0, "operators for the workspace checks")) {
    printf("# %s\n", err.msg);
    goto done;
  }
  csde_err_clear(&err);
  s = csde_cov_ws_alloc(&ws, A, 0, 1, &err);
  csde_cov_ws_free(ws);
  ws = NULL;
  ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s,
     "ws_alloc with D = 0: EINVAL/EBADLEN (status %d: %s)", s, err.msg);
  s = csde_cov_ws_alloc(&ws, A, 4, -1, &err);
  csde_cov_ws_free(ws);
  ws = NULL;
  ok(s == 0 || (s == CSDE_EINVAL && err.status == s),
     "ws_alloc with nthreads = -1: refused with EINVAL or taken as 1 (status %d: %s)", s,
     s ? err.msg : "");

  /* a workspace of A (tau 16) used with B (tau 7); buffers sized for B, so an
   * undetected mismatch would not overrun them */
  s = csde_cov_ws_alloc(&ws, A, 4, 1, &err);
  if (ok(s == 0, "ws for tau = 16, D = 4")) {
    double x[16 * 4 * 2] = {0}, y[16 * 4 * 2];
    for (int i = 0; i < 7 * 4; i++) x[i] = 1.0 / (1 + i);
    csde_err_clear(&err);
    s = csde_cov_apply(B, ws, CSDE_COV_OP_C, 1, x, y, &err);
    ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s && has_ci(err.msg, "workspace"),
       "apply with a workspace made for another operator: EINVAL/EBADLEN (status %d)", s);
    printf("# message: %s\n", err.msg);
    csde_err_clear(&err);
    s = csde_cov_apply(E, ws, CSDE_COV_OP_C, 1, x, y, &err);
    ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s,
       "apply of an embed operator with a dense operator's workspace (same tau): refused (status %d)", s);
    printf("# message: %s\n", err.msg);
    csde_err_clear(&err);
    s = csde_cov_sample(B, ws, (csde_rng_key){1, 1}, 0, 1, y, &err);
    ok(ONE_OF(s, CSDE_EINVAL, CSDE_EBADLEN) && err.status == s,
       "sample with a workspace made for another operator: refused (status %d)", s);
  }
  csde_cov_ws_free(ws);
  ws = NULL;
  /* the op argument out of range */
  s = csde_cov_ws_alloc(&ws, B, 2, 1, &err);
  if (s == 0) {
    double x[14] = {0}, y[14];
    csde_err_clear(&err);
    s = csde_cov_apply(B, ws, (csde_cov_op)7, 1, x, y, &err);
    ok(s == CSDE_EINVAL && err.status == s, "apply with an unknown op: EINVAL (status %d: %s)", s,
       err.msg);
  }
  csde_cov_ws_free(ws);
done:
  csde_cov_free(A);
  csde_cov_free(B);
  csde_cov_free(E);
}

/* The library reads HDF5 files (dense:file=, toeplitz:file=) without touching the
 * caller's HDF5 error handler: it is the same after, and never called. */
static int handler_calls;
static herr_t count_handler(hid_t stack, void *data)
{
  (void)stack;
  (void)data;
  handler_calls++;
  return 0;
}

static void h5_handler_kept(void)
{
  static int token;
  H5Eset_auto2(H5E_DEFAULT, count_handler, &token);
  hsize_t d2[2] = {4, 4};
  double M[16];
  for (int i = 0; i < 16; i++) M[i] = i % 5 == 0 ? 1.0 : 0.0;
  h5_write("eye.h5", "/C", M, 2, d2);
  char spec[4200];
  const char *forms[] = {"dense:file=%s/eye.h5:/C", "dense:file=%s/eye.h5:/nosuchset",
                         "toeplitz:file=%s/eye.h5:/C"};
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    csde_cov *C = NULL;
    snprintf(spec, sizeof spec, forms[i], tmpdir);
    csde_err err;
    int s = csde_cov_alloc(&C, spec, 4, NULL, &err);
    csde_cov_free(C);
    H5E_auto2_t fn = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    ok(fn == count_handler && data == &token && handler_calls == 0,
       "HDF5 error handler kept (%s: status %d, handler called %d times)", spec, s,
       handler_calls);
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

int main(void)
{
  csde_init();
  snprintf(tmpdir, sizeof tmpdir, "/tmp/csde_test_cov_errors_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  h5_handler_kept();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  dense_errors();
  toeplitz_errors();
  embed_errors();
  input_errors();
  singular_errors();
  range_errors();
  ws_errors();
  for (int i = 0; i < ncreated; i++) unlink(created[i]);
  rmdir(tmpdir);
  return tap_done();
}
