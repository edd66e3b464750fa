/* The built-in gaussian model: X_0 ~ N(m, S0 (x) I_D) (MATH.md, "Exact test problems").
 *
 *   p_t = N(sqrt(abar) m, Sigma_t (x) I_D),   Sigma_t = abar S0 + (1 - abar) C
 *   C grad log p_t(x) = -M_t (x - sqrt(abar) m),   M_t = C Sigma_t^-1 = (Sigma_t^-1 C)^T
 *
 * The callback forms M_t once per call time (Cholesky of Sigma_t, two triangular solves;
 * cached while t repeats) and applies it with one GEMM per tau x D block. Everything it
 * touches is allocated here, so it never allocates; the scratch lives on the model, so
 * ONE MODEL OBJECT MUST NOT BE EVALUATED FROM TWO THREADS AT ONCE (nor its callback run
 * while marginal/flow/sample run on it). Make one model per thread instead.
 *
 * The PF-ODE flow is linear: z(t2) = Phi(t2, t1) z(t1), z = x - sqrt(abar) m, with
 *   dPhi/dt2 = -1/2 beta(t2) (I - C Sigma_t2^-1) Phi,   Phi(t1, t1) = I.
 * On any Gaussian path (issue 28) abar, 1 - abar, sqrt(abar) and -1/2 beta read alpha^2,
 * sigma^2, alpha and dPhi/dt2 = (f I + 1/2 g^2 C Sigma_t2^-1) Phi (model_internal.h's
 * csde_model_alpha*, the VP expressions kept verbatim on a VP schedule); t lies in the
 * path's span.
 * When S0 C = C S0 it has the closed form Phi = Sigma_t2^1/2 Sigma_t1^-1/2 (any path); otherwise the
 * tau x tau matrix ODE is integrated with GSL's rk8pd at rtol = atol = 1e-13.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_odeiv2.h>

#include "core/linalg.h"
#include "core/smallmm.h"
#include "core/tiles.h"
#include "core/util.h"
#include "io/h5read.h"
#include "model/model_internal.h"

/* The ODE route's tolerances and step budget. */
#define FLOW_TOL 1e-13
#define FLOW_NMAX 1000000
/* S0 and C commute when ||S0 C - C S0||_F <= COMMUTE_TOL ||S0||_F ||C||_F. */
#define COMMUTE_TOL 1e-12
/* The callback's tile width in pixels (tau x CHUNK doubles stay in L2). */
#define CHUNK 512

typedef struct {
  size_t tau, D;
  const csde_cov *C;      /* borrowed */
  const csde_schedule *s; /* borrowed */
  double *m;              /* mean, tau x D; NULL when m = 0 */
  csde_cov *S0op;         /* owned: S0 = s0var * this operator (alloc_spec), or NULL */
  double s0var;
  /* the dense parts (S0 .. W), formed by dense_init: at alloc, or on first use */
  int dense;              /* 1 once they are formed */
  csde_err derr;          /* why dense_init failed (the callback has no err) */
  double *S0;             /* tau x tau */
  double *Cm;             /* the dense C, tau x tau */
  int commute;            /* S0 C = C S0 */
  /* scratch, sized at alloc (see the threading note above) */
  double *Mt;             /* callback: M_t = C Sigma_t^-1 for t = tM */
  double tM;              /* NaN: Mt not valid */
  double *Mo;             /* ODE right-hand side: C Sigma_t^-1 */
  double *L;              /* Sigma_t and its Cholesky factor */
  double *W;              /* tau x tau work */
  double *z;              /* one block, tau x D */
  int threads;            /* callback: OpenMP threads over column chunks */
  double *zc;             /* callback: one tau x CHUNK tile per thread */
  csde_tile_slot *slot;   /* callback: the threads' shares of the tiles (core/tiles.h) */
  double tfail;           /* where Sigma_t last failed to factor (ODE messages) */
} gauss;

static void gauss_free(void *p)
{
  gauss *g = p;
  if (!g) return;
  csde_free(g->m);
  csde_cov_free(g->S0op);
  csde_free(g->S0);
  csde_free(g->Cm);
  csde_free(g->Mt);
  csde_free(g->Mo);
  csde_free(g->L);
  csde_free(g->W);
  csde_free(g->z);
  csde_free(g->zc);
  csde_free(g->slot);
  free(g);
}

/* S = Sigma_t = abar S0 + (1 - abar) C */
static void sigma_at(const gauss *g, double t, double *S)
{
  size_t nn = g->tau * g->tau;
  double a = csde_model_alpha2(g->s, t), om = csde_one_minus_abar(g->s, t);
  for (size_t i = 0; i < nn; i++) S[i] = a * g->S0[i] + om * g->Cm[i];
}

/* M = C Sigma_t^-1 = (Sigma_t^-1 C)^T, through g->L and g->W. Returns 0 or the failing
 * pivot + 1 when Sigma_t is not positive definite. */
static size_t c_sigma_inv(gauss *g, double t, double *M)
{
  size_t n = g->tau;
  sigma_at(g, t, g->L);
  size_t piv = csde_mat_chol(g->L, n);
  if (piv) return piv;
  memcpy(g->W, g->Cm, n * n * sizeof(double));
  csde_mat_chol_solve(g->L, n, n, g->W, n); /* W = Sigma_t^-1 C */
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) M[i * n + j] = g->W[j * n + i];
  return 0;
}

static int dense_init(gauss *g, csde_err *err);

/* out = -M_t (x - sqrt(abar) m), one GEMM per tile of CHUNK columns of a block, the
 * tile's z = x - sqrt(abar) m copied in cache first when there is a mean or out is x. The tiles do not
 * depend on the thread count: threads never change a bit. */
static int gauss_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  gauss *g = user;
  size_t n = g->tau, D = g->D, bs = n * D, per = (D + CHUNK - 1) / CHUNK;
  if (!g->dense && dense_init(g, &g->derr)) return -1; /* csde_model_gaussian_prepare says why */
  if (!(t == g->tM)) {
    g->tM = NAN;
    if (c_sigma_inv(g, t, g->Mt)) return -1; /* Sigma_t singular: no score */
    g->tM = t;
  }
  double sa = csde_model_alpha(g->s, t);
  long ntiles = (long)(batch * per);
  int th = g->threads;
  csde_tiles_reset(g->slot, th, ntiles);
#ifdef _OPENMP
#pragma omp parallel num_threads(th) if (th > 1)
#endif
  for (long k; (k = csde_tiles_take(g->slot, th, csde_thread_num())) >= 0;) {
    size_t b = (size_t)k / per, c0 = ((size_t)k % per) * CHUNK;
    size_t nc = D - c0 < CHUNK ? D - c0 : CHUNK;
    const double *xb = x + b * bs + c0;
    const int small = csde_smallmm_use(n);
    if (!g->m && out != x && small) { /* out = -M_t x from registers (core/smallmm.c) */
      csde_smallmm(csde_smallmm_kernel(), n, n, nc, -1.0, g->Mt, n, xb, D, 0.0, NULL, 0.0, NULL,
                   D, out + b * bs + c0);
      continue;
    }
    if (!g->m && out != x) { /* z = x: no copy */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)nc, (int)n, -1.0,
                  g->Mt, (int)n, xb, (int)D, 0.0, out + b * bs + c0, (int)D);
      continue;
    }
    double *z = g->zc + (size_t)csde_thread_num() * n * CHUNK;
    for (size_t i = 0; i < n; i++) {
      const double *xi = xb + i * D, *mi = g->m ? g->m + i * D + c0 : NULL;
      double *zi = z + i * CHUNK;
      if (mi)
        for (size_t c = 0; c < nc; c++) zi[c] = xi[c] - sa * mi[c];
      else
        memcpy(zi, xi, nc * sizeof(double));
    }
    if (small)
      csde_smallmm(csde_smallmm_kernel(), n, n, nc, -1.0, g->Mt, n, z, CHUNK, 0.0, NULL, 0.0,
                   NULL, D, out + b * bs + c0);
    else
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)nc, (int)n, -1.0,
                  g->Mt, (int)n, z, (int)CHUNK, 0.0, out + b * bs + c0, (int)D);
  }
  return 0;
}

static gauss *gauss_of(const csde_model *M, const char *fn, csde_err *err)
{
  if (!M || M->tag != CSDE_MODEL_GAUSSIAN) {
    csde_err_set(err, CSDE_EINVAL, "%s: model '%s' is not the built-in gaussian model", fn,
                 M ? M->name : "(null)");
    return NULL;
  }
  return M->priv;
}

int csde_model_gaussian_set_threads(csde_model *M, int threads, csde_err *err)
{
  gauss *g = gauss_of(M, "csde_model_gaussian_set_threads", err);
  if (!g) return err ? err->status : CSDE_EINVAL;
  if (threads < 1)
    return csde_err_set(err, CSDE_EINVAL, "gaussian model: threads = %d must be >= 1",
                        threads);
  double *zc = csde_alloc((size_t)threads * g->tau * CHUNK, sizeof(double));
  csde_tile_slot *slot = csde_calloc((size_t)threads, sizeof *slot);
  if (!zc || !slot) {
    csde_free(zc);
    csde_free(slot);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for %d gaussian model tiles",
                        threads);
  }
  csde_free(g->zc);
  csde_free(g->slot);
  g->zc = zc;
  g->slot = slot;
  g->threads = threads;
  return CSDE_SUCCESS;
}

static int check_t(const gauss *g, double t, const char *fn, const char *which,
                   csde_err *err)
{
  return csde_model_check_t(g->s, t, fn, which, err);
}

/* Bytes of the dense parts: S0, C, M_t, the ODE's M, Sigma_t's factor, a work matrix. */
#define DENSE_MATS 6

static int dense_refuse(size_t tau, const char *what, csde_err *err)
{
  double gb = (double)DENSE_MATS * 8.0 * (double)tau * (double)tau / 1e9;
  return csde_err_set(err, CSDE_ENOMEM,
                      "gaussian model: %s needs dense tau x tau factors: tau = %zu needs "
                      "%.3g GB (%d matrices of %zu x %zu doubles); the limit is %d frames "
                      "(only the data law p_0 of an S0 operator is sampled without them)",
                      what, tau, gb, DENSE_MATS, tau, tau, CSDE_MODEL_DENSE_MAX_TAU);
}

/* Form the dense parts: S0 (from the operator if there is one, then checked), the dense
 * C, the scratch; check S0 + C PD and whether S0 and C commute. O(tau^3). */
static int dense_build(gauss *g, csde_err *err)
{
  size_t tau = g->tau, nn = tau * tau;
  if (tau > CSDE_MODEL_DENSE_MAX_TAU) return dense_refuse(tau, "the score", err);
  int st = CSDE_SUCCESS;
  if (!g->S0) g->S0 = csde_alloc(nn, sizeof(double));
  g->Cm = csde_alloc(nn, sizeof(double));
  g->Mt = csde_alloc(nn, sizeof(double));
  g->Mo = csde_alloc(nn, sizeof(double));
  g->L = csde_alloc(nn, sizeof(double));
  g->W = csde_alloc(nn, sizeof(double));
  if (!g->S0 || !g->Cm || !g->Mt || !g->Mo || !g->L || !g->W)
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the gaussian model's dense "
                        "factors (tau = %zu: %.3g GB)", tau, DENSE_MATS * 8.0 * (double)nn / 1e9);
  if (g->S0op) { /* S0 = s0var * (the operator's matrix) */
    csde_cov_matrix(g->S0op, g->S0);
    for (size_t i = 0; i < nn; i++) g->S0[i] *= g->s0var;
  }
  csde_cov_matrix(g->C, g->Cm);
  /* Sigma_t, t in (0, 1), is PD iff S0 + C is (ker S0 and ker C meet only in 0) */
  for (size_t i = 0; i < nn; i++) g->L[i] = g->S0[i] + g->Cm[i];
  size_t piv = csde_mat_chol(g->L, tau);
  if (piv) {
    st = csde_err_set(err, CSDE_ESING,
                      "gaussian model: S0 + C is singular (Cholesky pivot %zu), so Sigma_t = "
                      "abar S0 + (1 - abar) C is singular at every t",
                      piv - 1);
    return st;
  }
  /* commute: ||S0 C - C S0||_F <= 1e-12 ||S0||_F ||C||_F */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)tau, (int)tau, (int)tau, 1.0,
              g->S0, (int)tau, g->Cm, (int)tau, 0.0, g->W, (int)tau);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)tau, (int)tau, (int)tau, -1.0,
              g->Cm, (int)tau, g->S0, (int)tau, 1.0, g->W, (int)tau);
  double dn = 0, sn = 0, cn = 0;
  for (size_t i = 0; i < nn; i++) {
    dn += g->W[i] * g->W[i];
    sn += g->S0[i] * g->S0[i];
    cn += g->Cm[i] * g->Cm[i];
  }
  g->commute = sqrt(dn) <= COMMUTE_TOL * sqrt(sn) * sqrt(cn);
  g->dense = 1;
  return CSDE_SUCCESS;
}

/* dense_build once: a failure is kept in g->derr (the callback has no err) and given
 * again on every later call, without retrying. */
static int dense_init(gauss *g, csde_err *err)
{
  if (g->dense) return CSDE_SUCCESS;
  if (!g->derr.status) dense_build(g, &g->derr);
  if (g->derr.status && err && err != &g->derr) *err = g->derr;
  return g->derr.status;
}

/* What both constructors share: arguments, the mean, the per-block scratch. */
static int gauss_new(gauss **out, const csde_cov *C, const csde_schedule *s, size_t D,
                     const double *mean, size_t mean_len, csde_err *err)
{
  *out = NULL;
  if (!C || !s)
    return csde_err_set(err, CSDE_EINVAL, "gaussian model: %s is NULL",
                        !C ? "covariance" : "schedule");
  size_t tau = csde_cov_tau(C), bs;
  if (D == 0) return csde_err_set(err, CSDE_EINVAL, "gaussian model: D = 0 pixels per frame");
  if (csde_mul_size(tau, D, &bs))
    return csde_err_set(err, CSDE_EINVAL, "gaussian model: tau x D = %zu x %zu overflows", tau,
                        D);
  if (mean_len && !mean)
    return csde_err_set(err, CSDE_EINVAL, "gaussian model: mean is NULL but mean_len = %zu",
                        mean_len);
  if (mean_len != 0 && mean_len != 1 && mean_len != tau && mean_len != bs)
    return csde_err_set(err, CSDE_EBADLEN,
                        "gaussian model: mean has %zu values; expected 0, 1, tau = %zu or "
                        "tau * D = %zu",
                        mean_len, tau, bs);
  int zero = 1;
  for (size_t i = 0; i < mean_len; i++) {
    if (!isfinite(mean[i]))
      return csde_err_set(err, CSDE_ENAN, "gaussian model: mean[%zu] = %g is not finite", i,
                          mean[i]);
    zero &= mean[i] == 0;
  }
  /* a mean of zeros is no mean: every use gives the same bits (x - sqrt(abar) 0 = x), and
   * the score's tiles skip the pass that subtracts it (the CLI's default gaussian:mean=0
   * took 10% more per EM step at 64x64 than the same model without one) */
  if (zero) mean_len = 0;
  gauss *g = calloc(1, sizeof *g);
  if (!g) return csde_err_set(err, CSDE_ENOMEM, "out of memory for the gaussian model");
  g->tau = tau;
  g->D = D;
  g->C = C;
  g->s = s;
  g->tM = NAN;
  g->threads = 1;
  g->s0var = 1.0;
  g->z = csde_alloc(bs, sizeof(double));
  g->zc = csde_alloc(tau * CHUNK, sizeof(double));
  g->slot = csde_calloc(1, sizeof *g->slot);
  if (mean_len) g->m = csde_alloc(bs, sizeof(double));
  if (!g->z || !g->zc || !g->slot || (mean_len && !g->m)) {
    gauss_free(g);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the gaussian model (tau = %zu, "
                        "D = %zu)", tau, D);
  }
  for (size_t i = 0; mean_len && i < tau; i++) /* broadcast m to tau x D */
    for (size_t p = 0; p < D; p++)
      g->m[i * D + p] = mean_len == bs ? mean[i * D + p] : mean_len == tau ? mean[i] : mean[0];
  *out = g;
  return CSDE_SUCCESS;
}

int csde_model_gaussian_alloc(csde_model **out, const csde_cov *C, const csde_schedule *s,
                              size_t D, const double *mean, size_t mean_len,
                              const double *S0, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "gaussian model: output pointer is NULL");
  *out = NULL;
  if (C && csde_cov_tau(C) > CSDE_MODEL_DENSE_MAX_TAU)
    return dense_refuse(csde_cov_tau(C), "a dense S0", err);
  gauss *g = NULL;
  int st = gauss_new(&g, C, s, D, mean, mean_len, err);
  if (st) return st;
  size_t tau = g->tau, nn = tau * tau;
  g->S0 = csde_alloc(nn, sizeof(double));
  if (!g->S0) {
    st = csde_err_set(err, CSDE_ENOMEM, "out of memory for the gaussian model (tau = %zu)", tau);
    goto fail;
  }
  if (S0) {
    memcpy(g->S0, S0, nn * sizeof(double));
    if ((st = csde_mat_check_cov(g->S0, tau, "gaussian model: S0", err))) goto fail;
  } else {
    for (size_t i = 0; i < tau; i++) /* 0.25 ar1(0.95): S0_ij = 0.25 0.95^|i-j| */
      for (size_t j = 0; j < tau; j++)
        g->S0[i * tau + j] = 0.25 * pow(0.95, (double)(i > j ? i - j : j - i));
  }
  if ((st = dense_init(g, err))) goto fail;
  return csde_model_wrap(out, "gaussian", gauss_fn, CSDE_OUT_CSCORE, g, gauss_free,
                         CSDE_MODEL_GAUSSIAN, tau, D, err);
fail:
  gauss_free(g);
  return st;
}

int csde_model_gaussian_alloc_spec(csde_model **out, const csde_cov *C, const csde_schedule *s,
                                   size_t D, const double *mean, size_t mean_len,
                                   const char *s0_spec, double s0_var, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "gaussian model: output pointer is NULL");
  *out = NULL;
  if (!s0_spec) return csde_err_set(err, CSDE_EINVAL, "gaussian model: S0 spec is NULL");
  if (!(s0_var > 0) || !isfinite(s0_var))
    return csde_err_set(err, CSDE_EDOM, "gaussian model: S0 variance %g must be positive and "
                        "finite", s0_var);
  gauss *g = NULL;
  int st = gauss_new(&g, C, s, D, mean, mean_len, err);
  if (st) return st;
  csde_err e;
  csde_err_clear(&e);
  if ((st = csde_cov_alloc(&g->S0op, s0_spec, g->tau, NULL, &e))) {
    csde_err_set(err, st, "gaussian model: S0 '%s': %s", s0_spec, e.msg);
    goto fail;
  }
  g->s0var = s0_var;
  /* Sigma_t is PD for t in (0, 1) when S0 + C is; either one PD suffices, which the
   * operators know without dense work. Otherwise dense_init checks (below or on use). */
  if (g->tau <= CSDE_MODEL_GAUSSIAN_EAGER_TAU && (st = dense_init(g, err))) goto fail;
  if (g->tau > CSDE_MODEL_GAUSSIAN_EAGER_TAU && csde_cov_is_singular(C) &&
      csde_cov_is_singular(g->S0op) && (st = dense_init(g, err)))
    goto fail;
  return csde_model_wrap(out, "gaussian", gauss_fn, CSDE_OUT_CSCORE, g, gauss_free,
                         CSDE_MODEL_GAUSSIAN, g->tau, D, err);
fail:
  gauss_free(g);
  return st;
}

int csde_model_gaussian_prepare(csde_model *M, csde_err *err)
{
  gauss *g = gauss_of(M, "csde_model_gaussian_prepare", err);
  if (!g) return CSDE_EINVAL;
  return dense_init(g, err);
}

/* tr(C grad^2 log p_t) = -D tr(C Sigma_t^-1) = -D tr(M_t) for every x: grad log p_t =
 * -(Sigma_t^-1 (x) I_D)(x - mu) is affine. M_t is the callback's, cached per t. */
int csde_model_gaussian_cdiv(const csde_model *M, double t, size_t batch, double *tr,
                             csde_err *err)
{
  gauss *g = M->priv;
  size_t n = g->tau;
  int st = check_t(g, t, "exact divergence", "t", err);
  if (st) return st;
  if (!g->dense) {
    if (g->derr.status) return dense_init(g, err); /* the error kept from the first try */
    return csde_err_set(err, CSDE_EINVAL, "exact divergence: the gaussian model's dense "
                        "factors are not formed (tau = %zu): call "
                        "csde_model_exact_cdiv_prepare first", n);
  }
  if (!(t == g->tM)) {
    g->tM = NAN;
    size_t piv = c_sigma_inv(g, t, g->Mt);
    if (piv)
      return csde_err_set(err, CSDE_ESING, "exact divergence: the gaussian model's Sigma_t "
                          "is not positive definite at t = %.17g (Cholesky pivot %zu)",
                          t, piv - 1);
    g->tM = t;
  }
  double trm = 0;
  for (size_t i = 0; i < n; i++) trm += g->Mt[i * n + i];
  for (size_t b = 0; b < batch; b++) tr[b] = -(double)g->D * trm;
  return CSDE_SUCCESS;
}

int csde_model_gaussian_has_dense(const csde_model *M)
{
  return csde_model_is_gaussian(M) && ((const gauss *)M->priv)->dense;
}

int csde_model_is_gaussian(const csde_model *M) { return M && M->tag == CSDE_MODEL_GAUSSIAN; }

int csde_model_gaussian_commutes(const csde_model *M)
{
  return csde_model_is_gaussian(M) && ((const gauss *)M->priv)->dense &&
         ((const gauss *)M->priv)->commute;
}

int csde_model_gaussian_marginal(const csde_model *M, double t, double *mean, double *cov,
                                 csde_err *err)
{
  gauss *g = gauss_of(M, "gaussian marginal", err);
  if (!g) return CSDE_EINVAL;
  int s = check_t(g, t, "gaussian marginal", "t", err);
  if (s) return s;
  if (cov && (s = dense_init(g, err))) return s;
  size_t bs = g->tau * g->D;
  double sa = csde_model_alpha(g->s, t);
  if (mean) /* sqrt(abar) m */
    for (size_t i = 0; i < bs; i++) mean[i] = g->m ? sa * g->m[i] : 0.0;
  if (cov) sigma_at(g, t, cov);
  return CSDE_SUCCESS;
}

/* out = V diag(lambda^p) V^T for symmetric S (eigh). Allocates. */
static int sym_pow(const double *S, size_t n, double p, double *out, const char *what,
                   double t, csde_err *err)
{
  int s = CSDE_SUCCESS;
  gsl_matrix *A = gsl_matrix_alloc(n, n), *V = gsl_matrix_alloc(n, n);
  gsl_vector *e = gsl_vector_alloc(n);
  gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(n);
  if (!A || !V || !e || !w) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory in the gaussian flow (tau = %zu)", n);
    goto done;
  }
  memcpy(A->data, S, n * n * sizeof(double));
  csde_gsl_quiet_begin();
  int es = gsl_eigen_symmv(A, e, V, w);
  csde_gsl_quiet_end();
  if (es) {
    s = csde_err_set(err, CSDE_EFAILED, "gaussian flow: eigensolver failed on %s at t = %g",
                     what, t);
    goto done;
  }
  for (size_t k = 0; k < n; k++) {
    double l = gsl_vector_get(e, k);
    if (!(l > 0)) {
      s = csde_err_set(err, CSDE_ESING,
                       "gaussian flow: %s is singular at t = %g (eigenvalue %.3g)", what, t, l);
      goto done;
    }
    gsl_vector_set(e, k, pow(l, p));
  }
  for (size_t i = 0; i < n; i++) /* out_ij = sum_k V_ik lambda_k^p V_jk */
    for (size_t j = 0; j <= i; j++) {
      double v = 0;
      for (size_t k = 0; k < n; k++)
        v += gsl_matrix_get(V, i, k) * gsl_vector_get(e, k) * gsl_matrix_get(V, j, k);
      out[i * n + j] = out[j * n + i] = v;
    }
done:
  gsl_matrix_free(A);
  gsl_matrix_free(V);
  gsl_vector_free(e);
  gsl_eigen_symmv_free(w);
  return s;
}

/* Phi = Sigma_t2^1/2 Sigma_t1^-1/2 (valid when S0 C = C S0). */
static int flow_closed(gauss *g, double t1, double t2, double *Phi, csde_err *err)
{
  size_t n = g->tau, nn = n * n;
  int s = CSDE_SUCCESS;
  double *S = malloc(3 * nn * sizeof *S), *P1 = S + nn, *P2 = S + 2 * nn;
  if (!S) return csde_err_set(err, CSDE_ENOMEM, "out of memory in the gaussian flow");
  sigma_at(g, t1, S);
  s = sym_pow(S, n, -0.5, P1, "Sigma_t1", t1, err);
  if (!s) {
    sigma_at(g, t2, S);
    s = sym_pow(S, n, 0.5, P2, "Sigma_t2", t2, err);
  }
  if (!s)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, P2,
                (int)n, P1, (int)n, 0.0, Phi, (int)n);
  free(S);
  return s;
}

/* dPhi/dt = -1/2 beta(t) (Phi - C Sigma_t^-1 Phi) on the row-major tau x tau Phi; on a
 * path dPhi/dt = f Phi + 1/2 g^2 C Sigma_t^-1 Phi (dz/dt = f z - 1/2 g^2 s_C, z = x -
 * alpha m, f alpha = alpha'). */
static int flow_rhs(double t, const double y[], double f[], void *params)
{
  gauss *g = params;
  size_t n = g->tau;
  if (c_sigma_inv(g, t, g->Mo)) {
    g->tfail = t;
    return GSL_EBADFUNC;
  }
  memcpy(f, y, n * n * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, -1.0, g->Mo,
              (int)n, y, (int)n, 1.0, f, (int)n); /* f = Phi - M Phi */
  if (!csde_schedule_is_vp(g->s)) { /* a path: f Phi + g^2/2 M Phi = (f + g^2/2) Phi - g^2/2 (Phi - M Phi) */
    const double fp = csde_schedule_path_f(g->s, t), h = 0.5 * csde_schedule_path_g2(g->s, t);
    for (size_t i = 0; i < n * n; i++) f[i] = (fp + h) * y[i] - h * f[i];
    return GSL_SUCCESS;
  }
  double c = -0.5 * csde_schedule_beta(g->s, t);
  for (size_t i = 0; i < n * n; i++) f[i] *= c;
  return GSL_SUCCESS;
}

static int flow_ode(gauss *g, double t1, double t2, double *Phi, csde_err *err)
{
  size_t n = g->tau;
  gsl_odeiv2_system sys = {flow_rhs, NULL, n * n, g};
  double h0 = copysign(1e-6, t2 - t1);
  gsl_odeiv2_driver *d =
      gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, h0, FLOW_TOL, FLOW_TOL);
  if (!d) return csde_err_set(err, CSDE_ENOMEM, "out of memory for the flow ODE driver");
  gsl_odeiv2_driver_set_nmax(d, FLOW_NMAX);
  for (size_t i = 0; i < n; i++) /* Phi(t1) = I */
    for (size_t j = 0; j < n; j++) Phi[i * n + j] = i == j;
  double t = t1;
  g->tfail = NAN;
  csde_gsl_quiet_begin();
  int gs = gsl_odeiv2_driver_apply(d, &t, t2, Phi);
  csde_gsl_quiet_end();
  gsl_odeiv2_driver_free(d);
  if (gs == GSL_EBADFUNC)
    return csde_err_set(err, CSDE_ESING,
                        "gaussian flow: Sigma_t is not positive definite at t = %.17g", g->tfail);
  if (gs)
    return csde_err_set(err, CSDE_EFAILED,
                        "gaussian flow: the propagator ODE from t = %g to %g stopped at t = %g "
                        "(GSL: %s)",
                        t1, t2, t, gsl_strerror(gs));
  return CSDE_SUCCESS;
}

int csde_model_gaussian_flow_route(const csde_model *M, double t1, double t2,
                                   csde_flow_route route, double *Phi, csde_err *err)
{
  gauss *g = gauss_of(M, "gaussian flow", err);
  if (!g) return CSDE_EINVAL;
  int s = check_t(g, t1, "gaussian flow", "t1", err);
  if (!s) s = check_t(g, t2, "gaussian flow", "t2", err);
  if (!s) s = dense_init(g, err);
  if (s) return s;
  size_t n = g->tau;
  if (t1 == t2) {
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < n; j++) Phi[i * n + j] = i == j;
    return CSDE_SUCCESS;
  }
  if (route == CSDE_FLOW_AUTO) route = g->commute ? CSDE_FLOW_CLOSED : CSDE_FLOW_ODE;
  if (route == CSDE_FLOW_CLOSED && !g->commute)
    return csde_err_set(err, CSDE_ENOTSUP,
                        "gaussian flow: no closed form, S0 and C do not commute; use the "
                        "ODE route");
  return route == CSDE_FLOW_CLOSED ? flow_closed(g, t1, t2, Phi, err)
                                   : flow_ode(g, t1, t2, Phi, err);
}

int csde_model_gaussian_flow(const csde_model *M, double t1, double t2, double *Phi,
                             csde_err *err)
{
  return csde_model_gaussian_flow_route(M, t1, t2, CSDE_FLOW_AUTO, Phi, err);
}

int csde_model_gaussian_flow_apply(const csde_model *M, double t1, double t2, size_t batch,
                                   const double *x1, double *x2, csde_err *err)
{
  gauss *g = gauss_of(M, "gaussian flow", err);
  if (!g) return CSDE_EINVAL;
  size_t n = g->tau, D = g->D, bs = n * D;
  int ds = dense_init(g, err);
  if (ds) return ds;
  double *Phi = malloc(n * n * sizeof *Phi);
  if (!Phi) return csde_err_set(err, CSDE_ENOMEM, "out of memory in the gaussian flow");
  int s = csde_model_gaussian_flow(M, t1, t2, Phi, err);
  if (s) {
    free(Phi);
    return s;
  }
  double sa1 = csde_model_alpha(g->s, t1), sa2 = csde_model_alpha(g->s, t2);
  for (size_t b = 0; b < batch; b++) {
    const double *xb = x1 + b * bs;
    double *yb = x2 + b * bs;
    for (size_t i = 0; i < bs; i++) /* z = x1 - sqrt(abar1) m */
      g->z[i] = g->m ? xb[i] - sa1 * g->m[i] : xb[i];
    for (size_t i = 0; i < bs; i++) yb[i] = g->m ? sa2 * g->m[i] : 0.0;
    /* x2 = sqrt(abar2) m + Phi z */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)n, 1.0, Phi,
                (int)n, g->z, (int)D, 1.0, yb, (int)D);
  }
  free(Phi);
  return CSDE_SUCCESS;
}

/* F with F F^T = Sigma_t into g->L: Cholesky, or V sqrt(max(lambda, 0)) when Sigma_t is
 * only semi-definite (t = 0 with a singular S0). */
static int sigma_factor(gauss *g, double t, csde_err *err)
{
  size_t n = g->tau;
  sigma_at(g, t, g->L);
  if (!csde_mat_chol(g->L, n)) return CSDE_SUCCESS;
  sigma_at(g, t, g->W);
  int s = CSDE_SUCCESS;
  gsl_matrix_view A = gsl_matrix_view_array(g->W, n, n);
  gsl_matrix *V = gsl_matrix_alloc(n, n);
  gsl_vector *e = gsl_vector_alloc(n);
  gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(n);
  if (!V || !e || !w) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory sampling the gaussian model");
    goto done;
  }
  csde_gsl_quiet_begin();
  int es = gsl_eigen_symmv(&A.matrix, e, V, w);
  csde_gsl_quiet_end();
  if (es) {
    s = csde_err_set(err, CSDE_EFAILED, "gaussian sample: eigensolver failed at t = %g", t);
    goto done;
  }
  for (size_t i = 0; i < n; i++) /* F = V sqrt(max(lambda, 0)) */
    for (size_t k = 0; k < n; k++)
      g->L[i * n + k] = gsl_matrix_get(V, i, k) * sqrt(fmax(gsl_vector_get(e, k), 0.0));
done:
  gsl_matrix_free(V);
  gsl_vector_free(e);
  gsl_eigen_symmv_free(w);
  return s;
}

int csde_model_gaussian_sample(const csde_model *M, double t, csde_rng_key key,
                               size_t first, size_t batch, double *x, csde_err *err)
{
  gauss *g = gauss_of(M, "gaussian sample", err);
  if (!g) return CSDE_EINVAL;
  int s = check_t(g, t, "gaussian sample", "t", err);
  if (s) return s;
  size_t n = g->tau, D = g->D, bs = n * D;
  double sa = csde_model_alpha(g->s, t);
  if (g->S0op && csde_one_minus_abar(g->s, t) == 0) {
    /* Sigma_t = abar S0 = abar s0var S0op: x = sqrt(abar) m + sqrt(abar s0var) V' z through
     * the operator (csde_cov_sample's noise layout), nothing tau x tau */
    csde_cov_ws *ws = NULL;
    s = csde_cov_ws_alloc(&ws, g->S0op, D, g->threads, err);
    if (!s) s = csde_cov_sample(g->S0op, ws, key, first, batch, x, err);
    csde_cov_ws_free(ws);
    if (s) return s;
    double sc = sa * sqrt(g->s0var);
    for (size_t b = 0; b < batch; b++)
      for (size_t i = 0; i < bs; i++)
        x[b * bs + i] = (g->m ? sa * g->m[i] : 0.0) + sc * x[b * bs + i];
    return CSDE_SUCCESS;
  }
  if ((s = dense_init(g, err)) || (s = sigma_factor(g, t, err))) return s;
  for (size_t b = 0; b < batch; b++) {
    double *xb = x + b * bs;
    /* xi[(sample tau + row) D + pixel] = normal(key, that index), sample = first + b */
    csde_rng_normal(key, (uint64_t)(first + b) * (uint64_t)bs, bs, g->z);
    for (size_t i = 0; i < bs; i++) xb[i] = g->m ? sa * g->m[i] : 0.0;
    /* x = sqrt(abar) m + L xi */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)n, 1.0, g->L,
                (int)n, g->z, (int)D, 1.0, xb, (int)D);
  }
  return CSDE_SUCCESS;
}

int csde_model_gaussian_load(csde_model **out, const char *path, const csde_cov *C,
                             const csde_schedule *s, size_t D, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "gaussian model: output pointer is NULL");
  *out = NULL;
  if (!path || !C)
    return csde_err_set(err, CSDE_EINVAL, "gaussian model: %s is NULL", !path ? "path" : "C");
  size_t tau = csde_cov_tau(C), dims[4] = {0, 0, 0, 0};
  if (tau > CSDE_MODEL_DENSE_MAX_TAU) /* before reading a [tau, tau] /frame_cov */
    return dense_refuse(tau, "a dense S0 (/frame_cov)", err);
  double *S0 = NULL, *mean = NULL;
  int rank = 0;
  char got[96];
  int st = csde_h5_read(path, "/frame_cov", &S0, &rank, dims, err);
  if (st) return st;
  if (rank != 2 || dims[0] != tau || dims[1] != tau) {
    csde_shape_str(dims, rank, got, sizeof got);
    st = csde_err_set(err, CSDE_EBADLEN,
                      "'%s': /frame_cov has shape %s; expected [%zu, %zu] (tau = %zu frames)",
                      path, got, tau, tau, tau);
    goto done;
  }
  size_t mean_len = 0;
  if (csde_h5_has(path, "/mean")) {
    if ((st = csde_h5_read(path, "/mean", &mean, &rank, dims, err))) goto done;
    if (rank == 0)
      mean_len = 1;
    else if (rank == 1 && dims[0] == tau)
      mean_len = tau;
    else if (rank == 2 && dims[0] == tau && dims[1] == D)
      mean_len = tau * D;
    else {
      csde_shape_str(dims, rank, got, sizeof got);
      st = csde_err_set(err, CSDE_EBADLEN,
                        "'%s': /mean has shape %s; expected a scalar, [%zu] or [%zu, %zu] "
                        "(tau = %zu frames, D = %zu pixels)",
                        path, got, tau, tau, D, tau, D);
      goto done;
    }
  }
  st = csde_model_gaussian_alloc(out, C, s, D, mean, mean_len, S0, err);
  if (st) { /* say which file the bad numbers came from */
    csde_err e = {.status = st};
    if (err) e = *err;
    csde_err_set(err, st, "'%s': %s", path, e.msg);
  }
done:
  free(S0);
  free(mean);
  return st;
}
