/* corrsde/cov.h: covariance operators along the frame axis.
 *
 * A csde_cov is a symmetric PSD tau x tau matrix C acting on frame-major blocks
 * [tau][D] (x[frame * D + pixel]); a batch is nblk such blocks back to back. It offers
 *   y = C x,   y = V' z (colour white noise, V' V'^T = C),   y = C^-1 x,
 *   log det C, and the Mahalanobis form x^T C^-1 x per pixel.
 *
 * Families (spec strings, see csde_cov_alloc): the registry csde_cov_family_entry lists
 * them (`corrsde cov --help` prints it). Methods (csde_cov_method_entry):
 *   dense            exact; eigen factor V sqrt(S) for V'; Cholesky solve for C^-1.
 *   dense-cholesky   exact; V' is the Cholesky factor L.
 *   circulant-tchan  T. Chan's circulant approximation of a Toeplitz C (changes the model).
 *   circulant-strang Strang's circulant approximation (changes the model; may be indefinite).
 *   embed            exact for Toeplitz C through a PSD circulant embedding of size m:
 *                    C x by padded FFT products, V' z by the embedding (z has m rows),
 *                    C^-1 x by conjugate gradients preconditioned with T. Chan's circulant.
 *   auto             exact only: dense below CSDE_COV_AUTO_TAU frames, embed from there on
 *                    (dense for a non-Toeplitz family, and when no PSD embedding exists
 *                    up to CSDE_COV_DENSE_FALLBACK_TAU frames). Never an approximation.
 *
 * Cost of construction. dense: O(tau^3) time, four tau x tau matrices. circulant and
 * embed: nothing of size tau^2 is formed. embed finds its embedding by FFTs
 * (O(m log m)); a PSD embedding proves C PSD and, when its smallest eigenvalue is above
 * round-off, PD. Only an embedding whose smallest eigenvalue is ~0 (C possibly
 * singular) or a failed embedding runs Levinson-Durbin (O(tau^2) time, O(tau) memory);
 * a failed one below 4096 frames also runs a dense eigensolve to name the most negative
 * eigenvalue in the error. The circulant methods check the exact Toeplitz T the same
 * way. log det T (embed's csde_cov_logdet, the circulant report's KL) is computed on
 * first use: in closed form for identity, ar1 and mixed, otherwise by Levinson-Durbin
 * (O(tau^2) time: see csde_cov_logdet_cheap). Per-call costs of the report functions:
 *   csde_cov_matrix       O(tau^2) output (the caller's buffer), any method
 *   csde_cov_eigenvalues  O(tau log tau) for circulant, a copy for dense, O(tau^3) and a
 *                         tau x tau matrix for embed
 *   csde_cov_entry, csde_cov_eig_bounds: O(1).
 *
 * Threads: an operator is const after csde_cov_alloc and may be shared by any number of
 * threads. Each thread (or each call site) uses its own csde_cov_ws. No apply call
 * allocates. Results do not depend on the workspace's thread count: work is cut into
 * tiles whose width depends only on (operator, D).
 */
#ifndef CORRSDE_COV_H
#define CORRSDE_COV_H

#include <stddef.h>
#include "corrsde/rng.h"
#include "corrsde/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csde_cov csde_cov;
typedef struct csde_cov_ws csde_cov_ws;

typedef enum {
  CSDE_COV_AUTO = 0,
  CSDE_COV_DENSE,
  CSDE_COV_DENSE_CHOLESKY,
  CSDE_COV_CIRC_TCHAN,
  CSDE_COV_CIRC_STRANG,
  CSDE_COV_EMBED
} csde_cov_method;

/* The operation an apply performs. */
typedef enum {
  CSDE_COV_OP_C = 0, /* y = C x       (x: tau rows)                  */
  CSDE_COV_OP_SQRT,  /* y = V' z      (z: csde_cov_noise_dim rows)    */
  CSDE_COV_OP_INV    /* y = C^-1 x    (x: tau rows; CSDE_ESING if C is singular) */
} csde_cov_op;

/* Below this many frames `auto` picks dense, from it on embed (measured by
 * `corrsde-bench cov`: see docs/ARCHITECTURE.md). */
#define CSDE_COV_AUTO_TAU 512
/* `auto` falls back to dense when no PSD embedding exists only up to this many frames
 * (dense needs four tau x tau matrices: 2 GiB at 8192 frames); above it, it fails. */
#define CSDE_COV_DENSE_FALLBACK_TAU 8192

typedef struct {
  csde_cov_method method; /* default CSDE_COV_AUTO */
  double cg_tol;          /* embed C^-1, per pixel, default 1e-12: stop at
                             ||x - C y|| <= cg_tol ||x||; after cg_maxiter iterations accept
                             ||x - C y|| <= cg_tol (||C|| ||y|| + ||x||) (backward error) */
  size_t cg_maxiter;      /* embed C^-1: 0 means 2 tau + 20 */
  size_t embed_max;       /* embed: largest embedding size tried, 0 means max(64 tau, 1024) */
  double sym_tol;         /* dense input: |C_ij - C_ji| <= sym_tol max|C|, default 1e-12 */
} csde_cov_params;

CSDE_API csde_cov_params csde_cov_default_params(void);

/* Parse a method name: one of csde_cov_method_names (circulant = circulant-tchan).
 * Returns CSDE_ESPEC for anything else. */
CSDE_API int csde_cov_method_parse(const char *name, csde_cov_method *out, csde_err *err);
CSDE_API const char *csde_cov_method_name(csde_cov_method m);

/* The registries of covariance families and methods, in their order. The i-th entry's
 * name, or NULL past the last; *form (families: the spec's forms, " | " between them) and
 * *summary (one sentence) are set when not NULL. Static strings. */
CSDE_API const char *csde_cov_family_entry(size_t i, const char **form, const char **summary);
CSDE_API const char *csde_cov_method_entry(size_t i, const char **summary);
/* The names joined by ", " into buf ("identity, ar1, ..."; "auto, dense, ..."), cut to
 * len - 1 characters. Returns buf. */
CSDE_API char *csde_cov_family_names(char *buf, size_t len);
CSDE_API char *csde_cov_method_names(char *buf, size_t len);

/* Build an operator from a spec string for tau frames: a family's spec
 * (csde_cov_family_entry gives each family's forms and formula), e.g.
 *   identity   ar1:rho=0.9   mixed:r=0.5   toeplitz:col=1,0.5   matern32:ell=4
 * params may be NULL (defaults). The spec string is copied. */
CSDE_API int csde_cov_alloc(csde_cov **out, const char *spec, size_t tau,
                   const csde_cov_params *params, csde_err *err);

/* Build from a first column (copied): c[0..ncol-1], lags past ncol are 0. */
CSDE_API int csde_cov_alloc_toeplitz(csde_cov **out, const double *col, size_t ncol, size_t tau,
                            const csde_cov_params *params, csde_err *err);

/* Build from a dense row-major tau x tau matrix (copied). Only dense methods apply. */
CSDE_API int csde_cov_alloc_dense(csde_cov **out, const double *mat, size_t tau,
                         const csde_cov_params *params, csde_err *err);

CSDE_API void csde_cov_free(csde_cov *C); /* accepts NULL */

CSDE_API size_t csde_cov_tau(const csde_cov *C);
/* Rows of white noise V' takes per pixel: tau, or the embedding size m for embed. */
CSDE_API size_t csde_cov_noise_dim(const csde_cov *C);
CSDE_API csde_cov_method csde_cov_method_of(const csde_cov *C); /* never CSDE_COV_AUTO */
CSDE_API const char *csde_cov_spec(const csde_cov *C);          /* the spec, or "toeplitz"/"dense" */
CSDE_API int csde_cov_is_toeplitz(const csde_cov *C);
CSDE_API int csde_cov_is_singular(const csde_cov *C); /* 1 when C^-1 is not available */

/* log det C (-INFINITY when singular). For embed (and the circulant report's KL) it is
 * log det T, computed on the first call and cached (thread-safe): closed form for
 * identity, ar1 and mixed, else Levinson-Durbin in O(tau^2) time and O(tau) memory. */
CSDE_API double csde_cov_logdet(const csde_cov *C);
/* 1 when csde_cov_logdet and csde_cov_approx_report return without an O(tau^2)
 * Levinson-Durbin pass (always for dense; for embed and circulant when the family has a
 * closed form, C is singular, or the pass has already run). */
CSDE_API int csde_cov_logdet_cheap(const csde_cov *C);

/* Entry C_ij of the matrix this operator applies (the circulant for circulant methods),
 * 0 <= i, j < tau. O(1): the way to show part of C without forming tau x tau. */
CSDE_API double csde_cov_entry(const csde_cov *C, size_t i, size_t j);

/* The eigenvalue range of C in O(1): returns 1 when *lo, *hi are the exact smallest and
 * largest eigenvalues (dense: from its eigensolve; circulant: its spectrum), 0 when they
 * are bounds lo <= lambda(C) <= hi (embed: the embedding's range, by Cauchy interlacing;
 * csde_cov_eigenvalues gives the exact values at O(tau^3)). Either pointer may be NULL. */
CSDE_API int csde_cov_eig_bounds(const csde_cov *C, double *lo, double *hi);

/* The tau x tau matrix this operator applies, row-major (for a circulant approximation:
 * the circulant, not the Toeplitz matrix it approximates). */
CSDE_API void csde_cov_matrix(const csde_cov *C, double *out);

/* The eigenvalues of C in ascending order (tau values). For embed this runs a dense
 * symmetric eigensolver (O(tau^3), allocates): meant for reports, not loops. */
CSDE_API int csde_cov_eigenvalues(const csde_cov *C, double *out, csde_err *err);

/* For a circulant approximation: how far it is from the Toeplitz matrix it replaces. */
typedef struct {
  int approx;            /* 1 for circulant methods, 0 for exact ones (other fields 0) */
  double kl_per_frame;   /* KL(N(0,T) || N(0,circ)) / tau */
  double max_entry_diff; /* max_ij |circ_ij - T_ij| */
  double eig_min;        /* eigenvalue range of the circulant */
  double eig_max;
} csde_cov_report;

CSDE_API csde_cov_report csde_cov_approx_report(const csde_cov *C);

/* For embed: the embedding size m actually used (0 for other methods). */
CSDE_API size_t csde_cov_embed_size(const csde_cov *C);

/* ---- workspaces and application ---- */

/* A workspace for blocks of D pixels, usable by up to nthreads OpenMP threads at once
 * (nthreads 0 means 1). Holds the FFT plans and every scratch buffer. */
CSDE_API int csde_cov_ws_alloc(csde_cov_ws **out, const csde_cov *C, size_t D, int nthreads,
                      csde_err *err);
CSDE_API void csde_cov_ws_free(csde_cov_ws *ws); /* accepts NULL */
/* The bytes csde_cov_ws_alloc(C, D, nthreads) takes: its buffers, and an allowance for
 * FFTW's plans (for memory estimates: corrsde/run.h, csde_run_memory). */
CSDE_API size_t csde_cov_ws_size(const csde_cov *C, size_t D, int nthreads);
/* The D (pixels per frame) the workspace was made for. */
CSDE_API size_t csde_cov_ws_D(const csde_cov_ws *ws);

/* y = op(C) x for nblk contiguous blocks: x is nblk * rows_in * D doubles and y is
 * nblk * tau * D, where rows_in is tau (or csde_cov_noise_dim for CSDE_COV_OP_SQRT).
 * x and y must not overlap. The ws must come from this C with this D. */
CSDE_API int csde_cov_apply(const csde_cov *C, csde_cov_ws *ws, csde_cov_op op, size_t nblk,
                   const double *x, double *y, csde_err *err);

/* q[b*D + p] = (a - b)^T C^-1 (a - b) along the frame axis of pixel p of block b
 * (b may be NULL: a^T C^-1 a). q may be NULL; if total is not NULL it receives the sum
 * over every pixel of every block. */
CSDE_API int csde_cov_mahalanobis(const csde_cov *C, csde_cov_ws *ws, size_t nblk,
                         const double *a, const double *b, double *q, double *total,
                         csde_err *err);

/* Draw nblk samples of N(0, C (x) I_D) into out (nblk * tau * D). Sample j of the call
 * is global sample first + j: its white noise is normal(key, (first+j) * noise_dim * D
 * + row * D + pixel), so a sample is the same alone or inside any batch. */
CSDE_API int csde_cov_sample(const csde_cov *C, csde_cov_ws *ws, csde_rng_key key, size_t first,
                    size_t nblk, double *out, csde_err *err);

/* log N(x_b; 0, C (x) I_D) for each block b into logp[b]. */
CSDE_API int csde_cov_logpdf(const csde_cov *C, csde_cov_ws *ws, size_t nblk, const double *x,
                    double *logp, csde_err *err);

#ifdef __cplusplus
}
#endif
#endif
