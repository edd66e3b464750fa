/* Tests for corrsde/discrete.h: the discrete correlated-noise diffusion (MATH.md eqs. 1-3).
 * References are built independently with dense linear algebra (GSL) from the tau x tau
 * matrix C and long-double products of the betas. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>

#include "corrsde/cov.h"
#include "corrsde/discrete.h"
#include "corrsde/schedule.h"
#include "tap.h"

static const char *const COV_SPEC = "ar1:rho=0.9";

static double rel(double got, double want)
{
  return fabs(got - want) / fmax(fabs(want), DBL_MIN);
}

/* Deterministic inputs, O(1), different per array (seed). */
static void fill(double *x, size_t n, double seed)
{
  for (size_t i = 0; i < n; i++)
    x[i] = sin(1.37 * (double)i + seed) + 0.5 * cos(0.11 * (double)i * seed + 1);
}

/* Reference abar_i and 1 - abar_i from a long-double product of the betas. */
static void ref_abar(const csde_schedule *s, size_t i, double *abar, double *om)
{
  long double p = 1;
  for (size_t k = 1; k <= i; k++) p *= 1.0L - (long double)csde_schedule_beta_step(s, k);
  *abar = (double)p;
  *om = (double)(1.0L - p);
}

static csde_cov *make_cov(const char *spec, size_t tau)
{
  csde_cov *C = NULL;
  csde_err err = {0};
  int st = csde_cov_alloc(&C, spec, tau, NULL, &err);
  ok(st == 0 && C, "cov '%s' tau %zu%s%s", spec, tau, st ? ": " : "", st ? err.msg : "");
  return C;
}

static csde_cov_ws *make_ws(const csde_cov *C, size_t D, int nthreads)
{
  csde_cov_ws *ws = NULL;
  csde_err err = {0};
  int st = csde_cov_ws_alloc(&ws, C, D, nthreads, &err);
  ok(st == 0 && ws && csde_cov_ws_D(ws) == D, "cov workspace D = %zu%s%s", D,
     st ? ": " : "", st ? err.msg : "");
  return ws;
}

/* ---- coefficients against their definitions ---- */

static void check_coef(const csde_schedule *s, size_t t)
{
  csde_discrete_coef c;
  csde_err err = {0};
  int st = csde_discrete_coef_at(s, t, &c, &err);
  double ab, om, abp, omp;
  ref_abar(s, t, &ab, &om);
  ref_abar(s, t - 1, &abp, &omp);
  double beta = csde_schedule_beta_step(s, t), alpha = 1 - beta;
  double w = 0;
  w = fmax(w, rel(c.abar, ab));
  w = fmax(w, rel(c.abar_prev, abp));
  w = fmax(w, rel(c.beta, beta) + rel(c.alpha, alpha));
  w = fmax(w, rel(c.mean_x0, sqrt(abp) * beta / om));
  w = fmax(w, t == 1 ? fabs(c.mean_xt) : rel(c.mean_xt, sqrt(alpha) * omp / om));
  w = fmax(w, t == 1 ? fabs(c.var) : rel(c.var, omp / om * beta));
  w = fmax(w, rel(c.noise_coef, beta / sqrt(om)));
  w = fmax(w, t == 1 ? fabs(c.elbo_weight) : rel(c.elbo_weight, beta / (2 * alpha * omp)));
  ok(!st && w <= 1e-12, "coef_at t = %zu against eq. 2/3 from prod(1 - beta) (rel %.3g)", t, w);
  if (t >= 2) {
    /* KL(N(mu, var C) || N(mu_theta, var C)) = |mu - mu_theta|^2_{C^-1} / (2 var) with
     * mu - mu_theta = noise_coef / sqrt(alpha) (delta_theta - delta): the eq. 3 weight */
    double kl_w = c.noise_coef * c.noise_coef / (c.alpha * 2 * c.var);
    ok(rel(c.elbo_weight, kl_w) <= 1e-13,
       "t = %zu: elbo_weight = noise_coef^2 / (2 alpha var) (the KL weight)", t);
  }
}

/* ---- eq. 2 against the Bayes posterior of the joint Gaussian, per pixel ---- */

static void check_posterior_bayes(const csde_schedule *s, size_t t, const double *Cm,
                                  size_t tau)
{
  const size_t D = 3, nblk = 2, n = nblk * tau * D;
  double *x0 = malloc(n * sizeof *x0), *xt = malloc(n * sizeof *xt);
  double *mu = malloc(n * sizeof *mu);
  fill(x0, n, 0.3);
  fill(xt, n, 1.9);
  double var = -1;
  csde_err err = {0};
  int st = csde_discrete_posterior(s, t, n, x0, xt, mu, &var, &err);

  double abp, omp, ab, om;
  ref_abar(s, t - 1, &abp, &omp);
  ref_abar(s, t, &ab, &om);
  double beta = csde_schedule_beta_step(s, t), alpha = 1 - beta;
  /* X_{t-1} | X_0 ~ N(m1, S11), m1 = sqrt(abar_{t-1}) x0, S11 = (1-abar_{t-1}) C;
   * X_t | X_{t-1} ~ N(sqrt(alpha) X_{t-1}, beta C), so
   * S12 = sqrt(alpha) S11, S22 = alpha S11 + beta C, m2 = sqrt(alpha) m1;
   * X_{t-1} | X_t, X_0: mean m1 + S12 S22^-1 (xt - m2), cov S11 - S12 S22^-1 S12. */
  gsl_matrix *S22 = gsl_matrix_alloc(tau, tau), *K = gsl_matrix_alloc(tau, tau);
  gsl_vector *r = gsl_vector_alloc(tau), *col = gsl_vector_alloc(tau);
  for (size_t i = 0; i < tau; i++)
    for (size_t j = 0; j < tau; j++)
      gsl_matrix_set(S22, i, j, (alpha * omp + beta) * Cm[i * tau + j]);
  gsl_linalg_cholesky_decomp1(S22);
  /* K = S22^-1 S12 (columns by Cholesky solves); cov = S11 - S12 K */
  for (size_t j = 0; j < tau; j++) {
    for (size_t i = 0; i < tau; i++) gsl_vector_set(col, i, sqrt(alpha) * omp * Cm[i * tau + j]);
    gsl_linalg_cholesky_svx(S22, col);
    gsl_matrix_set_col(K, j, col);
  }
  double wcov = 0;
  for (size_t i = 0; i < tau; i++)
    for (size_t j = 0; j < tau; j++) {
      double cov = omp * Cm[i * tau + j];
      for (size_t k = 0; k < tau; k++)
        cov -= sqrt(alpha) * omp * Cm[i * tau + k] * gsl_matrix_get(K, k, j);
      wcov = fmax(wcov, fabs(cov - var * Cm[i * tau + j]));
    }
  double wmean = 0;
  for (size_t b = 0; b < nblk; b++)
    for (size_t p = 0; p < D; p++) {
      const size_t base = b * tau * D + p;
      for (size_t i = 0; i < tau; i++)
        gsl_vector_set(r, i, xt[base + i * D] - sqrt(alpha) * sqrt(abp) * x0[base + i * D]);
      gsl_linalg_cholesky_svx(S22, r); /* S22^-1 (xt - m2) */
      for (size_t i = 0; i < tau; i++) {
        double m = sqrt(abp) * x0[base + i * D];
        for (size_t k = 0; k < tau; k++)
          m += sqrt(alpha) * omp * Cm[i * tau + k] * gsl_vector_get(r, k);
        wmean = fmax(wmean, fabs(mu[base + i * D] - m));
      }
    }
  ok(!st && wmean <= 1e-12, "t = %zu: eq. 2 mean = Bayes posterior mean (|diff| %.3g)", t,
     wmean);
  ok(!st && wcov <= 1e-12, "t = %zu: Bayes posterior covariance = beta~ C (|diff| %.3g)", t,
     wcov);
  gsl_matrix_free(S22);
  gsl_matrix_free(K);
  gsl_vector_free(r);
  gsl_vector_free(col);
  free(x0);
  free(xt);
  free(mu);
}

/* ---- mu_theta with the true delta is the posterior mean given the true x0 ---- */

static void check_mu_identity(const csde_schedule *s, size_t t)
{
  const size_t n = 4 * 7 * 3;
  double x0[4 * 7 * 3], delta[4 * 7 * 3], xt[4 * 7 * 3], mu[4 * 7 * 3], mut[4 * 7 * 3];
  fill(x0, n, 0.8);
  fill(delta, n, 2.6);
  csde_discrete_coef c;
  double om, ab;
  ref_abar(s, t, &ab, &om);
  csde_discrete_coef_at(s, t, &c, NULL);
  for (size_t i = 0; i < n; i++) xt[i] = sqrt(ab) * x0[i] + sqrt(om) * delta[i]; /* eq. 1 */
  int st = csde_discrete_posterior(s, t, n, x0, xt, mu, NULL, NULL);
  st |= csde_discrete_mu_from_noise(s, t, n, xt, delta, mut, NULL);
  double w = 0;
  for (size_t i = 0; i < n; i++) w = fmax(w, fabs(mu[i] - mut[i]));
  ok(!st && w <= 1e-12, "t = %zu: mu_theta(xt, true delta) = posterior mean (|diff| %.3g)", t,
     w);
}

/* ---- eq. 3 against a dense C^-1 quadratic form ---- */

static void check_loss(const csde_schedule *s, const csde_cov *C, csde_cov_ws *ws,
                       const double *Cm, size_t tau, size_t D)
{
  const size_t nblk = 3, n = nblk * tau * D;
  double *d = malloc(n * sizeof *d), *dt = malloc(n * sizeof *dt);
  fill(d, n, 0.4);
  fill(dt, n, 3.1);
  gsl_matrix *Ci = gsl_matrix_alloc(tau, tau);
  for (size_t i = 0; i < tau; i++)
    for (size_t j = 0; j < tau; j++) gsl_matrix_set(Ci, i, j, Cm[i * tau + j]);
  gsl_linalg_cholesky_decomp1(Ci);
  gsl_linalg_cholesky_invert(Ci);
  /* q_b = sum_p (d - dt)_p^T C^-1 (d - dt)_p */
  double q[3] = {0, 0, 0};
  for (size_t b = 0; b < nblk; b++)
    for (size_t p = 0; p < D; p++)
      for (size_t i = 0; i < tau; i++)
        for (size_t j = 0; j < tau; j++) {
          size_t ki = b * tau * D + i * D + p, kj = b * tau * D + j * D + p;
          q[b] += (d[ki] - dt[ki]) * gsl_matrix_get(Ci, i, j) * (d[kj] - dt[kj]);
        }
  const size_t ts[] = {1, 2, 250, 1000};
  for (size_t k = 0; k < 4; k++) {
    size_t t = ts[k];
    csde_discrete_coef c;
    csde_discrete_coef_at(s, t, &c, NULL);
    for (int unw = 0; unw <= 1; unw++) {
      double loss[3] = {-1, -1, -1}, total = -1;
      csde_err err = {0};
      int st = csde_discrete_loss(s, t, C, ws, nblk, d, dt, unw, loss, &total, &err);
      double w = unw ? 1 : c.elbo_weight, worst = 0, sum = 0;
      for (size_t b = 0; b < nblk; b++) {
        worst = fmax(worst, fabs(loss[b] - w * q[b]) / fmax(w * q[b], DBL_MIN));
        sum += loss[b];
      }
      if (w == 0) worst = fabs(loss[0]) + fabs(loss[1]) + fabs(loss[2]);
      ok(!st && worst <= 1e-10 && rel(total, sum) <= 1e-15,
         "t = %zu %s: eq. 3 loss = w sum (d-dt)^T C^-1 (d-dt) per block, dense (rel %.3g)%s%s",
         t, unw ? "unweighted" : "weighted", worst, st ? ": " : "", st ? err.msg : "");
    }
  }
  /* the weighted loss is the KL of the posterior against the model's posterior */
  {
    const size_t t = 400;
    double *x0 = malloc(n * sizeof *x0), *xt = malloc(n * sizeof *xt);
    double *mu = malloc(n * sizeof *mu), *mut = malloc(n * sizeof *mut), var, ab, om, loss;
    fill(x0, n, 1.1);
    ref_abar(s, t, &ab, &om);
    for (size_t i = 0; i < n; i++) xt[i] = sqrt(ab) * x0[i] + sqrt(om) * d[i];
    csde_discrete_posterior(s, t, n, x0, xt, mu, &var, NULL);
    csde_discrete_mu_from_noise(s, t, n, xt, dt, mut, NULL);
    double kl = 0;
    for (size_t b = 0; b < nblk; b++)
      for (size_t p = 0; p < D; p++)
        for (size_t i = 0; i < tau; i++)
          for (size_t j = 0; j < tau; j++) {
            size_t ki = b * tau * D + i * D + p, kj = b * tau * D + j * D + p;
            kl += (mu[ki] - mut[ki]) * gsl_matrix_get(Ci, i, j) * (mu[kj] - mut[kj]);
          }
    kl /= 2 * var; /* KL(N(mu, var C) || N(mu_theta, var C)) summed over pixels */
    int st = csde_discrete_loss(s, t, C, ws, nblk, d, dt, 0, NULL, &loss, NULL);
    ok(!st && rel(loss, kl) <= 1e-9,
       "t = %zu: weighted loss = sum KL(q(x_{t-1}|x_t,x_0) || p_theta) (rel %.3g)", t,
       rel(loss, kl));
    free(x0);
    free(xt);
    free(mu);
    free(mut);
  }
  gsl_matrix_free(Ci);
  free(d);
  free(dt);
}

/* ---- sample moments: mean and frame covariance over n = nblk * D pixel vectors ----
 * r_p = (sample - mean) for pixel p is N(0, S). With the mean known:
 *   SE of a frame mean         = sqrt(S_ii / n),
 *   SE of a covariance entry   ~ sqrt((S_ii S_jj + S_ij^2) / n)   (Var(r_i r_j) for a Gaussian).
 * Each entry must lie within 5 SE (about 1e-6 false alarms per entry; the seed is fixed). */
static void check_moments(const char *what, const double *x, const double *mean, size_t nblk,
                          size_t tau, size_t D, const double *S)
{
  const double n = (double)(nblk * D);
  double zmean = 0, zcov = 0;
  for (size_t i = 0; i < tau; i++) {
    double m = 0, mref = 0;
    for (size_t b = 0; b < nblk; b++)
      for (size_t p = 0; p < D; p++) {
        m += x[b * tau * D + i * D + p];
        mref += mean[b * tau * D + i * D + p];
      }
    zmean = fmax(zmean, fabs(m - mref) / n / sqrt(S[i * tau + i] / n));
    for (size_t j = 0; j < tau; j++) {
      double cij = 0;
      for (size_t b = 0; b < nblk; b++)
        for (size_t p = 0; p < D; p++) {
          size_t ki = b * tau * D + i * D + p, kj = b * tau * D + j * D + p;
          cij += (x[ki] - mean[ki]) * (x[kj] - mean[kj]);
        }
      cij /= n;
      double se = sqrt((S[i * tau + i] * S[j * tau + j] + S[i * tau + j] * S[i * tau + j]) / n);
      zcov = fmax(zcov, fabs(cij - S[i * tau + j]) / se);
    }
  }
  ok(zmean <= 5, "%s: sample mean within 5 SE (worst %.2f SE)", what, zmean);
  ok(zcov <= 5, "%s: frame covariance within 5 SE (worst %.2f SE)", what, zcov);
}

int main(void)
{
  csde_init();
  csde_err err = {0};
  csde_schedule *s = NULL, *vp = NULL;
  int st = csde_schedule_alloc(&s, "ddpm-linear", &err);
  st |= csde_schedule_alloc(&vp, "vp-linear", &err);
  if (!ok(st == 0, "schedules ddpm-linear and vp-linear")) return tap_done();
  const size_t N = csde_schedule_nsteps(s);

  const size_t tau = 4;
  csde_cov *C = make_cov(COV_SPEC, tau);
  if (!C) return tap_done();
  double Cm[16];
  csde_cov_matrix(C, Cm);
  ok(fabs(Cm[1] - 0.9) < 1e-15 && fabs(Cm[3] - 0.729) < 1e-15, "ar1 C[0][1] = 0.9, C[0][3] = 0.729");

  /* coefficients */
  const size_t ts[] = {1, 2, 3, 10, 100, 500, 999, 1000};
  for (size_t k = 0; k < sizeof ts / sizeof *ts; k++) check_coef(s, ts[k]);
  {
    csde_discrete_coef c;
    csde_discrete_coef_at(s, 1, &c, NULL);
    ok(c.mean_x0 == 1 && c.mean_xt == 0 && c.var == 0 && c.elbo_weight == 0 &&
           c.abar_prev == 1,
       "t = 1: mean_x0 = 1, mean_xt = 0, var = 0, elbo_weight = 0 exactly");
  }

  /* eq. 2: Bayes posterior; mu_theta identity */
  for (size_t k = 0; k < sizeof ts / sizeof *ts; k++) {
    check_posterior_bayes(s, ts[k], Cm, tau);
    check_mu_identity(s, ts[k]);
  }

  /* eq. 3 */
  {
    csde_cov_ws *ws = make_ws(C, 5, 1);
    if (ws) check_loss(s, C, ws, Cm, tau, 5);
    csde_cov_ws_free(ws);
  }

  /* eq. 1 and the ancestral step: moments of many samples */
  {
    const size_t D = 2000, nblk = 5, n = nblk * tau * D, t = 300;
    csde_cov_ws *ws = make_ws(C, D, 1);
    double *x0 = malloc(n * sizeof *x0), *xt = malloc(n * sizeof *xt);
    double *delta = malloc(n * sizeof *delta), *mean = malloc(n * sizeof *mean);
    double *dth = malloc(n * sizeof *dth), *xp = malloc(n * sizeof *xp);
    const double m0[4] = {1, -0.5, 2, 0.25};
    for (size_t b = 0; b < nblk; b++)
      for (size_t i = 0; i < tau; i++)
        for (size_t p = 0; p < D; p++) x0[b * tau * D + i * D + p] = m0[i];
    csde_discrete_coef c;
    csde_discrete_coef_at(s, t, &c, NULL);
    double ab, om, S[16];
    ref_abar(s, t, &ab, &om);
    csde_rng_key key = {12345, 7};
    st = ws ? csde_discrete_marginal_sample(s, t, C, ws, key, 0, nblk, x0, xt, delta, &err)
            : -1;
    ok(st == 0, "marginal_sample t = %zu, %zu blocks of %zu x %zu%s%s", t, nblk, tau, D,
       st ? ": " : "", st > 0 ? err.msg : "");
    if (st == 0) {
      /* X_t | X_0 ~ N(sqrt(abar) x0, (1 - abar) C) */
      for (size_t i = 0; i < n; i++) mean[i] = sqrt(ab) * x0[i];
      for (size_t i = 0; i < 16; i++) S[i] = om * Cm[i];
      check_moments("eq. 1 X_t | X_0", xt, mean, nblk, tau, D, S);
      double w = 0;
      for (size_t i = 0; i < n; i++) w = fmax(w, fabs(xt[i] - (sqrt(ab) * x0[i] + sqrt(om) * delta[i])));
      ok(w <= 1e-14, "delta_out: xt = sqrt(abar) x0 + sqrt(1-abar) delta (|diff| %.3g)", w);
      /* without delta_out: the same xt, bitwise */
      st = csde_discrete_marginal_sample(s, t, C, ws, key, 0, nblk, x0, xp, NULL, &err);
      ok(st == 0 && !memcmp(xp, xt, n * sizeof *xt), "marginal_sample without delta_out: same xt");
      /* in place: xt == x0 is allowed with delta_out */
      memcpy(xp, x0, n * sizeof *xp);
      st = csde_discrete_marginal_sample(s, t, C, ws, key, 0, nblk, xp, xp, delta, &err);
      ok(st == 0 && !memcmp(xp, xt, n * sizeof *xt), "marginal_sample in place (xt == x0)");

      /* ancestral step: X_{t-1} ~ N(mu_theta, beta~ C) */
      fill(dth, n, 0.9);
      csde_rng_key k2 = {12345, 8};
      st = csde_discrete_ancestral_step(s, t, C, ws, k2, 0, nblk, xt, dth, xp, &err);
      csde_discrete_mu_from_noise(s, t, n, xt, dth, mean, NULL);
      for (size_t i = 0; i < 16; i++) S[i] = c.var * Cm[i];
      ok(st == 0, "ancestral_step t = %zu%s%s", t, st ? ": " : "", st ? err.msg : "");
      check_moments("ancestral step X_{t-1} - mu_theta", xp, mean, nblk, tau, D, S);
      /* t = 1 adds no noise */
      st = csde_discrete_ancestral_step(s, 1, C, ws, k2, 0, nblk, xt, dth, xp, &err);
      csde_discrete_mu_from_noise(s, 1, n, xt, dth, mean, NULL);
      ok(st == 0 && !memcmp(xp, mean, n * sizeof *xp), "ancestral_step t = 1 returns mu_theta");
    }
    free(x0);
    free(xt);
    free(delta);
    free(mean);
    free(dth);
    free(xp);
    csde_cov_ws_free(ws);
  }

  /* determinism: sample b of a batch = the same sample drawn alone, bitwise; and the
   * workspace's thread count does not matter */
  {
    const size_t D = 37, nblk = 4, blk = tau * D, n = nblk * blk, first = 10, t = 123;
    csde_cov_ws *ws = make_ws(C, D, 1), *ws4 = make_ws(C, D, 4);
    double *x0 = malloc(n * sizeof *x0), *xt = malloc(n * sizeof *xt);
    double *one = malloc(blk * sizeof *one), *dth = malloc(n * sizeof *dth);
    double *xp = malloc(n * sizeof *xp), *xp4 = malloc(n * sizeof *xp4);
    fill(x0, n, 0.2);
    fill(dth, n, 0.6);
    csde_rng_key key = {99, 3};
    int same = ws && ws4;
    st = same ? csde_discrete_marginal_sample(s, t, C, ws, key, first, nblk, x0, xt, NULL, &err)
              : -1;
    for (size_t b = 0; b < nblk && !st; b++) {
      st = csde_discrete_marginal_sample(s, t, C, ws, key, first + b, 1, x0 + b * blk, one,
                                         NULL, &err);
      same = same && !st && !memcmp(one, xt + b * blk, blk * sizeof *one);
    }
    ok(!st && same, "marginal_sample: sample b of a batch = drawn alone (first + b), bitwise");
    st = same ? csde_discrete_ancestral_step(s, t, C, ws, key, first, nblk, xt, dth, xp, &err)
              : -1;
    for (size_t b = 0; b < nblk && !st; b++) {
      st = csde_discrete_ancestral_step(s, t, C, ws, key, first + b, 1, xt + b * blk,
                                        dth + b * blk, one, &err);
      same = same && !st && !memcmp(one, xp + b * blk, blk * sizeof *one);
    }
    ok(!st && same, "ancestral_step: sample b of a batch = drawn alone (first + b), bitwise");
    st = same ? csde_discrete_ancestral_step(s, t, C, ws4, key, first, nblk, xt, dth, xp4, &err)
              : -1;
    ok(!st && !memcmp(xp, xp4, n * sizeof *xp), "ancestral_step: same bits with a 4-thread workspace");
    free(x0);
    free(xt);
    free(one);
    free(dth);
    free(xp);
    free(xp4);
    csde_cov_ws_free(ws);
    csde_cov_ws_free(ws4);
  }

  /* error paths */
  {
    const size_t D = 2, n = tau * D;
    csde_cov_ws *ws = make_ws(C, D, 1);
    double a[8], b[8], out[8], loss, var;
    fill(a, n, 0.1);
    fill(b, n, 0.2);
    csde_discrete_coef c;
    csde_rng_key key = {1, 1};
    st = csde_discrete_coef_at(s, 0, &c, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 0 is outside 1..N (N = 1000)", "coef_at t = 0");
    st = csde_discrete_coef_at(s, N + 1, &c, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 1001 is outside 1..N (N = 1000)", "coef_at t = N + 1");
    st = csde_discrete_coef_at(vp, 1, &c, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "needs a discrete schedule (e.g. ddpm-linear)",
              "coef_at with a continuous schedule");
    st = csde_discrete_posterior(s, 0, n, a, b, out, &var, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 0", "posterior t = 0");
    st = csde_discrete_posterior(vp, 5, n, a, b, out, &var, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "needs a discrete schedule", "posterior, continuous");
    st = csde_discrete_mu_from_noise(s, N + 1, n, a, b, out, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 1001", "mu_from_noise t = N + 1");
    st = csde_discrete_mu_from_noise(vp, 5, n, a, b, out, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "needs a discrete schedule", "mu_from_noise, continuous");
    st = csde_discrete_marginal_sample(s, 0, C, ws, key, 0, 1, a, out, NULL, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 0", "marginal_sample t = 0");
    st = csde_discrete_marginal_sample(vp, 1, C, ws, key, 0, 1, a, out, NULL, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "needs a discrete schedule", "marginal_sample, continuous");
    st = csde_discrete_ancestral_step(s, N + 1, C, ws, key, 0, 1, a, b, out, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 1001", "ancestral_step t = N + 1");
    st = csde_discrete_ancestral_step(vp, 2, C, ws, key, 0, 1, a, b, out, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "needs a discrete schedule", "ancestral_step, continuous");
    st = csde_discrete_loss(s, 0, C, ws, 1, a, b, 0, NULL, &loss, &err);
    ok_status(st, CSDE_EDOM, err.msg, "t = 0", "loss t = 0");
    st = csde_discrete_loss(vp, 3, C, ws, 1, a, b, 1, NULL, &loss, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "needs a discrete schedule", "loss, continuous");
    st = csde_discrete_ancestral_step(s, 2, C, NULL, key, 0, 1, a, b, out, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "workspace is NULL", "ancestral_step without workspace");
    st = csde_discrete_coef_at(NULL, 1, &c, &err);
    ok_status(st, CSDE_EINVAL, err.msg, "schedule is NULL", "coef_at without schedule");
    st = csde_discrete_coef_at(s, 0, &c, NULL);
    ok(st == CSDE_EDOM, "err may be NULL");
    csde_cov_ws_free(ws);
    /* a singular C: the C^-1 norm does not exist */
    csde_cov *Cs = make_cov("toeplitz:col=1,1,1,1", tau);
    csde_cov_ws *wss = Cs ? make_ws(Cs, D, 1) : NULL;
    st = wss ? csde_discrete_loss(s, 3, Cs, wss, 1, a, b, 1, NULL, &loss, &err) : -1;
    ok_status(st, CSDE_ESING, err.msg, NULL, "loss with a singular C fails (from the cov module)");
    csde_cov_ws_free(wss);
    csde_cov_free(Cs);
  }

  csde_cov_free(C);
  csde_schedule_free(s);
  csde_schedule_free(vp);
  return tap_done();
}
