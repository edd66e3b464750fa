/* Method `embed`: exact for a Toeplitz C through a circulant embedding B of size
 * m >= 2(tau-1) whose leading tau x tau block is C. Its first column is
 * b_k = c(min(k, m-k)), with the family's own lags past tau-1; m grows (doubling) until
 * B is PSD up to round-off.
 *   C x     = first tau rows of B [x; 0]                        (exact)
 *   V' z    = first tau rows of B^{1/2} z, z with m rows         (exact: V' V'^T = C)
 *   C^-1 x  conjugate gradients with C x above, preconditioned by T. Chan's circulant,
 *           to relative residual cg_tol per pixel (or, for an ill-conditioned C, to
 *           normwise backward error cg_tol: see embed_solve). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cov/cov_internal.h"

int csde_embed_spectrum(const csde_cov_family *f, const char *spec, size_t tau, size_t mmax,
                        size_t *mout, double **lamout, double *lmin, double *tol, csde_err *err)
{
  if (mmax == 0) mmax = 64 * tau > 1024 ? 64 * tau : 1024;
  size_t m = csde_fft_size(tau > 1 ? 2 * tau - 2 : 1);
  double *lam = NULL;
  int s = CSDE_SUCCESS;
  *lamout = NULL;
  if (m > mmax)
    return csde_err_set(err, CSDE_EINVAL,
                        "embed_max = %zu is below the smallest embedding size %zu for %zu "
                        "frames (2 (tau - 1), rounded up to an FFT size)",
                        mmax, m, tau);
  for (;;) {
    double *b = malloc(m * sizeof *b);
    free(lam);
    lam = malloc((m / 2 + 1) * sizeof *lam);
    if (!b || !lam) {
      free(b);
      free(lam);
      return csde_err_set(err, CSDE_ENOMEM, "out of memory (embedding size %zu)", m);
    }
    for (size_t k = 0; k < m; k++) b[k] = f->lag(f, k < m - k ? k : m - k);
    s = csde_circulant_eigs(b, m, lam, err);
    free(b);
    if (s) {
      free(lam);
      if (s == CSDE_ERANGE && err) {
        char msg[CSDE_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        csde_err_set(err, s, "circulant embedding of '%s' (%zu frames): %s", spec, tau, msg);
      }
      return s;
    }
    double amax = 0;
    *lmin = INFINITY;
    for (size_t k = 0; k <= m / 2; k++) {
      *lmin = fmin(*lmin, lam[k]);
      amax = fmax(amax, fabs(lam[k]));
    }
    *tol = csde_eig_tol(m, amax);
    if (*lmin >= -*tol) break;
    if (2 * m > mmax) {
      free(lam);
      return csde_err_set(err, CSDE_ENOTPSD,
                          "circulant embedding of '%s' (%zu frames) is not PSD up to size %zu: "
                          "eigenvalue %.6g (tolerance %.3g); use method dense",
                          spec, tau, m, *lmin, *tol);
    }
    m = csde_fft_size(2 * m);
  }
  *mout = m;
  *lamout = lam;
  return CSDE_SUCCESS;
}

/* A PSD embedding B proves C PSD (C is its leading tau x tau block), and
 * lambda_min(C) >= lambda_min(B) (Cauchy interlacing), so lambda_min(B) > tol proves C PD;
 * only a B with lambda_min(B) ~ 0 leaves Levinson-Durbin to decide (O(tau^2), O(tau)
 * memory). Nothing of size tau^2 is formed. */
static int embed_init(csde_cov *C, csde_err *err)
{
  size_t tau = C->tau, m = 0;
  double lmin = 0, tol = 0;
  free(C->lam);
  C->lam = NULL;
  int s = csde_embed_spectrum(&C->fam, C->spec, tau, C->par.embed_max, &m, &C->lam, &lmin,
                              &tol, err);
  if (s) return s;
  size_t h = m / 2 + 1, ht = tau / 2 + 1;
  C->n = m;
  C->noise_dim = m;
  C->fop[0] = malloc(h * sizeof(double));
  C->fop[1] = malloc(h * sizeof(double));
  C->fop[2] = malloc(ht * sizeof(double));
  C->lam_chan = malloc(ht * sizeof(double));
  double *t = malloc(tau * sizeof *t), *c = malloc(tau * sizeof *c);
  if (!C->fop[0] || !C->fop[1] || !C->fop[2] || !C->lam_chan || !t || !c) {
    free(t);
    free(c);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory (embedding size %zu)", m);
  }
  C->lam_max = 0;
  for (size_t k = 0; k < h; k++) {
    double l = fmax(C->lam[k], 0.0); /* round-off */
    C->lam_max = fmax(C->lam_max, l);
    C->fop[0][k] = l / (double)m;
    C->fop[1][k] = sqrt(l) / (double)m;
  }
  /* preconditioner M = T. Chan's circulant of C: M^-1 r = F^-1 (F r / lam_chan) */
  csde_cov_lags(&C->fam, tau, t);
  csde_toeplitz_tchan(t, tau, c);
  s = csde_circulant_eigs(c, tau, C->lam_chan, err);
  double cmin = INFINITY;
  for (size_t k = 0; k < ht; k++) cmin = fmin(cmin, C->lam_chan[k]);
  for (size_t k = 0; k < ht; k++) /* identity when T. Chan's circulant is not definite */
    C->fop[2][k] = cmin > 0 ? 1.0 / (C->lam_chan[k] * (double)tau) : 1.0 / (double)tau;
  free(t);
  free(c);
  if (s) return s;
  if (lmin > tol) {
    C->pd_T = 1;
  } else { /* B only semi-definite: is C? */
    double *tt = malloc(tau * sizeof *tt);
    if (!tt) return csde_err_set(err, CSDE_ENOMEM, "out of memory (tau = %zu)", tau);
    csde_cov_lags(&C->fam, tau, tt);
    s = csde_toeplitz_levinson(tt, tau, &C->logdet_T, &C->pd_T);
    free(tt);
    if (s) return csde_err_set(err, s, "out of memory (tau = %zu)", tau);
    C->have_logdet_T = 1;
  }
  C->singular = !C->pd_T;
  C->logdet = C->singular ? -INFINITY : NAN; /* NAN: csde_cov_logdet computes it on use */
  C->eig_lo = fmax(lmin, 0.0);
  C->eig_hi = C->lam_max;
  C->eig_exact = 0;
  return CSDE_SUCCESS;
}

static size_t embed_tile_width(const csde_cov *C, size_t D) { return csde_fft_tile_width(C->n, D); }
static size_t embed_nfft(const csde_cov *C) { return C->n; }

/* q = C p on a tile: pad to m rows, circulant product with B, keep tau rows. */
static void embed_mult(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                       const double *p, size_t ldp, size_t nrow_in, const double *f, double *q,
                       size_t ldq, size_t nc)
{
  size_t W = ws->W, m = C->n;
  for (size_t i = 0; i < nrow_in; i++) memcpy(th->buf + i * W, p + i * ldp, nc * sizeof(double));
  memset(th->buf + nrow_in * W, 0, (m - nrow_in) * W * sizeof(double));
  csde_circ_mult(ws->fwd, ws->inv, th->buf, th->cbuf, m, W, f);
  for (size_t i = 0; i < C->tau; i++) memcpy(q + i * ldq, th->buf + i * W, nc * sizeof(double));
}

/* Preconditioned conjugate gradients, every column of the tile at once with its own
 * scalars; a column stops once ||r|| <= cg_tol ||b||. A column that has not by maxit is
 * accepted if its normwise backward error ||r|| / (||C|| ||y|| + ||b||) <= cg_tol, which
 * is attainable at any conditioning; otherwise the solve fails with CSDE_EMAXITER. */
static int embed_solve(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                       size_t nc, const double *x, size_t ldx, double *y, size_t ldy)
{
  size_t tau = C->tau, W = ws->W;
  size_t maxit = C->par.cg_maxiter ? C->par.cg_maxiter : 2 * tau + 20;
  double *r = th->cg, *p = r + tau * W, *q = p + tau * W, *z = q + tau * W;
  double *rz = z + tau * W, *bn = rz + W, *act = bn + W, *d1 = act + W, *d2 = d1 + W;
  double *yn = d2 + W, tol = C->par.cg_tol, cn = C->lam_max;
  size_t nact = 0;
  for (size_t c = 0; c < nc; c++) bn[c] = rz[c] = yn[c] = 0;
  for (size_t i = 0; i < tau; i++) {
    memcpy(r + i * W, x + i * ldx, nc * sizeof(double)); /* y = 0, r = b */
    memset(y + i * ldy, 0, nc * sizeof(double));
    for (size_t c = 0; c < nc; c++) bn[c] += r[i * W + c] * r[i * W + c];
  }
  for (size_t c = 0; c < nc; c++) {
    nact += (act[c] = bn[c] > 0) != 0;
    bn[c] = sqrt(bn[c]);
  }
  /* z = M^-1 r, p = z, rz = r.z */
  memcpy(th->buf2, r, tau * W * sizeof(double));
  csde_circ_mult(ws->fwd2, ws->inv2, th->buf2, th->cbuf2, tau, W, C->fop[2]);
  memcpy(z, th->buf2, tau * W * sizeof(double));
  memcpy(p, z, tau * W * sizeof(double));
  for (size_t i = 0; i < tau; i++)
    for (size_t c = 0; c < nc; c++) rz[c] += r[i * W + c] * z[i * W + c];
  size_t it = 0;
  for (; nact > 0 && it < maxit; it++) {
    embed_mult(C, ws, th, p, W, tau, C->fop[0], q, W, nc); /* q = C p */
    for (size_t c = 0; c < nc; c++) d1[c] = d2[c] = yn[c] = 0;
    for (size_t i = 0; i < tau; i++)
      for (size_t c = 0; c < nc; c++) d1[c] += p[i * W + c] * q[i * W + c];
    for (size_t c = 0; c < nc; c++)
      if (act[c] && !(d1[c] > 0))
        return csde_err_set(&th->err, CSDE_ESING,
                            "C^-1 by conjugate gradients broke down (p^T C p = %.3g): '%s' "
                            "is numerically singular; use method dense",
                            d1[c], C->spec);
    for (size_t i = 0; i < tau; i++) /* y += alpha p, r -= alpha q, alpha = rz / p.q */
      for (size_t c = 0; c < nc; c++)
        if (act[c]) {
          double a = rz[c] / d1[c];
          y[i * ldy + c] += a * p[i * W + c];
          r[i * W + c] -= a * q[i * W + c];
          d2[c] += r[i * W + c] * r[i * W + c];
          yn[c] += y[i * ldy + c] * y[i * ldy + c];
        }
    for (size_t c = 0; c < nc; c++)
      if (act[c] && sqrt(d2[c]) <= tol * bn[c]) act[c] = 0, nact--;
    if (!nact) break;
    memcpy(th->buf2, r, tau * W * sizeof(double)); /* z = M^-1 r */
    csde_circ_mult(ws->fwd2, ws->inv2, th->buf2, th->cbuf2, tau, W, C->fop[2]);
    memcpy(z, th->buf2, tau * W * sizeof(double));
    for (size_t c = 0; c < nc; c++) d1[c] = 0;
    for (size_t i = 0; i < tau; i++)
      for (size_t c = 0; c < nc; c++) d1[c] += r[i * W + c] * z[i * W + c];
    for (size_t i = 0; i < tau; i++) /* p = z + beta p, beta = r.z / rz */
      for (size_t c = 0; c < nc; c++)
        if (act[c]) p[i * W + c] = z[i * W + c] + d1[c] / rz[c] * p[i * W + c];
    for (size_t c = 0; c < nc; c++)
      if (act[c]) rz[c] = d1[c];
  }
  /* Out of iterations: a column is still accepted at backward error <= tol, which is what
   * any solver attains on an ill-conditioned C (residual ~ eps cond(C) ||b||). */
  for (size_t c = 0; nact && c < nc; c++)
    if (act[c] && sqrt(d2[c]) <= tol * (cn * sqrt(yn[c]) + bn[c])) act[c] = 0, nact--;
  if (nact) {
    double worst = 0;
    for (size_t c = 0; c < nc; c++)
      if (act[c]) worst = fmax(worst, sqrt(d2[c]) / (cn * sqrt(yn[c]) + bn[c]));
    return csde_err_set(&th->err, CSDE_EMAXITER,
                        "C^-1 by conjugate gradients did not reach backward error %.3g in "
                        "%zu iterations (still %.3g): '%s' is ill-conditioned; use method dense",
                        C->par.cg_tol, maxit, worst, C->spec);
  }
  return CSDE_SUCCESS;
}

static int embed_apply_tile(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                            csde_cov_op op, size_t nc, const double *x, size_t ldx, double *y,
                            size_t ldy)
{
  if (op == CSDE_COV_OP_INV) return embed_solve(C, ws, th, nc, x, ldx, y, ldy);
  size_t rows = op == CSDE_COV_OP_SQRT ? C->n : C->tau;
  embed_mult(C, ws, th, x, ldx, rows, C->fop[op], y, ldy, nc);
  return CSDE_SUCCESS;
}

const csde_cov_type csde_cov_embed_type = {
    "embed", embed_init, NULL, embed_tile_width, embed_nfft, 1, embed_apply_tile, NULL,
};
