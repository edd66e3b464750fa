/* The cost of classifier-free guidance (issue 25): NFE and wall time of an unguided run,
 * a guided run as one model call of 2B samples (the default) and as two calls of B
 * (guidance_split), on the exact gaussian model (one conditional, one unconditional:
 * the guided callback answers samples [0, ncond) with the first, the rest with the
 * second). A timing table, never a test:
 *   build/bench/corrsde-bench-guidance [tau D batch steps reps]   (default 16 4096 8 20 3)
 * Each row is the median of reps runs, the three modes interleaved in this process, so the
 * rows share the machine's load and compare. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "corrsde/corrsde.h"

typedef struct {
  const csde_model *mc, *mu;
  size_t per;
} gpair;

static int gpair_fn(const csde_model_ctx *c, const double *x, double *out, void *user)
{
  const gpair *g = user;
  if (c->ncond && csde_model_call(g->mc, c->t, c->ncond, x, out)) return -1;
  if (c->batch > c->ncond && csde_model_call(g->mu, c->t, c->batch - c->ncond,
                                             x + c->ncond * g->per, out + c->ncond * g->per))
    return -1;
  return 0;
}

static int cmp_double(const void *a, const void *b)
{
  double u = *(const double *)a, v = *(const double *)b;
  return (u > v) - (u < v);
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
  size_t tau = argc > 1 ? (size_t)atol(argv[1]) : 16, D = argc > 2 ? (size_t)atol(argv[2]) : 4096;
  size_t batch = argc > 3 ? (size_t)atol(argv[3]) : 8, steps = argc > 4 ? (size_t)atol(argv[4]) : 20;
  int reps = argc > 5 ? atoi(argv[5]) : 3;
  if (reps < 1) reps = 1;
  csde_err err;
  csde_cov *C = NULL;
  csde_schedule *S = NULL;
  csde_model *Gc = NULL, *Gu = NULL, *M = NULL;
  double *mc = calloc(tau, sizeof *mc);
  for (size_t f = 0; f < tau; f++) mc[f] = 1.0 + 0.1 * (double)f;
  if (csde_cov_alloc(&C, "ar1:rho=0.9", tau, NULL, &err) ||
      csde_schedule_alloc(&S, "vp-linear", &err) ||
      csde_model_gaussian_alloc(&Gc, C, S, D, mc, tau, NULL, &err) ||
      csde_model_gaussian_alloc(&Gu, C, S, D, NULL, 0, NULL, &err)) {
    fprintf(stderr, "setup: %s\n", err.msg);
    return 1;
  }
  gpair g = {Gc, Gu, tau * D};
  csde_model_alloc_ctx(&M, "gpair", gpair_fn, CSDE_OUT_CSCORE, &g, NULL, &err);
  static int uncond;
  const size_t n = batch * tau * D;
  double *x = malloc(n * sizeof *x);
  printf("guidance cost: pf-ode dpmpp2m, %zu steps, batch %zu, tau %zu, D %zu (state %.1f MiB); "
         "median of %d, the modes interleaved\n", steps, batch, tau, D, (double)n * 8 / 1048576.0,
         reps);
  printf("%-22s %6s %10s %10s %12s\n", "mode", "NFE", "wall s", "vs unguided", "memory MiB");
  enum { MODES = 3 };
  double *secs = calloc((size_t)MODES * (size_t)reps, sizeof *secs);
  if (!secs) return 1;
  size_t nfe[MODES] = {0}, mem[MODES] = {0};
  for (int r = 0; r < reps; r++) /* rep r of every mode before rep r + 1: the load is shared */
    for (int mode = 0; mode < MODES; mode++) {
      csde_run_settings s = csde_run_default_settings();
      s.process = "pf-ode";
      s.solver = "dpmpp2m";
      s.steps = steps;
      s.grid = "logsnr";
      s.max_memory = SIZE_MAX;
      if (mode) s.uncond = &uncond, s.guidance = "3", s.guidance_split = mode == 2;
      csde_solve_stats st = {0};
      csde_run *run = NULL;
      size_t shape[1] = {D};
      if (csde_run_alloc(&run, &s, C, S, mode ? M : Gc, batch, 1, shape, &err) ||
          csde_run_prior(run, x, &err)) {
        fprintf(stderr, "run: %s\n", err.msg);
        return 1;
      }
      mem[mode] = csde_run_memory_of(run)->total;
      double t0 = now();
      if (csde_run_exec(run, x, NULL, NULL, &st, &err)) {
        fprintf(stderr, "exec: %s\n", err.msg);
        return 1;
      }
      secs[mode * reps + r] = now() - t0;
      nfe[mode] = st.nfe;
      csde_run_free(run);
    }
  static const char *const names[] = {"unguided", "guided, one call of 2B", "guided, split (2 x B)"};
  double med[MODES];
  for (int mode = 0; mode < MODES; mode++) {
    qsort(secs + mode * reps, (size_t)reps, sizeof *secs, cmp_double);
    med[mode] = reps % 2 ? secs[mode * reps + reps / 2]
                         : 0.5 * (secs[mode * reps + reps / 2 - 1] + secs[mode * reps + reps / 2]);
    printf("%-22s %6zu %10.3f %10.2fx %12.1f\n", names[mode], nfe[mode], med[mode],
           med[mode] / med[0], (double)mem[mode] / 1048576.0);
  }
  free(secs);
  csde_model_free(M);
  csde_model_free(Gc);
  csde_model_free(Gu);
  csde_cov_free(C);
  csde_schedule_free(S);
  free(mc);
  free(x);
  return 0;
}
