/* Internal: the run object (corrsde/run.h), shared by run.c and traj.c. */
#ifndef CSDE_RUN_INTERNAL_H
#define CSDE_RUN_INTERNAL_H

#include <stdint.h>

#include "corrsde/run.h"
#include "corrsde/solve.h"

/* What the observer of a solve needs: set by csde_run_exec. */
typedef struct {
  const csde_run *r;
  csde_traj *w;
  const csde_run_hooks *h;
  size_t next;     /* adaptive times: the next one to save */
  size_t saved;    /* states saved */
  int64_t last;    /* the step saved last (-1: none) */
  int status;      /* a failed save */
  csde_err *err;
  double scale0;   /* max |x| of the start state */
  double bound;    /* a saved state beyond this max |x| fails (CSDE_RUN_GROWTH_MAX) */
  int warned;      /* the first answer's warning was reported (run.c, report_warning) */
  const double *x; /* the state the observer saw last (rci.c's step requests) */
} csde_run_exec_ctx;

struct csde_run {
  csde_run_settings s;       /* resolved; its strings are the copies in str */
  char *str[13];
  csde_run_process process;
  double eta;                /* ddim */
  double *w_frames;          /* guidance's scales (tau), parsed from the spec (owned) */
  char solver_name[64];      /* the solver spec's bare name (par.solver) */
  int adaptive, noise_path;
  size_t batch, tau, D, n;
  int rank;
  size_t shape[3];
  const csde_schedule *sched;
  csde_problem P;
  csde_solve_params par;     /* its observer is run.c's, on exec */
  csde_solver *solver;       /* continuous processes */
  double *grid;              /* fixed steps: nsteps + 1 nodes (owned); NULL: adaptive */
  double *hbeta;             /* fixed steps: hbeta[k] = max |h| beta(t) of steps < k */
  size_t nsteps;
  double t0, t1;             /* the span, in the run's direction */
  csde_save_kind save_kind;
  size_t every;
  double *times;             /* save times, as given */
  size_t ntimes;
  unsigned char *mask;       /* times, fixed grid: mask[step] = 1 to save */
  double *out;               /* times, adaptive: sorted along the solve, past the start */
  size_t nout;
  int save_start;            /* times, adaptive: one at the start */
  size_t capacity;
  double noise_scale;        /* sqrt(max_i C_ii): the noise's standard deviation */
  csde_run_memory mem;       /* the estimate csde_run_alloc checked */
  csde_run_exec_ctx ex;
  struct csde_rci_run *rci;  /* a reverse-communication run in progress (rci.c), or NULL */
};

/* The warning of the run's first model answer, for /stats `warnings` at close (copied;
 * traj.c). */
void csde_traj_set_warning(csde_traj *w, const char *msg);

/* rci.c: csde_run_exec's refusal while a reverse-communication run of r is in progress
 * (other than from its own worker) or on an external model; csde_run_free's end of one. */
int csde_run_rci_check_exec(const csde_run *r, csde_err *err);
void csde_run_rci_free(csde_run *r);
/* 1 for a model of csde_model_alloc_external. */
int csde_model_is_external(const csde_model *M);

#endif
