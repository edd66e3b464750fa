/* corrsde/solve.h: continuous-time processes solved by pluggable integrators.
 *
 * Everything is written in model time t with a signed step h = t_{n+1} - t_n (MATH.md):
 *   forward SDE  (0 -> T)    dX = -1/2 beta X dt + sqrt(beta) V' dW
 *   reverse SDE  (T -> eps)  dX = [-1/2 beta X - beta C grad log p] dt + sqrt(beta) V' dW
 *                            (h < 0; this is MATH.md's reverse-time form with s = T - t)
 *   PF-ODE       (T -> eps)  dX/dt = -1/2 beta (X + C grad log p)
 *   PF-ODE encode (eps -> T) the same ODE forwards
 * The noise is additive: g(t) = sqrt(beta(t)) times the coloured Brownian increment
 * V' (W(t_{n+1}) - W(t_n)), whose white part has variance |h| per entry.
 */
#ifndef CORRSDE_SOLVE_H
#define CORRSDE_SOLVE_H

#include <stddef.h>
#include <stdint.h>
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"
#include "corrsde/problem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- time grids ----
 * A grid of N steps from t_start to t_end, nodes t_i = map(u_i), u_i = i/N, so the grid
 * with 2N steps contains the grid with N (what path-consistent noise needs). Kinds:
 *   uniform            t uniform
 *   quadratic          distance to the data end quadratic in u (dense near the data)
 *   karras[:rho=7]     uniform in sigma(t)^(1/rho)
 *   logsnr             uniform in log-SNR
 *   list:t0,t1,...     the user's nodes (first and last must be t_start and t_end)
 * The data end is the end with the smaller t. */
CSDE_API int csde_grid_make(const char *spec, const csde_schedule *s, double t_start, double t_end,
                   size_t N, double **times, size_t *nsteps, csde_err *err);

/* ---- integrators ---- */
typedef struct csde_solver_type csde_solver_type;
/* Look up by name: euler (alias em), heun, rk45 (GSL rkf45), rkck, rk8pd. */
CSDE_API const csde_solver_type *csde_solver_lookup(const char *name);
/* A solver spec "name[:key=value,...]": the type of its name (NULL if unknown). */
CSDE_API const csde_solver_type *csde_solver_spec_lookup(const char *spec);
/* The options of T in words ("churn=S,tmin=A,tmax=B,noise=N") in buf, or NULL if it has
 * none. */
CSDE_API char *csde_solver_type_options(const csde_solver_type *T, char *buf, size_t len);
/* All types, NULL-terminated. */
CSDE_API const csde_solver_type *const *csde_solver_types(void);
CSDE_API const char *csde_solver_type_name(const csde_solver_type *T);
/* Its other accepted name ("em" for euler), or NULL; a one-line description. */
CSDE_API const char *csde_solver_type_alias(const csde_solver_type *T);
CSDE_API const char *csde_solver_type_summary(const csde_solver_type *T);
/* The names (aliases first: "em, euler, heun, ...") of the types that fit process p, or
 * of all types when p < 0, joined by ", " into buf. Returns buf. */
CSDE_API char *csde_solver_names(int p, char *buf, size_t len);
CSDE_API int csde_solver_type_fits(const csde_solver_type *T, csde_process p); /* 1 if usable */
/* 1 if T steps on the drift f itself (not on the denoiser view, not a discrete sampler),
 * so that a solve can carry more values with the state (the likelihood's log-density):
 * euler, heun, rk45, rkck, rk8pd, dopri5. */
CSDE_API int csde_solver_type_carries(const csde_solver_type *T);
CSDE_API unsigned csde_solver_type_nfe_per_step(const csde_solver_type *T);
CSDE_API double csde_solver_type_order(const csde_solver_type *T, const char *which); /* "ode",
                                                                      "strong", "weak" */


typedef int (*csde_observer_fn)(size_t step, double t, const double *x, void *user);
/* After the observer of every accepted step: the state x and x0, the data prediction of
 * the step's LAST model evaluation (Tweedie at the state x_e that evaluation saw:
 * x0 = (x_e + (1 - abar) C grad log p_t(x_e)) / sqrt(abar), after guidance and the x0
 * post-processing, i.e. what the solver used), or NULL when the step made none (the
 * forward SDE). Made by the process layer in one pass per evaluation into a buffer
 * allocated only when a preview is set; no extra model call. Non-zero stops the solve
 * (stats.stopped = 1), like the observer. */
typedef int (*csde_preview_fn)(size_t step, double t, const double *x, const double *x0,
                               void *user);

typedef struct {
  const char *solver;      /* default "euler" */
  size_t steps;            /* fixed steps N (default 100); 0 with rtol > 0: adaptive */
  const char *grid;        /* default "uniform" */
  double rtol, atol;       /* adaptive (rk only): default 0 (fixed step) */
  int max_norm;            /* adaptive GSL steppers: 1 = GSL's max-norm control, 0 = RMS norm
                              (default); dopri5 always uses the RMS norm */
  size_t max_nfe;          /* stop with CSDE_EMAXITER past this (default 10^7) */
  int heun_final_euler;    /* heun ODE: last step is a plain Euler step (EDM) */
  uint64_t seed;           /* noise seed (default 0) */
  size_t first_sample;     /* global index of the batch's first sample (default 0) */
  csde_noise_kind noise;   /* stream (default) or path (one Brownian path per seed, the
                              same for any steps: walked at the streaming cost on 2^k
                              steps of a grid kind, queried at the nodes otherwise) */
  const double *out_times; /* adaptive: times to land on exactly (observer is called
                              there); fixed grids: ignored */
  size_t n_out_times;
  int threads;             /* OpenMP threads (0: 1) */
  double eta;              /* the ddim solver: 0 (default, deterministic) .. 1 */
  double s_churn, s_tmin, s_tmax, s_noise; /* edm-heun: EDM's churn (Karras et al. 2022,
                              Alg. 2): gamma = min(s_churn / N, sqrt 2 - 1) on the steps
                              with s_tmin <= sigma/alpha <= s_tmax; defaults 0 (none), 0,
                              INFINITY, 1 */
  csde_observer_fn observer; /* called after every accepted step; non-zero stops */
  void *observer_user;
  csde_preview_fn preview; /* x0 previews (above); NULL (default): none, and no buffer */
  void *preview_user;
  size_t corrector_steps;  /* the Langevin corrector (csde_corrector_parse): K steps after
                              every predictor step of a fixed-step reverse-sde or pf-ode
                              solve; 0 (default): none */
  double corrector_snr;    /* its signal-to-noise ratio r > 0 */
} csde_solve_params;

/* The predictor-corrector sampler (Song et al. 2021, score_sde's LangevinCorrector),
 * preconditioned by C: after each predictor step to t, K times
 *   x <- x + e C s + sqrt(2 e) V' z,   s = grad log p_t(x), z ~ N(0, I),
 * with C s the model's answer converted as for every solver (one NFE per corrector step)
 * and score_sde's step rule in the C^-1 norm, per sample (over its whole tau x D state):
 *   e = 2 (r ||z|| / ||s||_C)^2,  ||s||_C^2 = s^T C s = (C s)^T C^-1 (C s),
 *   ||z||^2 = (V' z)^T C^-1 (V' z)
 * (the white noise's norm where V' is square: dense, circulant; for embed the norm of
 * the part of z that reaches the state). The noise of predictor step n's k-th corrector
 * step is keyed by (seed, CSDE_STREAM_CORRECTOR + n 2^24 + k), sample j at the indices
 * of csde_cov_sample: threads and batch never change a bit, and no other draw moves.
 * Fixed steps only; not for forward-sde, pf-ode-encode or ddpm. The spec
 * "langevin:snr=R,steps=K" (defaults snr 0.16, steps 1; K <= CSDE_CORRECTOR_MAX_STEPS)
 * or "none"/NULL (off: steps 0) into *steps, *snr; errors CSDE_ESPEC/CSDE_EDOM naming
 * the key. */
#define CSDE_STREAM_CORRECTOR ((uint64_t)3 << 61)
#define CSDE_CORRECTOR_MAX_STEPS 1000
CSDE_API int csde_corrector_parse(const char *spec, size_t *steps, double *snr, csde_err *err);

CSDE_API csde_solve_params csde_solve_default_params(void);
/* A solver spec "name[:key=value,...]" (csde_solver_spec_lookup gives its type): its
 * options applied to par (edm-heun: churn, tmin, tmax, noise for s_churn .. s_noise;
 * ddim: eta). name receives the bare name; par->solver is left alone. */
CSDE_API int csde_solver_spec_parse(const char *spec, csde_solve_params *par, char *name,
                                    size_t len, csde_err *err);

typedef struct csde_solver csde_solver;

/* Allocate everything a solve needs (grid, stage buffers, noise, covariance workspace);
 * P and par are copied (their pointers borrowed). */
CSDE_API int csde_solver_alloc(csde_solver **out, const csde_problem *P, const csde_solve_params *par,
                      csde_err *err);
CSDE_API void csde_solver_free(csde_solver *S);
/* Solve from x (in: the state at t_start) to t_end (out: the final state). No
 * allocation. Calling it again reuses everything (e.g. another seed via
 * csde_solver_set_seed). On an error x holds no meaningful state (Euler-Maruyama updates
 * it tile by tile in the same pass that checks the model's output); the observer has
 * seen every completed step. */
CSDE_API int csde_solver_run(csde_solver *S, double *x, csde_solve_stats *stats, csde_err *err);
CSDE_API void csde_solver_set_seed(csde_solver *S, uint64_t seed, size_t first_sample);
/* The grid in use (fixed-step solves): N + 1 times. */
CSDE_API const double *csde_solver_grid(const csde_solver *S, size_t *nsteps);
/* The check of the model's first answer against its declared kind, made at the solver's
 * first model call: "" when it looks right (or cannot be judged: the call is not mostly
 * noise, or too few values), else one line naming the kind it looks like ("model 'm'
 * declares its answer score, but ... it looks like noise (...)"). The criterion: the
 * noise prediction the answer implies, delta_hat = -sqrt(1 - abar) C grad log p, has
 * E <x, delta_hat> = sqrt(1 - abar) n mean C_ii for any data law (Stein's identity), and
 * their ratio must be within [0.1, 10]; src/process/process.c (answer_check) derives it. */
CSDE_API const char *csde_solver_warning(const csde_solver *S);

/* ---- discrete samplers (MATH.md, discrete model) ----
 * The model's answer is converted to the noise prediction
 * delta_theta = -sqrt(1 - abar) C grad log p at model time t.
 * DDPM ancestral: the N steps of a discrete schedule (P->sched, e.g. ddpm-linear), step i
 *   at t = i/N: x_{i-1} = mu_theta + sqrt(beta~_i) V' z (eq. 2), from x = x_N to x_0.
 * DDIM(eta) on the grid par->grid with par->steps steps from T to eps (any schedule):
 *   x0 = (x_t - sqrt(1-abar_t) d) / sqrt(abar_t),
 *   x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sig^2) d + sig V' z,
 *   sig = eta sqrt((1-abar_s)/(1-abar_t)) sqrt(1 - abar_t/abar_s); eta = 0: deterministic.
 * Noise of step k uses stream k of par->seed (as the streaming SDE noise). Both are solver
 * types (solvers/ddpm.c, ddim.c; "ddim" with par->eta is also a --solver of the PF-ODE):
 * these two calls run csde_solve on the PF-ODE process with them (P->process is not
 * used; ddpm on t = 1 -> 0). par->solver, rtol, atol and noise are ignored; stats count
 * NFE and steps. */
CSDE_API int csde_sample_ddpm(const csde_problem *P, const csde_solve_params *par, double *x,
                     csde_solve_stats *stats, csde_err *err);
CSDE_API int csde_sample_ddim(const csde_problem *P, const csde_solve_params *par, double eta,
                     double *x, csde_solve_stats *stats, csde_err *err);

/* One-shot: alloc, run, free. */
CSDE_API int csde_solve(const csde_problem *P, const csde_solve_params *par, double *x,
               csde_solve_stats *stats, csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
