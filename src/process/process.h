/* Internal: the continuous processes' drift and diffusion (MATH.md, "Continuous time"),
 * in model time t with a signed step. The one place these formulas live: solvers call
 * them through the stepper and never re-derive them. */
#ifndef CSDE_PROCESS_PROCESS_H
#define CSDE_PROCESS_PROCESS_H

#include "corrsde/problem.h"

typedef struct {
  csde_problem P;
  size_t n;           /* state length batch * tau * D */
  csde_cov_ws *ws;    /* applies C to a SCORE model's output */
  double *out;        /* the model's raw output, n doubles, for SCORE models and `parts`;
                         otherwise the model writes into the caller's f */
  double *cout;       /* C out for SCORE models with `parts`, else NULL */
  double *raw;        /* where the model wrote last (for the NaN message) */
  double *x0ws;       /* x0 thresholding: min(threads, batch) x tau D doubles, else NULL */
  int threads;
  char model_msg[CSDE_MSG_MAX / 2]; /* the reason a failing model call gave */
  int answered;       /* the first model answer has been checked (answer_check) */
  size_t first;       /* ctx->first: the solve's first_sample (the call is the whole batch) */
  int guided;         /* classifier-free guidance (P.guidance.uncond != NULL) */
  double *gx;         /* guided: one call of 2B: x twice (2n), then the 2B answers (2n);
                         split: the unconditional answer (n) */
  double *gw;         /* guided: the tau scales w_f of the call */
  double *x0;         /* previews: the x0 of the last model evaluation (n), else NULL */
  int x0_valid;       /* x0 holds an evaluation's (reset by the solve loop) */
  char warning[CSDE_MSG_MAX]; /* what that check found: "" or one line */
} csde_proc;

/* parts = 1: csde_proc_drift_parts will be used (it needs the output kept apart). */
int csde_proc_init(csde_proc *pr, const csde_problem *P, int threads, int parts,
                   csde_err *err);
void csde_proc_free(csde_proc *pr);
/* Keep the x0 of every model evaluation (the preview, solve.h's csde_preview_fn):
 * allocates pr->x0 (n doubles); one pass per evaluation from then on. */
int csde_proc_preview_alloc(csde_proc *pr, csde_err *err);
/* Forward passes per evaluation: 2 when guided, else 1 (0 when the drift calls no
 * model). */
unsigned csde_proc_passes(const csde_proc *pr);

/* g(t) = sqrt(beta(t)) for the SDEs, 0 for the ODEs. */
double csde_proc_diffusion(const csde_proc *pr, double t);

/* f = drift at (t, x):
 *   forward SDE   f = -1/2 beta x
 *   reverse SDE   f = -1/2 beta x - beta s,      s = C grad log p_t(x)
 *   PF-ODE        f = -1/2 beta (x + s)
 * with s converted from the model's output (model.h). Calls the model once (not for the
 * forward SDE) and checks its output; `step` only labels messages. Returns 0,
 * CSDE_ERETRY (the model returned > 0: an adaptive solver retries a smaller step, a
 * fixed-step one fails), CSDE_EBADFUNC (the model returned < 0) or CSDE_ENAN. */
int csde_proc_drift(csde_proc *pr, double t, size_t step, const double *x, double *f,
                    csde_err *err);

/* The drift at (t, x) as f = cx x + cs src without forming f, for updates that fuse it
 * into their own pass: src is the model's output, or C times it (SCORE models) written
 * into scratch (state-sized); NULL for the forward SDE (cs = 0). Calls the model like
 * csde_proc_drift but does NOT check src: the caller must, and report a non-finite value
 * with csde_proc_output_error. */
int csde_proc_drift_parts(csde_proc *pr, double t, size_t step, const double *x, double *cx, double *cs, const double **src,
                          csde_err *err);
/* CSDE_ENAN naming the model and the first non-finite entry of its last output. */
int csde_proc_output_error(const csde_proc *pr, double t, size_t step, csde_err *err);

/* The drift at (t, x) as f = cx x + cs dst, for solvers that keep each stage's model
 * output and combine stages from them (dopri5): like csde_proc_drift_parts, with src
 * always dst (the model's output, or C times it, copied there when it was written
 * elsewhere; zeros for the forward SDE), and NOT checked: the caller checks dst in a pass
 * it makes anyway and reports a non-finite value with csde_proc_src_error. */
int csde_proc_drift_src(csde_proc *pr, double t, size_t step, const double *x, double *dst,
                        double *cx, double *cs, csde_err *err);
/* CSDE_ENAN naming the model, the time t of the call and the first non-finite entry of
 * src (for a SCORE model: of C times its output). */
int csde_proc_src_error(const csde_proc *pr, double t, size_t step, const double *src,
                        csde_err *err);

/* sc = C grad log p_t(x) from one model call (kind converted, output checked); sc must
 * not be x. Same return codes as csde_proc_drift. */
int csde_proc_cscore(csde_proc *pr, double t, size_t step, const double *x, double *sc,
                     csde_err *err);

/* jv = J v, J = d(C grad log p_t)/dx at x, from the model's own Jacobian-vector product
 * (model.h, csde_model_set_jvp) converted as its answer is (s = ax x + as src: J v = ax v
 * + as J src v), checked; CSDE_ENOTSUP when the model has none. jv must be neither x nor
 * v. Guidance and the x0 post-processing are not differentiated (the caller refuses
 * them). Same return codes as csde_proc_drift. */
int csde_proc_cscore_jvp(csde_proc *pr, double t, size_t step, const double *x,
                         const double *v, double *jv, csde_err *err);

/* The denoiser view (MATH.md, "The denoiser view"): x = alpha x0 + sigma delta with
 * alpha = sqrt(abar(t)), sigma = sqrt(1 - abar(t)), lambda = log(alpha / sigma) (half
 * the log-SNR), delta ~ N(0, C) along the frames. */
void csde_proc_view(const csde_proc *pr, double t, double *alpha, double *sigma,
                    double *lambda);
/* x0 = E[x0 | x] = (x + sigma^2 s) / alpha, s = C grad log p_t(x) (Tweedie's formula for
 * the noise covariance sigma^2 C), from one model call, checked; x0 must not be x. */
int csde_proc_denoise(csde_proc *pr, double t, size_t step, const double *x, double *x0,
                      csde_err *err);

/* The p-quantile of v[0 .. n-1] by linear interpolation (problem.h, CSDE_X0_THRESHOLD:
 * numpy's default method), n >= 1; v is reordered. O(n) (Floyd-Rivest selection). */
double csde_proc_quantile(double *v, size_t n, double p);

/* 1 if the drift calls the model. */
int csde_proc_uses_model(const csde_proc *pr);

/* The check of the model's first answer against its declared kind (process.c,
 * answer_check), made at that call: "" when it looks right or cannot be judged, else a
 * warning naming the kind it looks like. */
const char *csde_proc_warning(const csde_proc *pr);

#endif
