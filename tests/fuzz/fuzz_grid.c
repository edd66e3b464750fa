/* Fuzz the grid spec: csde_grid_make. Input: byte 0 picks the schedule (byte % 4:
 * '0' vp-linear, '1' cosine, '2' ddpm-linear:n=50, '3' none) and, with bit 3 ('8'-';'),
 * the forward direction t = 1e-3 -> 1 instead of the reverse 1 -> 1e-3; byte 1 the
 * number of steps N = 1 + byte % 64 ('@' = 1, 'A' = 2, 'P' = 17); the rest is the spec
 * (uniform, quadratic, karras[:rho=R], logsnr, list:t0,t1,...). A grid that builds must
 * start and end at the ends and be strictly monotone. */
#include <math.h>

#include "corrsde/schedule.h"
#include "corrsde/solve.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static csde_schedule *sched[3];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  csde_init();
  static const char *const specs[3] = {"vp-linear", "cosine", "ddpm-linear:n=50"};
  csde_err err;
  for (int i = 0; i < 3; i++)
    if (csde_schedule_alloc(&sched[i], specs[i], &err)) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2) return 0;
  const csde_schedule *s = (data[0] % 4) < 3 ? sched[data[0] % 4] : NULL;
  double ts = 1.0, te = 1e-3;
  if (data[0] & 8) {
    ts = 1e-3;
    te = 1.0;
  }
  size_t N = 1 + data[1] % 64;
  char *spec = fuzz_str(data + 2, size - 2);
  double *t = NULL;
  size_t n = 0;
  csde_err err;
  csde_err_clear(&err);
  fuzz_quiet_begin();
  int st = csde_grid_make(spec, s, ts, te, N, &t, &n, &err);
  fuzz_quiet_end("csde_grid_make");
  if (fuzz_verbose())
    fprintf(stderr, "grid N=%zu ts=%g '%s': %d %s\n", N, ts, spec, st, st ? err.msg : "");
  if (st == CSDE_SUCCESS) {
    if (!t || n < 1 || t[0] != ts || t[n] != te) abort();
    for (size_t i = 1; i <= n; i++)
      if (!((te > ts ? 1 : -1) * (t[i] - t[i - 1]) > 0)) abort();
  } else {
    fuzz_check_err(st, &err);
    if (t) abort(); /* no array on failure */
  }
  free(t);
  free(spec);
  return 0;
}
