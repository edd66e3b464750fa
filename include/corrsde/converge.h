/* corrsde/converge.h: solver convergence experiments (`corrsde converge`, and
 * corrsde.converge() in Python): strong, weak and ODE errors over levels of 2^k fixed
 * steps against a reference on the same Brownian path, with bootstrap intervals, level
 * screening and a fitted order. The definitions of the errors, the estimators and the
 * screening are in src/experiment/converge.h (and the README's "Convergence").
 */
#ifndef CORRSDE_CONVERGE_H
#define CORRSDE_CONVERGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "corrsde/export.h"
#include "corrsde/model.h"
#include "corrsde/problem.h"
#include "corrsde/rng.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CSDE_CONV_MAXLEVEL 24   /* 2^24 steps: far beyond any useful experiment */
/* The settings a convergence run's errors blame (csde_err.param), beside corrsde/status.h's
 * solver, model and size. */
#define CSDE_CONV_PARAM_KIND "error"
#define CSDE_CONV_PARAM_LEVELS "levels"
#define CSDE_CONV_PARAM_PATHS "paths"
#define CSDE_CONV_PARAM_REFERENCE "reference"
#define CSDE_CONV_PARAM_OUTPUT "output"       /* the file (csde_conv_params.file) */
#define CSDE_CONV_MAXSOLVERS 16
#define CSDE_CONV_MINRATIO 10.0 /* the reference must be this much more accurate */

typedef enum {
  CSDE_CONV_STRONG = 0,
  CSDE_CONV_WEAK_MEAN,
  CSDE_CONV_WEAK_COV,
  CSDE_CONV_ODE
} csde_conv_kind;

/* "strong", "weak-mean", "weak-cov", "ode". */
CSDE_API const char *csde_conv_kind_name(csde_conv_kind k);
CSDE_API int csde_conv_kind_parse(const char *s, csde_conv_kind *k);
/* The kinds joined by ", " into buf ("strong, weak-mean, weak-cov, ode"). Returns buf. */
CSDE_API char *csde_conv_kind_names(char *buf, size_t len);
typedef enum {
  CSDE_CONV_REF_AUTO = 0, /* exact where the model gives it, else fine */
  CSDE_CONV_REF_EXACT,
  CSDE_CONV_REF_FINE,     /* each solver at its own reference level, same path */
  CSDE_CONV_REF_SHARED    /* "fine:SOLVER:rtol=R": one adaptive solve per path, shared by
                             every solver (ODEs: rk45, rkck, rk8pd, dopri5; SDEs: heun, em,
                             sra1 on the same Brownian path, path noise) */
} csde_conv_ref;

/* Why a level is (not) used in the fit. */
typedef enum {
  CSDE_CONV_USED = 0,
  CSDE_CONV_DROP_UNRESOLVED,
  CSDE_CONV_DROP_FLOOR,
  CSDE_CONV_DROP_PREASYMPTOTIC,
  CSDE_CONV_DROP_ZERO            /* error exactly 0 or not finite */
} csde_conv_decision;

CSDE_API const char *csde_conv_decision_name(csde_conv_decision d); /* "used", "unresolved", ... */

typedef struct {
  size_t L;
  double *err, *err_lo, *err_hi;       /* [L] estimate and percentile interval */
  double *rms, *rms_lo, *rms_hi;       /* [L] RMS variant (scalar data), else NULL */
  double *halfwidth;                   /* [L] (hi - lo) / 2 */
  double *mc_noise;                    /* [L] vector data: sqrt(sum_q Var v_q / N), the
                                          size the norm has when the true error is 0 */
  double *log_sd;                      /* [L] bootstrap s.d. of log err */
  double *slope, *slope_lo, *slope_hi; /* [L-1] log(e_k / e_k+1) / log(h_k / h_k+1) */
  int *decision;                       /* [L] csde_conv_decision */
  char (*reason)[160];                 /* [L] the decision in words */
  size_t nused;
  double order, order_lo, order_hi;    /* NaN if fewer than 3 levels are used (fit then
                                          says "not fitted: only N resolved levels (need
                                          3)") */
  double order_boot_lo, order_boot_hi; /* the bootstrap percentile interval alone */
  double order_plain;                  /* the plain power-law slope (for the record) */
  int curved;                          /* correction terms resolved and used: 0, 1 (d h)
                                          or 2 (d h + d2 h^2) */
  double curvature, curvature2;        /* their coefficients d, d2 (0 if unused) */
  double order_sys;                    /* systematic half-width of the extrapolation
                                          (|order - order_plain| when curved) */
  double order_misfit;                 /* systematic half-width of the misfit beyond noise */
  double order_sys_ref;                /* systematic half-width from the reference error */
  char fit[192];                       /* the model and how the interval was formed */
  /* the reference check */
  int have_ref_check;
  double ref_diff, ref_diff_hi;        /* error of level R-1 against R, its upper bound */
  double ref_error;                    /* estimated error of the reference */
  double ref_ratio;                    /* finest level's error / ref_error */
  int ref_ok;                          /* ratio >= CSDE_CONV_MINRATIO */
  double floor;                        /* the floor used for screening (absolute) */
  char floor_name[64];
} csde_conv_fit;

/* ---- the solve stage ---- */

/* Progress (csde_conv_hooks.progress), always called from the calling thread (thread 0
 * of the run), in this order:
 *   CSDE_CONV_PLAN      once, before the first solve: nfe_total;
 *   CSDE_CONV_ESTIMATE  once, after the first few model calls of the calling thread (and,
 *                       with an adaptive shared reference, its first batch):
 *                       sec_per_call and seconds_total;
 *   CSDE_CONV_WORKING   during the solves, after every step of the calling thread's
 *                       solves (and every few ms while it waits for other threads);
 *   CSDE_CONV_STAGE     a stage finished for every path: a solver's reference, the shared
 *                       or exact reference (solver = SIZE_MAX), or a solver's level (the
 *                       file, if any, has it then).
 * The stages run in this order: the shared or exact reference (if any), then solver by
 * solver its own reference (fine) and its levels, coarse to fine. */
typedef enum {
  CSDE_CONV_PLAN = 0,
  CSDE_CONV_ESTIMATE,
  CSDE_CONV_WORKING,
  CSDE_CONV_STAGE
} csde_conv_event;

typedef struct {
  csde_conv_event event;
  size_t solver;          /* the stage's: an index into the solvers; SIZE_MAX: the shared
                             or exact reference */
  const char *solver_name; /* its name (the shared reference's solver; "exact") */
  int reference;          /* 1: the stage is a reference solve */
  unsigned level;         /* the stage's level (a fine reference's level; 0 for an adaptive
                             or exact one) */
  size_t paths_done;      /* of the stage (whole batches), of this process */
  size_t paths;           /* N */
  size_t nfe_done;        /* model calls so far (each on a batch of up to `batch` paths) of
                             this process: exact at a stage's end, counted step by step
                             within a solve */
  size_t nfe_total;       /* the study's model calls: steps x the solver's calls a step,
                             summed over solvers, levels, batches and the reference solves;
                             an adaptive reference's share is 0 at CSDE_CONV_PLAN, from
                             CSDE_CONV_ESTIMATE on its first batch's count times the batches
                             (plus 10^(1/q) for the check at rtol / 10, q the solver's order),
                             and exact once it is done */
  int nfe_total_estimated; /* 1 while nfe_total holds such an estimate (or that 0) */
  size_t batch, batches;  /* paths per solve and solves per stage */
  int threads;
  double fraction;        /* nfe_done / nfe_total, at most 1 */
  double elapsed;         /* seconds since the start */
  double sec_per_call;    /* from CSDE_CONV_ESTIMATE on: wall seconds of one model call on
                             a batch, from the calling thread's first solve with model calls:
                             the time of its steps 2 to 5 over their calls (the first step,
                             which pays for warming up, left out); NaN before */
  double seconds_total;   /* estimated wall time of the study: nfe_total sec_per_call /
                             (min(threads, batches) x processes); NaN before */
  double t;               /* the time the calling thread's solve has reached (NaN between
                             solves): the progress of an adaptive reference's first batch,
                             whose count is not known yet */
} csde_conv_progress;

/* Per-thread resources supplied by the caller (the command line builds them from its
 * spec flags; a test from library calls). */
typedef struct {
  void *user;
  /* Called serially, once per thread, before the parallel work: a model for that
   * thread's exclusive use (NULL allowed for forward-sde) and an opaque state. */
  int (*thread_alloc)(void *user, int thread, const csde_model **model, void **state,
                      csde_err *err);
  void (*thread_free)(void *user, void *state);
  /* The starting states of paths first .. first + n - 1 (n tau D doubles), a pure
   * function of the path index. */
  int (*start)(void *user, void *state, size_t first, size_t n, double *x, csde_err *err);
  /* May be NULL. Called from the calling thread only (csde_conv_progress). Non-zero
   * stops the run: every thread's solve stops at its next step, the stage in progress is
   * dropped, and csde_conv_run returns CSDE_EFAILED ("stopped") with the stages finished
   * before it in the result (and in the file). */
  int (*progress)(void *user, const csde_conv_progress *p);
} csde_conv_hooks;

/* The work of a convergence run split over processes (corrsde-mpi): the items (solver i,
 * block b of paths, item it = i * nblocks + b, blocks fixed by the paths and the batch) run
 * on process it % size; afterwards every item's per-path values and status are broadcast
 * from its process to all, in item order, and the nfe counts summed in process order. Each
 * per-path value is a function of its path index alone, and the statistics are computed
 * from the whole arrays in a fixed order on every process: the result is bitwise the
 * same for any size, and equal to an unsplit run. */
typedef struct {
  int rank, size;
  /* Broadcast n bytes at buf from process root to all: a collective call, made by every
   * process in the same order. Nonzero on failure. */
  int (*bcast)(void *user, void *buf, size_t n, int root);
  void *user;
} csde_conv_dist;

typedef struct {
  csde_problem P;               /* process, T, eps, tau, D, C, sched (model, batch unused) */
  const char *const *solvers;   /* nsolvers names (csde_solver_lookup) */
  size_t nsolvers;
  csde_conv_kind kind;
  unsigned k0, k1;              /* levels: 2^k0 .. 2^k1 steps */
  size_t paths;
  csde_conv_ref ref;
  unsigned ref_level;           /* 0: the default, K1 + max(3, ceil(log2(10) / p_min)) */
  const char *ref_solver;       /* CSDE_CONV_REF_SHARED: the adaptive solver, its */
  double ref_rtol, ref_atol;    /* tolerances (atol 0: rtol) */
  uint64_t seed;                /* noise seed; starts are the caller's business */
  const char *grid;             /* NULL: uniform */
  int threads;                  /* 0: 1 */
  size_t batch;                 /* paths per solve (0: 64) */
  size_t boot;                  /* 0: 1000 */
  uint64_t boot_seed;
  double conf;                  /* 0: 0.95 */
  const csde_conv_dist *dist;   /* NULL: every item here */
  struct csde_conv_file *file;  /* NULL, or the file csde_conv_run keeps up to date
                                   (csde_conv_file_open): its plan written before the first
                                   solve, rewritten whole after every stage */
} csde_conv_params;

/* The reference setting as text, into p (ref, ref_level, ref_solver, ref_rtol,
 * ref_atol): "auto", "exact", "fine", "fine:LEVEL" (1..30) or
 * "fine:SOLVER:rtol=R[,atol=A]" (an adaptive solver, R > 0, A >= 0; atol defaults to
 * R). CSDE_ESPEC, blamed on CSDE_CONV_PARAM_REFERENCE, with the forms expected. Whether
 * the solver can give the process a shared reference is checked by csde_conv_run. */
CSDE_API int csde_conv_reference_parse(const char *spec, csde_conv_params *p, csde_err *err);

CSDE_API csde_conv_params csde_conv_default_params(void);

/* ---- the settings layer: specs as a user types them, resolved once ---- */

/* The defaults (csde_conv_default_settings, csde_conv_default_solvers), for help texts. */
#define CSDE_CONV_DEFAULT_ODE_SOLVERS "euler,heun,rk45"
#define CSDE_CONV_DEFAULT_SDE_SOLVERS "em,heun"
#define CSDE_CONV_DEFAULT_LEVELS "3:8"
#define CSDE_CONV_DEFAULT_PATHS 16
#define CSDE_CONV_DEFAULT_BOOT 1000
#define CSDE_CONV_PARAM_PROCESS CSDE_PARAM_PROCESS
#define CSDE_CONV_PARAM_T_END "t_end"   /* csde_conv_settings.t_end */
#define CSDE_CONV_PARAM_CONF "conf"
#define CSDE_CONV_PARAM_BOOT "boot"
#define CSDE_CONV_PARAM_BATCH "batch"
#define CSDE_CONV_PARAM_THREADS "threads"

/* What `corrsde converge` and corrsde.converge() take. Every field has a default
 * (csde_conv_default_settings); the strings are read by csde_conv_resolve and need not
 * outlive it. */
typedef struct {
  const char *process;   /* "pf-ode" (csde_process_parse) */
  const char *solvers;   /* a comma list "euler,heun"; NULL: the process's default
                            (csde_conv_default_solvers) */
  const char *error;     /* strong, weak-mean, weak-cov, ode; NULL: the process's default
                            (csde_conv_default_kind) */
  const char *levels;    /* "K0:K1", 0 <= K0 < K1 <= CSDE_CONV_MAXLEVEL: 2^K0 .. 2^K1 steps */
  size_t paths;          /* >= 2 */
  const char *reference; /* auto|exact|fine|fine:LEVEL|fine:SOLVER:rtol=R[,atol=A] */
  unsigned ref_level;    /* with reference "fine": its level (0: the default) */
  double t_end;          /* where the solves end (NAN: the process's own end): eps for
                            reverse-sde and pf-ode (T -> eps), T for forward-sde (0 -> T)
                            and pf-ode-encode (eps -> T) */
  uint64_t seed;
  const char *grid;      /* NULL: uniform */
  int threads;           /* >= 1 */
  size_t batch;          /* paths per solve, >= 1 */
  size_t boot;           /* bootstrap replicates */
  uint64_t boot_seed;
  double conf;           /* in (0, 1) */
} csde_conv_settings;

/* process pf-ode, its default solvers and error, levels 3:8, 16 paths, reference auto,
 * t_end NAN, seed 0, threads 1, batch 64, boot 1000, conf 0.95 (csde_conv_default_params). */
CSDE_API csde_conv_settings csde_conv_default_settings(void);
/* The default solvers of a process: CSDE_CONV_DEFAULT_SDE_SOLVERS ("em,heun") for the
 * SDEs, CSDE_CONV_DEFAULT_ODE_SOLVERS ("euler,heun,rk45") for the ODEs. */
CSDE_API const char *csde_conv_default_solvers(csde_process p);
/* The default error of a process: strong for forward-sde, weak-cov for reverse-sde, ode
 * for pf-ode and pf-ode-encode. */
CSDE_API csde_conv_kind csde_conv_default_kind(csde_process p);

/* Resolved settings: params ready for csde_conv_run (its solvers point into the plan),
 * and the texts a record keeps (csde_conv_record: solvers, levels, reference as resolved:
 * the defaults spelled out). */
typedef struct {
  csde_conv_params params;
  const char *solvers[CSDE_CONV_MAXSOLVERS];
  char solvers_text[256], levels_text[32], reference_text[128];
  char *buf;             /* owns the solver names */
} csde_conv_plan;

/* s resolved against C (tau), sched and the frame size D: params.P has process, T (1, or
 * csde_problem_t_max), eps, tau, D, C and sched (its model left for the caller);
 * the rest as csde_conv_params. Errors are blamed (csde_err.param) on the setting: the
 * message starts with the setting's name ("t_end: ...", "reference exact: ...",
 * "solvers: ...", "confidence: ..."), so a front end may put its own flag in its place. CSDE_EINVAL
 * (CSDE_ESPEC for the reference), CSDE_ENOMEM. Free the plan in any case. */
CSDE_API int csde_conv_resolve(const csde_conv_settings *s, const csde_cov *C,
                               const csde_schedule *sched, size_t D, csde_conv_plan *plan,
                               csde_err *err);
CSDE_API void csde_conv_plan_free(csde_conv_plan *plan); /* accepts a zeroed struct */

/* Whether the model gives an exact reference for this kind and process: 1 yes, 0 no
 * (why in *why, may be NULL). */
CSDE_API int csde_conv_exact_available(const csde_conv_params *p, const csde_model *M,
                                       const char **why);

/* The starts (csde_conv_hooks.start): path i's start is draw i of the key (seed, stream
 * 2^63, the stream of `corrsde sample`'s initial states); the prior N(0, C) start of
 * paths first .. first + n - 1 (ws: csde_cov_ws_alloc(C, D, 1)). */
CSDE_API csde_rng_key csde_conv_start_key(uint64_t seed);
CSDE_API int csde_conv_start_prior(const csde_cov *C, csde_cov_ws *ws, uint64_t seed,
                                   size_t first, size_t n, double *x, csde_err *err);
/* The parts of csde_conv_resolve, for a front end's early checks: the levels "K0:K1";
 * a comma list of solvers into plan (params.solvers, nsolvers, solvers_text), each known,
 * none twice, at most CSDE_CONV_MAXSOLVERS, and fitting process (-1: any). */
CSDE_API int csde_conv_levels_parse(const char *s, unsigned *k0, unsigned *k1, csde_err *err);
CSDE_API int csde_conv_solvers_parse(const char *list, int process, csde_conv_plan *plan,
                                     csde_err *err);

typedef struct {
  char name[32];
  double theory;
  unsigned ref_level;  /* 0: exact reference */
  char reference[96];
  csde_conv_fit fit;
  double *v;       /* [N][L][Q] per-path contributions */
  double *vref;    /* [N][Q] level R-1 against R, or NULL (exact reference) */
  double *exact_dev;  /* weak with an exact law: [Q] mean f(X_R) - f_exact, else NULL */
  double exact_dev_norm, exact_dev_halfwidth; /* its norm and plain MC half-width */
  double ref_scale;   /* size of X_ref (mean RMS norm) or of f(X_ref) */
  size_t levels_done; /* levels finished for every path, coarse first (L when complete) */
  int ref_done;       /* its reference is finished */
  int analysed;       /* fit holds the analysis of its first fit.L = levels_done levels
                         (every solver of a complete run; after a failure or a stop, the
                         ones with at least 2 levels) */
} csde_conv_solver_result;

typedef struct {
  size_t N, L, Q, nsolvers;
  unsigned k0, k1, ref_level;  /* ref_level: the one asked for (0: per-solver defaults) */
  int ref_exact;               /* 1: exact flow / exact moments */
  double *h;                   /* [L] */
  size_t *steps;               /* [L] */
  unsigned *level;             /* [L] */
  char reference[160];         /* in words: "exact flow (gaussian)", "fine: em at 2^12" */
  char estimator[512];
  csde_conv_solver_result *s;  /* [nsolvers] */
  double wall_seconds;
  size_t nfe;                  /* model evaluations, all threads */
  int complete;                /* every stage finished */
  /* the shared adaptive reference (ref_shared = 1), else zeros */
  int ref_shared;
  char ref_solver[32];
  double ref_rtol, ref_atol;
  size_t ref_nfe;              /* its model calls, the check's included */
  size_t ref_check_paths;      /* the check: the first batch again at rtol / 10 */
  double ref_check;            /* mean over those paths of the per-path error norm
                                  ||X(rtol) - X(rtol/10)|| (weak: of f), the estimate of
                                  the reference's error (the floor, the reference term) */
  double *xref;                /* [N][tau D] the final states of a shared or exact
                                  reference (one array for every solver), else NULL */
} csde_conv_result;

/* Runs the stages (csde_conv_progress) and, solver by solver once its levels are done,
 * the analysis. On failure (or a stop) res still holds the stages finished before it
 * (levels_done, and the analysis of a solver with 2 levels or more), complete = 0: free
 * res in any case. */
CSDE_API int csde_conv_run(const csde_conv_params *p, const csde_conv_hooks *hooks,
                  csde_conv_result *res, csde_err *err);
CSDE_API void csde_conv_result_free(csde_conv_result *r); /* accepts a zeroed struct */

/* The table for people: one block per solver. */
CSDE_API void csde_conv_print(FILE *f, const csde_conv_result *r, csde_conv_kind kind);
/* The same rows as CSV (one row per solver and level, every number with 17 digits). */
CSDE_API int csde_conv_write_csv(const char *path, const csde_conv_result *r,
                                 csde_conv_kind kind, csde_err *err);

/* What a front end records of a convergence run beside the parameters (the settings
 * as the user gave them). NULL strings are recorded as "". */
typedef struct {
  const char *solvers, *levels, *reference; /* as given: "em,heun", "3:8", "auto" */
  const char *cov_method;                   /* the method asked for */
  const char *model_spec;                   /* the model as given */
  const char *model_name, *model_output;    /* csde_model_name, csde_model_output_name */
  const char *init;                         /* where the starts come from, in words */
  const char *command_line;
  int shape_rank;                           /* the frame shape: 1 to 3 sizes */
  size_t shape[3];
  int threads;
  double start_mismatch_mean, start_mismatch_moment; /* of a prior start; NaN: unknown */
} csde_conv_record;

/* The HDF5 file of `corrsde converge -o` (layout: src/experiment/report.h): /parameters
 * (every setting), /covariance (matrix and eigenvalues up to CSDE_TRAJ_COV_MAX_TAU
 * frames), /convergence (attribute status: "ok" for a complete result). overwrite:
 * replace an existing file (else CSDE_EIO). A failure leaves no file. HDF5's error
 * printing is kept as the caller had it. */
CSDE_API int csde_conv_write_file(const char *path, const csde_conv_result *r,
                                  const csde_conv_params *p, const csde_conv_record *rec,
                                  int overwrite, csde_err *err);

/* The file of a run in progress (csde_conv_params.file). Every write makes a whole new
 * file, OUT.partial.XXXXXX, renamed over OUT (io/outfile.h), so OUT is always a complete
 * file: a run killed at any point leaves the last stage written, with status "running".
 * The cost: the file is written once per stage (its per_path data grow level by level).
 * open checks OUT and takes OUT.lock (held to the close), and writes nothing; the run
 * writes its plan before the first solve (a new file), or replaces an existing file
 * (overwrite) at its first finished stage; close writes the result with its status ("ok"
 * or "failed: reason") unless the run never started (r->L == 0) or an old file was never
 * replaced, and releases the lock. rec (and its strings) must outlive f. HDF5's error
 * printing is kept as the caller had it. */
typedef struct csde_conv_file csde_conv_file;
CSDE_API int csde_conv_file_open(csde_conv_file **f, const char *path,
                                 const csde_conv_record *rec, int overwrite, csde_err *err);
/* Write r now with this status (csde_conv_run does, stage by stage). */
CSDE_API int csde_conv_file_write(csde_conv_file *f, const csde_conv_result *r,
                                  const csde_conv_params *p, const char *status,
                                  csde_err *err);
/* Writes (as above), releases the lock and frees f (even on failure). NULL is allowed. */
CSDE_API int csde_conv_file_close(csde_conv_file *f, const csde_conv_result *r,
                                  const csde_conv_params *p, const char *status,
                                  csde_err *err);
/* 1 once OUT is this run's file (written at least once). */
CSDE_API int csde_conv_file_written(const csde_conv_file *f);

/* A progress display for csde_conv_hooks.progress, for the front ends: the plan ("N
 * model calls ...") and the estimate on lines of their own, and a bar with the stage,
 * redrawn in place on a terminal (at most every 0.1 s), a line a second otherwise.
 * prefix: e.g. "corrsde converge". */
typedef struct {
  FILE *f;
  int tty;
  const char *prefix;
  double last;
  int drawn;     /* a bar is on the current line (tty) */
} csde_conv_progress_line;

CSDE_API void csde_conv_progress_line_init(csde_conv_progress_line *l, FILE *f, int tty,
                                           const char *prefix);
CSDE_API void csde_conv_progress_draw(csde_conv_progress_line *l, const csde_conv_progress *p);
/* Ends a bar left on the line. */
CSDE_API void csde_conv_progress_end(csde_conv_progress_line *l);

#ifdef __cplusplus
}
#endif
#endif
