/* Methods `circulant-tchan` and `circulant-strang`: a circulant approximation of a
 * Toeplitz C, diagonalised by the DFT: C = F^-1 diag(lambda) F, lambda = DFT of its
 * first column (real, since the column is symmetric). Then
 *   C x = F^-1 (lambda . F x),  V' z = F^-1 (sqrt(lambda) . F z),  C^-1 x = F^-1 (F x / lambda)
 * applied by FFTW along the frame axis of every pixel. This changes the model: the
 * report says by how much (KL per frame against the exact Toeplitz C). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "cov/cov_internal.h"

void csde_circ_mult(fftw_plan fwd, fftw_plan inv, double *buf, fftw_complex *cbuf, size_t n,
                    size_t W, const double *f)
{
  fftw_execute_dft_r2c(fwd, buf, cbuf);
  for (size_t k = 0; k <= n / 2; k++) {
    double fk = f[k];
    fftw_complex *row = cbuf + k * W;
    for (size_t c = 0; c < W; c++) {
      row[c][0] *= fk;
      row[c][1] *= fk;
    }
  }
  fftw_execute_dft_c2r(inv, cbuf, buf);
}

static double f_log(double lam, void *u)
{
  (void)u;
  return log(lam);
}

static int circ_init(csde_cov *C, csde_err *err)
{
  size_t n = C->tau, h = n / 2 + 1;
  int s;
  double *t = malloc(n * sizeof *t);
  C->ccol = malloc(n * sizeof *C->ccol);
  C->lam = malloc(h * sizeof *C->lam);
  C->lam_chan = malloc(h * sizeof *C->lam_chan);
  for (int i = 0; i < 3; i++) C->fop[i] = malloc(h * sizeof(double));
  if (!t || !C->ccol || !C->lam || !C->lam_chan || !C->fop[0] || !C->fop[1] || !C->fop[2]) {
    free(t);
    return csde_err_set(err, CSDE_ENOMEM, "out of memory (tau = %zu)", n);
  }
  csde_cov_lags(&C->fam, n, t);
  int strang = C->method == CSDE_COV_CIRC_STRANG;
  (strang ? csde_toeplitz_strang : csde_toeplitz_tchan)(t, n, C->ccol);
  s = csde_circulant_eigs(C->ccol, n, C->lam, err);
  if (!s) { /* T. Chan's eigenvalues are the diagonal of F T F^*: tr(circ^-1 T) = sum
               lam_chan/lam */
    csde_toeplitz_tchan(t, n, C->ccol);
    s = csde_circulant_eigs(C->ccol, n, C->lam_chan, err);
  }
  if (s) { /* an eigenvalue beyond the double range */
    if (s == CSDE_ERANGE && err) {
      char msg[CSDE_MSG_MAX];
      snprintf(msg, sizeof msg, "%s", err->msg);
      csde_err_set(err, s, "the %s circulant of '%s' with %zu frames: %s",
                   strang ? "Strang" : "T. Chan", C->spec, n, msg);
    }
    goto done;
  }
  (strang ? csde_toeplitz_strang : csde_toeplitz_tchan)(t, n, C->ccol);

  double lmin = INFINITY, lmax = -INFINITY, amax = 0;
  size_t kmin = 0;
  for (size_t k = 0; k < h; k++) {
    if (C->lam[k] < lmin) lmin = C->lam[k], kmin = k;
    lmax = fmax(lmax, C->lam[k]);
    amax = fmax(amax, fabs(C->lam[k]));
  }
  double tol = csde_eig_tol(n, amax);
  if (lmin < -tol) {
    s = csde_err_set(err, CSDE_ENOTPSD,
                     "the %s circulant of '%s' with %zu frames is indefinite: eigenvalue "
                     "%.6g at frequency %zu (tolerance %.3g); use circulant-tchan, embed or "
                     "dense",
                     strang ? "Strang" : "T. Chan", C->spec, n, lmin, kmin, tol);
    goto done;
  }
  for (size_t k = 0; k < h; k++) C->lam[k] = fmax(C->lam[k], 0.0); /* round-off */
  C->singular = !(lmin > 0);
  C->logdet = C->singular ? -INFINITY : csde_circulant_sum(C->lam, n, f_log, NULL);
  for (size_t k = 0; k < h; k++) {
    C->fop[0][k] = C->lam[k] / (double)n;
    C->fop[1][k] = sqrt(C->lam[k]) / (double)n;
    C->fop[2][k] = C->lam[k] > 0 ? 1.0 / (C->lam[k] * (double)n) : 0.0;
  }
  /* KL(N(0,T) || N(0,circ)) / tau = (tr(circ^-1 T) - n + log det circ - log det T) / (2n) */
  double tr = 0;
  for (size_t k = 0; k < n; k++) {
    size_t j = k <= n / 2 ? k : n - k;
    tr += C->lam_chan[j] / C->lam[j];
  }
  C->report.approx = 1;
  C->circ_tr = tr; /* KL needs log det T: computed on first csde_cov_approx_report */
  C->report.kl_per_frame = NAN;
  double dmax = 0; /* circ_ij - T_ij depends on (i - j) mod n only: c_k vs t_k */
  for (size_t k = 0; k < n; k++) dmax = fmax(dmax, fabs(C->ccol[k] - t[k]));
  C->report.max_entry_diff = dmax;
  C->report.eig_min = fmax(lmin, 0.0);
  C->report.eig_max = lmax;
  C->eig_lo = fmax(lmin, 0.0);
  C->eig_hi = lmax;
  C->eig_exact = 1;
  C->noise_dim = n;
  C->n = n;
done:
  free(t);
  return s;
}

size_t csde_fft_tile_width(size_t n, size_t D)
{
  size_t W = 4;
  while (W < 256 && 2 * W * n * sizeof(double) <= ((size_t)256 << 10)) W *= 2;
  return D < W ? D : W;
}

static size_t circ_tile_width(const csde_cov *C, size_t D) { return csde_fft_tile_width(C->n, D); }
static size_t circ_nfft(const csde_cov *C) { return C->n; }

static int circ_apply_tile(const csde_cov *C, const csde_cov_ws *ws, csde_cov_thread *th,
                           csde_cov_op op, size_t nc, const double *x, size_t ldx, double *y,
                           size_t ldy)
{
  size_t n = C->n, W = ws->W;
  for (size_t i = 0; i < n; i++) memcpy(th->buf + i * W, x + i * ldx, nc * sizeof(double));
  csde_circ_mult(ws->fwd, ws->inv, th->buf, th->cbuf, n, W, C->fop[op]);
  for (size_t i = 0; i < n; i++) memcpy(y + i * ldy, th->buf + i * W, nc * sizeof(double));
  return CSDE_SUCCESS;
}

const csde_cov_type csde_cov_circulant_type = {
    "circulant", circ_init, NULL, circ_tile_width, circ_nfft, 0, circ_apply_tile, NULL,
};
