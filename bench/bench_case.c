/* The cases of `corrsde-bench sde` that run in child processes, one per process so that
 * its peak RSS is its own (bench_sde.c parses their output):
 *   case-em SIDE THREADS REPEATS         reverse SDE, Euler-Maruyama: lines row (seconds
 *                                        per step), part (model, solver, triad), cov (the
 *                                        endpoint's frame second moment), rss
 *   case-ode SIDE THREADS REPEATS DIR [SOLVER]   PF-ODE at rtol = atol = 1e-5: line ode
 *                                        (time, NFE, errors against the exact flow), rss;
 *                                        writes DIR/x0.bin and DIR/exact.bin for SciPy
 * The lines are tab-separated, like the Python baselines'. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "corrsde/corrsde.h"
#include "corrsde/solve.h"

enum { TAU = SDE_TAU, BATCH = SDE_BATCH, STEPS = SDE_STEPS, MAXR = SDE_MAXR };
#define RHO_SPEC SDE_COV
#define SCHED SDE_SCHED
#define ODE_TOL SDE_ODE_TOL

/* ---- the child side: one case, printed as tab-separated lines ---- */

static double rss_kib(void)
{
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_maxrss;
}

typedef struct {
  const csde_model *inner;
  double seconds; /* time spent inside the model */
} timed_model;

static int timed_fn(double t, size_t batch, const double *x, double *out, void *user)
{
  timed_model *tm = user;
  double t0 = bench_now();
  int rc = csde_model_call(tm->inner, t, batch, x, out);
  tm->seconds += bench_now() - t0;
  return rc;
}

/* median of reps triads a = b + s c over n doubles (3 n 8 bytes moved) */
static bench_stat triad(size_t n, int threads, int reps)
{
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  double t[MAXR];
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    return (bench_stat){NAN, NAN, NAN};
  }
  for (size_t i = 0; i < n; i++) a[i] = 0, b[i] = 1.0 + (double)i * 1e-9, c[i] = 2.0;
  long ln = (long)n;
  (void)threads;
  for (int r = 0; r < reps; r++) {
    double t0 = bench_now();
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (long i = 0; i < ln; i++) a[i] = b[i] + 0.5 * c[i];
    t[r] = bench_now() - t0;
    b[(size_t)r % n] = a[((size_t)r * 7) % n]; /* keep the loop */
  }
  free(a), free(b), free(c);
  return bench_stats(t, reps);
}

static void print_stat(const char *kind, const char *name, bench_stat s)
{
  printf("%s\t%s\t%.9g\t%.9g\t%.9g\n", kind, name, s.med, s.min, s.max);
}

/* The problem's objects: C, the schedule, the gaussian model (default S0 = 0.25
 * ar1(0.95), mean 0) and its timed wrapper. */
typedef struct {
  csde_cov *C;
  csde_schedule *s;
  csde_model *G, *M;
  timed_model tm;
  size_t tau, D, n;
} problem;

static void problem_free(problem *p)
{
  csde_model_free(p->M);
  csde_model_free(p->G);
  csde_schedule_free(p->s);
  csde_cov_free(p->C);
}

static int problem_make(problem *p, size_t side, size_t tau, int threads, csde_err *err)
{
  memset(p, 0, sizeof *p);
  p->tau = tau;
  p->D = side * side;
  p->n = BATCH * tau * p->D;
  int s;
  if ((s = csde_cov_alloc(&p->C, RHO_SPEC, tau, NULL, err)) ||
      (s = csde_schedule_alloc(&p->s, SCHED, err)) ||
      (s = csde_model_gaussian_alloc(&p->G, p->C, p->s, p->D, NULL, 0, NULL, err)) ||
      (s = csde_model_gaussian_set_threads(p->G, threads, err)))
    return s;
  p->tm.inner = p->G;
  return csde_model_alloc(&p->M, "gaussian (timed)", timed_fn, CSDE_OUT_CSCORE, &p->tm, NULL,
                          err);
}

static csde_problem problem_of(const problem *p, csde_process proc)
{
  csde_problem P = csde_problem_default();
  P.process = proc;
  P.tau = p->tau, P.D = p->D, P.batch = BATCH, P.C = p->C, P.sched = p->s, P.model = p->M;
  return P;
}

/* x ~ N(0, C) per pixel, from its own seed */
static int draw_prior(const problem *p, int threads, uint64_t seed, double *x, csde_err *err)
{
  csde_cov_ws *ws = NULL;
  int s = csde_cov_ws_alloc(&ws, p->C, p->D, threads, err);
  if (!s) s = csde_cov_sample(p->C, ws, (csde_rng_key){seed, 1ull << 63}, 0, BATCH, x, err);
  csde_cov_ws_free(ws);
  return s;
}

/* median of reps fills of n normals with `threads` threads (the kernel's peak: in cache
 * for n <= 2^18 doubles, as in the step's tiles) */
static bench_stat normals(size_t n, int threads, int reps)
{
  double *z = malloc(n * sizeof *z), t[MAXR];
  if (!z) return (bench_stat){NAN, NAN, NAN};
  for (int r = -1; r < reps; r++) {
    double t0 = bench_now();
    csde_rng_normal_par((csde_rng_key){7, 1}, (uint64_t)(r + 1) * n, n, z, threads);
    if (r >= 0) t[r] = bench_now() - t0;
  }
  free(z);
  return bench_stats(t, reps);
}

/* `case-em SIDE THREADS REPEATS [TAU [STEPS]]`: lines row/part/cov/rss (see bench_sde's
 * parser); the cov line only at tau = SDE_TAU (STEPS: default SDE_STEPS, a uniform grid) */
static int case_em(size_t side, int threads, int reps, size_t tau, int steps)
{
  problem p;
  csde_err err;
  csde_solver *S = NULL;
  double *x = NULL, t[MAXR], mt[MAXR], ov[MAXR], base = 0;
  int rc = 1;
  if (problem_make(&p, side, tau, threads, &err)) goto fail;
  base = rss_kib(); /* the libraries and the small matrices, as the baselines measure it */
  csde_problem P = problem_of(&p, CSDE_PROC_REVERSE_SDE);
  csde_solve_params par = csde_solve_default_params();
  par.solver = "em";
  par.steps = (size_t)steps;
  par.threads = threads;
  par.seed = 1;
  if (csde_solver_alloc(&S, &P, &par, &err)) goto fail;
  if (!(x = malloc(p.n * sizeof *x))) goto fail;
  for (int r = -1; r < reps; r++) { /* r = -1: the untimed warm-up */
    if (draw_prior(&p, threads, (uint64_t)(r + 2), x, &err)) goto fail;
    csde_solver_set_seed(S, (uint64_t)(r + 2), 0);
    p.tm.seconds = 0;
    double t0 = bench_now();
    if (csde_solver_run(S, x, NULL, &err)) goto fail;
    if (r < 0) continue;
    t[r] = (bench_now() - t0) / steps;
    mt[r] = p.tm.seconds / steps;
    ov[r] = t[r] - mt[r];
  }
  double peak = rss_kib();
  char note[128];
  snprintf(note, sizeof note, "corrsde %s, %d thread%s", csde_version(), threads,
           threads > 1 ? "s" : "");
  bench_stat st = bench_stats(t, reps);
  printf("row\tcorrsde em step\t%.9g\t%.9g\t%.9g\t%s\n", st.med, st.min, st.max, note);
  print_stat("part", "model", bench_stats(mt, reps));
  print_stat("part", "solver", bench_stats(ov, reps));
  /* the endpoint's frame second moment E[x_i x_j] over batch x pixels */
  if (tau == TAU) printf("cov\tcorrsde em step\t%zu", BATCH * p.D);
  for (size_t i = 0; i < TAU && tau == TAU; i++)
    for (size_t j = 0; j < TAU; j++) {
      double acc = 0;
      for (size_t b = 0; b < BATCH; b++) {
        const double *xi = x + (b * TAU + i) * p.D, *xj = x + (b * TAU + j) * p.D;
        for (size_t q = 0; q < p.D; q++) acc += xi[q] * xj[q];
      }
      printf("\t%.17g", acc / (double)(BATCH * p.D));
    }
  printf("%srss\tcorrsde em step\t%.0f\t%.0f\n", tau == TAU ? "\n" : "", peak, base);
  free(x);
  x = NULL;
  print_stat("part", "triad", triad(p.n, threads, reps > 5 ? reps : 5));
  /* the normals one step draws (n), 2^18 at a time */
  bench_stat nz = normals((size_t)1 << 18, threads, reps > 5 ? reps : 5);
  double f = (double)p.n / (double)(1 << 18);
  print_stat("part", "normals", (bench_stat){nz.med * f, nz.min * f, nz.max * f});
  rc = 0;
fail:
  if (rc) printf("skip\tcorrsde em step\t%s\n", err.msg);
  free(x);
  csde_solver_free(S);
  problem_free(&p);
  return rc;
}

static int write_raw(const char *path, const double *x, size_t n)
{
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(x, sizeof *x, n, f);
  return (fclose(f) || w != n) ? -1 : 0;
}

/* `case-ode SIDE THREADS REPEATS DIR`: line ode/rss; writes DIR/x0.bin, DIR/exact.bin */
static int case_ode(size_t side, int threads, int reps, const char *dir, const char *solver)
{
  problem p;
  csde_err err = {0};
  csde_solver *S = NULL;
  double *x0 = NULL, *x = NULL, *ex = NULL, t[MAXR], base = 0;
  int rc = 1;
  if (problem_make(&p, side, TAU, threads, &err)) goto fail;
  x0 = malloc(p.n * sizeof *x0), x = malloc(p.n * sizeof *x), ex = malloc(p.n * sizeof *ex);
  if (!x0 || !x || !ex) goto fail;
  if (draw_prior(&p, threads, 7, x0, &err)) goto fail;
  base = rss_kib(); /* with the start x0, which the benchmark keeps to restart from */
  csde_problem P = problem_of(&p, CSDE_PROC_PFODE);
  csde_solve_params par = csde_solve_default_params();
  par.solver = solver;
  par.rtol = par.atol = ODE_TOL;
  par.threads = threads;
  if (csde_solver_alloc(&S, &P, &par, &err)) goto fail;
  csde_solve_stats st = {0};
  for (int r = -1; r < reps; r++) {
    memcpy(x, x0, p.n * sizeof *x);
    double t0 = bench_now();
    if (csde_solver_run(S, x, &st, &err)) goto fail;
    if (r >= 0) t[r] = bench_now() - t0;
  }
  double peak = rss_kib();
  /* the exact flow from T = 1 to eps (P's span) */
  if (csde_model_gaussian_flow_apply(p.G, P.T, P.eps, BATCH, x0, ex, &err)) goto fail;
  double emax = 0, ss = 0;
  for (size_t i = 0; i < p.n; i++) {
    double e = fabs(x[i] - ex[i]);
    emax = fmax(emax, e);
    ss += e * e;
  }
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/x0.bin", dir);
  if (write_raw(path, x0, p.n)) goto io_fail;
  snprintf(path, sizeof path, "%s/exact.bin", dir);
  if (write_raw(path, ex, p.n)) goto io_fail;
  bench_stat s = bench_stats(t, reps);
  printf("ode\tcorrsde %s\t%.9g\t%.9g\t%.9g\t%zu\t%.6g\t%.6g\tcorrsde %s, %d thread%s\n",
         solver, s.med, s.min, s.max, st.nfe, emax, sqrt(ss / (double)p.n), csde_version(),
         threads, threads > 1 ? "s" : "");
  printf("rss\tcorrsde %s\t%.0f\t%.0f\n", solver, peak, base);
  rc = 0;
  goto fail; /* the clean-up, with rc = 0 */
io_fail:
  snprintf(err.msg, sizeof err.msg, "cannot write %.200s", path);
fail:
  if (rc) printf("skip\tcorrsde %s\t%s\n", solver, err.msg);
  free(x0), free(x), free(ex);
  csde_solver_free(S);
  problem_free(&p);
  return rc;
}

int bench_case(int argc, char **argv)
{
  if (argc < 5 || (!strcmp(argv[1], "case-ode") && argc < 6)) {
    fprintf(stderr, "corrsde-bench %s: SIDE THREADS REPEATS%s\n", argv[1],
            strcmp(argv[1], "case-ode") ? " [TAU [STEPS]]" : " DIR [SOLVER]");
    return 2;
  }
  size_t side = strtoul(argv[2], NULL, 10);
  int threads = atoi(argv[3]), reps = atoi(argv[4]);
  if (side < 1 || side > 8192 || threads < 1 || reps < 1 || reps > MAXR) {
    fprintf(stderr, "corrsde-bench %s: bad sizes\n", argv[1]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  size_t tau = !strcmp(argv[1], "case-em") && argc > 5 ? strtoul(argv[5], NULL, 10) : TAU;
  int steps = !strcmp(argv[1], "case-em") && argc > 6 ? atoi(argv[6]) : STEPS;
  if (tau < 1 || tau > 1024 || steps < 1) {
    fprintf(stderr, "corrsde-bench %s: bad tau\n", argv[1]);
    return 2;
  }
  return !strcmp(argv[1], "case-em") ? case_em(side, threads, reps, tau, steps)
                                     : case_ode(side, threads, reps, argv[5],
                                                argc > 6 ? argv[6] : "rk45");
}

