/* Tests for corrsde/model.h and corrsde/plugin.h: the generic model object, the exact
 * gaussian and gmm models (MATH.md, "Exact test problems"), plugins and HDF5 loading.
 *
 * References are computed here independently: dense linear algebra with GSL on matrices
 * written out from their definitions (C_ij = rho^|i-j|), abar(t) from the vp-linear formula
 * B(t) = bmin t + (bmax - bmin) t^2 / 2, the plugin's MLP from its documented formula.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>
#include <hdf5.h>

#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/plugin.h"
#include "corrsde/schedule.h"
#include "model/model_internal.h"
#include "tap.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define RHO 0.9 /* C = ar1(RHO) */
#define BMIN 0.1
#define BMAX 20.0

static int quick;

/* ": reason" after a failed call, nothing after a successful one (two %s arguments) */
#define WHY(st, err) ((st) ? ": " : ""), ((st) ? (err).msg : "")

/* ---- independent references ---- */

static double ref_B(double t) { return BMIN * t + 0.5 * (BMAX - BMIN) * t * t; }
static double ref_beta(double t) { return BMIN + t * (BMAX - BMIN); }
static double ref_abar(double t) { return exp(-ref_B(t)); }
static double ref_om(double t) { return -expm1(-ref_B(t)); }

/* M_ij = scale rho^|i-j| */
static void ar1_mat(double *M, size_t n, double scale, double rho)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) M[i * n + j] = scale * pow(rho, fabs((double)i - (double)j));
}

static void eye(double *M, size_t n, double s)
{
  for (size_t i = 0; i < n * n; i++) M[i] = (i % (n + 1) == 0) ? s : 0.0;
}

/* P = A B (n x n) */
static void mm(const double *A, const double *B, double *P, size_t n)
{
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      long double v = 0;
      for (size_t k = 0; k < n; k++) v += (long double)A[i * n + k] * B[k * n + j];
      P[i * n + j] = (double)v;
    }
}

/* Sigma_t = abar S0 + (1 - abar) C */
static void ref_sigma(const double *S0, const double *Cm, size_t n, double t, double *Sig)
{
  double a = ref_abar(t), om = ref_om(t);
  for (size_t i = 0; i < n * n; i++) Sig[i] = a * S0[i] + om * Cm[i];
}

/* Ainv = A^-1 for SPD A (GSL Cholesky). */
static void spd_inv(const double *A, size_t n, double *Ainv)
{
  gsl_matrix *G = gsl_matrix_alloc(n, n);
  memcpy(G->data, A, n * n * sizeof(double));
  gsl_linalg_cholesky_decomp1(G);
  gsl_linalg_cholesky_invert(G);
  memcpy(Ainv, G->data, n * n * sizeof(double));
  gsl_matrix_free(G);
}

/* Deterministic O(1) inputs, different per seed. */
static void fill(double *x, size_t n, double seed)
{
  for (size_t i = 0; i < n; i++)
    x[i] = sin(1.37 * (double)i + seed) + 0.5 * cos(0.11 * (double)i * seed + 1);
}

static double maxabs(const double *x, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

static double maxdiff(const double *a, const double *b, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
  return m;
}

/* out_b = -C Sigma_t^-1 (x_b - sqrt(abar) m), pixel by pixel (m tau x D). */
static void ref_cscore(const double *S0, const double *Cm, const double *m, size_t tau,
                       size_t D, size_t batch, double t, const double *x, double *out)
{
  double *Sig = malloc(tau * tau * sizeof *Sig), *Si = malloc(tau * tau * sizeof *Si);
  double *CSi = malloc(tau * tau * sizeof *CSi), sa = sqrt(ref_abar(t));
  ref_sigma(S0, Cm, tau, t, Sig);
  spd_inv(Sig, tau, Si);
  mm(Cm, Si, CSi, tau);
  for (size_t b = 0; b < batch; b++)
    for (size_t p = 0; p < D; p++)
      for (size_t i = 0; i < tau; i++) {
        double v = 0;
        for (size_t k = 0; k < tau; k++) {
          size_t e = b * tau * D + k * D + p;
          v -= CSi[i * tau + k] * (x[e] - sa * (m ? m[k * D + p] : 0));
        }
        out[b * tau * D + i * D + p] = v;
      }
  free(Sig);
  free(Si);
  free(CSi);
}

static csde_cov *make_cov(size_t tau)
{
  csde_cov *C = NULL;
  csde_err err = {0};
  char spec[64];
  snprintf(spec, sizeof spec, "ar1:rho=%g", RHO);
  int st = csde_cov_alloc(&C, spec, tau, NULL, &err);
  ok(st == 0 && C, "cov '%s' tau %zu%s%s", spec, tau, WHY(st, err));
  return C;
}

/* ---- the generic model object ---- */

static int user_freed;
static void count_free(void *p)
{
  (void)p;
  user_freed++;
}

static int twice(double t, size_t batch, const double *x, double *out, void *user)
{
  size_t n = batch * *(size_t *)user;
  for (size_t i = 0; i < n; i++) out[i] = 2 * x[i] + t;
  return 0;
}

static void test_generic(void)
{
  size_t bs = 6;
  csde_model *M = NULL;
  csde_err err = {0};
  user_freed = 0;
  int st = csde_model_alloc(&M, "double", twice, CSDE_OUT_NOISE, &bs, count_free, &err);
  ok(st == 0 && M, "user model alloc");
  ok(!strcmp(csde_model_name(M), "double"), "name copied: '%s'", csde_model_name(M));
  ok(csde_model_output_of(M) == CSDE_OUT_NOISE, "output kind kept");
  ok(!strcmp(csde_model_output_name(CSDE_OUT_SCORE), "score") &&
         !strcmp(csde_model_output_name(CSDE_OUT_CSCORE), "cscore") &&
         !strcmp(csde_model_output_name(CSDE_OUT_NOISE), "noise") &&
         !strcmp(csde_model_output_name(CSDE_OUT_X0), "x0") &&
         !strcmp(csde_model_output_name((csde_model_output)9), "unknown"),
     "output names score, cscore, noise, x0, unknown");
  double x[12], y[12];
  fill(x, 12, 1);
  st = csde_model_call(M, 0.5, 2, x, y);
  ok(st == 0 && y[11] == 2 * x[11] + 0.5 && y[0] == 2 * x[0] + 0.5, "call passes t, batch, user");
  csde_model_free(M);
  ok(user_freed == 1, "free calls free_user once");
  csde_model_free(NULL);
  ok(1, "free(NULL) is a no-op");

  csde_model *U = NULL;
  csde_model_alloc(&U, NULL, twice, CSDE_OUT_SCORE, &bs, NULL, NULL);
  ok(U && !strcmp(csde_model_name(U), "user"), "NULL name gives 'user'");
  csde_model_free(U);

  user_freed = 0;
  st = csde_model_alloc(&M, "x", NULL, CSDE_OUT_SCORE, &bs, count_free, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "callback is NULL", "NULL callback refused");
  st = csde_model_alloc(&M, "x", twice, (csde_model_output)7, &bs, count_free, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "output kind 7", "bad output kind refused");
  ok(user_freed == 0 && M == NULL, "a failed alloc leaves user to the caller");
}

/* ---- gaussian: score, marginal, conversions ---- */

typedef struct {
  const char *label;
  size_t tau, D;
  double *S0, *Cm, *m; /* tau x tau, tau x tau, tau x D */
  csde_cov *C;
  csde_schedule *s;
  csde_model *M;
} gcase;

/* commuting: S0 = 0.3^2 I, mean tau x D; otherwise S0 = 0.25 ar1(0.95) (the default, passed
 * as NULL) and a per-frame mean. */
static int gcase_make(gcase *g, int commuting, size_t tau, size_t D, csde_schedule *s)
{
  memset(g, 0, sizeof *g);
  g->label = commuting ? "S0 = 0.09 I (commutes)" : "S0 = 0.25 ar1(0.95) (does not commute)";
  g->tau = tau;
  g->D = D;
  g->s = s;
  g->S0 = malloc(tau * tau * sizeof(double));
  g->Cm = malloc(tau * tau * sizeof(double));
  g->m = malloc(tau * D * sizeof(double));
  ar1_mat(g->Cm, tau, 1.0, RHO);
  g->C = make_cov(tau);
  double *mf = malloc(tau * sizeof *mf);
  csde_err err = {0};
  int st;
  if (commuting) {
    eye(g->S0, tau, 0.09);
    fill(g->m, tau * D, 0.7);
    st = csde_model_gaussian_alloc(&g->M, g->C, s, D, g->m, tau * D, g->S0, &err);
  } else {
    ar1_mat(g->S0, tau, 0.25, 0.95);
    fill(mf, tau, 2.3);
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++) g->m[i * D + p] = mf[i];
    st = csde_model_gaussian_alloc(&g->M, g->C, s, D, mf, tau, NULL, &err);
  }
  free(mf);
  ok(st == 0 && g->M, "gaussian alloc, %s%s%s", g->label, WHY(st, err));
  return st;
}

static void gcase_free(gcase *g)
{
  csde_model_free(g->M);
  csde_cov_free(g->C);
  free(g->S0);
  free(g->Cm);
  free(g->m);
}

static void test_gaussian_score(gcase *g)
{
  const size_t batch = 3, n = batch * g->tau * g->D;
  const double ts[] = {1e-3, 0.1, 0.5, 0.9, 1.0};
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *r = malloc(n * sizeof *r);
  fill(x, n, 0.4);
  ok(csde_model_is_gaussian(g->M) && !csde_model_is_gmm(g->M) &&
         csde_model_output_of(g->M) == CSDE_OUT_CSCORE && !strcmp(csde_model_name(g->M), "gaussian"),
     "gaussian model: kind cscore, is_gaussian");
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    double t = ts[k];
    int st = csde_model_call(g->M, t, batch, x, y);
    ref_cscore(g->S0, g->Cm, g->m, g->tau, g->D, batch, t, x, r);
    double e = maxdiff(y, r, n) / maxabs(r, n);
    ok(st == 0 && e <= 1e-12, "%s: t = %g, C grad log p = -C Sigma_t^-1 (x - sqrt(abar) m) "
       "(rel %.3g)", g->label, t, e);
  }
  /* cache: the same t after another t gives the same bits; batch 1 = a block of batch 3 */
  double *y2 = malloc(n * sizeof *y2), *y1 = malloc(g->tau * g->D * sizeof *y1);
  csde_model_call(g->M, 0.3, batch, x, y);
  csde_model_call(g->M, 0.8, batch, x, y2);
  csde_model_call(g->M, 0.3, batch, x, y2);
  csde_model_call(g->M, 0.3, 1, x + 2 * g->tau * g->D, y1);
  ok(!memcmp(y, y2, n * sizeof *y) && !memcmp(y1, y + 2 * g->tau * g->D, g->tau * g->D * sizeof *y1),
     "%s: repeated t and batch split give the same bits", g->label);
  /* out may equal x */
  memcpy(y2, x, n * sizeof *x);
  csde_model_call(g->M, 0.3, batch, y2, y2);
  ok(!memcmp(y, y2, n * sizeof *y), "%s: in-place call (out = x) gives the same bits", g->label);
  free(y1);
  free(y2);
  free(x);
  free(y);
  free(r);
}

/* Threads: the callback works on tiles of a fixed width (512 pixels), so with D = 1100
 * (two full tiles and a partial one) threads 1, 2 and 3 must give the same bits, equal to
 * the pixel-by-pixel reference, in place too. */
static void test_gaussian_threads(gcase *g)
{
  const size_t batch = 3, n = batch * g->tau * g->D;
  double *x = malloc(n * sizeof *x), *y[3], *r = malloc(n * sizeof *r);
  csde_err err = {0};
  fill(x, n, 0.9);
  ref_cscore(g->S0, g->Cm, g->m, g->tau, g->D, batch, 0.37, x, r);
  int st = 0;
  for (int k = 0; k < 3; k++) {
    y[k] = malloc(n * sizeof *y[k]);
    st |= csde_model_gaussian_set_threads(g->M, k + 1, &err);
    st |= csde_model_call(g->M, 0.37, batch, x, y[k]);
  }
  double e = maxdiff(y[0], r, n) / maxabs(r, n);
  ok(st == 0 && e <= 1e-12, "%s, D = %zu: tiled callback = reference (rel %.3g)", g->label,
     g->D, e);
  ok(st == 0 && !memcmp(y[0], y[1], n * sizeof *x) && !memcmp(y[0], y[2], n * sizeof *x),
     "%s, D = %zu: threads 1, 2, 3 give the same bits", g->label, g->D);
  memcpy(y[1], x, n * sizeof *x);
  st = csde_model_gaussian_set_threads(g->M, 2, &err);
  st |= csde_model_call(g->M, 0.37, batch, y[1], y[1]);
  ok(st == 0 && !memcmp(y[0], y[1], n * sizeof *x), "%s: in place with 2 threads, same bits",
     g->label);
  /* without a mean the tiles are read from x in place (no copy) */
  csde_model *M0 = NULL;
  st = csde_model_gaussian_alloc(&M0, g->C, g->s, g->D, NULL, 0, g->S0, &err);
  ref_cscore(g->S0, g->Cm, NULL, g->tau, g->D, batch, 0.37, x, r);
  for (int k = 0; k < 2 && !st; k++) {
    st |= csde_model_gaussian_set_threads(M0, k + 1, &err);
    st |= csde_model_call(M0, 0.37, batch, x, y[k]);
  }
  e = maxdiff(y[0], r, n) / maxabs(r, n);
  ok(st == 0 && e <= 1e-12 && !memcmp(y[0], y[1], n * sizeof *x),
     "%s, mean 0, D = %zu: tiles read in place = reference (rel %.3g), threads 1 and 2 the "
     "same bits", g->label, g->D, e);
  csde_model_free(M0);
  st = csde_model_gaussian_set_threads(g->M, 0, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "threads = 0", "set_threads(0) is refused");
  csde_model_gaussian_set_threads(g->M, 1, &err);
  for (int k = 0; k < 3; k++) free(y[k]);
  free(x);
  free(r);
}

static void test_gaussian_marginal(gcase *g)
{
  size_t tau = g->tau, bs = tau * g->D;
  double *mean = malloc(bs * sizeof *mean), *cov = malloc(tau * tau * sizeof *cov);
  double *Sig = malloc(tau * tau * sizeof *Sig);
  for (double t = 0; t <= 1.0; t += 0.25) {
    int st = csde_model_gaussian_marginal(g->M, t, mean, cov, NULL);
    ref_sigma(g->S0, g->Cm, tau, t, Sig);
    double em = 0, sa = sqrt(ref_abar(t));
    for (size_t i = 0; i < bs; i++) em = fmax(em, fabs(mean[i] - sa * g->m[i]));
    double ec = maxdiff(cov, Sig, tau * tau);
    ok(st == 0 && em <= 1e-14 && ec <= 1e-14,
       "%s: t = %g marginal mean sqrt(abar) m, cov abar S0 + (1-abar) C (|diff| %.2g, %.2g)",
       g->label, t, em, ec);
  }
  csde_err err = {0};
  int st = csde_model_gaussian_marginal(g->M, 1.5, mean, cov, &err);
  ok_status(st, CSDE_EDOM, err.msg, "outside [0, 1]", "marginal at t = 1.5 refused");
  free(mean);
  free(cov);
  free(Sig);
}

/* The four ways of answering (MATH.md) agree on the gaussian model. */
static void test_conversions(gcase *g)
{
  const double t = 0.4;
  size_t tau = g->tau, D = g->D, bs = tau * D;
  double *x = malloc(bs * sizeof *x), *cs = malloc(bs * sizeof *cs);
  double *noise = malloc(bs * sizeof *noise), *x0 = malloc(bs * sizeof *x0);
  double *Sig = malloc(tau * tau * sizeof *Sig), *Si = malloc(tau * tau * sizeof *Si);
  double *SSi = malloc(tau * tau * sizeof *SSi);
  fill(x, bs, 5.5);
  csde_model_call(g->M, t, 1, x, cs);
  double a = ref_abar(t), om = ref_om(t), sa = sqrt(a), so = sqrt(om);
  for (size_t i = 0; i < bs; i++) noise[i] = -so * cs[i];           /* delta = -sqrt(1-a) Cs */
  for (size_t i = 0; i < bs; i++) x0[i] = (x[i] - so * noise[i]) / sa; /* x0 from delta */
  /* E[X0 | x] = m + sqrt(a) S0 Sigma^-1 (x - sqrt(a) m): Gaussian conditioning */
  ref_sigma(g->S0, g->Cm, tau, t, Sig);
  spd_inv(Sig, tau, Si);
  mm(g->S0, Si, SSi, tau);
  double ex = 0, es = 0, en = 0, ec = 0;
  for (size_t p = 0; p < D; p++)
    for (size_t i = 0; i < tau; i++) {
      double e0 = g->m[i * D + p];
      for (size_t k = 0; k < tau; k++)
        e0 += sa * SSi[i * tau + k] * (x[k * D + p] - sa * g->m[k * D + p]);
      ex = fmax(ex, fabs(x0[i * D + p] - e0));
    }
  /* C score, with score = -Sigma^-1 (x - sqrt(a) m) computed densely, = cscore */
  for (size_t p = 0; p < D; p++)
    for (size_t i = 0; i < tau; i++) {
      double Cs = 0;
      for (size_t j = 0; j < tau; j++) {
        double sj = 0;
        for (size_t k = 0; k < tau; k++)
          sj -= Si[j * tau + k] * (x[k * D + p] - sa * g->m[k * D + p]);
        Cs += g->Cm[i * tau + j] * sj;
      }
      es = fmax(es, fabs(Cs - cs[i * D + p]));
    }
  for (size_t i = 0; i < bs; i++) {
    en = fmax(en, fabs(-noise[i] / so - cs[i]));                 /* NOISE -> CSCORE */
    ec = fmax(ec, fabs(-(x[i] - sa * x0[i]) / om - cs[i]));      /* X0 -> CSCORE */
  }
  double sc = maxabs(cs, bs);
  ok(ex <= 1e-12 * maxabs(x0, bs), "%s: x0 = (x - sqrt(1-a) delta)/sqrt(a) is the posterior "
     "mean m + sqrt(a) S0 Sigma^-1 (x - sqrt(a) m) (|diff| %.3g)", g->label, ex);
  ok(es <= 1e-12 * sc, "%s: C (score) = cscore (|diff| %.3g)", g->label, es);
  ok(en <= 1e-13 * sc && ec <= 1e-12 * sc,
     "%s: noise -> -delta/sqrt(1-a) and x0 -> -(x - sqrt(a) x0)/(1-a) give cscore back "
     "(|diff| %.3g, %.3g)", g->label, en, ec);
  free(x);
  free(cs);
  free(noise);
  free(x0);
  free(Sig);
  free(Si);
  free(SSi);
}

/* ---- gaussian flow ---- */

static void test_flow_commuting(gcase *g)
{
  size_t n = g->tau, nn = n * n;
  double *P1 = malloc(nn * sizeof *P1), *P2 = malloc(nn * sizeof *P2);
  double *Pa = malloc(nn * sizeof *Pa);
  const double pairs[][2] = {{1.0, 1e-3}, {0.2, 0.7}, {0.9, 0.3}, {1e-3, 1.0}};
  ok(csde_model_gaussian_commutes(g->M), "%s: detected as commuting", g->label);
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    double t1 = pairs[k][0], t2 = pairs[k][1];
    csde_err err = {0};
    int st = csde_model_gaussian_flow_route(g->M, t1, t2, CSDE_FLOW_CLOSED, P1, &err);
    st |= csde_model_gaussian_flow_route(g->M, t1, t2, CSDE_FLOW_ODE, P2, &err);
    st |= csde_model_gaussian_flow(g->M, t1, t2, Pa, &err);
    double e = maxdiff(P1, P2, nn);
    ok(st == 0 && e <= 1e-10, "%s: closed-form flow = ODE propagator, t %g -> %g (|diff| %.3g)%s%s",
       g->label, t1, t2, e, WHY(st, err));
    ok(!memcmp(P1, Pa, nn * sizeof *Pa), "%s: auto route takes the closed form", g->label);
  }
  free(P1);
  free(P2);
  free(Pa);
}

static void test_flow_general(gcase *g)
{
  size_t n = g->tau, nn = n * n;
  double *P = malloc(nn * sizeof *P), *Pp = malloc(nn * sizeof *Pp), *Pm = malloc(nn * sizeof *Pm);
  double *Q = malloc(nn * sizeof *Q), *R = malloc(nn * sizeof *R), *W = malloc(nn * sizeof *W);
  double *Sig = malloc(nn * sizeof *Sig), *Si = malloc(nn * sizeof *Si);
  double *T1 = malloc(nn * sizeof *T1), *T2 = malloc(nn * sizeof *T2);
  csde_err err = {0};
  int st;
  if (!csde_model_gaussian_commutes(g->M)) {
    ok(1, "%s: detected as not commuting", g->label);
    st = csde_model_gaussian_flow_route(g->M, 0.5, 0.2, CSDE_FLOW_CLOSED, P, &err);
    ok_status(st, CSDE_ENOTSUP, err.msg, "do not commute", "closed form refused");
  }

  /* dPhi/dt2 = -1/2 beta(t2) (I - C Sigma_t2^-1) Phi, by central differences */
  const double t1 = 0.9, t2 = 0.4, h = 1e-5;
  st = csde_model_gaussian_flow(g->M, t1, t2, P, &err);
  st |= csde_model_gaussian_flow(g->M, t1, t2 + h, Pp, &err);
  st |= csde_model_gaussian_flow(g->M, t1, t2 - h, Pm, &err);
  ref_sigma(g->S0, g->Cm, n, t2, Sig);
  spd_inv(Sig, n, Si);
  mm(g->Cm, Si, W, n);             /* W = C Sigma^-1 */
  mm(W, P, Q, n);                  /* Q = W Phi */
  double e = 0, sc = 0;
  for (size_t i = 0; i < nn; i++) {
    double rhs = -0.5 * ref_beta(t2) * (P[i] - Q[i]), fd = (Pp[i] - Pm[i]) / (2 * h);
    e = fmax(e, fabs(fd - rhs));
    sc = fmax(sc, fabs(rhs));
  }
  ok(st == 0 && e <= 1e-6 * sc, "%s: flow solves dPhi/dt = -1/2 beta (I - C Sigma^-1) Phi "
     "(central difference, rel %.3g)", g->label, e / sc);

  /* semigroup Phi(t3, t1) = Phi(t3, t2) Phi(t2, t1) */
  const double s1 = 1.0, s2 = 0.5, s3 = 0.01;
  st = csde_model_gaussian_flow(g->M, s1, s3, P, &err);
  st |= csde_model_gaussian_flow(g->M, s2, s3, Q, &err);
  st |= csde_model_gaussian_flow(g->M, s1, s2, R, &err);
  mm(Q, R, W, n);
  e = maxdiff(P, W, nn) / maxabs(P, nn);
  ok(st == 0 && e <= 1e-10, "%s: Phi(%g,%g) = Phi(%g,%g) Phi(%g,%g) (rel %.3g)", g->label, s3,
     s1, s3, s2, s2, s1, e);
  /* and backwards: Phi(t1, t3) Phi(t3, t1) = I */
  st = csde_model_gaussian_flow(g->M, s3, s1, Q, &err);
  mm(Q, P, W, n);
  eye(R, n, 1.0);
  e = maxdiff(W, R, nn);
  ok(st == 0 && e <= 1e-10, "%s: Phi(%g,%g) Phi(%g,%g) = I (|diff| %.3g)", g->label, s1, s3, s3,
     s1, e);

  /* the PF-ODE keeps the marginals: Phi Sigma_t1 Phi^T = Sigma_t2 */
  ref_sigma(g->S0, g->Cm, n, s1, Sig);
  mm(P, Sig, T1, n);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) Q[i * n + j] = P[j * n + i];
  mm(T1, Q, T2, n);
  ref_sigma(g->S0, g->Cm, n, s3, Sig);
  e = maxdiff(T2, Sig, nn) / maxabs(Sig, nn);
  ok(e <= 1e-9, "%s: Phi Sigma_%g Phi^T = Sigma_%g (rel %.3g)", g->label, s1, s3, e);

  /* flow_apply = sqrt(abar2) m + Phi (x1 - sqrt(abar1) m) */
  size_t D = g->D, bs = n * D, batch = 2;
  double *x1 = malloc(batch * bs * sizeof *x1), *x2 = malloc(batch * bs * sizeof *x2);
  fill(x1, batch * bs, 3.3);
  st = csde_model_gaussian_flow_apply(g->M, s1, s3, batch, x1, x2, &err);
  double sa1 = sqrt(ref_abar(s1)), sa3 = sqrt(ref_abar(s3));
  e = 0;
  for (size_t b = 0; b < batch; b++)
    for (size_t i = 0; i < n; i++)
      for (size_t p = 0; p < D; p++) {
        double v = sa3 * g->m[i * D + p];
        for (size_t k = 0; k < n; k++)
          v += P[i * n + k] * (x1[b * bs + k * D + p] - sa1 * g->m[k * D + p]);
        e = fmax(e, fabs(v - x2[b * bs + i * D + p]));
      }
  ok(st == 0 && e <= 1e-12, "%s: flow_apply = sqrt(abar2) m + Phi (x1 - sqrt(abar1) m) "
     "(|diff| %.3g)", g->label, e);
  st = csde_model_gaussian_flow_apply(g->M, s1, s3, batch, x1, x1, &err);
  ok(st == 0 && !memcmp(x1, x2, batch * bs * sizeof *x1), "%s: flow_apply in place", g->label);
  st = csde_model_gaussian_flow(g->M, 0.5, -0.1, P, &err);
  ok_status(st, CSDE_EDOM, err.msg, "t2 = -0.1", "flow to t = -0.1 refused");
  free(x1);
  free(x2);
  free(P);
  free(Pp);
  free(Pm);
  free(Q);
  free(R);
  free(W);
  free(Sig);
  free(Si);
  free(T1);
  free(T2);
}

/* ---- gaussian sampling ---- */

static void test_gaussian_sample(gcase *g, double t)
{
  size_t tau = g->tau, D = g->D, bs = tau * D;
  size_t batch = quick ? 4000 : 40000, N = batch * D;
  double *x = malloc(batch * bs * sizeof *x), *Sig = malloc(tau * tau * sizeof *Sig);
  csde_rng_key key = {12345, 7};
  csde_err err = {0};
  int st = csde_model_gaussian_sample(g->M, t, key, 0, batch, x, &err);
  ok(st == 0, "%s: sample %zu at t = %g%s%s", g->label, batch, t, WHY(st, err));
  ref_sigma(g->S0, g->Cm, tau, t, Sig);
  double sa = sqrt(ref_abar(t)), wm = 0, wc = 0;
  for (size_t i = 0; i < tau; i++) { /* mean of frame i, pooled over samples and pixels */
    double s = 0;
    for (size_t b = 0; b < batch; b++)
      for (size_t p = 0; p < D; p++) s += x[b * bs + i * D + p] - sa * g->m[i * D + p];
    double se = sqrt(Sig[i * tau + i] / (double)N);
    wm = fmax(wm, fabs(s / (double)N) / se);
  }
  for (size_t i = 0; i < tau; i++)
    for (size_t j = 0; j <= i; j++) {
      double s = 0;
      for (size_t b = 0; b < batch; b++)
        for (size_t p = 0; p < D; p++)
          s += (x[b * bs + i * D + p] - sa * g->m[i * D + p]) *
               (x[b * bs + j * D + p] - sa * g->m[j * D + p]);
      double Sii = Sig[i * tau + i], Sjj = Sig[j * tau + j], Sij = Sig[i * tau + j];
      double se = sqrt((Sii * Sjj + Sij * Sij) / (double)N); /* SE of a covariance entry */
      wc = fmax(wc, fabs(s / (double)N - Sij) / se);
    }
  ok(wm <= 5, "%s: t = %g sample mean = sqrt(abar) m (worst %.2f SE of %zu draws)", g->label, t,
     wm, N);
  ok(wc <= 5, "%s: t = %g sample covariance = Sigma_t (worst %.2f SE)", g->label, t, wc);
  /* sample j of a call is global sample first + j */
  double *one = malloc(bs * sizeof *one);
  st = csde_model_gaussian_sample(g->M, t, key, 7, 1, one, &err);
  ok(st == 0 && !memcmp(one, x + 7 * bs, bs * sizeof *one),
     "%s: sample 7 alone = sample 7 of a batch (bitwise)", g->label);
  free(one);
  free(x);
  free(Sig);
}

/* ---- gmm ---- */

#define GK 3
typedef struct {
  size_t tau, D;
  double w[GK], *means, *covs, *Cm;
  csde_cov *C;
  csde_model *M;
} gmmcase;

static void gmm_covs(double *covs, size_t tau)
{
  size_t nn = tau * tau;
  double *I = malloc(nn * sizeof *I);
  ar1_mat(covs, tau, 0.2, 0.5);
  eye(I, tau, 0.05);
  for (size_t i = 0; i < nn; i++) covs[i] += I[i];
  eye(covs + nn, tau, 0.5);
  ar1_mat(covs + 2 * nn, tau, 0.1, 0.95);
  free(I);
}

static void test_gmm(csde_schedule *s)
{
  const size_t tau = 4, D = 2, bs = tau * D, nn = tau * tau;
  double w[GK] = {0.5, 0.3, 0.2}, means[GK * 4 * 2], covs[GK * 16], Cm[16];
  fill(means, GK * bs, 0.9);
  for (size_t i = 0; i < GK * bs; i++) means[i] *= 1.5;
  gmm_covs(covs, tau);
  ar1_mat(Cm, tau, 1.0, RHO);
  csde_cov *C = make_cov(tau);
  csde_model *M = NULL;
  csde_err err = {0};
  int st = csde_model_gmm_alloc(&M, C, s, D, GK, w, means, GK * bs, covs, &err);
  ok(st == 0 && M && csde_model_is_gmm(M) && !csde_model_is_gaussian(M) &&
         csde_model_output_of(M) == CSDE_OUT_CSCORE,
     "gmm alloc K = 3 (kind cscore)%s%s", WHY(st, err));

  /* C grad log p against central differences of logpdf */
  const double ts[] = {0.05, 0.3, 0.8};
  const size_t batch = 2, n = batch * bs;
  double x[2 * 4 * 2], y[2 * 4 * 2], gfd[2 * 4 * 2], xp[2 * 4 * 2], lp[2], lm[2];
  fill(x, n, 1.7);
  for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
    double t = ts[k], h = 1e-5;
    st = csde_model_call(M, t, batch, x, y);
    for (size_t i = 0; i < n; i++) {
      memcpy(xp, x, sizeof xp);
      xp[i] = x[i] + h;
      st |= csde_model_gmm_logpdf(M, t, batch, xp, lp, &err);
      xp[i] = x[i] - h;
      st |= csde_model_gmm_logpdf(M, t, batch, xp, lm, &err);
      size_t b = i / bs;
      gfd[i] = (lp[b] - lm[b]) / (2 * h);
    }
    double e = 0, sc = 0;
    for (size_t b = 0; b < batch; b++)
      for (size_t i = 0; i < tau; i++)
        for (size_t p = 0; p < D; p++) {
          double v = 0; /* (C grad)_ip = sum_k C_ik grad_kp */
          for (size_t kk = 0; kk < tau; kk++) v += Cm[i * tau + kk] * gfd[b * bs + kk * D + p];
          e = fmax(e, fabs(v - y[b * bs + i * D + p]));
          sc = fmax(sc, fabs(v));
        }
    ok(st == 0 && e <= 1e-6 * sc, "gmm t = %g: C grad log p = C (finite differences of logpdf) "
       "(rel %.3g)", t, e / sc);
  }

  /* weights are normalised; [K, tau] means broadcast across pixels */
  double w2[GK] = {5.0, 3.0, 2.0}, y2[2 * 4 * 2];
  csde_model *M2 = NULL;
  st = csde_model_gmm_alloc(&M2, C, s, D, GK, w2, means, GK * bs, covs, &err);
  csde_model_call(M, 0.3, batch, x, y);
  csde_model_call(M2, 0.3, batch, x, y2);
  ok(st == 0 && maxdiff(y, y2, n) <= 1e-14 * maxabs(y, n),
     "gmm: weights 5,3,2 act as 0.5,0.3,0.2 (|diff| %.3g)", maxdiff(y, y2, n));
  csde_model_free(M2);
  /* weights whose sum overflows (issue 10, item 8): [1e308, 1e308, 1e308] act as 1/3 each */
  {
    double wbig[GK] = {1e308, 1e308, 1e308}, weq[GK] = {1, 1, 1}, lb[2], le[2];
    csde_model *Mbig = NULL, *Meq = NULL;
    st = csde_model_gmm_alloc(&Mbig, C, s, D, GK, wbig, means, GK * bs, covs, &err);
    st |= csde_model_gmm_alloc(&Meq, C, s, D, GK, weq, means, GK * bs, covs, &err);
    st |= csde_model_gmm_logpdf(Mbig, 0.3, batch, x, lb, &err);
    st |= csde_model_gmm_logpdf(Meq, 0.3, batch, x, le, &err);
    ok(st == 0 && isfinite(lb[0]) && fabs(lb[0] - le[0]) <= 1e-14 * fabs(le[0]) &&
           fabs(lb[1] - le[1]) <= 1e-14 * fabs(le[1]),
       "gmm: weights 1e308 x 3 (sum overflows) act as 1/3 each: logpdf %.17g = %.17g%s%s",
       lb[0], le[0], WHY(st, err));
    csde_model_call(Mbig, 0.3, batch, x, y);
    csde_model_call(Meq, 0.3, batch, x, y2);
    int fb = 1;
    for (size_t i = 0; i < n; i++) fb &= isfinite(y[i]);
    ok(fb && maxdiff(y, y2, n) <= 1e-14 * maxabs(y2, n), "... and the same score (|diff| %.3g)",
       maxdiff(y, y2, n));
    csde_model_free(Mbig);
    csde_model_free(Meq);
  }
  double mk[GK * 4], mfull[GK * 4 * 2];
  fill(mk, GK * tau, 0.2);
  for (size_t k = 0; k < GK; k++)
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++) mfull[k * bs + i * D + p] = mk[k * tau + i];
  csde_model *Ma = NULL, *Mb = NULL;
  st = csde_model_gmm_alloc(&Ma, C, s, D, GK, w, mk, GK * tau, covs, &err);
  st |= csde_model_gmm_alloc(&Mb, C, s, D, GK, w, mfull, GK * bs, covs, &err);
  csde_model_call(Ma, 0.3, batch, x, y);
  csde_model_call(Mb, 0.3, batch, x, y2);
  ok(st == 0 && !memcmp(y, y2, sizeof y), "gmm: [K, tau] means = the same [K, tau, D] means");
  csde_model_free(Ma);
  csde_model_free(Mb);

  /* far from every component: log-sum-exp keeps the score finite */
  double xf[2 * 4 * 2];
  for (size_t i = 0; i < n; i++) xf[i] = 300 + x[i];
  st = csde_model_call(M, 0.01, batch, xf, y);
  int fin = 1;
  for (size_t i = 0; i < n; i++) fin &= isfinite(y[i]);
  ok(st == 0 && fin, "gmm: score finite where every density underflows (x ~ 300, t = 0.01)");

  /* K = 1: logpdf is the Gaussian density, the score the gaussian model's */
  csde_model *G1 = NULL, *Mg = NULL;
  double w1 = 1.0, S1[16];
  ar1_mat(S1, tau, 0.25, 0.95);
  st = csde_model_gmm_alloc(&G1, C, s, D, 1, &w1, means, bs, S1, &err);
  st |= csde_model_gaussian_alloc(&Mg, C, s, D, means, bs, S1, &err);
  ok(st == 0, "gmm K = 1 and gaussian with the same m, S0%s%s", WHY(st, err));
  for (double t = 0.02; t < 1; t += 0.3) {
    csde_model_call(G1, t, batch, x, y);
    csde_model_call(Mg, t, batch, x, y2);
    double e = maxdiff(y, y2, n) / maxabs(y2, n);
    ok(e <= 1e-12, "t = %g: gmm K = 1 score = gaussian score (rel %.3g)", t, e);
    /* log N(x; sqrt(a) m, Sigma (x) I_D) = -1/2 (sum_p z_p^T Sigma^-1 z_p + D log det Sigma
     * + tau D log 2 pi) */
    double Sig[16], lpg[2];
    ref_sigma(S1, Cm, tau, t, Sig);
    gsl_matrix *Lg = gsl_matrix_alloc(tau, tau);
    memcpy(Lg->data, Sig, nn * sizeof(double));
    gsl_linalg_cholesky_decomp1(Lg);
    double ld = 0;
    for (size_t i = 0; i < tau; i++) ld += 2 * log(gsl_matrix_get(Lg, i, i));
    gsl_vector *v = gsl_vector_alloc(tau);
    csde_model_gmm_logpdf(G1, t, batch, x, lp, &err);
    double el = 0, sa = sqrt(ref_abar(t));
    for (size_t b = 0; b < batch; b++) {
      double q = 0;
      for (size_t p = 0; p < D; p++) {
        for (size_t i = 0; i < tau; i++)
          gsl_vector_set(v, i, x[b * bs + i * D + p] - sa * means[i * D + p]);
        gsl_vector *u = gsl_vector_alloc(tau);
        gsl_vector_memcpy(u, v);
        gsl_linalg_cholesky_svx(Lg, u);
        double d;
        gsl_blas_ddot(v, u, &d);
        q += d;
        gsl_vector_free(u);
      }
      lpg[b] = -0.5 * (q + (double)D * ld + (double)bs * log(2 * M_PI));
      el = fmax(el, fabs(lp[b] - lpg[b]) / fabs(lpg[b]));
    }
    ok(el <= 1e-12, "t = %g: gmm K = 1 logpdf = Gaussian log density (rel %.3g)", t, el);
    gsl_matrix_free(Lg);
    gsl_vector_free(v);
  }
  csde_model_free(G1);
  csde_model_free(Mg);

  /* errors */
  csde_model *E = NULL;
  double wbad[GK] = {0.5, -0.1, 0.6};
  st = csde_model_gmm_alloc(&E, C, s, D, GK, wbad, means, GK * bs, covs, &err);
  ok_status(st, CSDE_EDOM, err.msg, "weight 1 is -0.1", "negative weight refused");
  double cbad[GK * 16];
  memcpy(cbad, covs, sizeof cbad);
  cbad[nn + 0] = -1; /* component 1: a negative variance */
  st = csde_model_gmm_alloc(&E, C, s, D, GK, w, means, GK * bs, cbad, &err);
  ok_status(st, CSDE_ENOTPSD, err.msg, "component 1", "non-PSD component covariance refused");
  memcpy(cbad, covs, sizeof cbad);
  cbad[2 * nn + 1] += 0.01; /* component 2: not symmetric */
  st = csde_model_gmm_alloc(&E, C, s, D, GK, w, means, GK * bs, cbad, &err);
  ok_status(st, CSDE_ENOTSYM, err.msg, "component 2", "asymmetric component covariance refused");
  st = csde_model_gmm_alloc(&E, C, s, D, GK, w, means, GK * bs - 1, covs, &err);
  ok_status(st, CSDE_EBADLEN, err.msg, "means has 23 values", "wrong means length refused");
  st = csde_model_gmm_alloc(&E, C, s, D, 0, w, means, 0, covs, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "K = 0", "K = 0 refused");
  st = csde_model_gmm_logpdf(M, 2.0, batch, x, lp, &err);
  ok_status(st, CSDE_EDOM, err.msg, "outside [0, 1]", "logpdf at t = 2 refused");
  st = csde_model_gmm_logpdf(NULL, 0.5, batch, x, lp, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "not the built-in gmm", "logpdf of a non-gmm refused");
  ok(E == NULL, "failed allocs leave *out NULL");
  csde_model_free(M);
  csde_cov_free(C);
}

/* ---- gaussian argument errors ---- */

static void test_gaussian_errors(csde_schedule *s)
{
  const size_t tau = 4, D = 2;
  csde_cov *C = make_cov(tau);
  csde_model *M = NULL;
  csde_err err = {0};
  double S[16], m[8] = {0};
  ar1_mat(S, tau, 1.0, 0.5);
  int st = csde_model_gaussian_alloc(&M, C, s, D, m, 3, S, &err);
  ok_status(st, CSDE_EBADLEN, err.msg, "mean has 3 values", "mean of 3 values refused");
  S[1] = 0.9;
  st = csde_model_gaussian_alloc(&M, C, s, D, NULL, 0, S, &err);
  ok_status(st, CSDE_ENOTSYM, err.msg, "S0 is not symmetric", "asymmetric S0 refused");
  ar1_mat(S, tau, 1.0, 0.5);
  S[0] = S[5] = -2; /* indefinite */
  st = csde_model_gaussian_alloc(&M, C, s, D, NULL, 0, S, &err);
  ok_status(st, CSDE_ENOTPSD, err.msg, "most negative eigenvalue", "indefinite S0 refused");
  ar1_mat(S, tau, 1.0, 0.5);
  S[6] = S[9] = NAN;
  st = csde_model_gaussian_alloc(&M, C, s, D, NULL, 0, S, &err);
  ok_status(st, CSDE_ENAN, err.msg, "non-finite entry", "NaN in S0 refused");
  m[2] = INFINITY;
  st = csde_model_gaussian_alloc(&M, C, s, D, m, 8, NULL, &err);
  ok_status(st, CSDE_ENAN, err.msg, "mean[2]", "Inf in the mean refused");
  st = csde_model_gaussian_alloc(&M, C, s, 0, NULL, 0, NULL, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "D = 0", "D = 0 refused");
  ok(M == NULL, "failed allocs leave *out NULL");
  /* S0 = 0 (a point mass) with a singular C: Sigma_t singular for every t */
  csde_cov *C1 = NULL;
  double ones[16];
  for (size_t i = 0; i < 16; i++) ones[i] = 1;
  csde_cov_alloc_dense(&C1, ones, tau, NULL, NULL);
  double Z[16] = {0};
  st = csde_model_gaussian_alloc(&M, C1, s, D, NULL, 0, Z, &err);
  ok_status(st, CSDE_ESING, err.msg, "S0 + C is singular", "singular S0 + C refused");
  /* S0 = 0 with a PD C: fine for t > 0; the score at t = 0 fails with a code < 0 */
  st = csde_model_gaussian_alloc(&M, C, s, D, NULL, 0, Z, &err);
  double x[8], y[8];
  fill(x, 8, 1);
  int rc = st ? 0 : csde_model_call(M, 0.0, 1, x, y);
  ok(st == 0 && rc < 0, "S0 = 0: the score at t = 0 returns a fatal code (%d)", rc);
  rc = M ? csde_model_call(M, 0.5, 1, x, y) : -1;
  ok(rc == 0, "S0 = 0: the score at t = 0.5 succeeds");
  /* and sampling at t = 0 gives the point mass m = 0 */
  st = csde_model_gaussian_sample(M, 0.0, (csde_rng_key){1, 2}, 0, 1, y, &err);
  ok(st == 0 && maxabs(y, 8) == 0, "S0 = 0: samples at t = 0 are the point mass");
  csde_model_free(M);
  st = csde_model_gaussian_flow(NULL, 0.1, 0.2, S, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "not the built-in gaussian", "flow of a non-gaussian refused");
  csde_cov_free(C);
  csde_cov_free(C1);
}

/* S0 proportional to C commutes (to rounding); an embed C gives the dense C's model. */
static void test_gaussian_variants(csde_schedule *s)
{
  const size_t tau = 6, D = 2, bs = tau * D, nn = tau * tau;
  csde_cov *C = make_cov(tau), *Ce = NULL;
  double S[36], P1[36], P2[36], x[12], y1[12], y2[12];
  ar1_mat(S, tau, 0.5, RHO); /* S0 = 0.5 C */
  csde_model *M = NULL, *Me = NULL;
  csde_err err = {0};
  int st = csde_model_gaussian_alloc(&M, C, s, D, NULL, 0, S, &err);
  ok(st == 0 && csde_model_gaussian_commutes(M), "S0 = 0.5 C: detected as commuting%s%s",
     WHY(st, err));
  st = csde_model_gaussian_flow_route(M, 0.95, 0.02, CSDE_FLOW_CLOSED, P1, &err);
  st |= csde_model_gaussian_flow_route(M, 0.95, 0.02, CSDE_FLOW_ODE, P2, &err);
  ok(st == 0 && maxdiff(P1, P2, nn) <= 1e-10,
     "S0 = 0.5 C: closed-form flow = ODE propagator (|diff| %.3g)", maxdiff(P1, P2, nn));
  csde_cov_params par = csde_cov_default_params();
  par.method = CSDE_COV_EMBED;
  char spec[64];
  snprintf(spec, sizeof spec, "ar1:rho=%g", RHO);
  st = csde_cov_alloc(&Ce, spec, tau, &par, &err);
  if (!st) st = csde_model_gaussian_alloc(&Me, Ce, s, D, NULL, 0, NULL, &err);
  csde_model_free(M);
  M = NULL;
  if (!st) st = csde_model_gaussian_alloc(&M, C, s, D, NULL, 0, NULL, &err);
  fill(x, bs, 0.1);
  if (!st) {
    csde_model_call(M, 0.4, 1, x, y1);
    csde_model_call(Me, 0.4, 1, x, y2);
  }
  ok(st == 0 && maxdiff(y1, y2, bs) <= 1e-13 * maxabs(y1, bs),
     "gaussian with C by method embed = with method dense%s%s", WHY(st, err));
  csde_model_free(M);
  csde_model_free(Me);
  csde_cov_free(C);
  csde_cov_free(Ce);
}

/* ---- plugin ---- */

static uint64_t sm64(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The MLP of experiments/plugin_mlp.c from its documented formula, one value at a time. */
static double mlp_ref(size_t tau, size_t D, size_t H, uint64_t seed, double t, const double *xb,
                      size_t i, size_t p)
{
  size_t nw = 2 * H * tau + 2 * H + tau;
  double *w = malloc(nw * sizeof *w);
  uint64_t st = seed;
  for (size_t k = 0; k < nw; k++) {
    double u = 2.0 * (double)(sm64(&st) >> 11) / 9007199254740992.0 - 1.0, scale;
    if (k < H * tau) scale = 1 / sqrt((double)tau);
    else if (k < H * tau + H) scale = 0.1;
    else if (k < H * tau + 2 * H) scale = 1.0;
    else if (k < 2 * H * tau + 2 * H) scale = 1 / sqrt((double)H);
    else scale = 0.1;
    w[k] = scale * u;
  }
  const double *W1 = w, *b1 = w + H * tau, *c = b1 + H, *W2 = c + H, *b2 = W2 + tau * H;
  double o = b2[i];
  for (size_t j = 0; j < H; j++) {
    double a = b1[j] + c[j] * t;
    for (size_t k = 0; k < tau; k++) a += W1[j * tau + k] * xb[k * D + p];
    o += W2[i * H + j] * tanh(a);
  }
  free(w);
  return o;
}

static void test_plugin(void)
{
  const char *path = getenv("CSDE_PLUGIN_MLP");
  if (!path) {
    ok(0, "CSDE_PLUGIN_MLP is not set (meson test sets it to plugin_mlp.so)");
    return;
  }
  const size_t tau = 4, D = 3, bs = tau * D, batch = 2, n = batch * bs;
  csde_model *M = NULL;
  csde_err err = {0};
  int st = csde_model_plugin_load(&M, path, "hidden=8,seed=3", tau, D, &err);
  ok(st == 0 && M, "plugin '%s' loads with hidden=8,seed=3%s%s", path, WHY(st, err));
  if (!M) return;
  ok(!strcmp(csde_model_name(M), "mlp") && csde_model_output_of(M) == CSDE_OUT_NOISE,
     "plugin: name 'mlp', kind noise");
  size_t mt, mD;
  csde_model_dims(M, &mt, &mD);
  ok(mt == tau && mD == D, "plugin model records tau and D");
  double x[2 * 12], y[2 * 12], y2[2 * 12];
  fill(x, n, 0.6);
  int rc = csde_model_call(M, 0.37, batch, x, y);
  int fin = 1;
  for (size_t i = 0; i < n; i++) fin &= isfinite(y[i]);
  ok(rc == 0 && fin && maxabs(y, n) > 0, "plugin output finite and non-zero");
  csde_model_call(M, 0.37, batch, x, y2);
  ok(!memcmp(y, y2, sizeof y), "plugin deterministic: same input, same bits");
  double e = 0;
  for (size_t b = 0; b < batch; b++)
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++)
        e = fmax(e, fabs(y[b * bs + i * D + p] - mlp_ref(tau, D, 8, 3, 0.37, x + b * bs, i, p)));
  ok(e <= 1e-13, "plugin = documented MLP formula computed here (|diff| %.3g)", e);
  csde_model_free(M);
  M = NULL;
  st = csde_model_plugin_load(&M, path, "", tau, D, &err);
  double e0 = 0;
  if (!st) {
    csde_model_call(M, 0.9, 1, x, y);
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++)
        e0 = fmax(e0, fabs(y[i * D + p] - mlp_ref(tau, D, 16, 1, 0.9, x, i, p)));
  }
  ok(st == 0 && e0 <= 1e-13, "plugin defaults hidden=16, seed=1 (|diff| %.3g)%s%s", e0, WHY(st, err));
  csde_model_free(M);
  M = NULL;

  st = csde_model_plugin_load(&M, "/nonexistent/dir/plugin.so", "", tau, D, &err);
  ok_status(st, CSDE_EIO, err.msg, "cannot load plugin '/nonexistent/dir/plugin.so'",
            "missing plugin file refused with dlerror text");
  st = csde_model_plugin_load(&M, "libm.so.6", "", tau, D, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "no csde_plugin_init", "library without the entry point");
  st = csde_model_plugin_load(&M, path, "hidden=0", tau, D, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "hidden='0' must be an integer in 1..4096",
            "plugin refuses hidden=0 with its message");
  st = csde_model_plugin_load(&M, path, "hidden=8,depth=2", tau, D, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "unknown argument 'depth'", "plugin refuses unknown ARGS");
  st = csde_model_plugin_load(&M, path, "seed=-1", tau, D, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "seed='-1'", "plugin refuses a negative seed");
  st = csde_model_plugin_load(&M, path, "", 0, D, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "tau = 0", "tau = 0 refused before loading");
  ok(M == NULL, "failed loads leave *out NULL");

  /* ABI 3: the run a plugin is told (csde_model_plugin_load_run); D = the shape's product */
  csde_plugin_run run = {2, {1, 3}, 5, NULL, NULL, "pf-ode"};
  st = csde_model_plugin_load_run(&M, path, "", tau, &run, &err);
  size_t rt = 0, rD = 0;
  double e1 = 0;
  if (!st) {
    csde_model_dims(M, &rt, &rD);
    csde_model_call(M, 0.9, 1, x, y);
    for (size_t i = 0; i < tau; i++)
      for (size_t p = 0; p < D; p++)
        e1 = fmax(e1, fabs(y[i * D + p] - mlp_ref(tau, D, 16, 1, 0.9, x, i, p)));
  }
  ok(st == 0 && rt == tau && rD == D && e1 <= 1e-13,
     "load_run with frame shape 1x3: D = 3, the same model (|diff| %.3g)%s%s", e1, WHY(st, err));
  csde_model_free(M);
  M = NULL;
  const size_t bad_rank[] = {0, CSDE_PLUGIN_MAX_RANK + 1};
  for (int i = 0; i < 2; i++) {
    csde_plugin_run r = {bad_rank[i], {3}, 0, NULL, NULL, NULL};
    st = csde_model_plugin_load_run(&M, path, "", tau, &r, &err);
    char what[64];
    snprintf(what, sizeof what, "load_run refuses %zu frame axes", bad_rank[i]);
    ok_status(st, CSDE_EINVAL, err.msg, "frame axes (expected 1 to 6)", what);
  }
  csde_plugin_run zero = {2, {3, 0}, 0, NULL, NULL, NULL};
  st = csde_model_plugin_load_run(&M, path, "", tau, &zero, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "D = 0", "load_run refuses a zero size");
  st = csde_model_plugin_load_run(&M, path, "", tau, NULL, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "run is NULL", "load_run refuses a NULL run");
  const char *faulty = getenv("CSDE_PLUGIN_FAULTY");
  csde_cov *C = NULL;
  csde_schedule *sc = NULL;
  if (faulty && !csde_cov_alloc(&C, "ar1:rho=0.5", tau, NULL, &err) &&
      !csde_schedule_alloc(&sc, "cosine", &err)) {
    csde_plugin_run told = {2, {3, 2}, 5, C, sc, "reverse-sde"};
    st = csde_model_plugin_load_run(&M, faulty, "echo_run=1", tau, &told, &err);
    ok_status(st, CSDE_EINVAL, err.msg,
              "abi 6, tau 4, D 6, shape 3x2, rank 2, batch 5, C set, sched set, process "
              "reverse-sde", "a plugin is told the shape, batch, C, schedule and process");
    st = csde_model_plugin_load(&M, faulty, "echo_run=1", tau, 6, &err);
    ok_status(st, CSDE_EINVAL, err.msg,
              "abi 6, tau 4, D 6, shape 6, rank 1, batch 0, C NULL, sched NULL, process NULL",
              "csde_model_plugin_load tells one axis of D and nothing else");
  } else {
    ok(0, "CSDE_PLUGIN_FAULTY is not set or the covariance/schedule failed (%s)", err.msg);
  }
  csde_cov_free(C);
  csde_schedule_free(sc);
}

/* ---- HDF5 ---- */

static void h5_write(const char *path, int create, const char *name, int rank,
                     const size_t *dims, const double *data)
{
  hid_t f = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                   : H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hsize_t h[4];
  for (int i = 0; i < rank; i++) h[i] = dims[i];
  hid_t sp = rank ? H5Screate_simple(rank, h, NULL) : H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  H5Dclose(d);
  H5Sclose(sp);
  H5Fclose(f);
}

/* Two models give the same bits on the same input at a few times. */
static int same_output(const csde_model *A, const csde_model *B, size_t n)
{
  double *x = malloc(n * sizeof *x), *ya = malloc(n * sizeof *ya), *yb = malloc(n * sizeof *yb);
  fill(x, n, 4.4);
  int same = 1;
  for (double t = 0.1; t < 1; t += 0.4) {
    int ra = csde_model_call(A, t, 1, x, ya), rb = csde_model_call(B, t, 1, x, yb);
    same &= ra == 0 && rb == 0 && !memcmp(ya, yb, n * sizeof *ya);
  }
  free(x);
  free(ya);
  free(yb);
  return same;
}

static void test_h5(csde_schedule *s)
{
  char dir[] = "/tmp/csde_test_model_XXXXXX";
  if (!mkdtemp(dir)) {
    ok(0, "mkdtemp");
    return;
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  const size_t tau = 4, D = 3, bs = tau * D;
  csde_cov *C = make_cov(tau);
  char f1[256], f2[256], f3[256], f4[256], f5[256];
  snprintf(f1, sizeof f1, "%s/gauss.h5", dir);
  snprintf(f2, sizeof f2, "%s/gauss_frame_mean.h5", dir);
  snprintf(f3, sizeof f3, "%s/gauss_bad.h5", dir);
  snprintf(f4, sizeof f4, "%s/gmm.h5", dir);
  snprintf(f5, sizeof f5, "%s/gmm_bad.h5", dir);
  double S0[16], m[12], mf[4], sc = 0.7;
  ar1_mat(S0, tau, 0.3, 0.8);
  fill(m, bs, 2.2);
  fill(mf, tau, 3.1);
  size_t d2[2] = {tau, tau}, dm[2] = {tau, D}, d1[1] = {tau}, bad[2] = {tau, tau + 1};
  csde_err err = {0};
  csde_model *A = NULL, *B = NULL;

  h5_write(f1, 1, "/frame_cov", 2, d2, S0);
  h5_write(f1, 0, "/mean", 2, dm, m);
  int st = csde_model_gaussian_load(&A, f1, C, s, D, &err);
  st |= csde_model_gaussian_alloc(&B, C, s, D, m, bs, S0, &err);
  ok(st == 0 && csde_model_is_gaussian(A) && same_output(A, B, bs),
     "gaussian from HDF5 (/mean [tau, D]) = gaussian_alloc%s%s", WHY(st, err));
  csde_model_free(A);
  csde_model_free(B);
  A = B = NULL;

  h5_write(f2, 1, "/frame_cov", 2, d2, S0);
  st = csde_model_gaussian_load(&A, f2, C, s, D, &err);
  st |= csde_model_gaussian_alloc(&B, C, s, D, NULL, 0, S0, &err);
  ok(st == 0 && same_output(A, B, bs), "gaussian from HDF5, no /mean: m = 0%s%s", WHY(st, err));
  csde_model_free(A);
  csde_model_free(B);
  A = B = NULL;
  h5_write(f2, 0, "/mean", 1, d1, mf);
  st = csde_model_gaussian_load(&A, f2, C, s, D, &err);
  st |= csde_model_gaussian_alloc(&B, C, s, D, mf, tau, S0, &err);
  ok(st == 0 && same_output(A, B, bs), "gaussian from HDF5, /mean [tau]%s%s", WHY(st, err));
  csde_model_free(A);
  csde_model_free(B);
  A = B = NULL;
  h5_write(f3, 1, "/frame_cov", 2, d2, S0);
  h5_write(f3, 0, "/mean", 0, NULL, &sc);
  st = csde_model_gaussian_load(&A, f3, C, s, D, &err);
  st |= csde_model_gaussian_alloc(&B, C, s, D, &sc, 1, S0, &err);
  ok(st == 0 && same_output(A, B, bs), "gaussian from HDF5, scalar /mean%s%s", WHY(st, err));
  csde_model_free(A);
  csde_model_free(B);
  A = B = NULL;

  double big[64] = {0}; /* enough for every wrong shape below */
  h5_write(f3, 1, "/frame_cov", 2, bad, big);
  st = csde_model_gaussian_load(&A, f3, C, s, D, &err);
  ok_status(st, CSDE_EBADLEN, err.msg, "/frame_cov has shape [4, 5]; expected [4, 4]",
            "gaussian HDF5: wrong /frame_cov shape named");
  size_t d5[1] = {5};
  h5_write(f3, 1, "/frame_cov", 2, d2, S0);
  h5_write(f3, 0, "/mean", 1, d5, big);
  st = csde_model_gaussian_load(&A, f3, C, s, D, &err);
  ok_status(st, CSDE_EBADLEN, err.msg, "/mean has shape [5]; expected a scalar, [4] or [4, 3]",
            "gaussian HDF5: wrong /mean shape named");
  double Sneg[16];
  memcpy(Sneg, S0, sizeof Sneg);
  Sneg[0] = Sneg[5] = -1;
  h5_write(f3, 1, "/frame_cov", 2, d2, Sneg);
  st = csde_model_gaussian_load(&A, f3, C, s, D, &err);
  ok_status(st, CSDE_ENOTPSD, err.msg, "gauss_bad.h5': gaussian model: S0 is not positive",
            "gaussian HDF5: indefinite /frame_cov refused, naming the file");
  h5_write(f3, 1, "/mean", 2, dm, m);
  st = csde_model_gaussian_load(&A, f3, C, s, D, &err);
  ok_status(st, CSDE_EIO, err.msg, "no dataset '/frame_cov'", "gaussian HDF5: no /frame_cov");
  char nofile[300];
  snprintf(nofile, sizeof nofile, "%s/absent.h5", dir);
  st = csde_model_gaussian_load(&A, nofile, C, s, D, &err);
  ok_status(st, CSDE_EIO, err.msg, "absent.h5", "gaussian HDF5: missing file");

  /* gmm */
  double w[GK] = {0.2, 0.5, 0.3}, means[GK * 12], meansf[GK * 4], covs[GK * 16];
  fill(means, GK * bs, 0.5);
  fill(meansf, GK * tau, 1.5);
  gmm_covs(covs, tau);
  size_t dw[1] = {GK}, d3[3] = {GK, tau, D}, dk[2] = {GK, tau}, dc[3] = {GK, tau, tau};
  h5_write(f4, 1, "/weights", 1, dw, w);
  h5_write(f4, 0, "/means", 3, d3, means);
  h5_write(f4, 0, "/frame_covs", 3, dc, covs);
  st = csde_model_gmm_load(&A, f4, C, s, D, &err);
  st |= csde_model_gmm_alloc(&B, C, s, D, GK, w, means, GK * bs, covs, &err);
  ok(st == 0 && csde_model_is_gmm(A) && same_output(A, B, bs),
     "gmm from HDF5 (/means [K, tau, D]) = gmm_alloc%s%s", WHY(st, err));
  csde_model_free(A);
  csde_model_free(B);
  A = B = NULL;
  h5_write(f5, 1, "/weights", 1, dw, w);
  h5_write(f5, 0, "/means", 2, dk, meansf);
  h5_write(f5, 0, "/frame_covs", 3, dc, covs);
  st = csde_model_gmm_load(&A, f5, C, s, D, &err);
  st |= csde_model_gmm_alloc(&B, C, s, D, GK, w, meansf, GK * tau, covs, &err);
  ok(st == 0 && same_output(A, B, bs), "gmm from HDF5 (/means [K, tau]) = gmm_alloc%s%s", WHY(st, err));
  csde_model_free(A);
  csde_model_free(B);
  A = B = NULL;
  size_t dcb[3] = {GK, tau, tau - 1};
  h5_write(f5, 1, "/weights", 1, dw, w);
  h5_write(f5, 0, "/means", 2, dk, meansf);
  h5_write(f5, 0, "/frame_covs", 3, dcb, covs);
  st = csde_model_gmm_load(&A, f5, C, s, D, &err);
  ok_status(st, CSDE_EBADLEN, err.msg, "/frame_covs has shape [3, 4, 3]; expected [3, 4, 4]",
            "gmm HDF5: wrong /frame_covs shape named");
  size_t dmb[3] = {GK, tau, D + 1};
  h5_write(f5, 1, "/weights", 1, dw, w);
  h5_write(f5, 0, "/means", 3, dmb, big);
  st = csde_model_gmm_load(&A, f5, C, s, D, &err);
  ok_status(st, CSDE_EBADLEN, err.msg, "/means has shape [3, 4, 4]; expected [3, 4, 3] or [3, 4]",
            "gmm HDF5: wrong /means shape named");
  h5_write(f5, 1, "/means", 2, dk, meansf);
  st = csde_model_gmm_load(&A, f5, C, s, D, &err);
  ok_status(st, CSDE_EIO, err.msg, "no dataset '/weights'", "gmm HDF5: no /weights");
  ok(A == NULL, "failed loads leave *out NULL");

  unlink(f1);
  unlink(f2);
  unlink(f3);
  unlink(f4);
  unlink(f5);
  rmdir(dir);
  csde_cov_free(C);
}

/* ---- long clips (issue 10, item 12): the gaussian model's S0 as an operator ---- */

static void test_gaussian_spec(csde_schedule *s)
{
  csde_err err = {0};
  csde_cov_params pe = csde_cov_default_params();
  pe.method = CSDE_COV_EMBED;

  /* 1. small tau: the same model as a dense S0 = 0.25 ar1(0.8) (dense parts at alloc) */
  {
    const size_t tau = 6, D = 3, bs = tau * D;
    csde_cov *C = make_cov(tau);
    double S0[36], mean = 1.5, x[2 * 18], y1[2 * 18], y2[2 * 18];
    ar1_mat(S0, tau, 0.25, 0.8);
    csde_model *A = NULL, *B = NULL;
    int st = csde_model_gaussian_alloc(&A, C, s, D, &mean, 1, S0, &err);
    st |= csde_model_gaussian_alloc_spec(&B, C, s, D, &mean, 1, "ar1:rho=0.8", 0.25, &err);
    ok(st == 0 && csde_model_gaussian_has_dense(B), "gaussian alloc_spec(ar1:rho=0.8, 0.25), "
       "tau = 6: dense parts at alloc%s%s", WHY(st, err));
    fill(x, 2 * bs, 0.4);
    st = csde_model_call(A, 0.4, 2, x, y1) | csde_model_call(B, 0.4, 2, x, y2);
    ok(st == 0 && maxdiff(y1, y2, 2 * bs) <= 1e-14 * maxabs(y1, 2 * bs),
       "... its score = the dense-S0 model's (|diff| %.3g)", maxdiff(y1, y2, 2 * bs));
    csde_model_free(A);
    csde_model_free(B);
    csde_cov_free(C);
  }

  /* 2. long clip: the data law N(m, S0) through the S0 operator, no dense parts */
  {
    const size_t tau = quick ? 4096 : 20000, D = 8, batch = 4, N = batch * D;
    const double rho = 0.8, var = 0.25, mean = 1.5;
    csde_cov *C = NULL;
    csde_model *M = NULL;
    int st = csde_cov_alloc(&C, "ar1:rho=0.9", tau, &pe, &err);
    if (!st)
      st = csde_model_gaussian_alloc_spec(&M, C, s, D, &mean, 1, "ar1:rho=0.8", var, &err);
    ok(st == 0 && !csde_model_gaussian_has_dense(M),
       "gaussian alloc_spec, tau = %zu (embed C): builds without dense parts%s%s", tau,
       WHY(st, err));
    double *x = malloc(batch * tau * D * sizeof *x);
    if (!st) st = csde_model_gaussian_sample(M, 0.0, (csde_rng_key){7, 3}, 0, batch, x, &err);
    ok(st == 0 && !csde_model_gaussian_has_dense(M), "... samples its data law at t = 0 "
       "through the operator (still no dense parts)%s%s", WHY(st, err));
    if (!st) {
      /* mean: sd^2 = var sum_j rho^|j| / (N tau) ~ var (1 + rho) / (1 - rho) / (N tau) */
      double mu = 0;
      for (size_t i = 0; i < batch * tau * D; i++) mu += x[i];
      mu /= (double)(batch * tau * D);
      double sdm = sqrt(var * (1 + rho) / (1 - rho) / (double)(N * tau));
      ok(fabs(mu - mean) <= 5 * sdm, "... sample mean %.5f = m = %.5f (|diff| %.2g <= 5 sd "
         "= %.2g)", mu, mean, fabs(mu - mean), 5 * sdm);
      /* lag covariances: var rho^k, sd^2 = var^2 sum_j (rho^2|j| + rho^|j+k| rho^|j-k|)
       * / (N (tau - k)) (Bartlett) */
      const size_t lags[] = {0, 1, 3, 10};
      for (int l = 0; l < 4; l++) {
        size_t k = lags[l];
        double c = 0, v = 0;
        for (size_t b = 0; b < batch; b++)
          for (size_t i = 0; i + k < tau; i++)
            for (size_t p = 0; p < D; p++)
              c += (x[(b * tau + i) * D + p] - mean) * (x[(b * tau + i + k) * D + p] - mean);
        c /= (double)N * (double)(tau - k);
        for (long j = -2000; j <= 2000; j++)
          v += pow(rho, 2.0 * labs(j)) + pow(rho, (double)labs(j + (long)k)) *
                                             pow(rho, (double)labs(j - (long)k));
        double want = var * pow(rho, (double)k), sd = var * sqrt(v / ((double)N * (tau - k)));
        ok(fabs(c - want) <= 5 * sd, "... lag-%zu covariance %.5f = 0.25 * 0.8^%zu = %.5f "
           "(|diff| %.2g <= 5 sd = %.2g)", k, c, k, want, fabs(c - want), 5 * sd);
      }
    }
    free(x);
    csde_model_free(M);
    csde_cov_free(C);
  }

  /* 3. above CSDE_MODEL_DENSE_MAX_TAU: the data law works, the score is refused with the
   * size and the memory (6 matrices of 1e5 x 1e5 doubles = 480 GB) */
  {
    const size_t tau = 100000, D = 1;
    csde_cov *C = NULL;
    csde_model *M = NULL;
    int st = csde_cov_alloc(&C, "ar1:rho=0.9", tau, &pe, &err);
    if (!st) st = csde_model_gaussian_alloc_spec(&M, C, s, D, NULL, 0, "ar1:rho=0.95", 0.25,
                                                 &err);
    ok(st == 0, "gaussian alloc_spec, tau = 100000: builds%s%s", WHY(st, err));
    double *x = malloc(tau * sizeof *x), *y = malloc(tau * sizeof *y);
    if (!st) st = csde_model_gaussian_sample(M, 0.0, (csde_rng_key){1, 1}, 0, 1, x, &err);
    ok(st == 0, "... samples its data law%s%s", WHY(st, err));
    if (M) {
      int rc = csde_model_call(M, 0.5, 1, x, y);
      ok(rc == -1, "... its callback returns -1 (no dense factors at 100000 frames)");
      csde_err_clear(&err);
      st = csde_model_gaussian_prepare(M, &err);
      ok_status(st, CSDE_ENOMEM, err.msg, "tau = 100000 needs 480 GB",
                "... csde_model_gaussian_prepare: ENOMEM with the size and the memory");
      st = csde_model_gaussian_marginal(M, 0.5, NULL, y, &err);
      ok_status(st, CSDE_ENOMEM, err.msg, "dense tau x tau", "... marginal covariance refused");
      st = csde_model_gaussian_sample(M, 0.5, (csde_rng_key){1, 1}, 0, 1, x, &err);
      ok_status(st, CSDE_ENOMEM, err.msg, "480 GB", "... a sample at t = 0.5 refused");
    }
    /* a dense S0, and gmm, refuse at alloc */
    double one = 1;
    csde_model *E = NULL;
    st = csde_model_gaussian_alloc(&E, C, s, D, NULL, 0, &one, &err);
    ok_status(st, CSDE_ENOMEM, err.msg, "tau = 100000 needs 480 GB",
              "gaussian alloc with a dense S0 at 100000 frames: ENOMEM before any allocation");
    st = csde_model_gmm_alloc(&E, C, s, D, 1, &one, x, tau, &one, &err);
    ok_status(st, CSDE_ENOMEM, err.msg, "tau = 100000 needs 240 GB",
              "gmm alloc at 100000 frames (K = 1): ENOMEM with the size and the memory");
    ok(E == NULL, "... and no model");
    free(x);
    free(y);
    csde_model_free(M);
    csde_cov_free(C);
  }
  /* argument errors */
  {
    csde_cov *C = make_cov(4);
    csde_model *E = NULL;
    int st = csde_model_gaussian_alloc_spec(&E, C, s, 1, NULL, 0, "ar1:rho=0.5", 0, &err);
    ok_status(st, CSDE_EDOM, err.msg, "variance 0", "alloc_spec with s0_var = 0: EDOM");
    st = csde_model_gaussian_alloc_spec(&E, C, s, 1, NULL, 0, "ar1:rho=2", 1, &err);
    ok_status(st, CSDE_EDOM, err.msg, "rho", "alloc_spec with S0 ar1:rho=2: the cov's EDOM");
    csde_cov_free(C);
  }
}

int main(void)
{
  csde_init();
  quick = getenv("CSDE_TEST_QUICK") != NULL;
  csde_schedule *s = NULL;
  csde_err err = {0};
  char spec[64];
  snprintf(spec, sizeof spec, "vp-linear:bmin=%g,bmax=%g", BMIN, BMAX);
  int st = csde_schedule_alloc(&s, spec, &err);
  ok(st == 0, "schedule %s%s%s", spec, WHY(st, err));

  test_generic();

  gcase gc, gn;
  if (!gcase_make(&gc, 1, 6, 3, s)) {
    test_gaussian_score(&gc);
    test_gaussian_marginal(&gc);
    test_conversions(&gc);
    test_flow_commuting(&gc);
    test_flow_general(&gc);
    test_gaussian_sample(&gc, 0.5);
  }
  gcase_free(&gc);
  if (!gcase_make(&gn, 0, 6, 3, s)) {
    test_gaussian_score(&gn);
    test_gaussian_marginal(&gn);
    test_conversions(&gn);
    test_flow_general(&gn);
    test_gaussian_sample(&gn, 0.3);
    test_gaussian_sample(&gn, 0.0);
  }
  gcase_free(&gn);
  test_gaussian_errors(s);
  test_gaussian_variants(s);
  for (int c = 0; c < 2; c++) {
    gcase gt;
    if (!gcase_make(&gt, c, 5, 1100, s)) test_gaussian_threads(&gt);
    gcase_free(&gt);
  }

  test_gmm(s);
  test_gaussian_spec(s);
  test_plugin();
  test_h5(s);

  csde_schedule_free(s);
  return tap_done();
}
