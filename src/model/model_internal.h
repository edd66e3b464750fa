/* Internal layout of models (src/model). Not installed.
 *
 * A csde_model is a callback plus what `out` holds. Built-in models (gaussian, gmm) keep
 * their state in `priv`, which is also the callback's `user`; a plugin model keeps the
 * dlopen handle, closed after the plugin's free(user). model.c also holds the small
 * dense helpers the built-ins share (Cholesky of a tau x tau matrix, input checks).
 */
#ifndef CSDE_MODEL_INTERNAL_H
#define CSDE_MODEL_INTERNAL_H

#include <stddef.h>

#include "corrsde/model.h"

/* What made the model. */
typedef enum {
  CSDE_MODEL_USER = 0, /* csde_model_alloc */
  CSDE_MODEL_GAUSSIAN,
  CSDE_MODEL_GMM,
  CSDE_MODEL_PLUGIN
} csde_model_tag;

struct csde_model {
  char *name;                /* owned copy */
  csde_model_fn fn;          /* one of fn and fn_ctx */
  csde_model_ctx_fn fn_ctx;
  csde_model_output kind;
  void *user;                /* passed to fn; freed with free_user */
  void (*free_user)(void *);
  csde_model_tag tag;
  void *priv;                /* built-ins: their state (== user); NULL otherwise */
  void *dl;                  /* plugins: the dlopen handle, closed after free_user */
  size_t tau, D;             /* sizes the model was made for; 0 when unknown (user) */
  csde_model_jvp_fn jvp;     /* its Jacobian-vector product, or NULL */
};

/* Never called: the plain callback a context model (fn_ctx) is wrapped with while the
 * checks of csde_model_alloc and csde_model_wrap run; fn is then set to NULL. */
int csde_model_ctx_placeholder(double t, size_t batch, const double *x, double *out,
                               void *user);

/* Wrap a callback into a model with the given tag and sizes. Unlike csde_model_alloc, a
 * failure calls free_user(user) (if both are not NULL): ownership always passes. */
int csde_model_wrap(csde_model **out, const char *name, csde_model_fn fn,
                    csde_model_output kind, void *user, void (*free_user)(void *),
                    csde_model_tag tag, size_t tau, size_t D, csde_err *err);

/* Frames and pixels the model was made for (0, 0 for a user callback). */
void csde_model_dims(const csde_model *M, size_t *tau, size_t *D);

/* ---- dense tau x tau helpers (row-major) ---- */

/* In place A = L L^T, L lower with the strict upper triangle set to 0. Returns 0, or
 * 1 + j when pivot j is not positive (A not positive definite; A is then garbage). */
size_t csde_mat_chol(double *A, size_t n);
/* B <- A^-1 B for A = L L^T: B is n x m with leading dimension ldb. */
void csde_mat_chol_solve(const double *L, size_t n, size_t m, double *B, size_t ldb);
/* log det A = 2 sum log L_jj. */
double csde_mat_chol_logdet(const double *L, size_t n);
/* S must be finite, symmetric (|S_ij - S_ji| <= 1e-12 max|S|) and PSD (eigenvalues >=
 * -8 n eps max|lambda|); it is then made exactly symmetric in place. `what` names S in
 * the messages. Allocates (setup only). */
int csde_mat_check_cov(double *S, size_t n, const char *what, csde_err *err);

/* The exact models' path (x_t = alpha x0 + sigma V' z, MATH.md "Gaussian paths"), with
 * the VP expressions they had before the paths on a VP schedule (the same bits):
 *   csde_one_minus_abar   sigma^2   (VP: 1 - abar = -expm1(-B), exact near abar = 1)
 *   csde_model_alpha2     alpha^2   (VP: abar)
 *   csde_model_alpha      alpha     (VP: sqrt(abar))
 * csde_model_check_t: t in the path's span (VP: [0, 1]), else CSDE_EDOM naming FN and
 * WHICH. */
double csde_one_minus_abar(const csde_schedule *s, double t);
double csde_model_alpha2(const csde_schedule *s, double t);
double csde_model_alpha(const csde_schedule *s, double t);
int csde_model_check_t(const csde_schedule *s, double t, const char *fn, const char *which,
                       csde_err *err);

/* ---- the exact divergence of the preconditioned score (PF-ODE likelihood) ---- */

/* tr[b] = tr(C grad_x^2 log p_t(x_b)) = div_x (C grad log p_t)(x_b) for the built-in
 * models (sample b of batch, each a tau x D block, frame-major as everywhere). No
 * allocation (scratch made at the model's alloc or by csde_model_exact_cdiv_prepare);
 * CSDE_ENOTSUP for a model without a closed form (user, plugin). */
int csde_model_exact_cdiv(const csde_model *M, double t, size_t batch, const double *x,
                          double *tr, csde_err *err);
/* Make the scratch it needs (allocates; call once before a solve). 0 or an error. */
int csde_model_exact_cdiv_prepare(csde_model *M, csde_err *err);
/* The built-ins' halves (gaussian.c, gmm.c), called by the two above (model.c) after
 * their checks (M of the right tag, t in [0, 1], pointers set). */
int csde_model_gaussian_cdiv(const csde_model *M, double t, size_t batch, double *tr,
                             csde_err *err);
int csde_model_gmm_cdiv(const csde_model *M, double t, size_t batch, const double *x,
                        double *tr, csde_err *err);
int csde_model_gmm_cdiv_prepare(csde_model *M, csde_err *err);

/* ---- gaussian internals (also used by the tests) ---- */

/* Which route csde_model_gaussian_flow takes. */
typedef enum {
  CSDE_FLOW_AUTO = 0, /* closed form when S0 C = C S0, else the ODE */
  CSDE_FLOW_CLOSED,   /* Sigma_t2^1/2 Sigma_t1^-1/2 (CSDE_ENOTSUP if they do not commute) */
  CSDE_FLOW_ODE       /* the tau x tau propagator ODE, rk8pd at rtol = atol = 1e-13 */
} csde_flow_route;

int csde_model_gaussian_flow_route(const csde_model *M, double t1, double t2,
                                   csde_flow_route route, double *Phi, csde_err *err);
/* 1 if S0 and C commute (to 1e-12 relative), so the closed-form flow applies. */
int csde_model_gaussian_commutes(const csde_model *M);

#endif
