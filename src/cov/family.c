/* Covariance families: spec parsing and lag functions c(k) (cov.h lists the forms). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "core/util.h"
#include "cov/cov_internal.h"
#include "io/h5read.h"

/* identity: c_0 = 1. */
static double lag_identity(const csde_cov_family *f, size_t k)
{
  (void)f;
  return k == 0 ? 1.0 : 0.0;
}

/* ar1 (progressive): c_k = rho^k. */
static double lag_ar1(const csde_cov_family *f, size_t k) { return pow(f->p[0], (double)k); }

/* mixed: c_0 = 1, c_k = r. */
static double lag_mixed(const csde_cov_family *f, size_t k) { return k == 0 ? 1.0 : f->p[0]; }

/* toeplitz: explicit column, 0 past it. */
static double lag_col(const csde_cov_family *f, size_t k) { return k < f->ncol ? f->col[k] : 0.0; }

/* matern32: V (1 + a) e^-a, a = sqrt(3) k / ell; nugget on c_0. */
static double lag_matern32(const csde_cov_family *f, size_t k)
{
  double a = sqrt(3.0) * (double)k / f->p[0];
  return f->p[1] * (1.0 + a) * exp(-a) + (k == 0 ? f->p[2] : 0.0);
}

/* matern52: V (1 + a + a^2/3) e^-a, a = sqrt(5) k / ell. */
static double lag_matern52(const csde_cov_family *f, size_t k)
{
  double a = sqrt(5.0) * (double)k / f->p[0];
  return f->p[1] * (1.0 + a + a * a / 3.0) * exp(-a) + (k == 0 ? f->p[2] : 0.0);
}

/* rbf: V exp(-k^2 / (2 ell^2)). */
static double lag_rbf(const csde_cov_family *f, size_t k)
{
  double d = (double)k / f->p[0];
  return f->p[1] * exp(-0.5 * d * d) + (k == 0 ? f->p[2] : 0.0);
}

/* Closed-form log det of the n x n matrix, for families that have one. */
static double logdet_identity(const csde_cov_family *f, size_t n)
{
  (void)f;
  (void)n;
  return 0.0;
}

/* ar1: det = (1 - rho^2)^(n-1) (the innovations of eps_i = rho eps_{i-1} + ...). */
static double logdet_ar1(const csde_cov_family *f, size_t n)
{
  double r = f->p[0];
  return (double)(n - 1) * log1p(-r * r);
}

/* mixed: det((1-r) I + r 11^T) = (1-r)^(n-1) (1 - r + n r) = (1-r)^(n-1) (1 + (n-1) r). */
static double logdet_mixed(const csde_cov_family *f, size_t n)
{
  double r = f->p[0];
  return (double)(n - 1) * log1p(-r) + log1p((double)(n - 1) * r);
}

void csde_cov_family_clear(csde_cov_family *f)
{
  free(f->col);
  free(f->mat);
  memset(f, 0, sizeof *f);
}

/* Read a numeric input named by "F" (text) or "F.h5:/dataset" (HDF5). */
static int read_numbers(const char *what, const char *val, double **out, int *rank,
                        size_t dims[4], csde_err *err)
{
  char path[1024], dset[512];
  int s;
  if (csde_split_h5_path(val, path, sizeof path, dset, sizeof dset)) {
    s = csde_h5_read(path, dset, out, rank, dims, err);
  } else {
    size_t n = 0;
    s = csde_text_read(val, out, &n, err);
    *rank = 1;
    dims[0] = n;
  }
  if (s && err) {
    char m[CSDE_MSG_MAX];
    snprintf(m, sizeof m, "%s", err->msg);
    csde_err_set(err, s, "%s: %s", what, m);
  }
  return s;
}

static int kernel_params(csde_cov_family *f, const csde_spec *sp, csde_err *err)
{
  static const char *const keys[] = {"ell", "var", "nugget", NULL};
  int s;
  if ((s = csde_spec_check_keys(sp, keys, err))) return s;
  if (!csde_spec_get(sp, "ell"))
    return csde_err_set(err, CSDE_ESPEC, "'%s' needs a lengthscale: %s:ell=L", f->name,
                        f->name);
  if ((s = csde_spec_double(sp, "ell", 0, &f->p[0], err)) ||
      (s = csde_spec_double(sp, "var", 1.0, &f->p[1], err)) ||
      (s = csde_spec_double(sp, "nugget", 0.0, &f->p[2], err)))
    return s;
  if (!(f->p[0] > 0))
    return csde_err_set(err, CSDE_EDOM, "%s: ell = %g must be > 0", f->name, f->p[0]);
  if (!(f->p[1] > 0))
    return csde_err_set(err, CSDE_EDOM, "%s: var = %g must be > 0", f->name, f->p[1]);
  if (!(f->p[2] >= 0))
    return csde_err_set(err, CSDE_EDOM, "%s: nugget = %g must be >= 0", f->name, f->p[2]);
  return CSDE_SUCCESS;
}

/* ---- the families: one parse function each, then one line in the table below ---- */

static const char *const no_keys[] = {NULL};

static int parse_identity(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  (void)tau;
  f->lag = lag_identity;
  f->logdet = logdet_identity;
  return csde_spec_check_keys(sp, no_keys, err);
}

static int parse_ar1(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  static const char *const keys[] = {"rho", NULL};
  int s;
  (void)tau;
  if ((s = csde_spec_check_keys(sp, keys, err))) return s;
  if (!csde_spec_get(sp, "rho"))
    return csde_err_set(err, CSDE_ESPEC, "'ar1' needs its correlation: ar1:rho=R");
  if ((s = csde_spec_double(sp, "rho", 0, &f->p[0], err))) return s;
  if (!(f->p[0] > -1 && f->p[0] < 1))
    return csde_err_set(err, CSDE_EDOM, "ar1: rho = %g outside (-1, 1)", f->p[0]);
  f->lag = lag_ar1;
  f->logdet = logdet_ar1;
  return CSDE_SUCCESS;
}

static int parse_mixed(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  static const char *const keys[] = {"r", "alpha", NULL};
  int s;
  (void)tau;
  if ((s = csde_spec_check_keys(sp, keys, err))) return s;
  const char *r = csde_spec_get(sp, "r"), *a = csde_spec_get(sp, "alpha");
  if ((r != NULL) == (a != NULL))
    return csde_err_set(err, CSDE_ESPEC,
                        "'mixed' takes exactly one of r or alpha: mixed:r=R or mixed:alpha=A");
  if (a) {
    double al;
    if ((s = csde_spec_double(sp, "alpha", 0, &al, err))) return s;
    /* PYoCo: r = alpha^2 / (1 + alpha^2), as 1 / (1 + alpha^-2) for |alpha| > 1 so that
     * alpha^2 cannot overflow */
    double ia = 1.0 / al;
    f->p[0] = fabs(al) <= 1 ? al * al / (1.0 + al * al) : 1.0 / (1.0 + ia * ia);
    if (!(f->p[0] < 1))
      return csde_err_set(err, CSDE_EDOM,
                          "mixed: alpha = %g gives r = alpha^2 / (1 + alpha^2) = 1 to working "
                          "precision (C = 11^T, singular); use |alpha| < 1e7 or mixed:r=R",
                          al);
  } else if ((s = csde_spec_double(sp, "r", 0, &f->p[0], err))) {
    return s;
  }
  if (!(f->p[0] >= 0 && f->p[0] < 1))
    return csde_err_set(err, CSDE_EDOM, "mixed: r = %g outside [0, 1)", f->p[0]);
  f->lag = lag_mixed;
  f->logdet = logdet_mixed;
  return CSDE_SUCCESS;
}

static int parse_toeplitz(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  static const char *const keys[] = {"col", "file", NULL};
  int s;
  (void)tau;
  if ((s = csde_spec_check_keys(sp, keys, err))) return s;
  const char *col = csde_spec_get(sp, "col"), *file = csde_spec_get(sp, "file");
  if ((col != NULL) == (file != NULL))
    return csde_err_set(err, CSDE_ESPEC,
                        "'toeplitz' takes exactly one of col=c0,c1,... or file=F");
  if (col) {
    csde_err e;
    if ((s = csde_list_check_entries(col, strlen(col), &e)) ||
        (s = csde_parse_double_list(col, &f->col, &f->ncol, &e)))
      return csde_err_set(err, s, "toeplitz:col: %s", e.msg);
  } else {
    int rank;
    size_t dims[4];
    if ((s = read_numbers("toeplitz:file", file, &f->col, &rank, dims, err))) return s;
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (rank != 1 || n == 0) {
      char sh[64];
      csde_shape_str(dims, rank, sh, sizeof sh);
      return csde_err_set(err, CSDE_EBADLEN,
                          "toeplitz:file '%s' has shape %s, expected a 1-D column [n]",
                          file, sh);
    }
    f->ncol = n;
  }
  if (!csde_all_finite(f->col, f->ncol))
    return csde_err_set(err, CSDE_ENAN, "toeplitz column has a NaN or Inf entry");
  f->lag = lag_col;
  return CSDE_SUCCESS;
}

static int parse_dense(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  static const char *const keys[] = {"file", NULL};
  int s;
  if ((s = csde_spec_check_keys(sp, keys, err))) return s;
  const char *file = csde_spec_get(sp, "file");
  if (!file)
    return csde_err_set(err, CSDE_ESPEC, "'dense' needs a matrix: dense:file=C.h5:/C");
  int rank;
  size_t dims[4];
  if ((s = read_numbers("dense:file", file, &f->mat, &rank, dims, err))) return s;
  if (rank != 2 || dims[0] != tau || dims[1] != tau) {
    char sh[64];
    csde_shape_str(dims, rank, sh, sizeof sh);
    return csde_err_set(err, CSDE_EBADLEN, "dense:file '%s' has shape %s, expected [%zu, %zu]",
                        file, sh, tau, tau);
  }
  if (!csde_all_finite(f->mat, tau * tau))
    return csde_err_set(err, CSDE_ENAN, "dense:file '%s' has a NaN or Inf entry", file);
  return CSDE_SUCCESS;
}

static int parse_matern32(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  (void)tau;
  f->lag = lag_matern32;
  return kernel_params(f, sp, err);
}

static int parse_matern52(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  (void)tau;
  f->lag = lag_matern52;
  return kernel_params(f, sp, err);
}

static int parse_rbf(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  (void)tau;
  f->lag = lag_rbf;
  return kernel_params(f, sp, err);
}

/* powerexp: c_k = exp(-(k / ell)^p), 0 < p <= 2 (PSD there: exp(-|x|^p) is the
 * characteristic function of a symmetric p-stable law). */
static double lag_powerexp(const csde_cov_family *f, size_t k)
{
  return exp(-pow((double)k / f->p[0], f->p[1]));
}

static int parse_powerexp(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err)
{
  static const char *const keys[] = {"ell", "p", NULL};
  int s;
  (void)tau;
  if ((s = csde_spec_check_keys(sp, keys, err))) return s;
  if (!csde_spec_get(sp, "ell") || !csde_spec_get(sp, "p"))
    return csde_err_set(err, CSDE_ESPEC,
                        "'powerexp' needs a lengthscale and a power: powerexp:ell=L,p=P");
  if ((s = csde_spec_double(sp, "ell", 0, &f->p[0], err)) ||
      (s = csde_spec_double(sp, "p", 0, &f->p[1], err)))
    return s;
  if (!(f->p[0] > 0 && isfinite(f->p[0])))
    return csde_err_set(err, CSDE_EDOM, "powerexp: ell = %g must be > 0", f->p[0]);
  if (!(f->p[1] > 0 && f->p[1] <= 2))
    return csde_err_set(err, CSDE_EDOM,
                        "powerexp: p = %g outside (0, 2] (C is not PSD for p > 2)", f->p[1]);
  f->lag = lag_powerexp;
  return CSDE_SUCCESS;
}

/* ---- the registry: a new family is its parse function above and one line here ---- */

typedef struct {
  const char *name;
  const char *form;    /* the spec's form(s), ' | ' between alternatives */
  const char *summary; /* what C is, one sentence */
  int (*parse)(csde_cov_family *f, const csde_spec *sp, size_t tau, csde_err *err);
} family_type;

static const family_type families[] = {
    {"identity", "identity", "C = I: independent frames", parse_identity},
    {"ar1", "ar1:rho=R", "c_k = R^k, -1 < R < 1 (progressive noise, AR(1))", parse_ar1},
    {"mixed", "mixed:r=R | mixed:alpha=A",
     "C = (1 - R) I + R 11^T, 0 <= R < 1: a noise shared by all frames plus an independent "
     "one per frame; alpha=A gives R = A^2 / (1 + A^2)",
     parse_mixed},
    {"toeplitz", "toeplitz:col=C0,C1,... | toeplitz:file=F | toeplitz:file=F.h5:/DSET",
     "the first column, listed or read from a text file of numbers or a 1-D HDF5 dataset; "
     "lags past it are 0, a longer one is cut to tau",
     parse_toeplitz},
    {"dense", "dense:file=F.h5:/DSET", "any symmetric PSD tau x tau matrix, from HDF5 "
     "(the one family that is not Toeplitz)", parse_dense},
    {"matern32", "matern32:ell=L[,var=V][,nugget=N]",
     "c_k = V (1 + a) e^-a, a = sqrt(3) k / L; V defaults to 1, the nugget N (default 0) "
     "is added to c_0",
     parse_matern32},
    {"matern52", "matern52:ell=L[,var=V][,nugget=N]",
     "c_k = V (1 + a + a^2/3) e^-a, a = sqrt(5) k / L; V and N as for matern32",
     parse_matern52},
    {"rbf", "rbf:ell=L[,var=V][,nugget=N]",
     "c_k = V exp(-k^2 / (2 L^2)); V and N as for matern32: a small nugget keeps this smooth "
     "kernel positive definite",
     parse_rbf},
    {"powerexp", "powerexp:ell=L,p=P",
     "c_k = exp(-(k / L)^P), L > 0, 0 < P <= 2 (P = 1: ar1 with R = e^(-1/L); P = 2: rbf "
     "with ell = L / sqrt(2))",
     parse_powerexp},
};
#define NFAMILIES (sizeof families / sizeof families[0])

const char *csde_cov_family_entry(size_t i, const char **form, const char **summary)
{
  if (i >= NFAMILIES) return NULL;
  if (form) *form = families[i].form;
  if (summary) *summary = families[i].summary;
  return families[i].name;
}

char *csde_cov_family_names(char *buf, size_t len)
{
  size_t o = 0;
  if (!buf || !len) return buf;
  buf[0] = '\0';
  for (size_t i = 0; i < NFAMILIES && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", families[i].name);
  return buf;
}

int csde_cov_family_parse(csde_cov_family *f, const char *spec, size_t tau, csde_err *err)
{
  csde_spec sp;
  int s;
  memset(f, 0, sizeof *f);
  if ((s = csde_spec_parse(spec, "covariance spec", &sp, err))) return s;
  snprintf(f->name, sizeof f->name, "%s", sp.name);
  for (size_t i = 0; i < NFAMILIES; i++)
    if (!strcmp(sp.name, families[i].name)) return families[i].parse(f, &sp, tau, err);
  char names[512];
  return csde_err_set(err, CSDE_ESPEC, "unknown covariance family '%s' (expected %s)", sp.name,
                      csde_cov_family_names(names, sizeof names));
}
