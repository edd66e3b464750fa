/* Internal: what an integrator in solvers/ sees, and its type table.
 *
 * The solve loop (src/solve/solve.c) owns the grid, the noise and the buffers; a solver
 * only advances the state. It asks the process layer for the drift f(t, x) and the
 * diffusion g(t) through csde_stepper_drift / csde_stepper_diffusion, and never
 * re-derives MATH.md's formulas. */
#ifndef CSDE_SOLVE_STEPPER_H
#define CSDE_SOLVE_STEPPER_H

#include <stddef.h>

#include "corrsde/solve.h"

typedef struct csde_stepper csde_stepper;

/* A solver option: "key=value" in the solver spec sets the double at `offset` in
 * csde_solve_params, lo <= value <= hi ("inf" for an infinite hi). */
enum { CSDE_ADAPT_ODE = 1, CSDE_ADAPT_SDE = 2 }; /* csde_solver_type.adaptive */

/* csde_solver_type.view: what the steps of a solver on the denoiser view (process.h:
 * alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda = log(alpha / sigma)) divide by.
 * csde_solver_alloc refuses a grid with a node where that is 0: sigma = 0 where abar = 1
 * (t = 0), alpha = 0 where abar = 0 (cosine at t = 1, or abar underflowing). */
enum {
  CSDE_VIEW_SIGMA_START = 1, /* sigma at a step's start (steps in lambda or sigma/alpha) */
  CSDE_VIEW_SIGMA_END = 2,   /* sigma at a step's end (multistep ratios of lambda steps) */
  CSDE_VIEW_ALPHA_START = 4, /* alpha at a step's start (x / alpha) */
  CSDE_VIEW_ALPHA_END = 8,   /* alpha at a step's end */
  CSDE_VIEW_LAMBDA = 15      /* all four: steps in lambda with multistep ratios */
};

typedef struct {
  const char *key;
  size_t offset; /* offsetof(csde_solve_params, field) */
  double lo, hi;
  const char *what; /* "S", "A": the value's letter in the spec's words */
} csde_solver_option;

struct csde_solver_type {
  const char *name;
  const char *alias;       /* another accepted name, or NULL */
  const char *summary;     /* one line for --help: the method, its processes and order */
  int sde, ode;            /* 1 if it integrates SDEs / ODEs */
  int adaptive;            /* what it can run with rtol/atol (evolve): CSDE_ADAPT_ODE |
                              CSDE_ADAPT_SDE bits, 0: fixed steps only */
  unsigned nfe_per_step;   /* model evaluations per fixed step */
  double order_ode, order_strong, order_weak; /* theory for additive noise (0: n/a) */
  unsigned nbuf;           /* state-sized buffers the loop allocates for it */
  unsigned nbuf_adaptive;  /* ... when it runs adaptive (0: nbuf) */
  unsigned nbuf_own;       /* state-sized buffers it allocates itself (GSL's stages), for
                              the run's memory estimate */
  int reverse_only;        /* 1: a sampler of the reverse process only (not forward-sde) */
  int via_process;         /* 1: reached through its process only (ddpm: csde_sample_ddpm);
                              not offered for --solver */
  int area;                /* 1: the step also needs the increment's space-time Levy area
                              V' H (csde_stepper_area), H = (1/h) int (W_s - W_t0 -
                              (s - t0)/h dW) ds */
  unsigned view;           /* CSDE_VIEW_* bits: the nodes its steps cannot touch */
  int own_noise;           /* 1: the loop draws no increment (dW = NULL); the step takes
                              the drift from csde_stepper_drift_parts and adds
                              its noise through csde_stepper_advance */
  const csde_solver_option *options; /* its spec options (name:key=value,...), ended by a
                              NULL key; NULL: none */
  size_t state_size;       /* > 0: the loop allocates a state of this size, zeroes it at the
                              start of every run and frees it (multistep histories) */
  /* Private state (e.g. GSL objects), stored with csde_stepper_set_state. May be NULL. */
  int (*init)(csde_stepper *S, csde_err *err);
  void (*free)(csde_stepper *S);
  /* Called at the start of every run (forget what was known of the last one). May be NULL. */
  void (*reset)(csde_stepper *S);
  /* One step t0 -> t1 (h = t1 - t0 of either sign). dW: the coloured increment
   * V'(W(t1) - W(t0)) for SDEs, NULL for ODEs; the SDE update adds g dW. `last` is 1 on
   * the final step. */
  int (*step)(csde_stepper *S, double t0, double t1, double *x, const double *dW, int last);
  /* Adaptive: one accepted step from *t towards t1 (never past it) with trial step *h,
   * updating *t, *h and x. NULL if not adaptive. */
  int (*evolve)(csde_stepper *S, double *t, double t1, double *h, double *x);
};

/* f = drift of the problem's process at (t, x), over the whole state. Counts one NFE,
 * enforces max_nfe (CSDE_EMAXITER), checks the model's output (CSDE_ENAN). Returns 0 or a
 * status whose message is on the solver; CSDE_ERETRY means the model asked for a smaller
 * step (an adaptive solver retries; a fixed-step one fails with it). */
int csde_stepper_drift(csde_stepper *S, double t, const double *x, double *f);
/* The drift at (t, x) as f = cx x + cs src, without forming f (src: the model's output
 * or C times it; NULL for the forward SDE). Counts one NFE like csde_stepper_drift, but
 * src is checked only by csde_stepper_advance, which must consume it. */
int csde_stepper_drift_parts(csde_stepper *S, double t, const double *x, double *cx,
                             double *cs, const double **src);
/* The drift at (t, x) as f = cx x + cs dst, the model's output kept in dst (process.h,
 * csde_proc_drift_src): counted like csde_stepper_drift, NOT checked. The solver checks
 * dst in a pass of its own and reports a non-finite value with csde_stepper_src_error
 * (t: the time of the call that wrote it). */
int csde_stepper_drift_src(csde_stepper *S, double t, const double *x, double *dst, double *cx,
                           double *cs);
int csde_stepper_src_error(csde_stepper *S, double t, const double *src);
/* x <- a x + b u + g(t0) dW in one pass, u the src of csde_stepper_drift_parts (NULL: no
 * b u term; a non-finite u fails with CSDE_ENAN). For SDEs dW is this step's increment
 * V'(W(t1) - W(t0)), drawn and coloured tile by tile inside the pass; for ODEs there is no
 * noise term. For solvers with own_noise. */
int csde_stepper_advance(csde_stepper *S, double t0, double t1, double *x, double a, double b,
                         const double *u);
/* The denoiser view at t: alpha = sqrt(abar), sigma = sqrt(1 - abar), lambda =
 * log(alpha / sigma) (process.h). */
void csde_stepper_view(const csde_stepper *S, double t, double *alpha, double *sigma,
                       double *lambda);
/* x0 = the model's data prediction at (t, x) (process.h, csde_proc_denoise). Counts one
 * NFE and checks the output like csde_stepper_drift. */
int csde_stepper_denoise(csde_stepper *S, double t, const double *x, double *x0);
/* s = C grad log p_t(x) from one model call (process.h, csde_proc_cscore), counted and
 * checked like csde_stepper_drift. */
int csde_stepper_cscore(csde_stepper *S, double t, const double *x, double *s);
/* The problem being solved, and the index of the step being taken (0: the first). */
const csde_problem *csde_stepper_problem(const csde_stepper *S);
size_t csde_stepper_step(const csde_stepper *S);
/* g(t) = sqrt(beta(t)) for SDEs, 0 for ODEs. */
double csde_stepper_diffusion(const csde_stepper *S, double t);
/* dW = V' (W(t1) - W(t0)) of the run's path noise at any t0, t1 (adaptive SDE steps: a
 * rejected step asks again and sees the same path). */
int csde_stepper_noise(csde_stepper *S, double t0, double t1, double *dW);
/* The same with dH = V' H over [t0, t1] (dH NULL: none). */
int csde_stepper_noise_area(csde_stepper *S, double t0, double t1, double *dW, double *dH);
/* The type being run. */
const csde_solver_type *csde_stepper_type(const csde_stepper *S);
/* Adaptive SDE steps (sde_adapt.c): one accepted step (an evolve) for an embedded pair
 * whose trial, from x at t0 with k1 = f(t0, x) in buffer 0 and the noise dW (dH for types
 * with .area, else NULL) over the signed step h, writes x_new to buffer 3 and the
 * difference e = x_new - x_low to buffer 1 (buffer 2 is the trial's own, then scratch).
 * Buffers 4 (dW) and 5 (dH) are the controller's: the type's nbuf_adaptive covers them.
 * err_prev: the controller's memory in the solver's state (0 at the start of a run). */
/* A trial's Euler-Maruyama stage: xe = x + h k1 + g(t0) dW (k1 in buffer 0), fe = f(t0 + h,
 * xe). */
int csde_stepper_em_stage(csde_stepper *S, double t0, double h, const double *x, const double *dW,
                          double *xe, double *fe);
typedef int (*csde_sde_trial_fn)(csde_stepper *S, double t0, double h, const double *x,
                                 const double *dW, const double *dH);
int csde_stepper_sde_evolve(csde_stepper *S, double *t, double t1, double *h, double *x,
                            csde_sde_trial_fn trial, double *err_prev);
/* V' H of this step, with dW (types with .area on an SDE; else NULL). */
const double *csde_stepper_area(const csde_stepper *S);
/* y = cx x + w[0] b[0] + ... + w[k-1] b[k-1] in one parallel pass over the state, summed
 * left to right (the linear combinations of the exponential integrators and multistep
 * methods). y may be x or one of the b[j]. A call per step, not per element. */
void csde_stepper_lincomb(const csde_stepper *S, double *y, double cx, const double *x,
                          unsigned k, const double *w, const double *const *b);
/* The state length batch * tau * D. */
size_t csde_stepper_n(const csde_stepper *S);
/* Buffer k < nbuf, each state-sized, 64-byte aligned. */
double *csde_stepper_buf(csde_stepper *S, unsigned k);
const csde_solve_params *csde_stepper_params(const csde_stepper *S);
int csde_stepper_threads(const csde_stepper *S);
void *csde_stepper_state(const csde_stepper *S);
void csde_stepper_set_state(csde_stepper *S, void *state);
/* A zeroed private state of `size` bytes, set as the solver's (CSDE_ENOMEM on failure),
 * and its free (a type's .free when the state is one block). */
int csde_stepper_state_alloc(csde_stepper *S, size_t size, csde_err *err);
void csde_stepper_state_free(csde_stepper *S);
/* Record an accepted / rejected step. */
void csde_stepper_count(csde_stepper *S, int accepted);
/* Record a failure message (printf-style) on the solver; returns status. */
int csde_stepper_fail(csde_stepper *S, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
