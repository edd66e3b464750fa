/* The gmm model's data law p_0 (csde_model_gmm_sample, csde_model_gmm_law) and the
 * built-in model specs (csde_model_spec_alloc): the same bits for any batch split, the
 * components' weights, means and covariances within 5 standard errors of N draws, the
 * factors F F^T = S, and the errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "tap.h"

#define TAU 3
#define D 2

static const double S[2][TAU * TAU] = {
    {1.0, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 1.0},
    {2.0, -0.3, 0.1, -0.3, 0.5, 0.2, 0.1, 0.2, 1.5}};

int main(void)
{
  csde_err err;
  csde_cov *C = NULL;
  csde_schedule *sc = NULL;
  csde_model *M = NULL, *G1 = NULL, *Mg = NULL;
  csde_cov_params cp = csde_cov_default_params();
  if (csde_cov_alloc(&C, "ar1:rho=0.5", TAU, &cp, &err) ||
      csde_schedule_alloc(&sc, "vp-linear", &err)) {
    printf("Bail out! %s\n", err.msg);
    return 1;
  }
  /* two components far apart: +-100 (component 0 below, 1 above), weights 1 : 3 */
  double w[2] = {1.0, 3.0}, mu[2 * TAU], covs[2 * TAU * TAU];
  for (size_t r = 0; r < TAU; r++) {
    mu[r] = -100.0 + (double)r;
    mu[TAU + r] = 100.0 - (double)r;
  }
  memcpy(covs, S, sizeof covs);
  ok(csde_model_gmm_alloc(&M, C, sc, D, 2, w, mu, 2 * TAU, covs, &err) == 0, "gmm alloc");

  /* the law's parts */
  size_t K = 0;
  const double *cum, *means, *fac;
  ok(csde_model_gmm_law(M, &K, &cum, &means, &fac, &err) == 0 && K == 2, "law: K = 2");
  ok(cum[0] == 0.25 && cum[1] == 1.0, "law: cum = [0.25, 1] (%g, %g)", cum[0], cum[1]);
  ok(means[TAU * D + 1 * D + 1] == 99.0, "law: a [K, tau] mean broadcast over pixels");
  double emax = 0;
  for (size_t k = 0; k < 2; k++)
    for (size_t i = 0; i < TAU; i++)
      for (size_t j = 0; j < TAU; j++) {
        double v = 0;
        for (size_t c = 0; c < TAU; c++)
          v += fac[k * TAU * TAU + i * TAU + c] * fac[k * TAU * TAU + j * TAU + c];
        emax = fmax(emax, fabs(v - S[k][i * TAU + j]));
      }
  ok(emax < 1e-13, "law: F_k F_k^T = S_k (max error %.2g)", emax);

  /* the same bits for any batch split */
  csde_rng_key key = {7, CSDE_STREAM_INIT};
  double a[8 * TAU * D], b[8 * TAU * D];
  ok(csde_model_gmm_sample(M, key, 0, 8, a, &err) == 0 &&
         csde_model_gmm_sample(M, key, 0, 3, b, &err) == 0 &&
         csde_model_gmm_sample(M, key, 3, 5, b + 3 * TAU * D, &err) == 0 &&
         memcmp(a, b, sizeof a) == 0,
     "batch 8 = batches 3 + 5, bit for bit");

  /* N draws: the weight of component 1 (0.75), and each component's mean and frame
   * covariance, each within 5 standard errors */
  enum { N = 40000 };
  double *x = malloc((size_t)N * TAU * D * sizeof *x);
  ok(x && csde_model_gmm_sample(M, key, 0, N, x, &err) == 0, "%d draws", N);
  double n1 = 0, m[2][TAU] = {{0}}, cv[2][TAU * TAU] = {{0}}, cnt[2] = {0, 0};
  for (size_t s = 0; s < N; s++) {
    const double *xs = x + s * TAU * D;
    int k = xs[0] > 0;
    n1 += k;
    for (size_t p = 0; p < D; p++) {
      cnt[k] += 1;
      for (size_t i = 0; i < TAU; i++) {
        double di = xs[i * D + p] - mu[k * TAU + i];
        m[k][i] += di;
        for (size_t j = 0; j < TAU; j++) cv[k][i * TAU + j] += di * (xs[j * D + p] - mu[k * TAU + j]);
      }
    }
  }
  double f1 = n1 / N, se = sqrt(0.75 * 0.25 / N);
  ok(fabs(f1 - 0.75) < 5 * se, "component 1's share %.4f = 0.75 +- 5 x %.4f", f1, se);
  double zm = 0, zc = 0;
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < TAU; i++) {
      zm = fmax(zm, fabs(m[k][i] / cnt[k]) / sqrt(S[k][i * TAU + i] / cnt[k]));
      for (size_t j = 0; j < TAU; j++) {
        double sij = S[k][i * TAU + j];
        double sd = sqrt((S[k][i * TAU + i] * S[k][j * TAU + j] + sij * sij) / cnt[k]);
        zc = fmax(zc, fabs(cv[k][i * TAU + j] / cnt[k] - sij) / sd);
      }
    }
  ok(zm < 5, "components' means: largest deviation %.2f standard errors", zm);
  ok(zc < 5, "components' frame covariances: largest deviation %.2f standard errors", zc);
  free(x);

  /* errors */
  char *canon = NULL;
  int gs = csde_model_spec_alloc(&Mg, "gaussian", C, sc, D, &canon, &err);
  ok(gs == 0 && canon && !strcmp(canon, "gaussian:mean=0,std=0.5,rho=0.95"),
     "gaussian spec, canonical '%s'", canon ? canon : "");
  free(canon);
  ok(csde_model_gmm_sample(Mg, key, 0, 1, a, &err) == CSDE_EINVAL, "gaussian: not a gmm (%s)",
     err.msg);
  ok(csde_model_spec_alloc(&G1, "gmm", C, sc, D, &canon, &err) == CSDE_ESPEC && !G1 &&
         strstr(err.msg, "gmm:file=P.h5"),
     "gmm without file: %s", err.msg);
  ok(csde_model_spec_alloc(&G1, "gaussian:std=-1", C, sc, D, &canon, &err) == CSDE_EDOM,
     "gaussian:std=-1: %s", err.msg);
  ok(csde_model_spec_alloc(&G1, "nope:x=1", C, sc, D, &canon, &err) == CSDE_ESPEC &&
         strstr(err.msg, "unknown model 'nope'"),
     "unknown model: %s", err.msg);
  csde_model_free(Mg);
  csde_model_free(M);
  csde_schedule_free(sc);
  csde_cov_free(C);
  return tap_done();
}
