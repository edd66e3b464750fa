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

/* The exponent e of a power of two that brings max |x_i| (i < n, finite values) into
 * [1/2, 1) when it lies outside [2^-500, 2^500], else 0 (also for all zeros). Scaling by
 * 2^-e is exact (but for entries 2^1000 times below the largest, which may round), so a
 * computation on the scaled values scaled back by 2^e cannot overflow in its sums and
 * leaves the bits of ordinary inputs (e = 0) as they were. */
int csde_pow2_scale(const double *x, size_t n);

/* The calling thread's number inside an OpenMP region (0 outside, or without OpenMP). */
int csde_thread_num(void);

/* x <- a x + b u + g w over n values in one pass with `threads` OpenMP threads (u or w
 * may be NULL: no such term). Returns 1 if u holds a non-finite value, else 0. */
int csde_axpby_checked(int threads, size_t n, double a, double *x, double b, const double *u,
                       double g, const double *w);

/* n * m without overflow: 0 on success, -1 on overflow. */
int csde_mul_size(size_t n, size_t m, size_t *out);

/* Seconds for people: "42s", "3m05s", "2h10m", or "--" (not finite or negative). */
void csde_fmt_seconds(double s, char *buf, size_t len);
/* Bytes for people, in decimal units: "512 B", "7.4 GB", "320 PB". */
void csde_fmt_bytes(double bytes, char *buf, size_t len);
/* Seconds on the monotonic clock. */
double csde_now(void);

#endif
