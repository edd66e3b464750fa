/* Internal: Brownian increments for the SDE solvers, coloured by V'.
 *
 * Stream numbers of a seed (rng.h keys): step n of a streaming solve uses stream n;
 * fine step i of a path-consistent solve uses CSDE_STREAM_PATH | i; initial states drawn
 * by the command line use CSDE_STREAM_INIT. Within a stream, white noise for global sample
 * j sits at indices (j * noise_dim + row) * D + pixel (as csde_cov_sample), so sample j is
 * the same alone or inside any batch. */
#ifndef CSDE_NOISE_NOISE_H
#define CSDE_NOISE_NOISE_H

#include <stdint.h>

#include "corrsde/cov.h"
#include "corrsde/problem.h"

#define CSDE_STREAM_PATH ((uint64_t)1 << 62)
#define CSDE_STREAM_INIT ((uint64_t)1 << 63)

typedef struct {
  csde_noise_kind kind;
  const csde_cov *C;
  csde_cov_ws *ws;       /* borrowed */
  size_t batch, D, nd, tau;
  uint64_t seed;
  size_t first;
  int threads;
  /* path: the finest grid (nfine steps) and the ratio to the solve's grid */
  double *fine;
  size_t nfine, ratio;
  double *white;         /* batch * nd * D (path only) */
} csde_noise;

/* grid: the solve's nsteps + 1 times. For CSDE_NOISE_PATH, fine is the same grid kind
 * with 2^path_level steps (copied); nsteps must divide it and every coarse node must be a
 * fine node. */
int csde_noise_init(csde_noise *nz, csde_noise_kind kind, const csde_cov *C, csde_cov_ws *ws,
                    size_t batch, size_t D, const double *grid, size_t nsteps,
                    const double *fine, size_t nfine, int threads, csde_err *err);
void csde_noise_free(csde_noise *nz);
void csde_noise_set_seed(csde_noise *nz, uint64_t seed, size_t first);

/* dW = V' (W(t1) - W(t0)) for step n of the grid (t0 = grid[n], t1 = grid[n+1]):
 * batch * tau * D values. */
int csde_noise_increment(csde_noise *nz, size_t n, double t0, double t1, double *dW,
                         csde_err *err);

/* x <- a x + b u + g dW for step n in one pass over the state (u may be NULL: no b u
 * term), with dW as csde_noise_increment draws it. Streaming noise is drawn and coloured
 * tile by tile inside the pass; path noise goes through dWbuf (state-sized). *bad is set
 * to 1 when u holds a non-finite value. */
int csde_noise_axpy(csde_noise *nz, size_t n, double t0, double t1, double g, double a,
                    double *x, double b, const double *u, double *dWbuf, int *bad,
                    csde_err *err);

#endif
