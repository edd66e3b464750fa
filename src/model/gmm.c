/* The built-in gmm model: X_0 ~ sum_k w_k N(m_k, S_k (x) I_D) (MATH.md, "Exact test
 * problems"): an exact but nonlinear score.
 *
 *   p_t = sum_k w_k N_k,   N_k = N(sqrt(abar) m_k, Sigma_k,t (x) I_D),
 *   Sigma_k,t = abar S_k + (1 - abar) C
 * (on a Gaussian path, issue 28: alpha^2 and sigma^2 for abar and 1 - abar, alpha for
 * sqrt(abar); model_internal.h)
 *   grad log p_t(x) = -sum_k r_k(x) Sigma_k,t^-1 (x - sqrt(abar) m_k),
 *   r_k = w_k N_k(x) / p_t(x)   (per sample: N_k is the density of the whole tau x D block)
 *   log N_k(x) = -1/2 (|L_k^-1 z_k|^2 + D log det Sigma_k,t + tau D log 2 pi),
 *   z_k = x - sqrt(abar) m_k,  Sigma_k,t = L_k L_k^T
 * The responsibilities use log-sum-exp. The callback returns C grad log p_t (kind CSCORE),
 * applying the dense C with one GEMM per block. The K Cholesky factors are formed once per
 * call time (cached while t repeats) into scratch sized at alloc, so the callback never
 * allocates; as for the gaussian model ONE MODEL OBJECT MUST NOT BE EVALUATED FROM TWO
 * THREADS AT ONCE (its callback and csde_model_gmm_logpdf share that scratch).
 *
 * Refused above CSDE_MODEL_DENSE_MAX_TAU frames (CSDE_ENOMEM, with the memory it would
 * take): the components' covariances are dense by nature.
 *
 * Weights need only be positive and finite: they are normalised to sum to 1, divided by
 * the largest first, so that weights near DBL_MAX (e.g. [1e308, 1e308]) cannot overflow.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_matrix.h>

#include "core/linalg.h"
#include "core/util.h"
#include "io/h5read.h"
#include "model/model_internal.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

typedef struct {
  size_t tau, D, K;
  const csde_schedule *s; /* borrowed */
  double *logw;           /* K: log of the normalised weights */
  double *m;              /* K x tau x D */
  double *S;              /* K x tau x tau */
  double *Cm;             /* the dense C */
  /* scratch, sized at alloc */
  double *L;              /* K x tau x tau: Cholesky factors of Sigma_k,t at t = tL */
  double *ldet;           /* K: log det Sigma_k,t */
  double tL;              /* NaN: L not valid */
  size_t kfail;           /* the component whose Sigma_k,t last failed to factor */
  double *lr;             /* K: log w_k + log N_k of the current block */
  double *z, *g;          /* tau x D */
  /* the data law's sampler (csde_model_gmm_sample) */
  double *cum;            /* K cumulative weights, cum[K-1] = 1 */
  double *fac;            /* K factors tau x tau, F F^T = S_k; NULL until the first draw */
  /* the exact divergence's scratch (csde_model_gmm_cdiv_prepare; NULL until then) */
  double *sk;             /* K x tau x D: Sigma_k,t^-1 z_k, then s - s_k, of one block */
  double *cu;             /* tau x D: (C (x) I_D)(s_k - s) */
  double *trk;            /* K: tr(C Sigma_k,t^-1) at t = tT */
  double *W;              /* tau x tau: Sigma_k,t^-1 C */
  double tT;              /* NaN: trk not valid */
} gmm;

static void gmm_free(void *p)
{
  gmm *G = p;
  if (!G) return;
  csde_free(G->logw);
  csde_free(G->m);
  csde_free(G->S);
  csde_free(G->Cm);
  csde_free(G->L);
  csde_free(G->ldet);
  csde_free(G->lr);
  csde_free(G->z);
  csde_free(G->g);
  csde_free(G->cum);
  csde_free(G->fac);
  csde_free(G->sk);
  csde_free(G->cu);
  csde_free(G->trk);
  csde_free(G->W);
  free(G);
}

/* L_k = chol(abar S_k + (1 - abar) C) and their log dets; 0 or CSDE_ESING (kfail set). */
static int prepare(gmm *G, double t)
{
  if (t == G->tL) return 0;
  size_t n = G->tau, nn = n * n;
  double a = csde_model_alpha2(G->s, t), om = csde_one_minus_abar(G->s, t);
  G->tL = NAN;
  for (size_t k = 0; k < G->K; k++) {
    double *Lk = G->L + k * nn;
    const double *Sk = G->S + k * nn;
    for (size_t i = 0; i < nn; i++) Lk[i] = a * Sk[i] + om * G->Cm[i];
    if (csde_mat_chol(Lk, n)) {
      G->kfail = k;
      return CSDE_ESING;
    }
    G->ldet[k] = csde_mat_chol_logdet(Lk, n);
  }
  G->tL = t;
  return 0;
}

/* lr_k = log w_k + log N_k(xb) for every k; returns log p_t(xb) = logsumexp_k lr_k. */
static double block_terms(gmm *G, const double *xb, double sa)
{
  size_t n = G->tau, D = G->D, bs = n * D;
  double c = (double)bs * log(2 * M_PI), lmax = -INFINITY;
  for (size_t k = 0; k < G->K; k++) {
    const double *mk = G->m + k * bs;
    for (size_t i = 0; i < bs; i++) G->z[i] = xb[i] - sa * mk[i]; /* z_k */
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)n,
                (int)D, 1.0, G->L + k * n * n, (int)n, G->z, (int)D); /* L_k^-1 z_k */
    double q = 0;
    for (size_t i = 0; i < bs; i++) q += G->z[i] * G->z[i];
    G->lr[k] = G->logw[k] - 0.5 * (q + (double)D * G->ldet[k] + c);
    lmax = fmax(lmax, G->lr[k]);
  }
  double sum = 0; /* log sum_k e^lr_k = lmax + log sum_k e^(lr_k - lmax) */
  for (size_t k = 0; k < G->K; k++) sum += exp(G->lr[k] - lmax);
  return lmax + log(sum);
}

/* dst = Sigma_k,t^-1 z_k, z_k = xb - sqrt(abar) m_k (= -s_k, the component's score). */
static void comp_solve(const gmm *G, size_t k, const double *xb, double sa, double *dst)
{
  size_t n = G->tau, D = G->D, bs = n * D;
  const double *mk = G->m + k * bs;
  for (size_t i = 0; i < bs; i++) dst[i] = xb[i] - sa * mk[i];
  csde_mat_chol_solve(G->L + k * n * n, n, D, dst, D);
}

/* out = C grad log p_t = -C sum_k r_k Sigma_k,t^-1 z_k, per block. */
static int gmm_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  gmm *G = user;
  size_t n = G->tau, D = G->D, bs = n * D;
  if (prepare(G, t)) return -1; /* a Sigma_k,t is singular: no score */
  double sa = csde_model_alpha(G->s, t);
  for (size_t b = 0; b < batch; b++) {
    const double *xb = x + b * bs;
    double lse = block_terms(G, xb, sa);
    memset(G->g, 0, bs * sizeof(double));
    for (size_t k = 0; k < G->K; k++) {
      double r = exp(G->lr[k] - lse); /* responsibility r_k */
      if (r == 0) continue;            /* underflow: contributes exactly 0 */
      comp_solve(G, k, xb, sa, G->z);  /* Sigma_k,t^-1 z_k */
      for (size_t i = 0; i < bs; i++) G->g[i] -= r * G->z[i];
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)n, 1.0, G->Cm,
                (int)n, G->g, (int)D, 0.0, out + b * bs, (int)D);
  }
  return 0;
}

int csde_model_gmm_alloc(csde_model **out, const csde_cov *C, const csde_schedule *s,
                         size_t D, size_t K, const double *weights, const double *means,
                         size_t means_len, const double *covs, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "gmm model: output pointer is NULL");
  *out = NULL;
  if (!C || !s)
    return csde_err_set(err, CSDE_EINVAL, "gmm model: %s is NULL", !C ? "covariance" : "schedule");
  if (!weights || !means || !covs)
    return csde_err_set(err, CSDE_EINVAL, "gmm model: %s is NULL",
                        !weights ? "weights" : !means ? "means" : "covs");
  if (D == 0) return csde_err_set(err, CSDE_EINVAL, "gmm model: D = 0 pixels per frame");
  if (K == 0) return csde_err_set(err, CSDE_EINVAL, "gmm model: K = 0 components");
  size_t tau = csde_cov_tau(C), bs, kbs, nn = tau * tau, knn;
  if (tau > CSDE_MODEL_DENSE_MAX_TAU) /* S_k, L_k (K each) and C, all tau x tau */
    return csde_err_set(err, CSDE_ENOMEM,
                        "gmm model: the score needs dense tau x tau factors: tau = %zu needs "
                        "%.3g GB (2 K + 1 = %zu matrices of %zu x %zu doubles); the limit is "
                        "%d frames",
                        tau, (double)(2 * K + 1) * 8.0 * (double)tau * (double)tau / 1e9,
                        2 * K + 1, tau, tau, CSDE_MODEL_DENSE_MAX_TAU);
  if (csde_mul_size(tau, D, &bs) || csde_mul_size(K, bs, &kbs) || csde_mul_size(K, nn, &knn))
    return csde_err_set(err, CSDE_EINVAL, "gmm model: K x tau x D = %zu x %zu x %zu overflows",
                        K, tau, D);
  if (means_len != kbs && means_len != K * tau)
    return csde_err_set(err, CSDE_EBADLEN,
                        "gmm model: means has %zu values; expected K * tau * D = %zu or "
                        "K * tau = %zu (K = %zu, tau = %zu, D = %zu)",
                        means_len, kbs, K * tau, K, tau, D);
  double wmax = 0, wsum = 0;
  for (size_t k = 0; k < K; k++) {
    if (!(weights[k] > 0) || !isfinite(weights[k]))
      return csde_err_set(err, CSDE_EDOM,
                          "gmm model: weight %zu is %g; weights must be positive and finite",
                          k, weights[k]);
    wmax = fmax(wmax, weights[k]);
  }
  /* sum_k w_k / wmax lies in [1, K]: no overflow even for weights near DBL_MAX */
  for (size_t k = 0; k < K; k++) wsum += weights[k] / wmax;
  for (size_t i = 0; i < means_len; i++)
    if (!isfinite(means[i]))
      return csde_err_set(err, CSDE_ENAN, "gmm model: means[%zu] = %g is not finite", i,
                          means[i]);
  int st = CSDE_SUCCESS;
  gmm *G = calloc(1, sizeof *G);
  if (!G) return csde_err_set(err, CSDE_ENOMEM, "out of memory for the gmm model");
  G->tau = tau;
  G->D = D;
  G->K = K;
  G->s = s;
  G->tL = NAN;
  G->logw = csde_alloc(K, sizeof(double));
  G->m = csde_alloc(kbs, sizeof(double));
  G->S = csde_alloc(knn, sizeof(double));
  G->Cm = csde_alloc(nn, sizeof(double));
  G->L = csde_alloc(knn, sizeof(double));
  G->ldet = csde_alloc(K, sizeof(double));
  G->lr = csde_alloc(K, sizeof(double));
  G->z = csde_alloc(bs, sizeof(double));
  G->g = csde_alloc(bs, sizeof(double));
  G->cum = csde_alloc(K, sizeof(double));
  if (!G->logw || !G->m || !G->S || !G->Cm || !G->L || !G->ldet || !G->lr || !G->z || !G->g ||
      !G->cum) {
    st = csde_err_set(err, CSDE_ENOMEM,
                      "out of memory for the gmm model (K = %zu, tau = %zu, D = %zu)", K, tau, D);
    goto fail;
  }
  for (size_t k = 0; k < K; k++) /* log(w_k / sum w) = log(w_k / wmax) - log(sum w / wmax) */
    G->logw[k] = log(weights[k] / wmax) - log(wsum);
  double acc = 0; /* cum_k = sum_{j<=k} (w_j / wmax) / sum_j (w_j / wmax) */
  for (size_t k = 0; k < K; k++) {
    acc += weights[k] / wmax;
    G->cum[k] = acc / wsum;
  }
  G->cum[K - 1] = 1.0;
  for (size_t k = 0; k < K; k++) /* m_k as tau x D (broadcast a [K, tau] mean) */
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++)
        G->m[k * bs + i * D + p] =
            means_len == kbs ? means[k * bs + i * D + p] : means[k * tau + i];
  memcpy(G->S, covs, knn * sizeof(double));
  csde_cov_matrix(C, G->Cm);
  for (size_t k = 0; k < K; k++) {
    char what[64];
    snprintf(what, sizeof what, "gmm model: covariance of component %zu", k);
    if ((st = csde_mat_check_cov(G->S + k * nn, tau, what, err))) goto fail;
    double *Lk = G->L + k * nn; /* S_k + C PD, else Sigma_k,t is singular at every t */
    for (size_t i = 0; i < nn; i++) Lk[i] = G->S[k * nn + i] + G->Cm[i];
    size_t piv = csde_mat_chol(Lk, tau);
    if (piv) {
      st = csde_err_set(err, CSDE_ESING,
                        "gmm model: S_%zu + C is singular (Cholesky pivot %zu), so component "
                        "%zu's Sigma_t is singular at every t",
                        k, piv - 1, k);
      goto fail;
    }
  }
  return csde_model_wrap(out, "gmm", gmm_fn, CSDE_OUT_CSCORE, G, gmm_free, CSDE_MODEL_GMM, tau,
                         D, err);
fail:
  gmm_free(G);
  return st;
}

int csde_model_is_gmm(const csde_model *M) { return M && M->tag == CSDE_MODEL_GMM; }

/* ---- the exact divergence of C grad log p_t ----
 * With s_k = -(Sigma_k,t^-1 (x) I_D) z_k, s = grad log p_t = sum_k r_k s_k and
 * grad r_k = r_k (s_k - s) (from r_k = w_k N_k / p_t):
 *   grad^2 log p_t = sum_k r_k (-Sigma_k,t^-1 (x) I_D) + sum_k r_k (s_k - s) s_k^T
 *                  = sum_k r_k (-Sigma_k,t^-1 (x) I_D) + sum_k r_k (s_k - s)(s_k - s)^T
 * (sum_k r_k (s_k - s) = 0), so
 *   tr(C grad^2 log p_t) = -D sum_k r_k tr(C Sigma_k,t^-1)
 *                          + sum_k r_k (s_k - s)^T (C (x) I_D) (s_k - s).
 * Per block: the K solves of the callback, then one tau x tau x D GEMM per component
 * (O(K tau^2 D)); tr(C Sigma_k,t^-1) is formed once per t (O(K tau^3)). The differences
 * s_k - s are kept (not the expanded sum_k r_k s_k^T C s_k - s^T C s, which cancels). */
int csde_model_gmm_cdiv_prepare(csde_model *M, csde_err *err)
{
  gmm *G = M->priv;
  if (G->sk) return CSDE_SUCCESS;
  size_t bs = G->tau * G->D;
  G->sk = csde_alloc(G->K * bs, sizeof(double));
  G->cu = csde_alloc(bs, sizeof(double));
  G->trk = csde_alloc(G->K, sizeof(double));
  G->W = csde_alloc(G->tau * G->tau, sizeof(double));
  G->tT = NAN;
  if (!G->sk || !G->cu || !G->trk || !G->W) {
    csde_free(G->sk);
    csde_free(G->cu);
    csde_free(G->trk);
    csde_free(G->W);
    G->sk = G->cu = G->trk = G->W = NULL;
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the gmm model's divergence "
                        "(K = %zu, tau = %zu, D = %zu)", G->K, G->tau, G->D);
  }
  return CSDE_SUCCESS;
}

int csde_model_gmm_cdiv(const csde_model *M, double t, size_t batch, const double *x,
                        double *tr, csde_err *err)
{
  gmm *G = M->priv;
  size_t n = G->tau, D = G->D, bs = n * D, nn = n * n;
  int st = csde_model_check_t(G->s, t, "exact divergence", "t", err);
  if (st) return st;
  if (!G->sk)
    return csde_err_set(err, CSDE_EINVAL, "exact divergence: the gmm model's scratch is not "
                        "made: call csde_model_exact_cdiv_prepare first");
  if (prepare(G, t))
    return csde_err_set(err, CSDE_ESING, "exact divergence: Sigma_t of gmm component %zu is "
                        "not positive definite at t = %.17g", G->kfail, t);
  if (!(t == G->tT)) { /* trk_k = tr(Sigma_k,t^-1 C) = tr(C Sigma_k,t^-1) */
    for (size_t k = 0; k < G->K; k++) {
      memcpy(G->W, G->Cm, nn * sizeof(double));
      csde_mat_chol_solve(G->L + k * nn, n, n, G->W, n);
      double v = 0;
      for (size_t i = 0; i < n; i++) v += G->W[i * n + i];
      G->trk[k] = v;
    }
    G->tT = t;
  }
  double sa = csde_model_alpha(G->s, t);
  for (size_t b = 0; b < batch; b++) {
    const double *xb = x + b * bs;
    double lse = block_terms(G, xb, sa), lin = 0, quad = 0;
    memset(G->g, 0, bs * sizeof(double)); /* s = -sum_k r_k Sigma_k,t^-1 z_k */
    for (size_t k = 0; k < G->K; k++) {
      double r = exp(G->lr[k] - lse);
      if (r == 0) continue;
      double *sk = G->sk + k * bs;
      comp_solve(G, k, xb, sa, sk); /* -s_k */
      for (size_t i = 0; i < bs; i++) G->g[i] -= r * sk[i];
      lin += r * G->trk[k];
    }
    for (size_t k = 0; k < G->K; k++) {
      double r = exp(G->lr[k] - lse);
      if (r == 0) continue;
      double *u = G->sk + k * bs, q = 0;
      for (size_t i = 0; i < bs; i++) u[i] += G->g[i]; /* s - s_k */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)n, 1.0,
                  G->Cm, (int)n, u, (int)D, 0.0, G->cu, (int)D);
      for (size_t i = 0; i < bs; i++) q += u[i] * G->cu[i];
      quad += r * q;
    }
    tr[b] = -(double)D * lin + quad;
  }
  return CSDE_SUCCESS;
}

int csde_model_gmm_logpdf(const csde_model *M, double t, size_t batch, const double *x,
                          double *logp, csde_err *err)
{
  if (!csde_model_is_gmm(M))
    return csde_err_set(err, CSDE_EINVAL, "gmm logpdf: model '%s' is not the built-in gmm model",
                        M ? M->name : "(null)");
  gmm *G = M->priv;
  int ts = csde_model_check_t(G->s, t, "gmm logpdf", "t", err);
  if (ts) return ts;
  if (prepare(G, t))
    return csde_err_set(err, CSDE_ESING,
                        "gmm logpdf: Sigma_t of component %zu is not positive definite at "
                        "t = %g",
                        G->kfail, t);
  size_t bs = G->tau * G->D;
  double sa = csde_model_alpha(G->s, t);
  for (size_t b = 0; b < batch; b++) logp[b] = block_terms(G, x + b * bs, sa);
  return CSDE_SUCCESS;
}

/* The factors F_k = V sqrt(max(lambda, 0)) of S_k = V diag(lambda) V^T (GSL's symmetric
 * eigensolver), made on the first draw. */
static int gmm_factors(gmm *G, csde_err *err)
{
  size_t tau = G->tau, nn = tau * tau;
  int s = CSDE_SUCCESS;
  double *fac = csde_alloc(G->K * nn, sizeof(double));
  gsl_matrix *A = gsl_matrix_alloc(tau, tau), *V = gsl_matrix_alloc(tau, tau);
  gsl_vector *e = gsl_vector_alloc(tau);
  gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(tau);
  if (!fac || !A || !V || !e || !ws) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory for the gmm sampler");
    goto done;
  }
  for (size_t k = 0; k < G->K; k++) {
    memcpy(A->data, G->S + k * nn, nn * sizeof(double));
    csde_gsl_quiet_begin();
    int es = gsl_eigen_symmv(A, e, V, ws);
    csde_gsl_quiet_end();
    if (es) {
      s = csde_err_set(err, CSDE_EFAILED, "gmm model: eigensolver failed on component %zu's "
                       "covariance", k);
      goto done;
    }
    double *F = fac + k * nn;
    for (size_t i = 0; i < tau; i++)
      for (size_t j = 0; j < tau; j++)
        F[i * tau + j] = gsl_matrix_get(V, i, j) * sqrt(fmax(gsl_vector_get(e, j), 0.0));
  }
  G->fac = fac;
  fac = NULL;
done:
  csde_free(fac);
  gsl_matrix_free(A);
  gsl_matrix_free(V);
  gsl_vector_free(e);
  gsl_eigen_symmv_free(ws);
  return s;
}

int csde_model_gmm_law(const csde_model *M, size_t *K, const double **cum,
                       const double **means, const double **fac, csde_err *err)
{
  if (!csde_model_is_gmm(M))
    return csde_err_set(err, CSDE_EINVAL, "gmm law: model '%s' is not the built-in gmm model",
                        M ? M->name : "(null)");
  gmm *G = M->priv;
  int s;
  if (!G->fac && (s = gmm_factors(G, err))) return s;
  if (K) *K = G->K;
  if (cum) *cum = G->cum;
  if (means) *means = G->m;
  if (fac) *fac = G->fac;
  return CSDE_SUCCESS;
}

int csde_model_gmm_sample(const csde_model *M, csde_rng_key key, size_t first, size_t batch,
                          double *x, csde_err *err)
{
  if (!csde_model_is_gmm(M))
    return csde_err_set(err, CSDE_EINVAL, "gmm sample: model '%s' is not the built-in gmm model",
                        M ? M->name : "(null)");
  if (batch && !x) return csde_err_set(err, CSDE_EINVAL, "gmm sample: x is NULL");
  gmm *G = M->priv;
  size_t tau = G->tau, D = G->D, n = tau * D;
  int s;
  if (!G->fac && (s = gmm_factors(G, err))) return s;
  double *z = malloc(n * sizeof *z);
  if (!z) return csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", n);
  for (size_t b = 0; b < batch; b++) {
    uint64_t j = (uint64_t)(first + b);
    double u;
    csde_rng_uniform(key, j, 1, &u); /* component: the first k with u < cum[k] */
    size_t k = 0;
    while (k + 1 < G->K && !(u < G->cum[k])) k++;
    csde_rng_normal(key, j * n, n, z); /* index (j tau + row) D + pixel */
    const double *F = G->fac + k * tau * tau, *mu = G->m + k * n;
    double *xb = x + b * n;
    for (size_t r = 0; r < tau; r++) /* x = m_k + F_k z along the frame axis */
      for (size_t p = 0; p < D; p++) {
        double v = mu[r * D + p];
        for (size_t c = 0; c < tau; c++) v += F[r * tau + c] * z[c * D + p];
        xb[r * D + p] = v;
      }
  }
  free(z);
  return CSDE_SUCCESS;
}

int csde_model_gmm_load(csde_model **out, const char *path, const csde_cov *C,
                        const csde_schedule *s, size_t D, csde_err *err)
{
  if (!out) return csde_err_set(err, CSDE_EINVAL, "gmm model: output pointer is NULL");
  *out = NULL;
  if (!path || !C)
    return csde_err_set(err, CSDE_EINVAL, "gmm model: %s is NULL", !path ? "path" : "C");
  size_t tau = csde_cov_tau(C), dims[4] = {0, 0, 0, 0}, K, means_len;
  if (tau > CSDE_MODEL_DENSE_MAX_TAU) /* before reading [K, tau, tau] covariances */
    return csde_err_set(err, CSDE_ENOMEM,
                        "gmm model: the score needs dense tau x tau factors: tau = %zu needs "
                        "%.3g GB per component (%zu x %zu doubles, twice); the limit is %d "
                        "frames",
                        tau, 16.0 * (double)tau * (double)tau / 1e9, tau, tau,
                        CSDE_MODEL_DENSE_MAX_TAU);
  double *w = NULL, *means = NULL, *covs = NULL;
  int rank = 0;
  char got[96];
  int st = csde_h5_read(path, "/weights", &w, &rank, dims, err);
  if (st) return st;
  if (rank != 1 || dims[0] == 0) {
    csde_shape_str(dims, rank, got, sizeof got);
    st = csde_err_set(err, CSDE_EBADLEN, "'%s': /weights has shape %s; expected [K], K >= 1",
                      path, got);
    goto done;
  }
  K = dims[0];
  if ((st = csde_h5_read(path, "/means", &means, &rank, dims, err))) goto done;
  if (rank == 3 && dims[0] == K && dims[1] == tau && dims[2] == D)
    means_len = K * tau * D;
  else if (rank == 2 && dims[0] == K && dims[1] == tau)
    means_len = K * tau;
  else {
    csde_shape_str(dims, rank, got, sizeof got);
    st = csde_err_set(err, CSDE_EBADLEN,
                      "'%s': /means has shape %s; expected [%zu, %zu, %zu] or [%zu, %zu] "
                      "(K = %zu components, tau = %zu frames, D = %zu pixels)",
                      path, got, K, tau, D, K, tau, K, tau, D);
    goto done;
  }
  if ((st = csde_h5_read(path, "/frame_covs", &covs, &rank, dims, err))) goto done;
  if (rank != 3 || dims[0] != K || dims[1] != tau || dims[2] != tau) {
    csde_shape_str(dims, rank, got, sizeof got);
    st = csde_err_set(err, CSDE_EBADLEN,
                      "'%s': /frame_covs has shape %s; expected [%zu, %zu, %zu] (K = %zu "
                      "components, tau = %zu frames)",
                      path, got, K, tau, tau, K, tau);
    goto done;
  }
  st = csde_model_gmm_alloc(out, C, s, D, K, w, means, means_len, covs, err);
  if (st) { /* say which file the bad numbers came from */
    csde_err e = {.status = st};
    if (err) e = *err;
    csde_err_set(err, st, "'%s': %s", path, e.msg);
  }
done:
  free(w);
  free(means);
  free(covs);
  return st;
}
