/* Internal layout of covariance operators (src/cov). Not installed.
 *
 * A csde_cov is a family (what C is) plus a method (how it is applied). The family gives
 * the lag function c(k) of a Toeplitz C, or a dense matrix. Each method is one file
 * exporting one const csde_cov_type table; cov.c holds what all methods share: the
 * spec entry points, tiling and threading of applies, Mahalanobis forms, sampling.
 */
#ifndef CSDE_COV_INTERNAL_H
#define CSDE_COV_INTERNAL_H

#include "core/tiles.h"
#include <fftw3.h>
#include <pthread.h>

#include "corrsde/cov.h"

/* ---- families ---- */
typedef struct csde_cov_family {
  char name[64];
  double p[4];      /* family parameters (rho; r; ell, var, nugget) */
  double *col;      /* explicit lags (toeplitz family), ncol of them; 0 past them */
  size_t ncol;
  double *mat;      /* dense family: tau x tau row-major; NULL for Toeplitz families */
  double (*lag)(const struct csde_cov_family *f, size_t k); /* c(k), Toeplitz only */
  /* log det of the n x n Toeplitz matrix in closed form (ar1, mixed, identity), or NULL:
   * then Levinson-Durbin, O(n^2). Only called when the matrix is known to be PD. */
  double (*logdet)(const struct csde_cov_family *f, size_t n);
} csde_cov_family;

/* Parse the family part of a spec ("ar1:rho=0.9"), reading files if named. */
int csde_cov_family_parse(csde_cov_family *f, const char *spec, size_t tau, csde_err *err);
void csde_cov_family_clear(csde_cov_family *f);

/* ---- per-thread scratch and workspaces ---- */
typedef struct {
  double *buf;          /* FFT real buffer, nfft rows x W */
  fftw_complex *cbuf;   /* FFT half spectrum, (nfft/2+1) rows x W */
  double *buf2;         /* second real/complex pair for the preconditioner (embed) */
  fftw_complex *cbuf2;
  double *t1, *t2;      /* tau x W tiles (Mahalanobis difference and solve) */
  double *z;            /* white noise tile, noise_dim x W */
  double *cg;           /* embed CG vectors: r, p, q, z (4 tau x W) and 5 W scalars */
  csde_err err;
} csde_cov_thread;

struct csde_cov_ws {
  const csde_cov *C;
  size_t D, W;          /* pixels per block; tile width (depends on C and D only) */
  int nthreads;
  fftw_plan fwd, inv;   /* size-nfft batched plans on W columns (FFT methods) */
  fftw_plan fwd2, inv2; /* size-tau plans (embed's preconditioner) */
  csde_cov_thread *th;
  double *tsum;         /* per-tile partial sums (Mahalanobis totals) */
  csde_tile_slot *slot; /* the threads' shares of a pass's tiles (core/tiles.h) */
};

/* ---- methods ---- */
typedef struct {
  const char *name;
  /* Build the method's state from C->fam (C->tau, C->par set). */
  int (*init)(csde_cov *C, csde_err *err);
  void (*free)(csde_cov *C);
  /* Tile width for blocks of D pixels, and the FFT size (0: no FFT). */
  size_t (*tile_width)(const csde_cov *C, size_t D);
  size_t (*nfft)(const csde_cov *C);
  size_t nfft2_is_tau; /* 1: also plan size-tau transforms (embed's preconditioner) */
  /* y = op(C) x on one tile of nc columns; x has rows_in rows (leading dim ldx). */
  int (*apply_tile)(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                    csde_cov_op op, size_t nc, const double *x, size_t ldx, double *y,
                    size_t ldy);
  /* y = a x + b u + s V' z on one tile (z noise_dim rows; u may be NULL; x, u and y have
   * leading dim ld), fused; returns sum 0 u_i (0, or NaN when some u_i is not finite).
   * NULL: csde_cov_sample_axpy does apply_tile and an add. */
  double (*sqrt_axpy_tile)(const csde_cov *C, size_t nc, double s, const double *z,
                           size_t ldz, double a, const double *x, double b, const double *u,
                           size_t ld, double *y);
} csde_cov_type;

extern const csde_cov_type csde_cov_dense_type;
extern const csde_cov_type csde_cov_circulant_type;
extern const csde_cov_type csde_cov_embed_type;

struct csde_cov {
  size_t tau;
  csde_cov_method method;
  csde_cov_params par;
  char spec[256];
  csde_cov_family fam;
  const csde_cov_type *type;
  size_t noise_dim;
  double logdet;        /* log det of the C applied (-INFINITY if singular) */
  int singular;
  /* Toeplitz families: the exact Toeplitz matrix's log det and PD flag. pd_T is known
   * after construction (a circulant embedding with lambda_min > 0 proves T PD, else
   * Levinson-Durbin decides); logdet_T is computed on first use (closed form, or
   * Levinson-Durbin in O(tau^2) time and O(tau) memory) under `lock`. */
  double logdet_T;
  int pd_T;
  int have_logdet_T;
  pthread_mutex_t lock;
  double circ_tr;       /* circulant methods: tr(circ^-1 T) = sum lam_chan / lam (KL) */
  /* eigenvalue range of C: exact (dense, circulant) or bounds (embed: those of B, by
   * Cauchy interlacing, since C is a principal submatrix of B) */
  double eig_lo, eig_hi;
  int eig_exact;
  /* dense method */
  double *mat;          /* C, tau x tau */
  double *fac;          /* V' (V sqrt(S) or L), tau x tau */
  double *chol;         /* Cholesky factor L (lower) for C^-1; NULL if not PD */
  double *eig;          /* ascending eigenvalues (dense), tau */
  /* circulant methods (size n = tau) and embed (size m) */
  size_t n;             /* circulant size */
  double lam_max;       /* embed: largest eigenvalue of B, a bound on ||C||_2 */
  double *ccol;         /* circulant first column, n */
  double *lam;          /* eigenvalues lambda_k, k = 0..n/2 (real, half spectrum) */
  double *lam_chan;     /* T. Chan eigenvalues of T (size tau, half spectrum): KL / precond */
  double *fop[3];       /* per-op spectral factors, scaled by 1/n: lambda, sqrt(lambda),
                           1/lambda (embed: fop[2] is the size-tau preconditioner's) */
  csde_cov_report report;
};

/* scale * (a draw of csde_cov_sample), the scaling done on the white noise in cache. */
int csde_cov_sample_scaled(const csde_cov *C, csde_cov_ws *ws, csde_rng_key key, size_t first,
                           size_t nblk, double scale, double *out, csde_err *err);
/* out = a x + b u + scale (a draw of csde_cov_sample), tile by tile in one pass: the noise
 * and V' z stay in cache. out may be x; u may be NULL (no b u term). *bad (if bad) is set
 * to 1 when u holds a non-finite value. The same draw as csde_cov_sample_scaled up to
 * rounding (the dense method adds scale V' z with one GEMM, beta = 1). */
int csde_cov_sample_axpy(const csde_cov *C, csde_cov_ws *ws, csde_rng_key key, size_t first,
                         size_t nblk, double scale, double a, const double *x, double b,
                         const double *u, double *out, int *bad, csde_err *err);

/* Shared helpers (toeplitz.c). */
/* Fill t[0..n-1] with the family's lags c(0..n-1). */
void csde_cov_lags(const csde_cov_family *f, size_t n, double *t);
/* Levinson-Durbin on the Toeplitz matrix of t[0..n-1]: *logdet and PD flag (0/1).
 * O(n^2) time, O(n) memory. If kfail is not NULL it receives the order k at which the
 * prediction error variance P_k stopped being positive (and *pfail = P_k), when !*pd. */
int csde_toeplitz_levinson(const double *t, size_t n, double *logdet, int *pd);
int csde_toeplitz_levinson_at(const double *t, size_t n, double *logdet, int *pd,
                              size_t *kfail, double *pfail);
/* The smallest PSD circulant embedding of the family's Toeplitz matrix of size tau:
 * m >= 2 (tau - 1) a power of two, doubled up to mmax until B (first column
 * b_k = c(min(k, m - k))) is PSD up to round-off. *lam (malloc'd, m/2 + 1 values) gets
 * its half spectrum, *lmin its smallest eigenvalue and *tol the round-off tolerance.
 * CSDE_ENOTPSD (message naming spec) when no size up to mmax is PSD. O(m log m). */
int csde_embed_spectrum(const csde_cov_family *f, const char *spec, size_t tau, size_t mmax,
                        size_t *m, double **lam, double *lmin, double *tol, csde_err *err);
/* The exact Toeplitz log det of C (cached; see logdet_T). NAN if out of memory. */
double csde_cov_logdet_T(const csde_cov *C);
/* Circulant approximations of the Toeplitz t[0..n-1]: c of length n. */
void csde_toeplitz_tchan(const double *t, size_t n, double *c);
void csde_toeplitz_strang(const double *t, size_t n, double *c);
/* Half-spectrum eigenvalues lam[0..n/2] of the symmetric circulant with column c. */
int csde_circulant_eigs(const double *c, size_t n, double *lam, csde_err *err);
/* buf <- F^-1 diag(f) F buf for the W columns of a row-major [n][W] tile, using the
 * workspace's batched plans on this thread's buffers (f already holds the 1/n). */
void csde_circ_mult(fftw_plan fwd, fftw_plan inv, double *buf, fftw_complex *cbuf, size_t n,
                    size_t W, const double *f);
/* Tile width for size-n FFT methods: a power of two in 4..256 with W n doubles near
 * 256 KiB, at most D. Depends on (n, D) only, never on threads. */
size_t csde_fft_tile_width(size_t n, size_t D);
/* Sum over all n eigenvalues of f(lambda_k) given the half spectrum. */
double csde_circulant_sum(const double *lam, size_t n, double (*f)(double, void *), void *u);
/* Eigenvalues (ascending) and, if evec, vectors of the symmetric n x n A scaled by 2^-e,
 * *scale = e: e = 0 (A itself) unless its largest entry is outside [2^-500, 2^500]
 * (csde_pow2_scale; even: e made even, so that 2^(e/2) scales square roots exactly).
 * The eigenvalues of A are ldexp(eval, e), and nothing overflows on the way. */
int csde_symeig_scaled(const double *A, size_t n, double *eval, double *evec, int even,
                       int *scale, csde_err *err);
/* Most negative eigenvalue check of a dense symmetric matrix (allocates): *emin, computed
 * on the matrix scaled as csde_symeig_scaled does. */
int csde_dense_min_eig(const double *mat, size_t n, double *emin, csde_err *err);
/* The embedding size for at least n points: the next power of two. */
size_t csde_fft_size(size_t n);
/* The tolerance below which a negative eigenvalue counts as round-off. */
double csde_eig_tol(size_t n, double maxabs);

/* The FFTW planner is not thread-safe: every plan is made and destroyed under this lock. */
void csde_fftw_lock(void);
void csde_fftw_unlock(void);

#endif
