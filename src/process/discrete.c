/* The discrete correlated-noise diffusion (corrsde/discrete.h; MATH.md eqs. 1-3).
 *
 * Everything here is elementwise except the noise (csde_cov_sample) and the C^-1 norm
 * (csde_cov_mahalanobis); no function allocates. 1 - abar_i is taken as
 * -expm1(-B(i/N)), which is exact to rounding even where abar_i is close to 1
 * (schedule.h: B(i/N) = -log abar_i exactly for a discrete schedule).
 */
#include <math.h>
#include <stddef.h>

#include "core/util.h"
#include "corrsde/discrete.h"

/* The schedule is discrete and 1 <= t <= N. */
static int check_step(const csde_schedule *s, size_t t, const char *fn, csde_err *err)
{
  if (!s) return csde_err_set(err, CSDE_EINVAL, "%s: schedule is NULL", fn);
  size_t N = csde_schedule_nsteps(s);
  if (N == 0)
    return csde_err_set(err, CSDE_EINVAL,
                        "%s: '%s' is continuous; needs a discrete schedule (e.g. ddpm-linear)",
                        fn, csde_schedule_spec(s));
  if (t < 1 || t > N)
    return csde_err_set(err, CSDE_EDOM, "%s: step t = %zu is outside 1..N (N = %zu)", fn, t,
                        N);
  return CSDE_SUCCESS;
}

/* 1 - abar_i = -expm1(-B(i/N)); 0 for i = 0. */
static double one_minus_abar(const csde_schedule *s, size_t i)
{
  if (i == 0) return 0;
  return -expm1(-csde_schedule_int_beta(s, (double)i / (double)csde_schedule_nsteps(s)));
}

/* The coefficients of step t (checked); *om = 1 - abar_t. */
static void step_coef(const csde_schedule *s, size_t t, csde_discrete_coef *c, double *om)
{
  double beta = csde_schedule_beta_step(s, t);
  double omt = one_minus_abar(s, t), omp = one_minus_abar(s, t - 1);
  c->beta = beta;
  c->alpha = 1 - beta;
  c->abar = csde_schedule_abar_step(s, t);
  c->abar_prev = csde_schedule_abar_step(s, t - 1);
  if (t == 1) { /* abar_0 = 1, 1 - abar_1 = beta_1: X_0 is known, no noise */
    c->mean_x0 = 1;
    c->mean_xt = 0;
    c->var = 0;
    c->elbo_weight = 0;
  } else {
    c->mean_x0 = sqrt(c->abar_prev) * beta / omt;      /* eq. 2 */
    c->mean_xt = sqrt(c->alpha) * omp / omt;           /* eq. 2 */
    c->var = omp / omt * beta;                         /* beta~_t, eq. 2 */
    c->elbo_weight = beta / (2 * c->alpha * omp);      /* eq. 3 */
  }
  c->noise_coef = beta / sqrt(omt); /* mu_theta = (X_t - noise_coef delta_theta)/sqrt(alpha_t) */
  *om = omt;
}

/* n = nblk * tau * D values for the workspace's D. */
static int block_values(const csde_cov *C, const csde_cov_ws *ws, size_t nblk, size_t *n,
                        size_t *blk, const char *fn, csde_err *err)
{
  if (!C) return csde_err_set(err, CSDE_EINVAL, "%s: covariance is NULL", fn);
  if (!ws) return csde_err_set(err, CSDE_EINVAL, "%s: workspace is NULL", fn);
  if (csde_mul_size(csde_cov_tau(C), csde_cov_ws_D(ws), blk) || csde_mul_size(nblk, *blk, n))
    return csde_err_set(err, CSDE_EINVAL, "%s: %zu blocks of %zu x %zu values overflow size_t",
                        fn, nblk, csde_cov_tau(C), csde_cov_ws_D(ws));
  return CSDE_SUCCESS;
}

/* What a step function starts with: step t of s checked, then (blocks_begin) the size of
 * nblk blocks for C and ws, then that no pointer it needs is NULL (missing: one is; names:
 * their list; for blocks only where n > 0), then the step's coefficients. */
typedef struct {
  csde_discrete_coef c;
  double om;     /* 1 - abar_t */
  size_t n, blk; /* blocks_begin: nblk * tau * D values, tau * D a block */
} step_call;

static int coef_begin(const csde_schedule *s, size_t t, int missing, const char *names,
                      const char *fn, step_call *k, csde_err *err)
{
  if (missing) {
    csde_err_set(err, CSDE_EINVAL, "%s: %s is NULL", fn, names);
    return CSDE_EINVAL;
  }
  step_coef(s, t, &k->c, &k->om);
  return CSDE_SUCCESS;
}

static int step_begin(const csde_schedule *s, size_t t, int missing, const char *names,
                      const char *fn, step_call *k, csde_err *err)
{
  int st = check_step(s, t, fn, err);
  return st ? st : coef_begin(s, t, missing, names, fn, k, err);
}

static int blocks_begin(const csde_schedule *s, size_t t, const csde_cov *C,
                        const csde_cov_ws *ws, size_t nblk, int missing, const char *names,
                        const char *fn, step_call *k, csde_err *err)
{
  int st = check_step(s, t, fn, err);
  if (st || (st = block_values(C, ws, nblk, &k->n, &k->blk, fn, err))) return st;
  return coef_begin(s, t, k->n && missing, names, fn, k, err);
}

int csde_discrete_coef_at(const csde_schedule *s, size_t t, csde_discrete_coef *c,
                          csde_err *err)
{
  step_call k;
  int st = step_begin(s, t, !c, "c", "csde_discrete_coef_at", &k, err);
  if (!st) *c = k.c;
  return st;
}

int csde_discrete_marginal_sample(const csde_schedule *s, size_t t, const csde_cov *C,
                                  csde_cov_ws *ws, csde_rng_key key, size_t first,
                                  size_t nblk, const double *x0, double *xt,
                                  double *delta_out, csde_err *err)
{
  step_call k;
  int st = blocks_begin(s, t, C, ws, nblk, !x0 || !xt, "x0 or xt",
                        "csde_discrete_marginal_sample", &k, err);
  if (st || k.n == 0) return st;
  /* delta ~ N(0, C (x) I) straight into its destination, then combine in place */
  double *d = delta_out ? delta_out : xt;
  if ((st = csde_cov_sample(C, ws, key, first, nblk, d, err))) return st;
  double a = sqrt(k.c.abar), b = sqrt(k.om);
  for (size_t i = 0; i < k.n; i++) xt[i] = a * x0[i] + b * d[i]; /* eq. 1 */
  return CSDE_SUCCESS;
}

int csde_discrete_posterior(const csde_schedule *s, size_t t, size_t n, const double *x0,
                            const double *xt, double *mu, double *var, csde_err *err)
{
  step_call k;
  int st = step_begin(s, t, n && (!x0 || !xt || !mu), "x0, xt or mu",
                      "csde_discrete_posterior", &k, err);
  if (st) return st;
  const csde_discrete_coef c = k.c;
  for (size_t i = 0; i < n; i++) mu[i] = c.mean_x0 * x0[i] + c.mean_xt * xt[i]; /* eq. 2 */
  if (var) *var = c.var;
  return CSDE_SUCCESS;
}

int csde_discrete_mu_from_noise(const csde_schedule *s, size_t t, size_t n,
                                const double *xt, const double *delta_theta, double *mu,
                                csde_err *err)
{
  step_call k;
  int st = step_begin(s, t, n && (!xt || !delta_theta || !mu), "xt, delta_theta or mu",
                      "csde_discrete_mu_from_noise", &k, err);
  if (st) return st;
  double sa = sqrt(k.c.alpha);
  /* mu_theta = (X_t - beta_t / sqrt(1-abar_t) delta_theta) / sqrt(alpha_t) */
  for (size_t i = 0; i < n; i++) mu[i] = (xt[i] - k.c.noise_coef * delta_theta[i]) / sa;
  return CSDE_SUCCESS;
}

int csde_discrete_ancestral_step(const csde_schedule *s, size_t t, const csde_cov *C,
                                 csde_cov_ws *ws, csde_rng_key key, size_t first,
                                 size_t nblk, const double *xt, const double *delta_theta,
                                 double *x_prev, csde_err *err)
{
  step_call k;
  int st = blocks_begin(s, t, C, ws, nblk, !xt || !delta_theta || !x_prev,
                        "xt, delta_theta or x_prev", "csde_discrete_ancestral_step", &k, err);
  if (st || k.n == 0) return st;
  const csde_discrete_coef c = k.c;
  const size_t n = k.n;
  double sa = sqrt(c.alpha);
  if (c.var > 0) {
    /* V' z straight into x_prev, then x_prev = mu_theta + sqrt(beta~_t) x_prev */
    if ((st = csde_cov_sample(C, ws, key, first, nblk, x_prev, err))) return st;
    double sd = sqrt(c.var);
    for (size_t i = 0; i < n; i++)
      x_prev[i] = (xt[i] - c.noise_coef * delta_theta[i]) / sa + sd * x_prev[i];
  } else { /* t = 1: the mean alone */
    for (size_t i = 0; i < n; i++) x_prev[i] = (xt[i] - c.noise_coef * delta_theta[i]) / sa;
  }
  return CSDE_SUCCESS;
}

int csde_discrete_loss(const csde_schedule *s, size_t t, const csde_cov *C,
                       csde_cov_ws *ws, size_t nblk, const double *delta,
                       const double *delta_theta, int unweighted, double *loss,
                       double *total, csde_err *err)
{
  step_call k;
  int st = blocks_begin(s, t, C, ws, nblk, !delta || !delta_theta, "delta or delta_theta",
                        "csde_discrete_loss", &k, err);
  if (st) return st;
  const size_t blk = k.blk;
  double w = unweighted ? 1 : k.c.elbo_weight, sum = 0;
  /* eq. 3: loss_b = w_t sum_pixels (delta - delta_theta)^T C^-1 (delta - delta_theta) */
  for (size_t b = 0; b < nblk; b++) {
    double q;
    st = csde_cov_mahalanobis(C, ws, 1, delta + b * blk, delta_theta + b * blk, NULL, &q, err);
    if (st) return st;
    if (loss) loss[b] = w * q;
    sum += w * q;
  }
  if (total) *total = sum;
  return CSDE_SUCCESS;
}
