/* `corrsde-bench sde`: the samplers against NumPy, PyTorch and SciPy doing the same job,
 * in the same run (bench/README.md, rows 3 to 6):
 *   - reverse SDE, Euler-Maruyama, frames 64x64 and 256x256, 1 and --threads threads:
 *     seconds per step of corrsde, NumPy and PyTorch, the endpoints' frame second moments
 *     compared; corrsde's step split into model and solver, the solver against a triad
 *     over the state (the bandwidth bound);
 *   - the PF-ODE at 64x64 with rk45 and dopri5 at rtol = atol = 1e-5 against
 *     scipy.integrate.solve_ivp(RK45) from the same initial state: NFE, wall time and the
 *     error against the exact flow;
 *   - the peak RSS of every run against the k x state bound.
 * Every case runs in its own process: corrsde's through the hidden commands of
 * bench_case.c, the baselines through bench/baselines/. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "core/smallmm.h"

enum { TAU = SDE_TAU, BATCH = SDE_BATCH, STEPS = SDE_STEPS, MAXR = SDE_MAXR };
#define RHO_SPEC SDE_COV
#define SCHED SDE_SCHED
#define ODE_TOL SDE_ODE_TOL
/* Arrays of the state's size that a method needs (the RSS bound, k x state bytes):
 * Euler-Maruyama the state and one stage (the model's output); RKF45 the state, the
 * state at the step's start (to retry a rejected step) and its six stages; Dormand-Prince
 * the state, the trial state and seven stages (FSAL). */
#define K_EM 2
#define K_RK45 8
#define K_DP5 9

/* ---- the parent side: run the cases, print the tables ---- */

typedef struct {
  char name[64], note[160];
  int ok, has_cov, has_rss, is_ode;
  bench_stat s, model, solver, triad, normals;
  double cov[TAU * TAU], covN, peak, base; /* second moment; RSS in KiB */
  double nfe, emax, erms;
  int nform; /* the baselines' forms (`form` lines): name and median */
  char form[4][64];
  double form_med[4];
} rec;

static bench_stat stat_of(char **f)
{
  return (bench_stat){atof(f[0]), atof(f[1]), atof(f[2])};
}

static int take(int nf, char **f, void *user)
{
  rec *r = user;
  if (!strcmp(f[0], "row") && nf == 6) {
    snprintf(r->name, sizeof r->name, "%s", f[1]);
    snprintf(r->note, sizeof r->note, "%s", f[5]);
    r->s = stat_of(f + 2);
    r->ok = 1;
  } else if (!strcmp(f[0], "ode") && nf == 9) {
    snprintf(r->name, sizeof r->name, "%s", f[1]);
    snprintf(r->note, sizeof r->note, "%s", f[8]);
    r->s = stat_of(f + 2);
    r->nfe = atof(f[5]), r->emax = atof(f[6]), r->erms = atof(f[7]);
    r->ok = r->is_ode = 1;
  } else if (!strcmp(f[0], "form") && nf == 6) {
    if (r->nform < 4) {
      snprintf(r->form[r->nform], sizeof r->form[0], "%s", f[5]);
      r->form_med[r->nform++] = atof(f[2]);
    }
  } else if (!strcmp(f[0], "part") && nf == 5) {
    bench_stat s = stat_of(f + 2);
    if (!strcmp(f[1], "model")) r->model = s;
    if (!strcmp(f[1], "solver")) r->solver = s;
    if (!strcmp(f[1], "triad")) r->triad = s;
    if (!strcmp(f[1], "normals")) r->normals = s;
  } else if (!strcmp(f[0], "cov") && nf == 3 + TAU * TAU) {
    r->covN = atof(f[2]);
    for (int i = 0; i < TAU * TAU; i++) r->cov[i] = atof(f[3 + i]);
    r->has_cov = 1;
  } else if (!strcmp(f[0], "rss") && nf == 4) {
    r->peak = atof(f[2]), r->base = atof(f[3]);
    r->has_rss = 1;
  } else if (!strcmp(f[0], "skip") && nf == 3) {
    snprintf(r->name, sizeof r->name, "%s", f[1]);
    snprintf(r->note, sizeof r->note, "skipped: %s", f[2]);
    r->ok = 0;
  } else {
    return 0;
  }
  return 1;
}

/* Run "<prefix> <args>" and collect its lines. */
static rec run(const char *prefix, const char *args, const char *fallback)
{
  rec r;
  memset(&r, 0, sizeof r);
  snprintf(r.name, sizeof r.name, "%s", fallback);
  snprintf(r.note, sizeof r.note, "skipped: no output");
  char cmd[4 * PATH_MAX];
  snprintf(cmd, sizeof cmd, "%s %s", prefix, args);
  bench_run_lines(cmd, take, &r);
  return r;
}

static rec missing(const char *name, const char *why)
{
  rec r;
  memset(&r, 0, sizeof r);
  snprintf(r.name, sizeof r.name, "%s", name);
  snprintf(r.note, sizeof r.note, "skipped: %s", why);
  return r;
}

/* "<python> <script>" quoted, or "" when the script is missing */
static void py_prefix(const bench_opts *o, const char *file, char *out, size_t cap)
{
  char script[PATH_MAX + 64], qpy[PATH_MAX + 64], qsc[PATH_MAX + 64];
  out[0] = 0;
  if (!bench_find_script(o, file, script, sizeof script)) return;
  bench_quote(qpy, sizeof qpy, bench_python(o));
  bench_quote(qsc, sizeof qsc, script);
  snprintf(out, cap, "%s %s", qpy, qsc);
}

static void self_prefix(char *out, size_t cap)
{
  char exe[PATH_MAX];
  ssize_t m = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[m > 0 ? m : 0] = 0;
  bench_quote(out, cap, m > 0 ? exe : "corrsde-bench");
}

/* Largest |a_ij - b_ij| over its standard error: each second-moment estimate from N
 * independent pixels has variance (S_ii S_jj + S_ij^2) / N, the difference twice that. */
static double moment_z(const rec *a, const rec *b)
{
  double z = 0;
  for (int i = 0; i < TAU; i++)
    for (int j = 0; j < TAU; j++) {
      const double *S = a->cov;
      double se = sqrt(2 * (S[i * TAU + i] * S[j * TAU + j] + S[i * TAU + j] * S[i * TAU + j]) /
                       a->covN);
      z = fmax(z, fabs(a->cov[i * TAU + j] - b->cov[i * TAU + j]) / se);
    }
  return z;
}

static void print_rss(const bench_opts *o, const rec *r, const char *param, int thr, int k,
                      double state_bytes)
{
  if (!r->has_rss) return;
  double used = (r->peak - r->base) * 1024.0, bound = k * state_bytes;
  printf("  %-26s %-8s %3d %10.1f %10.1f %10.1f %8.2f\n", r->name, param, thr,
         r->peak / 1024.0, used / 1048576.0, bound / 1048576.0, used / bound);
  char note[96];
  snprintf(note, sizeof note, "peak %.1f MiB, before the state %.1f MiB", r->peak / 1024.0,
           r->base / 1024.0);
  bench_stat s = {used, used, used};
  char to[32];
  snprintf(to, sizeof to, "%d x state", k);
  bench_csv_row(o, "rss", r->name, param, thr, state_bytes, 1, s, NAN, used / bound, to, note);
}

/* The small-tau kernel against BLAS (CSDE_SMALLMM_KERNEL=blas in the child): the EM step at
 * 64x64, one thread, tau = 16, 64 and 256 (10 steps there, at about 0.1 s a step). */
static void small_tau(const bench_opts *o, const char *self, int reps)
{
  static const int taus[] = {16, 64, 256};
  char args[2 * PATH_MAX + 300];
  size_t mt = csde_smallmm_max_tau(csde_smallmm_kernel());
  printf("\nthe small-tau kernel (core/smallmm.c, %s, used for tau <= %zu) against BLAS: the "
         "EM step\nat 64x64, "
         "1 thread, ms per step (median of %d; of 3 runs of 10 steps at tau 256); x blas =\n"
         "BLAS's median / the kernel's\n\n",
         csde_smallmm_kernel_name(csde_smallmm_kernel()), mt, reps);
  printf("  %5s %-9s %10s %10s %10s %8s\n", "tau", "product", "step", "model", "solver",
         "x blas");
  for (int i = 0; i < 3; i++) {
    rec r[2];
    for (int k = 0; k < 2; k++) {
      snprintf(args, sizeof args, "%s%s case-em 64 1 %d %d %d",
               k ? "CSDE_SMALLMM_KERNEL=blas " : "", self, taus[i] > 64 ? 3 : reps, taus[i],
               taus[i] > 64 ? 10 : STEPS);
      r[k] = run("", args, "corrsde em step");
    }
    for (int k = 0; k < 2; k++) {
      if (!r[k].ok) {
        printf("  %5d %-9s  %s\n", taus[i], k ? "blas" : "kernel", r[k].note);
        continue;
      }
      double ratio = r[1].ok ? r[1].s.med / r[k].s.med : NAN;
      printf("  %5d %-9s %10.3f %10.3f %10.3f %8.2f\n", taus[i],
             k ? "blas" : ((size_t)taus[i] <= mt ? "kernel" : "(blas)"), 1e3 * r[k].s.med,
             1e3 * r[k].model.med, 1e3 * r[k].solver.med, ratio);
      char param[32];
      snprintf(param, sizeof param, "64x64 tau %d", taus[i]);
      bench_csv_row(o, "sde", k ? "corrsde em step (blas)" : "corrsde em step (kernel)", param,
                    1, (double)(BATCH * taus[i] * 4096), reps, r[k].s, NAN, ratio,
                    "corrsde em step (blas)", "");
    }
  }
}

/* A competing process on the machine: busy 2 ms, asleep 2 ms, until killed. */
static pid_t competitor_start(void)
{
  pid_t pid = fork();
  if (pid != 0) return pid;
  for (;;) {
    struct timespec t0, t, nap = {0, 2000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1e9 + (t.tv_nsec - t0.tv_nsec) < 2e6);
    nanosleep(&nap, NULL);
  }
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Threads that pay, robustly: 10 runs (processes) of the EM step at 64x64 at 1 and 2
 * threads, on an idle machine and beside a competing process; each run's figure is its
 * median of 3 repeats; the table gives the median and the worst of the 10. */
static void threads_under_load(const bench_opts *o, const char *self)
{
  enum { RUNS = 10 };
  char args[PATH_MAX + 100];
  printf("\nthreads under load: the EM step at 64x64, 10 runs at each thread count (each the\n"
         "median of 3 repeats), idle and beside a process busy 2 ms in every 4 ms; ms per step\n\n");
  printf("  %-10s %3s %10s %10s %10s\n", "load", "thr", "median", "worst", "x 1 thread");
  for (int load = 0; load < 2; load++) {
    pid_t comp = load ? competitor_start() : 0;
    double med1 = NAN;
    for (int T = 1; T <= 2; T++) {
      double v[RUNS];
      int n = 0;
      for (int i = 0; i < RUNS; i++) {
        snprintf(args, sizeof args, "case-em 64 %d 3", T);
        rec r = run(self, args, "corrsde em step");
        if (r.ok) v[n++] = r.s.med;
      }
      if (n == 0) {
        printf("  %-10s %3d  no run finished\n", load ? "competing" : "idle", T);
        continue;
      }
      qsort(v, (size_t)n, sizeof *v, cmp_double);
      double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
      if (T == 1) med1 = med;
      printf("  %-10s %3d %10.3f %10.3f %10.2f\n", load ? "competing" : "idle", T, 1e3 * med,
             1e3 * v[n - 1], med1 / med);
      bench_csv_row(o, "sde", "corrsde em step, 10 runs", load ? "64x64 competing" : "64x64 idle",
                    T, (double)(BATCH * TAU * 4096), RUNS, (bench_stat){med, v[0], v[n - 1]},
                    NAN, med1 / med, "1 thread", "median and worst of 10 runs");
    }
    if (comp > 0) {
      kill(comp, SIGKILL);
      waitpid(comp, NULL, 0);
    }
  }
}

int bench_sde(const bench_opts *o)
{
  int reps = o->repeats > 0 ? o->repeats : 5, T = o->threads > 0 ? o->threads : 2;
  if (reps > MAXR) reps = MAXR;
  char self[PATH_MAX + 64], np[2 * PATH_MAX + 200], tq[2 * PATH_MAX + 200], args[256];
  self_prefix(self, sizeof self);
  np[0] = tq[0] = 0;
  if (!o->no_baselines) {
    py_prefix(o, "sde_numpy.py", np, sizeof np);
    py_prefix(o, "sde_torch.py", tq, sizeof tq);
  }
  const size_t sides[] = {64, 256};
  int thr[2] = {1, T}, nthr = T > 1 ? 2 : 1;
  rec rs[2][2][3];
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < nthr; b++) {
      snprintf(args, sizeof args, "case-em %zu %d %d", sides[a], thr[b], reps);
      rs[a][b][0] = run(self, args, "corrsde em step");
      /* the baselines at 256x256 take 0.06 (NumPy in place) to 2 s (PyTorch with
       * temporaries) a step, in each of their forms: 3 repeats of the first 3 steps
       * (per-step times, no endpoint), which keeps bench/run.sh within 10 minutes */
      snprintf(args, sizeof args, "--side %zu --threads %d --repeats %d --seed 1%s", sides[a],
               thr[b], sides[a] > 64 && reps > 3 ? 3 : reps,
               sides[a] > 64 ? " --timed-steps 3" : "");
      rs[a][b][1] = np[0] ? run(np, args, "numpy em step")
                          : missing("numpy em step", o->no_baselines ? "--no-baselines"
                                                                     : "sde_numpy.py not found");
      rs[a][b][2] = tq[0] ? run(tq, args, "torch em step")
                          : missing("torch em step", o->no_baselines ? "--no-baselines"
                                                                     : "sde_torch.py not found");
    }

  printf("reverse SDE, Euler-Maruyama: gaussian model, %s, tau %d, batch %d, %d steps\n"
         "(seconds per step, median of %d runs [min, max]; x corrsde = its median / "
         "corrsde's;\n moments z = largest |E[x_i x_j] difference| of the endpoints over its "
         "standard error)\n\n",
         RHO_SPEC, TAU, BATCH, STEPS, reps);
  printf("  %-26s %-8s %3s %10s %10s %10s %10s %9s\n", "case", "frames", "thr", "median ms",
         "min ms", "max ms", "x corrsde", "moments z");
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < nthr; b++) {
      char param[32];
      snprintf(param, sizeof param, "%zux%zu", sides[a], sides[a]);
      const rec *c = &rs[a][b][0];
      for (int k = 0; k < 3; k++) {
        const rec *r = &rs[a][b][k];
        if (!r->ok) {
          printf("  %-26s %-8s %3d  %s\n", r->name, param, thr[b], r->note);
          continue;
        }
        double ratio = c->ok ? r->s.med / c->s.med : NAN, z = NAN;
        if (k && c->has_cov && r->has_cov) z = moment_z(c, r);
        char zs[16] = "";
        if (isfinite(z)) snprintf(zs, sizeof zs, "%.2f%s", z, z > 5 ? " (!)" : "");
        char rs[16] = "-";
        if (isfinite(ratio)) snprintf(rs, sizeof rs, "%.2f", ratio);
        printf("  %-26s %-8s %3d %10.3f %10.3f %10.3f %10s %9s\n", r->name, param, thr[b],
               1e3 * r->s.med, 1e3 * r->s.min, 1e3 * r->s.max, rs, zs);
        char note[200];
        snprintf(note, sizeof note, "%s; moments z %s", r->note, zs[0] ? zs : "-");
        bench_csv_row(o, "sde", r->name, param, thr[b], (double)(BATCH * TAU) * sides[a] * sides[a],
                      reps, r->s, NAN, ratio, "corrsde em step", note);
      }
    }

  printf("\nthe baselines' forms, each timed warm (ms per step, median); the fastest is the "
         "row above;\nx fastest = its median / the fastest form's\n\n");
  printf("  %-16s %-8s %3s %-38s %10s %9s\n", "case", "frames", "thr", "form", "median ms",
         "x fastest");
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < nthr; b++)
      for (int k = 1; k < 3; k++) {
        const rec *r = &rs[a][b][k];
        double best = HUGE_VAL;
        for (int q = 0; q < r->nform; q++) best = fmin(best, r->form_med[q]);
        for (int q = 0; q < r->nform; q++)
          printf("  %-16s %zux%-4zu %3d %-38s %10.3f %9.2f\n", r->name, sides[a], sides[a],
                 thr[b], r->form[q], 1e3 * r->form_med[q], r->form_med[q] / best);
      }

  printf("\ncorrsde's step, split (ms per step; solver = step - model: noise, V', update;\n"
         "triad = a = b + s c over the state, the memory-bandwidth bound; floor = the step's\n"
         "normals at the kernel's peak + one read and write of the state and of the model's\n"
         "output at the triad's bandwidth = normals + 4/3 triad)\n\n");
  printf("  %-8s %3s %10s %10s %10s %10s %9s %10s %10s %9s\n", "frames", "thr", "step",
         "model", "solver", "triad", "x triad", "normals", "floor", "x floor");
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < nthr; b++) {
      const rec *c = &rs[a][b][0];
      if (!c->ok) continue;
      char param[32];
      snprintf(param, sizeof param, "%zux%zu", sides[a], sides[a]);
      double ratio = c->solver.med / c->triad.med;
      double floor = c->normals.med + 4.0 / 3.0 * c->triad.med;
      printf("  %-8s %3d %10.3f %10.3f %10.3f %10.3f %9.2f %10.3f %10.3f %9.2f\n", param,
             thr[b], 1e3 * c->s.med, 1e3 * c->model.med, 1e3 * c->solver.med,
             1e3 * c->triad.med, ratio, 1e3 * c->normals.med, 1e3 * floor, c->s.med / floor);
      double n = (double)(BATCH * TAU) * sides[a] * sides[a];
      bench_csv_row(o, "sde", "corrsde model", param, thr[b], n, reps, c->model, NAN, NAN, "", "");
      bench_csv_row(o, "sde", "corrsde solver (step - model)", param, thr[b], n, reps,
                    c->solver, NAN, ratio, "triad", "");
      bench_csv_row(o, "sde", "triad a=b+sc", param, thr[b], n, reps, c->triad,
                    24.0 * n / c->triad.med, NAN, "", "bytes/s");
      bench_csv_row(o, "sde", "corrsde em step / floor", param, thr[b], n, reps, c->s, NAN,
                    c->s.med / floor, "normals + 4/3 triad", "");
    }
  small_tau(o, self, reps);
  threads_under_load(o, self);

  /* PF-ODE: corrsde rk45 writes x0 and the exact endpoint for SciPy (dopri5 the same) */
  char dir[] = "/tmp/corrsde-bench-XXXXXX", sp[2 * PATH_MAX + 200];
  static const char *const odes[] = {"rk45", "dopri5"};
  rec od[2][3];
  int have_dir = mkdtemp(dir) != NULL;
  const char *odir = have_dir ? dir : "/tmp";
  sp[0] = 0;
  if (!o->no_baselines) py_prefix(o, "ode_scipy.py", sp, sizeof sp);
  for (int b = 0; b < nthr; b++) {
    for (int k = 0; k < 2; k++) {
      snprintf(args, sizeof args, "case-ode 64 %d %d %s %s", thr[b], reps, odir, odes[k]);
      od[b][k] = run(self, args, k ? "corrsde dopri5" : "corrsde rk45");
    }
    snprintf(args, sizeof args,
             "--x0 %s/x0.bin --exact %s/exact.bin --batch %d --tau %d --D 4096 --rtol %g "
             "--atol %g --threads %d --repeats %d",
             odir, odir, BATCH, TAU, ODE_TOL, ODE_TOL, thr[b], reps);
    od[b][2] = !sp[0]        ? missing("scipy solve_ivp RK45", o->no_baselines
                                                                     ? "--no-baselines"
                                                                     : "ode_scipy.py not found")
               : !od[b][0].ok ? missing("scipy solve_ivp RK45", "no corrsde initial state")
                              : run(sp, args, "scipy solve_ivp RK45");
  }
  if (have_dir) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/x0.bin", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/exact.bin", dir);
    unlink(path);
    rmdir(dir);
  }
  printf("\nPF-ODE at rtol = atol = %g, the same problem at 64x64 from one initial state\n"
         "(wall seconds per solve, median of %d; errors against the exact flow; scipy x =\n"
         " SciPy's median / this one's)\n\n",
         ODE_TOL, reps);
  printf("  %-26s %3s %10s %10s %10s %7s %11s %11s %8s\n", "case", "thr", "median s", "min s",
         "max s", "NFE", "max |err|", "rms err", "scipy x");
  for (int b = 0; b < nthr; b++)
    for (int k = 0; k < 3; k++) {
      const rec *r = &od[b][k], *sc = &od[b][2];
      if (!r->ok) {
        printf("  %-26s %3d  %s\n", r->name, thr[b], r->note);
        continue;
      }
      double ratio = sc->ok ? sc->s.med / r->s.med : NAN;
      char rs[16] = "-";
      if (isfinite(ratio)) snprintf(rs, sizeof rs, "%.2f", ratio);
      printf("  %-26s %3d %10.4f %10.4f %10.4f %7.0f %11.3e %11.3e %8s\n", r->name, thr[b],
             r->s.med, r->s.min, r->s.max, r->nfe, r->emax, r->erms, rs);
      char note[256];
      snprintf(note, sizeof note, "%s; NFE %.0f; max err %.3e; rms err %.3e", r->note, r->nfe,
               r->emax, r->erms);
      bench_csv_row(o, "ode", r->name, "64x64", thr[b], (double)(BATCH * TAU * 4096), reps,
                    r->s, NAN, ratio, "scipy solve_ivp RK45 / this", note);
    }

  printf("\npeak RSS of each run (MiB): used = peak - before the state; bound = k x state "
         "bytes\n(k = %d for Euler-Maruyama: state + stage; %d for RKF45: state, start, 6 "
         "stages;\n %d for Dormand-Prince: state, trial state, 7 stages)\n\n",
         K_EM, K_RK45, K_DP5);
  printf("  %-26s %-8s %3s %10s %10s %10s %8s\n", "case", "frames", "thr", "peak", "used",
         "bound", "x bound");
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < nthr; b++)
      for (int k = 0; k < 3; k++) {
        char param[32];
        snprintf(param, sizeof param, "%zux%zu", sides[a], sides[a]);
        print_rss(o, &rs[a][b][k], param, thr[b], K_EM, 8.0 * BATCH * TAU * sides[a] * sides[a]);
      }
  for (int b = 0; b < nthr; b++)
    for (int k = 0; k < 3; k++)
      print_rss(o, &od[b][k], "64x64", thr[b], k == 0 ? K_RK45 : K_DP5,
                8.0 * BATCH * TAU * 4096);
  return 0;
}
