/* corrsde/likelihood.h: likelihood under correlated noise (MATH.md, docs/MATH.md).
 *
 * Three numbers a researcher compares models by, per sample x (one tau x D block):
 *   - the PF-ODE log-likelihood (csde_likelihood), on every schedule (the VP ones and the
 *     Gaussian paths edm, ve, rf; schedule.h): the encode ODE dx/dt = f(x, t),
 *     f(x, t) = f(t) x - 1/2 g(t)^2 C grad log p_t (VP: -1/2 beta (x + C grad log p_t)),
 *     integrated from eps to T together with
 *       log p_eps(x) = log p_T(x_T) + int_eps^T div f(x_t, t) dt,
 *       div f = tau D f(t) - 1/2 g(t)^2 tr(C grad^2 log p_t)
 *             (VP: -1/2 beta (tau D + tr(C grad^2 log p_t)), computed as such),
 *     the prior p_T = N(0, p^2 C (x) I_D), p = csde_schedule_path_prior_scale (VP, rf: 1;
 *     edm, ve: sigma(t_max)), the reverse processes' start:
 *       log p_T(x_T) = log N(x_T / p; 0, C (x) I_D) - tau D log p,
 *     from the covariance operator (csde_cov_logpdf: any method; a circulant
 *     approximation changes the prior, and says so in its report);
 *   - the discrete bound (csde_elbo, eq. 3 in full) for a discrete schedule;
 *   - bits per dimension of either (csde_bits_per_dim), with the dequantization said.
 */
#ifndef CORRSDE_LIKELIHOOD_H
#define CORRSDE_LIKELIHOOD_H

#include <stddef.h>
#include <stdint.h>
#include "corrsde/cov.h"
#include "corrsde/model.h"
#include "corrsde/problem.h"
#include "corrsde/rng.h"
#include "corrsde/schedule.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CSDE_PARAM_DIVERGENCE "divergence" /* the divergence route, its probes and JVP */
#define CSDE_PARAM_DEQUANT "dequant"       /* the dequantization of integer data */
#define CSDE_PARAM_DATA "data"             /* the data x */

/* ---- bits per dimension and dequantization ----
 * Continuous data (bits = 0) are taken as they are: bpd = nll / (n ln 2), n = tau D the
 * values per sample, nll = -log p(x) in nats.
 * Integer data k in [0, 2^bits) (bits 1..16, e.g. 8 for 8-bit video) are dequantized
 * uniformly into the model's data space, y = scale (k + u) + shift, u ~ U(0, 1)^n, and
 *   -log2 P(k) <= (E_u[-log p(y)] - n log scale) / (n ln 2),
 * so bpd = nll / (n ln 2) - log2(scale) (Theis et al. 2016; Jensen over u). The offset
 * is -log2(scale): 8 for data in [0, 1) (scale 1/256), 7 for [-1, 1) (2/256, the
 * default); score_sde's fixed offset of 7 holds only for the latter (score_sde #51). */
typedef struct {
  int bits;     /* 0: continuous (default); 1..16: integer data */
  double scale; /* > 0, finite; default 2 / 2^bits */
  double shift; /* finite; default -1 */
} csde_dequant;
#define CSDE_DEQUANT_MAX_BITS 16

/* {0, 0, 0}: continuous. */
CSDE_API csde_dequant csde_dequant_continuous(void);
/* Integer data of `bits` bits mapped to [-1, 1): scale 2 / 2^bits, shift -1. */
CSDE_API csde_dequant csde_dequant_bits(int bits);
/* "none" (continuous) or "uniform[:bits=B,scale=S,shift=H]" (defaults 8, 2/2^B, -1);
 * CSDE_ESPEC / CSDE_EDOM naming the key, blamed on CSDE_PARAM_DEQUANT. */
CSDE_API int csde_dequant_parse(const char *spec, csde_dequant *q, csde_err *err);
/* The canonical spec of q ("none" or "uniform:bits=8,scale=0.0078125,shift=-1"). */
CSDE_API char *csde_dequant_spec(const csde_dequant *q, char *buf, size_t len);
/* The stream of the dequantization's u in the front ends (key (seed, CSDE_STREAM_DEQUANT)). */
#define CSDE_STREAM_DEQUANT ((uint64_t)11 << 59)
/* y = scale (k + u) + shift for the batch samples of n values each; u is
 * csde_rng_uniform(key, (first + b) n + i), so a sample's draw does not depend on the
 * batch around it. k must hold integers in [0, 2^bits) (else CSDE_EDOM naming the sample,
 * the index and the value; blamed on CSDE_PARAM_DATA). y may equal k. bits = 0: copied. */
CSDE_API int csde_dequantize(const csde_dequant *q, csde_rng_key key, size_t first,
                             size_t batch, size_t n, const double *k, double *y,
                             csde_err *err);
/* bpd = nll / (n ln 2) - log2(scale) (integer data) or nll / (n ln 2) (continuous). */
CSDE_API double csde_bits_per_dim(double nll, size_t n, const csde_dequant *q);

/* ---- the PF-ODE log-likelihood ---- */

/* How tr(C grad^2 log p_t) is had at each drift evaluation:
 *   exact        the built-in models' closed form: gaussian -D tr(C Sigma_t^-1), gmm the
 *                mixture's Jacobian (src/model); CSDE_ENOTSUP for other models
 *   directional  sum over the tau D unit vectors e_i of e_i^T J e_i, J = d(C s)/dx:
 *                tau D Jacobian-vector products per evaluation (small tau D)
 *   hutchinson   K probes v_k fixed along the trajectory, each giving an unbiased
 *                estimate of the log-likelihood, ll_k = prior + int (tau D f - 1/2 g^2
 *                v_k^T J v_k) dt; the result is their mean, with the standard error
 *                sd_k / sqrt(K) and a Student-t interval (K >= 2)
 *   auto         exact for gaussian and gmm, directional when tau D <=
 *                CSDE_LL_DIRECTIONAL_MAX, else hutchinson */
typedef enum {
  CSDE_DIV_AUTO = 0,
  CSDE_DIV_EXACT,
  CSDE_DIV_DIRECTIONAL,
  CSDE_DIV_HUTCHINSON
} csde_div_kind;
#define CSDE_LL_DIRECTIONAL_MAX 64
/* Probes: Rademacher (+-1, the smaller variance) or standard normal; probe k of global
 * sample j is keyed by (seed, CSDE_STREAM_PROBE + k), indices j tau D .. (j + 1) tau D - 1
 * (csde_rng_uniform < 1/2 gives -1 for Rademacher), so threads, batch and the split of
 * samples over ranks never change a bit. */
typedef enum { CSDE_PROBE_RADEMACHER = 0, CSDE_PROBE_GAUSSIAN } csde_probe_kind;
#define CSDE_STREAM_PROBE ((uint64_t)5 << 60)
/* J v from the model's own Jacobian-vector product (csde_model_set_jvp), or a central
 * difference of the converted score, J v ~ (s(x + h v) - s(x - h v)) / (2 h), s = C grad
 * log p_t, two model evaluations, with h = fd_step (1 + |x_b|_inf) / |v_b|_inf per sample
 * b (no entry of x moves by more than fd_step (1 + |x_b|_inf)): truncation error
 * h^2 |s'''| / 6 and rounding eps |s| / h, both about 1e-11 |s| at the default
 * h = cbrt(eps) = 6.1e-6. auto: the model's when it has one. */
typedef enum { CSDE_JVP_AUTO = 0, CSDE_JVP_MODEL, CSDE_JVP_FD } csde_jvp_kind;
#define CSDE_LL_FD_STEP 6.0554544523933395e-06 /* cbrt(DBL_EPSILON) */

typedef struct {
  const char *solver;  /* an ODE integrator that steps on f itself: euler, heun, rk45,
                          rkck, rk8pd or dopri5 (default); the denoiser-view samplers
                          (ddim, dpmpp*, unipc*, ipndm, edm-heun) are refused */
  double rtol, atol;   /* adaptive when either > 0 (default 1e-6 and 1e-6) */
  size_t steps;        /* fixed steps when rtol = atol = 0 (default 0) */
  const char *grid;    /* fixed steps: the grid (default "uniform") */
  size_t max_nfe;      /* default 10^7 */
  csde_div_kind div;
  size_t probes;       /* hutchinson: K >= 1 (default 8) */
  csde_probe_kind probe;
  csde_jvp_kind jvp;
  double fd_step;      /* central difference: relative step (0: CSDE_LL_FD_STEP) */
  uint64_t seed;       /* the probes' seed */
  size_t first_sample; /* global index of x's first sample (keys its probes) */
  double conf;         /* the interval's confidence (default 0.95) */
  int threads;         /* OpenMP threads for the solve (0: 1) */
  csde_dequant dequant;/* what bpd assumes of x (default continuous) */
} csde_ll_params;

CSDE_API csde_ll_params csde_ll_default_params(void);
/* The route names "auto", "exact", "directional", "hutchinson" (NULL past the last). */
CSDE_API const char *csde_div_kind_name(csde_div_kind k);
/* A divergence spec "exact" | "directional" | "auto" |
 * "hutchinson[:probes=K,probe=rademacher|gaussian,seed=S]", and a JVP spec "auto" |
 * "model" | "fd[:step=H]", into par. CSDE_ESPEC / CSDE_EDOM naming the key, blamed on
 * CSDE_PARAM_DIVERGENCE. */
CSDE_API int csde_div_parse(const char *spec, csde_ll_params *par, csde_err *err);
CSDE_API int csde_jvp_parse(const char *spec, csde_ll_params *par, csde_err *err);

/* One sample's result. */
typedef struct {
  double logp;   /* log p_eps(x) in nats (hutchinson: the mean over probes) */
  double prior;  /* log p_T(x_T) */
  double delta;  /* int_eps^T div f dt (hutchinson: the mean) */
  double se;     /* the standard error of logp: 0 exact/directional, NaN when K = 1 */
  double lo, hi; /* the conf interval of logp (logp itself when se = 0) */
  double bpd;    /* csde_bits_per_dim(-logp, tau D, &par->dequant) */
  size_t nfe;    /* the model's forward passes that saw this sample (its own solve on
                    adaptive steps; on fixed steps the batch's, which every call saw) */
  size_t jvp;    /* the model's JVP calls that saw it (the same way) */
} csde_ll_sample;

typedef struct {
  size_t nfe;            /* model forward passes: drift evaluations + central differences */
  size_t jvp;            /* calls of the model's own JVP */
  size_t steps, rejected;
  double wall_seconds;
  csde_div_kind div;     /* the route taken (never AUTO) */
  csde_jvp_kind jvp_kind;/* the JVP taken (AUTO when the route needs none) */
} csde_ll_stats;

/* The PF-ODE log-likelihood of the P->batch samples x (batch x tau x D) at t = P->eps,
 * integrating to P->T (P->process is ignored: the encode direction is used; P->model,
 * C, sched, cond as in a solve; guidance is refused). out receives batch results; xT
 * (may be NULL) the encoded states. Fixed steps solve the batch at once (the model sees
 * batch samples per call); adaptive steps solve each sample alone (step sizes follow the
 * state's error, so a shared solve would make a sample depend on the others). No
 * allocation once a solve runs; threads and batch never change a bit. stats sum over
 * the solves. Errors name the setting at fault (csde_err_blame). Any schedule: eps and T
 * within the path's span (edm [smin, smax]), and T where f and g^2 are finite (rf: T < 1,
 * e.g. csde_problem_t_max's 0.999; CSDE_EDOM on CSDE_PARAM_SPAN naming the schedule). */
CSDE_API int csde_likelihood(const csde_problem *P, const csde_ll_params *par,
                             const double *x, double *xT, csde_ll_sample *out,
                             csde_ll_stats *stats, csde_err *err);

/* ---- the discrete bound (MATH.md, eq. 3 in full) ----
 * For a discrete VP schedule of N steps (a Gaussian path: CSDE_ENOTSUP naming the
 * schedule, on CSDE_PARAM_SCHEDULE) and a model (any output kind, converted to the noise
 * prediction delta_theta = -sqrt(1 - abar_t) C grad log p at t/N), per sample x0:
 *   -log p(x0) <= L_T + sum_{t=2}^N L_{t-1} + L_0,
 *   L_T     = KL(q(x_N | x0) || N(0, C)) per pixel, summed:
 *             1/2 sum_pixels [tau (1 - abar_N) - tau - tau log(1 - abar_N)
 *                             + abar_N x0^T C^-1 x0]
 *   L_{t-1} = E_delta[ w_t |delta - delta_theta(x_t, t)|^2_{C^-1} ], w_t = beta_t / (2
 *             alpha_t (1 - abar_{t-1})) (csde_discrete_coef.elbo_weight), x_t = sqrt(abar_t)
 *             x0 + sqrt(1 - abar_t) delta
 *   L_0     = -log N(x0; mu_theta(x_1, 1), beta_1 C (x) I_D), the Gaussian decoder of
 *             variance beta_1 (continuous data; for dequantized integer data this bounds
 *             the density of y, and bpd takes the offset above)
 * The sum is either exact over t (every t = 2..N, `draws` noise draws each) or sampled:
 * `tdraws` uniform timesteps t ~ U{2..N} times (N - 1), `draws` each. Draw r of step t is
 * csde_cov_sample's sample idx of the key (seed, CSDE_STREAM_ELBO + (r << 32) + t), idx
 * the sample's global index j (exact sum) or j tdraws + k (k-th sampled step, itself
 * 2 + floor(u (N - 1)), u = csde_rng_uniform((seed, CSDE_STREAM_ELBO), j tdraws + k)),
 * so threads and batch never change a bit. L_0 takes `draws` draws (sampled: `draws`
 * per sampled step, keyed like it, so that each v_k = (N - 1) L_{t_k - 1} + L_0 is an
 * unbiased estimate of Lsum + L_0 and the standard error is sd_k(v) / sqrt(tdraws)).
 * The data are x0 as given (dequant only sets bpd's offset: dequantize integer data
 * first with csde_dequantize, as corrsde.elbo does with the key (seed,
 * CSDE_STREAM_DEQUANT)). C must be invertible (CSDE_ESING). */
#define CSDE_STREAM_ELBO ((uint64_t)9 << 59)
typedef struct {
  size_t draws;        /* noise draws per timestep (default 1; at most 2^20) */
  size_t tdraws;       /* 0: the exact sum over t (default); > 0: that many sampled t */
  uint64_t seed;
  size_t first_sample;
  double conf;         /* default 0.95 */
  int threads;
  csde_dequant dequant;
} csde_elbo_params;

CSDE_API csde_elbo_params csde_elbo_default_params(void);

typedef struct {
  double nll;      /* the bound on -log p(x0): L_T + L_sum + L_0, nats */
  double LT, Lsum, L0;
  double se;       /* the standard error of nll (of Lsum + L_0: L_T is exact): from the
                      spread of the draws, sqrt(sum_t s_t^2 / draws) for the exact sum,
                      sd_k(v) / sqrt(tdraws) sampled; NaN when one draw per term (exact
                      sum with draws = 1, or tdraws = 1) gives none */
  double lo, hi;   /* the conf interval of nll: nll -+ t_{conf, df} se, df = draws - 1
                      (exact sum) or tdraws - 1 (sampled); NaN with se */
  double bpd;      /* csde_bits_per_dim(nll, tau D, &par->dequant) */
} csde_elbo_sample;

/* The bound for the P->batch samples x0 under P->model with P->C and the discrete
 * P->sched (a continuous schedule: CSDE_EINVAL blamed on CSDE_PARAM_SCHEDULE; P->process,
 * T and eps are ignored; P->x0 and P->guidance apply to every model call as in a solve).
 * nfe (may be NULL) receives the forward passes PER SAMPLE: N draws for the exact sum
 * (one batched call per step and draw), 2 tdraws draws sampled (calls of one sample,
 * each at its own t), times 2 when guided. One allocation per call. */
CSDE_API int csde_elbo(const csde_problem *P, const csde_elbo_params *par, const double *x0,
                       csde_elbo_sample *out, size_t *nfe, csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
