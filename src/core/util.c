#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/util.h"

int csde_mul_size(size_t n, size_t m, size_t *out)
{
  if (m != 0 && n > SIZE_MAX / m) return -1;
  *out = n * m;
  return 0;
}

void *csde_alloc(size_t n, size_t size)
{
  size_t bytes;
  void *p = NULL;
  if (csde_mul_size(n, size, &bytes)) return NULL;
  if (bytes == 0) bytes = 64;
  bytes = (bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, bytes)) return NULL;
  return p;
}

void *csde_calloc(size_t n, size_t size)
{
  void *p = csde_alloc(n, size);
  if (p) memset(p, 0, n * size);
  return p;
}

void csde_free(void *p) { free(p); }

int csde_all_finite(const double *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

int csde_pow2_scale(const double *x, size_t n)
{
  double m = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i])) m = fmax(m, fabs(x[i]));
  if (m == 0 || (m >= 0x1p-500 && m <= 0x1p500)) return 0;
  return ilogb(m) + 1; /* m 2^-e in [1/2, 1) */
}

int csde_axpby_checked(int threads, size_t n, double a, double *x, double b, const double *u,
                       double g, const double *w)
{
  long ln = (long)n;
  double chk = 0; /* sum of 0 u_i: 0, or NaN when some u_i is not finite (any order) */
  (void)threads;
  if (u && w) {
#pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+ : chk) \
    if (threads > 1)
    for (long i = 0; i < ln; i++) {
      chk += 0.0 * u[i];
      x[i] = a * x[i] + b * u[i] + g * w[i];
    }
  } else if (u) {
#pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+ : chk) \
    if (threads > 1)
    for (long i = 0; i < ln; i++) {
      chk += 0.0 * u[i];
      x[i] = a * x[i] + b * u[i];
    }
  } else if (w) {
#pragma omp parallel for simd num_threads(threads) schedule(static) if (threads > 1)
    for (long i = 0; i < ln; i++) x[i] = a * x[i] + g * w[i];
  } else {
#pragma omp parallel for simd num_threads(threads) schedule(static) if (threads > 1)
    for (long i = 0; i < ln; i++) x[i] = a * x[i];
  }
  return !(chk == 0);
}

int csde_thread_num(void)
{
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

void csde_fmt_seconds(double s, char *buf, size_t len)
{
  if (!isfinite(s) || s < 0)
    snprintf(buf, len, "--");
  else if (s < 60)
    snprintf(buf, len, "%.0fs", s);
  else if (s < 3600)
    snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else
    snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

void csde_fmt_bytes(double bytes, char *buf, size_t len)
{
  static const char *const unit[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB"};
  int u = 0;
  while (bytes >= 999.5 && u < 7) {
    bytes /= 1000;
    u++;
  }
  snprintf(buf, len, !u || bytes >= 99.5 ? "%.0f %s" : "%.2g %s", bytes, unit[u]);
}

double csde_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
