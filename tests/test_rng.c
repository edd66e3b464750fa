/* Tests of corrsde/rng.h: the values against Random123 and libm, the distribution
 * (moments, chi-square, Kolmogorov-Smirnov), independence of the value from the split
 * and the thread count, separation of seeds, streams and counter spaces, and a
 * known-answer check. Every threshold is derived from the sample size below. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <Random123/philox.h>

#include "corrsde/corrsde.h"
#include "tap.h"

/* Internal to src/core/rng.c (not in rng.h): the transform of the kernel in use on given
 * words, 16 pairs: out[j] = r cos, out[16 + j] = r sin. */
void csde_rng_box_muller_words(const uint64_t *wr, const uint64_t *wa, double *out);

#define NMOM 4000000 /* normals for the moments */
#define NCHI 1000000 /* uniforms for the chi-square */
#define NBIN 1000
#define NKS 1000000 /* normals for Kolmogorov-Smirnov */
#define NSPLIT 100003

static double *xalloc(size_t n)
{
  double *p = malloc(n * sizeof *p);
  if (!p) {
    printf("Bail out! out of memory\n");
    exit(1);
  }
  return p;
}

/* The reference: Philox4x32-10 from Random123 itself, then the transform in long double
 * libm (see the layout comment in src/core/rng.c). ref_call gives the four words of the
 * call on 64-bit counter c. */
static philox4x32_ctr_t ref_call(csde_rng_key key, uint64_t c)
{
  philox4x32_ctr_t x = {{(uint32_t)c, (uint32_t)(c >> 32), (uint32_t)key.stream,
                         (uint32_t)(key.stream >> 32)}};
  philox4x32_key_t k = {{(uint32_t)key.seed, (uint32_t)(key.seed >> 32)}};
  return philox4x32(x, k);
}

/* the 64-bit word i of a call (i = 0 or 2) */
static uint64_t word64(philox4x32_ctr_t r, int i)
{
  return (uint64_t)r.v[i + 1] << 32 | r.v[i];
}

/* Box-Muller in long double from a radius word and a 32-bit angle word */
static void ref_normal_pair(uint64_t wr, uint32_t k, long double *z0, long double *z1)
{
  const long double twopi = 6.283185307179586476925286766559L;
  long double u1 = ((long double)(wr >> 12) + 0.5L) * 0x1p-52L;
  long double th = twopi * (long double)k * 0x1p-32L;
  long double r = sqrtl(-2.0L * logl(u1));
  *z0 = r * cosl(th);
  *z1 = r * sinl(th);
}

/* The words of pair j = 4 q + l of normal group g: radius W(12 g + 4 (q div 2) + l,
 * 2 (q mod 2)), angle x[12 g + 8 + l][q]. */
static void ref_pair_words(csde_rng_key key, uint64_t g, int j, uint64_t *wr, uint32_t *k)
{
  int q = j / 4, l = j % 4;
  *wr = word64(ref_call(key, 12 * g + (uint64_t)(4 * (q / 2) + l)), 2 * (q % 2));
  *k = ref_call(key, 12 * g + 8 + (uint64_t)l).v[q];
}

/* index of the uniform made from word i (0 or 2) of call c of the uniform space */
static uint64_t uniform_index(uint64_t c, int i)
{
  return c / 8 * 16 + c % 8 + (uint64_t)(4 * i);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The reference check: normals to 2e-15 (1 + |z|) (a few ulp), uniforms bit for bit, for
 * the ng groups of 32 from group g0. Returns the largest normal error. */
static double check_reference(csde_rng_key key, uint64_t g0, size_t ng, size_t *ubad)
{
  size_t n = 32 * ng;
  uint64_t i0 = 32 * g0;
  double *z = xalloc(n), *u = xalloc(n);
  csde_rng_normal(key, i0, n, z);
  csde_rng_uniform(key, i0, n, u);
  double worst = 0;
  *ubad = 0;
  for (size_t b = 0; b < ng; b++)
    for (int j = 0; j < 16; j++) {
      uint64_t wr;
      uint32_t k;
      long double z0, z1;
      size_t a = 32 * b + (size_t)j;
      ref_pair_words(key, g0 + b, j, &wr, &k);
      ref_normal_pair(wr, k, &z0, &z1);
      double e0 = (double)fabsl(z[a] - z0) / (1 + fabs(z[a]));
      double e1 = (double)fabsl(z[a + 16] - z1) / (1 + fabs(z[a + 16]));
      worst = fmax(worst, fmax(e0, e1));
    }
  /* uniforms: bit 63 of the 64-bit counter word, 16 calls per group */
  for (uint64_t c = 16 * g0; c < 16 * (g0 + ng); c++) {
    philox4x32_ctr_t r = ref_call(key, c | UINT64_C(1) << 63);
    for (int i = 0; i <= 2; i += 2)
      if (u[uniform_index(c, i) - i0] != ((double)(word64(r, i) >> 12) + 0.5) * 0x1p-52)
        (*ubad)++;
  }
  free(z);
  free(u);
  return worst;
}

static void test_reference(void)
{
  csde_rng_key key = {42, 7};
  size_t ubad;
  double e = check_reference(key, 0, 1 << 12, &ubad);
  ok(e <= 2e-15, "normals = Random123 Philox4x32-10 + Box-Muller in long double (max err %.3g)",
     e);
  ok(ubad == 0, "uniforms = Random123 words, (w >> 12 + 1/2) 2^-52 bit for bit (%zu differ)",
     ubad);
  /* a counter above 2^32 and a large seed and stream */
  csde_rng_key big = {UINT64_C(0xfedcba9876543210), UINT64_C(0x0123456789abcdef)};
  e = check_reference(big, UINT64_C(0x3456789abcd) / 8, 256, &ubad);
  ok(e <= 2e-15 && ubad == 0, "reference at a 64-bit seed, stream and counter (err %.3g, %zu)",
     e, ubad);
  /* groups whose 12 calls straddle a multiple of 2^32 in the counter (12 g = 2^32 - 4, and
   * 12 g = 5 2^32 - 8), and their neighbours: the avx2 kernel's shared-high-word path and
   * its fallback must give the same words */
  e = check_reference(big, UINT64_C(357913941) - 2, 5, &ubad);
  double e2 = check_reference(key, UINT64_C(1789569706) - 2, 5, &ubad);
  ok(fmax(e, e2) <= 2e-15 && ubad == 0,
     "reference where the Philox counter crosses 2^32 and 5 2^32 (err %.3g, %.3g)", e, e2);
}

/* The transform alone on chosen words: the extreme radii (u = 2^-53 gives |z| = 8.57,
 * u = 1 - 2^-53 gives r = 1.5e-8), every octant boundary of the angle and its neighbours,
 * and garbage in the high half of the angle word (ignored). The error is relative to r,
 * so that r cos and r sin near a zero still count: 1.5e-16 against long double, but
 * valgrind runs long double at double precision, hence the bound of 1e-15. */
static void test_transform(const char *kname)
{
  uint64_t wr[16], wa[16];
  double z[32];
  const uint64_t radius[4] = {0, UINT64_MAX, UINT64_C(1) << 63, UINT64_C(0x0000000000123000)};
  double worst = 0, zmax = 0, rmin = 1;
  size_t npair = 0;
  int sym = 1;
  for (int o = 0; o < 8; o++)
    for (int d = -2; d <= 2; d++) {
      uint32_t k0 = (uint32_t)((uint64_t)o << 29) + (uint32_t)d;
      for (int j = 0; j < 16; j++) {
        wr[j] = radius[j % 4];
        wa[j] = (uint64_t)k0 | (UINT64_C(0xdeadbeef) << 32);
      }
      csde_rng_box_muller_words(wr, wa, z);
      for (int j = 0; j < 16; j++, npair++) {
        long double z0, z1;
        ref_normal_pair(wr[j], (uint32_t)wa[j], &z0, &z1);
        double r = (double)sqrtl(z0 * z0 + z1 * z1);
        double e = (double)fmaxl(fabsl(z[j] - z0), fabsl(z[16 + j] - z1)) / r;
        worst = fmax(worst, e);
        zmax = fmax(zmax, fmax(fabs(z[j]), fabs(z[16 + j])));
        rmin = fmin(rmin, r);
        /* exact quarter turns: k = 2^30 m gives (r, 0), (0, r), (-r, 0), (0, -r) */
        if (d == 0 && j < 4 && o % 2 == 0) {
          int m = o / 2;
          double wc = m == 0 ? r : m == 2 ? -r : 0, ws = m == 1 ? r : m == 3 ? -r : 0;
          sym &= fabs(z[j] - wc) <= 4e-16 * r && fabs(z[16 + j] - ws) <= 4e-16 * r;
        }
      }
    }
  ok(worst <= 1e-15, "%s: transform at extreme radii and octant boundaries, %zu pairs: "
     "error %.3g r", kname, npair, worst);
  ok(zmax > 8.5 && zmax < 8.58 && rmin < 2e-8,
     "%s: the extreme radii: max |z| %.4f (8.57 expected), min r %.3g", kname, zmax, rmin);
  ok(sym, "%s: quarter turns give (r, 0), (0, r), (-r, 0), (0, -r)", kname);
}

/* Sample moments of NMOM normals. For x ~ N(0,1) the sample mean of x^k has standard
 * error sqrt(Var(x^k) / N): Var x = 1, Var x^2 = E x^4 - 1 = 2, Var x^3 = E x^6 = 15,
 * Var x^4 = E x^8 - (E x^4)^2 = 105 - 9 = 96. Tolerance: 5 standard errors. */
static void test_moments(void)
{
  double *z = xalloc(NMOM);
  csde_rng_key key = {1, 0};
  csde_rng_normal(key, 0, NMOM, z);
  double m[5] = {0, 0, 0, 0, 0};
  for (size_t i = 0; i < NMOM; i++) {
    double x = z[i], x2 = x * x;
    m[1] += x;
    m[2] += x2;
    m[3] += x2 * x;
    m[4] += x2 * x2;
  }
  const double want[5] = {0, 0, 1, 0, 3}, var[5] = {0, 1, 2, 15, 96};
  const char *what[5] = {"", "mean", "E x^2", "E x^3", "E x^4"};
  for (int k = 1; k <= 4; k++) {
    char buf[96];
    snprintf(buf, sizeof buf, "%s of %d normals within 5 standard errors", what[k], NMOM);
    ok_close(m[k] / NMOM, want[k], 5 * sqrt(var[k] / NMOM), buf);
  }
  /* correlation of neighbours and of the two values of a pair: SE 1/sqrt(N) */
  double c1 = 0, cp = 0;
  size_t n1 = 0, np = 0;
  for (size_t i = 0; i + 1 < NMOM; i++, n1++) c1 += z[i] * z[i + 1];
  for (size_t g = 0; g + 32 <= NMOM; g += 32)
    for (size_t j = 0; j < 16; j++, np++) cp += z[g + j] * z[g + j + 16];
  ok_close(c1 / n1, 0, 5 / sqrt((double)n1), "lag-1 correlation within 5 standard errors");
  ok_close(cp / np, 0, 5 / sqrt((double)np), "cos/sin partners uncorrelated (5 standard errors)");
  free(z);
}

/* Pearson's chi-square of NCHI uniforms in NBIN equal bins: X^2 ~ chi^2(NBIN - 1), mean
 * k = 999, sd sqrt(2k) = 44.7. Accept |X^2 - k| < 5 sd (two-sided p ~ 1e-6). */
static void test_chisq(void)
{
  double *u = xalloc(NCHI);
  static size_t cnt[NBIN];
  csde_rng_key key = {2, 3};
  csde_rng_uniform(key, 0, NCHI, u);
  double lo = 1, hi = 0;
  for (size_t i = 0; i < NCHI; i++) {
    lo = fmin(lo, u[i]);
    hi = fmax(hi, u[i]);
    cnt[(size_t)(u[i] * NBIN)]++;
  }
  ok(lo > 0 && hi < 1, "uniforms strictly inside (0, 1): min %.3g, 1 - max %.3g", lo, 1 - hi);
  double e = (double)NCHI / NBIN, x2 = 0, k = NBIN - 1;
  for (size_t b = 0; b < NBIN; b++) x2 += (cnt[b] - e) * (cnt[b] - e) / e;
  ok_close(x2, k, 5 * sqrt(2 * k), "uniform chi-square (1000 bins) near its 999 dof");
  free(u);
}

/* Kolmogorov-Smirnov of NKS normals against Phi(x) = erfc(-x / sqrt 2) / 2. Under H0
 * sqrt(n) D_n follows Kolmogorov's law: P(sqrt(n) D > 1.95) = 0.001. */
static void test_ks(void)
{
  double *z = xalloc(NKS);
  csde_rng_key key = {5, 11};
  csde_rng_normal(key, 1000, NKS, z);
  qsort(z, NKS, sizeof *z, cmp_double);
  double d = 0;
  for (size_t i = 0; i < NKS; i++) {
    double F = 0.5 * erfc(-z[i] / sqrt(2.0));
    d = fmax(d, fmax(fabs(F - (double)i / NKS), fabs((double)(i + 1) / NKS - F)));
  }
  double k = sqrt((double)NKS) * d;
  ok(k < 1.95, "Kolmogorov-Smirnov against Phi: sqrt(n) D = %.3f < 1.95 (p = 0.001)", k);
  ok(z[0] > -9 && z[NKS - 1] < 9, "|z| < 9 (the largest |z| Box-Muller gives is 8.57)");
  free(z);
}

/* One fill, many fills with odd splits, an inner slice, and 1/2/3 threads: bit for bit. */
static void test_splits(const char *kname)
{
  csde_rng_key key = {42, 9};
  double *a = xalloc(NSPLIT), *b = xalloc(NSPLIT);
  csde_rng_normal(key, 0, NSPLIT, a);
  static const size_t step[] = {1, 2, 3, 5, 7, 11, 13, 16, 17, 31, 33, 100, 1001};
  size_t i = 0, s = 0;
  memset(b, 0, NSPLIT * sizeof *b);
  while (i < NSPLIT) {
    size_t m = step[s++ % (sizeof step / sizeof *step)];
    if (m > NSPLIT - i) m = NSPLIT - i;
    csde_rng_normal(key, i, m, b + i);
    i += m;
  }
  ok(!memcmp(a, b, NSPLIT * sizeof *a), "%s: one call = %zu calls with odd splits", kname, s);
  memset(b, 0, NSPLIT * sizeof *b);
  csde_rng_normal(key, 12345, 777, b);
  ok(!memcmp(a + 12345, b, 777 * sizeof *a), "%s: an inner slice [12345, 13122)", kname);
  for (int nt = 0; nt <= 3; nt++) {
    memset(b, 0, NSPLIT * sizeof *b);
    csde_rng_normal_par(key, 0, NSPLIT, b, nt);
    ok(!memcmp(a, b, NSPLIT * sizeof *a), "%s: csde_rng_normal_par with %d threads%s", kname,
       nt, nt ? "" : " (default)");
  }
  memset(b, 0, NSPLIT * sizeof *b);
  csde_rng_normal_par(key, 7, NSPLIT - 7, b + 7, 3);
  ok(!memcmp(a + 7, b + 7, (NSPLIT - 7) * sizeof *a), "%s: par from an unaligned index", kname);
  /* uniforms the same way */
  csde_rng_uniform(key, 0, NSPLIT, a);
  for (i = 0, s = 0; i < NSPLIT;) {
    size_t m = step[s++ % (sizeof step / sizeof *step)];
    if (m > NSPLIT - i) m = NSPLIT - i;
    csde_rng_uniform(key, i, m, b + i);
    i += m;
  }
  ok(!memcmp(a, b, NSPLIT * sizeof *a), "%s: uniforms, one call = many calls", kname);
  free(a);
  free(b);
}

static size_t count_equal(const double *a, const double *b, size_t n)
{
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += a[i] == b[i];
  return c;
}

static void test_keys(void)
{
  enum { N = 4096 };
  static double a[N], b[N], c[N], v[N];
  csde_rng_normal((csde_rng_key){42, 0}, 0, N, a);
  csde_rng_normal((csde_rng_key){43, 0}, 0, N, b);
  csde_rng_normal((csde_rng_key){42, 1}, 0, N, c);
  ok(count_equal(a, b, N) == 0, "seeds 42 and 43 share no value");
  ok(count_equal(a, c, N) == 0, "streams 0 and 1 share no value");
  csde_rng_normal((csde_rng_key){42, 0}, 1, N - 1, v);
  ok(count_equal(a + 1, v, N - 1) == N - 1, "the same key gives the same values");
  csde_rng_normal((csde_rng_key){42, 0}, N, N, v);
  ok(count_equal(a, v, N) == 0, "indices [0, N) and [N, 2N) share no value");
  /* Counter spaces: if the uniforms reused the normals' Philox calls, then Box-Muller of
   * the uniforms made from a pair's words would give its normals back (to 1e-6). Pairs
   * with q = j div 4 odd have their angle word in the high half of a 64-bit word, which a
   * uniform keeps: check the positive case on words of the normal space itself (through
   * the reference), then that the uniform space is a different one. */
  enum { NU = 3 * N / 2 };
  static double uu[NU];
  csde_rng_uniform((csde_rng_key){42, 0}, 0, NU, uu);
  size_t hit = 0, self = 0, tried = 0;
  for (uint64_t g = 0; g < N / 32; g++)
    for (int j = 4; j < 16; j++) {
      int q = j / 4, l = j % 4;
      if (q % 2 == 0) continue;
      uint64_t cr = 12 * g + (uint64_t)(4 * (q / 2) + l), ca = 12 * g + 8 + (uint64_t)l;
      double zc = a[32 * g + (uint64_t)j], zs = a[32 * g + 16 + (uint64_t)j];
      /* the would-be uniforms, from the uniform space and from the normal space */
      double ur = uu[uniform_index(cr, 2)], ua = uu[uniform_index(ca, q - 1)];
      philox4x32_ctr_t xr = ref_call((csde_rng_key){42, 0}, cr), xa =
                                                                    ref_call((csde_rng_key){42, 0}, ca);
      double vr = ((double)(word64(xr, 2) >> 12) + 0.5) * 0x1p-52;
      double va = ((double)(word64(xa, q - 1) >> 12) + 0.5) * 0x1p-52;
      double r = sqrt(-2 * log(ur)), th = 2 * M_PI * ua;
      hit += fabs(zc - r * cos(th)) < 1e-6 && fabs(zs - r * sin(th)) < 1e-6;
      r = sqrt(-2 * log(vr)), th = 2 * M_PI * va;
      self += fabs(zc - r * cos(th)) < 1e-6 && fabs(zs - r * sin(th)) < 1e-6;
      tried++;
    }
  ok(self == tried, "Box-Muller of the normal space's own words gives its normals (%zu of %zu)",
     self, tried);
  ok(hit == 0, "uniforms and normals use disjoint counters (%zu pairs match)", hit);
}

/* Pinned values of seed 42, stream 0: a silent change of the generator, the transform or
 * the layout fails here (by O(1)). Uniforms are exact integer arithmetic; normals may
 * differ in the last bits between kernels, so they get a tolerance of 1e-15 (1 + |z|).
 * Pinned: normals 0..7 and 16 (the sin partner of index 0). */
static void test_known_answers(void)
{
  static const double zk[9] = {-1.1756919771443484,  -0.15326682402737105, -0.90348400399018369,
                               -0.41732918571369415, 0.97465423965819842,  -0.99870797303917125,
                               -0.36712046330712539, -1.2848628660089649,  -0.36581063638040234};
  static const double uk[4] = {0.25563441079995142, 0.76756734999451315, 0.63921078892416439,
                               0.52491351858256852};
  double z[32], u[4];
  csde_rng_key key = {42, 0};
  csde_rng_normal(key, 0, 32, z);
  csde_rng_uniform(key, 0, 4, u);
  z[8] = z[16];
  double worst = 0;
  for (int i = 0; i < 9; i++) worst = fmax(worst, fabs(z[i] - zk[i]) / (1 + fabs(zk[i])));
  if (worst > 1e-15)
    for (int i = 0; i < 9; i++)
      printf("# z[%d] = %.17g (pinned %.17g)\n", i < 8 ? i : 16, z[i], zk[i]);
  ok(worst <= 1e-15, "known answers: normals 0..7, 16 of seed 42 stream 0 (err %.3g)", worst);
  if (memcmp(u, uk, sizeof u))
    for (int i = 0; i < 4; i++) printf("# u[%d] = %.17g (pinned %.17g)\n", i, u[i], uk[i]);
  ok(!memcmp(u, uk, sizeof u), "known answers: uniforms 0..3 of seed 42 stream 0 (exact)");
}

static void test_edges(void)
{
  double z[64], w[64];
  memset(z, 0, sizeof z);
  csde_rng_normal((csde_rng_key){1, 2}, 5, 0, z);
  csde_rng_uniform((csde_rng_key){1, 2}, 5, 0, z);
  csde_rng_normal_par((csde_rng_key){1, 2}, 5, 0, z, 2);
  ok(z[0] == 0 && z[63] == 0, "n = 0 writes nothing");
  /* the last indices before 2^64, in one call and one by one */
  uint64_t top = UINT64_MAX - 40;
  csde_rng_normal((csde_rng_key){1, 2}, top, 40, z);
  for (int i = 0; i < 40; i++) csde_rng_normal((csde_rng_key){1, 2}, top + (uint64_t)i, 1, w + i);
  ok(!memcmp(z, w, 40 * sizeof *z), "indices just below 2^64: one call = single values");
  int fin = 1;
  for (int i = 0; i < 40; i++) fin &= isfinite(z[i]);
  ok(fin, "indices just below 2^64 are finite");
  ok(!strcmp(csde_rng_name(), "philox4x32-10/box-muller96/group32"), "csde_rng_name: %s",
     csde_rng_name());
}

/* Every kernel this CPU runs gives the normals and uniforms of the first, bit for bit,
 * and keeps every split property. */
static void test_kernels(void)
{
  const char *first = csde_rng_kernel_name();
  enum { N = 50000 };
  double *za = xalloc(N), *zb = xalloc(N), *ua = xalloc(N), *ub = xalloc(N);
  csde_rng_key key = {77, 5};
  csde_rng_normal(key, 3, N, za);
  csde_rng_uniform(key, 3, N, ua);
  int ran = 0;
  for (const char *const *k = csde_rng_kernel_names(); *k; k++) {
    int s = csde_rng_kernel_select(*k);
    if (s == CSDE_ENOTSUP) {
      ok(1, "kernel %s not available on this CPU # SKIP", *k);
      continue;
    }
    ok(s == 0 && !strcmp(csde_rng_kernel_name(), *k), "kernel %s selected", *k);
    ran++;
    memset(zb, 0, N * sizeof *zb);
    csde_rng_normal(key, 3, N, zb);
    csde_rng_uniform(key, 3, N, ub);
    size_t nd = 0;
    for (size_t i = 0; i < N; i++) nd += memcmp(&za[i], &zb[i], sizeof *za) != 0;
    ok(nd == 0, "kernels %s and %s: normals identical (%zu of %d differ)", first, *k, nd, N);
    ok(!memcmp(ua, ub, N * sizeof *ua), "kernels %s and %s: uniforms identical", first, *k);
    /* odd and even group counts, and a group that straddles 2^32 calls */
    uint64_t far = (UINT64_C(1) << 32) / 12 * 32 - 64;
    double a[3 * 32 + 5], c[3 * 32 + 5];
    csde_rng_kernel_select(first);
    csde_rng_normal(key, far, 3 * 32 + 5, a);
    csde_rng_kernel_select(*k);
    csde_rng_normal(key, far, 3 * 32 + 5, c);
    ok(!memcmp(a, c, sizeof a), "kernels %s and %s: normals near call 2^32, 3 groups and a part",
       first, *k);
    size_t ubad;
    double e = check_reference(key, 31, 256, &ubad);
    ok(e <= 2e-15 && ubad == 0, "%s: reference check (err %.3g, %zu uniforms differ)", *k, e,
       ubad);
    test_splits(*k);
    test_transform(*k);
  }
  ok(ran >= 1, "%d kernel(s) ran", ran);
  csde_rng_kernel_select(first);
  ok(!strcmp(csde_rng_kernel_name(), first), "back to the kernel %s", first);
  ok(csde_rng_kernel_select("no-such-kernel") == CSDE_EINVAL, "an unknown kernel name is refused");
  free(za), free(zb), free(ua), free(ub);
}

int main(void)
{
  csde_init();
  printf("# generator %s, kernel %s\n", csde_rng_name(), csde_rng_kernel_name());
  test_reference();
  test_moments();
  test_chisq();
  test_ks();
  test_splits(csde_rng_kernel_name());
  test_transform(csde_rng_kernel_name());
  test_keys();
  test_known_answers();
  test_edges();
  test_kernels();
  return tap_done();
}
