/* corrsde/schedule.h: variance-preserving noise schedules, continuous and discrete.
 *
 * Continuous VP on t in [0, 1]:  abar(t) = exp(-B(t)),  B(t) = int_0^t beta(s) ds,
 *   sigma(t) = sqrt((1 - abar) / abar) = sqrt(expm1(B)),
 *   logsnr(t) = log(abar / (1 - abar)) = -log(expm1(B)).
 * Types (spec strings for csde_schedule_alloc):
 *   vp-linear[:bmin=0.1,bmax=20]   beta(t) = bmin + t (bmax - bmin),
 *                                  B(t) = bmin t + (bmax - bmin) t^2 / 2;
 *                                  0 <= bmin <= bmax, bmax > 0
 *   cosine[:s=0.008]               abar(t) = f(t)/f(0), f(t) = cos^2(pi/2 (t+s)/(1+s)),
 *                                  beta(t) = pi/(1+s) tan(pi/2 (t+s)/(1+s));
 *                                  0 <= s <= CSDE_SCHEDULE_COSINE_S_MAX (1e4: B(t)'s
 *                                  rounding grows like 1e-16 s, and abar(t) is already
 *                                  (1 - t)^2 to within 1e-8 there).
 *                                  abar(1) = 0: B, beta and sigma are +inf at t = 1.
 *   ddpm-linear[:n=1000,b1=1e-4,bN=0.02]   discrete betas linspace(b1, bN, n), b1, bN in (0, 1)
 *   discrete:betas=b1,b2,...       any betas in (0, 1); csde_schedule_alloc_discrete takes
 *                                  an array instead
 * Discrete schedules: alpha_i = 1 - beta_i, abar_i = prod_{s<=i} alpha_s (abar_0 = 1),
 * computed as exp(sum_{s<=i} log1p(-beta_s)).
 * Step i <-> time t = i / N. Their continuous view makes B piecewise linear between the
 * nodes B(i/N) = -log abar_i, so abar(i/N) equals abar_step(i) exactly (a t within rounding
 * of i/N counts as the node), and on ((i-1)/N, i/N] beta(t) = -N log(1 - beta_i).
 * Continuous schedules discretise as beta_i = beta(i/N) / N (MATH.md).
 */
#ifndef CORRSDE_SCHEDULE_H
#define CORRSDE_SCHEDULE_H

#include <stddef.h>
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csde_schedule csde_schedule;

/* The largest offset s of the cosine schedule (see above). */
#define CSDE_SCHEDULE_COSINE_S_MAX 1e4

/* Parse a spec (see above); params default as shown. The spec string is copied.
 * Unknown names or keys give CSDE_ESPEC (the message lists the valid ones); parameters
 * out of range give CSDE_EDOM. */
CSDE_API int csde_schedule_alloc(csde_schedule **out, const char *spec, csde_err *err);
/* A discrete schedule from betas[0..n-1] = beta_1..beta_N (copied), each in (0, 1). */
CSDE_API int csde_schedule_alloc_discrete(csde_schedule **out, const double *betas, size_t n,
                                 csde_err *err);
CSDE_API void csde_schedule_free(csde_schedule *s); /* accepts NULL */

/* The registry of schedule forms, in its order: the i-th form's name ("cosine"), or NULL
 * past the last; *form ("cosine[:s=0.008]", defaults shown) and *summary (its formula and
 * ranges) are set when not NULL. Static strings. */
CSDE_API const char *csde_schedule_entry(size_t i, const char **form, const char **summary);
/* The names ("vp-linear, cosine, ...") or the forms joined by ", " into buf, cut to
 * len - 1 characters. Return buf. */
CSDE_API char *csde_schedule_names(char *buf, size_t len);
CSDE_API char *csde_schedule_forms(char *buf, size_t len);

/* The canonical spec with every parameter, numbers in their shortest exact form, e.g.
 * "vp-linear:bmin=0.1,bmax=20". A discrete schedule lists all its betas
 * ("discrete:betas=..."); csde_schedule_alloc reads specs up to 4095 characters.
 * Borrowed: valid until csde_schedule_free. */
CSDE_API const char *csde_schedule_spec(const csde_schedule *s);

/* Continuous view, t in [0, 1] (t outside is clamped to it; NaN gives NaN). */
CSDE_API double csde_schedule_beta(const csde_schedule *s, double t);
CSDE_API double csde_schedule_int_beta(const csde_schedule *s, double t); /* B(t) = -log abar(t) */
CSDE_API double csde_schedule_abar(const csde_schedule *s, double t);
CSDE_API double csde_schedule_sigma(const csde_schedule *s, double t);
CSDE_API double csde_schedule_logsnr(const csde_schedule *s, double t);
/* The t in [0, 1] with logsnr(t) = lambda (logsnr is decreasing): the exact inverse,
 * clamped to [0, 1] (lambda above logsnr(0) gives 0, below logsnr(1) gives 1). */
CSDE_API double csde_schedule_t_of_logsnr(const csde_schedule *s, double lambda);

/* Discrete view. N: 0 for continuous schedules (use csde_schedule_discretize). */
CSDE_API size_t csde_schedule_nsteps(const csde_schedule *s);
/* beta_i and abar_i for i in 1..N; abar_step(s, 0) = 1. NaN outside the range. */
CSDE_API double csde_schedule_beta_step(const csde_schedule *s, size_t i);
CSDE_API double csde_schedule_abar_step(const csde_schedule *s, size_t i);

/* betas[i-1] = beta_i, i = 1..N, for an N-step chain:
 *   continuous schedule:              beta_i = beta(i/N) / N  (MATH.md);
 *   discrete schedule with N steps:   its own betas;
 *   discrete schedule, other N:       beta_i = 1 - abar(i/N) / abar((i-1)/N) on its
 *                                     continuous view (so prod_{s<=i} (1 - beta_s)
 *                                     = abar(i/N) up to rounding).
 * Fails with CSDE_EDOM, naming i, if a beta leaves (0, 1). cosine always fails here:
 * its beta(t) is infinite at t = 1. */
CSDE_API int csde_schedule_discretize(const csde_schedule *s, size_t N, double *betas,
                             csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
