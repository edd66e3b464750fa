/* corrsde/model.h: score models, the callback users supply, and built-in exact models.
 *
 * A model is a batched callback
 *     int fn(double t, size_t batch, const double *x, double *out, void *user)
 * with x and out each batch * tau * D doubles, frame-major per sample. It declares what
 * `out` holds (csde_model_output); the process layer converts it to the preconditioned
 * score C grad log p_t(x) that every solver needs (MATH.md, "Three ways a model can
 * answer"), so no solver depends on the kind:
 *   SCORE   out = grad log p_t(x)       ->  C out                (one application of C)
 *   CSCORE  out = C grad log p_t(x)     ->  out
 *   NOISE   out = delta_theta           ->  -out / sqrt(1 - abar(t))
 *   X0      out = x0_theta              ->  -(x - sqrt(abar) out) / (1 - abar)
 * Return codes: 0 success; > 0 recoverable (an adaptive solver retries a smaller step);
 * < 0 fatal (the solve stops with CSDE_EBADFUNC and the model's code in the message).
 * The library checks `out` for NaN/Inf after every call.
 */
#ifndef CORRSDE_MODEL_H
#define CORRSDE_MODEL_H

#include <stddef.h>
#include "corrsde/cov.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CSDE_OUT_SCORE = 0,
  CSDE_OUT_CSCORE,
  CSDE_OUT_NOISE,
  CSDE_OUT_X0
} csde_model_output;

typedef int (*csde_model_fn)(double t, size_t batch, const double *x, double *out,
                             void *user);

typedef struct csde_model csde_model;

/* A model from a user callback. `user` is borrowed; free_user (may be NULL) is called on
 * it by csde_model_free. `name` is copied (NULL: "user"). */
int csde_model_alloc(csde_model **out, const char *name, csde_model_fn fn,
                     csde_model_output kind, void *user, void (*free_user)(void *),
                     csde_err *err);
void csde_model_free(csde_model *M); /* accepts NULL */

const char *csde_model_name(const csde_model *M);
csde_model_output csde_model_output_of(const csde_model *M);
const char *csde_model_output_name(csde_model_output k); /* "score", "cscore", ... */
/* Call the callback as is (no conversion, no checks). */
int csde_model_call(const csde_model *M, double t, size_t batch, const double *x,
                    double *out);

/* ---- built-in gaussian model: X_0 ~ N(m, S0 (x) I_D) ----
 * p_t = N(sqrt(abar) m, Sigma_t (x) I_D), Sigma_t = abar S0 + (1 - abar) C; its callback
 * returns the exact C grad log p_t = -C Sigma_t^-1 (x - sqrt(abar) m) (kind CSCORE).
 * C and s are borrowed and must outlive the model. mean has mean_len values: 0 (m = 0),
 * 1 (a scalar), tau (one value per frame) or tau * D; S0 is tau x tau row-major
 * (NULL: 0.25 ar1(0.95)). Both are copied. */
int csde_model_gaussian_alloc(csde_model **out, const csde_cov *C, const csde_schedule *s,
                              size_t D, const double *mean, size_t mean_len,
                              const double *S0, csde_err *err);
/* The same from an HDF5 file: /mean ([tau, D], [tau] or scalar; absent: 0) and
 * /frame_cov ([tau, tau]). */
int csde_model_gaussian_load(csde_model **out, const char *path, const csde_cov *C,
                             const csde_schedule *s, size_t D, csde_err *err);
int csde_model_is_gaussian(const csde_model *M);
/* The exact marginal p_t: mean (tau * D) and frame covariance Sigma_t (tau x tau). */
int csde_model_gaussian_marginal(const csde_model *M, double t, double *mean, double *cov,
                                 csde_err *err);
/* The exact PF-ODE flow from t1 to t2: z(t2) = Phi z(t1) with z = x - sqrt(abar) m.
 * Closed form when S0 and C commute, otherwise the tau x tau propagator integrated to
 * 1e-13 (MATH.md). Phi is tau x tau. */
int csde_model_gaussian_flow(const csde_model *M, double t1, double t2, double *Phi,
                             csde_err *err);
/* Apply the exact flow to a batch: x2 = sqrt(abar2) m + Phi (x1 - sqrt(abar1) m). */
int csde_model_gaussian_flow_apply(const csde_model *M, double t1, double t2, size_t batch,
                                   const double *x1, double *x2, csde_err *err);
/* Draw batch samples of p_t (sample j keyed like csde_cov_sample: global sample
 * first + j, noise index (sample * tau + row) * D + pixel). */
int csde_model_gaussian_sample(const csde_model *M, double t, csde_rng_key key,
                               size_t first, size_t batch, double *x, csde_err *err);

/* ---- built-in gmm model: X_0 ~ sum_k w_k N(m_k, S_k (x) I_D) ----
 * p_t is the mixture of the components' marginals; the callback returns the exact
 * C grad log p_t (kind CSCORE), a nonlinear drift. means are K * tau * D (means_len ==
 * K tau D) or K * tau (one value per frame, the same for every pixel); covs K tau x tau. */
int csde_model_gmm_alloc(csde_model **out, const csde_cov *C, const csde_schedule *s,
                         size_t D, size_t K, const double *weights, const double *means,
                         size_t means_len, const double *covs, csde_err *err);
/* From HDF5: /weights [K], /means [K, tau, D] or [K, tau], /frame_covs [K, tau, tau]. */
int csde_model_gmm_load(csde_model **out, const char *path, const csde_cov *C,
                        const csde_schedule *s, size_t D, csde_err *err);
int csde_model_is_gmm(const csde_model *M);
/* log p_t(x) per sample (logp has batch values). */
int csde_model_gmm_logpdf(const csde_model *M, double t, size_t batch, const double *x,
                          double *logp, csde_err *err);

/* ---- plugins: a shared library loaded with dlopen (see corrsde/plugin.h) ---- */
int csde_model_plugin_load(csde_model **out, const char *path, const char *args, size_t tau,
                           size_t D, csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
