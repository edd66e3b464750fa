/* Tests of the small-tau kernel (src/core/smallmm.c): every kernel this CPU runs gives, bit
 * for bit, the defining sequence of its header (an fma chain over j from 0, p = a x + b u,
 * y = fma(s, acc, p)), for every shape of row and column blocks and leftovers; in place;
 * the finiteness sum of u; and the product agrees with BLAS to rounding.
 * The reference is compiled for the baseline x86-64 ISA, which has no FMA instruction, so
 * the compiler cannot contract a x + b u; fma() is libm's, correctly rounded. */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/smallmm.h"
#include "tap.h"

static uint64_t lcg = 88172645463325252ull;
static double unif(void) /* in [-1, 1) */
{
  lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(lcg >> 11) * 0x1p-52 - 1.0;
}

static double *fill(size_t n)
{
  double *p = malloc(n * sizeof *p);
  if (!p) {
    printf("Bail out! out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) p[i] = unif();
  return p;
}

/* the header's definition, one element at a time */
static void reference(size_t m, size_t k, size_t nc, double s, const double *A, size_t lda,
                      const double *z, size_t ldz, double a, const double *x, double b,
                      const double *u, size_t ld, double *y)
{
  for (size_t i = 0; i < m; i++)
    for (size_t c = 0; c < nc; c++) {
      double acc = 0;
      for (size_t j = 0; j < k; j++) acc = fma(A[i * lda + j], z[j * ldz + c], acc);
      size_t o = i * ld + c;
      if (x || u) {
        double p = x ? a * x[o] : 0.0;
        if (u) {
          double bu = b * u[o];
          p = x ? p + bu : bu;
        }
        y[o] = fma(s, acc, p);
      } else {
        y[o] = s * acc;
      }
    }
}

static int same_bits(const double *a, const double *b, size_t m, size_t nc, size_t ld)
{
  for (size_t i = 0; i < m; i++)
    if (memcmp(a + i * ld, b + i * ld, nc * sizeof *a)) return 0;
  return 1;
}

static void test_shapes(int kernel)
{
  static const size_t ms[] = {1, 3, 4, 8, 9, 16, 17, 31, 64, 100, 256};
  static const size_t ncs[] = {1, 7, 8, 15, 16, 33, 1000};
  const char *kn = csde_smallmm_kernel_name(kernel);
  for (size_t a_ = 0; a_ < sizeof ms / sizeof *ms; a_++)
    for (size_t b_ = 0; b_ < sizeof ncs / sizeof *ncs; b_++) {
      size_t m = ms[a_], nc = ncs[b_], ld = nc + 5, ldz = nc + 3, lda = m + 1;
      double *A = fill(m * lda), *z = fill(m * ldz), *x = fill(m * ld), *u = fill(m * ld);
      double *y0 = fill(m * ld), *y1 = malloc(m * ld * sizeof *y1);
      int all = 1;
      /* the four forms: y = s A z, + a x, + b u, + a x + b u */
      for (int form = 0; form < 4; form++) {
        const double *xf = form & 1 ? x : NULL, *uf = form & 2 ? u : NULL;
        memcpy(y1, y0, m * ld * sizeof *y1);
        reference(m, m, nc, -0.75, A, lda, z, ldz, 1.25, xf, 0.5, uf, ld, y0);
        double chk = csde_smallmm(kernel, m, m, nc, -0.75, A, lda, z, ldz, 1.25, xf, 0.5, uf,
                                  ld, y1);
        all = all && same_bits(y0, y1, m, nc, ld) && chk == 0;
      }
      ok(all, "%s: m = k = %zu, nc = %zu: the four forms bitwise the definition", kn, m, nc);
      free(A), free(z), free(x), free(u), free(y0), free(y1);
    }
}

static void test_inplace_and_check(int kernel)
{
  const char *kn = csde_smallmm_kernel_name(kernel);
  size_t m = 16, nc = 100, ld = nc;
  double *A = fill(m * m), *z = fill(m * nc), *x = fill(m * ld), *u = fill(m * ld);
  double *y = malloc(m * ld * sizeof *y), *xi = malloc(m * ld * sizeof *xi);
  memcpy(xi, x, m * ld * sizeof *x);
  csde_smallmm(kernel, m, m, nc, 0.3, A, m, z, nc, 0.9, x, -0.2, u, ld, y);
  csde_smallmm(kernel, m, m, nc, 0.3, A, m, z, nc, 0.9, xi, -0.2, u, ld, xi); /* y = x */
  ok(same_bits(y, xi, m, nc, ld), "%s: in place (y = x) gives the same bits", kn);
  /* the sum 0 u: NaN for a NaN or an infinity anywhere in u (a vector lane or a leftover
   * column), 0 otherwise */
  size_t at[] = {0, 5 * ld + 17, 15 * ld + 99};
  for (size_t q = 0; q < 3; q++) {
    double keep = u[at[q]];
    u[at[q]] = q == 1 ? INFINITY : NAN;
    double chk = csde_smallmm(kernel, m, m, nc, 0.3, A, m, z, nc, 0.9, x, -0.2, u, ld, y);
    ok(isnan(chk), "%s: a %s u at (%zu, %zu) gives a NaN check", kn, q == 1 ? "infinite" : "NaN",
       at[q] / ld, at[q] % ld);
    u[at[q]] = keep;
  }
  free(A), free(z), free(x), free(u), free(y), free(xi);
}

/* y = A z against cblas_dgemm: the same sum in another order, so |diff| <= k eps sum |A||z| */
static void test_blas(int kernel)
{
  const char *kn = csde_smallmm_kernel_name(kernel);
  size_t m = 64, nc = 512;
  double *A = fill(m * m), *z = fill(m * nc), *y = malloc(m * nc * sizeof *y);
  double *g = malloc(m * nc * sizeof *g);
  csde_smallmm(kernel, m, m, nc, 1.0, A, m, z, nc, 0.0, NULL, 0.0, NULL, nc, y);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nc, (int)m, 1.0, A,
              (int)m, z, (int)nc, 0.0, g, (int)nc);
  double worst = 0;
  for (size_t i = 0; i < m; i++)
    for (size_t c = 0; c < nc; c++) {
      double bound = 0;
      for (size_t j = 0; j < m; j++) bound += fabs(A[i * m + j] * z[j * nc + c]);
      bound *= 2.0 * (double)m * 0x1p-53;
      double r = fabs(y[i * nc + c] - g[i * nc + c]) / bound;
      if (r > worst) worst = r;
    }
  ok(worst <= 1.0, "%s: 64 x 64 times 64 x 512 agrees with BLAS within 2 k eps sum|A||z| "
     "(worst %.3f of it)", kn, worst);
  free(A), free(z), free(y), free(g);
}

int main(void)
{
  int any = 0;
  for (int kernel = CSDE_SMALLMM_AVX2; kernel <= CSDE_SMALLMM_AVX512; kernel++) {
    if (!csde_smallmm_runs(kernel)) {
      printf("# %s: this CPU does not run it\n", csde_smallmm_kernel_name(kernel));
      continue;
    }
    any = 1;
    test_shapes(kernel);
    test_inplace_and_check(kernel);
    test_blas(kernel);
  }
  size_t mt = csde_smallmm_max_tau(csde_smallmm_kernel());
  ok(mt <= CSDE_SMALLMM_MAX_K && (mt > 0) == any && csde_smallmm_use(mt) == any &&
         !csde_smallmm_use(mt + 1) && !csde_smallmm_use(0),
     "the kernel in use (%s) is used up to tau = %zu, BLAS above",
     csde_smallmm_kernel_name(csde_smallmm_kernel()), mt);
  return tap_done();
}
