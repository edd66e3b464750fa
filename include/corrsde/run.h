/* corrsde/run.h: one run, as `corrsde sample` and the Python package's solve() make it.
 *
 * A run is the settings (every one of them recorded in the trajectory file) over borrowed
 * objects (covariance, schedule, model): csde_run_alloc checks them together, resolves the
 * time span, the solver or sampler, the grid and the save plan, and sizes everything.
 * csde_run_exec solves, feeding each state the plan saves to a trajectory file
 * (csde_traj, the layout of `corrsde sample`) and/or to the caller's hook. Both front ends
 * are option tables over these calls, so the same settings give the same bits and the
 * same file.
 *
 * Errors name the setting at fault in csde_err.param: CSDE_PARAM_PROCESS, _SOLVER, _STEPS,
 * _GRID, _TOLERANCES, _SPAN, _SAVE, _NOISE, _SCHEDULE, _MODEL, _SIZE, _X0_CLIP,
 * _X0_THRESHOLD, _GUIDANCE (a bad guidance spec, guidance without uncond or on
 * forward-sde), _COND (uncond without guidance), _CORRECTOR (a bad corrector spec, or
 * one with adaptive steps, forward-sde, pf-ode-encode, ddpm or ddim) (front ends map it to
 * their own option); the messages name no front end's option.
 */
#ifndef CORRSDE_RUN_H
#define CORRSDE_RUN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "corrsde/export.h"
#include "corrsde/problem.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The processes of a run: the four continuous ones (csde_process order), then the
 * discrete samplers. */
typedef enum {
  CSDE_RUN_FORWARD_SDE = 0,
  CSDE_RUN_REVERSE_SDE,
  CSDE_RUN_PFODE,
  CSDE_RUN_PFODE_ENCODE,
  CSDE_RUN_DDPM,
  CSDE_RUN_DDIM
} csde_run_process;

/* "forward-sde", "reverse-sde", "pf-ode", "pf-ode-encode", "ddpm", "ddim[:eta=E]"
 * (0 <= E <= 1, default 0). eta may be NULL. */
CSDE_API int csde_run_process_parse(const char *spec, csde_run_process *p, double *eta,
                                    csde_err *err);
CSDE_API const char *csde_run_process_name(csde_run_process p);
/* The forms joined by ", " into buf ("forward-sde, ..., ddpm, ddim[:eta=E]"). Returns buf. */
CSDE_API char *csde_run_process_names(char *buf, size_t len);

typedef enum { CSDE_SAVE_FINAL = 0, CSDE_SAVE_EVERY, CSDE_SAVE_TIMES } csde_save_kind;

typedef struct {
  const char *process;      /* default "reverse-sde" */
  const char *solver;       /* NULL (default): "em", or "rk45" when adaptive; ignored by
                               ddpm and ddim */
  size_t steps;             /* fixed steps (default 100); ddpm takes its schedule's N */
  const char *grid;         /* default "uniform" */
  double rtol, atol;        /* either > 0: adaptive steps (default 0 and 0) */
  double t_start, t_end;    /* NAN (default): the process's own ends (csde_run_span) */
  uint64_t seed;            /* default 0 */
  size_t first_sample;      /* the global index of sample 0 (default 0): a run of samples
                               [f, f + B) draws the noise and the prior of those samples
                               of one larger run, bit for bit */
  const char *noise;        /* "stream" (default) or "path" */
  int threads;              /* default 1 */
  size_t max_nfe;           /* default csde_solve_default_params().max_nfe */
  const char *save;         /* "final" (default), "every:K", "times:t1,t2,..." */
  size_t max_memory;        /* bytes the run may take (csde_run_memory): 0 (default) the
                               memory available (MemAvailable of /proc/meminfo, less
                               under a soft RLIMIT_AS or RLIMIT_DATA); SIZE_MAX: no check */
  int keep_saved;           /* the caller keeps every saved state in memory (a save hook
                               that copies them): counted in the estimate (default 0) */
  const char *x0_clip;      /* NULL (default) or "none": off; "LO,HI": the model's x0
                               clipped to [LO, HI] at every call (problem.h) */
  const char *x0_threshold; /* NULL (default) or "none": off; "p=P[,max=M]": Imagen's
                               dynamic thresholding of its x0 (problem.h); not with
                               x0_clip. Neither applies to forward-sde (no model) */
  const void *cond;         /* the model's conditioning, borrowed (problem.h, model.h's
                               ctx->cond): NULL (default) none */
  const void *uncond;       /* the unconditional conditioning of classifier-free
                               guidance (problem.h, csde_guidance): NULL (default) off */
  const char *guidance;     /* its scale: NULL or "none" (default): off; "W" one scale;
                               "w1,...,w_tau" one per frame; "linear:A,B" from A at frame
                               0 to B at the last, w_f = A + (B - A) f / (tau - 1) (SVD's).
                               Each finite with |w| <= CSDE_GUIDANCE_MAX. With
                               guidance_fn set, only a label for /parameters (NULL:
                               "function") */
  csde_guidance_fn guidance_fn; /* w(t, frame) (problem.h), or NULL */
  void *guidance_user;
  int guidance_split;       /* 1: cond and uncond in two calls of B (less memory), not
                               one of 2B (default 0); the same states */
  int preview;              /* 1: the x0 of every step goes to the preview hook
                               (csde_run_hooks.preview; a state-sized buffer more) */
  /* recorded in /parameters only */
  const char *model_spec;   /* NULL: the model's name */
  const char *cov_method;   /* the method asked for; NULL: the one used */
  const char *init;         /* where the start states come from; NULL: the prior
                               (csde_run_prior) */
  const char *command_line; /* NULL: "" */
  const char *corrector;    /* NULL or "none" (default): off; "langevin:snr=R,steps=K":
                               K Langevin steps after every predictor step (solve.h,
                               csde_corrector_parse), one NFE each; reverse-sde and pf-ode
                               with fixed steps only */
} csde_run_settings;

CSDE_API csde_run_settings csde_run_default_settings(void);
/* The solver a run takes when its settings name none: ddpm and ddim their own sampler;
 * with adaptive steps (rtol or atol > 0) heun for the SDEs (path noise) and rk45 for the
 * PF-ODE; else em. */
CSDE_API const char *csde_run_default_solver(csde_run_process p, int adaptive);

/* ---- memory ----
 * What a run will allocate, estimated before anything large is (an upper bound, meant to
 * be within 2x of the peak resident memory of a large run), and what it is compared
 * with. csde_run_alloc refuses a run whose total exceeds the memory available with
 * CSDE_ENOMEM, param CSDE_PARAM_SIZE and both figures: "the run needs 7.4 GB (states
 * 6.4 GB, ...), but 3.1 GB are available (MemAvailable)". */
typedef struct {
  size_t states;     /* the state passed to csde_run_exec, the solver's state-sized
                        buffers (stages, dW, V' H, GSL's own), the model's output,
                        guidance's scratch (4 states: x twice and the 2B answers; split:
                        1) and the preview's x0 (1) */
  size_t noise;      /* path noise: the Brownian tree's k + 2 (+ 3) buffer pairs and its
                        increments, batch x noise dim x D each */
  size_t workspaces; /* covariance workspaces (noise, the score's C s, the prior draw,
                        edm-heun's churn) per thread, and the gaussian model's dense
                        tau x tau parts when they are still to be made */
  size_t saved;      /* keep_saved: the plan's states (an upper bound on its capacity) */
  size_t writer;     /* the trajectory writer's float32 conversion buffer (counted
                        whether or not the file will be float32) */
  size_t extra;      /* the caller's own, given to csde_run_check_memory */
  size_t total;      /* their sum */
  size_t available;  /* what the total was compared with (SIZE_MAX: nothing known) */
  const char *limit; /* which: "max_memory", "MemAvailable", "RLIMIT_AS", "RLIMIT_DATA",
                        or NULL */
} csde_run_memory;

/* The check csde_run_alloc makes, for a caller that wants it before building anything
 * large (the covariance, the model, its own states): the same estimate from the settings
 * and the sizes alone. C and model may be NULL (then the noise dimension is taken as
 * tau, a lower bound, and the workspaces as 0); tau is C's when C is given. extra: bytes
 * the caller will hold besides (e.g. a file's states read at once). Settings that
 * csde_run_alloc would refuse are not judged here (CSDE_SUCCESS). m may be NULL. */
CSDE_API int csde_run_check_memory(const csde_run_settings *s, const csde_cov *C,
                                   const csde_model *model, size_t batch, size_t tau,
                                   int shape_rank, const size_t *shape, size_t extra,
                                   csde_run_memory *m, csde_err *err);

typedef struct csde_run csde_run;

/* Check the settings against each other and the objects, and make the solver (or the
 * sampler's grid) and the save plan. C, sched and model are borrowed; the state is
 * batch x tau x (frame shape) with tau = csde_cov_tau(C) and shape_rank 1..3 sizes. The
 * settings' strings are copied. */
CSDE_API int csde_run_alloc(csde_run **out, const csde_run_settings *s, const csde_cov *C,
                            const csde_schedule *sched, const csde_model *model, size_t batch,
                            int shape_rank, const size_t *shape, csde_err *err);
CSDE_API void csde_run_free(csde_run *r);

CSDE_API csde_run_process csde_run_process_of(const csde_run *r);
/* The ends the run goes between: forward-sde 0 -> T, encode eps -> T, the others
 * T -> eps (ddpm 1 -> 0); T = 1 (0.999 where beta(1) is infinite) and eps = 1e-3 unless
 * set. */
CSDE_API void csde_run_span(const csde_run *r, double *t_start, double *t_end);
/* The steps of a fixed grid (ddpm: the schedule's N); 0 when adaptive. */
CSDE_API size_t csde_run_nsteps(const csde_run *r);
/* The states the save plan keeps at most (the start where it saves it, the end); 0 when
 * not known in advance (adaptive with every:K). */
CSDE_API size_t csde_run_capacity(const csde_run *r);
/* Doubles in one state: batch * tau * D. */
CSDE_API size_t csde_run_size(const csde_run *r);
CSDE_API const csde_problem *csde_run_problem(const csde_run *r);
/* The resolved settings (solver, span and save filled in). */
CSDE_API const csde_run_settings *csde_run_settings_of(const csde_run *r);
CSDE_API csde_save_kind csde_run_save_kind(const csde_run *r);
/* The estimate csde_run_alloc checked. */
CSDE_API const csde_run_memory *csde_run_memory_of(const csde_run *r);

/* The start states `corrsde sample` draws for a reverse process or a sampler: the prior
 * N(0, p^2 C) (p = csde_schedule_path_prior_scale: VP 1, edm smax) with the run's seed, stream CSDE_STREAM_INIT, samples first_sample ..
 * first_sample + batch - 1. (A forward
 * process starts from data: the caller's, or the model's data law.) */
CSDE_API int csde_run_prior(const csde_run *r, double *x, csde_err *err);

/* ---- the trajectory file ---- */

typedef struct csde_traj csde_traj;

typedef struct {
  int float32;   /* store float32 (default float64) */
  int compress;  /* gzip(4) + shuffle */
  int overwrite; /* replace an existing regular file (else CSDE_EIO if it exists) */
  /* Optional (borrowed): a flag that becomes non-zero once the run is asked to stop (a
   * signal handler's). From then on the new run never replaces the old file. */
  const volatile sig_atomic_t *stop;
} csde_traj_options;

/* Write the whole file before the solve: take path.lock, create it (as path.partial
 * when it replaces a file), write /parameters (every setting of the run, and the
 * options), /covariance (the matrix and its eigenvalues up to CSDE_TRAJ_COV_MAX_TAU
 * frames), the empty trajectory sized by the save plan and /stats "running", flush,
 * and put a new file in place. Refuses a run the disk or the file-size limit cannot
 * hold. The layout and its crash safety: README, "The trajectory file". */
#define CSDE_TRAJ_COV_MAX_TAU 1024
CSDE_API int csde_traj_create(csde_traj **out, const char *path, const csde_run *r,
                              const csde_traj_options *o, csde_err *err);
/* Append one state (csde_run_size doubles) with its time and step; flushed before it
 * counts. A state that is not finite is refused (CSDE_ENAN), the file unchanged. */
CSDE_API int csde_traj_append(csde_traj *w, int64_t step, double t, const double *x,
                              csde_err *err);
CSDE_API size_t csde_traj_count(const csde_traj *w);
/* 1 while an overwrite has not yet replaced the old file. */
CSDE_API int csde_traj_replaces(const csde_traj *w);
/* Record the statistics and the status ("ok", or "failed: reason") in /stats, close,
 * release the lock and free w (even on failure). An overwrite that never became viable
 * (no state past the start, no "ok") removes path.partial and keeps the old file. */
CSDE_API int csde_traj_close(csde_traj *w, const csde_solve_stats *st, const char *status,
                             csde_err *err);
/* Remove what create made (never an old file), for a run that does not start. NULL is
 * allowed. */
CSDE_API void csde_traj_discard(csde_traj *w);

/* A trajectory file of several writers (corrsde-mpi sample; src/io/h5group.h).
 *
 * Each writer (an MPI rank) runs samples [first, first + count) of the file's batch of
 * `total`, as a run of its own whose settings' first_sample is first, so that its
 * samples are those of the serial run, bit for bit. (A writer with count 0 runs a
 * stand-in sample and writes none of it: it must still make every call.) Every writer
 * calls every csde_traj function in the same order. /parameters records the whole run
 * (batch total, first_sample of the file's sample 0).
 *
 * The sync points are csde_traj_agree. A writer whose solve fails (so that it skips the
 * appends and step hooks of the others) calls it once with its failure, unless that
 * failure came from a sync point already (csde_traj_failed_rank() >= 0): it then meets
 * the others at their next append or step hook, and every writer stops there.
 */
typedef struct {
  size_t total, first, count;
  const void *comm; /* an MPI_Comm * */
} csde_traj_part;

/* csde_traj_create for the part of the file's batch this writer runs. */
CSDE_API int csde_traj_create_part(csde_traj **out, const char *path, const csde_run *r,
                                   const csde_traj_options *o, const csde_traj_part *part,
                                   csde_err *err);
/* Every writer's status in, the lowest failing rank's status and message out. */
CSDE_API int csde_traj_agree(csde_traj *w, int s, csde_err *err);
/* The rank whose failure was agreed on last, or -1. */
CSDE_API int csde_traj_failed_rank(const csde_traj *w);

/* 1 when the tau x tau frame products of m frames use the library's own fma kernel
 * (src/core/smallmm.c: every CPU kernel of it the same bits), 0 when they use BLAS (other
 * bits); CSDE_SMALLMM_KERNEL and the CPU choose. */
CSDE_API int csde_smallmm_use(size_t m);

/* ---- the solve ---- */

typedef struct {
  /* each state the plan saves (the start if it saves it, the end always), after the
   * trajectory file has it; a non-zero status stops the run as failed */
  int (*save)(size_t step, double t, const double *x, void *user);
  /* after every step (progress, interrupts); final is 1 at the last; non-zero stops */
  int (*step)(size_t step, double t, size_t saved, int final, void *user);
  void *user;
  /* once, when the check of the model's first answer has something to say
   * (csde_run_warning): after the step that made the call, or at the end of a run that
   * failed first; non-zero stops the run like a step hook. May be NULL. */
  int (*warn)(const char *msg, void *user);
  /* with csde_run_settings.preview = 1: after every step (after the step hook), the
   * state x and the x0 prediction of the step's last model evaluation (solve.h,
   * csde_preview_fn: Tweedie at the state that evaluation saw, as the solver used it),
   * or NULL where there was none (forward-sde); both valid during the call only.
   * Non-zero stops the run like the step hook (st->stopped = 1). May be NULL. */
  int (*preview)(size_t step, double t, const double *x, const double *x0, void *user);
} csde_run_hooks;

/* Solve from x (the start states; the final ones on return), saving to w (may be NULL)
 * and calling the hooks (may be NULL). The start state and the final state are saved
 * as the plan says. A step hook that stops the run returns 0 with st->stopped = 1; a
 * failed save returns its status (a save hook's non-zero return is taken as a status).
 * Allocates nothing past what the solver allocated at csde_run_alloc.
 *
 * Blow-up (fixed steps): every state the plan saves (the final one always) after a step
 * with |h| beta(t) > CSDE_RUN_HBETA_MAX is checked before it is saved. The VP drift's
 * linear part -beta x / 2 makes explicit steps (Euler, Heun) grow without bound past
 * |h| beta = 4, and a VP process keeps its state on the scale of its start and of its
 * noise (the exact marginal is sqrt(abar) x0 + sqrt(1 - abar) delta, delta ~ N(0, C)),
 * so a finite state with
 *   max |x| > CSDE_RUN_GROWTH_MAX (1 + max(max |x_start|, sqrt(max_i C_ii)))
 * after such steps is an unstable step size, not an answer: the run fails with
 * CSDE_EUNSTABLE (param CSDE_PARAM_STEPS) naming the step, the growth and the largest
 * |h| beta(t) so far, and that state is not saved. Growth on steps below the limit is
 * the model's (a decode's data may be of any scale) and is not judged; neither are
 * adaptive solves, nor states that are not finite (left to the writer and the hooks).
 * One pass over each checked state; none on the steps between. */
#define CSDE_RUN_GROWTH_MAX 1e3
#define CSDE_RUN_HBETA_MAX 2.0
CSDE_API int csde_run_exec(csde_run *r, double *x, csde_traj *w, const csde_run_hooks *h,
                           csde_solve_stats *st, csde_err *err);
/* The check of the model's first answer against its declared kind (csde_solver_warning):
 * "" or one line, from the first model call of csde_run_exec on. csde_run_exec also
 * records it in the trajectory file's /stats attribute `warnings` ("" when none) and
 * hands it to the warn hook. */
CSDE_API const char *csde_run_warning(const csde_run *r);

/* ---- reverse communication ----
 * The caller evaluates the model, as in ARPACK or MKL's RCI solvers: a run of an external
 * model (csde_model_alloc_external, kind: what its answers are) is driven by
 *
 *   csde_rci q;
 *   csde_solve_stats st;
 *   int rc = csde_run_begin(r, x, NULL, &err);     (x: the start states, final at the end)
 *   while (!rc && !(rc = csde_run_next(r, &q, &err)) && q.what != CSDE_RCI_DONE)
 *     if (q.what == CSDE_RCI_EVAL)                 (q.ctx->batch states of q.ctx->tau x D)
 *       rc = csde_run_give(r, my_model(q.ctx, q.x, q.out), &err);
 *     (CSDE_RCI_STEP: q.x is the state after step q.step, at time q.t: read it here)
 *   int rc2 = csde_run_end(r, &st, &err);          (always, also after an error)
 *
 * EVAL: write the model's answer at (q.ctx->t, q.x) into q.out and give its status as a
 * model callback returns it (0; > 0: retry a smaller step; < 0: fatal). q.x and q.out
 * point into the run's own memory (no copy), valid until the next call on the run.
 * STEP: after every step (where csde_run_exec calls its step hook), q.x the state.
 * DONE: q.x is x, the final state; csde_run_next returns the run's status (and err), as
 * csde_run_end does again with the statistics. Every solver and sampler gives bit for bit
 * the states and the NFE of csde_run_exec with the same model as a callback: the solve is
 * csde_run_exec itself, on a thread of its own that runs only while the caller waits in
 * csde_run_next (it posts each request and waits; the two never run at once; threads > 1
 * gives it an OpenMP team of its own). w: the trajectory file, as for csde_run_exec
 * (close it after csde_run_end). csde_run_end before DONE stops the solve (a pending
 * evaluation answers a fatal status, a pending step stops as a step hook does) and
 * returns 0 with st->stopped = 1; csde_run_free ends a run still going.
 * Out of turn (CSDE_EINVAL, naming the call): csde_run_begin on a run begun and not ended,
 * csde_run_next while an answer is owed, csde_run_give with no EVAL pending (or twice),
 * next/give/end with no run begun, a call while another thread waits in csde_run_next;
 * csde_run_exec on a run of an external model, or while a run of it is begun. A model
 * with a callback may be driven too (STEP and DONE only). */
typedef enum { CSDE_RCI_EVAL = 1, CSDE_RCI_STEP, CSDE_RCI_DONE } csde_rci_what;
typedef struct {
  csde_rci_what what;
  const csde_model_ctx *ctx; /* EVAL: the call's context (t, batch, ...) */
  const double *x;           /* EVAL: the states to evaluate at (the run's own memory);
                                STEP, DONE: the state after the step / the final state */
  double *out;               /* EVAL: where the answer goes (the run's own memory) */
  size_t step;               /* EVAL: the step being taken; STEP, DONE: steps done */
  double t;                  /* EVAL: the time of the call; STEP, DONE: the state's */
} csde_rci;
/* A model that the caller evaluates (kind: what its answers are); name NULL: "external".
 * Called as a callback (csde_model_call) it fails with -1. */
CSDE_API int csde_model_alloc_external(csde_model **out, const char *name,
                                       csde_model_output kind, csde_err *err);
CSDE_API int csde_run_begin(csde_run *r, double *x, csde_traj *w, csde_err *err);
CSDE_API int csde_run_next(csde_run *r, csde_rci *req, csde_err *err);
CSDE_API int csde_run_give(csde_run *r, int status, csde_err *err); /* after EVAL */
CSDE_API int csde_run_end(csde_run *r, csde_solve_stats *st, csde_err *err);

/* A progress line on stderr, for a step hook: "step k/N  t = ... [####....] 40%  ETA
 * 3s  saved 2", redrawn in place on a terminal (at most every 0.1 s), a line per
 * second otherwise. */
typedef struct {
  int on, tty;
  double t0, t1;
  size_t total; /* steps; 0 when adaptive (the fraction is then the time's) */
  double start, last;
  int drawn;
} csde_run_progress;

CSDE_API void csde_run_progress_init(csde_run_progress *p, const csde_run *r, int on);
/* Draws (a csde_run_hooks step function with user = p); returns 0. */
CSDE_API int csde_run_progress_step(size_t step, double t, size_t saved, int final, void *p);
/* Ends the line drawn on a terminal. */
CSDE_API void csde_run_progress_end(csde_run_progress *p);

/* The status the file records: "ok", or "failed: <reason>" from the run's return code
 * rc and err (stop_reason, if not NULL, names why a hook stopped it). */
CSDE_API void csde_run_status(int rc, const csde_solve_stats *st, const csde_err *err,
                              const char *stop_reason, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
