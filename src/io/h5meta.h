/* Internal: the one writer of /parameters' shared attributes and of /covariance, for
 * both file kinds (the trajectory file, run/traj.c over io/h5traj.c; the convergence
 * file, experiment/record.c over experiment/report.c's csde_h5out). Each file kind
 * hands its writer over as a csde_h5sink. */
#ifndef CSDE_IO_H5META_H
#define CSDE_IO_H5META_H

#include <stddef.h>
#include <stdint.h>

#include "corrsde/cov.h"
#include "corrsde/status.h"

/* A file's writer: attributes on an existing object (n == 1 a scalar unless list), a
 * float64 dataset, and a group made if missing (NULL: the file made its groups). */
typedef struct {
  void *w;
  int (*str)(void *w, const char *obj, const char *name, const char *v, csde_err *err);
  int (*f64)(void *w, const char *obj, const char *name, const double *v, size_t n, int list,
             csde_err *err);
  int (*i64)(void *w, const char *obj, const char *name, const int64_t *v, size_t n,
             int list, csde_err *err);
  int (*u64)(void *w, const char *obj, const char *name, const uint64_t *v, csde_err *err);
  int (*array)(void *w, const char *name, const double *v, int rank, const size_t *dims,
               csde_err *err);
  int (*group)(void *w, const char *name, csde_err *err);
} csde_h5sink;

/* The problem's attributes of /parameters that both files record. */
typedef struct {
  const char *schedule;                  /* csde_schedule_spec */
  double t_start, t_end, T, eps;
  const char *covariance, *cov_method;   /* csde_cov_spec, the method asked for */
  const csde_cov *C;                     /* cov_method_used */
  const char *model, *model_name, *model_output;
  size_t frames, pixels;
  int shape_rank;                        /* 1..3 */
  const size_t *frame_shape;
  uint64_t seed;
  const char *init;
  int64_t threads;
  const char *command_line;
} csde_h5params;

/* /parameters (made if missing): schedule, t_start, t_end, T, eps, covariance,
 * cov_method, cov_method_used, model, model_name, model_output, frames, frame_shape,
 * pixels, seed, init, rng, rng_kernel, threads, command_line, corrsde_version and
 * created (UTC, ISO 8601). NULL strings are written as "". */
int csde_h5params_write(const csde_h5sink *s, const csde_h5params *p, csde_err *err);

/* What /covariance holds, computed once (csde_h5cov_fill: the matrix and its
 * eigenvalues up to CSDE_H5COV_MAX_TAU frames, a dense eigensolve, O(tau^3); above,
 * nothing of size tau^2; logdet when dense or cheap, else none: a Levinson pass). */
#define CSDE_H5COV_MAX_TAU 1024
typedef struct {
  const csde_cov *C; /* the operator filled from (NULL: empty) */
  double *m, *eig;
  double logdet;
  int have_logdet;
} csde_h5cov;

/* Fill c for C (nothing to do if c was filled from C). c starts zeroed. */
int csde_h5cov_fill(csde_h5cov *c, const csde_cov *C, csde_err *err);
void csde_h5cov_free(csde_h5cov *c);

/* /covariance (made if missing): datasets matrix [tau, tau] and eigenvalues [tau], or
 * attribute matrix saying why not; attributes spec, method, exact, noise_dim, logdet,
 * eigenvalue_range, eigenvalue_range_exact, and for an approximation kl_per_frame and
 * max_entry_diff. Fills c first. */
int csde_h5cov_write(const csde_h5sink *s, csde_h5cov *c, const csde_cov *C, csde_err *err);

#endif
