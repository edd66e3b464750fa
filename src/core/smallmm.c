/* Small products along the frame axis, fused with the update that follows them:
 *   y[i][c] = fma(s, sum_j A[i][j] z[j][c], a x[i][c] + b u[i][c])
 * for tau x tau matrices with tau <= csde_smallmm_max_tau(kernel) (the colouring V' z of the
 * noise, C x, and the gaussian model's -M_t x).
 *
 * At K = tau = 16, BLAS spends as long packing the operands (and, with beta != 0, on its
 * pass over y) as multiplying. Here a block of R rows x 2 vectors of columns is summed in
 * registers over j (2 R accumulators: R = 8 with 8-wide AVX-512 vectors, R = 4 with 4-wide
 * AVX2), reading z from L1, broadcasting A[i][j], and written once with the update. The
 * column blocks walk the tile so that a block of z (k x 2 vectors) serves every row block.
 *
 * Every kernel gives the same bits: each acc is the chain fma(A[i][j], z[j][c], acc) for
 * j = 0, 1, ..., k - 1 from 0, p = (a x) + (b u) is two roundings of products and one of
 * the sum, and y = fma(s, acc, p). Leftover rows and columns take the same chain one
 * element at a time. The file is compiled without contraction (-ffp-contract=off,
 * meson.build) so that the compiler does not fuse p's products into its sum.
 */
#include "core/smallmm.h"

#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* prefetch distance along a row, in doubles: rows ld apart are many streams, more than the
 * hardware prefetcher follows */
#ifndef PF
#define PF 64
#endif

#define ATTR_AVX2 __attribute__((target("avx2,fma")))
#define ATTR_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

/* One element: the chain of the header comment (shared by every kernel's leftovers). */
#define SMALLMM_ONE(i, c)                                                                   \
  do {                                                                                      \
    double acc_ = 0;                                                                        \
    for (size_t j_ = 0; j_ < k; j_++) acc_ = fma(A[(i)*lda + j_], z[j_ * ldz + (c)], acc_); \
    size_t o_ = (i)*ld + (c);                                                               \
    if (x || u) {                                                                           \
      double p_ = x ? a * x[o_] : 0.0;                                                      \
      if (u) {                                                                              \
        chk += 0.0 * u[o_];                                                                 \
        p_ = x ? p_ + b * u[o_] : b * u[o_];                                                \
      }                                                                                     \
      y[o_] = fma(s, acc_, p_);                                                             \
    } else {                                                                                \
      y[o_] = s * acc_;                                                                     \
    }                                                                                       \
  } while (0)

/* The kernel for vectors V of W doubles: blocks of RB rows x 2W columns, then single rows,
 * then single elements. */
#define SMALLMM_KERNEL(NAME, ATTR, V, W, RB, LOAD, STORE, SET1, ZERO, FMA, MUL, ADD, HSUM)  \
  static inline __attribute__((always_inline)) ATTR void NAME##_block(                      \
      const int R, size_t k, double s, const double *A, size_t lda, const double *z,        \
      size_t ldz, double a, const double *x, double b, const double *u, size_t ld,          \
      double *y, V *chk)                                                                    \
  {                                                                                         \
    V acc[RB][2];                                                                           \
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = ZERO();                             \
    for (size_t j = 0; j < k; j++) {                                                        \
      V z0 = LOAD(z + j * ldz), z1 = LOAD(z + j * ldz + W);                                 \
      for (int r = 0; r < R; r++) {                                                         \
        V ar = SET1(A[(size_t)r * lda + j]);                                                \
        acc[r][0] = FMA(ar, z0, acc[r][0]);                                                 \
        acc[r][1] = FMA(ar, z1, acc[r][1]);                                                 \
      }                                                                                     \
    }                                                                                       \
    V vs = SET1(s), va = SET1(a), vb = SET1(b), v0 = ZERO();                                \
    for (int r = 0; r < R; r++)                                                             \
      for (int h = 0; h < 2; h++) {                                                         \
        size_t o = (size_t)r * ld + (size_t)h * W;                                          \
        V out;                                                                              \
        if (x || u) {                                                                       \
          if (x) _mm_prefetch((const char *)(x + o + PF), _MM_HINT_T0);                     \
          if (u) _mm_prefetch((const char *)(u + o + PF), _MM_HINT_T0);                     \
          V p = x ? MUL(va, LOAD(x + o)) : v0;                                              \
          if (u) {                                                                          \
            V uu = LOAD(u + o);                                                             \
            *chk = ADD(*chk, MUL(v0, uu));                                                  \
            p = x ? ADD(p, MUL(vb, uu)) : MUL(vb, uu);                                      \
          }                                                                                 \
          out = FMA(vs, acc[r][h], p);                                                      \
        } else {                                                                            \
          out = MUL(vs, acc[r][h]);                                                         \
        }                                                                                   \
        STORE(y + o, out);                                                                  \
      }                                                                                     \
  }                                                                                         \
  ATTR static double NAME(size_t m, size_t k, size_t nc, double s, const double *A,         \
                          size_t lda, const double *z, size_t ldz, double a, const double *x, \
                          double b, const double *u, size_t ld, double *y)                  \
  {                                                                                         \
    V vchk = ZERO();                                                                        \
    double chk = 0;                                                                         \
    size_t c0 = 0;                                                                          \
    V zb[CSDE_SMALLMM_MAX_K * 2];                                                           \
    for (; c0 + 2 * W <= nc; c0 += 2 * W) {                                                 \
      for (size_t j = 0; j < k; j++) { /* the block of z, contiguous: rows ld apart would  \
                                          share L1 sets */                                  \
        _mm_prefetch((const char *)(z + j * ldz + c0 + PF), _MM_HINT_T0);                   \
        zb[2 * j] = LOAD(z + j * ldz + c0);                                                 \
        zb[2 * j + 1] = LOAD(z + j * ldz + c0 + W);                                         \
      }                                                                                     \
      size_t i0 = 0;                                                                        \
      for (; i0 + RB <= m; i0 += RB)                                                        \
        NAME##_block(RB, k, s, A + i0 * lda, lda, (const double *)zb, 2 * W, a,             \
                     x ? x + i0 * ld + c0 : NULL, b, u ? u + i0 * ld + c0 : NULL, ld,       \
                     y + i0 * ld + c0, &vchk);                                              \
      for (; i0 < m; i0++)                                                                  \
        NAME##_block(1, k, s, A + i0 * lda, lda, (const double *)zb, 2 * W, a,              \
                     x ? x + i0 * ld + c0 : NULL, b, u ? u + i0 * ld + c0 : NULL, ld,       \
                     y + i0 * ld + c0, &vchk);                                              \
    }                                                                                       \
    for (size_t i = 0; i < m; i++)                                                          \
      for (size_t c = c0; c < nc; c++) SMALLMM_ONE(i, c);                                   \
    return chk + HSUM(vchk);                                                                \
  }

ATTR_AVX2 static inline double hsum256(__m256d v)
{
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

SMALLMM_KERNEL(mm_avx2, ATTR_AVX2, __m256d, 4, 4, _mm256_loadu_pd, _mm256_storeu_pd,
               _mm256_set1_pd, _mm256_setzero_pd, _mm256_fmadd_pd, _mm256_mul_pd,
               _mm256_add_pd, hsum256)
SMALLMM_KERNEL(mm_avx512, ATTR_AVX512, __m512d, 8, 8, _mm512_loadu_pd, _mm512_storeu_pd,
               _mm512_set1_pd, _mm512_setzero_pd, _mm512_fmadd_pd, _mm512_mul_pd,
               _mm512_add_pd, _mm512_reduce_add_pd)

static const char *const kernel_names[] = {"blas", "avx2-fma", "avx512"};

int csde_smallmm_runs(int id)
{
  __builtin_cpu_init();
  if (id == CSDE_SMALLMM_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (id == CSDE_SMALLMM_AVX512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  return 1;
}

static atomic_int chosen = -1;

int csde_smallmm_kernel(void)
{
  int id = atomic_load_explicit(&chosen, memory_order_relaxed);
  if (id >= 0) return id;
  const char *want = getenv("CSDE_SMALLMM_KERNEL");
  id = CSDE_SMALLMM_NONE;
  for (int q = CSDE_SMALLMM_AVX512; q > CSDE_SMALLMM_NONE; q--)
    if (csde_smallmm_runs(q) && (!want || !*want || !strcmp(want, kernel_names[q]))) {
      id = q;
      break;
    }
  atomic_store_explicit(&chosen, id, memory_order_relaxed);
  return id;
}

const char *csde_smallmm_kernel_name(int kernel)
{
  return kernel >= 0 && kernel <= CSDE_SMALLMM_AVX512 ? kernel_names[kernel] : NULL;
}

size_t csde_smallmm_max_tau(int kernel)
{
  return kernel == CSDE_SMALLMM_AVX512 ? CSDE_SMALLMM_MAX_TAU
         : kernel == CSDE_SMALLMM_AVX2 ? CSDE_SMALLMM_MAX_TAU_AVX2
                                        : 0;
}

int csde_smallmm_use(size_t m)
{
  return m >= 1 && m <= csde_smallmm_max_tau(csde_smallmm_kernel());
}

double csde_smallmm(int kernel, size_t m, size_t k, size_t nc, double s, const double *A,
                    size_t lda, const double *z, size_t ldz, double a, const double *x,
                    double b, const double *u, size_t ld, double *y)
{
  if (kernel == CSDE_SMALLMM_AVX512)
    return mm_avx512(m, k, nc, s, A, lda, z, ldz, a, x, b, u, ld, y);
  return mm_avx2(m, k, nc, s, A, lda, z, ldz, a, x, b, u, ld, y);
}
