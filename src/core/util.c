#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
