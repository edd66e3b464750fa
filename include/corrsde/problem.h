/* corrsde/problem.h: the types the solve loop, the processes, the noise and the
 * trajectory writer share: what is being solved (csde_problem, csde_process), the noise
 * kind and the statistics of a solve. It sits below solve.h, so that the modules under
 * the solve loop (src/process, src/noise, src/io) need not include it. The process
 * functions are implemented in src/process/process.c.
 */
#ifndef CORRSDE_PROBLEM_H
#define CORRSDE_PROBLEM_H

#include <stddef.h>
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CSDE_PROC_FORWARD_SDE = 0,
  CSDE_PROC_REVERSE_SDE,
  CSDE_PROC_PFODE,
  CSDE_PROC_PFODE_ENCODE
} csde_process;

/* "forward-sde", "reverse-sde", "pf-ode", "pf-ode-encode". */
CSDE_API int csde_process_parse(const char *name, csde_process *out, csde_err *err);
CSDE_API const char *csde_process_name(csde_process p);
CSDE_API int csde_process_is_sde(csde_process p);

/* What is being solved. Every pointer is borrowed and must outlive the solver. */
typedef struct {
  csde_process process;
  double T, eps;              /* defaults 1 and 1e-3: the time interval's ends */
  size_t tau, D, batch;       /* state: batch blocks of tau x D, frame-major */
  const csde_cov *C;          /* the noise covariance */
  const csde_schedule *sched; /* beta(t) */
  const csde_model *model;    /* may be NULL for the forward SDE */
} csde_problem;

CSDE_API csde_problem csde_problem_default(void);
/* The process's start and end times: forward (0, T), reverse/pf-ode (T, eps),
 * encode (eps, T). */
CSDE_API void csde_problem_span(const csde_problem *P, double *t_start, double *t_end);

/* The noise of a solve: fresh per step, or one Brownian path for every step count. */
typedef enum { CSDE_NOISE_STREAM = 0, CSDE_NOISE_PATH } csde_noise_kind;
/* The noise kinds' names ("stream", "path") and one-line summaries (NULL past the last
 * kind), and the kind of a name (CSDE_EINVAL if none). */
CSDE_API const char *csde_noise_kind_name(csde_noise_kind k);
CSDE_API const char *csde_noise_kind_summary(csde_noise_kind k);
CSDE_API int csde_noise_kind_lookup(const char *name, csde_noise_kind *k);

typedef struct {
  size_t nfe, steps, accepted, rejected;
  double wall_seconds;
  int stopped;             /* 1 if the observer stopped the solve */
} csde_solve_stats;

#ifdef __cplusplus
}
#endif
#endif
