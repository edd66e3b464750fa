/* DDPM ancestral sampling (stepper.h; MATH.md eq. 2 with V' z noise), one evaluation per
 * step, over the N steps of a discrete schedule: the grid t_k = (N - k) / N, step i = N - k
 * at t = i/N (where abar(t) = abar_i), from x_N to x_0:
 *   x_{i-1} = mu_theta + sqrt(beta~_i) V' z,  mu_theta = (x_i - beta_i / sqrt(1 - abar_i)
 *   delta_theta) / sqrt(alpha_i),  beta~_i = (1 - abar_{i-1}) / (1 - abar_i) beta_i
 * (csde_discrete_ancestral_step), delta_theta = -sqrt(1 - abar_i) C grad log p, z the
 * normals of stream N - i of the seed. Reached through `--process ddpm` and
 * csde_sample_ddpm, which solve the PF-ODE process from 1 to 0 with it.
 *
 * Buffers: 0 = delta_theta, 1 = x_{i-1}. */
#include <math.h>
#include <string.h>

#include "corrsde/discrete.h"
#include "solve/stepper.h"

static int ddpm_init(csde_stepper *S, csde_err *err)
{
  const csde_problem *P = csde_stepper_problem(S);
  size_t N = csde_schedule_nsteps(P->sched);
  if (N == 0)
    return csde_err_set(err, CSDE_EINVAL,
                        "ddpm needs a discrete schedule (e.g. ddpm-linear:n=1000), not '%s'",
                        csde_schedule_spec(P->sched));
  csde_cov_ws *ws = NULL;
  int s = csde_cov_ws_alloc(&ws, P->C, P->D, csde_stepper_threads(S), err);
  csde_stepper_set_state(S, ws);
  return s;
}

static void ddpm_free(csde_stepper *S)
{
  csde_cov_ws_free(csde_stepper_state(S));
  csde_stepper_set_state(S, NULL);
}

static int ddpm_step(csde_stepper *S, double t0, double t1, double *x, const double *dW,
                     int last)
{
  (void)t1;
  (void)dW;
  (void)last;
  const csde_problem *P = csde_stepper_problem(S);
  const csde_solve_params *par = csde_stepper_params(S);
  const size_t N = csde_schedule_nsteps(P->sched), i = (size_t)lround(t0 * (double)N);
  double *d = csde_stepper_buf(S, 0), *xn = csde_stepper_buf(S, 1);
  const long n = (long)csde_stepper_n(S);
  const double t = (double)i / (double)N; /* step i <-> t = i/N */
  int s = csde_stepper_cscore(S, t, x, d);
  if (s) return s;
  const double c = -sqrt(-expm1(-csde_schedule_int_beta(P->sched, t)));
  for (long k = 0; k < n; k++) d[k] *= c; /* delta_theta */
  csde_rng_key key = {par->seed, (uint64_t)(N - i)};
  csde_err err;
  if ((s = csde_discrete_ancestral_step(P->sched, i, P->C, csde_stepper_state(S), key,
                                        par->first_sample, P->batch, x, d, xn, &err)))
    return csde_stepper_fail(S, s, "%s", err.msg);
  memcpy(x, xn, (size_t)n * sizeof *x);
  return CSDE_SUCCESS;
}

const csde_solver_type csde_solver_ddpm = {
  .name = "ddpm",
  .summary = "DDPM ancestral, a discrete schedule (--process ddpm)",
  .via_process = 1, .own_noise = 1,
  .nfe_per_step = 1, .order_weak = 1.0,
  .nbuf = 2,
  .init = ddpm_init, .free = ddpm_free, .step = ddpm_step,
};
