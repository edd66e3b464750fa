/* Counter-based normals and uniforms: Random123 Philox4x32-10 and the Box-Muller transform.
 *
 * Layout of the counter space. Pair p (0 <= p < 2^63) is one Philox call
 *   ctr = (p mod 2^32, p div 2^32 [+ 2^31 for uniforms], stream mod 2^32, stream div 2^32)
 *   key = (seed mod 2^32, seed div 2^32)
 * giving two 64-bit words w1 = ctr'[1]:ctr'[0] and w2 = ctr'[3]:ctr'[2]. Group g (indices
 * 16g .. 16g+15) uses pairs p = 8g + j, j < 8: index 16g + j gets the first value of pair
 * p and index 16g + 8 + j the second (so that vectors store without shuffles). Normals
 * and uniforms differ in bit 63 of the 64-bit counter word (p < 2^63 always), so they
 * never share a Philox call, for any seed and stream.
 *
 *   first = r cos(theta),  second = r sin(theta)
 *   r = sqrt(-2 log u1),   u1 = (w1 div 2^12 + 1/2) 2^-52        in (0, 1)
 *   theta = 2 pi k / 2^53, k = w2 div 2^11                        in [0, 2 pi)
 *   uniforms: first = (w1 div 2^12 + 1/2) 2^-52, second = the same from w2.
 *
 * The log and the sin/cos are evaluated here, by polynomials, not by libm or libmvec:
 * GCC 12 turns sin and cos of one argument into a scalar sincos call, which stops the
 * vectorisation, and libmvec's results may change with the glibc version, which would
 * change the noise of a saved run (besides, -fno-finite-math-only leaves __FAST_MATH__
 * undefined, and glibc then declares no vector variants at all). So the bits depend only
 * on this file, the compiler and the code path; the test checks them against Random123
 * and long double libm to a few ulp.
 *
 * Code paths. A group is CSDE_RNG_GROUP = 16 consecutive indices (8 pairs); a kernel
 * computes blocks of two groups (2b, 2b + 1), each through a fixed-size loop over its 8
 * pairs, vectorised without a remainder, group 2b always in the first slot. A fill call
 * computes a partial first or last block whole, into a stack buffer, and copies the part
 * asked for. Hence a value never depends on the split of a range, nor on the thread
 * count. Two kernels exist: `avx2-fma` (Philox in AVX2 intrinsics, the transform
 * vectorised 4-wide with FMA) on CPUs that have AVX2 and FMA, and `generic` (Random123's
 * scalar Philox, the transform vectorised for the baseline ISA) elsewhere. The first use
 * picks one for the whole process: on a given machine and build every value comes from
 * the same path, so a run is reproducible bit for bit. The uniforms are exact integer
 * arithmetic and agree on both paths; the normals may differ in the last bits between
 * paths (FMA contraction), so CSDE_RNG_KERNEL=generic in the environment gives the same
 * normals on every x86-64 machine that runs this build, at a lower speed.
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

/* A block is 2 groups, 2b and 2b + 1: the unit a kernel computes (4 vectors of 4 pairs
 * in flight hide the latency of Philox and of the divisions). Group 2b always takes the
 * first slot and 2b + 1 the second, so every group has one fixed instruction path. */
enum { GROUP = CSDE_RNG_GROUP, PAIRS = CSDE_RNG_GROUP / 2, BLOCK = 2 * GROUP, ROUNDS = 10 };
#define UNIFORM_BIT (UINT64_C(1) << 63)

/* Below this many values csde_rng_normal_par does not start threads; threads take chunks
 * of PAR_CHUNK blocks (8192 values, 64 KiB). */
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

/* Box-Muller for one group: out[j] = r cos(theta), out[8 + j] = r sin(theta) from the
 * words w1[j], w2[j] of pair j. With y = w2 + 2^61 (mod 2^64): theta = (pi/2)(q + f),
 * q = y div 2^62 the quadrant and f = (y mod 2^62 - 2^61) / 2^62 in [-1/2, 1/2) (kept to
 * 51 bits), so t = (pi/2) f is in [-pi/4, pi/4]. There, with x = t^2 <= (pi/4)^2,
 *   sin t = t (1 + x S(x)),  cos t = 1 + x C(x),
 * S of degree 5 and C of degree 6 (fits as above), relative errors 2e-17 and 6e-19.
 * Then (cos, sin)(theta) is (cos t, sin t) turned by q quarter turns. */
static inline __attribute__((always_inline)) void box_muller(const uint64_t *restrict w1,
                                                             const uint64_t *restrict w2,
                                                             double *restrict out)
{
#pragma omp simd
  for (int j = 0; j < PAIRS; j++) {
    double r = sqrt(neg2log01(open01(w1[j])));
    uint64_t y = w2[j] + (UINT64_C(1) << 61);
    /* (y mod 2^62) div 2^11 - 2^50, exact: (2^52 + m) - (2^52 + 2^50) */
    double fi = from_bits(UINT64_C(0x4330000000000000) | ((y << 2) >> 13)) - 0x1.4p52;
    double t = fi * (0x1.921fb54442d18p0 * 0x1p-51);
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

static inline __attribute__((always_inline)) void uniforms(const uint64_t *restrict w1,
                                                           const uint64_t *restrict w2,
                                                           double *restrict out)
{
#pragma omp simd
  for (int j = 0; j < PAIRS; j++) {
    out[j] = open01(w1[j]);
    out[PAIRS + j] = open01(w2[j]);
  }
}

/* A kernel fills nb whole blocks b0, b0+1, ... into out (32 nb values). */
typedef void kernel_fn(csde_rng_key key, uint64_t b0, size_t nb, uint64_t ctr_bit,
                       double *out);

/* Both kernels are compiled with GCC's pre-register-allocation scheduler (off by default
 * on x86), which interleaves the independent vectors of a block: about 1.2x faster. */
#if defined(__GNUC__) && !defined(__clang__)
#define RNG_SCHED __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define RNG_SCHED
#endif

/* the two groups of a block from its 16 pairs of words */
static inline __attribute__((always_inline)) void block_out(const uint64_t *w1,
                                                            const uint64_t *w2,
                                                            uint64_t ctr_bit, double *out)
{
  if (ctr_bit) {
    uniforms(w1, w2, out);
    uniforms(w1 + PAIRS, w2 + PAIRS, out + GROUP);
  } else {
    box_muller(w1, w2, out);
    box_muller(w1 + PAIRS, w2 + PAIRS, out + GROUP);
  }
}

/* ---- generic: Random123's Philox, any ISA ---- */

RNG_SCHED static void
kernel_generic(csde_rng_key key, uint64_t b0, size_t nb, uint64_t ctr_bit, double *out)
{
  philox4x32_key_t k = {{(uint32_t)key.seed, (uint32_t)(key.seed >> 32)}};
  uint64_t w1[2 * PAIRS], w2[2 * PAIRS];
  for (size_t b = 0; b < nb; b++) {
    for (int j = 0; j < 2 * PAIRS; j++) {
      uint64_t p = ((b0 + b) * 2 * PAIRS + (uint64_t)j) | ctr_bit;
      philox4x32_ctr_t c = {{(uint32_t)p, (uint32_t)(p >> 32), (uint32_t)key.stream,
                             (uint32_t)(key.stream >> 32)}};
      philox4x32_ctr_t r = philox4x32_R(ROUNDS, c, k);
      w1[j] = (uint64_t)r.v[1] << 32 | r.v[0];
      w2[j] = (uint64_t)r.v[3] << 32 | r.v[2];
    }
    block_out(w1, w2, ctr_bit, out + b * BLOCK);
  }
}

/* ---- avx2-fma: Philox on 4 counters per register ---- */

#if RNG_HAVE_AVX2
/* Each 64-bit lane holds one 32-bit Philox word in its low half. A round is
 *   (v0, v1, v2, v3) -> (hi(M1 v2) ^ v1 ^ k0, lo(M1 v2), hi(M0 v0) ^ v3 ^ k1, lo(M0 v0))
 * and _mm256_mul_epu32 reads only the low halves, so the high halves may hold garbage
 * until the words are packed at the end. Four sets of 4 lanes make the block's 16 pairs. */
RNG_SCHED __attribute__((target("avx2,fma"))) static void
kernel_avx2(csde_rng_key key, uint64_t b0, size_t nb, uint64_t ctr_bit, double *out)
{
  enum { NSET = 2 * PAIRS / 4 };
  __m256i k0[ROUNDS], k1[ROUNDS];
  uint32_t a = (uint32_t)key.seed, b = (uint32_t)(key.seed >> 32);
  for (int r = 0; r < ROUNDS; r++) {
    k0[r] = _mm256_set1_epi64x(a);
    k1[r] = _mm256_set1_epi64x(b);
    a += PHILOX_W32_0;
    b += PHILOX_W32_1;
  }
  const __m256i m0 = _mm256_set1_epi64x(PHILOX_M4x32_0), m1 = _mm256_set1_epi64x(PHILOX_M4x32_1);
  const __m256i s0 = _mm256_set1_epi64x((uint32_t)key.stream);
  const __m256i s1 = _mm256_set1_epi64x((uint32_t)(key.stream >> 32));
  const __m256i lane = _mm256_set_epi64x(3, 2, 1, 0);
  uint64_t w1[2 * PAIRS], w2[2 * PAIRS];
  for (size_t i = 0; i < nb; i++) {
    __m256i v0[NSET], v1[NSET], v2[NSET], v3[NSET];
    for (int h = 0; h < NSET; h++) {
      uint64_t p = ((b0 + i) * 2 * PAIRS + 4 * (uint64_t)h) | ctr_bit;
      __m256i c = _mm256_add_epi64(_mm256_set1_epi64x((long long)p), lane);
      v0[h] = c;
      v1[h] = _mm256_srli_epi64(c, 32);
      v2[h] = s0;
      v3[h] = s1;
    }
    for (int r = 0; r < ROUNDS; r++) {
      for (int h = 0; h < NSET; h++) {
        __m256i p0 = _mm256_mul_epu32(v0[h], m0), p1 = _mm256_mul_epu32(v2[h], m1);
        v0[h] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), v1[h]), k0[r]);
        v2[h] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), v3[h]), k1[r]);
        v1[h] = p1;
        v3[h] = p0;
      }
    }
    for (int h = 0; h < NSET; h++) {
      /* w = (v1 << 32) | low half of v0: the blend keeps v0's even 32-bit elements */
      _mm256_storeu_si256((__m256i *)(w1 + 4 * h),
                          _mm256_blend_epi32(v0[h], _mm256_slli_epi64(v1[h], 32), 0xAA));
      _mm256_storeu_si256((__m256i *)(w2 + 4 * h),
                          _mm256_blend_epi32(v2[h], _mm256_slli_epi64(v3[h], 32), 0xAA));
    }
    block_out(w1, w2, ctr_bit, out + i * BLOCK);
  }
}
#endif

/* ---- choice of kernel: once per process ---- */

enum { K_UNSET = 0, K_GENERIC, K_AVX2 };
static _Atomic int kernel_id = K_UNSET;

static int cpu_has_avx2(void)
{
#if RNG_HAVE_AVX2
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

/* K_* for a name, or -CSDE_EINVAL (unknown name), -CSDE_ENOTSUP (not on this CPU) */
static int kernel_of_name(const char *name)
{
  if (!name || !strcmp(name, "auto")) return cpu_has_avx2() ? K_AVX2 : K_GENERIC;
  if (!strcmp(name, "generic")) return K_GENERIC;
  if (!strcmp(name, "avx2-fma")) return cpu_has_avx2() ? K_AVX2 : -CSDE_ENOTSUP;
  return -CSDE_EINVAL;
}

static kernel_fn *kernel(void)
{
  int id = atomic_load_explicit(&kernel_id, memory_order_relaxed);
  if (id == K_UNSET) {
    /* CSDE_RNG_KERNEL=generic|avx2-fma|auto; anything else (or absent) means auto */
    id = kernel_of_name(getenv("CSDE_RNG_KERNEL"));
    if (id < 0) id = kernel_of_name(NULL);
    int expect = K_UNSET;
    if (!atomic_compare_exchange_strong(&kernel_id, &expect, id)) id = expect;
  }
#if RNG_HAVE_AVX2
  if (id == K_AVX2) return kernel_avx2;
#endif
  return kernel_generic;
}

/* Not in rng.h (yet): the name of the kernel in use ("avx2-fma" or "generic"), and a
 * switch for tests and benchmarks ("auto", "generic", "avx2-fma"; 0, CSDE_EINVAL or
 * CSDE_ENOTSUP). Switching while other threads fill is allowed but mixes the paths. */
const char *csde_rng_kernel_name(void)
{
  return kernel() == kernel_generic ? "generic" : "avx2-fma";
}

int csde_rng_kernel_select(const char *name)
{
  int id = kernel_of_name(name);
  if (id < 0) return -id;
  atomic_store_explicit(&kernel_id, id, memory_order_relaxed);
  return 0;
}

/* ---- fills ---- */

static void fill(csde_rng_key key, uint64_t index, size_t n, uint64_t ctr_bit, double *out)
{
  kernel_fn *k = kernel();
  double buf[BLOCK];
  while (n > 0) {
    uint64_t b = index / BLOCK;
    size_t off = (size_t)(index % BLOCK);
    if (off == 0 && n >= BLOCK) {
      size_t nb = n / BLOCK;
      k(key, b, nb, ctr_bit, out);
      index += (uint64_t)nb * BLOCK;
      out += nb * BLOCK;
      n -= nb * BLOCK;
    } else {
      /* a partial block: compute it whole, copy the part asked for */
      size_t m = BLOCK - off < n ? BLOCK - off : n;
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
    /* chunks of PAR_CHUNK blocks, aligned to the absolute index, handed out dynamically
     * so that a thread on a busy core takes fewer; the values do not depend on the cut.
     * Offsets from `index` keep the arithmetic clear of 2^64. */
    size_t off = (size_t)(index % BLOCK), nb = (off + n - 1) / BLOCK + 1;
    size_t nc = (nb + PAR_CHUNK - 1) / PAR_CHUNK;
    if ((size_t)nt > nc) nt = (int)nc;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t c = 0; c < nc; c++) {
      size_t lo = c * PAR_CHUNK * BLOCK, hi = lo + PAR_CHUNK * BLOCK;
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
  return "philox4x32-10/box-muller/group16";
}
