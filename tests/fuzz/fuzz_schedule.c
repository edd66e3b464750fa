/* Fuzz the schedule spec: csde_schedule_alloc. The input is the spec. A schedule that
 * builds is evaluated (continuous and discrete views, discretisation) and its canonical
 * spec must build again into the same canonical spec (up to the 4095 characters
 * csde_schedule_alloc reads). Specs asking for more than 10^6 steps (ddpm-linear:n=N) are
 * skipped: the library allocates what they ask for (3 arrays of N doubles). */
#include <math.h>

#include "core/spec.h"
#include "corrsde/schedule.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

FUZZ_INITIALIZE()

static void use(const csde_schedule *s)
{
  static const double ts[] = {0.0, 1e-3, 0.25, 0.5, 0.999, 1.0, -1.0, 2.0, NAN};
  for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
    (void)csde_schedule_beta(s, ts[i]);
    (void)csde_schedule_int_beta(s, ts[i]);
    (void)csde_schedule_abar(s, ts[i]);
    (void)csde_schedule_sigma(s, ts[i]);
    double l = csde_schedule_logsnr(s, ts[i]);
    (void)csde_schedule_t_of_logsnr(s, l);
  }
  (void)csde_schedule_t_of_logsnr(s, INFINITY);
  (void)csde_schedule_t_of_logsnr(s, -INFINITY);
  size_t N = csde_schedule_nsteps(s);
  for (size_t i = 0; i <= N + 1 && i < 64; i++) {
    (void)csde_schedule_beta_step(s, i);
    (void)csde_schedule_abar_step(s, i);
  }
  if (N) {
    (void)csde_schedule_beta_step(s, N);
    (void)csde_schedule_abar_step(s, N);
  }
  double betas[16];
  csde_err err;
  (void)csde_schedule_discretize(s, 16, betas, &err);
  if (N && N <= 16) (void)csde_schedule_discretize(s, N, betas, &err);
}

/* 1 if the spec's n= is a number above 10^6 */
static int too_many_steps(const char *spec)
{
  csde_spec sp;
  csde_err err;
  if (csde_spec_parse(spec, "schedule spec", &sp, &err)) return 0;
  const char *n = csde_spec_get(&sp, "n");
  return n && !(strtod(n, NULL) <= 1e6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *spec = fuzz_str(data, size);
  if (too_many_steps(spec)) {
    free(spec);
    return 0;
  }
  csde_schedule *s = NULL, *s2 = NULL;
  csde_err err;
  csde_err_clear(&err);
  fuzz_quiet_begin();
  int st = csde_schedule_alloc(&s, spec, &err);
  if (fuzz_verbose()) {
    fuzz_quiet_end("csde_schedule_alloc");
    fprintf(stderr, "schedule '%s': %d %s\n", spec, st, st ? err.msg : csde_schedule_spec(s));
    fuzz_quiet_begin();
  }
  if (st == CSDE_SUCCESS) {
    use(s);
    const char *canon = csde_schedule_spec(s);
    if (strlen(canon) < 4096) {
      if (csde_schedule_alloc(&s2, canon, &err) != CSDE_SUCCESS ||
          strcmp(canon, csde_schedule_spec(s2)) != 0) {
        fuzz_quiet_end("csde_schedule_alloc");
        fprintf(stderr, "==fuzz: the canonical spec '%s' of '%s' does not build back (%s)\n",
                canon, spec, err.msg);
        abort();
      }
    }
  } else {
    fuzz_check_err(st, &err);
  }
  csde_schedule_free(s);
  csde_schedule_free(s2);
  fuzz_quiet_end("csde_schedule_alloc");
  free(spec);
  return 0;
}
