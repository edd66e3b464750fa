/* The Brownian tree (tree.h): Levy's construction on the dyadic nodes of a time map. */
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
  tr->batch = batch;
  tr->per = per;
  tr->len = batch * per;
  tr->threads = threads > 0 ? threads : 1;
  tr->k = walk_k < 0 ? UINT_MAX : (unsigned)walk_k;
  tr->N = walk_k < 0 ? 0 : (size_t)1 << walk_k;
  tr->nbuf = (walk_k < 0 ? 0 : (size_t)walk_k + 2) + 3;
  if (tr->len > SIZE_MAX / sizeof(double) / tr->nbuf ||
      !(tr->buf = csde_alloc(tr->nbuf * tr->len, sizeof(double))))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the Brownian tree (%zu x %zu values)",
                        tr->nbuf, tr->len);
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

static double *buffer(const csde_tree *tr, unsigned b) { return tr->buf + (size_t)b * tr->len; }

/* out = a + w (b - a) + s z(l, m) (a, b NULL: 0), over every sample, in chunks whose
 * normals are keyed by their global index: threads never change a bit. */
static void draw(const csde_tree *tr, unsigned l, uint64_t m, const double *a, const double *b,
                 double w, double s, double *out)
{
  enum { CH = 1024 };
  const size_t per = tr->per, nch = (per + CH - 1) / CH;
  const long ntask = (long)(tr->batch * nch);
  const csde_rng_key key = {tr->seed, CSDE_STREAM_TREE | (uint64_t)l << 52 | m};
  const int th = tr->threads;
  (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
  for (long task = 0; task < ntask; task++) {
    double z[CH];
    const size_t j = (size_t)task / nch, c0 = ((size_t)task % nch) * CH;
    const size_t len = per - c0 < CH ? per - c0 : CH, o = j * per + c0;
    csde_rng_normal(key, (uint64_t)((tr->first + j) * per + c0), len, z);
    if (a)
      for (size_t q = 0; q < len; q++) out[o + q] = a[o + q] + w * (b[o + q] - a[o + q]) + s * z[q];
    else
      for (size_t q = 0; q < len; q++) out[o + q] = s * z[q];
  }
}

/* sqrt((tm - ta)(tb - tm) / (tb - ta)): the bridge's standard deviation at tm */
static double bridge_sd(double ta, double tm, double tb)
{
  return sqrt(fabs((tm - ta) * (tb - tm) / (tb - ta))); /* either direction of t */
}

/* The level and index of walk node i (0 < i <= N): i = m 2^(k - l), m odd; N is (0, 1). */
static void node_id(const csde_tree *tr, size_t i, unsigned *l, uint64_t *m)
{
  if (i == tr->N) {
    *l = 0;
    *m = 1;
    return;
  }
  unsigned tz = (unsigned)__builtin_ctzll((unsigned long long)i);
  *l = tr->k - tz;
  *m = (uint64_t)(i >> tz);
}

static double node_time(const csde_tree *tr, size_t i)
{
  unsigned l;
  uint64_t m;
  if (i == 0) return tr->at(tr->ctx, 0.0);
  node_id(tr, i, &l, &m);
  return tr->at(tr->ctx, ldexp((double)m, -(int)l)); /* m / 2^l = i / N exactly */
}

/* The walk at node 0: W = 0, the root W(t(1)) pending. */
static void walk_reset(csde_tree *tr)
{
  tr->nfree = 0;
  for (unsigned b = 0; b < tr->k + 2; b++) tr->freeb[tr->nfree++] = b;
  tr->curbuf = tr->freeb[--tr->nfree];
  memset(buffer(tr, tr->curbuf), 0, tr->len * sizeof(double));
  tr->cur = 0;
  const unsigned rb = tr->freeb[--tr->nfree];
  draw(tr, 0, 1, NULL, NULL, 0, sqrt(fabs(node_time(tr, tr->N) - node_time(tr, 0))),
       buffer(tr, rb));
  tr->sp = 0;
  tr->stack[tr->sp] = rb;
  tr->snode[tr->sp++] = tr->N;
}

/* From node cur to cur + 1: draw the midpoints between cur and the nearest pending right
 * end until that end is cur + 1 ([cur, right] is always a dyadic interval). */
static void walk_next(csde_tree *tr)
{
  const size_t next = tr->cur + 1;
  while (tr->snode[tr->sp - 1] != next) {
    const size_t R = tr->snode[tr->sp - 1], mid = tr->cur + (R - tr->cur) / 2;
    unsigned l;
    uint64_t m;
    node_id(tr, mid, &l, &m);
    const double ta = node_time(tr, tr->cur), tm = node_time(tr, mid), tb = node_time(tr, R);
    const unsigned mb = tr->freeb[--tr->nfree];
    draw(tr, l, m, buffer(tr, tr->curbuf), buffer(tr, tr->stack[tr->sp - 1]),
         (tm - ta) / (tb - ta), bridge_sd(ta, tm, tb), buffer(tr, mb));
    tr->stack[tr->sp] = mb;
    tr->snode[tr->sp++] = mid;
  }
  tr->freeb[tr->nfree++] = tr->curbuf;
  tr->curbuf = tr->stack[--tr->sp];
  tr->cur = next;
}

void csde_tree_increment(csde_tree *tr, size_t n, double *white)
{
  if (tr->cur == SIZE_MAX || n < tr->cur) walk_reset(tr);
  while (tr->cur < n) walk_next(tr);
  const double *w0 = buffer(tr, tr->curbuf); /* W(t_n): freed by walk_next, not reused */
  walk_next(tr);
  const double *w1 = buffer(tr, tr->curbuf);
  for (size_t i = 0; i < tr->len; i++) white[i] = w1[i] - w0[i];
}

void csde_tree_at(csde_tree *tr, double t, double *out)
{
  const size_t q0 = tr->nbuf - 3;
  double *A = buffer(tr, (unsigned)q0), *B = buffer(tr, (unsigned)q0 + 1),
         *M = buffer(tr, (unsigned)q0 + 2);
  double ua = 0, ub = 1, ta = tr->at(tr->ctx, 0.0), tb = tr->at(tr->ctx, 1.0);
  const double dir = tb > ta ? 1.0 : -1.0;
  if (!(dir * (t - ta) > 0)) { /* at or before the start: W = 0 */
    memset(out, 0, tr->len * sizeof(double));
    return;
  }
  memset(A, 0, tr->len * sizeof(double));
  draw(tr, 0, 1, NULL, NULL, 0, sqrt(fabs(tb - ta)), B);
  if (!(dir * (tb - t) > 0)) { /* at or past the end */
    memcpy(out, B, tr->len * sizeof(double));
    return;
  }
  for (unsigned l = 1; l <= CSDE_TREE_DEPTH; l++) {
    const double um = 0.5 * (ua + ub), tm = tr->at(tr->ctx, um);
    draw(tr, l, (uint64_t)ldexp(um, (int)l), A, B, (tm - ta) / (tb - ta), bridge_sd(ta, tm, tb), M);
    if (tm == t) {
      memcpy(out, M, tr->len * sizeof(double));
      return;
    }
    double *sw;
    if (dir * (t - tm) < 0) { /* t in (ta, tm): M becomes the right end */
      sw = B, B = M, M = sw;
      ub = um;
      tb = tm;
    } else {
      sw = A, A = M, M = sw;
      ua = um;
      ta = tm;
    }
  }
  /* inside the last interval: the bridge's mean */
  const double w = (t - ta) / (tb - ta);
  for (size_t i = 0; i < tr->len; i++) out[i] = A[i] + w * (B[i] - A[i]);
}
