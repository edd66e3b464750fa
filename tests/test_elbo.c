/* TAP test of bits per dimension, the dequantization and the discrete bound (issue 27,
 * items 2 and 3; src/likelihood/bpd.c, elbo.c), on the exact gaussian model with S0 that
 * does not commute with C (S0 is not Toeplitz) and tau = 5 (odd):
 *   (a) bpd of known nats, the offsets -log2(scale) = 7 ([-1, 1)) and 8 ([0, 1));
 *   (b) the dequantization: y in [scale k + shift, scale (k + 1) + shift), the same bits
 *       for a sample alone or in a batch (and in place), refusals of 256, 1.5, -1 and NaN
 *       naming the sample and the index; the spec's parse, its canonical form and the
 *       errors naming the key (param "dequant");
 *   (c) L_T against the closed form computed here (a dense non-Toeplitz C inverted here,
 *       abar_N as the product of the ddpm-linear betas);
 *   (d) the bound over x0 drawn from the data law against the exact nll -log N(x0; m, S0):
 *       mean gap >= 0 within 3 standard errors and shrinking as N grows (N = 25, 100,
 *       1000; betas linspace(0.1 / N, 20 / N), score_sde's discretisation of vp-linear),
 *       for ar1 and mixed C; the table printed as # lines;
 *   (e) the sampled-t estimator against the exact sum, within 4 of its standard errors;
 *   (f) threads 1 vs 2 and batch 4 vs 2 + 2 (first_sample) give the same bits, both
 *       estimators; nfe; the errors (continuous schedule, draws 0, conf, bad dequant).
 * With the argument "print", prints the bound of a fixed case as %a (tests/python's
 * test_elbo.py compares corrsde.elbo with it bit for bit). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "corrsde/likelihood.h"
#include "tap.h"

#define TAU 5
#define DPX 2

static const double M0[TAU] = {0.5, -0.3, 0.8, 0.1, -0.6};
static double S0[TAU * TAU];

/* S0 = 0.25 * 0.6^|i-j| + diag(0.05 (i + 1)): its diagonal varies, so it is not Toeplitz
 * and commutes with neither ar1 nor mixed C. */
static void make_S0(void)
{
  for (int i = 0; i < TAU; i++)
    for (int j = 0; j < TAU; j++)
      S0[i * TAU + j] = 0.25 * pow(0.6, abs(i - j)) + (i == j ? 0.05 * (i + 1) : 0);
}

/* Cholesky A = L L^T in place (lower), n x n; returns log det A. */
static double chol(double *A, int n)
{
  double ld = 0;
  for (int j = 0; j < n; j++) {
    for (int k = 0; k < j; k++) A[j * n + j] -= A[j * n + k] * A[j * n + k];
    A[j * n + j] = sqrt(A[j * n + j]);
    ld += 2 * log(A[j * n + j]);
    for (int i = j + 1; i < n; i++) {
      for (int k = 0; k < j; k++) A[i * n + j] -= A[i * n + k] * A[j * n + k];
      A[i * n + j] /= A[j * n + j];
    }
  }
  return ld;
}

/* v^T A^-1 v from the Cholesky factor L of A */
static double quad(const double *L, const double *v, int n)
{
  double y[TAU * 2], q = 0;
  for (int i = 0; i < n; i++) {
    double s = v[i];
    for (int k = 0; k < i; k++) s -= L[i * n + k] * y[k];
    y[i] = s / L[i * n + i];
    q += y[i] * y[i];
  }
  return q;
}

/* -log N(x; m, S0 (x) I_D) for one tau x DPX block (frame-major) */
static double exact_nll(const double *x)
{
  double L[TAU * TAU], v[TAU];
  memcpy(L, S0, sizeof L);
  double ld = chol(L, TAU), q = 0;
  for (int p = 0; p < DPX; p++) {
    for (int f = 0; f < TAU; f++) v[f] = x[f * DPX + p] - M0[f];
    q += quad(L, v, TAU);
  }
  return 0.5 * (q + DPX * ld + TAU * DPX * log(2 * M_PI));
}

/* ---- (a), (b) ---- */

static void test_bpd(void)
{
  csde_dequant c = csde_dequant_continuous(), q8 = csde_dequant_bits(8), q01 = {8, 1.0 / 256, 0};
  const size_t n = 3 * 64 * 64;
  ok_close(csde_bits_per_dim(3.25 * (double)n * M_LN2, n, &c), 3.25, 1e-15,
           "bpd of 3.25 n ln 2 nats, continuous");
  ok(csde_bits_per_dim(0, n, &q8) == 7, "offset -log2(2/256) = 7 exactly for [-1, 1)");
  ok(csde_bits_per_dim(0, n, &q01) == 8, "offset -log2(1/256) = 8 exactly for [0, 1)");
  ok_close(csde_bits_per_dim(2 * (double)n * M_LN2, n, &q8), 9, 1e-14,
           "bpd of 2 n ln 2 nats, 8-bit in [-1, 1): 2 + 7");
  ok(q8.scale == 2.0 / 256 && q8.shift == -1, "csde_dequant_bits(8): scale 2/256, shift -1");
  ok(isnan(csde_bits_per_dim(1, 0, &c)), "bpd of no values is NaN");
}

static void test_dequant(void)
{
  csde_err err;
  csde_dequant q = csde_dequant_bits(8);
  enum { B = 3, NV = 300 };
  static double k[B * NV], y[B * NV], y1[NV], yin[B * NV];
  for (int i = 0; i < B * NV; i++) k[i] = (double)((i * 37) % 256);
  csde_rng_key key = {42, CSDE_STREAM_DEQUANT};
  int s = csde_dequantize(&q, key, 10, B, NV, k, y, &err);
  int inrange = !s, moved = 0;
  for (int i = 0; i < B * NV && inrange; i++) {
    double lo = q.scale * k[i] + q.shift, hi = q.scale * (k[i] + 1) + q.shift;
    inrange = y[i] >= lo && y[i] <= hi;
    moved += y[i] != lo && y[i] != hi;
  }
  ok(inrange && moved == B * NV, "dequantize: y in [scale k + shift, scale (k+1) + shift], "
     "strictly inside (%d of %d)", moved, B * NV);
  /* mean of u = (y - shift) / scale - k is 1/2 within 4 se (se = sqrt(1/12 / n)) */
  double mu = 0;
  for (int i = 0; i < B * NV; i++) mu += (y[i] - q.shift) / q.scale - k[i];
  mu /= B * NV;
  ok_close(mu, 0.5, 4 * sqrt(1.0 / 12 / (B * NV)), "dequantize: the mean of u is 1/2");
  s = csde_dequantize(&q, key, 11, 1, NV, k + NV, y1, &err);
  ok(!s && !memcmp(y1, y + NV, sizeof y1), "dequantize: sample 11 alone = inside the batch "
     "of 3 from 10 (bits)");
  memcpy(yin, k, sizeof yin);
  s = csde_dequantize(&q, key, 10, B, NV, yin, yin, &err);
  ok(!s && !memcmp(yin, y, sizeof yin), "dequantize in place (y == k): the same bits");
  csde_dequant c = csde_dequant_continuous();
  s = csde_dequantize(&c, key, 0, B, NV, k, yin, &err);
  ok(!s && !memcmp(yin, k, sizeof yin), "dequantize, continuous: a copy");
  csde_rng_key key2 = {43, CSDE_STREAM_DEQUANT};
  csde_dequantize(&q, key2, 10, B, NV, k, yin, &err);
  ok(memcmp(yin, y, sizeof yin) != 0, "dequantize: another seed, other bits");

  static const struct { double v; const char *what; } bad[] = {
    {256, "256"}, {1.5, "1.5"}, {-1, "-1"}, {NAN, "nan"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    double kb[2 * 4] = {0, 1, 2, 3, 4, 5, 6, 7};
    kb[4 + 2] = bad[i].v; /* sample 1 (global 6), index 2 */
    err.param = NULL;
    s = csde_dequantize(&q, key, 5, 2, 4, kb, y, &err);
    char want[64];
    snprintf(want, sizeof want, "sample 6, index 2: %s", bad[i].what);
    ok_status(s, CSDE_EDOM, err.msg, want, "dequantize refuses a value that is not 8-bit");
    ok(err.param && !strcmp(err.param, CSDE_PARAM_DATA), "  blamed on the data");
  }
  csde_dequant q4 = csde_dequant_bits(4);
  double k4[2] = {15, 16};
  s = csde_dequantize(&q4, key, 0, 1, 2, k4, y, &err);
  ok_status(s, CSDE_EDOM, err.msg, "index 1: 16 is not an integer in [0, 16)",
            "4-bit data: 16 refused, 15 taken");
}

static void test_parse(void)
{
  csde_err err;
  csde_dequant q;
  char buf[128];
  int s = csde_dequant_parse("none", &q, &err);
  ok(!s && q.bits == 0, "parse 'none': continuous");
  ok(!strcmp(csde_dequant_spec(&q, buf, sizeof buf), "none"), "spec of continuous: none");
  s = csde_dequant_parse("uniform", &q, &err);
  ok(!s && q.bits == 8 && q.scale == 2.0 / 256 && q.shift == -1,
     "parse 'uniform': 8 bits to [-1, 1)");
  ok(!strcmp(csde_dequant_spec(&q, buf, sizeof buf), "uniform:bits=8,scale=0.0078125,shift=-1"),
     "its canonical spec: %s", buf);
  s = csde_dequant_parse("uniform:bits=10,scale=0.0009765625,shift=0", &q, &err);
  ok(!s && q.bits == 10 && q.scale == 1.0 / 1024 && q.shift == 0, "parse bits, scale, shift");
  csde_dequant r;
  s = csde_dequant_parse(csde_dequant_spec(&q, buf, sizeof buf), &r, &err);
  ok(!s && q.bits == r.bits && q.scale == r.scale && q.shift == r.shift, "the spec reads "
     "back: %s", buf);
  s = csde_dequant_parse("uniform:bits=5", &q, &err);
  ok(!s && q.scale == 2.0 / 32, "bits=5: scale 2/32 by default");

  static const struct { const char *spec, *key; int status; } bad[] = {
    {"uniform:bits=17", "bits = 17", CSDE_EDOM},
    {"uniform:bits=0", "bits=0", CSDE_ESPEC},
    {"uniform:bits=x", "bits=x", CSDE_ESPEC},
    {"uniform:scale=-0.5", "scale = -0.5", CSDE_EDOM},
    {"uniform:scale=abc", "scale=abc", CSDE_ESPEC},
    {"uniform:shift=inf", "shift=inf", CSDE_ESPEC},
    {"uniform:offset=1", "offset", CSDE_ESPEC},
    {"gaussian", "gaussian", CSDE_ESPEC}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    err.param = NULL;
    q.bits = 99;
    s = csde_dequant_parse(bad[i].spec, &q, &err);
    ok_status(s, bad[i].status, err.msg, bad[i].key, bad[i].spec);
    ok(err.param && !strcmp(err.param, CSDE_PARAM_DEQUANT) && q.bits == 0,
       "  blamed on dequant, the rule left continuous");
  }
}

/* ---- the bound ---- */

typedef struct {
  csde_cov *C;
  csde_schedule *S;
  csde_model *M;
} setup;

static int make(setup *u, const char *cov, int dense_mat, size_t N, csde_err *err)
{
  memset(u, 0, sizeof *u);
  csde_cov_params cp = csde_cov_default_params();
  cp.method = CSDE_COV_DENSE;
  int s;
  if (dense_mat) { /* a dense C that is not Toeplitz: 0.7^|i-j| + diag(0.1 i) */
    double Cm[TAU * TAU];
    for (int i = 0; i < TAU; i++)
      for (int j = 0; j < TAU; j++) Cm[i * TAU + j] = pow(0.7, abs(i - j)) + (i == j ? 0.1 * i : 0);
    s = csde_cov_alloc_dense(&u->C, Cm, TAU, &cp, err);
  } else {
    s = csde_cov_alloc(&u->C, cov, TAU, &cp, err);
  }
  char spec[128];
  snprintf(spec, sizeof spec, "ddpm-linear:n=%zu,b1=%.17g,bN=%.17g", N, 0.1 / (double)N,
           20 / (double)N);
  if (!s) s = csde_schedule_alloc(&u->S, spec, err);
  if (!s) s = csde_model_gaussian_alloc(&u->M, u->C, u->S, DPX, M0, TAU, S0, err);
  return s;
}

static void unmake(setup *u)
{
  csde_model_free(u->M);
  csde_schedule_free(u->S);
  csde_cov_free(u->C);
}

static csde_problem problem(const setup *u, size_t batch)
{
  csde_problem P = csde_problem_default();
  P.tau = TAU;
  P.D = DPX;
  P.batch = batch;
  P.C = u->C;
  P.sched = u->S;
  P.model = u->M;
  return P;
}

/* x0 of batch samples from the data law (t = 0), global samples first.. */
static void data(const setup *u, size_t first, size_t batch, double *x)
{
  csde_err err;
  csde_rng_key key = {7, 0};
  csde_model_gaussian_sample(u->M, 0, key, first, batch, x, &err);
}

static void test_LT(void)
{
  csde_err err;
  setup u;
  const size_t N = 25;
  if (make(&u, NULL, 1, N, &err)) {
    ok(0, "setup: %s", err.msg);
    return;
  }
  enum { B = 3 };
  double x[B * TAU * DPX];
  data(&u, 0, B, x);
  csde_problem P = problem(&u, B);
  csde_elbo_params par = csde_elbo_default_params();
  csde_elbo_sample out[B];
  int s = csde_elbo(&P, &par, x, out, NULL, &err);
  ok(!s, "elbo on a dense non-Toeplitz C: %s", s ? err.msg : "ok");
  /* abar_N = prod (1 - beta_i), betas linspace(0.1/N, 20/N); C inverted here */
  long double ab = 1, b1 = 0.1L / N, bN = 20.0L / N; /* long double: 1 - ab - 1 cancels */
  for (size_t i = 0; i < N; i++) ab *= 1 - (b1 + (long double)i * (bN - b1) / (N - 1));
  double L[TAU * TAU];
  csde_cov_matrix(u.C, L);
  chol(L, TAU);
  double worst = 0;
  for (int b = 0; b < B; b++) {
    double q = 0, v[TAU];
    for (int p = 0; p < DPX; p++) {
      for (int f = 0; f < TAU; f++) v[f] = x[(b * TAU + f) * DPX + p];
      q += quad(L, v, TAU);
    }
    /* 1/2 sum_pixels [tau (1 - ab) - tau - tau log(1 - ab) + ab x^T C^-1 x], with
     * -ab - log(1 - ab) = sum_{k>=2} ab^k / k summed as a series (no cancellation, so the
     * reference holds where long double is double, e.g. under valgrind) */
    long double ser = 0, pw = ab;
    for (int k = 2; k < 40; k++) ser += (pw *= ab) / k;
    long double LT = 0.5L * (DPX * TAU * ser + ab * q);
    double e = (double)(fabsl(out[b].LT - LT) / fabsl(LT));
    if (e > worst) worst = e;
  }
  ok(!s && worst < 1e-12, "L_T = the KL to N(0, C), closed form (N = %zu, abar_N = %.3g): "
     "relative error %.2g", N, (double)ab, worst);
  ok(!s && out[0].nll == out[0].LT + out[0].Lsum + out[0].L0, "nll = L_T + Lsum + L_0");
  ok(!s && isnan(out[0].se) && isnan(out[0].lo), "one draw per term: se and interval NaN");
  ok(!s && out[0].bpd == csde_bits_per_dim(out[0].nll, TAU * DPX, &par.dequant),
     "bpd = csde_bits_per_dim(nll)");
  unmake(&u);
}

/* mean and standard error of gap_b = nll_b - exact_b over B samples */
static void gap_stats(const csde_elbo_sample *o, const double *x, size_t B, double *m,
                      double *se)
{
  double s = 0, s2 = 0;
  for (size_t b = 0; b < B; b++) {
    double g = o[b].nll - exact_nll(x + b * TAU * DPX);
    s += g;
    s2 += g * g;
  }
  *m = s / (double)B;
  *se = sqrt((s2 / (double)B - *m * *m) / (double)(B - 1));
}

/* tr(A^-1 Bm) for tau x tau A (SPD) and Bm */
static double trinv(const double *A, const double *Bm)
{
  double L[TAU * TAU], col[TAU], y[TAU], tr = 0;
  memcpy(L, A, sizeof L);
  chol(L, TAU);
  for (int j = 0; j < TAU; j++) {
    for (int i = 0; i < TAU; i++) col[i] = Bm[i * TAU + j];
    for (int i = 0; i < TAU; i++) { /* L y = col */
      double v = col[i];
      for (int k = 0; k < i; k++) v -= L[i * TAU + k] * y[k];
      y[i] = v / L[i * TAU + i];
    }
    for (int i = TAU - 1; i >= 0; i--) { /* L^T x = y, x into y */
      double v = y[i];
      for (int k = i + 1; k < TAU; k++) v -= L[k * TAU + i] * y[k];
      y[i] = v / L[i * TAU + i];
    }
    tr += y[j];
  }
  return tr;
}

/* The expected gap E_x0[bound] - E_x0[-log N(x0; m, S0)] in closed form, computed here
 * from the betas linspace(0.1/N, 20/N): with the exact model delta_theta = E[delta | x_t],
 * so E|delta - delta_theta|^2_{C^-1} = D tr(I - (1 - abar_t) Sigma_t^-1 C), Sigma_t =
 * abar_t S0 + (1 - abar_t) C, and
 *   E L_T     = D/2 [-tau abar_N - tau log(1 - abar_N) + abar_N tr(C^-1 (S0 + m m^T))]
 *   E L_{t-1} = w_t D [tau - (1 - abar_t) tr(Sigma_t^-1 C)]
 *   E L_0     = D/2 [tau log(2 pi beta_1) + log det C] + D/(2 alpha_1) [tau - beta_1
 *               tr(Sigma_1^-1 C)]
 *   entropy   = D/2 [tau log(2 pi e) + log det S0]. */
static double expected_gap(const double *Cm, size_t N, double *EL0)
{
  const double b1 = 0.1 / (double)N, bN = 20.0 / (double)N;
  double ab = 1, abp = 1, Sig[TAU * TAU], L[TAU * TAU], E = 0;
  for (size_t t = 1; t <= N; t++) {
    double beta = b1 + (double)(t - 1) * (bN - b1) / (double)(N - 1);
    abp = ab;
    ab *= 1 - beta;
    for (int i = 0; i < TAU * TAU; i++) Sig[i] = ab * S0[i] + (1 - ab) * Cm[i];
    double tr = trinv(Sig, Cm);
    if (t == 1) {
      memcpy(L, Cm, sizeof L);
      double ldC = chol(L, TAU);
      *EL0 = 0.5 * DPX * (TAU * log(2 * M_PI * beta) + ldC) +
             DPX / (2 * (1 - beta)) * (TAU - beta * tr);
      E += *EL0;
    } else {
      double w = beta / (2 * (1 - beta) * (1 - abp));
      E += w * DPX * (TAU - (1 - ab) * tr);
    }
  }
  double mm[TAU * TAU];
  for (int i = 0; i < TAU; i++)
    for (int j = 0; j < TAU; j++) mm[i * TAU + j] = S0[i * TAU + j] + M0[i] * M0[j];
  E += 0.5 * DPX * (-TAU * ab - TAU * log(1 - ab) + ab * trinv(Cm, mm));
  memcpy(L, S0, sizeof L);
  return E - 0.5 * DPX * (TAU * log(2 * M_PI * M_E) + chol(L, TAU));
}

static void test_gap(const char *cov, int nn, size_t B)
{
  enum { NN = 4 };
  const size_t Ns[NN] = {25, 100, 1000, 10000};
  double *x = malloc(B * TAU * DPX * sizeof *x);
  csde_elbo_sample *o = malloc(B * sizeof *o);
  double gm[NN], gse[NN], ge[NN];
  int fine = 1;
  printf("# gap table, C = %s, tau %d, DPX %d, %zu samples x0 ~ N(m, S0), 4 draws per term, "
         "exact sum over t:\n#   N     mean gap (nats)   se     expected gap   L_T      L_0       nfe\n",
         cov, TAU, DPX, B);
  for (int i = 0; i < nn; i++) {
    csde_err err;
    setup u;
    if (make(&u, cov, 0, Ns[i], &err)) {
      ok(0, "setup: %s", err.msg);
      fine = 0;
      break;
    }
    data(&u, 0, B, x);
    csde_problem P = problem(&u, B);
    csde_elbo_params par = csde_elbo_default_params();
    par.seed = 3;
    par.draws = 4;
    size_t nfe = 0;
    int s = csde_elbo(&P, &par, x, o, &nfe, &err);
    if (s) {
      ok(0, "elbo N = %zu: %s", Ns[i], err.msg);
      fine = 0;
      unmake(&u);
      break;
    }
    gap_stats(o, x, B, gm + i, gse + i);
    double lt = 0, l0 = 0, Cm[TAU * TAU];
    for (size_t b = 0; b < B; b++) lt += o[b].LT / (double)B, l0 += o[b].L0 / (double)B;
    csde_cov_matrix(u.C, Cm);
    double el0 = 0, l0s = 0;
    ge[i] = expected_gap(Cm, Ns[i], &el0);
    for (size_t b = 0; b < B; b++) l0s += (o[b].L0 - l0) * (o[b].L0 - l0);
    l0s = sqrt(l0s / (double)(B - 1) / (double)B);
    ok(fabs(l0 - el0) < 4 * l0s, "C %s, N = %zu: mean L_0 %.5g = its closed form %.5g "
       "within 4 se (%.2g)", cov, Ns[i], l0, el0, l0s);
    printf("# %5zu  %14.6f  %9.6f  %12.6f  %8.5f %9.4f %6zu\n", Ns[i], gm[i], gse[i], ge[i],
           lt, l0, nfe);
    ok(fabs(gm[i] - ge[i]) < 4 * gse[i], "C %s, N = %zu: the mean gap %.4g = the expected "
       "gap in closed form %.4g within 4 se (%.2g)", cov, Ns[i], gm[i], ge[i], gse[i]);
    ok(nfe == 4 * Ns[i], "nfe per sample = 4 N = %zu (got %zu)", 4 * Ns[i], nfe);
    ok(gm[i] > -3 * gse[i], "C %s, N = %zu: the bound sits above -log p: gap %.4g >= -3 se "
       "(se %.2g)", cov, Ns[i], gm[i], gse[i]);
    unmake(&u);
  }
  if (fine)
    for (int i = 0; i + 1 < nn; i++) {
      double sd = sqrt(gse[i] * gse[i] + gse[i + 1] * gse[i + 1]);
      ok(gm[i] - gm[i + 1] > 3 * sd && ge[i] > ge[i + 1] && ge[i + 1] > 0,
         "C %s: the gap shrinks from N = %zu to %zu: %.4g -> %.4g (by > 3 se, %.2g; closed "
         "form %.4g -> %.4g > 0)", cov, Ns[i], Ns[i + 1], gm[i], gm[i + 1], sd, ge[i],
         ge[i + 1]);
    }
  free(x);
  free(o);
}

/* the sampled-t estimator against the exact sum, per batch mean */
static void test_sampled(void)
{
  csde_err err;
  setup u;
  const size_t N = 100, B = 40, K = 50;
  if (make(&u, "ar1:rho=0.8", 0, N, &err)) {
    ok(0, "setup: %s", err.msg);
    return;
  }
  double *x = malloc(B * TAU * DPX * sizeof *x);
  csde_elbo_sample *ex = malloc(B * sizeof *ex), *sa = malloc(B * sizeof *sa);
  data(&u, 0, B, x);
  csde_problem P = problem(&u, B);
  csde_elbo_params par = csde_elbo_default_params();
  par.seed = 11;
  par.draws = 4;
  size_t nfe_e = 0, nfe_s = 0;
  int s = csde_elbo(&P, &par, x, ex, &nfe_e, &err);
  par.tdraws = K;
  par.draws = 2;
  if (!s) s = csde_elbo(&P, &par, x, sa, &nfe_s, &err);
  ok(!s, "exact and sampled: %s", s ? err.msg : "ok");
  if (!s) {
    double me = 0, ms = 0, v = 0, cover = 0;
    for (size_t b = 0; b < B; b++) {
      me += ex[b].nll / (double)B;
      ms += sa[b].nll / (double)B;
      /* the exact sum's own spread counts too (4 draws per term) */
      v += (sa[b].se * sa[b].se + ex[b].se * ex[b].se) / (double)(B * B);
      cover += sa[b].lo <= ex[b].nll && ex[b].nll <= sa[b].hi;
    }
    printf("# sampled t (K = %zu, 2 draws) vs exact sum (4 draws), N = %zu, %zu samples: "
           "%.5f vs %.5f, se %.3g; per-sample se %.3g; 95%% intervals cover the exact "
           "value %g of %zu; nfe %zu vs %zu\n", K, N, B, ms, me, sqrt(v), sa[0].se, cover, B,
           nfe_s, nfe_e);
    ok(fabs(ms - me) < 4 * sqrt(v), "sampled t agrees with the exact sum: |%.4g| < 4 se "
       "(%.3g)", ms - me, sqrt(v));
    ok(isfinite(sa[0].se) && sa[0].se > 0 && sa[0].lo < sa[0].nll && sa[0].nll < sa[0].hi,
       "sampled: finite se and an interval around nll");
    ok(isfinite(ex[0].se) && ex[0].se > 0, "exact sum with 4 draws: finite se");
    ok(nfe_e == N * 4 && nfe_s == 2 * K * 2, "nfe per sample: N draws (%zu), 2 K draws (%zu)",
       nfe_e, nfe_s);
    ok(cover >= 0.8 * B, "sampled intervals cover the exact value for most samples (%g of "
       "%zu)", cover, B);
  }
  free(x);
  free(ex);
  free(sa);
  unmake(&u);
}

static void test_bits(void)
{
  csde_err err;
  setup u;
  if (make(&u, "mixed:r=0.5", 0, 30, &err)) {
    ok(0, "setup: %s", err.msg);
    return;
  }
  enum { B = 4 };
  double x[B * TAU * DPX];
  data(&u, 0, B, x);
  for (int mode = 0; mode < 2; mode++) {
    csde_elbo_params par = csde_elbo_default_params();
    par.seed = 5;
    par.draws = 3;
    par.tdraws = mode ? 6 : 0;
    csde_elbo_sample a[B], b[B], c[B];
    csde_problem P = problem(&u, B);
    int s = csde_elbo(&P, &par, x, a, NULL, &err);
    par.threads = 2;
    if (!s) s = csde_elbo(&P, &par, x, b, NULL, &err);
    par.threads = 1;
    P.batch = 2;
    if (!s) s = csde_elbo(&P, &par, x, c, NULL, &err);
    par.first_sample = 2;
    if (!s) s = csde_elbo(&P, &par, x + 2 * TAU * DPX, c + 2, NULL, &err);
    ok(!s && !memcmp(a, b, sizeof a), "%s: threads 1 and 2 give the same bits",
       mode ? "sampled" : "exact");
    ok(!s && !memcmp(a, c, sizeof a), "%s: batch 4 and 2 + 2 (first_sample) give the same "
       "bits", mode ? "sampled" : "exact");
    par.first_sample = 0;
    par.seed = 6;
    P.batch = B;
    if (!s) s = csde_elbo(&P, &par, x, c, NULL, &err);
    ok(!s && c[0].Lsum != a[0].Lsum && c[0].LT == a[0].LT, "%s: another seed, another Lsum, "
       "the same L_T", mode ? "sampled" : "exact");
  }
  unmake(&u);
}

static void test_errors(void)
{
  csde_err err;
  setup u;
  if (make(&u, "ar1:rho=0.8", 0, 30, &err)) {
    ok(0, "setup: %s", err.msg);
    return;
  }
  double x[TAU * DPX];
  data(&u, 0, 1, x);
  csde_elbo_sample o;
  csde_problem P = problem(&u, 1);
  csde_elbo_params par = csde_elbo_default_params();
  csde_schedule *vp;
  csde_schedule_alloc(&vp, "vp-linear", &err);
  P.sched = vp;
  err.param = NULL;
  int s = csde_elbo(&P, &par, x, &o, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "discrete schedule", "a continuous schedule refused");
  ok(err.param && !strcmp(err.param, CSDE_PARAM_SCHEDULE), "  blamed on the schedule");
  P.sched = u.S;
  par.draws = 0;
  s = csde_elbo(&P, &par, x, &o, NULL, &err);
  ok_status(s, CSDE_EDOM, err.msg, "draws = 0", "draws 0 refused");
  par.draws = 1;
  par.conf = 1;
  s = csde_elbo(&P, &par, x, &o, NULL, &err);
  ok_status(s, CSDE_EDOM, err.msg, "conf = 1", "conf 1 refused");
  par.conf = 0.95;
  par.dequant.bits = 8;
  par.dequant.scale = 0;
  err.param = NULL;
  s = csde_elbo(&P, &par, x, &o, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "scale = 0", "a dequant rule with scale 0 refused");
  ok(err.param && !strcmp(err.param, CSDE_PARAM_DEQUANT), "  blamed on dequant");
  par.dequant = csde_dequant_continuous();
  x[3] = NAN;
  err.param = NULL;
  s = csde_elbo(&P, &par, x, &o, NULL, &err);
  ok_status(s, CSDE_EDOM, err.msg, "index 3", "a NaN in x0 refused, naming the index");
  ok(err.param && !strcmp(err.param, CSDE_PARAM_DATA), "  blamed on the data");
  P.model = NULL;
  s = csde_elbo(&P, &par, x, &o, NULL, &err);
  ok_status(s, CSDE_EINVAL, err.msg, "model", "no model refused");
  csde_schedule_free(vp);
  unmake(&u);
}

/* The case tests/python/test_elbo.py recomputes with corrsde.elbo: ar1:rho=0.8 dense C,
 * ddpm-linear:n=50 (betas linspace(0.1/50, 20/50)), the built-in spec model
 * gaussian:mean=0.3,std=0.5,rho=0.6, x0 = 3 samples of its data law (key {7, 0}),
 * draws 2, seed 9, and the same with tdraws 4. Prints the schedule's spec, x0, then per
 * sample nll LT Lsum L0 se lo hi bpd, then nfe, each as %a; then the sampled case. */
static int print_case(void)
{
  csde_err err;
  setup u;
  if (make(&u, "ar1:rho=0.8", 0, 50, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  csde_model_free(u.M);
  u.M = NULL;
  char *canon = NULL;
  int st = csde_model_spec_alloc(&u.M, "gaussian:mean=0.3,std=0.5,rho=0.6", u.C, u.S, DPX,
                                 &canon, &err);
  free(canon);
  if (st) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  enum { B = 3 };
  double x[B * TAU * DPX];
  data(&u, 0, B, x);
  printf("%s\n", csde_schedule_spec(u.S));
  for (int i = 0; i < B * TAU * DPX; i++) printf("%a%c", x[i], i + 1 < B * TAU * DPX ? ' ' : '\n');
  for (int mode = 0; mode < 2; mode++) {
    csde_problem P = problem(&u, B);
    csde_elbo_params par = csde_elbo_default_params();
    par.draws = 2;
    par.seed = 9;
    par.tdraws = mode ? 4 : 0;
    csde_elbo_sample o[B];
    size_t nfe;
    if (csde_elbo(&P, &par, x, o, &nfe, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    for (int b = 0; b < B; b++)
      printf("%a %a %a %a %a %a %a %a\n", o[b].nll, o[b].LT, o[b].Lsum, o[b].L0, o[b].se,
             o[b].lo, o[b].hi, o[b].bpd);
    printf("%zu\n", nfe);
  }
  unmake(&u);
  return 0;
}

int main(int argc, char **argv)
{
  make_S0();
  if (argc > 1 && !strcmp(argv[1], "print")) return print_case();
  const int slow = argc > 1 && !strcmp(argv[1], "gap");
  const int quick = getenv("CSDE_TEST_QUICK") != NULL;
  if (slow) {
    test_gap("ar1:rho=0.8", 4, 2000);
    test_gap("mixed:r=0.5", 4, 2000);
  } else {
    test_bpd();
    test_dequant();
    test_parse();
    test_LT();
    test_gap("ar1:rho=0.8", quick ? 2 : 3, quick ? 100 : 400);
    test_sampled();
    test_bits();
    test_errors();
  }
  return tap_done();
}
