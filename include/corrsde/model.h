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
 *   V       out = v_theta = sqrt(abar) delta - sqrt(1 - abar) x0
 *                                       ->  -x - sqrt(abar / (1 - abar)) out
 *   FLOW    out = u = dx_t/dt (any path)  ->  2 (f x - out) / g^2
 *   FLOW_SHIFTED (rf:shift=S) out = w = dx_t/dt' = delta - x0  ->  FLOW's with u = S w / q^2
 * (on a non-VP path the conversions are in its alpha and sigma: src/process/process.c).
 * Return codes: 0 success; > 0 recoverable (an adaptive solver retries a smaller step);
 * < 0 fatal (the solve stops with CSDE_EBADFUNC and the model's code in the message).
 * The library checks `out` for NaN/Inf after every call.
 *
 * Threads: the built-in models (gaussian, gmm) and the example plugin keep preallocated
 * scratch on the model object, so their callbacks never allocate, but ONE MODEL OBJECT
 * MUST NOT BE EVALUATED FROM TWO THREADS AT ONCE (this includes the gaussian
 * marginal/flow/sample and gmm logpdf calls on it). Use one model per thread. Their
 * callbacks accept out == x and any batch size, and return -1 when Sigma_t is singular
 * (e.g. t = 0 with a singular S0).
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
  CSDE_OUT_X0,
  CSDE_OUT_V,
  CSDE_OUT_FLOW, /* the velocity u = dx_t/dt = alpha' x0 + sigma' V'z (rectified flow) */
  CSDE_OUT_FLOW_SHIFTED /* rf:shift=S only: w = dx_t/dt' = V'z - x0, the velocity in the
                           shifted time t' = S t / (1 + (S - 1) t) that SD3, Wan,
                           HunyuanVideo and LTX predict; u = (dt'/dt) w = S w / q^2,
                           q = 1 + (S - 1) t (= flow at S = 1) */
} csde_model_output;

typedef int (*csde_model_fn)(double t, size_t batch, const double *x, double *out,
                             void *user);

typedef struct csde_model csde_model;
/* What a model call sees beside x, for callbacks made with csde_model_alloc_ctx (and
 * plugins that set fn_ctx). The solvers fill every field; csde_model_call (no problem at
 * hand) fills t, batch and the model's own sizes, with NaN, -1 and NULL for the rest
 * (ncond = batch, first = 0).
 * The time in every parametrisation: abar, sigma and logsnr are the VP view of the path
 * (on edm, sigma is EDM's t); alpha, sigma_path, lambda are the path's own (schedule.h,
 * csde_schedule_path_alpha, _sigma, _lambda at t: on a VP schedule alpha^2 = abar), and
 * t_shifted is rectified flow's t' = S t / (1 + (S - 1) t) (= sigma_path; t itself on the
 * other schedules).
 * Conditioning (src/process/process.c fills it for every call of every solver): a
 * conditional model reads sample j's conditioning as entry first + j of its own array
 * (cond for j < ncond, uncond for j >= ncond at entry first + j - ncond), so one batch
 * cut over several solves (first_sample, e.g. MPI ranks) gives each sample its own.
 * Classifier-free guidance (problem.h, csde_guidance) makes ONE call of 2B samples: the
 * B states twice, [0, B) with cond and [B, 2B) with uncond (ncond = B); or, split, two
 * calls of B (ncond = B, then ncond = 0). The library combines the two answers. */
typedef struct {
  double t;                   /* the solver's time */
  size_t step;                /* the step being taken (0: the first) */
  size_t batch, tau, D;       /* x and out are batch blocks of tau frames x D pixels */
  double abar;                /* abar(t) */
  double sigma;               /* the VE sigma sqrt((1 - abar) / abar) */
  double logsnr;              /* log(abar / (1 - abar)) */
  long index;                 /* discrete schedules: the timestep i of t = i / N; else -1 */
  const csde_cov *C;          /* the noise covariance */
  const csde_schedule *sched; /* the schedule */
  char *errmsg;               /* a failing call may write a one-line reason here (NUL- */
  size_t errlen;              /* terminated, at most errlen bytes): it joins the message */
  /* since plugin ABI 4 (appended, so older plugins' offsets hold): */
  const void *cond;   /* the conditioning of samples [0, ncond) of this call (borrowed:
                         csde_problem.cond; NULL: none). Sample j of the call is global
                         sample first + j (j < ncond) of the caller's conditioning */
  const void *uncond; /* guided calls: the unconditional conditioning of samples
                         [ncond, batch) (csde_guidance.uncond); else NULL */
  size_t ncond;       /* samples [0, ncond) are conditional, [ncond, batch) unconditional;
                         ncond == batch when not guided */
  size_t first;       /* global index of sample 0 of the call (and of sample ncond): the
                         solve's first_sample + the offset of this slice of the batch */
  /* since plugin ABI 6 (appended): the path at t (csde_schedule_path_*) */
  double alpha;      /* alpha(t): x_t = alpha x0 + sigma_path V'z */
  double sigma_path; /* sigma(t) of the path (sigma above is sigma_path / alpha) */
  double lambda;     /* log(alpha / sigma_path) = logsnr / 2 */
  double t_shifted;  /* rf:shift=S: t' = S t / (1 + (S - 1) t); other schedules: t */
} csde_model_ctx;
typedef int (*csde_model_ctx_fn)(const csde_model_ctx *ctx, const double *x, double *out,
                                 void *user);

/* A model from a user callback. `user` is borrowed; free_user (may be NULL) is called on
 * it by csde_model_free. `name` is copied (NULL: "user"). On failure (fn NULL: CSDE_EINVAL;
 * kind not a csde_model_output: CSDE_EINVAL) *out is NULL and `user` stays the caller's. */
CSDE_API int csde_model_alloc(csde_model **out, const char *name, csde_model_fn fn,
                     csde_model_output kind, void *user, void (*free_user)(void *),
                     csde_err *err);
/* The same for a callback that takes the context (csde_model_ctx). */
CSDE_API int csde_model_alloc_ctx(csde_model **out, const char *name, csde_model_ctx_fn fn,
                                  csde_model_output kind, void *user,
                                  void (*free_user)(void *), csde_err *err);
CSDE_API void csde_model_free(csde_model *M); /* accepts NULL */

CSDE_API const char *csde_model_name(const csde_model *M);
CSDE_API csde_model_output csde_model_output_of(const csde_model *M);
CSDE_API const char *csde_model_output_name(csde_model_output k); /* "score", "cscore", ... */
/* Call the callback as is (no conversion, no checks). */
CSDE_API int csde_model_call(const csde_model *M, double t, size_t batch, const double *x,
                    double *out);
/* The same with a context (a plain callback gets ctx->t and ctx->batch). */
CSDE_API int csde_model_call_ctx(const csde_model *M, const csde_model_ctx *ctx,
                                 const double *x, double *out);

/* ---- the model's Jacobian-vector product (optional; corrsde/likelihood.h) ----
 * jv = J v, J = d out / d x the Jacobian of the model's answer in its declared kind, at
 * the states x of the call (ctx as for the model's own call; v and jv are batch x tau x
 * D like x). Return codes as for the model. The likelihood's directional and Hutchinson
 * divergences use it in place of a central difference: one call per probe, and no
 * truncation error. set_jvp replaces any earlier one (NULL: none). */
typedef int (*csde_model_jvp_fn)(const csde_model_ctx *ctx, const double *x, const double *v,
                                 double *jv, void *user);
CSDE_API int csde_model_set_jvp(csde_model *M, csde_model_jvp_fn jvp, csde_err *err);
CSDE_API int csde_model_has_jvp(const csde_model *M);
/* Call it (no checks; CSDE_ENOTSUP when the model has none). */
CSDE_API int csde_model_call_jvp(const csde_model *M, const csde_model_ctx *ctx,
                                 const double *x, const double *v, double *jv);

/* ---- built-in gaussian model: X_0 ~ N(m, S0 (x) I_D) ----
 * p_t = N(sqrt(abar) m, Sigma_t (x) I_D), Sigma_t = abar S0 + (1 - abar) C; its callback
 * returns the exact C grad log p_t = -C Sigma_t^-1 (x - sqrt(abar) m) (kind CSCORE).
 * C and s are borrowed and must outlive the model. mean has mean_len values: 0 (m = 0),
 * 1 (a scalar), tau (one value per frame) or tau * D; S0 is tau x tau row-major
 * (NULL: 0.25 ar1(0.95), S0_ij = 0.25 0.95^|i-j|). Both are copied. S0 must be finite,
 * symmetric and PSD, and S0 + C positive definite (else Sigma_t is singular at every t);
 * errors name the entry or eigenvalue at fault. The dense C (csde_cov_matrix) is taken
 * at alloc, so any method works; the callback costs one Cholesky of Sigma_t per new t
 * and one tau x tau x D GEMM per block. Refused (CSDE_ENOMEM, naming tau and the memory)
 * above CSDE_MODEL_DENSE_MAX_TAU frames: use csde_model_gaussian_alloc_spec there. */
CSDE_API int csde_model_gaussian_alloc(csde_model **out, const csde_cov *C, const csde_schedule *s,
                              size_t D, const double *mean, size_t mean_len,
                              const double *S0, csde_err *err);

/* Largest tau for which the gaussian model forms its dense tau x tau parts (S0, C,
 * M_t, Sigma_t's factor, the flow ODE's matrices: six tau x tau matrices, 3.2 GB at
 * 8192 frames, O(tau^3) time). csde_model_gaussian_alloc (a dense S0) refuses above it;
 * csde_model_gaussian_alloc_spec builds the model, but the score, the marginal
 * covariance, the flow and samples at t > 0 then fail with CSDE_ENOMEM and a message
 * giving tau and the memory it would need. */
#define CSDE_MODEL_DENSE_MAX_TAU 8192
/* csde_model_gaussian_alloc_spec forms the dense parts at alloc up to this tau (so its
 * errors come at alloc, as for csde_model_gaussian_alloc), and on first use above it. */
#define CSDE_MODEL_GAUSSIAN_EAGER_TAU 1024

/* The gaussian model with S0 = s0_var * (the covariance of spec s0_spec for tau frames,
 * method auto: dense below CSDE_COV_AUTO_TAU frames, embed from there on), e.g.
 * ("ar1:rho=0.95", 0.25) for the default S0. The operator is built and owned by the
 * model; s0_spec is copied. The data law is sampled through it:
 * csde_model_gaussian_sample at a t with abar(t) = 1 (t = 0) draws
 *   x = m + sqrt(s0_var) V'_S0 z,  z the normals of csde_cov_sample (key, first + j),
 * which for embed costs FFTs and nothing tau x tau, so a forward process (which never
 * calls the score, only the data law) runs at any tau. The dense parts that the score
 * needs are formed LAZILY: at alloc when tau <= CSDE_MODEL_GAUSSIAN_EAGER_TAU, else on
 * the first call that needs them (the callback, csde_model_gaussian_marginal with a cov,
 * the flow functions, csde_model_gaussian_sample at t > 0) or csde_model_gaussian_prepare.
 * Above CSDE_MODEL_DENSE_MAX_TAU they are refused: the callback returns -1 and
 * csde_model_gaussian_prepare gives the reason, e.g. "gaussian model: the score needs
 * dense tau x tau factors: tau = 100000 needs 480 GB ...". s0_var must be > 0 and finite
 * (CSDE_EDOM); a bad spec gives the covariance's status with its message. */
CSDE_API int csde_model_gaussian_alloc_spec(csde_model **out, const csde_cov *C, const csde_schedule *s,
                                   size_t D, const double *mean, size_t mean_len,
                                   const char *s0_spec, double s0_var, csde_err *err);
/* Form the dense parts now (no-op when they exist): 0, or the error a score call would
 * meet (CSDE_ENOMEM above CSDE_MODEL_DENSE_MAX_TAU; CSDE_ESING when S0 + C is singular).
 * Call it before a solve that evaluates the score, to report that error clearly. A
 * failure is final: later calls return the same error. */
CSDE_API int csde_model_gaussian_prepare(csde_model *M, csde_err *err);
/* 1 when the dense parts are formed (the score is ready). */
CSDE_API int csde_model_gaussian_has_dense(const csde_model *M);
/* The same from an HDF5 file: /mean ([tau, D], [tau] or scalar; absent: 0) and
 * /frame_cov ([tau, tau]). A wrong shape gives CSDE_EBADLEN naming the shape found and
 * the one expected; a missing file or /frame_cov gives CSDE_EIO. */
CSDE_API int csde_model_gaussian_load(csde_model **out, const char *path, const csde_cov *C,
                             const csde_schedule *s, size_t D, csde_err *err);
CSDE_API int csde_model_is_gaussian(const csde_model *M);
/* Let the gaussian model's callback use `threads` OpenMP threads (default 1) over tiles
 * of a fixed width: the output does not depend on the count. Allocates its scratch. */
CSDE_API int csde_model_gaussian_set_threads(csde_model *M, int threads, csde_err *err);
/* The exact marginal p_t: mean (tau * D) and frame covariance Sigma_t (tau x tau).
 * Either may be NULL. t in [0, 1] (else CSDE_EDOM). */
CSDE_API int csde_model_gaussian_marginal(const csde_model *M, double t, double *mean, double *cov,
                                 csde_err *err);
/* The exact PF-ODE flow from t1 to t2: z(t2) = Phi z(t1) with z = x - sqrt(abar) m.
 * Closed form when S0 and C commute, otherwise the tau x tau propagator integrated to
 * 1e-13 (MATH.md). Phi is tau x tau. */
CSDE_API int csde_model_gaussian_flow(const csde_model *M, double t1, double t2, double *Phi,
                             csde_err *err);
/* Apply the exact flow to a batch: x2 = sqrt(abar2) m + Phi (x1 - sqrt(abar1) m).
 * x2 may equal x1. */
CSDE_API int csde_model_gaussian_flow_apply(const csde_model *M, double t1, double t2, size_t batch,
                                   const double *x1, double *x2, csde_err *err);
/* Draw batch samples of p_t: x = sqrt(abar) m + L xi with Sigma_t = L L^T (Cholesky;
 * an eigen factor if Sigma_t is only semi-definite). Sample j is global sample first + j,
 * xi[(sample * tau + row) * D + pixel] = csde_rng_normal(key, that index), so a sample is
 * the same alone or in any batch. */
CSDE_API int csde_model_gaussian_sample(const csde_model *M, double t, csde_rng_key key,
                               size_t first, size_t batch, double *x, csde_err *err);

/* ---- built-in gmm model: X_0 ~ sum_k w_k N(m_k, S_k (x) I_D) ----
 * p_t is the mixture of the components' marginals; the callback returns the exact
 * C grad log p_t (kind CSCORE), a nonlinear drift. means are K * tau * D (means_len ==
 * K tau D) or K * tau (one value per frame, the same for every pixel); covs K tau x tau.
 * Weights must be positive and finite and are normalised to sum to 1; each S_k is checked
 * like the gaussian S0. Responsibilities are per sample (the whole tau x D block), with
 * log-sum-exp. Everything is copied; C and s are borrowed. Weights are normalised
 * without overflow (divided by the largest first). Refused with CSDE_ENOMEM (naming tau
 * and the memory) above CSDE_MODEL_DENSE_MAX_TAU frames, as is csde_model_gmm_load. */
CSDE_API int csde_model_gmm_alloc(csde_model **out, const csde_cov *C, const csde_schedule *s,
                         size_t D, size_t K, const double *weights, const double *means,
                         size_t means_len, const double *covs, csde_err *err);
/* From HDF5: /weights [K], /means [K, tau, D] or [K, tau], /frame_covs [K, tau, tau]. */
CSDE_API int csde_model_gmm_load(csde_model **out, const char *path, const csde_cov *C,
                        const csde_schedule *s, size_t D, csde_err *err);
CSDE_API int csde_model_is_gmm(const csde_model *M);
/* log p_t(x) per sample (logp has batch values): the density of the whole tau x D block,
 * constant included. */
CSDE_API int csde_model_gmm_logpdf(const csde_model *M, double t, size_t batch, const double *x,
                          double *logp, csde_err *err);
/* The data law's parts, borrowed from M (valid while it lives; each pointer may be NULL):
 * K components, cum their K cumulative normalised weights (cum[K-1] = 1), means K x tau
 * x D (a [K, tau] mean broadcast), fac the K factors tau x tau F_k = V sqrt(max(lambda,
 * 0)) with F_k F_k^T = S_k (made on the first call here or to csde_model_gmm_sample;
 * CSDE_EFAILED if the eigensolver fails). CSDE_EINVAL if M is not the gmm model. */
CSDE_API int csde_model_gmm_law(const csde_model *M, size_t *K, const double **cum,
                                const double **means, const double **fac, csde_err *err);
/* Draw batch samples of the data law p_0 into x (batch * tau * D): sample j (global
 * first + b) picks component k, the first with u < cum_k (u = csde_rng_uniform(key, j),
 * cum_k the normalised cumulative weights), then x = m_k + F_k z, z the normals (key,
 * (j tau + row) D + pixel) (the layout of csde_cov_sample) and F_k = V sqrt(max(lambda,
 * 0)) from S_k's eigen decomposition (made on the first draw and kept). The same bits
 * for any batch split. CSDE_EINVAL if M is not the gmm model. */
CSDE_API int csde_model_gmm_sample(const csde_model *M, csde_rng_key key, size_t first,
                                   size_t batch, double *x, csde_err *err);

/* ---- the built-in models from a spec string ----
 *   gaussian[:mean=M,std=S,rho=R]  m = M everywhere, S0 = S^2 ar1(R) (S >= 0, |R| <= 1;
 *                                  defaults below): csde_model_gaussian_alloc_spec when
 *                                  S > 0 and |R| < 1, else the dense S^2 R^|i-j|
 *   gaussian:file=P.h5             csde_model_gaussian_load (no other key)
 *   gmm:file=P.h5                  csde_model_gmm_load
 * canon receives the spec with every parameter shown (e.g.
 * "gaussian:mean=0,std=0.5,rho=0.95"; free()). CSDE_ESPEC for a malformed spec, an
 * unknown key or model, CSDE_EDOM for a bad std or rho, else the model's own error. C
 * and s are borrowed by the model; tau is csde_cov_tau(C). */
#define CSDE_MODEL_GAUSSIAN_MEAN 0.0
#define CSDE_MODEL_GAUSSIAN_STD 0.5
#define CSDE_MODEL_GAUSSIAN_RHO 0.95
CSDE_API int csde_model_spec_alloc(csde_model **out, const char *spec, const csde_cov *C,
                                   const csde_schedule *s, size_t D, char **canon,
                                   csde_err *err);

/* ---- plugins: a shared library loaded with dlopen (see corrsde/plugin.h) ----
 * args may be NULL (""). The model's name is the plugin's name (else the file name). */
CSDE_API int csde_model_plugin_load(csde_model **out, const char *path, const char *args, size_t tau,
                           size_t D, csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
