/* corrsde/problem.h: the types the solve loop, the processes, the noise and the
 * trajectory writer share: what is being solved (csde_problem, csde_process), the noise
 * kind and the statistics of a solve. It sits below solve.h, so that the modules under
 * the solve loop (src/process, src/noise, src/io) need not include it. The process
 * functions are implemented in src/process/process.c.
 */
#ifndef CORRSDE_PROBLEM_H
#define CORRSDE_PROBLEM_H

#include <stddef.h>
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CSDE_PROC_FORWARD_SDE = 0,
  CSDE_PROC_REVERSE_SDE,
  CSDE_PROC_PFODE,
  CSDE_PROC_PFODE_ENCODE
} csde_process;

/* "forward-sde", "reverse-sde", "pf-ode", "pf-ode-encode". */
CSDE_API int csde_process_parse(const char *name, csde_process *out, csde_err *err);
CSDE_API const char *csde_process_name(csde_process p);
/* The names joined by ", " into buf ("forward-sde, reverse-sde, ..."). Returns buf. */
CSDE_API char *csde_process_names(char *buf, size_t len);
CSDE_API int csde_process_is_sde(csde_process p);

/* x0 post-processing: at every model call at a time t with alpha = sqrt(abar(t)) > 0 and
 * sigma = sqrt(1 - abar(t)) > 0, the model's answer is taken to the denoised estimate
 *   x0 = E[x0 | x_t] = (x + sigma^2 C grad log p_t(x)) / alpha    (Tweedie, MATH.md)
 * (a noise answer: (x - sigma delta) / alpha; x0: itself; v: alpha x - sigma v), changed
 * as below, and taken back to the model's own kind, so that every solver and sampler
 * (drift, denoiser view, ddim, ddpm) sees the changed x0 (src/process/process.c):
 *   CSDE_X0_CLIP       x0 <- min(max(x0, lo), hi), elementwise (lo < hi, finite)
 *   CSDE_X0_THRESHOLD  Imagen's dynamic thresholding (Saharia et al. 2022, "Photorealistic
 *                      Text-to-Image Diffusion Models with Deep Language Understanding",
 *                      Sec. 2.3; diffusers' _threshold_sample with its sample_max_value
 *                      as max): per sample,
 *                        s = min(max(q_p(|x0|), 1), max),  x0 <- min(max(x0, -s), s) / s
 *                      with q_p the p-quantile of the sample's tau D values |x0_i| by
 *                      linear interpolation between order statistics (numpy's and
 *                      torch.quantile's default): h = (n - 1) p, k = floor(h),
 *                      q = v_(k) + (h - k)(v_(k+1) - v_(k)) (numpy's lerp). 0 < p <= 1,
 *                      1 <= max <= inf (default inf: Imagen's, no cap).
 * An entry the change leaves equal (a clip not active, s = 1 with |x0| <= 1) keeps the
 * model's answer bit for bit, as does every entry of a model answer that is not finite
 * (it is reported as before); CSDE_X0_NONE (the default) costs nothing. */
typedef enum { CSDE_X0_NONE = 0, CSDE_X0_CLIP, CSDE_X0_THRESHOLD } csde_x0_kind;

typedef struct {
  csde_x0_kind kind;
  double lo, hi;  /* CSDE_X0_CLIP */
  double p, max;  /* CSDE_X0_THRESHOLD */
} csde_x0_post;

/* The specs of the run settings (run.h) into x0: clip "LO,HI" and threshold
 * "p=P[,max=M]"; NULL, "" or "none" means not given. Both given is refused (they exclude
 * each other). Errors: CSDE_EINVAL with param CSDE_PARAM_X0_CLIP or _X0_THRESHOLD. */
CSDE_API int csde_x0_post_parse(const char *clip, const char *threshold, csde_x0_post *x0,
                                csde_err *err);
/* The settings back as specs ("none" when off), numbers in their shortest exact form:
 * clip "-1,1", threshold "p=0.995,max=inf". Either buffer may be NULL. */
CSDE_API void csde_x0_post_specs(const csde_x0_post *x0, char *clip, size_t clip_len,
                                 char *threshold, size_t threshold_len);

/* Classifier-free guidance (Ho & Salimans 2022), applied by the process layer
 * (src/process/process.c) to every model evaluation of every solver and sampler (drift,
 * denoiser view, ddim, ddpm, adaptive): the model is evaluated with the conditioning
 * (csde_problem.cond) and with the unconditional one (uncond) at the same states, and
 * the answers combine in the model's OWN output space, frame by frame:
 *   out = out_u + w_f (out_c - out_u),   w_f = fn(t, f), else w_frames[f], else w
 * (for a score model this is grad log p_u + w_f (grad log p_c - grad log p_u); every
 * conversion of model.h is affine in out with coefficients that do not depend on the
 * frame, so a scalar w gives the same guided drift whichever kind the model answers).
 * The order at each evaluation: the model call(s) -> the combination -> the conversion
 * of model.h (C out for a score) -> the x0 post-processing (x0 below: clip, threshold)
 * -> the solver. Fresh noise (ancestral, SDE, churn) is untouched: still V' z.
 * One call of batch 2B by default (the states copied twice into a scratch buffer made at
 * csde_solver_alloc: 4 states: x twice and the 2B answers), or, split = 1, two calls of B
 * (1 state more: the unconditional answer). The model gives the same bits either way when
 * its answer for a sample does not depend on the batch around it (then split and 2B give
 * the same states bit for bit). NFE counts forward passes per state: a guided evaluation
 * counts 2. Guided iff uncond != NULL; w (each w_f) must be finite with |w| <= 1e3
 * (CSDE_GUIDANCE_MAX), checked at csde_solver_alloc (fn: at each call) with CSDE_EINVAL,
 * param CSDE_PARAM_GUIDANCE; w_frames or fn without uncond is refused the same way. */
typedef double (*csde_guidance_fn)(double t, size_t frame, void *user); /* w(t, frame) */
typedef struct {
  double w;               /* the scale (used when w_frames and fn are NULL) */
  const double *w_frames; /* tau scales, one per frame (borrowed), or NULL */
  csde_guidance_fn fn;    /* w(t, frame), or NULL; takes precedence */
  void *fn_user;
  const void *uncond;     /* the unconditional conditioning; NULL: not guided */
  int split;              /* 0: one call of 2B samples (default); 1: two calls of B */
} csde_guidance;
#define CSDE_GUIDANCE_MAX 1e3

/* What is being solved. Every pointer is borrowed and must outlive the solver. */
typedef struct {
  csde_process process;
  double T, eps;              /* defaults 1 and 1e-3: the time interval's ends */
  size_t tau, D, batch;       /* state: batch blocks of tau x D, frame-major */
  const csde_cov *C;          /* the noise covariance */
  const csde_schedule *sched; /* beta(t) */
  const csde_model *model;    /* may be NULL for the forward SDE */
  csde_x0_post x0;            /* x0 post-processing (default: none) */
  const void *cond;           /* the model's conditioning (model.h: ctx->cond; opaque to
                                 the library; NULL: none) */
  csde_guidance guidance;     /* classifier-free guidance (default: none) */
} csde_problem;

CSDE_API csde_problem csde_problem_default(void);
/* The process's start and end times: forward (0, T) (a non-VP path: (t_min, T)),
 * reverse/pf-ode (T, eps), encode (eps, T). */
CSDE_API void csde_problem_span(const csde_problem *P, double *t_start, double *t_end);
/* The latest time T a process of this schedule can start from (reverse) or reach
 * (forward): 1, or CSDE_T_COSINE = 0.999 where beta(1) is infinite (cosine); a Gaussian
 * path (edm, ve, rf): its span's t_max, or 0.999 t_max where f or g^2 is infinite there
 * (rf). The earliest time, csde_problem_t_min: the span's t_min (VP, ve, rf: 0; edm:
 * smin); the forward SDE starts there (its data are x at t_min). */
#define CSDE_T_COSINE 0.999
CSDE_API double csde_problem_t_max(const csde_schedule *sched);
CSDE_API double csde_problem_t_min(const csde_schedule *sched);

/* The noise of a solve: fresh per step, or one Brownian path for every step count. */
typedef enum { CSDE_NOISE_STREAM = 0, CSDE_NOISE_PATH } csde_noise_kind;
/* The noise kinds' names ("stream", "path") and one-line summaries (NULL past the last
 * kind), and the kind of a name (CSDE_EINVAL if none). */
CSDE_API const char *csde_noise_kind_name(csde_noise_kind k);
CSDE_API const char *csde_noise_kind_summary(csde_noise_kind k);
CSDE_API int csde_noise_kind_lookup(const char *name, csde_noise_kind *k);

typedef struct {
  size_t nfe, steps, accepted, rejected;
  double wall_seconds;
  int stopped;             /* 1 if the observer stopped the solve */
} csde_solve_stats;

#ifdef __cplusplus
}
#endif
#endif
