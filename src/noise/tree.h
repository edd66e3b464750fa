/* Internal: the Brownian tree (noise kind "path"): one white Brownian motion W per sample
 * and noise entry, in the path time s = |t - t_start| of [t_start, t_end], fixed by the
 * seed alone, with the space-time Levy area of every interval,
 *   H_{a,b} = (1/h) int_a^b (W_s - W_a - (s - a)/h W_{a,b}) ds,  h = b - a,
 * W_{a,b} = W_b - W_a ~ N(0, h) and H ~ N(0, h/12) independent. The intervals are the
 * dyadic ones u in [j/2^l, (j+1)/2^l] of a time map t(u). Levy's construction, top down:
 *   root:   W = sqrt(h) z1,  H = sqrt(h/12) z2;
 *   split [a, b] at m (h1 = m - a, h2 = b - m): given (W, H) of [a, b], the left child is
 *   W1 = (h1/h) W + 6 h1 h2 / h^2 H + L11 z1,  H1 = (h1/h)^2 H + L21 z1 + L22 z2,
 *   L the Cholesky factor of the conditional covariance
 *   [[h1 h2 / h (1 - 3 h1 h2 / h^2), -h1^3 h2 / (2 h^3)], [., h1 / 12 (1 - h1^3 / h^3)]],
 *   and the right child follows: W2 = W - W1, H2 = (h H + (h1 W - h W1) / 2 - h1 H1) / h2
 *   (h H + h W / 2 = int (W_s - W_a) ds adds up over the children).
 * z1, z2 of the node m = (2j + 1) / 2^l: streams CSDE_STREAM_TREE | l << 52 | (2j + 1) and
 * the same | 1 << 51, at index (first + i) * per + e for sample i, entry e (the same for a
 * sample alone or in any batch). Nothing depends on how deep a grid goes, so every grid
 * of 2^k steps of one map kind (uniform, quadratic, karras, logsnr nest) walks one path.
 *
 * The walk (csde_tree_increment) visits a 2^k-step grid's steps in order with a stack of
 * the pending right intervals: every node is drawn once (two normals per entry and step)
 * in O(k) memory. The query (csde_tree_at) bisects down to level CSDE_TREE_DEPTH at any t,
 * drawing the nodes on the way, and takes the conditional mean inside the last interval:
 * for grids that do not nest. */
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
  "brownian-tree/1: Levy construction of (W, H) on the grid kind's dyadic intervals "         \
  "(walked on 2^k steps; queried to depth 40 on other grids); node (l, m): normals of "       \
  "streams 2^62 + l 2^52 + m and + 2^51"

/* t(u) for u in [0, 1], monotone, with t(0) = t_start and t(1) = t_end exactly. */
typedef double (*csde_tree_time_fn)(const void *ctx, double u);

typedef struct {
  csde_tree_time_fn at;
  const void *ctx;
  double t0;         /* t(0): s = |t - t0| */
  size_t batch, per; /* samples, white entries per sample */
  size_t len;        /* batch * per */
  uint64_t seed;
  size_t first;
  int threads;
  unsigned k;        /* walk: the grid has 2^k steps; UINT_MAX: no walk */
  size_t N;
  size_t cur;        /* walk: the next step; SIZE_MAX: not started */
  unsigned sp, nfree;
  unsigned stack[CSDE_TREE_MAXK + 2]; /* buffer pairs (W, H) of the pending intervals
                                         [snode, snode_end], the nearest on top */
  size_t snode[CSDE_TREE_MAXK + 2], send[CSDE_TREE_MAXK + 2];
  unsigned freeb[CSDE_TREE_MAXK + 3];
  double *buf;       /* the walk's k + 2 pairs, then the query's 3 pairs, of len values */
  size_t npair;
} csde_tree;

/* A tree over the map (at, ctx); walk_k: the walk's grid has 2^walk_k steps (<= 30), or
 * -1 for queries only. */
int csde_tree_init(csde_tree *tr, csde_tree_time_fn at, const void *ctx, size_t batch, size_t per,
                   int walk_k, int threads, csde_err *err);
void csde_tree_free(csde_tree *tr);
void csde_tree_set_seed(csde_tree *tr, uint64_t seed, size_t first);

/* white = W over step n < 2^k of the walk's grid (t_n = t(n / 2^k) to t_{n+1}), and
 * area = its H (NULL: not wanted); NaN for n >= 2^k. In order it draws each node once;
 * out of order it walks again from the start (the same values). */
void csde_tree_increment(csde_tree *tr, size_t n, double *white, double *area);

/* out = W(t) and J = int_0^s W (NULL: not wanted), s = |t - t_start| (batch * per values
 * each): the Levy area of any [s0, s1] is then H = (J1 - J0 - h W0) / h - (W1 - W0) / 2.
 * t outside the span is clamped to its ends, NaN gives NaN. Leaves the walk alone. */
void csde_tree_at(csde_tree *tr, double t, double *out, double *J);

#endif
