/* Internal: the Langevin corrector of the predictor-corrector sampler (corrsde/solve.h,
 * csde_corrector_parse, has the formula). The solve loop (solve.c) asks the process for
 * g = C grad log p_t(x) and hands it here; this file draws V' z and takes the step. */
#ifndef CSDE_SOLVE_CORRECTOR_H
#define CSDE_SOLVE_CORRECTOR_H

#include "corrsde/solve.h"

typedef struct {
  size_t steps;         /* K (0: off, nothing allocated) */
  double snr;           /* r */
  const csde_cov *C;
  csde_cov_ws *ws;      /* its own: V' z and the C^-1 norms */
  size_t batch, per;    /* samples, tau D values each */
  int threads;
  double *g, *z;        /* g = C s (from the process), then V' z: two states */
} csde_corrector;

int csde_corrector_init(csde_corrector *c, const csde_cov *C, size_t batch, size_t D,
                        int threads, size_t steps, double snr, csde_err *err);
void csde_corrector_free(csde_corrector *c);
/* The key of predictor step n's k-th corrector step (csde_cov_sample's sample indices). */
csde_rng_key csde_corrector_key(uint64_t seed, size_t n, size_t k);
/* One step x <- x + e g + sqrt(2 e) V' z, with g = C s in c->g (already evaluated at x)
 * and z drawn with key for samples first .. first + batch - 1. e per sample by the step
 * rule (snr > 0: e = 2 (snr ||z|| / ||s||_C)^2, norms in C^-1, solve.h), or e_fixed for
 * every sample when snr <= 0 (tests: the chain alone). e_out (batch, may be NULL)
 * receives the step sizes. */
int csde_corrector_langevin(csde_corrector *c, csde_rng_key key, size_t first, double snr,
                            double e_fixed, double *x, double *e_out, csde_err *err);

#endif
