/* corrsde-bench sde: the reverse SDE with Euler-Maruyama on the gaussian model
 * (ar1:rho=0.9, tau = 16, batch 4, 100 steps; frames 64x64 and 256x256), and the solver's
 * own work per step (everything but the model: noise, V', vector updates) as a multiple
 * of the memory-bandwidth bound, a triad a = b + s c over state-sized arrays measured in
 * the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "corrsde/corrsde.h"
#include "corrsde/solve.h"

typedef struct {
  const csde_model *inner;
  double seconds; /* time spent inside the model */
} timed_model;

/* the gaussian model's callback, timed */
static int timed_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  timed_model *tm = user;
  double t0 = bench_now();
  int rc = csde_model_call(tm->inner, t, batch, x, out);
  tm->seconds += bench_now() - t0;
  return rc;
}

/* median time of one triad a = b + s c over n doubles (3 n 8 bytes moved) */
static bench_stat triad(size_t n, int threads, int reps)
{
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  double t[64];
  for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1.0 + (double)i * 1e-9, c[i] = 2.0;
  long ln = (long)n;
  for (int r = 0; r < reps; r++) {
    double t0 = bench_now();
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (long i = 0; i < ln; i++) a[i] = b[i] + 0.5 * c[i];
    t[r] = bench_now() - t0;
    b[r % n] = a[(r * 7) % n]; /* keep the loop from being optimised away */
  }
  (void)threads;
  free(a);
  free(b);
  free(c);
  return bench_stats(t, reps);
}

static int one(const bench_opts *o, size_t side, int threads, int reps)
{
  const size_t tau = 16, batch = 4, D = side * side, steps = 100;
  csde_err err;
  csde_cov *C = NULL;
  csde_schedule *s = NULL;
  csde_model *G = NULL, *M = NULL;
  int rc = 1;
  double *x = NULL, t[64], overhead[64];
  timed_model tm = {NULL, 0};
  if (csde_cov_alloc(&C, "ar1:rho=0.9", tau, NULL, &err) ||
      csde_schedule_alloc(&s, "vp-linear", &err) ||
      csde_model_gaussian_alloc(&G, C, s, D, NULL, 0, NULL, &err))
    goto fail;
  tm.inner = G;
  if (csde_model_alloc(&M, "gaussian (timed)", timed_fn, CSDE_OUT_CSCORE, &tm, NULL, &err))
    goto fail;
  csde_problem P = csde_problem_default();
  P.tau = tau, P.D = D, P.batch = batch, P.C = C, P.sched = s, P.model = M;
  csde_solve_params par = csde_solve_default_params();
  par.solver = "em";
  par.steps = steps;
  par.threads = threads;
  csde_solver *S = NULL;
  if (csde_solver_alloc(&S, &P, &par, &err)) goto fail;
  size_t n = batch * tau * D;
  x = malloc(n * sizeof *x);
  for (int r = 0; r < reps; r++) {
    csde_cov_ws *ws;
    csde_cov_ws_alloc(&ws, C, D, threads, &err);
    csde_cov_sample(C, ws, (csde_rng_key){1, 1ull << 63}, 0, batch, x, &err);
    csde_cov_ws_free(ws);
    tm.seconds = 0;
    double t0 = bench_now();
    csde_solve_stats st;
    if (csde_solver_run(S, x, &st, &err)) {
      csde_solver_free(S);
      goto fail;
    }
    t[r] = (bench_now() - t0) / (double)steps;
    overhead[r] = t[r] - tm.seconds / (double)steps;
  }
  csde_solver_free(S);
  bench_stat st = bench_stats(t, reps), ov = bench_stats(overhead, reps);
  bench_stat tr = triad(n, threads, reps > 5 ? reps : 5);
  double ratio = ov.med / tr.med;
  char param[64];
  snprintf(param, sizeof param, "%zux%zu", side, side);
  printf("  %-8s %7d %12.3f %12.3f %12.3f %12.3f %8.2f %s\n", param, threads, 1e3 * st.med,
         1e3 * (st.med - ov.med), 1e3 * ov.med, 1e3 * tr.med, ratio,
         ratio <= 2 ? "within 2x" : "ABOVE 2x");
  bench_csv_row(o, "sde", "em step (total)", param, threads, (double)n, reps, st, NAN, NAN, "",
                "");
  bench_csv_row(o, "sde", "em step (solver, no model)", param, threads, (double)n, reps, ov, NAN,
                ratio, "triad", "");
  bench_csv_row(o, "sde", "triad a=b+sc", param, threads, (double)n, reps, tr,
                24.0 * (double)n / tr.med, NAN, "", "bytes/s");
  rc = 0;
fail:
  if (rc) fprintf(stderr, "corrsde-bench sde: %s\n", err.msg);
  free(x);
  csde_model_free(M);
  csde_model_free(G);
  csde_schedule_free(s);
  csde_cov_free(C);
  return rc;
}

int bench_sde(const bench_opts *o)
{
  int reps = o->repeats > 0 ? o->repeats : 5, th = o->threads > 0 ? o->threads : 2;
  if (reps > 64) reps = 64;
  printf("reverse SDE, Euler-Maruyama, gaussian model, ar1:rho=0.9, tau 16, batch 4, 100 "
         "steps\n(per step, ms; median of %d runs; triad = a = b + s c over the state)\n",
         reps);
  printf("  %-8s %7s %12s %12s %12s %12s %8s\n", "frames", "threads", "step", "model",
         "solver", "triad", "x triad");
  int rc = 0;
  const size_t sides[] = {64, 256};
  for (int k = 0; k < 2; k++) {
    rc |= one(o, sides[k], 1, reps);
    if (th > 1) rc |= one(o, sides[k], th, reps);
  }
  return rc;
}
