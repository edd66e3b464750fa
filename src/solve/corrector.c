/* The Langevin corrector (corrsde/solve.h): score_sde's LangevinCorrector preconditioned
 * by C. Under noise N(0, C) the Langevin diffusion dx = C grad log p dt + sqrt(2) V' dW
 * keeps p_t invariant for any fixed C (a constant preconditioner), so one step is
 *   x <- x + e C s + sqrt(2 e) V' z,
 * and score_sde's rule e = 2 (r ||z|| / ||s||)^2 is taken in the metric of that
 * preconditioner, the C^-1 norm: ||s||_C^2 = s^T C s = g^T C^-1 g with g = C s (what the
 * process layer gives), ||z||^2 = (V' z)^T C^-1 (V' z), per sample over its tau x D
 * values (score_sde computes its norms per sample over the whole state). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "core/util.h"
#include "cov/cov_internal.h"
#include "solve/corrector.h"

int csde_corrector_parse(const char *spec, size_t *steps, double *snr, csde_err *err)
{
  *steps = 0;
  *snr = 0.16;
  if (!spec || !*spec || !strcmp(spec, "none")) return CSDE_SUCCESS;
  csde_spec sp;
  static const char *const keys[] = {"snr", "steps", NULL};
  int s = csde_spec_parse(spec, "corrector", &sp, err);
  if (s) return s;
  if (strcmp(sp.name, "langevin"))
    return csde_err_set(err, CSDE_ESPEC,
                        "unknown corrector '%s' (expected none or langevin[:snr=R,steps=K])",
                        sp.name);
  if ((s = csde_spec_check_keys(&sp, keys, err)) ||
      (s = csde_spec_double(&sp, "snr", 0.16, snr, err)))
    return s;
  if (!(*snr > 0))
    return csde_err_set(err, CSDE_EDOM, "'%s': snr = %g, expected snr > 0", spec, *snr);
  const char *k = csde_spec_get(&sp, "steps");
  if (k && !strcmp(k, "0"))
    return csde_err_set(err, CSDE_EDOM, "'%s': steps = 0, expected 1 <= steps <= %d (or "
                        "the corrector none)", spec, CSDE_CORRECTOR_MAX_STEPS);
  if ((s = csde_spec_size(&sp, "steps", 1, steps, err))) return s;
  if (*steps > CSDE_CORRECTOR_MAX_STEPS)
    return csde_err_set(err, CSDE_EDOM, "'%s': steps = %zu, expected 1 <= steps <= %d", spec,
                        *steps, CSDE_CORRECTOR_MAX_STEPS);
  return CSDE_SUCCESS;
}

int csde_corrector_init(csde_corrector *c, const csde_cov *C, size_t batch, size_t D,
                        int threads, size_t steps, double snr, csde_err *err)
{
  memset(c, 0, sizeof *c);
  if (!steps) return CSDE_SUCCESS;
  if (csde_cov_is_singular(C))
    return csde_err_set(err, CSDE_ESING, "the corrector's step rule needs C^-1, and the "
                        "covariance '%s' is singular", csde_cov_spec(C));
  c->steps = steps;
  c->snr = snr;
  c->C = C;
  c->batch = batch;
  c->per = csde_cov_tau(C) * D;
  c->threads = threads > 0 ? threads : 1;
  int s = csde_cov_ws_alloc(&c->ws, C, D, c->threads, err);
  if (s) return s;
  if (!(c->g = csde_alloc(2 * batch * c->per, sizeof(double))))
    return csde_err_set(err, CSDE_ENOMEM, "out of memory for the corrector's 2 states");
  c->z = c->g + batch * c->per;
  return CSDE_SUCCESS;
}

void csde_corrector_free(csde_corrector *c)
{
  csde_cov_ws_free(c->ws);
  csde_free(c->g);
  memset(c, 0, sizeof *c);
}

csde_rng_key csde_corrector_key(uint64_t seed, size_t n, size_t k)
{
  csde_rng_key key = {seed, CSDE_STREAM_CORRECTOR + ((uint64_t)n << 24) + (uint64_t)k};
  return key;
}

int csde_corrector_langevin(csde_corrector *c, csde_rng_key key, size_t first, double snr,
                            double e_fixed, double *x, double *e_out, csde_err *err)
{
  int s = csde_cov_sample_scaled(c->C, c->ws, key, first, c->batch, 1.0, c->z, err);
  if (s) return s;
  for (size_t b = 0; b < c->batch; b++) {
    double *xb = x + b * c->per;
    const double *gb = c->g + b * c->per, *zb = c->z + b * c->per;
    double e = e_fixed;
    if (snr > 0) {
      double gn = 0, zn = 0; /* ||s||_C^2 = g^T C^-1 g, ||z||^2 = (V'z)^T C^-1 (V'z) */
      if ((s = csde_cov_mahalanobis(c->C, c->ws, 1, gb, NULL, NULL, &gn, err)) ||
          (s = csde_cov_mahalanobis(c->C, c->ws, 1, zb, NULL, NULL, &zn, err)))
        return s;
      e = 2 * snr * snr * zn / gn; /* e = 2 (r ||z|| / ||s||_C)^2 */
      if (!(gn > 0) || !isfinite(e)) e = 0; /* s = 0 exactly: no step (score_sde: NaN) */
    }
    if (e_out) e_out[b] = e;
    const double a = sqrt(2 * e);
    const int th = c->threads;
    (void)th;
#ifdef _OPENMP
#pragma omp parallel for num_threads(th) schedule(static) if (th > 1)
#endif
    for (long i = 0; i < (long)c->per; i++) xb[i] += e * gb[i] + a * zb[i]; /* x += e C s + sqrt(2e) V'z */
  }
  return CSDE_SUCCESS;
}
