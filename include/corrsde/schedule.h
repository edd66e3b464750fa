/* corrsde/schedule.h: variance-preserving noise schedules, continuous and discrete.
 *
 * Continuous VP on t in [0, 1]:  abar(t) = exp(-B(t)),  B(t) = int_0^t beta(s) ds,
 *   sigma(t) = sqrt((1 - abar) / abar),  logsnr(t) = log(abar / (1 - abar)).
 * Types:
 *   vp-linear:bmin=0.1,bmax=20     beta(t) = bmin + t (bmax - bmin)
 *   cosine[:s=0.008]               abar(t) = f(t)/f(0), f(t) = cos^2(pi/2 (t+s)/(1+s))
 *   ddpm-linear[:n=1000,b1=1e-4,bN=0.02]   discrete betas linspace(b1, bN, n)
 *   discrete (csde_schedule_alloc_discrete)  any array beta_1..beta_N in (0, 1)
 * Discrete schedules: alpha_i = 1 - beta_i, abar_i = prod_{s<=i} alpha_s (abar_0 = 1).
 * Step i <-> time t = i / N. Their continuous view makes B piecewise linear between the
 * nodes B(i/N) = -log abar_i, so abar(i/N) equals abar_i exactly, and on ((i-1)/N, i/N]
 * beta(t) = -N log(1 - beta_i).
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

/* Parse a spec (see above); params default as shown. The spec string is copied. */
int csde_schedule_alloc(csde_schedule **out, const char *spec, csde_err *err);
/* A discrete schedule from betas[0..n-1] = beta_1..beta_N (copied), each in (0, 1). */
int csde_schedule_alloc_discrete(csde_schedule **out, const double *betas, size_t n,
                                 csde_err *err);
void csde_schedule_free(csde_schedule *s); /* accepts NULL */

const char *csde_schedule_spec(const csde_schedule *s); /* canonical, all params */

/* Continuous view, t in [0, 1]. */
double csde_schedule_beta(const csde_schedule *s, double t);
double csde_schedule_int_beta(const csde_schedule *s, double t); /* B(t) = -log abar(t) */
double csde_schedule_abar(const csde_schedule *s, double t);
double csde_schedule_sigma(const csde_schedule *s, double t);
double csde_schedule_logsnr(const csde_schedule *s, double t);
/* The t in [0, 1] with logsnr(t) = lambda (logsnr is decreasing); clamps to [0, 1]. */
double csde_schedule_t_of_logsnr(const csde_schedule *s, double lambda);

/* Discrete view. N: 0 for continuous schedules (use csde_schedule_discretize). */
size_t csde_schedule_nsteps(const csde_schedule *s);
/* beta_i, alpha_i, abar_i for i in 1..N (abar_0 = 1). NaN outside the range. */
double csde_schedule_beta_step(const csde_schedule *s, size_t i);
double csde_schedule_abar_step(const csde_schedule *s, size_t i);

/* betas[i-1] = beta_i for an N-step chain: the schedule's own betas if it is discrete
 * with N steps, otherwise beta(i/N)/N. Fails with CSDE_EDOM if a beta leaves (0, 1). */
int csde_schedule_discretize(const csde_schedule *s, size_t N, double *betas,
                             csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
