/* Counter-based normals and uniforms: Random123 Philox4x32-10 and the Box-Muller transform.
 *
 * A Philox call on counter c (0 <= c < 2^63) is
 *   ctr = (c mod 2^32, c div 2^32 [+ 2^31 for uniforms], stream mod 2^32, stream div 2^32)
 *   key = (seed mod 2^32, seed div 2^32)
 * and gives four 32-bit words x[c][0..3]. Normals and uniforms differ in bit 63 of the
 * 64-bit counter word (c < 2^63 always), so they never share a Philox call, for any seed
 * and stream. W(c, i) = x[c][i + 1]:x[c][i] is a 64-bit word.
 *
 * Normals: 96 bits per Box-Muller pair, 64 for the radius and 32 for the angle, so a
 * group g of 32 values (16 pairs) takes 12 calls, c = 12 g + i, i < 12. Pair j = 4 q + l
 * (q, l < 4) of group g has
 *   radius word  wr = W(12 g + 4 (q div 2) + l, 2 (q mod 2))    (calls 0-7 of the group)
 *   angle word   k  = x[12 g + 8 + l][q]                         (calls 8-11)
 * and gives index 32 g + j the value r cos(theta), index 32 g + 16 + j the value
 * r sin(theta) (so that 4-lane vectors load and store without shuffles):
 *   r = sqrt(-2 log u),  u = (wr div 2^12 + 1/2) 2^-52   in (0, 1), |z| <= 8.57
 *   theta = 2 pi k / 2^32                                  in [0, 2 pi)
 * Uniforms: 32 values from 16 calls c = 16 b + j, j < 16, with w1 = W(c, 0), w2 = W(c, 2)
 * and u(w) = (w div 2^12 + 1/2) 2^-52: index 32 b + j gets u(w1), 32 b + 8 + j gets u(w2)
 * for j < 8, index 32 b + 8 + j gets u(w1), 32 b + 16 + j gets u(w2) for j >= 8 (the layout
 * of the former groups of 16: pair p = 8 h + j to indices 16 h + j and 16 h + 8 + j).
 *
 * The log and the sin/cos are evaluated here, by polynomials, not by libm or libmvec:
 * GCC 12 turns sin and cos of one argument into a scalar sincos call, which stops the
 * vectorisation, and libmvec's results may change with the glibc version, which would
 * change the noise of a saved run (besides, -fno-finite-math-only leaves __FAST_MATH__
 * undefined, and glibc then declares no vector variants at all). So the bits depend only
 * on this file, the compiler and the code path; the test checks them against Random123
 * and long double libm to a few ulp.
 *
 * Code paths. A group is CSDE_RNG_GROUP = 32 consecutive indices; a kernel computes whole
 * groups, each through one fixed, vectorised sequence without a remainder. A fill call
 * computes a partial first or last group whole, into a stack buffer, and copies the part
 * asked for. Hence a value never depends on the split of a range, nor on the thread
 * count. Three kernels exist: `avx512` (Philox on 8 counters per register, the transform
 * 8-wide) on CPUs with AVX-512 F, DQ and VL; `avx2-fma` (4 counters, 4-wide) on CPUs with
 * AVX2 and FMA; and `generic` (Random123's scalar Philox, the transform vectorised for the
 * baseline ISA) elsewhere. The first use picks the fastest the CPU runs
 * (CSDE_RNG_KERNEL=name picks another). Every kernel gives the same bits: Philox is exact
 * integer arithmetic, and the transform is one fixed sequence of IEEE additions,
 * multiplications, a division and a square root, each correctly rounded at any vector
 * width, since the file is compiled without contraction into fused multiply-adds
 * (-ffp-contract=off, meson.build). So a seed gives the same noise on every x86-64
 * machine, whatever its vector units.
 */
#include "corrsde/rng.h"
#include "corrsde/status.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <Random123/philox.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RNG_HAVE_AVX2 1
#else
#define RNG_HAVE_AVX2 0
#endif

/* A group: 32 values, 16 pairs, from NCALLS Philox calls (normals) or UCALLS (uniforms) */
enum { GROUP = CSDE_RNG_GROUP, PAIRS = GROUP / 2, NCALLS = 12, UCALLS = 16, ROUNDS = 10 };
#define UNIFORM_BIT (UINT64_C(1) << 63)

/* Below this many values csde_rng_normal_par does not start threads; threads take chunks
 * of PAR_CHUNK groups (8192 values, 64 KiB). */
#define PAR_MIN 16384
#define PAR_CHUNK 256

static inline double from_bits(uint64_t b)
{
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

static inline uint64_t to_bits(double d)
{
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

/* (w div 2^12 + 1/2) 2^-52: the 52-bit fraction under 1.0 gives v in [1, 2); subtracting
 * 1 - 2^-53 is exact (Sterbenz), so u is on the grid (m + 1/2) 2^-52, never 0 or 1. */
static inline double open01(uint64_t w)
{
  return from_bits(UINT64_C(0x3FF0000000000000) | (w >> 12)) - (1.0 - 0x1p-53);
}

/* An integer 0 <= m < 2^52 as a double, exactly: 2^52 + m has m as its fraction. The
 * helpers below use integer and floating operations only that SSE2 has for 64-bit lanes
 * (no 64-bit compares or arithmetic shifts), so both kernels vectorise. */
static inline double int52(uint64_t m)
{
  return from_bits(UINT64_C(0x4330000000000000) | m) - 0x1p52;
}

/* Polynomial fits. Each 1 + z P(z) below approximates f(z) on [0, b] with P a Chebyshev
 * fit of (f(z) - 1)/z: mpmath.chebyfit at 50 digits, coefficients rounded to double,
 * error checked in 50 digits on 2001 points. */

/* -2 log u for u in (0, 1): u = 2^e x with x in [sqrt(1/2), sqrt 2), then
 *   -2 log u = -2 e log 2 - 4 s (1 + z G(z)),  s = (x - 1)/(x + 1),  z = s^2 <= 0.0295,
 * 1 + z G(z) ~ atanh(sqrt z)/sqrt z with G of degree 6, relative error 5e-18. log 2 is
 * split in two
 * (Cody-Waite: e log2_hi is exact) so that e log 2 keeps full precision. The split of u:
 * t = bits(u) + bits(1) - bits(sqrt(1/2)) carries into the exponent field exactly when
 * u's fraction reaches sqrt 2, so e = exponent of t and x = fraction of t + sqrt(1/2). */
static inline double neg2log01(double u)
{
  const uint64_t half = UINT64_C(0x3FE6A09E667F3BCD); /* bits of sqrt(1/2), rounded up */
  uint64_t t = to_bits(u) + (UINT64_C(0x3FF0000000000000) - half);
  double e = int52(t >> 52) - 1023;
  double x = from_bits((t & UINT64_C(0x000FFFFFFFFFFFFF)) + half);
  double s = (x - 1) / (x + 1), z = s * s, z2 = z * z, z4 = z2 * z2;
  /* Estrin's scheme: short dependency chains keep the vector units busy */
  double g = (0x1.5555555555558p-2 + z * 0x1.99999999952e2p-3) +
             z2 * (0x1.2492492df148dp-3 + z * 0x1.c71c62e5800a1p-4) +
             z4 * ((0x1.7462b4ab2ef6bp-4 + z * 0x1.39fe606542ddep-4) + z2 * 0x1.2b584aae78a57p-4);
  double at4 = -4.0 * s - 4.0 * s * (z * g);
  return e * -0x1.62e42fefa3800p0 + (e * -0x1.ef35793c76730p-44 + at4);
}

/* Box-Muller for 8 pairs, half a group (GCC unrolls a loop of two vectors but not one of
 * four, and the unrolled one runs 1.5x faster): out[j] = r cos(theta), out[16 + j] =
 * r sin(theta) for pair j, from its radius word wr[j] (64 bits) and its angle word wa[j]
 * (the low 32 bits are used, the high ones are ignored). theta = 2 pi k / 2^32 with k the angle word: 32 bits are
 * plenty, for the angle only rotates the pair, and a grid of 2^-32 turns moves a value by
 * at most r pi 2^-32 < 7e-9, far below anything a test on fewer than ~10^17 draws could
 * see; the radius, whose tail matters, keeps 52 bits (|z| up to 8.57).
 * Reduction, in integers, exact: with y = k + 2^29 (mod 2^32), theta = (pi/2)(q + f),
 * q = y div 2^30 the quadrant and f = (y mod 2^30 - 2^29) / 2^30 in [-1/2, 1/2), so
 * t = (pi/2) f is in [-pi/4, pi/4). There, with x = t^2 <= (pi/4)^2,
 *   sin t = t (1 + x S(x)),  cos t = 1 + x C(x),
 * S of degree 5 and C of degree 6 (fits as above), relative errors 2e-17 and 6e-19.
 * Then (cos, sin)(theta) is (cos t, sin t) turned by q quarter turns. */
static inline __attribute__((always_inline)) void box_muller(const uint64_t *restrict wr,
                                                             const uint64_t *restrict wa,
                                                             double *restrict out)
{
#pragma omp simd
  for (int j = 0; j < PAIRS / 2; j++) {
    double r = sqrt(neg2log01(open01(wr[j])));
    /* y in the top 32 bits: y = (k + 2^29) 2^32 (mod 2^64) */
    uint64_t y = (wa[j] << 32) + (UINT64_C(1) << 61);
    /* (y mod 2^62) div 2^32 - 2^29, exact: (2^52 + m) - (2^52 + 2^29) */
    double fi = from_bits(UINT64_C(0x4330000000000000) | ((y << 2) >> 34)) - 0x1.000002p52;
    double t = fi * (0x1.921fb54442d18p0 * 0x1p-30);
    double x = t * t, x2 = x * x, x4 = x2 * x2;
    double sp = (-0x1.5555555555555p-3 + x * 0x1.1111111110bb2p-7) +
                x2 * (-0x1.a01a019e83aaep-13 + x * 0x1.71de37968a100p-19) +
                x4 * (-0x1.ae600b02b6262p-26 + x * 0x1.5e0b19f8b1451p-33);
    double cp = (-0.5 + x * 0x1.5555555555551p-5) +
                x2 * (-0x1.6c16c16c15d79p-10 + x * 0x1.a01a019de131fp-16) +
                x4 * ((-0x1.27e4f8e4a2e74p-22 + x * 0x1.1eea7f259b344p-29) +
                      x2 * -0x1.8ff9d439a204ap-37);
    double sn = t + t * (x * sp), cs = 1.0 + x * cp;
    /* q = 0: (c, s); 1: (-s, c); 2: (-c, -s); 3: (s, -c). Bit 62 of y (q odd) swaps c
     * and s and flips the sign of the first; bit 63 (q >= 2) flips both signs. */
    uint64_t odd = (uint64_t)0 - ((y >> 62) & 1), sign = y & (UINT64_C(1) << 63);
    uint64_t bc = to_bits(cs), bs = to_bits(sn), sw = (bc ^ bs) & odd;
    double rq = from_bits(to_bits(r) ^ sign);
    out[j] = rq * from_bits(bc ^ sw ^ (odd << 63));
    out[PAIRS + j] = rq * from_bits(bs ^ sw);
  }
}

/* uniforms, half a group (the layout of the uniforms is the one of the former 16-value
 * groups): out[j] = u(w1[j]), out[8 + j] = u(w2[j]) for j < 8 */
static inline __attribute__((always_inline)) void uniforms(const uint64_t *restrict w1,
                                                           const uint64_t *restrict w2,
                                                           double *restrict out)
{
#pragma omp simd
  for (int j = 0; j < PAIRS / 2; j++) {
    out[j] = open01(w1[j]);
    out[PAIRS / 2 + j] = open01(w2[j]);
  }
}

/* A kernel fills groups g0, g0+1, ..., g0+ng-1 into out (32 ng values); ctr_bit is 0
 * (normals) or UNIFORM_BIT. */
typedef void kernel_fn(csde_rng_key key, uint64_t g0, size_t ng, uint64_t ctr_bit,
                       double *out);

/* Both kernels are compiled with GCC's pre-register-allocation scheduler (off by default
 * on x86), which interleaves the independent vectors of a group. */
#if defined(__GNUC__) && !defined(__clang__)
#define RNG_SCHED __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define RNG_SCHED
#endif

/* ---- generic: Random123's Philox, any ISA ---- */

static inline philox4x32_ctr_t philox_call(csde_rng_key key, uint64_t c)
{
  philox4x32_key_t k = {{(uint32_t)key.seed, (uint32_t)(key.seed >> 32)}};
  philox4x32_ctr_t x = {{(uint32_t)c, (uint32_t)(c >> 32), (uint32_t)key.stream,
                         (uint32_t)(key.stream >> 32)}};
  return philox4x32_R(ROUNDS, x, k);
}

static inline uint64_t word64(philox4x32_ctr_t r, int i)
{
  return (uint64_t)r.v[i + 1] << 32 | r.v[i];
}

RNG_SCHED static void
kernel_generic(csde_rng_key key, uint64_t g0, size_t ng, uint64_t ctr_bit, double *out)
{
  uint64_t w1[PAIRS], w2[PAIRS];
  for (size_t b = 0; b < ng; b++, out += GROUP) {
    uint64_t g = g0 + b;
    if (ctr_bit) {
      /* uniforms: call c = 16 g + j (see the layout above) */
      for (int j = 0; j < PAIRS; j++) {
        philox4x32_ctr_t r = philox_call(key, (UCALLS * g + (uint64_t)j) | ctr_bit);
        w1[j] = word64(r, 0);
        w2[j] = word64(r, 2);
      }
      uniforms(w1, w2, out);
      uniforms(w1 + PAIRS / 2, w2 + PAIRS / 2, out + PAIRS);
    } else {
      /* normals: call c = 12 g + 4 h + l; pair j = 4 q + l (see the layout above) */
      philox4x32_ctr_t r[NCALLS];
      for (int i = 0; i < NCALLS; i++) r[i] = philox_call(key, NCALLS * g + (uint64_t)i);
      for (int q = 0; q < 4; q++)
        for (int l = 0; l < 4; l++) {
          w1[4 * q + l] = word64(r[4 * (q >> 1) + l], 2 * (q & 1));
          w2[4 * q + l] = r[8 + l].v[q];
        }
      box_muller(w1, w2, out);
      box_muller(w1 + PAIRS / 2, w2 + PAIRS / 2, out + PAIRS / 2);
    }
  }
}

/* ---- avx2-fma: Philox on 4 counters per register ---- */

#if RNG_HAVE_AVX2
/* Each 64-bit lane holds one 32-bit Philox word in its low half. A round is
 *   (v0, v1, v2, v3) -> (hi(M1 v2) ^ v1 ^ k0, lo(M1 v2), hi(M0 v0) ^ v3 ^ k1, lo(M0 v0))
 * and _mm256_mul_epu32 reads only the low halves, so the high halves may hold garbage
 * until the words are packed at the end. NSET sets of 4 counters c0 + 4 h + (0..3) run
 * interleaved; v[4 h + i] is word i of set h. */
#define RNG_AVX2 __attribute__((target("avx2,fma")))

typedef struct {
  __m256i k0, k1, s0, s1;
} philox_avx2_key;

static inline __attribute__((always_inline)) RNG_AVX2 void
philox_avx2(philox_avx2_key K, uint64_t c0, int nset, __m256i *restrict v)
{
  const __m256i m0 = _mm256_set1_epi64x(PHILOX_M4x32_0), m1 = _mm256_set1_epi64x(PHILOX_M4x32_1);
  const __m256i w0 = _mm256_set1_epi64x(PHILOX_W32_0), w1 = _mm256_set1_epi64x(PHILOX_W32_1);
  const __m256i lane = _mm256_set_epi64x(3, 2, 1, 0);
  for (int h = 0; h < nset; h++) {
    __m256i c = _mm256_add_epi64(_mm256_set1_epi64x((long long)(c0 + 4 * (uint64_t)h)), lane);
    v[4 * h] = c;
    v[4 * h + 1] = _mm256_srli_epi64(c, 32);
    v[4 * h + 2] = K.s0;
    v[4 * h + 3] = K.s1;
  }
  __m256i k0 = K.k0, k1 = K.k1;
#pragma GCC unroll 10
  for (int r = 0; r < ROUNDS; r++) {
    for (int h = 0; h < nset; h++) {
      __m256i *x = v + 4 * h;
      __m256i p0 = _mm256_mul_epu32(x[0], m0), p1 = _mm256_mul_epu32(x[2], m1);
      x[0] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x[1]), k0);
      x[2] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), x[3]), k1);
      x[1] = p1;
      x[3] = p0;
    }
    k0 = _mm256_add_epi32(k0, w0);
    k1 = _mm256_add_epi32(k1, w1);
  }
}

/* The same, when all counters share the high counter word H = c0 div 2^32 (always, but
 * for a group that straddles a multiple of 2^32). Then words 1, 2 and 3 of the counter
 * are the same in every lane, and so are some products of the first rounds; computed
 * once, on scalars, they save a quarter of the work of rounds 1-3. Exact: the words are
 * those of philox_avx2, bit for bit. With Ki = key word i + (r - 1) Wi in round r:
 *   round 1: v0 = hi(M1 S0) ^ H ^ K0 =: A (scalar),  v1 = lo(M1 S0) =: B (scalar),
 *            v2 = hi(M0 c) ^ S1 ^ K1,                v3 = lo(M0 c);
 *   round 2: v0 = hi(M1 v2) ^ (B ^ K0),  v1 = lo(M1 v2),
 *            v2 = v3 ^ (hi(M0 A) ^ K1),  v3 = lo(M0 A) (scalar);
 *   round 3: as usual, with v2 = hi(M0 v0) ^ (lo(M0 A) ^ K1). */
typedef struct {
  uint64_t hi;                  /* H, the shared high counter word */
  __m256i x1, x2v0, x2v2, x3v2; /* the broadcast constants of rounds 1, 2, 2, 3 */
} philox_avx2_pre;

static inline __attribute__((always_inline)) RNG_AVX2 void
philox_avx2_prepare(csde_rng_key key, uint64_t hi, philox_avx2_pre *P)
{
  uint32_t K0 = (uint32_t)key.seed, K1 = (uint32_t)(key.seed >> 32);
  uint32_t S0 = (uint32_t)key.stream, S1 = (uint32_t)(key.stream >> 32);
  uint64_t p1 = (uint64_t)PHILOX_M4x32_1 * S0;
  uint32_t A = (uint32_t)(p1 >> 32) ^ (uint32_t)hi ^ K0, B = (uint32_t)p1;
  uint64_t p0 = (uint64_t)PHILOX_M4x32_0 * A;
  P->hi = hi;
  P->x1 = _mm256_set1_epi64x(S1 ^ K1);
  P->x2v0 = _mm256_set1_epi64x(B ^ (uint32_t)(K0 + PHILOX_W32_0));
  P->x2v2 = _mm256_set1_epi64x((uint32_t)(p0 >> 32) ^ (uint32_t)(K1 + PHILOX_W32_1));
  P->x3v2 = _mm256_set1_epi64x((uint32_t)p0 ^ (uint32_t)(K1 + 2 * PHILOX_W32_1));
}

static inline __attribute__((always_inline)) RNG_AVX2 void
philox_avx2_shared(philox_avx2_key K, const philox_avx2_pre *P, uint64_t c0, int nset,
                   __m256i *restrict v)
{
  const __m256i m0 = _mm256_set1_epi64x(PHILOX_M4x32_0), m1 = _mm256_set1_epi64x(PHILOX_M4x32_1);
  const __m256i w0 = _mm256_set1_epi64x(PHILOX_W32_0), w1 = _mm256_set1_epi64x(PHILOX_W32_1);
  const __m256i lane = _mm256_set_epi64x(3, 2, 1, 0);
  __m256i k0 = _mm256_add_epi32(K.k0, _mm256_add_epi32(w0, w0));
  __m256i k1 = _mm256_add_epi32(K.k1, _mm256_add_epi32(w1, w1));
  for (int h = 0; h < nset; h++) {
    __m256i *x = v + 4 * h;
    __m256i c = _mm256_add_epi64(_mm256_set1_epi64x((long long)(c0 + 4 * (uint64_t)h)), lane);
    /* rounds 1 and 2 (v3 of round 1 is p0) */
    __m256i p0 = _mm256_mul_epu32(c, m0);
    __m256i v2 = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), P->x1);
    __m256i p1 = _mm256_mul_epu32(v2, m1);
    x[0] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), P->x2v0);
    x[1] = p1;
    x[2] = _mm256_xor_si256(p0, P->x2v2);
    /* round 3 */
    p0 = _mm256_mul_epu32(x[0], m0);
    p1 = _mm256_mul_epu32(x[2], m1);
    x[0] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x[1]), k0);
    x[2] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), P->x3v2);
    x[1] = p1;
    x[3] = p0;
  }
#pragma GCC unroll 10
  for (int r = 3; r < ROUNDS; r++) {
    k0 = _mm256_add_epi32(k0, w0);
    k1 = _mm256_add_epi32(k1, w1);
    for (int h = 0; h < nset; h++) {
      __m256i *x = v + 4 * h;
      __m256i p0 = _mm256_mul_epu32(x[0], m0), p1 = _mm256_mul_epu32(x[2], m1);
      x[0] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), x[1]), k0);
      x[2] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), x[3]), k1);
      x[1] = p1;
      x[3] = p0;
    }
  }
}

/* Philox for nset sets from counter c0 (a multiple of 4): the shared-word path when the
 * sets share the high word, else the plain one; the same words either way. */
static inline __attribute__((always_inline)) RNG_AVX2 void
philox_avx2_any(csde_rng_key key, philox_avx2_key K, philox_avx2_pre *P, uint64_t c0, int nset,
                __m256i *restrict v)
{
  uint64_t hi = c0 >> 32;
  if (__builtin_expect(hi != (c0 + 4 * (uint64_t)nset - 1) >> 32, 0)) {
    philox_avx2(K, c0, nset, v);
    return;
  }
  if (__builtin_expect(hi != P->hi, 0)) philox_avx2_prepare(key, hi, P);
  philox_avx2_shared(K, P, c0, nset, v);
}

/* the 64-bit word (x[1] << 32) | low half of x[0]: the blend keeps x[0]'s even elements */
static inline __attribute__((always_inline)) RNG_AVX2 __m256i pack64(__m256i lo, __m256i hi)
{
  return _mm256_blend_epi32(lo, _mm256_slli_epi64(hi, 32), 0xAA);
}

RNG_SCHED RNG_AVX2 static void
kernel_avx2(csde_rng_key key, uint64_t g0, size_t ng, uint64_t ctr_bit, double *out)
{
  philox_avx2_key K = {_mm256_set1_epi64x((uint32_t)key.seed),
                       _mm256_set1_epi64x((uint32_t)(key.seed >> 32)),
                       _mm256_set1_epi64x((uint32_t)key.stream),
                       _mm256_set1_epi64x((uint32_t)(key.stream >> 32))};
  philox_avx2_pre P;
  philox_avx2_prepare(key, (g0 * (ctr_bit ? UCALLS : NCALLS) | ctr_bit) >> 32, &P);
  uint64_t w1[PAIRS], w2[PAIRS];
  __m256i v[16];
  for (size_t b = 0; b < ng; b++, out += GROUP) {
    uint64_t g = g0 + b;
    if (ctr_bit) {
      philox_avx2_any(key, K, &P, (UCALLS * g) | ctr_bit, 4, v);
      for (int h = 0; h < 4; h++) {
        _mm256_storeu_si256((__m256i *)(w1 + 4 * h), pack64(v[4 * h], v[4 * h + 1]));
        _mm256_storeu_si256((__m256i *)(w2 + 4 * h), pack64(v[4 * h + 2], v[4 * h + 3]));
      }
      uniforms(w1, w2, out);
      uniforms(w1 + PAIRS / 2, w2 + PAIRS / 2, out + PAIRS);
    } else {
      /* radius words of pairs 4q + l: q = 0, 1 from set 0, q = 2, 3 from set 1; angles:
       * word q of set 2, used as it is (box_muller ignores the high halves) */
      philox_avx2_any(key, K, &P, NCALLS * g, 3, v);
      for (int q = 0; q < 4; q++) {
        int h = q >> 1, i = 2 * (q & 1);
        _mm256_storeu_si256((__m256i *)(w1 + 4 * q), pack64(v[4 * h + i], v[4 * h + i + 1]));
        _mm256_storeu_si256((__m256i *)(w2 + 4 * q), v[8 + q]);
      }
      box_muller(w1, w2, out);
      box_muller(w1 + PAIRS / 2, w2 + PAIRS / 2, out + PAIRS / 2);
    }
  }
}

/* ---- avx512: Philox on 8 counters per register, the transform 8-wide ---- */

/* As philox_avx2, with 8 counters c0 + 8 h + (0..7) per set. */
#if defined(__clang__)
#define RNG_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))
#else /* GCC would vectorise the transform 4-wide without the preference */
#define RNG_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,prefer-vector-width=512")))
#endif

static inline __attribute__((always_inline)) RNG_AVX512 void
philox_avx512(csde_rng_key key, uint64_t c0, int nset, __m512i *restrict v)
{
  const __m512i m0 = _mm512_set1_epi64(PHILOX_M4x32_0), m1 = _mm512_set1_epi64(PHILOX_M4x32_1);
  const __m512i w0 = _mm512_set1_epi64(PHILOX_W32_0), w1 = _mm512_set1_epi64(PHILOX_W32_1);
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i s0 = _mm512_set1_epi64((uint32_t)key.stream),
                s1 = _mm512_set1_epi64((uint32_t)(key.stream >> 32));
  __m512i k0 = _mm512_set1_epi64((uint32_t)key.seed), k1 = _mm512_set1_epi64((uint32_t)(key.seed >> 32));
  for (int h = 0; h < nset; h++) {
    __m512i c = _mm512_add_epi64(_mm512_set1_epi64((long long)(c0 + 8 * (uint64_t)h)), lane);
    v[4 * h] = c;
    v[4 * h + 1] = _mm512_srli_epi64(c, 32);
    v[4 * h + 2] = s0;
    v[4 * h + 3] = s1;
  }
#pragma GCC unroll 10
  for (int r = 0; r < ROUNDS; r++) {
    for (int h = 0; h < nset; h++) {
      __m512i *x = v + 4 * h;
      __m512i p0 = _mm512_mul_epu32(x[0], m0), p1 = _mm512_mul_epu32(x[2], m1);
      x[0] = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), x[1]), k0);
      x[2] = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), x[3]), k1);
      x[1] = p1;
      x[3] = p0;
    }
    k0 = _mm512_add_epi32(k0, w0);
    k1 = _mm512_add_epi32(k1, w1);
  }
}

/* the 64-bit words (x[1] << 32) | low half of x[0] of the 8 lanes */
static inline __attribute__((always_inline)) RNG_AVX512 __m512i pack64_512(__m512i lo, __m512i hi)
{
  return _mm512_mask_blend_epi32(0xAAAA, lo, _mm512_slli_epi64(hi, 32));
}

/* Pairs of groups: 24 normal calls (3 sets) or 32 uniform calls (4 sets) per pair; an odd
 * last group takes 2 sets, of which it uses 12 or all 16 calls. The words are stored,
 * then laid out as the generic kernel lays them out. */
RNG_SCHED RNG_AVX512 static void
kernel_avx512(csde_rng_key key, uint64_t g0, size_t ng, uint64_t ctr_bit, double *out)
{
  uint64_t w1[PAIRS], w2[PAIRS];
  uint64_t lo[4 * 8], hi[4 * 8]; /* set h, lane l: words 0:1 at [8 h + l] in lo, 2:3 in hi */
  uint32_t ang[3 * 8][4];        /* normals: word q of call i at [i][q] (calls of a pair) */
  __m512i v[16];
  for (size_t b = 0; b < ng;) {
    uint64_t g = g0 + b;
    int two = ng - b >= 2, nset;
    if (ctr_bit) {
      nset = two ? 4 : 2;
      philox_avx512(key, (UCALLS * g) | ctr_bit, nset, v);
    } else {
      nset = two ? 3 : 2;
      philox_avx512(key, NCALLS * g, nset, v);
    }
    for (int h = 0; h < nset; h++) {
      _mm512_storeu_si512(lo + 8 * h, pack64_512(v[4 * h], v[4 * h + 1]));
      _mm512_storeu_si512(hi + 8 * h, pack64_512(v[4 * h + 2], v[4 * h + 3]));
    }
    for (int k = 0; k < (two ? 2 : 1); k++, b++, out += GROUP) {
      if (ctr_bit) { /* call j of the group: w1 = W(c, 0), w2 = W(c, 2) */
        for (int j = 0; j < PAIRS; j++) {
          w1[j] = lo[UCALLS * k + j];
          w2[j] = hi[UCALLS * k + j];
        }
        uniforms(w1, w2, out);
        uniforms(w1 + PAIRS / 2, w2 + PAIRS / 2, out + PAIRS);
      } else { /* pair 4 q + l: radius W(4 (q div 2) + l, 2 (q mod 2)), angle x[8 + l][q] */
        const int c0 = NCALLS * k;
        for (int i = 0; i < 4; i++) {
          const uint64_t a = lo[c0 + 8 + i], bq = hi[c0 + 8 + i];
          ang[i][0] = (uint32_t)a, ang[i][1] = (uint32_t)(a >> 32);
          ang[i][2] = (uint32_t)bq, ang[i][3] = (uint32_t)(bq >> 32);
        }
        for (int q = 0; q < 4; q++)
          for (int l = 0; l < 4; l++) {
            const int c = c0 + 4 * (q >> 1) + l;
            w1[4 * q + l] = q & 1 ? hi[c] : lo[c];
            w2[4 * q + l] = ang[l][q];
          }
        box_muller(w1, w2, out);
        box_muller(w1 + PAIRS / 2, w2 + PAIRS / 2, out + PAIRS / 2);
      }
    }
  }
}
#endif

/* ---- the transform alone, for tests ---- */

/* Not in rng.h: Box-Muller of one group (out[j] = r cos, out[16 + j] = r sin) from given
 * words wr[16], wa[16], through the transform of the kernel in use, so that a test can
 * reach the extreme radii and the quadrant boundaries. */
void csde_rng_box_muller_words(const uint64_t *wr, const uint64_t *wa, double *out);

static void box_muller_generic(const uint64_t *wr, const uint64_t *wa, double *out)
{
  box_muller(wr, wa, out);
  box_muller(wr + PAIRS / 2, wa + PAIRS / 2, out + PAIRS / 2);
}

#if RNG_HAVE_AVX2
RNG_AVX2 static void box_muller_avx2(const uint64_t *wr, const uint64_t *wa, double *out)
{
  box_muller(wr, wa, out);
  box_muller(wr + PAIRS / 2, wa + PAIRS / 2, out + PAIRS / 2);
}

RNG_AVX512 static void box_muller_avx512(const uint64_t *wr, const uint64_t *wa, double *out)
{
  box_muller(wr, wa, out);
  box_muller(wr + PAIRS / 2, wa + PAIRS / 2, out + PAIRS / 2);
}
#endif

/* ---- choice of kernel: once per process ---- */

/* The kernels, fastest last: each entry's name (CSDE_RNG_KERNEL, csde_rng_kernel_select)
 * and whether this CPU runs it. */
enum { K_UNSET = 0, K_GENERIC, K_AVX2, K_AVX512, K_COUNT };
static _Atomic int kernel_id = K_UNSET;
static const char *const kernel_names[K_COUNT + 1] = {NULL, "generic", "avx2-fma", "avx512",
                                                       NULL};

static int cpu_runs(int id)
{
#if RNG_HAVE_AVX2
  __builtin_cpu_init();
  if (id == K_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (id == K_AVX512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#endif
  return id == K_GENERIC;
}

/* K_* for a name, or -CSDE_EINVAL (unknown name), -CSDE_ENOTSUP (not on this CPU); NULL
 * or "auto": the fastest this CPU runs */
static int kernel_of_name(const char *name)
{
  if (!name || !strcmp(name, "auto")) {
    int id = K_COUNT - 1;
    while (id > K_GENERIC && !cpu_runs(id)) id--;
    return id;
  }
  for (int id = K_GENERIC; id < K_COUNT; id++)
    if (!strcmp(name, kernel_names[id])) return cpu_runs(id) ? id : -CSDE_ENOTSUP;
  return -CSDE_EINVAL;
}

static int kernel_in_use(void)
{
  int id = atomic_load_explicit(&kernel_id, memory_order_relaxed);
  if (id == K_UNSET) {
    /* CSDE_RNG_KERNEL=generic|avx2-fma|avx512|auto; anything else (or absent) means auto */
    id = kernel_of_name(getenv("CSDE_RNG_KERNEL"));
    if (id < 0) id = kernel_of_name(NULL);
    int expect = K_UNSET;
    if (!atomic_compare_exchange_strong(&kernel_id, &expect, id)) id = expect;
  }
  return id;
}

static kernel_fn *kernel(void)
{
  int id = kernel_in_use();
#if RNG_HAVE_AVX2
  if (id == K_AVX512) return kernel_avx512;
  if (id == K_AVX2) return kernel_avx2;
#endif
  (void)id;
  return kernel_generic;
}

const char *csde_rng_kernel_name(void) { return kernel_names[kernel_in_use()]; }

const char *const *csde_rng_kernel_names(void) { return kernel_names + 1; }

int csde_rng_kernel_select(const char *name)
{
  int id = kernel_of_name(name);
  if (id < 0) return -id;
  atomic_store_explicit(&kernel_id, id, memory_order_relaxed);
  return 0;
}

void csde_rng_box_muller_words(const uint64_t *wr, const uint64_t *wa, double *out)
{
#if RNG_HAVE_AVX2
  if (kernel() == kernel_avx512) {
    box_muller_avx512(wr, wa, out);
    return;
  }
  if (kernel() == kernel_avx2) {
    box_muller_avx2(wr, wa, out);
    return;
  }
#endif
  box_muller_generic(wr, wa, out);
}

/* ---- fills ---- */

static void fill(csde_rng_key key, uint64_t index, size_t n, uint64_t ctr_bit, double *out)
{
  kernel_fn *k = kernel();
  double buf[GROUP];
  while (n > 0) {
    uint64_t b = index / GROUP;
    size_t off = (size_t)(index % GROUP);
    if (off == 0 && n >= GROUP) {
      size_t nb = n / GROUP;
      k(key, b, nb, ctr_bit, out);
      index += (uint64_t)nb * GROUP;
      out += nb * GROUP;
      n -= nb * GROUP;
    } else {
      /* a partial group: compute it whole, copy the part asked for */
      size_t m = GROUP - off < n ? GROUP - off : n;
      k(key, b, 1, ctr_bit, buf);
      memcpy(out, buf + off, m * sizeof *out);
      index += m;
      out += m;
      n -= m;
    }
  }
}

void csde_rng_normal(csde_rng_key key, uint64_t index, size_t n, double *out)
{
  fill(key, index, n, 0, out);
}

void csde_rng_uniform(csde_rng_key key, uint64_t index, size_t n, double *out)
{
  fill(key, index, n, UNIFORM_BIT, out);
}

void csde_rng_normal_par(csde_rng_key key, uint64_t index, size_t n, double *out,
                         int nthreads)
{
#ifdef _OPENMP
  int nt = nthreads > 0 ? nthreads : omp_get_max_threads();
  if (nt > 1 && n >= PAR_MIN) {
    (void)kernel(); /* choose the kernel before the threads start */
    /* chunks of PAR_CHUNK groups, aligned to the absolute index, handed out dynamically
     * so that a thread on a busy core takes fewer; the values do not depend on the cut.
     * Offsets from `index` keep the arithmetic clear of 2^64. */
    size_t off = (size_t)(index % GROUP), nb = (off + n - 1) / GROUP + 1;
    size_t nc = (nb + PAR_CHUNK - 1) / PAR_CHUNK;
    if ((size_t)nt > nc) nt = (int)nc;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t c = 0; c < nc; c++) {
      size_t lo = c * PAR_CHUNK * GROUP, hi = lo + PAR_CHUNK * GROUP;
      lo = lo > off ? lo - off : 0;
      hi = hi - off < n ? hi - off : n;
      csde_rng_normal(key, index + lo, hi - lo, out + lo);
    }
    return;
  }
#else
  (void)nthreads;
#endif
  csde_rng_normal(key, index, n, out);
}

const char *csde_rng_name(void)
{
  return "philox4x32-10/box-muller96/group32";
}
