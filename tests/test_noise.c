/* Tests for the Brownian tree (noise/tree.h) on the grid kinds' time maps (solve/grid.h)
 * and for the path noise coloured by V' (noise/noise.h):
 *   1. the maps t(u) against the grids' nodes, bitwise, ends included;
 *   2. nesting: the 2^3- and 2^7-step walks of one map and seed see the same path (W, and
 *      the space-time Levy areas H adding up over halves);
 *   3. the query csde_tree_at against the walk, its ends and clamps; the documented (W, H)
 *      construction (the first splits, from the named normal streams) and the query
 *      recomputed to depth 40 with its conditional mean;
 *   4. statistics of the increments and areas (walks; queries at non-dyadic times);
 *   5. determinism: threads, batch vs alone, seeds, out-of-order increments;
 *   6. csde_noise: per-frame covariance |h| C of the coloured increments (path: walk and
 *      queries; with the areas, |h|/12 C for dH and no cross-covariance; stream likewise).
 * Statistical bounds are 5 standard errors of the estimate at the sample size used (a
 * false failure has probability ~6e-7 per comparison; the seeds are fixed, so a run is
 * deterministic anyway). CSDE_TEST_QUICK (valgrind) shrinks the sample sizes; the bounds
 * follow them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrsde/corrsde.h"
#include "corrsde/cov.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "noise/noise.h"
#include "noise/tree.h"
#include "solve/grid.h"
#include "tap.h"

static int quick = 0;
static csde_schedule *vp;

static void *xalloc(size_t n, size_t sz)
{
  void *p = calloc(n ? n : 1, sz);
  if (!p) {
    printf("Bail out! out of memory\n");
    exit(1);
  }
  return p;
}

static int bits_equal(const double *a, const double *b, size_t n)
{
  return !memcmp(a, b, n * sizeof(double));
}

/* The map kinds and ends the tests walk (logsnr needs both ends > 0). */
static const char *const KINDS[] = {"uniform", "quadratic", "karras", "karras:rho=3", "logsnr"};
#define NKINDS (sizeof KINDS / sizeof *KINDS)
static const double ENDS[3][2] = {{1.0, 1e-3}, {1e-3, 1.0}, {0.0, 1.0}};

static int make_map(const char *spec, double ts, double te, csde_grid_map *g)
{
  csde_err err;
  int st = csde_grid_map_make(spec, vp, ts, te, g, &err);
  if (st) printf("# map %s %g -> %g: %s\n", spec, ts, te, err.msg);
  return st;
}

/* A tree over map g with the seed set; nonzero (and the message printed) on failure. */
static int tree_new(csde_tree *tr, const csde_grid_map *g, size_t batch, size_t per, int k,
                    int threads, uint64_t seed, size_t first)
{
  csde_err err;
  int st = csde_tree_init(tr, csde_grid_map_at, g, batch, per, k, threads, &err);
  if (st) {
    printf("# csde_tree_init: %s\n", err.msg);
    return st;
  }
  csde_tree_set_seed(tr, seed, first);
  return 0;
}

/* All 2^k increments of the walk, in order: out[n * len + i]; *area (if area is not NULL)
 * the steps' H the same way. */
static double *walk_all_area(const csde_grid_map *g, int k, size_t batch, size_t per, uint64_t seed,
                             size_t first, int threads, double **area)
{
  const size_t N = (size_t)1 << k, len = batch * per;
  csde_tree tr;
  if (area) *area = NULL;
  if (tree_new(&tr, g, batch, per, k, threads, seed, first)) return NULL;
  double *out = xalloc(N * len, sizeof(double));
  double *H = area ? xalloc(N * len, sizeof(double)) : NULL;
  for (size_t n = 0; n < N; n++) csde_tree_increment(&tr, n, out + n * len, H ? H + n * len : NULL);
  csde_tree_free(&tr);
  if (area) *area = H;
  return out;
}

static double *walk_all(const csde_grid_map *g, int k, size_t batch, size_t per, uint64_t seed,
                        size_t first, int threads)
{
  return walk_all_area(g, k, batch, per, seed, first, threads, NULL);
}

/* ---- 1. maps against grids ---- */

static void test_maps(void)
{
  for (size_t k = 0; k < NKINDS; k++)
    for (int e = 0; e < 3; e++) {
      const double ts = ENDS[e][0], te = ENDS[e][1];
      csde_grid_map g;
      csde_err err;
      int st = csde_grid_map_make(KINDS[k], vp, ts, te, &g, &err);
      if (!strcmp(KINDS[k], "logsnr") && (ts == 0 || te == 0)) {
        ok_status(st, CSDE_EDOM, err.msg, "log-SNR is +inf at t = 0",
                  "map logsnr 0 -> 1 is refused (logsnr(0) = +inf)");
        continue;
      }
      if (!ok(st == 0, "map %s %g -> %g made%s%s", KINDS[k], ts, te, st ? ": " : "",
              st ? err.msg : ""))
        continue;
      ok(csde_grid_map_at(&g, 0.0) == ts && csde_grid_map_at(&g, 1.0) == te &&
             csde_grid_map_at(&g, -0.5) == ts && csde_grid_map_at(&g, 1.5) == te,
         "map %s %g -> %g: t(0) = t_start, t(1) = t_end exactly (and clamped outside [0, 1])",
         KINDS[k], ts, te);
      const size_t Ns[2] = {8, 64};
      for (int q = 0; q < 2; q++) {
        const size_t N = Ns[q];
        double *t = NULL;
        size_t n = 0;
        st = csde_grid_make(KINDS[k], vp, ts, te, N, &t, &n, &err);
        size_t bad = 0;
        for (size_t i = 0; st == 0 && i <= N; i++) {
          const double v = csde_grid_map_at(&g, (double)i / (double)N);
          if (!bits_equal(&v, &t[i], 1) && bad++ < 3)
            printf("# node %zu: map %.17g, grid %.17g\n", i, v, t[i]);
        }
        ok(st == 0 && n == N && bad == 0,
           "map %s %g -> %g: t(i/%zu) is node i of the %zu-step grid bitwise, i = 0..%zu "
           "(%zu differ)",
           KINDS[k], ts, te, N, N, N, bad);
        free(t);
      }
    }
  /* logsnr to t = 0 is refused as well */
  csde_grid_map g;
  csde_err err;
  int st = csde_grid_map_make("logsnr", vp, 1.0, 0.0, &g, &err);
  ok_status(st, CSDE_EDOM, err.msg, "log-SNR is +inf at t = 0 (t_end)",
            "map logsnr 1 -> 0 is refused");
}

/* ---- 2. nesting ---- */

static void test_nesting(void)
{
  const size_t batch = 3, per = 7, len = batch * per;
  const uint64_t seed = 0x5eed0001;
  for (size_t k = 0; k < NKINDS; k++)
    for (int e = 0; e < 3; e++) {
      const double ts = ENDS[e][0], te = ENDS[e][1];
      if (!strcmp(KINDS[k], "logsnr") && (ts == 0 || te == 0)) continue;
      csde_grid_map g;
      if (!ok(make_map(KINDS[k], ts, te, &g) == 0, "map %s %g -> %g", KINDS[k], ts, te)) continue;
      const double sT = sqrt(fabs(te - ts)), tol = 1e-12 * sT;
      double *d[8] = {NULL}, *ar[8] = {NULL}; /* d[k], ar[k]: the 2^k-step walk, k = 3..7 */
      int made = 1;
      for (int kk = 3; kk <= 7; kk++)
        made &= (d[kk] = walk_all_area(&g, kk, batch, per, seed, 0, 1, &ar[kk])) != NULL;
      if (!ok(made, "%s %g -> %g: walks k = 3..7 made", KINDS[k], ts, te)) {
        for (int kk = 3; kk <= 7; kk++) free(d[kk]), free(ar[kk]);
        continue;
      }
      /* W at node i of k = 3 (running sum) vs W at node 16 i of k = 7 */
      double worst = 0;
      double *W3 = xalloc(len, sizeof(double)), *W7 = xalloc(len, sizeof(double));
      for (size_t n7 = 0; n7 < 128; n7++) {
        for (size_t q = 0; q < len; q++) W7[q] += d[7][n7 * len + q];
        if ((n7 + 1) % 16 == 0) {
          const size_t n3 = (n7 + 1) / 16 - 1;
          for (size_t q = 0; q < len; q++) {
            W3[q] += d[3][n3 * len + q];
            worst = fmax(worst, fabs(W3[q] - W7[q]));
          }
        }
      }
      ok(worst <= tol,
         "%s %g -> %g: W at node i of the 8-step walk = W at node 16 i of the 128-step walk "
         "(worst |diff| / sqrt|T| = %.3g <= 1e-12)",
         KINDS[k], ts, te, worst / sT);
      /* pairs of the 2N-step increments sum to the N-step ones */
      double wp = 0;
      for (int kk = 3; kk < 7; kk++)
        for (size_t n = 0; n < ((size_t)1 << kk); n++)
          for (size_t q = 0; q < len; q++) {
            const double s2 = d[kk + 1][2 * n * len + q] + d[kk + 1][(2 * n + 1) * len + q];
            wp = fmax(wp, fabs(s2 - d[kk][n * len + q]));
          }
      ok(wp <= tol,
         "%s %g -> %g: increments of the 2N-step walk in pairs = the N-step increments, "
         "N = 8..64 (worst |diff| / sqrt|T| = %.3g <= 1e-12)",
         KINDS[k], ts, te, wp / sT);
      /* the areas add up over the two halves, in path time s = |t - t_start|:
       *   h H = h1 H1 + h2 H2 + (h2 W1 - h1 W2) / 2     (int (W_s - W_a) ds = h H + h W / 2) */
      {
        double wa = 0;
        for (int kk = 3; kk < 7; kk++) {
          const size_t N2 = (size_t)2 << kk;
          for (size_t n = 0; n < N2 / 2; n++) {
            const double sa = fabs(csde_grid_map_at(&g, (double)(2 * n) / (double)N2) - ts),
                         sm = fabs(csde_grid_map_at(&g, (double)(2 * n + 1) / (double)N2) - ts),
                         sb = fabs(csde_grid_map_at(&g, (double)(2 * n + 2) / (double)N2) - ts);
            const double h1 = sm - sa, h2 = sb - sm, h = sb - sa;
            for (size_t q = 0; q < len; q++) {
              const double W1 = d[kk + 1][2 * n * len + q], W2 = d[kk + 1][(2 * n + 1) * len + q];
              const double H1 = ar[kk + 1][2 * n * len + q], H2 = ar[kk + 1][(2 * n + 1) * len + q];
              const double want = (h1 * H1 + h2 * H2 + 0.5 * (h2 * W1 - h1 * W2)) / h;
              wa = fmax(wa, fabs(ar[kk][n * len + q] - want));
            }
          }
        }
        ok(wa <= tol,
           "%s %g -> %g: the area H of an N-step step = (h1 H1 + h2 H2 + (h2 W1 - h1 W2)/2) / h "
           "of its two 2N-step halves, N = 8..64 (worst |diff| / sqrt|T| = %.3g <= 1e-12)",
           KINDS[k], ts, te, wa / sT);
      }
      free(W3);
      free(W7);
      for (int kk = 3; kk <= 7; kk++) free(d[kk]), free(ar[kk]);
    }
}

/* ---- 3. query vs walk, ends, clamps, construction ---- */

static void test_query(void)
{
  const size_t batch = 2, per = 5, len = batch * per;
  const uint64_t seed = 0x5eed0002;
  const int k = 5;
  const size_t N = (size_t)1 << k;
  for (size_t kind = 0; kind < NKINDS; kind++)
    for (int e = 0; e < 3; e++) {
      const double ts = ENDS[e][0], te = ENDS[e][1];
      if (!strcmp(KINDS[kind], "logsnr") && (ts == 0 || te == 0)) continue;
      csde_grid_map g;
      csde_tree tr;
      if (!ok(make_map(KINDS[kind], ts, te, &g) == 0 &&
                  tree_new(&tr, &g, batch, per, k, 1, seed, 0) == 0,
              "%s %g -> %g: tree made", KINDS[kind], ts, te))
        continue;
      const double sT = sqrt(fabs(te - ts)), tol = 1e-12 * sT;
      double *W = xalloc(len, sizeof(double)), *Q = xalloc(len, sizeof(double)),
             *inc = xalloc(N * len, sizeof(double));
      double worst = 0;
      /* the walk with queries in between (at the node reached and the next one) */
      for (size_t n = 0; n < N; n++) {
        const double t0 = csde_grid_map_at(&g, (double)n / (double)N);
        csde_tree_at(&tr, t0, Q, NULL);
        for (size_t q = 0; q < len; q++) worst = fmax(worst, fabs(Q[q] - W[q]));
        csde_tree_increment(&tr, n, inc + n * len, NULL);
        for (size_t q = 0; q < len; q++) W[q] += inc[n * len + q];
        const double t1 = csde_grid_map_at(&g, (double)(n + 1) / (double)N);
        csde_tree_at(&tr, t1, Q, NULL);
        for (size_t q = 0; q < len; q++) worst = fmax(worst, fabs(Q[q] - W[q]));
      }
      ok(worst <= tol,
         "%s %g -> %g: csde_tree_at at the 32-step walk's nodes = the walk's running sum "
         "(worst |diff| / sqrt|T| = %.3g <= 1e-12)",
         KINDS[kind], ts, te, worst / sT);
      double *ref = walk_all(&g, k, batch, per, seed, 0, 1);
      ok(ref && bits_equal(ref, inc, N * len),
         "%s %g -> %g: queries between increments leave the walk alone (bitwise)", KINDS[kind], ts,
         te);
      free(ref);

      /* ends and clamps */
      double *root = xalloc(len, sizeof(double));
      csde_tree_at(&tr, ts, Q, NULL);
      int zero = 1;
      for (size_t q = 0; q < len; q++) zero &= Q[q] == 0;
      ok(zero, "%s %g -> %g: W(t_start) = 0 exactly", KINDS[kind], ts, te);
      const double before = ts + (ts - te) * 0.5; /* outside the span, on the side of t_start */
      csde_tree_at(&tr, before, Q, NULL);
      zero = 1;
      for (size_t q = 0; q < len; q++) zero &= Q[q] == 0;
      ok(zero, "%s %g -> %g: W(%g) = 0 (before t_start: clamped)", KINDS[kind], ts, te, before);
      csde_tree_at(&tr, te, root, NULL);
      double wr = 0;
      for (size_t q = 0; q < len; q++) wr = fmax(wr, fabs(root[q] - W[q]));
      ok(wr <= tol,
         "%s %g -> %g: W(t_end) = the sum of the walk's increments (|diff| / sqrt|T| %.3g)",
         KINDS[kind], ts, te, wr / sT);
      const double past = te + (te - ts) * 0.5;
      csde_tree_at(&tr, past, Q, NULL);
      ok(bits_equal(Q, root, len), "%s %g -> %g: W(%g) = W(t_end) (past t_end: clamped)",
         KINDS[kind], ts, te, past);

      free(root);
      free(W);
      free(Q);
      free(inc);
      csde_tree_free(&tr);
    }
}

/* tree.h's split of (W, H) of an interval of path length h at h1 from its left end, with
 * the node's normals z1, z2: the left child (W1, H1) and the right one (W2, H2). */
static void doc_split(double h1, double h, double W, double H, double z1, double z2, double *W1,
                      double *H1, double *W2, double *H2)
{
  const double h2 = h - h1;
  const double S11 = h1 * h2 / h * (1 - 3 * h1 * h2 / (h * h));
  const double S12 = -h1 * h1 * h1 * h2 / (2 * h * h * h);
  const double S22 = h1 / 12 * (1 - h1 * h1 * h1 / (h * h * h));
  const double L11 = sqrt(S11), L21 = S12 / L11, L22 = sqrt(S22 - L21 * L21);
  *W1 = h1 / h * W + 6 * h1 * h2 / (h * h) * H + L11 * z1;
  *H1 = (h1 / h) * (h1 / h) * H + L21 * z1 + L22 * z2;
  *W2 = W - *W1;
  *H2 = (h * H + 0.5 * (h1 * W - h * *W1) - h1 * *H1) / h2;
}

/* The (W, H) construction as tree.h states it, from the named streams (z1 of node (l, m):
 * stream 2^62 | l << 52 | m, z2: the same | 2^51, index (first + j) per + e), in path time
 * s(u) = |t(u) - t_start|: root W = sqrt(S) z1, H = sqrt(S/12) z2 (S = s(1)); the root split at
 * u = 1/2, then both halves at 1/4 and 3/4. Checked: W(t(1/2)), W(t(3/4)) by queries, and
 * the four (W, H) of the 4-step walk. */
static void test_construction(void)
{
  const size_t batch = 2, per = 5, len = batch * per, first = 3;
  const uint64_t seed = 0x5eed0007;
  for (size_t kind = 0; kind < NKINDS; kind++)
    for (int e = 0; e < 3; e++) {
      const double ts = ENDS[e][0], te = ENDS[e][1];
      if (!strcmp(KINDS[kind], "logsnr") && (ts == 0 || te == 0)) continue;
      csde_grid_map g;
      csde_tree tr;
      if (!ok(make_map(KINDS[kind], ts, te, &g) == 0 &&
                  tree_new(&tr, &g, batch, per, -1, 1, seed, first) == 0,
              "%s %g -> %g: query tree made (first = %zu)", KINDS[kind], ts, te, first))
        continue;
      const double S = fabs(te - ts), sT = sqrt(S);
      const double s1 = fabs(csde_grid_map_at(&g, 0.25) - ts),
                   s2 = fabs(csde_grid_map_at(&g, 0.5) - ts),
                   s3 = fabs(csde_grid_map_at(&g, 0.75) - ts);
      double *z = xalloc(8 * len, sizeof(double)); /* z1, z2 of (0,1), (1,1), (2,1), (2,3) */
      const uint64_t ids[4] = {(uint64_t)0 << 52 | 1, (uint64_t)1 << 52 | 1, (uint64_t)2 << 52 | 1,
                               (uint64_t)2 << 52 | 3};
      for (int i = 0; i < 4; i++) {
        csde_rng_key k1 = {seed, CSDE_STREAM_TREE | ids[i]},
                     k2 = {seed, CSDE_STREAM_TREE | ids[i] | (uint64_t)1 << 51};
        csde_rng_normal(k1, first * per, len, z + (2 * i) * len);
        csde_rng_normal(k2, first * per, len, z + (2 * i + 1) * len);
      }
      /* want[step][W or H][q] for the 4-step walk; Wh, W3: W(t(1/2)), W(t(3/4)); rootW */
      double *want = xalloc(8 * len, sizeof(double)), *Wh = xalloc(len, sizeof(double)),
             *W3 = xalloc(len, sizeof(double)), *rootW = xalloc(len, sizeof(double));
      for (size_t q = 0; q < len; q++) {
        const double W = sT * z[q], H = sqrt(S / 12) * z[len + q];
        double WL, HL, WR, HR, a[8];
        doc_split(s2, S, W, H, z[2 * len + q], z[3 * len + q], &WL, &HL, &WR, &HR);
        doc_split(s1, s2, WL, HL, z[4 * len + q], z[5 * len + q], &a[0], &a[1], &a[2], &a[3]);
        doc_split(s3 - s2, S - s2, WR, HR, z[6 * len + q], z[7 * len + q], &a[4], &a[5], &a[6],
                  &a[7]);
        for (int i = 0; i < 8; i++) want[i * len + q] = a[i];
        rootW[q] = W;
        Wh[q] = WL;
        W3[q] = WL + a[4];
      }
      double *Q = xalloc(len, sizeof(double)), wr = 0, wh = 0, w3 = 0, ww = 0;
      csde_tree_at(&tr, te, Q, NULL);
      for (size_t q = 0; q < len; q++) wr = fmax(wr, fabs(Q[q] - rootW[q]));
      csde_tree_at(&tr, csde_grid_map_at(&g, 0.5), Q, NULL);
      for (size_t q = 0; q < len; q++) wh = fmax(wh, fabs(Q[q] - Wh[q]));
      csde_tree_at(&tr, csde_grid_map_at(&g, 0.75), Q, NULL);
      for (size_t q = 0; q < len; q++) w3 = fmax(w3, fabs(Q[q] - W3[q]));
      csde_tree_free(&tr);
      if (!tree_new(&tr, &g, batch, per, 2, 1, seed, first)) {
        double *x = xalloc(len, sizeof(double)), *y = xalloc(len, sizeof(double));
        for (size_t n = 0; n < 4; n++) {
          csde_tree_increment(&tr, n, x, y);
          for (size_t q = 0; q < len; q++)
            ww = fmax(ww,
                      fmax(fabs(x[q] - want[(2 * n) * len + q]),
                           fabs(y[q] - want[(2 * n + 1) * len + q])));
        }
        free(x);
        free(y);
        csde_tree_free(&tr);
      } else
        ww = INFINITY;
      ok(wr <= 1e-14 * sT && wh <= 1e-12 * sT && w3 <= 1e-12 * sT && ww <= 1e-12 * sT,
         "%s %g -> %g: root W = sqrt(S) z1, W(t(1/2)), W(t(3/4)) and the 4-step walk's (W, H) "
         "by tree.h's split formulas (|diff| / sqrt|T| %.2g, %.2g, %.2g, %.2g)",
         KINDS[kind], ts, te, wr / sT, wh / sT, w3 / sT, ww / sT);
      free(z);
      free(want);
      free(Wh);
      free(W3);
      free(rootW);
      free(Q);
    }
}

/* W(t) as tree.h's (W, H) query states it, recomputed here: bisect [0, 1] in u down to level
 * CSDE_TREE_DEPTH, splitting the (W, H) of the interval holding s = |t - t_start| at each
 * level (doc_split, the node's streams), W of the left children passed on the way summed; at
 * a node W is that sum; inside the last interval E[W(s) - W(s_a) | W, H] = r W + 6 r (1 - r) H,
 * r = (s - s_a) / h (the same conditional mean as the split's W1). */
static void doc_query(const csde_grid_map *g, uint64_t seed, size_t first, size_t per, size_t len,
                      double t, double *out)
{
  const double ts = csde_grid_map_at(g, 0.0), te = csde_grid_map_at(g, 1.0);
  const double S = fabs(te - ts), s = (te > ts ? 1.0 : -1.0) * (t - ts);
  double *W = xalloc(len, sizeof(double)), *H = xalloc(len, sizeof(double)),
         *z1 = xalloc(len, sizeof(double)), *z2 = xalloc(len, sizeof(double));
  memset(out, 0, len * sizeof(double));
  csde_rng_key k1 = {seed, CSDE_STREAM_TREE | 1},
               k2 = {seed, CSDE_STREAM_TREE | 1 | (uint64_t)1 << 51};
  csde_rng_normal(k1, first * per, len, z1);
  csde_rng_normal(k2, first * per, len, z2);
  for (size_t q = 0; q < len; q++) W[q] = sqrt(S) * z1[q], H[q] = sqrt(S / 12) * z2[q];
  int done = !(s > 0);
  if (!done && !(s < S)) {
    memcpy(out, W, len * sizeof(double));
    done = 1;
  }
  double ua = 0, ub = 1, sa = 0, sb = S;
  for (int l = 1; !done && l <= CSDE_TREE_DEPTH; l++) {
    const double um = 0.5 * (ua + ub), sm = fabs(csde_grid_map_at(g, um) - ts);
    const uint64_t id = CSDE_STREAM_TREE | (uint64_t)l << 52 | (uint64_t)ldexp(um, l);
    k1.stream = id;
    k2.stream = id | (uint64_t)1 << 51;
    csde_rng_normal(k1, first * per, len, z1);
    csde_rng_normal(k2, first * per, len, z2);
    const int left = s < sm;
    for (size_t q = 0; q < len; q++) {
      double WL, HL, WR, HR;
      doc_split(sm - sa, sb - sa, W[q], H[q], z1[q], z2[q], &WL, &HL, &WR, &HR);
      if (left)
        W[q] = WL, H[q] = HL;
      else
        out[q] += WL, W[q] = WR, H[q] = HR;
    }
    if (left)
      ub = um, sb = sm;
    else
      ua = um, sa = sm;
    if (s == sm) done = 1;
  }
  if (!done) {
    const double r = (s - sa) / (sb - sa);
    for (size_t q = 0; q < len; q++) out[q] += r * W[q] + 6 * r * (1 - r) * H[q];
  }
  free(W);
  free(H);
  free(z1);
  free(z2);
}

/* csde_tree_at against doc_query at non-dyadic times (inside a depth-40 interval: the
 * conditional mean), at nodes, and between two neighbouring depth-40 nodes. */
static void test_query_construction(void)
{
  const size_t batch = 2, per = 3, len = batch * per, first = 5;
  const uint64_t seed = 0x5eed0008;
  const struct {
    const char *spec;
    double ts, te;
  } maps[] = {{"karras", 1.0, 1e-3}, {"quadratic", 1e-3, 1.0}, {"uniform", 0.0, 1.0}};
  for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
    csde_grid_map g;
    csde_tree tr;
    if (!ok(make_map(maps[i].spec, maps[i].ts, maps[i].te, &g) == 0 &&
                tree_new(&tr, &g, batch, per, -1, 1, seed, first) == 0,
            "%s: query tree", maps[i].spec))
      continue;
    const double sT = sqrt(fabs(maps[i].te - maps[i].ts));
    const uint64_t m = 0x5a5a5a5a5bULL; /* odd, < 2^40 */
    const double ta = csde_grid_map_at(&g, ldexp((double)m, -CSDE_TREE_DEPTH)),
                 tb = csde_grid_map_at(&g, ldexp((double)(m + 1), -CSDE_TREE_DEPTH));
    const double tq[6] = {csde_grid_map_at(&g, 0.3),
                          csde_grid_map_at(&g, 0.5),
                          0.123456789,
                          ta,
                          0.75 * ta + 0.25 * tb,
                          0.5 * (ta + tb)};
    double *a = xalloc(len, sizeof(double)), *b = xalloc(len, sizeof(double)), worst = 0, dev = 0;
    for (int j = 0; j < 6; j++) {
      csde_tree_at(&tr, tq[j], a, NULL);
      doc_query(&g, seed, first, per, len, tq[j], b);
      for (size_t q = 0; q < len; q++) worst = fmax(worst, fabs(a[q] - b[q]));
    }
    /* how far the conditional mean is from the straight line between the two nodes */
    double *A = xalloc(len, sizeof(double)), *B = xalloc(len, sizeof(double));
    csde_tree_at(&tr, ta, A, NULL);
    csde_tree_at(&tr, tb, B, NULL);
    csde_tree_at(&tr, tq[5], a, NULL);
    for (size_t q = 0; q < len; q++) dev = fmax(dev, fabs(a[q] - 0.5 * (A[q] + B[q])));
    ok(ta != tb && worst <= 1e-12 * sT,
       "%s %g -> %g: csde_tree_at = tree.h's (W, H) query recomputed (bisection to depth 40 and "
       "the conditional mean r W + 6 r (1 - r) H inside), 6 times (worst |diff| / sqrt|T| %.2g; "
       "the mean is %.2g off the chord of its depth-40 interval)",
       maps[i].spec, maps[i].ts, maps[i].te, worst / sT, dev);
    free(a);
    free(b);
    free(A);
    free(B);
    csde_tree_free(&tr);
  }
}

/* The walk's extremes: 2^0 steps (the root alone), 2^30 (the deepest: its first two
 * increments push 30 pending nodes, k + 2 buffers in use), 2^31 refused. */
static void test_depth(void)
{
  const size_t batch = 2, per = 3, len = batch * per;
  const uint64_t seed = 0x5eed0003;
  csde_grid_map g;
  if (!ok(make_map("uniform", 1.0, 1e-3, &g) == 0, "map uniform 1 -> 1e-3")) return;
  double *x = xalloc(len, sizeof(double)), *a = xalloc(len, sizeof(double)),
         *b = xalloc(len, sizeof(double));
  csde_tree tr;
  if (!tree_new(&tr, &g, batch, per, 0, 1, seed, 0)) {
    csde_tree_increment(&tr, 0, x, NULL);
    csde_tree_at(&tr, 1e-3, a, NULL);
    ok(bits_equal(x, a, len), "k = 0: the one increment is W(t_end), the root (bitwise)");
    csde_tree_free(&tr);
  }
  if (ok(tree_new(&tr, &g, batch, per, CSDE_TREE_MAXK, 1, seed, 0) == 0, "k = %d accepted",
         CSDE_TREE_MAXK)) {
    const double u1 = ldexp(1.0, -CSDE_TREE_MAXK), u2 = ldexp(2.0, -CSDE_TREE_MAXK);
    const double t1 = csde_grid_map_at(&g, u1), t2 = csde_grid_map_at(&g, u2);
    double w0 = 0, w1 = 0;
    csde_tree_increment(&tr, 0, x, NULL);
    csde_tree_at(&tr, t1, a, NULL);
    for (size_t i = 0; i < len; i++) w0 = fmax(w0, fabs(x[i] - a[i]));
    csde_tree_increment(&tr, 1, x, NULL);
    csde_tree_at(&tr, t2, b, NULL);
    for (size_t i = 0; i < len; i++) w1 = fmax(w1, fabs(x[i] - (b[i] - a[i])));
    ok(t1 != 1.0 && t2 != t1 && w0 <= 1e-15 && w1 <= 1e-15,
       "k = %d: increments 0 and 1 = W(t(2^-30)) - 0 and W(t(2^-29)) - W(t(2^-30)) from "
       "queries (|diff| %.2g, %.2g)",
       CSDE_TREE_MAXK, w0, w1);
    csde_tree_free(&tr);
  }
  csde_err err;
  int st = csde_tree_init(&tr, csde_grid_map_at, &g, batch, per, CSDE_TREE_MAXK + 1, 1, &err);
  ok_status(st, CSDE_EINVAL, err.msg, "too deep", "k = 31 refused");
  if (!st) csde_tree_free(&tr);
  free(x);
  free(a);
  free(b);
}

/* ---- 4. statistics ---- */

/* Increments x[s][i], s = 0..S-1 steps, i = 0..n-1 independent entries (batch x per), of
 * variances h[s] (|t_{s+1} - t_s| for W, |h|/12 for the areas H). Under the hypothesis
 * (independent N(0, h_s)):
 *   mean:      the sample mean has sd sqrt(h/n): |mean| <= 5 sqrt(h/n);
 *   variance:  v = (1/n) sum x^2 (the mean is known, 0) has E v = h, Var v = 2 h^2 / n:
 *              |v/h - 1| <= 5 sqrt(2/n);
 *   correlation of two steps: r = sum x y / sqrt(sum x^2 sum y^2) has sd 1/sqrt(n) to first
 *              order (x y has variance h_s h_t, the denominators converge): |r| <= 5/sqrt(n);
 *   correlation of neighbouring entries (2i, 2i+1) within a step: n/2 pairs, |r| <= 5/sqrt(n/2).
 * Each check reports the worst over the steps (or pairs of steps) in standard errors. */
static void check_stats(const char *what, const double *x, const double *h, const char *vname,
                        size_t S, size_t n)
{
  double zmean = 0, zvar = 0, zcor = 0, zent = 0, worst_v = 0;
  size_t smean = 0, svar = 0, c1 = 0, c2 = 0, sent = 0;
  double *ss = xalloc(S, sizeof(double));
  for (size_t s = 0; s < S; s++) {
    const double *xs = x + s * n;
    double sum = 0, sq = 0, cross = 0, e0 = 0, e1 = 0;
    for (size_t i = 0; i < n; i++) sum += xs[i], sq += xs[i] * xs[i];
    for (size_t i = 0; i + 1 < n; i += 2)
      cross += xs[i] * xs[i + 1], e0 += xs[i] * xs[i], e1 += xs[i + 1] * xs[i + 1];
    ss[s] = sq;
    const double mean = sum / (double)n, v = sq / (double)n;
    const double zm = fabs(mean) / sqrt(h[s] / (double)n);
    const double zv = fabs(v / h[s] - 1) / sqrt(2.0 / (double)n);
    const double ze = fabs(cross / sqrt(e0 * e1)) * sqrt((double)(n / 2));
    if (zm > zmean) zmean = zm, smean = s;
    if (zv > zvar) zvar = zv, svar = s, worst_v = v / h[s];
    if (ze > zent) zent = ze, sent = s;
  }
  for (size_t s = 0; s < S; s++)
    for (size_t t = s + 1; t < S; t++) {
      double c = 0;
      for (size_t i = 0; i < n; i++) c += x[s * n + i] * x[t * n + i];
      const double zc = fabs(c / sqrt(ss[s] * ss[t])) * sqrt((double)n);
      if (zc > zcor) zcor = zc, c1 = s, c2 = t;
    }
  free(ss);
  ok(zmean <= 5, "%s: |mean| <= 5 sqrt(v/n), v = %s, n = %zu, every step (worst %.2f se, step %zu)",
     what, vname, n, zmean, smean);
  ok(zvar <= 5,
     "%s: |var/v - 1| <= 5 sqrt(2/n), every step (worst %.2f se, step %zu: var/v = %.4f)", what,
     zvar, svar, worst_v);
  ok(zcor <= 5,
     "%s: |corr| of two steps <= 5/sqrt(n), all %zu pairs (worst %.2f se, steps %zu, %zu)", what,
     S * (S - 1) / 2, zcor, c1, c2);
  ok(zent <= 5,
     "%s: |corr| of neighbouring entries <= 5/sqrt(n/2), every step (worst %.2f se, "
     "step %zu)",
     what, zent, sent);
}

/* Increments W(t_{s+1}) - W(t_s) from csde_tree_at at the given S + 1 times. */
static void query_increments(csde_tree *tr, const double *t, size_t S, size_t len, double *x)
{
  double *a = xalloc(len, sizeof(double)), *b = xalloc(len, sizeof(double));
  csde_tree_at(tr, t[0], a, NULL);
  for (size_t s = 0; s < S; s++) {
    csde_tree_at(tr, t[s + 1], b, NULL);
    for (size_t i = 0; i < len; i++) x[s * len + i] = b[i] - a[i];
    double *sw = a;
    a = b, b = sw;
  }
  free(a);
  free(b);
}

static void test_stats(void)
{
  const size_t batch = quick ? 4 : 8, per = quick ? 512 : 4096, n = batch * per;
  const uint64_t seed = 0x5eed0004;
  /* walks of 16 steps on two maps, both directions */
  const struct {
    const char *spec;
    double ts, te;
  } walks[] = {{"karras", 1.0, 1e-3}, {"quadratic", 1e-3, 1.0}, {"logsnr", 1.0, 1e-3}};
  for (size_t w = 0; w < sizeof walks / sizeof *walks; w++) {
    csde_grid_map g;
    if (!ok(make_map(walks[w].spec, walks[w].ts, walks[w].te, &g) == 0, "map %s", walks[w].spec))
      continue;
    double *ar = NULL, *x = walk_all_area(&g, 4, batch, per, seed + w, 0, 2, &ar), h[16];
    if (!ok(x != NULL, "walk made")) continue;
    for (size_t s = 0; s < 16; s++)
      h[s] =
          fabs(csde_grid_map_at(&g, (double)(s + 1) / 16) - csde_grid_map_at(&g, (double)s / 16));
    char what[160];
    snprintf(what, sizeof what, "walk %s %g -> %g, 16 steps (h %.2g..%.2g)", walks[w].spec,
             walks[w].ts, walks[w].te, h[0], h[15]);
    check_stats(what, x, h, "|h|", 16, n);
    if (ar) { /* (W, H): H of each step ~ N(0, h/12), independent of every W and H */
      double h12[16], zwh = 0;
      size_t c1 = 0, c2 = 0;
      for (size_t s = 0; s < 16; s++) h12[s] = h[s] / 12;
      snprintf(what, sizeof what, "walk %s %g -> %g, the areas H (variance h/12)", walks[w].spec,
               walks[w].ts, walks[w].te);
      check_stats(what, ar, h12, "h/12", 16, n);
      for (size_t s = 0; s < 16; s++) /* corr(W_s, H_t), all s, t: 5/sqrt(n) as above */
        for (size_t t = 0; t < 16; t++) {
          double c = 0, a2 = 0, b2 = 0;
          for (size_t i = 0; i < n; i++) {
            const double u = x[s * n + i], v = ar[t * n + i];
            c += u * v, a2 += u * u, b2 += v * v;
          }
          const double zc = fabs(c / sqrt(a2 * b2)) * sqrt((double)n);
          if (zc > zwh) zwh = zc, c1 = s, c2 = t;
        }
      ok(zwh <= 5,
         "walk %s %g -> %g: |corr(W of step s, H of step t)| <= 5/sqrt(n), all 256 "
         "(s, t) (worst %.2f se, s = %zu, t = %zu)",
         walks[w].spec, walks[w].ts, walks[w].te, zwh, c1, c2);
      free(ar);
    }
    free(x);
  }

  /* queries at non-dyadic times: 10 uniform steps on the uniform map (u = i/10) */
  {
    csde_grid_map g;
    csde_tree tr;
    if (ok(make_map("uniform", 1.0, 1e-3, &g) == 0 &&
               tree_new(&tr, &g, batch, per, -1, 2, seed, 0) == 0,
           "query tree on uniform 1 -> 1e-3")) {
      double t[11], h[10], *x = xalloc(10 * n, sizeof(double));
      for (int i = 0; i <= 10; i++) t[i] = csde_grid_map_at(&g, i / 10.0);
      for (int s = 0; s < 10; s++) h[s] = fabs(t[s + 1] - t[s]);
      query_increments(&tr, t, 10, n, x);
      check_stats("queries, uniform map 1 -> 1e-3 at u = i/10", x, h, "|h|", 10, n);
      free(x);
      csde_tree_free(&tr);
    }
  }
  /* queries at random times (sorted uniforms, fixed stream) on the karras map, 1e-3 -> 1 */
  {
    enum { S = 12 };
    csde_grid_map g;
    csde_tree tr;
    if (ok(make_map("karras", 1e-3, 1.0, &g) == 0 &&
               tree_new(&tr, &g, batch, per, -1, 1, seed + 1, 0) == 0,
           "query tree on karras 1e-3 -> 1")) {
      double t[S + 1], h[S], u[S - 1], *x = xalloc(S * n, sizeof(double));
      csde_rng_key key = {12345, 99};
      csde_rng_uniform(key, 0, S - 1, u);
      for (int i = 1; i < S - 1; i++) /* insertion sort */
        for (int j = i; j > 0 && u[j] < u[j - 1]; j--) {
          const double s = u[j];
          u[j] = u[j - 1], u[j - 1] = s;
        }
      t[0] = 1e-3;
      t[S] = 1.0;
      for (int i = 0; i < S - 1; i++) t[i + 1] = 1e-3 + u[i] * (1.0 - 1e-3); /* uniform in t */
      double hmin = 1;
      for (int s = 0; s < S; s++) h[s] = fabs(t[s + 1] - t[s]), hmin = fmin(hmin, h[s]);
      query_increments(&tr, t, S, n, x);
      char what[160];
      snprintf(what, sizeof what, "queries, karras map 1e-3 -> 1 at %d random times (min h %.3g)",
               S - 1, hmin);
      check_stats(what, x, h, "|h|", S, n);
      free(x);
      csde_tree_free(&tr);
    }
  }
}

/* ---- 5. determinism ---- */

static void test_determinism(void)
{
  /* 4 x 6 chunks of <= 512 entries: enough tasks for the tree to go parallel (tree.c) */
  const size_t batch = 4, per = 2600, len = batch * per;
  const uint64_t seed = 0x5eed0005;
  const int k = 4;
  const size_t N = 16;
  csde_grid_map g;
  if (!ok(make_map("karras", 1.0, 1e-3, &g) == 0, "map karras")) return;
  double *a1 = NULL, *a2 = NULL, *w1 = walk_all_area(&g, k, batch, per, seed, 0, 1, &a1),
         *w2 = walk_all_area(&g, k, batch, per, seed, 0, 2, &a2);
  ok(w1 && w2 && bits_equal(w1, w2, N * len) && bits_equal(a1, a2, N * len),
     "walk: threads 1 and 2 bitwise equal (W and H)");
  free(a2);
  const double tq[3] = {0.77, 0.123456789, 1e-3 + 1e-9};
  csde_tree t1, t2;
  if (!tree_new(&t1, &g, batch, per, -1, 1, seed, 0) &&
      !tree_new(&t2, &g, batch, per, -1, 2, seed, 0)) {
    double *a = xalloc(len, sizeof(double)), *b = xalloc(len, sizeof(double));
    int same = 1;
    for (int i = 0; i < 3; i++) {
      csde_tree_at(&t1, tq[i], a, NULL);
      csde_tree_at(&t2, tq[i], b, NULL);
      same &= bits_equal(a, b, len);
    }
    ok(same, "query: threads 1 and 2 bitwise equal at t = 0.77, 0.123456789, 1e-3 + 1e-9");
    free(a);
    free(b);
    csde_tree_free(&t1);
    csde_tree_free(&t2);
  }
  /* sample j alone (first = j) = row j of the batch, walk and query */
  int alone = 1, qalone = 1;
  for (size_t j = 0; j < batch; j++) {
    double *wj = walk_all(&g, k, 1, per, seed, j, 1);
    for (size_t n = 0; wj && n < N; n++)
      alone &= bits_equal(wj + n * per, w1 + n * len + j * per, per);
    free(wj);
    csde_tree ta, tb;
    if (tree_new(&ta, &g, 1, per, -1, 1, seed, j) ||
        tree_new(&tb, &g, batch, per, -1, 1, seed, 0)) {
      qalone = 0;
      continue;
    }
    double *a = xalloc(per, sizeof(double)), *b = xalloc(len, sizeof(double));
    csde_tree_at(&ta, 0.31, a, NULL);
    csde_tree_at(&tb, 0.31, b, NULL);
    qalone &= bits_equal(a, b + j * per, per);
    free(a);
    free(b);
    csde_tree_free(&ta);
    csde_tree_free(&tb);
  }
  ok(alone, "walk: sample j alone (first = j) = sample j of a batch of %zu, bitwise", batch);
  ok(qalone, "query: sample j alone (first = j) = sample j of a batch of %zu, bitwise", batch);
  /* another seed, another first: different values everywhere */
  double *ws = walk_all(&g, k, batch, per, seed + 1, 0, 1),
         *wf = walk_all(&g, k, batch, per, seed, 1, 1);
  size_t eq_seed = 0;
  for (size_t i = 0; ws && i < N * len; i++) eq_seed += ws[i] == w1[i];
  /* wf's sample j is w1's sample j + 1 */
  int shifted = 1;
  for (size_t n = 0; ws && wf && n < N; n++)
    shifted &= bits_equal(wf + n * len, w1 + n * len + per, (batch - 1) * per);
  ok(ws && eq_seed == 0, "another seed: every one of %zu increments differs (%zu equal)", N * len,
     eq_seed);
  ok(wf && shifted, "first = 1: the batch is the first = 0 batch shifted by one sample");
  free(ws);
  free(wf);
  /* out of order: the same values as in order */
  csde_tree tr;
  if (!tree_new(&tr, &g, batch, per, k, 1, seed, 0)) {
    double *x = xalloc(len, sizeof(double)), *y = xalloc(len, sizeof(double));
    const size_t order[] = {5, 2, 3, 15, 0, 9, 9, 8, 15, 14};
    int same = 1;
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
      csde_tree_increment(&tr, order[i], x, y);
      if (!bits_equal(x, w1 + order[i] * len, len) || !bits_equal(y, a1 + order[i] * len, len)) {
        same = 0;
        printf("# out of order: increment %zu (call %zu) differs\n", order[i], i);
      }
    }
    ok(same,
       "out of order (5, 2, 3, 15, 0, 9, 9, 8, 15, 14): the in-order values, bitwise (W "
       "and H)");
    free(y);
    /* set_seed restarts the walk: increment 8 under another seed after walking to 7 */
    for (size_t n = 0; n < 8; n++) csde_tree_increment(&tr, n, x, NULL);
    csde_tree_set_seed(&tr, seed + 1, 0);
    double *ws2 = walk_all(&g, k, batch, per, seed + 1, 0, 1);
    csde_tree_increment(&tr, 8, x, NULL);
    ok(ws2 && bits_equal(x, ws2 + 8 * len, len),
       "csde_tree_set_seed mid-walk: the next increment is the new seed's, bitwise");
    free(ws2);
    free(x);
    csde_tree_free(&tr);
  }
  free(w1);
  free(w2);
  free(a1);
}

/* ---- 6. csde_noise: coloured increments ---- */

/* dW[s][j][a][p], steps s of variance scales h[s] (v: |h| for dW, |h|/12 for dH): the
 * per-frame sample covariance
 * S_ab = (1/n) sum_{j,p} dW_a dW_b, n = batch * D. With dW ~ N(0, h C) per pixel,
 * E S_ab = h C_ab and Var(dW_a dW_b) = h^2 (C_aa C_bb + C_ab^2), so
 * |S_ab - h C_ab| <= 5 h sqrt((C_aa C_bb + C_ab^2) / n). Across neighbouring steps s, s+1
 * (independent): E = 0, Var = h_s h_{s+1} C_aa C_bb, |S| <= 5 sqrt(h_s h_{s+1} C_aa C_bb / n). */
static void check_cov(const char *what, const double *dW, const double *h, size_t S, size_t batch,
                      size_t tau, size_t D, const double *C)
{
  const size_t n = batch * D, len = batch * tau * D;
  double zw = 0, zx = 0, worst_ratio = 0;
  size_t ws = 0, wa = 0, wb = 0;
  for (size_t s = 0; s < S; s++)
    for (size_t a = 0; a < tau; a++)
      for (size_t b = a; b < tau; b++) {
        double c = 0, cx = 0;
        for (size_t j = 0; j < batch; j++)
          for (size_t p = 0; p < D; p++) {
            const double xa = dW[s * len + (j * tau + a) * D + p];
            c += xa * dW[s * len + (j * tau + b) * D + p];
            if (s + 1 < S) cx += xa * dW[(s + 1) * len + (j * tau + b) * D + p];
          }
        c /= (double)n;
        cx /= (double)n;
        const double Cab = C[a * tau + b], Caa = C[a * tau + a], Cbb = C[b * tau + b];
        const double z = fabs(c - h[s] * Cab) / (h[s] * sqrt((Caa * Cbb + Cab * Cab) / (double)n));
        if (z > zw) zw = z, ws = s, wa = a, wb = b, worst_ratio = c / (h[s] * Cab);
        if (s + 1 < S) zx = fmax(zx, fabs(cx) / sqrt(h[s] * h[s + 1] * Caa * Cbb / (double)n));
      }
  ok(zw <= 5,
     "%s: sample covariance of frames = v C within 5 se, n = %zu, every step and "
     "frame pair (worst %.2f se: step %zu, frames %zu,%zu, S/(v C) = %.4f)",
     what, n, zw, ws, wa, wb, worst_ratio);
  ok(zx <= 5, "%s: covariance across neighbouring steps = 0 within 5 se (worst %.2f se)", what, zx);
}

/* Two coloured arrays X, Y of S steps (variance scales hx, hy), independent under the
 * hypothesis: (1/n) sum_{j,p} X_a Y_b has mean 0 and variance hx hy C_aa C_bb / n, so
 * |S_ab| <= 5 sqrt(hx hy C_aa C_bb / n) for every step and frame pair (a, b). */
static void check_cross(const char *what, const double *X, const double *Y, const double *hx,
                        const double *hy, size_t S, size_t batch, size_t tau, size_t D,
                        const double *C)
{
  const size_t n = batch * D, len = batch * tau * D;
  double zw = 0;
  for (size_t s = 0; s < S; s++)
    for (size_t a = 0; a < tau; a++)
      for (size_t b = 0; b < tau; b++) {
        double c = 0;
        for (size_t j = 0; j < batch; j++)
          for (size_t p = 0; p < D; p++)
            c += X[s * len + (j * tau + a) * D + p] * Y[s * len + (j * tau + b) * D + p];
        c /= (double)n;
        zw = fmax(zw, fabs(c) / sqrt(hx[s] * hy[s] * C[a * tau + a] * C[b * tau + b] / (double)n));
      }
  ok(zw <= 5,
     "%s: cross-covariance of every frame pair = 0 within 5 se, every step (worst %.2f se)", what,
     zw);
}

static void test_noise(void)
{
  const size_t tau = 4, batch = quick ? 2 : 8, D = quick ? 256 : 2048;
  const uint64_t seed = 0x5eed0006;
  csde_cov *C = NULL;
  csde_cov_ws *ws = NULL;
  csde_err err;
  int st = csde_cov_alloc(&C, "ar1:rho=0.9", tau, NULL, &err);
  if (!st) st = csde_cov_ws_alloc(&ws, C, D, 1, &err);
  if (!ok(st == 0, "ar1:rho=0.9, tau 4: operator and workspace%s%s", st ? ": " : "",
          st ? err.msg : "")) {
    csde_cov_free(C);
    return;
  }
  double Cm[16];
  csde_cov_matrix(C, Cm);
  double cerr = 0;
  for (size_t a = 0; a < tau; a++)
    for (size_t b = 0; b < tau; b++)
      cerr = fmax(cerr, fabs(Cm[a * tau + b] - pow(0.9, fabs((double)a - (double)b))));
  ok(cerr <= 1e-15, "C_ab = 0.9^|a-b| (|diff| %.2g)", cerr);
  const size_t nd = csde_cov_noise_dim(C), len = batch * tau * D;
  ok(nd == tau, "noise_dim = tau = %zu (dense below %d frames)", nd, CSDE_COV_AUTO_TAU);

  csde_grid_map g;
  if (!ok(make_map("karras", 1.0, 1e-3, &g) == 0, "map karras 1 -> 1e-3")) goto out;
  /* walk: the 2^3-step karras grid */
  {
    const int k = 3;
    const size_t S = 8;
    double *t = NULL, h[8];
    size_t nsteps = 0;
    st = csde_grid_make("karras", vp, 1.0, 1e-3, S, &t, &nsteps, &err);
    csde_noise nz, nq;
    int st1 = st
        ? st
        : csde_noise_init(&nz, CSDE_NOISE_PATH, C, ws, batch, D, csde_grid_map_at, &g, k, 1, &err);
    if (!ok(st1 == 0, "path noise, walk_k = 3: made%s%s", st1 ? ": " : "", st1 ? err.msg : "")) {
      free(t);
      goto out;
    }
    int st2 =
        csde_noise_init(&nq, CSDE_NOISE_PATH, C, ws, batch, D, csde_grid_map_at, &g, -1, 1, &err);
    csde_noise_set_seed(&nz, seed, 0);
    if (!st2) csde_noise_set_seed(&nq, seed, 0);
    double *dW = xalloc(S * len, sizeof(double)), *dq = xalloc(len, sizeof(double));
    double qworst = 0, scale = 0;
    int sts = 0;
    for (size_t s = 0; s < S; s++) {
      h[s] = fabs(t[s + 1] - t[s]);
      sts |= csde_noise_increment(&nz, s, t[s], t[s + 1], dW + s * len, &err);
      if (!st2) {
        sts |= csde_noise_increment(&nq, s, t[s], t[s + 1], dq, &err);
        for (size_t i = 0; i < len; i++) qworst = fmax(qworst, fabs(dq[i] - dW[s * len + i]));
      }
    }
    scale = sqrt(fabs(t[S] - t[0]));
    ok(sts == 0, "path noise: %zu walk increments drawn", S);
    check_cov("path noise, walk of the 8-step karras grid (v = |h|)", dW, h, S, batch, tau, D, Cm);
    ok(st2 == 0 && qworst <= 1e-12 * scale,
       "path noise: queries (walk_k = -1) on the walk's grid give the walk's dW "
       "(worst |diff| / sqrt|T| %.3g <= 1e-12)",
       qworst / scale);

    /* with the areas: dW as without, dH = V' H ~ N(0, |h|/12 C), independent of dW */
    csde_noise na;
    double *dW2 = xalloc(S * len, sizeof(double)), *dH = xalloc(S * len, sizeof(double)), h12[8];
    int sta =
        csde_noise_init(&na, CSDE_NOISE_PATH, C, ws, batch, D, csde_grid_map_at, &g, k, 1, &err);
    if (ok(sta == 0, "path noise with areas, walk_k = 3: made")) {
      csde_noise_set_seed(&na, seed, 0);
      for (size_t s = 0; s < S; s++) {
        h12[s] = h[s] / 12;
        sta |= csde_noise_increment_area(&na, s, t[s], t[s + 1], dW2 + s * len, dH + s * len, &err);
      }
      ok(sta == 0 && bits_equal(dW2, dW, S * len),
         "path noise: csde_noise_increment_area's dW = csde_noise_increment's, bitwise");
      check_cov("path noise, the areas dH = V' H of the walk (v = |h|/12)", dH, h12, S, batch, tau,
                D, Cm);
      check_cross("path noise, dW and dH of one step", dW2, dH, h, h12, S, batch, tau, D, Cm);
      csde_noise_free(&na);
    }
    if (!st2) { /* queries: H = (J1 - J0 - h W0) / h - (W1 - W0) / 2 from int W at the ends */
      double *dHq = xalloc(len, sizeof(double)), hw = 0, ww = 0;
      csde_noise_set_seed(&nq, seed, 0);
      int stq = 0;
      for (size_t s = 0; s < S; s++) {
        stq |= csde_noise_increment_area(&nq, s, t[s], t[s + 1], dq, dHq, &err);
        for (size_t i = 0; i < len; i++) {
          ww = fmax(ww, fabs(dq[i] - dW[s * len + i]));
          hw = fmax(hw, fabs(dHq[i] - dH[s * len + i]));
        }
      }
      ok(stq == 0 && ww <= 1e-12 * scale && hw <= 1e-9 * scale,
         "path noise, queries on the walk's grid: dW and dH = the walk's (worst |diff| / "
         "sqrt|T| %.3g, %.3g; H from differences of int W: <= 1e-9)",
         ww / scale, hw / scale);
      free(dHq);
    }

    /* the colouring: dW = V' (W(t1) - W(t0)), dH = V' H, with sample j's white entries at
     * (j nd + row) D + pixel, i.e. the tree of per = nd D */
    csde_tree tr;
    if (!tree_new(&tr, &g, batch, nd * D, k, 1, seed, 0)) {
      double *white = xalloc(batch * nd * D, sizeof(double)), *col = xalloc(len, sizeof(double));
      double *area = xalloc(batch * nd * D, sizeof(double)), cw = 0, ch = 0;
      for (size_t s = 0; s < S; s++) {
        csde_tree_increment(&tr, s, white, area);
        csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, batch, white, col, &err);
        for (size_t i = 0; i < len; i++) cw = fmax(cw, fabs(col[i] - dW[s * len + i]));
        csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, batch, area, col, &err);
        for (size_t i = 0; i < len; i++) ch = fmax(ch, fabs(col[i] - dH[s * len + i]));
      }
      ok(cw == 0 && ch == 0,
         "path noise: dW, dH = V' of the tree's W, H (batch x nd D entries), bitwise (|diff| "
         "%.3g, %.3g)",
         cw, ch);
      free(white);
      free(area);
      free(col);
      csde_tree_free(&tr);
    }
    free(dW2);
    free(dH);
    free(dq);
    free(dW);
    free(t);
    csde_noise_free(&nz);
    if (!st2) csde_noise_free(&nq);
  }
  /* queries: the 10-step karras grid (does not nest with the 2^k ones) */
  {
    const size_t S = 10;
    double *t = NULL, h[10];
    size_t nsteps = 0;
    csde_noise nq;
    st = csde_grid_make("karras", vp, 1.0, 1e-3, S, &t, &nsteps, &err);
    int st1 = st
        ? st
        : csde_noise_init(&nq, CSDE_NOISE_PATH, C, ws, batch, D, csde_grid_map_at, &g, -1, 2, &err);
    if (ok(st1 == 0, "path noise, walk_k = -1: made%s%s", st1 ? ": " : "", st1 ? err.msg : "")) {
      csde_noise_set_seed(&nq, seed + 1, 0);
      double *dW = xalloc(S * len, sizeof(double));
      int sts = 0;
      for (size_t s = 0; s < S; s++) {
        h[s] = fabs(t[s + 1] - t[s]);
        sts |= csde_noise_increment(&nq, s, t[s], t[s + 1], dW + s * len, &err);
      }
      ok(sts == 0, "path noise: %zu query increments drawn", S);
      check_cov("path noise, queries on the 10-step karras grid (v = |h|)", dW, h, S, batch, tau, D,
                Cm);
      /* steps out of order and repeated (W(t0) is re-queried when t0 is not the last t1) */
      const size_t order[] = {6, 2, 3, 3, 9, 0, 1, 8};
      double *d1 = xalloc(len, sizeof(double));
      int same = 1;
      csde_noise_set_seed(&nq, seed + 1, 0);
      for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        const size_t s = order[i];
        sts |= csde_noise_increment(&nq, s, t[s], t[s + 1], d1, &err);
        same &= bits_equal(d1, dW + s * len, len);
      }
      ok(sts == 0 && same,
         "path noise, queries: steps 6, 2, 3, 3, 9, 0, 1, 8 give the in-order "
         "dW (bitwise)");
      free(d1);
      free(dW);
      csde_noise_free(&nq);
    }
    free(t);
  }
  /* stream noise with areas: dW ~ N(0, |h| C), dH ~ N(0, |h|/12 C), independent */
  {
    const size_t S = 8;
    double *t = NULL, h[8], h12[8];
    size_t nsteps = 0;
    csde_noise ns;
    st = csde_grid_make("karras", vp, 1.0, 1e-3, S, &t, &nsteps, &err);
    int st1 = st ? st
                 : csde_noise_init(&ns, CSDE_NOISE_STREAM, C, ws, batch, D, csde_grid_map_at, &g,
                                   -1, 1, &err);
    if (ok(st1 == 0, "stream noise: made%s%s", st1 ? ": " : "", st1 ? err.msg : "")) {
      csde_noise_set_seed(&ns, seed + 2, 0);
      double *dW = xalloc(S * len, sizeof(double)), *dH = xalloc(S * len, sizeof(double));
      double *d1 = xalloc(len, sizeof(double));
      int sts = 0, same = 1;
      for (size_t s = 0; s < S; s++) {
        h[s] = fabs(t[s + 1] - t[s]);
        h12[s] = h[s] / 12;
        sts |= csde_noise_increment_area(&ns, s, t[s], t[s + 1], dW + s * len, dH + s * len, &err);
        sts |= csde_noise_increment(&ns, s, t[s], t[s + 1], d1, &err);
        same &= bits_equal(d1, dW + s * len, len);
      }
      ok(sts == 0 && same, "stream noise: dW with and without the area, bitwise");
      check_cov("stream noise, dW (v = |h|)", dW, h, S, batch, tau, D, Cm);
      check_cov("stream noise, dH (v = |h|/12)", dH, h12, S, batch, tau, D, Cm);
      check_cross("stream noise, dW and dH of one step", dW, dH, h, h12, S, batch, tau, D, Cm);
      free(dW);
      free(dH);
      free(d1);
      csde_noise_free(&ns);
    }
    free(t);
  }
out:
  csde_cov_ws_free(ws);
  csde_cov_free(C);
}

int main(void)
{
  csde_init();
  quick = getenv("CSDE_TEST_QUICK") != NULL;
  csde_err err;
  if (!ok(csde_schedule_alloc(&vp, "vp-linear:bmin=0.1,bmax=20", &err) == 0, "schedule vp-linear"))
    return tap_done();
  test_maps();
  test_nesting();
  test_query();
  test_construction();
  test_query_construction();
  test_depth();
  test_stats();
  test_determinism();
  test_noise();
  csde_schedule_free(vp);
  return tap_done();
}
