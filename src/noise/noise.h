/* Internal: Brownian increments for the SDE solvers, coloured by V'. The noise kinds
 * (a type table in noise.c, csde_noise_kind_name):
 *   stream  fresh normals per step: step n of a solve uses stream n of the seed;
 *   path    the Brownian tree (tree.h): one path per seed, walked on 2^k-step grids of a
 *           grid kind's map and queried at any t on the others.
 * Initial states drawn by the command line use stream CSDE_STREAM_INIT. Within a stream,
 * white noise for global sample j sits at indices (j * noise_dim + row) * D + pixel (as
 * csde_cov_sample), so sample j is the same alone or inside any batch. */
#ifndef CSDE_NOISE_NOISE_H
#define CSDE_NOISE_NOISE_H

#include <stdint.h>

#include "corrsde/cov.h"
#include "corrsde/problem.h"
#include "noise/tree.h"

/* CSDE_STREAM_INIT: corrsde/rng.h */
#define CSDE_STREAM_AREA ((uint64_t)1 << 61) /* stream noise: step n's H is stream 2^61 + n */

typedef struct {
  csde_noise_kind kind;
  const csde_cov *C;
  csde_cov_ws *ws;       /* borrowed */
  size_t batch, D, nd, tau;
  uint64_t seed;
  size_t first;
  int threads;
  /* path */
  csde_tree tree;
  int walk;              /* 1: the solve's grid is the tree's walk; 0: queries at its times */
  double *white, *harea; /* batch * nd * D: the white increment and its H */
  double *wlast, *jlast, *jcur; /* queries: W and int W at tlast, int W at the new t */
  double tlast;
  int have_last;
} csde_noise;

/* The path kind's tree is over the time map (at, ctx) (borrowed); walk_k >= 0: the solve's
 * grid is the map's 2^walk_k-step grid, -1: any grid (queries). */
int csde_noise_init(csde_noise *nz, csde_noise_kind kind, const csde_cov *C, csde_cov_ws *ws,
                    size_t batch, size_t D, csde_tree_time_fn at, const void *ctx, int walk_k,
                    int threads, csde_err *err);
void csde_noise_free(csde_noise *nz);
void csde_noise_set_seed(csde_noise *nz, uint64_t seed, size_t first);

/* dW = V' (W(t1) - W(t0)) for step n of the grid (t0 = grid[n], t1 = grid[n+1]):
 * batch * tau * D values. */
int csde_noise_increment(csde_noise *nz, size_t n, double t0, double t1, double *dW,
                         csde_err *err);

/* The same, and dH = V' H of the step (H ~ N(0, |h| / 12), independent of dW: for stream
 * noise from stream CSDE_STREAM_AREA | n, for path noise the tree's, on any grid; dH
 * NULL: none). */
int csde_noise_increment_area(csde_noise *nz, size_t n, double t0, double t1, double *dW,
                              double *dH, csde_err *err);

/* x <- a x + b u + g dW for step n in one pass over the state (u may be NULL: no b u
 * term), with dW as csde_noise_increment draws it. Streaming noise is drawn and coloured
 * tile by tile inside the pass; path noise goes through dWbuf (state-sized). *bad is set
 * to 1 when u holds a non-finite value. */
int csde_noise_axpy(csde_noise *nz, size_t n, double t0, double t1, double g, double a,
                    double *x, double b, const double *u, double *dWbuf, int *bad,
                    csde_err *err);

#endif
