/* Internal: the Brownian tree (noise kind "path"): one white Brownian path W per sample
 * and noise entry on [t_start, t_end], fixed by the seed alone, built by Levy's
 * construction on the dyadic nodes u = m / 2^l of a time map t(u):
 *   W(t(1)) = sqrt|t(1) - t(0)| z(0, 1),  W(t(0)) = 0,
 *   W(t_m) = W(t_a) + (t_m - t_a) / (t_b - t_a) (W(t_b) - W(t_a))
 *            + sqrt((t_m - t_a)(t_b - t_m) / (t_b - t_a)) z(l, m)        (the bridge),
 * a, b the neighbours (m -+ 1) / 2^l, z(l, m) the normals of stream CSDE_STREAM_TREE | l << 52
 * | m of the seed, at index (first + j) * per + e for sample j, entry e (the same for a
 * sample alone or in any batch). W at a node does not depend on how deep a grid goes, so
 * every grid of 2^k steps of one map kind (uniform, quadratic, karras, logsnr nest)
 * walks the same path.
 *
 * The walk (csde_tree_increment) visits a 2^k-step grid's nodes in order with a stack of
 * the pending right ends: every node is drawn once (one normal per entry and step, as the
 * streaming noise) in O(k) memory. The query (csde_tree_at) bisects down to level
 * CSDE_TREE_DEPTH at any t, drawing the nodes on the way, and interpolates linearly (the
 * bridge's mean) inside the last interval: for grids that do not nest. */
#ifndef CSDE_NOISE_TREE_H
#define CSDE_NOISE_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "corrsde/status.h"

#define CSDE_STREAM_TREE ((uint64_t)1 << 62)
#define CSDE_TREE_DEPTH 40
#define CSDE_TREE_MAXK 30
/* What /parameters records of the path noise. */
#define CSDE_TREE_GENERATOR                                                                   \
  "brownian-tree/1: Levy construction on the grid kind's dyadic nodes (walked on 2^k "       \
  "steps; queried to depth 40 on other grids), bridge normals of stream 2^62 + l 2^52 + m"

/* t(u) for u in [0, 1], monotone, with t(0) = t_start and t(1) = t_end exactly. */
typedef double (*csde_tree_time_fn)(const void *ctx, double u);

typedef struct {
  csde_tree_time_fn at;
  const void *ctx;
  size_t batch, per; /* samples, white entries per sample */
  size_t len;        /* batch * per */
  uint64_t seed;
  size_t first;
  int threads;
  unsigned k;        /* walk: the grid has 2^k steps; UINT_MAX: no walk */
  size_t N;
  size_t cur;        /* walk: the node whose value buf[curbuf] holds */
  unsigned curbuf, sp, nfree;
  unsigned stack[CSDE_TREE_MAXK + 2]; /* buffers of the pending right ends, nearest on top */
  size_t snode[CSDE_TREE_MAXK + 2];
  unsigned freeb[CSDE_TREE_MAXK + 3];
  double *buf;       /* the walk's k + 2 buffers, then the query's 3, of len values */
  size_t nbuf;
} csde_tree;

/* A tree over the map (at, ctx); walk_k: the walk's grid has 2^walk_k steps (<= 30), or
 * -1 for queries only. */
int csde_tree_init(csde_tree *tr, csde_tree_time_fn at, const void *ctx, size_t batch, size_t per,
                   int walk_k, int threads, csde_err *err);
void csde_tree_free(csde_tree *tr);
void csde_tree_set_seed(csde_tree *tr, uint64_t seed, size_t first);

/* white = W(t_{n+1}) - W(t_n) on the walk's grid, t_n = t(n / 2^k). In order it draws
 * each node once; out of order it walks again from the start (same values). */
void csde_tree_increment(csde_tree *tr, size_t n, double *white);

/* out = W(t) (batch * per values); t outside the span is clamped to its ends. Leaves the
 * walk alone. */
void csde_tree_at(csde_tree *tr, double t, double *out);

#endif
