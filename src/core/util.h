/* Internal helpers shared by the modules: aligned allocation and small checks. */
#ifndef CSDE_CORE_UTIL_H
#define CSDE_CORE_UTIL_H

#include <stddef.h>

/* 64-byte aligned allocation (NULL on failure or overflow of n * size); free with
 * csde_free. Never used in a hot loop. */
void *csde_alloc(size_t n, size_t size);
void *csde_calloc(size_t n, size_t size);
void csde_free(void *p);

/* 1 if every x[i], i < n, is finite. */
int csde_all_finite(const double *x, size_t n);

/* n * m without overflow: 0 on success, -1 on overflow. */
int csde_mul_size(size_t n, size_t m, size_t *out);

#endif
