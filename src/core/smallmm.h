/* Small products along the frame axis: y = p + s A z for a tau x tau matrix A (tau <= 256)
 * and a tile of columns, from registers and L1, without BLAS's packing (src/core/smallmm.c). */
#ifndef CSDE_CORE_SMALLMM_H
#define CSDE_CORE_SMALLMM_H

#include <stddef.h>

#include "corrsde/run.h"

/* The largest tau for which each kernel is used; BLAS above it. Measured (bench/README.md):
 * `corrsde-bench cov`'s second table, the kernel against BLAS on y = A x (AVX-512: 1.3x to
 * 1.9x OpenBLAS's dgemm from tau = 32 to 256, 0.8x-1.0x at tau <= 16 with the operands hot
 * in cache), and the EM step of `corrsde-bench sde`, where the kernel also does the update
 * (AVX-512: 1.3x at tau = 16, 1.5x at 64, 1.7x at 256; AVX2: 0.8x-0.97x BLAS on the product
 * alone, 1.1x on the step at tau = 16). */
#define CSDE_SMALLMM_MAX_TAU 256
#define CSDE_SMALLMM_MAX_TAU_AVX2 64
/* The largest k (columns of A) the kernel takes at all (its buffer for a block of z). */
#define CSDE_SMALLMM_MAX_K 256

/* The kernels, fastest first among those this CPU runs: "avx512", "avx2-fma", or none. */
enum { CSDE_SMALLMM_NONE = 0, CSDE_SMALLMM_AVX2 = 1, CSDE_SMALLMM_AVX512 = 2 };

/* The kernel in use (chosen once, by CPU feature; CSDE_SMALLMM_KERNEL=avx2-fma|avx512|blas
 * picks another the CPU runs), or CSDE_SMALLMM_NONE: then callers use BLAS. */
int csde_smallmm_kernel(void);
const char *csde_smallmm_kernel_name(int kernel);
/* 1 when this CPU runs `kernel` (CSDE_SMALLMM_NONE: always). */
int csde_smallmm_runs(int kernel);

/* The largest tau for which `kernel` is used (0 for CSDE_SMALLMM_NONE). */
size_t csde_smallmm_max_tau(int kernel);
/* 1 when the small kernel in use computes an m x m product (m <= its max tau):
 * csde_smallmm_use, public in corrsde/run.h. */

/* For i < m, c < nc:
 *   acc = sum_{j < k} A[i][j] z[j][c], one fma per term, j in order, from acc = 0
 *   p   = a x[i][c] + b u[i][c]   (a term is absent when its pointer is NULL)
 *   y[i][c] = fma(s, acc, p), or s acc when both are absent
 * x, u and y have leading dimension ld (they may alias each other); A has lda, z has ldz.
 * Returns sum of 0 u[i][c] (0, or NaN when some u is not finite), 0 without u.
 * Every kernel gives the same bits. `kernel` is csde_smallmm_kernel()'s value, not NONE;
 * k <= CSDE_SMALLMM_MAX_K. */
double csde_smallmm(int kernel, size_t m, size_t k, size_t nc, double s, const double *A,
                    size_t lda, const double *z, size_t ldz, double a, const double *x,
                    double b, const double *u, size_t ld, double *y);

#endif
