/* corrsde/schedule.h: noise schedules: the variance-preserving ones (continuous and
 * discrete) and the Gaussian paths EDM, VE and rectified flow.
 *
 * Every schedule is a Gaussian path x_t = alpha(t) x0 + sigma(t) V' z (docs/MATH.md,
 * "Gaussian paths"), read through the csde_schedule_path_* accessors below.
 *
 * Continuous VP on t in [0, 1]:  abar(t) = exp(-B(t)),  B(t) = int_0^t beta(s) ds,
 *   alpha = sqrt(abar) = exp(-B/2), sigma_path = sqrt(1 - abar) = sqrt(-expm1(-B)),
 *   sigma(t) = sqrt((1 - abar) / abar) = sqrt(expm1(B))  (csde_schedule_sigma: the VE
 *   sigma sigma_path / alpha, not the path's sigma),
 *   logsnr(t) = log(abar / (1 - abar)) = -log(expm1(B)) = 2 lambda(t).
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
 * The Gaussian paths (not variance-preserving; the processes, solvers and models refuse
 * them for now: csde_schedule_require_vp):
 *   edm[:smin=0.002,smax=80]       alpha = 1, sigma = t on t in [smin, smax]: the path's time
 *                                  IS the noise level, as in EDM and k-diffusion (so a
 *                                  sigma-conditioned model, Karras' grid and k-diffusion's
 *                                  samplers read t directly; a map of [0, 1] would only
 *                                  repeat ve). f = 0, g^2 = 2t. 0 < smin < smax.
 *   ve[:smin=0.01,smax=50]         score_sde's VE: alpha = 1, sigma(t) = smin (smax/smin)^t
 *                                  on t in [0, 1]; f = 0, g^2 = 2 log(smax/smin) sigma^2.
 *                                  0 < smin < smax.
 *   rf[:shift=1]                   rectified flow: alpha = 1 - t', sigma = t',
 *                                  t' = s t / (1 + (s - 1) t) (s = shift; s = 1: t' = t) on
 *                                  t in [0, 1]; 1e-6 <= shift <= CSDE_SCHEDULE_RF_SHIFT_MAX
 *                                  (1e6). sigma(0) = 0 and alpha(1) = 0: lambda(0) = +inf,
 *                                  lambda(1) = -inf, f(1) = -inf, g^2(1) = +inf (any
 *                                  conversion dividing by sigma or alpha fails there: a
 *                                  process must stay inside (0, 1) or use the velocity).
 *   Parameters out of range give CSDE_EDOM naming the parameter ("edm: smin = 0 must be > 0").
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
/* The largest shift of rf (its smallest is 1 / CSDE_SCHEDULE_RF_SHIFT_MAX): beyond, the
 * derivatives' s^2 / (1 + (s - 1) t)^2 leave the double range near the span's ends. */
#define CSDE_SCHEDULE_RF_SHIFT_MAX 1e6

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

/* Continuous VP view, t in [0, 1] (t outside is clamped to it; NaN gives NaN).
 * The Gaussian paths (edm, ve, rf) answer with their VP-equivalent, the VP process of the
 * same signal-to-noise ratio (x_t / sqrt(alpha^2 + sigma^2)): abar = alpha^2 / (alpha^2 +
 * sigma^2), B = -log abar = log(1 + sigma^2 / alpha^2), beta = dB/dt = g^2 / (alpha^2 +
 * sigma^2), sigma = sigma_path / alpha, logsnr = 2 lambda, all at the path's own time, t
 * clamped to its span [t_min, t_max] (edm: [smin, smax]) instead of [0, 1]; B(t_min) > 0
 * for edm and ve (B is not int_0^t beta there). rf at t = 1 is cosine's t = 1: B, beta and
 * sigma are +inf. */
CSDE_API double csde_schedule_beta(const csde_schedule *s, double t);
CSDE_API double csde_schedule_int_beta(const csde_schedule *s, double t); /* B(t) = -log abar(t) */
CSDE_API double csde_schedule_abar(const csde_schedule *s, double t);
CSDE_API double csde_schedule_sigma(const csde_schedule *s, double t);
CSDE_API double csde_schedule_logsnr(const csde_schedule *s, double t);
/* The t in [0, 1] with logsnr(t) = lambda (logsnr is decreasing): the exact inverse,
 * clamped to [0, 1] (lambda above logsnr(0) gives 0, below logsnr(1) gives 1); the paths:
 * clamped to their span. */
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
 * its beta(t) is infinite at t = 1. The Gaussian paths (edm, ve, rf) fail with
 * CSDE_ENOTSUP naming the schedule: they have no N-step VP chain. */
CSDE_API int csde_schedule_discretize(const csde_schedule *s, size_t N, double *betas,
                             csde_err *err);

/* ---- The Gaussian path x_t = alpha(t) x0 + sigma(t) V' z of every schedule ----
 * (docs/MATH.md, "Gaussian paths"). t is clamped to the span [t_min, t_max]; NaN gives
 * NaN. For the VP schedules (vp-linear, cosine, ddpm-linear, discrete: the latter two on
 * their continuous view), from B = int_beta(t) and beta = beta(t):
 *   alpha = exp(-B/2), sigma = sqrt(-expm1(-B)), dalpha = -beta alpha / 2,
 *   dsigma = beta abar / (2 sigma), f = -beta / 2, g^2 = beta,
 *   lambda = logsnr / 2, t_of_lambda(l) = t_of_logsnr(2 l), span [0, 1], prior scale 1.
 * At sigma = 0 (t = 0 of a VP schedule or rf) dsigma is +inf for VP (NaN if beta(0) = 0
 * too) and lambda is +inf; where beta is infinite (cosine at t = 1) f = -inf, g^2 = +inf and
 * dalpha, dsigma are NaN. */

/* The path's family: "vp", "edm", "ve" or "rf" (static strings). */
CSDE_API const char *csde_schedule_path_name(const csde_schedule *s);
/* 1 for the variance-preserving schedules (alpha^2 + sigma^2 = 1), else 0. */
CSDE_API int csde_schedule_is_vp(const csde_schedule *s);
/* CSDE_SUCCESS for a VP schedule; else CSDE_ENOTSUP (param CSDE_PARAM_SCHEDULE) with
 * "WHO: schedule 'SPEC' is the PATH path, not supported here yet: only the
 * variance-preserving schedules (vp-linear, cosine, ddpm-linear, discrete) are". For the
 * processes (csde_proc_init) and the exact models until they run on every path. */
CSDE_API int csde_schedule_require_vp(const csde_schedule *s, const char *who, csde_err *err);

CSDE_API double csde_schedule_path_alpha(const csde_schedule *s, double t);
CSDE_API double csde_schedule_path_sigma(const csde_schedule *s, double t);
CSDE_API double csde_schedule_path_dalpha(const csde_schedule *s, double t); /* d alpha / dt */
CSDE_API double csde_schedule_path_dsigma(const csde_schedule *s, double t); /* d sigma / dt */
/* The forward SDE dx = f x dt + g V' dW: f = alpha'/alpha, g^2 = (sigma^2)' - 2 f sigma^2. */
CSDE_API double csde_schedule_path_f(const csde_schedule *s, double t);
CSDE_API double csde_schedule_path_g2(const csde_schedule *s, double t);
/* lambda = log(alpha / sigma) (half the log-SNR; decreasing in t), and the t of a lambda:
 * its exact inverse, clamped to the span (lambda >= lambda(t_min), +inf included, gives
 * t_min; lambda <= lambda(t_max) gives t_max; NaN gives NaN). */
CSDE_API double csde_schedule_path_lambda(const csde_schedule *s, double t);
CSDE_API double csde_schedule_path_t_of_lambda(const csde_schedule *s, double lambda);
/* The natural span: VP [0, 1], edm [smin, smax], ve [0, 1], rf [0, 1] (the ends where
 * alpha or sigma is 0 included: see above). Either pointer may be NULL. */
CSDE_API void csde_schedule_path_span(const csde_schedule *s, double *t_min, double *t_max);
/* The prior's scale p: the reverse processes start from N(0, p^2 C). VP: 1 (today's prior
 * N(0, C)); edm, ve: sigma(t_max) (edm: smax exactly; ve: smax to rounding); rf: 1 =
 * sigma(1), where alpha(1) = 0 makes the prior exact. */
CSDE_API double csde_schedule_path_prior_scale(const csde_schedule *s);

#ifdef __cplusplus
}
#endif
#endif
