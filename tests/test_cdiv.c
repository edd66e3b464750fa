/* Tests for csde_model_exact_cdiv (model_internal.h): the exact divergence
 * tr(C grad^2 log p_t(x)) = div_x (C grad log p_t)(x) of the built-in models' score, which
 * the PF-ODE likelihood integrates (issue 27, item 1).
 *
 * References, computed here independently of src/model:
 *   gaussian  -D tr(C Sigma_t^-1), Sigma_t from csde_model_gaussian_marginal, inverted
 *             with GSL's LU, C written out from its definition C_ij = rho^|i-j|;
 *   both      the central difference of the model's own callback (kind CSCORE, it returns
 *             f = C grad log p_t): sum_i (f(x + h e_i) - f(x - h e_i))_i / (2h) over all
 *             tau D unit vectors;
 *   gmm       the first term alone, -D sum_k r_k tr(C Sigma_k,t^-1), with r_k from GSL
 *             Cholesky densities, to show that the second term is what makes the finite
 *             difference agree.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_permutation.h>

#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/schedule.h"
#include "model/model_internal.h"
#include "tap.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define RHO 0.9 /* C = ar1(RHO) */
#define BMIN 0.1
#define BMAX 20.0
#define TAU 5 /* odd on purpose */
#define D 3
#define BS (TAU * D)
#define K 3
/* The finite-difference step and tolerance. f = C grad log p_t is smooth; the central
 * difference errs by (h^2 / 6) f''' per term (truncation; 0 for the affine gaussian score)
 * plus about eps |f| / h per term (rounding, tau D terms: ~1e-11 relative here). Measured
 * for the gmm below: 2.3e-8, 5.8e-9, 1.4e-9 relative at h = 2e-4, 1e-4, 5e-5 (a factor 4
 * per halving: truncation, about 0.6 h^2); the gaussian: 2e-13 at 1e-4, 2e-11 at 1e-6
 * (rounding, ~ 1/h). So with h = 1e-4 the tolerance is 10 h^2 = 1e-7 relative. */
#define FD_H 1e-4
#define FD_TOL (10 * FD_H * FD_H)

#define WHY(st, err) ((st) ? ": " : ""), ((st) ? (err).msg : "")

static double ref_abar(double t) { return exp(-(BMIN * t + 0.5 * (BMAX - BMIN) * t * t)); }
static double ref_om(double t) { return -expm1(-(BMIN * t + 0.5 * (BMAX - BMIN) * t * t)); }

/* M_ij = scale rho^|i-j| */
static void ar1_mat(double *M, size_t n, double scale, double rho)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) M[i * n + j] = scale * pow(rho, fabs((double)i - (double)j));
}

static void fill(double *x, size_t n, double seed)
{
  for (size_t i = 0; i < n; i++)
    x[i] = sin(1.37 * (double)i + seed) + 0.5 * cos(0.11 * (double)i * seed + 1);
}

/* tr(A B^-1) for n x n A, B (GSL LU: not the Cholesky the model uses). */
static double tr_a_binv(const double *A, const double *B, size_t n)
{
  gsl_matrix *Bm = gsl_matrix_alloc(n, n), *Bi = gsl_matrix_alloc(n, n);
  gsl_permutation *p = gsl_permutation_alloc(n);
  int sg;
  memcpy(Bm->data, B, n * n * sizeof(double));
  gsl_linalg_LU_decomp(Bm, p, &sg);
  gsl_linalg_LU_invert(Bm, p, Bi);
  double v = 0; /* sum_ij A_ij (B^-1)_ji */
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) v += A[i * n + j] * gsl_matrix_get(Bi, j, i);
  gsl_matrix_free(Bm);
  gsl_matrix_free(Bi);
  gsl_permutation_free(p);
  return v;
}

/* sum_i (f(x + h e_i) - f(x - h e_i))_i / (2h), f the model's callback (one sample). */
static double fd_div(const csde_model *M, double t, const double *x, int *st)
{
  double xp[BS], fp[BS], fm[BS], v = 0;
  for (size_t i = 0; i < BS; i++) {
    memcpy(xp, x, sizeof xp);
    xp[i] = x[i] + FD_H;
    *st |= csde_model_call(M, t, 1, xp, fp);
    xp[i] = x[i] - FD_H;
    *st |= csde_model_call(M, t, 1, xp, fm);
    v += (fp[i] - fm[i]) / (2 * FD_H);
  }
  return v;
}

/* ---- gaussian ---- */

static void test_gaussian(const csde_schedule *s, csde_cov_method method, const char *mname)
{
  double S0[TAU * TAU], Cm[TAU * TAU], Sig[TAU * TAU], mean[TAU];
  ar1_mat(S0, TAU, 0.25, 0.95); /* S0 = 0.25 ar1(0.95) + diag(0.01 (i + 1)): not Toeplitz */
  for (size_t i = 0; i < TAU; i++) S0[i * TAU + i] += 0.01 * (double)(i + 1);
  ar1_mat(Cm, TAU, 1.0, RHO);
  fill(mean, TAU, 0.3);
  csde_cov_params par = csde_cov_default_params();
  par.method = method;
  char spec[64];
  snprintf(spec, sizeof spec, "ar1:rho=%g", RHO);
  csde_cov *C = NULL;
  csde_model *M = NULL;
  csde_err err = {0};
  int st = csde_cov_alloc(&C, spec, TAU, &par, &err);
  if (!st) st = csde_model_gaussian_alloc(&M, C, s, D, mean, TAU, S0, &err);
  if (!st) st = csde_model_exact_cdiv_prepare(M, &err);
  ok(st == 0 && !csde_model_gaussian_commutes(M),
     "gaussian (C %s, tau = %d): alloc, prepare; S0 and C do not commute%s%s", mname, TAU,
     WHY(st, err));
  if (st) goto done;

  /* against -D tr(C Sigma_t^-1), the same for every sample */
  const double ts[] = {0.0, 1e-3, 0.1, 0.5, 0.9, 1.0};
  double x[4 * BS], tr[4], tr1, emax = 0;
  fill(x, 4 * BS, 1.1);
  int same = 1;
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    double t = ts[k];
    st |= csde_model_gaussian_marginal(M, t, NULL, Sig, &err);
    st |= csde_model_exact_cdiv(M, t, 4, x, tr, &err);
    st |= csde_model_exact_cdiv(M, t, 1, x + 3 * BS, &tr1, &err);
    double ref = -(double)D * tr_a_binv(Cm, Sig, TAU);
    for (size_t b = 0; b < 4; b++) emax = fmax(emax, fabs(tr[b] - ref) / fabs(ref));
    same &= tr[0] == tr[1] && tr[1] == tr[2] && tr[2] == tr[3] && tr1 == tr[3];
  }
  ok(st == 0 && emax <= 1e-12,
     "gaussian (C %s): cdiv = -D tr(C Sigma_t^-1) at t = 0 .. 1 (max rel %.3g)%s%s", mname,
     emax, WHY(st, err));
  ok(st == 0 && same, "gaussian (C %s): the same bits for every sample and batch size", mname);

  /* against the central difference of the callback at a few x and t */
  const double tf[] = {0.05, 0.4, 0.85};
  double efd = 0;
  for (size_t k = 0; k < 3; k++)
    for (int j = 0; j < 2; j++) {
      double xb[BS], v;
      fill(xb, BS, 2.0 + (double)(3 * k + (size_t)j));
      st |= csde_model_exact_cdiv(M, tf[k], 1, xb, &v, &err);
      double fd = fd_div(M, tf[k], xb, &st);
      efd = fmax(efd, fabs(v - fd) / fabs(fd));
    }
  ok(st == 0 && efd <= FD_TOL,
     "gaussian (C %s): cdiv = central difference of the callback, h = %g (max rel %.3g)",
     mname, FD_H, efd);

  /* cdiv calls (at the score's t, whose M_t they share, and at another) between score
   * calls leave the score's bits alone */
  double y1[BS], y2[BS], y3[BS], v;
  st = csde_model_call(M, 0.3, 1, x, y1);
  st |= csde_model_exact_cdiv(M, 0.3, 1, x, &v, &err);
  st |= csde_model_call(M, 0.3, 1, x, y2);
  st |= csde_model_exact_cdiv(M, 0.7, 1, x, &v, &err);
  st |= csde_model_call(M, 0.3, 1, x, y3);
  ok(st == 0 && !memcmp(y1, y2, sizeof y1) && !memcmp(y1, y3, sizeof y1),
     "gaussian (C %s): cdiv leaves the score's bits", mname);
done:
  csde_model_free(M);
  csde_cov_free(C);
}

/* ---- gmm ---- */

/* Three components of different covariances (each PD on its own). */
static void gmm_covs(double *covs)
{
  const size_t nn = TAU * TAU;
  ar1_mat(covs, TAU, 0.2, 0.5);
  for (size_t i = 0; i < TAU; i++) covs[i * TAU + i] += 0.05;
  memset(covs + nn, 0, nn * sizeof(double));
  for (size_t i = 0; i < TAU; i++) covs[nn + i * TAU + i] = 0.5 + 0.1 * (double)i;
  ar1_mat(covs + 2 * nn, TAU, 0.1, 0.95);
  for (size_t i = 0; i < TAU; i++) covs[2 * nn + i * TAU + i] += 0.02;
}

/* The first term alone: -D sum_k r_k tr(C Sigma_k,t^-1), r_k from GSL Cholesky densities. */
static double ref_first_term(const double *w, const double *means, const double *covs,
                             const double *Cm, double t, const double *x)
{
  const size_t nn = TAU * TAU;
  double a = ref_abar(t), om = ref_om(t), sa = sqrt(a), lr[K], trk[K], lmax = -INFINITY;
  gsl_matrix *L = gsl_matrix_alloc(TAU, TAU);
  for (size_t k = 0; k < K; k++) {
    double Sig[TAU * TAU];
    for (size_t i = 0; i < nn; i++) Sig[i] = a * covs[k * nn + i] + om * Cm[i];
    trk[k] = tr_a_binv(Cm, Sig, TAU);
    memcpy(L->data, Sig, sizeof Sig);
    gsl_linalg_cholesky_decomp1(L);
    double q = 0, ld = 0;
    for (size_t i = 0; i < TAU; i++) ld += 2 * log(gsl_matrix_get(L, i, i));
    for (size_t p = 0; p < D; p++) { /* q += |L^-1 z_p|^2, z_p the pixel's tau-vector */
      double z[TAU];
      for (size_t i = 0; i < TAU; i++) {
        double v = x[i * D + p] - sa * means[k * BS + i * D + p];
        for (size_t j = 0; j < i; j++) v -= gsl_matrix_get(L, i, j) * z[j];
        z[i] = v / gsl_matrix_get(L, i, i);
        q += z[i] * z[i];
      }
    }
    lr[k] = log(w[k]) - 0.5 * (q + (double)D * ld + (double)BS * log(2 * M_PI));
    lmax = fmax(lmax, lr[k]);
  }
  double sum = 0, v = 0;
  for (size_t k = 0; k < K; k++) sum += exp(lr[k] - lmax);
  for (size_t k = 0; k < K; k++) v -= (double)D * exp(lr[k] - lmax) / sum * trk[k];
  gsl_matrix_free(L);
  return v;
}

static void test_gmm(const csde_schedule *s)
{
  double w[K] = {0.5, 0.3, 0.2}, means[K * BS], covs[K * TAU * TAU], Cm[TAU * TAU];
  fill(means, K * BS, 0.9);
  for (size_t i = 0; i < K * BS; i++) means[i] *= 0.6; /* close: mixed responsibilities */
  gmm_covs(covs);
  ar1_mat(Cm, TAU, 1.0, RHO);
  char spec[64];
  snprintf(spec, sizeof spec, "ar1:rho=%g", RHO);
  csde_cov *C = NULL;
  csde_model *M = NULL;
  csde_err err = {0};
  int st = csde_cov_alloc(&C, spec, TAU, NULL, &err);
  if (!st) st = csde_model_gmm_alloc(&M, C, s, D, K, w, means, K * BS, covs, &err);
  ok(st == 0, "gmm K = %d (tau = %d, D = %d) alloc%s%s", K, TAU, D, WHY(st, err));
  if (st) goto done;
  double x[3 * BS], tr[3], v;
  fill(x, 3 * BS, 1.3);
  st = csde_model_exact_cdiv(M, 0.5, 1, x, &v, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "csde_model_exact_cdiv_prepare",
            "gmm: cdiv before prepare is refused, naming the prepare call");
  st = csde_model_exact_cdiv_prepare(M, &err);
  st |= csde_model_exact_cdiv_prepare(M, &err); /* twice: a no-op */
  ok(st == 0, "gmm: prepare (twice)%s%s", WHY(st, err));

  /* against the central difference of the callback; the first term alone does not agree */
  const double tf[] = {0.05, 0.3, 0.6, 0.9};
  double efd = 0, gap = INFINITY;
  for (size_t k = 0; k < sizeof tf / sizeof tf[0]; k++)
    for (int j = 0; j < 3; j++) {
      double xb[BS];
      fill(xb, BS, 4.0 + (double)(3 * k + (size_t)j));
      for (size_t i = 0; i < BS; i++) xb[i] = 0.5 * xb[i] + sqrt(ref_abar(tf[k])) * means[i] * 0.5;
      st |= csde_model_exact_cdiv(M, tf[k], 1, xb, &v, &err);
      double fd = fd_div(M, tf[k], xb, &st);
      double first = ref_first_term(w, means, covs, Cm, tf[k], xb);
      efd = fmax(efd, fabs(v - fd) / fabs(fd));
      gap = fmin(gap, fabs(first - fd) / fabs(fd));
    }
  ok(st == 0 && efd <= FD_TOL,
     "gmm: cdiv = central difference of the callback, h = %g (max rel %.3g)%s%s", FD_H, efd,
     WHY(st, err));
  ok(gap >= 10 * FD_TOL,
     "gmm: at every x, t above the first term alone misses the central difference by >= 10 "
     "x the tolerance: the term sum_k r_k (s_k - s)^T C (s_k - s) is needed (min rel %.3g)",
     gap);

  /* batch and call order never change a bit; the score's bits stay */
  double t1[3], y1[3 * BS], y2[3 * BS], y3[3 * BS];
  st = csde_model_call(M, 0.3, 3, x, y1);
  st |= csde_model_exact_cdiv(M, 0.3, 3, x, tr, &err);
  st |= csde_model_call(M, 0.3, 3, x, y3);
  for (size_t b = 0; b < 3; b++) /* other times between: the per-t caches are remade */
    st |= csde_model_exact_cdiv(M, 0.7 - 0.2 * (double)b, 1, x + b * BS, &v, &err);
  for (size_t b = 0; b < 3; b++) st |= csde_model_exact_cdiv(M, 0.3, 1, x + b * BS, t1 + b, &err);
  st |= csde_model_call(M, 0.3, 3, x, y2);
  ok(st == 0 && !memcmp(tr, t1, sizeof tr) && !memcmp(y1, y2, sizeof y1) &&
         !memcmp(y1, y3, sizeof y1),
     "gmm: the same bits in a batch of 3 and alone, after other t; the score's bits stay");

  /* bad input */
  st = csde_model_exact_cdiv(M, 1.5, 1, x, &v, &err);
  ok_status(st, CSDE_EDOM, err.msg, "t = 1.5", "gmm: t outside [0, 1] refused");
  st = csde_model_exact_cdiv(M, 0.5, 1, NULL, &v, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "x is NULL", "gmm: x NULL refused");
done:
  csde_model_free(M);
  csde_cov_free(C);
}

/* ---- models without a closed form ---- */

static int ident(double t, size_t batch, const double *x, double *out, void *user)
{
  (void)t, (void)user;
  memcpy(out, x, batch * BS * sizeof(double));
  return 0;
}

static void test_user(void)
{
  csde_model *U = NULL;
  csde_err err = {0};
  double x[BS] = {0}, v;
  int st = csde_model_alloc(&U, "mine", ident, CSDE_OUT_CSCORE, NULL, NULL, &err);
  ok(st == 0, "user model alloc");
  st = csde_model_exact_cdiv_prepare(U, &err);
  ok_status(st, CSDE_ENOTSUP, err.msg, "'mine' has no closed-form divergence",
            "user model: prepare gives CSDE_ENOTSUP naming the model");
  st = csde_model_exact_cdiv(U, 0.5, 1, x, &v, &err);
  ok_status(st, CSDE_ENOTSUP, err.msg, "'mine' has no closed-form divergence",
            "user model: cdiv gives CSDE_ENOTSUP naming the model");
  st = csde_model_exact_cdiv(NULL, 0.5, 1, x, &v, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "model is NULL", "NULL model refused");
  csde_model_free(U);
}

int main(void)
{
  csde_init();
  csde_schedule *s = NULL;
  csde_err err = {0};
  char spec[64];
  snprintf(spec, sizeof spec, "vp-linear:bmin=%g,bmax=%g", BMIN, BMAX);
  int st = csde_schedule_alloc(&s, spec, &err);
  ok(st == 0, "schedule %s%s%s", spec, WHY(st, err));
  test_gaussian(s, CSDE_COV_DENSE, "dense");
  test_gaussian(s, CSDE_COV_EMBED, "embed");
  test_gmm(s);
  test_user();
  csde_schedule_free(s);
  return tap_done();
}
