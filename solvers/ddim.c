/* DDIM(eta) (stepper.h; Song et al. 2021), the model's noise prediction on any grid, one
 * evaluation per step. With d = delta_theta = -sqrt(1 - abar_t) C grad log p_t(x) at the
 * step's start t and its end s:
 *   x0  = (x - sqrt(1 - abar_t) d) / sqrt(abar_t),
 *   x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sig^2) d + sig V' z,
 *   sig = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s),
 * On a non-VP path the same step in (alpha, sigma, lambda) (h = lambda_s - lambda_t):
 *   x_s = alpha_s x0 + sqrt(sigma_s^2 - sig^2) d + sig V' z,  sig = eta sigma_s sqrt(1 - e^-2h),
 * d = -sigma_t C grad log p (the VP branch keeps its abar expressions bit for bit).
 * z the normals of stream k (the step) of the seed, as the streaming SDE noise. eta = 0
 * (csde_solve_params.eta, default) is deterministic: the first-order exponential
 * integrator of the PF-ODE (docs/MATH.md). `--process ddim[:eta=E]` runs it on the PF-ODE
 * process, drawing its own noise; order 1 (ODE).
 *
 * Buffers: 0 = d, 1 = the noise. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "solve/stepper.h"

static int ddim_init(csde_stepper *S, csde_err *err)
{
  const csde_problem *P = csde_stepper_problem(S);
  double eta = csde_stepper_params(S)->eta;
  if (!(eta >= 0 && eta <= 1))
    return csde_err_set(err, CSDE_EDOM, "ddim: eta = %g outside [0, 1]", eta);
  csde_cov_ws *ws = NULL;
  int s = eta > 0 ? csde_cov_ws_alloc(&ws, P->C, P->D, csde_stepper_threads(S), err) : 0;
  csde_stepper_set_state(S, ws);
  return s;
}

static void ddim_free(csde_stepper *S)
{
  csde_cov_ws_free(csde_stepper_state(S));
  csde_stepper_set_state(S, NULL);
}

static int ddim_step(csde_stepper *S, double t, double u, double *x, const double *dW, int last)
{
  (void)dW;
  (void)last;
  const csde_problem *P = csde_stepper_problem(S);
  const csde_solve_params *par = csde_stepper_params(S);
  double *d = csde_stepper_buf(S, 0), *z = csde_stepper_buf(S, 1);
  const long n = (long)csde_stepper_n(S);
  int s = csde_stepper_cscore(S, t, x, d); /* d = C grad log p_t(x) */
  if (s) return s;
  double cx, cd, c, sig2;
  if (csde_schedule_is_vp(P->sched)) {
    double Bt = csde_schedule_int_beta(P->sched, t), Bu = csde_schedule_int_beta(P->sched, u);
    double at = exp(-Bt), au = exp(-Bu), omt = -expm1(-Bt), omu = -expm1(-Bu);
    c = -sqrt(omt); /* d = delta_theta = -sqrt(1 - abar_t) C grad log p */
    /* sig^2 = eta^2 (1-abar_s)/(1-abar_t) (1 - abar_t/abar_s) */
    sig2 = par->eta * par->eta * omu / omt * -expm1(Bu - Bt);
    cx = sqrt(au / at), cd = sqrt(fmax(omu - sig2, 0.0)) - sqrt(au / at) * sqrt(omt);
  } else { /* a path: the same step in (alpha, sigma, lambda), h = lambda_s - lambda_t */
    double at, gt, lt, au, gu, lu;
    csde_stepper_view(S, t, &at, &gt, &lt);
    csde_stepper_view(S, u, &au, &gu, &lu);
    c = -gt; /* d = -sigma_t C grad log p */
    /* sig^2 = eta^2 sigma_s^2 (1 - e^{-2h}) */
    sig2 = par->eta * par->eta * gu * gu * -expm1(-2 * (lu - lt));
    /* x_s = alpha_s (x - sigma_t d) / alpha_t + sqrt(sigma_s^2 - sig^2) d */
    cx = au / at, cd = sqrt(fmax(gu * gu - sig2, 0.0)) - au / at * gt;
  }
  for (long i = 0; i < n; i++) d[i] *= c;
  /* x_s = cx x + cd d (VP: sqrt(abar_s) (x - sqrt(1-abar_t) d) / sqrt(abar_t) + ...) */
  for (long i = 0; i < n; i++) x[i] = cx * x[i] + cd * d[i];
  if (sig2 > 0) {
    csde_rng_key key = {par->seed, (uint64_t)csde_stepper_step(S)};
    csde_err err;
    if ((s = csde_cov_sample(P->C, csde_stepper_state(S), key, par->first_sample, P->batch, z,
                             &err)))
      return csde_stepper_fail(S, s, "%s", err.msg);
    double sg = sqrt(sig2);
    for (long i = 0; i < n; i++) x[i] += sg * z[i];
  }
  return CSDE_SUCCESS;
}

static const csde_solver_option ddim_options[] = {
  {"eta", offsetof(csde_solve_params, eta), 0, 1, "E"}, {NULL, 0, 0, 0, NULL}};

const csde_solver_type csde_solver_ddim = {
  .name = "ddim",
  .summary = "DDIM: PF-ODE, order 1 (--process ddim:eta=E: noise)",
  .ode = 1, .own_noise = 1,
  .nfe_per_step = 1, .order_ode = 1.0,
  .nbuf = 2,
  .view = CSDE_VIEW_ALPHA_START,
  .options = ddim_options,
  .init = ddim_init, .free = ddim_free, .step = ddim_step,
};
