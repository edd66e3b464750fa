/* The README's example: an AR(1) frame covariance, coloured noise, and its log det. */
#include <stdio.h>
#include <corrsde/corrsde.h>

int main(void)
{
  enum { TAU = 16, D = 64 * 64 };
  static double x[TAU * D];
  csde_cov *C;
  csde_cov_ws *ws;
  csde_err err;
  csde_init();
  if (csde_cov_alloc(&C, "ar1:rho=0.9", TAU, NULL, &err) ||
      csde_cov_ws_alloc(&ws, C, D, 1, &err) ||
      csde_cov_sample(C, ws, (csde_rng_key){.seed = 42}, 0, 1, x, &err)) {
    fprintf(stderr, "error: %s\n", err.msg);
    return 1;
  }
  printf("log det C = %.12f  (exact: 15 log 0.19 = -24.911...)\n", csde_cov_logdet(C));
  printf("x[frame 0..1, pixel 0] = %.6f %.6f\n", x[0], x[D]);
  csde_cov_ws_free(ws);
  csde_cov_free(C);
  return 0;
}
