/* The solve loop: grid -> noise -> step -> observer, with statistics and errors.
 * It owns every buffer; the solvers in solvers/ only advance the state (stepper.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "noise/noise.h"
#include "process/process.h"
#include "solve/augment.h"
#include "solve/corrector.h"
#include "solve/grid.h"
#include "solve/stepper.h"

struct csde_stepper {
  csde_problem P;
  csde_solve_params par;
  const csde_solver_type *type;
  csde_proc proc;
  csde_noise noise;
  csde_grid_map gmap;   /* path noise: the tree's time map */
  csde_cov_ws *ws;      /* noise colouring */
  double *grid;         /* fixed-step grid, nsteps + 1 times */
  size_t nsteps;
  double *bufs;         /* nbuf state-sized buffers in one allocation, then dW if needed */
  double *dH;           /* its Levy area V' H (types with .area), else NULL */
  double *dW;           /* the increment (SDEs, unless the solver draws its own
                           streaming noise), else NULL */
  size_t n;
  void *state;          /* the solver's own */
  size_t step;          /* the step being taken (labels messages) */
  csde_solve_stats st;
  csde_err err;
  csde_corrector corr;  /* the predictor-corrector's Langevin steps (corrector.c) */
  size_t naug;          /* augment.h: values carried after the process's n (0: none) */
  csde_aug_fn aug;
  void *aug_user;
  double *augf;         /* the whole derivative for drift_parts (n values) */
};

struct csde_solver {
  csde_stepper s;
};

csde_solve_params csde_solve_default_params(void)
{
  csde_solve_params p;
  memset(&p, 0, sizeof p);
  p.solver = "euler";
  p.steps = 100;
  p.grid = "uniform";
  p.max_nfe = 10000000;
  p.s_tmax = INFINITY;
  p.s_noise = 1;
  return p;
}

/* ---- what solvers call ---- */

int csde_stepper_fail(csde_stepper *S, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  S->err.status = status;
  vsnprintf(S->err.msg, sizeof S->err.msg, fmt, ap);
  va_end(ap);
  return status;
}

/* One model evaluation more, within max_nfe: its forward passes (2 when guided). */
static int count_nfe(csde_stepper *S, double t)
{
  const size_t k = csde_proc_passes(&S->proc);
  if (!k) return CSDE_SUCCESS;
  if (S->st.nfe + k > S->par.max_nfe)
    return csde_stepper_fail(S, CSDE_EMAXITER,
                             "NFE guard: the solve needs more than %zu model evaluations "
                             "(at t = %.6g, step %zu); raise the limit or loosen rtol/atol",
                             S->par.max_nfe, t, S->step);
  S->st.nfe += k;
  return CSDE_SUCCESS;
}

int csde_stepper_drift(csde_stepper *S, double t, const double *x, double *f)
{
  int s = count_nfe(S, t);
  if (!s) s = csde_proc_drift(&S->proc, t, S->step, x, f, &S->err);
  if (!s && S->aug) /* augment.h: d/dt of the carried values */
    s = S->aug(S->aug_user, t, S->step, x, f, f + S->proc.n, &S->err);
  return s;
}

int csde_stepper_drift_parts(csde_stepper *S, double t, const double *x, double *cx,
                             double *cs, const double **src)
{
  if (S->aug) { /* the whole derivative: f = 0 x + 1 src */
    *cx = 0, *cs = 1, *src = S->augf;
    return csde_stepper_drift(S, t, x, S->augf);
  }
  int s = count_nfe(S, t);
  return s ? s : csde_proc_drift_parts(&S->proc, t, S->step, x, cx, cs, src, &S->err);
}

int csde_stepper_drift_src(csde_stepper *S, double t, const double *x, double *dst, double *cx,
                           double *cs)
{
  if (S->aug) {
    *cx = 0, *cs = 1;
    return csde_stepper_drift(S, t, x, dst);
  }
  int s = count_nfe(S, t);
  return s ? s : csde_proc_drift_src(&S->proc, t, S->step, x, dst, cx, cs, &S->err);
}

int csde_stepper_src_error(csde_stepper *S, double t, const double *src)
{
  return csde_proc_src_error(&S->proc, t, S->step, src, &S->err);
}

int csde_stepper_advance(csde_stepper *S, double t0, double t1, double *x, double a, double b,
                         const double *u)
{
  int bad = 0, s;
  if (csde_process_is_sde(S->P.process)) {
    s = csde_noise_axpy(&S->noise, S->step, t0, t1, csde_proc_diffusion(&S->proc, t0), a, x, b,
                        u, S->dW, &bad, &S->err);
    if (s) return s;
  } else {
    bad = csde_axpby_checked(csde_stepper_threads(S), S->n, a, x, b, u, 0.0, NULL);
  }
  return bad ? csde_proc_output_error(&S->proc, t0, S->step, &S->err) : CSDE_SUCCESS;
}

void csde_stepper_view(const csde_stepper *S, double t, double *alpha, double *sigma,
                       double *lambda)
{
  csde_proc_view(&S->proc, t, alpha, sigma, lambda);
}

int csde_stepper_denoise(csde_stepper *S, double t, const double *x, double *x0)
{
  int s = count_nfe(S, t);
  return s ? s : csde_proc_denoise(&S->proc, t, S->step, x, x0, &S->err);
}

int csde_stepper_cscore(csde_stepper *S, double t, const double *x, double *out)
{
  int s = count_nfe(S, t);
  return s ? s : csde_proc_cscore(&S->proc, t, S->step, x, out, &S->err);
}

const csde_problem *csde_stepper_problem(const csde_stepper *S) { return &S->P; }
size_t csde_stepper_step(const csde_stepper *S) { return S->step; }

const double *csde_stepper_area(const csde_stepper *S) { return S->dH; }

int csde_stepper_noise(csde_stepper *S, double t0, double t1, double *dW)
{
  return csde_noise_increment(&S->noise, S->step, t0, t1, dW, &S->err);
}

int csde_stepper_noise_area(csde_stepper *S, double t0, double t1, double *dW, double *dH)
{
  return csde_noise_increment_area(&S->noise, S->step, t0, t1, dW, dH, &S->err);
}

const csde_solver_type *csde_stepper_type(const csde_stepper *S) { return S->type; }

double csde_stepper_diffusion(const csde_stepper *S, double t)
{
  return csde_proc_diffusion(&S->proc, t);
}

size_t csde_stepper_n(const csde_stepper *S) { return S->n; }
double *csde_stepper_buf(csde_stepper *S, unsigned k) { return S->bufs + (size_t)k * S->n; }
const csde_solve_params *csde_stepper_params(const csde_stepper *S) { return &S->par; }
int csde_stepper_threads(const csde_stepper *S) { return S->par.threads > 0 ? S->par.threads : 1; }
void *csde_stepper_state(const csde_stepper *S) { return S->state; }
void csde_stepper_set_state(csde_stepper *S, void *state) { S->state = state; }

int csde_stepper_state_alloc(csde_stepper *S, size_t size, csde_err *err)
{
  void *st = calloc(1, size);
  if (!st) return csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu bytes)", size);
  S->state = st;
  return CSDE_SUCCESS;
}

void csde_stepper_state_free(csde_stepper *S)
{
  free(S->state);
  S->state = NULL;
}

void csde_stepper_count(csde_stepper *S, int accepted)
{
  if (accepted)
    S->st.accepted++;
  else
    S->st.rejected++;
}

/* ---- allocation ---- */

/* The grid against what the solver divides by: a solver on the denoiser view needs
 * sigma > 0 or alpha > 0 at the nodes its type's view bits name (stepper.h). (A span
 * from where the drift is infinite, cosine's or rf's t = 1, csde_proc_init refuses; a
 * noise, x0 or v answer at sigma = 0, the process layer when it is asked for one.) */
static int check_span(csde_stepper *S, double t0, double t1, csde_err *err)
{
  const unsigned v = S->type->view;
  for (size_t k = 0; v && S->grid && k <= S->nsteps; k++) {
    double a, sg, l;
    csde_proc_view(&S->proc, S->grid[k], &a, &sg, &l);
    const int starts = k < S->nsteps, ends = k > 0;
    const int no_sigma = !(sg > 0) && ((starts && (v & CSDE_VIEW_SIGMA_START)) ||
                                       (ends && (v & CSDE_VIEW_SIGMA_END)));
    const int no_alpha = !(a > 0) && ((starts && (v & CSDE_VIEW_ALPHA_START)) ||
                                      (ends && (v & CSDE_VIEW_ALPHA_END)));
    if (!no_sigma && !no_alpha) continue;
    const int end = k == 0 || k == S->nsteps;
    char where[96];
    if (k == 0)
      snprintf(where, sizeof where, "the span's start t_start = %g", t0);
    else if (k == S->nsteps)
      snprintf(where, sizeof where, "the span's end t_end = %g", t1);
    else
      snprintf(where, sizeof where, "grid node %zu (t = %.17g)", k, S->grid[k]);
    if (no_sigma)
      return csde_err_blame(
          err, CSDE_PARAM_SPAN,
          csde_err_set(err, CSDE_EINVAL,
                       "solver '%s' steps on the denoiser view and divides by sigma(t) = "
                       "sqrt(1 - abar(t)) at a step's %s, which is 0 at %s (abar = 1, "
                       "log-SNR +inf); expected %s > 0 (e.g. 1e-3, the default), or a "
                       "solver such as euler, heun or rk45",
                       S->type->name, starts && (v & CSDE_VIEW_SIGMA_START) ? "start" : "end",
                       where, k == 0 ? "t_start" : "t_end"));
    return csde_err_blame(
        err, end ? CSDE_PARAM_SPAN : CSDE_PARAM_SCHEDULE,
        csde_err_set(err, end ? CSDE_EINVAL : CSDE_EDOM,
                     "solver '%s' steps on the denoiser view and divides by alpha(t) = "
                     "sqrt(abar(t)), which is 0 at %s (B(t) = -log abar(t) = %g); expected "
                     "a span and a schedule where abar stays above 0 (end earlier, or a "
                     "smaller beta), or a solver such as euler, heun or rk45",
                     S->type->name, where, csde_schedule_int_beta(S->P.sched, S->grid[k])));
  }
  return CSDE_SUCCESS;
}

void csde_solver_free(csde_solver *solver)
{
  if (!solver) return;
  csde_stepper *S = &solver->s;
  if (S->type && S->type->free) S->type->free(S);
  if (S->type && S->type->state_size) csde_stepper_state_free(S);
  csde_noise_free(&S->noise);
  csde_corrector_free(&S->corr);
  csde_proc_free(&S->proc);
  csde_cov_ws_free(S->ws);
  free(S->grid);
  csde_free(S->bufs);
  csde_free(S->augf);
  free(solver);
}

int csde_solver_type_carries(const csde_solver_type *T)
{
  return T && T->ode && !T->view && !T->via_process;
}

char *csde_solver_carry_names(char *buf, size_t len)
{
  size_t k = 0;
  if (len) buf[0] = '\0';
  for (const csde_solver_type *const *t = csde_solver_types(); *t; t++)
    if (csde_solver_type_carries(*t) && k < len)
      k += (size_t)snprintf(buf + k, len - k, "%s%s", k ? ", " : "", (*t)->name);
  return buf;
}

int csde_solver_alloc(csde_solver **out, const csde_problem *P, const csde_solve_params *par,
                      csde_err *err)
{
  return csde_solver_alloc_aug(out, P, par, 0, NULL, NULL, err);
}

int csde_solver_alloc_aug(csde_solver **out, const csde_problem *P,
                          const csde_solve_params *par, size_t naug, csde_aug_fn fn,
                          void *user, csde_err *err)
{
  *out = NULL;
  csde_solver *solver = calloc(1, sizeof *solver);
  if (!solver) return csde_err_set(err, CSDE_ENOMEM, "out of memory");
  csde_stepper *S = &solver->s;
  S->P = *P;
  S->par = par ? *par : csde_solve_default_params();
  int s, sde = csde_process_is_sde(P->process);
  const char *name = S->par.solver ? S->par.solver : "euler";
  S->type = csde_solver_lookup(name);
  int fits = S->type && (csde_solver_type_fits(S->type, P->process) ||
                         (S->type->via_process && P->process == CSDE_PROC_PFODE));
  if (!fits) {
    char list[256] = "";
    size_t len = 0;
    for (const csde_solver_type *const *t = csde_solver_types(); *t; t++)
      if (csde_solver_type_fits(*t, P->process))
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                csde_solver_type_name(*t));
    s = csde_err_set(err, CSDE_EINVAL, "solver '%s' %s process %s (solvers that do: %s)", name,
                     S->type ? "does not fit" : "is unknown for", csde_process_name(P->process),
                     list);
    s = csde_err_blame(err, CSDE_PARAM_SOLVER, s);
    goto fail;
  }
  if (naug && (sde || !csde_solver_type_carries(S->type) || S->par.corrector_steps)) {
    char names[256];
    s = csde_err_set(err, CSDE_EINVAL, "%s cannot carry the log-density: %s%s%s", name,
                     sde ? "the process is an SDE"
                     : S->par.corrector_steps ? "a corrector changes the state off the ODE"
                     : "it steps on the denoiser view, not on the drift f (use ",
                     sde || S->par.corrector_steps ? ""
                     : csde_solver_carry_names(names, sizeof names),
                     sde || S->par.corrector_steps ? "" : ")");
    s = csde_err_blame(err, CSDE_PARAM_SOLVER, s);
    goto fail;
  }
  S->naug = naug, S->aug = naug ? fn : NULL, S->aug_user = user;
  int adaptive = S->par.rtol > 0 || S->par.atol > 0;
  if (adaptive && !(S->type->adaptive & (sde ? CSDE_ADAPT_SDE : CSDE_ADAPT_ODE))) {
    s = csde_err_blame(err, CSDE_PARAM_TOLERANCES,
                       csde_err_set(err, CSDE_EINVAL, "solver '%s' has no adaptive mode (rtol/atol) "
                                                      "for %s", name, sde ? "SDEs" : "ODEs"));
    goto fail;
  }
  if (adaptive && sde && S->par.noise != CSDE_NOISE_PATH) {
    s = csde_err_blame(err, CSDE_PARAM_NOISE,
                       csde_err_set(err, CSDE_EINVAL, "adaptive SDE steps need path noise (a "
                                                      "rejected step must see the same path)"));
    goto fail;
  }
  if (adaptive && !(S->par.rtol >= 0 && S->par.atol >= 0)) {
    s = csde_err_set(err, CSDE_EDOM, "rtol and atol must be >= 0 (rtol %g, atol %g)",
                     S->par.rtol, S->par.atol);
    s = csde_err_blame(err, CSDE_PARAM_TOLERANCES, s);
    goto fail;
  }
  if (!adaptive && S->par.steps == 0) {
    s = csde_err_set(err, CSDE_EINVAL, "zero steps: give steps >= 1, or rtol/atol for an adaptive solver");
    s = csde_err_blame(err, CSDE_PARAM_STEPS, s);
    goto fail;
  }
  if (S->par.corrector_steps) { /* the corrector: after the steps of a sampler of p_t */
    const char *why = adaptive ? "adaptive steps (rtol/atol): it follows fixed steps only"
                      : P->process == CSDE_PROC_FORWARD_SDE ? "forward-sde (no score)"
                      : P->process == CSDE_PROC_PFODE_ENCODE ? "pf-ode-encode (it samples, "
                                                               "the encode maps data)"
                      : S->type->via_process ? "a discrete sampler (ddpm)"
                      : !(S->par.corrector_snr > 0) ? "snr <= 0"
                      : S->par.corrector_steps > CSDE_CORRECTOR_MAX_STEPS ? "too many steps"
                                                                          : NULL;
    if (why) {
      s = csde_err_blame(err, CSDE_PARAM_CORRECTOR,
                         csde_err_set(err, CSDE_EINVAL, "the Langevin corrector does not "
                                      "apply to %s", why));
      goto fail;
    }
    if ((s = csde_corrector_init(&S->corr, P->C, P->batch, P->D, S->par.threads,
                                 S->par.corrector_steps, S->par.corrector_snr, err))) {
      s = csde_err_blame(err, s == CSDE_ENOMEM ? CSDE_PARAM_SIZE : CSDE_PARAM_CORRECTOR, s);
      goto fail;
    }
  }
  if (P->sched && !csde_schedule_is_vp(P->sched) && S->type->via_process) {
    /* issue 28: the discrete chain is VP-only (the denoiser-view steps run on every path) */
    s = csde_err_set(err, CSDE_ENOTSUP,
                     "solver '%s' runs the discrete VP chain, not on schedule '%s' (the %s "
                     "path): use another solver or a variance-preserving schedule",
                     S->type->name, csde_schedule_spec(P->sched),
                     csde_schedule_path_name(P->sched));
    s = csde_err_blame(err, CSDE_PARAM_SCHEDULE, s);
    goto fail;
  }
  if ((s = csde_proc_init(&S->proc, P, S->par.threads, S->type->own_noise, err))) goto fail;
  S->proc.first = S->par.first_sample; /* the model sees the whole batch in each call */
  if (S->par.preview && (s = csde_proc_preview_alloc(&S->proc, err))) goto fail;
  S->n = S->proc.n + S->naug;
  if (S->aug && !(S->augf = csde_alloc(S->n, sizeof(double)))) {
    s = csde_err_blame(err, CSDE_PARAM_SIZE,
                       csde_err_set(err, CSDE_ENOMEM, "out of memory (%zu doubles)", S->n));
    goto fail;
  }
  double t0, t1;
  csde_problem_span(P, &t0, &t1);
  if (!adaptive &&
      (s = csde_grid_make(S->par.grid ? S->par.grid : "uniform", P->sched, t0, t1,
                          S->par.steps, &S->grid, &S->nsteps, err))) {
    s = csde_err_blame(err, CSDE_PARAM_GRID, s);
    goto fail;
  }
  if ((s = check_span(S, t0, t1, err))) goto fail;
  /* x and the model's output live elsewhere; here the solver's stages and dW */
  int need_dW = sde && (!S->type->own_noise || S->par.noise == CSDE_NOISE_PATH);
  const int need_dH = need_dW && S->type->area;
  const size_t nbt = adaptive && S->type->nbuf_adaptive ? S->type->nbuf_adaptive : S->type->nbuf;
  size_t nb = nbt + (size_t)need_dW + (size_t)need_dH;
  if (nb && !(S->bufs = csde_alloc(nb * S->n, sizeof(double)))) {
    s = csde_err_set(err, CSDE_ENOMEM, "out of memory for %zu state buffers of %zu doubles",
                     nb, S->n);
    s = csde_err_blame(err, CSDE_PARAM_SIZE, s);
    goto fail;
  }
  if (need_dW) S->dW = S->bufs + nbt * S->n;
  if (need_dH) S->dH = S->dW + S->n;
  if (sde) {
    if ((s = csde_cov_ws_alloc(&S->ws, P->C, P->D, S->par.threads, err))) {
      s = csde_err_blame(err, CSDE_PARAM_SIZE, s);
      goto fail;
    }
    int walk_k = -1; /* path: the tree's map is the grid kind's (uniform for a list) */
    if (S->par.noise == CSDE_NOISE_PATH) {
      const char *g = S->par.grid ? S->par.grid : "uniform";
      const int list = !strncmp(g, "list", 4) && (g[4] == ':' || g[4] == '\0');
      if ((s = csde_grid_map_make(list ? "uniform" : g, P->sched, t0, t1, &S->gmap, err)))
        goto fail;
      if (!list && S->nsteps && !(S->nsteps & (S->nsteps - 1)))
        while (((size_t)1 << ++walk_k) < S->nsteps) {
        }
    }
    s = csde_noise_init(&S->noise, S->par.noise, P->C, S->ws, P->batch, P->D, csde_grid_map_at,
                        &S->gmap, walk_k, S->par.threads, err);
    if (s) {
      s = csde_err_blame(err, CSDE_PARAM_NOISE, s);
      goto fail;
    }
    csde_noise_set_seed(&S->noise, S->par.seed, S->par.first_sample);
  }
  csde_err_clear(&S->err);
  if ((S->type->state_size && (s = csde_stepper_state_alloc(S, S->type->state_size, &S->err))) ||
      (S->type->init && (s = S->type->init(S, &S->err)))) {
    if (err) *err = S->err;
    s = csde_err_blame(err, S->err.status == CSDE_ENOMEM ? CSDE_PARAM_SIZE : CSDE_PARAM_SOLVER, s);
    goto fail;
  }
  *out = solver;
  return CSDE_SUCCESS;
fail:
  csde_solver_free(solver);
  return s;
}

void csde_solver_set_seed(csde_solver *solver, uint64_t seed, size_t first_sample)
{
  solver->s.par.seed = seed;
  solver->s.par.first_sample = first_sample;
  solver->s.proc.first = first_sample;
  csde_noise_set_seed(&solver->s.noise, seed, first_sample);
}

const char *csde_solver_warning(const csde_solver *S) { return csde_proc_warning(&S->s.proc); }

const double *csde_solver_grid(const csde_solver *solver, size_t *nsteps)
{
  if (nsteps) *nsteps = solver->s.nsteps;
  return solver->s.grid;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int observe(csde_stepper *S, double t, const double *x)
{
  if ((S->par.observer && S->par.observer(S->st.steps, t, x, S->par.observer_user)) ||
      (S->par.preview &&
       S->par.preview(S->st.steps, t, x, S->proc.x0_valid ? S->proc.x0 : NULL,
                      S->par.preview_user))) {
    S->st.stopped = 1;
    return 1;
  }
  S->proc.x0_valid = 0; /* the next step's evaluations */
  return 0;
}

/* The corrector's K Langevin steps at t after predictor step n (corrector.c): one model
 * evaluation each (counted as NFE), g = C grad log p_t(x) converted by the process. */
static int correct(csde_stepper *S, size_t n, double t, double *x)
{
  csde_corrector *c = &S->corr;
  for (size_t k = 0; k < c->steps; k++) {
    int s = csde_stepper_cscore(S, t, x, c->g);
    if (s) return s;
    if ((s = csde_corrector_langevin(c, csde_corrector_key(S->par.seed, n, k),
                                     S->par.first_sample, c->snr, 0, x, NULL, &S->err)))
      return s;
  }
  return CSDE_SUCCESS;
}

/* The state after the run: one that is not finite (a step too large for the problem, or
 * a model's answer too large; a NaN answer stops the run before) is an error, not a
 * result. */
static int state_check(csde_stepper *S, double t, const double *x)
{
  const size_t n = csde_stepper_n(S);
  double chk = 0; /* 0, or NaN when some x_i is not finite */
#pragma omp simd reduction(+ : chk)
  for (size_t i = 0; i < n; i++) chk += 0.0 * x[i];
  if (chk == 0) return CSDE_SUCCESS;
  size_t i = 0;
  while (i + 1 < n && isfinite(x[i])) i++;
  const size_t per = S->P.tau * S->P.D;
  return csde_err_set(&S->err, CSDE_ENAN,
                      "the state at step %zu (t = %.10g) is not finite: %g at index %zu "
                      "(sample %zu, frame %zu, pixel %zu); solver '%s' took steps too large "
                      "for this problem (take more, or an adaptive solver), or the model's "
                      "answers are", S->st.steps, t, x[i], i, S->par.first_sample + i / per,
                      (i % per) / S->P.D, i % S->P.D, S->type->name);
}

/* Run to t_end. The fixed-step loop takes the grid's steps; the adaptive one lands exactly
 * on every requested output time on the way, then on t_end. */
int csde_solver_run(csde_solver *solver, double *x, csde_solve_stats *stats, csde_err *err)
{
  csde_stepper *S = &solver->s;
  double start = now(), t0, t1;
  int s = CSDE_SUCCESS;
  memset(&S->st, 0, sizeof S->st);
  csde_err_clear(&S->err);
  csde_problem_span(&S->P, &t0, &t1);
  double tl = t0; /* the time of the state x holds */
  if (S->type->state_size) memset(S->state, 0, S->type->state_size);
  if (S->type->reset) S->type->reset(S);
  S->proc.x0_valid = 0;
  double *dW = S->type->own_noise ? NULL : S->dW;
  if (S->grid) {
    for (size_t n = 0; n < S->nsteps && !s; n++) {
      S->step = n;
      if (dW && (s = csde_noise_increment_area(&S->noise, n, S->grid[n], S->grid[n + 1], dW,
                                               S->dH, &S->err)))
        break;
      s = S->type->step(S, S->grid[n], S->grid[n + 1], x, dW, n + 1 == S->nsteps);
      if (!s && S->corr.steps) s = correct(S, n, S->grid[n + 1], x);
      if (s && S->err.status) s = S->err.status; /* the recorded reason, if any */
      if (s) break;
      S->st.steps++;
      S->st.accepted++;
      tl = S->grid[n + 1];
      if (observe(S, S->grid[n + 1], x)) break;
    }
  } else {
    double dir = t1 > t0 ? 1.0 : -1.0, t = t0, h = dir * fabs(t1 - t0) / 100.0;
    size_t k = 0;
    while (!s) {
      /* the next target: the next output time strictly ahead, else t_end */
      double target = t1;
      for (; k < S->par.n_out_times; k++) {
        double o = S->par.out_times[k];
        if (dir * (o - t) > 0 && dir * (t1 - o) > 0) {
          target = o;
          break;
        }
      }
      while (!s && t != target) {
        S->step = S->st.steps;
        s = S->type->evolve(S, &t, target, &h, x);
        if (s && S->err.status) s = S->err.status;
        if (s) break;
        S->st.steps++;
        tl = t;
        if (observe(S, t, x)) break;
      }
      if (S->st.stopped || t == t1) break;
      k++;
    }
  }
  if (!s) s = state_check(S, tl, x);
  S->st.wall_seconds = now() - start;
  if (stats) *stats = S->st;
  if (s && err) {
    if (S->err.status == s)
      *err = S->err;
    else
      csde_err_set(err, s, "solver '%s' failed at step %zu: %s", S->type->name, S->step,
                   csde_strerror(s));
  }
  return s;
}

int csde_solve(const csde_problem *P, const csde_solve_params *par, double *x,
               csde_solve_stats *stats, csde_err *err)
{
  csde_solver *S;
  int s = csde_solver_alloc(&S, P, par, err);
  if (s) return s;
  s = csde_solver_run(S, x, stats, err);
  csde_solver_free(S);
  return s;
}

/* ---- the discrete samplers: solver types (solvers/ddpm.c, ddim.c) on the PF-ODE process,
 * which draw their own noise ---- */

static csde_solve_params sampler_params(const csde_solve_params *par, const char *solver)
{
  csde_solve_params p = par ? *par : csde_solve_default_params();
  p.solver = solver;
  p.rtol = p.atol = 0;
  p.noise = CSDE_NOISE_STREAM;
  p.out_times = NULL;
  p.n_out_times = 0;
  if (!p.max_nfe) p.max_nfe = csde_solve_default_params().max_nfe;
  return p;
}

int csde_sample_ddpm(const csde_problem *P, const csde_solve_params *par, double *x,
                     csde_solve_stats *stats, csde_err *err)
{
  size_t N = csde_schedule_nsteps(P->sched);
  if (N == 0)
    return csde_err_set(err, CSDE_EINVAL,
                        "ddpm needs a discrete schedule (e.g. ddpm-linear:n=1000), not '%s'",
                        csde_schedule_spec(P->sched));
  csde_problem Q = *P;
  Q.process = CSDE_PROC_PFODE; /* only the model's answer is used */
  Q.T = 1;
  Q.eps = 0;
  csde_solve_params p = sampler_params(par, "ddpm");
  p.steps = N; /* the grid t_k = (N - k) / N */
  p.grid = "uniform";
  return csde_solve(&Q, &p, x, stats, err);
}

int csde_sample_ddim(const csde_problem *P, const csde_solve_params *par, double eta,
                     double *x, csde_solve_stats *stats, csde_err *err)
{
  if (!(eta >= 0 && eta <= 1))
    return csde_err_set(err, CSDE_EDOM, "ddim: eta = %g outside [0, 1]", eta);
  if (!par || par->steps == 0) return csde_err_set(err, CSDE_EINVAL, "ddim: zero steps");
  csde_problem Q = *P;
  Q.process = CSDE_PROC_PFODE;
  csde_solve_params p = sampler_params(par, "ddim");
  p.eta = eta;
  if (!p.grid) p.grid = "uniform";
  return csde_solve(&Q, &p, x, stats, err);
}
