/* `corrsde-bench rng`: float64 standard normals per second, corrsde against NumPy and
 * torch. The baselines run in a child Python (bench/baselines/rng_numpy.py) during the
 * same invocation, so the ratios compare numbers taken under the same machine load.
 * Rate = n / median time; "x numpy" = rate / NumPy's rate (NumPy uses one core). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "corrsde/corrsde.h"

/* Internal to src/core/rng.c (not installed): the kernel in use, and a switch. */

enum { MAXROW = 16 };

typedef struct {
  char name[64];
  int threads;
  bench_stat s;
  double rate; /* values per second at the median */
  char note[128];
  int skipped;
} row;

typedef void fill_fn(csde_rng_key key, uint64_t index, size_t n, double *out, int nt);

static void fill_normal(csde_rng_key key, uint64_t index, size_t n, double *out, int nt)
{
  (void)nt;
  csde_rng_normal(key, index, n, out);
}

static void fill_par(csde_rng_key key, uint64_t index, size_t n, double *out, int nt)
{
  csde_rng_normal_par(key, index, n, out, nt);
}

static void fill_uniform(csde_rng_key key, uint64_t index, size_t n, double *out, int nt)
{
  (void)nt;
  csde_rng_uniform(key, index, n, out);
}

/* One untimed fill, then R timed fills of fresh index ranges. */
static row time_fill(const char *name, fill_fn *f, int nt, size_t n, int R, double *buf,
                     double *t)
{
  row w = {.threads = nt};
  snprintf(w.name, sizeof w.name, "%s", name);
  csde_rng_key key = {12345, 1};
  f(key, 0, n, buf, nt);
  for (int r = 0; r < R; r++) {
    double t0 = bench_now();
    f(key, (uint64_t)(r + 1) * n, n, buf, nt);
    t[r] = bench_now() - t0;
  }
  w.s = bench_stats(t, R);
  w.rate = (double)n / w.s.med;
  return w;
}

typedef struct {
  size_t n;
  row *rows;
  int k, max;
} collect;

/* "row name median min max note" or "skip name reason" */
static int take_line(int nf, char **f, void *user)
{
  collect *c = user;
  if (c->k >= c->max) return 0;
  row w = {.threads = 1};
  if (nf == 6 && !strcmp(f[0], "row")) {
    snprintf(w.name, sizeof w.name, "%s", f[1]);
    w.s.med = atof(f[2]);
    w.s.min = atof(f[3]);
    w.s.max = atof(f[4]);
    w.rate = (double)c->n / w.s.med;
    snprintf(w.note, sizeof w.note, "%s", f[5]);
  } else if (nf == 3 && !strcmp(f[0], "skip")) {
    w.skipped = 1;
    w.s = (bench_stat){NAN, NAN, NAN};
    snprintf(w.name, sizeof w.name, "%s", f[1]);
    snprintf(w.note, sizeof w.note, "skipped: %s", f[2]);
  } else {
    return 0;
  }
  c->rows[c->k++] = w;
  return 1;
}

/* Run the Python baselines; append their rows. Returns the number of rows added. */
static int run_baselines(const bench_opts *o, size_t n, int R, row *rows, int max)
{
  char script[PATH_MAX + 64], cmd[3 * PATH_MAX + 256], qpy[PATH_MAX + 64], qsc[PATH_MAX + 64];
  if (!bench_find_script(o, "rng_numpy.py", script, sizeof script)) {
    row w = {.skipped = 1, .threads = 1, .s = {NAN, NAN, NAN}, .rate = NAN};
    snprintf(w.name, sizeof w.name, "numpy standard_normal");
    snprintf(w.note, sizeof w.note, "rng_numpy.py not found (use --baselines DIR)");
    rows[0] = w;
    return 1;
  }
  bench_quote(qpy, sizeof qpy, bench_python(o));
  bench_quote(qsc, sizeof qsc, script);
  snprintf(cmd, sizeof cmd, "%s %s --n %zu --repeats %d 2>&1", qpy, qsc, n, R);
  collect c = {n, rows, 0, max};
  bench_run_lines(cmd, take_line, &c);
  return c.k;
}

int bench_rng(const bench_opts *o)
{
  size_t n = o->n;
  int R = o->repeats > 0 ? o->repeats : 9, T = o->threads > 0 ? o->threads : 2;
  double *buf = malloc(n * sizeof *buf), *t = malloc((size_t)R * sizeof *t);
  if (!buf || !t) {
    fprintf(stderr, "corrsde-bench: out of memory for %zu values\n", n);
    free(buf);
    free(t);
    return 1;
  }
  const char *kern = csde_rng_kernel_name();
  row rows[MAXROW];
  int nr = 0;
  char name[64];

  rows[nr] = time_fill("corrsde normal", fill_normal, 1, n, R, buf, t);
  snprintf(rows[nr++].note, sizeof rows[0].note, "csde_rng_normal, kernel %s", kern);
  snprintf(name, sizeof name, "corrsde normal_par");
  rows[nr] = time_fill(name, fill_par, T, n, R, buf, t);
  snprintf(rows[nr++].note, sizeof rows[0].note, "csde_rng_normal_par, kernel %s", kern);
  rows[nr] = time_fill("corrsde uniform", fill_uniform, 1, n, R, buf, t);
  snprintf(rows[nr++].note, sizeof rows[0].note, "csde_rng_uniform, kernel %s", kern);
  /* every other kernel this CPU runs (the same bits, another speed) */
  for (const char *const *k = csde_rng_kernel_names(); *k && nr < MAXROW - 4; k++) {
    if (!strcmp(*k, kern) || csde_rng_kernel_select(*k)) continue;
    snprintf(name, sizeof name, "corrsde normal (%s)", *k);
    rows[nr] = time_fill(name, fill_normal, 1, n, R, buf, t);
    snprintf(rows[nr++].note, sizeof rows[0].note,
             "kernel %s, as with CSDE_RNG_KERNEL=%s: the same values", *k, *k);
  }
  csde_rng_kernel_select(kern);
  int ncorr = nr;
  double base = NAN;
  if (!o->no_baselines) {
    nr += run_baselines(o, n, R, rows + nr, MAXROW - nr);
    for (int i = ncorr; i < nr; i++)
      if (!rows[i].skipped && !strcmp(rows[i].name, "numpy standard_normal")) base = rows[i].rate;
  }

  printf("corrsde-bench rng: %zu float64 values per fill, median of %d repeats [min, max]\n", n,
         R);
  printf("generator %s, kernel %s\n\n", csde_rng_name(), kern);
  printf("%-26s %3s %10s %10s %10s %9s %8s\n", "case", "thr", "median s", "min s", "max s",
         "M/s", "x numpy");
  for (int i = 0; i < nr; i++) {
    row *w = rows + i;
    double ratio = w->skipped ? NAN : w->rate / base;
    if (w->skipped) {
      printf("%-26s %3d %10s %10s %10s %9s %8s  %s\n", w->name, w->threads, "-", "-", "-", "-",
             "-", w->note);
    } else {
      char rs[16] = "-";
      if (isfinite(ratio)) snprintf(rs, sizeof rs, "%.2f", ratio);
      printf("%-26s %3d %10.5f %10.5f %10.5f %9.1f %8s  %s\n", w->name, w->threads, w->s.med,
             w->s.min, w->s.max, w->rate * 1e-6, rs, w->note);
    }
    bench_csv_row(o, "rng", w->name, "", w->threads, (double)n, R, w->s,
                  w->skipped ? NAN : w->rate, ratio, isfinite(ratio) ? "numpy standard_normal" : "",
                  w->note);
  }
  if (!isfinite(base)) printf("\n(no NumPy baseline in this run: no ratio column)\n");
  free(buf);
  free(t);
  return 0;
}
