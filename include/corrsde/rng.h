/* corrsde/rng.h: counter-based standard normals (Random123 Philox4x32-10).
 *
 * Every value is a pure function of (seed, stream, index): no state, no sequence.
 * So the same seed gives the same numbers for any thread count, any batch size and any
 * way of splitting the array. Numbers are produced in fixed groups of CSDE_RNG_GROUP
 * consecutive indices, each group from the same code path, so a value never depends on
 * where a fill call starts or stops.
 *
 * Uniforms use 53 random bits (never 0 or 1); normals come from the Box-Muller transform.
 */
#ifndef CORRSDE_RNG_H
#define CORRSDE_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CSDE_RNG_GROUP 16

/* The key of a noise stream: the user's seed and a stream number chosen by the caller
 * (for example a step number), so that independent draws never share counters. */
typedef struct {
  uint64_t seed;
  uint64_t stream;
} csde_rng_key;

/* out[i] = normal(key, index + i) for i < n.  Single-threaded; call it from several
 * threads on disjoint ranges to parallelise (results do not depend on the split). */
void csde_rng_normal(csde_rng_key key, uint64_t index, size_t n, double *out);

/* As csde_rng_normal, split over `nthreads` OpenMP threads (0: the OpenMP default).
 * Bitwise identical to csde_rng_normal for any nthreads. */
void csde_rng_normal_par(csde_rng_key key, uint64_t index, size_t n, double *out,
                         int nthreads);

/* out[i] = uniform(key, index + i) in (0, 1), 53 random bits; the same counters as the
 * normals are NOT used: uniforms come from a separate counter space. */
void csde_rng_uniform(csde_rng_key key, uint64_t index, size_t n, double *out);

/* The generator's identity, for files: "philox4x32-10/box-muller/group16". */
const char *csde_rng_name(void);

#ifdef __cplusplus
}
#endif
#endif
