/* The Brownian tree (tree.h): Levy's construction of W and its space-time Levy area H on
 * the dyadic intervals of a time map. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "corrsde/rng.h"
#include "noise/tree.h"

int csde_tree_init(csde_tree *tr, csde_tree_time_fn at, const void *ctx, size_t batch, size_t per,
                   int walk_k, int threads, csde_err *err)
{
  memset(tr, 0, sizeof *tr);
  if (walk_k > CSDE_TREE_MAXK)
    return csde_err_set(err, CSDE_EINVAL, "path noise: 2^%d steps is too deep (at most 2^%d)",
                        walk_k, CSDE_TREE_MAXK);
  tr->at = at;
  tr->ctx = ctx;
  tr->t0 = at(ctx, 0.0);
  tr->batch = batch;
  tr->per = per;
  tr->len = batch * per;
  tr->threads = threads > 0 ? threads : 1;
  tr->k = walk_k < 0 ? UINT_MAX : (unsigned)walk_k;
  tr->N = walk_k < 0 ? 0 : (size_t)1 << walk_k;
  tr->npair = (walk_k < 0 ? 0 : (size_t)walk_k + 2) + 3;
  if (tr->len > SIZE_MAX / sizeof(double) / (2 * tr->npair) ||
      !(tr->buf = csde_alloc(2 * tr->npair * tr->len, sizeof(double))))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the Brownian tree (%zu x %zu values)",
                        2 * tr->npair, tr->len);
  tr->cur = SIZE_MAX; /* no walk yet */
  return CSDE_SUCCESS;
}

void csde_tree_free(csde_tree *tr)
{
  csde_free(tr->buf);
  tr->buf = NULL;
}

void csde_tree_set_seed(csde_tree *tr, uint64_t seed, size_t first)
{
  tr->seed = seed;
  tr->first = first;
  tr->cur = SIZE_MAX;
}

/* pair p: W at buf + 2 p len, H after it */
static double *pw(const csde_tree *tr, unsigned p) { return tr->buf + (size_t)2 * p * tr->len; }
static double *ph(const csde_tree *tr, unsigned p) { return pw(tr, p) + tr->len; }

/* The path time of u. */
static double s_of(const csde_tree *tr, double u) { return fabs(tr->at(tr->ctx, u) - tr->t0); }

enum { CH = 512 };

/* A node's draw: the root (W = a z1, H = b z2), or the split of (W, H) of an interval of
 * path length h at h1 from its left end (tree.h's formulas). */
typedef struct {
  int root;
  double a, b;                            /* root */
  double h, h1, h2, aW, aH, bH, L11, L21, L22; /* split */
} node_coef;

/* Over every sample, in chunks whose normals z1, z2 (streams id and id + 2^51) are keyed by
 * their global index (threads never change a bit): the root into (W, H), or the split's
 * left child into (W1, H1) and its right child in place of (W, H). */
static void draw(const csde_tree *tr, uint64_t id, const node_coef *c, double *W, double *H,
                 double *W1, double *H1)
{
  const size_t per = tr->per, nch = (per + CH - 1) / CH;
  const long ntask = (long)(tr->batch * nch);
  const csde_rng_key k1 = {tr->seed, id}, k2 = {tr->seed, id | (uint64_t)1 << 51};
  const int th = tr->threads;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1 && ntask > 16)
#endif
  for (long task = 0; task < ntask; task++) {
    double z1[CH], z2[CH];
    const size_t j = (size_t)task / nch, c0 = ((size_t)task % nch) * CH;
    const size_t len = per - c0 < CH ? per - c0 : CH, o = j * per + c0;
    const uint64_t idx = (uint64_t)((tr->first + j) * per + c0);
    csde_rng_normal(k1, idx, len, z1);
    csde_rng_normal(k2, idx, len, z2);
    if (c->root) {
      for (size_t q = 0; q < len; q++) {
        W[o + q] = c->a * z1[q];
        H[o + q] = c->b * z2[q];
      }
      continue;
    }
    for (size_t q = 0; q < len; q++) {
      const double w = W[o + q], hh = H[o + q];
      const double w1 = c->aW * w + c->aH * hh + c->L11 * z1[q];
      const double a1 = c->bH * hh + c->L21 * z1[q] + c->L22 * z2[q];
      W1[o + q] = w1;
      H1[o + q] = a1;
      W[o + q] = w - w1;
      H[o + q] = (c->h * hh + 0.5 * (c->h1 * w - c->h * w1) - c->h1 * a1) / c->h2;
    }
  }
}

/* The root of path length h: W = sqrt(h) z1, H = sqrt(h / 12) z2. */
static void draw_root(const csde_tree *tr, double h, double *W, double *H)
{
  const node_coef c = {.root = 1, .a = sqrt(h), .b = sqrt(h / 12)};
  draw(tr, CSDE_STREAM_TREE | 1, &c, W, H, NULL, NULL);
}

/* Split (W, H) at node (l, m): the conditional law of the left child given the parent. */
static void split(const csde_tree *tr, unsigned l, uint64_t m, double h1, double h, double *W,
                  double *H, double *W1, double *H1)
{
  node_coef c = {.h = h, .h1 = h1, .h2 = h - h1};
  const double r = h1 / h, g = h1 * c.h2 / h;
  const double S11 = g * (1 - 3 * g / h), S22 = h1 / 12 * (1 - r * r * r),
               S12 = -0.5 * r * r * r * c.h2;
  c.L11 = sqrt(fmax(S11, 0));
  c.L21 = c.L11 > 0 ? S12 / c.L11 : 0;
  c.L22 = sqrt(fmax(S22 - c.L21 * c.L21, 0));
  c.aW = r; /* the conditional means */
  c.aH = 6 * g / h;
  c.bH = r * r;
  draw(tr, CSDE_STREAM_TREE | (uint64_t)l << 52 | m, &c, W, H, W1, H1);
}

/* The level and index of the walk's node i (0 < i < N): i = m 2^(k - l), m odd. */
static void node_id(const csde_tree *tr, size_t i, unsigned *l, uint64_t *m)
{
  unsigned tz = (unsigned)__builtin_ctzll((unsigned long long)i);
  *l = tr->k - tz;
  *m = (uint64_t)(i >> tz);
}

/* The path time of the walk's node i: u = i / N = m / 2^l exactly. */
static double node_s(const csde_tree *tr, size_t i)
{
  if (i == 0) return 0;
  if (i == tr->N) return s_of(tr, 1.0);
  unsigned l;
  uint64_t m;
  node_id(tr, i, &l, &m);
  return s_of(tr, ldexp((double)m, -(int)l));
}

/* The walk before step 0: the root [0, N] pending. */
static void walk_reset(csde_tree *tr)
{
  tr->nfree = 0;
  for (unsigned b = 0; b < tr->k + 2; b++) tr->freeb[tr->nfree++] = b;
  const unsigned rb = tr->freeb[--tr->nfree];
  draw_root(tr, node_s(tr, tr->N), pw(tr, rb), ph(tr, rb));
  tr->sp = 0;
  tr->stack[tr->sp] = rb;
  tr->snode[tr->sp] = 0;
  tr->send[tr->sp++] = tr->N;
  tr->cur = 0;
}

/* Step cur's (W, H) into pair `out` of the caller's: split the top interval [cur, R] until
 * it is [cur, cur + 1] (each split pushes the left child; the right one stays). */
static unsigned walk_next(csde_tree *tr)
{
  const size_t n = tr->cur;
  while (tr->send[tr->sp - 1] != n + 1) {
    const unsigned top = tr->stack[tr->sp - 1];
    const size_t R = tr->send[tr->sp - 1], mid = n + (R - n) / 2;
    unsigned l;
    uint64_t m;
    node_id(tr, mid, &l, &m);
    const double sa = node_s(tr, n), sm = node_s(tr, mid), sb = node_s(tr, R);
    const unsigned lb = tr->freeb[--tr->nfree];
    split(tr, l, m, sm - sa, sb - sa, pw(tr, top), ph(tr, top), pw(tr, lb), ph(tr, lb));
    tr->snode[tr->sp - 1] = mid; /* the top is now [mid, R] */
    tr->stack[tr->sp] = lb;
    tr->snode[tr->sp] = n;
    tr->send[tr->sp++] = mid;
  }
  const unsigned leaf = tr->stack[--tr->sp];
  tr->freeb[tr->nfree++] = leaf; /* read by the caller before the next split */
  tr->cur = n + 1;
  return leaf;
}

void csde_tree_increment(csde_tree *tr, size_t n, double *white, double *area)
{
  if (n >= tr->N) { /* past the walk's grid (or no walk): no such step */
    for (size_t i = 0; i < tr->len; i++) white[i] = NAN;
    if (area) memcpy(area, white, tr->len * sizeof(double));
    return;
  }
  if (tr->cur == SIZE_MAX || n < tr->cur) walk_reset(tr);
  while (tr->cur < n) walk_next(tr);
  const unsigned leaf = walk_next(tr);
  memcpy(white, pw(tr, leaf), tr->len * sizeof(double));
  if (area) memcpy(area, ph(tr, leaf), tr->len * sizeof(double));
}

void csde_tree_at(csde_tree *tr, double t, double *out, double *J)
{
  const unsigned q0 = (unsigned)tr->npair - 3;
  unsigned A = q0, B = q0 + 1; /* the interval [ua, ub] holding s, and the spare pair */
  double *acc = pw(tr, q0 + 2), *accJ = ph(tr, q0 + 2); /* W and int_0 W at its left end */
  const size_t len = tr->len;
  const double S = s_of(tr, 1.0), dir = tr->at(tr->ctx, 1.0) > tr->t0 ? 1.0 : -1.0;
  const double s = dir * (t - tr->t0);
  if (isnan(s)) { /* no such time: NaN, which the solve loop reports */
    for (size_t i = 0; i < len; i++) out[i] = NAN;
    if (J) memcpy(J, out, len * sizeof(double));
    return;
  }
  memset(out, 0, len * sizeof(double));
  if (J) memset(J, 0, len * sizeof(double));
  if (!(s > 0)) return; /* at or before the start: W = 0 */
  draw_root(tr, S, pw(tr, A), ph(tr, A));
  if (!(s < S)) { /* at or past the end: W, and int_0^S W = S (W/2 + H) */
    const double *W = pw(tr, A), *H = ph(tr, A);
    memcpy(out, W, len * sizeof(double));
    if (J)
      for (size_t i = 0; i < len; i++) J[i] = S * (0.5 * W[i] + H[i]);
    return;
  }
  memset(acc, 0, len * sizeof(double));
  memset(accJ, 0, len * sizeof(double));
  double ua = 0, ub = 1, sa = 0, sb = S;
  for (unsigned l = 1; l <= CSDE_TREE_DEPTH; l++) {
    const double um = 0.5 * (ua + ub), sm = s_of(tr, um);
    split(tr, l, (uint64_t)ldexp(um, (int)l), sm - sa, sb - sa, pw(tr, A), ph(tr, A), pw(tr, B),
          ph(tr, B)); /* B: the left child, A: the right one */
    if (s < sm) { /* in the left child */
      const unsigned sw = A;
      A = B;
      B = sw;
      ub = um;
      sb = sm;
    } else { /* in the right child: past the left one, of length h1 = sm - sa,
              * int W += h1 (W(sa) + W1/2 + H1),  W(sm) = W(sa) + W1 */
      const double *wl = pw(tr, B), *hl = ph(tr, B), h1 = sm - sa;
      for (size_t i = 0; i < len; i++) {
        accJ[i] += h1 * (acc[i] + 0.5 * wl[i] + hl[i]);
        acc[i] += wl[i];
      }
      ua = um;
      sa = sm;
      if (s == sm) {
        memcpy(out, acc, len * sizeof(double));
        if (J) memcpy(J, accJ, len * sizeof(double));
        return;
      }
    }
  }
  /* inside the last interval [sa, sb], r = (s - sa)/h: E[W(s) - W(sa) | W, H] =
   * r W + 6 r (1 - r) H, and its integral over [sa, s] h (r^2/2 W + 6 (r^2/2 - r^3/3) H) */
  const double h = sb - sa, r = (s - sa) / h, cj = 6 * (0.5 * r * r - r * r * r / 3);
  const double *W = pw(tr, A), *H = ph(tr, A);
  for (size_t i = 0; i < len; i++) {
    out[i] = acc[i] + r * W[i] + 6 * r * (1 - r) * H[i];
    if (J) J[i] = accJ[i] + (s - sa) * acc[i] + h * (0.5 * r * r * W[i] + cj * H[i]);
  }
}
