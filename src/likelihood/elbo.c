/* The discrete bound (corrsde/likelihood.h; MATH.md eq. 3 in full), per sample x0:
 *   -log p(x0) <= L_T + sum_{t=2}^N L_{t-1} + L_0.
 * The pieces come from the discrete module (src/process/discrete.c: x_t of eq. 1, the
 * weights w_t of eq. 3, the C^-1 loss, mu_theta) and the model's answer from the process
 * layer (src/process/process.c): s = C grad log p_t at t = i/N, delta_theta = -sigma s with
 * sigma = sqrt(1 - abar_i) from csde_proc_view. The C^-1 forms and log det C come from
 * the covariance operator, so any method serves.
 *
 * Noise: draw r of step t for global sample j is csde_cov_sample's sample `idx` of the key
 * (seed, CSDE_STREAM_ELBO + (r << 32) + t), idx = j for the exact sum, idx = j tdraws + k
 * for the k-th sampled timestep; that timestep is 2 + floor(u (N - 1)), u =
 * csde_rng_uniform((seed, CSDE_STREAM_ELBO), j tdraws + k). One allocation per call.
 */
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "corrsde/discrete.h"
#include "corrsde/likelihood.h"
#include "process/process.h"

#define ELBO_MAX_DRAWS ((size_t)1 << 20) /* r << 32 stays inside the ELBO's streams */

csde_elbo_params csde_elbo_default_params(void)
{
  csde_elbo_params p;
  memset(&p, 0, sizeof p);
  p.draws = 1;
  p.tdraws = 0;
  p.conf = 0.95;
  p.dequant = csde_dequant_continuous();
  return p;
}

/* What one term needs: the buffers (nblk blocks at most) and the objects. */
typedef struct {
  const csde_problem *P;
  csde_proc *pr;
  csde_cov_ws *ws;
  uint64_t seed;
  size_t N, blk;                       /* steps; tau D values per sample */
  double *xt, *delta, *dth, *mu, *val; /* val: nblk values */
  double beta1;                        /* beta_1 */
  size_t nfe;                          /* evaluations per sample */
} elbo_ctx;

static csde_rng_key elbo_key(uint64_t seed, size_t r, size_t t)
{
  csde_rng_key k = {seed, CSDE_STREAM_ELBO + ((uint64_t)r << 32) + (uint64_t)t};
  return k;
}

/* val[b] = w_t |delta - delta_theta|^2_{C^-1} (t >= 2), or (t = 1)
 * L_0 = -log N(x0; mu_theta(x_1, 1), beta_1 C (x) I_D), for draw r of nblk samples of x0
 * keyed from index idx; delta_theta = -sigma C grad log p_t(x_t) at t = i/N from the
 * process layer. */
static int term(elbo_ctx *c, size_t t, size_t r, size_t idx, size_t nblk, const double *x0,
                csde_err *err)
{
  const csde_problem *P = c->P;
  int s = csde_discrete_marginal_sample(P->sched, t, P->C, c->ws, elbo_key(c->seed, r, t),
                                        idx, nblk, x0, c->xt, c->delta, err);
  if (s) return s;
  const double tt = (double)t / (double)c->N;
  if ((s = csde_proc_cscore(c->pr, tt, c->N - t, c->xt, c->dth, err))) return s;
  double a, sg, l;
  csde_proc_view(c->pr, tt, &a, &sg, &l);
  const size_t n = nblk * c->blk;
  for (size_t k = 0; k < n; k++) c->dth[k] *= -sg; /* delta_theta = -sqrt(1 - abar) s */
  if (t >= 2)
    return csde_discrete_loss(P->sched, t, P->C, c->ws, nblk, c->delta, c->dth, 0, c->val,
                              NULL, err);
  if ((s = csde_discrete_mu_from_noise(P->sched, 1, n, c->xt, c->dth, c->mu, err))) return s;
  const double rs = 1 / sqrt(c->beta1);
  for (size_t k = 0; k < n; k++) c->mu[k] = (x0[k] - c->mu[k]) * rs;
  if ((s = csde_cov_logpdf(P->C, c->ws, nblk, c->mu, c->val, err))) return s;
  /* log N(x0; mu, beta_1 C) = log N((x0 - mu) / sqrt(beta_1); 0, C) - n/2 log beta_1 */
  for (size_t b = 0; b < nblk; b++)
    c->val[b] = -c->val[b] + 0.5 * (double)c->blk * log(c->beta1);
  return CSDE_SUCCESS;
}

/* Welford: the running mean m and sum of squares m2 of the values seen, after the n-th. */
static void welford(double v, size_t n, double *m, double *m2)
{
  double d = v - *m;
  *m += d / (double)n;
  *m2 += d * (v - *m);
}

static int blame(csde_err *err, const char *param, int status, const char *msg)
{
  return csde_err_blame(err, param, csde_err_set(err, status, "elbo: %s", msg));
}

int csde_elbo(const csde_problem *P, const csde_elbo_params *par, const double *x0,
              csde_elbo_sample *out, size_t *nfe, csde_err *err)
{
  if (nfe) *nfe = 0;
  if (!P || !par || !out) return blame(err, NULL, CSDE_EINVAL, "problem, params or out is NULL");
  if (!x0) return blame(err, CSDE_PARAM_DATA, CSDE_EINVAL, "the data x0 is NULL");
  if (!P->model) return blame(err, CSDE_PARAM_MODEL, CSDE_EINVAL, "needs a model");
  if (!P->C || !P->sched)
    return blame(err, NULL, CSDE_EINVAL, "needs a covariance and a schedule");
  const size_t N = csde_schedule_nsteps(P->sched);
  if (!csde_schedule_is_vp(P->sched)) /* a Gaussian path has no N-step VP chain */
    return csde_err_blame(err, CSDE_PARAM_SCHEDULE,
                          csde_err_set(err, CSDE_ENOTSUP, "elbo: the discrete bound (eq. 3) "
                                       "is VP-only: schedule '%s' is the %s path (use a "
                                       "discrete VP schedule, e.g. ddpm-linear:n=1000, or the "
                                       "PF-ODE likelihood)", csde_schedule_spec(P->sched),
                                       csde_schedule_path_name(P->sched)));
  if (N == 0)
    return csde_err_blame(err, CSDE_PARAM_SCHEDULE,
                          csde_err_set(err, CSDE_EINVAL, "elbo: the bound needs a discrete "
                                       "schedule (e.g. ddpm-linear:n=1000), not '%s'",
                                       csde_schedule_spec(P->sched)));
  if (par->draws < 1 || par->draws > ELBO_MAX_DRAWS)
    return csde_err_set(err, CSDE_EDOM, "elbo: draws = %zu, expected 1 <= draws <= %zu",
                        par->draws, ELBO_MAX_DRAWS);
  if (!(par->conf > 0 && par->conf < 1))
    return csde_err_set(err, CSDE_EDOM, "elbo: conf = %g, expected 0 < conf < 1", par->conf);
  if (csde_cov_is_singular(P->C))
    return csde_err_set(err, CSDE_ESING, "elbo: the bound needs C^-1, and the covariance "
                        "'%s' is singular", csde_cov_spec(P->C));
  if (P->tau == 0 || P->D == 0 || P->batch == 0)
    return blame(err, CSDE_PARAM_SIZE, CSDE_EINVAL, "tau, D and batch must be positive");
  int s;
  /* a valid rule for bpd's offset (csde_dequantize checks it, and with no data stops) */
  if ((s = csde_dequantize(&par->dequant, (csde_rng_key){0, 0}, 0, 0, 0, NULL, NULL, err)))
    return s;
  const size_t B = P->batch, blk = P->tau * P->D, n = B * blk;
  for (size_t k = 0; k < n; k++)
    if (!isfinite(x0[k]))
      return csde_err_blame(err, CSDE_PARAM_DATA,
                            csde_err_set(err, CSDE_EDOM, "elbo: x0 sample %zu, index %zu is "
                                         "%g", par->first_sample + k / blk, k % blk, x0[k]));
  const int sampled = par->tdraws > 0 && N >= 2;
  const size_t nb = sampled ? 1 : B; /* blocks per model call */

  /* the process layer's view of the model: its conversion, guidance, x0 post */
  csde_problem Pi = *P;
  Pi.process = CSDE_PROC_PFODE;
  Pi.T = 1;
  Pi.eps = 0;
  Pi.batch = nb;
  csde_proc pr;
  if ((s = csde_proc_init(&pr, &Pi, par->threads, 0, err))) {
    csde_proc_free(&pr);
    return s;
  }
  pr.first = par->first_sample;
  elbo_ctx c;
  memset(&c, 0, sizeof c);
  c.P = P;
  c.pr = &pr;
  c.seed = par->seed;
  c.N = N;
  c.blk = blk;
  /* xt, delta, dth, mu (nb blocks each), val, and per sample: the mean and M2 of Lsum's
   * term, of L0, and the running sums */
  double *buf = NULL;
  if ((s = csde_cov_ws_alloc(&c.ws, P->C, P->D, par->threads, err))) goto done;
  if (!(buf = csde_alloc(4 * nb * blk + nb + 6 * B, sizeof(double)))) {
    s = blame(err, CSDE_PARAM_SIZE, CSDE_ENOMEM, "out of memory for 4 states");
    goto done;
  }
  c.xt = buf;
  c.delta = c.xt + nb * blk;
  c.dth = c.delta + nb * blk;
  c.mu = c.dth + nb * blk;
  c.val = c.mu + nb * blk;
  double *tm = c.val + nb, *tm2 = tm + B, *lsum = tm2 + B, *lvar = lsum + B,
         *l0 = lvar + B, *l0m2 = l0 + B;
  memset(tm, 0, 6 * B * sizeof *tm);
  csde_discrete_coef c1;
  if ((s = csde_discrete_coef_at(P->sched, 1, &c1, err))) goto done;
  c.beta1 = c1.beta;
  const size_t R = par->draws;

  if (!sampled) {
    /* the exact sum over t = 2..N, R draws each: Lsum = sum_t mean_r, var = sum_t s_t^2 / R */
    for (size_t t = 2; t <= N; t++) {
      memset(tm, 0, 2 * B * sizeof *tm);
      for (size_t r = 0; r < R; r++) {
        if ((s = term(&c, t, r, par->first_sample, B, x0, err))) goto done;
        for (size_t b = 0; b < B; b++) welford(c.val[b], r + 1, tm + b, tm2 + b);
      }
      for (size_t b = 0; b < B; b++) {
        lsum[b] += tm[b];
        lvar[b] += R > 1 ? tm2[b] / (double)(R - 1) / (double)R : NAN;
      }
    }
    for (size_t r = 0; r < R; r++) { /* L_0, R draws */
      if ((s = term(&c, 1, r, par->first_sample, B, x0, err))) goto done;
      for (size_t b = 0; b < B; b++) welford(c.val[b], r + 1, l0 + b, l0m2 + b);
    }
    for (size_t b = 0; b < B; b++)
      lvar[b] += R > 1 ? l0m2[b] / (double)(R - 1) / (double)R : NAN;
    c.nfe = N * R;
  } else {
    /* K sampled steps t_k ~ U{2..N}: v_k = (N - 1) mean_r L_{t_k - 1} + mean_r L_0 (draws
     * keyed by k), nll - L_T = mean_k v_k with the standard error sd_k(v) / sqrt(K) */
    const size_t K = par->tdraws;
    const csde_rng_key tkey = {par->seed, CSDE_STREAM_ELBO};
    for (size_t b = 0; b < B; b++) {
      const size_t j = par->first_sample + b;
      const double *xb = x0 + b * blk;
      pr.first = j;
      double vm = 0, vm2 = 0;
      for (size_t k = 0; k < K; k++) {
        double u, es = 0, e0 = 0;
        csde_rng_uniform(tkey, (uint64_t)j * K + k, 1, &u);
        size_t t = 2 + (size_t)(u * (double)(N - 1));
        if (t > N) t = N;
        for (size_t r = 0; r < R; r++) {
          if ((s = term(&c, t, r, j * K + k, 1, xb, err))) goto done;
          es += c.val[0];
          if ((s = term(&c, 1, r, j * K + k, 1, xb, err))) goto done;
          e0 += c.val[0];
        }
        es /= (double)R;
        e0 /= (double)R;
        lsum[b] += ((double)(N - 1) * es - lsum[b]) / (double)(k + 1); /* running means */
        l0[b] += (e0 - l0[b]) / (double)(k + 1);
        welford((double)(N - 1) * es + e0, k + 1, &vm, &vm2);
      }
      lvar[b] = K > 1 ? vm2 / (double)(K - 1) / (double)K : NAN;
    }
    c.nfe = 2 * K * R;
  }
  c.nfe *= csde_proc_passes(&pr);

  /* L_T = 1/2 sum_pixels [tau (1 - abar_N) - tau - tau log(1 - abar_N) + abar_N x0^T C^-1 x0]
   *     = 1/2 [-n abar_N - n log(1 - abar_N) + abar_N sum_pixels x0^T C^-1 x0], n = tau D */
  /* log(1 - abar_N): log1p(-abar_N) where abar_N is small (-n abar_N and -n log(1 -
   * abar_N) cancel to first order), log(-expm1(-B)) where abar_N is near 1 */
  const double BN = csde_schedule_int_beta(P->sched, 1.0), abN = exp(-BN),
               lomN = abN < 0.5 ? log1p(-abN) : log(-expm1(-BN));
  const double df = sampled ? (double)par->tdraws - 1 : (double)R - 1;
  const double tq = df > 0 ? gsl_cdf_tdist_Pinv(0.5 + 0.5 * par->conf, df) : NAN;
  for (size_t b = 0; b < B; b++) {
    double q;
    if ((s = csde_cov_mahalanobis(P->C, c.ws, 1, x0 + b * blk, NULL, NULL, &q, err)))
      goto done;
    csde_elbo_sample *o = out + b;
    o->LT = 0.5 * (-(double)blk * abN - (double)blk * lomN + abN * q);
    o->Lsum = lsum[b];
    o->L0 = l0[b];
    o->nll = o->LT + o->Lsum + o->L0;
    o->se = sqrt(lvar[b]);
    o->lo = o->nll - tq * o->se;
    o->hi = o->nll + tq * o->se;
    o->bpd = csde_bits_per_dim(o->nll, blk, &par->dequant);
  }
  if (nfe) *nfe = c.nfe;
done:
  csde_free(buf);
  csde_cov_ws_free(c.ws);
  csde_proc_free(&pr);
  return s;
}
