/* Brownian increments: streaming (fresh per step) and path-consistent (dyadic sums of
 * the finest level's increments, so every level sees the same Brownian path). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cov/cov_internal.h"
#include "noise/noise.h"

int csde_noise_init(csde_noise *nz, csde_noise_kind kind, const csde_cov *C, csde_cov_ws *ws,
                    size_t batch, size_t D, const double *grid, size_t nsteps,
                    const double *fine, size_t nfine, int threads, csde_err *err)
{
  memset(nz, 0, sizeof *nz);
  nz->kind = kind;
  nz->C = C;
  nz->ws = ws;
  nz->batch = batch;
  nz->D = D;
  nz->tau = csde_cov_tau(C);
  nz->nd = csde_cov_noise_dim(C);
  nz->threads = threads > 0 ? threads : 1;
  if (kind == CSDE_NOISE_STREAM) return CSDE_SUCCESS;
  if (kind != CSDE_NOISE_PATH) return csde_err_set(err, CSDE_EINVAL, "unknown noise kind %d", (int)kind);
  if (!fine || nfine == 0 || nfine % nsteps)
    return csde_err_set(err, CSDE_EINVAL,
                        "--noise path: %zu steps do not divide the finest level's %zu steps "
                        "(use 2^k steps with k <= the path level)",
                        nsteps, nfine);
  nz->ratio = nfine / nsteps;
  for (size_t n = 0; n <= nsteps; n++)
    if (grid[n] != fine[n * nz->ratio])
      return csde_err_set(err, CSDE_EINVAL,
                          "--noise path: node %zu of the grid (t = %.17g) is not a node of the "
                          "finest grid (t = %.17g); the grid kind must nest",
                          n, grid[n], fine[n * nz->ratio]);
  size_t len = batch * nz->nd * D;
  nz->fine = malloc((nfine + 1) * sizeof *nz->fine);
  nz->white = csde_alloc(len, sizeof(double));
  nz->nfine = nfine;
  if (!nz->fine || !nz->white) {
    csde_noise_free(nz);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for path noise");
  }
  memcpy(nz->fine, fine, (nfine + 1) * sizeof *fine);
  return CSDE_SUCCESS;
}

void csde_noise_free(csde_noise *nz)
{
  free(nz->fine);
  csde_free(nz->white);
  nz->fine = nz->white = NULL;
}

void csde_noise_set_seed(csde_noise *nz, uint64_t seed, size_t first)
{
  nz->seed = seed;
  nz->first = first;
}

int csde_noise_increment(csde_noise *nz, size_t n, double t0, double t1, double *dW,
                         csde_err *err)
{
  int th = nz->threads;
  if (nz->kind == CSDE_NOISE_STREAM) { /* dW = V' (sqrt|h| z), z keyed by (seed, stream n) */
    csde_rng_key key = {nz->seed, (uint64_t)n};
    return csde_cov_sample_scaled(nz->C, nz->ws, key, nz->first, nz->batch,
                                  sqrt(fabs(t1 - t0)), dW, err);
  }
  /* path: white = sum over the fine steps i inside step n of sqrt|h_i| z_i, in one
   * parallel region over chunks of each sample's white noise (a chunk's fine draws are
   * summed in order, so threads never change a bit) */
  enum { CH = 1024 };
  size_t per = nz->nd * nz->D, nch = (per + CH - 1) / CH;
  long ntask = (long)(nz->batch * nch);
  (void)t0;
  (void)t1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long task = 0; task < ntask; task++) {
    double z[CH];
    size_t j = (size_t)task / nch, c0 = ((size_t)task % nch) * CH;
    size_t len = per - c0 < CH ? per - c0 : CH;
    double *w = nz->white + j * per + c0;
    for (size_t k = 0; k < nz->ratio; k++) {
      size_t i = n * nz->ratio + k;
      csde_rng_key key = {nz->seed, CSDE_STREAM_PATH | (uint64_t)i};
      double sh = sqrt(fabs(nz->fine[i + 1] - nz->fine[i]));
      csde_rng_normal(key, (uint64_t)((nz->first + j) * per + c0), len, z);
      if (k == 0)
        for (size_t q = 0; q < len; q++) w[q] = sh * z[q];
      else
        for (size_t q = 0; q < len; q++) w[q] += sh * z[q];
    }
  }
  return csde_cov_apply(nz->C, nz->ws, CSDE_COV_OP_SQRT, nz->batch, nz->white, dW, err);
}

int csde_noise_axpy(csde_noise *nz, size_t n, double t0, double t1, double g, double a,
                    double *x, double b, const double *u, double *dWbuf, int *bad,
                    csde_err *err)
{
  if (nz->kind == CSDE_NOISE_STREAM) { /* g dW = V' (g sqrt|h| z) */
    csde_rng_key key = {nz->seed, (uint64_t)n};
    return csde_cov_sample_axpy(nz->C, nz->ws, key, nz->first, nz->batch,
                                g * sqrt(fabs(t1 - t0)), a, x, b, u, x, bad, err);
  }
  int s = csde_noise_increment(nz, n, t0, t1, dWbuf, err), th = nz->threads;
  if (s) return s;
  *bad = csde_axpby_checked(th, nz->batch * nz->tau * nz->D, a, x, b, u, g, dWbuf);
  return CSDE_SUCCESS;
}
