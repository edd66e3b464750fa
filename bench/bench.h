/* Shared pieces of `corrsde-bench` (bench.c): options, timing, statistics, CSV rows. */
#ifndef CSDE_BENCH_H
#define CSDE_BENCH_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
  size_t n;              /* rng: values per fill */
  int repeats;           /* 0: the subcommand's default */
  size_t D;              /* cov: pixels per frame */
  const char *taus;      /* cov: comma-separated frame counts */
  int threads;           /* rng: the multi-threaded row; cov: BLAS threads */
  const char *python;    /* rng, sde: interpreter for the baselines */
  const char *baselines; /* rng, sde: directory of the scripts (NULL: found from the binary) */
  int no_baselines;      /* rng, sde: skip the Python baselines */
  FILE *csv;             /* NULL: no CSV */
} bench_opts;

/* The median, smallest and largest of r timings (seconds). */
typedef struct {
  double med, min, max;
} bench_stat;

double bench_now(void);              /* CLOCK_MONOTONIC, seconds */
bench_stat bench_stats(double *t, int r); /* sorts t */

/* One CSV row: bench,case,param,threads,n,repeats,median_s,min_s,max_s,rate_per_s,ratio,
 * ratio_to,note. rate and ratio may be NAN (written empty). Does nothing without a CSV. */
void bench_csv_row(const bench_opts *o, const char *bench, const char *name, const char *param,
                   int threads, double n, int repeats, bench_stat s, double rate, double ratio,
                   const char *ratio_to, const char *note);

/* Child processes. The Python interpreter (--python, $CSDE_PYTHON, /usr/bin/python3). */
const char *bench_python(const bench_opts *o);
/* s in single quotes for the shell. */
void bench_quote(char *dst, size_t cap, const char *s);
/* bench/baselines/<file>: from --baselines, $CSDE_SRCDIR/bench/baselines, the binary's
 * place in the source tree (<src>/<build>/bench/), or ./bench/baselines. 1 if found. */
int bench_find_script(const bench_opts *o, const char *file, char *path, size_t cap);
/* Run cmd (through the shell), split each output line at tabs and hand the fields to fn;
 * lines fn does not take (returns 0) are echoed as "# child: ...". 0 if cmd exited 0. */
enum { BENCH_MAXF = 300 };
typedef int bench_line_fn(int nf, char **f, void *user);
int bench_run_lines(const char *cmd, bench_line_fn *fn, void *user);

int bench_rng(const bench_opts *o);
int bench_cov(const bench_opts *o);
int bench_sde(const bench_opts *o);
/* The hidden commands case-em / case-ode (argv[1], bench_case.c) that bench_sde runs in
 * child processes, and the problem they share: the gaussian model, C = ar1:rho=0.9,
 * vp-linear, tau 16, batch 4, 100 Euler-Maruyama steps; the PF-ODE at rtol = atol = 1e-5. */
int bench_case(int argc, char **argv);
enum { SDE_TAU = 16, SDE_BATCH = 4, SDE_STEPS = 100, SDE_MAXR = 64 };
#define SDE_COV "ar1:rho=0.9"
#define SDE_SCHED "vp-linear"
#define SDE_ODE_TOL 1e-5

#endif
