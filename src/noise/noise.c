/* Brownian increments (noise.h): streaming (fresh per step) and the Brownian tree's path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cov/cov_internal.h"
#include "noise/noise.h"

/* The noise kinds, in csde_noise_kind order. */
static const struct {
  const char *name, *summary;
} kinds[] = {
  {"stream", "fresh noise per step, fastest"},
  {"path", "one Brownian path per seed (a Brownian tree): runs with any --steps see the "
           "same path"},
};

const char *csde_noise_kind_name(csde_noise_kind k)
{
  return (unsigned)k < sizeof kinds / sizeof kinds[0] ? kinds[k].name : NULL;
}

const char *csde_noise_kind_summary(csde_noise_kind k)
{
  return (unsigned)k < sizeof kinds / sizeof kinds[0] ? kinds[k].summary : NULL;
}

int csde_noise_kind_lookup(const char *name, csde_noise_kind *k)
{
  for (unsigned i = 0; name && i < sizeof kinds / sizeof kinds[0]; i++)
    if (!strcmp(name, kinds[i].name)) {
      *k = (csde_noise_kind)i;
      return CSDE_SUCCESS;
    }
  return CSDE_EINVAL;
}

int csde_noise_init(csde_noise *nz, csde_noise_kind kind, const csde_cov *C, csde_cov_ws *ws,
                    size_t batch, size_t D, csde_tree_time_fn at, const void *ctx, int walk_k,
                    int threads, csde_err *err)
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
  int s = csde_tree_init(&nz->tree, at, ctx, batch, nz->nd * D, walk_k, threads, err);
  if (s) return s;
  nz->walk = walk_k >= 0;
  size_t len = batch * nz->nd * D;
  nz->white = csde_alloc(len, sizeof(double));
  nz->harea = csde_alloc(len, sizeof(double));
  if (!nz->walk) {
    nz->wlast = csde_alloc(len, sizeof(double));
    nz->jlast = csde_alloc(len, sizeof(double));
    nz->jcur = csde_alloc(len, sizeof(double));
  }
  if (!nz->white || !nz->harea || (!nz->walk && (!nz->wlast || !nz->jlast || !nz->jcur))) {
    csde_noise_free(nz);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for path noise");
  }
  return CSDE_SUCCESS;
}

void csde_noise_free(csde_noise *nz)
{
  csde_tree_free(&nz->tree);
  csde_free(nz->white);
  csde_free(nz->wlast);
  csde_free(nz->harea);
  csde_free(nz->jlast);
  csde_free(nz->jcur);
  nz->white = nz->wlast = nz->harea = nz->jlast = nz->jcur = NULL;
}

void csde_noise_set_seed(csde_noise *nz, uint64_t seed, size_t first)
{
  nz->seed = seed;
  nz->first = first;
  nz->have_last = 0;
  if (nz->kind == CSDE_NOISE_PATH) csde_tree_set_seed(&nz->tree, seed, first);
}

/* Path noise in white space: white = W over [t0, t1] and, if area, its H. The walk on the
 * tree's own grid, or queries: W and int W at t0 (kept from the last step when t0 is its
 * t1) and t1, H = (J1 - J0 - h W0) / h - (W1 - W0) / 2, h = |t1 - t0|. */
static void path_white(csde_noise *nz, size_t n, double t0, double t1, double *area)
{
  if (nz->walk) {
    csde_tree_increment(&nz->tree, n, nz->white, area);
    return;
  }
  const size_t len = nz->batch * nz->nd * nz->D;
  if (!nz->have_last || nz->tlast != t0) csde_tree_at(&nz->tree, t0, nz->wlast, nz->jlast);
  csde_tree_at(&nz->tree, t1, nz->white, nz->jcur);
  const double h = fabs(t1 - t0), ih = h > 0 ? 1 / h : 0;
  for (size_t i = 0; i < len; i++) {
    const double w0 = nz->wlast[i], w1 = nz->white[i], j0 = nz->jlast[i], j1 = nz->jcur[i];
    nz->white[i] = w1 - w0;
    if (area) area[i] = (j1 - j0 - h * w0) * ih - 0.5 * (w1 - w0);
    nz->wlast[i] = w1;
    nz->jlast[i] = j1;
  }
  nz->tlast = t1;
  nz->have_last = 1;
}

int csde_noise_increment(csde_noise *nz, size_t n, double t0, double t1, double *dW,
                         csde_err *err)
{
  if (nz->kind == CSDE_NOISE_STREAM) { /* dW = V' (sqrt|h| z), z keyed by (seed, stream n) */
    csde_rng_key key = {nz->seed, (uint64_t)n};
    return csde_cov_sample_scaled(nz->C, nz->ws, key, nz->first, nz->batch,
                                  sqrt(fabs(t1 - t0)), dW, err);
  }
  path_white(nz, n, t0, t1, NULL);
  return csde_cov_apply(nz->C, nz->ws, CSDE_COV_OP_SQRT, nz->batch, nz->white, dW, err);
}

int csde_noise_increment_area(csde_noise *nz, size_t n, double t0, double t1, double *dW,
                              double *dH, csde_err *err)
{
  if (!dH) return csde_noise_increment(nz, n, t0, t1, dW, err);
  if (nz->kind == CSDE_NOISE_STREAM) {
    csde_rng_key key = {nz->seed, CSDE_STREAM_AREA | (uint64_t)n};
    int s = csde_noise_increment(nz, n, t0, t1, dW, err);
    return s ? s : csde_cov_sample_scaled(nz->C, nz->ws, key, nz->first, nz->batch,
                                          sqrt(fabs(t1 - t0) / 12), dH, err);
  }
  path_white(nz, n, t0, t1, nz->harea);
  /* dW = V' W, dH = V' H */
  int s = csde_cov_apply(nz->C, nz->ws, CSDE_COV_OP_SQRT, nz->batch, nz->white, dW, err);
  return s ? s : csde_cov_apply(nz->C, nz->ws, CSDE_COV_OP_SQRT, nz->batch, nz->harea, dH, err);
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
