/* corrsde/rng.h: counter-based standard normals (Random123 Philox4x32-10).
 *
 * Every value is a pure function of (seed, stream, index): no state, no sequence.
 * So the same seed gives the same numbers for any thread count, any batch size and any
 * way of splitting the array. Numbers are produced in fixed groups of CSDE_RNG_GROUP
 * consecutive indices, each group from the same code path, so a value never depends on
 * where a fill call starts or stops.
 *
 * Uniforms are (k + 1/2) 2^-52 with k 52 random bits: never 0 or 1, mean exactly 1/2 (53
 * bits cannot be had on an even grid strictly inside (0, 1)). Normals come from the
 * Box-Muller transform, 96 random bits per pair: a 64-bit word for the radius (its top 52
 * bits make a uniform as above, so |z| <= 8.57) and 32 bits for the angle (a grid of
 * 2^-32 turns, far finer than any test could see). Bits are reproducible on a given
 * machine and build: the code path (kernel "avx2-fma" on CPUs with AVX2 and FMA, else
 * "generic") is chosen once per process, and the two may differ in the last bits of a
 * normal (never of a uniform); CSDE_RNG_KERNEL=generic in the environment forces the
 * portable one everywhere.
 * Indices must satisfy index + n <= 2^64.
 */
#ifndef CORRSDE_RNG_H
#define CORRSDE_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "corrsde/export.h"

/* The stream of the start states a run draws (csde_run_prior, and a data law's draws by
 * `corrsde sample`): the key {seed, CSDE_STREAM_INIT}. */
#define CSDE_STREAM_INIT ((uint64_t)1 << 63)

#ifdef __cplusplus
extern "C" {
#endif

#define CSDE_RNG_GROUP 32

/* The key of a noise stream: the user's seed and a stream number chosen by the caller
 * (for example a step number), so that independent draws never share counters. */
typedef struct {
  uint64_t seed;
  uint64_t stream;
} csde_rng_key;

/* out[i] = normal(key, index + i) for i < n.  Single-threaded; call it from several
 * threads on disjoint ranges to parallelise (results do not depend on the split). */
CSDE_API void csde_rng_normal(csde_rng_key key, uint64_t index, size_t n, double *out);

/* As csde_rng_normal, split over `nthreads` OpenMP threads (0: the OpenMP default).
 * Bitwise identical to csde_rng_normal for any nthreads. */
CSDE_API void csde_rng_normal_par(csde_rng_key key, uint64_t index, size_t n, double *out,
                         int nthreads);

/* out[i] = uniform(key, index + i) in (0, 1), 52 random bits; the same counters as the
 * normals are NOT used: uniforms come from a separate counter space. */
CSDE_API void csde_rng_uniform(csde_rng_key key, uint64_t index, size_t n, double *out);

/* The kernel in use: "generic", "avx2-fma" or "avx512" (every kernel gives the same
 * bits; they differ in speed). */
CSDE_API const char *csde_rng_kernel_name(void);
/* Every kernel's name, slowest first, NULL-terminated (those this CPU lacks included). */
CSDE_API const char *const *csde_rng_kernel_names(void);
/* Choose the kernel for the whole process: "auto" (the fastest this CPU runs) or a name.
 * Returns 0, CSDE_EINVAL for an unknown name, CSDE_ENOTSUP if this CPU lacks it. */
CSDE_API int csde_rng_kernel_select(const char *name);

/* The generator's identity, for files: "philox4x32-10/box-muller96/group32" (96 random
 * bits per pair of normals, groups of 32). */
CSDE_API const char *csde_rng_name(void);

#ifdef __cplusplus
}
#endif
#endif
