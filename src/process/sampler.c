/* Discrete samplers: DDPM ancestral (eq. 2 with V' z noise) and DDIM(eta) (solve.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "corrsde/discrete.h"
#include "corrsde/solve.h" /* the samplers take solve parameters: a cycle left for issue 12's
                              samplers in the solver table */
#include "process/process.h"

typedef struct {
  csde_proc pr;
  csde_cov_ws *ws;
  double *d, *xn; /* noise prediction, next state */
} sampler;

static void sampler_free(sampler *sm)
{
  csde_proc_free(&sm->pr);
  csde_cov_ws_free(sm->ws);
  csde_free(sm->d);
  csde_free(sm->xn);
}

static int sampler_init(sampler *sm, const csde_problem *P, int threads, csde_err *err)
{
  memset(sm, 0, sizeof *sm);
  csde_problem Q = *P;
  Q.process = CSDE_PROC_PFODE; /* any model-driven process: only the score is used */
  int s = csde_proc_init(&sm->pr, &Q, threads, 0, err);
  if (!s) s = csde_cov_ws_alloc(&sm->ws, P->C, P->D, threads, err);
  if (!s) {
    sm->d = csde_alloc(sm->pr.n, sizeof(double));
    sm->xn = csde_alloc(sm->pr.n, sizeof(double));
    if (!sm->d || !sm->xn) s = csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", sm->pr.n);
  }
  if (s) sampler_free(sm);
  return s;
}

/* d = delta_theta = -sqrt(1 - abar(t)) C grad log p_t(x) */
static int noise_pred(sampler *sm, double t, size_t step, const double *x, csde_err *err)
{
  int s = csde_proc_cscore(&sm->pr, t, step, x, sm->d, err);
  if (s) return s;
  double c = -sqrt(-expm1(-csde_schedule_int_beta(sm->pr.P.sched, t)));
  for (size_t i = 0; i < sm->pr.n; i++) sm->d[i] *= c;
  return CSDE_SUCCESS;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int csde_sample_ddpm(const csde_problem *P, const csde_solve_params *par, double *x,
                     csde_solve_stats *stats, csde_err *err)
{
  csde_solve_params dp = par ? *par : csde_solve_default_params();
  size_t N = csde_schedule_nsteps(P->sched);
  if (N == 0)
    return csde_err_set(err, CSDE_EINVAL,
                        "ddpm needs a discrete schedule (e.g. ddpm-linear:n=1000), not '%s'",
                        csde_schedule_spec(P->sched));
  sampler sm;
  int s = sampler_init(&sm, P, dp.threads, err);
  if (s) return s;
  csde_solve_stats st;
  memset(&st, 0, sizeof st);
  double start = now();
  size_t n = sm.pr.n;
  for (size_t i = N; i >= 1 && !s; i--) {
    double t = (double)i / (double)N; /* step i <-> t = i/N, where abar(t) = abar_i */
    if ((s = noise_pred(&sm, t, N - i, x, err))) break;
    st.nfe++;
    csde_rng_key key = {dp.seed, (uint64_t)(N - i)};
    s = csde_discrete_ancestral_step(P->sched, i, P->C, sm.ws, key, dp.first_sample, P->batch,
                                     x, sm.d, sm.xn, err);
    if (s) break;
    memcpy(x, sm.xn, n * sizeof *x);
    st.steps++;
    st.accepted++;
    if (dp.observer && dp.observer(st.steps, (double)(i - 1) / (double)N, x, dp.observer_user)) {
      st.stopped = 1;
      break;
    }
  }
  st.wall_seconds = now() - start;
  if (stats) *stats = st;
  sampler_free(&sm);
  return s;
}

int csde_sample_ddim(const csde_problem *P, const csde_solve_params *par, double eta,
                     double *x, csde_solve_stats *stats, csde_err *err)
{
  csde_solve_params dp = par ? *par : csde_solve_default_params();
  if (!(eta >= 0 && eta <= 1))
    return csde_err_set(err, CSDE_EDOM, "ddim: eta = %g outside [0, 1]", eta);
  if (dp.steps == 0) return csde_err_set(err, CSDE_EINVAL, "ddim: zero steps");
  double *grid = NULL;
  size_t ns = 0;
  int s = csde_grid_make(dp.grid ? dp.grid : "uniform", P->sched, P->T, P->eps, dp.steps, &grid,
                         &ns, err);
  if (s) return s;
  sampler sm;
  if ((s = sampler_init(&sm, P, dp.threads, err))) {
    free(grid);
    return s;
  }
  csde_solve_stats st;
  memset(&st, 0, sizeof st);
  double start = now();
  size_t n = sm.pr.n;
  for (size_t k = 0; k < ns && !s; k++) {
    double t = grid[k], u = grid[k + 1];
    if ((s = noise_pred(&sm, t, k, x, err))) break;
    st.nfe++;
    double Bt = csde_schedule_int_beta(P->sched, t), Bu = csde_schedule_int_beta(P->sched, u);
    double at = exp(-Bt), au = exp(-Bu), omt = -expm1(-Bt), omu = -expm1(-Bu);
    /* sig^2 = eta^2 (1-abar_s)/(1-abar_t) (1 - abar_t/abar_s) */
    double sig2 = eta * eta * omu / omt * -expm1(Bu - Bt);
    double cx = sqrt(au / at), cd = sqrt(fmax(omu - sig2, 0.0)) - sqrt(au / at) * sqrt(omt);
    /* x_s = sqrt(abar_s) (x - sqrt(1-abar_t) d) / sqrt(abar_t) + sqrt(1-abar_s-sig^2) d */
    for (size_t i = 0; i < n; i++) x[i] = cx * x[i] + cd * sm.d[i];
    if (sig2 > 0) {
      csde_rng_key key = {dp.seed, (uint64_t)k};
      if ((s = csde_cov_sample(P->C, sm.ws, key, dp.first_sample, P->batch, sm.xn, err))) break;
      double sg = sqrt(sig2);
      for (size_t i = 0; i < n; i++) x[i] += sg * sm.xn[i];
    }
    st.steps++;
    st.accepted++;
    if (dp.observer && dp.observer(st.steps, u, x, dp.observer_user)) {
      st.stopped = 1;
      break;
    }
  }
  st.wall_seconds = now() - start;
  if (stats) *stats = st;
  sampler_free(&sm);
  free(grid);
  return s;
}
