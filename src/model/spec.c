/* The built-in models from a spec string (csde_model_spec_alloc, corrsde/model.h):
 *   gaussian[:mean=M,std=S,rho=R]  S0 = S^2 ar1(R) (an operator when S > 0, |R| < 1; else
 *                                  the dense S^2 R^|i-j|), mean M everywhere
 *   gaussian:file=P.h5             csde_model_gaussian_load
 *   gmm:file=P.h5                  csde_model_gmm_load */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "corrsde/model.h"

static char *fmt_spec(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static char *fmt_spec(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* The shortest "%.*g" of v that reads back exactly. */
static void short_g(double v, char *buf, size_t len)
{
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, len, "%.*g", p, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* gaussian:mean=M,std=S,rho=R. */
static int gaussian_params(csde_model **out, const csde_spec *sp, const csde_cov *C,
                           const csde_schedule *s, size_t D, char **canon, csde_err *err)
{
  size_t tau = csde_cov_tau(C);
  double mean, sd, rho;
  int st;
  if ((st = csde_spec_double(sp, "mean", CSDE_MODEL_GAUSSIAN_MEAN, &mean, err)) ||
      (st = csde_spec_double(sp, "std", CSDE_MODEL_GAUSSIAN_STD, &sd, err)) ||
      (st = csde_spec_double(sp, "rho", CSDE_MODEL_GAUSSIAN_RHO, &rho, err)))
    return st;
  if (!(sd >= 0)) return csde_err_set(err, CSDE_EDOM, "gaussian: std must be >= 0");
  if (!(rho >= -1 && rho <= 1)) return csde_err_set(err, CSDE_EDOM, "gaussian: rho must be in [-1, 1]");
  if (sd > 0 && rho > -1 && rho < 1) {
    /* S0 = std^2 ar1(rho) as an operator: the data law is sampled through it (embed for
     * long clips, nothing tau x tau), the score's dense parts made on first use */
    char s0[64];
    snprintf(s0, sizeof s0, "ar1:rho=%.17g", rho);
    st = csde_model_gaussian_alloc_spec(out, C, s, D, &mean, 1, s0, sd * sd, err);
  } else if (tau > CSDE_MODEL_DENSE_MAX_TAU) { /* its error, naming tau and the memory */
    return csde_model_gaussian_alloc(out, C, s, D, &mean, 1, NULL, err);
  } else { /* std = 0 or |rho| = 1: a singular S0, only as a dense matrix */
    double *S0 = malloc(tau * tau * sizeof *S0);
    if (!S0) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
    for (size_t i = 0; i < tau; i++) /* S0 = std^2 ar1(rho): std^2 rho^|i-j| */
      for (size_t j = 0; j < tau; j++)
        S0[i * tau + j] = sd * sd * pow(rho, (double)(i > j ? i - j : j - i));
    st = csde_model_gaussian_alloc(out, C, s, D, &mean, 1, S0, err);
    free(S0);
  }
  if (st) return st;
  char a[32], b[32], c[32];
  short_g(mean, a, sizeof a);
  short_g(sd, b, sizeof b);
  short_g(rho, c, sizeof c);
  *canon = fmt_spec("gaussian:mean=%s,std=%s,rho=%s", a, b, c);
  return CSDE_SUCCESS;
}

int csde_model_spec_alloc(csde_model **out, const char *spec, const csde_cov *C,
                          const csde_schedule *s, size_t D, char **canon, csde_err *err)
{
  if (!out || !canon || !spec || !C)
    return csde_err_set(err, CSDE_EINVAL, "model spec: a NULL argument");
  *out = NULL;
  *canon = NULL;
  csde_spec sp;
  int st = csde_spec_parse(spec, "model spec", &sp, err);
  if (st) return st;
  static const char *const gkeys[] = {"mean", "std", "rho", "file", NULL};
  static const char *const mkeys[] = {"file", NULL};
  const char *file = csde_spec_get(&sp, "file");
  if (!strcmp(sp.name, "gaussian")) {
    if ((st = csde_spec_check_keys(&sp, gkeys, err))) return st;
    if (!file) {
      st = gaussian_params(out, &sp, C, s, D, canon, err);
    } else if (sp.n > 1) {
      return csde_err_set(err, CSDE_ESPEC, "gaussian:file=P.h5 takes no other parameter");
    } else if (!(st = csde_model_gaussian_load(out, file, C, s, D, err))) {
      *canon = fmt_spec("gaussian:file=%s", file);
    }
  } else if (!strcmp(sp.name, "gmm")) {
    if ((st = csde_spec_check_keys(&sp, mkeys, err))) return st;
    if (!file) return csde_err_set(err, CSDE_ESPEC, "gmm needs its parameters: gmm:file=P.h5");
    if (!(st = csde_model_gmm_load(out, file, C, s, D, err)))
      *canon = fmt_spec("gmm:file=%s", file);
  } else {
    return csde_err_set(err, CSDE_ESPEC, "unknown model '%s'", sp.name);
  }
  if (!st && !*canon) st = csde_err_set(err, CSDE_ENOMEM, "out of memory");
  if (st) {
    csde_model_free(*out);
    *out = NULL;
  }
  return st;
}
