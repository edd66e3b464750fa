/* EDM's Heun sampler (stepper.h; Karras et al. 2022, Algorithms 1 and 2): Heun's method on
 * the PF-ODE in sigma-space coordinates, two model evaluations per step, with EDM's
 * optional churn.
 *
 * With x_ve = x / alpha and s = sigma / alpha (the VE sigma of the context), the PF-ODE
 * is dx_ve/ds = (x_ve - D(x_ve, s)) / s, D the data prediction (docs/MATH.md, "The
 * denoiser view"): the same equation as in the isotropic case, the correlation being
 * inside D. A step t0 -> t1 (s0 -> s1):
 *   d0 = (x_ve - D0) / s0,  x~ = x_ve + (s1 - s0) d0,
 *   d1 = (x~ - D(x~, s1)) / s1,  x_ve1 = x_ve + (s1 - s0) (d0 + d1) / 2,
 * and x1 = alpha1 x_ve1. The model sees x = alpha x_ve at t. Order 2. A step to s1 = 0
 * (t1 = 0) is the Euler step x_ve1 = D0, one evaluation (EDM's Algorithm 1).
 *
 * Churn (csde_solve_params.s_churn > 0, `--solver edm-heun:churn=S,tmin=A,tmax=B,noise=N`):
 * on a step whose s0 lies in [s_tmin, s_tmax], first raise the noise level to
 *   s^ = s0 (1 + gamma),  gamma = min(s_churn / N, sqrt 2 - 1),
 *   x_ve^ = x_ve + s_noise sqrt(s^2 - s0^2) V' z,
 * z the normals of stream k (the step) of the seed (as ddim's), so the added noise has
 * the frame covariance C like the rest; then the Heun step runs from s^ (time t^ with
 * sigma/alpha = s^, at most the span's start T) to s1. Stochastic: a sampler of the
 * reverse process, no longer an ODE solver of order 2.
 *
 * Buffers: 0 = D0 then D1, 1 = x~ (in x units); with churn a state holds the noise. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "core/util.h"
#include "solve/stepper.h"

typedef struct {
  csde_cov_ws *ws;
  double *z;
} edm_state;

static int edm_init(csde_stepper *S, csde_err *err)
{
  const csde_solve_params *par = csde_stepper_params(S);
  if (!(par->s_churn > 0)) return CSDE_SUCCESS;
  if (!(par->s_noise > 0) || !(par->s_tmax >= par->s_tmin))
    return csde_err_set(err, CSDE_EDOM, "edm-heun: churn needs noise > 0 and tmin <= tmax "
                                        "(noise %g, tmin %g, tmax %g)",
                        par->s_noise, par->s_tmin, par->s_tmax);
  const csde_problem *P = csde_stepper_problem(S);
  edm_state *st = calloc(1, sizeof *st);
  if (!st || !(st->z = csde_alloc(csde_stepper_n(S), sizeof(double)))) {
    free(st);
    return csde_err_set(err, CSDE_ENOMEM, "edm-heun: out of memory for the churn noise");
  }
  csde_stepper_set_state(S, st);
  return csde_cov_ws_alloc(&st->ws, P->C, P->D, csde_stepper_threads(S), err);
}

static void edm_free(csde_stepper *S)
{
  edm_state *st = csde_stepper_state(S);
  if (!st) return;
  csde_cov_ws_free(st->ws);
  csde_free(st->z);
  free(st);
  csde_stepper_set_state(S, NULL);
}

/* Churn: x (at t0) becomes the state at *t0 = t^ (see above); nothing on steps outside
 * [s_tmin, s_tmax]. */
static int edm_churn(csde_stepper *S, double *t0, double *x)
{
  const csde_problem *P = csde_stepper_problem(S);
  const csde_solve_params *par = csde_stepper_params(S);
  edm_state *st = csde_stepper_state(S);
  double a0, g0, l0;
  csde_stepper_view(S, *t0, &a0, &g0, &l0);
  const double s0 = g0 / a0;
  if (!(s0 >= par->s_tmin && s0 <= par->s_tmax)) return CSDE_SUCCESS;
  const double gamma = fmin(par->s_churn / (double)par->steps, sqrt(2.0) - 1);
  double sh = s0 * (1 + gamma);
  /* t of sigma_ve = sh: VP t_of_logsnr(-2 log sh); a path t_of_lambda(-log sh) */
  double th = csde_schedule_is_vp(P->sched)
                  ? csde_schedule_t_of_logsnr(P->sched, -2 * log(sh))
                  : csde_schedule_path_t_of_lambda(P->sched, -log(sh));
  if (!(th <= P->T)) { /* no higher than the span's start */
    double aT, gT, lT;
    csde_stepper_view(S, P->T, &aT, &gT, &lT);
    th = P->T;
    sh = gT / aT;
  }
  if (!(sh > s0)) return CSDE_SUCCESS;
  csde_rng_key key = {par->seed, (uint64_t)csde_stepper_step(S)};
  csde_err err;
  int s = csde_cov_sample(P->C, st->ws, key, par->first_sample, P->batch, st->z, &err);
  if (s) return csde_stepper_fail(S, s, "%s", err.msg);
  double ah, gh, lh;
  csde_stepper_view(S, th, &ah, &gh, &lh);
  /* x^ = alpha^ (x / alpha0 + s_noise sqrt(s^2 - s0^2) z) */
  const double cx = ah / a0, cz = ah * par->s_noise * sqrt((sh - s0) * (sh + s0));
  const long n = (long)csde_stepper_n(S);
  for (long i = 0; i < n; i++) x[i] = cx * x[i] + cz * st->z[i];
  *t0 = th;
  return CSDE_SUCCESS;
}

static int edm_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                    int last)
{
  (void)dW;
  (void)last;
  double *D = csde_stepper_buf(S, 0), *xt = csde_stepper_buf(S, 1);
  const long n = (long)csde_stepper_n(S);
  const int th = csde_stepper_threads(S);
  (void)th;
  int s;
  if (csde_stepper_state(S) && (s = edm_churn(S, &t0, x))) return s;
  double a0, g0, l0, a1, g1, l1;
  csde_stepper_view(S, t0, &a0, &g0, &l0);
  csde_stepper_view(S, t1, &a1, &g1, &l1);
  const double s0 = g0 / a0, s1 = g1 / a1, ds = s1 - s0;
  s = csde_stepper_denoise(S, t0, x, D); /* D0 = x_theta(x, t0) */
  if (s) return s;
  if (!(g1 > 0)) {
    /* a step to sigma = 0 (t1 = 0): EDM's Euler step (Algorithm 1: no correction where
     * sigma_{i+1} = 0), x_ve1 = x_ve + (0 - s0) (x_ve - D0) / s0 = D0 */
    csde_stepper_lincomb(S, x, a1, D, 0, NULL, NULL);
    return CSDE_SUCCESS;
  }
  /* x~ (x units) = alpha1 (x_ve + ds d0), d0 = (x/alpha0 - D0) / s0 */
  const double c0 = a1 * (1 + ds / s0) / a0, cD = -a1 * ds / s0, *bD[1] = {D};
  csde_stepper_lincomb(S, xt, c0, x, 1, &cD, bD);
  /* d0 is kept implicitly: x_ve1 = x_ve + ds/2 (d0 + d1), d0 = (x/a0 - D0)/s0; store
   * ds/2 d0 in D's place before D is overwritten by D1 */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) D[i] = 0.5 * ds * (x[i] / a0 - D[i]) / s0;
  /* x = alpha1 (x_ve + ds/2 d0): the state without d1 yet */
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) x[i] = a1 * (x[i] / a0 + D[i]);
  s = csde_stepper_denoise(S, t1, xt, D); /* D1 = x_theta(x~, t1) */
  if (s) return s;
  /* x += alpha1 ds/2 d1, d1 = (x~/alpha1 - D1) / s1 */
  const double c1 = 0.5 * ds / s1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long i = 0; i < n; i++) x[i] += c1 * (xt[i] - a1 * D[i]);
  return CSDE_SUCCESS;
}

static const csde_solver_option edm_options[] = {
  {"churn", offsetof(csde_solve_params, s_churn), 0, INFINITY, "S"},
  {"tmin", offsetof(csde_solve_params, s_tmin), 0, INFINITY, "A"},
  {"tmax", offsetof(csde_solve_params, s_tmax), 0, INFINITY, "B"},
  {"noise", offsetof(csde_solve_params, s_noise), 0, INFINITY, "N"},
  {NULL, 0, 0, 0, NULL}};

const csde_solver_type csde_solver_edm_heun = {
  .name = "edm-heun",
  .summary = "EDM's Heun in sigma: PF-ODE, order 2",
  .ode = 1,
  .nfe_per_step = 2, .order_ode = 2.0,
  .nbuf = 2,
  .view = CSDE_VIEW_SIGMA_START | CSDE_VIEW_ALPHA_START | CSDE_VIEW_ALPHA_END,
  .options = edm_options,
  .init = edm_init, .free = edm_free, .step = edm_step,
};
