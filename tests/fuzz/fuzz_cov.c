/* Fuzz the covariance spec: csde_cov_alloc(spec, tau, method).
 * Input: byte 0 picks tau = 1 + (byte & 31) ('@' = 1, 'D' = 5, 'P' = 17), byte 1 the
 * method = byte % 6 ('0' auto, '1' dense, '2' dense-cholesky, '3' circulant-tchan,
 * '4' circulant-strang, '5' embed), the rest is the spec. Specs may name the fixtures
 * col.txt, col.h5:/col and C.h5:/C (fuzz_common.h). An operator that builds is then used:
 * its matrix, eigenvalues, report, and C, V', C^-1 applied to a fixed block of D = 3. */
#include <math.h>

#include "corrsde/cov.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_INITIALIZE(fuzz_fixtures();)

static void use(const csde_cov *C)
{
  enum { D = 3 };
  size_t tau = csde_cov_tau(C), m = csde_cov_noise_dim(C);
  csde_err err;
  (void)csde_cov_logdet(C);
  (void)csde_cov_approx_report(C);
  (void)csde_cov_spec(C);
  double *mat = malloc(tau * tau * sizeof *mat), *ev = malloc(tau * sizeof *ev);
  double *x = malloc((m > tau ? m : tau) * D * sizeof *x), *y = malloc(tau * D * sizeof *y);
  if (!mat || !ev || !x || !y) abort();
  csde_cov_matrix(C, mat);
  (void)csde_cov_eigenvalues(C, ev, &err);
  for (size_t i = 0; i < (m > tau ? m : tau) * D; i++) x[i] = sin(1.0 + (double)i);
  csde_cov_ws *ws = NULL;
  if (!csde_cov_ws_alloc(&ws, C, D, 1, &err)) {
    (void)csde_cov_apply(C, ws, CSDE_COV_OP_C, 1, x, y, &err);
    (void)csde_cov_apply(C, ws, CSDE_COV_OP_SQRT, 1, x, y, &err);
    if (!csde_cov_is_singular(C)) {
      double total;
      (void)csde_cov_apply(C, ws, CSDE_COV_OP_INV, 1, x, y, &err);
      (void)csde_cov_mahalanobis(C, ws, 1, x, NULL, NULL, &total, &err);
    }
    csde_cov_ws_free(ws);
  }
  free(mat);
  free(ev);
  free(x);
  free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  size_t tau = 1 + (data[0] & 31);
  csde_cov_params p = csde_cov_default_params();
  p.method = (csde_cov_method)(data[1] % 6);
  char *spec = fuzz_str(data + 2, size - 2);
  if (fuzz_paths_ok(spec)) {
    csde_cov *C = NULL;
    csde_err err;
    csde_err_clear(&err);
    fuzz_quiet_begin();
    int s = csde_cov_alloc(&C, spec, tau, &p, &err);
    if (s == CSDE_SUCCESS)
      use(C);
    else
      fuzz_check_err(s, &err);
    csde_cov_free(C);
    fuzz_quiet_end("csde_cov_alloc");
    if (fuzz_verbose())
      fprintf(stderr, "cov tau=%zu method=%d '%s': %d %s\n", tau, (int)p.method, spec, s,
              err.msg);
  }
  free(spec);
  return 0;
}
